#include "storage/data_checker.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "protocol/sha1.hpp"
#include "storage/resume.hpp"

using namespace actorrent;

namespace {

struct spec {
  std::vector<std::string> path;
  std::uint64_t length;
  bool pad = false;
};

struct torrent {
  metainfo meta;
  file_layout layout;
  std::string bytes; // the whole byte stream (zeros in padding files)
};

torrent make_torrent(const std::vector<spec>& files, std::uint32_t piece_length,
                     std::uint32_t seed = 7) {
  torrent t;
  auto& m = t.meta;
  m.name = "t";
  m.piece_length = piece_length;
  m.multi_file = true;
  for (const auto& f : files) {
    m.files.push_back(file_entry{f.path, f.length, f.pad});
    m.total_size += f.length;
  }
  std::mt19937 rng(seed);
  t.bytes.resize(m.total_size);
  for (auto& c : t.bytes)
    c = static_cast<char>(rng());
  std::uint64_t off = 0;
  for (const auto& f : files) {
    if (f.pad)
      std::fill_n(t.bytes.begin() + static_cast<std::ptrdiff_t>(off), f.length, '\0');
    off += f.length;
  }
  for (std::uint64_t p = 0; p < m.total_size; p += piece_length)
    m.piece_hashes.push_back(
        sha1(std::string_view{t.bytes}.substr(p, std::min<std::uint64_t>(piece_length,
                                                                         m.total_size - p))));
  m.hash = sha1("checker");
  auto l = file_layout::create(m);
  EXPECT_TRUE(l.ok()) << (l.ok() ? "" : l.error().message);
  if (l.ok())
    t.layout = std::move(*l);
  return t;
}

void spit(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  ASSERT_TRUE(out.good()) << path;
}

Roaring range(std::uint32_t from, std::uint32_t to) {
  Roaring r;
  r.addRange(from, to);
  return r;
}

Roaring of(std::initializer_list<std::uint32_t> v) {
  Roaring r;
  for (auto x : v)
    r.add(x);
  return r;
}

std::size_t count_entries(const std::string& dir) {
  std::size_t n = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(dir);
       it != std::filesystem::recursive_directory_iterator(); ++it)
    ++n;
  return n;
}

// Piece length 16; 114 bytes, 8 pieces:
//   a    [0, 40)    pieces 0 1 2   (piece 2 spans a, b)
//   b    [40, 48)   piece 2
//   pad  [48, 64)   piece 3        (padding: zeros, never on disk)
//   c    [64, 94)   pieces 4 5     (piece 5 spans c, e)
//   d    0 bytes
//   e    [94, 114)  pieces 5 6 7   (piece 7 is 2 bytes long)
const std::vector<spec> sample_files = {spec{{"a"}, 40},          spec{{"sub", "b"}, 8},
                                        spec{{".pad", "16"}, 16, true}, spec{{"sub", "c"}, 30},
                                        spec{{"d"}, 0},           spec{{"e"}, 20}};

class data_checker_test : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/actorrent_checker_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    out_ = tmp_ + "/out";
    ASSERT_EQ(::mkdir(out_.c_str(), 0755), 0);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(tmp_, ec);
  }

  void write_data(const torrent& t) {
    for (const auto& f : t.layout.files()) {
      if (f.pad)
        continue;
      const auto path = out_ + "/" + f.path;
      std::filesystem::create_directories(std::filesystem::path(path).parent_path());
      spit(path, t.bytes.substr(f.offset, f.length));
    }
  }

  std::string data(const torrent& t, std::size_t file) const {
    return out_ + "/" + t.layout.files()[file].path;
  }

  Roaring check(const torrent& t, const Roaring& pieces, unsigned threads = 2) {
    return check_pieces(t.layout, t.meta, out_, pieces, threads, nullptr);
  }

  std::string tmp_;
  std::string out_;
};

} // namespace

