#include "storage/resume.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include "config/resume.pb.h"
#include "protocol/sha1.hpp"
#include "storage/atomic_file.hpp"

namespace actorrent {

namespace {

constexpr std::uint32_t resume_version = 1;
constexpr std::uint64_t max_resume_bytes = 64ull << 20;
// The checksum field as written: tag (field 6, length-delimited), length 20, the digest.
constexpr unsigned char checksum_tag = (6 << 3) | 2;
constexpr std::size_t checksum_field_bytes = 2 + 20;

std::string digest_bytes(const sha1_digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

// Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), which is
// what protobuf demands of a proto3 string field when parsing.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i - 1 < n)
      return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

struct disk_state {
  bool present = false; // a regular file (symbolic links and others count as absent)
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
};

// lstat-like: `err` gets errno when the call itself fails (0 otherwise).
disk_state stat_file(const std::string& path, int& err) {
  disk_state s;
  struct stat st;
  err = 0;
  if (::fstatat(AT_FDCWD, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    err = errno;
    return s;
  }
  if (!S_ISREG(st.st_mode))
    return s;
  s.present = true;
  s.size = static_cast<std::uint64_t>(st.st_size);
  s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return s;
}

std::string data_path(const std::string& out_dir, const layout_file& f) {
  return out_dir + "/" + f.path;
}

// Whether any byte of the torrent may already be on disk: some data file exists non-empty.
bool any_data_on_disk(const std::string& out_dir, const file_layout& layout) {
  for (const auto& f : layout.files()) {
    if (f.pad || f.length == 0)
      continue;
    int err;
    auto s = stat_file(data_path(out_dir, f), err);
    // Cannot tell (permissions, I/O): assume there is data, a check is merely slower.
    if (err != 0 && err != ENOENT && err != ENOTDIR)
      return true;
    if (s.present && s.size > 0)
      return true;
  }
  return false;
}

Roaring all_pieces(std::uint32_t n) {
  Roaring r;
  r.addRange(0, n);
  return r;
}

// Walks the top-level fields of `bytes` without interpreting them (so damaged data never
// reaches the protobuf parser, which would log about it). Returns an empty string when every
// field is complete, otherwise names the first one that is cut off or malformed, with its byte
// offset. `version` gets the last varint of field 1 seen (0 if none).
std::string check_structure(std::string_view bytes, std::uint64_t& version) {
  using google::protobuf::io::CodedInputStream;
  CodedInputStream in(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  const auto size = static_cast<std::uint64_t>(bytes.size());
  version = 0;
  for (;;) {
    const auto at = static_cast<std::uint64_t>(in.CurrentPosition());
    if (at == size)
      return {};
    const std::uint32_t tag = in.ReadTag();
    const auto where = " at byte " + std::to_string(at);
    if (tag == 0)
      return "invalid or truncated field tag" + where;
    const auto field = "field " + std::to_string(tag >> 3) + where;
    switch (tag & 7) {
    case 0: { // varint
      std::uint64_t v;
      if (!in.ReadVarint64(&v))
        return field + ": truncated or invalid varint";
      if ((tag >> 3) == 1)
        version = v;
      break;
    }
    case 1: { // fixed64
      std::uint64_t v;
      if (!in.ReadLittleEndian64(&v))
        return field + ": truncated 8-byte value";
      break;
    }
    case 2: { // length-delimited
      std::uint32_t len;
      if (!in.ReadVarint32(&len))
        return field + ": truncated or invalid length";
      const auto left = size - static_cast<std::uint64_t>(in.CurrentPosition());
      if (len > left)
        return field + " is " + std::to_string(len) + " bytes long but only " +
               std::to_string(left) + " remain (truncated)";
      if (!in.Skip(static_cast<int>(len)))
        return field + ": cannot skip " + std::to_string(len) + " bytes";
      break;
    }
    case 5: { // fixed32
      std::uint32_t v;
      if (!in.ReadLittleEndian32(&v))
        return field + ": truncated 4-byte value";
      break;
    }
    default:
      return field + ": invalid wire type " + std::to_string(tag & 7);
    }
  }
}

// Offset of the first top-level field `number` in a well-formed message (for messages only).
std::uint64_t field_offset(std::string_view bytes, std::uint32_t number) {
  using google::protobuf::io::CodedInputStream;
  using google::protobuf::internal::WireFormatLite;
  CodedInputStream in(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  for (;;) {
    const auto at = static_cast<std::uint64_t>(in.CurrentPosition());
    const std::uint32_t tag = in.ReadTag();
    if (tag == 0)
      return bytes.size();
    if ((tag >> 3) == number)
      return at;
    if (!WireFormatLite::SkipField(&in, tag))
      return bytes.size();
  }
}

std::string quote(std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  std::string out = "\"";
  std::size_t shown = 0;
  for (unsigned char c : s) {
    if (shown++ == 120) {
      out += "...";
      break;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + '"';
}

enum class read_outcome { ok, missing, failed };

// Reads the resume file, refusing anything but a regular file of at most max_resume_bytes.
read_outcome read_resume_file(const std::string& path, std::string& out, std::string& why) {
  int fd;
  do
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return read_outcome::missing;
    why = errno == ELOOP ? std::string{"is a symbolic link"}
                         : std::string{"cannot open: "} + std::strerror(errno);
    return read_outcome::failed;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    why = std::string{"cannot stat: "} + std::strerror(errno);
    ::close(fd);
    return read_outcome::failed;
  }
  if (!S_ISREG(st.st_mode)) {
    why = "is not a regular file";
    ::close(fd);
    return read_outcome::failed;
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_resume_bytes) {
    why = "is " + std::to_string(st.st_size) + " bytes, more than the limit of " +
          std::to_string(max_resume_bytes) + " bytes";
    ::close(fd);
    return read_outcome::failed;
  }
  // Read up to one byte past the limit, so a file that grows meanwhile is still bounded.
  out.resize(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t done = 0;
  for (;;) {
    if (done == out.size()) {
      if (out.size() > max_resume_bytes) {
        why = "is more than the limit of " + std::to_string(max_resume_bytes) + " bytes";
        ::close(fd);
        return read_outcome::failed;
      }
      out.resize(std::min<std::size_t>(out.size() * 2, max_resume_bytes + 1));
    }
    ssize_t n = ::read(fd, &out[done], out.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      why = std::string{"cannot read: "} + std::strerror(errno);
      ::close(fd);
      return read_outcome::failed;
    }
    if (n == 0)
      break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return read_outcome::ok;
}

// Decodes the verified-piece bitmap, which must hold only pieces below `n`, in increasing
// order, and be exactly `bytes` long. Never trusts the decoded structure further than
// iterating it: a malformed container could make other operations misbehave.
bool decode_bitmap(std::string_view bytes, std::uint32_t n, Roaring& out, std::string& why) {
  if (bytes.empty()) {
    why = "is empty";
    return false;
  }
  Roaring decoded;
  try {
    decoded = Roaring::readSafe(bytes.data(), bytes.size());
  } catch (const std::exception&) {
    why = "cannot be decoded (truncated or corrupt roaring data)";
    return false;
  }
  const auto used = decoded.getSizeInBytes(true);
  if (used != bytes.size()) {
    why = "decodes from " + std::to_string(used) + " of its " + std::to_string(bytes.size()) +
          " bytes";
    return false;
  }
  Roaring clean;
  std::uint64_t next = 0; // smallest value allowed next
  for (auto it = decoded.begin(); it != decoded.end(); ++it) {
    const std::uint32_t v = *it;
    if (v >= n) {
      why = "holds piece " + std::to_string(v) + " but the torrent has " + std::to_string(n) +
            " pieces";
      return false;
    }
    if (v < next) {
      why = "is malformed (piece " + std::to_string(v) + " out of order)";
      return false;
    }
    clean.add(v);
    next = std::uint64_t{v} + 1;
  }
  out = std::move(clean);
  return true;
}

} // namespace

std::string resume_path(const std::string& out_dir, const info_hash& h) {
  return out_dir + "/.actorrent/" + to_hex(h) + ".resume";
}

std::string part_file_path(const std::string& out_dir, const info_hash& h) {
  return out_dir + "/.actorrent/" + to_hex(h) + ".parts";
}

void pieces_of_file(const file_layout& layout, file_index f, Roaring& out) {
  if (f.value >= layout.files().size())
    return;
  const auto& file = layout.files()[f.value];
  if (file.length == 0 || layout.piece_length() == 0)
    return;
  const std::uint64_t first = file.offset / layout.piece_length();
  const std::uint64_t last = (file.offset + file.length - 1) / layout.piece_length();
  out.addRange(first, last + 1);
}

status save_resume(const std::string& out_dir, const metainfo& m, const file_layout& layout,
                   const Roaring& verified, const Roaring& unchecked,
                   const std::vector<file_priority>& priorities) {
  const std::uint32_t n = layout.piece_count();
  if (!priorities.empty() && priorities.size() != layout.files().size())
    return error{errc::invalid_argument, std::to_string(priorities.size()) +
                                             " file priorities for a torrent of " +
                                             std::to_string(layout.files().size()) + " files"};
  if (m.piece_count() != n)
    return error{errc::invalid_argument, "metainfo has " + std::to_string(m.piece_count()) +
                                             " pieces, the file layout " + std::to_string(n)};
  if (!verified.isEmpty() && verified.maximum() >= n)
    return error{errc::invalid_argument, "verified piece " + std::to_string(verified.maximum()) +
                                             " is outside the torrent (" + std::to_string(n) +
                                             " pieces)"};

  config::resume_data d;
  d.set_version(resume_version);
  d.set_info_hash(digest_bytes(m.hash));
  d.set_piece_count(n);
  {
    Roaring compact(verified);
    compact.runOptimize();
    std::string bitmap(compact.getSizeInBytes(true), '\0');
    bitmap.resize(compact.write(bitmap.data(), true));
    d.set_verified_pieces(std::move(bitmap));
  }
  Roaring touched;
  for (std::uint32_t i = 0; i < layout.files().size(); ++i) {
    const auto& f = layout.files()[i];
    if (f.pad)
      continue;
    // A file holding pieces nobody has hashed is recorded as unknown (size 0 never matches a
    // file the torrent gives a length): the next load hashes all its pieces again.
    bool unknown = false;
    if (!unchecked.isEmpty()) {
      touched = Roaring();
      pieces_of_file(layout, file_index{i}, touched);
      unknown = touched.intersect(unchecked);
    }
    const auto path = data_path(out_dir, f);
    int err;
    auto s = stat_file(path, err);
    if (err != 0 && err != ENOENT && err != ENOTDIR)
      return error{errc::io_error, "cannot stat " + path + ": " + std::strerror(err)};
    auto* rec = d.add_files();
    if (valid_utf8(f.path))
      rec->set_path(f.path);
    else
      rec->set_raw_path(f.path);
    rec->set_size(s.present && !unknown ? s.size : 0);
    rec->set_mtime_ns(s.present && !unknown ? s.mtime_ns : 0);
    // Not recorded for an unknown file: "skipped and absent" would vouch for its pieces.
    if (!priorities.empty() && !unknown)
      rec->set_priority(static_cast<std::uint32_t>(priorities[i]) + 1);
  }

  std::string bytes;
  if (!d.SerializeToString(&bytes))
    return error{errc::invalid_argument, "cannot serialise resume data"};
  config::resume_data tail;
  tail.set_checksum(digest_bytes(sha1(bytes)));
  const auto before = bytes.size();
  if (!tail.AppendToString(&bytes) || bytes.size() - before != checksum_field_bytes)
    return error{errc::invalid_argument, "cannot serialise the resume data checksum"};

  const std::string dir = out_dir + "/.actorrent";
  if (::mkdir(out_dir.c_str(), 0755) != 0 && errno != EEXIST)
    return error{errc::io_error, "cannot create directory " + out_dir + ": " +
                                     std::strerror(errno)};
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return error{errc::io_error, "cannot create directory " + dir + ": " + std::strerror(errno)};
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0)
    return error{errc::io_error, "cannot stat " + dir + ": " + std::strerror(errno)};
  if (!S_ISDIR(st.st_mode))
    return error{errc::io_error, "cannot use " + dir + ": not a directory"};
  return write_file_atomically(resume_path(out_dir, m.hash), bytes);
}

resume_result load_resume(const std::string& out_dir, const metainfo& m,
                          const file_layout& layout) {
  const std::uint32_t n = layout.piece_count();
  const std::string path = resume_path(out_dir, m.hash);
  resume_result r;
  auto full_check = [&](const std::string& why) {
    resume_result f;
    f.to_check = all_pieces(n);
    f.warning = "resume file " + path + ": " + why + "; checking all data";
    return f;
  };

  std::string bytes;
  std::string why;
  switch (read_resume_file(path, bytes, why)) {
  case read_outcome::ok:
    break;
  case read_outcome::missing:
    if (!any_data_on_disk(out_dir, layout))
      return r; // a fresh download: nothing to trust, nothing to check
    // Normal on the first run over existing data (seed): hash everything, nothing is wrong.
    r = full_check("not found, but data files exist");
    r.notice = std::move(r.warning);
    r.warning.clear();
    return r;
  case read_outcome::failed:
    return full_check(why);
  }

  // Order matters: the structure and the checksum are checked on the raw bytes, and only bytes
  // that match their checksum are given to protobuf and roaring.
  std::uint64_t version = 0;
  if (auto broken = check_structure(bytes, version); !broken.empty())
    return full_check(broken);
  if (version != resume_version)
    return full_check("format version " + std::to_string(version) + ", expected " +
                      std::to_string(resume_version));
  if (bytes.size() < checksum_field_bytes ||
      static_cast<unsigned char>(bytes[bytes.size() - checksum_field_bytes]) != checksum_tag ||
      bytes[bytes.size() - checksum_field_bytes + 1] != 20)
    return full_check("no checksum at the end of the file (truncated or damaged)");
  const auto body = std::string_view{bytes}.substr(0, bytes.size() - checksum_field_bytes);
  if (digest_bytes(sha1(body)) != bytes.substr(bytes.size() - 20))
    return full_check("checksum mismatch over its " + std::to_string(body.size()) +
                      " bytes (damaged)");
  config::resume_data d;
  if (!d.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return full_check("not a valid resume_data protobuf although its checksum matches");
  if (d.info_hash() != digest_bytes(m.hash)) {
    sha1_digest other{};
    if (d.info_hash().size() == other.size())
      std::memcpy(other.data(), d.info_hash().data(), other.size());
    return full_check("belongs to torrent " +
                      (d.info_hash().size() == other.size()
                           ? to_hex(other)
                           : "(a " + std::to_string(d.info_hash().size()) + "-byte info-hash)") +
                      ", not " + to_hex(m.hash));
  }
  if (d.piece_count() != n || m.piece_count() != n)
    return full_check("records " + std::to_string(d.piece_count()) + " pieces, the torrent has " +
                      std::to_string(n));
  Roaring verified;
  if (!decode_bitmap(d.verified_pieces(), n, verified, why))
    return full_check("verified-piece bitmap (" + std::to_string(d.verified_pieces().size()) +
                      " bytes at byte " + std::to_string(field_offset(bytes, 4)) + ") " + why);

  std::vector<std::uint32_t> data_files;
  for (std::uint32_t i = 0; i < layout.files().size(); ++i)
    if (!layout.files()[i].pad)
      data_files.push_back(i);
  if (static_cast<std::size_t>(d.files_size()) != data_files.size())
    return full_check("records " + std::to_string(d.files_size()) + " files, the torrent has " +
                      std::to_string(data_files.size()));
  for (std::size_t k = 0; k < data_files.size(); ++k) {
    const auto& rec = d.files(static_cast<int>(k));
    const auto& rec_path = rec.path().empty() ? rec.raw_path() : rec.path();
    const auto& f = layout.files()[data_files[k]];
    if (rec_path != f.path)
      return full_check("file record " + std::to_string(k) + " is " + quote(rec_path) +
                        ", the torrent's file is " + quote(f.path));
  }

  // The selection, when every file recorded one (older files recorded none).
  constexpr std::uint32_t skipped = static_cast<std::uint32_t>(file_priority::skip) + 1;
  bool recorded = true;
  for (std::size_t k = 0; k < data_files.size() && recorded; ++k) {
    auto v = d.files(static_cast<int>(k)).priority();
    recorded = v >= 1 && v <= static_cast<std::uint32_t>(file_priority::high) + 1;
  }
  if (recorded && !data_files.empty()) {
    r.priorities.assign(layout.files().size(), file_priority::normal);
    for (std::size_t k = 0; k < data_files.size(); ++k)
      r.priorities[data_files[k]] =
        static_cast<file_priority>(d.files(static_cast<int>(k)).priority() - 1);
  }
  int part_err;
  const bool part_present = stat_file(part_file_path(out_dir, m.hash), part_err).present;

  r.trusted = std::move(verified);
  for (std::size_t k = 0; k < data_files.size(); ++k) {
    const auto& f = layout.files()[data_files[k]];
    if (f.length == 0)
      continue;
    const auto& rec = d.files(static_cast<int>(k));
    int err;
    const auto s = stat_file(data_path(out_dir, f), err);
    if (s.present && s.size == rec.size() && s.mtime_ns == rec.mtime_ns() && s.size == f.length)
      continue;
    // Skipped and absent then and now: its bytes of verified pieces are in the part file.
    if (!s.present && rec.priority() == skipped && rec.size() == 0 && part_present)
      continue;
    Roaring touched;
    pieces_of_file(layout, file_index{data_files[k]}, touched);
    r.to_check |= touched;
    r.trusted -= touched;
  }
  return r;
}

} // namespace actorrent
