/*
 * test_mount_state: a mount's state built from a small real home (a
 * catalog, sealed store files, agreements with their size indexes, all
 * made through the library as govfsctl makes them): the datasets it
 * shows, the data.csv geometry (size, block_at at every boundary), block
 * rendering checked against the size index, README.txt and schema.json,
 * view results (their bytes, their currency by bytes and by definition),
 * file_view reuse and currency across revisions, time phases, and files
 * whose sealed size index does not open (moved, altered: a fault each).
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "scratch.h"

#include "catalog.h"
#include "clock.h"
#include "dataview.h"
#include "home.h"
#include "keys.h"
#include "mount_state.h"
#include "rowfmt.h"
#include "store.h"
#include "viewbuild.h"

/* ---- a small real home ---- */

#define AGREEMENT "agr-1"
#define SCHEMA_JSON                                                            \
	"{\"columns\":["                                                       \
	"{\"name\":\"id\",\"type\":\"int\",\"level\":1},"                      \
	"{\"name\":\"name\",\"type\":\"string\",\"level\":1},"                 \
	"{\"name\":\"city\",\"type\":\"string\",\"level\":1},"                 \
	"{\"name\":\"note\",\"type\":\"string\",\"level\":1}]}"
/* id kept, name redacted, city kept, note dropped (not named). */
#define DS_VISITS                                                              \
	"{\"dataset\":\"visits\",\"columns\":{\"id\":\"keep\","                \
	"\"name\":\"redact\",\"city\":\"keep\"}}"
#define DS_LABS                                                                \
	"{\"dataset\":\"labs\",\"columns\":{\"id\":\"keep\","                  \
	"\"name\":\"redact\",\"city\":\"keep\"}}"
#define HEADER "id,name,city\n"
#define ALWAYS "2000-01-01T00:00:00Z", "2099-01-01T00:00:00+08:00"

