// Fuzz target: parse_batch (config/batch_job.hpp) on arbitrary job files. The first byte picks
// the format (even: protobuf text format, odd: proto3 JSON); the rest is the file. The job file
// lives in a private directory on tmpfs (/dev/shm, else $TMPDIR) that holds two torrents,
// t/a.torrent (one file) and t/b.torrent (three files), and a broken one, t/x.torrent, so that
// mutated job files reach the torrent, selection and output checks.
// Invariants: every error is errc::invalid_argument and starts with the job file's path; a text
// error names LINE:COLUMN or the bare path, a JSON error "PATH: "; a parsed plan has at least one
// job, unique non-empty names, absolute outputs that are neither equal nor nested, exactly one
// of torrent and magnet per job, a problem for every magnet job and for every job without a
// parsed torrent, a priority list of one entry per file or none, and a queue order that is a
// permutation sorted by priority. Parsing never throws or writes.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "config/batch_job.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace actorrent;

namespace {

namespace fs = std::filesystem;

std::string make_fixture() {
  const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/actorrent_batch_fuzz_XXXXXX";
  if (!::mkdtemp(tmpl.data()))
    std::abort();
  fs::create_directories(tmpl + "/t");
  auto put = [&](const char* rel, const std::string& bytes) {
    std::ofstream(tmpl + "/" + rel, std::ios::binary) << bytes;
  };
  const std::string hashes20(20, '\0');
  put("t/a.torrent", "d4:infod6:lengthi100e4:name5:a.bin12:piece lengthi16384e6:pieces20:" +
                       hashes20 + "ee");
  put("t/b.torrent", "d4:infod5:filesld6:lengthi10e4:pathl5:1.txteed6:lengthi20e4:pathl1:d5:"
                     "2.isoeed6:lengthi0e4:pathl5:3.isoeee4:name1:b12:piece lengthi16384e6:"
                     "pieces20:" + hashes20 + "ee");
  put("t/x.torrent", "d4:infod6:lengthi-5eee");
  return tmpl;
}

bool is_nested(const std::string& a, const std::string& b) {
  return a.size() > b.size() && a.compare(0, b.size(), b) == 0 && a[b.size()] == '/';
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string dir = make_fixture();
  if (size == 0)
    return 0;
  const auto fmt = (data[0] & 1) ? batch_format::json : batch_format::text;
  const std::string path = dir + (fmt == batch_format::json ? "/jobs.json" : "/jobs.textproto");
  std::string_view contents(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto r = parse_batch(contents, fmt, path);
  if (!r) {
    const auto& msg = r.error().message;
    FUZZ_CHECK(r.error().code == errc::invalid_argument, msg);
    FUZZ_CHECK(msg.compare(0, path.size(), path) == 0, msg);
    FUZZ_CHECK(msg.size() > path.size() && (msg[path.size()] == ':'), msg);
    if (fmt == batch_format::json)
      FUZZ_CHECK(msg.compare(path.size(), 2, ": ") == 0, msg);
    return 0;
  }
  const auto& plan = *r;
  FUZZ_CHECK(!plan.jobs.empty(), "a plan without jobs");
  FUZZ_CHECK(plan.settings.max_active >= 1, "max_active 0");
  for (std::size_t i = 0; i < plan.jobs.size(); ++i) {
    const auto& j = plan.jobs[i];
    FUZZ_CHECK(j.index == i, j.name);
    FUZZ_CHECK(!j.name.empty(), j.where);
    FUZZ_CHECK(!j.output.empty() && j.output[0] == '/', j.output);
    FUZZ_CHECK(j.torrent.empty() != j.magnet.empty(), j.name);
    if (!j.magnet.empty())
      FUZZ_CHECK(j.link && !j.meta && j.magnet.rfind("magnet:?", 0) == 0, j.magnet);
    if (!j.meta && !j.link)
      FUZZ_CHECK(!j.problem.empty(), j.name);
    if (j.meta)
      FUZZ_CHECK(j.priorities.empty() || j.priorities.size() == j.meta->files.size(),
                 j.name);
    for (std::size_t k = 0; k < i; ++k) {
      const auto& o = plan.jobs[k];
      FUZZ_CHECK(o.name != j.name, j.name);
      FUZZ_CHECK(o.output != j.output && !is_nested(o.output, j.output) &&
                   !is_nested(j.output, o.output),
                 j.output + " / " + o.output);
    }
  }
  auto order = plan.queue_order();
  FUZZ_CHECK(order.size() == plan.jobs.size(), "queue order size");
  auto sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i)
    FUZZ_CHECK(sorted[i] == i, "queue order is not a permutation");
  for (std::size_t i = 1; i < order.size(); ++i)
    FUZZ_CHECK(plan.jobs[order[i - 1]].priority >= plan.jobs[order[i]].priority,
               "queue order not by priority");
  return 0;
}
