// The session of one process: the listen socket, the torrents it runs and what they share —
// rate limits, the connection limit, buffer budgets (all held by the I/O runtime) and the
// metrics registry. Everything else (the CLI, batch jobs, cluster workers) drives torrents
// through the session's message set below and watches them through torrent_event.
//
//   add_torrent ------------> [session] --spawns--> torrent (observer: the session)
//   remove_torrent / session_pause / session_resume / session_set_limits /
//   session_set_file_priorities / set_session_limits / subscribe
//                                  |
//   observers <-- torrent_event (added, checked, progress, finished, failed, removed)
//             <-- session_stopped (after stop_request, once every torrent has stopped)
//
// Incoming connections are routed to the torrent their handshake names.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>

#include "actors/dht_actor.hpp"
#include "actors/messages.hpp"
#include "protocol/error.hpp"
#include "protocol/magnet.hpp"

namespace actorrent {

class disk_pool;
class io_runtime;
class write_fence;
class metrics_server;
class peer_listener;
struct metainfo;

struct session_config {
  io_runtime* io = nullptr;
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 0; // 0: any free port
  std::uint32_t handshake_timeout_ms = 10000; // incoming connections must handshake by then
};

/// What the session gives every torrent it runs.
struct session_options {
  io_runtime* io = nullptr;
  disk_pool* disk = nullptr;               // every torrent's storage work (null: the process's)
  peer_id id{};
  std::uint16_t listen_port = 0;           // ours, told to peers and trackers
  std::shared_ptr<metrics_server> metrics; // serves every torrent's series (null: none)
  // The DHT (BEP 5): the session spawns it on dht->io at dht->host:dht->port (nullopt: no DHT;
  // a socket that cannot be bound is a warning, not a failure), tells it of every torrent that
  // is not private (dht_track) and of torrents with few peers (dht_wants_peers), and stops it
  // with itself.
  std::optional<dht_config> dht;
};

/// A torrent's id in its session: 1, 2, ... in the order they were added (0: none).
using torrent_id = std::uint32_t;

/// How one torrent runs (the defaults are the CLI's).
struct torrent_options {
  std::vector<endpoint> peers;          // dialled directly
  bool use_trackers = true;
  bool require_data = false;            // refuse when none of its data is in the directory (seed)
  std::uint64_t download_limit = 0;     // bytes per second under the session's (0: none)
  std::uint64_t upload_limit = 0;
  std::vector<file_priority> priorities; // one per file (empty: all normal); skipped files
                                         // are not created (their boundary bytes: part file)
  bool sequential = false;              // pieces in order (streaming)
  std::uint32_t max_peers = 50;
  std::uint32_t max_peers_per_ip = 8;
  std::uint32_t pipeline = 512; // at most the peer's reqq (torrent_config::max_outstanding)
  std::uint32_t upload_slots = 4;
  std::uint32_t peer_timeout_s = 150;
  std::uint32_t handshake_timeout_ms = 10000;
  std::uint32_t udp_tracker_timeout_ms = 15000; // BEP 15's retransmit base for UDP trackers