struct fixture {
	char dir[64];
	struct master_key mk;
	struct catalog *cat;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/govfs-test-mount-state.XXXXXX");
	if (!mkdtemp(f->dir) || home_create(f->dir) ||
	    random_bytes(f->mk.bytes, KEY_LEN) ||
	    catalog_create(f->dir, &f->cat)) {
		free(f);
		return -1;
	}
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

static const char *const cities[] = {"Xihu", "Gong,shu", "Bin\"jiang",
				     "Shangcheng"};

/* The city of row i as data.csv writes it (RFC 4180 quoting). */
static const char *city_csv(uint32_t i)
{
	static const char *const quoted[] = {"Xihu", "\"Gong,shu\"",
					     "\"Bin\"\"jiang\"", "Shangcheng"};

	return quoted[i % 4];
}

static void append_row(struct buf *rows, uint32_t i)
{
	char id[16], name[32], note[48];
	const char *city = cities[i % 4];
	struct csv_field fields[4] = {
	    {id, 0, false},
	    {name, 0, false},
	    {city, strlen(city), strpbrk(city, ",\"") != NULL},
	    {note, 0, true},
	};

	fields[0].len = (size_t)snprintf(id, sizeof(id), "%u", i);
	fields[1].len = (size_t)snprintf(name, sizeof(name), "name-%u", i);
	fields[3].len =
	    (size_t)snprintf(note, sizeof(note), "row %u, noted", i);
	assert_int_equal(rowfmt_append(rows, fields, 4), 0);
}

/* data.csv's text for rows [first, first + n) under DS_VISITS's rules. */
static void expected_rows(uint32_t first, uint32_t n, struct buf *out)
{
	char line[64];

	out->len = 0;
	for (uint32_t i = first; i < first + n; i++) {
		int len =
		    snprintf(line, sizeof(line), "%u,***,%s\n", i, city_csv(i));

		assert_int_equal(buf_append(out, line, (size_t)len), 0);
	}
}

/*
 * Seal nblocks blocks of per_block rows (numbered from 0) into a new store
 * file and record it as the next version of dataset; returns the version.
 */
static int64_t add_version(struct fixture *f, const char *dataset,
			   uint32_t nblocks, uint32_t per_block)
{
	static unsigned serial;
	struct dataset_version v = {0};
	struct store_writer *w;
	struct buf rows = BUF_INIT;
	uint8_t key[KEY_LEN];
	char label[128], rel[96], path[PATH_MAX];

	snprintf(rel, sizeof(rel), "%s/%s-%u.gvs", HOME_STORE_DIR, dataset,
		 serial++);
	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	data_key_label(dataset, label, sizeof(label));
	assert_int_equal(data_key_new(&f->mk, label, key, v.wrapped_key), 0);
	assert_int_equal(store_writer_open(&w, path, key, 2), 0);
	for (uint32_t b = 0; b < nblocks; b++) {
		for (uint32_t r = 0; r < per_block; r++)
			append_row(&rows, b * per_block + r);
		assert_int_equal(store_writer_add_block(w, &rows, per_block),
				 0);
	}
	buf_release(&rows);
	assert_int_equal(store_writer_finish(w, &v.store), 0);
	v.dataset = (char *)dataset;
	v.ingested_ns = clock_now_ns();
	v.ingested_by = (char *)"uid 0 (root)";
	v.source_name = (char *)"unit.csv";
	v.source_sha256 = (char *)"00";
	v.schema_json = (char *)SCHEMA_JSON;
	v.store_file = rel;
	assert_int_equal(catalog_dataset_add_version(f->cat, &v), 0);
	return v.version;
}

/* A policy file for AGREEMENT valid from..until showing datasets. */
static void policy(char *buf, size_t len, const char *from, const char *until,
		   const char *datasets)
{
	snprintf(buf, len,
		 "{\"id\":\"" AGREEMENT "\",\"grantee\":\"Unit grantee\","
		 "\"scenario\":\"mount_state tests\",\"uids\":[1000],"
		 "\"valid_from\":\"%s\",\"valid_until\":\"%s\","
		 "\"datasets\":[%s]}",
		 from, until, datasets);
}

/* The size key of AGREEMENT's record rec. */
static void size_key_of(struct fixture *f, const struct agreement_record *rec,
			uint8_t size_key[KEY_LEN])
{
	uint8_t key[KEY_LEN];

	assert_int_equal(pseudonym_key_unwrap(&f->mk, rec, key), 0);
	assert_int_equal(size_key_derive(key, size_key), 0);
}

/* The place of dataset version's data.csv (view NULL) or view under
 * AGREEMENT's revision. */
static struct size_index_place place_of(int64_t revision, const char *dataset,
					int64_t version, const char *view)
{
	return (struct size_index_place){
	    .agreement = AGREEMENT,
	    .revision = revision,
	    .dataset = dataset,
	    .version = version,
	    .view = view,
	};
}

/*
 * Seal si as the size index of dataset version's data.csv under
 * AGREEMENT's revision, and record it, as govfsctl does.
 */
static void put_sizes(struct fixture *f, int64_t revision, const char *dataset,
		      int64_t version, const struct size_index *si)
{
	const struct size_index_place at =
	    place_of(revision, dataset, version, NULL);
	struct agreement_record rec;
	struct buf sealed = BUF_INIT;
	uint8_t size_key[KEY_LEN];

	assert_int_equal(catalog_agreement_get(f->cat, AGREEMENT, &rec), 0);
	size_key_of(f, &rec, size_key);
	assert_int_equal(size_index_seal(size_key, &at, si, &sealed), 0);
	assert_int_equal(catalog_size_index_put(f->cat, AGREEMENT, revision,
						dataset, version, &sealed),
			 0);
	buf_release(&sealed);
	agreement_record_release(&rec);
}

/* Compute and record the results of ds's views over version v. */
static void build_views(struct fixture *f, const struct agreement_record *rec,
			const struct agreement_dataset *ds,
			const struct dataset_version *v, struct dataview *dv)
{
	struct view_build_opts opts = {.memory = 1u << 20};
	uint8_t size_key[KEY_LEN];
	struct perr err;

	size_key_of(f, rec, size_key);
	for (size_t i = 0; i < ds->nviews; i++) {
		const struct size_index_place at = place_of(
		    rec->revision, v->dataset, v->version, ds->views[i].name);
		struct size_index sizes;
		struct view_result r;

		assert_int_equal(view_build(f->dir, &f->mk, rec->id, dv,
					    &ds->views[i], &opts, &r, &sizes,
					    &err),
				 0);
		assert_int_equal(
		    size_index_seal(size_key, &at, &sizes, &r.sealed_sizes), 0);
		size_index_release(&sizes);
		r.agreement = strdup(rec->id);
		r.revision = rec->revision;
		r.dataset = strdup(v->dataset);
		r.version = v->version;
		r.view = strdup(ds->views[i].name);
		assert_int_equal(catalog_view_result_put(f->cat, &r), 0);
		view_result_release(&r);
	}
}

/*
 * Compute and store the size index of every data.csv the current revision
 * of AGREEMENT shows, and the results of its views, for its datasets'
 * newest versions, as govfsctl does at apply and at dataset add.
 */
static void index_sizes(struct fixture *f)
{
	struct agreement_record rec;
	struct agreement agr;
	uint8_t key[KEY_LEN];
	struct perr err;

	assert_int_equal(catalog_agreement_get(f->cat, AGREEMENT, &rec), 0);
	assert_int_equal(agreement_parse(rec.policy_json,
					 strlen(rec.policy_json), &agr, &err),
			 0);
	assert_int_equal(pseudonym_key_unwrap(&f->mk, &rec, key), 0);
	for (size_t i = 0; i < agr.ndatasets; i++) {
		const struct agreement_dataset *ds = &agr.datasets[i];
		struct dataset_version v;
		struct dataview dv;

		if (catalog_dataset_latest(f->cat, ds->dataset, &v))
			continue;
		assert_int_equal(
		    dataview_open(&dv, f->dir, &f->mk, &v, ds, key, &err), 0);
		build_views(f, &rec, ds, &v, &dv);
		if (ds->records) {
			assert_int_equal(dataview_compute_sizes(&dv), 0);
			put_sizes(f, rec.revision, v.dataset, v.version,
				  &dv.sizes);
		}
		dataview_close(&dv);
		dataset_version_release(&v);
	}
	agreement_release(&agr);
	agreement_record_release(&rec);
}

/* Record text as AGREEMENT's next revision (keeping its pseudonym key). */
static int64_t add_revision(struct fixture *f, const char *text)
{
	struct agreement_record rec = {0}, old;
	uint8_t key[KEY_LEN];
	char label[128];

	if (!catalog_agreement_get(f->cat, AGREEMENT, &old)) {
		memcpy(rec.pseudonym_key, old.pseudonym_key, WRAPPED_KEY_LEN);
		agreement_record_release(&old);
	} else {
		pseudonym_key_label(AGREEMENT, label, sizeof(label));
		assert_int_equal(
		    data_key_new(&f->mk, label, key, rec.pseudonym_key), 0);
	}
	rec.id = (char *)AGREEMENT;
	rec.applied_by = (char *)"uid 0 (root)";
	rec.policy_json = (char *)text;
	rec.has_pseudonym_key = true;
	assert_int_equal(catalog_agreement_add_revision(f->cat, &rec), 0);
	return rec.revision;
}

/* `govfsctl agreement apply`: a new revision with its size indexes. */
static int64_t apply(struct fixture *f, const char *from, const char *until,
		     const char *datasets)
{
	char text[2048];
	int64_t rev;

	policy(text, sizeof(text), from, until, datasets);
	rev = add_revision(f, text);
	index_sizes(f);
	return rev;
}

static struct mount_state *load(struct fixture *f,
				const struct mount_state *prev)
{
	struct mount_state *st = NULL;
	char why[256] = "";
	int rc = mount_state_load(f->cat, f->dir, &f->mk, AGREEMENT, prev,
				  false, &st, why, sizeof(why));

	if (rc)
		fail_msg("mount_state_load: %d: %s", rc, why);
	return st;
}

static struct file_view *view_of(const struct mount_state *st,
				 const char *dataset)
{
	const struct dataset_state *d = mount_state_dataset(st, dataset);

	assert_non_null(d);
	assert_non_null(d->data);
	return d->data;
}

/* ---- tests ---- */

static void test_load_one_dataset(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st;
	struct file_view *fv;
	uint64_t sum = 0;

	assert_int_equal(add_version(f, "visits", 3, 50), 1);
	assert_int_equal(apply(f, ALWAYS, DS_VISITS), 1);
	st = load(f, NULL);
	assert_string_equal(st->agr.id, AGREEMENT);
	assert_int_equal(st->rec.revision, 1);
	assert_true(st->active);
	assert_true(st->has_key);
	assert_int_equal(st->phase, PHASE_VALID);
	assert_int_equal(st->ndatasets, 1);
	assert_string_equal(st->datasets[0].ds->dataset, "visits");
	assert_ptr_equal(mount_state_dataset(st, "visits"), &st->datasets[0]);
	assert_null(mount_state_dataset(st, "labs"));
	assert_null(mount_state_dataset(st, "visit"));

	fv = view_of(st, "visits");
	assert_string_equal(fv->dataset, "visits");
	assert_int_equal(fv->version, 1);
	assert_int_equal(fv->revision, 1);
	assert_int_equal(fv->dv.sizes.nblocks, 3);
	assert_int_equal(fv->dv.sizes.rows, 150);
	assert_int_equal(fv->dv.sizes.header_bytes, strlen(HEADER));
	for (uint32_t b = 0; b < 3; b++) {
		assert_true(fv->dv.sizes.block_bytes[b] > 0);
		sum += fv->dv.sizes.block_bytes[b];
	}
	assert_int_equal(fv->size, strlen(HEADER) + sum);
	assert_int_equal(fv->size, fv->dv.sizes.total_bytes);
	mount_state_put(st);
}

static void test_size_is_the_rendered_file(void **state)
{
	struct fixture *f = *state;
	struct buf want = BUF_INIT;
	struct mount_state *st;

	add_version(f, "visits", 4, 37);
	apply(f, ALWAYS, DS_VISITS);
	st = load(f, NULL);
	/* Independent of render: the text these rules must give. */
	expected_rows(0, 4 * 37, &want);
	assert_int_equal(view_of(st, "visits")->size,
			 strlen(HEADER) + want.len);
	buf_release(&want);
	mount_state_put(st);
}

static void test_block_at_every_boundary(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st;
	const struct file_view *fv;
	uint32_t n;

	add_version(f, "visits", 5, 20);
	apply(f, ALWAYS, DS_VISITS);
	st = load(f, NULL);
	fv = view_of(st, "visits");
	n = fv->dv.sizes.nblocks;
	assert_int_equal(n, 5);
	/* The header is not in any block: block 0 starts after it. */
	assert_int_equal(file_view_block_start(fv, 0), strlen(HEADER));
	assert_int_equal(file_view_block_at(fv, strlen(HEADER)), 0);
	for (uint32_t b = 0; b < n; b++) {
		uint64_t start = file_view_block_start(fv, b);
		uint64_t end = start + fv->dv.sizes.block_bytes[b];

		assert_int_equal(fv->ends[b], end);
		assert_int_equal(file_view_block_at(fv, start), b);
		assert_int_equal(file_view_block_at(fv, start + 1), b);
		assert_int_equal(file_view_block_at(fv, end - 1), b);
		assert_int_equal(file_view_block_at(fv, end), b + 1);
	}
	assert_int_equal(fv->ends[n - 1], fv->size);
	assert_int_equal(file_view_block_at(fv, fv->size - 1), n - 1);
	assert_int_equal(file_view_block_at(fv, fv->size), n);
	mount_state_put(st);
}

static void test_block_at_skips_empty_blocks(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st;
	const struct file_view *fv;
	struct block_decoder *d = block_decoder_new();
	struct buf out = BUF_INIT;

	/* The filter hides every row of block 1 (rows 10..19). */
	add_version(f, "visits", 3, 10);
	apply(f, ALWAYS,
	      "{\"dataset\":\"visits\",\"rows\":\"id < 10 or id >= 20\","
	      "\"columns\":{\"id\":\"keep\",\"name\":\"redact\","
	      "\"city\":\"keep\"}}");
	st = load(f, NULL);
	fv = view_of(st, "visits");
	assert_int_equal(fv->dv.sizes.rows, 20);
	assert_int_equal(fv->dv.sizes.block_bytes[1], 0);
	assert_int_equal(file_view_block_start(fv, 1),
			 file_view_block_start(fv, 2));
	/* The byte where block 1 "starts" is block 2's first. */
	assert_int_equal(file_view_block_at(fv, fv->ends[0] - 1), 0);
	assert_int_equal(file_view_block_at(fv, fv->ends[0]), 2);
	assert_non_null(d);
	assert_int_equal(file_view_render(fv, 1, d, &out), 0);
	assert_int_equal(out.len, 0);
	buf_release(&out);
	block_decoder_free(d);
	mount_state_put(st);
}

static void test_render_gives_size_index_bytes(void **state)
{
	struct fixture *f = *state;
	struct block_decoder *d = block_decoder_new();
	struct buf out = BUF_INIT, want = BUF_INIT;
	struct mount_state *st;
	const struct file_view *fv;

	assert_non_null(d);
	add_version(f, "visits", 3, 50);
	apply(f, ALWAYS, DS_VISITS);
	st = load(f, NULL);
	fv = view_of(st, "visits");
	assert_memory_equal(fv->dv.plan.header.data, HEADER, strlen(HEADER));
	for (uint32_t b = 0; b < 3; b++) {
		/* Whatever out held before is replaced, not appended to. */
		assert_int_equal(buf_append(&out, "junk", 4), 0);
		assert_int_equal(file_view_render(fv, b, d, &out), 0);
		assert_int_equal(out.len, fv->dv.sizes.block_bytes[b]);
		expected_rows(b * 50, 50, &want);
		assert_int_equal(out.len, want.len);
		assert_memory_equal(out.data, want.data, want.len);
	}
	assert_int_equal(file_view_render(fv, 3, d, &out), -EIO);
	assert_int_equal(file_view_render(fv, UINT32_MAX, d, &out), -EIO);
	buf_release(&out);
	buf_release(&want);
	block_decoder_free(d);
	mount_state_put(st);
}

static void test_render_refuses_tampered_size_index(void **state)
{
	struct fixture *f = *state;
	struct block_decoder *d = block_decoder_new();
	struct buf out = BUF_INIT;
	struct mount_state *st;
	struct file_view *fv;
	uint64_t good;

	assert_non_null(d);
	add_version(f, "visits", 3, 50);
	apply(f, ALWAYS, DS_VISITS);
	st = load(f, NULL);
	fv = view_of(st, "visits");
	good = fv->dv.sizes.block_bytes[1];
	fv->dv.sizes.block_bytes[1] = good + 1;
	assert_int_equal(file_view_render(fv, 1, d, &out), -EIO);
	fv->dv.sizes.block_bytes[1] = good - 1;
	assert_int_equal(file_view_render(fv, 1, d, &out), -EIO);
	fv->dv.sizes.block_bytes[1] = 0;
	assert_int_equal(file_view_render(fv, 1, d, &out), -EIO);
	/* Only the tampered block fails. */
	assert_int_equal(file_view_render(fv, 0, d, &out), 0);
	fv->dv.sizes.block_bytes[1] = good;
	assert_int_equal(file_view_render(fv, 1, d, &out), 0);
	assert_int_equal(out.len, good);
	buf_release(&out);
	block_decoder_free(d);
	mount_state_put(st);
}

static void test_readme_names_state_and_dataset(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st;
	char *text, line[160];

	add_version(f, "visits", 3, 50);
	apply(f, ALWAYS, DS_VISITS);
	st = load(f, NULL);
	text = strndup((const char *)st->readme.data, st->readme.len);
	assert_non_null(text);
	assert_non_null(strstr(text, "agreement " AGREEMENT " (revision 1)"));
	assert_non_null(strstr(text, "Grantee:   Unit grantee\n"));
	assert_non_null(strstr(text, "State:     active\n"));
	assert_non_null(strstr(text, "from 2000-01-01T00:00:00Z until "
				     "2099-01-01T00:00:00+08:00"));
	assert_non_null(strstr(text, "\nvisits/\n"));
	snprintf(line, sizeof(line),
		 "data.csv     %llu bytes, 150 of 150 rows of dataset "
		 "version 1\n",
		 (unsigned long long)view_of(st, "visits")->size);
	assert_non_null(strstr(text, line));
	free(text);
	mount_state_put(st);
}

static void expect_readme_state(struct fixture *f, const char *from,
				const char *until, enum time_phase phase,
				const char *line)
{
	struct mount_state *st;
	char *text;

	apply(f, from, until, DS_VISITS);
	st = load(f, NULL);
	assert_int_equal(st->phase, phase);
	text = strndup((const char *)st->readme.data, st->readme.len);
	assert_non_null(text);
	assert_non_null(strstr(text, line));
	free(text);
	mount_state_put(st);
}

static void test_readme_outside_validity(void **state)
{
	struct fixture *f = *state;

	add_version(f, "visits", 1, 5);
	expect_readme_state(f, "2090-01-01T00:00:00Z", "2099-01-01T00:00:00Z",
			    PHASE_NOT_YET, "State:     not yet valid\n");
	expect_readme_state(f, "2000-01-01T00:00:00Z", "2001-01-01T00:00:00Z",
			    PHASE_EXPIRED, "State:     expired\n");
}

/* The audit log's low space is said in README.txt, and only then. */
static void test_readme_warns_of_audit_low_space(void **state)
{
	static const char warning[] =
	    "Warning:   the audit log's disk is nearly full; once it is full, "
	    "no\n"
	    "           data file can be read until an admin frees space\n";
	struct fixture *f = *state;
	struct mount_state *st, *low;
	char why[256] = "";
	char *text, *at;

	add_version(f, "visits", 1, 5);
	apply(f, ALWAYS, DS_VISITS);
	st = load(f, NULL);
	assert_false(st->audit_low_space);
	assert_null(memmem(st->readme.data, st->readme.len, "Warning:", 8));
	assert_int_equal(mount_state_load(f->cat, f->dir, &f->mk, AGREEMENT, st,
					  true, &low, why, sizeof(why)),
			 0);
	assert_true(low->audit_low_space);
	text = strndup((const char *)low->readme.data, low->readme.len);
	assert_non_null(text);
	at = strstr(text, warning);
	assert_non_null(at);
	assert_true(at > text &&
		    strncmp(at - 16, "Quota:     none\n", 16) == 0);
	/* the README of st with the warning put in, nothing else */
	assert_int_equal(low->readme.len, st->readme.len + strlen(warning));
	memmove(at, at + strlen(warning), strlen(at + strlen(warning)) + 1);
	assert_memory_equal(text, st->readme.data, st->readme.len);
	free(text);
	mount_state_put(low);
	mount_state_put(st);
}

static void test_schema_json(void **state)
{
	static const char *const want[3][3] = {{"id", "int", "keep"},
					       {"name", "string", "redact"},
					       {"city", "string", "keep"}};
	struct fixture *f = *state;
	const struct dataset_state *d;
	struct mount_state *st;
	json_error_t jerr;
	json_t *root, *cols, *views;

	add_version(f, "visits", 2, 10);
	apply(f, ALWAYS, DS_VISITS);
	st = load(f, NULL);
	d = mount_state_dataset(st, "visits");
	assert_non_null(d);
	assert_true(d->schema_json.len > 0);
	assert_int_equal(d->schema_json.data[d->schema_json.len - 1], '\n');
	root = json_loadb((const char *)d->schema_json.data, d->schema_json.len,
			  JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		fail_msg("schema.json: line %d: %s", jerr.line, jerr.text);
	assert_true(json_is_object(root));
	cols = json_object_get(root, "columns");
	assert_true(json_is_array(cols));
	/* note is dropped: it is not a column of data.csv. */
	assert_int_equal(json_array_size(cols), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *c = json_array_get(cols, i);

		assert_true(json_is_object(c));
		assert_int_equal(json_object_size(c), 3);
		assert_string_equal(
		    json_string_value(json_object_get(c, "name")), want[i][0]);
		assert_string_equal(
		    json_string_value(json_object_get(c, "type")), want[i][1]);
		assert_string_equal(
		    json_string_value(json_object_get(c, "rule")), want[i][2]);
	}
	views = json_object_get(root, "views");
	assert_true(json_is_array(views));
	assert_int_equal(json_array_size(views), 0);
	json_decref(root);
	mount_state_put(st);
}

/* A view of every city: 5 rows and 5 names each in 20 rows. */
#define DS_BY_CITY                                                             \
	"{\"dataset\":\"visits\",\"records\":false,\"views\":[{"               \
	"\"name\":\"by_city\",\"group_by\":[\"city\"],"                        \
	"\"measures\":[\"count\",\"count_distinct:name\"],"                    \
	"\"min_group\":%d}]}"
#define BY_CITY_CSV                                                            \
	"city,count,count_distinct_name\n\"Bin\"\"jiang\",5,5\n"               \
	"\"Gong,shu\",5,5\nShangcheng,5,5\nXihu,5,5\n"

static int64_t apply_by_city(struct fixture *f, int min_group)
{
	char ds[512];

	snprintf(ds, sizeof(ds), DS_BY_CITY, min_group);
	return apply(f, ALWAYS, ds);
}

/* The whole file fv serves, rendered block by block. */
static void read_file_view(const struct file_view *fv, struct buf *out)
{
	struct block_decoder *d = block_decoder_new();
	struct buf block = BUF_INIT;

	assert_non_null(d);
	out->len = 0;
	assert_int_equal(
	    buf_append(out, fv->dv.plan.header.data, fv->dv.plan.header.len),
	    0);
	for (uint32_t b = 0; b < fv->dv.sizes.nblocks; b++) {
		assert_int_equal(file_view_render(fv, b, d, &block), 0);
		assert_int_equal(buf_append(out, block.data, block.len), 0);
	}
	assert_int_equal(out->len, fv->size);
	buf_release(&block);
	block_decoder_free(d);
}

static void test_aggregation_only_dataset(void **state)
{
	static const char *const want[3][2] = {{"city", "string"},
					       {"count", "int"},
					       {"count_distinct_name", "int"}};
	struct fixture *f = *state;
	const struct dataset_state *d;
	struct mount_state *st;
	struct buf csv = BUF_INIT;
	json_t *root, *views, *cols;
	char *text;

	add_version(f, "visits", 2, 10);
	apply_by_city(f, 2);
	st = load(f, NULL);
	d = mount_state_dataset(st, "visits");
	assert_non_null(d);
	assert_null(d->data);
	root = json_loadb((const char *)d->schema_json.data, d->schema_json.len,
			  0, NULL);
	assert_non_null(root);
	assert_int_equal(json_array_size(json_object_get(root, "columns")), 0);
	views = json_object_get(root, "views");
	assert_int_equal(json_array_size(views), 1);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(views, 0), "name")),
			    "by_city");
	cols = json_object_get(json_array_get(views, 0), "columns");
	assert_int_equal(json_array_size(cols), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *c = json_array_get(cols, i);

		assert_string_equal(
		    json_string_value(json_object_get(c, "name")), want[i][0]);
		assert_string_equal(
		    json_string_value(json_object_get(c, "type")), want[i][1]);
	}
	json_decref(root);
	text = strndup((const char *)st->readme.data, st->readme.len);
	assert_non_null(text);
	assert_non_null(strstr(text, "(aggregation only: no data.csv)"));
	assert_non_null(strstr(text, "views/by_city.csv  87 bytes, 4 groups"));
	assert_non_null(strstr(text, "grouped by  city\n"));
	assert_non_null(
	    strstr(text, "shown       groups of at least 2 rows\n"));
	free(text);
	/* the view's file */
	assert_ptr_equal(mount_state_view(st, "visits", "by_city"),
			 d->views[0]);
	assert_null(mount_state_view(st, "visits", "by_town"));
	assert_null(mount_state_view(st, "labs", "by_city"));
	assert_string_equal(d->views[0]->view, "by_city");
	assert_int_equal(d->views[0]->size, strlen(BY_CITY_CSV));
	read_file_view(d->views[0], &csv);
	assert_memory_equal(csv.data, BY_CITY_CSV, csv.len);
	buf_release(&csv);
	mount_state_put(st);
}

