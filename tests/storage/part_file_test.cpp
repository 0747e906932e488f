// The part file and the file store's handling of files that are not selected.
#include "storage/part_file.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "storage/file_store.hpp"
#include "tests/storage/test_torrents.hpp"

using namespace actorrent;

namespace {

using test::spec;
using test::make_layout;
using test::exists;

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

// Every torrent byte distinct enough that a byte in the wrong place shows.
std::string stream(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('A' + (i * 7 + i / 26) % 26);
  return s;
}

using fp = file_priority;

class part_file_test : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/actorrent_part_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    root_ = tmp_ + "/out";
    part_ = root_ + "/.actorrent/x.parts";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(tmp_, ec);
  }

  // a 100 bytes, sub/b 50, c 70, in pieces of 64: b lies in pieces 1 and 2, both shared with
  // a or c (boundary pieces); nothing of b fills a piece alone.
  std::shared_ptr<const file_layout> abc() {
    return make_layout({spec{{"a"}, 100}, spec{{"sub", "b"}, 50}, spec{{"c"}, 70}}, 64);
  }

  // Writes every piece of the torrent (bytes from stream()) through `store`.
  void write_all(file_store& store, const std::string& data) {
    const auto& l = store.layout();
    for (std::uint32_t p = 0; p < l.piece_count(); ++p) {
      auto size = l.piece_size(piece_index{p});
      auto st = store.write(piece_index{p}, 0,
                            std::string_view(data).substr(std::size_t{p} * l.piece_length(), size));
      ASSERT_TRUE(st.ok()) << st.error().message;
    }
  }
  void expect_reads(file_store& store, const std::string& data) {
    const auto& l = store.layout();
    for (std::uint32_t p = 0; p < l.piece_count(); ++p) {
      auto size = l.piece_size(piece_index{p});
      std::string got(size, '\0');
      auto st = store.read(piece_index{p}, 0, size, got.data());
      ASSERT_TRUE(st.ok()) << st.error().message;
      EXPECT_EQ(got, data.substr(std::size_t{p} * l.piece_length(), size)) << "piece " << p;
    }
  }

  std::string tmp_, root_, part_;
};

} // namespace

TEST_F(part_file_test, stores_piece_bytes_in_slots_and_finds_them_after_a_restart) {
  ::mkdir(root_.c_str(), 0755);
  {
    part_file pf(part_, 10, 64);
    ASSERT_TRUE(pf.load().ok());
    EXPECT_TRUE(pf.empty());
    EXPECT_FALSE(exists(part_)); // created on the first write only
    ASSERT_TRUE(pf.write(piece_index{7}, 10, "seven", 5).ok());
    ASSERT_TRUE(pf.write(piece_index{2}, 0, "two", 3).ok());
    EXPECT_TRUE(pf.has(piece_index{7}));
    EXPECT_FALSE(pf.has(piece_index{3}));
    char buf[8];
    ASSERT_TRUE(pf.read(piece_index{7}, 9, buf, 7).ok());
    EXPECT_EQ(std::string(buf, 7), std::string("\0seven\0", 7)); // never written: zeros
    EXPECT_EQ(pf.read(piece_index{3}, 0, buf, 1).error().message,
              "part file " + part_ + " holds no bytes of piece 3");
    ASSERT_TRUE(pf.sync().ok());
  }
  // Two slots of 64 bytes after a 16-byte header and a table of 10 entries: compact.
  EXPECT_EQ(std::filesystem::file_size(part_), 16u + 40u + 64u + 3u);
  part_file again(part_, 10, 64);
  ASSERT_TRUE(again.load().ok());
  EXPECT_TRUE(again.has(piece_index{7}));
  EXPECT_TRUE(again.has(piece_index{2}));
  char buf[5];
  ASSERT_TRUE(again.read(piece_index{7}, 10, buf, 5).ok());
  EXPECT_EQ(std::string(buf, 5), "seven");
  ASSERT_TRUE(again.write(piece_index{4}, 0, "four", 4).ok()); // a third slot, not a reused one
  ASSERT_TRUE(again.read(piece_index{2}, 0, buf, 3).ok());
  EXPECT_EQ(std::string(buf, 3), "two");
  ASSERT_TRUE(again.remove().ok());
  EXPECT_FALSE(exists(part_));
  EXPECT_TRUE(again.empty());
}

TEST_F(part_file_test, a_damaged_part_file_is_refused_with_the_reason) {
  ::mkdir(root_.c_str(), 0755);
  ::mkdir((root_ + "/.actorrent").c_str(), 0755);
  spit(part_, "garbage");
  EXPECT_EQ(part_file(part_, 10, 64).load().error().message,
            "part file " + part_ +
              " is damaged (no part file header); delete it to fetch the bytes it held again");
  {
    std::remove(part_.c_str());
    part_file pf(part_, 10, 64);
    ASSERT_TRUE(pf.write(piece_index{1}, 0, "x", 1).ok());
  }
  EXPECT_EQ(part_file(part_, 11, 64).load().error().message,
            "part file " + part_ + " is damaged (made for 10 pieces of 64 bytes, the torrent has "
            "11 of 64); delete it to fetch the bytes it held again");
  // Piece 5 claims slot 0 too.
  auto bytes = slurp(part_);
  bytes[16 + 4 * 5] = 1;
  spit(part_, bytes);
  EXPECT_EQ(part_file(part_, 10, 64).load().error().message,
            "part file " + part_ + " is damaged (piece 5 names slot 0, which another piece has); "
            "delete it to fetch the bytes it held again");
  spit(part_, bytes.substr(0, 30));
  EXPECT_EQ(part_file(part_, 10, 64).load().error().message,
            "part file " + part_ + " is damaged (slot table cut off at byte 30); delete it to "
            "fetch the bytes it held again");
}

