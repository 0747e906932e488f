#!/usr/bin/python3
"""End-to-end benchmark of actorrent against real BitTorrent clients on 127.0.0.1.

  bench/e2e.py [--size-mib N] [--reps N] [--only RUN[,RUN...]] [--actorrent PATH]
               [--out REPORT.md] [--timeout S] [--wait-quiet S] [--list]

One single-file torrent (default 1 GiB, 256 KiB pieces) of deterministic data on tmpfs
(/dev/shm), then these runs, each repeated --reps times (interleaved: rep 1 of every run, then
rep 2, ...; the order inside a group rotates from rep to rep).  Every "libtorrent seeder" is
bench/lt_client seed (libtorrent 2 in C++, POSIX disk I/O) and has hashed all of its data
before the run's clock starts: no seed mode, so no lazy hashing inside the timed window.

  a.lt_client     libtorrent seeder -> lt_client      THE baseline: every ratio divides by it
  a.actorrent     libtorrent seeder -> actorrent      (--peer SEEDER --no-tracker)
  a.libtorrent    libtorrent seeder -> Python libtorrent (harness.py lt-download; mmap disk I/O)
  a.aria2         libtorrent seeder -> aria2c         (through a fresh opentracker: aria2c cannot
                                                       be told to dial a peer)
  a.transmission  libtorrent seeder -> transmission-cli (no tracker: the seeder dials the leecher,
                                                       transmission never dials 127.0.0.0/8)
  b.actorrent     actorrent seeder  -> actorrent
  b.lt_client     libtorrent seeder -> lt_client      (a.lt_client measured again: noise)
  c.actorrent     4 libtorrent seeders -> actorrent   (4 x --peer)
  c.lt_client     4 libtorrent seeders -> lt_client

Every run gets fresh seeder process(es) (and a fresh tracker for aria2) and a fresh output dir.
Measured for the downloader only: time from launch to the client's own completion signal
("complete:" line, aria2's "Download complete", transmission's -f script), CPU user+sys of its
process tree (wait4() rusage at exit: the process plus its reaped children), peak RssAnon
(/proc/PID/status of the downloader process, sampled every 50 ms; file pages are not counted:
libtorrent maps the payload.  Each client is one process; a forked child -- transmission's -f
script -- would share the parent's anonymous pages copy-on-write and be counted twice).  A run is ok when the client completed, exited (status 0;
transmission-cli exits by signal) and the file is byte-identical to the payload.

Writes bench/results/e2e-<date>.md (medians, ratios against the targets) and the per-rep raw
numbers as JSON lines next to it (.jsonl).  RUN for --only: a run name or a group (a, b, c).

All third-party clients run loopback-only with DHT, LSD, PEX, UPnP, NAT-PMP and uTP off (the
settings of tests/interop/harness.py, which this script imports).  Everything runs in one temp
dir under /dev/shm, removed at the end; every child is killed at the end (also on SIGINT/TERM).

bench/lt_client is built by bench/CMakeLists.txt when libtorrent-rasterbar-dev is installed
(bench/run_e2e.sh builds it).
"""
import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
import harness as H  # noqa: E402

KiB, MiB, GiB = 1024, 1024 * 1024, 1024 ** 3
SCRIPT = os.path.abspath(__file__)
CLK_TCK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.05           # RssAnon / completion polling period
EXIT_GRACE = 15           # a client that reported completion must exit within this
LOAD_QUIET = 1.5


# ------------------------------------------------------------------------------ seeders
class LtSeeder(H.Seeder):
    """bench/lt_client seed: libtorrent 2 in C++ (POSIX disk I/O) that hashes all of its data
    before it reports READY -- no seed mode, so no lazy hashing inside the timed window -- and
    dials every HOST:PORT written to its dial file (needed for transmission-cli leechers)."""
    kind = "libtorrent"
    binary = None

    def command(self):
        c = [self.binary, "seed", self.torrent.path, self.datadir, "--port", str(self.port),
             "--dial-file", os.path.join(self.home, "dial")]
        if not self.tracker:
            c.append("--no-tracker")
        return c

    def client_ready(self):
        return "READY" in self.proc.output()

    def dial(self, endpoint):
        tmp = os.path.join(self.home, "dial.tmp")
        with open(tmp, "w") as f:
            f.write(endpoint + "\n")
        os.replace(tmp, os.path.join(self.home, "dial"))


class ActorrentSeeder(H.Seeder):
    kind = "actorrent"
    binary = None

    def command(self):
        return [self.binary, "seed", self.torrent.path, self.datadir, "--listen", self.endpoint,
                "--no-tracker", "-q"]

    def client_ready(self):
        return "seeding:" in self.proc.output()


