// The tracker announcer against scripted UDP trackers on 127.0.0.1 (real actor system, real
// sockets on an I/O runtime): BEP 15's connect / announce with a connection id reused while
// valid and fetched again once expired, retransmission after a silent wait, failover to the
// next tier, and a stop that does not wait for a silent tracker.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include "actors/messages.hpp"
#include "actors/peer_connection.hpp"
#include "actors/tracker_actor.hpp"
#include "tests/actors/deterministic.hpp"

using namespace actorrent;
using namespace std::chrono_literals;

namespace {

#if defined(__SANITIZE_THREAD__)
#define ACTORRENT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ACTORRENT_TSAN 1
#endif
#endif

std::uint32_t be32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i)
    v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

std::uint64_t be64(const std::string& s, std::size_t at) {
  return (std::uint64_t{be32(s, at)} << 32) | be32(s, at + 4);
}

void put32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

/// A UDP tracker on 127.0.0.1 run by a thread: records every request; `answer` decides the
/// reply (empty: none). By default it answers connects with id 1, 2, ... and announces with
/// one peer, 10.0.0.1:6881.
class scripted_udp_tracker {
public:
  struct request {
    std::uint32_t action = 0;
    std::uint32_t tx = 0;
    std::uint64_t connection_id = 0;
    std::chrono::steady_clock::time_point at;
    std::uint32_t event = 0; // an announce's event (BEP 15: 0 none, 1 completed, 3 stopped)
  };
  std::function<bool(const request&, std::size_t index)> answer = [](const request&,
                                                                    std::size_t) { return true; };

  /// `v6`: on [::1], answering announces with 18-byte peers (BEP 15 over IPv6).
  explicit scripted_udp_tracker(bool v6 = false) : v6_(v6) {
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
    sockaddr_storage a{};
    socklen_t len;
    if (v6) {
      auto* a6 = reinterpret_cast<sockaddr_in6*>(&a);
      a6->sin6_family = AF_INET6;
      a6->sin6_addr = in6addr_loopback;
      len = sizeof *a6;
    } else {
      auto* a4 = reinterpret_cast<sockaddr_in*>(&a);
      a4->sin_family = AF_INET;
      a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof *a4;
    }
    // Any failure leaves ok() false (IPv6 may be off on the host: those tests skip).
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&a)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&a)->sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~scripted_udp_tracker() {
    done_ = true;
    if (thread_.joinable())
      thread_.join();
    if (fd_ >= 0)
      ::close(fd_);
  }
  bool ok() const { return port_ != 0; }
  std::string url() const {
    return std::string(v6_ ? "udp://[::1]:" : "udp://127.0.0.1:") + std::to_string(port_) +
           "/announce";
  }
  std::uint16_t port() const { return port_; }
  std::vector<request> requests() {
    std::lock_guard<std::mutex> g(mu_);
    return requests_;
  }
  /// The requests once at least `n` have arrived, or all there are after `limit`: a datagram
  /// sent is recorded by this thread a moment later (much later under a sanitizer).
  std::vector<request> requests_once(std::size_t n, std::chrono::milliseconds limit = 2000ms) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      {
        std::lock_guard<std::mutex> g(mu_);
        if (requests_.size() >= n)
          return requests_;
      }
      std::this_thread::sleep_for(5ms);
    }
    return requests();
  }

private:
  void run() {
    std::uint64_t next_id = 1;
    while (!done_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0)
        continue;
      char buf[2048];
      sockaddr_storage from{};
      socklen_t len = sizeof from;
      auto n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 16)
        continue;
      std::string d(buf, static_cast<std::size_t>(n));
      request r{be32(d, 8), be32(d, 12), be64(d, 0), std::chrono::steady_clock::now()};
      if (r.action == 1 && d.size() >= 84)
        r.event = be32(d, 80);
      std::size_t index;
      {
        std::lock_guard<std::mutex> g(mu_);
        index = requests_.size();
        requests_.push_back(r);
      }
      if (!answer(r, index))
        continue;
      std::string reply;
      put32(reply, r.action);
      put32(reply, r.tx);
      if (r.action == 0) {
        std::uint64_t id = next_id++;
        put32(reply, static_cast<std::uint32_t>(id >> 32));
        put32(reply, static_cast<std::uint32_t>(id));
      } else {
        put32(reply, 1800); // interval
        put32(reply, 0);
        put32(reply, 1);
        if (v6_)
          reply += std::string("\x20\x01\x0d\xb8", 4) + std::string(11, '\0') + '\x01';
        else
          put32(reply, 0x0a000001);
        reply += std::string("\x1a\xe1", 2);
      }
      ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }
  bool v6_ = false;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::vector<request> requests_;
  std::thread thread_;
};

