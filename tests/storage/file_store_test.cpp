#include "storage/file_store.hpp"
#include "tests/storage/test_torrents.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace actorrent;

namespace {

using test::spec;
using test::make_layout;
using test::exists;

std::int64_t file_size(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return -1;
  return st.st_size;
}

bool is_dir(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
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
}

std::size_t entries(const std::string& dir) {
  std::size_t n = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(dir);
       it != std::filesystem::recursive_directory_iterator(); ++it)
    ++n;
  return n;
}

// The code of a failed status; a success shows up as a test failure, not as an assert abort.
errc code_of(const status& s) {
  EXPECT_FALSE(s.ok());
  return s.ok() ? errc{} : s.error().code;
}

class file_store_test : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/actorrent_store_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    root_ = tmp_ + "/out";
  }
  void TearDown() override {
    // Undo permission tests first, or remove_all could not descend.
    std::error_code ec;
    std::filesystem::permissions(tmp_ + "/locked", std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(tmp_, ec);
  }

  std::string tmp_;
  std::string root_;
};

} // namespace

TEST_F(file_store_test, creates_files_with_their_sizes_and_nested_directories) {
  auto layout = make_layout({spec{{"empty_first"}, 0}, spec{{"a", "b", "c.bin"}, 10},
                             spec{{"a", "empty_middle"}, 0}, spec{{".pad", "6"}, 6, true},
                             spec{{"a", "d.bin"}, 1}, spec{{"z", "empty_last"}, 0}},
                            4);
  auto store = file_store::open(layout, root_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ((*store)->root(), root_);
  EXPECT_EQ(&(*store)->layout(), layout.get());
  EXPECT_EQ(file_size(root_ + "/t/empty_first"), 0);
  EXPECT_EQ(file_size(root_ + "/t/a/b/c.bin"), 10);
  EXPECT_EQ(file_size(root_ + "/t/a/empty_middle"), 0);
  EXPECT_EQ(file_size(root_ + "/t/a/d.bin"), 1);
  EXPECT_EQ(file_size(root_ + "/t/z/empty_last"), 0);
  EXPECT_TRUE(is_dir(root_ + "/t/a/b"));
  // Padding is never created, nor is its directory.
  EXPECT_FALSE(exists(root_ + "/t/.pad"));
  // Sparse: nothing has been written yet, so the data reads as zeros.
  EXPECT_EQ(slurp(root_ + "/t/a/b/c.bin"), std::string(10, '\0'));
  EXPECT_TRUE((*store)->sync().ok());
}

TEST_F(file_store_test, writes_across_file_boundaries_and_reads_back) {
  // Odd sizes, 0-byte files and padding, in 7-byte pieces written as 3-byte blocks.
  const std::vector<spec> files = {spec{{"f0"}, 5},
                                   spec{{"e0"}, 0},
                                   spec{{"d", "f1"}, 1},
                                   spec{{"d", "f2"}, 9},
                                   spec{{".pad", "2"}, 2, true},
                                   spec{{"d", "e1"}, 0},
                                   spec{{"f3"}, 13},
                                   spec{{"f4"}, 1},
                                   spec{{"e2"}, 0}};
  const std::uint32_t piece_length = 7;
  auto layout = make_layout(files, piece_length);
  auto store = file_store::open(layout, root_);
  ASSERT_TRUE(store.ok()) << store.error().message;

  // The torrent's byte stream: random, except zeros where the padding file is.
  std::mt19937 rng(1234);
  std::string torrent(layout->total_size(), '\0');
  for (auto& c : torrent)
    c = static_cast<char>(rng());
  for (const auto& f : layout->files())
    if (f.pad)
      std::fill_n(torrent.begin() + static_cast<std::ptrdiff_t>(f.offset), f.length, '\0');

  // Blocks in shuffled order so each write lands on files that are partly written already.
  struct block {
    std::uint32_t piece, offset, length;
  };
  std::vector<block> blocks;
  for (std::uint32_t p = 0; p < layout->piece_count(); ++p)
    for (std::uint32_t off = 0; off < layout->piece_size(piece_index{p}); off += 3)
      blocks.push_back(
          {p, off, std::min<std::uint32_t>(3, layout->piece_size(piece_index{p}) - off)});
  std::shuffle(blocks.begin(), blocks.end(), rng);
  for (const auto& b : blocks) {
    auto data = std::string_view(torrent).substr(std::uint64_t{b.piece} * piece_length + b.offset,
                                                 b.length);
    auto s = (*store)->write(piece_index{b.piece}, b.offset, data);
    ASSERT_TRUE(s.ok()) << s.error().message;
  }
  ASSERT_TRUE((*store)->sync().ok());

  // Each file on disk holds exactly its part of the stream.
  for (const auto& f : layout->files()) {
    if (f.pad)
      continue;
    EXPECT_EQ(slurp(root_ + "/" + f.path), torrent.substr(f.offset, f.length)) << f.path;
  }
  EXPECT_EQ(slurp(root_ + "/t/f0"), torrent.substr(0, 5));

  // Whole pieces and an unaligned block spanning several files read back byte-exact.
  for (std::uint32_t p = 0; p < layout->piece_count(); ++p) {
    auto size = layout->piece_size(piece_index{p});
    std::string got(size, 'x');
    auto s = (*store)->read(piece_index{p}, 0, size, got.data());
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(got, torrent.substr(std::uint64_t{p} * piece_length, size)) << "piece " << p;
  }
  // Bytes 15..20: the padding (zeros, though the buffer held 'x') and the start of f3.
  std::string mid(6, 'x');
  ASSERT_TRUE((*store)->read(piece_index{2}, 1, 6, mid.data()).ok());
  EXPECT_EQ(mid, torrent.substr(15, 6));
  EXPECT_EQ(mid.substr(0, 2), std::string(2, '\0'));
}

TEST_F(file_store_test, reopening_keeps_data_and_fixes_lengths) {
  auto layout = make_layout({spec{{"keep"}, 4}, spec{{"longer"}, 3}, spec{{"shorter"}, 6},
                             spec{{"was_big_now_empty"}, 0}},
                            8);
  ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root_ + "/t").c_str(), 0755), 0);
  spit(root_ + "/t/keep", "KEEP");
  spit(root_ + "/t/longer", "0123456789");
  spit(root_ + "/t/shorter", "ab");
  spit(root_ + "/t/was_big_now_empty", "junk");

  auto store = file_store::open(layout, root_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ(slurp(root_ + "/t/keep"), "KEEP");
  EXPECT_EQ(slurp(root_ + "/t/longer"), "012");
  EXPECT_EQ(slurp(root_ + "/t/shorter"), std::string("ab\0\0\0\0", 6));
  EXPECT_EQ(file_size(root_ + "/t/was_big_now_empty"), 0);

  std::string got(8, 'x');
  ASSERT_TRUE((*store)->read(piece_index{0}, 0, 8, got.data()).ok());
  EXPECT_EQ(got, std::string("KEEP012a", 8));
}

