// The one record of block provenance: for every block of the pieces being downloaded, which copy
// is on disk and which peer sent it. The storage actor owns it; the torrent's picker learns each
// copy's number from the blocks_stored report and names it when it takes blocks back, so both
// always agree on what a piece is made of. Blocking (pwrite, pread, SHA-1); CAF-free.
//
// Rules:
//  - the last copy of a block wins (it is what is on disk), and its sender is the one credited;
//  - a piece is hashed once every block is on disk, from the receive buffers when its blocks
//    came in order, otherwise (or after any copy was replaced or discarded) from disk;
//  - a piece that fails keeps, per block, the sender and the SHA-1 of the bytes it sent; when it
//    later passes the verdict carries the SHA-1 of each good block, so exactly the peers whose
//    blocks differed can be banned (smart ban);
//  - verified pieces are never written again.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <roaring/roaring.hh>

#include "protocol/error.hpp"
#include "protocol/sha1.hpp"
#include "protocol/types.hpp"
#include "storage/file_store.hpp"
#include "storage/write_fence.hpp"

namespace actorrent {

struct metainfo;

/// Bytes of one block as received (a view into the receive buffer).
struct block_write {
  piece_index piece;
  std::uint32_t begin = 0;
  std::string_view bytes;
};

/// What became of one received block: `copy` numbers the copy now on disk (every write gets a
/// new number); 0 means it was not written (its piece is verified already, or storage failed).
struct stored_block {
  block_ref block;
  std::uint32_t copy = 0;
  bool refused = false; // [cluster] not written: the write fence refused it (copy is 0)
};

/// Per block of a hashed piece: who sent the copy that was hashed and that copy's SHA-1.
struct block_digest {
  std::uint32_t block = 0;
  peer_slot sender = no_peer;
  sha1_digest digest{};
};

struct piece_verdict {
  piece_index piece;
  bool ok = false;
  /// Failed: every block with its sender and digest. Passed after an earlier failure: the digest
  /// of every good block (sender no_peer). Otherwise empty.
  std::vector<block_digest> blocks;
};

class piece_writer {
public:
  piece_writer(file_store& store, const metainfo& meta);
  ~piece_writer();

  /// [cluster] Every block is checked against `fence` right before it is written; a refused
  /// block is not written (stored_block::refused) and its piece waits for it, so a piece is
  /// never hashed with a block missing. Null: no fence (a null check per block).
  void set_fence(std::shared_ptr<const write_fence> fence) { fence_ = std::move(fence); }
  /// Blocks the fence refused so far.
  std::uint64_t fenced_blocks() const noexcept { return fenced_blocks_; }

  /// Writes the blocks of one read from `sender`, in order (of two copies of a block in one
  /// read, the later one ends on disk). Appends one stored_block per input block to `stored` and
  /// the pieces now complete (every block on disk, not yet hashed) to `complete`. On a write
  /// error nothing is recorded as stored (every copy 0) and the error is returned.
  status write(peer_slot sender, const std::vector<block_write>& blocks,
               std::vector<stored_block>& stored, std::vector<piece_index>& complete);

  /// Hashes a complete piece and forgets its blocks: a pass marks it verified, a failure lets its
  /// blocks be written afresh.
  result<piece_verdict> check(piece_index p);

  /// The torrent took these blocks back (their sender is no longer trusted to finish the piece):
  /// each is dropped, so that it must be written again, unless a newer copy replaced it since.
  void discard(const std::vector<stored_block>& blocks);

  void set_verified(piece_index p) { verified_.add(p.value); }
  bool verified(piece_index p) const { return verified_.contains(p.value); }
  const Roaring& verified_pieces() const noexcept { return verified_; }

  /// Pieces hashed at least partly from the receive buffers (in-order arrival).
  std::uint64_t hashed_in_memory() const noexcept { return hashed_in_memory_; }
  /// Blocks on disk in pieces not yet verified.
  std::uint64_t written_blocks() const noexcept;

private:
  struct block_copy {
    peer_slot sender = no_peer;
    std::uint32_t copy = 0; // 0: not on disk
  };
  struct piece_progress {
    std::vector<block_copy> blocks;
    std::uint32_t written = 0;  // blocks with a copy on disk
    bool queued = false;        // reported complete, waiting for check()
    bool from_disk = false;     // a hashed copy was replaced: the running hash is void
    std::uint32_t next = 0;     // bytes fed to `hash` so far (in-order prefix)
    sha1_hasher hash;
  };

  piece_progress& progress(piece_index p);
  void release(piece_index p);
  std::vector<block_digest> block_digests(piece_index p, const char* bytes, bool with_senders,
                                          const piece_progress* pp);

  file_store& store_;
  const metainfo& meta_;
  std::shared_ptr<const write_fence> fence_;
  std::uint64_t fenced_blocks_ = 0;
  Roaring verified_;
  Roaring failed_before_; // pieces that failed once: their next pass reports block digests
  std::unordered_map<std::uint32_t, std::unique_ptr<piece_progress>> pieces_;
  std::vector<std::unique_ptr<piece_progress>> spare_;
  std::uint32_t next_copy_ = 0;
  std::uint64_t hashed_in_memory_ = 0;
  std::vector<file_store::span> spans_;
  struct span_source {
    piece_progress* piece; // the record of the span's piece (stable: owned by unique_ptr)
    std::uint32_t copy;    // the copy number the span wrote
  };
  std::vector<span_source> span_sources_; // parallel to spans_
  std::vector<char> scratch_;
};

} // namespace actorrent
