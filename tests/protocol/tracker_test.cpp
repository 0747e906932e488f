#include "protocol/tracker.hpp"

#include <gtest/gtest.h>

#include <string>

#include "protocol/bencode.hpp"

namespace actorrent::tracker {
namespace {

using bencode::value;

const info_hash known_hash{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45,
                           0x67, 0x89, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x9a};
const char *known_escaped = "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A";

std::string_view bytes_of(const info_hash &h) {
  return {reinterpret_cast<const char *>(h.data()), h.size()};
}

TEST(tracker, url_encode_binary_info_hash) {
  EXPECT_EQ(url_encode(bytes_of(known_hash)), known_escaped);
}

TEST(tracker, url_encode_keeps_only_unreserved) {
  EXPECT_EQ(url_encode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(url_encode(" /?&=+%"), "%20%2F%3F%26%3D%2B%25");
  EXPECT_EQ(url_encode(std::string("\x00\xff", 2)), "%00%FF");
  EXPECT_EQ(url_encode(""), "");
}

announce_request sample_request(std::string url) {
  announce_request req;
  req.url = std::move(url);
  req.hash = known_hash;
  for (std::size_t i = 0; i < req.id.size(); ++i)
    req.id[i] = static_cast<std::uint8_t>('A' + i);
  req.port = 6881;
  req.uploaded = 1;
  req.downloaded = 2;
  req.left = 12'345'678'901ull;
  req.numwant = 80;
  return req;
}

TEST(tracker, announce_url_fields) {
  auto req = sample_request("http://t.example:8080/announce");
  req.ev = event::started;
  req.key = "k ey";
  EXPECT_EQ(build_announce_url(req),
            std::string("http://t.example:8080/announce?info_hash=") + known_escaped +
                "&peer_id=ABCDEFGHIJKLMNOPQRST&port=6881&uploaded=1&downloaded=2"
                "&left=12345678901&compact=1&numwant=80&event=started&key=k%20ey");
}

TEST(tracker, announce_url_with_existing_query) {
  auto req = sample_request("http://t.example/announce.php?passkey=abc");
  req.ev = event::none;
  req.tracker_id = "t/1";
  std::string url = build_announce_url(req);
  EXPECT_EQ(url.rfind("http://t.example/announce.php?passkey=abc&info_hash=", 0), 0u) << url;
  EXPECT_EQ(url.find("event="), std::string::npos) << url;
  EXPECT_NE(url.find("&trackerid=t%2F1"), std::string::npos) << url;
  EXPECT_EQ(url.find("&key="), std::string::npos) << url;

  req.url = "http://t.example/a?";
  EXPECT_EQ(build_announce_url(req).rfind("http://t.example/a?info_hash=", 0), 0u);
  req.url = "http://t.example/a?x=1&";
  EXPECT_EQ(build_announce_url(req).rfind("http://t.example/a?x=1&info_hash=", 0), 0u);

  req.ev = event::completed;
  EXPECT_NE(build_announce_url(req).find("&event=completed"), std::string::npos);
  req.ev = event::stopped;
  EXPECT_NE(build_announce_url(req).find("&event=stopped"), std::string::npos);
}

TEST(tracker, compact_dict_and_ipv6_peers) {
  value root = value::make_dict();
  root.set("interval", value::make_int(900));
  root.set("min interval", value::make_int(60));
  root.set("complete", value::make_int(5));
  root.set("incomplete", value::make_int(3));
  root.set("tracker id", value::make_string("tid"));
  root.set("warning message", value::make_string("careful"));
  root.set("peers", value::make_string(std::string("\x0a\x00\x00\x01\x1a\xe1"
                                                   "\xc0\xa8\x01\xff\x00\x50"
                                                   "\x01\x02\x03\x04\x00\x00", // port 0: dropped
                                                   18)));
  std::string v6(16, '\0');
  v6[0] = '\x20';
  v6[1] = '\x01';
  v6[2] = '\x0d';
  v6[3] = '\xb8';
  v6[15] = '\x01';
  root.set("peers6", value::make_string(v6 + std::string("\xc3\x50", 2)));
  auto r = parse_announce_response(bencode::encode(root));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->interval, 900u);
  EXPECT_EQ(r->min_interval, 60u);
  EXPECT_EQ(r->complete, 5u);
  EXPECT_EQ(r->incomplete, 3u);
  EXPECT_EQ(r->tracker_id, "tid");
  EXPECT_EQ(r->warning, "careful");
  std::vector<peer_endpoint> want{
      {"10.0.0.1", 6881}, {"192.168.1.255", 80}, {"2001:db8::1", 50000}};
  EXPECT_EQ(r->peers, want);
}

TEST(tracker, dictionary_peers_skip_invalid_entries) {
  auto peer = [](value ip, value port) {
    value p = value::make_dict();
    p.set("peer id", value::make_string(std::string(20, 'p')));
    p.set("ip", std::move(ip));
    p.set("port", std::move(port));
    return p;
  };
  value peers = value::make_list();
  peers.as_list().push_back(peer(value::make_string("1.2.3.4"), value::make_int(51413)));
  peers.as_list().push_back(peer(value::make_string("5.6.7.8"), value::make_int(0)));
  peers.as_list().push_back(peer(value::make_string("5.6.7.9"), value::make_int(65536)));
  peers.as_list().push_back(peer(value::make_string("5.6.7.10"), value::make_string("80")));
  peers.as_list().push_back(peer(value::make_int(1), value::make_int(80)));
  peers.as_list().push_back(value::make_string("junk"));
  peers.as_list().push_back(peer(value::make_string("tracker.example"), value::make_int(65535)));
  value root = value::make_dict();
  root.set("interval", value::make_int(1));
  root.set("peers", std::move(peers));
  auto r = parse_announce_response(bencode::encode(root));
  ASSERT_TRUE(r.ok()) << r.error().message;
  std::vector<peer_endpoint> want{{"1.2.3.4", 51413}, {"tracker.example", 65535}};
  EXPECT_EQ(r->peers, want);
}

TEST(tracker, failure_reason) {
  auto r = parse_announce_response("d14:failure reason17:torrent not founde");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::tracker_failure);
  EXPECT_EQ(r.error().message, "torrent not found");
}

TEST(tracker, bad_compact_lengths) {
  auto r = parse_announce_response("d8:intervali10e5:peers7:abcdefge");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::tracker_response);
  EXPECT_EQ(r.error().message, "peers: compact length 7 is not a multiple of 6 (byte 22)");
  auto r6 = parse_announce_response("d6:peers612:abcdefghijkle");
  ASSERT_FALSE(r6.ok());
  EXPECT_EQ(r6.error().code, errc::tracker_response);
  EXPECT_EQ(r6.error().message, "peers6: compact length 12 is not a multiple of 18 (byte 9)");
  auto wrong_type = parse_announce_response("d5:peersi3ee");
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_EQ(wrong_type.error().code, errc::tracker_response);
}

