/*
 * viewbuild: the scan on all cores, spilling partial states into hash
 * partitions of sealed temporary files, aggregating them back partition
 * by partition, the k-way merge of sorted runs, and measuring the result.
 *
 * Every temporary file is a store file (store.h): records in zstd blocks
 * sealed with AES-256-GCM, here under a key made for this build and never
 * written anywhere.  A spill file ("run") holds framed records (a varint
 * length, then the record) ordered by partition, and notes the first
 * block of each partition; a sorted run holds output records in the
 * view's order.
 */
#include "viewbuild.h"

#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aggregate.h"
#include "fileio.h"
#include "home.h"
#include "render.h"
#include "rowfmt.h"
#include "store.h"
#include "viewstore.h"

#define PART_BITS 4
#define NPARTS (1u << PART_BITS)
/* Levels of partitioning the 64 bits of a hash allow, 4 bits each. */
#define MAX_LEVEL (64 / PART_BITS)
#define MAX_WORKERS 8
/* The least memory one table is given: below it, spilling after every
 * few records would cost far more than the memory it saves. */
#define MIN_TABLE_MEMORY (64u << 10)
#define POLL_NS 100000000L
#define NAME_BYTES 16

/* One spill file: framed records, partition by partition. */
struct run {
	char path[PATH_MAX];
	struct store_info info;
	uint32_t first[NPARTS + 1]; /* partition p: [first[p], first[p+1]) */
};

struct runs {
	size_t n;
	struct run *v;
};

/* Records going into one store file, a block at a time. */
struct rec_writer {
	struct store_writer *w;
	struct buf block;
	uint32_t rows;
	uint32_t blocks;
};

struct build {
	const char *home;
	const struct agg_plan *plan;
	const struct dataview *src;
	const struct view_build_opts *opts;
	uint8_t spill_key[KEY_LEN];
	size_t group_budget, pair_budget; /* of one table after the scan */
	size_t worker_groups, worker_pairs;
	pthread_mutex_t lock;		   /* the runs of the scan, and temps */
	struct runs group_runs, pair_runs; /* level 0 */
	size_t ntemps;
	char **temps; /* every temporary file made, removed at the end */
	atomic_uint_fast32_t next_block;
	atomic_uint_fast64_t rows_done;
	atomic_uint running;
};

/* ---- temporary files ---- */

static int random_name(char *out, size_t len, const char *suffix)
{
	uint8_t rnd[NAME_BYTES];
	char hex[2 * NAME_BYTES + 1];

	if (random_bytes(rnd, sizeof(rnd)))
		return -EIO;
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	snprintf(out, len, "%s%s", hex, suffix);
	return 0;
}

/* A fresh path under HOME/tmp, noted for removal at the end. */
static int temp_path(struct build *b, char path[PATH_MAX])
{
	char name[64], *copy, **grown;
	int rc = random_name(name, sizeof(name), ".view");

	if (rc)
		return rc;
	snprintf(path, PATH_MAX, "%s/%s/%s", b->home, HOME_TMP_DIR, name);
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&b->lock);
	grown = realloc(b->temps, (b->ntemps + 1) * sizeof(*grown));
	if (grown) {
		b->temps = grown;
		b->temps[b->ntemps++] = copy;
	}
	pthread_mutex_unlock(&b->lock);
	if (!grown)
		free(copy);
	return grown ? 0 : -ENOMEM;
}

static void remove_temps(struct build *b)
{
	for (size_t i = 0; i < b->ntemps; i++) {
		unlink(b->temps[i]);
		free(b->temps[i]);
	}
	free(b->temps);
	b->temps = NULL;
	b->ntemps = 0;
}

