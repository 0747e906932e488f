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

} // namespace actorrent
