#!/usr/bin/python3
"""`actorrent scrape` against a real tracker (opentracker's HTTP and UDP ports), 127.0.0.1 only.

  swarm   a libtorrent seeder registered with opentracker; the torrent lists opentracker over
          HTTP and over UDP, and an HTTP tracker that refuses connections. Each live line reports
          seeders >= 1, the dead one an error; exit 0. A magnet link with opentracker's UDP URL
          as tr (and its HTTP URL through --tracker) gives the same counts
  dead    every tracker dead: a refused HTTP port, a closed UDP port, a UDP port that never
          answers (the wait bounded by --timeout), a URL whose path is not .../announce: one
          precise error line each, exit 1; bad input (no such file, no tracker) exits 2

  scrape_test.py --actorrent PATH --case NAME
"""
import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402
from udp_tracker_test import SilentUdp, closed_udp_port, refused_tcp_port, with_tiers  # noqa: E402

CASES = ["swarm", "dead"]
LINE = re.compile(r"^(\S+): seeders (\d+), leechers (\d+), completed (\d+)$")


class CaseFailed(Exception):
    pass


def scrape(actorrent, args, timeout=30):
    t0 = time.monotonic()
    r = subprocess.run([actorrent, "scrape"] + args, capture_output=True, text=True,
                       timeout=timeout)
    H.log("actorrent scrape %s -> %d in %.2fs\n%s%s" % (" ".join(args), r.returncode,
                                                       time.monotonic() - t0, r.stdout, r.stderr))
    return r, time.monotonic() - t0


def lines_by_url(stdout):
    out = {}
    for line in stdout.splitlines():
        url = line.split(": ", 1)[0]
        out[url] = line
    return out


def expect_seeders(lines, url, problems):
    line = lines.get(url)
    m = LINE.match(line or "")
    if not m:
        problems.append("no counts for %s: %r" % (url, line))
    elif int(m.group(2)) < 1:
        problems.append("%s reports no seeder: %r" % (url, line))


def run_swarm(actorrent):
    H.require(["opentracker", "libtorrent"])
    problems = []
    with H.Session("actorrent-scrape-") as sess:
        seed_root = sess.mkdir("seed")
        payload = H.make_payload(seed_root, "scrape.bin", size=H.MiB, seed="scrape")
        tracker = H.OpenTracker(sess)
        base = H.make_torrent(payload, 64 * 1024, sess.path("base.torrent"))
        tracker.start([base.info_hash])
        seeder_torrent = with_tiers(base, [[tracker.announce_url]], sess.path("seeder.torrent"))
        H.LibtorrentSeeder(sess, seeder_torrent, seed_root, tracker=tracker).start(timeout=60)
        live_udp = "udp://%s:%d/announce" % (H.LOOPBACK, tracker.port)
        dead_http = "http://%s:%d/announce" % (H.LOOPBACK, refused_tcp_port())
        t = with_tiers(base, [[tracker.announce_url, dead_http], [live_udp]],
                       sess.path("scrape.torrent"))
        r, _ = scrape(actorrent, [t.path, "--timeout", "5"])
        if r.returncode != 0:
            problems.append("exit %d with live trackers (want 0)" % r.returncode)
        lines = lines_by_url(r.stdout)
        expect_seeders(lines, tracker.announce_url, problems)
        expect_seeders(lines, live_udp, problems)
        if not re.match(re.escape(dead_http) + r": error: \S", lines.get(dead_http, "")):
            problems.append("no error line for the dead tracker %s" % dead_http)
        if len(r.stdout.splitlines()) != 3:
            problems.append("want 3 lines, got %r" % r.stdout)

        magnet = "magnet:?xt=urn:btih:%s&tr=%s" % (base.info_hash.hex(), live_udp)
        r, _ = scrape(actorrent, [magnet, "--tracker", tracker.announce_url, "-q"])
        if r.returncode != 0:
            problems.append("magnet: exit %d (want 0)" % r.returncode)
        if r.stderr:
            problems.append("-q: stderr not empty: %r" % r.stderr)
        lines = lines_by_url(r.stdout)
        expect_seeders(lines, live_udp, problems)
        expect_seeders(lines, tracker.announce_url, problems)
    if problems:
        raise CaseFailed("; ".join(problems))


def run_dead(actorrent):
    problems = []
    silent = SilentUdp()
    try:
        with H.Session("actorrent-scrape-dead-") as sess:
            payload = H.make_payload(sess.mkdir("data"), "dead.bin", size=64 * 1024, seed="dead")
            refused = "http://%s:%d/announce" % (H.LOOPBACK, refused_tcp_port())
            closed = "udp://%s:%d" % (H.LOOPBACK, closed_udp_port())
            quiet = "udp://%s:%d/announce" % (H.LOOPBACK, silent.port)
            not_announce = "http://%s:%d/tracker" % (H.LOOPBACK, refused_tcp_port())
            base = H.make_torrent(payload, 16 * 1024, sess.path("base.torrent"))
            t = with_tiers(base, [[refused], [closed, quiet], [not_announce]],
                           sess.path("dead.torrent"))
            r, took = scrape(actorrent, [t.path, "--timeout", "1.5"])
            if r.returncode != 1:
                problems.append("exit %d with every tracker dead (want 1)" % r.returncode)
            if took > 10:
                problems.append("took %.1fs with a 1.5 s timeout per tracker" % took)
            lines = lines_by_url(r.stdout)
            want = {
                refused: r": error: .*(connect|refused)",
                closed: r": error: udp tracker: Connection refused$",
                quiet: r": error: udp tracker: no answer to the connect request within 1500 ms "
                       r"\(\d+ tries\)$",
                not_announce: r": error: cannot scrape: its last path segment \"tracker\" does "
                              r"not begin with \"announce\" \(BEP 48\)$",
            }
            for url, pattern in want.items():
                if not re.match(re.escape(url) + pattern, lines.get(url, ""), re.I):
                    problems.append("line for %s: %r does not match %r"
                                    % (url, lines.get(url), pattern))
            if len(silent.datagrams) < 2:
                problems.append("the silent UDP tracker got %d datagrams (want a connect and a "
                                "retransmission)" % len(silent.datagrams))

            r, _ = scrape(actorrent, [sess.path("no-such.torrent")])
            if r.returncode != 2 or "error:" not in r.stderr:
                problems.append("missing file: exit %d, stderr %r (want 2)"
                                % (r.returncode, r.stderr))
            r, _ = scrape(actorrent, ["magnet:?xt=urn:btih:" + base.info_hash.hex()])
            if r.returncode != 2 or "no tracker" not in r.stderr:
                problems.append("magnet without tr: exit %d, stderr %r (want 2)"
                                % (r.returncode, r.stderr))
    finally:
        silent.close()
    if problems:
        raise CaseFailed("; ".join(problems))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", required=True)
    ap.add_argument("--case", required=True, choices=CASES)
    a = ap.parse_args()
    try:
        {"swarm": run_swarm, "dead": run_dead}[a.case](os.path.abspath(a.actorrent))
    except (CaseFailed, H.HarnessError, subprocess.TimeoutExpired) as e:
        print("FAIL: %s: %s" % (a.case, e), file=sys.stderr)
        return 1
    print("PASS: %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
