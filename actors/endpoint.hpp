// A peer's address as dialled or accepted (host as text, port). CAF-free, so that the logic the
// torrent owns (peer_list) can name addresses without the message header.
#pragma once

#include <cstdint>
#include <string>

namespace actorrent {

struct endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const { return host + ":" + std::to_string(port); }
  friend bool operator==(const endpoint& a, const endpoint& b) {
    return a.host == b.host && a.port == b.port;
  }
};

/// Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost).
inline bool is_loopback_host(const std::string& host) {
  return host.rfind("127.", 0) == 0 || host == "::1" || host == "localhost";
}

} // namespace actorrent
