#include "cli/create_command.hpp"

#include <unistd.h>

#include <sys/stat.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <mutex>

#include "protocol/metainfo.hpp"
#include "storage/atomic_file.hpp"

namespace actorrent {

namespace {

std::string piece_size_text(std::uint32_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
    return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0)
    return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

std::string human_size(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024 && u < 5) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

std::string trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b])))
    ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1])))
    --e;
  return s.substr(b, e - b);
}

// The directory that will receive out_file, checked before hashing (which may take minutes) so
// that a typo in -o fails at once.
bool output_directory_ok(const std::string& out_file, std::string& why) {
  auto slash = out_file.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : out_file.substr(0, slash);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    why = "cannot write " + out_file + ": directory " + dir + " does not exist";
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    why = "cannot write " + out_file + ": " + dir + " is not a directory";
    return false;
  }
  return true;
}

} // namespace

bool parse_size(const std::string& text, std::uint32_t& out) {
  const std::string s = trim(text);
  std::size_t i = 0;
  std::uint64_t v = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    v = v * 10 + static_cast<unsigned>(s[i] - '0');
    if (v > 0xffffffffull)
      return false;
    ++i;
  }
  if (i == 0)
    return false;
  std::string suffix;
  for (; i < s.size(); ++i)
    suffix += static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
  std::uint64_t mult = 1;
  if (suffix.empty() || suffix == "b")
    mult = 1;
  else if (suffix == "k" || suffix == "kb" || suffix == "kib")
    mult = 1ull << 10;
  else if (suffix == "m" || suffix == "mb" || suffix == "mib")
    mult = 1ull << 20;
  else
    return false;
  v *= mult;
  if (v > 0xffffffffull)
    return false;
  out = static_cast<std::uint32_t>(v);
  return true;
}

std::vector<std::vector<std::string>> parse_tiers(const std::vector<std::string>& values) {
  std::vector<std::vector<std::string>> tiers;
  for (const auto& v : values) {
    std::vector<std::string> tier;
    std::size_t start = 0;
    while (start <= v.size()) {
      auto comma = v.find(',', start);
      if (comma == std::string::npos)
        comma = v.size();
      auto url = trim(v.substr(start, comma - start));
      if (!url.empty())
        tier.push_back(std::move(url));
      start = comma + 1;
    }
    if (!tier.empty())
      tiers.push_back(std::move(tier));
  }
  return tiers;
}

int run_create(const create_options& opt_in, const std::string& out_file, bool quiet) {
  if (out_file.empty()) {
    std::fprintf(stderr, "error: no output file given (-o FILE)\n");
    return 2;
  }
  if (std::string why; !output_directory_ok(out_file, why)) {
    std::fprintf(stderr, "error: %s\n", why.c_str());
    return 1;
  }

  create_options opt = opt_in;
  const bool tty = !quiet && ::isatty(STDERR_FILENO);
  std::mutex progress_mutex;
  std::uint64_t shown = 0;
  auto last = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  bool drew = false;
  if (tty) {
    // Called from every hashing thread: whoever holds the lock draws, the others skip.
    opt.progress = [&](std::uint64_t hashed, std::uint64_t total) {
      std::unique_lock<std::mutex> lock(progress_mutex, std::try_to_lock);
      if (!lock.owns_lock())
        return;
      if (drew && shown == total)
        return; // 100% is already on screen
      shown = std::max(shown, hashed);
      auto now = std::chrono::steady_clock::now();
      if (shown != total && now - last < std::chrono::milliseconds(100))
        return;
      last = now;
      double pct = total ? 100.0 * static_cast<double>(shown) / static_cast<double>(total) : 100.0;
      std::fprintf(stderr, "\r\033[Khashing %5.1f%%  %s / %s", pct,
                   human_size(static_cast<double>(shown)).c_str(),
                   human_size(static_cast<double>(total)).c_str());
      std::fflush(stderr);
      drew = true;
    };
  }

  auto bytes = create_torrent(opt);
  if (drew) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  if (!bytes) {
    std::fprintf(stderr, "error: %s\n", bytes.error().message.c_str());
    return bytes.error().code == errc::io_error ? 1 : 2;
  }
  // create_torrent has already parsed it; again here for what the summary line reports.
  auto m = parse_metainfo(*bytes);
  if (!m) {
    std::fprintf(stderr, "error: %s\n", m.error().message.c_str());
    return 1;
  }
  if (auto s = write_file_atomically(out_file, *bytes); !s) {
    std::fprintf(stderr, "error: %s\n", s.error().message.c_str());
    return s.error().code == errc::io_error ? 1 : 2;
  }
  std::printf("created: %s info-hash %s (%u pieces of %s)\n", out_file.c_str(),
              to_hex(m->hash).c_str(), m->piece_count(), piece_size_text(m->piece_length).c_str());
  std::fflush(stdout);
  return 0;
}

} // namespace actorrent
