#include "protocol/sha1.hpp"

#include <cstdlib>

#include <openssl/evp.h>

namespace actorrent {

namespace {

EVP_MD_CTX *ctx_of(void *p) {
  return static_cast<EVP_MD_CTX *>(p);
}

} // namespace

sha1_hasher::sha1_hasher() : ctx_(EVP_MD_CTX_new()) {
  // Without a context nothing can be hashed, and a wrong digest would be worse than stopping:
  // it would mark good pieces bad (or a bad info-hash as ours).
  if (ctx_ == nullptr)
    std::abort();
  reset();
}

sha1_hasher::~sha1_hasher() {
  EVP_MD_CTX_free(ctx_of(ctx_));
}

void sha1_hasher::reset() {
  if (EVP_DigestInit_ex(ctx_of(ctx_), EVP_sha1(), nullptr) != 1)
    std::abort();
}

void sha1_hasher::update(std::string_view bytes) {
  if (bytes.empty())
    return;
  if (EVP_DigestUpdate(ctx_of(ctx_), bytes.data(), bytes.size()) != 1)
    std::abort();
}

sha1_digest sha1_hasher::finish() {
  sha1_digest out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_of(ctx_), out.data(), &len) != 1 || len != out.size())
    std::abort();
  reset();
  return out;
}

sha1_digest sha1(std::string_view bytes) {
  sha1_hasher h;
  h.update(bytes);
  return h.finish();
}

} // namespace actorrent
