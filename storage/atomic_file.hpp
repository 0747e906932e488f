// Replacing a file so that a crash leaves either the old or the new content, never a mix or a
// truncated file: used for created .torrent files and resume data.
#pragma once

#include <string>
#include <string_view>

#include "protocol/error.hpp"

namespace actorrent {

/// Writes `bytes` to a new temporary file in the directory of `path` (".<name>.tmp-XXXXXX",
/// mode 0666 minus the umask), fsyncs it, renames it over `path` and fsyncs the directory. On
/// failure the temporary file is removed and `path` is untouched. If `path` is a symbolic link
/// the link itself is replaced, never its target. Errors: errc::invalid_argument for an empty
/// path or one ending in '/', errc::io_error naming the file and strerror otherwise.
status write_file_atomically(const std::string& path, std::string_view bytes);

} // namespace actorrent
