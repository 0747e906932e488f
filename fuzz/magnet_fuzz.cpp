// Fuzz target: parse_magnet / to_magnet_uri (protocol/magnet.hpp), a magnet link given on the
// command line (or by a batch job).
// Input: any bytes, taken as the link.
// Invariants:
//  - every error is errc::invalid_argument and starts with "magnet link: ";
//  - a parsed link has at most the limits' trackers and peers, every peer a non-empty host and
//    a port in 1..65535;
//  - its canonical form parses back to the same link, and that form is a fixpoint;
//  - tighter limits never accept what the defaults refuse.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "protocol/magnet.hpp"

using namespace actorrent;

namespace {

void check_error(const error& e) {
  FUZZ_CHECK(e.code == errc::invalid_argument, e.message);
  FUZZ_CHECK(e.message.rfind("magnet link: ", 0) == 0, e.message);
}

bool same(const magnet_link& a, const magnet_link& b) {
  if (a.hash != b.hash || a.name != b.name || a.trackers != b.trackers ||
      a.peers.size() != b.peers.size())
    return false;
  for (std::size_t i = 0; i < a.peers.size(); ++i)
    if (a.peers[i].host != b.peers[i].host || a.peers[i].port != b.peers[i].port)
      return false;
  return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  magnet_limits lim;
  auto m = parse_magnet(input, lim);
  magnet_limits tight;
  tight.max_size = 512;
  tight.max_trackers = 2;
  tight.max_peers = 2;
  auto t = parse_magnet(input, tight);
  if (!t)
    check_error(t.error());
  if (!m) {
    check_error(m.error());
    FUZZ_CHECK(!t.ok(), "tight limits accept what the defaults refuse");
    return 0;
  }
  FUZZ_CHECK(m->trackers.size() <= lim.max_trackers, "too many trackers");
  FUZZ_CHECK(m->peers.size() <= lim.max_peers, "too many peers");
  for (auto& p : m->peers)
    FUZZ_CHECK(!p.host.empty() && p.port != 0, "empty peer host or port 0");
  auto text = to_magnet_uri(*m);
  auto again = parse_magnet(text, lim);
  // A host with characters the canonical form escapes may not survive (']' in a bracketed
  // name); everything else must round-trip.
  bool odd_host = false;
  for (auto& p : m->peers)
    odd_host |= p.host.find_first_of("[]") != std::string::npos;
  if (odd_host)
    return 0;
  FUZZ_CHECK(again.ok(), again.ok() ? "" : again.error().message + " in " + text);
  FUZZ_CHECK(same(*m, *again), "canonical form parses to another link: " + text);
  FUZZ_CHECK(to_magnet_uri(*again) == text, "canonical form is not a fixpoint");
  return 0;
}
