#include "cluster/planner.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace actorrent::cluster;

namespace {

constexpr std::uint64_t kib = 1024;
constexpr std::uint64_t mib = 1024 * kib;

planner_config config(std::uint32_t pieces, std::uint64_t piece_length = 64 * kib) {
  planner_config c;
  c.piece_count = pieces;
  c.piece_length = piece_length;
  c.total_size = pieces * piece_length;
  return c;
}

Roaring range(std::uint32_t from, std::uint32_t to) {
  Roaring r;
  r.addRange(from, to);
  return r;
}

const assignment* find(const std::vector<assignment>& v, worker_id w) {
  for (auto& a : v)
    if (a.worker == w)
      return &a;
  return nullptr;
}

// Every piece in exactly one place (the planner's central invariant), seen from outside.
::testing::AssertionResult one_place(const planner& p, std::uint32_t n,
                                     const std::vector<worker_id>& workers) {
  std::uint64_t sum = p.verified().cardinality() + p.pool().cardinality();
  Roaring all = p.verified() | p.pool();
  const Roaring transit = p.in_transit();
  sum += transit.cardinality();
  all |= transit;
  for (auto w : workers) {
    const Roaring s = p.shard_of(w);
    sum += s.cardinality();
    all |= s;
  }
  if (sum != n || all.cardinality() != n || (n > 0 && all.maximum() != n - 1))
    return ::testing::AssertionFailure()
           << "pieces counted " << sum << " times over " << all.cardinality() << " distinct, of "
           << n << " (verified " << p.verified().cardinality() << ", pool "
           << p.pool().cardinality() << ", in transit " << transit.cardinality() << ")";
  return ::testing::AssertionSuccess();
}

} // namespace

TEST(cluster_planner, shards_are_sized_by_rate) {
  planner p(config(10000, 64 * kib));
  p.add_worker(1, 0);
  p.add_worker(2, 0);
  const auto t0 = clock::now();
  // Unknown rates: unknown_rate (4 MiB/s) each, 10 s of 64 KiB pieces = 640.
  auto first = p.rebalance(t0);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(find(first, 1)->pieces, range(0, 640));
  EXPECT_EQ(find(first, 2)->pieces, range(640, 1280));
  // Measured while they work; both finish their shards, and the next ones follow the rates.
  p.on_rate(1, 1.0 * mib);
  p.on_rate(2, 3.0 * mib);
  p.on_verified(1, find(first, 1)->epoch, range(0, 640));
  p.on_verified(2, find(first, 2)->epoch, range(640, 1280));
  auto out = p.rebalance(t0);
  ASSERT_EQ(out.size(), 2u);
  const auto slow = find(out, 1)->pieces.cardinality();
  const auto fast = find(out, 2)->pieces.cardinality();
  // 10 s at 1 MiB/s of 64 KiB pieces: 160; at 3 MiB/s: 480.
  EXPECT_EQ(slow, 160u);
  EXPECT_EQ(fast, 480u);
  // Runs in index order, disjoint.
  EXPECT_EQ(find(out, 1)->pieces, range(1280, 1440));
  EXPECT_EQ(find(out, 2)->pieces, range(1440, 1920));
  EXPECT_LT(find(out, 1)->epoch, find(out, 2)->epoch);
  EXPECT_TRUE(one_place(p, 10000, {1, 2}));
}

TEST(cluster_planner, declared_cap_sizes_the_first_shard) {
  planner p(config(10000, 64 * kib));
  p.add_worker(1, 2 * mib); // --download-limit 2M, not measured yet
  p.add_worker(2, 0);       // no cap: unknown_rate (4 MiB/s)
  auto out = p.rebalance(clock::now());
  EXPECT_EQ(find(out, 1)->pieces.cardinality(), 320u);
  EXPECT_EQ(find(out, 2)->pieces.cardinality(), 640u);
}

