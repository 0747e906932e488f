// Deterministic tests of the torrent actor together with its storage actor: both run on CAF's
// test scheduler (nothing moves until the test runs the queue), the peers are scripted actors
// that record what the torrent tells them, and blocks reach storage exactly as a peer actor
// would send them. Covers the block-provenance cases: two copies of a block in one read, a
// liar's end-game copy landing after the honest one, and blocks taken back from a peer on parole.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "actors/extension_messages.hpp"
#include "actors/dht_actor.hpp"
#include "actors/messages.hpp"
#include "tests/actors/deterministic.hpp"
#include "actors/peer_actor.hpp"
#include "actors/storage_actor.hpp"
#include "actors/torrent_actor.hpp"
#include "actors/tracker_actor.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/sha1.hpp"
#include "storage/disk_pool.hpp"
#include "storage/file_store.hpp"
#include "storage/resume.hpp"
#include "storage/write_fence.hpp"

using namespace actorrent;

namespace {

constexpr std::uint32_t K = block_size;

/// What the torrent told one scripted peer.
struct peer_log {
  peer_config pc;
  caf::actor handle;
  std::vector<block_ref> requested;
  std::vector<block_ref> cancelled;
  bool disconnected = false;
  std::string reason;
  bool choked = true; // the last set_choke the torrent sent it
  std::vector<std::uint32_t> metadata_asked; // BEP 9 request_metadata (awaiting metadata)
};

struct world {
  std::map<peer_slot, peer_log> peers;
  std::vector<torrent_progress> progress;
  bool finished = false;
  int finished_count = 0;
  std::vector<tracker::event> announces; // what the scripted tracker was asked, in order
  bool hold_announces = false; // the scripted tracker keeps its replies (answer_announce())
  int held_announces = 0;
  bool slow_close = false; // a disconnected peer closes when the test says (finish_close())
  bool failed = false;
  bool stopped = false;
  torrent_progress final; // from torrent_stopped
  // [cluster] torrent_pieces_verified batches, and the order of batches ("pieces"), finished
  // and stopped as the observer saw them.
  std::vector<std::vector<std::uint32_t>> reported;
  std::vector<std::string> order;
};

caf::behavior scripted_peer(caf::event_based_actor* self, peer_config pc,
                            std::shared_ptr<world> w) {
  auto slot = pc.slot;
  return {
    [=](request_blocks& r) {
      auto& v = w->peers[slot].requested;
      v.insert(v.end(), r.blocks.begin(), r.blocks.end());
    },
    [=](cancel_blocks& c) {
      auto& v = w->peers[slot].cancelled;
      v.insert(v.end(), c.blocks.begin(), c.blocks.end());
    },
    [=](disconnect_peer& d) {
      auto& p = w->peers[slot];
      p.disconnected = true;
      p.reason = d.reason;
      if (w->slow_close)
        return;
      self->send(p.pc.torrent, peer_closed{slot, d.reason, false});
      self->quit();
    },
    [=](set_interested) {},
    [=](set_choke c) { w->peers[slot].choked = c.choke; },
    [=](our_pieces&) {},
    [=](const request_metadata& r) { w->peers[slot].metadata_asked.push_back(r.piece); },
  };
}

/// Spawns a scripted_peer for every peer the torrent dials or accepts, and records it.
std::function<caf::actor(caf::actor_system&, const peer_config&)>
scripted_peers(std::shared_ptr<world> w) {
  return [w](caf::actor_system& s, const peer_config& pc) {
    auto h = s.spawn(scripted_peer, pc, w);
    w->peers[pc.slot].pc = pc;
    w->peers[pc.slot].handle = h;
    return h;
  };
}

caf::behavior observer(caf::event_based_actor*, std::shared_ptr<world> w) {
  return {
    [=](torrent_progress& p) { w->progress.push_back(std::move(p)); },
    [=](torrent_finished&) {
      w->finished = true;
      ++w->finished_count;
      w->order.push_back("finished");
    },
    [=](torrent_failed&) { w->failed = true; },
    [=](torrent_stopped& s) {
      w->stopped = true;
      w->final = std::move(s.final);
      w->order.push_back("stopped");
    },
    [=](torrent_pieces_verified& pv) {
      w->reported.push_back(std::move(pv.pieces));
      w->order.push_back("pieces");
    },
  };
}

announce_result tracker_reply() {
  announce_result r;
  r.url = "http://127.0.0.1:1/announce";
  r.interval = 1800;
  return r;
}

/// Stands in for the tracker announcer: records each event and answers at once (no peers), or
/// later while the world holds announces.
caf::behavior scripted_tracker(caf::event_based_actor* self, caf::actor torrent,
                               std::shared_ptr<world> w) {
  return {
    [=](const announce& a) {
      w->announces.push_back(a.ev);
      if (w->hold_announces) {
        ++w->held_announces;
        return;
      }
      announce_result r;
      r.url = "http://127.0.0.1:1/announce";
      r.interval = 1800;
      self->send(torrent, std::move(r));
    },
    [=](stop_request) { self->quit(); },
  };
}

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{actor_test::deterministic(cfg)};
  caf::scheduler::test_coordinator& sched =
    dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  std::shared_ptr<world> w = std::make_shared<world>();
  std::shared_ptr<metainfo> meta = std::make_shared<metainfo>();
  std::string data;
  std::string dir;
  std::ostringstream log;
  caf::actor torrent;
  std::shared_ptr<const file_layout> layout_;

  struct options {
    bool data_on_disk = false;  // the whole content is already there, to be checked
    bool stop_at_start = false; // told to stop before anything ran: during the data check
    bool tracker = false;       // announces go to a scripted tracker (w->announces)
    bool pause_at_start = false; // told to pause during the data check
    std::uint32_t max_peers = 50;
    bool fail_at_start = false; // storage reports a failure during the data check
    bool hold_start = false;    // nothing runs until the test runs the scheduler
    std::uint32_t upload_slots = 4;
    // [cluster]
    std::optional<std::vector<std::uint32_t>> piece_filter{};
    bool report_pieces = false;
    bool save_resume = true;
    std::shared_ptr<write_fence> fence{};
    std::uint32_t min_request_timeout_ms = 3000;
    std::uint32_t request_timeout_s = 60;
    bool dht = false;        // the session runs a DHT on UDP port 7777 (BEP 5)
    bool is_private = false; // BEP 27
  };

  /// A torrent of `pieces` pieces of 4 blocks; `peers` scripted peers are known to it.
  explicit fixture(std::uint32_t pieces, std::uint32_t peers) : fixture(pieces, peers, {}) {}
  fixture(std::uint32_t pieces, std::uint32_t peers, options opt) {
    actor_test::route_loggers(std::make_shared<spdlog::sinks::ostream_sink_mt>(log),
                           spdlog::level::debug);
    std::mt19937 rng(11);
    data.resize(std::size_t{pieces} * 4 * K);
    for (auto& c : data)
      c = static_cast<char>(rng());
    meta->name = "t.bin";
    meta->piece_length = 4 * K;
    meta->total_size = data.size();
    meta->files.push_back(file_entry{{"t.bin"}, data.size(), false});
    meta->is_private = opt.is_private;
    for (std::uint32_t p = 0; p < pieces; ++p)
      meta->piece_hashes.push_back(sha1(std::string_view(data).substr(p * 4ull * K, 4 * K)));
    char tmpl[] = "/tmp/torrent_actor_test.XXXXXX";
    dir = ::mkdtemp(tmpl);
    if (opt.data_on_disk)
      std::ofstream(dir + "/t.bin", std::ios::binary) << data;
    auto layout = file_layout::create(*meta);
    layout_ = std::make_shared<const file_layout>(std::move(*layout));
    auto store = file_store::open(layout_, dir);
    EXPECT_TRUE(store.ok());

    torrent_config tc;
    tc.meta = meta;
    tc.store = std::move(*store);
    tc.use_trackers = false;
    tc.disk = &disk_pool::inline_pool();
    tc.check_invariants = true;
    tc.max_peers_per_ip = 100;
    tc.max_peers = opt.max_peers;
    tc.upload_slots = opt.upload_slots;
    tc.observer = sys.spawn(observer, w);
    tc.piece_filter = opt.piece_filter;
    tc.report_pieces = opt.report_pieces;
    tc.save_resume = opt.save_resume;
    tc.fence = opt.fence;
    tc.min_request_timeout_ms = opt.min_request_timeout_ms;
    tc.request_timeout_s = opt.request_timeout_s;
    if (opt.dht) {
      tc.dht = sys.spawn([](caf::event_based_actor*) -> caf::behavior {
        return {[](const dht_ping_node&) {}};
      });
      tc.dht_port = 7777;
    }
    for (std::uint32_t i = 0; i < peers; ++i)
      tc.peers.push_back(endpoint{"127.0.0.1", static_cast<std::uint16_t>(7000 + i)});
    auto wp = w;
    tc.peer_factory = scripted_peers(w);
    if (opt.data_on_disk)
      for (std::uint32_t p = 0; p < pieces; ++p)
        tc.pieces_to_check.push_back(p);
    if (opt.tracker) {
      meta->announce = "http://127.0.0.1:1/announce";
      tc.use_trackers = true;
      tc.tracker_factory = [wp](caf::actor_system& s, const tracker_config&,
                                const caf::actor& t) { return s.spawn(scripted_tracker, t, wp); };
    }
    torrent = spawn_torrent(sys, std::move(tc));
    if (opt.stop_at_start)
      caf::anon_send(torrent, stop_request{});
    if (opt.pause_at_start)
      caf::anon_send(torrent, pause_torrent{});
    if (opt.fail_at_start)
      caf::anon_send(torrent, storage_failed{error{errc::io_error, "disk gone"}});
    if (!opt.hold_start)
      sched.run(); // the data check, then the peers are dialled
  }

