// Request state of one torrent: which pieces we have, which blocks are free, requested or
// received, and the choice of what to request next (rarest first, started pieces first,
// end-game duplicates at the end). Who a block is requested from is the torrent's
// request_record's to know, the one record of requests in flight: the picker is handed it
// where it needs it (end-game, dropped requests). Every event updates only the pieces and
// blocks it touches; nothing is recomputed from scratch. Owned by the torrent actor; CAF-free.
//
// Piece priorities (from the file selection): skip pieces stay parked (never picked, not
// needed for complete()); high pieces are started before normal ones; in sequential mode new
// pieces are started in index order instead of rarest first (streaming).
//
// A piece moves through:
//
//   pickable --pick, or a late block--> downloading --all blocks received--> awaiting hash
//      ^                                  |  ^                                  |      |
//      +---------all blocks dropped-------+  +------ hash failed (parole) ------+   ok: have
#pragma once

#include <cstdint>
#include <vector>

#include <roaring/roaring.hh>

#include "actors/availability.hpp"
#include "actors/bitfield.hpp"
#include "actors/request_record.hpp"
#include "protocol/types.hpp"
#include "storage/piece_writer.hpp"

namespace actorrent {

class piece_picker {
public:
  piece_picker(std::uint32_t piece_count, std::uint32_t piece_length, std::uint64_t total_size,
               std::uint64_t shuffle_seed = 0);

  // -- geometry ----------------------------------------------------------------------------
  std::uint32_t piece_count() const noexcept { return piece_count_; }
  std::uint32_t piece_size(piece_index p) const noexcept;
  std::uint32_t blocks_in_piece(piece_index p) const noexcept;
  std::uint32_t block_length(block_ref b) const noexcept;

  // -- availability (batched by the caller: one call per bitfield or HAVE batch) ------------
  availability& avail() noexcept { return avail_; }
  const availability& avail() const noexcept { return avail_; }
  void add_peer_pieces(const bitfield& has);
  void remove_peer_pieces(const bitfield& has);
  /// Counts availability changes, for the metrics and the HAVE-storm benchmark.
  std::uint64_t availability_updates() const noexcept { return avail_updates_; }
  void count_availability_update(std::uint64_t n = 1) noexcept { avail_updates_ += n; }

  // -- what we have -------------------------------------------------------------------------
  bool have(piece_index p) const noexcept { return have_.test(p); }
  const bitfield& have_pieces() const noexcept { return have_; }
  std::uint32_t have_count() const noexcept { return have_count_; }
  /// Every wanted (not skip) piece is verified.
  bool complete() const noexcept { return wanted_left_ == 0; }
  /// Wanted pieces not verified yet.
  std::uint32_t wanted_left() const noexcept { return wanted_left_; }
  /// Not held and not skip: a piece a peer could give us that we want.
  bool wanted(piece_index p) const noexcept {
    return !have_.test(p) && priority_[p.value] != file_priority::skip;
  }
  /// Bytes of the wanted pieces, held or not (what a selective download fetches in all).
  std::uint64_t wanted_bytes() const noexcept { return wanted_bytes_; }
  /// Bytes of the wanted pieces held.
  std::uint64_t wanted_verified_bytes() const noexcept { return wanted_verified_bytes_; }

  // -- priorities (file selection) -----------------------------------------------------------
  /// One priority per piece (size piece_count()). A piece set to skip while it is downloading
  /// is finished (its blocks are on their way); one set from skip to wanted becomes pickable.
  void set_priorities(const std::vector<file_priority>& pieces);
  file_priority priority(piece_index p) const noexcept { return priority_[p.value]; }
  /// Start new pieces in index order (streaming) instead of rarest first.
  void set_sequential(bool on) noexcept { sequential_ = on; }
  bool sequential() const noexcept { return sequential_; }
  /// Marks a piece as held without downloading it (e.g. from resume data).
  void set_have(piece_index p);
  /// True when `has` (nullptr: a seed) holds a piece we still want.
  bool is_interesting(const bitfield* has) const;

  // -- requests -----------------------------------------------------------------------------
  /// Appends up to `max_blocks` blocks for `peer` to `out` and marks them requested; the
  /// caller records them in `requests` (request_record::add) before anything else touches the
  /// picker. `has` is the peer's bitfield (nullptr: it has every piece). Order: blocks of pieces
  /// already downloading, then new pieces rarest first, then (end-game, when nothing is left
  /// to start) blocks requested from one other peer but not yet received. `seed`: the peer has
  /// every piece, and `has` (if any) only narrows what may be asked of it.
  std::size_t pick(peer_slot peer, const bitfield* has, std::size_t max_blocks,
                   const request_record& requests, std::vector<block_ref>& out,
                   bool seed = false);
  /// Benchmark switch: pick() re-derives the rarest-first order of new pieces by scanning and
  /// sorting every piece, as a picker without incremental state would, instead of walking the
  /// availability buckets. Same choices up to ties; O(P log P) per call instead of O(picked).
  void recompute_from_scratch(bool on) noexcept { recompute_ = on; }

