// actorrent's command line: `download`, `seed`, `create`, `info` and `scrape`. Thin: parses
// arguments, builds the actor system, adds the torrents to the session and prints what it
// reports.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <optional>
#include <random>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "actors/metrics_server.hpp"
#include "cli/create_command.hpp"
#include "cli/batch_command.hpp"
#include "cli/cluster_command.hpp" // [cluster]
#include "cli/scrape_command.hpp"
#include "cli/common.hpp"
#include "actors/peer_connection.hpp"
#include "actors/rate_limiter.hpp"
#include "actors/session.hpp"
#include "protocol/magnet.hpp"
#include "protocol/metainfo.hpp"
#include "storage/disk_pool.hpp"
#include "storage/file_layout.hpp"
#include "storage/file_selection.hpp"

using namespace actorrent;

namespace {

bool parse_endpoint(const std::string& text, endpoint& out) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return false;
  try {
    auto port = std::stoul(text.substr(colon + 1));
    if (port == 0 || port > 65535)
      return false;
    out.host = text.substr(0, colon);
    out.port = static_cast<std::uint16_t>(port);
  } catch (...) {
    return false;
  }
  return true;
}

/// One progress line (without a line end) for a torrent, or for several summed up.
std::string progress_line(const torrent_progress& p) {
  char line[256];
  if (p.checking) {
    double pct = p.check_total ? 100.0 * p.check_done / p.check_total : 0.0;
    std::snprintf(line, sizeof line, "checking existing data %5.1f%% (%u/%u pieces)", pct,
                  p.check_done, p.check_total);
    return line;
  }
  if (p.seeding) {
    std::snprintf(line, sizeof line, "seeding  up %s/s  uploaded %s  peers %u",
                  human_size(p.upload_rate).c_str(),
                  human_size(static_cast<double>(p.uploaded_payload)).c_str(), p.peers);
    return line;
  }
  double done = static_cast<double>(p.verified_bytes + p.dirty_bytes);
  double pct = p.total_size ? 100.0 * done / static_cast<double>(p.total_size) : 100.0;
  double left = static_cast<double>(p.total_size) - done;
  double eta = p.download_rate > 0 ? left / p.download_rate : -1;
  std::snprintf(line, sizeof line, "%5.1f%%  %s/%s  down %s/s  up %s/s  peers %u/%u  ETA %s",
                pct, human_size(done).c_str(), human_size(static_cast<double>(p.total_size)).c_str(),
                human_size(p.download_rate).c_str(), human_size(p.upload_rate).c_str(), p.peers,
                p.known_peers, eta_text(eta).c_str());
  return line;
}

/// The sum of several torrents' reports: checking while any checks, seeding when all seed.
torrent_progress total_of(const std::vector<const torrent_progress*>& all) {
  torrent_progress t;
  t.seeding = !all.empty();
  for (auto* p : all) {
    t.total_size += p->total_size;
    t.verified_bytes += p->verified_bytes;
    t.dirty_bytes += p->dirty_bytes;
    t.downloaded_payload += p->downloaded_payload;
    t.uploaded_payload += p->uploaded_payload;
    t.pieces += p->pieces;
    t.pieces_verified += p->pieces_verified;
    t.pieces_failed += p->pieces_failed;
    t.peers += p->peers;
    t.peers_unchoked += p->peers_unchoked;
    t.known_peers += p->known_peers;
    t.download_rate += p->download_rate;
    t.upload_rate += p->upload_rate;
    t.checking = t.checking || p->checking;
    t.check_done += p->check_done;
    t.check_total += p->check_total;
    t.seeding = t.seeding && p->seeding;
  }
  return t;
}

/// [magnet] `info MAGNET`: what the link says (its metadata is not fetched).
int magnet_info(const std::string& text) {
  auto link = parse_magnet(text);
  if (!link) {
    std::fprintf(stderr, "error: %s\n", link.error().message.c_str());
    return 2;
  }
  std::printf("magnet link\n");
  std::printf("info-hash:   %s\n", to_hex(link->hash).c_str());
  std::printf("name:        %s\n", link->name.empty() ? "(none given)"
                                                     : printable(link->name).c_str());
  for (auto& t : link->trackers)
    std::printf("tracker:     %s\n", printable(t).c_str());
  for (auto& p : link->peers)
    std::printf("peer:        %s:%u\n",
                p.host.find(':') != std::string::npos ? ("[" + p.host + "]").c_str()
                                                      : printable(p.host).c_str(),
                p.port);
  return 0;
}

