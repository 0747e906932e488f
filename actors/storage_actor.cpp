#include "actors/storage_actor.hpp"

#include <unordered_map>

#include <caf/all.hpp>
#include <roaring/roaring.hh>
#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/sha1.hpp"
#include "storage/data_checker.hpp"
#include "storage/file_store.hpp"
#include "storage/resume.hpp"
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
  std::uint64_t hashed_in_memory = 0; // pieces hashed (at least partly) from receive buffers
  bool failed = false;
  bool dirty_resume = false; // verified pieces not yet in the resume file
  std::vector<file_store::span> spans; // the blocks of one write_blocks message to write
  std::vector<bool> fresh;             // per span: first copy of its block in this round

  // SHA-1 of a piece's leading bytes, fed from the receive buffers as blocks arrive in order
  // (they usually do: one peer, pipelined requests). At completion only what came out of order
  // is read back from disk, usually nothing.
  struct running_hash {
    sha1_hasher h;
    std::uint32_t next = 0; // bytes hashed so far
  };
  std::unordered_map<std::uint32_t, std::unique_ptr<running_hash>> hashing;
  std::vector<std::unique_ptr<running_hash>> spare_hashes;

  void feed_hash(piece_index p, std::uint32_t begin, std::string_view bytes) {
    auto& slot = hashing[p.value];
    if (!slot) {
      if (spare_hashes.empty()) {
        slot = std::make_unique<running_hash>();
      } else {
        slot = std::move(spare_hashes.back());
        spare_hashes.pop_back();
      }
    }
    if (begin == slot->next) {
      slot->h.update(bytes);
      slot->next += static_cast<std::uint32_t>(bytes.size());
    }
  }

  std::unique_ptr<running_hash> take_hash(piece_index p) {
    auto it = hashing.find(p.value);
    if (it == hashing.end())
      return nullptr;
    auto rh = std::move(it->second);
    hashing.erase(it);
    return rh;
  }

  void recycle(std::unique_ptr<running_hash> rh) {
    if (!rh)
      return;
    rh->h.reset();
    rh->next = 0;
    if (spare_hashes.size() < 64)
      spare_hashes.push_back(std::move(rh));
  }

  std::uint32_t blocks_in(piece_index p) const {
    return (meta->piece_size(p) + block_size - 1) / block_size;
  }

  void check_piece(caf::event_based_actor* self, piece_index p) {
    sha1_digest digest{};
    auto rh = take_hash(p);
    auto size = meta->piece_size(p);
    if (rh && rh->next > 0) {
      // Read back only what arrived out of order.
      if (rh->next < size) {
        auto rest = size - rh->next;
        if (scratch.size() < rest)
          scratch.resize(rest);
        auto st = store->read(p, rh->next, rest, scratch.data());
        if (!st) {
          fail(self, st.error().message);
          return;
        }
        rh->h.update(std::string_view(scratch.data(), rest));
      }
      digest = rh->h.finish();
      ++hashed_in_memory;
    } else {
      auto st = hash_piece(*store, p, scratch, digest);
      if (!st) {
        fail(self, st.error().message);
        return;
      }
    }
    recycle(std::move(rh));
    bool ok = digest == meta->piece_hashes[p.value];
    std::uint32_t first = p.value * blocks_per_piece;
    roaring_bitmap_remove_range(&written.roaring, first, std::uint64_t{first} + blocks_in(p));
    written_count[p.value] = 0;
    if (ok) {
      verified.set(p);
      dirty_resume = true;
    }
    self->send(torrent, piece_checked{p, ok});
  }

  /// Flushes the files, then records the verified pieces (resume data is only ever written
  /// about data that is on disk).
  void save(caf::event_based_actor* self) {
    if (!dirty_resume || failed)
      return;
    if (auto files = store->check_files(); !files) {
      fail(self, files.error().message);
      return;
    }
    auto synced = store->sync();
    if (!synced) {
      fail(self, synced.error().message);
      return;
    }
    Roaring bits;
    verified.for_each_set([&](piece_index p) { bits.add(p.value); });
    auto saved = save_resume(store->root(), *meta, store->layout(), bits);
    if (!saved) {
      spdlog::get("storage")->warn("could not save resume data: {}", saved.error().message);
      return;
    }
    dirty_resume = false;
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
        st->spans.clear();
        st->fresh.clear();
        for (auto& b : msg.blocks) {
          block_ref ref{b.piece, b.begin / block_size};
          done.blocks.push_back(ref);
          if (st->failed || st->verified.test(b.piece))
            continue; // never overwrite verified data
          std::uint32_t g = b.piece.value * st->blocks_per_piece + ref.block;
          bool fresh = st->written.addChecked(g);
          if (!fresh) {
            // Written before: an end-game duplicate, or a block that a peer we have since
            // dropped sent before its requests were given to someone else. The last copy wins
            // (the data on disk may have been bad), so the piece is hashed from disk.
            st->recycle(st->take_hash(b.piece));
          }
          st->spans.push_back(file_store::span{b.piece, b.begin, b.bytes});
          st->fresh.push_back(fresh);
        }
        std::vector<piece_index> complete;
        if (!st->spans.empty()) {
          if (auto status = st->store->write_many(st->spans); !status) {
            st->fail(self, status.error().message);
          } else {
            for (std::size_t i = 0; i < st->spans.size(); ++i) {
              auto& sp = st->spans[i];
              if (!st->fresh[i])
                continue;
              st->feed_hash(sp.piece, sp.offset, sp.data);
              if (++st->written_count[sp.piece.value] == st->blocks_in(sp.piece))
                complete.push_back(sp.piece);
            }
          }
        }
        st->spans.clear();  // the views point into the receive buffer released next
        msg.owner.reset(); // release the receive buffer before the slow part
        self->send(st->torrent, std::move(done));
        for (auto p : complete)
          st->check_piece(self, p);
      },
      [=](const read_block& rb) {
        block_read out{rb.piece, rb.begin, {}, {}};
        if (rb.piece.value >= st->meta->piece_count() || !st->verified.test(rb.piece)) {
          out.error = "piece not available";
          return out;
        }
        auto size = st->meta->piece_size(rb.piece);
        if (rb.begin >= size || rb.length == 0 || rb.length > size - rb.begin) {
          out.error = "block outside the piece";
          return out;
        }
        // The PIECE header and the payload share one buffer: the connection sends it as is.
        wire::append_piece_header(out.frame, rb.piece.value, rb.begin, rb.length);
        auto header = out.frame.size();
        out.frame.resize(header + rb.length);
        auto status = st->store->read(rb.piece, rb.begin, rb.length, out.frame.data() + header);
        if (!status) {
          out.frame.clear();
          out.error = status.error().message;
        }
        return out;
      },
      [=](const check_existing& ce) {
        existing_checked out;
        Roaring to_check;
        for (auto p : ce.to_check)
          if (p < st->meta->piece_count())
            to_check.add(p);
        Roaring good;
        if (!to_check.isEmpty()) {
          auto torrent = st->torrent;
          // This thread is busy until the check returns, so a stop cannot arrive as a
          // message: the torrent raises ce.cancel instead, and the check ends after the
          // pieces in hand.
          good = check_pieces(st->store->layout(), *st->meta, st->store->root(), to_check, 0,
                              [torrent](std::uint32_t done, std::uint32_t total) {
                                caf::anon_send(torrent, check_progress{done, total});
                              },
                              ce.cancel.get());
          out.checked = static_cast<std::uint32_t>(to_check.cardinality());
        }
        for (auto p : ce.trusted)
          if (p < st->meta->piece_count())
            good.add(p);
        for (auto p : good) {
          st->verified.set(piece_index{p});
          out.verified.push_back(p);
        }
        st->dirty_resume = true;
        if (ce.cancel && ce.cancel->load()) {
          // Stopped during the check: record what was verified, and mark the files of the
          // pieces not verified (failed or never hashed) as unknown so that the next run
          // hashes them again instead of trusting or skipping them.
          Roaring bits;
          st->verified.for_each_set([&](piece_index p) { bits.add(p.value); });
          auto saved = save_resume(st->store->root(), *st->meta, st->store->layout(), bits,
                                   to_check - good);
          if (!saved)
            spdlog::get("storage")->warn("could not save resume data: {}",
                                         saved.error().message);
          st->dirty_resume = false;
        }
        return out;
      },
      [=](save_resume_now) { st->save(self); },
      [=](sync_storage) {
        auto status = st->store->check_files();
        if (status)
          status = st->store->sync();
        return storage_synced{status ? std::string{} : status.error().message};
      },
      [=](stop_request) {
        spdlog::get("storage")->debug("{} pieces hashed from the receive buffers", st->hashed_in_memory);
        st->save(self);
        self->quit();
      },
    };
  });
}

} // namespace actorrent
