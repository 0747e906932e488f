#include "config/batch_job.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <unordered_map>

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include "actors/endpoint.hpp"
#include "config/batch.pb.h"
#include "protocol/units.hpp"
#include "storage/file_layout.hpp"
#include "storage/file_selection.hpp"

namespace actorrent {

namespace fs = std::filesystem;
namespace pb = google::protobuf;

namespace {

constexpr std::size_t max_job_file_size = 16u << 20;
constexpr std::size_t max_name_length = 200;
// Jobs in one file: far more than one session runs well, and it bounds validation's work.
constexpr std::size_t max_jobs = 10000;
constexpr std::size_t max_dht_bootstrap = 64;

error invalid(std::string msg) { return error{errc::invalid_argument, std::move(msg)}; }

/// The 1-based character column of protobuf's 0-based `column` on 0-based `line` of `text`.
/// Its tokenizer advances a tab to the next multiple of 8 and counts bytes; an editor counts a
/// tab, and a UTF-8 character, as one.
/// `starts`: the offset of every line (line_starts), so that each lookup costs one line.
int char_column(std::string_view text, const std::vector<std::size_t>& starts, int line,
                int column) {
  if (line < 0 || static_cast<std::size_t>(line) >= starts.size())
    return column + 1;
  std::size_t at = starts[static_cast<std::size_t>(line)];
  int pb_col = 0, chars = 0;
  for (; at < text.size() && text[at] != '\n' && pb_col < column; ++at) {
    auto c = static_cast<unsigned char>(text[at]);
    pb_col += c == '\t' ? 8 - pb_col % 8 : 1;
    if ((c & 0xc0) != 0x80)
      ++chars;
  }
  return chars + 1;
}

std::vector<std::size_t> line_starts(std::string_view text) {
  std::vector<std::size_t> starts{0};
  for (std::size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\n')
      starts.push_back(i + 1);
  return starts;
}

/// The first syntax error of the text parser, as "FILE:LINE:COLUMN: what" (1-based).
class first_error : public pb::io::ErrorCollector {
public:
  first_error(std::string file, std::string_view contents)
    : file_(std::move(file)), contents_(contents) {}
  // Line starts only once there is an error (a valid file never needs them here).
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (text_.empty())
      text_ = file_ + ":" + std::to_string(line + 1) + ":" +
              std::to_string(char_column(contents_, line_starts(contents_), line, column)) +
              ": " + message;
  }
  void AddWarning(int, pb::io::ColumnNumber, const std::string&) override {}
  const std::string& text() const { return text_; }

private:
  std::string file_;
  std::string_view contents_;
  std::string text_;
};

/// Names where a field of the file is: FILE:LINE:COLUMN from the text parser's locations, or
/// FILE: JSON.PATH (the JSON parser records no locations).
class locator {
public:
  locator(std::string file, batch_format fmt, const pb::TextFormat::ParseInfoTree* tree,
          std::string_view contents)
    : file_(std::move(file)), fmt_(fmt), tree_(tree), contents_(contents),
      starts_(fmt == batch_format::text ? line_starts(contents) : std::vector<std::size_t>{}) {}