TEST(tracker, interval_parsing) {
  auto missing = parse_announce_response("d5:peers0:e");
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_EQ(missing->interval, 1800u);
  EXPECT_EQ(missing->min_interval, 0u);
  EXPECT_TRUE(missing->peers.empty());

  auto huge = parse_announce_response("d8:completei-4e8:intervali99999999999ee");
  ASSERT_TRUE(huge.ok()) << huge.error().message;
  EXPECT_EQ(huge->interval, 4294967295u);
  EXPECT_EQ(huge->complete, 0u);

  auto negative = parse_announce_response("d8:intervali-1ee");
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.error().code, errc::tracker_response);
  EXPECT_EQ(negative.error().message, "interval must be a non-negative integer (byte 11)");

  auto text = parse_announce_response("d12:min interval2:60e");
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.error().message, "min interval must be a non-negative integer (byte 16)");
}

TEST(tracker, malformed_bodies) {
  auto r = parse_announce_response("d8:intervali10e");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::bencode_syntax);
  EXPECT_NE(r.error().message.find("at byte 15"), std::string::npos) << r.error().message;
  auto html = parse_announce_response("<html>");
  ASSERT_FALSE(html.ok());
  EXPECT_NE(html.error().message.find("at byte 0"), std::string::npos) << html.error().message;
  auto list = parse_announce_response("le");
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.error().code, errc::tracker_response);
  // Unsorted keys are common from real trackers and accepted.
  auto unsorted = parse_announce_response("d8:intervali5e5:peers0:8:completei2ee");
  ASSERT_TRUE(unsorted.ok()) << unsorted.error().message;
  EXPECT_EQ(unsorted->complete, 2u);
  auto too_big = parse_announce_response(std::string((4u << 20) + 1, 'x'));
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.error().code, errc::tracker_response);
}

// -- scrape (BEP 48) ------------------------------------------------------------------------

TEST(tracker, scrape_url_replaces_announce) {
  auto plain = build_scrape_url("http://t.example:6969/announce", known_hash);
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  EXPECT_EQ(*plain, std::string("http://t.example:6969/scrape?info_hash=") + known_escaped);
  auto php = build_scrape_url("https://t.example/x/announce.php?passkey=ab", known_hash);
  ASSERT_TRUE(php.ok()) << php.error().message;
  EXPECT_EQ(*php,
            std::string("https://t.example/x/scrape.php?passkey=ab&info_hash=") + known_escaped);
  auto trailing = build_scrape_url("http://t.example/announce?", known_hash);
  ASSERT_TRUE(trailing.ok());
  EXPECT_EQ(*trailing, std::string("http://t.example/scrape?info_hash=") + known_escaped);
}

