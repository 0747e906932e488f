#include "actors/peer_connection.hpp"

#include <asio.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "actors/rate_limiter.hpp"

namespace actorrent {

// -- receive budget --------------------------------------------------------------------------

/// Bytes of receive buffers held by every connection of one io_context (one per session): a
/// connection always gets its first buffer, further ones only while the total is under the
/// limit, so `--max-peers 10000` costs at most the first buffers plus the budget.
struct receive_budget : asio::execution_context::service {
  using key_type = receive_budget;
  static inline asio::execution_context::id id;
  explicit receive_budget(asio::execution_context& ctx) : service(ctx) {}
  void shutdown() override {}

  std::atomic<std::size_t> used{0};
  std::atomic<std::size_t> limit{std::size_t{256} << 20};
};

// -- session limits --------------------------------------------------------------------------

/// The limits of one session over all its connections (one io_context per session): transfer
/// rates, the number of connections and the bytes queued for sending.
struct session_limits : asio::execution_context::service {
  using key_type = session_limits;
  static inline asio::execution_context::id id;
  explicit session_limits(asio::execution_context& ctx) : service(ctx) {}
  void shutdown() override {}

  rate_limiter down;
  rate_limiter up;
  std::atomic<std::uint32_t> connections{0};     // peer_connection objects alive
  std::atomic<std::uint32_t> max_connections{0}; // 0: no limit
  std::atomic<std::size_t> send_used{0};
  std::atomic<std::size_t> send_limit{std::size_t{256} << 20};

  /// Takes a connection slot unless the limit is reached (a compare-and-swap: dials started
  /// together cannot all see room and then all fail, or all pass).
  bool try_admit() {
    auto c = connections.load();
    for (;;) {
      auto max = max_connections.load();
      if (max != 0 && c >= max)
        return false;
      if (connections.compare_exchange_weak(c, c + 1))
        return true;
    }
  }
};

// -- io_runtime ------------------------------------------------------------------------------

struct io_runtime::impl {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::vector<std::thread> threads;
};

void io_runtime::set_receive_budget(std::size_t bytes) {
  asio::use_service<receive_budget>(impl_->io).limit.store(bytes, std::memory_order_relaxed);
}

std::size_t io_runtime::receive_buffer_bytes() const {
  return asio::use_service<receive_budget>(impl_->io).used.load(std::memory_order_relaxed);
}

void io_runtime::set_rate_limits(std::uint64_t download, std::uint64_t upload) {
  auto& l = asio::use_service<session_limits>(impl_->io);
  l.down.set_rate(download);
  l.up.set_rate(upload);
}

void io_runtime::set_max_connections(std::uint32_t n) {
  asio::use_service<session_limits>(impl_->io).max_connections.store(n);
}

std::uint32_t io_runtime::connection_count() const {
  return asio::use_service<session_limits>(impl_->io).connections.load();
}

bool io_runtime::connections_full() const {
  auto& l = asio::use_service<session_limits>(impl_->io);
  auto max = l.max_connections.load();
  return max != 0 && l.connections.load() >= max;
}

void io_runtime::set_send_budget(std::size_t bytes) {
  asio::use_service<session_limits>(impl_->io).send_limit.store(bytes);
}

std::size_t io_runtime::send_buffer_bytes() const {
  return asio::use_service<session_limits>(impl_->io).send_used.load();
}

io_runtime::io_runtime(unsigned threads) : impl_(std::make_unique<impl>()) {
  for (unsigned i = 0; i < std::max(1u, threads); ++i)
    impl_->threads.emplace_back([this] { impl_->io.run(); });
}

io_runtime::~io_runtime() { stop(); }

void io_runtime::stop() {
  if (impl_->threads.empty())
    return;
  impl_->work.reset();
  impl_->io.stop();
  for (auto& t : impl_->threads)
    t.join();
  impl_->threads.clear();
}

void* io_runtime::native() noexcept { return &impl_->io; }

static asio::io_context& io_of(io_runtime& rt) { return *static_cast<asio::io_context*>(rt.native()); }

// -- peer_connection -------------------------------------------------------------------------

struct peer_connection::impl {
  using strand_t = asio::strand<asio::io_context::executor_type>;

