// The peers a torrent knows of (from trackers, --peer and peers that joined), what each one is
// doing (idle, connecting, connected, banned), when an idle one may be dialled again, how many
// connections each address holds, and the memory of peers that left or were banned. Owned by
// the torrent actor; CAF-free.
//
//   idle --dial--> connecting --handshake--> connected
//    ^                 |                         |
//    +----backoff------+--------closed-----------+        any --ban / misbehaved--> banned
//    +-----------------+---release (we close it)-+  at once: a resume redials it
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "actors/endpoint.hpp"
#include "protocol/types.hpp"

namespace actorrent {

class peer_list {
public:
  using clock = std::chrono::steady_clock;
  static constexpr std::size_t no_entry = SIZE_MAX;

  enum class state : std::uint8_t { idle, connecting, connected, banned };

  struct known_peer {
    endpoint ep;
    state st = state::idle;
    std::uint32_t attempts = 0;   // dials since it last completed a handshake
    clock::time_point next_try{}; // not dialled before
  };

  /// A peer gone after sending blocks: a later verdict may still name it as a liar, and must
  /// then reach its address and id.
  struct departed_peer {
    endpoint ep;
    std::size_t known = no_entry;
    peer_id id{};
  };

  explicit peer_list(std::size_t max_known = 2000, std::size_t max_departed = 4096)
    : max_known_(max_known), max_departed_(max_departed) {}

  // -- known addresses ----------------------------------------------------------------------
  /// Remembers an address to dial. False for port 0, a duplicate, or when the list is full
  /// (what a tracker can make us remember is bounded before any work).
  bool add(const endpoint& ep);
  std::size_t size() const noexcept { return known_.size(); }
  const known_peer& at(std::size_t i) const { return known_[i]; }

  /// Known peers to dial now: idle, due, and under `max_per_ip` connections to their address
  /// (counting the ones chosen here). Each is marked connecting and counts a dial attempt;
  /// the caller opens the connection (connection_opened) for every one it is given.
  std::vector<std::size_t> take_dials(clock::time_point now, std::size_t limit,
                                      std::uint32_t max_per_ip);
  /// The dialled peer `i` completed its handshake.
  void on_connected(std::size_t i);
  /// The connection to known peer `i` ended. `was_active`: it had completed its handshake (the
  /// backoff starts over at 5 s); otherwise the backoff doubles per failed dial (2 .. 60 s).
  /// `ban`: never dial it again. A peer banned meanwhile stays banned.
  void on_closed(std::size_t i, bool was_active, bool ban, clock::time_point now);
  void ban(std::size_t i) { known_[i].st = state::banned; }
  /// We are closing the connection to known peer `i` ourselves (a pause): it is idle and may be
  /// dialled again at once, without waiting for the close to complete. Its on_closed is then
  /// not called (but for a ban).
  void release(std::size_t i, clock::time_point now);
  /// Every idle peer may be dialled at `now` (a resumed torrent does not wait out the backoff
  /// of the connections its pause closed).
  void reset_backoff(clock::time_point now);

  // -- connections per address (dialled and accepted) ---------------------------------------
  void connection_opened(const std::string& host) { ++per_ip_[host]; }
  void connection_closed(const std::string& host);
  std::uint32_t connections_from(const std::string& host) const;

  // -- bans and departed peers --------------------------------------------------------------
  void ban_id(const peer_id& id) { banned_ids_.insert(id); }
  bool banned_id(const peer_id& id) const { return banned_ids_.count(id) != 0; }
  /// Remembers a peer that left (the latest max_departed ones).
  void remember_departed(peer_slot slot, departed_peer p);
  const departed_peer* departed(peer_slot slot) const;
  std::optional<departed_peer> take_departed(peer_slot slot);

private:
  std::size_t max_known_;
  std::size_t max_departed_;
  std::vector<known_peer> known_;
  std::unordered_set<std::string> known_index_; // "host:port" of every entry of known_
  std::unordered_map<std::string, std::uint32_t> per_ip_;
  std::set<peer_id> banned_ids_; // refused when they connect again
  std::unordered_map<peer_slot, departed_peer> departed_;
  std::deque<peer_slot> departed_order_; // oldest first
};

} // namespace actorrent
