// The block requests in flight to one peer, oldest first, with when each was sent, and that
// peer's measured request time (a smoothed mean and deviation, as TCP's RTO and libtorrent's
// request_timeout). A request that takes far longer than the peer usually needs times out: the
// torrent re-requests the block elsewhere and the peer's pipeline shrinks, so a slow or stalling
// peer cannot hold blocks hostage. Erasing a request is O(log n) (blocks may arrive, be
// rejected or cancelled in any order). Kept per peer inside the torrent's request_record; CAF-free.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <unordered_map>
#include <vector>

#include "protocol/types.hpp"

namespace actorrent {

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
  bool contains(block_ref b) const { return seq_of_.count(key(b)) != 0; }
  /// The block arrived: removes its request and samples the request time. False if it was not
  /// requested from this peer (any more).
  bool on_received(block_ref b, clock::time_point now);
  /// Rejected, cancelled or given up: removes the request without a sample.
  bool remove(block_ref b);
  /// Removes and returns every request.
  std::vector<block_ref> take_all();
  /// Removes and returns the requests sent longer than timeout() ago, oldest first; if there
  /// were any, halves the pipeline.
  std::vector<block_ref> take_timed_out(clock::time_point now);

  /// Mean + 4 deviations of the measured request time, within [min_timeout, max_timeout];
  /// max_timeout until two blocks have been timed.
  ms timeout() const;
  void set_timeout_bounds(ms min_timeout, ms max_timeout) {
    min_timeout_ = min_timeout;
    max_timeout_ = max_timeout;
  }
  void set_max_pipeline(std::uint32_t n);

  std::size_t size() const noexcept { return queue_.size(); }
  bool empty() const noexcept { return queue_.empty(); }
  /// Every request, oldest first.
  template <class F>
  void for_each(F&& f) const {
    for (auto& [seq, e] : queue_)
      f(e.block, e.sent);
  }
  std::uint32_t pipeline() const noexcept { return pipeline_; }
  std::uint32_t max_pipeline() const noexcept { return max_pipeline_; }
  std::uint32_t samples() const noexcept { return samples_; }
  std::uint64_t timeouts() const noexcept { return timeouts_; }

private:
  struct entry {
    block_ref block;
    clock::time_point sent;
  };
  static std::uint64_t key(block_ref b) noexcept {
    return (std::uint64_t{b.piece.value} << 32) | b.block;
  }
  /// Erases the request of `b`; its entry, if there was one.
  bool erase(block_ref b, entry* out);
  std::map<std::uint64_t, entry> queue_;                 // by sending order: oldest first
  std::unordered_map<std::uint64_t, std::uint64_t> seq_of_; // block -> its key in queue_
  std::uint64_t next_seq_ = 0;
  std::uint32_t max_pipeline_;
  std::uint32_t pipeline_;
  ms min_timeout_{3000};
  ms max_timeout_{60000};
  double mean_ms_ = 0;
  double dev_ms_ = 0;
  std::uint32_t samples_ = 0;
  std::uint64_t timeouts_ = 0;
};

} // namespace actorrent
