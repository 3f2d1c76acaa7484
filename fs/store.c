/*
 * store: writing and reading sealed, compressed block files.  See store.h
 * for the layout; integers on disk are little-endian.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define STORE_MAGIC "GOVFSST1"
#define STORE_END_MAGIC "GOVFSEND"
#define STORE_FORMAT 1
#define HEADER_LEN 32
#define FOOTER_LEN 40
#define INDEX_ENTRY_LEN 32
#define ZSTD_LEVEL 1

struct store_writer {
	int fd;
	char *path;
	uint8_t key[KEY_LEN];
	struct store_info info;
	uint64_t offset;
	struct store_block_meta *blocks;
	size_t cap;
	ZSTD_CCtx *cctx;
	struct buf sealed;
};

struct block_decoder {
	ZSTD_DCtx *dctx;
	struct buf sealed;
	struct buf plain;
	struct buf raw;
};

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int pwrite_all(int fd, const void *data, size_t len, uint64_t off)
{
	const uint8_t *p = data;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int pread_all(int fd, void *data, size_t len, uint64_t off)
{
	uint8_t *p = data;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static void block_nonce(uint8_t nonce[AEAD_NONCE_LEN], uint32_t idx)
{
	memset(nonce, 0, AEAD_NONCE_LEN);
	put_u64(nonce + 4, idx);
}

/* What binds a block to its place: file, number, offset, sizes, rows. */
static size_t block_aad(uint8_t *aad, const uint8_t *file_id, uint32_t idx,
			const struct store_block_meta *m)
{
	memcpy(aad, "blk", 3);
	memcpy(aad + 3, file_id, STORE_FILE_ID_LEN);
	put_u32(aad + 19, idx);
	put_u64(aad + 23, m->offset);
	put_u64(aad + 31, m->first_row);
	put_u32(aad + 39, m->sealed_len);
	put_u32(aad + 43, m->raw_len);
	put_u32(aad + 47, m->nrows);
	return 51;
}

static size_t index_aad(uint8_t *aad, const struct store_info *info,
			uint64_t index_offset)
{
	memcpy(aad, "idx", 3);
	memcpy(aad + 3, info->file_id, STORE_FILE_ID_LEN);
	put_u32(aad + 19, info->nblocks);
	put_u64(aad + 23, info->nrows);
	put_u64(aad + 31, info->raw_bytes);
	put_u64(aad + 39, index_offset);
	return 47;
}

static void index_nonce(uint8_t nonce[AEAD_NONCE_LEN])
{
	memset(nonce, 0xff, AEAD_NONCE_LEN);
}

int store_writer_open(struct store_writer **out, const char *path,
		      const uint8_t key[KEY_LEN])
{
	struct store_writer *w = calloc(1, sizeof(*w));
	uint8_t header[HEADER_LEN] = {0};
	int rc;

	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->path = strdup(path);
	w->cctx = ZSTD_createCCtx();
	if (!w->path || !w->cctx) {
		rc = -ENOMEM;
		goto out_free;
	}
	memcpy(w->key, key, KEY_LEN);
	rc = random_bytes(w->info.file_id, STORE_FILE_ID_LEN);
	if (rc)
		goto out_free;
	w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		rc = -errno;
		goto out_free;
	}
	memcpy(header, STORE_MAGIC, 8);
	put_u32(header + 8, STORE_FORMAT);
	put_u32(header + 12, STORE_BLOCK_TARGET);
	memcpy(header + 16, w->info.file_id, STORE_FILE_ID_LEN);
	rc = pwrite_all(w->fd, header, sizeof(header), 0);
	if (rc)
		goto out_unlink;
	w->offset = HEADER_LEN;
	*out = w;
	return 0;

out_unlink:
	close(w->fd);
	unlink(path);
out_free:
	ZSTD_freeCCtx(w->cctx);
	free(w->path);
	free(w);
	return rc;
}

static int writer_grow_index(struct store_writer *w)
{
	size_t cap = w->cap ? w->cap * 2 : 1024;
	struct store_block_meta *b;

	if (w->info.nblocks < w->cap)
		return 0;
	b = realloc(w->blocks, cap * sizeof(*b));
	if (!b)
		return -ENOMEM;
	w->blocks = b;
	w->cap = cap;
	return 0;
}

