#include "protocol/extension.hpp"

#include <gtest/gtest.h>

#include <string>

namespace actorrent::ext {
namespace {

template <std::size_t N>
std::string bytes(const char (&literal)[N]) { // keeps embedded NULs
  return std::string(literal, N - 1);
}

std::string error_of(std::string_view payload, const parse_limits& lim = {}) {
  auto r = parse_handshake(payload, lim);
  if (r.ok())
    return "(parsed)";
  EXPECT_EQ(r.error().code, errc::wire_protocol);
  return r.error().message;
}

TEST(extension, encodes_ours_canonically) {
  handshake h;
  h.client = "actorrent/0.1";
  h.reqq = 2000;
  h.listen_port = 6881;
  h.yourip = std::string("\x7f\x00\x00\x01", 4);
  EXPECT_EQ(encode_handshake(h),
            bytes("d1:mde1:pi6881e4:reqqi2000e1:v13:actorrent/0.16:yourip4:\x7f\x00\x00\x01"
                  "e"));
}

TEST(extension, leaves_out_what_is_not_known) {
  handshake h;
  EXPECT_EQ(encode_handshake(h), "d1:mdee");
  h.extensions = {{"ut_metadata", 2}, {"ut_pex", 0}};
  h.metadata_size = 31337;
  EXPECT_EQ(encode_handshake(h), "d1:md11:ut_metadatai2e6:ut_pexi0ee13:metadata_sizei31337ee");
}

TEST(extension, round_trips) {
  handshake h;
  h.extensions = {{"ut_metadata", 3}, {"ut_pex", 1}};
  h.client = "actorrent/0.1";
  h.reqq = 2000;
  h.listen_port = 65535;
  h.yourip = std::string(16, '\x01');
  h.metadata_size = 12345;
  auto r = parse_handshake(encode_handshake(h));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->extensions, h.extensions);
  EXPECT_EQ(r->client, h.client);
  EXPECT_EQ(r->reqq, 2000u);
  EXPECT_EQ(r->listen_port, 65535);
  EXPECT_EQ(r->yourip, h.yourip);
  EXPECT_EQ(r->metadata_size, 12345u);
  EXPECT_EQ(r->id_of("ut_pex"), 1);
  EXPECT_EQ(r->id_of("lt_donthave"), 0);
}

TEST(extension, parses_what_libtorrent_sends_and_ignores_the_rest) {
  // libtorrent 2.0's handshake, keys it adds that we do not use included.
  auto lt = bytes("d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e"
                  "12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei4242e"
                  "4:reqqi500e11:upload_onlyi1e1:v18:libtorrent/2.0.8.06:yourip4:\x7f\x00\x00\x01"
                  "e");
  auto r = parse_handshake(lt);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->reqq, 500u);
  EXPECT_EQ(r->client, "libtorrent/2.0.8.0");
  EXPECT_EQ(r->extensions.size(), 6u);
  EXPECT_EQ(r->id_of("ut_metadata"), 2);
  EXPECT_EQ(r->metadata_size, 4242u);
  EXPECT_EQ(r->listen_port, 0); // not given
}

TEST(extension, accepts_unsorted_keys_but_not_duplicates) {
  auto r = parse_handshake("d4:reqqi250e1:md6:ut_pexi1eee");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->reqq, 250u);
  EXPECT_NE(error_of("d4:reqqi1e4:reqqi2ee").find("duplicate dictionary key \"reqq\""),
            std::string::npos);
}

TEST(extension, caps_a_huge_reqq) {
  auto r = parse_handshake("d4:reqqi99999999999ee");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->reqq, 0xffffffffu);
}

TEST(extension, names_the_bad_key_and_where) {
  EXPECT_EQ(error_of("d4:reqq3:abce"),
            "extended handshake: reqq is a string, expected an integer (at byte 7)");
  EXPECT_EQ(error_of("d4:reqqi0ee"), "extended handshake: reqq 0 out of range 1.. (at byte 7)");
  EXPECT_EQ(error_of("d4:reqqi-5ee"), "extended handshake: reqq -5 out of range 1.. (at byte 7)");
  EXPECT_EQ(error_of("d1:pi65536ee"),
            "extended handshake: p 65536 out of range 0..65535 (at byte 4)");
  EXPECT_EQ(error_of("d1:mi1ee"), "extended handshake: m is an integer, expected a dictionary "
                                  "(at byte 4)");
  EXPECT_EQ(error_of("d1:md6:ut_pexi256eee"),
            "extended handshake: m.ut_pex 256 out of range 0..255 (at byte 13)");
  EXPECT_EQ(error_of("d1:md6:ut_pex1:xee"),
            "extended handshake: m.ut_pex is a string, expected an integer (at byte 13)");
  EXPECT_EQ(error_of("d1:vi1ee"),
            "extended handshake: v is an integer, expected a string (at byte 4)");
  EXPECT_EQ(error_of("d6:yourip3:abce"),
            "extended handshake: yourip is 3 bytes, expected 4 (IPv4) or 16 (IPv6) (at byte 9)");
  EXPECT_EQ(error_of("d13:metadata_sizei-1ee"),
            "extended handshake: metadata_size -1 out of range 0..67108864 (at byte 17)");
  EXPECT_EQ(error_of("li1ee"), "extended handshake: payload is a list, expected a dictionary");
}

TEST(extension, bad_bencoding_is_reported_with_its_offset) {
  auto e = error_of("d4:reqqi5e");
  EXPECT_EQ(e.rfind("extended handshake: ", 0), 0u) << e;
  EXPECT_NE(e.find("at byte"), std::string::npos) << e;
  EXPECT_EQ(error_of("").rfind("extended handshake: ", 0), 0u);
  EXPECT_EQ(error_of("d1:md6:ut_pexi1ee").rfind("extended handshake: ", 0), 0u);
  EXPECT_EQ(error_of("d4:reqqi5eex").rfind("extended handshake: ", 0), 0u); // trailing bytes
}

TEST(extension, enforces_its_limits) {
  parse_limits lim;
  lim.max_size = 16;
  EXPECT_EQ(error_of("d1:v20:abcdefghijabcdefghije", lim),
            "extended handshake: 28 bytes, limit 16");
  lim = {};
  lim.max_extensions = 2;
  EXPECT_EQ(error_of("d1:md1:ai1e1:bi2e1:ci3eee", lim),
            "extended handshake: m lists 3 extensions, limit 2 (at byte 4)");
  std::string deep = "d1:x" + std::string(100, 'l') + std::string(100, 'e') + "e";
  EXPECT_EQ(error_of(deep).rfind("extended handshake: ", 0), 0u);
}

} // namespace
} // namespace actorrent::ext
