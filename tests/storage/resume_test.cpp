#include "storage/resume.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#if __has_include("config/resume.pb.h")
#include "config/resume.pb.h"
#else
#include "resume.pb.h"
#endif
#include "protocol/sha1.hpp"

using namespace actorrent;

namespace {

struct spec {
  std::vector<std::string> path;
  std::uint64_t length;
  bool pad = false;
};

// A torrent built by hand: random content (zeros in padding files), real piece hashes.
struct torrent {
  metainfo meta;
  file_layout layout;
  std::string bytes; // the whole byte stream
};

torrent make_torrent(const std::vector<spec>& files, std::uint32_t piece_length,
                     std::uint32_t seed = 1, const std::string& name = "t") {
  torrent t;
  auto& m = t.meta;
  m.name = name;
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
  m.hash = sha1("info of " + name + std::to_string(seed));
  auto l = file_layout::create(m);
  EXPECT_TRUE(l.ok()) << (l.ok() ? "" : l.error().message);
  if (l.ok())
    t.layout = std::move(*l);
  return t;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  ASSERT_TRUE(out.good()) << path;
}

// Overwrites a file of the same size in place (no truncation, which on ext4 forces the data
// out on close and would make thousands of rewrites slow).
void overwrite(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
  ::close(fd);
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

std::string show(const Roaring& r) {
  return r.toString();
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    out.push_back(e.path().filename().string());
  return out;
}

// Moves a file's modification time by `delta_ns`, keeping its content.
void shift_mtime(const std::string& path, std::int64_t delta_ns) {
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
  std::int64_t ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 +
                    st.st_mtim.tv_nsec + delta_ns;
  struct timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_OMIT;
  times[1].tv_sec = static_cast<time_t>(ns / 1000000000);
  times[1].tv_nsec = static_cast<long>(ns % 1000000000);
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

// Re-seals a resume_data message the way save_resume does: its serialisation followed by the
// checksum field (SHA-1 of everything before it). Lets a test plant a well-formed but wrong file.
std::string seal(config::resume_data d) {
  d.clear_checksum();
  std::string bytes = d.SerializeAsString();
  const auto digest = sha1(bytes);
  config::resume_data tail;
  tail.set_checksum(std::string(reinterpret_cast<const char*>(digest.data()), digest.size()));
  bytes += tail.SerializeAsString();
  return bytes;
}

// Piece length 16; 98 bytes, 7 pieces:
//   a  [0, 40)   pieces 0 1 2     (piece 2 spans a, b)
//   b  [40, 48)  piece 2
//   c  [48, 78)  pieces 3 4       (piece 4 spans c, e)
//   d  0 bytes   nothing
//   e  [78, 98)  pieces 4 5 6     (piece 6 is 2 bytes long)
const std::vector<spec> sample_files = {spec{{"a"}, 40}, spec{{"sub", "b"}, 8},
                                        spec{{"sub", "c"}, 30}, spec{{"d"}, 0},
                                        spec{{"e"}, 20}};

class resume_test : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/actorrent_resume_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    out_ = tmp_ + "/out";
    ASSERT_EQ(::mkdir(out_.c_str(), 0755), 0);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(tmp_, ec);
  }

  // Writes the data files of `t` (not padding) under out_.
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

  // load_resume must fall back to a full check with a warning naming the file.
  void expect_full_check(const torrent& t, const std::string& expected_in_warning = "") {
    auto r = load_resume(out_, t.meta, t.layout);
    EXPECT_TRUE(r.trusted.isEmpty()) << show(r.trusted);
    EXPECT_EQ(r.to_check, range(0, t.layout.piece_count())) << show(r.to_check);
    EXPECT_NE(r.warning.find("resume file " + resume_path(out_, t.meta.hash) + ": "),
              std::string::npos)
        << r.warning;
    EXPECT_NE(r.warning.find("checking all data"), std::string::npos) << r.warning;
    if (!expected_in_warning.empty()) {
      EXPECT_NE(r.warning.find(expected_in_warning), std::string::npos) << r.warning;
    }
  }

  std::string tmp_;
  std::string out_;
};

} // namespace

TEST(resume_path_test, lives_in_dot_actorrent_named_by_info_hash) {
  info_hash h{};
  for (std::size_t i = 0; i < h.size(); ++i)
    h[i] = static_cast<std::uint8_t>(i * 13);
  EXPECT_EQ(resume_path("/data/dl", h),
            "/data/dl/.actorrent/000d1a2734414e5b6875828f9ca9b6c3d0ddeaf7.resume");
}

