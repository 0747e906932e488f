// In-process load on the real torrent actor: a synthetic swarm of peers that are actors
// speaking the torrent's own peer messages (no sockets; blocks are reported as stored without
// touching the disk). Each figure is a ratio of two variants measured in the same run, with
// the slower variant selected by a switch of torrent_config or of the synthetic peers:
//
//   A. HAVE storm: every peer announces pieces; batching on (a socket read's HAVEs travel in
//      one message, and the torrent applies everything waiting in its mailbox in one pass) vs
//      off (one message per HAVE, each applied with its own interest check and refill).
//   B. Block receipt with request refills: incremental request state (availability buckets)
//      vs re-deriving the rarest-first order from all pieces at every refill; at two sizes.
//   C. Peer statistics published once per read vs once per block.
//
// Counts (picker updates, HAVEs, messages) are read from the torrent's metrics registry, the
// same Prometheus text --metrics-port serves.
//
//   swarm_bench [--peers N] [--reps N] [--quick]     prints a Markdown report on stdout
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <unistd.h>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "actors/peer_actor.hpp"
#include "actors/torrent_actor.hpp"
#include "protocol/metainfo.hpp"
#include "storage/file_layout.hpp"
#include "storage/file_store.hpp"

namespace {

using namespace actorrent;
using clock_type = std::chrono::steady_clock;

struct swarm {
  std::mutex mu;
  std::vector<std::pair<peer_slot, caf::actor>> peers;
  // block receipt
  std::atomic<bool> serving{false};
  std::atomic<std::uint64_t> blocks{0};
  std::atomic<std::uint32_t> copies{0}; // storage copy numbers handed out
  std::uint64_t target = 0;
  std::uint32_t blocks_per_read = 16;
  bool stats_per_block = false;
  std::atomic<bool> reached{false};
  std::promise<clock_type::time_point> done;
};

struct announce_pieces {
  bool has_bitfield = false;
  bitfield bits;
  std::vector<piece_index> haves;
  std::uint32_t haves_per_message = 1;
};
struct start_serving {};

} // namespace

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(announce_pieces)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(start_serving)