TEST(cluster_planner, small_torrent_is_split_by_rate_not_taken_by_the_first) {
  planner p(config(40, 1 * mib));
  p.add_worker(1, 1 * mib);
  p.add_worker(2, 1 * mib);
  p.add_worker(3, 2 * mib);
  auto out = p.rebalance(clock::now());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(find(out, 1)->pieces.cardinality(), 10u);
  EXPECT_EQ(find(out, 2)->pieces.cardinality(), 10u);
  EXPECT_EQ(find(out, 3)->pieces.cardinality(), 20u);
  EXPECT_TRUE(p.pool().isEmpty());
}

TEST(cluster_planner, tops_up_as_the_worker_verifies) {
  planner p(config(1000, 64 * kib));
  p.add_worker(1, 1 * mib); // target 160
  const auto t0 = clock::now();
  auto first = p.rebalance(t0);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].pieces, range(0, 160));
  p.on_ack(1, first[0].epoch);
  // A few verified: still above half its target, no new assignment.
  EXPECT_EQ(p.on_verified(1, first[0].epoch, range(0, 10)), range(0, 10));
  EXPECT_TRUE(p.rebalance(t0).empty());
  // Down to half: topped up with the next pieces in index order, under a fresh epoch.
  EXPECT_EQ(p.on_verified(1, first[0].epoch, range(10, 80)).cardinality(), 70u);
  auto second = p.rebalance(t0);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GT(second[0].epoch, first[0].epoch);
  EXPECT_EQ(second[0].pieces, range(80, 240));
  EXPECT_EQ(p.verified(), range(0, 80));
  EXPECT_TRUE(one_place(p, 1000, {1}));
}

TEST(cluster_planner, steals_from_a_slow_worker_only_after_its_ack) {
  auto c = config(100, 1 * mib);
  c.steal_after_s = 2.0;
  planner p(c);
  p.add_worker(1, 1 * mib); // slow
  p.add_worker(2, 9 * mib); // fast
  auto t = clock::now();
  auto out = p.rebalance(t);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(find(out, 1)->pieces, range(0, 10));
  EXPECT_EQ(find(out, 2)->pieces, range(10, 100));
  p.on_ack(1, find(out, 1)->epoch);
  p.on_ack(2, find(out, 2)->epoch);
  const auto e1 = find(out, 1)->epoch;
  // The fast one finishes; the slow one has 10 s of work left.
  p.on_verified(2, find(out, 2)->epoch, range(10, 100));
  // Not before steal_after_s since it was first seen (its rate is a guess until then).
  EXPECT_TRUE(p.rebalance(t + std::chrono::seconds(1)).empty());
  t += std::chrono::seconds(3);
  out = p.rebalance(t);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].worker, 1u);
  // The slow worker keeps what it finishes while the fast one does the rest: 10·1/(1+9) = 1.
  EXPECT_EQ(out[0].pieces, range(0, 1));
  EXPECT_EQ(p.in_transit(), range(1, 10));
  EXPECT_TRUE(p.pool().isEmpty());
  EXPECT_TRUE(one_place(p, 100, {1, 2}));
  // Until worker 1 acknowledges, the pieces stay in transit: nobody else may get them, and no
  // second steal happens meanwhile.
  EXPECT_TRUE(p.rebalance(t).empty());
  p.on_ack(1, e1); // an ack of the older epoch releases nothing
  EXPECT_EQ(p.in_transit(), range(1, 10));
  // Reported while in transit (written before the drop was applied): still accepted.
  EXPECT_EQ(p.on_verified(1, e1, range(9, 10)), range(9, 10));
  p.on_ack(1, out[0].epoch);
  EXPECT_TRUE(p.in_transit().isEmpty());
  EXPECT_EQ(p.pool(), range(1, 9));
  out = p.rebalance(t);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].worker, 2u);
  EXPECT_EQ(out[0].pieces, range(1, 9));
  EXPECT_TRUE(one_place(p, 100, {1, 2}));
}

