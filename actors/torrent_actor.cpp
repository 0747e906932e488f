#include "actors/torrent_actor.hpp"

#include <algorithm>
#include <chrono>
#include <unordered_map>
#include <unordered_set>
#include <deque>
#include <set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/metrics.hpp"
#include "actors/peer_actor.hpp"
#include "actors/peer_connection.hpp"
#include "actors/peer_requests.hpp"
#include "actors/smart_ban.hpp"
#include "actors/storage_actor.hpp"
#include "actors/tracker_actor.hpp"
#include "protocol/metainfo.hpp"
#include "storage/disk_pool.hpp"
#include "storage/file_store.hpp"

namespace actorrent {

namespace {

using clock_type = std::chrono::steady_clock;
using std::chrono::seconds;

constexpr std::size_t max_known_peers = 2000;
constexpr std::size_t max_departed_peers = 4096;

struct peer_entry {
  caf::actor handle;
  endpoint ep;
  std::size_t known = SIZE_MAX; // index into torrent_state::known (dialled peers)
  peer_id id{};                 // from its handshake
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
  std::uint64_t down_round = 0;  // payload from / to the peer in this choke round
  std::uint64_t up_round = 0;
  std::uint64_t uploaded = 0;
  peer_requests requests;             // in flight, oldest first, with the peer's timing
  bool avail_touched = false;         // in the current availability pass
  bool pending_interesting = false;   // its interest so far in that pass
  std::uint64_t payload = 0;
  clock_type::time_point last_block = clock_type::now();
};

struct known_peer {
  enum class state : std::uint8_t { idle, connecting, connected, banned };
  endpoint ep;
  state st = state::idle;
  std::uint32_t attempts = 0;
  clock_type::time_point next_try = clock_type::now();
};

struct torrent_state {
  torrent_config cfg;
  std::shared_ptr<spdlog::logger> log;
  std::unique_ptr<piece_picker> picker;
  smart_ban bans;
  // Peers gone after sending blocks (the latest few thousand): a verdict on a piece may still
  // name them as liars, and must then reach their address and id.
  struct departed_peer {
    endpoint ep;
    std::size_t known = SIZE_MAX;
    peer_id id{};
  };
  std::unordered_map<peer_slot, departed_peer> departed;
  std::deque<peer_slot> departed_order; // oldest first
  std::set<peer_id> banned_ids;          // refused when they connect again
  caf::actor storage;
  caf::actor tracker;
  std::shared_ptr<std::atomic<bool>> tracker_cancel;
  std::unordered_map<peer_slot, peer_entry> peers;
  std::unordered_map<caf::actor_addr, peer_slot> slot_of;
  peer_slot next_slot = 0; // slots are never reused: late messages cannot reach a successor
  std::vector<known_peer> known;
  std::unordered_set<std::string> known_index; // "host:port" of every entry of `known`
  std::unordered_map<std::string, std::uint32_t> per_ip; // connections (any state) per address
  std::vector<block_ref> picked;
  std::vector<peer_slot> cancels;
  std::vector<peer_slot> touched; // peers whose availability changed in this pass
  bool checking = true;   // hashing existing data; no peers yet
  bool finishing = false; // every piece verified (or failed): no more requests
  bool failed = false;
  bool done = false;      // completion reported; seeding from now on
  bool stopping = false;  // told to stop: waiting for peers to close
  bool stopped = false;
  std::vector<piece_index> pending_haves; // verified, not yet announced to peers
  std::vector<availability_delta> pending_avail; // received, applied by the next apply pass
  bool avail_scheduled = false;
  bool haves_flush_scheduled = false;
  std::uint32_t verified_since_save = 0;
  clock_type::time_point last_save = clock_type::now();
  std::uint32_t ticks = 0;
  peer_slot optimistic = no_peer;
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
  } counters;
  // statistics
  std::uint64_t payload_down = 0;
  std::uint64_t payload_at_last_tick = 0;
  clock_type::time_point last_tick = clock_type::now();
  std::uint32_t pieces_failed = 0;
  double rate = 0;
  // tracker
  bool announce_in_flight = false;
  clock_type::time_point next_announce = clock_type::now();
  std::uint32_t announce_failures = 0;
  bool announced_started = false;

