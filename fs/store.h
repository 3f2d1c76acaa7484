/*
 * store: one immutable file per dataset version holding its records in
 * blocks of about STORE_BLOCK_TARGET bytes, each zstd-compressed and sealed
 * with AES-256-GCM under the version's data key.  An index at the end,
 * sealed too, gives each block's place, sizes and row count, so any row
 * range is read without touching the rest.
 *
 * Layout: header (magic, format, file id) | blocks | sealed index | footer.
 * Every block is bound to its file id, number, sizes and first row, so a
 * corrupt, swapped, reordered or truncated block fails to open (-EIO) and
 * is never served.
 */
#ifndef GOVFS_STORE_H
#define GOVFS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "keys.h"

#define STORE_BLOCK_TARGET (64u * 1024)
#define STORE_FILE_ID_LEN 16
#define STORE_MAX_WORKERS 8

/* What the catalog records about a finished store file. */
struct store_info {
	uint8_t file_id[STORE_FILE_ID_LEN];
	uint32_t nblocks;
	uint64_t nrows;
	uint64_t raw_bytes;  /* encoded records */
	uint64_t file_bytes; /* the file's size */
};

struct store_writer;

/*
 * Create path (O_EXCL, mode 0600) to be sealed with key; nworkers threads
 * compress and seal blocks in parallel while the caller fills the next.
 */
int store_writer_open(struct store_writer **out, const char *path,
		      const uint8_t key[KEY_LEN], unsigned nworkers)
    __attribute__((warn_unused_result));

/*
 * Queue one block of nrows encoded records.  The writer takes rows' buffer
 * and leaves rows holding an empty one to fill next.  Returns the first
 * error of any earlier block, if one failed.
 */
int store_writer_add_block(struct store_writer *w, struct buf *rows,
			   uint32_t nrows) __attribute__((warn_unused_result));

/* A temporary file, which does not outlive its process: finishing it
 * skips the fsync. */
void store_writer_temporary(struct store_writer *w);

/* Write index and footer, fsync, close; fill info.  Frees w either way. */
int store_writer_finish(struct store_writer *w, struct store_info *info)
    __attribute__((warn_unused_result));

/* Close and unlink an unfinished file. */
void store_writer_abort(struct store_writer *w);

struct store_block_meta {
	uint64_t offset;
	uint64_t first_row;
	uint32_t sealed_len; /* compressed bytes, tag excluded */
	uint32_t raw_len;
	uint32_t nrows;
};

/* An open store file: its index in memory, safe to read from many threads. */
struct store {
	int fd;
	uint8_t key[KEY_LEN];
	struct store_info info;
	struct store_block_meta *blocks;
};

/*
 * Open path and check it against what the catalog recorded in expect
 * (file id, blocks, rows, size).  -EIO if anything disagrees, -ELOOP if
 * path is a symbolic link.
 */
int store_open(struct store **out, const char *path, const uint8_t key[KEY_LEN],
	       const struct store_info *expect)
    __attribute__((warn_unused_result));

void store_close(struct store *s);

/* Per-thread scratch for store_read_block: reuse it, never share it. */
struct block_decoder;

struct block_decoder *block_decoder_new(void);
void block_decoder_free(struct block_decoder *d);

/*
 * Read, authenticate and decompress block idx into d; on success *rows and
 * *len point into d (valid until its next use).  -EIO on any corruption.
 */
int store_read_block(const struct store *s, uint32_t idx,
		     struct block_decoder *d, const uint8_t **rows, size_t *len)
    __attribute__((warn_unused_result));

#endif