TEST_F(file_store_test, symlinked_directory_component_is_refused) {
  const std::string outside = tmp_ + "/outside";
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root_ + "/t").c_str(), 0755), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (root_ + "/t/sub").c_str()), 0);

  auto layout = make_layout({spec{{"ok"}, 3}, spec{{"sub", "deeper", "evil"}, 5}}, 4);
  auto store = file_store::open(layout, root_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, errc::unsafe_path);
  EXPECT_EQ(store.error().message, "path t/sub/deeper/evil: component sub is a symbolic link");
  EXPECT_EQ(entries(outside), 0u) << "something was created through the link";

  // The torrent's top directory itself being a link is refused the same way.
  const std::string root2 = tmp_ + "/out2";
  ASSERT_EQ(::mkdir(root2.c_str(), 0755), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (root2 + "/t").c_str()), 0);
  auto store2 = file_store::open(make_layout({spec{{"x"}, 1}}, 4), root2);
  ASSERT_FALSE(store2.ok());
  EXPECT_EQ(store2.error().code, errc::unsafe_path);
  EXPECT_EQ(store2.error().message, "path t/x: component t is a symbolic link");
  EXPECT_EQ(entries(outside), 0u);
}

TEST_F(file_store_test, symlinked_file_is_refused_and_its_target_untouched) {
  const std::string outside = tmp_ + "/outside";
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  spit(outside + "/victim", "precious");
  ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root_ + "/t").c_str(), 0755), 0);
  ASSERT_EQ(::symlink((outside + "/victim").c_str(), (root_ + "/t/f").c_str()), 0);

  // Opening would truncate the target to 2 bytes if it followed the link.
  auto store = file_store::open(make_layout({spec{{"f"}, 2}}, 4), root_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, errc::unsafe_path);
  EXPECT_EQ(store.error().message, "path t/f: component f is a symbolic link");
  EXPECT_EQ(slurp(outside + "/victim"), "precious");

  // A dangling link must not create its target either.
  ASSERT_EQ(::symlink((outside + "/new").c_str(), (root_ + "/t/g").c_str()), 0);
  auto store2 = file_store::open(make_layout({spec{{"g"}, 2}}, 4), root_);
  ASSERT_FALSE(store2.ok());
  EXPECT_EQ(store2.error().code, errc::unsafe_path);
  EXPECT_FALSE(exists(outside + "/new"));
  EXPECT_EQ(entries(outside), 1u);
}

