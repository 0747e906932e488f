// `actorrent batch JOBFILE [--dry-run] [--summary FILE.json] [-q]`: runs the jobs of a job file
// (config/batch_job.hpp) through one session with a queue, then prints a table and writes the
// summary as JSON. main.cpp parses the arguments with CLI11 and calls run_batch.
#pragma once

#include <string>

namespace actorrent {

struct batch_options {
  std::string job_file;
  bool dry_run = false;  // validate and print the plan: no network, nothing written
  std::string summary;   // empty: <state_dir>/summary.json
  bool quiet = false;    // no progress display
  int verbosity = 0;
};

/// Exit codes: 0 every job complete, 1 any job failed or was skipped (or the run could not
/// start: a listen port that cannot be bound, a state_dir that cannot be created), 2 the job
/// file is invalid (nothing started), 130 stopped by SIGINT/SIGTERM (the summary says which jobs
/// were skipped; a rerun continues them).
int run_batch(const batch_options& opt);

} // namespace actorrent
