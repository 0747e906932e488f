#!/usr/bin/python3
"""Cluster nodes for the interop tests and the scaling benchmark (imported by cluster_test.py and
bench/cluster_scaling.py; builds on harness.py).

  * Node: an `actorrent cluster coordinator|worker` process whose every output line is kept with
    the moment it arrived (monotonic clock), so that "within 5 s" can be checked from the log
    whatever format the node prints its own timestamps in; lines are copied to NAME.log.
  * Cluster: starts a coordinator and workers of one job with free ports on 127.0.0.1 (or the
    addresses it is given), waits for the coordinator's listener, reads its progress lines.
  * IoMeter: bytes each node wrote to files (wchar of /proc/PID/io, sampled): a worker's share.
  * TcpMeter: bytes and data segments of the TCP connections on a port (ss -tin, sampled):
    what went between the nodes, or what a seeder uploaded.

What the assertions look for in the nodes' output (the vocabulary, kept in one place):
  coordinator stdout  a progress line a second naming `VERIFIED/TOTAL` pieces (or `P %`), and one
                      line `complete: NAME SIZE in S s (RATE), N workers` at the end;
  coordinator output  the loss of a worker (a line naming the worker and lost/down/...), the
                      reassignment (reassign/rebalance/...), refusals (refused ... reason), the
                      plan restored from --state (restored ... N pieces);
  worker output       "lost the coordinator", "refused by the coordinator: REASON".
"""
import os
import re
import signal
import subprocess
import threading
import time

import harness as H

COMPLETE_RE = re.compile(r"^complete: (.*)$")
WORKERS_RE = re.compile(r"(\d+) workers?\b")
PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)\s*%")
LOSS_WORDS = re.compile(r"\b(lost|down|gone|unreachable|dead|left|disconnected|expired|frozen)\b",
                        re.I)
REASSIGN_WORDS = re.compile(r"reassign|rebalanc|redistribut|handed over|hand-over|moved \d+|"
                            r"back to the pool", re.I)
REFUSED_WORDS = re.compile(r"refus", re.I)
RESTORED_WORDS = re.compile(r"restor|resum", re.I)
LOST_COORDINATOR = "lost the coordinator"
REFUSED_BY = "refused by the coordinator:"


class Failed(Exception):
    pass


class Node(H.Proc):
    """A cluster node in its own process group (killed with the harness session). stdout and
    stderr are read by two threads; lines(tag) gives (t, text) with t = time.monotonic() at
    arrival. The node flushes its lines (the CLI fflush()es), so arrival is within a few ms of
    printing."""

    def __init__(self, sess, name, argv, env=None, cwd=None, netns=None):
        self.name = name
        self.argv = list(argv) if netns is None else ["ip", "netns", "exec", netns] + list(argv)
        self.log_path = sess.path("%s.log" % name)
        self.stderr_path = None
        self._lines = []
        self._mu = threading.Lock()
        self._log = open(self.log_path, "w", encoding="utf-8")
        # `ip netns exec` execs the node: the pid stays the node's own
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, cwd=cwd,
                                      env=env if env is not None else H.child_env(),
                                      start_new_session=True, preexec_fn=H._child_setup)
        self.pid = self.popen.pid
        self.t_start = time.monotonic()
        self.wchar = 0
        self._readers = [threading.Thread(target=self._read, args=(s, tag), daemon=True)
                         for s, tag in ((self.popen.stdout, "out"), (self.popen.stderr, "err"))]
        for r in self._readers:
            r.start()
        sess.procs.append(self)
        H.log("%s: %s" % (name, " ".join(self.argv)))

    def _read(self, stream, tag):
        for raw in iter(stream.readline, b""):
            t = time.monotonic()
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._mu:
                self._lines.append((t, tag, text))
                self._log.write("[%s +%7.3fs %s] %s\n" % (time.strftime("%H:%M:%S"), t - H._T0, tag,
                                                          text))
                self._log.flush()
        stream.close()

    def lines(self, tag=None, after=0.0):
        with self._mu:
            return [(t, s) for t, g, s in self._lines if (tag is None or g == tag) and t >= after]

    def output(self):
        return "\n".join(s for _, s in self.lines())

    def stdout(self):
        return "\n".join(s for _, s in self.lines("out"))

    def first(self, pred, after=0.0, tag=None):
        """(t, line) of the first line (after `after`) for which pred(line) holds, or None."""
        for t, s in self.lines(tag, after):
            if pred(s):
                return t, s
        return None

    def wait_line(self, pred, timeout, after=0.0, tag=None):
        return H.wait_for(lambda: self.first(pred, after, tag), timeout, 0.05)

    def finish(self, timeout):
        """Wait for the exit and for the readers to drain the pipes; the exit status or None."""
        rc = self.wait(timeout)
        if rc is not None:
            for r in self._readers:
                r.join(2)
        return rc

    def signal(self, sig):
        os.kill(self.pid, sig)

    def stop(self, grace=5.0):
        self._killpg(signal.SIGCONT)   # a stopped node must run to act on SIGTERM
        rc = super().stop(grace)
        for r in self._readers:
            r.join(2)
        return rc

    def tail(self, lines=25):
        return H.tail(self.output(), lines)


