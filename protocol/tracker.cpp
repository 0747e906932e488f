#include "protocol/tracker.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <limits>

#include "protocol/bencode.hpp"

namespace actorrent::tracker {

namespace {

using bencode::value;

constexpr std::size_t max_body = 4u << 20;
/// A scrape reply for one torrent is ~100 bytes; a tracker answering with every torrent it
/// knows (a scrape without info_hash) may send megabytes: we never ask for that.
constexpr std::size_t max_scrape_body = 1u << 20;

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::string byte_of(const value &v) {
  return " (byte " + std::to_string(v.span().first) + ")";
}

error bad(std::string msg) {
  return error{errc::tracker_response, std::move(msg)};
}

std::uint32_t clamp_u32(std::int64_t v) {
  if (v < 0)
    return 0;
  if (static_cast<std::uint64_t>(v) > std::numeric_limits<std::uint32_t>::max())
    return std::numeric_limits<std::uint32_t>::max();
  return static_cast<std::uint32_t>(v);
}

// interval / min interval steer how often we hammer the tracker, so garbage there is an error
// rather than silently becoming 0.
bool read_interval(const value &root, std::string_view key, std::uint32_t &out, error &err) {
  const value *v = root.find(key);
  if (v == nullptr)
    return true;
  if (!v->is_int() || v->as_int() < 0) {
    err = bad(std::string(key) + " must be a non-negative integer" + byte_of(*v));
    return false;
  }
  out = clamp_u32(v->as_int());
  return true;
}

// Compact peer lists: BEP 23 (4-byte IPv4 + port) and BEP 7 (16-byte IPv6 + port).
bool read_compact(const value &v, std::string_view key, int family, std::size_t addr_len,
                  std::vector<peer_endpoint> &out, error &err) {
  const std::string &s = v.as_string();
  std::size_t entry = addr_len + 2;
  if (s.size() % entry != 0) {
    err = bad(std::string(key) + ": compact length " + std::to_string(s.size()) +
              " is not a multiple of " + std::to_string(entry) + byte_of(v));
    return false;
  }
  decode_compact_peers(s, family == AF_INET6, out);
  return true;
}

// The original (non-compact) form: a list of {"peer id", "ip", "port"} dictionaries. Trackers
// mix in junk often enough that bad entries are skipped instead of failing the whole reply.
void read_dict_peers(const value &v, std::vector<peer_endpoint> &out) {
  for (const auto &p : v.as_list()) {
    if (!p.is_dict())
      continue;
    const value *ip = p.find("ip");
    const value *port = p.find("port");
    if (ip == nullptr || !ip->is_string() || ip->as_string().empty())
      continue;
    if (port == nullptr || !port->is_int() || port->as_int() < 1 || port->as_int() > 65535)
      continue;
    out.push_back(peer_endpoint{ip->as_string(), static_cast<std::uint16_t>(port->as_int())});
  }
}

/// A tracker's reply body, bounded: decoded (leniently: many trackers emit unsorted keys, and
/// nothing here is hashed), a dictionary, without a "failure reason" (tracker_failure with the
/// tracker's text). `what` names the reply in errors.
result<value> decode_reply(std::string_view body, const std::string &what, std::size_t max,
                           std::size_t max_depth) {
  if (body.size() > max)
    return bad(what + " of " + std::to_string(body.size()) + " bytes exceeds limit of " +
               std::to_string(max) + " at byte " + std::to_string(max));
  bencode::limits lim;
  lim.max_total = max;
  lim.max_string = max;
  lim.max_depth = max_depth;
  lim.max_items = max / 2; // an item takes at least 2 bytes ("0:")
  auto decoded = bencode::decode(body, lim, true);
  if (!decoded)
    return decoded.error();
  const value &root = *decoded;
  if (!root.is_dict())
    return bad(what + " must be a dictionary" + byte_of(root));
  if (const value *f = root.find("failure reason")) {
    if (f->is_string())
      return error{errc::tracker_failure, f->as_string()};
    return bad("failure reason must be a string" + byte_of(*f));
  }
  return decoded;
}

} // namespace

std::size_t decode_compact_peers(std::string_view list, bool ipv6, std::vector<peer_endpoint> &out,
                                 std::size_t max_peers) {
  const std::size_t addr_len = ipv6 ? 16 : 4;
  const std::size_t entry = addr_len + 2;
  std::size_t kept = 0, dropped = 0;
  char text[INET6_ADDRSTRLEN];
  for (std::size_t i = 0; i + entry <= list.size(); i += entry) {
    auto b = reinterpret_cast<const unsigned char *>(list.data() + i);
    auto port = static_cast<std::uint16_t>((b[addr_len] << 8) | b[addr_len + 1]);
    if (port == 0)
      continue;
    if (kept == max_peers) {
      ++dropped;
      continue;
    }
    if (inet_ntop(ipv6 ? AF_INET6 : AF_INET, b, text, sizeof text) == nullptr)
      continue;
    out.push_back(peer_endpoint{text, port});
    ++kept;
  }
  return dropped;
}

std::string url_encode(std::string_view bytes) {
  static const char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size() * 3);
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    if (unreserved(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 0xf]);
    }
  }
  return out;
}