  /// The settings block (job < 0) or job `job`; `field` empty: the block itself.
  std::string at(int job, const std::string& field = {}, int index = -1) const {
    auto* root_desc = config::batch_file::descriptor();
    const pb::FieldDescriptor* block_fd =
      root_desc->FindFieldByName(job < 0 ? "settings" : "job");
    const pb::Descriptor* desc =
      job < 0 ? config::batch_settings::descriptor() : config::batch_job::descriptor();
    const pb::FieldDescriptor* fd = field.empty() ? nullptr : desc->FindFieldByName(field);
    if (fmt_ == batch_format::json) {
      std::string path = job < 0 ? "settings" : "job[" + std::to_string(job) + "]";
      if (!field.empty())
        path += "." + field;
      if (index >= 0)
        path += "[" + std::to_string(index) + "]";
      return file_ + ": " + path;
    }
    const int block_index = job < 0 ? -1 : job;
    if (tree_ && fd) {
      if (auto* sub = tree_->GetTreeForNested(block_fd, block_index)) {
        auto l = sub->GetLocation(fd, fd->is_repeated() ? std::max(index, 0) : -1);
        if (l.line >= 0)
          return pos(l);
      }
    }
    if (tree_) {
      auto l = tree_->GetLocation(block_fd, block_index);
      if (l.line >= 0)
        return pos(l);
    }
    return file_;
  }

private:
  std::string pos(const pb::TextFormat::ParseLocation& l) const {
    return file_ + ":" + std::to_string(l.line + 1) + ":" +
           std::to_string(char_column(contents_, starts_, l.line, l.column));
  }
  std::string file_;
  batch_format fmt_;
  const pb::TextFormat::ParseInfoTree* tree_;
  std::string_view contents_;
  std::vector<std::size_t> starts_;
};

/// "(job[1].peer[0]): invalid value 1 ..." / "(job[1]) bogus: Cannot find field." from the
/// JSON parser into "FILE: job[1].peer[0]: invalid value 1 ..." / "FILE: job[1].bogus: unknown
/// field". Syntax errors carry no path: their text (on one line) follows "FILE: ".
std::string json_error(const std::string& file, std::string msg) {
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  while (!msg.empty() && (msg.back() == ' ' || msg.back() == '^'))
    msg.pop_back();
  if (!msg.empty() && msg[0] == '(') {
    auto close = msg.find(')');
    if (close != std::string::npos) {
      std::string path = msg.substr(1, close - 1);
      std::string rest = msg.substr(close + 1);
      const std::string unknown = ": Cannot find field.";
      if (rest.size() > unknown.size() && rest[0] == ' ' &&
          rest.compare(rest.size() - unknown.size(), unknown.size(), unknown) == 0) {
        auto name = rest.substr(1, rest.size() - 1 - unknown.size());
        return file + ": " + (path.empty() ? name : path + "." + name) + ": unknown field";
      }
      if (rest.size() > 2 && rest.compare(0, 2, ": ") == 0)
        return file + ": " + (path.empty() ? "(top level)" : path) + rest;
    }
  }
  return file + ": JSON: " + msg;
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

/// Why a path the user wrote is refused, or empty: no "..", no control characters, not empty.
std::string unsafe_path_reason(const std::string& text) {
  if (text.empty())
    return "is empty";
  if (has_control(text))
    return "contains a control character";
  for (auto& part : fs::path(text))
    if (part == "..")
      return "contains \"..\" (outputs and state stay below the folders they name)";
  return {};
}

bool parse_peer(const std::string& text, batch_peer& out, bool allow_port_zero) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size() ||
      colon + 6 < text.size())
    return false;
  std::uint32_t port = 0;
  for (std::size_t i = colon + 1; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9')
      return false;
    port = port * 10 + static_cast<std::uint32_t>(text[i] - '0');
  }
  if (port > 65535 || (port == 0 && !allow_port_zero))
    return false;
  out.host = text.substr(0, colon);
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']')
    out.host = out.host.substr(1, out.host.size() - 2); // [::1]:7001
  out.port = static_cast<std::uint16_t>(port);
  return !has_control(out.host);
}

/// A rate field: empty or "0" is none; anything else as `download --download-limit`.
result<std::uint64_t> rate_of(const std::string& text, const std::string& where,
                              const char* field) {
  if (text.empty())
    return std::uint64_t{0};
  std::string why;
  auto r = parse_rate(text, why);
  if (!r)
    return invalid(where + ": " + field + " \"" + text + "\" is not a rate: " + why);
  return *r;
}

/// `inner` equals `outer` or lies below it (both lexically normal and absolute).
bool inside(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty() && std::next(o) == outer.end())
      return true; // a trailing separator
    if (i == inner.end() || *i != *o)
      return false;
  }
  return true;
}

fs::path resolve(const fs::path& base, const std::string& text) {
  fs::path p(text);
  if (p.is_relative())
    p = base / p;
  p = p.lexically_normal();
  // "out/a/" and "out/a" are the same folder.
  if (!p.has_filename() && p.has_parent_path() && p != p.root_path())
    p = p.parent_path();
  return p;
}

