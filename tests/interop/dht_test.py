#!/usr/bin/python3
"""actorrent's DHT (BEP 5) against libtorrent's DHT and a scripted hostile node, all on
127.0.0.1 (tests/interop/harness.py). No tracker and no --peer anywhere: peers come from the DHT.

  dht.find_lt_seeder   a libtorrent seeder with DHT on seeds a torrent with no tracker; actorrent,
                       given only --dht-bootstrap 127.0.0.1:<its port>, finds it through get_peers
                       and downloads byte-exact; its node table (with the libtorrent node) is
                       saved to DIR/.actorrent/dht.dat, and a second run without
                       --dht-bootstrap finds the seeder again through that table alone.
  dht.lt_finds_seeder  actorrent seeds (bootstrapped from an idle libtorrent DHT node); a libtorrent
                       downloader that knows only actorrent's DHT port finds actorrent as a seeder
                       through the DHT (actorrent answers its get_peers and find_node, and its
                       announce_peer reached the other node) and downloads byte-exact.
  dht.hostile          a scripted node (plain UDP): malformed KRPC of many kinds, answers with
                       thousands of nodes and peers, a flood of queries from one address, a bad
                       token — actorrent stays up, its memory stays bounded, it answers the next
                       good query, refuses the bad token, and serves a peer announced with a good
                       token back through get_peers.

  dht.private_never    one process seeds a public and a private torrent (BEP 27) with a scripted
                       node as its only DHT contact: get_peers and announce_peer come for the
                       public info-hash, never for the private one.

  dht.off              `seed --no-dht` binds no UDP socket and sends nothing to a node it was
                       given with --dht-bootstrap; without --no-dht the same command binds UDP on
                       the listen port's number and queries that node.

  dht_test.py --actorrent PATH --case NAME
  dht_test.py lt-dht TORRENT DIR --port P --mode seed|download|node [--bootstrap HOST:PORT]
"""
import argparse
import os
import random
import re
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

CASES = ["dht.find_lt_seeder", "dht.lt_finds_seeder", "dht.hostile", "dht.private_never", "dht.off"]
PIECE = 64 * H.KiB
SIZE = 3 * H.MiB + 123


class Failed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failed(msg)


