#include "actors/announce_schedule.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using namespace actorrent;
using namespace std::chrono_literals;
using ev = tracker::event;

namespace {
const announce_schedule::clock::time_point t0 = announce_schedule::clock::time_point{} + 1h;
announce_schedule::result ok(std::uint32_t interval, std::uint32_t min_interval = 0) {
  return {true, interval, min_interval};
}
const announce_schedule::result failed{false, 0, 0};
} // namespace

TEST(announce_schedule, started_first_then_routine_at_the_trackers_interval) {
  announce_schedule s;
  EXPECT_EQ(s.first(), ev::started);
  EXPECT_FALSE(s.first()) << "one in flight";
  EXPECT_FALSE(s.poll(t0)) << "one in flight";
  EXPECT_EQ(s.on_result(ok(1800), true, t0), ev::started);
  EXPECT_TRUE(s.started());
  EXPECT_FALSE(s.first()) << "started was accepted";
  EXPECT_FALSE(s.poll(t0 + 1799s));
  EXPECT_EQ(s.poll(t0 + 1800s), ev::none);
}

TEST(announce_schedule, intervals_are_clamped_and_min_interval_applies_without_peers) {
  announce_schedule s;
  s.first();
  s.on_result(ok(5), true, t0);
  EXPECT_EQ(s.next_announce(), t0 + 30s);
  s.poll(t0 + 30s);
  s.on_result(ok(100000), true, t0);
  EXPECT_EQ(s.next_announce(), t0 + 3600s);
  s.poll(t0 + 3600s);
  s.on_result(ok(1800, 60), false, t0);
  EXPECT_EQ(s.next_announce(), t0 + 60s) << "no peers: ask again at the min interval";
  s.poll(t0 + 60s);
  s.on_result(ok(1800, 1), false, t0);
  EXPECT_EQ(s.next_announce(), t0 + 15s);
}

TEST(announce_schedule, failures_back_off_and_started_is_retried) {
  announce_schedule s;
  s.first();
  std::vector<long> waits;
  auto now = t0;
  for (int i = 0; i < 8; ++i) {
    s.on_result(failed, false, now);
    waits.push_back(static_cast<long>(s.retry_delay().count()));
    EXPECT_FALSE(s.poll(s.next_announce() - 1s));
    now = s.next_announce();
    EXPECT_EQ(s.poll(now), ev::started) << "not accepted yet";
  }
  EXPECT_EQ(waits, (std::vector<long>{10, 20, 40, 80, 160, 300, 300, 300}));
  s.on_result(ok(900), true, now);
  EXPECT_EQ(s.failures(), 0u);
}

TEST(announce_schedule, completed_exactly_once_even_with_an_announce_in_flight) {
  announce_schedule s;
  s.first();
  EXPECT_EQ(s.completed(), ev::completed);
  EXPECT_FALSE(s.completed());
  EXPECT_EQ(s.on_result(ok(900), true, t0), ev::started);
  EXPECT_EQ(s.on_result(ok(900), true, t0), ev::completed);
  EXPECT_FALSE(s.in_flight());
}

TEST(announce_schedule, stopped_once_and_only_to_a_tracker_that_knows_us) {
  announce_schedule quiet;
  EXPECT_FALSE(quiet.stopped()) << "never announced";
  announce_schedule s;
  s.first();
  s.on_result(ok(900), true, t0);
  EXPECT_EQ(s.stopped(), ev::stopped);
  EXPECT_FALSE(s.stopped());
  EXPECT_FALSE(s.poll(t0 + 1h)) << "quiet after stopped";
  EXPECT_FALSE(s.completed()) << "quiet after stopped";
  EXPECT_EQ(s.on_result(ok(900), true, t0), ev::stopped);
  EXPECT_FALSE(s.started()) << "the reply to 'stopped' does not make us started";
  announce_schedule racing;
  racing.first(); // in flight, no answer yet: the tracker may know us
  EXPECT_EQ(racing.stopped(), ev::stopped);
}

TEST(announce_schedule, a_restart_announces_started_again_and_completed_never_twice) {
  announce_schedule s;
  s.first();
  s.on_result(ok(900), true, t0);
  s.completed();
  s.on_result(ok(900), true, t0);
  s.stopped();
  s.on_result(ok(900), true, t0);
  s.restart(t0 + 10s);
  EXPECT_EQ(s.first(), ev::started);
  s.on_result(ok(900), true, t0 + 10s);
  EXPECT_FALSE(s.completed());
  EXPECT_EQ(s.stopped(), ev::stopped);
}

TEST(announce_schedule, a_reply_from_before_a_pause_neither_starts_us_nor_delays_the_next) {
  // started in flight, paused (stopped queued), resumed, then the stale 'started' reply.
  announce_schedule s;
  EXPECT_EQ(s.first(), ev::started);
  EXPECT_EQ(s.stopped(), ev::stopped);
  s.restart(t0);
  EXPECT_FALSE(s.first()) << "two in flight";
  EXPECT_EQ(s.on_result(ok(1800), true, t0), ev::started);
  EXPECT_FALSE(s.started()) << "the tracker was told 'stopped' after it";
  EXPECT_EQ(s.next_announce(), t0) << "the stale reply does not move the next announce";
  EXPECT_FALSE(s.poll(t0)) << "'stopped' still in flight";
  EXPECT_EQ(s.on_result(ok(1800), true, t0), ev::stopped);
  EXPECT_EQ(s.poll(t0), ev::started) << "resume's 'started' goes out after the farewell";
  EXPECT_EQ(s.on_result(ok(1800), true, t0), ev::started);
  EXPECT_TRUE(s.started());
  EXPECT_EQ(s.next_announce(), t0 + 1800s);
}

