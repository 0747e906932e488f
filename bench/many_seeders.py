#!/usr/bin/python3
"""Many active seeders at once: actorrent against the C++ libtorrent baseline (bench/lt_client).

  bench/many_seeders.py [--seeders 50] [--seeder-limit-kib 5120] [--seed-procs 5]
                        [--size-mib 1024] [--piece-kib 256] [--reps 3]
                        [--actorrent PATH] [--lt-client PATH] [--out REPORT.md] [--timeout S]

One single-file torrent of deterministic data on tmpfs (/dev/shm). --seeders libtorrent sessions
seed it, each with its own listen port on 127.0.0.1 and its own upload cap (--seeder-limit-kib,
loopback peers included), hosted --seed-procs at a time in `lt_client seed --sessions K`
processes (one process per session would cost ~20 MiB each). The data is hashed in full before
any download starts (no seed mode): the first session of each process checks it, the others
start from its resume data. The seeders live for the whole benchmark; every download uses a
fresh output dir.

Each rep runs both downloaders, alternating which goes first, each dialling every seeder:
  lt_client   bench/lt_client download --peer S1 ... --peer SN
  actorrent   actorrent download --peer S1 ... --peer SN --max-peers N+8 --max-peers-per-ip N+8
              (every seeder is 127.0.0.1: the per-IP default of 8 would refuse the rest)

Measured for the downloader only: time from launch to its "complete:" line, MiB/s, CPU user+sys
(wait4 rusage) and CPU s/GiB, peak RSS (VmHWM of /proc/PID/status, read every 50 ms; with mmap
payload pages would count, both clients here use pread/pwrite) and peak RssAnon; the seeders'
CPU, and how many seeders sent payload during the download, with the least and most one sent
(lt_client seed reports its sessions' uploads on SIGUSR1). A download is ok when it completed,
exited 0 and the file is byte-identical.

Ratios (actorrent ÷ lt_client, medians of the reps): rate (target >= 1.0x), CPU s/GiB (target
<= 0.7x), peak RSS. Writes bench/results/many-seeders-<date>.md and a .jsonl of every rep.
"""
import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import e2e  # noqa: E402  (its /proc helpers; it imports tests/interop/harness.py as H)

H = e2e.H
MiB, GiB = e2e.MiB, e2e.GiB


