#!/usr/bin/python3
"""A scripted, hostile BitTorrent seeder (pure Python, asyncio, 127.0.0.1 only, incoming only).

  hostile_seeder.py TORRENT DATADIR --port P [--corrupt-pieces 0,5,9] [--corrupt-fraction 0.5]
                    [--bad-block K] [--seed S] [--have all|corrupt] [--rate-kib R]
                    [--trick pair-right-wrong|pair-wrong-right|late-wrong|mix] [--mix-pieces N]
                    [--choke-ms MS] [--log-blocks]

Speaks the plain BitTorrent wire protocol (BEP 3) plus the fast extension (BEP 6) when the peer
offers it: handshake, HAVE_ALL or BITFIELD, UNCHOKE on INTERESTED, PIECE for every REQUEST (in
order; a CANCEL removes a request not yet served).  Blocks of the pieces selected with
--corrupt-pieces / --corrupt-fraction are sent with wrong bytes (every byte XOR 0x5A), so their
SHA-1 never matches; with --bad-block K only block K (offset K * 16 KiB) of those pieces is
wrong and the others are right.  With --have corrupt it advertises only the corrupt pieces.

Tricks (one per run, on every connection, each once; all other requests are served right):

  The double request (pair-*, late-wrong).  The first requests of a connection are held; for
  every piece with two or more blocks requested, only its last requested block is sent (right),
  then CHOKE, then UNCHOKE --choke-ms later, without a REJECT for the held requests.  A client
  that forgets its requests on CHOKE asks again for the rest of those pieces, so the client
  has requested those blocks twice from this peer ("doubled" blocks), and a second copy of
  each one is an answer to a request rather than unrequested data.
    pair-right-wrong  each doubled block is sent twice back to back: right copy, then a wrong
                      one; all the pairs go out in one write.
    pair-wrong-right  the same with the wrong copy first.
    late-wrong        the doubled blocks are held until the client CANCELs one (it got the
                      block from someone else), then a wrong copy of it is sent at once.
  mix  for --mix-pieces cycles: of the first piece requested, only the first half of its
       requested blocks is sent, with exactly one wrong block (the second, or the only one),
       then CHOKE for --choke-ms (the held requests are dropped, no REJECT) and UNCHOKE, so that
       other peers fill the rest of that piece.

Prints "READY <port>" once listening, one line per connection / first corrupt block of a piece,
one line per trick step ("TRICK ..."), "SERVED <piece> <begin> right|wrong" per block with
--log-blocks, and "STATS blocks=N corrupt_blocks=M" after every corrupt block and at exit.  With
--rate-kib it serves at most R KiB/s per connection.
"""
import argparse
import asyncio
import collections
import os
import random
import signal
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import LOOPBACK, load_torrent  # noqa: E402

PSTR = b"BitTorrent protocol"
CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED, HAVE, BITFIELD, REQUEST, PIECE, CANCEL = range(9)
HAVE_ALL, HAVE_NONE, REJECT = 14, 15, 16
MAX_BLOCK = 128 * 1024
BLOCK = 16 * 1024
XOR_5A = bytes(i ^ 0x5A for i in range(256))
TRICKS = ("pair-right-wrong", "pair-wrong-right", "late-wrong", "mix")
QUIET_S = 0.15      # requests have stopped coming once none arrived for this long
SETTLE_S = 0.3      # time for sent blocks to be stored and reported before we choke


def say(*m):
    t = time.time()
    print("%s.%03d" % (time.strftime("%H:%M:%S", time.localtime(t)), int(t * 1000) % 1000), *m, flush=True)


def piece_frame(index, begin, data):
    return struct.pack(">IBII", 9 + len(data), PIECE, index, begin) + data


