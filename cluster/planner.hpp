// The coordinator's plan of one cluster job, CAF-free: which worker fetches which pieces.
//
// - Every piece is in exactly one of: verified, held by one worker (its shard), in transit
//   (taken from a worker that has not yet acknowledged losing it), or the pool (unassigned).
//   A piece is never held by two workers at once: in shared mode two writers of one piece
//   could overwrite verified bytes with a hostile peer's.
// - Shards are sized by rate: a worker holds about `window` seconds of work at its measured
//   rate (its declared cap until measured), at least `min_pieces`, and is topped up from the
//   pool as it verifies. Near the end (pool empty) unfinished pieces of slow workers are
//   stolen for fast ones that are idle or about to be (shard below its low-water mark).
// - Epochs: every assignment gets a fresh, strictly increasing epoch. A piece taken from a
//   worker stays in transit until that worker acknowledges an epoch at least as new as the
//   assignment that dropped it, or the worker is removed (the caller removes a lost worker
//   only after its lease expired, so it can no longer write).
// - Reports are accepted only for pieces the reporting worker holds or that are in transit
//   from it: a worker that lost pieces (stolen, or removed and back after SIGCONT) cannot
//   have them counted.
// - Policy details (planner.cpp): a shard's target is also capped at its worker's rate share
//   of the unfinished pieces (a small torrent is split, not taken by the first worker); a
//   shard is topped up once it is down to half its target (every shard below its target after a
//   worker was lost, so that its pieces go out at once); when the pool cannot fill every
//   shard, each piece goes to the worker that would finish soonest with it; a steal takes the
//   slow worker's highest pieces, leaving it what it finishes in the time the idle workers
//   need for the rest, and waits while enough pieces are already in transit.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <vector>

#include <roaring/roaring.hh>

namespace actorrent::cluster {

using worker_id = std::uint32_t;
using clock = std::chrono::steady_clock;

struct planner_config {
  std::uint32_t piece_count = 0;
  std::uint64_t piece_length = 0;    // bytes (the last piece may be shorter)
  std::uint64_t total_size = 0;      // bytes
  double window_s = 10.0;            // seconds of work a shard holds at its worker's rate
  std::uint32_t min_pieces = 4;      // a shard's smallest size (while the pool has pieces)
  std::uint64_t unknown_rate = 4u << 20; // bytes/s assumed before a rate is known (0 cap)
  /// Near the end, a piece is stolen from a worker whose expected time to finish its shard
  /// exceeds this many seconds while another worker is idle.
  double steal_after_s = 2.0;
  /// A worker whose shard it finishes within this many seconds counts as idle for stealing:
  /// its last pieces are already in flight, so waiting until the shard is empty would leave
  /// its link unused for the tail of every shard. Must be below steal_after_s.
  double low_water_s = 1.0;
};

/// A worker's new shard: send it as Assign{epoch, pieces}.
struct assignment {
  worker_id worker = 0;
  std::uint64_t epoch = 0;
  Roaring pieces;
};

class planner {
public:
  explicit planner(planner_config cfg);

  /// After a restart: pieces verified in an earlier run are never assigned again; epochs
  /// continue above `last_epoch`.
  void restore(const Roaring& verified, std::uint64_t last_epoch);

  /// A joined worker; `rate_hint` its declared cap in bytes/s (0: unknown).
  void add_worker(worker_id w, std::uint64_t rate_hint);
  /// A lost worker (its lease has expired): its unverified pieces and those in transit from
  /// it go back to the pool.
  void remove_worker(worker_id w);
  bool has_worker(worker_id w) const;

  /// Verified pieces reported by `w`: returns those accepted (held by w or in transit from
  /// it, not yet verified); they leave w's shard.
  Roaring on_verified(worker_id w, std::uint64_t epoch, const Roaring& pieces);
  /// `w` applied the assignment of `epoch`: pieces in transit from it since then return to
  /// the pool.
  void on_ack(worker_id w, std::uint64_t epoch);
  /// `w`'s measured download rate in bytes/s; ignored while `w` holds no shard (an idle worker's
  /// rate is no measure of it).
  void on_rate(worker_id w, double bytes_per_s);

  /// Tops up, rebalances and steals: the shards that changed, each with a fresh epoch.
  std::vector<assignment> rebalance(clock::time_point now);

  const Roaring& verified() const noexcept { return verified_; }
  bool complete() const noexcept;
  std::uint64_t last_epoch() const noexcept { return epoch_; }
  /// The pieces `w` holds now (empty when unknown).
  Roaring shard_of(worker_id w) const;
  /// Pieces in no shard, not in transit and not verified.
  const Roaring& pool() const noexcept { return pool_; }
  /// Pieces taken from a worker that has not yet acknowledged losing them (for checks/tests).
  Roaring in_transit() const;
  std::size_t worker_count() const noexcept { return workers_.size(); }

private:
  struct worker_state {
    Roaring shard;                // held now
    std::uint64_t epoch = 0;      // of the last assignment sent
    std::uint64_t acked = 0;      // the newest epoch acknowledged
    // Pieces taken away, with the epoch of the assignment that dropped them.
    std::vector<std::pair<std::uint64_t, Roaring>> in_transit;
    double rate = 0;              // bytes/s, measured (0: unknown, use the hint)
    std::uint64_t rate_hint = 0;
    bool changed = false;         // shard differs from the last assignment sent
    bool seen = false;            // `since` is set (the first rebalance after the join)
    clock::time_point since{};    // when a rebalance first saw it: no steal before its rate
  };
  double rate_of(const worker_state& s) const;
  std::uint32_t target_of(const worker_state& s, double total_rate, std::uint64_t open) const;
  std::uint64_t bytes_of(const Roaring& pieces) const;
  void check_invariant() const;

  planner_config cfg_;
  std::map<worker_id, worker_state> workers_;
  Roaring verified_;
  Roaring pool_;
  std::uint64_t epoch_ = 0;
  bool refill_ = false; // a lost worker's pieces came back: top up every shard below target
};

} // namespace actorrent::cluster
