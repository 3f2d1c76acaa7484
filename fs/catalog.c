/*
 * catalog: the SQLite backend of catalog.h.  One connection per struct
 * catalog; WAL so that the daemon's reads never wait for govfsctl's writes;
 * a busy timeout so that two admins queue rather than fail.
 */
#include "catalog.h"

#include "sqlerr.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CATALOG_FILE "catalog.db"
#define CATALOG_SCHEMA_VERSION "1"
#define BUSY_TIMEOUT_MS 10000

struct catalog {
	sqlite3 *db;
	/* A home whose size indexes an earlier govfs kept in clear, opened
	 * read-only: it has no sealed ones to give. */
	bool clear_sizes;
};

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE datasets("
    " id TEXT PRIMARY KEY, title TEXT, provider TEXT,"
    " created_ns INTEGER NOT NULL);"
    "CREATE TABLE dataset_versions("
    " dataset TEXT NOT NULL REFERENCES datasets(id),"
    " version INTEGER NOT NULL,"
    " ingested_ns INTEGER NOT NULL, ingested_by TEXT NOT NULL,"
    " source_name TEXT, source_bytes INTEGER NOT NULL,"
    " source_sha256 TEXT NOT NULL, schema_json TEXT NOT NULL,"
    " store_file TEXT NOT NULL UNIQUE, file_id BLOB NOT NULL,"
    " nblocks INTEGER NOT NULL, nrows INTEGER NOT NULL,"
    " raw_bytes INTEGER NOT NULL, file_bytes INTEGER NOT NULL,"
    " wrapped_key BLOB NOT NULL,"
    " PRIMARY KEY(dataset, version));"
    "CREATE TABLE agreements("
    " id TEXT PRIMARY KEY, created_ns INTEGER NOT NULL,"
    " state TEXT NOT NULL, state_since_ns INTEGER NOT NULL,"
    " state_by TEXT NOT NULL, state_reason TEXT,"
    " revision INTEGER NOT NULL, pseudonym_key BLOB,"
    " expiry_noted_ns INTEGER);"
    "CREATE TABLE agreement_revisions("
    " agreement TEXT NOT NULL REFERENCES agreements(id),"
    " revision INTEGER NOT NULL, applied_ns INTEGER NOT NULL,"
    " applied_by TEXT NOT NULL, policy_json TEXT NOT NULL,"
    " PRIMARY KEY(agreement, revision));";

/*
 * View results, live mounts and sealed size indexes came after version 1
 * of the schema: a home made before gets their tables the first time it
 * is opened for writing (before that it holds nothing to look up in
 * them).  A size index is a sealed blob (sizeindex.h).
 */
static const char later_tables_sql[] =
    "CREATE TABLE IF NOT EXISTS size_indexes("
    " agreement TEXT NOT NULL, revision INTEGER NOT NULL,"
    " dataset TEXT NOT NULL, version INTEGER NOT NULL,"
    " sealed BLOB NOT NULL,"
    " PRIMARY KEY(agreement, revision, dataset, version));"
    "CREATE TABLE IF NOT EXISTS mounts("
    " socket TEXT PRIMARY KEY, agreement TEXT NOT NULL,"
    " pid INTEGER NOT NULL, mountpoint TEXT NOT NULL,"
    " started_ns INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS view_results("
    " agreement TEXT NOT NULL, revision INTEGER NOT NULL,"
    " dataset TEXT NOT NULL, version INTEGER NOT NULL,"
    " view TEXT NOT NULL,"
    " store_file TEXT NOT NULL UNIQUE, file_id BLOB NOT NULL,"
    " nblocks INTEGER NOT NULL, nrows INTEGER NOT NULL,"
    " raw_bytes INTEGER NOT NULL, file_bytes INTEGER NOT NULL,"
    " wrapped_key BLOB NOT NULL, sealed_sizes BLOB NOT NULL,"
    " sha256 BLOB NOT NULL,"
    " PRIMARY KEY(agreement, revision, dataset, version, view));";

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int exec(struct catalog *cat, const char *sql)
{
	return sql_rc(sqlite3_exec(cat->db, sql, NULL, NULL, NULL));
}

static int prepare(struct catalog *cat, const char *sql, sqlite3_stmt **st)
{
	return sql_rc(sqlite3_prepare_v2(cat->db, sql, -1, st, NULL));
}

/* Run a statement that returns no rows, then finalize it. */
static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0
				 : sql_rc(rc == SQLITE_ROW ? SQLITE_ERROR : rc);
}

static char *col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? strdup((const char *)t) : NULL;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* Bind b's bytes (an empty blob, not NULL, when it has none). */
static void bind_blob(sqlite3_stmt *st, int i, const struct buf *b)
{
	sqlite3_bind_blob64(st, i, b->len ? (const void *)b->data : "",
			    (sqlite3_uint64)b->len, SQLITE_TRANSIENT);
}

/* Copy column i's bytes into out (emptied first). */
static int col_blob(sqlite3_stmt *st, int i, struct buf *out)
{
	const void *data = sqlite3_column_blob(st, i);
	size_t len = (size_t)sqlite3_column_bytes(st, i);

	out->len = 0;
	return len ? buf_append(out, data, len) : 0;
}

