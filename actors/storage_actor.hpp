// The storage writer of one torrent: a detached actor (its own thread, so pwrite and SHA-1 never
// block the scheduler threads that serve peers) that owns the torrent's files. It writes blocks
// where they arrive, and hashes a piece itself once it holds every block of it — write before
// verify by construction, not by message order between different senders.
#pragma once

#include <memory>

#include <caf/fwd.hpp>

namespace actorrent {

class file_store;
struct metainfo;

/// Spawns the writer. It reports blocks_stored, piece_checked and storage_failed to `torrent`.
/// `detached` (the default) gives it a thread of its own; deterministic tests run it on the
/// test scheduler instead.
caf::actor spawn_storage(caf::actor_system& sys, std::unique_ptr<file_store> store,
                         std::shared_ptr<const metainfo> meta, const caf::actor& torrent,
                         bool detached = true);

} // namespace actorrent
