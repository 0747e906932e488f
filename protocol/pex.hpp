// BEP 11 peer exchange (extension "ut_pex"): each side tells the other, at most once a minute,
// which peers it connected to (added, with flags) and which it lost (dropped) since its last
// message, IPv4 and IPv6 in compact form. Pure code: the codec; the peer actor sends and
// receives it, the torrent dials what it learns.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.hpp"

namespace actorrent::pex {

/// BEP 11 added.f flags.
inline constexpr std::uint8_t flag_encryption = 0x01;
inline constexpr std::uint8_t flag_seed = 0x02;
inline constexpr std::uint8_t flag_utp = 0x04;
inline constexpr std::uint8_t flag_holepunch = 0x08;
inline constexpr std::uint8_t flag_reachable = 0x10;

/// At most this many added peers go into one message we send (libtorrent's and BEP 11's
/// guidance); a message received may carry more, up to parse_limits.
inline constexpr std::size_t max_added_per_message = 50;

struct peer {
  std::string host;  // numeric IPv4 or IPv6 (no brackets)
  std::uint16_t port = 0;
  std::uint8_t flags = 0;
  friend bool operator==(const peer& a, const peer& b) {
    return a.host == b.host && a.port == b.port;
  }
};

struct message {
  std::vector<peer> added;
  std::vector<peer> dropped;
};

struct parse_limits {
  std::size_t max_size = 8 * 1024; // bytes of payload (libtorrent sends < 2 KiB)
  std::size_t max_added = 200;     // entries of added + added6
  std::size_t max_dropped = 200;   // entries of dropped + dropped6
};

/// The bencoded payload: added, added.f, added6, added6.f, dropped, dropped6 (empty keys left
/// out). Hosts that are not numeric IP addresses, and port 0, are skipped.
std::string encode(const message& m);

/// Parses a ut_pex payload from an untrusted peer. Errors (errc::wire_protocol) start with
/// "ut_pex: " and name the key, e.g. "ut_pex: added length 7 is not a multiple of 6".
/// Entries with port 0 are skipped; a missing added.f means no flags.
result<message> parse(std::string_view payload, const parse_limits& lim = {});

} // namespace actorrent::pex
