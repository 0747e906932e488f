// The DHT's routing table (BEP 5): k-buckets of nodes keyed by the XOR distance of their ids to
// ours. Owned by the DHT actor; CAF-free so that tests drive it directly.
//
// Buckets are kept as in libtorrent: bucket i holds the nodes whose ids share exactly i leading
// bits with ours, the last bucket everything closer. Only the last bucket (the one whose range
// holds our own id) is ever split. A full bucket takes no new node while its nodes are good;
// a newcomer waits in the bucket's replacement cache while the most questionable node is
// pinged, and replaces it when that node fails its pings.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "protocol/krpc.hpp"

namespace actorrent::dht {

using krpc::node_id;
using krpc::node_info;
using krpc::udp_endpoint;
using clock_type = std::chrono::steady_clock;

/// Leading bits `a` and `b` have in common (160 when equal).
int common_prefix_bits(const node_id& a, const node_id& b);
/// Whether `a` is closer to `target` than `b` (XOR metric).
bool closer(const node_id& target, const node_id& a, const node_id& b);
/// A node id from a good random source (our own id, transaction secrets).
node_id random_node_id();

/// A node is good when it answered us within the last 15 minutes (or queried us after once
/// answering) and has not failed since; questionable after 15 minutes of silence (BEP 5).
inline constexpr std::chrono::minutes node_good_for{15};

struct node_entry {
  node_info info;
  clock_type::time_point last_seen{};
  std::uint32_t failures = 0; // queries in a row that went unanswered
  bool answered = false;      // it has answered a query of ours at least once
  clock_type::time_point last_pinged{}; // by stale_node, so that it is not picked again at once

  bool questionable(clock_type::time_point now) const {
    return !answered || failures > 0 || now - last_seen > node_good_for;
  }
};

class routing_table {
public:
  explicit routing_table(const node_id& self, std::size_t k = 8);

  const node_id& self() const noexcept { return self_; }

  enum class outcome : std::uint8_t {
    added,      // now in a bucket
    updated,    // was there already
    cached,     // the bucket is full: kept as a replacement; ping `to_ping` (if set)
    refused,    // our own id, or an id that moved to another address
  };
  struct add_result {
    outcome what = outcome::refused;
    std::optional<node_info> to_ping; // the bucket's most questionable node, when cached
  };

  /// A node was heard from: it `answered` a query of ours, or sent us a query. A node that
  /// only queried us goes to the replacements, with `to_ping` naming it: it enters a bucket
  /// once it answers.
  add_result heard_from(const node_info& n, clock_type::time_point now, bool answered);

  /// A query to this node went unanswered. After two failures in a row a node is replaced by
  /// the newest replacement of its bucket; after five it is removed even with none.
  void failed(const node_id& id);

  /// The `count` known nodes closest to `target`, closest first: only nodes that answered and
  /// have not failed since, those heard from in the last 15 minutes first.
  std::vector<node_info> closest(const node_id& target, std::size_t count) const;

  /// A questionable node not pinged for a while, to refresh the table; nullopt: none.
  std::optional<node_info> stale_node(clock_type::time_point now);

  /// A random id in the range of a non-empty bucket no node has answered in for 15 minutes,
  /// to refresh with a find_node lookup (BEP 5); that bucket counts as refreshed then.
  std::optional<node_id> refresh_target(clock_type::time_point now);

  bool contains(const node_id& id) const;
  std::size_t size() const;            // nodes in buckets (not replacements)
  std::size_t bucket_count() const { return buckets_.size(); }
  std::size_t bucket_size(std::size_t i) const { return buckets_[i].live.size(); }
  std::size_t replacement_count() const;
  std::vector<node_info> all() const;  // every node in a bucket
  std::vector<node_info> confirmed() const; // answered and not failing since (to persist)

private:
  struct bucket {
    std::vector<node_entry> live;
    std::vector<node_entry> replacements; // newest last, at most k
    clock_type::time_point changed{};     // a node last answered in it (or it was refreshed)
  };
  std::size_t bucket_index(const node_id& id) const;
  void split_last();

  node_id self_;
  std::size_t k_;
  std::vector<bucket> buckets_;
};

} // namespace actorrent::dht
