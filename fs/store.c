/*
 * store: writing and reading sealed, compressed block files.  See store.h
 * for the layout; integers on disk are little-endian.
 */
#include "store.h"

#include "aead.h"
#include "byteorder.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>
#include <stdbool.h>
#include <zstd.h>

#define STORE_MAGIC "GOVFSST1"
#define STORE_END_MAGIC "GOVFSEND"
#define STORE_FORMAT 1
#define HEADER_LEN 32
#define FOOTER_LEN 40
#define INDEX_ENTRY_LEN 32
#define ZSTD_LEVEL 1

enum slot_state {
	SLOT_FREE,
	SLOT_READY,  /* rows waiting for a worker */
	SLOT_SEALED, /* sealed, waiting for its turn to be written */
};

/* One block on its way through the pipeline. */
struct slot {
	enum slot_state state;
	struct buf rows;
	struct buf sealed;
	struct store_block_meta meta;
	uint32_t idx;
};

/*
 * The caller fills slots; workers compress and seal them in parallel and
 * append them to the file strictly in block order.
 */
struct store_writer {
	int fd;
	char *path;
	uint8_t key[KEY_LEN];
	struct store_info info; /* blocks written so far */
	uint64_t offset;
	struct store_block_meta *blocks;
	size_t cap;

	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct slot slots[STORE_MAX_WORKERS * 2];
	unsigned nslots;
	uint32_t submitted; /* blocks handed to the pipeline */
	uint64_t submitted_rows;
	int error; /* first failure, sticky */
	bool closing;
	bool temporary; /* not fsynced */
	pthread_t workers[STORE_MAX_WORKERS];
	unsigned nworkers;
};

struct block_decoder {
	ZSTD_DCtx *dctx;
	struct buf sealed; /* a block as read, then opened in place */
	struct buf raw;
};

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

#ifdef GOVFS_BENCH_CRYPT_OFF
/*
 * The benchmark's build without encryption at rest (meson option
 * bench_crypt_off, never deployed): blocks are stored compressed but in
 * clear, with a zeroed tag, and read back unchecked, to measure what
 * sealing costs.
 */
static int seal_block(const struct store_writer *w, const struct slot *sl,
		      const uint8_t *compressed, size_t len, uint8_t *out)
{
	(void)w;
	(void)sl;
	memcpy(out, compressed, len);
	memset(out + len, 0, AEAD_TAG_LEN);
	return 0;
}

static int open_block(const struct store *s, uint32_t idx,
		      struct block_decoder *d, const uint8_t **compressed)
{
	(void)s;
	(void)idx;
	*compressed = d->sealed.data;
	return 0;
}
#else
static void block_nonce(uint8_t nonce[AEAD_NONCE_LEN], uint32_t idx)
{
	memset(nonce, 0, AEAD_NONCE_LEN);
	put_u64(nonce + 4, idx);
}

/*
 * What binds a block to its place: file, number, rows, sizes.  Its offset
 * follows from the sizes of the blocks before it, which the sealed index
 * holds and store_open checks.
 */
static size_t block_aad(uint8_t *aad, const uint8_t *file_id, uint32_t idx,
			const struct store_block_meta *m)
{
	memcpy(aad, "blk", 3);
	memcpy(aad + 3, file_id, STORE_FILE_ID_LEN);
	put_u32(aad + 19, idx);
	put_u64(aad + 23, m->first_row);
	put_u32(aad + 31, m->sealed_len);
	put_u32(aad + 35, m->raw_len);
	put_u32(aad + 39, m->nrows);
	return 43;
}

/* Seal a slot's compressed bytes into out, its tag after them. */
static int seal_block(const struct store_writer *w, const struct slot *sl,
		      const uint8_t *compressed, size_t len, uint8_t *out)
{
	uint8_t nonce[AEAD_NONCE_LEN], aad[64];

	block_nonce(nonce, sl->idx);
	return aead_seal(w->key, nonce, aad,
			 block_aad(aad, w->info.file_id, sl->idx, &sl->meta),
			 compressed, len, out, out + len);
}

/*
 * Authenticate and decrypt block idx, read into d->sealed, in place (one
 * buffer less to pass through the cache); *compressed points to its
 * compressed bytes.  -EIO if it was altered.
 */
static int open_block(const struct store *s, uint32_t idx,
		      struct block_decoder *d, const uint8_t **compressed)
{
	const struct store_block_meta *m = &s->blocks[idx];
	uint8_t nonce[AEAD_NONCE_LEN], aad[64];

	block_nonce(nonce, idx);
	*compressed = d->sealed.data;
	return aead_open(s->key, nonce, aad,
			 block_aad(aad, s->info.file_id, idx, m),
			 d->sealed.data, m->sealed_len,
			 d->sealed.data + m->sealed_len, d->sealed.data);
}
#endif

static void *writer_worker(void *arg);

