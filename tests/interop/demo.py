#!/usr/bin/python3
"""actorrent demo: download a 256 MiB sample from a real libtorrent seeder through a real tracker.

  demo.py --actorrent build/actorrent [--size-mib 256] [--piece-kib 256]

Everything runs on 127.0.0.1 in a temp directory under /dev/shm that is removed at the end:
a deterministic sample payload (single file) and its torrent, opentracker (whitelisting the
torrent), a libtorrent seeder (python3-libtorrent), then `actorrent download` with its progress
shown live, and a byte-exact check of the result.
"""
import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def _on_term(signum, _):
    raise SystemExit("interrupted by signal %d" % signum)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", required=True, help="path of the actorrent binary")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--piece-kib", type=int, default=256)
    ap.add_argument("--timeout", type=int, default=300, help="passed to actorrent --timeout")
    a = ap.parse_args()
    actorrent = os.path.abspath(a.actorrent)
    if not (os.path.isfile(actorrent) and os.access(actorrent, os.X_OK)):
        print("demo: %s is not an executable (build it first)" % actorrent, file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)

    try:
        H.require({"opentracker", "libtorrent"})
        with H.Session("actorrent-demo-") as sess:
            size = a.size_mib * H.MiB
            piece = a.piece_kib * H.KiB
            H.log("demo: generating a %d MiB sample payload in %s" % (a.size_mib, sess.dir))
            seed_root = sess.mkdir("seed", mode=0o755)
            payload = H.make_payload(seed_root, "actorrent-demo-%dMiB.bin" % a.size_mib, size=size, seed="demo")
            tracker = H.OpenTracker(sess)
            torrent = H.make_torrent(payload, piece, sess.path("demo.torrent"), announce=tracker.announce_url)
            H.log("demo: torrent %s: %d pieces of %d KiB, info-hash %s"
                  % (os.path.basename(torrent.path), torrent.num_pieces, a.piece_kib, torrent.info_hash_hex))
            tracker.start([torrent.info_hash])
            seeder = H.LibtorrentSeeder(sess, torrent, seed_root, tracker=tracker).start(timeout=60)
            out = sess.mkdir("download")
            argv = [actorrent, "download", "--listen", "127.0.0.1:0", torrent.path, "-o", out, "--timeout", str(a.timeout)]
            H.log("demo: " + " ".join(argv))
            print(flush=True)
            t0 = time.monotonic()
            dl = sess.spawn("actorrent", argv, log_path=sess.path("actorrent.stdout"), inherit_stderr=True,
                            env=H.child_env(c_locale=False))
            deadline = t0 + a.timeout + 30
            t_complete = None
            rc = None
            while rc is None and time.monotonic() < deadline:
                rc = dl.wait(0.2)
                if t_complete is None and "complete:" in dl.output():
                    t_complete = time.monotonic()
                    deadline = min(deadline, t_complete + 15)   # it must exit soon after
            elapsed = (t_complete or time.monotonic()) - t0
            print(flush=True)
            stdout = dl.output().strip()
            if stdout:
                print(stdout, flush=True)
            if rc is None:
                dl.stop()
                if t_complete is not None:
                    raise H.HarnessError("actorrent printed 'complete:' but did not exit within 15 s; killed")
                raise H.HarnessError("actorrent did not exit within %ds; killed" % (a.timeout + 30))
            if rc != 0:
                raise H.HarnessError("actorrent exited with status %d\n--- seeder log (tail) ---\n%s"
                                     % (rc, seeder.log_tail(15)))
            if not any(ln.startswith("complete:") for ln in stdout.splitlines()):
                raise H.HarnessError("actorrent exited 0 but printed no 'complete:' line")
            H.log("demo: verifying the download (sha256)")
            problems = H.verify_download(payload, out)
            if problems:
                raise H.HarnessError("download differs from the payload: " + "; ".join(problems))
            print("\n=== actorrent demo ===")
            print("size:     %d bytes (%.1f MiB, %d pieces)" % (size, size / H.MiB, torrent.num_pieces))
            print("seconds:  %.2f" % elapsed)
            print("MiB/s:    %.1f" % (size / H.MiB / max(elapsed, 1e-6)))
            print("verified: OK (sha256 matches the payload)")
            return 0
    except (H.HarnessError, SystemExit, KeyboardInterrupt) as e:
        print("\ndemo FAILED: %s" % (e or type(e).__name__), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
