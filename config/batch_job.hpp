// Batch job files (`actorrent batch JOBFILE`, config/batch.proto): loading, validation and the
// resolved plan the batch command runs. CAF-free, so the parser is unit-tested and fuzzed
// directly. Errors in the file itself name FILE:LINE:COLUMN (text format) or FILE: JSON.PATH
// (proto3 JSON); problems of one job's torrent make that job fail alone.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.hpp"
#include "protocol/magnet.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/types.hpp"

namespace actorrent {

enum class batch_format : std::uint8_t { text, json };

struct batch_peer {
  std::string host;
  std::uint16_t port = 0;
};

/// One job after validation: paths resolved against the job file's folder.
struct batch_job {
  std::size_t index = 0;      // position in the file (0-based), the tie-break of `priority`
  std::string where;          // "FILE:LINE:COLUMN" or "FILE: job[N]" of the job, for messages
  std::string name;
  std::string torrent;        // resolved path, or empty for a magnet job
  std::string magnet;
  std::shared_ptr<const magnet_link> link; // `magnet` parsed (null for a torrent job)
  std::string output;         // resolved folder (the files go to <output>/<torrent name>)
  std::vector<std::string> select_files; // zero or one list ("1,3-5")
  std::vector<std::string> select_globs;
  std::vector<batch_peer> peers;
  std::uint64_t download_limit = 0; // bytes per second (0: none)
  std::uint64_t upload_limit = 0;
  double seed_ratio = 0;
  std::uint32_t seed_time_s = 0;
  std::int32_t priority = 0;
  std::uint32_t timeout_s = 0;
  bool no_tracker = false;

  // What validation found out about the torrent (the job runs only when `problem` is empty).
  std::shared_ptr<const metainfo> meta;
  std::vector<file_priority> priorities; // one per file; empty: every file
  std::uint64_t selected_size = 0;       // content bytes of the selected files
  std::string problem;                   // why this job cannot run (it fails alone)
};

struct batch_settings {
  std::uint32_t max_active = 2;
  std::string listen;                    // empty: every interface, 6881-6889
  std::string state_dir;                 // resolved
  std::uint64_t download_limit = 0;
  std::uint64_t upload_limit = 0;
  std::string listen_host;               // `listen` parsed ("[::1]:7001": "::1", 7001)
  std::uint16_t listen_port = 0;
  bool dht = true;                       // a DHT node for every job (BEP 5), not no_dht
  std::vector<batch_peer> dht_bootstrap; // nodes to start it from
};

struct batch_plan {
  std::string file;                      // the job file as given
  batch_settings settings;
  std::vector<batch_job> jobs;           // in file order
  /// Indices into `jobs` in the order they start: higher priority first, then file order.
  std::vector<std::size_t> queue_order() const;
};

/// The format a job file's extension names: .textproto/.txtpb (text), .json; nullopt-like
/// error (errc::invalid_argument) for anything else.
result<batch_format> batch_format_of(const std::string& path);

/// Parses and validates job file contents. `path` is used for messages and to resolve
/// relative paths (against its folder). Every error of the file itself (syntax, unknown
/// fields, wrong types, malformed values such as "20Q" or "1,,3", missing torrent files,
/// duplicate names or outputs, an output inside another's, unsafe paths) is returned as
/// errc::invalid_argument naming FILE:LINE:COLUMN or FILE: JSON.PATH. A torrent that exists
/// but does not parse, a selection that does not fit it, or a selection on a magnet link (whose
/// file list is not known before it starts) only sets that job's `problem`. Reads the torrent files; writes nothing.
/// Bounded: contents over 16 MiB are refused.
result<batch_plan> parse_batch(std::string_view contents, batch_format format,
                               const std::string& path);

/// Reads the file (at most 16 MiB) and parses it by its extension.
result<batch_plan> load_batch(const std::string& path);

} // namespace actorrent
