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

#include "actors/dht_actor.hpp"
#include "actors/extension_messages.hpp"
#include "actors/messages.hpp"
#include "tests/actors/deterministic.hpp"
#include "actors/peer_actor.hpp"
#include "actors/peer_connection.hpp"
#include "protocol/extension.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/pex.hpp"
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
  std::vector<add_peers> added;        // peers the connection passed on (BEP 11)
  std::vector<dht_ping_node> pings;    // what it asked the DHT to ping (BEP 5)
  bool connected = false;
};

caf::behavior torrent_stand_in(caf::event_based_actor*, std::shared_ptr<recorded> r) {
  return {
    [=](peer_connected&) { r->connected = true; },
    [=](peer_activity& a) { r->activity.push_back(std::move(a)); },
    [=](peer_closed& c) { r->closed.push_back(std::move(c)); },
    [=](availability_delta&) {},
    [=](add_peers& a) { r->added.push_back(std::move(a)); },
    [=](pex_capable&) {},
  };
}

caf::behavior dht_stand_in(caf::event_based_actor*, std::shared_ptr<recorded> r) {
  return {
    [=](dht_ping_node& p) { r->pings.push_back(std::move(p)); },
  };
}

/// How the fixture's torrent and remote peer are set up beyond fast / extended.
struct setup {
  bool dht = false;        // the session runs a DHT (UDP port 7000)
  bool peer_dht = false;   // the remote peer sets the BEP 5 bit
  bool is_private = false; // BEP 27
};

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
  fixture(bool fast, bool extended, setup s = {}) {
    actor_test::route_loggers(std::make_shared<spdlog::sinks::null_sink_mt>(), spdlog::level::off);
    std::mt19937 rng(3);
    data.resize(8 * K);
    for (auto& c : data)
      c = static_cast<char>(rng());
    meta->name = "t.bin";
    meta->piece_length = 4 * K;
    meta->total_size = data.size();
    meta->files.push_back(file_entry{{"t.bin"}, data.size(), false});
    meta->is_private = s.is_private;
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
    pc.accepted_handshake.set_dht(s.peer_dht);
    if (s.dht) {
      pc.dht = sys.spawn(dht_stand_in, r);
      pc.dht_port = 7000;
    }
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

// -- BEP 5: DHT on the peer wire ------------------------------------------------------------

namespace {

/// The handshake the peer actor sent (the first 68 bytes on the wire).
wire::handshake sent_handshake(fixture& f) {
  auto hs = wire::parse_handshake(std::string_view(f.conn->sent).substr(0, wire::handshake_size));
  EXPECT_TRUE(hs.ok());
  return hs.ok() ? *hs : wire::handshake{};
}

/// The ports of the PORT messages the peer actor sent.
std::vector<std::uint16_t> ports_sent(fixture& f) {
  std::vector<std::uint16_t> out;
  for (auto& m : f.sent_messages())
    if (m.id == wire::msg_id::port)
      out.push_back(m.port);
  return out;
}

void announce_pieces(fixture& f) {
  our_pieces msg;
  msg.full = true;
  msg.bits = bitfield(2);
  msg.bits.set(piece_index{0});
  caf::anon_send(f.peer, std::move(msg));
  f.sched.run();
}

std::string port_frame(std::uint16_t port) {
  std::string out;
  wire::append_port(out, port);
  return out;
}

} // namespace

TEST(peer_actor, the_dht_bit_and_port_go_out_only_with_the_dht_on) {
  fixture off(true, true, setup{false, true, false});
  announce_pieces(off);
  EXPECT_FALSE(sent_handshake(off).supports_dht());
  EXPECT_TRUE(ports_sent(off).empty());

  fixture on(true, true, setup{true, true, false});
  EXPECT_TRUE(sent_handshake(on).supports_dht());
  announce_pieces(on);
  EXPECT_EQ(ports_sent(on), std::vector<std::uint16_t>{7000});
  // After our pieces: a bitfield stays the first message after the handshakes.
  auto sent = on.sent_messages();
  auto port_at = std::find_if(sent.begin(), sent.end(),
                              [](auto& m) { return m.id == wire::msg_id::port; });
  auto bitfield_at = std::find_if(sent.begin(), sent.end(),
                                  [](auto& m) { return m.id == wire::msg_id::bitfield; });
  ASSERT_NE(bitfield_at, sent.end());
  EXPECT_LT(bitfield_at - sent.begin(), port_at - sent.begin());
  announce_pieces(on); // a second announcement sends no second PORT
  EXPECT_EQ(ports_sent(on).size(), 1u);
}

TEST(peer_actor, no_port_to_a_peer_without_the_dht_bit) {
  fixture no_bit(true, true, setup{true, false, false});
  announce_pieces(no_bit);
  EXPECT_TRUE(sent_handshake(no_bit).supports_dht());
  EXPECT_TRUE(ports_sent(no_bit).empty());
}

TEST(peer_actor, a_peers_port_has_the_dht_ping_its_node_once) {
  fixture f(true, true, setup{true, true, false});
  f.receive(port_frame(6999));
  ASSERT_EQ(f.r->pings.size(), 1u);
  EXPECT_EQ(f.r->pings[0].node.host, "127.0.0.1");
  EXPECT_EQ(f.r->pings[0].node.port, 6999);
  f.receive(port_frame(7001) + port_frame(7002)); // repeated: bounded to one ping per peer
  EXPECT_EQ(f.r->pings.size(), 1u);
  EXPECT_TRUE(f.r->closed.empty());

  fixture off(true, true, setup{false, true, false});
  off.receive(port_frame(6999));
  EXPECT_TRUE(off.r->pings.empty());
  EXPECT_TRUE(off.r->closed.empty());
}

// -- BEP 27: no PEX for a private torrent ---------------------------------------------------

namespace {

/// The remote peer's extended handshake names ut_pex (id 1), then a ut_pex message arrives
/// with the id our handshake assigned (2, as if it were offered) listing two peers.
void receive_pex(fixture& f) {
  ext::handshake theirs;
  theirs.extensions.emplace_back("ut_pex", 1);
  std::string frames;
  wire::append_extended(frames, ext::handshake_id, ext::encode_handshake(theirs));
  pex::message m;
  m.added.push_back(pex::peer{"10.0.0.1", 6881, 0});
  m.added.push_back(pex::peer{"10.0.0.2", 6882, 0});
  wire::append_extended(frames, 2, pex::encode(m));
  f.receive(frames);
}

bool offers_ut_pex(fixture& f) {
  for (auto& m : f.sent_messages())
    if (m.id == wire::msg_id::extended && m.ext_id == ext::handshake_id) {
      auto hs = ext::parse_handshake(m.payload);
      EXPECT_TRUE(hs.ok());
      return hs.ok() && hs->id_of("ut_pex") != 0;
    }
  ADD_FAILURE() << "no extended handshake sent";
  return false;
}

std::size_t peers_added(fixture& f) {
  std::size_t n = 0;
  for (auto& a : f.r->added)
    n += a.peers.size();
  return n;
}

} // namespace

TEST(peer_actor, a_private_torrent_neither_offers_nor_takes_ut_pex) {
  fixture pub(true, true);
  EXPECT_TRUE(offers_ut_pex(pub));
  receive_pex(pub);
  EXPECT_EQ(peers_added(pub), 2u) << "a public torrent takes the peers of a ut_pex message";

  fixture priv(true, true, setup{true, true, true});
  EXPECT_FALSE(offers_ut_pex(priv));
  receive_pex(priv);
  EXPECT_EQ(peers_added(priv), 0u) << "BEP 27: a private torrent's peers come from its tracker";
  EXPECT_TRUE(priv.r->closed.empty());
}
