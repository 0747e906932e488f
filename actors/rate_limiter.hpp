// Token buckets for the session's and each torrent's transfer rates, shared by the connections
// that move bytes under them (any thread). CAF-free and asio-free: connections ask how long to
// wait and arm a timer of their own; nothing polls.
//
// Bytes are taken after they moved (a read returns what the socket had), so a bucket can go
// into debt by one read; the connection then waits until the debt is paid. Over any long
// window the bytes moved are rate * time + burst, never more than one read per connection
// beyond it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "protocol/units.hpp" // parse_rate, for the users of the limiter

namespace actorrent {

class rate_limiter {
public:
  using clock = std::chrono::steady_clock;

  /// bytes per second; 0 = no limit.
  explicit rate_limiter(std::uint64_t rate = 0);

  /// Changes the rate (0 = none). The bucket restarts with one burst of tokens.
  void set_rate(std::uint64_t bytes_per_s, clock::time_point now = clock::now());
  std::uint64_t rate() const noexcept { return rate_.load(std::memory_order_relaxed); }
  bool unlimited() const noexcept { return rate() == 0; }

  /// Tokens available now (negative: in debt). Unlimited: a large number.
  std::int64_t available(clock::time_point now = clock::now());
  /// Takes `bytes` that moved (the bucket may go into debt).
  void consume(std::uint64_t bytes, clock::time_point now = clock::now());
  /// How long until the bucket holds a token again (zero when it does now).
  std::chrono::nanoseconds wait_time(clock::time_point now = clock::now());

  /// Tokens a full bucket holds: a twentieth of a second of the rate, at least 16 KiB (one
  /// block), so a 10 s window is over the rate by at most 0.5 %.
  static std::uint64_t burst_of(std::uint64_t rate);

private:
  void refill(clock::time_point now); // with mutex_ held
  std::atomic<std::uint64_t> rate_{0};
  std::mutex mutex_;
  double tokens_ = 0;
  clock::time_point last_{};
};

} // namespace actorrent
