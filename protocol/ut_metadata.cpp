#include "protocol/ut_metadata.hpp"

#include <algorithm>

#include "protocol/bencode.hpp"
#include "protocol/sha1.hpp"

namespace actorrent::ut_metadata {

namespace {

error bad(std::string what) {
  return error{errc::wire_protocol, "ut_metadata: " + std::move(what)};
}

std::string header(msg_type t, std::uint32_t piece, std::optional<std::uint64_t> total) {
  auto d = bencode::value::make_dict();
  d.set("msg_type", bencode::value::make_int(static_cast<std::int64_t>(t)));
  d.set("piece", bencode::value::make_int(piece));
  if (total)
    d.set("total_size", bencode::value::make_int(static_cast<std::int64_t>(*total)));
  return bencode::encode(d);
}

} // namespace

std::string encode_request(std::uint32_t piece) {
  return header(msg_type::request, piece, std::nullopt);
}

std::string encode_reject(std::uint32_t piece) {
  return header(msg_type::reject, piece, std::nullopt);
}

std::string encode_data(std::uint32_t piece, std::uint64_t total_size, std::string_view data) {
  auto out = header(msg_type::data, piece, total_size);
  out.append(data);
  return out;
}

std::uint32_t piece_count(std::uint64_t size) noexcept {
  return static_cast<std::uint32_t>((size + piece_size - 1) / piece_size);
}

result<message> parse(std::string_view payload) {
  // The dictionary is small; what follows it (data messages) is raw metadata.
  bencode::limits bl;
  bl.max_depth = 4;
  bl.max_string = 1024;
  bl.max_items = 64;
  bl.max_total = payload.size();
  std::size_t consumed = 0;
  auto doc = bencode::decode_prefix(payload, consumed, bl, /*allow_noncanonical=*/true);
  if (!doc)
    return bad(doc.error().message);
  if (!doc->is_dict())
    return bad("payload does not start with a dictionary");
  auto int_of = [&](const char* key, std::int64_t lo, std::int64_t hi) -> result<std::int64_t> {
    const auto* v = doc->find(key);
    if (!v)
      return bad(std::string(key) + " missing");
    if (!v->is_int())
      return bad(std::string(key) + " is not an integer");
    if (v->as_int() < lo || v->as_int() > hi)
      return bad(std::string(key) + " " + std::to_string(v->as_int()) + " out of range " +
                 std::to_string(lo) + ".." + std::to_string(hi));
    return v->as_int();
  };
  message m;
  auto type = int_of("msg_type", 0, 2);
  if (!type)
    return type.error();
  m.type = static_cast<msg_type>(*type);
  auto piece = int_of("piece", 0, piece_count(max_size) - 1);
  if (!piece)
    return piece.error();
  m.piece = static_cast<std::uint32_t>(*piece);
  auto rest = payload.substr(consumed);
  if (m.type != msg_type::data) {
    if (!rest.empty())
      return bad(std::to_string(rest.size()) + " bytes after a " +
                 (m.type == msg_type::request ? "request" : "reject"));
    return m;
  }
  auto total = int_of("total_size", 1, static_cast<std::int64_t>(max_size));
  if (!total)
    return total.error();
  m.total_size = static_cast<std::uint64_t>(*total);
  if (rest.size() > piece_size)
    return bad("data piece of " + std::to_string(rest.size()) + " bytes, at most " +
               std::to_string(piece_size));
  m.data = rest;
  return m;
}

status assembler::set_size(std::uint64_t size) {
  if (size == 0 || size > max_size)
    return error{errc::wire_protocol, "metadata_size " + std::to_string(size) +
                                        " out of range 1.." + std::to_string(max_size)};
  if (size_ != 0)
    return {}; // the first size stands; a peer with another one fails at its data
  size_ = size;
  pieces_.assign(piece_count(size), piece_state{});
  buffer_.assign(size, '\0');
  received_ = 0;
  return {};
}

std::optional<std::uint32_t> assembler::next_request(peer from, clock::time_point now,
                                                     clock::duration timeout) {
  for (std::uint32_t i = 0; i < pieces_.size(); ++i) {
    auto& p = pieces_[i];
    if (p.received || (p.requested && now - p.asked < timeout))
      continue;
    p.requested = true;
    p.from = from;
    p.asked = now;
    return i;
  }
  return std::nullopt;
}

status assembler::on_data(peer from, std::uint32_t piece, std::uint64_t total_size,
                                std::string_view data) {
  if (size_ == 0 || piece >= pieces_.size() || !pieces_[piece].requested ||
      pieces_[piece].from != from || pieces_[piece].received)
    return error{errc::wire_protocol,
                 "ut_metadata: data for piece " + std::to_string(piece) + " we did not ask for"};
  if (total_size != size_)
    return error{errc::wire_protocol, "ut_metadata: total_size " + std::to_string(total_size) +
                                        ", the metadata is " + std::to_string(size_) + " bytes"};
  auto offset = std::uint64_t{piece} * piece_size;
  auto expected = std::min<std::uint64_t>(piece_size, size_ - offset);
  if (data.size() != expected)
    return error{errc::wire_protocol, "ut_metadata: piece " + std::to_string(piece) + " has " +
                                        std::to_string(data.size()) + " bytes, expected " +
                                        std::to_string(expected)};
  buffer_.replace(offset, data.size(), data);
  pieces_[piece].received = true;
  ++received_;
  return {};
}

void assembler::on_reject(peer from, std::uint32_t piece) {
  if (piece < pieces_.size() && pieces_[piece].requested && pieces_[piece].from == from &&
      !pieces_[piece].received)
    pieces_[piece].requested = false;
}

void assembler::on_peer_gone(peer from) {
  for (auto& p : pieces_)
    if (p.requested && !p.received && p.from == from)
      p.requested = false;
}

result<std::string> assembler::take(std::vector<peer>& culprits) {
  if (!complete())
    return error{errc::invalid_argument, "metadata incomplete"};
  if (sha1(buffer_) == hash_) {
    auto out = std::move(buffer_);
    buffer_.clear();
    return out;
  }
  for (auto& p : pieces_)
    if (std::find(culprits.begin(), culprits.end(), p.from) == culprits.end())
      culprits.push_back(p.from);
  auto n = size_;
  size_ = 0;
  pieces_.clear();
  buffer_.clear();
  received_ = 0;
  return error{errc::hash_mismatch, "metadata of " + std::to_string(n) +
                                      " bytes does not match the info-hash"};
}

} // namespace actorrent::ut_metadata
