#include "actors/peer_actor.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <unordered_map>
#include <unordered_set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/block_map.hpp"
#include "actors/dht_actor.hpp"
#include "actors/extension_messages.hpp"
#include "actors/peer_connection.hpp"
#include "protocol/bencode.hpp"
#include "protocol/extension.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/pex.hpp"
#include "protocol/ut_metadata.hpp"

namespace actorrent {

namespace {

// Events from the connection (posted from the I/O thread).
struct conn_handshake {
  wire::handshake hs;
};
struct conn_closed {
  std::string reason;
  bool protocol_error = false;
};
struct pump_uploads {};
struct end_queue_choke {};

} // namespace
} // namespace actorrent

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::read_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::conn_handshake)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::conn_closed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::pump_uploads)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::end_queue_choke)

namespace actorrent {

namespace {

using clock_type = std::chrono::steady_clock;

// Requests queued per peer (16 bytes each), advertised as BEP 10 `reqq`: libtorrent's limit.
// Leechers size their pipeline from the rate (Transmission keeps thousands in flight on a fast
// link) and only `reqq` caps them. Beyond it a BEP 6 peer gets REJECTs; a peer without BEP 6
// (rtorrent, which also ignores `reqq`) is choked once its queue is served and unchoked a
// moment later, so that it asks again (a silently dropped request is waited for forever).
constexpr std::size_t max_upload_queue = 2000;
// How long such a peer stays choked: long enough for the requests it sent before it saw the
// CHOKE to arrive (they are dropped), short enough not to idle the link.
constexpr auto queue_choke_pause = std::chrono::milliseconds(250);
constexpr std::size_t max_reads_in_flight = 8;   // storage reads per peer at once
constexpr std::size_t max_send_backlog = 1u << 20; // bytes queued on the socket before we wait
constexpr const char* client_version = "actorrent/0.1"; // BEP 10 `v`
// Abuse limits: past these a peer is disconnected (and not dialled again).
// Requests in flight when we choke are normal, up to a full `reqq`; twice that while choked
// is a flood. Requests beyond a full queue are not abuse: they are answered (REJECT, or a
// CHOKE for a peer without BEP 6).
constexpr std::size_t max_refused_requests = 2 * max_upload_queue;
constexpr std::size_t max_requests_for_missing = 100; // blocks of pieces we never announced
constexpr std::size_t max_unrequested_blocks = 2048; // not counting late copies (see `cancelled`)
constexpr std::size_t max_cancelled_remembered = 4096; // each of `cancelled` and `forgotten`
constexpr std::size_t max_full_statements = 64; // BITFIELD / HAVE_ALL / HAVE_NONE per connection
// BEP 10: the extended message ids we assign (the peer sends ut_metadata / ut_pex with these).
constexpr std::uint8_t our_ut_metadata = 1;
constexpr std::uint8_t our_ut_pex = 2;
// BEP 9: metadata pieces served per connection beyond one full copy (then rejected), and
// requests of ours one peer may leave pending.
constexpr std::size_t max_metadata_served_extra = 16;
// BEP 11: one ut_pex a minute; a peer sending them faster has the extras ignored, and one that
// keeps at it (a flood) is disconnected.
constexpr auto pex_interval = std::chrono::seconds(60);
constexpr auto pex_min_gap = std::chrono::seconds(20); // received: slack for timer jitter
constexpr std::size_t max_early_pex = 8;

struct peer_state {
  peer_config cfg;
  std::shared_ptr<connection> conn;
  std::shared_ptr<spdlog::logger> log;
  bool active = false;        // handshake done
  bool closed = false;
  bool fast = false;          // BEP 6 negotiated
  bool extended = false;      // BEP 10 negotiated (both set the bit)
  bool peer_dht = false;      // BEP 5: the peer set the DHT bit
  bool port_sent = false;     // our PORT went out
  bool dht_pinged = false;    // its PORT reached the DHT (once per peer)
  std::uint32_t peer_reqq = 0; // the peer's BEP 10 `reqq` (0: not given)
  bool peer_choking = true;
  bool am_interested = false;
  clock_type::time_point last_receive = clock_type::now();
  clock_type::time_point last_send = clock_type::now();
  // The peer's own counters (seed §1): plain fields, published with each batch.
  std::uint64_t payload_down = 0;
  std::uint64_t wire_down = 0;
  std::string out; // encode buffer for one outgoing batch
  // The wire's copy of the torrent's request record for this peer: blocks we sent a REQUEST
  // for (request_blocks) and have not received, cancelled (cancel_blocks) or had rejected,
  // with how many requests for each are pending (a re-request before the first was answered).
  // Only the torrent decides what is requested; this matches PIECE and REJECT against what
  // was sent. Anything else the peer sends is dropped unwritten (but for late copies of
  // `forgotten` requests, which were asked of this peer): data nobody asked for must not
  // overwrite, or be blamed on, another peer's blocks. Flat maps: no allocation per block.
  block_map<std::uint32_t> requested;
  std::size_t unrequested_blocks = 0;
  // Blocks whose request the torrent ended while a copy may still be on its way; neither counts
  // as unrequested when it arrives, so an honest peer that ignores CANCEL (or sends what was
  // queued before its CHOKE) is never taken for abusive.
  //  - cancelled: the block is on disk already (end-game) or no longer wanted: dropped.
  //  - forgotten: ended by the peer's CHOKE or by a request timeout; the torrent asked another
  //    peer, but this copy may well come first (a slow peer's queue drains after the timeout),
  //    so it is written like a requested one, and storage and the picker take whichever copy
  //    lands. A REJECT ends it.
  block_map<bool> cancelled;
  block_map<bool> forgotten;

