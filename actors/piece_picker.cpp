#include "actors/piece_picker.hpp"

#include <algorithm>
#include <cassert>

namespace actorrent {

piece_picker::piece_picker(std::uint32_t piece_count, std::uint32_t piece_length,
                           std::uint64_t total_size, std::uint64_t shuffle_seed)
  : piece_count_(piece_count), piece_length_(piece_length), total_size_(total_size),
    blocks_per_piece_((piece_length + block_size - 1) / block_size),
    avail_(piece_count, shuffle_seed), have_(piece_count),
    priority_(piece_count, file_priority::normal), wanted_left_(piece_count),
    wanted_bytes_(total_size), downloading_index_(piece_count, -1) {
  assert(piece_length > 0);
}

void piece_picker::set_priorities(const std::vector<file_priority>& pieces) {
  assert(pieces.size() == piece_count_);
  for (std::uint32_t i = 0; i < piece_count_ && i < pieces.size(); ++i) {
    piece_index p{i};
    const auto old = priority_[i];
    const auto now = pieces[i];
    if (old == now)
      continue;
    const bool pickable = !avail_.parked(p);
    high_pickable_ += pickable && now == file_priority::high;
    high_pickable_ -= pickable && old == file_priority::high;
    priority_[i] = now;
    const bool held = have_.test(p);
    if (old == file_priority::skip) {
      wanted_bytes_ += piece_size(p);
      wanted_verified_bytes_ += held ? piece_size(p) : 0;
    }
    if (now == file_priority::skip) {
      wanted_bytes_ -= piece_size(p);
      wanted_verified_bytes_ -= held ? piece_size(p) : 0;
    }
    if (held)
      continue;
    wanted_left_ += (now != file_priority::skip) - (old != file_priority::skip);
    high_left_ += (now == file_priority::high) - (old == file_priority::high);
    // A started piece is finished whatever it became: its blocks are on their way.
    if (find_downloading(p))
      continue;
    if (now == file_priority::skip)
      park(p);
    else if (old == file_priority::skip)
      unpark(p);
  }
  sequential_cursor_ = 0; // pieces before it may be wanted now
}

void piece_picker::park(piece_index p) {
  if (!avail_.parked(p) && priority_[p.value] == file_priority::high)
    --high_pickable_;
  avail_.park(p);
}

void piece_picker::unpark(piece_index p) {
  if (avail_.parked(p) && priority_[p.value] == file_priority::high)
    ++high_pickable_;
  avail_.unpark(p);
}

void piece_picker::count_held(piece_index p) {
  have_.set(p);
  ++have_count_;
  verified_bytes_ += piece_size(p);
  if (priority_[p.value] != file_priority::skip) {
    --wanted_left_;
    wanted_verified_bytes_ += piece_size(p);
  }
  if (priority_[p.value] == file_priority::high)
    --high_left_;
}

std::uint32_t piece_picker::piece_size(piece_index p) const noexcept {
  if (p.value + 1 < piece_count_)
    return piece_length_;
  auto rest = total_size_ - std::uint64_t{piece_length_} * (piece_count_ - 1);
  return static_cast<std::uint32_t>(rest);
}

std::uint32_t piece_picker::blocks_in_piece(piece_index p) const noexcept {
  return (piece_size(p) + block_size - 1) / block_size;
}

std::uint32_t piece_picker::block_length(block_ref b) const noexcept {
  auto size = piece_size(b.piece);
  auto begin = b.block * block_size;
  return std::min(block_size, size - begin);
}

void piece_picker::add_peer_pieces(const bitfield& has) {
  has.for_each_set([&](piece_index p) { avail_.increment(p); });
  avail_updates_ += has.count();
}

void piece_picker::remove_peer_pieces(const bitfield& has) {
  has.for_each_set([&](piece_index p) { avail_.decrement(p); });
  avail_updates_ += has.count();
}

void piece_picker::set_have(piece_index p) {
  if (have_.test(p))
    return;
  if (find_downloading(p)) {
    on_piece_verified(p);
    return;
  }
  count_held(p);
  park(p);
}

bool piece_picker::is_interesting(const bitfield* has) const {
  if (complete())
    return false;
  if (!has)
    return true;
  // Scans words, not pieces: a piece we lack and the peer has.
  bool found = false;
  has->for_each_set([&](piece_index p) {
    if (!found && wanted(p))
      found = true;
  });
  return found;
}

piece_picker::downloading_piece* piece_picker::find_downloading(piece_index p) {
  auto i = downloading_index_[p.value];
  return i < 0 ? nullptr : &downloading_[static_cast<std::size_t>(i)];
}

piece_picker::downloading_piece& piece_picker::start_piece(piece_index p, peer_slot) {
  assert(downloading_index_[p.value] < 0);
  park(p);
  downloading_piece d;
  d.piece = p;
  d.blocks.resize(blocks_in_piece(p));
  d.free_blocks = static_cast<std::uint32_t>(d.blocks.size());
  downloading_index_[p.value] = static_cast<std::int32_t>(downloading_.size());
  downloading_.push_back(std::move(d));
  return downloading_.back();
}

void piece_picker::finish_downloading(piece_index p) {
  auto i = downloading_index_[p.value];
  if (i < 0)
    return;
  auto idx = static_cast<std::size_t>(i);
  if (idx + 1 != downloading_.size()) {
    downloading_[idx] = std::move(downloading_.back());
    downloading_index_[downloading_[idx].piece.value] = i;
  }
  downloading_.pop_back();
  downloading_index_[p.value] = -1;
}

std::size_t piece_picker::take_free_blocks(downloading_piece& d, peer_slot peer,
                                           std::size_t max_blocks, std::vector<block_ref>& out) {
  if (d.on_parole && d.parole_peer != no_peer && d.parole_peer != peer &&
      d.free_blocks + d.received_blocks == d.blocks.size()) {
    // The peer on parole has nothing of the piece in flight: it choked us, left or stopped
    // asking, and the picker is not told which. Waiting for it could stall the piece for good,
    // and nobody else may add to what it sent: drop that and let this peer take the piece over.
    if (d.received_blocks > 0) {
      dirty_total_ -= dirty_bytes(d.piece);
      std::uint32_t first = global_block(block_ref{d.piece, 0});
      roaring_bitmap_remove_range(&received_.roaring, first,
                                  std::uint64_t{first} + d.blocks.size());
      for (std::uint32_t i = 0; i < d.blocks.size(); ++i) {
        auto& b = d.blocks[i];
        if (b.state == block_state::received)
          taken_back_.push_back(stored_block{block_ref{d.piece, i}, b.copy});
        b = block_info{};
      }
      d.free_blocks = static_cast<std::uint32_t>(d.blocks.size());
      d.received_blocks = 0;
    }
    d.parole_peer = no_peer;
  }
  if (d.on_parole) {
    if (d.parole_peer == no_peer)
      d.parole_peer = peer;
    else if (d.parole_peer != peer)
      return 0;
  }
  std::size_t n = 0;
  for (std::uint32_t i = 0; i < d.blocks.size() && n < max_blocks && d.free_blocks > 0; ++i) {
    auto& b = d.blocks[i];
    if (b.state != block_state::free)
      continue;
    b.state = block_state::requested;
    --d.free_blocks;
    out.push_back(block_ref{d.piece, i});
    ++n;
  }
  return n;
}

std::size_t piece_picker::pick(peer_slot peer, const bitfield* has, std::size_t max_blocks,
                               const request_record& requests, std::vector<block_ref>& out,
                               bool seed) {
  seed = seed || has == nullptr;
  std::size_t n = 0;
  // 1. Finish what is started.
  for (std::size_t i = 0; i < downloading_.size() && n < max_blocks; ++i) {
    auto& d = downloading_[i];
    if (d.free_blocks == 0 || (has && !has->test(d.piece)))
      continue;
    n += take_free_blocks(d, peer, max_blocks - n, out);
  }
  if (n >= max_blocks)
    return n;
  // 2. Start new pieces, rarest first. Chosen first, started after: starting one re-orders the
  // buckets being walked.
  // Skip pieces are parked, so no walk sees them. High pieces go first: while any is
  // pickable, a pass for them alone (it ends once it has seen them all), then the others.
  std::vector<piece_index> chosen;
  std::size_t planned = n;
  const bool split = high_pickable_ > 0;
  bool high_pass = split;
  std::uint32_t high_seen = 0;
  auto consider = [&](piece_index p) {
    if (split && (priority_[p.value] == file_priority::high) != high_pass)
      return true;
    const bool last_high = high_pass && ++high_seen == high_pickable_;
    if (has && !has->test(p))
      return !last_high;
    chosen.push_back(p);
    planned += blocks_in_piece(p);
    return planned < max_blocks && !last_high;
  };
  auto walk = [&] {
    if (sequential_) {
      // Streaming: the lowest pieces first. The cursor skips the held prefix for good.
      while (sequential_cursor_ < piece_count_ &&
             !wanted(piece_index{sequential_cursor_}))
        ++sequential_cursor_;
      for (std::uint32_t i = sequential_cursor_; i < piece_count_; ++i)
        if (!avail_.parked(piece_index{i}) && !consider(piece_index{i}))
          return;
    } else if (!recompute_) {
      avail_.for_each_rarest(seed, consider);
    } else {
      scratch_order_.clear();
      for (std::uint32_t i = 0; i < piece_count_; ++i) {
        piece_index p{i};
        auto c = avail_.count(p) - avail_.seeds();
        if (avail_.parked(p) || (!seed && c == 0))
          continue;
        scratch_order_.emplace_back(c, i);
      }
      std::sort(scratch_order_.begin(), scratch_order_.end());
      for (auto [c, i] : scratch_order_)
        if (!consider(piece_index{i}))
          break;
    }
  };
  walk();
  if (high_pass && planned < max_blocks) {
    high_pass = false;
    walk();
  }
  for (auto p : chosen) {
    auto& d = start_piece(p, peer);
    n += take_free_blocks(d, peer, max_blocks - n, out);
  }
  if (n >= max_blocks || avail_.any_pickable_available())
    return n;
  // 3. End-game: nothing left to start anywhere; ask a second peer for blocks in flight.
  for (std::size_t i = 0; i < downloading_.size() && n < max_blocks; ++i) {
    auto& d = downloading_[i];
    if (has && !has->test(d.piece))
      continue;
    if (d.on_parole && d.parole_peer != peer)
      continue;
    for (std::uint32_t j = 0; j < d.blocks.size() && n < max_blocks; ++j) {
      if (d.blocks[j].state != block_state::requested)
        continue;
      block_ref b{d.piece, j};
      // Not recorded yet: picked for this peer earlier in this call.
      auto who = requests.requesters(b);
      if (who.empty() || who.full() || who.contains(peer))
        continue;
      out.push_back(b);
      ++n;
    }
  }
  return n;
}

piece_picker::receive_result piece_picker::on_block_received(block_ref b, std::uint32_t copy,
                                                             peer_slot sender) {
  assert(copy != 0);
  if (have_.test(b.piece) || b.block >= blocks_in_piece(b.piece))
    return receive_result::duplicate;
  auto* d = find_downloading(b.piece);
  if (!d) {
    // A late copy (its request ended by a choke or a timeout) of a piece that went back to
    // pickable meanwhile: storage holds it, so the piece starts again from it instead of
    // fetching it twice. A piece that is not wanted (skip, or abandoned by the piece filter)
    // stays as it is.
    if (!wanted(b.piece) || avail_.parked(b.piece))
      return receive_result::duplicate;
    d = &start_piece(b.piece, no_peer);
  }
  auto& bi = d->blocks[b.block];
  if (d->on_parole && sender != no_peer && sender != d->parole_peer) {
    // On parole a piece is made of its one peer's blocks (so a second failure names it): a late
    // copy from anyone else replaced what storage held of the block, so storage drops it and
    // the block is free again (unless the parole peer's copy is still on its way).
    taken_back_.push_back(stored_block{b, copy});
    if (bi.state == block_state::received) {
      bi = block_info{};
      ++d->free_blocks;
      --d->received_blocks;
      received_.remove(global_block(b));
      dirty_total_ -= block_length(b);
    }
    return receive_result::refused;
  }
  if (bi.state == block_state::received) {
    bi.copy = copy; // storage kept this copy: the last one wins in both records
    return receive_result::duplicate;
  }
  if (bi.state == block_state::free)
    --d->free_blocks;
  bi.state = block_state::received;
  bi.copy = copy;
  ++d->received_blocks;
  received_.add(global_block(b));
  dirty_total_ += block_length(b);
  return d->received_blocks == d->blocks.size() ? receive_result::piece_complete
                                                : receive_result::fresh;
}

void piece_picker::on_request_dropped(block_ref b, const request_record& requests) {
  auto* d = find_downloading(b.piece);
  if (!d || b.block >= d->blocks.size())
    return;
  auto& bi = d->blocks[b.block];
  // Still requested from another peer (end-game): it stays requested.
  if (bi.state != block_state::requested || !requests.requesters(b).empty())
    return;
  bi.state = block_state::free;
  ++d->free_blocks;
  if (d->free_blocks == d->blocks.size()) {
    // Nothing of it is received or in flight any more.
    if (d->on_parole) {
      d->parole_peer = no_peer; // the peer on parole left; the next one takes over
    } else {
      auto p = d->piece;
      finish_downloading(p);
      if (priority_[p.value] != file_priority::skip)
        unpark(p);
    }
  }
}

void piece_picker::abandon(piece_index p) {
  auto* d = find_downloading(p);
  if (!d)
    return;
  for (std::uint32_t i = 0; i < d->blocks.size(); ++i)
    if (d->blocks[i].state == block_state::received)
      taken_back_.push_back(stored_block{block_ref{p, i}, d->blocks[i].copy});
  dirty_total_ -= dirty_bytes(p);
  std::uint32_t first = global_block(block_ref{p, 0});
  roaring_bitmap_remove_range(&received_.roaring, first, std::uint64_t{first} + blocks_in_piece(p));
  finish_downloading(p);
  // Wanted again meanwhile (the caller abandons skip pieces only): pickable from scratch.
  if (priority_[p.value] != file_priority::skip)
    unpark(p);
}

std::vector<piece_index> piece_picker::downloading_pieces() const {
  std::vector<piece_index> out;
  out.reserve(downloading_.size());
  for (auto& d : downloading_)
    out.push_back(d.piece);
  return out;
}

std::uint64_t piece_picker::dirty_bytes(piece_index p) const {
  std::uint32_t first = global_block(block_ref{p, 0});
  std::uint32_t n = blocks_in_piece(p);
  // Seed §4: one range-cardinality call over the roaring bitmap instead of a loop per block.
  std::uint64_t blocks =
    roaring_bitmap_range_cardinality(&received_.roaring, first, std::uint64_t{first} + n);
  std::uint64_t bytes = blocks * block_size;
  block_ref last{p, n - 1};
  if (blocks > 0 && received_.contains(global_block(last)))
    bytes -= block_size - block_length(last);
  return bytes;
}

void piece_picker::on_piece_verified(piece_index p) {
  if (have_.test(p))
    return;
  auto dirty = dirty_bytes(p);
  dirty_total_ -= dirty;
  std::uint32_t first = global_block(block_ref{p, 0});
  roaring_bitmap_remove_range(&received_.roaring, first, std::uint64_t{first} + blocks_in_piece(p));
  finish_downloading(p);
  park(p);
  count_held(p);
}

void piece_picker::on_piece_failed(piece_index p) {
  if (have_.test(p))
    return;
  dirty_total_ -= dirty_bytes(p);
  std::uint32_t first = global_block(block_ref{p, 0});
  roaring_bitmap_remove_range(&received_.roaring, first, std::uint64_t{first} + blocks_in_piece(p));
  auto* d = find_downloading(p);
  if (priority_[p.value] == file_priority::skip) {
    // Deselected meanwhile: not fetched again (it stays parked).
    finish_downloading(p);
    return;
  }
  if (!d) {
    // Completed by blocks we had not asked for: make sure it is downloaded again.
    d = &start_piece(p, no_peer);
  }
  for (auto& b : d->blocks) {
    if (b.state == block_state::received) {
      b = block_info{};
      ++d->free_blocks;
    }
  }
  d->received_blocks = 0;
  d->on_parole = true;
  d->parole_peer = no_peer;
}

bool piece_picker::consistent(const request_record* requests) const {
  if (!avail_.consistent())
    return false;
  std::uint64_t dirty = 0;
  for (std::size_t i = 0; i < downloading_.size(); ++i) {
    const auto& d = downloading_[i];
    if (downloading_index_[d.piece.value] != static_cast<std::int32_t>(i))
      return false;
    if (have_.test(d.piece) || !avail_.parked(d.piece))
      return false;
    std::uint32_t free = 0, received = 0;
    for (std::uint32_t j = 0; j < d.blocks.size(); ++j) {
      const auto& b = d.blocks[j];
      free += b.state == block_state::free;
      received += b.state == block_state::received;
      if (requests && (b.state == block_state::requested) ==
                        requests->requesters(block_ref{d.piece, j}).empty())
        return false;
    }
    if (free != d.free_blocks || received != d.received_blocks)
      return false;
    dirty += dirty_bytes(d.piece);
  }
  std::uint32_t wanted = 0, high = 0, high_pickable = 0;
  std::uint64_t wanted_bytes = 0, wanted_verified = 0;
  for (std::uint32_t i = 0; i < piece_count_; ++i) {
    piece_index p{i};
    wanted += this->wanted(p);
    if (priority_[i] != file_priority::skip) {
      wanted_bytes += piece_size(p);
      wanted_verified += have_.test(p) ? piece_size(p) : 0;
    }
    high += !have_.test(p) && priority_[i] == file_priority::high;
    high_pickable += !avail_.parked(p) && priority_[i] == file_priority::high;
    // A skip piece is never pickable (unless started before it was deselected: then parked).
    if (priority_[i] == file_priority::skip && !avail_.parked(p))
      return false;
  }
  return dirty == dirty_total_ && have_.count() == have_count_ && wanted == wanted_left_ &&
         high == high_left_ && high_pickable == high_pickable_ &&
         wanted_bytes == wanted_bytes_ &&
         wanted_verified == wanted_verified_bytes_;
}

} // namespace actorrent
