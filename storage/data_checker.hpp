// Checking data already on disk: hashes a set of pieces on several threads, straight from the
// files and read-only, before a torrent starts (pieces that resume data cannot vouch for, or
// every piece when there is no resume data). Independent of file_store: creates nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include <roaring/roaring.hh>

#include "protocol/metainfo.hpp"
#include "storage/file_layout.hpp"

namespace actorrent {

/// Hashes `pieces` of the torrent stored under `out_dir` on `threads` threads (0: one per
/// hardware thread; never more than there are pieces) and returns the pieces whose SHA-1
/// matches m.piece_hashes. Each thread opens each file it needs once, O_RDONLY | O_NOFOLLOW,
/// walking the directories below out_dir without following symbolic links; padding files read
/// as zeros. A missing, short, unreadable or non-regular file is not an error: the pieces that
/// need its missing bytes simply fail. Pieces outside the torrent are ignored.
///
/// `progress` (may be empty) is called once per hashed piece with the number done so far and
/// the number to do, from the worker threads but never concurrently, with `done` increasing;
/// it must not throw. When `*cancel` becomes true the workers stop after their current piece
/// and the result holds only the pieces verified until then.
Roaring check_pieces(const file_layout& layout, const metainfo& m, const std::string& out_dir,
                     const Roaring& pieces, unsigned threads,
                     std::function<void(std::uint32_t done, std::uint32_t total)> progress,
                     std::atomic<bool>* cancel = nullptr);

} // namespace actorrent
