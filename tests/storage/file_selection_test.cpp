#include "storage/file_selection.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <fnmatch.h>

#include "tests/storage/test_torrents.hpp"

using namespace actorrent;

namespace {

using test::spec;
using test::make_meta;

file_layout make_layout(const metainfo& m) {
  auto l = file_layout::create(m);
  EXPECT_TRUE(l.ok()) << (l.ok() ? "" : l.error().message);
  return l.ok() ? std::move(*l) : file_layout{};
}

std::vector<std::uint32_t> list(const std::string& text, std::uint32_t count) {
  auto r = parse_file_list(text, count);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : std::vector<std::uint32_t>{};
}

std::string list_error(const std::string& text, std::uint32_t count) {
  auto r = parse_file_list(text, count);
  EXPECT_FALSE(r.ok()) << text << " was accepted";
  return r.ok() ? "" : r.error().message;
}

// "sn h" style string of priorities: s = skip, n = normal, h = high.
std::string str(const std::vector<file_priority>& v) {
  std::string s;
  for (auto p : v)
    s += p == file_priority::skip ? 's' : p == file_priority::normal ? 'n' : 'h';
  return s;
}

} // namespace

TEST(file_list, singles_and_ranges_are_one_based_sorted_and_unique) {
  EXPECT_EQ(list("1", 5), (std::vector<std::uint32_t>{0}));
  EXPECT_EQ(list("1,3-5", 5), (std::vector<std::uint32_t>{0, 2, 3, 4}));
  EXPECT_EQ(list("4,2,2-3", 5), (std::vector<std::uint32_t>{1, 2, 3}));
  EXPECT_EQ(list("3-3", 3), (std::vector<std::uint32_t>{2}));
}

TEST(file_list, errors_name_the_item_and_column) {
  EXPECT_EQ(list_error("", 3), "empty list");
  EXPECT_EQ(list_error("1,,3", 3), "empty item at column 3");
  EXPECT_EQ(list_error("1,", 3), "empty item at column 3");
  EXPECT_EQ(list_error("0", 3), "file number 0 at column 1: files are numbered from 1");
  EXPECT_EQ(list_error("1,0-2", 3), "file number 0 at column 3: files are numbered from 1");
  EXPECT_EQ(list_error("5-3", 9), "range 5-3 at column 1 is reversed (write 3-5)");
  EXPECT_EQ(list_error("2,7", 4),
            "file number 7 at column 3 is out of range (the torrent has 4 files)");
  EXPECT_EQ(list_error("2", 1),
            "file number 2 at column 1 is out of range (the torrent has 1 file)");
  EXPECT_EQ(list_error("1,x", 3), "\"x\" at column 3 is not a file number");
  EXPECT_EQ(list_error(" 1", 3), "\" 1\" at column 1 is not a file number");
  EXPECT_EQ(list_error("1-", 3), "missing file number at column 3");
  EXPECT_EQ(list_error("-2", 3), "missing file number at column 1");
  EXPECT_EQ(list_error("1-2-3", 3), "\"2-3\" at column 3 is not a file number");
  EXPECT_EQ(list_error("99999999999", 3), "\"99999999999\" at column 1 is not a file number");
}

TEST(glob, star_and_question_stay_inside_one_component) {
  EXPECT_TRUE(glob_match("*.bin", "a.bin"));
  EXPECT_TRUE(glob_match("*.bin", "sub/deeper/a.bin")); // no '/': the file name anywhere
  EXPECT_FALSE(glob_match("*.bin", "a.bin.txt"));
  EXPECT_TRUE(glob_match("sub/*.bin", "sub/a.bin"));
  EXPECT_FALSE(glob_match("sub/*.bin", "sub/x/a.bin"));
  EXPECT_FALSE(glob_match("sub/*.bin", "a.bin"));
  EXPECT_FALSE(glob_match("s*b/a.bin", "s/x/b/a.bin"));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "ac"));
  EXPECT_TRUE(glob_match("*", "anything"));
  EXPECT_TRUE(glob_match("a*b*c", "axxbyybzc"));
  EXPECT_FALSE(glob_match("a*b*c", "axxbyyb"));
}

