// The coordinator and the worker over a real middleman on 127.0.0.1, in one process: the
// coordinator in one actor system, the workers in another (scoped actors stand in for workers
// where the test needs to control every message).
#include <chrono>
#include <filesystem>
#include <cstdlib>
#include <future>
#include <optional>
#include <string>
#include <thread>

#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <gtest/gtest.h>

#include "cluster/coordinator.hpp"
#include "cluster/frame.hpp"
#include "cluster/node_common.hpp"
#include "cluster/wire.hpp"
#include "cluster/worker.hpp"
#include "protocol/metainfo.hpp"
#include "storage/write_fence.hpp"

// Every test here runs actor systems on CAF's real threads and its middleman: Debian's
// libcaf_core is not instrumented, so ThreadSanitizer cannot see their synchronisation (see
// deploy/tsan.supp). They run in the ASan/UBSan stage and the normal suite.
#if defined(__SANITIZE_THREAD__)
#define ACTORRENT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ACTORRENT_TSAN 1
#endif
#endif
#ifdef ACTORRENT_TSAN
// Even starting and stopping an actor system with the middleman is reported: nothing of this
// file is compiled in a TSan build but a test that says why.
TEST(cluster_nodes, not_checked_under_thread_sanitizer) {
  GTEST_SKIP() << "actor systems on CAF's real threads are not checked under TSan";
}
#else

using namespace actorrent;
using namespace actorrent::cluster;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t pieces = 64;

/// A single-file torrent of 64 pieces of 16 KiB (the hashes are never checked here).
std::string torrent_bytes(const std::string& name) {
  std::string hashes(pieces * 20, 'h');
  std::string info = "d6:lengthi" + std::to_string(pieces * 16384) + "e4:name" +
                     std::to_string(name.size()) + ":" + name + "12:piece lengthi16384e6:pieces" +
                     std::to_string(hashes.size()) + ":" + hashes + "e";
  return "d4:info" + info + "e";
}

struct node_system {
  caf::actor_system_config cfg;
  std::optional<caf::actor_system> sys;
  node_system() {
    configure_node(cfg);
    cfg.set("scheduler.max-threads", 2);
    sys.emplace(cfg);
  }
};

/// A coordinator in system `a`, workers to be made in system `b`.
struct coordinator_run {
  // First: the coordinator reports its exit from its own thread, until system `a` is gone.
  std::promise<int> exited;
  node_system a; // the coordinator's
  node_system b; // the workers'
  std::shared_ptr<const metainfo> meta;
  std::string bytes = torrent_bytes("cluster-test");
  caf::actor coordinator;
  std::uint16_t port = 0;

  void start(std::uint32_t workers, job_mode mode = job_mode::shared,
             const std::string& state_dir = {}) {
    auto m = parse_metainfo(bytes);
    ASSERT_TRUE(m.ok());
    meta = std::make_shared<const metainfo>(std::move(*m));
    coordinator_config cc;
    cc.meta = meta;
    cc.torrent_bytes = bytes;
    cc.listen_host = "127.0.0.1";
    cc.listen_port = 0;
    cc.workers = workers;
    cc.mode = mode;
    cc.state_dir = state_dir;
    cc.quiet = true;
    cc.on_exit = [this](int code) { exited.set_value(code); };
    std::string err;
    coordinator = spawn_coordinator(*a.sys, std::move(cc), port, err);
    ASSERT_TRUE(coordinator) << err;
    ASSERT_NE(port, 0);
  }

  ~coordinator_run() {
    if (coordinator)
      stop_coordinator(coordinator, 0);
    coordinator = nullptr;
  }

  caf::actor remote() {
    auto r = connect_to_coordinator(*b.sys, "127.0.0.1", port, 5s);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : caf::actor{};
  }
};

struct coordinator_fixture : ::testing::Test, coordinator_run {};

/// Waits for the next frame of a kind (others are skipped); nullopt after `timeout`.
std::optional<wire::Envelope> next(caf::scoped_actor& self,
                                   bool (wire::Envelope::*has)() const,
                                   std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return std::nullopt;
    std::optional<wire::Envelope> got;
    bool timed_out = false;
    self->receive([&](cluster_frame& f) {
                    auto env = decode(f.bytes, nullptr);
                    if (env && ((*env).*has)())
                      got = std::move(*env);
                  },
                  caf::after(left) >> [&] { timed_out = true; });
    if (got)
      return got;
    if (timed_out)
      return std::nullopt;
  }
}

