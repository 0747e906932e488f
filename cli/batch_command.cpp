// `actorrent batch`: the queue over one session. Jobs start in priority order, at most
// `max_active` downloading at once; a finished job seeds on (outside the queue) while its goal
// says so. Each job's state lives where `download` keeps it (resume data in
// <output>/.actorrent/), so a rerun after any kill continues from the verified pieces; a job
// whose resume data already covers every selected piece is not run again.
#include "cli/batch_command.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "actors/peer_connection.hpp"
#include "actors/session.hpp"
#include "cli/common.hpp"
#include "config/batch_job.hpp"
#include "protocol/metainfo.hpp"
#include "storage/disk_pool.hpp"
#include "storage/file_layout.hpp"
#include "storage/file_selection.hpp"
#include "storage/resume.hpp"

namespace actorrent {

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

/// The length of the valid UTF-8 sequence at s[i], or 0 when there is none.
std::size_t utf8_length(const std::string& s, std::size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  std::size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
  if (n == 0 || i + n > s.size())
    return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80)
      return 0;
  auto c1 = static_cast<unsigned char>(s[i + 1]);
  if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0) || (c == 0xf0 && c1 < 0x90) ||
      (c == 0xf4 && c1 >= 0x90))
    return 0; // overlong, a surrogate, or beyond U+10FFFF
  return n;
}

/// A JSON string literal. Torrent names (the default job names) may be any bytes: a byte that
/// is not part of valid UTF-8 becomes U+FFFD, so the summary is always valid JSON.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (auto n = utf8_length(s, i)) {
        out.append(s, i, n);
        i += n - 1;
      } else {
        out += "\\ufffd";
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
    .count();
}

enum class job_status { queued, running, seeding, complete, failed, skipped };

const char* status_name(job_status s) {
  switch (s) {
    case job_status::queued: return "queued";
    case job_status::running: return "running";
    case job_status::seeding: return "seeding";
    case job_status::complete: return "complete";
    case job_status::failed: return "failed";
    case job_status::skipped: return "skipped";
  }
  return "?";
}

/// One job during the run.
struct job_run {
  batch_job* job = nullptr; // its size is learnt while running for a magnet link
  job_status status = job_status::queued;
  torrent_id id = 0;
  torrent_progress last{};
  std::optional<clock_type::time_point> started;
  std::optional<clock_type::time_point> finished;
  double started_at = 0;      // unix time, for the summary (0: never started)
  double finished_at = 0;
  double seconds = 0;         // running time of this run (start to finish or failure)
  bool already_complete = false; // its resume data covered every selected piece
  bool removing = false;      // remove_torrent sent
  std::string error;
  // The torrent may still download: running, or stopping after a failure or timeout until its
  // `removed` event (or the removal deadline). The queue's slots count these, so a job being
  // stopped never trades alongside max_active others.
  bool holds_slot = false;
  std::optional<clock_type::time_point> remove_sent;
};

/// How long a torrent may take to leave the session after remove_torrent before the batch
/// stops waiting for it (a stuck torrent must not keep the batch, or a slot, forever).
constexpr auto remove_deadline = std::chrono::seconds(5);
/// How long adding one torrent may take (the session opens or creates its files): beyond it
/// only that job fails.
constexpr auto add_deadline = std::chrono::seconds(60);

/// Every selected piece is trusted by the job's resume data (files unchanged since): the job
/// is complete and need not run. Reads only; never fails (false: run it, the session checks).
bool complete_by_resume(const batch_job& job) {
  if (!job.meta)
    return false;
  auto layout = file_layout::create(*job.meta);
  if (!layout)
    return false;
  auto r = load_resume(job.output, *job.meta, *layout);
  Roaring wanted;
  if (job.priorities.empty()) {
    if (layout->piece_count() > 0)
      wanted.addRange(0, layout->piece_count());
  } else {
    auto pp = piece_priorities(*job.meta, job.priorities);
    if (!pp)
      return false;
    for (std::uint32_t p = 0; p < pp->size(); ++p)
      if ((*pp)[p] != file_priority::skip)
        wanted.add(p);
  }
  return (wanted - r.trusted).isEmpty();
}

std::string job_source(const batch_job& j) { return j.torrent.empty() ? j.magnet : j.torrent; }