static int open_db(const char *home, int flags, struct catalog **out)
{
	char path[PATH_MAX];
	struct catalog *cat;
	int rc;

	if (snprintf(path, sizeof(path), "%s/%s", home, CATALOG_FILE) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	cat = calloc(1, sizeof(*cat));
	if (!cat)
		return -ENOMEM;
	rc = sqlite3_open_v2(path, &cat->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = sql_rc(rc);
		sqlite3_close(cat->db);
		free(cat);
		return rc;
	}
	sqlite3_busy_timeout(cat->db, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(cat->db, 0);
	/* Shredding relies on deleted rows being overwritten, not freed:
	 * never leave it to how this SQLite was built. */
	if (!(flags & SQLITE_OPEN_READONLY))
		rc = exec(cat, "PRAGMA secure_delete=ON");
	if (rc) {
		catalog_close(cat);
		return rc;
	}
	*out = cat;
	return 0;
}

int catalog_create(const char *home, struct catalog **out)
{
	struct catalog *cat;
	char value[32];
	int rc;

	rc = open_db(home, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &cat);
	if (rc)
		return rc;
	rc = exec(cat, "PRAGMA journal_mode=WAL");
	if (!rc)
		rc = exec(cat, "BEGIN IMMEDIATE");
	if (rc)
		goto out_close;
	/* A home that already holds a catalog is refused. */
	if (exec(cat, "SELECT 1 FROM meta")) {
		rc = exec(cat, schema_sql);
		if (!rc)
			rc = exec(cat, later_tables_sql);
	} else {
		rc = -EEXIST;
	}
	if (!rc)
		rc = catalog_meta_set(cat, "schema_version",
				      CATALOG_SCHEMA_VERSION);
	snprintf(value, sizeof(value), "%lld", (long long)now_ns());
	if (!rc)
		rc = catalog_meta_set(cat, "created_ns", value);
	if (!rc)
		rc = exec(cat, "COMMIT");
	if (rc) {
		catalog_rollback(cat);
		goto out_close;
	}
	*out = cat;
	return 0;

out_close:
	catalog_close(cat);
	return rc;
}

/* Whether table holds size indexes in clear, as an earlier govfs kept
 * them (their block_bytes column). */
static bool has_clear_sizes(struct catalog *cat, const char *table)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "SELECT block_bytes FROM %s LIMIT 0", table);
	return exec(cat, sql) == 0;
}

static bool home_has_clear_sizes(struct catalog *cat)
{
	return has_clear_sizes(cat, "size_indexes") ||
	       has_clear_sizes(cat, "view_results");
}

/*
 * Drop the tables that hold size indexes in clear, in one transaction
 * with the sealed tables that replace them.  View results go too, their
 * wrapped keys with them (their files are then unreferenced, and the next
 * change removes them).  secure_delete overwrites what is dropped.
 */
static int drop_clear_sizes(struct catalog *cat)
{
	int rc;

	if (!home_has_clear_sizes(cat))
		return 0;
	rc = exec(cat, "BEGIN IMMEDIATE");
	if (!rc && has_clear_sizes(cat, "size_indexes"))
		rc = exec(cat, "DROP TABLE size_indexes");
	if (!rc && has_clear_sizes(cat, "view_results"))
		rc = exec(cat, "DROP TABLE view_results");
	if (!rc)
		rc = exec(cat, later_tables_sql);
	if (!rc)
		rc = exec(cat, "COMMIT");
	if (rc)
		catalog_rollback(cat);
	return rc;
}

/* Bring a home made by an earlier govfs up to this schema. */
static int add_later_schema(struct catalog *cat)
{
	int rc = drop_clear_sizes(cat);

	if (!rc)
		rc = exec(cat, later_tables_sql);
	if (!rc && exec(cat, "SELECT expiry_noted_ns FROM agreements LIMIT 0"))
		rc = exec(cat, "ALTER TABLE agreements ADD COLUMN "
			       "expiry_noted_ns INTEGER");
	return rc;
}

int catalog_open(const char *home, bool read_only, struct catalog **out)
{
	struct catalog *cat;
	char *version = NULL;
	int rc;

	rc = open_db(home,
		     read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE,
		     &cat);
	if (rc)
		return rc;
	rc = exec(cat, "PRAGMA foreign_keys=ON");
	if (!rc)
		rc = catalog_meta_get(cat, "schema_version", &version);
	if (!rc && strcmp(version, CATALOG_SCHEMA_VERSION))
		rc = -EPROTO;
	if (!rc && !read_only)
		rc = add_later_schema(cat);
	if (!rc && read_only)
		cat->clear_sizes = home_has_clear_sizes(cat);
	free(version);
	if (rc) {
		catalog_close(cat);
		return rc == -ENOENT ? -EPROTO : rc;
	}
	*out = cat;
	return 0;
}

void catalog_close(struct catalog *cat)
{
	if (!cat)
		return;
	sqlite3_close(cat->db);
	free(cat);
}

const char *catalog_errmsg(struct catalog *cat)
{
	return sqlite3_errmsg(cat->db);
}

int catalog_begin(struct catalog *cat)
{
	return exec(cat, "BEGIN IMMEDIATE");
}

int catalog_commit(struct catalog *cat)
{
	return exec(cat, "COMMIT");
}

/* The log's frames are written at each commit, flushed by catalog_sync. */
int catalog_defer_sync(struct catalog *cat)
{
	return exec(cat, "PRAGMA synchronous=NORMAL");
}

/*
 * Flush the write-ahead log (and, the first time, the directory entry of
 * a log this connection created), as a synchronous=FULL commit would.
 */
