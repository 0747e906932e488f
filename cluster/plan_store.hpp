// The coordinator's persisted plan of one job (its --state directory): the torrent, the mode,
// the verified pieces, the last epoch and the workers seen. A restarted coordinator loads it
// and assigns only what is not verified. Owned by the coordinator; CAF-free.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <roaring/roaring.hh>

#include "cluster/cluster.pb.h"
#include "protocol/error.hpp"
#include "protocol/types.hpp"

namespace actorrent::cluster {

struct plan_state {
  info_hash hash{};
  wire::Mode mode = wire::MODE_SHARED;
  std::uint32_t piece_count = 0;
  Roaring verified;
  std::uint64_t last_epoch = 0;
  std::vector<std::string> workers; // names, in order of first join
};

/// Assignments sent after the last save are not in the file: a restarted coordinator starts
/// its epochs this far above the stored one, so no worker ever sees an epoch twice. The
/// coordinator saves at most once a second; a second never holds a million assignments.
inline constexpr std::uint64_t epoch_restart_margin = 1u << 20;

/// The epoch a restarted coordinator continues above (planner::restore's `last_epoch`).
std::uint64_t epoch_after_restart(std::uint64_t stored_last_epoch);

/// DIR/plan.state: one job per state directory.
std::string plan_state_path(const std::string& state_dir);

/// Writes `s` atomically (temp file, fsync, rename), creating `state_dir` if needed.
/// Errors: errc::io_error naming the path.
status save_plan_state(const std::string& state_dir, const plan_state& s);

struct loaded_plan_state {
  std::optional<plan_state> state; // none: start the job from the beginning
  std::string warning;             // set when a damaged file was found and is ignored
};

/// Reads the plan of the job (`hash`, `mode`, `piece_count`) from `state_dir`.
/// - no file: no state, no warning;
/// - a damaged file (truncated, bit-flipped, undecodable, inconsistent): no state and a
///   warning that names the file, says why and that the job starts over — never trusted;
/// - another torrent's or another mode's state, or a format this build does not know: an
///   errc::invalid_argument error naming both (the file belongs to another job: it is not
///   overwritten);
/// - a file that cannot be read: errc::io_error.
result<loaded_plan_state> load_plan_state(const std::string& state_dir, const info_hash& hash,
                                          wire::Mode mode, std::uint32_t piece_count);

/// What a restarted coordinator takes from its state directory.
struct saved_plan {
  Roaring verified;
  /// The epoch to continue above: the stored last epoch plus epoch_restart_margin, ready for
  /// planner::restore.
  std::uint64_t last_epoch = 0;
  std::vector<std::string> workers; // names seen in earlier runs
};

/// The coordinator's handle on its --state directory: the functions above, bound to one job.
class plan_store {
public:
  /// Creates `dir` if needed, so that an unusable --state fails at start rather than at the
  /// first save. Errors: errc::io_error naming the directory.
  static result<plan_store> open(const std::string& dir, const info_hash& hash,
                                 std::uint32_t piece_count,
                                 wire::Mode mode = wire::MODE_SHARED);

  /// The plan of an earlier run of this job, or none: a first run, or a damaged file, in which
  /// case warning() says so (the coordinator prints it). Errors as load_plan_state's.
  result<std::optional<saved_plan>> load();
  /// Writes the plan atomically, with the worker names noted so far.
  status save(const Roaring& verified, std::uint64_t last_epoch);
  /// Records a worker's name (once) for the next save.
  void note_worker(const std::string& name);

  /// Set by load() when a damaged file was ignored.
  const std::string& warning() const noexcept { return warning_; }
  std::string path() const { return plan_state_path(dir_); }

private:
  std::string dir_;
  info_hash hash_{};
  std::uint32_t piece_count_ = 0;
  wire::Mode mode_ = wire::MODE_SHARED;
  std::vector<std::string> workers_;
  std::string warning_;
};

} // namespace actorrent::cluster
