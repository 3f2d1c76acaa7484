/*
 * aead-speed: how fast this build's AES-256-GCM (fs/aead) seals and opens
 * one block, next to OpenSSL's EVP on the same buffers, in GB/s of one
 * core.  Each call sets up its key afresh, as the store does per block.
 *
 * usage: aead-speed [BLOCK_BYTES] [SECONDS]   (default 27000, 1)
 */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "aead.h"
#include "keys.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct job {
	uint8_t key[KEY_LEN], nonce[AEAD_NONCE_LEN], aad[43];
	uint8_t tag[AEAD_TAG_LEN];
	uint8_t *buf;
	size_t len;
};

static bool govfs_seal(struct job *j)
{
	return !aead_seal(j->key, j->nonce, j->aad, sizeof(j->aad), j->buf,
			  j->len, j->buf, j->tag);
}

static bool govfs_open(struct job *j)
{
	return !aead_open(j->key, j->nonce, j->aad, sizeof(j->aad), j->buf,
			  j->len, j->tag, j->buf);
}

static bool evp_run(struct job *j, int enc)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int outl, ok;

	ok = ctx && EVP_CipherInit_ex2(ctx, EVP_aes_256_gcm(), j->key, j->nonce,
				       enc, NULL);
	ok = ok && EVP_CipherUpdate(ctx, NULL, &outl, j->aad, sizeof(j->aad));
	ok = ok && EVP_CipherUpdate(ctx, j->buf, &outl, j->buf, (int)j->len);
	ok = ok && (enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG,
					       AEAD_TAG_LEN, j->tag));
	ok = ok && EVP_CipherFinal_ex(ctx, j->buf + j->len, &outl);
	ok = ok && (!enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
						AEAD_TAG_LEN, j->tag));
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

static bool evp_seal(struct job *j)
{
	return evp_run(j, 1);
}
static bool evp_open(struct job *j)
{
	return evp_run(j, 0);
}

/* Seal then open, in place, for secs seconds; GB/s of each, or -1. */
static int measure(const char *name, bool (*seal)(struct job *),
		   bool (*open)(struct job *), struct job *j, double secs)
{
	double t_seal = 0, t_open = 0, t;
	long n = 0;

	while (t_seal + t_open < secs) {
		t = now_s();
		if (!seal(j))
			return -1;
		t_seal += now_s() - t;
		t = now_s();
		if (!open(j))
			return -1;
		t_open += now_s() - t;
		n++;
	}
	printf("%-8s seal %6.2f GB/s   open %6.2f GB/s   (%ld blocks of %zu "
	       "bytes)\n",
	       name, (double)j->len * (double)n / t_seal / 1e9,
	       (double)j->len * (double)n / t_open / 1e9, n, j->len);
	return 0;
}

int main(int argc, char **argv)
{
	struct job j = {.len = argc > 1 ? strtoul(argv[1], NULL, 10) : 27000};
	double secs = argc > 2 ? atof(argv[2]) : 1;

	j.buf = malloc(j.len + 1);
	if (!j.buf || !j.len || random_bytes(j.key, sizeof(j.key)) ||
	    random_bytes(j.nonce, sizeof(j.nonce)) ||
	    random_bytes(j.buf, j.len)) {
		fprintf(stderr, "usage: aead-speed [BLOCK_BYTES] [SECONDS]\n");
		return 2;
	}
	if (measure("govfs", govfs_seal, govfs_open, &j, secs) ||
	    measure("openssl", evp_seal, evp_open, &j, secs)) {
		fprintf(stderr, "aead-speed: a block failed to open\n");
		return 1;
	}
	free(j.buf);
	return 0;
}
