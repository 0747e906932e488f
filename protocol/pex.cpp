#include "protocol/pex.hpp"

#include <arpa/inet.h>

#include "protocol/bencode.hpp"

namespace actorrent::pex {

namespace {

error bad(std::string what) { return error{errc::wire_protocol, "ut_pex: " + std::move(what)}; }

/// Appends the compact form of `p` to `out` if its host is a numeric address of `family`.
bool append_compact(std::string& out, const peer& p, int family) {
  unsigned char buf[16];
  if (p.port == 0 || inet_pton(family, p.host.c_str(), buf) != 1)
    return false;
  out.append(reinterpret_cast<const char*>(buf), family == AF_INET ? 4 : 16);
  out.push_back(static_cast<char>(p.port >> 8));
  out.push_back(static_cast<char>(p.port & 0xff));
  return true;
}

void put(bencode::value& d, const char* key, std::string bytes) {
  if (!bytes.empty())
    d.set(key, bencode::value::make_string(std::move(bytes)));
}

status read_compact(const bencode::value& root, const char* key, const char* flags_key,
                    int family, std::size_t max, std::vector<peer>& out) {
  const auto* v = root.find(key);
  if (!v)
    return {};
  if (!v->is_string())
    return bad(std::string(key) + " is not a string");
  const std::size_t len = family == AF_INET ? 6 : 18;
  const auto& s = v->as_string();
  if (s.size() % len != 0)
    return bad(std::string(key) + " length " + std::to_string(s.size()) +
               " is not a multiple of " + std::to_string(len));
  std::string flags;
  if (flags_key) {
    if (const auto* f = root.find(flags_key)) {
      if (!f->is_string())
        return bad(std::string(flags_key) + " is not a string");
      flags = f->as_string();
    }
  }
  auto n = s.size() / len;
  if (out.size() + n > max)
    return bad(std::to_string(out.size() + n) + " peers in " + key + ", limit " +
               std::to_string(max));
  for (std::size_t i = 0; i < n; ++i) {
    const auto* b = reinterpret_cast<const unsigned char*>(s.data() + i * len);
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(family, b, text, sizeof text) == nullptr)
      continue;
    auto port = static_cast<std::uint16_t>((b[len - 2] << 8) | b[len - 1]);
    if (port == 0)
      continue;
    peer p{text, port, i < flags.size() ? static_cast<std::uint8_t>(flags[i]) : std::uint8_t{0}};
    out.push_back(std::move(p));
  }
  return {};
}

} // namespace

std::string encode(const message& m) {
  std::string added, added_f, added6, added6_f, dropped, dropped6;
  for (const auto& p : m.added) {
    if (append_compact(added, p, AF_INET))
      added_f.push_back(static_cast<char>(p.flags));
    else if (append_compact(added6, p, AF_INET6))
      added6_f.push_back(static_cast<char>(p.flags));
  }
  for (const auto& p : m.dropped)
    if (!append_compact(dropped, p, AF_INET))
      append_compact(dropped6, p, AF_INET6);
  auto d = bencode::value::make_dict();
  // BEP 11 peers expect the keys present even when empty (libtorrent sends them all).
  d.set("added", bencode::value::make_string(std::move(added)));
  d.set("added.f", bencode::value::make_string(std::move(added_f)));
  put(d, "added6", std::move(added6));
  put(d, "added6.f", std::move(added6_f));
  d.set("dropped", bencode::value::make_string(std::move(dropped)));
  put(d, "dropped6", std::move(dropped6));
  return bencode::encode(d);
}

result<message> parse(std::string_view payload, const parse_limits& lim) {
  if (payload.size() > lim.max_size)
    return bad(std::to_string(payload.size()) + " bytes, limit " + std::to_string(lim.max_size));
  bencode::limits bl;
  bl.max_depth = 8;
  bl.max_string = lim.max_size;
  bl.max_items = 256;
  bl.max_total = lim.max_size;
  auto doc = bencode::decode(payload, bl, /*allow_noncanonical=*/true);
  if (!doc)
    return bad(doc.error().message);
  if (!doc->is_dict())
    return bad("payload is not a dictionary");
  message m;
  if (auto s = read_compact(*doc, "added", "added.f", AF_INET, lim.max_added, m.added); !s)
    return s.error();
  if (auto s = read_compact(*doc, "added6", "added6.f", AF_INET6, lim.max_added, m.added); !s)
    return s.error();
  if (auto s = read_compact(*doc, "dropped", nullptr, AF_INET, lim.max_dropped, m.dropped); !s)
    return s.error();
  if (auto s = read_compact(*doc, "dropped6", nullptr, AF_INET6, lim.max_dropped, m.dropped); !s)
    return s.error();
  return m;
}

} // namespace actorrent::pex