# ------------------------------------------------------------------------------ libtorrent node
def lt_dht_main(argv):
    """A libtorrent session with DHT on, loopback only, bootstrapped from --bootstrap; seeds or
    downloads TORRENT (no tracker, no peer given) or is an idle DHT node. Prints READY <port>,
    then 'complete' when a download finished, and the peers it is connected to."""
    import libtorrent as lt
    ap = argparse.ArgumentParser(prog="dht_test.py lt-dht")
    ap.add_argument("torrent")
    ap.add_argument("datadir")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["seed", "download", "node"], required=True)
    ap.add_argument("--bootstrap", action="append", default=[])
    ap.add_argument("--expect", help="download: get_peers until this HOST:PORT is among the peers")
    a = ap.parse_args(argv)
    stop = []
    import signal
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    s = {
        "listen_interfaces": "%s:%d" % (H.LOOPBACK, a.port),
        "outgoing_interfaces": H.LOOPBACK,
        "enable_dht": True, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "dht_bootstrap_nodes": "",
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
        "dht_enforce_node_id": False, "dht_prefer_verified_node_ids": False,
        "dht_announce_interval": 5,
        "enable_incoming_utp": False, "enable_outgoing_utp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": int(lt.alert.category_t.status_notification | lt.alert.category_t.error_notification
                          | lt.alert.category_t.dht_notification | lt.alert.category_t.peer_notification
                          | lt.alert.category_t.dht_operation_notification),
    }
    ses = lt.session(s)
    for b in a.bootstrap:
        host, port = b.rsplit(":", 1)
        ses.add_dht_node((host, int(port)))
    print("READY %d" % ses.listen_port(), flush=True)
    h = None
    if a.mode == "download" and a.expect:
        # First find the seeder with a bare get_peers (no announce of ours that would let the
        # seeder dial us): proves the DHT led us to it.
        ih = lt.torrent_info(a.torrent).info_hash()
        found = False
        deadline = time.monotonic() + 60
        next_ask = 0
        while not found and not stop and time.monotonic() < deadline:
            if time.monotonic() >= next_ask:
                ses.dht_get_peers(ih)
                next_ask = time.monotonic() + 1
            for al in ses.pop_alerts():
                if isinstance(al, lt.dht_get_peers_reply_alert):
                    peers = ["%s:%d" % tuple(p) for p in al.peers()]
                    print("[lt] get_peers reply: %s" % peers, file=sys.stderr, flush=True)
                    if a.expect in peers:
                        found = True
            ses.wait_for_alert(100)
        if not found:
            print("NOT FOUND", flush=True)
            return 1
        print("FOUND %s" % a.expect, flush=True)
    if a.mode != "node":
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(a.torrent)
        atp.save_path = a.datadir
        if a.mode == "seed":
            atp.flags |= lt.torrent_flags.seed_mode
        h = ses.add_torrent(atp)
        h.replace_trackers([])
    done = False
    last = 0
    while not stop:
        for al in ses.pop_alerts():
            if isinstance(al, (lt.peer_connect_alert, lt.dht_reply_alert, lt.dht_bootstrap_alert,
                               lt.listen_failed_alert)):
                print("[lt] " + al.message(), file=sys.stderr, flush=True)
        if h is not None:
            st = h.status()
            if a.mode == "download" and not done and st.is_seeding:
                done = True
                print("complete", flush=True)
            if time.monotonic() - last > 2:
                last = time.monotonic()
                peers = ["%s:%d" % tuple(p.ip) for p in h.get_peer_info()]
                print("[lt] peers %s progress %.3f" % (peers, st.progress), file=sys.stderr, flush=True)
        ses.wait_for_alert(200)
    return 0


def start_lt(sess, name, torrent, datadir, mode, bootstrap=(), expect=None):
    port = H.free_port()
    argv = [H.PY, os.path.abspath(__file__), "lt-dht", torrent, datadir, "--port", str(port),
            "--mode", mode] + (["--expect", expect] if expect else [])
    for b in bootstrap:
        argv += ["--bootstrap", b]
    p = sess.spawn(name, argv, log_path=sess.path(name + ".stdout"), stderr_path=sess.path(name + ".stderr"))
    ok = H.wait_for(lambda: "READY" in p.output() or not p.running(), 30, 0.05)
    check(ok and p.running(), "%s did not start: %s" % (name, H.tail(p.stderr_text(), 20)))
    port = int(re.search(r"READY (\d+)", p.output()).group(1))
    H.log("%s (libtorrent, %s) on 127.0.0.1:%d" % (name, mode, port))
    return p, port


def make_case_torrent(sess, name):
    root = sess.mkdir("seed")
    payload = H.make_payload(root, name + ".bin", size=SIZE, seed=name)
    torrent = H.make_torrent(payload, PIECE, sess.path(name + ".torrent"))   # no announce URL
    check(b"announce" not in open(torrent.path, "rb").read(), "the torrent has a tracker")
    return payload, torrent, root


