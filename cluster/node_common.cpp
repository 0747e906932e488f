#include "cluster/node_common.hpp"

#include <chrono>
#include <cstdlib>

#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cluster/frame.hpp"
#include "cluster/wire.hpp"

namespace actorrent::cluster {

std::uint32_t sending_version() {
  if (const char* v = std::getenv("ACTORRENT_CLUSTER_PROTOCOL_VERSION")) {
    char* end = nullptr;
    auto n = std::strtoul(v, &end, 10);
    if (end != v && *end == '\0')
      return static_cast<std::uint32_t>(n);
  }
  return protocol_version();
}

std::string encode_frame(wire::Envelope env, const info_hash& hash) {
  auto v = sending_version();
  if (v == protocol_version())
    return encode(std::move(env), hash);
  // The test knob: the same envelope, another version.
  env.set_version(v);
  env.set_info_hash(std::string(reinterpret_cast<const char*>(hash.data()), hash.size()));
  return env.SerializeAsString();
}

std::string refused_frame(const std::string& reason, const info_hash& hash) {
  wire::Envelope env;
  env.mutable_refused()->set_reason(reason);
  return encode_frame(std::move(env), hash);
}

bool parse_host_port(const std::string& text, endpoint& out, bool allow_port_zero) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return false;
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  else if (host.find(':') != std::string::npos)
    return false; // an IPv6 address needs brackets
  std::uint32_t port = 0;
  for (auto i = colon + 1; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9')
      return false;
    port = port * 10 + static_cast<std::uint32_t>(text[i] - '0');
    if (port > 65535)
      return false;
  }
  if ((port == 0 && !allow_port_zero) || host.empty())
    return false;
  out.host = std::move(host);
  out.port = static_cast<std::uint16_t>(port);
  return true;
}

void configure_node(caf::actor_system_config& cfg) {
  using std::chrono::milliseconds;
  cfg.load<caf::io::middleman>();
  cfg.add_message_types<caf::id_block::actorrent_cluster>();
  cfg.set("middleman.heartbeat-interval", caf::timespan{milliseconds(heartbeat_ms)});
  cfg.set("middleman.connection-timeout", caf::timespan{milliseconds(2000)});
}

std::shared_ptr<spdlog::logger> cluster_log() {
  if (auto l = spdlog::get("cluster"))
    return l;
  auto l = spdlog::stderr_color_mt("cluster");
  auto session = spdlog::get("session");
  l->set_level(session ? session->level() : spdlog::level::warn);
  return l;
}

} // namespace actorrent::cluster
