#!/usr/bin/python3
"""actorrent and UDP trackers (BEP 15) with tiers and failover (BEP 12), 127.0.0.1 only.

  announce        the torrent's only tracker is opentracker's UDP port; a libtorrent seeder
                  registered there is found through it and the download is byte-exact
  failover        first tier: a UDP port that takes datagrams and never answers, and an HTTP
                  port that refuses connections; second tier: a UDP port nobody listens on;
                  third tier: opentracker over UDP. Each dead tracker is logged as failed with
                  its reason, the live one is reached, the download is byte-exact
  wrong_tx        a scripted UDP tracker answering with another transaction id: ignored with a
                  precise warning, then the request times out
  truncated       connects, then answers the announce with 15 bytes
  huge_peers      answers with the largest datagram possible: 10,900 peers; 200 are kept
  error_action    answers the announce with BEP 15's error action and escape sequences
  flood           answers every request with 3,000 datagrams of another transaction first:
                  one warning per request, memory bounded, the download unharmed
  signal          SIGINT while the only tracker, a silent UDP one with BEP 15's own 15 s wait, has
                  a request pending: exit 130 within 2 s, the 'stopped' farewell sent on the way
  events          an honest scripted UDP tracker recording the BEP 15 events: 'started'
                  first, 'completed' when done, 'stopped' last, on the way out

In the scripted cases an honest scripted seeder is given with --peer: the download must finish
byte-exact with exit 0 whatever the tracker does, its misbehaviour logged precisely.

  udp_tracker_test.py --actorrent PATH --case NAME
"""
import argparse
import os
import re
import socket
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

PIECE_LENGTH = 64 * 1024
SIZE = 6 * H.MiB
PROTOCOL_ID = 0x41727101980
CASES = ["announce", "failover", "wrong_tx", "truncated", "huge_peers", "error_action", "flood",
         "events", "signal"]
RSS_LIMIT_MIB = 1024 if os.environ.get("ASAN_OPTIONS") else 96
EVENT_NAMES = {0: "", 1: "completed", 2: "started", 3: "stopped"}
# The retransmit base for these runs (BEP 15's 15 s would make a silent tracker cost 45 s).
UDP_TIMEOUT_S = "0.3"


class CaseFailed(Exception):
    pass


def with_tiers(torrent, tiers, path):
    """A copy of `torrent` announcing to `tiers` (BEP 12 announce-list); same info-hash."""
    with open(torrent.path, "rb") as f:
        meta = H.bdecode(f.read())
    meta[b"announce"] = tiers[0][0].encode()
    meta[b"announce-list"] = [[u.encode() for u in tier] for tier in tiers]
    with open(path, "wb") as f:
        f.write(H.bencode(meta))
    t = H.load_torrent(path)
    assert t.info_hash == torrent.info_hash
    return t


