// The storage writer of one torrent: an actor that owns the torrent's files and the record of
// which block copies are on disk. Its blocking work (pwrite, pread, SHA-1, fdatasync, checks of
// existing data) runs on the session's disk pool, never on the scheduler threads that serve
// peers, and never on a thread of its own: the thread count does not grow with torrents. It
// writes blocks where they arrive and hashes a piece itself once it holds every block of it —
// write before verify by construction, not by message order between different senders.
#pragma once

#include <memory>

#include <caf/fwd.hpp>

namespace actorrent {

class disk_pool;
class file_store;
class write_fence;
struct metainfo;

/// [cluster] How a cluster worker's storage differs (the defaults are everyone else's).
struct storage_options {
  std::shared_ptr<const write_fence> fence; // checked before every block write (null: none)
  bool save_resume = true;                  // false: resume data is never written
};

/// Spawns the writer. It reports blocks_stored, piece_checked and storage_failed to `torrent`.
/// Its jobs go to `pool` (which must outlive the actor and its last job); a pool without
/// threads runs them at once on the actor's thread (deterministic tests).
caf::actor spawn_storage(caf::actor_system& sys, std::unique_ptr<file_store> store,
                         std::shared_ptr<const metainfo> meta, const caf::actor& torrent,
                         disk_pool& pool, storage_options opts = {});

} // namespace actorrent
