#include "storage/torrent_creator.hpp"

#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "protocol/bencode.hpp"
#include "protocol/metainfo.hpp"
#include "storage/atomic_file.hpp"

using namespace actorrent;
namespace fs = std::filesystem;

namespace {

// Reference digest straight from OpenSSL, independent of protocol/sha1.
std::string openssl_sha1(std::string_view data) {
  unsigned char d[SHA_DIGEST_LENGTH];
  ::SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d);
  return std::string(reinterpret_cast<const char*>(d), sizeof d);
}

// Piece hashes of `data` cut into pieces of `piece_length`, computed without actorrent code.
std::string reference_pieces(const std::string& data, std::uint32_t piece_length) {
  std::string out;
  for (std::size_t off = 0; off < data.size(); off += piece_length)
    out += openssl_sha1(std::string_view(data).substr(off, piece_length));
  return out;
}

// Deterministic, non-repeating content so that a piece read from the wrong offset or file
// cannot hash the same.
std::string content(std::size_t size, std::uint32_t seed) {
  std::string s(size, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x & 0xff);
  }
  return s;
}

std::string pieces_of(const metainfo& m) {
  std::string out;
  for (const auto& h : m.piece_hashes)
    out.append(reinterpret_cast<const char*>(h.data()), h.size());
  return out;
}

std::string joined(const file_entry& f) {
  std::string p;
  for (const auto& c : f.path)
    p += (p.empty() ? "" : "/") + c;
  return p;
}

class torrent_creator_test : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/actorrent_create_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  void write(const std::string& rel, const std::string& data) {
    fs::path p = fs::path(tmp_) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream f(p, std::ios::binary);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    ASSERT_TRUE(f.good()) << p;
  }

  // A directory with nested folders, a hidden file, 0-byte files (one at the very front of the
  // order, one in the middle, one last), files spanning pieces and a name that sorts differently
  // per component than as a joined path ("a-b" < "a/..." bytewise since '-' < '/').
  // Returns the expected (path, content) in torrent order.
  std::vector<std::pair<std::string, std::string>> make_tree(const std::string& dir) {
    std::vector<std::pair<std::string, std::string>> files = {
        {"a/b/deep.bin", content(40000, 1)},
        {"a/empty", ""},
        {"a-b.txt", content(17, 2)},
        {".hidden", content(5000, 3)},
        {"0-empty-first", ""},
        {"z/last.bin", content(16384, 4)},
        {"z/zz-empty", ""},
        {"middle.dat", content(33333, 5)},
    };
    for (const auto& [rel, data] : files)
      write(dir + "/" + rel, data);
    std::sort(files.begin(), files.end());
    return files;
  }

  std::string tmp_;
};

result<metainfo> create_and_parse(const create_options& opt, std::string* bytes_out = nullptr) {
  auto bytes = create_torrent(opt);
  if (!bytes)
    return bytes.error();
  if (bytes_out)
    *bytes_out = *bytes;
  return parse_metainfo(*bytes);
}

} // namespace

TEST(auto_piece_length, powers_of_two_aiming_at_1000_to_2000_pieces) {
  EXPECT_EQ(auto_piece_length(0), 16u << 10);
  EXPECT_EQ(auto_piece_length(1), 16u << 10);
  EXPECT_EQ(auto_piece_length(1u << 20), 16u << 10);
  EXPECT_EQ(auto_piece_length(2000ull * (16u << 10)), 16u << 10);
  EXPECT_EQ(auto_piece_length(2000ull * (16u << 10) + 1), 32u << 10);
  EXPECT_EQ(auto_piece_length(100ull << 20), 64u << 10);   // 1600 pieces
  EXPECT_EQ(auto_piece_length(700ull << 20), 512u << 10);  // 1400 pieces
  EXPECT_EQ(auto_piece_length(1ull << 30), 1u << 20);      // 1024 pieces
  EXPECT_EQ(auto_piece_length(4ull << 30), 4u << 20);      // 1024 pieces
  EXPECT_EQ(auto_piece_length(32ull << 30), 16u << 20);    // 2048: the cap
  EXPECT_EQ(auto_piece_length(1ull << 40), 16u << 20);     // capped: 65536 pieces
  for (std::uint64_t size = 1; size < (1ull << 42); size = size * 3 + 7) {
    auto p = auto_piece_length(size);
    ASSERT_EQ(p & (p - 1), 0u) << size;
    ASSERT_GE(p, 16u << 10) << size;
    ASSERT_LE(p, 16u << 20) << size;
    auto pieces = (size + p - 1) / p;
    if (p > (16u << 10) && p < (16u << 20)) {
      EXPECT_GT(pieces, 1000u) << size;
      EXPECT_LE(pieces, 2000u) << size;
    }
  }
}