std::string hello(const std::string& name, const info_hash& hash,
                  const std::string& listen = "127.0.0.1:1", std::uint64_t rate_cap = 0) {
  wire::Envelope env;
  env.mutable_hello()->set_name(name);
  env.mutable_hello()->set_download_limit(rate_cap);
  env.mutable_hello()->set_listen(listen);
  return encode(std::move(env), hash);
}

Roaring pieces_of(const wire::Assign& a) {
  auto r = bitmap_from(a.pieces(), pieces);
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : Roaring{};
}

} // namespace

TEST_F(coordinator_fixture, refuses_another_version_with_the_reason) {
  start(1);
  auto c = remote();
  ASSERT_TRUE(c);
  caf::scoped_actor self{*b.sys};
  wire::Envelope env;
  env.set_version(protocol_version() + 1);
  env.mutable_hello()->set_name("w");
  self->send(c, cluster_frame{env.SerializeAsString()});
  auto r = next(self, &wire::Envelope::has_refused, 5s);
  ASSERT_TRUE(r);
  EXPECT_NE(r->refused().reason().find("protocol version " +
                                       std::to_string(protocol_version() + 1)),
            std::string::npos)
    << r->refused().reason();
}

TEST_F(coordinator_fixture, refuses_a_worker_of_another_torrent) {
  start(1);
  auto c = remote();
  ASSERT_TRUE(c);
  caf::scoped_actor self{*b.sys};
  info_hash other{};
  other.fill(7);
  self->send(c, cluster_frame{hello("w", other)});
  auto r = next(self, &wire::Envelope::has_refused, 5s);
  ASSERT_TRUE(r);
  EXPECT_NE(r->refused().reason().find(to_hex(meta->hash)), std::string::npos)
    << r->refused().reason();
}

TEST_F(coordinator_fixture, refuses_a_duplicate_name_while_its_worker_lives) {
  start(2);
  auto c = remote();
  ASSERT_TRUE(c);
  caf::scoped_actor w1{*b.sys};
  caf::scoped_actor w2{*b.sys};
  w1->send(c, cluster_frame{hello("same", info_hash{})});
  ASSERT_TRUE(next(w1, &wire::Envelope::has_welcome, 5s));
  w2->send(c, cluster_frame{hello("same", info_hash{})});
  auto r = next(w2, &wire::Envelope::has_refused, 5s);
  ASSERT_TRUE(r);
  EXPECT_NE(r->refused().reason().find("already"), std::string::npos) << r->refused().reason();
}

// A real worker (no session: it is refused before it would add the torrent) sends another
// version through the test knob: both sides name the version.
TEST_F(coordinator_fixture, a_worker_of_another_version_exits_with_the_reason) {
  start(1);
  auto c = remote();
  ASSERT_TRUE(c);
  setenv("ACTORRENT_CLUSTER_PROTOCOL_VERSION", "99", 1);
  std::promise<std::pair<int, std::string>> done;
  worker_config wc;
  wc.coordinator = c;
  wc.name = "old";
  wc.on_exit = [&](int code, const std::string& why) { done.set_value({code, why}); };
  spawn_worker(*b.sys, std::move(wc));
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  unsetenv("ACTORRENT_CLUSTER_PROTOCOL_VERSION");
  auto [code, why] = f.get();
  EXPECT_EQ(code, 1);
  EXPECT_NE(why.find("refused by the coordinator"), std::string::npos) << why;
  EXPECT_NE(why.find("protocol version 99"), std::string::npos) << why;
}

