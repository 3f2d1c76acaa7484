/*
 * libFuzzer target for the block decoder of fs/store: store_open (footer,
 * sealed index), store_read_block (AES-256-GCM open, zstd decompress) and
 * the rowfmt parse that every served block goes through.
 *
 * LLVMFuzzerInitialize writes two real store files with a fixed test key:
 * one of four blocks of records, one with no block at all.  An input is an
 * edit script applied to one of them (flip, overwrite, copy, swap, insert
 * and cut bytes), so that the fuzzer starts from valid files it could never
 * forge itself.  Byte 0 picks the file, and whether the catalog's figures
 * (file id, blocks, rows, sizes) are the true ones or are taken from the
 * edited file, as an attacker who can also write the catalog but has no
 * key would do.
 *
 * Never crash, and never accept a tampered file: a block that decodes must
 * be exactly the block written, its rows must parse to exactly its bytes,
 * and a file that opens and whose every block decodes must be the file
 * written, byte for byte.  Byte 0 with bit 2 set instead feeds the rest to
 * rowfmt_next as the plain bytes of a block.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "csv.h"
#include "fileio.h"
#include "rowfmt.h"
#include "store.h"

#define NCOLS 3
#define NBLOCKS 4
#define FILE_MAX (64u * 1024)

#define FLAG_DERIVED 0x01 /* the catalog's figures come from the file */
#define FLAG_EMPTY 0x02	  /* edit the store of no block */
#define FLAG_ROWFMT 0x04  /* the rest is a block's plain bytes */

#define HEADER_ID_AT 16
#define FOOTER_LEN 40

struct original {
	uint8_t *bytes;
	size_t len;
	struct store_info info;
	struct buf rows[NBLOCKS]; /* each block's records, as written */
};

static struct original originals[2];
static uint8_t test_key[KEY_LEN];
static int edited_fd = -1;
static char edited_path[64];
static struct block_decoder *decoder;

static const char *const sample[][NCOLS] = {
    {"110101199003077777", "Li Wei", "2024-02-29"},
    {"", "O'Brien, \"Pat\"", "2025-01-01T08:00:00+08:00"},
    {"42", "张三", ""},
    {"-0.50", "line\nbreak", "1999-12-31"},
    {"0571-88886666", "", "Xihu"},
};

static void add_row(struct buf *rows, size_t n)
{
	struct csv_field f[NCOLS];

	for (size_t i = 0; i < NCOLS; i++) {
		const char *v = sample[n % 5][i];

		f[i].data = v;
		f[i].len = strlen(v);
		f[i].needs_quote = strpbrk(v, ",\"\r\n") != NULL;
	}
	if (rowfmt_append(rows, f, NCOLS))
		abort();
}

static void load_file(const char *path, struct original *o)
{
	int fd = open(path, O_RDONLY);
	struct stat st;

	if (fd < 0 || fstat(fd, &st))
		abort();
	o->len = (size_t)st.st_size;
	o->bytes = malloc(o->len);
	if (!o->bytes || pread_all(fd, o->bytes, o->len, 0))
		abort();
	close(fd);
}

/* Write a store of nblocks blocks (rows per block from counts). */
static void make_original(const char *dir, struct original *o,
			  const unsigned *counts, unsigned nblocks)
{
	struct store_writer *w;
	char path[256];

	snprintf(path, sizeof(path), "%s/%u.gvs", dir, nblocks);
	if (store_writer_open(&w, path, test_key, 1))
		abort();
	for (unsigned b = 0; b < nblocks; b++) {
		struct buf rows = BUF_INIT;

		for (unsigned r = 0; r < counts[b]; r++)
			add_row(&rows, b + r);
		if (buf_append(&o->rows[b], rows.data, rows.len) ||
		    store_writer_add_block(w, &rows, counts[b]))
			abort();
		buf_release(&rows);
	}
	if (store_writer_finish(w, &o->info))
		abort();
	load_file(path, o);
	unlink(path);
}

