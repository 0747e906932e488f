// Deterministic tests of the torrent actor together with its storage actor: both run on CAF's
// test scheduler (nothing moves until the test runs the queue), the peers are scripted actors
// that record what the torrent tells them, and blocks reach storage exactly as a peer actor
// would send them. Covers the block-provenance cases: two copies of a block in one read, a
// liar's end-game copy landing after the honest one, and blocks taken back from a peer on parole.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "tests/actors/deterministic.hpp"
#include "actors/peer_actor.hpp"
#include "actors/storage_actor.hpp"
#include "actors/torrent_actor.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/sha1.hpp"
#include "storage/disk_pool.hpp"
#include "storage/file_store.hpp"
#include "storage/resume.hpp"

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
};

struct world {
  std::map<peer_slot, peer_log> peers;
  std::vector<torrent_progress> progress;
  bool finished = false;
  bool failed = false;
  bool stopped = false;
  torrent_progress final; // from torrent_stopped
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
      self->send(p.pc.torrent, peer_closed{slot, d.reason, false});
      self->quit();
    },
    [=](set_interested) {},
    [=](set_choke) {},
    [=](our_pieces&) {},
  };
}

caf::behavior observer(caf::event_based_actor*, std::shared_ptr<world> w) {
  return {
    [=](torrent_progress& p) { w->progress.push_back(std::move(p)); },
    [=](torrent_finished&) { w->finished = true; },
    [=](torrent_failed&) { w->failed = true; },
    [=](torrent_stopped& s) {
      w->stopped = true;
      w->final = std::move(s.final);
    },
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
    tc.max_peers_per_ip = 100;
    tc.observer = sys.spawn(observer, w);
    for (std::uint32_t i = 0; i < peers; ++i)
      tc.peers.push_back(endpoint{"127.0.0.1", static_cast<std::uint16_t>(7000 + i)});
    auto wp = w;
    tc.peer_factory = [wp](caf::actor_system& s, const peer_config& pc) {
      auto h = s.spawn(scripted_peer, pc, wp);
      wp->peers[pc.slot].pc = pc;
      wp->peers[pc.slot].handle = h;
      return h;
    };
    if (opt.data_on_disk)
      for (std::uint32_t p = 0; p < pieces; ++p)
        tc.pieces_to_check.push_back(p);
    torrent = spawn_torrent(sys, std::move(tc));
    if (opt.stop_at_start)
      caf::anon_send(torrent, stop_request{});
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

  /// The peer in `slot` finished its handshake, has every piece and unchokes us.
  void connect_and_unchoke(peer_slot slot) {
    caf::anon_send(torrent, peer_connected{slot, {}, true});
    availability_delta d;
    d.slot = slot;
    d.has_bitfield = true;
    d.bits = bitfield(meta->piece_count(), true);
    caf::anon_send(torrent, std::move(d));
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
  // One peer has everything: it gets every block of both pieces (pipeline 256).
  EXPECT_EQ(f.w->peers.at(0).requested.size(), 8u);
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