TEST(pieces_of_file_test, covers_spanning_pieces_and_nothing_for_empty_files) {
  auto t = make_torrent(sample_files, 16);
  ASSERT_EQ(t.layout.piece_count(), 7u);
  auto pieces = [&](std::uint32_t f) {
    Roaring r;
    pieces_of_file(t.layout, file_index{f}, r);
    return r;
  };
  EXPECT_EQ(pieces(0), of({0, 1, 2}));
  EXPECT_EQ(pieces(1), of({2}));
  EXPECT_EQ(pieces(2), of({3, 4}));
  EXPECT_TRUE(pieces(3).isEmpty());
  EXPECT_EQ(pieces(4), of({4, 5, 6}));
  EXPECT_TRUE(pieces(5).isEmpty()); // no such file
  // Adds to what is there.
  Roaring r = of({100});
  pieces_of_file(t.layout, file_index{1}, r);
  EXPECT_EQ(r, of({2, 100}));

  // Exact piece boundaries, padding files and a file ending exactly at a boundary.
  auto u = make_torrent({spec{{"x"}, 16}, spec{{".pad", "0"}, 16, true}, spec{{"y"}, 17}}, 16);
  Roaring x, pad, y;
  pieces_of_file(u.layout, file_index{0}, x);
  pieces_of_file(u.layout, file_index{1}, pad);
  pieces_of_file(u.layout, file_index{2}, y);
  EXPECT_EQ(x, of({0}));
  EXPECT_EQ(pad, of({1}));
  EXPECT_EQ(y, of({2, 3}));
}

// A check of existing data cut short: the pieces never hashed (2, 5, 6) make their files
// unknown, so the next load hashes every piece of those files and trusts only the rest.
TEST_F(resume_test, unchecked_pieces_make_their_files_checked_again) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, of({0, 1, 3}), of({2, 5, 6})).ok());
  auto r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.trusted, of({3})) << show(r.trusted);
  EXPECT_EQ(r.to_check, of({0, 1, 2, 4, 5, 6})) << show(r.to_check);
  EXPECT_EQ(r.warning, "");
}

TEST_F(resume_test, round_trip_trusts_exactly_the_saved_pieces) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  for (const Roaring& verified : {of({}), of({0, 2, 5}), range(0, 7), of({6})}) {
    ASSERT_TRUE(save_resume(out_, t.meta, t.layout, verified).ok());
    auto r = load_resume(out_, t.meta, t.layout);
    EXPECT_EQ(r.trusted, verified) << show(r.trusted);
    EXPECT_TRUE(r.to_check.isEmpty()) << show(r.to_check);
    EXPECT_EQ(r.warning, "");
  }
  // The file is where resume_path says, alone in .actorrent/ (no temporary file left over).
  EXPECT_EQ(entries(out_ + "/.actorrent"),
            std::vector<std::string>{to_hex(t.meta.hash) + ".resume"});
}

TEST_F(resume_test, large_bitmaps_round_trip) {
  // 100 000 pieces of 1 byte in one file: run, array and bitset containers all appear.
  auto t = make_torrent({spec{{"big"}, 100000}}, 1);
  write_data(t);
  Roaring verified = range(0, 70000); // run
  for (std::uint32_t i = 70000; i < 100000; i += 3)
    verified.add(i); // dense: bitset container
  verified.remove(12345);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, verified).ok());
  auto r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.warning, "");
  EXPECT_EQ(r.trusted, verified);
  EXPECT_TRUE(r.to_check.isEmpty());
}

TEST_F(resume_test, non_utf8_file_names_round_trip) {
  auto t = make_torrent({spec{{"caf\xe9"}, 20}, spec{{"ok"}, 12}}, 16);
  write_data(t);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, range(0, 2)).ok());
  auto r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.warning, "");
  EXPECT_EQ(r.trusted, range(0, 2));
}

