/*
 * test_viewbuild: computing view results from a real sealed store in a
 * real home.  The result must be the bytes the aggregation engine gives in
 * memory, whatever the memory budget (down to a few KiB, which spills and
 * splits partitions several levels deep) and the number of workers; the
 * result is sealed, sized and hashed exactly, moved into store/, and
 * nothing is left in tmp/, after success or failure.  Spill files hold no
 * plaintext.  Deleting an agreement's results removes rows and files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"

#include "aggregate.h"
#include "catalog.h"
#include "clock.h"
#include "dataview.h"
#include "fileio.h"
#include "home.h"
#include "keys.h"
#include "render.h"
#include "rowfmt.h"
#include "store.h"
#include "viewbuild.h"
#include "viewstore.h"

#define AGREEMENT "agr-v"
#define NROWS 20000
#define PER_BLOCK 500
#define SCHEMA_JSON                                                            \
	"{\"columns\":["                                                       \
	"{\"name\":\"id\",\"type\":\"int\",\"level\":1},"                      \
	"{\"name\":\"city\",\"type\":\"string\",\"level\":1},"                 \
	"{\"name\":\"cost\",\"type\":\"decimal\",\"level\":1},"                \
	"{\"name\":\"patient\",\"type\":\"string\",\"level\":4}]}"

static const char *const cities[] = {
    "Xihu", "Gong,shu", "Bin\"jiang", "Shangcheng", "", "余杭", "Lin'an"};

struct fixture {
	char dir[64];
	struct master_key mk;
	struct catalog *cat;
	struct dataset_version v;
	char store_file[96];
};

static void append_row(struct buf *rows, uint32_t i)
{
	char id[16], cost[24], patient[16];
	const char *city = cities[i % 7];
	struct csv_field f[4] = {
	    {id, 0, false},
	    {city, strlen(city), strpbrk(city, ",\"") != NULL},
	    {cost, 0, false},
	    {patient, 0, false},
	};

	f[0].len = (size_t)snprintf(id, sizeof(id), "%u", i);
	/* some NULL costs, some negative ones */
	if (i % 11)
		f[2].len =
		    (size_t)snprintf(cost, sizeof(cost), "%s%u.%02u",
				     i % 13 ? "" : "-", i % 1000, i % 100);
	f[3].len = (size_t)snprintf(patient, sizeof(patient), "p%u", i % 3000);
	assert_int_equal(rowfmt_append(rows, f, 4), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_writer *w;
	struct buf rows = BUF_INIT;
	uint8_t key[KEY_LEN];
	char label[128], path[PATH_MAX];

	assert_non_null(f);
	strcpy(f->dir, "/tmp/govfs-test-viewbuild.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(home_create(f->dir), 0);
	assert_int_equal(random_bytes(f->mk.bytes, KEY_LEN), 0);
	assert_int_equal(catalog_create(f->dir, &f->cat), 0);
	snprintf(f->store_file, sizeof(f->store_file), "%s/visits.gvs",
		 HOME_STORE_DIR);
	snprintf(path, sizeof(path), "%s/%s", f->dir, f->store_file);
	data_key_label("visits", label, sizeof(label));
	assert_int_equal(data_key_new(&f->mk, label, key, f->v.wrapped_key), 0);
	assert_int_equal(store_writer_open(&w, path, key, 2), 0);
	for (uint32_t b = 0; b < NROWS / PER_BLOCK; b++) {
		for (uint32_t r = 0; r < PER_BLOCK; r++)
			append_row(&rows, b * PER_BLOCK + r);
		assert_int_equal(store_writer_add_block(w, &rows, PER_BLOCK),
				 0);
	}
	buf_release(&rows);
	assert_int_equal(store_writer_finish(w, &f->v.store), 0);
	f->v.dataset = (char *)"visits";
	f->v.ingested_ns = clock_now_ns();
	f->v.ingested_by = (char *)"uid 0";
	f->v.source_sha256 = (char *)"00";
	f->v.schema_json = (char *)SCHEMA_JSON;
	f->v.store_file = f->store_file;
	assert_int_equal(catalog_dataset_add_version(f->cat, &f->v), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc;

	catalog_close(f->cat);
	rc = scratch_remove(f->dir);
	free(f);
	return rc;
}

/* The agreement's one dataset entry with the view, and its dataview. */
struct subject {
	struct agreement agr;
	struct dataview dv;
};

static void open_subject(struct fixture *f, const char *view, const char *rows,
			 struct subject *s)
{
	char text[2048];
	struct perr err;

	snprintf(text, sizeof(text),
		 "{\"id\":\"" AGREEMENT
		 "\",\"grantee\":\"g\",\"scenario\":\"s\","
		 "\"uids\":[0],\"max_level\":4,"
		 "\"valid_from\":\"2025-01-01T00:00:00Z\","
		 "\"valid_until\":\"2026-01-01T00:00:00Z\","
		 "\"datasets\":[{\"dataset\":\"visits\",\"records\":false,"
		 "%s%s%s\"views\":[%s]}]}",
		 rows ? "\"rows\":\"" : "", rows ? rows : "", rows ? "\"," : "",
		 view);
	if (agreement_parse(text, strlen(text), &s->agr, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(dataview_open(&s->dv, f->dir, &f->mk, &f->v,
				       &s->agr.datasets[0], NULL, &err),
			 0);
}

static void close_subject(struct subject *s)
{
	dataview_close(&s->dv);
	agreement_release(&s->agr);
}

/* The view's CSV as the engine makes it in memory, in one table. */
static void expected_csv(struct subject *s, struct buf *csv)
{
	const struct view *view = &s->agr.datasets[0].views[0];
	struct block_decoder *d = block_decoder_new();
	const struct agg_group **shown;
	struct rowfmt_field fields[4];
	struct buf recs = BUF_INIT;
	struct render_plan rp;
	struct agg_plan plan;
	struct agg_table *t;
	struct schema out;
	struct perr err;
	size_t n;

	assert_int_equal(
	    agg_plan_init(&plan, &s->dv.schema, view, s->dv.plan.filter, &err),
	    0);
	t = agg_table_new(&plan);
	for (uint32_t b = 0; b < s->dv.store->info.nblocks; b++) {
		const uint8_t *rows;
		size_t len, pos = 0;

		assert_int_equal(
		    store_read_block(s->dv.store, b, d, &rows, &len), 0);
		for (uint32_t r = 0; r < s->dv.store->blocks[b].nrows; r++) {
			assert_int_equal(
			    rowfmt_next(rows, len, &pos, 4, fields), 0);
			assert_int_equal(agg_table_add(t, fields), 0);
		}
	}
	assert_int_equal(agg_table_count_own_pairs(t), 0);
	assert_int_equal(agg_table_shown_sorted(t, &shown, &n), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(agg_group_output(t, shown[i], &recs), 0);
	assert_int_equal(agg_plan_output_schema(&plan, &out), 0);
	assert_int_equal(render_plan_init_keep_all(&rp, &out), 0);
	csv->len = 0;
	assert_int_equal(buf_append(csv, rp.header.data, rp.header.len), 0);
	assert_int_equal(
	    render_block(&rp, recs.data, recs.len, (uint32_t)n, csv, NULL), 0);
	render_plan_release(&rp);
	schema_release(&out);
	free(shown);
	buf_release(&recs);
	agg_table_free(t);
	agg_plan_release(&plan);
	block_decoder_free(d);
}

static size_t files_in(const char *dir, const char *sub)
{
	char path[PATH_MAX];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* What the progress callback saw, and the plaintext check of tmp/. */
struct watch {
	const char *dir;
	bool merged;
	uint64_t scanned;
	size_t spill_files;
};

static bool file_holds(const char *path, const char *needle)
{
	char buf[1 << 16];
	size_t n, len = strlen(needle);
	bool found = false;
	FILE *fp = fopen(path, "rb");

	if (!fp)
		return false;
	while (!found && (n = fread(buf, 1, sizeof(buf), fp)) > 0)
		found = memmem(buf, n, needle, len) != NULL;
	fclose(fp);
	return found;
}

static void on_progress(void *ctx, const char *phase, uint64_t done,
			uint64_t total)
{
	struct watch *w = ctx;
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d;

	assert_true(done <= total);
	if (!strcmp(phase, "scan")) {
		w->scanned = done;
		assert_int_equal(total, NROWS);
		return;
	}
	assert_string_equal(phase, "merge");
	w->merged = true;
	snprintf(path, sizeof(path), "%s/%s", w->dir, HOME_TMP_DIR);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", w->dir, HOME_TMP_DIR,
			 e->d_name);
		w->spill_files++;
		assert_false(file_holds(path, "Shangcheng"));
		assert_false(file_holds(path, "p2999"));
	}
	closedir(d);
}

/* Build the view (its result r, the size index sizes) and read its
 * result back as served. */
static void build(struct fixture *f, struct subject *s, size_t memory,
		  unsigned workers, struct watch *w, struct view_result *r,
		  struct size_index *sizes, struct buf *csv)
{
	struct view_build_opts opts = {memory, workers, on_progress, w};
	const struct view *view = &s->agr.datasets[0].views[0];
	struct agg_plan plan;
	struct schema out;
	struct dataview res;
	struct perr err;
	uint8_t digest[VIEW_DIGEST_LEN], plain[VIEW_DIGEST_LEN];
	uint8_t key[KEY_LEN], other[KEY_LEN];

	w->dir = f->dir;
	assert_int_equal(view_build(f->dir, &f->mk, AGREEMENT, &s->dv, view,
				    &opts, r, sizes, &err),
			 0);
	assert_int_equal(files_in(f->dir, HOME_TMP_DIR), 0);
	assert_int_equal(w->scanned, NROWS);
	assert_int_equal(strncmp(r->store_file, HOME_STORE_DIR "/", 6), 0);
	/* read it back as the daemon would */
	r->agreement = strdup(AGREEMENT);
	assert_int_equal(agg_plan_init(&plan, &s->dv.schema, view, NULL, &err),
			 0);
	assert_int_equal(agg_plan_output_schema(&plan, &out), 0);
	assert_int_equal(
	    dataview_open_result(&res, f->dir, &f->mk, r, &out, sizes), 0);
	csv->len = 0;
	assert_int_equal(
	    buf_append(csv, res.plan.header.data, res.plan.header.len), 0);
	for (uint32_t b = 0; b < res.store->info.nblocks; b++) {
		struct block_decoder *d = block_decoder_new();
		const uint8_t *rows;
		size_t len, before = csv->len;

		assert_int_equal(store_read_block(res.store, b, d, &rows, &len),
				 0);
		assert_int_equal(render_block(&res.plan, rows, len,
					      res.store->blocks[b].nrows, csv,
					      NULL),
				 0);
		assert_int_equal(csv->len - before, sizes->block_bytes[b]);
		block_decoder_free(d);
	}
	assert_int_equal(csv->len, sizes->total_bytes);
	/* The digest is the HMAC of the CSV under the agreement's own key,
	 * not its plain SHA-256 (which would confirm a guess of it). */
	assert_int_equal(view_digest_key(&f->mk, AGREEMENT, key), 0);
	assert_non_null(HMAC(EVP_sha256(), key, KEY_LEN, csv->data, csv->len,
			     digest, NULL));
	assert_memory_equal(digest, r->digest, VIEW_DIGEST_LEN);
	assert_int_equal(
	    EVP_Digest(csv->data, csv->len, plain, NULL, EVP_sha256(), NULL),
	    1);
	assert_memory_not_equal(plain, r->digest, VIEW_DIGEST_LEN);
	assert_int_equal(view_digest_key(&f->mk, "another", other), 0);
	assert_memory_not_equal(key, other, KEY_LEN);
	dataview_close(&res);
	schema_release(&out);
	agg_plan_release(&plan);
}

static const char big_view[] =
    "{\"name\":\"by_city\",\"group_by\":[\"city\",\"id:bucket:100\"],"
    "\"measures\":[\"count\",\"sum:cost\",\"avg:cost\",\"min:cost\","
    "\"max:patient\",\"count_distinct:patient\"],\"min_group\":3,"
    "\"entity\":\"patient\"}";

static void test_same_bytes_whatever_the_memory(void **state)
{
	static const size_t budgets[] = {1u << 30, 64u << 10, 1u << 10};
	static const unsigned workers[] = {0, 1, 3};
	struct fixture *f = *state;
	struct buf want = BUF_INIT, got = BUF_INIT;
	struct subject s;

	open_subject(f, big_view, NULL, &s);
	expected_csv(&s, &want);
	/* 7 cities times 200 buckets, a header */
	assert_true(want.len > 1000 * 20);
	for (size_t i = 0; i < 3; i++) {
		struct watch w = {0};
		struct size_index sizes;
		struct view_result r;

		build(f, &s, budgets[i], workers[i], &w, &r, &sizes, &got);
		if (got.len != want.len || memcmp(got.data, want.data, got.len))
			fail_msg("budget %zu: result differs", budgets[i]);
		/* a small budget spills; a large one does not */
		assert_int_equal(w.merged, budgets[i] < (1u << 20));
		assert_int_equal(w.spill_files > 0, budgets[i] < (1u << 20));
		assert_int_equal(sizes.rows, r.store.nrows);
		size_index_release(&sizes);
		view_result_release(&r);
	}
	close_subject(&s);
	buf_release(&want);
	buf_release(&got);
}

/* Ten thousand groups in 64 KiB: partitions split again, two levels. */
static void test_deep_partitions(void **state)
{
	struct fixture *f = *state;
	struct buf want = BUF_INIT, got = BUF_INIT;
	struct watch w = {0};
	struct size_index sizes;
	struct view_result r;
	struct subject s;

	open_subject(f,
		     "{\"name\":\"v\",\"group_by\":[\"id:bucket:2\"],"
		     "\"measures\":[\"count\",\"sum:cost\",\"min:city\","
		     "\"count_distinct:patient\"],\"min_group\":2,"
		     "\"entity\":\"patient\"}",
		     NULL, &s);
	expected_csv(&s, &want);
	build(f, &s, 64u << 10, 1, &w, &r, &sizes, &got);
	assert_true(w.merged);
	assert_int_equal(sizes.rows, NROWS / 2);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.data, want.data, want.len);
	size_index_release(&sizes);
	view_result_release(&r);
	close_subject(&s);
	buf_release(&want);
	buf_release(&got);
}

static void test_filter_and_small_groups(void **state)
{
	struct fixture *f = *state;
	struct buf want = BUF_INIT, got = BUF_INIT;
	struct watch w = {0};
	struct size_index sizes;
	struct view_result r;
	struct subject s;

	/* every group below min_group: a header-only result */
	open_subject(f,
		     "{\"name\":\"v\",\"group_by\":[\"id\"],\"measures\":"
		     "[\"count\"]}",
		     NULL, &s);
	build(f, &s, 8u << 10, 2, &w, &r, &sizes, &got);
	assert_int_equal(got.len, strlen("id,count\n"));
	assert_memory_equal(got.data, "id,count\n", got.len);
	assert_int_equal(sizes.rows, 0);
	size_index_release(&sizes);
	view_result_release(&r);
	close_subject(&s);
	/* the rows filter applies first */
	open_subject(f,
		     "{\"name\":\"v\",\"group_by\":[\"city\"],\"measures\":"
		     "[\"count\",\"sum:cost\"],\"min_group\":2}",
		     "id < 100 and cost is not null", &s);
	expected_csv(&s, &want);
	build(f, &s, 1u << 20, 0, &w, &r, &sizes, &got);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.data, want.data, want.len);
	/* ids 0..99 with a cost, by city: 91 rows in 7 groups */
	assert_non_null(memmem(got.data, got.len, "\"Gong,shu\",", 11));
	size_index_release(&sizes);
	view_result_release(&r);
	close_subject(&s);
	buf_release(&want);
	buf_release(&got);
}

static void test_failure_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct view_build_opts opts = {4u << 10, 2, NULL, NULL};
	char path[PATH_MAX];
	struct size_index sizes;
	struct view_result r;
	struct subject s;
	struct perr err;
	uint8_t byte;
	int fd;

	open_subject(f, big_view, NULL, &s);
	/* damage a block in the middle, after the store was opened */
	snprintf(path, sizeof(path), "%s/%s", f->dir, f->store_file);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(
	    pread_all(fd, &byte, 1, s.dv.store->blocks[20].offset + 7), 0);
	byte ^= 0x40;
	assert_int_equal(
	    pwrite_all(fd, &byte, 1, s.dv.store->blocks[20].offset + 7), 0);
	close(fd);
	assert_int_equal(view_build(f->dir, &f->mk, AGREEMENT, &s.dv,
				    &s.agr.datasets[0].views[0], &opts, &r,
				    &sizes, &err),
			 -EIO);
	assert_int_equal(files_in(f->dir, HOME_TMP_DIR), 0);
	assert_int_equal(files_in(f->dir, HOME_STORE_DIR), 1);
	close_subject(&s);
}

static void test_delete_agreement(void **state)
{
	struct fixture *f = *state;
	struct view_results_deleted del;
	struct watch w = {0};
	struct view_result r[2], got;
	struct size_index sizes;
	uint64_t bytes = 0;
	struct buf csv = BUF_INIT;
	struct subject s;

	open_subject(f, big_view, NULL, &s);
	for (int i = 0; i < 2; i++) {
		build(f, &s, 1u << 20, 0, &w, &r[i], &sizes, &csv);
		size_index_release(&sizes);
		r[i].revision = i + 1;
		r[i].dataset = strdup("visits");
		r[i].version = f->v.version;
		r[i].view = strdup("by_city");
		assert_int_equal(catalog_view_result_put(f->cat, &r[i]), 0);
		bytes += r[i].store.file_bytes;
		view_result_release(&r[i]);
	}
	assert_int_equal(files_in(f->dir, HOME_STORE_DIR), 3);
	assert_int_equal(
	    view_results_delete_agreement(f->cat, f->dir, AGREEMENT, &del), 0);
	assert_int_equal(del.count, 2);
	assert_int_equal(del.bytes, bytes);
	assert_int_equal(files_in(f->dir, HOME_STORE_DIR), 1);
	assert_int_equal(catalog_view_result_get(f->cat, AGREEMENT, 1, "visits",
						 f->v.version, "by_city", &got),
			 -ENOENT);
	/* again: nothing left to delete */
	assert_int_equal(
	    view_results_delete_agreement(f->cat, f->dir, AGREEMENT, &del), 0);
	assert_int_equal(del.count, 0);
	assert_int_equal(del.bytes, 0);
	close_subject(&s);
	buf_release(&csv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_same_bytes_whatever_the_memory,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deep_partitions, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_filter_and_small_groups, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_failure_leaves_nothing, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_delete_agreement, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
