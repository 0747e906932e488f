// .torrent decoding: bencode::decode and parse_metainfo (which decodes, validates and SHA-1s the
// info dictionary) on two realistic torrents built here with the project's own encoder:
//   single  1 GiB file, 256 KiB pieces: 4096 piece hashes (~82 KB of `pieces`), announce-list
//           of 3 tiers, comment, created by, creation date.
//   multi   10,000 files in 100 folders, 4 KiB .. 1 MiB each (~5 GiB), 4 MiB pieces.
// Throughput is in bytes of .torrent per second. To see where parse_metainfo's time goes, two
// parts of it are also measured alone: decode_info (bencode::decode of just the info dictionary,
// which parse_metainfo does a second time, strictly, to refuse non-canonical info) and sha1_info
// (the info-hash over the same bytes). All variants report bytes of the whole .torrent, so their
// times compare directly.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>

#include "protocol/bencode.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/sha1.hpp"

namespace {

using namespace actorrent;
using bencode::value;

value str(std::string s) { return value::make_string(std::move(s)); }

void add_common(value& root, std::mt19937_64& rng) {
  root.set("announce", str("http://tracker.example.org:6969/announce"));
  bencode::list tiers;
  for (const char* url : {"http://tracker.example.org:6969/announce",
                          "udp://tracker.example.net:1337/announce",
                          "http://backup.example.com/announce"})
    tiers.push_back(value::make_list({str(url)}));
  root.set("announce-list", value::make_list(std::move(tiers)));
  root.set("comment", str("benchmark torrent " + std::to_string(rng())));
  root.set("created by", str("actorrent bench"));
  root.set("creation date", value::make_int(1700000000));
}

std::string hashes(std::uint64_t total, std::uint32_t piece_length, std::mt19937_64& rng) {
  std::uint64_t pieces = (total + piece_length - 1) / piece_length;
  std::string out(pieces * 20, '\0');
  for (auto& c : out)
    c = static_cast<char>(rng());
  return out;
}

const std::string& single_file_torrent() {
  static const std::string s = [] {
    std::mt19937_64 rng(1);
    const std::uint64_t total = 1ull << 30;
    const std::uint32_t piece_length = 256 * 1024;
    value info = value::make_dict();
    info.set("length", value::make_int(static_cast<std::int64_t>(total)));
    info.set("name", str("ubuntu-like-image-amd64.iso"));
    info.set("piece length", value::make_int(piece_length));
    info.set("pieces", str(hashes(total, piece_length, rng)));
    value root = value::make_dict();
    add_common(root, rng);
    root.set("info", std::move(info));
    return bencode::encode(root);
  }();
  return s;
}

const std::string& multi_file_torrent() {
  static const std::string s = [] {
    std::mt19937_64 rng(2);
    const std::uint32_t piece_length = 4u << 20;
    bencode::list files;
    std::uint64_t total = 0;
    for (int i = 0; i < 10000; ++i) {
      std::uint64_t len = 4096 + rng() % (1u << 20);
      total += len;
      value f = value::make_dict();
      f.set("length", value::make_int(static_cast<std::int64_t>(len)));
      f.set("path", value::make_list({str("folder-" + std::to_string(i / 100)),
                                      str("file-" + std::to_string(i) + ".dat")}));
      files.push_back(std::move(f));
    }
    value info = value::make_dict();
    info.set("files", value::make_list(std::move(files)));
    info.set("name", str("a-dataset-with-many-files"));
    info.set("piece length", value::make_int(piece_length));
    info.set("pieces", str(hashes(total, piece_length, rng)));
    value root = value::make_dict();
    add_common(root, rng);
    root.set("info", std::move(info));
    return bencode::encode(root);
  }();
  return s;
}

void decode(benchmark::State& state, const std::string& (*torrent)()) {
  const std::string& bytes = torrent();
  for (auto _ : state) {
    auto v = bencode::decode(bytes);
    if (!v)
      state.SkipWithError(v.error().message.c_str());
    benchmark::DoNotOptimize(v);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
  state.counters["torrent_bytes"] = static_cast<double>(bytes.size());
}

void parse(benchmark::State& state, const std::string& (*torrent)()) {
  const std::string& bytes = torrent();
  for (auto _ : state) {
    auto m = parse_metainfo(bytes);
    if (!m)
      state.SkipWithError(m.error().message.c_str());
    benchmark::DoNotOptimize(m);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
  state.counters["torrent_bytes"] = static_cast<double>(bytes.size());
}

std::string_view info_bytes(const std::string& torrent) {
  auto v = bencode::decode(torrent);
  if (!v || v->find("info") == nullptr)
    std::abort();
  auto [begin, end] = v->find("info")->span();
  return std::string_view(torrent).substr(begin, end - begin);
}

void decode_info(benchmark::State& state, const std::string& (*torrent)()) {
  const std::string& bytes = torrent();
  std::string_view info = info_bytes(bytes);
  for (auto _ : state) {
    auto v = bencode::decode(info);
    if (!v)
      state.SkipWithError(v.error().message.c_str());
    benchmark::DoNotOptimize(v);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
}

void sha1_info(benchmark::State& state, const std::string& (*torrent)()) {
  const std::string& bytes = torrent();
  std::string_view info = info_bytes(bytes);
  for (auto _ : state) {
    auto h = sha1(info);
    benchmark::DoNotOptimize(h);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
}

} // namespace

BENCHMARK_CAPTURE(decode, single, single_file_torrent)
  ->Name("bencode/single_4096_pieces/decode")
  ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(parse, single, single_file_torrent)
  ->Name("bencode/single_4096_pieces/parse_metainfo")
  ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(decode, multi, multi_file_torrent)
  ->Name("bencode/multi_10000_files/decode")
  ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(parse, multi, multi_file_torrent)
  ->Name("bencode/multi_10000_files/parse_metainfo")
  ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(decode_info, single, single_file_torrent)
  ->Name("bencode/single_4096_pieces/decode_info")
  ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(sha1_info, single, single_file_torrent)
  ->Name("bencode/single_4096_pieces/sha1_info")
  ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(decode_info, multi, multi_file_torrent)
  ->Name("bencode/multi_10000_files/decode_info")
  ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(sha1_info, multi, multi_file_torrent)
  ->Name("bencode/multi_10000_files/sha1_info")
  ->Unit(benchmark::kMicrosecond);
