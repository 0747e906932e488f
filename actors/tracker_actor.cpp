#include "actors/tracker_actor.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include <asio.hpp>
#include <caf/all.hpp>
#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include "actors/announce_schedule.hpp"
#include "actors/messages.hpp"
#include "actors/peer_connection.hpp"
#include "protocol/tracker.hpp"
#include "protocol/udp_tracker.hpp"
#include "storage/disk_pool.hpp"

namespace actorrent {

namespace {

constexpr std::size_t max_reply_size = 4u << 20;

std::size_t collect(char* data, std::size_t size, std::size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  std::size_t len = size * n;
  if (out->size() + len > max_reply_size)
    return 0; // makes curl fail with CURLE_WRITE_ERROR: reply too large
  out->append(data, len);
  return len;
}

int on_progress(void* cancel, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return cancel && static_cast<std::atomic<bool>*>(cancel)->load() ? 1 : 0; // non-zero aborts
}

/// libcurl's global setup, once per process, before the first transfer (not thread-safe
/// itself, so done here on the caller's thread rather than on a pool thread).
void init_curl_once() {
  static const bool ready = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  (void)ready;
}

/// One HTTP GET; returns the body or sets `err`.
std::string http_get(const std::string& url, long timeout_ms, void* cancel, std::string& err) {
  std::string body;
  CURL* curl = curl_easy_init();
  if (!curl) {
    err = "curl_easy_init failed";
    return body;
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms, 5000L));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 3L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "actorrent/0.1");
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, cancel);
  // The multi interface waits in slices of 50 ms, so a cancel ends the transfer within one
  // slice (the progress callback alone may run only once a second while a server is silent).
  CURLcode rc = CURLE_OK;
  CURLM* multi = curl_multi_init();
  curl_multi_add_handle(multi, curl);
  int running = 1;
  while (running) {
    if (curl_multi_perform(multi, &running) != CURLM_OK) {
      rc = CURLE_FAILED_INIT;
      break;
    }
    if (!running)
      break;
    if (cancel && static_cast<std::atomic<bool>*>(cancel)->load()) {
      rc = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    curl_multi_poll(multi, nullptr, 0, 50, nullptr);
  }
  if (!running) {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left))
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == curl)
        rc = msg->data.result;
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_multi_remove_handle(multi, curl);
  curl_multi_cleanup(multi);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK)
    err = rc == CURLE_WRITE_ERROR            ? "reply larger than 4 MiB"
          : rc == CURLE_ABORTED_BY_CALLBACK ? "cancelled"
                                            : curl_easy_strerror(rc);
  else if (status != 200)
    err = "HTTP status " + std::to_string(status);
  return body;
}

/// Announces of every torrent block in libcurl on these threads (a few for the process, not one
/// per torrent); each tracker's announces stay in order on its own queue.
disk_pool& announce_pool() {
  static disk_pool pool{4};
  return pool;
}

bool is_http(const std::string& url) {
  return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
}

bool is_udp(const std::string& url) { return url.rfind("udp://", 0) == 0; }

bool is_farewell(tracker::event ev) {
  return ev == tracker::event::stopped || ev == tracker::event::completed;
}

/// Name lookups (getaddrinfo) under way at once in the whole process; beyond, a UDP tracker
/// given by name fails at once (the announce fails over; the next one looks it up again).
constexpr int max_name_lookups = 8;
std::atomic<int> name_lookups{0};

/// One UDP tracker's socket on the I/O runtime: finds the address, connects (a connected UDP
/// socket takes datagrams from the tracker only, and an ICMP "port unreachable" surfaces as an
/// error), sends what it is given and hands every datagram (or error) to `deliver`. Every socket
/// call runs on the link's strand.
///
/// A numeric host is used as it is. A name is looked up by getaddrinfo on a detached thread of
/// its own (at most max_name_lookups at once): not on asio's one resolver thread, where one slow
/// name would hold up every torrent's lookups and ~io_context would wait for it on exit. The
/// thread touches nothing but `lookup_done`, which messages the announcer (weakly); the
/// announcer hands the addresses back with open(). A lookup never delays the exit, and its wait
/// is bounded by the request's own retransmission timer.
class udp_link : public std::enable_shared_from_this<udp_link> {
public:
  /// `ipv6`: the socket talks IPv6, so announce replies list 18-byte peers.
  using deliver_fn = std::function<void(std::string datagram, std::string error, bool ipv6)>;
  using lookup_fn =
    std::function<void(std::vector<asio::ip::udp::endpoint> addresses, std::string error)>;

  udp_link(asio::io_context& io, std::string host, std::uint16_t port, deliver_fn deliver,
           lookup_fn lookup_done)
    : strand_(asio::make_strand(io)), socket_(strand_), host_(std::move(host)), port_(port),
      deliver_(std::move(deliver)), lookup_done_(std::move(lookup_done)) {}

  void send(std::string packet) {
    asio::post(strand_, [self = shared_from_this(), p = std::move(packet)]() mutable {
      self->send_on_strand(std::move(p));
    });
  }

  /// The addresses of a name looked up (from the announcer).
  void open(std::vector<asio::ip::udp::endpoint> addresses) {
    asio::post(strand_, [self = shared_from_this(), a = std::move(addresses)]() mutable {
      self->resolving_ = false;
      if (!self->closed_ && !self->socket_.is_open())
        self->connect_to(std::move(a));
    });
  }

