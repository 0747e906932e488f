// Fuzz target: the peer wire codec (protocol/wire.hpp: parse_handshake, stream_parser, the
// encoders) and bitfield::from_wire (actors/bitfield.hpp).
// Input: what a peer sends: optionally a 68-byte handshake, then the message stream.
// Invariants:
//  - parse_handshake accepts exactly 68 bytes with the right protocol string, and
//    encode_handshake gives the same 68 bytes back;
//  - the stream parsed at once, one byte at a time, in pseudo-random chunks (seeded by the
//    input) and in reads sized by frame_size() (as peer_connection does) yields the same
//    messages, the same error (message text included) and leaves the same partial frame;
//  - stopping early (on_message returns false) consumes exactly the frames up to that message,
//    and resuming from there yields the rest;
//  - a smaller frame limit yields a prefix of the same messages;
//  - payload views point into the parsed buffer; request/cancel/reject lengths are in
//    (0, 128 KiB]; a piece's length is its payload size;
//  - re-encoding the messages with the append_* encoders parses back to the same messages;
//  - bitfield::from_wire accepts a payload iff it is ceil(size/8) bytes with zero spare bits,
//    and then to_wire(), test(), count(), all(), none(), for_each_set() agree with the bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "actors/bitfield.hpp"
#include "fuzz/fuzz_check.hpp"
#include "protocol/wire.hpp"

using namespace actorrent;
using namespace actorrent::wire;

