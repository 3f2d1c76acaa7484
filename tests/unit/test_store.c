/*
 * Unit tests of fs/store: blocks written and read back byte for byte
 * (empty, tiny, larger than the block target, incompressible), the empty
 * store, and every way a file can disagree with what the catalog recorded:
 * flipped bytes anywhere, truncation, growth, swapped or transplanted
 * blocks, another key, another expected store_info.  Whatever is done to
 * the file, the store answers -EIO or the original bytes, never others.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"

#include "keys.h"
#include "rowfmt.h"
#include "store.h"

/*
 * Layout sizes of store.c's format 1, used only to aim tampering at one
 * part of the file; the exhaustive test below does not depend on them.
 */
#define HEADER_LEN 32
#define FOOTER_LEN 40
#define INDEX_ENTRY_LEN 32

#define MAX_BLOCKS 8

/* One test's scratch directory, key and the blocks it wrote. */
struct fixture {
	char dir[64];
	char path[128];
	uint8_t key[KEY_LEN];
	size_t nblocks;
	uint8_t *data[MAX_BLOCKS];
	size_t len[MAX_BLOCKS];
	uint32_t nrows[MAX_BLOCKS];
	struct store_info info;
};

static int fixture_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/govfs-store-XXXXXX");
	if (!mkdtemp(fx->dir) || random_bytes(fx->key, KEY_LEN)) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/v1.store", fx->dir);
	*state = fx;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *fx = *state;
	int rc = scratch_remove(fx->dir);
	size_t i;

	for (i = 0; i < fx->nblocks; i++)
		free(fx->data[i]);
	free(fx);
	return rc;
}

enum fill { FILL_TEXT, FILL_RANDOM, FILL_BYTE };

/* Queue a block of len bytes to be written by write_store. */
static void add_block(struct fixture *fx, size_t len, enum fill fill,
		      uint8_t byte, uint32_t nrows)
{
	uint8_t *p = malloc(len ? len : 1);
	size_t i;

	assert_true(fx->nblocks < MAX_BLOCKS);
	assert_non_null(p);
	if (fill == FILL_RANDOM)
		assert_int_equal(random_bytes(p, len), 0);
	for (i = 0; fill != FILL_RANDOM && i < len; i++)
		p[i] = fill == FILL_BYTE ? byte
					 : (uint8_t)("patient,visit,Xihu,"
						     "2024-03-05\n"[i % 30] +
						     (i / 997) % 3);
	fx->data[fx->nblocks] = p;
	fx->len[fx->nblocks] = len;
	fx->nrows[fx->nblocks] = nrows;
	fx->nblocks++;
}

/* Queue one block on w: the writer takes a buffer holding a copy. */
static int queue_block(struct store_writer *w, const uint8_t *data, size_t len,
		       uint32_t nrows)
{
	struct buf rows = BUF_INIT;
	int rc = buf_append(&rows, data, len);

	if (!rc)
		rc = store_writer_add_block(w, &rows, nrows);
	/* What the writer handed back is empty and ours to free. */
	if (!rc && rows.len != 0)
		rc = -EPROTO;
	buf_release(&rows);
	return rc;
}

static void write_store_at(struct fixture *fx, const char *path,
			   const uint8_t key[KEY_LEN], unsigned nworkers,
			   struct store_info *info)
{
	struct store_writer *w = NULL;
	size_t i;

	assert_int_equal(store_writer_open(&w, path, key, nworkers), 0);
	for (i = 0; i < fx->nblocks; i++)
		assert_int_equal(
		    queue_block(w, fx->data[i], fx->len[i], fx->nrows[i]), 0);
	assert_int_equal(store_writer_finish(w, info), 0);
}

static void write_store(struct fixture *fx)
{
	write_store_at(fx, fx->path, fx->key, 2, &fx->info);
}

/*
 * Open path under key and expect, then read every block.  Returns 0 if all
 * of it read back as written, -EIO if the open or any block read refused.
 * A block that reads must be byte-exact: that is asserted, whatever the
 * caller expects.
 */
