#include "actors/metrics_server.hpp"

#include <asio.hpp>

#include <atomic>
#include <chrono>
#include <future>

#include "actors/peer_connection.hpp"

namespace actorrent {

struct metrics_server::impl : std::enable_shared_from_this<metrics_server::impl> {
  explicit impl(asio::io_context& io) : io(io), acceptor(io) {}
  asio::io_context& io;
  asio::ip::tcp::acceptor acceptor;
  std::shared_ptr<const std::string> snapshot = std::make_shared<const std::string>();
  std::uint16_t port = 0;

  void accept_next() {
    auto self = shared_from_this();
    acceptor.async_accept([self](const asio::error_code& ec, asio::ip::tcp::socket s) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open())
        return;
      if (!ec)
        self->serve(std::make_shared<asio::ip::tcp::socket>(std::move(s)));
      self->accept_next();
    });
  }

  void serve(std::shared_ptr<asio::ip::tcp::socket> sock) {
    // Read the request head (bounded), answer with the snapshot, close. A client that does not
    // finish within 5 s is cut off: idle connections must not pile up.
    auto buf = std::make_shared<asio::streambuf>(8192);
    auto self = shared_from_this();
    auto deadline = std::make_shared<asio::steady_timer>(sock->get_executor());
    deadline->expires_after(std::chrono::seconds(5));
    deadline->async_wait([sock](const asio::error_code& ec) {
      if (ec)
        return; // cancelled: the request was answered
      asio::error_code ignored;
      sock->close(ignored);
    });
    asio::async_read_until(*sock, *buf, "\r\n\r\n",
                           [self, sock, buf, deadline](const asio::error_code& ec, std::size_t) {
                             if (ec)
                               return;
                             std::istream in(buf.get());
                             std::string method, path;
                             in >> method >> path;
                             auto body = std::atomic_load(&self->snapshot);
                             bool ok = method == "GET" && (path == "/metrics" || path == "/");
                             auto reply = std::make_shared<std::string>();
                             if (ok)
                               *reply = "HTTP/1.0 200 OK\r\nContent-Type: text/plain; "
                                        "version=0.0.4\r\nContent-Length: " +
                                        std::to_string(body->size()) + "\r\n\r\n" + *body;
                             else
                               *reply = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n";
                             asio::async_write(*sock, asio::buffer(*reply),
                                               [sock, reply, deadline](const asio::error_code&,
                                                                       std::size_t) {
                                                 deadline->cancel();
                                                 asio::error_code ignored;
                                                 sock->shutdown(asio::ip::tcp::socket::shutdown_both,
                                                                ignored);
                                               });
                           });
  }
};

metrics_server::metrics_server(std::shared_ptr<impl> p) : impl_(std::move(p)) {}

metrics_server::~metrics_server() { close(); }

std::shared_ptr<metrics_server> metrics_server::open(io_runtime& rt, const std::string& host,
                                                     std::uint16_t port, std::string& error_text) {
  auto& io = *static_cast<asio::io_context*>(rt.native());
  auto p = std::make_shared<impl>(io);
  asio::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) {
    error_text = "bad metrics address " + host;
    return nullptr;
  }
  asio::ip::tcp::endpoint ep(addr, port);
  p->acceptor.open(ep.protocol(), ec);
  if (!ec)
    p->acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec)
    p->acceptor.bind(ep, ec);
  if (!ec)
    p->acceptor.listen(16, ec);
  if (ec) {
    error_text = "metrics on " + host + ":" + std::to_string(port) + ": " + ec.message();
    return nullptr;
  }
  p->port = p->acceptor.local_endpoint().port();
  asio::post(io, [p] { p->accept_next(); });
  return std::make_shared<metrics_server>(p);
}

void metrics_server::publish(std::string text) {
  std::atomic_store(&impl_->snapshot,
                    std::shared_ptr<const std::string>(std::make_shared<std::string>(std::move(text))));
}

std::uint16_t metrics_server::port() const noexcept { return impl_->port; }

void metrics_server::close() {
  if (!impl_ || !impl_->acceptor.is_open())
    return;
  auto done = std::make_shared<std::promise<void>>();
  auto f = done->get_future();
  auto p = impl_;
  asio::post(p->io, [p, done] {
    asio::error_code e;
    p->acceptor.close(e);
    done->set_value();
  });
  f.wait_for(std::chrono::milliseconds(500));
}

} // namespace actorrent
