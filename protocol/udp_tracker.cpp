#include "protocol/udp_tracker.hpp"

#include "protocol/big_endian.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>

namespace actorrent::udp_tracker {

namespace {

constexpr std::size_t header_size = 8;
constexpr std::size_t connect_reply_size = 16;
constexpr std::size_t announce_reply_fixed = 20;
constexpr std::size_t scrape_entry_size = 12;
// An error datagram's message is shown, escaped, at most this long: it reaches the logs.
constexpr std::size_t max_error_text = 256;

error bad(std::string msg) {
  return error{errc::tracker_response, "udp tracker: " + std::move(msg)};
}

using big_endian::put_u16;
using big_endian::put_u32;
using big_endian::put_u64;

std::uint32_t get32(std::string_view s, std::size_t at) { return big_endian::read_u32(&s[at]); }
std::uint64_t get64(std::string_view s, std::size_t at) { return big_endian::read_u64(&s[at]); }

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

const char* action_name(std::uint32_t a) {
  switch (a) {
    case 0: return "connect";
    case 1: return "announce";
    case 2: return "scrape";
    case 3: return "error";
    default: return "unknown";
  }
}

// BEP 15: 0 none, 1 completed, 2 started, 3 stopped (not the order of tracker::event).
std::uint32_t wire_event(tracker::event ev) {
  switch (ev) {
    case tracker::event::completed: return 1;
    case tracker::event::started: return 2;
    case tracker::event::stopped: return 3;
    case tracker::event::none: break;
  }
  return 0;
}

/// The checks every reply shares: header, transaction id, error action, expected action.
status check_reply(std::string_view d, std::uint32_t expected_tx, action want) {
  auto h = parse_header(d);
  if (!h)
    return h.error();
  if (auto other = other_transaction(d, expected_tx))
    return error{errc::tracker_response, std::move(*other)};
  if (h->action == static_cast<std::uint32_t>(action::error)) {
    auto text = d.substr(header_size, std::min(d.size() - header_size, max_error_text));
    return error{errc::tracker_failure,
                 "udp tracker: error reply: " + (text.empty() ? std::string("(no message)")
                                                              : printable(text))};
  }
  if (h->action != static_cast<std::uint32_t>(want))
    return bad(std::string("expected a ") + action_name(static_cast<std::uint32_t>(want)) +
               " reply, got action " + std::to_string(h->action) + " (" +
               action_name(h->action) + ") at byte 0");
  return {};
}

} // namespace

std::chrono::milliseconds retransmit_timeout(std::chrono::milliseconds base, std::uint32_t n) {
  return base * (1 << std::min(n, max_retransmit_exponent));
}

result<tracker_address> parse_url(std::string_view url) {
  constexpr std::string_view scheme = "udp://";
  if (url.substr(0, scheme.size()) != scheme)
    return bad("'" + printable(url) + "' does not start with udp://");
  auto rest = url.substr(scheme.size());
  auto authority = rest.substr(0, rest.find_first_of("/?#"));
  tracker_address out;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      return bad("'" + printable(url) + "': unterminated [IPv6] host");
    out.host = std::string(authority.substr(1, close - 1));
    auto after = authority.substr(close + 1);
    if (after.empty() || after.front() != ':')
      return bad("'" + printable(url) + "' has no port");
    port_text = after.substr(1);
  } else {
    auto colon = authority.rfind(':');
    if (colon == std::string_view::npos)
      return bad("'" + printable(url) + "' has no port");
    out.host = std::string(authority.substr(0, colon));
    port_text = authority.substr(colon + 1);
  }
  if (out.host.empty())
    return bad("'" + printable(url) + "' has no host");
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return bad("'" + printable(url) + "': port is not a number");
  unsigned long port = std::stoul(std::string(port_text));
  if (port == 0 || port > 65535)
    return bad("'" + printable(url) + "': port " + std::to_string(port) + " out of range");
  out.port = static_cast<std::uint16_t>(port);
  return out;
}

std::string encode_connect(std::uint32_t transaction_id) {
  std::string out;
  out.reserve(16);
  put_u64(out, protocol_id);
  put_u32(out, static_cast<std::uint32_t>(action::connect));
  put_u32(out, transaction_id);
  return out;
}

