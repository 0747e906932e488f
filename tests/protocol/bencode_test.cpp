#include "protocol/bencode.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace actorrent::bencode {
namespace {

// Decoding must fail with `code` and a message that names the byte offset exactly.
void expect_error(std::string_view input, errc code, std::size_t at_byte, const limits &lim = {},
                  bool allow_nc = false) {
  auto r = decode(input, lim, allow_nc);
  ASSERT_FALSE(r.ok()) << "accepted: " << input;
  EXPECT_EQ(r.error().code, code) << r.error().message;
  std::string needle = "at byte " + std::to_string(at_byte);
  const std::string &msg = r.error().message;
  // The offset must be the whole number, not a prefix of a longer one.
  auto pos = msg.find(needle);
  ASSERT_NE(pos, std::string::npos) << "message: " << msg << " expected " << needle;
  auto after = pos + needle.size();
  EXPECT_TRUE(after == msg.size() || msg[after] < '0' || msg[after] > '9') << msg;
}

TEST(bencode, decodes_integers) {
  auto r = decode("i42e");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->is_int());
  EXPECT_EQ(r->as_int(), 42);
  EXPECT_EQ(decode("i0e")->as_int(), 0);
  EXPECT_EQ(decode("i-17e")->as_int(), -17);
  EXPECT_EQ(decode("i9223372036854775807e")->as_int(), INT64_MAX);
  EXPECT_EQ(decode("i-9223372036854775808e")->as_int(), INT64_MIN);
}

TEST(bencode, decodes_strings_with_binary_bytes) {
  auto r = decode(std::string_view("5:a\0b\xffz", 7));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->as_string(), std::string("a\0b\xffz", 5));
  EXPECT_EQ(decode("0:")->as_string(), "");
}

TEST(bencode, decodes_nested_structures) {
  auto r = decode("d1:ali1ei2ee1:bd1:c3:xyzee");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(r->is_dict());
  const value *a = r->find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->as_list().size(), 2u);
  EXPECT_EQ(a->as_list()[1].as_int(), 2);
  const value *b = r->find("b");
  ASSERT_NE(b, nullptr);
  ASSERT_NE(b->find("c"), nullptr);
  EXPECT_EQ(b->find("c")->as_string(), "xyz");
  EXPECT_EQ(r->find("zz"), nullptr);
  EXPECT_EQ(a->find("x"), nullptr); // not a dict
}

TEST(bencode, round_trips_canonical_input) {
  for (std::string_view s : {"i0e", "i-5e", "0:", "3:abc", "le", "de", "lli1eee",
                             "d3:bar4:spam3:fooi42ee", "d1:ad1:bl1:ci-3eeee", "l0:0:i1ee"}) {
    auto r = decode(s);
    ASSERT_TRUE(r.ok()) << s << ": " << r.error().message;
    EXPECT_EQ(encode(*r), s);
  }
}

TEST(bencode, encoder_sorts_keys_bytewise) {
  value d = value::make_dict();
  d.set("b", value::make_int(2));
  d.set("\xff", value::make_int(3)); // must sort after ASCII (unsigned comparison)
  d.set("a", value::make_string("x"));
  d.set("b", value::make_int(7)); // replaces
  EXPECT_EQ(encode(d), "d1:a1:x1:bi7e1:\xffi3ee");
  // Unsorted entries pushed directly are still encoded canonically.
  value raw = value::make_dict({{"z", value::make_int(1)}, {"m", value::make_list()}});
  EXPECT_EQ(encode(raw), "d1:mle1:zi1ee");
  value l = value::make_list({value::make_int(-1), value::make_string("")});
  EXPECT_EQ(encode(l), "li-1e0:e");
}

TEST(bencode, spans_cover_each_value) {
  //                    0123456789012345678901
  std::string_view s = "d1:ali1e2:xye1:bi-7ee";
  auto r = decode(s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->span(), std::make_pair(std::size_t{0}, s.size()));
  const value *a = r->find("a");
  EXPECT_EQ(a->span(), std::make_pair(std::size_t{4}, std::size_t{13}));
  EXPECT_EQ(a->as_list()[0].span(), std::make_pair(std::size_t{5}, std::size_t{8}));
  EXPECT_EQ(a->as_list()[1].span(), std::make_pair(std::size_t{8}, std::size_t{12}));
  const value *b = r->find("b");
  EXPECT_EQ(b->span(), std::make_pair(std::size_t{16}, std::size_t{20}));
  EXPECT_EQ(s.substr(b->span().first, b->span().second - b->span().first), "i-7e");
}

TEST(bencode, rejects_malformed_integers) {
  expect_error("ie", errc::bencode_syntax, 0);
  expect_error("i-e", errc::bencode_syntax, 0);
  expect_error("i03e", errc::bencode_noncanonical, 1);
  expect_error("i-03e", errc::bencode_noncanonical, 2);
  expect_error("i-0e", errc::bencode_noncanonical, 0);
  expect_error("i12x4e", errc::bencode_syntax, 3);
  expect_error("i1-2e", errc::bencode_syntax, 2);
  expect_error("i9223372036854775808e", errc::bencode_limit, 0);
  expect_error("i-9223372036854775809e", errc::bencode_limit, 0);
  expect_error("li1ei99999999999999999999ee", errc::bencode_limit, 4);
}

