#include "storage/file_pool.hpp"

#include <algorithm>
#include <cerrno>
#include <utility>

#include <sys/resource.h>
#include <unistd.h>

namespace actorrent {

file_pool::lease::lease(lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), entry_(std::exchange(other.entry_, nullptr)),
      fd_(std::exchange(other.fd_, -1)) {}

file_pool::lease& file_pool::lease::operator=(lease&& other) noexcept {
  if (this != &other) {
    reset();
    pool_ = std::exchange(other.pool_, nullptr);
    entry_ = std::exchange(other.entry_, nullptr);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void file_pool::lease::reset() {
  if (pool_)
    pool_->release(entry_);
  pool_ = nullptr;
  entry_ = nullptr;
  fd_ = -1;
}

file_pool::file_pool(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}

file_pool::~file_pool() {
  for (auto& e : lru_)
    if (e.fd >= 0)
      ::close(e.fd);
}

std::size_t file_pool::default_capacity() {
  struct rlimit rl;
  std::size_t soft = 1024; // if the limit cannot be read: the usual default
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0)
    soft = rl.rlim_cur == RLIM_INFINITY ? std::size_t{1} << 20
                                        : static_cast<std::size_t>(rl.rlim_cur);
  return std::clamp<std::size_t>(soft / 4, 8, 1024);
}

file_pool& file_pool::process_default() {
  static file_pool pool{default_capacity()};
  return pool;
}

std::uint64_t file_pool::new_owner() {
  std::lock_guard<std::mutex> lock(mutex_);
  return next_owner_++;
}

std::size_t file_pool::open_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lru_.size();
}

std::uint64_t file_pool::opens() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return opens_;
}

result<file_pool::lease> file_pool::acquire(std::uint64_t owner, std::uint32_t file,
                                            const opener& open) {
  const key k{owner, file};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = index_.find(k); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++it->second->leases;
      return lease{this, &*it->second, it->second->fd};
    }
    // Room first, so that the open below does not take the process over its limit.
    shrink_locked(capacity_ - 1);
  }
  // Opening walks directories: not under the lock, other threads keep using the pool.
  int err = 0;
  auto fd = open(err);
  if (!fd && (err == EMFILE || err == ENFILE)) {
    // Out of descriptors (sockets took them): give back half of the idle ones and retry.
    {
      std::lock_guard<std::mutex> lock(mutex_);
      shrink_locked(lru_.size() / 2);
    }
    err = 0;
    fd = open(err);
  }
  if (!fd)
    return fd.error();
  std::lock_guard<std::mutex> lock(mutex_);
  ++opens_;
  if (auto it = index_.find(k); it != index_.end()) {
    // Another thread opened it meanwhile: use that one.
    ::close(*fd);
    lru_.splice(lru_.begin(), lru_, it->second);
    ++it->second->leases;
    return lease{this, &*it->second, it->second->fd};
  }
  lru_.push_front(entry{k, *fd, 1});
  index_.emplace(k, lru_.begin());
  return lease{this, &lru_.front(), *fd};
}

void file_pool::release(void* e) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto* ent = static_cast<entry*>(e);
  --ent->leases;
  if (lru_.size() > capacity_)
    shrink_locked(capacity_);
}

void file_pool::shrink_locked(std::size_t keep) {
  // Leased descriptors are skipped: at most one per disk thread and file in use, so the walk
  // from the cold end finds idle ones at once.
  for (auto it = lru_.end(); lru_.size() > keep && it != lru_.begin();) {
    --it;
    if (it->leases > 0)
      continue;
    ::close(it->fd);
    index_.erase(it->k);
    it = lru_.erase(it);
  }
}

void file_pool::forget(std::uint64_t owner) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->k.owner == owner && it->leases == 0) {
      ::close(it->fd);
      index_.erase(it->k);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
}

} // namespace actorrent
