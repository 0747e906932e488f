// Batch job files: every kind of bad file is refused with FILE:LINE:COLUMN (text format) or the
// JSON path; a torrent that does not parse or a magnet link fails only its job; the examples
// in deploy/examples/ parse.
#include "config/batch_job.hpp"
#include "storage/file_selection.hpp"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace actorrent {
namespace {

namespace fs = std::filesystem;

/// A bencoded torrent of `files` (multi-file when there is more than one, or `multi`), piece
/// length 16 KiB, zero piece hashes.
std::string torrent_bytes(const std::string& name,
                          const std::vector<std::pair<std::string, std::uint64_t>>& files,
                          bool multi = false) {
  auto str = [](const std::string& s) { return std::to_string(s.size()) + ":" + s; };
  std::uint64_t total = 0;
  for (auto& f : files)
    total += f.second;
  std::string info = "d";
  if (files.size() > 1 || multi) {
    info += "5:filesl";
    for (auto& f : files) {
      info += "d6:lengthi" + std::to_string(f.second) + "e4:pathl";
      std::stringstream parts(f.first);
      std::string part;
      while (std::getline(parts, part, '/'))
        info += str(part);
      info += "ee";
    }
    info += "e";
  } else {
    info += "6:lengthi" + std::to_string(total) + "e";
  }
  const std::uint64_t pieces = (total + 16383) / 16384;
  info += "4:name" + str(name) + "12:piece lengthi16384e6:pieces" +
          std::to_string(pieces * 20) + ":" + std::string(pieces * 20, '\0') + "e";
  return "d4:info" + info + "e";
}

class batch_job_test : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/actorrent_batch_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/t");
    write("t/a.torrent", torrent_bytes("a.bin", {{"a.bin", 40000}}));
    write("t/b.torrent", torrent_bytes("bee", {{"1.txt", 10}, {"2.iso", 20000}, {"d/3.iso", 5}}));
    write("t/broken.torrent", "d4:infod6:lengthi-5eee");
    fs::create_directory_symlink("/etc", dir_ + "/to_etc"); // a way into a system folder
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(dir_ + "/" + rel).parent_path());
    std::ofstream(dir_ + "/" + rel, std::ios::binary) << text;
  }
  /// Parses `text` as <dir>/jobs.textproto (or .json).
  result<batch_plan> parse(const std::string& text, batch_format fmt = batch_format::text) {
    auto path = dir_ + (fmt == batch_format::text ? "/jobs.textproto" : "/jobs.json");
    write(fs::path(path).filename().string(), text);
    return load_batch(path);
  }
  /// The error of `text`, with the folder taken out ("jobs.textproto:3:5: ...").
  std::string error_of(const std::string& text, batch_format fmt = batch_format::text) {
    auto r = parse(text, fmt);
    if (r)
      return "(parsed)";
    auto msg = r.error().message;
    EXPECT_EQ(r.error().code, errc::invalid_argument);
    for (auto pos = msg.find(dir_ + "/"); pos != std::string::npos; pos = msg.find(dir_ + "/"))
      msg.erase(pos, dir_.size() + 1);
    return msg;
  }
  std::string dir_;
};

const char* good_text = R"(# two jobs
settings {
  max_active: 3
  listen: "127.0.0.1:0"
  download_limit: "20M"
}
job {
  torrent: "t/a.torrent"
  output: "out/a"
}
job {
  name: "second"
  torrent: "t/b.torrent"
  output: "out/b/"
  select_file: "1,3"
  select: "*.iso"
  peer: "127.0.0.1:7001"
  peer: "[::1]:7002"
  download_limit: "5M"
  seed_ratio: 1.5
  priority: 4
  timeout_s: 60
}
)";

