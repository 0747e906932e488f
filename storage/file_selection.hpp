// File selection: which files of a torrent to download. Turns `--select-file LIST` (aria2's
// convention, 1-based as `actorrent info` numbers the files) and `--select GLOB` into one
// file_priority per file, and file priorities into piece priorities (a piece takes the highest
// priority of the files it touches). CAF-free; used by the CLI, the torrent and storage.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/types.hpp"
#include "storage/file_layout.hpp"

namespace actorrent {

/// Parses "1,3-5" into 0-based indices of the listed files (`count` of them, numbered from 1).
/// Errors (errc::invalid_argument) name the item and its 1-based column: empty list or item
/// ("1,,3"), 0, a reversed range ("5-3"), an index above `count`, anything not a number.
result<std::vector<std::uint32_t>> parse_file_list(std::string_view list, std::uint32_t count);

/// The syntax of parse_file_list's `list` only (numbers up to 2^32-1), without expanding ranges:
/// constant memory and time per item whatever the numbers.
status check_file_list(std::string_view list);

/// Checks a glob pattern: not empty, every '[' closed, no '/' inside [...], no trailing '\\'.
status check_glob(std::string_view pattern);

/// fnmatch-like matching with '/' as the separator: '*' is any run of characters but '/', '?'
/// one character but '/', "[a-z]" / "[!a-z]" a class, '\\' escapes, and a whole "**" component
/// any number of directories. A pattern without '/' is matched against the last component (the
/// file name in any folder), one with '/' against the whole path. Precondition: check_glob.
bool glob_match(std::string_view pattern, std::string_view path);

/// The path of file `f` inside the torrent, as globs see it: the layout path without the
/// torrent's folder name for a multi-file torrent ("sub/a.bin"), the name for a single file.
std::string path_in_torrent(const file_layout& layout, file_index f);

/// One priority per file of `layout` (padding files included, always skip when selecting).
/// No lists and no globs: every file normal. Otherwise the files named by any list or matched
/// by any glob are normal and the others skip. Indices count only non-padding files, as
/// `actorrent info` lists them. A glob that matches no file is an error (a typo would
/// otherwise silently download nothing of what was meant).
result<std::vector<file_priority>> select_files(const file_layout& layout,
                                                const std::vector<std::string>& lists,
                                                const std::vector<std::string>& globs);

/// A piece takes the highest priority of the non-padding files it touches (0-byte files touch
/// nothing); pieces touching none of them are skip. `files` must hold one entry per file of `m`
/// (errc::invalid_argument otherwise).
result<std::vector<file_priority>> piece_priorities(const metainfo& m,
                                                    const std::vector<file_priority>& files);

} // namespace actorrent
