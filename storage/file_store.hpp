// The files of one torrent under one output directory: created (sparse) on open, written with
// pwrite and read with pread, never outside the directory. Descriptors come from a file_pool
// shared by every torrent (files are opened when used and closed when the pool needs room), so
// a torrent of thousands of files works under the default descriptor limit. Files not selected
// (priority skip) are not created: the bytes of theirs that boundary pieces need go to the
// torrent's part file (storage/part_file.hpp) and move into the real file once it is selected.
// Blocking: only the storage actor's io jobs call it, one at a time. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <sys/uio.h>

#include "protocol/error.hpp"
#include "storage/file_layout.hpp"
#include "storage/file_pool.hpp"

namespace actorrent {

class part_file;

class file_store {
public:
  /// Creates `root` if needed, then every directory and file of `layout` below it (0-byte files
  /// included, padding files skipped). Existing files are kept (their bytes may be valid data);
  /// shorter ones are extended (sparse) to their length, longer ones truncated. Refuses
  /// (errc::unsafe_path) if any path would resolve outside `root`, e.g. through a symbolic link
  /// already present; files are opened with O_NOFOLLOW. I/O failures are errc::io_error naming
  /// the file and strerror. Files are closed again once created; later reads and writes open
  /// them through `pool` (null: file_pool::process_default()), with O_NOFOLLOW on every path
  /// component, and refuse a file that is not the one created here (deleted or replaced).
  /// `priorities` (empty: every file normal) has one entry per file; a skip file that does not
  /// exist is not created, nor its folders, and its bytes go to the part file at `part_path`
  /// (needed when any file is skip). A file created now gets the bytes the part file holds
  /// for it; once no file needs the part file it is deleted.
  static result<std::unique_ptr<file_store>> open(std::shared_ptr<const file_layout> layout,
                                                  const std::string& root,
                                                  const std::vector<file_priority>& priorities = {},
                                                  const std::string& part_path = {},
                                                  file_pool* pool = nullptr);

  ~file_store();
  file_store(const file_store&) = delete;
  file_store& operator=(const file_store&) = delete;

  /// Writes `data` at [offset, offset + data.size()) of piece `p` (may span files).
  status write(piece_index p, std::uint32_t offset, std::string_view data);

  struct span {
    piece_index piece;
    std::uint32_t offset = 0;
    std::string_view data;
  };
  /// Writes every span, in order; spans that continue each other on disk go out in one
  /// pwritev (a read's worth of blocks is usually one or two system calls, not one per block).
  status write_many(const std::vector<span>& spans);
  /// Reads `length` bytes at `offset` of piece `p` into `out` (padding files read as zeros;
  /// short reads of a file that is too small are errc::io_error).
  status read(piece_index p, std::uint32_t offset, std::uint32_t length, char* out);
  /// fdatasync every file written since the last sync (used before resume data is saved).
  status sync();
  /// Fails (errc::io_error naming the file) if a file was deleted or replaced since it was
  /// created: its writes would then land in a file nobody can see. Checked before resume data
  /// is saved and before a download is reported complete.
  status check_files() const;

  const file_layout& layout() const noexcept { return *layout_; }
  const std::string& root() const noexcept { return root_; }

  /// A new selection: files leaving skip are created and get their bytes from the part file.
  /// Files becoming skip keep what they hold (they exist already).
  status set_priorities(const std::vector<file_priority>& priorities);
  const std::vector<file_priority>& priorities() const noexcept { return priorities_; }
  /// Whether file i is absent and its bytes go to the part file.
  bool in_part_file(file_index i) const { return in_part_[i.value]; }

private:
  file_store(std::shared_ptr<const file_layout> layout, std::string root, file_pool& pool);

  /// The descriptor of file i from the pool (opened again if the pool closed it).
  result<file_pool::lease> file(std::size_t i);
  /// Opens file i again below the root, refusing symbolic links and any other file than the
  /// one created by open().
  result<int> reopen(std::size_t i, int& err) const;

  /// Identity of a data file as created, to tell it from one put in its place later.
  struct file_id {
    bool stored = false; // false for padding and 0-byte files: never opened again
    std::uint64_t dev = 0;
    std::uint64_t ino = 0;
  };

  std::shared_ptr<const file_layout> layout_;
  std::string root_;
  file_pool& pool_;
  std::uint64_t owner_; // this store's name in the pool
  std::vector<file_id> ids_;
  std::vector<char> dirty_;        // written since the last sync
  std::vector<file_priority> priorities_;
  std::vector<bool> in_part_;      // not created: bytes go to part_
  std::unique_ptr<part_file> part_;
  std::vector<file_slice> scratch_;
  /// Consecutive bytes of one file waiting to be written with one pwritev (reused per call).
  struct pending_write {
    std::size_t file = SIZE_MAX;
    std::uint64_t offset = 0; // where the first iovec goes
    std::uint64_t end = 0;    // where the next contiguous byte would go
    std::vector<struct iovec> iov;
  };
  pending_write pending_;
  status flush(pending_write& w);
  status open_file(int root_fd, std::size_t i);
  status move_from_part_file(std::size_t i, int fd);
  status drop_part_file_if_unused();
};

} // namespace actorrent