/// Why folder `path` could not be created (or written), or empty: its nearest existing part
/// must be a folder we may write. Creates nothing (for --dry-run).
std::string uncreatable_reason(const std::string& path) {
  std::error_code ec;
  fs::path p(path);
  while (!p.empty() && !fs::exists(fs::symlink_status(p, ec)) && p != p.parent_path())
    p = p.parent_path();
  if (p.empty())
    p = ".";
  if (!fs::is_directory(p, ec))
    return p.string() + " is not a folder";
  if (::access(p.c_str(), W_OK | X_OK) != 0)
    return p.string() + " is not writable";
  return {};
}

int dry_run(const batch_plan& plan) {
  auto& s = plan.settings;
  std::printf("job file:   %s (%zu jobs)\n", plan.file.c_str(), plan.jobs.size());
  std::printf("max_active: %u\n", s.max_active);
  std::printf("listen:     %s\n",
              s.listen.empty() ? "every interface, port 6881-6889" : s.listen.c_str());
  std::printf("state_dir:  %s\n", s.state_dir.c_str());
  if (auto why = uncreatable_reason(s.state_dir); !why.empty()) {
    std::printf("WOULD FAIL: state_dir %s cannot be created: %s\n", s.state_dir.c_str(),
                why.c_str());
    return 1;
  }
  std::printf("limits:     down %s  up %s\n",
              s.download_limit ? (human_size(double(s.download_limit)) + "/s").c_str() : "none",
              s.upload_limit ? (human_size(double(s.upload_limit)) + "/s").c_str() : "none");
  std::printf("plan (in the order jobs start):\n");
  int failing = 0;
  int n = 0;
  for (auto i : plan.queue_order()) {
    auto& j = plan.jobs[i];
    std::printf("  %2d. %s  [priority %d]\n", ++n, printable(j.name).c_str(), j.priority);
    std::printf("      from   %s\n", printable(job_source(j)).c_str());
    std::printf("      into   %s\n", j.output.c_str());
    if (j.meta)
      std::printf("      size   %s%s\n", human_size(double(j.selected_size)).c_str(),
                  j.priorities.empty() ? "" : " (selected files)");
    std::string out_problem;
    if (j.problem.empty())
      if (auto why = uncreatable_reason(j.output); !why.empty())
        out_problem = "output " + j.output + " cannot be created: " + why;
    if (!j.problem.empty() || !out_problem.empty()) {
      ++failing;
      std::printf("      WOULD FAIL: %s\n",
                  printable(j.problem.empty() ? out_problem : j.problem).c_str());
    } else if (complete_by_resume(j)) {
      std::printf("      already complete (resume data): would not download\n");
    }
  }
  std::printf("dry run: %zu jobs, %d would fail; nothing was started or written\n",
              plan.jobs.size(), failing);
  return failing ? 1 : 0;
}

/// The summary (and the progress file while running): {"jobs": [...]} plus the totals.
std::string summary_json(const batch_plan& plan, const std::vector<job_run>& runs,
                         double total_seconds, bool final_form) {
  std::string out = "{\n  \"job_file\": " + json_string(plan.file) + ",\n  \"jobs\": [";
  bool first = true;
  for (auto& r : runs) {
    auto& j = *r.job;
    auto st = r.status;
    if (final_form && (st == job_status::queued || st == job_status::running ||
                       st == job_status::seeding))
      st = st == job_status::seeding ? job_status::complete : job_status::skipped;
    double rate = r.seconds > 0 ? double(r.last.downloaded_payload) / r.seconds : 0;
    std::uint64_t bytes = st == job_status::complete ? j.selected_size : r.last.verified_bytes;
    char nums[512];
    std::snprintf(nums, sizeof nums,
                  "\"bytes\": %llu, \"downloaded\": %llu, \"uploaded\": %llu, "
                  "\"seconds\": %.3f, \"rate\": %.0f, \"started_at\": %.3f, "
                  "\"finished_at\": %.3f, \"already_complete\": %s",
                  static_cast<unsigned long long>(bytes),
                  static_cast<unsigned long long>(r.last.downloaded_payload),
                  static_cast<unsigned long long>(r.last.uploaded_payload), r.seconds, rate,
                  r.started_at, r.finished_at, r.already_complete ? "true" : "false");
    out += first ? "\n" : ",\n";
    first = false;
    out += "    {\"name\": " + json_string(j.name) + ", \"status\": \"" + status_name(st) +
           "\", " + nums + ", \"output\": " + json_string(j.output) +
           ", \"error\": " + (r.error.empty() ? std::string("null") : json_string(r.error)) +
           "}";
  }
  char tail[128];
  std::snprintf(tail, sizeof tail, "\n  ],\n  \"seconds\": %.3f\n}\n", total_seconds);
  return out + tail;
}

