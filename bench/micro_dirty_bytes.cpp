// Dirty bytes of a piece (received, not yet verified): one roaring range-cardinality call over
// the bitmap of received global block numbers — what piece_picker::dirty_bytes does — against
// a per-block loop that tests each block of the piece, with the bitmap (Roaring::contains) or
// with a std::vector<bool> of received blocks.
//
// Geometry: 16 KiB blocks, 1,024 pieces of 4 MiB (256 blocks) or 16 MiB (1,024 blocks). 64
// pieces spread over the torrent are downloading, each with 25 %, 50 % or 100 % of its blocks
// received, either
//   random      a random subset of the piece's blocks (many peers, out-of-order arrival), or
//   run         the first blocks of the piece in order (one peer's pipeline), runOptimize()d.
// One iteration asks for the dirty bytes of all 64 pieces (items = pieces). The picker's
// correction for a short last block is left out: every piece here is full-size. The
// range_cardinality variants also report how many array, bitset and run containers the bitmap
// has: a range count is rank(end) - rank(begin) inside a container, and on a bitset container
// CRoaring's rank popcounts from the container's first word, so its cost depends on where the
// piece sits in its 65,536-block container, not only on the piece's size.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <roaring/roaring.hh>

#include "protocol/types.hpp"

namespace {

using namespace actorrent;

constexpr std::uint32_t torrent_pieces = 1024;
constexpr std::uint32_t downloading = 64;

struct fixture {
  std::uint32_t blocks_per_piece;
  std::vector<std::uint32_t> pieces; // the downloading ones
  Roaring received;
  std::vector<bool> received_bits;
  std::uint64_t expected = 0; // total dirty bytes, checked by every variant

  fixture(std::uint32_t piece_mib, std::uint32_t percent, bool run_ordered)
    : blocks_per_piece(piece_mib * 1024 * 1024 / block_size),
      received_bits(std::size_t{torrent_pieces} * blocks_per_piece, false) {
    std::mt19937 rng(piece_mib * 1000 + percent * 10 + run_ordered);
    std::vector<std::uint32_t> all(torrent_pieces);
    std::iota(all.begin(), all.end(), 0u);
    std::shuffle(all.begin(), all.end(), rng);
    pieces.assign(all.begin(), all.begin() + downloading);
    std::uint32_t take = blocks_per_piece * percent / 100;
    std::vector<std::uint32_t> blocks(blocks_per_piece);
    for (auto p : pieces) {
      std::iota(blocks.begin(), blocks.end(), 0u);
      if (!run_ordered)
        std::shuffle(blocks.begin(), blocks.end(), rng);
      for (std::uint32_t i = 0; i < take; ++i) {
        std::uint32_t g = p * blocks_per_piece + blocks[i];
        received.add(g);
        received_bits[g] = true;
      }
    }
    if (run_ordered)
      received.runOptimize();
    expected = std::uint64_t{downloading} * take * block_size;
  }
};

enum class method { range_cardinality, roaring_contains_loop, vector_bool_loop };

std::uint64_t dirty(const fixture& f, std::uint32_t piece, method m) {
  std::uint32_t first = piece * f.blocks_per_piece;
  std::uint32_t end = first + f.blocks_per_piece;
  std::uint64_t blocks = 0;
  switch (m) {
  case method::range_cardinality:
    blocks = roaring_bitmap_range_cardinality(&f.received.roaring, first, end);
    break;
  case method::roaring_contains_loop:
    for (std::uint32_t b = first; b < end; ++b)
      blocks += f.received.contains(b);
    break;
  case method::vector_bool_loop:
    for (std::uint32_t b = first; b < end; ++b)
      blocks += f.received_bits[b];
    break;
  }
  return blocks * block_size;
}

void run(benchmark::State& state, std::uint32_t piece_mib, std::uint32_t percent, bool run_ordered,
         method m) {
  const fixture f(piece_mib, percent, run_ordered);
  for (auto _ : state) {
    std::uint64_t total = 0;
    for (auto p : f.pieces) {
      benchmark::DoNotOptimize(p);
      total += dirty(f, p, m);
    }
    benchmark::DoNotOptimize(total);
    if (total != f.expected) {
      state.SkipWithError("wrong dirty byte count");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * f.pieces.size()));
  if (m == method::range_cardinality) {
    // Container kinds decide the cost of a range count (see README): report them.
    roaring_statistics_t st;
    roaring_bitmap_statistics(&f.received.roaring, &st);
    state.counters["array_containers"] = st.n_array_containers;
    state.counters["bitset_containers"] = st.n_bitset_containers;
    state.counters["run_containers"] = st.n_run_containers;
  }
}

const int registered = [] {
  const std::pair<method, const char*> methods[] = {
    {method::range_cardinality, "range_cardinality"},
    {method::roaring_contains_loop, "roaring_contains_loop"},
    {method::vector_bool_loop, "vector_bool_loop"},
  };
  for (std::uint32_t mib : {4u, 16u})
    for (bool ordered : {false, true})
      for (std::uint32_t pct : {25u, 50u, 100u})
        for (auto [m, mname] : methods) {
          std::string name = "dirty_bytes/" + std::to_string(mib) + "MiB/" +
                             std::to_string(pct) + "pct_" + (ordered ? "run" : "random") + "/" +
                             mname;
          benchmark::RegisterBenchmark(name.c_str(), run, mib, pct, ordered, m)
            ->Unit(benchmark::kNanosecond);
        }
  return 0;
}();

} // namespace
