#include "actors/bitfield.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace actorrent;

namespace {

// "1101" -> 4 pieces, 0, 1 and 3 set.
bitfield bits(std::string_view s) {
  bitfield b(static_cast<std::uint32_t>(s.size()));
  for (std::uint32_t i = 0; i < s.size(); ++i)
    if (s[i] == '1')
      b.set(piece_index{i});
  return b;
}

// The inverse of bits(), through test() only.
std::string str(const bitfield& b) {
  std::string s;
  for (std::uint32_t i = 0; i < b.size(); ++i)
    s += b.test(piece_index{i}) ? '1' : '0';
  return s;
}

std::vector<std::uint32_t> set_pieces(const bitfield& b) {
  std::vector<std::uint32_t> out;
  b.for_each_set([&](piece_index p) { out.push_back(p.value); });
  return out;
}

std::string bytes(std::initializer_list<unsigned> v) {
  std::string s;
  for (auto c : v)
    s += static_cast<char>(c);
  return s;
}

} // namespace

TEST(bitfield, to_wire_puts_piece_zero_in_the_high_bit) {
  EXPECT_EQ(bits("1101000011").to_wire(), bytes({0xD0, 0xC0}));
  EXPECT_EQ(bits("00000001").to_wire(), bytes({0x01}));
  EXPECT_EQ(bits("000000001").to_wire(), bytes({0x00, 0x80}));
  EXPECT_EQ(bits("").to_wire(), "");
}

TEST(bitfield, wire_round_trip) {
  for (std::string s : {"1", "0", "10110", "11111111", "101000011", "0000000000000001",
                        "1000000000000000000000000000000000000000000000000000000000000000"
                        "01"}) {
    auto b = bits(s);
    auto back = bitfield::from_wire(b.to_wire(), b.size());
    ASSERT_TRUE(back.ok()) << s << ": " << back.error().message;
    EXPECT_EQ(back->size(), s.size());
    EXPECT_EQ(str(*back), s);
    EXPECT_EQ(back->to_wire(), b.to_wire());
  }
}

TEST(bitfield, from_wire_reads_bits_in_wire_order) {
  auto b = bitfield::from_wire(bytes({0xA5, 0x80}), 9);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(str(*b), "101001011");
  EXPECT_EQ(b->count(), 5u);
}

TEST(bitfield, wrong_length_is_rejected_naming_both_lengths) {
  // 20 pieces need 3 bytes.
  for (std::string payload : {bytes({0xFF, 0xFF}), bytes({0xFF, 0xFF, 0xF0, 0x00})}) {
    auto b = bitfield::from_wire(payload, 20);
    ASSERT_FALSE(b.ok()) << payload.size() << " bytes accepted";
    EXPECT_EQ(b.error().code, errc::wire_protocol);
    const auto& msg = b.error().message;
    EXPECT_NE(msg.find(std::to_string(payload.size()) + " bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected 3"), std::string::npos) << msg;
  }
  EXPECT_FALSE(bitfield::from_wire("", 1).ok());
  EXPECT_FALSE(bitfield::from_wire(bytes({0x00}), 0).ok());
  EXPECT_TRUE(bitfield::from_wire("", 0).ok());
}

TEST(bitfield, spare_bit_set_is_rejected) {
  // 10 pieces: bits 10..15 of the second byte are spare.
  EXPECT_TRUE(bitfield::from_wire(bytes({0xFF, 0xC0}), 10).ok());
  for (unsigned last : {0xE0u, 0xC1u, 0x20u, 0x01u}) {
    auto b = bitfield::from_wire(bytes({0xFF, last}), 10);
    ASSERT_FALSE(b.ok()) << std::hex << last;
    EXPECT_EQ(b.error().code, errc::wire_protocol);
    EXPECT_NE(b.error().message.find("spare"), std::string::npos) << b.error().message;
  }
  // 17 pieces, bit 18 set: the message names the bit and the piece count.
  auto b = bitfield::from_wire(bytes({0x00, 0x00, 0x20}), 17);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("18"), std::string::npos) << b.error().message;
  EXPECT_NE(b.error().message.find("17"), std::string::npos) << b.error().message;
}

TEST(bitfield, set_all_sets_exactly_size_bits) {
  for (std::uint32_t size : {1u, 7u, 8u, 63u, 64u, 65u, 127u, 128u, 129u}) {
    bitfield b(size);
    EXPECT_TRUE(b.none());
    b.set_all();
    EXPECT_EQ(b.count(), size) << size;
    EXPECT_TRUE(b.all()) << size;
    EXPECT_FALSE(b.none()) << size;
    EXPECT_EQ(str(b), std::string(size, '1'));
    // No spare bit may leak onto the wire.
    auto wire = b.to_wire();
    ASSERT_EQ(wire.size(), (size + 7) / 8);
    EXPECT_TRUE(bitfield::from_wire(wire, size).ok()) << size;
    if (size % 8) {
      EXPECT_EQ(static_cast<unsigned char>(wire.back()), (0xFF00u >> (size % 8)) & 0xFFu) << size;
    }
    EXPECT_EQ(set_pieces(b).size(), size);
    // The constructor's fill agrees with set_all.
    EXPECT_EQ(bitfield(size, true).to_wire(), wire);
  }
}

TEST(bitfield, count_all_none) {
  auto b = bits("0000000000");
  EXPECT_EQ(b.count(), 0u);
  EXPECT_TRUE(b.none());
  EXPECT_FALSE(b.all());
  b.set(piece_index{9});
  EXPECT_EQ(b.count(), 1u);
  EXPECT_FALSE(b.none());
  EXPECT_FALSE(b.all());
  for (std::uint32_t i = 0; i < 9; ++i)
    b.set(piece_index{i});
  EXPECT_EQ(b.count(), 10u);
  EXPECT_TRUE(b.all());
  b.set(piece_index{3}); // setting twice counts once
  EXPECT_EQ(b.count(), 10u);
  b.reset(piece_index{0});
  EXPECT_EQ(str(b), "0111111111");
  EXPECT_EQ(b.count(), 9u);
  EXPECT_FALSE(b.all());
  b.reset(piece_index{0}); // resetting twice too
  EXPECT_EQ(b.count(), 9u);

  bitfield empty;
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_TRUE(empty.none());
  EXPECT_TRUE(empty.all());
}

TEST(bitfield, for_each_set_visits_in_increasing_order_across_words) {
  bitfield b(200);
  for (std::uint32_t p : {199u, 64u, 0u, 127u, 63u, 128u, 5u, 65u})
    b.set(piece_index{p});
  EXPECT_EQ(set_pieces(b), (std::vector<std::uint32_t>{0, 5, 63, 64, 65, 127, 128, 199}));
  EXPECT_EQ(set_pieces(bits("0110")), (std::vector<std::uint32_t>{1, 2}));
  EXPECT_TRUE(set_pieces(bitfield(130)).empty());
}
