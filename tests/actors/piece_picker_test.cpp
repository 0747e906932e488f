#include "actors/piece_picker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using namespace actorrent;

namespace {

constexpr std::uint64_t shuffle_seed = 0x5eed;
constexpr std::uint32_t K = block_size; // 16 KiB
constexpr std::uint32_t piece4 = 4 * K; // the usual piece: 4 blocks

constexpr peer_slot A = 0, B = 1, C = 2, D = 3, E = 4;

// "1101" -> 4 pieces, 0, 1 and 3 set.
bitfield bits(std::string_view s) {
  bitfield b(static_cast<std::uint32_t>(s.size()));
  for (std::uint32_t i = 0; i < s.size(); ++i)
    if (s[i] == '1')
      b.set(piece_index{i});
  return b;
}

// `pieces` pieces of 4 blocks; the last one is `last_piece` bytes long.
piece_picker make(std::uint32_t pieces, std::uint64_t last_piece = piece4) {
  return piece_picker(pieces, piece4, std::uint64_t{piece4} * (pieces - 1) + last_piece,
                      shuffle_seed);
}

block_ref blk(std::uint32_t piece, std::uint32_t block) { return block_ref{piece_index{piece}, block}; }

// "2.0 2.1 3.0": piece.block, in the order given.
std::string show(const std::vector<block_ref>& v) {
  std::string s;
  for (auto b : v)
    s += (s.empty() ? "" : " ") + std::to_string(b.piece.value) + "." + std::to_string(b.block);
  return s;
}

std::set<std::uint32_t> pieces_of(const std::vector<block_ref>& v) {
  std::set<std::uint32_t> s;
  for (auto b : v)
    s.insert(b.piece.value);
  return s;
}

std::string name(piece_picker::receive_result r) {
  switch (r) {
  case piece_picker::receive_result::fresh:
    return "fresh";
  case piece_picker::receive_result::duplicate:
    return "duplicate";
  case piece_picker::receive_result::piece_complete:
    return "piece_complete";
  case piece_picker::receive_result::refused:
    return "refused";
  }
  return "?";
}

// Test driver: every call checks the picker's invariants afterwards. It keeps the request
// record the way the torrent does: picks are recorded, a received block settles the sender's
// request and cancels the others', a drop removes the request before the picker hears of it.
struct driver {
  piece_picker pp;
  request_record rec;
  std::map<peer_slot, bitfield> peers; // absent: a seed (nullptr)
  const request_record::clock::time_point now{};

  explicit driver(piece_picker p) : pp(std::move(p)) {}

  bool consistent() const { return pp.consistent(&rec) && rec.consistent(); }
  void known(peer_slot peer) {
    if (!rec.find(peer))
      rec.add_peer(peer, 1u << 20);
  }
  // pick() as the torrent calls it: what is picked is recorded at once.
  std::size_t raw_pick(peer_slot peer, std::size_t max, std::vector<block_ref>& out) {
    known(peer);
    auto before = out.size();
    auto n = pp.pick(peer, has(peer), max, rec, out);
    for (auto i = before; i < out.size(); ++i)
      EXPECT_TRUE(rec.add(peer, out[i], now));
    return n;
  }

  void add(peer_slot peer, std::string_view has) {
    peers.emplace(peer, bits(has));
    pp.add_peer_pieces(peers.at(peer));
    EXPECT_TRUE(consistent());
  }
  void add_seed() { pp.avail().add_seed(); }
  const bitfield* has(peer_slot peer) const {
    auto it = peers.find(peer);
    return it == peers.end() ? nullptr : &it->second;
  }

  std::vector<block_ref> pick_refs(peer_slot peer, std::size_t max) {
    std::vector<block_ref> out{blk(999, 999)}; // pick appends: keep what was there
    auto n = raw_pick(peer, max, out);
    EXPECT_EQ(out.front(), blk(999, 999));
    out.erase(out.begin());
    EXPECT_EQ(n, out.size());
    EXPECT_LE(n, max);
    EXPECT_TRUE(consistent());
    return out;
  }
  std::string pick(peer_slot peer, std::size_t max) { return show(pick_refs(peer, max)); }

  std::string receive(peer_slot peer, block_ref b, std::vector<peer_slot>* cancels = nullptr) {
    std::vector<peer_slot> local;
    auto& c = cancels ? *cancels : local;
    c.clear();
    if (rec.find(peer))
      rec.on_received(peer, b, now);
    auto r = pp.on_block_received(b, ++copies, peer);
    if (r == piece_picker::receive_result::refused) {
      pp.on_request_dropped(b, rec); // as the torrent does: the copy goes, nothing is cancelled
    } else {
      for (auto other : rec.requesters(b)) {
        EXPECT_TRUE(rec.remove(other, b));
        c.push_back(other);
      }
    }
    EXPECT_TRUE(consistent());
    return name(r);
  }
  // Receives every block of piece p from `peer`; returns the last result.
  std::string receive_piece(peer_slot peer, std::uint32_t p) {
    std::string r;
    for (std::uint32_t i = 0; i < pp.blocks_in_piece(piece_index{p}); ++i)
      r = receive(peer, blk(p, i));
    return r;
  }
  void drop(peer_slot peer, block_ref b) {
    if (rec.remove(peer, b))
      pp.on_request_dropped(b, rec);
    EXPECT_TRUE(consistent());
  }
  void drop(peer_slot peer, const std::vector<block_ref>& v) {
    for (auto b : v)
      drop(peer, b);
  }
  void verified(std::uint32_t p) {
    pp.on_piece_verified(piece_index{p});
    EXPECT_TRUE(consistent());
  }
  void failed(std::uint32_t p) {
    pp.on_piece_failed(piece_index{p});
    EXPECT_TRUE(consistent());
  }
  std::uint32_t copies = 0; // storage's copy numbers, as it would hand them out
};

} // namespace

// -- geometry ----------------------------------------------------------------------------------

TEST(piece_picker, geometry_with_a_short_last_piece_and_block) {
  // 4 pieces of 64 KiB, then 16 KiB + 1000 bytes.
  piece_picker pp(5, piece4, 4ull * piece4 + K + 1000, shuffle_seed);
  EXPECT_EQ(pp.piece_count(), 5u);
  for (std::uint32_t p = 0; p < 4; ++p) {
    EXPECT_EQ(pp.piece_size(piece_index{p}), piece4);
    EXPECT_EQ(pp.blocks_in_piece(piece_index{p}), 4u);
  }
  EXPECT_EQ(pp.piece_size(piece_index{4}), K + 1000);
  EXPECT_EQ(pp.blocks_in_piece(piece_index{4}), 2u);
  EXPECT_EQ(pp.block_length(blk(0, 0)), K);
  EXPECT_EQ(pp.block_length(blk(3, 3)), K);
  EXPECT_EQ(pp.block_length(blk(4, 0)), K);
  EXPECT_EQ(pp.block_length(blk(4, 1)), 1000u);
  EXPECT_TRUE(pp.consistent());
}

TEST(piece_picker, geometry_with_pieces_not_a_multiple_of_the_block_size) {
  // Pieces of 20000 bytes: a full block and 3616 bytes; the last piece is 5000 bytes.
  piece_picker pp(3, 20000, 45000, shuffle_seed);
  EXPECT_EQ(pp.blocks_in_piece(piece_index{0}), 2u);
  EXPECT_EQ(pp.block_length(blk(0, 0)), K);
  EXPECT_EQ(pp.block_length(blk(1, 1)), 20000u - K);
  EXPECT_EQ(pp.piece_size(piece_index{2}), 5000u);
  EXPECT_EQ(pp.blocks_in_piece(piece_index{2}), 1u);
  EXPECT_EQ(pp.block_length(blk(2, 0)), 5000u);

  // A total that is an exact multiple: the last piece is a full one.
  piece_picker exact(2, 2 * K, 4ull * K, shuffle_seed);
  EXPECT_EQ(exact.piece_size(piece_index{1}), 2 * K);
  EXPECT_EQ(exact.blocks_in_piece(piece_index{1}), 2u);
  EXPECT_EQ(exact.block_length(blk(1, 1)), K);
}

// -- picking -----------------------------------------------------------------------------------

