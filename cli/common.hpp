// What the commands that run a session (`download`, `seed`, `batch`) share: signal handling,
// logging, the peer id and how sizes are shown.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "actors/endpoint.hpp"

#include "protocol/types.hpp"
#include "protocol/units.hpp"

namespace actorrent {

class io_runtime;
struct dht_config;

/// The last SIGINT/SIGTERM received (0: none); set by on_signal, polled by the run loops.
extern std::atomic<int> stop_signal;
void on_signal(int sig);

/// The "session", "torrent", "peer", "storage" and "tracker" loggers on stderr: warnings, with
/// -v info, with -vv debug. Loggers registered before are kept.
void setup_logging(int verbosity);

/// "-AT0010-" (Azureus style: client AT, version 0.1.0) and 12 random characters.
peer_id make_peer_id();

// human_size (1536 -> "1.5 KiB") lives in protocol/units.hpp, included here for the commands.

/// Seconds as "M:SS" or "H:MM:SS"; "--:--" when unknown (negative) or absurd.
std::string eta_text(double seconds);

/// The DHT's bootstrap nodes. The built-in routers are public hosts: they are used only when
/// the user named none, and never when listening on loopback (every test and the demo do), or
/// when ACTORRENT_DHT_NO_DEFAULT_BOOTSTRAP is set (the test harness sets it), so that no test
/// ever resolves a name or sends a datagram off this machine.
std::vector<endpoint> dht_bootstrap_for(const std::vector<endpoint>& given,
                                        const std::string& listen_host);

/// The DHT node of a command's session: on the listen host ("localhost" as 127.0.0.1) and the
/// listen port's number over UDP, started from `given` nodes or else as dht_bootstrap_for says,
/// its node table kept in `state_file`.
dht_config session_dht(io_runtime& io, const std::string& listen_host, std::uint16_t port,
                       const std::vector<endpoint>& given, std::string state_file);

} // namespace actorrent
