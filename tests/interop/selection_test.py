#!/usr/bin/python3
"""File selection against a real libtorrent seeder on 127.0.0.1 (multi-file torrent, pieces of
64 KiB, files not aligned to pieces, so boundary pieces hold bytes of skipped files).

  select_file   --select-file 1,3: files 1 and 3 byte-exact; the others absent (nor their
                folders); the boundary bytes of skipped files are in .actorrent/<hash>.parts.
  select_glob   --select '*.bin' (the file name in any folder): exactly the .bin files.
  wider         --select-file 1, then --select-file 1-3 in the same directory: the second run
                fetches exactly the pieces it was missing (the first run's pieces are trusted
                from resume data, file 2's boundary bytes move from the part file), all three
                byte-exact; the part file is gone once nothing needs it.
  sequential    --sequential: the whole torrent byte-exact.
  bad_selection bad lists and globs exit 2 with a precise message, nothing created.

  selection_test.py --actorrent PATH --case NAME
"""
import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

PIECE = 64 * 1024
# info numbers them 1..5; offsets: 0, 100000, 150000, 350000, 420000; total 450001 (7 pieces)
FILES = [
    ("a/first.bin", 100000),      # pieces 0-1
    ("a/second.txt", 50000),      # pieces 1-2 (shares 1 with file 1, 2 with file 3)
    ("b/third.bin", 200000),      # pieces 2-5
    ("b/c/fourth.txt", 70000),    # pieces 5-6
    ("last.bin", 30001),          # piece 6
]
CASES = ["select_file", "select_glob", "wider", "sequential", "bad_selection"]
TIMEOUT = 120  # the machine is shared: generous


class CaseFailed(Exception):
    pass


def pieces_of(numbers):
    """Pieces touched by the files with these 1-based numbers."""
    out, off = set(), 0
    for i, (_, size) in enumerate(FILES, 1):
        if i in numbers and size:
            out |= set(range(off // PIECE, (off + size - 1) // PIECE + 1))
        off += size
    return out


def piece_size(p):
    total = sum(s for _, s in FILES)
    return min(PIECE, total - p * PIECE)


def subset(payload, numbers):
    sub = H.Payload(payload.root, payload.name,
                    [f for i, f in enumerate(payload.files, 1) if i in numbers],
                    payload.single, payload.seed)
    sub.sha256 = payload.sha256
    return sub


def download(actorrent, torrent, out, seeder, *extra):
    argv = [actorrent, "download", torrent.path, "-o", out, "--peer", seeder.endpoint,
            "--no-tracker", "--listen", "%s:0" % H.LOOPBACK, "--timeout", str(TIMEOUT - 20),
            "-q"] + list(extra)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=H.child_env(), timeout=TIMEOUT)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("complete:")), None)
    if r.returncode != 0 or line is None:
        raise CaseFailed("%s exited %d\nstdout: %s\nstderr: %s"
                         % (" ".join(argv[1:]), r.returncode, r.stdout, H.tail(r.stderr)))
    m = re.search(r"(\d+) bytes downloaded", line)
    if not m:
        raise CaseFailed("no downloaded byte count in %r" % line)
    H.log(line)
    return int(m.group(1)), line


def expect_exact(payload, out, numbers):
    problems = H.verify_download(subset(payload, numbers), out)
    if problems:
        raise CaseFailed("selected files differ: %s" % problems)
    for i, (rel, _) in enumerate(FILES, 1):
        path = payload.path_in(out, rel)
        if i not in numbers and os.path.lexists(path):
            raise CaseFailed("file %d (%s) was not selected but exists" % (i, rel))