TEST_F(resume_test, missing_resume_file_without_data_is_a_fresh_download) {
  auto t = make_torrent(sample_files, 16);
  auto r = load_resume(out_, t.meta, t.layout);
  EXPECT_TRUE(r.trusted.isEmpty());
  EXPECT_TRUE(r.to_check.isEmpty());
  EXPECT_EQ(r.warning, "");

  // Empty files (what a crash right after creating them leaves) are no data either.
  std::filesystem::create_directories(out_ + "/t/sub");
  spit(out_ + "/t/a", "");
  spit(out_ + "/t/d", "");
  r = load_resume(out_, t.meta, t.layout);
  EXPECT_TRUE(r.to_check.isEmpty());
  EXPECT_EQ(r.warning, "");
  // Nothing was created by looking.
  EXPECT_FALSE(std::filesystem::exists(out_ + "/.actorrent"));
}

TEST_F(resume_test, missing_resume_file_with_data_checks_everything) {
  auto t = make_torrent(sample_files, 16);
  std::filesystem::create_directories(out_ + "/t/sub");
  spit(out_ + "/t/sub/c", "x");
  // Nothing is damaged: the first run over existing data is told, not warned.
  auto r = load_resume(out_, t.meta, t.layout);
  EXPECT_TRUE(r.trusted.isEmpty()) << show(r.trusted);
  EXPECT_EQ(r.to_check, range(0, t.layout.piece_count())) << show(r.to_check);
  EXPECT_EQ(r.warning, "");
  EXPECT_EQ(r.notice, "resume file " + resume_path(out_, t.meta.hash) +
                          ": not found, but data files exist; checking all data");
}

TEST_F(resume_test, changed_file_moves_exactly_its_pieces_to_to_check) {
  auto t = make_torrent(sample_files, 16);
  const std::uint32_t n = t.layout.piece_count();
  // For each file: which pieces it overlaps, including those spanning into its neighbours.
  const std::vector<Roaring> overlapping = {of({0, 1, 2}), of({2}), of({3, 4}), of({}),
                                            of({4, 5, 6})};
  for (std::uint32_t f = 0; f < t.layout.files().size(); ++f) {
    for (int how = 0; how < 3; ++how) {
      SCOPED_TRACE("file " + std::to_string(f) + " change " + std::to_string(how));
      write_data(t);
      ASSERT_TRUE(save_resume(out_, t.meta, t.layout, range(0, n)).ok());
      const auto path = data(t, f);
      if (how == 0) {
        shift_mtime(path, 1); // one nanosecond later, same content
      } else if (how == 1) {
        shift_mtime(path, -1000000000); // a second earlier
      } else {
        // Grown by a byte, mtime put back: the size alone must count.
        struct stat st;
        ASSERT_EQ(::stat(path.c_str(), &st), 0);
        spit(path, slurp(path) + "z");
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
      }
      auto r = load_resume(out_, t.meta, t.layout);
      EXPECT_EQ(r.warning, "");
      EXPECT_EQ(r.to_check, overlapping[f]) << show(r.to_check);
      EXPECT_EQ(r.trusted, range(0, n) - overlapping[f]) << show(r.trusted);
    }
  }
}

TEST_F(resume_test, changed_file_also_rechecks_pieces_completed_after_the_save) {
  // A piece written and verified after the last save has no record but its file's mtime
  // changed: it is worth hashing rather than downloading again.
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, of({0, 5})).ok());
  shift_mtime(data(t, 2), 5); // c: pieces 3, 4
  auto r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.warning, "");
  EXPECT_EQ(r.trusted, of({0, 5}));
  EXPECT_EQ(r.to_check, of({3, 4}));
}

TEST_F(resume_test, deleted_or_replaced_data_file_is_not_trusted) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, range(0, 7)).ok());
  ASSERT_EQ(::unlink(data(t, 4).c_str()), 0); // e
  auto r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.trusted, of({0, 1, 2, 3}));
  EXPECT_EQ(r.to_check, of({4, 5, 6}));

  // A symbolic link where a file was is not the file, even pointing at identical data.
  write_data(t);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, range(0, 7)).ok());
  const auto a = data(t, 0);
  ASSERT_EQ(::rename(a.c_str(), (tmp_ + "/a").c_str()), 0);
  ASSERT_EQ(::symlink((tmp_ + "/a").c_str(), a.c_str()), 0);
  r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.trusted, of({3, 4, 5, 6}));
  EXPECT_EQ(r.to_check, of({0, 1, 2}));
}