TEST_F(batch_job_test, a_good_file_is_resolved_against_its_folder) {
  auto r = parse(good_text);
  ASSERT_TRUE(r) << r.error().message;
  auto& p = *r;
  EXPECT_EQ(p.settings.max_active, 3u);
  EXPECT_EQ(p.settings.download_limit, 20u << 20);
  EXPECT_EQ(p.settings.state_dir, dir_ + "/jobs.state"); // the default
  ASSERT_EQ(p.jobs.size(), 2u);
  auto& a = p.jobs[0];
  EXPECT_EQ(a.name, "a.bin"); // the torrent's name
  EXPECT_EQ(a.torrent, dir_ + "/t/a.torrent");
  EXPECT_EQ(a.output, dir_ + "/out/a");
  EXPECT_TRUE(a.problem.empty()) << a.problem;
  EXPECT_EQ(a.selected_size, 40000u);
  EXPECT_TRUE(a.priorities.empty());
  EXPECT_EQ(a.where, dir_ + "/jobs.textproto:7:1");
  auto& b = p.jobs[1];
  EXPECT_EQ(b.name, "second");
  EXPECT_EQ(b.output, dir_ + "/out/b");
  ASSERT_EQ(b.peers.size(), 2u);
  EXPECT_EQ(b.peers[1].host, "::1");
  EXPECT_EQ(b.peers[1].port, 7002);
  EXPECT_EQ(b.download_limit, 5u << 20);
  EXPECT_DOUBLE_EQ(b.seed_ratio, 1.5);
  EXPECT_EQ(b.timeout_s, 60u);
  // select_file 1,3 or *.iso: files 1, 2 and 3.
  ASSERT_EQ(b.priorities.size(), 3u);
  EXPECT_EQ(b.selected_size, 20015u);
  // Priority 4 starts before priority 0.
  EXPECT_EQ(p.queue_order(), (std::vector<std::size_t>{1, 0}));
}

