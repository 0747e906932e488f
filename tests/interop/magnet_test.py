#!/usr/bin/python3
"""Magnet links, BEP 9 metadata exchange and BEP 11 PEX against real libtorrent peers and
scripted hostile peers, all on 127.0.0.1 (no tracker, no DHT).

  xpe_only          `download MAGNET` whose only source is x.pe=<libtorrent seeder>: byte-exact,
                    the .torrent saved under .actorrent/<hash>.torrent (identical info-hash); the
                    same link run again uses it (no metadata fetch, data trusted).
  tracker_only      a magnet whose only source is its tr=<opentracker>, where a libtorrent
                    seeder is registered: peers come from the tracker while awaiting metadata.
  big_metadata      a torrent of 400 files whose info dictionary is > 16 KiB (2+ metadata pieces)
  serve_metadata    actorrent seeds a .torrent; a libtorrent downloader given only a magnet with
                    x.pe=<actorrent> gets the metadata from it and downloads byte-exact.
  hostile_oversized a scripted peer announcing 20 MiB of metadata is dropped and not dialled
                    again; the download completes from the honest seeder also in the link.
  hostile_wrong     a scripted peer serving metadata of the right size but wrong bytes is
                    banned after its pieces fail the SHA-1 check; memory stays bounded.
  pex_send          actorrent, told of a libtorrent seeder and a libtorrent leecher that knows no
                    peer, tells the leecher of the seeder through ut_pex.
  pex               three peers: actorrent is told only of a libtorrent peer that has nothing
                    and learns the seeder from its ut_pex: the download (byte-exact) can only
                    come from the peer it learnt through PEX.
  pex_flood         a scripted peer sending ut_pex messages back to back is disconnected.
  bad_links         malformed links: exit 2 and a precise message; `info MAGNET` prints the link.

  magnet_test.py --actorrent PATH --case NAME
"""
import argparse
import hashlib
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

CASES = ["xpe_only", "tracker_only", "big_metadata", "serve_metadata", "hostile_oversized",
         "hostile_wrong", "pex", "pex_send", "pex_flood", "bad_links"]
TIMEOUT = 90
PIECE = 64 * 1024


class CaseFailed(Exception):
    pass


# A wrong or oversized metadata must not grow the process. AddressSanitizer adds redzones and
# shadow memory (the same run measured 229 MiB under it), so a sanitizer build gets a looser bound.
RSS_LIMIT_MIB = 1024 if os.environ.get("ASAN_OPTIONS") else 200


def check(cond, msg):
    if not cond:
        raise CaseFailed(msg)


def magnet(torrent, peers, name=True):
    link = "magnet:?xt=urn:btih:" + torrent.info_hash_hex
    if name:
        link += "&dn=" + torrent.name
    for p in peers:
        link += "&x.pe=" + p
    return link


def run_actorrent(actorrent, sess, tag, args, timeout=TIMEOUT, expect_ok=True):
    argv = [actorrent, "download"] + args + ["--no-tracker", "--listen", "%s:0" % H.LOOPBACK,
                                             "--timeout", str(timeout - 15), "-vv"]
    H.log("run %s: %s" % (tag, " ".join(argv[1:])))
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=H.child_env(), timeout=timeout)
    with open(sess.path("actorrent-%s.stderr" % tag), "w") as f:
        f.write(r.stderr)
    if expect_ok:
        line = next((ln for ln in r.stdout.splitlines() if ln.startswith("complete:")), None)
        check(r.returncode == 0 and line is not None,
              "%s: exit %d\nstdout: %s\nstderr: %s"
              % (tag, r.returncode, r.stdout, H.tail(r.stderr, 40)))
        H.log(line)
    return r


def expect_exact(payload, out):
    problems = H.verify_download(payload, out)
    check(not problems, "download differs: %s" % problems)


def libtorrent_seeder(sess, torrent, data):
    return H.LibtorrentSeeder(sess, torrent, data).start()


# ------------------------------------------------------------------------------ scripted peers
def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def ext_msg(ext_id, payload):
    return struct.pack(">IBB", len(payload) + 2, 20, ext_id) + payload


