// The torrent's one record of block requests in flight: for every peer its requests, oldest
// first, with their send times and the peer's request timing (peer_requests); for every block
// the peers it is requested from (two in end-game). Every change goes through here, so the two
// views never disagree; erasing a request is O(log n), counts per peer are O(1). The picker keeps
// only what it needs to choose (which blocks are free); peers validate what they sent on their
// own. Owned by the torrent actor; CAF-free.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "actors/peer_requests.hpp"
#include "protocol/types.hpp"

namespace actorrent {

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

  void add(peer_slot peer, block_ref b, clock::time_point now);
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
  const std::vector<peer_slot>& requesters(block_ref b) const;
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
  std::unordered_map<std::uint64_t, std::vector<peer_slot>> by_block_;
  std::size_t total_ = 0;
};

} // namespace actorrent