static void runs_remove(struct runs *r)
{
	for (size_t i = 0; i < r->n; i++)
		unlink(r->v[i].path);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static int runs_push(struct runs *r, const struct run *run)
{
	struct run *grown = realloc(r->v, (r->n + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	r->v = grown;
	r->v[r->n++] = *run;
	return 0;
}

/* ---- writing records ---- */

/* A new file under HOME/tmp; a temporary one is not fsynced. */
static int rw_open(struct build *b, const uint8_t key[KEY_LEN], bool temporary,
		   struct rec_writer *rw, char path[PATH_MAX])
{
	int rc;

	memset(rw, 0, sizeof(*rw));
	rc = temp_path(b, path);
	if (!rc)
		rc = store_writer_open(&rw->w, path, key, 1);
	if (!rc && temporary)
		store_writer_temporary(rw->w);
	return rc;
}

static int rw_flush(struct rec_writer *rw)
{
	int rc;

	if (!rw->rows)
		return 0;
	rc = store_writer_add_block(rw->w, &rw->block, rw->rows);
	rw->rows = 0;
	rw->blocks++;
	return rc;
}

/* Append one record as it is. */
static int rw_put(struct rec_writer *rw, const void *rec, size_t len)
{
	int rc = buf_append(&rw->block, rec, len);

	if (rc)
		return rc;
	rw->rows++;
	return rw->block.len >= STORE_BLOCK_TARGET ? rw_flush(rw) : 0;
}

/* Append one record with its length in front. */
static int rw_put_framed(struct rec_writer *rw, const void *rec, size_t len)
{
	int rc = rowfmt_put_varint(&rw->block, len);

	if (!rc)
		rc = buf_append(&rw->block, rec, len);
	if (rc)
		return rc;
	rw->rows++;
	return rw->block.len >= STORE_BLOCK_TARGET ? rw_flush(rw) : 0;
}

/* Finish the file (or abort it if rc says an error came first). */
static int rw_close(struct rec_writer *rw, int rc, struct store_info *info)
{
	if (!rc)
		rc = rw_flush(rw);
	if (!rc)
		rc = store_writer_finish(rw->w, info);
	else if (rw->w)
		store_writer_abort(rw->w);
	buf_release(&rw->block);
	rw->w = NULL;
	return rc;
}

/* ---- spilling ---- */

static unsigned partition_of(uint64_t hash, unsigned level)
{
	return (unsigned)(hash >> (64 - PART_BITS * (level + 1))) &
	       (NPARTS - 1);
}

/* Write partition p's entries of t: groups, or pairs. */
static int spill_partition(const struct agg_table *t, bool pairs,
			   unsigned level, unsigned p, struct rec_writer *rw,
			   struct buf *rec)
{
	const struct agg_group *g;
	const uint8_t *pair;
	uint64_t hash;
	size_t n = pairs ? agg_table_pair_slots(t) : agg_table_group_slots(t);
	size_t len;
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		if (pairs) {
			if (!agg_table_pair_at(t, i, &hash, &pair, &len) ||
			    partition_of(hash, level) != p)
				continue;
			rc = rw_put_framed(rw, pair, len);
			continue;
		}
		g = agg_table_group_at(t, i, &hash);
		if (!g || partition_of(hash, level) != p)
			continue;
		rec->len = 0;
		rc = agg_group_serialize(t, g, rec);
		if (!rc)
			rc = rw_put_framed(rw, rec->data, rec->len);
	}
	return rc;
}

/*
 * Move the groups (or pairs) of t into a new run partitioned at level, and
 * add it to into (under b->lock when locked).
 */
static int spill(struct build *b, struct agg_table *t, bool pairs,
		 unsigned level, struct runs *into, bool locked)
{
	struct buf rec = BUF_INIT;
	struct rec_writer rw;
	struct run run;
	int rc = rw_open(b, b->spill_key, true, &rw, run.path);

	for (unsigned p = 0; p < NPARTS && !rc; p++) {
		rc = rw_flush(&rw);
		run.first[p] = rw.blocks;
		if (!rc)
			rc = spill_partition(t, pairs, level, p, &rw, &rec);
	}
	if (!rc)
		rc = rw_flush(&rw);
	run.first[NPARTS] = rw.blocks;
	rc = rw_close(&rw, rc, &run.info);
	buf_release(&rec);
	if (rc)
		return rc;
	if (pairs)
		agg_table_clear_pairs(t);
	else
		agg_table_clear_groups(t);
	if (locked)
		pthread_mutex_lock(&b->lock);
	rc = runs_push(into, &run);
	if (locked)
		pthread_mutex_unlock(&b->lock);
	return rc;
}

typedef int (*record_fn)(void *ctx, const uint8_t *rec, size_t len);

/* Call fn on every record of partition p of run. */
static int run_each(struct build *b, const struct run *run, unsigned p,
		    record_fn fn, void *ctx)
{
	struct block_decoder *d = block_decoder_new();
	struct store *s = NULL;
	const uint8_t *data;
	size_t len, pos;
	uint64_t n;
	int rc =
	    d ? store_open(&s, run->path, b->spill_key, &run->info) : -ENOMEM;

	for (uint32_t blk = run->first[p]; !rc && blk < run->first[p + 1];
	     blk++) {
		rc = store_read_block(s, blk, d, &data, &len);
		pos = 0;
		for (uint32_t r = 0; !rc && r < s->blocks[blk].nrows; r++) {
			rc = rowfmt_varint(data, len, &pos, &n);
			if (!rc && n > len - pos)
				rc = -EIO;
			if (!rc)
				rc = fn(ctx, data + pos, (size_t)n);
			pos += n;
		}
		if (!rc && pos != len)
			rc = -EIO;
	}
	store_close(s);
	block_decoder_free(d);
	return rc;
}

static int runs_each(struct build *b, const struct runs *runs, unsigned p,
		     record_fn fn, void *ctx)
{
	int rc = 0;

	for (size_t i = 0; i < runs->n && !rc; i++)
		rc = run_each(b, &runs->v[i], p, fn, ctx);
	return rc;
}

/* ---- the scan ---- */

struct worker {
	struct build *b;
	struct agg_table *t;
	int rc;
};

static int scan_block(struct worker *w, uint32_t blk, struct block_decoder *d,
		      struct rowfmt_field *fields)
{
	const struct store *s = w->b->src->store;
	size_t nsrc = w->b->plan->nsrc, len, pos = 0;
	const uint8_t *data;
	int rc = store_read_block(s, blk, d, &data, &len);

	for (uint32_t r = 0; !rc && r < s->blocks[blk].nrows; r++) {
		rc = rowfmt_next(data, len, &pos, nsrc, fields);
		if (!rc)
			rc = agg_table_add(w->t, fields);
	}
	if (!rc && pos != len)
		rc = -EIO;
	atomic_fetch_add(&w->b->rows_done, s->blocks[blk].nrows);
	return rc;
}

static void *scan_main(void *arg)
{
	struct worker *w = arg;
	struct build *b = w->b;
	uint32_t nblocks = b->src->store->info.nblocks, blk;
	struct block_decoder *d = block_decoder_new();
	struct rowfmt_field *fields =
	    calloc(b->plan->nsrc + 1, sizeof(*fields));
	int rc = d && fields ? 0 : -ENOMEM;

	while (!rc && (blk = atomic_fetch_add(&b->next_block, 1)) < nblocks) {
		rc = scan_block(w, blk, d, fields);
		if (!rc && agg_table_group_bytes(w->t) > b->worker_groups)
			rc = spill(b, w->t, false, 0, &b->group_runs, true);
		if (!rc && agg_table_pair_bytes(w->t) > b->worker_pairs)
			rc = spill(b, w->t, true, 0, &b->pair_runs, true);
	}
	/* One failure stops the others at their next block. */
	if (rc)
		atomic_store(&b->next_block, nblocks);
	w->rc = rc;
	free(fields);
	block_decoder_free(d);
	atomic_fetch_sub(&b->running, 1);
	return NULL;
}

static unsigned worker_count(const struct build *b)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = b->opts->workers ? b->opts->workers
		     : cpus < 1	      ? 1
				      : (unsigned)cpus;
	uint32_t nblocks = b->src->store->info.nblocks;

	if (n > MAX_WORKERS)
		n = MAX_WORKERS;
	if (n > nblocks)
		n = nblocks ? nblocks : 1;
	return n;
}

static void progress(const struct build *b, const char *phase, uint64_t done,
		     uint64_t total)
{
	if (b->opts->progress)
		b->opts->progress(b->opts->progress_ctx, phase, done, total);
}

/* Wait for the workers, reporting progress meanwhile. */
static void wait_scan(struct build *b)
{
	uint64_t total = b->src->store->info.nrows;

	while (atomic_load(&b->running)) {
		struct timespec ts = {0, POLL_NS};

		nanosleep(&ts, NULL);
		progress(b, "scan", atomic_load(&b->rows_done), total);
	}
	progress(b, "scan", atomic_load(&b->rows_done), total);
}

static size_t at_least_min(size_t budget)
{
	return budget > MIN_TABLE_MEMORY ? budget : MIN_TABLE_MEMORY;
}

static int scan(struct build *b, struct worker *w, unsigned n)
{
	pthread_t threads[MAX_WORKERS];
	unsigned started = 0;
	int rc = 0;

	for (unsigned i = 0; i < n; i++) {
		w[i] = (struct worker){.b = b, .t = agg_table_new(b->plan)};
		if (!w[i].t)
			return -ENOMEM;
	}
	b->worker_groups = at_least_min(b->group_budget / n);
	b->worker_pairs = at_least_min(b->pair_budget / n);
	atomic_store(&b->running, n);
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&threads[i], NULL, scan_main, &w[i]))
			break;
		started++;
	}
	/* Workers that could not start are not waited for. */
	atomic_fetch_sub(&b->running, n - started);
	if (!started)
		return -EAGAIN;
	wait_scan(b);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(threads[i], NULL);
		if (!rc)
			rc = w[i].rc;
	}
	return rc;
}