static int read_back(const struct fixture *fx, const char *path,
		     const uint8_t key[KEY_LEN],
		     const struct store_info *expect)
{
	struct store *s = NULL;
	struct block_decoder *d;
	int rc, result = 0;
	size_t i;

	rc = store_open(&s, path, key, expect);
	if (rc) {
		assert_int_equal(rc, -EIO);
		return rc;
	}
	d = block_decoder_new();
	assert_non_null(d);
	for (i = 0; i < fx->nblocks; i++) {
		const uint8_t *rows = NULL;
		size_t len = 0;

		rc = store_read_block(s, (uint32_t)i, d, &rows, &len);
		if (rc) {
			assert_int_equal(rc, -EIO);
			result = -EIO;
			continue;
		}
		assert_int_equal(len, fx->len[i]);
		if (len)
			assert_memory_equal(rows, fx->data[i], len);
	}
	block_decoder_free(d);
	store_close(s);
	return result;
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static uint8_t read_byte(const char *path, uint64_t off)
{
	int fd = open(path, O_RDONLY);
	uint8_t c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
	close(fd);
	return c;
}

static void write_byte(const char *path, uint64_t off, uint8_t c)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

/* Flip bits of the byte at off, check the store refuses, flip back. */
static void expect_flip_detected(struct fixture *fx, uint64_t off, uint8_t bits)
{
	uint8_t c = read_byte(fx->path, off);

	write_byte(fx->path, off, c ^ bits);
	if (read_back(fx, fx->path, fx->key, &fx->info) != -EIO)
		fail_msg(
		    "flipping 0x%02x at offset %llu of %llu went unnoticed",
		    bits, (unsigned long long)off,
		    (unsigned long long)fx->info.file_bytes);
	write_byte(fx->path, off, c);
	assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info), 0);
}

/* Three blocks of different kinds, as most tamper tests use. */
static void write_small_store(struct fixture *fx)
{
	add_block(fx, 120, FILL_TEXT, 0, 3);
	add_block(fx, 64, FILL_RANDOM, 0, 1);
	add_block(fx, 64, FILL_RANDOM, 0, 2);
	write_store(fx);
}

/* The open store's block table, for aiming at a block or the index. */
static void block_table(struct fixture *fx, struct store_block_meta *out)
{
	struct store *s = NULL;

	assert_int_equal(store_open(&s, fx->path, fx->key, &fx->info), 0);
	memcpy(out, s->blocks, fx->nblocks * sizeof(*out));
	store_close(s);
}

static void test_round_trip(void **state)
{
	struct fixture *fx = *state;
	struct store *s = NULL;
	struct block_decoder *d;
	uint64_t rows = 0, raw = 0;
	struct stat st;
	size_t i;

	add_block(fx, 1, FILL_BYTE, 'x', 1);
	add_block(fx, 5000, FILL_TEXT, 0, 100);
	add_block(fx, STORE_BLOCK_TARGET, FILL_TEXT, 0, 1000);
	add_block(fx, 3 * STORE_BLOCK_TARGET + 7, FILL_RANDOM, 0, 7);
	add_block(fx, 0, FILL_BYTE, 0, 0);
	add_block(fx, 100000, FILL_BYTE, 0, 50000);
	add_block(fx, 333, FILL_RANDOM, 0, 4);
	write_store(fx);
	for (i = 0; i < fx->nblocks; i++) {
		rows += fx->nrows[i];
		raw += fx->len[i];
	}
	assert_int_equal(fx->info.nblocks, fx->nblocks);
	assert_int_equal(fx->info.nrows, rows);
	assert_int_equal(fx->info.raw_bytes, raw);
	assert_int_equal(lstat(fx->path, &st), 0);
	assert_int_equal(fx->info.file_bytes, (uint64_t)st.st_size);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* Compressible blocks are stored compressed. */
	assert_true(fx->info.file_bytes < raw);

	assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info), 0);

	/* Any order, one decoder reused, and past the end refused. */
	assert_int_equal(store_open(&s, fx->path, fx->key, &fx->info), 0);
	d = block_decoder_new();
	assert_non_null(d);
	for (i = fx->nblocks; i-- > 0;) {
		const uint8_t *p = NULL;
		size_t len = 0;

		assert_int_equal(store_read_block(s, (uint32_t)i, d, &p, &len),
				 0);
		assert_int_equal(len, fx->len[i]);
		if (len)
			assert_memory_equal(p, fx->data[i], len);
		assert_int_equal(s->blocks[i].nrows, fx->nrows[i]);
		assert_int_equal(s->blocks[i].raw_len, fx->len[i]);
	}
	{
		const uint8_t *p = NULL;
		size_t len = 0;

		assert_int_equal(
		    store_read_block(s, (uint32_t)fx->nblocks, d, &p, &len),
		    -EIO);
		assert_int_equal(store_read_block(s, UINT32_MAX, d, &p, &len),
				 -EIO);
	}
	block_decoder_free(d);
	store_close(s);
}