std::string encode_announce(std::uint64_t connection_id, std::uint32_t transaction_id,
                            const announce_params& p) {
  std::string out;
  out.reserve(98);
  put_u64(out, connection_id);
  put_u32(out, static_cast<std::uint32_t>(action::announce));
  put_u32(out, transaction_id);
  out.append(reinterpret_cast<const char*>(p.hash.data()), p.hash.size());
  out.append(reinterpret_cast<const char*>(p.id.data()), p.id.size());
  put_u64(out, p.downloaded);
  put_u64(out, p.left);
  put_u64(out, p.uploaded);
  put_u32(out, wire_event(p.ev));
  put_u32(out, 0); // IP address: 0, the tracker takes the sender's
  put_u32(out, p.key);
  put_u32(out, static_cast<std::uint32_t>(p.num_want));
  put_u16(out, p.port);
  return out;
}

std::string encode_scrape(std::uint64_t connection_id, std::uint32_t transaction_id,
                          const std::vector<info_hash>& hashes) {
  std::string out;
  auto n = std::min(hashes.size(), max_scrape_hashes);
  out.reserve(16 + 20 * n);
  put_u64(out, connection_id);
  put_u32(out, static_cast<std::uint32_t>(action::scrape));
  put_u32(out, transaction_id);
  for (std::size_t i = 0; i < n; ++i)
    out.append(reinterpret_cast<const char*>(hashes[i].data()), hashes[i].size());
  return out;
}

result<reply_header> parse_header(std::string_view d) {
  if (d.size() < header_size)
    return bad("reply of " + std::to_string(d.size()) + " bytes is shorter than its " +
               std::to_string(header_size) + "-byte header");
  return reply_header{get32(d, 0), get32(d, 4)};
}

std::optional<std::string> other_transaction(std::string_view d, std::uint32_t expected_tx) {
  auto h = parse_header(d);
  if (!h || h->transaction_id == expected_tx)
    return std::nullopt;
  return "udp tracker: transaction id " + hex32(h->transaction_id) + " does not match " +
         hex32(expected_tx) + " sent (" + std::to_string(d.size()) + "-byte " +
         action_name(h->action) + " reply)";
}

result<connect_reply> parse_connect(std::string_view d, std::uint32_t expected_tx) {
  if (auto s = check_reply(d, expected_tx, action::connect); !s)
    return s.error();
  // BEP 15: "at least 16 bytes"; bytes beyond are ignored as the BEP asks of extensions.
  if (d.size() < connect_reply_size)
    return bad("connect reply of " + std::to_string(d.size()) + " bytes, expected " +
               std::to_string(connect_reply_size) + " (connection id missing at byte 8)");
  return connect_reply{get64(d, 8)};
}

result<announce_reply> parse_announce(std::string_view d, std::uint32_t expected_tx,
                                      std::size_t max_peers, bool ipv6) {
  if (auto s = check_reply(d, expected_tx, action::announce); !s)
    return s.error();
  if (d.size() < announce_reply_fixed)
    return bad("announce reply of " + std::to_string(d.size()) + " bytes is shorter than its " +
               std::to_string(announce_reply_fixed) + "-byte fixed part");
  auto list = d.size() - announce_reply_fixed;
  const std::size_t addr_size = ipv6 ? 16 : 4;
  const std::size_t peer_entry_size = addr_size + 2;
  if (list % peer_entry_size != 0)
    return bad("announce reply: peer list of " + std::to_string(list) + " bytes (from byte " +
               std::to_string(announce_reply_fixed) + ") is not a multiple of " +
               std::to_string(peer_entry_size));
  announce_reply r;
  r.interval = get32(d, 8);
  r.leechers = get32(d, 12);
  r.seeders = get32(d, 16);
  r.peers.reserve(std::min(list / peer_entry_size, max_peers));
  r.dropped_peers =
    tracker::decode_compact_peers(d.substr(announce_reply_fixed), ipv6, r.peers, max_peers);
  return r;
}

result<std::vector<scrape_entry>> parse_scrape(std::string_view d, std::uint32_t expected_tx,
                                               std::size_t expected_count) {
  if (auto s = check_reply(d, expected_tx, action::scrape); !s)
    return s.error();
  auto body = d.size() - header_size;
  if (body % scrape_entry_size != 0 || body / scrape_entry_size != expected_count)
    return bad("scrape reply of " + std::to_string(d.size()) + " bytes, expected " +
               std::to_string(header_size + expected_count * scrape_entry_size) + " for " +
               std::to_string(expected_count) + " hashes");
  std::vector<scrape_entry> out(expected_count);
  for (std::size_t i = 0; i < expected_count; ++i) {
    auto at = header_size + i * scrape_entry_size;
    out[i] = scrape_entry{get32(d, at), get32(d, at + 4), get32(d, at + 8)};
  }
  return out;
}

} // namespace actorrent::udp_tracker