  ~fixture() {
    caf::anon_send(torrent, stop_request{});
    sched.run();
    for (auto& [slot, p] : w->peers)
      caf::anon_send_exit(p.handle, caf::exit_reason::user_shutdown);
    sched.run();
    w->peers.clear();
    std::filesystem::remove_all(dir);
  }

  /// The peer in `slot` finished its handshake, has every piece and unchokes us; `reqq` > 0:
  /// it queues at most that many requests (BEP 10).
  void connect_and_unchoke(peer_slot slot, std::uint32_t reqq = 0) {
    caf::anon_send(torrent, peer_connected{slot, {}, true});
    availability_delta d;
    d.slot = slot;
    d.has_bitfield = true;
    d.bits = bitfield(meta->piece_count(), true);
    caf::anon_send(torrent, std::move(d));
    if (reqq > 0) {
      peer_activity a;
      a.slot = slot;
      a.request_limit = reqq;
      caf::anon_send(torrent, std::move(a));
    }
    unchoke(slot);
  }
  void unchoke(peer_slot slot) { choke(slot, false); }
  void choke(peer_slot slot, bool choked = true) {
    peer_activity a;
    a.slot = slot;
    a.choke_changed = true;
    a.choked = choked;
    caf::anon_send(torrent, std::move(a));
    sched.run();
  }
  /// The peer's connection ends: its actor exits (the torrent monitors it).
  void close(peer_slot slot) {
    caf::anon_send_exit(w->peers.at(slot).handle, caf::exit_reason::user_shutdown);
    sched.run();
  }

  struct copy {
    std::uint32_t piece;
    std::uint32_t block;
    bool right = true;
  };
  /// `slot` delivers these copies in one read, as its peer actor would send them to storage.
  void deliver(peer_slot slot, const std::vector<copy>& copies) {
    auto buf = std::make_shared<std::string>();
    for (auto c : copies) {
      auto bytes = data.substr((c.piece * 4ull + c.block) * K, K);
      if (!c.right)
        for (auto& ch : bytes)
          ch = static_cast<char>(ch ^ 0x5a);
      buf->append(bytes);
    }
    write_blocks wb;
    wb.slot = slot;
    for (std::size_t i = 0; i < copies.size(); ++i)
      wb.blocks.push_back(block_write{piece_index{copies[i].piece}, copies[i].block * K,
                                      std::string_view(*buf).substr(i * K, K)});
    wb.owner = buf;
    caf::anon_send(w->peers.at(slot).pc.storage, std::move(wb));
    sched.run();
  }

  /// The peer in `slot`, told to disconnect while slow_close was set, closes now.
  void finish_close(peer_slot slot) {
    auto& p = w->peers.at(slot);
    caf::anon_send(torrent, peer_closed{slot, p.reason, false});
    caf::anon_send_exit(p.handle, caf::exit_reason::user_shutdown);
    sched.run();
  }
  /// The peer in `slot` says whether it is interested in us.
  void interested(peer_slot slot, bool yes) {
    peer_activity a;
    a.slot = slot;
    a.interest_changed = true;
    a.interested = yes;
    caf::anon_send(torrent, std::move(a));
    sched.run();
  }
  /// One-second ticks until the torrent has counted `n` of them (the choker runs every 10th).
  void ticks(int n) {
    for (int i = 0; i < n; ++i) {
      sched.trigger_timeouts();
      sched.run();
    }
  }
  /// The scripted tracker answers the oldest announce it held.
  void answer_announce() {
    ASSERT_GT(w->held_announces, 0);
    --w->held_announces;
    caf::anon_send(torrent, tracker_reply());
    sched.run();
  }
  void pause() {
    caf::anon_send(torrent, pause_torrent{});
    sched.run();
  }
  void resume() {
    caf::anon_send(torrent, resume_torrent{});
    sched.run();
  }
  /// The peer in `slot` finished its handshake and has nothing: a leecher.
  void connect_leecher(peer_slot slot) {
    caf::anon_send(torrent, peer_connected{slot, {}, true});
    availability_delta d;
    d.slot = slot;
    d.has_bitfield = true;
    d.bits = bitfield(meta->piece_count());
    caf::anon_send(torrent, std::move(d));
    sched.run();
  }
  void add_peer(std::uint16_t port) {
    caf::anon_send(torrent, add_peers{{endpoint{"127.0.0.1", port}}});
    sched.run();
  }
  std::vector<peer_slot> live_peers() const {
    std::vector<peer_slot> out;
    for (auto& [slot, p] : w->peers)
      if (!p.disconnected)
        out.push_back(slot);
    return out;
  }

