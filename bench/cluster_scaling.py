#!/usr/bin/python3
"""Cluster scaling benchmark (docs/CLUSTER.md, issue 13 point 5): does a cluster of N workers,
each limited to R, download at >= 0.85 * N * R?

  bench/cluster_scaling.py --actorrent build/actorrent [--workers 1,2,3,4] [--rate 4M]
                           [--size-mib 256] [--piece-kib 256] [--seeders 2]
                           [--network loopback,netns] [--delay-ms 20] [--timeout S]
                           [--out REPORT.md]

One single-file torrent of deterministic data on /dev/shm, seeded by --seeders uncapped libtorrent
seeders (python3-libtorrent; tests/interop/harness.py settings), then one shared-mode job per
cluster size and network:

  loopback  every node on 127.0.0.1; each worker limited by its own --download-limit R.
  netns     the seeders and the coordinator in a hub network namespace (a bridge, 10.77.0.1),
            each worker in a namespace of its own behind a veth pair whose both ends carry a
            `tc` qdisc: rate R and --delay-ms each way (netem). Without sch_netem in the kernel
            the veth carries the rate alone (tbf) and the delay comes from a relay instead: in
            each worker's namespace, one delay relay per seeder listens on 127.0.0.1:PORT and
            forwards to the seeder, holding every chunk --delay-ms in each direction, so that
            each request waits a round trip of 2 * --delay-ms (the workers dial the relays;
            TCP itself then runs without the delay). The report says which. Workers get no
            --download-limit there: the link is the limit. The namespaces are removed at the
            end, whatever happens.

Measured per job: wall time from the first worker's start to the coordinator's `complete:` line,
aggregate rate = size / that time, against the target 0.85 * N * R; the coordinator's CPU time
(utime + stime from /proc/PID/stat, sampled until it exits); bytes and TCP data segments between
the coordinator and the workers (ss -tin on the coordinator's port, both directions, sampled per
connection) per verified piece; the coordinator's own message counters if it prints any
(`N messages`), else "n/a"; what each worker wrote (its share, /proc/PID/io wchar).

Prints a markdown table and writes it to bench/results/cluster-scaling-<date>.md (--out to
choose). Every process is killed and the temp directory removed at the end (also on SIGINT/TERM).

Script modes (used inside the namespaces):
  cluster_scaling.py lt-seed TORRENT DATADIR --bind IP:PORT
  cluster_scaling.py delay-relay LISTEN_IP:PORT TARGET_IP:PORT --delay-ms MS
"""
import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
import harness as H  # noqa: E402
import cluster_nodes as C  # noqa: E402

HUB_IP = "10.77.0.1"
NET_PREFIX = 24
MESSAGES_RE = re.compile(r"(\d+) messages\b")


def parse_rate(text):
    """500000, 500K, 4M, 1G (binary multiples, as actorrent's --download-limit)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]?)", text.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError("bad rate %r (e.g. 4M)" % text)
    return int(float(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2).upper()])


# ------------------------------------------------------------------------------------ seeders
def lt_seed_main(argv):
    """A libtorrent seeder bound to IP:PORT (the harness's seeder binds 127.0.0.1 only)."""
    import libtorrent as lt
    ap = argparse.ArgumentParser(prog="cluster_scaling.py lt-seed")
    ap.add_argument("torrent")
    ap.add_argument("datadir")
    ap.add_argument("--bind", required=True)
    a = ap.parse_args(argv)
    ip, port = a.bind.rsplit(":", 1)
    ses = H._lt_session(lt, int(port))
    ses.apply_settings({"listen_interfaces": "%s:%s" % (ip, port), "outgoing_interfaces": ip})
    h, _ = H._lt_add(lt, ses, a.torrent, a.datadir, True, True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    ready = False
    while not stop:
        ses.pop_alerts()
        if not ready and h.status().is_seeding:
            ready = True
            print("READY %s" % a.bind, flush=True)
        ses.wait_for_alert(250)
    return 0


class HubSeeder(H.Seeder):
    """The libtorrent seeder of lt_seed_main, inside the hub namespace."""
    kind = "libtorrent"
    needs = ("libtorrent",)

    def __init__(self, *a, netns, ip, **kw):
        super().__init__(*a, **kw)
        self.netns, self.ip = netns, ip

    @property
    def endpoint(self):
        return "%s:%d" % (self.ip, self.port)

    def command(self):
        return ["ip", "netns", "exec", self.netns, H.PY, os.path.abspath(__file__), "lt-seed",
                self.torrent.path, self.datadir, "--bind", self.endpoint]

    def wait_ready(self, timeout):
        if not H.wait_for(lambda: not self.proc.running() or "READY" in self.proc.output(), timeout):
            raise H.HarnessError("hub seeder %s not ready: %s" % (self.endpoint, self.log_tail()))
        H.log("libtorrent seeder ready on %s (namespace %s)" % (self.endpoint, self.netns))


# ------------------------------------------------------------------------------------ delay relay
def delay_relay_main(argv):
    """Accepts on LISTEN, connects each connection to TARGET, and forwards every chunk read in
    either direction MS later (order kept). Memory is bounded by what the peers have in flight:
    a BitTorrent seeder sends only the blocks it was asked for."""
    import asyncio
    ap = argparse.ArgumentParser(prog="cluster_scaling.py delay-relay")
    ap.add_argument("listen")
    ap.add_argument("target")
    ap.add_argument("--delay-ms", type=int, required=True)
    a = ap.parse_args(argv)
    lhost, lport = a.listen.rsplit(":", 1)
    thost, tport = a.target.rsplit(":", 1)
    delay = a.delay_ms / 1000.0

    async def pipe(reader, writer):
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()

        async def pump_in():
            while True:
                try:
                    data = await reader.read(1 << 16)
                except OSError:
                    data = b""
                queue.put_nowait((loop.time() + delay, data))
                if not data:
                    return

        async def pump_out():
            try:
                while True:
                    due, data = await queue.get()
                    wait = due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

        await asyncio.gather(pump_in(), pump_out())

    async def serve(reader, writer):
        try:
            up_r, up_w = await asyncio.open_connection(thost, int(tport))
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer), return_exceptions=True)

    async def run():
        server = await asyncio.start_server(serve, lhost, int(lport))
        print("READY", flush=True)
        async with server:
            await server.serve_forever()

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    asyncio.run(run())
    return 0


