// The worker actor: see worker.hpp for its states.
#include "cluster/worker.hpp"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "actors/session.hpp"
#include "cluster/frame.hpp"
#include "cluster/node_common.hpp"
#include "cluster/wire.hpp"
#include "protocol/metainfo.hpp"
#include "storage/write_fence.hpp"

namespace actorrent::cluster {

namespace {

using std::chrono::milliseconds;
using report_atom = caf::atom_constant<caf::atom("w_report")>;
using stop_atom = caf::atom_constant<caf::atom("w_stop")>;
using gone_atom = caf::atom_constant<caf::atom("w_gone")>;

/// Leases: every heartbeat the worker sends a Report (its lease request) numbered `seq`, and
/// notes when. The coordinator's Lease echoes the number, and the lease runs from that send
/// time, never from when the Lease is read: a Lease that waited in the socket while this
/// process was frozen (SIGSTOP) has run out when it is read, whatever the order in which the
/// woken process handles its timers and its mailbox. Send times of this many recent reports
/// are kept (a Lease answering an older one is ignored: it is long over anyway).
constexpr std::size_t lease_requests_kept = 64;
/// How long the session gets to stop (flush files) before the worker exits anyway.
constexpr std::chrono::seconds stop_wait{15};

using wclock = std::chrono::steady_clock;

struct worker_state {
  worker_config cfg;
  std::shared_ptr<write_fence> fence = std::make_shared<write_fence>();
  std::shared_ptr<const metainfo> meta;
  info_hash hash{};                 // of the job (zero until Welcome)
  torrent_id torrent = 0;
  std::uint32_t worker_id = 0;
  bool replicate = false;
  std::uint32_t lease = lease_ms;    // Welcome's lease_ms
  std::uint64_t epoch = 0;          // the newest assignment applied
  bool everything = false;          // replicate: fetching every piece
  Roaring pending;                  // verified since the last Report
  Roaring have;                     // every piece the torrent verified
  double rate = 0;
  std::uint64_t downloaded = 0;
  std::uint32_t verified = 0;       // pieces the torrent has in all
  bool has_everything = false;
  bool reported_everything = false;
  std::uint64_t next_seq = 1;                                      // of the next Report
  std::deque<std::pair<std::uint64_t, wclock::time_point>> asked;  // (seq, sent at), in order
  wclock::time_point lease_until{};                                // what the fence allows
  int exit_code = 1;
  bool exited = false;
  bool coordinator_down = false;
  bool done = false;                // Done received
  std::string error_text;           // why the worker fails (the first reason given)
  static inline const char* name = "cluster_worker";
};

using worker_actor = caf::stateful_actor<worker_state>;

void send_envelope(worker_actor* self, wire::Envelope env) {
  if (self->state.coordinator_down)
    return;
  self->send(self->state.cfg.coordinator,
             cluster_frame{encode_frame(std::move(env), self->state.hash)});
}

void exit_now(worker_actor* self) {
  auto& st = self->state;
  if (st.exited)
    return;
  st.exited = true;
  // What the fence kept off the disk: after a pause (SIGSTOP) or a hand-over, the proof that
  // nothing was written outside the lease and the shard.
  if (auto n = st.fence->refused())
    cluster_log()->info("the write fence refused {} block writes", n);
  if (st.cfg.on_exit)
    st.cfg.on_exit(st.exit_code, st.exit_code == 0 ? std::string{} : st.error_text);
  self->quit();
}

caf::behavior stopping(worker_actor* self);

/// Stops the session (which flushes every file) and exits with `code` once it has stopped.
void stop(worker_actor* self, int code) {
  auto& st = self->state;
  st.exit_code = code;
  if (!st.cfg.session) {
    exit_now(self);
    return;
  }
  self->send(st.cfg.session, stop_request{});
  self->delayed_send(self, stop_wait, gone_atom::value);
  self->become(stopping(self));
}

/// The coordinator is gone or refused us: no write from this instant on, then stop.
void lose_coordinator(worker_actor* self, const std::string& why) {
  auto& st = self->state;
  st.fence->close();
  st.coordinator_down = true;
  cluster_log()->error("lost the coordinator: {}", why);
  self->state.error_text = "lost the coordinator: " + why;
  stop(self, 1);
}

void refused(worker_actor* self, const std::string& reason) {
  self->state.fence->close();
  self->state.error_text = "refused by the coordinator: " + printable(reason);
  // Our side says it too, so that the coordinator's log shows the end of the exchange.
  stop(self, 1);
}

void send_report(worker_actor* self, bool force) {
  auto& st = self->state;
  bool news = !st.pending.isEmpty() || (st.has_everything && !st.reported_everything);
  if (!news && !force)
    return;
  wire::Envelope env;
  auto* r = env.mutable_report();
  r->set_seq(st.next_seq);
  st.asked.emplace_back(st.next_seq++, wclock::now());
  if (st.asked.size() > lease_requests_kept)
    st.asked.pop_front();
  r->set_epoch(st.epoch);
  st.pending.runOptimize();
  r->set_verified(bitmap_bytes(st.pending));
  r->set_rate(st.rate);
  r->set_downloaded(st.downloaded);
  r->set_has_everything(st.has_everything);
  send_envelope(self, std::move(env));
  st.pending = Roaring{};
  st.reported_everything = st.has_everything;
}

void on_torrent_event(worker_actor* self, const torrent_event& ev) {
  auto& st = self->state;
  if (ev.id != st.torrent || st.torrent == 0)
    return;
  switch (ev.kind) {
    case torrent_event_kind::pieces_verified:
      for (auto p : ev.pieces) {
        st.pending.add(p);
        st.have.add(p);
      }
      break;
    case torrent_event_kind::failed:
      cluster_log()->error("the torrent failed: {}", ev.why.message);
      st.error_text = ev.why.message;
      // Without its torrent the worker is of no use: the coordinator reassigns its pieces.
      st.fence->close();
      stop(self, 1);
      return;
    default:
      break;
  }
  if (ev.kind != torrent_event_kind::pieces_verified || ev.progress.pieces != 0) {
    st.rate = ev.progress.download_rate;
    st.downloaded = ev.progress.downloaded_payload;
    st.verified = ev.progress.pieces_verified;
  }
  if (st.everything && st.meta && st.verified >= st.meta->piece_count() &&
      ev.kind != torrent_event_kind::pieces_verified)
    st.has_everything = true;
  if (st.everything && ev.kind == torrent_event_kind::finished)
    st.has_everything = true;
}

void on_assign(worker_actor* self, const wire::Assign& a) {
  auto& st = self->state;
  auto count = st.meta->piece_count();
  set_piece_filter filter;
  Roaring shard;
  // Replicate mode: once told to fetch everything, a later shard (pieces of a lost worker put
  // back in the pool) adds to the job but never narrows it: this worker needs every piece in its
  // own directory, and the coordinator does not send `everything` twice.
  if (a.everything() || st.everything) {
    if (!a.everything() && !bitmap_from(a.pieces(), count).ok()) {
      cluster_log()->warn("a bad assignment ignored (fetching every piece already)");
      return;
    }
    shard.addRange(0, count);
    filter.all = true;
    st.everything = true;
  } else {
    auto pieces = bitmap_from(a.pieces(), count);
    if (!pieces) {
      // Refusing keeps the old shard in force: the coordinator hears why.
      send_envelope(self, [&] {
        wire::Envelope env;
        env.mutable_refused()->set_reason("bad assignment: " + pieces.error().message);
        return env;
      }());
      return;
    }
    shard = std::move(*pieces);
    filter.all = false;
    filter.pieces.reserve(shard.cardinality());
    for (auto p : shard)
      filter.pieces.push_back(p);
  }
  // The fence first: from here on no write outside the new shard, whatever the torrent is
  // still fetching; then the torrent stops asking for the rest; then the coordinator may
  // hand the dropped pieces on.
  st.fence->set_pieces(shard);
  if (st.cfg.session) {
    self->send(st.cfg.session, session_set_piece_filter{st.torrent, std::move(filter)});
    if (a.everything() && a.cluster_peers_size() > 0) {
      session_add_peers add;
      add.id = st.torrent;
      add.preferred = true; // what another worker has is fetched from it, not from the swarm
      for (auto& p : a.cluster_peers()) {
        endpoint ep;
        if (parse_host_port(p, ep))
          add.peers.push_back(ep);
      }
      self->send(st.cfg.session, std::move(add));
    }
  }
  st.epoch = std::max(st.epoch, a.epoch());
  // Pieces of the new shard the torrent has already (verified while they were someone else's,
  // or reported when they had just been taken from us): reported again, or the coordinator
  // would wait for them forever.
  st.pending |= shard & st.have;
  wire::Envelope ack;
  ack.mutable_ack()->set_epoch(a.epoch());
  send_envelope(self, std::move(ack));
  cluster_log()->debug("epoch {}: {} pieces{}", a.epoch(), shard.cardinality(),
                                a.everything() ? " (everything)" : "");
}

void on_lease(worker_actor* self, const wire::Lease& l) {
  auto& st = self->state;
  auto it = std::find_if(st.asked.begin(), st.asked.end(),
                         [&](const auto& a) { return a.first == l.echo(); });
  if (it == st.asked.end()) {
    cluster_log()->debug("a lease answering no recent report ({}) is ignored", l.echo());
    return;
  }
  auto valid = std::min<std::uint32_t>(l.valid_ms(), st.lease);
  auto until = it->second + milliseconds(valid);
  st.asked.erase(st.asked.begin(), it + 1); // answers come in order: older ones are done
  if (until <= wclock::now()) {
    // It waited too long on its way (this process was frozen, or the link is that slow).
    cluster_log()->warn("a lease that ran out before it was read is ignored (this process "
                        "was paused, or the coordinator answers too slowly)");
    return;
  }
  if (until > st.lease_until) {
    st.lease_until = until;
    st.fence->allow_until(until);
  }
}

caf::behavior running(worker_actor* self);

/// A frame from the coordinator: checked (version; info-hash once known).
std::optional<wire::Envelope> accept_frame(worker_actor* self, const cluster_frame& f) {
  auto& st = self->state;
  auto env = decode(f.bytes, st.meta ? &st.hash : nullptr);
  if (!env) {
    // What the coordinator sent cannot be trusted: tell it why, and leave the job. A Refused
    // of another version still says why it refused: show it.
    wire::Envelope raw;
    if (raw.ParseFromString(f.bytes) && raw.has_refused()) {
      refused(self, raw.refused().reason());
      return std::nullopt;
    }
    self->send(st.cfg.coordinator, cluster_frame{refused_frame(env.error().message, st.hash)});
    st.fence->close();
    st.error_text = "refused the coordinator: " + env.error().message;
    stop(self, 1);
    return std::nullopt;
  }
  if (env->has_refused()) {
    refused(self, env->refused().reason());
    return std::nullopt;
  }
  return std::move(*env);
}

caf::behavior stopping(worker_actor* self) {
  return {
    [=](const cluster_frame&) {},
    [=](const torrent_event&) {},
    [=](const session_reply&) {},
    [=](const add_torrent_result&) {},
    [=](session_stopped) { exit_now(self); },
    [=](gone_atom) {
      cluster_log()->warn("the session did not stop in time");
      exit_now(self);
    },
    [=](report_atom) {},
    [=](stop_atom, int) {},
  };
}

caf::behavior running(worker_actor* self) {
  return {
    [=](const cluster_frame& f) {
      auto env = accept_frame(self, f);
      if (!env)
        return;
      auto& st = self->state;
      if (env->has_assign()) {
        on_assign(self, env->assign());
      } else if (env->has_lease()) {
        on_lease(self, env->lease());
      } else if (env->has_done()) {
        // Whatever is verified is on its way to disk; stopping the session flushes it.
        send_report(self, false);
        st.done = true;
        if (!st.cfg.quiet) {
          std::printf("done: the job is complete\n");
          std::fflush(stdout);
        }
        stop(self, 0);
      } else {
        cluster_log()->warn("unexpected message from the coordinator ignored");
      }
    },
    [=](const torrent_event& ev) { on_torrent_event(self, ev); },
    [=](const session_reply& r) {
      if (!r.ok)
        cluster_log()->warn("session: {}", r.why.message);
    },
    [=](report_atom) {
      send_report(self, true); // news or not: the lease request of this heartbeat
      self->delayed_send(self, milliseconds(heartbeat_ms), report_atom::value);
    },
    [=](session_stopped) {
      self->state.error_text = "the session stopped";
      self->state.fence->close();
      self->state.exit_code = 1;
      exit_now(self);
    },
    [=](stop_atom, int code) {
      self->state.fence->close();
      self->state.error_text = "stopped by a signal";
      stop(self, code);
    },
  };
}

/// Welcome: the torrent is added to the session; Assigns wait until it is (await).
void on_welcome(worker_actor* self, const wire::Envelope& env) {
  auto& st = self->state;
  const auto& w = env.welcome();
  auto meta = parse_metainfo(w.torrent());
  if (!meta) {
    st.error_text = "the coordinator's torrent: " + meta.error().message;
    self->send(st.cfg.coordinator, cluster_frame{refused_frame(
                                     "cannot read the torrent: " + meta.error().message, st.hash)});
    stop(self, 1);
    return;
  }
  bool other_job = st.cfg.expected && *st.cfg.expected != meta->hash;
  if (other_job || env.info_hash() != std::string(reinterpret_cast<const char*>(meta->hash.data()),
                                                  meta->hash.size())) {
    std::string why = other_job ? "the coordinator runs the torrent " + to_hex(meta->hash) +
                                    ", not the one of --torrent (" + to_hex(*st.cfg.expected) + ")"
                                : "the Welcome's torrent is not the job's (info-hash mismatch)";
    st.error_text = why;
    self->send(st.cfg.coordinator, cluster_frame{refused_frame(why, st.hash)});
    stop(self, 1);
    return;
  }
  st.hash = meta->hash;
  st.meta = std::make_shared<const metainfo>(std::move(*meta));
  st.worker_id = w.worker_id();
  st.replicate = w.mode() == wire::MODE_REPLICATE;
  st.lease = w.lease_ms() ? w.lease_ms() : lease_ms;
  if (!st.cfg.quiet) {
    std::printf("joined: worker %u of the job %s (%s mode)\n", st.worker_id,
                printable(st.meta->name).c_str(), st.replicate ? "replicate" : "shared");
    std::fflush(stdout);
  }
  self->become(running(self));
  self->send(self, report_atom::value); // the first lease request at once
  if (!st.cfg.session)
    return; // tests: a worker without a torrent
  add_torrent add;
  add.meta = st.meta;
  add.out_dir = st.cfg.out_dir;
  add.options.fence = st.fence;
  add.options.report_pieces = true;
  add.options.save_resume = false;
  add.options.piece_filter = std::vector<std::uint32_t>{}; // nothing until the first Assign
  add.options.use_trackers = w.use_trackers();
  for (auto& p : w.peers()) {
    endpoint ep;
    if (parse_host_port(p, ep))
      add.options.peers.push_back(ep);
    else
      cluster_log()->warn("peer {} ignored: expected HOST:PORT", printable(p));
  }
  self->request(st.cfg.session, caf::infinite, std::move(add))
    .await(
      [=](add_torrent_result& r) {
        if (r.id == 0) {
          self->state.error_text = "cannot add the torrent: " + r.why.message;
          self->state.fence->close();
          stop(self, 1);
          return;
        }
        self->state.torrent = r.id;
      },
      [=](caf::error& e) {
        self->state.error_text = "the session: " + self->system().render(e);
        stop(self, 1);
      });
}

caf::behavior joining(worker_actor* self) {
  return {
    [=](const cluster_frame& f) {
      auto env = accept_frame(self, f);
      if (!env)
        return;
      if (env->has_welcome()) {
        on_welcome(self, *env);
        return;
      }
      cluster_log()->warn("a message before Welcome ignored");
    },
    [=](const torrent_event&) {},
    [=](const session_reply&) {},
    [=](session_stopped) {
      self->state.exit_code = 1;
      exit_now(self);
    },
    [=](stop_atom, int code) {
      self->state.error_text = "stopped by a signal";
      stop(self, code);
    },
  };
}

caf::behavior worker_fun(worker_actor* self, worker_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  if (st.cfg.fence)
    st.fence = st.cfg.fence;
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& s = self->state;
    if (dm.source != s.cfg.coordinator.address() || s.coordinator_down)
      return;
    if (s.exited)
      return;
    // After Done the coordinator may leave first: that is no loss.
    if (s.done) {
      s.coordinator_down = true;
      return;
    }
    lose_coordinator(self, caf::to_string(dm.reason));
  });
  self->monitor(st.cfg.coordinator);
  if (st.cfg.session) {
    self->send(st.cfg.session, subscribe{caf::actor_cast<caf::actor>(self)});
    if (st.cfg.download_limit > 0)
      self->send(st.cfg.session, set_session_limits{st.cfg.download_limit, 0, 0});
  }
  wire::Envelope env;
  auto* h = env.mutable_hello();
  h->set_name(st.cfg.name);
  h->set_listen(st.cfg.listen);
  h->set_download_limit(st.cfg.download_limit);
  st.hash = st.cfg.expected ? *st.cfg.expected : info_hash{};
  send_envelope(self, std::move(env));
  return joining(self);
}

} // namespace

result<caf::actor> connect_to_coordinator(caf::actor_system& sys, const std::string& host,
                                          std::uint16_t port,
                                          std::chrono::milliseconds patience,
                                          const std::function<bool()>& give_up) {
  auto deadline = wclock::now() + patience;
  std::string last;
  for (;;) {
    auto a = sys.middleman().remote_actor(host, port);
    if (a)
      return *a;
    last = sys.render(a.error());
    if (wclock::now() >= deadline)
      break;
    if (give_up && give_up())
      return error{errc::invalid_argument, "stopped by a signal while waiting for the "
                                           "coordinator at " + host + ":" + std::to_string(port)};
    std::this_thread::sleep_for(milliseconds(250));
  }
  return error{errc::io_error, "cannot reach the coordinator at " + host + ":" +
                                 std::to_string(port) + " (tried for " +
                                 std::to_string(patience.count() / 1000) + " s): " + last};
}

caf::actor spawn_worker(caf::actor_system& sys, worker_config cfg) {
  return sys.spawn(worker_fun, std::move(cfg));
}

void stop_worker(const caf::actor& worker, int code) {
  caf::anon_send(worker, stop_atom::value, code);
}

} // namespace actorrent::cluster
