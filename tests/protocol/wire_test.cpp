#include "protocol/wire.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace actorrent::wire {
namespace {

// A message with its payload copied, so it can be kept after the input buffer changes.
struct owned {
  msg_id id;
  std::uint32_t index, begin, length;
  std::uint16_t port;
  std::uint8_t ext_id;
  std::string payload;
  bool operator==(const owned &o) const {
    return id == o.id && index == o.index && begin == o.begin && length == o.length &&
           port == o.port && ext_id == o.ext_id && payload == o.payload;
  }
};

owned own(const message &m) {
  return {m.id, m.index, m.begin, m.length, m.port, m.ext_id, std::string(m.payload)};
}

std::vector<owned> parse_all(std::string_view bytes, std::size_t *consumed = nullptr) {
  stream_parser p;
  std::vector<owned> out;
  auto r = p.parse(bytes, [&](const message &m) {
    out.push_back(own(m));
    return true;
  });
  EXPECT_TRUE(r.ok()) << r.error().message;
  if (consumed != nullptr && r.ok())
    *consumed = *r;
  return out;
}

std::string parse_error(std::string_view bytes, stream_parser p = stream_parser{}) {
  auto r = p.parse(bytes, [](const message &) { return true; });
  if (r.ok())
    return "no error";
  EXPECT_EQ(r.error().code, errc::wire_protocol);
  return r.error().message;
}

TEST(wire, handshake_round_trip_and_reserved_bits) {
  handshake h;
  for (std::size_t i = 0; i < 20; ++i) {
    h.hash[i] = static_cast<std::uint8_t>(i * 13);
    h.id[i] = static_cast<std::uint8_t>(255 - i);
  }
  EXPECT_FALSE(h.supports_fast());
  EXPECT_FALSE(h.supports_extended());
  h.set_fast(true);
  h.set_extended(true);
  EXPECT_EQ(h.reserved[7], 0x04);
  EXPECT_EQ(h.reserved[5], 0x10);
  auto bytes = encode_handshake(h);
  std::string_view v(bytes.data(), bytes.size());
  EXPECT_EQ(v[0], '\x13');
  EXPECT_EQ(v.substr(1, 19), "BitTorrent protocol");
  EXPECT_EQ(static_cast<unsigned char>(v[20 + 5]), 0x10);
  EXPECT_EQ(static_cast<unsigned char>(v[20 + 7]), 0x04);
  EXPECT_EQ(static_cast<unsigned char>(v[28]), 0);   // hash[0]
  EXPECT_EQ(static_cast<unsigned char>(v[29]), 13);  // hash[1]
  EXPECT_EQ(static_cast<unsigned char>(v[48]), 255); // id[0]

  auto parsed = parse_handshake(v);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->hash, h.hash);
  EXPECT_EQ(parsed->id, h.id);
  EXPECT_EQ(parsed->reserved, h.reserved);
  EXPECT_TRUE(parsed->supports_fast());
  EXPECT_TRUE(parsed->supports_extended());
  EXPECT_FALSE(parsed->supports_dht());

  h.set_fast(false);
  EXPECT_FALSE(h.supports_fast());
  EXPECT_TRUE(h.supports_extended());
  h.reserved[7] |= 0x01;
  h.set_extended(false);
  EXPECT_FALSE(h.supports_extended());
  EXPECT_TRUE(h.supports_dht()); // clearing one bit leaves the others
}

TEST(wire, looks_encrypted_tells_plain_from_mse_openings) {
  handshake h;
  auto bytes = encode_handshake(h);
  std::string plain(bytes.data(), bytes.size());
  EXPECT_FALSE(looks_encrypted(plain));
  EXPECT_FALSE(looks_encrypted(plain.substr(0, 1)));  // too short to tell: not yet
  EXPECT_FALSE(looks_encrypted(plain.substr(0, 20)));
  EXPECT_FALSE(looks_encrypted(""));
  std::string mse = plain;
  mse[0] = '\x8f'; // an MSE opening is a 96-byte DH key: random bytes
  EXPECT_TRUE(looks_encrypted(mse));
  std::string almost = plain;
  almost[19] = 'X'; // "BitTorrent protocoX"
  EXPECT_TRUE(looks_encrypted(almost));
  EXPECT_TRUE(looks_encrypted(almost.substr(0, 20)));
  EXPECT_FALSE(looks_encrypted(almost.substr(0, 19)));
}

