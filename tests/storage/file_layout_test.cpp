#include "storage/file_layout.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

using namespace actorrent;

namespace {

struct spec {
  std::vector<std::string> path;
  std::uint64_t length;
  bool pad = false;
};

// Builds the metainfo parse_metainfo would produce for these files (a multi-file torrent "t").
metainfo make_meta(const std::vector<spec>& files, std::uint32_t piece_length,
                   std::string name = "t") {
  metainfo m;
  m.name = std::move(name);
  m.piece_length = piece_length;
  m.multi_file = true;
  for (const auto& f : files) {
    m.files.push_back(file_entry{f.path, f.length, f.pad});
    m.total_size += f.length;
  }
  auto pieces = (m.total_size + piece_length - 1) / piece_length;
  m.piece_hashes.resize(pieces);
  return m;
}

// Unnamed files "f0", "f1", ... of the given lengths.
metainfo make_lens(const std::vector<std::uint64_t>& lengths, std::uint32_t piece_length) {
  std::vector<spec> files;
  for (std::size_t i = 0; i < lengths.size(); ++i)
    files.push_back(spec{{"f" + std::to_string(i)}, lengths[i]});
  return make_meta(files, piece_length);
}

file_layout make_layout(const metainfo& m) {
  auto l = file_layout::create(m);
  EXPECT_TRUE(l.ok()) << (l.ok() ? "" : l.error().message);
  return l.ok() ? std::move(*l) : file_layout{};
}

std::vector<file_slice> map(const file_layout& l, std::uint32_t p, std::uint32_t off,
                            std::uint32_t len) {
  std::vector<file_slice> out;
  l.map_block(piece_index{p}, off, len, out);
  return out;
}

// Compact text form so a failing comparison prints something readable.
std::string str(const std::vector<file_slice>& v) {
  std::string s;
  for (const auto& x : v)
    s += "(" + std::to_string(x.file.value) + "," + std::to_string(x.file_offset) + "," +
         std::to_string(x.length) + ")";
  return s;
}

// Independent reference: walks the files byte by byte, no offsets table, no binary search.
std::pair<std::uint32_t, std::uint64_t> brute_force_locate(const std::vector<std::uint64_t>& lens,
                                                           std::uint64_t pos) {
  for (std::uint32_t i = 0; i < lens.size(); ++i) {
    for (std::uint64_t b = 0; b < lens[i]; ++b) {
      if (pos == 0)
        return {i, b};
      --pos;
    }
  }
  ADD_FAILURE() << "position past the end";
  return {0, 0};
}

error create_error(const metainfo& m) {
  auto l = file_layout::create(m);
  EXPECT_FALSE(l.ok());
  return l.ok() ? error{} : l.error();
}

} // namespace

TEST(file_layout, offsets_sizes_and_paths) {
  auto m = make_meta({spec{{"a", "b.txt"}, 5}, spec{{"c"}, 0}, spec{{"d"}, 7}}, 4);
  auto l = make_layout(m);
  ASSERT_EQ(l.files().size(), 3u);
  EXPECT_EQ(l.files()[0].path, "t/a/b.txt");
  EXPECT_EQ(l.files()[1].path, "t/c");
  EXPECT_EQ(l.files()[2].path, "t/d");
  EXPECT_EQ(l.files()[0].offset, 0u);
  EXPECT_EQ(l.files()[1].offset, 5u);
  EXPECT_EQ(l.files()[2].offset, 5u);
  EXPECT_EQ(l.total_size(), 12u);
  EXPECT_EQ(l.piece_length(), 4u);
  EXPECT_EQ(l.piece_count(), 3u);
}

