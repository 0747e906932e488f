#include "storage/file_selection.hpp"

#include <algorithm>
#include <cassert>
#include <optional>

namespace actorrent {

namespace {

error bad(std::string msg) {
  return error{errc::invalid_argument, std::move(msg)};
}

// Quoted for messages; the text comes from a command line, so it is shown as typed.
std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// A file number of `item` (1-based), or an error naming it and its column.
// `count` nullopt: no torrent yet (a syntax check); only numbers beyond 32 bits are refused.
result<std::uint32_t> parse_index(std::string_view item, std::size_t column,
                                  std::optional<std::uint32_t> count) {
  const auto where = " at column " + std::to_string(column);
  if (item.empty())
    return bad("missing file number" + where);
  if (item.size() > 10 || !std::all_of(item.begin(), item.end(), is_digit))
    return bad(quoted(item) + where + " is not a file number");
  std::uint64_t v = 0;
  for (char c : item)
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  if (v == 0)
    return bad("file number 0" + where + ": files are numbered from 1");
  if (!count && v > UINT32_MAX)
    return bad("file number " + std::to_string(v) + where + " is too large");
  if (count && v > *count)
    return bad("file number " + std::to_string(v) + where + " is out of range (the torrent has " +
               std::to_string(*count) + (*count == 1 ? " file)" : " files)"));
  return static_cast<std::uint32_t>(v);
}

// One character of `p` at `i` against `c` ('?', a class, an escape or a literal); `len` gets
// how many pattern characters it took. Never '*'.
bool match_one(std::string_view p, std::size_t i, char c, std::size_t& len) {
  if (p[i] == '?') {
    len = 1;
    return c != '/';
  }
  if (p[i] == '\\' && i + 1 < p.size()) {
    len = 2;
    return p[i + 1] == c;
  }
  if (p[i] == '[') {
    std::size_t k = i + 1;
    bool negate = k < p.size() && (p[k] == '!' || p[k] == '^');
    if (negate)
      ++k;
    bool found = false;
    bool first = true;
    for (; k < p.size() && (first || p[k] != ']'); first = false) {
      char lo = p[k];
      if (lo == '\\' && k + 1 < p.size())
        lo = p[++k];
      char hi = lo;
      if (k + 2 < p.size() && p[k + 1] == '-' && p[k + 2] != ']') {
        hi = p[k + 2];
        if (hi == '\\' && k + 3 < p.size()) {
          hi = p[k + 3];
          ++k;
        }
        k += 2;
      }
      ++k;
      auto uc = static_cast<unsigned char>(c);
      if (uc >= static_cast<unsigned char>(lo) && uc <= static_cast<unsigned char>(hi))
        found = true;
    }
    assert(k < p.size()); // check_glob: every '[' is closed
    len = k + 1 - i;
    return found != negate && c != '/';
  }
  len = 1;
  return p[i] == c;
}

// One path component against one pattern component ('*' within the component only).
bool match_component(std::string_view p, std::string_view s) {
  std::size_t pi = 0, si = 0;
  std::size_t star_p = std::string_view::npos, star_s = 0;
  while (si < s.size()) {
    if (pi < p.size()) {
      if (p[pi] == '*') {
        star_p = ++pi;
        star_s = si;
        continue;
      }
      std::size_t len = 1;
      if (match_one(p, pi, s[si], len)) {
        pi += len;
        ++si;
        continue;
      }
    }
    if (star_p == std::string_view::npos)
      return false;
    // Backtrack: the last '*' takes one more character.
    pi = star_p;
    si = ++star_s;
  }
  while (pi < p.size() && p[pi] == '*')
    ++pi;
  return pi == p.size();
}

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    auto slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

/// `memo` holds (pat.size()+1) x (path.size()+1) entries: 0 unknown, 1 no, 2 yes. Without it
/// "**/**/.../z" against a deep path takes exponential time (each "**" tries every split).
bool match_parts(const std::vector<std::string_view>& pat, std::size_t i,
                 const std::vector<std::string_view>& path, std::size_t j,
                 std::vector<std::uint8_t>& memo) {
  auto& m = memo[i * (path.size() + 1) + j];
  if (m != 0)
    return m == 2;
  bool r = false;
  if (i == pat.size()) {
    r = j == path.size();
  } else if (pat[i] == "**") {
    for (std::size_t k = j; k <= path.size() && !r; ++k)
      r = match_parts(pat, i + 1, path, k, memo);
  } else {
    r = j < path.size() && match_component(pat[i], path[j]) &&
        match_parts(pat, i + 1, path, j + 1, memo);
  }
  m = r ? 2 : 1;
  return r;
}

} // namespace

namespace {

// Parses `list`; without `count` only checks it (a range is not expanded, so "1-4294967295"
// costs nothing: a job file is validated before the torrent's file count is known).
result<std::vector<std::uint32_t>> file_list(std::string_view list,
                                             std::optional<std::uint32_t> count) {
  const bool expand = count.has_value();
  if (list.empty())
    return bad("empty list");
  std::vector<std::uint32_t> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    auto comma = list.find(',', start);
    if (comma == std::string_view::npos)
      comma = list.size();
    const auto item = list.substr(start, comma - start);
    const auto column = start + 1;
    if (item.empty())
      return bad("empty item at column " + std::to_string(column));
    const auto dash = item.find('-');
    if (dash == std::string_view::npos) {
      auto v = parse_index(item, column, count);
      if (!v)
        return v.error();
      out.push_back(*v - 1);
    } else {
      auto lo = parse_index(item.substr(0, dash), column, count);
      if (!lo)
        return lo.error();
      auto hi = parse_index(item.substr(dash + 1), column + dash + 1, count);
      if (!hi)
        return hi.error();
      if (*lo > *hi)
        return bad("range " + std::string(item) + " at column " + std::to_string(column) +
                   " is reversed (write " + std::to_string(*hi) + "-" + std::to_string(*lo) +
                   ")");
      // 64-bit: with hi == UINT32_MAX a 32-bit counter would wrap and never end.
      if (expand)
        for (std::uint64_t v = *lo; v <= *hi; ++v)
          out.push_back(static_cast<std::uint32_t>(v - 1));
    }
    start = comma + 1;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

} // namespace

result<std::vector<std::uint32_t>> parse_file_list(std::string_view list, std::uint32_t count) {
  return file_list(list, count);
}

status check_file_list(std::string_view list) {
  auto r = file_list(list, std::nullopt);
  if (!r)
    return r.error();
  return {};
}

status check_glob(std::string_view pattern) {
  if (pattern.empty())
    return bad("empty pattern");
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\') {
      if (i + 1 == pattern.size())
        return bad("'\\' at the end of the pattern escapes nothing");
      ++i;
    } else if (pattern[i] == '[') {
      std::size_t k = i + 1;
      if (k < pattern.size() && (pattern[k] == '!' || pattern[k] == '^'))
        ++k;
      if (k < pattern.size() && pattern[k] == ']')
        ++k; // a ']' first in a class is a member
      while (k < pattern.size() && pattern[k] != ']') {
        if (pattern[k] == '\\')
          ++k;
        if (k < pattern.size() && pattern[k] == '/')
          return bad("'/' at column " + std::to_string(k + 1) +
                     " is inside [...], where it can never match (paths are split at '/')");
        ++k;
      }
      if (k >= pattern.size())
        return bad("'[' at column " + std::to_string(i + 1) + " is never closed");
      i = k;
    }
  }
  return {};
}