int catalog_sync(struct catalog *cat)
{
	sqlite3_file *wal = NULL;
	int restored, rc = sqlite3_file_control(
			  cat->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);

	if (rc != SQLITE_OK)
		return sql_rc(rc);
	/* No log open: nothing of ours is unflushed. */
	if (wal && wal->pMethods)
		rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
	restored = exec(cat, "PRAGMA synchronous=FULL");
	return rc != SQLITE_OK ? sql_rc(rc) : restored;
}

void catalog_rollback(struct catalog *cat)
{
	if (!sqlite3_get_autocommit(cat->db))
		sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
}

int catalog_begin_read(struct catalog *cat)
{
	int rc = exec(cat, "BEGIN");

	/* A deferred transaction takes its snapshot at the first read. */
	if (!rc)
		rc = exec(cat, "SELECT 1 FROM meta LIMIT 1");
	return rc;
}

void catalog_end_read(struct catalog *cat)
{
	catalog_rollback(cat);
}

int catalog_data_version(struct catalog *cat, int64_t *out)
{
	sqlite3_stmt *st;
	int rc = prepare(cat, "PRAGMA data_version", &st);

	if (rc)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = sql_rc(rc == SQLITE_DONE ? SQLITE_ERROR : rc);
	}
	sqlite3_finalize(st);
	return rc;
}

int catalog_meta_get(struct catalog *cat, const char *key, char **value)
{
	sqlite3_stmt *st;
	int rc = prepare(cat, "SELECT value FROM meta WHERE key = ?", &st);

	if (rc)
		return rc;
	bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*value = col_strdup(st, 0);
		rc = *value ? 0 : -ENOMEM;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : sql_rc(rc);
	}
	sqlite3_finalize(st);
	return rc;
}

int catalog_meta_set(struct catalog *cat, const char *key, const char *value)
{
	sqlite3_stmt *st;
	int rc =
	    prepare(cat,
		    "INSERT INTO meta(key, value) VALUES(?, ?) "
		    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
		    &st);

	if (rc)
		return rc;
	bind_text(st, 1, key);
	bind_text(st, 2, value);
	return step_done(st);
}

void dataset_version_release(struct dataset_version *v)
{
	free(v->dataset);
	free(v->title);
	free(v->provider);
	free(v->ingested_by);
	free(v->source_name);
	free(v->source_sha256);
	free(v->schema_json);
	free(v->store_file);
	memset(v, 0, sizeof(*v));
}

void dataset_versions_free(struct dataset_version *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dataset_version_release(&v[i]);
	free(v);
}

#define VERSION_COLUMNS                                                        \
	"v.dataset, v.version, d.title, d.provider, v.ingested_ns,"            \
	" v.ingested_by, v.source_name, v.source_bytes, v.source_sha256,"      \
	" v.schema_json, v.store_file, v.file_id, v.nblocks, v.nrows,"         \
	" v.raw_bytes, v.file_bytes, v.wrapped_key"

static int version_from_row(sqlite3_stmt *st, struct dataset_version *v)
{
	memset(v, 0, sizeof(*v));
	v->dataset = col_strdup(st, 0);
	v->version = sqlite3_column_int64(st, 1);
	v->title = col_strdup(st, 2);
	v->provider = col_strdup(st, 3);
	v->ingested_ns = sqlite3_column_int64(st, 4);
	v->ingested_by = col_strdup(st, 5);
	v->source_name = col_strdup(st, 6);
	v->source_bytes = (uint64_t)sqlite3_column_int64(st, 7);
	v->source_sha256 = col_strdup(st, 8);
	v->schema_json = col_strdup(st, 9);
	v->store_file = col_strdup(st, 10);
	if (sqlite3_column_bytes(st, 11) != STORE_FILE_ID_LEN ||
	    sqlite3_column_bytes(st, 16) != WRAPPED_KEY_LEN)
		return -EIO;
	memcpy(v->store.file_id, sqlite3_column_blob(st, 11),
	       STORE_FILE_ID_LEN);
	v->store.nblocks = (uint32_t)sqlite3_column_int64(st, 12);
	v->store.nrows = (uint64_t)sqlite3_column_int64(st, 13);
	v->store.raw_bytes = (uint64_t)sqlite3_column_int64(st, 14);
	v->store.file_bytes = (uint64_t)sqlite3_column_int64(st, 15);
	memcpy(v->wrapped_key, sqlite3_column_blob(st, 16), WRAPPED_KEY_LEN);
	if (!v->dataset || !v->ingested_by || !v->source_sha256 ||
	    !v->schema_json || !v->store_file)
		return -ENOMEM;
	return 0;
}

/*
 * Step st to the end, turning each row into an element of a growing array
 * with from_row; on failure release what was built.  Finalizes st.
 */
static int collect_rows(sqlite3_stmt *st, size_t size,
			int (*from_row)(sqlite3_stmt *st, void *elem),
			void (*release)(void *elem), void **out, size_t *n)
{
	char *items = NULL;
	size_t count = 0, cap = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			char *grown;

			cap = cap ? cap * 2 : 8;
			grown = realloc(items, cap * size);
			if (!grown) {
				rc = -ENOMEM;
				break;
			}
			items = grown;
		}
		rc = from_row(st, items + count++ * size);
		if (rc)
			break;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE) {
		*out = items;
		*n = count;
		return 0;
	}
	for (size_t i = 0; i < count; i++)
		release(items + i * size);
	free(items);
	return rc < 0 ? rc : sql_rc(rc);
}

