#include "actors/availability.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using namespace actorrent;

namespace {

constexpr std::uint64_t seed = 0x5eed;

// "3120" -> piece 0 held by 3 peers, piece 1 by 1, piece 2 by 2, piece 3 by none.
availability with_counts(std::string_view counts, std::uint64_t shuffle = seed) {
  availability a(static_cast<std::uint32_t>(counts.size()), shuffle);
  for (std::uint32_t p = 0; p < counts.size(); ++p)
    for (int i = 0; i < counts[p] - '0'; ++i)
      a.increment(piece_index{p});
  return a;
}

// Counts (seeds included) as the same kind of string.
std::string counts(const availability& a) {
  std::string s;
  for (std::uint32_t p = 0; p < a.piece_count(); ++p)
    s += static_cast<char>('0' + a.count(piece_index{p}));
  return s;
}

std::vector<std::uint32_t> order(const availability& a, bool include_unavailable = true) {
  std::vector<std::uint32_t> out;
  a.for_each_rarest(include_unavailable, [&](piece_index p) {
    out.push_back(p.value);
    return true;
  });
  return out;
}

// Iteration as groups of equal count, each group sorted: "{3,5}{1,6}{2}{0,4}".
std::string groups(const availability& a, bool include_unavailable = true) {
  std::string s;
  std::vector<std::uint32_t> group;
  std::uint32_t group_count = 0;
  auto flush = [&] {
    if (group.empty())
      return;
    std::sort(group.begin(), group.end());
    s += "{";
    for (std::size_t i = 0; i < group.size(); ++i)
      s += (i ? "," : "") + std::to_string(group[i]);
    s += "}";
    group.clear();
  };
  for (auto p : order(a, include_unavailable)) {
    auto c = a.count(piece_index{p});
    if (!group.empty() && c != group_count)
      flush();
    group_count = c;
    group.push_back(p);
  }
  flush();
  return s;
}

} // namespace

TEST(availability, starts_with_every_piece_pickable_and_unavailable) {
  availability a(6, seed);
  EXPECT_EQ(a.piece_count(), 6u);
  EXPECT_EQ(counts(a), "000000");
  EXPECT_EQ(a.pickable(), 6u);
  EXPECT_FALSE(a.any_pickable_available());
  EXPECT_EQ(groups(a), "{0,1,2,3,4,5}");
  EXPECT_EQ(groups(a, false), "");
  EXPECT_TRUE(a.consistent());
}

TEST(availability, increments_and_decrements_keep_counts) {
  availability a(5, seed);
  struct step {
    char op;
    std::uint32_t piece;
    const char* counts;
  };
  for (auto s : {step{'+', 2, "00100"}, step{'+', 2, "00200"}, step{'+', 0, "10200"},
                 step{'+', 4, "10201"}, step{'+', 2, "10301"}, step{'-', 2, "10201"},
                 step{'-', 0, "00201"}, step{'+', 1, "01201"}, step{'-', 2, "01101"},
                 step{'-', 2, "01001"}, step{'-', 4, "01000"}, step{'-', 1, "00000"}}) {
    if (s.op == '+')
      a.increment(piece_index{s.piece});
    else
      a.decrement(piece_index{s.piece});
    EXPECT_EQ(counts(a), s.counts) << s.op << s.piece;
    ASSERT_TRUE(a.consistent()) << s.op << s.piece;
  }
  EXPECT_EQ(a.pickable(), 5u);
}

TEST(availability, iterates_rarest_first_grouped_by_count) {
  auto a = with_counts("3120301");
  ASSERT_TRUE(a.consistent());
  EXPECT_EQ(counts(a), "3120301");
  EXPECT_EQ(groups(a), "{3,5}{1,6}{2}{0,4}");
  // Changes move a piece to its new group at once.
  a.increment(piece_index{3}); // 0 -> 1
  a.increment(piece_index{3}); // 1 -> 2
  a.decrement(piece_index{0}); // 3 -> 2
  a.increment(piece_index{6}); // 1 -> 2
  a.increment(piece_index{6}); // 2 -> 3
  ASSERT_TRUE(a.consistent());
  EXPECT_EQ(counts(a), "2122303");
  EXPECT_EQ(groups(a), "{5}{1}{0,2,3}{4,6}");
}

TEST(availability, iteration_stops_when_the_callback_says_so) {
  auto a = with_counts("3120301");
  std::vector<std::uint32_t> seen;
  a.for_each_rarest(true, [&](piece_index p) {
    seen.push_back(p.value);
    return seen.size() < 3;
  });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(std::set<std::uint32_t>(seen.begin(), seen.begin() + 2),
            (std::set<std::uint32_t>{3, 5}));
  EXPECT_TRUE(seen[2] == 1 || seen[2] == 6) << seen[2];
}

