// The session of one process: the listen socket, the I/O runtime handle and the torrents it
// runs. Incoming connections are routed to the torrent their handshake names.
#pragma once

#include <cstdint>
#include <string>

#include <caf/actor.hpp>

#include "actors/messages.hpp"

namespace actorrent {

class io_runtime;

struct session_config {
  io_runtime* io = nullptr;
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 0; // 0: any free port
  std::uint32_t handshake_timeout_ms = 10000; // incoming connections must handshake by then
};

/// Adds a torrent to the session so that incoming peers reach it.
struct register_torrent {
  info_hash hash{};
  caf::actor torrent;
};

/// Spawns the session and opens its listen socket. On failure returns an invalid handle and
/// sets `error_text`; `bound_port` receives the port actually bound.
caf::actor spawn_session(caf::actor_system& sys, const session_config& cfg,
                         std::uint16_t& bound_port, std::string& error_text);

} // namespace actorrent

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::register_torrent)
