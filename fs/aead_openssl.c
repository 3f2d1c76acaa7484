/*
 * aead_openssl: aead's AES-256-GCM through OpenSSL's EVP interface.  A
 * cipher context is made per call, which costs far less than the block it
 * seals.
 */
#include "aead.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

/*
 * AES-256-GCM, fetched from the provider once: naming it on every call
 * (EVP_aes_256_gcm) looks it up again each time, which costs more than
 * sealing a small block.
 */
static EVP_CIPHER *gcm;
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;

static void gcm_fetch(void)
{
	gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static int aead_run(bool seal, const uint8_t key[KEY_LEN],
		    const uint8_t nonce[AEAD_NONCE_LEN], const void *aad,
		    size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
		    uint8_t tag[AEAD_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx;
	int outl, ok;

	/* EVP counts in int: a longer buffer would be sealed in part. */
	if (len > INT_MAX || aad_len > INT_MAX)
		return -EIO;
	pthread_once(&gcm_once, gcm_fetch);
	if (!gcm)
		return -EIO;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	ok = EVP_CipherInit_ex2(ctx, gcm, key, nonce, seal ? 1 : 0, NULL) == 1;
	if (ok && aad_len)
		ok = EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) == 1;
	if (ok && len)
		ok = EVP_CipherUpdate(ctx, out, &outl, in, (int)len) == 1;
	if (ok && !seal)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG,
					 AEAD_TAG_LEN, tag) == 1;
	if (ok)
		ok = EVP_CipherFinal_ex(ctx, out + len, &outl) == 1;
	if (ok && seal)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
					 AEAD_TAG_LEN, tag) == 1;
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

int aead_seal(const uint8_t key[KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const void *aad, size_t aad_len, const uint8_t *in, size_t len,
	      uint8_t *out, uint8_t tag[AEAD_TAG_LEN])
{
	return aead_run(true, key, nonce, aad, aad_len, in, len, out, tag);
}

int aead_open(const uint8_t key[KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const void *aad, size_t aad_len, const uint8_t *in, size_t len,
	      const uint8_t tag[AEAD_TAG_LEN], uint8_t *out)
{
	uint8_t t[AEAD_TAG_LEN];

	memcpy(t, tag, sizeof(t));
	return aead_run(false, key, nonce, aad, aad_len, in, len, out, t);
}