def run_case(actorrent, case):
    with H.Session("actorrent-selection-%s-" % case) as sess:
        data = sess.mkdir("data")
        payload = H.make_payload(data, "sel", files=FILES, seed="selection")
        torrent = H.make_torrent(payload, PIECE, sess.path("sel.torrent"))
        assert torrent.num_pieces == 7
        out = sess.mkdir("out")
        part = os.path.join(out, ".actorrent", torrent.info_hash_hex + ".parts")

        if case == "bad_selection":
            bad = [(["--select-file", "1,,3"], '--select-file "1,,3": empty item at column 3'),
                   (["--select-file", "0"], "file number 0 at column 1: files are numbered from 1"),
                   (["--select-file", "5-3"], "range 5-3 at column 1 is reversed"),
                   (["--select-file", "6"], "file number 6 at column 1 is out of range (the "
                                            "torrent has 5 files)"),
                   (["--select-file", "x"], '"x" at column 1 is not a file number'),
                   (["--select", "*.iso"], '--select "*.iso" matches no file of the torrent'),
                   (["--select", "a[b"], "'[' at column 2 is never closed")]
            for args, msg in bad:
                o = os.path.join(sess.dir, "bad-out")
                r = subprocess.run([actorrent, "download", torrent.path, "-o", o, "--peer",
                                    "127.0.0.1:9", "--no-tracker"] + args,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=H.child_env(), timeout=30)
                if r.returncode != 2 or msg not in r.stderr:
                    raise CaseFailed("%s: exit %d, stderr %r; expected exit 2 and %r"
                                     % (args, r.returncode, r.stderr, msg))
                if os.path.exists(o):
                    raise CaseFailed("%s: created %s" % (args, o))
            return

        seeder = H.LibtorrentSeeder(sess, torrent, data).start()
        if case == "select_file":
            got, _ = download(actorrent, torrent, out, seeder, "--select-file", "1,3")
            expect_exact(payload, out, {1, 3})
            if os.path.exists(os.path.join(out, "sel", "b", "c")):
                raise CaseFailed("the folder of the skipped file 4 was created")
            if not os.path.isfile(part):
                raise CaseFailed("no part file %s for the boundary bytes of files 2 and 4" % part)
            want = sum(piece_size(p) for p in pieces_of({1, 3}))
            if got != want:
                raise CaseFailed("downloaded %d bytes; the pieces of files 1 and 3 are %d"
                                 % (got, want))
        elif case == "select_glob":
            download(actorrent, torrent, out, seeder, "--select", "*.bin")
            expect_exact(payload, out, {1, 3, 5})
        elif case == "wider":
            first, _ = download(actorrent, torrent, out, seeder, "--select-file", "1")
            expect_exact(payload, out, {1})
            if first != sum(piece_size(p) for p in pieces_of({1})):
                raise CaseFailed("first run downloaded %d bytes" % first)
            second, _ = download(actorrent, torrent, out, seeder, "--select-file", "1-3")
            expect_exact(payload, out, {1, 2, 3})
            # Only the pieces the first run did not have: its pieces came from resume data
            # (file 2's share of piece 1 from the part file).
            missing = pieces_of({1, 2, 3}) - pieces_of({1})
            want = sum(piece_size(p) for p in missing)
            if second != want:
                raise CaseFailed("second run downloaded %d bytes; the missing pieces %s are %d"
                                 % (second, sorted(missing), want))
            if not os.path.isfile(part):
                raise CaseFailed("part file gone while file 4's share of piece 5 is in it")
            third, _ = download(actorrent, torrent, out, seeder)  # everything
            expect_exact(payload, out, {1, 2, 3, 4, 5})
            want = sum(piece_size(p) for p in pieces_of({4, 5}) - pieces_of({1, 2, 3}))
            if third != want:
                raise CaseFailed("third run downloaded %d bytes, expected %d" % (third, want))
            if os.path.exists(part):
                raise CaseFailed("part file %s left behind with every file selected" % part)
        elif case == "sequential":
            download(actorrent, torrent, out, seeder, "--sequential")
            expect_exact(payload, out, {1, 2, 3, 4, 5})


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", required=True)
    ap.add_argument("--case", required=True, choices=CASES)
    a = ap.parse_args()
    try:
        run_case(os.path.abspath(a.actorrent), a.case)
    except (CaseFailed, H.HarnessError) as e:
        print("FAIL: %s: %s" % (a.case, e))
        sys.exit(1)
    print("PASS: %s" % a.case)


if __name__ == "__main__":
    main()