TEST(file_layout, single_file_path_is_the_name) {
  metainfo m;
  m.name = "movie.mkv";
  m.piece_length = 16;
  m.files.push_back(file_entry{{"movie.mkv"}, 40, false});
  m.total_size = 40;
  m.piece_hashes.resize(3);
  auto l = make_layout(m);
  ASSERT_EQ(l.files().size(), 1u);
  EXPECT_EQ(l.files()[0].path, "movie.mkv");
  EXPECT_EQ(l.piece_count(), 3u);
  EXPECT_EQ(l.piece_size(piece_index{2}), 8u);
  EXPECT_EQ(str(map(l, 1, 3, 13)), "(0,19,13)");

  m.name = "..";
  m.files[0].path = {".."};
  auto e = create_error(m);
  EXPECT_EQ(e.code, errc::unsafe_path);
  EXPECT_EQ(e.message, "file 0: path component \"..\" is not allowed");
}

TEST(file_layout, short_last_piece) {
  auto l = make_layout(make_lens({10}, 4));
  ASSERT_EQ(l.piece_count(), 3u);
  EXPECT_EQ(l.piece_size(piece_index{0}), 4u);
  EXPECT_EQ(l.piece_size(piece_index{1}), 4u);
  EXPECT_EQ(l.piece_size(piece_index{2}), 2u);
  EXPECT_EQ(str(map(l, 2, 0, 2)), "(0,8,2)");

  // Exact multiple: the last piece is full.
  auto full = make_layout(make_lens({12}, 4));
  ASSERT_EQ(full.piece_count(), 3u);
  EXPECT_EQ(full.piece_size(piece_index{2}), 4u);
}

TEST(file_layout, piece_spanning_three_and_more_files) {
  auto l = make_layout(make_lens({3, 1, 2, 10}, 8));
  EXPECT_EQ(str(map(l, 0, 0, 8)), "(0,0,3)(1,0,1)(2,0,2)(3,0,2)");
  EXPECT_EQ(str(map(l, 0, 2, 5)), "(0,2,1)(1,0,1)(2,0,2)(3,0,1)");
  EXPECT_EQ(str(map(l, 1, 0, 8)), "(3,2,8)");
}

TEST(file_layout, zero_byte_files_at_start_middle_and_end_are_skipped) {
  auto l = make_layout(make_lens({0, 0, 5, 0, 0, 3, 0}, 4));
  ASSERT_EQ(l.piece_count(), 2u);
  EXPECT_EQ(l.files()[2].offset, 0u);
  EXPECT_EQ(l.files()[5].offset, 5u);
  EXPECT_EQ(l.files()[6].offset, 8u);
  EXPECT_EQ(str(map(l, 0, 0, 4)), "(2,0,4)");
  EXPECT_EQ(str(map(l, 1, 0, 4)), "(2,4,1)(5,0,3)");
  EXPECT_EQ(str(map(l, 1, 1, 3)), "(5,0,3)");
  EXPECT_EQ(l.file_at(0).value, 2u);
  EXPECT_EQ(l.file_at(4).value, 2u);
  EXPECT_EQ(l.file_at(5).value, 5u);
  EXPECT_EQ(l.file_at(7).value, 5u);
}

TEST(file_layout, one_byte_files) {
  auto l = make_layout(make_lens({1, 1, 1, 1, 1}, 2));
  ASSERT_EQ(l.piece_count(), 3u);
  EXPECT_EQ(str(map(l, 0, 0, 2)), "(0,0,1)(1,0,1)");
  EXPECT_EQ(str(map(l, 1, 1, 1)), "(3,0,1)");
  EXPECT_EQ(l.piece_size(piece_index{2}), 1u);
  EXPECT_EQ(str(map(l, 2, 0, 1)), "(4,0,1)");
  for (std::uint32_t i = 0; i < 5; ++i)
    EXPECT_EQ(l.file_at(i).value, i);
}

TEST(file_layout, piece_ending_exactly_at_a_file_boundary) {
  auto l = make_layout(make_lens({8, 0, 8, 4}, 8));
  // Piece 0 ends where file 0 ends: no empty slice of file 2, nor of the 0-byte file 1.
  EXPECT_EQ(str(map(l, 0, 0, 8)), "(0,0,8)");
  EXPECT_EQ(str(map(l, 0, 4, 4)), "(0,4,4)");
  EXPECT_EQ(str(map(l, 1, 0, 8)), "(2,0,8)");
  EXPECT_EQ(str(map(l, 2, 0, 4)), "(3,0,4)");
  EXPECT_EQ(l.file_at(7).value, 0u);
  EXPECT_EQ(l.file_at(8).value, 2u);
}