/*
 * A handle on a view reads on across revisions that leave its bytes as
 * they were, and not across one that changes them or drops the view.
 */
static void test_view_currency(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st1, *st2, *st3, *st4, *st5, *st6;
	struct file_view *v1;

	add_version(f, "visits", 2, 10);
	apply_by_city(f, 2);
	st1 = load(f, NULL);
	v1 = mount_state_view(st1, "visits", "by_city");
	assert_non_null(v1);
	/* a new revision: other words, the same bytes (min_group 5) */
	apply_by_city(f, 5);
	st2 = load(f, st1);
	assert_ptr_not_equal(mount_state_view(st2, "visits", "by_city"), v1);
	assert_true(file_view_current(v1, st2));
	/* min_group 6 hides every city: other bytes */
	apply_by_city(f, 6);
	st3 = load(f, st2);
	assert_false(file_view_current(v1, st3));
	assert_int_equal(mount_state_view(st3, "visits", "by_city")->size,
			 strlen("city,count,count_distinct_name\n"));
	/* a new version with the first definition: compared by definition */
	apply_by_city(f, 2);
	add_version(f, "visits", 1, 4);
	apply_by_city(f, 2);
	st4 = load(f, st3);
	assert_int_equal(mount_state_view(st4, "visits", "by_city")->version,
			 2);
	assert_true(file_view_current(v1, st4));
	apply_by_city(f, 3);
	st5 = load(f, st4);
	assert_false(file_view_current(v1, st5));
	/* the view withdrawn */
	apply(f, ALWAYS, DS_VISITS);
	st6 = load(f, st5);
	assert_null(mount_state_view(st6, "visits", "by_city"));
	assert_false(file_view_current(v1, st6));
	mount_state_put(st1);
	mount_state_put(st2);
	mount_state_put(st3);
	mount_state_put(st4);
	mount_state_put(st5);
	mount_state_put(st6);
}

