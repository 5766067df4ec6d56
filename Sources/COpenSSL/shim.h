#ifndef EDGEKIT_COPENSSL_SHIM_H
#define EDGEKIT_COPENSSL_SHIM_H
#include <stddef.h>
#include <stdint.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

/* The few libcrypto (OpenSSL 3) operations SystemCrypto needs, through the EVP interface (libcrypto
   has no other public API for X25519 and Ed25519) with every size fixed here. Functions return 1 on
   success and 0 on failure. A failure clears the thread's OpenSSL error queue, so nothing is left
   for another user of libcrypto to misread, and zeroes outputs that could hold a secret or
   unauthenticated plaintext. Wrapped by Sources/SystemCrypto/LibCrypto.swift; nothing else calls
   these. */

static inline int edgekit_fail(void) {
    ERR_clear_error();
    return 0;
}

/* The 32-byte public key of a 32-byte X25519 or Ed25519 private key. */
static inline int edgekit_raw_public(int type, const uint8_t *private_key, uint8_t *out) {
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(type, NULL, private_key, 32);
    size_t length = 32;
    int ok = key != NULL && EVP_PKEY_get_raw_public_key(key, out, &length) == 1 && length == 32;
    EVP_PKEY_free(key);
    return ok ? 1 : edgekit_fail();
}

static inline int edgekit_x25519_public(const uint8_t *private_key, uint8_t *out) {
    return edgekit_raw_public(EVP_PKEY_X25519, private_key, out);
}

/* X25519 (RFC 7748 section 5). Fails when the result is all zero, i.e. the peer's key is a
   low-order point (RFC 7748 section 6.1 lets a protocol refuse it; libcrypto's derive already
   does, and the check is repeated here so it does not depend on that). */
static inline int edgekit_x25519(const uint8_t *private_key, const uint8_t *peer_key, uint8_t *out) {
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, private_key, 32);
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_key, 32);
    EVP_PKEY_CTX *context = key != NULL ? EVP_PKEY_CTX_new(key, NULL) : NULL;
    size_t length = 32;
    int ok = peer != NULL && context != NULL && EVP_PKEY_derive_init(context) == 1
        && EVP_PKEY_derive_set_peer(context, peer) == 1 && EVP_PKEY_derive(context, out, &length) == 1
        && length == 32;
    EVP_PKEY_CTX_free(context);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(key);
    uint8_t any = 0;
    for (size_t i = 0; ok && i < 32; i++) any |= out[i];
    if (ok && any != 0) return 1;
    OPENSSL_cleanse(out, 32);
    return edgekit_fail();
}

static inline int edgekit_ed25519_public(const uint8_t *seed, uint8_t *out) {
    return edgekit_raw_public(EVP_PKEY_ED25519, seed, out);
}

/* Ed25519 (RFC 8032 section 5.1.6, deterministic) with a 32-byte seed; a 64-byte signature. */
static inline int edgekit_ed25519_sign(const uint8_t *seed, const uint8_t *message, size_t length,
                                       uint8_t *signature) {
    static const uint8_t empty = 0;
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    size_t size = 64;
    int ok = key != NULL && context != NULL && EVP_DigestSignInit(context, NULL, NULL, NULL, key) == 1
        && EVP_DigestSign(context, signature, &size, message != NULL ? message : &empty, length) == 1
        && size == 64;
    EVP_MD_CTX_free(context);
    EVP_PKEY_free(key);
    return ok ? 1 : edgekit_fail();
}

/* 1 when `signature` (64 bytes) is `public_key`'s over `message` (RFC 8032 section 5.1.7). */
static inline int edgekit_ed25519_verify(const uint8_t *public_key, const uint8_t *message, size_t length,
                                         const uint8_t *signature) {
    static const uint8_t empty = 0;
    EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, public_key, 32);
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    int ok = key != NULL && context != NULL && EVP_DigestVerifyInit(context, NULL, NULL, NULL, key) == 1
        && EVP_DigestVerify(context, signature, 64, message != NULL ? message : &empty, length) == 1;
    EVP_MD_CTX_free(context);
    EVP_PKEY_free(key);
    return ok ? 1 : edgekit_fail();
}

