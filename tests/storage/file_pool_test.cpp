#include "storage/file_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

using namespace actorrent;

namespace {

/// Opens /dev/null and counts the opens; `fds` records every descriptor handed out.
struct counting_opener {
  std::atomic<int> opens{0};
  file_pool::opener make() {
    return [this](int& err) -> result<int> {
      int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        err = errno;
        return error{errc::io_error, "cannot open /dev/null"};
      }
      ++opens;
      return fd;
    };
  }
};

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

} // namespace

TEST(file_pool, a_file_in_use_is_opened_once) {
  file_pool pool{4};
  counting_opener o;
  auto owner = pool.new_owner();
  auto a = pool.acquire(owner, 0, o.make());
  ASSERT_TRUE(a.ok());
  auto b = pool.acquire(owner, 0, o.make());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->fd(), b->fd());
  EXPECT_EQ(o.opens.load(), 1);
  EXPECT_EQ(pool.open_count(), 1u);
}

TEST(file_pool, the_least_recently_used_file_is_closed_when_the_pool_is_full) {
  file_pool pool{3};
  counting_opener o;
  auto owner = pool.new_owner();
  std::vector<int> fds;
  for (std::uint32_t f = 0; f < 3; ++f) {
    auto l = pool.acquire(owner, f, o.make());
    ASSERT_TRUE(l.ok());
    fds.push_back(l->fd());
  }
  // File 0 used again: file 1 is now the least recently used.
  ASSERT_TRUE(pool.acquire(owner, 0, o.make()).ok());
  auto fourth = pool.acquire(owner, 3, o.make());
  ASSERT_TRUE(fourth.ok());
  EXPECT_EQ(pool.open_count(), 3u);
  EXPECT_TRUE(is_open(fds[0]));
  EXPECT_EQ(o.opens.load(), 4);
  // File 1 was closed: using it opens it again; file 0 and 2 were kept.
  ASSERT_TRUE(pool.acquire(owner, 0, o.make()).ok());
  EXPECT_EQ(o.opens.load(), 4);
  ASSERT_TRUE(pool.acquire(owner, 1, o.make()).ok());
  EXPECT_EQ(o.opens.load(), 5);
  EXPECT_EQ(pool.open_count(), 3u);
}

TEST(file_pool, a_leased_descriptor_is_never_closed_under_its_user) {
  file_pool pool{2};
  counting_opener o;
  auto owner = pool.new_owner();
  auto held = pool.acquire(owner, 0, o.make());
  ASSERT_TRUE(held.ok());
  const int fd = held->fd();
  for (std::uint32_t f = 1; f < 10; ++f)
    ASSERT_TRUE(pool.acquire(owner, f, o.make()).ok());
  // File 0 was the coldest all along but in use: still open, still the same file.
  EXPECT_TRUE(is_open(fd));
  EXPECT_LE(pool.open_count(), 2u);
  auto again = pool.acquire(owner, 0, o.make());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->fd(), fd);
  EXPECT_EQ(o.opens.load(), 10);
  held->reset();
  again->reset();
  for (std::uint32_t f = 10; f < 12; ++f)
    ASSERT_TRUE(pool.acquire(owner, f, o.make()).ok());
  // Released and cold: closed, so using it again opens it again.
  ASSERT_TRUE(pool.acquire(owner, 0, o.make()).ok());
  EXPECT_EQ(o.opens.load(), 13);
}

TEST(file_pool, forget_closes_only_its_owners_files) {
  file_pool pool{8};
  counting_opener o;
  auto a = pool.new_owner();
  auto b = pool.new_owner();
  int fa = -1;
  int fb = -1;
  {
    auto la = pool.acquire(a, 0, o.make());
    auto lb = pool.acquire(b, 0, o.make());
    ASSERT_TRUE(la.ok() && lb.ok());
    fa = la->fd();
    fb = lb->fd();
    EXPECT_NE(fa, fb); // same file index, different owners: different files
  }
  pool.forget(a);
  EXPECT_FALSE(is_open(fa));
  EXPECT_TRUE(is_open(fb));
  EXPECT_EQ(pool.open_count(), 1u);
}

TEST(file_pool, an_open_error_is_returned_and_nothing_is_kept) {
  file_pool pool{4};
  auto owner = pool.new_owner();
  auto l = pool.acquire(owner, 0, [](int& err) -> result<int> {
    err = ENOENT;
    return error{errc::io_error, "cannot open x: No such file or directory"};
  });
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().message, "cannot open x: No such file or directory");
  EXPECT_EQ(pool.open_count(), 0u);
}

TEST(file_pool, concurrent_users_never_see_a_closed_descriptor) {
  // 8 threads over 64 files through a pool of 4: constant eviction. Each checks that its
  // descriptor stays open for as long as it holds it.
  file_pool pool{4};
  counting_opener o;
  auto owner = pool.new_owner();
  std::atomic<bool> bad{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (std::uint32_t i = 0; i < 2000; ++i) {
        auto l = pool.acquire(owner, (i * 7 + static_cast<std::uint32_t>(t)) % 64, o.make());
        if (!l.ok() || !is_open(l->fd()))
          bad = true;
        std::this_thread::yield();
        if (l.ok() && !is_open(l->fd()))
          bad = true;
      }
    });
  for (auto& th : threads)
    th.join();
  EXPECT_FALSE(bad.load());
  EXPECT_LE(pool.open_count(), 4u);
}

TEST(file_pool, default_capacity_follows_the_descriptor_limit) {
  struct rlimit old;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  struct rlimit lower = old;
  lower.rlim_cur = 1024;
  if (old.rlim_max != RLIM_INFINITY && old.rlim_max < 1024)
    GTEST_SKIP() << "hard limit below 1024";
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lower), 0);
  EXPECT_EQ(file_pool::default_capacity(), 256u);
  lower.rlim_cur = 20;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lower), 0);
  EXPECT_EQ(file_pool::default_capacity(), 8u);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
}
