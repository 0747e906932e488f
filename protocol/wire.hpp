// The peer wire protocol: BEP 3 messages, the BEP 6 fast extension and BEP 10 extended framing.
// Pure code: the parser works on whatever bytes one socket read produced and hands out views
// into them, so block payloads are never copied by the codec.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/big_endian.hpp"
#include "protocol/error.hpp"
#include "protocol/types.hpp"

namespace actorrent::wire {

enum class msg_id : std::uint8_t {
  choke = 0,
  unchoke = 1,
  interested = 2,
  not_interested = 3,
  have = 4,
  bitfield = 5,
  request = 6,
  piece = 7,
  cancel = 8,
  port = 9,           // BEP 5 DHT port
  suggest = 0x0d,     // BEP 6
  have_all = 0x0e,    // BEP 6
  have_none = 0x0f,   // BEP 6
  reject = 0x10,      // BEP 6
  allowed_fast = 0x11,// BEP 6
  extended = 20,      // BEP 10
  keep_alive = 0xff,  // not on the wire: a zero-length frame
};

const char* to_string(msg_id id);

inline constexpr std::size_t handshake_size = 68;
inline constexpr std::string_view protocol_name = "BitTorrent protocol";

struct handshake {
  std::array<std::uint8_t, 8> reserved{};
  info_hash hash{};
  peer_id id{};

  bool supports_fast() const noexcept { return (reserved[7] & 0x04) != 0; }     // BEP 6
  bool supports_extended() const noexcept { return (reserved[5] & 0x10) != 0; } // BEP 10
  bool supports_dht() const noexcept { return (reserved[7] & 0x01) != 0; }      // BEP 5
  void set_fast(bool on) noexcept;
  void set_extended(bool on) noexcept;
  void set_dht(bool on) noexcept;
};

/// The 68 handshake bytes.
std::array<char, handshake_size> encode_handshake(const handshake& h);
/// Parses exactly handshake_size bytes; errc::wire_protocol if the protocol string is wrong
/// (then the message says "encrypted handshake not supported": see looks_encrypted).
result<handshake> parse_handshake(std::string_view bytes);
/// True when the first bytes a peer sent do not start like a plain handshake
/// ("\x13BitTorrent protocol"). Such a peer almost always opened with an encrypted (MSE)
/// handshake, whose first bytes look random; clients that try it retry in plaintext, so this is
/// routine, not misbehaviour.
bool looks_encrypted(std::string_view first_bytes) noexcept;

/// One decoded message. Which fields are meaningful depends on `id`:
///  have, suggest, allowed_fast: index;  request, cancel, reject: index, begin, length;
///  piece: index, begin, payload (length == payload.size());  bitfield: payload;
///  port: port;  extended: ext_id, payload.
/// `payload` points into the bytes given to stream_parser::parse and lives as long as they do.
struct message {
  msg_id id = msg_id::keep_alive;
  std::uint32_t index = 0;
  std::uint32_t begin = 0;
  std::uint32_t length = 0;
  std::uint16_t port = 0;
  std::uint8_t ext_id = 0;
  std::string_view payload;
};

/// Splits a byte stream (after the handshake) into messages. It keeps no bytes itself: `parse`
/// consumes the complete frames at the front of its input and returns how many bytes that was;
/// the caller keeps the partial frame that remains and presents it again with more bytes.
class stream_parser {
public:
  /// Frames longer than this are a protocol violation (default: a 16 KiB block's frame is
  /// 16397 bytes; bitfields of large torrents need more, so the default allows 1 MiB + 13).
  explicit stream_parser(std::uint32_t max_message_length = (1u << 20) + 13)
    : max_len_(max_message_length) {}

  /// Calls on_message(const message&) for every complete frame. Returns the bytes consumed, or
  /// errc::wire_protocol naming the message and what was wrong (length over the limit, wrong
  /// fixed length for its id, e.g. "have: length 7, expected 5"). Unknown message ids are
  /// skipped (consumed, not reported). on_message may return false to stop early; the bytes up
  /// to and including that message are then counted as consumed.
  template <class F>
  result<std::size_t> parse(std::string_view data, F&& on_message);

  /// Total size (prefix included) of the frame starting at `data`, or 0 if fewer than 4 bytes
  /// are available. Lets a reader size its next read to finish the frame.
  static std::size_t frame_size(std::string_view data) noexcept;

  std::uint32_t max_message_length() const noexcept { return max_len_; }

private:
  /// Decodes one frame body (without the 4-byte prefix). Returns false and sets err on a
  /// violation; sets `known` false for unknown ids.
  bool decode_body(std::string_view body, message& out, bool& known, error& err) const;

  std::uint32_t max_len_;
};

// Encoders append one complete frame to `out`.
void append_keep_alive(std::string& out);
void append_simple(std::string& out, msg_id id); // choke, unchoke, (not_)interested, have_all/none
void append_have(std::string& out, std::uint32_t index);
void append_index_message(std::string& out, msg_id id, std::uint32_t index); // suggest, allowed_fast
void append_bitfield(std::string& out, std::string_view bits);
void append_request(std::string& out, msg_id id, std::uint32_t index, std::uint32_t begin,
                    std::uint32_t length); // request, cancel, reject
/// The 13-byte header of a piece message carrying `length` payload bytes (the payload follows
/// separately, so an uploader can send it straight from its buffer).
void append_piece_header(std::string& out, std::uint32_t index, std::uint32_t begin,
                         std::uint32_t length);
void append_port(std::string& out, std::uint16_t port);
void append_extended(std::string& out, std::uint8_t ext_id, std::string_view payload);

// --- implementation of the template ---------------------------------------------------------

using big_endian::read_u32;

template <class F>
result<std::size_t> stream_parser::parse(std::string_view data, F&& on_message) {
  std::size_t pos = 0;
  error err;
  while (data.size() - pos >= 4) {
    std::uint32_t len = read_u32(data.data() + pos);
    if (len > max_len_)
      return error{errc::wire_protocol, "message length " + std::to_string(len) +
                                            " exceeds limit " + std::to_string(max_len_)};
    if (data.size() - pos - 4 < len)
      break;
    message m;
    bool known = true;
    if (!decode_body(data.substr(pos + 4, len), m, known, err))
      return err;
    pos += 4 + std::size_t{len};
    if (known && !on_message(static_cast<const message&>(m)))
      break;
  }
  return pos;
}

} // namespace actorrent::wire
