// The session API on a real actor system: adding, reporting, commands for unknown torrents,
// removing and stopping, as an observer sees them; and the per-torrent metrics labels.

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include "actors/messages.hpp"
#include "actors/peer_connection.hpp"
#include "actors/session.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/sha1.hpp"
#include "tests/actors/deterministic.hpp"

using namespace actorrent;

namespace {

std::shared_ptr<const metainfo> small_torrent(const std::string& name, const std::string& data,
                                              std::uint8_t tag) {
  auto m = std::make_shared<metainfo>();
  m->name = name;
  m->piece_length = block_size;
  m->total_size = data.size();
  m->files.push_back(file_entry{{name}, data.size(), false});
  for (std::size_t p = 0; p < data.size(); p += block_size)
    m->piece_hashes.push_back(sha1(std::string_view(data).substr(p, block_size)));
  m->hash[0] = tag; // distinct info-hashes are all the session needs here
  return m;
}

#if defined(__SANITIZE_THREAD__)
#define ACTORRENT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ACTORRENT_TSAN 1
#endif
#endif

struct session_fixture : ::testing::Test {
  void SetUp() override {
#ifdef ACTORRENT_TSAN
    // Real CAF threads and sockets: TSan cannot see the uninstrumented libcaf_core's
    // hand-overs and reports each one, as for thread_count. The Release suite runs these.
    GTEST_SKIP() << "actors on CAF's real threads are not checked under ThreadSanitizer";
#endif
  }
  std::ostringstream log;
  io_runtime io{1};
  std::string dir;
  session_fixture() {
    actor_test::route_loggers(std::make_shared<spdlog::sinks::ostream_sink_mt>(log),
                              spdlog::level::debug);
    char tmpl[] = "/tmp/session_test.XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~session_fixture() override { io.stop(); }
};

/// Events of torrent `id` until one of `kind` arrives (or 10 s pass).
std::vector<torrent_event> events_until(caf::scoped_actor& self, torrent_id id,
                                        torrent_event_kind kind) {
  std::vector<torrent_event> seen;
  bool done = false;
  while (!done)
    self->receive(
      [&](torrent_event& ev) {
        if (ev.id != id)
          return;
        done = ev.kind == kind;
        seen.push_back(std::move(ev));
      },
      caf::after(std::chrono::seconds(10)) >> [&] { done = true; });
  return seen;
}

bool has(const std::vector<torrent_event>& evs, torrent_event_kind k) {
  for (auto& e : evs)
    if (e.kind == k)
      return true;
  return false;
}

template <class Reply, class Msg>
Reply ask(caf::scoped_actor& self, const caf::actor& session, Msg msg) {
  Reply r;
  self->request(session, std::chrono::seconds(10), std::move(msg))
    .receive([&](Reply& x) { r = std::move(x); },
             [&](caf::error& e) { ADD_FAILURE() << caf::to_string(e); });
  return r;
}

} // namespace

TEST_F(session_fixture, adds_reports_commands_and_removes_torrents) {
  std::string data(3 * block_size + 100, 'x');
  std::ofstream(dir + "/a.bin", std::ios::binary) << data; // complete: checked, then finished
  auto a = small_torrent("a.bin", data, 1);
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{cfg};
    session_config sc;
    sc.io = &io;
    std::string err;
    auto listener = open_session_listener(sc, err);
    ASSERT_TRUE(listener) << err;
    session_options so;
    so.io = &io;
    so.listen_port = listener->port();
    auto session = spawn_session(sys, listener, so);
    {
      caf::scoped_actor self{sys};
      auto me = caf::actor_cast<caf::actor>(self);
      EXPECT_TRUE(ask<session_reply>(self, session, subscribe{me}).ok);
      torrent_options opts;
      opts.use_trackers = false;
      auto added = ask<add_torrent_result>(self, session, add_torrent{a, dir, opts});
      ASSERT_EQ(added.id, 1u) << added.why.message;

      auto evs = events_until(self, 1, torrent_event_kind::finished);
      ASSERT_FALSE(evs.empty());
      EXPECT_EQ(evs.front().kind, torrent_event_kind::added);
      EXPECT_EQ(evs.front().name, "a.bin");
      EXPECT_TRUE(has(evs, torrent_event_kind::checked));
      ASSERT_EQ(evs.back().kind, torrent_event_kind::finished);
      EXPECT_EQ(evs.back().progress.pieces_verified, 4u);
      EXPECT_TRUE(evs.back().progress.metrics.empty()); // metrics stay in the session

      // The same torrent twice is refused; so is a torrent whose path escapes the directory.
      auto again = ask<add_torrent_result>(self, session, add_torrent{a, dir, opts});
      EXPECT_EQ(again.id, 0u);
      EXPECT_EQ(again.why.code, errc::invalid_argument);
      EXPECT_NE(again.why.message.find("already in the session"), std::string::npos);
      auto bad = std::make_shared<metainfo>(*a);
      bad->hash[0] = 2;
      bad->name = "..";
      bad->files[0].path = {".."};
      auto refused = ask<add_torrent_result>(self, session, add_torrent{bad, dir, opts});
      EXPECT_EQ(refused.id, 0u);
      EXPECT_EQ(refused.why.code, errc::unsafe_path) << refused.why.message;

      // Commands name a torrent; an unknown one is an error, not silence.
      auto r = ask<session_reply>(self, session, session_pause{99});
      EXPECT_FALSE(r.ok);
      EXPECT_EQ(r.why.message, "no torrent 99");
      EXPECT_TRUE(ask<session_reply>(self, session, session_set_limits{1, {1000, 2000}}).ok);
      EXPECT_TRUE(ask<session_reply>(self, session, set_session_limits{0, 0, 10}).ok);

      EXPECT_TRUE(ask<session_reply>(self, session, remove_torrent{1}).ok);
      auto gone = events_until(self, 1, torrent_event_kind::removed);
      ASSERT_FALSE(gone.empty());
      EXPECT_EQ(gone.back().kind, torrent_event_kind::removed);
      EXPECT_EQ(gone.back().progress.pieces_verified, 4u); // its last report
      EXPECT_FALSE(ask<session_reply>(self, session, remove_torrent{1}).ok);

      // Added again after its removal: a new id.
      auto back = ask<add_torrent_result>(self, session, add_torrent{a, dir, opts});
      EXPECT_EQ(back.id, 2u) << back.why.message;
      self->send(session, stop_request{});
      bool stopped = false, removed = false;
      while (!stopped)
        self->receive([&](torrent_event& ev) {
                        removed |= ev.id == 2 && ev.kind == torrent_event_kind::removed;
                      },
                      [&](session_stopped&) { stopped = true; },
                      caf::after(std::chrono::seconds(10)) >> [&] { stopped = true; });
      EXPECT_TRUE(removed);
    }
    EXPECT_EQ(io.connection_count(), 0u);
  }
}

