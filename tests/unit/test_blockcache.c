/*
 * test_blockcache: the block cache over a real data.csv view (a small
 * home built through the library as govfsctl builds it): bytes served,
 * hits, one rendering for concurrent readers, eviction within the budget
 * that spares held blocks, prefetch by the workers, corrupt blocks failing
 * every reader without being kept, and a clean free with work queued.
 *
 * Whether a block is cached is observed without timing: a probe copy of
 * the view with every size in its index off by one shares the view's id,
 * so it is served from the cache, but any rendering through it fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"

#include "blockcache.h"
#include "catalog.h"
#include "clock.h"
#include "dataview.h"
#include "home.h"
#include "keys.h"
#include "mount_state.h"
#include "rowfmt.h"
#include "store.h"

#define AGREEMENT "agr-1"
#define SCHEMA_JSON                                                            \
	"{\"columns\":["                                                       \
	"{\"name\":\"id\",\"type\":\"int\",\"level\":1},"                      \
	"{\"name\":\"name\",\"type\":\"string\",\"level\":1},"                 \
	"{\"name\":\"city\",\"type\":\"string\",\"level\":1}]}"
#define POLICY                                                                 \
	"{\"id\":\"" AGREEMENT "\",\"grantee\":\"g\",\"scenario\":\"s\","      \
	"\"uids\":[1000],\"valid_from\":\"2000-01-01T00:00:00Z\","             \
	"\"valid_until\":\"2099-01-01T00:00:00Z\",\"datasets\":[{"             \
	"\"dataset\":\"visits\",\"columns\":{\"id\":\"keep\","                 \
	"\"name\":\"redact\",\"city\":\"keep\"}}]}"

#define NBLOCKS 8
#define PER_BLOCK 2000
#define NTHREADS 8
#define WAIT_MS 20000

/* A home with one dataset of NBLOCKS blocks shown by one agreement. */
struct fixture {
	char dir[64];
	char store_path[PATH_MAX];
	struct master_key mk;
	struct catalog *cat;
	struct mount_state *st;
	struct file_view *fv;
	struct buf want[NBLOCKS]; /* each block's bytes, made independently */
	uint64_t max_len;
};

static const char *const cities[] = {"Xihu", "Gong,shu", "Shangcheng"};

static void append_row(struct buf *rows, uint32_t i)
{
	char id[16], name[32];
	const char *city = cities[i % 3];
	struct csv_field fields[3] = {
	    {id, 0, false},
	    {name, 0, false},
	    {city, strlen(city), strchr(city, ',') != NULL},
	};

	fields[0].len = (size_t)snprintf(id, sizeof(id), "%u", i);
	fields[1].len = (size_t)snprintf(name, sizeof(name), "name %u", i);
	if (rowfmt_append(rows, fields, 3))
		abort();
}

/* Block b as data.csv must show it: id kept, name redacted, city kept. */
static int expected_block(uint32_t b, struct buf *out)
{
	static const char *const shown[] = {"Xihu", "\"Gong,shu\"",
					    "Shangcheng"};
	char line[64];
	int rc = 0;

	for (uint32_t i = b * PER_BLOCK; !rc && i < (b + 1) * PER_BLOCK; i++) {
		int n = snprintf(line, sizeof(line), "%u,***,%s\n", i,
				 shown[i % 3]);

		rc = buf_append(out, line, (size_t)n);
	}
	return rc;
}

/* Seal the dataset's store and record its version, as ingest does. */
static int add_version(struct fixture *f)
{
	struct dataset_version v = {0};
	struct store_writer *w;
	struct buf rows = BUF_INIT;
	uint8_t key[KEY_LEN];
	char label[128];
	int rc;

	snprintf(f->store_path, sizeof(f->store_path), "%s/%s/visits-1.gvs",
		 f->dir, HOME_STORE_DIR);
	data_key_label("visits", label, sizeof(label));
	rc = data_key_new(&f->mk, label, key, v.wrapped_key);
	if (!rc)
		rc = store_writer_open(&w, f->store_path, key, 2);
	if (rc)
		return rc;
	for (uint32_t b = 0; !rc && b < NBLOCKS; b++) {
		for (uint32_t r = 0; r < PER_BLOCK; r++)
			append_row(&rows, b * PER_BLOCK + r);
		rc = store_writer_add_block(w, &rows, PER_BLOCK);
	}
	buf_release(&rows);
	if (rc) {
		store_writer_abort(w);
		return rc;
	}
	rc = store_writer_finish(w, &v.store);
	if (rc)
		return rc;
	v.dataset = (char *)"visits";
	v.ingested_ns = clock_now_ns();
	v.ingested_by = (char *)"uid 0 (root)";
	v.source_name = (char *)"unit.csv";
	v.source_sha256 = (char *)"00";
	v.schema_json = (char *)SCHEMA_JSON;
	v.store_file = f->store_path + strlen(f->dir) + 1;
	return catalog_dataset_add_version(f->cat, &v);
}