TEST(piece_picker, picks_the_rarest_piece_the_peer_has) {
  driver d(make(4));
  d.add(A, "1111");
  d.add(B, "1101");
  d.add(C, "1100");
  d.add(D, "1000"); // availability 4 3 1 2
  EXPECT_EQ(d.pick(A, 4), "2.0 2.1 2.2 2.3");
  EXPECT_EQ(d.pick(B, 4), "3.0 3.1 3.2 3.3"); // B lacks 2
  EXPECT_EQ(d.pick(C, 4), "1.0 1.1 1.2 1.3");
  EXPECT_EQ(d.pick(D, 4), "0.0 0.1 0.2 0.3");
  EXPECT_EQ(d.pp.downloading_count(), 4u);
  EXPECT_EQ(d.pp.avail().pickable(), 0u);
}


TEST(piece_picker, skips_pieces_the_peer_lacks) {
  driver d(make(5));
  d.add(A, "11100");
  d.add(B, "01100");
  d.add(C, "00111");
  d.add(D, "00100");
  d.add(E, "00001"); // availability 1 2 4 1 2
  EXPECT_EQ(d.pick(B, 4), "1.0 1.1 1.2 1.3"); // not the rarer 0 or 3: B lacks them
  EXPECT_EQ(d.pick(C, 4), "3.0 3.1 3.2 3.3");
  EXPECT_EQ(d.pick(D, 4), "2.0 2.1 2.2 2.3");
  EXPECT_EQ(d.pick(D, 4), ""); // D has nothing else, and pieces 0 and 4 are still to start
  EXPECT_EQ(d.pick(A, 4), "0.0 0.1 0.2 0.3");
  EXPECT_EQ(d.pick(E, 4), "4.0 4.1 4.2 4.3");
  d.add(9, "00000");
  EXPECT_EQ(d.pick(9, 4), "");
}

TEST(piece_picker, a_seed_may_start_pieces_no_other_peer_has) {
  driver d(make(3));
  d.add(A, "010");
  d.add(B, "011"); // availability 0 2 1
  d.add_seed();    // slot S below has everything
  constexpr peer_slot S = 7;
  EXPECT_EQ(d.pick(S, 4), "0.0 0.1 0.2 0.3");
  EXPECT_EQ(d.pick(S, 4), "2.0 2.1 2.2 2.3");
  EXPECT_EQ(d.pick(A, 4), "1.0 1.1 1.2 1.3");
}

TEST(piece_picker, continues_started_pieces_before_starting_new_ones) {
  driver d(make(4));
  d.add(A, "1111");
  d.add(B, "1111");
  d.add(C, "0111");
  d.add(D, "0011"); // availability 2 3 4 4
  EXPECT_EQ(d.pick(A, 2), "0.0 0.1");
  EXPECT_EQ(d.pp.downloading_count(), 1u);
  EXPECT_EQ(d.pick(B, 4), "0.2 0.3 1.0 1.1");
  EXPECT_EQ(d.pp.downloading_count(), 2u);
  auto c = d.pick_refs(C, 4);
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(show({c[0], c[1]}), "1.2 1.3"); // C lacks 0: it finishes 1 first
  EXPECT_EQ(c[2].block, 0u);
  EXPECT_TRUE(c[2].piece.value == 2 || c[2].piece.value == 3) << show(c);
  EXPECT_EQ(c[3], blk(c[2].piece.value, 1));
  EXPECT_EQ(d.pp.downloading_count(), 3u);
}

TEST(piece_picker, max_blocks_is_respected) {
  driver d(make(3));
  d.add(A, "011");
  d.add(B, "001"); // availability 0 1 2 (+ the seed)
  d.add_seed();
  constexpr peer_slot S = 7;
  EXPECT_EQ(d.pick(S, 0), "");
  EXPECT_EQ(d.pp.downloading_count(), 0u);
  EXPECT_EQ(d.pick(S, 6), "0.0 0.1 0.2 0.3 1.0 1.1");
  EXPECT_EQ(d.pick(S, 1), "1.2");
  EXPECT_EQ(d.pick(S, 100), "1.3 2.0 2.1 2.2 2.3"); // no duplicates to the same peer
  EXPECT_EQ(d.pick(S, 100), "");
}

// -- receiving and verifying -------------------------------------------------------------------

TEST(piece_picker, receive_results) {
  driver d(make(2));
  d.add(A, "11");
  d.add(B, "11");
  d.add(C, "01"); // availability 2 3
  EXPECT_EQ(d.pick(A, 4), "0.0 0.1 0.2 0.3");
  std::vector<peer_slot> cancels;
  EXPECT_EQ(d.receive(A, blk(0, 0), &cancels), "fresh");
  EXPECT_TRUE(cancels.empty());
  EXPECT_EQ(d.receive(A, blk(0, 0), &cancels), "duplicate");
  EXPECT_TRUE(cancels.empty());
  // B sends a block only A was asked for: it counts, and A's request is cancelled.
  EXPECT_EQ(d.receive(B, blk(0, 1), &cancels), "fresh");
  EXPECT_EQ(cancels, std::vector<peer_slot>{A});
  EXPECT_EQ(d.receive(A, blk(0, 1), &cancels), "duplicate");
  EXPECT_TRUE(cancels.empty());
  // Piece 1 is not downloading: a (late) copy of one of its blocks starts it.
  EXPECT_EQ(d.receive(A, blk(1, 0)), "fresh");
  EXPECT_EQ(d.pp.dirty_bytes(piece_index{1}), std::uint64_t{K});
  EXPECT_EQ(d.receive(A, blk(0, 3)), "fresh");
  EXPECT_EQ(d.receive(A, blk(0, 2)), "piece_complete"); // the last one missing, not block 3
  EXPECT_EQ(d.receive(A, blk(0, 2)), "duplicate");
  d.verified(0);
  EXPECT_EQ(d.receive(A, blk(0, 0)), "duplicate"); // held
  EXPECT_EQ(d.pick(B, 4), "1.1 1.2 1.3");
  EXPECT_EQ(d.receive(B, blk(1, 4)), "duplicate"); // no such block
  EXPECT_EQ(d.pp.dirty_bytes(), std::uint64_t{K});
}

TEST(piece_picker, a_late_block_of_a_piece_that_went_back_to_pickable_starts_it_again) {
  // A's requests ended (a choke or a timeout) and its piece went back to pickable; then a copy
  // A had already sent lands. Storage holds it, so it counts and the piece starts from it: the
  // block is not fetched twice.
  driver d(make(3));
  d.add(A, "111");
  d.add(B, "111");
  d.add(C, "011"); // availability 2 3 3
  auto a = d.pick_refs(A, 4);
  EXPECT_EQ(show(a), "0.0 0.1 0.2 0.3");
  d.drop(A, a);
  EXPECT_EQ(d.pp.downloading_count(), 0u);
  ASSERT_FALSE(d.pp.avail().parked(piece_index{0}));
  EXPECT_EQ(d.receive(A, blk(0, 2)), "fresh");
  EXPECT_EQ(d.pp.downloading_count(), 1u);
  EXPECT_TRUE(d.pp.avail().parked(piece_index{0}));
  EXPECT_EQ(d.pp.dirty_bytes(), std::uint64_t{K});
  EXPECT_EQ(d.pick(B, 3), "0.0 0.1 0.3") << "the rest of it, not the block on disk";
  // Another late copy of A's, for a block now requested from B: it counts, B's is cancelled.
  std::vector<peer_slot> cancels;
  EXPECT_EQ(d.receive(A, blk(0, 1), &cancels), "fresh");
  EXPECT_EQ(cancels, std::vector<peer_slot>{B});
  EXPECT_EQ(d.receive(B, blk(0, 0)), "fresh");
  EXPECT_EQ(d.receive(B, blk(0, 3)), "piece_complete");
  d.verified(0);
  EXPECT_TRUE(d.pp.have(piece_index{0}));
  // A piece that is not wanted is not started by a late copy.
  d.pp.set_priorities({file_priority::normal, file_priority::normal, file_priority::skip});
  EXPECT_EQ(d.receive(A, blk(2, 0)), "duplicate");
  EXPECT_EQ(d.pp.downloading_count(), 0u);
  EXPECT_TRUE(d.pp.avail().parked(piece_index{2}));
  EXPECT_TRUE(d.consistent());
}