TEST(bencode, noncanonical_numbers_allowed_when_asked) {
  auto r = decode("i03e", {}, true);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->as_int(), 3);
  auto z = decode("i-0e", {}, true);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->as_int(), 0);
  auto s = decode("03:abc", {}, true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->as_string(), "abc");
  // Still malformed even when non-canonical input is allowed.
  expect_error("i-e", errc::bencode_syntax, 0, {}, true);
}

TEST(bencode, rejects_malformed_strings) {
  expect_error("03:abc", errc::bencode_noncanonical, 0);
  expect_error("l00:e", errc::bencode_noncanonical, 1);
  expect_error("5:abc", errc::bencode_syntax, 0);
  expect_error("li1e5:abce", errc::bencode_syntax, 4);
  expect_error("3abc", errc::bencode_syntax, 1);
  expect_error("3", errc::bencode_syntax, 1);
  limits small;
  small.max_string = 4;
  expect_error("5:abcde", errc::bencode_limit, 0, small);
  EXPECT_TRUE(decode("4:abcd", small).ok());
}

TEST(bencode, huge_length_prefix_fails_without_allocating) {
  // Far beyond max_string: must be refused from the prefix alone.
  expect_error("99999999999:", errc::bencode_limit, 0);
  expect_error("l99999999999999999999999999999:xe", errc::bencode_limit, 1);
  // Under max_string but past the end of input: must not allocate either.
  limits lim;
  lim.max_string = std::size_t{1} << 62;
  expect_error("99999999999:abc", errc::bencode_syntax, 0, lim);
  expect_error("999999999999999999999999:abc", errc::bencode_limit, 0, lim);
}

TEST(bencode, rejects_bad_dictionaries) {
  expect_error("d1:bi1e1:ai2ee", errc::bencode_noncanonical, 7);
  expect_error("d1:ai1e1:ai2ee", errc::bencode_noncanonical, 7);
  expect_error("di1ei2ee", errc::bencode_syntax, 1);
  expect_error("dle1:ae", errc::bencode_syntax, 1);
  expect_error("d1:ae", errc::bencode_syntax, 4);
  expect_error("d1:a", errc::bencode_syntax, 4);
  expect_error("d1:ai1e", errc::bencode_syntax, 7);
}

TEST(bencode, unsorted_keys_allowed_but_duplicates_never) {
  auto r = decode("d1:bi1e1:ai2ee", {}, true);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->find("a")->as_int(), 2);
  EXPECT_EQ(r->find("b")->as_int(), 1);
  // Adjacent duplicate.
  expect_error("d1:ai1e1:ai2ee", errc::bencode_noncanonical, 7, {}, true);
  // Non-adjacent duplicate once order is already broken: c, a, d, a.
  expect_error("d1:ci1e1:ai2e1:di3e1:ai4ee", errc::bencode_noncanonical, 19, {}, true);
  // Duplicate of a key seen before the disorder started: a, c, b, a.
  expect_error("d1:ai1e1:ci2e1:bi3e1:ai4ee", errc::bencode_noncanonical, 19, {}, true);
}

TEST(bencode, rejects_trailing_and_truncated_input) {
  expect_error("i1ei2e", errc::bencode_syntax, 3);
  expect_error("dex", errc::bencode_syntax, 2);
  expect_error("", errc::bencode_syntax, 0);
  expect_error("l", errc::bencode_syntax, 1);
  expect_error("li1e", errc::bencode_syntax, 4);
  expect_error("i12", errc::bencode_syntax, 3);
  expect_error("x", errc::bencode_syntax, 0);
  expect_error("le e", errc::bencode_syntax, 2);
}

TEST(bencode, decode_prefix_reports_consumed) {
  std::size_t consumed = 0;
  auto r = decode_prefix("d1:ai1eeRAWDATA", consumed);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(consumed, 8u);
  EXPECT_EQ(r->find("a")->as_int(), 1);
  auto bad = decode_prefix("d1:ai1e", consumed);
  EXPECT_FALSE(bad.ok());
}

TEST(bencode, depth_limit) {
  limits lim;
  lim.max_depth = 8;
  EXPECT_TRUE(decode(std::string(8, 'l') + std::string(8, 'e'), lim).ok());
  expect_error(std::string(9, 'l') + std::string(9, 'e'), errc::bencode_limit, 8, lim);
  // Default limit with a deep, unterminated attack string: fails at the limit, not by stack.
  std::string deep(1'000'000, 'l');
  expect_error(deep, errc::bencode_limit, 64);
  limits wide;
  wide.max_depth = 5000;
  std::string ok(5000, 'l');
  ok += std::string(5000, 'e');
  EXPECT_TRUE(decode(ok, wide).ok());
}

TEST(bencode, item_and_total_limits) {
  limits lim;
  lim.max_items = 4;
  EXPECT_TRUE(decode("li1ei2ei3ee", lim).ok()); // list + 3 ints
  expect_error("li1ei2ei3ei4ee", errc::bencode_limit, 10, lim);
  limits total;
  total.max_total = 5;
  EXPECT_TRUE(decode("3:abc", total).ok());
  expect_error("4:abcd", errc::bencode_limit, 5, total);
  std::size_t consumed = 0;
  // decode_prefix may be followed by arbitrary data, but the value itself must fit the limit.
  EXPECT_TRUE(decode_prefix("i1eXXXXXXXXXX", consumed, total).ok());
  auto r = decode_prefix("4:abcdXXXX", consumed, total);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::bencode_limit);
  EXPECT_NE(r.error().message.find("at byte 5"), std::string::npos) << r.error().message;
}

} // namespace
} // namespace actorrent::bencode
