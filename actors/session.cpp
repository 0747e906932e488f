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

std::shared_ptr<peer_listener> open_session_listener(const session_config& cfg,
                                                     std::string& error_text) {
  connection_limits limits;
  limits.handshake_timeout_ms = cfg.handshake_timeout_ms;
  return peer_listener::open(*cfg.io, cfg.listen_host, cfg.listen_port, error_text, limits);
}

caf::actor spawn_session(caf::actor_system& sys, std::shared_ptr<peer_listener> listener) {
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
        self->state.listener->close(); // posts to the I/O thread; never waits here
        self->state.listener.reset();
        self->state.torrents.clear();
        self->quit();
      },
    };
  });
  // The session exists before the first connection can be accepted: the callback captures a
  // complete handle and nothing is written after the I/O thread may read it.
  auto accept = [session = caf::actor_cast<caf::weak_actor_ptr>(handle)](
                  std::shared_ptr<peer_connection> conn, const wire::handshake& hs) {
    // Runs on an I/O thread: hand the connection to the session actor (if it still runs;
    // otherwise the connection is dropped and closes).
    auto target = caf::actor_cast<caf::actor>(session);
    if (!target)
      return;
    auto remote = conn->remote_endpoint();
    auto colon = remote.rfind(':');
    endpoint ep{remote.substr(0, colon),
                static_cast<std::uint16_t>(colon == std::string::npos
                                             ? 0
                                             : std::stoi(remote.substr(colon + 1)))};
    caf::anon_send(target, incoming_peer{std::move(conn), hs, ep});
  };
  auto failed = [](const std::string& remote, const std::string& reason, bool protocol_error) {
    // Runs on an I/O thread; spdlog loggers are thread-safe.
    auto log = spdlog::get("session");
    if (protocol_error)
      log->warn("incoming {}: disconnected: {}", remote, reason);
    else
      log->debug("incoming {}: closed: {}", remote, reason);
  };
  listener->start(std::move(accept), std::move(failed));
  return handle;
}

} // namespace actorrent
