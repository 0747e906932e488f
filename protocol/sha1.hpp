// SHA-1 through OpenSSL's EVP interface (uses SHA-NI where the CPU has it).
#pragma once

#include <string_view>

#include "protocol/types.hpp"

namespace actorrent {

/// Incremental SHA-1. Not copyable; one per hashing thread.
class sha1_hasher {
public:
  sha1_hasher();
  ~sha1_hasher();
  sha1_hasher(const sha1_hasher&) = delete;
  sha1_hasher& operator=(const sha1_hasher&) = delete;

  void reset();
  void update(std::string_view bytes);
  sha1_digest finish(); // also resets for the next use

private:
  void* ctx_; // EVP_MD_CTX
};

sha1_digest sha1(std::string_view bytes);

} // namespace actorrent