/* ---- after the scan: one table, or everything in runs ---- */

static int merge_into(struct agg_table *into, const struct agg_table *from)
{
	struct buf rec = BUF_INIT;
	const struct agg_group *g;
	const uint8_t *pair;
	uint64_t hash;
	size_t len;
	int rc = 0;

	for (size_t i = 0; i < agg_table_group_slots(from) && !rc; i++) {
		g = agg_table_group_at(from, i, &hash);
		if (!g)
			continue;
		rec.len = 0;
		rc = agg_group_serialize(from, g, &rec);
		if (!rc)
			rc = agg_table_merge_group(into, rec.data, rec.len);
	}
	for (size_t i = 0; i < agg_table_pair_slots(from) && !rc; i++)
		if (agg_table_pair_at(from, i, &hash, &pair, &len))
			rc = agg_table_add_pair(into, pair, len);
	buf_release(&rec);
	return rc;
}

/*
 * Gather the workers' tables into *final: merged in memory when nothing
 * was spilled and they fit together, else all spilled (then *final is
 * empty).  The workers' tables are freed.
 */
static int gather(struct build *b, struct worker *w, unsigned n,
		  struct agg_table **final)
{
	size_t total = 0;
	bool in_memory = !b->group_runs.n && !b->pair_runs.n;
	int rc = 0;

