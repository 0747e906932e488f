#include "cli/cluster_command.hpp"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/peer_connection.hpp"
#include "actors/session.hpp"
#include "cli/common.hpp"
#include "cluster/coordinator.hpp"
#include "cluster/node_common.hpp"
#include "cluster/worker.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/units.hpp"
#include "storage/disk_pool.hpp"

namespace actorrent {

struct cluster_command::options {
  CLI::App* coordinator = nullptr;
  CLI::App* worker = nullptr;
  // coordinator
  std::string torrent;
  std::string listen;
  unsigned workers = 0;
  std::string mode = "shared";
  std::string state_dir;
  std::vector<std::string> peers;
  bool no_tracker = false;
  // worker
  std::string join;
  std::string out_dir;
  std::string worker_listen;
  std::string download_limit = "0";
  std::string name;
  std::string expect_torrent;
  bool no_dht = false;
  // both
  int verbosity = 0;
  bool quiet = false;
};

namespace {

using namespace std::chrono_literals;

/// A worker started before its coordinator waits this long for it.
constexpr std::chrono::milliseconds join_patience = 30s;

void configure_system(caf::actor_system_config& cfg) {
  cluster::configure_node(cfg);
  cfg.set("scheduler.max-threads", std::max(2u, std::thread::hardware_concurrency()));
  cfg.set("work-stealing.moderate-poll-attempts", std::uint64_t{0}); // see cli/main.cpp
}

/// Waits for the node's exit code, passing SIGINT/SIGTERM on once.
int wait_for_exit(std::future<int>& done, const std::function<void(int)>& stop) {
  bool told = false;
  while (done.wait_for(200ms) != std::future_status::ready) {
    if (!told && stop_signal.load()) {
      told = true;
      stop(130);
    }
  }
  return done.get();
}

std::shared_ptr<std::promise<int>> exit_promise(std::future<int>& f) {
  auto p = std::make_shared<std::promise<int>>();
  f = p->get_future();
  return p;
}

int run_coordinator(const cluster_command::options& opt) {
  auto meta = load_metainfo(opt.torrent);
  if (!meta) {
    std::fprintf(stderr, "error: %s\n", meta.error().message.c_str());
    return 2;
  }
  std::ifstream in(opt.torrent, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  endpoint listen;
  if (!cluster::parse_host_port(opt.listen, listen, true)) {
    std::fprintf(stderr, "error: --listen %s: expected HOST:PORT\n", opt.listen.c_str());
    return 2;
  }
  for (auto& p : opt.peers) {
    endpoint ep;
    if (!cluster::parse_host_port(p, ep)) {
      std::fprintf(stderr, "error: --peer %s: expected HOST:PORT\n", p.c_str());
      return 2;
    }
  }
  if (opt.no_tracker && opt.peers.empty()) {
    std::fprintf(stderr, "error: --no-tracker needs at least one --peer (the workers would "
                         "find no peer)\n");
    return 2;
  }
  cluster::coordinator_config cc;
  cc.meta = std::make_shared<const metainfo>(std::move(*meta));
  cc.torrent_bytes = bytes.str();
  cc.listen_host = listen.host;
  cc.listen_port = listen.port;
  cc.workers = opt.workers;
  cc.mode = opt.mode == "replicate" ? cluster::job_mode::replicate : cluster::job_mode::shared;
  cc.state_dir = opt.state_dir.empty()
                   ? ".actorrent-cluster-" + to_hex(cc.meta->hash).substr(0, 8)
                   : opt.state_dir;
  const std::string state_dir = cc.state_dir;
  cc.peers = opt.peers;
  cc.use_trackers = !opt.no_tracker;
  cc.quiet = opt.quiet;
  setup_logging(opt.verbosity);
  cluster::cluster_log();
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  caf::actor_system_config cfg;
  configure_system(cfg);
  caf::actor_system sys{cfg};
  std::future<int> done;
  auto promise = exit_promise(done);
  cc.on_exit = [promise](int code) { promise->set_value(code); };
  std::uint16_t port = 0;
  std::string err;
  auto coordinator = cluster::spawn_coordinator(sys, std::move(cc), port, err);
  if (!coordinator) {
    std::fprintf(stderr, "error: %s\n", err.c_str());
    return 1;
  }
  std::printf("listening: %s:%u for %u workers (%s mode, state in %s)\n", listen.host.c_str(),
              port, opt.workers, opt.mode.c_str(), state_dir.c_str());
  std::fflush(stdout);
  int rc = wait_for_exit(done, [&](int code) { cluster::stop_coordinator(coordinator, code); });
  if (rc == 130)
    std::fprintf(stderr, "error: stopped by a signal (the plan is saved: a restart resumes)\n");
  coordinator = nullptr;
  sys.await_all_actors_done();
  return rc;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0)
    return "localhost";
  return buf;
}

int run_worker(const cluster_command::options& opt) {
  endpoint join;
  if (!cluster::parse_host_port(opt.join, join)) {
    std::fprintf(stderr, "error: --join %s: expected HOST:PORT\n", opt.join.c_str());
    return 2;
  }
  endpoint listen;
  if (!opt.worker_listen.empty() && !cluster::parse_host_port(opt.worker_listen, listen, true)) {
    std::fprintf(stderr, "error: --listen %s: expected HOST:PORT\n", opt.worker_listen.c_str());
    return 2;
  }
  std::string why;
  auto limit = parse_rate(opt.download_limit, why);
  if (!limit) {
    std::fprintf(stderr, "error: --download-limit %s: %s\n", opt.download_limit.c_str(),
                 why.c_str());
    return 2;
  }
  std::optional<info_hash> expected;
  if (!opt.expect_torrent.empty()) {
    auto m = load_metainfo(opt.expect_torrent);
    if (!m) {
      std::fprintf(stderr, "error: %s\n", m.error().message.c_str());
      return 2;
    }
    expected = m->hash;
  }
  std::error_code ec;
  std::filesystem::create_directories(opt.out_dir, ec);
  if (ec) {
    std::fprintf(stderr, "error: cannot create %s: %s\n", opt.out_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  setup_logging(opt.verbosity);
  cluster::cluster_log();
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  io_runtime io(cores);
  disk_pool disk(4);
  session_config sc;
  sc.io = &io;
  std::shared_ptr<peer_listener> listener;
  std::string err;
  if (!opt.worker_listen.empty()) {
    sc.listen_host = listen.host;
    sc.listen_port = listen.port;
    listener = open_session_listener(sc, err);
  } else {
    sc.listen_host = "0.0.0.0"; // what the other workers are told (advertised below)
    listener = open_default_listener(sc, err);
    if (!listener)
      err += "; choose one with --listen HOST:PORT";
  }
  if (!listener) {
    std::fprintf(stderr, "error: %s\n", err.c_str());
    return 1;
  }
  const std::uint16_t port = listener->port();
  // What the other workers of a replicate job dial: a wildcard address names this host.
  std::string advertised_host = sc.listen_host;
  if (advertised_host == "0.0.0.0" || advertised_host == "::")
    advertised_host = host_name();
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  int rc = 1;
  {
    caf::actor_system_config cfg;
    configure_system(cfg);
    caf::actor_system sys{cfg};
    session_options so;
    so.io = &io;
    so.disk = &disk;
    so.id = make_peer_id();
    so.listen_port = port;
    // On loopback (every test) a worker's DHT would have nothing to start from: none at all.
    // Shared mode: several workers use one directory; each keeps its own DHT table.
    if (!opt.no_dht && !is_loopback_host(sc.listen_host))
      so.dht = session_dht(io, sc.listen_host, port, {},
                           opt.out_dir + "/.actorrent/dht-" + std::to_string(port) + ".dat");
    auto session = spawn_session(sys, std::move(listener), so);
    auto coordinator = cluster::connect_to_coordinator(sys, join.host, join.port, join_patience,
                                                       [] { return stop_signal.load() != 0; });
    if (!coordinator) {
      std::fprintf(stderr, "error: %s\n", coordinator.error().message.c_str());
      if (stop_signal.load())
        rc = 130;
      caf::anon_send(session, stop_request{});
    } else {
      cluster::worker_config wc;
      wc.coordinator = *coordinator;
      wc.session = session;
      wc.out_dir = opt.out_dir;
      wc.name = opt.name.empty() ? host_name() + ":" + std::to_string(getpid()) : opt.name;
      wc.listen = (advertised_host.find(':') != std::string::npos ? "[" + advertised_host + "]"
                                                                   : advertised_host) +
                  ":" + std::to_string(port);
      wc.download_limit = *limit;
      wc.quiet = opt.quiet;
      wc.expected = expected;
      std::future<int> done;
      auto promise = exit_promise(done);
      wc.on_exit = [promise](int code, const std::string& why) {
        if (code != 0 && !why.empty())
          std::fprintf(stderr, "error: %s\n", why.c_str());
        promise->set_value(code);
      };
      auto worker = cluster::spawn_worker(sys, std::move(wc));
      rc = wait_for_exit(done, [&](int code) { cluster::stop_worker(worker, code); });
    }
    session = nullptr;
    sys.await_all_actors_done();
  }
  io.stop();
  return rc;
}

} // namespace

cluster_command::cluster_command(CLI::App& app) : opt_(std::make_unique<options>()) {
  auto& o = *opt_;
  auto* cluster = app.add_subcommand("cluster", "One download spread over several nodes "
                                                "(docs/CLUSTER.md)");
  cluster->require_subcommand(1);
  cluster->footer("Environment: ACTORRENT_CLUSTER_PROTOCOL_VERSION=N makes a node send protocol "
                  "version N instead of its own. A test knob (the suite checks that a node of "
                  "another version is refused); never set it in production.");
  auto* c = o.coordinator = cluster->add_subcommand("coordinator", "Plan a job and hand its "
                                                    "pieces to workers");
  c->add_option("torrent", o.torrent, "the .torrent file of the job")->required();
  c->add_option("--listen", o.listen, "listen for workers on HOST:PORT (port 0: any)")
    ->required();
  c->add_option("--workers", o.workers, "start once this many workers have joined (later "
                "joiners get work too)")
    ->required()
    ->check(CLI::Range(1u, 10000u));
  c->add_option("--mode", o.mode, "shared: every worker writes its pieces into one shared "
                "directory; replicate: every worker ends with the whole content")
    ->capture_default_str()
    ->check(CLI::IsMember({"shared", "replicate"}));
  c->add_option("--state", o.state_dir, "where the plan is kept, so that a restarted "
                "coordinator resumes (default: .actorrent-cluster-<first 8 hex digits of the "
                "info-hash> in the current directory)");
  c->add_option("--peer", o.peers, "a peer the workers dial (HOST:PORT), repeatable")
    ->allow_extra_args(false);
  c->add_flag("--no-tracker", o.no_tracker, "workers do not announce to the torrent's trackers");
  c->add_flag("-v,--verbose", o.verbosity, "more log output (-vv: debug)");
  c->add_flag("-q,--quiet", o.quiet, "no progress lines (the complete: line stays)");

  auto* w = o.worker = cluster->add_subcommand("worker", "Join a coordinator and fetch the "
                                               "pieces it assigns");
  w->add_option("--join", o.join, "the coordinator's HOST:PORT (retried for 30 s while it is "
                "not up)")
    ->required();
  w->add_option("-o,--output", o.out_dir, "output directory: in shared mode the one directory "
                "every worker writes (the same path), in replicate mode this worker's own")
    ->required();
  w->add_option("--listen", o.worker_listen, "listen for peers on HOST:PORT (port 0: any; "
                "default: every interface, port 6881 or the next free one up to 6889)");
  w->add_option("--download-limit", o.download_limit, "this worker's download rate at most: "
                "bytes per second, or 500K, 10M (= 10 MiB/s), 1G; 0: no limit")
    ->capture_default_str();
  w->add_option("--name", o.name, "this worker's name, unique in the job (default: HOST:PID)");
  w->add_option("--torrent", o.expect_torrent, "the .torrent this worker expects: a "
                "coordinator running another torrent refuses it (a safeguard against joining "
                "the wrong job)");
  w->add_flag("--no-dht", o.no_dht, "do not use the DHT (BEP 5)");
  w->add_flag("-v,--verbose", o.verbosity, "more log output (-vv: debug)");
  w->add_flag("-q,--quiet", o.quiet, "no joined:/done: lines (errors still go to stderr)");
}

cluster_command::~cluster_command() = default;

bool cluster_command::chosen() const {
  return opt_->coordinator->parsed() || opt_->worker->parsed();
}

int cluster_command::run() {
  if (opt_->coordinator->parsed())
    return run_coordinator(*opt_);
  return run_worker(*opt_);
}

} // namespace actorrent