  // Upload side.
  struct upload_request {
    piece_index piece;
    std::uint32_t begin = 0;
    std::uint32_t length = 0;
    bool reading = false;   // a read_block is in flight for it
    bool cancelled = false; // cancelled while its read was in flight
  };
  bool am_choking = true;     // what the torrent's choker wants
  bool owe_choke = false;     // requests beyond the full queue were dropped (no BEP 6)
  bool queue_choked = false;  // choked for a moment so that it asks for those again
  std::uint64_t queue_chokes = 0;
  bool peer_interested = false;
  bool sent_pieces = false;            // our bitfield went out
  bitfield our_pieces;
  std::deque<upload_request> uploads;  // bounded by max_upload_queue
  std::size_t reads_in_flight = 0;
  bool pump_scheduled = false;
  std::uint64_t payload_up = 0;
  std::uint64_t up_unreported = 0;
  std::size_t refused_requests = 0;     // while choked, since we last unchoked the peer
  std::uint64_t rejected_full = 0;      // REJECTs because the queue was full (BEP 6 peers)
  std::size_t requests_for_missing = 0;
  std::uint64_t haves_received = 0;
  std::size_t full_statements = 0; // each makes the torrent re-count the peer's availability
  // -- BEP 10 extensions: BEP 9 metadata, BEP 11 PEX --
  std::uint8_t peer_ut_metadata = 0; // the ids the peer assigned (0: not supported)
  std::uint8_t peer_ut_pex = 0;
  std::uint16_t peer_listen_port = 0; // its BEP 10 `p`
  std::size_t metadata_served = 0;
  bool pex_received_once = false;
  clock_type::time_point last_pex_received{};
  std::size_t early_pex = 0;
  bool pex_sent_once = false;
  clock_type::time_point last_pex_sent{};
  std::vector<pex::peer> pex_told; // the peers our ut_pex messages so far left it knowing