TEST_F(torrent_creator_test, single_file_exact_bytes_and_short_last_piece) {
  const std::string data = content(20000, 7); // 16384 + a short last piece of 3616
  write("a.bin", data);
  create_options opt;
  opt.path = tmp_ + "/a.bin";
  opt.piece_length = 16384;
  auto bytes = create_torrent(opt);
  ASSERT_TRUE(bytes.ok()) << bytes.error().message;
  // The whole file, byte for byte: key order, no creation date, no announce without trackers.
  const std::string pieces = reference_pieces(data, 16384);
  ASSERT_EQ(pieces.size(), 40u);
  const std::string expected = "d10:created by13:actorrent 0.14:infod6:lengthi20000e4:name5:a.bin"
                               "12:piece lengthi16384e6:pieces40:" +
                               pieces + "ee";
  EXPECT_EQ(*bytes, expected);

  auto m = parse_metainfo(*bytes);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_FALSE(m->multi_file);
  EXPECT_EQ(m->name, "a.bin");
  EXPECT_EQ(m->total_size, 20000u);
  EXPECT_EQ(m->piece_size(piece_index{1}), 3616u);
  EXPECT_EQ(pieces_of(*m), pieces);
  const auto info_span = std::string(*bytes).substr(bytes->find("4:info") + 6);
  EXPECT_EQ(openssl_sha1(info_span.substr(0, info_span.size() - 1)),
            std::string(reinterpret_cast<const char*>(m->hash.data()), 20));
}

TEST_F(torrent_creator_test, multi_file_sorted_with_empty_files_hashed_over_concatenation) {
  auto files = make_tree("tree");
  create_options opt;
  opt.path = tmp_ + "/tree";
  opt.piece_length = 16384;
  auto m = create_and_parse(opt);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_TRUE(m->multi_file);
  EXPECT_EQ(m->name, "tree");
  ASSERT_EQ(m->files.size(), files.size());
  std::string all;
  for (std::size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(joined(m->files[i]), files[i].first) << i;
    EXPECT_EQ(m->files[i].length, files[i].second.size()) << i;
    all += files[i].second;
  }
  // Spot checks of the order the rule implies (not just "whatever std::sort did here").
  EXPECT_EQ(joined(m->files.front()), ".hidden");
  EXPECT_EQ(joined(m->files[1]), "0-empty-first");
  EXPECT_EQ(joined(m->files[2]), "a-b.txt");
  EXPECT_EQ(joined(m->files[3]), "a/b/deep.bin");
  EXPECT_EQ(joined(m->files.back()), "z/zz-empty");
  EXPECT_EQ(m->total_size, all.size());
  ASSERT_NE(all.size() % 16384, 0u);
  EXPECT_EQ(m->piece_count(), (all.size() + 16383) / 16384);
  EXPECT_EQ(pieces_of(*m), reference_pieces(all, 16384));
}

TEST_F(torrent_creator_test, name_is_the_real_directory_name_for_dot_paths_and_trailing_slash) {
  make_tree("realname");
  for (auto suffix : {"/", "/.", "/a/..", "//"}) {
    create_options opt;
    opt.path = tmp_ + "/realname" + suffix;
    opt.piece_length = 16384;
    auto m = create_and_parse(opt);
    ASSERT_TRUE(m.ok()) << suffix << ": " << m.error().message;
    EXPECT_EQ(m->name, "realname") << suffix;
  }
}