static void test_missing_view_result(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st = NULL;
	char text[1024], ds[512], why[256] = "";

	add_version(f, "visits", 1, 10);
	snprintf(ds, sizeof(ds), DS_BY_CITY, 2);
	policy(text, sizeof(text), ALWAYS, ds);
	add_revision(f, text);
	assert_int_equal(mount_state_load(f->cat, f->dir, &f->mk, AGREEMENT,
					  NULL, false, &st, why, sizeof(why)),
			 -ENOENT);
	assert_null(st);
	assert_non_null(strstr(why, "visits: views/by_city.csv: no result"));
}

static void test_empty_dataset(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st;
	const struct file_view *fv;

	add_version(f, "visits", 0, 0);
	apply(f, ALWAYS, DS_VISITS);
	st = load(f, NULL);
	fv = view_of(st, "visits");
	/* data.csv is the header alone. */
	assert_int_equal(fv->dv.sizes.nblocks, 0);
	assert_int_equal(fv->dv.sizes.rows, 0);
	assert_int_equal(fv->size, strlen(HEADER));
	assert_int_equal(file_view_block_at(fv, strlen(HEADER)), 0);
	mount_state_put(st);
}

static void test_reload_reuses_unchanged_view(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st1, *st2, *st3, *st4;
	struct file_view *fv;

	add_version(f, "visits", 3, 50);
	apply(f, ALWAYS, DS_VISITS);
	st1 = load(f, NULL);
	fv = view_of(st1, "visits");
	assert_int_equal(atomic_load(&fv->refs), 1);

	/* Nothing changed: the very same view, now shared. */
	st2 = load(f, st1);
	assert_ptr_equal(view_of(st2, "visits"), fv);
	assert_int_equal(atomic_load(&fv->refs), 2);
	mount_state_put(st1);
	assert_int_equal(atomic_load(&fv->refs), 1);
	assert_int_equal(fv->revision, 1);

	/* A new revision: a new view, even with the same rules. */
	apply(f, "2000-01-01T00:00:00Z", "2098-01-01T00:00:00Z", DS_VISITS);
	st3 = load(f, st2);
	assert_ptr_not_equal(view_of(st3, "visits"), fv);
	assert_int_equal(view_of(st3, "visits")->revision, 2);
	assert_int_equal(st3->rec.revision, 2);

	/* A new dataset version: a new view of it. */
	add_version(f, "visits", 2, 50);
	index_sizes(f);
	st4 = load(f, st3);
	assert_ptr_not_equal(view_of(st4, "visits"), view_of(st3, "visits"));
	assert_int_equal(view_of(st4, "visits")->version, 2);
	assert_int_equal(view_of(st4, "visits")->dv.sizes.nblocks, 2);
	mount_state_put(st2);
	mount_state_put(st3);
	mount_state_put(st4);
}

