// Fuzz target: bencode::decode / decode_prefix / encode (protocol/bencode.hpp).
// Input: any bytes, taken as one bencoded document.
// Invariants:
//  - a strict (canonical) decode re-encodes to exactly the input bytes, and every nested
//    value's span() holds exactly that value's encoding;
//  - strict success implies lenient success with the same value;
//  - a lenient decode re-encodes to canonical bytes that decode strictly to the same value, and
//    every nested value's span() decodes (leniently) to that value on its own;
//  - decode_prefix agrees with decode on where the value ends;
//  - tighter limits never accept what the defaults refuse, and refuse what the defaults accept
//    only with errc::bencode_limit;
//  - every error is a bencode_* code that names a byte offset inside the input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "protocol/bencode.hpp"

using namespace actorrent;
using namespace actorrent::bencode;

namespace {

void check_error(const error& e, std::string_view input) {
  FUZZ_CHECK(e.code == errc::bencode_syntax || e.code == errc::bencode_limit ||
                 e.code == errc::bencode_noncanonical,
             e.message);
  const long long at = actorrent_fuzz::byte_offset(e.message);
  FUZZ_CHECK(at >= 0 && static_cast<std::size_t>(at) <= input.size(), e.message);
}

// Strict decode: every value's span is exactly its canonical encoding.
void check_strict_spans(const value& v, std::string_view input, std::size_t lo, std::size_t hi) {
  auto [b, e] = v.span();
  FUZZ_CHECK(lo <= b && b < e && e <= hi, "span outside its parent");
  FUZZ_CHECK(input.substr(b, e - b) == encode(v), "span is not the value's encoding");
  if (v.is_list()) {
    std::size_t prev = b;
    for (const auto& item : v.as_list()) {
      check_strict_spans(item, input, prev, e);
      prev = item.span().second;
    }
  } else if (v.is_dict()) {
    std::size_t prev = b;
    for (const auto& [k, item] : v.as_dict()) {
      check_strict_spans(item, input, prev, e);
      prev = item.span().second;
    }
  }
}

// Lenient decode: each span decodes on its own to the same value.
void check_lenient_spans(const value& v, std::string_view input) {
  auto [b, e] = v.span();
  FUZZ_CHECK(b < e && e <= input.size(), "span outside the input");
  auto again = decode(input.substr(b, e - b), limits{}, true);
  FUZZ_CHECK(again.ok(), "a value's span does not decode on its own");
  FUZZ_CHECK(encode(*again) == encode(v), "a value's span decodes to something else");
  if (v.is_list()) {
    for (const auto& item : v.as_list())
      check_lenient_spans(item, input);
  } else if (v.is_dict()) {
    for (const auto& [k, item] : v.as_dict())
      check_lenient_spans(item, input);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  auto strict = decode(input);
  auto lenient = decode(input, limits{}, true);
  if (!strict.ok())
    check_error(strict.error(), input);
  if (!lenient.ok())
    check_error(lenient.error(), input);

  if (strict.ok()) {
    FUZZ_CHECK(encode(*strict) == input, "strict decode does not re-encode to the input");
    FUZZ_CHECK(strict->span().first == 0 && strict->span().second == size, "root span");
    check_strict_spans(*strict, input, 0, size);
    FUZZ_CHECK(lenient.ok(), "strict accepts what lenient refuses");
    FUZZ_CHECK(encode(*lenient) == input, "strict and lenient decode differ");
  }

  if (lenient.ok()) {
    const std::string canonical = encode(*lenient);
    auto again = decode(canonical);
    FUZZ_CHECK(again.ok(), "encode output is not canonical: " + again.error().message);
    FUZZ_CHECK(encode(*again) == canonical, "encode is not a fixpoint");
    check_lenient_spans(*lenient, input);
  }

  // decode_prefix: the value at the front, trailing bytes allowed.
  std::size_t consumed = 12345;
  auto prefix = decode_prefix(input, consumed, limits{}, true);
  if (lenient.ok()) {
    FUZZ_CHECK(prefix.ok() && consumed == size, "decode_prefix disagrees with decode");
  }
  if (prefix.ok()) {
    FUZZ_CHECK(consumed > 0 && consumed <= size, "decode_prefix consumed out of range");
    auto whole = decode(input.substr(0, consumed), limits{}, true);
    FUZZ_CHECK(whole.ok() && encode(*whole) == encode(*prefix),
               "the consumed prefix does not decode to the same value");
    if (consumed < size)
      FUZZ_CHECK(!lenient.ok(), "trailing data accepted by decode");
  } else {
    FUZZ_CHECK(consumed == 0, "decode_prefix failed but reports consumed bytes");
    check_error(prefix.error(), input);
  }

  // Tight limits: a subset of what the defaults accept, refusals beyond that are limit errors.
  limits tight;
  tight.max_depth = 4;
  tight.max_string = 16;
  tight.max_items = 32;
  tight.max_total = 256;
  auto small = decode(input, tight, true);
  if (small.ok()) {
    FUZZ_CHECK(lenient.ok() && encode(*small) == encode(*lenient),
               "tight limits accept what the defaults do not");
  } else {
    check_error(small.error(), input);
    if (lenient.ok())
      FUZZ_CHECK(small.error().code == errc::bencode_limit,
                 "within-default input refused under tight limits without a limit error: " +
                     small.error().message);
  }
  return 0;
}