TEST_F(resume_test, file_saved_missing_or_short_is_never_trusted) {
  // Saved while e did not exist (and claiming its pieces): e's pieces are checked, not trusted.
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  ASSERT_EQ(::unlink(data(t, 4).c_str()), 0);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, range(0, 7)).ok());
  auto r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.trusted, of({0, 1, 2, 3}));
  EXPECT_EQ(r.to_check, of({4, 5, 6}));

  // Saved while c was shorter than its torrent length, unchanged since.
  write_data(t);
  spit(data(t, 2), "short");
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, range(0, 7)).ok());
  r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.trusted, of({0, 1, 2, 5, 6}));
  EXPECT_EQ(r.to_check, of({3, 4}));

  // Then given its full length with the recorded mtime put back: only the recorded size
  // differs, and that is enough.
  struct stat st;
  ASSERT_EQ(::stat(data(t, 2).c_str(), &st), 0);
  spit(data(t, 2), t.bytes.substr(48, 30));
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, data(t, 2).c_str(), times, 0), 0);
  r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.trusted, of({0, 1, 2, 5, 6}));
  EXPECT_EQ(r.to_check, of({3, 4}));
}

TEST_F(resume_test, truncated_at_every_length_means_a_full_check) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, of({0, 1, 3, 6})).ok());
  const auto path = resume_path(out_, t.meta.hash);
  const auto good = slurp(path);
  ASSERT_GT(good.size(), 100u);
  for (std::size_t len = 0; len < good.size(); ++len) {
    SCOPED_TRACE("length " + std::to_string(len));
    spit(path, good.substr(0, len));
    expect_full_check(t);
  }
  // The control: the whole file is trusted again.
  spit(path, good);
  auto r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.warning, "");
  EXPECT_EQ(r.trusted, of({0, 1, 3, 6}));
}

TEST_F(resume_test, truncation_inside_a_field_is_located) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, of({1})).ok());
  const auto path = resume_path(out_, t.meta.hash);
  const auto good = slurp(path);
  // Field 2 (info-hash) starts at byte 2 after the 2-byte version field: tag, length 20, ...
  ASSERT_EQ(static_cast<unsigned char>(good[2]), (2 << 3) | 2);
  spit(path, good.substr(0, 12));
  expect_full_check(t, "field 2 at byte 2 is 20 bytes long but only 8 remain (truncated)");
  // Cut just before the checksum: every field parses, the checksum is what is missing.
  spit(path, good.substr(0, good.size() - 22));
  expect_full_check(t, "no checksum");
}

TEST_F(resume_test, random_byte_flips_are_detected) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, of({0, 2, 4})).ok());
  const auto path = resume_path(out_, t.meta.hash);
  const auto good = slurp(path);
  std::mt19937 rng(42);
  int parse_failures = 0, checksum_failures = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string bad = good;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k)
      bad[rng() % bad.size()] ^= static_cast<char>(1 + rng() % 255);
    if (bad == good)
      continue;
    SCOPED_TRACE("round " + std::to_string(round));
    overwrite(path, bad);
    auto r = load_resume(out_, t.meta, t.layout);
    ASSERT_TRUE(r.trusted.isEmpty()) << show(r.trusted);
    ASSERT_EQ(r.to_check, range(0, 7));
    ASSERT_NE(r.warning.find("checking all data"), std::string::npos) << r.warning;
    parse_failures += r.warning.find("byte") != std::string::npos &&
                      r.warning.find("checksum") == std::string::npos;
    checksum_failures += r.warning.find("checksum") != std::string::npos;
  }
  // Both kinds of damage came up, so both paths were exercised.
  EXPECT_GT(parse_failures, 0);
  EXPECT_GT(checksum_failures, 0);
}

TEST_F(resume_test, bad_bitmaps_behind_a_valid_checksum_are_refused) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, of({0, 2, 4})).ok());
  const auto path = resume_path(out_, t.meta.hash);
  config::resume_data good;
  ASSERT_TRUE(good.ParseFromString(slurp(path)));
  const std::string bitmap = good.verified_pieces();

  // Cut short at every length: roaring refuses it (it throws; this must not escape).
  for (std::size_t len = 0; len < bitmap.size(); ++len) {
    SCOPED_TRACE("bitmap length " + std::to_string(len));
    auto d = good;
    d.set_verified_pieces(bitmap.substr(0, len));
    spit(path, seal(d));
    expect_full_check(t, "verified-piece bitmap (" + std::to_string(len) + " bytes at byte ");
  }
  // Trailing garbage after a valid bitmap.
  auto d = good;
  d.set_verified_pieces(bitmap + "xyz");
  spit(path, seal(d));
  expect_full_check(t, "decodes from " + std::to_string(bitmap.size()) + " of its");
  // A piece beyond the torrent's 7.
  auto beyond = of({1, 7});
  std::string b(beyond.getSizeInBytes(), '\0');
  beyond.write(b.data());
  d = good;
  d.set_verified_pieces(b);
  spit(path, seal(d));
  expect_full_check(t, "holds piece 7 but the torrent has 7 pieces");
  // Garbage of the right general size.
  d = good;
  d.set_verified_pieces(std::string(bitmap.size(), '\xa5'));
  spit(path, seal(d));
  expect_full_check(t, "verified-piece bitmap");
}