static void test_view_currency_across_revisions(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st1, *st2, *st3, *st4, *st5;

	add_version(f, "visits", 2, 10);
	add_version(f, "labs", 2, 10);
	apply(f, ALWAYS, DS_VISITS "," DS_LABS);
	st1 = load(f, NULL);
	assert_true(file_view_current(view_of(st1, "visits"), st1));
	assert_true(file_view_current(view_of(st1, "labs"), st1));

	/* Revision 2 changes a rule of labs only. */
	apply(f, ALWAYS,
	      DS_VISITS ",{\"dataset\":\"labs\",\"columns\":{\"id\":\"keep\","
			"\"name\":\"redact\",\"city\":\"redact\"}}");
	st2 = load(f, st1);
	assert_true(file_view_current(view_of(st1, "visits"), st2));
	assert_false(file_view_current(view_of(st1, "labs"), st2));

	/* Revision 3 withdraws labs. */
	apply(f, ALWAYS, DS_VISITS);
	st3 = load(f, st2);
	assert_null(mount_state_dataset(st3, "labs"));
	assert_false(file_view_current(view_of(st2, "labs"), st3));
	assert_true(file_view_current(view_of(st1, "visits"), st3));

	/* Revision 4 filters the rows of visits: other bytes. */
	apply(f, ALWAYS,
	      "{\"dataset\":\"visits\",\"rows\":\"id < 5\",\"columns\":{"
	      "\"id\":\"keep\",\"name\":\"redact\",\"city\":\"keep\"}}");
	st4 = load(f, st3);
	assert_false(file_view_current(view_of(st3, "visits"), st4));

	/* Revision 5 drops a column of visits. */
	apply(f, ALWAYS,
	      "{\"dataset\":\"visits\",\"rows\":\"id < 5\",\"columns\":{"
	      "\"id\":\"keep\",\"city\":\"keep\"}}");
	st5 = load(f, st4);
	assert_false(file_view_current(view_of(st4, "visits"), st5));
	mount_state_put(st1);
	mount_state_put(st2);
	mount_state_put(st3);
	mount_state_put(st4);
	mount_state_put(st5);
}

