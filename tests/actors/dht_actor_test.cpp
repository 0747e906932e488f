// Two DHT actors on loopback UDP, on a real actor system: they bootstrap, look up and announce
// each other's torrent (each torrent hears of the other's port), report their tables, and
// save the node table when stopped.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include "actors/dht_actor.hpp"
#include "actors/messages.hpp"
#include "actors/peer_connection.hpp"
#include "protocol/bencode.hpp"
#include "protocol/krpc.hpp"
#include "tests/actors/deterministic.hpp"

using namespace actorrent;

namespace {

struct dht_actor_fixture : ::testing::Test {
  void SetUp() override {
#ifdef ACTORRENT_UNDER_TSAN
    GTEST_SKIP() << "actors on CAF's real threads are not checked under ThreadSanitizer";
#endif
  }
  std::ostringstream log;
  io_runtime io{1};
  std::string dir;
  dht_actor_fixture() {
    actor_test::route_loggers(std::make_shared<spdlog::sinks::ostream_sink_mt>(log),
                              spdlog::level::debug);
    char tmpl[] = "/tmp/dht_actor_test.XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~dht_actor_fixture() override {
    io.stop();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

dht_status status_of(caf::scoped_actor& self, const caf::actor& dht) {
  dht_status s;
  self->request(dht, std::chrono::seconds(5), dht_get_status{})
    .receive([&](dht_status& st) { s = st; }, [&](caf::error&) {});
  return s;
}

/// Waits up to 10 s for an add_peers naming `port`.
bool hears_of_port(caf::scoped_actor& torrent, std::uint16_t port) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    bool found = false;
    torrent->receive(
      [&](add_peers& ap) {
        for (auto& ep : ap.peers)
          found = found || (ep.host == "127.0.0.1" && ep.port == port);
      },
      caf::after(std::chrono::milliseconds(200)) >> [] {});
    if (found)
      return true;
  }
  return false;
}

TEST_F(dht_actor_fixture, two_nodes_find_each_others_torrent_and_save_their_table) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::string err;
  dht_config cb;
  cb.io = &io;
  cb.lookup_interval_s = 1; // B looks up again soon, once A is in its table
  auto b = spawn_dht(sys, cb, err);
  ASSERT_TRUE(b) << err;
  auto b_port = status_of(self, b).port;
  ASSERT_NE(b_port, 0);

  dht_config ca;
  ca.io = &io;
  ca.bootstrap = {endpoint{"127.0.0.1", b_port}};
  ca.state_file = dir + "/.actorrent/dht.dat";
  auto a = spawn_dht(sys, ca, err);
  ASSERT_TRUE(a) << err;

  info_hash h{};
  h.fill(0x5a);
  caf::scoped_actor torrent_a{sys};
  caf::scoped_actor torrent_b{sys};
  self->send(b, dht_track{h, torrent_b, 2222});
  self->send(a, dht_track{h, torrent_a, 1111});
  // A asks B (its only node) and announces 1111 to it; B, once it knows A, announces 2222.
  EXPECT_TRUE(hears_of_port(torrent_b, 1111)) << log.str();
  EXPECT_TRUE(hears_of_port(torrent_a, 2222)) << log.str();
  EXPECT_EQ(status_of(self, a).nodes, 1u);
  EXPECT_EQ(status_of(self, b).nodes, 1u);
  EXPECT_GE(status_of(self, b).stored_peers, 1u);

  self->send(a, stop_request{});
  self->send(b, stop_request{});
  self->wait_for(a, b);
  std::ifstream in(ca.state_file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto saved = bencode::decode(text);
  ASSERT_TRUE(saved.ok()) << text;
  auto* nodes = saved->find("nodes");
  ASSERT_TRUE(nodes && nodes->is_string());
  ASSERT_EQ(nodes->as_string().size(), 26u); // B
  auto& n = nodes->as_string();
  EXPECT_EQ((static_cast<std::uint8_t>(n[24]) << 8) | static_cast<std::uint8_t>(n[25]), b_port);
}

TEST_F(dht_actor_fixture, an_address_that_is_not_ipv4_is_refused_with_a_reason) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  dht_config c;
  c.io = &io;
  c.host = "not-an-address";
  std::string err;
  auto d = spawn_dht(sys, c, err);
  EXPECT_FALSE(d);
  EXPECT_EQ(err, "DHT: not-an-address is not an IPv4 address");
}

