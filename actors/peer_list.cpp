#include "actors/peer_list.hpp"

#include <algorithm>

namespace actorrent {

bool peer_list::add(const endpoint& ep) {
  // A 20,000-peer tracker reply costs 2,000 lookups, not 40 million comparisons.
  if (ep.port == 0 || known_.size() >= max_known_)
    return false;
  if (!known_index_.insert(ep.to_string()).second)
    return false;
  known_.push_back(known_peer{ep});
  return true;
}

std::vector<std::size_t> peer_list::take_dials(clock::time_point now, std::size_t limit,
                                               std::uint32_t max_per_ip) {
  std::vector<std::size_t> out;
  std::unordered_map<std::string, std::uint32_t> chosen; // dials to each address in this call
  for (std::size_t i = 0; i < known_.size() && out.size() < limit; ++i) {
    auto& k = known_[i];
    if (k.st != state::idle || k.next_try > now)
      continue;
    auto c = chosen.find(k.ep.host);
    if (connections_from(k.ep.host) + (c == chosen.end() ? 0 : c->second) >= max_per_ip)
      continue;
    ++chosen[k.ep.host];
    k.st = state::connecting;
    ++k.attempts;
    out.push_back(i);
  }
  return out;
}

void peer_list::on_connected(std::size_t i) {
  if (known_[i].st != state::banned)
    known_[i].st = state::connected;
}

void peer_list::on_closed(std::size_t i, bool was_active, bool ban, clock::time_point now) {
  auto& k = known_[i];
  if (k.st == state::banned)
    return; // banned meanwhile (smart ban named an earlier connection to it): stays banned
  if (ban) {
    k.st = state::banned;
    return;
  }
  k.st = state::idle;
  if (was_active)
    k.attempts = 0;
  auto backoff = was_active ? 5 : std::min(60, 1 << std::min<std::uint32_t>(k.attempts, 6));
  k.next_try = now + std::chrono::seconds(backoff);
}

void peer_list::release(std::size_t i, clock::time_point now) {
  auto& k = known_[i];
  if (k.st == state::banned)
    return;
  if (k.st == state::connected)
    k.attempts = 0;
  k.st = state::idle;
  k.next_try = now;
}

void peer_list::reset_backoff(clock::time_point now) {
  for (auto& k : known_)
    if (k.st == state::idle)
      k.next_try = std::min(k.next_try, now);
}

void peer_list::connection_closed(const std::string& host) {
  if (auto it = per_ip_.find(host); it != per_ip_.end() && --it->second == 0)
    per_ip_.erase(it);
}

std::uint32_t peer_list::connections_from(const std::string& host) const {
  auto it = per_ip_.find(host);
  return it == per_ip_.end() ? 0 : it->second;
}

void peer_list::remember_departed(peer_slot slot, departed_peer p) {
  if (!departed_.emplace(slot, std::move(p)).second)
    return;
  departed_order_.push_back(slot);
  while (departed_order_.size() > max_departed_) {
    departed_.erase(departed_order_.front());
    departed_order_.pop_front();
  }
}

const peer_list::departed_peer* peer_list::departed(peer_slot slot) const {
  auto it = departed_.find(slot);
  return it == departed_.end() ? nullptr : &it->second;
}

std::optional<peer_list::departed_peer> peer_list::take_departed(peer_slot slot) {
  auto it = departed_.find(slot);
  if (it == departed_.end())
    return std::nullopt;
  auto p = std::move(it->second);
  departed_.erase(it);
  return p;
}

} // namespace actorrent
