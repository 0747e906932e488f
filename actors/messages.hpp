// Every message exchanged between actorrent's actors, in one place, with one CAF type-ID
// block. The structs are plain data; the handles (`caf::actor`) travel alongside.
//
//   cli --> session --> torrent <--> peer (one per connection) --> storage writer
//                          |  ^            \________ blocks (zero-copy) ______/
//                          v  |
//                    tracker announcer
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>
#include <caf/type_id.hpp>

#include "actors/bitfield.hpp"
#include "actors/piece_picker.hpp"
#include "protocol/tracker.hpp"
#include "protocol/wire.hpp"
#include "protocol/types.hpp"

namespace actorrent {

struct endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const { return host + ":" + std::to_string(port); }
  friend bool operator==(const endpoint& a, const endpoint& b) {
    return a.host == b.host && a.port == b.port;
  }
};

// -- peer -> torrent -------------------------------------------------------------------------

/// The peer answered our handshake.
struct peer_connected {
  peer_slot slot = no_peer;
  peer_id id{};
  bool fast = false;
};

/// Everything about piece availability that one socket read produced: a bitfield or
/// HaveAll/HaveNone, and/or a batch of HAVEs (seed §2: one message per read, not per HAVE).
struct availability_delta {
  peer_slot slot = no_peer;
  bool has_bitfield = false; // `bits` replaces what the peer had
  bitfield bits;
  std::vector<piece_index> haves;
};

/// Requests the peer rejected (BEP 6), choke state changes, and the peer's own byte counters for
/// one read. Received blocks do not travel here: they reach the torrent through storage
/// (blocks_stored), so the torrent always learns of a block before the verdict on its piece.
struct peer_activity {
  peer_slot slot = no_peer;
  std::vector<block_ref> rejected;
  std::uint64_t payload_bytes = 0;
  std::uint64_t wire_bytes = 0;
  bool choke_changed = false;
  bool choked = true;
};

/// The peer's connection ended; `reason` says why in one line.
struct peer_closed {
  peer_slot slot = no_peer;
  std::string reason;
  bool misbehaved = false; // protocol violation: do not reconnect
};

// -- torrent -> peer -------------------------------------------------------------------------

struct request_blocks {
  std::vector<block_ref> blocks;
};
struct cancel_blocks {
  std::vector<block_ref> blocks;
};
struct set_interested {
  bool interested = false;
};
struct disconnect_peer {
  std::string reason;
};

// -- peer -> storage -------------------------------------------------------------------------

struct block_write {
  piece_index piece;
  std::uint32_t begin = 0;
  std::string_view bytes; // points into `owner`
};

/// Blocks of one socket read, still in the receive buffer they were read into.
struct write_blocks {
  std::shared_ptr<const void> owner;
  peer_slot slot = no_peer;
  std::vector<block_write> blocks;
};

// -- storage -> torrent ----------------------------------------------------------------------

/// Blocks of one write_blocks message, now on disk, in the order the peer received them.
/// Sent before any piece_checked that they complete (same sender, so CAF keeps the order).
struct blocks_stored {
  peer_slot slot = no_peer;
  std::vector<block_ref> blocks;
};

/// A piece whose every block is on disk was hashed.
struct piece_checked {
  piece_index piece;
  bool ok = false;
};
struct storage_failed {
  std::string reason;
};
/// Reply of storage to sync_storage: every file was flushed (or `error` says why not).
struct sync_storage {};
struct storage_synced {
  std::string error;
};

// -- tracker announcer <-> torrent -----------------------------------------------------------

struct announce {
  tracker::event ev = tracker::event::none;
  std::uint64_t uploaded = 0;
  std::uint64_t downloaded = 0;
  std::uint64_t left = 0;
};
struct announce_result {
  std::string url;
  std::string error;         // empty on success
  std::uint32_t interval = 0;
  std::uint32_t min_interval = 0;
  std::vector<endpoint> peers;
};

// -- session / cli ---------------------------------------------------------------------------

struct add_peers {
  std::vector<endpoint> peers;
};

class peer_connection;

/// A connection accepted by the session's listener whose handshake names this torrent.
struct incoming_peer {
  std::shared_ptr<peer_connection> conn;
  wire::handshake hs;
  endpoint remote;
};

/// Published by a torrent every second to its observer.
struct torrent_progress {
  std::uint64_t total_size = 0;
  std::uint64_t verified_bytes = 0;
  std::uint64_t dirty_bytes = 0;
  std::uint64_t downloaded_payload = 0; // all payload bytes received, duplicates included
  std::uint32_t pieces = 0;
  std::uint32_t pieces_verified = 0;
  std::uint32_t pieces_failed = 0;
  std::uint32_t peers = 0;
  std::uint32_t peers_unchoked = 0;
  std::uint32_t known_peers = 0;
  double download_rate = 0; // bytes per second over the last interval
};
struct torrent_finished {
  torrent_progress final;
};
struct torrent_failed {
  std::string reason;
};

struct tick {};
struct stop_request {};

} // namespace actorrent

// Local-only messages: never serialised (the cluster uses Protobuf bytes), so they are
// whitelisted instead of inspected.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::peer_connected)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::availability_delta)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::peer_activity)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::peer_closed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::request_blocks)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::cancel_blocks)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::set_interested)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::disconnect_peer)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::write_blocks)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::blocks_stored)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::piece_checked)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::sync_storage)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::storage_synced)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::storage_failed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::announce)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::announce_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::add_peers)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::incoming_peer)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::torrent_progress)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::torrent_finished)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::torrent_failed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::tick)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::stop_request)
