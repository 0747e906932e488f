// The torrent actor: a thin behaviour per lifecycle state over one plain state struct, which
// holds the CAF-free parts the torrent owns (piece_picker, request_record, peer_list, choker,
// announce_schedule, smart_ban). Every state is a set of handlers of its own, tried first; then
// downloading and seeding share the trading handlers (peers accepted, pause), and every state
// with metainfo shares common_handlers: the bookkeeping of peer, storage and tracker events,
// which late messages need in any state (a dropped message is answered with an error, which
// ends its sender). What only a download does (requests: refills after blocks, chokes and
// rejects, request timeouts, interest in peers) is installed by downloading_behavior alone, so
// requests are in flight only while downloading; what only a seed does (dropping seed-to-seed
// connections) by seeding_behavior.
//
//                     awaiting_metadata        (a magnet link: peers dialled with the info-hash,
//                             |                 the metadata fetched from them, BEP 9)
//                             | verified: .torrent saved, files opened, peers redialled
//                             v
//  spawn --metainfo--> checking --pieces missing--> downloading --all verified, flushed--> seeding
//                       |  |                         |  ^  ^                               | | ^ ^
//                       |  |                         |  |  +----- selection widened -------+ | | |
//                       |  +- all verified ----------|--|------------------------------------|-+ |
//                       |                      pause |  | resume (not complete)        pause |   |
//                       |                            v  |                                    v   |
//                       +--pause asked meanwhile--> paused <---------------------------------+   |
//                                                     +----------- resume (complete) ------------+
//
//   paused: every peer closed, 'stopped' announced, verified pieces kept (resume data saved),
//   nothing dialled or accepted; resume announces 'started' and dials at once.
//   seeding from the check: peers at once, the files flushed meanwhile, then 'finished'.
//   selection widened: a wider file selection or piece filter wants pieces not yet verified.
//   any state but awaiting_metadata --stop_request--> stopping --every peer closed, or
//   500 ms--> (done: quit); awaiting_metadata --stop_request--> (peers told to close; quit).
//   checking | downloading | seeding | paused --storage error--> failed --stop--> stopping
//   awaiting_metadata --metadata unusable or its files not opened--> failed
//   failed: every peer closed, 'stopped' announced, nothing dialled or accepted.
//
// Handlers for rate limits (set_torrent_limits) and file
// priorities (set_file_priorities) belong in common_handlers (any state); the storage actor is
// spawned in spawn_torrent, before the first state is entered.
//
// [cluster] A piece filter (torrent_config::piece_filter, set_piece_filter) narrows what the
// file priorities select: a piece outside it is skip, whatever its files say. It takes the file
// selection's path (downloading <-> seeding as pieces become wanted or all verified), except
// that a piece leaving the filter while it downloads is abandoned, not finished, and that an
// empty filter (a worker before its first shard) never counts as finished: the torrent stays in
// downloading, connected and requesting nothing, and its observer hears only progress.
#include "actors/torrent_actor.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/announce_schedule.hpp"
#include "actors/choker.hpp"
#include "actors/extension_messages.hpp"
#include "actors/metrics.hpp"
#include "actors/peer_actor.hpp"
#include "actors/peer_connection.hpp"
#include "actors/peer_list.hpp"
#include "actors/rate_limiter.hpp"
#include "actors/request_record.hpp"
#include "actors/smart_ban.hpp"
#include "actors/storage_actor.hpp"
#include "actors/tracker_actor.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/ut_metadata.hpp"
#include "storage/file_selection.hpp"
#include "storage/disk_pool.hpp"
#include "storage/file_store.hpp"
#include "storage/write_fence.hpp"

namespace actorrent {

namespace {

using clock_type = std::chrono::steady_clock;
using std::chrono::seconds;

enum class phase : std::uint8_t {
  awaiting_metadata,
  checking,
  downloading,
  seeding,
  paused,
  stopping,
  failed,
};

const char* to_string(phase p) {
  switch (p) {
    case phase::awaiting_metadata: return "awaiting metadata";
    case phase::checking: return "checking";
    case phase::downloading: return "downloading";
    case phase::seeding: return "seeding";
    case phase::paused: return "paused";
    case phase::stopping: return "stopping";
    case phase::failed: return "failed";
  }
  return "?";
}

struct peer_entry {
  caf::actor handle;
  endpoint ep;
  std::size_t known = peer_list::no_entry; // index into the peer list (dialled peers)
  peer_id id{};                 // from its handshake
  peer_requests* requests = nullptr; // its part of the request record (stable address)
  std::uint64_t blocks_stored = 0; // copies of blocks it sent that storage wrote
  bool active = false;          // handshake done
  bool has_bits = false;
  bool seed = false;            // has every piece: counted once in availability
  bitfield bits;
  bool choked_us = true;
  bool interested = false;       // we are interested in the peer
  bool peer_interested = false;  // the peer is interested in us
  bool am_choking = true;
  bool banned = false;
  bool both_seeds = false;       // dropped because neither side needs anything: don't redial
  // Told to disconnect by a pause or a stop; gone for the torrent until its peer_closed arrives
  // (no requests, no slot in any limit, its peer-list entry already released).
  bool closing = false;
  std::uint64_t down_round = 0;  // payload from / to the peer in this choke round
  std::uint64_t up_round = 0;
  std::uint64_t uploaded = 0;
  bool avail_touched = false;         // in the current availability pass
  bool pending_interesting = false;   // its interest so far in that pass
  bool preferred = false;        // [cluster] dialled at an address of add_peers{preferred}
  std::uint64_t payload = 0;
  clock_type::time_point last_block = clock_type::now();
};

struct torrent_state {
  torrent_config cfg;
  std::shared_ptr<spdlog::logger> log;
  phase state = phase::checking;
  // -- the CAF-free parts --
  std::unique_ptr<piece_picker> picker;
  request_record requests;
  peer_list known;
  std::unique_ptr<choker> chokes;
  announce_schedule announces;
  smart_ban bans;
  // -- children --
  caf::actor storage;
  caf::actor tracker;
  std::shared_ptr<std::atomic<bool>> tracker_cancel;
  std::shared_ptr<std::atomic<bool>> check_cancel; // a stop cuts the data check short
  // -- connections --
  std::unordered_map<peer_slot, peer_entry> peers;
  std::unordered_map<caf::actor_addr, peer_slot> slot_of;
  peer_slot next_slot = 0; // slots are never reused: late messages cannot reach a successor
  std::vector<block_ref> picked;
  // [cluster] Replicate mode: the other workers' listen addresses. A piece that one of them has
  // is not asked of other peers (scratch bitfields for that mask, kept to avoid allocating).
  std::vector<endpoint> preferred;
  std::size_t preferred_peers = 0; // peer entries with `preferred` set
  bitfield preferred_have;
  bitfield masked;
  std::vector<peer_slot> touched; // peers whose availability changed in this pass
  // -- lifecycle details inside the states --
  bool finishing = false;      // every piece verified: flushing, no more requests
  bool done = false;           // verified and flushed: completion reported
  bool pause_requested = false; // a pause that arrived while checking
  bool stopped = false;
  std::vector<piece_index> pending_haves; // verified, not yet announced to peers
  std::vector<availability_delta> pending_avail; // received, applied by the next apply pass
  bool avail_scheduled = false;
  bool haves_flush_scheduled = false;
  std::uint32_t verified_since_save = 0;
  clock_type::time_point last_save = clock_type::now();
  std::uint32_t ticks = 0;
  std::uint64_t payload_up = 0;
  std::uint64_t payload_up_at_last_tick = 0;
  double up_rate = 0;
  std::uint32_t check_done = 0;
  std::uint32_t check_total = 0;
  // counters, published with every progress report
  struct {
    std::uint64_t availability_msgs = 0; // availability_delta messages handled
    std::uint64_t availability_passes = 0; // picker updates: applied changes + interest + refill
    std::uint64_t haves = 0;             // HAVEs inside them
    std::uint64_t activity_msgs = 0;
    std::uint64_t stored_msgs = 0;       // blocks_stored messages
    std::uint64_t blocks_fresh = 0;
    std::uint64_t blocks_duplicate = 0;
    std::uint64_t requests_sent = 0;
    std::uint64_t request_msgs = 0;      // request_blocks messages (refills)
    std::uint64_t cancels_sent = 0;
    std::uint64_t request_timeouts = 0;
    std::uint64_t wire_bytes = 0;
    std::uint64_t connects = 0;
    std::uint64_t bans = 0;
    std::uint64_t blocks_fenced = 0;     // [cluster] blocks the write fence refused
  } counters;
  // statistics
  std::uint64_t payload_down = 0;
  std::uint64_t payload_at_last_tick = 0;
  clock_type::time_point last_tick = clock_type::now();
  clock_type::time_point last_pex_round{}; // BEP 11 (see run_pex_round)
  // The last progress report sent to the observer, and when: an idle torrent (nothing moved,
  // nothing changed) reports every 10 s instead of every tick, so 1,000 idle torrents cost
  // their session next to nothing.
  std::array<std::uint64_t, 14> last_report_key{}; // see progress_key
  clock_type::time_point last_report{};
  // The tick's pace follows the torrent's activity (see tick_interval): the pending tick's
  // generation and when it is due. A tick of another generation was superseded: dropped.
  std::uint64_t tick_generation = 0;
  clock_type::time_point next_tick{};
  std::uint32_t pieces_failed = 0;
  double rate = 0;

  // [session] The torrent's own rate limits (set_torrent_limits), shared with its peers'
  // connections, under the session's. Rate 0: none.
  std::shared_ptr<rate_limiter> download_limiter = std::make_shared<rate_limiter>();
  std::shared_ptr<rate_limiter> upload_limiter = std::make_shared<rate_limiter>();

  // [magnet] BEP 9 fetch while awaiting metadata: the assembler, the peers that offered it
  // and how many of our requests each has pending.
  std::unique_ptr<ut_metadata::assembler> metadata;
  std::unordered_map<peer_slot, std::uint64_t> metadata_sources; // -> its metadata_size
  // After wrong metadata assembled from several peers: ask one peer at a time, so that the next
  // mismatch names its sender (an honest peer is never banned for another's bytes).
  bool metadata_one_source = false;
  std::optional<peer_slot> metadata_current;  // that one peer
  clock_type::time_point metadata_progress_at{}; // when it was chosen or last sent a piece
  std::unordered_map<peer_slot, std::uint32_t> metadata_asked;
  // The magnet's trackers, asked for peers while the metadata is fetched (the announcer of the
  // running states is spawned with the metainfo's trackers later).
  caf::actor metadata_tracker;
  std::unordered_set<peer_slot> pex_peers; // [magnet] peers that take ut_pex (BEP 11)
  bool metadata_announcing = false;
  clock_type::time_point metadata_next_announce{};