TEST(cluster_planner, no_steal_from_a_worker_that_finishes_soon) {
  auto c = config(100, 1 * mib);
  planner p(c);
  p.add_worker(1, 8 * mib);
  p.add_worker(2, 92 * mib);
  auto t = clock::now();
  auto out = p.rebalance(t);
  p.on_ack(1, find(out, 1)->epoch);
  p.on_ack(2, find(out, 2)->epoch);
  p.on_verified(2, find(out, 2)->epoch, p.shard_of(2));
  // Worker 1: 8 pieces of 1 MiB at 8 MiB/s: 1 s < steal_after_s.
  EXPECT_TRUE(p.rebalance(t + std::chrono::seconds(10)).empty());
}

// A fast worker whose last pieces are in flight (shard below the low-water mark) gets stolen
// work before its shard is empty, so that its link does not idle through the tail.
TEST(cluster_planner, steals_for_a_worker_below_its_low_water_mark) {
  auto c = config(100, 1 * mib);
  c.steal_after_s = 2.0;
  c.low_water_s = 1.0;
  planner p(c);
  p.add_worker(1, 1 * mib); // slow
  p.add_worker(2, 9 * mib); // fast
  auto t = clock::now();
  auto out = p.rebalance(t);
  p.on_ack(1, find(out, 1)->epoch);
  p.on_ack(2, find(out, 2)->epoch);
  // The fast one is down to 8 pieces: 8 MiB at 9 MiB/s, under a second of work.
  p.on_verified(2, find(out, 2)->epoch, range(10, 92));
  ASSERT_EQ(p.shard_of(2).cardinality(), 8u);
  t += std::chrono::seconds(3);
  out = p.rebalance(t);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].worker, 1u);
  EXPECT_LT(out[0].pieces.cardinality(), 10u);
  EXPECT_FALSE(p.in_transit().isEmpty());
  EXPECT_TRUE(one_place(p, 100, {1, 2}));
  // With 3 pieces left on the fast worker it is still above water: nothing is stolen for a
  // worker with more than a second of work.
  planner q(c);
  q.add_worker(1, 1 * mib);
  q.add_worker(2, 9 * mib);
  auto t2 = clock::now();
  out = q.rebalance(t2);
  q.on_ack(1, find(out, 1)->epoch);
  q.on_ack(2, find(out, 2)->epoch);
  q.on_verified(2, find(out, 2)->epoch, range(10, 80)); // 20 pieces: 2.2 s of work
  EXPECT_TRUE(q.rebalance(t2 + std::chrono::seconds(3)).empty());
}

// A worker reports its rate with its first lease request, before it has any work: that 0 is
// no measure of it, and it still gets its share of the first assignment.
TEST(cluster_planner, a_rate_measured_without_work_is_ignored) {
  planner p(config(257, 256 * kib));
  p.add_worker(1, 4 * mib);
  p.add_worker(2, 4 * mib);
  p.add_worker(3, 4 * mib);
  p.on_rate(1, 0.0); // idle: ignored
  auto out = p.rebalance(clock::now());
  ASSERT_EQ(out.size(), 3u);
  for (worker_id w : {1u, 2u, 3u}) {
    EXPECT_GE(p.shard_of(w).cardinality(), 85u) << "worker " << w;
    EXPECT_LE(p.shard_of(w).cardinality(), 86u) << "worker " << w;
  }
  // With work in hand, a measured 0 is slow: its next top-up is small.
  for (auto& a : out)
    p.on_ack(a.worker, a.epoch);
  p.on_rate(1, 0.0);
  p.on_verified(2, find(out, 2)->epoch, p.shard_of(2));
  EXPECT_TRUE(one_place(p, 257, {1, 2, 3}));
}