  std::uint32_t piece_count() const { return cfg.meta->piece_count(); }
};

void flush(peer_state& st) {
  if (st.out.empty() || st.closed)
    return;
  st.conn->send(std::move(st.out));
  st.out.clear();
  st.last_send = clock_type::now();
}

void close_peer(caf::stateful_actor<peer_state>* self, peer_state& st, const std::string& reason,
                bool misbehaved, bool quiet = false) {
  if (st.closed)
    return;
  st.closed = true;
  if (st.conn)
    st.conn->close(reason);
  if (st.up_unreported > 0) {
    // Counters are published in batches; the last batch goes out before the goodbye.
    peer_activity act;
    act.slot = st.cfg.slot;
    act.payload_up = st.up_unreported;
    st.up_unreported = 0;
    self->send(st.cfg.torrent, std::move(act));
  }
  // Violations are warnings; a peer going away is routine (shown with -vv).
  if (misbehaved && !quiet)
    st.log->warn("{}: disconnected: {}", st.cfg.remote.to_string(), reason);
  else
    st.log->debug("{}: closed: {}", st.cfg.remote.to_string(), reason);
  self->send(st.cfg.torrent, peer_closed{st.cfg.slot, reason, misbehaved});
  self->quit();
}

/// Validates a block range against the torrent's geometry. We only ever request aligned
/// blocks of block_size (shorter at the end of a piece), so anything else is refused.
bool valid_block(const peer_state& st, const wire::message& m, std::uint32_t length,
                 std::string& why) {
  if (m.index >= st.piece_count()) {
    why = std::string(wire::to_string(m.id)) + ": piece " + std::to_string(m.index) +
          " out of range (" + std::to_string(st.piece_count()) + " pieces)";
    return false;
  }
  auto size = st.cfg.meta->piece_size(piece_index{m.index});
  auto expected = m.begin < size ? std::min(block_size, size - m.begin) : 0;
  if (m.begin % block_size != 0 || m.begin >= size || length != expected) {
    why = std::string(wire::to_string(m.id)) + ": block " + std::to_string(m.index) + ":" +
          std::to_string(m.begin) + "+" + std::to_string(length) + " is not a block of this torrent";
    return false;
  }
  return true;
}

std::uint64_t block_key(std::uint32_t piece, std::uint32_t begin) {
  return (std::uint64_t{piece} << 32) | begin;
}

/// Adds `key` to `cancelled` or `forgotten`. Bounded: forgetting only makes a late copy count
/// as unrequested (and not be written).
void remember(block_map<bool>& set, std::uint64_t key) {
  if (set.size() >= max_cancelled_remembered)
    set.clear();
  set.try_emplace(key, true);
}

/// Settles one pending request for the block; false when none was pending.
bool settle_request(peer_state& st, std::uint32_t piece, std::uint32_t begin) {
  auto key = block_key(piece, begin);
  auto* n = st.requested.find(key);
  if (!n)
    return false;
  if (--*n == 0)
    st.requested.erase(key);
  return true;
}

void reject(peer_state& st, piece_index p, std::uint32_t begin, std::uint32_t length) {
  if (st.fast) // BEP 6: every request gets an answer; without it, a dropped request is silent
    wire::append_request(st.out, wire::msg_id::reject, p.value, begin, length);
}

/// What the peer sees: choked while the choker says so or while it pauses after an overflow.
bool choking(const peer_state& st) { return st.am_choking || st.queue_choked; }

/// Drops every queued request that is not being read (BEP 6 peers get a REJECT for each;
/// without BEP 6 the CHOKE that goes with this discards them); reads in flight are not sent
/// when they land.
void drop_queue(peer_state& st) {
  for (auto& u : st.uploads)
    if (!u.reading)
      reject(st, u.piece, u.begin, u.length);
  st.uploads.erase(std::remove_if(st.uploads.begin(), st.uploads.end(),
                                  [](auto& u) { return !u.reading; }),
                   st.uploads.end());
  for (auto& u : st.uploads)
    u.cancelled = true;
}

/// A peer without BEP 6 asked for more than the queue holds, and those requests were dropped.
/// Once everything queued is sent, a CHOKE makes it forget its pending requests (BEP 3) and the
/// UNCHOKE after the pause makes it ask for them again. Choking earlier would discard the
/// queue too, and a peer that always asks for more than fits would then never get a block.
void settle_overflow(caf::stateful_actor<peer_state>* self, peer_state& st) {
  if (!st.owe_choke || !st.uploads.empty() || choking(st) || st.closed)
    return;
  st.owe_choke = false;
  st.queue_choked = true;
  ++st.queue_chokes;
  wire::append_simple(st.out, wire::msg_id::choke);
  st.log->debug("{}: asked for more than the upload queue of {} holds: choked for {} ms so that "
                "it asks again ({} times)",
                st.cfg.remote.to_string(), max_upload_queue, queue_choke_pause.count(),
                st.queue_chokes);
  self->delayed_send(self, queue_choke_pause, end_queue_choke{});
}

/// Queues an upload request. Returns false (with `why`) only for a protocol violation.
bool on_request(peer_state& st, const wire::message& m, std::string& why) {
  if (m.index >= st.piece_count()) {
    why = "request: piece " + std::to_string(m.index) + " out of range";
    return false;
  }
  piece_index p{m.index};
  auto size = st.cfg.meta->piece_size(p);
  if (m.begin >= size || m.length > size - m.begin) {
    why = "request: block " + std::to_string(m.index) + ":" + std::to_string(m.begin) + "+" +
          std::to_string(m.length) + " outside the piece";
    return false;
  }
  if (!st.our_pieces.size() || !st.our_pieces.test(p)) {
    if (++st.requests_for_missing > max_requests_for_missing) {
      why = "requested " + std::to_string(st.requests_for_missing) +
            " blocks of pieces we do not have";
      return false;
    }
    reject(st, p, m.begin, m.length);
    return true;
  }
  if (st.queue_choked)
    return true; // sent before it saw our CHOKE, which discarded it (only peers without BEP 6)
  if (st.am_choking) {
    // Requests in flight when we choke are normal; thousands of them are a flood.
    if (++st.refused_requests > max_refused_requests) {
      why = "request flood: " + std::to_string(st.refused_requests) + " requests while choked";
      return false;
    }
    reject(st, p, m.begin, m.length);
    return true;
  }
  if (st.uploads.size() >= max_upload_queue) {
    if (st.fast) {
      // BEP 6: the REJECT tells it to ask again later; the memory stays bounded.
      ++st.rejected_full;
      reject(st, p, m.begin, m.length);
    } else {
      st.owe_choke = true; // dropped for now; see settle_overflow
    }
    return true;
  }
  st.uploads.push_back(peer_state::upload_request{p, m.begin, m.length});
  return true;
}

void on_cancel(peer_state& st, const wire::message& m) {
  for (auto it = st.uploads.begin(); it != st.uploads.end(); ++it) {
    if (it->piece.value == m.index && it->begin == m.begin && it->length == m.length) {
      if (it->reading)
        it->cancelled = true;
      else
        st.uploads.erase(it);
      return;
    }
  }
}

void pump(caf::stateful_actor<peer_state>* self, peer_state& st);

void on_block_read(caf::stateful_actor<peer_state>* self, block_read& r) {
  auto& st = self->state;
  --st.reads_in_flight;
  for (auto it = st.uploads.begin(); it != st.uploads.end(); ++it) {
    if (!it->reading || it->piece != r.piece || it->begin != r.begin)
      continue;
    bool send = !it->cancelled && !choking(st) && !st.closed && r.result.ok();
    auto length = it->length;
    st.uploads.erase(it);
    if (send) {
      flush(st); // keep message order: anything encoded before goes first
      st.conn->send(std::move(r.frame));
      st.last_send = clock_type::now();
      st.payload_up += length;
      st.up_unreported += length;
    } else if (!r.result.ok() && !st.closed) {
      reject(st, r.piece, r.begin, length);
    }
    break;
  }
  pump(self, st);
  settle_overflow(self, st);
  flush(st);
}

/// Starts storage reads for queued requests while the socket keeps up.
void pump(caf::stateful_actor<peer_state>* self, peer_state& st) {
  if (st.closed || choking(st))
    return;
  for (auto& u : st.uploads) {
    if (st.reads_in_flight >= max_reads_in_flight)
      return;
    if (u.reading)
      continue;
    // Also wait while the session's send buffers are full (all connections together).
    if (st.conn->queued_bytes() > max_send_backlog || st.conn->send_budget_full()) {
      if (!st.pump_scheduled) {
        st.pump_scheduled = true;
        self->delayed_send(self, std::chrono::milliseconds(5), pump_uploads{});
      }
      return;
    }
    u.reading = true;
    ++st.reads_in_flight;
    self->request(st.cfg.storage, caf::infinite, read_block{u.piece, u.begin, u.length})
      .then([self](block_read& r) { on_block_read(self, r); },
            [self, p = u.piece, b = u.begin](caf::error& err) {
              // Storage is gone (the torrent is failing): answer as for a failed read.
              block_read r{p, b, {}, error{errc::actor_down, "storage: " + caf::to_string(err)}};
              on_block_read(self, r);
            });
  }
}

/// Messages about pieces: meaningless until the torrent has its metainfo (BEP 9 fetch).
bool needs_metainfo(wire::msg_id id) {
  switch (id) {
    case wire::msg_id::have:
    case wire::msg_id::bitfield:
    case wire::msg_id::have_all:
    case wire::msg_id::have_none:
    case wire::msg_id::request:
    case wire::msg_id::piece:
    case wire::msg_id::reject:
      return true;
    default:
      return false;
  }
}

/// BEP 10: what the peer's extended handshake says about the extensions we use.
void on_extended_handshake(caf::stateful_actor<peer_state>* self, peer_state& st,
                           const ext::handshake& h) {
  st.peer_ut_metadata = h.id_of("ut_metadata");
  st.peer_ut_pex = h.id_of("ut_pex");
  if (h.listen_port != 0)
    st.peer_listen_port = h.listen_port;
  if (st.peer_ut_pex != 0 && st.cfg.meta && !st.cfg.meta->is_private)
    self->send(st.cfg.torrent, pex_capable{st.cfg.slot});
  // A torrent still fetching its metadata asks the peers that can give it.
  if (!st.cfg.meta && st.peer_ut_metadata != 0)
    self->send(st.cfg.torrent, metadata_offer{st.cfg.slot, h.metadata_size});
}

/// BEP 9. Returns false (with `why`) for a violation.
bool on_ut_metadata(caf::stateful_actor<peer_state>* self, peer_state& st,
                    std::string_view payload, std::string& why) {
  auto m = ut_metadata::parse(payload);
  if (!m) {
    why = m.error().message;
    return false;
  }
  switch (m->type) {
    case ut_metadata::msg_type::request: {
      if (st.peer_ut_metadata == 0)
        break; // it cannot receive the answer
      const std::string* info = st.cfg.meta ? &st.cfg.meta->info_bytes : nullptr;
      auto offset = std::uint64_t{m->piece} * ut_metadata::piece_size;
      // Beyond the end, without metadata, or beyond a full copy and some: rejected (BEP 9).
      bool serve = info && !info->empty() && offset < info->size() &&
                   st.metadata_served < ut_metadata::piece_count(info->size()) +
                                          max_metadata_served_extra;
      if (serve) {
        ++st.metadata_served;
        auto piece = std::string_view(*info).substr(offset, ut_metadata::piece_size);
        wire::append_extended(st.out, st.peer_ut_metadata,
                              ut_metadata::encode_data(m->piece, info->size(), piece));
      } else {
        wire::append_extended(st.out, st.peer_ut_metadata, ut_metadata::encode_reject(m->piece));
      }
      break;
    }
    case ut_metadata::msg_type::data:
      if (st.cfg.meta)
        break; // we have it already (a late answer): nothing to do
      self->send(st.cfg.torrent, metadata_piece{st.cfg.slot, m->piece, m->total_size,
                                                std::string(m->data)});
      break;
    case ut_metadata::msg_type::reject:
      if (!st.cfg.meta)
        self->send(st.cfg.torrent, metadata_rejected{st.cfg.slot, m->piece});
      break;
  }
  return true;
}

/// BEP 11. Returns false (with `why`) for a flood.
bool on_ut_pex(caf::stateful_actor<peer_state>* self, peer_state& st, std::string_view payload,
               std::string& why) {
  if (st.cfg.meta && st.cfg.meta->is_private)
    return true; // BEP 27: a private torrent's peers come from its tracker only
  auto now = clock_type::now();
  if (st.pex_received_once && now - st.last_pex_received < pex_min_gap) {
    // BEP 11 allows one a minute: extras are ignored, and a peer that keeps sending is a flood.
    if (++st.early_pex > max_early_pex) {
      why = "ut_pex flood: " + std::to_string(st.early_pex) + " messages less than " +
            std::to_string(pex_min_gap.count()) + " s apart";
      return false;
    }
    return true;
  }
  auto m = pex::parse(payload);
  if (!m) {
    why = m.error().message;
    return false;
  }
  st.pex_received_once = true;
  st.last_pex_received = now;
  add_peers ap;
  for (auto& p : m->added)
    ap.peers.push_back(endpoint{p.host, p.port});
  if (!ap.peers.empty()) {
    st.log->debug("{}: ut_pex: {} peers added, {} dropped", st.cfg.remote.to_string(),
                  m->added.size(), m->dropped.size());
    self->send(st.cfg.torrent, std::move(ap));
  }
  return true;
}

/// BEP 11: tells the peer what changed since our last ut_pex (at most once a minute, at most
/// pex::max_added_per_message added; the rest goes in the next message).
void send_pex(peer_state& st, const pex_snapshot& snap) {
  if (st.peer_ut_pex == 0 || st.closed || !st.active ||
      (st.cfg.meta && st.cfg.meta->is_private))
    return;
  auto now = clock_type::now();
  // A little over the minute: libtorrent drops a peer whose ut_pex come less than 60 s apart.
  if (st.pex_sent_once && now - st.last_pex_sent < pex_interval + std::chrono::seconds(1))
    return;
  pex::message m;
  for (std::size_t i = 0; i < snap.peers.size(); ++i) {
    pex::peer p{snap.peers[i].host, snap.peers[i].port, i < snap.flags.size() ? snap.flags[i]
                                                                              : std::uint8_t{0}};
    if (p.host == st.cfg.remote.host && (p.port == st.cfg.remote.port ||
                                         p.port == st.peer_listen_port))
      continue; // itself
    if (std::find(st.pex_told.begin(), st.pex_told.end(), p) == st.pex_told.end() &&
        m.added.size() < pex::max_added_per_message)
      m.added.push_back(std::move(p));
  }
  for (auto& told : st.pex_told) {
    bool still = std::any_of(snap.peers.begin(), snap.peers.end(), [&](const endpoint& e) {
      return e.host == told.host && e.port == told.port;
    });
    if (!still && m.dropped.size() < pex::max_added_per_message)
      m.dropped.push_back(told);
  }
  if (m.added.empty() && m.dropped.empty())
    return;
  for (auto& d : m.dropped)
    st.pex_told.erase(std::remove(st.pex_told.begin(), st.pex_told.end(), d), st.pex_told.end());
  st.pex_told.insert(st.pex_told.end(), m.added.begin(), m.added.end());
  st.pex_sent_once = true;
  st.last_pex_sent = now;
  wire::append_extended(st.out, st.peer_ut_pex, pex::encode(m));
  flush(st);
}

void handle_batch(caf::stateful_actor<peer_state>* self, peer_state& st, read_batch& batch) {
  if (st.closed)
    return;
  st.last_receive = clock_type::now();
  st.wire_down += batch.wire_bytes;
  peer_activity act;
  act.slot = st.cfg.slot;
  act.wire_bytes = batch.wire_bytes;
  availability_delta av;
  av.slot = st.cfg.slot;
  write_blocks wb;
  wb.slot = st.cfg.slot;
  std::string why;
  auto violation = [&](const std::string& reason) { close_peer(self, st, reason, true); };
  for (const auto& m : batch.messages) {
    if (!st.cfg.meta && needs_metainfo(m.id))
      continue; // awaiting metadata: no pieces to speak of yet (the connection is replaced
                // by one with the metainfo once it is known)
    switch (m.id) {
      case wire::msg_id::interested:
      case wire::msg_id::not_interested: {
        bool interested = m.id == wire::msg_id::interested;
        if (interested != st.peer_interested) {
          st.peer_interested = interested;
          act.interest_changed = true;
          act.interested = interested;
        }
        break;
      }
      case wire::msg_id::cancel:
        on_cancel(st, m);
        break;
      case wire::msg_id::port:
        // BEP 5: the peer's DHT node listens on this UDP port: the DHT pings it, once per peer
        // (a peer repeating PORT cannot make us ping anyone else, or more often).
        if (st.cfg.dht && !st.dht_pinged && m.port != 0) {
          st.dht_pinged = true;
          self->send(st.cfg.dht, dht_ping_node{endpoint{st.cfg.remote.host, m.port}});
        }
        break;
      case wire::msg_id::keep_alive:
      case wire::msg_id::suggest:
      case wire::msg_id::allowed_fast:
        break;
      case wire::msg_id::choke:
        // The torrent gives every request of a choking peer to others (BEP 3: a choke
        // discards them; a BEP 6 peer REJECTs them next). A copy that still arrives (sent
        // before the CHOKE, or by a peer that serves its queue anyway) is written all the same:
        // fetching it again elsewhere would only waste the bytes already on the wire.
        st.requested.for_each(
          [&](std::uint64_t key, std::uint32_t) { remember(st.forgotten, key); });
        st.requested.clear();
        act.choke_seen = true;
        st.peer_choking = true;
        act.choke_changed = true;
        act.choked = true;
        break;
      case wire::msg_id::unchoke:
        st.peer_choking = false;
        act.choke_changed = true;
        act.choked = false;
        break;
      case wire::msg_id::have:
        if (m.index >= st.piece_count())
          return violation("have: piece " + std::to_string(m.index) + " out of range");
        // At most one HAVE per piece makes sense; allow slack for re-announcements.
        if (++st.haves_received > 2 * std::uint64_t{st.piece_count()} + 64)
          return violation("HAVE flood: " + std::to_string(st.haves_received) +
                           " HAVE messages for " + std::to_string(st.piece_count()) + " pieces");
        av.haves.push_back(piece_index{m.index});
        break;
      case wire::msg_id::bitfield: {
        if (++st.full_statements > max_full_statements)
          return violation("BITFIELD flood: " + std::to_string(st.full_statements) +
                           " full statements of availability");
        // A later BITFIELD replaces what we knew: BEP 3 wants it first, but aria2 sends one
        // again mid-connection, and a full statement of availability is harmless.
        auto bits = bitfield::from_wire(m.payload, st.piece_count());
        if (!bits)
          return violation(bits.error().message);
        av.has_bitfield = true;
        av.bits = std::move(*bits);
        av.haves.clear(); // the bitfield includes them
        break;
      }
      case wire::msg_id::have_all: // BEP 6
      case wire::msg_id::have_none:
        if (!st.fast)
          return violation(std::string(wire::to_string(m.id)) + " without the fast extension");
        if (++st.full_statements > max_full_statements)
          return violation("BITFIELD flood: " + std::to_string(st.full_statements) +
                           " full statements of availability");
        // Like a BITFIELD, a later one replaces what we knew.
        av.has_bitfield = true;
        av.bits = bitfield(st.piece_count(), m.id == wire::msg_id::have_all);
        av.haves.clear();
        break;
      case wire::msg_id::request:
        if (!on_request(st, m, why))
          return violation(why);
        break;
      case wire::msg_id::piece: {
        auto len = static_cast<std::uint32_t>(m.payload.size());
        if (!valid_block(st, m, len, why))
          return violation(why);
        if (!settle_request(st, m.index, m.begin)) {
          auto key = block_key(m.index, m.begin);
          if (st.cancelled.erase(key) != 0)
            break; // a late copy of a block already on disk: dropped, not held against the peer
          if (st.forgotten.erase(key) != 0) {
            // A late copy of a choked or timed-out request: written (counted as payload).
            wb.blocks.push_back(block_write{piece_index{m.index}, m.begin, m.payload});
            act.payload_bytes += len;
            break;
          }
          if (++st.unrequested_blocks > max_unrequested_blocks)
            return violation("sent " + std::to_string(st.unrequested_blocks) +
                             " blocks we did not request");
          break;
        }
        wb.blocks.push_back(block_write{piece_index{m.index}, m.begin, m.payload});
        act.payload_bytes += len;
        break;
      }
      case wire::msg_id::reject:
        if (!st.fast)
          return violation("reject without the fast extension");
        if (!valid_block(st, m, m.length, why))
          return violation(why);
        if (!settle_request(st, m.index, m.begin))
          st.forgotten.erase(block_key(m.index, m.begin)); // answered: no copy will come
        act.rejected.push_back(block_ref{piece_index{m.index}, m.begin / block_size});
        break;
      case wire::msg_id::extended: {
        // Only the handshake and the ids we assigned (ut_metadata, ut_pex) mean anything;
        // any other id, or anything from a peer that did not set the bit, is ignored (BEP 10).
        if (!st.extended)
          break;
        if (m.ext_id == our_ut_metadata) {
          if (!on_ut_metadata(self, st, m.payload, why))
            return violation(why);
          break;
        }
        if (m.ext_id == our_ut_pex) {
          if (!on_ut_pex(self, st, m.payload, why))
            return violation(why);
          break;
        }
        if (m.ext_id != ext::handshake_id)
          break;
        auto h = ext::parse_handshake(m.payload);
        if (!h)
          return violation(h.error().message);
        st.log->debug("{}: extended handshake: client \"{}\", reqq {}, {} extensions",
                      st.cfg.remote.to_string(), printable(h->client), h->reqq,
                      h->extensions.size());
        on_extended_handshake(self, st, *h);
        if (h->reqq > 0 && h->reqq != st.peer_reqq) {
          st.peer_reqq = h->reqq;
          act.request_limit = h->reqq; // our pipeline to it must not exceed what it queues
        }
        break;
      }
    }
  }
  st.payload_down += act.payload_bytes;
  if (!wb.blocks.empty()) {
    wb.owner = std::move(batch.buffer);
    wb.received = st.last_receive;
    self->send(st.cfg.storage, std::move(wb));
  }
  if (av.has_bitfield || !av.haves.empty())
    self->send(st.cfg.torrent, std::move(av));
  if (act.choke_changed || act.interest_changed || !act.rejected.empty() || act.payload_bytes > 0 ||
      act.request_limit > 0)
    self->send(st.cfg.torrent, std::move(act));
  pump(self, st);
  settle_overflow(self, st);
  flush(st);
}

connection_events make_events(caf::stateful_actor<peer_state>* self) {
  // The connection calls these on an I/O thread: they only post messages to the actor.
  caf::actor me = caf::actor_cast<caf::actor>(self);
  connection_events ev;
  ev.on_handshake = [me](const wire::handshake& hs) { caf::anon_send(me, conn_handshake{hs}); };
  ev.on_batch = [me](read_batch&& b) { caf::anon_send(me, std::move(b)); };
  ev.on_closed = [me](const std::string& reason, bool protocol_error) {
    caf::anon_send(me, conn_closed{reason, protocol_error});
  };
  return ev;
}

const info_hash& torrent_hash(const peer_config& cfg) {
  return cfg.meta ? cfg.meta->hash : cfg.hash;
}

/// BEP 5: the session runs a DHT node this torrent may use (never a private one's peers).
bool offers_dht(const peer_config& cfg) { return cfg.dht && cfg.dht_port != 0; }

wire::handshake our_handshake(const peer_config& cfg) {
  wire::handshake hs;
  hs.hash = torrent_hash(cfg);
  hs.id = cfg.our_id;
  hs.set_fast(true);
  hs.set_extended(true);
  hs.set_dht(offers_dht(cfg)); // BEP 5
  return hs;
}

/// BEP 5: our DHT node's port, to a peer that runs one too; once, after our pieces (a
/// bitfield must be the first message after the handshakes).
void send_dht_port(peer_state& st) {
  if (st.port_sent || !st.peer_dht || !offers_dht(st.cfg))
    return;
  st.port_sent = true;
  wire::append_port(st.out, st.cfg.dht_port);
}

/// The peer's address as 4 or 16 raw bytes (BEP 10 `yourip`); empty for a host name.
std::string raw_address(const std::string& host) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1)
    return std::string(reinterpret_cast<char*>(buf), 4);
  if (inet_pton(AF_INET6, host.c_str(), buf) == 1) {
    static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(buf, buf + 12, v4_mapped))
      return std::string(reinterpret_cast<char*>(buf + 12), 4);
    return std::string(reinterpret_cast<char*>(buf), 16);
  }
  return {};
}