  // [cluster] The selection: the pieces' priorities from the file priorities (empty: all
  // normal) and the piece filter (nullopt: every piece); the picker gets their combination.
  std::vector<file_priority> file_pieces;
  std::optional<bitfield> filter;
  std::vector<std::uint32_t> to_report; // verified and written, not yet reported (report_pieces)
  // A block was refused by the write fence: no requests for fence_hold_ticks ticks (else the
  // freed blocks would be requested again at once, refused again, and so on at network speed).
  // The hold doubles, up to 8 ticks, while refusals go on (a lease that stays expired costs
  // the peers a pipeline every 8 s, not every second); a stored block or a new filter ends it.
  bool fence_hold = false;
  std::uint32_t fence_hold_ticks = 0;
  std::uint32_t fence_backoff = 1;

  const metainfo& meta() const { return *cfg.meta; }
  /// [cluster] An empty piece filter: nothing wanted, and not "finished" either.
  bool nothing_selected() const { return filter && filter->none(); }
  /// Peers are dialled, accepted and traded with.
  bool running() const { return state == phase::downloading || state == phase::seeding; }
};

using self_ptr = caf::stateful_actor<torrent_state>*;

// The states; each returns its behaviour (its own handlers, then the common ones).
void enter(self_ptr self, phase next);
void enter_stopping(self_ptr self);
void pause(self_ptr self);
void wake_ticks(self_ptr self);
void drop_fellow_seed(self_ptr self, peer_entry& e);

/// torrent_config::check_invariants (tests): the picker agrees with the request record (every
/// requested block has a request in flight, and no other block has) and, once `settled` (not
/// while a change of state closes peers one by one), requests are in flight only while
/// downloading. O(pieces): never in production. Called where a step is complete, not halfway.
void check_invariants(const torrent_state& st, const char* after, bool settled = true) {
  if (!st.cfg.check_invariants || !st.picker)
    return;
  if (st.picker->consistent(&st.requests) && st.requests.consistent() &&
      (!settled || st.state == phase::downloading || st.requests.total() == 0))
    return;
  st.log->critical("torrent invariant broken after {}: the piece picker and the request record "
                   "disagree", after);
  st.log->flush();
  std::fprintf(stderr, "torrent invariant broken after %s\n", after);
  std::abort();
}

std::uint64_t bytes_left(const torrent_state& st) {
  // Of the selected pieces only: a selective download that has them all has nothing left.
  return st.picker->wanted_bytes() - st.picker->wanted_verified_bytes();
}

void send_announce(self_ptr self, std::optional<tracker::event> ev) {
  auto& st = self->state;
  if (st.tracker && ev)
    self->send(st.tracker, announce{*ev, st.payload_up, st.payload_down, bytes_left(st)});
}

/// [cluster] Addresses of add_peers{preferred}; peers already dialled there become preferred.
void remember_preferred(torrent_state& st, const add_peers& ap) {
  if (!ap.preferred)
    return;
  for (auto& ep : ap.peers)
    if (std::find(st.preferred.begin(), st.preferred.end(), ep) == st.preferred.end())
      st.preferred.push_back(ep);
  for (auto& [slot, e] : st.peers) {
    if (e.preferred || e.known == peer_list::no_entry ||
        std::find(st.preferred.begin(), st.preferred.end(), e.ep) == st.preferred.end())
      continue;
    e.preferred = true;
    ++st.preferred_peers;
  }
}

/// The pieces `e` may be asked for (nullptr: all of them). [cluster] In a replicate job, a
/// peer that is not one of the other workers is not asked for what a worker offers: one that
/// we dialled, that unchokes us, and that has sent a block in the last 5 s or has nothing of
/// ours in flight (a frozen worker does not hold pieces back from the swarm).
const bitfield* pickable_of(torrent_state& st, const peer_entry& e) {
  const bitfield* has = e.seed ? nullptr : &e.bits;
  if (e.preferred || st.preferred_peers == 0)
    return has;
  const auto n = st.meta().piece_count();
  if (st.preferred_have.size() != n)
    st.preferred_have = bitfield(n);
  else
    st.preferred_have.clear();
  bool any = false;
  const auto now = clock_type::now();
  for (auto& [slot, p] : st.peers) {
    if (!p.preferred || !p.active || p.closing || p.choked_us || !p.has_bits)
      continue;
    if (p.requests->size() > 0 && now - p.last_block > seconds(5))
      continue;
    any = true;
    if (p.seed) {
      st.preferred_have.set_all();
      break;
    }
    st.preferred_have |= p.bits;
  }
  if (!any)
    return has;
  if (st.masked.size() != n)
    st.masked = bitfield(n);
  if (has)
    st.masked = *has; // same size: copies into the existing words
  else
    st.masked.set_all();
  st.masked.and_not(st.preferred_have);
  return &st.masked;
}

void refill(self_ptr self, peer_slot slot, peer_entry& e) {
  auto& st = self->state;
  if (st.state != phase::downloading || st.finishing || e.choked_us || !e.has_bits ||
      !e.active || e.banned || e.closing || st.fence_hold)
    return;
  // What the peer delivers in request_queue_s at its rate, within its BEP 10 reqq.
  auto cap = std::size_t{e.requests->paced_pipeline(seconds(st.cfg.request_queue_s))};
  // Refill before the pipeline drains, in batches of at least a quarter of it.
  auto in_flight = e.requests->size();
  if (in_flight > cap - cap / 4)
    return;
  st.picked.clear();
  st.picker->pick(slot, pickable_of(st, e), cap - in_flight, st.requests, st.picked, e.seed);
  if (auto& back = st.picker->taken_back(); !back.empty()) {
    // Storage forgets these copies too, or its count of a piece's blocks would run ahead.
    self->send(st.storage, discard_blocks{std::move(back)});
    back.clear();
  }
  if (st.picked.empty())
    return check_invariants(st, "a refill");
  auto now = clock_type::now();
  for (auto b : st.picked) {
    [[maybe_unused]] bool recorded = st.requests.add(slot, b, now);
    assert(recorded); // the picker hands a block to a second peer at most
  }
  st.counters.requests_sent += st.picked.size();
  ++st.counters.request_msgs;
  self->send(e.handle, request_blocks{st.picked});
  check_invariants(st, "a refill");
}

void refill_all(self_ptr self) {
  for (auto& [slot, e] : self->state.peers)
    refill(self, slot, e);
}

void drop_outstanding(torrent_state& st, peer_slot slot) {
  for (auto b : st.requests.take_all(slot))
    st.picker->on_request_dropped(b, st.requests);
  check_invariants(st, "dropping a peer's requests", false);
}

void update_interest(self_ptr self, peer_entry& e, bool interesting) {
  if (interesting == e.interested)
    return;
  e.interested = interesting;
  self->send(e.handle, set_interested{interesting});
}

torrent_progress make_progress(const torrent_state& st);

/// [cluster] Sends the pieces verified since the last batch to the observer (report_pieces).
void flush_report(self_ptr self) {
  auto& st = self->state;
  if (st.to_report.empty())
    return;
  self->send(st.cfg.observer, torrent_pieces_verified{std::move(st.to_report)});
  st.to_report.clear();
}

void finish_stop(self_ptr self) {
  auto& st = self->state;
  if (st.stopped)
    return;
  st.stopped = true;
  flush_report(self); // [cluster] the last batch comes before the torrent's last report
  auto p = make_progress(st);
  self->send(st.cfg.observer, torrent_stopped{p});
  if (st.tracker) {
    // Say goodbye to a tracker that knows us (or may: an announce was under way). The announcer
    // handles it after what it has queued: a routine announce cut short by the stop, or a
    // "completed" one (sent with its own short timeout).
    send_announce(self, st.announces.stopped());
    self->send(st.tracker, stop_request{});
  }
  self->send(st.storage, stop_request{}); // saves the resume data on its way out
  self->quit();
}

void connect_more(self_ptr self);

void remove_peer(self_ptr self, peer_slot slot, const std::string& reason, bool misbehaved) {
  auto& st = self->state;
  auto it = st.peers.find(slot);
  if (it == st.peers.end())
    return;
  auto& e = it->second;
  drop_outstanding(st, slot);
  st.requests.remove_peer(slot);
  if (e.has_bits) {
    if (e.seed)
      st.picker->avail().remove_seed();
    else
      st.picker->remove_peer_pieces(e.bits);
  }
  // A closing peer's entry was released when it was told to close (a resume may have dialled
  // it again since); only a ban still applies to it.
  if (e.known != peer_list::no_entry && (!e.closing || misbehaved || e.banned))
    st.known.on_closed(e.known, e.active, misbehaved || e.banned || e.both_seeds,
                       clock_type::now());
  st.log->debug("peer {} gone: {}", e.ep.to_string(), reason);
  if (!e.banned && e.blocks_stored > 0)
    st.known.remember_departed(slot, peer_list::departed_peer{e.ep, e.known, e.id});
  st.slot_of.erase(e.handle.address());
  if (!e.closing) // else counted out when told to close
    st.known.connection_closed(e.ep.host);
  self->demonitor(e.handle);
  st.preferred_peers -= e.preferred;
  st.peers.erase(it);
  check_invariants(st, "removing a peer");
  if (st.state == phase::stopping) {
    if (st.peers.empty())
      finish_stop(self);
    return;
  }
  refill_all(self);
}

peer_slot spawn_peer_for(self_ptr self, const endpoint& ep, std::size_t known_index,
                         std::shared_ptr<peer_connection> accepted, const wire::handshake* hs) {
  auto& st = self->state;
  peer_config pc;
  pc.torrent = caf::actor_cast<caf::actor>(self);
  pc.storage = st.storage;
  pc.slot = st.next_slot++;
  pc.remote = ep;
  pc.meta = st.cfg.meta;
  pc.hash = st.cfg.meta ? st.cfg.meta->hash : st.cfg.hash; // a magnet link: no metainfo yet
  pc.our_id = st.cfg.id;
  pc.io = st.cfg.io;
  pc.inactivity_timeout_s = st.cfg.peer_timeout_s;
  pc.handshake_timeout_ms = st.cfg.handshake_timeout_ms;
  pc.listen_port = st.cfg.listen_port;
  if (st.cfg.dht && (!st.cfg.meta || !st.cfg.meta->is_private)) { // BEP 27: no DHT if private
    pc.dht = st.cfg.dht;
    pc.dht_port = st.cfg.dht_port;
  }
  pc.download_limiter = st.download_limiter; // [session] per-torrent rate limits
  pc.upload_limiter = st.upload_limiter;
  pc.accepted = std::move(accepted);
  if (hs)
    pc.accepted_handshake = *hs;
  auto handle = st.cfg.peer_factory ? st.cfg.peer_factory(self->system(), pc)
                                    : spawn_peer(self->system(), pc);
  self->monitor(handle);
  peer_entry e;
  e.handle = handle;
  e.requests = &st.requests.add_peer(pc.slot, std::min(st.cfg.max_outstanding, unannounced_reqq));
  e.requests->set_timeout_bounds(std::chrono::milliseconds(st.cfg.min_request_timeout_ms),
                                 seconds(st.cfg.request_timeout_s));
  e.ep = ep;
  e.known = known_index;
  e.preferred = known_index != peer_list::no_entry &&
                std::find(st.preferred.begin(), st.preferred.end(), ep) != st.preferred.end();
  st.preferred_peers += e.preferred;
  st.slot_of.emplace(handle.address(), pc.slot);
  st.known.connection_opened(ep.host);
  st.peers.emplace(pc.slot, std::move(e));
  wake_ticks(self);
  return pc.slot;
}

/// Connections that count towards the limits: not the ones closing.
std::size_t open_peers(const torrent_state& st) {
  std::size_t n = 0;
  for (auto& [slot, e] : st.peers)
    n += !e.closing;
  return n;
}

/// Tells every peer to close. They count for nothing from now on, and the peer list gets their
/// entries back at once, so that a resume dials them again without waiting for their close.
void close_all_peers(self_ptr self, const char* why) {
  auto& st = self->state;
  auto now = clock_type::now();
  for (auto& [slot, e] : st.peers) {
    if (e.closing)
      continue;
    drop_outstanding(st, slot);
    e.closing = true;
    if (e.known != peer_list::no_entry)
      st.known.release(e.known, now);
    st.known.connection_closed(e.ep.host);
    self->send(e.handle, disconnect_peer{why});
  }
}

void connect_more(self_ptr self) {
  auto& st = self->state;
  if (!st.running())
    return;
  // [session] The session's --max-connections is reached: a dial would only fail and push the
  // peer's next try back; the next tick tries again.
  if (st.cfg.io && st.cfg.io->connections_full())
    return;
  std::uint32_t half_open = 0;
  for (auto& [slot, e] : st.peers)
    half_open += !e.active && !e.closing && e.known != peer_list::no_entry;
  auto room = [](std::size_t limit, std::size_t used) { return limit > used ? limit - used : 0; };
  std::size_t limit = std::min<std::size_t>({8, room(st.cfg.max_peers, open_peers(st)),
                                             room(st.cfg.max_half_open, half_open)});
  if (limit == 0)
    return;
  for (auto i : st.known.take_dials(clock_type::now(), limit, st.cfg.max_peers_per_ip)) {
    ++st.counters.connects;
    spawn_peer_for(self, st.known.at(i).ep, i, nullptr, nullptr);
  }
}

torrent_progress make_progress(const torrent_state& st) {
  torrent_progress p;
  p.known_peers = static_cast<std::uint32_t>(st.known.size());
  if (!st.cfg.meta || !st.picker)
    return p; // awaiting metadata: nothing known of the content yet
  p.is_private = st.meta().is_private;
  // With a file selection, progress is of the selected pieces.
  p.total_size = st.picker->wanted_bytes();
  p.verified_bytes = st.picker->wanted_verified_bytes();
  p.dirty_bytes = st.picker->dirty_bytes();
  p.downloaded_payload = st.payload_down;
  p.pieces = st.meta().piece_count();
  p.pieces_verified = st.picker->have_count();
  p.pieces_failed = st.pieces_failed;
  for (auto& [slot, e] : st.peers) {
    p.peers += e.active && !e.closing;
    p.peers_unchoked += e.active && !e.closing && !e.choked_us;
  }
  p.download_rate = st.rate;
  p.upload_rate = st.up_rate;
  p.uploaded_payload = st.payload_up;
  p.checking = st.state == phase::checking && !st.finishing;
  p.check_done = st.check_done;
  p.check_total = st.check_total;
  p.seeding = st.done && st.state != phase::paused;
  return p;
}
std::string render_metrics(self_ptr self, const torrent_progress& p) {
  auto& st = self->state;
  auto& c = st.counters;
  metrics_registry m;
  m.counter("payload_downloaded_bytes", static_cast<double>(p.downloaded_payload),
            "block payload received from peers, duplicates included");
  m.counter("payload_uploaded_bytes", static_cast<double>(p.uploaded_payload),
            "block payload sent to peers");
  m.counter("wire_downloaded_bytes", static_cast<double>(c.wire_bytes), "bytes read from peer sockets");
  m.counter("blocks_received", static_cast<double>(c.blocks_fresh), "first copies of blocks stored");
  m.counter("blocks_duplicate", static_cast<double>(c.blocks_duplicate),
            "blocks received again (end-game races, unrequested data)");
  m.counter("pieces_verified", p.pieces_verified, "pieces whose SHA-1 matched");
  m.counter("pieces_failed", p.pieces_failed, "pieces whose SHA-1 did not match");
  m.counter("picker_availability_updates", static_cast<double>(st.picker->availability_updates()),
            "availability bucket updates (one per piece per bitfield/HAVE, once per seed)");
  m.counter("picker_availability_passes", static_cast<double>(c.availability_passes),
            "picker updates: availability changes applied, then one interest check and one "
            "refill per affected peer");
  m.counter("availability_messages", static_cast<double>(c.availability_msgs),
            "availability_delta messages handled by the torrent (one per socket read)");
  m.counter("haves_received", static_cast<double>(c.haves), "HAVE messages inside them");
  m.counter("requests_sent", static_cast<double>(c.requests_sent), "block requests sent");
  m.counter("request_batches", static_cast<double>(c.request_msgs), "pipeline refills");
  m.counter("cancels_sent", static_cast<double>(c.cancels_sent), "end-game cancels sent");
  m.counter("request_timeouts", static_cast<double>(c.request_timeouts),
            "requests that took too long and went to another peer");
  m.counter("peer_activity_messages", static_cast<double>(c.activity_msgs),
            "peer_activity messages handled by the torrent");
  m.counter("blocks_stored_messages", static_cast<double>(c.stored_msgs),
            "blocks_stored messages handled by the torrent");
  m.counter("peer_connects", static_cast<double>(c.connects), "outgoing connection attempts");
  m.counter("peer_bans", static_cast<double>(c.bans), "peers banned for bad data");
  if (st.cfg.fence)
    m.counter("blocks_fenced", static_cast<double>(c.blocks_fenced),
              "blocks the cluster write fence refused (fetched again once allowed)");
  m.gauge("peers_connected", p.peers, "peers past the handshake");
  m.gauge("peers_unchoked_us", p.peers_unchoked, "peers that let us download");
  m.gauge("peers_known", p.known_peers, "peer addresses known");
  m.gauge("pieces_total", p.pieces, "pieces in the torrent");
  m.gauge("pieces_downloading", static_cast<double>(st.picker->downloading_count()),
          "pieces partly requested or received");
  m.gauge("dirty_bytes", static_cast<double>(p.dirty_bytes), "received bytes not yet verified");
  m.gauge("download_rate_bytes", p.download_rate, "payload bytes per second, last second");
  m.gauge("upload_rate_bytes", p.upload_rate, "payload bytes per second, last second");
  m.gauge("torrent_mailbox_depth", static_cast<double>(self->mailbox().size()),
          "messages waiting in the torrent actor's mailbox");
  return m.to_prometheus();
}

void fail_torrent(self_ptr self, const error& reason) {
  auto& st = self->state;
  if (st.state == phase::failed)
    return;
  st.log->error("{}", reason.message);
  self->send(st.cfg.observer, torrent_failed{reason});
  if (st.state == phase::stopping) {
    st.finishing = true; // reported; the stop goes on
    return;
  }
  enter(self, phase::failed);
  // A failed torrent keeps no connection, and trackers stop handing it out.
  close_all_peers(self, "torrent failed");
  if (st.tracker)
    send_announce(self, st.announces.stopped());
}

/// Every piece verified and the files flushed: seeding from now on (or later, when paused).
void on_flushed(self_ptr self) {
  auto& st = self->state;
  if (st.state == phase::failed)
    return;
  st.done = true;
  if (st.state == phase::downloading)
    enter(self, phase::seeding);
  if (st.tracker) // nothing while paused: sent on resume
    send_announce(self, st.announces.completed());
  if (st.state == phase::seeding)
    for (auto& [slot, e] : st.peers)
      drop_fellow_seed(self, e);
  flush_report(self); // [cluster] every piece of the selection is reported before `finished`
  self->send(st.cfg.observer, torrent_finished{make_progress(st)});
}

/// When every piece is verified: no more requests; the files are flushed before anyone is told.
void maybe_finish(self_ptr self) {
  auto& st = self->state;
  if (st.finishing || !st.picker->complete())
    return;
  if (st.state == phase::stopping || st.state == phase::failed)
    return;
  if (st.nothing_selected())
    return; // [cluster] a worker without a shard: waiting, not done
  st.finishing = true;
  for (auto& [slot, e] : st.peers) {
    drop_outstanding(st, slot);
    update_interest(self, e, false);
  }
  // Done means on disk: flush every file before telling anyone.
  self->request(st.storage, caf::infinite, sync_storage{})
    .then([=](storage_synced& r) {
      if (!r.result) {
        fail_torrent(self, error{r.result.error().code,
                                 "flushing files failed: " + r.result.error().message});
        return;
      }
      on_flushed(self);
    },
    [=](caf::error& err) {
      fail_torrent(self, error{errc::actor_down, "storage: flushing files failed: " +
                                                   caf::to_string(err)});
    });
}

/// Bans a peer for bad data: disconnects it (and any other connection to the same address or
/// with the same id) and never dials it again; it is refused if it connects again.
void ban_peer(self_ptr self, peer_slot slot, const std::string& why) {
  auto& st = self->state;
  endpoint ep;
  std::size_t known = peer_list::no_entry;
  peer_id id{};
  if (auto it = st.peers.find(slot); it != st.peers.end()) {
    if (it->second.banned)
      return;
    ep = it->second.ep;
    known = it->second.known;
    id = it->second.id;
    st.log->warn("peer {} banned: {}", ep.to_string(), why);
  } else if (auto gone = st.known.take_departed(slot)) {
    ep = gone->ep;
    known = gone->known;
    id = gone->id;
    st.log->warn("peer {} banned: {} (already disconnected)", ep.to_string(), why);
  } else {
    return;
  }
  ++st.counters.bans;
  if (known != peer_list::no_entry)
    st.known.ban(known);
  if (id != peer_id{})
    st.known.ban_id(id);
  for (auto& [other, e] : st.peers) {
    bool same = other == slot || (known != peer_list::no_entry && e.known == known) ||
                (id != peer_id{} && e.id == id);
    if (same && !e.banned) {
      e.banned = true;
      self->send(e.handle, disconnect_peer{"banned: " + why});
    }
  }
}

std::string peer_name(const torrent_state& st, peer_slot slot) {
  if (auto it = st.peers.find(slot); it != st.peers.end())
    return it->second.ep.to_string();
  if (auto* gone = st.known.departed(slot))
    return gone->ep.to_string();
  return "a peer already gone";
}

void on_piece_checked(self_ptr self, const piece_checked& pc) {
  auto& st = self->state;
  const auto& v = pc.verdict;
  if (v.ok) {
    st.picker->on_piece_verified(v.piece);
    if (st.bans.remembers(v.piece)) {
      // Smart ban: the piece failed before; whoever sent a block that differs from the data
      // that verified now lied, and nobody else did.
      for (auto& l : st.bans.on_piece_passed(v.piece, v.blocks))
        ban_peer(self, l.peer, "sent " + std::to_string(l.bad_blocks) + " bad block" +
                                 (l.bad_blocks == 1 ? "" : "s") + " of piece " +
                                 std::to_string(v.piece.value));
    }
    st.pending_haves.push_back(v.piece);
    if (st.cfg.report_pieces) // its blocks were written before it was hashed (same disk job)
      st.to_report.push_back(v.piece.value);
    if (st.cfg.save_resume)
      ++st.verified_since_save;
    if (!st.haves_flush_scheduled) {
      // HAVEs go out in batches: one message per peer for everything verified meanwhile.
      st.haves_flush_scheduled = true;
      self->delayed_send(self, std::chrono::milliseconds(50), flush_haves{});
    }
    maybe_finish(self);
    return;
  }
  ++st.pieces_failed;
  st.picker->on_piece_failed(v.piece);
  st.bans.on_piece_failed(v.piece, v.blocks);
  // Who sent the blocks that were hashed (storage's record of the copies on disk).
  std::vector<std::pair<peer_slot, std::uint32_t>> senders;
  for (auto& b : v.blocks) {
    auto it = std::find_if(senders.begin(), senders.end(),
                           [&](auto& s) { return s.first == b.sender; });
    if (it == senders.end())
      senders.emplace_back(b.sender, 1);
    else
      ++it->second;
  }
  std::string from;
  for (auto& [slot, n] : senders)
    from += (from.empty() ? "" : ", ") + peer_name(st, slot) + " (" + std::to_string(n) +
            (n == 1 ? " block)" : " blocks)");
  st.log->warn("piece {} hash check failed (data from {}); fetching it again", v.piece.value,
               from.empty() ? "nobody" : from);
  if (senders.size() == 1 && senders[0].first != no_peer) {
    // One peer sent every block of a piece that failed: it lied, whatever the others do.
    ban_peer(self, senders[0].first,
             "sent every block of piece " + std::to_string(v.piece.value) +
               ", which failed the hash check");
  }
  // Otherwise the piece is fetched again from one peer at a time (parole); when it passes,
  // smart ban names the peers whose blocks differed.
  refill_all(self);
}

/// Every 10 s: the choker picks the peers we upload to (see choker.hpp).
void run_choker(self_ptr self) {
  auto& st = self->state;
  std::vector<choker::candidate> candidates;
  for (auto& [slot, e] : st.peers)
    if (e.active && e.peer_interested && !e.banned && !e.closing)
      candidates.push_back(choker::candidate{slot, e.down_round, e.up_round});
  // A banned, closing or uninterested optimistic peer is no candidate: it loses its slot.
  bool optimistic_present =
    std::any_of(candidates.begin(), candidates.end(),
                [&](const choker::candidate& c) { return c.slot == st.chokes->optimistic(); });
  auto unchoke = st.chokes->run(std::move(candidates), st.done, st.ticks / 10, optimistic_present);
  for (auto& [slot, e] : st.peers) {
    bool choke = std::find(unchoke.begin(), unchoke.end(), slot) == unchoke.end();
    if (choke != e.am_choking && e.active && !e.closing) {
      e.am_choking = choke;
      self->send(e.handle, set_choke{choke});
    }
    e.down_round = e.up_round = 0;
  }
}

/// Unchokes an interested peer at once while a slot is free, instead of waiting for the round.
void fill_free_slot(self_ptr self, peer_entry& e) {
  auto& st = self->state;
  if (!st.running() || !e.am_choking || !e.peer_interested || !e.active || e.banned || e.closing)
    return;
  std::size_t unchoked = 0;
  for (auto& [slot, other] : st.peers)
    unchoked += !other.am_choking && !other.closing;
  if (!st.chokes->has_free_slot(unchoked))
    return;
  e.am_choking = false;
  self->send(e.handle, set_choke{false});
}

/// A request that waited much longer than the peer's usual request time goes to another peer,
/// and the slow peer's pipeline shrinks (a copy it still sends is kept, and the request
/// elsewhere cancelled); a peer that delivers nothing at all for 60 s is dropped.
void expire_requests(self_ptr self, clock_type::time_point now) {
  auto& st = self->state;
  std::vector<peer_slot> slow;
  for (auto& [slot, e] : st.peers) {
    if (e.requests->empty())
      continue;
    if (now - e.last_block > seconds(60)) {
      drop_outstanding(st, slot);
      self->send(e.handle, disconnect_peer{"no data for 60 s with requests pending"});
      continue;
    }
    auto late = st.requests.take_timed_out(slot, now);
    if (late.empty())
      continue;
    for (auto b : late)
      st.picker->on_request_dropped(b, st.requests);
    st.counters.request_timeouts += late.size();
    st.log->debug("peer {}: {} request(s) timed out after {} ms; pipeline now {}",
                  e.ep.to_string(), late.size(), e.requests->timeout().count(),
                  e.requests->pipeline());
    // timed_out: a copy that still arrives is written (the peer may be slow, not gone).
    self->send(e.handle, cancel_blocks{std::move(late), true});
    slow.push_back(slot);
  }
  // Others first, so that the timed-out blocks go elsewhere.
  for (auto& [slot, e] : st.peers)
    if (std::find(slow.begin(), slow.end(), slot) == slow.end())
      refill(self, slot, e);
  for (auto slot : slow)
    if (auto it = st.peers.find(slot); it != st.peers.end())
      refill(self, slot, it->second);
}

/// What a progress report says that an observer would show: equal keys, nothing to tell.
/// A fixed array: comparing it each tick allocates nothing.
std::array<std::uint64_t, 14> progress_key(const torrent_progress& p, phase state) {
  return {std::uint64_t{p.verified_bytes}, std::uint64_t{p.dirty_bytes},
          std::uint64_t{p.downloaded_payload}, std::uint64_t{p.uploaded_payload},
          std::uint64_t{p.pieces_verified}, std::uint64_t{p.pieces_failed},
          std::uint64_t{p.peers}, std::uint64_t{p.peers_unchoked},
          std::uint64_t{p.known_peers}, std::uint64_t{p.check_done},
          std::uint64_t{p.check_total}, std::uint64_t{p.checking},
          std::uint64_t{p.seeding}, static_cast<std::uint64_t>(state)};
}

/// How long until the next tick. Once a second while there is anything to pace: peers
/// (choker, request timeouts, rates) or a check (its progress). Without peers a torrent has
/// only the announce schedule and its dials to keep: a download retries its known peers every
/// 5 s, a seed or a paused or failed torrent ticks every 30 s, both sooner when an announce is
/// due; a new peer brings the second back at once (wake_ticks). So 1,000 idle torrents cost
/// their process next to nothing.
clock_type::duration tick_interval(const torrent_state& st, clock_type::time_point now) {
  if (!st.peers.empty() || st.state == phase::checking || st.state == phase::stopping)
    return seconds(1);
  clock_type::duration d = st.state == phase::downloading && !st.finishing ? seconds(5)
                                                                           : seconds(30);
  if (st.running() && st.tracker) {
    auto due = st.announces.next_announce() - now;
    d = std::clamp<clock_type::duration>(due, seconds(1), d);
  }
  if (st.verified_since_save > 0) // resume data still to save: on time
    d = std::min<clock_type::duration>(d, seconds(std::max(1u, st.cfg.resume_interval_s)));
  if (!st.to_report.empty() || st.fence_hold) // [cluster] a batch to send, requests to resume
    d = std::min<clock_type::duration>(d, seconds(1));
  return d;
}

void schedule_tick(self_ptr self, clock_type::duration d) {
  auto& st = self->state;
  st.next_tick = clock_type::now() + d;
  self->delayed_send(self, std::chrono::duration_cast<std::chrono::milliseconds>(d),
                     tick{++st.tick_generation});
}

/// Something to pace now (a peer appeared): the next tick within a second.
void wake_ticks(self_ptr self) {
  if (self->state.next_tick > clock_type::now() + seconds(1))
    schedule_tick(self, seconds(1));
}

// BEP 11: the PEX round's period (a peer sends at most once a minute; see run_pex_round).
constexpr auto pex_round_interval = seconds(10);
void run_pex_round(self_ptr self);

/// A state's part of the tick, between the bookkeeping every state does and the progress report.
using tick_part = void (*)(self_ptr, clock_type::time_point now);

void on_tick(self_ptr self, const tick& t, tick_part state_part) {
  auto& st = self->state;
  if (t.generation != st.tick_generation)
    return; // superseded by a later one
  auto now = clock_type::now();
  double dt = std::chrono::duration<double>(now - st.last_tick).count();
  if (dt > 0)
    st.rate = static_cast<double>(st.payload_down - st.payload_at_last_tick) / dt;
  st.payload_at_last_tick = st.payload_down;
  if (dt > 0)
    st.up_rate = static_cast<double>(st.payload_up - st.payload_up_at_last_tick) / dt;
  st.payload_up_at_last_tick = st.payload_up;
  st.last_tick = now;
  ++st.ticks;
  flush_report(self); // [cluster] at most one batch per tick
  // [cluster] Refused blocks may be requested again once the hold is over (expire_requests
  // refills every peer).
  if (st.fence_hold && --st.fence_hold_ticks == 0)
    st.fence_hold = false;
  if (st.verified_since_save > 0 && now - st.last_save >= seconds(st.cfg.resume_interval_s)) {
    st.verified_since_save = 0;
    st.last_save = now;
    self->send(st.storage, save_resume_now{});
  }
  if (state_part)
    state_part(self, now);
  check_invariants(st, "a tick");
  if (st.state != phase::failed) {
    auto p = make_progress(st);
    auto key = progress_key(p, st.state);
    if (key != st.last_report_key || now - st.last_report >= seconds(10)) {
      st.last_report_key = key;
      st.last_report = now;
      if (st.cfg.publish_metrics)
        p.metrics = render_metrics(self, p);
      self->send(st.cfg.observer, std::move(p));
    }
  }
  schedule_tick(self, tick_interval(st, now));
}

/// Applies one peer's availability change to its bitfield and the picker. Returns whether
/// the peer is interesting afterwards, given `interesting` before.
bool apply_delta(torrent_state& st, peer_entry& e, availability_delta& d, bool interesting) {
  auto& picker = *st.picker;
  if (d.has_bitfield) {
    if (e.has_bits) {
      if (e.seed)
        picker.avail().remove_seed();
      else
        picker.remove_peer_pieces(e.bits);
    }
    e.has_bits = true;
    e.seed = d.bits.all();
    e.bits = std::move(d.bits);
    if (e.seed) {
      picker.avail().add_seed();
      picker.count_availability_update();
    } else {
      picker.add_peer_pieces(e.bits);
    }
    interesting = picker.is_interesting(e.seed ? nullptr : &e.bits);
  }
  if (!d.haves.empty()) {
    if (!e.has_bits) {
      e.has_bits = true;
      e.bits = bitfield(st.meta().piece_count());
    }
    if (!e.seed) {
      for (auto p : d.haves) {
        if (e.bits.test(p))
          continue;
        e.bits.set(p);
        picker.avail().increment(p);
        interesting = interesting || picker.wanted(p);
      }
      picker.count_availability_update(d.haves.size());
      if (e.bits.all()) {
        // Now a seed: count it once instead of once per piece.
        picker.remove_peer_pieces(e.bits);
        picker.avail().add_seed();
        e.seed = true;
      }
    }
  }
  return interesting;
}

/// What a state does for a peer whose availability changed (the change applied), given whether
/// the peer has pieces we want: downloading follows its interest and requests (want_from),
/// seeding drops a fellow seed (want_nothing_from); a state whose peers are all closing, none.
using availability_reaction = void (*)(self_ptr, peer_slot, peer_entry&, bool interesting);

/// One pass over the availability changes queued since the last: apply them all, then give
/// each affected peer the state's reaction once.
void apply_pending_availability(self_ptr self, availability_reaction react) {
  auto& st = self->state;
  st.avail_scheduled = false;
  if (st.pending_avail.empty())
    return;
  ++st.counters.availability_passes;
  st.touched.clear();
  for (auto& d : st.pending_avail) {
    auto it = st.peers.find(d.slot);
    if (it == st.peers.end())
      continue;
    auto& e = it->second;
    if (!e.avail_touched) {
      e.avail_touched = true;
      e.pending_interesting = e.interested;
      st.touched.push_back(d.slot);
    }
    e.pending_interesting = apply_delta(st, e, d, e.pending_interesting);
  }
  st.pending_avail.clear();
  for (auto slot : st.touched) {
    auto it = st.peers.find(slot);
    if (it == st.peers.end())
      continue;
    it->second.avail_touched = false;
    if (react)
      react(self, slot, it->second, it->second.pending_interesting);
  }
}

// -- what the states do ----------------------------------------------------------------------

/// Refuses a connection that a listener accepted for us, with the reason.
void refuse(self_ptr self, incoming_peer& ip, const char* why) {
  self->state.log->info("incoming {} refused: {}", ip.remote.to_string(), why);
  ip.conn->close(why);
}

void accept_peer(self_ptr self, incoming_peer& ip) {
  auto& st = self->state;
  bool ip_full = st.known.connections_from(ip.remote.host) >= st.cfg.max_peers_per_ip;
  if (open_peers(st) >= st.cfg.max_peers)
    return refuse(self, ip, "too many peers");
  if (ip_full)
    return refuse(self, ip, "too many connections from this address");
  spawn_peer_for(self, ip.remote, peer_list::no_entry, ip.conn, &ip.hs);
}

/// stop_request in any state but stopping: close every peer, then quit (see finish_stop).
void enter_stopping(self_ptr self) {
  auto& st = self->state;
  if (st.check_cancel)
    st.check_cancel->store(true); // storage returns what it verified so far
  // Abort a routine announce in flight to exit promptly ("completed" and "stopped" are not cut
  // short: they have short timeouts of their own).
  if (st.tracker)
    st.tracker_cancel->store(true);
  enter(self, phase::stopping);
  st.finishing = true;
  close_all_peers(self, "shutting down");
  // Peers publish their last counters as they close; wait for them (bounded).
  if (st.peers.empty())
    finish_stop(self);
  else
    self->delayed_send(self, std::chrono::milliseconds(500), stop_deadline{});
}

/// downloading | seeding -> paused: every peer closed, 'stopped' announced, verified pieces
/// kept (and saved).
void pause(self_ptr self) {
  auto& st = self->state;
  enter(self, phase::paused);
  close_all_peers(self, "paused");
  if (st.tracker)
    send_announce(self, st.announces.stopped());
  st.verified_since_save = 0;
  st.last_save = clock_type::now();
  self->send(st.storage, save_resume_now{});
}

/// paused -> downloading | seeding: 'started' announced, peers dialled again at once.
void resume(self_ptr self) {
  auto& st = self->state;
  auto now = clock_type::now();
  enter(self, st.done ? phase::seeding : phase::downloading);
  if (st.tracker) {
    st.announces.restart(now);
    send_announce(self, st.announces.first());
    if (st.done)
      send_announce(self, st.announces.completed()); // completed while paused
  }
  st.known.reset_backoff(now);
  connect_more(self);
  maybe_finish(self); // the last pieces may have verified while paused
}

/// checking -> downloading | seeding | paused.
void on_checked(self_ptr self, existing_checked& ec) {
  auto& st = self->state;
  st.check_cancel.reset();
  for (auto p : ec.verified)
    st.picker->set_have(piece_index{p});
  if (st.cfg.report_pieces) { // [cluster] the first batch: what was trusted or verified
    st.to_report.insert(st.to_report.end(), ec.verified.begin(), ec.verified.end());
    flush_report(self);
  }
  if (ec.checked > 0 || !ec.verified.empty())
    st.log->info("existing data: {} of {} pieces verified ({} hashed)", ec.verified.size(),
                 st.meta().piece_count(), ec.checked);
  // [cluster] An empty piece filter is not complete: it waits in downloading for a shard.
  bool complete = st.picker->complete() && !st.nothing_selected();
  if (complete)
    st.announces.complete_at_start(); // BEP 3: no 'completed' for what was complete at start
  if (st.pause_requested) {
    pause(self); // quiet until resumed
    maybe_finish(self);
    return;
  }
  // A complete torrent seeds at once: what the check verified is on disk already and may be
  // served while the files are flushed; the flush only decides when it reports itself finished.
  enter(self, complete ? phase::seeding : phase::downloading);
  // Announce now, not at the next tick: peers are what we wait for.
  if (st.tracker)
    send_announce(self, st.announces.first());
  connect_more(self);
  maybe_finish(self);
}

/// BEP 11, from the tick (no timer of its own, so an idle torrent wakes no more often): every
/// peer that speaks ut_pex gets the torrent's connected peers (dialled ones: their listen
/// address is known); each sends its remote what changed, at most once a minute. Never for
/// private torrents (BEP 27).
void run_pex_round(self_ptr self) {
  auto& st = self->state;
  if (!st.cfg.meta || st.meta().is_private)
    return;
  for (auto it = st.pex_peers.begin(); it != st.pex_peers.end();)
    it = st.peers.count(*it) == 0 ? st.pex_peers.erase(it) : std::next(it);
  if (st.pex_peers.empty())
    return;
  pex_snapshot snap;
  for (auto& [slot, e] : st.peers) {
    if (!e.active || e.closing || e.banned || e.known == peer_list::no_entry)
      continue;
    snap.peers.push_back(e.ep);
    snap.flags.push_back(e.seed ? 0x02 : 0x00); // BEP 11 added.f: seed
  }
  for (auto slot : st.pex_peers)
    if (auto& e = st.peers.at(slot); e.active && !e.closing && !e.banned)
      self->send(e.handle, snap);
}

/// [cluster] The picker's priorities: the file selection's, skip outside the piece filter.
void apply_selection(torrent_state& st) {
  auto n = st.meta().piece_count();
  std::vector<file_priority> pieces =
    st.file_pieces.empty() ? std::vector<file_priority>(n, file_priority::normal) : st.file_pieces;
  if (st.filter)
    for (std::uint32_t i = 0; i < n; ++i)
      if (!st.filter->test(piece_index{i}))
        pieces[i] = file_priority::skip;
  st.picker->set_priorities(pieces);
}

/// [cluster] Started pieces that left the piece filter are given up: their requests are
/// cancelled and the copies already received are discarded (storage forgets them too), so
/// that nothing of them is written on, and none of them is counted unless a verdict on its
/// complete data (hash checked) was already under way.
void abandon_filtered(self_ptr self) {
  auto& st = self->state;
  if (!st.filter)
    return;
  std::unordered_map<peer_slot, std::vector<block_ref>> cancels;
  for (auto p : st.picker->downloading_pieces()) {
    if (st.filter->test(p))
      continue;
    for (std::uint32_t i = 0; i < st.picker->blocks_in_piece(p); ++i) {
      block_ref b{p, i};
      for (auto peer : st.requests.requesters(b))
        if (st.requests.remove(peer, b))
          cancels[peer].push_back(b);
    }
    st.picker->abandon(p);
  }
  if (auto& back = st.picker->taken_back(); !back.empty()) {
    self->send(st.storage, discard_blocks{std::move(back)});
    back.clear();
  }
  for (auto& [slot, blocks] : cancels) {
    st.counters.cancels_sent += blocks.size();
    if (auto it = st.peers.find(slot); it != st.peers.end())
      self->send(it->second.handle, cancel_blocks{std::move(blocks)});
  }
}

/// After the selection changed (file priorities or piece filter): a wider one after completion
/// goes back to downloading (or will, when resumed), peers are re-evaluated and refilled, and a
/// selection now all verified finishes.
void selection_changed(self_ptr self) {
  auto& st = self->state;
  if (st.state == phase::stopping || st.state == phase::failed)
    return;
  if (st.finishing && !st.picker->complete()) {
    st.finishing = st.done = false;
    if (st.state == phase::seeding)
      enter(self, phase::downloading);
  }
  for (auto& [slot, e] : st.peers) {
    if (!e.has_bits)
      continue;
    update_interest(self, e, st.picker->is_interesting(e.seed ? nullptr : &e.bits) &&
                               st.state == phase::downloading && !st.finishing);
    refill(self, slot, e);
  }
  maybe_finish(self);
}

/// [cluster] The filter as a bitfield; indices past the last piece are dropped with a warning.
std::optional<bitfield> filter_of(torrent_state& st, bool all,
                                  const std::vector<std::uint32_t>& pieces) {
  if (all)
    return std::nullopt;
  auto n = st.meta().piece_count();
  bitfield bits(n);
  std::size_t bad = 0;
  for (auto p : pieces) {
    if (p < n)
      bits.set(piece_index{p});
    else
      ++bad;
  }
  if (bad > 0)
    st.log->warn("piece filter: {} piece indices past the last piece ({}) ignored", bad, n - 1);
  return bits;
}

/// A peer's availability changed (availability_delta), applied one message at a time or in
/// passes (apply_availability; get_progress applies what is pending first, so that a report
/// reflects every message received); each affected peer then gets the state's reaction.
caf::message_handler availability_handlers(self_ptr self, availability_reaction react) {
  return {
    [=](get_progress) {
      apply_pending_availability(self, react);
      auto p = make_progress(self->state);
      p.metrics = render_metrics(self, p);
      return p;
    },
    [=](availability_delta& d) {
      auto& st = self->state;
      ++st.counters.availability_msgs;
      st.counters.haves += d.haves.size();
      if (!st.cfg.batch_availability) {
        auto it = st.peers.find(d.slot);
        if (it == st.peers.end())
          return;
        ++st.counters.availability_passes;
        bool interesting = apply_delta(st, it->second, d, it->second.interested);
        if (react)
          react(self, d.slot, it->second, interesting);
        return;
      }
      // Whatever else is already in the mailbox arrives before the self-message: one pass
      // then applies all of it.
      st.pending_avail.push_back(std::move(d));
      if (!st.avail_scheduled) {
        st.avail_scheduled = true;
        self->send(self, apply_availability{});
      }
    },
    [=](apply_availability) { apply_pending_availability(self, react); },
  };
}

/// What a peer_activity says that every state keeps: the counters, the peer's interest in us
/// (a free upload slot), its request limit and whether it chokes us. The peer, or null if gone.
peer_entry* note_activity(self_ptr self, const peer_activity& a) {
  auto& st = self->state;
  auto it = st.peers.find(a.slot);
  if (it == st.peers.end())
    return nullptr;
  auto& e = it->second;
  ++st.counters.activity_msgs;
  st.counters.wire_bytes += a.wire_bytes;
  e.payload += a.payload_bytes;
  e.down_round += a.payload_bytes;
  st.payload_down += a.payload_bytes;
  e.uploaded += a.payload_up;
  e.up_round += a.payload_up;
  st.payload_up += a.payload_up;
  if (a.request_limit > 0) // BEP 10 reqq: more would be dropped or rejected by the peer
    e.requests->set_max_pipeline(std::min(st.cfg.max_outstanding, a.request_limit));
  if (a.interest_changed) {
    e.peer_interested = a.interested;
    if (a.interested)
      fill_free_slot(self, e);
  }
  if (a.choke_changed) {
    e.choked_us = a.choked;
    if (!a.choked && !a.choke_seen)
      e.last_block = clock_type::now(); // an unchoke restarts the wait for data
  }
  return &e;
}

/// Storage wrote (or refused, or did not need) blocks a peer sent: the request record, the
/// picker and the counters learn it, and whoever else still has a stored block requested gets
/// a CANCEL (end-game). Every state with metainfo: blocks arrive after a pause, a stop or the
/// last piece too. The sender, or null if gone.
peer_entry* store_blocks(self_ptr self, const blocks_stored& bs) {
  auto& st = self->state;
  auto it = st.peers.find(bs.slot);
  peer_entry* e = it == st.peers.end() ? nullptr : &it->second;
  std::unordered_map<peer_slot, std::vector<block_ref>> cancels;
  // Copies storage must drop: of pieces outside the piece filter [cluster], and late ones the
  // picker refused (a piece on parole with another peer).
  std::vector<stored_block> late;
  // Timed to when the peer's read arrived, not to storage's turn.
  auto received = bs.received == clock_type::time_point{} ? clock_type::now() : bs.received;
  for (auto sb : bs.blocks) {
    auto b = sb.block;
    st.requests.on_received(bs.slot, b, received);
    if (e)
      e->blocks_stored += sb.copy != 0;
    if (sb.refused) {
      // [cluster] The write fence refused it: free again, requested after the next tick
      // (the peer did nothing wrong, the torrent goes on).
      st.picker->on_request_dropped(b, st.requests);
      ++st.counters.blocks_fenced;
      if (!st.fence_hold) {
        st.fence_hold = true;
        st.fence_hold_ticks = st.fence_backoff;
        st.fence_backoff = std::min<std::uint32_t>(st.fence_backoff * 2, 8);
      }
      continue;
    }
    if (sb.copy != 0)
      st.fence_backoff = 1; // [cluster] the fence let this one in
    if (sb.copy == 0) {
      // Not written (its piece is verified already, or storage failed): the request is
      // settled without data.
      st.picker->on_request_dropped(b, st.requests);
      ++st.counters.blocks_duplicate;
      continue;
    }
    if (st.filter && !st.filter->test(b.piece) && !st.picker->have(b.piece)) {
      // [cluster] Sent before its cancel arrived: the piece was abandoned, storage forgets
      // this copy too (nothing of the piece may complete from leftovers).
      late.push_back(sb);
      ++st.counters.blocks_duplicate;
      continue;
    }
    // Requested from the sender or not: a late copy of a request that its CHOKE or a timeout
    // ended counts like any other (its piece starts again if it went back to pickable), and
    // the re-request elsewhere is cancelled below.
    auto r = st.picker->on_block_received(b, sb.copy, bs.slot);
    if (r == piece_picker::receive_result::refused) {
      ++st.counters.blocks_duplicate; // taken back (below): storage drops it
      st.picker->on_request_dropped(b, st.requests); // had the sender been asked for it
      continue;
    }
    if (r == piece_picker::receive_result::duplicate)
      ++st.counters.blocks_duplicate;
    else
      ++st.counters.blocks_fresh;
    // A copy is on disk: whoever else still has the block requested gets a CANCEL
    // (end-game, or a peer that sent a block another was asked for).
    for (auto other : st.requests.requesters(b))
      if (st.requests.remove(other, b))
        cancels[other].push_back(b);
  }
  ++st.counters.stored_msgs;
  if (auto& back = st.picker->taken_back(); !back.empty()) {
    late.insert(late.end(), back.begin(), back.end());
    back.clear();
  }
  if (!late.empty())
    self->send(st.storage, discard_blocks{std::move(late)});
  for (auto& [other, blocks] : cancels) {
    st.counters.cancels_sent += blocks.size();
    self->send(st.peers[other].handle, cancel_blocks{std::move(blocks)});
  }
  if (e)
    e->last_block = clock_type::now();
  check_invariants(st, "storing blocks");
  return e;
}

/// What every state with metainfo handles alike; the state's own handlers come first.
caf::message_handler common_handlers(self_ptr self) {
  return caf::message_handler{
    [=](const tick& t) { on_tick(self, t, nullptr); },
    // File selection changed through the API: storage creates newly selected files (before
    // any of their blocks is requested), the picker re-prioritises, peers are re-evaluated.
    // A wider selection after completion goes back to downloading (or will, when resumed).
    [=](set_file_priorities& fp) {
      auto& st = self->state;
      auto pieces = piece_priorities(st.meta(), fp.priorities);
      if (!pieces) {
        st.log->warn("file priorities ignored: {}", pieces.error().message);
        return;
      }
      self->send(st.storage, fp);
      st.file_pieces = std::move(*pieces);
      apply_selection(st);
      selection_changed(self);
    },
    // [cluster] The piece filter changed (a new shard, a hand-over, a steal): as a file
    // selection, but started pieces that left it are abandoned (see abandon_filtered).
    [=](set_piece_filter& pf) {
      auto& st = self->state;
      st.filter = filter_of(st, pf.all, pf.pieces);
      apply_selection(st);
      abandon_filtered(self);
      st.fence_hold = false; // the worker moved its fence with its shard
      st.fence_backoff = 1;
      selection_changed(self);
    },
    // [session] Per-torrent rate limits from the session API: the buckets are shared with
    // every connection of this torrent, so the change applies to them at once.
    [=](const set_torrent_limits& l) {
      self->state.download_limiter->set_rate(l.download);
      self->state.upload_limiter->set_rate(l.upload);
    },
    [=](const peer_connected& pc) {
      auto& st = self->state;
      auto it = st.peers.find(pc.slot);
      if (it == st.peers.end())
        return;
      auto& e = it->second;
      if (e.closing)
        return; // its handshake finished after it was told to close
      e.active = true;
      e.id = pc.id;
      if (st.known.banned_id(pc.id)) {
        e.banned = true;
        self->send(e.handle, disconnect_peer{"banned earlier for bad data"});
        return;
      }
      if (e.known != peer_list::no_entry)
        st.known.on_connected(e.known);
      self->send(e.handle, our_pieces{true, st.picker->have_pieces(), {}});
    },
    // Late news from peers and storage in a state without requests: bookkeeping only.
    [=](const peer_activity& a) {
      assert(self->state.requests.total() == 0); // requests are in flight only while downloading
      note_activity(self, a);
      check_invariants(self->state, "a peer's activity");
    },
    [=](const blocks_stored& bs) { store_blocks(self, bs); },
    [=](const piece_checked& pc) { on_piece_checked(self, pc); },
    [=](flush_haves) {
      auto& st = self->state;
      st.haves_flush_scheduled = false;
      if (st.pending_haves.empty())
        return;
      for (auto& [slot, e] : st.peers)
        if (e.active && !e.closing)
          self->send(e.handle, our_pieces{false, {}, st.pending_haves});
      st.pending_haves.clear();
    },
    [=](const check_progress& cp) {
      self->state.check_done = cp.done;
      self->state.check_total = cp.total;
    },
    [=](const peer_closed& pc) { remove_peer(self, pc.slot, pc.reason, pc.misbehaved); },
    [=](announce_result& r) {
      auto& st = self->state;
      announce_schedule::result res{r.result.ok(), r.interval, r.min_interval};
      auto now = clock_type::now();
      auto ev = st.announces.on_result(res, !st.peers.empty(), now);
      // The reply to a pause's 'stopped' may be what a resume's 'started' waited for.
      if (st.running())
        send_announce(self, st.announces.poll(now));
      if (!r.result) {
        if (ev != tracker::event::stopped)
          st.log->warn("tracker: {} (retrying in {} s)", r.result.error().message,
                       st.announces.retry_delay().count());
        return;
      }
      for (auto& ep : r.peers)
        st.known.add(ep);
      connect_more(self);
    },
    [=](add_peers& ap) {
      remember_preferred(self->state, ap);
      for (auto& ep : ap.peers)
        self->state.known.add(ep);
      connect_more(self);
    },
    [=](const storage_failed& sf) {
      fail_torrent(self, error{sf.why.code, "storage: " + sf.why.message});
    },
    [=](stop_request) { enter_stopping(self); },
    [=](pause_torrent) {}, // already paused, stopping or failed
    [=](resume_torrent) {},
    // [magnet] BEP 11 rounds, and late messages of the metadata fetch (handled, not dropped:
    // a dropped message is answered with an error, which ends its sender).
    [=](const pex_capable& pc) { self->state.pex_peers.insert(pc.slot); },
    [=](metadata_tick) {},
    [=](const metadata_offer&) {},
    [=](const metadata_piece&) {},
    [=](const metadata_rejected&) {},
  }.or_else(availability_handlers(self, nullptr)); // no reaction: every peer is closing
}

caf::behavior checking_behavior(self_ptr self) {
  return caf::message_handler{
    [=](incoming_peer& ip) { refuse(self, ip, "still checking existing data"); },
    // Remembered: the check runs to its end (its result is kept), then the torrent pauses.
    [=](pause_torrent) { self->state.pause_requested = true; },
    [=](resume_torrent) { self->state.pause_requested = false; },
  }.or_else(common_handlers(self));
}

/// downloading and seeding: trading with peers, who are dialled and accepted.
caf::message_handler trading_handlers(self_ptr self) {
  return {
    [=](incoming_peer& ip) { accept_peer(self, ip); },
    [=](pause_torrent) { pause(self); },
  };
}

/// The tick's part in both trading states: the choker's round, dials, announces, PEX.
void trading_tick(self_ptr self, clock_type::time_point now) {
  auto& st = self->state;
  if (st.ticks % 10 == 0)
    run_choker(self);
  connect_more(self);
  if (st.tracker)
    send_announce(self, st.announces.poll(now));
  if (now - st.last_pex_round >= pex_round_interval) {
    st.last_pex_round = now;
    run_pex_round(self);
  }
}

// -- downloading: requests -------------------------------------------------------------------
// The only state with requests in flight: peers' blocks, chokes and rejects refill their
// pipelines, late requests go elsewhere, and we are interested in peers with pieces we want.

void downloading_tick(self_ptr self, clock_type::time_point now) {
  trading_tick(self, now);
  expire_requests(self, now);
}

/// A peer's availability changed: interested in it while it has pieces we want (and the last
/// ones are not being flushed), and its pipeline refilled.
void want_from(self_ptr self, peer_slot slot, peer_entry& e, bool interesting) {
  update_interest(self, e, interesting && !self->state.finishing);
  refill(self, slot, e);
}

caf::behavior downloading_behavior(self_ptr self) {
  return caf::message_handler{
    [=](const tick& t) { on_tick(self, t, downloading_tick); },
    [=](const peer_activity& a) {
      auto& st = self->state;
      auto* e = note_activity(self, a);
      if (!e)
        return;
      for (auto b : a.rejected)
        if (st.requests.remove(a.slot, b))
          st.picker->on_request_dropped(b, st.requests);
      // Also a CHOKE and UNCHOKE in one read: the peer dropped what was asked before.
      if (a.choke_changed && (a.choked || a.choke_seen))
        drop_outstanding(st, a.slot);
      refill(self, a.slot, *e);
      check_invariants(st, "a peer's activity");
    },
    [=](const blocks_stored& bs) {
      if (auto* e = store_blocks(self, bs))
        refill(self, bs.slot, *e);
    },
  }
    .or_else(availability_handlers(self, want_from))
    .or_else(trading_handlers(self))
    .or_else(common_handlers(self));
}

// -- seeding: uploads only -------------------------------------------------------------------
// Every selected piece verified: nothing requested (a late block or reject is bookkeeping, in
// common_handlers), the choker ranks peers by upload, and a peer that has everything too has
// nothing to trade with us.

/// Drops `e` if it is a seed and so are we (files flushed, every piece: not after a partial
/// selection, which a wider one may extend yet).
void drop_fellow_seed(self_ptr self, peer_entry& e) {
  auto& st = self->state;
  if (!st.done || !e.seed || st.picker->have_count() != st.meta().piece_count())
    return;
  e.both_seeds = true;
  self->send(e.handle, disconnect_peer{"both sides are seeds"});
}

/// A peer's availability changed: a seed wants nothing of it, and drops a fellow seed.
void want_nothing_from(self_ptr self, peer_slot, peer_entry& e, bool) {
  update_interest(self, e, false);
  drop_fellow_seed(self, e);
}

caf::behavior seeding_behavior(self_ptr self) {
  return caf::message_handler{
    [=](const tick& t) { on_tick(self, t, trading_tick); },
  }
    .or_else(availability_handlers(self, want_nothing_from))
    .or_else(trading_handlers(self))
    .or_else(common_handlers(self));
}

caf::behavior paused_behavior(self_ptr self) {
  return caf::message_handler{
    [=](incoming_peer& ip) { refuse(self, ip, "torrent paused"); },
    [=](resume_torrent) { resume(self); },
  }.or_else(common_handlers(self));
}

caf::behavior stopping_behavior(self_ptr self) {
  return caf::message_handler{
    [=](incoming_peer& ip) { refuse(self, ip, "shutting down"); },
    [=](stop_request) {},
    [=](stop_deadline) { finish_stop(self); },
  }.or_else(common_handlers(self));
}

caf::behavior failed_behavior(self_ptr self) {
  return caf::message_handler{
    [=](incoming_peer& ip) { refuse(self, ip, "torrent failed"); },
  }.or_else(common_handlers(self));
}

// -- awaiting metadata (a magnet link, BEP 9) --------------------------------------------------
// Peers are dialled with the info-hash alone; those that offer ut_metadata are asked for its
// pieces (a few at a time each), which the assembler verifies against the info-hash. Then the
// torrent builds its metainfo, has the .torrent saved and the files opened (on_metadata), closes
// these connections (they know no pieces) and starts as with a .torrent: the same peers are
// dialled again from the peer list.

void start_with_metainfo(self_ptr self, std::unique_ptr<file_store> store);

constexpr std::uint32_t metadata_requests_per_peer = 4;

/// A magnet's trackers while awaiting metadata: one tier each, in the link's order (BEP 12).
void start_metadata_tracker(self_ptr self) {
  auto& st = self->state;
  if (!st.cfg.use_trackers || st.cfg.trackers.empty())
    return;
  tracker_config tc;
  for (auto& url : st.cfg.trackers)
    tc.tiers.push_back({url});
  tc.hash = st.cfg.hash;
  tc.id = st.cfg.id;
  tc.listen_port = st.cfg.listen_port;
  tc.io = st.cfg.io; // UDP trackers' sockets
  tc.udp_timeout_ms = st.cfg.udp_tracker_timeout_ms;
  st.tracker_cancel = tc.cancel;
  auto me = caf::actor_cast<caf::actor>(self);
  st.metadata_tracker = st.cfg.tracker_factory ? st.cfg.tracker_factory(self->system(), tc, me)
                                               : spawn_tracker(self->system(), tc, me);
  st.metadata_announcing = true;
  // `left` is unknown: any non-zero value makes us a leecher for the tracker.
  self->send(st.metadata_tracker, announce{tracker::event::started, 0, 0, 1});
}

void stop_metadata_tracker(self_ptr self) {
  auto& st = self->state;
  if (!st.metadata_tracker)
    return;
  if (st.tracker_cancel)
    st.tracker_cancel->store(true); // an announce in progress ends now
  self->send(st.metadata_tracker, stop_request{});
  st.metadata_tracker = caf::actor{};
  st.tracker_cancel.reset();
}

/// Dials known peers while awaiting metadata (connect_more dials only while running).
void dial_for_metadata(self_ptr self) {
  auto& st = self->state;
  if (st.cfg.io && st.cfg.io->connections_full())
    return;
  auto open = open_peers(st);
  if (open >= st.cfg.max_peers)
    return;
  auto limit = std::min<std::size_t>(8, st.cfg.max_peers - open);
  for (auto i : st.known.take_dials(clock_type::now(), limit, st.cfg.max_peers_per_ip)) {
    ++st.counters.connects;
    spawn_peer_for(self, st.known.at(i).ep, i, nullptr, nullptr);
  }
}

/// Asks every peer that offered metadata for pieces nobody else is fetching.
void request_metadata_pieces(self_ptr self) {
  auto& st = self->state;
  if (!st.metadata)
    return;
  // After a mismatch the fetch starts over, with the size another source announced.
  for (auto& [slot, size] : st.metadata_sources)
    if (!st.metadata->has_size() && size != 0)
      st.metadata->set_size(size);
  if (!st.metadata->has_size())
    return;
  auto now = clock_type::now();
  if (st.metadata_one_source && st.metadata_current) {
    auto cur = *st.metadata_current;
    auto it = st.peers.find(cur);
    bool gone = st.metadata_sources.count(cur) == 0 || it == st.peers.end() ||
                it->second.closing || it->second.banned;
    if (!gone && now - st.metadata_progress_at > seconds(10)) {
      // Silent for 10 s: the next source takes over (this one is not asked again).
      st.metadata_sources.erase(cur);
      st.metadata->on_peer_gone(cur);
      gone = true;
    }
    if (gone)
      st.metadata_current.reset();
  }
  for (auto& [slot, size] : st.metadata_sources) {
    auto it = st.peers.find(slot);
    if (it == st.peers.end() || it->second.closing || it->second.banned)
      continue;
    if (st.metadata_one_source) {
      if (!st.metadata_current) {
        st.metadata_current = slot;
        st.metadata_progress_at = now;
      } else if (*st.metadata_current != slot) {
        continue;
      }
    }
    auto& asked = st.metadata_asked[slot];
    while (asked < metadata_requests_per_peer) {
      auto piece = st.metadata->next_request(slot, now);
      if (!piece)
        return;
      ++asked;
      self->send(it->second.handle, request_metadata{*piece});
    }
    if (st.metadata_one_source)
      return; // the others wait until this one is done (or gone)
  }
}

/// A peer that sent bad metadata: dropped and never dialled again.
void ban_metadata_peer(self_ptr self, peer_slot slot, const std::string& why) {
  auto& st = self->state;
  st.metadata_sources.erase(slot);
  if (st.metadata)
    st.metadata->on_peer_gone(slot);
  ban_peer(self, slot, why);
}

void metadata_done(self_ptr self, std::string info) {
  auto& st = self->state;
  stop_metadata_tracker(self); // the running states announce with the metainfo's trackers
  auto torrent_file = torrent_file_of(info, st.cfg.trackers);
  auto m = parse_metainfo(torrent_file);
  if (!m) {
    // Its SHA-1 is the info-hash: the torrent itself is broken, not the peer.
    fail_torrent(self, error{errc::metainfo_invalid,
                             "the metadata of " + to_hex(st.cfg.hash) + " is not a usable info "
                             "dictionary: " + m.error().message});
    return;
  }
  auto meta = std::make_shared<const metainfo>(std::move(*m));
  if (!st.cfg.on_metadata) {
    fail_torrent(self, error{errc::invalid_argument, "metadata fetched, but nowhere to store it"});
    return;
  }
  auto ready = st.cfg.on_metadata(meta, torrent_file);
  if (!ready) {
    fail_torrent(self, ready.error());
    return;
  }
  st.log->info("metadata of {} received: {} ({} bytes, {} pieces)", to_hex(meta->hash),
               printable(meta->name), info.size(), meta->piece_count());
  st.metadata.reset();
  st.metadata_sources.clear();
  st.metadata_asked.clear();
  // These connections were made without the metainfo: replaced by full ones (close_all_peers
  // hands their peer-list entries back, so they are dialled again at once).
  close_all_peers(self, "metadata received: reconnecting");
  st.cfg.meta = meta;
  st.cfg.trusted_pieces = std::move(ready->trusted_pieces);
  st.cfg.pieces_to_check = std::move(ready->pieces_to_check);
  start_with_metainfo(self, std::move(ready->store));
  // A private torrent (BEP 27) found through a magnet link: the observer (the session) hears
  // it now, not at the next report, and stops looking it up on the DHT.
  if (meta->is_private && st.cfg.observer)
    self->send(st.cfg.observer, make_progress(st));
}

/// No metainfo yet (a magnet link): peers are dialled for the metadata only; nothing is
/// checked or stored until it is verified.
caf::behavior awaiting_metadata_behavior(self_ptr self) {
  return {
    [=](get_progress) { return make_progress(self->state); },
    [=](add_peers& ap) {
      remember_preferred(self->state, ap);
      for (auto& ep : ap.peers)
        self->state.known.add(ep);
      if (!self->state.pause_requested)
        dial_for_metadata(self);
    },
    [=](incoming_peer& ip) { refuse(self, ip, "no metadata yet"); },
    // Every message a peer or the session may send is handled: a dropped one would be
    // answered with an error, which ends its sender.
    [=](const peer_activity&) {},
    [=](const availability_delta&) {},
    [=](const pex_capable&) {}, // peers without the metainfo send no PEX rounds
    [=](const set_torrent_limits& l) {
      self->state.download_limiter->set_rate(l.download);
      self->state.upload_limiter->set_rate(l.upload);
    },
    [=](const set_file_priorities&) {
      self->state.log->warn("file priorities ignored: the metadata is not known yet");
    },
    // [cluster] Applied once the metadata is known (start_with_metainfo).
    [=](set_piece_filter& pf) {
      if (pf.all)
        self->state.cfg.piece_filter.reset();
      else
        self->state.cfg.piece_filter = std::move(pf.pieces);
    },
    [=](pause_torrent) {
      self->state.pause_requested = true;
      close_all_peers(self, "torrent paused");
    },
    [=](resume_torrent) {
      self->state.pause_requested = false;
      dial_for_metadata(self);
    },
    [=](const peer_connected& pc) {
      auto& st = self->state;
      auto it = st.peers.find(pc.slot);
      if (it == st.peers.end() || it->second.closing)
        return;
      auto& e = it->second;
      e.active = true;
      e.id = pc.id;
      if (st.known.banned_id(pc.id)) {
        e.banned = true;
        self->send(e.handle, disconnect_peer{"banned earlier for bad metadata"});
        return;
      }
      if (e.known != peer_list::no_entry)
        st.known.on_connected(e.known);
    },
    [=](const peer_closed& pc) {
      auto& st = self->state;
      st.metadata_sources.erase(pc.slot);
      st.metadata_asked.erase(pc.slot);
      if (st.metadata)
        st.metadata->on_peer_gone(pc.slot);
      remove_peer(self, pc.slot, pc.reason, pc.misbehaved);
      request_metadata_pieces(self);
    },
    [=](const metadata_offer& mo) {
      auto& st = self->state;
      if (!st.metadata || st.peers.count(mo.slot) == 0)
        return;
      if (mo.size != 0) {
        if (auto ok = st.metadata->set_size(mo.size); !ok) {
          ban_metadata_peer(self, mo.slot, ok.error().message);
          return;
        }
      }
      if (mo.size == 0 && !st.metadata->has_size())
        return; // BEP 9 wants metadata_size with ut_metadata: nothing to ask it
      st.metadata_sources[mo.slot] = mo.size;
      request_metadata_pieces(self);
    },
    [=](metadata_piece& mp) {
      auto& st = self->state;
      if (!st.metadata || st.peers.count(mp.slot) == 0)
        return;
      if (auto& asked = st.metadata_asked[mp.slot]; asked > 0)
        --asked;
      if (st.metadata_current == mp.slot)
        st.metadata_progress_at = clock_type::now();
      if (auto ok = st.metadata->on_data(mp.slot, mp.piece, mp.total_size, mp.data); !ok) {
        ban_metadata_peer(self, mp.slot, ok.error().message);
        request_metadata_pieces(self);
        return;
      }
      if (!st.metadata->complete()) {
        request_metadata_pieces(self);
        return;
      }
      std::vector<ut_metadata::assembler::peer> culprits;
      auto info = st.metadata->take(culprits);
      if (!info) {
        std::sort(culprits.begin(), culprits.end());
        culprits.erase(std::unique(culprits.begin(), culprits.end()), culprits.end());
        if (culprits.size() == 1) {
          st.log->warn("{}", info.error().message);
          ban_metadata_peer(self, culprits[0], info.error().message);
        } else {
          // Which of them sent the bad bytes is unknown: nobody is banned; from now on the
          // metadata comes from one peer at a time, whose mismatch is its own.
          st.log->warn("{} (pieces from {} peers: fetching it again from one peer at a time)",
                       info.error().message, culprits.size());
          st.metadata_one_source = true;
        }
        st.metadata_current.reset();
        st.metadata_asked.clear();
        request_metadata_pieces(self); // start over with the remaining sources
        return;
      }
      metadata_done(self, std::move(*info));
    },
    [=](const metadata_rejected& mr) {
      auto& st = self->state;
      if (!st.metadata)
        return;
      if (auto& asked = st.metadata_asked[mr.slot]; asked > 0)
        --asked;
      st.metadata->on_reject(mr.slot, mr.piece);
      // A peer that refuses is not asked again (another peer may have it).
      st.metadata_sources.erase(mr.slot);
      request_metadata_pieces(self);
    },
    [=](announce_result& r) {
      auto& st = self->state;
      st.metadata_announcing = false;
      // Asked again after the tracker's interval, within 15 s..5 min (a magnet waits for peers).
      auto wait = r.result ? std::clamp<std::uint32_t>(r.interval, 15, 300) : 15;
      st.metadata_next_announce = clock_type::now() + seconds(wait);
      if (!r.result) {
        st.log->warn("tracker: {} (retrying in {} s)", r.result.error().message, wait);
        return;
      }
      for (auto& ep : r.peers)
        st.known.add(ep);
      if (!st.pause_requested)
        dial_for_metadata(self);
    },
    [=](metadata_tick) {
      auto& st = self->state;
      if (st.state != phase::awaiting_metadata)
        return; // the chain ends with the state
      if (st.metadata_tracker && !st.metadata_announcing && !st.pause_requested &&
          clock_type::now() >= st.metadata_next_announce) {
        st.metadata_announcing = true;
        self->send(st.metadata_tracker, announce{tracker::event::none, 0, 0, 1});
      }
      if (!st.pause_requested)
        dial_for_metadata(self);
      // Requests older than the assembler's timeout go to whoever asks next.
      for (auto& [slot, n] : st.metadata_asked)
        n = 0;
      request_metadata_pieces(self);
      self->delayed_send(self, seconds(1), metadata_tick{});
    },
    [=](stop_request) {
      auto& st = self->state;
      close_all_peers(self, "shutting down");
      stop_metadata_tracker(self);
      st.stopped = true;
      self->send(st.cfg.observer, torrent_stopped{make_progress(st)});
      self->quit();
    },
  };
}

void enter(self_ptr self, phase next) {
  auto& st = self->state;
  if (st.state != next)
    st.log->debug("torrent {}: {} -> {}", st.cfg.meta ? st.meta().name : std::string{"?"},
                  to_string(st.state), to_string(next));
  st.state = next;
  switch (next) {
    case phase::awaiting_metadata: return self->become(awaiting_metadata_behavior(self));
    case phase::checking: return self->become(checking_behavior(self));
    case phase::downloading: return self->become(downloading_behavior(self));
    case phase::seeding: return self->become(seeding_behavior(self));
    case phase::paused: return self->become(paused_behavior(self));
    case phase::stopping: return self->become(stopping_behavior(self));
    case phase::failed: return self->become(failed_behavior(self));
  }
}

/// With the metainfo (from the start, or once BEP 9 fetched it): the picker, storage and
/// tracker, then the check of existing data.
void start_with_metainfo(self_ptr self, std::unique_ptr<file_store> store) {
  auto& st = self->state;
  const auto& m = *st.cfg.meta;
  st.picker = std::make_unique<piece_picker>(m.piece_count(), m.piece_length, m.total_size);
  st.picker->recompute_from_scratch(st.cfg.recompute_requests);
  // File selection: storage was opened with the file priorities, the picker takes the
  // pieces' (a piece the highest of its files').
  if (!st.cfg.file_priorities.empty())
    if (auto pieces = piece_priorities(m, st.cfg.file_priorities))
      st.file_pieces = std::move(*pieces);
  // [cluster] The initial piece filter (or one set while the metadata was fetched).
  if (st.cfg.piece_filter)
    st.filter = filter_of(st, false, *st.cfg.piece_filter);
  if (!st.file_pieces.empty() || st.filter)
    apply_selection(st);
  st.picker->set_sequential(st.cfg.sequential);
  auto me = caf::actor_cast<caf::actor>(self);
  // threads: storage's blocking work goes to the session's disk pool (no thread per torrent).
  st.storage = spawn_storage(self->system(), std::move(store), st.cfg.meta, me,
                             st.cfg.disk ? *st.cfg.disk : disk_pool::process_default(),
                             storage_options{st.cfg.fence, st.cfg.save_resume});
  self->link_to(st.storage);
  auto tiers = m.tracker_tiers();
  if (st.cfg.use_trackers && !tiers.empty()) {
    tracker_config tc;
    tc.tiers = tiers;
    tc.hash = m.hash;
    tc.id = st.cfg.id;
    tc.listen_port = st.cfg.listen_port;
    tc.io = st.cfg.io; // UDP trackers' sockets
    tc.udp_timeout_ms = st.cfg.udp_tracker_timeout_ms;
    st.tracker_cancel = tc.cancel;
    st.tracker = st.cfg.tracker_factory ? st.cfg.tracker_factory(self->system(), tc, me)
                                        : spawn_tracker(self->system(), tc, me);
    self->link_to(st.tracker);
  }
  self->set_down_handler([=](caf::down_msg& dm) {
    auto it = self->state.slot_of.find(dm.source);
    if (it != self->state.slot_of.end())
      remove_peer(self, it->second, "peer actor exited", false);
  });
  self->send(self, tick{});
  st.last_pex_round = clock_type::now() - pex_round_interval + seconds(2); // first in 2 s
  // Existing data first: trusted pieces from the resume data, the rest hashed by storage.
  // A stop raises check_cancel: storage is busy hashing and would see no message.
  st.check_cancel = std::make_shared<std::atomic<bool>>(false);
  enter(self, phase::checking); // logged when it follows awaiting_metadata
  self->request(st.storage, caf::infinite,
                check_existing{std::move(st.cfg.trusted_pieces),
                               std::move(st.cfg.pieces_to_check), st.check_cancel})
    .then(
      [=](existing_checked& ec) {
        if (self->state.state == phase::checking)
          on_checked(self, ec);
        else if (self->state.state == phase::stopping || self->state.state == phase::failed)
          for (auto p : ec.verified) // record what was verified (resume data, progress)
            self->state.picker->set_have(piece_index{p});
      },
      [=](caf::error& err) {
        fail_torrent(self, error{errc::actor_down, "storage: checking existing data failed: " +
                                                     caf::to_string(err)});
      });
}

} // namespace

caf::actor spawn_torrent(caf::actor_system& sys, torrent_config cfg) {
  auto store = std::make_shared<std::unique_ptr<file_store>>(std::move(cfg.store));
  auto conf = std::make_shared<torrent_config>(std::move(cfg));
  return sys.spawn([store, conf](self_ptr self) {
    auto& st = self->state;
    st.cfg = std::move(*conf);
    st.log = spdlog::get("torrent");
    st.chokes = std::make_unique<choker>(st.cfg.upload_slots);
    self->set_default_handler(caf::drop);
    for (auto& ep : st.cfg.peers)
      st.known.add(ep);
    if (!st.cfg.meta) {
      st.state = phase::awaiting_metadata;
      enter(self, phase::awaiting_metadata);
      // BEP 9: the metadata comes from the peers dialled now.
      st.metadata = std::make_unique<ut_metadata::assembler>(st.cfg.hash);
      self->set_down_handler([=](caf::down_msg& dm) {
        auto it = self->state.slot_of.find(dm.source);
        if (it != self->state.slot_of.end())
          remove_peer(self, it->second, "peer actor exited: " + caf::to_string(dm.reason),
                      false);
      });
      start_metadata_tracker(self);
      dial_for_metadata(self);
      self->send(self, metadata_tick{});
      return;
    }
    start_with_metainfo(self, std::move(*store));
  });
}

} // namespace actorrent
