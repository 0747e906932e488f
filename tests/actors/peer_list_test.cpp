#include "actors/peer_list.hpp"

#include <gtest/gtest.h>

using namespace actorrent;
using namespace std::chrono_literals;

namespace {
const peer_list::clock::time_point t0 = peer_list::clock::time_point{} + 1h;
endpoint ep(const char* host, std::uint16_t port) { return endpoint{host, port}; }
} // namespace

TEST(peer_list, remembers_each_address_once_and_is_bounded) {
  peer_list l(3);
  EXPECT_TRUE(l.add(ep("10.0.0.1", 1)));
  EXPECT_FALSE(l.add(ep("10.0.0.1", 1))) << "duplicate";
  EXPECT_FALSE(l.add(ep("10.0.0.1", 0))) << "port 0";
  EXPECT_TRUE(l.add(ep("10.0.0.1", 2)));
  EXPECT_TRUE(l.add(ep("10.0.0.2", 1)));
  EXPECT_FALSE(l.add(ep("10.0.0.3", 1))) << "full";
  EXPECT_EQ(l.size(), 3u);
}

TEST(peer_list, dials_idle_peers_once_under_the_limit) {
  peer_list l;
  for (std::uint16_t p = 1; p <= 5; ++p)
    l.add(ep("10.0.0.1", p));
  auto d = l.take_dials(t0, 3, 100);
  ASSERT_EQ(d, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(l.at(0).st, peer_list::state::connecting);
  EXPECT_EQ(l.at(0).attempts, 1u);
  EXPECT_EQ(l.take_dials(t0, 8, 100), (std::vector<std::size_t>{3, 4}));
  EXPECT_TRUE(l.take_dials(t0, 8, 100).empty()) << "nobody idle";
}

TEST(peer_list, the_per_ip_cap_counts_open_connections_and_this_rounds_dials) {
  peer_list l;
  for (std::uint16_t p = 1; p <= 4; ++p)
    l.add(ep("10.0.0.1", p));
  l.add(ep("10.0.0.2", 1));
  l.connection_opened("10.0.0.1"); // an accepted connection from that address
  auto d = l.take_dials(t0, 8, 2);
  EXPECT_EQ(d, (std::vector<std::size_t>{0, 4})) << "one more to 10.0.0.1, then the other host";
  l.connection_opened("10.0.0.1");
  EXPECT_EQ(l.connections_from("10.0.0.1"), 2u);
  l.connection_closed("10.0.0.1");
  l.connection_closed("10.0.0.1");
  EXPECT_EQ(l.connections_from("10.0.0.1"), 0u);
  EXPECT_EQ(l.take_dials(t0, 8, 2), (std::vector<std::size_t>{1, 2}));
}

TEST(peer_list, failed_dials_back_off_exponentially_and_a_handshake_resets_it) {
  peer_list l;
  l.add(ep("10.0.0.1", 1));
  auto now = t0;
  std::vector<int> waits;
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(l.take_dials(now, 1, 8).size(), 1u);
    l.on_closed(0, false, false, now);
    EXPECT_TRUE(l.take_dials(now, 1, 8).empty()) << "not before its backoff";
    waits.push_back(static_cast<int>(
      std::chrono::duration_cast<std::chrono::seconds>(l.at(0).next_try - now).count()));
    now = l.at(0).next_try;
  }
  EXPECT_EQ(waits, (std::vector<int>{2, 4, 8, 16, 32, 60, 60, 60}));
  ASSERT_EQ(l.take_dials(now, 1, 8).size(), 1u);
  l.on_connected(0);
  EXPECT_EQ(l.at(0).st, peer_list::state::connected);
  l.on_closed(0, true, false, now);
  EXPECT_EQ(l.at(0).attempts, 0u);
  EXPECT_EQ(l.at(0).next_try, now + 5s);
  l.reset_backoff(now); // resumed after a pause
  EXPECT_EQ(l.take_dials(now, 1, 8).size(), 1u);
}

TEST(peer_list, a_banned_peer_is_never_dialled_and_stays_banned) {
  peer_list l;
  l.add(ep("10.0.0.1", 1));
  l.add(ep("10.0.0.1", 2));
  l.take_dials(t0, 2, 8);
  l.on_closed(0, true, true, t0); // misbehaved
  l.ban(1);                       // smart ban named an earlier connection to it
  l.on_closed(1, true, false, t0);
  EXPECT_EQ(l.at(0).st, peer_list::state::banned);
  EXPECT_EQ(l.at(1).st, peer_list::state::banned);
  EXPECT_TRUE(l.take_dials(t0 + 1h, 8, 8).empty());
  peer_id id{};
  id[0] = 7;
  EXPECT_FALSE(l.banned_id(id));
  l.ban_id(id);
  EXPECT_TRUE(l.banned_id(id));
}

TEST(peer_list, departed_peers_are_remembered_up_to_the_bound) {
  peer_list l(10, 2);
  l.remember_departed(1, {ep("10.0.0.1", 1), 0, {}});
  l.remember_departed(2, {ep("10.0.0.2", 1), 1, {}});
  ASSERT_NE(l.departed(1), nullptr);
  l.remember_departed(3, {ep("10.0.0.3", 1), 2, {}});
  EXPECT_EQ(l.departed(1), nullptr) << "the oldest is forgotten";
  auto p = l.take_departed(2);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->ep.host, "10.0.0.2");
  EXPECT_EQ(l.departed(2), nullptr);
  EXPECT_FALSE(l.take_departed(2));
}

TEST(peer_list, a_connection_we_close_is_released_for_a_dial_at_once) {
  peer_list l;
  l.add(ep("10.0.0.1", 1));
  l.add(ep("10.0.0.1", 2));
  l.add(ep("10.0.0.1", 3));
  ASSERT_EQ(l.take_dials(t0, 8, 100).size(), 3u);
  l.on_connected(0);
  l.ban(2);
  l.release(0, t0); // paused: told to close, the close not complete yet
  l.release(1, t0);
  l.release(2, t0);
  EXPECT_EQ(l.at(0).st, peer_list::state::idle);
  EXPECT_EQ(l.at(0).attempts, 0u) << "it had completed its handshake";
  EXPECT_EQ(l.at(2).st, peer_list::state::banned) << "a ban survives";
  EXPECT_EQ(l.take_dials(t0, 8, 100), (std::vector<std::size_t>{0, 1}));
}