bool glob_match(std::string_view pattern, std::string_view path) {
  // An escaped '/' is still the separator: drop its backslash (other escapes stay).
  std::string unescaped;
  if (pattern.find("\\/") != std::string_view::npos) {
    for (std::size_t i = 0; i < pattern.size(); ++i) {
      if (pattern[i] == '\\' && i + 1 < pattern.size()) {
        if (pattern[i + 1] != '/')
          unescaped += '\\';
        unescaped += pattern[++i];
      } else {
        unescaped += pattern[i];
      }
    }
    pattern = unescaped;
  }
  if (pattern.find('/') == std::string_view::npos) {
    auto slash = path.rfind('/');
    return match_component(pattern,
                           slash == std::string_view::npos ? path : path.substr(slash + 1));
  }
  if (pattern.front() == '/')
    pattern.remove_prefix(1); // anchored at the torrent's top, which it is anyway
  auto pat = split(pattern);
  // "**/**" matches what "**" matches: collapse runs (fewer states to memoize).
  pat.erase(std::unique(pat.begin(), pat.end(),
                        [](std::string_view a, std::string_view b) {
                          return a == "**" && b == "**";
                        }),
            pat.end());
  auto parts = split(path);
  std::vector<std::uint8_t> memo((pat.size() + 1) * (parts.size() + 1), 0);
  return match_parts(pat, 0, parts, 0, memo);
}

std::string path_in_torrent(const file_layout& layout, file_index f) {
  const auto& path = layout.files()[f.value].path;
  // Multi-file paths are "<name>/<components>" (the name never holds a '/'); a single file's
  // path is its name.
  auto slash = path.find('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

result<std::vector<file_priority>> select_files(const file_layout& layout,
                                                const std::vector<std::string>& lists,
                                                const std::vector<std::string>& globs) {
  const auto& files = layout.files();
  if (lists.empty() && globs.empty())
    return std::vector<file_priority>(files.size(), file_priority::normal);
  std::vector<std::uint32_t> listed; // listed number - 1 -> file index
  for (std::uint32_t i = 0; i < files.size(); ++i)
    if (!files[i].pad)
      listed.push_back(i);
  std::vector<file_priority> out(files.size(), file_priority::skip);
  for (const auto& list : lists) {
    auto indices = parse_file_list(list, static_cast<std::uint32_t>(listed.size()));
    if (!indices)
      return bad("--select-file " + quoted(list) + ": " + indices.error().message);
    for (auto k : *indices)
      out[listed[k]] = file_priority::normal;
  }
  for (const auto& glob : globs) {
    if (auto ok = check_glob(glob); !ok)
      return bad("--select " + quoted(glob) + ": " + ok.error().message);
    bool any = false;
    for (auto i : listed) {
      if (glob_match(glob, path_in_torrent(layout, file_index{i}))) {
        out[i] = file_priority::normal;
        any = true;
      }
    }
    if (!any)
      return bad("--select " + quoted(glob) + " matches no file of the torrent (see `actorrent "
                 "info`)");
  }
  return out;
}

result<std::vector<file_priority>> piece_priorities(const metainfo& m,
                                                    const std::vector<file_priority>& files) {
  if (files.size() != m.files.size())
    return bad(std::to_string(files.size()) + " file priorities for a torrent of " +
               std::to_string(m.files.size()) + " files");
  const std::uint32_t n = m.piece_count();
  std::vector<file_priority> out(n, file_priority::skip);
  if (m.piece_length == 0)
    return out;
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < m.files.size(); ++i) {
    const auto& f = m.files[i];
    const auto begin = offset;
    offset += f.length;
    if (f.pad || f.length == 0 || files[i] == file_priority::skip)
      continue;
    const auto first = begin / m.piece_length;
    const auto last = std::min<std::uint64_t>((offset - 1) / m.piece_length, n - 1);
    for (auto p = first; p <= last && p < n; ++p)
      out[p] = std::max(out[p], files[i]);
  }
  return out;
}

} // namespace actorrent