int cmd_info(const std::string& path) {
  if (is_magnet(path))
    return magnet_info(path);
  auto m = load_metainfo(path);
  if (!m) {
    std::fprintf(stderr, "error: %s\n", m.error().message.c_str()); // names the path
    return 2;
  }
  std::printf("name:        %s\n", printable(m->name).c_str());
  std::printf("info-hash:   %s\n", to_hex(m->hash).c_str());
  // BEP 47 padding files only align pieces: they are neither content nor stored.
  const auto size = m->content_size();
  std::size_t pads = 0;
  for (auto& f : m->files)
    pads += f.pad;
  std::printf("total size:  %llu bytes (%s)\n", static_cast<unsigned long long>(size),
              human_size(static_cast<double>(size)).c_str());
  if (pads > 0)
    std::printf("padding:     %llu bytes in %zu padding files (not stored)\n",
                static_cast<unsigned long long>(m->total_size - size), pads);
  std::printf("piece size:  %u bytes (%s)\n", m->piece_length,
              human_size(m->piece_length).c_str());
  std::printf("pieces:      %u\n", m->piece_count());
  std::printf("private:     %s\n", m->is_private ? "yes" : "no");
  for (auto& tier : m->tracker_tiers())
    for (auto& url : tier)
      std::printf("tracker:     %s\n", printable(url).c_str());
  if (!m->comment.empty())
    std::printf("comment:     %s\n", printable(m->comment).c_str());
  std::printf("files:       %zu\n", m->files.size() - pads);
  // Numbered from 1, padding files left out: the numbers `download --select-file` takes.
  std::size_t number = 0;
  for (auto& f : m->files) {
    if (f.pad)
      continue;
    std::string p;
    for (auto& c : f.path)
      p += (p.empty() ? "" : "/") + c;
    std::printf("  %4zu  %12llu  %s\n", ++number, static_cast<unsigned long long>(f.length),
                printable(p).c_str());
  }
  return 0;
}

struct download_options {
  std::vector<std::string> torrents;
  std::string out_dir = ".";
  std::vector<std::string> peers;
  double timeout = 0;
  std::string listen;         // empty: 0.0.0.0, port 6881 or the next free one up to 6889
  bool no_tracker = false;
  unsigned max_peers = 50;
  unsigned max_peers_per_ip = 8;
  unsigned pipeline = 512;
  unsigned upload_slots = 4;
  unsigned peer_timeout_s = 150;   // silent peers are closed after this
  double handshake_timeout_s = 10; // connect + handshake must finish by then
  int metrics_port = -1;      // serve Prometheus text on 127.0.0.1:PORT (0: any free port)
  std::string download_limit = "0"; // session-wide, bytes per second (RATE: 10M, 500K, ...)
  std::string upload_limit = "0";
  unsigned max_connections = 0;     // session-wide (0: no limit)
  bool seed = false;          // keep seeding after completion (download --seed, and `seed`)
  double seed_ratio = 0;      // stop seeding once uploaded >= ratio * size (0: no limit)
  double seed_time = 0;       // stop seeding after this many seconds (0: no limit)
  bool seed_only = false;     // the `seed` command: the data must already be complete
  std::vector<std::string> select_files; // --select-file LIST (1-based, as `info` numbers)
  std::vector<std::string> select_globs; // --select GLOB
  bool sequential = false;               // --sequential: pieces in order (streaming)
  int verbosity = 0;
  bool quiet = false;
  // threads: fixed thread counts, whatever the number of torrents (0: the default).
  unsigned io_threads = 0;   // asio threads serving every socket (default: one per core)
  unsigned disk_threads = 0; // the disk pool of every torrent (default: 4)
  // UDP trackers (BEP 15): the wait for a first answer, doubled per retry.
  double udp_tracker_timeout_s = 15;
  // DHT (BEP 5): nodes to bootstrap from (HOST:PORT); none given: the built-in routers, but
  // only when listening on a non-loopback address (see dht_bootstrap_for).
  std::vector<std::string> dht_bootstrap;
  bool no_dht = false;
};


const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : "SIGTERM"; }


/// Opens the session's listen socket: `--listen HOST:PORT` exactly, or by default every
/// interface on the first free port of 6881-6889.
std::shared_ptr<peer_listener> open_listener(io_runtime& io, const download_options& opt,
                                             const endpoint& listen, std::string& host,
                                             std::string& err) {
  session_config sc;
  sc.io = &io;
  sc.handshake_timeout_ms = static_cast<std::uint32_t>(opt.handshake_timeout_s * 1000);
  if (!opt.listen.empty()) {
    sc.listen_host = host = listen.host;
    sc.listen_port = listen.port;
    return open_session_listener(sc, err);
  }
  host = "0.0.0.0";
  auto l = open_default_listener(sc, err);
  if (!l)
    err += "; choose one with --listen HOST:PORT";
  return l;
}