/* Seal sizes as the size index of version of visits under revision 1,
 * with the size key of the plain pseudonym key, and record it. */
static int put_sizes(struct fixture *f, const uint8_t key[KEY_LEN],
		     int64_t version, const struct size_index *sizes)
{
	const struct size_index_place at = {.agreement = AGREEMENT,
					    .revision = 1,
					    .dataset = "visits",
					    .version = version};
	struct buf sealed = BUF_INIT;
	uint8_t size_key[KEY_LEN];
	int rc = size_key_derive(key, size_key);

	if (!rc)
		rc = size_index_seal(size_key, &at, sizes, &sealed);
	if (!rc)
		rc = catalog_size_index_put(f->cat, AGREEMENT, 1, "visits",
					    version, &sealed);
	buf_release(&sealed);
	return rc;
}

/* Record POLICY as revision 1 with its size index, as apply does. */
static int apply(struct fixture *f)
{
	struct agreement_record rec = {0};
	struct dataset_version v;
	struct agreement agr;
	struct dataview dv;
	uint8_t key[KEY_LEN];
	char label[128];
	struct perr err;
	int rc;

	pseudonym_key_label(AGREEMENT, label, sizeof(label));
	rc = data_key_new(&f->mk, label, key, rec.pseudonym_key);
	if (rc)
		return rc;
	rec.id = (char *)AGREEMENT;
	rec.applied_by = (char *)"uid 0 (root)";
	rec.policy_json = (char *)POLICY;
	rec.has_pseudonym_key = true;
	rc = catalog_agreement_add_revision(f->cat, &rec);
	if (!rc)
		rc = agreement_parse(POLICY, strlen(POLICY), &agr, &err);
	if (rc)
		return rc;
	rc = catalog_dataset_latest(f->cat, "visits", &v);
	if (rc)
		goto out_agreement;
	rc =
	    dataview_open(&dv, f->dir, &f->mk, &v, &agr.datasets[0], key, &err);
	if (!rc) {
		rc = dataview_compute_sizes(&dv);
		if (!rc)
			rc = put_sizes(f, key, v.version, &dv.sizes);
		dataview_close(&dv);
	}
	dataset_version_release(&v);
out_agreement:
	agreement_release(&agr);
	return rc;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char why[256];

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/govfs-test-blockcache.XXXXXX");
	if (!mkdtemp(f->dir) || home_create(f->dir) ||
	    random_bytes(f->mk.bytes, KEY_LEN) ||
	    catalog_create(f->dir, &f->cat) || add_version(f) || apply(f))
		return -1;
	if (mount_state_load(f->cat, f->dir, &f->mk, AGREEMENT, NULL, false,
			     &f->st, why, sizeof(why))) {
		fprintf(stderr, "mount_state_load: %s\n", why);
		return -1;
	}
	f->fv = mount_state_dataset(f->st, "visits")->data;
	for (uint32_t b = 0; b < NBLOCKS; b++) {
		if (expected_block(b, &f->want[b]))
			return -1;
		if (f->want[b].len > f->max_len)
			f->max_len = f->want[b].len;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc;

	mount_state_put(f->st);
	catalog_close(f->cat);
	for (uint32_t b = 0; b < NBLOCKS; b++)
		buf_release(&f->want[b]);
	rc = scratch_remove(f->dir);
	free(f);
	return rc;
}

struct reader {
	struct blockcache *bc;
	struct file_view *fv;
	uint32_t block;
	const struct cached_block *blk;
	int rc;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	r->rc = blockcache_get(r->bc, r->fv, r->block, &r->blk);
	return NULL;
}

/*
 * blockcache_get from a reader thread that ends before the cache is
 * freed, as libfuse's request threads do: the cache keeps a render
 * scratch for each thread that renders, freed when that thread ends.
 */
static int get_block(struct blockcache *bc, struct file_view *fv, uint32_t b,
		     const struct cached_block **out)
{
	struct reader r = {.bc = bc, .fv = fv, .block = b, .rc = 1};
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, reader_main, &r), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (!r.rc)
		*out = r.blk;
	return r.rc;
}

