// The block requests in flight to one peer, oldest first, with when each was sent, and that
// peer's measured request time (a smoothed mean and deviation, as TCP's RTO and libtorrent's
// request_timeout). A request that takes far longer than the peer usually needs times out: the
// torrent re-requests the block elsewhere and the peer's pipeline shrinks, so a slow or stalling
// peer cannot hold blocks hostage. A request waits its turn in the peer's queue, so it is timed
// from the later of when it was sent and when the peer's last block arrived: a long queue at a
// slow but steady peer does not expire, a silent peer's does, and so does a request the peer
// skipped (one sent after it was answered first: it is timed from when it was sent). Blocks may arrive, be rejected or cancelled in any order:
// adding and erasing a request is O(1) amortized and allocates nothing once the peer's arrays
// have grown to its pipeline (a queue in sending order whose erased entries are skipped and
// compacted away, and a flat index by block). Kept per peer inside the torrent's
// request_record; CAF-free.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "actors/block_map.hpp"
#include "protocol/types.hpp"

namespace actorrent {

/// The requests a peer is assumed to queue when its BEP 10 handshake names no reqq (or it has
/// none): libtorrent's default, which BEP 10 cites.
constexpr std::uint32_t unannounced_reqq = 250;

class peer_requests {
public:
  using clock = std::chrono::steady_clock;
  using ms = std::chrono::milliseconds;

  /// `pipeline` is the most requests in flight at once (it shrinks on timeouts and grows back
  /// one block per block received, never above `max_pipeline`).
  explicit peer_requests(std::uint32_t max_pipeline = 256)
    : max_pipeline_(max_pipeline), pipeline_(max_pipeline) {}

  /// Records a request sent at `now`; a block already requested from this peer is re-timed.
  void add(block_ref b, clock::time_point now);
  bool contains(block_ref b) const { return live_.contains(key(b)); }
  /// A block arrived (requested or a late copy): the peer is sending, which restarts the clock
  /// of the requests queued behind. Removes its request and samples the request time; false if
  /// it was not requested from this peer (any more).
  bool on_received(block_ref b, clock::time_point now);
  /// Rejected, cancelled or given up: removes the request without a sample.
  bool remove(block_ref b);
  /// Removes and returns every request.
  std::vector<block_ref> take_all();
  /// Removes and returns the requests that waited longer than timeout(), oldest first: since
  /// they were sent or, for one that no later request overtook, since the peer's last block
  /// arrived if that is later. If there were any, halves the pipeline.
  std::vector<block_ref> take_timed_out(clock::time_point now);

  /// Mean + 4 deviations of the measured request time, within [min_timeout, max_timeout];
  /// max_timeout until two blocks have been timed.
  ms timeout() const;
  void set_timeout_bounds(ms min_timeout, ms max_timeout) {
    min_timeout_ = min_timeout;
    max_timeout_ = max_timeout;
  }
  /// A new bound (the peer's reqq): a pipeline at the old bound moves to the new one, a
  /// smaller one (halved by timeouts) only shrinks to fit.
  void set_max_pipeline(std::uint32_t n);

  std::size_t size() const noexcept { return live_.size(); }
  bool empty() const noexcept { return live_.empty(); }
  /// Every request, oldest first.
  template <class F>
  void for_each(F&& f) const {
    for (auto i = head_; i < queue_.size(); ++i)
      if (is_live(queue_[i]))
        f(queue_[i].block, queue_[i].sent);
  }
  /// Queue entries held, erased ones not yet compacted away included (tests: the queue stays
  /// within a small multiple of the requests in flight).
  std::size_t entries_held() const noexcept { return queue_.size(); }
  std::uint32_t pipeline() const noexcept { return pipeline_; }
  /// The requests to keep in flight: what the peer delivers in `queue_time` at its measured
  /// rate (as libtorrent's request_queue_time), at least min_paced_pipeline, at most
  /// pipeline(). A slow peer is not handed blocks it would sit on for many seconds (end-game
  /// copies, timeouts), and a peer whose rate grows with the requests queued at it (one that
  /// serves in batches) gets more as it speeds up. Until the first second of blocks is
  /// measured: at most initial_pipeline (a slow peer is not handed a large share of the
  /// torrent before anyone knows it is slow).
  std::uint32_t paced_pipeline(std::chrono::duration<double> queue_time) const;
  /// Blocks a second over the last measurement windows (0: not measured yet).
  double blocks_per_s() const noexcept { return blocks_per_s_; }
  static constexpr std::uint32_t min_paced_pipeline = 16;
  static constexpr std::uint32_t initial_pipeline = 64;
  std::uint32_t max_pipeline() const noexcept { return max_pipeline_; }
  std::uint32_t samples() const noexcept { return samples_; }
  std::uint64_t timeouts() const noexcept { return timeouts_; }

private:
  // A request as sent; it is live while live_ maps its block to its sequence number (a
  // re-request or an erase leaves the old entry behind, dead, until it is skipped or compacted).
  struct entry {
    block_ref block;
    clock::time_point sent;
    std::uint64_t seq = 0;
  };
  struct live_request {
    std::uint64_t seq = 0;
    clock::time_point sent;
  };
  static std::uint64_t key(block_ref b) noexcept {
    return (std::uint64_t{b.piece.value} << 32) | b.block;
  }
  bool is_live(const entry& e) const noexcept {
    auto* l = live_.find(key(e.block));
    return l && l->seq == e.seq;
  }
  /// Erases the request of `b`; when it had one, it goes to `was` (if given).
  bool erase(block_ref b, live_request* was);
  /// Drops the dead entries once they outnumber the live ones (amortized O(1) per erase).
  void maybe_compact();
  void compact();
  std::vector<entry> queue_;     // by sending order from head_: oldest first, dead ones too
  std::size_t head_ = 0;         // entries before it are gone
  block_map<live_request> live_; // block -> its live request
  std::uint64_t next_seq_ = 0;
  std::uint32_t max_pipeline_;
  std::uint32_t pipeline_;
  ms min_timeout_{3000};
  ms max_timeout_{60000};
  clock::time_point last_arrival_{}; // of any block from the peer
  std::uint64_t answered_end_ = 0;    // 1 + the newest sequence number answered (0: none)
  double mean_ms_ = 0;
  double dev_ms_ = 0;
  std::uint32_t samples_ = 0;
  std::uint64_t timeouts_ = 0;
  // The peer's rate: blocks answered over windows of at least rate_window_s, each window
  // averaged with the estimate so far; a gap of over rate_gap_s starts a new window.
  static constexpr double rate_window_s = 1.0;
  static constexpr double rate_gap_s = 3.0;
  void sample_rate(clock::time_point now);
  clock::time_point rate_start_{};
  std::uint64_t rate_blocks_ = 0;
  double blocks_per_s_ = 0;
};

} // namespace actorrent