/// UDP sockets of this network namespace connected to 127.0.0.1:`port` (/proc/net/udp).
int sockets_connected_to(std::uint16_t port) {
  std::ifstream in("/proc/self/net/udp");
  std::string line;
  std::getline(in, line); // header
  char want[16];
  std::snprintf(want, sizeof want, "0100007F:%04X", port);
  int n = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote;
    fields >> slot >> local >> remote;
    n += remote == want;
  }
  return n;
}

struct tracker_actor_fixture : ::testing::Test {
  void SetUp() override {
#ifdef ACTORRENT_TSAN
    GTEST_SKIP() << "actors on CAF's real threads are not checked under ThreadSanitizer";
#endif
    actor_test::route_loggers(std::make_shared<spdlog::sinks::ostream_sink_mt>(log),
                              spdlog::level::debug);
  }
  ~tracker_actor_fixture() override { io.stop(); }

  tracker_config config(std::vector<std::vector<std::string>> tiers) {
    tracker_config c;
    c.tiers = std::move(tiers);
    c.io = &io;
    c.udp_timeout_ms = 200;
    c.shuffle_seed = 1;
    return c;
  }

  /// Sends an announce and waits for its result (or 5 s).
  static announce_result announce_once(caf::scoped_actor& self, const caf::actor& tracker) {
    self->send(tracker, announce{tracker::event::none, 0, 0, 100});
    announce_result out;
    out.result = error{errc::timeout, "no announce_result within 5 s"};
    self->receive([&](announce_result& r) { out = std::move(r); },
                  caf::after(std::chrono::seconds(5)) >> [] {});
    return out;
  }

  std::ostringstream log;
  io_runtime io{1};
};

TEST_F(tracker_actor_fixture, connects_once_and_reuses_the_connection_id_while_valid) {
  scripted_udp_tracker t;
  ASSERT_TRUE(t.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto tracker = spawn_tracker(sys, config({{t.url()}}), self);
    for (int i = 0; i < 2; ++i) {
      auto r = announce_once(self, tracker);
      ASSERT_TRUE(r.result.ok()) << r.result.error().message;
      EXPECT_EQ(r.url, t.url());
      EXPECT_EQ(r.interval, 1800u);
      EXPECT_EQ(r.min_interval, 300u) << "BEP 15 has none: the interval, at most 5 minutes";
      ASSERT_EQ(r.peers.size(), 1u);
      EXPECT_EQ(r.peers[0].host, "10.0.0.1");
      EXPECT_EQ(r.peers[0].port, 6881);
    }
    auto reqs = t.requests();
    ASSERT_EQ(reqs.size(), 3u) << "connect, announce, announce";
    EXPECT_EQ(reqs[0].action, 0u);
    EXPECT_EQ(reqs[0].connection_id, 0x41727101980ull);
    EXPECT_EQ(reqs[1].action, 1u);
    EXPECT_EQ(reqs[1].connection_id, 1u);
    EXPECT_EQ(reqs[2].action, 1u);
    EXPECT_EQ(reqs[2].connection_id, 1u) << "the id is reused within its minute";
    EXPECT_NE(reqs[1].tx, reqs[2].tx) << "every request has its own transaction id";
    self->send(tracker, stop_request{});
  }
}

