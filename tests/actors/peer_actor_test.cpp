// Deterministic tests of the peer actor: it runs on CAF's test scheduler over a recording
// stand-in connection (no socket), the test plays the remote peer by handing it read batches
// exactly as the connection would, and stand-ins for the torrent and storage record what the
// peer actor tells them.

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "tests/actors/deterministic.hpp"
#include "actors/peer_actor.hpp"
#include "actors/peer_connection.hpp"
#include "protocol/extension.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/sha1.hpp"
#include "protocol/wire.hpp"

using namespace actorrent;

namespace {

constexpr std::uint32_t K = block_size;

/// Records what the peer actor sends; lets the test deliver what the remote peer sends.
struct fake_connection : connection {
  std::string sent;
  bool closed = false;
  std::string close_reason;
  connection_events events;

  void send(std::string bytes) override { sent += bytes; }
  void close(const std::string& reason) override {
    if (closed)
      return;
    closed = true;
    close_reason = reason;
    if (auto on_closed = std::move(events.on_closed))
      on_closed(reason, false);
  }
  std::size_t queued_bytes() const noexcept override { return 0; }
  void start(const wire::handshake& ours, connection_events ev) override {
    auto hs = wire::encode_handshake(ours);
    sent.append(hs.data(), hs.size());
    events = std::move(ev);
  }
};

struct recorded {
  std::vector<write_blocks> writes;
  std::vector<peer_activity> activity;
  std::vector<peer_closed> closed;
  bool connected = false;
};

caf::behavior torrent_stand_in(caf::event_based_actor*, std::shared_ptr<recorded> r) {
  return {
    [=](peer_connected&) { r->connected = true; },
    [=](peer_activity& a) { r->activity.push_back(std::move(a)); },
    [=](peer_closed& c) { r->closed.push_back(std::move(c)); },
    [=](availability_delta&) {},
  };
}

caf::behavior storage_stand_in(caf::event_based_actor*, std::shared_ptr<recorded> r) {
  return {
    [=](write_blocks& w) { r->writes.push_back(std::move(w)); },
  };
}

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{actor_test::deterministic(cfg)};
  caf::scheduler::test_coordinator& sched =
    dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  std::shared_ptr<recorded> r = std::make_shared<recorded>();
  std::shared_ptr<fake_connection> conn = std::make_shared<fake_connection>();
  std::shared_ptr<metainfo> meta = std::make_shared<metainfo>();
  std::string data;
  caf::actor peer;

  /// A remote peer that offers the fast extension and/or BEP 10, over a 2-piece torrent.
  fixture(bool fast, bool extended) {
    actor_test::route_loggers(std::make_shared<spdlog::sinks::null_sink_mt>(), spdlog::level::off);
    std::mt19937 rng(3);
    data.resize(8 * K);
    for (auto& c : data)
      c = static_cast<char>(rng());
    meta->name = "t.bin";
    meta->piece_length = 4 * K;
    meta->total_size = data.size();
    meta->files.push_back(file_entry{{"t.bin"}, data.size(), false});
    for (std::uint32_t p = 0; p < 2; ++p)
      meta->piece_hashes.push_back(sha1(std::string_view(data).substr(p * 4ull * K, 4 * K)));
    peer_config pc;
    pc.torrent = sys.spawn(torrent_stand_in, r);
    pc.storage = sys.spawn(storage_stand_in, r);
    pc.slot = 7;
    pc.remote = endpoint{"127.0.0.1", 6881};
    pc.meta = meta;
    pc.accepted = conn;
    pc.accepted_handshake.hash = meta->hash;
    pc.accepted_handshake.id[0] = 'x'; // not our own id
    pc.accepted_handshake.set_fast(fast);
    pc.accepted_handshake.set_extended(extended);
    peer = spawn_peer(sys, pc);
    sched.run();
  }
  ~fixture() {
    caf::anon_send_exit(peer, caf::exit_reason::user_shutdown);
    sched.run();
  }

  /// The remote peer's bytes `frames` arrive in one read.
  void receive(const std::string& frames) {
    auto buf = std::make_shared<recv_buffer>();
    buf->bytes.assign(frames.begin(), frames.end());
    read_batch b;
    wire::stream_parser parser;
    auto used = parser.parse(std::string_view(buf->bytes.data(), buf->bytes.size()),
                             [&](const wire::message& m) {
                               b.messages.push_back(m);
                               return true;
                             });
    ASSERT_TRUE(used.ok());
    ASSERT_EQ(*used, frames.size());
    b.wire_bytes = frames.size();
    b.buffer = buf;
    conn->events.on_batch(std::move(b));
    sched.run();
  }
  std::string piece_frame(std::uint32_t piece, std::uint32_t block, bool right = true) {
    std::string out;
    wire::append_piece_header(out, piece, block * K, K);
    auto bytes = data.substr((piece * 4ull + block) * K, K);
    if (!right)
      for (auto& c : bytes)
        c = static_cast<char>(c ^ 0x5a);
    return out + bytes;
  }
  void request(std::vector<block_ref> blocks) {
    caf::anon_send(peer, request_blocks{std::move(blocks)});
    sched.run();
  }
  std::size_t blocks_written() const {
    std::size_t n = 0;
    for (auto& w : r->writes)
      n += w.blocks.size();
    return n;
  }
  /// Every message the peer actor sent on the wire after the handshake.
  std::vector<wire::message> sent_messages() {
    std::vector<wire::message> out;
    wire::stream_parser parser;
    auto body = std::string_view(conn->sent).substr(wire::handshake_size);
    EXPECT_TRUE(parser.parse(body, [&](const wire::message& m) {
      out.push_back(m);
      return true;
    }).ok());
    return out;
  }
};

