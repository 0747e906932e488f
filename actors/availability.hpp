// Piece availability kept in buckets: pieces ordered by how many peers have them, each count a
// contiguous bucket, so a +1 or -1 is one swap and rarest-first iteration needs no sorting.
// Peers that have every piece are counted once in `seeds()`, never per piece. Pieces the torrent
// no longer needs to pick (held, or already being downloaded) are parked in a bucket of their
// own in front of the others and skipped by iteration. Owned by the torrent actor.
#pragma once

#include <cassert>
#include <cstdint>
#include <vector>

#include "protocol/types.hpp"

namespace actorrent {

class availability {
public:
  explicit availability(std::uint32_t piece_count, std::uint64_t shuffle_seed = 0);

  std::uint32_t piece_count() const noexcept { return static_cast<std::uint32_t>(order_.size()); }

  /// One more / one less (non-seed) peer has piece p. O(1).
  void increment(piece_index p);
  void decrement(piece_index p);

  /// Peers with every piece (BEP 6 HaveAll, or a full bitfield) are counted here only.
  void add_seed() noexcept { ++seeds_; }
  void remove_seed() noexcept { assert(seeds_ > 0); --seeds_; }
  std::uint32_t seeds() const noexcept { return seeds_; }

  /// Peers (seeds included) that have p.
  std::uint32_t count(piece_index p) const noexcept { return count_[p.value] + seeds_; }

  /// Park p (no longer pickable) / make it pickable again. O(count(p)) bucket moves, once per
  /// piece start or completion, never per HAVE.
  void park(piece_index p);
  void unpark(piece_index p);
  bool parked(piece_index p) const noexcept { return parked_[p.value]; }
  std::uint32_t pickable() const noexcept { return piece_count() - bucket_start(1); }
  /// True when some connected peer has a pickable piece (otherwise only end-game is left).
  bool any_pickable_available() const noexcept {
    return seeds_ > 0 ? pickable() > 0 : bucket_start(2) < piece_count();
  }

  /// Calls f(piece_index) for pickable pieces from rarest to most common; stops when f returns
  /// false. With `include_unavailable` false, pieces no non-seed peer has are skipped.
  template <class F>
  void for_each_rarest(bool include_unavailable, F&& f) const {
    // Each bucket is walked from a per-torrent offset: increments always move a piece to its
    // bucket's edge, so without it equally rare pieces would be tried in the same order by
    // every client that saw the same bitfields.
    std::size_t first_bucket = include_unavailable ? 1 : 2;
    auto n = static_cast<std::uint32_t>(order_.size());
    for (std::size_t b = first_bucket; bucket_start(b) < n; ++b) {
      std::uint32_t begin = bucket_start(b);
      std::uint32_t size = bucket_start(b + 1) - begin;
      if (size == 0)
        continue;
      std::uint32_t offset = rotation_ % size;
      for (std::uint32_t i = 0; i < size; ++i) {
        std::uint32_t k = offset + i < size ? offset + i : offset + i - size;
        if (!f(piece_index{order_[begin + k]}))
          return;
      }
    }
  }

  /// Checks every invariant (tests and debug builds).
  bool consistent() const;

private:
  // Bucket 0 holds parked pieces; bucket c + 1 holds pickable pieces that c non-seed peers have.
  std::uint32_t bucket_start(std::size_t bucket) const noexcept {
    return bucket < start_.size() ? start_[bucket] : static_cast<std::uint32_t>(order_.size());
  }
  std::uint32_t bucket_of(piece_index p) const noexcept {
    return parked_[p.value] ? 0 : count_[p.value] + 1;
  }
  void move_up(std::uint32_t piece, std::uint32_t bucket);   // bucket -> bucket + 1
  void move_down(std::uint32_t piece, std::uint32_t bucket); // bucket -> bucket - 1
  void swap_positions(std::uint32_t a, std::uint32_t b);

  std::vector<std::uint32_t> order_; // pieces, grouped by bucket
  std::vector<std::uint32_t> pos_;   // piece -> index in order_
  std::vector<std::uint32_t> count_; // piece -> non-seed peers that have it
  std::vector<bool> parked_;
  std::vector<std::uint32_t> start_; // bucket -> first index in order_; grows on demand
  std::uint32_t seeds_ = 0;
  std::uint32_t rotation_ = 0; // random, fixed per torrent
};

} // namespace actorrent
