// The session-wide disk pool: a fixed set of threads on which the blocking work of every
// torrent runs (writes, piece hashes, upload reads, checks of existing data, resume data), so
// the process's thread count does not grow with the number of torrents. CAF-free: storage
// actors post jobs and the jobs send their results back as messages.
//
// Scheduling. Each torrent has a queue. Its `io` jobs (writes, reads, hashes of completed
// pieces, syncs: everything that touches the torrent's file_store and piece record) run one at
// a time and in the order posted, so they need no lock. Its `check` jobs (bounded slices of a
// check of existing data, which read the files on their own descriptors) may run on several
// threads at once. Threads take io jobs before check jobs, and take each class from the
// torrents round-robin: an upload read posted behind a 1 GiB check waits for at most the slices
// already running, not for the check. So that checks are not starved by a steady stream of
// writes, every `check_share`-th pick takes a check slice when one is waiting.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace actorrent {

class disk_pool {
public:
  enum class job_class {
    io,    // serial per queue, ahead of checks
    check, // may run in parallel with anything, after io work
  };
  using job = std::function<void()>;
  class queue;

  /// Starts `threads` threads. 0: no thread at all, post() runs each job at once on the
  /// caller's thread (deterministic tests on CAF's test scheduler).
  explicit disk_pool(unsigned threads);
  /// Runs every job still queued, then joins the threads.
  ~disk_pool();
  disk_pool(const disk_pool&) = delete;
  disk_pool& operator=(const disk_pool&) = delete;

  /// One queue per torrent (or any other owner whose io jobs must not overlap).
  std::shared_ptr<queue> make_queue();
  void post(const std::shared_ptr<queue>& q, job_class c, job j);

  unsigned threads() const noexcept { return static_cast<unsigned>(threads_.size()); }
  /// Jobs posted and not yet finished (for tests and metrics).
  std::size_t pending() const;

  /// A pool without threads, shared by deterministic tests.
  static disk_pool& inline_pool();
  /// The pool of callers that configure none: one thread per hardware thread (at least 2),
  /// started on first use and joined at exit.
  static disk_pool& process_default();

  /// Io picks in a row, while check slices wait, before one check slice is taken.
  static constexpr unsigned check_share = 8;

private:
  void run();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<queue>> io_ready_;    // queues with io jobs and none running
  std::deque<std::shared_ptr<queue>> check_ready_; // queues with check jobs waiting
  std::size_t pending_ = 0;
  unsigned io_streak_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

} // namespace actorrent
