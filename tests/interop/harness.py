#!/usr/bin/python3
"""Interop test harness for actorrent: real BitTorrent clients and a real tracker on 127.0.0.1.

Library (imported by interop_test.py, demo.py, hostile_seeder.py):
  * deterministic payloads (SHAKE-256 keystream keyed by seed + path; no numpy, ~1 GB/s)
  * bencode / bdecode, v1 torrent creation (single/multi file, no creation date), info-hash
  * free ports, LISTEN-socket checks via /proc/net/tcp (no probe connections: transmission
    remembers every connection from an IP)
  * process management: every child in its own process group, killed (group-wide) on exit,
    SIGKILL-on-parent-death, proxy variables scrubbed (everything is loopback)
  * opentracker (Debian build: whitelist mode, chroot + drop to nobody when run as root)
  * seeders: libtorrent (this file, run as a script under /usr/bin/python3), aria2c,
    transmission-cli; each with a readiness check (LISTEN socket + the client's own seeding
    signal + registration at the tracker when one is used)
  * verification: sha256 of every file of a download against the payload
  * a canary "tracker" recording which process announces (to check --no-tracker)

Script mode (/usr/bin/python3 harness.py ...):
  harness.py lt-seed     TORRENT DATADIR --port P [--no-tracker] [--upload-limit BYTES_PER_S]
  harness.py lt-download TORRENT -o OUTDIR [--peer HOST:PORT]... [--no-tracker] [--timeout S]
The libtorrent downloader mimics actorrent's interface and messages ("complete: ...",
"hash check failed", "banned"), so the interop cases can be run with libtorrent in place of
actorrent to check the harness itself (interop_test.py --downloader libtorrent).

All third-party clients run with DHT, LSD, PEX, UPnP, NAT-PMP and uTP disabled, bound to
127.0.0.1.  Use /usr/bin/python3: python3-libtorrent is a Debian package.
"""
import ctypes
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

PY = "/usr/bin/python3"
LOOPBACK = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
KiB = 1024
MiB = 1024 * 1024
SETUP_HINT = "run deploy/setup.sh (it installs the real peers and the tracker used by these tests)"

_T0 = time.monotonic()

# actorrent's DHT uses the public routers only when no --dht-bootstrap is given and it listens
# on a non-loopback address; this makes sure no test (whatever its flags) ever reaches them.
os.environ.setdefault("ACTORRENT_DHT_NO_DEFAULT_BOOTSTRAP", "1")


def log(*msg):
    print("[%s +%6.2fs]" % (time.strftime("%H:%M:%S"), time.monotonic() - _T0), *msg, flush=True)


class HarnessError(Exception):
    pass


