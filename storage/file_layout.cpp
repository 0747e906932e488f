#include "storage/file_layout.hpp"

#include <algorithm>
#include <cassert>
#include <limits>
#include <unordered_map>
#include <utility>

namespace actorrent {

namespace {

constexpr std::size_t max_path_bytes = 4096;
// Components are echoed into error messages and logs; a hostile torrent must not be able to
// inject control characters or megabytes of text there.
constexpr std::size_t max_shown_bytes = 120;

std::string quote(const std::string& s) {
  static const char hex[] = "0123456789abcdef";
  std::string out = "\"";
  std::size_t shown = 0;
  for (unsigned char c : s) {
    if (shown++ == max_shown_bytes) {
      out += "...";
      break;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

error unsafe(std::string msg) {
  return error{errc::unsafe_path, std::move(msg)};
}

error invalid(std::string msg) {
  return error{errc::metainfo_invalid, std::move(msg)};
}

bool is_drive_letter(const std::string& c) {
  return c.size() >= 2 && c[1] == ':' &&
         ((c[0] >= 'a' && c[0] <= 'z') || (c[0] >= 'A' && c[0] <= 'Z'));
}

error with_context(const std::string& where, const error& e) {
  return error{e.code, where + ": " + e.message};
}

// Refuses two files with the same path and a file whose path is a directory of another file
// ("t/a" and "t/a/b"): either would make one file silently overwrite or block the other.
// Padding files are skipped because they never touch the disk (and BEP 47 torrents often repeat
// the same ".pad/N" path).
status check_conflicts(const std::vector<layout_file>& files) {
  std::unordered_map<std::string, std::uint32_t> file_paths;
  std::unordered_map<std::string, std::uint32_t> dir_paths; // directory -> first file below it
  file_paths.reserve(files.size());
  for (std::uint32_t i = 0; i < files.size(); ++i) {
    const auto& f = files[i];
    if (f.pad)
      continue;
    auto [it, inserted] = file_paths.emplace(f.path, i);
    if (!inserted)
      return unsafe("file " + std::to_string(i) + ": path " + quote(f.path) + " duplicates file " +
                    std::to_string(it->second));
    for (auto slash = f.path.find('/'); slash != std::string::npos;
         slash = f.path.find('/', slash + 1))
      dir_paths.emplace(f.path.substr(0, slash), i);
  }
  // Checked in file order so the message names the same pair whatever the hash order is.
  for (std::uint32_t i = 0; i < files.size(); ++i) {
    if (files[i].pad)
      continue;
    auto it = dir_paths.find(files[i].path);
    if (it != dir_paths.end())
      return unsafe("file " + std::to_string(i) + ": path " + quote(files[i].path) +
                    " is also a directory of file " + std::to_string(it->second) + " (" +
                    quote(files[it->second].path) + ")");
  }
  return {};
}

} // namespace

result<std::string> sanitize_path(const std::vector<std::string>& components) {
  if (components.empty())
    return unsafe("empty path");
  std::string out;
  for (std::size_t i = 0; i < components.size(); ++i) {
    const auto& c = components[i];
    if (c.empty())
      return unsafe("path component " + std::to_string(i) + " is empty");
    if (c == "." || c == "..")
      return unsafe("path component " + quote(c) + " is not allowed");
    if (i == 0 && c[0] == '/')
      return unsafe("absolute path " + quote(c));
    if (i == 0 && c == ".actorrent")
      return unsafe("path component \".actorrent\" is reserved for actorrent's resume data");
    if (c.find('/') != std::string::npos)
      return unsafe("path component " + quote(c) + " contains '/'");
    if (c.find('\\') != std::string::npos)
      return unsafe("path component " + quote(c) + " contains '\\'");
    if (c.find('\0') != std::string::npos)
      return unsafe("path component " + quote(c) + " contains a NUL byte");
    // Only the first component: "C:" elsewhere is an ordinary (if odd) Linux file name, but at
    // the front it would make the path absolute on Windows-hosted output directories.
    if (i == 0 && is_drive_letter(c))
      return unsafe("path component " + quote(c) + " starts with a drive letter");
    if (!out.empty())
      out += '/';
    out += c;
    if (out.size() > max_path_bytes)
      return unsafe("path is longer than " + std::to_string(max_path_bytes) + " bytes");
  }
  return out;
}

result<file_layout> file_layout::create(const metainfo& m) {
  if (m.piece_length == 0)
    return invalid("piece length is 0");
  if (m.files.empty())
    return invalid("torrent has no files");
  if (!m.multi_file && m.files.size() != 1)
    return invalid("single-file torrent has " + std::to_string(m.files.size()) + " files");
  if (m.files.size() > std::numeric_limits<std::uint32_t>::max())
    return invalid("too many files");

  file_layout l;
  l.piece_length_ = m.piece_length;
  l.files_.reserve(m.files.size());

  std::string prefix;
  if (m.multi_file) {
    auto name = sanitize_path({m.name});
    if (!name)
      return with_context("torrent name", name.error());
    prefix = std::move(*name) + "/";
  }

  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < m.files.size(); ++i) {
    const auto& f = m.files[i];
    auto where = "file " + std::to_string(i);
    auto path = sanitize_path(m.multi_file ? f.path : std::vector<std::string>{m.name});
    if (!path)
      return with_context(where, path.error());
    std::string full = prefix + *path;
    if (full.size() > max_path_bytes)
      return unsafe(where + ": path is longer than " + std::to_string(max_path_bytes) + " bytes");
    if (f.length > std::numeric_limits<std::uint64_t>::max() - offset)
      return invalid(where + ": total size overflows");
    l.files_.push_back(layout_file{std::move(full), offset, f.length, f.pad});
    offset += f.length;
  }
  if (auto s = check_conflicts(l.files_); !s)
    return s.error();

  l.total_size_ = offset;
  if (m.total_size != offset)
    return invalid("total size " + std::to_string(m.total_size) + " differs from the sum " +
                   std::to_string(offset) + " of the file lengths");
  // map_block relies on every piece lying inside the byte stream and only the last one being
  // short, so the hash count must match the size exactly.
  std::uint64_t expected = offset / m.piece_length + (offset % m.piece_length != 0);
  if (m.piece_hashes.size() != expected)
    return invalid(std::to_string(m.piece_hashes.size()) + " piece hashes for " +
                   std::to_string(offset) + " bytes in pieces of " +
                   std::to_string(m.piece_length) + " (expected " + std::to_string(expected) + ")");
  l.piece_count_ = static_cast<std::uint32_t>(expected);
  return l;
}

std::uint32_t file_layout::piece_size(piece_index p) const noexcept {
  assert(p.value < piece_count_);
  if (p.value + 1 < piece_count_)
    return piece_length_;
  return static_cast<std::uint32_t>(total_size_ -
                                    std::uint64_t{piece_length_} * (piece_count_ - 1));
}

file_index file_layout::file_at(std::uint64_t pos) const {
  assert(pos < total_size_);
  // The last file starting at or before pos. Among files sharing an offset only the last can be
  // non-empty (a non-empty file pushes the next offset forward), and since pos < total size
  // that last one must reach past pos.
  auto it = std::upper_bound(files_.begin(), files_.end(), pos,
                             [](std::uint64_t v, const layout_file& f) { return v < f.offset; });
  assert(it != files_.begin());
  --it;
  assert(it->length > 0 && pos - it->offset < it->length);
  return file_index{static_cast<std::uint32_t>(it - files_.begin())};
}

void file_layout::map_block(piece_index p, std::uint32_t offset, std::uint32_t length,
                            std::vector<file_slice>& out) const {
  assert(p.value < piece_count_);
  assert(std::uint64_t{offset} + length <= piece_size(p));
  if (length == 0)
    return;
  std::uint64_t pos = std::uint64_t{p.value} * piece_length_ + offset;
  std::uint64_t left = length;
  for (auto i = file_at(pos).value; left > 0; ++i) {
    assert(i < files_.size());
    const auto& f = files_[i];
    if (f.length == 0)
      continue;
    std::uint64_t in_file = pos - f.offset;
    std::uint64_t n = std::min(left, f.length - in_file);
    out.push_back(file_slice{file_index{i}, in_file, n});
    pos += n;
    left -= n;
  }
}

} // namespace actorrent
