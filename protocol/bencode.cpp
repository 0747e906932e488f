#include "protocol/bencode.hpp"

#include <algorithm>
#include <limits>
#include <unordered_set>

namespace actorrent::bencode {

// --- value -----------------------------------------------------------------------------------

value value::make_int(std::int64_t i) {
  value v;
  v.kind_ = kind::integer;
  v.int_ = i;
  return v;
}

value value::make_string(std::string s) {
  value v;
  v.kind_ = kind::string;
  v.str_ = std::move(s);
  return v;
}

value value::make_list(list l) {
  value v;
  v.kind_ = kind::list;
  v.list_ = std::move(l);
  return v;
}

value value::make_dict(dict d) {
  value v;
  v.kind_ = kind::dict;
  v.dict_ = std::move(d);
  return v;
}

std::int64_t value::as_int() const {
  assert(is_int());
  return int_;
}

const std::string &value::as_string() const {
  assert(is_string());
  return str_;
}

const list &value::as_list() const {
  assert(is_list());
  return list_;
}

const dict &value::as_dict() const {
  assert(is_dict());
  return dict_;
}

list &value::as_list() {
  assert(is_list());
  return list_;
}

dict &value::as_dict() {
  assert(is_dict());
  return dict_;
}

const value *value::find(std::string_view key) const {
  if (!is_dict())
    return nullptr;
  // Linear on purpose: decoded dictionaries may be unsorted when allow_noncanonical was set.
  for (const auto &[k, v] : dict_)
    if (k == key)
      return &v;
  return nullptr;
}

void value::set(std::string key, value v) {
  if (!is_dict()) {
    *this = make_dict();
  }
  for (auto &entry : dict_) {
    if (entry.first == key) {
      entry.second = std::move(v);
      return;
    }
  }
  auto pos =
      std::lower_bound(dict_.begin(), dict_.end(), key,
                       [](const auto &entry, const std::string &k) { return entry.first < k; });
  dict_.emplace(pos, std::move(key), std::move(v));
}

// --- decoder ---------------------------------------------------------------------------------

namespace {

std::string describe_byte(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) {
    return std::string("'") + c + "'";
  }
  static const char digits[] = "0123456789abcdef";
  return std::string("0x") + digits[u >> 4] + digits[u & 0xf];
}

std::string at(std::size_t pos) {
  return " at byte " + std::to_string(pos);
}

// One open list or dictionary. Keys are views into the input, which outlives the decode call.
struct frame {
  value v;
  std::size_t begin = 0;
  bool has_key = false; // dict: a key was read and its value is pending
  std::string_view key; // dict: the pending key
  std::string_view last_key;
  bool has_last_key = false;
  bool sorted = true;            // dict: keys so far were strictly increasing
  std::size_t sorted_prefix = 0; // dict: entries that were in order before the first disorder
  // dict: keys after the first disorder, as views into the input (the dict's own strings move
  // when its vector grows, so they cannot be referenced).
  std::unordered_set<std::string_view> seen;
};

bool in_sorted_prefix(const frame &f, std::string_view key) {
  const dict &d = f.v.as_dict();
  auto end = d.begin() + static_cast<std::ptrdiff_t>(f.sorted_prefix);
  auto it = std::lower_bound(d.begin(), end, key, [](const auto &entry, std::string_view k) {
    return std::string_view(entry.first) < k;
  });
  return it != end && it->first == key;
}

class decoder {
public:
  decoder(std::string_view input, std::size_t full_size, const limits &lim, bool allow_nc)
      : in_(input), full_size_(full_size), lim_(lim), allow_nc_(allow_nc) {}