static int version_row(sqlite3_stmt *st, void *elem)
{
	return version_from_row(st, elem);
}

static void version_release(void *elem)
{
	dataset_version_release(elem);
}

static int collect_versions(sqlite3_stmt *st, struct dataset_version **out,
			    size_t *n)
{
	return collect_rows(st, sizeof(**out), version_row, version_release,
			    (void **)out, n);
}

int catalog_dataset_latest(struct catalog *cat, const char *id,
			   struct dataset_version *out)
{
	struct dataset_version *v;
	sqlite3_stmt *st;
	size_t n;
	int rc = prepare(cat,
			 "SELECT " VERSION_COLUMNS
			 " FROM dataset_versions v JOIN datasets d"
			 " ON d.id = v.dataset WHERE v.dataset = ?"
			 " ORDER BY v.version DESC LIMIT 1",
			 &st);

	if (rc)
		return rc;
	bind_text(st, 1, id);
	rc = collect_versions(st, &v, &n);
	if (rc)
		return rc;
	if (n == 0) {
		free(v);
		return -ENOENT;
	}
	*out = v[0];
	free(v);
	return 0;
}

int catalog_dataset_versions(struct catalog *cat, const char *id,
			     struct dataset_version **out, size_t *n)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "SELECT " VERSION_COLUMNS
			 " FROM dataset_versions v JOIN datasets d"
			 " ON d.id = v.dataset WHERE v.dataset = ?"
			 " ORDER BY v.version",
			 &st);

	if (rc)
		return rc;
	bind_text(st, 1, id);
	return collect_versions(st, out, n);
}

int catalog_dataset_list(struct catalog *cat, struct dataset_version **out,
			 size_t *n)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "SELECT " VERSION_COLUMNS
			 " FROM dataset_versions v JOIN datasets d"
			 " ON d.id = v.dataset WHERE v.version ="
			 " (SELECT max(version) FROM dataset_versions"
			 "  WHERE dataset = v.dataset) ORDER BY v.dataset",
			 &st);

	if (rc)
		return rc;
	return collect_versions(st, out, n);
}

static int upsert_dataset(struct catalog *cat, const struct dataset_version *v)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "INSERT INTO datasets(id, title, provider, created_ns)"
			 " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(id) DO UPDATE SET"
			 " title = coalesce(?2, title),"
			 " provider = coalesce(?3, provider)",
			 &st);

	if (rc)
		return rc;
	bind_text(st, 1, v->dataset);
	bind_text(st, 2, v->title);
	bind_text(st, 3, v->provider);
	sqlite3_bind_int64(st, 4, v->ingested_ns);
	return step_done(st);
}

static int next_version(struct catalog *cat, const char *id, int64_t *out)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "SELECT coalesce(max(version), 0) + 1"
			 " FROM dataset_versions WHERE dataset = ?",
			 &st);

	if (rc)
		return rc;
	bind_text(st, 1, id);
	rc = sqlite3_step(st);
	*out = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : sql_rc(rc);
}

int catalog_dataset_add_version(struct catalog *cat, struct dataset_version *v)
{
	sqlite3_stmt *st;
	int rc;

	rc = upsert_dataset(cat, v);
	if (!rc)
		rc = next_version(cat, v->dataset, &v->version);
	if (!rc)
		rc = prepare(cat,
			     "INSERT INTO dataset_versions(dataset, version,"
			     " ingested_ns, ingested_by, source_name,"
			     " source_bytes, source_sha256, schema_json,"
			     " store_file, file_id, nblocks, nrows, raw_bytes,"
			     " file_bytes, wrapped_key) VALUES(?, ?, ?, ?, ?,"
			     " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			     &st);
	if (rc)
		return rc;
	bind_text(st, 1, v->dataset);
	sqlite3_bind_int64(st, 2, v->version);
	sqlite3_bind_int64(st, 3, v->ingested_ns);
	bind_text(st, 4, v->ingested_by);
	bind_text(st, 5, v->source_name);
	sqlite3_bind_int64(st, 6, (int64_t)v->source_bytes);
	bind_text(st, 7, v->source_sha256);
	bind_text(st, 8, v->schema_json);
	bind_text(st, 9, v->store_file);
	sqlite3_bind_blob(st, 10, v->store.file_id, STORE_FILE_ID_LEN,
			  SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 11, v->store.nblocks);
	sqlite3_bind_int64(st, 12, (int64_t)v->store.nrows);
	sqlite3_bind_int64(st, 13, (int64_t)v->store.raw_bytes);
	sqlite3_bind_int64(st, 14, (int64_t)v->store.file_bytes);
	sqlite3_bind_blob(st, 15, v->wrapped_key, WRAPPED_KEY_LEN,
			  SQLITE_TRANSIENT);
	return step_done(st);
}

int catalog_dataset_set_schema(struct catalog *cat, const char *id,
			       int64_t version, const char *schema_json)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "UPDATE dataset_versions SET schema_json = ?"
			 " WHERE dataset = ? AND version = ?",
			 &st);

	if (rc)
		return rc;
	bind_text(st, 1, schema_json);
	bind_text(st, 2, id);
	sqlite3_bind_int64(st, 3, version);
	return step_done(st);
}

int catalog_store_files(struct catalog *cat,
			int (*fn)(void *ctx, const char *file), void *ctx)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "SELECT store_file FROM dataset_versions"
			 " UNION ALL SELECT store_file FROM view_results",
			 &st);

	if (rc)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = fn(ctx, (const char *)sqlite3_column_text(st, 0));
		if (rc) {
			sqlite3_finalize(st);
			return rc;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sql_rc(rc);
}

