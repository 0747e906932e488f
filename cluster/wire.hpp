// Encoding and checking cluster envelopes (cluster.proto), CAF-free. Every byte string that
// arrives from another node goes through decode() first: a wrong version, another torrent's
// info-hash or a message that does not parse gives a precise error, never an exception.
#pragma once

#include <cstdint>
#include <string>

#include <roaring/roaring.hh>

#include "cluster/cluster.pb.h"
#include "protocol/error.hpp"
#include "protocol/types.hpp"

namespace actorrent::cluster {

/// The protocol version this build speaks (cluster.proto's VERSION_CURRENT).
std::uint32_t protocol_version();

/// `env` with version and info-hash filled in, serialized.
std::string encode(wire::Envelope env, const info_hash& hash);

/// Parses `bytes`. Errors are errc::cluster_protocol, with what and why:
/// not an envelope; version other than ours ("protocol version 2, this node speaks 1");
/// info-hash other than `expected` when `expected` is non-null; no body.
result<wire::Envelope> decode(const std::string& bytes, const info_hash* expected);

/// Roaring's portable serialization, and back. Decoding refuses (precise error, no throw)
/// bytes that do not parse and bitmaps with a piece >= piece_count.
std::string bitmap_bytes(const Roaring& r);
result<Roaring> bitmap_from(const std::string& bytes, std::uint32_t piece_count);

} // namespace actorrent::cluster
