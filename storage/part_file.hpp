// The part file of one torrent: bytes of pieces that belong to files not selected for download
// (a piece on the boundary between a wanted and a skipped file is needed whole to check its
// hash, but the skipped file is not created). Like libtorrent's part file: one slot of
// piece_length bytes per piece that has such bytes, found through a slot table at the front.
// Kept next to the resume data (<out>/.actorrent/<info-hash hex>.parts), created on the first
// write only. Owned by the torrent's file_store (the storage thread); not thread-safe.
//
//   offset 0   "ATRPART1"  piece_count (u32 LE)  piece_length (u32 LE)
//   offset 16  one u32 LE per piece: 0 = no slot, k = slot k - 1
//   then       slot 0, slot 1, ... (piece_length bytes each, sparse where never written)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/error.hpp"
#include "protocol/types.hpp"

namespace actorrent {

class part_file {
public:
  part_file(std::string path, std::uint32_t piece_count, std::uint32_t piece_length);
  ~part_file();
  part_file(const part_file&) = delete;
  part_file& operator=(const part_file&) = delete;

  /// Reads the slot table of an existing part file (none: empty). A damaged one (wrong magic or
  /// geometry, a slot table that is cut off or names a slot twice) is errc::io_error saying so.
  status load();

  /// Stores bytes [offset, offset + n) of piece p, giving the piece a slot on first use.
  status write(piece_index p, std::uint32_t offset, const char* data, std::size_t n);
  /// Reads them back; bytes never written read as zeros. A piece without a slot is
  /// errc::io_error (its bytes were never stored).
  status read(piece_index p, std::uint32_t offset, char* out, std::size_t n);
  bool has(piece_index p) const noexcept {
    return p.value < slots_.size() && slots_[p.value] != 0;
  }
  bool empty() const noexcept { return next_slot_ == 0; }

  status sync();
  /// Deletes the file (every byte it held has moved to the real files).
  status remove();

  const std::string& path() const noexcept { return path_; }

private:
  status create();
  std::uint64_t slot_offset(std::uint32_t slot) const noexcept;

  std::string path_;
  std::uint32_t piece_count_;
  std::uint32_t piece_length_;
  std::vector<std::uint32_t> slots_; // per piece: slot + 1, 0 = none
  std::uint32_t next_slot_ = 0;
  int fd_ = -1;
};

} // namespace actorrent