	for (unsigned i = 0; i < n; i++)
		total += agg_table_group_bytes(w[i].t) +
			 agg_table_pair_bytes(w[i].t);
	in_memory = in_memory && total <= b->group_budget + b->pair_budget;
	for (unsigned i = in_memory ? 1 : 0; i < n && !rc; i++) {
		if (in_memory)
			rc = merge_into(w[0].t, w[i].t);
		if (!in_memory && agg_table_ngroups(w[i].t))
			rc = spill(b, w[i].t, false, 0, &b->group_runs, false);
		if (!rc && !in_memory && agg_table_npairs(w[i].t))
			rc = spill(b, w[i].t, true, 0, &b->pair_runs, false);
	}
	for (unsigned i = in_memory ? 1 : 0; i < n; i++) {
		agg_table_free(w[i].t);
		w[i].t = NULL;
	}
	*final = in_memory ? w[0].t : agg_table_new(b->plan);
	w[0].t = NULL;
	return rc ? rc : *final ? 0 : -ENOMEM;
}

/* ---- distinct pairs, partition by partition ---- */

/* The table groups are counted into, spilling to b->group_runs. */
struct sink {
	struct build *b;
	struct agg_table *t;
};

static int sink_check(struct sink *s)
{
	if (agg_table_group_bytes(s->t) <= s->b->group_budget)
		return 0;
	return spill(s->b, s->t, false, 0, &s->b->group_runs, false);
}

