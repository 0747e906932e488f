// HTTP tracker protocol (BEP 3 announce, BEP 23 compact peers, BEP 7 peers6, BEP 48 scrape):
// building the announce and scrape URLs and parsing the replies. Transport (libcurl) lives in
// actors/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.hpp"
#include "protocol/types.hpp"

namespace actorrent::tracker {

enum class event : std::uint8_t { none, started, completed, stopped };

struct announce_request {
  std::string url;          // the tracker's announce URL; may already contain a query string
  info_hash hash{};
  peer_id id{};
  std::uint16_t port = 0;
  std::uint64_t uploaded = 0;
  std::uint64_t downloaded = 0;
  std::uint64_t left = 0;
  event ev = event::none;
  std::uint32_t numwant = 50;
  std::string key;          // optional
  std::string tracker_id;   // optional, echoed from a previous reply
};

/// Percent-encodes every byte except unreserved characters (RFC 3986: A-Z a-z 0-9 - . _ ~).
std::string url_encode(std::string_view bytes);

/// The full announce URL: url + ('?' or '&') + info_hash, peer_id, port, uploaded, downloaded,
/// left, compact=1, numwant, event (omitted for none), key, trackerid (when set).
std::string build_announce_url(const announce_request& req);

struct peer_endpoint {
  std::string ip;           // dotted IPv4 or IPv6 text
  std::uint16_t port = 0;
  friend bool operator==(const peer_endpoint& a, const peer_endpoint& b) {
    return a.ip == b.ip && a.port == b.port;
  }
};

/// Appends the peers of a compact list to `out` (BEP 23: 4-byte IPv4 address + port; BEP 7, and
/// BEP 15 over IPv6: 16-byte address + port), leaving out port-0 entries; keeps at most
/// `max_peers` and returns how many more were listed. A trailing partial entry is ignored:
/// callers check the length first, to name it in their error. Shared by HTTP and UDP trackers.
std::size_t decode_compact_peers(std::string_view list, bool ipv6, std::vector<peer_endpoint>& out,
                                 std::size_t max_peers = static_cast<std::size_t>(-1));

struct announce_response {
  std::uint32_t interval = 1800;
  std::uint32_t min_interval = 0;  // 0 when absent
  std::uint32_t complete = 0;
  std::uint32_t incomplete = 0;
  std::string warning;
  std::string tracker_id;
  std::vector<peer_endpoint> peers;
};

/// Parses an announce reply body. "failure reason" becomes errc::tracker_failure with the
/// tracker's text; malformed bencoding or fields errc::tracker_response / bencode_* with the
/// byte offset. Peers may be compact (6 bytes each, BEP 23) or a list of dictionaries; "peers6"
/// (18 bytes each) is appended. Entries with port 0 are dropped. Limits: body <= 4 MiB.
result<announce_response> parse_announce_response(std::string_view body);

/// BEP 48: the scrape URL of an announce URL. The last path segment must begin with "announce"
/// ("/announce", "/x/announce.php"); that word becomes "scrape" and "info_hash=" (url-encoded)
/// is appended to the query. Any other URL cannot be scraped: errc::invalid_argument, "cannot
/// scrape: " and why.
result<std::string> build_scrape_url(std::string_view announce_url, const info_hash& hash);

/// One torrent's counts in a scrape reply.
struct scrape_response {
  std::uint32_t complete = 0;   // seeders
  std::uint32_t incomplete = 0; // leechers
  std::uint32_t downloaded = 0; // completed downloads ever reported
};

/// Parses a scrape reply body (BEP 48): a dictionary whose "files" maps 20-byte info-hashes to
/// {complete, incomplete, downloaded}; the entry for `hash` is returned. "failure reason" is
/// errc::tracker_failure; a missing entry, a missing or negative count, or anything malformed
/// errc::tracker_response / bencode_* naming the byte offset. "downloaded" may be absent (0).
/// Limits: body <= 1 MiB, nesting <= 8.
result<scrape_response> parse_scrape_response(std::string_view body, const info_hash& hash);

} // namespace actorrent::tracker
