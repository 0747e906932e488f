#include "actors/dht_actor.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>

#include <asio.hpp>
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/dht_lookup.hpp"
#include "actors/dht_peer_store.hpp"
#include "actors/dht_routing_table.hpp"
#include "actors/dht_tokens.hpp"
#include "actors/messages.hpp"
#include "actors/peer_connection.hpp"
#include "protocol/bencode.hpp"
#include "protocol/krpc.hpp"
#include "storage/atomic_file.hpp"

namespace actorrent::dht_detail {

using krpc::udp_endpoint;

/// One datagram read by the socket, for the actor.
struct datagram {
  std::string bytes;
  udp_endpoint from;
};
/// Bootstrap names resolved on the I/O runtime.
struct resolved {
  std::string name;
  std::vector<udp_endpoint> endpoints;
};

} // namespace actorrent::dht_detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::dht_detail::datagram)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::dht_detail::resolved)

namespace actorrent {

namespace {

using dht::clock_type;
using dht_detail::datagram;
using dht_detail::resolved;
using krpc::node_id;
using krpc::node_info;
using krpc::udp_endpoint;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::size_t max_waiting_datagrams = 512; // read but not yet handled by the actor
constexpr std::size_t max_pending_queries = 1024;  // sent, waiting for an answer
constexpr std::size_t max_out_queue = 256;         // waiting for the query rate
constexpr std::size_t max_inbound_ips = 4096;      // per-IP counters kept for one second
constexpr auto lookup_deadline = seconds(60);      // a lookup running longer is ended
constexpr auto offender_block = seconds(10);       // an IP far over its query rate is ignored

udp_endpoint from_asio(const asio::ip::udp::endpoint& ep) {
  udp_endpoint out;
  auto v4 = ep.address().is_v4() ? ep.address().to_v4()
                                  : asio::ip::make_address_v4(asio::ip::v4_mapped,
                                                              ep.address().to_v6());
  out.ip = v4.to_bytes();
  out.port = ep.port();
  return out;
}

asio::ip::udp::endpoint to_asio(const udp_endpoint& ep) {
  return asio::ip::udp::endpoint(asio::ip::address_v4(ep.ip), ep.port);
}

/// The DHT's UDP socket. Reads run on the I/O runtime and post each datagram to the actor;
/// sends are posted to the socket's strand from the actor. Thread-safe.
class dht_socket : public std::enable_shared_from_this<dht_socket> {
public:
  explicit dht_socket(asio::io_context& io) : strand_(asio::make_strand(io)), sock_(strand_) {}

  bool open(const std::string& host, std::uint16_t port, std::string& err) {
    asio::error_code ec;
    auto addr = asio::ip::make_address(host == "::" ? "0.0.0.0" : host == "::1" ? "127.0.0.1"
                                                                               : host, ec);
    if (ec || !addr.is_v4()) {
      err = "DHT: " + host + " is not an IPv4 address";
      return false;
    }
    sock_.open(asio::ip::udp::v4(), ec);
    if (!ec)
      sock_.bind(asio::ip::udp::endpoint(addr, port), ec);
    if (ec && port != 0) {
      // The TCP port's number is taken for UDP: any port will do (peers learn it from us).
      fallback_reason_ = ec.message();
      asio::error_code ignored;
      sock_.close(ignored);
      ec.clear();
      sock_.open(asio::ip::udp::v4(), ec);
      if (!ec)
        sock_.bind(asio::ip::udp::endpoint(addr, 0), ec);
    }
    if (!ec)
      sock_.non_blocking(true, ec);
    if (ec) {
      err = "DHT: cannot bind UDP " + host + ":" + std::to_string(port) + ": " + ec.message();
      return false;
    }
    port_ = sock_.local_endpoint(ec).port();
    return true;
  }

  std::uint16_t port() const { return port_; }
  /// Why the port asked for could not be bound (empty: it was, or any port was asked for).
  const std::string& fallback_reason() const { return fallback_reason_; }

  void start(caf::actor owner) {
    owner_ = caf::actor_cast<caf::weak_actor_ptr>(owner);
    asio::post(strand_, [self = shared_from_this()] { self->receive(); });
  }

  void send(std::string bytes, const udp_endpoint& to) {
    asio::post(strand_, [self = shared_from_this(), bytes = std::move(bytes), to] {
      if (!self->sock_.is_open())
        return;
      asio::error_code ec; // UDP: a full buffer or an unreachable address loses the datagram
      self->sock_.send_to(asio::buffer(bytes), to_asio(to), 0, ec);
    });
  }

  void close() {
    asio::post(strand_, [self = shared_from_this()] {
      asio::error_code ec;
      self->sock_.close(ec);
    });
  }

