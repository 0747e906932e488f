#include "cluster/plan_store.hpp"

#include "cluster/planner.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

using namespace actorrent;
using namespace actorrent::cluster;

namespace {

namespace fs = std::filesystem;

struct cluster_plan_store : ::testing::Test {
  std::string dir;
  info_hash hash{};

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "plan_store_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir = tmpl + "/state"; // not created yet: save creates it
    hash.fill(0x5a);
  }
  void TearDown() override { fs::remove_all(fs::path(dir).parent_path()); }

  plan_state sample() const {
    plan_state s;
    s.hash = hash;
    s.mode = wire::MODE_REPLICATE;
    s.piece_count = 1000;
    s.verified.addRange(0, 400);
    s.verified.add(777);
    s.last_epoch = 4242;
    s.workers = {"alpha", "beta:1234", std::string("\xff\x00raw", 5)};
    return s;
  }
  std::string bytes() const {
    std::ifstream in(plan_state_path(dir), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void write(const std::string& b) const {
    std::ofstream(plan_state_path(dir), std::ios::binary | std::ios::trunc) << b;
  }
  result<loaded_plan_state> load(wire::Mode mode = wire::MODE_REPLICATE,
                                 std::uint32_t pieces = 1000) const {
    return load_plan_state(dir, hash, mode, pieces);
  }
};

} // namespace

TEST_F(cluster_plan_store, round_trip) {
  const auto s = sample();
  ASSERT_TRUE(save_plan_state(dir, s).ok());
  auto r = load();
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(r->state.has_value()) << r->warning;
  EXPECT_EQ(r->warning, "");
  EXPECT_EQ(r->state->hash, hash);
  EXPECT_EQ(r->state->mode, wire::MODE_REPLICATE);
  EXPECT_EQ(r->state->piece_count, 1000u);
  EXPECT_EQ(r->state->verified, s.verified);
  EXPECT_EQ(r->state->last_epoch, 4242u);
  EXPECT_EQ(r->state->workers, s.workers);
  // Saved again (the coordinator's periodic save): replaced, not appended.
  auto later = s;
  later.verified.addRange(400, 1000);
  later.last_epoch = 5000;
  ASSERT_TRUE(save_plan_state(dir, later).ok());
  r = load();
  ASSERT_TRUE(r.ok() && r->state);
  EXPECT_EQ(r->state->verified.cardinality(), 1000u);
  EXPECT_EQ(r->state->last_epoch, 5000u);
}

TEST_F(cluster_plan_store, no_file_is_a_fresh_start) {
  auto r = load();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->state.has_value());
  EXPECT_EQ(r->warning, "");
}

TEST_F(cluster_plan_store, damaged_file_is_reported_and_ignored) {
  ASSERT_TRUE(save_plan_state(dir, sample()).ok());
  const auto good = bytes();
  // Every single bit flip is caught, also in the info-hash and the bitmap.
  for (std::size_t i = 0; i < good.size(); ++i) {
    auto bad = good;
    bad[i] ^= 0x10;
    write(bad);
    auto r = load();
    ASSERT_TRUE(r.ok()) << "byte " << i << ": " << r.error().message;
    EXPECT_FALSE(r->state.has_value()) << "byte " << i;
    EXPECT_NE(r->warning.find(plan_state_path(dir)), std::string::npos) << r->warning;
    EXPECT_NE(r->warning.find("starts over"), std::string::npos) << r->warning;
  }
}

TEST_F(cluster_plan_store, truncated_and_empty_files_are_reported_and_ignored) {
  ASSERT_TRUE(save_plan_state(dir, sample()).ok());
  const auto good = bytes();
  for (std::size_t len : {std::size_t{0}, std::size_t{1}, std::size_t{21}, good.size() / 2,
                          good.size() - 1}) {
    write(good.substr(0, len));
    auto r = load();
    ASSERT_TRUE(r.ok()) << len;
    EXPECT_FALSE(r->state.has_value()) << len;
    EXPECT_NE(r->warning.find("truncated or damaged"), std::string::npos)
        << len << ": " << r->warning;
  }
}

