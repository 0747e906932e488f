#include "actors/request_record.hpp"

#include <algorithm>

namespace actorrent {

peer_requests& request_record::add_peer(peer_slot peer, std::uint32_t max_pipeline) {
  return peers_.try_emplace(peer, max_pipeline).first->second;
}

std::vector<block_ref> request_record::remove_peer(peer_slot peer) {
  auto out = take_all(peer);
  peers_.erase(peer);
  return out;
}

peer_requests* request_record::find(peer_slot peer) {
  auto it = peers_.find(peer);
  return it == peers_.end() ? nullptr : &it->second;
}

const peer_requests* request_record::find(peer_slot peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? nullptr : &it->second;
}

bool request_record::add(peer_slot peer, block_ref b, clock::time_point now) {
  auto& r = peers_.at(peer);
  if (r.contains(b)) {
    r.add(b, now); // re-timed: still one request
    return true;
  }
  auto* q = by_block_.try_emplace(key(b), block_requesters{}).first;
  if (q->full())
    return false;
  q->slots_[q->count_++] = peer;
  r.add(b, now);
  ++total_;
  return true;
}

void request_record::unlink(peer_slot peer, block_ref b) {
  auto* q = by_block_.find(key(b));
  if (!q)
    return;
  if (q->count_ > 0 && q->slots_[0] == peer) {
    q->slots_[0] = q->slots_[1];
  } else if (!(q->count_ > 1 && q->slots_[1] == peer)) {
    return;
  }
  q->slots_[1] = no_peer;
  --q->count_;
  --total_;
  if (q->count_ == 0)
    by_block_.erase(key(b));
}

bool request_record::on_received(peer_slot peer, block_ref b, clock::time_point now) {
  auto* r = find(peer);
  if (!r || !r->on_received(b, now))
    return false;
  unlink(peer, b);
  return true;
}

bool request_record::remove(peer_slot peer, block_ref b) {
  auto* r = find(peer);
  if (!r || !r->remove(b))
    return false;
  unlink(peer, b);
  return true;
}

std::vector<block_ref> request_record::take_all(peer_slot peer) {
  auto* r = find(peer);
  if (!r)
    return {};
  auto out = r->take_all();
  for (auto b : out)
    unlink(peer, b);
  return out;
}

std::vector<block_ref> request_record::take_timed_out(peer_slot peer, clock::time_point now) {
  auto* r = find(peer);
  if (!r)
    return {};
  auto out = r->take_timed_out(now);
  for (auto b : out)
    unlink(peer, b);
  return out;
}

std::size_t request_record::count(peer_slot peer) const {
  auto* r = find(peer);
  return r ? r->size() : 0;
}

block_requesters request_record::requesters(block_ref b) const {
  auto* q = by_block_.find(key(b));
  return q ? *q : block_requesters{};
}

bool request_record::requested(peer_slot peer, block_ref b) const {
  auto* r = find(peer);
  return r && r->contains(b);
}

bool request_record::consistent() const {
  std::size_t n = 0;
  for (auto& [peer, r] : peers_) {
    bool ok = true;
    r.for_each([&](block_ref b, clock::time_point) {
      auto v = requesters(b);
      ok = ok && std::count(v.begin(), v.end(), peer) == 1;
    });
    if (!ok)
      return false;
    n += r.size();
  }
  std::size_t m = 0;
  bool ok = true;
  by_block_.for_each([&](std::uint64_t, const block_requesters& v) {
    ok = ok && !v.empty() && (v.size() < 2 || v.slots_[0] != v.slots_[1]);
    m += v.size();
  });
  return ok && n == total_ && m == total_;
}

} // namespace actorrent
