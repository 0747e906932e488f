// The torrent's one record of block requests in flight: for every peer its requests, oldest
// first, with their send times and the peer's request timing (peer_requests); for every block
// the peers it is requested from (two at most: a second one only in end-game). Every change
// goes through here, so the two views never disagree. The picker keeps only whether a block is
// free, requested or received, and asks this record who requested it (end-game duplicates,
// which requests a received block cancels, whether a dropped request frees its block). Peer
// actors keep only the wire's copy of what they sent, fed by the torrent's request_blocks and
// cancel_blocks. Adding, settling and erasing a request is O(1) amortized and allocates nothing
// once the arrays have grown to the pipelines' size. Owned by the torrent actor; CAF-free.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "actors/block_map.hpp"
#include "actors/peer_requests.hpp"
#include "protocol/types.hpp"

namespace actorrent {

/// The peers a block is requested from, in the order they were asked.
class block_requesters {
public:
  static constexpr std::size_t max = 2;
  const peer_slot* begin() const noexcept { return slots_; }
  const peer_slot* end() const noexcept { return slots_ + count_; }
  std::size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  bool full() const noexcept { return count_ == max; }
  bool contains(peer_slot p) const noexcept {
    return (count_ > 0 && slots_[0] == p) || (count_ > 1 && slots_[1] == p);
  }

private:
  friend class request_record;
  peer_slot slots_[max] = {no_peer, no_peer};
  std::uint8_t count_ = 0;
};

class request_record {
public:
  using clock = peer_requests::clock;

  /// Starts the record of a peer (no requests); returns its per-peer state for tuning.
  peer_requests& add_peer(peer_slot peer, std::uint32_t max_pipeline);
  /// Forgets a peer; returns what it still had in flight, oldest first.
  std::vector<block_ref> remove_peer(peer_slot peer);
  /// The peer's requests and timing; nullptr for an unknown peer.
  peer_requests* find(peer_slot peer);
  const peer_requests* find(peer_slot peer) const;

  /// Records that `b` was requested from `peer` (known through add_peer) at `now`; a block
  /// already requested from it is re-timed (still one request). False, and nothing recorded,
  /// when two other peers have it requested already (the picker never hands it to a third).
  bool add(peer_slot peer, block_ref b, clock::time_point now);
  /// The block arrived from `peer` (timed). False if it was not requested from it (any more).
  bool on_received(peer_slot peer, block_ref b, clock::time_point now);
  /// Rejected, cancelled or given up: removed without a sample.
  bool remove(peer_slot peer, block_ref b);
  /// Removes and returns every request of `peer` (choked, banned, disconnected).
  std::vector<block_ref> take_all(peer_slot peer);
  /// Removes and returns the requests of `peer` older than its timeout (see peer_requests).
  std::vector<block_ref> take_timed_out(peer_slot peer, clock::time_point now);

  std::size_t count(peer_slot peer) const;
  /// The peers `b` is requested from (empty when none).
  block_requesters requesters(block_ref b) const;
  bool requested(peer_slot peer, block_ref b) const;
  std::size_t total() const noexcept { return total_; }
  std::size_t peer_count() const noexcept { return peers_.size(); }

  /// Both views agree (tests and debug builds).
  bool consistent() const;

private:
  static std::uint64_t key(block_ref b) noexcept {
    return (std::uint64_t{b.piece.value} << 32) | b.block;
  }
  void unlink(peer_slot peer, block_ref b);
  std::unordered_map<peer_slot, peer_requests> peers_;
  block_map<block_requesters> by_block_;
  std::size_t total_ = 0;
};

} // namespace actorrent
