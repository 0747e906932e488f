// A peer: one actor per TCP connection. It owns the connection, the wire codec state and its
// own counters; it validates every message, sends block payloads straight to storage (no
// copy) and reports availability and choke changes to its torrent in one message per read.
//
//   connecting --handshake ok--> active --(error | disconnect | timeout)--> closed (actor quits)
#pragma once

#include <cstdint>
#include <memory>

#include <caf/actor.hpp>

#include "actors/messages.hpp"
#include "protocol/wire.hpp"

namespace actorrent {

class io_runtime;
class connection;
class rate_limiter;
struct metainfo;

struct peer_config {
  caf::actor torrent;
  caf::actor storage;
  peer_slot slot = no_peer;
  endpoint remote;
  std::shared_ptr<const metainfo> meta;
  peer_id our_id{};
  io_runtime* io = nullptr;
  /// Incoming connection whose handshake was already read (nullptr: dial `remote`).
  std::shared_ptr<connection> accepted;
  wire::handshake accepted_handshake;
  std::uint32_t inactivity_timeout_s = 150;  // no complete message for this long: closed
  std::uint32_t handshake_timeout_ms = 10000; // connect + handshake must finish by then
  std::uint16_t listen_port = 0; // ours, told to the peer in the BEP 10 handshake (0: unknown)
  /// BEP 5 (0 / invalid: the DHT is off, or the torrent is private): the handshake sets the DHT
  /// bit, a peer that sets it too is sent PORT(dht_port), and the first PORT a peer sends has
  /// `dht` ping its node (dht_ping_node).
  caf::actor dht;
  std::uint16_t dht_port = 0;
  /// The torrent's rate limits (set_torrent_limits), applied by the connection beside the
  /// session's; null: none.
  std::shared_ptr<rate_limiter> download_limiter;
  std::shared_ptr<rate_limiter> upload_limiter;
  /// The torrent's info-hash: what the handshakes carry while `meta` is null (a magnet link
  /// whose metadata is being fetched; the connection then only does BEP 9 and BEP 11).
  info_hash hash{};
};

caf::actor spawn_peer(caf::actor_system& sys, const peer_config& cfg);

} // namespace actorrent
