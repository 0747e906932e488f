// One TCP connection to a peer, driven by asio on the I/O threads: connect or accept, the
// handshake, reads that are split into wire messages, and a bounded write queue.
// It holds no BitTorrent logic: everything one read produced goes to its owner (the peer
// actor) as one read_batch whose messages point into a ref-counted receive buffer, so block
// payloads are never copied after the socket read. No CAF and no asio in this header.
//
//   connecting --> handshaking --> (incoming: waiting for start()) --> streaming --> closed
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "protocol/wire.hpp"

namespace actorrent {

class io_runtime;
class rate_limiter;

/// A receive buffer; shared by every message parsed from it until the last user drops it.
struct recv_buffer {
  std::vector<char> bytes;
};

struct read_batch {
  std::shared_ptr<const recv_buffer> buffer; // keeps every payload below alive
  std::vector<wire::message> messages;
  std::uint64_t wire_bytes = 0;              // bytes read from the socket for this batch
};

struct connection_events {
  std::function<void(const wire::handshake&)> on_handshake;
  std::function<void(read_batch&&)> on_batch;
  /// Called once, last. `protocol_error` is set when the peer broke the protocol (a bad
  /// handshake, a malformed or oversized message, no handshake in time, a write queue it never
  /// drains) rather than merely going away.
  std::function<void(const std::string& reason, bool protocol_error)> on_closed;
};

struct connection_limits {
  std::uint32_t max_message_length = (1u << 20) + 13;
  std::size_t buffer_size = 256 * 1024;   // bytes per receive buffer once a peer sends fast
  std::size_t first_buffer_size = 32 * 1024; // an idle or slow connection keeps only this much
  std::size_t max_buffers = 16;           // receive buffers alive at once (backpressure; also
                                          // bounded by the session's receive budget)
  std::size_t max_write_queue = 8u << 20; // bytes queued for sending before the peer is dropped
  std::uint32_t handshake_timeout_ms = 10000;
  std::uint32_t max_handshaking = 128; // incoming connections waiting for their handshake
};

/// What a peer actor needs of its connection: a real peer_connection, or a recording stand-in
/// in the peer actor's deterministic tests. Every call is thread-safe.
class connection {
public:
  virtual ~connection() = default;
  /// Queues bytes for sending.
  virtual void send(std::string bytes) = 0;
  /// Closes the socket; on_closed follows (if not already reported).
  virtual void close(const std::string& reason) = 0;
  /// Bytes queued and not yet written (backpressure for uploads).
  virtual std::size_t queued_bytes() const noexcept = 0;
  /// For connections accepted by a listener: begins streaming with these events after sending
  /// our handshake.
  virtual void start(const wire::handshake& ours, connection_events events) = 0;
  /// Puts the connection under its torrent's rate limits too (beside the session's); either
  /// may be null. Call before start() for an accepted connection.
  virtual void set_torrent_limiters(std::shared_ptr<rate_limiter> /*down*/,
                                    std::shared_ptr<rate_limiter> /*up*/) {}
  /// The session's send-buffer budget is used up: start no new upload reads until it drains.
  virtual bool send_budget_full() const noexcept { return false; }
};

class peer_connection : public connection,
                        public std::enable_shared_from_this<peer_connection> {
public:
  struct impl;

  /// Connects to host:port, sends `ours`, reads the peer's handshake (reported through
  /// events.on_handshake), then streams messages.
  static std::shared_ptr<peer_connection> connect(io_runtime& rt, const std::string& host,
                                                  std::uint16_t port, const wire::handshake& ours,
                                                  connection_events events,
                                                  connection_limits limits = {});

  ~peer_connection() override;

  void send(std::string bytes) override;
  void close(const std::string& reason) override;
  std::size_t queued_bytes() const noexcept override {
    return queued_.load(std::memory_order_relaxed);
  }
  void start(const wire::handshake& ours, connection_events events) override;
  void set_torrent_limiters(std::shared_ptr<rate_limiter> down,
                            std::shared_ptr<rate_limiter> up) override;
  bool send_budget_full() const noexcept override;

  std::string remote_endpoint() const;

  explicit peer_connection(std::unique_ptr<impl> p);

private:
  friend class peer_listener;
  std::unique_ptr<impl> impl_;
  std::atomic<std::size_t> queued_{0};
};

/// Accepts incoming connections on host:port and reads their handshakes. After open() every
/// use of the socket runs on one strand of the I/O threads; close() never waits for them.
class peer_listener {
public:
  using on_accept = std::function<void(std::shared_ptr<peer_connection>, const wire::handshake&)>;
  /// An incoming connection that failed before its handshake was read (timeout, garbage).
  using on_failure = std::function<void(const std::string& remote, const std::string& reason,
                                        bool protocol_error)>;

  /// Binds and listens; port 0 picks a free one. Accepts nothing until start(), so the owner
  /// can exist before the first connection reaches it. Returns nullptr and sets `error_text`
  /// (naming host and port) on failure.
  static std::shared_ptr<peer_listener> open(io_runtime& rt, const std::string& host,
                                             std::uint16_t port, std::string& error_text,
                                             connection_limits limits = {});
  /// Closes the socket.
  ~peer_listener();
  /// Begins accepting; the handlers run on an I/O thread. Only the first call counts.
  void start(on_accept handler, on_failure failed);
  std::uint16_t port() const noexcept;
  /// Stops accepting and closes the socket soon after, on the I/O thread; returns at once.
  void close();

  struct impl;
  explicit peer_listener(std::shared_ptr<impl> p);

private:
  std::shared_ptr<impl> impl_;
};

/// The asio io_context and the threads that run it.
class io_runtime {
public:
  explicit io_runtime(unsigned threads = 1);
  ~io_runtime(); // stops and joins
  io_runtime(const io_runtime&) = delete;
  io_runtime& operator=(const io_runtime&) = delete;

  void stop();
  void* native() noexcept; // asio::io_context*

  /// Receive buffers of all connections together: beyond each connection's first buffer, no
  /// more than this many bytes (default 256 MiB).
  void set_receive_budget(std::size_t bytes);
  std::size_t receive_buffer_bytes() const;

  // -- session-wide limits over every connection of this runtime (one runtime per session) --
  /// Download / upload rates in bytes per second (0: none), token buckets shared by all
  /// connections: reads and writes wait on a timer when a bucket is empty.
  void set_rate_limits(std::uint64_t download, std::uint64_t upload);
  /// Connections (incoming and outgoing, handshaking included) at most; 0: no limit. Dials
  /// over it fail at once, accepts over it are closed.
  void set_max_connections(std::uint32_t n);
  std::uint32_t connection_count() const;
  /// The connection limit is reached: a dial now would fail.
  bool connections_full() const;
  /// Bytes queued for sending by all connections together before uploads pause (256 MiB).
  void set_send_budget(std::size_t bytes);
  std::size_t send_buffer_bytes() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace actorrent