TEST_F(tracker_actor_fixture, over_ipv6_peers_are_18_bytes) {
  scripted_udp_tracker t{true};
  if (!t.ok())
    GTEST_SKIP() << "cannot bind a UDP socket to [::1] (IPv6 off?)";
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto tracker = spawn_tracker(sys, config({{t.url()}}), self);
    auto r = announce_once(self, tracker);
    ASSERT_TRUE(r.result.ok()) << r.result.error().message;
    ASSERT_EQ(r.peers.size(), 1u);
    EXPECT_EQ(r.peers[0].host, "2001:db8::1");
    EXPECT_EQ(r.peers[0].port, 6881);
    self->send(tracker, stop_request{});
  }
}

TEST_F(tracker_actor_fixture, an_expired_connection_id_is_fetched_again) {
  scripted_udp_tracker t;
  ASSERT_TRUE(t.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto c = config({{t.url()}});
    c.udp_connection_lifetime_ms = 100;
    auto tracker = spawn_tracker(sys, c, self);
    ASSERT_TRUE(announce_once(self, tracker).result.ok());
    std::this_thread::sleep_for(150ms);
    ASSERT_TRUE(announce_once(self, tracker).result.ok());
    auto reqs = t.requests();
    ASSERT_EQ(reqs.size(), 4u);
    EXPECT_EQ(reqs[2].action, 0u) << "connect again after the id expired";
    EXPECT_EQ(reqs[3].connection_id, 2u) << "announce with the new id";
    self->send(tracker, stop_request{});
  }
}

TEST_F(tracker_actor_fixture, a_silent_request_is_sent_again_after_the_base_wait) {
  scripted_udp_tracker t;
  ASSERT_TRUE(t.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  t.answer = [](const scripted_udp_tracker::request&, std::size_t i) { return i != 0; };
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto tracker = spawn_tracker(sys, config({{t.url()}}), self);
    auto r = announce_once(self, tracker);
    ASSERT_TRUE(r.result.ok()) << r.result.error().message;
    auto reqs = t.requests();
    ASSERT_EQ(reqs.size(), 3u) << "connect (unanswered), connect, announce";
    EXPECT_EQ(reqs[0].action, 0u);
    EXPECT_EQ(reqs[1].action, 0u);
    EXPECT_EQ(reqs[0].tx, reqs[1].tx) << "a retransmission repeats the request";
    auto gap = reqs[1].at - reqs[0].at;
    // Lower bound with slack: the first send may wait for its socket to open, the second not.
    EXPECT_GE(gap, 100ms);
    EXPECT_LT(gap, 1s) << "15 s * 2^0, with the base shortened to 200 ms (slack for slow runs)";
    self->send(tracker, stop_request{});
  }
}

