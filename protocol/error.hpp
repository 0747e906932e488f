// The project's error codes and a small value-or-error result for the CAF-free layers.
// The same type travels in the messages between actors (storage_failed, torrent_failed, ...),
// so a failure keeps its code and its context across actor boundaries.
#pragma once

#include <cassert>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace actorrent {

enum class errc : std::uint8_t {
  bencode_syntax = 1,   // malformed bencoding
  bencode_limit,        // input exceeds a configured limit (depth, length, size)
  bencode_noncanonical, // valid but not canonical (leading zeros, unsorted or duplicate keys)
  metainfo_invalid,     // a .torrent whose structure or values are wrong
  unsafe_path,          // a file path that would escape the output directory
  wire_protocol,        // a peer broke the peer wire protocol
  tracker_response,     // a tracker reply that cannot be used
  tracker_failure,      // a tracker answered with "failure reason"
  io_error,             // a file system call failed
  hash_mismatch,        // piece data does not match its SHA-1
  timeout,
  invalid_argument,
  actor_down,           // an actor this one depended on has stopped (its reason in the message)
  cancelled,            // stopped on request before it finished
  cluster_protocol,     // a cluster node sent what this node cannot accept (version, torrent)
};

/// Stable name of an error code, for messages and logs.
const char* to_string(errc code);

/// An error with a human-readable message that already says where (byte offset, path, peer).
struct error {
  errc code = errc::invalid_argument;
  std::string message;

  error() = default;
  error(errc c, std::string msg) : code(c), message(std::move(msg)) {}
};

/// Holds either a value or an error (C++17 stand-in for std::expected).
template <class T>
class result {
public:
  result(T value) : v_(std::move(value)) {}
  result(actorrent::error err) : v_(std::move(err)) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const actorrent::error& error() const { assert(!ok()); return std::get<1>(v_); }

private:
  std::variant<T, actorrent::error> v_;
};

/// result<void>: success or an error.
class status {
public:
  status() = default;
  status(actorrent::error err) : err_(std::move(err)), failed_(true) {}

  bool ok() const noexcept { return !failed_; }
  explicit operator bool() const noexcept { return ok(); }
  const actorrent::error& error() const { assert(failed_); return err_; }

private:
  actorrent::error err_;
  bool failed_ = false;
};

/// `text` (from a torrent, tracker or peer) made safe for a terminal: control bytes (and DEL)
/// become \xNN so that no escape sequence reaches it; printable ASCII and UTF-8 pass through.
std::string printable(std::string_view text);

} // namespace actorrent