void agreement_record_release(struct agreement_record *a)
{
	free(a->id);
	free(a->state);
	free(a->state_by);
	free(a->state_reason);
	free(a->applied_by);
	free(a->policy_json);
	memset(a, 0, sizeof(*a));
}

void agreement_records_free(struct agreement_record *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		agreement_record_release(&a[i]);
	free(a);
}

#define AGREEMENT_QUERY                                                        \
	"SELECT a.id, a.created_ns, a.state, a.state_since_ns, a.state_by,"    \
	" a.state_reason, a.revision, r.applied_ns, r.applied_by,"             \
	" r.policy_json, a.pseudonym_key FROM agreements a"                    \
	" JOIN agreement_revisions r"                                          \
	" ON r.agreement = a.id AND r.revision = a.revision"

static int agreement_from_row(sqlite3_stmt *st, struct agreement_record *a)
{
	memset(a, 0, sizeof(*a));
	a->id = col_strdup(st, 0);
	a->created_ns = sqlite3_column_int64(st, 1);
	a->state = col_strdup(st, 2);
	a->state_since_ns = sqlite3_column_int64(st, 3);
	a->state_by = col_strdup(st, 4);
	a->state_reason = col_strdup(st, 5);
	a->revision = sqlite3_column_int64(st, 6);
	a->applied_ns = sqlite3_column_int64(st, 7);
	a->applied_by = col_strdup(st, 8);
	a->policy_json = col_strdup(st, 9);
	a->has_pseudonym_key = sqlite3_column_bytes(st, 10) == WRAPPED_KEY_LEN;
	if (a->has_pseudonym_key)
		memcpy(a->pseudonym_key, sqlite3_column_blob(st, 10),
		       WRAPPED_KEY_LEN);
	if (!a->id || !a->state || !a->state_by || !a->applied_by ||
	    !a->policy_json)
		return -ENOMEM;
	return 0;
}

static int agreement_row(sqlite3_stmt *st, void *elem)
{
	return agreement_from_row(st, elem);
}

static void agreement_release_elem(void *elem)
{
	agreement_record_release(elem);
}

static int collect_agreements(sqlite3_stmt *st, struct agreement_record **out,
			      size_t *n)
{
	return collect_rows(st, sizeof(**out), agreement_row,
			    agreement_release_elem, (void **)out, n);
}

int catalog_agreement_get(struct catalog *cat, const char *id,
			  struct agreement_record *out)
{
	struct agreement_record *a;
	sqlite3_stmt *st;
	size_t n;
	int rc = prepare(cat, AGREEMENT_QUERY " WHERE a.id = ?", &st);

	if (rc)
		return rc;
	bind_text(st, 1, id);
	rc = collect_agreements(st, &a, &n);
	if (rc)
		return rc;
	if (n == 0) {
		free(a);
		return -ENOENT;
	}
	*out = a[0];
	free(a);
	return 0;
}

int catalog_agreement_list(struct catalog *cat, struct agreement_record **out,
			   size_t *n)
{
	sqlite3_stmt *st;
	int rc = prepare(cat, AGREEMENT_QUERY " ORDER BY a.id", &st);

	if (rc)
		return rc;
	return collect_agreements(st, out, n);
}

static int insert_agreement(struct catalog *cat, struct agreement_record *a)
{
	sqlite3_stmt *st;
	int rc =
	    prepare(cat,
		    "INSERT INTO agreements(id, created_ns, state,"
		    " state_since_ns, state_by, state_reason, revision,"
		    " pseudonym_key) VALUES(?, ?, 'active', ?, ?, NULL, 1, ?)",
		    &st);

	if (rc)
		return rc;
	bind_text(st, 1, a->id);
	sqlite3_bind_int64(st, 2, a->applied_ns);
	sqlite3_bind_int64(st, 3, a->applied_ns);
	bind_text(st, 4, a->applied_by);
	if (a->has_pseudonym_key)
		sqlite3_bind_blob(st, 5, a->pseudonym_key, WRAPPED_KEY_LEN,
				  SQLITE_TRANSIENT);
	a->revision = 1;
	return step_done(st);
}

static int bump_revision(struct catalog *cat, struct agreement_record *a)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "UPDATE agreements SET revision = revision + 1"
			 " WHERE id = ? RETURNING revision",
			 &st);

	if (rc)
		return rc;
	bind_text(st, 1, a->id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		a->revision = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : sql_rc(rc);
}

int catalog_agreement_add_revision(struct catalog *cat,
				   struct agreement_record *a)
{
	struct agreement_record old;
	sqlite3_stmt *st;
	int rc;

	a->applied_ns = now_ns();
	rc = catalog_agreement_get(cat, a->id, &old);
	if (rc == -ENOENT) {
		rc = insert_agreement(cat, a);
	} else if (!rc) {
		/* Revocation is final, even against an apply under way. */
		rc = strcmp(old.state, "revoked") ? bump_revision(cat, a)
						  : -EPERM;
		agreement_record_release(&old);
	}
	if (!rc)
		rc = prepare(cat,
			     "INSERT INTO agreement_revisions(agreement,"
			     " revision, applied_ns, applied_by, policy_json)"
			     " VALUES(?, ?, ?, ?, ?)",
			     &st);
	if (rc)
		return rc;
	bind_text(st, 1, a->id);
	sqlite3_bind_int64(st, 2, a->revision);
	sqlite3_bind_int64(st, 3, a->applied_ns);
	bind_text(st, 4, a->applied_by);
	bind_text(st, 5, a->policy_json);
	return step_done(st);
}

