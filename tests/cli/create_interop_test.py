#!/usr/bin/python3
"""`actorrent create` against real clients: the .torrent it writes must be accepted by libtorrent,
Transmission (transmission-show) and aria2 (aria2c --show-files) with the same info-hash that
actorrent printed and that Python computes (SHA-1 of the bencoded info dictionary), and its
piece hashes must match the data (computed here, and re-checked by libtorrent on disk).
No network: libtorrent runs with DHT/LSD/UPnP/NAT-PMP off on 127.0.0.1 and with no trackers.

  create_interop_test.py --actorrent PATH [unittest args, e.g. CreateTest.test_directory]
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "interop"))
import harness as H  # noqa: E402

ACTORRENT = None
KiB = 1024
CREATED = re.compile(r"^created: (.+) info-hash ([0-9a-f]{40}) \((\d+) pieces of (\d+) (KiB|MiB)\)$")

# Nested folders, 0-byte files (second in order, in the middle, in a folder of their own, last),
# a hidden file, sizes that are neither piece- nor block-aligned, a file exactly one piece long,
# a space and UTF-8 in names, and "a-b" beside "a/" (joined-path order differs from per-folder
# order there: '-' < '/').
DIR_SPEC = [
    ("0-empty", 0),
    (".hidden", 4099),
    ("a/b/c/deep.bin", 70001),
    ("a/b/one-piece.bin", 32 * KiB),
    ("a/empty.txt", 0),
    ("a-b.txt", 1),
    ("data/\u00fcn\u00efc\u00f6d\u00e9 \u2713.dat", 100003),
    ("data/zero/also-empty", 0),
    ("odd size.bin", 12345),
    ("zz/zz-empty", 0),
]

LT_CHECK = r"""
import sys, time
sys.path.insert(0, sys.argv[3])
import harness as H
import libtorrent as lt
ti = lt.torrent_info(sys.argv[1])
ih = ti.info_hashes().v1 if hasattr(ti, "info_hashes") else ti.info_hash()
print("hash", str(ih))
print("pieces", ti.num_pieces(), ti.piece_length())
fs = ti.files()
for i in range(fs.num_files()):
    print("file", fs.file_size(i), fs.file_path(i).replace("\\", "/"))
# Hash check of the data on disk: add the torrent (no trackers, nothing else on the network)
# and let libtorrent verify every piece; a torrent whose hashes are wrong never becomes a seed.
ses = H._lt_session(lt, 0)
h, _ = H._lt_add(lt, ses, sys.argv[1], sys.argv[2], False, True)
deadline = time.monotonic() + 60
checked = False
while not checked and time.monotonic() < deadline:
    ses.wait_for_alert(200)
    for a in ses.pop_alerts():
        if isinstance(a, lt.torrent_checked_alert):
            checked = True
        elif isinstance(a, (lt.file_error_alert, lt.torrent_error_alert)):
            print("error", a.message())
    if h.status().errc.value() != 0:
        print("error", h.status().errc.message())
        break