# ------------------------------------------------------------------------------------ namespaces
def sh(*argv, check=True):
    r = subprocess.run(argv, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise H.HarnessError("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r


class Namespaces:
    """hub (bridge br0 = HUB_IP, seeders, coordinator) + one namespace per worker, each joined to
    the bridge by a veth pair shaped with tc. close() deletes every namespace it made."""

    def __init__(self, workers, rate, delay_ms):
        self.tag = "actb%d" % os.getpid()
        self.hub = self.tag + "-hub"
        self.made = []
        self.rate, self.delay_ms = rate, delay_ms
        self.netem = self._have_netem()
        self.shaping = ("netem delay %d ms + rate, each way" % delay_ms if self.netem
                        else "tbf rate on the veth; sch_netem is missing from this kernel, so the "
                        "%d ms each way come from a relay per seeder in each worker's namespace "
                        "(application-level delay: a request waits %d ms for its block; TCP "
                        "itself runs without it)" % (delay_ms, 2 * delay_ms) if delay_ms
                        else "tbf rate only, no delay")
        try:
            self._build(workers)
        except BaseException:
            self.close()
            raise

    def _build(self, workers):
        self._ns(self.hub)
        sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.hub, "addr", "add", "%s/%d" % (HUB_IP, NET_PREFIX), "dev", "br0")
        sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        self.workers = []
        for i in range(1, workers + 1):
            ns = "%s-w%d" % (self.tag, i)
            self._ns(ns)
            hub_end = "h%d" % i
            sh("ip", "link", "add", hub_end, "netns", self.hub, "type", "veth", "peer", "name",
               "eth0", "netns", ns)
            sh("ip", "-n", self.hub, "link", "set", hub_end, "master", "br0", "up")
            ip = "10.77.0.%d" % (10 + i)
            sh("ip", "-n", ns, "addr", "add", "%s/%d" % (ip, NET_PREFIX), "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            self._shape(self.hub, hub_end)   # towards the worker: its download
            self._shape(ns, "eth0")          # from the worker: its requests and uploads
            self.workers.append((ns, ip))

    def _ns(self, name):
        sh("ip", "netns", "add", name)
        self.made.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def _have_netem(self):
        probe = self.tag + "-probe"
        sh("ip", "netns", "add", probe)
        try:
            sh("ip", "-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
            return sh("tc", "-n", probe, "qdisc", "add", "dev", "p0", "root", "netem", "delay", "1ms",
                      check=False).returncode == 0
        finally:
            sh("ip", "netns", "del", probe, check=False)

    def _shape(self, ns, dev):
        bits = "%dbit" % (self.rate * 8)
        if self.netem:
            sh("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "netem", "delay",
               "%dms" % self.delay_ms, "rate", bits, "limit", "10000")
        else:
            sh("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", bits,
               "burst", "128kb", "latency", "500ms")

    def relays(self, sess, seeders):
        """Without netem: a delay relay per seeder in every worker namespace, each on
        127.0.0.1:<the seeder's port> there (each namespace has its own loopback). Returns the
        peer list the workers dial."""
        if self.netem or not self.delay_ms:
            return [s.endpoint for s in seeders]
        self.relay_procs = getattr(self, "relay_procs", [])
        for ns, _ in self.workers:
            for s in seeders:
                port = s.endpoint.rsplit(":", 1)[1]
                p = sess.spawn("relay-%s-%s" % (ns, port),
                               ["ip", "netns", "exec", ns, H.PY, os.path.abspath(__file__),
                                "delay-relay", "127.0.0.1:" + port, s.endpoint,
                                "--delay-ms", str(self.delay_ms)])
                self.relay_procs.append(p)
                if not H.wait_for(lambda: not p.running() or "READY" in open(p.log_path).read(), 10):
                    raise H.HarnessError("delay relay in %s not ready" % ns)
                if not p.running():
                    raise H.HarnessError("delay relay in %s: %s" % (ns, open(p.log_path).read()))
        return ["127.0.0.1:" + s.endpoint.rsplit(":", 1)[1] for s in seeders]

    def close(self):
        for p in getattr(self, "relay_procs", []):
            p.stop(grace=1.0)
        self.relay_procs = []
        for ns in reversed(self.made):
            sh("ip", "netns", "del", ns, check=False)
        self.made = []


# ------------------------------------------------------------------------------------ one job
def cpu_seconds(pid):
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run_job(sess, args, torrent, payload, peers, n, network, nets=None):
    name = "%s-%d" % (network, n)
    out = sess.mkdir("out-" + name)
    hub = nets.hub if nets else None
    cl = C.Cluster(sess, args.actorrent, torrent, "shared", host=HUB_IP if nets else H.LOOPBACK,
                   netns=hub, verbose=False)
    cl.state = sess.path("state-" + name)
    coord = cl.start_coordinator(n, peers)
    coord.name = "coordinator-" + name
    meter = C.TcpMeter(cl.port, every=0.25, netns=hub)
    sess.at_close(meter.close)
    cpu = [0.0]

    t0 = time.monotonic()
    workers = []
    for i in range(1, n + 1):
        if nets:
            ns, ip = nets.workers[i - 1]
            workers.append(cl.start_worker("%s-w%d" % (name, i), out, host=ip, netns=ns,
                                           join=cl.endpoint))
        else:
            workers.append(cl.start_worker("%s-w%d" % (name, i), out, rate=args.rate))
    row = {"network": network, "workers": n, "ok": False, "note": ""}
    try:
        deadline = time.monotonic() + args.timeout
        done = None
        while time.monotonic() < deadline and coord.running():
            c = cpu_seconds(coord.pid)
            if c is not None:
                cpu[0] = max(cpu[0], c)
            done = done or coord.first(lambda s: C.COMPLETE_RE.match(s) is not None, tag="out")
            time.sleep(0.1)
        rc = coord.finish(5)
        done = done or coord.first(lambda s: C.COMPLETE_RE.match(s) is not None, tag="out")
        if rc != 0 or not done:
            row["note"] = "coordinator exit %s, %s" % (rc, "no complete: line" if not done else "")
            H.log("job %s failed\n%s" % (name, cl.diagnostics()))
            return row
        wall = done[0] - t0
        problems = H.verify_download(payload, out)
        meter.close()
        tot = meter.totals()
        msgs = [int(m.group(1)) for _, s in coord.lines() for m in MESSAGES_RE.finditer(s)]
        rate = torrent.total_size / wall
        target = 0.85 * n * args.rate
        row.update({
            "ok": not problems, "wall": wall, "rate": rate, "target": target, "ratio": rate / target,
            "cpu": cpu[0], "bytes_per_piece": (tot["sent"] + tot["received"]) / torrent.num_pieces,
            "segs_per_piece": (tot["segs_out"] + tot["segs_in"]) / torrent.num_pieces,
            "msgs_per_piece": (max(msgs) / torrent.num_pieces) if msgs else None,
            "shares": [w.wchar for w in workers], "complete": done[1],
            "note": "; ".join(problems) if problems else ""})
        H.log("job %s: %.1f s, %.2f MiB/s (target %.2f, ratio %.2f), coordinator CPU %.2f s, "
              "%.0f bytes/piece between nodes" % (name, wall, rate / H.MiB, target / H.MiB,
                                                  row["ratio"], cpu[0], row["bytes_per_piece"]))
        return row
    finally:
        for w in workers:
            w.stop(grace=3)
        coord.stop(grace=3)


def fmt_row(r, size):
    if "rate" not in r:
        return "| %s | %d | - | - | - | - | - | - | - | - | FAILED: %s |" % (
            r["network"], r["workers"], r["note"])
    shares = ", ".join("%.0f%%" % (100.0 * s / size) for s in r["shares"])
    return "| %s | %d | %.1f | %.2f | %.2f | %.2f %s | %.2f | %.0f | %.1f | %s | %s%s |" % (
        r["network"], r["workers"], r["wall"], r["rate"] / H.MiB, r["target"] / H.MiB, r["ratio"],
        "ok" if r["ratio"] >= 1.0 else "BELOW", r["cpu"], r["bytes_per_piece"], r["segs_per_piece"],
        "%.1f" % r["msgs_per_piece"] if r["msgs_per_piece"] is not None else "n/a", shares,
        "" if r["ok"] else " NOT BYTE-EXACT: " + r["note"])


def _interrupt(*_):
    raise KeyboardInterrupt()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "lt-seed":
        return lt_seed_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "delay-relay":
        return delay_relay_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", required=True)
    ap.add_argument("--workers", default="1,2,3,4")
    ap.add_argument("--rate", type=parse_rate, default=parse_rate("4M"), help="R per worker")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--piece-kib", type=int, default=256)
    ap.add_argument("--seeders", type=int, default=2)
    ap.add_argument("--network", default="loopback,netns")
    ap.add_argument("--delay-ms", type=int, default=20)
    ap.add_argument("--timeout", type=int, default=600, help="per job")
    ap.add_argument("--out")
    args = ap.parse_args()
    args.actorrent = os.path.abspath(args.actorrent)
    counts = [int(x) for x in args.workers.split(",")]
    networks = [x for x in args.network.split(",") if x]
    if any(x not in ("loopback", "netns") for x in networks):
        ap.error("--network: loopback and/or netns")
    if "netns" in networks and os.geteuid() != 0:
        ap.error("--network netns needs root (network namespaces and tc)")
    H.require(("libtorrent",))
    signal.signal(signal.SIGTERM, _interrupt)

    rows, shaping = [], None
    sess = H.Session("actorrent-cluster-bench-")
    nets = None
    try:
        seed_root = sess.mkdir("seed", mode=0o755)
        size = args.size_mib * H.MiB
        H.log("payload: %d MiB in %s" % (args.size_mib, sess.dir))
        payload = H.make_payload(seed_root, "cluster-bench-%dMiB.bin" % args.size_mib, size=size,
                                 seed="cluster-bench")
        torrent = H.make_torrent(payload, args.piece_kib * H.KiB, sess.path("bench.torrent"))
        for network in networks:
            seeders = []
            if network == "netns":
                nets = Namespaces(max(counts), args.rate, args.delay_ms)
                shaping = nets.shaping
                for _ in range(args.seeders):
                    seeders.append(HubSeeder(sess, torrent, seed_root, netns=nets.hub,
                                             ip=HUB_IP).start(timeout=60))
                peers = nets.relays(sess, seeders)
            else:
                for _ in range(args.seeders):
                    seeders.append(H.LibtorrentSeeder(sess, torrent, seed_root).start(timeout=60))
                peers = [s.endpoint for s in seeders]
            for n in counts:
                rows.append(run_job(sess, args, torrent, payload, peers, n,
                                    network, nets if network == "netns" else None))
            for s in seeders:
                s.stop()
            if nets:
                nets.close()
                nets = None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        sess.close()
        if nets:
            nets.close()

    head = ("| network | workers | s | MiB/s | target 0.85·N·R | ratio | coordinator CPU s | "
            "node bytes/piece | node TCP segments/piece | messages/piece | shares |")
    lines = [
        "# Cluster scaling, %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "",
        "`bench/cluster_scaling.py --workers %s --rate %d --size-mib %d --piece-kib %d --seeders %d "
        "--network %s --delay-ms %d`" % (args.workers, args.rate, args.size_mib, args.piece_kib,
                                         args.seeders, args.network, args.delay_ms),
        "",
        "Machine: %s, %d cores, load %s. One shared-mode job per row against %d uncapped "
        "libtorrent seeders; R = %.2f MiB/s per worker (loopback: --download-limit; netns: %s)."
        % (platform.platform(), os.cpu_count(), "%.2f %.2f %.2f" % os.getloadavg(), args.seeders,
           args.rate / H.MiB, shaping or "not run"),
        "Time from the first worker's start to the coordinator's `complete:` line (joining "
        "included). Node bytes and segments: both directions of every coordinator-worker TCP "
        "connection (ss); messages: the coordinator's own counter when it prints one.",
        "",
        head,
        "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|",
    ]
    lines += [fmt_row(r, args.size_mib * H.MiB) for r in rows]
    report = "\n".join(lines) + "\n"
    print(report)
    out = args.out or os.path.join(HERE, "results", "cluster-scaling-%s.md" % time.strftime("%Y-%m-%d"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(report)
    print("written: %s" % out)
    return 0 if rows and all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
