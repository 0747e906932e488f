// Fuzz target: krpc::decode / encode (protocol/krpc.hpp), the DHT's UDP datagrams (BEP 5).
// Input: any bytes, taken as one datagram.
// Invariants:
//  - every error is wire_protocol or bencode_*, starts with "krpc: ", and a byte offset it names
//    lies inside the input;
//  - what a decoded message keeps is bounded: nodes, values, token, transaction and version
//    within the limits (a datagram with thousands of nodes keeps at most max_nodes);
//  - a decoded message re-encodes to bytes that decode to the same message, and that encoding
//    is a fixpoint.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "protocol/krpc.hpp"

using namespace actorrent;
using namespace actorrent::krpc;

namespace {

void check_error(const error& e, std::string_view input) {
  FUZZ_CHECK(e.code == errc::wire_protocol || e.code == errc::bencode_syntax ||
               e.code == errc::bencode_limit || e.code == errc::bencode_noncanonical,
             e.message);
  FUZZ_CHECK(e.message.rfind("krpc: ", 0) == 0, e.message);
  const long long at = actorrent_fuzz::byte_offset(e.message);
  FUZZ_CHECK(at < 0 || static_cast<std::size_t>(at) <= input.size(), e.message);
}

bool same(const message& a, const message& b) {
  if (a.type != b.type || a.transaction != b.transaction || a.version != b.version ||
      a.yourip.has_value() != b.yourip.has_value() || (a.yourip && *a.yourip != *b.yourip))
    return false;
  switch (a.type) {
    case kind::query:
      return a.q.m == b.q.m && a.q.name == b.q.name && a.q.id == b.q.id &&
             a.q.target == b.q.target && a.q.hash == b.q.hash && a.q.port == b.q.port &&
             a.q.implied_port == b.q.implied_port && a.q.token == b.q.token &&
             a.q.read_only == b.q.read_only;
    case kind::response:
      return a.r.id == b.r.id && a.r.nodes == b.r.nodes && a.r.values == b.r.values &&
             a.r.token == b.r.token;
    case kind::error: return a.e.code == b.e.code && a.e.text == b.e.text;
  }
  return false;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  limits lim;
  auto m = decode(input, lim);
  if (!m) {
    check_error(m.error(), input);
    return 0;
  }
  FUZZ_CHECK(m->r.nodes.size() <= lim.max_nodes, "too many nodes kept");
  FUZZ_CHECK(m->r.values.size() <= lim.max_values, "too many values kept");
  FUZZ_CHECK(m->r.token.size() <= lim.max_token && m->q.token.size() <= lim.max_token, "token");
  FUZZ_CHECK(m->transaction.size() <= lim.max_transaction, "transaction id");
  FUZZ_CHECK(m->version.size() <= lim.max_version, "version");
  auto bytes = encode(*m);
  limits wide = lim;
  wide.max_packet = 64 * 1024;
  auto again = decode(bytes, wide);
  FUZZ_CHECK(again.ok(), again.ok() ? "" : again.error().message);
  FUZZ_CHECK(same(*m, *again), "re-encoded message decodes to something else");
  FUZZ_CHECK(encode(*again) == bytes, "encoding is not a fixpoint");
  return 0;
}
