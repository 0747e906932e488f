#include "actors/storage_actor.hpp"

#include <caf/all.hpp>
#include <roaring/roaring.hh>
#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "protocol/metainfo.hpp"
#include "storage/data_checker.hpp"
#include "storage/file_store.hpp"
#include "storage/resume.hpp"
#include "storage/piece_writer.hpp"

namespace actorrent {

namespace {

struct storage_state {
  std::unique_ptr<file_store> store;
  std::shared_ptr<const metainfo> meta;
  std::unique_ptr<piece_writer> writer; // the record of which copy of each block is on disk
  caf::actor torrent;
  bool failed = false;
  bool dirty_resume = false; // verified pieces not yet in the resume file
  std::vector<piece_index> complete;

  void check_piece(caf::event_based_actor* self, piece_index p) {
    auto v = writer->check(p);
    if (!v) {
      fail(self, v.error());
      return;
    }
    if (v->ok)
      dirty_resume = true;
    self->send(torrent, piece_checked{std::move(*v)});
  }

  /// Flushes the files, then records the verified pieces (resume data is only ever written
  /// about data that is on disk).
  void save(caf::event_based_actor* self) {
    if (!dirty_resume || failed)
      return;
    if (auto files = store->check_files(); !files) {
      fail(self, files.error());
      return;
    }
    auto synced = store->sync();
    if (!synced) {
      fail(self, synced.error());
      return;
    }
    auto saved = save_resume(store->root(), *meta, store->layout(), writer->verified_pieces(),
                             Roaring(), store->priorities());
    if (!saved) {
      spdlog::get("storage")->warn("could not save resume data: {}", saved.error().message);
      return;
    }
    dirty_resume = false;
  }

  void fail(caf::event_based_actor* self, const error& why) {
    if (failed)
      return;
    failed = true;
    spdlog::get("storage")->error("{}", why.message);
    self->send(torrent, storage_failed{why});
  }
};

} // namespace

caf::actor spawn_storage(caf::actor_system& sys, std::unique_ptr<file_store> store,
                         std::shared_ptr<const metainfo> meta, const caf::actor& torrent,
                         bool detached) {
  auto st = std::make_shared<storage_state>();
  st->store = std::move(store);
  st->meta = std::move(meta);
  st->writer = std::make_unique<piece_writer>(*st->store, *st->meta);
  st->torrent = torrent;
  auto behavior = [st](caf::event_based_actor* self) -> caf::behavior {
    self->set_default_handler(caf::drop);
    return {
      [=](write_blocks& msg) {
        blocks_stored done{msg.slot, {}, msg.received};
        done.blocks.reserve(msg.blocks.size());
        st->complete.clear();
        if (st->failed) {
          // Nothing is written after a failure, and nothing is reported as stored.
          for (auto& b : msg.blocks)
            done.blocks.push_back(stored_block{block_ref{b.piece, b.begin / block_size}, 0});
        } else if (auto status = st->writer->write(msg.slot, msg.blocks, done.blocks, st->complete);
                   !status) {
          st->fail(self, status.error());
        }
        msg.owner.reset(); // release the receive buffer before the slow part
        // Sent before any verdict on the pieces these blocks complete (same sender: CAF keeps
        // the order), so the torrent always knows a piece's blocks before its verdict.
        self->send(st->torrent, std::move(done));
        for (auto p : st->complete)
          if (!st->failed)
            st->check_piece(self, p);
      },
      [=](const discard_blocks& msg) { st->writer->discard(msg.blocks); },
      [=](const read_block& rb) {
        block_read out{rb.piece, rb.begin, {}, {}};
        if (rb.piece.value >= st->meta->piece_count() || !st->writer->verified(rb.piece)) {
          out.result = error{errc::invalid_argument,
                             "piece " + std::to_string(rb.piece.value) + " is not available"};
          return out;
        }
        auto size = st->meta->piece_size(rb.piece);
        if (rb.begin >= size || rb.length == 0 || rb.length > size - rb.begin) {
          out.result = error{errc::invalid_argument, "block outside piece " +
                                                         std::to_string(rb.piece.value)};
          return out;
        }
        // The PIECE header and the payload share one buffer: the connection sends it as is.
        wire::append_piece_header(out.frame, rb.piece.value, rb.begin, rb.length);
        auto header = out.frame.size();
        out.frame.resize(header + rb.length);
        auto status = st->store->read(rb.piece, rb.begin, rb.length, out.frame.data() + header);
        if (!status) {
          out.frame.clear();
          out.result = status;
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
          st->writer->set_verified(piece_index{p});
          out.verified.push_back(p);
        }
        st->dirty_resume = true;
        if (ce.cancel && ce.cancel->load()) {
          // Stopped during the check: record what was verified, and mark the files of the
          // pieces not verified (failed or never hashed) as unknown so that the next run
          // hashes them again instead of trusting or skipping them.
          auto saved = save_resume(st->store->root(), *st->meta, st->store->layout(),
                                   st->writer->verified_pieces(), to_check - good,
                                   st->store->priorities());
          if (!saved)
            spdlog::get("storage")->warn("could not save resume data: {}",
                                         saved.error().message);
          st->dirty_resume = false;
        }
        return out;
      },
      [=](save_resume_now) { st->save(self); },
      // File selection: files leaving skip are created and get their bytes from the part file
      // before any block for them can arrive (the torrent asks for them only after this).
      [=](const set_file_priorities& fp) {
        if (st->failed)
          return;
        if (auto s = st->store->set_priorities(fp.priorities); !s) {
          st->fail(self, s.error());
          return;
        }
        st->dirty_resume = true;
      },
      [=](sync_storage) {
        auto status = st->store->check_files();
        if (status)
          status = st->store->sync();
        return storage_synced{status};
      },
      [=](stop_request) {
        spdlog::get("storage")->debug("{} pieces hashed from the receive buffers",
                                      st->writer->hashed_in_memory());
        st->save(self);
        self->quit();
      },
    };
  };
  return detached ? sys.spawn<caf::detached>(behavior) : sys.spawn(behavior);
}

} // namespace actorrent