TEST(tracker, scrape_url_refuses_other_paths) {
  auto other = build_scrape_url("http://t.example/a/x?y=announce", known_hash);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, errc::invalid_argument);
  EXPECT_EQ(other.error().message,
            "cannot scrape: its last path segment \"x\" does not begin with \"announce\" "
            "(BEP 48)");
  // "announce" earlier in the path does not count: only the last segment.
  EXPECT_FALSE(build_scrape_url("http://t.example/announce/tracker", known_hash).ok());
  auto no_path = build_scrape_url("http://t.example", known_hash);
  ASSERT_FALSE(no_path.ok());
  EXPECT_NE(no_path.error().message.find("it has no path"), std::string::npos);
  EXPECT_FALSE(build_scrape_url("announce", known_hash).ok());
}

std::string scrape_body(std::string_view counts) {
  return "d5:filesd20:" + std::string(bytes_of(known_hash)) + std::string(counts) + "ee";
}

TEST(tracker, scrape_reply_counts) {
  auto r = parse_scrape_response(scrape_body("d8:completei5e10:downloadedi7e10:incompletei3ee"),
                                 known_hash);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->complete, 5u);
  EXPECT_EQ(r->incomplete, 3u);
  EXPECT_EQ(r->downloaded, 7u);
  // Other torrents' entries are ignored; "downloaded" may be missing; counts are clamped.
  info_hash other = known_hash;
  other[0] ^= 1;
  std::string two = "d5:filesd20:" + std::string(bytes_of(other)) +
                    "d8:completei1e10:incompletei1ee20:" + std::string(bytes_of(known_hash)) +
                    "d8:completei99999999999e10:incompletei0eeee";
  auto r2 = parse_scrape_response(two, known_hash);
  ASSERT_TRUE(r2.ok()) << r2.error().message;
  EXPECT_EQ(r2->complete, 4294967295u);
  EXPECT_EQ(r2->incomplete, 0u);
  EXPECT_EQ(r2->downloaded, 0u);
}

TEST(tracker, scrape_reply_failures_are_precise) {
  auto failure = parse_scrape_response("d14:failure reason9:forbiddene", known_hash);
  ASSERT_FALSE(failure.ok());
  EXPECT_EQ(failure.error().code, errc::tracker_failure);
  EXPECT_EQ(failure.error().message, "forbidden");

  auto unknown = parse_scrape_response("d5:filesdee", known_hash);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, errc::tracker_response);
  EXPECT_EQ(unknown.error().message,
            "files has no entry for the info-hash (the tracker does not know the torrent) "
            "(byte 8)");

  auto no_files = parse_scrape_response("d8:intervali5ee", known_hash);
  ASSERT_FALSE(no_files.ok());
  EXPECT_EQ(no_files.error().message, "scrape reply has no \"files\" dictionary (byte 0)");
  auto files_list = parse_scrape_response("d5:fileslee", known_hash);
  ASSERT_FALSE(files_list.ok());
  EXPECT_EQ(files_list.error().message, "files must be a dictionary (byte 8)");

  auto entry_int = parse_scrape_response(scrape_body("i3e"), known_hash);
  ASSERT_FALSE(entry_int.ok());
  EXPECT_EQ(entry_int.error().message,
            "the info-hash's entry in files must be a dictionary (byte 32)");
  auto missing = parse_scrape_response(scrape_body("d8:completei1ee"), known_hash);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "the info-hash's entry has no \"incomplete\" (byte 32)");
  auto negative = parse_scrape_response(scrape_body("d8:completei-1e10:incompletei0ee"),
                                        known_hash);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.error().message, "complete must be a non-negative integer (byte 43)");
  auto text = parse_scrape_response(scrape_body("d8:completei1e10:incomplete1:xe"), known_hash);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.error().message, "incomplete must be a non-negative integer (byte 59)");
}

TEST(tracker, scrape_reply_hostile_bodies) {
  auto html = parse_scrape_response("<html>", known_hash);
  ASSERT_FALSE(html.ok());
  EXPECT_NE(html.error().message.find("at byte 0"), std::string::npos) << html.error().message;
  auto cut = parse_scrape_response(scrape_body("d8:completei1e").substr(0, 40), known_hash);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().code, errc::bencode_syntax);
  auto list = parse_scrape_response("le", known_hash);
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.error().message, "scrape reply must be a dictionary (byte 0)");
  // Deep nesting and oversized bodies are refused by the limits, not by exhausting the stack.
  auto deep = parse_scrape_response(std::string(5000, 'l') + std::string(5000, 'e'), known_hash);
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.error().code, errc::bencode_limit);
  auto huge = parse_scrape_response(std::string((1u << 20) + 1, 'x'), known_hash);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code, errc::tracker_response);
  EXPECT_NE(huge.error().message.find("exceeds limit of 1048576"), std::string::npos);
}

} // namespace
} // namespace actorrent::tracker