def case_find_lt_seeder(actorrent):
    H.require({"libtorrent"})
    with H.Session("actorrent-dht-find-") as sess:
        payload, torrent, root = make_case_torrent(sess, "dht_find")
        lt_seed, lt_port = start_lt(sess, "lt_seed", torrent.path, root, "seed")
        out = sess.mkdir("download")
        argv = [actorrent, "download", torrent.path, "-o", out, "--listen", "127.0.0.1:0",
                "--dht-bootstrap", "127.0.0.1:%d" % lt_port, "--timeout", "90", "-vv"]
        H.log("run: " + " ".join(argv))
        p = sess.spawn("actorrent", argv, log_path=sess.path("actorrent.stdout"),
                       stderr_path=sess.path("actorrent.stderr"))
        rc = p.wait(100)
        if rc is None:
            p.stop(grace=3)
        err = p.stderr_text()
        check(rc == 0, "actorrent exited %s\n%s\nlibtorrent:\n%s" % (rc, H.tail(err, 40),
                                                                    H.tail(lt_seed.stderr_text(), 20)))
        check("complete:" in p.output(), "no 'complete:' line")
        check(re.search(r"DHT: [1-9]\d* peers for %s" % torrent.info_hash_hex, err),
              "actorrent's log does not show peers found through the DHT")
        H.verify_download(payload, out)
        state = os.path.join(out, ".actorrent", "dht.dat")
        check(os.path.exists(state), "no node table saved at %s" % state)
        saved = H.bdecode(open(state, "rb").read())
        nodes = saved[b"nodes"]
        ports = [struct.unpack(">H", nodes[i + 24:i + 26])[0] for i in range(0, len(nodes), 26)]
        check(lt_port in ports, "the saved node table %s lacks the libtorrent node %d" % (ports, lt_port))
        # Second run, data and resume data gone, no --dht-bootstrap: the saved table alone
        # leads back to the seeder (and the node id is the saved one).
        for f in os.listdir(out):
            if f != ".actorrent":
                os.remove(os.path.join(out, f))
        for f in os.listdir(os.path.join(out, ".actorrent")):
            if f != "dht.dat":
                os.remove(os.path.join(out, ".actorrent", f))
        argv = [actorrent, "download", torrent.path, "-o", out, "--listen", "127.0.0.1:0",
                "--timeout", "90", "-vv"]
        H.log("run: " + " ".join(argv))
        p = sess.spawn("actorrent2", argv, log_path=sess.path("actorrent2.stdout"),
                       stderr_path=sess.path("actorrent2.stderr"))
        rc = p.wait(100)
        if rc is None:
            p.stop(grace=3)
        err = p.stderr_text()
        check(rc == 0, "second run (saved node table only) exited %s\n%s" % (rc, H.tail(err, 30)))
        check(re.search(r"node id %s, 1 saved nodes, 0 bootstrap nodes" % saved[b"id"].hex()[:8], err),
              "the second run did not start from the saved node id and table:\n" + H.tail(err, 30))
        H.verify_download(payload, out)
        H.log("PASS: found the libtorrent seeder through the DHT, byte-exact; node table saved "
              "and enough for the next run")


def case_lt_finds_seeder(actorrent):
    H.require({"libtorrent"})
    with H.Session("actorrent-dht-seed-") as sess:
        payload, torrent, root = make_case_torrent(sess, "dht_seed")
        node, node_port = start_lt(sess, "lt_node", torrent.path, root, "node")
        port = H.free_port()
        argv = [actorrent, "seed", torrent.path, root, "--listen", "127.0.0.1:%d" % port,
                "--dht-bootstrap", "127.0.0.1:%d" % node_port, "-vv"]
        H.log("run: " + " ".join(argv))
        seeder = sess.spawn("actorrent", argv, log_path=sess.path("actorrent.stdout"),
                            stderr_path=sess.path("actorrent.stderr"))
        ok = H.wait_for(lambda: "seeding:" in seeder.output() or not seeder.running(), 30, 0.05)
        check(ok and seeder.running(), "actorrent seed did not start:\n" + H.tail(seeder.stderr_text(), 30))
        dht_port = int(re.search(r"DHT on UDP [\d.]+:(\d+)", seeder.stderr_text()).group(1))
        check(dht_port == port, "the DHT is on UDP %d, not on the listen port's number %d" % (dht_port, port))
        out = sess.mkdir("download")
        leech, _ = start_lt(sess, "lt_leech", torrent.path, out, "download",
                            ["127.0.0.1:%d" % dht_port], expect="127.0.0.1:%d" % port)
        ok = H.wait_for(lambda: "FOUND" in leech.output() or not leech.running(), 70, 0.2)
        check(ok and leech.running(), "libtorrent's get_peers never returned actorrent's address\n"
              "libtorrent:\n%s\nactorrent:\n%s" % (H.tail(leech.stderr_text(), 30),
                                                   H.tail(seeder.stderr_text(), 40)))
        ok = H.wait_for(lambda: "complete" in leech.output() or not leech.running(), 90, 0.2)
        check(ok and leech.running(), "libtorrent did not complete through the DHT\nlibtorrent:\n%s\n"
              "actorrent:\n%s" % (H.tail(leech.stderr_text(), 30), H.tail(seeder.stderr_text(), 40)))
        H.verify_download(payload, out)
        check(seeder.running(), "actorrent seed exited")
        H.log("PASS: libtorrent found the actorrent seeder through the DHT, byte-exact")