TEST_F(tracker_actor_fixture, a_silent_tier_fails_over_and_the_next_answers) {
  scripted_udp_tracker silent;
  ASSERT_TRUE(silent.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  silent.answer = [](const scripted_udp_tracker::request&, std::size_t) { return false; };
  scripted_udp_tracker live;
  ASSERT_TRUE(live.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto tracker = spawn_tracker(sys, config({{silent.url()}, {live.url()}}), self);
    auto t0 = std::chrono::steady_clock::now();
    auto r = announce_once(self, tracker);
    ASSERT_TRUE(r.result.ok()) << r.result.error().message;
    EXPECT_EQ(r.url, live.url());
    auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(waited, 580ms) << "two tries: 200 ms + 400 ms";
    EXPECT_LT(waited, 2s);
    EXPECT_EQ(silent.requests().size(), 2u);
    EXPECT_NE(log.str().find("announce to " + silent.url() +
                             " failed: udp tracker: no answer to the connect request after 2 "
                             "tries (600 ms)"),
              std::string::npos)
      << log.str();
    self->send(tracker, stop_request{});
  }
}

TEST_F(tracker_actor_fixture, every_tracker_failing_reports_all_reasons) {
  scripted_udp_tracker silent;
  ASSERT_TRUE(silent.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  silent.answer = [](const scripted_udp_tracker::request&, std::size_t) { return false; };
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto tracker = spawn_tracker(sys, config({{silent.url(), "udp://no-port", "wss://x/y"}}),
                                 self);
    auto r = announce_once(self, tracker);
    ASSERT_FALSE(r.result.ok());
    EXPECT_EQ(r.result.error().code, errc::tracker_failure);
    const auto& m = r.result.error().message;
    EXPECT_NE(m.find(silent.url() + ": udp tracker: no answer"), std::string::npos) << m;
    EXPECT_NE(m.find("udp://no-port: udp tracker: 'udp://no-port' has no port"),
              std::string::npos)
      << m;
    self->send(tracker, stop_request{});
  }
}

TEST_F(tracker_actor_fixture, a_stop_does_not_wait_for_a_silent_tracker) {
  scripted_udp_tracker silent;
  ASSERT_TRUE(silent.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  silent.answer = [](const scripted_udp_tracker::request&, std::size_t) { return false; };
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto c = config({{silent.url()}});
    c.udp_timeout_ms = 15000; // BEP 15's own base: a routine announce would wait 45 s
    auto tracker = spawn_tracker(sys, c, self);
    self->monitor(tracker);
    self->send(tracker, announce{tracker::event::none, 0, 0, 100});
    ASSERT_EQ(silent.requests_once(1).size(), 1u) << "the routine connect";
    auto t0 = std::chrono::steady_clock::now();
    c.cancel->store(true);
    self->send(tracker, announce{tracker::event::stopped, 0, 0, 100});
    self->send(tracker, stop_request{});
    bool down = false;
    self->receive_while([&] { return !down; })(
      [&](caf::down_msg&) { down = true; }, [&](announce_result&) {},
      caf::after(std::chrono::seconds(5)) >> [&] { down = true; });
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(took, 1500ms) << "the farewell gets one short try (500 ms)";
    auto reqs = silent.requests_once(2);
    ASSERT_GE(reqs.size(), 2u) << "the routine connect, then the farewell's";
  }
}

/// Answers connects, never announces.
bool connects_only(const scripted_udp_tracker::request& r, std::size_t) { return r.action == 0; }

TEST_F(tracker_actor_fixture, the_farewell_on_a_stop_is_an_announce_with_event_stopped) {
  scripted_udp_tracker t;
  ASSERT_TRUE(t.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  t.answer = connects_only;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto c = config({{t.url()}});
    c.udp_timeout_ms = 15000;
    auto tracker = spawn_tracker(sys, c, self);
    self->monitor(tracker);
    self->send(tracker, announce{tracker::event::none, 0, 0, 100});
    ASSERT_EQ(t.requests_once(2).size(), 2u) << "connected; the routine announce waits";
    auto t0 = std::chrono::steady_clock::now();
    c.cancel->store(true);
    self->send(tracker, announce{tracker::event::stopped, 0, 0, 100});
    self->send(tracker, stop_request{});
    bool down = false;
    self->receive_while([&] { return !down; })(
      [&](caf::down_msg&) { down = true; }, [&](announce_result&) {},
      caf::after(std::chrono::seconds(5)) >> [&] { down = true; });
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
    auto reqs = t.requests_once(3);
    ASSERT_EQ(reqs.size(), 3u) << "connect, routine announce, farewell";
    EXPECT_EQ(reqs[1].action, 1u);
    EXPECT_EQ(reqs[1].event, 0u);
    EXPECT_EQ(reqs[2].action, 1u) << "the connection id is still valid: no new connect";
    EXPECT_EQ(reqs[2].event, 3u) << "BEP 15: stopped";
    EXPECT_GE(reqs[2].at, t0) << "sent after the stop";
  }
}

TEST_F(tracker_actor_fixture, a_stop_with_several_silent_trackers_tries_only_one) {
  scripted_udp_tracker a, b, c3;
  ASSERT_TRUE(a.ok() && b.ok() && c3.ok()) << "cannot bind UDP sockets to 127.0.0.1";
  for (auto* t : {&a, &b, &c3})
    t->answer = [](const scripted_udp_tracker::request&, std::size_t) { return false; };
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto c = config({{a.url(), b.url()}, {c3.url()}});
    c.udp_timeout_ms = 15000;
    auto tracker = spawn_tracker(sys, c, self);
    self->monitor(tracker);
    auto t0 = std::chrono::steady_clock::now();
    c.cancel->store(true);
    self->send(tracker, announce{tracker::event::stopped, 0, 0, 100});
    self->send(tracker, stop_request{});
    bool down = false;
    std::optional<announce_result> result;
    self->receive_while([&] { return !down; })(
      [&](caf::down_msg&) { down = true; }, [&](announce_result& r) { result = r; },
      caf::after(std::chrono::seconds(5)) >> [&] { down = true; });
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(took, 1200ms) << "one 500 ms farewell, not one per tracker (3 x 500 ms)";
    auto sent = [&] { return a.requests().size() + b.requests().size() + c3.requests().size(); };
    for (int i = 0; i < 100 && sent() == 0; ++i) // recorded a moment after it was sent
      std::this_thread::sleep_for(10ms);
    EXPECT_EQ(sent(), 1u);
    ASSERT_TRUE(result.has_value());
    EXPECT_FALSE(result->result.ok());
  }
}