/* Records as ingest writes them come back as they went in. */
static void test_round_trip_records(void **state)
{
	struct fixture *fx = *state;
	struct buf rows = BUF_INIT;
	const struct csv_field f[3] = {
	    {"p1", 2, false}, {"a,b", 3, true}, {"", 0, false}};
	uint32_t i;

	for (i = 0; i < 500; i++)
		assert_int_equal(rowfmt_append(&rows, f, 3), 0);
	add_block(fx, rows.len, FILL_BYTE, 0, 500);
	memcpy(fx->data[0], rows.data, rows.len);
	write_store(fx);
	assert_int_equal(fx->info.nrows, 500);
	assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info), 0);
	buf_release(&rows);
}

static void test_empty_store(void **state)
{
	struct fixture *fx = *state;
	struct store *s = NULL;
	struct block_decoder *d;
	struct store_info bad;
	const uint8_t *p = NULL;
	size_t len = 0;

	write_store(fx);
	assert_int_equal(fx->info.nblocks, 0);
	assert_int_equal(fx->info.nrows, 0);
	assert_int_equal(fx->info.raw_bytes, 0);
	assert_int_equal(fx->info.file_bytes, file_size(fx->path));
	assert_int_equal(store_open(&s, fx->path, fx->key, &fx->info), 0);
	d = block_decoder_new();
	assert_non_null(d);
	assert_int_equal(store_read_block(s, 0, d, &p, &len), -EIO);
	block_decoder_free(d);
	store_close(s);

	/* Even an empty index is sealed: another key or count is refused. */
	bad = fx->info;
	bad.nblocks = 1;
	assert_int_equal(read_back(fx, fx->path, fx->key, &bad), -EIO);
	fx->key[0] ^= 1;
	assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info), -EIO);
}

static void test_writer_refuses_existing_and_abort_removes(void **state)
{
	struct fixture *fx = *state;
	struct store_writer *w = NULL;
	char path[160];

	write_store(fx);
	assert_int_equal(store_writer_open(&w, fx->path, fx->key, 1), -EEXIST);
	assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info), 0);

	snprintf(path, sizeof(path), "%s/aborted.store", fx->dir);
	assert_int_equal(store_writer_open(&w, path, fx->key, 2), 0);
	assert_int_equal(queue_block(w, (const uint8_t *)"abc", 3, 1), 0);
	store_writer_abort(w);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_flip_in_block_detected(void **state)
{
	struct fixture *fx = *state;
	struct store_block_meta b[MAX_BLOCKS];
	size_t i;

	write_small_store(fx);
	block_table(fx, b);
	for (i = 0; i < fx->nblocks; i++) {
		uint64_t end = b[i].offset + b[i].sealed_len + AEAD_TAG_LEN;

		/* First byte, middle, first and last byte of the tag. */
		expect_flip_detected(fx, b[i].offset, 0x01);
		expect_flip_detected(fx, b[i].offset + b[i].sealed_len / 2,
				     0x80);
		expect_flip_detected(fx, end - AEAD_TAG_LEN, 0x01);
		expect_flip_detected(fx, end - 1, 0xff);
	}
}

