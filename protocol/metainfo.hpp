// Metainfo (.torrent) files, BEP 3 v1: single- and multi-file, with BEP 12 announce-list.
// Parsing validates everything later layers rely on, so a metainfo that parses is safe to use.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/bencode.hpp"
#include "protocol/error.hpp"
#include "protocol/types.hpp"

namespace actorrent {

struct file_entry {
  /// Path components as written in the torrent (for a single-file torrent: {name}).
  /// Not yet sanitised: storage/file_layout checks them before anything touches the disk.
  std::vector<std::string> path;
  std::uint64_t length = 0;
  bool pad = false; // BEP 47 padding file (attr contains 'p')
};

struct metainfo {
  std::string name;
  std::uint32_t piece_length = 0;
  std::vector<sha1_digest> piece_hashes;
  std::vector<file_entry> files;  // single-file torrents have exactly one entry
  bool multi_file = false;        // true when the info dictionary had a "files" list
  std::uint64_t total_size = 0;   // every file, padding included: the pieces cover this
  bool is_private = false;
  info_hash hash{};               // SHA-1 of the exact bencoded info dictionary bytes
  std::string announce;
  std::vector<std::vector<std::string>> announce_list; // tiers (BEP 12)
  std::string comment;
  std::string created_by;
  std::int64_t creation_date = 0;
  /// The exact bencoded info dictionary (its SHA-1 is `hash`): what BEP 9 serves to peers.
  std::string info_bytes;

  std::uint32_t piece_count() const noexcept {
    return static_cast<std::uint32_t>(piece_hashes.size());
  }
  /// Bytes of the files themselves: total_size without BEP 47 padding files (which exist only
  /// to align pieces and are never written). What a user is told a torrent's size is.
  std::uint64_t content_size() const noexcept;
  /// Length of piece i (the last one may be short).
  std::uint32_t piece_size(piece_index i) const noexcept;
  /// Trackers in tier order: announce-list when present, otherwise announce.
  std::vector<std::vector<std::string>> tracker_tiers() const;
};

struct metainfo_limits {
  std::uint64_t max_file_size = 64u << 20;       // bytes of .torrent accepted
  std::uint32_t max_piece_length = 256u << 20;
  std::uint32_t max_files = 1u << 20;
  std::uint64_t max_total_size = 1ull << 50;
};

/// Parses a .torrent's bytes. Errors are errc::bencode_* (with byte offset) or
/// errc::metainfo_invalid naming the offending key (and its byte offset when known), e.g.
/// "info.pieces length 41 is not a multiple of 20 (byte 123)". Checks: piece length > 0,
/// pieces count == ceil(total_size / piece_length) (total_size > 0 unless no pieces),
/// file lengths >= 0 and summing without overflow, path components non-empty strings,
/// name present. A v2-only torrent (BEP 52 "meta version" 2 without v1 "pieces") is refused as
/// such; a hybrid one is read through its v1 keys. Unknown keys are ignored. Non-canonical bencoding is accepted outside `info`
/// (the info-hash is always taken over the exact bytes as they appear in the file).
result<metainfo> parse_metainfo(std::string_view bytes, const metainfo_limits& lim = {});

/// Reads and parses a file. Every error message names the path once, so a caller prints it
/// as is: "cannot open PATH: reason" (errc::io_error), "PATH: <parse error>" otherwise.
result<metainfo> load_metainfo(const std::string& path, const metainfo_limits& lim = {});

/// The bytes of a .torrent made of an info dictionary fetched from peers (BEP 9) and the
/// trackers of a magnet link (one tier each, in order): "announce" is the first of them.
std::string torrent_file_of(std::string_view info, const std::vector<std::string>& trackers);

} // namespace actorrent