TEST_F(resume_test, resume_file_of_another_torrent_or_format_is_refused) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, range(0, 7)).ok());
  const auto path = resume_path(out_, t.meta.hash);
  config::resume_data good;
  ASSERT_TRUE(good.ParseFromString(slurp(path)));

  // Another torrent's file under this torrent's name.
  auto d = good;
  info_hash other{};
  other.fill(0xab);
  d.set_info_hash(std::string(20, '\xab'));
  spit(path, seal(d));
  expect_full_check(t, "belongs to torrent " + to_hex(other) + ", not " + to_hex(t.meta.hash));

  d = good;
  d.set_version(2);
  spit(path, seal(d));
  expect_full_check(t, "format version 2, expected 1");

  d = good;
  d.set_piece_count(8);
  spit(path, seal(d));
  expect_full_check(t, "records 8 pieces, the torrent has 7");

  d = good;
  d.mutable_files()->RemoveLast();
  spit(path, seal(d));
  expect_full_check(t, "records 4 files, the torrent has 5");

  d = good;
  d.mutable_files(1)->set_path("t/sub/B");
  spit(path, seal(d));
  expect_full_check(t, "file record 1 is \"t/sub/B\", the torrent's file is \"t/sub/b\"");

  // The same info-hash with a different layout (as if the torrent's pieces changed).
  auto u = make_torrent(sample_files, 32);
  u.meta.hash = t.meta.hash;
  spit(path, seal(good));
  expect_full_check(u, "records 7 pieces, the torrent has 4");
}

TEST_F(resume_test, load_is_bounded_and_refuses_odd_files) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, range(0, 7)).ok());
  const auto path = resume_path(out_, t.meta.hash);
  const auto good = slurp(path);

  // Larger than 64 MiB (sparse, so cheap): refused without reading it.
  spit(path, good);
  ASSERT_EQ(::truncate(path.c_str(), (64 << 20) + 1), 0);
  expect_full_check(t, "more than the limit of 67108864 bytes");
  // Exactly 64 MiB passes the size check (and then fails as trailing zeros break the format).
  ASSERT_EQ(::truncate(path.c_str(), 64 << 20), 0);
  expect_full_check(t);

  // A directory, or a symbolic link to a good copy.
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
  expect_full_check(t, "not a regular file");
  ASSERT_EQ(::rmdir(path.c_str()), 0);
  spit(tmp_ + "/copy", good);
  ASSERT_EQ(::symlink((tmp_ + "/copy").c_str(), path.c_str()), 0);
  expect_full_check(t, "symbolic link");
}

TEST_F(resume_test, save_is_atomic_and_leaves_no_temporary_file) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, of({1})).ok());
  const auto path = resume_path(out_, t.meta.hash);
  const auto first = slurp(path);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, of({1, 2})).ok());
  EXPECT_NE(slurp(path), first);
  EXPECT_EQ(entries(out_ + "/.actorrent"),
            std::vector<std::string>{to_hex(t.meta.hash) + ".resume"});
  const auto second = slurp(path);

  // Make writing the temporary file fail part-way (file size limit, as a full disk would):
  // the save fails, the old file is intact and no temporary file is left behind.
  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old_limit;
  small.rlim_cur = 10;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  auto s = save_resume(out_, t.meta, t.layout, range(0, 7));
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, errc::io_error);
  EXPECT_NE(s.error().message.find(".actorrent/." + to_hex(t.meta.hash) + ".resume.tmp-"),
            std::string::npos)
      << s.error().message;
  EXPECT_EQ(slurp(path), second);
  EXPECT_EQ(entries(out_ + "/.actorrent"),
            std::vector<std::string>{to_hex(t.meta.hash) + ".resume"});
  auto r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.warning, "");
  EXPECT_EQ(r.trusted, of({1, 2}));
}