namespace {

/// Silently ignores messages without a handler (caf::drop would answer the sender with an
/// unexpected_message error, which ends an actor that has no handler for it).
caf::result<caf::message> ignore_unexpected(caf::scheduled_actor*, caf::message_view&) {
  return caf::message{};
}

struct synth_state {
  peer_config pc;
};

caf::behavior synthetic_peer(caf::stateful_actor<synth_state>* self, peer_config pc,
                             std::shared_ptr<swarm> sw) {
  self->state.pc = pc;
  self->set_default_handler(ignore_unexpected); // interest, choke, our_pieces, cancels
  self->send(pc.torrent, peer_connected{pc.slot, peer_id{}, true});
  {
    std::lock_guard<std::mutex> g(sw->mu);
    sw->peers.emplace_back(pc.slot, caf::actor_cast<caf::actor>(self));
  }
  return {
    [=](announce_pieces& a) {
      auto& pc = self->state.pc;
      if (a.has_bitfield) {
        availability_delta d;
        d.slot = pc.slot;
        d.has_bitfield = true;
        d.bits = std::move(a.bits);
        self->send(pc.torrent, std::move(d));
      }
      for (std::size_t i = 0; i < a.haves.size(); i += a.haves_per_message) {
        availability_delta d;
        d.slot = pc.slot;
        auto end = std::min(a.haves.size(), i + a.haves_per_message);
        d.haves.assign(a.haves.begin() + static_cast<std::ptrdiff_t>(i),
                       a.haves.begin() + static_cast<std::ptrdiff_t>(end));
        self->send(pc.torrent, std::move(d));
      }
      return true; // the torrent has every message in its mailbox once this reply arrives
    },
    [=](start_serving) {
      peer_activity act;
      act.slot = self->state.pc.slot;
      act.choke_changed = true;
      act.choked = false;
      self->send(self->state.pc.torrent, std::move(act));
    },
    [=](request_blocks& r) {
      if (!sw->serving.load(std::memory_order_relaxed) || sw->reached.load())
        return;
      auto& pc = self->state.pc;
      for (std::size_t i = 0; i < r.blocks.size(); i += sw->blocks_per_read) {
        auto end = std::min(r.blocks.size(), i + sw->blocks_per_read);
        // What one read produces: the peer's statistics, then (via storage) the blocks.
        if (sw->stats_per_block) {
          for (auto k = i; k < end; ++k) {
            peer_activity act;
            act.slot = pc.slot;
            act.payload_bytes = block_size;
            act.wire_bytes = block_size + 13;
            self->send(pc.torrent, std::move(act));
          }
        } else {
          peer_activity act;
          act.slot = pc.slot;
          act.payload_bytes = std::uint64_t{block_size} * (end - i);
          act.wire_bytes = std::uint64_t{block_size + 13} * (end - i);
          self->send(pc.torrent, std::move(act));
        }
        blocks_stored bs;
        bs.slot = pc.slot;
        for (auto k = i; k < end; ++k)
          bs.blocks.push_back(stored_block{r.blocks[k], ++sw->copies});
        self->send(pc.torrent, std::move(bs));
        auto n = sw->blocks.fetch_add(end - i) + (end - i);
        if (n >= sw->target && !sw->reached.exchange(true)) {
          sw->done.set_value(clock_type::now());
          return;
        }
      }
    },
    [=](disconnect_peer&) {
      self->send(self->state.pc.torrent, peer_closed{self->state.pc.slot, "bench over", false});
      self->quit();
    },
  };
}

std::map<std::string, double> parse_metrics(const std::string& text) {
  std::map<std::string, double> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto eol = text.find('\n', pos);
    if (eol == std::string::npos)
      eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#')
      continue;
    auto sp = line.rfind(' ');
    if (sp == std::string::npos)
      continue;
    out[line.substr(0, sp)] = std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return out;
}

struct scenario {
  std::uint32_t pieces = 10000;
  std::uint32_t piece_length = 256 * 1024;
  std::uint32_t peers = 1000;
  bool batch_availability = true;
  bool recompute_requests = false;
  std::uint32_t pipeline = 16;
};

/// One torrent actor with `peers` synthetic peers, all connected and announced.
class harness {
public:
  harness(caf::actor_system& sys, const scenario& sc, const std::string& dir)
    : sys_(sys), self_(sys), sw_(std::make_shared<swarm>()), sc_(sc) {
    auto meta = std::make_shared<metainfo>();
    meta->name = "swarm.bin";
    meta->piece_length = sc.piece_length;
    meta->piece_hashes.resize(sc.pieces);
    meta->total_size = std::uint64_t{sc.pieces} * sc.piece_length;
    meta->files.push_back(file_entry{{meta->name}, meta->total_size, false});
    meta->hash[0] = 1;
    meta_ = meta;
    auto layout = file_layout::create(*meta);
    auto store = file_store::open(std::make_shared<const file_layout>(std::move(*layout)), dir);
    if (!store)
      throw std::runtime_error(store.error().message);
    observer_ = sys.spawn([](caf::event_based_actor* a) -> caf::behavior {
      a->set_default_handler(ignore_unexpected); // progress reports
      return {[=](torrent_stopped&) { a->quit(); }, [=](torrent_failed&) { a->quit(); }};
    });
    torrent_config tc;
    tc.meta = meta_;
    tc.store = std::move(*store);
    tc.use_trackers = false;
    tc.observer = observer_;
    tc.max_peers = sc.peers + 10;
    tc.max_peers_per_ip = sc.peers + 10; // every synthetic peer is on 127.0.0.1
    tc.max_half_open = sc.peers + 10;
    tc.max_outstanding = sc.pipeline;
    tc.batch_availability = sc.batch_availability;
    tc.recompute_requests = sc.recompute_requests;
    auto sw = sw_;
    tc.peer_factory = [sw](caf::actor_system& s, const peer_config& pc) {
      return s.spawn(synthetic_peer, pc, sw);
    };
    torrent_ = spawn_torrent(sys, std::move(tc));
    self_->monitor(torrent_);
    while (progress().checking)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    for (std::uint32_t i = 0; i < sc.peers; ++i) {
      incoming_peer ip;
      ip.remote = endpoint{"10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1),
                           6881};
      self_->send(torrent_, std::move(ip));
    }
    for (;;) {
      {
        std::lock_guard<std::mutex> g(sw_->mu);
        if (sw_->peers.size() == sc.peers)
          break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  ~harness() {
    self_->send(torrent_, stop_request{});
    self_->wait_for(torrent_);
  }

  torrent_progress progress() {
    torrent_progress out;
    self_->request(torrent_, caf::infinite, get_progress{})
      .receive([&](torrent_progress& p) { out = std::move(p); },
               [&](caf::error& e) {
                 std::string why = caf::to_string(e);
                 self_->receive([&](caf::down_msg& dm) { why += ": " + caf::to_string(dm.reason); },
                                caf::after(std::chrono::seconds(1)) >> [] {});
                 throw std::runtime_error("torrent actor: " + why);
               });
    return out;
  }
  std::map<std::string, double> metrics() { return parse_metrics(progress().metrics); }

  /// Sends each peer its announcement and waits until the torrent has applied all of them.
  void announce(const std::vector<announce_pieces>& per_peer) {
    std::vector<std::pair<peer_slot, caf::actor>> peers;
    {
      std::lock_guard<std::mutex> g(sw_->mu);
      peers = sw_->peers;
    }
    // All at once: each peer answers (true) once its messages are in the torrent's mailbox.
    for (std::size_t i = 0; i < peers.size(); ++i)
      self_->send(peers[i].second, per_peer[i]);
    std::size_t replies = 0;
    self_->receive_for(replies, peers.size())([](bool) {});
    progress(); // after every announcement in the mailbox: applied
  }

  /// Unchokes every peer and measures how long `target` blocks take to be received.
  double serve(std::uint64_t target, bool stats_per_block, std::uint32_t blocks_per_read) {
    sw_->target = target;
    sw_->stats_per_block = stats_per_block;
    sw_->blocks_per_read = blocks_per_read;
    auto fut = sw_->done.get_future();
    sw_->serving = true;
    auto t0 = clock_type::now();
    std::lock_guard<std::mutex> g(sw_->mu);
    for (auto& [slot, p] : sw_->peers)
      self_->send(p, start_serving{});
    auto t1 = fut.get();
    progress(); // drain what was already sent
    return std::chrono::duration<double>(t1 - t0).count();
  }

  std::uint32_t peer_count() const { return sc_.peers; }

private:
  caf::actor_system& sys_;
  caf::scoped_actor self_;
  std::shared_ptr<swarm> sw_;
  scenario sc_;
  std::shared_ptr<const metainfo> meta_;
  caf::actor observer_;
  caf::actor torrent_;
};

struct storm_result {
  double seconds = 0;
  double haves = 0;
  double passes = 0;
  double messages = 0;
};

/// A: each peer starts with a random 10 % bitfield, then announces `per_peer` more pieces.
storm_result have_storm(caf::actor_system& sys, const std::string& dir, std::uint32_t pieces,
                        std::uint32_t peers, std::uint32_t per_peer, bool batching,
                        std::uint32_t haves_per_read) {
  scenario sc;
  sc.pieces = pieces;
  sc.peers = peers;
  sc.batch_availability = batching;
  harness h(sys, sc, dir);
  std::mt19937 rng(42);
  std::vector<announce_pieces> initial(peers), storm(peers);
  for (std::uint32_t i = 0; i < peers; ++i) {
    bitfield bits(pieces);
    for (std::uint32_t p = 0; p < pieces; ++p)
      if (rng() % 10 == 0)
        bits.set(piece_index{p});
    std::vector<piece_index> more;
    while (more.size() < per_peer) {
      piece_index p{static_cast<std::uint32_t>(rng() % pieces)};
      if (!bits.test(p)) {
        bits.set(p);
        more.push_back(p);
      }
    }
    for (auto p : more)
      bits.reset(p);
    initial[i].has_bitfield = true;
    initial[i].bits = std::move(bits);
    storm[i].haves = std::move(more);
    storm[i].haves_per_message = batching ? haves_per_read : 1;
  }
  h.announce(initial);
  auto before = h.metrics();
  auto t0 = clock_type::now();
  h.announce(storm);
  auto t1 = clock_type::now();
  auto after = h.metrics();
  storm_result r;
  r.seconds = std::chrono::duration<double>(t1 - t0).count();
  r.haves = after["actorrent_haves_received"] - before["actorrent_haves_received"];
  r.passes = after["actorrent_picker_availability_passes"] -
             before["actorrent_picker_availability_passes"];
  r.messages = after["actorrent_availability_messages"] - before["actorrent_availability_messages"];
  return r;
}

struct serve_result {
  double seconds = 0;
  double blocks = 0;
  double stored_msgs = 0;
  double activity_msgs = 0;
  double refills = 0;
};

/// B and C: peers with random 50 % bitfields (a fifth are seeds) deliver `target` blocks.
serve_result receive_blocks(caf::actor_system& sys, const std::string& dir, std::uint32_t pieces,
                            std::uint32_t peers, std::uint64_t target, bool recompute,
                            bool stats_per_block) {
  scenario sc;
  sc.pieces = pieces;
  sc.peers = peers;
  sc.recompute_requests = recompute;
  harness h(sys, sc, dir);
  std::mt19937 rng(7);
  std::vector<announce_pieces> initial(peers);
  for (std::uint32_t i = 0; i < peers; ++i) {
    bool seed = i % 5 == 0;
    bitfield bits(pieces, seed);
    if (!seed)
      for (std::uint32_t p = 0; p < pieces; ++p)
        if (rng() % 2 == 0)
          bits.set(piece_index{p});
    initial[i].has_bitfield = true;
    initial[i].bits = std::move(bits);
  }
  h.announce(initial);
  auto before = h.metrics();
  serve_result r;
  r.seconds = h.serve(target, stats_per_block, 16);
  auto after = h.metrics();
  r.blocks = after["actorrent_blocks_received"] - before["actorrent_blocks_received"];
  r.stored_msgs = after["actorrent_blocks_stored_messages"] - before["actorrent_blocks_stored_messages"];
  r.activity_msgs =
    after["actorrent_peer_activity_messages"] - before["actorrent_peer_activity_messages"];
  r.refills = after["actorrent_request_batches"] - before["actorrent_request_batches"];
  return r;
}

template <class F>
auto median_of(int reps, F f) {
  std::vector<decltype(f())> runs;
  for (int i = 0; i < reps; ++i)
    runs.push_back(f());
  std::sort(runs.begin(), runs.end(), [](auto& a, auto& b) { return a.seconds < b.seconds; });
  return runs[runs.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
  std::uint32_t peers = 1000;
  int reps = 3;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--peers" && i + 1 < argc)
      peers = static_cast<std::uint32_t>(std::stoul(argv[++i]));
    else if (a == "--reps" && i + 1 < argc)
      reps = std::stoi(argv[++i]);
    else if (a == "--quick")
      quick = true;
    else {
      std::fprintf(stderr, "usage: swarm_bench [--peers N] [--reps N] [--quick]\n");
      return 2;
    }
  }
  // The torrent logs through these; the bench keeps them quiet.
  auto null_sink = std::getenv("SWARM_LOG") ? std::shared_ptr<spdlog::sinks::sink>(std::make_shared<spdlog::sinks::stderr_sink_mt>()) : std::shared_ptr<spdlog::sinks::sink>(std::make_shared<spdlog::sinks::null_sink_mt>());
  for (auto name : {"session", "torrent", "peer", "storage", "tracker"})
  {
    auto l = std::make_shared<spdlog::logger>(name, null_sink);
    if (std::getenv("SWARM_LOG"))
      l->set_level(spdlog::level::debug);
    spdlog::register_logger(l);
  }

  auto dir = (std::filesystem::temp_directory_path() / ("actorrent-swarm-" + std::to_string(::getpid())))
               .string();
  std::filesystem::create_directories(dir);
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", std::uint64_t{2});
  cfg.set("work-stealing.moderate-poll-attempts", std::uint64_t{0});
  int rc = 0;
  {
    caf::actor_system sys{cfg};
    std::uint32_t storm_per_peer = quick ? 20 : 100;
    const std::uint32_t haves_per_read = 16;
    std::printf("# Torrent-actor load (in process, %u synthetic peers, medians of %d)\n\n", peers,
                reps);
    std::printf("## A. HAVE storm: batching on vs off\n\n");
    std::printf("Each peer starts with a random 10 %% bitfield, then announces %u more pieces; with "
                "batching a read carries %u HAVEs in one message and the torrent applies what "
                "waits in its mailbox in one pass.\n\n",
                storm_per_peer, haves_per_read);
    std::printf("| pieces | variant | HAVEs | messages | picker updates | updates per HAVE | "
                "time s | HAVEs/s |\n|---|---|---|---|---|---|---|---|\n");
    std::map<std::uint32_t, std::pair<storm_result, storm_result>> storms;
    for (std::uint32_t pieces : {10000u, 100000u}) {
      auto on = median_of(reps, [&] {
        return have_storm(sys, dir + "/a", pieces, peers, storm_per_peer, true, haves_per_read);
      });
      auto off = median_of(reps, [&] {
        return have_storm(sys, dir + "/a", pieces, peers, storm_per_peer, false, haves_per_read);
      });
      for (auto [name, r] : {std::pair<const char*, storm_result>{"batching on", on},
                             std::pair<const char*, storm_result>{"batching off", off}})
        std::printf("| %u | %s | %.0f | %.0f | %.0f | %.4f | %.3f | %.0f |\n", pieces, name,
                    r.haves, r.messages, r.passes, r.passes / r.haves, r.seconds,
                    r.haves / r.seconds);
      storms[pieces] = {on, off};
    }
    std::printf("\n| pieces | fewer picker updates (target >= 5x) | throughput gain (target >= 3x) |\n"
                "|---|---|---|\n");
    for (auto& [pieces, r] : storms)
      std::printf("| %u | %.1fx | %.2fx |\n", pieces, r.second.passes / r.first.passes,
                  (r.first.haves / r.first.seconds) / (r.second.haves / r.second.seconds));

    std::uint64_t target = quick ? 40000 : 150000;
    std::printf("\n## B. Block receipt with request refills: incremental vs recomputed request "
                "state\n\n");
    std::printf("Peers hold random 50 %% bitfields (every fifth is a seed), pipeline 16, "
                "256 KiB pieces; %llu blocks received in 16-block reads (%llu, one run, for the "
                "recomputing variant).\n\n",
                static_cast<unsigned long long>(target),
                static_cast<unsigned long long>(target / 4));
    std::printf("| pieces | request state | blocks | refills | time s | blocks/s | us per "
                "blocks_stored message |\n|---|---|---|---|---|---|---|\n");
    std::map<std::pair<std::uint32_t, bool>, serve_result> serves;
    for (std::uint32_t pieces : {10000u, 100000u}) {
      for (bool recompute : {false, true}) {
        // The recomputing variant costs milliseconds per refill at 100k pieces: fewer blocks,
        // one run (its per-event cost is what is compared).
        auto r = median_of(recompute ? 1 : reps, [&] {
          return receive_blocks(sys, dir + "/b", pieces, peers, recompute ? target / 4 : target,
                                recompute, false);
        });
        serves[{pieces, recompute}] = r;
        std::printf("| %u | %s | %.0f | %.0f | %.3f | %.0f | %.2f |\n", pieces,
                    recompute ? "recomputed" : "incremental", r.blocks, r.refills, r.seconds,
                    r.blocks / r.seconds, 1e6 * r.seconds / r.stored_msgs);
      }
    }
    auto per_event = [&](std::uint32_t pieces, bool recompute) {
      auto& r = serves[{pieces, recompute}];
      return r.seconds / r.stored_msgs;
    };
    std::printf("\n| measure | value |\n|---|---|\n");
    std::printf("| incremental vs recomputed, 10k pieces (time ratio) | %.2fx |\n",
                per_event(10000, true) / per_event(10000, false));
    std::printf("| incremental vs recomputed, 100k pieces (time ratio) | %.2fx |\n",
                per_event(100000, true) / per_event(100000, false));
    std::printf("| incremental: per-event cost at 100k / at 10k pieces (target <= 1.5x) | %.2fx |\n",
                per_event(100000, false) / per_event(10000, false));
    std::printf("| recomputed: per-event cost at 100k / at 10k pieces | %.2fx |\n",
                per_event(100000, true) / per_event(10000, true));

    std::printf("\n## C. Peer statistics: published per read vs per block\n\n");
    std::printf("| statistics | peer_activity messages | time s | blocks/s |\n|---|---|---|---|\n");
    auto batched = median_of(reps, [&] {
      return receive_blocks(sys, dir + "/c", 10000, peers, target, false, false);
    });
    auto per_block = median_of(reps, [&] {
      return receive_blocks(sys, dir + "/c", 10000, peers, target, false, true);
    });
    std::printf("| per read (16 blocks) | %.0f | %.3f | %.0f |\n", batched.activity_msgs,
                batched.seconds, batched.blocks / batched.seconds);
    std::printf("| per block | %.0f | %.3f | %.0f |\n", per_block.activity_msgs, per_block.seconds,
                per_block.blocks / per_block.seconds);
    std::printf("\nBatched statistics: %.2fx the block throughput of per-block statistics.\n",
                (batched.blocks / batched.seconds) / (per_block.blocks / per_block.seconds));
    sys.await_all_actors_done();
  }
  std::filesystem::remove_all(dir);
  return rc;
}
