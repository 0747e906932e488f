#include "storage/disk_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

using namespace actorrent;
using namespace std::chrono_literals;

namespace {

/// Blocks the threads that run it until released: makes "what runs next" observable.
struct gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [this] { return open; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(m);
      open = true;
    }
    cv.notify_all();
  }
};

/// Waits (at most 10 s: the machine may be loaded) until `done` holds.
template <class F>
bool eventually(F done) {
  for (int i = 0; i < 10000 && !done(); ++i)
    std::this_thread::sleep_for(1ms);
  return done();
}

} // namespace

TEST(disk_pool, io_jobs_of_one_queue_run_in_order_and_never_overlap) {
  disk_pool pool{4};
  auto q = pool.make_queue();
  std::vector<int> order; // touched only by the queue's io jobs: serial by contract
  std::atomic<int> running{0};
  std::atomic<bool> overlapped{false};
  for (int i = 0; i < 500; ++i)
    pool.post(q, disk_pool::job_class::io, [&, i] {
      if (running.fetch_add(1) != 0)
        overlapped = true;
      order.push_back(i);
      running.fetch_sub(1);
    });
  ASSERT_TRUE(eventually([&] { return pool.pending() == 0; }));
  EXPECT_FALSE(overlapped.load());
  ASSERT_EQ(order.size(), 500u);
  for (int i = 0; i < 500; ++i)
    EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
}

TEST(disk_pool, io_jobs_of_different_queues_run_in_parallel) {
  disk_pool pool{2};
  auto a = pool.make_queue();
  auto b = pool.make_queue();
  gate g;
  std::atomic<int> started{0};
  pool.post(a, disk_pool::job_class::io, [&] { ++started; g.wait(); });
  pool.post(b, disk_pool::job_class::io, [&] { ++started; g.wait(); });
  // Both run at once: a torrent's slow write does not hold up another torrent.
  EXPECT_TRUE(eventually([&] { return started.load() == 2; }));
  g.release();
}

TEST(disk_pool, an_upload_read_posted_behind_a_long_check_runs_before_the_check_ends) {
  // One thread, so nothing but the order of picks can let the read through early. The check of
  // torrent A is 200 slices of 2 ms (0.4 s); the read of torrent B (and a write of A itself)
  // arrive once the check runs.
  disk_pool pool{1};
  auto a = pool.make_queue();
  auto b = pool.make_queue();
  std::atomic<int> slices_done{0};
  gate first_slice;
  std::atomic<bool> first_started{false};
  for (int i = 0; i < 200; ++i)
    pool.post(a, disk_pool::job_class::check, [&, i] {
      if (i == 0) {
        first_started = true;
        first_slice.wait();
      }
      std::this_thread::sleep_for(2ms);
      ++slices_done;
    });
  ASSERT_TRUE(eventually([&] { return first_started.load(); }));
  std::atomic<int> read_after{-1};
  std::atomic<int> write_after{-1};
  pool.post(b, disk_pool::job_class::io, [&] { read_after = slices_done.load(); });
  pool.post(a, disk_pool::job_class::io, [&] { write_after = slices_done.load(); });
  first_slice.release();
  ASSERT_TRUE(eventually([&] { return pool.pending() == 0; }));
  // Each waited for the slice that was running, not for the check.
  EXPECT_EQ(read_after.load(), 1);
  EXPECT_EQ(write_after.load(), 1);
  EXPECT_EQ(slices_done.load(), 200);
}

TEST(disk_pool, checks_of_several_torrents_take_turns) {
  disk_pool pool{1};
  auto a = pool.make_queue();
  auto b = pool.make_queue();
  gate g;
  pool.post(a, disk_pool::job_class::io, [&] { g.wait(); }); // holds the thread while we post
  std::vector<char> order;
  std::mutex m;
  for (int i = 0; i < 5; ++i)
    pool.post(a, disk_pool::job_class::check, [&] {
      std::lock_guard<std::mutex> lock(m);
      order.push_back('a');
    });
  for (int i = 0; i < 5; ++i)
    pool.post(b, disk_pool::job_class::check, [&] {
      std::lock_guard<std::mutex> lock(m);
      order.push_back('b');
    });
  g.release();
  ASSERT_TRUE(eventually([&] { return pool.pending() == 0; }));
  // A torrent added later is not stuck behind the whole check of the first one.
  EXPECT_EQ(std::string(order.begin(), order.end()), "ababababab");
}

TEST(disk_pool, a_steady_stream_of_writes_does_not_starve_a_check) {
  disk_pool pool{1};
  std::vector<std::shared_ptr<disk_pool::queue>> queues;
  for (int i = 0; i < 10; ++i)
    queues.push_back(pool.make_queue());
  gate g;
  pool.post(queues[0], disk_pool::job_class::io, [&] { g.wait(); });
  std::atomic<int> io_done{0};
  std::atomic<int> check_after{-1};
  auto check_q = pool.make_queue();
  pool.post(check_q, disk_pool::job_class::check, [&] { check_after = io_done.load(); });
  for (int round = 0; round < 10; ++round)
    for (auto& q : queues)
      pool.post(q, disk_pool::job_class::io, [&] { ++io_done; });
  g.release();
  ASSERT_TRUE(eventually([&] { return pool.pending() == 0; }));
  EXPECT_GE(check_after.load(), 0);
  EXPECT_LE(check_after.load(), static_cast<int>(disk_pool::check_share));
}

TEST(disk_pool, without_threads_a_job_runs_at_once_on_the_caller) {
  disk_pool pool{0};
  auto q = pool.make_queue();
  auto caller = std::this_thread::get_id();
  std::thread::id ran_on;
  pool.post(q, disk_pool::job_class::check, [&] { ran_on = std::this_thread::get_id(); });
  EXPECT_EQ(ran_on, caller);
  EXPECT_EQ(pool.threads(), 0u);
}

TEST(disk_pool, destruction_runs_what_is_queued) {
  std::atomic<int> ran{0};
  {
    disk_pool pool{2};
    auto q = pool.make_queue();
    for (int i = 0; i < 100; ++i)
      pool.post(q, i % 2 ? disk_pool::job_class::io : disk_pool::job_class::check, [&] { ++ran; });
  }
  EXPECT_EQ(ran.load(), 100);
}
