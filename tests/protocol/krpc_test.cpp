#include "protocol/krpc.hpp"

#include <gtest/gtest.h>

#include <string>

namespace actorrent::krpc {
namespace {

template <std::size_t N>
std::string bytes(const char (&literal)[N]) { // keeps embedded NULs
  return std::string(literal, N - 1);
}

node_id id_of(char c) {
  node_id id;
  id.fill(static_cast<std::uint8_t>(c));
  return id;
}

std::string error_of(std::string_view packet, const limits& lim = {}) {
  auto r = decode(packet, lim);
  if (r.ok())
    return "(parsed)";
  return r.error().message;
}

TEST(krpc, decodes_the_bep5_ping_example) {
  auto m = decode("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->type, kind::query);
  EXPECT_EQ(m->q.m, method::ping);
  EXPECT_EQ(m->transaction, "aa");
  EXPECT_EQ(std::string(m->q.id.begin(), m->q.id.end()), "abcdefghij0123456789");
}

TEST(krpc, decodes_get_peers_and_announce_peer_queries) {
  auto gp = decode("d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e"
                   "1:q9:get_peers1:t2:aa1:y1:qe");
  ASSERT_TRUE(gp.ok()) << gp.error().message;
  EXPECT_EQ(gp->q.m, method::get_peers);
  EXPECT_EQ(std::string(gp->q.hash.begin(), gp->q.hash.end()), "mnopqrstuvwxyz123456");

  auto ap = decode("d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:"
                   "mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer"
                   "1:t2:aa1:y1:qe");
  ASSERT_TRUE(ap.ok()) << ap.error().message;
  EXPECT_EQ(ap->q.m, method::announce_peer);
  EXPECT_EQ(ap->q.port, 6881);
  EXPECT_TRUE(ap->q.implied_port);
  EXPECT_EQ(ap->q.token, "aoeusnth");
}

TEST(krpc, round_trips_a_response_with_nodes_values_and_token) {
  response r;
  r.id = id_of('x');
  r.nodes.push_back(node_info{id_of('a'), *udp_endpoint::parse("127.0.0.1", 6881)});
  r.nodes.push_back(node_info{id_of('b'), *udp_endpoint::parse("10.1.2.3", 65535)});
  r.values.push_back(*udp_endpoint::parse("192.168.0.9", 51413));
  r.token = "tok";
  auto wire = encode(make_response("t1", r));
  auto back = decode(wire);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->type, kind::response);
  EXPECT_EQ(back->transaction, "t1");
  EXPECT_EQ(back->r.id, r.id);
  EXPECT_EQ(back->r.nodes, r.nodes);
  EXPECT_EQ(back->r.values, r.values);
  EXPECT_EQ(back->r.token, "tok");
  EXPECT_FALSE(back->r.truncated);
  EXPECT_EQ(back->r.nodes[1].ep.to_string(), "10.1.2.3:65535");
}

TEST(krpc, encodes_queries_canonically) {
  query q;
  q.m = method::find_node;
  q.id = id_of('i');
  q.target = id_of('t');
  EXPECT_EQ(encode(make_query("aa", q)),
            "d1:ad2:id20:iiiiiiiiiiiiiiiiiiii6:target20:tttttttttttttttttttte"
            "1:q9:find_node1:t2:aa1:y1:qe");
  EXPECT_EQ(encode(make_error("aa", 201, "A Generic Error Ocurred")),
            "d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee");
}

TEST(krpc, compact_node_info_is_26_bytes) {
  node_info n{id_of('n'), *udp_endpoint::parse("1.2.3.4", 0x1a2b)};
  auto s = encode_nodes({n});
  ASSERT_EQ(s.size(), 26u);
  EXPECT_EQ(s.substr(20), bytes("\x01\x02\x03\x04\x1a\x2b"));
}

TEST(krpc, keeps_a_bounded_number_of_nodes_from_a_huge_response) {
  response r;
  r.id = id_of('x');
  for (int i = 0; i < 400; ++i)
    r.nodes.push_back(node_info{id_of(static_cast<char>(i)), udp_endpoint{{1, 2, 3, 4}, 1}});
  auto wire = encode(make_response("t", r));
  limits lim;
  lim.max_packet = 64 * 1024;
  auto back = decode(wire, lim);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->r.nodes.size(), lim.max_nodes);
  EXPECT_TRUE(back->r.truncated);
  // With the default packet limit the same datagram is refused outright.
  EXPECT_EQ(error_of(wire), "krpc: packet of " + std::to_string(wire.size()) +
                              " bytes exceeds 8192");
}

TEST(krpc, keeps_a_bounded_number_of_values) {
  response r;
  r.id = id_of('x');
  for (int i = 0; i < 150; ++i)
    r.values.push_back(udp_endpoint{{1, 2, 3, static_cast<std::uint8_t>(i)}, 80});
  auto back = decode(encode(make_response("t", r)));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->r.values.size(), 100u);
  EXPECT_TRUE(back->r.truncated);
}