TEST_F(batch_job_test, every_bad_text_file_names_line_and_column) {
  struct bad_case {
    std::string text;
    std::string error;
  };
  const std::string a = "  torrent: \"t/a.torrent\"\n";
  const std::vector<bad_case> cases = {
    // unknown field
    {"job {\n  torent: \"t/a.torrent\"\n}\n",
     "jobs.textproto:2:9: Message type \"actorrent.config.batch_job\" has no field named "
     "\"torent\"."},
    // wrong type
    {"settings {\n  max_active: \"two\"\n}\n", "jobs.textproto:2:15: Expected integer"},
    {"job {\n" + a + "  output: \"o\"\n  priority: 1.5\n}\n",
     "jobs.textproto:4:13: Expected integer"},
    // syntax
    {"job {\n" + a + "  output: \"o\"\n", "jobs.textproto:4:1: Expected identifier"},
    // malformed values
    {"settings {\n  download_limit: \"20Q\"\n}\njob {\n" + a + "  output: \"o\"\n}\n",
     "jobs.textproto:2:3: download_limit \"20Q\" is not a rate"},
    {"job {\n" + a + "  output: \"o\"\n  upload_limit: \"-1\"\n}\n",
     "jobs.textproto:4:3: upload_limit \"-1\" is not a rate"},
    {"job {\n" + a + "  output: \"o\"\n  select_file: \"1,,3\"\n}\n",
     "jobs.textproto:4:3: select_file \"1,,3\": empty item at column 3"},
    {"job {\n" + a + "  output: \"o\"\n  select: \"*.iso\"\n  select: \"a[b\"\n}\n",
     "jobs.textproto:5:3: select \"a[b\": '[' at column 2 is never closed"},
    {"job {\n" + a + "  output: \"o\"\n  peer: \"127.0.0.1\"\n}\n",
     "jobs.textproto:4:3: peer \"127.0.0.1\" is not HOST:PORT"},
    {"settings {\n  listen: \"x:99999\"\n}\njob {\n" + a + "  output: \"o\"\n}\n",
     "jobs.textproto:2:3: listen \"x:99999\" is not HOST:PORT"},
    {"job {\n" + a + "  output: \"o\"\n  seed_ratio: -1\n}\n",
     "jobs.textproto:4:3: seed_ratio must be a number >= 0"},
    {"job {\n" + a + "  output: \"o\"\n  magnet: \"magnet:?xt=x\"\n}\n",
     "jobs.textproto:1:1: job 1 has both torrent and magnet"},
    {"job {\n  name: \"m\"\n  magnet: \"http://x\"\n  output: \"o\"\n}\n",
     "jobs.textproto:3:3: magnet \"http://x\" is not a magnet link"},
    {"job {\n  output: \"o\"\n}\n", "jobs.textproto:1:1: job 1 has no torrent (or magnet)"},
    {"job {\n" + a + "}\n", "jobs.textproto:1:1: job 1 has no output"},
    // no way to find peers: no peer, no tracker, and no DHT (off, or on loopback without
    // dht_bootstrap)
    {"settings {\n  listen: \"127.0.0.1:0\"\n}\njob {\n" + a +
       "  output: \"o\"\n  no_tracker: true\n}\n",
     "jobs.textproto:7:3: no_tracker needs at least one peer (or the DHT"},
    {"settings {\n  no_dht: true\n}\njob {\n" + a + "  output: \"o\"\n  no_tracker: true\n}\n",
     "jobs.textproto:7:3: no_tracker needs at least one peer"},
    {"settings {\n  dht_bootstrap: \"node\"\n}\njob {\n" + a + "  output: \"o\"\n}\n",
     "jobs.textproto:2:3: dht_bootstrap \"node\" is not HOST:PORT"},
    // missing torrent file
    {"job {\n  torrent: \"t/missing.torrent\"\n  output: \"o\"\n}\n",
     "jobs.textproto:2:3: torrent file t/missing.torrent does not exist"},
    // duplicates
    {"job {\n" + a + "  output: \"o1\"\n}\njob {\n  name: \"a.bin\"\n"
     "  torrent: \"t/b.torrent\"\n  output: \"o2\"\n}\n",
     "jobs.textproto:6:3: duplicate job name \"a.bin\" (also jobs.textproto:1:1)"},
    {"job {\n" + a + "  output: \"o\"\n}\njob {\n  torrent: \"t/b.torrent\"\n"
     "  output: \"./o\"\n}\n",
     "jobs.textproto:7:3: output \"./o\" is also job \"a.bin\"'s output (jobs.textproto:1:1)"},
    {"job {\n" + a + "  output: \"o1\"\n}\njob {\n  torrent: \"t/a.torrent\"\n  name: \"x\"\n"
     "  output: \"o2\"\n}\n",
     "jobs.textproto:6:3: the same torrent as job \"a.bin\" (jobs.textproto:1:1)"},
    // nested outputs, both ways
    {"job {\n" + a + "  output: \"out\"\n}\njob {\n  torrent: \"t/b.torrent\"\n"
     "  output: \"out/b\"\n}\n",
     "jobs.textproto:7:3: output \"out/b\" is inside job \"a.bin\"'s output out"},
    {"job {\n" + a + "  output: \"out/a\"\n}\njob {\n  torrent: \"t/b.torrent\"\n"
     "  output: \"out\"\n}\n",
     "jobs.textproto:7:3: output \"out\" is around job \"a.bin\"'s output out/a"},
    // unsafe paths
    {"job {\n" + a + "  output: \"../elsewhere\"\n}\n",
     "jobs.textproto:3:3: output \"../elsewhere\" contains \"..\""},
    {"job {\n" + a + "  output: \"o/\\x01\"\n}\n",
     "jobs.textproto:3:3: output \"o/\x01\" contains a control character"},
    {"settings {\n  state_dir: \"a/../../s\"\n}\njob {\n" + a + "  output: \"o\"\n}\n",
     "jobs.textproto:2:3: state_dir \"a/../../s\" contains \"..\""},
    {"settings {\n  state_dir: \"o/state\"\n}\njob {\n" + a + "  output: \"o\"\n}\n",
     "jobs.textproto:6:3: output \"o\" overlaps the state_dir"},
    // the root, system folders and the home folder itself (a symbolic link does not hide them)
    {"job {\n" + a + "  output: \"/\"\n}\n",
     "jobs.textproto:3:3: output \"/\" is the root of the file system"},
    {"job {\n" + a + "  output: \"/etc\"\n}\n",
     "jobs.textproto:3:3: output \"/etc\" is in /etc, a system folder"},
    {"job {\n" + a + "  output: \"/usr/local/share/x\"\n}\n",
     "jobs.textproto:3:3: output \"/usr/local/share/x\" is in /usr, a system folder"},
    {"job {\n" + a + "  output: \"to_etc/x\"\n}\n",
     "jobs.textproto:3:3: output \"to_etc/x\" is in /etc, a system folder"},
    {"settings {\n  state_dir: \"/boot/s\"\n}\njob {\n" + a + "  output: \"o\"\n}\n",
     "jobs.textproto:2:3: state_dir \"/boot/s\" is in /boot, a system folder"},
    {"job {\n" + a + "  output: \"/dev/shm\"\n}\n",
     "jobs.textproto:3:3: output \"/dev/shm\" is in /dev, a system folder"},
    // a malformed magnet link, with its position
    {"job {\n  name: \"m\"\n  magnet: \"magnet:?xt=urn:btih:00\"\n  output: \"o\"\n}\n",
     "jobs.textproto:3:3: magnet link: "},
    // a job needing a name
    {"job {\n  magnet: \"magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567\"\n"
     "  output: \"o\"\n}\n",
     "jobs.textproto:1:1: job 1 needs a name"},
    // no job at all
    {"settings {\n  max_active: 1\n}\n", "jobs.textproto: no job"},
  };
  for (auto& c : cases) {
    auto got = error_of(c.text);
    EXPECT_EQ(got.rfind(c.error, 0), 0u) << "file:\n" << c.text << "error:    " << got
                                         << "\nexpected: " << c.error << "...";
  }
}

