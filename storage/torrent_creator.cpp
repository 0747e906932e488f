#include "storage/torrent_creator.hpp"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "protocol/bencode.hpp"
#include "protocol/metainfo.hpp"
#include "protocol/sha1.hpp"
#include "storage/file_layout.hpp"

namespace actorrent {

namespace {

// Limits checked up front so that the user gets a clear message instead of the sanity parse
// failing: parse_metainfo refuses more than 64 MiB of .torrent, and 2^21 hashes are 40 MiB.
constexpr std::uint64_t max_pieces = 1u << 21;
constexpr std::size_t max_files = 1u << 20;
constexpr std::uint64_t max_total_size = 1ull << 50;
constexpr std::size_t read_chunk = 1u << 20;
constexpr unsigned max_threads = 64;

class unique_fd {
public:
  explicit unique_fd(int fd = -1) noexcept : fd_(fd) {}
  ~unique_fd() { reset(); }
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;

  int get() const noexcept { return fd_; }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = fd;
  }

private:
  int fd_;
};

error invalid(std::string msg) { return error{errc::invalid_argument, std::move(msg)}; }

error io_failure(const std::string& what, const std::string& path, int err) {
  return error{errc::io_error, what + " " + path + ": " + std::strerror(err)};
}

int open_retry(int dir, const char* name, int flags) {
  int fd;
  do
    fd = ::openat(dir, name, flags);
  while (fd < 0 && errno == EINTR);
  return fd;
}

const char* special_kind(mode_t mode) {
  if (S_ISSOCK(mode))
    return "a socket";
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISCHR(mode))
    return "a character device";
  if (S_ISBLK(mode))
    return "a block device";
  return "not a regular file";
}

// Why opening `name` (relative to `dir`) with O_NOFOLLOW failed. A symbolic link shows up as
// ELOOP on the last component and ENOTDIR on a directory component opened with O_DIRECTORY.
error open_failure(int dir, const char* name, const std::string& shown, int err) {
  struct stat st;
  if (::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode))
      return invalid(shown + " is a symbolic link (symbolic links are not followed)");
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
      return invalid(shown + " is " + special_kind(st.st_mode) + ", not a regular file");
  }
  if (err == ENOENT || err == ENOTDIR)
    return invalid(shown + ": " + std::strerror(err));
  return io_failure("cannot open", shown, err);
}

struct source_file {
  std::vector<std::string> components; // relative to the directory (multi-file only)
  std::string rel;                     // components joined with '/': the sort key
  std::uint64_t length = 0;
  std::uint64_t offset = 0;            // in the torrent's byte stream
};

// Lists every regular file below the open directory `dir` (recursively), refusing anything that
// is neither a regular file nor a directory. `prefix` holds the components leading to `dir`.
status scan_directory(int dir, const std::string& shown_dir, std::vector<std::string>& prefix,
                      std::vector<source_file>& out) {
  int listing_fd = open_retry(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing_fd < 0)
    return io_failure("cannot open directory", shown_dir, errno);
  DIR* d = ::fdopendir(listing_fd);
  if (!d) {
    int err = errno;
    ::close(listing_fd);
    return io_failure("cannot read directory", shown_dir, err);
  }
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    struct dirent* e = ::readdir(d);
    if (!e)
      break;
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0)
      continue;
    names.emplace_back(e->d_name);
  }
  int err = errno;
  ::closedir(d);
  if (err != 0)
    return io_failure("cannot read directory", shown_dir, err);
  // Only for reproducible error messages: the torrent's order is fixed by the final sort.
  std::sort(names.begin(), names.end());

  for (const auto& name : names) {
    const std::string shown = shown_dir + "/" + name;
    struct stat st;
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return io_failure("cannot stat", shown, errno);
    if (S_ISLNK(st.st_mode))
      return invalid(shown + " is a symbolic link (symbolic links are not followed)");
    if (S_ISDIR(st.st_mode)) {
      unique_fd sub{open_retry(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
      if (sub.get() < 0)
        return open_failure(dir, name.c_str(), shown, errno);
      prefix.push_back(name);
      auto s = scan_directory(sub.get(), shown, prefix, out);
      prefix.pop_back();
      if (!s)
        return s;
      continue;
    }
    if (!S_ISREG(st.st_mode))
      return invalid(shown + " is " + special_kind(st.st_mode) + ", not a regular file");
    if (out.size() >= max_files)
      return invalid(shown_dir + ": more than " + std::to_string(max_files) + " files");
    source_file f;
    f.components = prefix;
    f.components.push_back(name);
    for (const auto& c : f.components)
      f.rel += (f.rel.empty() ? "" : "/") + c;
    f.length = static_cast<std::uint64_t>(st.st_size);
    out.push_back(std::move(f));
  }
  return {};
}

// The torrent's name: the last component of `path` (without trailing slashes), or the real name
// of the directory when that component is "." or "..".
result<std::string> torrent_name(const std::string& path) {
  auto slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty() || base == "." || base == "..") {
    std::unique_ptr<char, decltype(&std::free)> real{::realpath(path.c_str(), nullptr), &std::free};
    if (!real)
      return io_failure("cannot resolve", path, errno);
    std::string r = real.get();
    slash = r.rfind('/');
    base = slash == std::string::npos ? r : r.substr(slash + 1);
  }
  if (base.empty())
    return invalid("cannot name a torrent after '" + path + "': give a directory below /");
  return base;
}

