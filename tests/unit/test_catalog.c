/*
 * test_catalog: the SQLite catalog backend through its interface: create
 * and reopen, dataset versions, agreement revisions, size indexes (opaque
 * blobs here) and view results with their pruning, size indexes an older
 * govfs kept in clear (none given, dropped at the first writable open),
 * transactions that roll back whole, and dropping a dataset so that no
 * copy of its wrapped keys is left in catalog.db or its log.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "catalog.h"

struct fixture {
	char dir[64];
	struct catalog *cat;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/govfs-test-catalog.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(catalog_create(f->dir, &f->cat), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	catalog_close(f->cat);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void make_version(struct dataset_version *v, const char *id,
			 const char *file, uint64_t rows)
{
	static char sha[] = "00";
	static char schema[] = "{\"columns\":[]}";
	static char by[] = "uid 0";

	memset(v, 0, sizeof(*v));
	v->dataset = (char *)id;
	v->ingested_ns = 1000;
	v->ingested_by = by;
	v->source_sha256 = sha;
	v->schema_json = schema;
	v->store_file = (char *)file;
	v->store.nblocks = 3;
	v->store.nrows = rows;
	v->store.file_bytes = 123;
	memset(v->store.file_id, 7, STORE_FILE_ID_LEN);
	memset(v->wrapped_key, 9, WRAPPED_KEY_LEN);
}

static void test_create_refuses_existing_catalog(void **state)
{
	struct fixture *f = *state;
	struct catalog *again;

	assert_int_equal(catalog_create(f->dir, &again), -EEXIST);
}

static void test_open_reads_meta(void **state)
{
	struct fixture *f = *state;
	struct catalog *ro;
	char *v;

	assert_int_equal(catalog_meta_set(f->cat, "retention_days", "30"), 0);
	assert_int_equal(catalog_open(f->dir, true, &ro), 0);
	assert_int_equal(catalog_meta_get(ro, "retention_days", &v), 0);
	assert_string_equal(v, "30");
	free(v);
	assert_int_equal(catalog_meta_get(ro, "absent", &v), -ENOENT);
	catalog_close(ro);
}

static void test_versions_number_from_one(void **state)
{
	struct fixture *f = *state;
	struct dataset_version v, got, *all;
	size_t n;

	assert_int_equal(catalog_dataset_latest(f->cat, "d", &got), -ENOENT);
	make_version(&v, "d", "store/a.gvs", 10);
	v.title = (char *)"first";
	assert_int_equal(catalog_dataset_add_version(f->cat, &v), 0);
	assert_int_equal(v.version, 1);
	make_version(&v, "d", "store/b.gvs", 20);
	assert_int_equal(catalog_dataset_add_version(f->cat, &v), 0);
	assert_int_equal(v.version, 2);
	assert_int_equal(catalog_dataset_latest(f->cat, "d", &got), 0);
	assert_int_equal(got.version, 2);
	assert_int_equal(got.store.nrows, 20);
	assert_string_equal(got.title, "first"); /* kept when not given */
	assert_memory_equal(got.wrapped_key, v.wrapped_key, WRAPPED_KEY_LEN);
	dataset_version_release(&got);
	assert_int_equal(catalog_dataset_versions(f->cat, "d", &all, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(all[0].version, 1);
	dataset_versions_free(all, n);
	assert_int_equal(catalog_dataset_list(f->cat, &all, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(all[0].version, 2);
	dataset_versions_free(all, n);
}

static void test_store_file_is_unique(void **state)
{
	struct fixture *f = *state;
	struct dataset_version v;

	make_version(&v, "d", "store/a.gvs", 1);
	assert_int_equal(catalog_dataset_add_version(f->cat, &v), 0);
	make_version(&v, "e", "store/a.gvs", 1);
	assert_int_equal(catalog_dataset_add_version(f->cat, &v), -EEXIST);
}

static void test_rollback_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct dataset_version v, got;

	assert_int_equal(catalog_begin(f->cat), 0);
	make_version(&v, "d", "store/a.gvs", 1);
	assert_int_equal(catalog_dataset_add_version(f->cat, &v), 0);
	catalog_rollback(f->cat);
	assert_int_equal(catalog_dataset_latest(f->cat, "d", &got), -ENOENT);
}

static void test_agreement_revisions(void **state)
{
	struct fixture *f = *state;
	struct agreement_record a = {0}, got, *all;
	size_t n;

	a.id = (char *)"agr-1";
	a.applied_by = (char *)"uid 1000 (alice)";
	a.policy_json = (char *)"{\"v\":1}";
	assert_int_equal(catalog_agreement_add_revision(f->cat, &a), 0);
	assert_int_equal(a.revision, 1);
	a.policy_json = (char *)"{\"v\":2}";
	assert_int_equal(catalog_agreement_add_revision(f->cat, &a), 0);
	assert_int_equal(a.revision, 2);
	assert_int_equal(catalog_agreement_get(f->cat, "agr-1", &got), 0);
	assert_int_equal(got.revision, 2);
	assert_string_equal(got.policy_json, "{\"v\":2}");
	assert_string_equal(got.state, "active");
	assert_string_equal(got.state_by, "uid 1000 (alice)");
	agreement_record_release(&got);
	assert_int_equal(catalog_agreement_get(f->cat, "nope", &got), -ENOENT);
	assert_int_equal(catalog_agreement_list(f->cat, &all, &n), 0);
	assert_int_equal(n, 1);
	agreement_records_free(all, n);
}

/* A blob of text's bytes, not owned (never release it). */
static struct buf blob_of(const char *text)
{
	return (struct buf){(uint8_t *)text, strlen(text), 0};
}

static void test_size_index_round_trip_and_prune(void **state)
{
	struct fixture *f = *state;
	struct buf sealed = blob_of("sealed\0sizes"), got = BUF_INIT;
	struct dataset_version v;

	sealed.len = 12;
	make_version(&v, "d", "store/a.gvs", 1);
	assert_int_equal(catalog_dataset_add_version(f->cat, &v), 0);
	assert_int_equal(
	    catalog_size_index_put(f->cat, "agr", 1, "d", 1, &sealed), 0);
	assert_int_equal(catalog_size_index_get(f->cat, "agr", 1, "d", 1, &got),
			 0);
	assert_int_equal(got.len, 12);
	assert_memory_equal(got.data, sealed.data, 12);
	/* A newer revision makes the old index unreachable: pruned. */
	assert_int_equal(
	    catalog_size_index_put(f->cat, "agr", 2, "d", 1, &sealed), 0);
	assert_int_equal(catalog_size_index_prune(f->cat, "agr", 2), 0);
	assert_int_equal(catalog_size_index_get(f->cat, "agr", 1, "d", 1, &got),
			 -ENOENT);
	assert_int_equal(got.len, 0);
	assert_int_equal(catalog_size_index_get(f->cat, "agr", 2, "d", 1, &got),
			 0);
	assert_int_equal(got.len, 12);
	buf_release(&got);
	/* So does a newer dataset version. */
	make_version(&v, "d", "store/b.gvs", 1);
	assert_int_equal(catalog_dataset_add_version(f->cat, &v), 0);
	assert_int_equal(catalog_size_index_prune(f->cat, "agr", 2), 0);
	assert_int_equal(catalog_size_index_get(f->cat, "agr", 2, "d", 1, &got),
			 -ENOENT);
}

static void make_result(struct view_result *r, int64_t revision,
			int64_t version, const char *view, const char *file)
{
	memset(r, 0, sizeof(*r));
	r->agreement = (char *)"agr";
	r->revision = revision;
	r->dataset = (char *)"d";
	r->version = version;
	r->view = (char *)view;
	r->store_file = (char *)file;
	r->store.file_id[0] = 0xab;
	r->store.nblocks = 2;
	r->store.nrows = 3;
	r->store.raw_bytes = 40;
	r->store.file_bytes = 1000 + (uint64_t)revision;
	r->wrapped_key[5] = 0xcd;
	r->sealed_sizes = blob_of("sealed sizes");
	r->digest[31] = 0xef;
}

static int count_file(void *ctx, const char *file)
{
	if (!strncmp(file, "store/v", 7))
		(*(int *)ctx)++;
	return 0;
}

static void test_view_results(void **state)
{
	struct fixture *f = *state;
	struct catalog_files freed = {0};
	struct dataset_version v;
	struct view_result r, got;
	int nfiles = 0;

	make_version(&v, "d", "store/a.gvs", 1);
	assert_int_equal(catalog_dataset_add_version(f->cat, &v), 0);
	make_result(&r, 1, 1, "by_city", "store/v1.gvs");
	assert_int_equal(catalog_view_result_put(f->cat, &r), 0);
	assert_int_equal(
	    catalog_view_result_get(f->cat, "agr", 1, "d", 1, "by_city", &got),
	    0);
	assert_string_equal(got.store_file, "store/v1.gvs");
	assert_memory_equal(&got.store, &r.store, sizeof(r.store));
	assert_memory_equal(got.wrapped_key, r.wrapped_key, WRAPPED_KEY_LEN);
	assert_memory_equal(got.digest, r.digest, VIEW_DIGEST_LEN);
	assert_int_equal(got.sealed_sizes.len, r.sealed_sizes.len);
	assert_memory_equal(got.sealed_sizes.data, r.sealed_sizes.data,
			    r.sealed_sizes.len);
	view_result_release(&got);
	assert_int_equal(
	    catalog_view_result_get(f->cat, "agr", 1, "d", 1, "other", &got),
	    -ENOENT);
	/* result files are store files the catalog references */
	assert_int_equal(catalog_store_files(f->cat, count_file, &nfiles), 0);
	assert_int_equal(nfiles, 1);

	/* a new revision prunes the old one's results, naming their files */
	make_result(&r, 2, 1, "by_city", "store/v2.gvs");
	assert_int_equal(catalog_view_result_put(f->cat, &r), 0);
	make_result(&r, 2, 1, "by_age", "store/v3.gvs");
	assert_int_equal(catalog_view_result_put(f->cat, &r), 0);
	assert_int_equal(catalog_view_result_prune(f->cat, "agr", 2, &freed),
			 0);
	assert_int_equal(freed.n, 1);
	assert_string_equal(freed.files[0], "store/v1.gvs");
	assert_int_equal(freed.bytes, 1001);
	catalog_files_release(&freed);
	assert_int_equal(
	    catalog_view_result_get(f->cat, "agr", 1, "d", 1, "by_city", &got),
	    -ENOENT);
	/* so does a new version */
	make_version(&v, "d", "store/b.gvs", 1);
	assert_int_equal(catalog_dataset_add_version(f->cat, &v), 0);
	make_result(&r, 2, 2, "by_city", "store/v4.gvs");
	assert_int_equal(catalog_view_result_put(f->cat, &r), 0);
	assert_int_equal(catalog_view_result_prune(f->cat, "agr", 2, &freed),
			 0);
	assert_int_equal(freed.n, 2);
	assert_int_equal(freed.bytes, 2004);
	catalog_files_release(&freed);
	/* another agreement's results are not touched; drop_all takes the
	 * rest of this one's */
	make_result(&r, 1, 2, "by_city", "store/v5.gvs");
	r.agreement = (char *)"other";
	assert_int_equal(catalog_view_result_put(f->cat, &r), 0);
	assert_int_equal(catalog_view_result_drop_all(f->cat, "agr", &freed),
			 0);
	assert_int_equal(freed.n, 1);
	assert_string_equal(freed.files[0], "store/v4.gvs");
	catalog_files_release(&freed);
	assert_int_equal(catalog_view_result_drop_all(f->cat, "agr", &freed),
			 0);
	assert_int_equal(freed.n, 0);
	assert_int_equal(catalog_view_result_get(f->cat, "other", 1, "d", 2,
						 "by_city", &got),
			 0);
	view_result_release(&got);
}

/* A catalog made before view results gets their table when govfsctl next
 * opens it to change something. */
static void test_view_results_table_added_on_open(void **state)
{
	struct fixture *f = *state;
	struct view_result r;
	struct catalog *cat;

	char path[128];
	sqlite3 *db;

	catalog_close(f->cat);
	snprintf(path, sizeof(path), "%s/catalog.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "DROP TABLE view_results", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(catalog_open(f->dir, false, &cat), 0);
	make_result(&r, 1, 1, "v", "store/v1.gvs");
	assert_int_equal(catalog_view_result_put(cat, &r), 0);
	catalog_close(cat);
	assert_int_equal(catalog_open(f->dir, false, &f->cat), 0);
}

static void test_data_version_moves_on_foreign_commit(void **state)
{
	struct fixture *f = *state;
	struct catalog *reader;
	int64_t before, after;

	assert_int_equal(catalog_open(f->dir, true, &reader), 0);
	assert_int_equal(catalog_data_version(reader, &before), 0);
	assert_int_equal(catalog_meta_set(f->cat, "k", "v"), 0);
	assert_int_equal(catalog_data_version(reader, &after), 0);
	assert_true(after != before);
	catalog_close(reader);
}

/* Flushes of a write-ahead log (a file named *-wal) by this process:
 * SQLite's fdatasync calls land here first, are counted, then done. */
static int wal_flushes;

int fdatasync(int fd)
{
	static int (*real)(int);
	char link[64], path[PATH_MAX];
	ssize_t n;

	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path));
	if (n > 4 && !memcmp(path + n - 4, "-wal", 4))
		wal_flushes++;
	return real(fd);
}

/* A commit whose flush is deferred is seen by other connections at once
 * and not flushed; catalog_sync flushes it, and the next commit is
 * flushed at once again. */
static void test_deferred_sync_flushes_after(void **state)
{
	struct fixture *f = *state;
	struct catalog *reader;
	char *value = NULL;

	assert_int_equal(catalog_open(f->dir, true, &reader), 0);
	assert_int_equal(catalog_meta_set(f->cat, "k", "first"), 0);
	assert_int_equal(catalog_defer_sync(f->cat), 0);
	wal_flushes = 0;
	assert_int_equal(catalog_meta_set(f->cat, "k", "deferred"), 0);
	assert_int_equal(wal_flushes, 0);
	assert_int_equal(catalog_meta_get(reader, "k", &value), 0);
	assert_string_equal(value, "deferred");
	free(value);
	assert_int_equal(catalog_sync(f->cat), 0);
	assert_int_equal(wal_flushes, 1);
	assert_int_equal(catalog_meta_set(f->cat, "k", "synced"), 0);
	assert_int_equal(wal_flushes, 2);
	assert_int_equal(catalog_meta_get(reader, "k", &value), 0);
	assert_string_equal(value, "synced");
	free(value);
	catalog_close(reader);
}

/* Inside a transaction the flush cannot be deferred (SQLite refuses to
 * change it there): an error, and the transaction goes on unharmed. */
static void test_defer_sync_refused_inside_a_transaction(void **state)
{
	struct fixture *f = *state;
	char *value = NULL;

	assert_int_equal(catalog_begin(f->cat), 0);
	assert_int_equal(catalog_meta_set(f->cat, "k", "in"), 0);
	assert_true(catalog_defer_sync(f->cat) < 0);
	assert_int_equal(catalog_commit(f->cat), 0);
	assert_int_equal(catalog_meta_get(f->cat, "k", &value), 0);
	assert_string_equal(value, "in");
	free(value);
}

/* A wrapped key that cannot occur by chance: the dataset's id, repeated. */
static void mark_key(struct dataset_version *v, const char *id, char fill)
{
	for (size_t i = 0; i < WRAPPED_KEY_LEN; i++)
		v->wrapped_key[i] = i % 8 ? (uint8_t)fill : (uint8_t)id[0];
}

/* Whether file dir/name holds the bytes of needle (absent file: no). */
static bool file_holds(const char *dir, const char *name, const uint8_t *needle,
		       size_t len)
{
	char path[256];
	struct stat st;
	uint8_t *data;
	bool found;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	assert_int_equal(fstat(fd, &st), 0);
	data = malloc((size_t)st.st_size + 1);
	assert_non_null(data);
	assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
	close(fd);
	found = memmem(data, (size_t)st.st_size, needle, len) != NULL;
	free(data);
	return found;
}

static void add_two_datasets(struct fixture *f, uint8_t dropped_key[],
			     uint8_t kept_key[])
{
	struct buf sealed = blob_of("sealed");
	struct dataset_version v;

	make_version(&v, "d", "store/d1.gvs", 10);
	mark_key(&v, "d", 'K');
	memcpy(dropped_key, v.wrapped_key, WRAPPED_KEY_LEN);
	assert_int_equal(catalog_dataset_add_version(f->cat, &v), 0);
	make_version(&v, "d", "store/d2.gvs", 20);
	v.store.file_bytes = 1000;
	mark_key(&v, "d", 'L');
	assert_int_equal(catalog_dataset_add_version(f->cat, &v), 0);
	make_version(&v, "e", "store/e1.gvs", 5);
	mark_key(&v, "e", 'M');
	memcpy(kept_key, v.wrapped_key, WRAPPED_KEY_LEN);
	assert_int_equal(catalog_dataset_add_version(f->cat, &v), 0);
	assert_int_equal(
	    catalog_size_index_put(f->cat, "agr", 1, "d", 2, &sealed), 0);
	assert_int_equal(
	    catalog_size_index_put(f->cat, "agr", 1, "e", 1, &sealed), 0);
}

static void test_drop_deletes_every_version(void **state)
{
	struct fixture *f = *state;
	uint8_t dropped[WRAPPED_KEY_LEN], kept[WRAPPED_KEY_LEN];
	struct dataset_version got, *all;
	struct buf si = BUF_INIT;
	struct dataset_drop d;
	size_t n;

	add_two_datasets(f, dropped, kept);
	assert_int_equal(catalog_begin(f->cat), 0);
	assert_int_equal(catalog_dataset_drop(f->cat, "d", &d), 0);
	assert_int_equal(catalog_commit(f->cat), 0);
	assert_int_equal(d.versions, 2);
	assert_int_equal(d.stored_bytes, 123 + 1000);
	assert_int_equal(d.size_indexes, 1);
	assert_int_equal(d.nfiles, 2);
	assert_string_equal(d.files[0], "store/d1.gvs");
	assert_string_equal(d.files[1], "store/d2.gvs");
	dataset_drop_release(&d);
	assert_int_equal(catalog_dataset_latest(f->cat, "d", &got), -ENOENT);
	assert_int_equal(catalog_size_index_get(f->cat, "agr", 1, "d", 2, &si),
			 -ENOENT);
	/* The other dataset is untouched, and the dropped one is gone from
	 * the list, not left as an empty entry. */
	assert_int_equal(catalog_size_index_get(f->cat, "agr", 1, "e", 1, &si),
			 0);
	buf_release(&si);
	assert_int_equal(catalog_dataset_list(f->cat, &all, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(all[0].dataset, "e");
	assert_memory_equal(all[0].wrapped_key, kept, WRAPPED_KEY_LEN);
	dataset_versions_free(all, n);
	/* A dataset of the same id starts again at version 1. */
	make_version(&got, "d", "store/d3.gvs", 1);
	assert_int_equal(catalog_dataset_add_version(f->cat, &got), 0);
	assert_int_equal(got.version, 1);
}

static void test_drop_unknown_dataset(void **state)
{
	struct fixture *f = *state;
	struct dataset_drop d;

	assert_int_equal(catalog_dataset_drop(f->cat, "nope", &d), -ENOENT);
	assert_int_equal(d.nfiles, 0);
	assert_null(d.files);
}

static void test_drop_rolled_back_keeps_everything(void **state)
{
	struct fixture *f = *state;
	uint8_t dropped[WRAPPED_KEY_LEN], kept[WRAPPED_KEY_LEN];
	struct dataset_version *all;
	struct dataset_drop d;
	size_t n;

	add_two_datasets(f, dropped, kept);
	assert_int_equal(catalog_begin(f->cat), 0);
	assert_int_equal(catalog_dataset_drop(f->cat, "d", &d), 0);
	dataset_drop_release(&d);
	catalog_rollback(f->cat);
	assert_int_equal(catalog_dataset_versions(f->cat, "d", &all, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(all[0].wrapped_key, dropped, WRAPPED_KEY_LEN);
	dataset_versions_free(all, n);
}

static void test_drop_leaves_no_copy_of_the_keys(void **state)
{
	struct fixture *f = *state;
	uint8_t dropped[WRAPPED_KEY_LEN], kept[WRAPPED_KEY_LEN];
	struct catalog *reader;
	struct dataset_drop d;
	int64_t version;

	add_two_datasets(f, dropped, kept);
	/* A daemon has the catalog open, as in real life. */
	assert_int_equal(catalog_open(f->dir, true, &reader), 0);
	assert_int_equal(catalog_data_version(reader, &version), 0);
	assert_true(
	    file_holds(f->dir, "catalog.db-wal", dropped, sizeof(dropped)));
	assert_int_equal(catalog_begin(f->cat), 0);
	assert_int_equal(catalog_dataset_drop(f->cat, "d", &d), 0);
	assert_int_equal(catalog_commit(f->cat), 0);
	dataset_drop_release(&d);
	assert_int_equal(catalog_checkpoint(f->cat), 0);
	assert_false(
	    file_holds(f->dir, "catalog.db", dropped, sizeof(dropped)));
	assert_false(
	    file_holds(f->dir, "catalog.db-wal", dropped, sizeof(dropped)));
	/* What was kept is still there to be found. */
	assert_true(file_holds(f->dir, "catalog.db", kept, sizeof(kept)));
	catalog_close(reader);
}

/* Figures an older govfs kept in clear, as no sealed blob holds them. */
#define CLEAR_BLOCKS "CLEAR-BLOCK-BYTES"
#define CLEAR_VIEW_BLOCKS "CLEAR-VIEW-BLOCK-BYTES"

/* Turn f's catalog (closed) into one an older govfs made: a size index
 * and a view result with their sizes in clear. */
static void make_older_home(struct fixture *f)
{
	static const char sql[] =
	    "DROP TABLE size_indexes; DROP TABLE view_results;"
	    "CREATE TABLE size_indexes("
	    " agreement TEXT NOT NULL, revision INTEGER NOT NULL,"
	    " dataset TEXT NOT NULL, version INTEGER NOT NULL,"
	    " rows INTEGER NOT NULL,"
	    " header_bytes INTEGER NOT NULL, total_bytes INTEGER NOT NULL,"
	    " block_bytes BLOB NOT NULL,"
	    " PRIMARY KEY(agreement, revision, dataset, version));"
	    "INSERT INTO size_indexes VALUES('agr', 1, 'd', 1, 42, 5, 65,"
	    " CAST('" CLEAR_BLOCKS "' AS BLOB));"
	    "CREATE TABLE view_results("
	    " agreement TEXT NOT NULL, revision INTEGER NOT NULL,"
	    " dataset TEXT NOT NULL, version INTEGER NOT NULL,"
	    " view TEXT NOT NULL,"
	    " store_file TEXT NOT NULL UNIQUE, file_id BLOB NOT NULL,"
	    " nblocks INTEGER NOT NULL, nrows INTEGER NOT NULL,"
	    " raw_bytes INTEGER NOT NULL, file_bytes INTEGER NOT NULL,"
	    " wrapped_key BLOB NOT NULL,"
	    " groups INTEGER NOT NULL, header_bytes INTEGER NOT NULL,"
	    " total_bytes INTEGER NOT NULL, block_bytes BLOB NOT NULL,"
	    " sha256 BLOB NOT NULL,"
	    " PRIMARY KEY(agreement, revision, dataset, version, view));"
	    "INSERT INTO view_results VALUES('agr', 1, 'd', 1, 'v',"
	    " 'store/v1.gvs', x'00', 1, 3, 40, 1000, x'00', 3, 6, 22,"
	    " CAST('" CLEAR_VIEW_BLOCKS "' AS BLOB), x'00');";
	char path[128];
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/catalog.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void expect_no_sizes(struct catalog *cat)
{
	struct buf sealed = BUF_INIT;
	struct view_result r;

	assert_int_equal(catalog_size_index_get(cat, "agr", 1, "d", 1, &sealed),
			 -ENOENT);
	assert_int_equal(
	    catalog_view_result_get(cat, "agr", 1, "d", 1, "v", &r), -ENOENT);
}

/*
 * Size indexes an older govfs kept in clear are never given: a read-only
 * open (the daemon's) has none, and the first writable open drops them
 * (and the view results that held theirs), leaving no copy behind, and
 * records sealed ones from then on.
 */
static void test_clear_sizes_of_an_older_home(void **state)
{
	struct fixture *f = *state;
	struct buf sealed = blob_of("sealed"), got = BUF_INIT;
	struct catalog *reader;
	int nfiles = 0;

	catalog_close(f->cat);
	f->cat = NULL;
	make_older_home(f);
	assert_true(file_holds(f->dir, "catalog.db",
			       (const uint8_t *)CLEAR_BLOCKS,
			       strlen(CLEAR_BLOCKS)));
	assert_int_equal(catalog_open(f->dir, true, &reader), 0);
	expect_no_sizes(reader);
	catalog_close(reader);
	assert_int_equal(catalog_open(f->dir, false, &f->cat), 0);
	expect_no_sizes(f->cat);
	assert_int_equal(catalog_store_files(f->cat, count_file, &nfiles), 0);
	assert_int_equal(nfiles, 0);
	assert_int_equal(catalog_checkpoint(f->cat), 0);
	assert_false(file_holds(f->dir, "catalog.db",
				(const uint8_t *)CLEAR_BLOCKS,
				strlen(CLEAR_BLOCKS)));
	assert_false(file_holds(f->dir, "catalog.db",
				(const uint8_t *)CLEAR_VIEW_BLOCKS,
				strlen(CLEAR_VIEW_BLOCKS)));
	assert_int_equal(
	    catalog_size_index_put(f->cat, "agr", 1, "d", 1, &sealed), 0);
	assert_int_equal(catalog_size_index_get(f->cat, "agr", 1, "d", 1, &got),
			 0);
	assert_int_equal(got.len, sealed.len);
	buf_release(&got);
	/* A second open finds nothing more to drop. */
	assert_int_equal(catalog_open(f->dir, false, &reader), 0);
	catalog_close(reader);
	assert_int_equal(catalog_size_index_get(f->cat, "agr", 1, "d", 1, &got),
			 0);
	buf_release(&got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_create_refuses_existing_catalog, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_reads_meta, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_versions_number_from_one,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_file_is_unique, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_deferred_sync_flushes_after,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_defer_sync_refused_inside_a_transaction, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rollback_leaves_nothing, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_agreement_revisions, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_size_index_round_trip_and_prune, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_view_results, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_view_results_table_added_on_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clear_sizes_of_an_older_home,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_data_version_moves_on_foreign_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drop_deletes_every_version,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drop_unknown_dataset, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_drop_rolled_back_keeps_everything, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_drop_leaves_no_copy_of_the_keys, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
