#!/usr/bin/python3
"""Connection limits of an actorrent seeder on 127.0.0.1, driven by scripted raw connections.

  per_ip       --max-peers-per-ip 3, then 6 peers from 127.0.0.1 that handshake: exactly 3 are
               kept, the other 3 are closed at once with "too many connections from this
               address" in the log.
  handshaking  200 connections that never send a handshake: at most 128 wait for their
               handshake at once, the rest are closed within a second with the reason logged
               (the first 128 are closed by the handshake timeout, 2 s here).
  max_connections       --max-connections 4 (and 100 per IP), then 8 peers that handshake:
               exactly 4 are kept, the other 4 are closed at once, the reason logged.
  max_connections_dial  a downloader with --max-connections 2 and 5 --peer listeners that
               answer the handshake and hold: never more than 2 of them connected at once.

  connection_limits_test.py --actorrent PATH --case NAME
"""
import argparse
import asyncio
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

PSTR = b"BitTorrent protocol"
PIECE_LENGTH = 64 * 1024
SIZE = 1 * H.MiB
CASES = ["per_ip", "handshaking", "max_connections", "max_connections_dial"]


async def hold(port, handshake, seconds):
    """Connects, optionally handshakes, and reports when (if) actorrent closed the connection."""
    t0 = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(H.LOOPBACK, port)
    except OSError as e:
        return ("refused", str(e))
    if handshake:
        writer.write(handshake)
        await writer.drain()
    try:
        while time.monotonic() - t0 < seconds:
            data = await asyncio.wait_for(reader.read(65536), timeout=seconds)
            if not data:
                return ("closed", time.monotonic() - t0)
    except ConnectionError:
        # A socket closed before actorrent read what we sent ends with a reset, not a FIN.
        return ("closed", time.monotonic() - t0)
    except asyncio.TimeoutError:
        pass
    writer.close()
    return ("open", None)


async def run_all(port, n, handshake, seconds):
    tasks = []
    for _ in range(n):
        tasks.append(asyncio.ensure_future(hold(port, handshake, seconds)))
        await asyncio.sleep(0.005)
    return await asyncio.gather(*tasks)


def run_dial_case(actorrent):
    """A downloader told to keep at most 2 connections dials 5 listeners that hold."""
    with H.Session("actorrent-limits-dial-") as sess:
        root = sess.mkdir("data")
        payload = H.make_payload(root, "limits.bin", size=SIZE, seed="dial")
        torrent = H.make_torrent(payload, PIECE_LENGTH, sess.path("t.torrent"))
        stats = {"now": 0, "max": 0, "total": 0}

        async def serve(reader, writer):
            stats["now"] += 1
            stats["total"] += 1
            stats["max"] = max(stats["max"], stats["now"])
            try:
                await reader.readexactly(68)
                writer.write(bytes([len(PSTR)]) + PSTR + bytes(8) + torrent.info_hash +
                             b"-XX0001-%012d" % stats["total"])
                await writer.drain()
                while await reader.read(65536):
                    pass
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                stats["now"] -= 1
                writer.close()

        async def main():
            servers = [await asyncio.start_server(serve, H.LOOPBACK, 0) for _ in range(5)]
            ports = [srv.sockets[0].getsockname()[1] for srv in servers]
            argv = [actorrent, "download", torrent.path, "-o", sess.mkdir("out"), "--no-tracker",
                    "-vv", "--listen", "%s:0" % H.LOOPBACK, "--max-connections", "2",
                    "--timeout", "6"]
            for p in ports:
                argv += ["--peer", "%s:%d" % (H.LOOPBACK, p)]
            H.log("run: " + " ".join(argv))
            proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            for srv in servers:
                srv.close()
            return proc.returncode, err.decode(errors="replace")

        rc, err = asyncio.run(main())
        H.log("max_connections_dial: exit %d, at most %d connected at once, %d in all"
              % (rc, stats["max"], stats["total"]))
        problems = []
        if rc != 3:
            problems.append("exit %d, expected 3 (timeout)" % rc)
        if stats["max"] > 2:
            problems.append("%d connections at once with --max-connections 2" % stats["max"])
        if stats["max"] < 2:
            problems.append("only %d connection(s) at once: the limit is not what held it"
                            % stats["max"])
        if problems:
            sys.stderr.write("--- actorrent stderr (tail) ---\n%s\n" % H.tail(err, 30))
            raise SystemExit("FAIL: max_connections_dial: %s" % "; ".join(problems))


