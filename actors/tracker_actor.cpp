#include "actors/tracker_actor.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "protocol/tracker.hpp"
#include "storage/disk_pool.hpp"

namespace actorrent {

namespace {

constexpr std::size_t max_reply_size = 4u << 20;

std::size_t collect(char* data, std::size_t size, std::size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  std::size_t len = size * n;
  if (out->size() + len > max_reply_size)
    return 0; // makes curl fail with CURLE_WRITE_ERROR: reply too large
  out->append(data, len);
  return len;
}

int on_progress(void* cancel, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return cancel && static_cast<std::atomic<bool>*>(cancel)->load() ? 1 : 0; // non-zero aborts
}

/// One HTTP GET; returns the body or sets `err`.
std::string http_get(const std::string& url, long timeout_ms, void* cancel, std::string& err) {
  std::string body;
  CURL* curl = curl_easy_init();
  if (!curl) {
    err = "curl_easy_init failed";
    return body;
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms, 5000L));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 3L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "actorrent/0.1");
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, cancel);
  // The multi interface waits in slices of 50 ms, so a cancel ends the transfer within one
  // slice (the progress callback alone may run only once a second while a server is silent).
  CURLcode rc = CURLE_OK;
  CURLM* multi = curl_multi_init();
  curl_multi_add_handle(multi, curl);
  int running = 1;
  while (running) {
    if (curl_multi_perform(multi, &running) != CURLM_OK) {
      rc = CURLE_FAILED_INIT;
      break;
    }
    if (!running)
      break;
    if (cancel && static_cast<std::atomic<bool>*>(cancel)->load()) {
      rc = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    curl_multi_poll(multi, nullptr, 0, 50, nullptr);
  }
  if (!running) {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left))
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == curl)
        rc = msg->data.result;
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_multi_remove_handle(multi, curl);
  curl_multi_cleanup(multi);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK)
    err = rc == CURLE_WRITE_ERROR            ? "reply larger than 4 MiB"
          : rc == CURLE_ABORTED_BY_CALLBACK ? "cancelled"
                                            : curl_easy_strerror(rc);
  else if (status != 200)
    err = "HTTP status " + std::to_string(status);
  return body;
}

/// Announces of every torrent block in libcurl on these threads (a few for the process, not one
/// per torrent); each tracker's announces stay in order on its own queue.
disk_pool& announce_pool() {
  static disk_pool pool{4};
  return pool;
}

bool is_http(const std::string& url) {
  return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
}

} // namespace

caf::actor spawn_tracker(caf::actor_system& sys, tracker_config cfg, const caf::actor& torrent) {
  static const bool curl_ready = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  (void)curl_ready;
  auto tiers = std::make_shared<std::vector<std::vector<std::string>>>(cfg.tiers);
  auto conf = std::make_shared<tracker_config>(std::move(cfg));
  auto queue = announce_pool().make_queue();
  return sys.spawn([=](caf::event_based_actor* self) -> caf::behavior {
    self->set_default_handler(caf::drop);
    auto log = spdlog::get("tracker");
    // threads: the announce runs on the announce pool; its result goes straight to the torrent.
    auto run = [=](const announce& req) {
      announce_result res;
      std::string errors;
      for (auto& tier : *tiers) {
        for (std::size_t i = 0; i < tier.size(); ++i) {
          const auto& url = tier[i];
          if (!is_http(url)) {
            log->debug("skipping unsupported tracker {}", url);
            continue;
          }
          tracker::announce_request ar;
          ar.url = url;
          ar.hash = conf->hash;
          ar.id = conf->id;
          ar.port = conf->listen_port;
          ar.uploaded = req.uploaded;
          ar.downloaded = req.downloaded;
          ar.left = req.left;
          ar.ev = req.ev;
          std::string err;
          // A "stopped" announce happens on the way out: it must not hold up the exit. A
          // "completed" one may be under way when the run ends: a short timeout too.
          long timeout = req.ev == tracker::event::stopped     ? 500L
                         : req.ev == tracker::event::completed ? std::min(2000L, conf->timeout_ms)
                                                               : conf->timeout_ms;
          // A stop cancels routine announces; "completed" (trackers count completions) and
          // "stopped" still go out, each with its short timeout.
          bool farewell =
            req.ev == tracker::event::stopped || req.ev == tracker::event::completed;
          if (conf->cancel->load() && !farewell)
            return;
          auto body = http_get(tracker::build_announce_url(ar), timeout,
                               farewell ? nullptr : conf->cancel.get(), err);
          if (err.empty()) {
            auto parsed = tracker::parse_announce_response(body);
            if (parsed) {
              res.url = url;
              res.interval = parsed->interval;
              res.min_interval = parsed->min_interval;
              for (auto& p : parsed->peers)
                res.peers.push_back(endpoint{p.ip, p.port});
              // BEP 12: a tracker that answered moves to the front of its tier.
              std::rotate(tier.begin(), tier.begin() + static_cast<long>(i),
                          tier.begin() + static_cast<long>(i) + 1);
              log->debug("{}: {} peers, interval {} s", url, res.peers.size(), res.interval);
              caf::anon_send(torrent, std::move(res));
              return;
            }
            err = parsed.error().message;
          }
          if (conf->cancel->load()) {
            // We are shutting down and cut the announce short ourselves: not a tracker fault.
            log->debug("announce to {} cancelled", printable(url));
            return;
          }
          log->warn("announce to {} failed: {}", printable(url), printable(err));
          // Tracker text is untrusted: it reaches logs and the terminal escaped.
          errors += (errors.empty() ? "" : "; ") + printable(url) + ": " + printable(err);
        }
      }
      res.result = error{errors.empty() ? errc::invalid_argument : errc::tracker_failure,
                         errors.empty() ? "no usable HTTP tracker" : errors};
      caf::anon_send(torrent, std::move(res));
    };
    return {
      [=](const announce& req) {
        announce_pool().post(queue, disk_pool::job_class::io, [run, req] { run(req); });
      },
      // Announces already queued still go out (a "stopped" one on the way out among them);
      // the torrent's cancel flag cuts routine ones short.
      [=](stop_request) { self->quit(); },
    };
  });
}

} // namespace actorrent