/* A copy of fv, same id, whose size index is wrong in every block. */
struct probe {
	struct file_view fv;
	uint64_t *bad;
};

static void probe_init(struct probe *p, const struct file_view *fv)
{
	uint32_t n = fv->dv.sizes.nblocks;

	memcpy(&p->fv, fv, sizeof(p->fv));
	p->bad = calloc(n + 1, sizeof(*p->bad));
	assert_non_null(p->bad);
	for (uint32_t b = 0; b < n; b++)
		p->bad[b] = fv->dv.sizes.block_bytes[b] + 1;
	p->fv.dv.sizes.block_bytes = p->bad;
}

static void probe_release(struct probe *p)
{
	free(p->bad);
}

/*
 * Whether block b of fv is in the cache now; *blk (if not NULL) says
 * which cached block was served.  Probing leaves the cache as it was.
 */
static bool cached(struct blockcache *bc, const struct file_view *fv,
		   uint32_t b, const struct cached_block **blk)
{
	const struct cached_block *got = NULL;
	struct probe p;
	int rc;

	probe_init(&p, fv);
	rc = get_block(bc, &p.fv, b, &got);
	probe_release(&p);
	if (rc) {
		assert_int_equal(rc, -EIO);
		return false;
	}
	if (blk)
		*blk = got;
	blockcache_put(bc, got);
	return true;
}

static void expect_bytes(const struct fixture *f, uint32_t b,
			 const struct cached_block *blk)
{
	assert_non_null(blk->data);
	assert_int_equal(blk->len, f->want[b].len);
	assert_memory_equal(blk->data, f->want[b].data, f->want[b].len);
}

static void test_probe_sees_only_cached_blocks(void **state)
{
	struct fixture *f = *state;
	struct blockcache *bc = blockcache_new(64u << 20, 0);
	const struct cached_block *blk;

	/* The probe itself must not render, nor fill the cache. */
	assert_false(cached(bc, f->fv, 0, NULL));
	assert_false(cached(bc, f->fv, 0, NULL));
	assert_int_equal(get_block(bc, f->fv, 0, &blk), 0);
	blockcache_put(bc, blk);
	assert_true(cached(bc, f->fv, 0, NULL));
	assert_false(cached(bc, f->fv, 1, NULL));
	blockcache_free(bc);
}

static void test_get_returns_rendered_bytes(void **state)
{
	struct fixture *f = *state;
	struct blockcache *bc = blockcache_new(64u << 20, 0);
	const struct cached_block *blk;

	assert_non_null(bc);
	/* Out of order, to show the block number, not the call, decides. */
	for (uint32_t i = 0; i < NBLOCKS; i++) {
		uint32_t b = (i * 5) % NBLOCKS;

		assert_int_equal(get_block(bc, f->fv, b, &blk), 0);
		assert_int_equal(blk->len, f->fv->dv.sizes.block_bytes[b]);
		expect_bytes(f, b, blk);
		blockcache_put(bc, blk);
	}
	blockcache_free(bc);
}

/*
 * A block number past the last is corrupt input like any other: -EIO, as
 * file_view_render answers, without reading past the size index (which
 * here ends where an unreadable page begins).
 */
static void test_get_past_last_block_is_eio(void **state)
{
	struct fixture *f = *state;
	struct blockcache *bc = blockcache_new(64u << 20, 0);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = NBLOCKS * sizeof(uint64_t);
	const struct cached_block *blk;
	struct file_view fv;
	uint8_t *map;

	map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + page, page, PROT_NONE), 0);
	memcpy(&fv, f->fv, sizeof(fv));
	fv.dv.sizes.block_bytes = (uint64_t *)(map + page - len);
	memcpy(fv.dv.sizes.block_bytes, f->fv->dv.sizes.block_bytes, len);
	assert_int_equal(blockcache_get(bc, &fv, NBLOCKS - 1, &blk), 0);
	blockcache_put(bc, blk);
	assert_int_equal(blockcache_get(bc, &fv, NBLOCKS, &blk), -EIO);
	assert_int_equal(blockcache_get(bc, &fv, UINT32_MAX, &blk), -EIO);
	blockcache_free(bc);
	munmap(map, 2 * page);
}