static void test_flip_in_index_detected(void **state)
{
	struct fixture *fx = *state;
	struct store_block_meta b[MAX_BLOCKS];
	uint64_t index, end;

	write_small_store(fx);
	block_table(fx, b);
	index = b[fx->nblocks - 1].offset + b[fx->nblocks - 1].sealed_len +
		AEAD_TAG_LEN;
	end = fx->info.file_bytes - FOOTER_LEN;
	assert_int_equal(end - index,
			 fx->nblocks * INDEX_ENTRY_LEN + AEAD_TAG_LEN);
	for (uint64_t off = index; off < end; off++)
		expect_flip_detected(fx, off, 0x01);
}

static void test_flip_in_footer_detected(void **state)
{
	struct fixture *fx = *state;
	uint64_t footer;

	write_small_store(fx);
	footer = fx->info.file_bytes - FOOTER_LEN;
	expect_flip_detected(fx, footer, 0x01);	     /* index offset */
	expect_flip_detected(fx, footer + 7, 0x80);  /* its top byte */
	expect_flip_detected(fx, footer + 8, 0x01);  /* block count */
	expect_flip_detected(fx, footer + 16, 0x01); /* row count */
	expect_flip_detected(fx, footer + 24, 0x01); /* raw bytes */
	expect_flip_detected(fx, footer + 32, 0x01); /* end magic */
	expect_flip_detected(fx, fx->info.file_bytes - 1, 0x01);
}

static void test_flip_in_header_detected(void **state)
{
	struct fixture *fx = *state;
	uint64_t off;

	write_small_store(fx);
	for (off = 0; off < 8; off++) /* magic */
		expect_flip_detected(fx, off, 0x01);
	expect_flip_detected(fx, 8, 0x01);	/* format */
	for (off = 16; off < HEADER_LEN; off++) /* file id */
		expect_flip_detected(fx, off, 0x01);
}

/*
 * Every byte of the file, each of three bit patterns: the store either
 * refuses or serves exactly what was written (read_back asserts the
 * latter).  Returns how many offsets went unnoticed, listed in where.
 */
static size_t unnoticed_flips(struct fixture *fx, uint64_t *where, size_t max)
{
	static const uint8_t patterns[] = {0x01, 0x80, 0xff};
	size_t n = 0;

	for (uint64_t off = 0; off < fx->info.file_bytes; off++) {
		uint8_t c = read_byte(fx->path, off);
		bool noticed = true;

		for (size_t p = 0; p < sizeof(patterns); p++) {
			write_byte(fx->path, off, c ^ patterns[p]);
			if (read_back(fx, fx->path, fx->key, &fx->info) == 0)
				noticed = false;
		}
		write_byte(fx->path, off, c);
		if (!noticed && n < max)
			where[n++] = off;
	}
	assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info), 0);
	return n;
}

static void test_any_flip_never_serves_wrong_bytes(void **state)
{
	struct fixture *fx = *state;
	uint64_t where[64];
	size_t i, n;

	write_small_store(fx);
	n = unnoticed_flips(fx, where, 64);
	/* Every byte of the file is checked: no change may go unnoticed. */
	for (i = 0; i < n; i++)
		fail_msg("a change at offset %llu of %llu went unnoticed",
			 (unsigned long long)where[i],
			 (unsigned long long)fx->info.file_bytes);
}

static void test_truncated_detected(void **state)
{
	struct fixture *fx = *state;
	uint64_t size, cuts[8];
	size_t i;

	write_small_store(fx);
	size = fx->info.file_bytes;
	cuts[0] = size - 1;
	cuts[1] = size - FOOTER_LEN;
	cuts[2] = size - FOOTER_LEN - 1;
	cuts[3] = HEADER_LEN + FOOTER_LEN;
	cuts[4] = HEADER_LEN;
	cuts[5] = 1;
	cuts[6] = 0;
	cuts[7] = size / 2;
	for (i = 0; i < 8; i++) {
		struct store_info told = fx->info;

		assert_int_equal(truncate(fx->path, (off_t)cuts[i]), 0);
		/* Whether the catalog's size is kept or made to match. */
		assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info),
				 -EIO);
		told.file_bytes = cuts[i];
		assert_int_equal(read_back(fx, fx->path, fx->key, &told), -EIO);
		/* Restore by rewriting: a new file id each time. */
		assert_int_equal(unlink(fx->path), 0);
		write_store(fx);
		size = fx->info.file_bytes;
	}
}

