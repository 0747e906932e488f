#include "protocol/krpc.hpp"

#include <algorithm>
#include <cstdio>

#include "protocol/bencode.hpp"

namespace actorrent::krpc {

namespace {

using bencode::value;

error bad(std::string what) { return error{errc::wire_protocol, "krpc: " + std::move(what)}; }

std::string at(const value& v) { return " at byte " + std::to_string(v.span().first); }

/// A required 20-byte id field of dictionary `d` (named `where` in errors).
bool read_id(const value& d, std::string_view key, std::string_view where, sha1_digest& out,
             error& err) {
  auto* v = d.find(key);
  if (!v) {
    err = bad(std::string(where) + " has no \"" + std::string(key) + "\"");
    return false;
  }
  if (!v->is_string() || v->as_string().size() != 20) {
    err = bad(std::string(where) + "." + std::string(key) + " is not a 20-byte string" + at(*v));
    return false;
  }
  std::copy(v->as_string().begin(), v->as_string().end(), out.begin());
  return true;
}

udp_endpoint endpoint_from(const char* p) {
  udp_endpoint ep;
  for (std::size_t i = 0; i < 4; ++i)
    ep.ip[i] = static_cast<std::uint8_t>(p[i]);
  ep.port = static_cast<std::uint16_t>((static_cast<std::uint8_t>(p[4]) << 8) |
                                       static_cast<std::uint8_t>(p[5]));
  return ep;
}

bool read_query(const value& top, const limits& lim, message& m, error& err) {
  auto* q = top.find("q");
  if (!q || !q->is_string()) {
    err = bad("query without a \"q\" string");
    return false;
  }
  // An empty method name could not be told from a method we do not know when encoded again.
  if (q->as_string().empty()) {
    err = bad("query with an empty \"q\" method name" + at(*q));
    return false;
  }
  if (q->as_string().size() > 64) {
    err = bad("query method name of " + std::to_string(q->as_string().size()) + " bytes" + at(*q));
    return false;
  }
  auto& qq = m.q;
  qq.name = q->as_string();
  auto* a = top.find("a");
  if (!a || !a->is_dict()) {
    err = bad("query \"" + printable(qq.name) + "\" without an \"a\" dictionary");
    return false;
  }
  if (!read_id(*a, "id", "a", qq.id, err))
    return false;
  if (auto* ro = a->find("ro"); ro && ro->is_int())
    qq.read_only = ro->as_int() != 0;
  if (qq.name == "ping") {
    qq.m = method::ping;
  } else if (qq.name == "find_node") {
    qq.m = method::find_node;
    if (!read_id(*a, "target", "a", qq.target, err))
      return false;
  } else if (qq.name == "get_peers") {
    qq.m = method::get_peers;
    if (!read_id(*a, "info_hash", "a", qq.hash, err))
      return false;
  } else if (qq.name == "announce_peer") {
    qq.m = method::announce_peer;
    if (!read_id(*a, "info_hash", "a", qq.hash, err))
      return false;
    if (auto* ip = a->find("implied_port"); ip && ip->is_int())
      qq.implied_port = ip->as_int() != 0;
    auto* port = a->find("port");
    if (port && !port->is_int()) {
      err = bad("a.port is not an integer" + at(*port));
      return false;
    }
    // BEP 5: with implied_port=1 the port argument is ignored, so any value is accepted then.
    if (port && qq.implied_port) {
      auto p = port->as_int();
      qq.port = p >= 1 && p <= 65535 ? static_cast<std::uint16_t>(p) : 0;
    } else if (port) {
      auto p = port->as_int();
      if (p < 1 || p > 65535) {
        err = bad("a.port " + std::to_string(p) + " is out of range" + at(*port));
        return false;
      }
      qq.port = static_cast<std::uint16_t>(p);
    } else if (!qq.implied_port) {
      err = bad("announce_peer without \"port\" or \"implied_port\"");
      return false;
    }
    auto* token = a->find("token");
    if (!token || !token->is_string()) {
      err = bad("announce_peer without a \"token\" string");
      return false;
    }
    if (token->as_string().size() > lim.max_token) {
      err = bad("token of " + std::to_string(token->as_string().size()) + " bytes" + at(*token));
      return false;
    }
    qq.token = token->as_string();
  } else {
    qq.m = method::unknown;
  }
  return true;
}

bool read_response(const value& top, const limits& lim, message& m, error& err) {
  auto* r = top.find("r");
  if (!r || !r->is_dict()) {
    err = bad("response without an \"r\" dictionary");
    return false;
  }
  auto& rr = m.r;
  if (!read_id(*r, "id", "r", rr.id, err))
    return false;
  if (auto* nodes = r->find("nodes")) {
    if (!nodes->is_string()) {
      err = bad("r.nodes is not a string" + at(*nodes));
      return false;
    }
    auto& s = nodes->as_string();
    if (s.size() % compact_node_size != 0) {
      err = bad("r.nodes of " + std::to_string(s.size()) + " bytes is not a multiple of 26" +
                at(*nodes));
      return false;
    }
    rr.nodes = decode_nodes(s, lim.max_nodes);
    rr.truncated = rr.truncated || rr.nodes.size() < s.size() / compact_node_size;
  }
  if (auto* values = r->find("values")) {
    if (!values->is_list()) {
      err = bad("r.values is not a list" + at(*values));
      return false;
    }
    for (auto& v : values->as_list()) {
      if (!v.is_string()) {
        err = bad("r.values holds a non-string" + at(v));
        return false;
      }
      // 18-byte entries are IPv6 peers (BEP 32): not used, skipped.
      if (v.as_string().size() != compact_peer_size)
        continue;
      if (rr.values.size() == lim.max_values) {
        rr.truncated = true;
        break;
      }
      rr.values.push_back(endpoint_from(v.as_string().data()));
    }
  }
  if (auto* token = r->find("token")) {
    if (!token->is_string()) {
      err = bad("r.token is not a string" + at(*token));
      return false;
    }
    if (token->as_string().size() > lim.max_token) {
      err = bad("r.token of " + std::to_string(token->as_string().size()) + " bytes" + at(*token));
      return false;
    }
    rr.token = token->as_string();
  }
  return true;
}

bool read_error(const value& top, message& m, error& err) {
  auto* e = top.find("e");
  if (!e || !e->is_list() || e->as_list().size() < 2 || !e->as_list()[0].is_int() ||
      !e->as_list()[1].is_string()) {
    err = bad("error without an \"e\" list [code, text]");
    return false;
  }
  m.e.code = e->as_list()[0].as_int();
  auto& text = e->as_list()[1].as_string();
  m.e.text = text.substr(0, 256);
  return true;
}

value str(std::string s) { return value::make_string(std::move(s)); }
value str(const sha1_digest& d) {
  return value::make_string(std::string(d.begin(), d.end()));
}

} // namespace

const char* to_string(method m) {
  switch (m) {
    case method::ping: return "ping";
    case method::find_node: return "find_node";
    case method::get_peers: return "get_peers";
    case method::announce_peer: return "announce_peer";
    case method::unknown: return "unknown";
  }
  return "unknown";
}

std::string udp_endpoint::ip_string() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
  return buf;
}

