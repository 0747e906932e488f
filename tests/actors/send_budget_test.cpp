// The session's send-buffer budget over real sockets: bytes queued by a connection whose peer
// does not read count against it, the connection reports it full, and the bytes leave the
// budget with the connection.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "actors/peer_connection.hpp"

using namespace actorrent;

namespace {

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

} // namespace

TEST(send_budget, queued_bytes_of_all_connections_count_until_the_connection_is_gone) {
  int server = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(server, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(server, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(server, reinterpret_cast<sockaddr*>(&addr), &len);

  io_runtime io(1);
  io.set_send_budget(std::size_t{1} << 20);
  std::atomic<bool> handshaken{false};
  connection_events ev;
  ev.on_handshake = [&](const wire::handshake&) { handshaken = true; };
  ev.on_batch = [](read_batch&&) {};
  ev.on_closed = [](const std::string&, bool) {};
  wire::handshake ours;
  connection_limits limits;
  limits.max_write_queue = std::size_t{64} << 20;
  auto conn = peer_connection::connect(io, "127.0.0.1", ntohs(addr.sin_port), ours, ev, limits);
  int peer = ::accept(server, nullptr, nullptr);
  ASSERT_GE(peer, 0);
  auto hs = wire::encode_handshake(ours);
  ASSERT_EQ(::write(peer, hs.data(), hs.size()), static_cast<ssize_t>(hs.size()));
  ASSERT_TRUE(wait_until([&] { return handshaken.load(); }, std::chrono::seconds(5)));

  EXPECT_FALSE(conn->send_budget_full());
  // The peer never reads: the kernel's buffers fill, the rest stays queued in the connection.
  for (int i = 0; i < 32; ++i)
    conn->send(std::string(std::size_t{1} << 20, 'x'));
  EXPECT_TRUE(wait_until([&] { return conn->send_budget_full(); }, std::chrono::seconds(5)));
  EXPECT_GE(io.send_buffer_bytes(), std::size_t{1} << 20);
  EXPECT_LE(io.send_buffer_bytes(), std::size_t{32} << 20);

  conn->close("test over");
  conn.reset();
  EXPECT_TRUE(wait_until([&] { return io.send_buffer_bytes() == 0; }, std::chrono::seconds(5)))
    << io.send_buffer_bytes() << " bytes still counted";
  EXPECT_EQ(io.connection_count(), 0u);
  ::close(peer);
  ::close(server);
  io.stop();
}