// Two workers share the pieces; one vanishes. Its pieces go to the other only after its last
// lease has run out (2 s), and well within 5 s.
TEST_F(coordinator_fixture, a_lost_workers_pieces_move_after_its_lease) {
  start(2);
  auto c = remote();
  ASSERT_TRUE(c);
  caf::scoped_actor keeper{*b.sys};
  std::optional<caf::scoped_actor> leaver;
  leaver.emplace(*b.sys);
  keeper->send(c, cluster_frame{hello("keeper", info_hash{})});
  ASSERT_TRUE(next(keeper, &wire::Envelope::has_welcome, 5s));
  (*leaver)->send(c, cluster_frame{hello("leaver", info_hash{})});
  ASSERT_TRUE(next(*leaver, &wire::Envelope::has_welcome, 5s));
  auto a1 = next(keeper, &wire::Envelope::has_assign, 5s);
  auto a2 = next(*leaver, &wire::Envelope::has_assign, 5s);
  ASSERT_TRUE(a1 && a2);
  auto kept = pieces_of(a1->assign());
  auto lost = pieces_of(a2->assign());
  ASSERT_FALSE(lost.isEmpty());
  EXPECT_TRUE((kept & lost).isEmpty()) << "a piece was given to two workers";
  wire::Envelope ack;
  ack.mutable_ack()->set_epoch(a1->assign().epoch());
  keeper->send(c, cluster_frame{encode(ack, meta->hash)});
  // The leaver asks for a lease (a report), gets it, then disappears right after it.
  wire::Envelope report;
  report.mutable_report()->set_seq(1);
  report.mutable_report()->set_verified(bitmap_bytes(Roaring{}));
  (*leaver)->send(c, cluster_frame{encode(report, meta->hash)});
  auto granted = next(*leaver, &wire::Envelope::has_lease, 5s);
  ASSERT_TRUE(granted);
  EXPECT_EQ(granted->lease().echo(), 1u) << "a lease answers the report it was asked by";
  auto lease_at = std::chrono::steady_clock::now();
  leaver.reset();
  // The keeper is told of every lost piece: in one or more new assignments.
  Roaring now_held = kept;
  std::optional<std::chrono::steady_clock::time_point> moved_at;
  auto deadline = lease_at + 8s;
  while (std::chrono::steady_clock::now() < deadline && !lost.isSubset(now_held)) {
    auto a = next(keeper, &wire::Envelope::has_assign, 1s);
    if (!a)
      continue;
    now_held = pieces_of(a->assign());
    if (!moved_at && !(now_held & lost).isEmpty())
      moved_at = std::chrono::steady_clock::now();
  }
  ASSERT_TRUE(moved_at) << "the lost worker's pieces were never reassigned";
  EXPECT_TRUE(lost.isSubset(now_held));
  auto after = std::chrono::duration_cast<std::chrono::milliseconds>(*moved_at - lease_at);
  EXPECT_GE(after.count(), 1900) << "reassigned while the lost worker's lease still held";
  EXPECT_LT(after.count(), 5000);
}

// Reports count toward completion; the last one ends the job with Done and exit code 0.
TEST_F(coordinator_fixture, completes_with_done_when_every_piece_is_reported) {
  start(1);
  auto c = remote();
  ASSERT_TRUE(c);
  std::optional<caf::scoped_actor> holder;
  holder.emplace(*b.sys);
  auto& w = *holder;
  w->send(c, cluster_frame{hello("only", info_hash{})});
  ASSERT_TRUE(next(w, &wire::Envelope::has_welcome, 5s));
  Roaring all;
  all.addRange(0, pieces);
  Roaring reported;
  auto deadline = std::chrono::steady_clock::now() + 15s;
  bool done = false;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    std::optional<wire::Envelope> got;
    w->receive([&](cluster_frame& f) {
                 if (auto env = decode(f.bytes, &meta->hash))
                   got = std::move(*env);
               },
               caf::after(2s) >> [] {});
    if (!got)
      continue;
    if (got->has_done()) {
      done = true;
    } else if (got->has_assign()) {
      auto shard = pieces_of(got->assign());
      wire::Envelope ack;
      ack.mutable_ack()->set_epoch(got->assign().epoch());
      w->send(c, cluster_frame{encode(ack, meta->hash)});
      wire::Envelope rep;
      rep.mutable_report()->set_epoch(got->assign().epoch());
      rep.mutable_report()->set_verified(bitmap_bytes(shard));
      rep.mutable_report()->set_rate(1 << 20);
      w->send(c, cluster_frame{encode(rep, meta->hash)});
      reported |= shard;
    }
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(reported, all);
  auto f = exited.get_future();
  holder.reset(); // the worker leaves: the coordinator need not wait for it
  ASSERT_EQ(f.wait_for(12s), std::future_status::ready);
  EXPECT_EQ(f.get(), 0);
}

