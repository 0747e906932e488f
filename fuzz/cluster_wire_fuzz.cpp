// Fuzz target: cluster::decode and cluster::bitmap_from (cluster/wire.hpp) on arbitrary bytes:
// every byte string another cluster node sends goes through them first.
// The whole input is decoded as an envelope (for the job's fixed info-hash and for none) and as
// a piece bitmap for several piece counts; the bitmaps inside a decoded Assign or Report are
// decoded too.
// Invariants: decoding never throws and never prints (CRoaring's reader prints on truncated
// input: the layout walk must stop such input first — stdout is not checked here, the unit
// test does); every error is errc::cluster_protocol starting with "cluster message: ";
// an envelope accepted for the job's hash is accepted for none; an accepted envelope has
// version 1, a 20-byte info-hash and a body, and encode() of it decodes to the same
// serialization (a fixpoint); an accepted bitmap holds only pieces < piece_count, is accepted
// for a larger count and refused for a count not above its maximum, and bitmap_bytes() of it
// decodes to the same set.
//
// Seeds: ACTORRENT_CLUSTER_WIRE_SEEDS=DIR ./cluster_wire_fuzz writes valid envelopes of every
// body type and bitmaps (empty, runs, arrays, a bitset container) plus near-valid variants
// (another version, another info-hash, truncated, one byte flipped) into DIR and exits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "cluster/wire.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace actorrent;
using namespace actorrent::cluster;

namespace {

const info_hash& job_hash() {
  static const info_hash h = [] {
    info_hash x{};
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] = static_cast<std::uint8_t>(0xa0 + i);
    return x;
  }();
  return h;
}

bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

void check_bitmap(const std::string& bytes, std::uint32_t n) {
  auto r = bitmap_from(bytes, n);
  if (!r.ok()) {
    FUZZ_CHECK(r.error().code == errc::cluster_protocol, r.error().message);
    FUZZ_CHECK(starts_with(r.error().message, "cluster message: piece bitmap"),
               r.error().message);
    return;
  }
  const Roaring& set = *r;
  if (!set.isEmpty()) {
    FUZZ_CHECK(set.maximum() < n, "piece " + std::to_string(set.maximum()) + " of " +
                                      std::to_string(n));
    // Refused exactly when the count does not cover the maximum.
    FUZZ_CHECK(!bitmap_from(bytes, set.maximum()).ok(), "accepted for a count <= its maximum");
  }
  if (n < (1u << 24))
    FUZZ_CHECK(bitmap_from(bytes, n + 1000).ok(), "refused for a larger count");
  auto again = bitmap_from(bitmap_bytes(set), n);
  FUZZ_CHECK(again.ok() && *again == set, "bitmap_bytes does not round-trip");
}

void check_envelope(const std::string& bytes) {
  auto with_hash = decode(bytes, &job_hash());
  auto any = decode(bytes, nullptr);
  for (auto* r : {&with_hash, &any})
    if (!r->ok()) {
      FUZZ_CHECK(r->error().code == errc::cluster_protocol, r->error().message);
      FUZZ_CHECK(starts_with(r->error().message, "cluster message: "), r->error().message);
    }
  if (with_hash.ok())
    FUZZ_CHECK(any.ok(), "accepted for the job's hash but not for any");
  if (!any.ok())
    return;
  const wire::Envelope& env = *any;
  FUZZ_CHECK(env.version() == protocol_version(), "accepted another version");
  FUZZ_CHECK(env.info_hash().size() == 20, "accepted a short info-hash");
  FUZZ_CHECK(env.body_case() != wire::Envelope::BODY_NOT_SET, "accepted no body");
  info_hash h{};
  std::copy(env.info_hash().begin(), env.info_hash().end(), h.begin());
  const auto encoded = encode(env, h);
  auto back = decode(encoded, &h);
  FUZZ_CHECK(back.ok(), back.ok() ? "" : back.error().message);
  FUZZ_CHECK(encode(*back, h) == encoded, "encode/decode is not a fixpoint");
  if (env.has_assign())
    check_bitmap(env.assign().pieces(), 100000);
  if (env.has_report())
    check_bitmap(env.report().verified(), 100000);
}

