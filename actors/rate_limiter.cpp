#include "actors/rate_limiter.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

namespace actorrent {

rate_limiter::rate_limiter(std::uint64_t rate) { set_rate(rate); }

std::uint64_t rate_limiter::burst_of(std::uint64_t rate) {
  return std::max<std::uint64_t>(rate / 20, 16 * 1024);
}

void rate_limiter::set_rate(std::uint64_t bytes_per_s, clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  rate_.store(bytes_per_s, std::memory_order_relaxed);
  tokens_ = static_cast<double>(burst_of(bytes_per_s));
  last_ = now;
}

void rate_limiter::refill(clock::time_point now) {
  auto r = rate();
  if (now > last_) {
    double dt = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(tokens_ + dt * static_cast<double>(r), static_cast<double>(burst_of(r)));
    last_ = now;
  }
}

std::int64_t rate_limiter::available(clock::time_point now) {
  if (unlimited())
    return std::numeric_limits<std::int64_t>::max() / 2;
  std::lock_guard<std::mutex> lock(mutex_);
  refill(now);
  return static_cast<std::int64_t>(std::floor(tokens_));
}

void rate_limiter::consume(std::uint64_t bytes, clock::time_point now) {
  if (unlimited() || bytes == 0)
    return;
  std::lock_guard<std::mutex> lock(mutex_);
  refill(now);
  tokens_ -= static_cast<double>(bytes);
}

std::chrono::nanoseconds rate_limiter::wait_time(clock::time_point now) {
  auto r = rate();
  if (r == 0)
    return std::chrono::nanoseconds(0);
  std::lock_guard<std::mutex> lock(mutex_);
  refill(now);
  if (tokens_ >= 1)
    return std::chrono::nanoseconds(0);
  double seconds = (1 - tokens_) / static_cast<double>(r);
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::ceil(seconds * 1e9)));
}
} // namespace actorrent
