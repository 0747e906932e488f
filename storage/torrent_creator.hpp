// Creating a v1 .torrent (BEP 3, BEP 12 tiers, BEP 27 private flag) from a file or a directory.
// Deterministic: no creation date, files in a fixed order, so the same input always gives the
// same bytes (and the same info-hash) whatever the number of hashing threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "protocol/error.hpp"

namespace actorrent {

struct create_options {
  std::string path;                               // file or directory
  std::uint32_t piece_length = 0;                 // 0: automatic
  std::vector<std::vector<std::string>> trackers; // tiers; first tracker also goes to "announce"
  bool is_private = false;
  std::string comment;
  std::string created_by = "actorrent 0.1";
  unsigned threads = 0;                           // 0: hardware_concurrency()
  /// Optional. Called from the hashing threads (concurrently, so it must be thread-safe) after
  /// each piece, with `hashed` possibly out of order between threads; once hashing is done, called
  /// a last time with hashed == total from the thread that called create_torrent.
  std::function<void(std::uint64_t hashed, std::uint64_t total)> progress;
};

inline constexpr std::uint32_t min_piece_length = 16u << 10;
inline constexpr std::uint32_t max_auto_piece_length = 16u << 20;
/// The largest piece length create_torrent accepts (parse_metainfo's default limit).
inline constexpr std::uint32_t max_piece_length = 256u << 20;

/// The smallest power of two in [16 KiB, 16 MiB] giving at most 2000 pieces, i.e. between 1000
/// and 2000 pieces unless the clamp applies (1 GiB -> 1 MiB; anything up to 32000 KiB -> 16 KiB).
std::uint32_t auto_piece_length(std::uint64_t total_size);

/// Hashes `opt.path` and returns the bencoded .torrent.
///
/// A regular file gives a single-file torrent named after it. A directory gives a multi-file
/// torrent named after the directory (its real name, also for "." or "dir/.."), with every
/// regular file below it (hidden and 0-byte files included) sorted bytewise by its '/'-joined
/// path relative to the directory. Nothing is followed: a symbolic link, socket, FIFO or device
/// anywhere (including `opt.path` itself) is refused, naming the path.
///
/// Errors: errc::invalid_argument (missing path, symbolic link or special file, empty directory
/// or nothing but 0-byte files, piece length not a power of two in [16 KiB, 256 MiB], too many
/// pieces, empty tracker URL), errc::unsafe_path (a name that sanitize_path refuses, e.g. one
/// containing '\\'), errc::io_error (unreadable file, or one that changed size while hashing).
result<std::string> create_torrent(const create_options& opt);

} // namespace actorrent