TEST_F(torrent_creator_test, deterministic_and_independent_of_thread_count) {
  make_tree("det");
  write("det/big.bin", content(300001, 9)); // ~20 pieces: every thread gets work
  std::vector<std::string> outputs;
  for (unsigned threads : {1u, 1u, 2u, 3u, 4u, 0u}) {
    create_options opt;
    opt.path = tmp_ + "/det";
    opt.piece_length = 16384;
    opt.threads = threads;
    auto bytes = create_torrent(opt);
    ASSERT_TRUE(bytes.ok()) << bytes.error().message;
    outputs.push_back(*bytes);
  }
  for (std::size_t i = 1; i < outputs.size(); ++i)
    EXPECT_EQ(outputs[i], outputs[0]) << "run " << i;
  EXPECT_EQ(outputs[0].find("creation date"), std::string::npos);
}

TEST_F(torrent_creator_test, progress_reaches_total) {
  write("p.bin", content(100000, 11));
  std::mutex mu;
  std::uint64_t max_seen = 0, last_total = 0, calls = 0;
  create_options opt;
  opt.path = tmp_ + "/p.bin";
  opt.piece_length = 16384;
  opt.threads = 3;
  opt.progress = [&](std::uint64_t hashed, std::uint64_t total) {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_LE(hashed, total);
    max_seen = std::max(max_seen, hashed);
    last_total = total;
    ++calls;
  };
  ASSERT_TRUE(create_torrent(opt).ok());
  EXPECT_EQ(max_seen, 100000u);
  EXPECT_EQ(last_total, 100000u);
  EXPECT_GE(calls, 7u); // one per piece at least
}

