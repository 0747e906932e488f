#include "actors/dht_peer_store.hpp"

#include <gtest/gtest.h>

namespace actorrent::dht {
namespace {

using std::chrono::minutes;
const auto t0 = peer_store::clock_type::time_point{} + std::chrono::hours(1);

info_hash hash_of(std::uint32_t n) {
  info_hash h{};
  h[0] = static_cast<std::uint8_t>(n >> 8);
  h[1] = static_cast<std::uint8_t>(n);
  return h;
}
krpc::udp_endpoint peer(std::uint32_t n) {
  return krpc::udp_endpoint{{10, static_cast<std::uint8_t>(n >> 16), static_cast<std::uint8_t>(n >> 8),
                             static_cast<std::uint8_t>(n)},
                            6881};
}

TEST(dht_peer_store, serves_announced_peers_newest_first) {
  peer_store s;
  s.announce(hash_of(1), peer(1), t0);
  s.announce(hash_of(1), peer(2), t0);
  s.announce(hash_of(2), peer(3), t0);
  s.announce(hash_of(1), peer(1), t0); // again: moves to the front, not twice
  auto p = s.peers(hash_of(1), 10, t0);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0], peer(1));
  EXPECT_EQ(p[1], peer(2));
  EXPECT_EQ(s.peers(hash_of(1), 1, t0).size(), 1u);
  EXPECT_TRUE(s.peers(hash_of(9), 10, t0).empty());
}

TEST(dht_peer_store, bounded_per_hash_and_in_hashes) {
  peer_store::limits lim;
  lim.per_hash = 5;
  lim.hashes = 3;
  peer_store s(lim);
  for (std::uint32_t i = 0; i < 1000; ++i)
    s.announce(hash_of(1), peer(i), t0);
  EXPECT_EQ(s.peer_count(), 5u);
  EXPECT_EQ(s.peers(hash_of(1), 100, t0)[0], peer(999));
  EXPECT_TRUE(s.announce(hash_of(2), peer(1), t0 + minutes(1)));
  EXPECT_TRUE(s.announce(hash_of(3), peer(1), t0 + minutes(2)));
  // Full: a new hash takes the place of the one announced least recently (hash 1, at t0),
  // not refused.
  EXPECT_TRUE(s.announce(hash_of(4), peer(1), t0 + minutes(3)));
  EXPECT_EQ(s.hash_count(), 3u);
  EXPECT_TRUE(s.peers(hash_of(1), 10, t0 + minutes(3)).empty());
  EXPECT_EQ(s.peers(hash_of(4), 10, t0 + minutes(3)).size(), 1u);
  // Once the old entries expire a new hash has room again.
  EXPECT_TRUE(s.announce(hash_of(5), peer(1), t0 + minutes(34)));
  EXPECT_EQ(s.hash_count(), 1u);
}

// One entry per IP and hash: a host announcing many ports cannot take every slot.
TEST(dht_peer_store, one_entry_per_ip_except_loopback) {
  peer_store s;
  for (std::uint16_t port = 1000; port < 1300; ++port)
    s.announce(hash_of(1), krpc::udp_endpoint{{10, 0, 0, 1}, port}, t0);
  auto p = s.peers(hash_of(1), 500, t0);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].port, 1299);
  s.announce(hash_of(2), krpc::udp_endpoint{{127, 0, 0, 1}, 1000}, t0);
  s.announce(hash_of(2), krpc::udp_endpoint{{127, 0, 0, 1}, 1001}, t0);
  EXPECT_EQ(s.peers(hash_of(2), 10, t0).size(), 2u);
}

TEST(dht_peer_store, entries_expire) {
  peer_store s;
  s.announce(hash_of(1), peer(1), t0);
  s.announce(hash_of(1), peer(2), t0 + minutes(20));
  auto p = s.peers(hash_of(1), 10, t0 + minutes(35));
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0], peer(2));
  s.expire(t0 + minutes(60));
  EXPECT_EQ(s.hash_count(), 0u);
}

} // namespace
} // namespace actorrent::dht
