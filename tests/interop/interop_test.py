#!/usr/bin/python3
"""actorrent interop test driver: one case per run, against real clients on 127.0.0.1.

  interop_test.py --actorrent PATH --case NAME      run one case, exit 0 (pass) / 1 (fail)
  interop_test.py --list                            print the case names
  interop_test.py --selftest                        check the harness itself (no actorrent)
  interop_test.py --downloader libtorrent --case NAME
        run the case with the libtorrent downloader in place of actorrent (checks the harness
        and the seeders themselves; needs no actorrent binary)

Cases:
  <seeder>.<mode>.<payload>   seeder  in libtorrent | aria2 | transmission
                              mode    tracker: through opentracker, actorrent gets no --peer
                                      direct:  --peer 127.0.0.1:SEEDPORT --no-tracker (the torrent's
                                               announce URL is a canary on 127.0.0.1: the case fails
                                               if actorrent contacts it)
                              payload single: one file of 4 MiB + 1234 B (short last piece)
                                      multi:  nested folders, 0/1-byte files, a one-piece file,
                                              files spanning pieces, total not piece-aligned
  <seeder>.direct.volume      one file of 256 MiB + 1234 B, 256 KiB pieces, direct mode: a real
                              client's deep pipeline at volume (the rate is logged)
  hostile                     honest libtorrent seeder (rate-limited) + hostile_seeder.py
                              corrupting every third piece, direct mode: the download must be
                              byte-exact and actorrent must log "hash check failed"

Piece length alternates between 64 KiB and 256 KiB over the matrix (printed by each case).
A case passes when actorrent exits 0 with a "complete:" line (and exits within 10 s of it) and
every file, 0-byte ones included, matches the payload's sha256.

Each case runs in a fresh temp directory under /dev/shm with its own opentracker/seeders on free
ports; everything is killed and removed at the end, also on failure or timeout.
"""
import argparse
import contextlib
import os
import shutil
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

SEEDER_NAMES = ["libtorrent", "aria2", "transmission"]
MODES = ["tracker", "direct"]
PAYLOADS = ["single", "multi"]
ACTORRENT_TIMEOUT = 60        # passed as --timeout
DOWNLOAD_GRACE = 15           # outer kill = ACTORRENT_TIMEOUT + grace
EXIT_GRACE = 10               # after printing "complete:" the process must exit within this
CASE_BUDGET = 112             # whole case incl. cleanup; ctest's TIMEOUT is 120
VOLUME_SIZE = 256 * 1024 * 1024 + 1234  # <seeder>.direct.volume
VOLUME_TIMEOUT = 200          # --timeout of a volume case (transmission uploads ~30 MB/s here)
VOLUME_BUDGET = 290           # ctest's TIMEOUT for the volume cases is 300


def all_cases():
    return (["%s.%s.%s" % (s, m, p) for s in SEEDER_NAMES for m in MODES for p in PAYLOADS] + ["hostile"]
            + ["%s.direct.volume" % s for s in SEEDER_NAMES])


def case_budget(name):
    return VOLUME_BUDGET if name.endswith(".volume") else CASE_BUDGET


def download_timeout(name):
    return VOLUME_TIMEOUT if name.endswith(".volume") else ACTORRENT_TIMEOUT


def piece_length_for(seeder, mode, payload):
    """Alternate 64 KiB / 256 KiB so each seeder sees both sizes for both payloads (volume: 256 KiB)."""
    if payload == "volume":
        return 256 * H.KiB
    k = SEEDER_NAMES.index(seeder) + MODES.index(mode) + PAYLOADS.index(payload)
    return 64 * H.KiB if k % 2 == 0 else 256 * H.KiB


class CaseFailed(Exception):
    pass


class Budget(Exception):
    pass


def _on_alarm(*_):
    raise Budget("case exceeded its budget (%ds, or %ds for a volume case)" % (CASE_BUDGET, VOLUME_BUDGET))


def _on_term(signum, _):
    raise SystemExit("killed by signal %d" % signum)