class Store:
    """Read-only view of the torrent's data under the save path."""

    def __init__(self, torrent, datadir):
        self.t = torrent
        self.files = []   # (global offset, size, path)
        off = 0
        for path, size in torrent.file_paths(datadir):
            self.files.append((off, size, path))
            off += size
        self.fds = {}

    def read(self, offset, length):
        out = bytearray()
        for foff, size, path in self.files:
            if length == 0:
                break
            if size == 0 or offset >= foff + size or offset < foff:
                continue
            n = min(length, foff + size - offset)
            fd = self.fds.get(path)
            if fd is None:
                fd = self.fds[path] = os.open(path, os.O_RDONLY)
            out += os.pread(fd, n, offset - foff)
            offset += n
            length -= n
        if length:
            raise ValueError("read past end of torrent")
        return bytes(out)


class Seeder:
    def __init__(self, a):
        self.a = a
        self.t = load_torrent(a.torrent)
        self.store = Store(self.t, a.datadir)
        n = self.t.num_pieces
        corrupt = set()
        if a.corrupt_pieces:
            corrupt |= {int(x) for x in a.corrupt_pieces.split(",") if x.strip()}
        if a.corrupt_fraction:
            k = max(1, round(n * a.corrupt_fraction))
            corrupt |= set(random.Random(a.seed).sample(range(n), min(k, n)))
        bad = [i for i in corrupt if not 0 <= i < n]
        if bad:
            raise SystemExit("corrupt piece index out of range: %s (torrent has %d pieces)" % (bad, n))
        if a.bad_block is not None and not 0 <= a.bad_block * BLOCK < self.t.piece_length:
            raise SystemExit("--bad-block %d is outside a piece of %d bytes" % (a.bad_block, self.t.piece_length))
        self.corrupt = corrupt
        self.have = set(range(n)) if a.have == "all" else set(corrupt)
        self.blocks = 0
        self.corrupt_blocks = 0
        self.reported = set()
        self.rate = a.rate_kib * 1024.0
        say("torrent %s: %d pieces of %d, corrupting %d: %s%s%s" % (
            self.t.name, n, self.t.piece_length, len(corrupt), ",".join(map(str, sorted(corrupt))),
            "" if a.bad_block is None else " (block %d only)" % a.bad_block,
            "" if not a.trick else "; trick %s" % a.trick))

    def stats(self):
        say("STATS blocks=%d corrupt_blocks=%d" % (self.blocks, self.corrupt_blocks))

    def bitfield(self):
        n = self.t.num_pieces
        bf = bytearray((n + 7) // 8)
        for i in self.have:
            bf[i // 8] |= 0x80 >> (i % 8)
        return bytes(bf)

    def block(self, index, begin, length, peer, wrong=None):
        """One PIECE frame; wrong=None: as the corruption options say, else forced."""
        data = self.store.read(index * self.t.piece_length + begin, length)
        if wrong is None:
            wrong = index in self.corrupt and (self.a.bad_block is None or begin // BLOCK == self.a.bad_block)
        if wrong:
            data = data.translate(XOR_5A)
            self.corrupt_blocks += 1
            if index not in self.reported:
                self.reported.add(index)
                say("sending CORRUPT data for piece %d to %s:%d" % (index, peer[0], peer[1]))
        self.blocks += 1
        if self.a.log_blocks:
            say("SERVED %d %d %s" % (index, begin, "wrong" if wrong else "right"))
        return piece_frame(index, begin, data), wrong

    async def handle(self, reader, writer):
        peer = writer.get_extra_info("peername")
        conn = Connection(self, reader, writer, peer)
        try:
            await conn.run()
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            say("peer %s:%d gone (%s)" % (peer[0], peer[1], type(e).__name__))
        except Exception as e:  # protocol error from the peer: drop it, keep serving others
            say("peer %s:%d dropped: %s" % (peer[0], peer[1], e))
        finally:
            conn.stop()
            writer.close()


class Connection:
    """One peer: a reader (requests, cancels) and a server task (answers in order, at the
    rate limit); a trick, when one is chosen, pauses the server while it runs."""

    def __init__(self, seeder, reader, writer, peer):
        self.s, self.reader, self.writer, self.peer = seeder, reader, writer, peer
        self.queue = collections.deque()          # [index, begin, length, epoch] to serve in order
        self.pending = collections.Counter()      # (index, begin) -> requests not answered/cancelled
        self.wake = asyncio.Event()
        self.last_request = 0.0
        self.epoch = 0                            # bumped by the trick's UNCHOKE
        self.paused = bool(seeder.a.trick)        # the trick starts the server when it is done
        self.held = set()                         # late-wrong: doubled blocks kept for a CANCEL
        self.fast = False
        self.tasks = []

    def stop(self):
        for t in self.tasks:
            t.cancel()

    def who(self):
        return "%s:%d" % self.peer[:2]

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def run(self):
        s, reader, writer = self.s, self.reader, self.writer
        first = await reader.readexactly(1)
        if first[0] != len(PSTR):
            say("peer %s: not a plain handshake (encrypted?), closing" % self.who())
            return
        hs = await reader.readexactly(len(PSTR) + 8 + 20 + 20)
        if hs[:len(PSTR)] != PSTR:
            raise ValueError("bad protocol string")
        reserved, info_hash = hs[19:27], hs[27:47]
        if info_hash != s.t.info_hash:
            say("peer %s wants unknown info-hash %s, closing" % (self.who(), info_hash.hex()))
            return
        self.fast = bool(reserved[7] & 0x04)
        our_reserved = bytearray(8)
        our_reserved[7] |= 0x04
        peer_id = b"-HS0001-" + os.urandom(6).hex().encode()
        writer.write(bytes([len(PSTR)]) + PSTR + bytes(our_reserved) + s.t.info_hash + peer_id)
        if self.fast and len(s.have) == s.t.num_pieces:
            writer.write(struct.pack(">IB", 1, HAVE_ALL))
        else:
            bf = s.bitfield()
            writer.write(struct.pack(">IB", 1 + len(bf), BITFIELD) + bf)
        await writer.drain()
        say("peer %s connected (fast=%s)" % (self.who(), self.fast))
        self.tasks.append(asyncio.ensure_future(self.serve()))
        if s.a.trick:
            self.tasks.append(asyncio.ensure_future(self.trick()))
        choked = True
        while True:
            for t in self.tasks:
                if t.done() and t.exception():
                    raise t.exception()
            (length,) = struct.unpack(">I", await reader.readexactly(4))
            if length == 0:
                continue        # keep-alive
            if length > MAX_BLOCK + 64 and length > len(s.bitfield()) + 1:
                raise ValueError("message too long (%d)" % length)
            msg = await reader.readexactly(length)
            mid = msg[0]
            if mid == INTERESTED:
                if choked:
                    choked = False
                    await self.send(struct.pack(">IB", 1, UNCHOKE))
            elif mid == REQUEST and len(msg) == 13:
                index, begin, blen = struct.unpack(">III", msg[1:])
                ok = (index in s.have and 0 < blen <= MAX_BLOCK
                      and begin + blen <= s.t.piece_size(index))
                if not ok:
                    if self.fast:
                        await self.send(struct.pack(">IB", 13, REJECT) + msg[1:])
                    continue
                self.pending[(index, begin)] += 1
                self.queue.append([index, begin, blen, self.epoch])
                self.last_request = time.monotonic()
                self.wake.set()
            elif mid == CANCEL and len(msg) == 13:
                index, begin, blen = struct.unpack(">III", msg[1:])
                await self.on_cancel(index, begin, blen)
            # everything else (choke/unchoke/have/bitfield/extended/...) is ignored

    async def on_cancel(self, index, begin, blen):
        key = (index, begin)
        if self.pending[key] <= 0:
            return
        self.pending[key] -= 1
        for i, q in enumerate(self.queue):
            if (q[0], q[1]) == key:
                del self.queue[i]
                break
        if key in self.held:
            # late-wrong: someone else delivered this block; one request for it is still open
            # on the client's side (it asked twice), so a wrong copy now is an answer to it.
            self.held.discard(key)
            self.pending[key] = 0
            frame, _ = self.s.block(index, begin, blen, self.peer, wrong=True)
            say("TRICK late-wrong: piece %d block %d: wrong copy after CANCEL" % (index, begin // BLOCK))
            await self.send(frame)

    async def serve(self):
        s = self.s
        while True:
            if self.paused or not self.queue:
                self.wake.clear()
                await self.wake.wait()
                continue
            index, begin, blen, _ = self.queue.popleft()
            key = (index, begin)
            if key in self.held:
                continue          # the CANCEL handler answers it
            self.pending[key] -= 1
            frame, wrong = s.block(index, begin, blen, self.peer)
            await self.send(frame)
            if s.rate > 0:
                await asyncio.sleep(blen / s.rate)
            if wrong:
                s.stats()

    def resume(self):
        self.paused = False
        self.wake.set()

    async def quiet_requests(self, limit=5.0, since=0.0):
        """Waits for a request (one that came after `since`, a monotonic time), then until none
        came for QUIET_S seconds."""
        end = time.monotonic() + limit
        while (not self.queue or self.last_request <= since) and time.monotonic() < end:
            await asyncio.sleep(0.02)
        while self.queue and time.monotonic() - self.last_request < QUIET_S and time.monotonic() < end:
            await asyncio.sleep(0.02)
        return bool(self.queue)

    async def choke_cycle(self, hold_s, forget):
        """CHOKE without REJECTs, UNCHOKE after hold_s; returns the time of the UNCHOKE. With
        `forget`, what was asked before the UNCHOKE is dropped unanswered."""
        await self.send(struct.pack(">IB", 1, CHOKE))
        await asyncio.sleep(hold_s)
        if forget:
            self.take({(q[0], q[1]) for q in self.queue})
            self.pending.clear()
        self.epoch += 1
        await self.send(struct.pack(">IB", 1, UNCHOKE))
        say("TRICK choked %s for %d ms without rejecting its requests" % (self.who(), hold_s * 1000))
        return time.monotonic()

    def take(self, keys):
        """Removes every queued request for keys; returns {key: length}."""
        lengths = {}
        keep = collections.deque()
        for q in self.queue:
            if (q[0], q[1]) in keys:
                lengths[(q[0], q[1])] = q[2]
            else:
                keep.append(q)
        self.queue = keep
        return lengths

    async def trick(self):
        a = self.s.a
        if a.trick == "mix":
            await self.trick_mix(a.mix_pieces, a.choke_ms / 1000.0)
        else:
            await self.trick_double(a.trick, a.choke_ms / 1000.0)
        self.resume()

    async def trick_double(self, mode, hold_s):
        if not await self.quiet_requests():
            say("TRICK %s: no requests from %s" % (mode, self.who()))
            return
        by_piece = collections.defaultdict(list)
        for index, begin, blen, _ in self.queue:
            by_piece[index].append((begin, blen))
        out = []
        for index, blocks in sorted(by_piece.items()):
            if len(blocks) < 2:
                continue
            begin, blen = max(blocks)
            self.take({(index, begin)})
            self.pending[(index, begin)] -= 1
            out.append(self.s.block(index, begin, blen, self.peer, wrong=False)[0])
        if not out:
            say("TRICK %s: no piece with two blocks requested" % mode)
            return
        await self.send(b"".join(out))
        say("TRICK %s: sent the last block of %d pieces, holding the rest" % (mode, len(out)))
        await asyncio.sleep(SETTLE_S)
        unchoked = await self.choke_cycle(hold_s, forget=False)
        await self.quiet_requests(limit=2.0, since=unchoked)
        doubled = sorted(k for k, c in self.pending.items() if c >= 2)
        # Requests from before the CHOKE that were not asked again stay unanswered (the client
        # gave them to someone else); answering them would be data it does not expect.
        stale = {(q[0], q[1]) for q in self.queue if q[3] == 0 and self.pending[(q[0], q[1])] < 2}
        self.take(stale)
        for k in stale:
            self.pending[k] = 0
        if not doubled:
            say("TRICK %s: no block was requested twice" % mode)
            return
        say("TRICK %s: %d blocks requested twice: %s" % (
            mode, len(doubled), " ".join("%d:%d" % (i, b // BLOCK) for i, b in doubled)))
        if mode == "late-wrong":
            # One queued request per doubled block is dropped now; the other is answered by
            # on_cancel with a wrong copy.
            lengths = self.take(set(doubled))
            for k in doubled:
                self.pending[k] = 2
                self.queue.append([k[0], k[1], lengths[k], self.epoch])
            self.held = set(doubled)
            return
        lengths = self.take(set(doubled))
        out = []
        for k in doubled:
            self.pending[k] = 0
            right, _ = self.s.block(k[0], k[1], lengths[k], self.peer, wrong=False)
            wrong, _ = self.s.block(k[0], k[1], lengths[k], self.peer, wrong=True)
            out += [right, wrong] if mode == "pair-right-wrong" else [wrong, right]
            say("TRICK %s: piece %d block %d: both copies in one write" % (mode, k[0], k[1] // BLOCK))
        await self.send(b"".join(out))
        self.s.stats()

    async def trick_mix(self, cycles, hold_s):
        mixed = set()
        for cycle in range(cycles):
            if not await self.quiet_requests(limit=10.0):
                say("TRICK mix: no requests from %s" % self.who())
                return
            by_piece = collections.OrderedDict()
            for index, begin, blen, _ in self.queue:
                by_piece.setdefault(index, []).append((begin, blen))
            # a piece not half-served before: each mixed piece holds exactly one wrong block
            index = next((i for i, b in by_piece.items() if len(b) >= 2 and i not in mixed), None)
            if index is None:
                say("TRICK mix: no new piece with two blocks requested")
                return
            mixed.add(index)
            blocks = sorted(by_piece[index])
            half = blocks[:(len(blocks) + 1) // 2]
            bad = half[1 if len(half) > 1 else 0]
            out = []
            for begin, blen in half:
                self.pending[(index, begin)] -= 1
                out.append(self.s.block(index, begin, blen, self.peer, wrong=(begin, blen) == bad)[0])
            self.take({(index, b) for b, _ in half})
            await self.send(b"".join(out))
            say("TRICK mix %d: piece %d: sent blocks %d-%d (of %d requested), block %d wrong" % (
                cycle + 1, index, half[0][0] // BLOCK, half[-1][0] // BLOCK, len(blocks), bad[0] // BLOCK))
            self.s.stats()
            await asyncio.sleep(SETTLE_S)
            await self.choke_cycle(hold_s, forget=True)


async def main_async(a):
    s = Seeder(a)
    server = await asyncio.start_server(s.handle, LOOPBACK, a.port, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    say("READY %d" % port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    s.stats()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("torrent")
    ap.add_argument("datadir", help="save path containing the torrent's content")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--corrupt-pieces", default="", help="comma-separated piece indices")
    ap.add_argument("--corrupt-fraction", type=float, default=0.0, help="corrupt this fraction of pieces")
    ap.add_argument("--bad-block", type=int, default=None,
                    help="in corrupt pieces, only this block (offset / 16 KiB) is wrong")
    ap.add_argument("--seed", type=int, default=1, help="random seed for --corrupt-fraction")
    ap.add_argument("--have", choices=["all", "corrupt"], default="all")
    ap.add_argument("--rate-kib", type=float, default=0.0, help="serve at most this many KiB/s per peer")
    ap.add_argument("--trick", choices=TRICKS, default=None, help="a scripted bad-copy pattern (see above)")
    ap.add_argument("--mix-pieces", type=int, default=3, help="mix: how many pieces to half-serve")
    ap.add_argument("--choke-ms", type=int, default=100, help="how long a trick keeps the peer choked")
    ap.add_argument("--log-blocks", action="store_true", help="print one SERVED line per block")
    a = ap.parse_args()
    asyncio.run(main_async(a))


if __name__ == "__main__":
    main()