def progress_of(line, num_pieces):
    """The fraction verified that a coordinator progress line states, or None."""
    if COMPLETE_RE.match(line):
        return None
    m = re.search(r"\b(\d+)\s*/\s*%d\b" % num_pieces, line)
    if m:
        return int(m.group(1)) / num_pieces
    m = PERCENT_RE.search(line)
    if m:
        return float(m.group(1)) / 100.0
    return None


def restored_count(line, num_pieces):
    """Pieces a restarted coordinator says it restored: `N/TOTAL`, `N of TOTAL` or `N pieces`."""
    for pat in (r"\b(\d+)\s*/\s*%d\b" % num_pieces, r"\b(\d+) of %d\b" % num_pieces,
                r"\b(\d+) (?:verified )?pieces?\b"):
        m = re.search(pat, line)
        if m:
            return int(m.group(1))
    return None


class IoMeter:
    """Samples wchar (bytes written through write/pwrite) of every node it is given, every
    `every` seconds, keeping the largest value on the node (node.wchar): a worker writes its
    verified pieces with pwrite, and next to nothing else (a few log lines), so wchar is its share
    of the download in bytes. The last <= `every` s before an exit is not seen."""

    def __init__(self, every=0.1):
        self.nodes = []
        self.every = every
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def add(self, node):
        self.nodes.append(node)
        self.sample(node)

    @staticmethod
    def sample(node):
        try:
            with open("/proc/%d/io" % node.pid) as f:
                for ln in f:
                    if ln.startswith("wchar:"):
                        node.wchar = max(node.wchar, int(ln.split()[1]))
        except (OSError, ValueError):
            pass

    def _run(self):
        while not self._stop.is_set():
            for n in list(self.nodes):
                if n.popen.returncode is None:
                    self.sample(n)
            self._stop.wait(self.every)

    def close(self):
        self._stop.set()
        self._t.join(2)


class TcpMeter:
    """Bytes and data segments on the TCP connections whose local port is `port` (so: as seen by
    the process listening there), from `ss -tin`, sampled every `every` seconds and kept per
    connection (a connection's counters grow until it closes; the last sample before a close is
    kept). netns: run ss in that network namespace."""

    def __init__(self, port, every=0.5, netns=None):
        self.port, self.every, self.netns = port, every, netns
        self.conns = {}   # (local, peer) -> dict(sent=, received=, segs_out=, segs_in=)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def sample(self):
        argv = ["ss", "-tinH", "state", "established", "( sport = :%d )" % self.port]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns] + argv
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return
        key = None
        for ln in out.splitlines():
            if not ln.startswith((" ", "\t")):
                f = ln.split()
                key = (f[-2], f[-1]) if len(f) >= 2 else None
                continue
            if key is None:
                continue
            vals = dict(re.findall(r"\b(bytes_acked|bytes_received|data_segs_out|data_segs_in):(\d+)",
                                   ln))
            old = self.conns.get(key, {})
            self.conns[key] = {
                "sent": max(old.get("sent", 0), int(vals.get("bytes_acked", 1)) - 1),
                "received": max(old.get("received", 0), int(vals.get("bytes_received", 0))),
                "segs_out": max(old.get("segs_out", 0), int(vals.get("data_segs_out", 0))),
                "segs_in": max(old.get("segs_in", 0), int(vals.get("data_segs_in", 0))),
            }

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def totals(self):
        t = {"sent": 0, "received": 0, "segs_out": 0, "segs_in": 0, "connections": len(self.conns)}
        for c in self.conns.values():
            for k in ("sent", "received", "segs_out", "segs_in"):
                t[k] += c[k]
        return t

    def close(self):
        self._stop.set()
        self._t.join(5)
        self.sample()