  void close() {
    asio::post(strand_, [self = shared_from_this()] {
      self->closed_ = true;
      asio::error_code ec;
      self->socket_.close(ec);
    });
  }

private:
  void send_on_strand(std::string packet) {
    if (closed_)
      return;
    if (!socket_.is_open()) {
      // Only the newest request matters: an older one was retransmitted or given up.
      pending_ = std::move(packet);
      if (!resolving_)
        resolve();
      return;
    }
    auto buf = std::make_shared<std::string>(std::move(packet));
    socket_.async_send(asio::buffer(*buf), [self = shared_from_this(), buf](auto ec, std::size_t) {
      if (ec && ec != asio::error::operation_aborted)
        self->deliver_({}, "send: " + ec.message(), self->v6_);
    });
  }

  void resolve() {
    asio::error_code ec;
    auto numeric = asio::ip::make_address(host_, ec);
    if (!ec) {
      connect_to({asio::ip::udp::endpoint(numeric, port_)});
      return;
    }
    if (name_lookups.fetch_add(1) >= max_name_lookups) {
      name_lookups.fetch_sub(1);
      deliver_({}, "cannot resolve " + host_ + ": too many name lookups under way", false);
      return;
    }
    resolving_ = true;
    // threads: a detached thread per lookup; it outlives nothing it uses (copies only).
    std::thread([host = host_, port = port_, done = lookup_done_] {
      asio::io_context local; // a synchronous resolve runs getaddrinfo on this thread
      asio::ip::udp::resolver resolver{local};
      asio::error_code err;
      auto results = resolver.resolve(host, std::to_string(port), err);
      std::vector<asio::ip::udp::endpoint> addresses;
      if (!err)
        for (const auto& entry : results)
          addresses.push_back(entry.endpoint());
      name_lookups.fetch_sub(1);
      done(std::move(addresses), err ? "cannot resolve " + host + ": " + err.message() : "");
    }).detach();
  }

  void connect_to(std::vector<asio::ip::udp::endpoint> addresses) {
    // IPv4 first: a name with both kinds of address is reached the way most trackers are, and
    // IPv6 only when there is nothing else.
    std::stable_partition(addresses.begin(), addresses.end(),
                          [](const auto& e) { return e.address().is_v4(); });
    asio::error_code err;
    for (const auto& endpoint : addresses) {
      err = {};
      socket_.open(endpoint.protocol(), err);
      if (!err)
        socket_.connect(endpoint, err);
      if (!err) {
        v6_ = endpoint.address().is_v6();
        break;
      }
      asio::error_code ignored;
      socket_.close(ignored);
    }
    if (err || !socket_.is_open()) {
      deliver_({}, "cannot open a socket to " + host_ + ": " +
                     (err ? err.message() : std::string("no address")),
               false);
      return;
    }
    receive();
    if (!pending_.empty())
      send_on_strand(std::exchange(pending_, {}));
  }

  void receive() {
    socket_.async_receive(
      asio::buffer(buffer_),
      [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
        if (self->closed_ || ec == asio::error::operation_aborted)
          return;
        if (ec) {
          // ICMP port unreachable (nobody listens there) and the like: the request failed.
          self->deliver_({}, ec.message(), self->v6_);
          if (ec != asio::error::connection_refused && ec != asio::error::host_unreachable &&
              ec != asio::error::network_unreachable) {
            // Any other error (Linux also reports EHOSTDOWN, ENOPROTOOPT, EACCES, EPROTO on a
            // connected UDP socket, and one may repeat at once): the socket is closed and the
            // next send opens a fresh one, so the tracker is never left with no read armed.
            asio::error_code ignored;
            self->socket_.close(ignored);
            return;
          }
          // Those three: the socket stays usable for the next request.
        } else {
          self->deliver_(std::string(self->buffer_.data(), n), {}, self->v6_);
        }
        self->receive();
      });
  }

  asio::strand<asio::io_context::executor_type> strand_;
  asio::ip::udp::socket socket_;
  std::string host_;
  std::uint16_t port_;
  deliver_fn deliver_;
  lookup_fn lookup_done_;
  std::string pending_;
  bool resolving_ = false;
  bool closed_ = false;
  bool v6_ = false;
  // The largest UDP payload: no datagram is cut short, and nothing larger is ever allocated.
  std::array<char, 65536> buffer_{};
};

} // namespace

// The announcer's messages to itself (local, never serialised).
namespace tracker_internal {

struct http_done {
  std::uint64_t attempt = 0;
  std::string body;
  std::string error;
};

struct udp_datagram {
  std::uint64_t link = 0; // which UDP tracker's socket
  std::string bytes;
  std::string error;
  bool ipv6 = false; // the socket talks IPv6 (BEP 15: 18-byte peers)
};

/// The addresses of a UDP tracker's name, looked up off the I/O runtime.
struct udp_resolved {
  std::uint64_t link = 0;
  std::vector<asio::ip::udp::endpoint> addresses;
  std::string error;
};

struct udp_timer {
  std::uint64_t attempt = 0;
  std::uint64_t transmission = 0;
};

/// A UDP tracker's connection id may have expired: its socket is closed unless in use.
struct udp_expire {
  std::uint64_t link = 0;
};

/// A scrape of one tracker ran out of time.
struct scrape_deadline {
  std::size_t tracker = 0;
};

/// Every tracker of a scrape answered or failed: the results, in the order asked.
struct scrape_done {
  std::vector<scrape_result> results;
};

} // namespace tracker_internal
} // namespace actorrent

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::tracker_internal::http_done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::tracker_internal::udp_datagram)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::tracker_internal::udp_timer)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::tracker_internal::udp_expire)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::tracker_internal::udp_resolved)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::tracker_internal::scrape_deadline)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::tracker_internal::scrape_done)

