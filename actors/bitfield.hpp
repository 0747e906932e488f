// A fixed-size bit set of pieces in BitTorrent wire order (bit 7 of byte 0 is piece 0).
// Owned by whoever holds it (the torrent keeps one per peer); no sharing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.hpp"
#include "protocol/types.hpp"

namespace actorrent {

class bitfield {
public:
  bitfield() = default;
  explicit bitfield(std::uint32_t size, bool value = false);

  /// BEP 3: a BITFIELD payload must be exactly ceil(size / 8) bytes with the spare bits zero.
  static result<bitfield> from_wire(std::string_view bytes, std::uint32_t size);
  std::string to_wire() const;

  std::uint32_t size() const noexcept { return size_; }
  bool test(piece_index p) const noexcept {
    return (words_[p.value >> 6] >> (p.value & 63)) & 1u;
  }
  void set(piece_index p) noexcept { words_[p.value >> 6] |= std::uint64_t{1} << (p.value & 63); }
  void reset(piece_index p) noexcept {
    words_[p.value >> 6] &= ~(std::uint64_t{1} << (p.value & 63));
  }
  void set_all() noexcept;
  void clear() noexcept;
  std::uint32_t count() const noexcept;
  bool all() const noexcept { return count() == size_; }
  bool none() const noexcept;
  /// Bitwise or / and-not with a bitfield of the same size.
  bitfield& operator|=(const bitfield& o) noexcept;
  bitfield& and_not(const bitfield& o) noexcept;

  /// Calls f(piece_index) for every set bit, in increasing order.
  template <class F>
  void for_each_set(F&& f) const {
    for (std::size_t w = 0; w < words_.size(); ++w) {
      auto bits = words_[w];
      while (bits) {
        auto bit = static_cast<std::uint32_t>(__builtin_ctzll(bits));
        f(piece_index{static_cast<std::uint32_t>(w * 64) + bit});
        bits &= bits - 1;
      }
    }
  }

private:
  std::vector<std::uint64_t> words_;
  std::uint32_t size_ = 0;
};

} // namespace actorrent
