#include "protocol/magnet.hpp"

#include <algorithm>
#include <cctype>

namespace actorrent {

namespace {

error bad(std::string what) {
  return error{errc::invalid_argument, "magnet link: " + std::move(what)};
}

std::string where(std::size_t param) { return " (parameter " + std::to_string(param) + ")"; }

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/// RFC 3986 percent-decoding; `plus_is_space` for dn, which browsers encode form-style.
result<std::string> percent_decode(std::string_view s, bool plus_is_space, const std::string& key,
                                   std::size_t param) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      bool whole = i + 2 < s.size();
      int hi = whole ? hex_value(s[i + 1]) : -1;
      int lo = whole ? hex_value(s[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        return bad(key + ": bad percent-escape at character " + std::to_string(i + 1) +
                   where(param));
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size())
    return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i])
      return false;
  return true;
}

/// BEP 9: 40 hex digits, or 32 characters of RFC 4648 base32 (the older form).
result<info_hash> parse_btih(std::string_view s, std::size_t param) {
  info_hash h{};
  if (s.size() == 40) {
    for (std::size_t i = 0; i < 20; ++i) {
      int hi = hex_value(s[2 * i]);
      int lo = hex_value(s[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        auto at = hi < 0 ? 2 * i : 2 * i + 1;
        return bad("xt: '" + printable(std::string(1, s[at])) + "' is not a hex digit at " +
                   "character " + std::to_string(at + 1) + " of the info-hash" + where(param));
      }
      h[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    return h;
  }
  if (s.size() == 32) {
    std::uint64_t acc = 0;
    int bits = 0;
    std::size_t out = 0;
    for (std::size_t i = 0; i < 32; ++i) {
      char c = static_cast<char>(std::toupper(static_cast<unsigned char>(s[i])));
      int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= '2' && c <= '7' ? c - '2' + 26 : -1;
      if (v < 0)
        return bad("xt: '" + printable(std::string(1, s[i])) + "' is not a base32 digit at character " +
                   std::to_string(i + 1) + " of the info-hash" + where(param));
      acc = (acc << 5) | static_cast<std::uint64_t>(v);
      bits += 5;
      if (bits >= 8) {
        bits -= 8;
        h[out++] = static_cast<std::uint8_t>(acc >> bits);
        acc &= (std::uint64_t{1} << bits) - 1;
      }
    }
    return h;
  }
  return bad("xt: info-hash of " + std::to_string(s.size()) +
             " characters, expected 40 hex or 32 base32" + where(param));
}

/// x.pe: HOST:PORT, [IPv6]:PORT.
result<magnet_peer> parse_peer(const std::string& s, std::size_t param) {
  magnet_peer p;
  std::string port;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return bad("x.pe: \"" + printable(s) + "\" is not [IPv6]:PORT" + where(param));
    p.host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0 || s.find(':') != colon)
      return bad("x.pe: \"" + printable(s) + "\" is not HOST:PORT" + where(param));
    p.host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (p.host.empty() || port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return bad("x.pe: \"" + printable(s) + "\" is not HOST:PORT" + where(param));
  auto n = std::stoul(port);
  if (n == 0 || n > 65535)
    return bad("x.pe: port " + port + " out of range 1..65535" + where(param));
  p.port = static_cast<std::uint16_t>(n);
  return p;
}

std::string percent_encode(std::string_view s) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':' || c == '/' ||
        c == '[' || c == ']') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 15]);
    }
  }
  return out;
}

} // namespace

bool is_magnet(std::string_view text) noexcept { return iequals_prefix(text, "magnet:"); }

result<magnet_link> parse_magnet(std::string_view link, const magnet_limits& lim) {
  if (link.size() > lim.max_size)
    return bad(std::to_string(link.size()) + " bytes, limit " + std::to_string(lim.max_size));
  if (!is_magnet(link))
    return bad("does not start with \"magnet:\"");
  auto rest = link.substr(7);
  if (rest.empty() || rest[0] != '?')
    return bad("expected '?' after \"magnet:\"");
  rest.remove_prefix(1);
  magnet_link m;
  bool have_hash = false;
  std::size_t param = 0;
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto part = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    ++param;
    if (part.empty())
      continue; // "&&": harmless
    auto eq = part.find('=');
    if (eq == std::string_view::npos)
      return bad("\"" + printable(std::string(part.substr(0, 64))) + "\" has no '='" +
                 where(param));
    auto key = part.substr(0, eq);
    auto raw = part.substr(eq + 1);
    // Numbered keys (xt.1, tr.2) are the same keys (BEP 9 allows them for several values).
    auto base = key;
    if (key.size() > 3 && key[2] == '.' && (key.substr(0, 2) == "xt" || key.substr(0, 2) == "tr"))
      base = key.substr(0, 2);
    if (base == "xt") {
      auto v = percent_decode(raw, false, "xt", param);
      if (!v)
        return v.error();
      if (!iequals_prefix(*v, "urn:btih:"))
        continue; // another hash namespace (btmh: v2): not ours
      if (have_hash)
        return bad("xt: more than one urn:btih info-hash" + where(param));
      auto h = parse_btih(std::string_view(*v).substr(9), param);
      if (!h)
        return h.error();
      m.hash = *h;
      have_hash = true;
    } else if (base == "dn") {
      auto v = percent_decode(raw, true, "dn", param);
      if (!v)
        return v.error();
      m.name = std::move(*v);
    } else if (base == "tr") {
      auto v = percent_decode(raw, false, "tr", param);
      if (!v)
        return v.error();
      if (v->empty())
        return bad("tr: empty tracker URL" + where(param));
      if (std::find(m.trackers.begin(), m.trackers.end(), *v) != m.trackers.end())
        continue;
      if (m.trackers.size() >= lim.max_trackers)
        return bad("more than " + std::to_string(lim.max_trackers) + " trackers" + where(param));
      m.trackers.push_back(std::move(*v));
    } else if (key == "x.pe") {
      auto v = percent_decode(raw, false, "x.pe", param);
      if (!v)
        return v.error();
      auto p = parse_peer(*v, param);
      if (!p)
        return p.error();
      if (m.peers.size() >= lim.max_peers)
        return bad("more than " + std::to_string(lim.max_peers) + " peers (x.pe)" + where(param));
      m.peers.push_back(std::move(*p));
    }
    // Anything else (xl, as, ws, kt, so, ...) is a hint we do not use.
  }
  if (!have_hash)
    return bad("no xt=urn:btih:<info-hash> parameter");
  return m;
}

std::string to_magnet_uri(const magnet_link& m) {
  std::string out = "magnet:?xt=urn:btih:" + to_hex(m.hash);
  if (!m.name.empty())
    out += "&dn=" + percent_encode(m.name);
  for (auto& t : m.trackers)
    out += "&tr=" + percent_encode(t);
  for (auto& p : m.peers) {
    bool v6 = p.host.find(':') != std::string::npos;
    out += "&x.pe=" + percent_encode(v6 ? "[" + p.host + "]" : p.host) + ":" +
           std::to_string(p.port);
  }
  return out;
}

} // namespace actorrent
