#!/usr/bin/python3
"""actorrent interop test driver, part 2: actorrent as a SEEDER, in a swarm, and resuming.
One case per run, real clients and a real tracker on 127.0.0.1 (see harness.py).

  seeding_test.py --actorrent PATH --case NAME      run one case, exit 0 (pass) / 1 (fail)
  seeding_test.py --list                            print the case names
  seeding_test.py --selftest                        the leecher helpers (aria2c, transmission-cli,
                                                    libtorrent) against a libtorrent seeder; no
                                                    actorrent: if this fails, seed.* failures are
                                                    not actorrent's fault

Cases:
  seed.<client>.<mode>   `actorrent seed` serves a multi-file payload (nested folders, 0- and
                         1-byte files, files spanning pieces, short last piece, one 4 MiB file so
                         the rate means something) to a real leecher, which must end byte-exact.
        client  libtorrent | aria2 | transmission  (harness.py's *Downloader classes)
        mode    tracker: both announce to opentracker (whitelisted); nobody gets a peer address
                         any other way.  transmission-cli announces first, as actorrent learns
                         of peers only from its own announces; aria2 re-announces every 2 s.
                direct:  no tracker (the torrent names a canary tracker that actorrent must not
                         contact; actorrent runs with --no-tracker).  libtorrent dials actorrent;
                         aria2c/transmission-cli cannot dial, so actorrent gets --peer LEECHER.
        The rate is measured from the leecher's first byte on disk to its completion.  1.5 s
        after the leecher is done actorrent is stopped with SIGINT: it must exit 0 within 5 s
        and report "uploaded: N bytes" with N >= the payload size (it was the only source).
        transmission-cli never creates 0-byte files (a known client quirk): for it those are
        reported, every other file is checked.
  seed.libtorrent.single the same with a single-file payload (4 MiB + 1234 B), direct mode.
  seed.<client>.volume   the same at volume, direct mode, one file, 256 KiB pieces:
        rtorrent      1 GiB; it dials actorrent (add_peer).  It has no fast extension and
                      ignores reqq: a request the seeder drops silently is waited for forever
                      (it stalled near 95 %); it must finish byte-exact.
        transmission  256 MiB; actorrent dials it.  It sizes its pipeline from the rate
                      (thousands of requests) capped only by the seeder's BEP 10 reqq; it was
                      banned for a "request flood"; it must finish byte-exact.
        libtorrent    256 MiB; it dials actorrent.
        aria2         256 MiB; actorrent dials it.
  scripted.extended_handshake
                         a scripted peer dials `actorrent seed`: its handshake sets the BEP 10
                         bit and its extended handshake carries m (a dictionary), v
                         (actorrent/...), reqq 2000, p (its listen port) and yourip (127.0.0.1);
                         with the BEP 5 bit set both ways, actorrent sends PORT (its DHT's
                         UDP port) after its pieces, and a PORT from the peer has actorrent's
                         DHT ping that UDP port; a peer without the bits gets neither PORT nor
                         extended messages; a malformed extended
                         handshake (reqq a string) disconnects with a warning naming it.
  scripted.queue_overflow_fast
                         a scripted BEP 6 peer pipelines 4,000 requests at once: at least 2,000
                         are served, the rest get REJECT (not a "request flood"); asked again,
                         those are served too: every block byte-exact, still connected.
  scripted.queue_overflow_plain
                         the same without BEP 6: the requests beyond the queue are dropped, but
                         once the queue is served actorrent sends CHOKE (no PIECE after it) and
                         UNCHOKE shortly after; asked again, every block arrives byte-exact.
  scripted.peer_reqq_honoured
                         `actorrent download` from a scripted seeder whose extended handshake
                         says reqq 37 and that serves slowly: never more than 37 requests
                         outstanding (the default pipeline is 256).
  In every seed.* case actorrent must log no warning from its peers or its listener (a real
  client is not misbehaving; encrypted handshake attempts, which libtorrent, aria2 and rtorrent
  make before retrying in plaintext, are routine).
  swarm.trade            libtorrent seeder limited to 1 MiB/s + two actorrent leechers through
                         opentracker, 12 MiB.  Both byte-exact; each leecher's "complete:" line
                         reports uploaded bytes > 0, and the seeder uploaded less than 2x the
                         payload (without trading it would have to send it twice).
  resume.kill9           16 MiB from a libtorrent seeder limited to 512 KiB/s (~32 s), SIGKILLed
                         5 times, each uniformly 0.3..7.5 s after the run's first new data reached
                         the disk (resampled until >= 2 runs outlast a resume save and 30 % is
                         left for the last run), restarted with the same command (-v).  See
                         run_kill9 for the asserted rules.
  resume.sigint          SIGINT at ~30 %, then SIGTERM at ~60 %: each time exit 130 within 2 s
                         and a resume file under OUTDIR/.actorrent/; each restart logs
                         "existing data: N of M pieces verified (0 hashed)" with N equal to the
                         number of pieces that are really valid on disk; ends byte-exact.
  resume.corrupt         clean stop, resume file truncated to half; restart: a warning naming the
                         file, a full check (M hashed) finding exactly the valid pieces; clean
                         stop again, one byte of the resume file flipped (checksum mismatch):
                         same again; ends byte-exact.
  resume.changed_file    clean stop, then bytes of one file (inside a piece that is verified)
                         changed on disk: the restart hashes exactly the pieces of that file,
                         does not count the damaged piece, and ends byte-exact.

Each case runs in a fresh temp directory under /dev/shm with its own tracker/peers on free ports;
everything is killed and removed at the end, also on failure or timeout.
"""
import argparse
import contextlib
import glob
import hashlib
import os
import random
import re
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

CLIENTS = ["libtorrent", "aria2", "transmission"]
MODES = ["tracker", "direct"]
CASE_BUDGET = 112             # whole case incl. cleanup; ctest's TIMEOUT is 120
LEECH_TIMEOUT = 70            # a real client's download (transmission alone idles ~10 s)
VOLUME = {"rtorrent": 1024 * 1024 * 1024, "transmission": 256 * 1024 * 1024,  # seed.<client>.volume
          "libtorrent": 256 * 1024 * 1024, "aria2": 256 * 1024 * 1024}
VOLUME_BUDGET = 290           # ctest's TIMEOUT for the volume cases is 300
VOLUME_LEECH_TIMEOUT = 220    # transmission is capped near 32 MB/s here; 2 cores are shared
VOLUME_STALL_LIMIT = 30       # the leecher verifies pieces while it writes; be patient
STOP_GRACE = 5                # actorrent seed must exit this soon after SIGINT
STALL_LIMIT = 15              # seconds without new leecher data (after the first) = stalled
SETTLE = 1.5                  # pause between the leecher's exit and SIGINT to the seeder
SIGNAL_EXIT_LIMIT = 2.0       # actorrent download must exit this soon after SIGINT/SIGTERM
DOWNLOAD_TIMEOUT = 90         # --timeout of actorrent download runs

EXISTING_RE = re.compile(r"existing data: (\d+) of (\d+) pieces verified \((\d+) hashed\)")
COMPLETE_RE = re.compile(r"^complete: (.+) (\d+) bytes in ([\d.]+) s \(([^)]*)\), (\d+) pieces verified, "
                         r"(\d+) failed the hash check, (\d+) bytes uploaded"
                         r"(?:, \d+ bytes downloaded)?$", re.M)
SEEDING_RE = re.compile(r"^seeding: (.+) on ([\d.]+):(\d+) \((\d+) pieces verified\)$", re.M)
UPLOADED_RE = re.compile(r"^uploaded: (\d+) bytes$", re.M)
LT_UPLOADED_RE = re.compile(r"peers (\d+)  uploaded (\d+) bytes")


def all_cases():
    return (["seed.%s.%s" % (c, m) for c in CLIENTS for m in MODES] + ["seed.libtorrent.single", "swarm.trade"]
            + ["resume.kill9", "resume.sigint", "resume.corrupt", "resume.changed_file"]
            + ["seed.%s.volume" % c for c in VOLUME]
            + ["scripted.extended_handshake", "scripted.queue_overflow_fast", "scripted.queue_overflow_plain",
               "scripted.peer_reqq_honoured"])


def case_budget(name):
    return VOLUME_BUDGET if name.endswith(".volume") else CASE_BUDGET


class CaseFailed(Exception):
    pass


class Budget(Exception):
    pass


def _on_alarm(*_):
    raise Budget("case exceeded its budget (%ds, or %ds for a volume case)" % (CASE_BUDGET, VOLUME_BUDGET))


def _on_term(signum, _):
    raise SystemExit("killed by signal %d" % signum)


