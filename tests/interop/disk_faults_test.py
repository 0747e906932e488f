#!/usr/bin/python3
"""actorrent when the disk fails it (127.0.0.1 only; the faults are real, not simulated):

  unwritable_output   the output directory is on a read-only mount (or, for a non-root user,
                      a directory without write permission): exit 1 naming the path, nothing
                      reported complete.
  disk_full           the output directory is a 3 MiB tmpfs and the torrent is 8 MiB: exit 1
                      saying "No space left on device"; after the tmpfs grows to 16 MiB a second
                      run resumes and finishes byte-exact (so no piece was recorded as verified
                      that was not on disk), downloading less than the whole torrent again.
  file_deleted        the file being downloaded is deleted mid-download: exit 1 naming it
                      (writes would otherwise go to a file nobody can see); a second run
                      downloads it again and finishes byte-exact.

Mounting needs root; without it the two mount cases are skipped (exit 77) and say so.

  disk_faults_test.py --actorrent PATH --case NAME
"""
import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

PIECE_LENGTH = 64 * 1024
SIZE = 8 * H.MiB
SKIP = 77


class CaseFailed(Exception):
    pass


class Skipped(Exception):
    pass


def mount_tmpfs(sess, path, size_mib, read_only=False):
    if os.geteuid() != 0:
        raise Skipped("mounting a tmpfs needs root")
    opts = "size=%dm,mode=0700" % size_mib + (",ro" if read_only else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise Skipped("cannot mount a tmpfs here: %s" % r.stderr.strip())
    sess.at_close(lambda: subprocess.run(["umount", "-l", path], capture_output=True))


def remount(path, size_mib):
    r = subprocess.run(["mount", "-o", "remount,size=%dm" % size_mib, path], capture_output=True, text=True)
    if r.returncode != 0:
        raise CaseFailed("remount %s: %s" % (path, r.stderr.strip()))


class Run:
    def __init__(self, sess, actorrent, torrent, out, seeder, label):
        argv = [actorrent, "download", "--listen", "127.0.0.1:0", torrent.path, "-o", out, "--no-tracker", "--peer", seeder.endpoint,
                "-v", "--timeout", "60"]
        H.log("%s: %s" % (label, " ".join(argv)))
        self.proc = sess.spawn(label, argv, log_path=sess.path(label + ".stdout"),
                               stderr_path=sess.path(label + ".stderr"))
        self.label = label

    def finish(self, timeout=75):
        rc = self.proc.wait(timeout)
        if rc is None:
            self.proc.stop(grace=3)
            raise CaseFailed("%s did not exit within %d s" % (self.label, timeout))
        H.log("%s exited %d; last stderr lines:\n%s" % (self.label, rc, H.tail(self.stderr, 4)))
        return rc

    @property
    def stderr(self):
        return self.proc.stderr_text()

    @property
    def stdout(self):
        return self.proc.output()

    def complete_line(self):
        return next((ln for ln in self.stdout.splitlines() if ln.startswith("complete:")), None)


def expect_failure(run, pattern):
    rc = run.finish()
    if rc != 1:
        raise CaseFailed("%s: expected exit status 1, got %d" % (run.label, rc))
    if run.complete_line():
        raise CaseFailed("%s reported completion despite the fault: %s" % (run.label, run.complete_line()))
    errors = [ln for ln in run.stderr.splitlines() if re.search(pattern, ln)]
    if not errors:
        raise CaseFailed("%s: no error line matching %r; stderr tail:\n%s" % (run.label, pattern, H.tail(run.stderr, 15)))
    H.log("error reported: %s" % errors[0].strip())


def expect_success(run, payload, out):
    rc = run.finish()
    if rc != 0:
        raise CaseFailed("%s exited %d; stderr tail:\n%s" % (run.label, rc, H.tail(run.stderr, 15)))
    bad = H.verify_download(payload, out)
    if bad:
        raise CaseFailed("%s: data differs from the payload: %s" % (run.label, bad[:3]))
    H.log("%s: byte-exact; %s" % (run.label, run.complete_line()))


def setup(sess, name, rate_kib=None):
    seed_root = sess.mkdir("seed")
    payload = H.make_payload(seed_root, "%s.bin" % name, size=SIZE, seed=name)
    torrent = H.make_torrent(payload, PIECE_LENGTH, sess.path("t.torrent"))
    seeder = H.HostileSeeder(sess, torrent, seed_root, rate_kib=rate_kib, name="seeder").start(timeout=20)
    return payload, torrent, seeder


def case_unwritable_output(actorrent, sess):
    payload, torrent, seeder = setup(sess, "unwritable")
    out = sess.mkdir("ro")
    if os.geteuid() == 0:
        mount_tmpfs(sess, out, 16, read_only=True)
        pattern = r"error: .*%s.*Read-only file system" % re.escape(out)
    else:
        os.chmod(out, 0o500)
        pattern = r"error: .*%s.*Permission denied" % re.escape(out)
    expect_failure(Run(sess, actorrent, torrent, os.path.join(out, "sub"), seeder, "run"), pattern)


def case_disk_full(actorrent, sess):
    payload, torrent, seeder = setup(sess, "diskfull")
    small = sess.mkdir("small")
    mount_tmpfs(sess, small, 3)
    out = os.path.join(small, "dl")
    expect_failure(Run(sess, actorrent, torrent, out, seeder, "run1"), r"No space left on device")
    remount(small, 16)
    H.log("tmpfs grown to 16 MiB")
    second = Run(sess, actorrent, torrent, out, seeder, "run2")
    expect_success(second, payload, out)
    kept = re.search(r"existing data: (\d+) of (\d+) pieces verified", second.stderr)
    if not kept or not 0 < int(kept.group(1)) < torrent.num_pieces:
        raise CaseFailed("the second run did not keep the first run's verified data (%s)"
                         % (kept.group(0) if kept else "no 'existing data' line"))
    H.log("second run kept %s of %d pieces from the first run and downloaded the rest"
          % (kept.group(1), torrent.num_pieces))


def case_file_deleted(actorrent, sess):
    payload, torrent, seeder = setup(sess, "deleted", rate_kib=1024)
    out = sess.mkdir("dl")
    first = Run(sess, actorrent, torrent, out, seeder, "run1")
    target = os.path.join(out, payload.name)
    if not H.wait_for(lambda: re.search(r"\b(2\d|3\d)\.\d%", first.stderr) is not None, 30):
        raise CaseFailed("run1 never reached 20%% progress; stderr tail:\n%s" % H.tail(first.stderr, 10))
    os.remove(target)
    H.log("deleted %s during the download" % target)
    t0 = time.monotonic()
    expect_failure(first, r"%s: deleted or replaced while downloading" % re.escape(target))
    H.log("noticed %.1f s after the deletion" % (time.monotonic() - t0))
    expect_success(Run(sess, actorrent, torrent, out, seeder, "run2"), payload, out)


CASES = {
    "unwritable_output": case_unwritable_output,
    "disk_full": case_disk_full,
    "file_deleted": case_file_deleted,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", required=True)
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    a = ap.parse_args()
    try:
        with H.Session("actorrent-disk-%s-" % a.case) as sess:
            CASES[a.case](os.path.abspath(a.actorrent), sess)
    except Skipped as e:
        print("SKIP: %s: %s" % (a.case, e))
        return SKIP
    except (CaseFailed, H.HarnessError) as e:
        print("FAIL: %s: %s" % (a.case, e), file=sys.stderr)
        return 1
    print("PASS: %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
