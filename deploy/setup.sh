#!/usr/bin/env bash
# Installs everything actorrent needs to build, test and benchmark on Debian 12.
# Idempotent and non-interactive: packages already present are skipped, apt runs only when
# something is missing.
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build pkg-config
  libcaf-dev libroaring-dev libprotobuf-dev protobuf-compiler libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev libasio-dev libssl-dev libcurl4-openssl-dev libcli11-dev
  clang libclang-rt-14-dev
)
# Real peers and a tracker for the interop tests and the demo (all run on 127.0.0.1 only).
peer_pkgs=(python3 python3-libtorrent libtorrent-rasterbar-dev aria2 transmission-cli rtorrent opentracker procps)

want=("${build_pkgs[@]}")
if [[ "${1:-}" != "--build-only" ]]; then
  want+=("${peer_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi
