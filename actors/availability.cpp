#include "actors/availability.hpp"

#include <algorithm>
#include <random>

namespace actorrent {

availability::availability(std::uint32_t piece_count, std::uint64_t shuffle_seed)
  : order_(piece_count), pos_(piece_count), count_(piece_count, 0), parked_(piece_count, false),
    start_{0, 0} {
  for (std::uint32_t i = 0; i < piece_count; ++i)
    order_[i] = i;
  // Peers of one swarm should not all chase the same "rarest" piece: break ties randomly.
  std::mt19937_64 rng(shuffle_seed ? shuffle_seed : std::random_device{}());
  std::shuffle(order_.begin(), order_.end(), rng);
  for (std::uint32_t i = 0; i < piece_count; ++i)
    pos_[order_[i]] = i;
  rotation_ = static_cast<std::uint32_t>(rng());
}

void availability::swap_positions(std::uint32_t a, std::uint32_t b) {
  if (a == b)
    return;
  std::swap(order_[a], order_[b]);
  pos_[order_[a]] = a;
  pos_[order_[b]] = b;
}

void availability::move_up(std::uint32_t piece, std::uint32_t bucket) {
  // The last slot of `bucket` becomes the first slot of bucket + 1.
  if (start_.size() <= bucket + 2)
    start_.resize(bucket + 3, static_cast<std::uint32_t>(order_.size()));
  std::uint32_t last = start_[bucket + 1] - 1;
  swap_positions(pos_[piece], last);
  --start_[bucket + 1];
}

void availability::move_down(std::uint32_t piece, std::uint32_t bucket) {
  assert(bucket > 0);
  std::uint32_t first = start_[bucket];
  swap_positions(pos_[piece], first);
  ++start_[bucket];
}

void availability::increment(piece_index p) {
  if (!parked_[p.value])
    move_up(p.value, count_[p.value] + 1);
  ++count_[p.value];
}

void availability::decrement(piece_index p) {
  assert(count_[p.value] > 0);
  if (!parked_[p.value])
    move_down(p.value, count_[p.value] + 1);
  --count_[p.value];
}

void availability::park(piece_index p) {
  if (parked_[p.value])
    return;
  for (std::uint32_t b = count_[p.value] + 1; b > 0; --b)
    move_down(p.value, b);
  parked_[p.value] = true;
}

void availability::unpark(piece_index p) {
  if (!parked_[p.value])
    return;
  for (std::uint32_t b = 0; b <= count_[p.value]; ++b)
    move_up(p.value, b);
  parked_[p.value] = false;
}

bool availability::consistent() const {
  for (std::uint32_t i = 0; i < order_.size(); ++i) {
    if (pos_[order_[i]] != i)
      return false;
    std::uint32_t b = bucket_of(piece_index{order_[i]});
    if (i < bucket_start(b) || i >= bucket_start(b + 1))
      return false;
  }
  for (std::size_t b = 1; b < start_.size(); ++b)
    if (start_[b] < start_[b - 1])
      return false;
  return true;
}

} // namespace actorrent
