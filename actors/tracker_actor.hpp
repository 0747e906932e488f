// The tracker announcer of one torrent: an actor that announces to the torrent's trackers tier
// by tier (BEP 12; HTTP and UDP mixed, failing over to the next tracker on an error or a
// timeout) and reports peers back. libcurl blocks, so HTTP announces run on a small pool of
// threads shared by every torrent of the process; UDP trackers (BEP 15) are asio sockets on the
// session's I/O runtime, their retransmissions timed by the actor.
//
//   idle --announce--> trying tracker (tier t, index i) --answer--> idle (result to the torrent)
//                           |  ^
//                 error or  |  | next tracker of the tier, else first of the next tier
//                  timeout  +--+ (none left: the errors of all, to the torrent)
//   stop_request: a routine announce under way is dropped; queued farewells ('completed',
//   'stopped') still go out with short timeouts, each to one tracker (no failover on the way
//   out), then the actor quits.
//
// scrape_trackers() (for `actorrent scrape`) reuses the same transports for one round of
// scrapes: a short-lived actor asks every tracker at once and reports each one's counts.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "protocol/types.hpp"

namespace actorrent {

class io_runtime;

struct tracker_config {
  std::vector<std::vector<std::string>> tiers;
  info_hash hash{};
  peer_id id{};
  std::uint16_t listen_port = 0;
  long timeout_ms = 10000;
  /// Set by the torrent when it stops: aborts an announce in progress at once (curl blocks a
  /// pool thread, so a message could not reach it).
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
  /// Runs the UDP trackers' sockets (null: UDP trackers fail with a clear error).
  io_runtime* io = nullptr;
  /// BEP 15: a UDP request is sent again after base * 2^n (n = 0, 1, ...; base 15 s). Tests
  /// shorten the base.
  std::uint32_t udp_timeout_ms = 15000;
  /// Transmissions to one UDP tracker (connects and announces counted together) before the
  /// announce fails over to the next tracker
  /// (BEP 15 allows n up to 8: 9 tries over about an hour, far too long to keep a torrent from
  /// its other trackers; 2 tries give up after 45 s). At most 9.
  std::uint32_t udp_attempts = 2;
  /// Seeds the one shuffle of each tier (BEP 12); 0: random.
  std::uint64_t shuffle_seed = 0;
  /// BEP 15: how long a connection id may be used (tests shorten it).
  std::uint32_t udp_connection_lifetime_ms = 60000;
};

/// Answers every `announce` with an announce_result sent to `torrent`.
caf::actor spawn_tracker(caf::actor_system& sys, tracker_config cfg, const caf::actor& torrent);

/// What `actorrent scrape` asks: one torrent's counts from each of these trackers.
struct scrape_config {
  std::vector<std::string> urls; // http(s):// (BEP 48) or udp:// (BEP 15)
  info_hash hash{};
  /// Runs the UDP trackers' sockets (null: UDP trackers fail with a clear error).
  io_runtime* io = nullptr;
  /// Per tracker: curl's whole-request timeout over HTTP; over UDP the deadline for connect and
  /// scrape together (retransmitted after a third of it, then after two thirds more).
  long timeout_ms = 5000;
};

struct scrape_result {
  std::string url;
  bool ok = false;
  std::uint32_t seeders = 0;
  std::uint32_t leechers = 0;
  std::uint32_t completed = 0;
  std::string error; // why not, when !ok (printable: tracker text escaped)
};

/// Scrapes every tracker at once and blocks until each has answered or failed; one result per
/// URL, in order.
std::vector<scrape_result> scrape_trackers(caf::actor_system& sys, const scrape_config& cfg);

} // namespace actorrent
