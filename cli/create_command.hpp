// `actorrent create`: builds a .torrent from a file or directory (storage/torrent_creator) and
// writes it atomically. CAF-free; main.cpp parses the arguments with CLI11 and calls run_create.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "storage/torrent_creator.hpp"

namespace actorrent {

/// Creates the torrent and writes it to `out_file` (atomically: a crash never leaves half a
/// file). Progress goes to stderr on a terminal unless `quiet`; on success one line goes to
/// stdout: "created: <out_file> info-hash <hex> (<n> pieces of <size>)". Returns 0, 2 for bad
/// input (with one "error: ..." line on stderr: missing path, symbolic link, bad piece size, ...)
/// or 1 for an I/O error (unreadable input, output not writable).
int run_create(const create_options& opt, const std::string& out_file, bool quiet);

/// "262144", "256K", "256KiB", "4M", "4MiB" (case-insensitive; K = 1024) into bytes. False for
/// anything else, including values that do not fit 32 bits. "0" is accepted (automatic size).
bool parse_size(const std::string& text, std::uint32_t& out);

/// One tier per --announce value; a comma-separated value is one tier with several URLs.
/// Spaces around URLs and empty entries are dropped (a value with no URL adds no tier).
std::vector<std::vector<std::string>> parse_tiers(const std::vector<std::string>& values);

} // namespace actorrent