block_ref blk(std::uint32_t p, std::uint32_t b) { return block_ref{piece_index{p}, b}; }

} // namespace

TEST(peer_actor, a_second_copy_of_a_block_reaches_storage_only_when_requested_twice) {
  fixture f(true, false);
  ASSERT_TRUE(f.r->connected);
  f.request({blk(0, 0)});
  f.receive(f.piece_frame(0, 0) + f.piece_frame(0, 0, false));
  ASSERT_EQ(f.r->writes.size(), 1u);
  ASSERT_EQ(f.r->writes[0].blocks.size(), 1u) << "the unrequested second copy is dropped";
  EXPECT_EQ(f.r->writes[0].blocks[0].bytes, f.data.substr(0, K));
  // Asked twice (a re-request before the first was answered): both copies go to storage, in
  // the order received, so storage keeps the later one.
  f.request({blk(0, 1)});
  f.request({blk(0, 1)});
  f.receive(f.piece_frame(0, 1) + f.piece_frame(0, 1, false));
  ASSERT_EQ(f.r->writes.size(), 2u);
  ASSERT_EQ(f.r->writes[1].blocks.size(), 2u);
  EXPECT_EQ(f.r->writes[1].blocks[0].bytes, f.data.substr(K, K));
  EXPECT_NE(f.r->writes[1].blocks[1].bytes, f.data.substr(K, K));
  EXPECT_TRUE(f.r->closed.empty());
}

TEST(peer_actor, a_choke_without_the_fast_extension_ends_pending_requests) {
  // BEP 3: a CHOKE discards the peer's queue, and the torrent asks others. A copy the peer
  // sent anyway was asked of it: written once; a second copy is not.
  fixture f(false, false);
  f.request({blk(1, 0), blk(1, 1)});
  std::string choke;
  wire::append_simple(choke, wire::msg_id::choke);
  f.receive(choke + f.piece_frame(1, 0) + f.piece_frame(1, 0, false));
  ASSERT_EQ(f.blocks_written(), 1u);
  EXPECT_EQ(f.r->writes[0].blocks[0].bytes, f.data.substr(4 * K, K));
  EXPECT_TRUE(f.r->closed.empty());
}

TEST(peer_actor, a_choke_ends_a_fast_peers_requests_and_a_late_copy_is_still_written) {
  // The torrent takes back every request of a peer that chokes us (they go to other peers). A
  // block that still arrives was asked of this peer: it is written (the torrent counts it and
  // cancels the re-request), once, and not held against the peer. A REJECT ends the request:
  // a copy after it is not written. Its REJECTs are still reported.
  fixture f(true, false);
  f.request({blk(1, 0), blk(1, 1)});
  std::string frames;
  wire::append_simple(frames, wire::msg_id::choke);
  wire::append_request(frames, wire::msg_id::reject, 1, K, K);
  f.receive(frames + f.piece_frame(1, 0) + f.piece_frame(1, 1));
  ASSERT_EQ(f.blocks_written(), 1u) << "the choked request's copy, not the rejected one's";
  EXPECT_EQ(f.r->writes[0].blocks[0].piece, piece_index{1});
  EXPECT_EQ(f.r->writes[0].blocks[0].begin, 0u);
  EXPECT_EQ(f.r->writes[0].blocks[0].bytes, f.data.substr(4 * K, K));
  std::uint64_t payload = 0;
  for (auto& a : f.r->activity)
    payload += a.payload_bytes;
  EXPECT_EQ(payload, std::uint64_t{K}) << "the late copy is payload";
  f.receive(f.piece_frame(1, 0));
  EXPECT_EQ(f.blocks_written(), 1u) << "one request, one copy written";
  EXPECT_TRUE(f.r->closed.empty()) << "late copies of forgotten requests are no abuse";
  bool rejected_reported = false;
  for (auto& a : f.r->activity)
    for (auto b : a.rejected)
      rejected_reported = rejected_reported || b == blk(1, 1);
  EXPECT_TRUE(rejected_reported);
  bool choke_reported = false;
  for (auto& a : f.r->activity)
    choke_reported = choke_reported || a.choke_seen;
  EXPECT_TRUE(choke_reported) << "the torrent takes its requests back too";
  // Asked again after the unchoke: the block is accepted again.
  std::string unchoke;
  wire::append_simple(unchoke, wire::msg_id::unchoke);
  f.receive(unchoke);
  f.request({blk(1, 1)});
  f.receive(f.piece_frame(1, 1));
  EXPECT_EQ(f.blocks_written(), 2u);
}