  torrent_progress progress() {
    torrent_progress out;
    auto probe = sys.spawn([&out, t = torrent](caf::event_based_actor* self) {
      self->request(t, caf::infinite, get_progress{}).then([&out](torrent_progress& p) {
        out = std::move(p);
      });
    });
    sched.run();
    return out;
  }
  void filter(std::vector<std::uint32_t> pieces) {
    caf::anon_send(torrent, set_piece_filter{false, std::move(pieces)});
    sched.run();
  }
  std::string file_bytes() const {
    std::ifstream in(dir + "/t.bin", std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  bool banned(peer_slot slot) const {
    auto& p = w->peers.at(slot);
    return p.disconnected && p.reason.rfind("banned", 0) == 0;
  }
  std::size_t count_requests(peer_slot slot, std::uint32_t piece) const {
    std::size_t n = 0;
    for (auto b : w->peers.at(slot).requested)
      n += b.piece.value == piece;
    return n;
  }
};

} // namespace

TEST(torrent_actor, dials_the_known_peers_after_the_check) {
  fixture f(2, 3);
  EXPECT_EQ(f.w->peers.size(), 3u);
  f.connect_and_unchoke(0);
  // One peer has everything: it gets every block of both pieces (8 blocks, within its pipeline).
  EXPECT_EQ(f.w->peers.at(0).requested.size(), 8u);
}

TEST(torrent_actor, a_new_peer_gets_a_slow_start_pipeline_within_its_reqq) {
  fixture f(400, 2); // 1,600 blocks: more than both pipelines together
  f.connect_and_unchoke(0); // names no reqq; its rate is not measured yet
  EXPECT_EQ(f.w->peers.at(0).requested.size(), peer_requests::initial_pipeline);
  f.connect_and_unchoke(1, 20); // queues at most 20
  EXPECT_EQ(f.w->peers.at(1).requested.size(), 20u);
}

TEST(torrent_actor, the_later_of_two_copies_in_one_read_decides_the_verdict) {
  // Review finding: a right and a wrong copy of one block in one read: the wrong (later) copy
  // was on disk while the right one was hashed, so the piece verified with wrong bytes.
  fixture f(2, 1);
  f.connect_and_unchoke(0);
  f.deliver(0, {{0, 0, false}, {0, 0, true}, {0, 1}, {0, 2}, {0, 3}}); // wrong, then right
  auto p = f.progress();
  EXPECT_EQ(p.pieces_verified, 1u);
  EXPECT_EQ(p.pieces_failed, 0u);
  EXPECT_FALSE(f.banned(0));
  f.deliver(0, {{1, 0, true}, {1, 0, false}, {1, 1}, {1, 2}, {1, 3}}); // right, then wrong
  p = f.progress();
  EXPECT_EQ(p.pieces_verified, 1u) << "piece 1 has a wrong block on disk: it must not verify";
  EXPECT_EQ(p.pieces_failed, 1u);
  EXPECT_TRUE(f.banned(0)) << "it alone sent every block of a piece that failed";
}

TEST(torrent_actor, an_end_game_liar_is_banned_and_the_honest_peer_is_not) {
  // Review finding: the liar's end-game copy of a block landed after the honest one; storage
  // kept it, the picker credited the honest peer, and the honest peer was blamed.
  fixture f(1, 2);
  const peer_slot honest = 0, liar = 1;
  f.connect_and_unchoke(honest);
  f.connect_and_unchoke(liar); // end-game: it gets duplicates of the honest peer's requests
  ASSERT_EQ(f.count_requests(honest, 0), 4u);
  ASSERT_EQ(f.count_requests(liar, 0), 4u);
  f.deliver(honest, {{0, 0}, {0, 1}, {0, 2}});
  f.deliver(liar, {{0, 1, false}}); // after the honest copy: it is the one on disk
  f.choke(liar);
  f.deliver(honest, {{0, 3}});
  auto p = f.progress();
  EXPECT_EQ(p.pieces_failed, 1u);
  EXPECT_FALSE(f.banned(honest));
  EXPECT_FALSE(f.banned(liar)) << "two senders: nobody is certainly guilty yet";
  // On parole the piece goes to the only unchoked peer; it passes, and smart ban compares.
  ASSERT_EQ(f.count_requests(honest, 0), 8u);
  f.deliver(honest, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  p = f.progress();
  EXPECT_EQ(p.pieces_verified, 1u);
  EXPECT_FALSE(f.banned(honest));
  EXPECT_TRUE(f.banned(liar));
  EXPECT_NE(f.log.str().find("sent 1 bad block of piece 0"), std::string::npos) << f.log.str();
}

TEST(torrent_actor, blocks_taken_back_from_a_peer_on_parole_are_dropped_by_storage_too) {
  // Review finding: when the picker took blocks back, storage still counted them, so a piece
  // completed early (with the dropped blocks in it) and the peer that took over was blamed.
  fixture f(1, 2);
  const peer_slot parolee = 0, honest = 1;
  f.connect_and_unchoke(parolee);
  f.connect_and_unchoke(honest);
  f.deliver(honest, {{0, 2}, {0, 3}});
  f.choke(honest);
  f.deliver(parolee, {{0, 0, false}, {0, 1, false}});
  auto p = f.progress();
  ASSERT_EQ(p.pieces_failed, 1u);
  EXPECT_FALSE(f.banned(parolee));
  EXPECT_FALSE(f.banned(honest));
  // Parole: the only unchoked peer gets the piece, sends half of it (wrong again) and leaves.
  ASSERT_EQ(f.count_requests(parolee, 0), 8u);
  f.deliver(parolee, {{0, 0, false}, {0, 1, false}});
  f.close(parolee);
  // The honest peer takes the piece over; its first two blocks must not complete it.
  f.unchoke(honest);
  ASSERT_EQ(f.count_requests(honest, 0), 8u);
  f.deliver(honest, {{0, 2}, {0, 3}});
  p = f.progress();
  EXPECT_EQ(p.pieces_failed, 1u) << "the piece was hashed before the honest peer finished it";
  EXPECT_EQ(p.pieces_verified, 0u);
  f.deliver(honest, {{0, 0}, {0, 1}});
  p = f.progress();
  EXPECT_EQ(p.pieces_verified, 1u);
  EXPECT_EQ(p.pieces_failed, 1u);
  EXPECT_FALSE(f.banned(honest));
  // The peer that left is banned by smart ban (its address is never dialled again).
  EXPECT_NE(f.log.str().find("banned: sent 2 bad blocks of piece 0 (already disconnected)"),
            std::string::npos)
    << f.log.str();
}

TEST(torrent_actor, blocks_of_a_verified_piece_are_not_counted_as_stored) {
  fixture f(1, 2);
  f.connect_and_unchoke(0);
  f.connect_and_unchoke(1);
  f.deliver(0, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  f.deliver(1, {{0, 0, false}}); // late end-game copy of a verified piece: never written
  auto p = f.progress();
  EXPECT_EQ(p.pieces_verified, 1u);
  EXPECT_EQ(p.pieces_failed, 0u);
  EXPECT_FALSE(f.banned(1));
  EXPECT_TRUE(f.w->finished);
  std::ifstream in(f.dir + "/t.bin", std::ios::binary);
  std::string disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(disk == f.data) << "the late wrong copy reached the disk";
}

TEST(torrent_actor, existing_data_is_checked_before_anything) {
  fixture f(3, 1, {true, false});
  EXPECT_TRUE(f.w->finished);
  EXPECT_EQ(f.progress().pieces_verified, 3u);
}

TEST(torrent_actor, a_stop_during_the_data_check_ends_it_and_trusts_nothing_unchecked) {
  // The stop arrives while storage is (about to be) busy hashing: the torrent raises the
  // check's cancel flag, storage returns at once, and the resume data it saves lets the next
  // run trust nothing that was not verified.
  fixture f(3, 1, {true, true});
  EXPECT_TRUE(f.w->stopped);
  EXPECT_FALSE(f.w->finished);
  EXPECT_EQ(f.w->final.pieces_verified, 0u);
  auto resume = load_resume(f.dir, *f.meta, *f.layout_);
  EXPECT_TRUE(resume.trusted.isEmpty());
  EXPECT_EQ(resume.to_check.cardinality(), 3u);
}

// -- the storage actor alone ------------------------------------------------------------------

namespace {

struct storage_world {
  std::vector<blocks_stored> stored;
  std::vector<piece_verdict> verdicts;
  std::vector<error> failures;
};

caf::behavior storage_observer(caf::event_based_actor*, std::shared_ptr<storage_world> w) {
  return {
    [=](blocks_stored& b) { w->stored.push_back(std::move(b)); },
    [=](piece_checked& c) { w->verdicts.push_back(std::move(c.verdict)); },
    [=](storage_failed& f) { w->failures.push_back(f.why); },
    [=](check_progress&) {},
  };
}

/// The storage actor on the test scheduler, with an actor standing in for its torrent.
struct storage_fixture {
  fixture base{1, 0}; // for the data, the directory and the scheduler
  std::shared_ptr<storage_world> w = std::make_shared<storage_world>();
  caf::actor storage;

  storage_fixture() {
    auto store = file_store::open(base.layout_, base.dir + "/alone");
    EXPECT_TRUE(store.ok());
    auto torrent = base.sys.spawn(storage_observer, w);
    storage = spawn_storage(base.sys, std::move(*store), base.meta, torrent,
                            disk_pool::inline_pool());
  }
  ~storage_fixture() {
    caf::anon_send(storage, stop_request{});
    base.sched.run();
  }
  void write(peer_slot slot, const std::vector<fixture::copy>& copies) {
    auto buf = std::make_shared<std::string>();
    write_blocks wb;
    wb.slot = slot;
    for (auto c : copies) {
      auto bytes = base.data.substr((c.piece * 4ull + c.block) * K, K);
      if (!c.right)
        for (auto& ch : bytes)
          ch = static_cast<char>(ch ^ 0x5a);
      buf->append(bytes);
    }
    for (std::size_t i = 0; i < copies.size(); ++i)
      wb.blocks.push_back(block_write{piece_index{copies[i].piece}, copies[i].block * K,
                                      std::string_view(*buf).substr(i * K, K)});
    wb.owner = buf;
    caf::anon_send(storage, std::move(wb));
    base.sched.run();
  }
};

} // namespace

TEST(storage_actor, reports_copies_then_the_verdict_with_the_senders) {
  storage_fixture f;
  f.write(1, {{0, 0}, {0, 1}, {0, 2}});
  f.write(2, {{0, 1, false}}); // replaces 0.1: its sender is now 2
  f.write(1, {{0, 3}});
  ASSERT_EQ(f.w->stored.size(), 3u);
  EXPECT_EQ(f.w->stored[1].blocks.at(0).block, (block_ref{piece_index{0}, 1}));
  EXPECT_NE(f.w->stored[1].blocks.at(0).copy, f.w->stored[0].blocks.at(1).copy);
  ASSERT_EQ(f.w->verdicts.size(), 1u);
  auto& v = f.w->verdicts[0];
  EXPECT_FALSE(v.ok);
  ASSERT_EQ(v.blocks.size(), 4u);
  EXPECT_EQ(v.blocks[1].sender, 2u);
  EXPECT_EQ(v.blocks[0].sender, 1u);
}

TEST(storage_actor, a_discard_makes_the_piece_wait_for_its_blocks_again) {
  storage_fixture f;
  f.write(1, {{0, 0, false}, {0, 1, false}});
  caf::anon_send(f.storage, discard_blocks{f.w->stored[0].blocks});
  f.write(2, {{0, 2}, {0, 3}});
  EXPECT_TRUE(f.w->verdicts.empty()) << "two blocks were discarded: the piece is not complete";
  f.write(2, {{0, 0}, {0, 1}});
  ASSERT_EQ(f.w->verdicts.size(), 1u);
  EXPECT_TRUE(f.w->verdicts[0].ok);
}

TEST(storage_actor, serves_only_verified_pieces) {
  storage_fixture f;
  block_read got;
  auto ask = [&] {
    auto probe = f.base.sys.spawn([&got, s = f.storage](caf::event_based_actor* self) {
      self->request(s, caf::infinite, read_block{piece_index{0}, K, K}).then([&got](block_read& r) {
        got = std::move(r);
      });
    });
    f.base.sched.run();
  };
  ask();
  EXPECT_FALSE(got.result.ok());
  EXPECT_TRUE(got.frame.empty());
  f.write(1, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  ask();
  ASSERT_TRUE(got.result.ok());
  // 13-byte PIECE header, then the block as it is on disk.
  ASSERT_EQ(got.frame.size(), 13u + K);
  EXPECT_EQ(got.frame.substr(13), f.base.data.substr(K, K));
}

TEST(torrent_actor, a_liar_that_left_before_its_piece_failed_is_still_banned) {
  // The liar sends one wrong block and disconnects before the piece is complete; the verdict
  // that names it comes two rounds later. Its address must still be banned then.
  fixture f(1, 2);
  const peer_slot liar = 0, honest = 1;
  f.connect_and_unchoke(liar);
  f.connect_and_unchoke(honest); // end-game duplicates of the liar's requests
  f.deliver(liar, {{0, 1, false}});
  f.close(liar);
  f.deliver(honest, {{0, 0}, {0, 2}, {0, 3}});
  auto p = f.progress();
  ASSERT_EQ(p.pieces_failed, 1u);
  ASSERT_EQ(f.count_requests(honest, 0), 8u); // the piece again, on parole
  f.deliver(honest, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  p = f.progress();
  EXPECT_EQ(p.pieces_verified, 1u);
  EXPECT_FALSE(f.banned(honest));
  EXPECT_NE(f.log.str().find("127.0.0.1:7000 banned: sent 1 bad block of piece 0 (already "
                             "disconnected)"),
            std::string::npos)
    << f.log.str();
}

// -- the lifecycle: one test per transition ----------------------------------------------------

namespace {
using ev = tracker::event;
} // namespace

TEST(torrent_lifecycle, checking_to_downloading_when_pieces_are_missing) {
  fixture f(2, 2, {false, false, true});
  auto p = f.progress();
  EXPECT_FALSE(p.checking);
  EXPECT_FALSE(p.seeding);
  EXPECT_FALSE(f.w->finished);
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started}));
  EXPECT_EQ(f.live_peers().size(), 2u) << "downloading dials the known peers";
  f.connect_and_unchoke(0);
  EXPECT_EQ(f.w->peers.at(0).requested.size(), 8u);
}

TEST(torrent_lifecycle, checking_to_seeding_when_the_data_is_complete) {
  fixture f(2, 1, {true, false, true});
  auto p = f.progress();
  EXPECT_TRUE(p.seeding);
  EXPECT_EQ(p.pieces_verified, 2u);
  EXPECT_EQ(f.w->finished_count, 1);
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started}))
    << "BEP 3: no 'completed' for a torrent complete at start";
  ASSERT_EQ(f.live_peers().size(), 1u) << "a seed dials peers too";
  f.connect_and_unchoke(0);
  EXPECT_TRUE(f.w->peers.at(0).requested.empty()) << "a seed requests nothing";
  EXPECT_TRUE(f.w->peers.at(0).disconnected) << "both sides are seeds";
}