  const metainfo& meta() const { return *cfg.meta; }
};

using self_ptr = caf::stateful_actor<torrent_state>*;

std::uint64_t bytes_left(const torrent_state& st) {
  return st.meta().total_size - st.picker->verified_bytes();
}

void send_announce(self_ptr self, tracker::event ev) {
  auto& st = self->state;
  if (!st.tracker || st.announce_in_flight)
    return;
  st.announce_in_flight = true;
  self->send(st.tracker, announce{ev, st.payload_up, st.payload_down, bytes_left(st)});
}

void refill(self_ptr self, peer_slot slot, peer_entry& e) {
  auto& st = self->state;
  if (st.finishing || e.choked_us || !e.has_bits || !e.active || e.banned)
    return;
  auto cap = std::size_t{e.requests.pipeline()}; // within the peer's BEP 10 reqq
  // Refill before the pipeline drains, in batches of at least a quarter of it.
  if (e.requests.size() > cap - cap / 4)
    return;
  st.picked.clear();
  st.picker->pick(slot, e.seed ? nullptr : &e.bits, cap - e.requests.size(), st.picked);
  if (auto& back = st.picker->taken_back(); !back.empty()) {
    // Storage forgets these copies too, or its count of a piece's blocks would run ahead.
    self->send(st.storage, discard_blocks{std::move(back)});
    back.clear();
  }
  if (st.picked.empty())
    return;
  auto now = clock_type::now();
  for (auto b : st.picked)
    e.requests.add(b, now);
  st.counters.requests_sent += st.picked.size();
  ++st.counters.request_msgs;
  self->send(e.handle, request_blocks{st.picked});
}

void refill_all(self_ptr self) {
  for (auto& [slot, e] : self->state.peers)
    refill(self, slot, e);
}

void drop_outstanding(torrent_state& st, peer_slot slot, peer_entry& e) {
  for (auto b : e.requests.take_all())
    st.picker->on_request_dropped(slot, b);
}

void update_interest(self_ptr self, peer_entry& e, bool interesting) {
  if (interesting == e.interested)
    return;
  e.interested = interesting;
  self->send(e.handle, set_interested{interesting});
}

torrent_progress make_progress(const torrent_state& st);

void finish_stop(self_ptr self) {
  auto& st = self->state;
  if (st.stopped)
    return;
  st.stopped = true;
  auto p = make_progress(st);
  self->send(st.cfg.observer, torrent_stopped{p});
  if (st.tracker) {
    // Say goodbye to a tracker that knows us (or may: an announce was under way). The announcer
    // handles it after what it has queued: a routine announce cut short by the stop, or a
    // "completed" one (sent with its own short timeout).
    if (st.announced_started || st.announce_in_flight)
      self->send(st.tracker, announce{tracker::event::stopped, st.payload_up, st.payload_down,
                                      bytes_left(st)});
    self->send(st.tracker, stop_request{});
  }
  self->send(st.storage, stop_request{}); // saves the resume data on its way out
  self->quit();
}

void remove_peer(self_ptr self, peer_slot slot, const std::string& reason, bool misbehaved) {
  auto& st = self->state;
  auto it = st.peers.find(slot);
  if (it == st.peers.end())
    return;
  auto& e = it->second;
  drop_outstanding(st, slot, e);
  if (e.has_bits) {
    if (e.seed)
      st.picker->avail().remove_seed();
    else
      st.picker->remove_peer_pieces(e.bits);
  }
  if (e.known != SIZE_MAX) {
    auto& k = st.known[e.known];
    if (k.st == known_peer::state::banned) {
      // banned meanwhile (smart ban named an earlier connection to it): stays banned
    } else if (misbehaved || e.banned || e.both_seeds) {
      k.st = known_peer::state::banned;
    } else {
      k.st = known_peer::state::idle;
      if (e.active)
        k.attempts = 0;
      auto backoff = e.active ? 5 : std::min(60, 1 << std::min<std::uint32_t>(k.attempts, 6));
      k.next_try = clock_type::now() + seconds(backoff);
    }
  }
  st.log->debug("peer {} gone: {}", e.ep.to_string(), reason);
  if (!e.banned && e.blocks_stored > 0) {
    st.departed.emplace(slot, torrent_state::departed_peer{e.ep, e.known, e.id});
    st.departed_order.push_back(slot);
    while (st.departed_order.size() > max_departed_peers) {
      st.departed.erase(st.departed_order.front());
      st.departed_order.pop_front();
    }
  }
  st.slot_of.erase(e.handle.address());
  if (auto ip = st.per_ip.find(e.ep.host); ip != st.per_ip.end() && --ip->second == 0)
    st.per_ip.erase(ip);
  self->demonitor(e.handle);
  st.peers.erase(it);
  if (st.stopping) {
    if (st.peers.empty())
      finish_stop(self);
    return;
  }
  refill_all(self);
}

void add_known(torrent_state& st, const endpoint& ep) {
  // Bound what a tracker can make us remember, before any work: a 20,000-peer reply costs
  // 2,000 lookups, not 40 million comparisons.
  if (ep.port == 0 || st.known.size() >= max_known_peers)
    return;
  if (!st.known_index.insert(ep.to_string()).second)
    return;
  st.known.push_back(known_peer{ep});
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
  pc.our_id = st.cfg.id;
  pc.io = st.cfg.io;
  pc.inactivity_timeout_s = st.cfg.peer_timeout_s;
  pc.handshake_timeout_ms = st.cfg.handshake_timeout_ms;
  pc.listen_port = st.cfg.listen_port;
  pc.accepted = std::move(accepted);
  if (hs)
    pc.accepted_handshake = *hs;
  auto handle = st.cfg.peer_factory ? st.cfg.peer_factory(self->system(), pc)
                                    : spawn_peer(self->system(), pc);
  self->monitor(handle);
  peer_entry e;
  e.handle = handle;
  e.requests.set_max_pipeline(st.cfg.max_outstanding);
  e.requests.set_timeout_bounds(std::chrono::milliseconds(st.cfg.min_request_timeout_ms),
                                seconds(st.cfg.request_timeout_s));
  e.ep = ep;
  e.known = known_index;
  st.slot_of.emplace(handle.address(), pc.slot);
  ++st.per_ip[ep.host];
  st.peers.emplace(pc.slot, std::move(e));
  return pc.slot;
}

void connect_more(self_ptr self) {
  auto& st = self->state;
  if (st.checking || st.failed)
    return;
  auto now = clock_type::now();
  int started = 0;
  std::uint32_t half_open = 0;
  for (auto& [slot, e] : st.peers)
    half_open += !e.active && e.known != SIZE_MAX;
  for (std::size_t i = 0; i < st.known.size(); ++i) {
    if (st.peers.size() >= st.cfg.max_peers || started >= 8 || half_open >= st.cfg.max_half_open)
      break;
    auto& k = st.known[i];
    if (k.st != known_peer::state::idle || k.next_try > now)
      continue;
    if (auto ip = st.per_ip.find(k.ep.host);
        ip != st.per_ip.end() && ip->second >= st.cfg.max_peers_per_ip)
      continue;
    ++half_open;
    k.st = known_peer::state::connecting;
    ++k.attempts;
    ++started;
    ++st.counters.connects;
    spawn_peer_for(self, k.ep, i, nullptr, nullptr);
  }
}

torrent_progress make_progress(const torrent_state& st) {
  torrent_progress p;
  p.total_size = st.meta().total_size;
  p.verified_bytes = st.picker->verified_bytes();
  p.dirty_bytes = st.picker->dirty_bytes();
  p.downloaded_payload = st.payload_down;
  p.pieces = st.meta().piece_count();
  p.pieces_verified = st.picker->have_count();
  p.pieces_failed = st.pieces_failed;
  for (auto& [slot, e] : st.peers) {
    p.peers += e.active;
    p.peers_unchoked += e.active && !e.choked_us;
  }
  p.known_peers = static_cast<std::uint32_t>(st.known.size());
  p.download_rate = st.rate;
  p.upload_rate = st.up_rate;
  p.uploaded_payload = st.payload_up;
  p.checking = st.checking;
  p.check_done = st.check_done;
  p.check_total = st.check_total;
  p.seeding = st.done;
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
  if (st.failed)
    return;
  st.failed = true;
  st.finishing = true;
  st.log->error("{}", reason.message);
  self->send(st.cfg.observer, torrent_failed{reason});
}

void maybe_finish(self_ptr self) {
  auto& st = self->state;
  if (st.finishing || !st.picker->complete())
    return;
  st.finishing = true;
  for (auto& [slot, e] : st.peers) {
    drop_outstanding(st, slot, e);
    update_interest(self, e, false);
  }
  // Done means on disk: flush every file before telling anyone.
  self->request(st.storage, caf::infinite, sync_storage{})
    .then([=](storage_synced& r) {
      auto& st = self->state;
      if (!r.result) {
        fail_torrent(self, error{r.result.error().code,
                                 "flushing files failed: " + r.result.error().message});
        return;
      }
      st.done = true;
      st.announce_in_flight = false;
      send_announce(self, tracker::event::completed);
      // Seeding now: a peer that has everything too has nothing to trade with us.
      for (auto& [slot, e] : st.peers) {
        if (e.seed) {
          e.both_seeds = true;
          self->send(e.handle, disconnect_peer{"both sides are seeds"});
        }
      }
      self->send(st.cfg.observer, torrent_finished{make_progress(st)});
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
  std::size_t known = SIZE_MAX;
  peer_id id{};
  if (auto it = st.peers.find(slot); it != st.peers.end()) {
    if (it->second.banned)
      return;
    ep = it->second.ep;
    known = it->second.known;
    id = it->second.id;
    st.log->warn("peer {} banned: {}", ep.to_string(), why);
  } else if (auto gone = st.departed.find(slot); gone != st.departed.end()) {
    ep = gone->second.ep;
    known = gone->second.known;
    id = gone->second.id;
    st.departed.erase(gone);
    st.log->warn("peer {} banned: {} (already disconnected)", ep.to_string(), why);
  } else {
    return;
  }
  ++st.counters.bans;
  if (known != SIZE_MAX)
    st.known[known].st = known_peer::state::banned;
  if (id != peer_id{})
    st.banned_ids.insert(id);
  for (auto& [other, e] : st.peers) {
    bool same = other == slot || (known != SIZE_MAX && e.known == known) ||
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
  if (auto it = st.departed.find(slot); it != st.departed.end())
    return it->second.ep.to_string();
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

/// Picks the peers we upload to: the upload_slots best by rate (what they give us while we
/// download — reciprocation; what they take while we seed), plus one optimistic unchoke that
/// rotates every 30 s so newcomers get a chance to prove themselves.
void run_choker(self_ptr self) {
  auto& st = self->state;
  std::vector<std::pair<std::uint64_t, peer_slot>> candidates;
  for (auto& [slot, e] : st.peers)
    if (e.active && e.peer_interested && !e.banned)
      candidates.emplace_back(st.done ? e.up_round : e.down_round, slot);
  std::sort(candidates.begin(), candidates.end(), std::greater<>());
  std::vector<peer_slot> unchoke;
  for (std::size_t i = 0; i < candidates.size() && i < st.cfg.upload_slots; ++i)
    unchoke.push_back(candidates[i].second);
  bool rotate = st.ticks % 30 == 0 || st.peers.count(st.optimistic) == 0;
  if (rotate) {
    std::vector<peer_slot> others;
    for (std::size_t i = st.cfg.upload_slots; i < candidates.size(); ++i)
      others.push_back(candidates[i].second);
    st.optimistic = others.empty() ? no_peer : others[st.ticks % others.size()];
  }
  if (st.optimistic != no_peer &&
      std::find(unchoke.begin(), unchoke.end(), st.optimistic) == unchoke.end())
    unchoke.push_back(st.optimistic);
  for (auto& [slot, e] : st.peers) {
    bool choke = std::find(unchoke.begin(), unchoke.end(), slot) == unchoke.end();
    if (choke != e.am_choking && e.active) {
      e.am_choking = choke;
      self->send(e.handle, set_choke{choke});
    }
    e.down_round = e.up_round = 0;
  }
}

/// Unchokes an interested peer at once while a slot is free, instead of waiting for the round.
void fill_free_slot(self_ptr self, peer_entry& e) {
  auto& st = self->state;
  if (!e.am_choking || !e.peer_interested || !e.active || e.banned || st.checking)
    return;
  std::size_t unchoked = 0;
  for (auto& [slot, other] : st.peers)
    unchoked += !other.am_choking;
  if (unchoked >= st.cfg.upload_slots + 1)
    return;
  e.am_choking = false;
  self->send(e.handle, set_choke{false});
}

void on_tick(self_ptr self) {
  auto& st = self->state;
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
  if (st.verified_since_save > 0 && now - st.last_save >= seconds(st.cfg.resume_interval_s)) {
    st.verified_since_save = 0;
    st.last_save = now;
    self->send(st.storage, save_resume_now{});
  }
  if (!st.failed && !st.checking) {
    if (st.ticks % 10 == 0)
      run_choker(self);
    connect_more(self);
    if (st.tracker && !st.announce_in_flight && now >= st.next_announce)
      send_announce(self, st.announced_started ? tracker::event::none : tracker::event::started);
    // A request much older than the peer's usual request time goes to another peer, and the
    // slow peer's pipeline shrinks; a peer that delivers nothing at all for 60 s is dropped.
    std::vector<peer_slot> slow;
    for (auto& [slot, e] : st.peers) {
      if (e.requests.empty())
        continue;
      if (now - e.last_block > seconds(60)) {
        drop_outstanding(st, slot, e);
        self->send(e.handle, disconnect_peer{"no data for 60 s with requests pending"});
        continue;
      }
      auto late = e.requests.take_timed_out(now);
      if (late.empty())
        continue;
      for (auto b : late)
        st.picker->on_request_dropped(slot, b);
      st.counters.request_timeouts += late.size();
      st.log->debug("peer {}: {} request(s) timed out after {} ms; pipeline now {}",
                    e.ep.to_string(), late.size(), e.requests.timeout().count(),
                    e.requests.pipeline());
      self->send(e.handle, cancel_blocks{std::move(late)});
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
  if (!st.failed) {
    auto p = make_progress(st);
    p.metrics = render_metrics(self, p);
    self->send(st.cfg.observer, std::move(p));
  }
  self->delayed_send(self, seconds(1), tick{});
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
        interesting = interesting || !picker.have(p);
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

/// After a peer's availability changed: interest, seed-to-seed disconnect, requests.
void after_availability(self_ptr self, peer_slot slot, peer_entry& e, bool interesting) {
  auto& st = self->state;
  update_interest(self, e, interesting && !st.finishing);
  if (st.done && e.seed) {
    e.both_seeds = true;
    self->send(e.handle, disconnect_peer{"both sides are seeds"});
    return;
  }
  refill(self, slot, e);
}

/// One pass over the availability changes queued since the last: apply them all, then give
/// each affected peer one interest check and one refill.
void apply_pending_availability(self_ptr self) {
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
    after_availability(self, slot, it->second, it->second.pending_interesting);
  }
}

} // namespace

caf::actor spawn_torrent(caf::actor_system& sys, torrent_config cfg) {
  auto store = std::make_shared<std::unique_ptr<file_store>>(std::move(cfg.store));
  auto conf = std::make_shared<torrent_config>(std::move(cfg));
  return sys.spawn([store, conf](self_ptr self) -> caf::behavior {
    auto& st = self->state;
    st.cfg = std::move(*conf);
    st.log = spdlog::get("torrent");
    const auto& m = *st.cfg.meta;
    st.picker = std::make_unique<piece_picker>(m.piece_count(), m.piece_length, m.total_size);
    st.picker->recompute_from_scratch(st.cfg.recompute_requests);
    auto me = caf::actor_cast<caf::actor>(self);
    // threads: storage's blocking work goes to the session's disk pool (no thread per torrent).
    st.storage = spawn_storage(self->system(), std::move(*store), st.cfg.meta, me,
                               st.cfg.disk ? *st.cfg.disk : disk_pool::process_default());
    self->link_to(st.storage);
    auto tiers = m.tracker_tiers();
    if (st.cfg.use_trackers && !tiers.empty()) {
      tracker_config tc;
      tc.tiers = tiers;
      tc.hash = m.hash;
      tc.id = st.cfg.id;
      tc.listen_port = st.cfg.listen_port;
      st.tracker_cancel = tc.cancel;
      st.tracker = spawn_tracker(self->system(), tc, me);
      self->link_to(st.tracker);
    }
    for (auto& ep : st.cfg.peers)
      add_known(st, ep);
    self->set_down_handler([=](caf::down_msg& dm) {
      auto it = self->state.slot_of.find(dm.source);
      if (it != self->state.slot_of.end())
        remove_peer(self, it->second, "peer actor exited", false);
    });
    self->set_default_handler(caf::drop);
    self->send(self, tick{});
    // Existing data first: trusted pieces from the resume data, the rest hashed by storage.
    // A stop raises check_cancel: storage is busy hashing and would see no message.
    auto check_cancel = std::make_shared<std::atomic<bool>>(false);
    self->request(st.storage, caf::infinite,
                  check_existing{std::move(st.cfg.trusted_pieces),
                                 std::move(st.cfg.pieces_to_check), check_cancel})
      .then([=](existing_checked& ec) {
        auto& st = self->state;
        for (auto p : ec.verified)
          st.picker->set_have(piece_index{p});
        st.checking = false;
        // Announce now, not at the next tick: peers are what we wait for.
        if (st.tracker && !st.announced_started)
          send_announce(self, tracker::event::started);
        if (ec.checked > 0 || !ec.verified.empty())
          st.log->info("existing data: {} of {} pieces verified ({} hashed)", ec.verified.size(),
                       st.meta().piece_count(), ec.checked);
        connect_more(self);
        maybe_finish(self);
      },
      [=](caf::error& err) {
        fail_torrent(self, error{errc::actor_down, "storage: checking existing data failed: " +
                                                     caf::to_string(err)});
      });
    return {
      [=](tick) { on_tick(self); },
      [=](get_progress) {
        apply_pending_availability(self); // a fresh report reflects every message received
        auto p = make_progress(self->state);
        p.metrics = render_metrics(self, p);
        return p;
      },
      [=](const peer_connected& pc) {
        auto it = self->state.peers.find(pc.slot);
        if (it == self->state.peers.end())
          return;
        it->second.active = true;
        it->second.id = pc.id;
        if (self->state.banned_ids.count(pc.id) != 0) {
          it->second.banned = true;
          self->send(it->second.handle, disconnect_peer{"banned earlier for bad data"});
          return;
        }
        if (it->second.known != SIZE_MAX)
          self->state.known[it->second.known].st = known_peer::state::connected;
        self->send(it->second.handle, our_pieces{true, self->state.picker->have_pieces(), {}});
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
          after_availability(self, d.slot, it->second, interesting);
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
      [=](apply_availability) { apply_pending_availability(self); },
      [=](peer_activity& a) {
        auto& st = self->state;
        auto it = st.peers.find(a.slot);
        if (it == st.peers.end())
          return;
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
          e.requests.set_max_pipeline(std::min(st.cfg.max_outstanding, a.request_limit));
        if (a.interest_changed) {
          e.peer_interested = a.interested;
          if (a.interested)
            fill_free_slot(self, e);
        }
        for (auto b : a.rejected)
          if (e.requests.remove(b))
            st.picker->on_request_dropped(a.slot, b);
        if (a.choke_changed) {
          e.choked_us = a.choked;
          if (a.choked)
            drop_outstanding(st, a.slot, e);
          else
            e.last_block = clock_type::now();
        }
        refill(self, a.slot, e);
      },
      [=](blocks_stored& bs) {
        auto& st = self->state;
        auto it = st.peers.find(bs.slot);
        peer_entry* e = it == st.peers.end() ? nullptr : &it->second;
        std::unordered_map<peer_slot, std::vector<block_ref>> cancels;
        // Timed to when the peer's read arrived, not to storage's turn.
        auto received = bs.received == clock_type::time_point{} ? clock_type::now() : bs.received;
        for (auto sb : bs.blocks) {
          auto b = sb.block;
          if (e) {
            e->requests.on_received(b, received);
            e->blocks_stored += sb.copy != 0;
          }
          if (sb.copy == 0) {
            // Not written (its piece is verified already, or storage failed): the request is
            // settled without data.
            st.picker->on_request_dropped(bs.slot, b);
            ++st.counters.blocks_duplicate;
            continue;
          }
          st.cancels.clear();
          auto r = st.picker->on_block_received(bs.slot, b, sb.copy, st.cancels);
          if (r == piece_picker::receive_result::duplicate)
            ++st.counters.blocks_duplicate;
          else
            ++st.counters.blocks_fresh;
          for (auto other : st.cancels) {
            auto ot = st.peers.find(other);
            if (ot != st.peers.end() && ot->second.requests.remove(b))
              cancels[other].push_back(b);
          }
        }
        ++st.counters.stored_msgs;
        for (auto& [other, blocks] : cancels) {
          st.counters.cancels_sent += blocks.size();
          self->send(st.peers[other].handle, cancel_blocks{std::move(blocks)});
        }
        if (e) {
          e->last_block = clock_type::now();
          refill(self, bs.slot, *e);
        }
      },
      [=](const piece_checked& pc) { on_piece_checked(self, pc); },
      [=](flush_haves) {
        auto& st = self->state;
        st.haves_flush_scheduled = false;
        if (st.pending_haves.empty())
          return;
        for (auto& [slot, e] : st.peers)
          if (e.active)
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
        st.announce_in_flight = false;
        auto now = clock_type::now();
        if (!r.result) {
          ++st.announce_failures;
          auto wait = std::min(300, 5 << std::min<std::uint32_t>(st.announce_failures, 6));
          st.log->warn("tracker: {} (retrying in {} s)", r.result.error().message, wait);
          st.next_announce = now + seconds(wait);
          return;
        }
        st.announce_failures = 0;
        st.announced_started = true;
        for (auto& ep : r.peers)
          add_known(st, ep);
        auto interval = std::clamp<std::uint32_t>(r.interval, 30, 3600);
        if (st.peers.empty())
          interval = std::max<std::uint32_t>(15, std::min(interval, r.min_interval));
        st.next_announce = now + seconds(interval);
        connect_more(self);
      },
      [=](add_peers& ap) {
        for (auto& ep : ap.peers)
          add_known(self->state, ep);
        connect_more(self);
      },
      [=](incoming_peer& ip) {
        auto& st = self->state;
        auto same_ip = st.per_ip.find(ip.remote.host);
        bool ip_full = same_ip != st.per_ip.end() && same_ip->second >= st.cfg.max_peers_per_ip;
        if (st.failed || st.checking || st.peers.size() >= st.cfg.max_peers || ip_full) {
          auto why = st.peers.size() >= st.cfg.max_peers ? "too many peers"
                     : ip_full     ? "too many connections from this address"
                     : st.checking ? "still checking existing data"
                                   : "torrent failed";
          st.log->info("incoming {} refused: {}", ip.remote.to_string(), why);
          ip.conn->close(why);
          return;
        }
        spawn_peer_for(self, ip.remote, SIZE_MAX, ip.conn, &ip.hs);
      },
      [=](const storage_failed& sf) {
        fail_torrent(self, error{sf.why.code, "storage: " + sf.why.message});
      },
      [=](stop_request) {
        auto& st = self->state;
        if (st.stopping)
          return;
        st.stopping = true;
        st.finishing = true;
        if (st.checking)
          check_cancel->store(true); // storage returns what it verified so far
        // Abort a routine announce in flight to exit promptly ("completed" and "stopped" are
        // not cut short: they have short timeouts of their own).
        if (st.tracker)
          st.tracker_cancel->store(true);
        for (auto& [slot, e] : st.peers)
          self->send(e.handle, disconnect_peer{"shutting down"});
        // Peers publish their last counters as they close; wait for them (bounded).
        if (st.peers.empty())
          finish_stop(self);
        else
          self->delayed_send(self, std::chrono::milliseconds(500), stop_deadline{});
      },
      [=](stop_deadline) { finish_stop(self); },
    };
  });
}

} // namespace actorrent