# ------------------------------------------------------------------------------ hostile node
def bencode(x):
    return H.bencode(x)


def rss_kib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def case_hostile(actorrent):
    with H.Session("actorrent-dht-hostile-") as sess:
        node = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        node.bind((H.LOOPBACK, 0))
        node.settimeout(0.2)
        node_port = node.getsockname()[1]
        payload, torrent, root = make_case_torrent(sess, "dht_hostile")
        port = H.free_port()
        argv = [actorrent, "seed", torrent.path, root, "--listen", "127.0.0.1:%d" % port,
                "--dht-bootstrap", "127.0.0.1:%d" % node_port, "-vv"]
        H.log("run: " + " ".join(argv))
        p = sess.spawn("actorrent", argv, log_path=sess.path("actorrent.stdout"),
                       stderr_path=sess.path("actorrent.stderr"))
        ok = H.wait_for(lambda: "DHT on UDP" in p.stderr_text() or not p.running(), 30, 0.05)
        check(ok and p.running(), "actorrent did not start its DHT:\n" + H.tail(p.stderr_text(), 30))
        target = (H.LOOPBACK, int(re.search(r"DHT on UDP [\d.]+:(\d+)", p.stderr_text()).group(1)))
        my_id = os.urandom(20)

        # actorrent bootstraps from us: answer every query of its with a flood. The nodes and
        # peers all point at 127.0.0.x ports where nothing listens (never off this machine).
        def flood_nodes(n):
            return b"".join(os.urandom(20) + bytes([127, 0, 0, 2 + i % 200]) + struct.pack(">H", 1 + i % 60000)
                            for i in range(n))

        answered = {"huge": 0, "fits": 0}

        def serve(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    data, src = node.recvfrom(65536)
                except socket.timeout:
                    continue
                if src != target:
                    continue
                try:
                    msg = H.bdecode(data)
                except Exception:
                    continue
                if msg.get(b"y") != b"q":
                    continue
                t = msg[b"t"]
                # alternately: a reply that fits the limit but holds 300 nodes, and 2,000 nodes
                # + 3,000 peers (a 76 KB datagram is not possible: keep it under 64 KiB). The
                # fitting one first: it puts this node in the table, so that the torrent's
                # get_peers comes here too (bootstrap addresses are asked by the bootstrap only).
                if answered["huge"] < answered["fits"]:
                    r = {b"id": my_id, b"nodes": flood_nodes(2000), b"token": b"x" * 8,
                         b"values": [bytes([127, 0, 0, 3]) + struct.pack(">H", i + 1) for i in range(400)]}
                    answered["huge"] += 1
                else:
                    r = {b"id": my_id, b"nodes": flood_nodes(300), b"token": b"x" * 8}
                    answered["fits"] += 1
                node.sendto(bencode({b"t": t, b"y": b"r", b"r": r}), target)

        base_rss = rss_kib(p.pid)
        serve(6)
        check(answered["huge"] >= 1 and answered["fits"] >= 1,
              "actorrent did not query the bootstrap node (%s)" % answered)

        def query(q, args, tid=b"zz", sock=None):
            sock = sock or node
            time.sleep(0.25)   # paced under the per-IP limit of 5 queries/s
            a = {b"id": my_id}
            a.update(args)
            sock.sendto(bencode({b"t": tid, b"y": b"q", b"q": q, b"a": a}), target)
            end = time.monotonic() + 3
            while time.monotonic() < end:
                try:
                    data, src = sock.recvfrom(65536)
                except socket.timeout:
                    continue
                if src != target:
                    continue
                try:
                    m = H.bdecode(data)
                except Exception:
                    continue
                if m.get(b"t") == tid and m.get(b"y") in (b"r", b"e"):
                    return m
            return None

        garbage = [b"", b"d", b"i42e", b"le", b"d1:t2:aa1:y1:qe", b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe",
                   b"d1:ade1:q9:get_peers1:t2:aa1:y1:qe", b"d1:t2:aa1:y1:r1:rd2:id20:" + b"a" * 20 + b"5:nodes3:xyzee",
                   b"d1:t2:aa1:y1:e1:eli201eee", b"d" * 5000, b"l" * 100 + b"e" * 100, os.urandom(1400),
                   b"d1:t" + b"9" * 30 + b":x1:y1:qe", b"d1:t2:aa1:y1:q1:q4:ping1:ai5ee",
                   bencode({b"t": b"aa", b"y": b"q", b"q": b"announce_peer",
                            b"a": {b"id": my_id, b"info_hash": b"h" * 20, b"port": 70000, b"token": b"x"}}),
                   os.urandom(60000)]
        rng = random.Random(7)
        for i in range(2000):
            g = garbage[i % len(garbage)]
            if i % 3 == 0 and len(g) > 4:   # and truncations of everything
                g = g[:rng.randrange(len(g))]
            node.sendto(g, target)
        # A flood of good queries from one address: answered up to the per-IP limit, no more.
        for i in range(500):
            node.sendto(bencode({b"t": struct.pack(">H", i), b"y": b"q", b"q": b"ping", b"a": {b"id": my_id}}), target)
        flood_answers = 0
        end = time.monotonic() + 2
        while time.monotonic() < end:
            try:
                data, src = node.recvfrom(65536)
                if src == target and H.bdecode(data).get(b"y") == b"r":
                    flood_answers += 1
            except socket.timeout:
                pass
            except Exception:
                pass
        H.log("flood of 500 pings: %d answered" % flood_answers)
        check(flood_answers <= 50, "%d of 500 pings in a burst were answered: no per-IP limit" % flood_answers)
        # The flooding address is ignored for a while; another one is answered meanwhile.
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind(("127.0.0.2", 0))
        other.settimeout(0.2)
        m = query(b"ping", {}, sock=other)
        check(m is not None and m[b"y"] == b"r", "a second address was not answered: %r" % (m,))
        other.close()
        time.sleep(10.5)   # the flooder's block (10 s) is over
        # Paced queries over the limit (10/s for 6 s, under the 20/s that blocks): about 5 of
        # them a second are answered.
        def drain():
            while True:
                try:
                    node.recvfrom(65536)
                except socket.timeout:
                    return
        drain()
        paced_answers = 0
        start = time.monotonic()
        for i in range(60):
            node.sendto(bencode({b"t": b"p" + struct.pack(">H", i), b"y": b"q", b"q": b"ping",
                                 b"a": {b"id": my_id}}), target)
            until = start + (i + 1) * 0.1
            while time.monotonic() < until:
                node.settimeout(max(0.001, until - time.monotonic()))
                try:
                    data, src = node.recvfrom(65536)
                    if src == target and H.bdecode(data).get(b"y") == b"r":
                        paced_answers += 1
                except socket.timeout:
                    pass
                except Exception:
                    pass
        node.settimeout(0.2)
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            try:
                data, src = node.recvfrom(65536)
                if src == target and H.bdecode(data).get(b"y") == b"r":
                    paced_answers += 1
            except socket.timeout:
                pass
            except Exception:
                pass
        H.log("60 pings at 10/s: %d answered" % paced_answers)
        check(20 <= paced_answers <= 40, "%d of 60 paced pings answered: expected ~5 a second" % paced_answers)
        time.sleep(1.1)   # a new second for the per-IP limit
        check(p.running(), "actorrent died:\n" + H.tail(p.stderr_text(), 30))
        m = query(b"ping", {})
        check(m is not None and m[b"y"] == b"r" and len(m[b"r"][b"id"]) == 20,
              "no answer to a good ping after the garbage: %r" % (m,))
        m = query(b"find_node", {b"target": os.urandom(20)})
        check(m is not None and m[b"y"] == b"r", "no find_node answer: %r" % (m,))
        check(len(m[b"r"].get(b"nodes", b"")) <= 8 * 26, "find_node answered with more than 8 nodes")
        # Tokens: a bad one is refused, a good one stores the peer, get_peers serves it back.
        ih = os.urandom(20)
        m = query(b"announce_peer", {b"info_hash": ih, b"port": 4242, b"token": b"12345678"})
        check(m is not None and m[b"y"] == b"e" and m[b"e"][0] == 203, "a bad token was not refused: %r" % (m,))
        m = query(b"get_peers", {b"info_hash": ih})
        check(m is not None and m[b"y"] == b"r" and b"token" in m[b"r"], "get_peers gave no token: %r" % (m,))
        check(b"values" not in m[b"r"], "values for an info-hash nobody announced")
        token = m[b"r"][b"token"]
        m = query(b"announce_peer", {b"info_hash": ih, b"port": 4242, b"token": token})
        check(m is not None and m[b"y"] == b"r", "announce_peer with a good token failed: %r" % (m,))
        m = query(b"get_peers", {b"info_hash": ih})
        values = m[b"r"].get(b"values", []) if m else []
        check(bytes([127, 0, 0, 1]) + struct.pack(">H", 4242) in values,
              "the announced peer is not served back: %r" % (values,))
        m = query(b"vote", {})
        check(m is not None and m[b"y"] == b"e" and m[b"e"][0] == 204, "unknown method not answered with 204: %r" % (m,))
        rss = rss_kib(p.pid)
        H.log("actorrent RSS %d KiB before the flood, %d KiB after" % (base_rss, rss))
        check(rss - base_rss < 64 * 1024, "RSS grew by %d KiB" % (rss - base_rss))
        check("malformed" not in p.output(), "unexpected output")
        check(p.running(), "actorrent died")
        H.log("PASS: hostile KRPC refused, bounded, and the next good queries answered")


def case_private_never(actorrent):
    with H.Session("actorrent-dht-private-") as sess:
        node = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        node.bind((H.LOOPBACK, 0))
        node.settimeout(0.2)
        node_port = node.getsockname()[1]
        root = sess.mkdir("data")
        hashes = {}
        for name, private in (("public", False), ("private", True)):
            H.make_payload(root, name + ".bin", size=256 * H.KiB, seed=name)
            t = sess.path(name + ".torrent")
            rc = subprocess.run([actorrent, "create", os.path.join(root, name + ".bin"), "-o", t, "-q"]
                                  + (["--private"] if private else []), capture_output=True).returncode
            check(rc == 0, "actorrent create failed")
            hashes[name] = H.load_torrent(t).info_hash
        argv = [actorrent, "seed", sess.path("public.torrent"), sess.path("private.torrent"), "-o", root,
                "--listen", "127.0.0.1:%d" % H.free_port(), "--dht-bootstrap", "127.0.0.1:%d" % node_port, "-vv"]
        H.log("run: " + " ".join(argv))
        p = sess.spawn("actorrent", argv, log_path=sess.path("actorrent.stdout"),
                       stderr_path=sess.path("actorrent.stderr"))
        my_id = os.urandom(20)
        seen = {"get_peers": [], "announce_peer": []}
        end = time.monotonic() + 8
        while time.monotonic() < end and p.running():
            try:
                data, src = node.recvfrom(65536)
                m = H.bdecode(data)
            except socket.timeout:
                continue
            except Exception:
                continue
            if m.get(b"y") != b"q":
                continue
            q = m[b"q"].decode()
            if q in seen:
                seen[q].append(m[b"a"][b"info_hash"])
            # answer as the only node there is, with a token, so that actorrent announces to us
            r = {b"id": my_id, b"token": b"t0k3n123"}
            node.sendto(bencode({b"t": m[b"t"], b"y": b"r", b"r": r}), src)
        check(p.running(), "actorrent exited:\n" + H.tail(p.stderr_text(), 30))
        H.log("get_peers for %d hashes, announce_peer for %d" % (len(seen["get_peers"]), len(seen["announce_peer"])))
        check(hashes["public"] in seen["get_peers"], "no get_peers for the public torrent")
        check(hashes["public"] in seen["announce_peer"], "no announce_peer for the public torrent")
        check(hashes["private"] not in seen["get_peers"] + seen["announce_peer"],
              "the private torrent's info-hash reached the DHT")
        H.log("PASS: the public torrent is looked up and announced, the private one never")


def udp_ports():
    ports = set()
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            for line in open(path).readlines()[1:]:
                ports.add(int(line.split()[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def case_off(actorrent):
    with H.Session("actorrent-dht-off-") as sess:
        node = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        node.bind((H.LOOPBACK, 0))
        node.settimeout(0.2)
        node_port = node.getsockname()[1]
        payload, torrent, root = make_case_torrent(sess, "dht_off")
        for no_dht in (True, False):
            port = H.free_port()
            argv = [actorrent, "seed", torrent.path, root, "--listen", "127.0.0.1:%d" % port,
                    "--dht-bootstrap", "127.0.0.1:%d" % node_port] + (["--no-dht"] if no_dht else [])
            H.log("run: " + " ".join(argv))
            p = sess.spawn("actorrent", argv, log_path=sess.path("off%d.stdout" % no_dht),
                           stderr_path=sess.path("off%d.stderr" % no_dht))
            ok = H.wait_for(lambda: "seeding:" in p.output() or not p.running(), 30, 0.05)
            check(ok and p.running(), "actorrent seed did not start:\n" + H.tail(p.stderr_text(), 30))
            got = []
            end = time.monotonic() + 3
            while time.monotonic() < end:
                try:
                    got.append(node.recvfrom(65536))
                except socket.timeout:
                    pass
            bound = port in udp_ports()
            p.stop(grace=3)
            if no_dht:
                check(not bound, "--no-dht: UDP port %d is bound" % port)
                check(not got, "--no-dht: %d datagrams reached the bootstrap node" % len(got))
            else:
                check(bound, "the DHT did not bind UDP port %d" % port)
                check(got, "the DHT sent nothing to its bootstrap node")
        H.log("PASS: --no-dht binds and sends nothing; the DHT binds the listen port's number")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "lt-dht":
        return lt_dht_main(sys.argv[2:])
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
    actorrent = os.path.abspath(a.actorrent)
    try:
        {"dht.find_lt_seeder": case_find_lt_seeder, "dht.lt_finds_seeder": case_lt_finds_seeder,
         "dht.hostile": case_hostile, "dht.private_never": case_private_never,
         "dht.off": case_off}[a.case](actorrent)
    except (Failed, H.HarnessError) as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
