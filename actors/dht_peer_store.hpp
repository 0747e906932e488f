// Peers announced to us with announce_peer (BEP 5), served to get_peers. Bounded per info-hash
// and in total, so a flood of announces costs a fixed amount of memory; entries expire after
// 30 minutes without a new announce. Owned by the DHT actor; CAF-free.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <vector>

#include "protocol/krpc.hpp"

namespace actorrent::dht {

class peer_store {
public:
  using clock_type = std::chrono::steady_clock;

  struct limits {
    std::size_t per_hash = 200;  // peers kept per info-hash (the oldest goes)
    std::size_t hashes = 1000;   // info-hashes kept (past this the least recent one goes)
    std::chrono::minutes ttl{30};
  };

  peer_store() = default;
  explicit peer_store(limits lim) : lim_(lim) {}

  /// Records `peer` for `hash` (one entry per IP, loopback apart). Always accepted: a full
  /// store forgets the hash announced least recently.
  bool announce(const info_hash& hash, const krpc::udp_endpoint& peer, clock_type::time_point now);
  /// At most `max` live peers of `hash`, newest first.
  std::vector<krpc::udp_endpoint> peers(const info_hash& hash, std::size_t max,
                                        clock_type::time_point now) const;
  /// Drops entries older than the ttl (and hashes left empty).
  void expire(clock_type::time_point now);

  std::size_t hash_count() const { return by_hash_.size(); }
  std::size_t peer_count() const;

private:
  struct entry {
    krpc::udp_endpoint ep;
    clock_type::time_point at;
  };
  limits lim_;
  std::map<info_hash, std::vector<entry>> by_hash_;
  clock_type::time_point last_expire_{};
};

} // namespace actorrent::dht
