/*
 * blockcache: a hash table of rendered blocks under one mutex, an LRU list
 * for eviction, and a bounded queue of prefetch requests served by worker
 * threads.  Rendering happens outside the lock.
 */
#include "blockcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 4096
#define QUEUE_LEN 256
/*
 * Buffers of evicted blocks kept for the next ones: fresh memory costs a
 * page fault per page on first touch (about 300 MB/s in a VM), far more
 * than rendering into memory already mapped.
 */
#define POOL_MAX 64

enum entry_state {
	ENTRY_RENDERING,
	ENTRY_READY,
	ENTRY_FAILED,
};

struct entry {
	struct cached_block blk; /* first: handed out as the public part */
	uint64_t view_id;
	uint32_t block;
	enum entry_state state;
	int error;
	unsigned refs;
	struct buf buf;
	struct entry *hash_next;
	struct entry *lru_prev, *lru_next;
};

struct prefetch_job {
	struct file_view *fv;
	uint32_t block;
};

struct blockcache {
	pthread_mutex_t lock;
	pthread_cond_t rendered; /* an entry left ENTRY_RENDERING */
	pthread_cond_t queued;	 /* a prefetch job arrived, or stop */
	struct entry *buckets[NBUCKETS];
	struct entry lru; /* sentinel: next is most recent */
	size_t bytes, budget;
	struct prefetch_job queue[QUEUE_LEN];
	unsigned qhead, qlen;
	bool stopping;
	unsigned nworkers;
	pthread_t *workers;
	pthread_key_t worker_key;  /* per-thread struct render_scratch */
	struct buf pool[POOL_MAX]; /* not counted in bytes */
	unsigned npool;
	/* Every thread's scratch, so that blockcache_free can free those of
	 * threads still alive; a thread's exit frees its own. */
	struct render_scratch *scratches;
};

/* What a rendering thread reuses from one block to the next. */
struct render_scratch {
	struct blockcache *bc;
	struct block_decoder *decoder;
	struct buf out;
	struct render_scratch *prev, *next; /* in bc->scratches */
};

static size_t bucket_of(uint64_t view_id, uint32_t block)
{
	uint64_t h = view_id * 0x9e3779b97f4a7c15ULL ^ block;

	h ^= h >> 29;
	return (size_t)(h * 0xbf58476d1ce4e5b9ULL >> 40) % NBUCKETS;
}

static struct entry *find(struct blockcache *bc, uint64_t view_id,
			  uint32_t block)
{
	struct entry *e = bc->buckets[bucket_of(view_id, block)];

	while (e && (e->view_id != view_id || e->block != block))
		e = e->hash_next;
	return e;
}

static void lru_unlink(struct entry *e)
{
	e->lru_prev->lru_next = e->lru_next;
	e->lru_next->lru_prev = e->lru_prev;
}

static void lru_push_front(struct blockcache *bc, struct entry *e)
{
	e->lru_next = bc->lru.lru_next;
	e->lru_prev = &bc->lru;
	bc->lru.lru_next->lru_prev = e;
	bc->lru.lru_next = e;
}

static void hash_remove(struct blockcache *bc, struct entry *e)
{
	struct entry **p = &bc->buckets[bucket_of(e->view_id, e->block)];

	while (*p != e)
		p = &(*p)->hash_next;
	*p = e->hash_next;
}

/* Keep a buffer for reuse, or free it when the pool is full. */
static void pool_put(struct blockcache *bc, struct buf *b)
{
	bc->bytes -= b->cap;
	if (b->data && bc->npool < POOL_MAX) {
		b->len = 0;
		bc->pool[bc->npool++] = *b;
		memset(b, 0, sizeof(*b));
		return;
	}
	buf_release(b);
}

/* A pooled buffer of at least len bytes, or an empty one. */
static struct buf pool_take(struct blockcache *bc, size_t len)
{
	struct buf b = BUF_INIT;

	for (unsigned i = 0; i < bc->npool; i++) {
		if (bc->pool[i].cap >= len) {
			b = bc->pool[i];
			bc->pool[i] = bc->pool[--bc->npool];
			break;
		}
	}
	return b;
}

static void entry_free(struct blockcache *bc, struct entry *e)
{
	hash_remove(bc, e);
	lru_unlink(e);
	pool_put(bc, &e->buf);
	free(e);
}

/* Drop unheld, finished entries from the cold end until under budget. */
static void evict(struct blockcache *bc)
{
	struct entry *e = bc->lru.lru_prev;

	while (bc->bytes > bc->budget && e != &bc->lru) {
		struct entry *prev = e->lru_prev;

		if (!e->refs && e->state != ENTRY_RENDERING)
			entry_free(bc, e);
		e = prev;
	}
}

