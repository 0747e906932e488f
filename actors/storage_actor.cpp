#include "actors/storage_actor.hpp"

#include <caf/all.hpp>
#include <roaring/roaring.hh>
#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/sha1.hpp"
#include "storage/file_store.hpp"
#include "storage/piece_hashing.hpp"

namespace actorrent {

namespace {

struct storage_state {
  std::unique_ptr<file_store> store;
  std::shared_ptr<const metainfo> meta;
  caf::actor torrent;
  std::uint32_t blocks_per_piece = 0;
  Roaring written;                       // global block numbers on disk, piece not yet verified
  std::vector<std::uint16_t> written_count;
  bitfield verified;
  std::vector<char> scratch;
  bool failed = false;

  std::uint32_t blocks_in(piece_index p) const {
    return (meta->piece_size(p) + block_size - 1) / block_size;
  }

  void check_piece(caf::event_based_actor* self, piece_index p) {
    sha1_digest digest{};
    auto st = hash_piece(*store, p, scratch, digest);
    if (!st) {
      fail(self, st.error().message);
      return;
    }
    bool ok = digest == meta->piece_hashes[p.value];
    std::uint32_t first = p.value * blocks_per_piece;
    roaring_bitmap_remove_range(&written.roaring, first, std::uint64_t{first} + blocks_in(p));
    written_count[p.value] = 0;
    if (ok)
      verified.set(p);
    self->send(torrent, piece_checked{p, ok});
  }

  void fail(caf::event_based_actor* self, const std::string& reason) {
    if (failed)
      return;
    failed = true;
    spdlog::get("storage")->error("{}", reason);
    self->send(torrent, storage_failed{reason});
  }
};

} // namespace

caf::actor spawn_storage(caf::actor_system& sys, std::unique_ptr<file_store> store,
                         std::shared_ptr<const metainfo> meta, const caf::actor& torrent) {
  auto st = std::make_shared<storage_state>();
  st->store = std::move(store);
  st->meta = std::move(meta);
  st->torrent = torrent;
  st->blocks_per_piece = (st->meta->piece_length + block_size - 1) / block_size;
  st->written_count.assign(st->meta->piece_count(), 0);
  st->verified = bitfield(st->meta->piece_count());
  return sys.spawn<caf::detached>([st](caf::event_based_actor* self) -> caf::behavior {
    self->set_default_handler(caf::drop);
    return {
      [=](write_blocks& msg) {
        blocks_stored done{msg.slot, {}};
        done.blocks.reserve(msg.blocks.size());
        std::vector<piece_index> complete;
        for (auto& b : msg.blocks) {
          block_ref ref{b.piece, b.begin / block_size};
          done.blocks.push_back(ref);
          if (st->failed || st->verified.test(b.piece))
            continue; // never overwrite verified data
          auto status = st->store->write(b.piece, b.begin, b.bytes);
          if (!status) {
            st->fail(self, status.error().message);
            continue;
          }
          std::uint32_t g = b.piece.value * st->blocks_per_piece + ref.block;
          if (st->written.addChecked(g) &&
              ++st->written_count[b.piece.value] == st->blocks_in(b.piece))
            complete.push_back(b.piece);
        }
        msg.owner.reset(); // release the receive buffer before the slow part
        self->send(st->torrent, std::move(done));
        for (auto p : complete)
          st->check_piece(self, p);
      },
      [=](sync_storage) {
        auto status = st->store->sync();
        return storage_synced{status ? std::string{} : status.error().message};
      },
      [=](stop_request) { self->quit(); },
    };
  });
}

} // namespace actorrent
