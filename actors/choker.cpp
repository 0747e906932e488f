#include "actors/choker.hpp"

#include <algorithm>
#include <functional>
#include <utility>

namespace actorrent {

std::vector<peer_slot> choker::run(std::vector<candidate> candidates, bool seeding,
                                   std::uint32_t round, bool optimistic_present) {
  // Highest rate first; among equal rates the higher slot (the newer connection) first.
  std::vector<std::pair<std::uint64_t, peer_slot>> ranked;
  ranked.reserve(candidates.size());
  for (auto& c : candidates)
    ranked.emplace_back(seeding ? c.uploaded : c.downloaded, c.slot);
  std::sort(ranked.begin(), ranked.end(), std::greater<>());
  std::vector<peer_slot> unchoke;
  for (std::size_t i = 0; i < ranked.size() && i < slots_; ++i)
    unchoke.push_back(ranked[i].second);
  if (round % optimistic_every_ == 0 || !optimistic_present) {
    std::vector<peer_slot> others;
    for (std::size_t i = slots_; i < ranked.size(); ++i)
      others.push_back(ranked[i].second);
    // A counter of rotations, not the round: with the round, a multiple of
    // optimistic_every, the same peer came back whenever the number of others divided it.
    optimistic_ = others.empty() ? no_peer : others[rotations_++ % others.size()];
  }
  if (optimistic_ != no_peer &&
      std::find(unchoke.begin(), unchoke.end(), optimistic_) == unchoke.end())
    unchoke.push_back(optimistic_);
  return unchoke;
}

} // namespace actorrent
