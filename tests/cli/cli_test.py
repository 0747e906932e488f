#!/usr/bin/python3
"""What the `actorrent` command does with bad input: malformed and unsafe torrents, bad
arguments, nobody to download from. Each case runs the real binary on 127.0.0.1 only.

  cli_test.py --actorrent PATH [unittest args, e.g. CliTest.test_unsafe_paths]
"""
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from harness import bencode  # noqa: E402

ACTORRENT = None
# No test may reach the public DHT routers, even one that listens on every interface.
os.environ.setdefault("ACTORRENT_DHT_NO_DEFAULT_BOOTSTRAP", "1")


def run(*args, timeout=30):
    t0 = time.monotonic()
    p = subprocess.run([ACTORRENT, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def torrent_bytes(name="payload.bin", files=None, piece_length=16384, total=20000, announce=None):
    pieces = (total + piece_length - 1) // piece_length
    info = {"name": name, "piece length": piece_length, "pieces": b"\x11" * 20 * pieces}
    if files is None:
        info["length"] = total
    else:
        info["files"] = [{"length": n, "path": p} for p, n in files]
    meta = {"info": info}
    if announce:
        meta["announce"] = announce
    return bencode(meta), hashlib.sha1(bencode(info)).hexdigest()


class CliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="actorrent-cli-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)

    def tearDown(self):
        subprocess.run(["rm", "-rf", self.dir])

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_info_prints_what_the_torrent_says(self):
        data, ih = torrent_bytes(files=[(["a", "b.bin"], 15000), (["c.bin"], 5000)], total=20000)
        rc, out, err, _ = run("info", self.write("t.torrent", data))
        self.assertEqual(rc, 0, err)
        self.assertIn("info-hash:   " + ih, out)
        self.assertIn("total size:  20000 bytes", out)
        self.assertIn("pieces:      2", out)
        # Files numbered from 1 as `download --select-file` counts them.
        self.assertIn("     1         15000  a/b.bin\n", out)
        self.assertIn("     2          5000  c.bin\n", out)

    def test_malformed_torrents_name_the_byte_offset_and_exit_2(self):
        good, _ = torrent_bytes()
        cases = {
            "truncated": good[:-7],
            "trailing": good + b"x",
            "leading zero": good.replace(b"i16384e", b"i016384e"),
            "not a dict": b"i42e",
            "empty": b"",
        }
        for label, data in cases.items():
            with self.subTest(label):
                rc, out, err, _ = run("info", self.write("bad.torrent", data))
                self.assertEqual(rc, 2, label + ": " + err)
                lines = err.strip().splitlines()
                self.assertEqual(len(lines), 1, label + ": " + err)
                self.assertIn("bad.torrent", lines[0])
                if label != "not a dict":
                    self.assertIn("byte", lines[0], label)
                # download refuses the same file before touching the disk
                out_dir = os.path.join(self.dir, "out-" + label.replace(" ", "_"))
                rc, _, err, _ = run("download", "--listen", "127.0.0.1:0", os.path.join(self.dir, "bad.torrent"), "-o", out_dir,
                                    "--peer", "127.0.0.1:9", "--no-tracker")
                self.assertEqual(rc, 2, err)
                self.assertFalse(os.path.exists(out_dir))

    def test_unreadable_torrent_exits_2(self):
        rc, _, err, _ = run("info", os.path.join(self.dir, "missing.torrent"))
        self.assertEqual(rc, 2)
        self.assertIn("missing.torrent", err)

    def test_unsafe_paths_are_refused_and_nothing_is_created(self):
        cases = {
            "dotdot": dict(files=[(["..", "escape.bin"], 20000)]),
            "nested dotdot": dict(files=[(["a", "..", "..", "escape.bin"], 20000)]),
            "absolute name": dict(name="/tmp/escape.bin"),
            "slash in component": dict(files=[(["a/../../escape.bin"], 20000)]),
            "empty component": dict(files=[(["a", "", "b"], 20000)]),
            "dot name": dict(name=".."),
        }
        for label, kw in cases.items():
            with self.subTest(label):
                data, _ = torrent_bytes(**kw)
                t = self.write("unsafe.torrent", data)
                out_dir = os.path.join(self.dir, "out")
                before = set(os.listdir(self.dir))
                rc, _, err, _ = run("download", "--listen", "127.0.0.1:0", t, "-o", out_dir, "--peer", "127.0.0.1:9",
                                    "--no-tracker")
                self.assertEqual(rc, 2, label + ": " + err)
                self.assertIn("error:", err)
                self.assertEqual(set(os.listdir(self.dir)), before, label + ": something was created")
                self.assertFalse(os.path.exists("/tmp/escape.bin"))

    def test_symlink_in_output_directory_is_refused(self):
        outside = os.path.join(self.dir, "outside")
        os.mkdir(outside)
        out_dir = os.path.join(self.dir, "out")
        os.mkdir(out_dir)
        os.symlink(outside, os.path.join(out_dir, "multi"))
        data, _ = torrent_bytes(name="multi", files=[(["f.bin"], 20000)])
        rc, _, err, _ = run("download", "--listen", "127.0.0.1:0", self.write("t.torrent", data), "-o", out_dir,
                            "--peer", "127.0.0.1:9", "--no-tracker")
        self.assertEqual(rc, 2, err)
        self.assertIn("symbolic link", err)
        self.assertEqual(os.listdir(outside), [])

    def test_no_peers_retries_until_timeout_and_says_why(self):
        # A port on 127.0.0.1 that nobody listens on (bound then closed), and a tracker URL
        # pointing at another such port.
        ports = []
        for _ in range(2):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
            s.close()
        data, _ = torrent_bytes(announce="http://127.0.0.1:%d/announce" % ports[1])
        rc, _, err, elapsed = run("download", "--listen", "127.0.0.1:0", self.write("t.torrent", data), "-o",
                                  os.path.join(self.dir, "out"), "--peer", "127.0.0.1:%d" % ports[0],
                                  "--timeout", "4", "-q")
        self.assertEqual(rc, 3, err)
        self.assertIn("timed out after", err)
        self.assertIn("no peer could be reached", err)
        self.assertGreaterEqual(elapsed, 4)
        self.assertLess(elapsed, 15)

    def start_seed(self, *extra):
        """`actorrent seed` of a fresh 256 KiB file; returns (process, torrent info-hash)."""
        data = os.urandom(256 * 1024)
        self.write("s.bin", data)
        rc, _, err, _ = run("create", os.path.join(self.dir, "s.bin"), "-o",
                            os.path.join(self.dir, "s.torrent"), "-q")
        self.assertEqual(rc, 0, err)
        raw = open(os.path.join(self.dir, "s.torrent"), "rb").read()
        start = raw.index(b"4:info") + 6
        info_hash = hashlib.sha1(raw[start:-1]).digest()
        listen = [] if "--listen" in extra else ["--listen", "127.0.0.1:0"]
        p = subprocess.Popen([ACTORRENT, "seed", os.path.join(self.dir, "s.torrent"), self.dir,
                              "--no-tracker", "-q", *listen, *extra],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        line = p.stdout.readline()
        self.assertTrue(line.startswith("seeding:"), line + p.stderr.read() if not line else line)
        return p, info_hash

    def test_metrics_endpoint_serves_and_cuts_idle_clients(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        _, info_hash = self.start_seed("--metrics-port", str(port))
        time.sleep(1.2)   # the first snapshot is published with the first tick
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            reply = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.0 200 OK"), reply[:80])
        # the session labels every torrent's series with the start of its info-hash
        self.assertIn(b'actorrent_pieces_total{torrent="%s"} 16' % info_hash.hex()[:16].encode(),
                      reply)
        self.assertIn(b"actorrent_session_torrents 1", reply)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /nothing HTTP/1.0\r\n\r\n")
            self.assertTrue(c.recv(100).startswith(b"HTTP/1.0 404"))
        # a client that connects and never asks is cut off, not kept forever
        idle = socket.create_connection(("127.0.0.1", port), timeout=15)
        t0 = time.monotonic()
        self.assertEqual(idle.recv(10), b"")
        self.assertLess(time.monotonic() - t0, 10)
        idle.close()

    def test_listens_and_handshakes_on_ipv6_loopback(self):
        try:
            probe = socket.socket(socket.AF_INET6)
            probe.bind(("::1", 0))
        except OSError as e:
            self.skipTest("no IPv6 loopback here: %s" % e)
        port = probe.getsockname()[1]
        probe.close()
        _, info_hash = self.start_seed("--listen", "::1:%d" % port)
        with socket.create_connection(("::1", port), timeout=5) as c:
            c.sendall(bytes([19]) + b"BitTorrent protocol" + bytes(8) + info_hash + b"-CT0001-123456789012")
            reply = b""
            while len(reply) < 68:
                chunk = c.recv(68 - len(reply))
                if not chunk:
                    break
                reply += chunk
        self.assertEqual(len(reply), 68)
        self.assertEqual(reply[28:48], info_hash)

    def test_signal_stops_within_2s_even_while_an_announce_hangs(self):
        # A "tracker" that accepts the connection and never answers: the announce blocks.
        tracker = socket.socket()
        tracker.bind(("127.0.0.1", 0))
        tracker.listen(8)
        try:
            data, _ = torrent_bytes(announce="http://127.0.0.1:%d/announce" % tracker.getsockname()[1])
            t = self.write("t.torrent", data)
            for sig in (signal.SIGINT, signal.SIGTERM):
                with self.subTest(sig=sig):
                    p = subprocess.Popen([ACTORRENT, "download", "--listen", "127.0.0.1:0", t, "-o", os.path.join(self.dir, "out"), "-q"],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    time.sleep(1.5)  # the announce is under way by now
                    t0 = time.monotonic()
                    p.send_signal(sig)
                    try:
                        _, err = p.communicate(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        self.fail("still running 10 s after the signal")
                    self.assertLess(time.monotonic() - t0, 2.0)
                    self.assertEqual(p.returncode, 130, err)
                    self.assertIn("stopped by", err)
        finally:
            tracker.close()

    def taken_port(self):
        """A socket listening on 127.0.0.1 (closed at cleanup) and its port."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        return s.getsockname()[1]

    def check_taken_port_ends_the_run(self, option):
        data, _ = torrent_bytes()
        t = self.write("t.torrent", data)
        port = self.taken_port()
        value = "127.0.0.1:%d" % port if option == "--listen" else str(port)
        for command in ("download", "seed"):
            with self.subTest(command=command):
                out_dir = os.path.join(self.dir, "out-" + command)
                if command == "download":
                    args = ["download", t, "-o", out_dir, "--peer", "127.0.0.1:9", "--no-tracker"]
                else:
                    os.mkdir(out_dir)
                    with open(os.path.join(out_dir, "payload.bin"), "wb") as f:
                        f.write(bytes(20000))
                    args = ["seed", t, out_dir, "--no-tracker"]
                if option != "--listen":
                    args += ["--listen", "127.0.0.1:0"]
                try:
                    rc, _, err, elapsed = run(*args, option, value, "-q", timeout=10)
                except subprocess.TimeoutExpired:
                    self.fail("still running 10 s after it failed to bind port %d" % port)
                self.assertEqual(rc, 1, err)
                self.assertIn(":%d" % port, err)
                self.assertIn("error:", err)
                self.assertLess(elapsed, 2.0)
                if command == "download":
                    # The port is bound before any file is created.
                    self.assertFalse(os.path.exists(out_dir))

    def test_taken_metrics_port_ends_the_run_at_once(self):
        self.check_taken_port_ends_the_run("--metrics-port")

    def test_taken_listen_port_ends_the_run_at_once(self):
        self.check_taken_port_ends_the_run("--listen")

    # Existing data large enough that checking it takes seconds: 8 sparse files of 768 MiB on
    # tmpfs (holes read as zeros without using memory; hashing is the cost, as with real data).
    BIG_FILES = 8
    BIG_FILE = 768 << 20
    BIG_PIECE = 4 << 20

    def big_torrent(self):
        per_file = self.BIG_FILE // self.BIG_PIECE
        zero_piece = hashlib.sha1(bytes(self.BIG_PIECE)).digest()
        info = {"name": "big", "piece length": self.BIG_PIECE,
                "pieces": zero_piece * (per_file * self.BIG_FILES),
                "files": [{"length": self.BIG_FILE, "path": ["f%d.bin" % i]}
                          for i in range(self.BIG_FILES)]}
        return self.write("big.torrent", bencode({"info": info})), per_file * self.BIG_FILES

    def big_data(self, out_dir):
        subprocess.run(["rm", "-rf", out_dir])
        os.makedirs(os.path.join(out_dir, "big"))
        for i in range(self.BIG_FILES):
            with open(os.path.join(out_dir, "big", "f%d.bin" % i), "wb") as f:
                f.truncate(self.BIG_FILE)

    def signal_during_check(self, args, sig):
        """Starts `args`, signals it once the check of existing data is under way (15 % at
        least), asserts it ends within 1 s of the signal with exit code 130."""
        p = subprocess.Popen([ACTORRENT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        seen = []
        while True:
            line = p.stderr.readline()
            if not line:
                self.fail("ended before the check was under way: " + "".join(seen))
            seen.append(line)
            if line.startswith("checking existing data") and \
                    float(line.split()[3].rstrip("%")) >= 15:
                break
        t0 = time.monotonic()
        p.send_signal(sig)
        try:
            out, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.fail("still running 20 s after the signal")
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 1.0, "took %.2f s after the signal; last progress: %s" %
                        (elapsed, seen[-1]))
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("stopped by " + signal.Signals(sig).name, err)

    def assert_resumed(self, err, pieces):
        """The rerun trusted what the stopped check had verified, hashed the rest, and found
        nothing wrong with the resume data."""
        self.assertNotIn("damaged", err)
        self.assertNotIn("warning", err)
        line = [l for l in err.splitlines() if "existing data:" in l]
        self.assertEqual(len(line), 1, err)
        words = line[0].split("existing data:")[1].split()
        self.assertEqual(words[0:3], [str(pieces), "of", str(pieces)], line[0])
        hashed = int(words[5].lstrip("("))
        self.assertLess(hashed, pieces, "nothing verified before the stop was recorded")

    def test_signal_during_check_of_existing_data_download(self):
        t, pieces = self.big_torrent()
        out_dir = os.path.join(self.dir, "out")
        # One disk thread: the check of 6 GiB takes seconds, long enough to be signalled in.
        args = ["download", "--listen", "127.0.0.1:0", t, "-o", out_dir, "--peer", "127.0.0.1:9",
                "--no-tracker", "--disk-threads", "1", "-v"]
        for sig in (signal.SIGINT, signal.SIGTERM):
            with self.subTest(sig=sig.name):
                self.big_data(out_dir)
                self.signal_during_check(args, sig)
                rc, out, err, _ = run(*args, "-q", timeout=60)
                self.assertEqual(rc, 0, err)
                self.assertIn("complete:", out)
                self.assert_resumed(err, pieces)

    def test_signal_during_check_of_existing_data_seed(self):
        t, pieces = self.big_torrent()
        out_dir = os.path.join(self.dir, "data")
        args = ["seed", "--listen", "127.0.0.1:0", t, out_dir, "--no-tracker", "--disk-threads", "1",
                "-v"]
        for sig in (signal.SIGINT, signal.SIGTERM):
            with self.subTest(sig=sig.name):
                self.big_data(out_dir)
                self.signal_during_check(args, sig)
                p = subprocess.Popen([ACTORRENT, *args, "-q"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
                self.addCleanup(lambda: (p.kill(), p.wait()))
                line = p.stdout.readline()
                p.send_signal(signal.SIGTERM)
                _, err = p.communicate(timeout=20)
                self.assertIn("(%d pieces verified)" % pieces, line, err)
                self.assertEqual(p.returncode, 0, err)
                self.assert_resumed(err, pieces)

    def test_errors_name_the_torrent_path_once(self):
        good, _ = torrent_bytes()
        bad = self.write("bad.torrent", good[:-7])
        missing = os.path.join(self.dir, "missing.torrent")
        for path in (bad, missing):
            for args in (["info", path],
                         ["download", "--listen", "127.0.0.1:0", path, "-o", os.path.join(self.dir, "o"), "--peer",
                          "127.0.0.1:9", "--no-tracker"]):
                with self.subTest(args=args[0], torrent=os.path.basename(path)):
                    rc, _, err, _ = run(*args)
                    self.assertEqual(rc, 2, err)
                    self.assertEqual(err.count(path), 1, err)

    def lt_torrent(self, name, v2_only):
        """A v2-only or hybrid torrent made by libtorrent of the folder self.dir/data/NAME:
        two files whose sizes are not multiples of the piece size, so the hybrid one has BEP 47
        padding files. Returns (torrent path, total file bytes)."""
        root = os.path.join(self.dir, "data")
        os.makedirs(os.path.join(root, name))
        sizes = {"a.bin": 40000, "b.bin": 30000}
        for f, n in sizes.items():
            with open(os.path.join(root, name, f), "wb") as out:
                out.write(os.urandom(n))
        script = (
            "import libtorrent as lt, sys\n"
            "fs = lt.file_storage()\n"
            "lt.add_files(fs, sys.argv[1])\n"
            "ct = lt.create_torrent(fs, 16384, flags=lt.create_torrent.v2_only if sys.argv[3] == '1' else 0)\n"
            "lt.set_piece_hashes(ct, sys.argv[2])\n"
            "open(sys.argv[4], 'wb').write(lt.bencode(ct.generate()))\n")
        t = os.path.join(self.dir, name + ".torrent")
        subprocess.run(["/usr/bin/python3", "-c", script, os.path.join(root, name), root,
                        "1" if v2_only else "0", t], check=True)
        return t, sum(sizes.values())

    def test_v2_only_torrent_is_refused_as_such(self):
        t, _ = self.lt_torrent("v2", v2_only=True)
        for args in (["info", t], ["download", "--listen", "127.0.0.1:0", t, "-o", os.path.join(self.dir, "o"), "--peer",
                                   "127.0.0.1:9", "--no-tracker"]):
            with self.subTest(args=args[0]):
                rc, _, err, _ = run(*args)
                self.assertEqual(rc, 2, err)
                self.assertIn("v2-only torrents (meta version 2) are not supported", err)
                self.assertNotIn("pieces", err)

    def test_hybrid_torrent_sizes_leave_out_padding(self):
        t, size = self.lt_torrent("hybrid", v2_only=False)
        rc, out, err, _ = run("info", t)
        self.assertEqual(rc, 0, err)
        self.assertIn("total size:  %d bytes" % size, out)
        self.assertIn("padding:", out)  # libtorrent did pad: the test means something
        self.assertIn("files:       2\n", out)
        # Padding files are not numbered: the numbers are those --select-file takes.
        self.assertRegex(out, r"\n +1 +\d+  [ab]\.bin\n +2 +\d+  [ab]\.bin\n")
        # The data is already there: the download checks it and completes.
        rc, out, err, _ = run("download", "--listen", "127.0.0.1:0", t, "-o", os.path.join(self.dir, "data"), "--peer",
                              "127.0.0.1:9", "--no-tracker", "-q", timeout=60)
        self.assertEqual(rc, 0, err)
        self.assertIn("complete: hybrid %d bytes" % size, out)

    def test_first_run_over_existing_data_does_not_warn(self):
        t, _ = self.lt_torrent("hybrid", v2_only=False)
        data = os.path.join(self.dir, "data")
        p = subprocess.Popen([ACTORRENT, "seed", "--listen", "127.0.0.1:0", t, data, "--no-tracker", "--no-dht", "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        line = p.stdout.readline()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
        self.assertTrue(line.startswith("seeding:"), line + err)
        self.assertNotIn("warning", err)
        subprocess.run(["rm", "-rf", os.path.join(data, ".actorrent")])
        rc, out, err, _ = run("download", "--listen", "127.0.0.1:0", t, "-o", data, "--peer", "127.0.0.1:9",
                              "--no-tracker", "-q", timeout=60)
        self.assertEqual(rc, 0, err)
        self.assertNotIn("warning", err)
        # A damaged resume file still warns.
        # (the folder also holds the DHT's node table, dht.dat)
        resume = [f for f in os.listdir(os.path.join(data, ".actorrent")) if f.endswith(".resume")][0]
        with open(os.path.join(data, ".actorrent", resume), "r+b") as f:
            f.truncate(10)
        rc, out, err, _ = run("download", "--listen", "127.0.0.1:0", t, "-o", data, "--peer", "127.0.0.1:9",
                              "--no-tracker", "-q", timeout=60)
        self.assertEqual(rc, 0, err)
        self.assertIn("warning", err)
        self.assertIn("checking all data", err)

    def test_seeding_without_a_tty_is_quiet(self):
        data = os.urandom(64 * 1024)
        self.write("s.bin", data)
        rc, _, err, _ = run("create", os.path.join(self.dir, "s.bin"), "-o",
                            os.path.join(self.dir, "s.torrent"), "-q")
        self.assertEqual(rc, 0, err)
        # No -q, stderr is a pipe: plain progress lines.
        p = subprocess.Popen([ACTORRENT, "seed", "--listen", "127.0.0.1:0", os.path.join(self.dir, "s.torrent"), self.dir,
                              "--no-tracker"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        line = p.stdout.readline()
        self.assertTrue(line.startswith("seeding:"), line)
        time.sleep(7)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 0, err)
        lines = [l for l in err.splitlines() if l.startswith("seeding ")]
        # One line when seeding starts; nothing changes afterwards, so nothing more.
        self.assertEqual(len(lines), 1, err)

    def test_default_listen_is_every_interface_6881_to_6889(self):
        # Hold 6881 (when free) so that the default has to move on to the next free port.
        held = socket.socket()
        try:
            held.bind(("0.0.0.0", 6881))
            held.listen(1)
        except OSError:
            held.close()
            held = None
        self.addCleanup(lambda: held and held.close())
        self.write("s.bin", os.urandom(20000))
        rc, _, err, _ = run("create", os.path.join(self.dir, "s.bin"), "-o",
                            os.path.join(self.dir, "s.torrent"), "-q")
        self.assertEqual(rc, 0, err)
        p = subprocess.Popen([ACTORRENT, "seed", os.path.join(self.dir, "s.torrent"), self.dir,
                              "--no-tracker", "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        line = p.stdout.readline()
        if not line:
            err = p.stderr.read()
            if "are all taken" in err:  # other programs on this machine hold 6881-6889
                self.skipTest(err.strip())
            self.fail(err)
        m = re.match(r"seeding: s\.bin on 0\.0\.0\.0:(\d+) ", line)
        self.assertTrue(m, line)
        port = int(m.group(1))
        self.assertTrue(6881 <= port <= 6889, line)
        if held:
            self.assertNotEqual(port, 6881)
        # every interface: reachable on loopback
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

    def test_bad_arguments_exit_2(self):
        data, _ = torrent_bytes()
        t = self.write("t.torrent", data)
        # --no-tracker needs a peer source: --peer, or DHT bootstrap nodes with the DHT on
        for args in (["--peer", "nohostport"], ["--peer", "127.0.0.1:0"], ["--no-tracker"],
                     ["--no-tracker", "--no-dht", "--dht-bootstrap", "127.0.0.1:9"],
                     ["--pipeline", "0", "--peer", "127.0.0.1:9"]):
            with self.subTest(args=args):
                rc, _, err, _ = run("download", "--listen", "127.0.0.1:0", t, "-o", os.path.join(self.dir, "o"), *args)
                self.assertEqual(rc, 2, err)
        # A rate that cannot be read is refused with what was wrong, before anything runs.
        for args, message in ((["--download-limit", "fast"], "--download-limit fast: expected a number"),
                              (["--upload-limit", "10X"], "--upload-limit 10X: unknown unit 'x'"),
                              (["--download-limit", "-1M"], "--download-limit -1M: expected a number"),
                              (["--dht-bootstrap", "nohost"], "--dht-bootstrap nohost: expected HOST:PORT"),
                              (["--dht-bootstrap", "127.0.0.1:0"], "--dht-bootstrap 127.0.0.1:0: expected HOST:PORT")):
            with self.subTest(args=args):
                rc, _, err, _ = run("download", "--listen", "127.0.0.1:0", t, "-o",
                                    os.path.join(self.dir, "o"), "--peer", "127.0.0.1:9", *args)
                self.assertEqual(rc, 2, err)
                self.assertIn("error: " + message, err)
                self.assertFalse(os.path.exists(os.path.join(self.dir, "o")))

    def test_io_and_disk_threads_set_the_thread_count(self):
        """--io-threads and --disk-threads size the process's pools: 2 more I/O threads and 4
        more disk threads are exactly 6 more OS threads (/proc/PID/task), nothing else."""
        self.write("s.bin", os.urandom(64 * 1024))
        t = os.path.join(self.dir, "s.torrent")
        rc, _, err, _ = run("create", os.path.join(self.dir, "s.bin"), "-o", t, "-q")
        self.assertEqual(rc, 0, err)

        def threads_while_seeding(io, disk):
            p = subprocess.Popen([ACTORRENT, "seed", t, self.dir, "--no-tracker", "-q",
                                  "--io-threads", str(io), "--disk-threads", str(disk)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.addCleanup(lambda: (p.kill(), p.wait()))
            line = p.stdout.readline()
            self.assertTrue(line.startswith("seeding:"), line)
            time.sleep(1)  # CAF starts some threads lazily: count once settled
            n = len(os.listdir("/proc/%d/task" % p.pid))
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=20)
            self.assertEqual(p.returncode, 0, err)
            return n

        small = threads_while_seeding(1, 1)
        big = threads_while_seeding(3, 5)
        self.assertEqual(big - small, 6, "threads: %d with 1+1, %d with 3+5" % (small, big))


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--actorrent":
        sys.exit("usage: cli_test.py --actorrent PATH [unittest args]")
    ACTORRENT = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