TEST_F(file_store_test, root_below_a_regular_file_is_an_io_error) {
  // Fails for root too, unlike a permission test.
  spit(tmp_ + "/plain", "x");
  auto store = file_store::open(make_layout({spec{{"f"}, 1}}, 4), tmp_ + "/plain/out");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, errc::io_error);
  EXPECT_NE(store.error().message.find(tmp_ + "/plain/out"), std::string::npos)
      << store.error().message;
  EXPECT_NE(store.error().message.find("Not a directory"), std::string::npos)
      << store.error().message;
}

TEST_F(file_store_test, regular_file_where_a_directory_is_needed_is_an_io_error) {
  ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root_ + "/t").c_str(), 0755), 0);
  spit(root_ + "/t/d", "file, not dir");
  auto store = file_store::open(make_layout({spec{{"d", "f"}, 1}}, 4), root_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, errc::io_error);
  EXPECT_NE(store.error().message.find(root_ + "/t/d"), std::string::npos) << store.error().message;
  EXPECT_EQ(slurp(root_ + "/t/d"), "file, not dir");
}

TEST_F(file_store_test, unwritable_root_is_an_io_error) {
  if (::geteuid() == 0)
    GTEST_SKIP() << "root ignores directory permissions";
  const std::string locked = tmp_ + "/locked";
  ASSERT_EQ(::mkdir(locked.c_str(), 0500), 0);
  auto store = file_store::open(make_layout({spec{{"f"}, 1}}, 4), locked);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, errc::io_error);
  EXPECT_NE(store.error().message.find("Permission denied"), std::string::npos)
      << store.error().message;
}