static void buf_wipe(struct buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->cap);
	buf_release(b);
}

void blockcache_drop_all(struct blockcache *bc)
{
	struct entry *e, *prev;

	pthread_mutex_lock(&bc->lock);
	for (e = bc->lru.lru_prev; e != &bc->lru; e = prev) {
		prev = e->lru_prev;
		if (e->refs || e->state == ENTRY_RENDERING)
			continue;
		hash_remove(bc, e);
		lru_unlink(e);
		bc->bytes -= e->buf.cap;
		buf_wipe(&e->buf);
		free(e);
	}
	while (bc->npool)
		buf_wipe(&bc->pool[--bc->npool]);
	pthread_mutex_unlock(&bc->lock);
}

static void scratch_free(struct render_scratch *rs)
{
	block_decoder_free(rs->decoder);
	buf_release(&rs->out);
	free(rs);
}

/* Take rs out of its cache's list; call with the lock held. */
static void scratch_unlink(struct render_scratch *rs)
{
	if (rs->prev)
		rs->prev->next = rs->next;
	else
		rs->bc->scratches = rs->next;
	if (rs->next)
		rs->next->prev = rs->prev;
}

/* This thread's scratch, made on first use; called without the lock. */
static struct render_scratch *thread_scratch(struct blockcache *bc)
{
	struct render_scratch *rs = pthread_getspecific(bc->worker_key);

	if (rs)
		return rs;
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return NULL;
	rs->bc = bc;
	rs->decoder = block_decoder_new();
	if (!rs->decoder || pthread_setspecific(bc->worker_key, rs)) {
		scratch_free(rs);
		return NULL;
	}
	pthread_mutex_lock(&bc->lock);
	rs->next = bc->scratches;
	if (rs->next)
		rs->next->prev = rs;
	bc->scratches = rs;
	pthread_mutex_unlock(&bc->lock);
	return rs;
}

/*
 * Render e's block into this thread's scratch, then copy it into a pooled
 * buffer of the block's exact size.  Called with the lock held and e just
 * inserted; returns with it held.
 */
static void render_entry(struct blockcache *bc, struct entry *e,
			 struct file_view *fv)
{
	size_t want = fv->dv.sizes.block_bytes[e->block];
	struct buf out = pool_take(bc, want);
	struct render_scratch *rs;
	int rc;

	pthread_mutex_unlock(&bc->lock);
	rs = thread_scratch(bc);
	rc = rs ? file_view_render(fv, e->block, rs->decoder, &rs->out)
		: -ENOMEM;
	if (!rc)
		rc = buf_append(&out, rs->out.data, rs->out.len);
	pthread_mutex_lock(&bc->lock);
	e->buf = out;
	e->blk.data = out.data;
	e->blk.len = out.len;
	e->state = rc ? ENTRY_FAILED : ENTRY_READY;
	e->error = rc;
	bc->bytes += out.cap;
	pthread_cond_broadcast(&bc->rendered);
}

static struct entry *insert_rendering(struct blockcache *bc,
				      struct file_view *fv, uint32_t b)
{
	struct entry *e = calloc(1, sizeof(*e));
	size_t h;

	if (!e)
		return NULL;
	e->view_id = fv->id;
	e->block = b;
	e->state = ENTRY_RENDERING;
	h = bucket_of(fv->id, b);
	e->hash_next = bc->buckets[h];
	bc->buckets[h] = e;
	lru_push_front(bc, e);
	return e;
}

int blockcache_get(struct blockcache *bc, struct file_view *fv, uint32_t b,
		   const struct cached_block **out)
{
	struct entry *e;
	int rc;

	if (b >= fv->dv.sizes.nblocks)
		return -EIO;
	pthread_mutex_lock(&bc->lock);
	e = find(bc, fv->id, b);
	if (!e) {
		e = insert_rendering(bc, fv, b);
		if (!e) {
			pthread_mutex_unlock(&bc->lock);
			return -ENOMEM;
		}
		e->refs++;
		render_entry(bc, e, fv);
	} else {
		e->refs++;
		lru_unlink(e);
		lru_push_front(bc, e);
		while (e->state == ENTRY_RENDERING)
			pthread_cond_wait(&bc->rendered, &bc->lock);
	}
	rc = e->state == ENTRY_READY ? 0 : e->error;
	if (rc) {
		/* Not kept: the next reader tries again and fails the same. */
		if (--e->refs == 0)
			entry_free(bc, e);
	} else {
		*out = &e->blk;
		evict(bc);
	}
	pthread_mutex_unlock(&bc->lock);
	return rc;
}

