#!/usr/bin/env bash
# Builds swarm_bench (Release) if needed and runs the torrent-actor load benchmark: 1,000
# synthetic in-process peers on 10,000- and 100,000-piece torrents (HAVE storm with batching on
# vs off, block receipt with incremental vs recomputed request state, statistics per read vs
# per block). Writes the Markdown report to bench/results/swarm-<date>.md.
#
#   bench/run_swarm.sh [swarm_bench options: --peers N --reps N --quick]
#
# Environment: BUILD_DIR (default: <repo>/build-bench), JOBS (default: 2).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$repo/build-bench}"
jobs="${JOBS:-2}"
report="$repo/bench/results/swarm-$(date -u +%Y-%m-%d).md"

source "$repo/bench/release_build.sh"
release_build "$build" swarm_bench "$jobs"
mkdir -p "$(dirname "$report")"
{
  "$build/bench/swarm_bench" "$@"
  printf '\nCommand: `bench/run_swarm.sh %s` on %s, %s, load average at the end: %s\n' "$*" \
    "$(uname -r)" "$(nproc) cores" "$(cut -d' ' -f1-3 /proc/loadavg)"
} > "$report.tmp"
mv "$report.tmp" "$report"
cat "$report"
echo "report: $report"
