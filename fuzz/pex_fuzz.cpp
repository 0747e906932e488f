// Fuzz target: pex::parse / encode (protocol/pex.hpp), the BEP 11 ut_pex payload a peer sends,
// and ut_metadata::parse (protocol/ut_metadata.hpp), the BEP 9 payload: both arrive on the same
// extended messages.
// Input: any bytes, taken as either payload.
// Invariants:
//  - every error is errc::wire_protocol and starts with "ut_pex: " / "ut_metadata: ";
//  - a parsed ut_pex message has at most the limits' entries, no port 0, and re-encodes to bytes
//    that parse back to the same peers (flags included);
//  - a parsed ut_metadata data message carries at most 16 KiB and a total_size within the limit;
//    a request or reject re-encodes to a message that parses back the same.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "protocol/pex.hpp"
#include "protocol/ut_metadata.hpp"

using namespace actorrent;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  pex::parse_limits lim;
  auto m = pex::parse(input, lim);
  if (!m) {
    FUZZ_CHECK(m.error().code == errc::wire_protocol, m.error().message);
    FUZZ_CHECK(m.error().message.rfind("ut_pex: ", 0) == 0, m.error().message);
  } else {
    FUZZ_CHECK(m->added.size() <= 2 * lim.max_added, "too many added");
    FUZZ_CHECK(m->dropped.size() <= 2 * lim.max_dropped, "too many dropped");
    for (auto& p : m->added)
      FUZZ_CHECK(p.port != 0, "port 0 kept");
    pex::parse_limits wide;
    wide.max_size = 1 << 20;
    wide.max_added = wide.max_dropped = 1000;
    auto again = pex::parse(pex::encode(*m), wide);
    FUZZ_CHECK(again.ok(), again.ok() ? "" : again.error().message);
    FUZZ_CHECK(again->added == m->added && again->dropped == m->dropped, "round trip");
    for (std::size_t i = 0; i < m->added.size(); ++i)
      FUZZ_CHECK(again->added[i].flags == m->added[i].flags, "flags lost");
  }

  auto u = ut_metadata::parse(input);
  if (!u) {
    FUZZ_CHECK(u.error().code == errc::wire_protocol, u.error().message);
    FUZZ_CHECK(u.error().message.rfind("ut_metadata: ", 0) == 0, u.error().message);
    return 0;
  }
  if (u->type == ut_metadata::msg_type::data) {
    FUZZ_CHECK(u->data.size() <= ut_metadata::piece_size, "data piece too long");
    FUZZ_CHECK(u->total_size >= 1 && u->total_size <= ut_metadata::max_size, "total_size");
    return 0;
  }
  auto bytes = u->type == ut_metadata::msg_type::request ? ut_metadata::encode_request(u->piece)
                                                         : ut_metadata::encode_reject(u->piece);
  auto again = ut_metadata::parse(bytes);
  FUZZ_CHECK(again.ok() && again->type == u->type && again->piece == u->piece, "round trip");
  return 0;
}
