#!/usr/bin/python3
"""Many torrents in one actorrent process: one process seeds them all, another downloads them
all, and the number of OS threads does not grow with the number of torrents
(tests/interop/harness.py).

  seed_and_download  N small torrents (default 100). `actorrent seed T1 ... TN -o DIR` checks and
                     seeds all of them in one process; `actorrent download T1 ... TN -o OUT` fetches
                     all of them from it in another: exit 0, N 'complete:' lines, every file
                     byte-exact. The seeder of N torrents runs exactly as many OS threads
                     (/proc/PID/task) as a seeder of one torrent started with the same options.

  many_torrents_test.py --actorrent PATH --case NAME [--torrents N]
"""
import argparse
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

CASES = ["seed_and_download"]
PIECE = 32 * H.KiB
SIZE = 100 * H.KiB + 17  # four pieces, the last one short
COMPLETE_RE = re.compile(r"^complete: (.+?) (\d+) bytes in ", re.M)
SEEDING_RE = re.compile(r"^seeding: (.+?) on ", re.M)
# The same pools for both seeders, so that the comparison is about torrents only.
POOLS = ["--io-threads", "2", "--disk-threads", "2"]


class Failed(Exception):
    pass


def threads_of(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_seeder(sess, actorrent, name, torrents, root, count):
    port = H.free_port()
    argv = [actorrent, "seed"] + [t.path for t in torrents] + [
        "-o", root, "--no-tracker", "--listen", "%s:%d" % (H.LOOPBACK, port)] + POOLS
    H.log("run: %s seed (%d torrents) -o %s" % (actorrent, len(torrents), root))
    p = sess.spawn(name, argv, log_path=sess.path(name + ".stdout"),
                   stderr_path=sess.path(name + ".stderr"))
    if not H.wait_for(lambda: len(SEEDING_RE.findall(p.output())) >= count or not p.running(),
                      120):
        raise Failed("%s: %d of %d torrents seeding after 120 s\n%s"
                     % (name, len(SEEDING_RE.findall(p.output())), count,
                        H.tail(p.stderr_text(), 20)))
    if not p.running():
        raise Failed("%s exited\n%s" % (name, H.tail(p.stderr_text(), 20)))
    time.sleep(1.0)  # settled: connections and pools as they stay while seeding
    return p, port


def case_seed_and_download(actorrent, count):
    with H.Session("actorrent-many-") as sess:
        root = sess.mkdir("seed", mode=0o755)
        made = []
        for i in range(count):
            name = "t%04d.bin" % i
            payload = H.make_payload(root, name, size=SIZE, seed=name)
            made.append((payload, H.make_torrent(payload, PIECE, sess.path(name + ".torrent"))))
        torrents = [t for _, t in made]

        one, _ = start_seeder(sess, actorrent, "seed1", torrents[:1], root, 1)
        threads_one = threads_of(one.pid)
        rss_one = rss_kib(one.pid)
        one.stop()

        many, port = start_seeder(sess, actorrent, "seedN", torrents, root, count)
        threads_many = threads_of(many.pid)
        rss_many = rss_kib(many.pid)
        H.log("seeder threads: %d with 1 torrent, %d with %d torrents" % (threads_one, threads_many,
                                                                          count))
        H.log("seeder RSS: %d KiB with 1 torrent, %d KiB with %d (%.1f KiB per added torrent)"
              % (rss_one, rss_many, count, (rss_many - rss_one) / max(1, count - 1)))
        if threads_many != threads_one:
            raise Failed("the seeder runs %d OS threads with %d torrents but %d with one"
                         % (threads_many, count, threads_one))

        out = sess.mkdir("download")
        argv = [actorrent, "download"] + [t.path for t in torrents] + [
            "-o", out, "--no-tracker", "--peer", "%s:%d" % (H.LOOPBACK, port),
            "--listen", "%s:0" % H.LOOPBACK, "--timeout", "240"] + POOLS
        H.log("run: %s download (%d torrents) -o %s" % (actorrent, count, out))
        p = sess.spawn("download", argv, log_path=sess.path("download.stdout"),
                       stderr_path=sess.path("download.stderr"))
        rc = p.wait(270)
        if rc is None:
            p.stop(grace=3)
            raise Failed("download still running after 270 s\n%s" % H.tail(p.stderr_text(), 30))
        if rc != 0:
            raise Failed("download exit %d\n%s" % (rc, H.tail(p.stderr_text(), 30)))
        names = set(COMPLETE_RE.findall(p.output()))
        done = {n for n, _ in names}
        if len(done) != count:
            raise Failed("%d 'complete:' lines for %d torrents" % (len(done), count))
        for payload, _ in made:
            problems = H.verify_download(payload, out)
            if problems:
                raise Failed("%s differs: %s" % (payload.name, problems[:3]))
        H.log("%d torrents byte-exact" % count)
        if not many.running():
            raise Failed("the seeder exited\n%s" % H.tail(many.stderr_text(), 20))
        many.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", required=True)
    ap.add_argument("--case", required=True, choices=CASES)
    ap.add_argument("--torrents", type=int, default=100)
    a = ap.parse_args()
    try:
        case_seed_and_download(os.path.abspath(a.actorrent), a.torrents)
    except Failed as e:
        print("FAIL: %s: %s" % (a.case, e), flush=True)
        return 1
    print("PASS: %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