  impl(asio::io_context& io, connection_limits lim)
    : strand(asio::make_strand(io)), socket(strand), timer(strand), read_wait(strand),
      write_wait(strand), limits(lim), parser(lim.max_message_length),
      budget(asio::use_service<receive_budget>(io)),
      session(asio::use_service<session_limits>(io)) {}

  ~impl() {
    budget.used.fetch_sub(buffer_bytes, std::memory_order_relaxed);
    if (admitted)
      session.connections.fetch_sub(1);
  }

  strand_t strand;
  asio::ip::tcp::socket socket;
  asio::steady_timer timer;
  asio::steady_timer read_wait;  // reading paused by a rate limit
  asio::steady_timer write_wait; // writing paused by a rate limit
  bool read_throttled = false;
  bool write_throttled = false;
  connection_limits limits;
  wire::stream_parser parser;
  connection_events events;
  peer_connection* owner = nullptr;
  std::string remote;

  std::array<char, wire::handshake_size> hs_in{};
  bool connected = false; // TCP is up (always for accepted sockets)
  bool handshake_done = false;
  bool closed = false;

  // Reading: `cur` is filled at [filled, size); bytes [parsed, filled) are a partial frame.
  std::shared_ptr<recv_buffer> cur;
  std::size_t parsed = 0;
  std::size_t filled = 0;
  std::vector<std::shared_ptr<recv_buffer>> pool;
  receive_budget& budget;
  session_limits& session;
  bool admitted = false; // holds one of the session's connection slots
  std::shared_ptr<rate_limiter> torrent_down; // the torrent's own limits (may be null)
  std::shared_ptr<rate_limiter> torrent_up;
  std::size_t buffer_bytes = 0; // what `pool` holds, counted in `budget`
  // Set while reading waits for a buffer that storage still holds: the next release wakes it.
  std::atomic<bool> starved{false};
  std::atomic<std::uint64_t> releases{0}; // buffers let go of by batches, ever
  std::uint64_t unreported_bytes = 0;
  // New buffers start small and grow to limits.buffer_size once a read fills one: hundreds of
  // idle connections then cost little, and a fast peer still gets large reads.
  std::size_t next_size = 0;

  // Writing.
  std::string pending;
  std::string writing;
  bool write_in_flight = false;

  using self_ptr = std::shared_ptr<peer_connection>;

  void fail(const std::string& reason, bool protocol_error = false) {
    if (closed)
      return;
    closed = true;
    asio::error_code ignored;
    socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    timer.cancel();
    read_wait.cancel();
    write_wait.cancel();
    auto on_closed = std::move(events.on_closed);
    events = connection_events{};
    if (on_closed)
      on_closed(reason, protocol_error);
  }

  /// A buffer for the next read: a pooled one nobody else holds, or a new one while the pool
  /// and the session's budget allow. nullptr: wait until a batch releases one.
  std::shared_ptr<recv_buffer> acquire_buffer(std::size_t min_size) {
    for (auto& b : pool) {
      if (b.use_count() == 1 && b->bytes.size() >= min_size) {
        // Every other user has let go; make their reads happen-before our writes.
        std::atomic_thread_fence(std::memory_order_acquire);
        return b;
      }
    }
    std::size_t size = std::max(min_size, next_size);
    // Over the budget a connection still gets a buffer when none of its own is held
    // downstream: no release would come to wake it.
    auto fits = [&](std::size_t extra) {
      return budget.used.load(std::memory_order_relaxed) + extra <=
               budget.limit.load(std::memory_order_relaxed) ||
             std::all_of(pool.begin(), pool.end(), [this](auto& b) {
               return b.use_count() == 1 || (b == cur && b.use_count() == 2);
             });
    };
    if (pool.size() >= limits.max_buffers) {
      // Replace an idle buffer that is too small, so a large frame can still get one.
      for (auto& b : pool) {
        if (b.use_count() == 1) {
          auto old = b->bytes.size();
          if (size > old && !fits(size - old))
            return nullptr;
          b = std::make_shared<recv_buffer>();
          b->bytes.resize(size);
          account(static_cast<std::ptrdiff_t>(size) - static_cast<std::ptrdiff_t>(old));
          return b;
        }
      }
      return nullptr;
    }
    if (!fits(size))
      return nullptr;
    auto b = std::make_shared<recv_buffer>();
    b->bytes.resize(size);
    account(static_cast<std::ptrdiff_t>(size));
    pool.push_back(b);
    return b;
  }