TEST(wire, handshake_rejects_wrong_protocol_or_size) {
  handshake h;
  auto bytes = encode_handshake(h);
  std::string good(bytes.data(), bytes.size());
  EXPECT_FALSE(parse_handshake(good.substr(0, 67)).ok());
  std::string bad = good;
  bad[5] = 'x';
  auto r = parse_handshake(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::wire_protocol);
  EXPECT_NE(r.error().message.find("encrypted handshake not supported"), std::string::npos)
      << r.error().message;
  std::string bad_len = good;
  bad_len[0] = 18;
  EXPECT_FALSE(parse_handshake(bad_len).ok());
}

// Every message type, encoded and concatenated.
std::string all_messages() {
  std::string s;
  append_keep_alive(s);
  append_simple(s, msg_id::choke);
  append_simple(s, msg_id::unchoke);
  append_simple(s, msg_id::interested);
  append_simple(s, msg_id::not_interested);
  append_simple(s, msg_id::have_all);
  append_simple(s, msg_id::have_none);
  append_have(s, 0x01020304);
  append_index_message(s, msg_id::suggest, 7);
  append_index_message(s, msg_id::allowed_fast, 0xfffffffe);
  append_bitfield(s, std::string("\xff\x80", 2));
  append_bitfield(s, "");
  append_request(s, msg_id::request, 1, 16384, 16384);
  append_request(s, msg_id::cancel, 2, 0, 1);
  append_request(s, msg_id::reject, 3, 32768, 128 * 1024);
  std::string block("block-data\x00\x01", 12);
  append_piece_header(s, 9, 16384, static_cast<std::uint32_t>(block.size()));
  s += block;
  append_piece_header(s, 10, 0, 0);
  append_port(s, 6881);
  append_extended(s, 0, "d1:md6:ut_pexi1eee");
  append_extended(s, 3, "");
  return s;
}

std::vector<owned> expected_messages() {
  return {
      {msg_id::keep_alive, 0, 0, 0, 0, 0, ""},
      {msg_id::choke, 0, 0, 0, 0, 0, ""},
      {msg_id::unchoke, 0, 0, 0, 0, 0, ""},
      {msg_id::interested, 0, 0, 0, 0, 0, ""},
      {msg_id::not_interested, 0, 0, 0, 0, 0, ""},
      {msg_id::have_all, 0, 0, 0, 0, 0, ""},
      {msg_id::have_none, 0, 0, 0, 0, 0, ""},
      {msg_id::have, 0x01020304, 0, 0, 0, 0, ""},
      {msg_id::suggest, 7, 0, 0, 0, 0, ""},
      {msg_id::allowed_fast, 0xfffffffe, 0, 0, 0, 0, ""},
      {msg_id::bitfield, 0, 0, 0, 0, 0, std::string("\xff\x80", 2)},
      {msg_id::bitfield, 0, 0, 0, 0, 0, ""},
      {msg_id::request, 1, 16384, 16384, 0, 0, ""},
      {msg_id::cancel, 2, 0, 1, 0, 0, ""},
      {msg_id::reject, 3, 32768, 128 * 1024, 0, 0, ""},
      {msg_id::piece, 9, 16384, 12, 0, 0, std::string("block-data\x00\x01", 12)},
      {msg_id::piece, 10, 0, 0, 0, 0, ""},
      {msg_id::port, 0, 0, 0, 6881, 0, ""},
      {msg_id::extended, 0, 0, 0, 0, 0, "d1:md6:ut_pexi1eee"},
      {msg_id::extended, 0, 0, 0, 0, 3, ""},
  };
}

