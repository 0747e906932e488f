// Every message exchanged between actorrent's actors, in one place, with one CAF type-ID
// block. The structs are plain data; the handles (`caf::actor`) travel alongside.
//
//   cli --> session --> torrent <--> peer (one per connection) --> storage writer
//                          |  ^            \________ blocks (zero-copy) ______/
//                          v  |
//                    tracker announcer
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>
#include <caf/type_id.hpp>

#include "actors/bitfield.hpp"
#include "actors/endpoint.hpp"
#include "actors/piece_picker.hpp"
#include "protocol/tracker.hpp"
#include "protocol/wire.hpp"
#include "protocol/types.hpp"
#include "storage/piece_writer.hpp"

namespace actorrent {

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
  std::uint64_t payload_up = 0; // block bytes we sent since the last report
  bool interest_changed = false;
  bool interested = false;      // the peer is interested in us
  std::uint32_t request_limit = 0; // BEP 10 `reqq`: requests it queues (0: no news)
  // [requests] A CHOKE came in this read, even if an UNCHOKE followed it: every request sent
  // before it is over, on the wire's side and so in the torrent's record.
  bool choke_seen = false;
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
/// CANCELs. `timed_out`: the torrent gave up waiting (request timeout) and asked another peer,
/// so a copy that still arrives is written (it may come first); otherwise the block is on disk
/// already (end-game) or no longer wanted, and a late copy is dropped.
struct cancel_blocks {
  std::vector<block_ref> blocks;
  bool timed_out = false;
};
struct set_interested {
  bool interested = false;
};
struct disconnect_peer {
  std::string reason;
};
/// Choke or unchoke the remote peer (the torrent's choker decides).
struct set_choke {
  bool choke = true;
};
/// Pieces we now have: the first one after the handshake carries our whole bitfield
/// (`full`), later ones are HAVE broadcasts, batched.
struct our_pieces {
  bool full = false;
  bitfield bits;                 // when full
  std::vector<piece_index> haves;
};

// -- peer -> storage -------------------------------------------------------------------------

/// Blocks of one socket read, still in the receive buffer they were read into (the views in
/// `blocks` point into `owner`).
struct write_blocks {
  std::shared_ptr<const void> owner;
  peer_slot slot = no_peer;
  std::vector<block_write> blocks;
  std::chrono::steady_clock::time_point received{}; // when the peer actor got the read
};

// -- torrent -> storage ----------------------------------------------------------------------

/// The picker took these block copies back (a peer on parole left its piece unfinished and
/// another takes it over): storage drops each unless a newer copy replaced it.
struct discard_blocks {
  std::vector<stored_block> blocks;
};

// -- storage -> torrent ----------------------------------------------------------------------

/// What became of the blocks of one write_blocks message, in the order the peer received them:
/// the number of the copy now on disk, or 0 when a block was not written. Sent before any
/// piece_checked that they complete (same sender, so CAF keeps the order).
struct blocks_stored {
  peer_slot slot = no_peer;
  std::vector<stored_block> blocks;
  /// From write_blocks: request times are measured to the read, not to storage's turn (a disk
  /// stall must not look like a slow peer).
  std::chrono::steady_clock::time_point received{};
};

/// A piece whose every block is on disk was hashed (with the per-block record of senders and
/// digests where smart ban needs it: see piece_verdict).
struct piece_checked {
  piece_verdict verdict;
};
/// Storage cannot continue (disk full, file deleted, ...): what and where, typed.
struct storage_failed {
  error why;
};
/// A peer asks storage for a block to upload; the reply carries the complete PIECE message
/// (header and payload read into one buffer, so it is sent without another copy).
struct read_block {
  piece_index piece;
  std::uint32_t begin = 0;
  std::uint32_t length = 0;
};
struct block_read {
  piece_index piece;
  std::uint32_t begin = 0;
  std::string frame; // empty on error
  status result;
};

/// Torrent -> storage at start: pieces to trust (from resume data) and pieces to hash first.
/// Storage replies with existing_checked, reporting progress with check_progress.
struct check_existing {
  std::vector<std::uint32_t> trusted;
  std::vector<std::uint32_t> to_check;
  /// Raised by the torrent when it is told to stop: the check returns what it has verified.
  std::shared_ptr<std::atomic<bool>> cancel;
};
struct check_progress {
  std::uint32_t done = 0;
  std::uint32_t total = 0;
};
struct existing_checked {
  std::vector<std::uint32_t> verified; // trusted plus those whose hash matched
  std::uint32_t checked = 0;           // how many were hashed
};
/// Torrent -> storage: flush files and write resume data now.
struct save_resume_now {};

/// Reply of storage to sync_storage: every file was flushed (or `error` says why not).
struct sync_storage {};
struct storage_synced {
  status result;
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
  status result;             // every tracker's error (escaped) when none answered
  std::uint32_t interval = 0;
  std::uint32_t min_interval = 0;
  std::vector<endpoint> peers;
};

// -- session / cli ---------------------------------------------------------------------------

struct add_peers {
  std::vector<endpoint> peers;
  /// [cluster] Peers of the same replicate job: a piece that one of them (dialled, unchoking us
  /// and answering) has is asked of it, not of other peers.
  bool preferred = false;
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
  double upload_rate = 0;
  std::uint64_t uploaded_payload = 0;
  bool checking = false;     // hashing existing data before anything else
  std::uint32_t check_done = 0;
  std::uint32_t check_total = 0;
  bool seeding = false;      // every piece verified and flushed
  std::string metrics;       // Prometheus text of the torrent's counters and gauges
  bool is_private = false;   // BEP 27 (known once the metainfo is): never on the DHT or PEX
};
struct torrent_finished {
  torrent_progress final;
};
struct torrent_failed {
  error why;
};
/// [cluster] Torrent -> observer (with torrent_config::report_pieces only): pieces verified and
/// written (their blocks are in the files, pwrite done) since the last batch; the first batch
/// also holds the pieces trusted or verified at start.
struct torrent_pieces_verified {
  std::vector<std::uint32_t> pieces;
};
/// The torrent's last report, sent when it stops (after its peers published their counters).
struct torrent_stopped {
  torrent_progress final;
};

// -- session (the API) -> torrent -------------------------------------------------------------

/// Paused: every peer is closed, a 'stopped' announce is sent, nothing is dialled or accepted;
/// verified pieces and settings stay. resume_torrent goes back to downloading or seeding.
struct pause_torrent {};
struct resume_torrent {};
/// Per-torrent rate limits in bytes per second (0 = none), under the session's limits.
struct set_torrent_limits {
  std::uint64_t download = 0;
  std::uint64_t upload = 0;
};
/// One priority per file of the torrent, in the torrent's file order (see file_priority).
struct set_file_priorities {
  std::vector<file_priority> priorities;
};

/// [cluster] The pieces a torrent may fetch: all, or only `pieces` (others are skipped, on top
/// of the file priorities). A piece leaving the filter while it downloads is abandoned.
struct set_piece_filter {
  bool all = true;
  std::vector<std::uint32_t> pieces;
};

struct tick {
  // [requests] A torrent ticks at a rate that follows its activity; a rescheduled tick
  // supersedes the pending one, which arrives with an older generation and is dropped.
  std::uint64_t generation = 0;
};
/// Asks a torrent for a fresh torrent_progress (metrics included) now, not at the next tick.
struct get_progress {};
/// Self-message of the torrent: apply the availability changes queued since the last one.
struct apply_availability {};
struct stop_deadline {};
struct flush_haves {};
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
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::discard_blocks)
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
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::torrent_pieces_verified)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::set_choke)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::our_pieces)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::read_block)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::block_read)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::check_existing)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::check_progress)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::existing_checked)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::save_resume_now)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::tick)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::stop_deadline)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::torrent_stopped)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::flush_haves)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::get_progress)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::apply_availability)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::stop_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::pause_torrent)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::resume_torrent)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::set_torrent_limits)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::set_file_priorities)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::set_piece_filter)
