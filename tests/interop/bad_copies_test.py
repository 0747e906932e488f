#!/usr/bin/python3
"""actorrent against a liar that sends a second, different copy of blocks (127.0.0.1 only).

Every case runs one `actorrent download` from two scripted seeders (hostile_seeder.py): an
honest one, rate-limited, and a liar that plays one bad-copy pattern (its --trick) and serves
every other block right.  A case passes when:

  * actorrent exits 0 and the files are byte-exact;
  * the honest seeder is never banned;
  * if a piece failed its hash check (only the liar ever sends wrong bytes, so one of its wrong
    blocks reached that piece), the liar is banned; if none failed, the liar is not banned;
  * the pattern really happened (the seeders' logs show it), so the case cannot pass vacuously.

Which path of actorrent each case exercises (actors/peer_actor.cpp and peer_requests.cpp: which
blocks are expected from a peer; actors/storage_actor.cpp and storage/piece_writer.cpp: which copy
of a block is on disk, who sent it, and the piece's hash; actors/smart_ban.cpp: whom to ban):

  The liar gets two copies of a block past the peer actor, which drops any block that it has no
  pending request for (settle_request), by being asked for that block twice: it answers one
  block of each requested piece, CHOKEs without REJECTing the other requests (BEP 6: a choke
  does not cancel them, so the peer actor keeps counting them as pending) and UNCHOKEs 100 ms
  later; the torrent, which dropped those requests on the CHOKE, asks again for the rest of the
  started pieces, so the peer actor now has two requests pending for each of those blocks.

  one_read.right_then_wrong / one_read.wrong_then_right
      32 KiB pieces (2 blocks).  For each doubled block the liar sends a right and a wrong copy
      (in that order, or the reverse) back to back, every pair in one write, so both copies
      usually reach the storage writer in the same write_blocks message: the first is the
      block's first copy, the second a duplicate of it, written over it.  The pieces involved
      hold only the liar's blocks.  Exercises: which copy is on disk versus which copy the
      piece's SHA-1 was computed from (the hash is fed from the receive buffers while blocks
      come in order; a replaced copy must send it back to the disk), and that the verdict lands
      on the sender of the copy that is on disk.
  endgame.late_wrong
      64 KiB pieces (4 blocks).  The liar holds its doubled blocks; in end-game actorrent asks
      the honest seeder for them too, gets them, and CANCELs them at the liar; the liar then at
      once sends a wrong copy, which answers the request still pending at its peer actor and
      reaches storage after the honest copy, while the honest seeder (rate-limited) has not yet
      sent the piece's last block.  Exercises: a late duplicate written over the honest copy,
      and who is blamed when the piece then fails (the honest seeder sent the first copy of
      every block; the liar the copy on disk).
  mixed.one_wrong_block
      256 KiB pieces (16 blocks).  Three times, the liar sends the first half of the first piece
      it was asked for, with exactly one wrong block, then keeps actorrent choked for 1.5 s so
      that the honest seeder fills the other half.  Exercises: a failed piece with two senders,
      one of them honest (blaming every contributor bans the honest seeder after two such
      pieces; a smart ban compares the blocks once the piece passes and bans only the liar).

  bad_copies_test.py --actorrent PATH --case NAME     one case (ctest: interop.bad_copies.NAME)
  bad_copies_test.py --list                           the case names
"""
import argparse
import collections
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

DOWNLOAD_LIMIT_S = 60
# actorrent's warning for a piece whose SHA-1 did not match (torrent_actor.cpp), matched loosely
FAILED_PIECE = re.compile(r"piece \d+ (hash check failed|failed (its|the) hash check)")

