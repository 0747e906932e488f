// Magnet links (BEP 9 "magnet URI format"): an info-hash plus hints — display name, trackers,
// direct peers — from which a download starts without a .torrent. Pure code: the CLI parses a
// link with this and hands the result to the session.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.hpp"
#include "protocol/types.hpp"

namespace actorrent {

/// A direct peer of a magnet link (x.pe): host (IPv4, IPv6 without brackets, or a name) and port.
struct magnet_peer {
  std::string host;
  std::uint16_t port = 0;
};

struct magnet_link {
  info_hash hash{};                   // xt=urn:btih:<40 hex | 32 base32>
  std::string name;                   // dn (percent-decoded, untrusted: print with printable())
  std::vector<std::string> trackers;  // tr, in the order given, duplicates removed
  std::vector<magnet_peer> peers;     // x.pe, in the order given
};

struct magnet_limits {
  std::size_t max_size = 64 * 1024; // bytes of the whole link
  std::size_t max_trackers = 64;
  std::size_t max_peers = 256;
};

/// True when `text` starts with "magnet:" (case-insensitive): the CLI then parses it as a link
/// instead of reading a file.
bool is_magnet(std::string_view text) noexcept;

/// Parses a magnet link. Errors (errc::invalid_argument) start with "magnet link: " and say
/// what is wrong and where, e.g. "magnet link: xt: info-hash of 39 characters, expected 40 hex
/// or 32 base32 (parameter 1)". Unknown parameters are ignored; exactly one BitTorrent v1
/// `xt` is required (other xt namespaces, e.g. btmh, are ignored when a btih is present).
result<magnet_link> parse_magnet(std::string_view link, const magnet_limits& lim = {});

/// The link again, canonical: xt with the hex hash, then dn, tr and x.pe percent-encoded.
std::string to_magnet_uri(const magnet_link& m);

} // namespace actorrent
