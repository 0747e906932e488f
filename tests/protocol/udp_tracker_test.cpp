#include "protocol/udp_tracker.hpp"

#include <gtest/gtest.h>

#include <string>

namespace actorrent::udp_tracker {
namespace {

using namespace std::chrono_literals;

std::string be32(std::uint32_t v) {
  std::string s;
  for (int shift = 24; shift >= 0; shift -= 8)
    s.push_back(static_cast<char>((v >> shift) & 0xff));
  return s;
}

std::string be64(std::uint64_t v) {
  return be32(static_cast<std::uint32_t>(v >> 32)) + be32(static_cast<std::uint32_t>(v));
}

std::string peer(std::uint32_t ip, std::uint16_t port) {
  return be32(ip) + std::string{static_cast<char>(port >> 8), static_cast<char>(port & 0xff)};
}

std::string announce_head(std::uint32_t tx, std::uint32_t interval = 1800) {
  return be32(1) + be32(tx) + be32(interval) + be32(3) + be32(4);
}

TEST(udp_tracker, connect_request_is_the_magic_action_and_transaction) {
  auto c = encode_connect(0xdeadbeef);
  EXPECT_EQ(c, be64(0x41727101980ull) + be32(0) + be32(0xdeadbeef));
}

TEST(udp_tracker, announce_request_has_bep15_layout_and_event_numbers) {
  announce_params p;
  for (std::size_t i = 0; i < 20; ++i) {
    p.hash[i] = static_cast<std::uint8_t>(i);
    p.id[i] = static_cast<std::uint8_t>(0xa0 + i);
  }
  p.downloaded = 1;
  p.left = 0x100000000ull;
  p.uploaded = 3;
  p.ev = tracker::event::started;
  p.key = 0x01020304;
  p.num_want = 50;
  p.port = 6881;
  auto a = encode_announce(0x1122334455667788ull, 7, p);
  ASSERT_EQ(a.size(), 98u);
  EXPECT_EQ(a.substr(0, 16), be64(0x1122334455667788ull) + be32(1) + be32(7));
  EXPECT_EQ(a.substr(16, 20), std::string(reinterpret_cast<const char*>(p.hash.data()), 20));
  EXPECT_EQ(a.substr(36, 20), std::string(reinterpret_cast<const char*>(p.id.data()), 20));
  EXPECT_EQ(a.substr(56, 24), be64(1) + be64(0x100000000ull) + be64(3));
  EXPECT_EQ(a.substr(80, 4), be32(2)) << "BEP 15: started is 2";
  EXPECT_EQ(a.substr(84, 4), be32(0)) << "IP: the sender's";
  EXPECT_EQ(a.substr(88, 8), be32(0x01020304) + be32(50));
  EXPECT_EQ(a.substr(96, 2), std::string("\x1a\xe1", 2));
  p.ev = tracker::event::completed;
  EXPECT_EQ(encode_announce(0, 0, p).substr(80, 4), be32(1));
  p.ev = tracker::event::stopped;
  EXPECT_EQ(encode_announce(0, 0, p).substr(80, 4), be32(3));
  p.ev = tracker::event::none;
  p.num_want = -1;
  EXPECT_EQ(encode_announce(0, 0, p).substr(80, 4), be32(0));
  EXPECT_EQ(encode_announce(0, 0, p).substr(92, 4), be32(0xffffffff));
}

TEST(udp_tracker, scrape_request_caps_at_74_hashes) {
  std::vector<info_hash> hashes(80);
  hashes[0][0] = 0x42;
  auto s = encode_scrape(9, 5, hashes);
  EXPECT_EQ(s.size(), 16u + 74 * 20);
  EXPECT_EQ(s.substr(0, 16), be64(9) + be32(2) + be32(5));
  EXPECT_EQ(s[16], '\x42');
}

TEST(udp_tracker, retransmit_timeout_doubles_up_to_exponent_8) {
  EXPECT_EQ(retransmit_timeout(15s, 0), 15s);
  EXPECT_EQ(retransmit_timeout(15s, 1), 30s);
  EXPECT_EQ(retransmit_timeout(15s, 8), 3840s);
  EXPECT_EQ(retransmit_timeout(15s, 20), 3840s) << "n stops at 8";
  EXPECT_EQ(retransmit_timeout(100ms, 2), 400ms);
}

TEST(udp_tracker, url_parsing) {
  auto a = parse_url("udp://tracker.example:6969/announce");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->host, "tracker.example");
  EXPECT_EQ(a->port, 6969);
  auto b = parse_url("udp://127.0.0.1:80");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "127.0.0.1");
  auto c = parse_url("udp://[::1]:1337/x?y");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 1337);
  for (const char* badurl : {"http://x:1", "udp://x", "udp://:80", "udp://x:0", "udp://x:65536",
                             "udp://x:8a", "udp://[::1", "udp://[::1]", "udp://x:123456"}) {
    auto r = parse_url(badurl);
    ASSERT_FALSE(r) << badurl;
    EXPECT_EQ(r.error().code, errc::tracker_response);
    EXPECT_EQ(r.error().message.rfind("udp tracker: ", 0), 0u) << r.error().message;
  }
}

