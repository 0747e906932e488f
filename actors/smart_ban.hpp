// Smart ban (the idea of libtorrent's smart_ban plugin): when a piece fails its hash check,
// remember for every block who sent the copy that was hashed and that copy's SHA-1; when the
// piece later passes, compare block by block. Exactly the peers whose blocks differed from the
// verified data lied; a peer none of whose blocks differed is never blamed. Owned by the torrent
// actor; CAF-free.
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "protocol/types.hpp"
#include "storage/piece_writer.hpp"

namespace actorrent {

class smart_ban {
public:
  /// At most this many failed pieces are remembered (the oldest record goes first).
  explicit smart_ban(std::size_t max_pieces = 1024) : max_pieces_(max_pieces) {}

  /// A piece failed; `blocks` has each block's sender and digest as hashed.
  void on_piece_failed(piece_index p, const std::vector<block_digest>& blocks);

  struct liar {
    peer_slot peer = no_peer;
    std::uint32_t bad_blocks = 0;
  };
  /// The piece passed; `good` has the digest of each of its blocks. Returns the peers that sent
  /// a block differing from it (with how many), and forgets the piece.
  std::vector<liar> on_piece_passed(piece_index p, const std::vector<block_digest>& good);

  bool remembers(piece_index p) const { return records_.count(p.value) != 0; }
  /// Whether any remembered block was sent by `peer` (its address must be kept until then).
  bool involves(peer_slot peer) const;
  std::size_t pieces() const noexcept { return records_.size(); }

private:
  struct sent_block {
    peer_slot sender = no_peer;
    sha1_digest digest{};
  };
  // Per piece, per block: every distinct (sender, digest) seen in failed attempts (bounded).
  std::unordered_map<std::uint32_t, std::vector<std::vector<sent_block>>> records_;
  std::deque<std::uint32_t> order_; // oldest first
  std::size_t max_pieces_;
};

} // namespace actorrent
