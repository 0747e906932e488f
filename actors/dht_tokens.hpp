// Write tokens of the DHT (BEP 5): a get_peers answer carries a token that the asker must hand
// back in announce_peer, proving that it receives packets at its address. A token is a hash of
// the asker's IP and a secret that rotates every 5 minutes; the previous secret is still
// accepted, so a token lives 5 to 10 minutes. Owned by the DHT actor; CAF-free.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/krpc.hpp"

namespace actorrent::dht {

class token_manager {
public:
  using clock_type = std::chrono::steady_clock;
  static constexpr std::chrono::minutes rotation{5};
  static constexpr std::size_t token_size = 8;

  explicit token_manager(clock_type::time_point now = clock_type::now());

  /// The token for `ip` (the port is not part of it: BEP 5 ties tokens to the address).
  std::string make(const krpc::udp_endpoint& ip, clock_type::time_point now);
  /// Whether `token` was made for `ip` under the current or the previous secret.
  bool check(std::string_view token, const krpc::udp_endpoint& ip, clock_type::time_point now);

private:
  void rotate_if_due(clock_type::time_point now);
  std::string hash(const std::array<std::uint8_t, 20>& secret, const krpc::udp_endpoint& ip) const;

  std::array<std::uint8_t, 20> current_{};
  std::array<std::uint8_t, 20> previous_{};
  clock_type::time_point rotated_at_;
};

} // namespace actorrent::dht