  /// The actor handled one datagram.
  void handled() { waiting_.fetch_sub(1, std::memory_order_relaxed); }

private:
  void receive() {
    sock_.async_receive_from(
      asio::buffer(buf_), from_,
      [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
        if (ec == asio::error::operation_aborted || !self->sock_.is_open())
          return;
        auto owner = caf::actor_cast<caf::actor>(self->owner_);
        if (!owner)
          return;
        // ICMP errors of an earlier send (port unreachable and the like) leave the socket
        // usable; any other error would come back at once on every read, so the socket is
        // closed rather than read again in a busy loop.
        if (ec && ec != asio::error::connection_refused && ec != asio::error::host_unreachable &&
            ec != asio::error::network_unreachable && ec != asio::error::connection_reset &&
            ec != asio::error::message_size && ec != asio::error::would_block) {
          asio::error_code ignored;
          self->sock_.close(ignored);
          return;
        }
        // Backpressure without memory growth: datagrams the actor has not caught up with
        // are dropped (UDP may lose them anyway).
        if (!ec && self->waiting_.load(std::memory_order_relaxed) < max_waiting_datagrams &&
            self->from_.address().is_v4()) {
          self->waiting_.fetch_add(1, std::memory_order_relaxed);
          caf::anon_send(owner, datagram{std::string(self->buf_.data(), n),
                                         from_asio(self->from_)});
        }
        self->receive();
      });
  }