class SilentUdp:
    """A UDP port that takes datagrams and never answers: counts what arrives."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((H.LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.datagrams = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                data, _ = self.sock.recvfrom(65536)
            except OSError:
                return
            self.datagrams.append(data)

    def close(self):
        self.sock.close()


class HostileUdpTracker(SilentUdp):
    """A scripted UDP tracker: honest connects (unless wrong_tx), hostile announce replies."""

    def __init__(self, mode):
        self.mode = mode
        self.announces = 0
        self.events = []
        super().__init__()

    def _run(self):
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
            except OSError:
                return
            self.datagrams.append(data)
            if len(data) < 16:
                continue
            conn, action, tx = struct.unpack(">QII", data[:16])
            if self.mode == "flood":
                junk = struct.pack(">II", 1, (tx + 1) & 0xffffffff) + bytes(1392)
                for _ in range(3000):
                    self.sock.sendto(junk, addr)
            if action == 0 and conn == PROTOCOL_ID:
                reply_tx = tx + 1 if self.mode == "wrong_tx" else tx
                self.sock.sendto(struct.pack(">IIQ", 0, reply_tx & 0xffffffff, 0x1234), addr)
            elif action == 1:
                self.announces += 1
                if len(data) >= 84:
                    self.events.append(EVENT_NAMES.get(struct.unpack(">I", data[80:84])[0], "?"))
                if self.mode == "truncated":
                    reply = struct.pack(">IIIII", 1, tx, 1800, 0, 0)[:15]
                elif self.mode == "huge_peers":
                    n = (65507 - 20) // 6
                    # 127.0.0.2-12, privileged ports: nothing of the test suite listens there
                    peers = b"".join(socket.inet_aton("127.0.0.%d" % (2 + i // 1023)) +
                                     struct.pack(">H", 1 + i % 1023) for i in range(n))
                    reply = struct.pack(">IIIII", 1, tx, 1800, n, 0) + peers
                elif self.mode == "error_action":
                    reply = struct.pack(">II", 3, tx) + b"\x1b[2J\x1b[31mpwned\x07 by udp tracker"
                else:
                    reply = struct.pack(">IIIII", 1, tx, 1800, 0, 0)
                self.sock.sendto(reply, addr)



def closed_udp_port():
    """A UDP port on 127.0.0.1 with no socket bound: datagrams meet ICMP port unreachable."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((H.LOOPBACK, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def refused_tcp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((H.LOOPBACK, 0))
    port = s.getsockname()[1]
    s.close()   # bound once, never listening: connections are refused
    return port


def run_download(sess, actorrent, torrent, extra, timeout=60):
    out = sess.mkdir("download")
    argv = [actorrent, "download", "--listen", "127.0.0.1:0", torrent.path, "-o", out, "-v",
            "--timeout", str(timeout), "--udp-tracker-timeout", UDP_TIMEOUT_S] + extra
    H.log("run: %s" % " ".join(argv))
    t0 = time.monotonic()
    dl = sess.spawn("actorrent", argv, log_path=sess.path("stdout"), stderr_path=sess.path("stderr"))
    rss, stop = [0], threading.Event()
    threading.Thread(target=H.sample_peak_rss, args=(dl.pid, rss, stop), daemon=True).start()
    rc = dl.wait(timeout + 15)
    stop.set()
    if rc is None:
        dl.stop(grace=3)
    H.log("peak RSS %d MiB" % rss[0])
    run_download.peak_rss_mib = rss[0]
    return rc, out, dl.stderr_text() + dl.output(), time.monotonic() - t0


def expect_lines(log, patterns, problems):
    for p in patterns:
        hit = re.search(p, log)
        if not hit:
            problems.append("no log line matching %r" % p)
        else:
            H.log("logged: %s" % log[log.rfind("\n", 0, hit.start()) + 1:log.find("\n", hit.end())].strip())


def finish(rc, out, payload, log, problems):
    if rc is None:
        problems.append("actorrent did not exit in time")
    elif rc != 0:
        problems.append("actorrent exited with status %d" % rc)
    else:
        bad = H.verify_download(payload, out)
        if bad:
            problems.append("download differs: %s" % bad[:3])
    if "\x1b" in log or "\x07" in log.replace("\x1b[", ""):
        problems.append("a control byte from the tracker reached actorrent's output")
    if "Segmentation" in log or "Assertion" in log or "AddressSanitizer" in log:
        problems.append("actorrent crashed")
    if problems:
        sys.stderr.write("--- actorrent output (tail) ---\n%s\n" % H.tail(log, 40))
        raise CaseFailed("; ".join(problems))