TEST_F(file_store_test, out_of_range_requests_are_refused) {
  auto layout = make_layout({spec{{"a"}, 10}}, 4);
  auto store = file_store::open(layout, root_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto& s = **store;
  char buf[8] = {};
  EXPECT_EQ(code_of(s.write(piece_index{2}, 0, "abc")), errc::invalid_argument);
  EXPECT_EQ(code_of(s.write(piece_index{1}, 2, "abc")), errc::invalid_argument);
  EXPECT_EQ(code_of(s.write(piece_index{3}, 0, "a")), errc::invalid_argument);
  EXPECT_EQ(code_of(s.read(piece_index{2}, 1, 2, buf)), errc::invalid_argument);
  EXPECT_EQ(code_of(s.read(piece_index{0}, 5, 0, buf)), errc::invalid_argument);
  EXPECT_TRUE(s.write(piece_index{2}, 0, "ab").ok());
  EXPECT_TRUE(s.read(piece_index{2}, 0, 2, buf).ok());
  EXPECT_EQ(std::string(buf, 2), "ab");
  EXPECT_EQ(slurp(root_ + "/t/a"), std::string(8, '\0') + "ab");
}

TEST_F(file_store_test, file_truncated_behind_the_stores_back_is_a_read_error) {
  auto layout = make_layout({spec{{"a"}, 8}}, 8);
  auto store = file_store::open(layout, root_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  ASSERT_EQ(::truncate((root_ + "/t/a").c_str(), 3), 0);
  char buf[8];
  auto s = (*store)->read(piece_index{0}, 0, 8, buf);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, errc::io_error);
  EXPECT_EQ(s.error().message, "cannot read " + root_ + "/t/a: unexpected end of file at offset 3");
}

// write_many: contiguous spans (also across a file boundary and around padding) land exactly
// where single writes put them.
TEST_F(file_store_test, write_many_matches_single_writes) {
  const std::uint32_t piece = 4 * 16384;
  auto layout = make_layout({spec{{"a"}, 40000}, spec{{".pad", "1536"}, 1536, true},
                             spec{{"b"}, 90000}}, piece);
  const std::uint64_t total = 40000 + 1536 + 90000;
  std::string data(total, '\0');
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<char>('a' + (i * 7 + i / 977) % 26);
  for (bool many : {false, true}) {
    auto dir = root_ + (many ? "/many" : "/single");
    auto store = file_store::open(layout, dir);
    ASSERT_TRUE(store.ok()) << store.error().message;
    std::vector<file_store::span> spans;
    for (std::uint32_t p = 0; p < layout->piece_count(); ++p) {
      auto size = layout->piece_size(piece_index{p});
      for (std::uint32_t off = 0; off < size; off += 16384) {
        auto len = std::min<std::uint32_t>(16384, size - off);
        std::string_view bytes(data.data() + std::uint64_t{p} * piece + off, len);
        if (many)
          spans.push_back(file_store::span{piece_index{p}, off, bytes});
        else
          ASSERT_TRUE((*store)->write(piece_index{p}, off, bytes).ok());
      }
    }
    if (many) {
      ASSERT_TRUE((*store)->write_many(spans).ok());
    }
    EXPECT_EQ(slurp(dir + "/t/a"), data.substr(0, 40000)) << "many=" << many;
    EXPECT_EQ(slurp(dir + "/t/b"), data.substr(41536)) << "many=" << many;
    EXPECT_FALSE(exists(dir + "/t/.pad/1536"));
  }
}

TEST_F(file_store_test, write_many_refuses_a_span_outside_its_piece) {
  auto layout = make_layout({spec{{"a"}, 100000}}, 65536);
  auto store = file_store::open(layout, root_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  std::string block(16384, 'x');
  std::vector<file_store::span> spans{{piece_index{1}, 65536 - 100000 + 65536, block}};
  auto st = (*store)->write_many(spans);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("outside piece 1"), std::string::npos) << st.error().message;
}

// Before the open-file pool every file stayed open: a torrent of more files than the
// descriptor limit failed with "Too many open files".
TEST_F(file_store_test, more_files_than_the_descriptor_limit_are_written_and_read_back) {
  std::vector<spec> files;
  for (int i = 0; i < 300; ++i)
    files.push_back(spec{{"d" + std::to_string(i % 7), "f" + std::to_string(i)},
                         static_cast<std::uint64_t>(1 + i % 13)});
  auto layout = make_layout(files, 16);
  struct rlimit old;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  struct rlimit low = old;
  low.rlim_cur = 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  file_pool pool{8};
  std::string all;
  std::string back;
  status wrote;
  status read;
  status synced;
  {
    auto store = file_store::open(layout, root_, {}, {}, &pool);
    ASSERT_TRUE(store.ok()) << store.error().message;
    std::mt19937 rng(5);
    all.resize(layout->total_size());
    for (auto& c : all)
      c = static_cast<char>(rng());
    // Piece by piece in a scattered order, so files are opened, evicted and opened again.
    std::vector<std::uint32_t> order(layout->piece_count());
    for (std::uint32_t k = 0; k < order.size(); ++k)
      order[k] = k;
    std::shuffle(order.begin(), order.end(), rng);
    for (std::size_t k = 0; k < order.size() && wrote.ok(); ++k) {
      piece_index p{order[k]};
      wrote = (*store)->write(p, 0,
                              std::string_view(all).substr(std::size_t{p.value} * 16,
                                                           layout->piece_size(p)));
    }
    synced = (*store)->sync();
    back.resize(all.size());
    for (std::uint32_t p = 0; p < layout->piece_count() && read.ok(); ++p)
      read = (*store)->read(piece_index{p}, 0, layout->piece_size(piece_index{p}),
                            back.data() + std::size_t{p} * 16);
    EXPECT_LE(pool.open_count(), 8u);
  }
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  EXPECT_EQ(pool.open_count(), 0u); // the store's descriptors go with it
  ASSERT_TRUE(wrote.ok()) << wrote.error().message;
  ASSERT_TRUE(synced.ok()) << synced.error().message;
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_TRUE(back == all);
}

TEST_F(file_store_test, a_file_deleted_while_closed_is_not_recreated) {
  auto layout = make_layout({spec{{"a"}, 8}, spec{{"b"}, 8}}, 8);
  file_pool pool{1};
  auto store = file_store::open(layout, root_, {}, {}, &pool);
  ASSERT_TRUE(store.ok()) << store.error().message;
  ASSERT_TRUE((*store)->write(piece_index{0}, 0, "aaaaaaaa").ok());
  ASSERT_TRUE((*store)->write(piece_index{1}, 0, "bbbbbbbb").ok()); // closes a
  ASSERT_EQ(::unlink((root_ + "/t/a").c_str()), 0);
  auto s = (*store)->write(piece_index{0}, 0, "AAAAAAAA");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, root_ + "/t/a: deleted or replaced while downloading");
  EXPECT_FALSE(exists(root_ + "/t/a"));
  auto c = (*store)->check_files();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message, root_ + "/t/a: deleted or replaced while downloading");
}

