#include "actors/metrics.hpp"

#include <gtest/gtest.h>

using namespace actorrent;

TEST(metrics, renders_prometheus_text_with_help_type_and_prefix) {
  metrics_registry m;
  m.counter("blocks_received", 42, "blocks stored");
  m.gauge("peers_connected", 3, "peers");
  m.gauge("rate", 1.5, "bytes per second");
  auto text = m.to_prometheus();
  EXPECT_NE(text.find("# HELP actorrent_blocks_received blocks stored\n"
                      "# TYPE actorrent_blocks_received counter\n"
                      "actorrent_blocks_received 42\n"),
            std::string::npos)
    << text;
  EXPECT_NE(text.find("# TYPE actorrent_peers_connected gauge\nactorrent_peers_connected 3\n"),
            std::string::npos)
    << text;
  EXPECT_NE(text.find("actorrent_rate 1.5\n"), std::string::npos) << text;
}

TEST(metrics, set_replaces_and_get_reads_back) {
  metrics_registry m;
  m.counter("x", 1, "x");
  m.counter("x", 7, "x");
  EXPECT_EQ(m.get("x"), 7);
  EXPECT_EQ(m.get("missing"), 0);
  auto text = m.to_prometheus();
  EXPECT_EQ(text.find("actorrent_x 1\n"), std::string::npos);
  EXPECT_NE(text.find("actorrent_x 7\n"), std::string::npos);
}

TEST(metrics, large_counters_are_printed_exactly) {
  metrics_registry m;
  m.counter("bytes", 1073741824.0 * 5, "bytes");
  EXPECT_NE(m.to_prometheus().find("actorrent_bytes 5368709120\n"), std::string::npos);
}