def run_real(actorrent, mode):
    """announce / failover: opentracker's UDP port and a libtorrent seeder registered there."""
    H.require(["opentracker", "libtorrent"])
    silent = SilentUdp()
    try:
        with H.Session("actorrent-udp-%s-" % mode) as sess:
            seed_root = sess.mkdir("seed")
            payload = H.make_payload(seed_root, "udp_%s.bin" % mode, size=SIZE, seed=mode)
            tracker = H.OpenTracker(sess)
            live_udp = "udp://%s:%d/announce" % (H.LOOPBACK, tracker.port)
            base = H.make_torrent(payload, PIECE_LENGTH, sess.path("base.torrent"))
            tracker.start([base.info_hash])
            # The seeder registers over HTTP with the same tracker: peers found over UDP can
            # only have come from the UDP announce.
            seeder_torrent = with_tiers(base, [[tracker.announce_url]], sess.path("seeder.torrent"))
            H.LibtorrentSeeder(sess, seeder_torrent, seed_root, tracker=tracker).start(timeout=60)
            dead_http = "http://%s:%d/announce" % (H.LOOPBACK, refused_tcp_port())
            dead_udp = "udp://%s:%d" % (H.LOOPBACK, closed_udp_port())
            silent_udp = "udp://%s:%d/announce" % (H.LOOPBACK, silent.port)
            if mode == "announce":
                tiers = [[live_udp]]
            else:
                tiers = [[silent_udp, dead_http], [dead_udp], [live_udp]]
            torrent = with_tiers(base, tiers, sess.path("t.torrent"))
            H.log("case %s: tiers %s" % (mode, tiers))
            rc, out, log, took = run_download(sess, actorrent, torrent, [])
            problems = []
            H.log("exit %s after %.1f s" % (rc, took))
            if mode == "failover":
                expect_lines(log, [
                    re.escape("announce to %s failed: udp tracker: no answer to the connect "
                              "request after 2 tries (900 ms)" % silent_udp),
                    re.escape("announce to %s failed: " % dead_http) + ".*[Cc]onnect",
                    re.escape("announce to %s failed: udp tracker: Connection refused" % dead_udp),
                ], problems)
                connects = [d for d in silent.datagrams
                            if len(d) == 16 and struct.unpack(">QII", d)[:2] == (PROTOCOL_ID, 0)]
                H.log("the silent tracker got %d connect request(s)" % len(connects))
                if len(connects) < 2:
                    problems.append("the silent UDP tracker got %d connect requests, want 2 "
                                    "(a retransmission)" % len(connects))
            if re.search(re.escape("announce to %s failed" % live_udp), log):
                problems.append("the live UDP tracker failed")
            finish(rc, out, payload, log, problems)
    finally:
        silent.close()


def run_hostile(actorrent, mode):
    tracker = HostileUdpTracker(mode)
    try:
        with H.Session("actorrent-udp-%s-" % mode) as sess:
            seed_root = sess.mkdir("seed")
            payload = H.make_payload(seed_root, "udp_%s.bin" % mode, size=SIZE, seed=mode)
            url = "udp://%s:%d/announce" % (H.LOOPBACK, tracker.port)
            torrent = H.make_torrent(payload, PIECE_LENGTH, sess.path("t.torrent"), announce=url)
            honest = H.HostileSeeder(sess, torrent, seed_root, rate_kib=1024, name="honest")
            honest.start(timeout=20)
            rc, out, log, took = run_download(sess, actorrent, torrent, ["--peer", honest.endpoint])
            H.log("exit %s after %.1f s; the tracker got %d datagram(s)" % (rc, took, len(tracker.datagrams)))
            problems = []
            u = re.escape("announce to %s failed: " % url)
            expect = {
                "wrong_tx": [r"%s: ignored: udp tracker: transaction id 0x[0-9a-f]{8} does not "
                             r"match 0x[0-9a-f]{8} sent \(16-byte connect reply\)" % re.escape(url),
                             u + r"udp tracker: no answer to the connect request after 2 tries"],
                "truncated": [u + re.escape("udp tracker: announce reply of 15 bytes is shorter "
                                            "than its 20-byte fixed part")],
                "huge_peers": [re.escape("%s: kept 200 peers of 10914 listed" % url)],
                "error_action": [u + re.escape(r"udp tracker: error reply: \x1b[2J\x1b[31mpwned"
                                               r"\x07 by udp tracker")],
                "flood": [r"%s: ignored: udp tracker: transaction id" % re.escape(url)],
                "events": [],
            }[mode]
            expect_lines(log, expect, problems)
            # (a flood may crowd out the real connect reply: datagrams beyond 16 unread are dropped)
            if mode not in ("wrong_tx", "flood") and tracker.announces == 0:
                problems.append("actorrent never sent an announce")
            if mode == "flood":
                warned = len(re.findall(r": ignored: ", log))
                H.log("%d 'ignored' warnings for %d datagrams" % (warned, 3000 * len(tracker.datagrams)))
                if warned > 2 * len(tracker.datagrams):
                    problems.append("%d warnings for %d requests: the flood reached the log"
                                    % (warned, len(tracker.datagrams)))
                if run_download.peak_rss_mib > RSS_LIMIT_MIB:
                    problems.append("peak RSS %d MiB over %d MiB" % (run_download.peak_rss_mib, RSS_LIMIT_MIB))
            if mode == "events":
                H.log("events: %s" % tracker.events)
                if tracker.events[:1] != ["started"]:
                    problems.append("the first announce was %r, not 'started'" % tracker.events[:1])
                if "completed" not in tracker.events:
                    problems.append("no 'completed' announce")
                if tracker.events[-1:] != ["stopped"]:
                    problems.append("the last announce was %r, not 'stopped'" % tracker.events[-1:])
            finish(rc, out, payload, log, problems)
    finally:
        tracker.close()


