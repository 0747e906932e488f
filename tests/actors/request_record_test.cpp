#include "actors/request_record.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <utility>

using namespace actorrent;
using namespace std::chrono_literals;

namespace {
block_ref blk(std::uint32_t p, std::uint32_t b) { return block_ref{piece_index{p}, b}; }
const request_record::clock::time_point t0{};
std::vector<peer_slot> who(const request_record& r, block_ref b) {
  auto q = r.requesters(b);
  return std::vector<peer_slot>(q.begin(), q.end());
}
} // namespace

TEST(request_record, one_record_per_peer_and_per_block) {
  request_record r;
  r.add_peer(1, 8);
  r.add_peer(2, 8);
  r.add(1, blk(0, 0), t0);
  r.add(1, blk(0, 1), t0);
  r.add(2, blk(0, 1), t0); // end-game duplicate
  EXPECT_EQ(r.count(1), 2u);
  EXPECT_EQ(r.count(2), 1u);
  EXPECT_EQ(r.total(), 3u);
  EXPECT_EQ(who(r, blk(0, 1)), (std::vector<peer_slot>{1, 2}));
  EXPECT_TRUE(r.requested(2, blk(0, 1)));
  EXPECT_FALSE(r.requested(2, blk(0, 0)));
  EXPECT_TRUE(r.consistent());
  EXPECT_TRUE(r.on_received(1, blk(0, 1), t0 + 5ms));
  EXPECT_FALSE(r.on_received(1, blk(0, 1), t0 + 6ms)) << "settled once";
  EXPECT_EQ(who(r, blk(0, 1)), (std::vector<peer_slot>{2}));
  EXPECT_TRUE(r.remove(2, blk(0, 1))); // the loser's CANCEL
  EXPECT_TRUE(r.requesters(blk(0, 1)).empty());
  EXPECT_EQ(r.find(1)->samples(), 1u);
  EXPECT_TRUE(r.consistent());
}

TEST(request_record, requests_leave_in_any_order_and_take_all_is_oldest_first) {
  request_record r;
  r.add_peer(1, 64);
  for (std::uint32_t i = 0; i < 10; ++i)
    r.add(1, blk(i, 0), t0 + std::chrono::milliseconds(i));
  EXPECT_TRUE(r.remove(1, blk(5, 0)));
  EXPECT_TRUE(r.on_received(1, blk(9, 0), t0 + 1s));
  EXPECT_TRUE(r.remove(1, blk(0, 0)));
  EXPECT_FALSE(r.remove(1, blk(0, 0)));
  auto all = r.take_all(1);
  EXPECT_EQ(all, (std::vector<block_ref>{blk(1, 0), blk(2, 0), blk(3, 0), blk(4, 0), blk(6, 0),
                                         blk(7, 0), blk(8, 0)}));
  EXPECT_EQ(r.count(1), 0u);
  EXPECT_EQ(r.total(), 0u);
  EXPECT_TRUE(r.consistent());
}

TEST(request_record, a_re_request_to_the_same_peer_is_still_one_request) {
  request_record r;
  r.add_peer(1, 8);
  r.add(1, blk(0, 0), t0);
  r.add(1, blk(0, 0), t0 + 1s);
  EXPECT_EQ(r.count(1), 1u);
  EXPECT_EQ(r.requesters(blk(0, 0)).size(), 1u);
  EXPECT_TRUE(r.consistent());
}

TEST(request_record, timed_out_requests_and_a_departed_peer_leave_the_block_index) {
  request_record r;
  r.add_peer(1, 16).set_timeout_bounds(1s, 2s);
  r.add_peer(2, 16);
  r.add(1, blk(0, 0), t0);
  r.add(1, blk(0, 1), t0 + 1500ms);
  r.add(2, blk(0, 0), t0);
  auto late = r.take_timed_out(1, t0 + 2500ms);
  EXPECT_EQ(late, (std::vector<block_ref>{blk(0, 0)}));
  EXPECT_EQ(r.find(1)->pipeline(), 8u);
  EXPECT_EQ(who(r, blk(0, 0)), (std::vector<peer_slot>{2}));
  auto left = r.remove_peer(2);
  EXPECT_EQ(left, (std::vector<block_ref>{blk(0, 0)}));
  EXPECT_EQ(r.find(2), nullptr);
  EXPECT_EQ(r.count(2), 0u);
  EXPECT_FALSE(r.remove(2, blk(0, 0))) << "unknown peer";
  EXPECT_EQ(r.total(), 1u);
  EXPECT_TRUE(r.consistent());
}