TEST(krpc, refuses_malformed_packets_precisely) {
  EXPECT_EQ(error_of("le"), "krpc: packet is not a dictionary");
  EXPECT_EQ(error_of("d1:y1:qe"), "krpc: no transaction id \"t\"");
  EXPECT_EQ(error_of("d1:t2:aae"), "krpc: no message type \"y\"");
  EXPECT_EQ(error_of("d1:t2:aa1:y1:ze"), "krpc: unknown message type \"z\" at byte 11");
  EXPECT_EQ(error_of("d1:q4:ping1:t2:aa1:y1:qe"), "krpc: query \"ping\" without an \"a\" dictionary");
  EXPECT_EQ(error_of("d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe"),
            "krpc: a.id is not a 20-byte string at byte 9");
  EXPECT_EQ(error_of("d1:rd2:id20:abcdefghij01234567895:nodes3:xyze1:t2:aa1:y1:re"),
            "krpc: r.nodes of 3 bytes is not a multiple of 26 at byte 39");
  EXPECT_EQ(error_of("d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456"
                     "4:porti70000e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe"),
            "krpc: a.port 70000 is out of range at byte 72");
  EXPECT_EQ(error_of("d1:eli201ee1:t2:aa1:y1:ee"), "krpc: error without an \"e\" list [code, text]");
  auto truncated = decode("d1:ad2:id20:abc");
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.error().message.find("krpc: "), std::string::npos);
}

// An empty method name would be encoded back as "unknown": refused instead.
TEST(krpc, refuses_an_empty_method_name) {
  auto m = decode("d1:ad2:id20:abcdefghij0123456789e1:q0:1:t2:aa1:y1:qe");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().message, "krpc: query with an empty \"q\" method name at byte 36");
}

// BEP 5: with implied_port=1 the port argument is ignored, whatever it holds.
TEST(krpc, ignores_the_port_when_implied_port_is_set) {
  for (const char* port : {"i0e", "i70000e", "i-1e"}) {
    auto m = decode(std::string("d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:"
                                "mnopqrstuvwxyz1234564:port") +
                    port + "5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe");
    ASSERT_TRUE(m.ok()) << port << ": " << m.error().message;
    EXPECT_TRUE(m->q.implied_port);
    EXPECT_EQ(m->q.port, 0);
  }
}

TEST(krpc, unknown_methods_decode_for_an_error_reply) {
  auto m = decode("d1:ad2:id20:abcdefghij0123456789e1:q6:vote_x1:t2:aa1:y1:qe");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->q.m, method::unknown);
  EXPECT_EQ(m->q.name, "vote_x");
}

TEST(krpc, parses_only_dotted_quads) {
  EXPECT_TRUE(udp_endpoint::parse("127.0.0.1", 1));
  EXPECT_FALSE(udp_endpoint::parse("localhost", 1));
  EXPECT_FALSE(udp_endpoint::parse("1.2.3", 1));
  EXPECT_FALSE(udp_endpoint::parse("1.2.3.256", 1));
  EXPECT_FALSE(udp_endpoint::parse("1.2.3.4.5", 1));
  EXPECT_FALSE(udp_endpoint::parse("1..3.4", 1));
}

} // namespace
} // namespace actorrent::krpc
