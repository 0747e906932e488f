#include "protocol/ut_metadata.hpp"

#include <gtest/gtest.h>

#include <string>

#include "protocol/sha1.hpp"

namespace actorrent::ut_metadata {
namespace {

std::string error_of(std::string_view payload) {
  auto r = parse(payload);
  if (r.ok())
    return "(parsed)";
  EXPECT_EQ(r.error().code, errc::wire_protocol);
  return r.error().message;
}

TEST(ut_metadata, encodes_as_bep9) {
  EXPECT_EQ(encode_request(3), "d8:msg_typei0e5:piecei3ee");
  EXPECT_EQ(encode_reject(0), "d8:msg_typei2e5:piecei0ee");
  EXPECT_EQ(encode_data(1, 20000, "xyz"), "d8:msg_typei1e5:piecei1e10:total_sizei20000eexyz");
}

TEST(ut_metadata, parses_each_type) {
  auto req = parse("d8:msg_typei0e5:piecei3ee");
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->type, msg_type::request);
  EXPECT_EQ(req->piece, 3u);
  auto data = parse("d8:msg_typei1e5:piecei1e10:total_sizei20000eexyz");
  ASSERT_TRUE(data.ok()) << data.error().message;
  EXPECT_EQ(data->type, msg_type::data);
  EXPECT_EQ(data->total_size, 20000u);
  EXPECT_EQ(data->data, "xyz");
  // Keys in any order, unknown ones ignored (libtorrent adds none, others might).
  auto rej = parse("d5:piecei2e1:xi1e8:msg_typei2ee");
  ASSERT_TRUE(rej.ok());
  EXPECT_EQ(rej->type, msg_type::reject);
}

TEST(ut_metadata, precise_errors) {
  EXPECT_EQ(error_of("d8:msg_typei7e5:piecei0ee"), "ut_metadata: msg_type 7 out of range 0..2");
  EXPECT_EQ(error_of("d5:piecei0ee"), "ut_metadata: msg_type missing");
  EXPECT_EQ(error_of("d8:msg_typei0e5:piece1:0e"), "ut_metadata: piece is not an integer");
  EXPECT_EQ(error_of("d8:msg_typei0e5:piecei1024ee"),
            "ut_metadata: piece 1024 out of range 0..1023");
  EXPECT_EQ(error_of("d8:msg_typei1e5:piecei0e10:total_sizei16777217eex"),
            "ut_metadata: total_size 16777217 out of range 1..16777216");
  EXPECT_EQ(error_of("d8:msg_typei0e5:piecei0eejunk"), "ut_metadata: 4 bytes after a request");
  EXPECT_EQ(error_of("i3e"), "ut_metadata: payload does not start with a dictionary");
  EXPECT_EQ(error_of("d8:msg_typei1e5:piecei0e10:total_sizei99999ee" + std::string(16385, 'a')),
            "ut_metadata: data piece of 16385 bytes, at most 16384");
  EXPECT_NE(error_of("d8:msg_type"), "(parsed)");
}

std::string metadata_of(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>(i * 7 + i / 300);
  return s;
}

TEST(ut_metadata, assembles_several_pieces_from_several_peers) {
  auto meta = metadata_of(40000); // 3 pieces: 16384, 16384, 7232
  assembler a(sha1(meta));
  ASSERT_TRUE(a.set_size(meta.size()).ok());
  auto now = assembler::clock::now();
  auto p0 = a.next_request(1, now);
  auto p1 = a.next_request(2, now);
  auto p2 = a.next_request(1, now);
  ASSERT_TRUE(p0 && p1 && p2);
  EXPECT_EQ(*p0, 0u);
  EXPECT_EQ(*p1, 1u);
  EXPECT_EQ(*p2, 2u);
  EXPECT_FALSE(a.next_request(3, now)); // everything asked of someone
  // Peer 2 refuses: piece 1 goes to the next peer that asks.
  a.on_reject(2, 1);
  EXPECT_EQ(a.next_request(3, now), std::optional<std::uint32_t>(1));
  // Data from a peer not asked for that piece is refused (and kept out).
  EXPECT_FALSE(a.on_data(2, 1, meta.size(), std::string_view(meta).substr(16384, 16384)).ok());
  EXPECT_FALSE(a.on_data(3, 1, meta.size() + 1, std::string_view(meta).substr(16384, 16384)).ok());
  EXPECT_FALSE(a.on_data(1, 2, meta.size(), "short").ok());
  ASSERT_TRUE(a.on_data(1, 0, meta.size(), std::string_view(meta).substr(0, 16384)).ok());
  ASSERT_TRUE(a.on_data(3, 1, meta.size(), std::string_view(meta).substr(16384, 16384)).ok());
  EXPECT_FALSE(a.complete());
  ASSERT_TRUE(a.on_data(1, 2, meta.size(), std::string_view(meta).substr(32768)).ok());
  ASSERT_TRUE(a.complete());
  std::vector<assembler::peer> culprits;
  auto got = a.take(culprits);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, meta);
  EXPECT_TRUE(culprits.empty());
}

TEST(ut_metadata, wrong_metadata_names_its_senders_and_starts_over) {
  auto meta = metadata_of(20000);
  assembler a(sha1(meta));
  ASSERT_TRUE(a.set_size(meta.size()).ok());
  auto now = assembler::clock::now();
  ASSERT_EQ(a.next_request(5, now), std::optional<std::uint32_t>(0));
  ASSERT_EQ(a.next_request(6, now), std::optional<std::uint32_t>(1));
  auto wrong = meta;
  wrong[19999] ^= 1;
  ASSERT_TRUE(a.on_data(5, 0, meta.size(), std::string_view(wrong).substr(0, 16384)).ok());
  ASSERT_TRUE(a.on_data(6, 1, meta.size(), std::string_view(wrong).substr(16384)).ok());
  std::vector<assembler::peer> culprits;
  auto got = a.take(culprits);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, errc::hash_mismatch);
  EXPECT_EQ(culprits, (std::vector<assembler::peer>{5, 6}));
  EXPECT_FALSE(a.has_size());
  EXPECT_TRUE(a.set_size(meta.size()).ok()); // from the next honest peer
}

TEST(ut_metadata, refuses_oversized_and_expires_requests) {
  assembler a(info_hash{});
  EXPECT_FALSE(a.set_size(0).ok());
  EXPECT_FALSE(a.set_size(max_size + 1).ok());
  EXPECT_FALSE(a.has_size());
  ASSERT_TRUE(a.set_size(100).ok());
  auto now = assembler::clock::now();
  ASSERT_TRUE(a.next_request(1, now));
  EXPECT_FALSE(a.next_request(2, now + std::chrono::seconds(5)));
  EXPECT_TRUE(a.next_request(2, now + std::chrono::seconds(11))); // peer 1 took too long
  a.on_peer_gone(2);
  EXPECT_TRUE(a.next_request(3, now + std::chrono::seconds(11)));
}

} // namespace
} // namespace actorrent::ut_metadata
