// KRPC (BEP 5): the bencoded UDP messages of the mainline DHT — queries (ping, find_node,
// get_peers, announce_peer), their responses and errors, compact node info (26 bytes: id, IPv4,
// port) and compact peers (6 bytes). A pure codec: no sockets, no CAF. The decoder takes
// untrusted datagrams and bounds everything it keeps (nodes, peers, string lengths).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.hpp"
#include "protocol/types.hpp"

namespace actorrent::krpc {

/// A DHT node id: 160 bits in the same space as info-hashes (BEP 5).
using node_id = sha1_digest;

/// An IPv4 address and port (network byte order when compact).
struct udp_endpoint {
  std::array<std::uint8_t, 4> ip{};
  std::uint16_t port = 0;

  std::string ip_string() const;
  std::string to_string() const { return ip_string() + ":" + std::to_string(port); }
  /// Parses dotted-quad IPv4 text; nullopt for anything else (names are never resolved here).
  static std::optional<udp_endpoint> parse(std::string_view ip, std::uint16_t port);
  friend bool operator==(const udp_endpoint& a, const udp_endpoint& b) {
    return a.ip == b.ip && a.port == b.port;
  }
  friend bool operator!=(const udp_endpoint& a, const udp_endpoint& b) { return !(a == b); }
  friend bool operator<(const udp_endpoint& a, const udp_endpoint& b) {
    return a.ip != b.ip ? a.ip < b.ip : a.port < b.port;
  }
};

/// Compact node info (BEP 5): 20-byte id, 4-byte IPv4, 2-byte port.
struct node_info {
  node_id id{};
  udp_endpoint ep;
  friend bool operator==(const node_info& a, const node_info& b) {
    return a.id == b.id && a.ep == b.ep;
  }
};

inline constexpr std::size_t compact_node_size = 26;
inline constexpr std::size_t compact_peer_size = 6;

enum class method : std::uint8_t { ping, find_node, get_peers, announce_peer, unknown };
const char* to_string(method m);

enum class kind : std::uint8_t { query, response, error };

struct query {
  method m = method::ping;
  std::string name;      // the "q" string as sent (for unknown methods: answered with 204)
  node_id id{};          // the querying node
  node_id target{};      // find_node
  info_hash hash{};      // get_peers, announce_peer
  std::uint16_t port = 0;        // announce_peer
  bool implied_port = false;     // announce_peer: use the packet's source port
  std::string token;             // announce_peer
  bool read_only = false;        // BEP 43: do not add the sender to routing tables
};

struct response {
  node_id id{};
  std::vector<node_info> nodes;     // "nodes" (at most limits::max_nodes kept)
  std::vector<udp_endpoint> values; // "values": peers (at most limits::max_values kept)
  std::string token;
  bool truncated = false; // more nodes or values were sent than were kept
};

struct error_reply {
  std::int64_t code = 201;
  std::string text;
};

/// Standard error codes (BEP 5).
inline constexpr std::int64_t generic_error = 201;
inline constexpr std::int64_t server_error = 202;
inline constexpr std::int64_t protocol_error = 203;
inline constexpr std::int64_t method_unknown = 204;

struct message {
  kind type = kind::query;
  std::string transaction;              // "t": echoed by the answer
  std::string version;                  // "v" (client version), may be empty
  std::optional<udp_endpoint> yourip;   // "ip" (BEP 42): how the sender sees the receiver
  query q;                              // type == query
  response r;                           // type == response
  error_reply e;                        // type == error
};

struct limits {
  std::size_t max_packet = 8 * 1024;  // bytes of one datagram (real KRPC packets are < 1.5 KiB)
  std::size_t max_nodes = 16;         // compact nodes kept from one response (K = 8 per BEP 5)
  std::size_t max_values = 100;       // peers kept from one response
  std::size_t max_transaction = 32;   // bytes of "t"
  std::size_t max_token = 64;         // bytes of a token
  std::size_t max_version = 32;       // bytes of "v"
};

/// Decodes one datagram. Errors (errc::wire_protocol, or bencode_* for bad bencoding) say what
/// is wrong and where ("krpc: ..."); nothing beyond `lim` is ever kept. Nodes and values past
/// the limits are dropped (response::truncated); a "nodes" string that is not a multiple of 26
/// bytes is an error. Unknown query methods decode as method::unknown.
result<message> decode(std::string_view packet, const limits& lim = {});

/// Canonical bencoding of a message (keys sorted).
std::string encode(const message& m);

/// Compact forms (BEP 5): 26 bytes per node, 6 per peer.
std::string encode_nodes(const std::vector<node_info>& nodes);
/// At most `max` nodes of compact node info (26 bytes each); a trailing partial entry is
/// ignored.
std::vector<node_info> decode_nodes(std::string_view compact, std::size_t max);
std::string encode_peer(const udp_endpoint& ep);

// -- helpers to build messages -------------------------------------------------------------
message make_query(std::string transaction, const query& q);
message make_response(std::string transaction, const response& r);
message make_error(std::string transaction, std::int64_t code, std::string text);

} // namespace actorrent::krpc