int store_writer_add_block(struct store_writer *w, const uint8_t *rows,
			   size_t len, uint32_t nrows)
{
	size_t bound = ZSTD_compressBound(len);
	struct store_block_meta *m;
	uint8_t nonce[AEAD_NONCE_LEN];
	uint8_t aad[64];
	size_t clen, aad_len;
	int rc;

	if (len > UINT32_MAX / 2)
		return -EFBIG;
	rc = writer_grow_index(w);
	if (!rc)
		rc = buf_reserve(&w->sealed, 2 * bound + AEAD_TAG_LEN);
	if (rc)
		return rc;
	/* Compress into the upper half, seal into the lower. */
	clen = ZSTD_compressCCtx(w->cctx, w->sealed.data + bound + AEAD_TAG_LEN,
				 bound, rows, len, ZSTD_LEVEL);
	if (ZSTD_isError(clen))
		return -EIO;
	m = &w->blocks[w->info.nblocks];
	m->offset = w->offset;
	m->first_row = w->info.nrows;
	m->sealed_len = (uint32_t)clen;
	m->raw_len = (uint32_t)len;
	m->nrows = nrows;
	block_nonce(nonce, w->info.nblocks);
	aad_len = block_aad(aad, w->info.file_id, w->info.nblocks, m);
	rc = aead_seal(w->key, nonce, aad, aad_len,
		       w->sealed.data + bound + AEAD_TAG_LEN, clen,
		       w->sealed.data, w->sealed.data + clen);
	if (!rc)
		rc = pwrite_all(w->fd, w->sealed.data, clen + AEAD_TAG_LEN,
				w->offset);
	if (rc)
		return rc;
	w->offset += clen + AEAD_TAG_LEN;
	w->info.nblocks++;
	w->info.nrows += nrows;
	w->info.raw_bytes += len;
	return 0;
}

static void writer_free(struct store_writer *w)
{
	ZSTD_freeCCtx(w->cctx);
	buf_release(&w->sealed);
	free(w->blocks);
	free(w->path);
	memset(w->key, 0, KEY_LEN);
	free(w);
}

static int write_index_and_footer(struct store_writer *w)
{
	size_t ilen = (size_t)w->info.nblocks * INDEX_ENTRY_LEN;
	uint8_t *plain = calloc(1, ilen + 1);
	uint8_t *sealed = malloc(ilen + AEAD_TAG_LEN);
	uint8_t footer[FOOTER_LEN] = {0};
	uint8_t nonce[AEAD_NONCE_LEN], aad[64];
	uint64_t index_offset = w->offset;
	size_t aad_len;
	int rc;

	if (!plain || !sealed) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (uint32_t i = 0; i < w->info.nblocks; i++) {
		uint8_t *e = plain + (size_t)i * INDEX_ENTRY_LEN;

		put_u64(e, w->blocks[i].offset);
		put_u64(e + 8, w->blocks[i].first_row);
		put_u32(e + 16, w->blocks[i].sealed_len);
		put_u32(e + 20, w->blocks[i].raw_len);
		put_u32(e + 24, w->blocks[i].nrows);
	}
	index_nonce(nonce);
	aad_len = index_aad(aad, &w->info, index_offset);
	rc = aead_seal(w->key, nonce, aad, aad_len, plain, ilen, sealed,
		       sealed + ilen);
	if (!rc)
		rc = pwrite_all(w->fd, sealed, ilen + AEAD_TAG_LEN,
				index_offset);
	if (rc)
		goto out_free;
	put_u64(footer, index_offset);
	put_u32(footer + 8, w->info.nblocks);
	put_u64(footer + 16, w->info.nrows);
	put_u64(footer + 24, w->info.raw_bytes);
	memcpy(footer + 32, STORE_END_MAGIC, 8);
	rc = pwrite_all(w->fd, footer, sizeof(footer),
			index_offset + ilen + AEAD_TAG_LEN);
	w->info.file_bytes = index_offset + ilen + AEAD_TAG_LEN + FOOTER_LEN;
out_free:
	free(plain);
	free(sealed);
	return rc;
}

int store_writer_finish(struct store_writer *w, struct store_info *info)
{
	int rc = write_index_and_footer(w);

	if (!rc && fsync(w->fd))
		rc = -errno;
	if (close(w->fd) && !rc)
		rc = -errno;
	if (rc)
		unlink(w->path);
	else
		*info = w->info;
	writer_free(w);
	return rc;
}

void store_writer_abort(struct store_writer *w)
{
	close(w->fd);
	unlink(w->path);
	writer_free(w);
}

static int read_footer(struct store *s, const struct store_info *expect,
		       uint64_t *index_offset)
{
	uint8_t header[HEADER_LEN], footer[FOOTER_LEN];
	struct stat st;
	int rc;

	if (fstat(s->fd, &st))
		return -errno;
	if ((uint64_t)st.st_size != expect->file_bytes ||
	    st.st_size < HEADER_LEN + FOOTER_LEN)
		return -EIO;
	rc = pread_all(s->fd, header, sizeof(header), 0);
	if (!rc)
		rc = pread_all(s->fd, footer, sizeof(footer),
			       (uint64_t)st.st_size - FOOTER_LEN);
	if (rc)
		return rc;
	if (memcmp(header, STORE_MAGIC, 8) || get_u32(header + 8) != STORE_FORMAT ||
	    memcmp(header + 16, expect->file_id, STORE_FILE_ID_LEN) ||
	    memcmp(footer + 32, STORE_END_MAGIC, 8))
		return -EIO;
	*index_offset = get_u64(footer);
	s->info = *expect;
	if (get_u32(footer + 8) != expect->nblocks ||
	    get_u64(footer + 16) != expect->nrows ||
	    get_u64(footer + 24) != expect->raw_bytes ||
	    *index_offset + (uint64_t)expect->nblocks * INDEX_ENTRY_LEN +
			    AEAD_TAG_LEN + FOOTER_LEN !=
		    (uint64_t)st.st_size)
		return -EIO;
	return 0;
}

