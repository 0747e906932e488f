#include "actors/dht_routing_table.hpp"

#include <gtest/gtest.h>

namespace actorrent::dht {
namespace {

node_id with_prefix(std::initializer_list<std::uint8_t> head, std::uint8_t fill = 0) {
  node_id id;
  id.fill(fill);
  std::size_t i = 0;
  for (auto b : head)
    id[i++] = b;
  return id;
}

node_info node(const node_id& id, std::uint8_t host, std::uint16_t port = 6881) {
  return node_info{id, udp_endpoint{{10, 0, 0, host}, port}};
}

const auto t0 = clock_type::time_point{} + std::chrono::hours(1);

TEST(dht_routing_table, distance_helpers) {
  EXPECT_EQ(common_prefix_bits(with_prefix({0x80}), with_prefix({0x00})), 0);
  EXPECT_EQ(common_prefix_bits(with_prefix({0x00, 0x01}), with_prefix({0x00, 0x00})), 15);
  EXPECT_EQ(common_prefix_bits(with_prefix({0x42}), with_prefix({0x42})), 160);
  auto target = with_prefix({0x10});
  EXPECT_TRUE(closer(target, with_prefix({0x11}), with_prefix({0x30})));
  EXPECT_FALSE(closer(target, with_prefix({0x30}), with_prefix({0x11})));
}

TEST(dht_routing_table, a_far_bucket_holds_k_nodes_and_is_never_split) {
  routing_table t(with_prefix({0x00}));
  // Close nodes first, so that the table has split and the 1xxx... range is its own bucket.
  for (std::uint8_t i = 0; i < 9; ++i)
    t.heard_from(node(with_prefix({0x01, i}), i), t0, true);
  auto buckets = t.bucket_count();
  ASSERT_GT(buckets, 1u);
  // Twenty nodes whose ids start with bit 1: all in bucket 0, which does not hold our id.
  for (std::uint8_t i = 0; i < 20; ++i)
    t.heard_from(node(with_prefix({0x80, i}), static_cast<std::uint8_t>(100 + i)), t0, true);
  EXPECT_EQ(t.bucket_size(0), 8u);
  EXPECT_EQ(t.bucket_count(), buckets);
  // Replacements are bounded too: 8 of the 12 far ones, plus the ninth close node.
  EXPECT_EQ(t.replacement_count(), 9u);
}

TEST(dht_routing_table, only_the_bucket_with_our_id_splits) {
  routing_table t(with_prefix({0x00}));
  // Nodes in the 0xxx... half share at least one bit with us: they keep splitting the last
  // bucket until the close ones have buckets of their own.
  for (std::uint8_t i = 0; i < 16; ++i)
    t.heard_from(node(with_prefix({static_cast<std::uint8_t>(0x40 | i)}), i), t0, true);
  for (std::uint8_t i = 0; i < 8; ++i)
    t.heard_from(node(with_prefix({0x80, i}), static_cast<std::uint8_t>(50 + i)), t0, true);
  // 01xx filled the single bucket, which split twice: 1xxx | 01xx | 00xx (ours, empty).
  EXPECT_EQ(t.bucket_count(), 3u);
  EXPECT_EQ(t.bucket_size(0), 8u); // 1xxx
  EXPECT_EQ(t.bucket_size(1), 8u); // 01xx: full, the rest of the 16 wait as replacements
  EXPECT_EQ(t.bucket_size(2), 0u);
  EXPECT_EQ(t.size(), 16u);
  // More 01xx and 1xxx nodes split nothing: those buckets do not hold our id.
  for (std::uint8_t i = 0; i < 30; ++i) {
    t.heard_from(node(with_prefix({0x50, i}), static_cast<std::uint8_t>(100 + i)), t0, true);
    t.heard_from(node(with_prefix({0xc0, i}), static_cast<std::uint8_t>(200 + i)), t0, true);
  }
  EXPECT_EQ(t.bucket_count(), 3u);
  EXPECT_EQ(t.size(), 16u);
}

TEST(dht_routing_table, a_full_bucket_pings_a_questionable_node_and_replaces_it_after_failures) {
  routing_table t(with_prefix({0x00}));
  for (std::uint8_t i = 0; i < 9; ++i)
    t.heard_from(node(with_prefix({0x01, i}), i), t0, true); // splits once
  for (std::uint8_t i = 0; i < 8; ++i)
    t.heard_from(node(with_prefix({0x80, i}), static_cast<std::uint8_t>(100 + i)), t0, true);
  // All good: a newcomer is only cached, nothing to ping.
  auto newcomer = node(with_prefix({0x80, 0xff}), 200);
  auto r = t.heard_from(newcomer, t0 + std::chrono::minutes(1), true);
  EXPECT_EQ(r.what, routing_table::outcome::cached);
  EXPECT_FALSE(r.to_ping);
  // 20 minutes later the old ones are questionable: the oldest is to be pinged.
  auto later = t0 + std::chrono::minutes(20);
  r = t.heard_from(newcomer, later, true);
  EXPECT_EQ(r.what, routing_table::outcome::cached);
  ASSERT_TRUE(r.to_ping);
  auto victim = r.to_ping->id;
  t.failed(victim);
  EXPECT_TRUE(t.contains(victim)); // one failure is not enough
  EXPECT_FALSE(t.contains(newcomer.id));
  t.failed(victim);
  EXPECT_FALSE(t.contains(victim));
  EXPECT_TRUE(t.contains(newcomer.id));
  EXPECT_EQ(t.bucket_size(0), 8u);
}

TEST(dht_routing_table, closest_is_sorted_by_xor_distance) {
  routing_table t(with_prefix({0x00}));
  for (std::uint8_t i = 1; i < 30; ++i)
    t.heard_from(node(with_prefix({static_cast<std::uint8_t>(i * 8)}), i), t0, true);
  auto target = with_prefix({0x51});
  auto c = t.closest(target, 8);
  ASSERT_EQ(c.size(), 8u);
  for (std::size_t i = 1; i < c.size(); ++i)
    EXPECT_TRUE(closer(target, c[i - 1].id, c[i].id));
  EXPECT_EQ(c[0].id, with_prefix({0x50}));
}

TEST(dht_routing_table, refuses_our_own_id_and_an_id_moving_address) {
  auto self = with_prefix({0x00});
  routing_table t(self);
  EXPECT_EQ(t.heard_from(node(self, 1), t0, true).what, routing_table::outcome::refused);
  auto id = with_prefix({0x80});
  EXPECT_EQ(t.heard_from(node(id, 1), t0, true).what, routing_table::outcome::added);
  EXPECT_EQ(t.heard_from(node(id, 2), t0, true).what, routing_table::outcome::refused);
  EXPECT_EQ(t.all()[0].ep.ip[3], 1);
}

// A node that only queried us is not handed out (it could name any address): it waits among
// the replacements, is to be pinged, and is served once it answered.
TEST(dht_routing_table, a_node_that_never_answered_is_not_served) {
  routing_table t(with_prefix({0x00}));
  auto id = with_prefix({0x80});
  auto r = t.heard_from(node(id, 1), t0, false);
  EXPECT_EQ(r.what, routing_table::outcome::cached);
  ASSERT_TRUE(r.to_ping);
  EXPECT_EQ(r.to_ping->id, id);
  EXPECT_TRUE(t.closest(id, 8).empty());
  EXPECT_TRUE(t.confirmed().empty());
  EXPECT_EQ(t.heard_from(node(id, 1), t0, true).what, routing_table::outcome::added);
  EXPECT_EQ(t.closest(id, 8).size(), 1u);
  // A node that failed is not served either.
  t.failed(id);
  EXPECT_TRUE(t.closest(id, 8).empty());
  EXPECT_TRUE(t.confirmed().empty());
}

// An answered node takes its id over from an entry that is failing; a healthy one keeps it.
TEST(dht_routing_table, an_answering_node_takes_over_its_id_from_a_failing_entry) {
  routing_table t(with_prefix({0x00}));
  auto id = with_prefix({0x80});
  t.heard_from(node(id, 1), t0, true);
  EXPECT_EQ(t.heard_from(node(id, 2), t0, true).what, routing_table::outcome::refused);
  t.failed(id);
  EXPECT_EQ(t.heard_from(node(id, 2), t0, true).what, routing_table::outcome::updated);
  EXPECT_EQ(t.all()[0].ep.ip[3], 2);
}

// One node per IP in a bucket (a host cannot fill a bucket with ports); loopback is exempt.
TEST(dht_routing_table, one_node_per_ip_in_a_bucket) {
  routing_table t(with_prefix({0x00}));
  EXPECT_EQ(t.heard_from(node(with_prefix({0x80, 1}), 1, 1000), t0, true).what,
            routing_table::outcome::added);
  EXPECT_EQ(t.heard_from(node(with_prefix({0x80, 2}), 1, 1001), t0, true).what,
            routing_table::outcome::refused);
  auto lo = [](std::uint8_t b, std::uint16_t port) {
    return node_info{with_prefix({0xc0, b}), udp_endpoint{{127, 0, 0, 1}, port}};
  };
  EXPECT_EQ(t.heard_from(lo(1, 2000), t0, true).what, routing_table::outcome::added);
  EXPECT_EQ(t.heard_from(lo(2, 2001), t0, true).what, routing_table::outcome::added);
}

// A node picked for a refresh ping is not picked again for a minute, and again after that
// while it stays silent.
TEST(dht_routing_table, a_stale_node_picked_for_a_ping_stays_questionable) {
  routing_table t(with_prefix({0x00}));
  auto old_id = with_prefix({0x80});
  auto new_id = with_prefix({0xc0});
  t.heard_from(node(old_id, 1), t0, true);
  auto later = t0 + std::chrono::minutes(20);
  t.heard_from(node(new_id, 2), later, true);
  auto stale = t.stale_node(later);
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->id, old_id);
  EXPECT_FALSE(t.stale_node(later)); // not picked twice in a row
  EXPECT_FALSE(t.stale_node(later + std::chrono::seconds(30)));
  // Still silent a minute later: pinged again.
  auto again = t.stale_node(later + std::chrono::seconds(61));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, old_id);
}

// A bucket nobody answered in for 15 minutes is refreshed with a lookup on an id in its range.
TEST(dht_routing_table, a_silent_bucket_yields_a_refresh_target_in_its_range) {
  routing_table t(with_prefix({0x00}));
  for (std::uint8_t i = 0; i < 8; ++i)
    t.heard_from(node(with_prefix({static_cast<std::uint8_t>(0x80 + i)}), i), t0, true);
  t.heard_from(node(with_prefix({0x01}), 9), t0, true); // splits: bucket 0 is 1xxx...
  ASSERT_EQ(t.bucket_count(), 2u);
  EXPECT_FALSE(t.refresh_target(t0 + std::chrono::minutes(1)));
  auto later = t0 + std::chrono::minutes(16);
  auto target = t.refresh_target(later);
  ASSERT_TRUE(target);
  EXPECT_EQ(common_prefix_bits(t.self(), *target), 0); // bucket 0: ids starting with bit 1
  auto next = t.refresh_target(later); // then the other bucket
  ASSERT_TRUE(next);
  EXPECT_GE(common_prefix_bits(t.self(), *next), 1);
  EXPECT_FALSE(t.refresh_target(later)); // both refreshed: not again at once
}

} // namespace
} // namespace actorrent::dht
