// Messages between a torrent and its peers for the BEP 10 extensions: BEP 9 metadata exchange
// (while the torrent has only a magnet link) and BEP 11 peer exchange. Plain data; kept apart
// from messages.hpp so that the extension code stays in one place.
//
//   peer --metadata_offer / metadata_piece / metadata_rejected--> torrent (awaiting metadata)
//   torrent --request_metadata--> peer
//   peer --pex_capable--> torrent --pex_snapshot (rounds)--> peer
//   peer --add_peers (what ut_pex told)--> torrent
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>

#include "actors/endpoint.hpp"
#include "protocol/types.hpp"

namespace actorrent {

/// The peer supports ut_metadata; `size` is its BEP 10 metadata_size (0: not given).
struct metadata_offer {
  peer_slot slot = no_peer;
  std::uint64_t size = 0;
};
/// A BEP 9 data message (the parser checked the piece number and its length bound).
struct metadata_piece {
  peer_slot slot = no_peer;
  std::uint32_t piece = 0;
  std::uint64_t total_size = 0;
  std::string data;
};
/// The peer refused a piece of metadata (BEP 9 reject).
struct metadata_rejected {
  peer_slot slot = no_peer;
  std::uint32_t piece = 0;
};
/// The peer takes ut_pex (BEP 11): it gets the torrent's pex_snapshot rounds.
struct pex_capable {
  peer_slot slot = no_peer;
};
/// Ask the peer for one piece of metadata.
struct request_metadata {
  std::uint32_t piece = 0;
};
/// The torrent's connected peers (their listen addresses), sent to every peer once a minute;
/// each peer diffs it against what it told its remote before and sends ut_pex (BEP 11).
struct pex_snapshot {
  std::vector<endpoint> peers;
  std::vector<std::uint8_t> flags; // pex::flag_* per peer
};

/// The torrent's timer while awaiting metadata: re-asking and dialling (1 s). Apart from `tick`,
/// whose chain the torrent's other states own.
struct metadata_tick {};

} // namespace actorrent

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::metadata_offer)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::metadata_piece)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::metadata_rejected)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::request_metadata)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::pex_snapshot)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::pex_capable)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(actorrent::metadata_tick)
