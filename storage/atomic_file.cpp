#include "storage/atomic_file.hpp"

#include <cerrno>
#include <cstring>
#include <random>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace actorrent {

namespace {

error io_failure(const std::string& what, const std::string& path, int err) {
  return error{errc::io_error, what + " " + path + ": " + std::strerror(err)};
}

std::string random_suffix() {
  static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::random_device rd;
  std::string s(8, '0');
  for (auto& c : s)
    c = alphabet[rd() % 36];
  return s;
}

} // namespace

status write_file_atomically(const std::string& path, std::string_view bytes) {
  if (path.empty() || path.back() == '/')
    return error{errc::invalid_argument, "not a file name: '" + path + "'"};
  const auto slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);

  // mkstemp would create the file 0600; a .torrent is meant to be shared, so the file is created
  // with 0666 and the umask decides, like any other new file. O_EXCL with a random name instead.
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    tmp = (dir == "/" ? "/" : dir + "/") + "." + base + ".tmp-" + random_suffix();
    do
      fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno != EEXIST)
      return io_failure("cannot create", tmp, errno);
  }
  if (fd < 0)
    return io_failure("cannot create", tmp, EEXIST);

  auto fail = [&](const std::string& what, const std::string& which, int err) -> status {
    if (fd >= 0)
      ::close(fd);
    ::unlink(tmp.c_str());
    return io_failure(what, which, err);
  };

  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return fail("cannot write", tmp, errno);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0)
    return fail("cannot fsync", tmp, errno);
  // close() is not retried on EINTR: on Linux the descriptor is gone either way.
  int rc = ::close(fd);
  fd = -1;
  if (rc != 0)
    return fail("cannot close", tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return fail("cannot rename " + tmp + " to", path, errno);

  // The rename is durable only once the directory entry is on disk.
  int dfd;
  do
    dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (dfd < 0 && errno == EINTR);
  if (dfd < 0)
    return io_failure("cannot open directory", dir, errno);
  rc = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  // Some file systems cannot fsync a directory (EINVAL); the file itself is already synced.
  if (rc != 0 && err != EINVAL)
    return io_failure("cannot fsync directory", dir, err);
  return {};
}

} // namespace actorrent