TEST(piece_picker, on_parole_a_late_copy_from_another_peer_is_refused) {
  // After a hash failure a piece is filled by one peer (a second failure names it). A late copy
  // from another peer replaced what storage held of the block: it is taken back (storage drops
  // it) and the block is fetched again from the peer on parole.
  driver d(make(2));
  d.add(A, "11");
  d.add(B, "11");
  d.add(C, "01");
  EXPECT_EQ(d.pick(A, 4), "0.0 0.1 0.2 0.3");
  EXPECT_EQ(d.receive_piece(A, 0), "piece_complete");
  d.failed(0);
  EXPECT_EQ(d.pick(B, 2), "0.0 0.1");
  EXPECT_EQ(d.receive(B, blk(0, 0)), "fresh");
  auto copy_of_a = d.copies + 1;
  EXPECT_EQ(d.receive(A, blk(0, 0)), "refused") << "a received block";
  EXPECT_EQ(d.receive(A, blk(0, 1)), "refused") << "a block requested from B";
  ASSERT_EQ(d.pp.taken_back().size(), 2u);
  EXPECT_EQ(d.pp.taken_back()[0].block, blk(0, 0));
  EXPECT_EQ(d.pp.taken_back()[0].copy, copy_of_a);
  d.pp.taken_back().clear();
  EXPECT_EQ(d.pp.dirty_bytes(), 0u);
  EXPECT_EQ(d.pick(B, 3), "0.0 0.2 0.3") << "0.0 again, 0.1 is still on its way";
  EXPECT_EQ(d.receive(B, blk(0, 1)), "fresh");
  EXPECT_EQ(d.receive(B, blk(0, 0)), "fresh");
  EXPECT_EQ(d.receive(B, blk(0, 2)), "fresh");
  EXPECT_EQ(d.receive(B, blk(0, 3)), "piece_complete");
}

TEST(piece_picker, verified_pieces_are_held_and_counted) {
  // Pieces 0 and 1 of 64 KiB, piece 2 of 16 KiB + 1000 bytes.
  const std::uint64_t total = 2ull * piece4 + K + 1000;
  driver d(make(3, K + 1000));
  d.add_seed();
  constexpr peer_slot S = 7;
  EXPECT_TRUE(d.pp.is_interesting(nullptr));
  auto all = d.pick_refs(S, 100);
  ASSERT_EQ(all.size(), 10u);
  std::uint64_t verified = 0;
  std::uint32_t held = 0;
  std::map<std::uint32_t, std::uint32_t> received;
  for (auto b : all) {
    auto r = d.receive(S, b);
    bool last = ++received[b.piece.value] == d.pp.blocks_in_piece(b.piece);
    EXPECT_EQ(r, last ? "piece_complete" : "fresh") << show({b});
    if (!last)
      continue;
    EXPECT_FALSE(d.pp.have(b.piece));
    d.verified(b.piece.value);
    verified += d.pp.piece_size(b.piece);
    ++held;
    EXPECT_TRUE(d.pp.have(b.piece));
    EXPECT_TRUE(d.pp.have_pieces().test(b.piece));
    EXPECT_EQ(d.pp.have_count(), held);
    EXPECT_EQ(d.pp.verified_bytes(), verified);
    EXPECT_EQ(d.pp.dirty_bytes(b.piece), 0u);
    EXPECT_TRUE(d.pp.avail().parked(b.piece));
    EXPECT_EQ(d.pp.complete(), held == 3);
  }
  EXPECT_EQ(held, 3u);
  EXPECT_EQ(d.pp.verified_bytes(), total);
  EXPECT_EQ(d.pp.dirty_bytes(), 0u);
  EXPECT_EQ(d.pp.downloading_count(), 0u);
  EXPECT_TRUE(d.pp.complete());
  EXPECT_FALSE(d.pp.is_interesting(nullptr));
  EXPECT_EQ(d.pick(S, 100), "");
  d.verified(1); // twice: nothing changes
  EXPECT_EQ(d.pp.verified_bytes(), total);
  EXPECT_EQ(d.pp.have_count(), 3u);
}

TEST(piece_picker, dirty_bytes_per_piece_and_in_total) {
  // Piece 2 is 16 KiB + 1000 bytes: its second block is 1000 bytes long.
  driver d(make(3, K + 1000));
  d.add_seed();
  constexpr peer_slot S = 7;
  ASSERT_EQ(d.pick_refs(S, 100).size(), 10u);
  auto dirty = [&](std::uint32_t p) { return d.pp.dirty_bytes(piece_index{p}); };
  struct step {
    std::uint32_t piece, block;
    std::uint64_t p0, p1, p2;
  };
  for (auto s : {step{0, 1, K, 0, 0}, step{2, 1, K, 0, 1000}, step{0, 3, 2 * K, 0, 1000},
                 step{1, 0, 2 * K, K, 1000}, step{1, 1, 2 * K, 2 * K, 1000},
                 step{1, 3, 2 * K, 3 * K, 1000}, step{2, 0, 2 * K, 3 * K, K + 1000}}) {
    d.receive(S, blk(s.piece, s.block));
    EXPECT_EQ(dirty(0), s.p0) << s.piece << "." << s.block;
    EXPECT_EQ(dirty(1), s.p1) << s.piece << "." << s.block;
    EXPECT_EQ(dirty(2), s.p2) << s.piece << "." << s.block;
    EXPECT_EQ(d.pp.dirty_bytes(), s.p0 + s.p1 + s.p2) << s.piece << "." << s.block;
  }
  d.verified(2);
  EXPECT_EQ(dirty(2), 0u);
  EXPECT_EQ(d.pp.dirty_bytes(), 5u * K);
  EXPECT_EQ(d.pp.verified_bytes(), K + 1000u);
  d.failed(1);
  EXPECT_EQ(dirty(1), 0u);
  EXPECT_EQ(dirty(0), 2u * K);
  EXPECT_EQ(d.pp.dirty_bytes(), 2u * K);
  EXPECT_EQ(d.pp.verified_bytes(), K + 1000u);
}

TEST(piece_picker, dirty_bytes_with_pieces_not_a_multiple_of_the_block_size) {
  // Pieces of 20000 bytes (16384 + 3616), the last one 5000 bytes.
  driver d(piece_picker(3, 20000, 45000, shuffle_seed));
  d.add_seed();
  ASSERT_EQ(d.pick_refs(7, 100).size(), 5u);
  d.receive(7, blk(1, 1));
  EXPECT_EQ(d.pp.dirty_bytes(piece_index{1}), 3616u);
  d.receive(7, blk(2, 0));
  EXPECT_EQ(d.pp.dirty_bytes(piece_index{2}), 5000u);
  d.receive(7, blk(1, 0));
  EXPECT_EQ(d.pp.dirty_bytes(piece_index{1}), 20000u);
  EXPECT_EQ(d.pp.dirty_bytes(piece_index{0}), 0u);
  EXPECT_EQ(d.pp.dirty_bytes(), 25000u);
}

// -- end-game ----------------------------------------------------------------------------------

TEST(piece_picker, end_game_hands_out_duplicates_once_and_cancels_the_other_request) {
  driver d(make(2));
  d.add(A, "11");
  d.add(B, "11");
  d.add(C, "11");
  auto a = d.pick_refs(A, 8);
  ASSERT_EQ(a.size(), 8u);
  EXPECT_EQ(pieces_of(a), (std::set<std::uint32_t>{0, 1}));
  // Nothing is left to start: B gets the blocks in flight at A, in the same order.
  EXPECT_EQ(d.pick(B, 8), show(a));
  EXPECT_EQ(d.pick(C, 8), ""); // every block has two requesters already
  EXPECT_EQ(d.pick(A, 8), ""); // never the same block twice to one peer
  EXPECT_EQ(d.pick(B, 8), "");

  std::vector<peer_slot> cancels;
  EXPECT_EQ(d.receive(B, blk(1, 2), &cancels), "fresh");
  EXPECT_EQ(cancels, std::vector<peer_slot>{A});
  EXPECT_EQ(d.receive(A, blk(1, 2), &cancels), "duplicate");
  EXPECT_TRUE(cancels.empty());
  EXPECT_EQ(d.receive(A, blk(1, 1), &cancels), "fresh");
  EXPECT_EQ(cancels, std::vector<peer_slot>{B});
  EXPECT_EQ(d.pick(C, 8), "");

  // B drops its duplicate of 0.3: the second slot goes to C; then A drops it: C alone has it.
  d.drop(B, blk(0, 3));
  EXPECT_EQ(d.pick(C, 8), "0.3");
  EXPECT_EQ(d.pick(B, 8), ""); // A and C have it in flight
  d.drop(A, blk(0, 3));
  EXPECT_EQ(d.receive(C, blk(0, 3), &cancels), "fresh");
  EXPECT_TRUE(cancels.empty());
}