def run_case(actorrent, case):
    if case == "max_connections_dial":
        return run_dial_case(actorrent)
    with H.Session("actorrent-limits-%s-" % case) as sess:
        root = sess.mkdir("data")
        payload = H.make_payload(root, "limits.bin", size=SIZE, seed=case)
        torrent = H.make_torrent(payload, PIECE_LENGTH, sess.path("t.torrent"))
        port = H.free_port()
        argv = [actorrent, "seed", torrent.path, root, "--no-tracker", "-vv",
                "--listen", "%s:%d" % (H.LOOPBACK, port), "--max-peers", "500",
                "--handshake-timeout", "2"]
        if case == "per_ip":
            argv += ["--max-peers-per-ip", "3"]
        if case == "max_connections":
            argv += ["--max-connections", "4", "--max-peers-per-ip", "100"]
        H.log("run: " + " ".join(argv))
        seeder = sess.spawn("actorrent", argv, log_path=sess.path("stdout"), stderr_path=sess.path("stderr"))
        if not H.wait_for(lambda: "seeding:" in seeder.output() or not seeder.running(), 30):
            raise SystemExit("FAIL: actorrent did not start seeding")
        problems = []
        if case == "max_connections":
            results = asyncio.run(hold_many(port, torrent, 8))
            kept = sum(1 for r in results if r[0] == "open")
            closed = sum(1 for r in results if r[0] == "closed")
            H.log("max_connections: %d kept, %d closed" % (kept, closed))
            if kept != 4 or closed != 4:
                problems.append("expected 4 kept and 4 closed, got %d kept and %d closed" % (kept, closed))
            n = seeder.stderr_text().count("session connection limit (4) reached")
            if n != 4:
                problems.append("%d refusals logged, expected 4" % n)
        elif case == "per_ip":
            results = asyncio.run(hold_many(port, torrent, 6))
            kept = sum(1 for r in results if r[0] == "open")
            closed = sum(1 for r in results if r[0] == "closed")
            H.log("per_ip: %d kept, %d closed" % (kept, closed))
            if kept != 3 or closed != 3:
                problems.append("expected 3 kept and 3 closed, got %d kept and %d closed" % (kept, closed))
            log = seeder.stderr_text()
            n = log.count("too many connections from this address")
            if n != 3:
                problems.append("%d refusals logged, expected 3" % n)
        else:
            results = asyncio.run(run_all(port, 200, None, 4.0))
            early = sum(1 for r in results if r[0] == "closed" and r[1] < 1.0)
            late = sum(1 for r in results if r[0] == "closed" and r[1] >= 1.0)
            still = sum(1 for r in results if r[0] == "open")
            H.log("handshaking: %d closed within 1 s, %d later (timeout), %d left open" % (early, late, still))
            if early < 72:
                problems.append("only %d of the 200 silent connections were refused at once (cap 128)" % early)
            if late > 128:
                problems.append("%d connections waited for their handshake at once (cap 128)" % late)
            if still:
                problems.append("%d silent connections outlived the 2 s handshake timeout" % still)
            if "are already waiting for their handshake" not in seeder.stderr_text():
                problems.append("no refusal reason in the log")
        if not seeder.running():
            problems.append("actorrent exited")
        seeder.stop()
        if problems:
            sys.stderr.write("--- actorrent stderr (tail) ---\n%s\n" % H.tail(seeder.stderr_text(), 30))
            raise SystemExit("FAIL: %s: %s" % (case, "; ".join(problems)))


async def hold_many(port, torrent, n):
    """n peers that handshake (distinct peer ids) and stay; returns how each ended after 2 s."""
    tasks = []
    for i in range(n):
        peer_id = b"-XX0001-" + ("%012d" % i).encode()
        hs = bytes([len(PSTR)]) + PSTR + bytes(8) + torrent.info_hash + peer_id
        tasks.append(asyncio.ensure_future(hold(port, hs, 2.0)))
        await asyncio.sleep(0.05)
    return await asyncio.gather(*tasks)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actorrent", required=True)
    ap.add_argument("--case", required=True, choices=CASES)
    a = ap.parse_args()
    run_case(os.path.abspath(a.actorrent), a.case)
    print("PASS: %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