TEST_F(data_checker_test, correct_data_verifies) {
  auto t = make_torrent(sample_files, 16);
  ASSERT_EQ(t.layout.piece_count(), 8u);
  write_data(t);
  for (unsigned threads : {0u, 1u, 2u, 3u, 8u, 100u})
    EXPECT_EQ(check(t, range(0, 8), threads), range(0, 8)) << threads << " threads";
  // Only what was asked is checked.
  EXPECT_EQ(check(t, of({1, 3, 7})), of({1, 3, 7}));
  EXPECT_TRUE(check(t, of({})).isEmpty());
  // Pieces outside the torrent are ignored.
  EXPECT_EQ(check(t, of({2, 8, 1000})), of({2}));
}

TEST_F(data_checker_test, a_flipped_byte_fails_exactly_its_piece) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  // Every byte of every data file, one at a time.
  for (std::size_t f = 0; f < t.layout.files().size(); ++f) {
    const auto& lf = t.layout.files()[f];
    if (lf.pad)
      continue;
    for (std::uint64_t i = 0; i < lf.length; ++i) {
      std::string bytes = t.bytes.substr(lf.offset, lf.length);
      bytes[i] ^= 0x01;
      spit(data(t, f), bytes);
      const auto piece = static_cast<std::uint32_t>((lf.offset + i) / 16);
      EXPECT_EQ(check(t, range(0, 8)), range(0, 8) - of({piece}))
          << lf.path << " byte " << i << " (piece " << piece << ")";
    }
    spit(data(t, f), t.bytes.substr(lf.offset, lf.length));
  }
  EXPECT_EQ(check(t, range(0, 8)), range(0, 8));
}

TEST_F(data_checker_test, missing_or_short_files_fail_the_pieces_needing_their_bytes) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  // c missing: pieces 4 and 5 (5 also needs e).
  ASSERT_EQ(::unlink(data(t, 3).c_str()), 0);
  Roaring c_pieces;
  pieces_of_file(t.layout, file_index{3}, c_pieces);
  ASSERT_EQ(c_pieces, of({4, 5}));
  EXPECT_EQ(check(t, range(0, 8)), range(0, 8) - c_pieces);

  // A whole directory missing: b and c.
  std::filesystem::remove_all(out_ + "/t/sub");
  EXPECT_EQ(check(t, range(0, 8)), of({0, 1, 3, 6, 7}));

  // e cut to its first 5 bytes (94..98): pieces 6 and 7 lose bytes, piece 5 keeps them.
  write_data(t);
  spit(data(t, 5), t.bytes.substr(94, 5));
  EXPECT_EQ(check(t, range(0, 8)), range(0, 6));
  // e one byte short: only the last piece.
  spit(data(t, 5), t.bytes.substr(94, 19));
  EXPECT_EQ(check(t, range(0, 8)), range(0, 7));
  // Longer than its torrent length: the extra bytes do not matter.
  spit(data(t, 5), t.bytes.substr(94, 20) + "extra");
  EXPECT_EQ(check(t, range(0, 8)), range(0, 8));

  // Nothing on disk at all; the output directory itself missing.
  std::filesystem::remove_all(out_ + "/t");
  EXPECT_EQ(check(t, range(0, 8)), of({3})); // only the all-padding piece
  std::filesystem::remove_all(out_);
  EXPECT_EQ(check(t, range(0, 8)), of({3})); // padding needs no file
  EXPECT_TRUE(check(t, range(0, 3)).isEmpty());
  EXPECT_FALSE(std::filesystem::exists(out_));
}

TEST_F(data_checker_test, creates_nothing_and_follows_no_links) {
  auto t = make_torrent(sample_files, 16);
  check(t, range(0, 8));
  EXPECT_EQ(count_entries(out_), 0u);

  // a replaced by a symbolic link to a correct copy; sub/ replaced by a link to a correct copy.
  write_data(t);
  const auto a = data(t, 0);
  ASSERT_EQ(::rename(a.c_str(), (tmp_ + "/a").c_str()), 0);
  ASSERT_EQ(::symlink((tmp_ + "/a").c_str(), a.c_str()), 0);
  EXPECT_EQ(check(t, range(0, 8)), of({3, 4, 5, 6, 7}));
  ASSERT_EQ(::rename((out_ + "/t/sub").c_str(), (tmp_ + "/sub").c_str()), 0);
  ASSERT_EQ(::symlink((tmp_ + "/sub").c_str(), (out_ + "/t/sub").c_str()), 0);
  EXPECT_EQ(check(t, range(0, 8)), of({3, 6, 7}));

  // A FIFO where e should be: no hang, e's pieces fail.
  write_data(t);
  ASSERT_EQ(::unlink(data(t, 5).c_str()), 0);
  ASSERT_EQ(::mkfifo(data(t, 5).c_str(), 0644), 0);
  EXPECT_EQ(check(t, range(0, 8)), of({3}));
}