  enum class receive_result : std::uint8_t {
    fresh,          // first copy of this block; counts as downloaded
    duplicate,      // another copy of a block received before (it replaces that copy on disk:
                    // the last copy wins), or a block of a piece already held or not wanted
    piece_complete, // fresh, and it was the last block of its piece: hashing is next
    refused,        // a late copy from a peer other than the one its piece is on parole with:
                    // in taken_back() (storage discards it); the block is free again (or
                    // still requested from the parole peer)
  };
  /// Records that copy `copy` (storage's number for it, never 0) of block `b`, sent by
  /// `sender` (no_peer: not known), is on disk. The block need not be requested: a late copy
  /// of a request that a choke or a timeout ended counts like any other, and a piece that went
  /// back to pickable meanwhile is started again from it. The requests of `b` still in the
  /// request record are the caller's to settle (the sender's) and cancel (the others').
  receive_result on_block_received(block_ref b, std::uint32_t copy, peer_slot sender = no_peer);

  /// A request for `b` will not be answered (choke, reject, disconnect, timeout) and is gone
  /// from `requests` already: the block is free again unless another peer still has it.
  void on_request_dropped(block_ref b, const request_record& requests);

  /// The hash of a fully received piece matched.
  void on_piece_verified(piece_index p);
  /// It did not: the piece starts over, and the next attempt is assigned to a single peer
  /// (parole), so that a liar is identified even without smart ban's block comparison.
  void on_piece_failed(piece_index p);

  /// [cluster] Drops a started piece that is no longer wanted (it left the torrent's piece
  /// filter), instead of finishing it as a deselected file's piece is: its received copies go
  /// to taken_back() (storage discards them too), and the caller has already taken its blocks'
  /// requests out of the request record (and cancelled them). It stays parked; it counts as held
  /// only if a verdict on it (its hash checked) still arrives.
  void abandon(piece_index p);
  /// The pieces started and not yet held, in no particular order.
  std::vector<piece_index> downloading_pieces() const;

  /// Received block copies the picker dropped since the last call (a piece on parole taken over
  /// from a peer that left it unfinished, a late copy refused on parole): storage must discard
  /// them too. Drained by the caller.
  std::vector<stored_block>& taken_back() noexcept { return taken_back_; }

  // -- progress -----------------------------------------------------------------------------
  /// Bytes received but not yet verified, from roaring range cardinality over received blocks.
  std::uint64_t dirty_bytes(piece_index p) const;
  std::uint64_t dirty_bytes() const noexcept { return dirty_total_; }
  std::uint64_t verified_bytes() const noexcept { return verified_bytes_; }
  std::size_t downloading_count() const noexcept { return downloading_.size(); }
  bool end_game() const noexcept { return avail_.pickable() == 0; }

  /// Checks every invariant (tests and debug builds); with `requests`, also that exactly the
  /// blocks in the requested state have requests in flight.
  bool consistent(const request_record* requests = nullptr) const;

private:
  enum class block_state : std::uint8_t { free, requested, received };

  struct block_info {
    block_state state = block_state::free;
    std::uint32_t copy = 0; // storage's number of the copy on disk
  };

  struct downloading_piece {
    piece_index piece;
    std::uint32_t free_blocks = 0;
    std::uint32_t received_blocks = 0;
    peer_slot parole_peer = no_peer; // set after a hash failure: only this peer may fill it
    bool on_parole = false;
    std::vector<block_info> blocks;
  };

  downloading_piece* find_downloading(piece_index p);
  void count_held(piece_index p); // p is held from now on (verified or trusted)
  // The availability's park / unpark, keeping count of the high pieces left pickable.
  void park(piece_index p);
  void unpark(piece_index p);
  downloading_piece& start_piece(piece_index p, peer_slot peer);
  void finish_downloading(piece_index p); // remove from downloading_, without unparking
  std::size_t take_free_blocks(downloading_piece& d, peer_slot peer, std::size_t max_blocks,
                               std::vector<block_ref>& out);
  std::uint32_t global_block(block_ref b) const noexcept {
    return b.piece.value * blocks_per_piece_ + b.block;
  }

  std::uint32_t piece_count_;
  std::uint32_t piece_length_;
  std::uint64_t total_size_;
  std::uint32_t blocks_per_piece_;
  availability avail_;
  bitfield have_;
  std::uint32_t have_count_ = 0;
  std::vector<file_priority> priority_;   // per piece; all normal unless set_priorities
  std::uint32_t wanted_left_ = 0;         // wanted pieces not held
  std::uint32_t high_left_ = 0;           // high pieces not held
  std::uint32_t high_pickable_ = 0;       // high pieces not parked
  std::uint64_t wanted_bytes_ = 0;
  std::uint64_t wanted_verified_bytes_ = 0;
  bool sequential_ = false;
  std::uint32_t sequential_cursor_ = 0;   // every piece below it is held or skip
  std::uint64_t verified_bytes_ = 0;
  std::uint64_t dirty_total_ = 0;
  std::uint64_t avail_updates_ = 0;
  bool recompute_ = false;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> scratch_order_; // (count, piece)
  std::vector<stored_block> taken_back_;
  Roaring received_;                       // global block numbers received, not yet verified
  std::vector<downloading_piece> downloading_;
  std::vector<std::int32_t> downloading_index_; // piece -> index in downloading_, or -1
};

} // namespace actorrent