TEST(file_layout, map_block_appends_and_ignores_empty_ranges) {
  auto l = make_layout(make_lens({3, 5}, 4));
  std::vector<file_slice> out{file_slice{file_index{9}, 1, 1}};
  l.map_block(piece_index{0}, 2, 2, out);
  EXPECT_EQ(str(out), "(9,1,1)(0,2,1)(1,0,1)");
  l.map_block(piece_index{1}, 4, 0, out);
  EXPECT_EQ(out.size(), 3u);
}

TEST(file_layout, map_block_matches_brute_force_for_every_block) {
  const std::vector<std::vector<std::uint64_t>> cases = {
      {0, 7, 1, 0, 0, 13, 2, 1, 1, 0, 29, 5, 0},
      {1, 1, 1, 0, 1, 1, 3},
      {0, 0, 0, 100},
      {17, 0, 17, 17, 0, 1},
      {2, 3, 5, 7, 11, 13, 17, 19, 23, 0},
  };
  for (std::uint32_t piece_length : {1u, 3u, 7u, 13u, 16u}) {
    for (const auto& lens : cases) {
      SCOPED_TRACE("piece length " + std::to_string(piece_length));
      auto l = make_layout(make_lens(lens, piece_length));
      std::uint64_t total = 0;
      for (auto n : lens)
        total += n;
      ASSERT_EQ(l.total_size(), total);
      ASSERT_EQ(l.piece_count(), (total + piece_length - 1) / piece_length);
      for (std::uint64_t pos = 0; pos < total; ++pos)
        ASSERT_EQ(l.file_at(pos).value, brute_force_locate(lens, pos).first) << "pos " << pos;

      // Every (offset, length) inside every piece: small enough to be exhaustive.
      for (std::uint32_t p = 0; p < l.piece_count(); ++p) {
        const auto size = l.piece_size(piece_index{p});
        ASSERT_EQ(size,
                  std::min<std::uint64_t>(piece_length, total - std::uint64_t{p} * piece_length));
        for (std::uint32_t off = 0; off < size; ++off) {
          for (std::uint32_t len = 1; off + len <= size; ++len) {
            auto slices = map(l, p, off, len);
            std::uint64_t pos = std::uint64_t{p} * piece_length + off;
            std::uint64_t covered = 0;
            for (std::size_t k = 0; k < slices.size(); ++k) {
              const auto& s = slices[k];
              ASSERT_GT(s.length, 0u) << str(slices);
              ASSERT_LE(s.file_offset + s.length, lens[s.file.value]) << str(slices);
              // Maximal runs: two slices of one file would mean a missed merge.
              if (k > 0) {
                ASSERT_LT(slices[k - 1].file.value, s.file.value) << str(slices);
              }
              for (std::uint64_t b = 0; b < s.length; ++b, ++pos) {
                auto [file, in_file] = brute_force_locate(lens, pos);
                ASSERT_EQ(s.file.value, file)
                    << "piece " << p << " off " << off << " len " << len << ": " << str(slices);
                ASSERT_EQ(s.file_offset + b, in_file) << str(slices);
              }
              covered += s.length;
            }
            ASSERT_EQ(covered, len) << str(slices);
          }
        }
      }
    }
  }
}

