#!/usr/bin/python3
"""A scripted, hostile BitTorrent seeder (pure Python, asyncio, 127.0.0.1 only, incoming only).

  hostile_seeder.py TORRENT DATADIR --port P [--corrupt-pieces 0,5,9] [--corrupt-fraction 0.5]
                    [--seed S] [--have all|corrupt] [--rate-kib R]

Speaks the plain BitTorrent wire protocol (BEP 3) plus the fast extension (BEP 6) when the peer
offers it: handshake, HAVE_ALL or BITFIELD, UNCHOKE on INTERESTED, PIECE for every REQUEST.
Blocks of the pieces selected with --corrupt-pieces / --corrupt-fraction are sent with wrong
bytes (every byte XOR 0x5A), so their SHA-1 never matches.  With --have corrupt it advertises
only the corrupt pieces (every request it gets is then answered with bad data).

Prints "READY <port>" once listening, one line per connection / first corrupt block of a piece,
and "STATS blocks=N corrupt_blocks=M" after every corrupt block and at exit.  With --rate-kib
(and no corruption) it is an honest seeder that serves at most R KiB/s per connection.
"""
import argparse
import asyncio
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
XOR_5A = bytes(i ^ 0x5A for i in range(256))


def say(*m):
    t = time.time()
    print("%s.%03d" % (time.strftime("%H:%M:%S", time.localtime(t)), int(t * 1000) % 1000), *m, flush=True)


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
        self.corrupt = corrupt
        self.have = set(range(n)) if a.have == "all" else set(corrupt)
        self.blocks = 0
        self.corrupt_blocks = 0
        self.reported = set()
        self.rate = a.rate_kib * 1024.0
        say("torrent %s: %d pieces of %d, corrupting %d: %s" % (
            self.t.name, n, self.t.piece_length, len(corrupt), ",".join(map(str, sorted(corrupt)))))

    def stats(self):
        say("STATS blocks=%d corrupt_blocks=%d" % (self.blocks, self.corrupt_blocks))

    def bitfield(self):
        n = self.t.num_pieces
        bf = bytearray((n + 7) // 8)
        for i in self.have:
            bf[i // 8] |= 0x80 >> (i % 8)
        return bytes(bf)

    async def handle(self, reader, writer):
        peer = writer.get_extra_info("peername")
        try:
            await self._session(reader, writer, peer)
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            say("peer %s:%d gone (%s)" % (peer[0], peer[1], type(e).__name__))
        except Exception as e:  # protocol error from the peer: drop it, keep serving others
            say("peer %s:%d dropped: %s" % (peer[0], peer[1], e))
        finally:
            writer.close()

    async def _session(self, reader, writer, peer):
        first = await reader.readexactly(1)
        if first[0] != len(PSTR):
            say("peer %s:%d: not a plain handshake (encrypted?), closing" % peer[:2])
            return
        hs = await reader.readexactly(len(PSTR) + 8 + 20 + 20)
        if hs[:len(PSTR)] != PSTR:
            raise ValueError("bad protocol string")
        reserved, info_hash = hs[19:27], hs[27:47]
        if info_hash != self.t.info_hash:
            say("peer %s:%d wants unknown info-hash %s, closing" % (peer[0], peer[1], info_hash.hex()))
            return
        fast = bool(reserved[7] & 0x04)
        our_reserved = bytearray(8)
        our_reserved[7] |= 0x04
        peer_id = b"-HS0001-" + os.urandom(6).hex().encode()
        writer.write(bytes([len(PSTR)]) + PSTR + bytes(our_reserved) + self.t.info_hash + peer_id)
        if fast and len(self.have) == self.t.num_pieces:
            writer.write(struct.pack(">IB", 1, HAVE_ALL))
        else:
            bf = self.bitfield()
            writer.write(struct.pack(">IB", 1 + len(bf), BITFIELD) + bf)
        await writer.drain()
        say("peer %s:%d connected (fast=%s)" % (peer[0], peer[1], fast))
        choked = True
        while True:
            (length,) = struct.unpack(">I", await reader.readexactly(4))
            if length == 0:
                continue        # keep-alive
            if length > MAX_BLOCK + 64 and length > len(self.bitfield()) + 1:
                raise ValueError("message too long (%d)" % length)
            msg = await reader.readexactly(length)
            mid = msg[0]
            if mid == INTERESTED:
                if choked:
                    choked = False
                    writer.write(struct.pack(">IB", 1, UNCHOKE))
                    await writer.drain()
            elif mid == REQUEST and len(msg) == 13:
                index, begin, blen = struct.unpack(">III", msg[1:])
                ok = (index in self.have and 0 < blen <= MAX_BLOCK
                      and begin + blen <= self.t.piece_size(index))
                if not ok:
                    if fast:
                        writer.write(struct.pack(">IB", 13, REJECT) + msg[1:])
                    continue
                data = self.store.read(index * self.t.piece_length + begin, blen)
                if index in self.corrupt:
                    data = data.translate(XOR_5A)
                    self.corrupt_blocks += 1
                    if index not in self.reported:
                        self.reported.add(index)
                        say("sending CORRUPT data for piece %d to %s:%d" % (index, peer[0], peer[1]))
                self.blocks += 1
                writer.write(struct.pack(">IBII", 9 + blen, PIECE, index, begin) + data)
                await writer.drain()
                if self.rate > 0:
                    await asyncio.sleep(blen / self.rate)
                if index in self.corrupt:
                    self.stats()
            # everything else (choke/unchoke/have/bitfield/cancel/extended/...) is ignored


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
    ap.add_argument("--seed", type=int, default=1, help="random seed for --corrupt-fraction")
    ap.add_argument("--have", choices=["all", "corrupt"], default="all")
    ap.add_argument("--rate-kib", type=float, default=0.0, help="serve at most this many KiB/s per peer")
    a = ap.parse_args()
    asyncio.run(main_async(a))


if __name__ == "__main__":
    main()