static void test_grown_file_detected(void **state)
{
	struct fixture *fx = *state;
	struct store_info told;
	int fd;

	write_small_store(fx);
	fd = open(fx->path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\0", 1), 1);
	close(fd);
	assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info), -EIO);
	told = fx->info;
	told.file_bytes++;
	assert_int_equal(read_back(fx, fx->path, fx->key, &told), -EIO);
}

static void copy_range(const char *from, uint64_t from_off, const char *to,
		       uint64_t to_off, size_t len)
{
	uint8_t *tmp = malloc(len);
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY);

	assert_non_null(tmp);
	assert_true(in >= 0 && out >= 0);
	assert_int_equal(pread(in, tmp, len, (off_t)from_off), (ssize_t)len);
	assert_int_equal(pwrite(out, tmp, len, (off_t)to_off), (ssize_t)len);
	close(in);
	close(out);
	free(tmp);
}

static void copy_file(const char *from, const char *to)
{
	int fd = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600);

	assert_true(fd >= 0);
	close(fd);
	copy_range(from, 0, to, 0, (size_t)file_size(from));
}

static void test_swapped_blocks_detected(void **state)
{
	struct fixture *fx = *state;
	struct store_block_meta b[MAX_BLOCKS];
	char copy[160];
	size_t len;

	write_small_store(fx);
	block_table(fx, b);
	/* Blocks 1 and 2 are random bytes of one length: same sealed size. */
	assert_int_equal(b[1].sealed_len, b[2].sealed_len);
	len = b[1].sealed_len + AEAD_TAG_LEN;
	snprintf(copy, sizeof(copy), "%s/copy.store", fx->dir);
	copy_file(fx->path, copy);
	copy_range(copy, b[1].offset, fx->path, b[2].offset, len);
	copy_range(copy, b[2].offset, fx->path, b[1].offset, len);
	assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info), -EIO);
	/* Block 0 is untouched and still reads; 1 and 2 both refuse. */
	{
		struct store *s = NULL;
		struct block_decoder *d = block_decoder_new();
		const uint8_t *p;
		size_t n;

		assert_non_null(d);
		assert_int_equal(store_open(&s, fx->path, fx->key, &fx->info),
				 0);
		assert_int_equal(store_read_block(s, 0, d, &p, &n), 0);
		assert_int_equal(n, fx->len[0]);
		assert_memory_equal(p, fx->data[0], n);
		assert_int_equal(store_read_block(s, 1, d, &p, &n), -EIO);
		assert_int_equal(store_read_block(s, 2, d, &p, &n), -EIO);
		block_decoder_free(d);
		store_close(s);
	}
	/* Swapping back restores the file. */
	copy_range(copy, 0, fx->path, 0, (size_t)fx->info.file_bytes);
	assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info), 0);
}

/* A block, or a whole file, from another store under the same key. */
static void test_transplant_from_other_store_detected(void **state)
{
	struct fixture *fx = *state;
	struct store_block_meta b[MAX_BLOCKS], ob[MAX_BLOCKS];
	struct store_info other;
	char path[160];
	struct store *s = NULL;

	write_small_store(fx);
	snprintf(path, sizeof(path), "%s/v2.store", fx->dir);
	write_store_at(fx, path, fx->key, 3, &other);
	/* Same contents, same sizes, another file id. */
	assert_int_equal(other.file_bytes, fx->info.file_bytes);
	assert_memory_not_equal(other.file_id, fx->info.file_id,
				STORE_FILE_ID_LEN);
	assert_int_equal(read_back(fx, path, fx->key, &other), 0);
	/* The other file under this file's catalog entry. */
	assert_int_equal(read_back(fx, path, fx->key, &fx->info), -EIO);
	/* Told the other id but with this file's contents. */
	assert_int_equal(read_back(fx, fx->path, fx->key, &other), -EIO);

	/* Block 1 of the other file put in place of this file's block 1. */
	assert_int_equal(store_open(&s, path, fx->key, &other), 0);
	memcpy(ob, s->blocks, fx->nblocks * sizeof(*ob));
	store_close(s);
	block_table(fx, b);
	assert_int_equal(ob[1].offset, b[1].offset);
	assert_int_equal(ob[1].sealed_len, b[1].sealed_len);
	copy_range(path, ob[1].offset, fx->path, b[1].offset,
		   b[1].sealed_len + AEAD_TAG_LEN);
	assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info), -EIO);
}

