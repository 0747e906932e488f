// Invariant checks for the fuzz targets: a broken invariant prints what and where, then aborts,
// which libFuzzer reports as a crash and saves the input (crash-<sha1> in the artifact dir).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond, ...)                                                                     \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);          \
      ::actorrent_fuzz::explain(__VA_ARGS__);                                                     \
      std::abort();                                                                               \
    }                                                                                             \
  } while (0)

namespace actorrent_fuzz {

inline void explain() {}
inline void explain(std::string_view what) {
  std::fprintf(stderr, "  %.*s\n", static_cast<int>(what.size()), what.data());
}

/// The byte offset named by an error message ("... at byte N" or "(byte N)"), or -1.
inline long long byte_offset(std::string_view msg) {
  for (std::string_view marker : {std::string_view("at byte "), std::string_view("(byte ")}) {
    auto pos = msg.rfind(marker);
    if (pos == std::string_view::npos)
      continue;
    pos += marker.size();
    long long v = 0;
    bool any = false;
    while (pos < msg.size() && msg[pos] >= '0' && msg[pos] <= '9') {
      v = v * 10 + (msg[pos++] - '0');
      any = true;
    }
    if (any)
      return v;
  }
  return -1;
}

} // namespace actorrent_fuzz
