#!/usr/bin/python3
"""actorrent against scripted hostile peers (127.0.0.1 only).

Every case runs one `actorrent download` of an 8 MiB torrent from an honest scripted seeder that
serves 1 MiB/s (so the download lasts ~8 s), while a scripted attacker -- a thread of this
process speaking raw BitTorrent -- misbehaves in one specific way, either as a peer actorrent
dials (--peer) or as a peer that dials actorrent's listen port.  A case passes when:

  * actorrent closed the attacker's connection, within a bound, and logged the expected reason;
  * no piece failed its hash check (no attacker byte was written);
  * a banned attacker (protocol violation) was not dialled again;
  * the download still completed byte-exact from the honest seeder, with exit status 0
    (no effect on other peers);
  * actorrent's resident memory stayed bounded throughout (sampled every 100 ms).

  hostile_peers_test.py --actorrent PATH --case NAME      one case (ctest: interop.hostile.NAME)
  hostile_peers_test.py --list                            the case names
"""
import argparse
import os
import random
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
SIZE = 8 * H.MiB
HONEST_RATE_KIB = 1024
PEER_TIMEOUT_S = 3
HANDSHAKE_TIMEOUT_S = 2
DOWNLOAD_LIMIT_S = 60
# Resident memory bound for the whole run. ASan keeps freed memory in quarantine and maps
# shadow memory, so a sanitizer build gets a looser bound.
RSS_LIMIT_MIB = 1024 if os.environ.get("ASAN_OPTIONS") else 96

PSTR = b"BitTorrent protocol"
CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED, HAVE, BITFIELD, REQUEST, PIECE, CANCEL = range(9)
HAVE_ALL, HAVE_NONE, REJECT = 14, 15, 16


class CaseFailed(Exception):
    pass


def frame(mid, body=b""):
    return struct.pack(">IB", 1 + len(body), mid) + body


def handshake_bytes(info_hash, fast=True):
    reserved = bytearray(8)
    if fast:
        reserved[7] |= 0x04
    return bytes([len(PSTR)]) + PSTR + bytes(reserved) + info_hash + b"-HP0001-" + os.urandom(6).hex().encode()