TEST_F(batch_job_test, a_broken_torrent_or_a_selection_on_a_magnet_fails_only_its_job) {
  auto r = parse("job {\n  torrent: \"t/broken.torrent\"\n  output: \"x\"\n}\n"
                 "job {\n  magnet: "
                 "\"magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=m\"\n"
                 "  output: \"m\"\n  select: \"*.iso\"\n}\n"
                 "job {\n  torrent: \"t/b.torrent\"\n  output: \"b\"\n  select_file: \"4\"\n}\n"
                 "job {\n  torrent: \"t/a.torrent\"\n  output: \"a\"\n}\n");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->jobs.size(), 4u);
  EXPECT_EQ(r->jobs[0].name, "broken"); // no torrent name: the file's
  EXPECT_NE(r->jobs[0].problem.find("broken.torrent"), std::string::npos) << r->jobs[0].problem;
  EXPECT_EQ(r->jobs[1].name, "m"); // the link's dn
  EXPECT_NE(r->jobs[1].problem.find("a file selection needs the torrent's metadata"),
            std::string::npos)
    << r->jobs[1].problem;
  EXPECT_NE(r->jobs[2].problem.find("file number 4 at column 1 is out of range"),
            std::string::npos)
    << r->jobs[2].problem;
  EXPECT_TRUE(r->jobs[3].problem.empty());
}

TEST_F(batch_job_test, json_errors_name_the_json_path) {
  const std::vector<std::pair<std::string, std::string>> cases = {
    {R"({"job": [{"torrent": "t/a.torrent", "output": "o"}, {"bogus": 1}]})",
     "jobs.json: job[1].bogus: unknown field"},
    {R"({"settings": {"max_active": "two"}, "job": []})",
     "jobs.json: settings.max_active: invalid value \"two\" for type TYPE_UINT32"},
    {R"({"job": [{"torrent": "t/a.torrent", "output": "o", "peer": [7]}]})",
     "jobs.json: job[0].peer[0]: invalid value 7 for type TYPE_STRING"},
    {R"({"job": [{"torrent": "t/a.torrent", "output": "o", "peer": ["x:1", "nope"]}]})",
     "jobs.json: job[0].peer[1]: peer \"nope\" is not HOST:PORT"},
    {R"({"job": [{"torrent": "t/a.torrent", "output": "o"},
                 {"torrent": "t/b.torrent", "output": "o/b"}]})",
     "jobs.json: job[1].output: output \"o/b\" is inside job \"a.bin\"'s output"},
    {R"({"settings": {"downloadLimit": "1,,3"}, "job": []})",
     "jobs.json: settings.download_limit: download_limit \"1,,3\" is not a rate"},
    {R"({"job": [{"torrent": "t/a.torrent", "output": "o", "select_file": "1,,3"}]})",
     "jobs.json: job[0].select_file: select_file \"1,,3\": empty item at column 3"},
    {R"({"job": [{"torrent": "t/missing.torrent", "output": "o"}]})",
     "jobs.json: job[0].torrent: torrent file t/missing.torrent does not exist"},
    {R"({"job": [)", "jobs.json: JSON: "},
  };
  for (auto& c : cases) {
    auto got = error_of(c.first, batch_format::json);
    EXPECT_EQ(got.rfind(c.second, 0), 0u) << "file: " << c.first << "\nerror:    " << got
                                          << "\nexpected: " << c.second << "...";
  }
}

