// BEP 10 extension protocol: the extended handshake (wire message 20, extended id 0), a bencoded
// dictionary each side sends once the BitTorrent handshakes showed both set reserved bit 0x10 of
// byte 5. Pure code: the peer actor encodes ours and parses the remote one with this.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/error.hpp"

namespace actorrent::ext {

/// Extended message id of the handshake itself (BEP 10).
inline constexpr std::uint8_t handshake_id = 0;

/// The keys of the extended handshake actorrent knows; every other key is ignored.
struct handshake {
  /// "m": extension name -> the extended message id the sender wants to receive it with
  /// (0: disabled), in the order the dictionary listed them.
  std::vector<std::pair<std::string, std::uint8_t>> extensions;
  std::string client;                // "v": client name and version, raw bytes (may be empty)
  std::uint32_t reqq = 0;            // "reqq": requests it queues without dropping (0: not given)
  std::uint16_t listen_port = 0;     // "p": its TCP listen port (0: not given)
  std::string yourip;                // "yourip": our address as it sees it, 4 or 16 raw bytes
  std::uint64_t metadata_size = 0;   // "metadata_size" (BEP 9; 0: not given)

  /// The id the sender assigned to `name`, 0 when it does not support it.
  std::uint8_t id_of(std::string_view name) const noexcept;
};

struct parse_limits {
  std::size_t max_size = 64 * 1024;           // bytes of bencoded payload
  std::size_t max_extensions = 128;           // entries of "m"
  std::uint64_t max_metadata_size = 64u << 20; // larger metadata is a lie or an attack
};

/// The bencoded payload of an extended handshake (without the message framing): canonical,
/// only the keys that are set (reqq, p and metadata_size when non-zero, yourip when non-empty).
std::string encode_handshake(const handshake& h);

/// Parses an extended handshake payload from an untrusted peer. Errors (errc::wire_protocol)
/// start with "extended handshake: " and name the key and the byte offset, e.g.
/// "extended handshake: reqq is a string, expected an integer (at byte 31)". Unknown keys, and
/// unknown extension names in "m", are accepted and ignored (other than "m", only their
/// bencoding is checked).
result<handshake> parse_handshake(std::string_view payload, const parse_limits& lim = {});

} // namespace actorrent::ext
