// One iterative DHT lookup (BEP 5, Kademlia): find_node or get_peers towards a target, alpha
// queries in flight, converging on the K closest nodes that answer. For get_peers it collects
// peers and each answering node's token, which announce_peer then hands back. Owned by the DHT
// actor (which sends the queries); CAF-free and deterministic.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "protocol/krpc.hpp"

namespace actorrent::dht {

class lookup {
public:
  struct params {
    std::size_t k = 8;              // closest answering nodes that end the lookup
    std::size_t alpha = 3;          // queries in flight at once
    std::size_t max_candidates = 64; // nodes remembered (the farthest are forgotten)
    std::size_t max_queries = 64;   // queries a lookup sends at most
    /// Our own address, never asked (a query to ourselves would only time out).
    std::optional<krpc::udp_endpoint> self_ep;
  };

  explicit lookup(const krpc::node_id& target) : lookup(target, params{}) {}
  lookup(const krpc::node_id& target, params p) : target_(target), p_(p) {}

  const krpc::node_id& target() const noexcept { return target_; }

  /// Nodes to ask (from the routing table or a response). Bootstrap addresses whose id is not
  /// known yet are added with `id_known` false: they are asked first. Unroutable addresses,
  /// our own, and a second node on an IP already listed (loopback apart) are left out, so
  /// that a response cannot aim the lookup's queries at one victim host.
  void add(const krpc::node_info& n, bool id_known = true);

  /// The next nodes to query now (marked in flight), so that at most alpha are in flight.
  std::vector<krpc::node_info> next();

  /// `from` answered: its nodes become candidates, its token is kept. Returns false when no
  /// query to that address is in flight (a stray or duplicate answer, ignored).
  bool on_response(const krpc::udp_endpoint& from, const krpc::response& r);
  /// A query to `from` got no answer (or an error).
  void on_failure(const krpc::udp_endpoint& from);

  /// Nothing in flight and nothing worth asking: the K closest known nodes have answered.
  bool done() const;

  /// The K closest nodes that answered, with their tokens (announce_peer goes to these).
  struct answered_node {
    krpc::node_info node;
    std::string token;
  };
  std::vector<answered_node> closest_answered() const;

  std::size_t queries_sent() const noexcept { return sent_; }
  std::size_t candidate_count() const noexcept { return candidates_.size(); }
  /// Queries marked in flight (sent, or waiting to be sent) and not yet answered or failed.
  std::size_t in_flight_count() const { return in_flight(); }

private:
  enum class status : std::uint8_t { fresh, in_flight, answered, failed };
  struct candidate {
    krpc::node_info node;
    bool id_known = true;
    status st = status::fresh;
    std::string token;
  };
  void sort_and_trim();
  std::size_t in_flight() const;

  krpc::node_id target_;
  params p_;
  std::vector<candidate> candidates_; // closest first; unknown ids first of all
  std::size_t sent_ = 0;
};

} // namespace actorrent::dht