TEST(torrent_lifecycle, downloading_to_seeding_when_the_last_piece_verifies) {
  fixture f(2, 1, {false, false, true});
  f.connect_and_unchoke(0);
  f.deliver(0, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  EXPECT_FALSE(f.progress().seeding);
  EXPECT_FALSE(f.w->finished);
  f.deliver(0, {{1, 0}, {1, 1}, {1, 2}, {1, 3}});
  EXPECT_TRUE(f.progress().seeding);
  EXPECT_EQ(f.w->finished_count, 1);
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started, ev::completed}));
  EXPECT_EQ(f.w->peers.at(0).reason, "both sides are seeds");
}

TEST(torrent_lifecycle, downloading_to_paused_and_back_keeps_verified_pieces) {
  fixture f(2, 1, {false, false, true});
  f.connect_and_unchoke(0);
  f.deliver(0, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  f.pause();
  EXPECT_TRUE(f.w->peers.at(0).disconnected);
  EXPECT_EQ(f.w->peers.at(0).reason, "paused");
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started, ev::stopped}));
  auto p = f.progress();
  EXPECT_EQ(p.peers, 0u);
  EXPECT_EQ(p.pieces_verified, 1u) << "a pause keeps verified pieces";
  f.add_peer(7100);
  f.pause(); // a second pause changes nothing
  EXPECT_TRUE(f.live_peers().empty()) << "nothing is dialled while paused";
  EXPECT_EQ(f.w->announces.size(), 2u);
  f.resume();
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started, ev::stopped, ev::started}));
  auto again = f.live_peers();
  ASSERT_EQ(again.size(), 2u) << "the known peer again, at once, and the one added meanwhile";
  f.connect_and_unchoke(again[0]);
  EXPECT_EQ(f.count_requests(again[0], 0), 0u) << "piece 0 is still verified";
  EXPECT_EQ(f.count_requests(again[0], 1), 4u);
  f.deliver(again[0], {{1, 0}, {1, 1}, {1, 2}, {1, 3}});
  EXPECT_TRUE(f.w->finished);
  EXPECT_TRUE(f.progress().seeding);
}

TEST(torrent_lifecycle, a_quick_pause_and_resume_announces_started_again) {
  fixture f(2, 1, {false, false, true});
  // 'started' went out and was answered at once; a routine announce is next, in 30 min.
  f.w->hold_announces = true;
  f.pause();
  f.resume();
  f.pause();
  f.resume();
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started, ev::stopped}))
    << "'started' waits for the farewell's reply";
  f.answer_announce();
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started, ev::stopped, ev::started}))
    << "the resume's 'started' goes out as soon as 'stopped' is answered";
  f.pause();
  f.resume(); // 'started' in flight, 'stopped' queued behind it, then resumed
  f.answer_announce(); // the stale 'started'
  EXPECT_EQ(f.w->announces.size(), 4u);
  f.answer_announce(); // 'stopped'
  EXPECT_EQ(f.w->announces,
            (std::vector<ev>{ev::started, ev::stopped, ev::started, ev::stopped, ev::started}))
    << "a reply to a 'started' sent before the pause does not count as started";
}

TEST(torrent_lifecycle, peers_closing_after_a_pause_are_gone_for_a_resume) {
  fixture::options opt;
  opt.max_peers = 1;
  fixture f(2, 1, opt);
  f.connect_and_unchoke(0);
  auto requested = f.w->peers.at(0).requested.size();
  f.w->slow_close = true;
  f.pause();
  f.resume(); // before peer 0 has closed
  ASSERT_EQ(f.w->peers.size(), 2u) << "its address is dialled again at once, within max_peers";
  f.unchoke(0); // late news from the closing peer
  EXPECT_EQ(f.w->peers.at(0).requested.size(), requested) << "no requests to a closing peer";
  caf::anon_send(f.torrent, peer_connected{0, {}, true});
  f.sched.run();
  EXPECT_EQ(f.progress().peers, 0u) << "a closing peer is not counted";
  f.finish_close(0);
  f.add_peer(7100);
  EXPECT_EQ(f.w->peers.size(), 2u) << "the late close frees no slot twice nor redials 7000";
  f.connect_and_unchoke(1);
  EXPECT_EQ(f.w->peers.at(1).requested.size(), 8u) << "the new connection downloads";
}

TEST(torrent_lifecycle, an_optimistic_peer_that_loses_interest_loses_its_slot) {
  fixture::options opt;
  opt.data_on_disk = true;
  opt.upload_slots = 1; // one by rate, one optimistic
  fixture f(2, 3, opt);
  for (peer_slot s = 0; s < 3; ++s)
    f.connect_leecher(s);
  for (peer_slot s = 0; s < 3; ++s)
    f.interested(s, true);
  f.ticks(9); // round 1: slot 2 by rate (ties go to the newest), slot 1 optimistic
  ASSERT_FALSE(f.w->peers.at(2).choked);
  ASSERT_FALSE(f.w->peers.at(1).choked);
  ASSERT_TRUE(f.w->peers.at(0).choked);
  f.interested(1, false);
  f.ticks(10); // round 2: not a rotation round, but the optimistic peer is no candidate
  EXPECT_TRUE(f.w->peers.at(1).choked) << "uninterested: its optimistic slot goes";
  EXPECT_FALSE(f.w->peers.at(0).choked) << "to the one interested peer left choked";
}

TEST(torrent_lifecycle, seeding_to_paused_and_back_to_seeding) {
  fixture f(2, 1, {true, false, true});
  f.connect_leecher(0);
  f.pause();
  EXPECT_EQ(f.w->peers.at(0).reason, "paused");
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started, ev::stopped}));
  EXPECT_TRUE(f.live_peers().empty());
  EXPECT_FALSE(f.progress().seeding) << "paused";
  f.resume();
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started, ev::stopped, ev::started}))
    << "complete at start: never 'completed'";
  EXPECT_TRUE(f.progress().seeding);
  EXPECT_EQ(f.w->finished_count, 1);
  ASSERT_EQ(f.live_peers().size(), 1u);
  f.connect_leecher(f.live_peers()[0]);
  EXPECT_FALSE(f.w->peers.at(f.live_peers()[0]).disconnected);
}

TEST(torrent_lifecycle, a_pause_during_the_check_takes_effect_after_it) {
  fixture f(2, 1, {true, false, true, true});
  EXPECT_EQ(f.progress().pieces_verified, 2u) << "the check ran to its end";
  EXPECT_TRUE(f.live_peers().empty()) << "paused: nobody dialled";
  EXPECT_TRUE(f.w->announces.empty()) << "never started: nothing to stop";
  f.resume();
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started}))
    << "BEP 3: no 'completed' for a torrent complete at start";
  EXPECT_TRUE(f.progress().seeding);
  EXPECT_EQ(f.live_peers().size(), 1u);
}

