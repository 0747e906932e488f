// BEP 9 metadata exchange (extension "ut_metadata"): the info dictionary of a torrent, fetched
// from peers in 16 KiB pieces when all we have is a magnet link, and served to peers that ask.
// Pure code: the message codec, and the assembly of one torrent's metadata (what to ask for
// next, who sent what, the SHA-1 check against the info-hash), which the torrent actor owns.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.hpp"
#include "protocol/types.hpp"

namespace actorrent::ut_metadata {

/// Metadata travels in pieces of 16 KiB (the last one shorter).
inline constexpr std::uint32_t piece_size = 16 * 1024;
/// Larger metadata is refused (BEP 9 sets no limit; libtorrent's default is 30 MiB, a real
/// info dictionary of 16 MiB already describes ~800,000 pieces).
inline constexpr std::uint64_t max_size = 16u << 20;

enum class msg_type : std::uint8_t { request = 0, data = 1, reject = 2 };

struct message {
  msg_type type = msg_type::request;
  std::uint32_t piece = 0;
  std::uint64_t total_size = 0; // data only
  std::string_view data;        // data only: the bytes after the dictionary (a view into input)
};

std::string encode_request(std::uint32_t piece);
std::string encode_reject(std::uint32_t piece);
std::string encode_data(std::uint32_t piece, std::uint64_t total_size, std::string_view data);

/// Parses a ut_metadata payload (without the extended-message framing). Errors
/// (errc::wire_protocol) start with "ut_metadata: " and name the key, e.g. "ut_metadata:
/// msg_type 7 out of range 0..2". Unknown msg_types are errors, unknown keys ignored; a data
/// piece longer than 16 KiB, or with total_size beyond max_size, is refused here.
result<message> parse(std::string_view payload);

/// Pieces of metadata of `size` bytes.
std::uint32_t piece_count(std::uint64_t size) noexcept;

/// One torrent's metadata being fetched. Peers are named by their slot in the torrent; each
/// piece is asked of one peer at a time and the request expires after `timeout`.
class assembler {
public:
  using clock = std::chrono::steady_clock;
  using peer = std::uint32_t;

  explicit assembler(const info_hash& hash) : hash_(hash) {}

  /// The size a peer announced (BEP 10 metadata_size). The first acceptable one is used; an
  /// error for a size that is 0 or above max_size (the peer lies or attacks).
  status set_size(std::uint64_t size);
  bool has_size() const noexcept { return size_ != 0; }
  std::uint64_t size() const noexcept { return size_; }

  /// The next piece to ask `from`, if any is neither received nor asked of anyone else.
  std::optional<std::uint32_t> next_request(peer from, clock::time_point now,
                                            clock::duration timeout = std::chrono::seconds(10));

  /// A data message from `from`. An error (and nothing kept) for a piece it was not asked for,
  /// a total_size other than ours, or a piece of the wrong length: the caller drops the peer.
  status on_data(peer from, std::uint32_t piece, std::uint64_t total_size,
                       std::string_view data);
  /// The peer refused a piece, or went away: its requests go back to the pool.
  void on_reject(peer from, std::uint32_t piece);
  void on_peer_gone(peer from);

  bool complete() const noexcept { return size_ != 0 && received_ == pieces_.size(); }

  /// Once complete: the info dictionary when its SHA-1 is the info-hash. Otherwise an error
  /// (errc::hash_mismatch), `culprits` gets every peer that sent a piece, and everything is
  /// forgotten (size included) so that the fetch starts over from other peers.
  result<std::string> take(std::vector<peer>& culprits);

private:
  struct piece_state {
    bool received = false;
    bool requested = false;
    peer from = 0;
    clock::time_point asked{};
  };
  info_hash hash_;
  std::uint64_t size_ = 0;
  std::string buffer_;
  std::vector<piece_state> pieces_;
  std::size_t received_ = 0;
};

} // namespace actorrent::ut_metadata