// Reads and hashes pieces; one per thread, each with its own descriptor and SHA-1 context.
class piece_hasher {
public:
  piece_hasher(const std::vector<source_file>& files, const std::vector<std::uint64_t>& ends,
               int root_fd, bool single, const std::string& shown_root, std::uint32_t piece_length,
               std::uint64_t total)
      : files_(files), ends_(ends), root_fd_(root_fd), single_(single), shown_root_(shown_root),
        piece_length_(piece_length), total_(total),
        buf_(std::min<std::size_t>(read_chunk, piece_length)) {}

  status hash(std::uint64_t piece, std::uint8_t* digest_out) {
    const std::uint64_t start = piece * piece_length_;
    std::uint64_t left = std::min<std::uint64_t>(piece_length_, total_ - start);
    // First file whose end lies beyond `start`: skips 0-byte files sitting at that offset.
    std::size_t i = static_cast<std::size_t>(
        std::upper_bound(ends_.begin(), ends_.end(), start) - ends_.begin());
    std::uint64_t pos = start;
    while (left > 0) {
      if (i >= files_.size())
        return error{errc::io_error, "internal error: piece " + std::to_string(piece) +
                                         " extends past the last file"};
      const auto& f = files_[i];
      if (f.length == 0 || pos >= f.offset + f.length) {
        ++i;
        continue;
      }
      int fd = -1;
      if (auto s = open_file(i, fd); !s)
        return s;
      std::uint64_t file_off = pos - f.offset;
      std::uint64_t n = std::min(left, f.length - file_off);
      while (n > 0) {
        const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n, buf_.size()));
        ssize_t got = ::pread(fd, buf_.data(), want, static_cast<off_t>(file_off));
        if (got < 0) {
          if (errno == EINTR)
            continue;
          return io_failure("cannot read", shown(i), errno);
        }
        if (got == 0)
          return error{errc::io_error, shown(i) + " became shorter while it was being hashed"};
        hasher_.update(std::string_view(buf_.data(), static_cast<std::size_t>(got)));
        file_off += static_cast<std::uint64_t>(got);
        pos += static_cast<std::uint64_t>(got);
        n -= static_cast<std::uint64_t>(got);
        left -= static_cast<std::uint64_t>(got);
      }
      ++i;
    }
    auto d = hasher_.finish();
    std::copy(d.begin(), d.end(), digest_out);
    return {};
  }

private:
  std::string shown(std::size_t i) const {
    return single_ ? shown_root_ : shown_root_ + "/" + files_[i].rel;
  }

  // Opens file i (keeping the last one open, as consecutive pieces mostly stay in one file),
  // walking down from the root one component at a time with O_NOFOLLOW so that a symbolic link
  // swapped in after the scan is refused, and checks it still is the file that was scanned.
  status open_file(std::size_t i, int& fd_out) {
    if (single_) {
      fd_out = root_fd_;
      return {};
    }
    if (open_index_ == i && fd_.get() >= 0) {
      fd_out = fd_.get();
      return {};
    }
    fd_.reset();
    const auto& comps = files_[i].components;
    unique_fd dir;
    int cur = root_fd_;
    std::string shown_path = shown_root_;
    for (std::size_t k = 0; k < comps.size(); ++k) {
      const bool last = k + 1 == comps.size();
      shown_path += "/" + comps[k];
      int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (last ? O_NONBLOCK : O_DIRECTORY);
      unique_fd next{open_retry(cur, comps[k].c_str(), flags)};
      if (next.get() < 0)
        return open_failure(cur, comps[k].c_str(), shown_path, errno);
      if (last) {
        fd_ = std::move(next);
      } else {
        dir = std::move(next);
        cur = dir.get();
      }
    }
    struct stat st;
    if (::fstat(fd_.get(), &st) != 0)
      return io_failure("cannot stat", shown_path, errno);
    if (!S_ISREG(st.st_mode))
      return invalid(shown_path + " is " + special_kind(st.st_mode) + ", not a regular file");
    if (static_cast<std::uint64_t>(st.st_size) != files_[i].length)
      return error{errc::io_error, shown_path + " changed size while being hashed (" +
                                       std::to_string(files_[i].length) + " -> " +
                                       std::to_string(st.st_size) + " bytes)"};
    open_index_ = i;
    fd_out = fd_.get();
    return {};
  }

  const std::vector<source_file>& files_;
  const std::vector<std::uint64_t>& ends_;
  int root_fd_;
  bool single_;
  const std::string& shown_root_;
  std::uint32_t piece_length_;
  std::uint64_t total_;
  std::vector<char> buf_;
  sha1_hasher hasher_;
  unique_fd fd_;
  std::size_t open_index_ = static_cast<std::size_t>(-1);
};