TEST(torrent_lifecycle, downloading_to_stopping_closes_peers_then_quits) {
  fixture f(2, 2, {false, false, true});
  f.connect_and_unchoke(0);
  caf::anon_send(f.torrent, stop_request{});
  f.sched.run();
  EXPECT_TRUE(f.w->stopped);
  EXPECT_EQ(f.w->peers.at(0).reason, "shutting down");
  EXPECT_EQ(f.w->peers.at(1).reason, "shutting down");
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started, ev::stopped}));
  EXPECT_FALSE(f.w->finished);
}

TEST(torrent_lifecycle, seeding_to_stopping_waits_for_its_peers_then_quits) {
  fixture f(2, 2, {true, false, true});
  ASSERT_TRUE(f.progress().seeding);
  f.connect_leecher(0);
  f.connect_leecher(1);
  f.w->slow_close = true;
  caf::anon_send(f.torrent, stop_request{});
  f.sched.run();
  EXPECT_EQ(f.w->peers.at(0).reason, "shutting down");
  EXPECT_EQ(f.w->peers.at(1).reason, "shutting down");
  EXPECT_FALSE(f.w->stopped) << "its peers publish their last counters first";
  f.finish_close(0);
  EXPECT_FALSE(f.w->stopped);
  f.finish_close(1);
  EXPECT_TRUE(f.w->stopped);
  EXPECT_TRUE(f.w->final.seeding);
  EXPECT_EQ(f.w->final.pieces_verified, 2u);
  EXPECT_EQ(f.w->finished_count, 1);
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started, ev::stopped}));
}

TEST(torrent_lifecycle, checking_to_stopping_ends_the_check_and_never_starts) {
  fixture::options opt;
  opt.data_on_disk = true;
  opt.tracker = true;
  opt.stop_at_start = true;
  fixture f(2, 1, opt);
  EXPECT_TRUE(f.w->stopped);
  EXPECT_FALSE(f.w->finished);
  EXPECT_EQ(f.w->final.pieces_verified, 0u) << "the check was cut short";
  EXPECT_TRUE(f.w->peers.empty()) << "nobody dialled";
  EXPECT_TRUE(f.w->announces.empty()) << "never started: nothing to stop";
}

TEST(torrent_lifecycle, a_seed_takes_late_download_messages_without_error) {
  fixture f(2, 1, {true, false, true});
  ASSERT_TRUE(f.progress().seeding);
  f.connect_leecher(0);
  auto peer = f.w->peers.at(0).handle;
  // What a peer may still send after the last piece verified: a block of it (storage wrote
  // nothing: blocks_stored with no copy), a reject, an unchoke and upload counters. Sent as the
  // peer: a message the torrent did not handle would be answered with an error, which ends
  // the peer.
  f.deliver(0, {{1, 3}});
  peer_activity a;
  a.slot = 0;
  a.rejected = {block_ref{piece_index{1}, 2}};
  a.choke_changed = true;
  a.choked = false;
  a.payload_up = K;
  caf::send_as(peer, f.torrent, a);
  blocks_stored bs;
  bs.slot = 0;
  stored_block late;
  late.block = block_ref{piece_index{0}, 0}; // copy 0: not written
  bs.blocks = {late};
  caf::send_as(peer, f.torrent, bs);
  availability_delta d;
  d.slot = 0;
  d.haves = {piece_index{0}};
  caf::send_as(peer, f.torrent, d);
  f.sched.run();
  auto p = f.progress();
  EXPECT_TRUE(p.seeding);
  EXPECT_EQ(p.peers, 1u) << "the peer is still there";
  EXPECT_EQ(p.peers_unchoked, 1u) << "its unchoke was noted";
  EXPECT_EQ(p.uploaded_payload, K);
  EXPECT_NE(p.metrics.find("actorrent_blocks_duplicate 2"), std::string::npos) << p.metrics;
  EXPECT_TRUE(f.w->peers.at(0).requested.empty()) << "a seed requests nothing";
  EXPECT_FALSE(f.w->peers.at(0).disconnected);
  EXPECT_EQ(f.w->finished_count, 1);
}

TEST(torrent_lifecycle, paused_to_stopping_announces_stopped_only_once) {
  fixture f(2, 1, {false, false, true});
  f.pause();
  caf::anon_send(f.torrent, stop_request{});
  f.sched.run();
  EXPECT_TRUE(f.w->stopped);
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started, ev::stopped}));
}

TEST(torrent_lifecycle, a_storage_failure_fails_the_torrent_until_it_is_stopped) {
  fixture f(2, 1, {false, false, true});
  f.connect_and_unchoke(0);
  caf::anon_send(f.torrent, storage_failed{error{errc::io_error, "disk full"}});
  f.sched.run();
  EXPECT_TRUE(f.w->failed);
  EXPECT_NE(f.log.str().find("storage: disk full"), std::string::npos) << f.log.str();
  EXPECT_EQ(f.w->peers.at(0).reason, "torrent failed") << "a failed torrent keeps no peer";
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started, ev::stopped}));
  f.add_peer(7100);
  EXPECT_EQ(f.w->peers.size(), 1u) << "a failed torrent dials nobody";
  f.resume();
  f.pause();
  f.resume();
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started, ev::stopped}))
    << "resume does not bring a failed torrent back";
  EXPECT_EQ(f.w->peers.size(), 1u) << "still failed: nobody dialled";
  caf::anon_send(f.torrent, stop_request{});
  f.sched.run();
  EXPECT_TRUE(f.w->stopped);
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started, ev::stopped}));
}

TEST(torrent_lifecycle, a_storage_failure_during_the_check_keeps_what_it_verified) {
  fixture::options opt;
  opt.data_on_disk = true;
  opt.fail_at_start = true;
  fixture f(2, 1, opt);
  EXPECT_TRUE(f.w->failed);
  EXPECT_EQ(f.progress().pieces_verified, 2u);
  EXPECT_TRUE(f.w->peers.empty());
}

TEST(torrent_lifecycle, a_complete_torrent_takes_peers_before_its_files_are_flushed) {
  fixture::options opt;
  opt.data_on_disk = true;
  opt.tracker = true;
  opt.hold_start = true;
  fixture f(2, 1, opt);
  // Run until the check's 'started' reached the tracker: the flush was asked after it.
  while (f.w->announces.empty() && f.sched.try_run_once()) {
  }
  ASSERT_EQ(f.w->announces, (std::vector<ev>{ev::started}));
  EXPECT_EQ(f.w->peers.size(), 1u) << "dialled with the announce, not after the flush";
  // The flush then fails (the file was deleted): the peer dialled meanwhile is closed.
  std::filesystem::remove(f.dir + "/t.bin");
  f.sched.run();
  EXPECT_TRUE(f.w->failed);
  EXPECT_FALSE(f.w->finished);
  ASSERT_EQ(f.w->peers.size(), 1u);
  EXPECT_EQ(f.w->peers.at(0).reason, "torrent failed");
}

TEST(torrent_lifecycle, a_pause_during_the_check_of_incomplete_data) {
  fixture::options opt;
  opt.tracker = true;
  opt.pause_at_start = true;
  fixture f(2, 1, opt);
  auto p = f.progress();
  EXPECT_FALSE(p.checking);
  EXPECT_FALSE(p.seeding);
  EXPECT_TRUE(f.w->peers.empty()) << "paused: nobody dialled";
  EXPECT_TRUE(f.w->announces.empty()) << "never started: nothing to stop";
  f.resume();
  EXPECT_EQ(f.w->announces, (std::vector<ev>{ev::started}));
  ASSERT_EQ(f.live_peers().size(), 1u);
  f.connect_and_unchoke(f.live_peers()[0]);
  EXPECT_EQ(f.w->peers.at(f.live_peers()[0]).requested.size(), 8u) << "downloading";
}

TEST(torrent_lifecycle, without_metainfo_it_awaits_metadata_until_stopped) {
  caf::actor_system_config cfg;
  caf::actor_system sys{actor_test::deterministic(cfg)};
  auto& sched = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  auto w = std::make_shared<world>();
  torrent_config tc;
  tc.observer = sys.spawn(observer, w);
  tc.peers.push_back(endpoint{"127.0.0.1", 7000});
  bool dialled = false;
  tc.peer_factory = [&dialled](caf::actor_system& s, const peer_config&) {
    dialled = true;
    return s.spawn([] { return caf::behavior{[](tick) {}}; });
  };
  auto t = spawn_torrent(sys, std::move(tc));
  sched.run();
  torrent_progress p;
  p.pieces = 99;
  auto probe = sys.spawn([&p, t](caf::event_based_actor* self) {
    self->request(t, caf::infinite, get_progress{}).then([&p](torrent_progress& r) { p = r; });
  });
  sched.run();
  EXPECT_EQ(p.pieces, 0u) << "nothing known yet";
  EXPECT_EQ(p.known_peers, 1u);
  EXPECT_TRUE(dialled) << "peers are dialled for the metadata (BEP 9)";
  caf::anon_send(t, stop_request{});
  sched.run();
  EXPECT_TRUE(w->stopped);
}