TEST_F(batch_job_test, json_and_text_give_the_same_plan) {
  // Every field set, in both formats (JSON with some camelCase keys, as proto3 JSON allows).
  auto text = parse(R"(settings {
  max_active: 3
  listen: "127.0.0.1:0"
  state_dir: "st"
  download_limit: "20M"
  upload_limit: "1M"
}
job {
  torrent: "t/a.torrent"
  output: "out/a"
}
job {
  name: "second"
  torrent: "t/b.torrent"
  output: "out/b/"
  select_file: "1,3"
  select: "*.iso"
  select: "d/**"
  peer: "127.0.0.1:7001"
  peer: "[::1]:7002"
  no_tracker: true
  download_limit: "5M"
  upload_limit: "64K"
  seed_ratio: 1.5
  seed_time_s: 30
  priority: 4
  timeout_s: 60
}
job {
  name: "m"
  magnet: "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567"
  output: "out/m"
  priority: -2
}
)");
  auto json = parse(R"({
    "settings": {"maxActive": 3, "listen": "127.0.0.1:0", "state_dir": "st",
                 "download_limit": "20M", "uploadLimit": "1M"},
    "job": [{"torrent": "t/a.torrent", "output": "out/a"},
            {"name": "second", "torrent": "t/b.torrent", "output": "out/b/",
             "selectFile": "1,3", "select": ["*.iso", "d/**"],
             "peer": ["127.0.0.1:7001", "[::1]:7002"], "noTracker": true,
             "download_limit": "5M", "upload_limit": "64K", "seed_ratio": 1.5,
             "seedTimeS": 30, "priority": 4, "timeout_s": 60},
            {"name": "m",
             "magnet": "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567",
             "output": "out/m",
             "priority": -2}]})",
                    batch_format::json);
  ASSERT_TRUE(text) << text.error().message;
  ASSERT_TRUE(json) << json.error().message;
  auto &ts = text->settings, &js = json->settings;
  EXPECT_EQ(js.max_active, ts.max_active);
  EXPECT_EQ(js.listen, ts.listen);
  EXPECT_EQ(js.listen_host, ts.listen_host);
  EXPECT_EQ(js.listen_port, ts.listen_port);
  EXPECT_EQ(ts.listen_host, "127.0.0.1"); // parsed once, kept for the run
  EXPECT_EQ(js.state_dir, ts.state_dir);
  EXPECT_EQ(js.download_limit, ts.download_limit);
  EXPECT_EQ(js.upload_limit, ts.upload_limit);
  EXPECT_EQ(ts.upload_limit, 1u << 20); // set, so the comparison means something
  ASSERT_EQ(json->jobs.size(), 3u);
  ASSERT_EQ(text->jobs.size(), 3u);
  for (std::size_t i = 0; i < json->jobs.size(); ++i) {
    SCOPED_TRACE("job " + std::to_string(i));
    auto &t = text->jobs[i], &j = json->jobs[i];
    EXPECT_EQ(j.index, t.index);
    EXPECT_EQ(j.name, t.name);
    EXPECT_EQ(j.torrent, t.torrent);
    EXPECT_EQ(j.magnet, t.magnet);
    EXPECT_EQ(j.output, t.output);
    EXPECT_EQ(j.select_files, t.select_files);
    EXPECT_EQ(j.select_globs, t.select_globs);
    ASSERT_EQ(j.peers.size(), t.peers.size());
    for (std::size_t p = 0; p < j.peers.size(); ++p) {
      EXPECT_EQ(j.peers[p].host, t.peers[p].host);
      EXPECT_EQ(j.peers[p].port, t.peers[p].port);
    }
    EXPECT_EQ(j.download_limit, t.download_limit);
    EXPECT_EQ(j.upload_limit, t.upload_limit);
    EXPECT_EQ(j.seed_ratio, t.seed_ratio);
    EXPECT_EQ(j.seed_time_s, t.seed_time_s);
    EXPECT_EQ(j.priority, t.priority);
    EXPECT_EQ(j.timeout_s, t.timeout_s);
    EXPECT_EQ(j.no_tracker, t.no_tracker);
    EXPECT_EQ(j.priorities, t.priorities);
    EXPECT_EQ(j.selected_size, t.selected_size);
    EXPECT_EQ(j.problem, t.problem);
    ASSERT_EQ(j.meta == nullptr, t.meta == nullptr);
    if (j.meta) {
      EXPECT_EQ(j.meta->hash, t.meta->hash);
    }
  }
  // The fields set above really were read (not both left at their defaults).
  auto& second = text->jobs[1];
  EXPECT_EQ(second.peers[1].host, "::1");
  EXPECT_EQ(second.peers[1].port, 7002);
  EXPECT_TRUE(second.no_tracker);
  EXPECT_EQ(second.upload_limit, 64u << 10);
  EXPECT_EQ(second.seed_time_s, 30u);
  EXPECT_EQ(second.select_globs.size(), 2u);
  EXPECT_EQ(json->queue_order(), text->queue_order());
}

