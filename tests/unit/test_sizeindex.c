/*
 * Unit tests of fs/sizeindex: a sealed size index opens to what was sealed
 * and to nothing else: every byte of the blob altered, the blob cut or
 * grown, another key, and each field of the place it was sealed for
 * (agreement, revision, dataset, version, view or data.csv) give -EIO.
 * The blob shows none of its figures, and the size key is derived, not
 * the pseudonym key itself.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "byteorder.h"
#include "sizeindex.h"

/* Figures no blob could hold by chance. */
static uint64_t blocks[4] = {0x1111222233334444ull, 0x5555666677778888ull, 0,
			     0x0123456789abcdefull};

static const struct size_index sizes = {
    .rows = 0x0badc0ffee0ddf00ull,
    .header_bytes = 0x00000000deadbeefull,
    .nblocks = 4,
    .block_bytes = blocks,
    .total_bytes = 0x7766554433221100ull,
};

static const struct size_index_place data_csv = {
    .agreement = "agr-1",
    .revision = 3,
    .dataset = "visits",
    .version = 7,
    .view = NULL,
};

static void test_key(uint8_t key[KEY_LEN], uint8_t fill)
{
	memset(key, fill, KEY_LEN);
}

static void seal(const uint8_t key[KEY_LEN], const struct size_index_place *at,
		 struct buf *out)
{
	assert_int_equal(size_index_seal(key, at, &sizes, out), 0);
}

static int open_at(const uint8_t key[KEY_LEN],
		   const struct size_index_place *at, const struct buf *sealed)
{
	struct size_index got;
	int rc = size_index_open(key, at, sealed, &got);

	if (!rc)
		size_index_release(&got);
	else
		assert_null(got.block_bytes);
	return rc;
}

static void test_round_trip(void **state)
{
	struct buf sealed = BUF_INIT;
	struct size_index got;
	uint8_t key[KEY_LEN];

	(void)state;
	test_key(key, 1);
	seal(key, &data_csv, &sealed);
	assert_int_equal(sealed.len,
			 AEAD_NONCE_LEN + 24 + 4 * 8 + AEAD_TAG_LEN);
	assert_int_equal(size_index_open(key, &data_csv, &sealed, &got), 0);
	assert_int_equal(got.rows, sizes.rows);
	assert_int_equal(got.header_bytes, sizes.header_bytes);
	assert_int_equal(got.total_bytes, sizes.total_bytes);
	assert_int_equal(got.nblocks, 4);
	assert_memory_equal(got.block_bytes, blocks, sizeof(blocks));
	size_index_release(&got);
	buf_release(&sealed);
}

static void test_no_blocks(void **state)
{
	const struct size_index empty = {.header_bytes = 9, .total_bytes = 9};
	struct buf sealed = BUF_INIT;
	struct size_index got;
	uint8_t key[KEY_LEN];

	(void)state;
	test_key(key, 2);
	assert_int_equal(size_index_seal(key, &data_csv, &empty, &sealed), 0);
	assert_int_equal(size_index_open(key, &data_csv, &sealed, &got), 0);
	assert_int_equal(got.nblocks, 0);
	assert_int_equal(got.total_bytes, 9);
	assert_non_null(got.block_bytes);
	size_index_release(&got);
	buf_release(&sealed);
}

/* None of the figures is in the blob, whichever way it is written. */
static void test_blob_shows_no_figure(void **state)
{
	const uint64_t figures[] = {sizes.rows,	       sizes.header_bytes,
				    sizes.total_bytes, blocks[0],
				    blocks[1],	       blocks[3]};
	struct buf sealed = BUF_INIT;
	uint8_t key[KEY_LEN], le[8], be[8];

	(void)state;
	test_key(key, 3);
	seal(key, &data_csv, &sealed);
	for (size_t i = 0; i < sizeof(figures) / sizeof(figures[0]); i++) {
		put_u64(le, figures[i]);
		for (int b = 0; b < 8; b++)
			be[b] = le[7 - b];
		assert_null(memmem(sealed.data, sealed.len, le, sizeof(le)));
		assert_null(memmem(sealed.data, sealed.len, be, sizeof(be)));
	}
	buf_release(&sealed);
}

/* Two seals of the same figures for the same place differ (fresh nonce). */
static void test_fresh_nonce(void **state)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	uint8_t key[KEY_LEN];

	(void)state;
	test_key(key, 4);
	seal(key, &data_csv, &a);
	seal(key, &data_csv, &b);
	assert_int_equal(a.len, b.len);
	assert_memory_not_equal(a.data, b.data, AEAD_NONCE_LEN);
	assert_memory_not_equal(a.data + AEAD_NONCE_LEN,
				b.data + AEAD_NONCE_LEN,
				a.len - AEAD_NONCE_LEN);
	buf_release(&a);
	buf_release(&b);
}

