#include "storage/part_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace actorrent {

namespace {

constexpr char magic[8] = {'A', 'T', 'R', 'P', 'A', 'R', 'T', '1'};
constexpr std::uint64_t header_bytes = 16;

error io_failure(const std::string& what, const std::string& path, int err) {
  return error{errc::io_error, what + " " + path + ": " + std::strerror(err)};
}

void put_u32(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= std::uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

// Whole-buffer pread/pwrite (EINTR and short transfers retried). A read stops at the end of
// the file and returns how much it got.
bool write_all(int fd, const char* p, std::size_t n, std::uint64_t off, int& err) {
  while (n > 0) {
    ssize_t k = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      err = k < 0 ? errno : EIO;
      return false;
    }
    p += k;
    n -= static_cast<std::size_t>(k);
    off += static_cast<std::uint64_t>(k);
  }
  return true;
}

bool read_all(int fd, char* p, std::size_t n, std::uint64_t off, std::size_t& got, int& err) {
  got = 0;
  while (got < n) {
    ssize_t k = ::pread(fd, p + got, n - got, static_cast<off_t>(off + got));
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0) {
      err = errno;
      return false;
    }
    if (k == 0)
      break;
    got += static_cast<std::size_t>(k);
  }
  return true;
}

} // namespace

part_file::part_file(std::string path, std::uint32_t piece_count, std::uint32_t piece_length)
    : path_(std::move(path)), piece_count_(piece_count), piece_length_(piece_length),
      slots_(piece_count, 0) {}

part_file::~part_file() {
  if (fd_ >= 0)
    ::close(fd_);
}

std::uint64_t part_file::slot_offset(std::uint32_t slot) const noexcept {
  return header_bytes + 4ull * piece_count_ + std::uint64_t{slot} * piece_length_;
}

status part_file::load() {
  int fd;
  do
    fd = ::open(path_.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == ENOENT)
      return {}; // nothing stored yet
    return io_failure("cannot open part file", path_, errno);
  }
  fd_ = fd;
  auto damaged = [&](const std::string& why) {
    return error{errc::io_error, "part file " + path_ + " is damaged (" + why +
                                     "); delete it to fetch the bytes it held again"};
  };
  const std::size_t table = 4ull * piece_count_;
  std::vector<char> head(header_bytes + table);
  std::size_t got = 0;
  int err = 0;
  if (!read_all(fd_, head.data(), head.size(), 0, got, err))
    return io_failure("cannot read part file", path_, err);
  if (got < header_bytes || std::memcmp(head.data(), magic, sizeof magic) != 0)
    return damaged("no part file header");
  if (get_u32(head.data() + 8) != piece_count_ || get_u32(head.data() + 12) != piece_length_)
    return damaged("made for " + std::to_string(get_u32(head.data() + 8)) + " pieces of " +
                   std::to_string(get_u32(head.data() + 12)) + " bytes, the torrent has " +
                   std::to_string(piece_count_) + " of " + std::to_string(piece_length_));
  if (got < head.size())
    return damaged("slot table cut off at byte " + std::to_string(got));
  std::vector<bool> used(piece_count_, false);
  for (std::uint32_t p = 0; p < piece_count_; ++p) {
    auto v = get_u32(head.data() + header_bytes + 4ull * p);
    if (v == 0)
      continue;
    if (v > piece_count_ || used[v - 1])
      return damaged("piece " + std::to_string(p) + " names slot " + std::to_string(v - 1) +
                     (v > piece_count_ ? ", beyond the last" : ", which another piece has"));
    used[v - 1] = true;
    slots_[p] = v;
    next_slot_ = std::max(next_slot_, v);
  }
  return {};
}

status part_file::create() {
  auto slash = path_.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    auto dir = path_.substr(0, slash);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      return io_failure("cannot create directory", dir, errno);
  }
  int fd;
  do
    fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return io_failure("cannot create part file", path_, errno);
  fd_ = fd;
  char head[header_bytes];
  std::memcpy(head, magic, sizeof magic);
  put_u32(head + 8, piece_count_);
  put_u32(head + 12, piece_length_);
  int err = 0;
  if (!write_all(fd_, head, sizeof head, 0, err))
    return io_failure("cannot write part file", path_, err);
  // The slot table reads as zeros (no slots) until entries are written.
  if (::ftruncate(fd_, static_cast<off_t>(slot_offset(0))) != 0)
    return io_failure("cannot resize part file", path_, errno);
  return {};
}

status part_file::write(piece_index p, std::uint32_t offset, const char* data, std::size_t n) {
  if (p.value >= piece_count_ || offset > piece_length_ || n > piece_length_ - offset)
    return error{errc::invalid_argument, "part file write outside piece " +
                                             std::to_string(p.value)};
  if (fd_ < 0)
    if (auto s = create(); !s)
      return s;
  int err = 0;
  if (slots_[p.value] == 0) {
    // The data first would be as good: a slot entry without data reads as zeros, which fail
    // the hash. Entry first keeps a crash from leaving data nobody can find.
    char entry[4];
    put_u32(entry, next_slot_ + 1);
    if (!write_all(fd_, entry, 4, header_bytes + 4ull * p.value, err))
      return io_failure("cannot write part file", path_, err);
    slots_[p.value] = ++next_slot_;
  }
  if (!write_all(fd_, data, n, slot_offset(slots_[p.value] - 1) + offset, err))
    return io_failure("cannot write part file", path_, err);
  return {};
}

status part_file::read(piece_index p, std::uint32_t offset, char* out, std::size_t n) {
  if (!has(p) || fd_ < 0)
    return error{errc::io_error, "part file " + path_ + " holds no bytes of piece " +
                                     std::to_string(p.value)};
  if (offset > piece_length_ || n > piece_length_ - offset)
    return error{errc::invalid_argument, "part file read outside piece " +
                                             std::to_string(p.value)};
  std::size_t got = 0;
  int err = 0;
  if (!read_all(fd_, out, n, slot_offset(slots_[p.value] - 1) + offset, got, err))
    return io_failure("cannot read part file", path_, err);
  std::memset(out + got, 0, n - got); // never written: a hole at the end of the file
  return {};
}

status part_file::sync() {
  if (fd_ < 0)
    return {};
  int rc;
  do
    rc = ::fdatasync(fd_);
  while (rc != 0 && errno == EINTR);
  if (rc != 0)
    return io_failure("cannot sync", path_, errno);
  return {};
}

status part_file::remove() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  std::fill(slots_.begin(), slots_.end(), 0);
  next_slot_ = 0;
  if (::unlink(path_.c_str()) != 0 && errno != ENOENT)
    return io_failure("cannot delete part file", path_, errno);
  return {};
}

} // namespace actorrent