struct pairs_ctx {
	struct build *b;
	struct agg_table *set;
	unsigned level;
	struct runs children;
};

static int pair_in(void *arg, const uint8_t *rec, size_t len)
{
	struct pairs_ctx *c = arg;
	int rc = agg_table_add_pair(c->set, rec, len);

	if (rc || agg_table_pair_bytes(c->set) <= c->b->pair_budget ||
	    c->level + 1 >= MAX_LEVEL)
		return rc;
	return spill(c->b, c->set, true, c->level + 1, &c->children, false);
}

static int count_set(struct sink *sink, const struct agg_table *set)
{
	const uint8_t *pair;
	uint64_t hash;
	size_t len;
	int rc = 0;

	for (size_t i = 0; i < agg_table_pair_slots(set) && !rc; i++) {
		if (!agg_table_pair_at(set, i, &hash, &pair, &len))
			continue;
		rc = agg_table_count_pair(sink->t, pair, len);
		if (!rc)
			rc = sink_check(sink);
	}
	return rc;
}

/* Deduplicate partition p of sources (at level) and count it into sink. */
static int pairs_partition(struct sink *sink, const struct runs *sources,
			   unsigned level, unsigned p)
{
	struct pairs_ctx c = {.b = sink->b, .level = level};
	int rc;

	c.set = agg_table_new(sink->b->plan);
	rc = c.set ? runs_each(sink->b, sources, p, pair_in, &c) : -ENOMEM;
	if (!rc && !c.children.n)
		rc = count_set(sink, c.set);
	if (!rc && c.children.n && agg_table_npairs(c.set))
		rc = spill(sink->b, c.set, true, level + 1, &c.children, false);
	agg_table_free(c.set);
	for (unsigned q = 0; !rc && c.children.n && q < NPARTS; q++)
		rc = pairs_partition(sink, &c.children, level + 1, q);
	runs_remove(&c.children);
	return rc;
}

static int count_pairs(struct build *b, struct agg_table *final)
{
	struct sink sink = {b, final};
	int rc = 0;

	if (!b->pair_runs.n)
		return agg_table_count_own_pairs(final);
	for (unsigned p = 0; p < NPARTS && !rc; p++)
		rc = pairs_partition(&sink, &b->pair_runs, 0, p);
	runs_remove(&b->pair_runs);
	return rc;
}

/* ---- groups: sorted runs, merged ---- */

static int write_sorted(const struct agg_table *t, struct rec_writer *rw)
{
	const struct agg_group **shown;
	struct buf rec = BUF_INIT;
	size_t n;
	int rc = agg_table_shown_sorted(t, &shown, &n);

	if (rc)
		return rc;
	for (size_t i = 0; i < n && !rc; i++) {
		rec.len = 0;
		rc = agg_group_output(t, shown[i], &rec);
		if (!rc)
			rc = rw_put(rw, rec.data, rec.len);
	}
	free(shown);
	buf_release(&rec);
	return rc;
}

/* A sorted run being read. */
struct cursor {
	struct store *s;
	struct block_decoder *d;
	uint32_t blk;
	const uint8_t *data;
	size_t len, pos;
	const uint8_t *rec;
	size_t rec_len;
	bool done;
};

static int cursor_next(const struct agg_plan *plan, struct cursor *c,
		       struct rowfmt_field *scratch)
{
	size_t start;
	int rc;