/// BEP 10: sent right after the BitTorrent handshake, before the bitfield (as Transmission and
/// rtorrent do), so the peer knows our `reqq` before it can request anything.
void send_extended_handshake(peer_state& st) {
  ext::handshake h;
  h.client = client_version;
  h.reqq = static_cast<std::uint32_t>(max_upload_queue);
  h.listen_port = st.cfg.listen_port;
  h.yourip = raw_address(st.cfg.remote.host);
  // BEP 9 and BEP 11: the ids we want them sent with; no PEX for private torrents (BEP 27).
  h.extensions.emplace_back("ut_metadata", our_ut_metadata);
  if (!st.cfg.meta || !st.cfg.meta->is_private)
    h.extensions.emplace_back("ut_pex", our_ut_pex);
  if (st.cfg.meta)
    h.metadata_size = st.cfg.meta->info_bytes.size();
  wire::append_extended(st.out, ext::handshake_id, ext::encode_handshake(h));
  flush(st);
}

bool accept_handshake(caf::stateful_actor<peer_state>* self, peer_state& st, const wire::handshake& hs) {
  if (hs.hash != torrent_hash(st.cfg)) {
    close_peer(self, st, "handshake for another torrent (info-hash " + to_hex(hs.hash) + ")", true);
    return false;
  }
  if (hs.id == st.cfg.our_id) {
    // Trackers list us among the peers they return; not an offence, but never dial it again.
    close_peer(self, st, "connected to ourselves", true, true);
    return false;
  }
  st.active = true;
  st.fast = hs.supports_fast();
  st.extended = hs.supports_extended();
  st.peer_dht = hs.supports_dht();
  st.last_receive = clock_type::now();
  self->send(st.cfg.torrent, peer_connected{st.cfg.slot, hs.id, st.fast});
  if (st.extended)
    send_extended_handshake(st);
  if (!st.cfg.meta) {
    // Awaiting metadata: no pieces will be announced on this connection.
    send_dht_port(st);
    flush(st);
  }
  return true;
}

} // namespace

