#include "protocol/units.hpp"

#include <cctype>
#include <cstdio>
#include <limits>

namespace actorrent {

std::optional<std::uint64_t> parse_rate(const std::string& text, std::string& why) {
  std::size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])))
    ++i;
  std::size_t digits = i;
  std::uint64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (v > (std::numeric_limits<std::uint64_t>::max() - 9) / 10) {
      why = "too large";
      return std::nullopt;
    }
    v = v * 10 + static_cast<unsigned>(text[i] - '0');
    ++i;
  }
  if (i == digits) {
    why = "expected a number of bytes per second like 500000, 500K, 10M or 1G (0: no limit)";
    return std::nullopt;
  }
  std::string suffix;
  for (; i < text.size(); ++i)
    if (!std::isspace(static_cast<unsigned char>(text[i])))
      suffix += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  if (suffix.size() >= 2 && suffix.compare(suffix.size() - 2, 2, "/s") == 0)
    suffix.resize(suffix.size() - 2);
  int shift = 0;
  if (suffix.empty() || suffix == "b")
    shift = 0;
  else if (suffix == "k" || suffix == "kb" || suffix == "kib")
    shift = 10;
  else if (suffix == "m" || suffix == "mb" || suffix == "mib")
    shift = 20;
  else if (suffix == "g" || suffix == "gb" || suffix == "gib")
    shift = 30;
  else {
    why = "unknown unit '" + suffix + "' (use K, M or G: 10M = 10 MiB/s)";
    return std::nullopt;
  }
  if (shift > 0 && v > (std::numeric_limits<std::uint64_t>::max() >> shift)) {
    why = "too large";
    return std::nullopt;
  }
  return v << shift;
}

std::string human_size(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

} // namespace actorrent
