#include "actors/peer_requests.hpp"

#include <gtest/gtest.h>

using namespace actorrent;
using namespace std::chrono_literals;

namespace {
block_ref blk(std::uint32_t p, std::uint32_t b) { return block_ref{piece_index{p}, b}; }
const peer_requests::clock::time_point t0{};
} // namespace

TEST(peer_requests, a_block_is_settled_once) {
  peer_requests r(8);
  r.add(blk(0, 0), t0);
  r.add(blk(0, 1), t0);
  EXPECT_TRUE(r.on_received(blk(0, 1), t0 + 10ms));
  EXPECT_FALSE(r.on_received(blk(0, 1), t0 + 11ms));
  EXPECT_TRUE(r.remove(blk(0, 0)));
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.samples(), 1u);
}

TEST(peer_requests, without_samples_the_longest_timeout_applies) {
  peer_requests r(8);
  r.set_timeout_bounds(3s, 60s);
  EXPECT_EQ(r.timeout(), 60s);
  r.add(blk(0, 0), t0);
  EXPECT_TRUE(r.take_timed_out(t0 + 59s).empty());
  auto late = r.take_timed_out(t0 + 61s);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0], blk(0, 0));
}

TEST(peer_requests, the_timeout_adapts_to_the_measured_request_time) {
  peer_requests r(64);
  r.set_timeout_bounds(3s, 60s);
  // A peer that answers every request in about 400 ms.
  auto now = t0;
  for (std::uint32_t i = 0; i < 20; ++i) {
    r.add(blk(1, i), now);
    now += 400ms;
    ASSERT_TRUE(r.on_received(blk(1, i), now));
  }
  EXPECT_EQ(r.timeout(), 3s) << "mean + 4 deviations of ~400 ms is under the floor";
  // A slow peer (20 s per block, jittery): the timeout follows it, up to the ceiling.
  peer_requests slow(64);
  slow.set_timeout_bounds(3s, 60s);
  now = t0;
  for (std::uint32_t i = 0; i < 20; ++i) {
    slow.add(blk(2, i), now);
    now += i % 2 ? 15s : 25s;
    ASSERT_TRUE(slow.on_received(blk(2, i), now));
  }
  EXPECT_GT(slow.timeout(), 20s);
  EXPECT_LE(slow.timeout(), 60s);
}

TEST(peer_requests, a_new_bound_moves_a_full_pipeline_and_only_shrinks_a_halved_one) {
  peer_requests full(unannounced_reqq); // a peer that names no reqq
  full.set_max_pipeline(512); // the peer's reqq arrives: the pipeline follows at once
  EXPECT_EQ(full.pipeline(), 512u);
  full.set_max_pipeline(100);
  EXPECT_EQ(full.pipeline(), 100u);

  peer_requests halved(16);
  halved.set_timeout_bounds(1s, 2s);
  halved.add(blk(0, 0), t0);
  ASSERT_EQ(halved.take_timed_out(t0 + 3s).size(), 1u);
  ASSERT_EQ(halved.pipeline(), 8u);
  halved.set_max_pipeline(64); // a slow peer's halved pipeline still grows back block by block
  EXPECT_EQ(halved.pipeline(), 8u);
  EXPECT_EQ(halved.max_pipeline(), 64u);
  halved.set_max_pipeline(4);
  EXPECT_EQ(halved.pipeline(), 4u);
}

TEST(peer_requests, the_paced_pipeline_is_the_measured_rate_times_the_queue_time) {
  peer_requests r(512);
  EXPECT_EQ(r.paced_pipeline(3s), peer_requests::initial_pipeline) << "no rate yet: a slow start";
  // 64 blocks a second (1 MiB/s) for two seconds.
  std::uint32_t i = 0;
  for (; i < 129; ++i) {
    r.add(blk(i / 16, i % 16), t0);
    ASSERT_TRUE(r.on_received(blk(i / 16, i % 16), t0 + std::chrono::microseconds(i * 15625)));
  }
  EXPECT_NEAR(r.blocks_per_s(), 64.0, 1.0);
  EXPECT_EQ(r.paced_pipeline(3s), 192u); // 3 s of it
  // A very slow peer still gets the floor; a fast one no more than the pipeline.
  EXPECT_EQ(r.paced_pipeline(std::chrono::milliseconds(10)), peer_requests::min_paced_pipeline);
  EXPECT_EQ(r.paced_pipeline(std::chrono::seconds(60)), 512u);
  // After an idle gap (choked) the next blocks start a fresh window: the old estimate stays
  // until a new window completes, and that window measures the new rate.
  auto t1 = t0 + 30s;
  for (std::uint32_t k = 0; k < 300; ++k, ++i) { // 256 a second for 1.17 s
    r.add(blk(i / 16, i % 16), t1);
    ASSERT_TRUE(r.on_received(blk(i / 16, i % 16), t1 + std::chrono::microseconds(k * 3906)));
  }
  EXPECT_NEAR(r.blocks_per_s(), (64.0 + 256.0) / 2, 2.0) << "the new window averaged in";
  EXPECT_NEAR(r.paced_pipeline(3s), 480u, 6u);
}