static int start_workers(struct store_writer *w, unsigned nworkers)
{
	if (nworkers < 1)
		nworkers = 1;
	if (nworkers > STORE_MAX_WORKERS)
		nworkers = STORE_MAX_WORKERS;
	w->nslots = nworkers * 2;
	for (unsigned i = 0; i < nworkers; i++) {
		if (pthread_create(&w->workers[i], NULL, writer_worker, w))
			break;
		w->nworkers++;
	}
	return w->nworkers ? 0 : -EAGAIN;
}

static void stop_workers(struct store_writer *w)
{
	pthread_mutex_lock(&w->lock);
	w->closing = true;
	pthread_cond_broadcast(&w->changed);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->nworkers; i++)
		pthread_join(w->workers[i], NULL);
	w->nworkers = 0;
}

static void writer_free(struct store_writer *w)
{
	stop_workers(w);
	for (unsigned i = 0; i < STORE_MAX_WORKERS * 2; i++) {
		buf_release(&w->slots[i].rows);
		buf_release(&w->slots[i].sealed);
	}
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->changed);
	free(w->blocks);
	free(w->path);
	memset(w->key, 0, KEY_LEN);
	free(w);
}

int store_writer_open(struct store_writer **out, const char *path,
		      const uint8_t key[KEY_LEN], unsigned nworkers)
{
	struct store_writer *w = calloc(1, sizeof(*w));
	uint8_t header[HEADER_LEN] = {0};
	int rc;

	if (!w)
		return -ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->changed, NULL);
	w->fd = -1;
	w->path = strdup(path);
	memcpy(w->key, key, KEY_LEN);
	rc = w->path ? random_bytes(w->info.file_id, STORE_FILE_ID_LEN)
		     : -ENOMEM;
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
	if (!rc)
		rc = start_workers(w, nworkers);
	if (rc)
		goto out_unlink;
	w->offset = HEADER_LEN;
	*out = w;
	return 0;

out_unlink:
	close(w->fd);
	unlink(path);
out_free:
	writer_free(w);
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

/* Compress and seal a slot's rows; runs unlocked, in parallel. */
static int seal_slot(struct store_writer *w, struct slot *sl, ZSTD_CCtx *cctx)
{
	size_t bound = ZSTD_compressBound(sl->rows.len);
	struct buf plain = BUF_INIT;
	size_t clen;
	int rc;

	sl->sealed.len = 0;
	rc = buf_reserve(&plain, bound);
	if (!rc)
		rc = buf_reserve(&sl->sealed, bound + AEAD_TAG_LEN);
	if (rc)
		goto out_free;
	clen = ZSTD_compressCCtx(cctx, plain.data, bound, sl->rows.data,
				 sl->rows.len, ZSTD_LEVEL);
	if (ZSTD_isError(clen)) {
		rc = -EIO;
		goto out_free;
	}
	sl->meta.sealed_len = (uint32_t)clen;
	rc = seal_block(w, sl, plain.data, clen, sl->sealed.data);
	sl->sealed.len = clen + AEAD_TAG_LEN;
out_free:
	buf_release(&plain);
	return rc;
}

/* Append a sealed slot at the end of the file; called in block order. */
static int append_slot(struct store_writer *w, struct slot *sl)
{
	int rc = writer_grow_index(w);

	if (!rc)
		rc = pwrite_all(w->fd, sl->sealed.data, sl->sealed.len,
				w->offset);
	if (rc)
		return rc;
	sl->meta.offset = w->offset;
	w->blocks[w->info.nblocks] = sl->meta;
	w->offset += sl->sealed.len;
	w->info.nblocks++;
	w->info.nrows += sl->meta.nrows;
	w->info.raw_bytes += sl->meta.raw_len;
	return 0;
}

/*
 * A slot in state, the lowest block number first: workers must take blocks
 * in order, or each could wait for its turn behind a block nobody took.
 */
static struct slot *find_slot(struct store_writer *w, enum slot_state state)
{
	struct slot *best = NULL;

	for (unsigned i = 0; i < w->nslots; i++)
		if (w->slots[i].state == state &&
		    (!best || w->slots[i].idx < best->idx))
			best = &w->slots[i];
	return best;
}

static void *writer_worker(void *arg)
{
	struct store_writer *w = arg;
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	struct slot *sl;
	int rc;

	pthread_mutex_lock(&w->lock);
	if (!cctx && !w->error)
		w->error = -ENOMEM;
	while (!w->closing) {
		sl = cctx ? find_slot(w, SLOT_READY) : NULL;
		if (!sl) {
			pthread_cond_wait(&w->changed, &w->lock);
			continue;
		}
		sl->state = SLOT_SEALED;
		pthread_mutex_unlock(&w->lock);
		rc = seal_slot(w, sl, cctx);
		pthread_mutex_lock(&w->lock);
		while (!rc && !w->error && w->info.nblocks != sl->idx)
			pthread_cond_wait(&w->changed, &w->lock);
		if (!rc && !w->error)
			rc = append_slot(w, sl);
		if (rc && !w->error)
			w->error = rc;
		sl->state = SLOT_FREE;
		pthread_cond_broadcast(&w->changed);
	}
	pthread_mutex_unlock(&w->lock);
	ZSTD_freeCCtx(cctx);
	return NULL;
}

