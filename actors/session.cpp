#include "actors/session.hpp"

#include <map>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/peer_connection.hpp"

namespace actorrent {

namespace {

struct session_state {
  std::shared_ptr<peer_listener> listener;
  std::map<info_hash, caf::actor> torrents;
};

} // namespace

caf::actor spawn_session(caf::actor_system& sys, const session_config& cfg,
                         std::uint16_t& bound_port, std::string& error_text) {
  auto self_handle = std::make_shared<caf::actor>();
  auto accept = [self_handle](std::shared_ptr<peer_connection> conn, const wire::handshake& hs) {
    // Runs on an I/O thread: hand the connection to the session actor.
    auto remote = conn->remote_endpoint();
    auto colon = remote.rfind(':');
    endpoint ep{remote.substr(0, colon),
                static_cast<std::uint16_t>(colon == std::string::npos
                                             ? 0
                                             : std::stoi(remote.substr(colon + 1)))};
    caf::anon_send(*self_handle, incoming_peer{std::move(conn), hs, ep});
  };
  auto failed = [](const std::string& remote, const std::string& reason, bool protocol_error) {
    // Runs on an I/O thread; spdlog loggers are thread-safe.
    auto log = spdlog::get("session");
    if (protocol_error)
      log->warn("incoming {}: disconnected: {}", remote, reason);
    else
      log->debug("incoming {}: closed: {}", remote, reason);
  };
  connection_limits limits;
  limits.handshake_timeout_ms = cfg.handshake_timeout_ms;
  auto listener = peer_listener::open(*cfg.io, cfg.listen_host, cfg.listen_port, accept, failed,
                                      error_text, limits);
  if (!listener)
    return caf::actor{};
  bound_port = listener->port();
  auto handle = sys.spawn([listener](caf::stateful_actor<session_state>* self) -> caf::behavior {
    self->state.listener = listener;
    self->set_default_handler(caf::drop);
    auto log = spdlog::get("session");
    return {
      [=](register_torrent& rt) { self->state.torrents[rt.hash] = rt.torrent; },
      [=](incoming_peer& ip) {
        auto it = self->state.torrents.find(ip.hs.hash);
        if (it == self->state.torrents.end()) {
          log->warn("incoming {}: disconnected: handshake for a torrent we do not have "
                    "(info-hash {})",
                    ip.remote.to_string(), to_hex(ip.hs.hash));
          ip.conn->close("unknown info-hash");
          return;
        }
        self->send(it->second, std::move(ip));
      },
      [=](stop_request) {
        self->state.listener->close();
        self->state.torrents.clear();
        self->quit();
      },
    };
  });
  *self_handle = handle;
  return handle;
}

} // namespace actorrent