TEST_F(cluster_plan_store, another_torrents_state_is_refused) {
  ASSERT_TRUE(save_plan_state(dir, sample()).ok());
  info_hash other{};
  other.fill(0x11);
  auto r = load_plan_state(dir, other, wire::MODE_REPLICATE, 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_NE(r.error().message.find("is another torrent's (" + to_hex(hash) +
                                   ", this job: " + to_hex(other) + ")"),
            std::string::npos)
      << r.error().message;
  // Refused, not overwritten: the other job's state is still there.
  EXPECT_TRUE(load().ok());
  EXPECT_TRUE(load()->state.has_value());
}

TEST_F(cluster_plan_store, another_mode_is_refused) {
  ASSERT_TRUE(save_plan_state(dir, sample()).ok());
  auto r = load(wire::MODE_SHARED);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("is of a replicate job, this one is shared"),
            std::string::npos)
      << r.error().message;
}

TEST_F(cluster_plan_store, inconsistent_piece_count_is_damage) {
  ASSERT_TRUE(save_plan_state(dir, sample()).ok());
  auto r = load(wire::MODE_REPLICATE, 999);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->state.has_value());
  EXPECT_NE(r->warning.find("records 1000 pieces but the torrent has 999"), std::string::npos)
      << r->warning;
}

TEST_F(cluster_plan_store, epochs_after_a_restart_continue_above_the_margin) {
  EXPECT_EQ(epoch_after_restart(10), 10 + epoch_restart_margin);
  EXPECT_GT(epoch_after_restart(10), 10u + 1000u);
  EXPECT_EQ(epoch_after_restart(~std::uint64_t{0} - 1), ~std::uint64_t{0});
}

// What a restarted coordinator does: load, restore the planner, assign. Verified pieces are
// never assigned again and every new epoch is above anything sent before the restart.
TEST_F(cluster_plan_store, restart_resumes_the_plan) {
  ASSERT_TRUE(save_plan_state(dir, sample()).ok());
  auto r = load();
  ASSERT_TRUE(r.ok() && r->state);
  planner_config c;
  c.piece_count = 1000;
  c.piece_length = 1 << 20;
  c.total_size = 1000ull << 20;
  planner p(c);
  p.restore(r->state->verified, epoch_after_restart(r->state->last_epoch));
  p.add_worker(1, 50u << 20);
  auto out = p.rebalance(clock::now());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE((out[0].pieces & sample().verified).isEmpty());
  EXPECT_EQ(out[0].pieces.minimum(), 400u);
  EXPECT_GT(out[0].epoch, 4242u + epoch_restart_margin);
}

// The coordinator's handle: open creates the directory, load applies the restart margin and
// reports damage through warning(), save keeps the worker names noted.
TEST_F(cluster_plan_store, store_handle_round_trip) {
  auto store = plan_store::open(dir, hash, 1000, wire::MODE_REPLICATE);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_TRUE(fs::is_directory(dir));
  auto none = store->load();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(store->warning(), "");
  Roaring v;
  v.addRange(10, 20);
  store->note_worker("a");
  store->note_worker("b");
  store->note_worker("a");
  ASSERT_TRUE(store->save(v, 77).ok());

  auto again = plan_store::open(dir, hash, 1000, wire::MODE_REPLICATE);
  ASSERT_TRUE(again.ok());
  auto saved = again->load();
  ASSERT_TRUE(saved.ok() && saved->has_value());
  EXPECT_EQ((*saved)->verified, v);
  EXPECT_EQ((*saved)->last_epoch, epoch_after_restart(77));
  EXPECT_EQ((*saved)->workers, (std::vector<std::string>{"a", "b"}));

  write(bytes().substr(0, 10));
  auto damaged = again->load();
  ASSERT_TRUE(damaged.ok());
  EXPECT_FALSE(damaged->has_value());
  EXPECT_NE(again->warning().find("starts over"), std::string::npos) << again->warning();
}

TEST_F(cluster_plan_store, open_refuses_a_state_path_that_is_a_file) {
  fs::create_directories(fs::path(dir).parent_path());
  std::ofstream(dir) << "not a directory";
  auto store = plan_store::open(dir, hash, 1000);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, errc::io_error);
  EXPECT_NE(store.error().message.find(dir), std::string::npos) << store.error().message;
}