class ScriptedPeer:
    """Listens on 127.0.0.1, accepts actorrent's connections and plays `behaviour` on each.
    Records how many connections came and whether actorrent closed them."""

    def __init__(self, info_hash, behaviour):
        self.info_hash, self.behaviour = info_hash, behaviour
        self.sock = socket.socket()
        self.sock.bind((H.LOOPBACK, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.closed_by_remote = 0
        self.notes = []
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self):
        return "%s:%d" % (H.LOOPBACK, self.port)

    def _accept(self):
        self.sock.settimeout(0.5)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(30)
        try:
            hs = recv_exact(c, 68)
            check(hs[28:48] == self.info_hash, "handshake for another torrent")
            check(hs[25] & 0x10, "actorrent did not set the extension bit")
            reserved = bytearray(8)
            reserved[5] |= 0x10
            c.sendall(b"\x13BitTorrent protocol" + bytes(reserved) + self.info_hash +
                      b"-SC0001-" + os.urandom(12))
            self.behaviour(self, c)
            # then read until actorrent closes
            while c.recv(65536):
                pass
            self.closed_by_remote += 1
        except (EOFError, ConnectionResetError, BrokenPipeError):
            self.closed_by_remote += 1
        except Exception as e:  # noqa: BLE001 -- recorded for the failure message
            self.notes.append(repr(e))
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.sock.close()


def read_messages(c, until):
    """Reads messages until until(msg_id, payload) is true; returns that payload."""
    while True:
        (n,) = struct.unpack(">I", recv_exact(c, 4))
        if n == 0:
            continue
        body = recv_exact(c, n)
        if until(body[0], body[1:]):
            return body[1:]


def metadata_server(info, claimed_size=None, corrupt=False):
    """A behaviour: ext handshake offering ut_metadata (id 3) with claimed_size, then answers
    every request with a piece of `info` (flipped bytes when corrupt)."""
    size = claimed_size if claimed_size is not None else len(info)

    def play(peer, c):
        c.sendall(ext_msg(0, H.bencode({"m": {"ut_metadata": 3}, "metadata_size": size,
                                        "v": "scripted"})))
        ours = {}

        def on(mid, payload):
            if mid != 20:
                return False
            if payload[0] == 0:
                d = H.bdecode(payload[1:])
                ours.update({k.decode(): v for k, v in d.get(b"m", {}).items()})
                return False
            req = H.bdecode(payload[1:])
            piece = req[b"piece"]
            data = info[piece * 16384:(piece + 1) * 16384]
            if corrupt:
                data = bytes(b ^ 0x5a for b in data)
            hdr = H.bencode({"msg_type": 1, "piece": piece, "total_size": len(info)})
            c.sendall(ext_msg(ours["ut_metadata"], hdr + data))
            peer.notes.append("served piece %d" % piece)
            return False

        read_messages(c, on)

    return play


def peak_rss_kb(pid):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def info_bytes(torrent):
    data = open(torrent.path, "rb").read()
    return data[data.index(b"4:info") + 6:-1]


# ------------------------------------------------------------------------------ libtorrent magnet
LT_MAGNET = r'''
import sys, time, libtorrent as lt
link, out, peer, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
ses = lt.session({"listen_interfaces": "127.0.0.1:0", "outgoing_interfaces": "127.0.0.1",
                  "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
                  "enable_natpmp": False, "dht_bootstrap_nodes": "",
                  "enable_incoming_utp": False, "enable_outgoing_utp": False,
                  "allow_multiple_connections_per_ip": True})
atp = lt.parse_magnet_uri(link)
atp.save_path = out
h = ses.add_torrent(atp)
host, port = peer.rsplit(":", 1)
h.connect_peer((host, int(port)), 0)
t0 = time.monotonic()
got_meta = False
while time.monotonic() - t0 < timeout:
    st = h.status()
    if st.has_metadata and not got_meta:
        got_meta = True
        print("metadata after %.2fs" % (time.monotonic() - t0), flush=True)
    if st.is_seeding:
        print("complete", flush=True)
        sys.exit(0)
    if int(time.monotonic() - t0) % 5 == 0:
        h.connect_peer((host, int(port)), 0)
    time.sleep(0.2)
print("timeout: metadata %s progress %.2f" % (got_meta, h.status().progress), flush=True)
sys.exit(2)
'''

LT_PEER = r'''
import sys, time, libtorrent as lt
mode, torrent, data, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
peer = sys.argv[5] if len(sys.argv) > 5 else None
# "passive-seed": a seed that never dials (libtorrent's seeding_outgoing_connections off), so
# that a peer can only reach it by learning its address (here: from the empty peer's ut_pex).
passive = mode == "passive-seed"
if passive:
    mode = "seed"
# "seed": seeds from data. "empty": wants nothing (every file priority 0), so it has nothing to
# give, stays connected to the seeder `peer` and tells its other peers about it through ut_pex
# (on by default). Neither closes connections between peers that need nothing of each other.
ses = lt.session({"listen_interfaces": "127.0.0.1:%d" % port, "outgoing_interfaces": "127.0.0.1",
                  "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
                  "enable_natpmp": False, "dht_bootstrap_nodes": "",
                  "enable_incoming_utp": False, "enable_outgoing_utp": False,
                  "allow_multiple_connections_per_ip": True,
                  "close_redundant_connections": False, "min_reconnect_time": 1,
                  "seeding_outgoing_connections": not passive})
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(torrent)
atp.save_path = data
if mode == "seed":
    atp.flags |= lt.torrent_flags.seed_mode
elif mode == "empty":
    atp.file_priorities = [0] * atp.ti.num_files()
h = ses.add_torrent(atp)
ready = mode == "seed"
if ready:
    print("READY", flush=True)
if mode == "watch":
    h.set_download_limit(64 * 1024)  # still a leecher when actorrent's first ut_pex comes
while mode == "watch":
    # "watch": a leecher given no peer but actorrent's address (actorrent dials it); says when
    # it is connected to another libtorrent (the seeder, also given no peer): only actorrent's
    # ut_pex can have told one of them of the other.
    for pi in h.get_peer_info():
        if pi.pid.to_bytes().startswith(b"-LT"):
            print("LEARNT %s source %d" % (pi.ip, pi.source), flush=True)
    time.sleep(0.2)
while True:
    if peer:
        host, p = peer.rsplit(":", 1)
        connected = any(pi.ip[1] == int(p) for pi in h.get_peer_info())
        if connected and not ready:
            ready = True
            print("READY", flush=True)  # connected to the seeder: it has something to tell
        if not connected and h.status().state != lt.torrent_status.checking_files:
            h.connect_peer((host, int(p)), 0)
    st = h.status()
    print("peers %d have %d" % (st.num_peers, st.num_pieces), file=sys.stderr, flush=True)
    time.sleep(1)
'''


# ------------------------------------------------------------------------------ cases
def case_xpe_only(actorrent, sess, big=False):
    data = sess.mkdir("data")
    if big:
        files = [("dir%02d/file-with-a-long-name-to-grow-the-info-dictionary-%04d.bin" % (i % 20, i),
                  1000 + 37 * i) for i in range(400)]
        payload = H.make_payload(data, "many", files=files, seed="magnet-big")
        torrent = H.make_torrent(payload, 16 * 1024, sess.path("t.torrent"))
        check(len(info_bytes(torrent)) > 16384,
              "the info dictionary is only %d bytes" % len(info_bytes(torrent)))
    else:
        payload = H.make_payload(data, "single.bin", size=3 * 1024 * 1024 + 777, seed="magnet")
        torrent = H.make_torrent(payload, PIECE, sess.path("t.torrent"))
    H.log("info dictionary: %d bytes (%d metadata pieces)"
          % (len(info_bytes(torrent)), (len(info_bytes(torrent)) + 16383) // 16384))
    seeder = libtorrent_seeder(sess, torrent, data)
    out = sess.mkdir("out")
    link = magnet(torrent, [seeder.endpoint], name=False)
    r = run_actorrent(actorrent, sess, "magnet", [link, "-o", out])
    check(re.search(r"^complete: %s %d bytes" % (re.escape(torrent.name), payload.total_size),
                    r.stdout, re.M),
          "the completion line does not name the torrent and its size: %s" % r.stdout)
    expect_exact(payload, out)
    check("metadata of %s received" % torrent.info_hash_hex in r.stderr,
          "no 'metadata received' line in the log")
    saved = os.path.join(out, ".actorrent", torrent.info_hash_hex + ".torrent")
    check(os.path.isfile(saved), "no saved .torrent at %s" % saved)
    again = H.load_torrent(saved)
    check(again.info_hash == torrent.info_hash, "the saved .torrent has another info-hash")
    # The same link again: the saved .torrent is used, nothing is fetched.
    seeder.stop()
    r2 = run_actorrent(actorrent, sess, "again", [link, "-o", out], timeout=40)
    check("fetching its metadata" not in r2.stderr, "the second run fetched the metadata again")
    m = re.search(r"(\d+) bytes downloaded", r2.stdout)
    check(m and int(m.group(1)) == 0, "the second run downloaded: %s" % r2.stdout)


def case_tracker_only(actorrent, sess):
    data = sess.mkdir("data")
    payload = H.make_payload(data, "single.bin", size=1024 * 1024 + 99, seed="magnet-tr")
    tracker = H.OpenTracker(sess)
    torrent = H.make_torrent(payload, PIECE, sess.path("t.torrent"),
                             announce=tracker.announce_url)
    tracker.start([torrent.info_hash])
    H.LibtorrentSeeder(sess, torrent, data, tracker=tracker).start()
    out = sess.mkdir("out")
    link = magnet(torrent, []) + "&tr=" + tracker.announce_url
    argv = [actorrent, "download", link, "-o", out, "--listen", "%s:0" % H.LOOPBACK,
            "--timeout", "60", "-vv"]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=H.child_env(), timeout=80)
    check(r.returncode == 0 and "complete:" in r.stdout,
          "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout, H.tail(r.stderr, 30)))
    expect_exact(payload, out)
    saved = H.load_torrent(os.path.join(out, ".actorrent", torrent.info_hash_hex + ".torrent"))
    check(saved.announce == tracker.announce_url, "the saved .torrent lost the link's tracker")


def case_serve_metadata(actorrent, sess):
    data = sess.mkdir("data", mode=0o755)
    files = [("served-file-with-a-long-name-so-that-the-info-dictionary-grows-%03d.bin" % i,
              5000 + i) for i in range(300)]
    payload = H.make_payload(data, "served", files=files, seed="magnet-serve")
    torrent = H.make_torrent(payload, 16 * 1024, sess.path("t.torrent"))
    check(len(info_bytes(torrent)) > 16384, "info dictionary not > 16 KiB")
    port = H.free_port()
    seed = sess.spawn("actorrent-seed", [actorrent, "seed", torrent.path, data, "--listen",
                                         "%s:%d" % (H.LOOPBACK, port), "--no-tracker", "-v"],
                      env=H.child_env())
    check(H.wait_for(lambda: "seeding:" in seed.output() or not seed.running(), 30),
          "actorrent seed did not start: %s" % H.tail(seed.output()))
    out = sess.mkdir("out")
    link = magnet(torrent, ["%s:%d" % (H.LOOPBACK, port)], name=False)
    r = subprocess.run([H.PY, "-c", LT_MAGNET, link, out, "%s:%d" % (H.LOOPBACK, port), "60"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=80)
    H.log(r.stdout.strip())
    check(r.returncode == 0, "libtorrent could not download from the magnet: %s %s"
          % (r.stdout, H.tail(r.stderr)))
    expect_exact(payload, out)


def case_hostile_oversized(actorrent, sess):
    data = sess.mkdir("data")
    payload = H.make_payload(data, "single.bin", size=1024 * 1024 + 5, seed="magnet-h1")
    torrent = H.make_torrent(payload, PIECE, sess.path("t.torrent"))
    hostile = ScriptedPeer(torrent.info_hash, metadata_server(info_bytes(torrent),
                                                                claimed_size=20 << 20))
    sess.at_close(hostile.close)
    # The honest seeder comes up only once the hostile peer was dealt with, so that the
    # metadata cannot have come before (actorrent keeps re-dialling the seeder's address).
    seed_port = H.free_port()
    out = sess.mkdir("out")
    link = magnet(torrent, [hostile.endpoint, "%s:%d" % (H.LOOPBACK, seed_port)])
    argv = [actorrent, "download", link, "-o", out, "--no-tracker", "--listen",
            "%s:0" % H.LOOPBACK, "--timeout", "60", "-vv"]
    p = sess.spawn("actorrent", argv, env=H.child_env(), stderr_path=sess.path("a.stderr"))
    check(H.wait_for(lambda: hostile.closed_by_remote >= 1 or not p.running(), 30),
          "actorrent did not drop the oversized peer (%s)" % hostile.notes)
    H.LibtorrentSeeder(sess, torrent, data, port=seed_port).start()
    check(p.wait(70) == 0, "actorrent exited %s: %s" % (p.returncode, H.tail(p.output())))
    expect_exact(payload, out)
    check(hostile.connections == 1, "the oversized peer was dialled %d times"
          % hostile.connections)
    check("metadata_size 20971520 out of range" in p.stderr_text(),
          "no precise reason for dropping the oversized peer in the log")


def case_hostile_wrong(actorrent, sess):
    data = sess.mkdir("data")
    files = [("f%03d.bin" % i, 3000 + i) for i in range(300)]
    payload = H.make_payload(data, "wrong", files=files, seed="magnet-h2")
    torrent = H.make_torrent(payload, 16 * 1024, sess.path("t.torrent"))
    info = info_bytes(torrent)
    hostile = ScriptedPeer(torrent.info_hash, metadata_server(info, corrupt=True))
    sess.at_close(hostile.close)
    out = sess.mkdir("out")
    argv = [actorrent, "download", magnet(torrent, [hostile.endpoint]), "-o", out, "--no-tracker",
            "--listen", "%s:0" % H.LOOPBACK, "-vv"]
    p = sess.spawn("actorrent", argv, env=H.child_env(), stderr_path=sess.path("a.stderr"))
    ok = H.wait_for(lambda: hostile.closed_by_remote >= 1 or not p.running(), 30)
    check(ok and p.running(), "actorrent did not drop the peer with wrong metadata (%s)"
          % hostile.notes)
    time.sleep(3)  # a re-dial would come within this (peers are tried every second)
    rss = peak_rss_kb(p.pid)
    err = p.stderr_text()
    check(hostile.connections == 1, "the banned peer was dialled %d times" % hostile.connections)
    check("does not match the info-hash" in err, "no precise reason in the log: %s"
          % H.tail(err))
    check(sum(1 for n in hostile.notes if n.startswith("served")) == (len(info) + 16383) // 16384,
          "not every metadata piece was asked for: %s" % hostile.notes)
    check(not os.path.exists(os.path.join(out, "wrong")), "files created from wrong metadata")
    check(0 < rss < RSS_LIMIT_MIB * 1024, "peak RSS %d KiB (limit %d MiB)" % (rss, RSS_LIMIT_MIB))


def case_pex(actorrent, sess):
    data = sess.mkdir("data")
    payload = H.make_payload(data, "single.bin", size=2 * 1024 * 1024 + 3, seed="magnet-pex")
    torrent = H.make_torrent(payload, PIECE, sess.path("t.torrent"))
    seed_port, empty_port = H.free_port(), H.free_port()
    # The seeder never dials: learning of actorrent from the empty peer's PEX, it would otherwise
    # connect to actorrent itself, and the download would not need actorrent's PEX at all.
    seeder = sess.spawn("lt-seed", [H.PY, "-c", LT_PEER, "passive-seed", torrent.path, data,
                                    str(seed_port)], env=H.child_env())
    check(H.wait_for(lambda: "READY" in seeder.output() and H.listening_on_loopback(seed_port),
                     30), "the libtorrent seeder did not start")
    empty = sess.spawn("lt-empty", [H.PY, "-c", LT_PEER, "empty", torrent.path,
                                    sess.mkdir("empty"), str(empty_port),
                                    "%s:%d" % (H.LOOPBACK, seed_port)], env=H.child_env())
    check(H.wait_for(lambda: "READY" in empty.output() and H.listening_on_loopback(empty_port), 60),
          "the empty libtorrent peer did not connect to the seeder: %s" % H.tail(empty.output()))
    out = sess.mkdir("out")
    # Told only of the empty peer (with the .torrent: PEX for a regular download, and through a
    # magnet: PEX while fetching the metadata).
    r = run_actorrent(actorrent, sess, "pex",
                      [torrent.path, "-o", out, "--peer", "%s:%d" % (H.LOOPBACK, empty_port)])
    expect_exact(payload, out)
    check("ut_pex:" in r.stderr, "no ut_pex in the log")
    out2 = sess.mkdir("out2")
    run_actorrent(actorrent, sess, "pex-magnet",
                  [magnet(torrent, ["%s:%d" % (H.LOOPBACK, empty_port)]), "-o", out2])
    expect_exact(payload, out2)


def case_pex_send(actorrent, sess):
    data = sess.mkdir("data")
    payload = H.make_payload(data, "single.bin", size=4 * 1024 * 1024 + 11, seed="magnet-pexsend")
    torrent = H.make_torrent(payload, PIECE, sess.path("t.torrent"))
    seed_port, watch_port = H.free_port(), H.free_port()
    seeder = sess.spawn("lt-seed", [H.PY, "-c", LT_PEER, "seed", torrent.path, data,
                                    str(seed_port)], env=H.child_env())
    check(H.wait_for(lambda: "READY" in seeder.output() and H.listening_on_loopback(seed_port),
                     30), "the libtorrent seeder did not start")
    seed_ep = "%s:%d" % (H.LOOPBACK, seed_port)
    watcher = sess.spawn("lt-watch", [H.PY, "-c", LT_PEER, "watch", torrent.path,
                                      sess.mkdir("watch"), str(watch_port), seed_ep],
                         env=H.child_env())
    check(H.wait_for(lambda: H.listening_on_loopback(watch_port), 30),
          "the watching libtorrent peer did not start")
    out = sess.mkdir("out")
    # actorrent downloads slowly (about 16 s), so the seeder is still one of its connections
    # when a PEX round comes (a seed drops seeds).
    argv = [actorrent, "download", torrent.path, "-o", out, "--no-tracker", "--seed",
            "--download-limit", "256K", "--peer", seed_ep, "--peer", "%s:%d" % (H.LOOPBACK, watch_port),
            "--listen", "%s:0" % H.LOOPBACK, "-vv"]
    p = sess.spawn("actorrent", argv, env=H.child_env(), stderr_path=sess.path("a.stderr"))
    ok = H.wait_for(lambda: "LEARNT" in watcher.output() or not p.running(), 40)
    check(ok and p.running(), "the leecher did not learn of the seeder through actorrent's "
          "ut_pex\n%s" % H.tail(p.stderr_text()))
    H.log(next(ln for ln in watcher.output().splitlines() if ln.startswith("LEARNT")))
    check(H.wait_for(lambda: "complete:" in p.output(), 60), "actorrent did not complete")
    expect_exact(payload, out)


def case_pex_flood(actorrent, sess):
    data = sess.mkdir("data")
    payload = H.make_payload(data, "single.bin", size=300000, seed="magnet-flood")
    torrent = H.make_torrent(payload, PIECE, sess.path("t.torrent"))

    def flood(peer, c):
        c.sendall(ext_msg(0, H.bencode({"m": {"ut_pex": 7}})))
        ours = {}

        def on(mid, payload):
            if mid == 20 and payload[0] == 0:
                d = H.bdecode(payload[1:])
                ours.update({k.decode(): v for k, v in d.get(b"m", {}).items()})
                return True
            return False

        read_messages(c, on)
        # loopback addresses with nothing listening (port 9): dialling them fails at once
        added = b"".join(struct.pack(">BBBBH", 127, 77, i >> 8, i & 255, 9) for i in range(50))
        msg = ext_msg(ours["ut_pex"], H.bencode({"added": added, "added.f": b"\0" * 50,
                                                  "dropped": b""}))
        for _ in range(100):
            c.sendall(msg)
            time.sleep(0.01)

    hostile = ScriptedPeer(torrent.info_hash, flood)
    sess.at_close(hostile.close)
    out = sess.mkdir("out")
    argv = [actorrent, "download", torrent.path, "-o", out, "--no-tracker", "--peer",
            hostile.endpoint, "--listen", "%s:0" % H.LOOPBACK, "-vv"]
    p = sess.spawn("actorrent", argv, env=H.child_env(), stderr_path=sess.path("a.stderr"))
    ok = H.wait_for(lambda: hostile.closed_by_remote >= 1, 30)
    err = p.stderr_text()
    check(ok, "actorrent did not drop the PEX flood (%s)\n%s" % (hostile.notes, H.tail(err)))
    check("ut_pex flood" in err, "no precise reason in the log: %s" % H.tail(err))
    # Only the first message's peers were taken (50 at most), not 100 x 50.
    time.sleep(1)
    named = set(re.findall(r"127\.77\.\d+\.\d+:9", p.stderr_text()))
    H.log("flooded peers dialled: %d" % len(named))
    check(len(named) <= 50, "%d flooded peers taken, at most the first message's 50" % len(named))
    check(p.running(), "actorrent exited")


def case_bad_links(actorrent, sess):
    hexhash = "0123456789abcdef0123456789abcdef01234567"
    bad = [("magnet:?xt=urn:btih:0123", "magnet link: xt: info-hash of 4 characters, expected "
                                        "40 hex or 32 base32 (parameter 1)"),
           ("magnet:?dn=x", "magnet link: no xt=urn:btih:<info-hash> parameter"),
           ("magnet:?xt=urn:btih:%s&x.pe=1.2.3.4" % hexhash,
            'magnet link: x.pe: "1.2.3.4" is not HOST:PORT (parameter 2)')]
    for link, msg in bad:
        for cmd in ("download", "info"):
            r = subprocess.run([actorrent, cmd, link] + (["-o", sess.path("o")] if cmd ==
                                                         "download" else []),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=H.child_env(), timeout=30)
            check(r.returncode == 2 and msg in r.stderr,
                  "%s %s: exit %d, stderr %r; expected exit 2 and %r"
                  % (cmd, link, r.returncode, r.stderr, msg))
    check(not os.path.exists(sess.path("o")), "a malformed link created the output directory")
    r = subprocess.run([actorrent, "info", "magnet:?xt=urn:btih:%s&dn=My+Name&tr=http://t/a"
                        "&x.pe=127.0.0.1:7001&x.pe=[::1]:7002" % hexhash.upper()],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=H.child_env(), timeout=30)
    check(r.returncode == 0, "info MAGNET: exit %d %s" % (r.returncode, r.stderr))
    for want in ("info-hash:   " + hexhash, "name:        My Name", "tracker:     http://t/a",
                 "peer:        127.0.0.1:7001", "peer:        [::1]:7002"):
        check(want in r.stdout, "info MAGNET printed %r, missing %r" % (r.stdout, want))


def run_case(actorrent, case):
    with H.Session("actorrent-magnet-%s-" % case) as sess:
        if case == "xpe_only":
            case_xpe_only(actorrent, sess)
        elif case == "big_metadata":
            case_xpe_only(actorrent, sess, big=True)
        else:
            globals()["case_" + case](actorrent, sess)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--actorrent")
    ap.add_argument("--case", choices=CASES)
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(CASES))
        return 0
    try:
        run_case(a.actorrent, a.case)
    except (CaseFailed, H.HarnessError) as e:
        print("FAIL %s: %s" % (a.case, e), file=sys.stderr)
        return 1
    print("PASS %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
