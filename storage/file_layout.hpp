// Where each byte of a torrent lives on disk: the piece <-> file mapping (pieces spanning files,
// 0-byte files, a short last piece) and the sanitised relative path of every file.
// Built once per torrent from its metainfo; immutable afterwards, so any actor may read it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/error.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/types.hpp"

namespace actorrent {

struct layout_file {
  std::string path;          // sanitised, relative to the output directory, '/'-separated
  std::uint64_t offset = 0;  // first byte of this file in the torrent's byte stream
  std::uint64_t length = 0;
  bool pad = false;          // BEP 47 padding file: never created, reads as zeros
};

/// One contiguous run of a block inside one file.
struct file_slice {
  file_index file;
  std::uint64_t file_offset = 0;
  std::uint64_t length = 0;
};

/// Joins torrent path components into a safe relative path. Refused (errc::unsafe_path, the
/// message names the offending component and why): an empty list, empty components, "." and
/// "..", components containing '/' or '\\' or NUL, a leading drive letter ("C:"), and results
/// longer than 4096 bytes.
result<std::string> sanitize_path(const std::vector<std::string>& components);

class file_layout {
public:
  /// Validates and lays out the files of `m`. For a multi-file torrent every path is
  /// "<name>/<components...>"; for a single-file torrent it is "<name>". Duplicate paths and a
  /// file that is also a directory of another ("a" and "a/b") are refused as errc::unsafe_path.
  static result<file_layout> create(const metainfo& m);

  const std::vector<layout_file>& files() const noexcept { return files_; }
  std::uint64_t total_size() const noexcept { return total_size_; }
  std::uint32_t piece_length() const noexcept { return piece_length_; }
  std::uint32_t piece_count() const noexcept { return piece_count_; }
  std::uint32_t piece_size(piece_index p) const noexcept;

  /// Appends to `out` the file slices covering bytes [offset, offset + length) of piece `p`,
  /// in order, skipping 0-byte files. Precondition: the range lies inside the piece.
  void map_block(piece_index p, std::uint32_t offset, std::uint32_t length,
                 std::vector<file_slice>& out) const;

  /// Index of the file holding torrent byte `pos` (a non-empty file; pos < total_size()).
  file_index file_at(std::uint64_t pos) const;

private:
  std::vector<layout_file> files_;
  std::uint64_t total_size_ = 0;
  std::uint32_t piece_length_ = 0;
  std::uint32_t piece_count_ = 0;
};

} // namespace actorrent