static void test_wrong_key_detected(void **state)
{
	struct fixture *fx = *state;
	uint8_t key[KEY_LEN];

	write_small_store(fx);
	memcpy(key, fx->key, KEY_LEN);
	key[KEY_LEN - 1] ^= 0x01;
	assert_int_equal(read_back(fx, fx->path, key, &fx->info), -EIO);
	assert_int_equal(random_bytes(key, KEY_LEN), 0);
	assert_int_equal(read_back(fx, fx->path, key, &fx->info), -EIO);
	assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info), 0);
}

/* Write the little-endian n-byte v at off of path. */
static void patch_le(const char *path, uint64_t off, uint64_t v, size_t n)
{
	uint8_t b[8];
	int fd = open(path, O_WRONLY);

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, b, n, (off_t)off), (ssize_t)n);
	close(fd);
}

/*
 * A footer (and a catalog row to match: neither is sealed) claiming 2^32-1
 * blocks, its index offset chosen so that the size check wraps around to
 * the true size: refused from the figures alone, before they size any
 * allocation (it was 137 GB).
 */
static void test_footer_claiming_too_many_blocks(void **state)
{
	struct fixture *fx = *state;
	struct store_info claimed;
	uint64_t size, footer;

	write_small_store(fx);
	size = fx->info.file_bytes;
	footer = size - 40;
	claimed = fx->info;
	claimed.nblocks = UINT32_MAX;
	patch_le(fx->path, footer + 8, claimed.nblocks, 4);
	patch_le(fx->path, footer,
		 size - 40 - 16 - (uint64_t)claimed.nblocks * 32, 8);
	assert_int_equal(read_back(fx, fx->path, fx->key, &claimed), -EIO);
}

/* A link in the store's place is refused, wherever it points. */
static void test_symlink_refused(void **state)
{
	struct fixture *fx = *state;
	char link[160];
	struct store *s;

	write_small_store(fx);
	snprintf(link, sizeof(link), "%s/link.store", fx->dir);
	assert_int_equal(symlink(fx->path, link), 0);
	assert_int_equal(store_open(&s, link, fx->key, &fx->info), -ELOOP);
	assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info), 0);
}

static void test_wrong_expected_info_detected(void **state)
{
	struct fixture *fx = *state;
	struct store_info bad;
	size_t i;

	write_small_store(fx);
	bad = fx->info;
	bad.nblocks--;
	assert_int_equal(read_back(fx, fx->path, fx->key, &bad), -EIO);
	bad = fx->info;
	bad.nblocks++;
	assert_int_equal(read_back(fx, fx->path, fx->key, &bad), -EIO);
	bad = fx->info;
	bad.nrows--;
	assert_int_equal(read_back(fx, fx->path, fx->key, &bad), -EIO);
	bad = fx->info;
	bad.nrows++;
	assert_int_equal(read_back(fx, fx->path, fx->key, &bad), -EIO);
	bad = fx->info;
	bad.raw_bytes++;
	assert_int_equal(read_back(fx, fx->path, fx->key, &bad), -EIO);
	bad = fx->info;
	bad.file_bytes--;
	assert_int_equal(read_back(fx, fx->path, fx->key, &bad), -EIO);
	bad = fx->info;
	bad.file_bytes++;
	assert_int_equal(read_back(fx, fx->path, fx->key, &bad), -EIO);
	for (i = 0; i < STORE_FILE_ID_LEN; i++) {
		bad = fx->info;
		bad.file_id[i] ^= 0x01;
		assert_int_equal(read_back(fx, fx->path, fx->key, &bad), -EIO);
	}
	assert_int_equal(read_back(fx, fx->path, fx->key, &fx->info), 0);
}

