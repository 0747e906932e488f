#include "actors/bitfield.hpp"

#include <cassert>

namespace actorrent {

bitfield::bitfield(std::uint32_t size, bool value) : words_((size + 63) / 64), size_(size) {
  if (value)
    set_all();
}

result<bitfield> bitfield::from_wire(std::string_view bytes, std::uint32_t size) {
  std::size_t expected = (std::size_t{size} + 7) / 8;
  if (bytes.size() != expected)
    return error{errc::wire_protocol, "bitfield: " + std::to_string(bytes.size()) +
                                          " bytes, expected " + std::to_string(expected)};
  bitfield out(size);
  for (std::uint32_t i = 0; i < expected; ++i) {
    auto byte = static_cast<unsigned char>(bytes[i]);
    for (std::uint32_t b = 0; b < 8; ++b) {
      if (!(byte & (0x80u >> b)))
        continue;
      std::uint32_t piece = i * 8 + b;
      if (piece >= size)
        return error{errc::wire_protocol, "bitfield: spare bit " + std::to_string(piece) +
                                              " set beyond " + std::to_string(size) + " pieces"};
      out.set(piece_index{piece});
    }
  }
  return out;
}

std::string bitfield::to_wire() const {
  std::string out((std::size_t{size_} + 7) / 8, '\0');
  for_each_set([&](piece_index p) {
    out[p.value / 8] = static_cast<char>(static_cast<unsigned char>(out[p.value / 8]) |
                                         (0x80u >> (p.value % 8)));
  });
  return out;
}

void bitfield::set_all() noexcept {
  for (auto& w : words_)
    w = ~std::uint64_t{0};
  if (size_ % 64 != 0 && !words_.empty())
    words_.back() = (std::uint64_t{1} << (size_ % 64)) - 1;
}

void bitfield::clear() noexcept {
  for (auto& w : words_)
    w = 0;
}

std::uint32_t bitfield::count() const noexcept {
  std::uint32_t n = 0;
  for (auto w : words_)
    n += static_cast<std::uint32_t>(__builtin_popcountll(w));
  return n;
}

bitfield& bitfield::operator|=(const bitfield& o) noexcept {
  assert(o.size_ == size_);
  for (std::size_t i = 0; i < words_.size(); ++i)
    words_[i] |= o.words_[i];
  return *this;
}

bitfield& bitfield::and_not(const bitfield& o) noexcept {
  assert(o.size_ == size_);
  for (std::size_t i = 0; i < words_.size(); ++i)
    words_[i] &= ~o.words_[i];
  return *this;
}

bool bitfield::none() const noexcept {
  for (auto w : words_)
    if (w)
      return false;
  return true;
}

} // namespace actorrent
