// The benchmarks' baseline client: libtorrent-rasterbar 2.x in C++ with the POSIX disk back-end
// (pread/pwrite, what qBittorrent's "POSIX-compliant" disk I/O type selects), default settings
// otherwise, loopback only with DHT, LSD, UPnP, NAT-PMP and uTP off.
//
//   lt_client download TORRENT -o DIR [--peer HOST:PORT]... [--port P] [--timeout S]
//             [--no-tracker]
//       Downloads into DIR, prints "complete: BYTES bytes in SECONDS s" (seconds since the
//       process started) when every piece has passed its hash check, and exits 0. Exit 3 on
//       timeout, 1 on a file or listen error, 2 on bad arguments or a bad .torrent.
//
//   lt_client seed TORRENT DIR [--port P] [--sessions N] [--upload-limit BYTES_PER_S]
//             [--dial-file F] [--no-tracker]
//       N independent sessions (own listen port each: P, P+1, ...; P = 0 picks free ones), each
//       seeding TORRENT from DIR. The data is hashed in full by the first session (no seed
//       mode: nothing is verified lazily while a benchmark measures); the others start from
//       that session's resume data, as a client restarted on checked data does. Prints
//       "READY PORT..." once every session is seeding. --upload-limit caps each session,
//       loopback peers included. Host:port lines written to F are dialled by every session.
//       On SIGUSR1 prints "UPLOADED B1 B2 ..." (payload bytes each session has uploaded so far:
//       which seeders were active). Runs until SIGINT/SIGTERM.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <libtorrent/add_torrent_params.hpp>
#include <libtorrent/alert_types.hpp>
#include <libtorrent/error_code.hpp>
#include <libtorrent/ip_filter.hpp>
#include <libtorrent/posix_disk_io.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/session_params.hpp>
#include <libtorrent/settings_pack.hpp>
#include <libtorrent/torrent_handle.hpp>
#include <libtorrent/torrent_info.hpp>
#include <libtorrent/torrent_status.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
const auto process_start = clock_type::now();
volatile std::sig_atomic_t stop_requested = 0;
volatile std::sig_atomic_t upload_report_requested = 0;

double elapsed() {
  return std::chrono::duration<double>(clock_type::now() - process_start).count();
}

void say(const char* fmt, const std::string& a = {}) {
  std::fprintf(stderr, "[lt_client %.2f] ", elapsed());
  std::fprintf(stderr, fmt, a.c_str());
  std::fputc('\n', stderr);
}

struct options {
  std::string mode, torrent, dir, dial_file;
  std::vector<std::string> peers;
  int port = 0;
  int sessions = 1;
  long long upload_limit = 0;
  double timeout = 0;
  bool no_tracker = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "lt_client: %s\nusage: lt_client download TORRENT -o DIR [--peer HOST:PORT]... "
               "[--port P] [--timeout S] [--no-tracker]\n"
               "       lt_client seed TORRENT DIR [--port P] [--sessions N] "
               "[--upload-limit BYTES_PER_S] [--dial-file F] [--no-tracker]\n",
               why);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  if (argc < 3)
    usage("missing arguments");
  o.mode = argv[1];
  if (o.mode != "download" && o.mode != "seed")
    usage("mode must be download or seed");
  std::vector<std::string> positional;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    try {
      if (a == "-o")
        o.dir = value();
      else if (a == "--peer")
        o.peers.push_back(value());
      else if (a == "--port")
        o.port = std::stoi(value());
      else if (a == "--sessions")
        o.sessions = std::stoi(value());
      else if (a == "--upload-limit")
        o.upload_limit = std::stoll(value());
      else if (a == "--timeout")
        o.timeout = std::stod(value());
      else if (a == "--dial-file")
        o.dial_file = value();
      else if (a == "--no-tracker")
        o.no_tracker = true;
      else if (!a.empty() && a[0] == '-')
        usage(("unknown option " + a).c_str());
      else
        positional.push_back(a);
    } catch (const std::exception&) {
      usage(("bad number for " + a).c_str());
    }
  }
  if (positional.empty())
    usage("missing TORRENT");
  o.torrent = positional[0];
  if (o.mode == "seed" && positional.size() == 2)
    o.dir = positional[1];
  else if (positional.size() != 1)
    usage("too many arguments");
  if (o.dir.empty())
    usage(o.mode == "seed" ? "missing DIR" : "missing -o DIR");
  if (o.sessions < 1 || o.sessions > 1000 || o.port < 0 || o.port > 65535 || o.upload_limit < 0)
    usage("--sessions, --port or --upload-limit out of range");
  return o;
}