# ------------------------------------------------------------------------------ runs
class RunSpec:
    def __init__(self, name, group, client, seeder, nseeders, note):
        self.name, self.group, self.client, self.seeder, self.nseeders, self.note = \
            name, group, client, seeder, nseeders, note


RUNS = [
    RunSpec("a.lt_client", "a", "lt_client", "libtorrent", 1, "THE baseline: C++ libtorrent, POSIX disk I/O; --peer"),
    RunSpec("a.actorrent", "a", "actorrent", "libtorrent", 1, "--peer SEEDER --no-tracker"),
    RunSpec("a.libtorrent", "a", "libtorrent", "libtorrent", 1, "Python libtorrent (mmap disk I/O); --peer"),
    RunSpec("a.aria2", "a", "aria2", "libtorrent", 1, "via opentracker (aria2c cannot dial a given peer)"),
    RunSpec("a.transmission", "a", "transmission", "libtorrent", 1,
            "no tracker; the seeder dials the leecher (transmission never dials 127.0.0.0/8)"),
    RunSpec("b.actorrent", "b", "actorrent", "actorrent", 1, "actorrent seed -> actorrent download, --peer"),
    RunSpec("b.lt_client", "b", "lt_client", "libtorrent", 1, "lt_client -> lt_client (a.lt_client again: noise)"),
    RunSpec("c.actorrent", "c", "actorrent", "libtorrent", 4, "4 x --peer"),
    RunSpec("c.lt_client", "c", "lt_client", "libtorrent", 4, "4 x --peer (baseline)"),
]
GROUP_TITLES = {
    "a": "a. One libtorrent seeder (lt_client, checked before the window), five downloaders",
    "b": "b. Each client seeding to itself",
    "c": "c. Four libtorrent seeders at once",
}


def select_runs(only):
    if not only:
        return list(RUNS)
    want = [w.strip() for w in only.split(",") if w.strip()]
    sel = [r for r in RUNS if r.name in want or r.group in want]
    unknown = [w for w in want if not any(r.name == w or r.group == w for r in RUNS)]
    if unknown:
        raise SystemExit("unknown run(s) %s; have: %s" % (", ".join(unknown), " ".join(r.name for r in RUNS)))
    return sel


