#include "storage/piece_writer.hpp"

#include <cassert>

#include "protocol/metainfo.hpp"

namespace actorrent {

piece_writer::piece_writer(file_store& store, const metainfo& meta) : store_(store), meta_(meta) {}

piece_writer::~piece_writer() = default;

piece_writer::piece_progress& piece_writer::progress(piece_index p) {
  auto& slot = pieces_[p.value];
  if (!slot) {
    if (spare_.empty()) {
      slot = std::make_unique<piece_progress>();
    } else {
      slot = std::move(spare_.back());
      spare_.pop_back();
    }
    auto n = (meta_.piece_size(p) + block_size - 1) / block_size;
    slot->blocks.assign(n, block_copy{});
    slot->written = 0;
    slot->queued = false;
    slot->from_disk = false;
    slot->next = 0;
    slot->hash.reset();
  }
  return *slot;
}

void piece_writer::release(piece_index p) {
  auto it = pieces_.find(p.value);
  if (it == pieces_.end())
    return;
  if (spare_.size() < 64)
    spare_.push_back(std::move(it->second));
  pieces_.erase(it);
}

std::uint64_t piece_writer::written_blocks() const noexcept {
  std::uint64_t n = 0;
  for (auto& [p, pp] : pieces_)
    n += pp->written;
  return n;
}

status piece_writer::write(peer_slot sender, const std::vector<block_write>& blocks,
                           std::vector<stored_block>& stored, std::vector<piece_index>& complete) {
  auto first_stored = stored.size();
  spans_.clear();
  span_sources_.clear();
  for (const auto& b : blocks) {
    block_ref ref{b.piece, b.begin / block_size};
    if (b.piece.value >= meta_.piece_count() || verified(b.piece)) {
      stored.push_back(stored_block{ref, 0}); // never overwrite verified data
      continue;
    }
    if (fence_ && !fence_->allows(b.piece.value)) {
      // The lease ran out or the piece is another worker's now: nothing reaches the file.
      stored.push_back(stored_block{ref, 0, true});
      ++fenced_blocks_;
      continue;
    }
    auto& pp = progress(b.piece);
    assert(ref.block < pp.blocks.size());
    auto& bc = pp.blocks[ref.block];
    if (bc.copy == 0)
      ++pp.written;
    else if (b.begin < pp.next)
      pp.from_disk = true; // the copy being replaced was hashed already
    bc.sender = sender;
    bc.copy = ++next_copy_ == 0 ? ++next_copy_ : next_copy_;
    stored.push_back(stored_block{ref, bc.copy});
    spans_.push_back(file_store::span{b.piece, b.begin, b.bytes});
    span_sources_.push_back(span_source{&pp, bc.copy});
  }
  if (spans_.empty())
    return {};
  if (auto st = store_.write_many(spans_); !st) {
    for (auto i = first_stored; i < stored.size(); ++i)
      stored[i].copy = 0;
    spans_.clear();
    return st;
  }
  // Feed the running hashes, in order, with the copies that ended on disk only: of two copies
  // of one block in this read, the earlier one was overwritten.
  for (std::size_t i = 0; i < spans_.size(); ++i) {
    const auto& sp = spans_[i];
    auto& pp = *span_sources_[i].piece; // no second lookup per block
    if (pp.blocks[sp.offset / block_size].copy != span_sources_[i].copy)
      continue;
    if (!pp.from_disk && sp.offset == pp.next) {
      pp.hash.update(sp.data);
      pp.next += static_cast<std::uint32_t>(sp.data.size());
    }
    if (!pp.queued && pp.written == pp.blocks.size()) {
      pp.queued = true;
      complete.push_back(sp.piece);
    }
  }
  spans_.clear(); // the views point into a receive buffer about to be released
  return {};
}

void piece_writer::discard(const std::vector<stored_block>& blocks) {
  for (const auto& sb : blocks) {
    auto it = pieces_.find(sb.block.piece.value);
    if (it == pieces_.end() || sb.copy == 0)
      continue; // verified or failed since: the copy is gone anyway
    auto& pp = *it->second;
    if (sb.block.block >= pp.blocks.size() || pp.queued)
      continue; // complete: the verdict is on its way and decides
    auto& bc = pp.blocks[sb.block.block];
    if (bc.copy != sb.copy)
      continue; // a newer copy replaced it: that one stays
    bc = block_copy{};
    --pp.written;
    if (sb.block.block * block_size < pp.next)
      pp.from_disk = true;
  }
}

std::vector<block_digest> piece_writer::block_digests(piece_index p, const char* bytes,
                                                      bool with_senders,
                                                      const piece_progress* pp) {
  auto size = meta_.piece_size(p);
  std::vector<block_digest> out;
  for (std::uint32_t begin = 0, i = 0; begin < size; begin += block_size, ++i) {
    auto len = std::min(block_size, size - begin);
    block_digest d;
    d.block = i;
    d.sender = with_senders && pp ? pp->blocks[i].sender : no_peer;
    d.digest = sha1(std::string_view(bytes + begin, len));
    out.push_back(d);
  }
  return out;
}

result<piece_verdict> piece_writer::check(piece_index p) {
  auto it = pieces_.find(p.value);
  if (it == pieces_.end())
    return error{errc::invalid_argument, "piece " + std::to_string(p.value) + " is not complete"};
  auto& pp = *it->second;
  auto size = meta_.piece_size(p);
  sha1_digest digest{};
  bool whole_piece_read = false; // scratch_ holds every byte of the piece
  if (!pp.from_disk && pp.next > 0) {
    // Read back only what arrived out of order.
    if (pp.next < size) {
      auto rest = size - pp.next;
      if (scratch_.size() < rest)
        scratch_.resize(rest);
      if (auto st = store_.read(p, pp.next, rest, scratch_.data()); !st)
        return st.error();
      pp.hash.update(std::string_view(scratch_.data(), rest));
    }
    digest = pp.hash.finish();
    ++hashed_in_memory_;
  } else {
    if (scratch_.size() < size)
      scratch_.resize(size);
    if (auto st = store_.read(p, 0, size, scratch_.data()); !st)
      return st.error();
    digest = sha1(std::string_view(scratch_.data(), size));
    whole_piece_read = true;
  }
  piece_verdict v;
  v.piece = p;
  v.ok = digest == meta_.piece_hashes[p.value];
  bool want_blocks = !v.ok || failed_before_.contains(p.value);
  if (want_blocks) {
    if (!whole_piece_read) {
      if (scratch_.size() < size)
        scratch_.resize(size);
      if (auto st = store_.read(p, 0, size, scratch_.data()); !st)
        return st.error();
    }
    v.blocks = block_digests(p, scratch_.data(), !v.ok, &pp);
  }
  if (v.ok) {
    verified_.add(p.value);
    failed_before_.remove(p.value);
  } else {
    failed_before_.add(p.value);
  }
  release(p);
  return v;
}

} // namespace actorrent
