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

static IMB_MGR *mgr;
static pthread_once_t mgr_once = PTHREAD_ONCE_INIT;

static void mgr_make(void)
{
	mgr = alloc_mb_mgr(0);
	if (mgr)
		init_mb_mgr_auto(mgr, NULL);
}

/*
 * The library reports a bad argument only through its errno, which each
 * call resets; any error fails the call closed.
 */
static int gcm_run(bool seal, const uint8_t key[KEY_LEN],
		   const uint8_t nonce[AEAD_NONCE_LEN], const void *aad,
		   size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
		   uint8_t tag[AEAD_TAG_LEN])
{
	struct gcm_key_data kd;
	struct gcm_context_data cd;

	pthread_once(&mgr_once, mgr_make);
	if (!mgr)
		return -ENOMEM;
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
