#include "cluster/wire.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace actorrent;
using namespace actorrent::cluster;

namespace {

info_hash hash_of(std::uint8_t fill) {
  info_hash h{};
  h.fill(fill);
  return h;
}

wire::Envelope hello(const std::string& name) {
  wire::Envelope env;
  env.mutable_hello()->set_name(name);
  env.mutable_hello()->set_listen("127.0.0.1:6881");
  env.mutable_hello()->set_download_limit(1u << 20);
  return env;
}

std::string error_of(const result<wire::Envelope>& r) {
  EXPECT_FALSE(r.ok());
  if (r.ok())
    return {};
  EXPECT_EQ(r.error().code, errc::cluster_protocol);
  return r.error().message;
}

} // namespace

TEST(cluster_wire, envelope_round_trip) {
  const auto h = hash_of(0xab);
  const auto bytes = encode(hello("node-1"), h);
  auto r = decode(bytes, &h);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->version(), protocol_version());
  EXPECT_EQ(r->body_case(), wire::Envelope::kHello);
  EXPECT_EQ(r->hello().name(), "node-1");
  EXPECT_EQ(r->hello().download_limit(), 1u << 20);
  // Without an expected hash (a coordinator's first look), any torrent passes.
  EXPECT_TRUE(decode(bytes, nullptr).ok());
}

TEST(cluster_wire, refuses_another_version) {
  const auto h = hash_of(1);
  auto env = hello("x");
  env.set_version(2);
  env.set_info_hash(std::string(20, '\x01'));
  std::string bytes;
  env.SerializeToString(&bytes);
  const auto msg = error_of(decode(bytes, &h));
  EXPECT_NE(msg.find("protocol version 2, this node speaks 1"), std::string::npos) << msg;

  env.set_version(0);
  env.SerializeToString(&bytes);
  EXPECT_NE(error_of(decode(bytes, &h)).find("no protocol version"), std::string::npos);
}

TEST(cluster_wire, refuses_another_torrent) {
  const auto ours = hash_of(0xcd);
  const auto theirs = hash_of(0x12);
  const auto msg = error_of(decode(encode(hello("x"), theirs), &ours));
  EXPECT_NE(msg.find("info-hash " + to_hex(theirs) + " is another torrent's (this job: " +
                     to_hex(ours) + ")"),
            std::string::npos)
      << msg;
}

TEST(cluster_wire, refuses_short_info_hash) {
  auto env = hello("x");
  env.set_version(protocol_version());
  env.set_info_hash("short");
  std::string bytes;
  env.SerializeToString(&bytes);
  const auto msg = error_of(decode(bytes, nullptr));
  EXPECT_NE(msg.find("info-hash of 5 bytes (expected 20)"), std::string::npos) << msg;
}

TEST(cluster_wire, refuses_garbage_and_empty) {
  const auto h = hash_of(1);
  EXPECT_NE(error_of(decode("", &h)).find("not a cluster envelope"), std::string::npos);
  // Field 1 as a length-delimited field whose length runs past the end.
  EXPECT_NE(error_of(decode(std::string("\x0a\x7f\x01", 3), &h)).find("not a cluster envelope"),
            std::string::npos);
}

TEST(cluster_wire, refuses_non_utf8_text_quietly) {
  const auto h = hash_of(1);
  auto bytes = encode(hello("n\xff\xfe"), h); // serialized as is, refused when parsed
  testing::internal::CaptureStderr();
  const auto msg = error_of(decode(bytes, &h));
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_NE(msg.find("not UTF-8"), std::string::npos) << msg;
}

TEST(cluster_wire, refuses_envelope_without_body) {
  const auto h = hash_of(1);
  const auto msg = error_of(decode(encode(wire::Envelope{}, h), &h));
  EXPECT_NE(msg.find("without a body"), std::string::npos) << msg;
}

