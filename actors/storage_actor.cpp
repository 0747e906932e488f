#include "actors/storage_actor.hpp"

#include <atomic>
#include <functional>

#include <caf/all.hpp>
#include <roaring/roaring.hh>
#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "protocol/metainfo.hpp"
#include "storage/data_checker.hpp"
#include "storage/disk_pool.hpp"
#include "storage/file_store.hpp"
#include "storage/piece_writer.hpp"
#include "storage/resume.hpp"

namespace actorrent {
namespace {

/// A disk job's continuation, run by the storage actor on its own thread (response promises
/// are delivered there, never from a disk thread).
struct storage_continuation {
  std::function<void()> fn;
};

} // namespace
} // namespace actorrent

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::storage_continuation)

namespace actorrent {

namespace {

/// A check of existing data is cut into slices of about this many bytes (at least one piece):
/// each is one disk job, so an upload read or a write of any torrent waits for one slice at
/// most, not for the whole check.
constexpr std::uint64_t check_slice_bytes = 4u << 20;

/// What the disk jobs of one torrent own. Touched only by its io jobs, which the pool runs one
/// at a time and in order (check slices read the files on their own descriptors and leave it
/// alone), so it needs no lock.
struct storage_core {
  std::unique_ptr<file_store> store;
  std::shared_ptr<const metainfo> meta;
  std::unique_ptr<piece_writer> writer; // the record of which copy of each block is on disk
  caf::actor torrent;
  bool keep_resume = true;   // [cluster] false: the files are flushed, no resume data written
  bool failed = false;
  bool dirty_resume = false; // verified pieces not yet in the resume file
  std::vector<piece_index> complete;

  void check_piece(piece_index p) {
    auto v = writer->check(p);
    if (!v) {
      fail(v.error());
      return;
    }
    if (v->ok)
      dirty_resume = true;
    caf::anon_send(torrent, piece_checked{std::move(*v)});
  }

