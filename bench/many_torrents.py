#!/usr/bin/python3
"""Many torrents in one actorrent process: time to add and check them, idle CPU, memory, threads.

  bench/many_torrents.py [--torrents 1000] [--file-kib 256] [--piece-kib 64] [--idle-s 30]
                         [--no-baseline] [--actorrent PATH] [--out REPORT.md] [--timeout S]

Makes --torrents single-file torrents of deterministic data (each file DIR/t<i>.bin, its own
info-hash), then starts ONE process

  actorrent seed T1.torrent ... TN.torrent -o DIR --listen 127.0.0.1:0 --no-tracker

which checks every torrent's data (no resume file exists yet: a full hash check) and seeds them
all. It waits until the output has a "seeding:" line per torrent (or one line
"seeding: N torrents"), then lets the process idle for --idle-s seconds, no peer connected.

Measured for that process:
  - time to add and check: launch -> every torrent seeding (process start-up included);
  - idle CPU: utime+stime over the idle window (/proc/PID/stat) as a share of one core;
  - memory after the idle window: VmRSS and RssAnon, per torrent two ways: total / N, and the
    marginal cost (RSS of N torrents - RSS of 1) / (N - 1) from a second, 1-torrent run of the
    same command on a copy of the first torrent's data (--no-baseline skips it);
  - threads (/proc/PID/status Threads) and open descriptors (/proc/PID/fd), for N and for 1;
  - time from SIGTERM to exit.
Targets (issue 10): idle CPU <= 2 % of a core, <= 64 KiB RSS per torrent.

An actorrent whose `seed` takes one torrent and a DIR positional only (no -o) is run in that
form, which works for --torrents 1 only. Writes bench/results/many-torrents-<date>.md.
"""
import argparse
import hashlib
import os
import platform
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
import harness as H  # noqa: E402

KiB, MiB = 1024, 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def status_fields(pid):
    out = {}
    try:
        for line in open("/proc/%d/status" % pid):
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
        out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    except (OSError, ValueError):
        pass
    return out


def make_torrents(n, file_kib, piece_kib, data_dir, torrent_dir):
    """n single-file torrents t<i>.bin with distinct deterministic data; returns their paths."""
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(torrent_dir, exist_ok=True)
    paths = []
    piece = piece_kib * KiB
    for i in range(n):
        name = "t%05d.bin" % i
        data = random.Random("actorrent-many-%d" % i).randbytes(file_kib * KiB)
        with open(os.path.join(data_dir, name), "wb") as f:
            f.write(data)
        pieces = b"".join(hashlib.sha1(data[o:o + piece]).digest() for o in range(0, len(data), piece))
        meta = {b"info": {b"name": name.encode(), b"length": len(data), b"piece length": piece,
                          b"pieces": pieces}}
        p = os.path.join(torrent_dir, "t%05d.torrent" % i)
        with open(p, "wb") as f:
            f.write(H.bencode(meta))
        paths.append(p)
    return paths


def multi_torrent_cli(actorrent):
    r = subprocess.run([actorrent, "seed", "--help"], capture_output=True, text=True, env=H.child_env())
    return re.search(r"(?m)^\s*-o[, ]", r.stdout + r.stderr) is not None


def seeding_count(text):
    m = re.findall(r"(?m)^seeding: (\d+) torrents", text)
    return max(int(x) for x in m) if m else len(re.findall(r"(?m)^seeding: ", text))


