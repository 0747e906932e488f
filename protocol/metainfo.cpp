#include "protocol/metainfo.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "protocol/sha1.hpp"

namespace actorrent {

namespace {

using bencode::value;

error invalid(std::string msg) {
  return error{errc::metainfo_invalid, std::move(msg)};
}

std::string byte_of(const value &v) {
  return " (byte " + std::to_string(v.span().first) + ")";
}

// Typed lookups. `where` is the key's dotted name for messages; the byte offset points at the
// wrong value, or at the enclosing dictionary when the key is missing.
enum class need { required, optional };

bool get_int(const value &d, std::string_view key, const std::string &where, need n,
             std::int64_t &out, bool &present, error &err) {
  const value *v = d.find(key);
  present = v != nullptr;
  if (v == nullptr) {
    if (n == need::required) {
      err = invalid(where + " is missing" + byte_of(d));
      return false;
    }
    return true;
  }
  if (!v->is_int()) {
    err = invalid(where + " must be an integer" + byte_of(*v));
    return false;
  }
  out = v->as_int();
  return true;
}

bool get_string(const value &d, std::string_view key, const std::string &where, need n,
                const value *&out, error &err) {
  const value *v = d.find(key);
  out = nullptr;
  if (v == nullptr) {
    if (n == need::required) {
      err = invalid(where + " is missing" + byte_of(d));
      return false;
    }
    return true;
  }
  if (!v->is_string()) {
    err = invalid(where + " must be a string" + byte_of(*v));
    return false;
  }
  out = v;
  return true;
}

// Path components of one file: "path.utf-8" when present (like name.utf-8), else "path".
bool read_path(const value &file, const std::string &where, std::vector<std::string> &out,
               error &err) {
  std::string key = file.find("path.utf-8") != nullptr ? "path.utf-8" : "path";
  const value *p = file.find(key);
  if (p == nullptr) {
    err = invalid(where + ".path is missing" + byte_of(file));
    return false;
  }
  if (!p->is_list()) {
    err = invalid(where + "." + key + " must be a list" + byte_of(*p));
    return false;
  }
  if (p->as_list().empty()) {
    err = invalid(where + "." + key + " is empty" + byte_of(*p));
    return false;
  }
  for (const auto &c : p->as_list()) {
    if (!c.is_string()) {
      err = invalid(where + "." + key + " component must be a string" + byte_of(c));
      return false;
    }
    if (c.as_string().empty()) {
      err = invalid(where + "." + key + " has an empty component" + byte_of(c));
      return false;
    }
    out.push_back(c.as_string());
  }
  return true;
}

// BEP 12: lenient, because a bad tracker list should not make the content unusable; tiers that
// are not lists and entries that are not non-empty strings are skipped, empty tiers dropped.
std::vector<std::vector<std::string>> read_announce_list(const value &root) {
  std::vector<std::vector<std::string>> tiers;
  const value *al = root.find("announce-list");
  if (al == nullptr || !al->is_list())
    return tiers;
  for (const auto &tier : al->as_list()) {
    if (!tier.is_list())
      continue;
    std::vector<std::string> urls;
    for (const auto &url : tier.as_list())
      if (url.is_string() && !url.as_string().empty())
        urls.push_back(url.as_string());
    if (!urls.empty())
      tiers.push_back(std::move(urls));
  }
  return tiers;
}

} // namespace

std::uint32_t metainfo::piece_size(piece_index i) const noexcept {
  if (i.value >= piece_count() || piece_length == 0)
    return 0;
  if (i.value + 1 < piece_count())
    return piece_length;
  std::uint64_t before = std::uint64_t{piece_length} * i.value;
  return static_cast<std::uint32_t>(total_size - before);
}

std::vector<std::vector<std::string>> metainfo::tracker_tiers() const {
  if (!announce_list.empty())
    return announce_list;
  if (!announce.empty())
    return {{announce}};
  return {};
}

result<metainfo> parse_metainfo(std::string_view bytes, const metainfo_limits &lim) {
  if (bytes.size() > lim.max_file_size)
    return error{errc::bencode_limit, "torrent of " + std::to_string(bytes.size()) +
                                          " bytes exceeds limit of " +
                                          std::to_string(lim.max_file_size) + " at byte " +
                                          std::to_string(lim.max_file_size)};
  bencode::limits blim;
  blim.max_total = lim.max_file_size;
  blim.max_string = lim.max_file_size;
  // Outside `info` nothing is hashed, so tolerate the sloppy encoders found in the wild.
  auto decoded = bencode::decode(bytes, blim, true);
  if (!decoded)
    return decoded.error();
  const value &root = *decoded;
  if (!root.is_dict())
    return invalid("torrent must be a dictionary" + byte_of(root));

  const value *info = root.find("info");
  if (info == nullptr)
    return invalid("info is missing" + byte_of(root));
  if (!info->is_dict())
    return invalid("info must be a dictionary" + byte_of(*info));

  auto [info_begin, info_end] = info->span();
  std::string_view info_bytes = bytes.substr(info_begin, info_end - info_begin);
  // The info-hash names the torrent; if the info dict were non-canonical, a client that
  // re-encodes it would compute a different hash, so refuse rather than guess.
  if (auto strict = bencode::decode(info_bytes, blim, false); !strict)
    return invalid("info dictionary is not canonically encoded: " + strict.error().message +
                   " (offset within info, which starts at byte " + std::to_string(info_begin) +
                   ")");

  metainfo m;
  m.hash = sha1(info_bytes);
  m.info_bytes = std::string(info_bytes); // BEP 9: served to peers as is
  error err;

  // name: BEP 3, with the common "name.utf-8" override.
  const value *name = nullptr;
  if (info->find("name.utf-8") != nullptr) {
    if (!get_string(*info, "name.utf-8", "info.name.utf-8", need::required, name, err))
      return err;
  } else if (!get_string(*info, "name", "info.name", need::required, name, err)) {
    return err;
  }
  if (name->as_string().empty())
    return invalid("info.name is empty" + byte_of(*name));
  m.name = name->as_string();

  std::int64_t piece_length = 0;
  bool present = false;
  if (!get_int(*info, "piece length", "info.piece length", need::required, piece_length, present,
               err))
    return err;
  const value *pl_value = info->find("piece length");
  if (piece_length <= 0)
    return invalid("info.piece length " + std::to_string(piece_length) + " must be positive" +
                   byte_of(*pl_value));
  if (static_cast<std::uint64_t>(piece_length) > lim.max_piece_length)
    return invalid("info.piece length " + std::to_string(piece_length) + " exceeds limit of " +
                   std::to_string(lim.max_piece_length) + byte_of(*pl_value));
  m.piece_length = static_cast<std::uint32_t>(piece_length);

  // BEP 52: a v2 torrent says so in "meta version"; a hybrid one also carries the v1 keys
  // (pieces, length or files) and is used through them. Without those, nothing here applies.
  std::int64_t meta_version = 1;
  if (!get_int(*info, "meta version", "info.meta version", need::optional, meta_version,
               present, err))
    return err;
  if (present && meta_version != 1 && info->find("pieces") == nullptr)
    return invalid("v2-only torrents (meta version " + std::to_string(meta_version) +
                   ") are not supported" + byte_of(*info->find("meta version")));

  const value *pieces = nullptr;
  if (!get_string(*info, "pieces", "info.pieces", need::required, pieces, err))
    return err;
  const std::string &hashes = pieces->as_string();
  if (hashes.size() % 20 != 0)
    return invalid("info.pieces length " + std::to_string(hashes.size()) +
                   " is not a multiple of 20" + byte_of(*pieces));

  std::int64_t priv = 0;
  if (!get_int(*info, "private", "info.private", need::optional, priv, present, err))
    return err;
  m.is_private = priv == 1;

  if (const value *files = info->find("files")) {
    m.multi_file = true;
    if (!files->is_list())
      return invalid("info.files must be a list" + byte_of(*files));
    const auto &list = files->as_list();
    if (list.empty())
      return invalid("info.files is empty" + byte_of(*files));
    if (list.size() > lim.max_files)
      return invalid("info.files has " + std::to_string(list.size()) + " entries, limit " +
                     std::to_string(lim.max_files) + byte_of(*files));
    m.files.reserve(list.size());
    for (std::size_t i = 0; i < list.size(); ++i) {
      const value &f = list[i];
      std::string where = "info.files[" + std::to_string(i) + "]";
      if (!f.is_dict())
        return invalid(where + " must be a dictionary" + byte_of(f));
      file_entry e;
      std::int64_t length = 0;
      if (!get_int(f, "length", where + ".length", need::required, length, present, err))
        return err;
      if (length < 0)
        return invalid(where + ".length " + std::to_string(length) + " is negative" +
                       byte_of(*f.find("length")));
      e.length = static_cast<std::uint64_t>(length);
      if (!read_path(f, where, e.path, err))
        return err;
      const value *attr = nullptr;
      if (!get_string(f, "attr", where + ".attr", need::optional, attr, err))
        return err;
      // BEP 47: 'p' marks a padding file (zeros that exist only to align the next file).
      e.pad = attr != nullptr && attr->as_string().find('p') != std::string::npos;
      if (e.length > lim.max_total_size - m.total_size)
        return invalid("total size exceeds limit of " + std::to_string(lim.max_total_size) +
                       " at " + where + byte_of(f));
      m.total_size += e.length;
      m.files.push_back(std::move(e));
    }
  } else {
    std::int64_t length = 0;
    if (!get_int(*info, "length", "info.length", need::optional, length, present, err))
      return err;
    if (!present)
      return invalid("info must have either length or files" + byte_of(*info));
    if (length < 0)
      return invalid("info.length " + std::to_string(length) + " is negative" +
                     byte_of(*info->find("length")));
    if (static_cast<std::uint64_t>(length) > lim.max_total_size)
      return invalid("info.length " + std::to_string(length) + " exceeds limit of " +
                     std::to_string(lim.max_total_size) + byte_of(*info->find("length")));
    file_entry e;
    e.path = {m.name};
    e.length = static_cast<std::uint64_t>(length);
    m.total_size = e.length;
    m.files.push_back(std::move(e));
  }

  std::uint64_t expected = (m.total_size + m.piece_length - 1) / m.piece_length;
  std::uint64_t count = hashes.size() / 20;
  if (count != expected)
    return invalid("info.pieces has " + std::to_string(count) + " hashes, expected " +
                   std::to_string(expected) + " for " + std::to_string(m.total_size) +
                   " bytes in pieces of " + std::to_string(m.piece_length) + byte_of(*pieces));
  if (count > std::numeric_limits<std::uint32_t>::max())
    return invalid("info.pieces has too many hashes" + byte_of(*pieces));
  m.piece_hashes.resize(count);
  for (std::size_t i = 0; i < count; ++i)
    std::memcpy(m.piece_hashes[i].data(), hashes.data() + i * 20, 20);

  const value *s = nullptr;
  if (!get_string(root, "announce", "announce", need::optional, s, err))
    return err;
  if (s != nullptr)
    m.announce = s->as_string();
  m.announce_list = read_announce_list(root);
  if (!get_string(root, "comment", "comment", need::optional, s, err))
    return err;
  if (s != nullptr)
    m.comment = s->as_string();
  if (!get_string(root, "created by", "created by", need::optional, s, err))
    return err;
  if (s != nullptr)
    m.created_by = s->as_string();
  if (!get_int(root, "creation date", "creation date", need::optional, m.creation_date, present,
               err))
    return err;
  return m;
}

std::uint64_t metainfo::content_size() const noexcept {
  std::uint64_t size = 0;
  for (const auto &f : files)
    if (!f.pad)
      size += f.length;
  return size;
}

result<metainfo> load_metainfo(const std::string &path, const metainfo_limits &lim) {
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    return error{errc::io_error, "cannot open " + path + ": " + std::strerror(errno)};
  std::string bytes;
  char buf[64 * 1024];
  // Read in chunks with a cap rather than trusting a size from stat: the path may be a pipe,
  // and a huge file must not be slurped just to be rejected.
  for (;;) {
    std::size_t n = std::fread(buf, 1, sizeof buf, f);
    bytes.append(buf, n);
    if (bytes.size() > lim.max_file_size) {
      std::fclose(f);
      return error{errc::bencode_limit, path + ": torrent exceeds limit of " +
                                            std::to_string(lim.max_file_size) + " bytes at byte " +
                                            std::to_string(lim.max_file_size)};
    }
    if (n < sizeof buf) {
      bool failed = std::ferror(f) != 0;
      int e = errno;
      std::fclose(f);
      if (failed)
        return error{errc::io_error, "cannot read " + path + ": " + std::strerror(e)};
      break;
    }
  }
  auto r = parse_metainfo(bytes, lim);
  if (!r)
    return error{r.error().code, path + ": " + r.error().message};
  return r;
}

std::string torrent_file_of(std::string_view info, const std::vector<std::string>& trackers) {
  // Keys in bencode order: announce, announce-list, info. The info dictionary is copied as
  // received: its bytes are what the info-hash covers.
  std::string out = "d";
  auto str = [&](std::string_view s) { out += std::to_string(s.size()) + ":" + std::string(s); };
  if (!trackers.empty()) {
    str("announce");
    str(trackers.front());
    str("announce-list");
    out += "l";
    for (auto& t : trackers) {
      out += "l";
      str(t);
      out += "e";
    }
    out += "e";
  }
  str("info");
  out.append(info);
  out += "e";
  return out;
}

} // namespace actorrent
