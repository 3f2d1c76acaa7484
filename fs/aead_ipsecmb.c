/*
 * aead_ipsecmb: aead's AES-256-GCM through Intel's ipsec-mb direct GCM
 * API, which picks the widest code the CPU runs (VAES on 512-bit vectors
 * where present).  One manager, made once, serves every thread: the
 * direct API only reads its function pointers.  Expanded keys live on the
 * stack for one call and are wiped after it.
 */
#include "aead.h"

#include <errno.h>
#include <intel-ipsec-mb.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdbool.h>

/* The most GCM may seal under one nonce (NIST SP 800-38D). */
#define GCM_MAX_LEN ((1ull << 36) - 32)

static IMB_MGR *mgr;
static pthread_once_t mgr_once = PTHREAD_ONCE_INIT;

static void mgr_make(void)
{
	mgr = alloc_mb_mgr(0);
	if (!mgr)
		return;
	init_mb_mgr_auto(mgr, NULL);
	if (imb_get_errno(mgr)) {
		free_mb_mgr(mgr);
		mgr = NULL;
	}
}

/*
 * What the library would refuse.  It reports a refusal only through an
 * errno shared by every thread and reset by every call, and leaves the
 * output as it was (plaintext, for a seal in place), so nothing it would
 * refuse may reach it; its errno is checked after the call as well.
 */
static bool gcm_args_ok(const uint8_t *key, const uint8_t *nonce,
			const void *aad, size_t aad_len, const uint8_t *in,
			size_t len, const uint8_t *out, const uint8_t *tag)
{
	return key && nonce && tag && (aad || !aad_len) &&
	       ((in && out) || !len) && len <= GCM_MAX_LEN;
}

static int gcm_run(bool seal, const uint8_t key[KEY_LEN],
		   const uint8_t nonce[AEAD_NONCE_LEN], const void *aad,
		   size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
		   uint8_t tag[AEAD_TAG_LEN])
{
	_Alignas(64) struct gcm_key_data kd;
	_Alignas(64) struct gcm_context_data cd;

	if (!gcm_args_ok(key, nonce, aad, aad_len, in, len, out, tag))
		return -EIO;
	pthread_once(&mgr_once, mgr_make);
	if (!mgr)
		return -EIO;
	IMB_AES256_GCM_PRE(mgr, key, &kd);
	if (seal)
		IMB_AES256_GCM_ENC(mgr, &kd, &cd, out, in, len, nonce, aad,
				   aad_len, tag, AEAD_TAG_LEN);
	else
		IMB_AES256_GCM_DEC(mgr, &kd, &cd, out, in, len, nonce, aad,
				   aad_len, tag, AEAD_TAG_LEN);
	OPENSSL_cleanse(&kd, sizeof(kd));
	OPENSSL_cleanse(&cd, sizeof(cd));
	return imb_get_errno(NULL) ? -EIO : 0;
}

int aead_seal(const uint8_t key[KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const void *aad, size_t aad_len, const uint8_t *in, size_t len,
	      uint8_t *out, uint8_t tag[AEAD_TAG_LEN])
{
	return gcm_run(true, key, nonce, aad, aad_len, in, len, out, tag);
}

/*
 * The tag is computed, then compared in constant time.  It starts as the
 * complement of the one given, so a call that wrote nothing cannot match.
 */
int aead_open(const uint8_t key[KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const void *aad, size_t aad_len, const uint8_t *in, size_t len,
	      const uint8_t tag[AEAD_TAG_LEN], uint8_t *out)
{
	uint8_t computed[AEAD_TAG_LEN];
	size_t i;
	int rc;

	for (i = 0; i < AEAD_TAG_LEN; i++)
		computed[i] = (uint8_t)~tag[i];
	rc = gcm_run(false, key, nonce, aad, aad_len, in, len, out, computed);
	if (!rc && CRYPTO_memcmp(computed, tag, AEAD_TAG_LEN))
		rc = -EIO;
	return rc;
}
