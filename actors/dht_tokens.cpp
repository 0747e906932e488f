#include "actors/dht_tokens.hpp"

#include "actors/dht_routing_table.hpp"
#include "protocol/sha1.hpp"

namespace actorrent::dht {

token_manager::token_manager(clock_type::time_point now)
    : current_(random_node_id()), previous_(random_node_id()), rotated_at_(now) {}

void token_manager::rotate_if_due(clock_type::time_point now) {
  if (now - rotated_at_ < rotation)
    return;
  // Idle for more than two periods: both secrets are stale, nothing made before is valid.
  previous_ = now - rotated_at_ >= 2 * rotation ? random_node_id() : current_;
  current_ = random_node_id();
  rotated_at_ = now;
}

std::string token_manager::hash(const std::array<std::uint8_t, 20>& secret,
                                 const krpc::udp_endpoint& ip) const {
  std::string input(secret.begin(), secret.end());
  input.append(ip.ip.begin(), ip.ip.end());
  auto digest = sha1(input);
  return std::string(digest.begin(), digest.begin() + token_size);
}

std::string token_manager::make(const krpc::udp_endpoint& ip, clock_type::time_point now) {
  rotate_if_due(now);
  return hash(current_, ip);
}

bool token_manager::check(std::string_view token, const krpc::udp_endpoint& ip,
                          clock_type::time_point now) {
  rotate_if_due(now);
  if (token.size() != token_size)
    return false;
  return token == hash(current_, ip) || token == hash(previous_, ip);
}

} // namespace actorrent::dht