// increment() moves a piece to the edge of its next bucket, so pieces incremented in index order
// (as add_peer_pieces does) would line up the same way for every client; iteration starts each
// bucket at a per-torrent random offset instead.
TEST(availability, ties_are_broken_differently_by_different_seeds) {
  // Peers of one swarm should not all start the same piece: among 8 equally rare pieces the first
  // one must depend on the shuffle seed.
  std::set<std::uint32_t> firsts;
  for (std::uint64_t s = 1; s <= 32; ++s)
    firsts.insert(order(with_counts("11111111", s)).front());
  EXPECT_GE(firsts.size(), 4u);
  // And the same seed gives the same order.
  EXPECT_EQ(order(with_counts("21102011", 7)), order(with_counts("21102011", 7)));
}

TEST(availability, unavailable_pieces_are_skipped_on_request) {
  auto a = with_counts("3120301");
  EXPECT_EQ(groups(a, false), "{1,6}{2}{0,4}");
  a.increment(piece_index{5});
  EXPECT_EQ(groups(a, false), "{1,5,6}{2}{0,4}");
  a.decrement(piece_index{1});
  a.decrement(piece_index{5});
  EXPECT_EQ(groups(a, false), "{6}{2}{0,4}");
  EXPECT_EQ(groups(a, true), "{1,3,5}{6}{2}{0,4}");
  EXPECT_TRUE(a.consistent());
}

TEST(availability, park_and_unpark_keep_the_count) {
  auto a = with_counts("3120301");
  a.park(piece_index{2});
  EXPECT_TRUE(a.parked(piece_index{2}));
  EXPECT_EQ(counts(a), "3120301");
  EXPECT_EQ(groups(a), "{3,5}{1,6}{0,4}");
  EXPECT_EQ(a.pickable(), 6u);
  ASSERT_TRUE(a.consistent());

  a.park(piece_index{2}); // twice: no change
  EXPECT_EQ(a.pickable(), 6u);
  ASSERT_TRUE(a.consistent());

  // Availability changes while parked are counted but do not bring it back.
  a.increment(piece_index{2});
  a.increment(piece_index{2});
  a.decrement(piece_index{2});
  EXPECT_EQ(counts(a), "3130301");
  EXPECT_EQ(groups(a), "{3,5}{1,6}{0,4}");
  ASSERT_TRUE(a.consistent());

  a.park(piece_index{3});
  a.park(piece_index{0});
  EXPECT_EQ(groups(a), "{5}{1,6}{4}");
  EXPECT_EQ(a.pickable(), 4u);
  ASSERT_TRUE(a.consistent());

  a.unpark(piece_index{2});
  EXPECT_FALSE(a.parked(piece_index{2}));
  EXPECT_EQ(groups(a), "{5}{1,6}{2,4}");
  a.unpark(piece_index{3});
  a.unpark(piece_index{3}); // twice: no change
  EXPECT_EQ(groups(a), "{3,5}{1,6}{2,4}");
  EXPECT_EQ(a.pickable(), 6u);
  EXPECT_TRUE(a.parked(piece_index{0}));
  ASSERT_TRUE(a.consistent());

  a.unpark(piece_index{0});
  EXPECT_EQ(groups(a), "{3,5}{1,6}{0,2,4}");
  EXPECT_EQ(counts(a), "3130301");
  EXPECT_TRUE(a.consistent());
}

TEST(availability, a_piece_parked_at_a_count_never_reached_before_unparks_into_place) {
  // The bucket for count 5 does not exist until the piece is unparked there.
  availability a(3, seed);
  a.park(piece_index{1});
  for (int i = 0; i < 5; ++i)
    a.increment(piece_index{1});
  a.increment(piece_index{0});
  ASSERT_TRUE(a.consistent());
  a.unpark(piece_index{1});
  ASSERT_TRUE(a.consistent());
  EXPECT_EQ(counts(a), "150");
  EXPECT_EQ(order(a), (std::vector<std::uint32_t>{2, 0, 1}));
  a.decrement(piece_index{1});
  a.decrement(piece_index{1});
  EXPECT_EQ(order(a), (std::vector<std::uint32_t>{2, 0, 1}));
  EXPECT_TRUE(a.consistent());
}

