// Fuzz target: the UDP tracker codec (protocol/udp_tracker.hpp): parse_header, parse_connect,
// parse_announce, parse_scrape and parse_url.
// Input: one datagram from a UDP tracker (also read as a tracker URL).
// Invariants:
//  - every error message starts "udp tracker: "; tracker_failure exactly for the error action
//    (3) with a matching transaction id, its text bounded; anything else is tracker_response;
//  - a reply is parsed only for its own transaction id: another id is always refused;
//  - connect: accepted exactly for action 0 and at least 16 bytes, the id is bytes 8-15;
//  - announce: accepted exactly for action 1, 20 bytes + a multiple of 6 (18 over IPv6); kept
//    + dropped + port-0 entries = the entries listed, kept <= the bound, every kept peer is an
//    IPv4 (IPv6) address equal to its bytes with a non-zero port;
//  - scrape: accepted exactly for action 2 and 8 + 12 * count bytes;
//  - parse_url: an accepted URL starts with udp://, has a host and a port in 1..65535.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "protocol/udp_tracker.hpp"

using namespace actorrent;
using namespace actorrent::udp_tracker;

namespace {

std::uint32_t be32(std::string_view s, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i)
    v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

bool prefixed(const error& e) { return e.message.rfind("udp tracker: ", 0) == 0; }

template <class T>
void check_error(const result<T>& r, std::string_view d, std::uint32_t action) {
  if (r)
    return;
  FUZZ_CHECK(prefixed(r.error()), r.error().message);
  bool failure = r.error().code == errc::tracker_failure;
  FUZZ_CHECK(failure == (d.size() >= 8 && action == 3), r.error().message);
  FUZZ_CHECK(failure || r.error().code == errc::tracker_response, r.error().message);
  FUZZ_CHECK(r.error().message.size() < 64 + 4 * 256, "error text not bounded");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view d(reinterpret_cast<const char*>(data), size);
  auto h = parse_header(d);
  FUZZ_CHECK(h.ok() == (size >= 8), "header accepted iff 8 bytes");
  std::uint32_t action = size >= 8 ? h->action : 0;
  std::uint32_t tx = size >= 8 ? h->transaction_id : 0;

  // Another transaction's datagram is never accepted, whatever it says.
  if (size >= 8) {
    auto other = parse_announce(d, tx + 1);
    FUZZ_CHECK(!other && other.error().code == errc::tracker_response &&
                 other.error().message.find("transaction id") != std::string::npos,
               "a datagram of another transaction was not refused as such");
    auto other_connect = parse_connect(d, tx ^ 0x80000000u);
    FUZZ_CHECK(!other_connect, "connect reply of another transaction accepted");
  }

  auto c = parse_connect(d, tx);
  check_error(c, d, action);
  FUZZ_CHECK(c.ok() == (size >= 16 && action == 0), "connect accepted wrongly");
  if (c)
    FUZZ_CHECK(c->connection_id == ((std::uint64_t{be32(d, 8)} << 32) | be32(d, 12)),
               "connection id");

  std::size_t bound = size > 0 ? 1 + data[0] % 8 : 1;
  for (int variant = 0; variant < 3; ++variant) {
    const std::size_t max_peers = variant == 1 ? bound : default_max_peers;
    const bool ipv6 = variant == 2;
    const std::size_t entry = ipv6 ? 18 : 6, addr_size = entry - 2;
    auto a = parse_announce(d, tx, max_peers, ipv6);
    check_error(a, d, action);
    bool shape = size >= 20 && (size - 20) % entry == 0;
    FUZZ_CHECK(a.ok() == (action == 1 && shape), "announce accepted wrongly");
    if (!a)
      continue;
    std::size_t listed = (size - 20) / entry, port_zero = 0;
    for (std::size_t i = 0; i < listed; ++i)
      port_zero += d[20 + entry * i + addr_size] == 0 && d[20 + entry * i + addr_size + 1] == 0;
    FUZZ_CHECK(a->peers.size() + a->dropped_peers + port_zero == listed, "peers lost");
    FUZZ_CHECK(a->peers.size() <= max_peers, "peer bound exceeded");
    FUZZ_CHECK(a->interval == be32(d, 8) && a->leechers == be32(d, 12) &&
                 a->seeders == be32(d, 16),
               "counts");
    for (const auto& p : a->peers) {
      FUZZ_CHECK(p.port != 0, "port 0 kept");
      in6_addr addr{};
      FUZZ_CHECK(inet_pton(ipv6 ? AF_INET6 : AF_INET, p.ip.c_str(), &addr) == 1, p.ip);
    }
    // The first kept peer is the first listed entry with a port, address for address.
    for (std::size_t i = 0; i < listed && !a->peers.empty(); ++i) {
      auto at = 20 + entry * i;
      if (d[at + addr_size] == 0 && d[at + addr_size + 1] == 0)
        continue;
      unsigned char addr[16] = {};
      inet_pton(ipv6 ? AF_INET6 : AF_INET, a->peers[0].ip.c_str(), addr);
      FUZZ_CHECK(std::memcmp(addr, d.data() + at, addr_size) == 0,
                 "peer address differs from its bytes");
      break;
    }
  }

  if (size >= 8) {
    auto count = (size - 8) / 12;
    auto s = parse_scrape(d, tx, count);
    check_error(s, d, action);
    FUZZ_CHECK(s.ok() == (action == 2 && (size - 8) % 12 == 0), "scrape accepted wrongly");
    if (s)
      FUZZ_CHECK(s->size() == count, "scrape entries");
  }

  auto u = parse_url(d);
  if (u) {
    FUZZ_CHECK(d.rfind("udp://", 0) == 0 && !u->host.empty() && u->port != 0, "url");
  } else {
    FUZZ_CHECK(prefixed(u.error()) && u.error().code == errc::tracker_response,
               u.error().message);
  }
  return 0;
}
