// Bencoding (BEP 3): a strict decoder for untrusted bytes and a canonical encoder.
// The decoder enforces limits on nesting, string length, item count and total size, and
// reports every error with the byte offset where it was found.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/error.hpp"

namespace actorrent::bencode {

class value;
using list = std::vector<value>;
/// Dictionary entries in the order they appeared (the decoder requires sorted, unique keys).
using dict = std::vector<std::pair<std::string, value>>;

/// A decoded bencode value. `span()` is the [begin, end) byte range it occupied in the decoded
/// input, so that e.g. the info-hash can be taken over the exact bytes of the `info` dictionary.
class value {
public:
  enum class kind : std::uint8_t { integer, string, list, dict };

  value() : kind_(kind::integer) {}
  static value make_int(std::int64_t i);
  static value make_string(std::string s);
  static value make_list(list l = {});
  static value make_dict(dict d = {});

  kind type() const noexcept { return kind_; }
  bool is_int() const noexcept { return kind_ == kind::integer; }
  bool is_string() const noexcept { return kind_ == kind::string; }
  bool is_list() const noexcept { return kind_ == kind::list; }
  bool is_dict() const noexcept { return kind_ == kind::dict; }

  std::int64_t as_int() const;          // precondition: is_int()
  const std::string& as_string() const; // precondition: is_string()
  const list& as_list() const;          // precondition: is_list()
  const dict& as_dict() const;          // precondition: is_dict()
  list& as_list();
  dict& as_dict();

  /// Dictionary lookup; nullptr when absent or when this is not a dictionary.
  const value* find(std::string_view key) const;

  /// Inserts or replaces a key, keeping the dictionary sorted (for building values to encode).
  void set(std::string key, value v);

  std::pair<std::size_t, std::size_t> span() const noexcept { return span_; }
  void set_span(std::size_t begin, std::size_t end) noexcept { span_ = {begin, end}; }

private:
  kind kind_;
  std::int64_t int_ = 0;
  std::string str_;
  list list_;
  dict dict_;
  std::pair<std::size_t, std::size_t> span_{0, 0};
};

struct limits {
  std::size_t max_depth = 64;              // nesting of lists and dictionaries
  std::size_t max_string = 64u << 20;      // bytes in one string
  std::size_t max_items = 4u << 20;        // values in the whole document
  std::size_t max_total = 128u << 20;      // bytes of input accepted
};

/// Decodes exactly one value that must span the whole input.
/// Errors (errc::bencode_syntax / bencode_limit / bencode_noncanonical) say
/// "<what> at byte <offset>". Non-canonical input (leading zeros, "-0", unsorted or duplicate
/// dictionary keys) is rejected unless `allow_noncanonical` is set.
result<value> decode(std::string_view input, const limits& lim = {},
                     bool allow_noncanonical = false);

/// Decodes one value at the start of `input`; `consumed` receives its length. Trailing bytes are
/// allowed (used where bencode is followed by raw data, e.g. BEP 9 metadata messages).
result<value> decode_prefix(std::string_view input, std::size_t& consumed, const limits& lim = {},
                            bool allow_noncanonical = false);

/// Canonical encoding (dictionary keys sorted bytewise).
std::string encode(const value& v);

} // namespace actorrent::bencode