std::string build_announce_url(const announce_request &req) {
  auto view = [](const auto &arr) {
    return std::string_view(reinterpret_cast<const char *>(arr.data()), arr.size());
  };
  std::string url = req.url;
  if (url.find('?') == std::string::npos)
    url += '?';
  else if (url.back() != '?' && url.back() != '&')
    url += '&';
  url += "info_hash=" + url_encode(view(req.hash));
  url += "&peer_id=" + url_encode(view(req.id));
  url += "&port=" + std::to_string(req.port);
  url += "&uploaded=" + std::to_string(req.uploaded);
  url += "&downloaded=" + std::to_string(req.downloaded);
  url += "&left=" + std::to_string(req.left);
  url += "&compact=1";
  url += "&numwant=" + std::to_string(req.numwant);
  switch (req.ev) {
  case event::none:
    break;
  case event::started:
    url += "&event=started";
    break;
  case event::completed:
    url += "&event=completed";
    break;
  case event::stopped:
    url += "&event=stopped";
    break;
  }
  if (!req.key.empty())
    url += "&key=" + url_encode(req.key);
  if (!req.tracker_id.empty())
    url += "&trackerid=" + url_encode(req.tracker_id);
  return url;
}

result<std::string> build_scrape_url(std::string_view announce_url, const info_hash &hash) {
  auto refuse = [&](const std::string &why) -> error {
    return error{errc::invalid_argument, "cannot scrape: " + why};
  };
  const auto scheme = announce_url.find("://");
  if (scheme == std::string_view::npos)
    return refuse("not a URL");
  const auto query = announce_url.find('?');
  std::string_view path_part = announce_url.substr(0, query);
  const auto slash = path_part.rfind('/');
  if (slash == std::string_view::npos || slash < scheme + 3)
    return refuse("it has no path (BEP 48: its last path segment must begin with \"announce\")");
  std::string_view segment = path_part.substr(slash + 1);
  if (segment.rfind("announce", 0) != 0)
    return refuse("its last path segment \"" + std::string(segment) +
                  "\" does not begin with \"announce\" (BEP 48)");
  std::string url(announce_url.substr(0, slash + 1));
  url += "scrape";
  url += segment.substr(8);
  if (query == std::string_view::npos) {
    url += '?';
  } else {
    url += announce_url.substr(query);
    if (url.back() != '?' && url.back() != '&')
      url += '&';
  }
  url += "info_hash=" +
         url_encode(std::string_view(reinterpret_cast<const char *>(hash.data()), hash.size()));
  return url;
}

result<scrape_response> parse_scrape_response(std::string_view body, const info_hash &hash) {
  // dict > files > hash > counts: 3 deep
  auto decoded = decode_reply(body, "scrape reply", max_scrape_body, 8);
  if (!decoded)
    return decoded.error();
  const value &root = *decoded;
  const value *files = root.find("files");
  if (files == nullptr)
    return bad("scrape reply has no \"files\" dictionary" + byte_of(root));
  if (!files->is_dict())
    return bad("files must be a dictionary" + byte_of(*files));
  const value *entry =
    files->find(std::string_view(reinterpret_cast<const char *>(hash.data()), hash.size()));
  if (entry == nullptr)
    return bad("files has no entry for the info-hash (the tracker does not know the torrent)" +
               byte_of(*files));
  if (!entry->is_dict())
    return bad("the info-hash's entry in files must be a dictionary" + byte_of(*entry));
  scrape_response r;
  error err;
  auto count = [&](std::string_view key, std::uint32_t &out, bool required) {
    const value *v = entry->find(key);
    if (v == nullptr) {
      if (required)
        err = bad("the info-hash's entry has no \"" + std::string(key) + "\"" + byte_of(*entry));
      return !required;
    }
    if (!v->is_int() || v->as_int() < 0) {
      err = bad(std::string(key) + " must be a non-negative integer" + byte_of(*v));
      return false;
    }
    out = clamp_u32(v->as_int());
    return true;
  };
  if (!count("complete", r.complete, true) || !count("incomplete", r.incomplete, true) ||
      !count("downloaded", r.downloaded, false))
    return err;
  return r;
}

result<announce_response> parse_announce_response(std::string_view body) {
  // Real replies nest 3 deep (dict > peers list > peer dict).
  auto decoded = decode_reply(body, "response", max_body, 16);
  if (!decoded)
    return decoded.error();
  const value &root = *decoded;

  announce_response r;
  error err;
  if (!read_interval(root, "interval", r.interval, err) ||
      !read_interval(root, "min interval", r.min_interval, err))
    return err;
  if (const value *v = root.find("complete"); v != nullptr && v->is_int())
    r.complete = clamp_u32(v->as_int());
  if (const value *v = root.find("incomplete"); v != nullptr && v->is_int())
    r.incomplete = clamp_u32(v->as_int());
  if (const value *v = root.find("warning message"); v != nullptr && v->is_string())
    r.warning = v->as_string();
  if (const value *v = root.find("tracker id"); v != nullptr && v->is_string())
    r.tracker_id = v->as_string();

  if (const value *peers = root.find("peers")) {
    if (peers->is_string()) {
      if (!read_compact(*peers, "peers", AF_INET, 4, r.peers, err))
        return err;
    } else if (peers->is_list()) {
      read_dict_peers(*peers, r.peers);
    } else {
      return bad("peers must be a string or a list" + byte_of(*peers));
    }
  }
  if (const value *peers6 = root.find("peers6")) {
    if (!peers6->is_string())
      return bad("peers6 must be a string" + byte_of(*peers6));
    if (!read_compact(*peers6, "peers6", AF_INET6, 16, r.peers, err))
      return err;
  }
  return r;
}

} // namespace actorrent::tracker