def run_signal(actorrent):
    import signal
    silent = SilentUdp()
    try:
        with H.Session("actorrent-udp-signal-") as sess:
            seed_root = sess.mkdir("seed")
            payload = H.make_payload(seed_root, "udp_signal.bin", size=H.MiB, seed="signal")
            url = "udp://%s:%d/announce" % (H.LOOPBACK, silent.port)
            torrent = H.make_torrent(payload, PIECE_LENGTH, sess.path("t.torrent"), announce=url)
            argv = [actorrent, "download", "--listen", "127.0.0.1:0", torrent.path, "-o",
                    sess.mkdir("download"), "-v"]   # the default 15 s UDP wait
            dl = sess.spawn("actorrent", argv, log_path=sess.path("stdout"), stderr_path=sess.path("stderr"))
            if not H.wait_for(lambda: len(silent.datagrams) >= 1, 10):
                raise CaseFailed("no connect request reached the silent UDP tracker")
            time.sleep(0.5)
            t0 = time.monotonic()
            os.kill(dl.pid, signal.SIGINT)
            rc = dl.wait(10)
            took = time.monotonic() - t0
            H.log("exit %s %.2f s after SIGINT; the tracker got %d datagram(s)" % (rc, took, len(silent.datagrams)))
            problems = []
            if rc is None:
                dl.stop(grace=3)
                problems.append("still running 10 s after SIGINT")
            elif rc != 130:
                problems.append("exit status %d, not 130" % rc)
            if took > 2.0:
                problems.append("exit took %.2f s after SIGINT (a silent UDP tracker held it up)" % took)
            # the routine connect, then the farewell's own connect (the tracker never gave an id)
            if len(silent.datagrams) < 2:
                problems.append("no 'stopped' farewell was attempted")
            if problems:
                sys.stderr.write("--- actorrent output (tail) ---\n%s\n" % H.tail(dl.stderr_text(), 30))
                raise CaseFailed("; ".join(problems))
    finally:
        silent.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", required=True)
    ap.add_argument("--case", required=True, choices=CASES)
    a = ap.parse_args()
    try:
        if a.case in ("announce", "failover"):
            run_real(os.path.abspath(a.actorrent), a.case)
        elif a.case == "signal":
            run_signal(os.path.abspath(a.actorrent))
        else:
            run_hostile(os.path.abspath(a.actorrent), a.case)
    except (CaseFailed, H.HarnessError) as e:
        print("FAIL: %s: %s" % (a.case, e), file=sys.stderr)
        return 1
    print("PASS: %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