/// A scripted DHT node on a loopback UDP socket: answers every query with its id (and no
/// nodes), and records the transaction ids it saw.
class fake_node {
public:
  /// `reply_fd`: answer from that socket instead (another address than the one asked).
  explicit fake_node(std::uint8_t id_byte, bool answers_get_peers = true, int reply_fd = -1)
      : answers_get_peers_(answers_get_peers), reply_fd_(reply_fd) {
    id_.fill(id_byte);
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    timeval tv{0, 100 * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    thread_ = std::thread([this] { run(); });
  }
  ~fake_node() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  std::vector<std::string> tids() {
    std::lock_guard<std::mutex> g(mu_);
    return tids_;
  }

private:
  void run() {
    char buf[2048];
    while (!stop_) {
      sockaddr_in from{};
      socklen_t len = sizeof from;
      auto n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0)
        continue;
      auto m = krpc::decode(std::string(buf, static_cast<std::size_t>(n)));
      if (!m || m->type != krpc::kind::query ||
          (!answers_get_peers_ && m->q.m == krpc::method::get_peers))
        continue;
      {
        std::lock_guard<std::mutex> g(mu_);
        tids_.push_back(m->transaction);
      }
      krpc::response r;
      r.id = id_;
      auto out = krpc::encode(krpc::make_response(m->transaction, r));
      ::sendto(reply_fd_ >= 0 ? reply_fd_ : fd_, out.data(), out.size(), 0,
               reinterpret_cast<sockaddr*>(&from), len);
    }
  }
  krpc::node_id id_{};
  bool answers_get_peers_ = true;
  int reply_fd_ = -1;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> tids_;
  std::thread thread_;
};

// Queries waiting for the query rate are not timed out before they leave: at 1 query/s, the
// third of three bootstrap queries leaves after ~3 s, past the 1 s timeout counted from
// queueing; each node answers at once, so all three must end up in the table.
TEST_F(dht_actor_fixture, a_query_times_out_from_its_sending_not_its_queueing) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  fake_node n1(0x11), n2(0x22), n3(0x33);
  dht_config c;
  c.io = &io;
  c.max_queries_per_s = 1;
  c.query_timeout_ms = 1000;
  c.bootstrap = {endpoint{"127.0.0.1", n1.port()}, endpoint{"127.0.0.1", n2.port()},
                 endpoint{"127.0.0.1", n3.port()}};
  std::string err;
  auto d = spawn_dht(sys, c, err);
  ASSERT_TRUE(d) << err;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(8);
  while (status_of(self, d).nodes < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(status_of(self, d).nodes, 3u) << log.str();
  // Transaction ids are random, not a counter from 0.
  std::set<std::string> tids;
  for (auto* n : {&n1, &n2, &n3})
    for (auto& t : n->tids())
      tids.insert(t);
  EXPECT_NE(tids, (std::set<std::string>{std::string("\0\0", 2), std::string("\0\1", 2),
                                         std::string("\0\2", 2)}));
  self->send(d, stop_request{});
  self->wait_for(d);
}

// A lookup whose queries cannot be sent (too many in flight) ends instead of stalling with
// candidates left: else its torrent, or the bootstrap, would never look up again.
TEST_F(dht_actor_fixture, a_lookup_that_cannot_send_ends_instead_of_stalling) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  dht_config c;
  c.io = &io;
  c.max_pending_queries = 0;
  for (std::uint16_t p = 1; p <= 5; ++p) // alpha is 3: two candidates stay fresh
    c.bootstrap.push_back(endpoint{"127.0.0.1", static_cast<std::uint16_t>(40000 + p)});
  std::string err;
  auto d = spawn_dht(sys, c, err);
  ASSERT_TRUE(d) << err;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(status_of(self, d).lookups, 0u);
  self->send(d, stop_request{});
  self->wait_for(d);
}