static void test_unknown_agreement(void **state)
{
	static struct mount_state untouched;
	struct fixture *f = *state;
	struct mount_state *st = &untouched;
	char why[256] = "";

	add_version(f, "visits", 1, 5);
	apply(f, ALWAYS, DS_VISITS);
	assert_int_equal(mount_state_load(f->cat, f->dir, &f->mk, "agr-2", NULL,
					  false, &st, why, sizeof(why)),
			 -ENOENT);
	assert_ptr_equal(st, &untouched);
	assert_string_equal(why, "no such agreement 'agr-2'");
}

static void test_missing_size_index(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st = NULL;
	char text[1024], why[256] = "";

	add_version(f, "visits", 1, 5);
	policy(text, sizeof(text), ALWAYS, DS_VISITS);
	add_revision(f, text);
	assert_int_equal(mount_state_load(f->cat, f->dir, &f->mk, AGREEMENT,
					  NULL, false, &st, why, sizeof(why)),
			 -ENOENT);
	assert_null(st);
	assert_non_null(strstr(why, "visits: no size index"));
}

static void test_size_index_disagreeing_with_store(void **state)
{
	struct fixture *f = *state;
	uint64_t blocks[2] = {100, 100};
	struct size_index si = {.rows = 10,
				.header_bytes = strlen(HEADER),
				.nblocks = 2,
				.block_bytes = blocks,
				.total_bytes = strlen(HEADER) + 200};
	struct mount_state *st = NULL;
	char why[256] = "";

	add_version(f, "visits", 3, 5);
	apply(f, ALWAYS, DS_VISITS);
	/* Two blocks where the store has three. */
	put_sizes(f, 1, "visits", 1, &si);
	assert_int_equal(mount_state_load(f->cat, f->dir, &f->mk, AGREEMENT,
					  NULL, false, &st, why, sizeof(why)),
			 -EIO);
	assert_non_null(strstr(why, "size index does not match the store"));
	/* The right block count, but a total that is not their sum. */
	blocks[0] = 1;
	si.nblocks = 1;
	assert_int_equal(add_version(f, "visits", 1, 5), 2);
	si.total_bytes = strlen(HEADER) + 2;
	put_sizes(f, 1, "visits", 2, &si);
	assert_int_equal(mount_state_load(f->cat, f->dir, &f->mk, AGREEMENT,
					  NULL, false, &st, why, sizeof(why)),
			 -EIO);
	assert_null(st);
}

