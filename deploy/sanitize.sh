#!/usr/bin/env bash
# Sanitizer run: the test suite built with AddressSanitizer + UndefinedBehaviorSanitizer (g++,
# Debug, tree build-asan/), then every fuzz target for 5 s (clang + libFuzzer, tree build-fuzz/,
# see fuzz/README.md). Any sanitizer report fails the run: the first report ends the process
# with exit status 86 (which no test expects), and afterwards the full output of every test
# (build-asan/Testing/Temporary/LastTest.log) is searched for reports that a passing test may
# have swallowed.
# Usage: ./deploy/sanitize.sh [extra ctest arguments for the ASan part]   (from any directory)
# Env: SANITIZE_LABELS (ctest -L regex, default 'unit|cli|interop'), SANITIZE_SKIP_FUZZ=1.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
start=$SECONDS

./deploy/setup.sh

# --- ASan + UBSan over the test suite ---------------------------------------------------------
# -fsanitize-recover=null,vptr: CAF 0.17's own headers, instantiated in our code, trip two UBSan
# checks that are not ours to fix and harmless in practice:
#  - null: spawning an actor without arguments binds a reference to null
#    (caf/detail/init_fun_factory.hpp:85 applies `*args_` to a null std::shared_ptr<std::tuple<>>;
#    the empty tuple is never read). Reported twice: inside shared_ptr::operator* and where
#    init_fun_factory.hpp binds its result.
#  - vptr: the intrusive mailbox queue static_casts its sentinel node to mailbox_element
#    (caf/intrusive/task_queue.hpp:67, promote(), reached from back() on an empty queue, e.g.
#    through mailbox().size() in torrent_actor's metrics).
# Only a recoverable check can be suppressed, so those two checks are made recoverable and the
# exact places are suppressed (ubsan.supp below); halt_on_error=1 still ends the process at any
# other null or vptr report, so for our own code nothing changes.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -fsanitize-recover=null,vptr" \
  -DACTORRENT_BUILD_TESTS=ON -DACTORRENT_BUILD_BENCH=OFF
cmake --build build-asan -j2

# std::shared_ptr<std::tuple<>> is made only by CAF's spawn helper (a null shared_ptr of any other
# type is still reported); the only pointer init_fun_factory.hpp dereferences is that args_
# tuple; the only downcast in task_queue.hpp is promote(). (The prefix is the check's flag name:
# "vptr:" matches by file; "vptr_check:" would match the object's type instead.)
printf '%s\n' 'null:std::__shared_ptr_access<std::tuple<>,*>::operator*' \
  'null:caf/detail/init_fun_factory.hpp' 'vptr:caf/intrusive/task_queue.hpp' > build-asan/ubsan.supp
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:exitcode=86:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=86:suppressions=$repo/build-asan/ubsan.supp"
export LSAN_OPTIONS="suppressions=$repo/deploy/lsan.supp:print_suppressions=0:exitcode=86"

labels="${SANITIZE_LABELS:-unit|cli|interop}"
# Left out: a wall-clock assertion that a Debug+ASan binary cannot meet (exit within 2.0 s of
# SIGINT/SIGTERM while an announce hangs: the Release build takes 1.75 s, this one 2.00-2.04 s,
# with or without leak detection). The signal path itself still runs under the sanitizers in
# interop.resume.sigint and cli.no_peers_retries_until_timeout_and_says_why.
skip='^cli\.signal_stops_within_2s_even_while_an_announce_hangs$'
ctest_status=0
ctest --test-dir build-asan --output-on-failure -j2 -L "$labels" -E "$skip" "$@" || ctest_status=$?

log="build-asan/Testing/Temporary/LastTest.log"
if grep -nE "runtime error:|ERROR: (Address|Leak)Sanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer" \
     "$log" >&2; then
  echo "sanitize: sanitizer reports in the test output (lines above; full text in $log)" >&2
  exit 1
fi
if ((ctest_status != 0)); then
  echo "sanitize: tests failed under ASan/UBSan (ctest exit $ctest_status)" >&2
  exit "$ctest_status"
fi
echo "sanitize: ASan/UBSan suite clean after $((SECONDS - start)) s"
unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS

# --- libFuzzer: every target for 5 s over a copy of its seed corpus --------------------------
if [[ "${SANITIZE_SKIP_FUZZ:-0}" != 1 ]]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DACTORRENT_FUZZ=ON -DACTORRENT_BUILD_BENCH=OFF
  cmake --build build-fuzz -j2 --target actorrent_fuzz
  # One target at a time: each run keeps a core busy for its 5 s.
  ctest --test-dir build-fuzz --output-on-failure -L fuzz
fi
echo "sanitize: done in $((SECONDS - start)) s"
