#include "actors/dht_routing_table.hpp"

#include <algorithm>
#include <cassert>
#include <random>

namespace actorrent::dht {

int common_prefix_bits(const node_id& a, const node_id& b) {
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<std::uint8_t>(a[i] ^ b[i]);
    if (x == 0)
      continue;
    int bits = static_cast<int>(i) * 8;
    while ((x & 0x80) == 0) {
      ++bits;
      x = static_cast<std::uint8_t>(x << 1);
    }
    return bits;
  }
  return 160;
}

bool closer(const node_id& target, const node_id& a, const node_id& b) {
  for (std::size_t i = 0; i < target.size(); ++i) {
    auto da = static_cast<std::uint8_t>(a[i] ^ target[i]);
    auto db = static_cast<std::uint8_t>(b[i] ^ target[i]);
    if (da != db)
      return da < db;
  }
  return false;
}

node_id random_node_id() {
  std::random_device rd;
  node_id id;
  for (auto& b : id)
    b = static_cast<std::uint8_t>(rd());
  return id;
}

routing_table::routing_table(const node_id& self, std::size_t k) : self_(self), k_(k) {
  buckets_.emplace_back();
}

std::size_t routing_table::bucket_index(const node_id& id) const {
  auto cpl = static_cast<std::size_t>(common_prefix_bits(self_, id));
  return std::min(cpl, buckets_.size() - 1);
}

void routing_table::split_last() {
  // The last bucket holds every id sharing >= (size-1) bits with ours; the new last one takes
  // those sharing more.
  auto old_index = buckets_.size() - 1;
  buckets_.emplace_back();
  auto& from = buckets_[old_index];
  auto& to = buckets_.back();
  auto move_closer = [&](std::vector<node_entry>& src, std::vector<node_entry>& dst) {
    auto it = std::stable_partition(src.begin(), src.end(), [&](const node_entry& e) {
      return static_cast<std::size_t>(common_prefix_bits(self_, e.info.id)) == old_index;
    });
    dst.insert(dst.end(), it, src.end());
    src.erase(it, src.end());
  };
  move_closer(from.live, to.live);
  move_closer(from.replacements, to.replacements);
  // A split can leave room in the old bucket: promote its replacements.
  while (from.live.size() < k_ && !from.replacements.empty()) {
    from.live.push_back(from.replacements.back());
    from.replacements.pop_back();
  }
  while (to.live.size() > k_) {
    to.replacements.push_back(to.live.back());
    to.live.pop_back();
  }
}

routing_table::add_result routing_table::heard_from(const node_info& n,
                                                    clock_type::time_point now, bool answered) {
  add_result res;
  if (n.id == self_ || n.ep.port == 0)
    return res;
  auto& b = buckets_[bucket_index(n.id)];
  if (answered)
    b.changed = std::max(b.changed, now);
  for (auto& e : b.live) {
    if (e.info.id != n.id)
      continue;
    // An id that shows up from another address is not taken over (a node must not be able to
    // redirect another's entry), unless the entry never answered or is failing and the
    // newcomer answered: else a claim from a spoofed address would lock the real node out.
    if (e.info.ep != n.ep) {
      if (!answered || (e.answered && e.failures == 0))
        return res;
      e = node_entry{n, now, 0, true};
      res.what = outcome::updated;
      return res;
    }
    e.last_seen = now;
    if (answered) {
      e.answered = true;
      e.failures = 0;
    }
    res.what = outcome::updated;
    return res;
  }
  node_entry fresh{n, now, 0, answered};
  // One entry per address: a node that restarted with a new id takes its old entry over
  // once it has answered us; a mere query under a new id changes nothing.
  for (auto& e : b.live)
    if (e.info.ep == n.ep) {
      if (!answered)
        return res;
      e = fresh;
      res.what = outcome::updated;
      return res;
    }
  // A node that only queried us is not vouched for: it waits among the replacements and is
  // pinged; it enters the bucket (and is handed out) once it has answered.
  if (!answered) {
    auto& rep = b.replacements;
    if (std::any_of(rep.begin(), rep.end(), [&](const node_entry& e) { return e.info.ep == n.ep; }))
      return res;
    if (rep.size() >= k_)
      rep.erase(rep.begin());
    rep.push_back(fresh);
    res.what = outcome::cached;
    res.to_ping = n;
    return res;
  }
  // One node per IP in a bucket, so that one host cannot fill it with ports (loopback is
  // exempt: tests run many nodes on 127.0.0.1, and it cannot be reached from outside).
  if (n.ep.ip[0] != 127)
    for (auto& e : b.live)
      if (e.info.ep.ip == n.ep.ip)
        return res;
  if (b.live.size() < k_) {
    b.live.push_back(fresh);
    res.what = outcome::added;
    return res;
  }
  // Full. Only the bucket whose range holds our own id is split (and not past 160 bits).
  if (&b == &buckets_.back() && buckets_.size() < 160) {
    split_last();
    return heard_from(n, now, answered);
  }
  // A node that failed replaces at once when the newcomer has answered us.
  for (auto& e : b.live)
    if (e.failures >= 2 && answered) {
      e = fresh;
      res.what = outcome::added;
      return res;
    }
  auto& rep = b.replacements;
  rep.erase(std::remove_if(rep.begin(), rep.end(),
                           [&](const node_entry& e) { return e.info.id == n.id; }),
            rep.end());
  if (rep.size() >= k_)
    rep.erase(rep.begin());
  rep.push_back(fresh);
  res.what = outcome::cached;
  // Ping the most questionable node: if it fails, the replacement takes its place.
  const node_entry* worst = nullptr;
  for (auto& e : b.live)
    if (e.questionable(now) && (!worst || e.failures > worst->failures ||
                                (e.failures == worst->failures && e.last_seen < worst->last_seen)))
      worst = &e;
  if (worst)
    res.to_ping = worst->info;
  return res;
}