/* The sealed size index of dataset version's data.csv under revision. */
static void get_sealed(struct fixture *f, int64_t revision, const char *dataset,
		       int64_t version, struct buf *out)
{
	assert_int_equal(catalog_size_index_get(f->cat, AGREEMENT, revision,
						dataset, version, out),
			 0);
}

static void put_sealed(struct fixture *f, int64_t revision, const char *dataset,
		       int64_t version, const struct buf *sealed)
{
	assert_int_equal(catalog_size_index_put(f->cat, AGREEMENT, revision,
						dataset, version, sealed),
			 0);
}

/* What st's README.txt says, as a string (free it). */
static char *readme_text(const struct mount_state *st)
{
	char *text = strndup((const char *)st->readme.data, st->readme.len);

	assert_non_null(text);
	return text;
}

static void expect_fault(const struct file_view *fv)
{
	assert_non_null(fv->fault);
	assert_non_null(strstr(fv->fault, "size index does not open"));
	assert_int_equal(fv->size, 0);
}

/*
 * Size indexes swapped between two datasets' rows: each opens only for
 * its own file, so both files serve nothing (a fault), while the mount
 * loads, README.txt says why and schema.json still lists the columns.
 */
static void test_size_index_moved_between_datasets(void **state)
{
	struct fixture *f = *state;
	struct buf visits = BUF_INIT, labs = BUF_INIT;
	struct mount_state *st;
	char *text;

	add_version(f, "visits", 3, 50);
	add_version(f, "labs", 2, 50);
	apply(f, ALWAYS, DS_VISITS "," DS_LABS);
	get_sealed(f, 1, "visits", 1, &visits);
	get_sealed(f, 1, "labs", 1, &labs);
	put_sealed(f, 1, "visits", 1, &labs);
	put_sealed(f, 1, "labs", 1, &visits);
	st = load(f, NULL);
	expect_fault(view_of(st, "visits"));
	expect_fault(view_of(st, "labs"));
	text = readme_text(st);
	assert_non_null(strstr(text, "visits/\n  data.csv     unavailable: "
				     "its size index does not open"));
	assert_non_null(strstr(text, "labs/\n  data.csv     unavailable: "));
	free(text);
	assert_non_null(memmem(
	    mount_state_dataset(st, "visits")->schema_json.data,
	    mount_state_dataset(st, "visits")->schema_json.len, "\"city\"", 6));
	mount_state_put(st);
	buf_release(&visits);
	buf_release(&labs);
}

/*
 * The size index of an earlier revision put in the current one's row, or
 * one altered in a single byte: a fault; the next revision, computed
 * again, serves.  Unchanged, a faulted file is reused as any other.
 */
static void test_size_index_of_another_revision_or_altered(void **state)
{
	struct fixture *f = *state;
	struct buf old = BUF_INIT, now = BUF_INIT, want = BUF_INIT;
	struct mount_state *st, *again, *next;

	add_version(f, "visits", 3, 50);
	apply(f, ALWAYS, DS_VISITS);
	apply(f, ALWAYS, DS_VISITS);
	get_sealed(f, 1, "visits", 1, &old);
	get_sealed(f, 2, "visits", 1, &now);
	put_sealed(f, 2, "visits", 1, &old);
	st = load(f, NULL);
	expect_fault(view_of(st, "visits"));
	again = load(f, st);
	assert_ptr_equal(view_of(again, "visits"), view_of(st, "visits"));
	now.data[now.len / 2] ^= 0x01;
	put_sealed(f, 2, "visits", 1, &now);
	mount_state_put(again);
	again = load(f, NULL);
	expect_fault(view_of(again, "visits"));
	apply(f, ALWAYS, DS_VISITS);
	next = load(f, again);
	assert_null(view_of(next, "visits")->fault);
	expected_rows(0, 150, &want);
	assert_int_equal(view_of(next, "visits")->size,
			 strlen(HEADER) + want.len);
	buf_release(&want);
	mount_state_put(st);
	mount_state_put(again);
	mount_state_put(next);
	buf_release(&old);
	buf_release(&now);
}

/* A view result whose sealed sizes were altered: that view serves
 * nothing; README.txt and schema.json still describe it. */
static void test_view_size_index_altered(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st;
	struct file_view *fv;
	struct view_result r;
	char *text;

	add_version(f, "visits", 2, 10);
	apply_by_city(f, 2);
	assert_int_equal(catalog_view_result_get(f->cat, AGREEMENT, 1, "visits",
						 1, "by_city", &r),
			 0);
	r.sealed_sizes.data[AEAD_NONCE_LEN] ^= 0x80;
	assert_int_equal(catalog_view_result_put(f->cat, &r), 0);
	view_result_release(&r);
	st = load(f, NULL);
	fv = mount_state_view(st, "visits", "by_city");
	assert_non_null(fv);
	expect_fault(fv);
	text = readme_text(st);
	assert_non_null(strstr(text, "views/by_city.csv  unavailable: its "
				     "size index does not open"));
	assert_non_null(strstr(text, "columns     city, count, "
				     "count_distinct_name\n"));
	free(text);
	assert_non_null(
	    memmem(mount_state_dataset(st, "visits")->schema_json.data,
		   mount_state_dataset(st, "visits")->schema_json.len,
		   "\"count_distinct_name\"", 21));
	mount_state_put(st);
}

/* Another master key: the agreement's key does not unwrap, so nothing
 * of it loads (its size indexes could not be opened). */