TEST_F(session_fixture, a_torrent_limit_set_through_the_api_holds_its_download) {
  // Two sessions in one process over loopback: A seeds, B downloads with a limit of 1 MiB/s
  // set through session_set_limits. Unlimited, 3 MiB take milliseconds here.
  std::string data(std::size_t{3} << 20, '\0');
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<char>((i * 2654435761u) >> 13);
  std::filesystem::create_directories(dir + "/seed");
  std::ofstream(dir + "/seed/p.bin", std::ios::binary) << data;
  auto m = small_torrent("p.bin", data, 7);
  io_runtime io_b{1};
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{cfg};
    std::string err;
    session_config sc;
    sc.io = &io;
    auto listener_a = open_session_listener(sc, err);
    ASSERT_TRUE(listener_a) << err;
    sc.io = &io_b;
    auto listener_b = open_session_listener(sc, err);
    ASSERT_TRUE(listener_b) << err;
    session_options so_a;
    so_a.io = &io;
    so_a.id.fill('a');
    so_a.listen_port = listener_a->port();
    session_options so_b;
    so_b.io = &io_b;
    so_b.id.fill('b');
    so_b.listen_port = listener_b->port();
    auto a = spawn_session(sys, listener_a, so_a);
    auto b = spawn_session(sys, listener_b, so_b);
    {
      caf::scoped_actor self{sys};
      ask<session_reply>(self, a, subscribe{caf::actor_cast<caf::actor>(self)});
      torrent_options seed_opts;
      seed_opts.use_trackers = false;
      ASSERT_EQ(ask<add_torrent_result>(self, a, add_torrent{m, dir + "/seed", seed_opts}).id, 1u);
      auto seeded = events_until(self, 1, torrent_event_kind::finished);
      ASSERT_EQ(seeded.back().kind, torrent_event_kind::finished);

      caf::scoped_actor watcher{sys};
      ask<session_reply>(watcher, b, subscribe{caf::actor_cast<caf::actor>(watcher)});
      torrent_options leech_opts;
      leech_opts.use_trackers = false;
      leech_opts.peers = {endpoint{"127.0.0.1", listener_a->port()}};
      auto t0 = std::chrono::steady_clock::now();
      auto id = ask<add_torrent_result>(watcher, b, add_torrent{m, dir + "/leech", leech_opts}).id;
      ASSERT_EQ(id, 1u);
      EXPECT_TRUE(ask<session_reply>(watcher, b, session_set_limits{id, {1u << 20, 0}}).ok);
      std::vector<torrent_event> evs;
      bool done = false;
      while (!done)
        watcher->receive(
          [&](torrent_event& ev) {
            done = ev.kind == torrent_event_kind::finished || ev.kind == torrent_event_kind::failed;
            evs.push_back(std::move(ev));
          },
          caf::after(std::chrono::seconds(20)) >> [&] { done = true; });
      double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ASSERT_EQ(evs.back().kind, torrent_event_kind::finished) << evs.back().why.message;
      // 3 MiB at 1 MiB/s, less one burst (1/20 s) and the first bytes before the limit landed.
      EXPECT_GE(seconds, 2.5);
      EXPECT_LE(seconds, 8.0);
      self->send(a, stop_request{});
      watcher->send(b, stop_request{});
    }
  }
  io_b.stop();
}

