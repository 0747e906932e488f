#include "protocol/sha1.hpp"

#include <gtest/gtest.h>

#include <string>

namespace actorrent {
namespace {

// FIPS 180 / RFC 3174 known answers.
TEST(sha1, known_answers) {
  EXPECT_EQ(to_hex(sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(to_hex(sha1("")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(to_hex(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

TEST(sha1, million_a) {
  std::string a(1'000'000, 'a');
  EXPECT_EQ(to_hex(sha1(a)), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST(sha1, incremental_equals_one_shot_and_finish_resets) {
  std::string data;
  for (int i = 0; i < 10'000; ++i)
    data.push_back(static_cast<char>(i * 31 + 7));
  sha1_hasher h;
  // Uneven chunks, including empty ones, across the 64-byte block boundary.
  std::size_t pos = 0;
  for (std::size_t chunk = 0; pos < data.size(); chunk = (chunk * 7 + 3) % 131) {
    std::size_t n = std::min(chunk, data.size() - pos);
    h.update(std::string_view(data).substr(pos, n));
    pos += n;
  }
  EXPECT_EQ(h.finish(), sha1(data));
  // finish() left the hasher ready for a new message.
  h.update("abc");
  EXPECT_EQ(to_hex(h.finish()), "a9993e364706816aba3e25717850c26c9cd0d89d");
  h.update("garbage");
  h.reset();
  h.update("abc");
  EXPECT_EQ(to_hex(h.finish()), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

} // namespace
} // namespace actorrent