  // -- [cluster] how a cluster worker runs its torrent (docs/CLUSTER.md) --
  /// Checked by the storage before every block write (null: writes are never fenced).
  /// Refused blocks are dropped and fetched again once allowed.
  std::shared_ptr<write_fence> fence;
  /// Observers get torrent_event kind pieces_verified with the pieces verified since the last
  /// one (batched: at most one per tick, and one when the torrent finishes).
  bool report_pieces = false;
  /// Resume data is read and saved (false: neither; the coordinator's plan is the record).
  bool save_resume = true;
  /// The pieces the torrent may fetch (nullopt: all), on top of the file priorities: pieces
  /// outside are skipped. Changed later with session_set_piece_filter.
  /// An empty filter never counts as finished (no `finished` event: the torrent waits in
  /// downloading, connected, requesting nothing); a non-empty one all verified finishes as a
  /// file selection does, and a wider one later downloads again.
  std::optional<std::vector<std::uint32_t>> piece_filter;
};

// -- requests (each answered: add_torrent with add_torrent_result, the others with
//    session_reply) ------------------------------------------------------------------------

/// Adds a torrent whose files go to `out_dir` (as `out_dir/<its name>`): reads its resume
/// data, opens (creates) its files and starts it.
struct add_torrent {
  std::shared_ptr<const metainfo> meta;
  std::string out_dir;
  torrent_options options;
  /// [magnet] With meta null: a magnet link. Its info-hash, name, trackers and peers (x.pe,
  /// dialled besides options.peers); the metadata is fetched from peers (BEP 9) and saved as
  /// out_dir/.actorrent/<hash>.torrent, which a later add of the same link uses instead.
  std::shared_ptr<const magnet_link> magnet;
};
struct add_torrent_result {
  torrent_id id = 0; // 0: not added, see `why` (unsafe_path, io_error, invalid_argument, ...)
  error why;
};
/// Stops a torrent (its resume data is saved); observers get `removed` with its last report.
struct remove_torrent {
  torrent_id id = 0;
};
/// pause_torrent / resume_torrent / set_torrent_limits / set_file_priorities for one torrent.
struct session_pause {
  torrent_id id = 0;
};
struct session_resume {
  torrent_id id = 0;
};
struct session_set_limits {
  torrent_id id = 0;
  set_torrent_limits limits;
};
struct session_set_file_priorities {
  torrent_id id = 0;
  set_file_priorities priorities;
};
/// [cluster] Restricts a torrent to some pieces, or lifts the restriction (see
/// torrent_options::piece_filter).
struct session_set_piece_filter {
  torrent_id id = 0;
  set_piece_filter filter;
};
/// [cluster] More peers for a torrent to dial (other workers of a replicate job).
struct session_add_peers {
  torrent_id id = 0;
  std::vector<endpoint> peers;
  bool preferred = false; // see add_peers
};
/// Session-wide limits over every torrent: rates in bytes per second (0: none), connections
/// (0: none).
struct set_session_limits {
  std::uint64_t download = 0;
  std::uint64_t upload = 0;
  std::uint32_t max_connections = 0;
};
/// `observer` receives torrent_event for every torrent (also those added before) and
/// session_stopped.
struct subscribe {
  caf::actor observer;
};
struct session_reply {
  bool ok = true;
  error why; // when !ok: e.g. "no torrent 7"
};

// -- events ----------------------------------------------------------------------------------

enum class torrent_event_kind : std::uint8_t {
  added,
  checked,
  progress,
  finished,
  failed,
  removed,
  pieces_verified, // [cluster] only with torrent_options::report_pieces; see `pieces`
};

const char* to_string(torrent_event_kind k);

struct torrent_event {
  torrent_id id = 0;
  torrent_event_kind kind = torrent_event_kind::progress;
  std::string name;          // from the metainfo (untrusted: print with printable())
  info_hash hash{};
  torrent_progress progress; // the latest report (finished, removed: the final one); no metrics
  error why;                 // failed
  std::vector<std::uint32_t> pieces; // pieces_verified: verified (and written) since the last
};
/// Every torrent has stopped and the session has ended (the answer to stop_request).
struct session_stopped {};

/// Binds the session's listen socket (nothing is accepted yet). On failure returns nullptr and
/// sets `error_text`, which names the address and port.
std::shared_ptr<peer_listener> open_session_listener(const session_config& cfg,
                                                     std::string& error_text);

/// A real user's default: every interface (0.0.0.0), on the first free port of 6881-6889, as
/// other clients. `cfg`'s host and port are ignored. On failure returns nullptr and sets
/// `error_text` to "listen on 0.0.0.0: ports 6881-6889 are all taken (last: ...)"; the caller
/// says how to choose a port.
std::shared_ptr<peer_listener> open_default_listener(session_config cfg, std::string& error_text);

/// Spawns the session, which owns `listener` from now on and starts accepting on it: the
/// accept callback holds the session's handle from the start. stop_request closes the socket
/// without waiting, stops every torrent and ends the session (observers get session_stopped).
caf::actor spawn_session(caf::actor_system& sys, std::shared_ptr<peer_listener> listener,
                         session_options opts);

/// The Prometheus text of several torrents' reports, each series labelled
/// torrent="<first 16 hex digits of its info-hash>": one HELP/TYPE per family. CAF-free.
struct labelled_metrics {
  std::string label;
  std::string text; // one torrent's Prometheus text (metrics_registry::to_prometheus)
};
std::string merge_metrics(const std::vector<labelled_metrics>& parts);

} // namespace actorrent

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::add_torrent)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::add_torrent_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::remove_torrent)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::session_pause)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::session_resume)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::session_set_limits)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::session_set_file_priorities)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::session_set_piece_filter)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::session_add_peers)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::set_session_limits)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::subscribe)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::session_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::torrent_event)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::session_stopped)
