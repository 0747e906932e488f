#include "storage/file_store.hpp"

#include <algorithm>
#include <cassert>
#include <climits>
#include <cerrno>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/types.h>
#include <unistd.h>

#include "storage/part_file.hpp"

namespace actorrent {

namespace {

// Closes a descriptor on every return path of open(), which has many.
class unique_fd {
public:
  explicit unique_fd(int fd = -1) noexcept : fd_(fd) {}
  ~unique_fd() { reset(); }
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;

  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset() noexcept {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

private:
  int fd_;
};

error io_failure(const std::string& what, const std::string& path, int err) {
  return error{errc::io_error, what + " " + path + ": " + std::strerror(err)};
}

std::vector<std::string> split(const std::string& path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto slash = path.find('/', start);
    if (slash == std::string::npos)
      slash = path.size();
    if (slash > start)
      out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

// mkdir -p for the user-chosen output directory. Symbolic links are followed here on purpose:
// the root is trusted configuration, only what the torrent names below it is not.
status make_root(const std::string& root) {
  if (root.empty())
    return error{errc::invalid_argument, "empty output directory"};
  std::string prefix = root[0] == '/' ? "/" : "";
  for (const auto& part : split(root)) {
    prefix += part;
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST)
      return io_failure("cannot create directory", prefix, errno);
    prefix += '/';
  }
  return {};
}

// Explains why openat(dir, name, ...O_NOFOLLOW...) failed: a symbolic link is a refusal
// (it could lead anywhere), anything else an ordinary I/O error.
error open_failure(int dir, const std::string& name, const std::string& rel_path,
                   const std::string& full_path, int err) {
  struct stat st;
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
    return error{errc::unsafe_path,
                 "path " + rel_path + ": component " + name + " is a symbolic link"};
  return io_failure("cannot open", full_path, err);
}

int open_retry(int dir, const char* name, int flags, mode_t mode = 0) {
  int fd;
  do
    fd = ::openat(dir, name, flags, mode);
  while (fd < 0 && errno == EINTR);
  return fd;
}

} // namespace

file_store::file_store(std::shared_ptr<const file_layout> layout, std::string root,
                       file_pool& pool)
    : layout_(std::move(layout)), root_(std::move(root)), pool_(pool), owner_(pool.new_owner()),
      ids_(layout_->files().size()), dirty_(layout_->files().size(), 0) {}

file_store::~file_store() { pool_.forget(owner_); }

result<std::unique_ptr<file_store>> file_store::open(std::shared_ptr<const file_layout> layout,
                                                     const std::string& root,
                                                     const std::vector<file_priority>& priorities,
                                                     const std::string& part_path,
                                                     file_pool* pool) {
  if (!layout)
    return error{errc::invalid_argument, "no file layout"};
  if (!priorities.empty() && priorities.size() != layout->files().size())
    return error{errc::invalid_argument, std::to_string(priorities.size()) +
                                             " file priorities for a torrent of " +
                                             std::to_string(layout->files().size()) + " files"};
  if (part_path.empty() &&
      std::count(priorities.begin(), priorities.end(), file_priority::skip) > 0)
    return error{errc::invalid_argument, "skipped files need a part file"};
  if (auto s = make_root(root); !s)
    return s.error();
  unique_fd root_fd{open_retry(AT_FDCWD, root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (root_fd.get() < 0)
    return io_failure("cannot open directory", root, errno);

  // Owned from here on so that the destructor closes whatever was opened before a failure.
  std::unique_ptr<file_store> store{
      new file_store(std::move(layout), root, pool ? *pool : file_pool::process_default())};
  const auto& files = store->layout_->files();
  store->priorities_ = priorities.empty()
                          ? std::vector<file_priority>(files.size(), file_priority::normal)
                          : priorities;
  store->in_part_.assign(files.size(), false);
  store->part_ = std::make_unique<part_file>(part_path, store->layout_->piece_count(),
                                             store->layout_->piece_length());
  if (!part_path.empty())
    if (auto s = store->part_->load(); !s)
      return s.error();
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (files[i].pad)
      continue;
    if (auto s = store->open_file(root_fd.get(), i); !s)
      return s.error();
  }
  if (auto s = store->drop_part_file_if_unused(); !s)
    return s.error();
  return store;
}

status file_store::open_file(int root_fd, std::size_t i) {
  const auto& f = layout_->files()[i];
  // A skipped file is not created (nor its folders); its bytes go to the part file. One that
  // exists already (an earlier selection, or put there by hand) is used as it is.
  const bool skip = priorities_[i] == file_priority::skip;
  const auto parts = split(f.path);
  assert(!parts.empty());
  std::string full = root_;
  // Walk down one directory at a time relative to an already-open directory. O_NOFOLLOW on
  // each step means a symbolic link planted anywhere in the path (by an earlier torrent, a
  // local user, ...) is refused instead of followed outside the root.
  unique_fd dir;
  int cur = root_fd;
  for (std::size_t k = 0; k + 1 < parts.size(); ++k) {
    const auto& name = parts[k];
    full += "/" + name;
    if (!skip && ::mkdirat(cur, name.c_str(), 0755) != 0 && errno != EEXIST)
      return io_failure("cannot create directory", full, errno);
    unique_fd next{
        open_retry(cur, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
    if (next.get() < 0 && skip && errno == ENOENT) {
      in_part_[i] = true;
      return {};
    }
    if (next.get() < 0)
      return open_failure(cur, name, f.path, full, errno);
    dir = std::move(next);
    cur = dir.get();
  }
  const auto& name = parts.back();
  full += "/" + name;
  unique_fd fd{open_retry(cur, name.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC)};
  bool created = false;
  if (fd.get() < 0 && errno == ENOENT) {
    if (skip) {
      in_part_[i] = true;
      return {};
    }
    fd = unique_fd{open_retry(cur, name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
                              0644)};
    created = fd.get() >= 0;
  }
  if (fd.get() < 0)
    return open_failure(cur, name, f.path, full, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0)
    return io_failure("cannot stat", full, errno);
  // A FIFO or device planted under the root could block or reach hardware; only plain files
  // hold torrent data.
  if (!S_ISREG(st.st_mode))
    return error{errc::io_error, "cannot use " + full + ": not a regular file"};
  // Existing bytes are kept (they may be resumable data); only the length is corrected.
  if (static_cast<std::uint64_t>(st.st_size) != f.length) {
    int rc;
    do
      rc = ::ftruncate(fd.get(), static_cast<off_t>(f.length));
    while (rc != 0 && errno == EINTR);
    if (rc != 0)
      return io_failure("cannot resize", full, errno);
  }
  in_part_[i] = false;
  // Closed again (by unique_fd): a torrent may have more files than the process may open.
  // 0-byte files only need to exist and are never opened again.
  if (f.length == 0)
    return {};
  ids_[i] = file_id{true, static_cast<std::uint64_t>(st.st_dev),
                    static_cast<std::uint64_t>(st.st_ino)};
  // Bytes stored while the file was not selected move in. Only into a file made just now:
  // one that existed keeps what it holds.
  if (created) {
    dirty_[i] = 1;
    return move_from_part_file(i, fd.get());
  }
  return {};
}

status file_store::move_from_part_file(std::size_t i, int fd) {
  const auto& l = *layout_;
  const auto& f = l.files()[i];
  if (part_->empty() || f.length == 0)
    return {};
  const std::uint32_t first = static_cast<std::uint32_t>(f.offset / l.piece_length());
  const std::uint32_t last =
    static_cast<std::uint32_t>((f.offset + f.length - 1) / l.piece_length());
  std::vector<char> buf;
  for (std::uint32_t p = first; p <= last; ++p) {
    piece_index pi{p};
    if (!part_->has(pi))
      continue;
    const std::uint64_t piece_begin = std::uint64_t{p} * l.piece_length();
    const std::uint64_t begin = std::max(piece_begin, f.offset);
    const std::uint64_t end = std::min(piece_begin + l.piece_size(pi), f.offset + f.length);
    buf.resize(static_cast<std::size_t>(end - begin));
    if (auto s = part_->read(pi, static_cast<std::uint32_t>(begin - piece_begin), buf.data(),
                             buf.size());
        !s)
      return s;
    for (std::size_t done = 0; done < buf.size();) {
      ssize_t n = ::pwrite(fd, buf.data() + done, buf.size() - done,
                           static_cast<off_t>(begin - f.offset + done));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return io_failure("cannot write", root_ + "/" + f.path, n < 0 ? errno : EIO);
      done += static_cast<std::size_t>(n);
    }
  }
  return {};
}

status file_store::drop_part_file_if_unused() {
  for (bool in : in_part_)
    if (in)
      return {};
  // Every byte it held is in the real files now (made durable first).
  if (part_->empty())
    return {};
  if (auto s = sync(); !s)
    return s;
  return part_->remove();
}

result<int> file_store::reopen(std::size_t i, int& err) const {
  const auto& f = layout_->files()[i];
  const auto parts = split(f.path);
  unique_fd root_fd{open_retry(AT_FDCWD, root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (root_fd.get() < 0) {
    err = errno;
    return io_failure("cannot open directory", root_, err);
  }
  std::string full = root_;
  const error gone{errc::io_error,
                   root_ + "/" + f.path + ": deleted or replaced while downloading"};
  unique_fd dir;
  int cur = root_fd.get();
  for (std::size_t k = 0; k + 1 < parts.size(); ++k) {
    const auto& name = parts[k];
    full += "/" + name;
    unique_fd next{
        open_retry(cur, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
    if (next.get() < 0) {
      err = errno;
      return err == ENOENT ? gone : open_failure(cur, name, f.path, full, err);
    }
    dir = std::move(next);
    cur = dir.get();
  }
  const auto& name = parts.back();
  full += "/" + name;
  // No O_CREAT: a file deleted behind our back must not come back empty.
  unique_fd fd{open_retry(cur, name.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC)};
  if (fd.get() < 0) {
    err = errno;
    return err == ENOENT ? gone : open_failure(cur, name, f.path, full, err);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    err = errno;
    return io_failure("cannot stat", full, err);
  }
  if (static_cast<std::uint64_t>(st.st_dev) != ids_[i].dev ||
      static_cast<std::uint64_t>(st.st_ino) != ids_[i].ino)
    return gone;
  return fd.release();
}

result<file_pool::lease> file_store::file(std::size_t i) {
  assert(ids_[i].stored);
  return pool_.acquire(owner_, static_cast<std::uint32_t>(i),
                       [this, i](int& err) { return reopen(i, err); });
}

status file_store::set_priorities(const std::vector<file_priority>& priorities) {
  const auto& files = layout_->files();
  if (priorities.size() != files.size())
    return error{errc::invalid_argument, std::to_string(priorities.size()) +
                                             " file priorities for a torrent of " +
                                             std::to_string(files.size()) + " files"};
  priorities_ = priorities;
  unique_fd root_fd;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (!in_part_[i] || priorities_[i] == file_priority::skip)
      continue;
    if (root_fd.get() < 0) {
      root_fd = unique_fd{open_retry(AT_FDCWD, root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
      if (root_fd.get() < 0)
        return io_failure("cannot open directory", root_, errno);
    }
    if (auto s = open_file(root_fd.get(), i); !s)
      return s;
  }
  return drop_part_file_if_unused();
}

status file_store::write(piece_index p, std::uint32_t offset, std::string_view data) {
  const auto& l = *layout_;
  if (p.value >= l.piece_count() || offset > l.piece_size(p) ||
      data.size() > l.piece_size(p) - offset)
    return error{errc::invalid_argument, "write of " + std::to_string(data.size()) +
                                             " bytes at offset " + std::to_string(offset) +
                                             " is outside piece " + std::to_string(p.value)};
  scratch_.clear();
  l.map_block(p, offset, static_cast<std::uint32_t>(data.size()), scratch_);
  const char* src = data.data();
  std::uint32_t at = offset; // where in the piece this slice starts
  for (const auto& s : scratch_) {
    const auto& f = l.files()[s.file.value];
    at += static_cast<std::uint32_t>(s.length);
    // Padding is never stored; what a peer sends for it is checked by the piece hash anyway.
    if (f.pad) {
      src += s.length;
      continue;
    }
    if (in_part_[s.file.value]) {
      if (auto st = part_->write(p, at - static_cast<std::uint32_t>(s.length), src, s.length);
          !st)
        return st;
      src += s.length;
      continue;
    }
    auto lease = file(s.file.value);
    if (!lease)
      return lease.error();
    const int fd = lease->fd();
    dirty_[s.file.value] = 1;
    std::uint64_t done = 0;
    while (done < s.length) {
      ssize_t n =
          ::pwrite(fd, src + done, s.length - done, static_cast<off_t>(s.file_offset + done));
      if (n < 0) {
        if (errno == EINTR)
          continue;
        return io_failure("cannot write", root_ + "/" + f.path, errno);
      }
      if (n == 0)
        return error{errc::io_error, "cannot write " + root_ + "/" + f.path + ": no progress"};
      done += static_cast<std::uint64_t>(n);
    }
    src += s.length;
  }
  return {};
}

status file_store::flush(pending_write& w) {
  if (w.iov.empty())
    return {};
  auto lease = file(w.file);
  if (!lease)
    return lease.error();
  const int fd = lease->fd();
  dirty_[w.file] = 1;
  std::size_t first = 0;
  std::uint64_t off = w.offset;
  while (first < w.iov.size()) {
    auto count = static_cast<int>(std::min<std::size_t>(w.iov.size() - first, IOV_MAX));
    ssize_t n = ::pwritev(fd, w.iov.data() + first, count, static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return io_failure("cannot write", root_ + "/" + layout_->files()[w.file].path, errno);
    }
    if (n == 0)
      return error{errc::io_error,
                   "cannot write " + root_ + "/" + layout_->files()[w.file].path + ": no progress"};
    off += static_cast<std::uint64_t>(n);
    // Skip what was written; a partial iovec continues where the write stopped.
    auto left = static_cast<std::size_t>(n);
    while (first < w.iov.size() && left >= w.iov[first].iov_len)
      left -= w.iov[first++].iov_len;
    if (left > 0) {
      w.iov[first].iov_base = static_cast<char*>(w.iov[first].iov_base) + left;
      w.iov[first].iov_len -= left;
    }
  }
  w.iov.clear();
  w.file = SIZE_MAX;
  return {};
}

status file_store::write_many(const std::vector<span>& spans) {
  const auto& l = *layout_;
  auto& w = pending_;
  w.iov.clear();
  w.file = SIZE_MAX;
  for (const auto& sp : spans) {
    if (sp.piece.value >= l.piece_count() || sp.offset > l.piece_size(sp.piece) ||
        sp.data.size() > l.piece_size(sp.piece) - sp.offset)
      return error{errc::invalid_argument, "write of " + std::to_string(sp.data.size()) +
                                               " bytes at offset " + std::to_string(sp.offset) +
                                               " is outside piece " +
                                               std::to_string(sp.piece.value)};
    scratch_.clear();
    l.map_block(sp.piece, sp.offset, static_cast<std::uint32_t>(sp.data.size()), scratch_);
    const char* src = sp.data.data();
    std::uint32_t at = sp.offset; // where in the piece this slice starts
    for (const auto& s : scratch_) {
      if (in_part_[s.file.value]) {
        if (auto st = part_->write(sp.piece, at, src, s.length); !st)
          return st;
      } else if (!l.files()[s.file.value].pad) {
        // Padding is never stored; what a peer sends for it is checked by the piece hash.
        if (w.file != s.file.value || w.end != s.file_offset) {
          if (auto st = flush(w); !st)
            return st;
          w.file = s.file.value;
          w.offset = w.end = s.file_offset;
        }
        w.iov.push_back(iovec{const_cast<char*>(src), static_cast<std::size_t>(s.length)});
        w.end += s.length;
      }
      src += s.length;
      at += static_cast<std::uint32_t>(s.length);
    }
  }
  return flush(w);
}

status file_store::read(piece_index p, std::uint32_t offset, std::uint32_t length, char* out) {
  const auto& l = *layout_;
  if (p.value >= l.piece_count() || offset > l.piece_size(p) || length > l.piece_size(p) - offset)
    return error{errc::invalid_argument, "read of " + std::to_string(length) + " bytes at offset " +
                                             std::to_string(offset) + " is outside piece " +
                                             std::to_string(p.value)};
  scratch_.clear();
  l.map_block(p, offset, length, scratch_);
  std::uint32_t at = offset; // where in the piece this slice starts
  for (const auto& s : scratch_) {
    const auto& f = l.files()[s.file.value];
    at += static_cast<std::uint32_t>(s.length);
    if (f.pad) {
      std::memset(out, 0, s.length);
      out += s.length;
      continue;
    }
    if (in_part_[s.file.value]) {
      if (auto st = part_->read(p, at - static_cast<std::uint32_t>(s.length), out, s.length);
          !st)
        return st;
      out += s.length;
      continue;
    }
    auto lease = file(s.file.value);
    if (!lease)
      return lease.error();
    const int fd = lease->fd();
    std::uint64_t done = 0;
    while (done < s.length) {
      ssize_t n =
          ::pread(fd, out + done, s.length - done, static_cast<off_t>(s.file_offset + done));
      if (n < 0) {
        if (errno == EINTR)
          continue;
        return io_failure("cannot read", root_ + "/" + f.path, errno);
      }
      // The file was truncated behind our back (open() sized it): its data is gone.
      if (n == 0)
        return error{errc::io_error, "cannot read " + root_ + "/" + f.path +
                                         ": unexpected end of file at offset " +
                                         std::to_string(s.file_offset + done)};
      done += static_cast<std::uint64_t>(n);
    }
    out += s.length;
  }
  return {};
}

status file_store::sync() {
  // Every file is synced even after a failure, so one bad file does not leave the others
  // unflushed; the first error is reported. A file the pool closed since its writes is opened
  // again: fdatasync flushes the file's dirty pages whichever descriptor wrote them.
  status first = part_ ? part_->sync() : status{};
  for (std::size_t i = 0; i < dirty_.size(); ++i) {
    if (!dirty_[i])
      continue;
    auto lease = file(i);
    if (!lease) {
      if (first.ok())
        first = lease.error();
      continue;
    }
    int rc;
    do
      rc = ::fdatasync(lease->fd());
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      if (first.ok())
        first = io_failure("cannot sync", root_ + "/" + layout_->files()[i].path, errno);
      continue;
    }
    dirty_[i] = 0;
  }
  return first;
}

status file_store::check_files() const {
  // By path, whether the pool holds the file open or not: a deleted file is gone from its
  // directory, a replaced one has another inode.
  for (std::size_t i = 0; i < ids_.size(); ++i) {
    if (!ids_[i].stored)
      continue;
    const auto path = root_ + "/" + layout_->files()[i].path;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno != ENOENT && errno != ENOTDIR)
        return io_failure("cannot stat", path, errno);
      return error{errc::io_error, path + ": deleted or replaced while downloading"};
    }
    if (static_cast<std::uint64_t>(st.st_dev) != ids_[i].dev ||
        static_cast<std::uint64_t>(st.st_ino) != ids_[i].ino)
      return error{errc::io_error, path + ": deleted or replaced while downloading"};
  }
  return {};
}

} // namespace actorrent