class Wire:
    """A blocking BitTorrent connection with the few helpers the attacks need."""

    def __init__(self, sock, torrent):
        self.sock, self.t = sock, torrent
        self.buf = b""
        self.theirs = set()      # pieces actorrent announced
        self.unchoked = False

    def send(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n, timeout=10):
        self.sock.settimeout(timeout)
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by actorrent")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_handshake(self):
        hs = self.recv_exact(68)
        if hs[1:20] != PSTR:
            raise CaseFailed("actorrent sent a bad handshake: %r" % hs[:20])
        return hs[28:48]

    def read_message(self, timeout=10):
        (n,) = struct.unpack(">I", self.recv_exact(4, timeout))
        if n == 0:
            return None, b""
        body = self.recv_exact(n, timeout)
        mid, payload = body[0], body[1:]
        if mid == HAVE:
            self.theirs.add(struct.unpack(">I", payload)[0])
        elif mid == BITFIELD:
            for i in range(self.t.num_pieces):
                if payload[i // 8] & (0x80 >> (i % 8)):
                    self.theirs.add(i)
        elif mid == HAVE_ALL:
            self.theirs = set(range(self.t.num_pieces))
        elif mid == UNCHOKE:
            self.unchoked = True
        elif mid == CHOKE:
            self.unchoked = False
        return mid, payload

    def wait_until(self, pred, timeout):
        end = time.monotonic() + timeout
        while not pred():
            left = end - time.monotonic()
            if left <= 0:
                return False
            try:
                self.read_message(left)
            except socket.timeout:
                return False
        return True

    def wait_closed(self, timeout):
        """Reads (and discards) until actorrent closes; True if it did within `timeout`."""
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                self.sock.settimeout(max(0.01, end - time.monotonic()))
                try:
                    if not self.sock.recv(65536):
                        return True
                except socket.timeout:
                    return False
        except (ConnectionError, OSError):
            return True
        return False


# --------------------------------------------------------------------------- the attacks
# Each takes (wire, torrent) after the TCP connection exists and returns once its damage is
# done; the harness then waits for actorrent to close the connection.

def plain_handshake(w, t, fast=True):
    """Our handshake, then actorrent's (whichever side spoke first, both are sent)."""
    w.send(handshake_bytes(t.info_hash, fast))
    got = w.read_handshake()
    if got != t.info_hash:
        raise CaseFailed("actorrent answered with info-hash %s" % got.hex())


def attack_oversize(w, t):
    plain_handshake(w, t)
    w.send(struct.pack(">IB", 16 * H.MiB, PIECE) + b"\0" * 1000)   # 16 MiB message announced


def attack_bad_have_index(w, t):
    plain_handshake(w, t)
    w.send(frame(HAVE, struct.pack(">I", t.num_pieces + 5)))


def attack_bad_piece_offset(w, t):
    plain_handshake(w, t)
    w.send(frame(UNCHOKE) + frame(PIECE, struct.pack(">II", 0, 100) + b"x" * 16384))


def attack_bad_request_length(w, t):
    plain_handshake(w, t)
    # a 16 KiB block that runs past the end of piece 0
    w.send(frame(INTERESTED) + frame(REQUEST, struct.pack(">III", 0, PIECE_LENGTH - 100, 16384)))


def attack_bad_bitfield(w, t):
    plain_handshake(w, t)
    w.send(frame(BITFIELD, b"\xff" * ((t.num_pieces + 7) // 8 + 3)))


def attack_have_flood(w, t):
    plain_handshake(w, t)
    burst = b"".join(frame(HAVE, struct.pack(">I", i % t.num_pieces)) for i in range(20000))
    try:
        for _ in range(50):   # up to a million HAVEs
            w.send(burst)
    except (ConnectionError, OSError):
        pass                  # closed mid-flood: what we want


def attack_have_all_without_fast(w, t):
    plain_handshake(w, t, fast=False)   # no fast extension offered...
    w.send(frame(HAVE_ALL))             # ...but one of its messages sent anyway


def attack_bitfield_flood(w, t):
    plain_handshake(w, t)
    full = frame(BITFIELD, b"\xff" * (t.num_pieces // 8))      # 128 pieces: 16 bytes, no spare bits
    try:
        w.send(full * 1000)   # each one makes the torrent re-count this peer's availability
    except (ConnectionError, OSError):
        pass


def attack_request_missing(w, t):
    plain_handshake(w, t)
    w.send(frame(INTERESTED))
    w.wait_until(lambda: False, 0.5)     # let its bitfield / HAVEs arrive
    sent = 0
    for p in range(t.num_pieces - 1, -1, -1):
        if p in w.theirs:
            continue
        for begin in range(0, t.piece_size(p), 16384):
            w.send(frame(REQUEST, struct.pack(">III", p, begin, min(16384, t.piece_size(p) - begin))))
            sent += 1
        if sent >= 400:
            break


def attack_request_burst(w, t):
    # never INTERESTED, so never unchoked: every request is refused. (Requests beyond a full
    # queue of an unchoked peer are answered with REJECTs and are not abuse.)
    plain_handshake(w, t)
    if not w.wait_until(lambda: w.theirs, 15):
        raise CaseFailed("actorrent announced no piece within 15 s")
    p = min(w.theirs)
    reqs = [frame(REQUEST, struct.pack(">III", p, b, 16384)) for b in range(0, t.piece_size(p), 16384)]
    burst = b"".join(reqs[i % len(reqs)] for i in range(10000))   # 10,000 REQUESTs in one write
    try:
        w.send(burst)
    except (ConnectionError, OSError):
        pass


def attack_unrequested_blocks(w, t):
    plain_handshake(w, t)
    # well-formed blocks of real pieces, full of garbage, that nobody asked for
    junk = b"\xa5" * 16384
    try:
        for i in range(3000):
            p = i % t.num_pieces
            w.send(frame(PIECE, struct.pack(">II", p, (i // t.num_pieces % (PIECE_LENGTH // 16384)) * 16384) + junk))
    except (ConnectionError, OSError):
        pass


def attack_wrong_infohash(w, t):
    # actorrent dialled us: it speaks first; we answer for a torrent it does not have.
    w.read_handshake()
    w.send(handshake_bytes(os.urandom(20)))


def attack_unknown_infohash(w, t):
    # we dialled actorrent with a handshake for a torrent it does not have
    w.send(handshake_bytes(os.urandom(20)))


def attack_silent(w, t):
    pass   # connect (or accept) and never send a byte


def attack_idle_after_handshake(w, t):
    plain_handshake(w, t)   # then nothing, not even keep-alives


def attack_slowloris(w, t):
    plain_handshake(w, t)
    msg = frame(PIECE, struct.pack(">II", 0, 0) + b"s" * 16384)
    # one byte every 250 ms: the connection stays busy but no message ever completes
    for i in range(len(msg)):
        try:
            w.send(msg[i:i + 1])
        except (ConnectionError, OSError):
            return
        time.sleep(0.25)
        if i > 4 * (PEER_TIMEOUT_S + 10):
            return


# name -> (attacker role, attack, reason actorrent logs, banned, seconds allowed until closed)
#   role "dialled": actorrent dials the attacker (--peer); "dialing": the attacker dials actorrent.
CASES = {
    "oversize_message":     ("dialled", attack_oversize, r"disconnected: .*exceeds limit", True, 5),
    "bad_have_index":       ("dialled", attack_bad_have_index, r"disconnected: have: piece \d+ out of range", True, 5),
    "bad_piece_offset":     ("dialled", attack_bad_piece_offset, r"disconnected: piece: block 0:100\+16384 is not a block", True, 5),
    "bad_request_length":   ("dialing", attack_bad_request_length, r"disconnected: request: block 0:%d\+16384 outside the piece" % (PIECE_LENGTH - 100), True, 5),
    "bad_bitfield_size":    ("dialled", attack_bad_bitfield, r"disconnected: bitfield: \d+ bytes", True, 5),
    "have_flood":           ("dialled", attack_have_flood, r"disconnected: HAVE flood: \d+ HAVE messages", True, 5),
    "have_all_without_fast": ("dialled", attack_have_all_without_fast, r"disconnected: have_all without the fast extension", True, 5),
    "bitfield_flood":       ("dialled", attack_bitfield_flood, r"disconnected: BITFIELD flood: \d+ full statements", True, 5),
    "requests_for_missing": ("dialing", attack_request_missing, r"disconnected: requested \d+ blocks of pieces we do not have", True, 5),
    "request_burst_10000":  ("dialing", attack_request_burst, r"disconnected: request flood: \d+ requests", True, 5),
    "unrequested_blocks":   ("dialled", attack_unrequested_blocks, r"disconnected: sent \d+ blocks we did not request", True, 10),
    "wrong_infohash":       ("dialled", attack_wrong_infohash, r"disconnected: handshake for another torrent", True, 5),
    "unknown_infohash":     ("dialing", attack_unknown_infohash, r"incoming .*: disconnected: handshake for a torrent we do not have", True, 5),
    "silent_dialled":       ("dialled", attack_silent, r"disconnected: no handshake within %d ms" % (HANDSHAKE_TIMEOUT_S * 1000), True, HANDSHAKE_TIMEOUT_S + 3),
    "silent_dialing":       ("dialing", attack_silent, r"incoming .*: disconnected: no handshake within %d ms" % (HANDSHAKE_TIMEOUT_S * 1000), True, HANDSHAKE_TIMEOUT_S + 3),
    "idle_after_handshake": ("dialled", attack_idle_after_handshake, r"disconnected: no complete message in %d s" % PEER_TIMEOUT_S, False, PEER_TIMEOUT_S + 3),
    "slowloris":            ("dialled", attack_slowloris, r"disconnected: no complete message in %d s" % PEER_TIMEOUT_S, False, PEER_TIMEOUT_S + 3),
}


class Attacker(threading.Thread):
    """Runs one attack on one connection and records what happened to it."""

    def __init__(self, torrent, role, attack, close_within, target_port=None):
        super().__init__(daemon=True)
        self.t, self.role, self.attack, self.close_within = torrent, role, attack, close_within
        self.target_port = target_port
        self.ready = lambda: True     # dialing: set to "actorrent is past its start-up check"
        self.accepts = 0
        self.closed_after = None     # seconds from the end of the attack to actorrent's close
        self.error = None
        self.done = threading.Event()
        self.server = None
        if role == "dialled":
            self.server = socket.socket()
            self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.server.bind((H.LOOPBACK, 0))
            self.server.listen(8)
            self.port = self.server.getsockname()[1]

    def run(self):
        try:
            if self.role == "dialled":
                sock, _ = self.server.accept()
                self.accepts = 1
                threading.Thread(target=self._count_redials, daemon=True).start()
            else:
                if not H.wait_for(lambda: H.listening_on_loopback(self.target_port), 20):
                    raise CaseFailed("actorrent never listened on port %d" % self.target_port)
                # Incoming peers are refused while existing data is being checked.
                if not H.wait_for(self.ready, 30):
                    raise CaseFailed("actorrent never reported download progress")
                sock = socket.create_connection((H.LOOPBACK, self.target_port), timeout=10)
            w = Wire(sock, self.t)
            try:
                self.attack(w, self.t)
            except (ConnectionError, OSError) as e:
                H.log("attack cut short: %s" % e)
            t0 = time.monotonic()
            if w.wait_closed(self.close_within):
                self.closed_after = time.monotonic() - t0
            sock.close()
        except Exception as e:   # reported by the case
            self.error = e
        finally:
            self.done.set()

    def _count_redials(self):
        while True:
            try:
                s, _ = self.server.accept()
            except OSError:
                return
            self.accepts += 1
            s.close()


def run_case(actorrent, name):
    role, attack, reason, banned, close_within = CASES[name]
    with H.Session("actorrent-hostile-%s-" % name) as sess:
        seed_root = sess.mkdir("seed")
        payload = H.make_payload(seed_root, "hostile_%s.bin" % name, size=SIZE, seed=name)
        torrent = H.make_torrent(payload, PIECE_LENGTH, sess.path("t.torrent"))
        honest = H.HostileSeeder(sess, torrent, seed_root, rate_kib=HONEST_RATE_KIB, name="honest")
        honest.start(timeout=20)
        listen_port = H.free_port()
        attacker = Attacker(torrent, role, attack, close_within, target_port=listen_port)
        peers = [honest.endpoint] + (["%s:%d" % (H.LOOPBACK, attacker.port)] if role == "dialled" else [])
        out = sess.mkdir("download")
        argv = [actorrent, "download", torrent.path, "-o", out, "--no-tracker", "-v",
                "--listen", "%s:%d" % (H.LOOPBACK, listen_port), "--timeout", str(DOWNLOAD_LIMIT_S),
                "--peer-timeout", str(PEER_TIMEOUT_S), "--handshake-timeout", str(HANDSHAKE_TIMEOUT_S)]
        for p in peers:
            argv += ["--peer", p]
        H.log("case %s: attacker %s, run: %s" % (name, role, " ".join(argv)))
        dl = sess.spawn("actorrent", argv, log_path=sess.path("stdout"), stderr_path=sess.path("stderr"))
        rss, stop = [0], threading.Event()
        threading.Thread(target=H.sample_peak_rss, args=(dl.pid, rss, stop), daemon=True).start()
        attacker.ready = lambda: re.search(r"^\s*\d+\.\d%", dl.stderr_text(), re.M) is not None
        attacker.start()
        t0 = time.monotonic()
        rc = dl.wait(DOWNLOAD_LIMIT_S + 15)
        elapsed = time.monotonic() - t0
        stop.set()
        attacker.done.wait(close_within + 15)
        if attacker.server:
            attacker.server.close()
        log = dl.stderr_text()
        problems = []
        if rc is None:
            dl.stop(grace=3)
            problems.append("actorrent did not exit within %d s" % (DOWNLOAD_LIMIT_S + 15))
        elif rc != 0:
            problems.append("actorrent exited with status %d" % rc)
        if attacker.error:
            problems.append("attacker: %s" % attacker.error)
        elif attacker.closed_after is None:
            problems.append("actorrent did not close the attacker's connection within %d s" % close_within)
        else:
            H.log("actorrent closed the attacker's connection %.2f s after the attack" % attacker.closed_after)
        hit = re.search(reason, log)
        if not hit:
            problems.append("no log line matching %r" % reason)
        else:
            line = log[log.rfind("\n", 0, hit.start()) + 1:log.find("\n", hit.end())]
            H.log("logged: %s" % line.strip())
        if banned and attacker.accepts > 1:
            problems.append("a banned attacker was dialled again (%d connections)" % attacker.accepts)
        if honest.endpoint in log and re.search(re.escape(honest.endpoint) + r": disconnected", log):
            problems.append("the honest seeder was disconnected")
        if "hash check failed" in log:
            problems.append("a piece failed its hash check: the attacker's bytes reached the disk")
        if rc == 0:
            bad = H.verify_download(payload, out)
            if bad:
                problems.append("download differs from the payload: %s" % bad[:3])
            else:
                H.log("download byte-exact in %.1f s (honest seeder serves %d KiB/s)" % (elapsed, HONEST_RATE_KIB))
        H.log("peak RSS %d MiB (limit %d MiB)" % (rss[0], RSS_LIMIT_MIB))
        if rss[0] > RSS_LIMIT_MIB:
            problems.append("peak RSS %d MiB over the %d MiB bound" % (rss[0], RSS_LIMIT_MIB))
        if problems:
            sys.stderr.write("--- actorrent stderr (tail) ---\n%s\n" % H.tail(log, 40))
            raise CaseFailed("; ".join(problems))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent")
    ap.add_argument("--case", choices=sorted(CASES))
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(CASES))
        return 0
    if not a.actorrent or not a.case:
        ap.error("--actorrent and --case are required")
    random.seed(a.case)
    try:
        run_case(os.path.abspath(a.actorrent), a.case)
    except (CaseFailed, H.HarnessError) as e:
        print("FAIL: %s: %s" % (a.case, e), file=sys.stderr)
        return 1
    print("PASS: %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