TEST(piece_picker, end_game_waits_until_no_pickable_piece_is_available_from_anyone) {
  driver d(make(3));
  d.add(A, "110");
  d.add(B, "110");
  d.add(C, "001");
  auto a = d.pick_refs(A, 8);
  ASSERT_EQ(a.size(), 8u);
  EXPECT_EQ(pieces_of(a), (std::set<std::uint32_t>{0, 1}));
  EXPECT_EQ(d.pick(B, 8), ""); // C still has piece 2 to start: no duplicates yet
  EXPECT_EQ(d.pick(C, 1), "2.0");
  EXPECT_EQ(d.pick(B, 8), show(a)); // now: duplicates, only of pieces B has
  EXPECT_EQ(d.pick(C, 8), "2.1 2.2 2.3");
  EXPECT_EQ(d.pick(A, 8), "");
}

TEST(piece_picker, a_piece_nobody_has_does_not_hold_back_end_game) {
  driver d(make(3));
  d.add(A, "110");
  d.add(B, "110");
  auto a = d.pick_refs(A, 8);
  ASSERT_EQ(a.size(), 8u);
  EXPECT_EQ(d.pp.avail().pickable(), 1u); // piece 2, which nobody has
  EXPECT_EQ(d.pick(B, 3), show({a[0], a[1], a[2]}));
}

TEST(piece_picker, a_seed_holds_back_end_game_while_pieces_are_left_to_start) {
  driver d(make(3));
  d.add(A, "110");
  d.add(B, "110");
  d.add_seed();
  constexpr peer_slot S = 7;
  auto a = d.pick_refs(A, 8);
  ASSERT_EQ(a.size(), 8u);
  EXPECT_EQ(d.pick(B, 8), ""); // the seed has piece 2
  // The seed starts piece 2, and with nothing left to start gets duplicates in the same call.
  EXPECT_EQ(d.pick(S, 6), "2.0 2.1 2.2 2.3 " + show({a[0], a[1]}));
  EXPECT_EQ(d.pick(B, 2), show({a[2], a[3]}));
}

// -- dropped requests --------------------------------------------------------------------------

TEST(piece_picker, dropped_requests_go_to_the_next_peer) {
  driver d(make(3));
  d.add(A, "111");
  d.add(B, "111");
  d.add(C, "011");
  d.add(D, "001"); // availability 2 3 4
  EXPECT_EQ(d.pick(A, 4), "0.0 0.1 0.2 0.3");
  d.drop(A, blk(0, 1));
  EXPECT_EQ(d.pick(B, 1), "0.1");
  d.drop(C, blk(0, 2)); // not C's request: ignored
  d.drop(A, blk(2, 0)); // not downloading: ignored
  EXPECT_EQ(d.pick(B, 1), "1.0");
  // A received 0.0 and gives back 0.2 and 0.3: the piece stays started.
  EXPECT_EQ(d.receive(A, blk(0, 0)), "fresh");
  d.drop(A, blk(0, 2));
  d.drop(A, blk(0, 3));
  d.drop(A, blk(0, 3)); // twice: ignored
  EXPECT_TRUE(d.pp.avail().parked(piece_index{0}));
  EXPECT_EQ(d.pick(B, 4), "0.2 0.3 1.1 1.2");
  EXPECT_EQ(d.receive(B, blk(0, 1)), "fresh");
  EXPECT_EQ(d.receive(B, blk(0, 2)), "fresh");
  EXPECT_EQ(d.receive(B, blk(0, 3)), "piece_complete");
}

TEST(piece_picker, a_piece_with_nothing_received_or_requested_becomes_pickable_again) {
  driver d(make(3));
  d.add(A, "111");
  d.add(B, "111");
  d.add(C, "011");
  d.add(D, "001"); // availability 2 3 4
  auto a = d.pick_refs(A, 6);
  EXPECT_EQ(show(a), "0.0 0.1 0.2 0.3 1.0 1.1");
  EXPECT_EQ(d.pp.avail().pickable(), 1u);
  d.drop(A, a);
  EXPECT_EQ(d.pp.downloading_count(), 0u);
  EXPECT_FALSE(d.pp.avail().parked(piece_index{0}));
  EXPECT_FALSE(d.pp.avail().parked(piece_index{1}));
  EXPECT_EQ(d.pp.avail().pickable(), 3u);
  // Still rarest first.
  EXPECT_EQ(d.pick(C, 2), "1.0 1.1");
  EXPECT_EQ(d.pick(B, 4), "1.2 1.3 0.0 0.1");
  EXPECT_EQ(d.pp.downloading_count(), 2u);
}

TEST(piece_picker, a_block_in_flight_at_two_peers_keeps_its_piece_until_both_drop_it) {
  driver d(make(1));
  d.add(A, "1");
  d.add(B, "1");
  EXPECT_EQ(d.pick(A, 4), "0.0 0.1 0.2 0.3");
  EXPECT_EQ(d.pick(B, 1), "0.0"); // end-game duplicate
  for (std::uint32_t i = 0; i < 4; ++i)
    d.drop(A, blk(0, i));
  EXPECT_TRUE(d.pp.avail().parked(piece_index{0}));
  EXPECT_EQ(d.pp.downloading_count(), 1u);
  EXPECT_EQ(d.pick(A, 2), "0.1 0.2"); // the free blocks, not B's
  d.drop(A, blk(0, 1));
  d.drop(A, blk(0, 2));
  d.drop(B, blk(0, 0));
  EXPECT_FALSE(d.pp.avail().parked(piece_index{0}));
  EXPECT_EQ(d.pp.downloading_count(), 0u);
  EXPECT_EQ(d.pick(B, 4), "0.0 0.1 0.2 0.3");
}

// -- hash failures -----------------------------------------------------------------------------

TEST(piece_picker, failed_piece_goes_on_parole) {
  driver d(make(3));
  for (peer_slot p : {A, B, C, D})
    d.add(p, "111");
  d.add(E, "011"); // availability 4 5 5
  EXPECT_EQ(d.pick(A, 2), "0.0 0.1");
  EXPECT_EQ(d.pick(B, 2), "0.2 0.3");
  EXPECT_EQ(d.receive(A, blk(0, 0)), "fresh");
  EXPECT_EQ(d.receive(B, blk(0, 3)), "fresh");
  EXPECT_EQ(d.receive(B, blk(0, 2)), "fresh");
  EXPECT_EQ(d.receive(A, blk(0, 1)), "piece_complete");
  EXPECT_EQ(d.pp.dirty_bytes(), 4u * K);

  d.failed(0);
  EXPECT_EQ(d.pp.dirty_bytes(piece_index{0}), 0u);
  EXPECT_EQ(d.pp.dirty_bytes(), 0u);
  EXPECT_FALSE(d.pp.have(piece_index{0}));
  EXPECT_EQ(d.pp.have_count(), 0u);
  EXPECT_EQ(d.pp.verified_bytes(), 0u);
  EXPECT_EQ(d.pp.downloading_count(), 1u);
  EXPECT_TRUE(d.pp.avail().parked(piece_index{0}));

  // Parole: the first peer to pick it afterwards gets it, nobody else.
  EXPECT_EQ(d.pick(C, 2), "0.0 0.1");
  auto other = d.pick_refs(D, 4);
  ASSERT_EQ(other.size(), 4u);
  EXPECT_EQ(pieces_of(other).count(0), 0u) << show(other);
  EXPECT_EQ(d.pick(C, 2), "0.2 0.3");
  auto rest = d.pick_refs(A, 4); // starts the last piece
  ASSERT_EQ(rest.size(), 4u);
  EXPECT_EQ(pieces_of(rest).count(0), 0u) << show(rest);
  EXPECT_EQ(d.pp.avail().pickable(), 0u);
  // End-game: duplicates of everything but the piece on parole.
  auto dup = d.pick_refs(B, 100);
  EXPECT_EQ(dup.size(), 8u) << show(dup);
  EXPECT_EQ(pieces_of(dup).count(0), 0u) << show(dup);
  EXPECT_EQ(d.pick(C, 100), ""); // its own blocks are not duplicated to it; the rest are taken

  // C alone delivers it: if it fails again, C alone is named.
  EXPECT_EQ(d.receive_piece(C, 0), "piece_complete");
  d.failed(0);
  EXPECT_EQ(d.pick(E, 4), ""); // E lacks piece 0; everything else has two requesters
  EXPECT_EQ(d.pick(D, 4), "0.0 0.1 0.2 0.3");
  EXPECT_EQ(d.receive_piece(D, 0), "piece_complete");
  d.verified(0);
  EXPECT_TRUE(d.pp.have(piece_index{0}));
  EXPECT_EQ(d.pp.verified_bytes(), std::uint64_t{piece4});
}