st = h.status()
print("checked", checked)
print("verified", st.num_pieces, "seeding" if st.is_seeding else str(st.state))
"""


def run(*args, timeout=120):
    p = subprocess.run([ACTORRENT, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def tool_env(home):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["HOME"] = home  # nothing of the user's configuration, nothing written into their home
    return env


def need(program):
    path = shutil.which(program)
    if not path:
        raise AssertionError("%s not found: %s" % (program, H.SETUP_HINT))
    return path


def python_info_hash(data):
    """SHA-1 over the exact bytes of the info dictionary, and over its canonical re-encoding."""
    spans = {}
    meta, end = H._bdec(data, 0, spans)
    assert end == len(data)
    s, e = spans[b"info"]
    return hashlib.sha1(data[s:e]).hexdigest(), hashlib.sha1(H.bencode(meta[b"info"])).hexdigest(), meta


class CreateTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="actorrent-create-",
                                    dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.home = os.path.join(self.dir, "home")
        os.mkdir(self.home)

    def tearDown(self):
        subprocess.run(["rm", "-rf", self.dir])

    # ------------------------------------------------------------------ helpers
    def create(self, path, out_name, *extra):
        out = os.path.join(self.dir, out_name)
        rc, stdout, stderr = run("create", path, "-o", out, *extra)
        self.assertEqual(rc, 0, stderr)
        lines = stdout.strip().splitlines()
        self.assertEqual(len(lines), 1, stdout)
        m = CREATED.match(lines[0])
        self.assertIsNotNone(m, lines[0])
        self.assertEqual(m.group(1), out)
        piece = int(m.group(4)) * (KiB if m.group(5) == "KiB" else KiB * KiB)
        with open(out, "rb") as f:
            data = f.read()
        return data, m.group(2), int(m.group(3)), piece

    def check_everyone_agrees(self, torrent_path, data, printed_hash, n_pieces, piece_length,
                              save_path, expected_files):
        """expected_files: [(path as clients show it, size)] in torrent order."""
        raw_hash, canonical_hash, meta = python_info_hash(data)
        self.assertEqual(printed_hash, raw_hash, "actorrent printed a different info-hash")
        self.assertEqual(canonical_hash, raw_hash, "info dictionary is not canonical bencoding")
        info = meta[b"info"]
        self.assertEqual(info[b"piece length"], piece_length)
        self.assertEqual(len(info[b"pieces"]), 20 * n_pieces)
        self.assertNotIn(b"creation date", meta)

        # libtorrent: same hash, same files in the same order, and every piece verifies on disk
        p = subprocess.run([H.PY, "-c", LT_CHECK, torrent_path, save_path, os.path.join(HERE, "..", "interop")],
                           capture_output=True, text=True, timeout=120, env=tool_env(self.home))
        self.assertEqual(p.returncode, 0, "libtorrent: " + p.stderr + "\n" + H.SETUP_HINT)
        out = p.stdout.splitlines()
        self.assertIn("hash " + raw_hash, out, "libtorrent: " + p.stdout)
        self.assertIn("pieces %d %d" % (n_pieces, piece_length), out, p.stdout)
        lt_files = [(l.split(" ", 2)[2], int(l.split(" ", 2)[1])) for l in out if l.startswith("file ")]
        self.assertEqual(lt_files, expected_files)
        self.assertIn("checked True", out, "libtorrent hash check did not finish: " + p.stdout)
        self.assertIn("verified %d seeding" % n_pieces, out, "libtorrent hash check: " + p.stdout)

        # Transmission
        p = subprocess.run([need("transmission-show"), torrent_path], capture_output=True, text=True,
                           timeout=60, env=tool_env(self.home))
        self.assertEqual(p.returncode, 0, "transmission-show: " + p.stdout + p.stderr)
        m = re.search(r"^\s*Hash:\s*([0-9a-fA-F]{40})\s*$", p.stdout, re.M)
        self.assertIsNotNone(m, "transmission-show: " + p.stdout)
        self.assertEqual(m.group(1).lower(), raw_hash, "transmission-show")
        m = re.search(r"^\s*Piece Count:\s*(\d+)\s*$", p.stdout, re.M)
        self.assertIsNotNone(m, p.stdout)
        self.assertEqual(int(m.group(1)), n_pieces, "transmission-show")

        # aria2
        p = subprocess.run([need("aria2c"), "--no-conf=true", "--show-files=true", torrent_path],
                           capture_output=True, text=True, timeout=60, env=tool_env(self.home),
                           cwd=self.home)
        self.assertEqual(p.returncode, 0, "aria2c: " + p.stdout + p.stderr)
        m = re.search(r"^Info Hash:\s*([0-9a-fA-F]{40})\s*$", p.stdout, re.M)
        self.assertIsNotNone(m, "aria2c: " + p.stdout)
        self.assertEqual(m.group(1).lower(), raw_hash, "aria2c")
        m = re.search(r"^The Number of Pieces:\s*(\d+)\s*$", p.stdout, re.M)
        self.assertIsNotNone(m, p.stdout)
        self.assertEqual(int(m.group(1)), n_pieces, "aria2c")
        return meta

    def check_pieces(self, meta, paths):
        """Piece hashes against the files' bytes, concatenated in torrent order (Python only)."""
        info = meta[b"info"]
        P = info[b"piece length"]
        stream = b""
        for path in paths:
            with open(path, "rb") as f:
                stream += f.read()
        want = [hashlib.sha1(stream[i:i + P]).digest() for i in range(0, len(stream), P)]
        got = [info[b"pieces"][i:i + 20] for i in range(0, len(info[b"pieces"]), 20)]
        self.assertEqual(len(got), len(want))
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertEqual(g, w, "piece %d" % i)

    # ------------------------------------------------------------------ cases
    def test_directory(self):
        root = os.path.join(self.dir, "src")
        pl = H.make_payload(root, "shared dir", files=DIR_SPEC, seed="create")
        path = os.path.join(root, "shared dir")
        t = os.path.join(self.dir, "dir.torrent")
        data, ih, n, P = self.create(path, "dir.torrent", "--piece-size", "32K",
                                     "--announce", "http://127.0.0.1:1/announce", "-q")
        self.assertEqual(P, 32 * KiB)
        total = sum(s for _, s in DIR_SPEC)
        self.assertNotEqual(total % P, 0)
        self.assertEqual(n, (total + P - 1) // P)
        order = sorted((rel for rel, _ in DIR_SPEC), key=lambda r: r.encode("utf-8"))
        self.assertEqual(order[0], ".hidden")  # '.' < '0'
        self.assertLess(order.index("a-b.txt"), order.index("a/b/c/deep.bin"))
        size = dict(DIR_SPEC)
        meta = self.check_everyone_agrees(t, data, ih, n, P, root,
                                          [("shared dir/" + r, size[r]) for r in order])
        info = meta[b"info"]
        self.assertEqual(info[b"name"], "shared dir".encode())
        self.assertEqual([(b"/".join(f[b"path"]).decode("utf-8"), f[b"length"]) for f in info[b"files"]],
                         [(r, size[r]) for r in order])
        self.assertEqual(meta[b"announce"], b"http://127.0.0.1:1/announce")
        self.assertNotIn(b"announce-list", meta)
        self.check_pieces(meta, [os.path.join(path, *r.split("/")) for r in order])

    def test_single_file(self):
        root = os.path.join(self.dir, "src")
        size = 3 * 1024 * KiB + 1234   # automatic piece size (16 KiB): a short last piece
        H.make_payload(root, "single.bin", size=size, seed="create")
        path = os.path.join(root, "single.bin")
        t = os.path.join(self.dir, "single.torrent")
        data, ih, n, P = self.create(path, "single.torrent", "--private", "--comment", "made by a test")
        self.assertEqual(P, 16 * KiB)
        self.assertEqual(n, (size + P - 1) // P)
        meta = self.check_everyone_agrees(t, data, ih, n, P, root, [("single.bin", size)])
        info = meta[b"info"]
        self.assertEqual(info[b"length"], size)
        self.assertNotIn(b"files", info)
        self.assertEqual(info[b"private"], 1)
        self.assertEqual(meta[b"comment"], b"made by a test")
        self.assertNotIn(b"announce", meta)
        self.check_pieces(meta, [path])

    def test_same_input_gives_identical_bytes(self):
        root = os.path.join(self.dir, "src")
        H.make_payload(root, "d", files=DIR_SPEC, seed="det")
        path = os.path.join(root, "d")
        tiers = ["--announce", "http://127.0.0.1:1/a,http://127.0.0.1:2/a", "--announce", "http://127.0.0.1:3/a"]
        first, ih1, _, _ = self.create(path, "1.torrent", "--piece-size", "65536", *tiers, "-q")
        second, ih2, _, _ = self.create(path + "/", "2.torrent", "--piece-size", "64K", *tiers, "-q")
        self.assertEqual(first, second)
        self.assertEqual(ih1, ih2)
        meta = H.bdecode(first)
        self.assertEqual(meta[b"announce"], b"http://127.0.0.1:1/a")
        self.assertEqual(meta[b"announce-list"],
                         [[b"http://127.0.0.1:1/a", b"http://127.0.0.1:2/a"], [b"http://127.0.0.1:3/a"]])
        # A different piece size is a different torrent (the option is not ignored).
        third, ih3, _, _ = self.create(path, "3.torrent", "--piece-size", "16K", *tiers, "-q")
        self.assertNotEqual(ih3, ih1)

    def test_bad_input_exits_2_and_writes_nothing(self):
        root = os.path.join(self.dir, "src")
        H.make_payload(root, "d", files=[("a.bin", 1000), ("sub/b.bin", 2000)], seed="bad")
        os.symlink(os.path.join(root, "d", "a.bin"), os.path.join(root, "d", "sub", "link.bin"))
        os.makedirs(os.path.join(self.dir, "empty", "sub"))
        cases = {
            "symlink inside": ([os.path.join(root, "d")], "link.bin"),
            "empty directory": ([os.path.join(self.dir, "empty")], "no files"),
            "missing input": ([os.path.join(self.dir, "missing")], "missing"),
            "piece size not a power of two": ([os.path.join(root, "d", "a.bin"), "--piece-size", "100K"], "piece size"),
            "piece size too small": ([os.path.join(root, "d", "a.bin"), "--piece-size", "8K"], "piece size"),
            "piece size garbage": ([os.path.join(root, "d", "a.bin"), "--piece-size", "lots"], "lots"),
        }
        out = os.path.join(self.dir, "out.torrent")
        for label, (args, needle) in cases.items():
            with self.subTest(label):
                rc, stdout, stderr = run("create", *args, "-o", out)
                self.assertEqual(rc, 2, label + ": " + stderr)
                lines = stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, stderr)
                self.assertTrue(lines[0].startswith("error: "), stderr)
                self.assertIn(needle, lines[0])
                self.assertEqual(stdout, "")
                self.assertEqual(sorted(os.listdir(self.dir)), ["empty", "home", "src"])

    def test_unwritable_output_exits_1(self):
        root = os.path.join(self.dir, "src")
        H.make_payload(root, "f.bin", size=5000, seed="io")
        rc, stdout, stderr = run("create", os.path.join(root, "f.bin"), "-o",
                                 os.path.join(self.dir, "no", "such", "dir", "f.torrent"))
        self.assertEqual(rc, 1, stderr)
        self.assertIn("error:", stderr)
        self.assertIn("no/such/dir", stderr)
        self.assertEqual(stdout, "")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--actorrent":
        sys.exit("usage: create_interop_test.py --actorrent PATH [unittest args]")
    ACTORRENT = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
