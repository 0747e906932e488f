#include "actors/announce_schedule.hpp"

#include <algorithm>
#include <random>

namespace actorrent {

std::optional<announce_schedule::event> announce_schedule::first() {
  if (halted_ || started_ || in_flight())
    return std::nullopt;
  return send(event::started);
}

std::optional<announce_schedule::event> announce_schedule::poll(clock::time_point now) {
  if (halted_ || in_flight() || now < next_)
    return std::nullopt;
  return send(started_ ? event::none : event::started);
}

std::optional<announce_schedule::event> announce_schedule::completed() {
  if (halted_ || completed_sent_)
    return std::nullopt;
  completed_sent_ = true;
  return send(event::completed);
}

std::optional<announce_schedule::event> announce_schedule::stopped() {
  if (halted_)
    return std::nullopt;
  halted_ = true;
  // The tracker may know us if it accepted a 'started' or has one (or later) under way; not if
  // the last thing it was sent is a farewell (paused again before the resume announced).
  if (!started_ && (!in_flight() || in_flight_.back() == event::stopped))
    return std::nullopt;
  started_ = false;
  return send(event::stopped);
}

void announce_schedule::restart(clock::time_point now) {
  halted_ = false;
  next_ = now;
}

announce_schedule::event announce_schedule::on_result(const result& r, bool have_peers,
                                                      clock::time_point now) {
  auto ev = event::none;
  if (!in_flight_.empty()) {
    ev = in_flight_.front();
    in_flight_.pop_front();
  }
  if (ev == event::stopped)
    return ev; // a farewell: it schedules nothing
  // A reply to an announce sent before a 'stopped' still queued (a pause, maybe a resume since)
  // is stale: the tracker will have forgotten us, so it neither starts us nor moves the next
  // announce, and after the farewell's reply the resume's 'started' goes out at once.
  if (std::find(in_flight_.begin(), in_flight_.end(), event::stopped) != in_flight_.end())
    return ev;
  // 'completed' with no 'started' accepted (sent on a resume while the old 'stopped' was still
  // in flight) is not a start either: 'started' is still due.
  if (ev == event::completed && !started_)
    return ev;
  if (!r.ok) {
    ++failures_;
    retry_delay_ = std::chrono::seconds(std::min(300, 5 << std::min<std::uint32_t>(failures_, 6)));
    next_ = now + retry_delay_;
    return ev;
  }
  failures_ = 0;
  if (!halted_)
    started_ = true;
  auto interval = std::clamp<std::uint32_t>(r.interval, 30, 3600);
  if (!have_peers)
    interval = std::max<std::uint32_t>(15, std::min(interval, r.min_interval));
  next_ = now + std::chrono::seconds(interval);
  return ev;
}

tracker_tiers::tracker_tiers(std::vector<std::vector<std::string>> tiers, std::uint64_t seed) {
  std::mt19937_64 rng{seed};
  std::size_t total = 0;
  for (auto& tier : tiers) {
    if (tier.size() > max_per_tier)
      tier.resize(max_per_tier);
    if (tier.size() > max_total - total)
      tier.resize(max_total - total);
    if (tier.empty())
      continue;
    total += tier.size();
    std::shuffle(tier.begin(), tier.end(), rng);
    tiers_.push_back(std::move(tier));
  }
}

std::optional<tracker_tiers::position> tracker_tiers::first() const {
  if (tiers_.empty())
    return std::nullopt;
  return position{0, 0};
}

std::optional<tracker_tiers::position> tracker_tiers::next(position p) const {
  if (p.index + 1 < tiers_[p.tier].size())
    return position{p.tier, p.index + 1};
  if (p.tier + 1 < tiers_.size())
    return position{p.tier + 1, 0};
  return std::nullopt;
}

void tracker_tiers::answered(position p) {
  auto& tier = tiers_[p.tier];
  std::rotate(tier.begin(), tier.begin() + static_cast<std::ptrdiff_t>(p.index),
              tier.begin() + static_cast<std::ptrdiff_t>(p.index) + 1);
}

} // namespace actorrent

