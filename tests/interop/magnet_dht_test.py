#!/usr/bin/python3
"""A magnet link whose only source of peers is the DHT, against libtorrent on 127.0.0.1.

  magnet_dht.dht_only  a libtorrent seeder with DHT on seeds a torrent that names no tracker;
                       actorrent is given `magnet:?xt=urn:btih:HASH` (no dn, no tr, no x.pe),
                       --no-tracker and only --dht-bootstrap 127.0.0.1:<libtorrent's port>. It
                       finds the seeder through get_peers, fetches the metadata from it (BEP 9),
                       saves OUT/.actorrent/HASH.torrent and downloads byte-exact.
  magnet_dht.batch     the same bare magnet link as the one job of `actorrent batch` whose
                       settings name only `dht_bootstrap: "127.0.0.1:<libtorrent's port>"`: the
                       batch's DHT node finds the seeder, the job completes byte-exact, exit 0,
                       and the batch keeps its node table in its state_dir (dht.dat).

  magnet_dht_test.py --actorrent PATH --case NAME
"""
import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402
import dht_test as D  # noqa: E402  (its libtorrent DHT node and case torrents)

CASES = ["magnet_dht.dht_only", "magnet_dht.batch"]


def run_found_through_dht(sess, argv, torrent, lt_seed, complete_line, wait):
    """Runs actorrent to its end: exit 0, `complete_line` printed, and its log shows peers of
    the torrent found through the DHT. Returns its stderr."""
    H.log("run: " + " ".join(argv))
    p = sess.spawn("actorrent", argv, log_path=sess.path("actorrent.stdout"),
                   stderr_path=sess.path("actorrent.stderr"))
    rc = p.wait(wait)
    if rc is None:
        p.stop(grace=3)
    err = p.stderr_text()
    D.check(rc == 0, "actorrent exited %s\n%s\n%s\nlibtorrent:\n%s"
            % (rc, p.output(), H.tail(err, 40), H.tail(lt_seed.stderr_text(), 20)))
    D.check(complete_line in p.output(), "no %r line:\n%s" % (complete_line, p.output()))
    D.check(re.search(r"DHT: [1-9]\d* peers for %s" % torrent.info_hash_hex, err),
            "actorrent's log does not show peers found through the DHT")
    return err


def case_dht_only(actorrent):
    H.require({"libtorrent"})
    with H.Session("actorrent-magnet-dht-") as sess:
        payload, torrent, root = D.make_case_torrent(sess, "magnet_dht")
        lt_seed, lt_port = D.start_lt(sess, "lt_seed", torrent.path, root, "seed")
        out = sess.mkdir("download")
        link = "magnet:?xt=urn:btih:" + torrent.info_hash_hex
        argv = [actorrent, "download", link, "-o", out, "--listen", "127.0.0.1:0", "--no-tracker",
                "--dht-bootstrap", "127.0.0.1:%d" % lt_port, "--timeout", "90", "-vv"]
        run_found_through_dht(sess, argv, torrent, lt_seed, "complete:", 100)
        problems = H.verify_download(payload, out)
        D.check(not problems, "download differs: %s" % problems)
        saved = os.path.join(out, ".actorrent", torrent.info_hash_hex + ".torrent")
        D.check(os.path.isfile(saved), "the fetched metadata was not saved as %s" % saved)
        D.check(H.load_torrent(saved).info_hash == torrent.info_hash,
                "the saved .torrent has another info-hash")
        H.log("PASS: a bare magnet link found its seeder through the DHT alone, byte-exact")


def case_batch(actorrent):
    H.require({"libtorrent"})
    with H.Session("actorrent-magnet-dht-batch-") as sess:
        payload, torrent, root = D.make_case_torrent(sess, "magnet_dht_batch")
        lt_seed, lt_port = D.start_lt(sess, "lt_seed", torrent.path, root, "seed")
        jobfile = sess.path("jobs.textproto")
        with open(jobfile, "w") as f:
            f.write('settings {\n  listen: "127.0.0.1:0"\n  state_dir: "state"\n'
                    '  dht_bootstrap: "127.0.0.1:%d"\n}\n'
                    'job {\n  name: "bare"\n  magnet: "magnet:?xt=urn:btih:%s"\n'
                    '  output: "out"\n  no_tracker: true\n  timeout_s: 90\n}\n'
                    % (lt_port, torrent.info_hash_hex))
        argv = [actorrent, "batch", jobfile, "-vv"]
        run_found_through_dht(sess, argv, torrent, lt_seed, "complete: bare", 110)
        problems = H.verify_download(payload, sess.path("out"))
        D.check(not problems, "download differs: %s" % problems)
        D.check(os.path.isfile(sess.path("state", "dht.dat")),
                "no DHT node table in the state_dir")
        H.log("PASS: a batch job of a bare magnet link found its seeder through the DHT")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--actorrent")
    ap.add_argument("--case")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(CASES))
        return 0
    if a.case not in CASES:
        print("unknown case %r (one of %s)" % (a.case, ", ".join(CASES)), file=sys.stderr)
        return 2
    try:
        {"magnet_dht.dht_only": case_dht_only, "magnet_dht.batch": case_batch}[a.case](os.path.abspath(a.actorrent))
    except (D.Failed, H.HarnessError) as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