void write_seed(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
}

void write_seeds(const std::string& dir) {
  const auto& h = job_hash();
  Roaring runs;
  runs.addRange(0, 300);
  runs.addRange(1000, 1100);
  Roaring sparse;
  for (std::uint32_t i = 0; i < 2000; i += 7)
    sparse.add(i);
  Roaring dense; // a bitset container (more than 4,096 values in one container)
  for (std::uint32_t i = 0; i < 20000; i += 2)
    dense.add(i);
  dense.add(70000); // and a second container
  write_seed(dir, "bitmap_empty", bitmap_bytes(Roaring{}));
  write_seed(dir, "bitmap_runs", bitmap_bytes(runs));
  write_seed(dir, "bitmap_sparse", bitmap_bytes(sparse));
  const auto dense_bytes = bitmap_bytes(dense);
  write_seed(dir, "bitmap_dense", dense_bytes);
  write_seed(dir, "bitmap_truncated", dense_bytes.substr(0, dense_bytes.size() - 3));

  wire::Envelope e;
  e.mutable_hello()->set_name("worker-1");
  e.mutable_hello()->set_listen("127.0.0.1:6881");
  e.mutable_hello()->set_download_limit(1 << 20);
  write_seed(dir, "hello", encode(e, h));
  e.Clear();
  auto* w = e.mutable_welcome();
  w->set_worker_id(3);
  w->set_mode(wire::MODE_REPLICATE);
  w->add_peers("127.0.0.1:6882");
  w->set_use_trackers(true);
  w->set_lease_ms(3000);
  w->set_torrent("d4:infod6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:"
                 "aaaaaaaaaaaaaaaaaaaaee");
  write_seed(dir, "welcome", encode(e, h));
  e.Clear();
  e.mutable_refused()->set_reason("protocol version 2, this node speaks 1");
  write_seed(dir, "refused", encode(e, h));
  e.Clear();
  e.mutable_assign()->set_epoch(7);
  e.mutable_assign()->set_pieces(bitmap_bytes(runs));
  e.mutable_assign()->add_cluster_peers("127.0.0.1:7000");
  const auto assign = encode(e, h);
  write_seed(dir, "assign", assign);
  e.Clear();
  e.mutable_ack()->set_epoch(7);
  write_seed(dir, "ack", encode(e, h));
  e.Clear();
  e.mutable_report()->set_epoch(7);
  e.mutable_report()->set_verified(bitmap_bytes(sparse));
  e.mutable_report()->set_rate(1.5e6);
  e.mutable_report()->set_downloaded(123456789);
  write_seed(dir, "report", encode(e, h));
  e.Clear();
  e.mutable_lease()->set_valid_ms(3000);
  write_seed(dir, "lease", encode(e, h));
  e.Clear();
  e.mutable_done();
  write_seed(dir, "done", encode(e, h));

  // Near-valid: one thing wrong each.
  info_hash other = h;
  other[0] ^= 1;
  e.Clear();
  e.mutable_ack()->set_epoch(1);
  write_seed(dir, "other_torrent", encode(e, other));
  auto v2 = e;
  v2.set_version(2);
  v2.set_info_hash(std::string(h.begin(), h.end()));
  write_seed(dir, "version_2", v2.SerializeAsString());
  write_seed(dir, "no_body", encode(wire::Envelope{}, h));
  write_seed(dir, "assign_truncated", assign.substr(0, assign.size() - 2));
  auto flipped = assign;
  flipped[flipped.size() - 5] ^= 0x40;
  write_seed(dir, "assign_bitmap_flipped", flipped);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("ACTORRENT_CLUSTER_WIRE_SEEDS")) {
    write_seeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  check_envelope(bytes);
  for (std::uint32_t n : {0u, 1u, 300u, 65536u, 100000u})
    check_bitmap(bytes, n);
  return 0;
}
