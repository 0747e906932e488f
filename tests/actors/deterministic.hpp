// Support for deterministic actor tests: an actor system on CAF's test scheduler (nothing runs
// until the test runs the queue: sched.run()), and actorrent's loggers routed to one sink.
#pragma once

#include <memory>

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <spdlog/spdlog.h>

namespace actorrent::actor_test {

inline caf::actor_system_config& deterministic(caf::actor_system_config& cfg) {
  cfg.set("scheduler.policy", caf::atom("testing"));
  return cfg;
}

inline void route_loggers(spdlog::sink_ptr sink, spdlog::level::level_enum level) {
  for (auto name : {"session", "torrent", "peer", "storage", "tracker"}) {
    spdlog::drop(name);
    auto logger = std::make_shared<spdlog::logger>(name, sink);
    logger->set_level(level);
    spdlog::register_logger(logger);
  }
}

} // namespace actorrent::actor_test

// ACTORRENT_UNDER_TSAN: defined when built with ThreadSanitizer (GCC or Clang). Tests of actors
// on CAF's real threads skip themselves then.
#if defined(__SANITIZE_THREAD__)
#define ACTORRENT_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ACTORRENT_UNDER_TSAN 1
#endif
#endif
