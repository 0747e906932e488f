// A registry of named counters and gauges, rendered as Prometheus text. Each actor keeps its
// hot-path counters as plain fields and publishes them here in batches (the torrent once per
// second); the registry itself is a value owned by whoever renders it. CAF-free.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace actorrent {

class metrics_registry {
public:
  enum class kind : std::uint8_t { counter, gauge };

  /// Sets a metric (counters are cumulative totals published by their owner).
  void set(const std::string& name, kind k, double value, const std::string& help);
  void counter(const std::string& name, double value, const std::string& help) {
    set(name, kind::counter, value, help);
  }
  void gauge(const std::string& name, double value, const std::string& help) {
    set(name, kind::gauge, value, help);
  }
  double get(const std::string& name) const; // 0 when absent

  /// Prometheus text exposition format 0.0.4; names get the "actorrent_" prefix.
  std::string to_prometheus() const;

private:
  struct entry {
    kind k = kind::counter;
    double value = 0;
    std::string help;
  };
  std::map<std::string, entry> entries_;
};

} // namespace actorrent
