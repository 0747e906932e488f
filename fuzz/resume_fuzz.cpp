// Fuzz target: load_resume (storage/resume.hpp) on arbitrary resume-file bytes.
// The torrent is fixed (6 pieces of 16 KiB over 5 files: a piece spanning files, a BEP 47
// padding file, a 0-byte file, a nested path and a non-UTF-8 name); its data files are created
// once in a private directory on tmpfs (/dev/shm, else $TMPDIR) with fixed sizes and mtimes, so
// a resume file can match them exactly. Each input is written as the torrent's resume file and
// loaded twice: as it is (exercising the structure and checksum checks) and with its trailing
// checksum field replaced by the correct one (so mutated bodies reach protobuf and roaring).
// Invariants: trusted and to_check are disjoint and hold only pieces < piece_count; a warning
// means trusted = {} and to_check = every piece, and names the resume file; load never throws.
//
// Seeds: ACTORRENT_RESUME_SEEDS=DIR ./resume_fuzz writes real resume files for this torrent
// (made by save_resume) and near-valid variants into DIR and exits (see fuzz/README.md).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <roaring/roaring.hh>

#include "config/resume.pb.h"
#include "fuzz/fuzz_check.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/sha1.hpp"
#include "storage/file_layout.hpp"
#include "storage/resume.hpp"

using namespace actorrent;

