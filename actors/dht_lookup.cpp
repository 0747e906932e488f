#include "actors/dht_lookup.hpp"

#include <algorithm>

#include "actors/dht_routing_table.hpp"

namespace actorrent::dht {

void lookup::sort_and_trim() {
  std::stable_sort(candidates_.begin(), candidates_.end(),
                   [&](const candidate& a, const candidate& b) {
                     if (a.id_known != b.id_known)
                       return !a.id_known;
                     return closer(target_, a.node.id, b.node.id);
                   });
  // Forget the farthest fresh or failed candidates; never one in flight or one that answered.
  while (candidates_.size() > p_.max_candidates) {
    auto it = std::find_if(candidates_.rbegin(), candidates_.rend(), [](const candidate& c) {
      return c.st == status::fresh || c.st == status::failed;
    });
    if (it == candidates_.rend())
      break;
    candidates_.erase(std::next(it).base());
  }
}

std::size_t lookup::in_flight() const {
  return static_cast<std::size_t>(std::count_if(
    candidates_.begin(), candidates_.end(),
    [](const candidate& c) { return c.st == status::in_flight; }));
}

namespace {

/// Addresses no node can have: this network (0/8), multicast and reserved (224/3, which holds
/// the broadcast address).
bool unroutable(const krpc::udp_endpoint& ep) { return ep.ip[0] == 0 || ep.ip[0] >= 224; }

} // namespace

void lookup::add(const krpc::node_info& n, bool id_known) {
  if (n.ep.port == 0 || unroutable(n.ep) || (p_.self_ep && n.ep == *p_.self_ep))
    return;
  bool loopback = n.ep.ip[0] == 127;
  for (auto& c : candidates_)
    if (c.node.ep == n.ep || (!loopback && c.node.ep.ip == n.ep.ip) ||
        (id_known && c.id_known && c.node.id == n.id))
      return;
  candidates_.push_back(candidate{n, id_known, status::fresh, {}});
  sort_and_trim();
}

std::vector<krpc::node_info> lookup::next() {
  std::vector<krpc::node_info> out;
  auto flying = in_flight();
  std::size_t answered = 0;
  for (auto& c : candidates_) {
    if (flying >= p_.alpha || sent_ >= p_.max_queries)
      break;
    if (c.st == status::answered && c.id_known && ++answered >= p_.k)
      break; // the K closest have answered: nothing farther is worth asking
    if (c.st != status::fresh)
      continue;
    c.st = status::in_flight;
    ++flying;
    ++sent_;
    out.push_back(c.node);
  }
  return out;
}

bool lookup::on_response(const krpc::udp_endpoint& from, const krpc::response& r) {
  auto it = std::find_if(candidates_.begin(), candidates_.end(), [&](const candidate& c) {
    return c.node.ep == from && c.st == status::in_flight;
  });
  if (it == candidates_.end())
    return false;
  it->st = status::answered;
  it->token = r.token;
  it->node.id = r.id;
  it->id_known = true;
  // The same id may already be listed under another address: keep the one that answered.
  for (auto other = candidates_.begin(); other != candidates_.end(); ++other)
    if (other != it && other->id_known && other->node.id == r.id && other->st != status::answered) {
      other->st = status::failed;
      other->node.ep.port = 0; // never asked
    }
  for (auto& n : r.nodes)
    add(n, true);
  sort_and_trim();
  return true;
}

void lookup::on_failure(const krpc::udp_endpoint& from) {
  for (auto& c : candidates_)
    if (c.node.ep == from && c.st == status::in_flight)
      c.st = status::failed;
}

bool lookup::done() const {
  if (in_flight() > 0)
    return false;
  if (sent_ >= p_.max_queries)
    return true;
  std::size_t answered = 0;
  for (auto& c : candidates_) {
    if (c.st == status::answered && c.id_known && ++answered >= p_.k)
      return true;
    if (c.st == status::fresh)
      return false;
  }
  return true;
}

std::vector<lookup::answered_node> lookup::closest_answered() const {
  std::vector<answered_node> out;
  for (auto& c : candidates_) {
    if (out.size() == p_.k)
      break;
    if (c.st == status::answered && c.id_known)
      out.push_back(answered_node{c.node, c.token});
  }
  return out;
}

} // namespace actorrent::dht
