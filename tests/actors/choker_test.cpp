#include "actors/choker.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using namespace actorrent;

namespace {
bool has(const std::vector<peer_slot>& v, peer_slot s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}
} // namespace

TEST(choker, unchokes_the_fastest_uploaders_to_us_while_downloading) {
  choker c(2);
  // slot, gave us, took from us
  std::vector<choker::candidate> v{{1, 100, 900}, {2, 500, 0}, {3, 300, 0}, {4, 0, 5000}};
  auto u = c.run(v, false, 1, true); // not a rotation round
  EXPECT_TRUE(has(u, 2));
  EXPECT_TRUE(has(u, 3));
  EXPECT_FALSE(has(u, 1));
  EXPECT_FALSE(has(u, 4));
}

TEST(choker, ranks_by_what_peers_take_while_seeding) {
  choker c(2);
  std::vector<choker::candidate> v{{1, 100, 900}, {2, 500, 0}, {3, 300, 0}, {4, 0, 5000}};
  auto u = c.run(v, true, 1, true);
  EXPECT_TRUE(has(u, 4));
  EXPECT_TRUE(has(u, 1));
  EXPECT_FALSE(has(u, 2));
}

TEST(choker, one_optimistic_slot_rotates_among_the_others) {
  choker c(1, 3);
  std::vector<choker::candidate> v{{1, 900, 0}, {2, 10, 0}, {3, 5, 0}, {4, 1, 0}};
  auto u = c.run(v, false, 0, false);
  ASSERT_EQ(u.size(), 2u);
  EXPECT_EQ(u[0], 1u);
  auto first = c.optimistic();
  EXPECT_NE(first, 1u);
  EXPECT_TRUE(has(u, first));
  // Between rotations the optimistic peer keeps its slot.
  EXPECT_EQ(c.run(v, false, 1, true), u);
  EXPECT_EQ(c.run(v, false, 2, true), u);
  // The rotation round picks another of the others, and each of them in turn.
  c.run(v, false, 4, true); // 4 % 3 != 0: no rotation
  EXPECT_EQ(c.optimistic(), first);
  std::vector<peer_slot> seen{first};
  for (std::uint32_t round = 3; round <= 6; round += 3) {
    c.run(v, false, round, true);
    EXPECT_FALSE(has(seen, c.optimistic())) << "round " << round;
    seen.push_back(c.optimistic());
  }
  // A gone optimistic peer is replaced at once, outside the rotation rounds.
  auto gone = c.optimistic();
  std::vector<choker::candidate> without;
  for (auto& x : v)
    if (x.slot != gone)
      without.push_back(x);
  u = c.run(without, false, 7, false);
  EXPECT_NE(c.optimistic(), gone);
  EXPECT_NE(c.optimistic(), no_peer);
  EXPECT_FALSE(has(u, gone));
}

TEST(choker, no_optimistic_slot_when_everyone_fits) {
  choker c(4);
  auto u = c.run({{1, 1, 0}, {2, 2, 0}}, false, 0, false);
  EXPECT_EQ(u.size(), 2u);
  EXPECT_EQ(c.optimistic(), no_peer);
  EXPECT_TRUE(c.has_free_slot(4));
  EXPECT_FALSE(c.has_free_slot(5));
}
