#include "protocol/error.hpp"
#include "protocol/types.hpp"

namespace actorrent {

const char* to_string(errc code) {
  switch (code) {
    case errc::bencode_syntax: return "bencode_syntax";
    case errc::bencode_limit: return "bencode_limit";
    case errc::bencode_noncanonical: return "bencode_noncanonical";
    case errc::metainfo_invalid: return "metainfo_invalid";
    case errc::unsafe_path: return "unsafe_path";
    case errc::wire_protocol: return "wire_protocol";
    case errc::tracker_response: return "tracker_response";
    case errc::tracker_failure: return "tracker_failure";
    case errc::io_error: return "io_error";
    case errc::hash_mismatch: return "hash_mismatch";
    case errc::timeout: return "timeout";
    case errc::invalid_argument: return "invalid_argument";
    case errc::actor_down: return "actor_down";
    case errc::cancelled: return "cancelled";
    case errc::cluster_protocol: return "cluster_protocol";
  }
  return "unknown";
}

std::string to_hex(const sha1_digest& d) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(d.size() * 2);
  for (auto b : d) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0xf]);
  }
  return out;
}

std::string printable(std::string_view text) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

} // namespace actorrent
