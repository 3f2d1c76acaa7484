/*
 * pseudonym: keyed tokens for the `pseudonym` rule: the first 16 lowercase
 * hex characters of HMAC-SHA256(key, value), under the agreement's own
 * 256-bit key.  The keyed inner and outer digest states are prepared once;
 * each value then costs two digest-state copies and two short hashes, with
 * no allocation (OpenSSL 3 EVP digests only, no deprecated HMAC API).
 */
#ifndef GOVFS_PSEUDONYM_H
#define GOVFS_PSEUDONYM_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#define PSEUDONYM_KEY_LEN 32
#define PSEUDONYM_TOKEN_LEN 16

/* Prepared keyed state; read-only once made, so threads may share it. */
struct pseudonymizer {
	EVP_MD_CTX *inner; /* SHA-256 after key ^ ipad */
	EVP_MD_CTX *outer; /* SHA-256 after key ^ opad */
};

/* Prepare p for key; 0, -ENOMEM or -EIO. */
int pseudonymizer_init(struct pseudonymizer *p,
		       const uint8_t key[PSEUDONYM_KEY_LEN])
    __attribute__((warn_unused_result));

void pseudonymizer_release(struct pseudonymizer *p);

/*
 * Write the token of value[0..n) into out (PSEUDONYM_TOKEN_LEN chars, no
 * NUL), using scratch, a digest context the calling thread owns.
 * 0 or -EIO.
 */
int pseudonym_token(const struct pseudonymizer *p, EVP_MD_CTX *scratch,
		    const uint8_t *value, size_t n,
		    char out[PSEUDONYM_TOKEN_LEN])
    __attribute__((warn_unused_result));

#endif