/// What the CLI knows of each torrent it runs.
struct cli_torrent {
  std::string path;
  std::shared_ptr<const metainfo> meta;
  torrent_id id = 0;
  torrent_progress last{};
  std::vector<file_priority> priorities; // empty: every file (no --select-file / --select)
  std::uint64_t selected_size = 0;       // content bytes of the selected files
  bool completed = false;
  bool removed = false;
  /// [magnet] Added from a magnet link: `meta` is a stand-in that names it (dn or hash) until
  /// the session has fetched the metadata; the add sends the link instead.
  std::shared_ptr<const magnet_link> magnet;
};

int cmd_download(const download_options& opt) {
  std::vector<cli_torrent> torrents;
  for (auto& path : opt.torrents) {
    if (is_magnet(path)) {
      // [magnet] A link: malformed is exit 2; the metadata comes from peers.
      auto link = parse_magnet(path);
      if (!link) {
        std::fprintf(stderr, "error: %s\n", link.error().message.c_str());
        return 2;
      }
      if (!opt.select_files.empty() || !opt.select_globs.empty()) {
        std::fprintf(stderr, "error: --select-file/--select need the torrent's file list, which "
                             "a magnet link does not carry\n");
        return 2;
      }
      for (auto& t : torrents) {
        if (t.meta->hash == link->hash) {
          std::fprintf(stderr, "error: %s and %s are the same torrent (info-hash %s)\n",
                       t.path.c_str(), path.c_str(), to_hex(link->hash).c_str());
          return 2;
        }
      }
      auto stand_in = std::make_shared<metainfo>();
      stand_in->name = link->name.empty() ? to_hex(link->hash) : link->name;
      stand_in->hash = link->hash;
      cli_torrent t;
      t.path = path;
      t.meta = std::move(stand_in);
      t.magnet = std::make_shared<const magnet_link>(std::move(*link));
      torrents.push_back(std::move(t));
      continue;
    }
    auto m = load_metainfo(path);
    if (!m) {
      std::fprintf(stderr, "error: %s\n", m.error().message.c_str()); // names the path
      return 2;
    }
    auto layout = file_layout::create(*m);
    if (!layout) {
      std::fprintf(stderr, "error: %s: %s\n", path.c_str(), layout.error().message.c_str());
      return 2;
    }
    for (auto& t : torrents) {
      if (t.meta->hash == m->hash) {
        std::fprintf(stderr, "error: %s and %s are the same torrent (info-hash %s)\n",
                     t.path.c_str(), path.c_str(), to_hex(m->hash).c_str());
        return 2;
      }
    }
    cli_torrent t;
    t.path = path;
    // File selection: one priority per file; a bad list or a glob matching nothing ends the
    // run here, before anything is created. With several torrents it applies to each.
    auto selection = select_files(*layout, opt.select_files, opt.select_globs);
    if (!selection) {
      std::fprintf(stderr, "error: %s: %s\n", path.c_str(), selection.error().message.c_str());
      return 2;
    }
    for (std::size_t i = 0; i < m->files.size(); ++i)
      if (!m->files[i].pad && (*selection)[i] != file_priority::skip)
        t.selected_size += m->files[i].length;
    if (!opt.select_files.empty() || !opt.select_globs.empty())
      t.priorities = std::move(*selection);
    t.meta = std::make_shared<const metainfo>(std::move(*m));
    torrents.push_back(std::move(t));
  }
  std::vector<endpoint> peers;
  for (auto& p : opt.peers) {
    endpoint ep;
    if (!parse_endpoint(p, ep)) {
      std::fprintf(stderr, "error: --peer %s: expected HOST:PORT\n", p.c_str());
      return 2;
    }
    peers.push_back(ep);
  }
  std::vector<endpoint> dht_nodes;
  for (auto& b : opt.dht_bootstrap) {
    endpoint ep;
    if (!parse_endpoint(b, ep) || ep.port == 0) {
      std::fprintf(stderr, "error: --dht-bootstrap %s: expected HOST:PORT\n", b.c_str());
      return 2;
    }
    dht_nodes.push_back(ep);
  }
  endpoint listen;
  if (opt.listen.empty()) {
    // the default: every interface, 6881-6889 (see open_listener)
  } else if (opt.listen.size() > 2 &&
             opt.listen.compare(opt.listen.size() - 2, 2, ":0") == 0) {
    listen = endpoint{opt.listen.substr(0, opt.listen.size() - 2), 0};
  } else if (!parse_endpoint(opt.listen, listen)) {
    std::fprintf(stderr, "error: --listen %s: expected HOST:PORT\n", opt.listen.c_str());
    return 2;
  }
  set_session_limits limits;
  {
    std::string why;
    auto down = parse_rate(opt.download_limit, why);
    if (!down) {
      std::fprintf(stderr, "error: --download-limit %s: %s\n", opt.download_limit.c_str(),
                   why.c_str());
      return 2;
    }
    auto up = parse_rate(opt.upload_limit, why);
    if (!up) {
      std::fprintf(stderr, "error: --upload-limit %s: %s\n", opt.upload_limit.c_str(),
                   why.c_str());
      return 2;
    }
    limits.download = *down;
    limits.upload = *up;
    limits.max_connections = opt.max_connections;
  }
  // [magnet] A link's x.pe peers count as --peer. The DHT finds peers without trackers when it
  // has nodes to start from: given ones, or the default routers (on a public address).
  bool link_peers = std::any_of(torrents.begin(), torrents.end(), [](const cli_torrent& t) {
    return t.magnet && !t.magnet->peers.empty();
  });
  if (opt.no_tracker && peers.empty() && !link_peers && !opt.seed_only &&
      (opt.no_dht ||
       dht_bootstrap_for(dht_nodes, opt.listen.empty() ? "0.0.0.0" : listen.host).empty())) {
    std::fprintf(stderr, "error: --no-tracker needs at least one --peer (or --dht-bootstrap)\n");
    return 2;
  }
  setup_logging(opt.verbosity);
  // The ports first: one that cannot be bound ends the run at once (exit 1, the message names
  // it), before any file is created and before any actor runs.
  // One I/O pool and one disk pool for the process, sized once, whatever the torrents.
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  io_runtime io(opt.io_threads ? opt.io_threads : cores);
  disk_pool disk(opt.disk_threads ? opt.disk_threads : 4);
  std::string err;
  std::string listen_host;
  auto listener = open_listener(io, opt, listen, listen_host, err);
  if (!listener) {
    std::fprintf(stderr, "error: %s\n", err.c_str());
    return 1;
  }
  const std::uint16_t port = listener->port();
  std::shared_ptr<metrics_server> metrics;
  if (opt.metrics_port >= 0) {
    metrics =
      metrics_server::open(io, "127.0.0.1", static_cast<std::uint16_t>(opt.metrics_port), err);
    if (!metrics) {
      std::fprintf(stderr, "error: %s\n", err.c_str());
      return 1;
    }
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);

  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", std::max(2u, std::thread::hardware_concurrency()));
  // An idle CAF worker spins on its queue (100 polls), then polls 500 more times with 50 us
  // sleeps, and only then waits on its condition variable (woken by every enqueue from
  // outside). With hundreds of peers whose timers fire all the time, workers never left the
  // sleeping phase: 500 idle connections cost 13.6 % of a core; during a download every sleep
  // was a system call and a context switch. Skipping that phase: 500 idle connections
  // ~2 % of a core, a 1 GiB download 2.4 instead of 2.7 CPU-s (docs/PERFORMANCE.md).
  cfg.set("work-stealing.moderate-poll-attempts", std::uint64_t{0});
  int rc = 1;
  {
    // From here on nothing returns early: every actor is stopped and awaited below, before the
    // I/O thread they use goes away.
    caf::actor_system sys{cfg};
    session_options so;
    so.io = &io;
    so.disk = &disk;
    so.id = make_peer_id();
    so.listen_port = port;
    so.metrics = metrics;
    if (!opt.no_dht)
      so.dht = session_dht(io, listen_host, port, dht_nodes, opt.out_dir + "/.actorrent/dht.dat");
    auto session = spawn_session(sys, std::move(listener), so);
    {
      // The scoped actor counts as running: it must be gone before the wait below.
      caf::scoped_actor self{sys};
      std::string failure;
      bool running = true;
      auto ask = [&](auto msg) {
        // The session's own answers: limits and subscription cannot fail.
        self->request(session, caf::infinite, std::move(msg))
          .receive([&](session_reply&) {}, [&](caf::error&) {});
      };
      auto add = [&](add_torrent msg) {
        add_torrent_result result;
        self->request(session, caf::infinite, std::move(msg))
          .receive([&](add_torrent_result& r) { result = std::move(r); },
                   [&](caf::error& e) {
                     result.why = error{errc::actor_down, "session: " + caf::to_string(e)};
                   });
        return result;
      };
      ask(limits);
      ask(subscribe{caf::actor_cast<caf::actor>(self)});
      for (auto& t : torrents) {
        torrent_options to;
        to.peers = peers;
        to.use_trackers = !opt.no_tracker;
        to.require_data = opt.seed_only;
        to.max_peers = opt.max_peers;
        to.max_peers_per_ip = opt.max_peers_per_ip;
        to.pipeline = opt.pipeline;
        to.upload_slots = opt.upload_slots;
        to.peer_timeout_s = opt.peer_timeout_s;
        to.handshake_timeout_ms = static_cast<std::uint32_t>(opt.handshake_timeout_s * 1000);
        to.priorities = t.priorities;
        to.sequential = opt.sequential;
        to.udp_tracker_timeout_ms = static_cast<std::uint32_t>(opt.udp_tracker_timeout_s * 1000);
        auto r = add(t.magnet ? add_torrent{nullptr, opt.out_dir, std::move(to), t.magnet}
                              : add_torrent{t.meta, opt.out_dir, std::move(to), nullptr});
        if (r.id == 0) {
          failure = r.why.message;
          rc = r.why.code == errc::unsafe_path ? 2 : 1;
          running = false;
          break;
        }
        t.id = r.id;
      }
      if (running && metrics)
        std::fprintf(stderr, "metrics: http://127.0.0.1:%u/metrics\n", metrics->port());
      spdlog::get("session")->info("listening on {}:{}", listen_host, port);
      auto find = [&](torrent_id id) -> cli_torrent* {
        for (auto& t : torrents)
          if (t.id == id && id != 0)
            return &t;
        return nullptr;
      };
      auto total = [&] {
        std::vector<const torrent_progress*> all;
        for (auto& t : torrents)
          all.push_back(&t.last);
        return total_of(all);
      };
      const bool several = torrents.size() > 1;
      const bool tty = isatty(STDERR_FILENO) && !opt.quiet;
      std::size_t tty_lines = 0; // lines of the last TTY display (cursor is on its last line)
      auto show_tty = [&] {
        // One line per torrent, redrawn in place.
        std::string out;
        if (tty_lines > 1)
          out += "\033[" + std::to_string(tty_lines - 1) + "A";
        for (std::size_t i = 0; i < torrents.size(); ++i) {
          out += "\r\033[K";
          if (several) {
            auto name = printable(torrents[i].meta->name);
            if (name.size() > 24)
              name = name.substr(0, 23) + "~";
            char head[40];
            std::snprintf(head, sizeof head, "%-24s  ", name.c_str());
            out += head;
          }
          out += progress_line(torrents[i].last);
          if (i + 1 < torrents.size())
            out += "\n";
        }
        tty_lines = torrents.size();
        std::fputs(out.c_str(), stderr);
        std::fflush(stderr);
      };
      auto end_tty = [&] {
        if (tty && tty_lines > 0)
          std::fprintf(stderr, "\n");
        tty_lines = 0;
      };
      auto start = std::chrono::steady_clock::now();
      auto last_plain = start;
      std::optional<std::chrono::steady_clock::time_point> completed_at; // all of them
      bool was_checking = false;
      bool seed_line_shown = false; // the last plain seeding line: what it said
      std::uint64_t seed_line_uploaded = 0;
      std::uint32_t seed_line_peers = 0;
      auto seconds_since = [](std::chrono::steady_clock::time_point t) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
      };
      auto on_progress = [&] {
        auto p = total();
        if (p.checking && !was_checking) {
          was_checking = true;
          spdlog::get("storage")->info("checking existing data");
        }
        auto now = std::chrono::steady_clock::now();
        bool due = tty || now - last_plain >= std::chrono::seconds(2);
        if (!tty && p.seeding) {
          // A log file must not grow by a line every 2 s for as long as a seed runs: one
          // line when seeding starts, then at most one a minute and only when the
          // uploaded bytes or the peer count changed.
          bool changed = !seed_line_shown || p.uploaded_payload != seed_line_uploaded ||
                         p.peers != seed_line_peers;
          due = changed && (!seed_line_shown || now - last_plain >= std::chrono::minutes(1));
        }
        if (opt.quiet || !due)
          return;
        last_plain = now;
        if (tty) {
          show_tty();
        } else {
          // Not a terminal: one line for all torrents together.
          auto line = progress_line(p);
          if (several)
            std::fprintf(stderr, "all %zu: %s\n", torrents.size(), line.c_str());
          else
            std::fprintf(stderr, "%s\n", line.c_str());
          std::fflush(stderr);
        }
        if (p.seeding) {
          seed_line_shown = true;
          seed_line_uploaded = p.uploaded_payload;
          seed_line_peers = p.peers;
        }
      };
      while (running) {
        self->receive(
          [&](torrent_event& ev) {
            auto* t = find(ev.id);
            if (!t)
              return;
            switch (ev.kind) {
              case torrent_event_kind::added:
              case torrent_event_kind::checked:
              case torrent_event_kind::pieces_verified: // cluster workers only
                break;
              case torrent_event_kind::progress:
                t->last = std::move(ev.progress);
                on_progress();
                break;
              case torrent_event_kind::finished: {
                t->last = std::move(ev.progress);
                if (t->completed)
                  break;
                t->completed = true;
                if (t->magnet) {
                  // [magnet] Name and size are known now: from the .torrent the session saved.
                  auto saved = load_metainfo(opt.out_dir + "/.actorrent/" +
                                             to_hex(t->magnet->hash) + ".torrent");
                  if (saved && saved->hash == t->magnet->hash) {
                    t->selected_size = saved->content_size();
                    t->meta = std::make_shared<const metainfo>(std::move(*saved));
                  } else if (t->selected_size == 0) {
                    t->selected_size = t->last.total_size;
                  }
                }
                end_tty();
                if (opt.seed_only) {
                  std::printf("seeding: %s on %s:%u (%u pieces verified)\n",
                              printable(t->meta->name).c_str(), listen_host.c_str(), port,
                              t->last.pieces_verified);
                } else {
                  double elapsed = seconds_since(start);
                  // What this run fetched (a resumed download already had part of it).
                  double rate =
                    elapsed > 0 ? static_cast<double>(t->last.downloaded_payload) / elapsed : 0;
                  // With a selection: the selected files' size. Last: what this run fetched.
                  std::printf("complete: %s %llu bytes in %.2f s (%s/s), %u pieces verified, %u "
                              "failed the hash check, %llu bytes uploaded, %llu bytes "
                              "downloaded\n",
                              printable(t->meta->name).c_str(),
                              static_cast<unsigned long long>(t->selected_size),
                              elapsed, human_size(rate).c_str(), t->last.pieces_verified,
                              t->last.pieces_failed,
                              static_cast<unsigned long long>(t->last.uploaded_payload),
                              static_cast<unsigned long long>(t->last.downloaded_payload));
                }
                std::fflush(stdout);
                bool all = std::all_of(torrents.begin(), torrents.end(),
                                       [](const cli_torrent& x) { return x.completed; });
                if (all) {
                  completed_at = std::chrono::steady_clock::now();
                  if (!opt.seed) {
                    running = false;
                    rc = 0;
                  }
                }
                break;
              }
              case torrent_event_kind::failed:
                failure = several ? printable(t->meta->name) + ": " + ev.why.message
                                  : ev.why.message;
                running = false;
                rc = 1;
                break;
              case torrent_event_kind::removed:
                t->last = std::move(ev.progress);
                t->removed = true;
                if (!t->completed) {
                  failure = printable(t->meta->name) + ": stopped unexpectedly";
                  running = false;
                  rc = 1;
                }
                break;
            }
          },
          [&](session_reply&) {}, [&](session_stopped&) {},
          caf::after(std::chrono::milliseconds(200)) >> [] {});
        if (!running)
          break;
        if (int sig = stop_signal.load()) {
          // A signal while seeding after a complete download is the normal way to stop.
          if (completed_at) {
            rc = 0;
          } else {
            failure = std::string("stopped by ") + signal_name(sig);
            rc = 130;
          }
          break;
        }
        if (completed_at) {
          auto p = total();
          bool ratio_met = opt.seed_ratio > 0;
          for (auto& t : torrents)
            ratio_met = ratio_met && static_cast<double>(t.last.uploaded_payload) >=
                                       opt.seed_ratio * static_cast<double>(t.meta->total_size);
          bool time_met = opt.seed_time > 0 && seconds_since(*completed_at) >= opt.seed_time;
          if (ratio_met || time_met) {
            spdlog::get("session")->info("seeding goal met: uploaded {} bytes",
                                         p.uploaded_payload);
            rc = 0;
            break;
          }
        } else if (opt.timeout > 0 && seconds_since(start) > opt.timeout) {
          auto p = total();
          char buf[256];
          double elapsed = seconds_since(start);
          if (p.peers == 0)
            std::snprintf(buf, sizeof buf,
                          "timed out after %.0f s: no peer could be reached (%u known)", elapsed,
                          p.known_peers);
          else
            std::snprintf(buf, sizeof buf,
                          "timed out after %.0f s with %u of %u pieces verified (%u peers)",
                          elapsed, p.pieces_verified, p.pieces, p.peers);
          failure = buf;
          rc = 3;
          break;
        }
      }
      end_tty();
      // Every torrent's last report counts what peers sent and received until they closed.
      self->send(session, stop_request{});
      bool stopped = false;
      while (!stopped)
        self->receive(
          [&](torrent_event& ev) {
            if (auto* t = find(ev.id); t && ev.kind == torrent_event_kind::removed)
              t->last = std::move(ev.progress);
          },
          [&](session_stopped&) { stopped = true; }, [&](session_reply&) {},
          caf::after(std::chrono::seconds(5)) >> [&] { stopped = true; });
      if (rc != 0)
        std::fprintf(stderr, "error: %s\n", failure.c_str());
      if (completed_at && opt.seed)
        std::printf("uploaded: %llu bytes\n",
                    static_cast<unsigned long long>(total().uploaded_payload));
      std::fflush(stdout);
    }
    // Every actor (peers hold sockets) must be gone before the I/O threads stop; storage saves
    // the resume data on its way out.
    sys.await_all_actors_done();
  }
  if (metrics)
    metrics->close();
  io.stop();
  return rc;
}

} // namespace