  asio::strand<asio::io_context::executor_type> strand_;
  asio::ip::udp::socket sock_;
  // One byte more than krpc::limits::max_packet: a longer datagram arrives cut and is refused
  // as oversized by the decoder.
  std::array<char, 8 * 1024 + 1> buf_{};
  asio::ip::udp::endpoint from_;
  caf::weak_actor_ptr owner_;
  std::atomic<std::size_t> waiting_{0};
  std::uint16_t port_ = 0;
  std::string fallback_reason_;
};

struct pending_query {
  udp_endpoint ep;
  krpc::method m = krpc::method::ping;
  std::uint64_t lookup = 0; // 0: none
  std::optional<node_id> id;
  clock_type::time_point sent; // valid once it left the out queue
  bool queued = true;          // still waiting for the query rate: no timeout runs yet
};

/// A query waiting for the query rate.
struct queued_query {
  std::string bytes;
  udp_endpoint to;
  std::uint16_t tid = 0;
};

struct running_lookup {
  std::unique_ptr<dht::lookup> lk;
  bool get_peers = false;
  std::set<udp_endpoint> peers_told; // sent to the torrent already (this lookup)
  clock_type::time_point started = clock_type::now();
};

struct tracked_torrent {
  caf::actor torrent;
  std::uint16_t port = 0;
  clock_type::time_point next_lookup{};
  clock_type::time_point last_lookup{};
  std::uint64_t lookup = 0; // running, 0: none
  bool starved = false;     // its last lookup had no node to ask: retried once one is known
};

struct inbound_count {
  std::uint32_t second = 0;
  std::uint32_t count = 0;
};

struct dht_state {
  dht_config cfg;
  std::shared_ptr<dht_socket> sock;
  std::shared_ptr<spdlog::logger> log;
  node_id self{};
  std::unique_ptr<dht::routing_table> table;
  std::unique_ptr<dht::token_manager> tokens;
  dht::peer_store store;
  std::vector<udp_endpoint> bootstrap; // resolved bootstrap addresses
  std::vector<node_info> saved;        // loaded from the state file: asked by bootstraps
  std::map<std::uint16_t, pending_query> pending;
  std::mt19937 rng{std::random_device{}()}; // transaction ids: unpredictable to forgers
  std::map<std::uint64_t, running_lookup> lookups;
  std::uint64_t next_lookup = 1;
  std::map<info_hash, tracked_torrent> torrents;
  std::deque<queued_query> out_queue;
  double out_tokens = 0;
  clock_type::time_point out_refilled = clock_type::now();
  std::unordered_map<std::uint32_t, inbound_count> inbound;
  std::uint32_t inbound_second = 0;
  std::unordered_map<std::uint32_t, clock_type::time_point> blocked; // offenders, until then
  double ping_tokens = 0; // maintenance pings, rate-capped apart from lookups
  clock_type::time_point pings_refilled = clock_type::now();
  double reply_bytes = 0; // reply budget (bytes), refilled at cfg.max_reply_bytes_per_s
  clock_type::time_point replies_refilled = clock_type::now();
  std::uint64_t bootstrap_lookup = 0;
  clock_type::time_point last_bootstrap{};
  clock_type::duration bootstrap_backoff = seconds(30); // doubles to 15 min while it fails
  std::vector<endpoint> unresolved; // bootstrap names not resolved yet (retried on backoff)
  asio::io_context* io = nullptr;
  clock_type::time_point last_save = clock_type::now();
  clock_type::time_point started = clock_type::now();
  dht_status stats;
  bool stopped = false;
};

using self_ptr = caf::stateful_actor<dht_state>*;

std::string hex(const sha1_digest& d) { return to_hex(d); }

// -- persistence -----------------------------------------------------------------------------

/// Whether `dir` is a real directory (not a link to one); with `create`, it and its parent
/// are made first when missing.
bool state_dir_ok(const std::filesystem::path& dir, bool create) {
  if (create) {
    if (dir.has_parent_path())
      ::mkdir(dir.parent_path().c_str(), 0755);
    ::mkdir(dir.c_str(), 0755);
  }
  struct stat sb {};
  return ::lstat(dir.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode);
}

/// Reads the node id and nodes saved by save_state; a missing or damaged file gives nothing.
bool load_state(const std::string& path, node_id& id, std::vector<node_info>& nodes) {
  if (path.empty())
    return false;
  // Not through a link planted in place of the directory either.
  if (auto dir = std::filesystem::path(path).parent_path(); !dir.empty() && !state_dir_ok(dir, false))
    return false;
  // Untrusted like everything below the output directory: no links followed, regular files
  // only (a FIFO would block), and at most 64 KiB read.
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return false;
  struct stat sb {};
  std::string text;
  if (::fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
    text.resize(64 * 1024 + 1);
    auto n = ::read(fd, text.data(), text.size());
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  ::close(fd);
  bencode::limits lim;
  lim.max_total = 64 * 1024;
  lim.max_string = 64 * 1024;
  auto v = bencode::decode(text, lim);
  if (!v || !v->is_dict())
    return false;
  auto* idv = v->find("id");
  if (!idv || !idv->is_string() || idv->as_string().size() != 20)
    return false;
  std::copy(idv->as_string().begin(), idv->as_string().end(), id.begin());
  if (auto* n = v->find("nodes"); n && n->is_string())
    nodes = krpc::decode_nodes(n->as_string(), 256);
  return true;
}

void save_state(self_ptr self) {
  auto& st = self->state;
  if (st.cfg.state_file.empty())
    return;
  bencode::value v = bencode::value::make_dict();
  v.set("id", bencode::value::make_string(std::string(st.self.begin(), st.self.end())));
  v.set("nodes", bencode::value::make_string(krpc::encode_nodes(st.table->confirmed())));
  // The directory (normally <output>/.actorrent) is made one level at a time and must be a
  // real directory, as for the resume files: a link planted there is never followed.
  auto path = std::filesystem::path(st.cfg.state_file);
  if (path.has_parent_path() && !state_dir_ok(path.parent_path(), true)) {
    st.log->warn("DHT: cannot save the node table: {} is not a directory",
                 path.parent_path().string());
    return;
  }
  // A fresh temporary file renamed over the old one: a crash leaves the old table, and a link
  // planted at the path is replaced, never followed.
  auto written = write_file_atomically(st.cfg.state_file, bencode::encode(v));
  if (!written)
    st.log->warn("DHT: cannot save the node table: {}", written.error().message);
}

// -- sending ---------------------------------------------------------------------------------

void flush_out_queue(self_ptr self) {
  auto& st = self->state;
  auto now = clock_type::now();
  double rate = st.cfg.max_queries_per_s;
  st.out_tokens = std::min(rate, st.out_tokens +
                                   rate * std::chrono::duration<double>(now - st.out_refilled)
                                            .count());
  st.out_refilled = now;
  while (!st.out_queue.empty() && st.out_tokens >= 1.0) {
    st.out_tokens -= 1.0;
    auto& q = st.out_queue.front();
    // The timeout runs from the moment the query leaves, not from when it was queued.
    if (auto p = st.pending.find(q.tid); p != st.pending.end()) {
      p->second.sent = now;
      p->second.queued = false;
    }
    st.sock->send(std::move(q.bytes), q.to);
    st.out_queue.pop_front();
  }
}

void fail_query(self_ptr self, std::uint16_t tid);

/// Sends (or queues, under the query rate) a query; its answer or timeout comes back by `tid`.
/// A query that never left (dropped from the out queue): its lookup counts it as failed, but
/// the node is not charged with a failure it did not cause. The lookup is driven on the tick.
void drop_query(self_ptr self, std::uint16_t tid) {
  auto& st = self->state;
  auto it = st.pending.find(tid);
  if (it == st.pending.end())
    return;
  auto q = it->second;
  st.pending.erase(it);
  if (q.lookup != 0)
    if (auto l = st.lookups.find(q.lookup); l != st.lookups.end())
      l->second.lk->on_failure(q.ep);
}

/// Returns false when the query was not sent (too many in flight); the lookup, if any, has
/// counted it as failed then.
bool send_query(self_ptr self, const udp_endpoint& to, krpc::query q, std::uint64_t lookup,
                std::optional<node_id> id) {
  auto& st = self->state;
  auto now = clock_type::now();
  if (st.pending.size() >= std::min(max_pending_queries, st.cfg.max_pending_queries)) {
    if (lookup != 0)
      if (auto it = st.lookups.find(lookup); it != st.lookups.end())
        it->second.lk->on_failure(to);
    return false;
  }
  // Random transaction ids: a forged answer must guess one of 65536, not the next counter.
  auto tid = static_cast<std::uint16_t>(st.rng());
  while (st.pending.count(tid) != 0)
    tid = static_cast<std::uint16_t>(st.rng());
  q.id = st.self;
  std::string t{static_cast<char>(tid >> 8), static_cast<char>(tid & 0xff)};
  auto msg = krpc::make_query(t, q);
  msg.version = "AT01";
  st.pending.emplace(tid, pending_query{to, q.m, lookup, id, now, true});
  ++st.stats.queries_out;
  if (st.out_queue.size() >= max_out_queue) {
    // Over the rate for long: the oldest waiting query is given up (its lookup sees a failure).
    auto oldest = st.out_queue.front().tid;
    st.out_queue.pop_front();
    drop_query(self, oldest);
  }
  st.out_queue.push_back(queued_query{krpc::encode(msg), to, tid});
  flush_out_queue(self);
  return true;
}

/// A ping to keep the table fresh (or to meet a node a peer told us of): at most one in flight
/// per address, and at most cfg.max_maintenance_pings_per_s, so a flood of queries (or of PORT
/// messages) cannot turn into a flood of pings.
void maintenance_ping(self_ptr self, const udp_endpoint& ep, std::optional<node_id> id) {
  auto& st = self->state;
  for (auto& [tid, p] : st.pending)
    if (p.m == krpc::method::ping && p.ep == ep)
      return;
  auto now = clock_type::now();
  double rate = st.cfg.max_maintenance_pings_per_s;
  st.ping_tokens = std::min(rate, st.ping_tokens + rate * std::chrono::duration<double>(
                                                            now - st.pings_refilled).count());
  st.pings_refilled = now;
  if (st.ping_tokens < 1.0)
    return;
  st.ping_tokens -= 1.0;
  krpc::query q;
  q.m = krpc::method::ping;
  send_query(self, ep, q, 0, id);
}

void maintenance_ping(self_ptr self, const node_info& n) {
  maintenance_ping(self, n.ep, n.id);
}

void send_reply(self_ptr self, const udp_endpoint& to, krpc::message m) {
  auto& st = self->state;
  m.version = "AT01";
  m.yourip = to; // BEP 42: how we see the asker
  auto bytes = krpc::encode(m);
  // A global budget of reply bytes: replies are several times the size of the queries, so
  // without it spoofed queries from many addresses would turn us into an amplifier.
  auto now = clock_type::now();
  double rate = st.cfg.max_reply_bytes_per_s;
  st.reply_bytes = std::min(rate, st.reply_bytes + rate * std::chrono::duration<double>(
                                                              now - st.replies_refilled).count());
  st.replies_refilled = now;
  if (st.reply_bytes < static_cast<double>(bytes.size())) {
    ++st.stats.replies_dropped;
    return;
  }
  st.reply_bytes -= static_cast<double>(bytes.size());
  st.sock->send(std::move(bytes), to);
}

// -- lookups ---------------------------------------------------------------------------------

void drive_lookup(self_ptr self, std::uint64_t id);

/// Lookup parameters: our own address is never a candidate.
dht::lookup::params lookup_params(self_ptr self) {
  dht::lookup::params p;
  auto& st = self->state;
  if (auto ep = udp_endpoint::parse(st.cfg.host, st.stats.port); ep && ep->ip[0] != 0)
    p.self_ep = *ep;
  return p;
}

std::uint64_t start_lookup(self_ptr self, const node_id& target, bool get_peers,
                           std::unique_ptr<dht::lookup> seeded = nullptr) {
  auto& st = self->state;
  auto id = st.next_lookup++;
  running_lookup rl;
  rl.lk = seeded ? std::move(seeded) : std::make_unique<dht::lookup>(target, lookup_params(self));
  rl.get_peers = get_peers;
  for (auto& n : st.table->closest(target, 8))
    rl.lk->add(n);
  // Few nodes known yet: the bootstrap nodes too (their ids are learnt from their answers),
  // in the bootstrap's own find_node only: torrent lookups never tell the public routers
  // which info-hashes we want.
  if (!get_peers && target == st.self && st.table->size() < 8)
    for (auto& ep : st.bootstrap)
      rl.lk->add(node_info{target, ep}, false);
  st.lookups.emplace(id, std::move(rl));
  drive_lookup(self, id);
  return id;
}

void finish_lookup(self_ptr self, std::uint64_t id) {
  auto& st = self->state;
  auto it = st.lookups.find(id);
  if (it == st.lookups.end())
    return;
  auto& rl = it->second;
  auto target = rl.lk->target();
  auto answered = rl.lk->closest_answered();
  if (id == st.bootstrap_lookup) {
    st.bootstrap_lookup = 0;
    st.log->debug("DHT: bootstrap done: {} nodes answered, {} in the table", answered.size(),
                  st.table->size());
  }
  if (rl.get_peers) {
    auto t = st.torrents.find(target);
    if (t != st.torrents.end() && t->second.lookup == id) {
      t->second.lookup = 0;
      st.log->debug("DHT: get_peers {}: {} peers, {} nodes answered", hex(target),
                    rl.peers_told.size(), answered.size());
      // BEP 5: announce to the closest nodes that gave us a token.
      if (t->second.port != 0)
        for (auto& a : answered) {
          if (a.token.empty())
            continue;
          krpc::query q;
          q.m = krpc::method::announce_peer;
          q.hash = target;
          q.port = t->second.port;
          q.token = a.token;
          send_query(self, a.node.ep, q, 0, a.node.id);
        }
    }
  }
  st.lookups.erase(it);
}

void drive_lookup(self_ptr self, std::uint64_t id) {
  auto& st = self->state;
  auto it = st.lookups.find(id);
  if (it == st.lookups.end())
    return;
  auto& rl = it->second;
  // A query that cannot be sent fails at once: then ask the next nodes, until one query is in
  // flight or nobody is left (else nothing would ever drive this lookup again).
  for (;;) {
    auto batch = rl.lk->next();
    if (batch.empty())
      break;
    for (auto& n : batch) {
      krpc::query q;
      if (rl.get_peers) {
        q.m = krpc::method::get_peers;
        q.hash = rl.lk->target();
      } else {
        q.m = krpc::method::find_node;
        q.target = rl.lk->target();
      }
      send_query(self, n.ep, q, id, std::nullopt);
    }
    if (rl.lk->in_flight_count() > 0)
      break;
  }
  if (rl.lk->done() || rl.lk->in_flight_count() == 0)
    finish_lookup(self, id);
}

void resolve_names(self_ptr self);

void bootstrap(self_ptr self) {
  auto& st = self->state;
  if (st.bootstrap_lookup != 0)
    return;
  // Each retry waits twice as long (30 s .. 15 min): the routers are not hammered while the
  // network is unreachable. Reset once the table holds 8 nodes.
  if (st.last_bootstrap != clock_type::time_point{})
    st.bootstrap_backoff = std::min<clock_type::duration>(st.bootstrap_backoff * 2,
                                                          std::chrono::minutes(15));
  st.last_bootstrap = clock_type::now();
  if (!st.unresolved.empty())
    resolve_names(self); // a name that failed to resolve at start is tried again
  // Saved nodes are asked like bootstrap nodes: they enter the table only once they answer.
  auto seeded = std::make_unique<dht::lookup>(st.self, lookup_params(self));
  for (auto& n : st.saved)
    seeded->add(n);
  auto id = start_lookup(self, st.self, false, std::move(seeded));
  // It may have ended at once (nobody to ask): then no bootstrap is running.
  st.bootstrap_lookup = st.lookups.count(id) != 0 ? id : 0;
}

void lookup_torrent(self_ptr self, const info_hash& hash) {
  auto& st = self->state;
  auto it = st.torrents.find(hash);
  if (it == st.torrents.end() || it->second.lookup != 0)
    return;
  auto now = clock_type::now();
  it->second.last_lookup = now;
  it->second.starved = false;
  it->second.next_lookup = now + seconds(st.cfg.lookup_interval_s);
  // Peers announced to us for it count as found.
  auto stored = st.store.peers(hash, 50, now);
  if (!stored.empty()) {
    add_peers ap;
    for (auto& v : stored)
      ap.peers.push_back(endpoint{v.ip_string(), v.port});
    st.log->debug("DHT: {} peers for {} from our own store", ap.peers.size(), hex(hash));
    self->send(it->second.torrent, std::move(ap));
  }
  auto id = start_lookup(self, hash, true);
  // start_lookup may have finished at once (no node known at all): retried once one is.
  if (st.lookups.count(id) != 0)
    it->second.lookup = id;
  else
    it->second.starved = st.table->size() == 0;
}

// -- incoming --------------------------------------------------------------------------------

/// The query of lookup `id` (0: none) to `ep` failed: the lookup asks the next node.
void lookup_failed(self_ptr self, std::uint64_t id, const udp_endpoint& ep) {
  auto& st = self->state;
  if (id == 0)
    return;
  if (auto l = st.lookups.find(id); l != st.lookups.end()) {
    l->second.lk->on_failure(ep);
    drive_lookup(self, id);
  }
}

void fail_query(self_ptr self, std::uint16_t tid) {
  auto& st = self->state;
  auto it = st.pending.find(tid);
  if (it == st.pending.end())
    return;
  auto q = it->second;
  st.pending.erase(it);
  if (q.id)
    st.table->failed(*q.id);
  else
    for (auto& n : st.table->all()) // an id learnt after the query went out
      if (n.ep == q.ep) {
        st.table->failed(n.id);
        break;
      }
  lookup_failed(self, q.lookup, q.ep);
}

void heard_from(self_ptr self, const node_info& n, bool answered) {
  auto& st = self->state;
  auto r = st.table->heard_from(n, clock_type::now(), answered);
  if (r.to_ping)
    maintenance_ping(self, *r.to_ping);
}

bool inbound_allowed(self_ptr self, const udp_endpoint& from) {
  auto& st = self->state;
  auto second = static_cast<std::uint32_t>(
    std::chrono::duration_cast<seconds>(clock_type::now() - st.started).count());
  std::uint32_t ip = (std::uint32_t{from.ip[0]} << 24) | (std::uint32_t{from.ip[1]} << 16) |
                     (std::uint32_t{from.ip[2]} << 8) | from.ip[3];
  auto now = clock_type::now();
  if (auto b = st.blocked.find(ip); b != st.blocked.end()) {
    if (now < b->second)
      return false;
    st.blocked.erase(b);
  }
  if (st.inbound.size() >= max_inbound_ips && st.inbound.count(ip) == 0)
    return false; // too many sources this second; cleared when the second changes
  auto& c = st.inbound[ip];
  if (c.second != second) {
    c.second = second;
    c.count = 0;
  }
  ++c.count;
  // Far over the rate: not a node that retries, a flood. Ignored for a while.
  if (c.count > 4 * st.cfg.max_inbound_per_ip_per_s && st.blocked.size() < max_inbound_ips)
    st.blocked[ip] = now + offender_block;
  return c.count <= st.cfg.max_inbound_per_ip_per_s;
}

void on_query(self_ptr self, const krpc::message& m, const udp_endpoint& from) {
  auto& st = self->state;
  ++st.stats.queries_in;
  auto now = clock_type::now();
  auto& q = m.q;
  if (q.id == st.self)
    return; // our own query, looped back through another node's answer
  if (!q.read_only)
    heard_from(self, node_info{q.id, from}, false);
  krpc::response r;
  r.id = st.self;
  switch (q.m) {
    case krpc::method::ping: break;
    case krpc::method::find_node: r.nodes = st.table->closest(q.target, 8); break;
    case krpc::method::get_peers:
      r.token = st.tokens->make(from, now);
      r.values = st.store.peers(q.hash, 50, now);
      r.nodes = st.table->closest(q.hash, 8);
      break;
    case krpc::method::announce_peer: {
      if (!st.tokens->check(q.token, from, now)) {
        send_reply(self, from, krpc::make_error(m.transaction, krpc::protocol_error, "bad token"));
        return;
      }
      udp_endpoint peer = from;
      if (!q.implied_port)
        peer.port = q.port;
      st.store.announce(q.hash, peer, now);
      st.log->debug("DHT: {} announced {} for {}", from.to_string(), peer.to_string(),
                    hex(q.hash));
      // Our own torrent: the announcing peer is a peer of it (in a small DHT we may be the
      // node closest to the info-hash, so no lookup would find it anywhere else).
      if (auto t = st.torrents.find(q.hash); t != st.torrents.end() && peer.port != 0) {
        st.log->debug("DHT: 1 peers for {} from its announce", hex(q.hash));
        self->send(t->second.torrent, add_peers{{endpoint{peer.ip_string(), peer.port}}});
      }
      break;
    }
    case krpc::method::unknown:
      send_reply(self, from, krpc::make_error(m.transaction, krpc::method_unknown,
                                              "Method Unknown"));
      return;
  }
  send_reply(self, from, krpc::make_response(m.transaction, r));
}

void on_answer(self_ptr self, const krpc::message& m, const udp_endpoint& from) {
  auto& st = self->state;
  if (m.transaction.size() != 2)
    return;
  auto tid = static_cast<std::uint16_t>((static_cast<std::uint8_t>(m.transaction[0]) << 8) |
                                        static_cast<std::uint8_t>(m.transaction[1]));
  auto it = st.pending.find(tid);
  // Only the address we asked may answer: anything else is stray or spoofed.
  if (it == st.pending.end() || it->second.ep != from)
    return;
  auto q = it->second;
  st.pending.erase(it);
  if (m.type == krpc::kind::error) {
    st.log->debug("DHT: {} answered {} with error {}: {}", from.to_string(),
                  krpc::to_string(q.m), m.e.code, printable(m.e.text));
    lookup_failed(self, q.lookup, from);
    return;
  }
  auto& r = m.r;
  if (q.id && *q.id != r.id && q.m != krpc::method::announce_peer) {
    st.table->failed(*q.id); // the node behind that address is not the one we knew
  }
  // Public routers answer find_node but are no DHT nodes (they store nothing): kept out of the
  // table. A loopback bootstrap node is a test network's real node and is kept.
  bool router = from.ip[0] != 127 &&
                std::find(st.bootstrap.begin(), st.bootstrap.end(), from) != st.bootstrap.end();
  if (!router)
    heard_from(self, node_info{r.id, from}, true);
  if (q.lookup == 0)
    return;
  auto l = st.lookups.find(q.lookup);
  if (l == st.lookups.end())
    return;
  auto& rl = l->second;
  if (rl.get_peers && !r.values.empty()) {
    auto t = st.torrents.find(rl.lk->target());
    add_peers ap;
    for (auto& v : r.values)
      if (v.port != 0 && rl.peers_told.size() < 1000 && rl.peers_told.insert(v).second)
        ap.peers.push_back(endpoint{v.ip_string(), v.port});
    if (t != st.torrents.end() && !ap.peers.empty()) {
      st.log->debug("DHT: {} peers for {} from {}", ap.peers.size(), hex(rl.lk->target()),
                    from.to_string());
      self->send(t->second.torrent, std::move(ap));
    }
  }
  // Other nodes list us too: never a candidate of our own lookup.
  if (std::any_of(r.nodes.begin(), r.nodes.end(),
                  [&](const node_info& n) { return n.id == st.self; })) {
    auto copy = r;
    copy.nodes.erase(std::remove_if(copy.nodes.begin(), copy.nodes.end(),
                                    [&](const node_info& n) { return n.id == st.self; }),
                     copy.nodes.end());
    rl.lk->on_response(from, copy);
  } else {
    rl.lk->on_response(from, r);
  }
  drive_lookup(self, q.lookup);
}

void on_datagram(self_ptr self, datagram& d) {
  auto& st = self->state;
  st.sock->handled();
  auto m = krpc::decode(d.bytes);
  if (!m) {
    ++st.stats.malformed_in;
    st.log->debug("DHT: {}: {}", d.from.to_string(), m.error().message);
    return;
  }
  if (m->type == krpc::kind::query) {
    if (inbound_allowed(self, d.from))
      on_query(self, *m, d.from);
    return;
  }
  on_answer(self, *m, d.from);
}

void on_tick(self_ptr self) {
  auto& st = self->state;
  auto now = clock_type::now();
  // Timeouts.
  std::vector<std::uint16_t> late;
  for (auto& [tid, q] : st.pending)
    if (!q.queued && now - q.sent > milliseconds(st.cfg.query_timeout_ms))
      late.push_back(tid);
  for (auto tid : late)
    fail_query(self, tid);
  flush_out_queue(self);
  // Lookups: one with nothing in flight (its queries dropped unsent) is driven on, and one
  // running past its deadline is ended, so that its torrent (or the bootstrap) can start anew.
  std::vector<std::uint64_t> idle, overdue;
  for (auto& [id, rl] : st.lookups) {
    if (now - rl.started > lookup_deadline)
      overdue.push_back(id);
    else if (rl.lk->in_flight_count() == 0)
      idle.push_back(id);
  }
  for (auto id : overdue)
    finish_lookup(self, id);
  for (auto id : idle)
    drive_lookup(self, id);
  // The per-IP counters hold one second each: forgotten when the second changes.
  auto second = static_cast<std::uint32_t>(
    std::chrono::duration_cast<seconds>(now - st.started).count());
  if (second != st.inbound_second) {
    st.inbound_second = second;
    // Only the counters of past seconds: clearing this second's too would let a source that
    // used its budget before the tick start afresh within the same second.
    for (auto it = st.inbound.begin(); it != st.inbound.end();)
      it = it->second.second != second ? st.inbound.erase(it) : std::next(it);
  }
  // Too few nodes: bootstrap again every 30 s (at once on start).
  if (st.table->size() >= 8)
    st.bootstrap_backoff = seconds(30);
  else if ((!st.bootstrap.empty() || !st.saved.empty() || !st.unresolved.empty()) &&
           now - st.last_bootstrap > st.bootstrap_backoff)
    bootstrap(self);
  // Refresh: one questionable node pinged per tick at most.
  if (auto stale = st.table->stale_node(now))
    maintenance_ping(self, *stale);
  // Bucket refresh (BEP 5): a bucket silent for 15 minutes gets a find_node on an id in it.
  if (st.lookups.size() < 8)
    if (auto target = st.table->refresh_target(now))
      start_lookup(self, *target, false);
  std::vector<info_hash> due;
  for (auto& [hash, t] : st.torrents)
    if (t.lookup == 0 && (now >= t.next_lookup || (t.starved && st.table->size() > 0)))
      due.push_back(hash);
  for (auto& h : due)
    lookup_torrent(self, h);
  if (now - st.last_save > std::chrono::minutes(5)) {
    st.last_save = now;
    st.store.expire(now);
    save_state(self);
  }
  st.stats.nodes = st.table->size();
  st.stats.stored_peers = st.store.peer_count();
}

void resolve_names(self_ptr self) {
  auto& st = self->state;
  for (auto& b : st.unresolved) {
    auto resolver = std::make_shared<asio::ip::udp::resolver>(*st.io);
    auto me = caf::actor_cast<caf::weak_actor_ptr>(self);
    resolver->async_resolve(
      asio::ip::udp::v4(), b.host, std::to_string(b.port),
      [resolver, me, name = b.host](const asio::error_code& ec,
                                    asio::ip::udp::resolver::results_type res) {
        auto target = caf::actor_cast<caf::actor>(me);
        if (ec || !target)
          return;
        resolved r;
        r.name = name;
        for (auto& e : res)
          if (r.endpoints.size() < 8)
            r.endpoints.push_back(from_asio(e.endpoint()));
        caf::anon_send(target, std::move(r));
      });
  }
}

} // namespace

std::vector<endpoint> default_dht_bootstrap() {
  return {{"router.bittorrent.com", 6881},
          {"dht.transmissionbt.com", 6881},
          {"router.utorrent.com", 6881},
          {"dht.libtorrent.org", 25401}};
}

caf::actor spawn_dht(caf::actor_system& sys, dht_config cfg, std::string& error_text,
                     std::uint16_t* bound_port) {
  if (!cfg.io) {
    error_text = "DHT: no I/O runtime";
    return {};
  }
  auto& io = *static_cast<asio::io_context*>(cfg.io->native());
  auto sock = std::make_shared<dht_socket>(io);
  if (!sock->open(cfg.host, cfg.port, error_text))
    return {};
  if (bound_port != nullptr)
    *bound_port = sock->port();
  auto handle = sys.spawn([cfg, sock, &io](caf::stateful_actor<dht_state>* self) -> caf::behavior {
    auto& st = self->state;
    st.cfg = cfg;
    st.sock = sock;
    // The ping bucket starts full: a node a peer names (PORT) right after the start is pinged,
    // not dropped for want of a token.
    st.ping_tokens = cfg.max_maintenance_pings_per_s;
    st.log = spdlog::get("session");
    st.stats.port = sock->port();
    st.tokens = std::make_unique<dht::token_manager>();
    std::vector<node_info> saved;
    if (!load_state(cfg.state_file, st.self, saved)) {
      st.self = dht::random_node_id();
      saved.clear();
    }
    st.table = std::make_unique<dht::routing_table>(st.self);
    // Saved nodes are asked by the bootstrap lookups and kept only if they answer. Listening
    // on loopback (tests, demos), a table saved by a run on a public address is not contacted.
    bool loopback = cfg.host.rfind("127.", 0) == 0;
    for (auto& n : saved)
      if (!loopback || n.ep.ip[0] == 127)
        st.saved.push_back(n);
    for (auto& b : cfg.bootstrap)
      if (auto ep = udp_endpoint::parse(b.host, b.port))
        st.bootstrap.push_back(*ep);
    // Names (the default routers, or names the user gave) are resolved on the I/O runtime.
    st.io = &io;
    for (auto& b : cfg.bootstrap)
      if (!udp_endpoint::parse(b.host, b.port))
        st.unresolved.push_back(b);
    resolve_names(self);
    if (!sock->fallback_reason().empty())
      st.log->warn("DHT: cannot bind UDP port {} ({}): using UDP port {} instead", cfg.port,
                   sock->fallback_reason(), sock->port());
    st.log->info("DHT on UDP {}:{} (node id {}, {} saved nodes, {} bootstrap nodes)", cfg.host,
                 sock->port(), hex(st.self).substr(0, 8), saved.size(), cfg.bootstrap.size());
    self->set_default_handler(caf::drop);
    // However the actor ends (stop_request, its owner's exit message, an error), the socket is
    // closed: its pending read holds the socket, not the actor.
    self->attach_functor([sock] { sock->close(); });
    self->set_exit_handler([=](caf::exit_msg& em) {
      auto& st = self->state;
      if (!st.stopped) {
        st.stopped = true;
        save_state(self);
      }
      self->quit(em.reason);
    });
    self->set_down_handler([=](caf::down_msg& dm) {
      for (auto it = self->state.torrents.begin(); it != self->state.torrents.end();)
        it = it->second.torrent.address() == dm.source ? self->state.torrents.erase(it)
                                                        : std::next(it);
    });
    sock->start(caf::actor_cast<caf::actor>(self));
    if (!st.bootstrap.empty() || !st.saved.empty())
      bootstrap(self);
    self->delayed_send(self, milliseconds(200), tick{});
    return {
      [=](datagram& d) { on_datagram(self, d); },
      [=](resolved& r) {
        auto& u = self->state.unresolved;
        u.erase(std::remove_if(u.begin(), u.end(),
                               [&](const endpoint& e) { return e.host == r.name; }),
                u.end());
        auto& b = self->state.bootstrap;
        for (auto& ep : r.endpoints)
          if (std::find(b.begin(), b.end(), ep) == b.end())
            b.push_back(ep);
        if (self->state.table->size() < 8)
          bootstrap(self);
      },
      [=](tick) {
        if (self->state.stopped)
          return;
        on_tick(self);
        // Queries out or waiting: their timeouts and the query rate want 200 ms; otherwise a
        // second is enough (an idle DHT under 1,000 torrents woke 5 times a second for nothing).
        auto& st = self->state;
        bool busy = !st.pending.empty() || !st.out_queue.empty() || !st.lookups.empty();
        self->delayed_send(self, busy ? milliseconds(200) : milliseconds(1000), tick{});
      },
      [=](dht_track& t) {
        auto& ts = self->state.torrents[t.hash];
        ts.torrent = t.torrent;
        ts.port = t.port;
        self->monitor(t.torrent);
        lookup_torrent(self, t.hash);
      },
      [=](const dht_untrack& u) {
        // Its running lookup ends at once, without announcing: a torrent found private must
        // not be asked for (or announced) on the DHT any more.
        auto& st = self->state;
        for (auto it = st.lookups.begin(); it != st.lookups.end();)
          it = it->second.get_peers && it->second.lk->target() == u.hash ? st.lookups.erase(it)
                                                                         : std::next(it);
        st.torrents.erase(u.hash);
      },
      [=](const dht_ping_node& p) {
        // BEP 5: a peer's PORT message. An answer puts the node in the table (on_answer).
        if (auto ep = udp_endpoint::parse(p.node.host, p.node.port); ep && ep->port != 0)
          maintenance_ping(self, *ep, std::nullopt);
      },
      [=](const dht_wants_peers& w) {
        auto it = self->state.torrents.find(w.hash);
        if (it != self->state.torrents.end() && it->second.lookup == 0 &&
            clock_type::now() - it->second.last_lookup > seconds(60))
          lookup_torrent(self, w.hash);
      },
      [=](dht_get_status) {
        auto s = self->state.stats;
        s.nodes = self->state.table->size();
        s.stored_peers = self->state.store.peer_count();
        s.lookups = self->state.lookups.size();
        return s;
      },
      [=](stop_request) {
        auto& st = self->state;
        if (st.stopped)
          return;
        st.stopped = true;
        save_state(self);
        st.sock->close();
        self->quit();
      },
    };
  });
  return handle;
}

} // namespace actorrent