/* ChaCha20-Poly1305 (RFC 8439 section 2.8): 32-byte key, 12-byte nonce, 16-byte tag. With `seal`
   it encrypts `in` into `out` (`length` bytes) and writes `tag`; without, it decrypts and checks
   `tag`, and on a mismatch zeroes `out`, whose bytes were never authenticated. */
static inline int edgekit_chacha20_poly1305(int seal, const uint8_t *key, const uint8_t *nonce,
                                            const uint8_t *aad, size_t aad_length,
                                            const uint8_t *in, size_t length, uint8_t *out, uint8_t *tag) {
    /* EVP takes int lengths; a whole number of 64-byte ChaCha20 blocks per call. */
    const size_t step = (size_t)1 << 30;
    EVP_CIPHER_CTX *context = EVP_CIPHER_CTX_new();
    int ok = context != NULL && EVP_CipherInit_ex(context, EVP_chacha20_poly1305(), NULL, key, nonce, seal) == 1
        && (seal || EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1);
    int written = 0;
    for (size_t done = 0; ok && done < aad_length; done += step) {
        int part = (int)(aad_length - done < step ? aad_length - done : step);
        ok = EVP_CipherUpdate(context, NULL, &written, aad + done, part) == 1;
    }
    for (size_t done = 0; ok && done < length; done += step) {
        int part = (int)(length - done < step ? length - done : step);
        ok = EVP_CipherUpdate(context, out + done, &written, in + done, part) == 1 && written == part;
    }
    uint8_t rest[16];
    ok = ok && EVP_CipherFinal_ex(context, rest, &written) == 1 && written == 0;
    ok = ok && (!seal || EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1);
    EVP_CIPHER_CTX_free(context);
    if (ok) return 1;
    if (length > 0) OPENSSL_cleanse(out, length);
    return edgekit_fail();
}

/* A running SHA-256 (`kind` 0) or SHA-512 (`kind` 1); NULL for another kind or out of memory. */
static inline EVP_MD_CTX *edgekit_hash_new(int kind) {
    const EVP_MD *type = kind == 0 ? EVP_sha256() : kind == 1 ? EVP_sha512() : NULL;
    EVP_MD_CTX *context = type != NULL ? EVP_MD_CTX_new() : NULL;
    if (context != NULL && EVP_DigestInit_ex(context, type, NULL) == 1) return context;
    EVP_MD_CTX_free(context);
    ERR_clear_error();
    return NULL;
}

/* An independent copy of a running hash; NULL when out of memory. */
static inline EVP_MD_CTX *edgekit_hash_copy(const EVP_MD_CTX *context) {
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    if (copy != NULL && EVP_MD_CTX_copy_ex(copy, context) == 1) return copy;
    EVP_MD_CTX_free(copy);
    ERR_clear_error();
    return NULL;
}

static inline int edgekit_hash_update(EVP_MD_CTX *context, const void *data, size_t length) {
    if (length == 0) return 1;
    return EVP_DigestUpdate(context, data, length) == 1 ? 1 : edgekit_fail();
}

/* Writes the digest of everything hashed so far (32 or 64 bytes) and leaves `context` as it was:
   the hash is finished on a copy, so a hasher can be finalized and still go on. */
static inline int edgekit_hash_final(const EVP_MD_CTX *context, uint8_t *out) {
    EVP_MD_CTX *copy = edgekit_hash_copy(context);
    unsigned int length = 0;
    int ok = copy != NULL && EVP_DigestFinal_ex(copy, out, &length) == 1;
    EVP_MD_CTX_free(copy);
    return ok ? 1 : edgekit_fail();
}

static inline void edgekit_hash_free(EVP_MD_CTX *context) {
    EVP_MD_CTX_free(context);
}

#endif