namespace actorrent {

namespace {

using namespace tracker_internal;
using steady = std::chrono::steady_clock;

/// One UDP tracker as the announcer knows it across announces: its socket and the connection
/// id it gave (BEP 15: valid for a minute).
struct udp_tracker_state {
  std::uint64_t id = 0;
  std::shared_ptr<udp_link> link;
  std::optional<std::uint64_t> connection_id;
  steady::time_point connected_at{};
  /// Datagrams sent to the actor and not yet handled (the I/O thread adds, the actor takes).
  std::shared_ptr<std::atomic<int>> unread = std::make_shared<std::atomic<int>>(0);
};

constexpr int max_unread_datagrams = 16;

/// A UDP tracker's socket whose datagrams (and name lookups) come to `self` as udp_datagram
/// (and udp_resolved) tagged `link_id`.
std::shared_ptr<udp_link> make_udp_link(caf::event_based_actor* self, io_runtime& runtime,
                                        const udp_tracker::tracker_address& addr,
                                        std::uint64_t link_id,
                                        std::shared_ptr<std::atomic<int>> unread) {
  caf::weak_actor_ptr me = self->ctrl();
  auto& io = *static_cast<asio::io_context*>(runtime.native());
  // threads: runs on an I/O thread; the actor is reached by message (weakly: the link must
  // not keep its owner alive).
  // A tracker flooding us cannot fill the mailbox: datagrams beyond a few not yet handled
  // are dropped at the socket (UDP may lose them anyway).
  return std::make_shared<udp_link>(
    io, addr.host, addr.port,
    [me, link_id, unread](std::string bytes, std::string err, bool v6) {
      if (unread->fetch_add(1) >= max_unread_datagrams) {
        unread->fetch_sub(1);
        return;
      }
      if (auto strong = caf::actor_cast<caf::actor>(me))
        caf::anon_send(strong, udp_datagram{link_id, std::move(bytes), std::move(err), v6});
    },
    [me, link_id](std::vector<asio::ip::udp::endpoint> addresses, std::string err) {
      if (auto strong = caf::actor_cast<caf::actor>(me))
        caf::anon_send(strong, udp_resolved{link_id, std::move(addresses), std::move(err)});
    });
}

/// Everything the announcer owns; touched only by its actor.
struct announcer {
  tracker_config conf;
  tracker_tiers tiers;
  caf::actor torrent;
  std::shared_ptr<spdlog::logger> log;
  std::mt19937 rng{std::random_device{}()};
  std::uint32_t key = 0; // BEP 15 key: the same for every announce of this torrent
  std::shared_ptr<disk_pool::queue> pool_queue = announce_pool().make_queue(); // HTTP, in order

  std::deque<announce> queue;
  bool stop_requested = false;

  // The announce under way.
  bool busy = false;
  announce req;
  std::optional<tracker_tiers::position> pos;
  std::string errors;
  std::size_t failures = 0; // trackers failed during this announce (errors lists the first few)
  std::uint64_t attempt = 0; // identifies the tracker being tried: late replies are dropped

  // UDP request under way (for the tracker at `pos` when it is a UDP one).
  udp_tracker_state* udp = nullptr;
  bool connecting = false;
  std::uint32_t transaction = 0;
  std::string packet;
  std::uint32_t transmissions = 0;
  std::uint64_t transmission_id = 0;
  std::uint32_t ignored = 0; // datagrams of other transactions during this request

  std::map<std::string, udp_tracker_state> udp_trackers;
  std::uint64_t next_link_id = 0;