std::optional<udp_endpoint> udp_endpoint::parse(std::string_view text, std::uint16_t port) {
  udp_endpoint ep;
  ep.port = port;
  std::size_t part = 0;
  unsigned acc = 0;
  std::size_t digits = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '.') {
      if (digits == 0 || part > 3)
        return std::nullopt;
      ep.ip[part++] = static_cast<std::uint8_t>(acc);
      acc = 0;
      digits = 0;
      continue;
    }
    if (text[i] < '0' || text[i] > '9' || ++digits > 3)
      return std::nullopt;
    acc = acc * 10 + static_cast<unsigned>(text[i] - '0');
    if (acc > 255)
      return std::nullopt;
  }
  if (part != 4)
    return std::nullopt;
  return ep;
}

result<message> decode(std::string_view packet, const limits& lim) {
  if (packet.size() > lim.max_packet)
    return bad("packet of " + std::to_string(packet.size()) + " bytes exceeds " +
               std::to_string(lim.max_packet));
  bencode::limits bl;
  bl.max_depth = 8;
  bl.max_string = lim.max_packet;
  bl.max_items = 1024; // the decoded tree stays small whatever the packet holds
  bl.max_total = lim.max_packet;
  // Other DHT implementations do not all sort their keys: accept non-canonical bencoding.
  auto decoded = bencode::decode(packet, bl, true);
  if (!decoded)
    return error{decoded.error().code, "krpc: " + decoded.error().message};
  const value& top = *decoded;
  if (!top.is_dict())
    return bad("packet is not a dictionary");
  message m;
  auto* t = top.find("t");
  if (!t || !t->is_string())
    return bad("no transaction id \"t\"");
  if (t->as_string().size() > lim.max_transaction)
    return bad("transaction id of " + std::to_string(t->as_string().size()) + " bytes" + at(*t));
  m.transaction = t->as_string();
  if (auto* v = top.find("v"); v && v->is_string())
    m.version = v->as_string().substr(0, lim.max_version);
  if (auto* ip = top.find("ip"); ip && ip->is_string() && ip->as_string().size() == 6)
    m.yourip = endpoint_from(ip->as_string().data());
  auto* y = top.find("y");
  if (!y || !y->is_string() || y->as_string().size() != 1)
    return bad("no message type \"y\"");
  error err;
  switch (y->as_string()[0]) {
    case 'q':
      m.type = kind::query;
      if (!read_query(top, lim, m, err))
        return err;
      break;
    case 'r':
      m.type = kind::response;
      if (!read_response(top, lim, m, err))
        return err;
      break;
    case 'e':
      m.type = kind::error;
      if (!read_error(top, m, err))
        return err;
      break;
    default:
      return bad("unknown message type \"" + printable(y->as_string()) + "\"" + at(*y));
  }
  return m;
}

