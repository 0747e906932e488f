#include "protocol/pex.hpp"

#include <gtest/gtest.h>

#include <string>

namespace actorrent::pex {
namespace {

template <std::size_t N>
std::string bytes(const char (&literal)[N]) { // keeps embedded NULs
  return std::string(literal, N - 1);
}

std::string error_of(std::string_view payload, const parse_limits& lim = {}) {
  auto r = parse(payload, lim);
  if (r.ok())
    return "(parsed)";
  EXPECT_EQ(r.error().code, errc::wire_protocol);
  return r.error().message;
}

TEST(pex, encodes_ipv4_and_ipv6_with_flags) {
  message m;
  m.added = {{"127.0.0.1", 6881, flag_seed}, {"::1", 6882, 0}, {"not-an-ip", 1, 0}};
  m.dropped = {{"10.0.0.2", 80, 0}};
  EXPECT_EQ(encode(m), bytes("d5:added6:\x7f\x00\x00\x01\x1a\xe1"
                             "7:added.f1:\x02"
                             "6:added618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                             "\x00\x01\x1a\xe2"
                             "8:added6.f1:\x00"
                             "7:dropped6:\x0a\x00\x00\x02\x00\x50"
                             "e"));
  EXPECT_EQ(encode(message{}), "d5:added0:7:added.f0:7:dropped0:e");
}

TEST(pex, round_trips) {
  message m;
  m.added = {{"127.0.0.1", 6881, flag_seed | flag_reachable}, {"2001:db8::5", 443, flag_utp}};
  m.dropped = {{"192.168.1.1", 1, 0}, {"::1", 2, 0}};
  auto r = parse(encode(m));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->added.size(), 2u);
  EXPECT_EQ(r->added[0], m.added[0]);
  EXPECT_EQ(r->added[0].flags, flag_seed | flag_reachable);
  EXPECT_EQ(r->added[1], m.added[1]);
  EXPECT_EQ(r->added[1].flags, flag_utp);
  EXPECT_EQ(r->dropped, m.dropped);
}

TEST(pex, skips_port_zero_and_tolerates_missing_flags) {
  auto r = parse(bytes("d5:added12:\x7f\x00\x00\x01\x00\x00\x7f\x00\x00\x02\x00\x01" "e"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->added.size(), 1u);
  EXPECT_EQ(r->added[0].host, "127.0.0.2");
  EXPECT_EQ(r->added[0].port, 1);
  EXPECT_EQ(r->added[0].flags, 0);
}

TEST(pex, precise_errors_and_limits) {
  EXPECT_EQ(error_of("d5:added7:abcdefge"), "ut_pex: added length 7 is not a multiple of 6");
  EXPECT_EQ(error_of("d6:added6i3ee"), "ut_pex: added6 is not a string");
  EXPECT_EQ(error_of("d5:added6:abcdef7:added.fi1ee"), "ut_pex: added.f is not a string");
  EXPECT_EQ(error_of("li1ee"), "ut_pex: payload is not a dictionary");
  EXPECT_NE(error_of("d5:added"), "(parsed)");
  parse_limits lim;
  lim.max_added = 2;
  message m;
  for (int i = 1; i <= 3; ++i)
    m.added.push_back({"10.0.0." + std::to_string(i), 80, 0});
  EXPECT_EQ(error_of(encode(m), lim), "ut_pex: 3 peers in added, limit 2");
  EXPECT_EQ(error_of(std::string(9000, 'x')), "ut_pex: 9000 bytes, limit 8192");
}

} // namespace
} // namespace actorrent::pex