  announcer(tracker_config c, caf::actor t)
    : conf(std::move(c)),
      tiers(conf.tiers, conf.shuffle_seed ? conf.shuffle_seed : std::random_device{}()),
      torrent(std::move(t)), log(spdlog::get("tracker")) {
    key = rng();
  }
};

void start_next(caf::event_based_actor* self, announcer& st);
void try_tracker(caf::event_based_actor* self, announcer& st);

tracker::announce_request http_request(const announcer& st, const std::string& url) {
  tracker::announce_request ar;
  ar.url = url;
  ar.hash = st.conf.hash;
  ar.id = st.conf.id;
  ar.port = st.conf.listen_port;
  ar.uploaded = st.req.uploaded;
  ar.downloaded = st.req.downloaded;
  ar.left = st.req.left;
  ar.ev = st.req.ev;
  return ar;
}

/// The torrent stops or the announcer was asked to quit: only farewells still go out, briefly.
bool shutting_down(const announcer& st) {
  return st.stop_requested || st.conf.cancel->load();
}

/// The current tracker answered: it moves to the front of its tier and the torrent gets peers.
void answered(caf::event_based_actor* self, announcer& st, announce_result res) {
  res.url = st.tiers.url(*st.pos);
  st.log->debug("{}: {} peers, interval {} s", printable(res.url), res.peers.size(),
                res.interval);
  st.tiers.answered(*st.pos); // BEP 12
  caf::anon_send(st.torrent, std::move(res));
  start_next(self, st);
}

/// Failures listed in an announce's error (and warned about); the rest are only counted, so a
/// torrent listing many dead trackers cannot grow the message or flood the log.
constexpr std::size_t max_listed_failures = 10;

/// Records the failure of the tracker at `pos` and moves on to the next one to try (none: the
/// announce has failed).
void record_failure(announcer& st, const std::string& err) {
  const auto& url = st.tiers.url(*st.pos);
  // Tracker text is untrusted: it reaches logs and the terminal escaped.
  if (++st.failures <= max_listed_failures) {
    st.log->warn("announce to {} failed: {}", printable(url), printable(err));
    st.errors += (st.errors.empty() ? "" : "; ") + printable(url) + ": " + printable(err);
  } else {
    st.log->debug("announce to {} failed: {}", printable(url), printable(err));
  }
  // On the way out a farewell gets one tracker: failing over through every tracker of every
  // tier would hold up the exit by a short wait per tracker.
  st.pos = shutting_down(st) ? std::nullopt : st.tiers.next(*st.pos);
}

/// The current tracker failed: the next one is tried.
void tracker_failed(caf::event_based_actor* self, announcer& st, const std::string& err) {
  if (st.conf.cancel->load() && !is_farewell(st.req.ev)) {
    // We are shutting down and cut the announce short ourselves: not a tracker fault.
    st.log->debug("announce to {} cancelled", printable(st.tiers.url(*st.pos)));
    start_next(self, st);
    return;
  }
  record_failure(st, err);
  try_tracker(self, st);
}

// -- HTTP -----------------------------------------------------------------------------------

void try_http(caf::event_based_actor* self, announcer& st, const std::string& url) {
  // A "stopped" announce happens on the way out: it must not hold up the exit. A "completed"
  // one may be under way when the run ends: a short timeout too.
  long timeout = st.req.ev == tracker::event::stopped     ? 500L
                 : st.req.ev == tracker::event::completed ? std::min(2000L, st.conf.timeout_ms)
                                                          : st.conf.timeout_ms;
  // A stop cancels routine announces; "completed" (trackers count completions) and "stopped"
  // still go out, each with its short timeout.
  auto* cancel = is_farewell(st.req.ev) ? nullptr : st.conf.cancel.get();
  auto full_url = tracker::build_announce_url(http_request(st, url));
  auto me = caf::actor_cast<caf::actor>(self);
  auto attempt = st.attempt;
  auto cancel_owner = st.conf.cancel; // keeps the flag alive while the job runs
  // threads: the GET runs on the announce pool; its result comes back as a message.
  announce_pool().post(st.pool_queue, disk_pool::job_class::io,
                       [me, attempt, full_url, timeout, cancel, cancel_owner] {
                         http_done done{attempt, {}, {}};
                         done.body = http_get(full_url, timeout, cancel, done.error);
                         caf::anon_send(me, std::move(done));
                       });
}

void on_http_done(caf::event_based_actor* self, announcer& st, http_done& d) {
  if (!st.busy || d.attempt != st.attempt)
    return;
  if (!d.error.empty()) {
    tracker_failed(self, st, d.error);
    return;
  }
  auto parsed = tracker::parse_announce_response(d.body);
  if (!parsed) {
    tracker_failed(self, st, parsed.error().message);
    return;
  }
  announce_result res;
  res.interval = parsed->interval;
  res.min_interval = parsed->min_interval;
  for (auto& p : parsed->peers)
    res.peers.push_back(endpoint{p.ip, p.port});
  answered(self, st, std::move(res));
}

// -- UDP (BEP 15) ---------------------------------------------------------------------------

/// BEP 15's base wait (15 s), shorter for the farewells on the way out: they must not hold up
/// the exit. A routine 'completed' (or a pause's 'stopped') waits as long as any announce.
std::chrono::milliseconds udp_base(const announcer& st) {
  auto base = std::chrono::milliseconds(st.conf.udp_timeout_ms);
  if (!shutting_down(st))
    return base;
  if (st.req.ev == tracker::event::stopped)
    base = std::min(base, std::chrono::milliseconds(500));
  else if (st.req.ev == tracker::event::completed)
    base = std::min(base, std::chrono::milliseconds(2000));
  return base;
}

/// The wait for transmission n of the current request: base * 2^n.
std::chrono::milliseconds udp_wait(const announcer& st) {
  return udp_tracker::retransmit_timeout(udp_base(st), st.transmissions);
}

std::uint32_t udp_max_transmissions(const announcer& st) {
  // One lost datagram must not lose a 'completed' for good (it is sent once per torrent): only
  // on the way out does a farewell get a single try.
  if (is_farewell(st.req.ev) && shutting_down(st))
    return 1;
  return std::clamp<std::uint32_t>(st.conf.udp_attempts, 1,
                                   udp_tracker::max_retransmit_exponent + 1);
}

std::chrono::milliseconds connection_lifetime(const announcer& st) {
  auto configured = std::chrono::milliseconds(st.conf.udp_connection_lifetime_ms);
  return std::min<std::chrono::milliseconds>(udp_tracker::connection_id_lifetime, configured);
}

void udp_transmit(caf::event_based_actor* self, announcer& st) {
  st.udp->link->send(st.packet);
  st.transmission_id++;
  self->delayed_send(self, udp_wait(st), udp_timer{st.attempt, st.transmission_id});
}

void udp_send_request(caf::event_based_actor* self, announcer& st) {
  // The count of tries (and the exponent of the wait) is not reset here: it spans the whole
  // attempt at this tracker, connects and announces alike, so a tracker that answers connects
  // but ignores announces (each retry finding the id expired and connecting afresh) still runs
  // out of tries and the announce fails over.
  st.transaction = st.rng();
  st.ignored = 0;
  auto& u = *st.udp;
  bool valid = u.connection_id &&
               steady::now() - u.connected_at < connection_lifetime(st);
  st.connecting = !valid;
  if (st.connecting) {
    u.connection_id.reset();
    st.packet = udp_tracker::encode_connect(st.transaction);
  } else {
    udp_tracker::announce_params p;
    p.hash = st.conf.hash;
    p.id = st.conf.id;
    p.downloaded = st.req.downloaded;
    p.left = st.req.left;
    p.uploaded = st.req.uploaded;
    p.ev = st.req.ev;
    p.key = st.key;
    p.num_want = st.req.ev == tracker::event::stopped ? 0 : 50;
    p.port = st.conf.listen_port;
    st.packet = udp_tracker::encode_announce(*u.connection_id, st.transaction, p);
  }
  udp_transmit(self, st);
}

/// Starts the UDP request; returns why it cannot (the caller moves on: no recursion, however
/// many such trackers a torrent lists).
std::optional<std::string> try_udp(caf::event_based_actor* self, announcer& st,
                                   const std::string& url) {
  auto addr = udp_tracker::parse_url(url);
  if (!addr)
    return addr.error().message;
  if (st.conf.io == nullptr)
    return std::string("udp tracker: no I/O runtime for UDP sockets");
  auto& u = st.udp_trackers[url];
  if (!u.link) {
    u.id = ++st.next_link_id;
    // A fresh count for a fresh socket: datagrams of a closed one are never matched to it.
    u.unread = std::make_shared<std::atomic<int>>(0);
    u.link = make_udp_link(self, *st.conf.io, *addr, u.id, u.unread);
  }
  st.udp = &u;
  st.transmissions = 0; // one budget of tries per tracker attempt
  udp_send_request(self, st);
  return std::nullopt;
}

/// BEP 15: a datagram for another transaction (a late answer to an earlier request, or junk)
/// is ignored; the request waits on for its own answer. Warned once per request: a flood must
/// not flood the log.
void log_ignored(announcer& st, const std::string& why) {
  auto level = st.ignored++ == 0 ? spdlog::level::warn : spdlog::level::debug;
  st.log->log(level, "{}: ignored: {}", printable(st.tiers.url(*st.pos)), why);
}

bool udp_current(announcer& st, std::uint64_t link) {
  return st.busy && st.udp != nullptr && st.udp->id == link;
}

void on_udp_datagram(caf::event_based_actor* self, announcer& st, udp_datagram& d) {
  for (auto& [url, u] : st.udp_trackers)
    if (u.id == d.link)
      u.unread->fetch_sub(1);
  if (!udp_current(st, d.link)) {
    st.log->debug("udp tracker: datagram of {} bytes with no request waiting: ignored",
                  d.bytes.size());
    return;
  }
  if (!d.error.empty()) {
    // The link may have closed its socket: the next request connects afresh from a new port.
    st.udp->connection_id.reset();
    tracker_failed(self, st, "udp tracker: " + d.error);
    return;
  }
  // A datagram of another transaction is told apart once, here; the parsers below then fail
  // only on a bad answer to this request.
  if (auto other = udp_tracker::other_transaction(d.bytes, st.transaction)) {
    log_ignored(st, *other);
    return;
  }
  if (st.connecting) {
    auto r = udp_tracker::parse_connect(d.bytes, st.transaction);
    if (!r) {
      tracker_failed(self, st, r.error().message);
      return;
    }
    st.udp->connection_id = r->connection_id;
    st.udp->connected_at = steady::now();
    udp_send_request(self, st); // now the announce
    return;
  }
  auto r = udp_tracker::parse_announce(d.bytes, st.transaction, udp_tracker::default_max_peers,
                                       d.ipv6);
  if (!r) {
    // The tracker may have refused our connection id: the next announce connects afresh.
    st.udp->connection_id.reset();
    tracker_failed(self, st, r.error().message);
    return;
  }
  if (r->dropped_peers > 0)
    st.log->warn("{}: kept {} peers of {} listed", printable(st.tiers.url(*st.pos)),
                 r->peers.size(), r->peers.size() + r->dropped_peers);
  announce_result res;
  res.interval = r->interval;
  // BEP 15 has no min interval: without one a torrent with no peers would re-announce every
  // 15 s (announce_schedule's floor). Its interval, at most 5 minutes, stands in for it.
  res.min_interval = std::min<std::uint32_t>(r->interval, 300);
  for (auto& p : r->peers)
    res.peers.push_back(endpoint{p.ip, p.port});
  answered(self, st, std::move(res));
}

void on_udp_timer(caf::event_based_actor* self, announcer& st, const udp_timer& t) {
  if (!st.busy || t.attempt != st.attempt || t.transmission != st.transmission_id ||
      st.udp == nullptr)
    return;
  if (++st.transmissions >= udp_max_transmissions(st)) {
    auto waited = std::chrono::milliseconds(0);
    for (std::uint32_t n = 0; n < st.transmissions; ++n)
      waited += udp_tracker::retransmit_timeout(udp_base(st), n);
    tracker_failed(self, st,
                   std::string("udp tracker: no answer to the ") +
                     (st.connecting ? "connect" : "announce") + " request after " +
                     std::to_string(st.transmissions) + " tries (" +
                     std::to_string(waited.count()) + " ms)");
    return;
  }
  // BEP 15: a connection id expires after a minute; a retransmitted announce would be refused.
  if (!st.connecting &&
      steady::now() - st.udp->connected_at >= connection_lifetime(st)) {
    udp_send_request(self, st); // connects afresh (the count of tries goes on)
    return;
  }
  udp_transmit(self, st);
}

/// Closes a UDP tracker's socket (the next request opens another and connects afresh).
void close_link(udp_tracker_state& u) {
  if (u.link)
    u.link->close();
  u.link.reset();
  u.connection_id.reset();
}

/// The UDP request under way ended. Its socket stays open only while the connection id may be
/// reused, then closes: with many torrents and trackers, sockets kept for good would take the
/// file descriptors peers need (re-announces are minutes apart, an id lives a minute).
void release_udp(caf::event_based_actor* self, announcer& st) {
  if (st.udp == nullptr)
    return;
  auto& u = *std::exchange(st.udp, nullptr);
  auto left = u.connection_id ? connection_lifetime(st) - std::chrono::duration_cast<
                                                            std::chrono::milliseconds>(
                                                            steady::now() - u.connected_at)
                              : std::chrono::milliseconds(0);
  if (left <= std::chrono::milliseconds(0))
    close_link(u);
  else
    self->delayed_send(self, left, udp_expire{u.id});
}

void on_udp_resolved(caf::event_based_actor* self, announcer& st, udp_resolved& r) {
  for (auto& [url, u] : st.udp_trackers) {
    if (u.id != r.link || !u.link)
      continue; // a link closed since: its lookup is of no use
    if (r.error.empty()) {
      u.link->open(std::move(r.addresses));
      return;
    }
    close_link(u); // the next request looks the name up again
    if (udp_current(st, r.link))
      tracker_failed(self, st, "udp tracker: " + r.error);
    return;
  }
}

void on_udp_expire(announcer& st, const udp_expire& e) {
  if (udp_current(st, e.link))
    return; // in use: released again when its request ends
  for (auto& [url, u] : st.udp_trackers)
    if (u.id == e.link && u.link &&
        (!u.connection_id || steady::now() - u.connected_at >= connection_lifetime(st)))
      close_link(u);
}

// -- the announce loop ----------------------------------------------------------------------

void try_tracker(caf::event_based_actor* self, announcer& st) {
  release_udp(self, st);
  ++st.attempt;
  while (st.pos) {
    const auto& url = st.tiers.url(*st.pos);
    if (is_http(url)) {
      try_http(self, st, url);
      return;
    }
    if (is_udp(url)) {
      if (auto err = try_udp(self, st, url)) {
        record_failure(st, *err);
        continue;
      }
      return;
    }
    st.log->debug("skipping unsupported tracker {}", printable(url));
    st.pos = st.tiers.next(*st.pos);
  }
  // Every tracker failed (or none is usable): the torrent retries later.
  if (st.failures > max_listed_failures)
    st.errors += "; and " + std::to_string(st.failures - max_listed_failures) + " more";
  announce_result res;
  res.result = error{st.errors.empty() ? errc::invalid_argument : errc::tracker_failure,
                     st.errors.empty() ? "no usable tracker" : st.errors};
  caf::anon_send(st.torrent, std::move(res));
  start_next(self, st);
}

void start_next(caf::event_based_actor* self, announcer& st) {
  st.busy = false;
  release_udp(self, st);
  ++st.attempt; // whatever still answers the last attempt is stale
  while (!st.queue.empty()) {
    st.req = st.queue.front();
    st.queue.pop_front();
    // A stop cancels routine announces; the farewells still go out.
    if ((st.conf.cancel->load() || st.stop_requested) && !is_farewell(st.req.ev))
      continue;
    st.busy = true;
    st.errors.clear();
    st.failures = 0;
    st.pos = st.tiers.first();
    try_tracker(self, st);
    return;
  }
  if (st.stop_requested)
    self->quit();
}

} // namespace

caf::actor spawn_tracker(caf::actor_system& sys, tracker_config cfg, const caf::actor& torrent) {
  init_curl_once();
  return sys.spawn([cfg = std::move(cfg), torrent](caf::event_based_actor* self) -> caf::behavior {
    self->set_default_handler(caf::drop);
    auto st = std::make_shared<announcer>(cfg, torrent);
    self->attach_functor([st] {
      for (auto& [url, u] : st->udp_trackers)
        if (u.link)
          u.link->close();
    });
    return {
      [=](const announce& req) {
        st->queue.push_back(req);
        if (!st->busy)
          start_next(self, *st);
      },
      [=](http_done& d) { on_http_done(self, *st, d); },
      [=](udp_datagram& d) { on_udp_datagram(self, *st, d); },
      [=](const udp_timer& t) { on_udp_timer(self, *st, t); },
      [=](const udp_expire& e) { on_udp_expire(*st, e); },
      [=](udp_resolved& r) { on_udp_resolved(self, *st, r); },
      // Announces already queued still go out (a "stopped" one on the way out among them); a
      // routine one under way is dropped at once (the torrent's cancel flag cuts an HTTP one
      // short), then the actor quits.
      [=](stop_request) {
        st->stop_requested = true;
        if (st->busy && !is_farewell(st->req.ev))
          start_next(self, *st);
        else if (st->busy && st->udp != nullptr) {
          // A farewell sent before the stop waits as long as a routine announce: from now on
          // it gets one short wait (udp_base), then fails without failing over.
          st->transmissions = 0;
          st->transmission_id++;
          self->delayed_send(self, udp_wait(*st), udp_timer{st->attempt, st->transmission_id});
        }
        else if (!st->busy)
          self->quit();
      },
    };
  });
}

// -- scrape (BEP 48 over HTTP, BEP 15 over UDP) ---------------------------------------------

namespace {

/// One tracker being scraped. Over UDP: connect, then scrape, each retransmitted after
/// base * 2^n (the announcer's schedule, base = a third of the timeout) until the deadline.
struct scrape_job {
  std::string url;
  scrape_result result;
  bool done = false;
  std::shared_ptr<udp_link> link;
  std::shared_ptr<std::atomic<int>> unread = std::make_shared<std::atomic<int>>(0);
  bool connecting = true;
  std::uint64_t connection_id = 0;
  std::uint32_t transaction = 0;
  std::string packet;
  std::uint32_t transmissions = 0;  // retransmissions so far (the exponent of the next wait)
  std::uint64_t transmission_id = 0;
};

/// Everything a scrape owns; touched only by its actor.
struct scraper {
  scrape_config conf;
  caf::actor reply_to;
  std::vector<scrape_job> jobs;
  std::size_t left = 0;
  std::mt19937 rng{std::random_device{}()};
  /// Set when the scrape ends: an HTTP request still running on the pool stops at once.
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
};

std::chrono::milliseconds scrape_udp_base(const scraper& sc) {
  return std::chrono::milliseconds(std::max(1L, sc.conf.timeout_ms / 3));
}

void finish_job(caf::event_based_actor* self, scraper& sc, std::size_t i, std::string err) {
  auto& job = sc.jobs[i];
  if (job.done)
    return;
  job.done = true;
  job.result.ok = err.empty();
  job.result.error = printable(err); // tracker text is untrusted: it reaches the terminal
  if (job.link)
    job.link->close();
  job.link.reset();
  if (--sc.left > 0)
    return;
  sc.cancel->store(true);
  scrape_done d;
  for (auto& j : sc.jobs)
    d.results.push_back(std::move(j.result));
  caf::anon_send(sc.reply_to, std::move(d));
  self->quit();
}

void scrape_udp_send(caf::event_based_actor* self, scraper& sc, std::size_t i) {
  auto& job = sc.jobs[i];
  job.transaction = sc.rng();
  job.packet = job.connecting
                 ? udp_tracker::encode_connect(job.transaction)
                 : udp_tracker::encode_scrape(job.connection_id, job.transaction, {sc.conf.hash});
  job.link->send(job.packet);
  ++job.transmission_id;
  self->delayed_send(self, udp_tracker::retransmit_timeout(scrape_udp_base(sc), job.transmissions),
                     udp_timer{i, job.transmission_id});
}

void start_job(caf::event_based_actor* self, scraper& sc, std::size_t i) {
  auto& job = sc.jobs[i];
  const std::string& url = job.url;
  if (is_http(url)) {
    auto scrape_url = tracker::build_scrape_url(url, sc.conf.hash);
    if (!scrape_url) {
      finish_job(self, sc, i, scrape_url.error().message);
      return;
    }
    auto me = caf::actor_cast<caf::actor>(self);
    auto timeout = sc.conf.timeout_ms;
    auto cancel = sc.cancel;
    // threads: the GET runs on the announce pool (one queue per tracker: they run side by
    // side); its result comes back as a message.
    announce_pool().post(announce_pool().make_queue(), disk_pool::job_class::io,
                         [me, i, full_url = *scrape_url, timeout, cancel] {
                           http_done done{i, {}, {}};
                           done.body = http_get(full_url, timeout, cancel.get(), done.error);
                           caf::anon_send(me, std::move(done));
                         });
    return;
  }
  if (!is_udp(url)) {
    finish_job(self, sc, i, "unsupported tracker URL (http://, https:// or udp:// expected)");
    return;
  }
  auto addr = udp_tracker::parse_url(url);
  if (!addr) {
    finish_job(self, sc, i, addr.error().message);
    return;
  }
  if (sc.conf.io == nullptr) {
    finish_job(self, sc, i, "udp tracker: no I/O runtime for UDP sockets");
    return;
  }
  job.link = make_udp_link(self, *sc.conf.io, *addr, i, job.unread);
  self->delayed_send(self, std::chrono::milliseconds(sc.conf.timeout_ms), scrape_deadline{i});
  scrape_udp_send(self, sc, i);
}

void on_scrape_http(caf::event_based_actor* self, scraper& sc, http_done& d) {
  if (d.attempt >= sc.jobs.size())
    return;
  auto i = static_cast<std::size_t>(d.attempt);
  if (!d.error.empty()) {
    finish_job(self, sc, i, d.error);
    return;
  }
  auto r = tracker::parse_scrape_response(d.body, sc.conf.hash);
  if (!r) {
    finish_job(self, sc, i,
               (r.error().code == errc::tracker_failure ? "tracker failure: " : "") +
                 r.error().message);
    return;
  }
  auto& res = sc.jobs[i].result;
  res.seeders = r->complete;
  res.leechers = r->incomplete;
  res.completed = r->downloaded;
  finish_job(self, sc, i, {});
}

void on_scrape_datagram(caf::event_based_actor* self, scraper& sc, udp_datagram& d) {
  if (d.link >= sc.jobs.size())
    return;
  auto i = static_cast<std::size_t>(d.link);
  auto& job = sc.jobs[i];
  job.unread->fetch_sub(1);
  if (job.done)
    return;
  if (!d.error.empty()) {
    finish_job(self, sc, i, "udp tracker: " + d.error);
    return;
  }
  if (udp_tracker::other_transaction(d.bytes, job.transaction))
    return; // BEP 15: a late answer to an earlier request, or junk: wait on
  if (job.connecting) {
    auto r = udp_tracker::parse_connect(d.bytes, job.transaction);
    if (!r) {
      finish_job(self, sc, i, r.error().message);
      return;
    }
    job.connecting = false;
    job.connection_id = r->connection_id;
    scrape_udp_send(self, sc, i);
    return;
  }
  auto r = udp_tracker::parse_scrape(d.bytes, job.transaction, 1);
  if (!r) {
    finish_job(self, sc, i, r.error().message);
    return;
  }
  job.result.seeders = r->front().seeders;
  job.result.leechers = r->front().leechers;
  job.result.completed = r->front().completed;
  finish_job(self, sc, i, {});
}

void on_scrape_timer(caf::event_based_actor* self, scraper& sc, const udp_timer& t) {
  if (t.attempt >= sc.jobs.size())
    return;
  auto& job = sc.jobs[static_cast<std::size_t>(t.attempt)];
  if (job.done || t.transmission != job.transmission_id)
    return;
  ++job.transmissions;
  scrape_udp_send(self, sc, static_cast<std::size_t>(t.attempt)); // the same request, afresh
}

void on_scrape_deadline(caf::event_based_actor* self, scraper& sc, const scrape_deadline& d) {
  if (d.tracker >= sc.jobs.size() || sc.jobs[d.tracker].done)
    return;
  auto& job = sc.jobs[d.tracker];
  finish_job(self, sc, d.tracker,
             std::string("udp tracker: no answer to the ") +
               (job.connecting ? "connect" : "scrape") + " request within " +
               std::to_string(sc.conf.timeout_ms) + " ms (" +
               std::to_string(job.transmissions + 1) + " tries)");
}

} // namespace

std::vector<scrape_result> scrape_trackers(caf::actor_system& sys, const scrape_config& cfg) {
  init_curl_once();
  if (cfg.urls.empty())
    return {};
  caf::scoped_actor requester{sys};
  auto worker = sys.spawn([cfg, reply_to = caf::actor{requester}](
                            caf::event_based_actor* self) -> caf::behavior {
    self->set_default_handler(caf::drop);
    auto sc = std::make_shared<scraper>();
    sc->conf = cfg;
    sc->reply_to = reply_to;
    for (auto& url : cfg.urls) {
      scrape_job job;
      job.url = url;
      job.result.url = url;
      sc->jobs.push_back(std::move(job));
    }
    sc->left = sc->jobs.size();
    self->attach_functor([sc] {
      sc->cancel->store(true);
      for (auto& job : sc->jobs)
        if (job.link)
          job.link->close();
    });
    for (std::size_t i = 0; i < sc->jobs.size(); ++i)
      start_job(self, *sc, i);
    return {
      [=](http_done& d) { on_scrape_http(self, *sc, d); },
      [=](udp_datagram& d) { on_scrape_datagram(self, *sc, d); },
      [=](udp_resolved& r) {
        if (r.link >= sc->jobs.size() || !sc->jobs[r.link].link)
          return;
        if (r.error.empty())
          sc->jobs[r.link].link->open(std::move(r.addresses));
        else
          finish_job(self, *sc, static_cast<std::size_t>(r.link), "udp tracker: " + r.error);
      },
      [=](const udp_timer& t) { on_scrape_timer(self, *sc, t); },
      [=](const scrape_deadline& d) { on_scrape_deadline(self, *sc, d); },
    };
  });
  std::vector<scrape_result> results;
  // Every tracker ends by its own timeout (curl's, or the UDP deadline); HTTP requests beyond
  // the pool's threads wait their turn, so the whole scrape is given a turn per pool thread.
  const auto limit = std::chrono::milliseconds(cfg.timeout_ms) *
                       static_cast<long>(1 + cfg.urls.size()) + std::chrono::seconds(5);
  requester->receive([&](scrape_done& d) { results = std::move(d.results); },
                     caf::after(limit) >> [&] {
                       caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
                       for (auto& url : cfg.urls) {
                         scrape_result r;
                         r.url = url;
                         r.error = "no result in time";
                         results.push_back(std::move(r));
                       }
                     });
  return results;
}

} // namespace actorrent