TEST_F(torrent_creator_test, symbolic_links_are_refused_not_followed) {
  make_tree("withlink");
  write("outside.bin", content(100, 12));
  ASSERT_EQ(::symlink((tmp_ + "/outside.bin").c_str(), (tmp_ + "/withlink/a/link.bin").c_str()), 0);
  create_options opt;
  opt.path = tmp_ + "/withlink";
  auto r = create_torrent(opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_NE(r.error().message.find("withlink/a/link.bin"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("symbolic link"), std::string::npos) << r.error().message;

  // A link to a directory, and the given path itself being a link (with a trailing slash too).
  ASSERT_EQ(::unlink((tmp_ + "/withlink/a/link.bin").c_str()), 0);
  ASSERT_TRUE(create_torrent(opt).ok());
  ASSERT_EQ(::symlink(tmp_.c_str(), (tmp_ + "/withlink/z/dirlink").c_str()), 0);
  r = create_torrent(opt);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("withlink/z/dirlink"), std::string::npos) << r.error().message;
  ASSERT_EQ(::unlink((tmp_ + "/withlink/z/dirlink").c_str()), 0);

  ASSERT_EQ(::symlink((tmp_ + "/withlink").c_str(), (tmp_ + "/toplink").c_str()), 0);
  for (auto p : {"/toplink", "/toplink/"}) {
    opt.path = tmp_ + p;
    r = create_torrent(opt);
    ASSERT_FALSE(r.ok()) << p;
    EXPECT_EQ(r.error().code, errc::invalid_argument) << p;
    EXPECT_NE(r.error().message.find("symbolic link"), std::string::npos) << r.error().message;
  }
}

TEST_F(torrent_creator_test, fifos_and_sockets_are_refused) {
  make_tree("special");
  ASSERT_EQ(::mkfifo((tmp_ + "/special/a/fifo").c_str(), 0600), 0);
  create_options opt;
  opt.path = tmp_ + "/special";
  auto r = create_torrent(opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_NE(r.error().message.find("special/a/fifo"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("FIFO"), std::string::npos) << r.error().message;

  opt.path = tmp_ + "/special/a/fifo"; // must not block waiting for a writer
  r = create_torrent(opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  ASSERT_EQ(::unlink((tmp_ + "/special/a/fifo").c_str()), 0);

  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = tmp_ + "/special/sock";
  ASSERT_LT(sock_path.size(), sizeof addr.sun_path);
  std::copy(sock_path.begin(), sock_path.end(), addr.sun_path);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  opt.path = tmp_ + "/special";
  r = create_torrent(opt);
  ::close(s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("special/sock"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("socket"), std::string::npos) << r.error().message;
}

TEST_F(torrent_creator_test, empty_inputs_and_missing_paths_are_refused) {
  fs::create_directories(tmp_ + "/empty/sub/subsub");
  create_options opt;
  opt.path = tmp_ + "/empty";
  auto r = create_torrent(opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_NE(r.error().message.find("no files"), std::string::npos) << r.error().message;

  write("zeros/a", "");
  write("zeros/b/c", "");
  opt.path = tmp_ + "/zeros";
  r = create_torrent(opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::invalid_argument);

  opt.path = tmp_ + "/zeros/a";
  r = create_torrent(opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::invalid_argument);

  opt.path = tmp_ + "/missing";
  r = create_torrent(opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_NE(r.error().message.find("missing"), std::string::npos) << r.error().message;

  opt.path = "";
  EXPECT_FALSE(create_torrent(opt).ok());
}

TEST_F(torrent_creator_test, names_the_downloader_would_refuse_are_refused) {
  write("bs/ok.bin", content(10, 1));
  write("bs/back\\slash.bin", content(10, 2));
  create_options opt;
  opt.path = tmp_ + "/bs";
  auto r = create_torrent(opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::unsafe_path);
  EXPECT_NE(r.error().message.find("back\\slash.bin"), std::string::npos) << r.error().message;
}

TEST_F(torrent_creator_test, private_flag_is_in_the_info_dictionary) {
  write("priv.bin", content(5000, 13));
  create_options opt;
  opt.path = tmp_ + "/priv.bin";
  auto pub = create_and_parse(opt);
  opt.is_private = true;
  std::string bytes;
  auto priv = create_and_parse(opt, &bytes);
  ASSERT_TRUE(pub.ok() && priv.ok());
  EXPECT_FALSE(pub->is_private);
  EXPECT_TRUE(priv->is_private);
  EXPECT_NE(bytes.find("7:privatei1e"), std::string::npos);
  EXPECT_NE(pub->hash, priv->hash); // the flag is part of the info-hash
}

TEST_F(torrent_creator_test, tiers_give_announce_and_announce_list) {
  write("t.bin", content(5000, 14));
  create_options opt;
  opt.path = tmp_ + "/t.bin";
  opt.comment = "hello";

  opt.trackers = {{"http://a/announce"}};
  std::string bytes;
  auto one = create_and_parse(opt, &bytes);
  ASSERT_TRUE(one.ok()) << one.error().message;
  EXPECT_EQ(one->announce, "http://a/announce");
  EXPECT_TRUE(one->announce_list.empty());
  EXPECT_EQ(bytes.find("announce-list"), std::string::npos);
  EXPECT_EQ(one->comment, "hello");
  EXPECT_EQ(one->created_by, "actorrent 0.1");

  opt.trackers = {{"http://a/announce", "udp://b:80"}, {"http://c/announce"}};
  auto many = create_and_parse(opt);
  ASSERT_TRUE(many.ok()) << many.error().message;
  EXPECT_EQ(many->announce, "http://a/announce");
  EXPECT_EQ(many->announce_list, opt.trackers);
  EXPECT_EQ(many->hash, one->hash); // trackers are outside the info dictionary

  opt.trackers = {};
  auto none = create_and_parse(opt, &bytes);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(bytes.find("announce"), std::string::npos);

  opt.trackers = {{"http://a/announce", ""}};
  auto bad = create_torrent(opt);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, errc::invalid_argument);
}

TEST_F(torrent_creator_test, bad_piece_sizes_are_refused) {
  write("ps.bin", content(5000, 15));
  create_options opt;
  opt.path = tmp_ + "/ps.bin";
  for (std::uint32_t bad : {1u, 1000u, 8192u, 16383u, 16385u, 49152u, 512u << 20, 0x80000000u}) {
    opt.piece_length = bad;
    auto r = create_torrent(opt);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, errc::invalid_argument) << bad;
    EXPECT_NE(r.error().message.find("piece size"), std::string::npos) << r.error().message;
  }
  for (std::uint32_t good : {16384u, 32768u, 1u << 20, 256u << 20}) {
    opt.piece_length = good;
    auto m = create_and_parse(opt);
    ASSERT_TRUE(m.ok()) << good << ": " << m.error().message;
    EXPECT_EQ(m->piece_length, good);
  }
}

TEST_F(torrent_creator_test, automatic_piece_length_is_used_when_zero) {
  write("auto.bin", content(3u << 20, 16)); // 3 MiB: 16 KiB pieces (192 of them)
  create_options opt;
  opt.path = tmp_ + "/auto.bin";
  auto m = create_and_parse(opt);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->piece_length, auto_piece_length(3u << 20));
  EXPECT_EQ(m->piece_count(), 192u);
}

TEST_F(torrent_creator_test, unreadable_file_is_an_io_error) {
  if (::geteuid() == 0)
    GTEST_SKIP() << "root reads files whatever their mode";
  write("locked/a.bin", content(100, 17));
  ASSERT_EQ(::chmod((tmp_ + "/locked/a.bin").c_str(), 0), 0);
  create_options opt;
  opt.path = tmp_ + "/locked";
  auto r = create_torrent(opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::io_error);
  EXPECT_NE(r.error().message.find("locked/a.bin"), std::string::npos) << r.error().message;
}

TEST_F(torrent_creator_test, a_file_changing_size_while_hashed_is_an_io_error) {
  // One thread: the progress callback after piece 0 runs before the next file is opened (multi)
  // or the next piece is read (single); it truncates the data behind the hasher's back.
  write("grow/a.bin", content(40000, 18));
  write("grow/b.bin", content(40000, 19));
  write("shrink.bin", content(40000, 20));
  for (auto [path, victim] : {std::pair<const char*, const char*>{"/grow", "/grow/b.bin"},
                              {"/shrink.bin", "/shrink.bin"}}) {
    create_options opt;
    opt.path = tmp_ + path;
    opt.piece_length = 16384;
    opt.threads = 1;
    const std::string victim_path = tmp_ + victim;
    bool done = false;
    opt.progress = [&](std::uint64_t, std::uint64_t) {
      if (!done) {
        ASSERT_EQ(::truncate(victim_path.c_str(), 10), 0);
      }
      done = true;
    };
    auto r = create_torrent(opt);
    ASSERT_TRUE(done);
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_EQ(r.error().code, errc::io_error) << path;
    EXPECT_NE(r.error().message.find(victim), std::string::npos) << r.error().message;
  }
}

TEST_F(torrent_creator_test, write_file_atomically_replaces_and_leaves_no_temporary) {
  const std::string path = tmp_ + "/out.torrent";
  ASSERT_TRUE(write_file_atomically(path, "first").ok());
  ASSERT_TRUE(write_file_atomically(path, std::string("sec\0ond", 7)).ok());
  std::ifstream f(path, std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, std::string("sec\0ond", 7));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(tmp_))
    names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"out.torrent"});

  // A symbolic link at the destination is replaced, its target untouched.
  write("target", "keep");
  ASSERT_EQ(::symlink((tmp_ + "/target").c_str(), (tmp_ + "/link").c_str()), 0);
  ASSERT_TRUE(write_file_atomically(tmp_ + "/link", "new").ok());
  EXPECT_FALSE(fs::is_symlink(tmp_ + "/link"));
  std::ifstream t(tmp_ + "/target", std::ios::binary);
  std::string target((std::istreambuf_iterator<char>(t)), std::istreambuf_iterator<char>());
  EXPECT_EQ(target, "keep");

  auto missing = write_file_atomically(tmp_ + "/no/such/dir/x.torrent", "x");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, errc::io_error);
  EXPECT_NE(missing.error().message.find("no/such/dir"), std::string::npos);
  EXPECT_FALSE(write_file_atomically(tmp_ + "/", "x").ok());
  EXPECT_FALSE(write_file_atomically("", "x").ok());
}