TEST(peer_actor, a_late_copy_after_a_timeout_is_written_after_an_end_game_cancel_it_is_not) {
  // A request timeout gives the block to another peer, but a slow peer's copy may still come
  // first: written. After an end-game cancel the block is on disk already: dropped.
  fixture f(true, false);
  f.request({blk(0, 1), blk(0, 2)});
  caf::anon_send(f.peer, cancel_blocks{{blk(0, 1)}, true});
  caf::anon_send(f.peer, cancel_blocks{{blk(0, 2)}, false});
  f.sched.run();
  f.receive(f.piece_frame(0, 1) + f.piece_frame(0, 2));
  ASSERT_EQ(f.blocks_written(), 1u);
  EXPECT_EQ(f.r->writes[0].blocks[0].begin, K);
  // Never requested, or requested once and delivered twice: refused as before.
  f.receive(f.piece_frame(0, 1) + f.piece_frame(1, 3));
  EXPECT_EQ(f.blocks_written(), 1u);
  EXPECT_TRUE(f.r->closed.empty());
  bool cancels = false;
  for (auto& m : f.sent_messages())
    cancels = cancels || (m.id == wire::msg_id::cancel && m.begin == K);
  EXPECT_TRUE(cancels) << "a timed-out request is cancelled on the wire all the same";
}

TEST(peer_actor, cancelled_blocks_are_dropped_when_they_arrive) {
  // The torrent cancels a request because the block is on disk (end-game) or no longer
  // wanted: a copy arriving afterwards must not reach storage.
  fixture f(true, false);
  f.request({blk(0, 2)});
  caf::anon_send(f.peer, cancel_blocks{{blk(0, 2)}});
  f.sched.run();
  f.receive(f.piece_frame(0, 2, false));
  EXPECT_EQ(f.blocks_written(), 0u);
  bool cancel_sent = false;
  for (auto& m : f.sent_messages())
    cancel_sent = cancel_sent || (m.id == wire::msg_id::cancel && m.index == 0 && m.begin == 2 * K);
  EXPECT_TRUE(cancel_sent);
}

TEST(peer_actor, the_extended_handshake_advertises_reqq_and_reports_the_peers) {
  fixture f(true, true);
  bool ours = false;
  for (auto& m : f.sent_messages()) {
    if (m.id != wire::msg_id::extended || m.ext_id != ext::handshake_id)
      continue;
    auto hs = ext::parse_handshake(m.payload);
    ASSERT_TRUE(hs.ok());
    EXPECT_EQ(hs->reqq, 2000u);
    ours = true;
  }
  EXPECT_TRUE(ours) << "no extended handshake sent to a peer that set the BEP 10 bit";
  ext::handshake theirs;
  theirs.reqq = 10;
  std::string frame;
  wire::append_extended(frame, ext::handshake_id, ext::encode_handshake(theirs));
  f.receive(frame);
  std::uint32_t limit = 0;
  for (auto& a : f.r->activity)
    limit = a.request_limit ? a.request_limit : limit;
  EXPECT_EQ(limit, 10u);
}

TEST(peer_actor, a_malformed_extended_handshake_closes_the_connection_with_a_reason) {
  fixture f(true, true);
  std::string frame;
  wire::append_extended(frame, ext::handshake_id, "d4:reqq3:abce");
  f.receive(frame);
  ASSERT_EQ(f.r->closed.size(), 1u);
  EXPECT_TRUE(f.r->closed[0].misbehaved);
  EXPECT_NE(f.r->closed[0].reason.find("reqq"), std::string::npos) << f.r->closed[0].reason;
  EXPECT_TRUE(f.conn->closed);
}

TEST(peer_actor, late_copies_of_cancelled_blocks_never_count_as_abuse) {
  // Request timeouts and end-game send CANCELs; a peer that ignores them (BEP 3 allows it)
  // delivers those blocks anyway. Thousands of them over a long download must not get it
  // disconnected as a sender of unrequested blocks; a block that was never asked for still is.
  fixture f(true, false);
  for (int i = 0; i < 2100; ++i) {
    f.request({blk(0, 3)});
    caf::anon_send(f.peer, cancel_blocks{{blk(0, 3)}});
    f.sched.run();
    f.receive(f.piece_frame(0, 3));
    ASSERT_TRUE(f.r->closed.empty()) << "disconnected after " << i + 1 << " late copies";
  }
  EXPECT_EQ(f.blocks_written(), 0u);
  std::string unasked;
  for (int i = 0; i < 2049; ++i)
    unasked += f.piece_frame(1, 2);
  f.receive(unasked);
  ASSERT_EQ(f.r->closed.size(), 1u);
  EXPECT_TRUE(f.r->closed[0].misbehaved);
  EXPECT_NE(f.r->closed[0].reason.find("did not request"), std::string::npos);
}