static void remove_edited(void)
{
	unlink(edited_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const unsigned counts[NBLOCKS] = {5, 40, 1, 12};
	char dir[] = "/tmp/govfs-fuzz-store.XXXXXX";

	(void)argc;
	(void)argv;
	for (size_t i = 0; i < KEY_LEN; i++)
		test_key[i] = (uint8_t)(i * 7 + 1);
	if (!mkdtemp(dir))
		abort();
	make_original(dir, &originals[0], counts, NBLOCKS);
	make_original(dir, &originals[1], counts, 0);
	rmdir(dir);
	/* The edited file lives in memory where there is a tmpfs. */
	snprintf(edited_path, sizeof(edited_path), "%s/govfs-fuzz-store.%d",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm", (int)getpid());
	edited_fd =
	    open(edited_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	decoder = block_decoder_new();
	if (edited_fd < 0 || !decoder)
		abort();
	atexit(remove_edited);
	return 0;
}

/* The edited file: bytes and length, at most FILE_MAX. */
struct edit {
	uint8_t bytes[FILE_MAX];
	size_t len;
	const uint8_t *in, *end; /* the script */
};

static bool take(struct edit *e, size_t n, uint32_t *out)
{
	uint32_t v = 0;

	if ((size_t)(e->end - e->in) < n)
		return false;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | *e->in++;
	*out = v;
	return true;
}

/* An offset into the file (0 if it is empty). */
static size_t at(const struct edit *e, uint32_t v)
{
	return e->len ? v % e->len : 0;
}

/* Apply one edit; false when the script is used up. */
static bool apply_one(struct edit *e)
{
	uint32_t op, a, b, n;

	if (!take(e, 1, &op))
		return false;
	switch (op % 6) {
	case 0: /* flip bits of one byte */
		if (!take(e, 2, &a) || !take(e, 1, &b) || !e->len)
			return false;
		e->bytes[at(e, a)] ^= (uint8_t)(b ? b : 1);
		return true;
	case 1: /* cut the file short */
		if (!take(e, 2, &a))
			return false;
		e->len = a % (e->len + 1);
		return true;
	case 2: /* insert n bytes of the script at a */
		if (!take(e, 2, &a) || !take(e, 1, &n) ||
		    (size_t)(e->end - e->in) < n || e->len + n > FILE_MAX)
			return false;
		a = (uint32_t)(a % (e->len + 1));
		memmove(e->bytes + a + n, e->bytes + a, e->len - a);
		memcpy(e->bytes + a, e->in, n);
		e->in += n;
		e->len += n;
		return true;
	case 3: /* copy n bytes from a over b (a block over another) */
	case 4: /* swap n bytes at a with n bytes at b */
		if (!take(e, 2, &a) || !take(e, 2, &b) || !take(e, 2, &n) ||
		    !e->len)
			return false;
		a = (uint32_t)at(e, a);
		b = (uint32_t)at(e, b);
		if (n > e->len - a)
			n = (uint32_t)(e->len - a);
		if (n > e->len - b)
			n = (uint32_t)(e->len - b);
		if (op % 6 == 3) {
			memmove(e->bytes + b, e->bytes + a, n);
		} else {
			for (uint32_t i = 0; i < n; i++) {
				uint8_t t = e->bytes[a + i];

				e->bytes[a + i] = e->bytes[b + i];
				e->bytes[b + i] = t;
			}
		}
		return true;
	default: /* overwrite with n bytes of the script at a */
		if (!take(e, 2, &a) || !take(e, 1, &n) ||
		    (size_t)(e->end - e->in) < n || !e->len)
			return false;
		a = (uint32_t)at(e, a);
		if (n > e->len - a)
			n = (uint32_t)(e->len - a);
		memcpy(e->bytes + a, e->in, n);
		e->in += n;
		return true;
	}
}

static uint64_t le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

/* The catalog's figures as the edited file claims them. */
static void derive_expect(const struct edit *e, struct store_info *expect)
{
	memset(expect, 0, sizeof(*expect));
	if (e->len >= HEADER_ID_AT + STORE_FILE_ID_LEN)
		memcpy(expect->file_id, e->bytes + HEADER_ID_AT,
		       STORE_FILE_ID_LEN);
	if (e->len >= FOOTER_LEN) {
		const uint8_t *footer = e->bytes + e->len - FOOTER_LEN;

		expect->nblocks = (uint32_t)le(footer + 8, 4);
		expect->nrows = le(footer + 16, 8);
		expect->raw_bytes = le(footer + 24, 8);
	}
	expect->file_bytes = e->len;
}

static bool same_info(const struct store_info *a, const struct store_info *b)
{
	return !memcmp(a->file_id, b->file_id, STORE_FILE_ID_LEN) &&
	       a->nblocks == b->nblocks && a->nrows == b->nrows &&
	       a->raw_bytes == b->raw_bytes && a->file_bytes == b->file_bytes;
}

/* A decoded block must be the one written, and parse row by row. */
static void check_block(const struct original *o, const struct store *s,
			uint32_t idx, const uint8_t *rows, size_t len)
{
	struct rowfmt_field f[NCOLS];
	size_t pos = 0;

	if (len != o->rows[idx].len || memcmp(rows, o->rows[idx].data, len))
		abort();
	for (uint32_t r = 0; r < s->blocks[idx].nrows; r++)
		if (rowfmt_next(rows, len, &pos, NCOLS, f))
			abort();
	if (pos != len)
		abort();
}

static void fuzz_file(const uint8_t *data, size_t size)
{
	static struct edit e;
	const struct original *o = &originals[data[0] & FLAG_EMPTY ? 1 : 0];
	struct store_info expect = o->info;
	struct store *s;
	uint32_t decoded = 0;
	const uint8_t *rows;
	size_t len;

	memcpy(e.bytes, o->bytes, o->len);
	e.len = o->len;
	e.in = data + 1;
	e.end = data + size;
	while (apply_one(&e))
		;
	if (data[0] & FLAG_DERIVED)
		derive_expect(&e, &expect);
	if (ftruncate(edited_fd, 0) || pwrite_all(edited_fd, e.bytes, e.len, 0))
		abort();
	if (store_open(&s, edited_path, test_key, &expect))
		return;
	if (!same_info(&s->info, &o->info))
		abort();
	for (uint32_t i = 0; i < s->info.nblocks; i++) {
		if (store_read_block(s, i, decoder, &rows, &len))
			continue;
		check_block(o, s, i, rows, len);
		decoded++;
	}
	if (store_read_block(s, s->info.nblocks, decoder, &rows, &len) != -EIO)
		abort();
	if (decoded == s->info.nblocks &&
	    (e.len != o->len || memcmp(e.bytes, o->bytes, o->len)))
		abort();
	store_close(s);
}

/* Arbitrary plain bytes through the row parser of a decoded block. */
static void fuzz_rowfmt(const uint8_t *data, size_t size)
{
	struct rowfmt_field f[16];
	size_t ncols, pos = 0, len;
	const uint8_t *block;

	if (size < 2)
		return;
	ncols = 1 + data[1] % 16;
	block = data + 2;
	len = size - 2;
	while (pos < len) {
		size_t before = pos;

		if (rowfmt_next(block, len, &pos, ncols, f))
			break;
		if (pos <= before || pos > len)
			abort();
		for (size_t i = 0; i < ncols; i++)
			if (f[i].len && (f[i].data < block ||
					 f[i].data + f[i].len > block + pos))
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & FLAG_ROWFMT)
		fuzz_rowfmt(data, size);
	else
		fuzz_file(data, size);
	return 0;
}
