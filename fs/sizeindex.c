/*
 * sizeindex: encoding and sealing size indexes.  The plain form is the
 * three figures (rows, header bytes, total bytes) and then each block's
 * bytes, all little-endian 64-bit.
 */
#include "sizeindex.h"

#include "aead.h"
#include "byteorder.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SIZE_KEY_PURPOSE "govfs size index key"
#define AAD_TAG "govfs size index"
#define FIGURES_LEN 24
#define BLOCK_FIGURE_LEN 8

void size_index_release(struct size_index *si)
{
	free(si->block_bytes);
	memset(si, 0, sizeof(*si));
}

int size_key_derive(const uint8_t pseudonym_key[KEY_LEN],
		    uint8_t size_key[KEY_LEN])
{
	return key_derive(pseudonym_key, SIZE_KEY_PURPOSE, size_key);
}

/* A text field of the associated data: its length, then its bytes. */
static void put_text(struct buf *aad, const char *text)
{
	uint8_t len[4];

	put_u32(len, (uint32_t)strlen(text));
	buf_put(aad, len, sizeof(len));
	buf_put(aad, text, strlen(text));
}

static void put_number(struct buf *aad, int64_t n)
{
	uint8_t bytes[8];

	put_u64(bytes, (uint64_t)n);
	buf_put(aad, bytes, sizeof(bytes));
}

/*
 * The associated data of place at: every field, with lengths before the
 * texts, so that no two places share an encoding.
 */
static int place_aad(const struct size_index_place *at, struct buf *aad)
{
	const char *view = at->view ? at->view : "";
	size_t need = sizeof(AAD_TAG) + 1 + 3 * 4 + 2 * 8 +
		      strlen(at->agreement) + strlen(at->dataset) +
		      strlen(view);
	int rc = buf_reserve(aad, need);

	if (rc)
		return rc;
	buf_put(aad, AAD_TAG, sizeof(AAD_TAG));
	buf_putc(aad, at->view ? 'v' : 'd');
	put_text(aad, at->agreement);
	put_number(aad, at->revision);
	put_text(aad, at->dataset);
	put_number(aad, at->version);
	put_text(aad, view);
	return 0;
}

static void encode_figures(const struct size_index *si, uint8_t *out)
{
	put_u64(out, si->rows);
	put_u64(out + 8, si->header_bytes);
	put_u64(out + 16, si->total_bytes);
	for (uint32_t b = 0; b < si->nblocks; b++)
		put_u64(out + FIGURES_LEN + (size_t)b * BLOCK_FIGURE_LEN,
			si->block_bytes[b]);
}

static int decode_figures(const uint8_t *in, size_t len, struct size_index *out)
{
	out->nblocks = (uint32_t)((len - FIGURES_LEN) / BLOCK_FIGURE_LEN);
	out->block_bytes =
	    malloc(((size_t)out->nblocks + 1) * sizeof(*out->block_bytes));
	if (!out->block_bytes)
		return -ENOMEM;
	out->rows = get_u64(in);
	out->header_bytes = get_u64(in + 8);
	out->total_bytes = get_u64(in + 16);
	for (uint32_t b = 0; b < out->nblocks; b++)
		out->block_bytes[b] =
		    get_u64(in + FIGURES_LEN + (size_t)b * BLOCK_FIGURE_LEN);
	return 0;
}

int size_index_seal(const uint8_t size_key[KEY_LEN],
		    const struct size_index_place *at,
		    const struct size_index *si, struct buf *out)
{
	size_t plain_len = FIGURES_LEN + (size_t)si->nblocks * BLOCK_FIGURE_LEN;
	uint8_t *plain = malloc(plain_len), *nonce, *sealed;
	struct buf aad = BUF_INIT;
	int rc;

	out->len = 0;
	rc = plain ? place_aad(at, &aad) : -ENOMEM;
	if (!rc)
		rc =
		    buf_reserve(out, AEAD_NONCE_LEN + plain_len + AEAD_TAG_LEN);
	if (rc)
		goto out_free;
	nonce = out->data;
	sealed = nonce + AEAD_NONCE_LEN;
	encode_figures(si, plain);
	rc = random_bytes(nonce, AEAD_NONCE_LEN);
	if (!rc)
		rc = aead_seal(size_key, nonce, aad.data, aad.len, plain,
			       plain_len, sealed, sealed + plain_len);
	if (!rc)
		out->len = AEAD_NONCE_LEN + plain_len + AEAD_TAG_LEN;
out_free:
	buf_release(&aad);
	free(plain);
	return rc;
}

/* Whether a blob of len bytes can hold a sealed size index. */
static bool sealed_len_fits(size_t len)
{
	size_t blocks;

	if (len < AEAD_NONCE_LEN + FIGURES_LEN + AEAD_TAG_LEN)
		return false;
	blocks = len - AEAD_NONCE_LEN - FIGURES_LEN - AEAD_TAG_LEN;
	return blocks % BLOCK_FIGURE_LEN == 0 &&
	       blocks / BLOCK_FIGURE_LEN <= UINT32_MAX;
}

int size_index_open(const uint8_t size_key[KEY_LEN],
		    const struct size_index_place *at, const struct buf *sealed,
		    struct size_index *out)
{
	struct buf aad = BUF_INIT;
	const uint8_t *nonce = sealed->data, *ciphertext;
	size_t plain_len;
	uint8_t *plain;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!sealed_len_fits(sealed->len))
		return -EIO;
	plain_len = sealed->len - AEAD_NONCE_LEN - AEAD_TAG_LEN;
	ciphertext = nonce + AEAD_NONCE_LEN;
	plain = malloc(plain_len);
	rc = plain ? place_aad(at, &aad) : -ENOMEM;
	if (!rc)
		rc = aead_open(size_key, nonce, aad.data, aad.len, ciphertext,
			       plain_len, ciphertext + plain_len, plain);
	if (!rc)
		rc = decode_figures(plain, plain_len, out);
	buf_release(&aad);
	free(plain);
	return rc;
}
