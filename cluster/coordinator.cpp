// The coordinator actor: see coordinator.hpp for its states.
#include "cluster/coordinator.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include "cluster/frame.hpp"
#include "cluster/node_common.hpp"
#include "cluster/plan_store.hpp"
#include "cluster/planner.hpp"
#include "cluster/wire.hpp"
#include "protocol/units.hpp"

namespace actorrent::cluster {

namespace {

using std::chrono::milliseconds;
using lease_atom = caf::atom_constant<caf::atom("c_lease")>;
using progress_atom = caf::atom_constant<caf::atom("c_progress")>;
using expire_atom = caf::atom_constant<caf::atom("c_expire")>;
using stop_atom = caf::atom_constant<caf::atom("c_stop")>;
using finish_atom = caf::atom_constant<caf::atom("c_finish")>;

/// A worker's lease runs from when it sent the report the lease answers, which is before this
/// side sent the lease: it ends before last_lease + lease_ms. A write checked against the fence
/// just before that may still be on its way to the disk: removal waits this much longer.
constexpr milliseconds lease_margin{250};
/// The plan is written at most this often while running (and always at the end).
constexpr milliseconds save_every{1000};
/// After Done: how long the coordinator waits for the workers to flush and leave.
constexpr std::chrono::seconds finish_wait{10};

bool is_zero(const std::string& hash) {
  return std::all_of(hash.begin(), hash.end(), [](char c) { return c == 0; });
}

struct worker_entry {
  std::string name;
  caf::actor handle;
  std::string listen;             // its BitTorrent listener, for replicate mode's peers
  bool alive = true;
  clock::time_point last_lease{}; // when the last Lease was sent
  bool has_everything = false;    // replicate: every piece in its own directory
  bool everything_sent = false;   // replicate: Assign{everything} sent
  double rate = 0;
};

struct coordinator_state {
  coordinator_config cfg;
  std::optional<planner> plan;
  std::unique_ptr<plan_store> store;
  std::map<worker_id, worker_entry> workers;
  worker_id next_id = 1;
  clock::time_point started{};
  clock::time_point last_save{};
  bool dirty = false;
  std::uint64_t bytes_this_run = 0; // of pieces verified in this run
  std::uint32_t workers_seen = 0;   // workers that ever joined (the complete line)
  std::uint32_t pieces_this_run = 0; // verified in this run
  // Traffic between the nodes, for the benchmark: frames and their bytes, both directions.
  std::uint64_t frames_in = 0;
  std::uint64_t frames_out = 0;
  std::uint64_t frame_bytes = 0;
  bool finishing = false; // Done sent
  bool exited = false;
  static inline const char* name = "cluster_coordinator";
};

using coordinator_actor = caf::stateful_actor<coordinator_state>;

std::uint64_t piece_bytes(const metainfo& m, std::uint32_t piece) {
  return m.piece_size(piece_index{piece});
}

std::size_t live_count(const coordinator_state& st) {
  std::size_t n = 0;
  for (auto& [id, w] : st.workers)
    n += w.alive ? 1 : 0;
  return n;
}

void send_envelope(coordinator_actor* self, const caf::actor& to, wire::Envelope env) {
  auto bytes = encode_frame(std::move(env), self->state.cfg.meta->hash);
  ++self->state.frames_out;
  self->state.frame_bytes += bytes.size();
  self->send(to, cluster_frame{std::move(bytes)});
}

void save_plan(coordinator_actor* self, bool force) {
  auto& st = self->state;
  if (!st.store || !st.plan || (!force && !st.dirty))
    return;
  auto now = clock::now();
  if (!force && now - st.last_save < save_every)
    return;
  auto s = st.store->save(st.plan->verified(), st.plan->last_epoch());
  if (!s)
    cluster_log()->warn("cannot save the plan: {}", s.error().message);
  st.last_save = now;
  st.dirty = false;
}

/// Sends the assignments of a rebalance, and in replicate mode Assign{everything} to workers
/// whose own shard is done once nothing is left to hand out.
void rebalance(coordinator_actor* self) {
  auto& st = self->state;
  for (auto& a : st.plan->rebalance(clock::now())) {
    auto it = st.workers.find(a.worker);
    if (it == st.workers.end() || !it->second.alive)
      continue;
    wire::Envelope env;
    auto* as = env.mutable_assign();
    as->set_epoch(a.epoch);
    as->set_pieces(bitmap_bytes(a.pieces));
    send_envelope(self, it->second.handle, std::move(env));
    cluster_log()->debug("worker {} ({}): epoch {}, {} pieces", a.worker,
                                  it->second.name, a.epoch, a.pieces.cardinality());
  }
  if (st.cfg.mode != job_mode::replicate || !st.plan->pool().isEmpty())
    return;
  for (auto& [id, w] : st.workers) {
    if (!w.alive || w.everything_sent || !st.plan->shard_of(id).isEmpty())
      continue;
    wire::Envelope env;
    auto* as = env.mutable_assign();
    // Its own epoch, so that an Ack of it is never mistaken for an older shard's.
    as->set_epoch(st.plan->last_epoch());
    as->set_everything(true);
    as->set_pieces(bitmap_bytes(Roaring{}));
    for (auto& [other_id, other] : st.workers)
      if (other_id != id && other.alive && !other.listen.empty())
        as->add_cluster_peers(other.listen);
    send_envelope(self, w.handle, std::move(env));
    w.everything_sent = true;
  }
}

bool job_complete(const coordinator_state& st) {
  if (!st.plan->complete())
    return false;
  if (st.cfg.mode != job_mode::replicate)
    return true;
  bool any = false;
  for (auto& [id, w] : st.workers) {
    if (!w.alive)
      continue;
    any = true;
    if (!w.has_everything)
      return false;
  }
  return any;
}

void print_progress(coordinator_actor* self) {
  auto& st = self->state;
  if (st.cfg.quiet || !st.plan)
    return;
  double rate = 0;
  for (auto& [id, w] : st.workers)
    rate += w.alive ? w.rate : 0;
  auto total = st.cfg.meta->piece_count();
  auto done = st.plan->verified().cardinality();
  std::printf("progress: %llu/%u pieces (%.1f%%), %s/s, %zu workers\n",
              static_cast<unsigned long long>(done), total,
              total ? 100.0 * static_cast<double>(done) / total : 100.0,
              human_size(rate).c_str(), live_count(st));
  std::fflush(stdout);
}

void exit_with(coordinator_actor* self, int code) {
  auto& st = self->state;
  if (st.exited)
    return;
  st.exited = true;
  save_plan(self, true);
  if (st.cfg.on_exit)
    st.cfg.on_exit(code);
  self->quit();
}

caf::behavior finishing(coordinator_actor* self);

void finish(coordinator_actor* self) {
  auto& st = self->state;
  save_plan(self, true);
  double elapsed = std::chrono::duration<double>(clock::now() - st.started).count();
  double rate = elapsed > 0 ? static_cast<double>(st.bytes_this_run) / elapsed : 0;
  std::printf("complete: %s %llu bytes in %.2f s (%s/s), %u workers\n",
              printable(st.cfg.meta->name).c_str(),
              static_cast<unsigned long long>(st.cfg.meta->content_size()), elapsed,
              human_size(rate).c_str(), st.workers_seen);
  auto messages = st.frames_in + st.frames_out;
  double per_piece = st.pieces_this_run ? static_cast<double>(messages) / st.pieces_this_run : 0;
  std::printf("nodes: %llu messages (%llu in, %llu out), %llu bytes of frames, %.2f messages "
              "per verified piece\n",
              static_cast<unsigned long long>(messages),
              static_cast<unsigned long long>(st.frames_in),
              static_cast<unsigned long long>(st.frames_out),
              static_cast<unsigned long long>(st.frame_bytes), per_piece);
  std::fflush(stdout);
  for (auto& [id, w] : st.workers) {
    if (!w.alive)
      continue;
    wire::Envelope env;
    env.mutable_done();
    send_envelope(self, w.handle, std::move(env));
  }
  st.finishing = true;
  self->delayed_send(self, finish_wait, finish_atom::value);
  self->become(finishing(self));
  if (live_count(st) == 0)
    exit_with(self, 0);
}

void maybe_finish(coordinator_actor* self) {
  if (self->state.plan && job_complete(self->state))
    finish(self);
}

/// A frame from a worker: decoded and checked, then dispatched. `running`: assignments are
/// made (after the wait for --workers).
void on_frame(coordinator_actor* self, const cluster_frame& f, bool running) {
  auto& st = self->state;
  auto log = cluster_log();
  auto sender = caf::actor_cast<caf::actor>(self->current_sender());
  if (!sender)
    return;
  ++st.frames_in;
  st.frame_bytes += f.bytes.size();
  worker_id from = 0;
  for (auto& [id, w] : st.workers)
    if (w.alive && w.handle == sender)
      from = id;
  auto env = decode(f.bytes, from ? &st.cfg.meta->hash : nullptr);
  if (!env) {
    log->warn("refused a {}: {}", from ? "worker's message" : "node", env.error().message);
    self->send(sender, cluster_frame{refused_frame(env.error().message, st.cfg.meta->hash)});
    return;
  }
  auto& e = *env;
  if (e.has_hello()) {
    const auto& hello = e.hello();
    const auto& ours = st.cfg.meta->hash;
    std::string why;
    if (!e.info_hash().empty() && !is_zero(e.info_hash()) &&
        e.info_hash() != std::string(reinterpret_cast<const char*>(ours.data()), ours.size())) {
      sha1_digest theirs{};
      if (e.info_hash().size() == theirs.size())
        std::copy(e.info_hash().begin(), e.info_hash().end(), theirs.begin());
      why = "this coordinator runs the torrent " + to_hex(ours) + ", not " +
            (e.info_hash().size() == theirs.size() ? to_hex(theirs) : std::string("that one"));
    } else if (from) {
      why = "this node has already joined";
    } else {
      for (auto& [id, w] : st.workers)
        if (w.alive && w.name == hello.name())
          why = "a worker named \"" + printable(hello.name()) + "\" is already in the job";
    }
    if (!why.empty()) {
      log->warn("refused worker {}: {}", printable(hello.name()), why);
      self->send(sender, cluster_frame{refused_frame(why, ours)});
      return;
    }
    auto id = st.next_id++;
    worker_entry w;
    w.name = hello.name();
    w.handle = sender;
    w.listen = hello.listen();
    st.workers.emplace(id, std::move(w));
    ++st.workers_seen;
    if (st.store)
      st.store->note_worker(hello.name());
    self->monitor(sender);
    st.plan->add_worker(id, hello.download_limit());
    wire::Envelope welcome;
    auto* wm = welcome.mutable_welcome();
    wm->set_worker_id(id);
    wm->set_mode(st.cfg.mode == job_mode::replicate ? wire::MODE_REPLICATE : wire::MODE_SHARED);
    for (auto& p : st.cfg.peers)
      wm->add_peers(p);
    wm->set_use_trackers(st.cfg.use_trackers);
    wm->set_lease_ms(lease_ms);
    wm->set_torrent(st.cfg.torrent_bytes);
    send_envelope(self, sender, std::move(welcome));
    if (!st.cfg.quiet) {
      if (running)
        std::printf("joined: worker %u \"%s\" (%zu workers)\n", id,
                    printable(hello.name()).c_str(), live_count(st));
      else
        std::printf("joined: worker %u \"%s\" (%zu of %u)\n", id,
                    printable(hello.name()).c_str(), live_count(st), st.cfg.workers);
      std::fflush(stdout);
    }
    log->info("worker {} joined as {} (listen {})", printable(hello.name()), id,
              printable(hello.listen()));
    if (running)
      rebalance(self);
    return;
  }
  if (!from) {
    // Anything but Hello from a node that has not joined (or was given up on).
    self->send(sender, cluster_frame{refused_frame("not a worker of this job (send Hello first)",
                                                   st.cfg.meta->hash)});
    return;
  }
  auto& w = st.workers[from];
  if (e.has_ack()) {
    st.plan->on_ack(from, e.ack().epoch());
    if (running)
      rebalance(self);
  } else if (e.has_report()) {
    const auto& r = e.report();
    // Every report is also a request for a lease: the worker counts it from when it sent the
    // report, so the lease can never outlast what this side assumes (last_lease + lease_ms).
    wire::Envelope lease;
    lease.mutable_lease()->set_valid_ms(lease_ms);
    lease.mutable_lease()->set_echo(r.seq());
    send_envelope(self, w.handle, std::move(lease));
    w.last_lease = clock::now();
    auto pieces = bitmap_from(r.verified(), st.cfg.meta->piece_count());
    if (!pieces) {
      log->warn("worker {}: bad report: {}", from, pieces.error().message);
      self->send(sender, cluster_frame{refused_frame(pieces.error().message, st.cfg.meta->hash)});
      return;
    }
    if (!pieces->isEmpty()) {
      auto accepted = st.plan->on_verified(from, r.epoch(), *pieces);
      for (auto p : accepted)
        st.bytes_this_run += piece_bytes(*st.cfg.meta, p);
      st.pieces_this_run += static_cast<std::uint32_t>(accepted.cardinality());
      if (!accepted.isEmpty())
        st.dirty = true;
      if (accepted.cardinality() != pieces->cardinality())
        log->debug("worker {}: {} of {} reported pieces not accepted", from,
                   pieces->cardinality() - accepted.cardinality(), pieces->cardinality());
    }
    w.rate = r.rate();
    st.plan->on_rate(from, r.rate());
    w.has_everything = r.has_everything();
    if (running) {
      rebalance(self);
      maybe_finish(self);
    }
  } else if (e.has_refused()) {
    log->warn("worker {} refused the coordinator: {}", from, printable(e.refused().reason()));
  } else {
    log->warn("worker {}: unexpected message ignored", from);
  }
}

/// A worker's connection (or process) is gone: it gets no lease from now on; once the last one
/// has run out it can no longer write, and its pieces go to the others.
void on_down(coordinator_actor* self, const caf::down_msg& dm) {
  auto& st = self->state;
  for (auto& [id, w] : st.workers) {
    if (!w.alive || w.handle.address() != dm.source)
      continue;
    w.alive = false;
    w.handle = nullptr;
    if (st.finishing) {
      // Done was sent: a worker leaving now has flushed and exited, as it should.
      cluster_log()->debug("worker {} ({}) left", id, printable(w.name));
      return;
    }
    auto expiry = w.last_lease + milliseconds(lease_ms) + lease_margin;
    auto now = clock::now();
    auto wait = expiry > now ? std::chrono::duration_cast<milliseconds>(expiry - now)
                             : milliseconds(0);
    cluster_log()->warn("lost worker {} ({}): {}; its pieces move in {} ms", id,
                                 printable(w.name), caf::to_string(dm.reason), wait.count());
    if (!st.cfg.quiet) {
      std::printf("lost: worker %u \"%s\"\n", id, printable(w.name).c_str());
      std::fflush(stdout);
    }
    self->delayed_send(self, wait, expire_atom::value, id);
    return;
  }
}

void on_expire(coordinator_actor* self, worker_id id, bool running) {
  auto& st = self->state;
  auto it = st.workers.find(id);
  if (it == st.workers.end() || it->second.alive)
    return;
  if (st.plan->has_worker(id)) {
    auto before = st.plan->shard_of(id).cardinality();
    st.plan->remove_worker(id);
    cluster_log()->info("worker {}: lease expired, {} pieces back to the pool", id,
                                 before);
  }
  st.workers.erase(it);
  if (running)
    rebalance(self);
  // Replicate mode: a lost worker no longer holds the job back.
  if (running)
    maybe_finish(self);
}

/// The coordinator's heartbeat. Leases are not pushed from here: each answers a worker's report
/// (on_frame), because a pushed lease could sit in the socket of a frozen worker and open its
/// fence when it wakes up, after its pieces were given to another.
void renew_leases(coordinator_actor* self) {
  self->delayed_send(self, milliseconds(heartbeat_ms), lease_atom::value);
}

caf::behavior running(coordinator_actor* self) {
  return {
    [=](const cluster_frame& f) { on_frame(self, f, true); },
    [=](lease_atom) {
      renew_leases(self);
      // A steal or a top-up can depend on time alone (a slow worker near the end).
      rebalance(self);
      save_plan(self, false);
    },
    [=](progress_atom) {
      print_progress(self);
      self->delayed_send(self, std::chrono::seconds(1), progress_atom::value);
    },
    [=](expire_atom, worker_id id) { on_expire(self, id, true); },
    [=](stop_atom, int code) { exit_with(self, code); },
  };
}

caf::behavior waiting(coordinator_actor* self) {
  return {
    [=](const cluster_frame& f) {
      on_frame(self, f, false);
      auto& st = self->state;
      if (live_count(st) >= st.cfg.workers) {
        cluster_log()->info("{} workers joined: assigning", live_count(st));
        st.started = clock::now();
        self->become(running(self));
        rebalance(self);
        maybe_finish(self); // a restored plan may already be complete
      }
    },
    [=](lease_atom) { renew_leases(self); },
    [=](progress_atom) {
      auto& st = self->state;
      if (!st.cfg.quiet) {
        std::printf("waiting: %zu of %u workers joined\n", live_count(st), st.cfg.workers);
        std::fflush(stdout);
      }
      self->delayed_send(self, std::chrono::seconds(1), progress_atom::value);
    },
    [=](expire_atom, worker_id id) { on_expire(self, id, false); },
    [=](stop_atom, int code) { exit_with(self, code); },
  };
}

caf::behavior finishing(coordinator_actor* self) {
  return {
    [=](const cluster_frame& f) {
      // A late joiner or a last report: the job is over, nothing more is assigned.
      auto env = decode(f.bytes, nullptr);
      if (env && env->has_hello()) {
        auto sender = caf::actor_cast<caf::actor>(self->current_sender());
        if (sender)
          self->send(sender, cluster_frame{refused_frame("the job is complete",
                                                         self->state.cfg.meta->hash)});
      }
    },
    [=](lease_atom) {
      // Workers keep their lease while they flush.
      renew_leases(self);
    },
    [=](progress_atom) {},
    [=](expire_atom, worker_id) {},
    [=](finish_atom) { exit_with(self, 0); },
    [=](stop_atom, int) { exit_with(self, 0); },
  };
}

caf::behavior coordinator_fun(coordinator_actor* self,
                              std::shared_ptr<coordinator_state> prepared) {
  auto& st = self->state;
  st.cfg = std::move(prepared->cfg);
  st.plan = std::move(prepared->plan);
  st.store = std::move(prepared->store);
  st.started = clock::now();
  self->set_down_handler([=](caf::down_msg& dm) {
    on_down(self, dm);
    // Finishing: once every worker has flushed and left, the job is over.
    if (self->state.finishing && live_count(self->state) == 0)
      exit_with(self, 0);
  });
  self->set_exit_handler([=](caf::exit_msg& em) {
    // The system is shutting down (the CLI awaited no exit code): still save the plan.
    save_plan(self, true);
    self->quit(em.reason);
  });
  self->send(self, lease_atom::value);
  // The first line is the CLI's "listening:"; then one line a second.
  self->delayed_send(self, std::chrono::seconds(1), progress_atom::value);
  return waiting(self);
}

} // namespace

caf::actor spawn_coordinator(caf::actor_system& sys, coordinator_config cfg,
                             std::uint16_t& port, std::string& err) {
  auto prepared = std::make_shared<coordinator_state>();
  const auto& meta = *cfg.meta;
  planner_config pc;
  pc.piece_count = meta.piece_count();
  pc.piece_length = meta.piece_length;
  pc.total_size = meta.total_size;
  prepared->plan.emplace(pc);
  if (!cfg.state_dir.empty()) {
    auto store = plan_store::open(cfg.state_dir, meta.hash, meta.piece_count(),
                                  cfg.mode == job_mode::replicate ? wire::MODE_REPLICATE
                                                                  : wire::MODE_SHARED);
    if (!store) {
      err = store.error().message;
      return {};
    }
    prepared->store = std::make_unique<plan_store>(std::move(*store));
    auto saved = prepared->store->load();
    if (!saved) {
      err = saved.error().message;
      return {};
    }
    if (!prepared->store->warning().empty())
      std::fprintf(stderr, "warning: %s\n", prepared->store->warning().c_str());
    if (saved->has_value()) {
      prepared->plan->restore((*saved)->verified, (*saved)->last_epoch);
      if (!cfg.quiet)
        std::printf("resumed: %llu of %u pieces verified in an earlier run (%s)\n",
                    static_cast<unsigned long long>((*saved)->verified.cardinality()),
                    meta.piece_count(), prepared->store->path().c_str());
      cluster_log()->info("resumed the plan of {}: {} pieces verified, epoch {}",
                                   cfg.state_dir, (*saved)->verified.cardinality(),
                                   (*saved)->last_epoch);
    }
  }
  prepared->cfg = std::move(cfg);
  auto host = prepared->cfg.listen_host;
  auto want = prepared->cfg.listen_port;
  auto self = sys.spawn(coordinator_fun, prepared);
  auto published = sys.middleman().publish(self, want, host.c_str(), true);
  if (!published) {
    err = "cannot listen on " + host + ":" + std::to_string(want) + ": " +
          sys.render(published.error());
    caf::anon_send_exit(self, caf::exit_reason::user_shutdown);
    return {};
  }
  port = *published;
  return self;
}

void stop_coordinator(const caf::actor& coordinator, int code) {
  caf::anon_send(coordinator, stop_atom::value, code);
}

} // namespace actorrent::cluster