TEST_F(batch_job_test, a_huge_select_file_range_is_checked_without_expanding_it) {
  // Expanded at validation, "1-4294967295" never ended (a 32-bit counter wraps) and grew
  // memory without bound; now only its syntax is checked, and the torrent's file count fails
  // the job alone.
  auto r = parse("job {\n  torrent: \"t/b.torrent\"\n  output: \"o\"\n"
                 "  select_file: \"1-4294967295\"\n}\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_NE(r->jobs[0].problem.find("out of range"), std::string::npos) << r->jobs[0].problem;
  EXPECT_EQ(error_of("job {\n  torrent: \"t/b.torrent\"\n  output: \"o\"\n"
                     "  select_file: \"1-4294967296\"\n}\n")
              .rfind("jobs.textproto:4:3: select_file \"1-4294967296\": file number 4294967296 "
                     "at column 3 is too large", 0),
            0u);
}

TEST_F(batch_job_test, a_seed_ratio_that_may_never_end_is_refused) {
  const std::string job = "job {\n  torrent: \"t/a.torrent\"\n  output: \"o\"\n";
  EXPECT_EQ(error_of(job + "  seed_ratio: 2\n}\n")
              .rfind("jobs.textproto:4:3: seed_ratio without seed_time_s or timeout_s", 0),
            0u);
  EXPECT_TRUE(parse(job + "  seed_ratio: 2\n  timeout_s: 60\n}\n"));
  EXPECT_TRUE(parse(job + "  seed_ratio: 2\n  seed_time_s: 60\n}\n"));
}

TEST_F(batch_job_test, large_files_are_validated_in_bounded_time) {
  // 10001 magnet jobs: refused at the first one over the cap, quickly.
  std::string many;
  for (int i = 0; i <= 10000; ++i)
    many += "job { name: \"m" + std::to_string(i) +
            "\" magnet: \"magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567\" "
            "output: \"o/" + std::to_string(i) + "\" }\n";
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(error_of(many).rfind("jobs.textproto:10001:1: job 10001 is one too many", 0), 0u);
  // 10000 jobs pass, in well under the time a pairwise check of them takes.
  many.erase(many.rfind("job {"));
  auto r = parse(many);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->jobs.size(), 10000u);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(15));
  // Nesting is still found among many (here the last job lies inside the first).
  many.erase(many.rfind("job {"));
  many += "job { name: \"last\" magnet: "
          "\"magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567\" output: \"o/0/x\" }\n";
  EXPECT_EQ(error_of(many).rfind("jobs.textproto:10000:", 0), 0u) << error_of(many);
  EXPECT_NE(error_of(many).find("is inside job \"m0\"'s output"), std::string::npos);
}