/// Options shared by `download` and `seed`.
void add_peer_options(CLI::App* cmd, download_options& o) {
  cmd->add_option("--peer", o.peers, "connect to this peer (HOST:PORT), repeatable")
    ->allow_extra_args(false);
  cmd->add_option("--listen", o.listen, "listen for peers on HOST:PORT (port 0: any; default: "
                  "every interface, port 6881 or the next free one up to 6889)");
  cmd->add_flag("--no-tracker", o.no_tracker, "do not announce to the torrent's trackers");
  // BEP 15's 15 s; tests shorten it so that a silent UDP tracker fails over in about a second.
  cmd->add_option("--udp-tracker-timeout", o.udp_tracker_timeout_s, "wait this many seconds for "
                  "a UDP tracker's answer before sending again (doubled each time; after 2 tries "
                  "the next tracker)")
    ->capture_default_str()
    ->check(CLI::Range(0.05, 60.0));
  cmd->add_option("--max-peers", o.max_peers, "connections at most")
    ->capture_default_str()
    ->check(CLI::Range(1u, 10000u));
  cmd->add_option("--max-peers-per-ip", o.max_peers_per_ip,
                  "connections to or from one IP address at most")
    ->capture_default_str()
    ->check(CLI::Range(1u, 10000u));
  cmd->add_option("--upload-slots", o.upload_slots, "peers unchoked at once (plus one optimistic)")
    ->capture_default_str()
    ->check(CLI::Range(1u, 1000u));
  cmd->add_option("--seed-ratio", o.seed_ratio, "when seeding: stop after uploading this many "
                  "times the size (0: no limit)");
  cmd->add_option("--seed-time", o.seed_time, "when seeding: stop after this many seconds "
                  "(0: no limit)");
  cmd->add_option("--peer-timeout", o.peer_timeout_s, "close a peer that sends no complete "
                  "message for this many seconds")
    ->capture_default_str()
    ->check(CLI::Range(1u, 3600u));
  cmd->add_option("--handshake-timeout", o.handshake_timeout_s, "close a connection that has not "
                  "connected and handshaken after this many seconds")
    ->capture_default_str()
    ->check(CLI::Range(0.1, 600.0));
  cmd->add_option("--download-limit", o.download_limit, "session download rate at most: bytes "
                  "per second, or 500K, 10M (= 10 MiB/s), 1G; 0: no limit")
    ->capture_default_str();
  cmd->add_option("--upload-limit", o.upload_limit, "session upload rate at most (as "
                  "--download-limit)")
    ->capture_default_str();
  cmd->add_option("--max-connections", o.max_connections, "peer connections of all torrents "
                  "together at most (0: no limit)")
    ->capture_default_str();
  cmd->add_option("--metrics-port", o.metrics_port,
                  "serve Prometheus metrics on 127.0.0.1:PORT (0: any free port)");
  cmd->add_option("--io-threads", o.io_threads,
                  "threads serving the sockets of every torrent (default: one per core)")
    ->check(CLI::Range(1u, 256u));
  cmd->add_option("--disk-threads", o.disk_threads,
                  "threads for the disk work (writes, hashing, uploads, checks) of every torrent "
                  "(default: 4)")
    ->check(CLI::Range(1u, 256u));
  cmd->add_option("--dht-bootstrap", o.dht_bootstrap,
                  "DHT node to join the DHT through (HOST:PORT), repeatable (default: the "
                  "public routers, unless listening on loopback)")
    ->allow_extra_args(false);
  cmd->add_flag("--no-dht", o.no_dht, "do not use the DHT (BEP 5)");
  cmd->add_flag("-v,--verbose", o.verbosity, "more log output (-vv: debug)");
  cmd->add_flag("-q,--quiet", o.quiet, "no progress display");
}

