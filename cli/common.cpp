#include "cli/common.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/dht_actor.hpp"

namespace actorrent {

std::atomic<int> stop_signal{0};

void on_signal(int sig) { stop_signal.store(sig); }

void setup_logging(int verbosity) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto level = verbosity >= 2 ? spdlog::level::debug
                              : verbosity == 1 ? spdlog::level::info : spdlog::level::warn;
  for (auto name : {"session", "torrent", "peer", "storage", "tracker"}) {
    if (spdlog::get(name))
      continue; // registering a name twice throws
    auto logger = std::make_shared<spdlog::logger>(name, sink);
    logger->set_level(level);
    logger->set_pattern("%H:%M:%S.%e %^%l%$ [%n] %v");
    spdlog::register_logger(logger);
  }
}

peer_id make_peer_id() {
  peer_id id{};
  const char prefix[] = "-AT0010-"; // Azureus style: client AT, version 0.1.0
  std::copy(prefix, prefix + 8, id.begin());
  std::random_device rd;
  const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  for (std::size_t i = 8; i < id.size(); ++i)
    id[i] = static_cast<std::uint8_t>(alphabet[rd() % 36]);
  return id;
}

std::string eta_text(double seconds) {
  if (seconds < 0 || seconds > 99 * 3600)
    return "--:--";
  auto s = static_cast<long>(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

std::vector<endpoint> dht_bootstrap_for(const std::vector<endpoint>& given,
                                        const std::string& listen_host) {
  if (!given.empty())
    return given;
  if (is_loopback_host(listen_host) || std::getenv("ACTORRENT_DHT_NO_DEFAULT_BOOTSTRAP"))
    return {};
  return default_dht_bootstrap();
}

dht_config session_dht(io_runtime& io, const std::string& listen_host, std::uint16_t port,
                       const std::vector<endpoint>& given, std::string state_file) {
  dht_config dc;
  dc.io = &io;
  // The DHT binds an IPv4 literal: "localhost" is loopback by name only.
  dc.host = listen_host == "localhost" ? "127.0.0.1" : listen_host;
  dc.port = port;
  dc.bootstrap = dht_bootstrap_for(given, listen_host);
  dc.state_file = std::move(state_file);
  return dc;
}

} // namespace actorrent
