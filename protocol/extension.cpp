#include "protocol/extension.hpp"

#include <limits>

#include "protocol/bencode.hpp"

namespace actorrent::ext {

namespace {

error bad(std::string what) {
  return error{errc::wire_protocol, "extended handshake: " + std::move(what)};
}

std::string at(const bencode::value& v) {
  return " (at byte " + std::to_string(v.span().first) + ")";
}

const char* kind_name(const bencode::value& v) {
  switch (v.type()) {
    case bencode::value::kind::integer:
      return "an integer";
    case bencode::value::kind::string:
      return "a string";
    case bencode::value::kind::list:
      return "a list";
    case bencode::value::kind::dict:
      return "a dictionary";
  }
  return "?";
}

error wrong_type(std::string_view key, const bencode::value& v, const char* expected) {
  return bad(std::string(key) + " is " + kind_name(v) + ", expected " + expected + at(v));
}

error out_of_range(std::string_view key, const bencode::value& v, const std::string& range) {
  return bad(std::string(key) + " " + std::to_string(v.as_int()) + " out of range " + range +
             at(v));
}

} // namespace

std::uint8_t handshake::id_of(std::string_view name) const noexcept {
  for (const auto& [n, id] : extensions)
    if (n == name)
      return id;
  return 0;
}

std::string encode_handshake(const handshake& h) {
  auto m = bencode::value::make_dict();
  for (const auto& [name, id] : h.extensions)
    m.set(name, bencode::value::make_int(id));
  auto d = bencode::value::make_dict();
  d.set("m", std::move(m));
  if (h.metadata_size > 0)
    d.set("metadata_size", bencode::value::make_int(static_cast<std::int64_t>(h.metadata_size)));
  if (h.listen_port > 0)
    d.set("p", bencode::value::make_int(h.listen_port));
  if (h.reqq > 0)
    d.set("reqq", bencode::value::make_int(h.reqq));
  if (!h.client.empty())
    d.set("v", bencode::value::make_string(h.client));
  if (!h.yourip.empty())
    d.set("yourip", bencode::value::make_string(h.yourip));
  return bencode::encode(d);
}

result<handshake> parse_handshake(std::string_view payload, const parse_limits& lim) {
  if (payload.size() > lim.max_size)
    return bad(std::to_string(payload.size()) + " bytes, limit " + std::to_string(lim.max_size));
  bencode::limits bl;
  bl.max_depth = 16;
  bl.max_string = lim.max_size;
  bl.max_items = 16 * 1024;
  bl.max_total = lim.max_size;
  // Only the keys below matter: a peer whose encoder does not sort keys is not misbehaving.
  auto doc = bencode::decode(payload, bl, /*allow_noncanonical=*/true);
  if (!doc)
    return bad(doc.error().message);
  const auto& root = *doc;
  if (!root.is_dict())
    return bad("payload is " + std::string(kind_name(root)) + ", expected a dictionary");
  handshake h;
  if (const auto* m = root.find("m")) {
    if (!m->is_dict())
      return wrong_type("m", *m, "a dictionary");
    if (m->as_dict().size() > lim.max_extensions)
      return bad("m lists " + std::to_string(m->as_dict().size()) + " extensions, limit " +
                 std::to_string(lim.max_extensions) + at(*m));
    for (const auto& [name, id] : m->as_dict()) {
      auto key = "m." + printable(name);
      if (!id.is_int())
        return wrong_type(key, id, "an integer");
      if (id.as_int() < 0 || id.as_int() > 255)
        return out_of_range(key, id, "0..255");
      h.extensions.emplace_back(name, static_cast<std::uint8_t>(id.as_int()));
    }
  }
  if (const auto* v = root.find("v")) {
    if (!v->is_string())
      return wrong_type("v", *v, "a string");
    h.client = v->as_string();
  }
  if (const auto* q = root.find("reqq")) {
    if (!q->is_int())
      return wrong_type("reqq", *q, "an integer");
    if (q->as_int() < 1)
      return out_of_range("reqq", *q, "1..");
    // A peer may promise more than we would ever keep in flight: cap, do not refuse.
    constexpr auto most = std::numeric_limits<std::uint32_t>::max();
    h.reqq = q->as_int() > std::int64_t{most} ? most : static_cast<std::uint32_t>(q->as_int());
  }
  if (const auto* p = root.find("p")) {
    if (!p->is_int())
      return wrong_type("p", *p, "an integer");
    if (p->as_int() < 0 || p->as_int() > 65535)
      return out_of_range("p", *p, "0..65535");
    h.listen_port = static_cast<std::uint16_t>(p->as_int());
  }
  if (const auto* y = root.find("yourip")) {
    if (!y->is_string())
      return wrong_type("yourip", *y, "a string");
    auto n = y->as_string().size();
    if (n != 4 && n != 16)
      return bad("yourip is " + std::to_string(n) + " bytes, expected 4 (IPv4) or 16 (IPv6)" +
                 at(*y));
    h.yourip = y->as_string();
  }
  if (const auto* s = root.find("metadata_size")) {
    if (!s->is_int())
      return wrong_type("metadata_size", *s, "an integer");
    if (s->as_int() < 0 || static_cast<std::uint64_t>(s->as_int()) > lim.max_metadata_size)
      return out_of_range("metadata_size", *s, "0.." + std::to_string(lim.max_metadata_size));
    h.metadata_size = static_cast<std::uint64_t>(s->as_int());
  }
  return h;
}

} // namespace actorrent::ext
