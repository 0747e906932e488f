#!/usr/bin/env bash
# One-command demo: install dependencies, build actorrent (Release), then download a 256 MiB
# sample from a real libtorrent seeder through a real tracker, all on 127.0.0.1, and verify it.
# Usage: ./deploy/demo.sh   (from any directory)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

./deploy/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2
# python3-libtorrent is a Debian package: use the system interpreter, not whatever is on PATH
/usr/bin/python3 tests/interop/demo.py --actorrent build/actorrent
