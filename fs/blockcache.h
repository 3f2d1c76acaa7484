/*
 * blockcache: rendered data.csv blocks kept in memory up to a byte budget,
 * least recently used first out, and rendered ahead of sequential readers
 * by worker threads so that decompression runs on the other cores while
 * the reader copies.
 *
 * A block is rendered once however many threads ask for it at the same
 * time: the later ones wait for the first.  Blocks handed out are
 * reference-counted and never evicted while held.
 */
#ifndef GOVFS_BLOCKCACHE_H
#define GOVFS_BLOCKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "mount_state.h"

struct blockcache;

struct cached_block {
	const uint8_t *data;
	size_t len;
};

/* budget: bytes of rendered blocks kept; workers: prefetch threads. */
struct blockcache *blockcache_new(size_t budget, unsigned workers);

/* Stop the workers and free everything; no block may still be held. */
void blockcache_free(struct blockcache *bc);

/*
 * The rendered block b of fv, from the cache or rendered now.  On success
 * *out is held until blockcache_put.  -EIO if the block is corrupt.
 */
int blockcache_get(struct blockcache *bc, struct file_view *fv, uint32_t b,
		   const struct cached_block **out)
    __attribute__((warn_unused_result));

void blockcache_put(struct blockcache *bc, const struct cached_block *blk);

/*
 * Forget every rendered block not held right now, wiping its bytes, and
 * the pooled buffers too: a cut agreement leaves no plaintext behind.
 */
void blockcache_drop_all(struct blockcache *bc);

/* Ask the workers to render blocks [first, first + count) of fv. */
void blockcache_prefetch(struct blockcache *bc, struct file_view *fv,
			 uint32_t first, uint32_t count);

#endif
