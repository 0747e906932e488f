#!/usr/bin/env bash
# Sanitizer run: the test suite built with AddressSanitizer + UndefinedBehaviorSanitizer (g++,
# Debug, tree build-asan/), the unit tests (ctest label unit) built with ThreadSanitizer (g++,
# Debug at -O1, tree build-tsan/), then every fuzz target for 5 s (clang + libFuzzer, tree
# build-fuzz/, see fuzz/README.md). Any sanitizer report fails the run: under ASan/UBSan the
# first report ends the process with exit status 86 (which no test expects); under TSan every
# report is printed and the process exits 66 at the end; afterwards the full output of every
# test (build-*/Testing/Temporary/LastTest.log) is searched for reports that a passing test may
# have swallowed.
# Usage: ./deploy/sanitize.sh [extra ctest arguments for the ASan part]   (from any directory)
# Env: SANITIZE_LABELS (ctest -L regex for ASan, default 'unit|cli|interop'),
#      SANITIZE_SKIP_ASAN=1, SANITIZE_SKIP_TSAN=1, SANITIZE_SKIP_FUZZ=1.
# Time: the TSan stage took 11.6 min from scratch on 2 cores shared with other builds (6.8 min of
# CPU, almost all of it compiling; 6.5 min with ccache warm), and the 210 unit tests themselves
# run in about 10-20 s.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
start=$SECONDS

./deploy/setup.sh

# --- ASan + UBSan over the test suite ---------------------------------------------------------
if [[ "${SANITIZE_SKIP_ASAN:-0}" != 1 ]]; then
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
fi

# --- TSan over the unit tests ------------------------------------------------------------------
# Only the unit tests: the actors, the storage writer's checker and creator threads and the
# picker logic run there without sockets, so a report points at our code; the interop and cli
# tests would add minutes per case under TSan's 5-15x slowdown. The test binaries are the ones
# tests/CMakeLists.txt makes: <layer>_tests for every tests/<layer>/ holding *_test.cpp, so new
# test files and new layers are picked up without touching this script. CAF is Debian's
# uninstrumented libcaf_core.so: TSan cannot see the synchronisation of CAF's own threads, so
# actor tests should run the actors on CAF's test coordinator (see deploy/tsan.supp, which holds
# the suppressions: exact CAF frames only, each with why it is not ours, never ours).
if [[ "${SANITIZE_SKIP_TSAN:-0}" != 1 ]]; then
  tsan_start=$SECONDS
  launcher=()
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug "${launcher[@]}" \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -O1 -fno-omit-frame-pointer" \
    -DACTORRENT_BUILD_TESTS=ON -DACTORRENT_BUILD_BENCH=OFF
  tsan_targets=()
  for dir in tests/*/; do
    if compgen -G "${dir}*_test.cpp" >/dev/null; then
      tsan_targets+=("$(basename "$dir")_tests")
    fi
  done
  cmake --build build-tsan -j2 --target "${tsan_targets[@]}"
  export TSAN_OPTIONS="suppressions=$repo/deploy/tsan.supp:halt_on_error=0:exitcode=66:second_deadlock_stack=1:print_suppressions=0"
  tsan_status=0
  ctest --test-dir build-tsan --output-on-failure -j2 -L '^unit$' || tsan_status=$?
  unset TSAN_OPTIONS
  log="build-tsan/Testing/Temporary/LastTest.log"
  if grep -n "WARNING: ThreadSanitizer" "$log" >&2; then
    echo "sanitize: ThreadSanitizer reports in the unit tests (lines above; full text in $log)" >&2
    exit 1
  fi
  if ((tsan_status != 0)); then
    echo "sanitize: unit tests failed under TSan (ctest exit $tsan_status)" >&2
    exit "$tsan_status"
  fi
  echo "sanitize: TSan unit tests clean after $((SECONDS - tsan_start)) s"
fi

# --- libFuzzer: every target for 5 s over a copy of its seed corpus --------------------------
if [[ "${SANITIZE_SKIP_FUZZ:-0}" != 1 ]]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DACTORRENT_FUZZ=ON -DACTORRENT_BUILD_BENCH=OFF
  cmake --build build-fuzz -j2 --target actorrent_fuzz
  # One target at a time: each run keeps a core busy for its 5 s.
  ctest --test-dir build-fuzz --output-on-failure -L fuzz
fi
echo "sanitize: done in $((SECONDS - start)) s"