// Replicate mode: a worker whose shard is done, with nothing left to hand out, is told to fetch
// everything from the other workers; the job ends only when every worker has everything.
TEST_F(coordinator_fixture, replicate_sends_everything_and_waits_for_every_replica) {
  start(2, job_mode::replicate);
  auto c = remote();
  ASSERT_TRUE(c);
  caf::scoped_actor w1{*b.sys};
  caf::scoped_actor w2{*b.sys};
  w1->send(c, cluster_frame{hello("w1", info_hash{}, "127.0.0.1:6001")});
  ASSERT_TRUE(next(w1, &wire::Envelope::has_welcome, 5s));
  w2->send(c, cluster_frame{hello("w2", info_hash{}, "127.0.0.1:6002")});
  ASSERT_TRUE(next(w2, &wire::Envelope::has_welcome, 5s));
  // Each reports its whole shard verified until it is told to fetch everything.
  auto work = [&](caf::scoped_actor& w) -> std::optional<wire::Assign> {
    for (int i = 0; i < 20; ++i) {
      auto a = next(w, &wire::Envelope::has_assign, 5s);
      if (!a)
        return std::nullopt;
      if (a->assign().everything())
        return a->assign();
      wire::Envelope ack;
      ack.mutable_ack()->set_epoch(a->assign().epoch());
      w->send(c, cluster_frame{encode(ack, meta->hash)});
      wire::Envelope rep;
      rep.mutable_report()->set_epoch(a->assign().epoch());
      rep.mutable_report()->set_verified(a->assign().pieces());
      w->send(c, cluster_frame{encode(rep, meta->hash)});
    }
    return std::nullopt;
  };
  auto e1 = work(w1);
  auto e2 = work(w2);
  ASSERT_TRUE(e1 && e2);
  ASSERT_EQ(e1->cluster_peers_size(), 1);
  EXPECT_EQ(e1->cluster_peers(0), "127.0.0.1:6002");
  ASSERT_EQ(e2->cluster_peers_size(), 1);
  EXPECT_EQ(e2->cluster_peers(0), "127.0.0.1:6001");
  auto whole = [&](caf::scoped_actor& w) {
    wire::Envelope rep;
    rep.mutable_report()->set_verified(bitmap_bytes(Roaring{}));
    rep.mutable_report()->set_has_everything(true);
    w->send(c, cluster_frame{encode(rep, meta->hash)});
  };
  whole(w1);
  EXPECT_FALSE(next(w1, &wire::Envelope::has_done, 1500ms)) << "done before w2 had everything";
  whole(w2);
  EXPECT_TRUE(next(w2, &wire::Envelope::has_done, 5s));
}

