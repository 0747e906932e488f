#include "cluster/plan_store.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string_view>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "cluster/state.pb.h"
#include "cluster/wire.hpp"
#include "protocol/sha1.hpp"
#include "storage/atomic_file.hpp"

namespace actorrent::cluster {

namespace {

constexpr std::uint32_t plan_format = 1;
// The bitmap of any torrent plus a few thousand worker names fit many times over.
constexpr std::uint64_t max_state_bytes = 64ull << 20;
// The checksum field as written: tag (field 15, length-delimited), length 20, the digest.
constexpr unsigned char checksum_tag = (15 << 3) | 2;
constexpr std::size_t checksum_field_bytes = 2 + 20;

std::string as_bytes(const info_hash& h) {
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

const char* mode_name(std::uint32_t m) {
  switch (m) {
  case wire::MODE_SHARED:
    return "shared";
  case wire::MODE_REPLICATE:
    return "replicate";
  default:
    return "unknown";
  }
}

// The whole file, at most max_state_bytes. Returns false with errno-based `why` on failure;
// `missing` is set when there is no file.
bool read_file(const std::string& path, std::string& out, bool& missing, std::string& why) {
  missing = false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      missing = true;
      return false;
    }
    why = std::string{"cannot open: "} + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    why = "is not a regular file";
    ::close(fd);
    return false;
  }
  out.clear();
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      why = std::string{"cannot read: "} + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0)
      break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_state_bytes) {
      why = "is more than the limit of " + std::to_string(max_state_bytes) + " bytes";
      ::close(fd);
      return false;
    }
  }
  ::close(fd);
  return true;
}

} // namespace

std::uint64_t epoch_after_restart(std::uint64_t stored_last_epoch) {
  const auto top = std::numeric_limits<std::uint64_t>::max();
  return stored_last_epoch > top - epoch_restart_margin ? top
                                                        : stored_last_epoch + epoch_restart_margin;
}

std::string plan_state_path(const std::string& state_dir) {
  return state_dir + "/plan.state";
}

status save_plan_state(const std::string& state_dir, const plan_state& s) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec)
    return error{errc::io_error, "cannot create the state directory " + state_dir + ": " +
                                     ec.message()};
  state::PlanState msg;
  msg.set_format(plan_format);
  msg.set_info_hash(as_bytes(s.hash));
  msg.set_mode(static_cast<std::uint32_t>(s.mode));
  msg.set_piece_count(s.piece_count);
  msg.set_verified(bitmap_bytes(s.verified));
  msg.set_last_epoch(s.last_epoch);
  for (auto& w : s.workers)
    msg.add_workers(w);
  std::string bytes;
  if (!msg.SerializeToString(&bytes))
    return error{errc::io_error, "cannot serialize the plan for " + plan_state_path(state_dir)};
  const auto digest = sha1(bytes);
  bytes.push_back(static_cast<char>(checksum_tag));
  bytes.push_back(static_cast<char>(digest.size()));
  bytes.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  return write_file_atomically(plan_state_path(state_dir), bytes);
}