TEST_F(tracker_actor_fixture, a_hundred_thousand_malformed_udp_urls_fail_with_a_bounded_error) {
  // Each URL fails at once (no port): they are skipped in a loop, not by recursion, and the
  // error lists the first few.
  std::vector<std::vector<std::string>> tiers(1000, std::vector<std::string>(100, "udp://a"));
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto tracker = spawn_tracker(sys, config(std::move(tiers)), self);
    auto r = announce_once(self, tracker);
    ASSERT_FALSE(r.result.ok());
    EXPECT_EQ(r.result.error().code, errc::tracker_failure) << r.result.error().message;
    const auto& m = r.result.error().message;
    EXPECT_LT(m.size(), 2000u);
    EXPECT_NE(m.find("udp://a: udp tracker: 'udp://a' has no port"), std::string::npos) << m;
    EXPECT_NE(m.find("; and 190 more"), std::string::npos) << m;
    self->send(tracker, stop_request{});
  }
}

TEST_F(tracker_actor_fixture, a_tracker_ignoring_announces_fails_over_though_its_id_expires) {
  // Each retransmission finds the connection id expired and connects afresh; the connect is
  // answered, the announce never. The tries still run out and the next tier answers.
  scripted_udp_tracker deaf;
  ASSERT_TRUE(deaf.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  deaf.answer = connects_only;
  scripted_udp_tracker live;
  ASSERT_TRUE(live.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto c = config({{deaf.url()}, {live.url()}});
    c.udp_connection_lifetime_ms = 100; // shorter than the 200 ms wait
    auto tracker = spawn_tracker(sys, c, self);
    auto r = announce_once(self, tracker);
    ASSERT_TRUE(r.result.ok()) << r.result.error().message;
    EXPECT_EQ(r.url, live.url());
    auto reqs = deaf.requests();
    EXPECT_EQ(reqs.size(), 4u) << "connect, announce, connect, announce: 2 tries in all";
    self->send(tracker, stop_request{});
  }
}

TEST_F(tracker_actor_fixture, a_routine_completed_is_sent_again_when_its_datagram_is_lost) {
  // Not shutting down: 'completed' (announced once per torrent) gets the normal tries.
  scripted_udp_tracker t;
  ASSERT_TRUE(t.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  t.answer = [](const scripted_udp_tracker::request& r, std::size_t) {
    static std::atomic<int> announces{0};
    return r.action == 0 || announces++ > 0; // the first announce is lost
  };
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto tracker = spawn_tracker(sys, config({{t.url()}}), self);
    self->send(tracker, announce{tracker::event::completed, 0, 0, 0});
    announce_result r;
    r.result = error{errc::timeout, "no announce_result within 5 s"};
    self->receive([&](announce_result& x) { r = std::move(x); },
                  caf::after(std::chrono::seconds(5)) >> [] {});
    ASSERT_TRUE(r.result.ok()) << r.result.error().message;
    auto reqs = t.requests();
    ASSERT_EQ(reqs.size(), 3u) << "connect, completed (lost), completed again";
    EXPECT_EQ(reqs[1].event, 1u);
    EXPECT_EQ(reqs[2].event, 1u);
    self->send(tracker, stop_request{});
  }
}

TEST_F(tracker_actor_fixture, a_stop_cuts_short_a_completed_sent_before_it) {
  scripted_udp_tracker t;
  ASSERT_TRUE(t.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  t.answer = connects_only;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto c = config({{t.url()}});
    c.udp_timeout_ms = 15000;
    auto tracker = spawn_tracker(sys, c, self);
    self->monitor(tracker);
    self->send(tracker, announce{tracker::event::completed, 0, 0, 0});
    std::this_thread::sleep_for(200ms); // 'completed' waits 15 s for its answer
    auto t0 = std::chrono::steady_clock::now();
    self->send(tracker, stop_request{});
    bool down = false;
    self->receive_while([&] { return !down; })(
      [&](caf::down_msg&) { down = true; }, [&](announce_result&) {},
      caf::after(std::chrono::seconds(5)) >> [&] { down = true; });
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms) << "2 s at most, not 15 s";
  }
}

