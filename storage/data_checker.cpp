#include "storage/data_checker.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol/sha1.hpp"

namespace actorrent {

namespace {

constexpr std::size_t max_chunk = 1u << 20;    // bytes read (and hashed) at a time
// Descriptors a worker keeps open: few, since every disk thread may be checking at once and
// descriptors are shared with the sockets and the open-file pool.
constexpr std::size_t max_open_per_thread = 32;
constexpr int not_tried = -2;
constexpr int unavailable = -1;

int open_retry(int dir, const char* name, int flags) {
  int fd;
  do
    fd = ::openat(dir, name, flags);
  while (fd < 0 && errno == EINTR);
  return fd;
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

// One worker's view of the files: descriptors opened on first use and kept, a read buffer and
// a hasher. Only its own thread touches it.
class piece_reader {
public:
  piece_reader(const file_layout& layout, int root_fd)
      : layout_(layout), root_fd_(root_fd), fds_(layout.files().size(), not_tried),
        buf_(std::min<std::size_t>(max_chunk, std::max<std::uint32_t>(layout.piece_length(), 1))) {}

  ~piece_reader() {
    for (int fd : fds_)
      if (fd >= 0)
        ::close(fd);
  }
  piece_reader(const piece_reader&) = delete;
  piece_reader& operator=(const piece_reader&) = delete;

  /// SHA-1 of piece p as stored; false if any of its bytes cannot be read (or on cancel).
  bool hash(piece_index p, sha1_digest& out, const std::atomic<bool>* cancel) {
    hasher_.reset();
    slices_.clear();
    layout_.map_block(p, 0, layout_.piece_size(p), slices_);
    for (const auto& s : slices_) {
      const auto& f = layout_.files()[s.file.value];
      if (f.pad) {
        std::fill(buf_.begin(), buf_.end(), '\0');
        for (std::uint64_t left = s.length; left > 0;) {
          const auto n = std::min<std::uint64_t>(left, buf_.size());
          hasher_.update(std::string_view{buf_.data(), static_cast<std::size_t>(n)});
          left -= n;
        }
        continue;
      }
      const int fd = file(s.file.value);
      if (fd < 0)
        return false;
      for (std::uint64_t done = 0; done < s.length;) {
        if (cancel && cancel->load(std::memory_order_relaxed))
          return false;
        const auto want =
            static_cast<std::size_t>(std::min<std::uint64_t>(s.length - done, buf_.size()));
        ssize_t n = ::pread(fd, buf_.data(), want, static_cast<off_t>(s.file_offset + done));
        if (n < 0 && errno == EINTR)
          continue;
        if (n <= 0) // read error, or the file ends before the bytes the piece needs
          return false;
        hasher_.update(std::string_view{buf_.data(), static_cast<std::size_t>(n)});
        done += static_cast<std::uint64_t>(n);
      }
    }
    out = hasher_.finish();
    return true;
  }

private:
  int file(std::uint32_t i) {
    int& fd = fds_[i];
    if (fd != not_tried)
      return fd;
    if (open_count_ >= max_open_per_thread) {
      // A torrent with very many files: start over rather than run out of descriptors. The
      // current piece's earlier files have been read already.
      for (auto& other : fds_)
        if (other >= 0) {
          ::close(other);
          other = not_tried;
        }
      open_count_ = 0;
    }
    int err = 0;
    fd = open_file(layout_.files()[i].path, err);
    if (fd >= 0) {
      ++open_count_;
    } else if (err == EMFILE || err == ENFILE || err == ENOMEM) {
      // Transient: this piece fails, but a later one may open the file.
      fd = not_tried;
      return unavailable;
    }
    return fd;
  }

  // Opens `path` below the root one component at a time, refusing symbolic links anywhere
  // (the checker never reads outside the output directory), and only regular files (a FIFO
  // planted there could block; O_NONBLOCK makes the open itself return).
  int open_file(const std::string& path, int& err) {
    if (root_fd_ < 0)
      return unavailable;
    const auto parts = split(path);
    if (parts.empty())
      return unavailable;
    int dir = root_fd_;
    int owned = -1;
    for (std::size_t k = 0; k + 1 < parts.size(); ++k) {
      int next = open_retry(dir, parts[k].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      err = errno;
      if (owned >= 0)
        ::close(owned);
      if (next < 0)
        return unavailable;
      dir = owned = next;
    }
    int fd = open_retry(dir, parts.back().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    err = errno;
    if (owned >= 0)
      ::close(owned);
    if (fd < 0)
      return unavailable;
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      err = 0;
      return unavailable;
    }
    return fd;
  }

  const file_layout& layout_;
  int root_fd_;
  std::vector<int> fds_;
  std::size_t open_count_ = 0;
  std::vector<char> buf_;
  std::vector<file_slice> slices_;
  sha1_hasher hasher_;
};

} // namespace

Roaring check_pieces(const file_layout& layout, const metainfo& m, const std::string& out_dir,
                     const Roaring& pieces, unsigned threads,
                     std::function<void(std::uint32_t done, std::uint32_t total)> progress,
                     std::atomic<bool>* cancel) {
  const std::uint32_t n = std::min(layout.piece_count(), m.piece_count());
  std::vector<std::uint32_t> todo;
  todo.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(pieces.cardinality(), n)));
  for (auto it = pieces.begin(); it != pieces.end(); ++it) {
    if (*it >= n)
      break; // iteration is in increasing order
    todo.push_back(*it);
  }
  if (todo.empty())
    return {};

  int root_fd;
  do
    root_fd = ::open(out_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (root_fd < 0 && errno == EINTR);
  // Without the directory every piece fails; that is still reported piece by piece below.

  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, todo.size()));

  const auto total = static_cast<std::uint32_t>(todo.size());
  std::vector<char> ok(todo.size(), 0); // one slot per piece, each written by one worker
  std::atomic<std::size_t> next{0};
  std::mutex progress_mutex;
  std::uint32_t done = 0;

  auto work = [&] {
    piece_reader reader(layout, root_fd);
    sha1_digest digest;
    for (;;) {
      if (cancel && cancel->load(std::memory_order_relaxed))
        return;
      const std::size_t k = next.fetch_add(1, std::memory_order_relaxed);
      if (k >= todo.size())
        return;
      const piece_index p{todo[k]};
      const bool hashed = reader.hash(p, digest, cancel);
      if (!hashed && cancel && cancel->load(std::memory_order_relaxed))
        return; // interrupted, not done
      ok[k] = hashed && digest == m.piece_hashes[p.value];
      std::lock_guard<std::mutex> lock(progress_mutex);
      ++done;
      if (progress)
        progress(done, total);
    }
  };

  // The calling thread is one of the workers; if no further thread can be started the check
  // still runs, only slower.
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {
      break;
    }
  }
  work();
  for (auto& t : pool)
    t.join();
  if (root_fd >= 0)
    ::close(root_fd);

  Roaring verified;
  for (std::size_t k = 0; k < todo.size(); ++k)
    if (ok[k])
      verified.add(todo[k]);
  return verified;
}

} // namespace actorrent