TEST_F(batch_job_test, repeated_double_star_globs_match_in_bounded_time) {
  // Each "**" tried every split of the path: 20 of them against a deep path never ended.
  std::string pattern;
  for (int i = 0; i < 20; ++i)
    pattern += "**/";
  pattern += "z";
  std::string path;
  for (int i = 0; i < 40; ++i)
    path += "d/";
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(glob_match(pattern, path + "y"));
  EXPECT_TRUE(glob_match(pattern, path + "z"));
  EXPECT_FALSE(glob_match("**/a/**/b/**/c/**/q", path + "a/b/c/z"));
  EXPECT_TRUE(glob_match("**/a/**/b/**/c/**/z", path + "a/b/c/z"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
}

TEST_F(batch_job_test, outputs_sharing_a_folder_through_a_symbolic_link_are_refused) {
  // out/a -> out/b: two different texts, one folder on disk.
  fs::create_directories(dir_ + "/out/b");
  fs::create_directory_symlink("b", dir_ + "/out/a");
  const std::string a = "job {\n  torrent: \"t/a.torrent\"\n  output: \"out/a\"\n}\n";
  auto got = error_of(a + "job {\n  torrent: \"t/b.torrent\"\n  output: \"out/b\"\n}\n");
  EXPECT_EQ(got.rfind("jobs.textproto:7:3: output \"out/b\" is also job \"a.bin\"'s output", 0),
            0u)
    << got;
  got = error_of(a + "job {\n  torrent: \"t/b.torrent\"\n  output: \"out/b/sub\"\n}\n");
  EXPECT_EQ(got.rfind("jobs.textproto:7:3: output \"out/b/sub\" is inside job \"a.bin\"'s", 0),
            0u)
    << got;
  // The state_dir through a link into an output.
  fs::create_directory_symlink("out/b", dir_ + "/st");
  got = error_of("settings {\n  state_dir: \"st/state\"\n}\n" + a);
  EXPECT_EQ(got.rfind("jobs.textproto:6:3: output \"out/a\" overlaps the state_dir", 0), 0u)
    << got;
}

TEST_F(batch_job_test, columns_count_a_tab_and_a_utf8_character_as_one) {
  // The tokenizer's own column would be 17 (a tab to 8, "é" two bytes): an editor's is 3 / 5.
  EXPECT_EQ(error_of("job {\n\t\ttorrent: \"t/a.torrent\"\n\toutput: \"o\"\n"
                     "\tpeer: \"nope\"\n}\n")
              .rfind("jobs.textproto:4:2: peer \"nope\" is not HOST:PORT", 0),
            0u)
    << error_of("job {\n\ttorrent: \"t/a.torrent\"\n\toutput: \"o\"\n\tpeer: \"nope\"\n}\n");
  EXPECT_EQ(error_of("# \xc3\xa9\njob { name: \"\xc3\xa9\" torent: \"x\" }\n")
              .rfind("jobs.textproto:2:23: ", 0),
            0u)
    << error_of("# \xc3\xa9\njob { name: \"\xc3\xa9\" torent: \"x\" }\n");
  EXPECT_EQ(error_of("\tsettings {\n\t\tmax_active: \"two\"\n\t}\n")
              .rfind("jobs.textproto:2:15: Expected integer", 0),
            0u)
    << error_of("\tsettings {\n\t\tmax_active: \"two\"\n\t}\n");
}

TEST_F(batch_job_test, the_file_type_comes_from_the_extension) {
  EXPECT_TRUE(batch_format_of("a.textproto"));
  EXPECT_TRUE(batch_format_of("a.TXTPB"));
  EXPECT_EQ(*batch_format_of("a.json"), batch_format::json);
  auto r = batch_format_of("jobs.yaml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("unknown job file type \".yaml\""), std::string::npos);
}

TEST_F(batch_job_test, oversized_and_garbage_input_is_refused_without_a_crash) {
  EXPECT_FALSE(parse_batch(std::string(17u << 20, ' '), batch_format::text, dir_ + "/x.txtpb"));
  EXPECT_FALSE(parse_batch("job { job { job {", batch_format::text, dir_ + "/x.txtpb"));
  EXPECT_FALSE(parse_batch("\xff\xfe{", batch_format::json, dir_ + "/x.json"));
}

TEST_F(batch_job_test, the_examples_in_deploy_parse) {
  // The example names three torrents; give it torrents of those names that fit its selections.
  write("torrents/debian.torrent",
        torrent_bytes("debian", {{"1", 1}, {"2", 2}, {"3", 3}, {"4", 4}, {"5", 5}}));
  write("torrents/isos.torrent",
        torrent_bytes("isos", {{"x.iso", 100}, {"docs/readme", 10}, {"other", 7}}));
  write("torrents/photos.torrent", torrent_bytes("photos", {{"p.jpg", 1000}}));
  std::vector<batch_plan> plans;
  for (auto name : {"batch.textproto", "batch.json"}) {
    std::ifstream in(std::string(ACTORRENT_SOURCE_DIR) + "/deploy/examples/" + name);
    ASSERT_TRUE(in) << name;
    std::stringstream text;
    text << in.rdbuf();
    write(name, text.str());
    auto r = load_batch(dir_ + "/" + name);
    ASSERT_TRUE(r) << r.error().message;
    for (auto& j : r->jobs)
      EXPECT_TRUE(j.problem.empty()) << j.name << ": " << j.problem;
    plans.push_back(std::move(*r));
  }
  auto &t = plans[0], &j = plans[1];
  ASSERT_EQ(t.jobs.size(), 3u);
  ASSERT_EQ(j.jobs.size(), 3u);
  EXPECT_EQ(t.jobs[0].selected_size, 1u + 3 + 4 + 5);
  EXPECT_EQ(t.jobs[1].selected_size, 110u);
  EXPECT_EQ(t.jobs[2].name, "photos");
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(t.jobs[i].name, j.jobs[i].name);
    EXPECT_EQ(t.jobs[i].output, j.jobs[i].output);
    EXPECT_EQ(t.jobs[i].selected_size, j.jobs[i].selected_size);
    EXPECT_EQ(t.jobs[i].seed_time_s, j.jobs[i].seed_time_s);
  }
  EXPECT_EQ(t.settings.download_limit, j.settings.download_limit);
  EXPECT_EQ(t.settings.state_dir, dir_ + "/state");
}