std::string encode_peer(const udp_endpoint& ep) {
  std::string s(ep.ip.begin(), ep.ip.end());
  s.push_back(static_cast<char>(ep.port >> 8));
  s.push_back(static_cast<char>(ep.port & 0xff));
  return s;
}

std::vector<node_info> decode_nodes(std::string_view s, std::size_t max) {
  std::vector<node_info> out;
  std::size_t keep = std::min(s.size() / compact_node_size, max);
  out.reserve(keep);
  for (std::size_t i = 0; i < keep; ++i) {
    const char* p = s.data() + i * compact_node_size;
    node_info n;
    std::copy(p, p + 20, n.id.begin());
    n.ep = endpoint_from(p + 20);
    out.push_back(n);
  }
  return out;
}

std::string encode_nodes(const std::vector<node_info>& nodes) {
  std::string s;
  s.reserve(nodes.size() * compact_node_size);
  for (auto& n : nodes) {
    s.append(n.id.begin(), n.id.end());
    s += encode_peer(n.ep);
  }
  return s;
}

std::string encode(const message& m) {
  value top = value::make_dict();
  top.set("t", str(m.transaction));
  if (!m.version.empty())
    top.set("v", str(m.version));
  if (m.yourip)
    top.set("ip", str(encode_peer(*m.yourip)));
  switch (m.type) {
    case kind::query: {
      top.set("y", str("q"));
      top.set("q", str(m.q.name.empty() ? std::string(to_string(m.q.m)) : m.q.name));
      value a = value::make_dict();
      a.set("id", str(m.q.id));
      switch (m.q.m) {
        case method::find_node: a.set("target", str(m.q.target)); break;
        case method::get_peers: a.set("info_hash", str(m.q.hash)); break;
        case method::announce_peer:
          a.set("info_hash", str(m.q.hash));
          if (m.q.port != 0 || !m.q.implied_port) // implied_port may stand alone
            a.set("port", value::make_int(m.q.port));
          if (m.q.implied_port)
            a.set("implied_port", value::make_int(1));
          a.set("token", str(m.q.token));
          break;
        default: break;
      }
      if (m.q.read_only)
        a.set("ro", value::make_int(1));
      top.set("a", std::move(a));
      break;
    }
    case kind::response: {
      top.set("y", str("r"));
      value r = value::make_dict();
      r.set("id", str(m.r.id));
      if (!m.r.nodes.empty())
        r.set("nodes", str(encode_nodes(m.r.nodes)));
      if (!m.r.values.empty()) {
        value l = value::make_list();
        for (auto& ep : m.r.values)
          l.as_list().push_back(str(encode_peer(ep)));
        r.set("values", std::move(l));
      }
      if (!m.r.token.empty())
        r.set("token", str(m.r.token));
      top.set("r", std::move(r));
      break;
    }
    case kind::error: {
      top.set("y", str("e"));
      value l = value::make_list();
      l.as_list().push_back(value::make_int(m.e.code));
      l.as_list().push_back(str(m.e.text));
      top.set("e", std::move(l));
      break;
    }
  }
  return bencode::encode(top);
}

message make_query(std::string transaction, const query& q) {
  message m;
  m.type = kind::query;
  m.transaction = std::move(transaction);
  m.q = q;
  return m;
}

message make_response(std::string transaction, const response& r) {
  message m;
  m.type = kind::response;
  m.transaction = std::move(transaction);
  m.r = r;
  return m;
}

message make_error(std::string transaction, std::int64_t code, std::string text) {
  message m;
  m.type = kind::error;
  m.transaction = std::move(transaction);
  m.e.code = code;
  m.e.text = std::move(text);
  return m;
}

} // namespace actorrent::krpc
