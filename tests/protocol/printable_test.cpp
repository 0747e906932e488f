#include "protocol/error.hpp"

#include <gtest/gtest.h>

using namespace actorrent;

TEST(printable, control_bytes_and_del_are_escaped) {
  EXPECT_EQ(printable("a\x1b[2Jb"), "a\\x1b[2Jb");
  EXPECT_EQ(printable(std::string("x\0y", 3)), "x\\x00y");
  EXPECT_EQ(printable("tab\there\nnl\r\x7f"), "tab\\x09here\\x0anl\\x0d\\x7f");
}

TEST(printable, text_and_utf8_pass_through) {
  EXPECT_EQ(printable("Ubuntu 24.04 \"desktop\" [x]"), "Ubuntu 24.04 \"desktop\" [x]");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac"), "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac");
  EXPECT_EQ(printable(""), "");
}