void routing_table::failed(const node_id& id) {
  auto& b = buckets_[bucket_index(id)];
  auto it = std::find_if(b.live.begin(), b.live.end(),
                         [&](const node_entry& e) { return e.info.id == id; });
  if (it == b.live.end()) {
    b.replacements.erase(std::remove_if(b.replacements.begin(), b.replacements.end(),
                                        [&](const node_entry& e) { return e.info.id == id; }),
                         b.replacements.end());
    return;
  }
  ++it->failures;
  // The newest replacement that answered us takes the place (one that only queried us must
  // answer a ping first).
  auto rep = std::find_if(b.replacements.rbegin(), b.replacements.rend(),
                          [](const node_entry& e) { return e.answered; });
  if (it->failures >= 2 && rep != b.replacements.rend()) {
    *it = *rep;
    b.replacements.erase(std::next(rep).base());
  } else if (it->failures >= 5) {
    b.live.erase(it);
  }
}

std::vector<node_info> routing_table::closest(const node_id& target, std::size_t count) const {
  std::vector<const node_entry*> good, rest;
  auto now = clock_type::now();
  // Only nodes that answered us and have not failed since are handed out (good ones first):
  // a node that merely queried us could name any address, a reflector for its victim.
  for (auto& b : buckets_)
    for (auto& e : b.live)
      if (e.answered && e.failures == 0)
        (!e.questionable(now) ? good : rest).push_back(&e);
  auto by_distance = [&](const node_entry* a, const node_entry* b) {
    return closer(target, a->info.id, b->info.id);
  };
  std::sort(good.begin(), good.end(), by_distance);
  std::sort(rest.begin(), rest.end(), by_distance);
  std::vector<node_info> out;
  for (auto* e : good) {
    if (out.size() == count)
      break;
    out.push_back(e->info);
  }
  for (auto* e : rest) {
    if (out.size() == count)
      break;
    out.push_back(e->info);
  }
  return out;
}

std::optional<node_info> routing_table::stale_node(clock_type::time_point now) {
  node_entry* oldest = nullptr;
  for (auto& b : buckets_)
    for (auto& e : b.live)
      if (now - e.last_seen > node_good_for && now - e.last_pinged > std::chrono::minutes(1) &&
          (!oldest || e.last_seen < oldest->last_seen))
        oldest = &e;
  if (!oldest)
    return std::nullopt;
  // Not again before its answer or failure is in: the next call picks another. last_seen is
  // left alone, so the node stays questionable (not served as good) until it answers.
  oldest->last_pinged = now;
  return oldest->info;
}

std::optional<node_id> routing_table::refresh_target(clock_type::time_point now) {
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    auto& b = buckets_[i];
    if (b.live.empty() || now - b.changed < node_good_for)
      continue;
    b.changed = now;
    // Shares exactly i leading bits with our id (the last bucket: at least i).
    auto id = random_node_id();
    for (std::size_t bit = 0; bit <= i && bit < 160; ++bit) {
      auto byte = bit / 8;
      auto mask = static_cast<std::uint8_t>(0x80 >> (bit % 8));
      bool want = (self_[byte] & mask) != 0;
      if (bit == i && i + 1 < buckets_.size())
        want = !want;
      id[byte] = static_cast<std::uint8_t>(want ? (id[byte] | mask) : (id[byte] & ~mask));
    }
    return id;
  }
  return std::nullopt;
}

bool routing_table::contains(const node_id& id) const {
  auto& b = buckets_[bucket_index(id)];
  return std::any_of(b.live.begin(), b.live.end(),
                     [&](const node_entry& e) { return e.info.id == id; });
}

std::size_t routing_table::size() const {
  std::size_t n = 0;
  for (auto& b : buckets_)
    n += b.live.size();
  return n;
}

std::size_t routing_table::replacement_count() const {
  std::size_t n = 0;
  for (auto& b : buckets_)
    n += b.replacements.size();
  return n;
}

std::vector<node_info> routing_table::all() const {
  std::vector<node_info> out;
  for (auto& b : buckets_)
    for (auto& e : b.live)
      out.push_back(e.info);
  return out;
}

std::vector<node_info> routing_table::confirmed() const {
  std::vector<node_info> out;
  for (auto& b : buckets_)
    for (auto& e : b.live)
      if (e.answered && e.failures == 0)
        out.push_back(e.info);
  return out;
}

} // namespace actorrent::dht