/// Writes `text` to `path` through a temporary file and a rename: a kill never leaves half.
bool write_atomically(const std::string& path, const std::string& text, std::string& why) {
  std::error_code ec;
  auto parent = fs::path(path).parent_path();
  if (!parent.empty())
    fs::create_directories(parent, ec);
  auto tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      why = "cannot write " + tmp;
      return false;
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    why = "cannot rename " + tmp + " to " + path + ": " + ec.message();
    return false;
  }
  return true;
}

void print_table(const std::vector<job_run>& runs) {
  std::size_t w = 4;
  for (auto& r : runs)
    w = std::max(w, std::min<std::size_t>(printable(r.job->name).size(), 32));
  std::printf("%-*s  %-8s  %10s  %8s  %12s  %s\n", int(w), "job", "status", "size", "time",
              "rate", "error");
  for (auto& r : runs) {
    auto name = printable(r.job->name);
    if (name.size() > 32)
      name = name.substr(0, 31) + "~";
    auto st = r.status == job_status::seeding ? job_status::complete
              : (r.status == job_status::queued || r.status == job_status::running)
                ? job_status::skipped
                : r.status;
    double rate = r.seconds > 0 ? double(r.last.downloaded_payload) / r.seconds : 0;
    char time_buf[32];
    std::snprintf(time_buf, sizeof time_buf, "%.1f s", r.seconds);
    std::string err = r.error;
    if (r.already_complete)
      err = "(already complete: verified from resume data)";
    std::printf("%-*s  %-8s  %10s  %8s  %10s/s  %s\n", int(w), name.c_str(), status_name(st),
                human_size(double(r.job->selected_size)).c_str(), time_buf,
                human_size(rate).c_str(), printable(err).c_str());
  }
  std::fflush(stdout);
}

} // namespace

