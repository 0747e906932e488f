#include "actors/peer_requests.hpp"

#include <algorithm>
#include <cmath>

namespace actorrent {

void peer_requests::add(block_ref b, clock::time_point now) {
  erase(b, nullptr);
  auto seq = next_seq_++;
  queue_.emplace_hint(queue_.end(), seq, entry{b, now});
  seq_of_.emplace(key(b), seq);
}

bool peer_requests::erase(block_ref b, entry* out) {
  auto it = seq_of_.find(key(b));
  if (it == seq_of_.end())
    return false;
  auto q = queue_.find(it->second);
  if (out)
    *out = q->second;
  queue_.erase(q);
  seq_of_.erase(it);
  return true;
}

bool peer_requests::on_received(block_ref b, clock::time_point now) {
  entry e;
  if (!erase(b, &e))
    return false;
  // A re-requested block may arrive in a read older than the newest request for it.
  double sample = std::max(0.0, std::chrono::duration<double, std::milli>(now - e.sent).count());
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
  return true;
}

bool peer_requests::remove(block_ref b) { return erase(b, nullptr); }

std::vector<block_ref> peer_requests::take_all() {
  std::vector<block_ref> out;
  out.reserve(queue_.size());
  for (auto& [seq, e] : queue_)
    out.push_back(e.block);
  queue_.clear();
  seq_of_.clear();
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
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (now - it->second.sent > limit) {
      out.push_back(it->second.block);
      seq_of_.erase(key(it->second.block));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  if (!out.empty()) {
    timeouts_ += out.size();
    pipeline_ = std::min(max_pipeline_, std::max<std::uint32_t>(2, pipeline_ / 2));
  }
  return out;
}

void peer_requests::set_max_pipeline(std::uint32_t n) {
  max_pipeline_ = std::max<std::uint32_t>(1, n);
  pipeline_ = std::min(pipeline_, max_pipeline_);
}

} // namespace actorrent