class Cluster:
    """One job: a coordinator (restartable) and its workers, all on `host` (127.0.0.1) unless a
    worker is given its own address and network namespace."""

    def __init__(self, sess, actorrent, torrent, mode="shared", host=H.LOOPBACK, netns=None,
                 verbose=True):
        # -v: the coordinator's info lines (a lost worker's pieces back to the pool, the plan
        # resumed from --state) are what the cases check
        self.verbose = verbose
        self.sess, self.actorrent, self.torrent, self.mode = sess, actorrent, torrent, mode
        self.host, self.netns = host, netns
        self.port = H.free_port()
        self.state = sess.path("coordinator-state")
        self.coordinators = []
        self.workers = []
        self.io = IoMeter()
        sess.at_close(self.io.close)

    @property
    def endpoint(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def coordinator(self):
        return self.coordinators[-1]

    def start_coordinator(self, workers, peers, extra=(), listen_timeout=20):
        argv = [self.actorrent, "cluster", "coordinator", self.torrent.path,
                "--listen", self.endpoint,
                "--workers", str(workers), "--mode", self.mode, "--state", self.state,
                "--no-tracker"] + (["-v"] if self.verbose else [])
        for p in peers:
            argv += ["--peer", p]
        argv += list(extra)
        name = "coordinator" if not self.coordinators else "coordinator-%d" % (len(self.coordinators) + 1)
        node = Node(self.sess, name, argv, cwd=self.sess.dir, netns=self.netns)
        self.coordinators.append(node)

        def listening():
            if not node.running():
                return True
            if self.netns:
                out = subprocess.run(["ip", "netns", "exec", self.netns, "ss", "-tlnH",
                                      "( sport = :%d )" % self.port], capture_output=True,
                                     text=True).stdout
                return bool(out.strip())
            return H.listening_on_loopback(self.port)
        if not H.wait_for(listening, listen_timeout, 0.05) or not node.running():
            raise Failed("coordinator not listening on %s (exit %s)\n%s"
                         % (self.endpoint, node.returncode, node.tail()))
        return node

    def start_worker(self, name, outdir, rate=None, env_extra=None, extra=(), host=None,
                     netns=None, join=None):
        host = host or self.host
        wport = H.free_port()
        os.makedirs(outdir, exist_ok=True)
        argv = [self.actorrent, "cluster", "worker", "--join", join or self.endpoint, "-o", outdir,
                "--listen", "%s:%d" % (host, wport), "--name", name, "--no-dht"]
        if rate:
            argv += ["--download-limit", str(rate)]
        argv += list(extra)
        env = H.child_env(env_extra)
        node = Node(self.sess, name, argv, env=env, cwd=self.sess.dir, netns=netns)
        node.listen = "%s:%d" % (host, wport)
        self.workers.append(node)
        self.io.add(node)
        return node

    def progress(self, coordinator=None):
        """(fraction, t) of the coordinator's latest progress line, or (0.0, None)."""
        c = coordinator or self.coordinator
        best = (0.0, None)
        for t, s in c.lines("out"):
            f = progress_of(s, self.torrent.num_pieces)
            if f is not None:
                best = (f, t)
        return best

    def diagnostics(self):
        parts = []
        for n in self.coordinators + self.workers:
            parts.append("--- %s (exit %s) ---\n%s" % (n.name, n.returncode, n.tail(20)))
        return "\n".join(parts)

    def wait_progress(self, fraction, timeout, coordinator=None):
        """Wait until the coordinator reports >= fraction verified; returns the fraction seen."""
        c = coordinator or self.coordinator
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f, _ = self.progress(c)
            if f >= fraction:
                return f
            if not c.running():
                raise Failed("the coordinator exited (%s) before %.0f %% (at %.1f %%)\n%s"
                             % (c.returncode, fraction * 100, f * 100, self.diagnostics()))
            time.sleep(0.05)
        raise Failed("no progress line at >= %.0f %% within %d s (last %.1f %%; the coordinator "
                     "must print VERIFIED/%d each second)\n%s"
                     % (fraction * 100, timeout, self.progress(c)[0] * 100,
                        self.torrent.num_pieces, self.diagnostics()))

    def wait_complete(self, timeout, workers=None, worker_grace=15):
        """The coordinator exits 0 with exactly one `complete:` line naming the torrent; every
        worker of `workers` (default: all still running) exits 0 soon after. Returns the line."""
        c = self.coordinator
        waiting = [w for w in (workers if workers is not None else self.workers)]
        rc = c.finish(timeout)
        if rc is None:
            raise Failed("the coordinator did not exit within %d s (at %.1f %%)\n%s"
                         % (timeout, self.progress()[0] * 100, self.diagnostics()))
        done = [s for _, s in c.lines("out") if COMPLETE_RE.match(s)]
        if rc != 0:
            raise Failed("the coordinator exited %d\n%s" % (rc, self.diagnostics()))
        if len(done) != 1 or not done[0].startswith("complete: %s " % self.torrent.name):
            raise Failed("want exactly one 'complete: %s ...' line on the coordinator's stdout, "
                         "got %r\n%s" % (self.torrent.name, done, self.diagnostics()))
        for w in waiting:
            wrc = w.finish(worker_grace)
            if wrc is None:
                raise Failed("worker %s still running %d s after the coordinator's exit\n%s"
                             % (w.name, worker_grace, self.diagnostics()))
            if wrc != 0:
                raise Failed("worker %s exited %d after the job was done\n%s"
                             % (w.name, wrc, self.diagnostics()))
        H.log("coordinator: %s" % done[0])
        return done[0]