// A coordinator stopped mid-job and started again with the same state resumes: the pieces
// verified before are never assigned again.
TEST(coordinator_restart, restores_the_plan_and_never_reassigns_verified_pieces) {
  auto dir = std::filesystem::temp_directory_path() /
             ("actorrent-nodes-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  Roaring first;
  {
    coordinator_run run;
    run.start(1, job_mode::shared, dir.string());
    auto c = run.remote();
    ASSERT_TRUE(c);
    caf::scoped_actor w{*run.b.sys};
    // A slow worker (16 KiB/s): its first shard is a part of the torrent.
    w->send(c, cluster_frame{hello("w", info_hash{}, "127.0.0.1:1", 16384)});
    ASSERT_TRUE(next(w, &wire::Envelope::has_welcome, 5s));
    auto a = next(w, &wire::Envelope::has_assign, 5s);
    ASSERT_TRUE(a);
    first = pieces_of(a->assign());
    ASSERT_FALSE(first.isEmpty());
    ASSERT_LT(first.cardinality(), pieces);
    wire::Envelope ack;
    ack.mutable_ack()->set_epoch(a->assign().epoch());
    w->send(c, cluster_frame{encode(ack, run.meta->hash)});
    wire::Envelope rep;
    rep.mutable_report()->set_epoch(a->assign().epoch());
    rep.mutable_report()->set_verified(a->assign().pieces());
    w->send(c, cluster_frame{encode(rep, run.meta->hash)});
    std::this_thread::sleep_for(300ms); // the report is handled
    auto f = run.exited.get_future();
    stop_coordinator(run.coordinator, 130); // saves the plan on its way out
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    run.coordinator = nullptr;
  }
  coordinator_run again;
  again.start(1, job_mode::shared, dir.string());
  auto c = again.remote();
  ASSERT_TRUE(c);
  caf::scoped_actor w{*again.b.sys};
  w->send(c, cluster_frame{hello("w", info_hash{})});
  ASSERT_TRUE(next(w, &wire::Envelope::has_welcome, 5s));
  auto a = next(w, &wire::Envelope::has_assign, 5s);
  ASSERT_TRUE(a);
  auto second = pieces_of(a->assign());
  EXPECT_FALSE(second.isEmpty());
  EXPECT_TRUE((first & second).isEmpty()) << "a piece verified before the restart was reassigned";
  EXPECT_GT(a->assign().epoch(), 1u);
  std::filesystem::remove_all(dir);
}

// A worker (without a session: only its protocol side) against a coordinator played by the
// test: Assign sets the fence's pieces and is acknowledged, Lease opens the fence, and losing
// the coordinator closes it at once and ends the worker with exit code 1.
TEST(worker_node, fences_by_assignment_and_lease_and_closes_when_the_coordinator_is_lost) {
  node_system a;
  node_system b;
  auto bytes = torrent_bytes("worker-test");
  auto meta = parse_metainfo(bytes);
  ASSERT_TRUE(meta.ok());
  std::optional<caf::scoped_actor> coordinator;
  coordinator.emplace(*a.sys);
  auto port = a.sys->middleman().publish(caf::actor_cast<caf::actor>(*coordinator), 0,
                                         "127.0.0.1", true);
  ASSERT_TRUE(port);
  auto remote = connect_to_coordinator(*b.sys, "127.0.0.1", *port, 5s);
  ASSERT_TRUE(remote.ok());
  auto fence = std::make_shared<write_fence>();
  std::promise<std::pair<int, std::string>> done;
  worker_config wc;
  wc.coordinator = *remote;
  wc.name = "w";
  wc.fence = fence;
  wc.on_exit = [&](int code, const std::string& why) { done.set_value({code, why}); };
  spawn_worker(*b.sys, std::move(wc));

  auto& c = *coordinator;
  caf::actor worker;
  std::optional<wire::Envelope> got;
  c->receive([&](cluster_frame& f) {
    worker = caf::actor_cast<caf::actor>(c->current_sender());
    if (auto env = decode(f.bytes, nullptr))
      got = std::move(*env);
  });
  ASSERT_TRUE(got && got->has_hello());
  EXPECT_EQ(got->hello().name(), "w");
  wire::Envelope welcome;
  welcome.mutable_welcome()->set_worker_id(1);
  welcome.mutable_welcome()->set_lease_ms(2000);
  welcome.mutable_welcome()->set_torrent(bytes);
  c->send(worker, cluster_frame{encode(welcome, meta->hash)});
  Roaring shard;
  shard.add(3);
  shard.add(9);
  wire::Envelope assign;
  assign.mutable_assign()->set_epoch(5);
  assign.mutable_assign()->set_pieces(bitmap_bytes(shard));
  c->send(worker, cluster_frame{encode(assign, meta->hash)});
  auto ack = next(c, &wire::Envelope::has_ack, 5s);
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->ack().epoch(), 5u);
  EXPECT_FALSE(fence->allows(3)) << "no lease yet";
  // A lease runs from when the worker sent the report it answers: one answering a report sent
  // more than 2 s ago (it sat in the socket while the worker was frozen) opens nothing.
  auto old_report = next(c, &wire::Envelope::has_report, 5s);
  ASSERT_TRUE(old_report);
  std::this_thread::sleep_for(2100ms);
  wire::Envelope stale;
  stale.mutable_lease()->set_valid_ms(2000);
  stale.mutable_lease()->set_echo(old_report->report().seq());
  c->send(worker, cluster_frame{encode(stale, meta->hash)});
  wire::Envelope unasked; // and a lease without an echo is no lease at all
  unasked.mutable_lease()->set_valid_ms(2000);
  c->send(worker, cluster_frame{encode(unasked, meta->hash)});
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(fence->allows(3)) << "a lease that had run out when it was read opened the fence";
  // A fresh report's lease opens it.
  auto report = next(c, &wire::Envelope::has_report, 5s);
  ASSERT_TRUE(report);
  EXPECT_GT(report->report().seq(), old_report->report().seq());
  wire::Envelope lease;
  lease.mutable_lease()->set_valid_ms(2000);
  lease.mutable_lease()->set_echo(report->report().seq());
  c->send(worker, cluster_frame{encode(lease, meta->hash)});
  // The lease is applied when the worker handles it: wait for it to show.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!fence->allows(3) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(fence->allows(3));
  EXPECT_TRUE(fence->allows(9));
  EXPECT_FALSE(fence->allows(4)) << "outside the shard";

  coordinator.reset(); // the coordinator's actor ends: the worker gets its down_msg
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(fence->allows(3)) << "the fence stays open after the coordinator is lost";
  auto [code, why] = f.get();
  EXPECT_EQ(code, 1);
  EXPECT_NE(why.find("lost the coordinator"), std::string::npos) << why;
}

