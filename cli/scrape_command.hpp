// `actorrent scrape`: asks each tracker of a torrent or magnet link for the swarm's counts
// (BEP 48 over HTTP, BEP 15 over UDP) through actors/tracker_actor's scrape_trackers.
#pragma once

#include <string>
#include <vector>

namespace actorrent {

struct scrape_options {
  std::string torrent;               // a .torrent file or a magnet link
  std::vector<std::string> trackers; // --tracker: asked as well, after the torrent's own
  double timeout_s = 5;              // per tracker
  bool quiet = false;                // no "scraping ..." line on stderr
};

/// Prints one line per tracker to stdout, in the torrent's order (every tier), duplicates
/// asked once: "URL: seeders S, leechers L, completed C" or "URL: error: REASON". Returns 0
/// when at least one tracker answered, 1 when none did, 2 for bad input (an unreadable torrent,
/// a malformed link, no tracker at all; one "error: ..." line on stderr).
int run_scrape(const scrape_options& opt);

} // namespace actorrent