TEST(cluster_wire, bitmap_round_trip) {
  Roaring r;
  r.addRange(100, 5000); // a shard: one run
  r.add(7);
  r.add(70000);
  const auto bytes = bitmap_bytes(r);
  EXPECT_LT(bytes.size(), 64u); // runs, not 4,900 array entries
  auto back = bitmap_from(bytes, 70001);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, r);
  auto empty = bitmap_from(bitmap_bytes(Roaring{}), 10);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->isEmpty());
  EXPECT_TRUE(bitmap_from("", 10).ok()); // an unset proto3 field
}

TEST(cluster_wire, bitmap_refuses_piece_out_of_range) {
  Roaring r;
  r.add(3);
  r.add(10);
  auto back = bitmap_from(bitmap_bytes(r), 10);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.error().code, errc::cluster_protocol);
  EXPECT_NE(back.error().message.find("holds piece 10 but the torrent has 10 pieces"),
            std::string::npos)
      << back.error().message;
}

TEST(cluster_wire, bitmap_refuses_truncated_and_trailing_bytes) {
  Roaring r;
  for (std::uint32_t i = 0; i < 3000; i += 3)
    r.add(i);
  const auto bytes = bitmap_bytes(r);
  // CRoaring's reader prints on truncated input: a hostile node must not fill the log.
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  for (std::size_t cut = 1; cut < bytes.size(); cut += 7) {
    auto back = bitmap_from(bytes.substr(0, bytes.size() - cut), 3000);
    ASSERT_FALSE(back.ok()) << "cut " << cut;
    EXPECT_EQ(back.error().code, errc::cluster_protocol);
  }
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  auto trailing = bitmap_from(bytes + "xx", 3000);
  ASSERT_FALSE(trailing.ok());
  EXPECT_NE(trailing.error().message.find("of its"), std::string::npos)
      << trailing.error().message;
}

TEST(cluster_wire, bitmap_refuses_oversized_input) {
  // 100 pieces never need 80 KiB; refused before roaring reads it.
  auto back = bitmap_from(std::string(80u << 10, '\0'), 100);
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.error().message.find("more than"), std::string::npos) << back.error().message;
}

TEST(cluster_wire, bitmap_refuses_unsorted_array_container) {
  // Portable format by hand: cookie 12346 (no runs), 1 container, key 0 cardinality-1 = 1,
  // offsets, then the array {5, 2} out of order.
  const unsigned char raw[] = {0x3a, 0x30, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0,
                               16,   0,    0, 0, 5, 0, 2, 0};
  auto back = bitmap_from(std::string(reinterpret_cast<const char*>(raw), sizeof raw), 10);
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.error().message.find("unsorted array container"), std::string::npos)
      << back.error().message;
}

// Found by fuzz/cluster_wire_fuzz (regress_empty_run_container): a run container with no runs
// made CRoaring's iterator dereference a null run array.
TEST(cluster_wire, bitmap_refuses_empty_run_container) {
  const unsigned char raw[] = {0x3b, 0x30, 0, 0, 1, 1, 0xe8, 3, 0x63, 0, 0};
  auto back = bitmap_from(std::string(reinterpret_cast<const char*>(raw), sizeof raw), 100000);
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.error().message.find("run container of 0 values"), std::string::npos)
      << back.error().message;
}

// An all-zero bitset container whose header claims 5,000 values: CRoaring's iterator would
// scan past its 8 KiB looking for the first set bit.
TEST(cluster_wire, bitmap_refuses_bitset_container_that_lies_about_its_size) {
  std::string raw("\x3a\x30\0\0\1\0\0\0\0\0", 10);
  raw += static_cast<char>(4999 & 0xff);
  raw += static_cast<char>(4999 >> 8);
  raw += std::string("\x10\0\0\0", 4); // offset of the container: 16
  raw += std::string(8192, '\0');
  auto back = bitmap_from(raw, 100000);
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.error().message.find("bitset container of 0 values, its header says 5000"),
            std::string::npos)
      << back.error().message;
}
