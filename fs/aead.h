/*
 * aead: AES-256-GCM, the one cipher that seals every key and block under
 * the home.  Two builds of the same interface, chosen by meson's aead
 * option: aead_ipsecmb.c (Intel's ipsec-mb, whose VAES code runs several
 * times faster than OpenSSL 3.0's on the CPUs that have it) and
 * aead_openssl.c (OpenSSL's EVP, everywhere else).  Their bytes are the
 * same: either opens what the other sealed.
 */
#ifndef GOVFS_AEAD_H
#define GOVFS_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define KEY_LEN 32
#define AEAD_NONCE_LEN 12
#define AEAD_TAG_LEN 16

/*
 * Seal in[0..len) into out[0..len) and tag with key, nonce and aad; out
 * may be in (sealing in place).  0, -ENOMEM or -EIO.
 */
int aead_seal(const uint8_t key[KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const void *aad, size_t aad_len, const uint8_t *in, size_t len,
	      uint8_t *out, uint8_t tag[AEAD_TAG_LEN])
    __attribute__((warn_unused_result));

/*
 * Open what aead_seal made; -EIO if anything was altered (out then holds
 * bytes nobody vouches for), -ENOMEM.  out may be in (decryption in
 * place).
 */
int aead_open(const uint8_t key[KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const void *aad, size_t aad_len, const uint8_t *in, size_t len,
	      const uint8_t tag[AEAD_TAG_LEN], uint8_t *out)
    __attribute__((warn_unused_result));

#endif
