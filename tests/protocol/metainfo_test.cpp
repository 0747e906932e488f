#include "protocol/metainfo.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "protocol/sha1.hpp"

namespace actorrent {
namespace {

using bencode::value;

std::string fake_hashes(std::size_t count) {
  std::string s;
  for (std::size_t i = 0; i < count * 20; ++i)
    s.push_back(static_cast<char>(i % 251));
  return s;
}

value single_info(std::string name, std::int64_t length, std::int64_t piece_length,
                  std::size_t pieces) {
  value info = value::make_dict();
  info.set("name", value::make_string(std::move(name)));
  info.set("length", value::make_int(length));
  info.set("piece length", value::make_int(piece_length));
  info.set("pieces", value::make_string(fake_hashes(pieces)));
  return info;
}

value file(std::vector<std::string> path, std::int64_t length, std::string attr = {}) {
  value f = value::make_dict();
  value p = value::make_list();
  for (auto &c : path)
    p.as_list().push_back(value::make_string(c));
  f.set("path", std::move(p));
  f.set("length", value::make_int(length));
  if (!attr.empty())
    f.set("attr", value::make_string(attr));
  return f;
}

std::string torrent(value info, std::string announce = "http://t.example/announce") {
  value root = value::make_dict();
  root.set("info", std::move(info));
  if (!announce.empty())
    root.set("announce", value::make_string(std::move(announce)));
  return bencode::encode(root);
}

// Byte offset at which the value of `key` starts in an encoded document (first occurrence).
std::size_t value_offset(const std::string &doc, const std::string &key) {
  std::string needle = std::to_string(key.size()) + ":" + key;
  auto pos = doc.find(needle);
  EXPECT_NE(pos, std::string::npos) << key;
  return pos + needle.size();
}

void expect_invalid(const std::string &doc, const std::string &message) {
  auto r = parse_metainfo(doc);
  ASSERT_FALSE(r.ok()) << "accepted, expected: " << message;
  EXPECT_EQ(r.error().code, errc::metainfo_invalid) << r.error().message;
  EXPECT_EQ(r.error().message, message);
}

TEST(metainfo, single_file) {
  value info = single_info("file.bin", 100'000, 32'768, 4);
  std::string info_bytes = bencode::encode(info);
  std::string doc = torrent(info);
  auto r = parse_metainfo(doc);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const metainfo &m = *r;
  EXPECT_EQ(m.name, "file.bin");
  EXPECT_FALSE(m.multi_file);
  EXPECT_EQ(m.piece_length, 32'768u);
  EXPECT_EQ(m.piece_count(), 4u);
  EXPECT_EQ(m.total_size, 100'000u);
  ASSERT_EQ(m.files.size(), 1u);
  EXPECT_EQ(m.files[0].path, std::vector<std::string>{"file.bin"});
  EXPECT_EQ(m.files[0].length, 100'000u);
  EXPECT_FALSE(m.is_private);
  EXPECT_EQ(m.hash, sha1(info_bytes));
  EXPECT_EQ(m.announce, "http://t.example/announce");
  // Piece hashes are the 20-byte slices of "pieces", in order.
  std::string hashes = fake_hashes(4);
  EXPECT_EQ(std::string(m.piece_hashes[3].begin(), m.piece_hashes[3].end()), hashes.substr(60, 20));
}

TEST(metainfo, piece_sizes_with_short_last_piece) {
  auto r = parse_metainfo(torrent(single_info("f", 100'000, 32'768, 4)));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->piece_size(piece_index{0}), 32'768u);
  EXPECT_EQ(r->piece_size(piece_index{2}), 32'768u);
  EXPECT_EQ(r->piece_size(piece_index{3}), 100'000u - 3 * 32'768u);
  EXPECT_EQ(r->piece_size(piece_index{4}), 0u);
  // Exact multiple: the last piece is full.
  auto exact = parse_metainfo(torrent(single_info("f", 65'536, 16'384, 4)));
  ASSERT_TRUE(exact.ok()) << exact.error().message;
  EXPECT_EQ(exact->piece_size(piece_index{3}), 16'384u);
  // Single piece shorter than piece length.
  auto tiny = parse_metainfo(torrent(single_info("f", 10, 16'384, 1)));
  ASSERT_TRUE(tiny.ok()) << tiny.error().message;
  EXPECT_EQ(tiny->piece_size(piece_index{0}), 10u);
}

TEST(metainfo, empty_torrent_has_no_pieces) {
  auto r = parse_metainfo(torrent(single_info("empty", 0, 16'384, 0)));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->piece_count(), 0u);
  EXPECT_EQ(r->total_size, 0u);
}

TEST(metainfo, multi_file_keeps_order_and_pad_files) {
  value info = value::make_dict();
  info.set("name", value::make_string("album"));
  info.set("piece length", value::make_int(16'384));
  value files = value::make_list();
  files.as_list().push_back(file({"z-last-alphabetically.txt"}, 1000));
  files.as_list().push_back(file({".pad", "15384"}, 15'384, "p"));
  files.as_list().push_back(file({"cd1", "01 track.flac"}, 20'000, "x"));
  files.as_list().push_back(file({"..", "raw component"}, 5)); // not sanitised here
  info.set("files", std::move(files));
  info.set("pieces", value::make_string(fake_hashes(3)));
  info.set("private", value::make_int(1));
  auto r = parse_metainfo(torrent(info));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const metainfo &m = *r;
  EXPECT_TRUE(m.multi_file);
  EXPECT_TRUE(m.is_private);
  EXPECT_EQ(m.total_size, 36'389u);
  ASSERT_EQ(m.files.size(), 4u);
  EXPECT_EQ(m.files[0].path, std::vector<std::string>{"z-last-alphabetically.txt"});
  EXPECT_FALSE(m.files[0].pad);
  EXPECT_EQ(m.files[1].path, (std::vector<std::string>{".pad", "15384"}));
  EXPECT_TRUE(m.files[1].pad);
  EXPECT_EQ(m.files[2].path, (std::vector<std::string>{"cd1", "01 track.flac"}));
  EXPECT_FALSE(m.files[2].pad);
  EXPECT_EQ(m.files[2].length, 20'000u);
  EXPECT_EQ(m.files[3].path, (std::vector<std::string>{"..", "raw component"}));
  EXPECT_EQ(m.piece_size(piece_index{2}), 36'389u - 2 * 16'384u);
  EXPECT_EQ(m.content_size(), 36'389u - 15'384u); // the padding file is not content
}

// BEP 52: a v2 torrent has "meta version" 2 and a "file tree"; the v1 keys are only there in a
// hybrid one.
value v2_file_tree() {
  value leaf = value::make_dict();
  leaf.set("length", value::make_int(20'000));
  leaf.set("pieces root", value::make_string(std::string(32, '\x42')));
  value entry = value::make_dict();
  entry.set("", std::move(leaf));
  value tree = value::make_dict();
  tree.set("a.bin", std::move(entry));
  return tree;
}

TEST(metainfo, v2_only_torrent_is_refused_as_such) {
  value info = value::make_dict();
  info.set("name", value::make_string("v2"));
  info.set("piece length", value::make_int(16'384));
  info.set("meta version", value::make_int(2));
  info.set("file tree", v2_file_tree());
  std::string doc = torrent(info);
  expect_invalid(doc, "v2-only torrents (meta version 2) are not supported (byte " +
                        std::to_string(value_offset(doc, "meta version")) + ")");
}

TEST(metainfo, hybrid_torrent_is_read_through_its_v1_keys) {
  value info = value::make_dict();
  info.set("name", value::make_string("hybrid"));
  info.set("piece length", value::make_int(16'384));
  info.set("meta version", value::make_int(2));
  info.set("file tree", v2_file_tree());
  value files = value::make_list();
  files.as_list().push_back(file({"a.bin"}, 20'000));
  files.as_list().push_back(file({".pad", "12768"}, 12'768, "p"));
  files.as_list().push_back(file({"b.bin"}, 100));
  info.set("files", std::move(files));
  info.set("pieces", value::make_string(fake_hashes(3)));
  auto r = parse_metainfo(torrent(info));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->piece_count(), 3u);
  EXPECT_EQ(r->total_size, 32'868u);
  EXPECT_EQ(r->content_size(), 20'100u);
}

TEST(metainfo, name_utf8_overrides_name) {
  value info = single_info("legacy", 1, 16'384, 1);
  info.set("name.utf-8", value::make_string("unicode \xc3\xa9"));
  auto r = parse_metainfo(torrent(info));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->name, "unicode \xc3\xa9");
  EXPECT_EQ(r->files[0].path, std::vector<std::string>{"unicode \xc3\xa9"});
}

TEST(metainfo, info_hash_uses_exact_bytes_despite_unsorted_outer_dict) {
  std::string info_bytes = bencode::encode(single_info("x", 5, 16'384, 1));
  // "info" before "announce" and a leading-zero integer: non-canonical outside info only.
  std::string doc = "d4:info" + info_bytes + "8:announce3:url13:creation datei007ee";
  auto r = parse_metainfo(doc);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->hash, sha1(info_bytes));
  EXPECT_EQ(to_hex(r->hash), to_hex(sha1(info_bytes)));
  EXPECT_EQ(r->announce, "url");
  EXPECT_EQ(r->creation_date, 7);
}

TEST(metainfo, noncanonical_info_dict_is_rejected) {
  // Keys "pieces" and "piece length" swapped.
  std::string pieces = fake_hashes(1);
  std::string info = "d6:lengthi5e4:name1:x6:pieces20:" + pieces + "12:piece lengthi16384ee";
  std::string doc = "d4:info" + info + "e";
  auto r = parse_metainfo(doc);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::metainfo_invalid);
  EXPECT_EQ(r.error().message.rfind("info dictionary is not canonically encoded: ", 0), 0u)
      << r.error().message;
  // The offending key sits at byte 52 of the info dictionary, which starts at byte 7.
  EXPECT_NE(r.error().message.find("at byte 52"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("starts at byte 7"), std::string::npos) << r.error().message;
  // A leading zero inside info is just as ambiguous.
  std::string info2 = "d6:lengthi05e4:name1:x12:piece lengthi16384e6:pieces20:" + pieces + "e";
  auto r2 = parse_metainfo("d4:info" + info2 + "e");
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code, errc::metainfo_invalid);
}

TEST(metainfo, duplicate_keys_are_rejected_even_outside_info) {
  std::string info = bencode::encode(single_info("x", 5, 16'384, 1));
  auto r = parse_metainfo("d8:announce1:a8:announce1:b4:info" + info + "e");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::bencode_noncanonical);
  EXPECT_NE(r.error().message.find("at byte 14"), std::string::npos) << r.error().message;
}

TEST(metainfo, wrong_pieces_count) {
  std::string doc = torrent(single_info("f", 100'000, 32'768, 3));
  expect_invalid(doc, "info.pieces has 3 hashes, expected 4 for 100000 bytes in pieces of 32768 "
                      "(byte " +
                          std::to_string(value_offset(doc, "pieces")) + ")");
  std::string extra = torrent(single_info("f", 0, 32'768, 1));
  expect_invalid(extra, "info.pieces has 1 hashes, expected 0 for 0 bytes in pieces of 32768 "
                        "(byte " +
                            std::to_string(value_offset(extra, "pieces")) + ")");
}

TEST(metainfo, pieces_not_multiple_of_20) {
  value info = single_info("f", 10, 16'384, 1);
  info.set("pieces", value::make_string(std::string(41, 'h')));
  std::string doc = torrent(info);
  expect_invalid(doc, "info.pieces length 41 is not a multiple of 20 (byte " +
                          std::to_string(value_offset(doc, "pieces")) + ")");
}

TEST(metainfo, type_errors_name_the_key_and_byte) {
  value info = single_info("f", 10, 16'384, 1);
  info.set("piece length", value::make_string("16384"));
  std::string doc = torrent(info);
  expect_invalid(doc, "info.piece length must be an integer (byte " +
                          std::to_string(value_offset(doc, "piece length")) + ")");

  value info2 = single_info("f", 10, 16'384, 1);
  info2.set("name", value::make_int(3));
  std::string doc2 = torrent(info2);
  expect_invalid(doc2, "info.name must be a string (byte " +
                           std::to_string(value_offset(doc2, "name")) + ")");

  value info3 = single_info("f", 10, 16'384, 1);
  info3.set("length", value::make_list());
  std::string doc3 = torrent(info3);
  expect_invalid(doc3, "info.length must be an integer (byte " +
                           std::to_string(value_offset(doc3, "length")) + ")");

  expect_invalid("d4:infoi1ee", "info must be a dictionary (byte 7)");
  expect_invalid("d8:announce1:ae", "info is missing (byte 0)");
  auto not_dict = parse_metainfo("li1ee");
  ASSERT_FALSE(not_dict.ok());
  EXPECT_EQ(not_dict.error().message, "torrent must be a dictionary (byte 0)");
}

TEST(metainfo, value_range_errors) {
  std::string doc = torrent(single_info("f", 10, 0, 1));
  expect_invalid(doc, "info.piece length 0 must be positive (byte " +
                          std::to_string(value_offset(doc, "piece length")) + ")");
  std::string big = torrent(single_info("f", 10, (256 << 20) + 1, 1));
  expect_invalid(big, "info.piece length 268435457 exceeds limit of 268435456 (byte " +
                          std::to_string(value_offset(big, "piece length")) + ")");
  std::string neg = torrent(single_info("f", -1, 16'384, 0));
  expect_invalid(neg, "info.length -1 is negative (byte " +
                          std::to_string(value_offset(neg, "length")) + ")");
  std::string noname = torrent(single_info("", 1, 16'384, 1));
  expect_invalid(noname,
                 "info.name is empty (byte " + std::to_string(value_offset(noname, "name")) + ")");
  value info = single_info("f", 1, 16'384, 1);
  info.as_dict().erase(info.as_dict().begin()); // "length"
  std::string nolen = torrent(info);
  expect_invalid(nolen, "info must have either length or files (byte " +
                            std::to_string(nolen.find("4:info") + 6) + ")");
}

TEST(metainfo, bad_file_entries) {
  auto multi = [](value files, std::size_t pieces = 1) {
    value info = value::make_dict();
    info.set("name", value::make_string("d"));
    info.set("piece length", value::make_int(16'384));
    info.set("pieces", value::make_string(fake_hashes(pieces)));
    info.set("files", std::move(files));
    return torrent(info);
  };
  std::string empty = multi(value::make_list(), 0);
  expect_invalid(empty,
                 "info.files is empty (byte " + std::to_string(value_offset(empty, "files")) + ")");

  value no_path = value::make_dict();
  no_path.set("length", value::make_int(1));
  std::string d1 = multi(value::make_list({no_path}));
  expect_invalid(d1, "info.files[0].path is missing (byte " +
                         std::to_string(value_offset(d1, "files") + 1) + ")");

  std::string d2 = multi(value::make_list({file({"a"}, 1), file({}, 1)}));
  auto r2 = parse_metainfo(d2);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().message.rfind("info.files[1].path is empty (byte ", 0), 0u)
      << r2.error().message;

  value bad_component = file({"a"}, 1);
  bad_component.set("path", value::make_list({value::make_string("a"), value::make_int(1)}));
  auto r3 = parse_metainfo(multi(value::make_list({bad_component})));
  ASSERT_FALSE(r3.ok());
  EXPECT_EQ(r3.error().message.rfind("info.files[0].path component must be a string", 0), 0u)
      << r3.error().message;

  auto r4 = parse_metainfo(multi(value::make_list({file({"a", ""}, 1)})));
  ASSERT_FALSE(r4.ok());
  EXPECT_EQ(r4.error().message.rfind("info.files[0].path has an empty component", 0), 0u)
      << r4.error().message;

  auto r5 = parse_metainfo(multi(value::make_list({file({"a"}, -5)}), 0));
  ASSERT_FALSE(r5.ok());
  EXPECT_EQ(r5.error().message.rfind("info.files[0].length -5 is negative", 0), 0u)
      << r5.error().message;

  value no_length = file({"a"}, 1);
  no_length.as_dict().erase(no_length.as_dict().begin()); // "length" sorts before "path"
  auto r6 = parse_metainfo(multi(value::make_list({no_length})));
  ASSERT_FALSE(r6.ok());
  EXPECT_EQ(r6.error().message.rfind("info.files[0].length is missing", 0), 0u)
      << r6.error().message;

  auto r7 = parse_metainfo(multi(value::make_list({value::make_int(1)})));
  ASSERT_FALSE(r7.ok());
  EXPECT_EQ(r7.error().message.rfind("info.files[0] must be a dictionary", 0), 0u)
      << r7.error().message;
}

TEST(metainfo, total_size_overflow_is_rejected) {
  value info = value::make_dict();
  info.set("name", value::make_string("d"));
  info.set("piece length", value::make_int(16'384));
  info.set("pieces", value::make_string(""));
  info.set("files", value::make_list(
                        {file({"a"}, INT64_MAX), file({"b"}, INT64_MAX), file({"c"}, INT64_MAX)}));
  auto r = parse_metainfo(torrent(info));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::metainfo_invalid);
  EXPECT_NE(r.error().message.find("total size exceeds limit"), std::string::npos)
      << r.error().message;
}

TEST(metainfo, announce_list_tiers) {
  value root = value::make_dict();
  root.set("info", single_info("f", 1, 16'384, 1));
  root.set("announce", value::make_string("http://fallback/"));
  value tiers = value::make_list();
  tiers.as_list().push_back(
      value::make_list({value::make_string("http://a1/"), value::make_string("udp://a2/")}));
  tiers.as_list().push_back(value::make_string("not a tier"));
  tiers.as_list().push_back(value::make_list());
  tiers.as_list().push_back(
      value::make_list({value::make_int(5), value::make_string("http://b/")}));
  root.set("announce-list", std::move(tiers));
  auto r = parse_metainfo(bencode::encode(root));
  ASSERT_TRUE(r.ok()) << r.error().message;
  std::vector<std::vector<std::string>> expected{{"http://a1/", "udp://a2/"}, {"http://b/"}};
  EXPECT_EQ(r->announce_list, expected);
  EXPECT_EQ(r->tracker_tiers(), expected);
  EXPECT_EQ(r->announce, "http://fallback/");

  auto plain = parse_metainfo(torrent(single_info("f", 1, 16'384, 1), "http://only/"));
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->announce_list.empty());
  EXPECT_EQ(plain->tracker_tiers(), (std::vector<std::vector<std::string>>{{"http://only/"}}));

  auto none = parse_metainfo(torrent(single_info("f", 1, 16'384, 1), ""));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->tracker_tiers().empty());
}

TEST(metainfo, optional_text_fields) {
  value root = value::make_dict();
  root.set("info", single_info("f", 1, 16'384, 1));
  root.set("comment", value::make_string("hello"));
  root.set("created by", value::make_string("actorrent"));
  root.set("creation date", value::make_int(1'700'000'000));
  auto r = parse_metainfo(bencode::encode(root));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->comment, "hello");
  EXPECT_EQ(r->created_by, "actorrent");
  EXPECT_EQ(r->creation_date, 1'700'000'000);
  root.set("comment", value::make_int(1));
  std::string doc = bencode::encode(root);
  expect_invalid(doc, "comment must be a string (byte " +
                          std::to_string(value_offset(doc, "comment")) + ")");
}

TEST(metainfo, bencode_errors_pass_through_with_offset) {
  auto r = parse_metainfo("d4:infod4:name");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::bencode_syntax);
  EXPECT_NE(r.error().message.find("at byte 14"), std::string::npos) << r.error().message;
  metainfo_limits small;
  small.max_file_size = 8;
  auto big = parse_metainfo("d4:infodee", small);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, errc::bencode_limit);
}

TEST(metainfo, load_from_file) {
  std::string doc = torrent(single_info("on-disk", 3, 16'384, 1));
  std::string path = ::testing::TempDir() + "metainfo_test.torrent";
  {
    std::ofstream out(path, std::ios::binary);
    out << doc;
  }
  auto r = load_metainfo(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->name, "on-disk");
  std::remove(path.c_str());

  auto missing = load_metainfo(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, errc::io_error);
  EXPECT_NE(missing.error().message.find(path), std::string::npos);
}

} // namespace
} // namespace actorrent