TEST(cluster_planner, late_joiner_gets_work_by_stealing) {
  planner p(config(40, 1 * mib));
  p.add_worker(1, 4 * mib);
  p.add_worker(2, 4 * mib);
  auto t = clock::now();
  auto out = p.rebalance(t);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(p.pool().isEmpty()); // split between the two
  for (auto& a : out)
    p.on_ack(a.worker, a.epoch);
  p.add_worker(3, 4 * mib);
  EXPECT_TRUE(p.rebalance(t).empty()); // nothing in the pool; the others just started
  t += std::chrono::seconds(3);
  out = p.rebalance(t);
  ASSERT_EQ(out.size(), 2u); // both lose their highest pieces
  for (auto& a : out) {
    EXPECT_NE(a.worker, 3u);
    p.on_ack(a.worker, a.epoch);
  }
  out = p.rebalance(t);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].worker, 3u);
  // About a third of the work: each of the three finishes at about the same time.
  EXPECT_GE(out[0].pieces.cardinality(), 12u);
  EXPECT_LE(out[0].pieces.cardinality(), 14u);
  EXPECT_TRUE(one_place(p, 40, {1, 2, 3}));
}

TEST(cluster_planner, removal_returns_shard_and_in_transit_pieces) {
  planner p(config(100, 1 * mib));
  p.add_worker(1, 1 * mib);
  p.add_worker(2, 9 * mib);
  auto t = clock::now();
  auto out = p.rebalance(t);
  p.on_ack(1, find(out, 1)->epoch);
  p.on_ack(2, find(out, 2)->epoch);
  p.on_verified(2, find(out, 2)->epoch, range(10, 100));
  p.on_verified(1, find(out, 1)->epoch, range(0, 1));
  out = p.rebalance(t + std::chrono::seconds(5)); // steals from 1
  ASSERT_EQ(out.size(), 1u);
  ASSERT_FALSE(p.in_transit().isEmpty());
  p.remove_worker(1);
  EXPECT_FALSE(p.has_worker(1));
  EXPECT_TRUE(p.in_transit().isEmpty());
  EXPECT_EQ(p.pool(), range(1, 10));
  EXPECT_TRUE(one_place(p, 100, {1, 2}));
  out = p.rebalance(t + std::chrono::seconds(5));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].worker, 2u);
  EXPECT_EQ(out[0].pieces, range(1, 10));
}

// A lost worker's pieces go out at the next rebalance, also to shards that are not yet down to
// half their target (the usual top-up threshold).
TEST(cluster_planner, lost_workers_pieces_are_reassigned_at_once) {
  planner p(config(60, 1 * mib));
  p.add_worker(1, 1 * mib);
  p.add_worker(2, 1 * mib);
  p.add_worker(3, 1 * mib);
  auto t = clock::now();
  auto out = p.rebalance(t);
  ASSERT_EQ(out.size(), 3u); // 10 each (10 s at 1 MiB/s), 30 left in the pool
  for (auto& a : out)
    p.on_ack(a.worker, a.epoch);
  p.on_verified(1, find(out, 1)->epoch, range(0, 3)); // 7 of 10 left: above half
  p.on_verified(2, find(out, 2)->epoch, range(10, 13));
  EXPECT_TRUE(p.rebalance(t).empty());
  p.remove_worker(3);
  out = p.rebalance(t);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(find(out, 1)->pieces.cardinality(), 10u);
  EXPECT_EQ(find(out, 2)->pieces.cardinality(), 10u);
  // Worker 3's pieces (20..29) were the lowest in the pool: they go first.
  EXPECT_EQ(p.shard_of(1) | p.shard_of(2), range(3, 10) | range(13, 26));
  EXPECT_TRUE(one_place(p, 60, {1, 2, 3}));
}

