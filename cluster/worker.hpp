// A worker of a cluster job (docs/CLUSTER.md): joins a coordinator, runs the job's torrent in
// its own session restricted to the shard it is assigned, reports verified pieces in batches,
// and writes only while the coordinator's lease holds (storage/write_fence.hpp).
//
//   joining --Welcome--> running --Done--> stopping --session stopped (or 15 s)--> gone (0)
//      |                   |
//      +-- Refused --------+-- coordinator down / torrent failed --> stopping --> gone (1)
//          (exit 1)            (the fence is closed first)
//
// On Welcome the torrent is added to the session before anything else is handled (an Assign
// waits for it).
//
// In running: Assign -> fence, piece filter, Ack; Lease -> fence deadline; every 500 ms a
// Report of the pieces verified since the last one.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "protocol/error.hpp"
#include "protocol/types.hpp"

namespace actorrent {
class write_fence;
}

namespace actorrent::cluster {

struct worker_config {
  caf::actor coordinator;            // from connect_to_coordinator
  caf::actor session;                // the worker's own session (spawn_session)
  std::string out_dir;               // shared mode: the one shared directory
  std::string name;                  // unique in the job
  std::string listen;                // HOST:PORT of the session's listener, told to others
  std::uint64_t download_limit = 0;  // bytes/s (0: none): the session's limit, a rate hint
  /// --torrent: the Hello names this info-hash, and a coordinator of another torrent refuses.
  std::optional<info_hash> expected;
  /// The fence its torrent's storage checks (null: the worker makes its own). Given by tests
  /// that look at what the worker allows.
  std::shared_ptr<write_fence> fence;
  /// Called once, from the actor, when the worker ends: the process exit code and, unless 0,
  /// why in one line ("refused by the coordinator: ...", "lost the coordinator: ...").
  std::function<void(int, const std::string&)> on_exit;
};

/// Connects to the coordinator at host:port, retrying for up to `patience` while nothing
/// listens there (the coordinator may start after its workers). Blocking; call before
/// spawn_worker. The system must have been configured with configure_node(). `give_up`
/// (optional) is asked between attempts: true ends the wait (a signal).
result<caf::actor> connect_to_coordinator(caf::actor_system& sys, const std::string& host,
                                          std::uint16_t port, std::chrono::milliseconds patience,
                                          const std::function<bool()>& give_up = {});

/// Spawns the worker: it monitors the coordinator and sends Hello at once.
caf::actor spawn_worker(caf::actor_system& sys, worker_config cfg);

/// Tells a worker to stop (SIGINT/SIGTERM): it closes its fence, stops its session and exits
/// with `code`.
void stop_worker(const caf::actor& worker, int code);

} // namespace actorrent::cluster
