// UDP tracker protocol (BEP 15): encoding connect / announce (IPv4) / scrape requests and
// parsing the tracker's datagrams strictly, with bounded peer lists. Pure codec: the socket,
// the retransmissions and the connection id's lifetime are driven by actors/tracker_actor.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.hpp"
#include "protocol/tracker.hpp"
#include "protocol/types.hpp"

namespace actorrent::udp_tracker {

/// BEP 15: the magic constant a connect request carries in place of a connection id.
inline constexpr std::uint64_t protocol_id = 0x41727101980ull;
/// BEP 15: a connection id may be used for one minute after it was received.
inline constexpr std::chrono::seconds connection_id_lifetime{60};
/// BEP 15: a request is retransmitted after 15 * 2^n seconds, n = 0..8, then given up.
inline constexpr std::uint32_t max_retransmit_exponent = 8;
/// BEP 15: a scrape request carries at most 74 info-hashes (one datagram of at most 1500 bytes).
inline constexpr std::size_t max_scrape_hashes = 74;
/// Peers kept from one announce reply; the rest of a longer list is dropped (and counted).
inline constexpr std::size_t default_max_peers = 200;

enum class action : std::uint32_t { connect = 0, announce = 1, scrape = 2, error = 3 };

/// How long to wait for the answer to transmission `n` (0 for the first): base * 2^min(n, 8).
/// BEP 15's base is 15 s.
std::chrono::milliseconds retransmit_timeout(std::chrono::milliseconds base, std::uint32_t n);

/// "udp://HOST:PORT[/PATH]" (HOST may be "[v6]"); the path (BEP 41) is ignored.
struct tracker_address {
  std::string host;
  std::uint16_t port = 0;
};
result<tracker_address> parse_url(std::string_view url);

struct announce_params {
  info_hash hash{};
  peer_id id{};
  std::uint64_t downloaded = 0;
  std::uint64_t left = 0;
  std::uint64_t uploaded = 0;
  tracker::event ev = tracker::event::none;
  std::uint32_t key = 0;
  std::int32_t num_want = -1; // -1: the tracker's default
  std::uint16_t port = 0;
};

/// The 16-byte connect request.
std::string encode_connect(std::uint32_t transaction_id);
/// The 98-byte IPv4 announce request (IP address 0: the sender's).
std::string encode_announce(std::uint64_t connection_id, std::uint32_t transaction_id,
                            const announce_params& p);
/// A scrape request (`actorrent scrape`, through actors/tracker_actor's scrape_trackers); at
/// most max_scrape_hashes hashes (more: only the first 74 are sent).
std::string encode_scrape(std::uint64_t connection_id, std::uint32_t transaction_id,
                          const std::vector<info_hash>& hashes);

struct connect_reply {
  std::uint64_t connection_id = 0;
};

struct announce_reply {
  std::uint32_t interval = 0;
  std::uint32_t leechers = 0;
  std::uint32_t seeders = 0;
  std::vector<tracker::peer_endpoint> peers; // at most max_peers, port 0 entries left out
  std::size_t dropped_peers = 0;             // listed beyond max_peers
};

struct scrape_entry {
  std::uint32_t seeders = 0;
  std::uint32_t completed = 0;
  std::uint32_t leechers = 0;
};

/// A datagram's header: the action and the transaction id it answers. Fails (tracker_response)
/// when shorter than 8 bytes.
struct reply_header {
  std::uint32_t action = 0;
  std::uint32_t transaction_id = 0;
};
result<reply_header> parse_header(std::string_view datagram);

/// BEP 15: a datagram answering another transaction (a late reply to an earlier request, or
/// junk) is to be ignored, not taken as this request's failure. Returns its description ("udp
/// tracker: transaction id ... does not match ... sent (16-byte connect reply)"), or nothing
/// when the datagram's header carries `expected_tx` (or is too short to carry any).
std::optional<std::string> other_transaction(std::string_view datagram,
                                             std::uint32_t expected_tx);

// Each parser checks, in order: the 8-byte header; the transaction id against `expected_tx`
// (a datagram for another request: tracker_response, "transaction id ..."); an error action
// (tracker_failure carrying the tracker's message, escaped); the action; the exact length.
// Every message starts "udp tracker: " and names the byte offset or the sizes involved.
result<connect_reply> parse_connect(std::string_view datagram, std::uint32_t expected_tx);
/// `ipv6`: the request went over IPv6, so peers are 18 bytes each (16-byte address + port), as
/// BEP 15 specifies; otherwise 6 (IPv4).
result<announce_reply> parse_announce(std::string_view datagram, std::uint32_t expected_tx,
                                      std::size_t max_peers = default_max_peers,
                                      bool ipv6 = false);
/// One entry per hash asked for, in order (`expected_count` of them: a reply with fewer or
/// more, or a trailing partial entry, is refused).
result<std::vector<scrape_entry>> parse_scrape(std::string_view datagram,
                                               std::uint32_t expected_tx,
                                               std::size_t expected_count);

} // namespace actorrent::udp_tracker