def wait_for(pred, timeout, step=0.1):
    """Poll pred() until it is truthy (returns its value) or timeout seconds pass (returns None)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(step)


# ------------------------------------------------------------------------------------ bencode
def bencode(x):
    if isinstance(x, bool):
        raise TypeError("bool is not bencodable")
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode("utf-8")
    if isinstance(x, (bytes, bytearray)):
        return b"%d:%s" % (len(x), bytes(x))
    if isinstance(x, (list, tuple)):
        return b"l" + b"".join(bencode(i) for i in x) + b"e"
    if isinstance(x, dict):
        items = sorted(((k.encode("utf-8") if isinstance(k, str) else bytes(k)), v) for k, v in x.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError("cannot bencode %r" % type(x))


def _bdec(b, i, spans):
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c == b"l":
        i += 1
        out = []
        while b[i:i + 1] != b"e":
            if i >= len(b):
                raise ValueError("truncated list")
            v, i = _bdec(b, i, spans)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i += 1
        out = {}
        while b[i:i + 1] != b"e":
            if i >= len(b):
                raise ValueError("truncated dict")
            k, i = _bdec(b, i, spans)
            start = i
            v, i = _bdec(b, i, spans)
            out[k] = v
            if spans is not None and k == b"info" and b"info" not in spans:
                spans[b"info"] = (start, i)
        return out, i + 1
    if c.isdigit():
        j = b.index(b":", i)
        n = int(b[i:j])
        if j + 1 + n > len(b):
            raise ValueError("truncated string")
        return b[j + 1:j + 1 + n], j + 1 + n
    raise ValueError("bad bencode at offset %d" % i)


def bdecode(data):
    v, end = _bdec(data, 0, None)
    if end != len(data):
        raise ValueError("trailing data after bencoded value")
    return v


# ------------------------------------------------------------------------------------ payloads
CHUNK = MiB


def payload_stream(seed, relpath, size):
    """Deterministic pseudo-random bytes for one file, in chunks of at most 1 MiB."""
    off, idx = 0, 0
    while off < size:
        n = min(CHUNK, size - off)
        key = ("actorrent-interop|%s|%s|%d" % (seed, relpath, idx)).encode("utf-8")
        yield hashlib.shake_256(key).digest(n)
        off += n
        idx += 1


class Payload:
    """Files on disk under root/name (multi) or root/name (single file).

    root is the "save path" handed to clients; files is [(relpath, size)] with relpath using "/"
    and relative to root/name (multi) -- for a single file relpath is "" (the file is root/name).
    """

    def __init__(self, root, name, files, single, seed):
        self.root, self.name, self.files, self.single, self.seed = root, name, files, single, seed
        self.sha256 = {}

    @property
    def total_size(self):
        return sum(s for _, s in self.files)

    def path_in(self, base, relpath):
        if self.single:
            return os.path.join(base, self.name)
        return os.path.join(base, self.name, *relpath.split("/"))

    def torrent_files(self):
        """[(path components, size)] in torrent order (multi only)."""
        return [(rel.split("/"), s) for rel, s in self.files]


def make_payload(root, name, files=None, size=None, seed="seed"):
    """Write a single-file payload (size=...) or a multi-file one (files=[(relpath, size)]).
    Returns a Payload with the sha256 of each file."""
    single = files is None
    if single:
        files = [("", int(size))]
    p = Payload(root, name, list(files), single, seed)
    for rel, sz in p.files:
        path = p.path_in(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        h = hashlib.sha256()
        with open(path, "wb") as f:
            for chunk in payload_stream(seed, rel or name, sz):
                f.write(chunk)
                h.update(chunk)
        p.sha256[rel] = h.hexdigest()
    return p


def single_file_spec(piece_length):
    """4 MiB plus a few bytes: the last piece is short (1234 bytes)."""
    return 4 * MiB + 1234


def multi_file_spec(piece_length):
    """Nested folders, 0- and 1-byte files, one file exactly one piece long (and piece-aligned,
    as it comes first), files spanning pieces, a space and UTF-8 in names, total not aligned."""
    P = piece_length
    spec = [
        ("docs/exact one piece.bin", P),
        ("docs/empty.txt", 0),
        ("docs/one-byte.txt", 1),
        ("data/nested/deeper/spanning.bin", 2 * P + 4097),
        ("data/nested/tiny.bin", 17),
        ("data/\u00fcn\u00efc\u00f6d\u00e9 \u2713.dat", 100003),
        ("data/zero/also-empty", 0),
        ("data/big.bin", MiB + 7),
        ("last.bin", P - 3),
    ]
    assert sum(s for _, s in spec) % P != 0
    return spec


# ------------------------------------------------------------------------------------ torrents
class Torrent:
    def __init__(self, path, meta, info_raw):
        self.path = path
        self.meta = meta
        self.info = meta[b"info"]
        self.info_hash = hashlib.sha1(info_raw).digest()
        self.info_hash_hex = self.info_hash.hex()
        self.name = self.info[b"name"].decode("utf-8")
        self.piece_length = self.info[b"piece length"]
        p = self.info[b"pieces"]
        self.piece_hashes = [p[i:i + 20] for i in range(0, len(p), 20)]
        if b"files" in self.info:
            self.single = False
            self.files = [([c.decode("utf-8") for c in f[b"path"]], f[b"length"]) for f in self.info[b"files"]]
        else:
            self.single = True
            self.files = [([self.name], self.info[b"length"])]
        self.total_size = sum(s for _, s in self.files)
        self.num_pieces = len(self.piece_hashes)
        self.announce = meta.get(b"announce", b"").decode() or None

    def piece_size(self, index):
        if index == self.num_pieces - 1:
            return self.total_size - self.piece_length * (self.num_pieces - 1)
        return self.piece_length

    def file_paths(self, save_path):
        """[(absolute path, size)] of the content under save_path."""
        if self.single:
            return [(os.path.join(save_path, self.name), self.files[0][1])]
        return [(os.path.join(save_path, self.name, *comps), size) for comps, size in self.files]


def load_torrent(path):
    data = open(path, "rb").read()
    spans = {}
    meta, end = _bdec(data, 0, spans)
    if end != len(data) or b"info" not in spans:
        raise ValueError("%s: not a torrent" % path)
    s, e = spans[b"info"]
    return Torrent(path, meta, data[s:e])


def make_torrent(payload, piece_length, out_path, announce=None):
    """v1 torrent of payload (files read back from disk), no creation date: deterministic."""
    pieces = []
    buf = bytearray()
    for rel, _ in payload.files:
        with open(payload.path_in(payload.root, rel), "rb") as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= piece_length:
                    pieces.append(hashlib.sha1(buf[:piece_length]).digest())
                    del buf[:piece_length]
    if buf:
        pieces.append(hashlib.sha1(buf).digest())
    info = {"name": payload.name, "piece length": piece_length, "pieces": b"".join(pieces)}
    if payload.single:
        info["length"] = payload.total_size
    else:
        info["files"] = [{"length": s, "path": comps} for comps, s in payload.torrent_files()]
    meta = {"info": info, "created by": "actorrent interop harness"}
    if announce:
        meta["announce"] = announce
    with open(out_path, "wb") as f:
        f.write(bencode(meta))
    t = load_torrent(out_path)
    assert t.info_hash == hashlib.sha1(bencode(info)).digest()
    return t


# ------------------------------------------------------------------------------------ verification
def verify_download(payload, outdir):
    """Compare every file of payload with outdir/<name>/...; returns a list of problems ([] = OK)."""
    problems = []
    for rel, size in payload.files:
        path = payload.path_in(outdir, rel)
        label = rel or payload.name
        if not os.path.isfile(path):
            problems.append("%s: missing (%s)" % (label, "0-byte file not created" if size == 0 else "no file"))
            continue
        got = os.path.getsize(path)
        if got != size:
            problems.append("%s: size %d, expected %d" % (label, got, size))
            continue
        h = hashlib.sha256()
        first_diff = None
        off = 0
        with open(path, "rb") as f:
            for want in payload_stream(payload.seed, rel or payload.name, size):
                have = f.read(len(want))
                h.update(have)
                if first_diff is None and have != want:
                    first_diff = off + next(i for i in range(len(want)) if have[i:i + 1] != want[i:i + 1])
                off += len(want)
        if h.hexdigest() != payload.sha256[rel]:
            problems.append("%s: sha256 mismatch (first differing byte at offset %s)" % (label, first_diff))
    return problems


# ------------------------------------------------------------------------------------ ports / sockets
_handed_out = set()


def _ephemeral_range():
    try:
        lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def port_free(port, udp=False):
    for kind in ([socket.SOCK_STREAM, socket.SOCK_DGRAM] if udp else [socket.SOCK_STREAM]):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port(udp=False):
    """A TCP (and, with udp=True, UDP) port free on 127.0.0.1, chosen below the ephemeral range
    so outgoing connections of other processes cannot grab it before the server binds."""
    lo_eph, hi_eph = _ephemeral_range()
    lo, hi = (20000, min(30999, lo_eph - 1)) if lo_eph > 21000 else (hi_eph + 1, 65000)
    rnd = random.Random(os.urandom(8))
    for _ in range(500):
        p = rnd.randint(lo, hi)
        if p not in _handed_out and port_free(p, udp):
            _handed_out.add(p)
            return p
    raise HarnessError("no free port found on %s" % LOOPBACK)


def listen_addresses(port):
    """Local addresses (hex-decoded) with a TCP LISTEN socket on port, from /proc/net/tcp{,6}."""
    out = []
    for fn, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = open(fn).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 4 or f[3] != "0A":
                continue
            addr, p = f[1].rsplit(":", 1)
            if int(p, 16) != port:
                continue
            raw = bytes.fromhex(addr)
            if v6:
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                out.append(socket.inet_ntop(socket.AF_INET6, raw))
            else:
                out.append(socket.inet_ntoa(raw[::-1]))
    return out


def listening_on_loopback(port):
    return LOOPBACK in listen_addresses(port)


# ------------------------------------------------------------------------------------ processes
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


def _child_setup():
    # die with the harness even if it is SIGKILLed (cleared by exec of setuid programs and by
    # opentracker's own privilege drop; those are still killed through their process group)
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


PROXY_VARS = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "FTP_PROXY", "ALL_PROXY")


def child_env(extra=None, c_locale=True):
    """Environment for children: no proxies (everything is 127.0.0.1), C locale for parsable
    output of the third-party clients."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    if c_locale:
        env["LC_ALL"] = "C.UTF-8"
    if extra:
        env.update(extra)
    return env


