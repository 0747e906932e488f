// The DHT node of a session (BEP 5): one actor that owns a UDP socket (asio, on the session's
// I/O runtime), the routing table, the write tokens, the peers announced to us and the running
// lookups. It answers other nodes' queries and, for every torrent it is told to track, looks up
// peers (get_peers) and announces our listen port (announce_peer) — at once, every 5 minutes,
// and sooner when the session says the torrent has few peers. Private torrents are never
// tracked (the session's rule, BEP 27).
//
//   session --dht_track{hash, torrent, port}--> [dht] --add_peers--> torrent
//           --dht_wants_peers{hash}-----------> (a lookup now unless one ran < 60 s ago)
//           --stop_request--------------------> node table saved, socket closed, quit
//   UDP datagrams <--> socket (I/O thread) --dht_datagram--> [dht]
//
// Bounds: at most `max_queries_per_s` queries leave per second (the rest wait in a bounded
// queue), each source IP gets at most `max_inbound_per_ip_per_s` answers per second, datagrams
// waiting for the actor are capped (the socket drops the rest), lookups keep 64 candidates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include "actors/endpoint.hpp"
#include "protocol/types.hpp"

namespace actorrent {

class io_runtime;

struct dht_config {
  io_runtime* io = nullptr;
  std::string host = "127.0.0.1"; // the listen socket's address (IPv4 literal)
  std::uint16_t port = 0;         // the listen socket's port; taken if free, else any port
  /// Nodes to ask first. IPv4 literals are used as they are; names are resolved on the I/O
  /// runtime (only ever for names the user or the built-in default list gave).
  std::vector<endpoint> bootstrap;
  std::string state_file;         // node id and node table (empty: not persisted)
  std::uint32_t max_queries_per_s = 50;
  std::uint32_t max_inbound_per_ip_per_s = 5; // an IP sending 4 times this is ignored 10 s
  std::uint32_t query_timeout_ms = 3000;
  std::uint32_t lookup_interval_s = 300; // get_peers + announce per tracked torrent
  std::size_t max_pending_queries = 1024;  // queries in flight at once (capped at 1024)
  std::uint32_t max_maintenance_pings_per_s = 5; // table upkeep pings, apart from lookups
  /// Reply bytes sent per second at most, over all askers (as libtorrent's
  /// dht_upload_rate_limit): replies are larger than queries, so this bounds reflection.
  std::uint32_t max_reply_bytes_per_s = 8 * 1024;
};

/// The routers a DHT node usually bootstraps from. The CLI uses them only when the user gave
/// no --dht-bootstrap, did not pass --no-dht and listens on a non-loopback address.
std::vector<endpoint> default_dht_bootstrap();

/// Binds the UDP socket and spawns the DHT. On failure returns an invalid handle and sets
/// `error_text` (naming the address). `bound_port`, when given, receives the UDP port bound
/// (what PORT messages tell peers, BEP 5).
caf::actor spawn_dht(caf::actor_system& sys, dht_config cfg, std::string& error_text,
                     std::uint16_t* bound_port = nullptr);

// -- messages --------------------------------------------------------------------------------

/// Look up peers for `hash` from now on (at once, then every lookup_interval_s): every peer
/// found goes to `torrent` as add_peers; `port` != 0 is announced to the closest nodes. The
/// DHT monitors `torrent` and forgets the hash when it ends. Works for a torrent without
/// metainfo (a magnet link): only the info-hash is needed.
struct dht_track {
  info_hash hash{};
  caf::actor torrent;
  std::uint16_t port = 0;
};
/// Stop looking up `hash`.
struct dht_untrack {
  info_hash hash{};
};
/// The torrent has few peers: look up now unless a lookup for it ran in the last 60 s.
struct dht_wants_peers {
  info_hash hash{};
};
/// BEP 5: a peer sent PORT: ping its DHT node at `node` (its IP, the port it sent); a node that
/// answers joins the routing table. Rate-limited with the table's upkeep pings.
struct dht_ping_node {
  endpoint node;
};
/// Asks for a dht_status (answered).
struct dht_get_status {};
struct dht_status {
  std::uint16_t port = 0;          // the bound UDP port
  std::size_t nodes = 0;           // in the routing table
  std::size_t stored_peers = 0;    // announced to us
  std::uint64_t queries_in = 0;
  std::uint64_t malformed_in = 0;  // datagrams that did not decode
  std::uint64_t queries_out = 0;
  std::uint64_t replies_dropped = 0; // over the reply byte budget
  std::size_t lookups = 0;           // running
};

} // namespace actorrent

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::dht_track)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::dht_untrack)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::dht_wants_peers)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::dht_get_status)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::dht_ping_node)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::dht_status)
