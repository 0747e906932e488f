// Fuzz target: tracker::parse_announce_response and parse_scrape_response (protocol/tracker.hpp),
// plus url_encode and build_scrape_url.
// Input: the body of an HTTP tracker's announce or scrape reply (and, for the URL functions,
// its first bytes).
// Invariants:
//  - errors are tracker_failure (exactly when the reply has a string "failure reason", whose
//    text it carries), tracker_response or bencode_*, with any byte offset inside the body;
//  - every peer has a non-empty address and a non-zero port; compact peers are real IPv4/IPv6
//    addresses; there are never more peers than the reply lists;
//  - the result depends only on the decoded value: the canonical re-encoding of the body
//    (sorted keys, canonical integers) parses to the same response or the same error code;
//  - url_encode output uses only unreserved characters and %XX, and decodes to its input;
//  - a scrape reply (asked for the first 20-byte key of its "files", else a fixed hash) is
//    accepted exactly when that entry is a dictionary with non-negative integers "complete" and
//    "incomplete" (and "downloaded", when present) and no "failure reason"; errors have the
//    announce parser's codes and offsets; the canonical re-encoding gives the same result;
//  - build_scrape_url accepts only a URL whose last path segment begins with "announce", and
//    then keeps everything before it and ends with the url-encoded info_hash.
#include <arpa/inet.h>

#include <algorithm>
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

/// The codes a reply parser may fail with.
bool reply_error_code(errc c) {
  return c == errc::tracker_failure || c == errc::tracker_response || c == errc::bencode_syntax ||
         c == errc::bencode_limit || c == errc::bencode_noncanonical;
}

void check_scrape(std::string_view body, const bencode::limits& lim) {
  info_hash hash{};
  hash.fill(0x5a);
  auto decoded = bencode::decode(body, lim, true);
  const bencode::value* files = decoded.ok() && decoded->is_dict() ? decoded->find("files")
                                                                    : nullptr;
  if (files != nullptr && files->is_dict() && !files->as_dict().empty() &&
      files->as_dict().begin()->first.size() == hash.size())
    std::copy_n(files->as_dict().begin()->first.begin(), hash.size(), hash.begin());
  auto r = parse_scrape_response(body, hash);
  const bencode::value* failure =
    decoded.ok() && decoded->is_dict() ? decoded->find("failure reason") : nullptr;
  if (!r.ok()) {
    const auto& e = r.error();
    FUZZ_CHECK(reply_error_code(e.code), e.message);
    FUZZ_CHECK((e.code == errc::tracker_failure) ==
                 (failure != nullptr && failure->is_string()),
               "scrape: tracker_failure exactly for a failure reason");
    const long long at = actorrent_fuzz::byte_offset(e.message);
    FUZZ_CHECK(at <= static_cast<long long>(body.size()), e.message);
  } else {
    FUZZ_CHECK(failure == nullptr, "scrape: failure reason ignored");
    FUZZ_CHECK(files != nullptr && files->is_dict(), "scrape: accepted without files");
    const auto* entry = files->find(
      std::string_view(reinterpret_cast<const char*>(hash.data()), hash.size()));
    FUZZ_CHECK(entry != nullptr && entry->is_dict(), "scrape: accepted without an entry");
    for (const char* key : {"complete", "incomplete"}) {
      const auto* v = entry->find(key);
      FUZZ_CHECK(v != nullptr && v->is_int() && v->as_int() >= 0, "scrape: bad count accepted");
    }
    const auto* c = entry->find("complete");
    FUZZ_CHECK(c->as_int() > 0xffffffffLL || static_cast<std::uint32_t>(c->as_int()) == r->complete,
               "scrape: complete differs");
  }
  if (decoded.ok()) {
    auto again = parse_scrape_response(bencode::encode(*decoded), hash);
    FUZZ_CHECK(again.ok() == r.ok(), "scrape: canonical re-encoding changes acceptance");
    if (r.ok())
      FUZZ_CHECK(again->complete == r->complete && again->incomplete == r->incomplete &&
                   again->downloaded == r->downloaded,
                 "scrape: canonical re-encoding changes the counts");
  }
}

void check_scrape_url(std::string_view url) {
  info_hash hash{};
  hash.fill(0xa5);
  auto r = build_scrape_url(url, hash);
  const auto query = url.find('?');
  const auto path_part = url.substr(0, query);
  const auto slash = path_part.rfind('/');
  if (!r.ok()) {
    FUZZ_CHECK(r.error().code == errc::invalid_argument, r.error().message);
    return;
  }
  FUZZ_CHECK(slash != std::string_view::npos &&
               path_part.substr(slash + 1).rfind("announce", 0) == 0,
             "scrape URL from a last segment that is not announce*");
  FUZZ_CHECK(r->compare(0, slash + 1, url.substr(0, slash + 1)) == 0 &&
               r->compare(slash + 1, 6, "scrape") == 0,
             "scrape URL does not keep the prefix");
  const std::string tail = "info_hash=" + url_encode(std::string_view(
                                            reinterpret_cast<const char*>(hash.data()), 20));
  FUZZ_CHECK(r->size() >= tail.size() && r->compare(r->size() - tail.size(), tail.size(), tail) == 0,
             "scrape URL does not end with the info_hash");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  check_url_encode(body.substr(0, 256));
  check_scrape_url(body.substr(0, 256));

  auto r = parse_announce_response(body);
  // The decoded form, as the parser sees it (lenient, with the parser's limits).
  bencode::limits lim;
  lim.max_total = 4u << 20;
  lim.max_string = 4u << 20;
  lim.max_depth = 16;
  lim.max_items = 2u << 20;
  auto decoded = bencode::decode(body, lim, true);
  const bencode::value* failure = decoded.ok() ? decoded->find("failure reason") : nullptr;
  {
    bencode::limits scrape_lim;
    scrape_lim.max_total = scrape_lim.max_string = 1u << 20;
    scrape_lim.max_depth = 8;
    scrape_lim.max_items = 1u << 19;
    check_scrape(body, scrape_lim);
  }

  if (!r.ok()) {
    const auto& e = r.error();
    FUZZ_CHECK(reply_error_code(e.code), e.message);
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
