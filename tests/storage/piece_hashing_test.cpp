#include "storage/piece_hashing.hpp"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

using namespace actorrent;

namespace {

// Reference digest straight from OpenSSL, independent of protocol/sha1.
sha1_digest openssl_sha1(const std::string& data) {
  sha1_digest d{};
  ::SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data());
  return d;
}

class piece_hashing_test : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/actorrent_hash_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(tmp_, ec);
  }
  std::string tmp_;
};

} // namespace

TEST_F(piece_hashing_test, digests_match_openssl_across_files_and_padding) {
  // Pieces of 10 over files of 4, 0, 7, pad 3, 5 bytes: 19 bytes, a short last piece of 9.
  metainfo m;
  m.name = "t";
  m.piece_length = 10;
  m.multi_file = true;
  m.files = {file_entry{{"a"}, 4, false}, file_entry{{"e"}, 0, false}, file_entry{{"b"}, 7, false},
             file_entry{{".pad", "3"}, 3, true}, file_entry{{"c"}, 5, false}};
  m.total_size = 19;
  m.piece_hashes.resize(2);
  auto l = file_layout::create(m);
  ASSERT_TRUE(l.ok()) << l.error().message;
  auto layout = std::make_shared<const file_layout>(std::move(*l));
  auto store = file_store::open(layout, tmp_ + "/out");
  ASSERT_TRUE(store.ok()) << store.error().message;

  const std::string torrent = std::string("The quick b") + std::string(3, '\0') + "rown.";
  ASSERT_EQ(torrent.size(), 19u);
  ASSERT_TRUE((*store)->write(piece_index{0}, 0, torrent.substr(0, 10)).ok());
  ASSERT_TRUE((*store)->write(piece_index{1}, 0, torrent.substr(10)).ok());

  std::vector<char> scratch;
  sha1_digest got{};
  ASSERT_TRUE(hash_piece(**store, piece_index{0}, scratch, got).ok());
  EXPECT_EQ(to_hex(got), to_hex(openssl_sha1(torrent.substr(0, 10))));
  ASSERT_TRUE(hash_piece(**store, piece_index{1}, scratch, got).ok());
  EXPECT_EQ(to_hex(got), to_hex(openssl_sha1(torrent.substr(10))));
  // The short last piece is hashed at its own length, not the scratch buffer's.
  EXPECT_NE(to_hex(got), to_hex(openssl_sha1(torrent.substr(10) + '\0')));

  // Well-known vector: SHA-1("abc"), so a wrong reference could not hide a wrong digest.
  metainfo abc;
  abc.name = "abc.txt";
  abc.piece_length = 16;
  abc.files = {file_entry{{"abc.txt"}, 3, false}};
  abc.total_size = 3;
  abc.piece_hashes.resize(1);
  auto l2 = file_layout::create(abc);
  ASSERT_TRUE(l2.ok());
  auto store2 = file_store::open(std::make_shared<const file_layout>(std::move(*l2)), tmp_);
  ASSERT_TRUE(store2.ok()) << store2.error().message;
  ASSERT_TRUE((*store2)->write(piece_index{0}, 0, "abc").ok());
  ASSERT_TRUE(hash_piece(**store2, piece_index{0}, scratch, got).ok());
  EXPECT_EQ(to_hex(got), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

TEST_F(piece_hashing_test, errors_leave_the_digest_alone) {
  metainfo m;
  m.name = "f";
  m.piece_length = 8;
  m.files = {file_entry{{"f"}, 8, false}};
  m.total_size = 8;
  m.piece_hashes.resize(1);
  auto l = file_layout::create(m);
  ASSERT_TRUE(l.ok());
  auto store = file_store::open(std::make_shared<const file_layout>(std::move(*l)), tmp_);
  ASSERT_TRUE(store.ok()) << store.error().message;

  std::vector<char> scratch;
  sha1_digest got{};
  got.fill(0xab);
  auto s = hash_piece(**store, piece_index{1}, scratch, got);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, errc::invalid_argument);

  ASSERT_EQ(std::filesystem::file_size(tmp_ + "/f"), 8u);
  std::filesystem::resize_file(tmp_ + "/f", 2);
  s = hash_piece(**store, piece_index{0}, scratch, got);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, errc::io_error);
  EXPECT_EQ(got[0], 0xab);
  EXPECT_EQ(got[19], 0xab);
}
