// When a torrent announces to its trackers and with which event: 'started' first (and again
// after a resume), routine announces at the tracker's interval (its min interval while we have
// no peer), a growing retry delay after failures, 'completed' once when the download completes
// and 'stopped' once when it stops or pauses, only to a tracker that knows us. Announces are
// answered in order (one announcer per torrent), so the events in flight are a queue. Owned by
// the torrent actor; CAF-free.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "protocol/tracker.hpp"

namespace actorrent {

class announce_schedule {
public:
  using clock = std::chrono::steady_clock;
  using event = tracker::event;

  /// The first announce ('started'), as soon as the torrent is ready for peers; nothing if one
  /// is in flight or 'started' was accepted already.
  std::optional<event> first();
  /// The announce due at `now` (routine, or 'started' until one was accepted); nothing while
  /// one is in flight or before the next announce time.
  std::optional<event> poll(clock::time_point now);
  /// 'completed', exactly once per torrent, even while another announce is in flight.
  std::optional<event> completed();
  /// Complete when the torrent started: 'completed' is never announced (BEP 3: it is sent when
  /// the download completes, not for a torrent that was complete at start).
  void complete_at_start() noexcept { completed_sent_ = true; }
  /// 'stopped', once per 'started', when a tracker knows us (or may: an announce is under way).
  /// After it, nothing is announced until restart().
  std::optional<event> stopped();
  /// Resumed after a pause: 'started' is announced again (first() / poll()).
  void restart(clock::time_point now);

  struct result {
    bool ok = false;
    std::uint32_t interval = 0;
    std::uint32_t min_interval = 0;
  };
  /// The answer to the oldest announce in flight. Returns that announce's event, and schedules
  /// the next routine announce (`have_peers` false: at the tracker's min interval, >= 15 s).
  /// After a failure the next try is 5 s doubling per failure up to 300 s (retry_delay()).
  /// A reply to an announce sent before a 'stopped' still in flight is stale: it changes nothing.
  event on_result(const result& r, bool have_peers, clock::time_point now);

  bool in_flight() const noexcept { return !in_flight_.empty(); }
  bool started() const noexcept { return started_; }
  bool halted() const noexcept { return halted_; }
  clock::time_point next_announce() const noexcept { return next_; }
  std::chrono::seconds retry_delay() const noexcept { return retry_delay_; }
  std::uint32_t failures() const noexcept { return failures_; }

private:
  event send(event ev) {
    in_flight_.push_back(ev);
    return ev;
  }
  std::deque<event> in_flight_;
  clock::time_point next_{};
  std::chrono::seconds retry_delay_{0};
  std::uint32_t failures_ = 0;
  bool started_ = false;       // a 'started' (or later) announce was accepted
  bool completed_sent_ = false;
  bool halted_ = false;        // 'stopped' sent: quiet until restart()
};

/// The torrent's trackers in BEP 12 tiers: each tier shuffled once when loaded; an announce
/// tries the tiers in order and, within a tier, the trackers in order, moving on after an error
/// or a timeout (HTTP and UDP alike); the tracker that answers moves to the front of its tier.
/// Owned by the tracker announcer; CAF-free.
class tracker_tiers {
public:
  struct position {
    std::size_t tier = 0;
    std::size_t index = 0;
    friend bool operator==(position a, position b) {
      return a.tier == b.tier && a.index == b.index;
    }
  };

  /// A .torrent (or magnet) can list any number of trackers, each costing a try and a line of
  /// error per announce: the first max_per_tier of each tier and max_total in all are kept.
  static constexpr std::size_t max_per_tier = 50;
  static constexpr std::size_t max_total = 200;

  /// Empty tiers are dropped, the lists cut to the bounds above (in metainfo order, before the
  /// shuffle); `seed` drives the one shuffle (BEP 12: "shuffled randomly").
  tracker_tiers(std::vector<std::vector<std::string>> tiers, std::uint64_t seed);

  /// Where an announce starts: the first tracker of the first tier (nothing without trackers).
  std::optional<position> first() const;
  /// The tracker tried after `p` failed: the next of its tier, else the first of the next tier.
  std::optional<position> next(position p) const;
  const std::string& url(position p) const { return tiers_[p.tier][p.index]; }
  /// `p` answered: it moves to the front of its tier (the others keep their order).
  void answered(position p);

  const std::vector<std::vector<std::string>>& tiers() const noexcept { return tiers_; }

private:
  std::vector<std::vector<std::string>> tiers_;
};

} // namespace actorrent