TEST(cluster_planner, stale_reports_are_refused) {
  planner p(config(100, 1 * mib));
  p.add_worker(1, 1 * mib);
  p.add_worker(2, 9 * mib);
  auto t = clock::now();
  auto out = p.rebalance(t);
  const auto e1 = find(out, 1)->epoch;
  p.on_ack(1, e1);
  p.on_ack(2, find(out, 2)->epoch);
  p.on_verified(2, find(out, 2)->epoch, range(10, 100));
  out = p.rebalance(t + std::chrono::seconds(5));
  p.on_ack(1, out[0].epoch); // piece 1..9 back in the pool
  out = p.rebalance(t + std::chrono::seconds(5));
  ASSERT_EQ(find(out, 2)->pieces, range(1, 10));
  // The old owner, after acknowledging the steal, reports a stolen piece: refused.
  EXPECT_TRUE(p.on_verified(1, e1, range(5, 6)).isEmpty());
  // Another worker's piece, a piece out of its shard, an epoch never sent: refused.
  EXPECT_TRUE(p.on_verified(2, 99999, range(5, 6)).isEmpty());
  EXPECT_TRUE(p.on_verified(1, e1, range(50, 51)).isEmpty());
  // Its own remaining piece: accepted; twice: only once.
  EXPECT_EQ(p.on_verified(1, e1, range(0, 1)), range(0, 1));
  EXPECT_TRUE(p.on_verified(1, e1, range(0, 1)).isEmpty());
  // A removed worker (back after SIGCONT) has nothing counted.
  p.remove_worker(2);
  EXPECT_TRUE(p.on_verified(2, find(out, 2)->epoch, range(1, 10)).isEmpty());
  EXPECT_EQ(p.pool(), range(1, 10));
  EXPECT_TRUE(one_place(p, 100, {1, 2}));
}

TEST(cluster_planner, ack_of_an_epoch_never_sent_releases_nothing) {
  planner p(config(100, 1 * mib));
  p.add_worker(1, 1 * mib);
  p.add_worker(2, 9 * mib);
  auto t = clock::now();
  auto out = p.rebalance(t);
  p.on_ack(1, find(out, 1)->epoch);
  p.on_ack(2, find(out, 2)->epoch);
  p.on_verified(2, find(out, 2)->epoch, range(10, 100));
  out = p.rebalance(t + std::chrono::seconds(5));
  const auto transit = p.in_transit();
  ASSERT_FALSE(transit.isEmpty());
  p.on_ack(1, out[0].epoch + 1000);
  EXPECT_EQ(p.in_transit(), transit);
}

TEST(cluster_planner, restore_skips_verified_pieces_and_continues_epochs) {
  planner p(config(100, 1 * mib));
  p.restore(range(0, 60), 5000);
  EXPECT_EQ(p.verified(), range(0, 60));
  EXPECT_EQ(p.pool(), range(60, 100));
  p.add_worker(7, 1 * mib);
  auto out = p.rebalance(clock::now());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_GT(out[0].epoch, 5000u);
  EXPECT_EQ(out[0].pieces, range(60, 70));
  EXPECT_FALSE(p.complete());
  EXPECT_TRUE(one_place(p, 100, {7}));
  // Everything restored: complete, nothing to assign.
  planner q(config(100, 1 * mib));
  q.restore(range(0, 200), 1); // pieces beyond the torrent are ignored
  EXPECT_TRUE(q.complete());
  q.add_worker(1, 0);
  EXPECT_TRUE(q.rebalance(clock::now()).empty());
}

