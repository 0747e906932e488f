#!/usr/bin/env bash
# One-command test: install dependencies, build actorrent (Release, with tests), and run the
# whole suite with ctest: unit tests per concept plus interop tests against real peers
# (libtorrent, aria2c, transmission-cli, opentracker) on 127.0.0.1.
# Usage: ./deploy/test.sh [extra ctest arguments, e.g. -L unit]   (from any directory)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

./deploy/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DACTORRENT_BUILD_TESTS=ON
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2 "$@"