namespace {

// A message with its payload copied (the parsed buffer changes between chunks).
struct owned {
  msg_id id;
  std::uint32_t index, begin, length;
  std::uint16_t port;
  std::uint8_t ext_id;
  std::string payload;
  bool operator==(const owned& o) const {
    return id == o.id && index == o.index && begin == o.begin && length == o.length &&
           port == o.port && ext_id == o.ext_id && payload == o.payload;
  }
};

struct outcome {
  std::vector<owned> messages;
  bool failed = false;
  std::string error;
  std::string rest; // unconsumed bytes (a partial frame) when !failed
};

// Records a message after checking what holds for every message on its own.
void record(const message& m, std::string_view buffer, std::vector<owned>& out) {
  if (!m.payload.empty())
    FUZZ_CHECK(m.payload.data() >= buffer.data() &&
                   m.payload.data() + m.payload.size() <= buffer.data() + buffer.size(),
               "payload view outside the parsed buffer");
  switch (m.id) {
  case msg_id::request:
  case msg_id::cancel:
  case msg_id::reject:
    FUZZ_CHECK(m.length > 0 && m.length <= 128 * 1024, "block length out of range accepted");
    break;
  case msg_id::piece:
    FUZZ_CHECK(m.length == m.payload.size(), "piece length is not its payload size");
    break;
  default:
    break;
  }
  out.push_back(owned{m.id, m.index, m.begin, m.length, m.port, m.ext_id, std::string(m.payload)});
}

outcome parse_whole(std::string_view stream, stream_parser p) {
  outcome o;
  auto r = p.parse(stream, [&](const message& m) {
    record(m, stream, o.messages);
    return true;
  });
  if (!r.ok()) {
    FUZZ_CHECK(r.error().code == errc::wire_protocol, r.error().message);
    o.failed = true;
    o.error = r.error().message;
    return o;
  }
  FUZZ_CHECK(*r <= stream.size(), "consumed more than given");
  o.rest = std::string(stream.substr(*r));
  // What is left is a partial frame: fewer than 4 bytes, or less than its announced size.
  if (o.rest.size() >= 4)
    FUZZ_CHECK(stream_parser::frame_size(o.rest) > o.rest.size(), "a complete frame was left");
  return o;
}

// The caller's side of the contract: keep the unconsumed bytes, append the next read, parse.
// next_chunk(pending) says how many bytes the next read delivers (at least 1).
template <class NextChunk>
outcome parse_chunked(std::string_view stream, stream_parser p, NextChunk next_chunk) {
  outcome o;
  std::string pending;
  std::size_t pos = 0;
  while (pos < stream.size()) {
    std::size_t n = next_chunk(std::string_view(pending));
    n = std::max<std::size_t>(1, std::min(n, stream.size() - pos));
    pending.append(stream.substr(pos, n));
    pos += n;
    const std::string_view view(pending);
    auto r = p.parse(view, [&](const message& m) {
      record(m, view, o.messages);
      return true;
    });
    if (!r.ok()) {
      o.failed = true;
      o.error = r.error().message;
      return o;
    }
    pending.erase(0, *r);
  }
  o.rest = pending;
  return o;
}

void expect_same(const outcome& a, const outcome& b, const char* how) {
  FUZZ_CHECK(a.messages.size() == b.messages.size(), std::string(how) + ": message count");
  for (std::size_t i = 0; i < a.messages.size(); ++i)
    FUZZ_CHECK(a.messages[i] == b.messages[i], std::string(how) + ": message differs");
  FUZZ_CHECK(a.failed == b.failed, std::string(how) + ": error in one parse only");
  FUZZ_CHECK(a.error == b.error, std::string(how) + ": different errors: " + a.error + " / " +
                                     b.error);
  FUZZ_CHECK(a.failed || a.rest == b.rest, std::string(how) + ": different partial frame");
}

struct rng {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

std::string encode_all(const std::vector<owned>& messages) {
  std::string out;
  for (const auto& m : messages) {
    switch (m.id) {
    case msg_id::keep_alive:
      append_keep_alive(out);
      break;
    case msg_id::choke:
    case msg_id::unchoke:
    case msg_id::interested:
    case msg_id::not_interested:
    case msg_id::have_all:
    case msg_id::have_none:
      append_simple(out, m.id);
      break;
    case msg_id::have:
      append_have(out, m.index);
      break;
    case msg_id::suggest:
    case msg_id::allowed_fast:
      append_index_message(out, m.id, m.index);
      break;
    case msg_id::request:
    case msg_id::cancel:
    case msg_id::reject:
      append_request(out, m.id, m.index, m.begin, m.length);
      break;
    case msg_id::piece:
      append_piece_header(out, m.index, m.begin, m.length);
      out += m.payload;
      break;
    case msg_id::bitfield:
      append_bitfield(out, m.payload);
      break;
    case msg_id::port:
      append_port(out, m.port);
      break;
    case msg_id::extended:
      append_extended(out, m.ext_id, m.payload);
      break;
    }
  }
  return out;
}

void check_bitfield(std::string_view bytes, std::uint32_t size) {
  auto r = bitfield::from_wire(bytes, size);
  bool expect_ok = bytes.size() == (std::size_t{size} + 7) / 8;
  std::uint32_t ones = 0;
  for (std::size_t i = 0; expect_ok && i < bytes.size(); ++i) {
    const auto byte = static_cast<unsigned char>(bytes[i]);
    for (unsigned b = 0; b < 8; ++b) {
      if (!(byte & (0x80u >> b)))
        continue;
      if (i * 8 + b >= size)
        expect_ok = false; // a spare bit is set
      ++ones;
    }
  }
  FUZZ_CHECK(r.ok() == expect_ok, r.ok() ? "bitfield with bad length or spare bits accepted"
                                         : "valid bitfield refused: " + r.error().message);
  if (!r.ok()) {
    FUZZ_CHECK(r.error().code == errc::wire_protocol, r.error().message);
    return;
  }
  const bitfield& bf = *r;
  FUZZ_CHECK(bf.size() == size, "bitfield size");
  FUZZ_CHECK(bf.to_wire() == bytes, "to_wire does not give the wire bytes back");
  FUZZ_CHECK(bf.count() == ones, "count differs from the set bits");
  FUZZ_CHECK(bf.all() == (ones == size) && bf.none() == (ones == 0), "all/none");
  for (std::uint32_t i = 0; i < size; ++i) {
    const bool bit = (static_cast<unsigned char>(bytes[i / 8]) & (0x80u >> (i % 8))) != 0;
    FUZZ_CHECK(bf.test(piece_index{i}) == bit, "test() differs from the wire bit");
  }
  std::uint32_t seen = 0;
  long long last = -1;
  bf.for_each_set([&](piece_index p) {
    FUZZ_CHECK(static_cast<long long>(p.value) > last && p.value < size,
               "for_each_set out of order or range");
    last = p.value;
    ++seen;
  });
  FUZZ_CHECK(seen == ones, "for_each_set visits a different number of pieces");
}

void check_bitfield_sizes(std::string_view bytes, std::uint64_t salt) {
  const auto bits = static_cast<std::uint32_t>(bytes.size() * 8);
  check_bitfield(bytes, bits);
  check_bitfield(bytes, bits + 1);
  check_bitfield(bytes, 0);
  if (bits > 0) {
    check_bitfield(bytes, bits - 1);
    check_bitfield(bytes, bits - 1 - static_cast<std::uint32_t>(salt % 7)); // 1..7 spare bits
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::uint64_t seed = 1469598103934665603ull; // FNV-1a: chunkings depend on the input only
  for (unsigned char c : input)
    seed = (seed ^ c) * 1099511628211ull;
  rng random{seed | 1};

  // Handshake: exactly 68 bytes, and it round-trips.
  std::string_view stream = input;
  {
    auto whole = parse_handshake(input);
    if (whole.ok())
      FUZZ_CHECK(size == handshake_size, "handshake of the wrong size accepted");
    auto h = parse_handshake(input.substr(0, handshake_size));
    if (h.ok()) {
      auto bytes = encode_handshake(*h);
      FUZZ_CHECK(std::string_view(bytes.data(), bytes.size()) == input.substr(0, handshake_size),
                 "handshake does not round-trip");
      stream = input.substr(handshake_size);
    } else {
      FUZZ_CHECK(h.error().code == errc::wire_protocol, h.error().message);
    }
  }

  const stream_parser parser;
  const outcome whole = parse_whole(stream, parser);

  if (stream.size() <= 1024)
    expect_same(whole, parse_chunked(stream, parser, [](std::string_view) { return 1; }),
                "byte at a time");
  for (int round = 0; round < 2; ++round) {
    const std::size_t max_chunk = round == 0 ? 8 : 300;
    expect_same(whole,
                parse_chunked(stream, parser,
                              [&](std::string_view) { return 1 + random.next() % max_chunk; }),
                "random chunks");
  }
  // peer_connection's reads: finish the current frame, never read past it.
  expect_same(whole,
              parse_chunked(stream, parser,
                            [](std::string_view pending) -> std::size_t {
                              if (pending.size() < 4)
                                return 4 - pending.size();
                              return stream_parser::frame_size(pending) - pending.size();
                            }),
              "frame-sized reads");

  // Early stop after message k, then resume from what was consumed.
  if (!whole.messages.empty()) {
    const std::size_t k = 1 + random.next() % whole.messages.size();
    std::vector<owned> got;
    std::size_t calls = 0;
    stream_parser p;
    auto r = p.parse(stream, [&](const message& m) {
      record(m, stream, got);
      return ++calls < k;
    });
    FUZZ_CHECK(r.ok() && got.size() == k, "early stop");
    // The consumed bytes hold exactly those k messages, and what follows holds the rest.
    const outcome head = parse_whole(stream.substr(0, *r), parser);
    FUZZ_CHECK(!head.failed && head.messages.size() == k && head.rest.empty(),
               "early stop consumed a different number of frames");
    const outcome tail = parse_whole(stream.substr(*r), parser);
    got.insert(got.end(), tail.messages.begin(), tail.messages.end());
    outcome resumed = tail;
    resumed.messages = got;
    expect_same(whole, resumed, "stop and resume");
  }

  // A tighter frame limit sees a prefix of the same messages.
  {
    const outcome small = parse_whole(stream, stream_parser(32));
    FUZZ_CHECK(small.messages.size() <= whole.messages.size(), "small limit: more messages");
    for (std::size_t i = 0; i < small.messages.size(); ++i)
      FUZZ_CHECK(small.messages[i] == whole.messages[i], "small limit: different message");
    if (!whole.failed && !small.failed)
      FUZZ_CHECK(small.messages.size() == whole.messages.size() && small.rest == whole.rest,
                 "small limit: no error but different result");
  }

  // Encoders: the parsed messages re-encode to a stream that parses back to them.
  {
    const std::string encoded = encode_all(whole.messages);
    const outcome again = parse_whole(encoded, parser);
    outcome expected = whole;
    expected.failed = false;
    expected.error.clear();
    expected.rest.clear();
    expect_same(expected, again, "re-encoded stream");
  }

  // Bitfields: every BITFIELD payload seen, and the raw input as a payload.
  std::size_t budget = 4;
  for (const auto& m : whole.messages)
    if (m.id == msg_id::bitfield && budget-- > 0)
      check_bitfield_sizes(m.payload, random.next());
  check_bitfield_sizes(input.substr(0, 512), seed);
  return 0;
}