/* Block i of the stress test: sizes and compressibility vary widely. */
static size_t stress_block(uint32_t i, uint8_t *out, size_t max)
{
	size_t len = (size_t)((i * 7919u) % 40000u) % max;
	uint32_t x = i * 2654435761u + 1;
	size_t j;

	for (j = 0; j < len; j++) {
		if (i % 3 == 0) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			out[j] = (uint8_t)x;
		} else {
			out[j] = (uint8_t)('a' + (i + j / 64) % 26);
		}
	}
	return len;
}

/*
 * Write nblocks stress blocks with nworkers, read them back and compare.
 * Runs in a child without cmocka: 0 ok, 1 writer failed, 2 reader
 * failed, 3 wrong bytes or order.
 */
static int stress_child(const char *path, const uint8_t key[KEY_LEN],
			unsigned nworkers, uint32_t nblocks)
{
	static uint8_t want[40000];
	struct store_writer *w = NULL;
	struct store_info info;
	struct store *s = NULL;
	struct block_decoder *d;
	uint32_t i;

	if (store_writer_open(&w, path, key, nworkers))
		return 1;
	for (i = 0; i < nblocks; i++) {
		size_t len = stress_block(i, want, sizeof(want));

		if (queue_block(w, want, len, i % 5 + 1)) {
			store_writer_abort(w);
			return 1;
		}
	}
	if (store_writer_finish(w, &info) || info.nblocks != nblocks)
		return 1;
	if (store_open(&s, path, key, &info))
		return 2;
	d = block_decoder_new();
	if (!d)
		return 2;
	for (i = 0; i < nblocks; i++) {
		size_t len = stress_block(i, want, sizeof(want));
		const uint8_t *rows;
		size_t got;

		if (store_read_block(s, i, d, &rows, &got))
			return 2;
		if (got != len || (len && memcmp(rows, want, len)) ||
		    s->blocks[i].nrows != i % 5 + 1)
			return 3;
	}
	block_decoder_free(d);
	store_close(s);
	return 0;
}

/*
 * Many blocks of uneven cost through every worker count: the file holds
 * them in the order they were queued, and the writer finishes (a hang is
 * killed after 60 s and fails the test).
 */
static void test_many_blocks_any_worker_count(void **state)
{
	static const unsigned workers[] = {0, 1, 2, 3, 4, 8, 100};
	struct fixture *fx = *state;
	size_t k;

	for (k = 0; k < sizeof(workers) / sizeof(workers[0]); k++) {
		char path[160];
		int status = 0, waited_ms = 0;
		pid_t pid;

		snprintf(path, sizeof(path), "%s/stress-%u.store", fx->dir,
			 workers[k]);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			_exit(stress_child(path, fx->key, workers[k], 400));
		while (waitpid(pid, &status, WNOHANG) == 0 &&
		       waited_ms < 60000) {
			const struct timespec ms = {0, 1000000};

			nanosleep(&ms, NULL);
			waited_ms++;
		}
		if (waited_ms >= 60000) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("writing 400 blocks with %u workers hung",
				 workers[k]);
		}
		assert_true(WIFEXITED(status));
		if (WEXITSTATUS(status) != 0)
			fail_msg("%u workers: child failed with %d", workers[k],
				 WEXITSTATUS(status));
	}
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fixture_setup, fixture_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_round_trip),
	    T(test_round_trip_records),
	    T(test_empty_store),
	    T(test_writer_refuses_existing_and_abort_removes),
	    T(test_flip_in_block_detected),
	    T(test_flip_in_index_detected),
	    T(test_flip_in_footer_detected),
	    T(test_flip_in_header_detected),
	    T(test_any_flip_never_serves_wrong_bytes),
	    T(test_truncated_detected),
	    T(test_grown_file_detected),
	    T(test_swapped_blocks_detected),
	    T(test_transplant_from_other_store_detected),
	    T(test_wrong_key_detected),
	    T(test_symlink_refused),
	    T(test_footer_claiming_too_many_blocks),
	    T(test_wrong_expected_info_detected),
	    T(test_many_blocks_any_worker_count),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
