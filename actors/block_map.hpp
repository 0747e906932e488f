// A flat hash map from a block's 64-bit key (piece << 32 | block or offset) to a small value,
// for the request bookkeeping on the download hot path: open addressing with linear probing in
// one array, so inserting and erasing a request allocates nothing once the array has grown to
// the pipeline's size (a node-based map allocates per block). Erasing shifts the following
// entries back (no tombstones), so lookups stay short however long the map lives. CAF-free.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace actorrent {

template <class V>
class block_map {
public:
  /// Never a real key: piece numbers and block numbers are far below 2^32 - 1.
  static constexpr std::uint64_t empty_key = ~std::uint64_t{0};

  V* find(std::uint64_t key) noexcept {
    return const_cast<V*>(static_cast<const block_map&>(*this).find(key));
  }
  const V* find(std::uint64_t key) const noexcept {
    if (size_ == 0)
      return nullptr;
    for (auto i = home(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == key)
        return &slots_[i].value;
      if (slots_[i].key == empty_key)
        return nullptr;
    }
  }
  bool contains(std::uint64_t key) const noexcept { return find(key) != nullptr; }

  /// The value of `key`, inserted as `init` when absent; second: whether it was inserted.
  std::pair<V*, bool> try_emplace(std::uint64_t key, const V& init) {
    assert(key != empty_key);
    if (2 * (size_ + 1) > slots_.size())
      grow();
    for (auto i = home(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == key)
        return {&slots_[i].value, false};
      if (slots_[i].key == empty_key) {
        slots_[i].key = key;
        slots_[i].value = init;
        ++size_;
        return {&slots_[i].value, true};
      }
    }
  }

  bool erase(std::uint64_t key) noexcept {
    if (size_ == 0)
      return false;
    auto i = home(key);
    for (;; i = (i + 1) & mask_) {
      if (slots_[i].key == key)
        break;
      if (slots_[i].key == empty_key)
        return false;
    }
    // Backward shift: move each following entry of the run into the hole when the hole lies
    // between its home and where it sits, so that every entry stays reachable from its home.
    for (auto j = (i + 1) & mask_; slots_[j].key != empty_key; j = (j + 1) & mask_) {
      auto h = home(slots_[j].key);
      if (((j - h) & mask_) >= ((j - i) & mask_)) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i].key = empty_key;
    --size_;
    return true;
  }

  /// Empties the map and keeps its array (a peer's next requests reuse it).
  void clear() noexcept {
    if (size_ == 0)
      return;
    for (auto& s : slots_)
      s.key = empty_key;
    size_ = 0;
  }

  template <class F>
  void for_each(F&& f) const {
    if (size_ == 0)
      return;
    for (auto& s : slots_)
      if (s.key != empty_key)
        f(s.key, s.value);
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t capacity() const noexcept { return slots_.size(); }

private:
  struct slot {
    std::uint64_t key = empty_key;
    V value{};
  };
  std::size_t home(std::uint64_t key) const noexcept {
    // Fibonacci hashing: consecutive blocks of a piece spread over the whole array.
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void grow() {
    std::vector<slot> old;
    old.swap(slots_);
    std::size_t cap = old.empty() ? 16 : old.size() * 2;
    slots_.assign(cap, slot{});
    mask_ = cap - 1;
    shift_ = 64;
    for (std::size_t c = cap; c > 1; c >>= 1)
      --shift_;
    size_ = 0;
    for (auto& s : old)
      if (s.key != empty_key)
        try_emplace(s.key, s.value);
  }

  std::vector<slot> slots_;
  std::size_t size_ = 0;
  std::size_t mask_ = 0;
  unsigned shift_ = 64;
};

} // namespace actorrent