TEST(file_layout, sanitize_accepts_ordinary_components) {
  auto p = sanitize_path({"dir", "sub dir", "file.tar.gz"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, "dir/sub dir/file.tar.gz");
  auto dots = sanitize_path({"...", ".hidden", "a..b", "x:"});
  ASSERT_TRUE(dots.ok()) << dots.error().message;
  EXPECT_EQ(*dots, ".../.hidden/a..b/x:");
  // A colon after the first component is an ordinary Linux file name.
  auto colon = sanitize_path({"dir", "C:"});
  ASSERT_TRUE(colon.ok());
  EXPECT_EQ(*colon, "dir/C:");
}

TEST(file_layout, sanitize_rejections) {
  struct rejection {
    std::vector<std::string> components;
    std::string message;
  };
  const std::vector<rejection> cases = {
      {{}, "empty path"},
      {{"a", ".."}, "path component \"..\" is not allowed"},
      {{"..", "etc"}, "path component \"..\" is not allowed"},
      {{"."}, "path component \".\" is not allowed"},
      {{"a", ""}, "path component 1 is empty"},
      {{".actorrent"}, "path component \".actorrent\" is reserved for actorrent's resume data"},
      {{".actorrent", "x.resume"},
       "path component \".actorrent\" is reserved for actorrent's resume data"},
      {{""}, "path component 0 is empty"},
      {{"a/b"}, "path component \"a/b\" contains '/'"},
      {{"x", "../../etc"}, "path component \"../../etc\" contains '/'"},
      {{"a\\b"}, "path component \"a\\\\b\" contains '\\'"},
      {{"..\\..\\x"}, "path component \"..\\\\..\\\\x\" contains '\\'"},
      {{"C:"}, "path component \"C:\" starts with a drive letter"},
      {{"c:evil", "x"}, "path component \"c:evil\" starts with a drive letter"},
      {{std::string("a\0b", 3)}, "path component \"a\\x00b\" contains a NUL byte"},
      {{"/etc"}, "absolute path \"/etc\""},
      {{"/"}, "absolute path \"/\""},
  };
  for (const auto& c : cases) {
    auto r = sanitize_path(c.components);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_EQ(r.error().code, errc::unsafe_path);
    EXPECT_EQ(r.error().message, c.message);
  }
}

TEST(file_layout, sanitize_limits_length) {
  std::vector<std::string> parts(16, std::string(255, 'x')); // 16 * 256 - 1 = 4095 bytes
  auto ok = sanitize_path(parts);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 4095u);
  parts.push_back("y"); // 4097 bytes
  auto r = sanitize_path(parts);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::unsafe_path);
  EXPECT_EQ(r.error().message, "path is longer than 4096 bytes");
}

TEST(file_layout, create_names_the_offending_file) {
  auto m = make_meta({spec{{"a"}, 1}, spec{{"b"}, 1}, spec{{"c"}, 1}, spec{{"x", ".."}, 1}}, 4);
  auto e = create_error(m);
  EXPECT_EQ(e.code, errc::unsafe_path);
  EXPECT_EQ(e.message, "file 3: path component \"..\" is not allowed");

  e = create_error(make_meta({spec{{"/etc", "passwd"}, 1}}, 4));
  EXPECT_EQ(e.code, errc::unsafe_path);
  EXPECT_EQ(e.message, "file 0: absolute path \"/etc\"");

  e = create_error(make_meta({spec{{"ok"}, 1}, spec{{}, 1}}, 4));
  EXPECT_EQ(e.code, errc::unsafe_path);
  EXPECT_EQ(e.message, "file 1: empty path");

  e = create_error(make_meta({spec{{"ok"}, 1}}, 4, ".."));
  EXPECT_EQ(e.code, errc::unsafe_path);
  EXPECT_EQ(e.message, "torrent name: path component \"..\" is not allowed");

  e = create_error(make_meta({spec{{"ok"}, 1}}, 4, "a/b"));
  EXPECT_EQ(e.code, errc::unsafe_path);
  EXPECT_EQ(e.message, "torrent name: path component \"a/b\" contains '/'");

  // Name plus components longer than 4096 although each part alone is fine.
  e = create_error(make_meta({spec{std::vector<std::string>(16, std::string(255, 'x')), 1}}, 4));
  EXPECT_EQ(e.code, errc::unsafe_path);
  EXPECT_EQ(e.message, "file 0: path is longer than 4096 bytes");
}

