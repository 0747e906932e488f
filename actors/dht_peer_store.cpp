#include "actors/dht_peer_store.hpp"

#include <algorithm>

namespace actorrent::dht {

bool peer_store::announce(const info_hash& hash, const krpc::udp_endpoint& peer,
                          clock_type::time_point now) {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) {
    if (by_hash_.size() >= lim_.hashes) {
      // A full expiry walks every entry: at most once a second, so that a stream of announces
      // for new hashes cannot keep the actor busy.
      if (now - last_expire_ >= std::chrono::seconds(1)) {
        last_expire_ = now;
        expire(now);
      }
      // Still full: the hash announced least recently goes, so that refreshing the hashes
      // already stored cannot lock new ones out.
      if (by_hash_.size() >= lim_.hashes) {
        auto oldest = by_hash_.begin();
        for (auto h = by_hash_.begin(); h != by_hash_.end(); ++h)
          if (h->second.back().at < oldest->second.back().at)
            oldest = h;
        by_hash_.erase(oldest);
      }
    }
    it = by_hash_.emplace(hash, std::vector<entry>{}).first;
  }
  auto& v = it->second;
  // One entry per IP (a host announcing many ports would take every slot of the hash), except
  // on loopback, where tests run several peers.
  auto same = std::find_if(v.begin(), v.end(), [&](const entry& e) {
    return peer.ip[0] == 127 ? e.ep == peer : e.ep.ip == peer.ip;
  });
  if (same != v.end())
    v.erase(same);
  else if (v.size() >= lim_.per_hash)
    v.erase(v.begin()); // the oldest: entries are kept in announce order
  v.push_back(entry{peer, now});
  return true;
}

std::vector<krpc::udp_endpoint> peer_store::peers(const info_hash& hash, std::size_t max,
                                                  clock_type::time_point now) const {
  std::vector<krpc::udp_endpoint> out;
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end())
    return out;
  for (auto e = it->second.rbegin(); e != it->second.rend() && out.size() < max; ++e)
    if (now - e->at <= lim_.ttl)
      out.push_back(e->ep);
  return out;
}

void peer_store::expire(clock_type::time_point now) {
  for (auto it = by_hash_.begin(); it != by_hash_.end();) {
    auto& v = it->second;
    v.erase(std::remove_if(v.begin(), v.end(),
                           [&](const entry& e) { return now - e.at > lim_.ttl; }),
            v.end());
    it = v.empty() ? by_hash_.erase(it) : std::next(it);
  }
}

std::size_t peer_store::peer_count() const {
  std::size_t n = 0;
  for (auto& [h, v] : by_hash_)
    n += v.size();
  return n;
}

} // namespace actorrent::dht
