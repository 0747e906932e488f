// The torrent's awaiting_metadata state (BEP 9), driven deterministically: scripted peers offer
// metadata, the torrent asks them for pieces, bans the senders of metadata whose SHA-1 is not
// the info-hash, and hands verified metadata to on_metadata.
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include "actors/extension_messages.hpp"
#include "actors/messages.hpp"
#include "actors/peer_actor.hpp"
#include "actors/torrent_actor.hpp"
#include "actors/tracker_actor.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/sha1.hpp"
#include "tests/actors/deterministic.hpp"

namespace actorrent {
namespace {

struct fetch_world {
  std::vector<std::pair<peer_slot, std::uint32_t>> requests; // (peer, metadata piece)
  std::vector<std::pair<peer_slot, std::string>> disconnects;
  bool failed = false;
  std::string failure;
};

caf::behavior fake_peer(peer_slot slot, std::shared_ptr<fetch_world> w) {
  return {
    [=](const request_metadata& r) { w->requests.emplace_back(slot, r.piece); },
    [=](const disconnect_peer& d) { w->disconnects.emplace_back(slot, d.reason); },
    [](tick) {},
  };
}

caf::behavior fetch_observer(std::shared_ptr<fetch_world> w) {
  return {
    [=](torrent_failed& f) {
      w->failed = true;
      w->failure = f.why.message;
    },
    [](torrent_progress&) {},
    [](torrent_stopped&) {},
  };
}

/// A tracker announcer that answers nothing: the magnet's tracker is only carried into the
/// .torrent here. (The real announcer would post its HTTP result from a thread of its own,
/// outside the deterministic scheduler.)
caf::actor silent_tracker(caf::actor_system& s, const tracker_config&, const caf::actor&) {
  return s.spawn([](caf::event_based_actor* self) -> caf::behavior {
    return {[](const announce&) {}, [self](const stop_request&) { self->quit(); }};
  });
}

TEST(metadata_fetch, wrong_metadata_bans_its_sender_and_good_metadata_is_handed_over) {
  std::ostringstream log;
  actor_test::route_loggers(std::make_shared<spdlog::sinks::ostream_sink_mt>(log),
                            spdlog::level::debug);
  caf::actor_system_config cfg;
  caf::actor_system sys{actor_test::deterministic(cfg)};
  auto& sched = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  auto w = std::make_shared<fetch_world>();
  // An info dictionary of 2 metadata pieces (a long name), 1 byte of content.
  std::string name(20000, 'n');
  std::string info = "d6:lengthi1e4:name" + std::to_string(name.size()) + ":" + name +
                     "12:piece lengthi16384e6:pieces20:" + std::string(20, 'a') + "e";
  ASSERT_GT(info.size(), 16384u);
  torrent_config tc;
  tc.hash = sha1(info);
  tc.trackers = {"http://127.0.0.1:1/announce"};
  tc.tracker_factory = silent_tracker;
  tc.observer = sys.spawn(fetch_observer, w);
  tc.peers = {endpoint{"127.0.0.1", 7000}, endpoint{"127.0.0.1", 7001}};
  tc.peer_factory = [w, hash = tc.hash](caf::actor_system& s, const peer_config& pc) {
    EXPECT_EQ(pc.meta, nullptr);
    EXPECT_EQ(pc.hash, hash) << "the handshake carries the magnet's info-hash";
    return s.spawn(fake_peer, pc.slot, w);
  };
  std::shared_ptr<const metainfo> handed;
  std::string torrent_file;
  tc.on_metadata = [&](const std::shared_ptr<const metainfo>& m,
                       const std::string& file) -> result<metadata_ready> {
    handed = m;
    torrent_file = file;
    return error{errc::io_error, "test: no files here"};
  };
  auto t = spawn_torrent(sys, std::move(tc));
  sched.run();
  // Both known peers dialled: slots 0 and 1.
  caf::anon_send(t, peer_connected{0, peer_id{{1}}, true});
  caf::anon_send(t, peer_connected{1, peer_id{{2}}, true});
  caf::anon_send(t, metadata_offer{0, info.size()});
  sched.run();
  ASSERT_EQ(w->requests.size(), 2u) << "both pieces asked of the only source";
  EXPECT_EQ(w->requests[0], (std::pair<peer_slot, std::uint32_t>{0, 0}));
  EXPECT_EQ(w->requests[1], (std::pair<peer_slot, std::uint32_t>{0, 1}));
  caf::anon_send(t, metadata_offer{1, info.size()});
  sched.run();
  EXPECT_EQ(w->requests.size(), 2u) << "nothing left to ask the second source";

  // Peer 0 sends the right length, wrong bytes: banned, and everything asked of peer 1.
  std::string wrong = info;
  wrong[100] ^= 1;
  caf::anon_send(t, metadata_piece{0, 0, info.size(), wrong.substr(0, 16384)});
  caf::anon_send(t, metadata_piece{0, 1, info.size(), wrong.substr(16384)});
  sched.run();
  ASSERT_EQ(w->disconnects.size(), 1u);
  EXPECT_EQ(w->disconnects[0].first, 0u);
  EXPECT_NE(w->disconnects[0].second.find("does not match the info-hash"), std::string::npos)
    << w->disconnects[0].second;
  EXPECT_EQ(handed, nullptr);
  ASSERT_EQ(w->requests.size(), 4u);
  EXPECT_EQ(w->requests[2].first, 1u);
  EXPECT_EQ(w->requests[3].first, 1u);

  // Peer 1 sends the right bytes: handed over with the magnet's trackers.
  caf::anon_send(t, metadata_piece{1, 0, info.size(), info.substr(0, 16384)});
  caf::anon_send(t, metadata_piece{1, 1, info.size(), info.substr(16384)});
  sched.run();
  ASSERT_NE(handed, nullptr) << log.str();
  EXPECT_EQ(handed->hash, sha1(info));
  EXPECT_EQ(handed->name, name);
  EXPECT_EQ(handed->announce, "http://127.0.0.1:1/announce") << "the magnet's trackers kept";
  EXPECT_EQ(torrent_file, "d8:announce27:http://127.0.0.1:1/announce13:announce-listll27:"
                          "http://127.0.0.1:1/announceee4:info" + info + "e");
  EXPECT_TRUE(w->failed) << "on_metadata's error fails the torrent";
  EXPECT_EQ(w->failure, "test: no files here");
  caf::anon_send_exit(t, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST(metadata_fetch, wrong_metadata_from_several_peers_bans_only_its_sender) {
  std::ostringstream log;
  actor_test::route_loggers(std::make_shared<spdlog::sinks::ostream_sink_mt>(log),
                            spdlog::level::debug);
  caf::actor_system_config cfg;
  caf::actor_system sys{actor_test::deterministic(cfg)};
  auto& sched = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  auto w = std::make_shared<fetch_world>();
  // 5 metadata pieces: more than one peer is asked at once (4 requests per peer).
  std::string name(70000, 'n');
  std::string info = "d6:lengthi1e4:name" + std::to_string(name.size()) + ":" + name +
                     "12:piece lengthi16384e6:pieces20:" + std::string(20, 'a') + "e";
  const std::uint32_t pieces = static_cast<std::uint32_t>((info.size() + 16383) / 16384);
  ASSERT_EQ(pieces, 5u);
  auto piece_of = [&](const std::string& bytes, std::uint32_t p) {
    return bytes.substr(std::size_t{p} * 16384, 16384);
  };
  std::string wrong = info;
  wrong[4 * 16384 + 10] ^= 1; // a byte of the last piece
  peer_slot a = 0, b = 1;
  peer_slot liar = b; // set below: whoever is asked the last piece, which holds the bad byte
  torrent_config tc;
  tc.hash = sha1(info);
  tc.observer = sys.spawn(fetch_observer, w);
  tc.peers = {endpoint{"127.0.0.1", 7000}, endpoint{"127.0.0.1", 7001}};
  tc.peer_factory = [w](caf::actor_system& s, const peer_config& pc) {
    return s.spawn(fake_peer, pc.slot, w);
  };
  std::shared_ptr<const metainfo> handed;
  tc.on_metadata = [&](const std::shared_ptr<const metainfo>& m,
                       const std::string&) -> result<metadata_ready> {
    handed = m;
    return error{errc::io_error, "test: no files here"};
  };
  auto t = spawn_torrent(sys, std::move(tc));
  sched.run();
  caf::anon_send(t, peer_connected{a, peer_id{{1}}, true});
  caf::anon_send(t, peer_connected{b, peer_id{{2}}, true});
  caf::anon_send(t, metadata_offer{a, info.size()});
  caf::anon_send(t, metadata_offer{b, info.size()});
  sched.run();
  // Each peer answers what it was asked: the liar wrong, the other right.
  auto answer = [&](std::size_t from) {
    auto upto = w->requests.size();
    for (auto i = from; i < upto; ++i) {
      auto [slot, p] = w->requests[i];
      caf::anon_send(t, metadata_piece{slot, p, info.size(),
                                       piece_of(slot == liar ? wrong : info, p)});
    }
    sched.run();
    return upto;
  };
  ASSERT_EQ(w->requests.size(), pieces) << "every piece asked once";
  bool both = false;
  for (auto& r : w->requests)
    both |= r.first != w->requests[0].first;
  ASSERT_TRUE(both) << "the pieces were shared between the two peers";
  for (auto& r : w->requests)
    if (r.second == 4)
      liar = r.first;
  std::size_t done = answer(0);
  EXPECT_TRUE(w->disconnects.empty())
    << "a mismatch assembled from two peers bans neither (only one of them lied)";
  EXPECT_EQ(handed, nullptr);
  // From now on one peer at a time: answered until the metadata is handed over.
  for (int round = 0; round < 4 && !handed; ++round) {
    ASSERT_GT(w->requests.size(), done) << log.str();
    auto first = w->requests[done].first;
    for (auto i = done; i < w->requests.size(); ++i)
      EXPECT_EQ(w->requests[i].first, first) << "one source at a time";
    done = answer(done);
  }
  ASSERT_NE(handed, nullptr) << log.str();
  // (on_metadata's error then fails the torrent, which closes every peer: "torrent failed")
  for (auto& [slot, why] : w->disconnects) {
    if (why != "torrent failed") {
      EXPECT_EQ(slot, liar) << "the honest peer was banned: " << why;
    }
  }
  caf::anon_send_exit(t, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST(metadata_fetch, oversized_or_unasked_metadata_bans_the_sender) {
  std::ostringstream log;
  actor_test::route_loggers(std::make_shared<spdlog::sinks::ostream_sink_mt>(log),
                            spdlog::level::debug);
  caf::actor_system_config cfg;
  caf::actor_system sys{actor_test::deterministic(cfg)};
  auto& sched = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  auto w = std::make_shared<fetch_world>();
  torrent_config tc;
  tc.hash = sha1("whatever");
  tc.observer = sys.spawn(fetch_observer, w);
  tc.peers = {endpoint{"127.0.0.1", 7000}, endpoint{"127.0.0.1", 7001}};
  tc.peer_factory = [w](caf::actor_system& s, const peer_config& pc) {
    return s.spawn(fake_peer, pc.slot, w);
  };
  auto t = spawn_torrent(sys, std::move(tc));
  sched.run();
  caf::anon_send(t, peer_connected{0, peer_id{{1}}, true});
  caf::anon_send(t, peer_connected{1, peer_id{{2}}, true});
  caf::anon_send(t, metadata_offer{0, (16u << 20) + 1});
  caf::anon_send(t, metadata_piece{1, 3, 100, std::string(100, 'x')});
  sched.run();
  ASSERT_EQ(w->disconnects.size(), 2u);
  EXPECT_NE(w->disconnects[0].second.find("metadata_size 16777217 out of range"),
            std::string::npos)
    << w->disconnects[0].second;
  EXPECT_NE(w->disconnects[1].second.find("we did not ask for"), std::string::npos)
    << w->disconnects[1].second;
  EXPECT_TRUE(w->requests.empty());
  caf::anon_send(t, stop_request{});
  sched.run();
}

} // namespace
} // namespace actorrent