static void test_second_get_hits(void **state)
{
	struct fixture *f = *state;
	struct blockcache *bc = blockcache_new(64u << 20, 0);
	const struct cached_block *a, *b, *c;

	assert_int_equal(get_block(bc, f->fv, 3, &a), 0);
	/* While held, and after release: the same block, same bytes. */
	assert_int_equal(get_block(bc, f->fv, 3, &b), 0);
	assert_ptr_equal(a, b);
	assert_ptr_equal(a->data, b->data);
	blockcache_put(bc, a);
	blockcache_put(bc, b);
	assert_true(cached(bc, f->fv, 3, &c));
	assert_ptr_equal(c, a);
	expect_bytes(f, 3, c);
	/* Only that block. */
	assert_false(cached(bc, f->fv, 4, NULL));
	blockcache_free(bc);
}

static void test_views_are_kept_apart(void **state)
{
	struct fixture *f = *state;
	struct blockcache *bc = blockcache_new(64u << 20, 0);
	struct mount_state *again;
	const struct cached_block *blk;
	struct file_view *other;
	char why[256];

	/* A second load with no prev makes a new view with a new id. */
	assert_int_equal(mount_state_load(f->cat, f->dir, &f->mk, AGREEMENT,
					  NULL, false, &again, why,
					  sizeof(why)),
			 0);
	other = mount_state_dataset(again, "visits")->data;
	assert_true(other->id != f->fv->id);
	assert_int_equal(get_block(bc, f->fv, 2, &blk), 0);
	blockcache_put(bc, blk);
	assert_true(cached(bc, f->fv, 2, NULL));
	assert_false(cached(bc, other, 2, NULL));
	mount_state_put(again);
	blockcache_free(bc);
}

struct getter {
	pthread_t thread;
	struct blockcache *bc;
	struct file_view *fv;
	uint32_t block;
	const struct buf *want;
	pthread_barrier_t *start, *held;
	int rc;
	const struct cached_block *blk;
	bool bytes_ok;
};

/* Get one block at the same moment as the others, hold it until all
 * have theirs, then release it.  No cmocka asserts off the main thread. */
static void *getter_main(void *arg)
{
	struct getter *g = arg;

	pthread_barrier_wait(g->start);
	g->rc = blockcache_get(g->bc, g->fv, g->block, &g->blk);
	if (!g->rc)
		g->bytes_ok =
		    g->blk->data && g->blk->len == g->want->len &&
		    !memcmp(g->blk->data, g->want->data, g->want->len);
	pthread_barrier_wait(g->held);
	if (!g->rc)
		blockcache_put(g->bc, g->blk);
	return NULL;
}

/* NTHREADS threads get block b of fv at once; results in g. */
static void get_together(struct blockcache *bc, struct file_view *fv,
			 uint32_t b, const struct buf *want,
			 struct getter g[NTHREADS])
{
	pthread_barrier_t start, held;

