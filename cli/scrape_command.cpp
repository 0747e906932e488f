#include "cli/scrape_command.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <caf/all.hpp>

#include "actors/peer_connection.hpp"
#include "actors/tracker_actor.hpp"
#include "protocol/error.hpp"
#include "protocol/magnet.hpp"
#include "protocol/metainfo.hpp"

namespace actorrent {

int run_scrape(const scrape_options& opt) {
  scrape_config cfg;
  std::vector<std::string> urls;
  if (is_magnet(opt.torrent)) {
    auto link = parse_magnet(opt.torrent);
    if (!link) {
      std::fprintf(stderr, "error: %s\n", link.error().message.c_str());
      return 2;
    }
    cfg.hash = link->hash;
    urls = link->trackers;
  } else {
    auto m = load_metainfo(opt.torrent);
    if (!m) {
      std::fprintf(stderr, "error: %s\n", m.error().message.c_str()); // names the path
      return 2;
    }
    cfg.hash = m->hash;
    for (auto& tier : m->tracker_tiers())
      urls.insert(urls.end(), tier.begin(), tier.end());
  }
  urls.insert(urls.end(), opt.trackers.begin(), opt.trackers.end());
  for (auto& url : urls)
    if (std::find(cfg.urls.begin(), cfg.urls.end(), url) == cfg.urls.end())
      cfg.urls.push_back(url);
  if (cfg.urls.empty()) {
    std::fprintf(stderr, "error: %s lists no tracker to scrape (give one with --tracker URL)\n",
                 is_magnet(opt.torrent) ? "the magnet link" : printable(opt.torrent).c_str());
    return 2;
  }
  if (!(opt.timeout_s > 0) || opt.timeout_s > 600) {
    std::fprintf(stderr, "error: --timeout must be more than 0 and at most 600 seconds\n");
    return 2;
  }
  cfg.timeout_ms = std::max(1L, std::lround(opt.timeout_s * 1000));
  if (!opt.quiet)
    std::fprintf(stderr, "scraping %zu tracker%s for %s\n", cfg.urls.size(),
                 cfg.urls.size() == 1 ? "" : "s", to_hex(cfg.hash).c_str());

  io_runtime io(1);
  cfg.io = &io;
  std::vector<scrape_result> results;
  {
    caf::actor_system_config sys_cfg;
    sys_cfg.set("scheduler.max-threads", 2);
    caf::actor_system sys{sys_cfg};
    results = scrape_trackers(sys, cfg);
  }
  io.stop();
  bool any = false;
  for (auto& r : results) {
    if (r.ok) {
      any = true;
      std::printf("%s: seeders %u, leechers %u, completed %u\n", printable(r.url).c_str(),
                  r.seeders, r.leechers, r.completed);
    } else {
      std::printf("%s: error: %s\n", printable(r.url).c_str(), r.error.c_str());
    }
  }
  std::fflush(stdout);
  return any ? 0 : 1;
}

} // namespace actorrent