TEST_F(batch_job_test, the_dht_settings_and_a_job_that_needs_the_dht) {
  auto r = parse("settings {\n  listen: \"127.0.0.1:0\"\n  dht_bootstrap: \"127.0.0.1:6881\"\n"
                 "  dht_bootstrap: \"[::1]:6882\"\n}\n"
                 "job {\n  torrent: \"t/a.torrent\"\n  output: \"o\"\n  no_tracker: true\n}\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->settings.dht);
  ASSERT_EQ(r->settings.dht_bootstrap.size(), 2u);
  EXPECT_EQ(r->settings.dht_bootstrap[0].host, "127.0.0.1");
  EXPECT_EQ(r->settings.dht_bootstrap[1].host, "::1");
  EXPECT_EQ(r->settings.dht_bootstrap[1].port, 6882);
  auto off = parse("settings {\n  no_dht: true\n}\njob {\n  torrent: \"t/a.torrent\"\n"
                   "  output: \"o\"\n}\n");
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_FALSE(off->settings.dht);
}

TEST_F(batch_job_test, folders_below_shared_memory_and_removable_media_are_outputs) {
  auto r = parse("job {\n  torrent: \"t/a.torrent\"\n  output: \"/dev/shm/a\"\n}\n"
                 "job {\n  torrent: \"t/b.torrent\"\n  output: \"/run/media/u/usb/b\"\n}\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->jobs[0].output, "/dev/shm/a");
}

TEST_F(batch_job_test, the_home_folder_itself_is_no_output_but_a_folder_in_it_is) {
  fs::create_directories(dir_ + "/h");
  const char* old = std::getenv("HOME");
  const std::string saved = old ? old : "";
  ::setenv("HOME", (dir_ + "/h").c_str(), 1);
  auto got = error_of("job {\n  torrent: \"t/a.torrent\"\n  output: \"h\"\n}\n");
  auto fine = parse("job {\n  torrent: \"t/a.torrent\"\n  output: \"h/downloads\"\n}\n");
  if (old)
    ::setenv("HOME", saved.c_str(), 1);
  else
    ::unsetenv("HOME");
  EXPECT_EQ(got.rfind("jobs.textproto:3:3: output \"h\" is the home folder itself", 0), 0u) << got;
  EXPECT_TRUE(fine) << fine.error().message;
}

} // namespace
} // namespace actorrent
