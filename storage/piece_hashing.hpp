// Hashing a stored piece: the check run when a piece completes and when resume data or existing
// files are verified. Lives beside file_store because it is one blocking read plus one SHA-1.
#pragma once

#include <vector>

#include "protocol/error.hpp"
#include "protocol/types.hpp"
#include "storage/file_store.hpp"

namespace actorrent {

/// Reads all of piece `p` (store.layout().piece_size(p) bytes) into `scratch`, resizing it as
/// needed (callers keep one buffer per thread to avoid reallocating per piece), and stores its
/// SHA-1 in `out`. Errors: errc::invalid_argument for a piece outside the torrent, otherwise
/// whatever store.read reports; `out` is untouched on error.
status hash_piece(file_store& store, piece_index p, std::vector<char>& scratch, sha1_digest& out);

} // namespace actorrent