def proc_status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def start_seeders(sess, args, torrent, datadir):
    """Starts the seeding processes; returns (procs, endpoints) once every session is READY."""
    procs, per = [], []
    n, k = args.seeders, max(1, min(args.seed_procs, args.seeders))
    for i in range(k):
        per.append(n // k + (1 if i < n % k else 0))
    for i, cnt in enumerate(per):
        argv = [args.lt_client, "seed", torrent.path, datadir, "--port", "0", "--sessions", str(cnt),
                "--upload-limit", str(args.seeder_limit_kib * 1024), "--no-tracker"]
        procs.append(sess.spawn("seeders-%d" % i, argv, cwd=sess.dir, env=H.child_env()))
    endpoints = []
    deadline = time.monotonic() + 120 + args.size_mib * 0.05 * k
    for p in procs:
        while True:
            m = re.search(r"(?m)^READY((?: \d+)+)$", p.output())
            if m:
                endpoints += ["%s:%s" % (H.LOOPBACK, port) for port in m.group(1).split()]
                break
            if not p.running() or time.monotonic() > deadline:
                raise SystemExit("seeder process %s not ready:\n%s" % (p.name, H.tail(p.output(), 20)))
            time.sleep(0.1)
    H.log("%d seeders ready in %d processes" % (len(endpoints), len(procs)))
    return procs, endpoints


def seeder_uploads(seed_procs):
    """Payload bytes each seeding session has uploaded so far (lt_client seed answers SIGUSR1
    with an "UPLOADED B1 B2 ..." line)."""
    out = []
    for p in seed_procs:
        before = len(re.findall(r"(?m)^UPLOADED", p.output()))
        p.popen.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while len(re.findall(r"(?m)^UPLOADED", p.output())) <= before:
            if time.monotonic() > deadline or not p.running():
                raise SystemExit("seeder process %s does not report its uploads" % p.name)
            time.sleep(0.02)
        out += [int(x) for x in re.findall(r"(?m)^UPLOADED((?: \d+)+)$", p.output())[-1].split()]
    return out


def run_download(sess, args, client, rep, torrent, payload, endpoints, seed_procs):
    outdir = sess.mkdir("out-%s-%d" % (client, rep))
    timeout = args.timeout
    if client == "actorrent":
        cap = str(len(endpoints) + 8)
        argv = [args.actorrent, "download", torrent.path, "-o", outdir, "--no-tracker", "-q",
                "--listen", "%s:0" % H.LOOPBACK, "--max-peers", cap, "--max-peers-per-ip", cap,
                "--timeout", str(int(timeout))]
    else:
        argv = [args.lt_client, "download", torrent.path, "-o", outdir, "--no-tracker",
                "--timeout", str(int(timeout))]
    for e in endpoints:
        argv += ["--peer", e]
    rec = {"client": client, "rep": rep, "bytes": payload.total_size, "seeders": len(endpoints),
           "ok": False, "error": None, "load_before": e2e.loadavg()}
    up0 = seeder_uploads(seed_procs)
    seed_cpu0 = [e2e.proc_cpu_s(p.pid) or 0.0 for p in seed_procs]
    busy0, _ = e2e.system_cpu()
    proc = sess.spawn("%s-%d" % (client, rep), argv, cwd=outdir, env=H.child_env(c_locale=client != "actorrent"))
    t0 = proc.t_start
    reader = e2e.LogReader(proc.log_path)
    t_complete = rusage = status = None
    hwm = anon = 0
    try:
        while True:
            exited = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            now = time.monotonic()
            if not exited:
                hwm = max(hwm, proc_status_kib(proc.pid, "VmHWM"))
                anon = max(anon, proc_status_kib(proc.pid, "RssAnon"))
            if t_complete is None and re.search(r"(?m)^complete:", reader.read()):
                t_complete = now
            if exited or now > t0 + timeout or (t_complete and now > t_complete + e2e.EXIT_GRACE):
                if not exited:
                    rec["error"] = "completed but did not exit" if t_complete else "timeout after %ds" % timeout
                proc._killpg(signal.SIGKILL)
                _, status, rusage = os.wait4(proc.pid, 0)
                proc.popen.returncode = os.waitstatus_to_exitcode(status)
                t_exit = time.monotonic()
                break
            time.sleep(e2e.SAMPLE_S)
    finally:
        proc.stop(grace=3)
    busy1, _ = e2e.system_cpu()
    cpu = rusage.ru_utime + rusage.ru_stime
    seed_cpu = sum((e2e.proc_cpu_s(p.pid) or c0) - c0 for p, c0 in zip(seed_procs, seed_cpu0))
    rc = os.waitstatus_to_exitcode(status)
    sent = [b - a for a, b in zip(up0, seeder_uploads(seed_procs))]
    rec.update({"seeders_active": sum(1 for x in sent if x > 0),
                "seeder_sent_min_mib": round(min(sent) / MiB, 2), "seeder_sent_max_mib": round(max(sent) / MiB, 2)})
    rec.update({"argv_head": argv[:12], "rc": rc, "t_exit": round(t_exit - t0, 3), "cpu": round(cpu, 3),
                "cpu_user": round(rusage.ru_utime, 3), "cpu_sys": round(rusage.ru_stime, 3),
                "vm_hwm_mib": round(hwm / 1024, 1), "rss_anon_peak_mib": round(anon / 1024, 1),
                "seeder_cpu": round(seed_cpu, 2), "other_cpu": round(busy1 - busy0 - cpu - seed_cpu, 2)})
    if t_complete is not None:
        t = min(t_complete, t_exit) - t0
        rec.update(t_complete=round(t, 3), mib_s=round(payload.total_size / MiB / t, 1),
                   cpu_per_gib=round(cpu / (payload.total_size / GiB), 3))
    if rec["error"] is None:
        if t_complete is None:
            rec["error"] = "exited with %s without completing" % rc
        elif rc != 0:
            rec["error"] = "exit status %s" % rc
        elif not e2e.files_equal(payload.path_in(payload.root, ""), payload.path_in(outdir, "")):
            rec["error"] = "downloaded file differs from the payload"
        else:
            rec["ok"] = True
    if not rec["ok"]:
        rec["log_tail"] = H.tail(proc.output(), 15)
    shutil.rmtree(outdir, ignore_errors=True)
    return rec


def summarize(rows, client):
    ok = [r for r in rows if r["client"] == client and r["ok"]]
    if not ok:
        return None
    med = lambda k: statistics.median(r[k] for r in ok)  # noqa: E731
    t = med("t_complete")
    return {"ok": len(ok), "reps": sum(1 for r in rows if r["client"] == client), "t": t,
            "mib_s": ok[0]["bytes"] / MiB / t, "cpu": med("cpu"), "cpu_per_gib": med("cpu_per_gib"),
            "hwm": med("vm_hwm_mib"), "anon": med("rss_anon_peak_mib"), "seeder_cpu": med("seeder_cpu"),
            "other_cpu": med("other_cpu"), "active": min(r["seeders_active"] for r in ok)}


def write_report(path, rows, args, meta):
    s = {c: summarize(rows, c) for c in ("lt_client", "actorrent")}
    L = ["# Many seeders at once: actorrent vs lt_client, %s" % meta["date"], "",
         "Command: `%s`" % meta["command"], "",
         "- Payload: one file of %d MiB, %d KiB pieces, on tmpfs. %d libtorrent seeders (`lt_client seed`, "
         "%d processes), each capped at %d KiB/s upload (%.0f MiB/s together), data hashed before any "
         "download started; %d reps, the order of the two downloaders alternating."
         % (args.size_mib, args.piece_kib, args.seeders, args.seed_procs, args.seeder_limit_kib,
            args.seeders * args.seeder_limit_kib / 1024, args.reps),
         "- Host: %s, %d cores; load average before the runs: %s." % (
             platform.node(), os.cpu_count(), ", ".join("%.2f" % r["load_before"] for r in rows)),
         "- %s" % meta["versions"],
         "- Time: launch → the client's `complete:` line. CPU: user+sys of the downloader (wait4). Peak RSS: "
         "max of VmHWM; peak RssAnon: max of RssAnon (50 ms samples).", "",
         "## Ratios (actorrent ÷ lt_client, medians)", "",
         "| ratio | measured | target | verdict |", "|---|---|---|---|"]
    for label, key, higher, target, ttext in [("download rate", "mib_s", True, 1.0, "≥ 1.0×"),
                                              ("CPU s per GiB", "cpu_per_gib", False, 0.7, "≤ 0.7×"),
                                              ("peak RSS (VmHWM)", "hwm", False, None, "—"),
                                              ("peak RssAnon", "anon", False, None, "—")]:
        a, b = s["actorrent"], s["lt_client"]
        if not a or not b or not b[key]:
            L.append("| %s | n/a | %s | not measured |" % (label, ttext))
            continue
        r = a[key] / b[key]
        verdict = "—" if target is None else ("**met**" if (r >= target if higher else r <= target) else "**not met**")
        L.append("| %s | %.2f× | %s | %s |" % (label, r, ttext, verdict))
    L += ["", "| client | ok/reps | median time s | MiB/s | CPU s | CPU s/GiB | peak RSS MiB | peak RssAnon MiB "
          "| seeders' CPU s | other CPU s | seeders that sent payload (fewest in a rep) |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in ("lt_client", "actorrent"):
        x = s[c]
        if x:
            L.append("| %s | %d/%d | %.2f | %.1f | %.2f | %.2f | %.1f | %.1f | %.2f | %.2f | %d of %d |" % (
                c, x["ok"], x["reps"], x["t"], x["mib_s"], x["cpu"], x["cpu_per_gib"], x["hwm"], x["anon"],
                x["seeder_cpu"], x["other_cpu"], x["active"], args.seeders))
        else:
            L.append("| %s | 0/%d | FAIL | | | | | | | | |" % (c, sum(1 for r in rows if r["client"] == c)))
    L += ["", "## Per rep", "", "| client | rep | ok | time s | MiB/s | CPU s | peak RSS MiB | peak RssAnon MiB | "
          "seeders' CPU s | other CPU s | seeders that sent payload | MiB sent per seeder, min–max | load before "
          "| error |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        L.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %s |" % (
            r["client"], r["rep"], "ok" if r["ok"] else "FAIL", e2e.fmt(r.get("t_complete")),
            e2e.fmt(r.get("mib_s"), 1), e2e.fmt(r.get("cpu")), e2e.fmt(r.get("vm_hwm_mib"), 1),
            e2e.fmt(r.get("rss_anon_peak_mib"), 1), e2e.fmt(r.get("seeder_cpu")), e2e.fmt(r.get("other_cpu")),
            r.get("seeders_active", "n/a"), "%s–%s" % (e2e.fmt(r.get("seeder_sent_min_mib"), 1),
                                                       e2e.fmt(r.get("seeder_sent_max_mib"), 1)),
            r["load_before"], (r.get("error") or "").replace("|", "/")[:200]))
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeders", type=int, default=50)
    ap.add_argument("--seeder-limit-kib", type=int, default=5120, help="upload cap per seeder, KiB/s")
    ap.add_argument("--seed-procs", type=int, default=5, help="processes hosting the seeders' sessions")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--piece-kib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--actorrent", default=os.path.join(ROOT, "build", "actorrent"))
    ap.add_argument("--lt-client", default=os.path.join(ROOT, "build", "bench", "lt_client"))
    ap.add_argument("--out")
    ap.add_argument("--timeout", type=float, help="per download, s (default 120 + 1 s per MiB/s-limited MiB)")
    args = ap.parse_args(argv)
    if min(args.seeders, args.seed_procs, args.reps, args.size_mib, args.seeder_limit_kib) < 1:
        ap.error("every count and size must be >= 1")
    for b in (args.actorrent, args.lt_client):
        if not os.access(b, os.X_OK):
            raise SystemExit("no executable %s (bench/run_e2e.sh --list builds actorrent and lt_client)" % b)
    args.actorrent, args.lt_client = os.path.abspath(args.actorrent), os.path.abspath(args.lt_client)
    if args.timeout is None:
        args.timeout = 120 + 2.0 * args.size_mib * 1024 / (args.seeders * args.seeder_limit_kib)
    out = os.path.abspath(args.out or os.path.join(HERE, "results", "many-seeders-%s.md" % time.strftime("%Y-%m-%d-%H%M")))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    jsonl = os.path.splitext(out)[0] + ".jsonl"
    def on_sig(signum, _):
        raise SystemExit("many_seeders: killed by signal %d" % signum)   # the session kills every child
    for sg in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sg, on_sig)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "command": shlex.join(["/usr/bin/python3", os.path.relpath(__file__, ROOT)] + argv),
            "versions": "actorrent %s (git %s); lt_client on libtorrent-rasterbar %s, POSIX disk I/O" % (
                os.path.relpath(args.actorrent, ROOT),
                subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
                subprocess.run(["pkg-config", "--modversion", "libtorrent-rasterbar"], capture_output=True,
                                 text=True).stdout.strip())}
    rows = []
    with H.Session("actorrent-many-seeders-") as sess, open(jsonl, "w") as jf:
        seed_root = sess.mkdir("seed", mode=0o755)
        payload = H.make_payload(seed_root, "many-%dMiB.bin" % args.size_mib, size=args.size_mib * MiB,
                                 seed="actorrent-many-seeders")
        torrent = H.make_torrent(payload, args.piece_kib * 1024, sess.path("many.torrent"))
        seed_procs, endpoints = start_seeders(sess, args, torrent, payload.root)
        for rep in range(1, args.reps + 1):
            order = ["lt_client", "actorrent"] if rep % 2 else ["actorrent", "lt_client"]
            for client in order:
                H.log("%s rep %d/%d from %d seeders ..." % (client, rep, args.reps, len(endpoints)))
                rec = run_download(sess, args, client, rep, torrent, payload, endpoints, seed_procs)
                rows.append(rec)
                jf.write(json.dumps(rec) + "\n")
                jf.flush()
                H.log("%s rep %d: %s %s MiB/s CPU %s s VmHWM %s MiB%s" % (
                    client, rep, "ok" if rec["ok"] else "FAIL", e2e.fmt(rec.get("mib_s"), 1), e2e.fmt(rec.get("cpu")),
                    e2e.fmt(rec.get("vm_hwm_mib"), 1), "" if rec["ok"] else " (%s)\n%s" % (
                        rec["error"], rec.get("log_tail", ""))))
    write_report(out, rows, args, meta)
    print(open(out).read())
    H.log("report: %s" % out)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