TEST(udp_tracker, connect_reply_parses_and_checks_transaction) {
  auto ok = parse_connect(be32(0) + be32(77) + be64(0xabcdef0123456789ull), 77);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->connection_id, 0xabcdef0123456789ull);

  auto wrong_tx = parse_connect(be32(0) + be32(78) + be64(1), 77);
  ASSERT_FALSE(wrong_tx);
  EXPECT_EQ(wrong_tx.error().message,
            "udp tracker: transaction id 0x0000004e does not match 0x0000004d sent (16-byte "
            "connect reply)");

  auto short_header = parse_connect(std::string("\0\0\0", 3), 77);
  ASSERT_FALSE(short_header);
  EXPECT_EQ(short_header.error().message,
            "udp tracker: reply of 3 bytes is shorter than its 8-byte header");

  auto truncated = parse_connect(be32(0) + be32(77) + be32(1), 77);
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().message,
            "udp tracker: connect reply of 12 bytes, expected 16 (connection id missing at "
            "byte 8)");

  auto wrong_action = parse_connect(be32(1) + be32(77) + be64(1), 77);
  ASSERT_FALSE(wrong_action);
  EXPECT_EQ(wrong_action.error().message,
            "udp tracker: expected a connect reply, got action 1 (announce) at byte 0");
}

TEST(udp_tracker, error_action_carries_the_trackers_escaped_text) {
  auto e = parse_announce(be32(3) + be32(5) + "not \x1b[31mauthorized", 5);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, errc::tracker_failure);
  EXPECT_EQ(e.error().message, "udp tracker: error reply: not \\x1b[31mauthorized");
  auto empty = parse_connect(be32(3) + be32(5), 5);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message, "udp tracker: error reply: (no message)");
  // An error for another request is still someone else's datagram.
  auto other = parse_connect(be32(3) + be32(6) + "x", 5);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, errc::tracker_response);
  // The text is bounded: a 60 KiB message does not reach the log whole.
  auto huge = parse_connect(be32(3) + be32(5) + std::string(60000, 'a'), 5);
  ASSERT_FALSE(huge);
  EXPECT_LT(huge.error().message.size(), 300u);
}

TEST(udp_tracker, announce_reply_peers_and_counts) {
  auto d = announce_head(9, 900) + peer(0x7f000001, 6881) + peer(0x0a000002, 0) +
           peer(0xc0a80101, 51413);
  auto r = parse_announce(d, 9);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->interval, 900u);
  EXPECT_EQ(r->leechers, 3u);
  EXPECT_EQ(r->seeders, 4u);
  ASSERT_EQ(r->peers.size(), 2u) << "port 0 is left out";
  EXPECT_EQ(r->peers[0], (tracker::peer_endpoint{"127.0.0.1", 6881}));
  EXPECT_EQ(r->peers[1], (tracker::peer_endpoint{"192.168.1.1", 51413}));
  EXPECT_EQ(r->dropped_peers, 0u);
  auto none = parse_announce(announce_head(9), 9);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->peers.empty());
}

