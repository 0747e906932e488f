#!/usr/bin/python3
"""A torrent of 3,000 files under the default descriptor limit (`ulimit -n 1024`), as a new
user would try it (127.0.0.1 only). Every actorrent process runs under that limit; before the
open-file pool, opening the files failed with "Too many open files".

  actorrent   actorrent creates the torrent, seeds it (checking the data first) and downloads
              it: byte-exact.
  libtorrent  a libtorrent seeder, actorrent downloads: byte-exact.

  many_files_test.py --actorrent PATH --case NAME
"""
import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

FILES = 3000
PIECE_LENGTH = 64 * H.KiB
LIMIT = 1024


class CaseFailed(Exception):
    pass


def limited(argv):
    """argv run under `ulimit -n 1024` (soft and hard), as a default login shell has it."""
    return ["bash", "-c", 'ulimit -n %d && exec "$@"' % LIMIT, "limited"] + list(argv)


def payload_and_torrent(actorrent, sess):
    root = sess.mkdir("seed")
    # Sizes from 1 byte to ~4 KiB, in 30 folders: most pieces span dozens of files.
    files = [("d%02d/f%04d.bin" % (i % 30, i), 1 + (i * 997) % 4096) for i in range(FILES)]
    payload = H.make_payload(root, "many", files=files, seed="many")
    path = sess.path("many.torrent")
    proc = sess.spawn("create", limited([actorrent, "create", os.path.join(root, "many"),
                                         "-o", path, "--piece-size", "64K", "-q"]),
                      log_path=sess.path("create.log"))
    if proc.wait(120) != 0:
        raise CaseFailed("actorrent create failed:\n%s" % H.tail(proc.output(), 10))
    torrent = H.load_torrent(path)
    H.log("%d files, %d bytes, %d pieces" % (FILES, payload.total_size, torrent.num_pieces))
    return payload, torrent, root


def download(actorrent, sess, payload, torrent, peer):
    out = sess.mkdir("out")
    argv = limited([actorrent, "download", torrent.path, "-o", out, "--peer", peer,
                    "--no-tracker", "--listen", "127.0.0.1:%d" % H.free_port(), "--timeout", "240"])
    H.log(" ".join(argv))
    proc = sess.spawn("download", argv, log_path=sess.path("download.stdout"),
                      stderr_path=sess.path("download.stderr"))
    rc = proc.wait(300)
    if rc is None:
        proc.stop(grace=3)
        raise CaseFailed("download did not exit within 300 s")
    if rc != 0:
        raise CaseFailed("download exited %d:\n%s" % (rc, H.tail(proc.stderr_text(), 15)))
    bad = H.verify_download(payload, out)
    if bad:
        raise CaseFailed("%d files differ: %s" % (len(bad), bad[:3]))
    complete = [ln for ln in proc.output().splitlines() if ln.startswith("complete:")]
    H.log("byte-exact: %s" % (complete[0] if complete else "?"))


def case_actorrent(actorrent, sess):
    payload, torrent, root = payload_and_torrent(actorrent, sess)
    port = H.free_port()
    seeder = sess.spawn("seeder", limited([actorrent, "seed", torrent.path, root, "--no-tracker",
                                           "--listen", "127.0.0.1:%d" % port]),
                        log_path=sess.path("seeder.stdout"), stderr_path=sess.path("seeder.stderr"))
    seeding = re.compile(r"^seeding: .* \((\d+) pieces verified\)$", re.M)
    if not H.wait_for(lambda: not seeder.running() or seeding.search(seeder.output()), 120):
        raise CaseFailed("the seeder printed no 'seeding:' line:\n%s"
                         % H.tail(seeder.stderr_text(), 10))
    m = seeding.search(seeder.output())
    if not m or int(m.group(1)) != torrent.num_pieces:
        raise CaseFailed("the seeder did not verify every piece: %s\n%s"
                         % (m.group(0) if m else "exited %s" % seeder.returncode,
                            H.tail(seeder.stderr_text(), 10)))
    H.log(m.group(0))
    download(actorrent, sess, payload, torrent, "127.0.0.1:%d" % port)


def case_libtorrent(actorrent, sess):
    payload, torrent, root = payload_and_torrent(actorrent, sess)
    seeder = H.LibtorrentSeeder(sess, torrent, root, name="lt").start(timeout=120)
    download(actorrent, sess, payload, torrent, seeder.endpoint)


CASES = {"actorrent": case_actorrent, "libtorrent": case_libtorrent}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", required=True)
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    a = ap.parse_args()
    try:
        with H.Session("actorrent-many-files-%s-" % a.case) as sess:
            CASES[a.case](os.path.abspath(a.actorrent), sess)
    except (CaseFailed, H.HarnessError) as e:
        print("FAIL: %s: %s" % (a.case, e), file=sys.stderr)
        return 1
    print("PASS: %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