int catalog_size_index_put(struct catalog *cat, const char *agreement,
			   int64_t revision, const char *dataset,
			   int64_t version, const struct buf *sealed)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "INSERT OR REPLACE INTO size_indexes(agreement,"
			 " revision, dataset, version, sealed)"
			 " VALUES(?, ?, ?, ?, ?)",
			 &st);

	if (rc)
		return rc;
	bind_text(st, 1, agreement);
	sqlite3_bind_int64(st, 2, revision);
	bind_text(st, 3, dataset);
	sqlite3_bind_int64(st, 4, version);
	bind_blob(st, 5, sealed);
	return step_done(st);
}

int catalog_size_index_get(struct catalog *cat, const char *agreement,
			   int64_t revision, const char *dataset,
			   int64_t version, struct buf *out)
{
	sqlite3_stmt *st;
	int rc;

	out->len = 0;
	if (cat->clear_sizes)
		return -ENOENT;
	rc = prepare(cat,
		     "SELECT sealed FROM size_indexes WHERE agreement = ?"
		     " AND revision = ? AND dataset = ? AND version = ?",
		     &st);
	if (rc)
		return rc;
	bind_text(st, 1, agreement);
	sqlite3_bind_int64(st, 2, revision);
	bind_text(st, 3, dataset);
	sqlite3_bind_int64(st, 4, version);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = col_blob(st, 0, out);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : sql_rc(rc);
	sqlite3_finalize(st);
	return rc;
}

int catalog_size_index_prune(struct catalog *cat, const char *agreement,
			     int64_t revision)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "DELETE FROM size_indexes WHERE agreement = ?1 AND"
			 " (revision != ?2 OR version != (SELECT max(version)"
			 "  FROM dataset_versions WHERE dataset ="
			 "  size_indexes.dataset))",
			 &st);

	if (rc)
		return rc;
	bind_text(st, 1, agreement);
	sqlite3_bind_int64(st, 2, revision);
	return step_done(st);
}

int catalog_agreement_set_state(struct catalog *cat, const char *id,
				const char *state, const char *by,
				const char *reason)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "UPDATE agreements SET state = ?, state_since_ns = ?,"
			 " state_by = ?, state_reason = ? WHERE id = ?",
			 &st);

	if (rc)
		return rc;
	bind_text(st, 1, state);
	sqlite3_bind_int64(st, 2, now_ns());
	bind_text(st, 3, by);
	bind_text(st, 4, reason);
	bind_text(st, 5, id);
	rc = step_done(st);
	if (!rc && sqlite3_changes(cat->db) != 1)
		rc = -ENOENT;
	return rc;
}

/* Run sql with ?1 bound to id; *n (if asked) gets the rows changed. */
static int change_for_agreement(struct catalog *cat, const char *sql,
				const char *id, size_t *n)
{
	sqlite3_stmt *st;
	int rc = prepare(cat, sql, &st);

	if (rc)
		return rc;
	bind_text(st, 1, id);
	rc = step_done(st);
	if (!rc && n)
		*n = (size_t)sqlite3_changes(cat->db);
	return rc;
}

int catalog_agreement_shred(struct catalog *cat, const char *id,
			    struct agreement_shred *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc =
	    change_for_agreement(cat,
				 "UPDATE agreements SET pseudonym_key = NULL"
				 " WHERE id = ?1 AND pseudonym_key IS NOT NULL",
				 id, &out->pseudonym_keys);
	if (!rc)
		rc = change_for_agreement(
		    cat, "DELETE FROM size_indexes WHERE agreement = ?1", id,
		    &out->size_indexes);
	return rc;
}

int catalog_agreement_claim_expiry(struct catalog *cat, const char *id,
				   int64_t valid_until_ns, bool *claimed)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "UPDATE agreements SET expiry_noted_ns = ?2"
			 " WHERE id = ?1 AND expiry_noted_ns IS NOT ?2",
			 &st);

	if (rc)
		return rc;
	bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, valid_until_ns);
	rc = step_done(st);
	*claimed = !rc && sqlite3_changes(cat->db) == 1;
	return rc;
}

int catalog_mount_register(struct catalog *cat, const struct mount_record *m)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "INSERT OR REPLACE INTO mounts(socket, agreement, pid,"
			 " mountpoint, started_ns) VALUES(?, ?, ?, ?, ?)",
			 &st);

	if (rc)
		return rc;
	bind_text(st, 1, m->socket);
	bind_text(st, 2, m->agreement);
	sqlite3_bind_int64(st, 3, m->pid);
	bind_text(st, 4, m->mountpoint);
	sqlite3_bind_int64(st, 5, m->started_ns);
	return step_done(st);
}

int catalog_mount_unregister(struct catalog *cat, const char *socket)
{
	size_t n;
	int rc = change_for_agreement(
	    cat, "DELETE FROM mounts WHERE socket = ?1", socket, &n);

	return rc ? rc : n ? 0 : -ENOENT;
}