  result<value> run(std::size_t &consumed) {
    std::vector<frame> stack;
    value done;
    bool have_done = false;
    while (!have_done) {
      if (!stack.empty() && stack.back().v.is_dict() && !stack.back().has_key) {
        // A dictionary expects a key or its end.
        frame &f = stack.back();
        if (pos_ >= in_.size())
          return truncated();
        if (in_[pos_] == 'e') {
          ++pos_;
          close(stack, done, have_done);
          continue;
        }
        if (in_[pos_] < '0' || in_[pos_] > '9')
          return fail(errc::bencode_syntax, "dictionary key must be a string, found " +
                                                describe_byte(in_[pos_]) + at(pos_));
        std::size_t key_pos = pos_;
        std::string_view key;
        if (!read_string(key))
          return err_;
        if (f.has_last_key && key <= f.last_key) {
          if (key == f.last_key)
            return fail(errc::bencode_noncanonical,
                        "duplicate dictionary key \"" + printable(key) + "\"" + at(key_pos));
          if (!allow_nc_)
            return fail(errc::bencode_noncanonical,
                        "dictionary key \"" + printable(key) + "\" out of order" + at(key_pos));
          if (f.sorted) {
            // First out-of-order key: the keys before it are sorted, later ones are tracked in
            // `seen`, and a duplicate may now hide in either.
            f.sorted = false;
            f.sorted_prefix = f.v.as_dict().size();
          }
        }
        if (!f.sorted && (in_sorted_prefix(f, key) || !f.seen.insert(key).second))
          return fail(errc::bencode_noncanonical,
                      "duplicate dictionary key \"" + printable(key) + "\"" + at(key_pos));
        // last_key is the largest key so far: while keys only grow, comparing against it alone
        // proves order and uniqueness; after a disorder `seen` takes over duplicate detection.
        if (!f.has_last_key || key > f.last_key) {
          f.last_key = key;
          f.has_last_key = true;
        }
        f.key = key;
        f.has_key = true;
        if (pos_ >= in_.size())
          return truncated();
        if (in_[pos_] == 'e')
          return fail(errc::bencode_syntax,
                      "dictionary key \"" + printable(key) + "\" has no value" + at(pos_));
        continue;
      }

      if (pos_ >= in_.size())
        return truncated();
      if (!stack.empty() && stack.back().v.is_list() && in_[pos_] == 'e') {
        ++pos_;
        close(stack, done, have_done);
        continue;
      }

      std::size_t begin = pos_;
      if (++items_ > lim_.max_items)
        return fail(errc::bencode_limit,
                    "more than " + std::to_string(lim_.max_items) + " items" + at(begin));
      char c = in_[pos_];
      if (c == 'l' || c == 'd') {
        if (stack.size() >= lim_.max_depth)
          return fail(errc::bencode_limit,
                      "nesting deeper than " + std::to_string(lim_.max_depth) + at(begin));
        ++pos_;
        frame f;
        f.v = c == 'l' ? value::make_list() : value::make_dict();
        f.begin = begin;
        stack.push_back(std::move(f));
        continue;
      }
      value v;
      if (c == 'i') {
        std::int64_t i = 0;
        if (!read_int(i))
          return err_;
        v = value::make_int(i);
      } else if (c >= '0' && c <= '9') {
        std::string_view s;
        if (!read_string(s))
          return err_;
        v = value::make_string(std::string(s));
      } else {
        return fail(errc::bencode_syntax, "unexpected " + describe_byte(c) + at(begin));
      }
      v.set_span(begin, pos_);
      attach(stack, std::move(v), done, have_done);
    }
    consumed = pos_;
    return done;
  }

private:
  static std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 64)) {
      auto u = static_cast<unsigned char>(c);
      out += (u >= 0x20 && u < 0x7f && c != '"') ? std::string(1, c) : describe_byte(c);
    }
    if (s.size() > 64)
      out += "...";
    return out;
  }

  error fail(errc code, std::string msg) {
    err_ = error{code, std::move(msg)};
    return err_;
  }

  // Running out of the (possibly limit-truncated) input.
  error truncated() {
    if (full_size_ > in_.size())
      return fail(errc::bencode_limit, "input longer than limit of " +
                                           std::to_string(lim_.max_total) + " bytes" +
                                           at(in_.size()));
    return fail(errc::bencode_syntax, "unexpected end of input" + at(in_.size()));
  }

  void attach(std::vector<frame> &stack, value v, value &done, bool &have_done) {
    if (stack.empty()) {
      done = std::move(v);
      have_done = true;
      return;
    }
    frame &f = stack.back();
    if (f.v.is_list()) {
      f.v.as_list().push_back(std::move(v));
    } else {
      f.v.as_dict().emplace_back(std::string(f.key), std::move(v));
      f.has_key = false;
    }
  }

  // Called after the closing 'e' of the innermost container was consumed.
  void close(std::vector<frame> &stack, value &done, bool &have_done) {
    value v = std::move(stack.back().v);
    v.set_span(stack.back().begin, pos_);
    stack.pop_back();
    attach(stack, std::move(v), done, have_done);
  }

  bool read_int(std::int64_t &out) {
    std::size_t begin = pos_;
    ++pos_; // 'i'
    bool negative = false;
    if (pos_ < in_.size() && in_[pos_] == '-') {
      negative = true;
      ++pos_;
    }
    std::size_t digits_begin = pos_;
    // Magnitude limit: 2^63 - 1, or 2^63 for negative numbers (INT64_MIN).
    const std::uint64_t max_mag =
        std::uint64_t(std::numeric_limits<std::int64_t>::max()) + (negative ? 1 : 0);
    std::uint64_t mag = 0;
    while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') {
      unsigned d = static_cast<unsigned>(in_[pos_] - '0');
      if (mag > (max_mag - d) / 10) {
        fail(errc::bencode_limit, "integer overflows int64" + at(begin));
        return false;
      }
      mag = mag * 10 + d;
      ++pos_;
    }
    if (pos_ >= in_.size()) {
      truncated();
      return false;
    }
    if (in_[pos_] != 'e') {
      fail(errc::bencode_syntax,
           "unexpected " + describe_byte(in_[pos_]) + " in integer" + at(pos_));
      return false;
    }
    std::size_t ndigits = pos_ - digits_begin;
    if (ndigits == 0) {
      fail(errc::bencode_syntax,
           std::string(negative ? "integer has no digits" : "empty integer") + at(begin));
      return false;
    }
    if (!allow_nc_) {
      if (in_[digits_begin] == '0' && ndigits > 1) {
        fail(errc::bencode_noncanonical, "integer with leading zero" + at(digits_begin));
        return false;
      }
      if (negative && mag == 0) {
        fail(errc::bencode_noncanonical, "negative zero" + at(begin));
        return false;
      }
    }
    ++pos_; // 'e'
    out = negative ? static_cast<std::int64_t>(0 - mag) : static_cast<std::int64_t>(mag);
    return true;
  }

  // Reads "<len>:<bytes>" and returns a view into the input; nothing is allocated here, and the
  // length is checked against max_string and the remaining input before anyone copies it.
  bool read_string(std::string_view &out) {
    std::size_t begin = pos_;
    std::size_t len = 0;
    while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') {
      auto d = static_cast<std::size_t>(in_[pos_] - '0');
      if (len > (std::numeric_limits<std::size_t>::max() - d) / 10) {
        fail(errc::bencode_limit, "string length overflows" + at(begin));
        return false;
      }
      len = len * 10 + d;
      if (len > lim_.max_string) {
        fail(errc::bencode_limit, "string length exceeds limit of " +
                                      std::to_string(lim_.max_string) + " bytes" + at(begin));
        return false;
      }
      ++pos_;
    }
    if (pos_ >= in_.size()) {
      truncated();
      return false;
    }
    if (in_[pos_] != ':') {
      fail(errc::bencode_syntax,
           "expected ':' after string length, found " + describe_byte(in_[pos_]) + at(pos_));
      return false;
    }
    if (!allow_nc_ && in_[begin] == '0' && pos_ - begin > 1) {
      fail(errc::bencode_noncanonical, "string length with leading zero" + at(begin));
      return false;
    }
    ++pos_; // ':'
    if (len > in_.size() - pos_) {
      if (full_size_ > in_.size()) {
        truncated();
        return false;
      }
      fail(errc::bencode_syntax,
           "string of length " + std::to_string(len) + " runs past end of input" + at(begin));
      return false;
    }
    out = in_.substr(pos_, len);
    pos_ += len;
    return true;
  }

  std::string_view in_;
  std::size_t full_size_;
  const limits &lim_;
  bool allow_nc_;
  std::size_t pos_ = 0;
  std::size_t items_ = 0;
  error err_;
};

} // namespace