	while (c->pos == c->len) {
		if (c->blk == c->s->info.nblocks) {
			c->done = true;
			return 0;
		}
		rc = store_read_block(c->s, c->blk++, c->d, &c->data, &c->len);
		if (rc)
			return rc;
		c->pos = 0;
	}
	start = c->pos;
	rc = rowfmt_next(c->data, c->len, &c->pos, plan->nout, scratch);
	c->rec = c->data + start;
	c->rec_len = c->pos - start;
	return rc;
}

static bool cursor_before(const struct agg_plan *plan, const struct cursor *a,
			  const struct cursor *b)
{
	return agg_key_compare(plan, a->rec, a->rec_len, b->rec, b->rec_len) <
	       0;
}

/* Restore the min-heap below slot i. */
static void sift_down(const struct agg_plan *plan, struct cursor **heap,
		      size_t n, size_t i)
{
	for (;;) {
		size_t least = i, l = 2 * i + 1, r = l + 1;
		struct cursor *tmp;

		if (l < n && cursor_before(plan, heap[l], heap[least]))
			least = l;
		if (r < n && cursor_before(plan, heap[r], heap[least]))
			least = r;
		if (least == i)
			return;
		tmp = heap[i];
		heap[i] = heap[least];
		heap[least] = tmp;
		i = least;
	}
}

/* Merge the sorted runs (at most NPARTS) into rw, in the view's order. */
static int merge_sorted(struct build *b, const struct run *runs, size_t n,
			struct rec_writer *rw)
{
	struct cursor cur[NPARTS], *heap[NPARTS];
	struct rowfmt_field *scratch =
	    calloc(b->plan->nout + 1, sizeof(*scratch));
	size_t live = 0;
	int rc = scratch ? 0 : -ENOMEM;

	memset(cur, 0, sizeof(cur));
	for (size_t i = 0; i < n && !rc; i++) {
		cur[i].d = block_decoder_new();
		rc = cur[i].d ? store_open(&cur[i].s, runs[i].path,
					   b->spill_key, &runs[i].info)
			      : -ENOMEM;
		if (!rc)
			rc = cursor_next(b->plan, &cur[i], scratch);
		if (!rc && !cur[i].done)
			heap[live++] = &cur[i];
	}
	for (size_t i = live / 2; !rc && i-- > 0;)
		sift_down(b->plan, heap, live, i);
	while (!rc && live) {
		rc = rw_put(rw, heap[0]->rec, heap[0]->rec_len);
		if (!rc)
			rc = cursor_next(b->plan, heap[0], scratch);
		if (!rc && heap[0]->done)
			heap[0] = heap[--live];
		sift_down(b->plan, heap, live, 0);
	}
	for (size_t i = 0; i < n; i++) {
		store_close(cur[i].s);
		block_decoder_free(cur[i].d);
	}
	free(scratch);
	return rc;
}

struct groups_ctx {
	struct build *b;
	struct agg_table *t;
	unsigned level;
	struct runs children;
};

static int group_in(void *arg, const uint8_t *rec, size_t len)
{
	struct groups_ctx *c = arg;
	int rc = agg_table_merge_group(c->t, rec, len);

	if (rc || agg_table_group_bytes(c->t) <= c->b->group_budget ||
	    c->level + 1 >= MAX_LEVEL)
		return rc;
	return spill(c->b, c->t, false, c->level + 1, &c->children, false);
}

/*
 * Aggregate partition p of sources (at level) and write its shown groups,
 * sorted, as a new sorted run *out.
 */
static int groups_partition(struct build *b, const struct runs *sources,
			    unsigned level, unsigned p, struct run *out)
{
	struct groups_ctx c = {.b = b, .level = level};
	struct run sorted[NPARTS];
	struct rec_writer rw;
	unsigned nsorted = 0;
	int rc;

	c.t = agg_table_new(b->plan);
	rc = c.t ? runs_each(b, sources, p, group_in, &c) : -ENOMEM;
	if (!rc && c.children.n && agg_table_ngroups(c.t))
		rc = spill(b, c.t, false, level + 1, &c.children, false);
	if (c.children.n) {
		agg_table_free(c.t);
		c.t = NULL;
	}
	for (; !rc && c.children.n && nsorted < NPARTS; nsorted++)
		rc = groups_partition(b, &c.children, level + 1, nsorted,
				      &sorted[nsorted]);
	runs_remove(&c.children);
	if (!rc)
		rc = rw_open(b, b->spill_key, true, &rw, out->path);
	if (rc) {
		agg_table_free(c.t);
		return rc;
	}
	rc = c.t ? write_sorted(c.t, &rw)
		 : merge_sorted(b, sorted, nsorted, &rw);
	agg_table_free(c.t);
	for (unsigned q = 0; q < nsorted; q++)
		unlink(sorted[q].path);
	return rw_close(&rw, rc, &out->info);
}