TEST(request_record, an_end_game_block_has_two_requesters_at_most) {
  request_record r;
  for (peer_slot p = 1; p <= 3; ++p)
    r.add_peer(p, 8);
  EXPECT_TRUE(r.add(1, blk(4, 2), t0));
  EXPECT_TRUE(r.add(2, blk(4, 2), t0));
  EXPECT_FALSE(r.add(3, blk(4, 2), t0)) << "a third request for one block is refused";
  EXPECT_EQ(r.count(3), 0u);
  EXPECT_FALSE(r.requested(3, blk(4, 2)));
  EXPECT_TRUE(r.requesters(blk(4, 2)).full());
  EXPECT_TRUE(r.add(1, blk(4, 2), t0 + 1s)) << "a re-request by a requester is re-timed";
  EXPECT_EQ(r.total(), 2u);
  // The winner's copy settles its request; the loser is the one left to cancel.
  EXPECT_TRUE(r.on_received(2, blk(4, 2), t0 + 2s));
  EXPECT_EQ(who(r, blk(4, 2)), (std::vector<peer_slot>{1}));
  EXPECT_TRUE(r.add(3, blk(4, 2), t0)) << "room again for a second requester";
  EXPECT_EQ(who(r, blk(4, 2)), (std::vector<peer_slot>{1, 3}));
  EXPECT_TRUE(r.consistent());
}

TEST(request_record, expiry_takes_only_the_late_requests_and_keeps_their_order) {
  request_record r;
  r.add_peer(1, 64).set_timeout_bounds(1s, 1s);
  for (std::uint32_t i = 0; i < 6; ++i)
    r.add(1, blk(0, i), t0 + std::chrono::milliseconds(200 * i));
  EXPECT_TRUE(r.on_received(1, blk(0, 1), t0 + 300ms));
  EXPECT_TRUE(r.remove(1, blk(0, 3)));
  auto late = r.take_timed_out(1, t0 + 1500ms); // older than 1 s: sent before 500 ms
  EXPECT_EQ(late, (std::vector<block_ref>{blk(0, 0), blk(0, 2)}));
  EXPECT_TRUE(r.requesters(blk(0, 0)).empty());
  EXPECT_EQ(r.count(1), 2u);
  EXPECT_TRUE(r.requested(1, blk(0, 4)));
  EXPECT_EQ(r.find(1)->timeouts(), 2u);
  EXPECT_TRUE(r.take_timed_out(1, t0 + 1500ms).empty()) << "taken once";
  EXPECT_TRUE(r.consistent());
}

TEST(request_record, a_peer_gone_leaves_the_other_requests_of_its_blocks_alone) {
  request_record r;
  r.add_peer(1, 8);
  r.add_peer(2, 8);
  r.add(1, blk(2, 0), t0);
  r.add(1, blk(2, 1), t0);
  r.add(2, blk(2, 1), t0);
  EXPECT_EQ(r.remove_peer(1), (std::vector<block_ref>{blk(2, 0), blk(2, 1)}));
  EXPECT_EQ(r.peer_count(), 1u);
  EXPECT_TRUE(r.requesters(blk(2, 0)).empty());
  EXPECT_EQ(who(r, blk(2, 1)), (std::vector<peer_slot>{2}));
  EXPECT_FALSE(r.on_received(1, blk(2, 1), t0)) << "nothing of a departed peer is settled";
  EXPECT_TRUE(r.consistent());
}

// The hot path: a peer's pipeline is refilled and drained many times over; once its arrays
// have grown, requests come and go in any order without the record growing with them.
TEST(request_record, a_long_run_in_any_order_stays_consistent_and_bounded) {
  request_record r;
  r.add_peer(1, 256);
  r.add_peer(2, 256);
  std::uint64_t rng = 12345;
  auto next = [&] { return rng = rng * 6364136223846793005ull + 1442695040888963407ull; };
  std::vector<block_ref> in_flight;
  auto now = t0;
  std::uint32_t block = 0;
  for (int round = 0; round < 2000; ++round) {
    while (in_flight.size() < 128) {
      auto b = blk(block / 16, block % 16);
      ++block;
      ASSERT_TRUE(r.add(1, b, now));
      if (next() % 8 == 0) {
        ASSERT_TRUE(r.add(2, b, now)); // end-game duplicate
      }
      in_flight.push_back(b);
    }
    now += 1ms;
    // Settle a quarter of them, from anywhere in the pipeline.
    for (int k = 0; k < 32; ++k) {
      auto i = static_cast<std::size_t>(next() % in_flight.size());
      auto b = in_flight[i];
      in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(i));
      if (next() % 2)
        ASSERT_TRUE(r.on_received(1, b, now));
      else
        ASSERT_TRUE(r.remove(1, b));
      r.remove(2, b); // the loser's cancel, if it had it
    }
    ASSERT_EQ(r.count(1), in_flight.size());
    ASSERT_LE(r.find(1)->entries_held(), 4 * in_flight.size() + 64) << "round " << round;
  }
  EXPECT_TRUE(r.consistent());
  std::size_t left = 0;
  r.find(1)->for_each([&](block_ref, request_record::clock::time_point) { ++left; });
  EXPECT_EQ(left, in_flight.size());
  // Oldest first, whatever left in between.
  auto all = r.take_all(1);
  ASSERT_EQ(all.size(), in_flight.size());
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(), [](block_ref a, block_ref b) {
    return std::pair(a.piece.value, a.block) < std::pair(b.piece.value, b.block);
  }));
  EXPECT_EQ(r.total(), r.count(2));
  EXPECT_TRUE(r.consistent());
}