TEST(torrent_lifecycle, awaiting_metadata_to_checking_to_downloading_once_it_verifies) {
  std::ostringstream log;
  actor_test::route_loggers(std::make_shared<spdlog::sinks::ostream_sink_mt>(log),
                            spdlog::level::debug);
  caf::actor_system_config cfg;
  caf::actor_system sys{actor_test::deterministic(cfg)};
  auto& sched = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  auto w = std::make_shared<world>();
  // Two pieces of 4 blocks; the first is on disk already, the second is zeros.
  std::mt19937 rng(5);
  std::string data(8 * K, '\0');
  for (auto& c : data)
    c = static_cast<char>(rng());
  auto hash_of = [&](std::size_t piece) {
    auto d = sha1(std::string_view(data).substr(piece * 4 * K, 4 * K));
    return std::string(d.begin(), d.end());
  };
  std::string info = "d6:lengthi" + std::to_string(data.size()) + "e4:name5:t.bin" +
                     "12:piece lengthi" + std::to_string(4 * K) + "e6:pieces40:" + hash_of(0) +
                     hash_of(1) + "e";
  char tmpl[] = "/tmp/torrent_actor_test.XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::ofstream(dir + "/t.bin", std::ios::binary)
    << data.substr(0, 4 * K) << std::string(4 * K, '\0');

  torrent_config tc;
  tc.hash = sha1(info);
  tc.observer = sys.spawn(observer, w);
  tc.disk = &disk_pool::inline_pool();
  tc.check_invariants = true;
  tc.peers.push_back(endpoint{"127.0.0.1", 7000});
  tc.peer_factory = scripted_peers(w);
  tc.on_metadata = [dir](const std::shared_ptr<const metainfo>& m,
                         const std::string&) -> result<metadata_ready> {
    auto layout = file_layout::create(*m);
    if (!layout)
      return layout.error();
    auto store =
      file_store::open(std::make_shared<const file_layout>(std::move(*layout)), dir);
    if (!store)
      return store.error();
    metadata_ready ready;
    ready.store = std::move(*store);
    ready.pieces_to_check = {0, 1};
    return result<metadata_ready>{std::move(ready)};
  };
  auto t = spawn_torrent(sys, std::move(tc));
  sched.run();
  ASSERT_EQ(w->peers.size(), 1u);
  EXPECT_EQ(w->peers.at(0).pc.meta, nullptr) << "dialled with the info-hash alone";
  caf::anon_send(t, peer_connected{0, peer_id{{1}}, true});
  caf::anon_send(t, metadata_offer{0, info.size()});
  sched.run();
  ASSERT_EQ(w->peers.at(0).metadata_asked, (std::vector<std::uint32_t>{0}));
  caf::anon_send(t, metadata_piece{0, 0, info.size(), info});
  sched.run();
  EXPECT_NE(log.str().find("torrent t.bin: awaiting metadata -> checking"), std::string::npos)
    << log.str();
  EXPECT_NE(log.str().find("torrent t.bin: checking -> downloading"), std::string::npos)
    << log.str();
  EXPECT_EQ(w->peers.at(0).reason, "metadata received: reconnecting");
  ASSERT_EQ(w->peers.size(), 2u) << "the same address dialled again, with the metainfo";
  ASSERT_NE(w->peers.at(1).pc.meta, nullptr);
  EXPECT_EQ(w->peers.at(1).pc.remote.port, 7000);
  // The check verified piece 0: only piece 1 is requested.
  caf::anon_send(t, peer_connected{1, peer_id{{1}}, true});
  availability_delta d;
  d.slot = 1;
  d.has_bitfield = true;
  d.bits = bitfield(2, true);
  caf::anon_send(t, std::move(d));
  peer_activity a;
  a.slot = 1;
  a.choke_changed = true;
  a.choked = false;
  caf::anon_send(t, std::move(a));
  sched.run();
  auto& asked = w->peers.at(1).requested;
  EXPECT_EQ(asked.size(), 4u);
  EXPECT_TRUE(std::all_of(asked.begin(), asked.end(),
                          [](block_ref b) { return b.piece == piece_index{1}; }));
  caf::anon_send(t, stop_request{});
  sched.run();
  EXPECT_TRUE(w->stopped);
  EXPECT_EQ(w->final.pieces_verified, 1u);
  for (auto& [slot, p] : w->peers)
    caf::anon_send_exit(p.handle, caf::exit_reason::user_shutdown);
  sched.run();
  std::filesystem::remove_all(dir);
}

// File selection through the API (set_file_priorities): the picker stops or resumes requests,
// "complete" is about the selected pieces only, and a bad vector is refused with a warning.
TEST(torrent_actor, file_priorities_decide_what_is_requested_and_when_it_is_complete) {
  fixture f(2, 1);
  caf::anon_send(f.torrent, set_file_priorities{{file_priority::normal, file_priority::skip}});
  f.sched.run();
  EXPECT_NE(f.log.str().find("file priorities ignored: 2 file priorities for a torrent of 1 "
                             "files"),
            std::string::npos)
    << f.log.str();
  caf::anon_send(f.torrent, set_file_priorities{{file_priority::skip}});
  f.sched.run();
  EXPECT_TRUE(f.w->finished) << "nothing selected: nothing to fetch";
  f.connect_and_unchoke(0);
  EXPECT_EQ(f.w->peers.at(0).requested.size(), 0u);
  // Selected again: the peer (already unchoking us) gets every block.
  caf::anon_send(f.torrent, set_file_priorities{{file_priority::high}});
  f.sched.run();
  EXPECT_EQ(f.w->peers.at(0).requested.size(), 8u);
  f.deliver(0, {{0, 0}, {0, 1}, {0, 2}, {0, 3}, {1, 0}, {1, 1}, {1, 2}, {1, 3}});
  auto p = f.progress();
  EXPECT_EQ(p.pieces_verified, 2u);
  EXPECT_EQ(p.verified_bytes, p.total_size);
}

namespace {
/// Seconds from the test clock's now to each pending delayed message (ticks, here), soonest
/// first.
std::vector<double> pending_timers(caf::scheduler::test_coordinator& sched) {
  std::vector<double> out;
  auto& clock = sched.clock();
  for (auto& entry : clock.schedule())
    out.push_back(std::chrono::duration<double>(entry.first - clock.now()).count());
  return out;
}
} // namespace

TEST(torrent_lifecycle, an_idle_seed_ticks_every_30_s_and_a_new_peer_brings_the_second_back) {
  fixture f(2, 0, {true});
  f.ticks(1); // the first tick after the check
  ASSERT_TRUE(f.progress().seeding);
  auto timers = pending_timers(f.sched);
  ASSERT_EQ(timers.size(), 1u) << "one tick pending, nothing else";
  EXPECT_GE(timers[0], 29.0) << "no peers, nothing to pace: a tick every 30 s";
  f.ticks(3);
  EXPECT_EQ(pending_timers(f.sched).size(), 1u) << "still one chain of ticks";
  // A peer to dial: the torrent paces it (dials, choker, timeouts) once a second again.
  f.add_peer(7100);
  ASSERT_EQ(f.live_peers().size(), 1u);
  timers = pending_timers(f.sched);
  ASSERT_EQ(timers.size(), 2u) << "the new tick, and the superseded one";
  EXPECT_LE(timers[0], 1.0);
  f.ticks(1); // both fire: the superseded one is dropped, not a second chain
  timers = pending_timers(f.sched);
  ASSERT_EQ(timers.size(), 1u);
  EXPECT_LE(timers[0], 1.0);
}

TEST(torrent_lifecycle, a_download_without_peers_backs_off_to_a_tick_every_5_s) {
  fixture f(2, 0);
  f.ticks(1);
  auto timers = pending_timers(f.sched);
  ASSERT_EQ(timers.size(), 1u);
  EXPECT_GE(timers[0], 4.0);
  EXPECT_LE(timers[0], 5.0);
}

TEST(torrent_actor, a_choke_and_unchoke_in_one_read_ends_the_requests_sent_before) {
  // The peer actor forgets its requests at a CHOKE; when the UNCHOKE came in the same read,
  // the torrent must still take them back (and ask again), or it waits for blocks that the
  // wire's side drops.
  fixture f(2, 1);
  f.connect_and_unchoke(0);
  auto asked = f.w->peers.at(0).requested.size();
  ASSERT_EQ(asked, 8u) << "every block of both pieces";
  peer_activity a;
  a.slot = 0;
  a.choke_changed = true;
  a.choked = false;
  a.choke_seen = true;
  caf::anon_send(f.torrent, std::move(a));
  f.sched.run();
  EXPECT_EQ(f.w->peers.at(0).requested.size(), 2 * asked) << "asked again after the unchoke";
  EXPECT_TRUE(f.w->peers.at(0).cancelled.empty()) << "the wire's side forgot them already";
}

// -- [cluster] what a cluster worker's torrent adds: a piece filter, pieces reported as they
//    verify, no resume data, a write fence ---------------------------------------------------

namespace {
fixture::options cluster_options() {
  fixture::options o;
  return o;
}
std::vector<std::uint32_t> sorted(std::vector<std::uint32_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}
} // namespace