TEST(file_layout, duplicates_and_file_directory_conflicts) {
  auto e = create_error(make_meta({spec{{"a"}, 1}, spec{{"b"}, 1}, spec{{"a"}, 2}}, 4));
  EXPECT_EQ(e.code, errc::unsafe_path);
  EXPECT_EQ(e.message, "file 2: path \"t/a\" duplicates file 0");

  e = create_error(make_meta({spec{{"d", "x"}, 1}, spec{{"d", "x"}, 0}}, 4));
  EXPECT_EQ(e.code, errc::unsafe_path);
  EXPECT_EQ(e.message, "file 1: path \"t/d/x\" duplicates file 0");

  // "a-x" sorts between "a" and "a/b": a conflict check by adjacent sorted paths would miss this.
  e = create_error(make_meta({spec{{"a"}, 1}, spec{{"a-x"}, 1}, spec{{"a", "b"}, 1}}, 4));
  EXPECT_EQ(e.code, errc::unsafe_path);
  EXPECT_EQ(e.message, "file 0: path \"t/a\" is also a directory of file 2 (\"t/a/b\")");

  e = create_error(make_meta({spec{{"a", "b", "c"}, 1}, spec{{"a", "b"}, 1}}, 4));
  EXPECT_EQ(e.code, errc::unsafe_path);
  EXPECT_EQ(e.message, "file 1: path \"t/a/b\" is also a directory of file 0 (\"t/a/b/c\")");

  // Padding files never reach the disk, and BEP 47 torrents repeat their paths.
  auto ok =
      file_layout::create(make_meta({spec{{"a"}, 3}, spec{{".pad", "1"}, 1, true}, spec{{"b"}, 3},
                                     spec{{".pad", "1"}, 1, true}, spec{{"c"}, 1}},
                                    4));
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_TRUE(ok->files()[1].pad);
  EXPECT_FALSE(ok->files()[2].pad);
  EXPECT_EQ(ok->files()[3].path, "t/.pad/1");
}

TEST(file_layout, inconsistent_metainfo_is_refused) {
  auto m = make_lens({10}, 4);
  m.piece_hashes.resize(2);
  auto e = create_error(m);
  EXPECT_EQ(e.code, errc::metainfo_invalid);
  EXPECT_EQ(e.message, "2 piece hashes for 10 bytes in pieces of 4 (expected 3)");

  m = make_lens({10}, 4);
  m.piece_length = 0;
  EXPECT_EQ(create_error(m).code, errc::metainfo_invalid);

  m = make_lens({10}, 4);
  m.total_size = 11;
  EXPECT_EQ(create_error(m).code, errc::metainfo_invalid);

  m = make_lens({1, 1}, 4);
  m.multi_file = false;
  EXPECT_EQ(create_error(m).code, errc::metainfo_invalid);

  m = make_lens({}, 4);
  EXPECT_EQ(create_error(m).code, errc::metainfo_invalid);

  // Lengths that wrap around 2^64 must not produce a tiny total.
  m = make_lens({~std::uint64_t{0}, 2}, 4);
  EXPECT_EQ(create_error(m).code, errc::metainfo_invalid);

  // A torrent of only empty files has no pieces and is fine.
  auto empty = file_layout::create(make_lens({0, 0}, 4));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->piece_count(), 0u);
  EXPECT_EQ(empty->total_size(), 0u);
}

TEST(file_layout, large_offsets_do_not_overflow_32_bits) {
  // 5 GiB + 3 bytes in 1 MiB pieces: piece * piece_length exceeds 2^32.
  const std::uint64_t big = (5ull << 30);
  auto l = make_layout(make_lens({big, 3}, 1u << 20));
  ASSERT_EQ(l.piece_count(), 5121u);
  EXPECT_EQ(l.piece_size(piece_index{5120}), 3u);
  EXPECT_EQ(str(map(l, 5119, (1u << 20) - 2, 2)), "(0," + std::to_string(big - 2) + ",2)");
  EXPECT_EQ(str(map(l, 5120, 0, 3)), "(1,0,3)");
  EXPECT_EQ(l.file_at(big).value, 1u);
}

TEST(file_layout, reserved_name_only_at_the_top) {
  // Deeper down ".actorrent" is an ordinary directory name: it cannot reach the resume data.
  auto ok = sanitize_path({"album", ".actorrent", "x"});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(*ok, "album/.actorrent/x");
}