TEST(announce_schedule, a_failed_reply_from_before_a_pause_adds_no_retry_delay) {
  announce_schedule s;
  s.first();
  s.stopped();
  s.restart(t0);
  s.on_result(failed, true, t0);
  EXPECT_EQ(s.failures(), 0u);
  EXPECT_EQ(s.next_announce(), t0);
}

TEST(announce_schedule, paused_again_before_the_resume_announced_says_stopped_once) {
  announce_schedule s;
  s.first();
  s.on_result(ok(900), true, t0);
  EXPECT_EQ(s.stopped(), ev::stopped);
  s.restart(t0);
  EXPECT_FALSE(s.first()) << "'stopped' in flight";
  EXPECT_FALSE(s.stopped()) << "the tracker was told already";
  s.restart(t0);
  EXPECT_EQ(s.on_result(ok(900), true, t0), ev::stopped);
  EXPECT_EQ(s.poll(t0), ev::started);
}

// -- tracker_tiers (BEP 12) -----------------------------------------------------------------

namespace {
std::vector<std::string> order_of_a_pass(const tracker_tiers& t) {
  std::vector<std::string> out;
  for (auto p = t.first(); p; p = t.next(*p))
    out.push_back(t.url(*p));
  return out;
}
} // namespace

TEST(tracker_tiers, tiers_in_order_trackers_of_a_tier_in_order_then_the_next_tier) {
  tracker_tiers t({{"udp://a:1"}, {}, {"http://b/announce"}, {"udp://c:3"}}, 1);
  EXPECT_EQ(t.tiers().size(), 3u) << "an empty tier is dropped";
  EXPECT_EQ(order_of_a_pass(t),
            (std::vector<std::string>{"udp://a:1", "http://b/announce", "udp://c:3"}));
  EXPECT_FALSE(tracker_tiers({}, 1).first());
}

TEST(tracker_tiers, each_tier_is_shuffled_once_at_load_and_tiers_keep_their_order) {
  std::vector<std::string> tier;
  for (int i = 0; i < 8; ++i)
    tier.push_back("udp://t" + std::to_string(i) + ":1");
  bool some_shuffled = false;
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    tracker_tiers t({tier, {"http://last/announce"}}, seed);
    auto pass = order_of_a_pass(t);
    ASSERT_EQ(pass.size(), 9u);
    EXPECT_EQ(pass.back(), "http://last/announce") << "the second tier stays second";
    std::vector<std::string> first_tier(pass.begin(), pass.end() - 1);
    some_shuffled |= first_tier != tier;
    std::sort(first_tier.begin(), first_tier.end());
    EXPECT_EQ(first_tier, tier) << "the same trackers";
    EXPECT_EQ(order_of_a_pass(t), pass) << "shuffled once, not per pass";
  }
  EXPECT_TRUE(some_shuffled);
  EXPECT_EQ(order_of_a_pass(tracker_tiers({tier}, 7)), order_of_a_pass(tracker_tiers({tier}, 7)));
}

TEST(tracker_tiers, the_tracker_that_answers_moves_to_the_front_of_its_tier) {
  tracker_tiers t({{"x"}, {"a", "b", "c"}}, 0);
  auto tier1 = t.tiers()[1];
  // fail through x and the first two of tier 1; the third answers
  auto p = t.first();
  p = t.next(*p);
  p = t.next(*p);
  p = t.next(*p);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, (tracker_tiers::position{1, 2}));
  t.answered(*p);
  EXPECT_EQ(t.tiers()[1], (std::vector<std::string>{tier1[2], tier1[0], tier1[1]}));
  EXPECT_EQ(t.tiers()[0], (std::vector<std::string>{"x"})) << "other tiers untouched";
  EXPECT_EQ(order_of_a_pass(t),
            (std::vector<std::string>{"x", tier1[2], tier1[0], tier1[1]}))
    << "tiers are still tried in order: the first tier comes first next time";
}

TEST(tracker_tiers, a_huge_tracker_list_is_cut_to_50_per_tier_and_200_in_all) {
  std::vector<std::vector<std::string>> tiers(1000, std::vector<std::string>(100, "udp://a"));
  tiers[0].assign(100000, "udp://b");
  tracker_tiers t(std::move(tiers), 1);
  std::size_t total = 0;
  for (const auto& tier : t.tiers()) {
    EXPECT_LE(tier.size(), tracker_tiers::max_per_tier);
    total += tier.size();
  }
  EXPECT_EQ(t.tiers()[0].size(), 50u);
  EXPECT_EQ(t.tiers().size(), 4u) << "50 + 50 + 50 + 50";
  EXPECT_EQ(total, 200u);
}
