// A fence on a torrent's writes, for cluster workers (docs/CLUSTER.md): the storage checks it
// right before every block write, from the disk threads. Writes are allowed only
//  - until the lease deadline, which the worker pushes forward each time the coordinator
//    renews its lease (a worker frozen by SIGSTOP, or cut off, finds its lease expired when it
//    runs again and writes nothing), and
//  - into the pieces of the worker's current shard (a piece handed to another worker is
//    fenced off before the hand-over is acknowledged).
// A torrent without a fence (the CLI, batch jobs) writes freely. Thread-safe, CAF-free.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>

#include <roaring/roaring.hh>

namespace actorrent {

class write_fence {
public:
  using clock = std::chrono::steady_clock;

  /// Closed: no lease yet, no pieces.
  write_fence() = default;

  /// Writes are allowed until `deadline` (a later renewal moves it; an earlier one too).
  void allow_until(clock::time_point deadline) noexcept {
    deadline_ns_.store(deadline.time_since_epoch().count(), std::memory_order_release);
  }
  /// No write from now on (the coordinator is lost).
  void close() noexcept { deadline_ns_.store(0, std::memory_order_release); }

  /// The pieces that may be written from now on (replaces the previous set).
  void set_pieces(Roaring pieces) {
    auto next = std::make_shared<const Roaring>(std::move(pieces));
    std::lock_guard<std::mutex> g(mu_);
    pieces_ = std::move(next);
  }

  /// Whether a block of `piece` may be written now. A refusal is counted.
  bool allows(std::uint32_t piece) const noexcept {
    if (clock::now().time_since_epoch().count() >= deadline_ns_.load(std::memory_order_acquire)) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    std::shared_ptr<const Roaring> p;
    {
      std::lock_guard<std::mutex> g(mu_);
      p = pieces_;
    }
    if (!p || !p->contains(piece)) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  /// Writes refused so far.
  std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

private:
  std::atomic<clock::rep> deadline_ns_{0};
  mutable std::mutex mu_;
  std::shared_ptr<const Roaring> pieces_;
  mutable std::atomic<std::uint64_t> refused_{0};
};

} // namespace actorrent