bool is_power_of_two(std::uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

status check_options(const create_options& opt) {
  if (opt.path.empty())
    return invalid("no file or directory given");
  if (opt.piece_length != 0 &&
      (!is_power_of_two(opt.piece_length) || opt.piece_length < min_piece_length ||
       opt.piece_length > max_piece_length))
    return invalid("piece size " + std::to_string(opt.piece_length) +
                   " is not a power of two between 16 KiB and 256 MiB");
  for (const auto& tier : opt.trackers)
    for (const auto& url : tier) {
      if (url.empty())
        return invalid("empty tracker URL");
      for (unsigned char c : url)
        if (c <= 0x20 || c == 0x7f)
          return invalid("tracker URL '" + url + "' contains a space or control character");
    }
  return {};
}

} // namespace

std::uint32_t auto_piece_length(std::uint64_t total_size) {
  std::uint32_t p = min_piece_length;
  while (p < max_auto_piece_length && (total_size + p - 1) / p > 2000)
    p <<= 1;
  return p;
}

result<std::string> create_torrent(const create_options& opt) {
  if (auto s = check_options(opt); !s)
    return s.error();

  // "dir/" and "dir" are the same directory, but O_NOFOLLOW only sees a symbolic link "dir"
  // when there is no trailing slash (with one, the link would be resolved).
  std::string path = opt.path;
  while (path.size() > 1 && path.back() == '/')
    path.pop_back();

  auto name = torrent_name(path);
  if (!name)
    return name.error();
  if (auto s = sanitize_path({*name}); !s)
    return error{s.error().code, path + ": " + s.error().message};

  // O_NONBLOCK: opening a FIFO must not wait for a writer before fstat refuses it.
  unique_fd root{
      open_retry(AT_FDCWD, path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
  if (root.get() < 0)
    return open_failure(AT_FDCWD, path.c_str(), path, errno);
  struct stat st;
  if (::fstat(root.get(), &st) != 0)
    return io_failure("cannot stat", path, errno);

  const bool single = S_ISREG(st.st_mode);
  std::vector<source_file> files;
  if (single) {
    source_file f;
    f.length = static_cast<std::uint64_t>(st.st_size);
    files.push_back(std::move(f));
  } else if (S_ISDIR(st.st_mode)) {
    std::vector<std::string> prefix;
    if (auto s = scan_directory(root.get(), path, prefix, files); !s)
      return s.error();
    if (files.empty())
      return invalid(path + ": no files in this directory");
    std::sort(files.begin(), files.end(),
              [](const source_file& a, const source_file& b) { return a.rel < b.rel; });
    for (const auto& f : files) {
      std::vector<std::string> full{*name};
      full.insert(full.end(), f.components.begin(), f.components.end());
      if (auto s = sanitize_path(full); !s)
        return error{s.error().code, path + "/" + f.rel + ": " + s.error().message};
    }
  } else {
    return invalid(path + " is " + special_kind(st.st_mode) + ", not a file or directory");
  }

  std::uint64_t total = 0;
  std::vector<std::uint64_t> ends;
  ends.reserve(files.size());
  for (auto& f : files) {
    if (f.length > max_total_size - total)
      return invalid(path + ": more than " + std::to_string(max_total_size) + " bytes in total");
    f.offset = total;
    total += f.length;
    ends.push_back(total);
  }
  if (total == 0)
    return invalid(path + (single ? " is empty" : ": every file is empty") +
                   std::string(" (a torrent needs at least one byte)"));

  const std::uint32_t piece_length = opt.piece_length ? opt.piece_length : auto_piece_length(total);
  const std::uint64_t pieces = (total + piece_length - 1) / piece_length;
  if (pieces > max_pieces)
    return invalid(path + ": " + std::to_string(pieces) + " pieces of " +
                   std::to_string(piece_length) + " bytes is more than " +
                   std::to_string(max_pieces) + "; choose a larger piece size");

  // Hash: worker threads take batches of consecutive pieces (about 4 MiB per batch, so that
  // each thread reads sequentially) until none are left; the calling thread is one of them.
  std::string piece_hashes(static_cast<std::size_t>(pieces) * 20, '\0');
  unsigned threads = opt.threads ? opt.threads : std::thread::hardware_concurrency();
  threads = std::max(1u, std::min<unsigned>(threads, max_threads));
  threads = static_cast<unsigned>(std::min<std::uint64_t>(threads, pieces));
  const std::uint64_t batch = std::max<std::uint64_t>(1, (4u << 20) / piece_length);
  std::atomic<std::uint64_t> next{0};
  std::atomic<std::uint64_t> hashed{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  error first_error;

  auto work = [&] {
    piece_hasher h(files, ends, root.get(), single, path, piece_length, total);
    while (!failed.load(std::memory_order_relaxed)) {
      const std::uint64_t begin = next.fetch_add(batch);
      if (begin >= pieces)
        return;
      const std::uint64_t end = std::min(pieces, begin + batch);
      for (std::uint64_t p = begin; p < end; ++p) {
        auto s = h.hash(p, reinterpret_cast<std::uint8_t*>(&piece_hashes[p * 20]));
        if (!s) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (!failed.exchange(true))
            first_error = s.error();
          return;
        }
        const std::uint64_t len = std::min<std::uint64_t>(piece_length, total - p * piece_length);
        const std::uint64_t now = hashed.fetch_add(len) + len;
        if (opt.progress)
          opt.progress(now, total);
      }
    }
  };

  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {
      break; // fewer threads only make it slower; the calling thread hashes whatever is left
    }
  }
  work();
  for (auto& t : pool)
    t.join();
  if (failed.load())
    return first_error;
  if (opt.progress)
    opt.progress(total, total);

  // Bencode. bencode::value::set keeps dictionary keys sorted, as BEP 3 requires.
  using bencode::value;
  value info = value::make_dict();
  if (single) {
    info.set("length", value::make_int(static_cast<std::int64_t>(total)));
  } else {
    bencode::list list;
    list.reserve(files.size());
    for (const auto& f : files) {
      bencode::list comps;
      for (const auto& c : f.components)
        comps.push_back(value::make_string(c));
      value entry = value::make_dict();
      entry.set("length", value::make_int(static_cast<std::int64_t>(f.length)));
      entry.set("path", value::make_list(std::move(comps)));
      list.push_back(std::move(entry));
    }
    info.set("files", value::make_list(std::move(list)));
  }
  info.set("name", value::make_string(*name));
  info.set("piece length", value::make_int(piece_length));
  info.set("pieces", value::make_string(std::move(piece_hashes)));
  if (opt.is_private)
    info.set("private", value::make_int(1));

  value root_dict = value::make_dict();
  std::vector<std::vector<std::string>> tiers;
  std::size_t urls = 0;
  for (const auto& tier : opt.trackers)
    if (!tier.empty()) {
      tiers.push_back(tier);
      urls += tier.size();
    }
  if (!tiers.empty())
    root_dict.set("announce", value::make_string(tiers.front().front()));
  if (urls > 1) {
    bencode::list al;
    for (const auto& tier : tiers) {
      bencode::list t;
      for (const auto& url : tier)
        t.push_back(value::make_string(url));
      al.push_back(value::make_list(std::move(t)));
    }
    root_dict.set("announce-list", value::make_list(std::move(al)));
  }
  if (!opt.comment.empty())
    root_dict.set("comment", value::make_string(opt.comment));
  if (!opt.created_by.empty())
    root_dict.set("created by", value::make_string(opt.created_by));
  root_dict.set("info", std::move(info));
  std::string bytes = bencode::encode(root_dict);

  // Sanity check: what was just built must parse, say what was hashed, and be downloadable by
  // actorrent itself (file_layout applies the same path rules as a download).
  auto parsed = parse_metainfo(bytes);
  if (!parsed)
    return error{errc::metainfo_invalid,
                 "internal error: the created torrent does not parse: " + parsed.error().message};
  assert(parsed->piece_count() == pieces);
  if (parsed->piece_count() != pieces || parsed->total_size != total ||
      parsed->files.size() != files.size() || parsed->multi_file == single)
    return error{errc::metainfo_invalid,
                 "internal error: the created torrent does not describe what was hashed"};
  if (auto layout = file_layout::create(*parsed); !layout)
    return error{layout.error().code, path + ": " + layout.error().message};
  return bytes;
}

} // namespace actorrent
