#!/usr/bin/python3
"""`actorrent batch JOBFILE` against real seeders on 127.0.0.1 (tests/interop/harness.py).

  queue       five torrents from libtorrent, aria2 and transmission seeders, max_active 2 and
              per-job rate limits so that downloads overlap: exit 0, every file byte-exact, the
              summary says complete for all five, and never more than two jobs downloaded at
              once: never more than two output files grew in one ~100 ms sample (measured on
              disk), nor by the order of the started:/complete: lines or the summary's start
              and finish times; two did grow at once.
  broken      a torrent file that does not parse, a job whose peer is unreachable within its
              timeout_s and one whose output cannot be created (disk error), beside two good
              jobs: exit 1, the summary names each failed job with its error, the good ones
              complete byte-exact.
  kill9       three jobs one after another, kill -9 while the second downloads, then the same
              command again: exit 0, the first job is not downloaded again (already complete,
              verified from resume data, its file untouched), the second continues (fetches
              less than its size), all byte-exact. Then bytes of the first job's file change:
              a third run checks it again and fetches only what no longer matches.
  sigint      SIGINT while the first of two jobs downloads: exit 130 within a few seconds, the
              summary lists both as skipped (why), the rerun completes both byte-exact and
              fetches less than the first job's size for it.
  seed_goal   max_active 1, the first job seeds on for seed_time_s 4 after completing: the
              second starts at once (a seeding job holds no slot), the batch ends once the goal
              is met (not before), exit 0; a rerun seeds it again (already complete) for its
              seed_time_s. A seed_ratio no leecher meets ends at its
              timeout_s (complete, "seed goal missed"); without timeout_s it is refused.
  select_file a multi-file torrent with select_file "1,3": those two files byte-exact, the
              others absent. A summary that cannot be written: exit 1.
  json        the same two jobs as a text and as a JSON job file (.json, some camelCase keys):
              the same summary, byte-exact; a JSON job file with an error names its JSON path
              and exits 2, nothing written.
  slot_held   max_active 1, the first job times out in the middle of its download: the next
              starts only once it has stopped (the two output files never grow in the same
              ~100 ms), exit 1.
  dry_run     --dry-run: prints the plan and the job that would fail (exit 1); nothing dials
              the job's peer or announces to its tracker (a listening socket sees no
              connection), nothing is written (no state_dir, no output).
  demo        the newcomer's path (issue's "done when"): deploy/batch-demo.sh with the built
              binary runs its three jobs byte-exact and keeps its seeder; then, as its closing
              lines suggest, the outputs are removed, the printed batch command is run and
              killed with kill -9 midway through the big job, run again: exit 0, the jobs
              finished before the kill are not fetched again, the big one continues (fetches
              less than its size), the summary says complete for all three, all byte-exact;
              progress.json shows the running job's bytes before the kill.

  batch_test.py --actorrent PATH --case NAME
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

CASES = ["queue", "broken", "kill9", "sigint", "seed_goal", "select_file", "json", "dry_run",
         "slot_held", "magnet", "demo"]
REPO = os.path.dirname(os.path.dirname(HERE))
PIECE = 32 * H.KiB
TIMEOUT = 240


class Failed(Exception):
    pass


def make_job(sess, name, size, seeder_kind, data_root):
    """A single-file payload, its torrent and a running seeder of `seeder_kind`."""
    data = sess.mkdir("data-" + name, mode=0o755)
    payload = H.make_payload(data, name + ".bin", size=size, seed=name)
    torrent = H.make_torrent(payload, PIECE, sess.path(name + ".torrent"))
    seeder = H.SEEDERS[seeder_kind](sess, torrent, data).start()
    return payload, torrent, seeder


def textproto(settings, jobs):
    """A job file in text format from dicts (lists: repeated fields)."""
    def fields(d, indent):
        out = []
        for k, v in d.items():
            for item in (v if isinstance(v, list) else [v]):
                out.append("%s%s: %s" % (indent, k, json.dumps(item)))
        return out
    lines = ["# written by batch_test.py", "settings {"] + fields(settings, "  ") + ["}"]
    for j in jobs:
        lines += ["job {"] + fields(j, "  ") + ["}"]
    return "\n".join(lines) + "\n"


def run_batch(actorrent, jobfile, *extra, timeout=TIMEOUT, quiet=True):
    argv = [actorrent, "batch", jobfile] + (["-q"] if quiet else []) + list(extra)
    H.log("run: " + " ".join(argv))
    # Names from torrents are printed as they are (they may not be UTF-8).
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       errors="replace", env=H.child_env(), timeout=timeout)
    H.log("exit %d\n%s" % (r.returncode, r.stdout))
    return r


def run_batch_watching(actorrent, jobfile, files, *extra, timeout=TIMEOUT, every=0.1):
    """run_batch, sampling the allocated size of `files` every ~100 ms meanwhile: returns the
    result and, per sample interval, the set of files that grew in it. Measured on disk, apart
    from anything the batch itself reports."""
    argv = [actorrent, "batch", jobfile] + list(extra)
    H.log("run: " + " ".join(argv))
    out_path, err_path = jobfile + ".stdout", jobfile + ".stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(argv, stdout=out, stderr=err, env=H.child_env())
    grew, last = [], {f: _allocated(f) for f in files}
    deadline = time.monotonic() + timeout
    try:
        while p.poll() is None:
            if time.monotonic() > deadline:
                raise Failed("the batch did not end within %d s" % timeout)
            time.sleep(every)
            now = {f: _allocated(f) for f in files}
            grew.append({f for f in files if now[f] > last[f]})
            last = now
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    with open(out_path, errors="replace") as f:
        stdout = f.read()
    with open(err_path, errors="replace") as f:
        stderr = f.read()
    H.log("exit %d\n%s" % (p.returncode, stdout))
    return subprocess.CompletedProcess(argv, p.returncode, stdout, stderr), grew


def summary_of(path):
    with open(path) as f:
        s = json.load(f)
    return {j["name"]: j for j in s["jobs"]}


def expect_exact(payload, out, what):
    problems = H.verify_download(payload, out)
    if problems:
        raise Failed("%s: not byte-exact: %s" % (what, problems))


def max_concurrency(stdout):
    """Jobs downloading at once, from the order of started:/complete:/failed: lines."""
    active, peak = set(), 0
    for line in stdout.splitlines():
        m = re.match(r"^(started|complete|failed): (\S+)", line)
        if not m:
            continue
        name = m.group(2)
        if m.group(1) == "started":
            active.add(name)
        else:
            active.discard(name)
        peak = max(peak, len(active))
    return peak


def overlap_from_summary(jobs):
    """The most jobs whose [started_at, finished_at] intervals overlap at one instant."""
    edges = []
    for j in jobs.values():
        if j["started_at"] > 0:
            edges.append((j["started_at"], 1))
            edges.append((j["finished_at"], -1))
    edges.sort(key=lambda e: (e[0], e[1]))  # a finish before a start at the same instant
    cur = peak = 0
    for _, d in edges:
        cur += d
        peak = max(peak, cur)
    return peak


def case_queue(actorrent, sess):
    kinds = ["libtorrent", "aria2", "transmission", "libtorrent", "aria2"]
    made = []
    for i, kind in enumerate(kinds):
        name = "j%d-%s" % (i, kind)
        made.append((name,) + make_job(sess, name, 1 * H.MiB + 100 * i, kind, None))
    jobs = [{"name": n, "torrent": t.path, "output": "out/" + n, "peer": s.endpoint,
             "no_tracker": True, "download_limit": "400K", "timeout_s": 200}
            for n, _, t, s in made]
    jf = sess.path("jobs.textproto")
    with open(jf, "w") as f:
        f.write(textproto({"max_active": 2, "listen": "127.0.0.1:0", "state_dir": "state"}, jobs))
    files = [p.path_in(sess.path("out", n), "") for n, p, _, _ in made]
    r, grew = run_batch_watching(actorrent, jf, files)
    if r.returncode != 0:
        raise Failed("exit %d\n%s\n%s" % (r.returncode, r.stdout, H.tail(r.stderr)))
    for n, payload, _, _ in made:
        expect_exact(payload, sess.path("out", n), n)
    # On disk: never more than two files grew in one ~100 ms interval, and two did at times.
    on_disk = max(len(g) for g in grew)
    H.log("files growing at once: at most %d (%d samples)" % (on_disk, len(grew)))
    if on_disk > 2:
        raise Failed("%d output files grew at once (max_active 2): %s"
                     % (on_disk, [sorted(os.path.basename(f) for f in g)
                                  for g in grew if len(g) > 2]))
    if on_disk < 2:
        raise Failed("never two output files grew at once: the queue did not use max_active 2")
    # Not a terminal: plain progress lines for the batch and each downloading job.
    if not re.search(r"^batch: \d/5 done, 0 failed, 2 active, \d queued", r.stderr, re.M):
        raise Failed("no progress lines on stderr:\n" + H.tail(r.stderr))
    s = summary_of(sess.path("state", "summary.json"))
    bad = {n: j["status"] for n, j in s.items() if j["status"] != "complete"}
    if len(s) != 5 or bad:
        raise Failed("summary: %d jobs, not complete: %s" % (len(s), bad))
    for n, payload, _, _ in made:
        if s[n]["bytes"] != payload.total_size:
            raise Failed("summary: %s bytes %d, expected %d" % (n, s[n]["bytes"],
                                                              payload.total_size))
    # The per-job limit of 400 KiB/s held (with the burst a token bucket allows).
    for n, j in s.items():
        if j["rate"] > 1.25 * 400 * H.KiB:
            raise Failed("%s downloaded at %.0f B/s over its limit of 400 KiB/s" % (n, j["rate"]))
    by_lines, by_times = max_concurrency(r.stdout), overlap_from_summary(s)
    H.log("jobs at once: %d (lines), %d (summary times)" % (by_lines, by_times))
    if by_lines > 2 or by_times > 2:
        raise Failed("more than max_active 2 jobs downloaded at once: %d by the output lines, %d "
                     "by the summary's times" % (by_lines, by_times))
    if by_lines < 2:
        raise Failed("never two jobs at once: the queue did not use max_active 2")


def case_broken(actorrent, sess):
    good = [("good1",) + make_job(sess, "good1", 300 * H.KiB, "libtorrent", None),
            ("good2",) + make_job(sess, "good2", 200 * H.KiB + 5, "aria2", None)]
    broken = sess.path("broken.torrent")
    with open(broken, "wb") as f:
        f.write(b"d8:announce3:foo4:infod6:lengthi-5eee")  # a torrent whose info is wrong
    jobs = [{"name": n, "torrent": t.path, "output": "out/" + n, "peer": s.endpoint,
             "no_tracker": True} for n, _, t, s in good[:1]]
    jobs.append({"name": "broken", "torrent": broken, "output": "out/broken"})
    jobs += [{"name": n, "torrent": t.path, "output": "out/" + n, "peer": s.endpoint,
              "no_tracker": True} for n, _, t, s in good[1:]]
    # Peers unreachable within timeout_s, and a disk error (the output's parent is a file):
    # each fails alone as well.
    # Its torrent's name (the job's default name) is not UTF-8: the summary stays valid JSON.
    with open(sess.path("lonely.torrent"), "wb") as f:
        f.write(H.bencode({"info": {"name": b"caf\xe9.bin", "piece length": PIECE,
                                    "length": 1000, "pieces": b"\0" * 20}}))
    jobs.append({"torrent": sess.path("lonely.torrent"), "output": "out/unreachable",
                 "peer": "127.0.0.1:%d" % H.free_port(), "no_tracker": True, "timeout_s": 3})
    with open(sess.path("blocker"), "w") as f:
        f.write("a file where a folder is needed\n")
    diskerr = H.make_payload(sess.mkdir("data-diskerr"), "diskerr.bin", size=50 * H.KiB, seed="d")
    diskerr_t = H.make_torrent(diskerr, PIECE, sess.path("diskerr.torrent"))
    jobs.append({"name": "diskerr", "torrent": diskerr_t.path, "output": "blocker/out",
                 "peer": good[0][3].endpoint, "no_tracker": True})
    jf = sess.path("jobs.textproto")
    with open(jf, "w") as f:
        f.write(textproto({"max_active": 1, "listen": "127.0.0.1:0"}, jobs))
    r = run_batch(actorrent, jf, "--summary", sess.path("sum.json"))
    if r.returncode != 1:
        raise Failed("exit %d, expected 1\n%s\n%s" % (r.returncode, r.stdout, H.tail(r.stderr)))
    s = summary_of(sess.path("sum.json"))
    if s["broken"]["status"] != "failed" or "broken.torrent" not in (s["broken"]["error"] or ""):
        raise Failed("summary for the broken job: %s" % s["broken"])
    lonely = s.get("caf\ufffd.bin")
    if not lonely or lonely["status"] != "failed" or \
            "timed out after 3 s: no peer could be reached" not in (lonely["error"] or ""):
        raise Failed("summary for the unreachable job (named caf\\ufffd.bin): %s" % s)
    if s["diskerr"]["status"] != "failed" or "blocker" not in (s["diskerr"]["error"] or ""):
        raise Failed("summary for the job with a disk error: %s" % s["diskerr"])
    for n, payload, _, _ in good:
        if s[n]["status"] != "complete":
            raise Failed("%s: %s" % (n, s[n]))
        expect_exact(payload, sess.path("out", n), n)
    if not re.search(r"^broken\s+failed\s", r.stdout, re.M):
        raise Failed("the table does not show the broken job as failed:\n" + r.stdout)


def case_kill9(actorrent, sess):
    made = [("first",) + make_job(sess, "first", 1 * H.MiB, "libtorrent", None),
            ("second",) + make_job(sess, "second", 4 * H.MiB, "aria2", None),
            ("third",) + make_job(sess, "third", 512 * H.KiB, "libtorrent", None)]
    jobs = [{"name": n, "torrent": t.path, "output": "out/" + n, "peer": s.endpoint,
             "no_tracker": True, "priority": 10 - i}
            for i, (n, _, t, s) in enumerate(made)]
    jobs[1]["download_limit"] = "512K"  # about 8 s: killed in the middle
    jf = sess.path("jobs.textproto")
    with open(jf, "w") as f:
        f.write(textproto({"max_active": 1, "listen": "127.0.0.1:0"}, jobs))
    state = sess.path("jobs.state")  # the default state_dir: <job file stem>.state
    p = sess.spawn("batch1", [actorrent, "batch", jf, "-q"], env=H.child_env())
    second_file = made[1][1].path_in(sess.path("out", "second"), "")
    # Killed once the second job has a good part of its data on disk.
    if not H.wait_for(lambda: "started: second" in p.output() and os.path.exists(second_file)
                      and os.path.getsize(second_file) > 0 and
                      _allocated(second_file) >= 1 * H.MiB, 60):
        raise Failed("the second job did not get going\n%s" % p.output())
    time.sleep(0.5)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    out1 = p.output()
    if "complete: first" not in out1 or "complete: second" in out1:
        raise Failed("killed at the wrong moment:\n" + out1)
    first_file = made[0][1].path_in(sess.path("out", "first"), "")
    mtime = os.stat(first_file).st_mtime_ns
    r = run_batch(actorrent, jf)
    if r.returncode != 0:
        raise Failed("rerun: exit %d\n%s\n%s" % (r.returncode, r.stdout, H.tail(r.stderr)))
    s = summary_of(os.path.join(state, "summary.json"))
    if not s["first"]["already_complete"] or s["first"]["downloaded"] != 0 or \
            "started: first" in r.stdout or "already complete: first" not in r.stdout:
        raise Failed("the first job was redone: %s" % s["first"])
    if os.stat(first_file).st_mtime_ns != mtime:
        raise Failed("the first job's file was written again")
    if s["second"]["status"] != "complete" or \
            s["second"]["downloaded"] >= made[1][1].total_size:
        raise Failed("the second job did not continue from its verified pieces: %s"
                     % s["second"])
    if s["third"]["status"] != "complete" or s["third"]["already_complete"]:
        raise Failed("third: %s" % s["third"])
    for n, payload, _, _ in made:
        expect_exact(payload, sess.path("out", n), n)
    H.log("rerun fetched %d of the second job's %d bytes"
          % (s["second"]["downloaded"], made[1][1].total_size))
    # Not trusted blindly: bytes of the first job changed on disk (its modification time with
    # them), so a third run checks it again and fetches what no longer matches; the others are
    # complete by their resume data.
    with open(first_file, "r+b") as f:
        f.seek(100000)
        f.write(b"\xff" * 100)
    r = run_batch(actorrent, jf)
    if r.returncode != 0:
        raise Failed("third run: exit %d\n%s\n%s" % (r.returncode, r.stdout, H.tail(r.stderr)))
    s = summary_of(os.path.join(state, "summary.json"))
    if "started: first" not in r.stdout or s["first"]["already_complete"] or \
            not 0 < s["first"]["downloaded"] < made[0][1].total_size:
        raise Failed("a changed file was trusted, or fetched whole: %s" % s["first"])
    if not (s["second"]["already_complete"] and s["third"]["already_complete"]):
        raise Failed("third run: %s" % s)
    for n, payload, _, _ in made:
        expect_exact(payload, sess.path("out", n), n)


def case_sigint(actorrent, sess):
    made = [("one",) + make_job(sess, "one", 3 * H.MiB, "libtorrent", None),
            ("two",) + make_job(sess, "two", 256 * H.KiB, "aria2", None)]
    jobs = [{"name": n, "torrent": t.path, "output": "out/" + n, "peer": s.endpoint,
             "no_tracker": True} for n, _, t, s in made]
    jobs[0]["download_limit"] = "512K"
    jf = sess.path("jobs.textproto")
    with open(jf, "w") as f:
        f.write(textproto({"max_active": 1, "listen": "127.0.0.1:0"}, jobs))
    p = sess.spawn("batch1", [actorrent, "batch", jf, "-q"], env=H.child_env())
    one_file = made[0][1].path_in(sess.path("out", "one"), "")
    if not H.wait_for(lambda: _allocated(one_file) >= 1 * H.MiB, 60):
        raise Failed("the first job did not get going\n%s" % p.output())
    os.kill(p.pid, signal.SIGINT)
    t0 = time.monotonic()
    rc = p.wait(15)
    if rc != 130:
        raise Failed("SIGINT: exit %s (expected 130 within 15 s)\n%s" % (rc, p.output()))
    H.log("stopped %.1f s after SIGINT" % (time.monotonic() - t0))
    s = summary_of(sess.path("jobs.state", "summary.json"))
    if s["one"]["status"] != "skipped" or "stopped by SIGINT" not in s["one"]["error"] or \
            s["two"]["status"] != "skipped" or "before it started" not in s["two"]["error"]:
        raise Failed("summary after SIGINT: %s" % s)
    r = run_batch(actorrent, jf)
    if r.returncode != 0:
        raise Failed("rerun: exit %d\n%s\n%s" % (r.returncode, r.stdout, H.tail(r.stderr)))
    s = summary_of(sess.path("jobs.state", "summary.json"))
    if s["one"]["downloaded"] >= made[0][1].total_size:
        raise Failed("the first job started over: %s" % s["one"])
    for n, payload, _, _ in made:
        expect_exact(payload, sess.path("out", n), n)


def case_seed_goal(actorrent, sess):
    made = [("seeder",) + make_job(sess, "seeder", 200 * H.KiB, "libtorrent", None),
            ("after",) + make_job(sess, "after", 200 * H.KiB, "aria2", None)]
    jobs = [{"name": n, "torrent": t.path, "output": "out/" + n, "peer": s.endpoint,
             "no_tracker": True} for n, _, t, s in made]
    jobs[0]["seed_time_s"] = 4
    jf = sess.path("jobs.textproto")
    with open(jf, "w") as f:
        f.write(textproto({"max_active": 1, "listen": "127.0.0.1:0"}, jobs))
    t0 = time.time()
    r = run_batch(actorrent, jf)
    t1 = time.time()
    if r.returncode != 0:
        raise Failed("exit %d\n%s\n%s" % (r.returncode, r.stdout, H.tail(r.stderr)))
    s = summary_of(sess.path("jobs.state", "summary.json"))
    first, second = s["seeder"], s["after"]
    if first["status"] != "complete" or second["status"] != "complete":
        raise Failed("summary: %s" % s)
    if second["started_at"] - first["finished_at"] > 2.0:
        raise Failed("the second job waited %.1f s for the seeding one's slot"
                     % (second["started_at"] - first["finished_at"]))
    if t1 - first["finished_at"] < 4.0:
        raise Failed("the batch ended %.1f s after the first job completed, before its "
                     "seed_time_s of 4" % (t1 - first["finished_at"]))
    H.log("batch ran %.1f s; seeding job finished at +%.1f s"
          % (t1 - t0, first["finished_at"] - t0))
    for n, payload, _, _ in made:
        expect_exact(payload, sess.path("out", n), n)
    # Run again: both are complete by their resume data, and the first seeds again for its
    # seed_time_s (a run killed while seeding must not drop the goal); the second does not.
    t0 = time.monotonic()
    r = run_batch(actorrent, jf)
    took = time.monotonic() - t0
    if r.returncode != 0 or "seeding again: seeder" not in r.stdout or \
            "seeding again: after" in r.stdout or took < 4.0:
        raise Failed("rerun: exit %d after %.1f s\n%s" % (r.returncode, took, r.stdout))
    s = summary_of(sess.path("jobs.state", "summary.json"))
    if not (s["seeder"]["already_complete"] and s["seeder"]["status"] == "complete"):
        raise Failed("rerun: %s" % s)
    # A ratio goal no leecher will ever meet (the only peer is a seeder): timeout_s ends the
    # seeding; the job stays complete with a note, the batch ends, exit 0.
    lonely = dict(jobs[1], name="lonely", output="out2/after", seed_ratio=5, timeout_s=5)
    jf2 = sess.path("ratio.textproto")
    with open(jf2, "w") as f:
        f.write(textproto({"listen": "127.0.0.1:0"}, [lonely]))
    t0 = time.monotonic()
    r = run_batch(actorrent, jf2, timeout=60)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise Failed("ratio goal: exit %d\n%s\n%s" % (r.returncode, r.stdout, H.tail(r.stderr)))
    j = summary_of(sess.path("ratio.state", "summary.json"))["lonely"]
    if j["status"] != "complete" or "seed goal missed" not in (j["error"] or "") or \
            "seed goal missed: lonely: timed out after 5 s" not in r.stdout:
        raise Failed("ratio goal: %s\n%s" % (j, r.stdout))
    if not 5 <= took < 20:
        raise Failed("ratio goal: the batch took %.1f s (timeout_s 5)" % took)
    # Without seed_time_s or timeout_s such a goal could run forever: refused up front.
    del lonely["timeout_s"]
    with open(jf2, "w") as f:
        f.write(textproto({"listen": "127.0.0.1:0"}, [lonely]))
    r = run_batch(actorrent, jf2, timeout=30)
    if r.returncode != 2 or "seed_ratio without seed_time_s or timeout_s" not in r.stderr:
        raise Failed("unbounded ratio goal: exit %d, %s" % (r.returncode, r.stderr))


def case_slot_held(actorrent, sess):
    made = [("slow",) + make_job(sess, "slow", 24 * H.MiB, "libtorrent", None),
            ("next",) + make_job(sess, "next", 4 * H.MiB, "aria2", None)]
    jobs = [{"name": n, "torrent": t.path, "output": "out/" + n, "peer": s.endpoint,
             "no_tracker": True} for n, _, t, s in made]
    # Times out in the middle of its download, writing a piece every few milliseconds then.
    jobs[0]["download_limit"] = "4M"
    jobs[0]["timeout_s"] = 3
    jf = sess.path("jobs.textproto")
    with open(jf, "w") as f:
        f.write(textproto({"max_active": 1, "listen": "127.0.0.1:0"}, jobs))
    files = [p.path_in(sess.path("out", n), "") for n, p, _, _ in made]
    r, grew = run_batch_watching(actorrent, jf, files, "-q", every=0.01)
    if r.returncode != 1:
        raise Failed("exit %d, expected 1\n%s\n%s" % (r.returncode, r.stdout, H.tail(r.stderr)))
    s = summary_of(sess.path("jobs.state", "summary.json"))
    if s["slow"]["status"] != "failed" or "timed out after 3 s" not in (s["slow"]["error"] or ""):
        raise Failed("the slow job did not time out: %s" % s["slow"])
    if not 0 < _allocated(files[0]) < made[0][1].total_size:
        raise Failed("the slow job did not time out in the middle of its download")
    if s["next"]["status"] != "complete":
        raise Failed("next: %s" % s["next"])
    expect_exact(made[1][1], sess.path("out", "next"), "next")
    # max_active 1 on disk: the timed-out torrent was stopped before the next one started.
    both = [i for i, g in enumerate(grew) if len(g) > 1]
    if both:
        raise Failed("both files grew at once (max_active 1) in %d sample(s)" % len(both))


def _allocated(path):
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0


FILES = [("a/one.bin", 100000), ("a/two.txt", 50000), ("b/three.bin", 200000),
         ("four.txt", 70000)]


def case_select_file(actorrent, sess):
    data = sess.mkdir("data", mode=0o755)
    payload = H.make_payload(data, "sel", files=FILES, seed="batch-select")
    torrent = H.make_torrent(payload, 64 * H.KiB, sess.path("sel.torrent"))
    seeder = H.LibtorrentSeeder(sess, torrent, data).start()
    jf = sess.path("jobs.textproto")
    with open(jf, "w") as f:
        f.write(textproto({"listen": "127.0.0.1:0"},
                          [{"torrent": "sel.torrent", "output": "out", "select_file": "1,3",
                            "peer": seeder.endpoint, "no_tracker": True}]))
    r = run_batch(actorrent, jf)
    if r.returncode != 0:
        raise Failed("exit %d\n%s\n%s" % (r.returncode, r.stdout, H.tail(r.stderr)))
    chosen = H.Payload(payload.root, payload.name, [FILES[0], FILES[2]], False, payload.seed)
    chosen.sha256 = payload.sha256
    expect_exact(chosen, sess.path("out"), "select_file 1,3")
    for rel in (FILES[1][0], FILES[3][0]):
        if os.path.lexists(payload.path_in(sess.path("out"), rel)):
            raise Failed("%s was not selected but exists" % rel)
    s = summary_of(sess.path("jobs.state", "summary.json"))
    if s["sel"]["bytes"] != FILES[0][1] + FILES[2][1]:
        raise Failed("summary bytes %d, the selected files are %d"
                     % (s["sel"]["bytes"], FILES[0][1] + FILES[2][1]))
    # A summary that cannot be written (its folder would be below a plain file) fails the run.
    with open(sess.path("plain"), "w") as f:
        f.write("not a folder\n")
    r = run_batch(actorrent, jf, "--summary", sess.path("plain", "sum.json"), timeout=60)
    if r.returncode != 1 or "error: summary:" not in r.stderr:
        raise Failed("unwritable summary: exit %d, stderr %s" % (r.returncode, H.tail(r.stderr)))


def case_json(actorrent, sess):
    payload, torrent, seeder = make_job(sess, "viajson", 700 * H.KiB, "transmission", None)
    payload2, torrent2, seeder2 = make_job(sess, "second", 300 * H.KiB + 7, "libtorrent", None)
    # The same two jobs in both formats (outputs and state apart): the same summary.
    jobs = [{"name": "viajson", "torrent": "viajson.torrent", "output": "out",
             "peer": [seeder.endpoint], "no_tracker": True, "timeout_s": 200},
            {"name": "second", "torrent": "second.torrent", "output": "out2",
             "peer": [seeder2.endpoint], "no_tracker": True, "priority": 3,
             "download_limit": "2M", "select_file": "1"}]
    settings = {"max_active": 1, "listen": "127.0.0.1:0"}
    tf = sess.path("jobs.textproto")
    with open(tf, "w") as f:
        f.write(textproto(dict(settings, state_dir="tst"),
                          [dict(j, output="t-" + j["output"]) for j in jobs]))
    r = run_batch(actorrent, tf)
    if r.returncode != 0:
        raise Failed("text: exit %d\n%s\n%s" % (r.returncode, r.stdout, H.tail(r.stderr)))
    text_summary = summary_of(sess.path("tst", "summary.json"))
    # proto3 JSON: camelCase keys as well as the proto names.
    camel = {"no_tracker": "noTracker", "select_file": "selectFile"}
    doc = {"settings": dict(settings, state_dir="st"),
           "job": [{camel.get(k, k): v for k, v in j.items()} for j in jobs]}
    jf = sess.path("jobs.json")
    with open(jf, "w") as f:
        json.dump(doc, f, indent=2)
    r = run_batch(actorrent, jf)
    if r.returncode != 0:
        raise Failed("exit %d\n%s\n%s" % (r.returncode, r.stdout, H.tail(r.stderr)))
    expect_exact(payload, sess.path("out"), "json job")
    expect_exact(payload2, sess.path("out2"), "json job 2")
    json_summary = summary_of(sess.path("st", "summary.json"))
    fields = ("status", "bytes", "error", "already_complete")
    for n in ("viajson", "second"):
        t = {k: text_summary[n][k] for k in fields}
        j = {k: json_summary[n][k] for k in fields}
        if t != j or j["status"] != "complete":
            raise Failed("%s: text %s, JSON %s" % (n, t, j))
    # Priority 3 started first in both.
    for s_ in (text_summary, json_summary):
        if not s_["second"]["started_at"] < s_["viajson"]["started_at"]:
            raise Failed("the priority order differs: %s" % s_)
    # A bad JSON job file: its JSON path, exit 2, nothing written.
    doc["settings"]["state_dir"] = "st2"
    doc["job"][0]["download_limit"] = "20Q"
    bad = sess.path("bad.json")
    with open(bad, "w") as f:
        json.dump(doc, f)
    r = run_batch(actorrent, bad, timeout=30)
    want = "bad.json: job[0].download_limit: download_limit \"20Q\" is not a rate"
    if r.returncode != 2 or want not in r.stderr:
        raise Failed("bad JSON: exit %d, stderr %r; expected 2 and %r"
                     % (r.returncode, r.stderr, want))
    if os.path.exists(sess.path("st2")):
        raise Failed("an invalid job file created its state_dir")


def case_dry_run(actorrent, sess):
    # A socket that would see any peer dial or tracker announce of the dry run.
    canary = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    canary.bind((H.LOOPBACK, 0))
    canary.listen(16)
    canary.setblocking(False)
    sess.at_close(canary.close)
    port = canary.getsockname()[1]
    data = sess.mkdir("data", mode=0o755)
    payload = H.make_payload(data, "dry.bin", size=100 * H.KiB, seed="dry")
    H.make_torrent(payload, PIECE, sess.path("dry.torrent"),
                   announce="http://%s:%d/announce" % (H.LOOPBACK, port))
    with open(sess.path("bad.torrent"), "wb") as f:
        f.write(b"not bencoding")
    other = H.make_payload(data, "dry2.bin", size=10 * H.KiB, seed="dry2")
    H.make_torrent(other, PIECE, sess.path("dry2.torrent"))
    jf = sess.path("jobs.textproto")
    with open(jf, "w") as f:
        f.write(textproto({"listen": "127.0.0.1:0", "state_dir": "state"},
                          [{"name": "ok", "torrent": "dry.torrent", "output": "out/ok",
                            "peer": "%s:%d" % (H.LOOPBACK, port)},
                           {"name": "bad", "torrent": "bad.torrent", "output": "out/bad"},
                           {"name": "diskerr", "torrent": "dry2.torrent",
                            "output": "blocker/out"}]))
    with open(sess.path("blocker"), "w") as f:  # a file where the output's folder would be
        f.write("a file where a folder is needed\n")
    t0 = time.monotonic()
    r = run_batch(actorrent, jf, "--dry-run", timeout=30)
    want = "WOULD FAIL: output %s cannot be created: %s is not a folder" \
        % (sess.path("blocker", "out"), sess.path("blocker"))
    if r.returncode != 1 or "2 would fail" not in r.stdout or want not in r.stdout:
        raise Failed("dry run: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
    if os.path.exists(sess.path("state")) or os.path.exists(sess.path("out")):
        raise Failed("the dry run wrote something: %s" % os.listdir(sess.dir))
    time.sleep(0.5)
    try:
        conn, addr = canary.accept()
        conn.close()
        raise Failed("the dry run connected to %s:%d (its peer and tracker)" % (H.LOOPBACK, port))
    except BlockingIOError:
        pass
    if time.monotonic() - t0 > 10:
        raise Failed("the dry run took %.1f s" % (time.monotonic() - t0))


def case_magnet(actorrent, sess):
    """A job given as a magnet link (x.pe: an aria2 seeder; no dn, so the job names itself):
    the metadata is fetched, the content is byte-exact, the summary counts its real size, and a
    rerun finds the job complete through the saved .torrent without downloading again."""
    payload, torrent, seeder = make_job(sess, "bymagnet", 900 * H.KiB + 5, "aria2", None)
    link = "magnet:?xt=urn:btih:%s&x.pe=%s" % (torrent.info_hash_hex, seeder.endpoint)
    jf = sess.path("jobs.textproto")
    with open(jf, "w") as f:
        f.write(textproto({"listen": "127.0.0.1:0"},
                          [{"name": "bymagnet", "magnet": link, "output": "out",
                            "no_tracker": True, "timeout_s": 120}]))
    r = run_batch(actorrent, jf)
    if r.returncode != 0:
        raise Failed("exit %d\n%s\n%s" % (r.returncode, r.stdout, H.tail(r.stderr)))
    expect_exact(payload, sess.path("out"), "magnet job")
    saved = sess.path("out", ".actorrent", torrent.info_hash_hex + ".torrent")
    if not os.path.isfile(saved):
        raise Failed("the fetched metadata was not saved as %s" % saved)
    s = summary_of(sess.path("jobs.state", "summary.json"))
    if s["bymagnet"]["status"] != "complete" or s["bymagnet"]["bytes"] != payload.files[0][1]:
        raise Failed("summary: %s (expected complete, %d bytes)"
                     % (s["bymagnet"], payload.files[0][1]))
    seeder.stop()
    r = run_batch(actorrent, jf, timeout=60)
    s = summary_of(sess.path("jobs.state", "summary.json"))
    if r.returncode != 0 or s["bymagnet"]["status"] != "complete":
        raise Failed("rerun without the seeder: exit %d, %s\n%s"
                     % (r.returncode, s.get("bymagnet"), H.tail(r.stderr)))
    expect_exact(payload, sess.path("out"), "magnet job after the rerun")


def case_demo(actorrent, sess):
    work = sess.mkdir("demo")
    env = H.child_env({"ACTORRENT_BIN": actorrent, "ACTORRENT_DEMO_WAIT": "1"})
    demo = sess.spawn("batch-demo", ["bash", os.path.join(REPO, "deploy", "batch-demo.sh"), work],
                      env=env)
    if not H.wait_for(lambda: "ok: every job byte-exact" in demo.output() or not demo.running(),
                      TIMEOUT):
        raise Failed("batch-demo.sh did not finish\n%s" % H.tail(demo.output()))
    if not demo.running():
        raise Failed("batch-demo.sh exited %s\n%s" % (demo.returncode, H.tail(demo.output())))
    for part in ("== summary", '"jobs"', '"complete"'):
        if part not in demo.output():
            raise Failed("the demo's output lacks %r\n%s" % (part, H.tail(demo.output())))
    # What its closing lines tell the newcomer to try: run it again, kill it midway, rerun.
    for d in ("out", "state"):
        subprocess.run(["rm", "-rf", os.path.join(work, d)], check=True)
    jobfile = os.path.join(work, "jobs.textproto")
    big = os.path.join(work, "out", "big", "big.bin")
    p = sess.spawn("batch1", [actorrent, "batch", jobfile], env=H.child_env(), cwd=work)
    if not H.wait_for(lambda: _allocated(big) >= 30 * H.MiB or not p.running(), TIMEOUT):
        raise Failed("the big job did not get going\n%s" % p.output())
    if not p.running():
        raise Failed("the batch ended before it could be killed (exit %s)\n%s"
                     % (p.returncode, p.output()))
    # progress.json follows the bytes of a running job, not only changes of status.
    progress = os.path.join(work, "state", "progress.json")

    def big_progress():
        try:
            return summary_of(progress)["big"]
        except (OSError, ValueError, KeyError):
            return None
    if not H.wait_for(lambda: (big_progress() or {}).get("bytes", 0) >= 16 * H.MiB, 10):
        raise Failed("progress.json does not follow the running job: %s" % big_progress())
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    out1 = p.output()
    if "complete: big" in out1:
        raise Failed("killed too late:\n" + out1)
    finished = [n for n in ("album", "notes") if "complete: " + n in out1]
    r = subprocess.run([actorrent, "batch", jobfile], cwd=work, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, errors="replace", env=H.child_env(),
                       timeout=TIMEOUT)
    H.log("rerun: exit %d\n%s" % (r.returncode, r.stdout))
    if r.returncode != 0:
        raise Failed("rerun: exit %d\n%s\n%s" % (r.returncode, r.stdout, H.tail(r.stderr)))
    s = summary_of(os.path.join(work, "state", "summary.json"))
    size = os.path.getsize(os.path.join(work, "seed", "big.bin"))
    if any(s[n]["status"] != "complete" for n in ("big", "album", "notes")):
        raise Failed("summary: %s" % s)
    for n in finished:
        if not s[n]["already_complete"] or s[n]["downloaded"] != 0:
            raise Failed("%s, complete before the kill, was fetched again: %s" % (n, s[n]))
    if not 0 < s["big"]["downloaded"] < size:
        raise Failed("the big job did not continue from its verified pieces: %s" % s["big"])
    H.log("killed with %s complete; the rerun fetched %d of big's %d bytes"
          % (finished or "nothing else", s["big"]["downloaded"], size))
    seed, out = os.path.join(work, "seed"), os.path.join(work, "out")
    pairs = [("big.bin", "big/big.bin"), ("notes.txt", "notes/notes.txt")] + \
        [("album/track%d.flac" % i, "album/album/track%d.flac" % i) for i in (1, 3, 4, 5)]
    for a, b in pairs:
        if subprocess.run(["cmp", "-s", os.path.join(seed, a), os.path.join(out, b)]).returncode:
            raise Failed("%s differs from %s" % (b, a))
    if os.path.exists(os.path.join(out, "album", "album", "track2.flac")):
        raise Failed("the unselected track2.flac was created")
    demo.stop(grace=3.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--actorrent", required=True)
    ap.add_argument("--case", choices=CASES)
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(CASES))
        return 0
    H.require(("libtorrent", "aria2c", "transmission-cli", "stdbuf"))
    with H.Session("actorrent-batch-%s-" % a.case) as sess:
        try:
            globals()["case_" + a.case](os.path.abspath(a.actorrent), sess)
        except (Failed, H.HarnessError) as e:
            print("FAIL: %s: %s" % (a.case, e), file=sys.stderr)
            return 1
    print("PASS: %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
