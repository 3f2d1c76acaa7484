/* pseudonym: HMAC-SHA256 tokens from prepared keyed digest states. */
#include "pseudonym.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

#define SHA256_BLOCK 64
#define SHA256_LEN 32

static int keyed_state(EVP_MD_CTX **ctx, const uint8_t *key, uint8_t pad)
{
	uint8_t block[SHA256_BLOCK];
	int ok;

	*ctx = EVP_MD_CTX_new();
	if (!*ctx)
		return -ENOMEM;
	memset(block, pad, sizeof(block));
	for (size_t i = 0; i < PSEUDONYM_KEY_LEN; i++)
		block[i] ^= key[i];
	ok = EVP_DigestInit_ex(*ctx, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(*ctx, block, sizeof(block)) == 1;
	OPENSSL_cleanse(block, sizeof(block));
	return ok ? 0 : -EIO;
}

int pseudonymizer_init(struct pseudonymizer *p,
		       const uint8_t key[PSEUDONYM_KEY_LEN])
{
	int rc;

	memset(p, 0, sizeof(*p));
	rc = keyed_state(&p->inner, key, 0x36);
	if (!rc)
		rc = keyed_state(&p->outer, key, 0x5c);
	if (rc)
		pseudonymizer_release(p);
	return rc;
}

void pseudonymizer_release(struct pseudonymizer *p)
{
	EVP_MD_CTX_free(p->inner);
	EVP_MD_CTX_free(p->outer);
	memset(p, 0, sizeof(*p));
}

int pseudonym_token(const struct pseudonymizer *p, EVP_MD_CTX *scratch,
		    const uint8_t *value, size_t n,
		    char out[PSEUDONYM_TOKEN_LEN])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t inner[SHA256_LEN], mac[SHA256_LEN];
	int ok;

	ok = EVP_MD_CTX_copy_ex(scratch, p->inner) == 1 &&
	     EVP_DigestUpdate(scratch, value, n) == 1 &&
	     EVP_DigestFinal_ex(scratch, inner, NULL) == 1 &&
	     EVP_MD_CTX_copy_ex(scratch, p->outer) == 1 &&
	     EVP_DigestUpdate(scratch, inner, sizeof(inner)) == 1 &&
	     EVP_DigestFinal_ex(scratch, mac, NULL) == 1;
	if (!ok)
		return -EIO;
	for (size_t i = 0; i < PSEUDONYM_TOKEN_LEN / 2; i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	return 0;
}
