#!/usr/bin/env bash
# A batch job to try out, self-contained on 127.0.0.1: installs and builds like demo.sh, makes
# three sample torrents, seeds them from one `actorrent seed` process, writes a job file (the
# format of deploy/examples/batch.textproto and docs/BATCH.md) and runs `actorrent batch` on it.
#
#   ./deploy/batch-demo.sh [WORKDIR]     (default: a new folder under /tmp)
#
# Then try what an operator would: run the printed batch command again (finished jobs are not
# redone), delete a file under WORKDIR/out and run it again (only that is fetched), or interrupt
# it with Ctrl-C (or kill -9) midway and run it again (it continues). The summary is
# WORKDIR/state/summary.json.
#
# ACTORRENT_BIN=PATH uses that binary instead of installing and building (the test suite's
# interop.batch.demo does); ACTORRENT_DEMO_WAIT=1 keeps the seeder running at the end even when
# stdin is not a terminal.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
if [ -n "${ACTORRENT_BIN:-}" ]; then
  bin="$(realpath "$ACTORRENT_BIN")"
else
  ./deploy/setup.sh
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j2
  bin="$repo/build/actorrent"
fi

work="${1:-$(mktemp -d /tmp/actorrent-batch-demo.XXXXXX)}"
mkdir -p "$work/seed" "$work/torrents"
cd "$work"

# Three payloads: one file of 96 MiB, a folder of five files, one small file.
head -c $((96 * 1024 * 1024)) /dev/urandom > seed/big.bin
mkdir -p seed/album
for i in 1 2 3 4 5; do head -c $((3 * 1024 * 1024 + i)) /dev/urandom > "seed/album/track$i.flac"; done
head -c 300000 /dev/urandom > seed/notes.txt
"$bin" create seed/big.bin -o torrents/big.torrent -q
"$bin" create seed/album -o torrents/album.torrent -q
"$bin" create seed/notes.txt -o torrents/notes.torrent -q

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" seed torrents/big.torrent torrents/album.torrent torrents/notes.torrent -o seed \
  --listen "127.0.0.1:$port" --no-tracker --no-dht -q > seeder.log 2>&1 &
seeder=$!
trap 'kill $seeder 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ "$(grep -c '^seeding' seeder.log || true)" -ge 1 ] && break
  sleep 0.1
done

cat > jobs.textproto <<EOF
# actorrent batch jobs.textproto   (see docs/BATCH.md)
settings {
  max_active: 2               # two torrents download at once; the third waits
  listen: "127.0.0.1:0"
  state_dir: "state"
  download_limit: "8M"        # all jobs together: ~15 s, time to watch (or kill) it
}
job {
  name: "big"
  torrent: "torrents/big.torrent"
  output: "out/big"
  peer: "127.0.0.1:$port"
  no_tracker: true
}
job {
  name: "album"
  torrent: "torrents/album.torrent"
  output: "out/album"
  select_file: "1,3-5"        # track2 is left out (numbers as \`actorrent info\` lists them)
  peer: "127.0.0.1:$port"
  no_tracker: true
  priority: 1                 # starts first
}
job {
  name: "notes"
  torrent: "torrents/notes.torrent"
  output: "out/notes"
  peer: "127.0.0.1:$port"
  no_tracker: true
  timeout_s: 60
}
EOF

echo "== $bin batch $work/jobs.textproto --dry-run"
"$bin" batch jobs.textproto --dry-run
echo
echo "== $bin batch $work/jobs.textproto"
"$bin" batch jobs.textproto
echo
echo "== summary ($work/state/summary.json)"
cat state/summary.json
echo
cmp seed/big.bin out/big/big.bin
for i in 1 3 4 5; do cmp "seed/album/track$i.flac" "out/album/album/track$i.flac"; done
[ ! -e out/album/album/track2.flac ]
cmp seed/notes.txt out/notes/notes.txt
echo "ok: every job byte-exact, the unselected track absent."
if [ -t 0 ] || [ -n "${ACTORRENT_DEMO_WAIT:-}" ]; then
  echo "The seeder keeps running while you try it from another terminal: run the batch again"
  echo "(nothing is redone), delete a file under $work/out and run it again (only that is"
  echo "fetched), or kill it midway and run it again. Ctrl-C here stops the seeder."
  echo "   cd $work && $bin batch jobs.textproto"
  wait $seeder || true
fi