lt::tcp::endpoint parse_endpoint(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos)
    throw std::invalid_argument("not HOST:PORT: " + s);
  return {lt::make_address(s.substr(0, colon)),
          static_cast<std::uint16_t>(std::stoi(s.substr(colon + 1)))};
}

std::unique_ptr<lt::session> make_session(int port, long long upload_limit) {
  lt::settings_pack sp;
  sp.set_str(lt::settings_pack::listen_interfaces, "127.0.0.1:" + std::to_string(port));
  sp.set_str(lt::settings_pack::outgoing_interfaces, "127.0.0.1");
  sp.set_bool(lt::settings_pack::enable_dht, false);
  sp.set_bool(lt::settings_pack::enable_lsd, false);
  sp.set_bool(lt::settings_pack::enable_upnp, false);
  sp.set_bool(lt::settings_pack::enable_natpmp, false);
  sp.set_str(lt::settings_pack::dht_bootstrap_nodes, "");
  sp.set_bool(lt::settings_pack::enable_incoming_utp, false);
  sp.set_bool(lt::settings_pack::enable_outgoing_utp, false);
  // every peer of a benchmark is 127.0.0.1
  sp.set_bool(lt::settings_pack::allow_multiple_connections_per_ip, true);
  sp.set_int(lt::settings_pack::in_enc_policy, lt::settings_pack::pe_enabled);
  sp.set_int(lt::settings_pack::out_enc_policy, lt::settings_pack::pe_enabled);
  sp.set_int(lt::settings_pack::allowed_enc_level, lt::settings_pack::pe_both);
  sp.set_bool(lt::settings_pack::prefer_rc4, false);
  sp.set_int(lt::settings_pack::upload_rate_limit, static_cast<int>(upload_limit));
  sp.set_int(lt::settings_pack::alert_mask,
             lt::alert_category::status | lt::alert_category::error | lt::alert_category::storage);
  sp.set_str(lt::settings_pack::user_agent, "actorrent-bench-lt_client/" LIBTORRENT_VERSION);
  lt::session_params params(std::move(sp));
  params.disk_io_constructor = lt::posix_disk_io_constructor;
  auto ses = std::make_unique<lt::session>(std::move(params));
  if (upload_limit > 0) {
    // loopback peers are in libtorrent's unlimited "local" class: put everyone in the global
    // class so the cap applies to the benchmark's peers too
    lt::ip_filter f;
    f.add_rule(lt::make_address("0.0.0.0"), lt::make_address("255.255.255.255"),
               1u << static_cast<std::uint32_t>(lt::session::global_peer_class_id));
    ses->set_peer_class_filter(f);
  }
  return ses;
}

/// Returns false (and says why) on an alert that ends the run.
bool drain_alerts(lt::session& ses, bool* finished, std::vector<lt::add_torrent_params>* resume) {
  std::vector<lt::alert*> alerts;
  ses.pop_alerts(&alerts);
  for (auto* a : alerts) {
    if (lt::alert_cast<lt::torrent_finished_alert>(a)) {
      if (finished)
        *finished = true;
    } else if (auto* r = lt::alert_cast<lt::save_resume_data_alert>(a)) {
      if (resume)
        resume->push_back(r->params);
    } else if (lt::alert_cast<lt::file_error_alert>(a) ||
               lt::alert_cast<lt::listen_failed_alert>(a) ||
               lt::alert_cast<lt::torrent_error_alert>(a) ||
               lt::alert_cast<lt::save_resume_data_failed_alert>(a)) {
      say("error: %s", a->message());
      return false;
    } else if (lt::alert_cast<lt::hash_failed_alert>(a)) {
      say("%s", a->message());
    }
  }
  return true;
}

lt::add_torrent_params base_params(const options& o, std::shared_ptr<lt::torrent_info> ti) {
  lt::add_torrent_params atp;
  atp.ti = std::move(ti);
  atp.save_path = o.dir;
  atp.flags &= ~(lt::torrent_flags::auto_managed | lt::torrent_flags::paused);
  if (o.no_tracker)
    atp.trackers.clear();
  return atp;
}

