#include "actors/dht_tokens.hpp"

#include <gtest/gtest.h>

namespace actorrent::dht {
namespace {

using std::chrono::minutes;
const auto t0 = token_manager::clock_type::time_point{} + std::chrono::hours(1);
const krpc::udp_endpoint alice{{10, 0, 0, 1}, 1000};
const krpc::udp_endpoint alice_other_port{{10, 0, 0, 1}, 2000};
const krpc::udp_endpoint bob{{10, 0, 0, 2}, 1000};

TEST(dht_tokens, a_token_is_bound_to_the_ip) {
  token_manager tm(t0);
  auto tok = tm.make(alice, t0);
  EXPECT_EQ(tok.size(), token_manager::token_size);
  EXPECT_TRUE(tm.check(tok, alice, t0));
  EXPECT_TRUE(tm.check(tok, alice_other_port, t0)); // the port is not part of it
  EXPECT_FALSE(tm.check(tok, bob, t0));
  EXPECT_FALSE(tm.check("", alice, t0));
  EXPECT_FALSE(tm.check(tok + "x", alice, t0));
}

TEST(dht_tokens, the_previous_secret_is_accepted_then_forgotten) {
  token_manager tm(t0);
  auto tok = tm.make(alice, t0);
  EXPECT_TRUE(tm.check(tok, alice, t0 + minutes(6)));   // rotated once: previous secret
  auto newer = tm.make(alice, t0 + minutes(6));
  EXPECT_NE(newer, tok);
  EXPECT_FALSE(tm.check(tok, alice, t0 + minutes(11))); // rotated twice: gone
  EXPECT_TRUE(tm.check(newer, alice, t0 + minutes(11)));
}

TEST(dht_tokens, a_long_idle_period_voids_every_token) {
  token_manager tm(t0);
  auto tok = tm.make(alice, t0);
  EXPECT_FALSE(tm.check(tok, alice, t0 + minutes(30)));
}

TEST(dht_tokens, two_managers_make_different_tokens) {
  token_manager a(t0), b(t0);
  EXPECT_NE(a.make(alice, t0), b.make(alice, t0));
}

} // namespace
} // namespace actorrent::dht