result<value> decode_prefix(std::string_view input, std::size_t &consumed, const limits &lim,
                            bool allow_noncanonical) {
  consumed = 0;
  // Bytes past max_total are never looked at; running into that cut is a limit error.
  std::string_view view = input.substr(0, std::min(input.size(), lim.max_total));
  decoder d(view, input.size(), lim, allow_noncanonical);
  return d.run(consumed);
}

result<value> decode(std::string_view input, const limits &lim, bool allow_noncanonical) {
  if (input.size() > lim.max_total)
    return error{errc::bencode_limit, "input of " + std::to_string(input.size()) +
                                          " bytes exceeds limit of " +
                                          std::to_string(lim.max_total) + at(lim.max_total)};
  std::size_t consumed = 0;
  auto r = decode_prefix(input, consumed, lim, allow_noncanonical);
  if (!r)
    return r;
  if (consumed != input.size())
    return error{errc::bencode_syntax, "trailing data" + at(consumed)};
  return r;
}

// --- encoder ---------------------------------------------------------------------------------

namespace {

void encode_to(std::string &out, const value &v) {
  switch (v.type()) {
  case value::kind::integer:
    out += 'i';
    out += std::to_string(v.as_int());
    out += 'e';
    break;
  case value::kind::string:
    out += std::to_string(v.as_string().size());
    out += ':';
    out += v.as_string();
    break;
  case value::kind::list:
    out += 'l';
    for (const auto &item : v.as_list())
      encode_to(out, item);
    out += 'e';
    break;
  case value::kind::dict: {
    const dict &d = v.as_dict();
    std::vector<const dict::value_type *> entries;
    entries.reserve(d.size());
    for (const auto &entry : d)
      entries.push_back(&entry);
    // std::string compares through char_traits<char>, i.e. bytewise as unsigned char (BEP 3).
    std::stable_sort(entries.begin(), entries.end(),
                     [](const auto *a, const auto *b) { return a->first < b->first; });
    out += 'd';
    for (const auto *entry : entries) {
      out += std::to_string(entry->first.size());
      out += ':';
      out += entry->first;
      encode_to(out, entry->second);
    }
    out += 'e';
    break;
  }
  }
}

} // namespace

std::string encode(const value &v) {
  std::string out;
  encode_to(out, v);
  return out;
}

} // namespace actorrent::bencode