TEST(piece_picker, parole_passes_on_when_the_peer_gives_everything_back) {
  driver d(make(2));
  for (peer_slot p : {A, B, C})
    d.add(p, "11");
  d.add(D, "01");
  EXPECT_EQ(d.pick(A, 4), "0.0 0.1 0.2 0.3");
  EXPECT_EQ(d.receive_piece(A, 0), "piece_complete");
  d.failed(0);
  EXPECT_EQ(d.pick(B, 4), "0.0 0.1 0.2 0.3");
  for (std::uint32_t i = 0; i < 4; ++i)
    d.drop(B, blk(0, i));
  // Still on parole (not back to pickable), but for the next peer.
  EXPECT_EQ(d.pp.downloading_count(), 1u);
  EXPECT_TRUE(d.pp.avail().parked(piece_index{0}));
  EXPECT_EQ(d.pick(C, 2), "0.0 0.1");
  EXPECT_EQ(d.pick(B, 4), "1.0 1.1 1.2 1.3");
}

TEST(piece_picker, failing_a_piece_that_was_not_downloading_downloads_it_again) {
  driver d(make(2));
  d.add(A, "11");
  d.failed(1);
  EXPECT_EQ(d.pp.downloading_count(), 1u);
  EXPECT_EQ(d.pick(A, 8), "1.0 1.1 1.2 1.3 0.0 0.1 0.2 0.3");
}

// -- resume data and interest ------------------------------------------------------------------

TEST(piece_picker, set_have_marks_pieces_held) {
  driver d(make(4, 1000));
  d.add(A, "1111");
  d.pp.set_have(piece_index{1});
  EXPECT_TRUE(d.consistent());
  EXPECT_TRUE(d.pp.have(piece_index{1}));
  EXPECT_EQ(d.pp.have_count(), 1u);
  EXPECT_EQ(d.pp.verified_bytes(), std::uint64_t{piece4});
  EXPECT_TRUE(d.pp.avail().parked(piece_index{1}));
  d.pp.set_have(piece_index{1}); // twice: nothing changes
  EXPECT_EQ(d.pp.have_count(), 1u);
  EXPECT_EQ(d.pp.verified_bytes(), std::uint64_t{piece4});
  d.pp.set_have(piece_index{3}); // the short last piece
  EXPECT_EQ(d.pp.verified_bytes(), piece4 + 1000u);

  auto got = d.pick_refs(A, 100);
  EXPECT_EQ(pieces_of(got), (std::set<std::uint32_t>{0, 2}));
  EXPECT_EQ(got.size(), 8u);

  // A piece being downloaded: its received bytes are no longer dirty.
  EXPECT_EQ(d.receive(A, blk(0, 0)), "fresh");
  EXPECT_EQ(d.receive(A, blk(2, 3)), "fresh");
  EXPECT_EQ(d.pp.dirty_bytes(), 2u * K);
  d.pp.set_have(piece_index{0});
  EXPECT_TRUE(d.consistent());
  EXPECT_EQ(d.pp.dirty_bytes(), std::uint64_t{K});
  EXPECT_EQ(d.pp.dirty_bytes(piece_index{0}), 0u);
  EXPECT_EQ(d.pp.downloading_count(), 1u);
  EXPECT_EQ(d.pp.have_count(), 3u);
  EXPECT_EQ(d.receive(A, blk(0, 1)), "duplicate");
  d.drop(A, blk(0, 2)); // a request still out for it: harmless
  EXPECT_EQ(d.pp.verified_bytes(), 2ull * piece4 + 1000);
  d.pp.set_have(piece_index{2});
  EXPECT_TRUE(d.pp.complete());
  EXPECT_EQ(d.pp.verified_bytes(), 3ull * piece4 + 1000);
  EXPECT_EQ(d.pp.dirty_bytes(), 0u);
  EXPECT_TRUE(d.consistent());
}

TEST(piece_picker, is_interesting) {
  driver d(make(4));
  EXPECT_TRUE(d.pp.is_interesting(nullptr));
  EXPECT_FALSE(d.pp.is_interesting(&d.peers.emplace(A, bits("0000")).first->second));
  EXPECT_TRUE(d.pp.is_interesting(&d.peers.emplace(B, bits("0010")).first->second));
  d.pp.set_have(piece_index{2});
  EXPECT_FALSE(d.pp.is_interesting(d.has(B)));
  auto late = bits("0011");
  EXPECT_TRUE(d.pp.is_interesting(&late));
  late = bits("1000");
  EXPECT_TRUE(d.pp.is_interesting(&late));
  // Downloading is not holding: a peer with a started piece stays interesting.
  d.add(C, "0001");
  EXPECT_EQ(d.pick(C, 4), "3.0 3.1 3.2 3.3");
  EXPECT_TRUE(d.pp.is_interesting(d.has(C)));
  for (std::uint32_t p : {0u, 1u, 3u})
    d.pp.set_have(piece_index{p});
  EXPECT_TRUE(d.pp.complete());
  EXPECT_FALSE(d.pp.is_interesting(nullptr));
  late = bits("1111");
  EXPECT_FALSE(d.pp.is_interesting(&late));
  EXPECT_TRUE(d.consistent());
}

TEST(piece_picker, availability_follows_bitfields) {
  driver d(make(4));
  d.add(A, "1101");
  d.add(B, "0101");
  EXPECT_EQ(d.pp.avail().count(piece_index{0}), 1u);
  EXPECT_EQ(d.pp.avail().count(piece_index{1}), 2u);
  EXPECT_EQ(d.pp.avail().count(piece_index{2}), 0u);
  EXPECT_EQ(d.pp.availability_updates(), 5u);
  d.pp.remove_peer_pieces(d.peers.at(A));
  EXPECT_TRUE(d.consistent());
  EXPECT_EQ(d.pp.avail().count(piece_index{0}), 0u);
  EXPECT_EQ(d.pp.avail().count(piece_index{1}), 1u);
  EXPECT_EQ(d.pp.availability_updates(), 8u);
}

TEST(piece_picker, the_last_copy_of_a_block_is_the_one_recorded) {
  // Storage keeps the last copy of a block; the picker records that copy's number, so a later
  // take-back names the copy that is on disk, not one that was overwritten.
  driver d(make(1));
  d.add(A, "1");
  d.add(B, "1");
  EXPECT_EQ(d.pick(A, 2), "0.0 0.1");
  EXPECT_EQ(d.receive(A, blk(0, 0)), "fresh");  // copy 1
  EXPECT_EQ(d.receive(B, blk(0, 0)), "duplicate"); // copy 2 replaces it on disk
  d.failed(0); // now on parole
  EXPECT_EQ(d.pick(A, 1), "0.0");
  EXPECT_EQ(d.receive(A, blk(0, 0)), "fresh");     // copy 3
  EXPECT_EQ(d.receive(A, blk(0, 0)), "duplicate"); // copy 4 (asked twice): the last copy wins
  d.drop(A, blk(0, 1)); // A's request from the first round is rejected
  // A has nothing of the piece in flight; B takes over and the copy on disk (4) is what storage must drop.
  EXPECT_EQ(d.pick(B, 4), "0.0 0.1 0.2 0.3");
  ASSERT_EQ(d.pp.taken_back().size(), 1u);
  EXPECT_EQ(d.pp.taken_back()[0].copy, 4u);
}

