// Fuzz target: tracker::parse_announce_response (protocol/tracker.hpp), plus url_encode.
// Input: the body of an HTTP tracker's announce reply.
// Invariants:
//  - errors are tracker_failure (exactly when the reply has a string "failure reason", whose
//    text it carries), tracker_response or bencode_*, with any byte offset inside the body;
//  - every peer has a non-empty address and a non-zero port; compact peers are real IPv4/IPv6
//    addresses; there are never more peers than the reply lists;
//  - the result depends only on the decoded value: the canonical re-encoding of the body
//    (sorted keys, canonical integers) parses to the same response or the same error code;
//  - url_encode output uses only unreserved characters and %XX, and decodes to its input.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "protocol/bencode.hpp"
#include "protocol/tracker.hpp"

using namespace actorrent;
using namespace actorrent::tracker;

namespace {

bool same(const announce_response& a, const announce_response& b) {
  return a.interval == b.interval && a.min_interval == b.min_interval &&
         a.complete == b.complete && a.incomplete == b.incomplete && a.warning == b.warning &&
         a.tracker_id == b.tracker_id && a.peers == b.peers;
}

int hex(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

void check_url_encode(std::string_view bytes) {
  const std::string enc = url_encode(bytes);
  std::string dec;
  for (std::size_t i = 0; i < enc.size(); ++i) {
    const char c = enc[i];
    if (c == '%') {
      FUZZ_CHECK(i + 2 < enc.size() && hex(enc[i + 1]) >= 0 && hex(enc[i + 2]) >= 0,
                 "bad percent escape");
      dec.push_back(static_cast<char>(hex(enc[i + 1]) * 16 + hex(enc[i + 2])));
      i += 2;
      continue;
    }
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                            c == '~';
    FUZZ_CHECK(unreserved, "reserved character left unescaped");
    dec.push_back(c);
  }
  FUZZ_CHECK(dec == bytes, "url_encode does not decode to its input");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  check_url_encode(body.substr(0, 256));

  auto r = parse_announce_response(body);
  // The decoded form, as the parser sees it (lenient, with the parser's limits).
  bencode::limits lim;
  lim.max_total = 4u << 20;
  lim.max_string = 4u << 20;
  lim.max_depth = 16;
  lim.max_items = 2u << 20;
  auto decoded = bencode::decode(body, lim, true);
  const bencode::value* failure = decoded.ok() ? decoded->find("failure reason") : nullptr;

  if (!r.ok()) {
    const auto& e = r.error();
    FUZZ_CHECK(e.code == errc::tracker_failure || e.code == errc::tracker_response ||
                   e.code == errc::bencode_syntax || e.code == errc::bencode_limit ||
                   e.code == errc::bencode_noncanonical,
               e.message);
    if (e.code == errc::tracker_failure) {
      FUZZ_CHECK(failure != nullptr && failure->is_string() && failure->as_string() == e.message,
                 "tracker_failure without that failure reason");
    } else {
      FUZZ_CHECK(failure == nullptr || !failure->is_string(),
                 "failure reason not reported as tracker_failure");
      const long long at = actorrent_fuzz::byte_offset(e.message);
      FUZZ_CHECK(at <= static_cast<long long>(size), e.message);
      if (e.code != errc::tracker_response)
        FUZZ_CHECK(at >= 0, "bencode error without a byte offset: " + e.message);
    }
  } else {
    FUZZ_CHECK(decoded.ok() && decoded->is_dict(), "accepted a reply that is not a dictionary");
    FUZZ_CHECK(failure == nullptr, "failure reason ignored");
    std::size_t listed = 0;
    for (const char* key : {"peers", "peers6"}) {
      if (const auto* p = decoded->find(key)) {
        if (p->is_string())
          listed += p->as_string().size() / (key[5] == '6' ? 18 : 6);
        else if (p->is_list())
          listed += p->as_list().size();
      }
    }
    FUZZ_CHECK(r->peers.size() <= listed, "more peers than the reply lists");
    for (const auto& peer : r->peers) {
      FUZZ_CHECK(!peer.ip.empty() && peer.port != 0, "peer without address or port");
    }
    // Compact entries come out as addresses inet_pton understands (dictionary peers carry
    // whatever text the tracker sent, so only check when there are none).
    if (const auto* p = decoded->find("peers"); p == nullptr || !p->is_list()) {
      unsigned char buf[16];
      for (const auto& peer : r->peers)
        FUZZ_CHECK(inet_pton(AF_INET, peer.ip.c_str(), buf) == 1 ||
                       inet_pton(AF_INET6, peer.ip.c_str(), buf) == 1,
                   "compact peer is not an IP address: " + peer.ip);
    }
  }

  // Only the decoded value matters, not how it was spelled.
  if (decoded.ok()) {
    const std::string canonical = bencode::encode(*decoded);
    auto again = parse_announce_response(canonical);
    FUZZ_CHECK(again.ok() == r.ok(), "canonical re-encoding changes acceptance");
    if (r.ok())
      FUZZ_CHECK(same(*r, *again), "canonical re-encoding changes the response");
    else
      FUZZ_CHECK(again.error().code == r.error().code &&
                     (r.error().code != errc::tracker_failure ||
                      again.error().message == r.error().message),
                 "canonical re-encoding changes the error");
  }
  return 0;
}