int main(int argc, char** argv) {
  CLI::App app{"actorrent: a BitTorrent client built on actors"};
  app.require_subcommand(1);

  std::string info_path;
  auto* info = app.add_subcommand("info", "Print what a .torrent file or a magnet link describes");
  info->add_option("torrent", info_path, "the .torrent file, or a magnet link")->required();

  scrape_options so;
  auto* scrape = app.add_subcommand("scrape", "Ask each tracker of a torrent or magnet link for "
                                              "its seeders, leechers and completed downloads");
  scrape->add_option("torrent", so.torrent, "the .torrent file, or a magnet link")->required();
  scrape->add_option("--tracker", so.trackers, "also ask this tracker (http://, https:// or "
                     "udp://; repeatable)")
    ->allow_extra_args(false);
  scrape->add_option("--timeout", so.timeout_s, "seconds to wait for each tracker")
    ->capture_default_str()
    ->check(CLI::Range(0.1, 600.0));
  scrape->add_flag("-q,--quiet", so.quiet, "no \"scraping ...\" line on stderr");

  download_options dl;
  auto* download = app.add_subcommand("download", "Download a torrent into a directory");
  download->add_option("torrent", dl.torrents,
                       "the .torrent file(s) or magnet link(s), all downloaded at once")
    ->required();
  download->add_option("-o,--output", dl.out_dir, "output directory (created if missing)")
    ->capture_default_str();
  add_peer_options(download, dl);
  download->add_option("--timeout", dl.timeout, "give up after this many seconds (0: never)")
    ->capture_default_str();
  download->add_option("--pipeline", dl.pipeline,
                       "requests in flight per peer (at most its reqq, 250 if it names none)")
    ->capture_default_str()
    ->check(CLI::Range(1u, 2000u));
  download->add_flag("--seed", dl.seed, "keep seeding after the download completes");
  download->add_option("--select-file", dl.select_files,
                       "download only these files, numbered as `info` lists them: 1,3-5 "
                       "(repeatable; with --select: either)")
    ->allow_extra_args(false);
  download->add_option("--select", dl.select_globs,
                       "download only files whose path inside the torrent matches GLOB (*, ?, "
                       "[..]; without '/': the file name in any folder; repeatable)")
    ->allow_extra_args(false);
  download->add_flag("--sequential", dl.sequential, "fetch pieces in order (for streaming)");

  create_options co;
  std::string create_out;
  std::string piece_size_text = "0";
  std::vector<std::string> announce;
  bool create_quiet = false;
  auto* create = app.add_subcommand("create", "Make a .torrent from a file or directory");
  create->add_option("path", co.path, "file or directory to describe")->required();
  create->add_option("-o,--output", create_out, "the .torrent file to write")->required();
  create->add_option("--piece-size", piece_size_text,
                     "piece size in bytes, e.g. 256K or 1M (0: chosen from the total size)")
    ->capture_default_str();
  create->add_option("--announce", announce,
                     "tracker URL; repeat for more tiers, comma-separate URLs of one tier")
    ->allow_extra_args(false);
  create->add_flag("--private", co.is_private, "private torrent (BEP 27)");
  create->add_option("--comment", co.comment, "comment stored in the torrent");
  create->add_option("--threads", co.threads, "hashing threads (0: one per core)")
    ->capture_default_str();
  create->add_flag("-q,--quiet", create_quiet, "no progress display");

  download_options sd;
  sd.seed = sd.seed_only = true;
  auto* seed = app.add_subcommand("seed", "Check existing data and seed it");
  // `seed FILE.torrent DIR`, or several torrents with the directory as -o:
  // `seed A.torrent B.torrent ... -o DIR` (each torrent's data in DIR/<its name>).
  std::vector<std::string> seed_args;
  std::string seed_dir;
  seed->add_option("torrent", seed_args, "the .torrent file(s), then DIR unless -o is given")
    ->required();
  seed->add_option("-o,--output", seed_dir, "directory that holds the data of every torrent");
  add_peer_options(seed, sd);

  // `batch JOBFILE`: the jobs of a job file through one session (cli/batch_command.cpp).
  batch_options bo;
  auto* batch = app.add_subcommand("batch", "Run the jobs of a job file (docs/BATCH.md)");
  batch->add_option("jobfile", bo.job_file, "the job file (.textproto, .txtpb or .json)")
    ->required();
  batch->add_flag("--dry-run", bo.dry_run, "validate and print the plan; no network, nothing "
                  "written");
  batch->add_option("--summary", bo.summary, "write the summary JSON here (default: "
                    "STATE_DIR/summary.json)");
  batch->add_flag("-q,--quiet", bo.quiet, "no progress display");
  batch->add_flag("-v,--verbose", bo.verbosity, "more log output (-vv: debug)");

  // [cluster] `cluster coordinator|worker` (cli/cluster_command.cpp).
  cluster_command cluster{app};

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (*info)
    return cmd_info(info_path);
  if (*scrape)
    return run_scrape(so);
  if (*batch)
    return run_batch(bo);
  if (cluster.chosen())
    return cluster.run();
  if (*seed) {
    if (seed_dir.empty()) {
      if (seed_args.size() < 2) {
        std::fprintf(stderr, "error: seed: expected FILE.torrent DIR, or FILE.torrent... -o DIR\n");
        return 2;
      }
      seed_dir = seed_args.back();
      seed_args.pop_back();
    }
    sd.out_dir = seed_dir;
    sd.torrents = std::move(seed_args);
    return cmd_download(sd);
  }
  if (*create) {
    if (!parse_size(piece_size_text, co.piece_length)) {
      std::fprintf(stderr, "error: --piece-size %s: expected bytes like 262144, 256K or 1M\n",
                   piece_size_text.c_str());
      return 2;
    }
    co.trackers = parse_tiers(announce);
    return run_create(co, create_out, create_quiet);
  }
  return cmd_download(dl);
}
