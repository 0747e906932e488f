#!/usr/bin/python3
"""One actorrent session: several torrents in one command, and the session's rate limits, against
real clients on 127.0.0.1 (tests/interop/harness.py).

  multi.three_seeders  `actorrent download A B C -o DIR` with three torrents served by a
                       libtorrent, an aria2 and a transmission seeder through opentracker: one
                       process, exit 0, three 'complete:' lines, every file byte-exact, and
                       (stderr is not a terminal) one total progress line for all three.
  limit.download       --download-limit 4M from a libtorrent seeder, 48 MiB (12 s at the limit):
                       the rate actorrent reports for the run is within 5 % of 4 MiB/s.
  limit.upload         actorrent seeds with --upload-limit 4M to a libtorrent leecher, 48 MiB: the
                       leecher's own download time gives a rate within 5 % of 4 MiB/s.

  session_test.py --actorrent PATH --case NAME
"""
import argparse
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

CASES = ["multi.three_seeders", "limit.download", "limit.upload"]
LIMIT = 4 * H.MiB
LIMITED_SIZE = 48 * H.MiB   # 12 s at the limit: the 5 % must hold over >= 10 s
PIECE = 256 * H.KiB
COMPLETE_RE = re.compile(r"^complete: (.+) (\d+) bytes in ([\d.]+) s ", re.M)


class Failed(Exception):
    pass