TEST(piece_picker, parole_passes_on_when_the_peer_leaves_halfway) {
  // The peer on parole asked for half the piece, got it, and disconnected: nothing of the piece
  // is in flight, so no dropped request tells the picker. Nobody else may add to its half, so
  // the next peer to pick the piece drops that half and takes the whole piece over (before the
  // fix the piece waited for the departed peer forever).
  driver d(make(2));
  for (peer_slot p : {A, B, C})
    d.add(p, "11");
  d.add(D, "01");
  EXPECT_EQ(d.pick(A, 4), "0.0 0.1 0.2 0.3");
  EXPECT_EQ(d.receive_piece(A, 0), "piece_complete");
  d.failed(0);
  EXPECT_EQ(d.pick(B, 2), "0.0 0.1");
  EXPECT_EQ(d.pick(C, 4), "1.0 1.1 1.2 1.3"); // B has 0.0 and 0.1 in flight: its piece
  EXPECT_EQ(d.receive(B, blk(0, 0)), "fresh");
  EXPECT_EQ(d.pick(C, 4), "");
  EXPECT_EQ(d.receive(B, blk(0, 1)), "fresh");
  d.pp.remove_peer_pieces(d.peers.at(B));
  d.peers.erase(B);
  EXPECT_TRUE(d.consistent());
  EXPECT_EQ(d.pp.dirty_bytes(piece_index{0}), 2u * K);

  EXPECT_EQ(d.pick(D, 4), "1.0 1.1 1.2 1.3"); // D lacks piece 0: end-game duplicates of C's
  EXPECT_TRUE(d.pp.taken_back().empty());
  EXPECT_EQ(d.pick(C, 8), "0.0 0.1 0.2 0.3");
  // Storage must drop B's two copies too (copies 5 and 6: A's first attempt had 1 to 4), or its
  // count of the piece's blocks would run ahead of the picker's.
  ASSERT_EQ(d.pp.taken_back().size(), 2u);
  EXPECT_EQ(d.pp.taken_back()[0].block, blk(0, 0));
  EXPECT_EQ(d.pp.taken_back()[0].copy, 5u);
  EXPECT_EQ(d.pp.taken_back()[1].block, blk(0, 1));
  EXPECT_EQ(d.pp.taken_back()[1].copy, 6u);
  d.pp.taken_back().clear();
  EXPECT_EQ(d.pp.dirty_bytes(piece_index{0}), 0u);
  EXPECT_EQ(d.pp.dirty_bytes(), 0u);
  EXPECT_EQ(d.pick(A, 8), ""); // still on parole: C's alone, and no duplicates of it
  EXPECT_EQ(d.receive_piece(C, 0), "piece_complete");
  d.failed(0); // nothing of B's is left in it
}

TEST(piece_picker, parole_passes_on_when_the_peer_chokes_halfway) {
  driver d(make(1));
  d.add(A, "1");
  d.add(B, "1");
  EXPECT_EQ(d.pick(A, 4), "0.0 0.1 0.2 0.3");
  EXPECT_EQ(d.receive_piece(A, 0), "piece_complete");
  d.failed(0);
  EXPECT_EQ(d.pick(A, 3), "0.0 0.1 0.2");
  EXPECT_EQ(d.receive(A, blk(0, 1)), "fresh");
  EXPECT_EQ(d.pick(B, 4), ""); // A's piece
  d.drop(A, blk(0, 0));
  EXPECT_EQ(d.pick(B, 4), ""); // 0.2 still in flight at A
  d.drop(A, blk(0, 2)); // choked: nothing in flight, a quarter of it received
  EXPECT_EQ(d.pp.dirty_bytes(), std::uint64_t{K});
  EXPECT_EQ(d.pick(B, 4), "0.0 0.1 0.2 0.3");
  ASSERT_EQ(d.pp.taken_back().size(), 1u);
  EXPECT_EQ(d.pp.taken_back()[0].block, blk(0, 1));
  EXPECT_EQ(d.pp.taken_back()[0].copy, 5u);
  EXPECT_EQ(d.pp.dirty_bytes(), 0u);
  EXPECT_EQ(d.pick(A, 4), "");
  EXPECT_EQ(d.receive_piece(B, 0), "piece_complete");
  d.failed(0);
}

// -- a whole swarm -----------------------------------------------------------------------------

