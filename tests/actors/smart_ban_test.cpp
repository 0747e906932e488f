#include "actors/smart_ban.hpp"

#include <gtest/gtest.h>

#include "protocol/sha1.hpp"

using namespace actorrent;

namespace {

constexpr peer_slot honest = 1, liar = 2, other = 3;

sha1_digest good(std::uint32_t block) { return sha1("good " + std::to_string(block)); }
sha1_digest bad(std::uint32_t block) { return sha1("bad " + std::to_string(block)); }

// A record of one hashed piece: `who[i]` sent block i, `ok[i]` says whether its bytes were right.
std::vector<block_digest> record(const std::vector<peer_slot>& who, const std::string& ok) {
  std::vector<block_digest> out;
  for (std::uint32_t i = 0; i < who.size(); ++i)
    out.push_back(block_digest{i, who[i], ok[i] == '1' ? good(i) : bad(i)});
  return out;
}

std::vector<block_digest> passed(std::uint32_t blocks) {
  std::vector<block_digest> out;
  for (std::uint32_t i = 0; i < blocks; ++i)
    out.push_back(block_digest{i, no_peer, good(i)});
  return out;
}

} // namespace

TEST(smart_ban, only_the_peer_whose_block_differed_is_named) {
  smart_ban sb;
  sb.on_piece_failed(piece_index{5}, record({honest, liar, honest, honest}, "1011"));
  EXPECT_TRUE(sb.remembers(piece_index{5}));
  EXPECT_TRUE(sb.involves(honest));
  EXPECT_TRUE(sb.involves(liar));
  auto liars = sb.on_piece_passed(piece_index{5}, passed(4));
  ASSERT_EQ(liars.size(), 1u);
  EXPECT_EQ(liars[0].peer, liar);
  EXPECT_EQ(liars[0].bad_blocks, 1u);
  EXPECT_FALSE(sb.remembers(piece_index{5}));
  EXPECT_FALSE(sb.involves(liar));
}

TEST(smart_ban, bad_blocks_are_counted_across_failed_attempts) {
  smart_ban sb;
  sb.on_piece_failed(piece_index{0}, record({liar, honest, liar, honest}, "0101"));
  // Second attempt: other blocks, the liar again lying, someone else honest.
  sb.on_piece_failed(piece_index{0}, record({other, liar, other, other}, "1011"));
  auto liars = sb.on_piece_passed(piece_index{0}, passed(4));
  ASSERT_EQ(liars.size(), 1u);
  EXPECT_EQ(liars[0].peer, liar);
  EXPECT_EQ(liars[0].bad_blocks, 3u);
}

TEST(smart_ban, an_honest_end_game_copy_overwritten_by_a_liar_is_not_blamed) {
  // The record holds the copy that was hashed (the liar's); the honest copy it replaced is not
  // in it, so the honest peer is never named.
  smart_ban sb;
  sb.on_piece_failed(piece_index{1}, record({honest, honest, liar, honest}, "1101"));
  auto liars = sb.on_piece_passed(piece_index{1}, passed(4));
  ASSERT_EQ(liars.size(), 1u);
  EXPECT_EQ(liars[0].peer, liar);
}

TEST(smart_ban, a_piece_that_passes_without_a_record_names_nobody) {
  smart_ban sb;
  EXPECT_TRUE(sb.on_piece_passed(piece_index{3}, passed(4)).empty());
  // And a failure whose bytes were all right after all (e.g. the disk) names nobody either.
  sb.on_piece_failed(piece_index{3}, record({honest, other, honest, other}, "1111"));
  EXPECT_TRUE(sb.on_piece_passed(piece_index{3}, passed(4)).empty());
}

TEST(smart_ban, memory_is_bounded_by_the_oldest_record_going_first) {
  smart_ban sb(2);
  sb.on_piece_failed(piece_index{1}, record({liar}, "0"));
  sb.on_piece_failed(piece_index{2}, record({liar}, "0"));
  sb.on_piece_failed(piece_index{3}, record({liar}, "0"));
  EXPECT_EQ(sb.pieces(), 2u);
  EXPECT_FALSE(sb.remembers(piece_index{1}));
  EXPECT_TRUE(sb.remembers(piece_index{3}));
  // Repeated failures of one block keep a bounded number of copies.
  for (int i = 0; i < 100; ++i)
    sb.on_piece_failed(piece_index{3},
                       {block_digest{0, static_cast<peer_slot>(10 + i), sha1(std::to_string(i))}});
  auto liars = sb.on_piece_passed(piece_index{3}, passed(1));
  EXPECT_LE(liars.size(), 4u);
}