# name -> liar trick, piece length, payload size, actorrent --pipeline, honest KiB/s, extra liar args
CASES = {
    "one_read.right_then_wrong": ("pair-right-wrong", 32 * H.KiB, 2 * H.MiB, 16, 256, []),
    "one_read.wrong_then_right": ("pair-wrong-right", 32 * H.KiB, 2 * H.MiB, 16, 256, []),
    "endgame.late_wrong":        ("late-wrong", 64 * H.KiB, 2 * H.MiB, 16, 512, []),
    "mixed.one_wrong_block":     ("mix", 256 * H.KiB, 4 * H.MiB, 16, 256,
                                  ["--mix-pieces", "3", "--choke-ms", "1500"]),
}


class CaseFailed(Exception):
    pass


class ScriptedSeeder(H.HostileSeeder):
    """hostile_seeder.py with options that harness.HostileSeeder does not pass."""

    def __init__(self, *a, extra=(), **kw):
        super().__init__(*a, **kw)
        self.extra = list(extra)

    def command(self):
        return super().command() + self.extra


def lines_naming(log, endpoint, word):
    """Lines of log that contain `word` and name endpoint (not a longer port)."""
    pat = re.compile(re.escape(endpoint) + r"(?!\d)")
    return [ln for ln in log.splitlines() if word in ln and pat.search(ln)]


