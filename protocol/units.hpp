// Quantities the user writes (rates) and reads (sizes), without CAF: the CLI, the rate limiter and the
// batch job files share them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace actorrent {

/// Parses a rate: plain bytes per second ("500000"), or with a binary suffix K, M, G
/// ("500K", "10M" = 10 MiB/s, "1G"; also KiB/MiB/GiB, case-insensitive, optional "/s").
/// "0" means no limit. nullopt on anything else; `why` then says what was wrong.
std::optional<std::uint64_t> parse_rate(const std::string& text, std::string& why);

/// 1536 -> "1.5 KiB" (binary units, one decimal; bytes without).
std::string human_size(double bytes);

} // namespace actorrent