  /// Flushes the files, then records the verified pieces (resume data is only ever written
  /// about data that is on disk).
  void save() {
    if (!dirty_resume || failed)
      return;
    if (auto files = store->check_files(); !files) {
      fail(files.error());
      return;
    }
    auto synced = store->sync();
    if (!synced) {
      fail(synced.error());
      return;
    }
    if (!keep_resume) { // [cluster] the coordinator's plan is the record
      dirty_resume = false;
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

  void fail(const error& why) {
    if (failed)
      return;
    failed = true;
    spdlog::get("storage")->error("{}", why.message);
    caf::anon_send(torrent, storage_failed{why});
  }

  void write(write_blocks& msg) {
    blocks_stored done{msg.slot, {}, msg.received};
    done.blocks.reserve(msg.blocks.size());
    complete.clear();
    if (failed) {
      // Nothing is written after a failure, and nothing is reported as stored.
      for (auto& b : msg.blocks)
        done.blocks.push_back(stored_block{block_ref{b.piece, b.begin / block_size}, 0});
    } else if (auto status = writer->write(msg.slot, msg.blocks, done.blocks, complete);
               !status) {
      fail(status.error());
    }
    msg.owner.reset(); // release the receive buffer before the slow part
    // Sent before any verdict on the pieces these blocks complete (same job, so the same
    // order in the torrent's mailbox), so the torrent always knows a piece's blocks before
    // its verdict.
    caf::anon_send(torrent, std::move(done));
    for (auto p : complete)
      if (!failed)
        check_piece(p);
  }

  block_read read(const read_block& rb) {
    block_read out{rb.piece, rb.begin, {}, {}};
    if (rb.piece.value >= meta->piece_count() || !writer->verified(rb.piece)) {
      out.result = error{errc::invalid_argument,
                         "piece " + std::to_string(rb.piece.value) + " is not available"};
      return out;
    }
    auto size = meta->piece_size(rb.piece);
    if (rb.begin >= size || rb.length == 0 || rb.length > size - rb.begin) {
      out.result =
        error{errc::invalid_argument, "block outside piece " + std::to_string(rb.piece.value)};
      return out;
    }
    // The PIECE header and the payload share one buffer: the connection sends it as is.
    wire::append_piece_header(out.frame, rb.piece.value, rb.begin, rb.length);
    auto header = out.frame.size();
    out.frame.resize(header + rb.length);
    auto status = store->read(rb.piece, rb.begin, rb.length, out.frame.data() + header);
    if (!status) {
      out.frame.clear();
      out.result = status;
    }
    return out;
  }
};

/// One check of existing data in progress: owned by the actor, filled by its slices.
struct check_run {
  Roaring to_check;
  Roaring good;
  std::vector<std::uint32_t> trusted;
  std::shared_ptr<std::atomic<bool>> cancel;
  std::uint32_t total = 0;
  std::uint32_t done = 0;
  // Counted down by the slices themselves, on the disk threads: after a stop the slices still
  // queued end without hashing and without a message each.
  std::atomic<std::size_t> slices_left{0};
  caf::response_promise promise;

  bool cancelled() const { return cancel && cancel->load(); }
};

/// Cuts the pieces to check into runs of about check_slice_bytes.
std::vector<Roaring> slice_check(const metainfo& m, const Roaring& pieces) {
  std::vector<Roaring> out;
  std::uint64_t bytes = 0;
  for (auto p : pieces) {
    if (out.empty() || bytes >= check_slice_bytes) {
      out.emplace_back();
      bytes = 0;
    }
    out.back().add(p);
    bytes += m.piece_size(piece_index{p});
  }
  return out;
}

} // namespace

caf::actor spawn_storage(caf::actor_system& sys, std::unique_ptr<file_store> store,
                         std::shared_ptr<const metainfo> meta, const caf::actor& torrent,
                         disk_pool& pool, storage_options opts) {
  auto core = std::make_shared<storage_core>();
  core->store = std::move(store);
  core->meta = std::move(meta);
  core->writer = std::make_unique<piece_writer>(*core->store, *core->meta);
  core->writer->set_fence(std::move(opts.fence));
  core->keep_resume = opts.save_resume;
  core->torrent = torrent;
  auto queue = pool.make_queue();
  auto* disk = &pool;
  return sys.spawn([core, queue, disk](caf::event_based_actor* self) -> caf::behavior {
    self->set_default_handler(caf::drop);
    // Posts an io job of this torrent.
    auto io = [queue, disk](std::function<void()> fn) {
      disk->post(queue, disk_pool::job_class::io, std::move(fn));
    };
    // Hands a job's result back to the actor's thread. The handle keeps the actor alive until
    // its behaviour is dropped on exit (then jobs still queued send to a dead actor: a no-op).
    auto back = [me = caf::actor_cast<caf::actor>(self)](std::function<void()> fn) {
      caf::anon_send(me, storage_continuation{std::move(fn)});
    };
    struct actor_side {
      bool stopping = false;
      bool stop_after_check = false;
      std::shared_ptr<check_run> checking;
    };
    auto side = std::make_shared<actor_side>();
    auto stop = [core, io, back, side, self] {
      if (side->stopping)
        return;
      side->stopping = true;
      // The final save is queued behind every write received so far; the actor stays until
      // it is done (the torrent and the process wait for it).
      io([core, back, self] {
        spdlog::get("storage")->debug("{} pieces hashed from the receive buffers",
                                      core->writer->hashed_in_memory());
        core->save();
        back([self] { self->quit(); });
      });
    };
    // Ends a check: the verdicts go into the piece record (an io job: it owns the record),
    // then the torrent gets its reply.
    auto finish_check = [core, io, back, side, stop](std::shared_ptr<check_run> run) {
      io([core, back, run, side, stop] {
        auto& c = *core;
        Roaring good = run->good;
        for (auto p : run->trusted)
          if (p < c.meta->piece_count())
            good.add(p);
        existing_checked out;
        out.checked = static_cast<std::uint32_t>(run->to_check.cardinality());
        for (auto p : good) {
          c.writer->set_verified(piece_index{p});
          out.verified.push_back(p);
        }
        c.dirty_resume = true;
        if (run->cancel && run->cancel->load() && c.keep_resume) {
          // Stopped during the check: record what was verified, and mark the files of the
          // pieces not verified (failed or never hashed) as unknown so that the next run
          // hashes them again instead of trusting or skipping them.
          auto saved = save_resume(c.store->root(), *c.meta, c.store->layout(),
                                   c.writer->verified_pieces(), run->to_check - run->good,
                                   c.store->priorities());
          if (!saved)
            spdlog::get("storage")->warn("could not save resume data: {}",
                                         saved.error().message);
          c.dirty_resume = false;
        }
        back([run, side, stop, out = std::move(out)]() mutable {
          run->promise.deliver(std::move(out));
          side->checking.reset();
          if (side->stop_after_check)
            stop();
        });
      });
    };
    return {
      [=](write_blocks& msg) {
        if (side->stopping)
          return;
        io([core, m = std::move(msg)]() mutable { core->write(m); });
      },
      [=](discard_blocks& msg) {
        if (side->stopping)
          return;
        io([core, m = std::move(msg)] { core->writer->discard(m.blocks); });
      },
      [=](const read_block& rb) {
        auto rp = self->make_response_promise();
        io([core, back, rb, rp]() mutable {
          back([rp, out = core->read(rb)]() mutable { rp.deliver(std::move(out)); });
        });
        return rp;
      },
      [=](check_existing& ce) {
        auto run = std::make_shared<check_run>();
        side->checking = run;
        run->promise = self->make_response_promise();
        run->cancel = std::move(ce.cancel);
        run->trusted = std::move(ce.trusted);
        for (auto p : ce.to_check)
          if (p < core->meta->piece_count())
            run->to_check.add(p);
        run->total = static_cast<std::uint32_t>(run->to_check.cardinality());
        auto slices = slice_check(*core->meta, run->to_check);
        run->slices_left = slices.size();
        if (slices.empty()) {
          finish_check(run);
          return run->promise;
        }
        // The layout and the root never change: slices read them without the io queue.
        for (auto& slice : slices) {
          disk->post(queue, disk_pool::job_class::check,
                     [core, back, finish_check, run, slice = std::move(slice)] {
                       if (!run->cancelled()) {
                         auto good = check_pieces(core->store->layout(), *core->meta,
                                                  core->store->root(), slice, 1, {},
                                                  run->cancel.get());
                         auto n = static_cast<std::uint32_t>(slice.cardinality());
                         back([core, run, n, good = std::move(good)] {
                           run->good |= good;
                           run->done += n;
                           caf::anon_send(core->torrent,
                                          check_progress{run->done, run->total});
                         });
                       }
                       // Counted once this slice's result is queued: the slice that counts
                       // last finds every other result ahead of its own message.
                       if (run->slices_left.fetch_sub(1) == 1)
                         back([finish_check, run] { finish_check(run); });
                     });
        }
        return run->promise;
      },
      [=](save_resume_now) {
        if (!side->stopping)
          io([core] { core->save(); });
      },
      // File selection: files leaving skip are created and get their bytes from the part file
      // before any block for them can arrive (the torrent asks for them only after this, and
      // their writes queue behind this job).
      [=](set_file_priorities& fp) {
        io([core, priorities = std::move(fp.priorities)] {
          if (core->failed)
            return;
          if (auto s = core->store->set_priorities(priorities); !s) {
            core->fail(s.error());
            return;
          }
          core->dirty_resume = true;
        });
      },
      [=](sync_storage) {
        auto rp = self->make_response_promise();
        io([core, back, rp]() mutable {
          auto status = core->store->check_files();
          if (status)
            status = core->store->sync();
          back([rp, status]() mutable { rp.deliver(storage_synced{status}); });
        });
        return rp;
      },
      [=](storage_continuation& c) { c.fn(); },
      [=](stop_request) {
        // A check under way finishes first (its slices see the torrent's cancel flag and end
        // soon): what it verified goes into the resume data before the actor exits.
        if (side->checking)
          side->stop_after_check = true;
        else
          stop();
      },
    };
  });
}

} // namespace actorrent
