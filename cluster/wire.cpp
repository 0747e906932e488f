#include "cluster/wire.hpp"

#include <cstddef>
#include <exception>
#include <utility>

#include <google/protobuf/stubs/logging.h>
#include <roaring/roaring.h>

namespace actorrent::cluster {

namespace {

// An envelope's largest legitimate body is a Welcome carrying the .torrent file; the biggest
// torrents' info dictionaries are a few MiB. Anything larger is refused before protobuf
// allocates for it.
constexpr std::size_t max_envelope_bytes = 64u << 20;

error fail(std::string what) {
  return error{errc::cluster_protocol, "cluster message: " + std::move(what)};
}

std::string hex_of(const std::string& bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::uint32_t le16(const std::string& b, std::size_t at) {
  return std::uint32_t{static_cast<unsigned char>(b[at])} |
         std::uint32_t{static_cast<unsigned char>(b[at + 1])} << 8;
}

std::uint32_t le32(const std::string& b, std::size_t at) {
  return le16(b, at) | le16(b, at + 2) << 16;
}

// Walks roaring's portable format; false with `why` unless it is well formed and ends exactly
// at the end of `b`. CRoaring's own reader prints to stdout and may assert on input that ends
// early, so nothing reaches it before this walk has shown that every container is complete.
// (Its reader takes the containers in sequence and skips the offset table, so the offsets
// themselves are not checked.)
bool check_portable_layout(const std::string& b, std::string& why) {
  constexpr std::uint32_t cookie_runs = 12347;    // SERIAL_COOKIE
  constexpr std::uint32_t cookie_no_runs = 12346; // SERIAL_COOKIE_NO_RUNCONTAINER
  constexpr std::uint32_t no_offset_threshold = 4;
  constexpr std::uint32_t max_array = 4096;
  auto need = [&](std::size_t end, const char* what) {
    if (end <= b.size())
      return true;
    why = "is truncated in its " + std::string(what) + " (needs at least " +
          std::to_string(end) + " bytes, has " + std::to_string(b.size()) + ")";
    return false;
  };
  if (!need(4, "cookie"))
    return false;
  const std::uint32_t cookie = le32(b, 0);
  std::size_t at = 4;
  std::uint64_t count = 0;
  bool runs = false;
  if ((cookie & 0xffff) == cookie_runs) {
    runs = true;
    count = (cookie >> 16) + 1;
  } else if (cookie == cookie_no_runs) {
    if (!need(8, "container count"))
      return false;
    count = le32(b, 4);
    at = 8;
  } else {
    why = "does not start with a roaring cookie (found " + std::to_string(cookie) + ")";
    return false;
  }
  if (count > 65536) {
    why = "claims " + std::to_string(count) + " containers (at most 65,536)";
    return false;
  }
  const std::size_t run_bitmap = at;
  if (runs) {
    at += (count + 7) / 8;
    if (!need(at, "run-container flags"))
      return false;
  }
  const std::size_t headers = at;
  at += 4 * count;
  if (!need(at, "container headers"))
    return false;
  if (!runs || count >= no_offset_threshold) {
    at += 4 * count;
    if (!need(at, "container offsets"))
      return false;
  }
  // Each container must also be well formed: CRoaring trusts the headers (its iterator reads
  // past an all-zero bitset container, and dereferences the first run of a run container with
  // none), so keys increase, every container holds what its header says and none is empty.
  std::int64_t last_key = -1;
  for (std::uint64_t i = 0; i < count; ++i) {
    const bool is_run =
        runs && (static_cast<unsigned char>(b[run_bitmap + i / 8]) >> (i % 8) & 1) != 0;
    const std::uint32_t key = le16(b, headers + 4 * i);
    const std::uint32_t card = le16(b, headers + 4 * i + 2) + 1;
    if (static_cast<std::int64_t>(key) <= last_key) {
      why = "has container keys out of order (container " + std::to_string(i) + ")";
      return false;
    }
    last_key = key;
    const std::size_t start = at;
    if (is_run) {
      if (!need(at + 2, "run container"))
        return false;
      const std::uint32_t n_runs = le16(b, at);
      at += 2 + 4 * std::size_t{n_runs};
      if (!need(at, "run container"))
        return false;
      std::uint64_t total = 0;
      std::int64_t next = 0; // smallest value the next run may start at
      for (std::uint32_t k = 0; k < n_runs; ++k) {
        const std::uint32_t value = le16(b, start + 2 + 4 * k);
        const std::uint32_t length = le16(b, start + 4 + 4 * k);
        if (static_cast<std::int64_t>(value) < next || value + length > 0xffff) {
          why = "has a malformed run container (container " + std::to_string(i) + ")";
          return false;
        }
        next = std::int64_t{value} + length + 1;
        total += length + 1;
      }
      if (n_runs == 0 || total != card) {
        why = "has a run container of " + std::to_string(total) + " values, its header says " +
              std::to_string(card) + " (container " + std::to_string(i) + ")";
        return false;
      }
    } else if (card <= max_array) {
      at += 2 * std::size_t{card};
      if (!need(at, "array container"))
        return false;
      for (std::uint32_t k = 1; k < card; ++k)
        if (le16(b, start + 2 * k) <= le16(b, start + 2 * (k - 1))) {
          why = "has an unsorted array container (container " + std::to_string(i) + ")";
          return false;
        }
    } else {
      at += 8192;
      if (!need(at, "bitset container"))
        return false;
      std::uint64_t bits = 0;
      for (std::size_t k = start; k < at; ++k)
        bits += static_cast<unsigned>(__builtin_popcount(static_cast<unsigned char>(b[k])));
      if (bits != card) {
        why = "has a bitset container of " + std::to_string(bits) + " values, its header says " +
              std::to_string(card) + " (container " + std::to_string(i) + ")";
        return false;
      }
    }
  }
  if (at != b.size()) {
    why = "ends at byte " + std::to_string(at) + " of its " + std::to_string(b.size()) +
          " bytes";
    return false;
  }
  return true;
}

} // namespace

std::uint32_t protocol_version() {
  return static_cast<std::uint32_t>(wire::VERSION_CURRENT);
}

std::string encode(wire::Envelope env, const info_hash& hash) {
  env.set_version(protocol_version());
  env.set_info_hash(std::string(reinterpret_cast<const char*>(hash.data()), hash.size()));
  std::string out;
  env.SerializeToString(&out);
  return out;
}

result<wire::Envelope> decode(const std::string& bytes, const info_hash* expected) {
  if (bytes.size() > max_envelope_bytes)
    return fail("envelope of " + std::to_string(bytes.size()) + " bytes, more than the limit of " +
                std::to_string(max_envelope_bytes));
  wire::Envelope env;
  bool parsed = false;
  {
    // protobuf logs a line for every string field that is not UTF-8 before failing the parse:
    // a hostile node must not be able to fill the log with them. The refusal says it instead.
    google::protobuf::LogSilencer quiet;
    parsed = !bytes.empty() && env.ParseFromString(bytes);
  }
  if (!parsed)
    return fail("not a cluster envelope (" + std::to_string(bytes.size()) +
                " bytes that do not parse as one, or a text field that is not UTF-8)");
  // The version first: a node of another version may lay out everything else differently.
  if (env.version() != protocol_version()) {
    if (env.version() == 0)
      return fail("no protocol version (not an actorrent cluster node?), this node speaks " +
                  std::to_string(protocol_version()));
    return fail("protocol version " + std::to_string(env.version()) + ", this node speaks " +
                std::to_string(protocol_version()));
  }
  if (env.info_hash().size() != std::tuple_size<info_hash>::value)
    return fail("info-hash of " + std::to_string(env.info_hash().size()) +
                " bytes (expected 20)");
  if (expected != nullptr) {
    const std::string want(reinterpret_cast<const char*>(expected->data()), expected->size());
    if (env.info_hash() != want)
      return fail("info-hash " + hex_of(env.info_hash()) + " is another torrent's (this job: " +
                  to_hex(*expected) + ")");
  }
  if (env.body_case() == wire::Envelope::BODY_NOT_SET)
    return fail("envelope without a body this node knows (version " +
                std::to_string(env.version()) + ")");
  return env;
}

std::string bitmap_bytes(const Roaring& r) {
  // Shards are runs of piece indexes: run containers make them a few bytes each.
  Roaring copy = r;
  copy.runOptimize();
  copy.shrinkToFit();
  std::string out(copy.getSizeInBytes(true), '\0');
  const auto n = copy.write(out.data(), true);
  out.resize(n);
  return out;
}

result<Roaring> bitmap_from(const std::string& bytes, std::uint32_t piece_count) {
  // proto3 leaves an unset bytes field empty: no pieces.
  if (bytes.empty())
    return Roaring{};
  // Our own encoding of any subset of n pieces needs at most n/8 bytes of containers plus a
  // few bytes of header per 65,536 pieces; the margin is generous.
  const std::size_t limit = piece_count / 8 + (64u << 10);
  if (bytes.size() > limit)
    return fail("piece bitmap of " + std::to_string(bytes.size()) + " bytes, more than " +
                std::to_string(limit) + " for " + std::to_string(piece_count) + " pieces");
  std::string why;
  if (!check_portable_layout(bytes, why))
    return fail("piece bitmap " + why);
  // The C call returns null on bad input; the C++ wrapper would throw.
  roaring_bitmap_t* raw = roaring_bitmap_portable_deserialize_safe(bytes.data(), bytes.size());
  if (raw == nullptr)
    return fail("piece bitmap of " + std::to_string(bytes.size()) +
                " bytes cannot be decoded (truncated or corrupt roaring data)");
  const std::size_t used = roaring_bitmap_portable_size_in_bytes(raw);
  if (used != bytes.size()) {
    roaring_bitmap_free(raw);
    return fail("piece bitmap decodes from " + std::to_string(used) + " of its " +
                std::to_string(bytes.size()) + " bytes");
  }
  // Copy value by value, checking the order: a malformed container (unsorted array,
  // overlapping runs) is never trusted beyond being iterated.
  Roaring clean;
  std::uint64_t next = 0;
  roaring_uint32_iterator_t* it = roaring_create_iterator(raw);
  while (it->has_value) {
    const std::uint32_t v = it->current_value;
    if (v >= piece_count) {
      why = "piece bitmap holds piece " + std::to_string(v) + " but the torrent has " +
            std::to_string(piece_count) + " pieces";
      break;
    }
    if (v < next) {
      why = "piece bitmap is malformed (piece " + std::to_string(v) + " out of order)";
      break;
    }
    clean.add(v);
    next = std::uint64_t{v} + 1;
    roaring_advance_uint32_iterator(it);
  }
  roaring_free_uint32_iterator(it);
  roaring_bitmap_free(raw);
  if (!why.empty())
    return fail(why);
  return clean;
}

} // namespace actorrent::cluster
