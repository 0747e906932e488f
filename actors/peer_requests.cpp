#include "actors/peer_requests.hpp"

#include <algorithm>
#include <cmath>

namespace actorrent {

void peer_requests::add(block_ref b, clock::time_point now) {
  auto seq = next_seq_++;
  // A re-request replaces the live request: the old entry is dead from now on.
  auto [l, fresh] = live_.try_emplace(key(b), live_request{seq, now});
  if (!fresh)
    *l = live_request{seq, now};
  queue_.push_back(entry{b, now, seq});
  maybe_compact();
}

bool peer_requests::erase(block_ref b, live_request* was) {
  auto* l = live_.find(key(b));
  if (!l)
    return false;
  if (was)
    *was = *l;
  live_.erase(key(b));
  maybe_compact();
  return true;
}

void peer_requests::maybe_compact() {
  // The oldest entries leave first in the usual case: skip them without moving anything.
  while (head_ < queue_.size() && !is_live(queue_[head_]))
    ++head_;
  if (head_ == queue_.size()) {
    queue_.clear(); // keeps the capacity
    head_ = 0;
    return;
  }
  // Dead entries behind the head, or skipped ones before it, outnumber the live: O(live) work
  // after at least as many erases, so O(1) amortized per request.
  if (queue_.size() - head_ > 2 * live_.size() + 16 || (head_ > 16 && 2 * head_ > queue_.size()))
    compact();
}

void peer_requests::compact() {
  std::size_t out = 0;
  for (auto i = head_; i < queue_.size(); ++i)
    if (is_live(queue_[i]))
      queue_[out++] = queue_[i];
  queue_.resize(out);
  head_ = 0;
}

bool peer_requests::on_received(block_ref b, clock::time_point now) {
  last_arrival_ = std::max(last_arrival_, now);
  live_request was;
  if (!erase(b, &was))
    return false;
  answered_end_ = std::max(answered_end_, was.seq + 1);
  // A re-requested block may arrive in a read older than the newest request for it.
  double sample =
    std::max(0.0, std::chrono::duration<double, std::milli>(now - was.sent).count());
  if (samples_ == 0) {
    mean_ms_ = sample;
    dev_ms_ = sample / 2;
  } else {
    // RFC 6298's smoothing: gains 1/8 for the mean, 1/4 for the deviation.
    dev_ms_ += (std::abs(sample - mean_ms_) - dev_ms_) / 4;
    mean_ms_ += (sample - mean_ms_) / 8;
  }
  ++samples_;
  if (pipeline_ < max_pipeline_)
    ++pipeline_;
  sample_rate(now);
  return true;
}

void peer_requests::sample_rate(clock::time_point now) {
  auto elapsed = std::chrono::duration<double>(now - rate_start_).count();
  if (rate_blocks_ == 0 || elapsed > rate_gap_s) {
    // The first block, or the first after the peer was idle (choked, or it stalled): it only
    // starts a window's clock.
    rate_start_ = now;
    rate_blocks_ = 1;
    return;
  }
  ++rate_blocks_;
  if (elapsed < rate_window_s)
    return;
  double sample = static_cast<double>(rate_blocks_ - 1) / elapsed;
  blocks_per_s_ = blocks_per_s_ == 0 ? sample : (blocks_per_s_ + sample) / 2;
  rate_start_ = now;
  rate_blocks_ = 1;
}

std::uint32_t peer_requests::paced_pipeline(std::chrono::duration<double> queue_time) const {
  if (blocks_per_s_ == 0)
    return std::min(pipeline_, initial_pipeline); // not measured yet: a slow start
  auto want = static_cast<std::uint32_t>(
    std::min<double>(pipeline_, std::ceil(blocks_per_s_ * queue_time.count())));
  return std::min(pipeline_, std::max(min_paced_pipeline, want));
}

bool peer_requests::remove(block_ref b) { return erase(b, nullptr); }

std::vector<block_ref> peer_requests::take_all() {
  std::vector<block_ref> out;
  out.reserve(live_.size());
  for_each([&](block_ref b, clock::time_point) { out.push_back(b); });
  queue_.clear();
  head_ = 0;
  live_.clear();
  return out;
}

peer_requests::ms peer_requests::timeout() const {
  if (samples_ < 2)
    return max_timeout_;
  auto t = ms(static_cast<std::int64_t>(mean_ms_ + 4 * dev_ms_));
  return std::clamp(t, min_timeout_, max_timeout_);
}

std::vector<block_ref> peer_requests::take_timed_out(clock::time_point now) {
  std::vector<block_ref> out;
  auto limit = timeout();
  // One pass that also compacts: the late requests and the dead entries leave the queue.
  std::size_t kept = 0;
  for (auto i = head_; i < queue_.size(); ++i) {
    auto& e = queue_[i];
    if (!is_live(e))
      continue;
    // Queued behind requests still being served: waiting since the peer's last block at
    // most. Overtaken by a later request: skipped (or served out of order), timed as sent.
    auto since = e.seq >= answered_end_ ? std::max(e.sent, last_arrival_) : e.sent;
    if (now - since > limit) {
      out.push_back(e.block);
      live_.erase(key(e.block));
    } else {
      queue_[kept++] = e;
    }
  }
  queue_.resize(kept);
  head_ = 0;
  if (!out.empty()) {
    timeouts_ += out.size();
    pipeline_ = std::min(max_pipeline_, std::max<std::uint32_t>(2, pipeline_ / 2));
  }
  return out;
}

void peer_requests::set_max_pipeline(std::uint32_t n) {
  // A pipeline at its bound follows a new bound up at once; one halved by timeouts grows back
  // block by block.
  const bool at_max = pipeline_ == max_pipeline_;
  max_pipeline_ = std::max<std::uint32_t>(1, n);
  pipeline_ = at_max ? max_pipeline_ : std::min(pipeline_, max_pipeline_);
}

} // namespace actorrent