/// The folder a path names on disk: symbolic links of its existing part resolved (out/a ->
/// out/b makes both out/b), the rest lexical. For comparing outputs; messages keep the text.
fs::path on_disk(const std::string& path) {
  std::error_code ec;
  auto p = fs::weakly_canonical(fs::path(path), ec);
  if (ec)
    return fs::path(path);
  if (!p.has_filename() && p.has_parent_path() && p != p.root_path())
    p = p.parent_path();
  return p;
}

/// Why a folder (as on_disk gives it) is no place for a job's output or state, or empty: the
/// root, the system's own trees, or the home folder itself, where one job would write beside
/// (and could overwrite) the system's or the user's own files.
std::string system_folder_reason(const fs::path& folder) {
  if (folder == folder.root_path())
    return "is the root of the file system";
  static const char* const system[] = {"bin",  "boot", "dev",   "etc", "lib", "lib32", "lib64",
                                       "libx32", "proc", "run", "sbin", "sys", "usr"};
  // Places in those trees where users do keep data: shared memory, removable media.
  static const char* const allowed[] = {"/dev/shm/", "/run/media/", "/run/user/"};
  if (!folder.is_absolute())
    return {};
  auto first = std::next(folder.begin()); // after "/"
  if (first != folder.end()) {
    const auto text = folder.string() + "/";
    for (auto* place : allowed)
      if (text.rfind(place, 0) == 0 && text.size() > std::strlen(place))
        return {};
    for (auto* name : system)
      if (*first == name)
        return "is in /" + std::string(name) + ", a system folder";
  }
  if (const char* home = std::getenv("HOME"); home && *home && folder == on_disk(home))
    return "is the home folder itself (name a folder in it)";
  return {};
}

std::string stem_of(const std::string& path) {
  auto s = fs::path(path).stem().string();
  return s.empty() ? std::string("job") : s;
}

} // namespace

std::vector<std::size_t> batch_plan::queue_order() const {
  std::vector<std::size_t> order(jobs.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [this](std::size_t a, std::size_t b) {
    return jobs[a].priority > jobs[b].priority;
  });
  return order;
}

result<batch_format> batch_format_of(const std::string& path) {
  auto ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".textproto" || ext == ".txtpb")
    return batch_format::text;
  if (ext == ".json")
    return batch_format::json;
  return invalid(path + ": unknown job file type \"" + ext +
                 "\" (expected .textproto or .txtpb for text format, .json for JSON)");
}

