// What the coordinator and the worker share besides the frame: the version a node sends (a
// test knob can change it), envelope encoding with that version, HOST:PORT parsing and the
// middleman settings. CAF-free, except for configure_node (declared with CAF's forward header).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "actors/endpoint.hpp"
#include "cluster/cluster.pb.h"
#include "protocol/types.hpp"

namespace spdlog {
class logger;
}

namespace actorrent::cluster {

/// The version this node puts into the envelopes it sends: protocol_version(), unless the
/// environment variable ACTORRENT_CLUSTER_PROTOCOL_VERSION names another (a test knob: it lets
/// the suite check that a node of another version is refused; never set it in production).
std::uint32_t sending_version();

/// `env` with the sending version and `hash`, serialized.
std::string encode_frame(wire::Envelope env, const info_hash& hash);

/// An envelope that refuses, with `reason`.
std::string refused_frame(const std::string& reason, const info_hash& hash);

/// "HOST:PORT" (port 1-65535, or 0 when allowed: any free port; "[v6]:PORT" too) into `out`;
/// false when malformed.
bool parse_host_port(const std::string& text, endpoint& out, bool allow_port_zero = false);

/// The lease the coordinator gives, and how often it renews it and how often workers report.
constexpr std::uint32_t lease_ms = 2000;
constexpr std::uint32_t heartbeat_ms = 500;

/// Loads the middleman with heartbeats frequent enough that a frozen node (SIGSTOP) is noticed
/// in about 3 s (a killed one at once), and registers cluster_frame. Both node kinds use it.
void configure_node(caf::actor_system_config& cfg);

/// The "cluster" logger (stderr, at the level of the "session" logger when there is one).
std::shared_ptr<spdlog::logger> cluster_log();

} // namespace actorrent::cluster