namespace {

// 20 peers with random bitfields over 300 pieces (every piece held by an honest peer), one of
// them a liar whose blocks always fail the hash check, optionally a seed. Random picks, receipts
// in any order, dropped requests (single rejects and whole chokes), disconnects (the peer comes
// back under a new slot), verifications and failures (the liar's blocks, plus 5% corruption),
// all checked against a model of what every peer has in flight and who sent which block.
void run_swarm(std::uint64_t rng_seed, bool with_seed) {
  constexpr std::uint32_t pieces = 300, peer_count = 20;
  constexpr std::uint32_t piece_length = 40000; // blocks of 16384, 16384, 7232
  constexpr std::uint64_t total = std::uint64_t{piece_length} * (pieces - 1) + 20000;
  constexpr peer_slot liar = 3;
  std::mt19937_64 rng(rng_seed);
  auto chance = [&](unsigned percent) { return rng() % 100 < percent; };

  piece_picker pp(pieces, piece_length, total, rng_seed);
  request_record rec; // kept as the torrent keeps it
  const request_record::clock::time_point t0{};
  struct peer {
    bitfield has;
    bool seed = false;
    bool gone = false;
    std::vector<block_ref> outstanding;
  };
  std::vector<peer> peers(peer_count); // indexed by slot; slots are never reused
  std::vector<peer_slot> active;       // connected slots
  for (peer_slot s = 0; s < peer_count; ++s) {
    peers[s].has = bitfield(pieces);
    peers[s].seed = with_seed && s == peer_count - 1;
    unsigned density = 5 + static_cast<unsigned>(rng() % 50);
    for (std::uint32_t p = 0; p < pieces; ++p)
      if (peers[s].seed || chance(density))
        peers[s].has.set(piece_index{p});
  }
  for (std::uint32_t p = 0; p < pieces; ++p) {
    peer_slot s;
    do
      s = static_cast<peer_slot>(rng() % peer_count);
    while (s == liar);
    peers[s].has.set(piece_index{p});
  }
  auto connect = [&](peer_slot s) {
    if (peers[s].seed)
      pp.avail().add_seed();
    else
      pp.add_peer_pieces(peers[s].has);
    rec.add_peer(s, 1u << 20);
    active.push_back(s);
  };
  for (peer_slot s = 0; s < peer_count; ++s)
    connect(s);
  ASSERT_TRUE(pp.consistent());

  // Model: who sent each block of each piece not yet verified; pieces awaiting their hash; the
  // peer each piece on parole belongs to.
  std::vector<std::vector<peer_slot>> sender(pieces);
  for (std::uint32_t p = 0; p < pieces; ++p)
    sender[p].assign(pp.blocks_in_piece(piece_index{p}), no_peer);
  bitfield held(pieces);
  std::vector<std::uint32_t> awaiting_hash;
  std::vector<peer_slot> parole(pieces, no_peer);
  std::vector<bool> on_parole(pieces, false);
  int failures = 0, bans = 0, reconnects = 0, parole_handovers = 0, end_game_picks = 0;

  auto holders = [&](block_ref b) {
    std::set<peer_slot> out;
    for (auto s : active)
      if (std::find(peers[s].outstanding.begin(), peers[s].outstanding.end(), b) !=
          peers[s].outstanding.end())
        out.insert(s);
    return out;
  };
  auto in_flight = [&](std::uint32_t p) {
    for (auto s : active)
      for (auto b : peers[s].outstanding)
        if (b.piece.value == p)
          return true;
    return false;
  };
  auto drop = [&](peer_slot s, std::size_t i) {
    auto& o = peers[s].outstanding;
    auto b = o[i];
    o.erase(o.begin() + static_cast<std::ptrdiff_t>(i));
    ASSERT_TRUE(rec.remove(s, b));
    pp.on_request_dropped(b, rec);
  };
  auto disconnect = [&](peer_slot s) {
    while (!peers[s].outstanding.empty())
      drop(s, peers[s].outstanding.size() - 1);
    if (peers[s].seed)
      pp.avail().remove_seed();
    else
      pp.remove_peer_pieces(peers[s].has);
    ASSERT_TRUE(rec.remove_peer(s).empty());
    peers[s].gone = true;
    active.erase(std::find(active.begin(), active.end(), s));
  };
  auto check_model = [&](std::uint64_t step) {
    ASSERT_EQ(pp.have_count(), held.count()) << "step " << step;
    std::uint64_t dirty = 0, verified = 0;
    for (std::uint32_t p = 0; p < pieces; ++p) {
      piece_index pi{p};
      ASSERT_EQ(pp.have(pi), held.test(pi)) << "piece " << p << " step " << step;
      std::uint64_t piece_dirty = 0;
      for (std::uint32_t i = 0; i < sender[p].size(); ++i)
        if (sender[p][i] != no_peer)
          piece_dirty += pp.block_length(block_ref{pi, i});
      ASSERT_EQ(pp.dirty_bytes(pi), piece_dirty) << "piece " << p << " step " << step;
      dirty += piece_dirty;
      if (held.test(pi))
        verified += pp.piece_size(pi);
    }
    ASSERT_EQ(pp.dirty_bytes(), dirty) << "step " << step;
    ASSERT_EQ(pp.verified_bytes(), verified) << "step " << step;
  };

  std::uint64_t step = 0, last_progress = 0;
  std::vector<block_ref> out;
  std::vector<peer_slot> cancels;
  for (; !pp.complete(); ++step) {
    if (step - last_progress >= 100000u) {
      for (std::uint32_t p = 0; p < pieces; ++p) {
        if (held.test(piece_index{p}))
          continue;
        std::cout << "piece " << p << " parole " << on_parole[p] << " peer " << parole[p]
                  << " senders";
        for (auto x : sender[p])
          std::cout << " " << x;
        std::cout << " holders";
        for (auto x : active)
          if (peers[x].has.test(piece_index{p}))
            std::cout << " " << x << (x == liar ? "(liar)" : "");
        std::cout << " in flight " << in_flight(p) << "\n";
      }
    }
    ASSERT_LT(step - last_progress, 100000u)
      << "stalled: " << pp.have_count() << " of " << pieces << " pieces held, "
      << pp.downloading_count() << " downloading, " << awaiting_hash.size() << " awaiting hash";
    auto s = active[rng() % active.size()];
    auto& e = peers[s];
    auto action = rng() % 100;
    if (action < 35) { // pick
      out.clear();
      std::size_t max = 1 + rng() % 12;
      auto n = pp.pick(s, e.seed ? nullptr : &e.has, max, rec, out);
      ASSERT_EQ(n, out.size());
      ASSERT_LE(n, max);
      bool duplicate = false;
      for (auto b : out) {
        auto p = b.piece.value;
        ASSERT_TRUE(e.has.test(b.piece)) << "peer " << s << " lacks piece " << p;
        ASSERT_FALSE(held.test(b.piece)) << "piece " << p << " is held";
        ASSERT_LT(b.block, sender[p].size());
        if (on_parole[p] && parole[p] != s) {
          // Another peer may take it over only when nothing of it is in flight; what the
          // previous one sent is then dropped.
          ASSERT_FALSE(in_flight(p)) << "piece " << p << " on parole went to a second peer";
          if (std::count(sender[p].begin(), sender[p].end(), no_peer) <
              static_cast<std::ptrdiff_t>(sender[p].size()))
            ++parole_handovers;
          std::fill(sender[p].begin(), sender[p].end(), no_peer);
          parole[p] = s;
        }
        ASSERT_EQ(sender[p][b.block], no_peer) << "block " << p << "." << b.block << " is in";
        auto h = holders(b);
        ASSERT_EQ(h.count(s), 0u) << "block " << p << "." << b.block << " twice to " << s;
        ASSERT_LE(h.size(), 1u) << "block " << p << "." << b.block << " to a third peer";
        duplicate = duplicate || !h.empty();
        e.outstanding.push_back(b);
        ASSERT_TRUE(rec.add(s, b, t0));
      }
      if (duplicate) {
        ASSERT_FALSE(pp.avail().any_pickable_available()) << "end-game too early";
        ++end_game_picks;
      }
    } else if (action < 70) { // receive one block
      if (e.outstanding.empty())
        continue;
      std::size_t i = chance(70) ? 0 : rng() % e.outstanding.size();
      auto b = e.outstanding[i];
      e.outstanding.erase(e.outstanding.begin() + static_cast<std::ptrdiff_t>(i));
      auto expected_cancels = holders(b);
      cancels.clear();
      ASSERT_TRUE(rec.on_received(s, b, t0));
      auto r = pp.on_block_received(b, static_cast<std::uint32_t>(step + 1), s);
      for (auto other : rec.requesters(b)) {
        ASSERT_TRUE(rec.remove(other, b));
        cancels.push_back(other);
      }
      auto p = b.piece.value;
      ASSERT_EQ(sender[p][b.block], no_peer);
      sender[p][b.block] = s;
      bool complete = std::count(sender[p].begin(), sender[p].end(), no_peer) == 0;
      ASSERT_EQ(r, complete ? piece_picker::receive_result::piece_complete
                            : piece_picker::receive_result::fresh)
        << "block " << p << "." << b.block << " step " << step;
      ASSERT_EQ(std::set<peer_slot>(cancels.begin(), cancels.end()), expected_cancels);
      ASSERT_EQ(cancels.size(), expected_cancels.size());
      for (auto c : cancels) {
        auto& o = peers[c].outstanding;
        o.erase(std::find(o.begin(), o.end(), b));
      }
      if (complete)
        awaiting_hash.push_back(p);
      last_progress = step;
    } else if (action < 83) { // reject one request, or choke: drop them all
      if (e.outstanding.empty())
        continue;
      if (chance(50))
        drop(s, rng() % e.outstanding.size());
      else
        while (!e.outstanding.empty())
          drop(s, e.outstanding.size() - 1);
    } else if (action < 85) { // disconnect; an honest peer comes back under a new slot
      if (s == liar)
        continue;
      disconnect(s);
      peers.push_back(peer{peers[s].has, peers[s].seed, false, {}});
      connect(static_cast<peer_slot>(peers.size() - 1));
      ++reconnects;
    } else { // hash check of a complete piece
      if (awaiting_hash.empty())
        continue;
      auto i = rng() % awaiting_hash.size();
      auto p = awaiting_hash[i];
      awaiting_hash.erase(awaiting_hash.begin() + static_cast<std::ptrdiff_t>(i));
      std::set<peer_slot> senders(sender[p].begin(), sender[p].end());
      std::fill(sender[p].begin(), sender[p].end(), no_peer);
      if (senders.count(liar) || chance(5)) {
        ++failures;
        pp.on_piece_failed(piece_index{p});
        if (on_parole[p]) {
          ASSERT_EQ(senders.size(), 1u) << "piece " << p << " was on parole";
        }
        on_parole[p] = true;
        parole[p] = no_peer;
        if (senders == std::set<peer_slot>{liar} && !peers[liar].gone) {
          ++bans; // caught alone: banned, as the torrent does
          disconnect(liar);
        }
      } else {
        pp.on_piece_verified(piece_index{p});
        held.set(piece_index{p});
        on_parole[p] = false;
        last_progress = step;
      }
    }
    ASSERT_TRUE(pp.consistent(&rec)) << "step " << step;
    ASSERT_EQ(rec.total(), [&] {
      std::size_t n = 0;
      for (auto s2 : active)
        n += peers[s2].outstanding.size();
      return n;
    }()) << "step " << step;
    if (step % 1000 == 0) {
      check_model(step);
      if (::testing::Test::HasFatalFailure())
        return;
    }
  }
  check_model(step);
  EXPECT_TRUE(pp.complete());
  EXPECT_EQ(pp.have_count(), pieces);
  EXPECT_EQ(pp.verified_bytes(), total);
  EXPECT_EQ(pp.dirty_bytes(), 0u);
  EXPECT_EQ(pp.downloading_count(), 0u);
  EXPECT_TRUE(awaiting_hash.empty());
  for (auto s : active)
    EXPECT_TRUE(peers[s].outstanding.empty()) << "peer " << s << " still has requests";
  // The run went through what it is meant to.
  EXPECT_GT(failures, 5);
  EXPECT_EQ(bans, 1); // the liar was caught alone on parole
  EXPECT_GT(reconnects, 10);
  EXPECT_GT(parole_handovers, 0);
  EXPECT_GT(end_game_picks, 0);
  std::cout << "[ swarm    ] seed " << rng_seed << (with_seed ? " with a seed" : "") << ": "
            << step << " steps, " << failures << " hash failures, " << bans << " ban(s), "
            << reconnects << " reconnects, " << parole_handovers
            << " parole pieces handed over half-done, " << end_game_picks
            << " end-game picks with duplicates\n";
}

} // namespace

TEST(piece_picker, random_swarm_downloads_everything) {
  for (std::uint64_t s : {1u, 2u, 3u, 4u}) {
    run_swarm(s, false);
    if (HasFatalFailure())
      return;
  }
}

TEST(piece_picker, random_swarm_with_a_seed_downloads_everything) {
  for (std::uint64_t s : {5u, 6u}) {
    run_swarm(s, true);
    if (HasFatalFailure())
      return;
  }
}

// The benchmark's slower variant must make the same choices when availability has no ties:
// only the way the rarest-first order is found differs.
TEST(piece_picker, recomputed_order_picks_what_the_buckets_pick) {
  for (bool recompute : {false, true}) {
    driver d(make(6));
    d.pp.recompute_from_scratch(recompute);
    d.add(A, "111111");
    d.add(B, "011111");
    d.add(C, "001111");
    d.add(D, "000111");
    d.add(E, "000011");
    // counts: piece 0:1, 1:2, 2:3, 3:4, 4:5, 5:5 -> A (has all) starts the rarest two first
    std::vector<block_ref> out;
    d.raw_pick(A, 8, out);
    EXPECT_EQ(show(out), "0.0 0.1 0.2 0.3 1.0 1.1 1.2 1.3") << "recompute=" << recompute;
    out.clear();
    // C lacks 0 and 1 (already started by A anyway): its next rarest is 2
    d.raw_pick(C, 4, out);
    EXPECT_EQ(show(out), "2.0 2.1 2.2 2.3") << "recompute=" << recompute;
    EXPECT_TRUE(d.consistent());
  }
}