namespace {

constexpr std::size_t checksum_field = 22; // tag 0x32, length 20, SHA-1

struct fixture {
  std::string dir;
  metainfo meta;
  file_layout layout;
  std::string resume_file;
};

void die(const std::string& what) {
  std::fprintf(stderr, "resume_fuzz setup: %s: %s\n", what.c_str(), std::strerror(errno));
  std::abort();
}

void write_bytes(const std::string& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    die("open " + path);
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      die("write " + path);
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

std::string temp_root() {
  struct stat st;
  if (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0)
    return "/dev/shm";
  const char* t = std::getenv("TMPDIR");
  return t != nullptr && *t != '\0' ? t : "/tmp";
}

std::string g_dir; // removed at exit

void remove_dir() {
  if (!g_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(g_dir, ec);
  }
}

fixture make_fixture() {
  fixture f;
  std::string tmpl = temp_root() + "/actorrent-resume-fuzz.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    die("mkdtemp " + tmpl);
  f.dir = tmpl;
  g_dir = f.dir;
  std::atexit(remove_dir);

  metainfo& m = f.meta;
  m.name = "fz";
  m.multi_file = true;
  m.piece_length = 16384;
  m.files = {
      file_entry{{"a.bin"}, 40000, false},       // pieces 0-2, shares piece 2 with the pad
      file_entry{{".pad", "9152"}, 9152, true},  // aligns b.bin to piece 3
      file_entry{{"empty"}, 0, false},
      file_entry{{"sub", "b.bin"}, 30000, false}, // pieces 3-4
      file_entry{{"c\xff"}, 5000, false},        // pieces 4-5 (short last piece), not UTF-8
  };
  for (const auto& e : m.files)
    m.total_size += e.length;
  const std::uint64_t pieces = (m.total_size + m.piece_length - 1) / m.piece_length;
  for (std::uint64_t p = 0; p < pieces; ++p) {
    sha1_digest d{};
    d[0] = static_cast<std::uint8_t>(p);
    m.piece_hashes.push_back(d);
  }
  m.hash = sha1("actorrent resume fuzz torrent");
  auto l = file_layout::create(m);
  if (!l.ok()) {
    std::fprintf(stderr, "resume_fuzz setup: layout: %s\n", l.error().message.c_str());
    std::abort();
  }
  f.layout = std::move(*l);

  // Data files with their torrent sizes (sparse) and fixed mtimes, so that the resume files
  // written by save_resume in seed mode match them on every run.
  std::int64_t second = 1700000000;
  for (const auto& lf : f.layout.files()) {
    if (lf.pad)
      continue;
    const std::string path = f.dir + "/" + lf.path;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    write_bytes(path, "");
    if (::truncate(path.c_str(), static_cast<off_t>(lf.length)) != 0)
      die("truncate " + path);
    struct timespec times[2] = {{second, 123456789}, {second, 123456789}};
    if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
      die("utimensat " + path);
    ++second;
  }
  if (::mkdir((f.dir + "/.actorrent").c_str(), 0755) != 0)
    die("mkdir .actorrent");
  f.resume_file = resume_path(f.dir, m.hash);
  return f;
}

fixture& get() {
  static fixture f = make_fixture();
  return f;
}

std::string with_checksum(std::string body) {
  const sha1_digest d = sha1(body);
  body.push_back(static_cast<char>((6 << 3) | 2));
  body.push_back(20);
  body.append(reinterpret_cast<const char*>(d.data()), d.size());
  return body;
}

void check(const resume_result& r, const fixture& f) {
  const std::uint32_t n = f.layout.piece_count();
  FUZZ_CHECK((r.trusted & r.to_check).isEmpty(), "a piece is both trusted and to be checked");
  FUZZ_CHECK(r.trusted.isEmpty() || r.trusted.maximum() < n, "trusted piece out of range");
  FUZZ_CHECK(r.to_check.isEmpty() || r.to_check.maximum() < n, "piece to check out of range");
  if (!r.warning.empty()) {
    FUZZ_CHECK(r.trusted.isEmpty() && r.to_check.cardinality() == n,
               "a warning without a full check: " + r.warning);
    FUZZ_CHECK(r.warning.rfind("resume file " + f.resume_file + ": ", 0) == 0, r.warning);
  }
}

void load(std::string_view bytes) {
  fixture& f = get();
  write_bytes(f.resume_file, bytes);
  check(load_resume(f.dir, f.meta, f.layout), f);
}

// Seed mode: real resume files for the fixture's torrent plus near-valid variants.
void write_seeds(const std::string& out) {
  fixture& f = get();
  std::filesystem::create_directories(out);
  auto saved = [&](const Roaring& verified) {
    auto s = save_resume(f.dir, f.meta, f.layout, verified);
    if (!s.ok()) {
      std::fprintf(stderr, "save_resume: %s\n", s.error().message.c_str());
      std::abort();
    }
    std::string bytes;
    std::FILE* in = std::fopen(f.resume_file.c_str(), "rb");
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, in)) > 0;)
      bytes.append(buf, n);
    std::fclose(in);
    return bytes;
  };
  auto reencode = [&](const std::string& file, auto change) {
    config::resume_data d;
    if (!d.ParseFromString(file.substr(0, file.size() - checksum_field)))
      std::abort();
    change(d);
    d.clear_checksum();
    std::string body;
    d.SerializeToString(&body);
    return with_checksum(body);
  };
  Roaring none, some, all;
  some.add(0);
  some.add(2);
  some.add(3);
  all.addRange(0, f.layout.piece_count());
  const std::string s_none = saved(none), s_some = saved(some), s_all = saved(all);
  write_bytes(out + "/valid_none_verified", s_none);
  write_bytes(out + "/valid_some_verified", s_some);
  write_bytes(out + "/valid_all_verified", s_all);
  write_bytes(out + "/truncated", s_some.substr(0, s_some.size() / 2));
  std::string flipped = s_all;
  flipped[flipped.size() / 2] ^= 0x10;
  write_bytes(out + "/bit_flipped", flipped);
  write_bytes(out + "/changed_mtime", reencode(s_all, [](config::resume_data& d) {
                d.mutable_files(0)->set_mtime_ns(d.files(0).mtime_ns() + 1);
              }));
  write_bytes(out + "/version_2", reencode(s_some, [](config::resume_data& d) {
                d.set_version(2);
              }));
  write_bytes(out + "/piece_beyond_count", reencode(s_some, [&](config::resume_data& d) {
                Roaring r = some;
                r.add(f.layout.piece_count());
                std::string bitmap(r.getSizeInBytes(true), '\0');
                bitmap.resize(r.write(bitmap.data(), true));
                d.set_verified_pieces(bitmap);
              }));
  write_bytes(out + "/file_list_short", reencode(s_some, [](config::resume_data& d) {
                d.mutable_files()->RemoveLast();
              }));
  std::fprintf(stderr, "resume_fuzz: seeds written to %s\n", out.c_str());
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* out = std::getenv("ACTORRENT_RESUME_SEEDS"); out != nullptr && *out != '\0') {
    write_seeds(out);
    std::exit(0);
  }
  get();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  load(input);

  // The same body behind a correct checksum (replacing one already at the end).
  std::string_view body = input;
  if (body.size() >= checksum_field &&
      static_cast<unsigned char>(body[body.size() - checksum_field]) == ((6 << 3) | 2) &&
      body[body.size() - checksum_field + 1] == 20)
    body.remove_suffix(checksum_field);
  load(with_checksum(std::string(body)));
  return 0;
}