def check_rate(what, rate):
    ratio = rate / LIMIT
    H.log("%s: %.3f MiB/s = %.3f x the %d MiB/s limit" % (what, rate / H.MiB, ratio, LIMIT // H.MiB))
    if not 0.95 <= ratio <= 1.05:
        raise Failed("%s: %.2f MiB/s is not within 5 %% of the %d MiB/s limit (ratio %.3f)"
                     % (what, rate / H.MiB, LIMIT // H.MiB, ratio))


def run_actorrent(sess, argv, timeout):
    H.log("run: " + " ".join(argv))
    p = sess.spawn("actorrent", argv, log_path=sess.path("actorrent.stdout"),
                   stderr_path=sess.path("actorrent.stderr"))
    rc = p.wait(timeout)
    if rc is None:
        p.stop(grace=3)
        raise Failed("actorrent still running after %d s\n%s" % (timeout, H.tail(p.stderr_text(), 30)))
    return rc, p.output(), p.stderr_text()


def case_three_seeders(actorrent):
    H.require({"libtorrent", "aria2c", "transmission-cli", "stdbuf", "opentracker"})
    with H.Session("actorrent-session-multi-") as sess:
        tracker = H.OpenTracker(sess)
        specs = [("libtorrent", "lt_single.bin", None, H.single_file_spec(64 * H.KiB)),
                 ("aria2", "aria2_multi", H.multi_file_spec(64 * H.KiB), None),
                 ("transmission", "tr_single.bin", None, H.single_file_spec(64 * H.KiB))]
        made = []
        for client, name, files, size in specs:
            root = sess.mkdir("seed-" + client, mode=0o755)
            payload = H.make_payload(root, name, files=files, size=size, seed=name)
            torrent = H.make_torrent(payload, 64 * H.KiB, sess.path(client + ".torrent"),
                                     announce=tracker.announce_url)
            made.append((client, root, payload, torrent))
        tracker.start([t.info_hash for _, _, _, t in made])
        for client, root, _, torrent in made:
            H.SEEDERS[client](sess, torrent, root, tracker=tracker).start(timeout=40)
        out = sess.mkdir("download")
        argv = [actorrent, "download"] + [t.path for _, _, _, t in made] + [
            "-o", out, "--listen", "%s:0" % H.LOOPBACK, "--timeout", "150"]
        rc, stdout, stderr = run_actorrent(sess, argv, 180)
        if rc != 0:
            raise Failed("exit %d\n%s" % (rc, H.tail(stderr, 30)))
        names = sorted(m.group(1) for m in COMPLETE_RE.finditer(stdout))
        if names != sorted(name for _, name, _, _ in specs):
            raise Failed("'complete:' lines name %s\n%s" % (names, stdout))
        for client, _, payload, _ in made:
            problems = H.verify_download(payload, out)
            if problems:
                raise Failed("%s's torrent differs: %s" % (client, problems[:5]))
            H.log("%s: %d file(s) byte-exact" % (client, len(payload.files)))
        if not re.search(r"^all 3: ", stderr, re.M):
            raise Failed("no total progress line ('all 3: ...') on a non-terminal stderr\n%s"
                         % H.tail(stderr, 20))


def case_download_limit(actorrent):
    H.require({"libtorrent"})
    with H.Session("actorrent-session-limit-down-") as sess:
        root = sess.mkdir("seed", mode=0o755)
        payload = H.make_payload(root, "limited.bin", size=LIMITED_SIZE, seed="limit.download")
        torrent = H.make_torrent(payload, PIECE, sess.path("t.torrent"))
        seeder = H.LibtorrentSeeder(sess, torrent, root, tracker=None).start(timeout=60)
        out = sess.mkdir("download")
        argv = [actorrent, "download", torrent.path, "-o", out, "--no-tracker", "--peer",
                seeder.endpoint, "--listen", "%s:0" % H.LOOPBACK, "--download-limit", "4M",
                "--timeout", "60"]
        t0 = time.monotonic()
        rc, stdout, stderr = run_actorrent(sess, argv, 90)
        wall = time.monotonic() - t0
        if rc != 0:
            raise Failed("exit %d\n%s" % (rc, H.tail(stderr, 30)))
        problems = H.verify_download(payload, out)
        if problems:
            raise Failed("download differs: %s" % problems[:5])
        m = COMPLETE_RE.search(stdout)
        size, seconds = int(m.group(2)), float(m.group(3))
        H.log("%d bytes in %.2f s by actorrent's own clock (%.2f s wall, process start to exit)"
              % (size, seconds, wall))
        if seconds < 10:
            raise Failed("finished in %.2f s: the limit did not hold for >= 10 s" % seconds)
        # Nothing to check on a first run: the time from start to 'complete' is transfer time.
        check_rate("download", size / seconds)


def case_upload_limit(actorrent):
    H.require({"libtorrent"})
    with H.Session("actorrent-session-limit-up-") as sess:
        root = sess.mkdir("seed", mode=0o755)
        payload = H.make_payload(root, "limited.bin", size=LIMITED_SIZE, seed="limit.upload")
        torrent = H.make_torrent(payload, PIECE, sess.path("t.torrent"))
        port = H.free_port()
        argv = [actorrent, "seed", torrent.path, root, "--no-tracker", "--listen",
                "%s:%d" % (H.LOOPBACK, port), "--upload-limit", "4M"]
        H.log("run: " + " ".join(argv))
        seeder = sess.spawn("actorrent", argv, log_path=sess.path("actorrent.stdout"),
                            stderr_path=sess.path("actorrent.stderr"))
        # The check of the existing data comes first; the clock starts once it seeds.
        if not H.wait_for(lambda: "seeding:" in seeder.output() or not seeder.running(), 60):
            raise Failed("actorrent did not start seeding\n%s" % H.tail(seeder.stderr_text(), 20))
        if not seeder.running():
            raise Failed("actorrent exited\n%s" % H.tail(seeder.stderr_text(), 20))
        out = sess.mkdir("download")
        # libtorrent in this process: its status every 50 ms times the transfer from the first
        # payload byte to the last (its connection set-up is not part of actorrent's rate).
        import libtorrent as lt
        ses = H._lt_session(lt, H.free_port())
        h, _ = H._lt_add(lt, ses, torrent.path, out, False, True)
        h.connect_peer((H.LOOPBACK, port), 0)
        t_first = first_bytes = None
        deadline = time.monotonic() + 90
        while True:
            st = h.status()
            now = time.monotonic()
            if t_first is None and st.total_wanted_done > 0:
                t_first, first_bytes = now, st.total_wanted_done
            if st.is_seeding:
                break
            if now > deadline:
                raise Failed("libtorrent leecher not done after 90 s (%.1f%%)\n%s"
                             % (st.progress * 100, H.tail(seeder.stderr_text(), 20)))
            time.sleep(0.05)
        seconds = now - t_first
        moved = LIMITED_SIZE - first_bytes
        del h, ses
        problems = H.verify_download(payload, out)
        if problems:
            raise Failed("download differs: %s" % problems[:5])
        H.log("libtorrent leecher: %d bytes in %.2f s after its first %d bytes"
              % (moved, seconds, first_bytes))
        if seconds < 10:
            raise Failed("finished in %.2f s: the limit did not hold for >= 10 s" % seconds)
        check_rate("upload", moved / seconds)
        if not seeder.running():
            raise Failed("actorrent exited while seeding")
        seeder.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", required=True)
    ap.add_argument("--case", required=True, choices=CASES)
    a = ap.parse_args()
    actorrent = os.path.abspath(a.actorrent)
    try:
        {"multi.three_seeders": case_three_seeders, "limit.download": case_download_limit,
         "limit.upload": case_upload_limit}[a.case](actorrent)
    except Failed as e:
        print("FAIL: %s: %s" % (a.case, e), flush=True)
        return 1
    print("PASS: %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