TEST_F(data_checker_test, thread_counts_give_identical_results) {
  // 2000 pieces of 4 KiB over files of odd sizes (pieces span files), 150 pieces damaged.
  constexpr std::uint32_t pieces = 2000, piece_length = 4096;
  constexpr std::uint64_t total = std::uint64_t{pieces} * piece_length;
  std::vector<spec> files;
  std::mt19937 rng(99);
  std::uint64_t sum = 0;
  for (int i = 0; sum < total; ++i) {
    std::uint64_t len = std::min<std::uint64_t>(1 + rng() % 50000, total - sum);
    files.push_back(spec{{"f" + std::to_string(i)}, len});
    sum += len;
  }
  auto t = make_torrent(files, piece_length);
  ASSERT_EQ(t.layout.piece_count(), pieces);
  std::string stream = t.bytes;
  Roaring damaged;
  while (damaged.cardinality() < 150) {
    const std::uint32_t p = rng() % pieces;
    damaged.add(p);
    stream[std::uint64_t{p} * piece_length + rng() % piece_length] ^= 0x80;
  }
  torrent on_disk = t;
  on_disk.bytes = stream;
  write_data(on_disk);

  const Roaring expected = range(0, pieces) - damaged;
  const Roaring one = check(t, range(0, pieces), 1);
  const Roaring four = check(t, range(0, pieces), 4);
  EXPECT_EQ(one, expected);
  EXPECT_EQ(four, one);
  EXPECT_EQ(check(t, range(0, pieces), 0), one);
}

TEST_F(data_checker_test, reports_progress_once_per_piece_in_order) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> calls;
  std::mutex m; // the checker promises no concurrent calls; the mutex only guards the test
  auto r = check_pieces(t.layout, t.meta, out_, of({0, 2, 4, 6, 7}), 4,
                        [&](std::uint32_t done, std::uint32_t total) {
                          std::lock_guard<std::mutex> lock(m);
                          calls.emplace_back(done, total);
                        });
  EXPECT_EQ(r, of({0, 2, 4, 6, 7}));
  ASSERT_EQ(calls.size(), 5u);
  for (std::uint32_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].first, i + 1);
    EXPECT_EQ(calls[i].second, 5u);
  }
}

TEST_F(data_checker_test, cancel_stops_early) {
  auto t = make_torrent({spec{{"big"}, 200 * 64}}, 64);
  write_data(t);
  std::atomic<bool> cancel{false};
  std::uint32_t last = 0;
  // One thread: cancelling after the 5th piece leaves exactly 5 verified.
  auto r = check_pieces(
      t.layout, t.meta, out_, range(0, 200), 1,
      [&](std::uint32_t done, std::uint32_t) {
        last = done;
        if (done == 5)
          cancel = true;
      },
      &cancel);
  EXPECT_EQ(last, 5u);
  EXPECT_EQ(r, range(0, 5));

  // Cancelled before starting: nothing is hashed.
  bool called = false;
  r = check_pieces(
      t.layout, t.meta, out_, range(0, 200), 4, [&](std::uint32_t, std::uint32_t) { called = true; },
      &cancel);
  EXPECT_TRUE(r.isEmpty());
  EXPECT_FALSE(called);

  // Four threads: stops well short of the end, and what it returns is correct.
  cancel = false;
  std::atomic<std::uint32_t> calls{0};
  r = check_pieces(
      t.layout, t.meta, out_, range(0, 200), 4,
      [&](std::uint32_t done, std::uint32_t) {
        ++calls;
        if (done == 10)
          cancel = true;
      },
      &cancel);
  EXPECT_LT(calls.load(), 20u);
  EXPECT_LT(r.cardinality(), 20u);
  EXPECT_EQ(r - range(0, 200), Roaring{});
}
