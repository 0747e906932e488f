// Peer wire parsing: throughput of wire::stream_parser::parse on what a downloading connection
// receives, fed in socket-sized reads.
//
// The stream (built once, ~16 MiB): PIECE messages carrying 16 KiB blocks, a burst of 30 HAVEs
// every 64 blocks, a REQUEST every 8 blocks (the peer downloads from us too) and a keep-alive
// every 256 blocks. Reads are "64 KiB" or "256 KiB": like a socket returning what has arrived,
// each read delivers between half and all of that size (a fixed, seeded sequence shared by every
// variant), so frames straddle read boundaries at varying offsets.
//
// Variants, all over the same bytes and read sizes:
//   parse_only      the parser alone. Each read extends the view; the partial frame at its end is
//                   presented again with the next read (no bytes copied) — the parser's own cost.
//   reader_carry    a classic copying reader: recv() copies the read into a buffer, the parser
//                   runs, the partial frame is memmove'd to the front before the next read.
//   reader_carry_copyout  the same, plus copying each block payload out of the buffer before it
//                   is reused — needed when blocks go to storage asynchronously, as they do here.
//   reader_aligned  actorrent's reader (actors/peer_connection.cpp): 256 KiB buffers; near the end
//                   of a buffer it reads only what completes the current frame, so the next buffer
//                   starts on a frame boundary. A frame that started too late to fit in the buffer
//                   is moved to the next one, as the real reader does (counted: moved_share,
//                   moves_per_MiB). The recv() copy is included.
//   recv_copy_only  only the recv() copy of the same reads: the floor any reader pays.
// The callback does what the real reader does: push the message into the read's batch.
//
// Plus have_only: a stream of nothing but HAVE messages (messages/s), parse_only, 64 KiB reads.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/types.hpp"
#include "protocol/wire.hpp"

namespace {

using namespace actorrent;

constexpr std::size_t stream_blocks = 1024; // 16 MiB of payload

const std::string& mixed_stream() {
  static const std::string s = [] {
    std::string out;
    out.reserve(stream_blocks * (block_size + 13) + (1u << 20));
    std::mt19937 rng(42);
    std::string payload(block_size, '\0');
    for (auto& c : payload)
      c = static_cast<char>(rng());
    std::uint32_t piece = 0, have_piece = 100000;
    for (std::size_t i = 0; i < stream_blocks; ++i) {
      std::uint32_t begin = static_cast<std::uint32_t>(i % 16) * block_size; // 256 KiB pieces
      wire::append_piece_header(out, piece, begin, block_size);
      out += payload;
      if (i % 16 == 15)
        ++piece;
      if (i % 8 == 7)
        wire::append_request(out, wire::msg_id::request, rng() % 4096,
                             (rng() % 16) * block_size, block_size);
      if (i % 64 == 63)
        for (int h = 0; h < 30; ++h)
          wire::append_have(out, have_piece++);
      if (i % 256 == 255)
        wire::append_keep_alive(out);
    }
    return out;
  }();
  return s;
}

const std::string& have_stream() {
  static const std::string s = [] {
    std::string out;
    for (std::uint32_t i = 0; i < (1u << 20); ++i) // 9 MiB, ~1M messages
      wire::append_have(out, i);
    return out;
  }();
  return s;
}

// The sizes successive reads return for a nominal read size: uniform in [read / 2, read].
const std::vector<std::size_t>& read_sizes(std::size_t read) {
  static std::map<std::size_t, std::vector<std::size_t>> cache;
  auto& v = cache[read];
  if (v.empty()) {
    std::mt19937 rng(static_cast<std::uint32_t>(read));
    std::uniform_int_distribution<std::size_t> dist(read / 2, read);
    for (int i = 0; i < 4096; ++i)
      v.push_back(dist(rng));
  }
  return v;
}

struct socket_reads {
  const std::vector<std::size_t>& sizes;
  std::size_t next = 0;
  explicit socket_reads(std::size_t read) : sizes(read_sizes(read)) {}
  void restart() { next = 0; }
  std::size_t operator()() { return sizes[next++ % sizes.size()]; }
};

struct batch {
  std::vector<wire::message> messages;
  std::uint64_t total = 0;
  // Where a reader that reuses its buffer has to copy block payloads before the next read.
  std::vector<char>* copy_out = nullptr;
  std::size_t copy_pos = 0;

