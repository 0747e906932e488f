#!/usr/bin/python3
"""actorrent against a scripted hostile HTTP tracker (127.0.0.1 only).

The torrent announces to a tracker run by this script that misbehaves in one way; actorrent
also gets an honest scripted seeder with --peer. A case passes when the download completes
byte-exact with exit 0 (the tracker cannot stop it), the tracker's misbehaviour was seen and
reported as expected, and actorrent's RSS stayed bounded.

  endless_reply    200 OK and a body that never ends (64 MiB sent at most)
  garbage          200 OK with bytes that are not bencode
  failure_reason   a bencoded "failure reason" full of terminal escape sequences
  flood_of_peers   a valid reply listing 20,000 peers (privileged ports on 127.0.0.2-21)
  redirect_loop    302 to itself, forever
  hang             accepts, reads the request and never answers
  events           an honest tracker that records every announce: the first one ("started")
                   comes right after the data check, "completed" when done, and "stopped" on
                   the way out, before the process exits

  hostile_tracker_test.py --actorrent PATH --case NAME
"""
import argparse
import http.server
import os
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

PIECE_LENGTH = 64 * 1024
SIZE = 6 * H.MiB
HONEST_RATE_KIB = 1024          # the download lasts ~6 s: several announces happen meanwhile
RSS_LIMIT_MIB = 1024 if os.environ.get("ASAN_OPTIONS") else 96
CASES = ["endless_reply", "garbage", "failure_reason", "flood_of_peers", "redirect_loop", "hang",
         "events"]
ASAN = bool(os.environ.get("ASAN_OPTIONS"))


class CaseFailed(Exception):
    pass