static int mount_row(sqlite3_stmt *st, void *elem)
{
	struct mount_record *m = elem;

	m->socket = col_strdup(st, 0);
	m->agreement = col_strdup(st, 1);
	m->pid = sqlite3_column_int64(st, 2);
	m->mountpoint = col_strdup(st, 3);
	m->started_ns = sqlite3_column_int64(st, 4);
	return m->socket && m->agreement && m->mountpoint ? 0 : -ENOMEM;
}

static void mount_release_elem(void *elem)
{
	struct mount_record *m = elem;

	free(m->agreement);
	free(m->mountpoint);
	free(m->socket);
}

void mount_records_free(struct mount_record *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mount_release_elem(&m[i]);
	free(m);
}

int catalog_mount_list(struct catalog *cat, const char *agreement,
		       struct mount_record **out, size_t *n)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "SELECT socket, agreement, pid, mountpoint, started_ns"
			 " FROM mounts WHERE ?1 IS NULL OR agreement = ?1"
			 " ORDER BY agreement, started_ns",
			 &st);

	if (rc)
		return rc;
	bind_text(st, 1, agreement);
	return collect_rows(st, sizeof(**out), mount_row, mount_release_elem,
			    (void **)out, n);
}

void view_result_release(struct view_result *r)
{
	free(r->agreement);
	free(r->dataset);
	free(r->view);
	free(r->store_file);
	buf_release(&r->sealed_sizes);
	memset(r, 0, sizeof(*r));
}

int catalog_view_result_put(struct catalog *cat, const struct view_result *r)
{
	sqlite3_stmt *st;
	int rc = prepare(
	    cat,
	    "INSERT OR REPLACE INTO view_results(agreement, revision, dataset,"
	    " version, view, store_file, file_id, nblocks, nrows, raw_bytes,"
	    " file_bytes, wrapped_key, sealed_sizes, sha256) VALUES(?, ?, ?, ?,"
	    " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	    &st);

	if (rc)
		return rc;
	bind_text(st, 1, r->agreement);
	sqlite3_bind_int64(st, 2, r->revision);
	bind_text(st, 3, r->dataset);
	sqlite3_bind_int64(st, 4, r->version);
	bind_text(st, 5, r->view);
	bind_text(st, 6, r->store_file);
	sqlite3_bind_blob(st, 7, r->store.file_id, STORE_FILE_ID_LEN,
			  SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 8, r->store.nblocks);
	sqlite3_bind_int64(st, 9, (int64_t)r->store.nrows);
	sqlite3_bind_int64(st, 10, (int64_t)r->store.raw_bytes);
	sqlite3_bind_int64(st, 11, (int64_t)r->store.file_bytes);
	sqlite3_bind_blob(st, 12, r->wrapped_key, WRAPPED_KEY_LEN,
			  SQLITE_TRANSIENT);
	bind_blob(st, 13, &r->sealed_sizes);
	sqlite3_bind_blob(st, 14, r->digest, VIEW_DIGEST_LEN, SQLITE_TRANSIENT);
	return step_done(st);
}

static int view_result_from_row(sqlite3_stmt *st, struct view_result *r)
{
	memset(r, 0, sizeof(*r));
	r->agreement = col_strdup(st, 0);
	r->revision = sqlite3_column_int64(st, 1);
	r->dataset = col_strdup(st, 2);
	r->version = sqlite3_column_int64(st, 3);
	r->view = col_strdup(st, 4);
	r->store_file = col_strdup(st, 5);
	if (sqlite3_column_bytes(st, 6) != STORE_FILE_ID_LEN ||
	    sqlite3_column_bytes(st, 11) != WRAPPED_KEY_LEN ||
	    sqlite3_column_bytes(st, 13) != VIEW_DIGEST_LEN)
		return -EIO;
	memcpy(r->store.file_id, sqlite3_column_blob(st, 6), STORE_FILE_ID_LEN);
	r->store.nblocks = (uint32_t)sqlite3_column_int64(st, 7);
	r->store.nrows = (uint64_t)sqlite3_column_int64(st, 8);
	r->store.raw_bytes = (uint64_t)sqlite3_column_int64(st, 9);
	r->store.file_bytes = (uint64_t)sqlite3_column_int64(st, 10);
	memcpy(r->wrapped_key, sqlite3_column_blob(st, 11), WRAPPED_KEY_LEN);
	memcpy(r->digest, sqlite3_column_blob(st, 13), VIEW_DIGEST_LEN);
	if (!r->agreement || !r->dataset || !r->view || !r->store_file)
		return -ENOMEM;
	return col_blob(st, 12, &r->sealed_sizes);
}

int catalog_view_result_get(struct catalog *cat, const char *agreement,
			    int64_t revision, const char *dataset,
			    int64_t version, const char *view,
			    struct view_result *out)
{
	sqlite3_stmt *st;
	int rc;

	if (cat->clear_sizes)
		return -ENOENT;
	rc = prepare(
	    cat,
	    "SELECT agreement, revision, dataset, version, view, store_file,"
	    " file_id, nblocks, nrows, raw_bytes, file_bytes, wrapped_key,"
	    " sealed_sizes, sha256"
	    " FROM view_results WHERE agreement = ? AND revision = ?"
	    " AND dataset = ? AND version = ? AND view = ?",
	    &st);

	if (rc)
		return rc;
	bind_text(st, 1, agreement);
	sqlite3_bind_int64(st, 2, revision);
	bind_text(st, 3, dataset);
	sqlite3_bind_int64(st, 4, version);
	bind_text(st, 5, view);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		rc = view_result_from_row(st, out);
		if (rc)
			view_result_release(out);
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : sql_rc(rc);
	}
	sqlite3_finalize(st);
	return rc;
}