TEST(glob, classes_escapes_and_double_star) {
  EXPECT_TRUE(glob_match("f[0-9].txt", "f7.txt"));
  EXPECT_FALSE(glob_match("f[0-9].txt", "fx.txt"));
  EXPECT_TRUE(glob_match("f[!0-9].txt", "fx.txt"));
  EXPECT_FALSE(glob_match("f[!0-9].txt", "f1.txt"));
  EXPECT_TRUE(glob_match("[]a]", "]"));
  EXPECT_TRUE(glob_match("\\*.bin", "*.bin"));
  EXPECT_FALSE(glob_match("\\*.bin", "a.bin"));
  EXPECT_TRUE(glob_match("**/c.bin", "c.bin"));
  EXPECT_TRUE(glob_match("**/c.bin", "a/b/c.bin"));
  EXPECT_TRUE(glob_match("a/**/c.bin", "a/c.bin"));
  EXPECT_TRUE(glob_match("a/**/c.bin", "a/x/y/c.bin"));
  EXPECT_FALSE(glob_match("a/**/c.bin", "b/x/c.bin"));
  EXPECT_TRUE(glob_match("/top.bin", "top.bin"));
  EXPECT_TRUE(glob_match("a\\/b*", "a/bc")); // an escaped '/' is still the separator
  EXPECT_TRUE(glob_match("*\\/b", "a/b"));
}

TEST(glob, bad_patterns_are_refused_precisely) {
  EXPECT_EQ(check_glob("").error().message, "empty pattern");
  EXPECT_EQ(check_glob("a[bc").error().message, "'[' at column 2 is never closed");
  EXPECT_EQ(check_glob("a\\").error().message, "'\\' at the end of the pattern escapes nothing");
  EXPECT_EQ(check_glob("a[b/]").error().message,
            "'/' at column 4 is inside [...], where it can never match (paths are split at '/')");
  EXPECT_TRUE(check_glob("a[]]").ok());
  EXPECT_TRUE(check_glob("\\[x").ok());
}

TEST(select_files, lists_and_globs_are_united_over_listed_files) {
  // info lists: 1 a.bin, 2 sub/b.txt, 3 sub/c.bin, 4 d.txt (the padding file is not listed)
  auto m = make_meta({{{"a.bin"}, 100},
                      {{".pad", "28"}, 28, true},
                      {{"sub", "b.txt"}, 50},
                      {{"sub", "c.bin"}, 70},
                      {{"d.txt"}, 10}},
                     64);
  auto l = make_layout(m);
  EXPECT_EQ(str(*select_files(l, {}, {})), "nnnnn");
  EXPECT_EQ(str(*select_files(l, {"1,3"}, {})), "nssns");
  EXPECT_EQ(str(*select_files(l, {"2"}, {})), "ssnss");
  EXPECT_EQ(str(*select_files(l, {}, {"*.bin"})), "nssns");
  EXPECT_EQ(str(*select_files(l, {}, {"sub/*"})), "ssnns");
  EXPECT_EQ(str(*select_files(l, {"4"}, {"sub/b*"})), "ssnsn");
  EXPECT_EQ(str(*select_files(l, {"1", "4"}, {})), "nsssn");
  EXPECT_EQ(path_in_torrent(l, file_index{3}), "sub/c.bin");
}

TEST(select_files, errors_name_the_option) {
  auto m = make_meta({{{"a.bin"}, 100}, {{"b.txt"}, 50}}, 64);
  auto l = make_layout(m);
  EXPECT_EQ(select_files(l, {"3"}, {}).error().message,
            "--select-file \"3\": file number 3 at column 1 is out of range (the torrent has 2 "
            "files)");
  EXPECT_EQ(select_files(l, {}, {"*.iso"}).error().message,
            "--select \"*.iso\" matches no file of the torrent (see `actorrent info`)");
  EXPECT_EQ(select_files(l, {}, {"[a"}).error().message,
            "--select \"[a\": '[' at column 1 is never closed");
}

