// Resume data: which pieces a restarted download may trust without hashing them again.
// One file per torrent, <out_dir>/.actorrent/<info-hash hex>.resume, a config::resume_data
// protobuf (config/resume.proto) ending in a SHA-1 of everything before it, replaced atomically.
// A piece is trusted only if it was verified when the file was written and every file it
// touches still has the size and modification time recorded then; anything else is hashed
// again (storage/data_checker.hpp) or downloaded.
#pragma once

#include <string>
#include <vector>

#include <roaring/roaring.hh>

#include "protocol/error.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/types.hpp"
#include "storage/file_layout.hpp"

namespace actorrent {

/// Where the resume file of a torrent lives: <out_dir>/.actorrent/<info-hash hex>.resume
std::string resume_path(const std::string& out_dir, const info_hash& h);
/// Where its part file lives (bytes of files not selected): <out_dir>/.actorrent/<hex>.parts
std::string part_file_path(const std::string& out_dir, const info_hash& h);

/// Serialises verified pieces (Roaring of piece indices) + current size and mtime (ns) of each
/// non-pad file of the layout under out_dir, writes it atomically (creating .actorrent/).
/// Call it after the data files are synced (file_store::sync), so that what the file claims is
/// on disk. A data file that does not exist is recorded with size 0 (its pieces are never
/// trusted). Errors: errc::invalid_argument for a verified piece >= the piece count or a
/// layout/metainfo piece count mismatch, errc::io_error (with path and reason) otherwise; on
/// error the previous resume file is left as it was.
/// `unchecked`: pieces whose data may be on disk but that were never hashed (a check of
/// existing data cut short by a stop). Every file they touch is recorded as unknown, so the
/// next load_resume puts all of that file's pieces in to_check instead of trusting or
/// skipping them.
/// `priorities` (one per file of the layout, or empty: not recorded) is the selection: a
/// skipped file that does not exist keeps its bytes in the part file, and the next load trusts
/// its verified pieces as long as the file is still absent and the part file is there.
status save_resume(const std::string& out_dir, const metainfo& m, const file_layout& layout,
                   const Roaring& verified, const Roaring& unchecked = Roaring(),
                   const std::vector<file_priority>& priorities = {});

struct resume_result {
  Roaring trusted;     // pieces that may be marked verified without hashing
  Roaring to_check;    // pieces whose data might be present but must be hashed first
  std::string warning; // non-empty when the file was damaged, of another version or for
                       // another torrent: says what and that a full check follows
  std::string notice;  // non-empty when the file is simply missing but data is on disk (the
                       // first run of `seed`, or data put there by hand): normal, not a warning
  /// The selection recorded (one per file of the layout, padding files normal), or empty when
  /// the file recorded none (older resume files: every file was selected) or was not usable.
  std::vector<file_priority> priorities;
};

/// Never fails: a truncated, corrupt or mismatching (info-hash, piece count, version, file
/// list) resume file gives trusted = {} and to_check = every piece, with a precise warning
/// (e.g. "resume file X: field 5 at byte 60 is 38 bytes long but only 12 remain (truncated);
/// checking all data"). A missing resume file gives the same full check with a notice instead
/// of a warning when data is on disk, and to_check = {} with neither when there is no data (no
/// non-empty data file: a fresh download). If a file's size or mtime differs from
/// the record, or the file is missing or not of its torrent length, every piece overlapping it
/// (verified before or not: it may have been completed after the last save) is in to_check and
/// not in trusted; pieces touching only unchanged files are trusted if they were verified and
/// not checked otherwise. Pieces beyond piece_count in the bitmap make the file corrupt.
/// A file recorded as skipped and absent that is still absent is not a change: its bytes are
/// in the part file (part_file_path), so its pieces stay trusted while that file exists.
/// Bounded: resume files > 64 MiB are refused (warning, full check).
resume_result load_resume(const std::string& out_dir, const metainfo& m, const file_layout& layout);

/// Adds to `out` every piece that overlaps file `f` (a padding file too); 0-byte files and
/// indices outside the layout overlap nothing.
void pieces_of_file(const file_layout& layout, file_index f, Roaring& out);

} // namespace actorrent
