// Fuzz target: ext::parse_handshake / encode_handshake (protocol/extension.hpp), the BEP 10
// extended handshake a peer sends.
// Input: any bytes, taken as the payload of an extended handshake (after message id and ext id).
// Invariants:
//  - every error is errc::wire_protocol, starts with "extended handshake: ", and a byte offset
//    it names lies inside the input;
//  - a parsed handshake re-encodes canonically to bytes that parse back to the same handshake
//    (extensions compared as a set of names: the peer's order is not kept by the encoder), and
//    that encoding is a fixpoint;
//  - reqq is 0 or >= 1, yourip is empty or 4 or 16 bytes, metadata_size is within the limit;
//  - tighter limits never accept what the defaults refuse.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "protocol/extension.hpp"

using namespace actorrent;
using namespace actorrent::ext;

namespace {

void check_error(const error& e, std::string_view input) {
  FUZZ_CHECK(e.code == errc::wire_protocol, e.message);
  FUZZ_CHECK(e.message.rfind("extended handshake: ", 0) == 0, e.message);
  const long long at = actorrent_fuzz::byte_offset(e.message);
  FUZZ_CHECK(at < 0 || static_cast<std::size_t>(at) <= input.size(), e.message);
}

bool same(const handshake& a, const handshake& b) {
  auto ea = a.extensions, eb = b.extensions;
  std::sort(ea.begin(), ea.end());
  std::sort(eb.begin(), eb.end());
  return ea == eb && a.client == b.client && a.reqq == b.reqq && a.listen_port == b.listen_port &&
         a.yourip == b.yourip && a.metadata_size == b.metadata_size;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  parse_limits lim;
  auto h = parse_handshake(input, lim);

  parse_limits tight;
  tight.max_size = 256;
  tight.max_extensions = 4;
  tight.max_metadata_size = 1000;
  auto t = parse_handshake(input, tight);
  if (!t)
    check_error(t.error(), input);
  if (!h) {
    check_error(h.error(), input);
    FUZZ_CHECK(!t.ok(), "tight limits accept what the defaults refuse");
    return 0;
  }
  FUZZ_CHECK(h->yourip.empty() || h->yourip.size() == 4 || h->yourip.size() == 16, "yourip size");
  FUZZ_CHECK(h->metadata_size <= lim.max_metadata_size, "metadata_size over the limit");
  FUZZ_CHECK(h->extensions.size() <= lim.max_extensions, "too many extensions");

  auto bytes = encode_handshake(*h);
  auto again = parse_handshake(bytes, lim);
  FUZZ_CHECK(again.ok(), again.ok() ? "" : again.error().message);
  FUZZ_CHECK(same(*h, *again), "re-encoded handshake parses to something else");
  FUZZ_CHECK(encode_handshake(*again) == bytes, "encoding is not a fixpoint");
  return 0;
}