	pthread_barrier_init(&start, NULL, NTHREADS);
	pthread_barrier_init(&held, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		g[i] = (struct getter){.bc = bc,
				       .fv = fv,
				       .block = b,
				       .want = want,
				       .start = &start,
				       .held = &held,
				       .rc = 1};
		assert_int_equal(
		    pthread_create(&g[i].thread, NULL, getter_main, &g[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(g[i].thread, NULL);
	pthread_barrier_destroy(&start);
	pthread_barrier_destroy(&held);
}

static void test_concurrent_gets_render_once(void **state)
{
	struct fixture *f = *state;
	struct blockcache *bc = blockcache_new(64u << 20, 0);
	struct getter g[NTHREADS];
	const struct cached_block *blk;

	for (uint32_t b = 0; b < NBLOCKS; b++) {
		get_together(bc, f->fv, b, &f->want[b], g);
		/*
		 * All held at once, so two renderings would be two blocks at
		 * two addresses: one address means one rendering.
		 */
		for (int i = 0; i < NTHREADS; i++) {
			assert_int_equal(g[i].rc, 0);
			assert_true(g[i].bytes_ok);
			assert_ptr_equal(g[i].blk, g[0].blk);
			assert_ptr_equal(g[i].blk->data, g[0].blk->data);
		}
		assert_true(cached(bc, f->fv, b, &blk));
		assert_ptr_equal(blk, g[0].blk);
	}
	blockcache_free(bc);
}

/* Get and release every block in order; then which are still cached. */
static size_t fill_then_probe(struct fixture *f, struct blockcache *bc,
			      bool in[NBLOCKS])
{
	const struct cached_block *blk;
	size_t bytes = 0;

	for (uint32_t b = 0; b < NBLOCKS; b++) {
		assert_int_equal(get_block(bc, f->fv, b, &blk), 0);
		expect_bytes(f, b, blk);
		blockcache_put(bc, blk);
	}
	for (uint32_t b = 0; b < NBLOCKS; b++) {
		in[b] = cached(bc, f->fv, b, NULL);
		bytes += in[b] ? f->want[b].len : 0;
	}
	return bytes;
}

static void test_eviction_keeps_within_budget(void **state)
{
	struct fixture *f = *state;
	/* Room for at least three blocks however buffers are rounded up
	 * (less than twice their length), and not for all of them. */
	size_t budget = 6 * f->max_len;
	struct blockcache *bc = blockcache_new(budget, 0);
	bool in[NBLOCKS];
	size_t bytes = fill_then_probe(f, bc, in);
	uint32_t first = 0, n = 0;

	assert_true(bytes <= budget);
	while (first < NBLOCKS && !in[first])
		first++;
	for (uint32_t b = first; b < NBLOCKS; b++) {
		/* Least recently used out first: the newest stay. */
		assert_true(in[b]);
		n++;
	}
	assert_true(n >= 3);
	assert_false(in[0]);
	blockcache_free(bc);
}

static void test_large_budget_keeps_everything(void **state)
{
	struct fixture *f = *state;
	struct blockcache *bc = blockcache_new(64u << 20, 0);
	bool in[NBLOCKS];

	fill_then_probe(f, bc, in);
	for (uint32_t b = 0; b < NBLOCKS; b++)
		assert_true(in[b]);
	blockcache_free(bc);
}

static void test_recent_use_protects_from_eviction(void **state)
{
	struct fixture *f = *state;
	struct blockcache *bc = blockcache_new(6 * f->max_len, 0);
	const struct cached_block *blk;
	bool in[NBLOCKS];

	fill_then_probe(f, bc, in);
	assert_true(in[NBLOCKS - 3]);
	/* Touch the oldest survivor; the next newcomers evict others. */
	assert_int_equal(get_block(bc, f->fv, NBLOCKS - 3, &blk), 0);
	blockcache_put(bc, blk);
	for (uint32_t b = 0; b < 2; b++) {
		assert_int_equal(get_block(bc, f->fv, b, &blk), 0);
		blockcache_put(bc, blk);
	}
	assert_true(cached(bc, f->fv, NBLOCKS - 3, NULL));
	assert_true(cached(bc, f->fv, 1, NULL));
	blockcache_free(bc);
}

static void test_held_block_never_evicted(void **state)
{
	struct fixture *f = *state;
	/* A zero budget evicts every block the moment it is released. */
	struct blockcache *bc = blockcache_new(0, 0);
	const struct cached_block *held, *blk, *again;

	assert_int_equal(get_block(bc, f->fv, 0, &held), 0);
	for (int round = 0; round < 3; round++) {
		for (uint32_t b = 1; b < NBLOCKS; b++) {
			assert_int_equal(get_block(bc, f->fv, b, &blk), 0);
			expect_bytes(f, b, blk);
			blockcache_put(bc, blk);
			assert_false(cached(bc, f->fv, b, NULL));
		}
	}
	/* Still there, unchanged, and served to the next reader. */
	expect_bytes(f, 0, held);
	assert_int_equal(get_block(bc, f->fv, 0, &again), 0);
	assert_ptr_equal(again, held);
	blockcache_put(bc, again);
	assert_true(cached(bc, f->fv, 0, NULL));
	blockcache_put(bc, held);
	assert_false(cached(bc, f->fv, 0, NULL));
	blockcache_free(bc);
}

/* A cut drops every block not in use; one held stays valid until put. */
static void test_drop_all_keeps_only_held_blocks(void **state)
{
	struct fixture *f = *state;
	struct blockcache *bc = blockcache_new(64u << 20, 0);
	const struct cached_block *held, *blk;

	for (uint32_t b = 0; b < NBLOCKS; b++) {
		assert_int_equal(get_block(bc, f->fv, b, &blk), 0);
		blockcache_put(bc, blk);
	}
	assert_int_equal(get_block(bc, f->fv, 2, &held), 0);
	blockcache_drop_all(bc);
	for (uint32_t b = 0; b < NBLOCKS; b++)
		if (b != 2)
			assert_false(cached(bc, f->fv, b, NULL));
	expect_bytes(f, 2, held);
	assert_true(cached(bc, f->fv, 2, NULL));
	blockcache_put(bc, held);
	/* Rendered again on demand, with the same bytes. */
	assert_int_equal(get_block(bc, f->fv, 5, &blk), 0);
	expect_bytes(f, 5, blk);
	blockcache_put(bc, blk);
	blockcache_free(bc);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/*
 * Wait until the workers have cached block b.  A probe that comes before
 * a worker could, in a narrow window, make it skip the job; asking again
 * for that one block keeps the test free of timing.
 */
static bool wait_cached(struct blockcache *bc, struct file_view *fv, uint32_t b)
{
	for (int ms = 0; ms < WAIT_MS; ms += 5) {
		if (cached(bc, fv, b, NULL))
			return true;
		blockcache_prefetch(bc, fv, b, 1);
		sleep_ms(5);
	}
	return false;
}

static void test_prefetch_then_get_hits(void **state)
{
	struct fixture *f = *state;
	struct blockcache *bc = blockcache_new(64u << 20, 2);
	const struct cached_block *blk;

	blockcache_prefetch(bc, f->fv, 2, 4);
	for (uint32_t b = 2; b < 6; b++) {
		assert_true(wait_cached(bc, f->fv, b));
		assert_int_equal(get_block(bc, f->fv, b, &blk), 0);
		expect_bytes(f, b, blk);
		blockcache_put(bc, blk);
	}
	/* Only what was asked for. */
	assert_false(cached(bc, f->fv, 1, NULL));
	assert_false(cached(bc, f->fv, 6, NULL));
	/* A range past the end is cut at the last block. */
	blockcache_prefetch(bc, f->fv, NBLOCKS - 1, 100);
	assert_true(wait_cached(bc, f->fv, NBLOCKS - 1));
	blockcache_free(bc);
}

static void test_prefetch_without_workers_is_harmless(void **state)
{
	struct fixture *f = *state;
	struct blockcache *bc = blockcache_new(64u << 20, 0);
	const struct cached_block *blk;

	blockcache_prefetch(bc, f->fv, 0, NBLOCKS);
	assert_int_equal(get_block(bc, f->fv, 0, &blk), 0);
	expect_bytes(f, 0, blk);
	blockcache_put(bc, blk);
	blockcache_free(bc);
}

/* Every one of NTHREADS simultaneous readers of block b gets -EIO. */
static void expect_all_fail(struct fixture *f, struct blockcache *bc,
			    uint32_t b)
{
	struct getter g[NTHREADS];

	get_together(bc, f->fv, b, &f->want[b], g);
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(g[i].rc, -EIO);
}

static void test_corrupt_size_index_fails_every_reader(void **state)
{
	struct fixture *f = *state;
	struct blockcache *bc = blockcache_new(64u << 20, 0);
	uint64_t *sizes = f->fv->dv.sizes.block_bytes;
	const struct cached_block *blk;

	sizes[5]++;
	expect_all_fail(f, bc, 5);
	sizes[5] -= 2;
	expect_all_fail(f, bc, 5);
	sizes[5]++;
	/* The failure was not kept: fixed, the block is served. */
	assert_int_equal(get_block(bc, f->fv, 5, &blk), 0);
	expect_bytes(f, 5, blk);
	blockcache_put(bc, blk);
	blockcache_free(bc);
}

/* Flip one byte of the file at off (twice restores it). */
static void flip_byte(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

static void test_corrupt_store_block_fails_every_reader(void **state)
{
	struct fixture *f = *state;
	struct blockcache *bc = blockcache_new(64u << 20, 2);
	uint64_t off = f->fv->dv.store->blocks[4].offset + 7;
	const struct cached_block *blk;

	assert_int_equal(get_block(bc, f->fv, 3, &blk), 0);
	blockcache_put(bc, blk);
	flip_byte(f->store_path, off);
	expect_all_fail(f, bc, 4);
	/* A worker's failure is not kept either. */
	blockcache_prefetch(bc, f->fv, 4, 1);
	expect_all_fail(f, bc, 4);
	/* Neighbours are unaffected. */
	assert_int_equal(get_block(bc, f->fv, 5, &blk), 0);
	expect_bytes(f, 5, blk);
	blockcache_put(bc, blk);
	flip_byte(f->store_path, off);
	assert_int_equal(get_block(bc, f->fv, 4, &blk), 0);
	expect_bytes(f, 4, blk);
	blockcache_put(bc, blk);
	assert_true(cached(bc, f->fv, 3, NULL));
	blockcache_free(bc);
}

static void test_failed_prefetch_is_not_kept(void **state)
{
	struct fixture *f = *state;
	/* One worker: jobs run in the order they were asked for. */
	struct blockcache *bc = blockcache_new(64u << 20, 1);
	uint64_t off = f->fv->dv.store->blocks[4].offset + 7;
	const struct cached_block *blk;

	flip_byte(f->store_path, off);
	blockcache_prefetch(bc, f->fv, 4, 1);
	blockcache_prefetch(bc, f->fv, 6, 1);
	/* Block 6 cached means the job for block 4 has run, and failed. */
	assert_true(wait_cached(bc, f->fv, 6));
	flip_byte(f->store_path, off);
	assert_int_equal(get_block(bc, f->fv, 4, &blk), 0);
	expect_bytes(f, 4, blk);
	blockcache_put(bc, blk);
	blockcache_free(bc);
}

static void test_free_with_queued_prefetches(void **state)
{
	struct fixture *f = *state;

	for (int round = 0; round < 20; round++) {
		struct blockcache *bc = blockcache_new(4 * f->max_len, 2);
		struct mount_state *st;
		char why[256];

		assert_non_null(bc);
		/* A view only the queued jobs still hold when freed. */
		assert_int_equal(mount_state_load(f->cat, f->dir, &f->mk,
						  AGREEMENT, NULL, false, &st,
						  why, sizeof(why)),
				 0);
		for (int i = 0; i < 4; i++)
			blockcache_prefetch(
			    bc, mount_state_dataset(st, "visits")->data, 0,
			    NBLOCKS);
		blockcache_prefetch(bc, f->fv, 0, NBLOCKS);
		mount_state_put(st);
		if (round % 2)
			sleep_ms(1);
		blockcache_free(bc);
	}
}

static void test_free_of_empty_cache(void **state)
{
	(void)state;
	blockcache_free(blockcache_new(0, 0));
	blockcache_free(blockcache_new(1 << 20, 4));
	blockcache_free(NULL);
}

/* One cache's life with one block rendered by this (long-lived) thread. */
static void render_on_this_thread(struct fixture *f)
{
	struct blockcache *bc = blockcache_new(64u << 20, 0);
	const struct cached_block *blk;

	assert_int_equal(blockcache_get(bc, f->fv, 0, &blk), 0);
	blockcache_put(bc, blk);
	blockcache_free(bc);
}

/*
 * blockcache_free frees everything: also what rendering left behind for
 * a thread that lives on after the cache, such as the daemon's main
 * thread in single-threaded mode.
 */
static void test_free_releases_scratch_of_live_threads(void **state)
{
	struct fixture *f = *state;
	size_t before, after;

	render_on_this_thread(f);
	before = mallinfo2().uordblks;
	for (int round = 0; round < 20; round++)
		render_on_this_thread(f);
	after = mallinfo2().uordblks;
	assert_true(after < before + (64u << 10));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_probe_sees_only_cached_blocks),
	    T(test_get_returns_rendered_bytes),
	    T(test_second_get_hits),
	    T(test_views_are_kept_apart),
	    T(test_concurrent_gets_render_once),
	    T(test_eviction_keeps_within_budget),
	    T(test_large_budget_keeps_everything),
	    T(test_recent_use_protects_from_eviction),
	    T(test_held_block_never_evicted),
	    T(test_drop_all_keeps_only_held_blocks),
	    T(test_prefetch_then_get_hits),
	    T(test_prefetch_without_workers_is_harmless),
	    T(test_corrupt_size_index_fails_every_reader),
	    T(test_corrupt_store_block_fails_every_reader),
	    T(test_failed_prefetch_is_not_kept),
	    T(test_free_with_queued_prefetches),
	    cmocka_unit_test(test_free_of_empty_cache),
	    T(test_get_past_last_block_is_eio),
	    T(test_free_releases_scratch_of_live_threads),
	};

	umask(077);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
