#!/usr/bin/python3
"""Load: N concurrent scripted peers (default 500) connected to one actorrent seeder on
127.0.0.1, held for a while, without errors or unbounded memory.

Every peer handshakes (fast extension on), says INTERESTED and sends a keep-alive every 20 s.
For the first half of the hold every connection is idle; in the second half the peers
actorrent unchokes download blocks (4 requests in flight).  Measured on actorrent (/proc/PID):
RSS and CPU-seconds (user+sys) before the peers connect, once all are connected, at half-time
and at the end.  The case fails if a peer is refused or dropped, if actorrent logs
an error, or if the memory per connection exceeds --max-kib-per-conn.

  load_test.py --actorrent PATH [--connections 500] [--hold 15] [--report FILE.md]
"""
import argparse
import asyncio
import os
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

PSTR = b"BitTorrent protocol"
UNCHOKE, CHOKE, INTERESTED, REQUEST, PIECE, HAVE_ALL, REJECT = 1, 0, 2, 6, 7, 14, 16
PIECE_LENGTH = 256 * 1024
SIZE = 32 * H.MiB
CLK = os.sysconf("SC_CLK_TCK")


def proc_sample(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK      # utime + stime
    rss = anon = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
    fds = len(os.listdir("/proc/%d/fd" % pid))
    return {"cpu": cpu, "rss_kib": rss, "anon_kib": anon, "fds": fds, "t": time.monotonic()}


class Peer:
    def __init__(self, torrent, port, stats):
        self.t, self.port, self.stats = torrent, port, stats
        self.connected = False
        self.dropped = None

    async def run(self, deadline):
        """Holds the connection until deadline["t"] (set once every peer is connected)."""
        try:
            reader, writer = await asyncio.open_connection(H.LOOPBACK, self.port)
        except OSError as e:
            self.dropped = "connect: %s" % e
            return
        try:
            reserved = bytearray(8)
            reserved[7] |= 0x04
            writer.write(bytes([19]) + PSTR + bytes(reserved) + self.t.info_hash + b"-LT0001-" + os.urandom(6).hex().encode())
            hs = await asyncio.wait_for(reader.readexactly(68), 30)
            if hs[28:48] != self.t.info_hash:
                self.dropped = "wrong info-hash in reply"
                return
            writer.write(struct.pack(">IB", 1, INTERESTED))
            self.connected = True
            self.stats["connected"] += 1
            in_flight, next_block, unchoked = 0, 0, False
            last_keepalive = time.monotonic()
            blocks_per_piece = PIECE_LENGTH // 16384
            while time.monotonic() < deadline["t"]:
                while unchoked and deadline["download"] and in_flight < 4:
                    piece, block = divmod(next_block, blocks_per_piece)
                    next_block = (next_block + 1) % (self.t.num_pieces * blocks_per_piece)
                    writer.write(struct.pack(">IBIII", 13, REQUEST, piece, block * 16384, 16384))
                    in_flight += 1
                if time.monotonic() - last_keepalive > 20:
                    writer.write(struct.pack(">I", 0))
                    last_keepalive = time.monotonic()
                await writer.drain()
                try:
                    head = await asyncio.wait_for(reader.readexactly(4), max(0.05, min(1.0, deadline["t"] - time.monotonic())))
                except asyncio.TimeoutError:
                    continue
                (n,) = struct.unpack(">I", head)
                if n == 0:
                    continue
                body = await reader.readexactly(n)
                mid = body[0]
                if mid == UNCHOKE:
                    unchoked = True
                elif mid == CHOKE:
                    unchoked, in_flight = False, 0
                elif mid == PIECE:
                    in_flight -= 1
                    self.stats["blocks"] += 1
                elif mid == REJECT:
                    in_flight -= 1
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError) as e:
            self.dropped = type(e).__name__
        finally:
            writer.close()