def log_lines(text):
    """actorrent's stderr without its periodic progress lines (timestamped log lines and
    'error:' lines only)."""
    return "\n".join(ln for ln in text.splitlines() if re.match(r"\d\d:\d\d:\d\d\.\d+ |error", ln))


def check(cond, msg):
    if not cond:
        raise CaseFailed(msg)


def human_rate(nbytes, seconds):
    return "%.2f MiB/s" % (nbytes / H.MiB / max(seconds, 1e-3))


def peak_rate(client, leech):
    """The highest download rate the client itself displayed (best effort, for the report)."""
    text = leech.proc.output() if leech.proc else ""
    units = {"B": 1, "KiB": H.KiB, "MiB": H.MiB, "GiB": 1024 * H.MiB, "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}
    if client == "transmission":
        found = re.findall(r"dl from \d+ of \d+ peers \(([\d.]+) (kB|MB|GB)/s\)", text)
    elif client == "aria2":
        found = re.findall(r"DL:([\d.]+)(B|KiB|MiB|GiB)\b", text)
    else:
        return ""
    rates = [float(v) * units[u] for v, u in found]
    return "; peak rate shown by %s: %.2f MiB/s" % (client, max(rates) / H.MiB) if rates else ""


# ------------------------------------------------------------------------------------ on-disk state
def file_spans(torrent, save_path):
    """[(path, offset in the torrent, size)] in torrent order."""
    out, off = [], 0
    for path, size in torrent.file_paths(save_path):
        out.append((path, off, size))
        off += size
    return out


def pieces_of_file(torrent, index):
    """Indices of the pieces overlapping file #index (none for a 0-byte file)."""
    spans = file_spans(torrent, "")
    _, off, size = spans[index]
    if size == 0:
        return set()
    P = torrent.piece_length
    return set(range(off // P, (off + size - 1) // P + 1))


def read_range(spans, start, length):
    """Bytes [start, start+length) of the torrent's data on disk (missing/short files read as
    nothing, so a piece touching them cannot match its hash)."""
    out = bytearray()
    for path, off, size in spans:
        if off + size <= start or off >= start + length or size == 0:
            continue
        a, b = max(start, off), min(start + length, off + size)
        try:
            with open(path, "rb") as f:
                f.seek(a - off)
                out += f.read(b - a)
        except OSError:
            pass
    return bytes(out)


def valid_pieces(torrent, save_path):
    """Set of the pieces whose data on disk matches their SHA-1 (what a full check must find)."""
    spans = file_spans(torrent, save_path)
    ok = set()
    for i in range(torrent.num_pieces):
        data = read_range(spans, i * torrent.piece_length, torrent.piece_size(i))
        if len(data) == torrent.piece_size(i) and hashlib.sha1(data).digest() == torrent.piece_hashes[i]:
            ok.add(i)
    return ok


def bytes_on_disk(torrent, save_path):
    """Data blocks allocated for the content (tmpfs: pages actually written), capped per file:
    a progress measure that needs nothing from the client (actorrent does not preallocate)."""
    total = 0
    for path, size in torrent.file_paths(save_path):
        try:
            total += min(os.stat(path).st_blocks * 512, size)
        except OSError:
            pass
    return total


def resume_files(outdir):
    return sorted(glob.glob(os.path.join(outdir, ".actorrent", "*.resume")))


# ------------------------------------------------------------------------------------ payloads
def seed_spec(P):
    """The harness's multi-file spec (nested folders, 0/1-byte files, a one-piece file, files
    spanning pieces, UTF-8 names) plus a 4 MiB file before the short last one."""
    spec = H.multi_file_spec(P)
    spec.insert(len(spec) - 1, ("data/nested/rate.bin", 4 * H.MiB + 3))
    assert sum(s for _, s in spec) % P != 0
    return spec


def resume_spec(total_mib):
    """Several files of different sizes (so a changed file is a strict subset of the pieces), a
    0-byte file in the middle, nothing piece-aligned."""
    M = H.MiB
    base = [("a/one.bin", 3 * M + 5), ("a/b/two.bin", 2 * M + 100), ("a/empty", 0), ("three.bin", M + 33),
            ("four.bin", 2 * M - 17)]
    if total_mib > 8:
        base.append(("z/five.bin", (total_mib - 8) * M + 4321))
    return base


# ------------------------------------------------------------------------------------ scripted peer
CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED, HAVE, BITFIELD, REQUEST, PIECE, CANCEL = range(9)
PORT = 9
HAVE_ALL, HAVE_NONE, REJECT, EXTENDED = 14, 15, 16, 20
BLOCK = 16 * H.KiB


def frame(mid, body=b""):
    return struct.pack(">IB", 1 + len(body), mid) + body


class WirePeer:
    """A blocking BitTorrent connection for scripted cases: handshake, framed messages."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    @classmethod
    def dial(cls, port, timeout=10):
        return cls(socket.create_connection((H.LOOPBACK, port), timeout=timeout))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed by actorrent")
            self.buf += chunk

    def handshake(self, info_hash, fast, extended, dht=False):
        """Sends ours, returns the 8 reserved bytes of actorrent's."""
        reserved = bytearray(8)
        if dht:
            reserved[7] |= 0x01
        if fast:
            reserved[7] |= 0x04
        if extended:
            reserved[5] |= 0x10
        self.send(b"\x13BitTorrent protocol" + bytes(reserved) + info_hash + b"-WP0001-" + os.urandom(6).hex().encode())
        self._fill(68, time.monotonic() + 10)
        hs, self.buf = self.buf[:68], self.buf[68:]
        check(hs[:20] == b"\x13BitTorrent protocol" and hs[28:48] == info_hash, "bad handshake from actorrent: %r" % hs)
        return hs[20:28]

    def read(self, timeout=10):
        """Next message as (id, body); (None, b"") for a keep-alive."""
        deadline = time.monotonic() + timeout
        self._fill(4, deadline)
        n = struct.unpack(">I", self.buf[:4])[0]
        self._fill(4 + n, deadline)
        msg, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        return (msg[0], msg[1:]) if n else (None, b"")

    def read_until(self, pred, timeout, what):
        """Reads messages until pred(id, body) is true; returns (the messages before it, it)."""
        seen, deadline = [], time.monotonic() + timeout
        while True:
            try:
                mid, body = self.read(max(0.01, deadline - time.monotonic()))
            except socket.timeout:
                raise CaseFailed("no %s from actorrent within %ds (got ids %s)"
                                 % (what, timeout, sorted({m for m, _ in seen if m is not None})))
            if pred(mid, body):
                return seen, (mid, body)
            seen.append((mid, body))


def block_list(torrent, n):
    """The first n blocks of the torrent as (piece, begin, length)."""
    out = []
    for p in range(torrent.num_pieces):
        for b in range(0, torrent.piece_size(p), BLOCK):
            out.append((p, b, min(BLOCK, torrent.piece_size(p) - b)))
            if len(out) == n:
                return out
    return out


def request_frames(blocks):
    return b"".join(frame(REQUEST, struct.pack(">III", *b)) for b in blocks)


def scripted_case(fn):
    """Shared set-up of the scripted.* seeding cases: a single-file payload, `actorrent seed`
    (no tracker) and fn(case, sess, torrent, payload_path, seed)."""
    def run(self, *a, **kw):
        with self.session() as sess:
            seed_root = sess.mkdir("seed", mode=0o755)
            size = kw.pop("size", 64 * H.MiB)
            payload = H.make_payload(seed_root, "scripted.bin", size=size, seed=self.name)
            canary = H.CanaryTracker()
            sess.at_close(canary.close)
            torrent = H.make_torrent(payload, 256 * H.KiB, sess.path("case.torrent"), announce=canary.announce_url)
            H.log("case %s: %d bytes, %d pieces, dir %s" % (self.name, size, torrent.num_pieces, sess.dir))
            seed = self.start_seed(sess, torrent, seed_root, no_tracker=True)
            fn(self, sess, torrent, payload.path_in(seed_root, ""), seed, *a, **kw)
    return run


def read_block(path, torrent, block):
    p, b, n = block
    with open(path, "rb") as f:
        f.seek(p * torrent.piece_length + b)
        return f.read(n)


# ------------------------------------------------------------------------------------ the case
class Case:
    def __init__(self, name, args):
        self.name, self.args = name, args
        self.diag = []        # (title, callable returning text), printed on failure
        self.diag_text = None
        self.rng = random.Random(os.urandom(16))

    @contextlib.contextmanager
    def session(self):
        sess = H.Session("actorrent-seeding-%s-" % self.name.replace(".", "-"))
        try:
            yield sess
        except BaseException:
            self.diag_text = self.collect_diagnostics()
            raise
        finally:
            signal.alarm(0)      # never interrupt the cleanup
            sess.close()

    def collect_diagnostics(self):
        parts = []
        for title, fn in self.diag:
            try:
                text = fn()
            except Exception as e:
                text = "(unavailable: %s)" % e
            parts.append("----- %s -----\n%s" % (title, text or "(empty)"))
        return "\n".join(parts)

    def print_diagnostics(self):
        text = self.diag_text if self.diag_text is not None else self.collect_diagnostics()
        if text:
            print(text, flush=True)

    def run(self):
        if self.name.startswith("seed."):
            return self.run_seed()
        if self.name.startswith("scripted."):
            return {"scripted.extended_handshake": self.run_extended_handshake,
                    "scripted.queue_overflow_fast": lambda: self.run_queue_overflow(fast=True),
                    "scripted.queue_overflow_plain": lambda: self.run_queue_overflow(fast=False),
                    "scripted.peer_reqq_honoured": self.run_peer_reqq}[self.name]()
        return {"swarm.trade": self.run_swarm_trade, "resume.kill9": self.run_kill9, "resume.sigint": self.run_sigint,
                "resume.corrupt": self.run_corrupt, "resume.changed_file": self.run_changed_file}[self.name]()

    # ------------------------------------------------------------------ actorrent processes
    def spawn_actorrent(self, sess, tag, argv):
        H.log("run %s: %s" % (tag, " ".join(argv)))
        p = sess.spawn("actorrent-" + tag, argv, log_path=sess.path("actorrent-%s.stdout" % tag),
                       stderr_path=sess.path("actorrent-%s.stderr" % tag), env=H.child_env(c_locale=False))
        self.diag.insert(0, ("actorrent %s stderr (tail, progress lines left out)" % tag,
                             lambda: H.tail(log_lines(p.stderr_text()), 25)))
        self.diag.insert(1, ("actorrent %s stdout" % tag, lambda: H.tail(p.output(), 10)))
        return p

    def start_seed(self, sess, torrent, datadir, peers=(), no_tracker=False):
        port = H.free_port()
        argv = [self.args.actorrent, "seed", torrent.path, datadir, "--listen", "%s:%d" % (H.LOOPBACK, port), "-v"]
        for p in peers:
            argv += ["--peer", p]
        if no_tracker:
            argv.append("--no-tracker")
        p = self.spawn_actorrent(sess, "seed", argv)
        m = H.wait_for(lambda: SEEDING_RE.search(p.output()) or (None if p.running() else "exit"), 30, 0.05)
        check(m and m != "exit", "actorrent seed printed no 'seeding: ...' line (%s)"
              % ("exited with %s" % p.returncode if not p.running() else "still running after 30 s"))
        name, host, lport, npieces = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        check((host, lport) == (H.LOOPBACK, port), "seeding on %s:%d, asked for --listen %s:%d" % (host, lport, H.LOOPBACK, port))
        check(name == torrent.name, "seeding name %r, torrent name %r" % (name, torrent.name))
        check(npieces == torrent.num_pieces, "seeding with %d of %d pieces verified" % (npieces, torrent.num_pieces))
        check(H.listen_addresses(port) == [H.LOOPBACK], "actorrent listens on %s" % H.listen_addresses(port))
        H.log("actorrent seeding %s on %s:%d (%d pieces verified, %.2fs after start)"
              % (name, host, lport, npieces, time.monotonic() - p.t_start))
        p.port = port
        return p

    def stop_seed(self, p, payload_size):
        """SIGINT; must exit 0 within STOP_GRACE s and report uploaded >= payload_size."""
        check(p.running(), "actorrent seed exited early with status %s" % p.returncode)
        t0 = time.monotonic()
        os.kill(p.pid, signal.SIGINT)
        rc = p.wait(STOP_GRACE)
        dt = time.monotonic() - t0
        check(rc is not None, "actorrent seed did not exit within %ds of SIGINT" % STOP_GRACE)
        check(rc == 0, "actorrent seed exited with status %d after SIGINT (expected 0)" % rc)
        m = UPLOADED_RE.search(p.output())
        check(m, "actorrent seed printed no 'uploaded: N bytes' line on exit")
        up = int(m.group(1))
        H.log("actorrent seed exited 0 %.2fs after SIGINT, reports uploaded: %d bytes" % (dt, up))
        check(up >= payload_size, "actorrent seed reports uploaded: %d bytes, but the leecher got all %d bytes "
              "from it (it was the only source)" % (up, payload_size))
        return up

    # ------------------------------------------------------------------ seed.<client>.<mode>
    def run_seed(self):
        _, client, mode = self.name.split(".")
        single, volume = mode == "single", mode == "volume"
        if single or volume:
            mode = "direct"
        cls = H.DOWNLOADERS[client]
        H.require(set(cls.needs) | ({"opentracker"} if mode == "tracker" else set()))
        if volume:
            P = 256 * H.KiB
        else:
            k = CLIENTS.index(client) + MODES.index(mode) + (1 if single else 0)
            P = 64 * H.KiB if k % 2 == 0 else 256 * H.KiB
        leech_timeout = VOLUME_LEECH_TIMEOUT if volume else LEECH_TIMEOUT
        stall_limit = VOLUME_STALL_LIMIT if volume else STALL_LIMIT
        with self.session() as sess:
            H.log("case %s: actorrent seeds, %s downloads, %s mode, piece length %d KiB, dir %s"
                  % (self.name, client, mode, P // H.KiB, sess.dir))
            seed_root = sess.mkdir("seed", mode=0o755)
            if volume:
                t0 = time.monotonic()
                payload = H.make_payload(seed_root, "volume.bin", size=VOLUME[client], seed=self.name)
                H.log("payload: %d MiB written in %.1fs" % (VOLUME[client] // H.MiB, time.monotonic() - t0))
            elif single:
                payload = H.make_payload(seed_root, "seeded_single.bin", size=H.single_file_spec(P), seed=self.name)
            else:
                payload = H.make_payload(seed_root, "seeded_multi", files=seed_spec(P), seed=self.name)
            tracker = canary = None
            if mode == "tracker":
                tracker = H.OpenTracker(sess)
                announce = tracker.announce_url
                self.diag.append(("opentracker log (tail)", lambda: H.tail(tracker.proc.output(), 10) if tracker.proc else ""))
            else:
                canary = H.CanaryTracker()
                sess.at_close(canary.close)
                announce = canary.announce_url
            torrent = H.make_torrent(payload, P, sess.path("case.torrent"), announce=announce)
            H.log("torrent: %d bytes in %d file(s), %d pieces (last %d bytes), info-hash %s"
                  % (torrent.total_size, len(torrent.files), torrent.num_pieces,
                     torrent.piece_size(torrent.num_pieces - 1), torrent.info_hash_hex))
            if tracker:
                tracker.start([torrent.info_hash])
            out = sess.mkdir("download")
            leech = cls(sess, torrent, out, tracker=tracker, timeout=leech_timeout)
            self.diag.append(("%s leecher log (tail)" % client, lambda: leech.log_tail(30)))
            if client == "rtorrent":
                self.diag.append(("rtorrent progress (bytes, peers)", lambda: str(leech.progress())))

            if client in ("libtorrent", "rtorrent"):
                # libtorrent dials: actorrent first (registered at the tracker, or dialled directly)
                seed = self.start_seed(sess, torrent, seed_root, no_tracker=tracker is None)
                if tracker:
                    tracker.wait_registered(torrent.info_hash, 1, 15)
                    H.log("tracker lists actorrent: scrape (complete, incomplete) = %s" % (tracker.scrape(torrent.info_hash),))
                else:
                    leech.peers = ["%s:%d" % (H.LOOPBACK, seed.port)]
                leech.start(listen_timeout=30 if volume else 20)
            elif tracker and client == "aria2":
                # aria2 re-announces every 2 s and dials what the tracker returns
                seed = self.start_seed(sess, torrent, seed_root)
                tracker.wait_registered(torrent.info_hash, 1, 15)
                leech.start()
            elif tracker:
                # transmission never dials loopback peers and actorrent learns peers only from its
                # own announces: the leecher must be at the tracker before actorrent announces
                leech.start()
                tracker.wait_registered(torrent.info_hash, 1, 20)
                H.log("transmission registered at the tracker; starting actorrent (no --peer)")
                seed = self.start_seed(sess, torrent, seed_root)
            else:
                leech.start()
                seed = self.start_seed(sess, torrent, seed_root, peers=[leech.endpoint], no_tracker=True)
            if client == "transmission":
                H.log("note: transmission waits ~10 s before it shows interest")

            rc, t_first, have, t_change = None, None, 0, time.monotonic()
            deadline = time.monotonic() + leech_timeout + 5
            stalled = False
            while rc is None and time.monotonic() < deadline:
                rc = leech.wait(0.01)
                now_have = bytes_on_disk(torrent, out)
                if now_have != have:
                    have, t_change = now_have, time.monotonic()
                    if t_first is None:
                        t_first = t_change
                if rc is None and t_first is not None and not leech.completed() \
                        and time.monotonic() - t_change > stall_limit:
                    stalled = True      # a few MiB take ~3 s once data flows
                    break
            drops = [ln for ln in log_lines(seed.stderr_text()).splitlines()
                     if "disconnected:" in ln and "connected to ourselves" not in ln]
            hint = "; actorrent dropped the leecher %d time(s), e.g. '%s'" % (len(drops), drops[0]) if drops else ""
            if rc is None:
                why = ("stalled: no new data on disk for %ds after %d bytes (%.1f %%) arrived"
                       % (stall_limit, have, 100.0 * have / payload.total_size)
                       if stalled else "did not finish within %ds" % (leech_timeout + 5))
                raise CaseFailed("%s leecher %s; %s%s" % (client, why, self.data_state(payload, out, client), hint))
            H.log("%s leecher exited %d" % (client, rc))
            ok_rc = {"transmission": (0, -signal.SIGTERM, 128 + signal.SIGTERM)}.get(client, (0,))
            self.check_no_peer_warnings(seed, client)
            check(rc in ok_rc and leech.completed(),
                  "%s leecher exited with status %s, completion %sseen; %s%s"
                  % (client, rc, "" if leech.completed() else "NOT ", self.data_state(payload, out, client), hint))
            self.verify(payload, out, client)
            el = leech.elapsed
            xfer = leech.t_done - t_first if t_first is not None and leech.t_done is not None else None
            if xfer is not None and xfer >= 0.05:
                window = "%.2fs from the first byte on disk to completion (%s)" % (xfer, human_rate(payload.total_size, xfer))
            else:
                window = "first byte to completion too fast to time by polling (< 0.05 s)"
            H.log("RATE %s downloaded %d bytes from actorrent: %.2fs from its start to completion%s; %s%s"
                  % (client, payload.total_size, el,
                     " (incl. transmission's ~10 s idle start)" if client == "transmission" else "",
                     window, peak_rate(client, leech)))
            time.sleep(SETTLE)   # the leecher is gone: let actorrent notice before stopping it
            self.stop_seed(seed, payload.total_size)
            if canary:
                mine = canary.requests_by(seed.pid)
                check(not mine, "actorrent seed contacted the torrent's tracker despite --no-tracker: %s"
                      % (mine[0][2] if mine else ""))
                others = sorted({"%s(%s)" % (c, p) for p, c, _ in canary.requests})
                H.log("--no-tracker honoured (tracker requests seen only from: %s)" % (", ".join(others) or "nobody"))

    @staticmethod
    def check_no_peer_warnings(seed, client):
        """A real client is not misbehaving: actorrent's peers and listener must not warn about it
        (its encrypted handshake attempts included)."""
        warns = [ln for ln in log_lines(seed.stderr_text()).splitlines()
                 if re.search(r" warning \[(peer|session)\] ", ln)]
        check(not warns, "actorrent logged %d warning(s) about the %s leecher, e.g. '%s'"
              % (len(warns), client, warns[0] if warns else ""))

    @staticmethod
    def data_state(payload, out, client=None):
        try:
            problems = Case.problems(payload, out, client)
        except Exception as e:
            return "data on disk not checkable (%s)" % e
        if not problems:
            return "the data on disk is byte-exact"
        return "data on disk: %d file problem(s), e.g. %s" % (len(problems), problems[0])

    @staticmethod
    def problems(payload, out, client=None):
        problems = H.verify_download(payload, out)
        if client == "transmission":
            empty = {rel for rel, s in payload.files if s == 0}
            problems = [p for p in problems if not any(p.startswith(rel + ":") and "0-byte file not created" in p
                                                       for rel in empty)]
        return problems

    def verify(self, payload, out, client=None):
        problems = self.problems(payload, out, client)
        check(not problems, "download differs from the payload:\n  " + "\n  ".join(problems[:20]))
        empty = [rel for rel, s in payload.files if s == 0]
        missing = [rel for rel in empty if not os.path.isfile(payload.path_in(out, rel))]
        H.log("verified %d file(s), %d bytes byte-exact%s" % (
            len(payload.files) - len(missing), payload.total_size,
            ("; %s did not create the 0-byte file(s) %s (transmission-cli never does)" % (client, ", ".join(missing)))
            if missing else (", 0-byte files present" if empty else "")))

    # ------------------------------------------------------------------ helpers for download runs
    def lt_seeder(self, sess, torrent, root, limit, tracker=None):
        seeder = H.LibtorrentSeeder(sess, torrent, root, tracker=tracker, upload_limit=limit)
        self.diag.append(("libtorrent seeder log (tail)", lambda: seeder.log_tail(12)))
        return seeder.start(timeout=40)

    @staticmethod
    def seeder_uploaded(seeder, after_lines=0):
        """Latest total upload libtorrent reported (it logs one every 5 s), with the count of such
        lines."""
        found = LT_UPLOADED_RE.findall(seeder.proc.output())
        if len(found) <= after_lines:
            return None, len(found)
        return int(found[-1][1]), len(found)

    def final_seeder_upload(self, seeder, timeout=8):
        """Wait for a status line printed after now (nobody downloads any more), return its total."""
        _, n = self.seeder_uploaded(seeder)
        v = H.wait_for(lambda: self.seeder_uploaded(seeder, n)[0] is not None, timeout, 0.2)
        check(v, "libtorrent seeder printed no status line within %ds" % timeout)
        return self.seeder_uploaded(seeder)[0]

    def download_argv(self, torrent, out, peers, no_tracker=True):
        # No DHT: these cases are about the peers and the tracker they are given (the DHT has its
        # own tests in dht_test.py and magnet_dht_test.py).
        argv = [self.args.actorrent, "download", "--listen", "127.0.0.1:0", "--no-dht", torrent.path,
                "-o", out]
        for p in peers:
            argv += ["--peer", p]
        if no_tracker:
            argv.append("--no-tracker")
        return argv + ["--timeout", str(DOWNLOAD_TIMEOUT), "-v"]

    def wait_progress(self, p, torrent, out, target, timeout, what):
        """Wait until bytes_on_disk >= target while p runs; CaseFailed if p exits or too slow."""
        ok = H.wait_for(lambda: not p.running() or bytes_on_disk(torrent, out) >= target, timeout, 0.02)
        check(p.running(), "actorrent exited (status %s) before %s; stderr: %s"
              % (p.returncode, what, H.tail(p.stderr_text(), 3)))
        check(ok, "no progress to %d bytes on disk within %ds (have %d) before %s"
              % (target, timeout, bytes_on_disk(torrent, out), what))

    def stop_with(self, p, sig):
        """Send sig; the process must exit 130 within SIGNAL_EXIT_LIMIT s.  Returns seconds taken."""
        t0 = time.monotonic()
        os.kill(p.pid, sig)
        rc = p.wait(SIGNAL_EXIT_LIMIT + 3)
        dt = time.monotonic() - t0
        name = signal.Signals(sig).name
        check(rc is not None, "actorrent still running %.0fs after %s" % (SIGNAL_EXIT_LIMIT + 3, name))
        check(rc == 130, "actorrent exited with status %d after %s (expected 130)" % (rc, name))
        check(dt <= SIGNAL_EXIT_LIMIT, "actorrent took %.2fs to exit after %s (limit %.1fs)" % (dt, name, SIGNAL_EXIT_LIMIT))
        return dt

    def finish_run(self, p, payload, out, timeout):
        """Wait for the last run: exit 0 with a 'complete:' line, then byte-exact."""
        rc = p.wait(timeout)
        if rc is None:
            raise CaseFailed("the final actorrent run did not finish within %ds; %s" % (timeout, self.data_state(payload, out)))
        m = COMPLETE_RE.search(p.output())
        check(rc == 0 and m, "the final actorrent run exited %d%s; last stderr line: %s; %s"
              % (rc, "" if m else " without a 'complete:' line", H.tail(p.stderr_text(), 1), self.data_state(payload, out)))
        self.verify(payload, out)
        return m

    @staticmethod
    def existing(p):
        """(N, M, H) from the run's 'existing data' line, or None."""
        m = EXISTING_RE.search(p.stderr_text())
        return tuple(int(x) for x in m.groups()) if m else None

    # ------------------------------------------------------------------ swarm.trade
    def run_swarm_trade(self):
        H.require({"libtorrent", "opentracker"})
        P = 64 * H.KiB
        with self.session() as sess:
            seed_root = sess.mkdir("seed", mode=0o755)
            M = H.MiB
            payload = H.make_payload(seed_root, "swarm", files=[("part1.bin", 5 * M + 11), ("d/part2.bin", 4 * M),
                                                               ("d/e/part3.bin", 3 * M - 5)], seed=self.name)
            tracker = H.OpenTracker(sess)
            torrent = H.make_torrent(payload, P, sess.path("case.torrent"), announce=tracker.announce_url)
            size = torrent.total_size
            H.log("case swarm.trade: %d bytes, %d pieces of %d KiB, libtorrent seeder limited to 1 MiB/s, dir %s"
                  % (size, torrent.num_pieces, P // H.KiB, sess.dir))
            tracker.start([torrent.info_hash])
            seeder = self.lt_seeder(sess, torrent, seed_root, H.MiB, tracker=tracker)
            runs = []
            for tag in ("A", "B"):
                out = sess.mkdir("leech" + tag)
                runs.append((tag, out, self.spawn_actorrent(sess, tag, self.download_argv(torrent, out, [], no_tracker=False))))
            t0 = time.monotonic()
            results = {}
            deadline = t0 + 80
            while len(results) < 2 and time.monotonic() < deadline:
                for tag, out, p in runs:
                    if tag not in results and p.wait(0.1) is not None:
                        results[tag] = (p.returncode, time.monotonic() - t0)
                        H.log("leecher %s exited %d after %.1fs" % (tag, p.returncode, results[tag][1]))
            check(len(results) == 2, "leecher(s) %s did not finish within 80 s"
                  % ", ".join(t for t, _, _ in runs if t not in results))
            uploads = {}
            for tag, out, p in runs:
                m = COMPLETE_RE.search(p.output())
                check(results[tag][0] == 0 and m, "leecher %s exited %d%s; %s" % (
                    tag, results[tag][0], "" if m else " without a 'complete:' line", self.data_state(payload, out)))
                self.verify(payload, out)
                uploads[tag] = int(m.group(7))
                H.log("leecher %s: %s" % (tag, m.group(0)))
            seeder_up = self.final_seeder_upload(seeder)
            H.log("libtorrent seeder uploaded %d bytes = %.2fx the payload; leechers report uploads A=%d B=%d "
                  "(sum of all uploads %.2fx the payload; 2x is what the leechers received at least)"
                  % (seeder_up, seeder_up / size, uploads["A"], uploads["B"],
                     (seeder_up + uploads["A"] + uploads["B"]) / size))
            check(seeder_up >= size, "libtorrent reports only %d bytes uploaded for a %d-byte payload: the "
                  "measurement is broken" % (seeder_up, size))
            for tag in ("A", "B"):
                check(uploads[tag] > 0, "leecher %s reports 0 bytes uploaded: the leechers did not trade "
                      "(seeder uploaded %.2fx the payload)" % (tag, seeder_up / size))
            for tag in ("A", "B"):
                check(uploads[tag] >= size // 20, "leecher %s uploaded only %d bytes: the leechers hardly traded"
                      % (tag, uploads[tag]))
            # Under 2x: the leechers took data from each other, and no block the seeder sent was
            # thrown away (a late copy of a timed-out or choked request is kept, not fetched twice).
            check(seeder_up < 2 * size, "the seeder uploaded %d bytes = %.2fx the payload: the leechers did "
                  "not take their data from each other, or blocks were fetched twice" % (seeder_up, seeder_up / size))

    # ------------------------------------------------------------------ resume.kill9
    def run_kill9(self):
        """Rules asserted (N_k, M, H_k from the 'existing data' line of restart k; V_k = pieces
        whose bytes on disk match their hash just before restart k):
          * every restart logs the line, M is the torrent's piece count, N_k <= V_k: a piece is
            never trusted or found without its data being on disk;
          * N_k >= N_(k-1): N never decreases.  A piece counted at restart k-1 has its bytes on
            disk (resume data is written only after a flush; SIGKILL does not lose the page
            cache) and verified data is never overwritten, so the next restart finds it again:
            trusted if its file is untouched since the last save, re-hashed otherwise.  So no
            exception is made for a run killed before its first resume save: the previous resume
            file plus re-hashing, or a full check when there is none, must find those pieces
            again (only a machine crash could lose them, which this test does not do);
          * N_k > 0 for k >= 2 (at least two kills' worth of data is on disk by then); if no
            resume file existed before restart k, H_k = M (a full check) and N_k = V_k;
          * the final run completes byte-exact, and the seeder's total upload is below 1.5x the
            payload: pieces that were verified were not fetched again (the overhead allowed is
            the partial pieces and in-flight bytes lost at each of the 5 kills)."""
        H.require({"libtorrent"})
        P = 64 * H.KiB
        kills, rate = 5, 512 * H.KiB
        with self.session() as sess:
            seed_root = sess.mkdir("seed", mode=0o755)
            payload = H.make_payload(seed_root, "killed", files=resume_spec(16), seed=self.name)
            torrent = H.make_torrent(payload, P, sess.path("case.torrent"))
            size, M = torrent.total_size, torrent.num_pieces
            seeder = self.lt_seeder(sess, torrent, seed_root, rate)
            out = sess.mkdir("download")
            argv = self.download_argv(torrent, out, [seeder.endpoint])
            # kill moments: uniform in 0.3..7.5 s after the run's first new data reached the disk;
            # resampled until they leave 30 % of the download for the last run and at least two
            # runs last beyond a resume save (every 5 s)
            t_est = size / rate
            while True:
                delays = [self.rng.uniform(0.3, 7.5) for _ in range(kills)]
                if sum(delays) <= 0.7 * t_est and sum(d >= 5.5 for d in delays) >= 2:
                    break
            H.log("case resume.kill9: %d bytes, %d pieces, seeder limited to %d KiB/s (~%.0f s); SIGKILL %s s after "
                  "each run's first new data; dir %s" % (size, M, rate // H.KiB, t_est,
                                                       ", ".join("%.2f" % d for d in delays), sess.dir))
            history = []     # (restart, N, H, V, resume file before the restart)
            prev_n = None
            for k in range(kills + 1):
                had_resume = bool(resume_files(out))
                v = valid_pieces(torrent, out) if k else set()
                start_bytes = bytes_on_disk(torrent, out)
                p = self.spawn_actorrent(sess, "run%d" % k, argv)
                if k < kills:
                    self.wait_progress(p, torrent, out, start_bytes + P, 20, "kill #%d (progress)" % (k + 1))
                    t_prog = time.monotonic()
                    H.wait_for(lambda: not p.running(), delays[k], 0.02)
                    check(p.running(), "run %d exited (status %s) before its kill %.2fs after progress began"
                          % (k, p.returncode, delays[k]))
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait(5)
                    now_bytes = bytes_on_disk(torrent, out)
                    H.log("run %d: SIGKILL %.2fs after progress began (%.2fs after start) at %d bytes on disk (%.0f%%), "
                          "resume file %s" % (k, time.monotonic() - t_prog, time.monotonic() - p.t_start, now_bytes,
                                              100.0 * now_bytes / size, "present" if resume_files(out) else "absent"))
                else:
                    m = self.finish_run(p, payload, out, 60)
                    H.log("final run: %s" % m.group(0))
                if k == 0:
                    continue
                ex = self.existing(p)
                check(ex, "restart %d: stderr has no 'existing data: N of M pieces verified (H hashed)' line "
                      "although %d pieces are valid on disk" % (k, len(v)))
                n, m_, h = ex
                history.append((k, n, h, len(v), had_resume))
                H.log("restart %d: existing data: %d of %d pieces verified (%d hashed); %d valid on disk; "
                      "resume file before the restart: %s" % (k, n, m_, h, len(v), "yes" if had_resume else "no"))
                check(m_ == M, "restart %d: 'of %d pieces', the torrent has %d" % (k, m_, M))
                check(n <= len(v), "restart %d: %d pieces counted as verified but only %d are valid on disk"
                      % (k, n, len(v)))
                if prev_n is not None:
                    check(n >= prev_n, "restart %d: %d pieces verified, fewer than the %d of the previous restart"
                          % (k, n, prev_n))
                if k >= 2:
                    check(n > 0, "restart %d: no piece verified after %d interrupted runs (%d valid on disk)"
                          % (k, k, len(v)))
                if not had_resume:
                    check(h == M and n == len(v), "restart %d without resume file: %d hashed (expected a full "
                          "check of %d) and %d verified (%d valid on disk)" % (k, h, M, n, len(v)))
                prev_n = n
            seeder_up = self.final_seeder_upload(seeder)
            H.log("seeder uploaded %d bytes in total over %d runs = %.2fx the payload"
                  % (seeder_up, kills + 1, seeder_up / size))
            H.log("restarts (k, N, H, V, resume before): %s" % history)
            check(seeder_up >= size, "libtorrent reports only %d bytes uploaded: the measurement is broken" % seeder_up)
            check(seeder_up < 1.5 * size, "the seeder uploaded %.2fx the payload over %d runs: verified pieces were "
                  "downloaded again" % (seeder_up / size, kills + 1))

    # ------------------------------------------------------------------ resume.sigint
    def run_sigint(self):
        H.require({"libtorrent"})
        P = 64 * H.KiB
        with self.session() as sess:
            seed_root = sess.mkdir("seed", mode=0o755)
            payload = H.make_payload(seed_root, "interrupted", files=resume_spec(8), seed=self.name)
            torrent = H.make_torrent(payload, P, sess.path("case.torrent"))
            size, M = torrent.total_size, torrent.num_pieces
            H.log("case resume.sigint: %d bytes, %d pieces; dir %s" % (size, M, sess.dir))
            seeder = self.lt_seeder(sess, torrent, seed_root, H.MiB)
            out = sess.mkdir("download")
            argv = self.download_argv(torrent, out, [seeder.endpoint])
            prev_n, prev_valid = 0, set()
            stops = [(signal.SIGINT, self.rng.uniform(0.25, 0.35)), (signal.SIGTERM, self.rng.uniform(0.55, 0.65))]
            for k in range(len(stops) + 1):
                p = self.spawn_actorrent(sess, "run%d" % k, argv)
                if k > 0:
                    n = self.check_clean_restart(p, torrent, out, prev_valid, prev_n, k)
                    prev_n = n
                if k == len(stops):
                    m = self.finish_run(p, payload, out, 60)
                    H.log("final run: %s" % m.group(0))
                    break
                sig, frac = stops[k]
                self.wait_progress(p, torrent, out, int(frac * size), 40, signal.Signals(sig).name)
                dt = self.stop_with(p, sig)
                rf = resume_files(out)
                check(rf, "no resume file under %s/.actorrent/ after %s" % (out, signal.Signals(sig).name))
                check(os.path.basename(rf[0]).startswith(torrent.info_hash_hex), "resume file %s is not named after the "
                      "info-hash %s" % (rf[0], torrent.info_hash_hex))
                prev_valid = valid_pieces(torrent, out)
                H.log("run %d: %s at %.0f%% on disk: exit 130 after %.2fs; %s (%d bytes); %d pieces valid on disk"
                      % (k, signal.Signals(sig).name, 100.0 * bytes_on_disk(torrent, out) / size, dt,
                         os.path.relpath(rf[0], out), os.path.getsize(rf[0]), len(prev_valid)))

    def check_clean_restart(self, p, torrent, out, valid_before, prev_n, k):
        """After a clean stop: '(0 hashed)', N = the pieces valid on disk (>= last time)."""
        M = torrent.num_pieces
        ex = H.wait_for(lambda: self.existing(p) or (None if p.running() else "exit"), 15, 0.05)
        check(ex and ex != "exit", "restart %d: no 'existing data: N of %d pieces verified (H hashed)' line "
              "within 15 s; stderr: %s" % (k, M, H.tail(p.stderr_text(), 5)))
        n, m_, h = ex
        H.log("restart %d: existing data: %d of %d pieces verified (%d hashed); %d were valid on disk"
              % (k, n, m_, h, len(valid_before)))
        check(m_ == M, "restart %d: 'of %d pieces', the torrent has %d" % (k, m_, M))
        check(h == 0, "restart %d after a clean stop: %d pieces hashed, expected the resume data to be trusted "
              "(0 hashed)" % (k, h))
        check(n == len(valid_before), "restart %d: %d pieces trusted, but %d were valid on disk at the stop"
              % (k, n, len(valid_before)))
        check(n > 0 and n >= prev_n, "restart %d: %d pieces verified (previous restart: %d)" % (k, n, prev_n))
        warn = [ln for ln in p.stderr_text().splitlines() if "warn" in ln and "resume" in ln]
        check(not warn, "restart %d after a clean stop warns about the resume data: %s" % (k, warn[0] if warn else ""))
        return n

    # ------------------------------------------------------------------ resume.corrupt
    def run_corrupt(self):
        H.require({"libtorrent"})
        P = 64 * H.KiB
        with self.session() as sess:
            seed_root = sess.mkdir("seed", mode=0o755)
            payload = H.make_payload(seed_root, "damaged", files=resume_spec(8), seed=self.name)
            torrent = H.make_torrent(payload, P, sess.path("case.torrent"))
            size, M = torrent.total_size, torrent.num_pieces
            H.log("case resume.corrupt: %d bytes, %d pieces; dir %s" % (size, M, sess.dir))
            seeder = self.lt_seeder(sess, torrent, seed_root, H.MiB)
            out = sess.mkdir("download")
            argv = self.download_argv(torrent, out, [seeder.endpoint])
            damages = [("truncated to half its size", self.truncate_half),
                       ("one byte in the middle flipped", self.flip_middle)]
            fracs = [self.rng.uniform(0.2, 0.3), self.rng.uniform(0.5, 0.6)]
            rf, valid = None, set()      # the damaged resume file and the pieces valid at the stop
            for k in range(len(damages) + 1):
                p = self.spawn_actorrent(sess, "run%d" % k, argv)
                if k > 0:
                    self.check_full_check(p, torrent, out, rf, valid, k)
                if k == len(damages):
                    m = self.finish_run(p, payload, out, 60)
                    H.log("final run: %s" % m.group(0))
                    break
                self.wait_progress(p, torrent, out, int(fracs[k] * size), 40, "SIGINT")
                self.stop_with(p, signal.SIGINT)
                rfs = resume_files(out)
                check(rfs, "no resume file under %s/.actorrent/ after SIGINT" % out)
                rf = rfs[0]
                valid = valid_pieces(torrent, out)
                what, fn = damages[k]
                before = os.path.getsize(rf)
                fn(rf)
                H.log("run %d: stopped at %.0f%%, %d pieces valid on disk; resume file %s (%d bytes) %s"
                      % (k, 100.0 * bytes_on_disk(torrent, out) / size, len(valid), os.path.relpath(rf, out), before, what))

    @staticmethod
    def truncate_half(path):
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)

    @staticmethod
    def flip_middle(path):
        with open(path, "r+b") as f:
            mid = os.path.getsize(path) // 2
            f.seek(mid)
            b = f.read(1)
            f.seek(mid)
            f.write(bytes([b[0] ^ 0x5A]))

    def check_full_check(self, p, torrent, out, rf, valid, k):
        M = torrent.num_pieces
        ex = H.wait_for(lambda: self.existing(p) or (None if p.running() else "exit"), 15, 0.05)
        check(ex and ex != "exit", "restart %d: no 'existing data: N of %d pieces verified (H hashed)' line "
              "within 15 s; stderr: %s" % (k, M, H.tail(p.stderr_text(), 5)))
        n, m_, h = ex
        warn = [ln for ln in p.stderr_text().splitlines() if rf in ln]
        H.log("restart %d: existing data: %d of %d pieces verified (%d hashed); %d valid on disk; warning: %s"
              % (k, n, m_, h, len(valid), warn[0] if warn else "NONE"))
        check(warn, "restart %d: stderr never names the damaged resume file %s" % (k, rf))
        check("warn" in warn[0].lower(), "restart %d: the line naming the resume file is not a warning: %s" % (k, warn[0]))
        check(h == M, "restart %d with a damaged resume file: %d pieces hashed, expected a full check of %d" % (k, h, M))
        check(n == len(valid), "restart %d: the full check found %d valid pieces, %d are valid on disk" % (k, n, len(valid)))

    # ------------------------------------------------------------------ scripted.*
    @scripted_case
    def run_extended_handshake(self, sess, torrent, path, seed):
        w = WirePeer.dial(seed.port)
        reserved = w.handshake(torrent.info_hash, fast=True, extended=True, dht=True)
        check(reserved[5] & 0x10, "actorrent's handshake does not set the BEP 10 bit: reserved %s" % reserved.hex())
        check(reserved[7] & 0x01, "actorrent's handshake does not set the BEP 5 (DHT) bit: reserved %s" % reserved.hex())
        before_ext, (_, body) = w.read_until(lambda m, b: m == EXTENDED, 10, "extended message")
        check(all(m in (HAVE_ALL, BITFIELD, None) for m, _ in before_ext), "before its extended handshake "
              "actorrent sent ids %s" % [m for m, _ in before_ext])
        check(body[0] == 0, "first extended message has extended id %d, expected 0 (the handshake)" % body[0])
        d = H.bdecode(body[1:])
        H.log("actorrent's extended handshake: %r" % d)
        check(isinstance(d.get(b"m"), dict), "no 'm' dictionary in %r" % d)
        check(d.get(b"reqq") == 2000, "reqq is %r, expected 2000" % d.get(b"reqq"))
        check(isinstance(d.get(b"v"), bytes) and d[b"v"].startswith(b"actorrent/"), "v is %r" % d.get(b"v"))
        check(d.get(b"p") == seed.port, "p is %r, actorrent listens on %d" % (d.get(b"p"), seed.port))
        check(d.get(b"yourip") == socket.inet_aton(H.LOOPBACK), "yourip is %r, expected 127.0.0.1" % d.get(b"yourip"))
        # BEP 5: PORT after its pieces (the DHT binds the listen port's number over UDP)
        before, (_, body) = w.read_until(lambda m, b: m == PORT, 10, "PORT")
        check(any(m == HAVE_ALL for m, _ in before_ext + before),
              "PORT came before actorrent's HAVE_ALL: %s" % [m for m, _ in before_ext + before])
        check(len(body) == 2 and struct.unpack(">H", body)[0] == seed.port,
              "PORT carries %r, actorrent's DHT is on UDP %d" % (body.hex(), seed.port))
        H.log("actorrent's PORT: %d" % struct.unpack(">H", body)[0])
        # our PORT: actorrent's DHT pings our UDP port
        node = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        node.bind((H.LOOPBACK, 0))
        node.settimeout(5)
        w.send(frame(PORT, struct.pack(">H", node.getsockname()[1])))
        try:
            ping, src = node.recvfrom(2048)
        except socket.timeout:
            raise CaseFailed("no DHT query reached our UDP port within 5 s of our PORT message")
        finally:
            node.close()
        check(b"1:q4:ping" in ping, "the datagram after our PORT is no ping: %r" % ping)
        H.log("actorrent's DHT pinged us from %s:%d: %r" % (src[0], src[1], ping))
        w.close()
        # no extension bit: no extended message
        w = WirePeer.dial(seed.port)
        w.handshake(torrent.info_hash, fast=True, extended=False)
        w.send(frame(INTERESTED))
        seen, _ = w.read_until(lambda m, b: m == UNCHOKE, 15, "UNCHOKE")
        check(not any(m == EXTENDED for m, _ in seen), "extended message sent to a peer without the BEP 10 bit")
        check(not any(m == PORT for m, _ in seen), "PORT sent to a peer without the BEP 5 bit")
        w.close()
        # a malformed extended handshake: disconnected, with the reason
        w = WirePeer.dial(seed.port)
        w.handshake(torrent.info_hash, fast=True, extended=True)
        w.send(frame(EXTENDED, b"\x00" + H.bencode({"m": {}, "reqq": "lots"})))
        try:
            w.read_until(lambda m, b: False, 10, "disconnect")
        except ConnectionError:
            pass
        w.close()
        want = "disconnected: extended handshake: reqq is a string, expected an integer"
        check(H.wait_for(lambda: want in seed.stderr_text(), 5, 0.05), "actorrent did not log '%s'" % want)
        H.log("malformed extended handshake: %s" % [ln for ln in seed.stderr_text().splitlines() if want in ln][0])

    @scripted_case
    def run_queue_overflow(self, sess, torrent, path, seed, fast):
        n = 4000
        blocks = block_list(torrent, n)
        w = WirePeer.dial(seed.port)
        w.handshake(torrent.info_hash, fast=fast, extended=False)
        w.send(frame(INTERESTED))
        w.read_until(lambda m, b: m == UNCHOKE, 15, "UNCHOKE")
        got, rounds, choked = set(), [], False

        def ask():
            pending = [b for b in blocks if b not in got]
            rounds.append({"asked": len(pending), "served": 0, "rejected": 0})
            w.send(request_frames(pending))
            return set(pending)
        pending = ask()
        H.log("sent %d REQUESTs at once (%s)" % (n, "BEP 6 peer" if fast else "peer without BEP 6"))
        deadline = time.monotonic() + 90
        while len(got) < n:
            r = rounds[-1]
            check(time.monotonic() < deadline, "after 90 s: %d of %d blocks; rounds %s" % (len(got), n, rounds))
            try:
                mid, body = w.read(15)
            except socket.timeout:
                raise CaseFailed("actorrent went silent with %d of %d blocks served (%s; rounds %s): a request "
                                 "dropped silently is waited for forever"
                                 % (len(got), n, "choked" if choked else "unchoked", rounds))
            except ConnectionError:
                raise CaseFailed("actorrent closed the connection after %d of %d blocks; its log: %s"
                                 % (len(got), n, H.tail(log_lines(seed.stderr_text()), 3)))
            if mid == PIECE:
                check(not choked, "PIECE after CHOKE: the queue was not served before the CHOKE")
                p, b = struct.unpack(">II", body[:8])
                key = (p, b, len(body) - 8)
                check(key in pending and key not in got, "PIECE %s was not requested (or twice)" % (key,))
                check(body[8:] == read_block(path, torrent, key), "PIECE %s differs from the payload" % (key,))
                got.add(key)
                r["served"] += 1
            elif mid == REJECT:
                check(fast, "REJECT sent to a peer without the fast extension")
                r["rejected"] += 1
            if mid in (PIECE, REJECT) and r["rejected"] and r["served"] + r["rejected"] == r["asked"]:
                H.log("round %d: %s; asking again for the rejected ones" % (len(rounds), r))
                pending = ask()
            elif mid == CHOKE:
                check(not fast, "BEP 6 peer choked (expected REJECTs)")
                choked = True
            elif mid == UNCHOKE and choked:
                choked = False
                H.log("round %d: %s, then CHOKE and UNCHOKE; asking again for everything missing"
                      % (len(rounds), r))
                pending = ask()    # BEP 3: the CHOKE discarded every pending request
        check(len(rounds) > 1, "all %d requests were served in one go: the queue did not overflow, so this case "
              "proves nothing" % n)
        check(rounds[0]["served"] >= 2000, "only %d blocks served in the first round (the queue holds 2,000)"
              % rounds[0]["served"])
        H.log("all %d blocks byte-exact in %d rounds: %s" % (n, len(rounds), rounds))
        w.close()
        drops = [ln for ln in log_lines(seed.stderr_text()).splitlines() if "disconnected" in ln]
        check(not drops, "actorrent disconnected the peer: %s" % drops)

    def run_peer_reqq(self):
        """actorrent downloads from a scripted seeder that says reqq 37 and serves slowly (one
        block per ~20 ms poll) for 4 s: its requests in flight must never exceed 37."""
        reqq = 37
        with self.session() as sess:
            root = sess.mkdir("seed", mode=0o755)
            payload = H.make_payload(root, "reqq.bin", size=32 * H.MiB, seed=self.name)
            torrent = H.make_torrent(payload, 256 * H.KiB, sess.path("case.torrent"))
            path = payload.path_in(root, "")
            lsock = socket.socket()
            lsock.bind((H.LOOPBACK, 0))
            lsock.listen(1)
            sess.at_close(lsock.close)
            port = lsock.getsockname()[1]
            out = sess.mkdir("download")
            p = self.spawn_actorrent(sess, "download", self.download_argv(torrent, out, ["%s:%d" % (H.LOOPBACK, port)]))
            lsock.settimeout(15)
            conn, _ = lsock.accept()
            w = WirePeer(conn)
            w._fill(68, time.monotonic() + 10)
            hs, w.buf = w.buf[:68], w.buf[68:]
            check(hs[25] & 0x10, "actorrent's handshake does not set the BEP 10 bit")
            w.send(b"\x13BitTorrent protocol" + bytes([0, 0, 0, 0, 0, 0x10, 0, 0x04]) + torrent.info_hash
                   + b"-WP0001-" + os.urandom(6).hex().encode())
            w.send(frame(EXTENDED, b"\x00" + H.bencode({"m": {}, "reqq": reqq, "v": "scripted seeder"})))
            w.send(frame(HAVE_ALL))
            w.read_until(lambda m, b: m == INTERESTED, 15, "INTERESTED")
            w.send(frame(UNCHOKE))
            queue, served, most = [], 0, 0
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                try:
                    while True:   # everything that has arrived, without waiting
                        w.sock.settimeout(0.02)
                        try:
                            chunk = w.sock.recv(1 << 20)
                        except socket.timeout:
                            break
                        if not chunk:
                            raise CaseFailed("actorrent closed the connection")
                        w.buf += chunk
                    while len(w.buf) >= 4 and len(w.buf) >= 4 + struct.unpack(">I", w.buf[:4])[0]:
                        mid, body = w.read(1)
                        if mid == REQUEST:
                            queue.append(struct.unpack(">III", body))
                        elif mid == CANCEL:
                            c = struct.unpack(">III", body)
                            if c in queue:
                                queue.remove(c)
                except socket.timeout:
                    pass
                most = max(most, len(queue))
                if queue:
                    b = queue.pop(0)
                    w.send(frame(PIECE, struct.pack(">II", b[0], b[1]) + read_block(path, torrent, b)))
                    served += 1
            H.log("served %d blocks slowly; at most %d requests outstanding (reqq %d)" % (served, most, reqq))
            check(served > reqq, "actorrent asked for only %d blocks in 4 s" % served)
            check(most <= reqq, "actorrent had %d requests outstanding, the seeder's reqq is %d" % (most, reqq))
            check(most >= reqq // 2, "only %d requests outstanding at most: is the pipeline filled at all?" % most)
            w.close()
            p.stop()

    # ------------------------------------------------------------------ resume.changed_file
    def run_changed_file(self):
        H.require({"libtorrent"})
        P = 64 * H.KiB
        with self.session() as sess:
            seed_root = sess.mkdir("seed", mode=0o755)
            payload = H.make_payload(seed_root, "changed", files=resume_spec(8), seed=self.name)
            torrent = H.make_torrent(payload, P, sess.path("case.torrent"))
            size, M = torrent.total_size, torrent.num_pieces
            H.log("case resume.changed_file: %d bytes, %d pieces; dir %s" % (size, M, sess.dir))
            seeder = self.lt_seeder(sess, torrent, seed_root, H.MiB)
            out = sess.mkdir("download")
            argv = self.download_argv(torrent, out, [seeder.endpoint])
            p = self.spawn_actorrent(sess, "run0", argv)
            self.wait_progress(p, torrent, out, int(self.rng.uniform(0.45, 0.55) * size), 40, "SIGINT")
            self.stop_with(p, signal.SIGINT)
            check(resume_files(out), "no resume file under %s/.actorrent/ after SIGINT" % out)
            valid = valid_pieces(torrent, out)
            # a file with a verified piece lying wholly inside it, and fewer pieces than the torrent
            spans = file_spans(torrent, out)
            cands = []
            for i, (path, off, fsize) in enumerate(spans):
                inside = [q for q in sorted(pieces_of_file(torrent, i) & valid)
                          if q * P >= off and q * P + torrent.piece_size(q) <= off + fsize]
                if inside and len(pieces_of_file(torrent, i)) < M:
                    cands.append((i, inside))
            check(cands, "no file has a verified piece inside it after stopping at ~50%% (%d valid pieces)" % len(valid))
            fi, inside = self.rng.choice(cands)
            victim = self.rng.choice(inside)
            path, off, fsize = spans[fi]
            mtime_before = os.stat(path).st_mtime_ns
            time.sleep(0.01)
            with open(path, "r+b") as f:            # change 100 bytes inside the verified piece
                f.seek(victim * P - off + 1000)
                b = f.read(100)
                f.seek(victim * P - off + 1000)
                f.write(bytes(x ^ 0xFF for x in b))
            check(os.stat(path).st_mtime_ns != mtime_before, "the file's mtime did not change")
            valid_after = valid_pieces(torrent, out)
            check(victim not in valid_after and len(valid_after) == len(valid) - 1, "the change did not break exactly piece %d" % victim)
            expect_h = len(pieces_of_file(torrent, fi))
            H.log("run 0: stopped, %d pieces valid; changed 100 bytes of %s (file #%d, pieces %d..%d) inside "
                  "verified piece %d" % (len(valid), os.path.relpath(path, out), fi, min(pieces_of_file(torrent, fi)),
                                         max(pieces_of_file(torrent, fi)), victim))
            p = self.spawn_actorrent(sess, "run1", argv)
            ex = H.wait_for(lambda: self.existing(p) or (None if p.running() else "exit"), 15, 0.05)
            check(ex and ex != "exit", "restart: no 'existing data' line within 15 s; stderr: %s" % H.tail(p.stderr_text(), 5))
            n, m_, h = ex
            H.log("restart: existing data: %d of %d pieces verified (%d hashed); expected %d hashed (the pieces of "
                  "the changed file) and %d verified" % (n, m_, h, expect_h, len(valid_after)))
            check(h == expect_h, "restart after changing one file: %d pieces hashed, expected exactly the %d pieces of "
                  "that file" % (h, expect_h))
            check(n == len(valid_after), "restart after changing one file: %d pieces verified, %d are valid on disk "
                  "(the changed piece %d must not count)" % (n, len(valid_after), victim))
            m = self.finish_run(p, payload, out, 60)
            H.log("final run: %s" % m.group(0))


def selftest():
    """The leecher helpers themselves, against a libtorrent seeder through opentracker (no
    actorrent): each must finish byte-exact (transmission: except its 0-byte files)."""
    H.require({"libtorrent", "opentracker", "aria2c", "transmission-cli", "stdbuf"})
    for client in CLIENTS:
        with H.Session("actorrent-seeding-selftest-") as sess:
            P = 64 * H.KiB
            root = sess.mkdir("seed", mode=0o755)
            payload = H.make_payload(root, "selftest", files=H.multi_file_spec(P), seed="seeding-selftest-" + client)
            tracker = H.OpenTracker(sess)
            torrent = H.make_torrent(payload, P, sess.path("case.torrent"), announce=tracker.announce_url)
            tracker.start([torrent.info_hash])
            out = sess.mkdir("download")
            leech = H.DOWNLOADERS[client](sess, torrent, out, tracker=tracker, timeout=LEECH_TIMEOUT)
            if client == "transmission":          # it never dials: the seeder must learn of it first
                leech.start()
                tracker.wait_registered(torrent.info_hash, 1, 20)
                H.LibtorrentSeeder(sess, torrent, root, tracker=tracker).start(timeout=40)
            else:
                H.LibtorrentSeeder(sess, torrent, root, tracker=tracker).start(timeout=40)
                leech.start()
            rc = leech.wait(LEECH_TIMEOUT + 5)
            problems = Case.problems(payload, out, client)
            if rc is None or not leech.completed() or problems:
                raise CaseFailed("%s leecher helper: exit %s, completion %s, %s\n%s" % (
                    client, rc, leech.completed(), problems or "data OK", leech.log_tail(20)))
            H.log("%s leecher helper OK: byte-exact from libtorrent in %.2fs" % (client, leech.elapsed))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", help="path of the actorrent binary")
    ap.add_argument("--case", help="case name (see --list)")
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    ap.add_argument("--selftest", action="store_true",
                    help="check the leecher helpers against a libtorrent seeder (no actorrent)")
    a = ap.parse_args()
    if a.list:
        print("\n".join(all_cases()))
        return 0
    if a.selftest:
        signal.signal(signal.SIGTERM, _on_term)
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(CASE_BUDGET)
        try:
            selftest()
        except (CaseFailed, H.HarnessError, Budget) as e:
            print("FAIL selftest: %s" % e, flush=True)
            return 1
        finally:
            signal.alarm(0)
        print("PASS selftest", flush=True)
        return 0
    if not a.case:
        ap.error("--case is required (or --list)")
    if a.case not in all_cases():
        print("FAIL: unknown case %r (see --list)" % a.case)
        return 1
    if not a.actorrent:
        ap.error("--actorrent PATH is required")
    a.actorrent = os.path.abspath(a.actorrent)
    if not (os.path.isfile(a.actorrent) and os.access(a.actorrent, os.X_OK)):
        print("FAIL %s: actorrent binary %s does not exist or is not executable (build it first)" % (a.case, a.actorrent))
        return 1
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(case_budget(a.case))
    case = Case(a.case, a)
    t0 = time.monotonic()
    try:
        case.run()
    except (CaseFailed, H.HarnessError, Budget) as e:
        signal.alarm(0)
        kind = "setup error" if isinstance(e, H.HarnessError) else "failed"
        print("FAIL %s (%s after %.1fs): %s" % (a.case, kind, time.monotonic() - t0, e), flush=True)
        case.print_diagnostics()
        return 1
    except BaseException as e:
        signal.alarm(0)
        print("FAIL %s (%s: %s)" % (a.case, type(e).__name__, e), flush=True)
        case.print_diagnostics()
        if not isinstance(e, (SystemExit, KeyboardInterrupt)):
            raise
        return 1
    finally:
        signal.alarm(0)
    print("PASS %s (%.1fs)" % (a.case, time.monotonic() - t0), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
