#include "actors/rate_limiter.hpp"

#include <gtest/gtest.h>

using namespace actorrent;
using namespace std::chrono_literals;

namespace {

std::uint64_t rate_of(const std::string& text) {
  std::string why;
  auto r = parse_rate(text, why);
  EXPECT_TRUE(r.has_value()) << text << ": " << why;
  return r.value_or(~0ull);
}

} // namespace

TEST(ParseRate, SuffixesAreBinaryAndZeroMeansNone) {
  EXPECT_EQ(rate_of("10M"), 10ull << 20);
  EXPECT_EQ(rate_of("500K"), 500ull << 10);
  EXPECT_EQ(rate_of("1G"), 1ull << 30);
  EXPECT_EQ(rate_of("1gib/s"), 1ull << 30);
  EXPECT_EQ(rate_of("123456"), 123456u);
  EXPECT_EQ(rate_of("0"), 0u);
}

TEST(ParseRate, BadTextSaysWhy) {
  std::string why;
  EXPECT_FALSE(parse_rate("", why));
  EXPECT_NE(why.find("expected a number"), std::string::npos);
  EXPECT_FALSE(parse_rate("fast", why));
  EXPECT_FALSE(parse_rate("-5M", why));
  EXPECT_FALSE(parse_rate("10X", why));
  EXPECT_NE(why.find("unknown unit 'x'"), std::string::npos);
  EXPECT_FALSE(parse_rate("99999999999999999999", why));
  EXPECT_EQ(why, "too large");
  EXPECT_FALSE(parse_rate("17179869184G", why));
}

TEST(RateLimiter, UnlimitedNeverWaits) {
  rate_limiter r(0);
  r.consume(1ull << 40);
  EXPECT_GT(r.available(), 0);
  EXPECT_EQ(r.wait_time(), 0ns);
}

TEST(RateLimiter, DebtIsPaidAtTheRate) {
  auto t0 = rate_limiter::clock::now();
  rate_limiter r;
  r.set_rate(1 << 20, t0); // 1 MiB/s, burst 52428 bytes
  EXPECT_EQ(r.available(t0), 52428);
  r.consume(52428 + (1 << 20), t0); // one second of debt
  EXPECT_LT(r.available(t0), 0);
  auto wait = r.wait_time(t0);
  EXPECT_GE(wait, 999ms);
  EXPECT_LE(wait, 1001ms);
  EXPECT_EQ(r.wait_time(t0 + 1001ms), 0ns);
}

TEST(RateLimiter, IdleTimeBuysOnlyOneBurst) {
  auto t0 = rate_limiter::clock::now();
  rate_limiter r;
  r.set_rate(4 << 20, t0);
  EXPECT_EQ(r.available(t0 + 60s), static_cast<std::int64_t>(rate_limiter::burst_of(4 << 20)));
}

TEST(RateLimiter, TenSecondsMoveTheRateWithinHalfAPercent) {
  // A reader that takes 256 KiB whenever the bucket has a token, for 10 simulated seconds.
  auto t = rate_limiter::clock::now();
  const std::uint64_t rate = 4 << 20;
  rate_limiter r;
  r.set_rate(rate, t);
  auto end = t + 10s;
  std::uint64_t moved = 0;
  while (t < end) {
    auto w = r.wait_time(t);
    if (w > 0ns) {
      t += w;
      continue;
    }
    r.consume(256 * 1024, t);
    moved += 256 * 1024;
  }
  double ratio = static_cast<double>(moved) / (10.0 * rate);
  EXPECT_GT(ratio, 0.99);
  EXPECT_LT(ratio, 1.01);
}