# ------------------------------------------------------------------------------ /proc helpers
def rss_anon_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def proc_cpu_s(pid):
    """utime+stime of a live process (seconds), None if gone."""
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def system_cpu():
    """(busy seconds over all CPUs, steal seconds) from /proc/stat."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def loadavg():
    return float(open("/proc/loadavg").read().split()[0])


def files_equal(a, b, chunk=8 * MiB):
    try:
        if os.path.getsize(a) != os.path.getsize(b):
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                x = fa.read(chunk)
                if x != fb.read(chunk):
                    return False
                if not x:
                    return True
    except OSError:
        return False


class LogReader:
    """Accumulates a child's log incrementally."""

    def __init__(self, path):
        self.path, self.pos, self.text = path, 0, ""

    def read(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return self.text
        self.pos += len(data)
        self.text += data.decode("utf-8", "replace")
        return self.text


# ------------------------------------------------------------------------------ downloaders
class Leecher:
    """One downloader: argv, its home dir, the port it listens on (for the seeder to dial) and
    its completion test on its log text."""

    def __init__(self, sess, kind):
        self.kind = kind
        self.port = H.free_port()
        self.name = "leech-%s-%d" % (kind, self.port)
        self.home = sess.mkdir(self.name)
        self.argv, self.done_file = None, None

    @property
    def endpoint(self):
        return "%s:%d" % (H.LOOPBACK, self.port)

    def completed(self, text):
        if self.kind == "aria2":
            return "Download complete" in text
        if self.kind == "transmission":
            return os.path.exists(self.done_file)
        return re.search(r"(?m)^complete:", text) is not None


def make_leecher(spec, bench, sess, torrent, outdir, seeders, timeout):
    lc = Leecher(sess, spec.client)
    peers = [s.endpoint for s in seeders]
    if spec.client == "actorrent":
        lc.argv = [bench.actorrent, "download", "--listen", "127.0.0.1:0", torrent.path, "-o", outdir, "--no-tracker", "-q",
                   "--timeout", str(int(timeout))]
        for p in peers:
            lc.argv += ["--peer", p]
    elif spec.client == "lt_client":
        # the baseline: bench/lt_client (libtorrent 2 in C++, POSIX disk I/O)
        lc.argv = [bench.lt_client, "download", torrent.path, "-o", outdir, "--port", str(lc.port),
                   "--timeout", str(int(timeout)), "--no-tracker"]
        for p in peers:
            lc.argv += ["--peer", p]
    elif spec.client == "libtorrent":
        # harness.py lt-download: libtorrent 2.0 with harness.py's session settings
        lc.argv = [H.PY, os.path.join(H.HERE, "harness.py"), "lt-download", torrent.path, "-o", outdir,
                   "--port", str(lc.port), "--timeout", str(int(timeout)), "--no-tracker"]
        for p in peers:
            lc.argv += ["--peer", p]
    elif spec.client == "aria2":
        # harness.py's aria2c base options; exits once complete (--seed-time=0); notice-level
        # logging and no periodic summary, so it is not charged for logging every block
        lc.argv = ["aria2c"] + H.ARIA2_BASE + [
            "--dir=" + outdir, "--listen-port=%d" % lc.port, "--log=" + os.path.join(lc.home, "aria2.log"),
            "--log-level=notice", "--console-log-level=notice", "--summary-interval=0", "--seed-time=0",
            "--bt-tracker-interval=2", "--allow-overwrite=true", "--auto-file-renaming=false",
            "--stop=%d" % int(timeout), torrent.path]
    elif spec.client == "transmission":
        # transmission-cli leeches with the same settings it seeds with: harness.py's seeder
        # command (settings.json: DHT/LPD/PEX/uTP/port mapping off, bound to 127.0.0.1) pointed at
        # the empty output dir, plus -f: a script run on completion that records the time and
        # stops it (it never exits by itself)
        ts = H.TransmissionSeeder(sess, torrent, outdir, port=lc.port, name=lc.name)
        argv = ts.command()
        lc.done_file = os.path.join(lc.home, "done")
        fin = os.path.join(lc.home, "finish.sh")
        with open(fin, "w") as f:
            f.write("#!/bin/sh\ndate +%%s.%%N > '%s.tmp' && mv '%s.tmp' '%s'\nkill -TERM $PPID\n"
                    % (lc.done_file, lc.done_file, lc.done_file))
        os.chmod(fin, 0o755)
        lc.argv = argv[:-1] + ["-f", fin, argv[-1]]
    else:
        raise ValueError(spec.client)
    return lc


class Bench:
    def __init__(self, args):
        self.args = args
        self.actorrent = os.path.abspath(args.actorrent)
        ActorrentSeeder.binary = self.actorrent
        self.lt_client = LtSeeder.binary = os.path.abspath(args.lt_client)

    def torrent_with_announce(self, sess, torrent, url, tag):
        """Copy of torrent with an announce URL (same info dict, same info-hash)."""
        meta = dict(torrent.meta)
        meta[b"announce"] = url.encode()
        path = sess.path("%s.torrent" % tag)
        with open(path, "wb") as f:
            f.write(H.bencode(meta))
        t = H.load_torrent(path)
        assert t.info_hash == torrent.info_hash
        return t

    def run_once(self, sess, spec, rep, payload, torrent):
        rec = {"run": spec.name, "group": spec.group, "client": spec.client, "seeder": spec.seeder,
               "seeders": spec.nseeders, "rep": rep, "bytes": payload.total_size, "ok": False, "error": None}
        timeout = self.args.timeout
        outdir = sess.mkdir("out-%s-%d" % (spec.name, rep))
        seeders, tracker, proc = [], None, None
        try:
            t = torrent
            if spec.client == "aria2":
                tracker = H.OpenTracker(sess).start([torrent.info_hash])
                t = self.torrent_with_announce(sess, torrent, tracker.announce_url, "aria2-%d" % rep)
            for _ in range(spec.nseeders):
                cls = ActorrentSeeder if spec.seeder == "actorrent" else LtSeeder
                s = cls(sess, t, payload.root, tracker=tracker)
                seeders.append(s)
                s.start(timeout=120)
            lc = make_leecher(spec, self, sess, t, outdir, seeders, timeout)
            rec["argv"] = lc.argv
            seed_cpu0 = [proc_cpu_s(s.proc.pid) or 0.0 for s in seeders]
            busy0, steal0 = system_cpu()
            self_cpu0 = sum(os.times()[:2])
            rec["load_before"] = loadavg()
            wall0 = time.time()
            proc = sess.spawn(lc.name, lc.argv, cwd=lc.home, env=H.child_env(c_locale=spec.client != "actorrent"))
            t0 = proc.t_start
            log_reader = LogReader(proc.log_path)
            t_complete = t_exit = None
            rusage = status = None
            peak_kib = 0
            dialed = spec.client != "transmission"
            deadline = t0 + timeout
            while True:
                exited = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
                now = time.monotonic()
                if exited:
                    # kill leftovers of its group while the leader is a zombie (its pid, the group
                    # id, cannot be reused yet), then reap it: wait4 gives the tree's rusage
                    proc._killpg(signal.SIGKILL)
                    _, st, ru = os.wait4(proc.pid, 0)
                    t_exit, status, rusage = now, st, ru
                    proc.popen.returncode = os.waitstatus_to_exitcode(st)   # reaped here, for Popen
                else:
                    peak_kib = max(peak_kib, rss_anon_kib(proc.pid))
                if t_complete is None and lc.completed(log_reader.read()):
                    t_complete = now
                    if spec.client == "transmission":     # its finish script's own timestamp
                        try:
                            t_complete = t0 + float(open(lc.done_file).read()) - wall0
                        except (OSError, ValueError):
                            pass
                if t_exit is not None:
                    break
                if not dialed and H.listening_on_loopback(lc.port):
                    for s in seeders:
                        s.dial(lc.endpoint)
                    dialed = True
                if now > deadline or (t_complete is not None and now > t_complete + EXIT_GRACE):
                    rec["error"] = ("completed but did not exit within %ds" % EXIT_GRACE if t_complete
                                    else "timeout after %ds" % timeout)
                    proc._killpg(signal.SIGKILL)
                    _, st, ru = os.wait4(proc.pid, 0)
                    t_exit, status, rusage = time.monotonic(), st, ru
                    proc.popen.returncode = os.waitstatus_to_exitcode(st)
                    break
                time.sleep(SAMPLE_S)
            busy1, steal1 = system_cpu()
            seed_cpu = sum((proc_cpu_s(s.proc.pid) or c0) - c0 for s, c0 in zip(seeders, seed_cpu0))
            self_cpu = sum(os.times()[:2]) - self_cpu0
            rc = os.waitstatus_to_exitcode(status)
            cpu_user, cpu_sys = rusage.ru_utime, rusage.ru_stime
            if t_complete is not None and t_complete > t_exit:
                t_complete = t_exit
            rec.update({
                "rc": rc, "t_complete": None if t_complete is None else round(t_complete - t0, 3),
                "t_exit": round(t_exit - t0, 3),
                "cpu_user": round(cpu_user, 3), "cpu_sys": round(cpu_sys, 3), "cpu": round(cpu_user + cpu_sys, 3),
                "rss_anon_peak_mib": round(peak_kib / 1024, 1),
                "maxrss_mib": round(rusage.ru_maxrss / 1024, 1),   # incl. file pages (info only)
                "seeder_cpu": round(seed_cpu, 2),
                "other_cpu": round(busy1 - busy0 - (cpu_user + cpu_sys) - seed_cpu - self_cpu, 2),
                "steal_s": round(steal1 - steal0, 2), "load_after": loadavg(),
            })
            if t_complete is not None:
                rec["mib_s"] = round(payload.total_size / MiB / (t_complete - t0), 1)
                rec["cpu_per_gib"] = round((cpu_user + cpu_sys) / (payload.total_size / GiB), 3)
            if rec["error"] is None:
                if t_complete is None:
                    rec["error"] = "exited with %s without reporting completion" % rc
                elif rc != 0 and spec.client != "transmission":
                    rec["error"] = "exit status %s" % rc
            if rec["error"] is None:
                if files_equal(payload.path_in(payload.root, ""), payload.path_in(outdir, "")):
                    rec["ok"] = True
                else:
                    rec["error"] = "downloaded file differs from the payload"
            if not rec["ok"]:
                rec["log_tail"] = H.tail(proc.output(), 15)
        except Exception as e:   # a run that cannot even start counts as failed, the bench goes on
            rec["error"] = rec["error"] or "%s: %s" % (type(e).__name__, str(e)[:2000])
            if proc is not None:
                rec["log_tail"] = H.tail(proc.output(), 15)
        finally:
            if proc is not None:
                proc.stop(grace=3)
            for s in seeders:
                if s.proc:
                    s.stop()
            if tracker:
                tracker.stop()
            shutil.rmtree(outdir, ignore_errors=True)
        return rec


# ------------------------------------------------------------------------------ report
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(rows):
    """run name -> summary dict over its reps."""
    out = {}
    for spec in RUNS:
        rs = [r for r in rows if r["run"] == spec.name]
        if not rs:
            continue
        ok = [r for r in rs if r["ok"]]
        s = {"spec": spec, "reps": len(rs), "ok": len(ok), "rows": rs}
        if ok:
            t = med([r["t_complete"] for r in ok])
            s.update(t=t, mib_s=ok[0]["bytes"] / MiB / t, cpu=med([r["cpu"] for r in ok]),
                     cpu_per_gib=med([r["cpu_per_gib"] for r in ok]),
                     rss=med([r["rss_anon_peak_mib"] for r in ok]),
                     t_exit=med([r["t_exit"] for r in ok]),
                     seeder_cpu=med([r["seeder_cpu"] for r in ok]),
                     other_cpu=med([r["other_cpu"] for r in ok]))
        out[spec.name] = s
    return out


def fmt(x, nd=2):
    return "n/a" if x is None else ("%.*f" % (nd, x))


# Every ratio's denominator is the same baseline run, a.lt_client (bench/lt_client: libtorrent 2 in
# C++, POSIX disk I/O, from the same checked seeder), except where a target names another client.
RATIOS = [
    # (label, numerator run, denominator run or None for an absolute figure, field,
    #  higher_is_better, target, target text)
    ("download rate: actorrent ÷ lt_client (same seeder)", "a.actorrent", "a.lt_client",
     "mib_s", True, 1.3, "≥ 1.3×"),
    ("CPU s per GiB: actorrent (absolute)", "a.actorrent", None, "cpu_per_gib", False, 1.5, "≤ 1.5 s"),
    ("CPU s/GiB: actorrent ÷ lt_client", "a.actorrent", "a.lt_client", "cpu_per_gib", False, 0.5, "≤ 0.5×"),
    ("rate: actorrent→actorrent ÷ lt_client→lt_client", "b.actorrent", "a.lt_client", "mib_s", True, 2.0, "≥ 2×"),
    ("CPU s/GiB: actorrent ÷ aria2", "a.actorrent", "a.aria2", "cpu_per_gib", False, 1.0, "< 1× (below aria2)"),
    ("peak RssAnon: actorrent ÷ aria2", "a.actorrent", "a.aria2", "rss_anon_peak_mib", False, 1.5, "≤ 1.5×"),
]
INFO_RATIOS = [
    ("rate: aria2 ÷ lt_client (same seeder)", "a.aria2", "a.lt_client", "mib_s"),
    ("rate: transmission ÷ lt_client (same seeder)", "a.transmission", "a.lt_client", "mib_s"),
    ("rate: Python libtorrent (mmap) ÷ lt_client (same seeder)", "a.libtorrent", "a.lt_client", "mib_s"),
    ("CPU s/GiB: aria2 ÷ lt_client", "a.aria2", "a.lt_client", "cpu_per_gib"),
    ("CPU s/GiB: Python libtorrent (mmap) ÷ lt_client", "a.libtorrent", "a.lt_client", "cpu_per_gib"),
    ("peak RssAnon: actorrent ÷ lt_client (same seeder)", "a.actorrent", "a.lt_client", "rss_anon_peak_mib"),
    ("rate: actorrent from 4 seeders ÷ lt_client from 1", "c.actorrent", "a.lt_client", "mib_s"),
    ("rate: lt_client from 4 seeders ÷ lt_client from 1", "c.lt_client", "a.lt_client", "mib_s"),
    ("CPU s/GiB: actorrent from 4 seeders ÷ lt_client from 1", "c.actorrent", "a.lt_client", "cpu_per_gib"),
    ("rate: lt_client run b ÷ run a (same setup twice: noise)", "b.lt_client", "a.lt_client", "mib_s"),
]
SUMMARY_FIELD = {"mib_s": "mib_s", "cpu_per_gib": "cpu_per_gib", "rss_anon_peak_mib": "rss"}


def ratio_of(summ, num, den, field):
    """(ratio of medians, [paired per-rep ratios])"""
    a, b = summ.get(num), summ.get(den)
    if den is None and a and a["ok"]:
        return a[SUMMARY_FIELD[field]], [x[field] for x in a["rows"] if x["ok"]]
    if not a or not b or not a["ok"] or not b["ok"]:
        return None, []
    fa, fb = a[SUMMARY_FIELD[field]], b[SUMMARY_FIELD[field]]
    r = fa / fb if fb else None
    by_rep = {x["rep"]: x for x in b["rows"] if x["ok"]}
    paired = [x[field] / by_rep[x["rep"]][field] for x in a["rows"]
              if x["ok"] and x["rep"] in by_rep and by_rep[x["rep"]][field]]
    return r, paired


def versions(actorrent, lt_client):
    def sh(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20, env=H.child_env())
            return (r.stdout.strip() or r.stderr.strip() or "?").splitlines()[0]
        except Exception:
            return "?"
    commit = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(actorrent))) \
        if os.path.exists(actorrent) else "?"
    return {
        "actorrent": "%s (git %s%s; binary built %s)" % (
            os.path.relpath(actorrent, ROOT), commit,
            ", work tree had uncommitted changes by other engineers" if dirty else "", built),
        "lt_client": "%s on libtorrent-rasterbar %s (POSIX disk I/O)" % (
            os.path.relpath(lt_client, ROOT), sh(["pkg-config", "--modversion", "libtorrent-rasterbar"])),
        "libtorrent": "python3-libtorrent " + sh([H.PY, "-c", "import libtorrent as l; print(l.__version__)"]),
        "aria2": sh(["aria2c", "--version"]),
        "transmission": sh(["transmission-cli", "--version"]),
    }