async def drive(torrent, port, n, hold, samples, pid):
    stats = {"connected": 0, "blocks": 0}
    peers = [Peer(torrent, port, stats) for _ in range(n)]
    deadline = {"t": time.monotonic() + 3600, "download": False}   # set once all are connected
    tasks = []
    t0 = time.monotonic()
    for i in range(0, n, 50):   # in waves of 50, so the listen backlog is never the limit
        tasks += [asyncio.ensure_future(p.run(deadline)) for p in peers[i:i + 50]]
        await asyncio.sleep(0.05)
    while stats["connected"] + sum(1 for p in peers if p.dropped) < n and time.monotonic() - t0 < 60:
        await asyncio.sleep(0.1)
    samples["connected"] = proc_sample(pid)
    samples["connect_s"] = time.monotonic() - t0
    # first half: every connection idle (keep-alives only); second half: unchoked peers download
    deadline["t"] = time.monotonic() + hold
    await asyncio.sleep(hold / 2)
    samples["idle_hold"] = proc_sample(pid)
    blocks0 = stats["blocks"]
    deadline["download"] = True
    await asyncio.sleep(hold / 2)
    samples["end"] = proc_sample(pid)
    samples["blocks"] = stats["blocks"] - blocks0
    await asyncio.gather(*tasks, return_exceptions=True)
    return peers, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", required=True)
    ap.add_argument("--connections", type=int, default=500)
    ap.add_argument("--hold", type=float, default=15.0, help="seconds to hold every connection")
    # ASan keeps freed memory in quarantine and maps shadow memory: a looser bound there.
    ap.add_argument("--max-kib-per-conn", type=float, default=2048.0 if os.environ.get("ASAN_OPTIONS") else 256.0)
    ap.add_argument("--report", help="append a Markdown table of the figures to this file")
    a = ap.parse_args()
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.connections + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, 4096)), hard))
    problems = []
    with H.Session("actorrent-load-") as sess:
        root = sess.mkdir("data")
        payload = H.make_payload(root, "load.bin", size=SIZE, seed="load")
        torrent = H.make_torrent(payload, PIECE_LENGTH, sess.path("t.torrent"))
        port = H.free_port()
        argv = [os.path.abspath(a.actorrent), "seed", torrent.path, root, "--no-tracker", "-v",
                "--listen", "%s:%d" % (H.LOOPBACK, port), "--max-peers", str(a.connections + 50),
                "--max-peers-per-ip", str(a.connections + 50)]
        H.log("run: " + " ".join(argv))
        seeder = sess.spawn("actorrent", argv, log_path=sess.path("stdout"), stderr_path=sess.path("stderr"))
        if not H.wait_for(lambda: "seeding:" in seeder.output() or not seeder.running(), 30):
            raise SystemExit("FAIL: actorrent did not start seeding")
        time.sleep(0.5)
        samples = {"idle": proc_sample(seeder.pid)}
        peers, stats = asyncio.run(drive(torrent, port, a.connections, a.hold, samples, seeder.pid))
        alive = seeder.running()
        seeder.stop()
        log = seeder.stderr_text()
    idle, conn, end = samples["idle"], samples["connected"], samples["end"]
    per_conn_kib = (conn["rss_kib"] - idle["rss_kib"]) / max(1, a.connections)
    per_conn_end_kib = (end["rss_kib"] - idle["rss_kib"]) / max(1, a.connections)
    mid = samples["idle_hold"]
    idle_s, busy_s = mid["t"] - conn["t"], end["t"] - mid["t"]
    cpu_idle, cpu_busy = mid["cpu"] - conn["cpu"], end["cpu"] - mid["cpu"]
    up_mib = samples["blocks"] * 16384 / H.MiB
    connect_cpu = conn["cpu"] - idle["cpu"]
    dropped = [p.dropped for p in peers if p.dropped]
    rows = [
        ("connections held", "%d of %d" % (stats["connected"] - len([p for p in peers if p.connected and p.dropped]), a.connections)),
        ("time to connect all (from the first attempt)", "%.2f s" % samples["connect_s"]),
        ("open descriptors (actorrent)", "%d idle, %d with all connected" % (idle["fds"], conn["fds"])),
        ("RSS idle / all connected / end of hold", "%.1f / %.1f / %.1f MiB" % (idle["rss_kib"] / 1024, conn["rss_kib"] / 1024, end["rss_kib"] / 1024)),
        ("RssAnon idle / end of hold", "%.1f / %.1f MiB" % (idle["anon_kib"] / 1024, end["anon_kib"] / 1024)),
        ("memory per connection (RSS)", "%.1f KiB connected, %.1f KiB at the end" % (per_conn_kib, per_conn_end_kib)),
        ("CPU to accept all", "%.2f s (%.2f ms per connection)" % (connect_cpu, 1000 * connect_cpu / a.connections)),
        ("CPU holding idle connections", "%.2f s over %.1f s = %.1f%% of a core (%.1f µs per connection per second)"
         % (cpu_idle, idle_s, 100 * cpu_idle / idle_s, 1e6 * cpu_idle / idle_s / a.connections)),
        ("CPU while unchoked peers download", "%.2f s over %.1f s = %.1f%% of a core, %.1f MiB/s uploaded (%.1f CPU-ms per MiB)"
         % (cpu_busy, busy_s, 100 * cpu_busy / busy_s, up_mib / busy_s, 1000 * cpu_busy / max(up_mib, 1e-9))),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print("%-*s  %s" % (width, k, v))
    if a.report:
        with open(a.report, "a") as f:
            f.write("| measure | value |\n|---|---|\n")
            for k, v in rows:
                f.write("| %s | %s |\n" % (k, v))
    if stats["connected"] < a.connections:
        problems.append("only %d of %d peers connected" % (stats["connected"], a.connections))
    if dropped:
        problems.append("%d peers dropped, e.g. %s" % (len(dropped), sorted(set(dropped))[:3]))
    if not alive:
        problems.append("actorrent exited during the hold")
    # (seeding fresh data without resume data says so once: expected here)
    errors = [ln for ln in log.splitlines() if (" error " in ln or " warning " in ln)
              and "not found, but data files exist" not in ln]
    if errors:
        problems.append("actorrent logged %d warnings/errors, e.g. %s" % (len(errors), errors[0]))
    if per_conn_end_kib > a.max_kib_per_conn:
        problems.append("%.1f KiB per connection over the %.0f KiB bound" % (per_conn_end_kib, a.max_kib_per_conn))
    if problems:
        print("FAIL: " + "; ".join(problems), file=sys.stderr)
        return 1
    print("PASS: %d connections held for %.0f s" % (a.connections, a.hold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
