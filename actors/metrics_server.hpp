// Serves the latest metrics snapshot as Prometheus text over HTTP on 127.0.0.1 (GET /metrics).
// Runs on the I/O threads; publish() swaps in a new immutable snapshot, so a scrape never waits
// for the actors and the actors never wait for a scrape.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace actorrent {

class io_runtime;

class metrics_server {
public:
  /// Binds host:port (0: any free port). Returns nullptr and sets `error_text` on failure.
  static std::shared_ptr<metrics_server> open(io_runtime& rt, const std::string& host,
                                              std::uint16_t port, std::string& error_text);
  ~metrics_server();
  void publish(std::string text);
  std::uint16_t port() const noexcept;
  void close();

  struct impl;
  explicit metrics_server(std::shared_ptr<impl> p);

private:
  std::shared_ptr<impl> impl_;
};

} // namespace actorrent
