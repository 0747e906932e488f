#include "protocol/wire.hpp"

#include <cstring>

namespace actorrent::wire {

namespace {

// Requests above this are refused by every mainstream client; accepting them would let a peer
// make us read and buffer arbitrarily large blocks.
constexpr std::uint32_t max_request_length = 128 * 1024;

using big_endian::put_u32;
using big_endian::read_u16;

error wrong_length(msg_id id, std::size_t got, const char *expected) {
  return error{errc::wire_protocol, std::string(to_string(id)) + ": length " + std::to_string(got) +
                                        ", expected " + expected};
}

} // namespace

const char *to_string(msg_id id) {
  switch (id) {
  case msg_id::choke:
    return "choke";
  case msg_id::unchoke:
    return "unchoke";
  case msg_id::interested:
    return "interested";
  case msg_id::not_interested:
    return "not_interested";
  case msg_id::have:
    return "have";
  case msg_id::bitfield:
    return "bitfield";
  case msg_id::request:
    return "request";
  case msg_id::piece:
    return "piece";
  case msg_id::cancel:
    return "cancel";
  case msg_id::port:
    return "port";
  case msg_id::suggest:
    return "suggest";
  case msg_id::have_all:
    return "have_all";
  case msg_id::have_none:
    return "have_none";
  case msg_id::reject:
    return "reject";
  case msg_id::allowed_fast:
    return "allowed_fast";
  case msg_id::extended:
    return "extended";
  case msg_id::keep_alive:
    return "keep_alive";
  }
  return "unknown";
}

void handshake::set_fast(bool on) noexcept {
  if (on)
    reserved[7] |= 0x04;
  else
    reserved[7] &= static_cast<std::uint8_t>(~0x04);
}

void handshake::set_dht(bool on) noexcept {
  if (on)
    reserved[7] |= 0x01;
  else
    reserved[7] &= static_cast<std::uint8_t>(~0x01);
}

void handshake::set_extended(bool on) noexcept {
  if (on)
    reserved[5] |= 0x10;
  else
    reserved[5] &= static_cast<std::uint8_t>(~0x10);
}

std::array<char, handshake_size> encode_handshake(const handshake &h) {
  std::array<char, handshake_size> out{};
  char *p = out.data();
  *p++ = static_cast<char>(protocol_name.size());
  std::memcpy(p, protocol_name.data(), protocol_name.size());
  p += protocol_name.size();
  std::memcpy(p, h.reserved.data(), h.reserved.size());
  p += h.reserved.size();
  std::memcpy(p, h.hash.data(), h.hash.size());
  p += h.hash.size();
  std::memcpy(p, h.id.data(), h.id.size());
  return out;
}

result<handshake> parse_handshake(std::string_view bytes) {
  if (bytes.size() != handshake_size)
    return error{errc::wire_protocol, "handshake: " + std::to_string(bytes.size()) +
                                          " bytes, expected " + std::to_string(handshake_size)};
  if (looks_encrypted(bytes))
    return error{errc::wire_protocol, "handshake: encrypted handshake not supported (the first "
                                      "bytes are not \"\\x13BitTorrent protocol\")"};
  handshake h;
  const char *p = bytes.data() + 1 + protocol_name.size();
  std::memcpy(h.reserved.data(), p, h.reserved.size());
  p += h.reserved.size();
  std::memcpy(h.hash.data(), p, h.hash.size());
  p += h.hash.size();
  std::memcpy(h.id.data(), p, h.id.size());
  return h;
}

bool looks_encrypted(std::string_view first_bytes) noexcept {
  if (first_bytes.empty())
    return false;
  if (static_cast<unsigned char>(first_bytes[0]) != protocol_name.size())
    return true;
  auto rest = first_bytes.substr(1, protocol_name.size());
  return rest != protocol_name.substr(0, rest.size());
}

bool stream_parser::decode_body(std::string_view body, message &out, bool &known,
                                error &err) const {
  known = true;
  if (body.empty()) {
    out.id = msg_id::keep_alive;
    return true;
  }
  auto raw = static_cast<std::uint8_t>(body[0]);
  auto id = static_cast<msg_id>(raw);
  const char *p = body.data() + 1;
  std::size_t n = body.size();
  switch (id) {
  case msg_id::choke:
  case msg_id::unchoke:
  case msg_id::interested:
  case msg_id::not_interested:
  case msg_id::have_all:  // BEP 6
  case msg_id::have_none: // BEP 6
    if (n != 1) {
      err = wrong_length(id, n, "1");
      return false;
    }
    break;
  case msg_id::have:
  case msg_id::suggest:      // BEP 6
  case msg_id::allowed_fast: // BEP 6
    if (n != 5) {
      err = wrong_length(id, n, "5");
      return false;
    }
    out.index = read_u32(p);
    break;
  case msg_id::request:
  case msg_id::cancel:
  case msg_id::reject: // BEP 6
    if (n != 13) {
      err = wrong_length(id, n, "13");
      return false;
    }
    out.index = read_u32(p);
    out.begin = read_u32(p + 4);
    out.length = read_u32(p + 8);
    if (out.length == 0 || out.length > max_request_length) {
      err = error{errc::wire_protocol, std::string(to_string(id)) + ": block length " +
                                           std::to_string(out.length) + " out of range"};
      return false;
    }
    break;
  case msg_id::piece:
    if (n < 9) {
      err = wrong_length(id, n, "at least 9");
      return false;
    }
    out.index = read_u32(p);
    out.begin = read_u32(p + 4);
    out.payload = body.substr(9);
    out.length = static_cast<std::uint32_t>(out.payload.size());
    break;
  case msg_id::bitfield:
    out.payload = body.substr(1);
    break;
  case msg_id::port: // BEP 5
    if (n != 3) {
      err = wrong_length(id, n, "3");
      return false;
    }
    out.port = read_u16(p);
    break;
  case msg_id::extended: // BEP 10
    if (n < 2) {
      err = wrong_length(id, n, "at least 2");
      return false;
    }
    out.ext_id = static_cast<std::uint8_t>(body[1]);
    out.payload = body.substr(2);
    break;
  default:
    // Includes 0xff: keep_alive is our marker for empty frames, never a valid id on the wire.
    known = false;
    return true;
  }
  out.id = id;
  return true;
}

std::size_t stream_parser::frame_size(std::string_view data) noexcept {
  if (data.size() < 4)
    return 0;
  return 4 + std::size_t{read_u32(data.data())};
}

void append_keep_alive(std::string &out) {
  put_u32(out, 0);
}

void append_simple(std::string &out, msg_id id) {
  put_u32(out, 1);
  out.push_back(static_cast<char>(id));
}

void append_have(std::string &out, std::uint32_t index) {
  append_index_message(out, msg_id::have, index);
}

void append_index_message(std::string &out, msg_id id, std::uint32_t index) {
  put_u32(out, 5);
  out.push_back(static_cast<char>(id));
  put_u32(out, index);
}

void append_bitfield(std::string &out, std::string_view bits) {
  put_u32(out, static_cast<std::uint32_t>(1 + bits.size()));
  out.push_back(static_cast<char>(msg_id::bitfield));
  out.append(bits);
}

void append_request(std::string &out, msg_id id, std::uint32_t index, std::uint32_t begin,
                    std::uint32_t length) {
  put_u32(out, 13);
  out.push_back(static_cast<char>(id));
  put_u32(out, index);
  put_u32(out, begin);
  put_u32(out, length);
}

void append_piece_header(std::string &out, std::uint32_t index, std::uint32_t begin,
                         std::uint32_t length) {
  put_u32(out, 9 + length);
  out.push_back(static_cast<char>(msg_id::piece));
  put_u32(out, index);
  put_u32(out, begin);
}

void append_port(std::string &out, std::uint16_t port) {
  put_u32(out, 3);
  out.push_back(static_cast<char>(msg_id::port));
  out.push_back(static_cast<char>(port >> 8));
  out.push_back(static_cast<char>(port));
}

void append_extended(std::string &out, std::uint8_t ext_id, std::string_view payload) {
  put_u32(out, static_cast<std::uint32_t>(2 + payload.size()));
  out.push_back(static_cast<char>(msg_id::extended));
  out.push_back(static_cast<char>(ext_id));
  out.append(payload);
}

} // namespace actorrent::wire