TEST(torrent_cluster, a_piece_filter_restricts_picks_and_widening_it_after_finish_downloads_again) {
  auto o = cluster_options();
  o.piece_filter = std::vector<std::uint32_t>{1, 2};
  fixture f(4, 1, o);
  f.connect_and_unchoke(0);
  auto& requested = f.w->peers.at(0).requested;
  EXPECT_EQ(requested.size(), 8u);
  for (auto b : requested)
    EXPECT_TRUE(b.piece.value == 1 || b.piece.value == 2) << "piece " << b.piece.value;
  f.deliver(0, {{1, 0}, {1, 1}, {1, 2}, {1, 3}, {2, 0}, {2, 1}, {2, 2}, {2, 3}});
  EXPECT_EQ(f.w->finished_count, 1) << "every piece of the filter verified: finished";
  auto p = f.progress();
  EXPECT_TRUE(p.seeding);
  EXPECT_EQ(p.total_size, 8u * K) << "progress is of the filter's pieces";
  EXPECT_FALSE(f.w->peers.at(0).disconnected) << "the peer has pieces a wider filter may want";
  f.filter({1, 2, 3});
  EXPECT_FALSE(f.progress().seeding) << "a wider filter: downloading again";
  EXPECT_EQ(f.count_requests(0, 3), 4u);
  EXPECT_EQ(f.count_requests(0, 0), 0u);
  f.deliver(0, {{3, 0}, {3, 1}, {3, 2}, {3, 3}});
  EXPECT_EQ(f.w->finished_count, 2);
  EXPECT_EQ(f.progress().pieces_verified, 3u);
}