result<batch_plan> parse_batch(std::string_view contents, batch_format format,
                               const std::string& path) {
  if (contents.size() > max_job_file_size)
    return invalid(path + ": job file is larger than 16 MiB");
  config::batch_file file;
  pb::TextFormat::ParseInfoTree tree;
  if (format == batch_format::text) {
    pb::TextFormat::Parser parser;
    first_error errors(path, contents);
    parser.RecordErrorsTo(&errors);
    parser.WriteLocationsTo(&tree);
    if (!parser.ParseFromString(std::string(contents), &file))
      return invalid(errors.text().empty() ? path + ": not a valid job file" : errors.text());
  } else {
    pb::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = false;
    auto st = pb::util::JsonStringToMessage(pb::StringPiece(contents.data(), contents.size()),
                                            &file, opts);
    if (!st.ok())
      return invalid(json_error(path, std::string(st.message())));
  }
  const locator loc(path, format, format == batch_format::text ? &tree : nullptr, contents);
  const fs::path base = fs::absolute(fs::path(path)).parent_path();

  batch_plan plan;
  plan.file = path;
  auto& s = file.settings();
  auto& ps = plan.settings;
  ps.max_active = s.max_active() == 0 ? 2 : s.max_active();
  if (s.max_active() > 10000)
    return invalid(loc.at(-1, "max_active") + ": max_active " + std::to_string(s.max_active()) +
                   " is above 10000");
  if (!s.listen().empty()) {
    batch_peer ep;
    if (!parse_peer(s.listen(), ep, true))
      return invalid(loc.at(-1, "listen") + ": listen \"" + s.listen() +
                     "\" is not HOST:PORT (port 0: any free port)");
    ps.listen = s.listen();
    ps.listen_host = ep.host;
    ps.listen_port = ep.port;
  }
  ps.dht = !s.no_dht();
  if (s.dht_bootstrap_size() > static_cast<int>(max_dht_bootstrap))
    return invalid(loc.at(-1, "dht_bootstrap") + ": more than " +
                   std::to_string(max_dht_bootstrap) + " dht_bootstrap nodes");
  for (int i = 0; i < s.dht_bootstrap_size(); ++i) {
    batch_peer ep;
    if (!parse_peer(s.dht_bootstrap(i), ep, false))
      return invalid(loc.at(-1, "dht_bootstrap", i) + ": dht_bootstrap \"" + s.dht_bootstrap(i) +
                     "\" is not HOST:PORT");
    ps.dht_bootstrap.push_back(std::move(ep));
  }
  // The DHT can find a job's peers when it has nodes to start from: given ones, or the public
  // routers, which a batch listening on loopback does not use.
  const bool dht_finds_peers =
    ps.dht && (!ps.dht_bootstrap.empty() || ps.listen.empty() || !is_loopback_host(ps.listen_host));
  {
    auto down = rate_of(s.download_limit(), loc.at(-1, "download_limit"), "download_limit");
    if (!down)
      return down.error();
    auto up = rate_of(s.upload_limit(), loc.at(-1, "upload_limit"), "upload_limit");
    if (!up)
      return up.error();
    ps.download_limit = *down;
    ps.upload_limit = *up;
  }
  std::string state_text = s.state_dir();
  if (state_text.empty())
    state_text = stem_of(path) + ".state";
  else if (auto why = unsafe_path_reason(state_text); !why.empty())
    return invalid(loc.at(-1, "state_dir") + ": state_dir \"" + state_text + "\" " + why);
  ps.state_dir = resolve(base, state_text).string();
  if (auto why = system_folder_reason(on_disk(ps.state_dir)); !why.empty())
    return invalid(loc.at(-1, "state_dir") + ": state_dir \"" + state_text + "\" " + why);

  if (file.job_size() == 0)
    return invalid(path + ": no job (add a `job { torrent: ... output: ... }` block)");
  if (file.job_size() > static_cast<int>(max_jobs))
    return invalid(loc.at(static_cast<int>(max_jobs)) + ": job " +
                   std::to_string(max_jobs + 1) + " is one too many (at most " +
                   std::to_string(max_jobs) + " jobs in a file; split it)");
  // Names and torrents seen so far (the first job of each): a linear check, not quadratic.
  std::unordered_map<std::string, std::size_t> names;
  std::unordered_map<std::string, std::size_t> hashes;

  std::vector<std::string> output_at, output_text; // per job, for the nesting check's message
  const fs::path state_on_disk = on_disk(ps.state_dir);
  for (int i = 0; i < file.job_size(); ++i) {
    const auto& j = file.job(i);
    batch_job job;
    job.index = static_cast<std::size_t>(i);
    job.where = loc.at(i);
    auto at = [&](const char* field, int index = -1) { return loc.at(i, field, index); };
    const bool has_torrent = !j.torrent().empty();
    const bool has_magnet = !j.magnet().empty();
    if (has_torrent == has_magnet)
      return invalid(job.where + ": job " + std::to_string(i + 1) +
                     (has_torrent ? " has both torrent and magnet" : " has no torrent (or magnet)"));
    if (has_magnet) {
      if (j.magnet().rfind("magnet:?", 0) != 0 || has_control(j.magnet()))
        return invalid(at("magnet") + ": magnet \"" + j.magnet() +
                       "\" is not a magnet link (expected magnet:?...)");
      job.magnet = j.magnet();
      // A malformed link is a mistake in the file, refused like a malformed rate.
      auto link = parse_magnet(j.magnet());
      if (!link)
        return invalid(at("magnet") + ": " + link.error().message);
      job.link = std::make_shared<const magnet_link>(std::move(*link));
    } else {
      if (has_control(j.torrent()))
        return invalid(at("torrent") + ": torrent path contains a control character");
      auto p = resolve(base, j.torrent());
      std::error_code ec;
      if (!fs::is_regular_file(p, ec))
        return invalid(at("torrent") + ": torrent file " + p.string() +
                       (fs::exists(p, ec) ? " is not a regular file" : " does not exist"));
      job.torrent = p.string();
    }
    if (j.output().empty())
      return invalid(job.where + ": job " + std::to_string(i + 1) + " has no output");
    if (auto why = unsafe_path_reason(j.output()); !why.empty())
      return invalid(at("output") + ": output \"" + j.output() + "\" " + why);
    job.output = resolve(base, j.output()).string();

    if (!j.select_file().empty()) {
      // The syntax now (a bad list is a mistake in the file); the numbers against the torrent
      // below (a torrent with fewer files fails its job alone).
      // Syntax only: expanding "1-4294967295" here would take 16 GiB.
      if (auto st = check_file_list(j.select_file()); !st)
        return invalid(at("select_file") + ": select_file \"" + j.select_file() + "\": " +
                       st.error().message);
      job.select_files.push_back(j.select_file());
    }
    for (int g = 0; g < j.select_size(); ++g) {
      if (auto st = check_glob(j.select(g)); !st)
        return invalid(at("select", g) + ": select \"" + j.select(g) + "\": " +
                       st.error().message);
      job.select_globs.push_back(j.select(g));
    }
    for (int p = 0; p < j.peer_size(); ++p) {
      batch_peer ep;
      if (!parse_peer(j.peer(p), ep, false))
        return invalid(at("peer", p) + ": peer \"" + j.peer(p) + "\" is not HOST:PORT");
      job.peers.push_back(ep);
    }
    job.no_tracker = j.no_tracker();
    if (job.no_tracker && job.peers.empty() && !(job.link && !job.link->peers.empty()) &&
        !dht_finds_peers)
      return invalid(at("no_tracker") + ": no_tracker needs at least one peer (or the DHT: "
                                        "dht_bootstrap in settings)");
    {
      auto down = rate_of(j.download_limit(), at("download_limit"), "download_limit");
      if (!down)
        return down.error();
      auto up = rate_of(j.upload_limit(), at("upload_limit"), "upload_limit");
      if (!up)
        return up.error();
      job.download_limit = *down;
      job.upload_limit = *up;
    }
    if (!std::isfinite(j.seed_ratio()) || j.seed_ratio() < 0)
      return invalid(at("seed_ratio") + ": seed_ratio must be a number >= 0");
    job.seed_ratio = j.seed_ratio();
    job.seed_time_s = j.seed_time_s();
    job.priority = j.priority();
    job.timeout_s = j.timeout_s();

    // A magnet link's file list comes with its metadata, after the start: a selection cannot
    // be checked (nor applied) before, so such a job fails alone.
    if (job.link && (!job.select_files.empty() || !job.select_globs.empty()))
      job.problem = "a file selection needs the torrent's metadata: give its .torrent "
                    "instead of the magnet link";
    // The torrent itself: one that does not parse fails this job alone.
    if (!job.torrent.empty()) {
      auto m = load_metainfo(job.torrent);
      if (!m) {
        job.problem = m.error().message;
      } else if (auto layout = file_layout::create(*m); !layout) {
        job.problem = job.torrent + ": " + layout.error().message;
      } else {
        auto sel = select_files(*layout, job.select_files, job.select_globs);
        if (!sel) {
          job.problem = job.torrent + ": " + sel.error().message;
        } else {
          for (std::size_t f = 0; f < m->files.size(); ++f)
            if (!m->files[f].pad && (*sel)[f] != file_priority::skip)
              job.selected_size += m->files[f].length;
          if (!job.select_files.empty() || !job.select_globs.empty())
            job.priorities = std::move(*sel);
        }
        job.meta = std::make_shared<const metainfo>(std::move(*m));
      }
    }
    if (!j.name().empty()) {
      job.name = j.name();
    } else if (job.meta) {
      job.name = job.meta->name;
    } else if (job.link && !job.link->name.empty()) {
      job.name = job.link->name;
    } else if (!job.torrent.empty()) {
      job.name = stem_of(job.torrent);
    } else {
      return invalid(job.where + ": job " + std::to_string(i + 1) +
                     " needs a name (its magnet link has no dn)");
    }
    const auto name_at = j.name().empty() ? job.where : at("name");
    if (job.name.size() > max_name_length || has_control(job.name))
      return invalid(name_at + ": job name must be at most 200 characters, without control "
                               "characters");

    if (auto [it, fresh] = names.emplace(job.name, plan.jobs.size()); !fresh)
      return invalid(name_at + ": duplicate job name \"" + job.name + "\" (also " +
                     plan.jobs[it->second].where + ")");
    if (job.meta) {
      auto key = std::string(reinterpret_cast<const char*>(job.meta->hash.data()),
                             job.meta->hash.size());
      if (auto [it, fresh] = hashes.emplace(std::move(key), plan.jobs.size()); !fresh) {
        auto& other = plan.jobs[it->second];
        return invalid(at("torrent") + ": the same torrent as job \"" + other.name + "\" (" +
                       other.where + ")");
      }
    }
    if (auto why = system_folder_reason(on_disk(job.output)); !why.empty())
      return invalid(at("output") + ": output \"" + j.output() + "\" " + why);
    if (inside(state_on_disk, on_disk(job.output)) ||
        inside(on_disk(job.output), state_on_disk))
      return invalid(at("output") + ": output \"" + j.output() +
                     "\" overlaps the state_dir " + ps.state_dir);
    if (job.seed_ratio > 0 && job.seed_time_s == 0 && job.timeout_s == 0)
      return invalid(at("seed_ratio") + ": seed_ratio without seed_time_s or timeout_s may "
                     "never end (no peer may ever download from it): add either");
    output_at.push_back(at("output"));
    output_text.push_back(j.output());
    plan.jobs.push_back(std::move(job));
  }
  // Equal or nested outputs. Sorted by path component, a folder comes right before the
  // folders below it, so comparing neighbours finds every such pair's nearest one (n log n,
  // not n^2). The error names the later job of the first pair in file order.
  std::vector<std::size_t> by_output(plan.jobs.size());
  for (std::size_t i = 0; i < by_output.size(); ++i)
    by_output[i] = i;
  std::vector<fs::path> outs;
  outs.reserve(plan.jobs.size());
  for (auto& job : plan.jobs)
    outs.push_back(on_disk(job.output));
  std::stable_sort(by_output.begin(), by_output.end(),
                   [&](std::size_t a, std::size_t b) { return outs[a] < outs[b]; });
  std::size_t worst = SIZE_MAX, worst_other = 0;
  for (std::size_t k = 1; k < by_output.size(); ++k) {
    auto outer = by_output[k - 1], inner = by_output[k];
    if (!inside(outs[inner], outs[outer]))
      continue;
    auto later = std::max(outer, inner), earlier = std::min(outer, inner);
    if (later < worst || (later == worst && earlier < worst_other)) {
      worst = later;
      worst_other = earlier;
    }
  }
  if (worst != SIZE_MAX) {
    auto& job = plan.jobs[worst];
    auto& other = plan.jobs[worst_other];
    const auto& where = output_at[worst];
    const auto& text = output_text[worst];
    // Through a symbolic link the text alone does not show it: name the folders on disk.
    bool linked =
      outs[worst] != fs::path(job.output) || outs[worst_other] != fs::path(other.output);
    if (outs[worst] == outs[worst_other])
      return invalid(where + ": output \"" + text + "\" is also job \"" + other.name +
                     "\"'s output (" + other.where + ")" +
                     (linked ? " on disk (" + outs[worst].string() + ")" : std::string()));
    bool mine_inside = inside(outs[worst], outs[worst_other]);
    return invalid(where + ": output \"" + text + "\" is " + (mine_inside ? "inside" : "around") +
                   " job \"" + other.name + "\"'s output " + other.output + " (" + other.where +
                   ")" + (linked ? " on disk (" + outs[worst].string() + ", " +
                                     outs[worst_other].string() + ")"
                                 : std::string()));
  }
  return plan;
}

result<batch_plan> load_batch(const std::string& path) {
  auto fmt = batch_format_of(path);
  if (!fmt)
    return fmt.error();
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return invalid(path + ": cannot open the job file");
  std::string contents;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    contents.append(buf, static_cast<std::size_t>(in.gcount()));
    if (contents.size() > max_job_file_size)
      return invalid(path + ": job file is larger than 16 MiB");
  }
  return parse_batch(contents, *fmt, path);
}

} // namespace actorrent
