#include "protocol/magnet.hpp"

#include <gtest/gtest.h>

#include <string>

namespace actorrent {
namespace {

const char* hex = "000102030405060708090a0b0c0d0e0f10111213";

std::string error_of(std::string_view link) {
  auto r = parse_magnet(link);
  if (r.ok())
    return "(parsed)";
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  return r.error().message;
}

TEST(magnet, parses_hex_name_trackers_and_peers) {
  auto r = parse_magnet(std::string("magnet:?xt=urn:btih:") + hex +
                        "&dn=My+File%20%C3%A9&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce"
                        "&tr=udp://t.example:80&tr=udp://t.example:80&x.pe=127.0.0.1:7001"
                        "&x.pe=%5B%3A%3A1%5D:7002&xl=123");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(to_hex(r->hash), hex);
  EXPECT_EQ(r->name, "My File \xc3\xa9");
  ASSERT_EQ(r->trackers.size(), 2u); // the duplicate is dropped
  EXPECT_EQ(r->trackers[0], "http://127.0.0.1:6969/announce");
  EXPECT_EQ(r->trackers[1], "udp://t.example:80");
  ASSERT_EQ(r->peers.size(), 2u);
  EXPECT_EQ(r->peers[0].host, "127.0.0.1");
  EXPECT_EQ(r->peers[0].port, 7001);
  EXPECT_EQ(r->peers[1].host, "::1");
  EXPECT_EQ(r->peers[1].port, 7002);
}

TEST(magnet, parses_base32_and_upper_case_hex) {
  auto b32 = parse_magnet("magnet:?xt=urn:btih:AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT");
  ASSERT_TRUE(b32.ok()) << b32.error().message;
  EXPECT_EQ(to_hex(b32->hash), hex);
  auto lower32 = parse_magnet("MAGNET:?xt=urn:btih:aaaqeayeaudaocajbifqydiob4ibceqt");
  ASSERT_TRUE(lower32.ok());
  EXPECT_EQ(to_hex(lower32->hash), hex);
  auto upper = parse_magnet("magnet:?XT=urn:btih:000102030405060708090A0B0C0D0E0F10111213");
  // Keys are case-sensitive (BEP 9): XT is an unknown key, so there is no info-hash.
  EXPECT_FALSE(upper.ok());
  auto up_hex = parse_magnet("magnet:?xt=URN:BTIH:000102030405060708090A0B0C0D0E0F10111213");
  ASSERT_TRUE(up_hex.ok());
  EXPECT_EQ(to_hex(up_hex->hash), hex);
}

TEST(magnet, numbered_keys_and_other_namespaces) {
  auto r = parse_magnet(std::string("magnet:?xt.1=urn:btmh:1220abcd&xt.2=urn:btih:") + hex +
                        "&tr.1=http://a/announce&tr.2=http://b/announce");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(to_hex(r->hash), hex);
  EXPECT_EQ(r->trackers.size(), 2u);
}

TEST(magnet, precise_errors) {
  EXPECT_EQ(error_of("http://example.com"), "magnet link: does not start with \"magnet:\"");
  EXPECT_EQ(error_of("magnet:xt=urn:btih:abc"), "magnet link: expected '?' after \"magnet:\"");
  EXPECT_EQ(error_of("magnet:?dn=x"), "magnet link: no xt=urn:btih:<info-hash> parameter");
  EXPECT_EQ(error_of("magnet:?xt=urn:btih:000102030405060708090a0b0c0d0e0f1011121"),
            "magnet link: xt: info-hash of 39 characters, expected 40 hex or 32 base32 "
            "(parameter 1)");
  EXPECT_EQ(error_of("magnet:?dn=a&xt=urn:btih:000102030405060708090a0b0c0d0e0f1011121g"),
            "magnet link: xt: 'g' is not a hex digit at character 40 of the info-hash "
            "(parameter 2)");
  EXPECT_EQ(error_of("magnet:?xt=urn:btih:AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQ1"),
            "magnet link: xt: '1' is not a base32 digit at character 32 of the info-hash "
            "(parameter 1)");
  EXPECT_EQ(error_of(std::string("magnet:?xt=urn:btih:") + hex + "&x.pe=127.0.0.1"),
            "magnet link: x.pe: \"127.0.0.1\" is not HOST:PORT (parameter 2)");
  EXPECT_EQ(error_of(std::string("magnet:?xt=urn:btih:") + hex + "&x.pe=h:70000"),
            "magnet link: x.pe: port 70000 out of range 1..65535 (parameter 2)");
  EXPECT_EQ(error_of(std::string("magnet:?xt=urn:btih:") + hex + "&dn=a%2"),
            "magnet link: dn: bad percent-escape at character 2 (parameter 2)");
  EXPECT_EQ(error_of(std::string("magnet:?xt=urn:btih:") + hex + "&xt=urn:btih:" + hex),
            "magnet link: xt: more than one urn:btih info-hash (parameter 2)");
  EXPECT_EQ(error_of(std::string("magnet:?xt=urn:btih:") + hex + "&bogus"),
            "magnet link: \"bogus\" has no '=' (parameter 2)");
  EXPECT_EQ(error_of(std::string("magnet:?xt=urn:btih:") + hex + "&tr="),
            "magnet link: tr: empty tracker URL (parameter 2)");
}

TEST(magnet, limits_bound_the_work) {
  magnet_limits lim;
  lim.max_peers = 2;
  std::string link = std::string("magnet:?xt=urn:btih:") + hex;
  for (int i = 0; i < 3; ++i)
    link += "&x.pe=127.0.0.1:" + std::to_string(7000 + i);
  auto r = parse_magnet(link, lim);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "magnet link: more than 2 peers (x.pe) (parameter 4)");
  EXPECT_FALSE(parse_magnet(std::string(70 * 1024, 'm')).ok());
}

TEST(magnet, round_trips_through_its_canonical_form) {
  magnet_link m;
  m.hash[0] = 0xab;
  m.name = "a b&c";
  m.trackers = {"http://127.0.0.1:6969/announce"};
  m.peers = {{"127.0.0.1", 7001}, {"::1", 7002}};
  auto text = to_magnet_uri(m);
  auto r = parse_magnet(text);
  ASSERT_TRUE(r.ok()) << r.error().message << " in " << text;
  EXPECT_EQ(r->hash, m.hash);
  EXPECT_EQ(r->name, m.name);
  EXPECT_EQ(r->trackers, m.trackers);
  ASSERT_EQ(r->peers.size(), 2u);
  EXPECT_EQ(r->peers[1].host, "::1");
  EXPECT_EQ(r->peers[1].port, 7002);
}

} // namespace
} // namespace actorrent