/* Write every shown group of the view, in order, to the result rw. */
static int write_groups(struct build *b, struct agg_table *final,
			struct rec_writer *rw)
{
	struct run sorted[NPARTS];
	unsigned nsorted = 0;
	int rc = 0;

	if (!b->group_runs.n)
		return write_sorted(final, rw);
	if (agg_table_ngroups(final))
		rc = spill(b, final, false, 0, &b->group_runs, false);
	for (; !rc && nsorted < NPARTS; nsorted++) {
		progress(b, "merge", nsorted, NPARTS);
		rc = groups_partition(b, &b->group_runs, 0, nsorted,
				      &sorted[nsorted]);
	}
	runs_remove(&b->group_runs);
	if (!rc) {
		progress(b, "merge", NPARTS, NPARTS);
		rc = merge_sorted(b, sorted, nsorted, rw);
	}
	for (unsigned q = 0; q < nsorted; q++)
		unlink(sorted[q].path);
	return rc;
}

/* ---- the result ---- */

/* An HMAC-SHA256 computation under key, or NULL. */
static EVP_MAC_CTX *hmac_new(const uint8_t key[KEY_LEN])
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
	    OSSL_PARAM_construct_end()};

	EVP_MAC_free(mac);
	if (ctx && EVP_MAC_init(ctx, key, KEY_LEN, params) != 1) {
		EVP_MAC_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

/*
 * Render the result's blocks once: its size index si, and its digest (the
 * HMAC of its CSV under digest_key).
 */
static int measure(const char *path, const uint8_t key[KEY_LEN],
		   const uint8_t digest_key[KEY_LEN],
		   const struct schema *out_schema, struct view_result *out,
		   struct size_index *si)
{
	EVP_MAC_CTX *md = hmac_new(digest_key);
	struct block_decoder *d = block_decoder_new();
	struct buf csv = BUF_INIT;
	struct render_plan rp;
	struct store *s = NULL;
	const uint8_t *rows;
	size_t len;
	int rc;

	if (!md || !d) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = render_plan_init_keep_all(&rp, out_schema);
	if (rc)
		goto out_free;
	rc = store_open(&s, path, key, &out->store);
	if (rc)
		goto out_plan;
	si->nblocks = s->info.nblocks;
	si->rows = s->info.nrows;
	si->header_bytes = si->total_bytes = rp.header.len;
	si->block_bytes = calloc(si->nblocks + 1, sizeof(uint64_t));
	rc = si->block_bytes ? 0 : -ENOMEM;
	if (!rc && EVP_MAC_update(md, rp.header.data, rp.header.len) != 1)
		rc = -ENOMEM;
	for (uint32_t i = 0; !rc && i < si->nblocks; i++) {
		csv.len = 0;
		rc = store_read_block(s, i, d, &rows, &len);
		if (!rc)
			rc = render_block(&rp, rows, len, s->blocks[i].nrows,
					  &csv, NULL);
		if (!rc && EVP_MAC_update(md, csv.data, csv.len) != 1)
			rc = -ENOMEM;
		si->block_bytes[i] = csv.len;
		si->total_bytes += csv.len;
	}
	if (!rc && EVP_MAC_final(md, out->digest, NULL, VIEW_DIGEST_LEN) != 1)
		rc = -ENOMEM;
	store_close(s);
out_plan:
	render_plan_release(&rp);
out_free:
	buf_release(&csv);
	block_decoder_free(d);
	EVP_MAC_CTX_free(md);
	return rc;
}

/* Write the result file under a new data key, and measure it. */
static int write_result(struct build *b, const struct master_key *mk,
			const char *agreement, struct agg_table *final,
			char path[PATH_MAX], struct view_result *out,
			struct size_index *sizes)
{
	struct schema out_schema;
	struct rec_writer rw;
	uint8_t key[KEY_LEN], digest_key[KEY_LEN];
	char label[128];
	int rc = agg_plan_output_schema(b->plan, &out_schema);

	if (rc)
		return rc;
	view_key_label(agreement, label, sizeof(label));
	rc = data_key_new(mk, label, key, out->wrapped_key);
	if (!rc)
		rc = view_digest_key(mk, agreement, digest_key);
	if (!rc)
		rc = rw_open(b, key, false, &rw, path);
	if (!rc) {
		rc = write_groups(b, final, &rw);
		rc = rw_close(&rw, rc, &out->store);
	}
	if (!rc)
		rc = measure(path, key, digest_key, &out_schema, out, sizes);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(digest_key, sizeof(digest_key));
	schema_release(&out_schema);
	return rc;
}

/* Move the result from HOME/tmp into HOME/store. */
static int publish(const char *home, const char *tmp, struct view_result *out)
{
	char name[64], rel[128], final[PATH_MAX];
	int rc = random_name(name, sizeof(name), ".gvs");

	if (rc)
		return rc;
	snprintf(rel, sizeof(rel), "%s/%s", HOME_STORE_DIR, name);
	snprintf(final, sizeof(final), "%s/%s", home, rel);
	if (rename(tmp, final))
		return -errno;
	rc = fsync_dir(home, HOME_STORE_DIR);
	out->store_file = strdup(rel);
	if (!rc && !out->store_file)
		rc = -ENOMEM;
	if (rc)
		unlink(final);
	return rc;
}

static int compute(struct build *b, const struct master_key *mk,
		   const char *agreement, struct view_result *out,
		   struct size_index *sizes)
{
	struct worker w[MAX_WORKERS];
	struct agg_table *final = NULL;
	unsigned n = worker_count(b);
	char path[PATH_MAX];
	int rc;

	memset(w, 0, sizeof(w));
	rc = scan(b, w, n);
	if (!rc)
		rc = gather(b, w, n, &final);
	for (unsigned i = 0; i < n; i++)
		agg_table_free(w[i].t);
	if (!rc)
		rc = count_pairs(b, final);
	if (!rc)
		rc = write_result(b, mk, agreement, final, path, out, sizes);
	agg_table_free(final);
	runs_remove(&b->group_runs);
	runs_remove(&b->pair_runs);
	if (!rc)
		rc = publish(b->home, path, out);
	return rc;
}

int view_build(const char *home, const struct master_key *mk,
	       const char *agreement, const struct dataview *src,
	       const struct view *view, const struct view_build_opts *opts,
	       struct view_result *out, struct size_index *sizes,
	       struct perr *err)
{
	struct agg_plan plan;
	struct build b = {.home = home, .src = src, .opts = opts};
	size_t half;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(sizes, 0, sizeof(*sizes));
	rc = agg_plan_init(&plan, &src->schema, view, src->plan.filter, err);
	if (rc)
		return rc;
	b.plan = &plan;
	/* Pairs, when the view counts distinct values, get half. */
	half = plan.ndistinct ? opts->memory / 2 : 0;
	b.pair_budget = at_least_min(half);
	b.group_budget = at_least_min(opts->memory - half);
	pthread_mutex_init(&b.lock, NULL);
	rc = random_bytes(b.spill_key, KEY_LEN);
	if (!rc)
		rc = compute(&b, mk, agreement, out, sizes);
	OPENSSL_cleanse(b.spill_key, KEY_LEN);
	remove_temps(&b);
	pthread_mutex_destroy(&b.lock);
	agg_plan_release(&plan);
	if (rc) {
		view_result_release(out);
		size_index_release(sizes);
	}
	return rc;
}
