// The tracker announcer of one torrent: an actor that announces to the torrent's HTTP trackers
// tier by tier (BEP 12) and reports peers back. libcurl blocks, so the announces run on a small
// pool of threads shared by every torrent of the process, in order per torrent.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "protocol/types.hpp"

namespace actorrent {

struct tracker_config {
  std::vector<std::vector<std::string>> tiers;
  info_hash hash{};
  peer_id id{};
  std::uint16_t listen_port = 0;
  long timeout_ms = 10000;
  /// Set by the torrent when it stops: aborts an announce in progress at once (curl blocks a
  /// pool thread, so a message could not reach it).
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
};

/// Answers every `announce` with an announce_result sent to `torrent`.
caf::actor spawn_tracker(caf::actor_system& sys, tracker_config cfg, const caf::actor& torrent);

} // namespace actorrent