class Case:
    def __init__(self, name, args):
        self.name, self.args = name, args
        self.diag = []      # (title, callable returning text), printed on failure
        self.dl = None
        self.diag_text = None

    @contextlib.contextmanager
    def session(self, prefix):
        """A harness Session whose logs are snapshotted for the report before it is removed."""
        sess = H.Session(prefix)
        try:
            yield sess
        except BaseException:
            self.diag_text = self.collect_diagnostics()
            raise
        finally:
            signal.alarm(0)      # never interrupt the cleanup
            sess.close()

    # ------------------------------------------------------------------ downloader
    def downloader_argv(self, torrent, out, peers, no_tracker):
        if self.args.downloader == "libtorrent":
            argv = [H.PY, os.path.join(H.HERE, "harness.py"), "lt-download", torrent.path, "-o", out]
        else:
            argv = [self.args.actorrent, "download", "--listen", "127.0.0.1:0", torrent.path, "-o", out]
        for p in peers:
            argv += ["--peer", p]
        if no_tracker:
            argv.append("--no-tracker")
        return argv + ["--timeout", str(download_timeout(self.name))]

    def download(self, sess, torrent, payload, peers, no_tracker):
        out = sess.mkdir("download")
        argv = self.downloader_argv(torrent, out, peers, no_tracker)
        H.log("run: " + " ".join(argv))
        env = H.child_env(c_locale=self.args.downloader == "libtorrent")
        self.dl = sess.spawn(self.args.downloader, argv, log_path=sess.path("downloader.stdout"),
                             stderr_path=sess.path("downloader.stderr"), env=env)
        self.diag.insert(0, ("%s stderr (tail)" % self.args.downloader, lambda: H.tail(self.dl.stderr_text(), 40)))
        self.diag.insert(1, ("%s stdout (tail)" % self.args.downloader, lambda: H.tail(self.dl.output(), 10)))
        t0 = time.monotonic()
        timeout = download_timeout(self.name)
        deadline = t0 + timeout + DOWNLOAD_GRACE
        t_complete = None
        rc = None
        while rc is None and time.monotonic() < deadline:
            rc = self.dl.wait(0.2)
            if t_complete is None and self._completed():
                t_complete = time.monotonic()
                deadline = min(deadline, t_complete + EXIT_GRACE)
        elapsed = time.monotonic() - t0
        completed = self._completed()
        if rc is None:
            self.dl.stop(grace=3)
            if t_complete is not None:
                raise CaseFailed("%s printed 'complete:' after %.1fs but did not exit within %ds; killed; %s"
                                 % (self.args.downloader, t_complete - t0, EXIT_GRACE, self.data_state(payload, out)))
            raise CaseFailed("%s did not exit within %ds (passed --timeout %d); killed; no 'complete:' line; %s"
                             % (self.args.downloader, timeout + DOWNLOAD_GRACE, timeout,
                                self.data_state(payload, out)))
        H.log("%s exited %d after %.2fs" % (self.args.downloader, rc, elapsed))
        if rc != 0:
            reason = H.tail(self.dl.stderr_text(), 1)
            raise CaseFailed("%s exited with status %d (last stderr line: %s); %s"
                             % (self.args.downloader, rc, reason or "(none)", self.data_state(payload, out)))
        if not completed:
            raise CaseFailed("%s exited 0 but printed no stdout line starting with 'complete:'; %s"
                             % (self.args.downloader, self.data_state(payload, out)))
        return out, elapsed

    def _completed(self):
        return any(ln.startswith("complete:") for ln in self.dl.output().splitlines())

    @staticmethod
    def data_state(payload, out):
        """One phrase about the data on disk, for failure messages."""
        try:
            problems = H.verify_download(payload, out)
        except Exception as e:
            return "data on disk not checkable (%s)" % e
        if not problems:
            return "the data on disk is byte-exact"
        return "data on disk: %d file problem(s), e.g. %s" % (len(problems), problems[0])

    def verify(self, payload, out, elapsed):
        problems = H.verify_download(payload, out)
        if problems:
            raise CaseFailed("download differs from the payload:\n  " + "\n  ".join(problems[:20]))
        H.log("verified %d file(s), %d bytes byte-exact (%.1f MiB/s)"
              % (len(payload.files), payload.total_size, payload.total_size / H.MiB / max(elapsed, 1e-3)))

    # ------------------------------------------------------------------ cases
    def run(self):
        if self.name == "hostile":
            return self.run_hostile()
        seeder_name, mode, pl = self.name.split(".")
        cls = H.SEEDERS[seeder_name]
        need = set(cls.needs) | ({"opentracker"} if mode == "tracker" else set())
        if self.args.downloader == "libtorrent":
            need.add("libtorrent")
        H.require(need)
        P = piece_length_for(seeder_name, mode, pl)
        with self.session("actorrent-interop-%s-" % self.name.replace(".", "-")) as sess:
            H.log("case %s: %s seeder, %s mode, %s payload, piece length %d KiB, dir %s"
                  % (self.name, seeder_name, mode, pl, P // H.KiB, sess.dir))
            seed_root = sess.mkdir("seed", mode=0o755)
            if pl == "volume":
                t0 = time.monotonic()
                payload = H.make_payload(seed_root, "volume_payload.bin", size=VOLUME_SIZE, seed=self.name)
                H.log("payload: %d bytes written in %.1fs" % (VOLUME_SIZE, time.monotonic() - t0))
            elif pl == "single":
                payload = H.make_payload(seed_root, "single_payload.bin", size=H.single_file_spec(P), seed=self.name)
            else:
                payload = H.make_payload(seed_root, "multi_payload", files=H.multi_file_spec(P), seed=self.name)
            tracker = H.OpenTracker(sess) if mode == "tracker" else None
            if tracker:
                announce = tracker.announce_url
                self.diag.append(("opentracker log (tail)", lambda: H.tail(tracker.proc.output(), 10) if tracker.proc else ""))
                canary = None
            else:
                # the torrent names a tracker, but with --no-tracker actorrent must not contact it
                canary = H.CanaryTracker()
                sess.at_close(canary.close)
                announce = canary.announce_url
            torrent = H.make_torrent(payload, P, sess.path("case.torrent"), announce=announce)
            H.log("torrent: %d bytes in %d file(s), %d pieces, info-hash %s"
                  % (torrent.total_size, len(torrent.files), torrent.num_pieces, torrent.info_hash_hex))
            if tracker:
                tracker.start([torrent.info_hash])
            seeder = cls(sess, torrent, seed_root, tracker=tracker)
            self.diag.append(("%s seeder log (tail)" % seeder_name, lambda: seeder.log_tail(30)))
            seeder.start(timeout=40)
            if seeder_name == "transmission":
                H.log("note: transmission waits ~10 s before its first unchoke")
            if tracker:
                out, el = self.download(sess, torrent, payload, [], no_tracker=False)
            else:
                out, el = self.download(sess, torrent, payload, [seeder.endpoint], no_tracker=True)
            self.verify(payload, out, el)
            if canary:
                mine = canary.requests_by(self.dl.pid)
                if mine:
                    raise CaseFailed("%s contacted the torrent's tracker despite --no-tracker: %s"
                                     % (self.args.downloader, mine[0][2]))
                others = sorted({"%s(%s)" % (c, p) for p, c, _ in canary.requests})
                H.log("--no-tracker honoured (tracker requests seen only from: %s)" % (", ".join(others) or "nobody"))

    def run_hostile(self):
        need = {"libtorrent"}
        H.require(need)
        P = 64 * H.KiB
        with self.session("actorrent-interop-hostile-") as sess:
            seed_root = sess.mkdir("seed", mode=0o755)
            payload = H.make_payload(seed_root, "hostile_payload.bin", size=H.single_file_spec(P), seed="hostile")
            torrent = H.make_torrent(payload, P, sess.path("case.torrent"), announce=None)
            corrupt = sorted(set(range(0, torrent.num_pieces, 3)) | {torrent.num_pieces - 1})
            H.log("case hostile: %d pieces of %d KiB, hostile seeder corrupts %d of them, dir %s"
                  % (torrent.num_pieces, P // H.KiB, len(corrupt), sess.dir))
            # the honest seeder is rate-limited so that the downloader has to use the hostile one
            honest = H.LibtorrentSeeder(sess, torrent, seed_root, tracker=None, upload_limit=H.MiB)
            hostile = H.HostileSeeder(sess, torrent, seed_root, tracker=None, corrupt_pieces=corrupt)
            self.diag.append(("hostile seeder log (tail)", lambda: hostile.log_tail(20)))
            self.diag.append(("libtorrent seeder log (tail)", lambda: honest.log_tail(20)))
            hostile.start(timeout=20)
            honest.start(timeout=40)
            out, el = self.download(sess, torrent, payload, [hostile.endpoint, honest.endpoint], no_tracker=True)
            self.verify(payload, out, el)
            hostile.stop()
            sent, bad = hostile.stats()
            H.log("hostile seeder sent %d blocks, %d of them corrupt" % (sent, bad))
            if bad == 0:
                raise CaseFailed("the downloader never received a corrupt block from the hostile seeder "
                                 "(it sent %d blocks in total); the bad-data path was not exercised" % sent)
            err = self.dl.stderr_text()
            if "hash check failed" not in err:
                raise CaseFailed("%d corrupt blocks were sent but stderr never says 'hash check failed'" % bad)
            H.log("stderr reports %d 'hash check failed' line(s); 'banned' %s"
                  % (err.count("hash check failed"), "logged" if "banned" in err else "NOT logged (note only)"))

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


def _recv_msg(sock):
    def exact(n):
        b = b""
        while len(b) < n:
            c = sock.recv(n - len(b))
            if not c:
                raise CaseFailed("hostile seeder closed the connection")
            b += c
        return b
    while True:
        (n,) = struct.unpack(">I", exact(4))
        if n:
            return exact(n)


def selftest():
    """Checks of the harness itself (no actorrent needed): bencode, torrents vs libtorrent's own
    parser, opentracker whitelisting + peer lists, the hostile seeder's wire behaviour."""
    H.require({"opentracker", "libtorrent"})
    import libtorrent as lt
    # bencode
    v = {"a": [1, -2, b"x\x00y"], "b": {"c": b""}}
    assert H.bdecode(H.bencode(v)) == {b"a": [1, -2, b"x\x00y"], b"b": {b"c": b""}}
    for bad in (b"i1ex", b"l", b"5:abc"):
        try:
            H.bdecode(bad)
            raise CaseFailed("bdecode accepted %r" % bad)
        except ValueError:
            pass
    with H.Session("actorrent-interop-selftest-") as sess:
        root = sess.mkdir("seed", mode=0o755)
        # torrents: info-hash, files and pieces as libtorrent sees them
        for kind, P in (("single", 64 * H.KiB), ("multi", 256 * H.KiB)):
            if kind == "single":
                pl = H.make_payload(root, "s.bin", size=H.single_file_spec(P), seed="st")
            else:
                pl = H.make_payload(root, "m", files=H.multi_file_spec(P), seed="st")
            t = H.make_torrent(pl, P, sess.path("%s.torrent" % kind), announce="http://127.0.0.1:1/announce")
            ti = lt.torrent_info(t.path)
            if str(ti.info_hash()) != t.info_hash_hex:
                raise CaseFailed("%s: info-hash %s, libtorrent says %s" % (kind, t.info_hash_hex, ti.info_hash()))
            fs = ti.files()
            got = [(fs.file_path(i).replace(os.sep, "/"), fs.file_size(i)) for i in range(fs.num_files())]
            want = [((pl.name + "/" + r) if r else pl.name, s) for r, s in pl.files]
            if got != want or ti.num_pieces() != t.num_pieces or ti.piece_length() != P:
                raise CaseFailed("%s: libtorrent sees %r / %d pieces, expected %r / %d"
                                 % (kind, got, ti.num_pieces(), want, t.num_pieces))
            if H.verify_download(pl, root):
                raise CaseFailed("verify_download rejects the payload itself")
            H.log("torrent %s OK: %d files, %d pieces, info-hash matches libtorrent" % (kind, len(got), t.num_pieces))
        # verification catches a flipped byte and a missing 0-byte file
        bad_root = sess.mkdir("bad")
        shutil.copytree(os.path.join(root, "m"), os.path.join(bad_root, "m"))
        with open(os.path.join(bad_root, "m", "data", "big.bin"), "r+b") as f:
            f.seek(777)
            b = f.read(1)
            f.seek(777)
            f.write(bytes([b[0] ^ 1]))
        os.unlink(os.path.join(bad_root, "m", "docs", "empty.txt"))
        probs = H.verify_download(pl, bad_root)
        if len(probs) != 2 or "offset 777" not in " ".join(probs):
            raise CaseFailed("verify_download missed corruption: %r" % probs)
        # opentracker: whitelist enforced, registered seeder handed out
        tracker = H.OpenTracker(sess)
        t = H.make_torrent(pl, 256 * H.KiB, sess.path("tr.torrent"), announce=tracker.announce_url)
        tracker.start([t.info_hash])
        seeder = H.LibtorrentSeeder(sess, t, root, tracker=tracker).start(timeout=30)
        junk = tracker.announce(os.urandom(20), port=9, left=1, event="started")
        if b"failure reason" not in junk:
            raise CaseFailed("opentracker accepted a hash that is not whitelisted: %r" % junk)
        r = tracker.announce(t.info_hash, port=9, left=1, event="started")
        tracker.announce(t.info_hash, port=9, left=1, event="stopped")
        if ("127.0.0.1", seeder.port) not in r.get(b"peer_list", []):
            raise CaseFailed("tracker reply %r lacks the seeder %s" % (r, seeder.endpoint))
        H.log("opentracker OK: whitelist enforced, announce returns the seeder %s" % seeder.endpoint)
        # hostile seeder: handshake, HaveAll, unchoke on interested, corrupt vs good blocks
        ts = H.load_torrent(sess.path("single.torrent"))
        hostile = H.HostileSeeder(sess, ts, root, corrupt_pieces=[1]).start(timeout=10)
        data = open(os.path.join(root, "s.bin"), "rb").read()
        with socket.create_connection((H.LOOPBACK, hostile.port), timeout=5) as s:
            s.sendall(b"\x13BitTorrent protocol" + bytes([0, 0, 0, 0, 0, 0, 0, 4]) + ts.info_hash + b"-XX0000-123456789012")
            hs = b""
            while len(hs) < 68:
                hs += s.recv(68 - len(hs))
            if hs[28:48] != ts.info_hash:
                raise CaseFailed("hostile seeder handshake: wrong info-hash")
            if _recv_msg(s)[0] != 14:
                raise CaseFailed("hostile seeder: expected HAVE_ALL after a fast-extension handshake")
            s.sendall(struct.pack(">IB", 1, 2))
            if _recv_msg(s)[0] != 1:
                raise CaseFailed("hostile seeder: no UNCHOKE after INTERESTED")
            P = ts.piece_length
            for piece, corrupt in ((0, False), (1, True), (ts.num_pieces - 1, False)):
                s.sendall(struct.pack(">IBIII", 13, 6, piece, 0, 1000))
                m = _recv_msg(s)
                block = m[9:]
                good = data[piece * P:piece * P + 1000]
                if m[0] != 7 or struct.unpack(">II", m[1:9]) != (piece, 0) or (block == good) == corrupt:
                    raise CaseFailed("hostile seeder: piece %d block wrong (corrupt expected: %s)" % (piece, corrupt))
        hostile.stop()
        if hostile.stats() != (3, 1):
            raise CaseFailed("hostile seeder stats %r, expected (3, 1)" % (hostile.stats(),))
        H.log("hostile seeder OK: good blocks intact, piece 1 corrupted")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", help="path of the actorrent binary")
    ap.add_argument("--case", help="case name (see --list)")
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    ap.add_argument("--selftest", action="store_true",
                    help="check the harness itself (torrents vs libtorrent, tracker, hostile seeder)")
    ap.add_argument("--downloader", choices=["actorrent", "libtorrent"], default="actorrent",
                    help="who downloads (libtorrent: harness self-check, no actorrent needed)")
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
        except (CaseFailed, H.HarnessError, Budget, AssertionError) as e:
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
    if a.downloader == "actorrent":
        if not a.actorrent:
            ap.error("--actorrent PATH is required")
        a.actorrent = os.path.abspath(a.actorrent)
        if not (os.path.isfile(a.actorrent) and os.access(a.actorrent, os.X_OK)):
            print("FAIL %s: actorrent binary %s does not exist or is not executable (build it first)"
                  % (a.case, a.actorrent))
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