TEST(availability, seeds_count_once_and_do_not_change_the_order) {
  auto a = with_counts("3120301");
  auto before = order(a);
  a.add_seed();
  a.add_seed();
  EXPECT_EQ(a.seeds(), 2u);
  EXPECT_EQ(counts(a), "5342523");
  EXPECT_EQ(order(a), before);
  // "unavailable" still means: no non-seed peer has it.
  EXPECT_EQ(groups(a, false), "{1,6}{2}{0,4}");
  a.remove_seed();
  EXPECT_EQ(counts(a), "4231412");
  a.remove_seed();
  EXPECT_EQ(counts(a), "3120301");
  EXPECT_EQ(order(a), before);
  EXPECT_TRUE(a.consistent());
}

TEST(availability, any_pickable_available) {
  availability a(3, seed);
  EXPECT_FALSE(a.any_pickable_available()); // nobody has anything
  a.increment(piece_index{1});
  EXPECT_TRUE(a.any_pickable_available());
  a.park(piece_index{1});
  EXPECT_FALSE(a.any_pickable_available()); // the only available piece is taken
  a.add_seed();
  EXPECT_TRUE(a.any_pickable_available()); // a seed has pieces 0 and 2
  a.park(piece_index{0});
  a.park(piece_index{2});
  EXPECT_EQ(a.pickable(), 0u);
  EXPECT_FALSE(a.any_pickable_available()); // even with a seed: nothing left to start
  a.remove_seed();
  a.unpark(piece_index{1});
  EXPECT_TRUE(a.any_pickable_available());
  a.decrement(piece_index{1});
  EXPECT_FALSE(a.any_pickable_available());
  EXPECT_TRUE(a.consistent());
}

// 100k random operations against a naive model: counts, parked set and seeds.
TEST(availability, random_operations_match_a_naive_model) {
  constexpr std::uint32_t n = 97;
  availability a(n, seed);
  std::vector<std::uint32_t> model(n, 0);
  std::set<std::uint32_t> parked;
  std::uint32_t seeds = 0;
  std::mt19937_64 rng(20261125);
  auto check_all = [&](int step) {
    ASSERT_TRUE(a.consistent()) << "step " << step;
    ASSERT_EQ(a.seeds(), seeds);
    ASSERT_EQ(a.pickable(), n - parked.size()) << "step " << step;
    for (std::uint32_t p = 0; p < n; ++p) {
      ASSERT_EQ(a.count(piece_index{p}), model[p] + seeds) << "piece " << p << " step " << step;
      ASSERT_EQ(a.parked(piece_index{p}), parked.count(p) == 1) << "piece " << p;
    }
    for (bool include_unavailable : {true, false}) {
      auto seen = order(a, include_unavailable);
      std::set<std::uint32_t> expected;
      for (std::uint32_t p = 0; p < n; ++p)
        if (!parked.count(p) && (include_unavailable || model[p] > 0))
          expected.insert(p);
      ASSERT_EQ(std::set<std::uint32_t>(seen.begin(), seen.end()), expected) << "step " << step;
      ASSERT_EQ(seen.size(), expected.size()) << "a piece visited twice, step " << step;
      for (std::size_t i = 1; i < seen.size(); ++i)
        ASSERT_LE(model[seen[i - 1]], model[seen[i]]) << "not rarest first, step " << step;
    }
    bool available = false;
    for (std::uint32_t p = 0; p < n; ++p)
      available = available || (!parked.count(p) && (model[p] > 0 || seeds > 0));
    ASSERT_EQ(a.any_pickable_available(), available) << "step " << step;
  };
  for (int step = 0; step < 100000; ++step) {
    auto p = static_cast<std::uint32_t>(rng() % n);
    auto op = rng() % 100;
    if (op < 45) {
      a.increment(piece_index{p});
      ++model[p];
    } else if (op < 88) {
      if (model[p] == 0)
        continue;
      a.decrement(piece_index{p});
      --model[p];
    } else if (op < 94) {
      a.park(piece_index{p});
      parked.insert(p);
    } else if (op < 98) {
      a.unpark(piece_index{p});
      parked.erase(p);
    } else if (op < 99) {
      a.add_seed();
      ++seeds;
    } else if (seeds > 0) {
      a.remove_seed();
      --seeds;
    }
    ASSERT_EQ(a.count(piece_index{p}), model[p] + seeds) << "piece " << p << " step " << step;
    if (step % 100 == 0) {
      ASSERT_TRUE(a.consistent()) << "step " << step;
    }
    if (step % 2000 == 0) {
      check_all(step);
      if (HasFatalFailure())
        return;
    }
  }
  check_all(100000);
}