// [cluster] A worker's torrent through the session: no resume data read (so nothing is checked
// even with the whole content on disk) and none written.
TEST_F(session_fixture, save_resume_false_reads_checks_and_writes_no_resume_data) {
  std::string data(4 * block_size, 'r');
  std::ofstream(dir + "/w.bin", std::ios::binary) << data; // complete, but not trusted
  auto m = small_torrent("w.bin", data, 3);
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{cfg};
    session_config sc;
    sc.io = &io;
    std::string err;
    auto listener = open_session_listener(sc, err);
    ASSERT_TRUE(listener) << err;
    session_options so;
    so.io = &io;
    so.listen_port = listener->port();
    auto session = spawn_session(sys, listener, so);
    {
      caf::scoped_actor self{sys};
      ask<session_reply>(self, session, subscribe{caf::actor_cast<caf::actor>(self)});
      torrent_options opts;
      opts.use_trackers = false;
      opts.save_resume = false;
      opts.report_pieces = true;
      auto added = ask<add_torrent_result>(self, session, add_torrent{m, dir, opts});
      ASSERT_EQ(added.id, 1u) << added.why.message;
      auto evs = events_until(self, 1, torrent_event_kind::checked);
      ASSERT_EQ(evs.back().kind, torrent_event_kind::checked);
      EXPECT_EQ(evs.back().progress.pieces_verified, 0u) << "existing data was trusted";
      EXPECT_EQ(evs.back().progress.check_total, 0u) << "existing data was checked";
      EXPECT_FALSE(has(evs, torrent_event_kind::pieces_verified));
      EXPECT_FALSE(has(evs, torrent_event_kind::finished));
      EXPECT_TRUE(ask<session_reply>(self, session, remove_torrent{1}).ok);
      auto gone = events_until(self, 1, torrent_event_kind::removed);
      ASSERT_EQ(gone.back().kind, torrent_event_kind::removed);
      EXPECT_FALSE(has(gone, torrent_event_kind::finished));
      self->send(session, stop_request{});
      self->receive([](session_stopped&) {},
                    caf::after(std::chrono::seconds(10)) >> [] { ADD_FAILURE() << "no stop"; });
    }
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/.actorrent")) << "resume data was written";
}