def clock(hms):
    """Seconds since midnight of an HH:MM:SS.mmm stamp (the seeders and actorrent both log
    the wall clock with milliseconds)."""
    h, m, s = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def served_blocks(seeder_log):
    """{piece: {block number: time first served}} from a seeder's SERVED lines (--log-blocks)."""
    out = collections.defaultdict(dict)
    for m in re.finditer(r"^(\S+) SERVED (\d+) (\d+) (right|wrong)", seeder_log, re.M):
        out[int(m.group(2))].setdefault(int(m.group(3)) // (16 * H.KiB), clock(m.group(1)))
    return out


def first_failure(log, piece):
    """Time of actorrent's first hash-check failure of `piece`, or None."""
    m = re.search(r"^(\d\d:\d\d:\d\d\.\d+) .*piece %d (hash check failed|failed (its|the) hash)" % piece,
                  log, re.M)
    return clock(m.group(1)) if m else None


def pattern_evidence(trick, liar_log, honest_log, log):
    """What the liar's (and, for mix, the honest seeder's) log shows of the pattern; an empty
    list means the pattern did not happen."""
    if trick.startswith("pair-"):
        return re.findall(r"TRICK %s: piece \d+ block \d+: both copies in one write" % trick, liar_log)
    if trick == "late-wrong":
        return re.findall(r"TRICK late-wrong: piece \d+ block \d+: wrong copy after CANCEL", liar_log)
    honest = served_blocks(honest_log)
    mixed = []
    for m in re.finditer(r"TRICK mix \d+: piece (\d+): sent blocks (\d+)-(\d+) .*, block (\d+) wrong", liar_log):
        p, lo, hi = int(m.group(1)), int(m.group(2)), int(m.group(3))
        # honest blocks of the piece sent before it first failed (not the ones fetched again)
        failed_at = first_failure(log, p) or float("inf")
        others = sorted(b for b, t in honest.get(p, {}).items() if not lo <= b <= hi and t < failed_at)
        if others:
            mixed.append("piece %d: liar blocks %d-%d (block %s wrong), honest blocks %s"
                         % (p, lo, hi, m.group(4), ",".join(map(str, others))))
    return mixed


def run_case(actorrent, name):
    trick, piece_length, size, pipeline, honest_kib, liar_extra = CASES[name]
    with H.Session("actorrent-badcopies-%s-" % name.replace(".", "-")) as sess:
        seed_root = sess.mkdir("seed")
        payload = H.make_payload(seed_root, "bad_copies.bin", size=size, seed=name)
        torrent = H.make_torrent(payload, piece_length, sess.path("t.torrent"))
        honest = ScriptedSeeder(sess, torrent, seed_root, rate_kib=honest_kib, name="honest",
                                extra=["--log-blocks"])
        liar = ScriptedSeeder(sess, torrent, seed_root, name="liar",
                              extra=["--trick", trick, "--log-blocks"] + liar_extra)
        honest.start(timeout=20)
        liar.start(timeout=20)
        out = sess.mkdir("download")
        argv = [actorrent, "download", torrent.path, "-o", out, "--no-tracker", "-v",
                "--listen", "%s:%d" % (H.LOOPBACK, H.free_port()), "--timeout", str(DOWNLOAD_LIMIT_S),
                "--pipeline", str(pipeline), "--peer", honest.endpoint, "--peer", liar.endpoint]
        H.log("case %s: %d pieces of %d KiB; honest %s at %d KiB/s, liar %s (%s); run: %s"
              % (name, torrent.num_pieces, piece_length // H.KiB, honest.endpoint, honest_kib,
                 liar.endpoint, trick, " ".join(argv)))
        dl = sess.spawn("actorrent", argv, log_path=sess.path("stdout"), stderr_path=sess.path("stderr"))
        t0 = time.monotonic()
        rc = dl.wait(DOWNLOAD_LIMIT_S + 15)
        elapsed = time.monotonic() - t0
        if rc is None:
            dl.stop(grace=3)
        log = dl.stderr_text()
        liar_log, honest_log = liar.proc.output(), honest.proc.output()

        failed = [ln for ln in log.splitlines() if FAILED_PIECE.search(ln)]
        liar_banned = lines_naming(log, liar.endpoint, "banned")
        honest_banned = lines_naming(log, honest.endpoint, "banned")
        evidence = pattern_evidence(trick, liar_log, honest_log, log)
        H.log("liar: %s" % "; ".join(re.findall(r"TRICK [^\n]*", liar_log)[:12]))
        H.log("pattern: %d occurrence(s)%s" % (len(evidence), "".join("\n    " + e for e in evidence[:8])))
        H.log("actorrent: exit %s after %.1f s; %d piece(s) failed the hash check; liar banned: %s; "
              "honest banned: %s" % (rc, elapsed, len(failed), bool(liar_banned), bool(honest_banned)))
        for ln in (failed[:6] + liar_banned[:2] + honest_banned[:2]):
            H.log("  " + ln.strip())

        problems = []
        if rc is None:
            problems.append("actorrent did not exit within %d s" % (DOWNLOAD_LIMIT_S + 15))
        elif rc != 0:
            problems.append("actorrent exited with status %d" % rc)
        else:
            bad = H.verify_download(payload, out)
            if bad:
                problems.append("download differs from the payload: %s" % "; ".join(bad[:3]))
            else:
                H.log("download byte-exact")
        if honest_banned:
            problems.append("the honest seeder was banned: %s" % honest_banned[0].strip())
        if failed and not liar_banned:
            problems.append("%d piece(s) failed with the liar's wrong block(s) in them, but the liar "
                            "was not banned" % len(failed))
        if liar_banned and not failed:
            problems.append("the liar was banned although no piece failed its hash check")
        if not evidence:
            problems.append("the pattern did not happen (see the liar's log): the case proves nothing")
        if trick == "mix" and evidence and not failed:
            problems.append("a piece holding the liar's wrong block was never reported as failed")
        if problems:
            progress = re.compile(r"^\s*\d+\.\d%")
            sys.stderr.write("--- actorrent stderr (tail, without progress lines) ---\n%s\n" % H.tail(
                "\n".join(ln for ln in log.splitlines() if not progress.match(ln)), 40))
            sys.stderr.write("--- liar log (tail) ---\n%s\n" % H.tail(
                "\n".join(ln for ln in liar_log.splitlines() if "SERVED" not in ln), 25))
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
    try:
        run_case(os.path.abspath(a.actorrent), a.case)
    except (CaseFailed, H.HarnessError) as e:
        print("FAIL: %s: %s" % (a.case, e), file=sys.stderr)
        return 1
    print("PASS: %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