// -- priorities (file selection) ---------------------------------------------------------------

namespace {

// "snh" -> skip, normal, high per piece.
std::vector<file_priority> prios(std::string_view s) {
  std::vector<file_priority> out;
  for (char c : s)
    out.push_back(c == 's' ? file_priority::skip
                           : c == 'h' ? file_priority::high : file_priority::normal);
  return out;
}

void set_prios(driver& d, std::string_view s) {
  d.pp.set_priorities(prios(s));
  EXPECT_TRUE(d.consistent());
}

} // namespace

TEST(piece_picker, skip_pieces_are_never_requested_and_not_needed_to_complete) {
  driver d(make(4));
  d.add_seed();
  constexpr peer_slot S = 7;
  set_prios(d, "nssn");
  EXPECT_EQ(d.pp.wanted_left(), 2u);
  EXPECT_EQ(d.pp.wanted_bytes(), 2ull * piece4);
  EXPECT_EQ(pieces_of(d.pick_refs(S, 100)), (std::set<std::uint32_t>{0, 3}));
  EXPECT_EQ(d.pick(S, 100), ""); // no end-game duplicates to the same peer, no skip pieces
  d.receive_piece(S, 0);
  d.verified(0);
  EXPECT_FALSE(d.pp.complete());
  d.receive_piece(S, 3);
  d.verified(3);
  EXPECT_TRUE(d.pp.complete());
  EXPECT_EQ(d.pp.have_count(), 2u);
  EXPECT_FALSE(d.pp.is_interesting(nullptr));
  EXPECT_EQ(d.pick(S, 100), "");
}

TEST(piece_picker, a_peer_with_only_skipped_pieces_is_not_interesting) {
  driver d(make(4));
  d.add(A, "0110");
  d.add(B, "0001");
  set_prios(d, "nssn");
  EXPECT_FALSE(d.pp.is_interesting(d.has(A)));
  EXPECT_TRUE(d.pp.is_interesting(d.has(B)));
  EXPECT_EQ(d.pick(A, 100), "");
  EXPECT_EQ(d.pick(B, 100), "3.0 3.1 3.2 3.3");
}

TEST(piece_picker, high_pieces_are_started_before_rarer_normal_ones) {
  driver d(make(4));
  d.add(A, "1111");
  d.add(B, "1110");
  d.add(C, "1100");
  d.add(D, "1000"); // availability 4 3 2 1: rarest first would take 3, 2, 1, 0
  set_prios(d, "hnnn");
  EXPECT_EQ(d.pick(A, 4), "0.0 0.1 0.2 0.3"); // the most common piece, but high
  EXPECT_EQ(d.pick(A, 4), "3.0 3.1 3.2 3.3"); // then rarest first again
  set_prios(d, "hhnn");
  EXPECT_EQ(d.pick(A, 4), "1.0 1.1 1.2 1.3"); // raised while 2 is rarer
  EXPECT_EQ(d.pick(A, 4), "2.0 2.1 2.2 2.3");
}

TEST(piece_picker, sequential_starts_pieces_in_index_order) {
  driver d(make(6));
  d.add(A, "111111");
  d.add(B, "000011"); // rarest first would start 0..3 before 4 and 5 only by chance
  d.pp.set_sequential(true);
  set_prios(d, "nnsnnn");
  d.pp.set_have(piece_index{0});
  EXPECT_EQ(d.pick(A, 6), "1.0 1.1 1.2 1.3 3.0 3.1"); // 0 held, 2 skipped
  EXPECT_EQ(d.pick(A, 4), "3.2 3.3 4.0 4.1");         // started ones first, then in order
  EXPECT_EQ(d.pick(B, 4), "4.2 4.3 5.0 5.1");
  // Dropped requests make a piece pickable again, ahead of later ones (after what is started).
  d.drop(A, {blk(1, 0), blk(1, 1), blk(1, 2), blk(1, 3)});
  EXPECT_EQ(d.pick(A, 6), "5.2 5.3 1.0 1.1 1.2 1.3");
}

TEST(piece_picker, a_wider_selection_makes_skipped_pieces_wanted_again) {
  driver d(make(3));
  d.add_seed();
  constexpr peer_slot S = 7;
  set_prios(d, "nss");
  EXPECT_EQ(d.pick(S, 100), "0.0 0.1 0.2 0.3");
  d.receive_piece(S, 0);
  d.verified(0);
  EXPECT_TRUE(d.pp.complete());
  set_prios(d, "nnn");
  EXPECT_FALSE(d.pp.complete());
  EXPECT_EQ(d.pp.wanted_left(), 2u);
  EXPECT_TRUE(d.pp.is_interesting(nullptr));
  EXPECT_EQ(pieces_of(d.pick_refs(S, 100)), (std::set<std::uint32_t>{1, 2}));
}

TEST(piece_picker, a_piece_deselected_while_downloading_is_finished_but_not_needed) {
  driver d(make(3));
  d.add_seed();
  constexpr peer_slot S = 7;
  auto first = d.pick_refs(S, 2); // one piece started, half requested
  ASSERT_EQ(first.size(), 2u);
  auto p = first[0].piece.value;
  std::string s = "nnn";
  s[p] = 's';
  set_prios(d, s);
  EXPECT_EQ(d.pp.downloading_count(), 1u);
  EXPECT_EQ(d.pp.wanted_left(), 2u);
  // Its requests are dropped: it does not become pickable (it is skip now).
  d.drop(S, first);
  EXPECT_EQ(d.pp.downloading_count(), 0u);
  EXPECT_TRUE(d.pp.avail().parked(piece_index{p}));
  auto rest = d.pick_refs(S, 100);
  EXPECT_EQ(pieces_of(rest).count(p), 0u);
  EXPECT_EQ(pieces_of(rest).size(), 2u);
}

TEST(piece_picker, held_skip_pieces_do_not_count_as_wanted) {
  driver d(make(4));
  set_prios(d, "snns");
  d.pp.set_have(piece_index{0}); // from resume data of an earlier, wider selection
  EXPECT_TRUE(d.consistent());
  EXPECT_EQ(d.pp.wanted_left(), 2u);
  EXPECT_EQ(d.pp.have_count(), 1u);
  EXPECT_EQ(d.pp.wanted_verified_bytes(), 0u);
  d.pp.set_have(piece_index{1});
  d.pp.set_have(piece_index{2});
  EXPECT_TRUE(d.pp.complete());
  EXPECT_EQ(d.pp.wanted_verified_bytes(), d.pp.wanted_bytes());
  set_prios(d, "nnnn"); // 0 is held already: only 3 is left
  EXPECT_EQ(d.pp.wanted_left(), 1u);
  EXPECT_EQ(d.pp.wanted_verified_bytes(), 3ull * piece4);
  EXPECT_EQ(d.pp.wanted_bytes(), 4ull * piece4);
  set_prios(d, "snss");
  EXPECT_EQ(d.pp.wanted_verified_bytes(), std::uint64_t{piece4});
  EXPECT_TRUE(d.pp.complete());
}

TEST(piece_picker, a_peer_without_the_high_pieces_gets_normal_ones) {
  driver d(make(4));
  d.add(A, "0111");
  d.add(B, "1111"); // availability 1 2 2 2
  set_prios(d, "hnnn");
  auto a = d.pick_refs(A, 4); // A lacks the high piece 0: a normal one
  ASSERT_EQ(a.size(), 4u);
  EXPECT_NE(a[0].piece.value, 0u);
  EXPECT_EQ(d.pick(B, 4), "0.0 0.1 0.2 0.3"); // B has it: high first, though rarest too
  set_prios(d, "snnh"); // the started piece 0 deselected, 3 raised
  auto b = d.pick_refs(B, 4);
  ASSERT_EQ(b.size(), 4u);
  if (a[0].piece.value != 3) {
    EXPECT_EQ(b[0].piece.value, 3u) << show(b); // the raised piece, before rarer ones
  }
  EXPECT_NE(b[0].piece.value, 0u) << show(b);   // the deselected one is not restarted
}