TEST(select_files, single_file_torrent_matches_its_name) {
  metainfo m;
  m.name = "movie.mkv";
  m.piece_length = 16;
  m.files.push_back(file_entry{{"movie.mkv"}, 40, false});
  m.total_size = 40;
  m.piece_hashes.resize(3);
  auto l = make_layout(m);
  EXPECT_EQ(str(*select_files(l, {}, {"*.mkv"})), "n");
  EXPECT_EQ(str(*select_files(l, {"1"}, {})), "n");
}

TEST(piece_priorities, a_piece_takes_the_highest_priority_of_its_files) {
  // pieces of 64: a.bin [0,100) -> 0,1; b [100,150) -> 1,2; empty file; c [150,220) -> 2,3
  auto m = make_meta({{{"a.bin"}, 100}, {{"b"}, 50}, {{"e"}, 0}, {{"c"}, 70}}, 64);
  using fp = file_priority;
  EXPECT_EQ(str(*piece_priorities(m, {fp::normal, fp::skip, fp::skip, fp::skip})), "nnss");
  EXPECT_EQ(str(*piece_priorities(m, {fp::skip, fp::skip, fp::normal, fp::skip})), "ssss");
  EXPECT_EQ(str(*piece_priorities(m, {fp::skip, fp::high, fp::skip, fp::normal})), "shhn");
  EXPECT_EQ(str(*piece_priorities(m, {fp::high, fp::skip, fp::skip, fp::normal})), "hhnn");
  EXPECT_EQ(piece_priorities(m, {fp::normal}).error().message,
            "1 file priorities for a torrent of 4 files");
}

TEST(piece_priorities, padding_files_do_not_count) {
  auto m = make_meta({{{"a"}, 60}, {{".pad", "4"}, 4, true}, {{"b"}, 64}}, 64);
  using fp = file_priority;
  EXPECT_EQ(str(*piece_priorities(m, {fp::skip, fp::normal, fp::normal})), "sn");
  EXPECT_EQ(str(*piece_priorities(m, {fp::normal, fp::normal, fp::skip})), "ns");
}

// Differential: on patterns both understand (no "**", no leading '/'), glob_match agrees with
// the C library's fnmatch: FNM_PATHNAME for patterns with '/', the file name otherwise.
TEST(glob, agrees_with_fnmatch_on_random_patterns) {
  std::mt19937 rng(20261202);
  const std::string pattern_chars = "ab/*?[]!-\\";
  const std::string name_chars = "ab-]!*";
  auto pick = [&](const std::string& from) { return from[rng() % from.size()]; };
  int compared = 0;
  for (int i = 0; i < 200000 && compared < 20000; ++i) {
    std::string pattern;
    for (auto n = rng() % 8 + 1; n > 0; --n)
      pattern += pick(pattern_chars);
    // Left out: "**" and a leading '/' (fnmatch has neither meaning), and an escaped '/',
    // which glibc matches only where no '*' precedes it in the component.
    if (!check_glob(pattern).ok() || pattern.find("**") != std::string::npos ||
        pattern.front() == '/' || pattern.find("\\/") != std::string::npos)
      continue;
    std::string path;
    for (auto parts = rng() % 3 + 1; parts > 0; --parts) {
      if (!path.empty())
        path += '/';
      for (auto n = rng() % 4 + 1; n > 0; --n)
        path += pick(name_chars);
    }
    bool expected;
    if (pattern.find('/') == std::string::npos) {
      auto name = path.substr(path.rfind('/') + 1);
      expected = ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
    } else {
      expected = ::fnmatch(pattern.c_str(), path.c_str(), FNM_PATHNAME) == 0;
    }
    ASSERT_EQ(glob_match(pattern, path), expected) << "pattern " << pattern << " path " << path;
    ++compared;
  }
  EXPECT_EQ(compared, 20000);
}