// Joins, leaves, acks, reports and rate changes in random order, with per-worker message
// channels that keep their order (as CAF's do). The invariant is checked after every step;
// once the churn stops the job must complete.
TEST(cluster_planner, randomized_churn_keeps_every_piece_in_one_place) {
  for (std::uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const std::uint32_t n = 500;
    auto c = config(n, 256 * kib);
    c.window_s = 2;
    planner p(c);
    struct sim_worker {
      std::deque<assignment> inbox;                // coordinator -> worker, in order
      std::deque<std::pair<bool, std::uint64_t>> up; // worker -> coordinator: (is_ack, epoch)
      std::deque<Roaring> reports;                  // the pieces of each report in `up`
      Roaring applied;                              // the shard in force at the worker
      Roaring done;                                 // verified by it (it never refetches)
      std::uint64_t epoch = 0;
    };
    std::map<worker_id, sim_worker> live;
    std::vector<worker_id> ever;
    worker_id next_id = 1;
    auto t = clock::now();
    auto rnd = [&](std::uint32_t k) {
      return std::uniform_int_distribution<std::uint32_t>(0, k - 1)(rng);
    };
    auto pick = [&]() {
      auto it = live.begin();
      std::advance(it, rnd(static_cast<std::uint32_t>(live.size())));
      return it;
    };
    auto deliver = [&](std::vector<assignment> out) {
      for (auto& a : out) {
        ASSERT_TRUE(live.count(a.worker));
        // A piece of a fresh assignment is never verified, in transit or someone else's.
        EXPECT_TRUE((a.pieces & p.verified()).isEmpty());
        EXPECT_TRUE((a.pieces & p.in_transit()).isEmpty());
        live[a.worker].inbox.push_back(std::move(a));
      }
    };
    std::uint64_t refused = 0;
    std::uint64_t transit_steps = 0; // steps with pieces in transit: the steal path ran
    auto step = [&](bool churn) {
      const auto op = rnd(10);
      if (churn && (live.empty() || (op == 0 && live.size() < 6))) {
        const worker_id id = next_id++;
        ever.push_back(id);
        live[id];
        p.add_worker(id, rnd(2) ? 0 : (1 + rnd(8)) * mib);
      } else if (churn && op == 1 && live.size() > 1 && rnd(4) == 0) {
        auto it = pick();
        p.remove_worker(it->first);
        live.erase(it);
      } else if (op <= 4 && !live.empty()) { // the worker applies an assignment and acks it
        auto it = pick();
        auto& w = it->second;
        if (!w.inbox.empty()) {
          w.applied = w.inbox.front().pieces - w.done;
          w.epoch = w.inbox.front().epoch;
          w.inbox.pop_front();
          w.up.emplace_back(true, w.epoch);
          w.reports.emplace_back();
        } else if (w.epoch > 1) {
          // A repeated, older ack (harmless by contract: it must release nothing newer).
          w.up.emplace_back(true, w.epoch - 1 - rnd(static_cast<std::uint32_t>(w.epoch - 1)));
          w.reports.emplace_back();
        }
      } else if (op <= 6 && !live.empty()) { // the worker verifies some of its shard
        auto it = pick();
        auto& w = it->second;
        Roaring got;
        for (auto v : w.applied)
          if (rnd(3) == 0)
            got.add(v);
        w.applied -= got;
        w.done |= got;
        w.up.emplace_back(false, w.epoch);
        w.reports.push_back(got);
        p.on_rate(it->first, (1 + rnd(10)) * mib);
      } else if (!live.empty()) { // the coordinator reads one message of a worker
        auto it = pick();
        auto& w = it->second;
        if (!w.up.empty()) {
          auto [is_ack, e] = w.up.front();
          Roaring pieces = std::move(w.reports.front());
          w.up.pop_front();
          w.reports.pop_front();
          if (is_ack) {
            p.on_ack(it->first, e);
          } else {
            const auto accepted = p.on_verified(it->first, e, pieces);
            // An honest worker writes only into its shard in force: all of it counts.
            EXPECT_EQ(accepted, pieces);
            refused += (pieces - accepted).cardinality();
          }
        }
      }
      if (rnd(3) == 0) {
        t += std::chrono::milliseconds(500);
        deliver(p.rebalance(t));
      }
      ASSERT_TRUE(one_place(p, n, ever));
      if (!p.in_transit().isEmpty())
        ++transit_steps;
    };
    for (int i = 0; i < 2000 && !HasFatalFailure(); ++i)
      step(true);
    for (int i = 0; i < 200000 && !p.complete() && !HasFatalFailure(); ++i)
      step(false);
    EXPECT_TRUE(p.complete()) << "verified " << p.verified().cardinality() << " of " << n;
    EXPECT_EQ(refused, 0u);
    EXPECT_GT(transit_steps, 20u);
  }
}