int download(const options& o, std::shared_ptr<lt::torrent_info> ti) {
  auto ses = make_session(o.port, 0);
  auto atp = base_params(o, ti);
  lt::error_code ec;
  auto h = ses->add_torrent(std::move(atp), ec);
  if (ec) {
    say("cannot add torrent: %s", ec.message());
    return 1;
  }
  if (o.no_tracker)
    h.replace_trackers({});
  for (auto& p : o.peers)
    h.connect_peer(parse_endpoint(p));
  bool finished = false;
  while (!stop_requested) {
    ses->wait_for_alert(std::chrono::milliseconds(100));
    if (!drain_alerts(*ses, &finished, nullptr))
      return 1;
    if (finished || h.status().is_seeding) {
      std::printf("complete: %lld bytes in %.2fs\n", static_cast<long long>(ti->total_size()),
                  elapsed());
      std::fflush(stdout);
      return 0;
    }
    if (o.timeout > 0 && elapsed() > o.timeout) {
      say("timeout at %s %%", std::to_string(h.status().progress * 100));
      return 3;
    }
  }
  return 130;
}

int seed(const options& o, std::shared_ptr<lt::torrent_info> ti) {
  std::vector<std::unique_ptr<lt::session>> sessions;
  std::vector<lt::torrent_handle> handles;
  auto add = [&](lt::add_torrent_params atp) {
    int port = o.port == 0 ? 0 : o.port + static_cast<int>(sessions.size());
    sessions.push_back(make_session(port, o.upload_limit));
    lt::error_code ec;
    auto h = sessions.back()->add_torrent(std::move(atp), ec);
    if (ec) {
      say("cannot add torrent: %s", ec.message());
      std::exit(1);
    }
    if (o.no_tracker)
      h.replace_trackers({});
    handles.push_back(h);
  };
  // Session 0 hashes every piece (a full check, not seed mode).
  add(base_params(o, ti));
  std::vector<lt::add_torrent_params> resume;
  bool asked = false;
  while (!stop_requested && resume.empty()) {
    sessions[0]->wait_for_alert(std::chrono::milliseconds(100));
    if (!drain_alerts(*sessions[0], nullptr, &resume))
      return 1;
    auto st = handles[0].status();
    if (!asked && st.state == lt::torrent_status::downloading && !st.is_seeding) {
      say("error: the data in %s is incomplete or differs from the torrent", o.dir);
      return 1;
    }
    if (!asked && st.is_seeding) {
      handles[0].save_resume_data(lt::torrent_handle::save_info_dict);
      asked = true;
    }
  }
  say("checked %s", std::to_string(ti->total_size()) + " bytes");
  for (int i = 1; i < o.sessions && !stop_requested; ++i) {
    auto atp = resume.front();
    atp.flags &= ~(lt::torrent_flags::auto_managed | lt::torrent_flags::paused);
    if (o.no_tracker)
      atp.trackers.clear();
    add(std::move(atp));
  }
  for (bool all = false; !all && !stop_requested;) {
    all = true;
    for (std::size_t i = 0; i < sessions.size(); ++i) {
      if (!drain_alerts(*sessions[i], nullptr, nullptr))
        return 1;
      if (!handles[i].status().is_seeding)
        all = false;
    }
    if (!all)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::string ports;
  for (auto& s : sessions)
    ports += " " + std::to_string(s->listen_port());
  std::printf("READY%s\n", ports.c_str());
  std::fflush(stdout);
  while (!stop_requested) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (upload_report_requested) {
      upload_report_requested = 0;
      std::string line = "UPLOADED";
      for (auto& h : handles)
        line += " " + std::to_string(h.status().total_payload_upload);
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
    for (auto& s : sessions)
      if (!drain_alerts(*s, nullptr, nullptr))
        return 1;
    if (!o.dial_file.empty()) {
      std::ifstream in(o.dial_file);
      if (in) {
        for (std::string line; in >> line;)
          for (auto& h : handles)
            h.connect_peer(parse_endpoint(line));
        std::remove(o.dial_file.c_str());
      }
    }
  }
  long long up = 0;
  for (auto& h : handles)
    up += h.status().total_payload_upload;
  say("stopping: uploaded %s payload bytes", std::to_string(up));
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  auto o = parse(argc, argv);
  std::signal(SIGINT, [](int) { stop_requested = 1; });
  std::signal(SIGTERM, [](int) { stop_requested = 1; });
  std::signal(SIGUSR1, [](int) { upload_report_requested = 1; });
  lt::error_code ec;
  auto ti = std::make_shared<lt::torrent_info>(o.torrent, ec);
  if (ec) {
    say("bad torrent: %s", ec.message());
    return 2;
  }
  try {
    return o.mode == "download" ? download(o, ti) : seed(o, ti);
  } catch (const std::exception& e) {
    say("error: %s", e.what());
    return 2;
  }
}
