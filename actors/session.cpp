#include "actors/session.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/metrics.hpp"
#include "actors/metrics_server.hpp"
#include "actors/peer_connection.hpp"
#include "actors/torrent_actor.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/error.hpp"
#include "storage/atomic_file.hpp"
#include "storage/file_layout.hpp"
#include "storage/file_store.hpp"
#include "storage/resume.hpp"

namespace actorrent {

const char* to_string(torrent_event_kind k) {
  switch (k) {
    case torrent_event_kind::added: return "added";
    case torrent_event_kind::checked: return "checked";
    case torrent_event_kind::progress: return "progress";
    case torrent_event_kind::finished: return "finished";
    case torrent_event_kind::failed: return "failed";
    case torrent_event_kind::removed: return "removed";
    case torrent_event_kind::pieces_verified: return "pieces_verified";
  }
  return "?";
}

namespace {

struct torrent_entry {
  caf::actor handle;
  std::shared_ptr<const metainfo> meta;
  std::string label;          // metrics label: hex prefix of the info-hash
  torrent_progress last;      // the latest report, without its metrics text
  std::string metrics;        // the latest Prometheus text of its counters
  bool checked = false;       // `checked` was announced
  bool removing = false;      // told to stop; `removed` follows its last report
  std::optional<info_hash> dht_hash; // looked up on the DHT (public torrents; see track_on_dht)
};

struct session_state {
  session_options opts;
  std::shared_ptr<peer_listener> listener;
  std::map<torrent_id, torrent_entry> torrents;
  std::map<info_hash, torrent_id> by_hash;
  std::map<caf::actor_addr, torrent_id> by_actor;
  std::vector<caf::actor> observers;
  torrent_id next_id = 1;
  bool stopping = false;
  set_session_limits limits;
  caf::actor dht; // the DHT (invalid: none)
  std::uint16_t dht_port = 0; // its UDP port, told to peers in PORT messages (BEP 5)
};

using self_ptr = caf::stateful_actor<session_state>*;

torrent_event event_of(torrent_id id, const torrent_entry& e, torrent_event_kind kind) {
  torrent_event ev;
  ev.id = id;
  ev.kind = kind;
  ev.name = e.meta->name;
  ev.hash = e.meta->hash;
  ev.progress = e.last;
  return ev;
}

void emit(self_ptr self, const torrent_event& ev) {
  for (auto& o : self->state.observers)
    self->send(o, ev);
}

/// The torrent that sent the current message (0: not one of ours any more).
torrent_id sender_id(self_ptr self) {
  auto it = self->state.by_actor.find(caf::actor_cast<caf::actor_addr>(self->current_sender()));
  return it == self->state.by_actor.end() ? 0 : it->second;
}

/// Has the DHT look up (and announce) `hash` for torrent `e` from now on. Needs only the
/// info-hash: a torrent still awaiting its metadata (magnet link) can be tracked too. Never for
/// a private torrent (BEP 27).
void track_on_dht(self_ptr self, torrent_entry& e, const info_hash& hash) {
  auto& st = self->state;
  if (!st.dht)
    return;
  e.dht_hash = hash;
  self->send(st.dht, dht_track{hash, e.handle, st.opts.listen_port});
}

/// Stops the DHT for torrent `e`, its running lookup included (no announce follows). For a
/// torrent tracked by info-hash whose metadata turns out to be private (BEP 27): called at its
/// first report after the metadata is verified (torrent_progress.is_private).
void untrack_on_dht(self_ptr self, torrent_entry& e) {
  auto& st = self->state;
  if (!st.dht || !e.dht_hash)
    return;
  self->send(st.dht, dht_untrack{*e.dht_hash});
  e.dht_hash.reset();
}

void forget(self_ptr self, torrent_id id, torrent_event_kind kind) {
  auto& st = self->state;
  auto it = st.torrents.find(id);
  if (it == st.torrents.end())
    return;
  emit(self, event_of(id, it->second, kind));
  st.by_hash.erase(it->second.meta->hash);
  st.by_actor.erase(it->second.handle.address());
  self->demonitor(it->second.handle);
  st.torrents.erase(it);
}

void finish_session(self_ptr self) {
  auto& st = self->state;
  for (auto& o : st.observers)
    self->send(o, session_stopped{});
  st.observers.clear();
  st.torrents.clear();
  st.by_actor.clear();
  self->quit();
}

void publish_metrics(self_ptr self) {
  auto& st = self->state;
  if (!st.opts.metrics)
    return;
  std::vector<labelled_metrics> parts;
  parts.reserve(st.torrents.size() + 1);
  metrics_registry m;
  m.gauge("session_torrents", static_cast<double>(st.torrents.size()), "torrents in the session");
  if (st.opts.io) {
    m.gauge("session_connections", st.opts.io->connection_count(),
            "peer connections of all torrents (handshaking included)");
    m.gauge("session_receive_buffer_bytes",
            static_cast<double>(st.opts.io->receive_buffer_bytes()),
            "receive buffers held beyond each connection's first");
    m.gauge("session_send_buffer_bytes", static_cast<double>(st.opts.io->send_buffer_bytes()),
            "bytes queued for sending on all connections");
  }
  m.gauge("session_download_limit_bytes", static_cast<double>(st.limits.download),
          "session download limit, bytes per second (0: none)");
  m.gauge("session_upload_limit_bytes", static_cast<double>(st.limits.upload),
          "session upload limit, bytes per second (0: none)");
  std::string text = m.to_prometheus();
  for (auto& [id, e] : st.torrents)
    if (!e.metrics.empty())
      parts.push_back(labelled_metrics{e.label, e.metrics});
  text += merge_metrics(parts);
  st.opts.metrics->publish(std::move(text));
}

// -- [magnet] adding a magnet link ------------------------------------------------------------

std::string saved_torrent_path(const std::string& out_dir, const info_hash& h) {
  return out_dir + "/.actorrent/" + to_hex(h) + ".torrent";
}

/// Once the metadata is verified (on the torrent's thread): saves the .torrent, then prepares
/// the files and resume data exactly as an add of that .torrent does.
result<metadata_ready> prepare_fetched(const std::string& out_dir,
                                       const std::shared_ptr<const metainfo>& meta,
                                       const std::string& torrent_file, bool read_resume) {
  auto layout = file_layout::create(*meta);
  if (!layout)
    return layout.error();
  for (const auto& dir : {out_dir, out_dir + "/.actorrent"})
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      return error{errc::io_error, "cannot create directory " + dir + ": " + std::strerror(errno)};
  if (auto saved = write_file_atomically(saved_torrent_path(out_dir, meta->hash), torrent_file);
      !saved)
    return saved.error();
  auto shared_layout = std::make_shared<const file_layout>(std::move(*layout));
  // [cluster] save_resume = false: nothing is trusted or checked (the plan is the record).
  auto resume = read_resume ? load_resume(out_dir, *meta, *shared_layout) : resume_result{};
  auto store = file_store::open(shared_layout, out_dir, {}, part_file_path(out_dir, meta->hash));
  if (!store)
    return store.error();
  metadata_ready ready;
  ready.store = std::move(*store);
  for (auto p : resume.trusted)
    ready.trusted_pieces.push_back(p);
  for (auto p : resume.to_check)
    ready.pieces_to_check.push_back(p);
  return ready;
}

/// What every torrent the session runs gets from it and from its torrent_options (a .torrent
/// and a magnet link alike).
void fill_common(self_ptr self, const torrent_options& o, torrent_config& tc) {
  auto& st = self->state;
  tc.id = st.opts.id;
  tc.listen_port = st.opts.listen_port;
  if (st.dht) {
    tc.dht = st.dht;
    tc.dht_port = st.dht_port;
  }
  tc.io = st.opts.io;
  tc.disk = st.opts.disk;
  tc.publish_metrics = st.opts.metrics != nullptr;
  tc.peers = o.peers;
  tc.use_trackers = o.use_trackers;
  tc.observer = caf::actor_cast<caf::actor>(self);
  tc.max_peers = o.max_peers;
  tc.max_peers_per_ip = o.max_peers_per_ip;
  tc.max_outstanding = o.pipeline;
  tc.upload_slots = o.upload_slots;
  tc.peer_timeout_s = o.peer_timeout_s;
  tc.handshake_timeout_ms = o.handshake_timeout_ms;
  tc.sequential = o.sequential;
  tc.udp_tracker_timeout_ms = o.udp_tracker_timeout_ms;
  // [cluster] A worker's torrent: its shard, its write fence, pieces reported as they verify.
  tc.piece_filter = o.piece_filter;
  tc.report_pieces = o.report_pieces;
  tc.save_resume = o.save_resume;
  tc.fence = o.fence;
}

add_torrent_result add_magnet(self_ptr self, add_torrent& req) {
  auto& st = self->state;
  auto& link = *req.magnet;
  add_torrent_result r;
  if (st.stopping) {
    r.why = error{errc::cancelled, "the session is stopping"};
    return r;
  }
  if (st.by_hash.count(link.hash) != 0) {
    r.why = error{errc::invalid_argument, to_hex(link.hash) + " is already in the session"};
    return r;
  }
  auto& o = req.options;
  if (!o.priorities.empty()) {
    r.why = error{errc::invalid_argument, "a file selection needs the metadata: not possible "
                                          "for a magnet link fetched for the first time"};
    return r;
  }
  // The session's entry names the torrent by the link until the torrent knows better.
  auto placeholder = std::make_shared<metainfo>();
  placeholder->name = link.name.empty() ? to_hex(link.hash) : link.name;
  placeholder->hash = link.hash;
  torrent_config tc;
  tc.hash = link.hash;
  tc.name = link.name;
  tc.trackers = link.trackers;
  tc.on_metadata = [out_dir = req.out_dir, read_resume = o.save_resume](
                     const std::shared_ptr<const metainfo>& meta,
                     const std::string& torrent_file) {
    return prepare_fetched(out_dir, meta, torrent_file, read_resume);
  };
  fill_common(self, o, tc);
  for (auto& p : link.peers)
    tc.peers.push_back(endpoint{p.host, p.port});
  auto handle = spawn_torrent(self->system(), std::move(tc));
  self->monitor(handle);
  if (o.download_limit != 0 || o.upload_limit != 0)
    self->send(handle, set_torrent_limits{o.download_limit, o.upload_limit});
  r.id = st.next_id++;
  torrent_entry e;
  e.handle = handle;
  e.meta = placeholder;
  e.label = to_hex(link.hash).substr(0, 16);
  st.by_hash.emplace(link.hash, r.id);
  st.by_actor.emplace(handle.address(), r.id);
  auto [it, inserted] = st.torrents.emplace(r.id, std::move(e));
  spdlog::get("session")->info("torrent {} added from a magnet link: {} ({}), fetching its "
                               "metadata", r.id, printable(placeholder->name),
                               to_hex(link.hash));
  emit(self, event_of(r.id, it->second, torrent_event_kind::added));
  // The DHT needs only the info-hash: a link without trackers or peers finds peers there. A
  // link to a private torrent is taken off it once its metadata says so (see torrent_progress).
  track_on_dht(self, it->second, link.hash);
  return r;
}

add_torrent_result do_add(self_ptr self, add_torrent& req) {
  auto& st = self->state;
  auto log = spdlog::get("session");
  add_torrent_result r;
  if (!req.meta && req.magnet) {
    // [magnet] The same link run again: the .torrent saved when its metadata came.
    auto saved = load_metainfo(saved_torrent_path(req.out_dir, req.magnet->hash));
    if (saved && saved->hash == req.magnet->hash)
      req.meta = std::make_shared<const metainfo>(std::move(*saved));
    else
      return add_magnet(self, req);
  }
  if (!req.meta) {
    r.why = error{errc::invalid_argument, "add_torrent without metainfo"};
    return r;
  }
  auto& meta = req.meta;
  if (st.stopping) {
    r.why = error{errc::cancelled, "the session is stopping"};
    return r;
  }
  if (st.by_hash.count(meta->hash) != 0) {
    r.why = error{errc::invalid_argument, printable(meta->name) + " (" + to_hex(meta->hash) +
                                            ") is already in the session"};
    return r;
  }
  auto layout = file_layout::create(*meta);
  if (!layout) {
    r.why = layout.error();
    return r;
  }
  auto shared_layout = std::make_shared<const file_layout>(std::move(*layout));
  // Resume data is read before the files are opened: opening creates missing files.
  // [cluster] save_resume = false: none is read and nothing is checked; existing data is
  // whatever the coordinator's plan says, fetched again where it says so.
  auto resume = req.options.save_resume ? load_resume(req.out_dir, *meta, *shared_layout)
                                        : resume_result{};
  if (auto storage_log = spdlog::get("storage")) {
    if (!resume.warning.empty())
      storage_log->warn("{}", resume.warning);
    if (!resume.notice.empty())
      storage_log->info("{}", resume.notice);
  }
  auto& o = req.options;
  if (o.require_data && resume.to_check.isEmpty() && resume.trusted.isEmpty() &&
      meta->piece_count() > 0) {
    r.why = error{errc::io_error, "no data of " + printable(meta->name) + " found in " +
                                    req.out_dir};
    return r;
  }
  auto store = file_store::open(shared_layout, req.out_dir, o.priorities,
                                part_file_path(req.out_dir, meta->hash));
  if (!store) {
    r.why = store.error();
    return r;
  }
  torrent_config tc;
  tc.meta = meta;
  tc.store = std::move(*store);
  fill_common(self, o, tc);
  tc.file_priorities = o.priorities;
  for (auto p : resume.trusted)
    tc.trusted_pieces.push_back(p);
  for (auto p : resume.to_check)
    tc.pieces_to_check.push_back(p);
  auto handle = spawn_torrent(self->system(), std::move(tc));
  self->monitor(handle);
  if (o.download_limit != 0 || o.upload_limit != 0)
    self->send(handle, set_torrent_limits{o.download_limit, o.upload_limit});
  r.id = st.next_id++;
  torrent_entry e;
  e.handle = handle;
  e.meta = meta;
  e.label = to_hex(meta->hash).substr(0, 16);
  e.last.total_size = meta->total_size;
  e.last.pieces = meta->piece_count();
  e.last.checking = true;
  st.by_hash.emplace(meta->hash, r.id);
  st.by_actor.emplace(handle.address(), r.id);
  auto [it, inserted] = st.torrents.emplace(r.id, std::move(e));
  // BEP 5 / BEP 27: the DHT looks up and announces public torrents only.
  if (!meta->is_private)
    track_on_dht(self, it->second, meta->hash);
  log->info("torrent {} added: {} ({})", r.id, printable(meta->name), to_hex(meta->hash));
  emit(self, event_of(r.id, it->second, torrent_event_kind::added));
  return r;
}

/// Sends `msg` to torrent `id`; the reply says whether there was one.
template <class Msg>
session_reply forward(self_ptr self, torrent_id id, Msg msg) {
  auto it = self->state.torrents.find(id);
  if (it == self->state.torrents.end() || it->second.removing)
    return session_reply{false, error{errc::invalid_argument, "no torrent " + std::to_string(id)}};
  self->send(it->second.handle, std::move(msg));
  return session_reply{};
}

} // namespace

std::string merge_metrics(const std::vector<labelled_metrics>& parts) {
  // Families in the order first seen; HELP and TYPE once each, then every torrent's sample.
  struct family {
    std::string help_type;
    std::string samples;
  };
  std::vector<std::string> order;
  std::map<std::string, family> families;
  for (auto& part : parts) {
    std::size_t pos = 0;
    while (pos < part.text.size()) {
      auto end = part.text.find('\n', pos);
      if (end == std::string::npos)
        end = part.text.size();
      std::string_view line(part.text.data() + pos, end - pos);
      pos = end + 1;
      if (line.empty())
        continue;
      if (line.rfind("# ", 0) == 0) {
        // "# HELP name text" or "# TYPE name kind"
        auto name_start = line.find(' ', 2);
        if (name_start == std::string_view::npos)
          continue;
        auto name_end = line.find(' ', name_start + 1);
        std::string name(line.substr(name_start + 1, name_end == std::string_view::npos
                                                       ? std::string_view::npos
                                                       : name_end - name_start - 1));
        auto [it, fresh] = families.try_emplace(name);
        if (fresh)
          order.push_back(name);
        if (it->second.samples.empty()) // the first torrent's HELP/TYPE only
          if (it->second.help_type.find(std::string(line.substr(0, 7))) == std::string::npos)
            it->second.help_type.append(line).append("\n");
        continue;
      }
      auto space = line.find(' ');
      if (space == std::string_view::npos)
        continue;
      std::string name(line.substr(0, space));
      auto [it, fresh] = families.try_emplace(name);
      if (fresh)
        order.push_back(name);
      it->second.samples.append(name)
        .append("{torrent=\"")
        .append(part.label)
        .append("\"}")
        .append(line.substr(space))
        .append("\n");
    }
  }
  std::string out;
  for (auto& name : order) {
    auto& f = families[name];
    out += f.help_type;
    out += f.samples;
  }
  return out;
}

std::shared_ptr<peer_listener> open_default_listener(session_config cfg,
                                                     std::string& error_text) {
  constexpr std::uint16_t first = 6881;
  constexpr std::uint16_t last = 6889;
  cfg.listen_host = "0.0.0.0";
  std::string why;
  for (auto port = first; port <= last; ++port) {
    cfg.listen_port = port;
    if (auto l = open_session_listener(cfg, why))
      return l;
  }
  error_text = "listen on 0.0.0.0: ports " + std::to_string(first) + "-" + std::to_string(last) +
               " are all taken (last: " + why + ")";
  return nullptr;
}

std::shared_ptr<peer_listener> open_session_listener(const session_config& cfg,
                                                     std::string& error_text) {
  connection_limits limits;
  limits.handshake_timeout_ms = cfg.handshake_timeout_ms;
  return peer_listener::open(*cfg.io, cfg.listen_host, cfg.listen_port, error_text, limits);
}

caf::actor spawn_session(caf::actor_system& sys, std::shared_ptr<peer_listener> listener,
                         session_options opts) {
  auto handle = sys.spawn([listener, opts](caf::stateful_actor<session_state>* self)
                            -> caf::behavior {
    self->state.listener = listener;
    self->state.opts = opts;
    self->set_default_handler(caf::drop);
    auto log = spdlog::get("session");
    self->set_down_handler([=](caf::down_msg& dm) {
      // A torrent ended without its last report (it should not): it is gone all the same.
      auto it = self->state.by_actor.find(dm.source);
      if (it == self->state.by_actor.end())
        return;
      auto id = it->second;
      forget(self, id, torrent_event_kind::removed);
      if (self->state.stopping && self->state.torrents.empty())
        finish_session(self);
    });
    if (opts.metrics)
      self->delayed_send(self, std::chrono::seconds(1), tick{});
    if (opts.dht) {
      std::string why;
      self->state.dht = spawn_dht(self->system(), *opts.dht, why, &self->state.dht_port);
      if (!self->state.dht)
        log->warn("{}: running without the DHT", why);
      // The DHT ends with the session however the session ends (not only on stop_request):
      // else it would tick on and await_all_actors_done would never return.
      if (self->state.dht)
        self->attach_functor([dht = self->state.dht] {
          caf::anon_send_exit(dht, caf::exit_reason::user_shutdown);
        });
    }
    return {
      [=](add_torrent& req) { return do_add(self, req); },
      [=](const remove_torrent& r) {
        auto it = self->state.torrents.find(r.id);
        if (it == self->state.torrents.end() || it->second.removing)
          return session_reply{false,
                               error{errc::invalid_argument, "no torrent " + std::to_string(r.id)}};
        it->second.removing = true;
        self->send(it->second.handle, stop_request{});
        return session_reply{};
      },
      [=](const session_pause& p) { return forward(self, p.id, pause_torrent{}); },
      [=](const session_resume& p) { return forward(self, p.id, resume_torrent{}); },
      [=](const session_set_limits& l) { return forward(self, l.id, l.limits); },
      [=](const session_set_file_priorities& p) { return forward(self, p.id, p.priorities); },
      // [cluster] A worker's shard and the peers of a replicate job.
      [=](const session_set_piece_filter& p) { return forward(self, p.id, p.filter); },
      [=](const session_add_peers& p) { return forward(self, p.id, add_peers{p.peers, p.preferred}); },
      [=](const set_session_limits& l) {
        self->state.limits = l;
        if (self->state.opts.io) {
          self->state.opts.io->set_rate_limits(l.download, l.upload);
          self->state.opts.io->set_max_connections(l.max_connections);
        }
        return session_reply{};
      },
      [=](subscribe& s) {
        // A late subscriber learns of every torrent already running.
        for (auto& [id, e] : self->state.torrents)
          self->send(s.observer, event_of(id, e, torrent_event_kind::added));
        self->state.observers.push_back(std::move(s.observer));
        return session_reply{};
      },
      [=](torrent_progress& p) {
        auto id = sender_id(self);
        auto it = self->state.torrents.find(id);
        if (it == self->state.torrents.end())
          return;
        auto& e = it->second;
        bool first_metrics = e.metrics.empty() && !p.metrics.empty();
        e.metrics = std::move(p.metrics);
        if (first_metrics) // a new torrent shows up at once, not at the next tick
          publish_metrics(self);
        p.metrics.clear();
        e.last = std::move(p);
        // A magnet link's metadata said private (BEP 27): off the DHT from now on.
        if (e.last.is_private)
          untrack_on_dht(self, e);
        // Few peers while downloading: ask the DHT now rather than at its next round (it
        // looks up at most once a minute per torrent).
        if (self->state.dht && e.dht_hash && !e.last.checking && !e.last.seeding &&
            e.last.peers < 5)
          self->send(self->state.dht, dht_wants_peers{*e.dht_hash});
        if (!e.checked && !e.last.checking) {
          e.checked = true;
          emit(self, event_of(id, e, torrent_event_kind::checked));
        }
        emit(self, event_of(id, e, torrent_event_kind::progress));
      },
      [=](torrent_finished& f) {
        auto id = sender_id(self);
        auto it = self->state.torrents.find(id);
        if (it == self->state.torrents.end())
          return;
        f.final.metrics.clear();
        it->second.last = std::move(f.final);
        if (!it->second.checked) {
          it->second.checked = true;
          emit(self, event_of(id, it->second, torrent_event_kind::checked));
        }
        emit(self, event_of(id, it->second, torrent_event_kind::finished));
      },
      // [cluster] Pieces verified and written: to every subscriber, as they come (batched by
      // the torrent, at most one per tick).
      [=](torrent_pieces_verified& pv) {
        auto id = sender_id(self);
        auto it = self->state.torrents.find(id);
        if (it == self->state.torrents.end())
          return;
        auto ev = event_of(id, it->second, torrent_event_kind::pieces_verified);
        ev.pieces = std::move(pv.pieces);
        emit(self, ev);
      },
      [=](torrent_failed& f) {
        auto id = sender_id(self);
        auto it = self->state.torrents.find(id);
        if (it == self->state.torrents.end())
          return;
        auto ev = event_of(id, it->second, torrent_event_kind::failed);
        ev.why = std::move(f.why);
        emit(self, ev);
      },
      [=](torrent_stopped& ts) {
        auto id = sender_id(self);
        auto it = self->state.torrents.find(id);
        if (it == self->state.torrents.end())
          return;
        ts.final.metrics.clear();
        it->second.last = std::move(ts.final);
        forget(self, id, torrent_event_kind::removed);
        if (self->state.stopping && self->state.torrents.empty())
          finish_session(self);
      },
      [=](incoming_peer& ip) {
        auto it = self->state.by_hash.find(ip.hs.hash);
        if (it == self->state.by_hash.end()) {
          log->warn("incoming {}: disconnected: handshake for a torrent we do not have "
                    "(info-hash {})",
                    ip.remote.to_string(), to_hex(ip.hs.hash));
          ip.conn->close("unknown info-hash");
          return;
        }
        auto& e = self->state.torrents[it->second];
        if (e.removing) {
          ip.conn->close("torrent is being removed");
          return;
        }
        self->send(e.handle, std::move(ip));
      },
      [=](tick) {
        publish_metrics(self);
        if (!self->state.stopping)
          self->delayed_send(self, std::chrono::seconds(1), tick{});
      },
      [=](stop_request) {
        auto& st = self->state;
        if (st.stopping)
          return;
        st.stopping = true;
        if (st.dht) // saves its node table and closes its socket
          self->send(st.dht, stop_request{});
        if (st.listener) {
          st.listener->close(); // posts to the I/O thread; never waits here
          st.listener.reset();
        }
        if (st.torrents.empty()) {
          finish_session(self);
          return;
        }
        for (auto& [id, e] : st.torrents) {
          e.removing = true;
          self->send(e.handle, stop_request{});
        }
        // Torrents wait up to 500 ms for their peers; one that never answers does not hold
        // the session forever.
        self->delayed_send(self, std::chrono::seconds(3), stop_deadline{});
      },
      [=](stop_deadline) {
        auto& st = self->state;
        std::vector<torrent_id> left;
        for (auto& [id, e] : st.torrents)
          left.push_back(id);
        for (auto id : left)
          forget(self, id, torrent_event_kind::removed);
        finish_session(self);
      },
    };
  });
  // The session exists before the first connection can be accepted: the callback captures a
  // complete handle and nothing is written after the I/O thread may read it.
  auto accept = [session = caf::actor_cast<caf::weak_actor_ptr>(handle)](
                  std::shared_ptr<peer_connection> conn, const wire::handshake& hs) {
    // Runs on an I/O thread: hand the connection to the session actor (if it still runs;
    // otherwise the connection is dropped and closes).
    auto target = caf::actor_cast<caf::actor>(session);
    if (!target)
      return;
    auto remote = conn->remote_endpoint();
    auto colon = remote.rfind(':');
    endpoint ep{remote.substr(0, colon),
                static_cast<std::uint16_t>(colon == std::string::npos
                                             ? 0
                                             : std::stoi(remote.substr(colon + 1)))};
    caf::anon_send(target, incoming_peer{std::move(conn), hs, ep});
  };
  auto failed = [](const std::string& remote, const std::string& reason, bool protocol_error) {
    // Runs on an I/O thread; spdlog loggers are thread-safe.
    auto log = spdlog::get("session");
    if (protocol_error)
      log->warn("incoming {}: disconnected: {}", remote, reason);
    else
      log->debug("incoming {}: closed: {}", remote, reason);
  };
  listener->start(std::move(accept), std::move(failed));
  return handle;
}

} // namespace actorrent
