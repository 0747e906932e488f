// Torrents described in a few lines, for the storage tests: a file list becomes a metainfo
// (zero piece hashes) and a file layout.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "protocol/metainfo.hpp"
#include "storage/file_layout.hpp"

namespace actorrent::test {

struct spec {
  std::vector<std::string> path;
  std::uint64_t length;
  bool pad = false;
};

/// A multi-file torrent named "t" of `files`, its piece hashes all zero.
inline metainfo make_meta(const std::vector<spec>& files, std::uint32_t piece_length) {
  metainfo m;
  m.name = "t";
  m.piece_length = piece_length;
  m.multi_file = true;
  for (const auto& f : files) {
    m.files.push_back(file_entry{f.path, f.length, f.pad});
    m.total_size += f.length;
  }
  m.piece_hashes.resize((m.total_size + piece_length - 1) / piece_length);
  return m;
}

/// The layout of make_meta(files, piece_length); a layout error fails the test.
inline std::shared_ptr<const file_layout> make_layout(const std::vector<spec>& files,
                                                      std::uint32_t piece_length) {
  auto l = file_layout::create(make_meta(files, piece_length));
  EXPECT_TRUE(l.ok()) << (l.ok() ? "" : l.error().message);
  return std::make_shared<const file_layout>(l.ok() ? std::move(*l) : file_layout{});
}

/// Whether anything (a file, a folder, a link) is at `path`.
inline bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

} // namespace actorrent::test
