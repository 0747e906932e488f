// `actorrent cluster coordinator|worker`: one download spread over several nodes
// (docs/CLUSTER.md). main.cpp creates a cluster_command on its CLI11 app (which adds the two
// subcommands and their options) and calls run() when the user chose one.
#pragma once

#include <memory>

namespace CLI {
class App;
}

namespace actorrent {

class cluster_command {
public:
  explicit cluster_command(CLI::App& app);
  ~cluster_command();
  /// Whether `cluster coordinator` or `cluster worker` was parsed.
  bool chosen() const;
  /// Runs it. Exit codes: 0 the job is complete (worker: the coordinator said so), 1 a failure
  /// at run time (a port, the coordinator lost or refusing, ...), 2 bad arguments, 130 stopped
  /// by SIGINT/SIGTERM.
  int run();

  struct options;

private:
  std::unique_ptr<options> opt_;
};

} // namespace actorrent