static void test_every_byte_altered(void **state)
{
	struct buf sealed = BUF_INIT;
	uint8_t key[KEY_LEN];

	(void)state;
	test_key(key, 5);
	seal(key, &data_csv, &sealed);
	for (size_t i = 0; i < sealed.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			sealed.data[i] ^= (uint8_t)(1u << bit);
			assert_int_equal(open_at(key, &data_csv, &sealed),
					 -EIO);
			sealed.data[i] ^= (uint8_t)(1u << bit);
		}
	}
	assert_int_equal(open_at(key, &data_csv, &sealed), 0);
	buf_release(&sealed);
}

static void test_cut_or_grown(void **state)
{
	struct buf sealed = BUF_INIT;
	uint8_t key[KEY_LEN];
	size_t len;

	(void)state;
	test_key(key, 6);
	seal(key, &data_csv, &sealed);
	len = sealed.len;
	for (sealed.len = 0; sealed.len < len; sealed.len++)
		assert_int_equal(open_at(key, &data_csv, &sealed), -EIO);
	for (int extra = 1; extra <= 16; extra++) {
		assert_int_equal(buf_append(&sealed, "\0", 1), 0);
		assert_int_equal(open_at(key, &data_csv, &sealed), -EIO);
	}
	buf_release(&sealed);
}

static void test_other_key(void **state)
{
	struct buf sealed = BUF_INIT;
	uint8_t key[KEY_LEN], other[KEY_LEN];

	(void)state;
	test_key(key, 7);
	seal(key, &data_csv, &sealed);
	for (int i = 0; i < KEY_LEN; i++) {
		memcpy(other, key, KEY_LEN);
		other[i] ^= 0x80;
		assert_int_equal(open_at(other, &data_csv, &sealed), -EIO);
	}
	buf_release(&sealed);
}

/* A blob moved to another row: each field of its place changed. */
static void test_other_place(void **state)
{
	const struct size_index_place view = {"agr-1", 3, "visits", 7,
					      "by_city"};
	const struct size_index_place others[] = {
	    {"agr-2", 3, "visits", 7, NULL},
	    {"agr-1", 2, "visits", 7, NULL},
	    {"agr-1", 4, "visits", 7, NULL},
	    {"agr-1", 3, "labs", 7, NULL},
	    {"agr-1", 3, "visits", 6, NULL},
	    {"agr-1", 3, "visits", 7, ""},
	    {"agr-1", 3, "visits", 7, "by_city"},
	};
	struct buf sealed = BUF_INIT, view_sealed = BUF_INIT;
	uint8_t key[KEY_LEN];

	(void)state;
	test_key(key, 8);
	seal(key, &data_csv, &sealed);
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		assert_int_equal(open_at(key, &others[i], &sealed), -EIO);
	/* a view's size index is bound to its name, and not data.csv's */
	seal(key, &view, &view_sealed);
	assert_int_equal(open_at(key, &view, &view_sealed), 0);
	assert_int_equal(open_at(key, &data_csv, &view_sealed), -EIO);
	assert_int_equal(open_at(key, &others[5], &view_sealed), -EIO);
	buf_release(&sealed);
	buf_release(&view_sealed);
}

static void test_size_key_is_derived(void **state)
{
	uint8_t pseudonym[KEY_LEN], a[KEY_LEN], b[KEY_LEN], c[KEY_LEN];

	(void)state;
	test_key(pseudonym, 9);
	assert_int_equal(size_key_derive(pseudonym, a), 0);
	assert_int_equal(size_key_derive(pseudonym, b), 0);
	assert_memory_equal(a, b, KEY_LEN);
	assert_memory_not_equal(a, pseudonym, KEY_LEN);
	pseudonym[0] ^= 1;
	assert_int_equal(size_key_derive(pseudonym, c), 0);
	assert_memory_not_equal(a, c, KEY_LEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_no_blocks),
	    cmocka_unit_test(test_blob_shows_no_figure),
	    cmocka_unit_test(test_fresh_nonce),
	    cmocka_unit_test(test_every_byte_altered),
	    cmocka_unit_test(test_cut_or_grown),
	    cmocka_unit_test(test_other_key),
	    cmocka_unit_test(test_other_place),
	    cmocka_unit_test(test_size_key_is_derived),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