static int read_index(struct store *s, uint64_t index_offset)
{
	size_t ilen = (size_t)s->info.nblocks * INDEX_ENTRY_LEN;
	uint8_t *sealed = malloc(ilen + AEAD_TAG_LEN);
	uint8_t *plain = malloc(ilen + 1);
	uint8_t nonce[AEAD_NONCE_LEN], aad[64];
	uint64_t row = 0, offset = HEADER_LEN;
	int rc;

	s->blocks = calloc(s->info.nblocks + 1, sizeof(*s->blocks));
	if (!sealed || !plain || !s->blocks) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = pread_all(s->fd, sealed, ilen + AEAD_TAG_LEN, index_offset);
	if (rc)
		goto out_free;
	index_nonce(nonce);
	rc = aead_open(s->key, nonce, aad, index_aad(aad, &s->info, index_offset),
		       sealed, ilen, sealed + ilen, plain);
	if (rc)
		goto out_free;
	for (uint32_t i = 0; i < s->info.nblocks; i++) {
		const uint8_t *e = plain + (size_t)i * INDEX_ENTRY_LEN;
		struct store_block_meta *m = &s->blocks[i];

		m->offset = get_u64(e);
		m->first_row = get_u64(e + 8);
		m->sealed_len = get_u32(e + 16);
		m->raw_len = get_u32(e + 20);
		m->nrows = get_u32(e + 24);
		if (m->offset != offset || m->first_row != row) {
			rc = -EIO;
			goto out_free;
		}
		offset += (uint64_t)m->sealed_len + AEAD_TAG_LEN;
		row += m->nrows;
	}
	if (offset != index_offset || row != s->info.nrows)
		rc = -EIO;
out_free:
	free(sealed);
	free(plain);
	return rc;
}

int store_open(struct store **out, const char *path,
	       const uint8_t key[KEY_LEN], const struct store_info *expect)
{
	struct store *s = calloc(1, sizeof(*s));
	uint64_t index_offset = 0;
	int rc;

	if (!s)
		return -ENOMEM;
	memcpy(s->key, key, KEY_LEN);
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		rc = -errno;
		free(s);
		return rc;
	}
	rc = read_footer(s, expect, &index_offset);
	if (!rc)
		rc = read_index(s, index_offset);
	if (rc) {
		store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	close(s->fd);
	free(s->blocks);
	memset(s->key, 0, KEY_LEN);
	free(s);
}

struct block_decoder *block_decoder_new(void)
{
	struct block_decoder *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->dctx = ZSTD_createDCtx();
	if (!d->dctx) {
		free(d);
		return NULL;
	}
	return d;
}

void block_decoder_free(struct block_decoder *d)
{
	if (!d)
		return;
	ZSTD_freeDCtx(d->dctx);
	buf_release(&d->sealed);
	buf_release(&d->plain);
	buf_release(&d->raw);
	free(d);
}

int store_read_block(const struct store *s, uint32_t idx,
		     struct block_decoder *d, const uint8_t **rows, size_t *len)
{
	const struct store_block_meta *m;
	uint8_t nonce[AEAD_NONCE_LEN], aad[64];
	size_t n;
	int rc;

	if (idx >= s->info.nblocks)
		return -EIO;
	m = &s->blocks[idx];
	d->sealed.len = d->plain.len = d->raw.len = 0;
	rc = buf_reserve(&d->sealed, (size_t)m->sealed_len + AEAD_TAG_LEN);
	if (!rc)
		rc = buf_reserve(&d->plain, m->sealed_len + 1);
	if (!rc)
		rc = buf_reserve(&d->raw, (size_t)m->raw_len + 1);
	if (!rc)
		rc = pread_all(s->fd, d->sealed.data,
			       (size_t)m->sealed_len + AEAD_TAG_LEN, m->offset);
	if (rc)
		return rc == -ENOMEM ? rc : -EIO;
	block_nonce(nonce, idx);
	rc = aead_open(s->key, nonce, aad, block_aad(aad, s->info.file_id, idx, m),
		       d->sealed.data, m->sealed_len,
		       d->sealed.data + m->sealed_len, d->plain.data);
	if (rc)
		return -EIO;
	n = ZSTD_decompressDCtx(d->dctx, d->raw.data, m->raw_len + 1,
				d->plain.data, m->sealed_len);
	if (ZSTD_isError(n) || n != m->raw_len)
		return -EIO;
	*rows = d->raw.data;
	*len = n;
	return 0;
}
