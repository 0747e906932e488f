// Strong index and id types shared by every layer, so a piece index can never be passed where a
// file index or a byte offset is expected (the idea of libtorrent's units.hpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace actorrent {

template <class Tag, class T>
struct strong_index {
  T value = 0;

  constexpr strong_index() = default;
  constexpr explicit strong_index(T v) : value(v) {}

  friend constexpr bool operator==(strong_index a, strong_index b) { return a.value == b.value; }
  friend constexpr bool operator!=(strong_index a, strong_index b) { return a.value != b.value; }
  friend constexpr bool operator<(strong_index a, strong_index b) { return a.value < b.value; }
  friend constexpr bool operator<=(strong_index a, strong_index b) { return a.value <= b.value; }
  friend constexpr bool operator>(strong_index a, strong_index b) { return a.value > b.value; }
  friend constexpr bool operator>=(strong_index a, strong_index b) { return a.value >= b.value; }
};

using piece_index = strong_index<struct piece_index_tag, std::uint32_t>;
using file_index = strong_index<struct file_index_tag, std::uint32_t>;

/// 20-byte SHA-1 digest: info-hashes, piece hashes and peer ids.
using sha1_digest = std::array<std::uint8_t, 20>;
using info_hash = sha1_digest;
using peer_id = std::array<std::uint8_t, 20>;

/// Lower-case hex of a digest.
std::string to_hex(const sha1_digest& d);

/// The standard block size requested from peers (BEP 3 recommends 16 KiB).
inline constexpr std::uint32_t block_size = 16 * 1024;

/// Small per-torrent peer number (index into the torrent's peer table; never reused).
using peer_slot = std::uint32_t;
inline constexpr peer_slot no_peer = ~peer_slot{0};

/// One block of a piece.
struct block_ref {
  piece_index piece;
  std::uint32_t block = 0; // block number inside the piece (offset / block_size)

  friend bool operator==(block_ref a, block_ref b) {
    return a.piece == b.piece && a.block == b.block;
  }
};

/// How much a file of a torrent is wanted. A piece takes the highest priority of the files it
/// touches; pieces touching only skipped files are not downloaded.
enum class file_priority : std::uint8_t { skip = 0, normal = 1, high = 2 };

} // namespace actorrent

template <class Tag, class T>
struct std::hash<actorrent::strong_index<Tag, T>> {
  std::size_t operator()(actorrent::strong_index<Tag, T> i) const noexcept {
    return std::hash<T>{}(i.value);
  }
};