result<loaded_plan_state> load_plan_state(const std::string& state_dir, const info_hash& hash,
                                          wire::Mode mode, std::uint32_t piece_count) {
  const std::string path = plan_state_path(state_dir);
  std::string bytes;
  bool missing = false;
  std::string why;
  loaded_plan_state out;
  auto damaged = [&](const std::string& reason) -> result<loaded_plan_state> {
    out.state.reset();
    out.warning = "coordinator state " + path + " " + reason +
                  ": ignoring it, the job starts over (verified pieces are fetched again)";
    return out;
  };
  if (!read_file(path, bytes, missing, why)) {
    if (missing)
      return out;
    if (why.rfind("cannot open", 0) == 0 || why.rfind("cannot read", 0) == 0)
      return error{errc::io_error, "coordinator state " + path + " " + why};
    return damaged(why);
  }
  // The checksum first: nothing of a torn or bit-flipped file is believed, not even which
  // torrent it claims to be for.
  if (bytes.size() < checksum_field_bytes ||
      static_cast<unsigned char>(bytes[bytes.size() - 22]) != checksum_tag ||
      static_cast<unsigned char>(bytes[bytes.size() - 21]) != 20)
    return damaged("is truncated or damaged (" + std::to_string(bytes.size()) +
                   " bytes, no checksum at the end)");
  const std::string_view body(bytes.data(), bytes.size() - checksum_field_bytes);
  const auto digest = sha1(body);
  if (std::memcmp(digest.data(), bytes.data() + body.size() + 2, digest.size()) != 0)
    return damaged("is damaged (checksum mismatch)");
  state::PlanState msg;
  if (!msg.ParseFromArray(body.data(), static_cast<int>(body.size())))
    return damaged("does not parse although its checksum matches");
  if (msg.format() != plan_format)
    return error{errc::invalid_argument,
                 "coordinator state " + path + " has format " + std::to_string(msg.format()) +
                     ", this build reads " + std::to_string(plan_format) +
                     " (use another --state directory, or remove the file)"};
  if (msg.info_hash().size() != hash.size())
    return damaged("holds an info-hash of " + std::to_string(msg.info_hash().size()) +
                   " bytes");
  if (msg.info_hash() != as_bytes(hash)) {
    info_hash theirs{};
    std::memcpy(theirs.data(), msg.info_hash().data(), theirs.size());
    return error{errc::invalid_argument,
                 "coordinator state " + path + " is another torrent's (" + to_hex(theirs) +
                     ", this job: " + to_hex(hash) +
                     "): use another --state directory, or remove the file"};
  }
  if (msg.mode() != static_cast<std::uint32_t>(mode))
    return error{errc::invalid_argument,
                 "coordinator state " + path + " is of a " + mode_name(msg.mode()) +
                     " job, this one is " + mode_name(mode) +
                     ": use another --state directory, or remove the file"};
  if (msg.piece_count() != piece_count)
    return damaged("records " + std::to_string(msg.piece_count()) +
                   " pieces but the torrent has " + std::to_string(piece_count));
  auto verified = bitmap_from(msg.verified(), piece_count);
  if (!verified)
    return damaged("has a bad verified-piece bitmap (" + verified.error().message + ")");
  plan_state s;
  s.hash = hash;
  s.mode = mode;
  s.piece_count = piece_count;
  s.verified = std::move(*verified);
  s.last_epoch = msg.last_epoch();
  s.workers.assign(msg.workers().begin(), msg.workers().end());
  out.state = std::move(s);
  return out;
}

result<plan_store> plan_store::open(const std::string& dir, const info_hash& hash,
                                    std::uint32_t piece_count, wire::Mode mode) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return error{errc::io_error, "cannot create the state directory " + dir + ": " +
                                     ec.message()};
  if (!std::filesystem::is_directory(dir, ec))
    return error{errc::io_error, "the state directory " + dir + " is not a directory"};
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    return error{errc::io_error, "the state directory " + dir + " is not writable: " +
                                     std::strerror(errno)};
  plan_store s;
  s.dir_ = dir;
  s.hash_ = hash;
  s.piece_count_ = piece_count;
  s.mode_ = mode;
  return s;
}

result<std::optional<saved_plan>> plan_store::load() {
  auto r = load_plan_state(dir_, hash_, mode_, piece_count_);
  if (!r)
    return r.error();
  warning_ = r->warning;
  if (!r->state)
    return std::optional<saved_plan>{};
  saved_plan p;
  p.verified = std::move(r->state->verified);
  p.last_epoch = epoch_after_restart(r->state->last_epoch);
  p.workers = r->state->workers;
  for (auto& w : p.workers)
    note_worker(w);
  return std::optional<saved_plan>{std::move(p)};
}

status plan_store::save(const Roaring& verified, std::uint64_t last_epoch) {
  plan_state s;
  s.hash = hash_;
  s.mode = mode_;
  s.piece_count = piece_count_;
  s.verified = verified;
  s.last_epoch = last_epoch;
  s.workers = workers_;
  return save_plan_state(dir_, s);
}

void plan_store::note_worker(const std::string& name) {
  if (std::find(workers_.begin(), workers_.end(), name) == workers_.end())
    workers_.push_back(name);
}

} // namespace actorrent::cluster
