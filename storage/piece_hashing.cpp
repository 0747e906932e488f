#include "storage/piece_hashing.hpp"

#include <string>
#include <string_view>

#include "protocol/sha1.hpp"

namespace actorrent {

status hash_piece(file_store& store, piece_index p, std::vector<char>& scratch, sha1_digest& out) {
  const auto& l = store.layout();
  if (p.value >= l.piece_count())
    return error{errc::invalid_argument, "piece " + std::to_string(p.value) +
                                             " is outside the torrent (" +
                                             std::to_string(l.piece_count()) + " pieces)"};
  const std::uint32_t size = l.piece_size(p);
  if (scratch.size() < size)
    scratch.resize(size);
  if (auto s = store.read(p, 0, size, scratch.data()); !s)
    return s;
  out = sha1(std::string_view{scratch.data(), size});
  return {};
}

} // namespace actorrent