TEST_F(tracker_actor_fixture, a_udp_socket_is_closed_once_its_connection_id_expires) {
  scripted_udp_tracker t;
  ASSERT_TRUE(t.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  scripted_udp_tracker silent;
  ASSERT_TRUE(silent.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  silent.answer = [](const scripted_udp_tracker::request&, std::size_t) { return false; };
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto c = config({{t.url()}});
    c.udp_connection_lifetime_ms = 300;
    auto tracker = spawn_tracker(sys, c, self);
    ASSERT_TRUE(announce_once(self, tracker).result.ok());
    EXPECT_EQ(sockets_connected_to(t.port()), 1) << "kept while the id may be reused";
    std::this_thread::sleep_for(600ms);
    EXPECT_EQ(sockets_connected_to(t.port()), 0) << "closed once the id expired";
    ASSERT_TRUE(announce_once(self, tracker).result.ok()) << "a new socket, a new connect";
    auto reqs = t.requests();
    ASSERT_EQ(reqs.size(), 4u);
    EXPECT_EQ(reqs[2].action, 0u);
    self->send(tracker, stop_request{});

    auto failing = spawn_tracker(sys, config({{silent.url()}}), self);
    EXPECT_FALSE(announce_once(self, failing).result.ok());
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(sockets_connected_to(silent.port()), 0) << "a failed request closes at once";
    self->send(failing, stop_request{});
  }
}

TEST_F(tracker_actor_fixture, a_tracker_given_by_name_is_looked_up_off_the_io_runtime) {
  scripted_udp_tracker t;
  ASSERT_TRUE(t.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto url = "udp://localhost:" + std::to_string(t.port()) + "/announce";
    auto tracker = spawn_tracker(sys, config({{url, "udp://name.invalid:1"}}), self);
    auto r = announce_once(self, tracker);
    if (!r.result.ok() && r.result.error().message.find("localhost: udp tracker: cannot") !=
                            std::string::npos)
      GTEST_SKIP() << "localhost does not resolve to 127.0.0.1 here: "
                   << r.result.error().message;
    ASSERT_TRUE(r.result.ok()) << r.result.error().message;
    EXPECT_EQ(r.url, url);
    self->send(tracker, stop_request{});
  }
}

TEST_F(tracker_actor_fixture, a_name_that_does_not_resolve_fails_over) {
  scripted_udp_tracker live;
  ASSERT_TRUE(live.ok()) << "cannot bind a UDP socket to 127.0.0.1";
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto tracker = spawn_tracker(sys, config({{"udp://name.invalid:1"}, {live.url()}}), self);
    auto r = announce_once(self, tracker);
    ASSERT_TRUE(r.result.ok()) << r.result.error().message;
    EXPECT_EQ(r.url, live.url());
    EXPECT_NE(log.str().find("name.invalid"), std::string::npos) << log.str();
    self->send(tracker, stop_request{});
  }
}

} // namespace