def run(sess, args, name, torrents, data_dir, multi):
    if multi:
        argv = [args.actorrent, "seed"] + torrents + ["-o", data_dir]
    else:
        if len(torrents) != 1:
            raise SystemExit("%s seeds one torrent per process (no `seed -o DIR`): run with --torrents 1"
                             % args.actorrent)
        argv = [args.actorrent, "seed", torrents[0], data_dir]
    argv += ["--listen", "%s:0" % H.LOOPBACK, "--no-tracker"]
    n = len(torrents)
    proc = sess.spawn(name, argv, cwd=sess.dir, env=H.child_env(c_locale=False))
    rec = {"torrents": n, "ok": False, "error": None}
    try:
        deadline = proc.t_start + args.timeout
        while seeding_count(proc.output()) < n:
            if not proc.running():
                raise RuntimeError("exited with %s before seeding all:\n%s" % (proc.returncode, H.tail(proc.output(), 15)))
            if time.monotonic() > deadline:
                raise RuntimeError("%d of %d seeding after %ds:\n%s" % (seeding_count(proc.output()), n,
                                                                       args.timeout, H.tail(proc.output(), 15)))
            time.sleep(0.05)
        rec["t_ready"] = round(time.monotonic() - proc.t_start, 3)
        rec["cpu_to_ready"] = cpu_s(proc.pid)
        H.log("%s: %d torrents seeding after %.2f s; idling %d s" % (name, n, rec["t_ready"], args.idle_s))
        c0, t0 = cpu_s(proc.pid), time.monotonic()
        time.sleep(args.idle_s)
        c1, t1 = cpu_s(proc.pid), time.monotonic()
        if c1 is None or not proc.running():
            raise RuntimeError("exited while idle:\n%s" % H.tail(proc.output(), 15))
        rec["idle_core_share"] = (c1 - c0) / (t1 - t0)
        rec.update(status_fields(proc.pid))
        ts = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(timeout=30)
            rec["t_stop"] = round(time.monotonic() - ts, 3)
            rec["rc"] = proc.popen.returncode
        except subprocess.TimeoutExpired:
            rec["t_stop"] = None
        rec["ok"] = True
    except RuntimeError as e:
        rec["error"] = str(e)
    finally:
        proc.stop(grace=3)
    return rec


def kib(x):
    return "n/a" if x is None else "%.1f" % x