int store_writer_add_block(struct store_writer *w, struct buf *rows,
			   uint32_t nrows)
{
	struct buf spare;
	struct slot *sl;
	int rc;

	if (rows->len > UINT32_MAX / 2)
		return -EFBIG;
	pthread_mutex_lock(&w->lock);
	while (!w->error && !(sl = find_slot(w, SLOT_FREE)))
		pthread_cond_wait(&w->changed, &w->lock);
	rc = w->error;
	if (!rc) {
		/* Take the caller's rows; give back the slot's old buffer. */
		spare = sl->rows;
		sl->rows = *rows;
		*rows = spare;
		rows->len = 0;
		sl->idx = w->submitted++;
		sl->meta.first_row = w->submitted_rows;
		sl->meta.raw_len = (uint32_t)sl->rows.len;
		sl->meta.nrows = nrows;
		w->submitted_rows += nrows;
		sl->state = SLOT_READY;
		pthread_cond_broadcast(&w->changed);
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

/* Wait until every submitted block is on disk (or something failed). */
static int drain(struct store_writer *w)
{
	int rc;

	pthread_mutex_lock(&w->lock);
	while (!w->error && w->info.nblocks != w->submitted)
		pthread_cond_wait(&w->changed, &w->lock);
	rc = w->error;
	pthread_mutex_unlock(&w->lock);
	return rc;
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

void store_writer_temporary(struct store_writer *w)
{
	w->temporary = true;
}

int store_writer_finish(struct store_writer *w, struct store_info *info)
{
	int rc = drain(w);

	if (!rc)
		rc = write_index_and_footer(w);
	if (!rc && !w->temporary && fsync(w->fd))
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
	/* No worker may write to the descriptor once it is closed. */
	stop_workers(w);
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
	if (memcmp(header, STORE_MAGIC, 8) ||
	    get_u32(header + 8) != STORE_FORMAT ||
	    get_u32(header + 12) != STORE_BLOCK_TARGET ||
	    memcmp(header + 16, expect->file_id, STORE_FILE_ID_LEN) ||
	    get_u32(footer + 12) != 0 ||
	    memcmp(footer + 32, STORE_END_MAGIC, 8))
		return -EIO;
	*index_offset = get_u64(footer);
	s->info = *expect;
	/*
	 * Neither the footer nor the catalog is sealed: bound their figures
	 * by what the file can hold (each block takes an index entry and a
	 * tag at least) before any sum that could wrap or any allocation
	 * they size.
	 */
	if (*index_offset > (uint64_t)st.st_size ||
	    expect->nblocks > ((uint64_t)st.st_size - HEADER_LEN - FOOTER_LEN) /
				  (INDEX_ENTRY_LEN + AEAD_TAG_LEN))
		return -EIO;
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
	rc = aead_open(s->key, nonce, aad,
		       index_aad(aad, &s->info, index_offset), sealed, ilen,
		       sealed + ilen, plain);
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

int store_open(struct store **out, const char *path, const uint8_t key[KEY_LEN],
	       const struct store_info *expect)
{
	struct store *s = calloc(1, sizeof(*s));
	uint64_t index_offset = 0;
	int rc;

	if (!s)
		return -ENOMEM;
	memcpy(s->key, key, KEY_LEN);
	/* The catalog names a file in store/, never a link out of it. */
	s->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
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
	buf_release(&d->raw);
	free(d);
}

int store_read_block(const struct store *s, uint32_t idx,
		     struct block_decoder *d, const uint8_t **rows, size_t *len)
{
	const struct store_block_meta *m;
	const uint8_t *compressed;
	size_t n;
	int rc;

	if (idx >= s->info.nblocks)
		return -EIO;
	m = &s->blocks[idx];
	d->sealed.len = d->raw.len = 0;
	rc = buf_reserve(&d->sealed, (size_t)m->sealed_len + AEAD_TAG_LEN);
	if (!rc)
		rc = buf_reserve(&d->raw, (size_t)m->raw_len + 1);
	if (!rc)
		rc = pread_all(s->fd, d->sealed.data,
			       (size_t)m->sealed_len + AEAD_TAG_LEN, m->offset);
	if (rc)
		return rc == -ENOMEM ? rc : -EIO;
	if (open_block(s, idx, d, &compressed))
		return -EIO;
	n = ZSTD_decompressDCtx(d->dctx, d->raw.data, m->raw_len + 1,
				compressed, m->sealed_len);
	if (ZSTD_isError(n) || n != m->raw_len)
		return -EIO;
	*rows = d->raw.data;
	*len = n;
	return 0;
}
