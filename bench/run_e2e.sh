#!/usr/bin/env bash
# Build actorrent and bench/lt_client (Release) and run the end-to-end benchmark against real clients on 127.0.0.1.
#   bench/run_e2e.sh [e2e.py options]     e.g.  bench/run_e2e.sh --size-mib 128 --reps 1
# Options: see `/usr/bin/python3 bench/e2e.py --help`.  BUILD_DIR (default: build) is the CMake
# build directory.  Needs the real peers installed by deploy/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
# lt_client, the baseline, is a bench target (built when libtorrent-rasterbar-dev is installed)
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DACTORRENT_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD_DIR" --target actorrent lt_client -j2
export E2E_WRAPPER_COMMAND="bench/run_e2e.sh${*:+ $*}"
exec /usr/bin/python3 bench/e2e.py --actorrent "$BUILD_DIR/actorrent" --lt-client "$BUILD_DIR/bench/lt_client" "$@"
