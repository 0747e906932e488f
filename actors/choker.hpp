// Who we upload to: every round the `slots` best interested peers by rate (what they gave us in
// the round while we download — reciprocation; what they took from us while we seed), plus one
// optimistic unchoke that rotates every `optimistic_every` rounds so that newcomers get a chance
// to prove themselves. Owned by the torrent actor; CAF-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "protocol/types.hpp"

namespace actorrent {

class choker {
public:
  struct candidate {
    peer_slot slot = no_peer;
    std::uint64_t downloaded = 0; // payload it sent us in this round
    std::uint64_t uploaded = 0;   // payload we sent it in this round
  };

  explicit choker(std::uint32_t slots, std::uint32_t optimistic_every = 3)
    : slots_(slots), optimistic_every_(optimistic_every) {}

  /// One round over the interested, connected, unbanned peers. `round` counts the rounds (the
  /// optimistic slot rotates when it is a multiple of optimistic_every, or when the optimistic
  /// peer is gone: `optimistic_present` false). Returns the peers to unchoke; all others are
  /// choked.
  std::vector<peer_slot> run(std::vector<candidate> candidates, bool seeding, std::uint32_t round,
                             bool optimistic_present);

  /// An interested peer may be unchoked at once, between rounds, while fewer than slots + 1
  /// peers are unchoked.
  bool has_free_slot(std::size_t unchoked) const noexcept { return unchoked < slots_ + 1; }

  peer_slot optimistic() const noexcept { return optimistic_; }
  std::uint32_t slots() const noexcept { return slots_; }

private:
  std::uint32_t slots_;
  std::uint32_t optimistic_every_;
  peer_slot optimistic_ = no_peer;
  std::uint64_t rotations_ = 0;
};

} // namespace actorrent
