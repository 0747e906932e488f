#!/usr/bin/env bash
# Builds bench_micro (Release) if needed, runs it (3 repetitions, aggregates, JSON) and writes
# the Markdown report of ratios to bench/results/micro-<date>.md (raw JSON next to it).
#
#   bench/run_micro.sh [extra bench_micro options, e.g. --benchmark_filter=availability]
#
# Environment: BUILD_DIR (default: <repo>/build-bench), JOBS (default: 2).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$repo/build-bench}"
jobs="${JOBS:-2}"
results="$repo/bench/results"
stamp="$(date -u +%Y-%m-%d)"
json="$results/micro-$stamp.json"
report="$results/micro-$stamp.md"

source "$repo/bench/release_build.sh"
release_build "$build" bench_micro "$jobs"
bin="$build/bench/bench_micro"
if [[ ! -x "$bin" ]]; then
  echo "run_micro.sh: $bin was not built (is Google Benchmark installed? libbenchmark-dev)" >&2
  exit 1
fi

mkdir -p "$results"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
# Random interleaving runs the repetitions of all benchmarks in random order, so a burst of load
# from a neighbour hits the variants being compared more evenly.
"$bin" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
       --benchmark_enable_random_interleaving=true --benchmark_format=json "$@" > "$json"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  commit="$commit (working tree had uncommitted changes)"
fi
/usr/bin/python3 "$repo/bench/micro_report.py" --json "$json" --out "$report" \
  --commit "$commit" --load-before "$load_before" --load-after "$load_after"
echo "report: $report"