  void account(std::ptrdiff_t delta) {
    if (delta >= 0)
      budget.used.fetch_add(static_cast<std::size_t>(delta), std::memory_order_relaxed);
    else
      budget.used.fetch_sub(static_cast<std::size_t>(-delta), std::memory_order_relaxed);
    buffer_bytes = static_cast<std::size_t>(static_cast<std::ptrdiff_t>(buffer_bytes) + delta);
  }

  /// Every buffer is still held downstream (storage is behind): reading resumes when a batch
  /// lets go of its buffer (see lease), not on a timer. `seen` is `releases` as read before the
  /// search for a buffer; a release since then means the search may succeed now.
  void wait_for_buffer(self_ptr self, std::uint64_t seen) {
    starved.store(true);
    if (releases.load() != seen && starved.exchange(false))
      asio::post(strand, [this, self] {
        if (!closed)
          do_read(self);
      });
  }

  /// Called (on any thread) when a batch lets go of a buffer.
  void buffer_released(self_ptr self) {
    releases.fetch_add(1);
    if (!starved.load() || !starved.exchange(false))
      return;
    asio::post(strand, [this, self] {
      if (!closed)
        do_read(self);
    });
  }

  /// What a read_batch holds: the buffer, and on release a wake-up for a starved reader.
  struct lease {
    std::shared_ptr<recv_buffer> buffer;
    std::weak_ptr<peer_connection> conn;
    ~lease();
  };

  std::shared_ptr<const recv_buffer> lend(const std::shared_ptr<recv_buffer>& b) {
    auto l = std::make_shared<lease>(lease{b, owner->weak_from_this()});
    auto* raw = l->buffer.get();
    return std::shared_ptr<const recv_buffer>(std::move(l), raw);
  }

  // -- rate limits: the session's bucket and the torrent's; the stricter one decides --------

  static std::chrono::nanoseconds wait_of(rate_limiter& a, rate_limiter* b,
                                          rate_limiter::clock::time_point now) {
    return std::max(a.wait_time(now), b ? b->wait_time(now) : std::chrono::nanoseconds(0));
  }

  /// How many bytes to move at once under the limits: what the buckets hold, at least one
  /// block (so a small bucket does not mean tiny system calls); SIZE_MAX when unlimited.
  static std::size_t chunk_of(rate_limiter& a, rate_limiter* b) {
    if (a.unlimited() && (!b || b->unlimited()))
      return SIZE_MAX;
    auto now = rate_limiter::clock::now();
    auto avail = std::min(a.available(now), b ? b->available(now) : a.available(now));
    return std::max<std::size_t>(block_size, avail > 0 ? static_cast<std::size_t>(avail) : 0);
  }

  static void take(rate_limiter& a, rate_limiter* b, std::size_t n) {
    auto now = rate_limiter::clock::now();
    a.consume(n, now);
    if (b)
      b->consume(n, now);
  }

  /// True when reading must wait for the download buckets; a timer resumes it (no polling).
  bool throttle_read(self_ptr self) {
    if (read_throttled)
      return true;
    auto w = wait_of(session.down, torrent_down.get(), rate_limiter::clock::now());
    if (w.count() == 0)
      return false;
    read_throttled = true;
    read_wait.expires_after(w);
    read_wait.async_wait([this, self](const asio::error_code& ec) {
      read_throttled = false;
      if (!ec && !closed)
        do_read(self);
    });
    return true;
  }