TEST(wire, encoders_write_big_endian_frames) {
  std::string s;
  append_have(s, 0x01020304);
  EXPECT_EQ(s, std::string("\x00\x00\x00\x05\x04\x01\x02\x03\x04", 9));
  s.clear();
  append_request(s, msg_id::request, 1, 0x4000, 0x4000);
  EXPECT_EQ(
      s, std::string("\x00\x00\x00\x0d\x06\x00\x00\x00\x01\x00\x00\x40\x00\x00\x00\x40\x00", 17));
  s.clear();
  append_piece_header(s, 2, 3, 0x4000);
  EXPECT_EQ(s, std::string("\x00\x00\x40\x09\x07\x00\x00\x00\x02\x00\x00\x00\x03", 13));
  s.clear();
  append_port(s, 0x1ae1);
  EXPECT_EQ(s, std::string("\x00\x00\x00\x03\x09\x1a\xe1", 7));
  s.clear();
  append_keep_alive(s);
  EXPECT_EQ(s, std::string(4, '\0'));
  s.clear();
  append_extended(s, 2, "xy");
  EXPECT_EQ(s, std::string("\x00\x00\x00\x04\x14\x02xy", 8));
}

TEST(wire, every_message_round_trips) {
  std::string s = all_messages();
  std::size_t consumed = 0;
  auto got = parse_all(s, &consumed);
  EXPECT_EQ(consumed, s.size());
  auto want = expected_messages();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(got[i] == want[i]) << "message " << i << " (" << to_string(want[i].id) << ")";
}

TEST(wire, payload_points_into_input) {
  std::string s;
  append_bitfield(s, "abc");
  stream_parser p;
  const char *payload = nullptr;
  auto r = p.parse(s, [&](const message &m) {
    payload = m.payload.data();
    return true;
  });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(payload, s.data() + 5);
}

// Feeds `s` in pieces of the given sizes, keeping the unconsumed tail like a socket reader.
std::vector<owned> parse_chunked(const std::string &s, const std::vector<std::size_t> &cuts) {
  stream_parser p;
  std::vector<owned> out;
  std::string buffer;
  std::size_t prev = 0;
  auto feed = [&](std::size_t end) {
    buffer.append(s, prev, end - prev);
    prev = end;
    auto r = p.parse(buffer, [&](const message &m) {
      out.push_back(own(m));
      return true;
    });
    EXPECT_TRUE(r.ok()) << r.error().message;
    if (r.ok())
      buffer.erase(0, *r);
  };
  for (std::size_t c : cuts)
    feed(c);
  feed(s.size());
  EXPECT_TRUE(buffer.empty());
  return out;
}

TEST(wire, byte_by_byte_stream_gives_identical_messages) {
  std::string s = all_messages();
  auto want = parse_all(s);
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < s.size(); ++i)
    every.push_back(i);
  auto got = parse_chunked(s, every);
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(got[i] == want[i]) << "message " << i;
}

TEST(wire, stream_split_at_every_position) {
  std::string s = all_messages();
  auto want = parse_all(s);
  for (std::size_t cut = 0; cut <= s.size(); ++cut) {
    auto got = parse_chunked(s, {cut});
    ASSERT_EQ(got.size(), want.size()) << "cut " << cut;
    for (std::size_t i = 0; i < want.size(); ++i)
      ASSERT_TRUE(got[i] == want[i]) << "cut " << cut << " message " << i;
  }
}

TEST(wire, partial_frame_is_not_consumed) {
  std::string s;
  append_have(s, 5);
  std::size_t consumed = 99;
  auto got = parse_all(std::string_view(s).substr(0, 8), &consumed);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(consumed, 0u);
  EXPECT_EQ(stream_parser::frame_size(s), 9u);
  EXPECT_EQ(stream_parser::frame_size(std::string_view(s).substr(0, 3)), 0u);
}

TEST(wire, over_limit_length_is_an_error_before_the_body_arrives) {
  std::string s("\x00\x00\x10\x00", 4); // 4096, body absent
  EXPECT_EQ(parse_error(s, stream_parser(4095)), "message length 4096 exceeds limit 4095");
  EXPECT_EQ(parse_error(std::string("\xff\xff\xff\xff", 4)),
            "message length 4294967295 exceeds limit 1048589");
  // At the limit is fine.
  std::string ok;
  append_bitfield(ok, std::string(4094, '\0'));
  EXPECT_EQ(parse_error(ok, stream_parser(4095)), "no error");
}