void blockcache_put(struct blockcache *bc, const struct cached_block *blk)
{
	struct entry *e = (struct entry *)blk;

	pthread_mutex_lock(&bc->lock);
	e->refs--;
	evict(bc);
	pthread_mutex_unlock(&bc->lock);
}

void blockcache_prefetch(struct blockcache *bc, struct file_view *fv,
			 uint32_t first, uint32_t count)
{
	uint32_t end = fv->dv.sizes.nblocks;

	/* Blocks [first, min(first + count, nblocks)), without overflow. */
	if (first < end && count < end - first)
		end = first + count;
	pthread_mutex_lock(&bc->lock);
	for (uint32_t b = first; b < end; b++) {
		struct prefetch_job *job;

		if (bc->qlen == QUEUE_LEN || find(bc, fv->id, b))
			continue;
		job = &bc->queue[(bc->qhead + bc->qlen++) % QUEUE_LEN];
		job->fv = file_view_get(fv);
		job->block = b;
	}
	pthread_cond_signal(&bc->queued);
	pthread_mutex_unlock(&bc->lock);
}

static void run_job(struct blockcache *bc, struct prefetch_job job)
{
	struct entry *e = find(bc, job.fv->id, job.block);

	if (!e) {
		e = insert_rendering(bc, job.fv, job.block);
		if (e) {
			render_entry(bc, e, job.fv);
			if (e->state == ENTRY_FAILED && !e->refs)
				entry_free(bc, e);
			evict(bc);
		}
	}
	pthread_mutex_unlock(&bc->lock);
	file_view_put(job.fv);
	pthread_mutex_lock(&bc->lock);
}

static void *worker_main(void *arg)
{
	struct blockcache *bc = arg;

	pthread_mutex_lock(&bc->lock);
	while (!bc->stopping) {
		struct prefetch_job job;

		if (!bc->qlen) {
			pthread_cond_wait(&bc->queued, &bc->lock);
			continue;
		}
		job = bc->queue[bc->qhead];
		bc->qhead = (bc->qhead + 1) % QUEUE_LEN;
		bc->qlen--;
		if (bc->qlen)
			pthread_cond_signal(&bc->queued);
		run_job(bc, job);
	}
	pthread_mutex_unlock(&bc->lock);
	return NULL;
}

/* A thread that rendered is exiting. */
static void scratch_destroy(void *p)
{
	struct render_scratch *rs = p;

	pthread_mutex_lock(&rs->bc->lock);
	scratch_unlink(rs);
	pthread_mutex_unlock(&rs->bc->lock);
	scratch_free(rs);
}

struct blockcache *blockcache_new(size_t budget, unsigned workers)
{
	struct blockcache *bc = calloc(1, sizeof(*bc));

	if (!bc)
		return NULL;
	pthread_mutex_init(&bc->lock, NULL);
	pthread_cond_init(&bc->rendered, NULL);
	pthread_cond_init(&bc->queued, NULL);
	bc->lru.lru_next = bc->lru.lru_prev = &bc->lru;
	bc->budget = budget;
	pthread_key_create(&bc->worker_key, scratch_destroy);
	bc->workers = calloc(workers + 1, sizeof(*bc->workers));
	for (unsigned i = 0; bc->workers && i < workers; i++) {
		if (pthread_create(&bc->workers[i], NULL, worker_main, bc))
			break;
		bc->nworkers++;
	}
	return bc;
}

void blockcache_free(struct blockcache *bc)
{
	if (!bc)
		return;
	pthread_mutex_lock(&bc->lock);
	bc->stopping = true;
	pthread_cond_broadcast(&bc->queued);
	pthread_mutex_unlock(&bc->lock);
	for (unsigned i = 0; i < bc->nworkers; i++)
		pthread_join(bc->workers[i], NULL);
	while (bc->qlen) {
		file_view_put(bc->queue[bc->qhead].fv);
		bc->qhead = (bc->qhead + 1) % QUEUE_LEN;
		bc->qlen--;
	}
	while (bc->lru.lru_next != &bc->lru)
		entry_free(bc, bc->lru.lru_next);
	for (unsigned i = 0; i < bc->npool; i++)
		buf_release(&bc->pool[i]);
	free(bc->workers);
	/* No destructor runs after this; free the scratch of live threads. */
	pthread_key_delete(bc->worker_key);
	while (bc->scratches) {
		struct render_scratch *rs = bc->scratches;

		scratch_unlink(rs);
		scratch_free(rs);
	}
	free(bc);
}