TEST(udp_tracker, announce_reply_over_ipv6_lists_18_byte_peers) {
  std::string v6(16, '\0');
  v6[15] = 1; // ::1
  auto d = announce_head(9) + v6 + std::string("\x1a\xe1", 2);
  auto r = parse_announce(d, 9, default_max_peers, true);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->peers.size(), 1u);
  EXPECT_EQ(r->peers[0], (tracker::peer_endpoint{"::1", 6881}));
  // The same 18 bytes read as IPv4 would be three bogus peers: the family decides.
  auto as_v4 = parse_announce(d, 9);
  ASSERT_TRUE(as_v4);
  EXPECT_EQ(as_v4->peers.size(), 1u) << "two of the three 6-byte entries have port 0";
  auto ragged = parse_announce(announce_head(9) + peer(1, 2), 9, default_max_peers, true);
  ASSERT_FALSE(ragged);
  EXPECT_EQ(ragged.error().message,
            "udp tracker: announce reply: peer list of 6 bytes (from byte 20) is not a multiple "
            "of 18");
}

TEST(udp_tracker, announce_reply_malformed_lengths_are_refused_precisely) {
  auto truncated = parse_announce(announce_head(9).substr(0, 15), 9);
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().message,
            "udp tracker: announce reply of 15 bytes is shorter than its 20-byte fixed part");
  auto ragged = parse_announce(announce_head(9) + peer(1, 2) + "abc", 9);
  ASSERT_FALSE(ragged);
  EXPECT_EQ(ragged.error().message,
            "udp tracker: announce reply: peer list of 9 bytes (from byte 20) is not a multiple "
            "of 6");
}

TEST(udp_tracker, huge_peer_lists_are_bounded) {
  std::string d = announce_head(1);
  for (std::uint32_t i = 0; i < 10000; ++i)
    d += peer(0x0a000000 + i, 1000);
  auto r = parse_announce(d, 1);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->peers.size(), default_max_peers);
  EXPECT_EQ(r->dropped_peers, 10000 - default_max_peers);
  auto small = parse_announce(d, 1, 3);
  ASSERT_TRUE(small);
  EXPECT_EQ(small->peers.size(), 3u);
  EXPECT_EQ(small->peers[2].ip, "10.0.0.2");
}

TEST(udp_tracker, scrape_reply_must_match_the_hashes_asked) {
  auto d = be32(2) + be32(4) + be32(1) + be32(2) + be32(3) + be32(4) + be32(5) + be32(6);
  auto r = parse_scrape(d, 4, 2);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].seeders, 4u);
  EXPECT_EQ((*r)[1].completed, 5u);
  EXPECT_EQ((*r)[1].leechers, 6u);
  auto fewer = parse_scrape(d, 4, 3);
  ASSERT_FALSE(fewer);
  EXPECT_EQ(fewer.error().message,
            "udp tracker: scrape reply of 32 bytes, expected 44 for 3 hashes");
  EXPECT_FALSE(parse_scrape(d + "x", 4, 2));
}

} // namespace
} // namespace actorrent::udp_tracker

TEST(udp_tracker, another_transaction_is_told_apart_from_a_bad_reply) {
  std::string d("\x00\x00\x00\x00\x00\x00\x00\x07", 8);
  d += std::string(8, '\x01');
  EXPECT_FALSE(actorrent::udp_tracker::other_transaction(d, 7)) << "its own transaction";
  EXPECT_FALSE(actorrent::udp_tracker::other_transaction("short", 7)) << "no header at all";
  auto other = actorrent::udp_tracker::other_transaction(d, 8);
  ASSERT_TRUE(other);
  EXPECT_EQ(*other, "udp tracker: transaction id 0x00000007 does not match 0x00000008 sent "
                    "(16-byte connect reply)");
}
