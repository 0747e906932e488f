#!/usr/bin/env bash
# A cluster job on this machine, to try it out (docs/CLUSTER.md): a libtorrent seeder, a
# coordinator and N workers, all on 127.0.0.1; shows the coordinator's progress, checks that the
# result is byte-exact, then stops everything it started and removes its work directory.
#
#   ./deploy/cluster-local.sh N [--mode shared|replicate] [--size-mib MIB] [--limit RATE]
#                               [--torrent FILE.torrent --data DIR] [--workdir DIR] [--keep]
#
#   N            number of workers (the coordinator waits for all of them)
#   --mode       shared (default: one output directory that every worker writes its pieces to)
#                or replicate (a directory per worker, each ends with the whole content)
#   --size-mib   size of the sample made when no --torrent is given (default 256)
#   --limit      each worker's --download-limit (default 10M: time to watch; 0 = none)
#   --torrent, --data
#                use this torrent instead of a sample; DIR is the directory holding its content
#                (DIR/<name>), which the seeder serves and the result is compared with
#   --workdir    where logs, outputs and the coordinator's state go (default: a new folder
#                under /dev/shm or /tmp); --keep leaves it in place
#
# Builds build/actorrent first when it is missing (ACTORRENT=PATH to use another binary).
# The seeder is python3-libtorrent (deploy/setup.sh installs it), run through the interop
# harness's `lt-seed` with DHT, LSD, UPnP and NAT-PMP off.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }

[ $# -ge 1 ] || usage
case "$1" in ''|*[!0-9]*) usage ;; esac
workers="$1"; shift
[ "$workers" -ge 1 ] || { echo "cluster-local: N must be at least 1" >&2; exit 2; }
mode=shared size_mib=256 limit=10M torrent="" data="" work="" keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) mode="$2"; shift 2 ;;
    --size-mib) size_mib="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --torrent) torrent="$(realpath "$2")"; shift 2 ;;
    --data) data="$(realpath "$2")"; shift 2 ;;
    --workdir) work="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage ;;
    *) echo "cluster-local: unknown argument $1" >&2; usage ;;
  esac
done
case "$mode" in shared|replicate) ;; *) echo "cluster-local: --mode shared|replicate" >&2; exit 2 ;; esac
if { [ -n "$torrent" ] && [ -z "$data" ]; } || { [ -z "$torrent" ] && [ -n "$data" ]; }; then
  echo "cluster-local: --torrent and --data go together" >&2; exit 2
fi

py=/usr/bin/python3   # python3-libtorrent is a Debian package: the system interpreter
if ! "$py" -c 'import libtorrent' 2>/dev/null; then
  echo "cluster-local: python3-libtorrent is missing: run deploy/setup.sh" >&2; exit 1
fi
bin="${ACTORRENT:-$repo/build/actorrent}"
if [ ! -x "$bin" ]; then
  echo "== building $bin"
  cmake -S "$repo" -B "$repo/build" -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build "$repo/build" -j2 --target actorrent
fi

if [ -z "$work" ]; then
  base=/tmp; [ -w /dev/shm ] && base=/dev/shm
  work="$(mktemp -d "$base/actorrent-cluster.XXXXXX")"
fi
mkdir -p "$work"
work="$(realpath "$work")"

pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$keep" = 1 ] || [ $rc -ne 0 ]; then
    echo "logs and data kept in $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ -z "$torrent" ]; then
  data="$work/seed"
  mkdir -p "$data"
  echo "== a $size_mib MiB sample in $data"
  head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$data/cluster-sample.bin"
  torrent="$work/cluster-sample.torrent"
  "$bin" create "$data/cluster-sample.bin" -o "$torrent" -q
fi
name="$("$py" -c 'import sys; sys.path.insert(0, sys.argv[1]); import harness
print(harness.load_torrent(sys.argv[2]).name)' "$repo/tests/interop" "$torrent")"
[ -e "$data/$name" ] || { echo "cluster-local: $data/$name does not exist" >&2; exit 1; }

seed_port="$(free_port)"
"$py" "$repo/tests/interop/harness.py" lt-seed "$torrent" "$data" --port "$seed_port" \
  --no-tracker > "$work/seeder.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
  grep -q '^READY' "$work/seeder.log" && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$work/seeder.log" >&2; exit 1; }
  sleep 0.1
done
grep -q '^READY' "$work/seeder.log" || { echo "cluster-local: the seeder is not ready" >&2; exit 1; }
echo "== libtorrent seeder on 127.0.0.1:$seed_port"

coord_port="$(free_port)"
coord=("$bin" cluster coordinator "$torrent" --listen "127.0.0.1:$coord_port"
       --workers "$workers" --mode "$mode" --state "$work/state"
       --peer "127.0.0.1:$seed_port" --no-tracker)
echo "== ${coord[*]}"
"${coord[@]}" > "$work/coordinator.log" 2> "$work/coordinator.err" &
coord_pid=$!
pids+=("$coord_pid")

outs=()
worker_pids=()
for i in $(seq 1 "$workers"); do
  out="$work/out"
  [ "$mode" = replicate ] && out="$work/out/w$i"
  mkdir -p "$out"
  outs+=("$out")
  w=("$bin" cluster worker --join "127.0.0.1:$coord_port" -o "$out"
     --listen "127.0.0.1:$(free_port)" --name "w$i" --no-dht)
  [ "$limit" != 0 ] && w+=(--download-limit "$limit")
  [ "$i" = 1 ] && echo "== ${w[*]}   (and $((workers - 1)) more)"
  "${w[@]}" > "$work/worker-$i.log" 2>&1 &
  worker_pids+=($!)
  pids+=($!)
done

# the coordinator's progress lines, live, until it exits
tail -n +1 -f --pid="$coord_pid" "$work/coordinator.log" &
tail_pid=$!
rc=0
wait "$coord_pid" || rc=$?
wait "$tail_pid" 2>/dev/null || true
if [ $rc -ne 0 ]; then
  echo "cluster-local: the coordinator exited $rc" >&2
  tail -n 20 "$work/coordinator.err" >&2
  exit 1
fi
for i in "${!worker_pids[@]}"; do
  wrc=0
  for _ in $(seq 1 150); do kill -0 "${worker_pids[$i]}" 2>/dev/null || break; sleep 0.1; done
  wait "${worker_pids[$i]}" || wrc=$?
  if [ $wrc -ne 0 ]; then
    echo "cluster-local: worker w$((i + 1)) exited $wrc" >&2
    tail -n 20 "$work/worker-$((i + 1)).log" >&2
    exit 1
  fi
done

echo "== comparing with $data/$name"
checked=()
for out in "${outs[@]}"; do
  # shared mode: one directory for all workers
  case " ${checked[*]-} " in *" $out "*) continue ;; esac
  checked+=("$out")
  if ! diff -rq "$data/$name" "$out/$name"; then
    echo "cluster-local: $out/$name differs from $data/$name" >&2
    exit 1
  fi
  echo "   $out/$name: byte-exact"
done
echo "== done: $name by $workers workers ($mode mode), byte-exact"
