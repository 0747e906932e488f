#include "actors/announce_schedule.hpp"

#include <algorithm>

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
  if (!started_ && !in_flight())
    return std::nullopt; // no tracker knows us
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

} // namespace actorrent