TEST_F(part_file_test, skipped_files_are_not_created_and_boundary_bytes_go_to_the_part_file) {
  auto layout = abc();
  const auto data = stream(220);
  {
    auto store = file_store::open(layout, root_, {fp::normal, fp::skip, fp::normal}, part_);
    ASSERT_TRUE(store.ok()) << store.error().message;
    EXPECT_FALSE(exists(root_ + "/t/sub")); // neither the file nor its folder
    EXPECT_TRUE((*store)->in_part_file(file_index{1}));
    write_all(**store, data);
    expect_reads(**store, data); // what hashing and uploads read
    ASSERT_TRUE((*store)->sync().ok());
  }
  EXPECT_FALSE(exists(root_ + "/t/sub/b"));
  EXPECT_EQ(slurp(root_ + "/t/a"), data.substr(0, 100));
  EXPECT_EQ(slurp(root_ + "/t/c"), data.substr(150, 70));
  EXPECT_TRUE(exists(part_));
  // Needing a part file and having none is refused, not silently dropped.
  EXPECT_EQ(file_store::open(layout, root_, {fp::normal, fp::skip, fp::normal}).error().message,
            "skipped files need a part file");
  EXPECT_EQ(file_store::open(layout, root_, {fp::normal}, part_).error().message,
            "1 file priorities for a torrent of 3 files");
}

TEST_F(part_file_test, a_wider_selection_on_the_next_run_moves_the_bytes_into_the_new_file) {
  auto layout = abc();
  const auto data = stream(220);
  {
    auto store = file_store::open(layout, root_, {fp::normal, fp::skip, fp::normal}, part_);
    ASSERT_TRUE(store.ok()) << store.error().message;
    write_all(**store, data);
    ASSERT_TRUE((*store)->sync().ok());
  }
  auto store = file_store::open(layout, root_, {fp::normal, fp::normal, fp::normal}, part_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  // Every byte of b was in a boundary piece, so all of it moved; the part file is gone.
  EXPECT_EQ(slurp(root_ + "/t/sub/b"), data.substr(100, 50));
  EXPECT_FALSE(exists(part_));
  expect_reads(**store, data);
}

TEST_F(part_file_test, selecting_a_file_while_running_moves_its_bytes_and_keeps_the_rest) {
  // a, b and c as before plus d (pieces 3..): b and d skipped; selecting b leaves d's bytes in
  // the part file.
  auto layout = make_layout(
    {spec{{"a"}, 100}, spec{{"sub", "b"}, 50}, spec{{"c"}, 70}, spec{{"d"}, 100}}, 64);
  const auto data = stream(320);
  auto store =
    file_store::open(layout, root_, {fp::normal, fp::skip, fp::normal, fp::skip}, part_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  write_all(**store, data);
  ASSERT_TRUE((*store)->set_priorities({fp::normal, fp::high, fp::normal, fp::skip}).ok());
  EXPECT_FALSE((*store)->in_part_file(file_index{1}));
  EXPECT_TRUE((*store)->in_part_file(file_index{3}));
  EXPECT_EQ(slurp(root_ + "/t/sub/b"), data.substr(100, 50));
  EXPECT_FALSE(exists(root_ + "/t/d"));
  EXPECT_TRUE(exists(part_));
  expect_reads(**store, data);
  // Deselecting an existing file keeps it (and its bytes) where it is.
  ASSERT_TRUE((*store)->set_priorities({fp::normal, fp::skip, fp::normal, fp::normal}).ok());
  EXPECT_FALSE((*store)->in_part_file(file_index{1}));
  EXPECT_EQ(slurp(root_ + "/t/d"), data.substr(220, 100));
  EXPECT_FALSE(exists(part_)); // nothing needs it any more
  expect_reads(**store, data);
  EXPECT_EQ((*store)->set_priorities({fp::skip}).error().message,
            "1 file priorities for a torrent of 4 files");
}

TEST_F(part_file_test, a_skipped_file_that_exists_is_used_as_it_is) {
  auto layout = abc();
  std::filesystem::create_directories(root_ + "/t/sub");
  spit(root_ + "/t/sub/b", std::string(50, 'z'));
  auto store = file_store::open(layout, root_, {fp::normal, fp::skip, fp::normal}, part_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_FALSE((*store)->in_part_file(file_index{1}));
  const auto data = stream(220);
  write_all(**store, data);
  EXPECT_EQ(slurp(root_ + "/t/sub/b"), data.substr(100, 50));
  EXPECT_FALSE(exists(part_));
}