void catalog_files_release(struct catalog_files *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->files[i]);
	free(f->files);
	memset(f, 0, sizeof(*f));
}

static int files_add(struct catalog_files *f, const char *file, uint64_t bytes)
{
	char **grown = realloc(f->files, (f->n + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	f->files = grown;
	f->files[f->n] = strdup(file);
	if (!f->files[f->n])
		return -ENOMEM;
	f->n++;
	f->bytes += bytes;
	return 0;
}

/*
 * Delete the view results of agreement (?1) that cond (an SQL condition
 * on the row, which may name ?2 bound to revision) selects, adding their
 * files to freed.
 */
static int view_results_delete(struct catalog *cat, const char *cond,
			       const char *agreement, int64_t revision,
			       struct catalog_files *freed)
{
	char sql[512];
	sqlite3_stmt *st;
	int rc;

	snprintf(sql, sizeof(sql),
		 "DELETE FROM view_results WHERE agreement = ?1 AND (%s)"
		 " RETURNING store_file, file_bytes",
		 cond);
	rc = prepare(cat, sql, &st);
	if (rc)
		return rc;
	bind_text(st, 1, agreement);
	sqlite3_bind_int64(st, 2, revision);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = files_add(freed, (const char *)sqlite3_column_text(st, 0),
			       (uint64_t)sqlite3_column_int64(st, 1));
		if (rc) {
			sqlite3_finalize(st);
			return rc;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sql_rc(rc);
}

int catalog_view_result_prune(struct catalog *cat, const char *agreement,
			      int64_t revision, struct catalog_files *freed)
{
	return view_results_delete(
	    cat,
	    "revision != ?2 OR version != (SELECT max(version)"
	    " FROM dataset_versions WHERE dataset = view_results.dataset)",
	    agreement, revision, freed);
}

int catalog_view_result_drop_all(struct catalog *cat, const char *agreement,
				 struct catalog_files *freed)
{
	return view_results_delete(cat, "1", agreement, 0, freed);
}

/* ---- dataset drop: crypto-shredding every version of a dataset ---- */

void dataset_drop_release(struct dataset_drop *d)
{
	for (size_t i = 0; i < d->nfiles; i++)
		free(d->files[i]);
	free(d->files);
	memset(d, 0, sizeof(*d));
}

/* Note every version's store file and size in d; -ENOENT if none. */
static int note_dropped_versions(struct catalog *cat, const char *id,
				 struct dataset_drop *d)
{
	struct dataset_version *v;
	size_t n;
	int rc = catalog_dataset_versions(cat, id, &v, &n);

	if (rc)
		return rc;
	d->files = calloc(n ? n : 1, sizeof(*d->files));
	rc = d->files ? 0 : -ENOMEM;
	for (size_t i = 0; i < n && !rc; i++) {
		d->files[i] = strdup(v[i].store_file);
		if (!d->files[i])
			rc = -ENOMEM;
		d->nfiles++;
		d->stored_bytes += v[i].store.file_bytes;
	}
	d->versions = n;
	dataset_versions_free(v, n);
	return !rc && n == 0 ? -ENOENT : rc;
}

/*
 * Delete the view results computed over dataset id (with their wrapped
 * keys) and add their files to d.  Live agreements cannot name a dropped
 * dataset, so these are at most leftovers of ones that no longer do.
 */
static int drop_view_results_of(struct catalog *cat, const char *id,
				struct dataset_drop *d)
{
	sqlite3_stmt *st;
	int rc = prepare(cat,
			 "DELETE FROM view_results WHERE dataset = ?1"
			 " RETURNING store_file, file_bytes",
			 &st);

	if (rc)
		return rc;
	bind_text(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char **grown =
		    realloc(d->files, (d->nfiles + 1) * sizeof(*d->files));
		char *file =
		    grown ? strdup((const char *)sqlite3_column_text(st, 0))
			  : NULL;

		if (grown)
			d->files = grown;
		if (!file) {
			rc = -ENOMEM;
			break;
		}
		d->files[d->nfiles++] = file;
		d->stored_bytes += (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : rc < 0 ? rc : sql_rc(rc);
}

int catalog_dataset_drop(struct catalog *cat, const char *id,
			 struct dataset_drop *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = note_dropped_versions(cat, id, out);
	if (!rc)
		rc = drop_view_results_of(cat, id, out);
	if (!rc)
		rc = change_for_agreement(
		    cat, "DELETE FROM size_indexes WHERE dataset = ?1", id,
		    &out->size_indexes);
	if (!rc)
		rc = change_for_agreement(
		    cat, "DELETE FROM dataset_versions WHERE dataset = ?1", id,
		    NULL);
	if (!rc)
		rc = change_for_agreement(
		    cat, "DELETE FROM datasets WHERE id = ?1", id, NULL);
	if (rc)
		dataset_drop_release(out);
	return rc;
}

int catalog_checkpoint(struct catalog *cat)
{
	sqlite3_stmt *st;
	int rc = prepare(cat, "PRAGMA wal_checkpoint(TRUNCATE)", &st);

	if (rc)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = sqlite3_column_int(st, 0) ? -EBUSY : 0;
	else
		rc = sql_rc(rc == SQLITE_DONE ? SQLITE_ERROR : rc);
	sqlite3_finalize(st);
	return rc;
}