def write_report(path, jsonl_path, rows, args, meta):
    summ = summarize(rows)
    L = []
    L.append("# actorrent end-to-end benchmark, %s" % meta["date"])
    L.append("")
    L.append("Command: `%s`" % meta["command"])
    if meta.get("wrapper"):
        L.append("(started as `%s`)" % meta["wrapper"])
    L.append("")
    L.append("- Payload: one file of %d MiB (%d bytes), %d KiB pieces, deterministic data on tmpfs (/dev/shm); "
             "%d repetitions per run, interleaved (rep 1 of every run, then rep 2, ...)."
             % (meta["size"] // MiB, meta["size"], meta["piece"] // KiB, args.reps))
    L.append("- Host: %s, %d cores, kernel %s. Load average (1 min) before start %.2f; before each run: "
             "min %.2f, median %.2f, max %.2f." % (meta["host"], os.cpu_count(), platform.release(), meta["load_start"],
                                                   meta["load_min"], meta["load_med"], meta["load_max"]))
    shares = [r["other_cpu"] / r["t_exit"] for r in rows if r.get("other_cpu") is not None and r.get("t_exit")]
    if shares:
        L.append("- CPU used by processes outside the benchmark during the runs (from /proc/stat): median %.2f, "
                 "max %.2f of the %d cores." % (statistics.median(shares), max(shares), os.cpu_count()))
    if meta["busy"]:
        L.append("- **The machine was not quiet**: the load stayed above %.1f (other work was running), so the "
                 "absolute figures are low and noisy. The ratios compare clients measured within minutes of each "
                 "other in the same invocation. \"other CPU s\" in the tables is the CPU time used by processes "
                 "outside the benchmark during a run." % LOAD_QUIET)
    for k, v in meta["versions"].items():
        L.append("- %s: %s" % (k, v))
    L.append("- Time: launch of the downloader → its own completion signal (includes process start-up). "
             "MiB/s = size ÷ median time. CPU: user+sys of the downloader process tree (wait4 rusage). "
             "Peak RssAnon: max over 50 ms samples of /proc/PID/status RssAnon of the downloader process "
             "(every client here is a single process; mapped payload pages are file pages, not counted). Medians over the ok reps.")
    L.append("- Seeders: `lt_client seed` (libtorrent 2 in C++, POSIX disk I/O) except in b.actorrent; each "
             "hashed all of its data before the downloader was launched (no seed mode: no hashing in the "
             "timed window). Every ratio divides by the one a.lt_client run of this report unless it names "
             "another client.")
    L.append("- Every run: fresh seeder process(es), fresh output dir; a run is ok when the client completed, "
             "exited (status 0; transmission-cli exits by its -f script's SIGTERM) and the file is byte-identical.")
    L.append("")
    L.append("## Ratios (targets)")
    L.append("")
    L.append("| ratio | measured (ratio of medians) | per rep (paired) | target | verdict |")
    L.append("|---|---|---|---|---|")
    for label, num, den, field, higher, target, ttext in RATIOS:
        r, paired = ratio_of(summ, num, den, field)
        if r is None:
            verdict = "not measured"
        elif higher:
            verdict = "met" if r >= target else "not met"
        else:
            verdict = "met" if (r <= target if target != 1.0 else r < target) else "not met"
        L.append("| %s | %s | %s | %s | %s |" % (label, "n/a" if r is None else "%.2f%s" % (r, "×" if den else ""),
                                                 ", ".join("%.2f" % p for p in paired) or "–", ttext,
                                                 "**%s**" % verdict if r is not None else verdict))
    L.append("")
    L.append("Other ratios (no target):")
    L.append("")
    L.append("| ratio | measured | per rep (paired) |")
    L.append("|---|---|---|")
    for label, num, den, field in INFO_RATIOS:
        r, paired = ratio_of(summ, num, den, field)
        if num in summ and den in summ:   # no row for runs left out with --only
            L.append("| %s | %s | %s |" % (label, "n/a" if r is None else "%.2f×" % r,
                                          ", ".join("%.2f" % p for p in paired) or "–"))
    L.append("")
    for g in ("a", "b", "c"):
        runs = [s for s in RUNS if s.group == g and s.name in summ]
        if not runs:
            continue
        L.append("## %s" % GROUP_TITLES[g])
        L.append("")
        L.append("| run | seeder → client | connection | median time s | MiB/s | CPU s | CPU s/GiB | peak RssAnon MiB "
                 "| seeder CPU s | other CPU s | ok/reps |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for spec in runs:
            s = summ[spec.name]
            who = "%s%s → %s" % ("4× " if spec.nseeders > 1 else "", spec.seeder, spec.client)
            if s["ok"]:
                L.append("| %s | %s | %s | %.2f | %.1f | %.2f | %.2f | %.1f | %.2f | %.2f | %d/%d |" % (
                    spec.name, who, spec.note, s["t"], s["mib_s"], s["cpu"], s["cpu_per_gib"], s["rss"],
                    s["seeder_cpu"], s["other_cpu"], s["ok"], s["reps"]))
            else:
                L.append("| %s | %s | %s | FAIL | | | | | | | 0/%d |" % (spec.name, who, spec.note, s["reps"]))
        L.append("")
    L.append("## Per rep")
    L.append("")
    L.append("In the order they ran. CPU user/sys: the downloader; seeder / other CPU: see above; "
             "max RSS: ru_maxrss, file pages included (information only).")
    L.append("")
    L.append("| run | rep | ok | time s | exit s | MiB/s | CPU user s | CPU sys s | peak RssAnon MiB | max RSS MiB "
             "| seeder CPU s | other CPU s | steal s | load before | error |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        L.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["run"], r["rep"], "ok" if r["ok"] else "FAIL", fmt(r.get("t_complete")), fmt(r.get("t_exit")),
            fmt(r.get("mib_s"), 1), fmt(r.get("cpu_user")), fmt(r.get("cpu_sys")),
            fmt(r.get("rss_anon_peak_mib"), 1), fmt(r.get("maxrss_mib"), 0), fmt(r.get("seeder_cpu")),
            fmt(r.get("other_cpu")), fmt(r.get("steal_s")), fmt(r.get("load_before")),
            (r.get("error") or "").replace("|", "/").replace("\n", " ")[:200]))
    L.append("")
    L.append("Raw numbers, one JSON object per rep (also the command lines run): `%s`, written next to this "
             "report; the repository's .gitignore keeps `bench/results/*.jsonl` out of git, and the table above "
             "has every figure in it." % os.path.basename(jsonl_path))
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


# ------------------------------------------------------------------------------ main
def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024, help="payload size (default 1024 = 1 GiB)")
    ap.add_argument("--piece-kib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", help="comma-separated run names or groups (a, b, c)")
    ap.add_argument("--actorrent", default=os.path.join(ROOT, "build", "actorrent"))
    ap.add_argument("--lt-client", default=os.path.join(ROOT, "build", "bench", "lt_client"),
                    help="the C++ libtorrent baseline (seeders and a.lt_client)")
    ap.add_argument("--out", help="report path (default bench/results/e2e-<date>.md); .jsonl next to it")
    ap.add_argument("--timeout", type=float, help="per-download limit, s (default 60 + 0.15 s per MiB)")
    ap.add_argument("--wait-quiet", type=float, default=0,
                    help="wait up to S seconds for the 1-min load average to drop below %.1f first" % LOAD_QUIET)
    ap.add_argument("--list", action="store_true", help="print the run names and exit")
    args = ap.parse_args(argv)
    if args.list:
        for r in RUNS:
            print("%-16s %s" % (r.name, r.note))
        return 0
    if args.reps < 1 or args.size_mib < 1:
        ap.error("--reps and --size-mib must be >= 1")
    runs = select_runs(args.only)
    if args.timeout is None:
        args.timeout = 60 + 0.15 * args.size_mib
    if any(r.client == "actorrent" or r.seeder == "actorrent" for r in runs) and not os.access(args.actorrent, os.X_OK):
        raise SystemExit("no actorrent binary at %s (build it: bench/run_e2e.sh builds and runs)" % args.actorrent)
    if not os.access(args.lt_client, os.X_OK):
        raise SystemExit("no lt_client at %s (needs libtorrent-rasterbar-dev; bench/run_e2e.sh builds it)"
                         % args.lt_client)
    need = {"libtorrent"}
    for r in runs:
        need |= {"aria2": {"aria2c", "opentracker"}, "transmission": {"transmission-cli", "stdbuf"}}.get(r.client, set())
    H.require(need)

    date = time.strftime("%Y-%m-%d")
    out = args.out or os.path.join(HERE, "results", "e2e-%s.md" % date)
    if not args.out and os.path.exists(out):
        out = os.path.join(HERE, "results", "e2e-%s.md" % time.strftime("%Y-%m-%d-%H%M"))
    out = os.path.abspath(out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    jsonl = os.path.splitext(out)[0] + ".jsonl"

    if args.wait_quiet > 0:
        t_end = time.monotonic() + args.wait_quiet
        while loadavg() > LOAD_QUIET and time.monotonic() < t_end:
            H.log("load %.2f > %.1f, waiting (up to %ds more)" % (loadavg(), LOAD_QUIET, t_end - time.monotonic()))
            time.sleep(15)
    load_start = loadavg()

    def on_sig(signum, _):
        raise SystemExit("e2e: killed by signal %d" % signum)
    for sg in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sg, on_sig)

    bench = Bench(args)
    versions_seen = versions(bench.actorrent, bench.lt_client)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "size": args.size_mib * MiB, "piece": args.piece_kib * KiB,
            "command": shlex.join(["/usr/bin/python3", os.path.relpath(SCRIPT, ROOT)] + argv),
            "wrapper": os.environ.get("E2E_WRAPPER_COMMAND"), "host": platform.node(), "load_start": load_start,
            "versions": versions_seen}
    rows = []
    with H.Session("actorrent-e2e-") as sess, open(jsonl, "w") as jf:
        H.log("workdir %s; making %d MiB payload and torrent" % (sess.dir, args.size_mib))
        # snapshot of the binary: other people may rebuild build/ while the benchmark runs
        snap = os.path.join(sess.mkdir("bin"), "actorrent")
        shutil.copy2(bench.actorrent, snap)
        with open(snap, "rb") as f:
            meta["versions"]["actorrent"] += ", sha256 %s (copied at start)" % hashlib.sha256(f.read()).hexdigest()[:16]
        bench.actorrent = ActorrentSeeder.binary = snap
        lt_snap = os.path.join(sess.path("bin"), "lt_client")
        shutil.copy2(bench.lt_client, lt_snap)
        bench.lt_client = LtSeeder.binary = lt_snap
        seed_root = sess.mkdir("seed", mode=0o755)
        name = "e2e-%dMiB.bin" % args.size_mib
        payload = H.make_payload(seed_root, name, size=args.size_mib * MiB, seed="actorrent-e2e")
        torrent = H.make_torrent(payload, args.piece_kib * KiB, sess.path("e2e.torrent"))
        H.log("torrent %s: %d pieces, info-hash %s" % (name, torrent.num_pieces, torrent.info_hash_hex))
        groups = [g for g in ("a", "b", "c") if any(r.group == g for r in runs)]
        for rep in range(1, args.reps + 1):
            for g in groups:
                gr = [r for r in runs if r.group == g]
                k = (rep - 1) % len(gr)
                for spec in gr[k:] + gr[:k]:
                    H.log("%s rep %d/%d ..." % (spec.name, rep, args.reps))
                    rec = bench.run_once(sess, spec, rep, payload, torrent)
                    rows.append(rec)
                    jf.write(json.dumps(rec) + "\n")
                    jf.flush()
                    H.log("%s rep %d: %s  time %s s  %s MiB/s  CPU %s s  RssAnon %s MiB  load %.2f%s" % (
                        spec.name, rep, "ok" if rec["ok"] else "FAIL", fmt(rec.get("t_complete")),
                        fmt(rec.get("mib_s"), 1), fmt(rec.get("cpu")), fmt(rec.get("rss_anon_peak_mib"), 1),
                        rec.get("load_before") or 0, "" if rec["ok"] else "  (%s)" % rec["error"]))
                    if not rec["ok"] and rec.get("log_tail"):
                        print(rec["log_tail"], flush=True)
    loads = [r["load_before"] for r in rows if r.get("load_before") is not None] or [load_start]
    meta.update(load_min=min(loads), load_med=statistics.median(loads), load_max=max(loads),
                busy=statistics.median(loads) > LOAD_QUIET or load_start > LOAD_QUIET)
    write_report(out, jsonl, rows, args, meta)
    print(open(out).read())
    H.log("report: %s\nraw: %s" % (out, jsonl))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
