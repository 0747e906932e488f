// The process's bounded set of open descriptors for torrent data: one LRU shared by every
// file_store (every torrent), sized from RLIMIT_NOFILE, so that a torrent of thousands of files,
// or a thousand torrents, leaves descriptors for the sockets. Files are opened on first use and
// closed when they are the least recently used and the pool is full. Thread-safe: the disk
// threads of different torrents use it at once, and a descriptor in use (leased) is never
// closed under its user.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <unordered_map>

#include "protocol/error.hpp"

namespace actorrent {

class file_pool {
public:
  /// Holds `capacity` descriptors at most (more only while more than that are leased at once).
  explicit file_pool(std::size_t capacity);
  /// Closes every descriptor (none may be leased).
  ~file_pool();
  file_pool(const file_pool&) = delete;
  file_pool& operator=(const file_pool&) = delete;

  /// A quarter of the soft RLIMIT_NOFILE, between 8 and 1,024: with the default limit of
  /// 1,024, 256 for data files and the rest for sockets (peers, trackers, the listener), the
  /// checker's and the process's own. libtorrent's default is in the same range.
  static std::size_t default_capacity();
  /// The pool of every file_store that is given none: default_capacity(), created on first use.
  static file_pool& process_default();

  /// A descriptor in use: the pool does not close it while the lease lives. Move-only.
  class lease {
  public:
    lease() = default;
    lease(lease&& other) noexcept;
    lease& operator=(lease&& other) noexcept;
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() { reset(); }
    int fd() const noexcept { return fd_; }
    void reset();

  private:
    friend class file_pool;
    lease(file_pool* pool, void* entry, int fd) : pool_(pool), entry_(entry), fd_(fd) {}
    file_pool* pool_ = nullptr;
    void* entry_ = nullptr;
    int fd_ = -1;
  };

  /// Opens a file: returns its descriptor, or the error to report and in `err` the errno of
  /// the failed open (EMFILE/ENFILE make the pool close idle descriptors and try once more).
  /// Called without the pool's lock held.
  using opener = std::function<result<int>(int& err)>;

  /// The descriptor of file `file` of `owner`, opened with `open` unless it is open already.
  /// If opening fails because the process is out of descriptors, idle descriptors are closed
  /// and the open is tried once more.
  result<lease> acquire(std::uint64_t owner, std::uint32_t file, const opener& open);
  /// Closes every descriptor of `owner` that is not leased (a file_store going away).
  void forget(std::uint64_t owner);
  /// A number that names one owner (a file_store) for the life of the process.
  std::uint64_t new_owner();

  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t open_count() const;
  /// Files opened so far (misses): for tests.
  std::uint64_t opens() const;

private:
  struct key {
    std::uint64_t owner;
    std::uint32_t file;
    bool operator==(const key& o) const noexcept { return owner == o.owner && file == o.file; }
  };
  struct key_hash {
    std::size_t operator()(const key& k) const noexcept {
      return std::hash<std::uint64_t>()(k.owner * 0x9e3779b97f4a7c15ull ^ k.file);
    }
  };
  struct entry {
    key k;
    int fd = -1;
    unsigned leases = 0;
  };
  using lru_list = std::list<entry>; // most recently used first; iterators stay valid

  void release(void* e);
  /// Closes idle descriptors from the least recently used end until at most `keep` are open.
  void shrink_locked(std::size_t keep);

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  lru_list lru_;
  std::unordered_map<key, lru_list::iterator, key_hash> index_;
  std::uint64_t next_owner_ = 1;
  std::uint64_t opens_ = 0;
};

} // namespace actorrent
