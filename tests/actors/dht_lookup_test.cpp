#include "actors/dht_lookup.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "actors/dht_routing_table.hpp"

namespace actorrent::dht {
namespace {

using krpc::node_info;
using krpc::udp_endpoint;

node_id id_of(std::uint8_t first) {
  node_id id{};
  id[0] = first;
  return id;
}
node_info node(std::uint8_t first) {
  return node_info{id_of(first), udp_endpoint{{10, 0, 1, first}, 6881}};
}

TEST(dht_lookup, keeps_alpha_queries_in_flight_closest_first) {
  lookup l(id_of(0x00));
  for (std::uint8_t i : {0x80, 0x40, 0x20, 0x10, 0x08})
    l.add(node(i));
  auto first = l.next();
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first[0].id, id_of(0x08));
  EXPECT_EQ(first[1].id, id_of(0x10));
  EXPECT_EQ(first[2].id, id_of(0x20));
  EXPECT_TRUE(l.next().empty()); // three in flight
  l.on_failure(first[0].ep);
  auto second = l.next();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, id_of(0x40));
}

TEST(dht_lookup, converges_on_the_k_closest_in_a_simulated_network) {
  // 256 nodes; each answers with the 8 nodes closest to the target it knows of (its
  // neighbourhood and a few per farther bucket), so the lookup must iterate to get close.
  // A fixed seed: the same network every run, so a failure can be reproduced.
  std::mt19937 rng(12345);
  auto some_id = [&] {
    node_id id;
    for (auto& b : id)
      b = static_cast<std::uint8_t>(rng());
    return id;
  };
  std::map<udp_endpoint, node_info> net;
  for (int i = 0; i < 256; ++i) {
    node_info n{some_id(), udp_endpoint{{10, 1, static_cast<std::uint8_t>(i), 1}, 6881}};
    net.emplace(n.ep, n);
  }
  auto target = some_id();
  std::vector<node_info> all;
  for (auto& [ep, n] : net)
    all.push_back(n);
  auto by_target = [&](const node_info& a, const node_info& b) {
    return closer(target, a.id, b.id);
  };
  lookup l(target);
  // Start from three random nodes, added as bootstrap addresses with unknown ids.
  for (int i = 0; i < 3; ++i)
    l.add(node_info{target, all[static_cast<std::size_t>(i * 50)].ep}, false);
  int rounds = 0;
  while (!l.done() && rounds++ < 200) {
    for (auto& q : l.next()) {
      auto& me = net.at(q.ep);
      // What `me` knows, as a Kademlia routing table would: the 16 nodes nearest its own id
      // and 2 of every farther bucket; it tells the 8 of them nearest the target.
      auto near = all;
      std::sort(near.begin(), near.end(),
                [&](const node_info& a, const node_info& b) { return closer(me.id, a.id, b.id); });
      std::vector<node_info> known(near.begin(), near.begin() + 17);
      std::map<int, int> per_bucket;
      for (auto& n : near)
        if (++per_bucket[common_prefix_bits(me.id, n.id)] <= 2)
          known.push_back(n);
      std::sort(known.begin(), known.end(), by_target);
      known.erase(std::unique(known.begin(), known.end(),
                              [](const node_info& a, const node_info& b) { return a.ep == b.ep; }),
                  known.end());
      known.resize(8);
      krpc::response r;
      r.id = me.id;
      r.nodes = known;
      r.token = "tok";
      EXPECT_TRUE(l.on_response(q.ep, r));
    }
  }
  ASSERT_TRUE(l.done());
  auto found = l.closest_answered();
  ASSERT_EQ(found.size(), 8u);
  EXPECT_EQ(found[0].token, "tok");
  // The lookup found the true 8 closest nodes of the network, in order.
  auto truth = all;
  std::sort(truth.begin(), truth.end(), by_target);
  for (std::size_t i = 0; i < found.size(); ++i)
    EXPECT_EQ(found[i].node.id, truth[i].id) << i;
  EXPECT_LE(l.queries_sent(), 64u);
  EXPECT_LE(l.candidate_count(), 64u);
}

TEST(dht_lookup, ignores_stray_answers_and_ends_when_everyone_failed) {
  lookup l(id_of(0));
  l.add(node(1));
  l.add(node(2));
  krpc::response r;
  r.id = id_of(1);
  EXPECT_FALSE(l.on_response(node(1).ep, r)); // not asked yet
  auto q = l.next();
  ASSERT_EQ(q.size(), 2u);
  EXPECT_FALSE(l.done());
  EXPECT_FALSE(l.on_response(udp_endpoint{{9, 9, 9, 9}, 1}, r));
  l.on_failure(q[0].ep);
  l.on_failure(q[1].ep);
  EXPECT_TRUE(l.done());
  EXPECT_TRUE(l.closest_answered().empty());
}

TEST(dht_lookup, candidates_stay_bounded_under_a_flood_of_nodes) {
  lookup l(id_of(0));
  l.add(node(1));
  auto q = l.next();
  krpc::response r;
  r.id = id_of(1);
  for (int i = 0; i < 1000; ++i)
    r.nodes.push_back(node_info{random_node_id(),
                                udp_endpoint{{10, 2, static_cast<std::uint8_t>(i >> 8),
                                              static_cast<std::uint8_t>(i)}, 1}});
  EXPECT_TRUE(l.on_response(q[0].ep, r));
  EXPECT_LE(l.candidate_count(), 64u);
}

// A response cannot aim the lookup at one host (one candidate per IP, loopback apart), at
// unroutable addresses, or at ourselves.
TEST(dht_lookup, leaves_out_repeated_ips_bogons_and_ourselves) {
  lookup::params p;
  p.self_ep = udp_endpoint{{10, 0, 0, 9}, 6881};
  lookup l(id_of(0), p);
  l.add(node(1));
  auto q = l.next();
  krpc::response r;
  r.id = id_of(1);
  for (std::uint16_t port = 1; port <= 16; ++port) // 16 nodes on one victim IP
    r.nodes.push_back(node_info{id_of(static_cast<std::uint8_t>(0x10 + port)),
                                udp_endpoint{{10, 9, 9, 9}, port}});
  r.nodes.push_back(node_info{id_of(0x02), udp_endpoint{{0, 0, 0, 1}, 1}});
  r.nodes.push_back(node_info{id_of(0x03), udp_endpoint{{224, 0, 0, 1}, 1}});
  r.nodes.push_back(node_info{id_of(0x04), udp_endpoint{{255, 255, 255, 255}, 1}});
  r.nodes.push_back(node_info{id_of(0x05), udp_endpoint{{10, 0, 0, 9}, 6881}});
  r.nodes.push_back(node_info{id_of(0x06), udp_endpoint{{127, 0, 0, 1}, 1}});
  r.nodes.push_back(node_info{id_of(0x07), udp_endpoint{{127, 0, 0, 1}, 2}});
  ASSERT_TRUE(l.on_response(q[0].ep, r));
  // node(1), one node of 10.9.9.9, two loopback nodes.
  EXPECT_EQ(l.candidate_count(), 4u);
}

} // namespace
} // namespace actorrent::dht
