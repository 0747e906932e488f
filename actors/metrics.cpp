#include "actors/metrics.hpp"

#include <cmath>
#include <cstdio>

namespace actorrent {

void metrics_registry::set(const std::string& name, kind k, double value,
                           const std::string& help) {
  auto& e = entries_[name];
  e.k = k;
  e.value = value;
  e.help = help;
}

double metrics_registry::get(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? 0 : it->second.value;
}

std::string metrics_registry::to_prometheus() const {
  std::string out;
  char number[64];
  for (const auto& [name, e] : entries_) {
    auto full = "actorrent_" + name;
    out += "# HELP " + full + " " + e.help + "\n";
    out += "# TYPE " + full + (e.k == kind::counter ? " counter\n" : " gauge\n");
    if (std::floor(e.value) == e.value && std::fabs(e.value) < 1e15)
      std::snprintf(number, sizeof number, "%.0f", e.value);
    else
      std::snprintf(number, sizeof number, "%.6g", e.value);
    out += full + " " + number + "\n";
  }
  return out;
}

} // namespace actorrent