caf::actor spawn_peer(caf::actor_system& sys, const peer_config& cfg) {
  return sys.spawn([cfg](caf::stateful_actor<peer_state>* self) -> caf::behavior {
    auto& st = self->state;
    st.cfg = cfg;
    st.log = spdlog::get("peer");
    auto events = make_events(self);
    if (cfg.accepted) {
      st.conn = cfg.accepted;
      st.conn->set_torrent_limiters(cfg.download_limiter, cfg.upload_limiter);
      st.conn->start(our_handshake(cfg), std::move(events));
      if (!accept_handshake(self, st, cfg.accepted_handshake))
        return {};
    } else {
      connection_limits limits;
      limits.handshake_timeout_ms = cfg.handshake_timeout_ms;
      st.conn = peer_connection::connect(*cfg.io, cfg.remote.host, cfg.remote.port,
                                         our_handshake(cfg), std::move(events), limits);
      st.conn->set_torrent_limiters(cfg.download_limiter, cfg.upload_limiter);
    }
    self->set_default_handler(caf::drop);
    self->delayed_send(self, std::chrono::seconds(1), tick{});
    return {
      [=](conn_handshake& ev) {
        auto& st = self->state;
        if (st.closed || st.active)
          return;
        accept_handshake(self, st, ev.hs);
      },
      [=](read_batch& batch) { handle_batch(self, self->state, batch); },
      [=](conn_closed& ev) { close_peer(self, self->state, ev.reason, ev.protocol_error); },
      [=](request_blocks& req) {
        auto& st = self->state;
        for (auto b : req.blocks) {
          auto len = std::min(block_size, st.cfg.meta->piece_size(b.piece) - b.block * block_size);
          wire::append_request(st.out, wire::msg_id::request, b.piece.value, b.block * block_size,
                               len);
          ++*st.requested.try_emplace(block_key(b.piece.value, b.block * block_size), 0).first;
        }
        flush(st);
      },
      [=](cancel_blocks& req) {
        auto& st = self->state;
        for (auto b : req.blocks) {
          auto len = std::min(block_size, st.cfg.meta->piece_size(b.piece) - b.block * block_size);
          wire::append_request(st.out, wire::msg_id::cancel, b.piece.value, b.block * block_size,
                               len);
          if (settle_request(st, b.piece.value, b.block * block_size))
            remember(req.timed_out ? st.forgotten : st.cancelled,
                     block_key(b.piece.value, b.block * block_size));
        }
        flush(st);
      },
      [=](set_interested msg) {
        auto& st = self->state;
        if (st.am_interested == msg.interested)
          return;
        st.am_interested = msg.interested;
        wire::append_simple(st.out, msg.interested ? wire::msg_id::interested
                                                   : wire::msg_id::not_interested);
        flush(st);
      },
      [=](disconnect_peer& msg) { close_peer(self, self->state, msg.reason, false); },
      // BEP 9: the torrent fetches its metadata through us.
      [=](const request_metadata& rm) {
        auto& st = self->state;
        if (st.closed || st.peer_ut_metadata == 0)
          return;
        wire::append_extended(st.out, st.peer_ut_metadata, ut_metadata::encode_request(rm.piece));
        flush(st);
      },
      [=](const pex_snapshot& snap) { send_pex(self->state, snap); }, // BEP 11
      [=](our_pieces& msg) {
        auto& st = self->state;
        if (msg.full) {
          st.our_pieces = std::move(msg.bits);
          if (!st.sent_pieces) {
            st.sent_pieces = true;
            auto have = st.our_pieces.count();
            if (st.fast && have == st.piece_count())
              wire::append_simple(st.out, wire::msg_id::have_all); // BEP 6
            else if (st.fast && have == 0)
              wire::append_simple(st.out, wire::msg_id::have_none); // BEP 6
            else if (have > 0)
              wire::append_bitfield(st.out, st.our_pieces.to_wire());
            send_dht_port(st);
          }
        } else {
          if (st.our_pieces.size() == 0)
            st.our_pieces = bitfield(st.piece_count());
          for (auto p : msg.haves) {
            st.our_pieces.set(p);
            wire::append_have(st.out, p.value);
          }
        }
        flush(st);
      },
      [=](set_choke msg) {
        auto& st = self->state;
        if (st.am_choking == msg.choke)
          return;
        st.am_choking = msg.choke;
        if (!msg.choke)
          st.refused_requests = 0;
        else
          st.owe_choke = false; // this CHOKE discards the dropped requests too
        if (st.queue_choked)
          return; // the peer sees a CHOKE already; the pause's end unchokes it if still wanted
        wire::append_simple(st.out, msg.choke ? wire::msg_id::choke : wire::msg_id::unchoke);
        if (msg.choke)
          drop_queue(st); // BEP 6: rejected explicitly; without it choking discards them
        flush(st);
      },
      [=](end_queue_choke) {
        auto& st = self->state;
        st.queue_choked = false;
        if (st.closed || st.am_choking)
          return;
        wire::append_simple(st.out, wire::msg_id::unchoke);
        pump(self, st);
        flush(st);
      },
      [=](pump_uploads) {
        self->state.pump_scheduled = false;
        pump(self, self->state);
        flush(self->state);
      },
      [=](tick) {
        auto& st = self->state;
        if (st.closed)
          return;
        auto now = clock_type::now();
        if (!st.active) {
          // connect and handshake have their own timeout in the connection
        } else if (now - st.last_receive > std::chrono::seconds(st.cfg.inactivity_timeout_s)) {
          // Silent peers, and slow ones that never finish a message, end here. Not banned: a
          // peer may have been idle for an honest reason.
          auto why = "no complete message in " + std::to_string(st.cfg.inactivity_timeout_s) + " s";
          st.log->info("{}: disconnected: {}", st.cfg.remote.to_string(), why);
          close_peer(self, st, why, false);
          return;
        } else if (now - st.last_send > std::chrono::seconds(60)) {
          wire::append_keep_alive(st.out);
          flush(st);
        }
        if (st.up_unreported > 0) {
          peer_activity act;
          act.slot = st.cfg.slot;
          act.payload_up = st.up_unreported;
          st.up_unreported = 0;
          self->send(st.cfg.torrent, std::move(act));
        }
        self->delayed_send(self, std::chrono::seconds(1), tick{});
      },
    };
  });
}

} // namespace actorrent