class Proc:
    """A child in its own process group.  stdout (and stderr unless stderr_path or
    inherit_stderr) go to log_path."""

    def __init__(self, name, argv, log_path, cwd=None, env=None, stderr_path=None, inherit_stderr=False):
        self.name, self.argv, self.log_path, self.stderr_path = name, list(argv), log_path, stderr_path
        out = open(log_path, "wb")
        err = subprocess.STDOUT
        if stderr_path:
            err = open(stderr_path, "wb")
        elif inherit_stderr:
            err = None
        try:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                          cwd=cwd, env=env if env is not None else child_env(),
                                          start_new_session=True, preexec_fn=_child_setup)
        finally:
            out.close()
            if stderr_path:
                err.close()
        self.pid = self.popen.pid
        self.t_start = time.monotonic()

    def running(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def _exited_unreaped(self):
        if self.popen.returncode is not None:
            return True
        try:
            r = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return r is not None

    def _killpg(self, sig):
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace=5.0):
        """SIGTERM the whole group, SIGKILL after grace seconds; the leader is reaped last, so
        its pid (= the group id) cannot be reused while we signal the group."""
        if self.popen.returncode is None:
            self._killpg(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while not self._exited_unreaped() and time.monotonic() < deadline:
                time.sleep(0.05)
            self._killpg(signal.SIGKILL)   # leftovers of the group (and the leader if still alive)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                pass
        return self.popen.returncode

    def output(self):
        try:
            return open(self.log_path, "rb").read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_text(self):
        if not self.stderr_path:
            return ""
        try:
            return open(self.stderr_path, "rb").read().decode("utf-8", "replace")
        except OSError:
            return ""


def sample_peak_rss(pid, out, stop, every=0.1):
    """Thread body: keeps out[0] at the highest VmRSS (MiB) of pid until stop is set or it exits."""
    while not stop.is_set():
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out[0] = max(out[0], int(line.split()[1]) // 1024)
        except OSError:
            return
        stop.wait(every)


def tail(text, lines=40, width=400):
    # transmission draws its status line with \r: show the last state of each line
    out = [ln.rsplit("\r", 1)[-1][:width] for ln in text.replace("\r\n", "\n").split("\n")]
    out = [ln for ln in out if ln.strip()]
    return "\n".join(out[-lines:])


class Session:
    """A fresh temp directory (under /dev/shm when possible) plus every process started in it;
    closing kills the processes (group-wide) and removes the directory.  Set
    ACTORRENT_INTEROP_KEEP=1 to keep the directory for debugging."""

    def __init__(self, prefix="actorrent-interop-"):
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self.dir = tempfile.mkdtemp(prefix=prefix, dir=base)
        self.procs = []
        self.closers = []
        self.closed = False

    def at_close(self, fn):
        """Run fn() when the session closes (before the processes are stopped)."""
        self.closers.append(fn)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def mkdir(self, *parts, mode=0o700):
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        return p

    def spawn(self, name, argv, **kw):
        log_path = kw.pop("log_path", None) or self.path("%s.log" % name)
        p = Proc(name, argv, log_path, **kw)
        self.procs.append(p)
        return p

    def close(self):
        if self.closed:
            return
        self.closed = True
        for fn in reversed(self.closers):
            try:
                fn()
            except Exception as e:
                print("cleanup: %s failed: %s" % (fn, e), file=sys.stderr)
        for p in reversed(self.procs):
            try:
                p.stop(grace=3.0)
            except Exception as e:  # keep cleaning up
                print("cleanup: stopping %s failed: %s" % (p.name, e), file=sys.stderr)
        if os.environ.get("ACTORRENT_INTEROP_KEEP"):
            print("keeping %s (ACTORRENT_INTEROP_KEEP)" % self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ------------------------------------------------------------------------------------ requirements
def missing_requirements(need):
    """need: iterable of 'opentracker', 'aria2c', 'transmission-cli', 'libtorrent', 'stdbuf'.
    Returns human-readable list of what is missing."""
    missing = []
    if not os.access(PY, os.X_OK):
        missing.append("%s (Debian package python3)" % PY)
    for n in need:
        if n == "libtorrent":
            if not os.access(PY, os.X_OK) or subprocess.run(
                    [PY, "-c", "import libtorrent"], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, env=child_env()).returncode != 0:
                missing.append("python3-libtorrent (import libtorrent under %s)" % PY)
        elif shutil.which(n) is None:
            pkg = {"aria2c": "aria2", "transmission-cli": "transmission-cli", "opentracker": "opentracker",
                   "stdbuf": "coreutils"}.get(n, n)
            missing.append("%s (Debian package %s)" % (n, pkg))
    return missing


def require(need):
    m = missing_requirements(need)
    if m:
        raise HarnessError("missing: %s -- %s" % (", ".join(m), SETUP_HINT))


# ------------------------------------------------------------------------------------ tracker
def _opener():
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))   # never use a proxy


def parse_compact_peers(blob):
    return [(socket.inet_ntoa(blob[i:i + 4]), struct.unpack(">H", blob[i + 4:i + 6])[0])
            for i in range(0, len(blob) - 5, 6)]


class OpenTracker:
    """Debian's opentracker on 127.0.0.1:PORT (TCP+UDP).  Debian builds it with
    WANT_ACCESSLIST_WHITE, so the info-hashes must be whitelisted (hex, one per line).  As root
    it chroots into -d DIR and drops to 'nobody': -w is relative to DIR, the directory must be
    0755 and the file 0644.  cwd=DIR makes the relative path work when not root, too."""

    def __init__(self, session, port=None):
        self.session = session
        self.port = port or free_port(udp=True)
        self.dir = None
        self.proc = None

    @property
    def announce_url(self):
        return "http://%s:%d/announce" % (LOOPBACK, self.port)

    def start(self, info_hashes, timeout=10):
        self.dir = self.session.mkdir("tracker", mode=0o755)
        wl = os.path.join(self.dir, "whitelist.txt")
        with open(wl, "w") as f:
            for h in info_hashes:
                f.write((h.hex() if isinstance(h, bytes) else h) + "\n")
        os.chmod(wl, 0o644)
        argv = ["opentracker", "-i", LOOPBACK, "-p", str(self.port), "-P", str(self.port),
                "-d", self.dir, "-w", "whitelist.txt"]
        self.proc = self.session.spawn("opentracker", argv, cwd=self.dir)
        if not wait_for(lambda: not self.proc.running() or listening_on_loopback(self.port), timeout, 0.02) \
                or not self.proc.running():
            raise HarnessError("opentracker did not start listening on %s:%d: %s"
                               % (LOOPBACK, self.port, tail(self.proc.output(), 10)))
        # whitelist mode must be active: an unknown hash is refused, a whitelisted one accepted
        junk = hashlib.sha1(os.urandom(8)).digest()
        r = self.announce(junk, port=1, event="started")
        if b"failure reason" not in r:   # an open-mode build works too; Debian's is whitelist-only
            log("note: opentracker accepted a non-whitelisted info-hash (not built in whitelist mode)")
        for h in info_hashes:
            hb = h if isinstance(h, bytes) else bytes.fromhex(h)
            r = wait_for(lambda: self._probe(hb), 5, 0.1)
            if not r:
                raise HarnessError("opentracker refuses whitelisted hash %s: %r" % (hb.hex(), self.announce(hb, port=1, event="stopped")))
        log("opentracker listening on %s:%d (%d whitelisted)" % (LOOPBACK, self.port, len(info_hashes)))
        return self

    def _probe(self, info_hash):
        pid = b"-HPROBE-" + os.urandom(6).hex().encode()[:12]
        r = self.announce(info_hash, port=1, peer_id=pid, left=1, event="started", numwant=0)
        self.announce(info_hash, port=1, peer_id=pid, left=1, event="stopped", numwant=0)
        return b"failure reason" not in r

    def _get(self, path, timeout=3):
        url = "http://%s:%d%s" % (LOOPBACK, self.port, path)
        return bdecode(_opener().open(url, timeout=timeout).read())

    def announce(self, info_hash, port, peer_id=None, left=0, event=None, numwant=50):
        q = {"info_hash": info_hash, "peer_id": peer_id or b"-HARNESS-" + os.urandom(6).hex().encode()[:11],
             "port": port, "uploaded": 0, "downloaded": 0, "left": left, "compact": 1, "numwant": numwant}
        if event:
            q["event"] = event
        r = self._get("/announce?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote))
        if b"peers" in r and isinstance(r[b"peers"], bytes):
            r[b"peer_list"] = parse_compact_peers(r[b"peers"])
        return r

    def scrape(self, info_hash):
        """(complete, incomplete) or None."""
        try:
            r = self._get("/scrape?info_hash=" + urllib.parse.quote(info_hash))
        except Exception:
            return None
        f = r.get(b"files", {}).get(info_hash)
        if f is None:
            return (0, 0)
        return f.get(b"complete", 0), f.get(b"incomplete", 0)

    def wait_registered(self, info_hash, n=1, timeout=20):
        """Wait until at least n peers of info_hash are known to the tracker."""
        ok = wait_for(lambda: (lambda s: s is not None and s[0] + s[1] >= n)(self.scrape(info_hash)), timeout, 0.2)
        if not ok:
            raise HarnessError("tracker lists %r peers for %s after %ds (want %d)"
                               % (self.scrape(info_hash), info_hash.hex(), timeout, n))

    def stop(self):
        if self.proc:
            self.proc.stop()


def socket_owner(local_port, remote_port):
    """(pid, comm) of the process owning the TCP socket 127.0.0.1:local_port -> :remote_port."""
    inode = None
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(fn).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and int(f[1].rsplit(":", 1)[1], 16) == local_port \
                    and int(f[2].rsplit(":", 1)[1], 16) == remote_port:
                inode = f[9]
                break
        if inode:
            break
    if not inode or inode == "0":
        return None, None
    target = "socket:[%s]" % inode
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == target:
                    return int(pid), open("/proc/%s/comm" % pid).read().strip()
        except OSError:
            continue
    return None, None


class CanaryTracker:
    """Listens where a torrent's announce URL points although no tracker should be used
    (--no-tracker): records every HTTP request with the pid/name of the process that sent it,
    and answers with a tracker failure."""

    def __init__(self, port=None):
        import threading
        self.port = port or free_port()
        self.requests = []          # (pid, comm, request line)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def announce_url(self):
        return "http://%s:%d/announce" % (LOOPBACK, self.port)

    def _run(self):
        while not self._stop:
            try:
                conn, addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                pid, comm = socket_owner(addr[1], self.port)
                conn.settimeout(2)
                data = b""
                try:
                    while b"\r\n\r\n" not in data and len(data) < 8192:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    body = bencode({"failure reason": "no tracker should be contacted in this test"})
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                except OSError:
                    pass
                line = data.split(b"\r\n", 1)[0].decode("latin-1")[:200]
                self.requests.append((pid, comm, line))

    def requests_by(self, pid):
        return [r for r in self.requests if r[0] == pid]

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


# ------------------------------------------------------------------------------------ seeders
class Seeder:
    """Base: a real client seeding torrent from datadir (the save path) on 127.0.0.1:port."""
    kind = "?"
    needs = ()

    def __init__(self, session, torrent, datadir, port=None, tracker=None, name=None):
        self.session, self.torrent, self.datadir = session, torrent, datadir
        self.port = port or free_port()
        self.tracker = tracker           # OpenTracker or None (= no tracker: direct connections only)
        self.name = name or "seed-%s-%d" % (self.kind, self.port)
        self.home = session.mkdir(self.name)
        self.proc = None

    @property
    def endpoint(self):
        return "%s:%d" % (LOOPBACK, self.port)

    def command(self):
        raise NotImplementedError

    def env(self):
        return child_env()

    def client_ready(self):
        raise NotImplementedError

    def start(self, timeout=30):
        require(self.needs)
        self.proc = self.session.spawn(self.name, self.command(), cwd=self.home, env=self.env())
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout):
        t0 = time.monotonic()
        ok = wait_for(lambda: not self.proc.running() or (listening_on_loopback(self.port) and self.client_ready()),
                      timeout, 0.1)
        if not ok or not self.proc.running():
            why = "exited with %s" % self.proc.returncode if not self.proc.running() else "not ready after %ds" % timeout
            raise HarnessError("%s seeder %s: %s\n--- log tail ---\n%s"
                               % (self.kind, self.endpoint, why, self.log_tail()))
        others = [a for a in listen_addresses(self.port) if a not in (LOOPBACK, "::1")]
        if others:
            raise HarnessError("%s seeder listens on %s, not only on loopback" % (self.kind, others))
        if self.tracker:
            left = max(5.0, timeout - (time.monotonic() - t0))
            self.tracker.wait_registered(self.torrent.info_hash, 1, left)
        log("%s seeder ready on %s (%.1fs)" % (self.kind, self.endpoint, time.monotonic() - self.proc.t_start))

    def log_tail(self, lines=30):
        return tail(self.proc.output(), lines) if self.proc else ""

    def stop(self):
        if self.proc:
            self.proc.stop()


class LibtorrentSeeder(Seeder):
    kind = "libtorrent"
    needs = ("libtorrent",)

    def __init__(self, *a, upload_limit=0, **kw):
        super().__init__(*a, **kw)
        self.upload_limit = upload_limit

    def command(self):
        c = [PY, os.path.join(HERE, "harness.py"), "lt-seed", self.torrent.path, self.datadir,
             "--port", str(self.port)]
        if not self.tracker:
            c.append("--no-tracker")
        if self.upload_limit:
            c += ["--upload-limit", str(self.upload_limit)]
        return c

    def client_ready(self):
        return "READY" in self.proc.output()


# aria2c: no config file, bound to 127.0.0.1, no DHT/LPD/PEX, plain or MSE handshakes accepted
ARIA2_BASE = ["--no-conf", "--no-netrc=true", "--interface=" + LOOPBACK, "--disable-ipv6=true",
              "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
              "--enable-peer-exchange=false", "--bt-require-crypto=false", "--bt-min-crypto-level=plain",
              "--file-allocation=none", "--enable-color=false", "--follow-torrent=false",
              "--auto-save-interval=0", "--save-not-found=false", "--rpc-save-upload-metadata=false",
              "--bt-save-metadata=false", "--bt-load-saved-metadata=false"]


class Aria2Seeder(Seeder):
    """aria2c seeding forever from existing data without hashing it first; re-announces every
    2 s so it learns (and dials) new leechers quickly."""
    kind = "aria2"
    needs = ("aria2c",)

    def command(self):
        c = ["aria2c"] + ARIA2_BASE + [
            "--dir=" + self.datadir, "--listen-port=%d" % self.port, "--log=" + os.path.join(self.home, "aria2.log"),
            "--log-level=info", "--seed-ratio=0.0", "--bt-seed-unverified=true", "--check-integrity=false",
            "--bt-tracker-interval=2", "--summary-interval=1", "--console-log-level=notice"]
        if not self.tracker:
            c.append("--bt-exclude-tracker=*")
        return c + [self.torrent.path]

    def client_ready(self):
        return "SEED(" in self.proc.output()

    _CHATTER = re.compile(r"index=|choke round|Progress Summary|^[=-]+$|^FILE: ")

    def log_tail(self, lines=30):
        """aria2.log (info level) without the per-block chatter, plus its last status line."""
        if not self.proc:
            return ""
        try:
            text = open(os.path.join(self.home, "aria2.log"), errors="replace").read()
        except OSError:
            text = ""
        keep = [ln for ln in text.splitlines() if ln[:2] == "20" and not self._CHATTER.search(ln)]
        status = [ln for ln in self.proc.output().splitlines() if ln.startswith("[#")]
        return "\n".join(keep[-lines:] + (["status: " + status[-1]] if status else []))


class TransmissionSeeder(Seeder):
    """transmission-cli 3.00.  No CLI flags for DHT/LPD/PEX/uTP/bind: settings.json in -g DIR.
    It verifies the data at start ("Seeding" once done), accepts incoming loopback connections but
    never dials 127.0.0.0/8 itself, waits ~10 s before the first unchoke and keeps one peer per IP.
    Status goes to stdout with \\r and block buffering: run under stdbuf -o0."""
    kind = "transmission"
    needs = ("transmission-cli", "stdbuf")

    def command(self):
        cfg = self.session.mkdir(self.name, "config")
        settings = {
            "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False, "utp-enabled": False,
            "port-forwarding-enabled": False, "bind-address-ipv4": LOOPBACK, "bind-address-ipv6": "::1",
            "peer-port": self.port, "peer-port-random-on-start": False, "encryption": 1,
            "speed-limit-down-enabled": False, "speed-limit-up-enabled": False, "alt-speed-enabled": False,
            "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False, "blocklist-enabled": False,
            "rename-partial-files": False, "incomplete-dir-enabled": False, "start-added-torrents": True,
            "download-dir": self.datadir, "message-level": 2, "rpc-enabled": False,
            "scrape-paused-torrents-enabled": False, "watch-dir-enabled": False,
        }
        with open(os.path.join(cfg, "settings.json"), "w") as f:
            json.dump(settings, f, indent=1)
        return ["stdbuf", "-o0", "-e0", "transmission-cli", "-g", cfg, "-p", str(self.port), "-w", self.datadir,
                "-ep", "-M", "-D", "-U", self.torrent.path]

    def client_ready(self):
        return "Seeding" in self.proc.output()[-4000:]


SEEDERS = {"libtorrent": LibtorrentSeeder, "aria2": Aria2Seeder, "transmission": TransmissionSeeder}


class HostileSeeder(Seeder):
    """hostile_seeder.py: scripted pure-Python peer sending wrong bytes for chosen pieces."""
    kind = "hostile"

    def __init__(self, *a, corrupt_pieces=None, corrupt_fraction=None, rate_kib=None, **kw):
        super().__init__(*a, **kw)
        self.corrupt_pieces, self.corrupt_fraction = corrupt_pieces, corrupt_fraction
        self.rate_kib = rate_kib

    def command(self):
        c = [PY, os.path.join(HERE, "hostile_seeder.py"), self.torrent.path, self.datadir, "--port", str(self.port)]
        if self.corrupt_pieces is not None:
            c += ["--corrupt-pieces", ",".join(str(i) for i in self.corrupt_pieces)]
        if self.corrupt_fraction is not None:
            c += ["--corrupt-fraction", str(self.corrupt_fraction)]
        if self.rate_kib is not None:
            c += ["--rate-kib", str(self.rate_kib)]
        return c

    def client_ready(self):
        return "READY" in self.proc.output()

    def stats(self):
        """(blocks sent, corrupt blocks sent) from its log."""
        sent = corrupt = 0
        for m in re.finditer(r"STATS blocks=(\d+) corrupt_blocks=(\d+)", self.proc.output()):
            sent, corrupt = int(m.group(1)), int(m.group(2))
        return sent, corrupt


# ------------------------------------------------------------------------------------ leechers
class Downloader:
    """Base: a real client downloading torrent into outdir, listening on 127.0.0.1:port.
    peers: endpoints it is told to dial (libtorrent only: aria2c and transmission-cli cannot be
    told to dial; they accept incoming connections, so the seeder has to dial them).
    tracker: OpenTracker or None (no tracker: the torrent's announce URL is never used -- except by
    transmission-cli, which has no switch for that; point the URL at a CanaryTracker).
    Every subclass exits by itself once the download is complete."""
    kind = "?"
    needs = ()

    def __init__(self, session, torrent, outdir, port=None, tracker=None, peers=(), name=None, timeout=60):
        self.session, self.torrent, self.outdir = session, torrent, outdir
        self.port = port or free_port()
        self.tracker, self.peers, self.timeout = tracker, list(peers), timeout
        self.name = name or "leech-%s-%d" % (self.kind, self.port)
        self.home = session.mkdir(self.name)
        self.proc = None
        self.t_start = self.t_done = self.wall_start = None

    @property
    def endpoint(self):
        return "%s:%d" % (LOOPBACK, self.port)

    def command(self):
        raise NotImplementedError

    def env(self):
        return child_env()

    def start(self, listen_timeout=20):
        """Start it and wait for its LISTEN socket on 127.0.0.1:port (only there)."""
        require(self.needs)
        os.makedirs(self.outdir, exist_ok=True)
        self.wall_start = time.time()
        self.proc = self.session.spawn(self.name, self.command(), cwd=self.home, env=self.env())
        self.t_start = self.proc.t_start
        ok = wait_for(lambda: not self.proc.running() or listening_on_loopback(self.port), listen_timeout, 0.05)
        if not self.proc.running() and self.completed():
            log("%s leecher finished before its listen check" % self.kind)   # a fast local download
            return self
        if not ok or not self.proc.running():
            why = "exited with %s" % self.proc.returncode if not self.proc.running() \
                else "not listening on %s after %ds" % (self.endpoint, listen_timeout)
            raise HarnessError("%s leecher: %s\n--- log tail ---\n%s" % (self.kind, why, self.log_tail()))
        others = [a for a in listen_addresses(self.port) if a not in (LOOPBACK, "::1")]
        if others:
            raise HarnessError("%s leecher listens on %s, not only on loopback" % (self.kind, others))
        log("%s leecher listening on %s" % (self.kind, self.endpoint))
        return self

    def completed(self):
        """True once the client itself says the download is complete."""
        raise NotImplementedError

    def wait(self, timeout):
        """Wait until it exits (it does so by itself after completing); returns its exit status or
        None after timeout seconds (then it is still running).  Records t_done, the moment the
        completion was first seen (for rates)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.t_done is None and self.completed():
                self.t_done = self._completion_time()
            rc = self.proc.wait(min(0.1, max(0.005, deadline - time.monotonic())))
            if rc is not None:
                if self.t_done is None and self.completed():
                    self.t_done = self._completion_time()
                return rc
            if time.monotonic() >= deadline:
                return None

    def _completion_time(self):
        return time.monotonic()

    @property
    def elapsed(self):
        """Seconds from start to completion (None if not complete)."""
        return None if self.t_done is None else self.t_done - self.t_start

    def log_tail(self, lines=30):
        return tail(self.proc.output(), lines) if self.proc else ""

    def stop(self):
        if self.proc:
            self.proc.stop()


class LibtorrentDownloader(Downloader):
    """harness.py lt-download (libtorrent 2.0, multiple connections per IP allowed); dials peers."""
    kind = "libtorrent"
    needs = ("libtorrent",)

    def command(self):
        c = [PY, os.path.join(HERE, "harness.py"), "lt-download", self.torrent.path, "-o", self.outdir,
             "--port", str(self.port), "--timeout", str(self.timeout)]
        for p in self.peers:
            c += ["--peer", p]
        if not self.tracker:
            c.append("--no-tracker")
        return c

    def completed(self):
        return any(ln.startswith("complete:") for ln in self.proc.output().splitlines())


class Aria2Downloader(Downloader):
    """aria2c --seed-time=0 (exits once complete, status 0).  It cannot be told to dial a peer:
    without a tracker the seeder must dial it; with one it re-announces every 2 s and dials what
    the tracker returns."""
    kind = "aria2"
    needs = ("aria2c",)

    def command(self):
        if self.peers:
            raise HarnessError("aria2c cannot be told to dial a peer")
        c = ["aria2c"] + ARIA2_BASE + [
            "--dir=" + self.outdir, "--listen-port=%d" % self.port, "--log=" + os.path.join(self.home, "aria2.log"),
            "--log-level=info", "--seed-time=0", "--bt-tracker-interval=2", "--allow-overwrite=true",
            "--auto-file-renaming=false", "--summary-interval=1", "--console-log-level=notice",
            "--stop=%d" % int(self.timeout)]
        if not self.tracker:
            c.append("--bt-exclude-tracker=*")
        return c + [self.torrent.path]

    def completed(self):
        return "Download complete" in self.proc.output() or (
            self.proc.returncode == 0 and "(OK):download completed" in self.proc.output())

    _CHATTER = Aria2Seeder._CHATTER
    log_tail = Aria2Seeder.log_tail


class TransmissionDownloader(Downloader):
    """transmission-cli 3.00 leecher.  It never dials 127.0.0.0/8 (the seeder must dial it), waits
    ~10 s before showing interest, keeps one peer per IP, does not create 0-byte files and exits
    only by signal: -f finish.sh (run as its child on completion) records the time and sends
    SIGTERM to it.  It always announces to the torrent's tracker (no switch against that)."""
    kind = "transmission"
    needs = ("transmission-cli", "stdbuf")
    creates_empty_files = False

    def command(self):
        if self.peers:
            raise HarnessError("transmission-cli cannot be told to dial a peer")
        cfg = self.session.mkdir(self.name, "config")
        settings = {
            "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False, "utp-enabled": False,
            "port-forwarding-enabled": False, "bind-address-ipv4": LOOPBACK, "bind-address-ipv6": "::1",
            "peer-port": self.port, "peer-port-random-on-start": False, "encryption": 1,
            "speed-limit-down-enabled": False, "speed-limit-up-enabled": False, "alt-speed-enabled": False,
            "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False, "blocklist-enabled": False,
            "rename-partial-files": False, "incomplete-dir-enabled": False, "start-added-torrents": True,
            "download-dir": self.outdir, "message-level": 2, "rpc-enabled": False,
            "scrape-paused-torrents-enabled": False, "watch-dir-enabled": False,
            "preallocation": 0,     # so the blocks allocated on disk show the progress
        }
        with open(os.path.join(cfg, "settings.json"), "w") as f:
            json.dump(settings, f, indent=1)
        self.done_file = os.path.join(self.home, "done")
        fin = os.path.join(self.home, "finish.sh")
        with open(fin, "w") as f:
            f.write("#!/bin/sh\ndate +%%s.%%N > '%s.tmp' && mv '%s.tmp' '%s'\nkill -TERM $PPID\n"
                    % (self.done_file, self.done_file, self.done_file))
        os.chmod(fin, 0o755)
        return ["stdbuf", "-o0", "-e0", "transmission-cli", "-g", cfg, "-p", str(self.port), "-w", self.outdir,
                "-ep", "-M", "-D", "-U", "-f", fin, self.torrent.path]

    def completed(self):
        return os.path.exists(self.done_file)

    def _completion_time(self):
        try:   # the finish script's wall-clock timestamp, mapped onto the monotonic clock
            return self.t_start + float(open(self.done_file).read()) - self.wall_start
        except (OSError, ValueError):
            return time.monotonic()


def rtorrent_rpc(sock_path, method, *args, timeout=10):
    """One XML-RPC call to rtorrent over its SCGI unix socket; returns the result."""
    import xmlrpc.client
    body = xmlrpc.client.dumps(tuple(args), method).encode()
    hdr = b"CONTENT_LENGTH\0%d\0SCGI\x001\0REQUEST_METHOD\0POST\0" % len(body)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(b"%d:%s,%s" % (len(hdr), hdr, body))
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    return xmlrpc.client.loads(data.split(b"\r\n\r\n", 1)[1])[0][0]


class RtorrentDownloader(Downloader):
    """rtorrent 0.9.8 (libtorrent 0.13.8 inside) as a daemon, driven by XML-RPC over an SCGI unix
    socket.  It has no fast extension (BEP 6) and ignores BEP 10 reqq: a request a seeder drops
    is waited for forever.  It keys peers by IP only, so with every peer on 127.0.0.1 a tracker
    reply (which lists the requester itself) can make it drop the seeder: the torrent is loaded
    stopped, its trackers are switched off, then d.start and add_peer for each of `peers`
    (it dials them; re-added while it has no peer).  It never exits by itself: completed()
    asks it over RPC and, the first time it says complete, shuts it down (so it "exits once
    complete" like the other leechers).  Encryption: it tries MSE first and retries in
    plaintext, like the lab's setup."""
    kind = "rtorrent"
    needs = ("rtorrent",)

    def sock(self):
        return os.path.join(self.home, "rpc.sock")

    def command(self):
        session_dir = self.session.mkdir(self.name, "session")
        rc = "\n".join([
            "session.path.set = " + session_dir,
            "session.use_lock.set = no",
            "directory.default.set = " + self.outdir,
            "network.port_range.set = %d-%d" % (self.port, self.port),
            "network.port_random.set = no",
            "network.bind_address.set = " + LOOPBACK,
            "dht.mode.set = disable",
            "protocol.pex.set = no",
            "trackers.use_udp.set = no",
            "protocol.encryption.set = allow_incoming,try_outgoing,enable_retry",
            "throttle.global_down.max_rate.set_kb = 0",
            "throttle.global_up.max_rate.set_kb = 0",
            "pieces.hash.on_completion.set = no",     # every chunk was checked on arrival
            "system.daemon.set = true",
            "network.scgi.open_local = " + self.sock(),
            'log.open_file = "main", ' + os.path.join(self.home, "rtorrent.log"),
            'log.add_output = "info", "main"',
            # loaded stopped: the trackers are switched off before d.start (see start())
            'load.verbose = "%s", "d.directory.set=%s"' % (self.torrent.path, self.outdir),
            ""])
        with open(os.path.join(self.home, "rtorrent.rc"), "w") as f:
            f.write(rc)
        self._complete = False
        self._last_kick = 0.0
        return ["rtorrent", "-n", "-o", "import=" + os.path.join(self.home, "rtorrent.rc")]

    def rpc(self, method, *args):
        return rtorrent_rpc(self.sock(), method, *args)

    def _d(self, method):
        return self.rpc(method, self.torrent.info_hash_hex.upper())

    def start(self, listen_timeout=20):
        """Start it, wait until the torrent is loaded (RPC), switch its trackers off, d.start,
        wait for its LISTEN socket on 127.0.0.1:port only (it opens it once a torrent is
        active), then add_peer."""
        require(self.needs)
        os.makedirs(self.outdir, exist_ok=True)
        self.wall_start = time.time()
        self.proc = self.session.spawn(self.name, self.command(), cwd=self.home, env=self.env())
        self.t_start = self.proc.t_start

        def loaded():
            try:
                self._d("d.complete")
                return True
            except Exception:
                return not self.proc.running()
        if not wait_for(loaded, listen_timeout, 0.1) or not self.proc.running():
            raise HarnessError("rtorrent leecher: %s\n--- log tail ---\n%s" % (
                "exited with %s" % self.proc.returncode if not self.proc.running()
                else "the torrent is not loaded (RPC) after %ds" % listen_timeout, self.log_tail()))
        self.rpc("t.multicall", self.torrent.info_hash_hex.upper(), "", "t.is_enabled.set=0")
        self._d("d.start")
        # its socket is an IPv6 one bound to the v4-mapped 127.0.0.1
        mine = (LOOPBACK, "::ffff:" + LOOPBACK)
        if not wait_for(lambda: not self.proc.running() or any(a in mine for a in listen_addresses(self.port)),
                        listen_timeout, 0.05) or not self.proc.running():
            raise HarnessError("rtorrent leecher: %s\n--- log tail ---\n%s" % (
                "exited with %s" % self.proc.returncode if not self.proc.running()
                else "not listening on %s after %ds" % (self.endpoint, listen_timeout), self.log_tail()))
        others = [a for a in listen_addresses(self.port) if a not in mine]
        if others:
            raise HarnessError("rtorrent leecher listens on %s, not only on loopback" % others)
        log("rtorrent leecher listening on %s" % self.endpoint)
        self._kick(force=True)
        return self

    def _kick(self, force=False):
        """add_peer for every peer, at start and again while it has none (the first add can lose
        a race with the hash check at load)."""
        if not self.peers or (not force and time.monotonic() - self._last_kick < 3):
            return
        self._last_kick = time.monotonic()
        if force or self._d("d.peers_connected") == 0:
            for p in self.peers:
                self.rpc("add_peer", self.torrent.info_hash_hex.upper(), p)

    def completed(self):
        if self._complete:
            return True
        if not self.proc or not self.proc.running():
            return False
        try:
            self._kick()
            self._complete = self._d("d.complete") == 1
        except Exception:
            return False
        if self._complete:
            try:
                self.rpc("system.shutdown.normal")
            except Exception:
                self.proc.stop()
        return self._complete

    def progress(self):
        """(bytes done, peers connected) as rtorrent reports them, for diagnostics."""
        try:
            return self._d("d.completed_bytes"), self._d("d.peers_connected")
        except Exception as e:
            return "unavailable (%s)" % e

    def log_tail(self, lines=30):
        try:
            text = open(os.path.join(self.home, "rtorrent.log"), errors="replace").read()
        except OSError:
            text = ""
        return tail(text + (self.proc.output() if self.proc else ""), lines)


DOWNLOADERS = {"libtorrent": LibtorrentDownloader, "aria2": Aria2Downloader, "transmission": TransmissionDownloader,
               "rtorrent": RtorrentDownloader}


# ------------------------------------------------------------------------------------ libtorrent peers
def _lt_session(lt, port, upload_limit=0):
    s = {
        "listen_interfaces": "%s:%d" % (LOOPBACK, port),
        "outgoing_interfaces": LOOPBACK,
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "dht_bootstrap_nodes": "",
        "enable_incoming_utp": False, "enable_outgoing_utp": False,
        "enable_incoming_tcp": True, "enable_outgoing_tcp": True,
        "allow_multiple_connections_per_ip": True,     # every peer here is 127.0.0.1
        "in_enc_policy": int(lt.enc_policy.enabled), "out_enc_policy": int(lt.enc_policy.enabled),
        "allowed_enc_level": int(lt.enc_level.both), "prefer_rc4": False,
        "upload_rate_limit": int(upload_limit),
        "user_agent": "actorrent-interop-libtorrent/" + lt.__version__,
        "alert_mask": int(lt.alert.category_t.status_notification | lt.alert.category_t.error_notification
                          | lt.alert.category_t.tracker_notification | lt.alert.category_t.storage_notification
                          | lt.alert.category_t.peer_notification),
        "min_announce_interval": 1,
    }
    ses = lt.session(s)
    if upload_limit:
        # loopback peers are in libtorrent's unlimited "local" peer class: put everyone in the
        # global class so the rate limit applies to them
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(f)
    return ses


def _lt_add(lt, ses, torrent_path, save_path, seed, no_tracker):
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent_path)
    atp.save_path = save_path
    atp.flags = (atp.flags | lt.torrent_flags.paused) & ~lt.torrent_flags.auto_managed
    if seed:
        atp.flags |= lt.torrent_flags.seed_mode    # no up-front hash check; verified lazily
    h = ses.add_torrent(atp)
    if no_tracker:
        h.replace_trackers([])
    h.resume()
    return h, atp.ti


