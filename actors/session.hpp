// The session of one process: the listen socket, the I/O runtime handle and the torrents it
// runs. Incoming connections are routed to the torrent their handshake names.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor.hpp>

#include "actors/messages.hpp"

namespace actorrent {

class io_runtime;
class peer_listener;

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

/// Binds the session's listen socket (nothing is accepted yet). On failure returns nullptr and
/// sets `error_text`, which names the address and port.
std::shared_ptr<peer_listener> open_session_listener(const session_config& cfg,
                                                     std::string& error_text);

/// Spawns the session, which owns `listener` from now on and starts accepting on it: the
/// accept callback holds the session's handle from the start. stop_request closes the socket
/// without waiting and ends the session.
caf::actor spawn_session(caf::actor_system& sys, std::shared_ptr<peer_listener> listener);

} // namespace actorrent

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::register_torrent)