  void do_read(self_ptr self) {
    if (closed || throttle_read(self))
      return;
    // Frames never straddle two buffers: a frame that starts at least `reserve` bytes before
    // the end of a buffer fits in it, so greedy reads stop there, and the frame in progress is
    // then finished with reads of exactly its remaining bytes. The next buffer starts on a
    // frame boundary and no bytes are copied between buffers (only a frame longer than the
    // reserve, e.g. a large bitfield, is moved to a bigger buffer).
    const std::size_t reserve = block_size + 13 + 4;
    const std::uint64_t seen = releases.load();
    if (next_size == 0)
      next_size = std::min(std::max(limits.first_buffer_size, 2 * reserve), limits.buffer_size);
    std::size_t want;
    for (;;) {
      if (!cur) {
        cur = acquire_buffer(next_size);
        if (!cur)
          return wait_for_buffer(self, seen);
        parsed = filled = 0;
      }
      std::size_t cap = cur->bytes.size();
      std::size_t limit = cap > reserve ? cap - reserve : 0;
      std::size_t tail = filled - parsed;
      std::size_t read_end;
      if (tail == 0) {
        if (filled >= limit) {
          cur.reset(); // ends on a frame boundary: start the next frame in a fresh buffer
          continue;
        }
        read_end = limit;
      } else {
        std::size_t frame = wire::stream_parser::frame_size(
          std::string_view(cur->bytes.data() + parsed, tail));
        std::size_t frame_end = frame ? parsed + frame : filled + (4 - tail);
        if (frame_end > cap) {
          auto next = acquire_buffer(std::max(frame, next_size));
          if (!next || next == cur)
            return wait_for_buffer(self, seen);
          std::memcpy(next->bytes.data(), cur->bytes.data() + parsed, tail);
          cur = std::move(next);
          parsed = 0;
          filled = tail;
          continue;
        }
        read_end = std::max(limit, frame_end);
      }
      want = read_end - filled;
      break;
    }
    want = std::min(want, chunk_of(session.down, torrent_down.get()));
    socket.async_read_some(asio::buffer(cur->bytes.data() + filled, want),
                           [this, self](const asio::error_code& ec, std::size_t n) {
                             on_read(self, ec, n);
                           });
  }

  void on_read(self_ptr self, const asio::error_code& ec, std::size_t n) {
    if (closed)
      return;
    if (ec) {
      fail(ec == asio::error::eof ? "connection closed by peer" : "read: " + ec.message());
      return;
    }
    filled += n;
    unreported_bytes += n;
    take(session.down, torrent_down.get(), n);
    if (n >= next_size / 2)
      next_size = limits.buffer_size; // one read took half a buffer: the peer sends fast
    read_batch batch;
    auto consumed = parser.parse(std::string_view(cur->bytes.data() + parsed, filled - parsed),
                                 [&](const wire::message& m) {
                                   batch.messages.push_back(m);
                                   return true;
                                 });
    if (!consumed) {
      fail(consumed.error().message, true);
      return;
    }
    parsed += *consumed;
    if (!batch.messages.empty() && events.on_batch) {
      batch.buffer = lend(cur);
      batch.wire_bytes = unreported_bytes;
      unreported_bytes = 0;
      events.on_batch(std::move(batch));
    }
    do_read(self);
  }

  /// Counts bytes queued for sending, in the connection and in the session's send budget.
  void count_queued(std::size_t n) {
    owner->queued_.fetch_add(n, std::memory_order_relaxed);
    session.send_used.fetch_add(n, std::memory_order_relaxed);
  }

