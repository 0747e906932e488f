// Cost of one availability update (+1 or -1 peer having a piece) in actorrent's bucket structure
// (actors/availability.*: pieces grouped by count, an update is one swap) against what a
// lock-based client typically keeps: an ordered tree re-inserted on every change ("B-tree
// operations"). Two baselines, both kept in this file:
//   ordered_set  std::set<(count, piece)> plus a count per piece: erase by key, insert.
//   multimap     std::multimap<count, piece> plus an iterator per piece: erase by iterator,
//                insert.
// All three support the same rarest-first iteration; seeds are counted apart in all of them.
//
// State: 10,000 or 100,000 pieces, then 1,000 peers' bitfields applied (each peer holds a
// uniformly random fraction of the pieces, so counts spread over ~0..1000, mean ~500). Built
// once per size and shared by the benchmarks of that size; every benchmark leaves it as found.
// Timed workloads (items = updates):
//   have_storm  30,000 HAVEs for uniformly random pieces (+1 each), then the same peers leave
//               (-1 each, same order).
//   peer_join   one more peer connects with a bitfield of ~50 % of the pieces (+1 per set bit)
//               and disconnects again (-1 per set bit). 16 such peers are used in turn.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "actors/availability.hpp"
#include "actors/bitfield.hpp"

namespace {

using namespace actorrent;

constexpr std::uint32_t swarm_peers = 1000;
constexpr std::size_t storm_haves = 30000;
constexpr std::size_t joining_peers = 16;

struct splitmix {
  std::uint64_t s;
  std::uint64_t operator()() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

bitfield random_bitfield(std::uint32_t pieces, double fraction, splitmix& rng) {
  bitfield bf(pieces);
  auto threshold = static_cast<std::uint64_t>(fraction * 18446744073709551615.0);
  for (std::uint32_t p = 0; p < pieces; ++p)
    if (rng() < threshold)
      bf.set(piece_index{p});
  return bf;
}

// --- baselines ------------------------------------------------------------------------------

class ordered_set_baseline {
public:
  explicit ordered_set_baseline(const std::vector<std::uint32_t>& counts) : count_(counts) {
    for (std::uint32_t p = 0; p < counts.size(); ++p)
      set_.emplace(counts[p], p);
  }
  void increment(piece_index p) {
    auto& c = count_[p.value];
    set_.erase({c, p.value});
    ++c;
    set_.emplace(c, p.value);
  }
  void decrement(piece_index p) {
    auto& c = count_[p.value];
    set_.erase({c, p.value});
    --c;
    set_.emplace(c, p.value);
  }
  std::size_t size() const { return set_.size(); }

private:
  std::vector<std::uint32_t> count_;
  std::set<std::pair<std::uint32_t, std::uint32_t>> set_;
};

class multimap_baseline {
public:
  using map = std::multimap<std::uint32_t, std::uint32_t>;
  explicit multimap_baseline(const std::vector<std::uint32_t>& counts) : where_(counts.size()) {
    for (std::uint32_t p = 0; p < counts.size(); ++p)
      where_[p] = map_.emplace(counts[p], p);
  }
  void increment(piece_index p) {
    auto c = where_[p.value]->first;
    map_.erase(where_[p.value]);
    where_[p.value] = map_.emplace(c + 1, p.value);
  }
  void decrement(piece_index p) {
    auto c = where_[p.value]->first;
    map_.erase(where_[p.value]);
    where_[p.value] = map_.emplace(c - 1, p.value);
  }
  std::size_t size() const { return map_.size(); }

private:
  map map_;
  std::vector<map::iterator> where_;
};

// --- shared swarm state ---------------------------------------------------------------------

struct swarm {
  std::uint32_t pieces;
  std::unique_ptr<availability> buckets;
  std::unique_ptr<ordered_set_baseline> ordered_set;
  std::unique_ptr<multimap_baseline> multimap;
  std::vector<piece_index> storm;
  std::vector<bitfield> joiners;
  std::size_t next_joiner = 0;

  explicit swarm(std::uint32_t n) : pieces(n) {
    splitmix rng{n};
    buckets = std::make_unique<availability>(n, 7);
    std::vector<std::uint32_t> counts(n, 0);
    for (std::uint32_t peer = 0; peer < swarm_peers; ++peer) {
      double fraction = static_cast<double>(rng() % 1000) / 1000.0;
      random_bitfield(n, fraction, rng).for_each_set([&](piece_index p) {
        buckets->increment(p);
        ++counts[p.value];
      });
    }
    ordered_set = std::make_unique<ordered_set_baseline>(counts);
    multimap = std::make_unique<multimap_baseline>(counts);
    storm.reserve(storm_haves);
    for (std::size_t i = 0; i < storm_haves; ++i)
      storm.push_back(piece_index{static_cast<std::uint32_t>(rng() % n)});
    for (std::size_t i = 0; i < joining_peers; ++i)
      joiners.push_back(random_bitfield(n, 0.5, rng));
  }

  template <class S>
  S& get();
};

template <>
availability& swarm::get<availability>() { return *buckets; }
template <>
ordered_set_baseline& swarm::get<ordered_set_baseline>() { return *ordered_set; }
template <>
multimap_baseline& swarm::get<multimap_baseline>() { return *multimap; }

swarm& swarm_of(std::uint32_t pieces) {
  static std::map<std::uint32_t, std::unique_ptr<swarm>> cache;
  auto& s = cache[pieces];
  if (!s)
    s = std::make_unique<swarm>(pieces);
  return *s;
}

// --- benchmarks -----------------------------------------------------------------------------

template <class S>
void have_storm(benchmark::State& state) {
  auto& sw = swarm_of(static_cast<std::uint32_t>(state.range(0)));
  S& s = sw.get<S>();
  for (auto _ : state) {
    for (auto p : sw.storm)
      s.increment(p);
    for (auto p : sw.storm)
      s.decrement(p);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 2 * sw.storm.size()));
}

template <class S>
void peer_join(benchmark::State& state) {
  auto& sw = swarm_of(static_cast<std::uint32_t>(state.range(0)));
  S& s = sw.get<S>();
  std::int64_t updates = 0;
  for (auto _ : state) {
    const bitfield& bf = sw.joiners[sw.next_joiner++ % sw.joiners.size()];
    bf.for_each_set([&](piece_index p) { s.increment(p); });
    bf.for_each_set([&](piece_index p) { s.decrement(p); });
    updates += 2 * bf.count();
  }
  state.SetItemsProcessed(updates);
}

void sizes(benchmark::internal::Benchmark* b) {
  b->ArgName("pieces")->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);
}

} // namespace

BENCHMARK(have_storm<availability>)->Name("availability/have_storm/buckets")->Apply(sizes);
BENCHMARK(have_storm<ordered_set_baseline>)
  ->Name("availability/have_storm/ordered_set")
  ->Apply(sizes);
BENCHMARK(have_storm<multimap_baseline>)->Name("availability/have_storm/multimap")->Apply(sizes);
BENCHMARK(peer_join<availability>)->Name("availability/peer_join/buckets")->Apply(sizes);
BENCHMARK(peer_join<ordered_set_baseline>)
  ->Name("availability/peer_join/ordered_set")
  ->Apply(sizes);
BENCHMARK(peer_join<multimap_baseline>)->Name("availability/peer_join/multimap")->Apply(sizes);
