#include "actors/request_record.hpp"

#include <gtest/gtest.h>

using namespace actorrent;
using namespace std::chrono_literals;

namespace {
block_ref blk(std::uint32_t p, std::uint32_t b) { return block_ref{piece_index{p}, b}; }
const request_record::clock::time_point t0{};
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
  EXPECT_EQ(r.requesters(blk(0, 1)), (std::vector<peer_slot>{1, 2}));
  EXPECT_TRUE(r.requested(2, blk(0, 1)));
  EXPECT_FALSE(r.requested(2, blk(0, 0)));
  EXPECT_TRUE(r.consistent());
  EXPECT_TRUE(r.on_received(1, blk(0, 1), t0 + 5ms));
  EXPECT_FALSE(r.on_received(1, blk(0, 1), t0 + 6ms)) << "settled once";
  EXPECT_EQ(r.requesters(blk(0, 1)), (std::vector<peer_slot>{2}));
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
  EXPECT_EQ(r.requesters(blk(0, 0)), (std::vector<peer_slot>{2}));
  auto left = r.remove_peer(2);
  EXPECT_EQ(left, (std::vector<block_ref>{blk(0, 0)}));
  EXPECT_EQ(r.find(2), nullptr);
  EXPECT_EQ(r.count(2), 0u);
  EXPECT_FALSE(r.remove(2, blk(0, 0))) << "unknown peer";
  EXPECT_EQ(r.total(), 1u);
  EXPECT_TRUE(r.consistent());
}
