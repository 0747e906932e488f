#include "storage/disk_pool.hpp"

#include <algorithm>
#include <utility>

namespace actorrent {

class disk_pool::queue {
public:
  std::deque<job> io;
  std::deque<job> checks;
  bool io_running = false; // an io job of this queue is running: the next one waits
  bool in_io_ready = false;
  bool in_check_ready = false;
};

disk_pool::disk_pool(unsigned threads) {
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i)
    threads_.emplace_back([this] { run(); });
}

disk_pool::~disk_pool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_)
    t.join();
}

std::shared_ptr<disk_pool::queue> disk_pool::make_queue() { return std::make_shared<queue>(); }

void disk_pool::post(const std::shared_ptr<queue>& q, job_class c, job j) {
  if (threads_.empty()) {
    j();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++pending_;
    if (c == job_class::io) {
      q->io.push_back(std::move(j));
      if (!q->io_running && !q->in_io_ready) {
        q->in_io_ready = true;
        io_ready_.push_back(q);
      }
    } else {
      q->checks.push_back(std::move(j));
      if (!q->in_check_ready) {
        q->in_check_ready = true;
        check_ready_.push_back(q);
      }
    }
  }
  wake_.notify_one();
}

std::size_t disk_pool::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_;
}

void disk_pool::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock,
               [this] { return stopping_ || !io_ready_.empty() || !check_ready_.empty(); });
    if (io_ready_.empty() && check_ready_.empty())
      return; // stopping, and nothing is left to run
    const bool take_io =
      !io_ready_.empty() && (check_ready_.empty() || io_streak_ < check_share);
    std::shared_ptr<queue> q;
    job j;
    if (take_io) {
      q = std::move(io_ready_.front());
      io_ready_.pop_front();
      q->in_io_ready = false;
      q->io_running = true;
      j = std::move(q->io.front());
      q->io.pop_front();
      io_streak_ = check_ready_.empty() ? 0 : io_streak_ + 1;
    } else {
      q = std::move(check_ready_.front());
      check_ready_.pop_front();
      j = std::move(q->checks.front());
      q->checks.pop_front();
      // Round-robin: a torrent with more slices goes to the back, behind the others.
      if (q->checks.empty())
        q->in_check_ready = false;
      else
        check_ready_.push_back(q);
      io_streak_ = 0;
    }
    lock.unlock();
    j();
    j = nullptr; // whatever the job captured is released outside the lock
    lock.lock();
    --pending_;
    if (take_io) {
      q->io_running = false;
      if (!q->io.empty()) {
        q->in_io_ready = true;
        io_ready_.push_back(q);
        wake_.notify_one();
      }
    }
  }
}

disk_pool& disk_pool::inline_pool() {
  static disk_pool pool{0};
  return pool;
}

disk_pool& disk_pool::process_default() {
  static disk_pool pool{std::max(2u, std::thread::hardware_concurrency())};
  return pool;
}

} // namespace actorrent
