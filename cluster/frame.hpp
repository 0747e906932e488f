// The one message type that travels between cluster nodes over CAF's middleman: the bytes of
// one serialized Envelope (cluster.proto). Keeping the node protocol in Protobuf, with CAF
// carrying opaque bytes, lets decode() check version and info-hash before anything is trusted
// and keeps CAF's own serialization out of the protocol. Included only by the node sources
// (coordinator.cpp, worker.cpp, their tests): it pulls in CAF's type-ID machinery.
#pragma once

#include <string>
#include <utility>

#include <caf/meta/type_name.hpp>
#include <caf/type_id.hpp>

namespace actorrent::cluster {

struct cluster_frame {
  std::string bytes; // one wire::Envelope, serialized (cluster::encode)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_frame& x) {
  return f(caf::meta::type_name("cluster_frame"), x.bytes);
}

} // namespace actorrent::cluster

// Its own block, far above CAF's reserved IDs and clear of any block the actors layer may
// declare: both ends register it (cfg.add_message_types<caf::id_block::actorrent_cluster>()),
// an unregistered type would arrive empty.
CAF_BEGIN_TYPE_ID_BLOCK(actorrent_cluster, caf::first_custom_type_id + 500)
  CAF_ADD_TYPE_ID(actorrent_cluster, (actorrent::cluster::cluster_frame))
CAF_END_TYPE_ID_BLOCK(actorrent_cluster)