static void test_other_master_key(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st = NULL;
	struct master_key other;
	char why[256] = "";

	add_version(f, "visits", 1, 5);
	apply(f, ALWAYS, DS_VISITS);
	assert_int_equal(random_bytes(other.bytes, KEY_LEN), 0);
	assert_int_equal(mount_state_load(f->cat, f->dir, &other, AGREEMENT,
					  NULL, false, &st, why, sizeof(why)),
			 -EIO);
	assert_null(st);
	assert_string_equal(why, "agreement '" AGREEMENT "': its pseudonym "
				 "key does not unwrap with this master key");
}

static void test_dataset_without_versions(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st = NULL;
	char text[1024], why[256] = "";

	policy(text, sizeof(text), ALWAYS, DS_VISITS);
	add_revision(f, text);
	assert_int_equal(mount_state_load(f->cat, f->dir, &f->mk, AGREEMENT,
					  NULL, false, &st, why, sizeof(why)),
			 -ENOENT);
	assert_string_equal(why, "visits: no such dataset");
}

static void test_time_phase_boundaries(void **state)
{
	struct agreement agr = {.valid_from_ns = 1000, .valid_until_ns = 2000};

	(void)state;
	assert_int_equal(time_phase_at(&agr, INT64_MIN), PHASE_NOT_YET);
	assert_int_equal(time_phase_at(&agr, 999), PHASE_NOT_YET);
	assert_int_equal(time_phase_at(&agr, 1000), PHASE_VALID);
	assert_int_equal(time_phase_at(&agr, 1999), PHASE_VALID);
	assert_int_equal(time_phase_at(&agr, 2000), PHASE_EXPIRED);
	assert_int_equal(time_phase_at(&agr, INT64_MAX), PHASE_EXPIRED);
	agr.valid_from_ns = -5;
	agr.valid_until_ns = -4;
	assert_int_equal(time_phase_at(&agr, -6), PHASE_NOT_YET);
	assert_int_equal(time_phase_at(&agr, -5), PHASE_VALID);
	assert_int_equal(time_phase_at(&agr, -4), PHASE_EXPIRED);
}

static void test_state_at_names_lifecycle(void **state)
{
	struct agreement agr = {.valid_from_ns = 1000, .valid_until_ns = 2000};

	(void)state;
	assert_string_equal(agreement_state_at("active", &agr, 999),
			    "not_yet_valid");
	assert_string_equal(agreement_state_at("active", &agr, 1000), "active");
	assert_string_equal(agreement_state_at("active", &agr, 2000),
			    "expired");
	/* A stored cut outranks the clock. */
	assert_string_equal(agreement_state_at("suspended", &agr, 2000),
			    "suspended");
	assert_string_equal(agreement_state_at("revoked", &agr, 1500),
			    "revoked");
}

static void test_state_story_of_the_clock(void **state)
{
	struct agreement agr = {.valid_from_ns = 1000, .valid_until_ns = 2000};
	struct agreement_record rec = {.state = "active",
				       .state_since_ns = 500,
				       .state_by = "uid 0 (root)"};
	struct state_story s;

	(void)state;
	s = agreement_state_story(&rec, &agr, 1500);
	assert_int_equal(s.since_ns, 500);
	assert_string_equal(s.by, "uid 0 (root)");
	assert_null(s.reason);
	/* Expired since valid_until, not since the admin's last change. */
	s = agreement_state_story(&rec, &agr, 2500);
	assert_int_equal(s.since_ns, 2000);
	assert_string_equal(s.by, "the validity window");
	assert_string_equal(s.reason, "valid_until passed");
	s = agreement_state_story(&rec, &agr, 999);
	assert_int_equal(s.since_ns, 500);
	assert_string_equal(s.reason, "valid_from not reached");
	/* A stored cut tells its own story, whatever the clock. */
	rec.state = "suspended";
	rec.state_reason = "breach";
	s = agreement_state_story(&rec, &agr, 2500);
	assert_int_equal(s.since_ns, 500);
	assert_string_equal(s.by, "uid 0 (root)");
	assert_string_equal(s.reason, "breach");
}

/* A reload that changes nothing is not swapped in (no cache is dropped). */
static void test_same_state_until_a_cut(void **state)
{
	struct fixture *f = *state;
	struct mount_state *st1, *st2, *st3;

	add_version(f, "visits", 3, 50);
	apply(f, ALWAYS, DS_VISITS);
	st1 = load(f, NULL);
	st2 = load(f, st1);
	assert_true(mount_state_same(st1, st2));
	assert_int_equal(catalog_agreement_set_state(f->cat, AGREEMENT,
						     "suspended", "uid 0",
						     "late report"),
			 0);
	st3 = load(f, st2);
	assert_false(mount_state_same(st2, st3));
	assert_false(st3->active);
	assert_string_equal(st3->rec.state_reason, "late report");
	mount_state_put(st1);
	mount_state_put(st2);
	mount_state_put(st3);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_load_one_dataset),
	    T(test_state_at_names_lifecycle),
	    T(test_state_story_of_the_clock),
	    T(test_same_state_until_a_cut),
	    T(test_size_is_the_rendered_file),
	    T(test_block_at_every_boundary),
	    T(test_block_at_skips_empty_blocks),
	    T(test_render_gives_size_index_bytes),
	    T(test_render_refuses_tampered_size_index),
	    T(test_readme_names_state_and_dataset),
	    T(test_readme_outside_validity),
	    T(test_readme_warns_of_audit_low_space),
	    T(test_schema_json),
	    T(test_aggregation_only_dataset),
	    T(test_view_currency),
	    T(test_missing_view_result),
	    T(test_empty_dataset),
	    T(test_reload_reuses_unchanged_view),
	    T(test_view_currency_across_revisions),
	    T(test_unknown_agreement),
	    T(test_missing_size_index),
	    T(test_size_index_disagreeing_with_store),
	    T(test_size_index_moved_between_datasets),
	    T(test_size_index_of_another_revision_or_altered),
	    T(test_view_size_index_altered),
	    T(test_other_master_key),
	    T(test_dataset_without_versions),
	    cmocka_unit_test(test_time_phase_boundaries),
	};

	umask(077);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
