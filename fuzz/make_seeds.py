#!/usr/bin/env python3
"""Writes the committed seed corpora fuzz/corpus/{bencode,metainfo,wire,tracker,extension,udp_tracker,batch,krpc,magnet,pex}/.

    fuzz/make_seeds.py [--actorrent build/actorrent] [--opentracker]

Synthetic seeds are built here from the BEPs (valid and near-valid: one field wrong each).
--actorrent adds .torrent files made by `actorrent create` (single file, nested directory with
a 0-byte file, announce tiers); --opentracker adds replies of a real opentracker on 127.0.0.1
(Debian's build: whitelist mode, so one reply is a real "failure reason"). The resume corpus
comes from the fuzz target itself: ACTORRENT_RESUME_SEEDS=fuzz/corpus/resume build-fuzz/fuzz/resume_fuzz
"""
import argparse
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def benc(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(benc(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(benc(k) + benc(x) for k, x in items) + b"e"
    raise TypeError(type(v))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def krpc_seeds():
    """BEP 5 KRPC datagrams: the BEP's examples, answers with nodes and peers, near-valid ones."""
    nid, ih = b"abcdefghij0123456789", b"mnopqrstuvwxyz123456"
    node = nid + socket.inet_aton("127.0.0.1") + struct.pack(">H", 6881)
    peer = socket.inet_aton("127.0.0.2") + struct.pack(">H", 51413)
    write("krpc", "ping", benc({"t": "aa", "y": "q", "q": "ping", "a": {"id": nid}}))
    write("krpc", "find_node", benc({"t": "aa", "y": "q", "q": "find_node", "a": {"id": nid, "target": ih}}))
    write("krpc", "get_peers", benc({"t": "aa", "y": "q", "q": "get_peers", "a": {"id": nid, "info_hash": ih}}))
    write("krpc", "announce_peer", benc({"t": "aa", "y": "q", "q": "announce_peer",
                                         "a": {"id": nid, "implied_port": 1, "info_hash": ih, "port": 6881,
                                               "token": "aoeusnth"}}))
    write("krpc", "response_nodes", benc({"t": "aa", "y": "r", "v": "LT20", "ip": peer,
                                          "r": {"id": nid, "nodes": node * 8, "token": "tok"}}))
    write("krpc", "response_values", benc({"t": "aa", "y": "r", "r": {"id": nid, "values": [peer, peer, bytes(18)],
                                                                      "token": "aoeusnth"}}))
    write("krpc", "error", benc({"t": "aa", "y": "e", "e": [201, "A Generic Error Ocurred"]}))
    write("krpc", "unknown_method", benc({"t": "aa", "y": "q", "q": "vote", "a": {"id": nid}}))
    write("krpc", "unsorted_keys", b"d1:y1:q1:t2:aa1:q4:ping1:ad2:id20:" + nid + b"ee")
    # near-valid
    write("krpc", "nodes_bad_length", benc({"t": "aa", "y": "r", "r": {"id": nid, "nodes": node[:25]}}))
    write("krpc", "short_id", benc({"t": "aa", "y": "q", "q": "ping", "a": {"id": "abc"}}))
    write("krpc", "port_out_of_range", benc({"t": "aa", "y": "q", "q": "announce_peer",
                                             "a": {"id": nid, "info_hash": ih, "port": 70000, "token": "x"}}))
    write("krpc", "no_type", benc({"t": "aa"}))


def bencode_seeds():
    seeds = {
        "int": b"i42e", "int_negative": b"i-7e", "int64_min": b"i-9223372036854775808e",
        "string": b"4:spam", "empty_string": b"0:", "list": b"l4:spami42ee",
        "dict": b"d3:bar4:spam3:fooi42ee", "nested": b"d1:ald1:bi1eee1:bli0el0:eee",
        "empty_containers": b"ldelee",
        # near-valid: each breaks one rule
        "nc_leading_zero": b"i03e", "nc_negative_zero": b"i-0e",
        "nc_unsorted_keys": b"d3:foo1:a3:bar1:be", "nc_duplicate_key": b"d1:a1:x1:a1:ye",
        "nc_string_length_zero": b"03:abc",
        "truncated_list": b"l4:spam", "short_string": b"5:abc", "int_overflow": b"i9223372036854775808e",
        "trailing_data": b"i1ei2e", "key_not_string": b"di1e1:ae", "deep": b"l" * 70 + b"e" * 70,
    }
    for k, v in seeds.items():
        write("bencode", k, v)


def pieces_for(total, piece_length):
    n = (total + piece_length - 1) // piece_length
    return b"".join(hashlib.sha1(b"piece %d" % i).digest() for i in range(n))


def metainfo_seeds():
    single = {"announce": "http://127.0.0.1:6969/announce", "created by": "make_seeds",
              "creation date": 1700000000, "comment": "seed",
              "info": {"name": "file.bin", "length": 40000, "piece length": 16384,
                       "pieces": pieces_for(40000, 16384)}}
    write("metainfo", "single_file.torrent", benc(single))
    files = [{"length": 20000, "path": ["dir", "a"]},
             {"length": 12768, "path": [".pad", "12768"], "attr": "p"},
             {"length": 0, "path": ["empty"]},
             {"length": 5, "path": ["dir", "sub", "b"]}]
    total = sum(f["length"] for f in files)
    multi = {"announce-list": [["http://a.example/announce", "http://b.example/announce"],
                               ["udp://c.example:80"], [], [42]],
             "info": {"name": "multi", "name.utf-8": "multi", "piece length": 16384,
                      "private": 1, "files": files, "pieces": pieces_for(total, 16384)}}
    write("metainfo", "multi_file_pad_private.torrent", benc(multi))
    zero = {"info": {"name": "zero", "length": 0, "piece length": 16384, "pieces": b""}}
    write("metainfo", "zero_length.torrent", benc(zero))
    # near-valid: one thing wrong each
    bad = dict(single, info=dict(single["info"], pieces=pieces_for(40000, 16384)[:40]))
    write("metainfo", "bad_piece_count.torrent", benc(bad))
    bad = dict(single, info=dict(single["info"], length=-1))
    write("metainfo", "negative_length.torrent", benc(bad))
    unsafe = dict(multi, info=dict(multi["info"], files=[{"length": total, "path": ["..", "x"]}]))
    write("metainfo", "dotdot_path.torrent", benc(unsafe))
    dup = dict(multi, info=dict(multi["info"],
                                files=[{"length": 1, "path": ["a"]}, {"length": total - 1, "path": ["a"]}]))
    write("metainfo", "duplicate_path.torrent", benc(dup))
    # info dictionary not canonical (keys out of order): refused, the info-hash would be ambiguous
    raw = benc(single)
    write("metainfo", "noncanonical_info.torrent",
          raw.replace(b"6:lengthi40000e4:name8:file.bin", b"4:name8:file.bin6:lengthi40000e"))


def msg(mid, payload=b""):
    return struct.pack(">IB", 1 + len(payload), mid) + payload


def wire_seeds():
    reserved = bytes([0, 0, 0, 0, 0, 0x10, 0, 0x05])  # extended, fast, dht
    hs = b"\x13BitTorrent protocol" + reserved + hashlib.sha1(b"info").digest() + b"-AR0001-abcdefghijkl"
    ext = benc({"m": {"ut_metadata": 2, "ut_pex": 1}, "v": "seed 1.0", "reqq": 500, "p": 6881})
    stream = b"".join([
        msg(20, b"\x00" + ext),                          # BEP 10 extension handshake
        msg(5, b"\xff\xfe\x80"),                         # bitfield, 17 pieces
        msg(4, struct.pack(">I", 16)),                   # have
        msg(2), msg(1),                                  # interested, unchoke
        msg(6, struct.pack(">III", 3, 16384, 16384)),    # request
        msg(7, struct.pack(">II", 3, 0) + bytes(range(64))),  # piece (short block)
        msg(8, struct.pack(">III", 3, 16384, 16384)),    # cancel
        msg(9, struct.pack(">H", 6881)),                 # port
        msg(0x0d, struct.pack(">I", 5)), msg(0x11, struct.pack(">I", 7)),  # suggest, allowed_fast
        msg(0x10, struct.pack(">III", 1, 0, 16384)),     # reject
        b"\x00\x00\x00\x00",                             # keep-alive
        msg(0x42, b"unknown id is skipped"),
        msg(0), msg(3),                                  # choke, not interested
    ])
    write("wire", "handshake_and_session", hs + stream)
    write("wire", "handshake_only", hs)
    write("wire", "stream_without_handshake", stream)
    write("wire", "fast_have_all_then_partial_frame", hs + msg(0x0e) + msg(0x0f) + b"\x00\x00\x40\x0d\x07")
    # near-valid
    write("wire", "have_wrong_length", msg(4, b"\x00\x00\x00\x01\x00\x00"))
    write("wire", "request_length_zero", msg(6, struct.pack(">III", 0, 0, 0)))
    write("wire", "request_too_long", msg(6, struct.pack(">III", 0, 0, 131073)))
    write("wire", "frame_over_limit", b"\x00\x10\x00\x0e\x07")
    write("wire", "wrong_protocol_string", b"\x13BitTorrent protocoX" + bytes(48) + msg(2))
    write("wire", "bitfield_spare_bit_set", hs + msg(5, b"\xff\xff"))


def extension_seeds():
    """BEP 10 extended handshake payloads (what follows message id 20 and extended id 0)."""
    write("extension", "actorrent", benc({"m": {}, "v": "actorrent/0.1", "reqq": 2000, "p": 6881,
                                          "yourip": b"\x7f\x00\x00\x01"}))
    write("extension", "libtorrent", benc({"complete_ago": -1, "m": {"lt_donthave": 7, "share_mode": 8,
                                           "upload_only": 3, "ut_holepunch": 4, "ut_metadata": 2, "ut_pex": 1},
                                           "metadata_size": 4242, "reqq": 500, "upload_only": 1,
                                           "v": "libtorrent/2.0.8.0", "yourip": bytes(16)}))
    write("extension", "unsorted_keys", b"d4:reqqi250e1:md6:ut_pexi1eee")
    # near-valid
    write("extension", "reqq_string", benc({"m": {}, "reqq": "lots"}))
    write("extension", "id_over_255", benc({"m": {"ut_pex": 256}}))
    write("extension", "yourip_5_bytes", benc({"yourip": b"12345"}))
    write("extension", "not_a_dict", b"li1ee")


def magnet_seeds():
    """Magnet links (BEP 9 URI form)."""
    h = "0123456789abcdef0123456789abcdef01234567"
    write("magnet", "full", ("magnet:?xt=urn:btih:%s&dn=My+File%%20x&tr=http%%3A%%2F%%2F127.0.0.1"
                             "%%3A6969%%2Fannounce&tr=udp://t:80&x.pe=127.0.0.1:7001&x.pe=[::1]:7002"
                             % h).encode())
    write("magnet", "base32", b"magnet:?xt=urn:btih:AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT")
    write("magnet", "numbered", ("magnet:?xt.1=urn:btmh:1220ab&xt.2=urn:btih:%s&tr.1=a&tr.2=b" % h).encode())
    # near-valid
    write("magnet", "short_hash", b"magnet:?xt=urn:btih:0123")
    write("magnet", "bad_escape", ("magnet:?xt=urn:btih:%s&dn=%%4" % h).encode())
    write("magnet", "peer_no_port", ("magnet:?xt=urn:btih:%s&x.pe=host" % h).encode())


def pex_seeds():
    """ut_pex payloads (BEP 11) and ut_metadata payloads (BEP 9): one target reads both."""
    added = b"".join(socket.inet_aton("127.0.0.%d" % i) + struct.pack(">H", 6880 + i) for i in range(1, 5))
    added6 = socket.inet_pton(socket.AF_INET6, "::1") + struct.pack(">H", 51413)
    write("pex", "libtorrent", benc({"added": added, "added.f": b"\x02\x00\x10\x01", "added6": added6,
                                     "added6.f": b"\x00", "dropped": added[:6], "dropped6": b""}))
    write("pex", "empty", benc({"added": b"", "added.f": b"", "dropped": b""}))
    write("pex", "metadata_request", benc({"msg_type": 0, "piece": 1}))
    write("pex", "metadata_data", benc({"msg_type": 1, "piece": 0, "total_size": 20}) + b"d4:name1:xe" * 2)
    write("pex", "metadata_reject", benc({"msg_type": 2, "piece": 3}))
    # near-valid
    write("pex", "added_bad_length", benc({"added": added[:7]}))
    write("pex", "metadata_type_7", benc({"msg_type": 7, "piece": 0}))


def tracker_seeds():
    compact = b"".join(socket.inet_aton("127.0.0.%d" % i) + struct.pack(">H", 6880 + i) for i in range(1, 5))
    compact += socket.inet_aton("10.0.0.1") + b"\x00\x00"  # port 0: dropped
    peers6 = socket.inet_pton(socket.AF_INET6, "::1") + struct.pack(">H", 51413)
    write("tracker", "compact_v4_v6", benc({"interval": 1800, "min interval": 900, "complete": 3,
                                             "incomplete": 7, "peers": compact, "peers6": peers6}))
    write("tracker", "dict_peers", benc({"interval": 60, "tracker id": "abc",
                                          "warning message": "slow down",
                                          "peers": [{"ip": "127.0.0.1", "peer id": b"x" * 20, "port": 6881},
                                                    {"ip": "host.example", "port": 1},
                                                    {"ip": "", "port": 2}, {"ip": "10.0.0.2", "port": 0},
                                                    "junk"]}))
    write("tracker", "failure", benc({"failure reason": "torrent not registered"}))
    # real trackers do not always sort their keys: accepted, nothing here is hashed
    write("tracker", "unsorted_keys", b"d8:intervali1800e5:peers6:" + compact[:6] + b"8:completei1ee")
    # near-valid
    write("tracker", "compact_bad_length", benc({"interval": 1800, "peers": compact[:7]}))
    write("tracker", "negative_interval", benc({"interval": -1, "peers": b""}))
    write("tracker", "peers_wrong_type", benc({"interval": 1800, "peers": 5}))
    write("tracker", "not_a_dict", benc(["interval", 1800]))


def udp_tracker_seeds():
    # BEP 15 replies: action, transaction id, then the action's fields
    tx = 0x1234abcd
    peers = socket.inet_aton("127.0.0.1") + struct.pack(">H", 6881) + \
        socket.inet_aton("10.1.2.3") + struct.pack(">H", 0) + \
        socket.inet_aton("192.168.0.9") + struct.pack(">H", 51413)
    write("udp_tracker", "connect", struct.pack(">IIQ", 0, tx, 0x0102030405060708))
    write("udp_tracker", "announce", struct.pack(">IIIII", 1, tx, 1800, 2, 5) + peers)
    write("udp_tracker", "announce_no_peers", struct.pack(">IIIII", 1, tx, 900, 0, 0))
    write("udp_tracker", "scrape", struct.pack(">IIIIIIII", 2, tx, 5, 10, 2, 0, 0, 0))
    write("udp_tracker", "error", struct.pack(">II", 3, tx) + b"torrent not registered")
    write("udp_tracker", "error_escapes", struct.pack(">II", 3, tx) + b"\x1b[2J\x07pwned")
    write("udp_tracker", "announce_ragged", struct.pack(">IIIII", 1, tx, 1800, 0, 0) + peers[:9])
    write("udp_tracker", "announce_truncated", struct.pack(">IIIII", 1, tx, 1800, 0, 0)[:15])
    write("udp_tracker", "connect_short", struct.pack(">III", 0, tx, 7))
    write("udp_tracker", "unknown_action", struct.pack(">IIQ", 9, tx, 1))
    write("udp_tracker", "url", b"udp://tracker.example:6969/announce")
    write("udp_tracker", "url_v6", b"udp://[::1]:1337")


def actorrent_seeds(binary):
    tmp = tempfile.mkdtemp()
    try:
        with open(os.path.join(tmp, "single.bin"), "wb") as f:
            f.write(bytes(range(256)) * 150)  # 38400 bytes: 3 pieces of 16 KiB, short last
        d = os.path.join(tmp, "tree")
        os.makedirs(os.path.join(d, "sub", "deeper"))
        for rel, size in [("a.txt", 1000), ("sub/b.bin", 20000), ("sub/deeper/c", 7), ("empty", 0)]:
            with open(os.path.join(d, rel), "wb") as f:
                f.write(b"x" * size)
        for src, out, extra in [("single.bin", "created_single.torrent", ["--announce", "http://127.0.0.1:6969/announce"]),
                                ("tree", "created_tree.torrent",
                                 ["--announce", "http://t1.example/a,http://t2.example/a", "--announce", "http://t3.example/a",
                                  "--comment", "made by actorrent create", "--private"])]:
            subprocess.run([binary, "create", os.path.join(tmp, src), "-o", os.path.join(tmp, out),
                            "--piece-size", "16K", "-q"] + extra, check=True)
            with open(os.path.join(tmp, out), "rb") as f:
                data = f.read()
            write("metainfo", out, data)
            if out == "created_single.torrent":
                write("bencode", "real_torrent", data)
    finally:
        shutil.rmtree(tmp)


def opentracker_seeds():
    tmp = tempfile.mkdtemp()
    os.chmod(tmp, 0o755)
    ih = hashlib.sha1(b"seed torrent").digest()
    with open(os.path.join(tmp, "whitelist.txt"), "w") as f:
        f.write(ih.hex() + "\n")
    os.chmod(os.path.join(tmp, "whitelist.txt"), 0o644)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen(["opentracker", "-i", "127.0.0.1", "-p", str(port), "-P", str(port),
                             "-d", tmp, "-w", "whitelist.txt"], cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def announce(h, peer, port_, left):
            q = urllib.parse.urlencode({"info_hash": h, "peer_id": peer, "port": port_, "uploaded": 0,
                                        "downloaded": 0, "left": left, "compact": 1, "numwant": 50,
                                        "event": "started"})
            url = "http://127.0.0.1:%d/announce?%s" % (port, q)
            for _ in range(50):
                try:
                    return urllib.request.urlopen(url, timeout=3).read()
                except OSError:
                    time.sleep(0.1)
            raise RuntimeError("opentracker did not answer")
        for i in range(3):
            announce(ih, b"-SEED%02d-abcdefghijkl" % i, 7000 + i, 0)
        write("tracker", "opentracker_reply", announce(ih, b"-LEECH0-abcdefghijkl", 7100, 100))
        write("tracker", "opentracker_not_whitelisted",
              announce(hashlib.sha1(b"other").digest(), b"-LEECH0-abcdefghijkl", 7100, 100))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def batch_seeds():
    """Job files for batch_fuzz: first byte 0 = text format, 1 = JSON. They name the torrents
    the target puts beside them (t/a.torrent, t/b.torrent, t/x.torrent broken)."""
    text = {
        "full": 'settings {\n  max_active: 2\n  listen: "127.0.0.1:0"\n  state_dir: "s"\n'
                '  download_limit: "20M"\n  upload_limit: "0"\n}\n'
                'job {\n  name: "a"\n  torrent: "t/a.torrent"\n  output: "out/a"\n'
                '  peer: "127.0.0.1:7001"\n  download_limit: "5M"\n  seed_ratio: 1.5\n'
                '  seed_time_s: 60\n  priority: 3\n  timeout_s: 9\n}\n'
                'job {\n  torrent: "t/b.torrent"\n  output: "out/b"\n  select_file: "1,3"\n'
                '  select: "*.iso"\n  select: "d/**"\n}\n'
                'job {\n  name: "m"\n  magnet: "magnet:?xt=urn:btih:00"\n  output: "out/m"\n}\n'
                'job {\n  torrent: "t/x.torrent"\n  output: "out/x"\n  no_tracker: true\n'
                '  peer: "[::1]:1"\n}\n',
        "nested": 'job { torrent: "t/a.torrent" output: "o" }\n'
                  'job { torrent: "t/b.torrent" output: "o/b" }\n',
        "bad_rate": 'settings { download_limit: "20Q" }\njob { torrent: "t/a.torrent" output: "o" }\n',
        "bad_list": 'job { torrent: "t/b.torrent" output: "o" select_file: "1,,3" }\n',
        "unknown": 'job { torrent: "t/a.torrent" outptu: "o" }\n',
    }
    json_ = {
        "full": '{"settings": {"max_active": 2, "state_dir": "s"}, "job": ['
                '{"name": "a", "torrent": "t/a.torrent", "output": "out/a", "peer": ["h:1"],'
                ' "seedRatio": 0.5, "priority": -1},'
                '{"torrent": "t/b.torrent", "output": "out/b", "select_file": "2-3",'
                ' "select": ["*.txt"]}]}',
        "bad_path": '{"job": [{"torrent": "t/a.torrent", "output": "../o"}]}',
        "unknown": '{"job": [{"torrent": "t/a.torrent", "output": "o", "x": 1}]}',
    }
    for name, body in text.items():
        write("batch", "text_" + name, b"\x00" + body.encode())
    for name, body in json_.items():
        write("batch", "json_" + name, b"\x01" + body.encode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--actorrent")
    ap.add_argument("--opentracker", action="store_true")
    a = ap.parse_args()
    krpc_seeds()  # fuzz/corpus/krpc/: DHT datagrams
    bencode_seeds()
    metainfo_seeds()
    wire_seeds()
    tracker_seeds()
    extension_seeds()
    udp_tracker_seeds()
    batch_seeds()
    magnet_seeds()
    pex_seeds()
    if a.actorrent:
        actorrent_seeds(a.actorrent)
    if a.opentracker:
        opentracker_seeds()


if __name__ == "__main__":
    main()
