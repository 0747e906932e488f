#include "actors/smart_ban.hpp"

#include <algorithm>

namespace actorrent {

namespace {
constexpr std::size_t max_copies_per_block = 4; // distinct bad copies kept for one block
}

void smart_ban::on_piece_failed(piece_index p, const std::vector<block_digest>& blocks) {
  auto [it, inserted] = records_.try_emplace(p.value);
  if (inserted) {
    order_.push_back(p.value);
    while (records_.size() > max_pieces_) {
      records_.erase(order_.front());
      order_.pop_front();
    }
    it = records_.find(p.value);
    if (it == records_.end())
      return; // max_pieces_ == 0
  }
  auto& per_block = it->second;
  for (const auto& b : blocks) {
    if (b.sender == no_peer)
      continue;
    if (per_block.size() <= b.block)
      per_block.resize(b.block + 1);
    auto& copies = per_block[b.block];
    auto same = [&](const sent_block& s) { return s.sender == b.sender && s.digest == b.digest; };
    if (std::none_of(copies.begin(), copies.end(), same) && copies.size() < max_copies_per_block)
      copies.push_back(sent_block{b.sender, b.digest});
  }
}

std::vector<smart_ban::liar> smart_ban::on_piece_passed(piece_index p,
                                                        const std::vector<block_digest>& good) {
  std::vector<liar> out;
  auto it = records_.find(p.value);
  if (it == records_.end())
    return out;
  for (const auto& g : good) {
    if (g.block >= it->second.size())
      continue;
    for (const auto& s : it->second[g.block]) {
      if (s.digest == g.digest)
        continue; // this peer sent the right bytes: the failure was someone else's
      auto l = std::find_if(out.begin(), out.end(), [&](const liar& x) { return x.peer == s.sender; });
      if (l == out.end())
        out.push_back(liar{s.sender, 1});
      else
        ++l->bad_blocks;
    }
  }
  records_.erase(it);
  order_.erase(std::find(order_.begin(), order_.end(), p.value));
  return out;
}

bool smart_ban::involves(peer_slot peer) const {
  for (const auto& [p, blocks] : records_)
    for (const auto& copies : blocks)
      for (const auto& s : copies)
        if (s.sender == peer)
          return true;
  return false;
}

} // namespace actorrent