  void do_write(self_ptr self) {
    if (closed || write_in_flight || pending.empty() || write_throttled)
      return;
    if (auto w = wait_of(session.up, torrent_up.get(), rate_limiter::clock::now());
        w.count() > 0) {
      write_throttled = true;
      write_wait.expires_after(w);
      write_wait.async_wait([this, self](const asio::error_code& ec) {
        write_throttled = false;
        if (!ec && !closed)
          do_write(self);
      });
      return;
    }
    writing.clear();
    auto chunk = chunk_of(session.up, torrent_up.get());
    if (chunk < pending.size()) {
      // Under a rate limit: write what the bucket allows, keep the rest queued.
      writing.assign(pending, 0, chunk);
      pending.erase(0, chunk);
    } else {
      std::swap(writing, pending);
    }
    write_in_flight = true;
    asio::async_write(socket, asio::buffer(writing),
                      [this, self](const asio::error_code& ec, std::size_t n) {
                        owner->queued_.fetch_sub(n, std::memory_order_relaxed);
                        session.send_used.fetch_sub(n, std::memory_order_relaxed);
                        take(session.up, torrent_up.get(), n);
                        write_in_flight = false;
                        if (ec) {
                          fail("write: " + ec.message());
                          return;
                        }
                        do_write(self);
                      });
  }

  void arm_handshake_timeout(self_ptr self) {
    timer.expires_after(std::chrono::milliseconds(limits.handshake_timeout_ms));
    timer.async_wait([this, self](const asio::error_code& ec) {
      if (ec || handshake_done)
        return;
      if (!connected) // unreachable is not misbehaving
        fail("connect timed out after " + std::to_string(limits.handshake_timeout_ms) + " ms");
      else
        fail("no handshake within " + std::to_string(limits.handshake_timeout_ms) + " ms", true);
    });
  }

  template <class OnHandshake>
  void read_handshake(self_ptr self, OnHandshake on_hs) {
    asio::async_read(socket, asio::buffer(hs_in),
                     [this, self, on_hs](const asio::error_code& ec, std::size_t) {
                       if (closed)
                         return;
                       if (ec) {
                         fail(ec == asio::error::eof ? "closed during handshake"
                                                     : "handshake read: " + ec.message());
                         return;
                       }
                       auto hs = wire::parse_handshake(std::string_view(hs_in.data(), hs_in.size()));
                       if (!hs) {
                         // An encrypted (MSE) opening is routine: such clients retry in
                         // plaintext. Not a violation (logged at debug, never banned).
                         fail(hs.error().message, !wire::looks_encrypted(std::string_view(
                                                    hs_in.data(), hs_in.size())));
                         return;
                       }
                       handshake_done = true;
                       timer.cancel();
                       on_hs(*hs);
                     });
  }