TEST(peer_requests, a_timeout_halves_the_pipeline_and_blocks_grow_it_back) {
  peer_requests r(16);
  r.set_timeout_bounds(1s, 2s);
  for (std::uint32_t i = 0; i < 4; ++i)
    r.add(blk(0, i), t0 + std::chrono::milliseconds(i * 600));
  // At 2.7 s the first (sent at 0 ms) and second (600 ms) are over 2 s old.
  auto late = r.take_timed_out(t0 + 2700ms);
  ASSERT_EQ(late.size(), 2u);
  EXPECT_EQ(late[0], blk(0, 0));
  EXPECT_EQ(late[1], blk(0, 1));
  EXPECT_EQ(r.size(), 2u);
  EXPECT_EQ(r.pipeline(), 8u);
  EXPECT_EQ(r.timeouts(), 2u);
  EXPECT_TRUE(r.on_received(blk(0, 2), t0 + 2800ms));
  EXPECT_EQ(r.pipeline(), 9u);
  for (int i = 0; i < 5; ++i)
    r.take_timed_out(t0 + 1h); // repeated timeouts bottom out at 2
  r.add(blk(0, 9), t0 + 2h);
  r.take_timed_out(t0 + 3h);
  EXPECT_EQ(r.pipeline(), 2u);
  r.set_max_pipeline(1);
  EXPECT_EQ(r.pipeline(), 1u);
}

TEST(peer_requests, a_long_queue_at_a_slow_but_steady_peer_does_not_expire) {
  // Ten requests at once to a peer that sends a block every 500 ms, in order: the last one
  // waits 5 s, five times the timeout, but only because of the queue before it. Each request
  // is timed from the later of its sending and the peer's last block.
  peer_requests r(64);
  r.set_timeout_bounds(1s, 1s);
  for (std::uint32_t i = 0; i < 10; ++i)
    r.add(blk(3, i), t0);
  for (std::uint32_t i = 0; i < 5; ++i) {
    auto now = t0 + std::chrono::milliseconds(500 * (i + 1));
    ASSERT_TRUE(r.on_received(blk(3, i), now));
    EXPECT_TRUE(r.take_timed_out(now + 900ms).empty()) << "after block " << i;
  }
  EXPECT_EQ(r.timeouts(), 0u);
  // Then it falls silent (last block at 2.5 s): the rest expire 1 s later.
  EXPECT_TRUE(r.take_timed_out(t0 + 3400ms).empty());
  auto late = r.take_timed_out(t0 + 3600ms);
  EXPECT_EQ(late.size(), 5u);
  EXPECT_EQ(late.front(), blk(3, 5));
}

TEST(peer_requests, a_request_the_peer_skipped_expires_while_it_sends_others) {
  // The peer answers requests sent after the first one and never that one: it is timed from
  // when it was sent, however busy the peer is (a block is not held hostage).
  peer_requests r(64);
  r.set_timeout_bounds(1s, 1s);
  for (std::uint32_t i = 0; i < 4; ++i)
    r.add(blk(5, i), t0);
  ASSERT_TRUE(r.on_received(blk(5, 1), t0 + 400ms));
  ASSERT_TRUE(r.on_received(blk(5, 2), t0 + 1000ms));
  auto late = r.take_timed_out(t0 + 1100ms);
  EXPECT_EQ(late, (std::vector<block_ref>{blk(5, 0)})) << "5.3 waits its turn behind 5.2";
  EXPECT_TRUE(r.contains(blk(5, 3)));
}

TEST(peer_requests, a_silent_peers_requests_expire_from_when_they_were_sent) {
  peer_requests r(64);
  r.set_timeout_bounds(1s, 1s);
  EXPECT_FALSE(r.on_received(blk(6, 9), t0)) << "not requested; its arrival counts even so";
  r.add(blk(6, 0), t0 + 2s);
  r.add(blk(6, 1), t0 + 2500ms);
  auto late = r.take_timed_out(t0 + 3200ms);
  EXPECT_EQ(late, (std::vector<block_ref>{blk(6, 0)}));
}