TEST_F(file_store_test, a_file_replaced_while_closed_is_refused) {
  auto layout = make_layout({spec{{"a"}, 8}, spec{{"b"}, 8}}, 8);
  file_pool pool{1};
  auto store = file_store::open(layout, root_, {}, {}, &pool);
  ASSERT_TRUE(store.ok()) << store.error().message;
  ASSERT_TRUE((*store)->write(piece_index{0}, 0, "aaaaaaaa").ok());
  ASSERT_TRUE((*store)->write(piece_index{1}, 0, "bbbbbbbb").ok()); // closes a
  {
    std::ofstream(tmp_ + "/other", std::ios::binary) << "xxxxxxxx";
  }
  ASSERT_EQ(::rename((tmp_ + "/other").c_str(), (root_ + "/t/a").c_str()), 0);
  char buf[8];
  auto s = (*store)->read(piece_index{0}, 0, 8, buf);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, root_ + "/t/a: deleted or replaced while downloading");
  EXPECT_FALSE((*store)->check_files().ok());
}

TEST_F(file_store_test, a_symlink_planted_after_open_is_not_followed_on_reopen) {
  auto layout = make_layout({spec{{"d", "a"}, 8}, spec{{"b"}, 8}}, 8);
  file_pool pool{1};
  auto store = file_store::open(layout, root_, {}, {}, &pool);
  ASSERT_TRUE(store.ok()) << store.error().message;
  ASSERT_TRUE((*store)->write(piece_index{1}, 0, "bbbbbbbb").ok());
  std::filesystem::rename(root_ + "/t/d", tmp_ + "/moved");
  std::filesystem::create_directory_symlink(tmp_ + "/moved", root_ + "/t/d");
  auto s = (*store)->write(piece_index{0}, 0, "aaaaaaaa");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, errc::unsafe_path);
  EXPECT_EQ(slurp(tmp_ + "/moved/a"), std::string(8, '\0'));
}