TEST_F(resume_test, save_creates_dot_actorrent_and_reports_failures) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  // Refuses pieces the torrent does not have, writing nothing.
  auto s = save_resume(out_, t.meta, t.layout, of({7}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, errc::invalid_argument);
  EXPECT_FALSE(std::filesystem::exists(out_ + "/.actorrent"));

  // .actorrent that is not a directory.
  spit(out_ + "/.actorrent", "in the way");
  s = save_resume(out_, t.meta, t.layout, of({1}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, errc::io_error);
  EXPECT_NE(s.error().message.find("not a directory"), std::string::npos) << s.error().message;
  EXPECT_EQ(slurp(out_ + "/.actorrent"), "in the way");

  // A fresh output directory gets one.
  const std::string fresh = tmp_ + "/fresh";
  ASSERT_TRUE(save_resume(fresh, t.meta, t.layout, of({})).ok());
  EXPECT_TRUE(std::filesystem::is_directory(fresh + "/.actorrent"));
  EXPECT_TRUE(std::filesystem::is_regular_file(resume_path(fresh, t.meta.hash)));
}

// -- file selection ----------------------------------------------------------------------------

TEST_F(resume_test, the_selection_round_trips_and_older_files_record_none) {
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  using fp = file_priority;
  const std::vector<fp> sel = {fp::normal, fp::skip, fp::high, fp::skip, fp::normal};
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, range(0, 7), Roaring(), sel).ok());
  EXPECT_EQ(load_resume(out_, t.meta, t.layout).priorities, sel);
  // Saved without a selection (as every resume file before it was recorded): none, and the
  // file loads as before.
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, range(0, 7)).ok());
  auto r = load_resume(out_, t.meta, t.layout);
  EXPECT_TRUE(r.priorities.empty());
  EXPECT_EQ(r.trusted, range(0, 7));
  EXPECT_EQ(save_resume(out_, t.meta, t.layout, range(0, 7), Roaring(), {fp::skip})
              .error()
              .message,
            "1 file priorities for a torrent of 5 files");
}

TEST_F(resume_test, a_skipped_absent_file_keeps_its_boundary_pieces_while_the_part_file_is_there) {
  // e skipped and never created: piece 4 (c and e) was verified with e's bytes in the part file.
  auto t = make_torrent(sample_files, 16);
  write_data(t);
  ASSERT_EQ(::unlink(data(t, 4).c_str()), 0);
  const auto part = part_file_path(out_, t.meta.hash);
  ASSERT_EQ(part, out_ + "/.actorrent/" + to_hex(t.meta.hash) + ".parts");
  using fp = file_priority;
  const std::vector<fp> sel = {fp::normal, fp::normal, fp::normal, fp::normal, fp::skip};
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, range(0, 5), Roaring(), sel).ok());
  spit(part, "stands for the part file");
  auto r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.trusted, range(0, 5)) << show(r.trusted);
  EXPECT_TRUE(r.to_check.isEmpty()) << show(r.to_check);

  // Without the part file those bytes are gone: piece 4 (and what else touches e) is checked.
  ASSERT_EQ(::unlink(part.c_str()), 0);
  r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.trusted, range(0, 4)) << show(r.trusted);
  EXPECT_EQ(r.to_check, of({4, 5, 6})) << show(r.to_check);

  // e present now (created by hand, or by an earlier run of another selection): a change.
  spit(part, "stands for the part file");
  spit(data(t, 4), t.bytes.substr(78, 20));
  r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.trusted, range(0, 4)) << show(r.trusted);
  EXPECT_EQ(r.to_check, of({4, 5, 6})) << show(r.to_check);

  // The same when e was recorded as selected: absent then and now is never trusted.
  ASSERT_EQ(::unlink(data(t, 4).c_str()), 0);
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, range(0, 5), Roaring(),
                          std::vector<fp>(5, fp::normal))
                .ok());
  r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.to_check, of({4, 5, 6})) << show(r.to_check);

  // And when e's pieces were never hashed (a check cut short): unknown beats skipped.
  ASSERT_TRUE(save_resume(out_, t.meta, t.layout, range(0, 4), of({4}), sel).ok());
  r = load_resume(out_, t.meta, t.layout);
  EXPECT_EQ(r.to_check, of({3, 4, 5, 6})) << show(r.to_check);
  EXPECT_TRUE(r.priorities.empty()); // not every file recorded one
}