  void queue(self_ptr self, std::string bytes) {
    if (closed)
      return;
    if (pending.size() + bytes.size() > limits.max_write_queue) {
      fail("write queue over " + std::to_string(limits.max_write_queue) + " bytes", true);
      return;
    }
    if (pending.empty())
      pending = std::move(bytes);
    else
      pending += bytes;
    do_write(self);
  }
};

peer_connection::impl::lease::~lease() {
  buffer.reset(); // before the wake-up: the reader looks for a buffer nobody else holds
  if (auto c = conn.lock())
    c->impl_->buffer_released(c);
}

peer_connection::peer_connection(std::unique_ptr<impl> p) : impl_(std::move(p)) {
  impl_->owner = this;
}

peer_connection::~peer_connection() {
  // What was queued and never written leaves the session's send budget with the connection.
  impl_->session.send_used.fetch_sub(queued_.load(), std::memory_order_relaxed);
}

void peer_connection::set_torrent_limiters(std::shared_ptr<rate_limiter> down,
                                           std::shared_ptr<rate_limiter> up) {
  auto self = shared_from_this();
  asio::post(impl_->strand, [d = impl_.get(), self, down = std::move(down),
                             up = std::move(up)]() mutable {
    d->torrent_down = std::move(down);
    d->torrent_up = std::move(up);
  });
}

bool peer_connection::send_budget_full() const noexcept {
  return impl_->session.send_used.load(std::memory_order_relaxed) >=
         impl_->session.send_limit.load(std::memory_order_relaxed);
}

std::shared_ptr<peer_connection>
peer_connection::connect(io_runtime& rt, const std::string& host, std::uint16_t port,
                         const wire::handshake& ours, connection_events events,
                         connection_limits limits) {
  auto conn = std::make_shared<peer_connection>(std::make_unique<impl>(io_of(rt), limits));
  auto* d = conn->impl_.get();
  d->events = std::move(events);
  d->remote = host + ":" + std::to_string(port);
  auto hs = wire::encode_handshake(ours);
  asio::post(d->strand, [d, conn, host, port, hs] {
    asio::error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (ec) {
      d->fail("bad peer address " + host);
      return;
    }
    if (!d->session.try_admit()) {
      d->fail("session connection limit (" + std::to_string(d->session.max_connections.load()) +
              ") reached");
      return;
    }
    d->admitted = true;
    d->arm_handshake_timeout(conn);
    d->socket.async_connect(
      asio::ip::tcp::endpoint(addr, port), [d, conn, hs](const asio::error_code& ec2) {
        if (d->closed)
          return;
        if (ec2) {
          d->fail("connect: " + ec2.message());
          return;
        }
        d->connected = true;
        asio::error_code ignored;
        d->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        d->count_queued(hs.size());
        d->queue(conn, std::string(hs.data(), hs.size()));
        d->read_handshake(conn, [d, conn](const wire::handshake& peer_hs) {
          if (d->events.on_handshake)
            d->events.on_handshake(peer_hs);
          d->do_read(conn);
        });
      });
  });
  return conn;
}

void peer_connection::start(const wire::handshake& ours, connection_events events) {
  auto self = shared_from_this();
  auto hs = wire::encode_handshake(ours);
  asio::post(impl_->strand, [d = impl_.get(), self, hs, ev = std::move(events)]() mutable {
    if (d->closed) {
      if (ev.on_closed)
        ev.on_closed("closed before start", false);
      return;
    }
    d->events = std::move(ev);
    d->count_queued(hs.size());
    d->queue(self, std::string(hs.data(), hs.size()));
    d->do_read(self);
  });
}

void peer_connection::send(std::string bytes) {
  impl_->count_queued(bytes.size());
  auto self = shared_from_this();
  asio::post(impl_->strand, [d = impl_.get(), self, b = std::move(bytes)]() mutable {
    d->queue(self, std::move(b));
  });
}

void peer_connection::close(const std::string& reason) {
  auto self = shared_from_this();
  asio::post(impl_->strand, [d = impl_.get(), self, reason] { d->fail(reason); });
}

std::string peer_connection::remote_endpoint() const { return impl_->remote; }

// -- peer_listener ---------------------------------------------------------------------------

// Every use of the acceptor after open() happens on the listener's strand: accepting, retrying
// and closing. close() only posts there, so a caller on a CAF scheduler thread never waits.
// Pending handlers hold the impl alive until they have run.
struct peer_listener::impl : std::enable_shared_from_this<peer_listener::impl> {
  using strand_t = asio::strand<asio::io_context::executor_type>;

  explicit impl(asio::io_context& io)
    : io(io), strand(asio::make_strand(io)), acceptor(strand), retry(strand) {}
  asio::io_context& io;
  strand_t strand;
  asio::ip::tcp::acceptor acceptor;
  asio::steady_timer retry;
  on_accept handler;
  on_failure failed;
  connection_limits limits;
  std::uint16_t port = 0;
  std::atomic<bool> started{false};
  std::atomic<bool> closing{false};
  std::atomic<std::uint32_t> handshaking{0}; // accepted, handshake not read yet