// Replies share one byte budget: a burst of pings gets only the budget's worth of answers.
TEST_F(dht_actor_fixture, replies_are_bounded_by_a_global_byte_budget) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  dht_config c;
  c.io = &io;
  c.max_inbound_per_ip_per_s = 1000;
  c.max_reply_bytes_per_s = 1000;
  std::string err;
  auto d = spawn_dht(sys, c, err);
  ASSERT_TRUE(d) << err;
  auto port = status_of(self, d).port;
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  timeval tv{0, 300 * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  krpc::query q;
  q.m = krpc::method::ping;
  q.id.fill(0x42);
  for (int i = 0; i < 50; ++i) {
    auto bytes = krpc::encode(krpc::make_query(std::string(1, static_cast<char>(i)), q));
    ::sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  int answers = 0;
  char buf[1500];
  while (::recv(fd, buf, sizeof buf, 0) > 0)
    ++answers;
  ::close(fd);
  EXPECT_GT(answers, 0);
  EXPECT_LT(answers, 25); // each reply is > 60 bytes: 1000 bytes plus ~0.5 s of refill
  EXPECT_GT(status_of(self, d).replies_dropped, 0u);
  self->send(d, stop_request{});
  self->wait_for(d);
}

// An exit message (the session ending without stop_request) ends the DHT and frees its port.
TEST_F(dht_actor_fixture, an_exit_message_closes_the_socket) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  dht_config c;
  c.io = &io;
  std::string err;
  auto d = spawn_dht(sys, c, err);
  ASSERT_TRUE(d) << err;
  auto port = status_of(self, d).port;
  caf::anon_send_exit(d, caf::exit_reason::user_shutdown);
  self->wait_for(d);
  bool rebound = false;
  for (int i = 0; i < 20 && !rebound; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    rebound = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
  }
  EXPECT_TRUE(rebound);
}

// dht_untrack ends the torrent's running lookup at once (a torrent found private must not go
// on being looked up or announced).
TEST_F(dht_actor_fixture, untrack_cancels_the_running_lookup) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  fake_node node(0x44, false); // in the table, but never answers get_peers
  dht_config c;
  c.io = &io;
  c.query_timeout_ms = 30000;
  c.bootstrap = {endpoint{"127.0.0.1", node.port()}};
  std::string err;
  auto d = spawn_dht(sys, c, err);
  ASSERT_TRUE(d) << err;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (status_of(self, d).nodes < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(status_of(self, d).lookups, 0u) << log.str(); // the bootstrap is over
  info_hash h{};
  h.fill(0x77);
  caf::scoped_actor torrent{sys};
  self->send(d, dht_track{h, torrent, 1111});
  EXPECT_EQ(status_of(self, d).lookups, 1u); // the torrent's get_peers, waiting on the node
  self->send(d, dht_untrack{h});
  EXPECT_EQ(status_of(self, d).lookups, 0u);
  self->send(d, stop_request{});
  self->wait_for(d);
}

// An answer counts only from the address the query went to: one from another port (spoofed or
// stray) puts nobody in the table.
TEST_F(dht_actor_fixture, an_answer_from_another_address_is_ignored) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  int other = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(other, reinterpret_cast<sockaddr*>(&a), sizeof a);
  {
    fake_node liar(0x55, true, other);
    dht_config c;
    c.io = &io;
    c.bootstrap = {endpoint{"127.0.0.1", liar.port()}};
    std::string err;
    auto d = spawn_dht(sys, c, err);
    ASSERT_TRUE(d) << err;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (liar.tids().empty() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_FALSE(liar.tids().empty()); // it was asked, and answered from elsewhere
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(status_of(self, d).nodes, 0u);
    self->send(d, stop_request{});
    self->wait_for(d);
  }
  ::close(other);
}

} // namespace

// The TCP listen port's number taken over UDP: the DHT binds another port and warns, naming
// both (peers learn the DHT's real port from PORT messages).
TEST_F(dht_actor_fixture, a_taken_udp_port_falls_back_with_a_warning) {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::uint16_t taken = ntohs(a.sin_port);
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{cfg};
    caf::scoped_actor self{sys};
    dht_config c;
    c.io = &io;
    c.host = "127.0.0.1";
    c.port = taken;
    std::string err;
    auto d = spawn_dht(sys, c, err);
    ASSERT_TRUE(d) << err;
    auto port = status_of(self, d).port;
    EXPECT_NE(port, taken);
    EXPECT_NE(port, 0);
    EXPECT_NE(log.str().find("cannot bind UDP port " + std::to_string(taken)), std::string::npos)
      << log.str();
    EXPECT_NE(log.str().find("using UDP port " + std::to_string(port) + " instead"),
              std::string::npos)
      << log.str();
    self->send(d, stop_request{});
    self->wait_for(d);
  }
  ::close(fd);
}