TEST(wire, wrong_fixed_lengths) {
  auto frame = [](std::uint8_t id, std::size_t body_len) {
    std::string s;
    auto len = static_cast<std::uint32_t>(body_len);
    s.push_back(static_cast<char>(len >> 24));
    s.push_back(static_cast<char>(len >> 16));
    s.push_back(static_cast<char>(len >> 8));
    s.push_back(static_cast<char>(len));
    s.push_back(static_cast<char>(id));
    s.append(body_len - 1, '\x01');
    return s;
  };
  EXPECT_EQ(parse_error(frame(4, 7)), "have: length 7, expected 5");
  EXPECT_EQ(parse_error(frame(0, 2)), "choke: length 2, expected 1");
  EXPECT_EQ(parse_error(frame(0x0e, 5)), "have_all: length 5, expected 1");
  EXPECT_EQ(parse_error(frame(0x0d, 4)), "suggest: length 4, expected 5");
  EXPECT_EQ(parse_error(frame(0x11, 6)), "allowed_fast: length 6, expected 5");
  EXPECT_EQ(parse_error(frame(6, 12)), "request: length 12, expected 13");
  EXPECT_EQ(parse_error(frame(0x10, 14)), "reject: length 14, expected 13");
  EXPECT_EQ(parse_error(frame(7, 8)), "piece: length 8, expected at least 9");
  EXPECT_EQ(parse_error(frame(9, 2)), "port: length 2, expected 3");
  EXPECT_EQ(parse_error(frame(20, 1)), "extended: length 1, expected at least 2");
}

TEST(wire, request_block_length_out_of_range) {
  std::string s;
  append_request(s, msg_id::request, 0, 0, 0);
  EXPECT_EQ(parse_error(s), "request: block length 0 out of range");
  s.clear();
  append_request(s, msg_id::cancel, 0, 0, 128 * 1024 + 1);
  EXPECT_EQ(parse_error(s), "cancel: block length 131073 out of range");
  s.clear();
  append_request(s, msg_id::reject, 0, 0, 0xffffffff);
  EXPECT_EQ(parse_error(s), "reject: block length 4294967295 out of range");
}

TEST(wire, unknown_ids_are_skipped) {
  std::string s;
  append_simple(s, msg_id::unchoke);
  s += std::string("\x00\x00\x00\x03\x63zz", 7); // id 99
  s += std::string("\x00\x00\x00\x01\xff", 5);   // 0xff is not a wire id either
  append_have(s, 42);
  std::size_t consumed = 0;
  auto got = parse_all(s, &consumed);
  EXPECT_EQ(consumed, s.size());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, msg_id::unchoke);
  EXPECT_EQ(got[1].id, msg_id::have);
  EXPECT_EQ(got[1].index, 42u);
}

TEST(wire, keep_alive_is_delivered) {
  std::string s;
  append_keep_alive(s);
  append_keep_alive(s);
  auto got = parse_all(s);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, msg_id::keep_alive);
  EXPECT_EQ(got[1].id, msg_id::keep_alive);
}

TEST(wire, callback_can_stop_early) {
  std::string s;
  append_have(s, 1);
  append_have(s, 2);
  append_have(s, 3);
  stream_parser p;
  int seen = 0;
  auto r = p.parse(s, [&](const message &) { return ++seen < 2; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(seen, 2);
  EXPECT_EQ(*r, 18u);
}

TEST(wire, message_names) {
  EXPECT_STREQ(to_string(msg_id::not_interested), "not_interested");
  EXPECT_STREQ(to_string(msg_id::allowed_fast), "allowed_fast");
  EXPECT_STREQ(to_string(msg_id::keep_alive), "keep_alive");
  EXPECT_STREQ(to_string(static_cast<msg_id>(99)), "unknown");
}

} // namespace
} // namespace actorrent::wire