  void accept_next() {
    acceptor.async_accept([self = shared_from_this()](const asio::error_code& ec,
                                                      asio::ip::tcp::socket s) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open())
        return;
      if (!ec) {
        self->welcome(std::move(s));
        self->accept_next();
        return;
      }
      // Out of descriptors or memory: retrying at once would spin; try again shortly.
      if (self->failed)
        self->failed("listener", "accept: " + ec.message(), false);
      self->retry.expires_after(std::chrono::milliseconds(100));
      self->retry.async_wait([self](const asio::error_code& e) {
        if (!e && self->acceptor.is_open())
          self->accept_next();
      });
    });
  }

  void welcome(asio::ip::tcp::socket s) {
    asio::error_code ec;
    auto ep = s.remote_endpoint(ec);
    auto remote = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
    auto& session = asio::use_service<session_limits>(io);
    if (handshaking.load() >= limits.max_handshaking) {
      // A flood of connections that never handshake must not pin sockets and buffers.
      s.close(ec);
      if (failed)
        failed(remote, "refused: " + std::to_string(limits.max_handshaking) +
                         " connections are already waiting for their handshake", false);
      return;
    }
    if (!session.try_admit()) {
      s.close(ec);
      if (failed)
        failed(remote, "refused: session connection limit (" +
                         std::to_string(session.max_connections.load()) + ") reached", false);
      return;
    }
    ++handshaking;
    auto p = std::make_unique<peer_connection::impl>(io, limits);
    p->admitted = true;
    p->remote = remote;
    // Move the accepted socket onto the connection's strand.
    asio::error_code local_ec;
    auto protocol = acceptor.local_endpoint(local_ec).protocol(); // v6 when listening on v6
    p->socket = asio::ip::tcp::socket(p->strand, protocol, s.release(ec));
    p->socket.set_option(asio::ip::tcp::no_delay(true), ec);
    p->connected = true;
    auto conn = std::make_shared<peer_connection>(std::move(p));
    auto* d = conn->impl_.get();
    auto h = handler;
    auto self = shared_from_this();
    // Until the handshake is read, failures are the listener's to report.
    d->events.on_closed = [self, remote = d->remote](const std::string& reason,
                                                     bool protocol_error) {
      --self->handshaking;
      if (self->failed)
        self->failed(remote, reason, protocol_error);
    };
    asio::post(d->strand, [d, conn, h, self] {
      d->arm_handshake_timeout(conn);
      d->read_handshake(conn, [d, conn, h, self](const wire::handshake& hs) {
        --self->handshaking;
        d->events = connection_events{}; // from here on the torrent's peer reports
        h(conn, hs);
      });
    });
  }
};

peer_listener::peer_listener(std::shared_ptr<impl> p) : impl_(std::move(p)) {}

peer_listener::~peer_listener() { close(); }

std::shared_ptr<peer_listener> peer_listener::open(io_runtime& rt, const std::string& host,
                                                   std::uint16_t port, std::string& error_text,
                                                   connection_limits limits) {
  auto p = std::make_shared<impl>(io_of(rt));
  p->limits = limits;
  asio::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) {
    error_text = "bad listen address " + host;
    return nullptr;
  }
  // No handler has been started yet: the acceptor is still this thread's alone.
  asio::ip::tcp::endpoint ep(addr, port);
  p->acceptor.open(ep.protocol(), ec);
  if (!ec)
    p->acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec)
    p->acceptor.bind(ep, ec);
  if (!ec)
    p->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error_text = "listen on " + host + ":" + std::to_string(port) + ": " + ec.message();
    return nullptr;
  }
  p->port = p->acceptor.local_endpoint().port();
  return std::make_shared<peer_listener>(std::move(p));
}

void peer_listener::start(on_accept handler, on_failure failed) {
  if (impl_->started.exchange(true))
    return;
  // The handlers are set before the post: the strand sees them (post synchronises).
  impl_->handler = std::move(handler);
  impl_->failed = std::move(failed);
  asio::post(impl_->strand, [self = impl_] {
    if (!self->closing.load() && self->acceptor.is_open())
      self->accept_next();
  });
}

std::uint16_t peer_listener::port() const noexcept { return impl_->port; }

void peer_listener::close() {
  if (!impl_ || impl_->closing.exchange(true))
    return;
  asio::post(impl_->strand, [self = impl_] {
    asio::error_code ignored;
    self->retry.cancel();
    self->acceptor.close(ignored);
  });
}

} // namespace actorrent
