#include "cluster/planner.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <functional>
#include <queue>
#include <utility>

namespace actorrent::cluster {

namespace {

// The `k` smallest pieces of `from` (all of them when it has fewer).
Roaring lowest(const Roaring& from, std::uint64_t k) {
  if (k == 0)
    return Roaring{};
  if (k >= from.cardinality())
    return from;
  std::uint32_t last = 0;
  from.select(static_cast<std::uint32_t>(k - 1), &last);
  Roaring range;
  range.addRange(0, std::uint64_t{last} + 1);
  return from & range;
}

// The pieces of `from` above its `keep` smallest.
Roaring above_lowest(const Roaring& from, std::uint64_t keep) {
  if (keep >= from.cardinality())
    return Roaring{};
  if (keep == 0)
    return from;
  std::uint32_t first = 0;
  from.select(static_cast<std::uint32_t>(keep), &first);
  Roaring range;
  range.addRange(first, std::uint64_t{from.maximum()} + 1);
  return from & range;
}

} // namespace

planner::planner(planner_config cfg) : cfg_(cfg) {
  if (cfg_.piece_count > 0)
    pool_.addRange(0, cfg_.piece_count);
  if (cfg_.piece_length == 0)
    cfg_.piece_length = 1;
  check_invariant();
}

void planner::restore(const Roaring& verified, std::uint64_t last_epoch) {
  Roaring all;
  if (cfg_.piece_count > 0)
    all.addRange(0, cfg_.piece_count);
  const Roaring done = verified & all;
  verified_ |= done;
  pool_ -= done;
  for (auto& [id, s] : workers_) {
    if (s.shard.intersect(done)) {
      s.shard -= done;
      s.changed = true;
    }
    for (auto& [e, pieces] : s.in_transit)
      pieces -= done;
    s.in_transit.erase(std::remove_if(s.in_transit.begin(), s.in_transit.end(),
                                      [](const auto& t) { return t.second.isEmpty(); }),
                       s.in_transit.end());
  }
  epoch_ = std::max(epoch_, last_epoch);
  check_invariant();
}

void planner::add_worker(worker_id w, std::uint64_t rate_hint) {
  workers_[w].rate_hint = rate_hint;
  check_invariant();
}

void planner::remove_worker(worker_id w) {
  auto i = workers_.find(w);
  if (i == workers_.end())
    return;
  // Its lease has expired: it can no longer write, so nothing it held is in doubt.
  pool_ |= i->second.shard;
  for (auto& [e, pieces] : i->second.in_transit)
    pool_ |= pieces;
  refill_ = refill_ || !i->second.shard.isEmpty() || !i->second.in_transit.empty();
  workers_.erase(i);
  check_invariant();
}

bool planner::has_worker(worker_id w) const {
  return workers_.count(w) != 0;
}

Roaring planner::on_verified(worker_id w, std::uint64_t epoch, const Roaring& pieces) {
  auto i = workers_.find(w);
  if (i == workers_.end())
    return Roaring{};
  auto& s = i->second;
  // A worker cannot have written under an assignment it was never sent.
  if (epoch > s.epoch)
    return Roaring{};
  Roaring held = s.shard;
  for (auto& [e, p] : s.in_transit)
    held |= p;
  Roaring accepted = pieces & held;
  accepted -= verified_;
  if (accepted.isEmpty())
    return accepted;
  s.shard -= accepted;
  for (auto& [e, p] : s.in_transit)
    p -= accepted;
  s.in_transit.erase(std::remove_if(s.in_transit.begin(), s.in_transit.end(),
                                    [](const auto& t) { return t.second.isEmpty(); }),
                     s.in_transit.end());
  verified_ |= accepted;
  check_invariant();
  return accepted;
}

void planner::on_ack(worker_id w, std::uint64_t epoch) {
  auto i = workers_.find(w);
  if (i == workers_.end())
    return;
  auto& s = i->second;
  // An ack of an epoch never sent to `w` would release pieces it may still be writing.
  if (epoch > s.epoch)
    return;
  s.acked = std::max(s.acked, epoch);
  for (auto& t : s.in_transit)
    if (t.first <= s.acked)
      pool_ |= t.second;
  // (not a hand-written compaction: Roaring's move assignment empties a bitmap moved onto
  // itself)
  s.in_transit.erase(std::remove_if(s.in_transit.begin(), s.in_transit.end(),
                                    [&](const auto& t) { return t.first <= s.acked; }),
                     s.in_transit.end());
  check_invariant();
}

void planner::on_rate(worker_id w, double bytes_per_s) {
  auto i = workers_.find(w);
  if (i == workers_.end() || !std::isfinite(bytes_per_s) || bytes_per_s < 0)
    return;
  // A worker without a shard had nothing to fetch: its rate says nothing about what it can do
  // (a worker that reported 0 before its first assignment would get no pieces at all).
  if (i->second.shard.isEmpty())
    return;
  // A measured 0 with work in hand (no peer yet, or stalled) is slow, not unknown: keep it above
  // 0 so that the hint no longer stands in for it.
  i->second.rate = std::max(bytes_per_s, 1.0);
}

double planner::rate_of(const worker_state& s) const {
  if (s.rate > 0)
    return s.rate;
  if (s.rate_hint > 0)
    return static_cast<double>(s.rate_hint);
  return static_cast<double>(std::max<std::uint64_t>(cfg_.unknown_rate, 1));
}

std::uint32_t planner::target_of(const worker_state& s, double total_rate,
                                 std::uint64_t open) const {
  const double rate = rate_of(s);
  // window_s seconds of work at its rate ...
  const double window = std::ceil(cfg_.window_s * rate / static_cast<double>(cfg_.piece_length));
  // ... but no more than its rate's share of what is left, so that near the end the workers
  // finish together instead of the first one holding everything.
  const double fair = std::ceil(static_cast<double>(open) * rate / std::max(total_rate, 1.0));
  const double t = std::max(std::min(window, fair), static_cast<double>(cfg_.min_pieces));
  return static_cast<std::uint32_t>(std::min(t, static_cast<double>(cfg_.piece_count)));
}

std::uint64_t planner::bytes_of(const Roaring& pieces) const {
  std::uint64_t bytes = pieces.cardinality() * cfg_.piece_length;
  const std::uint32_t last = cfg_.piece_count - 1;
  if (cfg_.piece_count > 0 && pieces.contains(last) && cfg_.total_size > 0) {
    const std::uint64_t last_len = cfg_.total_size - std::uint64_t{last} * cfg_.piece_length;
    if (last_len < cfg_.piece_length)
      bytes -= cfg_.piece_length - last_len;
  }
  return bytes;
}

std::vector<assignment> planner::rebalance(clock::time_point now) {
  std::vector<assignment> out;
  if (workers_.empty())
    return out;
  double total_rate = 0;
  std::uint64_t open = pool_.cardinality();
  for (auto& [id, s] : workers_) {
    if (!s.seen) {
      s.seen = true;
      s.since = now;
    }
    total_rate += rate_of(s);
    open += s.shard.cardinality();
  }

  // 1. Top up from the pool, in index order. A shard is topped up once it has run down to
  //    half its target, so that a report does not cost an assignment each time.
  if (!pool_.isEmpty()) {
    std::vector<std::pair<worker_state*, std::uint64_t>> want;
    std::uint64_t demand = 0;
    for (auto& [id, s] : workers_) {
      const std::uint64_t card = s.shard.cardinality();
      const std::uint64_t target = target_of(s, total_rate, open);
      if (card < target && (refill_ || 2 * card <= target || card < cfg_.min_pieces)) {
        want.emplace_back(&s, target - card);
        demand += target - card;
      }
    }
    const std::uint64_t supply = pool_.cardinality();
    if (demand > supply) {
      // Not enough for everyone: each piece goes to the worker that would finish its shard
      // soonest with it, so that all finish at about the same time (a slow worker is not
      // handed back the pieces just stolen from it).
      using slot = std::pair<double, std::size_t>; // finish time with one more piece, index
      std::priority_queue<slot, std::vector<slot>, std::greater<slot>> soonest;
      std::vector<std::uint64_t> give(want.size(), 0);
      auto finish = [&](std::size_t k) {
        const auto* st = want[k].first;
        return static_cast<double>(st->shard.cardinality() + give[k] + 1) / rate_of(*st);
      };
      for (std::size_t k = 0; k < want.size(); ++k)
        soonest.emplace(finish(k), k);
      for (std::uint64_t left = supply; left > 0 && !soonest.empty(); --left) {
        const auto k = soonest.top().second;
        soonest.pop();
        if (++give[k] < want[k].second)
          soonest.emplace(finish(k), k);
      }
      for (std::size_t k = 0; k < want.size(); ++k)
        want[k].second = give[k];
    }
    for (auto& [s, n] : want) {
      if (n == 0)
        continue;
      Roaring taken = lowest(pool_, n);
      pool_ -= taken;
      s->shard |= taken;
      s->changed = true;
    }
    refill_ = false;
  }

  // 2. Steal near the end: the pool is empty and a worker is idle, or will be within
  //    low_water_s, while another would need more than steal_after_s to finish its shard.
  //    The pieces taken go in transit, not to the idle worker: only once their owner has
  //    acknowledged losing them (its writes into them are fenced off) do they return to the
  //    pool for the next top-up.
  std::map<worker_id, Roaring> dropped;
  if (pool_.isEmpty()) {
    auto eta_of = [&](const worker_state& s) {
      return static_cast<double>(bytes_of(s.shard)) / rate_of(s);
    };
    auto hungry = [&](const worker_state& s) {
      return s.shard.isEmpty() || eta_of(s) <= cfg_.low_water_s;
    };
    double idle_rate = 0;
    std::uint64_t idle_demand = 0;
    std::uint64_t pending = 0;
    for (auto& [id, s] : workers_) {
      for (auto& [e, p] : s.in_transit)
        pending += p.cardinality();
      if (hungry(s)) {
        idle_rate += rate_of(s);
        const std::uint64_t target = target_of(s, total_rate, open);
        const std::uint64_t card = s.shard.cardinality();
        idle_demand += target > card ? target - card : 1;
      }
    }
    if (idle_demand > pending) {
      std::uint64_t room = idle_demand - pending;
      std::vector<std::pair<double, worker_id>> slow;
      for (auto& [id, s] : workers_) {
        if (hungry(s) || !s.in_transit.empty() || s.acked != s.epoch)
          continue; // idle, or not yet settled in its current shard
        if (now - s.since < std::chrono::duration<double>(cfg_.steal_after_s))
          continue; // its rate is not measured yet
        const double eta = eta_of(s);
        if (eta > cfg_.steal_after_s)
          slow.emplace_back(eta, id);
      }
      std::sort(slow.begin(), slow.end(), [](auto& a, auto& b) { return a.first > b.first; });
      for (auto& [eta, id] : slow) {
        if (room == 0)
          break;
        auto& s = workers_[id];
        const double r = rate_of(s);
        const std::uint64_t card = s.shard.cardinality();
        // Keep what it finishes in the time the idle workers need for the rest.
        auto keep = static_cast<std::uint64_t>(std::floor(card * r / (r + idle_rate)));
        std::uint64_t take = std::min(card - keep, room);
        if (take == 0)
          continue;
        Roaring taken = above_lowest(s.shard, card - take);
        s.shard -= taken;
        s.changed = true;
        room -= take;
        dropped[id] = std::move(taken);
      }
    }
  }

  // 3. Every changed shard goes out whole, under a fresh epoch.
  for (auto& [id, s] : workers_) {
    if (!s.changed)
      continue;
    s.changed = false;
    s.epoch = ++epoch_;
    auto d = dropped.find(id);
    if (d != dropped.end() && !d->second.isEmpty())
      s.in_transit.emplace_back(s.epoch, std::move(d->second));
    out.push_back(assignment{id, s.epoch, s.shard});
  }
  check_invariant();
  return out;
}

bool planner::complete() const noexcept {
  return verified_.cardinality() == cfg_.piece_count;
}

Roaring planner::shard_of(worker_id w) const {
  auto i = workers_.find(w);
  return i == workers_.end() ? Roaring{} : i->second.shard;
}

Roaring planner::in_transit() const {
  Roaring all;
  for (auto& [id, s] : workers_)
    for (auto& [e, p] : s.in_transit)
      all |= p;
  return all;
}

// Every piece in exactly one place: verified, the pool, one shard or one in-transit set.
void planner::check_invariant() const {
#ifndef NDEBUG
  std::uint64_t sum = verified_.cardinality() + pool_.cardinality();
  Roaring all = verified_ | pool_;
  for (auto& [id, s] : workers_) {
    sum += s.shard.cardinality();
    all |= s.shard;
    for (auto& [e, p] : s.in_transit) {
      sum += p.cardinality();
      all |= p;
    }
  }
  assert(sum == cfg_.piece_count);
  assert(all.cardinality() == cfg_.piece_count);
  assert(cfg_.piece_count == 0 || all.maximum() == cfg_.piece_count - 1);
#endif
}

} // namespace actorrent::cluster