// Replicate mode: once a worker fetches everything, a later shard (a lost worker's pieces) does
// not narrow what it may write; pieces of a new shard it already has are reported again.
TEST(worker_node, everything_is_never_narrowed_by_a_later_shard) {
  node_system a;
  node_system b;
  auto bytes = torrent_bytes("worker-test");
  auto meta = parse_metainfo(bytes);
  ASSERT_TRUE(meta.ok());
  caf::scoped_actor c{*a.sys};
  auto port = a.sys->middleman().publish(caf::actor_cast<caf::actor>(c), 0, "127.0.0.1", true);
  ASSERT_TRUE(port);
  auto remote = connect_to_coordinator(*b.sys, "127.0.0.1", *port, 5s);
  ASSERT_TRUE(remote.ok());
  auto fence = std::make_shared<write_fence>();
  worker_config wc;
  wc.coordinator = *remote;
  wc.name = "w";
  wc.fence = fence;
  auto w = spawn_worker(*b.sys, std::move(wc));
  caf::actor worker;
  c->receive([&](cluster_frame&) { worker = caf::actor_cast<caf::actor>(c->current_sender()); });
  wire::Envelope welcome;
  welcome.mutable_welcome()->set_worker_id(1);
  welcome.mutable_welcome()->set_mode(wire::MODE_REPLICATE);
  welcome.mutable_welcome()->set_lease_ms(2000);
  welcome.mutable_welcome()->set_torrent(bytes);
  c->send(worker, cluster_frame{encode(welcome, meta->hash)});
  auto report = next(c, &wire::Envelope::has_report, 5s);
  ASSERT_TRUE(report);
  wire::Envelope lease;
  lease.mutable_lease()->set_valid_ms(2000);
  lease.mutable_lease()->set_echo(report->report().seq());
  c->send(worker, cluster_frame{encode(lease, meta->hash)});
  wire::Envelope all;
  all.mutable_assign()->set_epoch(7);
  all.mutable_assign()->set_everything(true);
  c->send(worker, cluster_frame{encode(all, meta->hash)});
  ASSERT_TRUE(next(c, &wire::Envelope::has_ack, 5s));
  EXPECT_TRUE(fence->allows(40));
  Roaring one;
  one.add(3);
  wire::Envelope narrow;
  narrow.mutable_assign()->set_epoch(8);
  narrow.mutable_assign()->set_pieces(bitmap_bytes(one));
  c->send(worker, cluster_frame{encode(narrow, meta->hash)});
  auto ack = next(c, &wire::Envelope::has_ack, 5s);
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->ack().epoch(), 8u);
  EXPECT_TRUE(fence->allows(40)) << "a later shard narrowed 'everything'";
  stop_worker(w, 0);
}

#endif // ACTORRENT_TSAN
