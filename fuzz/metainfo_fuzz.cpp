// Fuzz target: parse_metainfo (protocol/metainfo.hpp), then file_layout::create and map_block
// (storage/file_layout.hpp) on whatever parses, since "a metainfo that parses is safe to use".
// Input: the bytes of a .torrent file.
// Invariants of a parsed torrent:
//  - piece_length > 0, piece_count == ceil(total_size / piece_length), the file lengths sum to
//    total_size, the piece sizes sum to total_size (only the last piece short, none empty);
//  - a single-file torrent has exactly one file whose path is {name}; names and path components
//    are non-empty;
//  - the info-hash is the SHA-1 of the exact bytes of the info dictionary;
//  - tracker tiers hold only non-empty URLs;
//  - the layout of a parsed torrent fails only for unsafe paths (errc::unsafe_path); when it
//    succeeds its paths are relative and free of "."/".." components, the files tile the byte
//    stream, and every piece maps onto file slices that cover it exactly.
// Errors are bencode_* or metainfo_invalid, with any byte offset inside the input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.hpp"
#include "protocol/bencode.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/sha1.hpp"
#include "storage/file_layout.hpp"

using namespace actorrent;

namespace {

void check_path(const std::string& path) {
  FUZZ_CHECK(!path.empty() && path.front() != '/' && path.back() != '/', path);
  std::size_t start = 0;
  for (;;) {
    auto slash = path.find('/', start);
    std::string_view c = std::string_view(path).substr(
        start, slash == std::string::npos ? std::string::npos : slash - start);
    FUZZ_CHECK(!c.empty() && c != "." && c != "..", "unsafe component in " + path);
    FUZZ_CHECK(c.find('\\') == std::string_view::npos && c.find('\0') == std::string_view::npos,
               "unsafe character in " + path);
    if (slash == std::string::npos)
      break;
    start = slash + 1;
  }
}

void check_layout(const metainfo& m) {
  auto l = file_layout::create(m);
  if (!l.ok()) {
    FUZZ_CHECK(l.error().code == errc::unsafe_path,
               "layout refuses a parsed torrent for a reason other than its paths: " +
                   l.error().message);
    return;
  }
  FUZZ_CHECK(l->total_size() == m.total_size && l->piece_count() == m.piece_count() &&
                 l->piece_length() == m.piece_length,
             "layout geometry differs from the metainfo");
  FUZZ_CHECK(l->files().size() == m.files.size(), "layout file count");
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < l->files().size(); ++i) {
    const auto& f = l->files()[i];
    FUZZ_CHECK(f.offset == offset && f.length == m.files[i].length && f.pad == m.files[i].pad,
               "files do not tile the byte stream");
    check_path(f.path);
    offset += f.length;
  }
  // Every piece (whole, and a block inside it) maps onto contiguous slices covering it exactly.
  std::vector<file_slice> slices;
  for (std::uint32_t p = 0; p < l->piece_count(); ++p) {
    const std::uint32_t psize = l->piece_size(piece_index{p});
    FUZZ_CHECK(psize == m.piece_size(piece_index{p}), "layout and metainfo piece sizes differ");
    const std::uint32_t begin = psize / 3;
    const std::uint32_t len = psize - begin - psize / 5;
    for (auto [b, n] : {std::pair{0u, psize}, std::pair{begin, len}}) {
      slices.clear();
      l->map_block(piece_index{p}, b, n, slices);
      std::uint64_t pos = std::uint64_t{p} * l->piece_length() + b;
      std::uint64_t covered = 0;
      for (const auto& s : slices) {
        FUZZ_CHECK(s.file.value < l->files().size(), "slice names a file that does not exist");
        const auto& f = l->files()[s.file.value];
        FUZZ_CHECK(s.length > 0 && s.file_offset + s.length <= f.length,
                   "slice outside its file");
        FUZZ_CHECK(f.offset + s.file_offset == pos, "slices are not contiguous");
        pos += s.length;
        covered += s.length;
      }
      FUZZ_CHECK(covered == n, "slices do not cover the block");
    }
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto r = parse_metainfo(input);
  if (!r.ok()) {
    const auto& e = r.error();
    FUZZ_CHECK(e.code == errc::bencode_syntax || e.code == errc::bencode_limit ||
                   e.code == errc::bencode_noncanonical || e.code == errc::metainfo_invalid,
               e.message);
    const long long at = actorrent_fuzz::byte_offset(e.message);
    FUZZ_CHECK(at <= static_cast<long long>(size), e.message);
    if (e.code != errc::metainfo_invalid)
      FUZZ_CHECK(at >= 0, "bencode error without a byte offset: " + e.message);
    return 0;
  }
  const metainfo& m = *r;

  FUZZ_CHECK(m.piece_length > 0, "piece length 0");
  const std::uint64_t expected = (m.total_size + m.piece_length - 1) / m.piece_length;
  FUZZ_CHECK(m.piece_count() == expected, "piece_count != ceil(total / piece_length)");
  FUZZ_CHECK(!m.files.empty(), "no files");
  std::uint64_t sum = 0;
  for (const auto& f : m.files) {
    FUZZ_CHECK(!f.path.empty(), "empty path");
    for (const auto& c : f.path)
      FUZZ_CHECK(!c.empty(), "empty path component");
    FUZZ_CHECK(f.length <= m.total_size - sum, "file lengths overflow total_size");
    sum += f.length;
  }
  FUZZ_CHECK(sum == m.total_size, "file lengths do not sum to total_size");
  FUZZ_CHECK(!m.name.empty(), "empty name");
  if (!m.multi_file)
    FUZZ_CHECK(m.files.size() == 1 && m.files[0].path == std::vector<std::string>{m.name},
               "single-file torrent whose file is not {name}");

  std::uint64_t piece_sum = 0;
  for (std::uint32_t p = 0; p < m.piece_count(); ++p) {
    const auto s = m.piece_size(piece_index{p});
    FUZZ_CHECK(s > 0 && s <= m.piece_length, "piece size out of range");
    FUZZ_CHECK(s == m.piece_length || p + 1 == m.piece_count(), "short piece before the last");
    piece_sum += s;
  }
  FUZZ_CHECK(piece_sum == m.total_size, "piece sizes do not sum to total_size");
  FUZZ_CHECK(m.piece_size(piece_index{m.piece_count()}) == 0, "piece past the end has a size");

  // The info-hash covers exactly the info dictionary's bytes.
  auto root = bencode::decode(input, bencode::limits{}, true);
  FUZZ_CHECK(root.ok(), "parsed torrent does not decode");
  const bencode::value* info = root->find("info");
  FUZZ_CHECK(info != nullptr && info->is_dict(), "parsed torrent without an info dictionary");
  auto [b, e] = info->span();
  FUZZ_CHECK(sha1(input.substr(b, e - b)) == m.hash, "info-hash is not SHA-1 of the info bytes");

  for (const auto& tier : m.tracker_tiers()) {
    FUZZ_CHECK(!tier.empty(), "empty tracker tier");
    for (const auto& url : tier)
      FUZZ_CHECK(!url.empty(), "empty tracker URL");
  }

  check_layout(m);
  return 0;
}
