#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS over a working copy of its seed corpus.
#   fuzz/run.sh TARGET SECONDS [libFuzzer flags...]      e.g. fuzz/run.sh wire 600 -jobs=2
#   TARGET: bencode | metainfo | wire | tracker | resume
# Without --bin it configures (once) and builds the clang tree $ACTORRENT_FUZZ_BUILD (default
# build-fuzz/) and uses build-fuzz/fuzz/TARGET_fuzz. The working corpus, which keeps growing
# across runs, is WORK/corpus (default WORK: build-fuzz/fuzz/campaign/TARGET), seeded from
# fuzz/corpus/TARGET on every run; crashes, leaks, timeouts and out-of-memory inputs are
# written to WORK/artifacts/. The seed corpus in the source tree is never written to.
# Options (before TARGET): --bin PATH (use this binary, build nothing), --work DIR,
# --fresh (start from the seeds only; ctest uses this).
# Exit status: 0 when the run ended without finding anything, non-zero otherwise.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="" work="" fresh=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --fresh) fresh=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
if [[ $# -lt 2 ]]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
target="$1" seconds="$2"
shift 2
seeds="$repo/fuzz/corpus/$target"
if [[ ! -d "$seeds" ]]; then
  echo "run.sh: no seed corpus $seeds (targets: $(ls "$repo/fuzz/corpus" | tr '\n' ' '))" >&2
  exit 2
fi

build="${ACTORRENT_FUZZ_BUILD:-$repo/build-fuzz}"
if [[ -z "$bin" ]]; then
  if [[ ! -f "$build/CMakeCache.txt" ]]; then
    CC=clang CXX=clang++ cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DACTORRENT_FUZZ=ON -DACTORRENT_BUILD_BENCH=OFF
  fi
  cmake --build "$build" -j2 --target "${target}_fuzz"
  bin="$build/fuzz/${target}_fuzz"
fi
work="${work:-$build/fuzz/campaign/$target}"
if ((fresh)); then
  rm -rf "$work"
fi
mkdir -p "$work/corpus" "$work/artifacts"
cp -f "$seeds"/* "$work/corpus/"

# Sanitizer reports must stop the run and reach stderr (never a log file).
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0:allocator_may_return_null=1${ASAN_OPTIONS_EXTRA:+:$ASAN_OPTIONS_EXTRA}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
unset LSAN_OPTIONS

status=0
"$bin" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=30 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$@" "$work/corpus" || status=$?
if ((status != 0)); then
  echo "run.sh: $target FAILED (exit $status); reproducer(s):" >&2
  ls -l "$work/artifacts/" >&2
  echo "run.sh: reproduce with: $bin $work/artifacts/<file>" >&2
fi
exit $status
