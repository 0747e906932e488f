// Two DHT actors on loopback UDP, on a real actor system: they bootstrap, look up and announce
// each other's torrent (each torrent hears of the other's port), report their tables, and
// save the node table when stopped.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <caf/all.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include "actors/dht_actor.hpp"
#include "actors/messages.hpp"
#include "actors/peer_connection.hpp"
#include "protocol/bencode.hpp"
#include "tests/actors/deterministic.hpp"

using namespace actorrent;

namespace {

#if defined(__SANITIZE_THREAD__)
#define ACTORRENT_DHT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ACTORRENT_DHT_TSAN 1
#endif
#endif

struct dht_actor_fixture : ::testing::Test {
  void SetUp() override {
#ifdef ACTORRENT_DHT_TSAN
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

} // namespace