TEST(torrent_cluster, a_piece_leaving_the_filter_while_it_downloads_is_abandoned) {
  fixture f(2, 1);
  f.connect_and_unchoke(0);
  ASSERT_EQ(f.count_requests(0, 0), 4u);
  f.deliver(0, {{0, 0}, {0, 1}});
  f.filter({1}); // piece 0 goes to another worker
  auto cancelled = f.w->peers.at(0).cancelled;
  ASSERT_EQ(cancelled.size(), 2u) << "its outstanding requests are cancelled";
  EXPECT_EQ(cancelled[0].piece.value, 0u);
  EXPECT_EQ(cancelled[1].piece.value, 0u);
  // Blocks sent before the cancel arrived: piece 0 must not complete from what is left of it.
  f.deliver(0, {{0, 2}, {0, 3}});
  EXPECT_EQ(f.progress().pieces_verified, 0u) << "an abandoned piece verified from leftovers";
  f.deliver(0, {{1, 0}, {1, 1}, {1, 2}, {1, 3}});
  EXPECT_EQ(f.w->finished_count, 1);
  EXPECT_EQ(f.progress().pieces_verified, 1u);
  // Back in the filter: fetched from scratch (nothing of the old copies is trusted).
  f.filter({0, 1});
  EXPECT_EQ(f.count_requests(0, 0), 8u);
  f.deliver(0, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  EXPECT_EQ(f.progress().pieces_verified, 2u);
  EXPECT_EQ(f.w->finished_count, 2);
}

TEST(torrent_cluster, an_empty_filter_requests_nothing_and_never_finishes) {
  auto o = cluster_options();
  o.piece_filter = std::vector<std::uint32_t>{};
  fixture f(2, 1, o);
  f.connect_and_unchoke(0);
  EXPECT_TRUE(f.w->peers.at(0).requested.empty());
  f.ticks(3);
  EXPECT_FALSE(f.w->finished) << "a worker without a shard is waiting, not done";
  auto p = f.progress();
  EXPECT_FALSE(p.seeding);
  EXPECT_EQ(p.peers, 1u) << "it stays connected";
  EXPECT_FALSE(f.w->peers.at(0).disconnected);
  f.filter({0}); // its first shard
  EXPECT_EQ(f.count_requests(0, 0), 4u);
  EXPECT_EQ(f.count_requests(0, 1), 0u);
  f.deliver(0, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  EXPECT_EQ(f.w->finished_count, 1);
}

TEST(torrent_cluster, verified_pieces_are_reported_in_one_batch_per_tick_and_before_finished) {
  auto o = cluster_options();
  o.report_pieces = true;
  fixture f(3, 2, o);
  EXPECT_TRUE(f.w->reported.empty()) << "nothing verified at start: no empty batch";
  f.connect_and_unchoke(0);
  f.connect_and_unchoke(1);
  f.deliver(0, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  f.deliver(0, {{1, 0}, {1, 1}, {1, 2}});
  f.deliver(1, {{1, 3, false}}); // piece 1 fails its hash check: not reported
  ASSERT_EQ(f.progress().pieces_failed, 1u);
  EXPECT_TRUE(f.w->reported.empty()) << "batched: nothing before the tick";
  f.ticks(1);
  ASSERT_EQ(f.w->reported.size(), 1u);
  EXPECT_EQ(f.w->reported[0], (std::vector<std::uint32_t>{0}));
  f.ticks(2);
  EXPECT_EQ(f.w->reported.size(), 1u) << "no batch without news";
  f.deliver(0, {{1, 0}, {1, 1}, {1, 2}, {1, 3}, {2, 0}, {2, 1}, {2, 2}, {2, 3}});
  ASSERT_EQ(f.w->reported.size(), 2u) << "the batch of the finish";
  EXPECT_EQ(sorted(f.w->reported[1]), (std::vector<std::uint32_t>{1, 2}));
  EXPECT_EQ(f.w->order, (std::vector<std::string>{"pieces", "pieces", "finished"}));
}

TEST(torrent_cluster, pieces_verified_at_start_are_the_first_batch) {
  auto o = cluster_options();
  o.data_on_disk = true;
  o.report_pieces = true;
  fixture f(3, 1, o);
  ASSERT_FALSE(f.w->reported.empty());
  EXPECT_EQ(sorted(f.w->reported[0]), (std::vector<std::uint32_t>{0, 1, 2}));
  ASSERT_GE(f.w->order.size(), 2u);
  EXPECT_EQ(f.w->order[0], "pieces");
  EXPECT_EQ(f.w->order[1], "finished");
}

TEST(torrent_cluster, without_report_pieces_nothing_is_reported) {
  fixture f(1, 1);
  f.connect_and_unchoke(0);
  f.deliver(0, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  f.ticks(1);
  EXPECT_TRUE(f.w->finished);
  EXPECT_TRUE(f.w->reported.empty());
}

TEST(torrent_cluster, save_resume_false_writes_no_resume_data) {
  for (bool save : {true, false}) {
    auto o = cluster_options();
    o.save_resume = save;
    fixture f(2, 1, o);
    f.connect_and_unchoke(0);
    f.deliver(0, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
    f.ticks(6); // past the 5 s resume interval
    f.deliver(0, {{1, 0}, {1, 1}, {1, 2}, {1, 3}});
    EXPECT_TRUE(f.w->finished);
    caf::anon_send(f.torrent, stop_request{});
    f.sched.run();
    ASSERT_TRUE(f.w->stopped);
    bool written = std::filesystem::exists(resume_path(f.dir, f.meta->hash));
    EXPECT_EQ(written, save) << (save ? "the control run must write resume data"
                                      : "save_resume = false wrote resume data");
    EXPECT_EQ(f.file_bytes(), f.data) << "the data itself is written either way";
  }
}

TEST(torrent_cluster, a_closed_fence_writes_nothing_and_the_blocks_are_fetched_once_it_opens) {
  auto o = cluster_options();
  auto fence = std::make_shared<write_fence>(); // closed: no lease yet
  o.fence = fence;
  fixture f(2, 1, o);
  f.connect_and_unchoke(0);
  ASSERT_EQ(f.count_requests(0, 0), 4u);
  f.deliver(0, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  EXPECT_EQ(f.file_bytes().find_first_not_of('\0'), std::string::npos)
    << "a refused block reached the file";
  auto p = f.progress();
  EXPECT_EQ(p.pieces_verified, 0u);
  EXPECT_EQ(p.pieces_failed, 0u);
  EXPECT_FALSE(f.w->failed) << "a refusal does not fail the torrent";
  EXPECT_FALSE(f.w->peers.at(0).disconnected) << "nor does it blame the peer";
  EXPECT_EQ(fence->refused(), 4u);
  EXPECT_NE(p.metrics.find("actorrent_blocks_fenced 4"), std::string::npos) << p.metrics;
  EXPECT_EQ(f.count_requests(0, 0), 4u) << "not requested again before the next tick";
  // The lease comes, with piece 0 only.
  fence->allow_until(write_fence::clock::now() + std::chrono::hours(1));
  Roaring shard;
  shard.add(0);
  fence->set_pieces(shard);
  f.ticks(1);
  EXPECT_EQ(f.count_requests(0, 0), 8u) << "the refused blocks are free again";
  f.deliver(0, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  EXPECT_EQ(f.progress().pieces_verified, 1u);
  // Piece 1 is outside the fence's pieces: refused, never verified, never on disk.
  f.deliver(0, {{1, 0}, {1, 1}, {1, 2}, {1, 3}});
  p = f.progress();
  EXPECT_EQ(p.pieces_verified, 1u);
  EXPECT_EQ(fence->refused(), 8u);
  auto bytes = f.file_bytes();
  EXPECT_EQ(bytes.substr(0, 4 * K), f.data.substr(0, 4 * K));
  EXPECT_EQ(bytes.size() > 4 * K ? bytes.find_first_not_of('\0', 4 * K) : std::string::npos,
            std::string::npos);
}

TEST(torrent_cluster, refusals_that_go_on_hold_requests_back_longer_each_time) {
  auto o = cluster_options();
  o.fence = std::make_shared<write_fence>(); // stays closed: a lease that never comes
  fixture f(1, 1, o);
  f.connect_and_unchoke(0);
  ASSERT_EQ(f.count_requests(0, 0), 4u);
  f.deliver(0, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  f.ticks(1);
  ASSERT_EQ(f.count_requests(0, 0), 8u) << "first refusal: held for one tick";
  f.deliver(0, {{0, 0}, {0, 1}, {0, 2}, {0, 3}});
  f.ticks(1);
  EXPECT_EQ(f.count_requests(0, 0), 8u) << "second refusal in a row: held for two ticks";
  f.ticks(1);
  EXPECT_EQ(f.count_requests(0, 0), 12u);
  EXPECT_FALSE(f.w->peers.at(0).disconnected);
  EXPECT_FALSE(f.w->failed);
}

// Replicate mode: what another worker (a peer dialled at an add_peers{preferred} address) has
// is asked of it, not of the swarm; once it chokes us, the swarm gets those pieces too.
TEST(torrent_cluster, pieces_a_preferred_peer_has_are_not_asked_of_others) {
  fixture f(8, 2);
  ASSERT_EQ(f.w->peers.size(), 2u);
  const peer_slot worker = 0, swarm = 1;
  caf::anon_send(f.torrent, add_peers{{f.w->peers.at(worker).pc.remote}, true});
  f.sched.run();
  caf::anon_send(f.torrent, peer_connected{worker, {}, true});
  availability_delta d;
  d.slot = worker;
  d.has_bitfield = true;
  d.bits = bitfield(8);
  for (std::uint32_t p = 0; p < 4; ++p)
    d.bits.set(piece_index{p});
  caf::anon_send(f.torrent, std::move(d));
  f.unchoke(worker);
  f.connect_and_unchoke(swarm);
  for (std::uint32_t p = 0; p < 4; ++p) {
    EXPECT_EQ(f.count_requests(worker, p), 4u) << "piece " << p;
    EXPECT_EQ(f.count_requests(swarm, p), 0u) << "piece " << p << " is the worker's";
  }
  for (std::uint32_t p = 4; p < 8; ++p)
    EXPECT_EQ(f.count_requests(swarm, p), 4u) << "piece " << p;
  // The worker chokes us: its requests are over, and the swarm is asked for its pieces.
  f.choke(worker);
  f.ticks(1);
  for (std::uint32_t p = 0; p < 4; ++p)
    EXPECT_EQ(f.count_requests(swarm, p), 4u) << "piece " << p << " after the choke";
}

TEST(torrent_actor, a_late_block_after_a_timeout_counts_and_its_re_request_elsewhere_is_cancelled) {
  // Peer 0 is silent past the request timeout: its requests go to others. Peer 1, with a queue
  // of requests it serves slowly but steadily, keeps its own. Then peer 0's copy of a block
  // now requested from peer 1 lands after all: it is written and counted, peer 1's request for
  // it is cancelled, and the piece verifies.
  fixture::options opt;
  opt.min_request_timeout_ms = 1;
  opt.request_timeout_s = 1;
  fixture f(3, 2, opt);
  f.connect_and_unchoke(0, 4);
  ASSERT_EQ(f.w->peers.at(0).requested.size(), 4u);
  const auto x = f.w->peers.at(0).requested[0].piece.value;
  EXPECT_EQ(f.count_requests(0, x), 4u);
  f.connect_and_unchoke(1, 8);
  ASSERT_EQ(f.w->peers.at(1).requested.size(), 8u);
  EXPECT_EQ(f.count_requests(1, x), 0u) << "not end-game yet";
  // Peer 1's requests in its order: pieces y then z (a peer serves its queue in order).
  const auto y = f.w->peers.at(1).requested[0].piece.value;
  const auto z = f.w->peers.at(1).requested[4].piece.value;
  ASSERT_EQ(f.w->peers.at(1).requested[0].block, 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  f.deliver(1, {{y, 0}}); // peer 1 is slow, not silent
  f.ticks(1);
  EXPECT_NE(f.log.str().find("4 request(s) timed out"), std::string::npos) << f.log.str();
  EXPECT_EQ(f.w->peers.at(0).cancelled.size(), 4u) << "peer 0's requests, all of them";
  EXPECT_TRUE(f.w->peers.at(1).cancelled.empty()) << "peer 1's queue did not expire";
  // Peer 0's halved pipeline takes two blocks of its piece again; peer 1 the other two.
  f.deliver(1, {{y, 1}});
  ASSERT_EQ(f.count_requests(1, x), 2u);
  block_ref elsewhere{};
  for (auto b : f.w->peers.at(1).requested)
    if (b.piece.value == x)
      elsewhere = b;
  // Peer 0's late copy of that block: counted, and peer 1's request cancelled.
  auto before = f.progress();
  f.deliver(0, {{x, elsewhere.block}});
  auto after = f.progress();
  EXPECT_EQ(after.dirty_bytes, before.dirty_bytes + K) << "the late copy counts";
  ASSERT_EQ(f.w->peers.at(1).cancelled.size(), 1u);
  EXPECT_EQ(f.w->peers.at(1).cancelled[0], elsewhere);
  // The rest as asked: everything verifies, from one copy of each block.
  for (std::uint32_t i = 0; i < 4; ++i) {
    block_ref b{piece_index{x}, i};
    if (b == elsewhere)
      continue;
    bool from_1 = false;
    for (auto r : f.w->peers.at(1).requested)
      from_1 = from_1 || r == b;
    f.deliver(from_1 ? 1 : 0, {{x, i}});
  }
  f.deliver(1, {{y, 2}, {y, 3}, {z, 0}, {z, 1}, {z, 2}, {z, 3}});
  auto p = f.progress();
  EXPECT_EQ(p.pieces_verified, 3u);
  EXPECT_EQ(p.pieces_failed, 0u);
  EXPECT_TRUE(f.w->finished);
  EXPECT_EQ(f.file_bytes(), f.data);
}

TEST(torrent_actor, a_late_copy_from_another_peer_is_dropped_from_a_piece_on_parole) {
  // After a hash failure a piece is filled by one peer. A late copy from a peer whose request a
  // choke ended is written by storage, but must not be part of the piece: it is discarded, so
  // the piece waits for the parole peer's copy of that block.
  fixture f(1, 2);
  const peer_slot liar = 0, honest = 1;
  f.connect_and_unchoke(liar);
  f.connect_and_unchoke(honest); // end-game: every block from both
  f.deliver(liar, {{0, 0, false}});
  f.choke(liar);
  f.deliver(honest, {{0, 1}, {0, 2}, {0, 3}});
  auto p = f.progress();
  ASSERT_EQ(p.pieces_failed, 1u);
  ASSERT_EQ(f.count_requests(honest, 0), 8u) << "on parole with the honest peer";
  f.deliver(liar, {{0, 2, false}}); // sent before its choke
  for (auto b : f.w->peers.at(honest).cancelled)
    EXPECT_FALSE(b == (block_ref{piece_index{0}, 2})) << "the parole peer's request stands";
  f.deliver(honest, {{0, 0}, {0, 1}, {0, 3}});
  p = f.progress();
  EXPECT_EQ(p.pieces_failed, 1u) << "hashed with the late copy in it";
  EXPECT_EQ(p.pieces_verified, 0u);
  f.deliver(honest, {{0, 2}});
  p = f.progress();
  EXPECT_EQ(p.pieces_verified, 1u);
  EXPECT_FALSE(f.banned(honest));
  EXPECT_TRUE(f.banned(liar)) << "smart ban: its block 0 differed";
}

// BEP 5 and BEP 27: the peers of a public torrent get the session's DHT (they send PORT and
// hand the peer's PORT to it); a private torrent's peers never do.
TEST(torrent_actor, peers_of_a_public_torrent_get_the_dht_and_a_private_ones_do_not) {
  fixture::options pub;
  pub.dht = true;
  {
    fixture f(2, 1, pub);
    ASSERT_EQ(f.w->peers.size(), 1u);
    EXPECT_TRUE(f.w->peers.begin()->second.pc.dht);
    EXPECT_EQ(f.w->peers.begin()->second.pc.dht_port, 7777);
  }
  fixture::options priv = pub;
  priv.is_private = true;
  {
    fixture f(2, 1, priv);
    ASSERT_EQ(f.w->peers.size(), 1u);
    EXPECT_FALSE(f.w->peers.begin()->second.pc.dht);
    EXPECT_EQ(f.w->peers.begin()->second.pc.dht_port, 0);
  }
}