int run_batch(const batch_options& opt) {
  auto loaded = load_batch(opt.job_file);
  if (!loaded) {
    std::fprintf(stderr, "error: %s\n", loaded.error().message.c_str());
    return 2;
  }
  batch_plan& plan = *loaded;
  if (opt.dry_run)
    return dry_run(plan);

  const auto& settings = plan.settings;
  const std::string summary_path =
    opt.summary.empty() ? (fs::path(settings.state_dir) / "summary.json").string() : opt.summary;
  const std::string progress_path = (fs::path(settings.state_dir) / "progress.json").string();
  {
    std::error_code ec;
    fs::create_directories(settings.state_dir, ec);
    if (ec) {
      std::fprintf(stderr, "error: state_dir %s: %s\n", settings.state_dir.c_str(),
                   ec.message().c_str());
      return 1;
    }
  }

  std::vector<job_run> runs(plan.jobs.size());
  std::deque<std::size_t> pending;
  std::vector<std::size_t> reseed; // already complete, with a seeding goal
  for (std::size_t i = 0; i < plan.jobs.size(); ++i)
    runs[i].job = &plan.jobs[i];
  for (auto i : plan.queue_order()) {
    auto& r = runs[i];
    if (!r.job->problem.empty()) {
      r.status = job_status::failed;
      r.error = r.job->problem;
      std::printf("failed: %s: %s\n", printable(r.job->name).c_str(),
                  printable(r.error).c_str());
    } else if (complete_by_resume(*r.job)) {
      // Not trusted from the batch's own records: the resume data says every selected piece
      // was verified and its files are unchanged since.
      r.status = job_status::complete;
      r.already_complete = true;
      std::printf("already complete: %s (verified from resume data)\n",
                  printable(r.job->name).c_str());
      // Its seeding goal still holds (a run killed while seeding): it seeds again, outside
      // the queue, after a quick check of its resume data.
      if (r.job->seed_ratio > 0 || r.job->seed_time_s > 0)
        reseed.push_back(i);
    } else {
      pending.push_back(i);
    }
  }
  std::fflush(stdout);

  setup_logging(opt.verbosity);
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  io_runtime io(cores);
  disk_pool disk(4);
  std::string err;
  std::shared_ptr<peer_listener> listener;
  std::string listen_host;
  {
    session_config sc;
    sc.io = &io;
    if (!settings.listen.empty()) {
      // As validated (parsed once, in config/batch_job).
      sc.listen_host = listen_host = settings.listen_host;
      sc.listen_port = settings.listen_port;
      listener = open_session_listener(sc, err);
    } else {
      listen_host = "0.0.0.0";
      listener = open_default_listener(sc, err);
      if (!listener)
        err += "; choose one with `listen` in the job file's settings";
    }
  }
  if (!listener) {
    std::fprintf(stderr, "error: %s\n", err.c_str());
    return 1;
  }
  const std::uint16_t port = listener->port();

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);

  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", std::max(2u, std::thread::hardware_concurrency()));
  cfg.set("work-stealing.moderate-poll-attempts", std::uint64_t{0}); // as `download`
  const auto start = clock_type::now();
  int stopped_by = 0;
  {
    caf::actor_system sys{cfg};
    session_options so;
    so.io = &io;
    so.disk = &disk;
    so.id = make_peer_id();
    so.listen_port = port;
    if (settings.dht) {
      // One DHT node for the batch's session, as `download` runs one: on the listen port (UDP),
      // its node table in the state_dir.
      std::vector<endpoint> given;
      for (auto& n : settings.dht_bootstrap)
        given.push_back(endpoint{n.host, n.port});
      so.dht = session_dht(io, listen_host, port, given,
                           (fs::path(settings.state_dir) / "dht.dat").string());
    }
    auto session = spawn_session(sys, std::move(listener), so);
    {
      caf::scoped_actor self{sys};
      auto ask = [&](auto msg) {
        self->request(session, caf::infinite, std::move(msg))
          .receive([&](session_reply&) {}, [&](caf::error&) {});
      };
      ask(set_session_limits{settings.download_limit, settings.upload_limit, 0});
      ask(subscribe{caf::actor_cast<caf::actor>(self)});
      spdlog::get("session")->info("listening on {}:{}", listen_host, port);

      // The queue's slots in use: jobs downloading or still being stopped (holds_slot).
      auto active_count = [&] {
        return static_cast<std::size_t>(
          std::count_if(runs.begin(), runs.end(), [](const job_run& r) { return r.holds_slot; }));
      };
      // The terminal display (stderr) is cleared before an event line goes to stdout, so that
      // the line is not printed into it; the next redraw puts it back below.
      const bool tty = isatty(STDERR_FILENO) && !opt.quiet;
      std::size_t tty_lines = 0; // lines of the display now on screen (cursor on its last)
      auto clear_display = [&] {
        if (!tty || tty_lines == 0)
          return;
        std::string out;
        if (tty_lines > 1)
          out += "\033[" + std::to_string(tty_lines - 1) + "A";
        out += "\r\033[J";
        std::fputs(out.c_str(), stderr);
        std::fflush(stderr);
        tty_lines = 0;
      };
      auto last_progress_save = clock_type::now();
      auto save_progress = [&] {
        last_progress_save = clock_type::now();
        std::string why;
        double total = std::chrono::duration<double>(clock_type::now() - start).count();
        if (!write_atomically(progress_path, summary_json(plan, runs, total, false), why))
          spdlog::get("session")->warn("progress file: {}", why);
      };
      auto find = [&](torrent_id id) -> job_run* {
        for (auto& r : runs)
          if (r.id == id && id != 0)
            return &r;
        return nullptr;
      };
      auto remove = [&](job_run& r) {
        if (r.id != 0 && !r.removing) {
          r.removing = true;
          r.remove_sent = clock_type::now();
          self->send(session, remove_torrent{r.id});
        }
      };
      auto end_job = [&](job_run& r, job_status st, std::string why) {
        // A complete torrent downloads no more: its slot is free now. A failed one keeps its
        // slot until it has left the session (the `removed` event).
        if (st == job_status::complete)
          r.holds_slot = false;
        auto now = clock_type::now();
        r.status = st;
        r.error = std::move(why);
        if (r.started)
          r.seconds = std::chrono::duration<double>(now - *r.started).count();
        r.finished = now;
        r.finished_at = unix_now();
        clear_display();
        if (st == job_status::failed) {
          std::printf("failed: %s: %s\n", printable(r.job->name).c_str(),
                      printable(r.error).c_str());
        } else {
          double rate = r.seconds > 0 ? double(r.last.downloaded_payload) / r.seconds : 0;
          std::printf("complete: %s %llu bytes in %.2f s (%s/s), %llu bytes downloaded\n",
                      printable(r.job->name).c_str(),
                      static_cast<unsigned long long>(r.job->selected_size), r.seconds,
                      human_size(rate).c_str(),
                      static_cast<unsigned long long>(r.last.downloaded_payload));
        }
        std::fflush(stdout);
      };
      // A seeding job stops seeding: it stays complete (its data is), and its running time and
      // finish stay those of its download. `why` non-empty: the goal was missed.
      auto end_seeding = [&](job_run& r, const std::string& why) {
        r.status = job_status::complete;
        if (!why.empty()) {
          r.error = "seed goal missed: " + why;
          clear_display();
          std::printf("seed goal missed: %s: %s\n", printable(r.job->name).c_str(),
                      printable(why).c_str());
          std::fflush(stdout);
        }
        remove(r);
        save_progress();
      };
      // Adds r's torrent; result.id 0 (with why) when the session could not.
      auto add_to_session = [&](job_run& r) {
        auto& j = *r.job;
        torrent_options to;
        for (auto& p : j.peers)
          to.peers.push_back(endpoint{p.host, p.port});
        to.use_trackers = !j.no_tracker;
        to.download_limit = j.download_limit;
        to.upload_limit = j.upload_limit;
        to.priorities = j.priorities;
        add_torrent_result result;
        self->request(session, add_deadline, add_torrent{j.meta, j.output, std::move(to), j.link})
          .receive([&](add_torrent_result& res) { result = std::move(res); },
                   [&](caf::error& e) {
                     result.why =
                       e == caf::sec::request_timeout
                         ? error{errc::timeout, "the session did not add it within " +
                                                  std::to_string(add_deadline.count()) + " s"}
                         : error{errc::actor_down, "session: " + caf::to_string(e)};
                   });
        return result;
      };
      auto start_next = [&] {
        while (active_count() < settings.max_active && !pending.empty()) {
          auto& r = runs[pending.front()];
          pending.pop_front();
          auto& j = *r.job;
          auto result = add_to_session(r);
          r.started = clock_type::now();
          r.started_at = unix_now();
          if (result.id == 0) {
            end_job(r, job_status::failed, result.why.message);
            continue;
          }
          r.id = result.id;
          r.status = job_status::running;
          r.holds_slot = true;
          clear_display();
          std::printf("started: %s\n", printable(j.name).c_str());
          std::fflush(stdout);
        }
        save_progress();
      };
      auto busy = [&] {
        if (!pending.empty() || active_count() > 0)
          return true;
        for (auto& r : runs)
          if (r.status == job_status::seeding || (r.removing && r.id != 0))
            return true;
        return false;
      };

      auto last_plain = clock_type::now();
      auto show = [&](bool force) {
        if (opt.quiet)
          return;
        auto now = clock_type::now();
        // Redrawn at most twice a second (after an event line: at once); plain lines every 2 s.
        auto every = tty ? std::chrono::milliseconds(500) : std::chrono::milliseconds(2000);
        if (!force && !(tty && tty_lines == 0) && now - last_plain < every)
          return;
        last_plain = now;
        std::size_t done = 0, failed = 0;
        std::uint64_t total = 0, have = 0;
        double rate = 0;
        std::vector<std::string> lines;
        for (auto& r : runs) {
          total += r.job->selected_size;
          if (r.status == job_status::complete || r.status == job_status::seeding) {
            ++done;
            have += r.job->selected_size;
          } else if (r.status == job_status::failed) {
            ++failed;
          } else if (r.status == job_status::running) {
            have += std::min(r.job->selected_size, r.last.verified_bytes);
            rate += r.last.download_rate;
            // Of the selected files (as the summary's bytes), not of the whole torrent.
            double pct = r.job->selected_size
                           ? 100.0 * double(std::min(r.job->selected_size, r.last.verified_bytes)) /
                               double(r.job->selected_size)
                           : 0.0;
            char buf[256];
            if (r.last.checking) {
              std::snprintf(buf, sizeof buf, "  %-24.24s checking existing data %5.1f%%",
                            printable(r.job->name).c_str(),
                            r.last.check_total ? 100.0 * r.last.check_done / r.last.check_total
                                               : 0.0);
            } else {
              double left = double(r.job->selected_size) -
                            double(std::min(r.job->selected_size, r.last.verified_bytes));
              double eta = r.last.download_rate > 0 ? left / r.last.download_rate : -1;
              std::snprintf(buf, sizeof buf, "  %-24.24s %5.1f%%  down %s/s  peers %u  ETA %s",
                            printable(r.job->name).c_str(), pct,
                            human_size(r.last.download_rate).c_str(), r.last.peers,
                            eta_text(eta).c_str());
            }
            lines.push_back(buf);
          }
        }
        char head[256];
        std::snprintf(head, sizeof head,
                      "batch: %zu/%zu done, %zu failed, %zu active, %zu queued  %s/%s  down %s/s",
                      done, runs.size(), failed, active_count(), pending.size(),
                      human_size(double(have)).c_str(), human_size(double(total)).c_str(),
                      human_size(rate).c_str());
        if (tty) {
          clear_display();
          std::string out = head;
          for (auto& l : lines)
            out += "\n" + l;
          tty_lines = lines.size() + 1;
          std::fputs(out.c_str(), stderr);
        } else {
          std::fprintf(stderr, "%s\n", head);
          for (auto& l : lines)
            std::fprintf(stderr, "%s\n", l.c_str());
        }
        std::fflush(stderr);
      };

      for (auto i : reseed) {
        auto& r = runs[i];
        auto result = add_to_session(r);
        if (result.id == 0) {
          spdlog::get("session")->warn("{}: cannot seed again: {}", printable(r.job->name),
                                       result.why.message);
          continue;
        }
        r.id = result.id;
        r.status = job_status::seeding; // its goals count from now
        r.started = r.finished = clock_type::now();
        clear_display();
        std::printf("seeding again: %s\n", printable(r.job->name).c_str());
        std::fflush(stdout);
      }
      start_next();
      while (busy()) {
        self->receive(
          [&](torrent_event& ev) {
            auto* r = find(ev.id);
            if (!r)
              return;
            // A magnet link: its size is known once its metadata has come.
            if (!r->job->meta && ev.progress.total_size != 0)
              r->job->selected_size = ev.progress.total_size;
            switch (ev.kind) {
              case torrent_event_kind::added:
              case torrent_event_kind::checked:
              case torrent_event_kind::pieces_verified: // cluster workers only
                break;
              case torrent_event_kind::progress:
                r->last = std::move(ev.progress);
                show(false);
                // The bytes of running jobs too, not only changes of status: every 2 s.
                if (clock_type::now() - last_progress_save >= std::chrono::seconds(2))
                  save_progress();
                break;
              case torrent_event_kind::finished: {
                r->last = std::move(ev.progress);
                if (r->status != job_status::running)
                  break;
                end_job(*r, job_status::complete, {});
                if (r->job->seed_ratio > 0 || r->job->seed_time_s > 0)
                  r->status = job_status::seeding; // outside the queue: it does not download
                else
                  remove(*r);
                start_next();
                break;
              }
              case torrent_event_kind::failed:
                if (r->status == job_status::running)
                  end_job(*r, job_status::failed, ev.why.message);
                else if (r->status == job_status::seeding) // its data is complete
                  end_seeding(*r, ev.why.message);
                remove(*r);
                start_next();
                break;
              case torrent_event_kind::removed:
                r->last = std::move(ev.progress);
                if (r->status == job_status::running)
                  end_job(*r, job_status::failed, "stopped unexpectedly");
                else if (r->status == job_status::seeding)
                  end_seeding(*r, "stopped unexpectedly");
                r->id = 0; // gone from the session: its slot is free
                r->holds_slot = false;
                start_next();
                break;
            }
          },
          [&](session_reply&) {}, [&](session_stopped&) {},
          caf::after(std::chrono::milliseconds(200)) >> [] {});
        if (int sig = stop_signal.load()) {
          stopped_by = sig;
          break;
        }
        auto now = clock_type::now();
        for (auto& r : runs) {
          if (r.status == job_status::running && r.job->timeout_s > 0 &&
              now - *r.started >= std::chrono::seconds(r.job->timeout_s)) {
            char buf[256];
            if (r.last.checking)
              std::snprintf(buf, sizeof buf,
                            "timed out after %u s while checking existing data (%u/%u pieces)",
                            r.job->timeout_s, r.last.check_done, r.last.check_total);
            else if (r.last.peers == 0 && r.last.pieces_verified == 0)
              std::snprintf(buf, sizeof buf,
                            "timed out after %u s: no peer could be reached (%u known)",
                            r.job->timeout_s, r.last.known_peers);
            else
              std::snprintf(buf, sizeof buf,
                            "timed out after %u s with %u of %u pieces verified (%u peers)",
                            r.job->timeout_s, r.last.pieces_verified, r.last.pieces,
                            r.last.peers);
            end_job(r, job_status::failed, buf);
            remove(r);
            start_next();
          } else if (r.status == job_status::seeding && !r.removing) {
            bool ratio_met =
              r.job->seed_ratio > 0 && double(r.last.uploaded_payload) >=
                                         r.job->seed_ratio * double(r.job->selected_size);
            bool time_met = r.job->seed_time_s > 0 && r.finished &&
                            now - *r.finished >= std::chrono::seconds(r.job->seed_time_s);
            if (ratio_met || time_met) {
              spdlog::get("session")->info("{}: seeding goal met, uploaded {} bytes",
                                           printable(r.job->name), r.last.uploaded_payload);
              end_seeding(r, {});
            } else if (r.job->timeout_s > 0 &&
                       now - *r.started >= std::chrono::seconds(r.job->timeout_s)) {
              // timeout_s bounds the whole job, seeding included (no leecher may ever come).
              char buf[256];
              std::snprintf(buf, sizeof buf, "timed out after %u s with %llu bytes uploaded",
                            r.job->timeout_s,
                            static_cast<unsigned long long>(r.last.uploaded_payload));
              end_seeding(r, buf);
            }
          }
          if (r.removing && r.id != 0 && r.remove_sent && now - *r.remove_sent >= remove_deadline) {
            spdlog::get("session")->warn("{}: not removed from the session within {} s; "
                                         "no longer waiting for it",
                                         printable(r.job->name), remove_deadline.count());
            r.id = 0;
            r.holds_slot = false;
            start_next();
          }
        }
        show(false);
      }
      clear_display();
      for (auto& r : runs) {
        if (r.status == job_status::running || r.status == job_status::queued) {
          if (r.started)
            r.seconds = std::chrono::duration<double>(clock_type::now() - *r.started).count();
          r.status = job_status::skipped;
          r.error = stopped_by ? std::string("stopped by ") +
                                   (stopped_by == SIGINT ? "SIGINT" : "SIGTERM") +
                                   (r.started ? " (a rerun continues it)" : " before it started")
                               : "not run";
        } else if (r.status == job_status::seeding) {
          r.status = job_status::complete;
        }
      }
      // Stops every torrent; their resume data is saved on the way out.
      self->send(session, stop_request{});
      bool stopped = false;
      while (!stopped)
        self->receive(
          [&](torrent_event& ev) {
            if (auto* r = find(ev.id); r && ev.kind == torrent_event_kind::removed)
              r->last = std::move(ev.progress);
          },
          [&](session_stopped&) { stopped = true; }, [&](session_reply&) {},
          caf::after(std::chrono::seconds(5)) >> [&] { stopped = true; });
    }
    sys.await_all_actors_done();
  }
  io.stop();

  const double total_seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  print_table(runs);
  std::string why;
  auto json = summary_json(plan, runs, total_seconds, true);
  // A summary that was not written is a failed batch: a script reads it for the outcome.
  bool written = write_atomically(summary_path, json, why);
  if (!written)
    std::fprintf(stderr, "error: summary: %s\n", why.c_str());
  else
    std::printf("summary: %s\n", summary_path.c_str());
  if (!write_atomically(progress_path, json, why)) {
    std::fprintf(stderr, "error: progress file: %s\n", why.c_str());
    written = false;
  }
  std::fflush(stdout);
  if (stopped_by)
    return 130;
  if (!written)
    return 1;
  bool all = std::all_of(runs.begin(), runs.end(),
                         [](const job_run& r) { return r.status == job_status::complete; });
  return all ? 0 : 1;
}

} // namespace actorrent