// [cluster] A worker's life over real sockets: it starts without a shard (empty filter) and
// without peers; the peers and the shard come through the session API; the pieces it fetched
// come back as pieces_verified events, before `finished`.
TEST_F(session_fixture, a_shard_and_peers_given_later_are_fetched_and_reported) {
  std::string data(8 * block_size, '\0');
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<char>((i * 2654435761u) >> 11);
  std::filesystem::create_directories(dir + "/seed");
  std::ofstream(dir + "/seed/s.bin", std::ios::binary) << data;
  auto m = small_torrent("s.bin", data, 9);
  io_runtime io_b{1};
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{cfg};
    std::string err;
    session_config sc;
    sc.io = &io;
    auto listener_a = open_session_listener(sc, err);
    ASSERT_TRUE(listener_a) << err;
    sc.io = &io_b;
    auto listener_b = open_session_listener(sc, err);
    ASSERT_TRUE(listener_b) << err;
    session_options so_a;
    so_a.io = &io;
    so_a.id.fill('a');
    so_a.listen_port = listener_a->port();
    session_options so_b;
    so_b.io = &io_b;
    so_b.id.fill('b');
    so_b.listen_port = listener_b->port();
    auto a = spawn_session(sys, listener_a, so_a);
    auto b = spawn_session(sys, listener_b, so_b);
    {
      caf::scoped_actor self{sys};
      ask<session_reply>(self, a, subscribe{caf::actor_cast<caf::actor>(self)});
      torrent_options seed_opts;
      seed_opts.use_trackers = false;
      ASSERT_EQ(ask<add_torrent_result>(self, a, add_torrent{m, dir + "/seed", seed_opts}).id, 1u);
      ASSERT_EQ(events_until(self, 1, torrent_event_kind::finished).back().kind,
                torrent_event_kind::finished);

      caf::scoped_actor worker{sys};
      ask<session_reply>(worker, b, subscribe{caf::actor_cast<caf::actor>(worker)});
      torrent_options wo;
      wo.use_trackers = false;
      wo.save_resume = false;
      wo.report_pieces = true;
      wo.piece_filter = std::vector<std::uint32_t>{};
      auto id = ask<add_torrent_result>(worker, b, add_torrent{m, dir + "/work", wo}).id;
      ASSERT_EQ(id, 1u);
      EXPECT_FALSE(ask<session_reply>(worker, b, session_add_peers{99, {}}).ok);
      EXPECT_FALSE(ask<session_reply>(worker, b, session_set_piece_filter{99, {}}).ok);
      EXPECT_TRUE(ask<session_reply>(
                    worker, b, session_add_peers{id, {endpoint{"127.0.0.1", listener_a->port()}}})
                    .ok);
      EXPECT_TRUE(
        ask<session_reply>(worker, b, session_set_piece_filter{id, {false, {2, 5, 6}}}).ok);
      auto evs = events_until(worker, id, torrent_event_kind::finished);
      ASSERT_EQ(evs.back().kind, torrent_event_kind::finished) << evs.back().why.message;
      std::vector<std::uint32_t> reported;
      for (auto& ev : evs)
        if (ev.kind == torrent_event_kind::pieces_verified)
          reported.insert(reported.end(), ev.pieces.begin(), ev.pieces.end());
      std::sort(reported.begin(), reported.end());
      EXPECT_EQ(reported, (std::vector<std::uint32_t>{2, 5, 6}));
      EXPECT_EQ(evs.back().progress.pieces_verified, 3u);
      // Written: the shard's bytes are in the file, the rest is not.
      std::ifstream in(dir + "/work/s.bin", std::ios::binary);
      std::string disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      ASSERT_GE(disk.size(), 7 * block_size);
      EXPECT_EQ(disk.substr(2 * block_size, block_size), data.substr(2 * block_size, block_size));
      EXPECT_EQ(disk.substr(5 * block_size, 2 * block_size),
                data.substr(5 * block_size, 2 * block_size));
      EXPECT_NE(disk.substr(0, block_size), data.substr(0, block_size));
      self->send(a, stop_request{});
      worker->send(b, stop_request{});
    }
  }
  io_b.stop();
}

TEST(merge_metrics, labels_every_series_and_keeps_one_help_per_family) {
  std::string one = "# HELP actorrent_x things\n# TYPE actorrent_x counter\nactorrent_x 1\n"
                    "# HELP actorrent_y gauge of y\n# TYPE actorrent_y gauge\nactorrent_y 2.5\n";
  std::string two = "# HELP actorrent_x things\n# TYPE actorrent_x counter\nactorrent_x 7\n";
  auto text = merge_metrics({{"aaaa", one}, {"bbbb", two}});
  EXPECT_EQ(text, "# HELP actorrent_x things\n# TYPE actorrent_x counter\n"
                  "actorrent_x{torrent=\"aaaa\"} 1\nactorrent_x{torrent=\"bbbb\"} 7\n"
                  "# HELP actorrent_y gauge of y\n# TYPE actorrent_y gauge\n"
                  "actorrent_y{torrent=\"aaaa\"} 2.5\n");
}
