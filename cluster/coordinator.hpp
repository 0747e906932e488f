// The coordinator of a cluster job (docs/CLUSTER.md): one per job. It publishes itself on the
// middleman, welcomes workers, keeps the plan (planner.hpp) of which worker fetches which
// pieces, renews their leases, turns a lost worker's shard into new assignments once its lease
// has expired, persists the plan (plan_store.hpp) and ends the job with Done.
//
//   waiting --(N workers joined)--> running --(every piece verified[, every replica whole])-->
//      |                              |         finishing --(workers gone, or 10 s)--> gone
//      +--------- stop (signal) ------+----------------------------------------------> gone
//
// In every state: Hello -> Welcome or Refused, Lease to every live worker each 500 ms, a
// worker's down_msg -> removal after its last lease. Assignments start in `running`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "protocol/metainfo.hpp"

namespace actorrent::cluster {

enum class job_mode : std::uint8_t { shared, replicate };

struct coordinator_config {
  std::shared_ptr<const metainfo> meta;
  std::string torrent_bytes;          // the .torrent file as given (sent in Welcome)
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 0;      // 0: any free port (see spawn_coordinator)
  std::uint32_t workers = 1;          // assignments start once this many have joined
  job_mode mode = job_mode::shared;
  std::string state_dir;              // the persisted plan (empty: not persisted)
  std::vector<std::string> peers;     // HOST:PORT, passed to the workers
  bool use_trackers = true;
  bool quiet = false;                 // no progress lines (the `complete:` line stays)
  /// Called once, from the actor, with the process exit code when the job ends.
  std::function<void(int)> on_exit;
};

/// Spawns the coordinator and publishes it on listen_host:listen_port. Returns the actor and
/// sets `port` to the port bound, or returns an invalid handle with `err` set (a port that
/// cannot be bound, a state that cannot be read). The system must have been configured with
/// configure_node().
caf::actor spawn_coordinator(caf::actor_system& sys, coordinator_config cfg,
                             std::uint16_t& port, std::string& err);

/// Tells a coordinator to stop (SIGINT/SIGTERM): it saves the plan and exits with `code`.
void stop_coordinator(const caf::actor& coordinator, int code);

} // namespace actorrent::cluster
