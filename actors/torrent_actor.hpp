// A torrent: one actor per torrent that owns its metainfo, piece picker, availability, request
// record, peer list, choker, announce schedule and statistics. Peers, the storage writer and
// the tracker announcer are its children; nothing of its state is shared. Its lifecycle is a
// state machine (become(); diagram in torrent_actor.cpp):
//
//   awaiting_metadata (no metainfo yet) --verified--> checking
//   checking --> downloading (pieces missing) | seeding (complete) | paused (asked meanwhile)
//   downloading --all verified--> seeding --wider file selection or piece filter--> downloading
//   downloading | seeding --pause--> paused --resume--> downloading | seeding
//   any with metainfo --stop_request--> stopping --peers closed--> (quit; torrent_stopped)
//   awaiting_metadata --stop_request--> (quit at once; torrent_stopped)
//   checking | downloading | seeding | paused --storage error--> failed (observer told)
//   awaiting_metadata --metadata unusable or its files not opened--> failed
//
// It handles pause_torrent (peers closed, 'stopped' announced, verified pieces kept) and
// resume_torrent (back to downloading or seeding, 'started' announced).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>

#include "actors/messages.hpp"
#include "protocol/error.hpp"

namespace actorrent {

class disk_pool;
class file_store;
class write_fence;
class io_runtime;
struct metainfo;
struct peer_config;
struct tracker_config;

/// What a torrent started from a magnet link needs once its metadata is verified (BEP 9): its
/// files opened and what the resume data says, as the session prepares them for a .torrent.
struct metadata_ready {
  std::unique_ptr<file_store> store;
  std::vector<std::uint32_t> trusted_pieces;
  std::vector<std::uint32_t> pieces_to_check;
};

struct torrent_config {
  std::shared_ptr<const metainfo> meta; // null: awaiting metadata (magnet link)
  std::unique_ptr<file_store> store; // opened (files created) by the caller
  peer_id id{};
  std::uint16_t listen_port = 0;
  /// The session's DHT and its UDP port (BEP 5; invalid / 0: none). Peers of a torrent that is
  /// not private are told the port (PORT) and their own DHT nodes are pinged.
  caf::actor dht;
  std::uint16_t dht_port = 0;
  io_runtime* io = nullptr;
  std::vector<endpoint> peers;       // dialled directly (--peer)
  bool use_trackers = true;
  caf::actor observer;               // receives torrent_progress / finished / failed
  std::uint32_t max_peers = 50;
  // Requests in flight per peer (pipeline depth): at most this, and at most the peer's BEP 10
  // reqq, or unannounced_reqq (peer_requests.hpp) when it names none; within that, what the
  // peer delivers in request_queue_s (slow start at 64). A deep queue matters to a seeder that
  // serves requests in batches (Transmission 3.00, reqq 512).
  std::uint32_t max_outstanding = 512;
  // A peer is kept this many seconds of its measured rate in requests (peer_requests::
  // paced_pipeline; libtorrent's request_queue_time is 3 s).
  std::uint32_t request_queue_s = 3;
  std::uint32_t upload_slots = 4;      // peers unchoked by rate, plus one optimistic slot
  // From the resume data: pieces to trust as verified, and pieces to hash before trusting.
  std::vector<std::uint32_t> trusted_pieces;
  std::vector<std::uint32_t> pieces_to_check;
  std::uint32_t resume_interval_s = 5; // resume data is saved this often while pieces verify
  std::uint32_t peer_timeout_s = 150;  // a peer silent (no complete message) this long is closed
  std::uint32_t handshake_timeout_ms = 10000;
  // A request times out after the peer's mean request time + 4 deviations, within these bounds
  // (the upper one until the peer's time is known); the block then goes to another peer.
  std::uint32_t min_request_timeout_ms = 3000;
  std::uint32_t request_timeout_s = 60;
  /// Whether each progress report carries the Prometheus text of the torrent's series. Off
  /// when nobody serves metrics: rendering it every second is most of an idle torrent's cost.
  bool publish_metrics = true;
  std::uint32_t max_half_open = 32;    // outgoing connections not yet handshaken
  std::uint32_t max_peers_per_ip = 8;  // connections to one IP address
  // File selection: one priority per file (empty: every file normal; storage was opened with
  // the same), and new pieces in index order instead of rarest first (streaming).
  std::vector<file_priority> file_priorities;
  bool sequential = false;

  // -- for the in-process load benchmark (bench/swarm_bench.cpp); the defaults are production --
  /// Spawns the actor of a new peer (empty: spawn_peer, which owns a real connection).
  std::function<caf::actor(caf::actor_system&, const peer_config&)> peer_factory;
  /// Spawns the tracker announcer (empty: spawn_tracker, which speaks HTTP). Deterministic
  /// tests answer announces with a scripted actor.
  std::function<caf::actor(caf::actor_system&, const tracker_config&, const caf::actor& torrent)>
    tracker_factory;
  /// true: availability changes waiting in the mailbox are applied together, then each
  /// affected peer gets one interest check and one refill. false: every availability message
  /// is applied and followed by its own interest check and refill.
  bool batch_availability = true;
  /// true: every refill re-derives the rarest-first order by scanning and sorting all pieces
  /// instead of walking the incrementally kept availability buckets (the slower variant).
  bool recompute_requests = false;
  /// Where storage's blocking work runs: the session's disk pool (null: the process's default
  /// pool; disk_pool::inline_pool() runs it on the storage actor's thread, for deterministic
  /// tests).
  disk_pool* disk = nullptr;
  /// UDP trackers (BEP 15): the wait for an answer before a request is sent again (doubled
  /// each time).
  std::uint32_t udp_tracker_timeout_ms = 15000;
  /// Tests: after every refill, every drop of requests and every peer or storage event, the
  /// piece picker is checked against the request record (piece_picker::consistent, O(pieces)
  /// each time: off in production); a broken invariant is logged and aborts the process.
  bool check_invariants = false;

  // -- [cluster] a cluster worker's torrent (see torrent_options in session.hpp) --
  /// The pieces it may fetch (nullopt: all), on top of the file priorities; changed later with
  /// set_piece_filter. Empty: nothing wanted, and the torrent does not count as finished.
  std::optional<std::vector<std::uint32_t>> piece_filter;
  /// The observer gets torrent_pieces_verified batches (at most one per tick).
  bool report_pieces = false;
  /// false: storage never writes resume data (the caller read none either).
  bool save_resume = true;
  /// Checked by storage before every block write (null: none).
  std::shared_ptr<write_fence> fence;

  // -- a magnet link (meta null): the metadata is fetched from peers (BEP 9) --
  info_hash hash{};                  // the link's info-hash
  std::string name;                  // its dn (logs only; may be empty)
  std::vector<std::string> trackers; // its tr, put into the .torrent built from the metadata
  /// Called once the metadata is verified, with the metainfo and the bytes of the .torrent
  /// made of it: saves the .torrent, reads resume data and opens the files. An error fails
  /// the torrent.
  std::function<result<metadata_ready>(const std::shared_ptr<const metainfo>&,
                                       const std::string& torrent_file)>
    on_metadata;
};

caf::actor spawn_torrent(caf::actor_system& sys, torrent_config cfg);

} // namespace actorrent