def write_report(path, args, meta, big, base):
    n = big["torrents"]
    L = ["# Many torrents in one actorrent process, %s" % meta["date"], "",
         "Command: `%s`" % meta["command"], "",
         "- %d single-file torrents of %d KiB (%d KiB pieces), data on tmpfs, full check (no resume data), "
         "no peers; idle window %d s." % (n, args.file_kib, args.piece_kib, args.idle_s),
         "- Host: %s, %d cores; load average at the start %s." % (platform.node(), os.cpu_count(), meta["load"]),
         "- actorrent: %s; CLI form: %s." % (meta["version"], "seed T1 ... TN -o DIR" if meta["multi"]
                                              else "seed T DIR (one torrent per process)"), ""]
    if not big["ok"]:
        L += ["**Failed**: %s" % big["error"], ""]
    else:
        per_total = big["VmRSS"] / n
        marg = None
        if base and base.get("ok") and n > 1:
            marg = (big["VmRSS"] - base["VmRSS"]) / (n - 1)
        idle = big["idle_core_share"] * 100
        L += ["## Targets", "", "| measure | measured | target | verdict |", "|---|---|---|---|",
              "| idle CPU, %d torrents | %.2f %% of a core | ≤ 2 %% | **%s** |" % (n, idle, "met" if idle <= 2 else "not met"),
              "| RSS per torrent, marginal (N vs 1) | %s KiB | ≤ 64 KiB | %s |" % (
                  kib(marg), "not measured" if marg is None else "**%s**" % ("met" if marg <= 64 else "not met")),
              "| RSS per torrent, total ÷ N | %.1f KiB | ≤ 64 KiB | **%s** |" % (per_total, "met" if per_total <= 64 else "not met"),
              "", "## Figures", "", "| measure | %d torrents | 1 torrent |" % n, "|---|---|---|"]

        def row(label, key, f=lambda v: str(v)):
            b = base.get(key) if base and base.get("ok") else None
            L.append("| %s | %s | %s |" % (label, f(big.get(key)) if big.get(key) is not None else "n/a",
                                           f(b) if b is not None else "n/a"))
        row("time to add and check, s (launch → all seeding)", "t_ready", lambda v: "%.2f" % v)
        row("CPU used until all seeding, s", "cpu_to_ready", lambda v: "%.2f" % v)
        row("idle CPU, % of a core", "idle_core_share", lambda v: "%.2f" % (v * 100))
        row("VmRSS after idle, MiB", "VmRSS", lambda v: "%.1f" % (v / 1024))
        row("RssAnon after idle, MiB", "RssAnon", lambda v: "%.1f" % (v / 1024))
        row("peak RSS (VmHWM), MiB", "VmHWM", lambda v: "%.1f" % (v / 1024))
        row("threads", "Threads")
        row("open descriptors", "fds")
        row("SIGTERM → exit, s", "t_stop", lambda v: "%.2f" % v)
        if base and base.get("ok") and n > 1:
            L.append("")
            L.append("Marginal RssAnon per torrent: %.1f KiB; time to add and check per torrent: %.2f ms."
                     % ((big["RssAnon"] - base["RssAnon"]) / (n - 1), 1000 * big["t_ready"] / n))
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torrents", type=int, default=1000)
    ap.add_argument("--file-kib", type=int, default=256, help="size of each torrent's one file")
    ap.add_argument("--piece-kib", type=int, default=64)
    ap.add_argument("--idle-s", type=float, default=30)
    ap.add_argument("--no-baseline", action="store_true", help="skip the 1-torrent run")
    ap.add_argument("--actorrent", default=os.path.join(ROOT, "build", "actorrent"))
    ap.add_argument("--out")
    ap.add_argument("--timeout", type=float, default=600, help="limit for all torrents to be seeding, s")
    args = ap.parse_args(argv)
    if min(args.torrents, args.file_kib, args.piece_kib) < 1 or args.idle_s <= 0:
        ap.error("counts and sizes must be >= 1")
    args.actorrent = os.path.abspath(args.actorrent)
    if not os.access(args.actorrent, os.X_OK):
        raise SystemExit("no actorrent binary at %s" % args.actorrent)
    multi = multi_torrent_cli(args.actorrent)
    if not multi and args.torrents > 1:
        raise SystemExit("%s seeds one torrent per process (no `seed -o DIR`): run with --torrents 1"
                         % args.actorrent)
    out = os.path.abspath(args.out or os.path.join(HERE, "results", "many-torrents-%s.md" % time.strftime("%Y-%m-%d-%H%M")))
    os.makedirs(os.path.dirname(out), exist_ok=True)

    def on_sig(signum, _):
        raise SystemExit("many_torrents: killed by signal %d" % signum)   # the session kills every child
    for sg in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sg, on_sig)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "load": open("/proc/loadavg").read().split()[0],
            "multi": multi,
            "command": shlex.join(["/usr/bin/python3", os.path.relpath(__file__, ROOT)] + argv),
            "version": "%s (git %s)" % (os.path.relpath(args.actorrent, ROOT), subprocess.run(
                ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip())}
    with H.Session("actorrent-many-torrents-") as sess:
        data = sess.mkdir("data", mode=0o755)
        t0 = time.monotonic()
        torrents = make_torrents(args.torrents, args.file_kib, args.piece_kib, data, sess.mkdir("torrents"))
        H.log("made %d torrents in %.1f s" % (args.torrents, time.monotonic() - t0))
        base = None
        if not args.no_baseline and args.torrents > 1:
            # its own copy of the first torrent's data: the big run's resume files must not help it
            one = sess.mkdir("data-1", mode=0o755)
            name = os.path.basename(torrents[0]).replace(".torrent", ".bin")
            shutil.copy2(os.path.join(data, name), os.path.join(one, name))
            base = run(sess, args, "actorrent-1", torrents[:1], one, multi)
        big = run(sess, args, "actorrent-%d" % args.torrents, torrents, data, multi)
    write_report(out, args, meta, big, base)
    print(open(out).read())
    H.log("report: %s" % out)
    return 0 if big["ok"] and (base is None or base["ok"]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