def lt_main(argv):
    import argparse
    import libtorrent as lt

    ap = argparse.ArgumentParser(prog="harness.py")
    sp = ap.add_subparsers(dest="cmd", required=True)
    s = sp.add_parser("lt-seed")
    s.add_argument("torrent")
    s.add_argument("datadir")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--no-tracker", action="store_true")
    s.add_argument("--upload-limit", type=int, default=0, help="bytes/s, 0 = unlimited")
    d = sp.add_parser("lt-download")
    d.add_argument("torrent")
    d.add_argument("-o", "--out", required=True)
    d.add_argument("--peer", action="append", default=[])
    d.add_argument("--no-tracker", action="store_true")
    d.add_argument("--timeout", type=float, default=60)
    d.add_argument("--port", type=int, default=0)
    a = ap.parse_args(argv)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    def say(*m):
        print("[lt %s]" % time.strftime("%H:%M:%S"), *m, file=sys.stderr, flush=True)

    if a.cmd == "lt-seed":
        ses = _lt_session(lt, a.port, a.upload_limit)
        h, ti = _lt_add(lt, ses, a.torrent, a.datadir, True, a.no_tracker)
        announced = a.no_tracker
        ready = False
        say("seeding %s from %s on %s:%d" % (ti.name(), a.datadir, LOOPBACK, ses.listen_port()))
        last = 0
        while not stop:
            for al in ses.pop_alerts():
                if isinstance(al, lt.tracker_reply_alert):
                    announced = True
                    say("tracker reply: %d peers" % al.num_peers)
                elif isinstance(al, (lt.tracker_error_alert, lt.file_error_alert, lt.torrent_error_alert,
                                     lt.listen_failed_alert, lt.hash_failed_alert)):
                    say("ERROR", al.message())
                    if isinstance(al, (lt.listen_failed_alert, lt.file_error_alert)):
                        return 3
                elif isinstance(al, (lt.peer_connect_alert, lt.peer_disconnected_alert)):
                    say(al.message())
            st = h.status()
            if not ready and st.is_seeding and announced:
                ready = True
                print("READY %d" % ses.listen_port(), flush=True)
            if time.monotonic() - last > 5:
                last = time.monotonic()
                say("peers %d  uploaded %d bytes" % (st.num_peers, st.total_payload_upload))
            ses.wait_for_alert(250)
        return 0

    # lt-download: same interface and markers as actorrent
    os.makedirs(a.out, exist_ok=True)
    ses = _lt_session(lt, a.port)
    h, ti = _lt_add(lt, ses, a.torrent, a.out, False, a.no_tracker)
    for p in a.peer:
        host, port = p.rsplit(":", 1)
        h.connect_peer((host, int(port)), 0)
    t0 = time.monotonic()
    last = 0
    while not stop:
        for al in ses.pop_alerts():
            if isinstance(al, lt.hash_failed_alert):
                say("piece %d: hash check failed" % al.piece_index)
            elif isinstance(al, lt.peer_ban_alert):
                say("peer %s banned" % (al.endpoint,))
            elif isinstance(al, (lt.tracker_error_alert, lt.file_error_alert, lt.listen_failed_alert)):
                say("error:", al.message())
        st = h.status()
        if st.is_seeding:
            el = time.monotonic() - t0
            print("complete: %d bytes in %.2fs" % (ti.total_size(), el), flush=True)
            return 0
        if time.monotonic() - last > 2:
            last = time.monotonic()
            say("%.1f%% peers %d" % (st.progress * 100, st.num_peers))
        if time.monotonic() - t0 > a.timeout:
            say("timeout after %.0fs at %.1f%%" % (a.timeout, st.progress * 100))
            return 2
        ses.wait_for_alert(100)
    return 1


if __name__ == "__main__":
    sys.exit(lt_main(sys.argv[1:]))