class Tracker:
    def __init__(self, mode):
        self.mode = mode
        self.requests = 0
        self.events = []                 # (monotonic time, event or "") per announce
        self.hold = threading.Event()
        tracker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                tracker.requests += 1
                ev = re.search(r"[?&]event=(\w+)", self.path)
                tracker.events.append((time.monotonic(), ev.group(1) if ev else ""))
                m = tracker.mode
                try:
                    if m == "endless_reply":
                        self.send_response(200)
                        self.send_header("Content-Type", "text/plain")
                        self.end_headers()
                        chunk = b"d8:intervali1800e5:peers" + b"9" * 65536
                        for _ in range(1024):   # 64 MiB at most
                            self.wfile.write(chunk)
                    elif m == "garbage":
                        self.reply(b"<html>this is not a tracker</html>\x00\xff" * 10)
                    elif m == "failure_reason":
                        self.reply(H.bencode({b"failure reason": b"\x1b[2J\x1b[31mpwned\x07 by tracker"}))
                    elif m == "flood_of_peers":
                        # loopback addresses other than 127.0.0.1, privileged ports: nothing of
                        # this test suite listens there, so the dials only meet closed ports
                        peers = b"".join(socket.inet_aton("127.0.0.%d" % (2 + i // 1023)) +
                                         struct.pack(">H", 1 + i % 1023) for i in range(20000))
                        self.reply(H.bencode({b"interval": 1800, b"peers": peers}))
                    elif m == "redirect_loop":
                        self.send_response(302)
                        self.send_header("Location", self.path)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    elif m == "hang":
                        tracker.hold.wait(120)
                    elif m == "events":
                        self.reply(H.bencode({b"interval": 1800, b"peers": b""}))
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def reply(self, body):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server((H.LOOPBACK, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://%s:%d/announce" % (H.LOOPBACK, self.port)

    def close(self):
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


def fetch_metrics(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as r:
            return r.read().decode()
    except OSError:
        return ""


def run_case(actorrent, mode):
    tracker = Tracker(mode)
    try:
        with H.Session("actorrent-tracker-%s-" % mode) as sess:
            seed_root = sess.mkdir("seed")
            payload = H.make_payload(seed_root, "tracker_%s.bin" % mode, size=SIZE, seed=mode)
            torrent = H.make_torrent(payload, PIECE_LENGTH, sess.path("t.torrent"), announce=tracker.url)
            honest = H.HostileSeeder(sess, torrent, seed_root, rate_kib=HONEST_RATE_KIB, name="honest")
            honest.start(timeout=20)
            out = sess.mkdir("download")
            metrics_port = H.free_port()
            argv = [actorrent, "download", "--listen", "127.0.0.1:0", torrent.path, "-o", out, "--peer", honest.endpoint, "-v",
                    "--timeout", "60", "--metrics-port", str(metrics_port)]
            H.log("case %s: tracker %s; run: %s" % (mode, tracker.url, " ".join(argv)))
            started_at = time.monotonic()
            dl = sess.spawn("actorrent", argv, log_path=sess.path("stdout"), stderr_path=sess.path("stderr"))
            rss, stop = [0], threading.Event()
            threading.Thread(target=H.sample_peak_rss, args=(dl.pid, rss, stop), daemon=True).start()
            known = []
            t0 = time.monotonic()
            rc = None
            while rc is None and time.monotonic() - t0 < 75:
                rc = dl.wait(0.5)
                m = re.search(r"^actorrent_peers_known(?:\{[^}]*\})? (\d+)", fetch_metrics(metrics_port), re.M)
                if m:
                    known.append(int(m.group(1)))
            stop.set()
            log = dl.stderr_text()
            problems = []
            if rc is None:
                dl.stop(grace=3)
                problems.append("actorrent did not exit within 75 s")
            elif rc != 0:
                problems.append("actorrent exited with status %d" % rc)
            else:
                bad = H.verify_download(payload, out)
                if bad:
                    problems.append("download differs: %s" % bad[:3])
                else:
                    H.log("byte-exact in %.1f s; the tracker got %d request(s)" % (time.monotonic() - t0, tracker.requests))
            if tracker.requests == 0:
                problems.append("actorrent never announced to the tracker")
            if mode == "events":
                names = [e for _, e in tracker.events]
                H.log("announces: %s" % names)
                if names[:1] != ["started"]:
                    problems.append("the first announce was %r, not 'started'" % names[:1])
                elif not ASAN:
                    # An empty output directory is checked at once; the announce must not wait
                    # for the next one-second tick (it did: ~1 s).
                    delay = tracker.events[0][0] - started_at
                    H.log("first announce %.3f s after launch" % delay)
                    if delay > 0.6:
                        problems.append("the first announce came %.2f s after launch" % delay)
                if "completed" not in names:
                    problems.append("no 'completed' announce")
                if not names or names[-1] != "stopped":
                    problems.append("the last announce was %r, not 'stopped'" % names[-1:])
            if "\x1b" in log or "\x07" in log.replace("\x1b[", ""):
                problems.append("a control byte from the tracker reached actorrent's output")
            expect = {
                "endless_reply": r"announce to .* failed: .*",
                "garbage": r"announce to .* failed: .*",
                "failure_reason": r"announce to .* failed: .*\\x1b\[2J\\x1b\[31mpwned\\x07 by tracker",
                "redirect_loop": r"announce to .* failed: .*",
                "flood_of_peers": None,
                "hang": None,
                "events": None,
            }[mode]
            if expect:
                hit = re.search(expect, log)
                if not hit:
                    problems.append("no log line matching %r" % expect)
                else:
                    H.log("logged: %s" % log[log.rfind("\n", 0, hit.start()) + 1:log.find("\n", hit.end())].strip())
            if mode == "flood_of_peers":
                H.log("known peers seen in the metrics: max %s" % (max(known) if known else "?"))
                if not known:
                    problems.append("no peers_known metric was read")
                elif max(known) > 2000:
                    problems.append("actorrent remembered %d peers from one tracker reply (bound 2000)" % max(known))
                elif max(known) < 1000:
                    problems.append("the tracker's peer list was not used (%d known)" % max(known))
            H.log("peak RSS %d MiB (limit %d MiB)" % (rss[0], RSS_LIMIT_MIB))
            if rss[0] > RSS_LIMIT_MIB:
                problems.append("peak RSS %d MiB over the %d MiB bound" % (rss[0], RSS_LIMIT_MIB))
            if problems:
                sys.stderr.write("--- actorrent stderr (tail) ---\n%s\n" % H.tail(log, 30))
                raise CaseFailed("; ".join(problems))
    finally:
        tracker.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", required=True)
    ap.add_argument("--case", required=True, choices=CASES)
    a = ap.parse_args()
    try:
        run_case(os.path.abspath(a.actorrent), a.case)
    except (CaseFailed, H.HarnessError) as e:
        print("FAIL: %s: %s" % (a.case, e), file=sys.stderr)
        return 1
    print("PASS: %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