  void run(wire::stream_parser& parser, std::string_view data, std::size_t& consumed) {
    messages.clear();
    auto r = parser.parse(data, [&](const wire::message& m) {
      if (copy_out && m.id == wire::msg_id::piece) {
        if (copy_pos + m.payload.size() > copy_out->size())
          copy_pos = 0;
        std::memcpy(copy_out->data() + copy_pos, m.payload.data(), m.payload.size());
        copy_pos += m.payload.size();
      }
      messages.push_back(m);
      return true;
    });
    if (!r)
      std::abort();
    consumed = *r;
    total += messages.size();
    benchmark::DoNotOptimize(messages.data());
  }
};

// Parser alone: the stream stays where it is; each read makes the next read's bytes visible.
void parse_only(benchmark::State& state, const std::string& stream) {
  socket_reads reads(static_cast<std::size_t>(state.range(0)));
  wire::stream_parser parser;
  batch b;
  b.messages.reserve(4096);
  for (auto _ : state) {
    reads.restart();
    std::size_t parsed = 0, filled = 0;
    while (filled < stream.size()) {
      filled = std::min(stream.size(), filled + reads());
      std::size_t n = 0;
      b.run(parser, std::string_view(stream).substr(parsed, filled - parsed), n);
      parsed += n;
    }
    if (parsed != stream.size())
      state.SkipWithError("stream not fully parsed");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
  state.counters["msgs"] = benchmark::Counter(static_cast<double>(b.total),
                                              benchmark::Counter::kIsRate);
}

// Copying reader: recv() into a fixed buffer, parse, move the partial frame to the front.
// With copy_out, block payloads are copied out of the buffer (into a 4 MiB block cache) before
// it is reused — what such a reader must do to hand blocks to storage asynchronously.
void reader_carry(benchmark::State& state, bool copy_out) {
  const std::string& stream = mixed_stream();
  const std::size_t read = static_cast<std::size_t>(state.range(0));
  socket_reads reads(read);
  wire::stream_parser parser;
  std::vector<char> buf(read + block_size + 64);
  std::vector<char> cache(4u << 20);
  batch b;
  b.messages.reserve(4096);
  if (copy_out)
    b.copy_out = &cache;
  for (auto _ : state) {
    reads.restart();
    std::size_t src = 0, tail = 0;
    while (src < stream.size()) {
      std::size_t n = std::min(reads(), stream.size() - src);
      std::memcpy(buf.data() + tail, stream.data() + src, n); // recv()
      src += n;
      std::size_t filled = tail + n, consumed = 0;
      b.run(parser, std::string_view(buf.data(), filled), consumed);
      tail = filled - consumed;
      std::memmove(buf.data(), buf.data() + consumed, tail);
    }
    if (tail != 0)
      state.SkipWithError("stream not fully parsed");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
}

// actorrent's reader: frame-aligned buffers, no carry-over copy.
void reader_aligned(benchmark::State& state) {
  const std::string& stream = mixed_stream();
  socket_reads reads(static_cast<std::size_t>(state.range(0)));
  constexpr std::size_t buffer_size = 256 * 1024;
  constexpr std::size_t reserve = block_size + 13 + 4;
  wire::stream_parser parser;
  // Two buffers alternate, as the pool would hand them out while the previous one is in use.
  std::vector<char> bufs[2] = {std::vector<char>(buffer_size), std::vector<char>(buffer_size)};
  batch b;
  b.messages.reserve(4096);
  std::uint64_t moved = 0, moves = 0;
  for (auto _ : state) {
    reads.restart();
    std::size_t src = 0, parsed = 0, filled = 0;
    int cur = 0;
    while (src < stream.size()) {
      std::size_t space = buffer_size - filled, tail = filled - parsed, want;
      if (space >= reserve) {
        want = space;
      } else if (tail == 0) {
        cur ^= 1;
        parsed = filled = 0;
        continue;
      } else {
        std::size_t frame =
          wire::stream_parser::frame_size(std::string_view(bufs[cur].data() + parsed, tail));
        want = frame ? frame - tail : 4 - tail;
        if (want > space) {
          // The frame started too late to fit: the real reader moves it to the next buffer.
          std::memcpy(bufs[cur ^ 1].data(), bufs[cur].data() + parsed, tail);
          moved += tail;
          ++moves;
          cur ^= 1;
          parsed = 0;
          filled = tail;
          continue;
        }
      }
      std::size_t n = std::min({want, reads(), stream.size() - src});
      std::memcpy(bufs[cur].data() + filled, stream.data() + src, n); // recv()
      src += n;
      filled += n;
      std::size_t consumed = 0;
      b.run(parser, std::string_view(bufs[cur].data() + parsed, filled - parsed), consumed);
      parsed += consumed;
      if (parsed == filled && buffer_size - filled < reserve) {
        cur ^= 1;
        parsed = filled = 0;
      }
    }
    if (parsed != filled)
      state.SkipWithError("stream not fully parsed");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
  // How much the fallback copied: share of the stream's bytes, and moves per MiB of stream.
  double streamed = static_cast<double>(state.iterations()) * static_cast<double>(stream.size());
  state.counters["moved_share"] = static_cast<double>(moved) / streamed;
  state.counters["moves_per_MiB"] = static_cast<double>(moves) / (streamed / (1 << 20));
}

// Only the recv() copies of the same reads into a buffer: the floor for any reader.
void recv_copy_only(benchmark::State& state) {
  const std::string& stream = mixed_stream();
  const std::size_t read = static_cast<std::size_t>(state.range(0));
  socket_reads reads(read);
  std::vector<char> buf(read);
  for (auto _ : state) {
    reads.restart();
    for (std::size_t src = 0; src < stream.size();) {
      std::size_t n = std::min(reads(), stream.size() - src);
      std::memcpy(buf.data(), stream.data() + src, n);
      src += n;
      benchmark::DoNotOptimize(buf.data());
      benchmark::ClobberMemory();
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
}

void mixed_parse_only(benchmark::State& state) { parse_only(state, mixed_stream()); }

void have_only(benchmark::State& state) {
  parse_only(state, have_stream());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * (have_stream().size() / 9)));
}

void reads(benchmark::internal::Benchmark* b) {
  b->ArgName("read")->Arg(64 * 1024)->Arg(256 * 1024)->Unit(benchmark::kMicrosecond);
}

} // namespace

BENCHMARK(mixed_parse_only)->Name("wire/mixed/parse_only")->Apply(reads);
BENCHMARK_CAPTURE(reader_carry, plain, false)->Name("wire/mixed/reader_carry")->Apply(reads);
BENCHMARK_CAPTURE(reader_carry, copyout, true)
  ->Name("wire/mixed/reader_carry_copyout")
  ->Apply(reads);
BENCHMARK(reader_aligned)->Name("wire/mixed/reader_aligned")->Apply(reads);
BENCHMARK(recv_copy_only)->Name("wire/mixed/recv_copy_only")->Apply(reads);
BENCHMARK(have_only)
  ->Name("wire/have_only/parse_only")
  ->ArgName("read")
  ->Arg(64 * 1024)
  ->Unit(benchmark::kMicrosecond);
