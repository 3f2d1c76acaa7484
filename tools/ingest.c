/*
 * ingest: `dataset add`.  Streams the CSV through the reader, checks or
 * infers column types, encodes records into blocks and writes a sealed
 * store file; then, with the admin lock held, computes the size index and
 * the view results of every live agreement that names the dataset and
 * publishes the version in one catalog transaction.  The store file is renamed
 * into place before the commit, so a kill at any moment leaves either no
 * version (and a leftover file that the next govfsctl removes) or the whole
 * version.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agreement.h"
#include "audit.h"
#include "clock.h"
#include "csv.h"
#include "dataview.h"
#include "fileio.h"
#include "govfsctl.h"
#include "home.h"
#include "jsonpath.h"
#include "rowfmt.h"
#include "schema.h"
#include "store.h"
#include "types.h"
#include "viewstore.h"

#define READ_CHUNK (1u << 20)
#define PROGRESS_AFTER_NS 1000000000LL
#define PROGRESS_EVERY_NS 250000000LL

struct ingest {
	const struct ingest_args *args;
	bool declared; /* types come from --schema */
	struct schema schema;
	struct type_guess *guess;
	struct buf block;
	uint32_t block_rows;
	struct store_writer *writer;
	uint64_t rows;
	struct perr err;
	/* progress */
	bool tty;
	int64_t start_ns, last_ns;
	uint64_t bytes_read;
	bool progress_shown;
};

static int header_against_declared(struct ingest *in,
				   const struct csv_record *rec,
				   struct perr *err)
{
	if (rec->nfields != in->schema.ncols)
		return perr_set(err,
				"line %llu: header has %zu columns, "
				"schema has %zu",
				(unsigned long long)rec->line, rec->nfields,
				in->schema.ncols);
	for (size_t i = 0; i < rec->nfields; i++) {
		const char *name = in->schema.cols[i].name;

		if (rec->fields[i].len != strlen(name) ||
		    memcmp(rec->fields[i].data, name, rec->fields[i].len))
			return perr_set(err,
					"line %llu, column %zu: header "
					"name differs from the schema's "
					"'%s'",
					(unsigned long long)rec->line, i + 1,
					name);
	}
	return 0;
}

static int header_to_schema(struct ingest *in, const struct csv_record *rec)
{
	in->schema.cols = calloc(rec->nfields, sizeof(*in->schema.cols));
	in->guess = calloc(rec->nfields, sizeof(*in->guess));
	if (!in->schema.cols || !in->guess)
		return -ENOMEM;
	in->schema.ncols = rec->nfields;
	for (size_t i = 0; i < rec->nfields; i++) {
		in->schema.cols[i].name =
		    strndup(rec->fields[i].data, rec->fields[i].len);
		if (!in->schema.cols[i].name)
			return -ENOMEM;
		in->schema.cols[i].level = LEVEL_MAX;
		type_guess_init(&in->guess[i]);
	}
	return 0;
}

static int type_error(const struct ingest *in, const struct csv_record *rec,
		      size_t col, struct perr *err)
{
	char name[QUOTE_LEN], value[QUOTE_LEN];

	return perr_set(err,
			"line %llu, column %zu ('%s'): '%s' is not a "
			"valid %s",
			(unsigned long long)rec->line, col + 1,
			text_quote(name, in->schema.cols[col].name),
			text_quote_bytes(value, rec->fields[col].data,
					 rec->fields[col].len),
			col_type_name(in->schema.cols[col].type));
}

static int flush_block(struct ingest *in)
{
	int rc;

	if (!in->block_rows)
		return 0;
	rc = store_writer_add_block(in->writer, &in->block, in->block_rows);
	in->block_rows = 0;
	return rc;
}

static int on_record(void *ctx, const struct csv_record *rec, struct perr *err)
{
	struct ingest *in = ctx;
	int rc;

	if (rec->index == 0)
		return in->declared ? header_against_declared(in, rec, err)
				    : header_to_schema(in, rec);
	for (size_t i = 0; i < rec->nfields; i++) {
		const struct csv_field *f = &rec->fields[i];

		if (!f->len)
			continue;
		if (!in->declared)
			type_guess_feed(&in->guess[i], f->data, f->len);
		else if (!value_fits_type(in->schema.cols[i].type, f->data,
					  f->len))
			return type_error(in, rec, i, err);
	}
	rc = rowfmt_append(&in->block, rec->fields, rec->nfields);
	if (rc)
		return rc;
	in->block_rows++;
	in->rows++;
	if (in->block.len >= STORE_BLOCK_TARGET)
		return flush_block(in);
	return 0;
}

static void show_progress(struct ingest *in, bool last)
{
	int64_t now = clock_now_ns();
	double secs = (double)(now - in->start_ns) / 1e9;

	if (!in->tty || now - in->start_ns < PROGRESS_AFTER_NS)
		return;
	if (!last && now - in->last_ns < PROGRESS_EVERY_NS)
		return;
	in->last_ns = now;
	in->progress_shown = true;
	fprintf(stderr, "\r%llu rows, %.1f MB, %.1f MB/s   %s",
		(unsigned long long)in->rows, (double)in->bytes_read / 1e6,
		(double)in->bytes_read / 1e6 / secs, last ? "\n" : "");
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* Stream the source through the reader into the store writer. */
static int read_source(struct ingest *in, int fd, char sha[65])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct csv_reader *r = csv_reader_new(on_record, in, &in->err);
	char *chunk = malloc(READ_CHUNK);
	uint8_t digest[32];
	int rc = 0;

	if (!md || !r || !chunk ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, READ_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			perr_set(&in->err, "%s", strerror(errno));
			break;
		}
		if (n == 0) {
			rc = csv_reader_finish(r);
			break;
		}
		EVP_DigestUpdate(md, chunk, (size_t)n);
		in->bytes_read += (uint64_t)n;
		rc = csv_reader_feed(r, chunk, (size_t)n);
		if (rc)
			break;
		show_progress(in, false);
	}
	if (!rc)
		rc = flush_block(in);
	if (!rc && EVP_DigestFinal_ex(md, digest, NULL) == 1)
		hex(digest, sizeof(digest), sha);
	if (in->progress_shown)
		show_progress(in, true);
out_free:
	free(chunk);
	csv_reader_free(r);
	EVP_MD_CTX_free(md);
	return rc;
}

/* Inferred types, and the levels an admin gave same-named columns before. */
static void settle_schema(struct ingest *in, const struct schema *previous)
{
	for (size_t i = 0; i < in->schema.ncols && !in->declared; i++) {
		struct column *c = &in->schema.cols[i];
		long prev = previous ? schema_find(previous, c->name) : -1;

		c->type = type_guess_result(&in->guess[i]);
		if (prev >= 0)
			c->level = previous->cols[prev].level;
	}
}

static int load_declared_schema(struct ingest *in)
{
	struct perr err;
	size_t len;
	char *text;
	int rc = read_small_file(in->args->schema_file, 1 << 20, &text, &len);

	if (rc)
		return fail("%s: %s", in->args->schema_file, strerror(-rc));
	rc = schema_from_json(text, len, &in->schema, &err);
	free(text);
	if (rc)
		return fail("%s: %s", in->args->schema_file, err.msg);
	in->declared = true;
	return 0;
}

/* Agreements that would show this dataset, with their new size indexes
 * and view results, and the size key that seals them. */
struct affected {
	size_t n;
	struct affected_agreement {
		struct agreement_record rec;
		struct size_index si;
		struct view_results views;
		uint8_t size_key[KEY_LEN];
	} * items;
};

/* Free a; its view results are removed unless recorded. */
static void affected_release(struct affected *a, const char *home,
			     bool recorded)
{
	for (size_t i = 0; i < a->n; i++) {
		agreement_record_release(&a->items[i].rec);
		size_index_release(&a->items[i].si);
		OPENSSL_cleanse(a->items[i].size_key, KEY_LEN);
		if (recorded)
			view_results_release(&a->items[i].views);
		else
			view_results_discard(home, &a->items[i].views);
	}
	free(a->items);
}

static int check_one_agreement(struct ctl *ctl, struct agreement_record *rec,
			       const struct schema *schema,
			       const struct dataset_version *v,
			       struct affected *out)
{
	struct schema_cache sc = {
	    .cat = ctl->cat, .override_id = v->dataset, .override = schema};
	const struct agreement_dataset *ds;
	struct agreement agr;
	struct size_index si = {0};
	struct view_results views = {0};
	uint8_t key[KEY_LEN], *size_key = out->items[out->n].size_key;
	struct perr err;
	int rc;

	if (agreement_from_record(rec, &agr))
		return fail("agreement '%s': stored revision unreadable",
			    rec->id);
	ds = agreement_find_dataset(&agr, v->dataset);
	if (!ds) {
		agreement_release(&agr);
		return 0;
	}
	rc = agreement_check(&agr, schema_cache_lookup, &sc, &err);
	schema_cache_release(&sc);
	if (!rc && (pseudonym_key_unwrap(&ctl->mk, rec, key) ||
		    size_key_derive(key, size_key)))
		rc = -EIO;
	if (!rc && ds->records)
		rc = compute_size_index(ctl, ds, v, key, &si, &err);
	if (!rc)
		rc = compute_views(ctl, rec->id, ds, v, key, &views, &err);
	memset(key, 0, sizeof(key));
	agreement_release(&agr);
	if (rc) {
		size_index_release(&si);
		OPENSSL_cleanse(size_key, KEY_LEN);
	}
	if (rc == -EINVAL)
		return fail("%s: the new version would break agreement '%s': "
			    "%s",
			    v->dataset, rec->id, err.msg);
	if (rc)
		return fail("%s: %s", v->dataset, store_error_text(rc));
	out->items[out->n].rec = *rec;
	out->items[out->n].views = views;
	out->items[out->n++].si = si;
	memset(rec, 0, sizeof(*rec));
	return 0;
}

static int find_affected(struct ctl *ctl, const struct schema *schema,
			 const struct dataset_version *v, struct affected *out)
{
	struct agreement_record *all;
	size_t n;
	int rc = catalog_agreement_list(ctl->cat, &all, &n);

	if (rc)
		return fail("catalog: %s", strerror(-rc));
	out->items = calloc(n + 1, sizeof(*out->items));
	if (!out->items) {
		agreement_records_free(all, n);
		return fail("out of memory");
	}
	for (size_t i = 0; i < n && !rc; i++)
		if (strcmp(all[i].state, "revoked"))
			rc = check_one_agreement(ctl, &all[i], schema, v, out);
	agreement_records_free(all, n);
	return rc;
}

/* The size index and view results of one agreement for version v. */
static int publish_files(struct ctl *ctl, const struct dataset_version *v,
			 struct affected_agreement *a,
			 struct catalog_files *freed)
{
	const struct size_index_place at = {
	    .agreement = a->rec.id,
	    .revision = a->rec.revision,
	    .dataset = v->dataset,
	    .version = v->version,
	};
	int rc =
	    record_version_files(ctl->cat, a->size_key, &at,
				 a->si.block_bytes ? &a->si : NULL, &a->views);

	if (!rc)
		rc = catalog_size_index_prune(ctl->cat, a->rec.id,
					      a->rec.revision);
	if (!rc)
		rc = catalog_view_result_prune(ctl->cat, a->rec.id,
					       a->rec.revision, freed);
	return rc;
}

static int publish(struct ctl *ctl, struct dataset_version *v,
		   struct affected *aff)
{
	struct catalog_files freed = {0};
	int rc = catalog_begin(ctl->cat);

	if (!rc)
		rc = catalog_dataset_add_version(ctl->cat, v);
	for (size_t i = 0; i < aff->n && !rc; i++)
		rc = publish_files(ctl, v, &aff->items[i], &freed);
	if (!rc)
		rc = catalog_commit(ctl->cat);
	if (rc) {
		catalog_rollback(ctl->cat);
		catalog_files_release(&freed);
		return fail("catalog: %s", catalog_errmsg(ctl->cat));
	}
	/* The results over the previous version can no longer be opened. */
	view_files_remove(ctl->home, &freed);
	catalog_files_release(&freed);
	return 0;
}

struct paths {
	char name[64];
	char tmp[PATH_MAX];
	char final[PATH_MAX];
	char rel[PATH_MAX];
};

static int make_paths(struct ctl *ctl, struct paths *p)
{
	uint8_t rnd[16];

	if (random_bytes(rnd, sizeof(rnd)))
		return -EIO;
	hex(rnd, sizeof(rnd), p->name);
	strcat(p->name, ".gvs");
	snprintf(p->tmp, sizeof(p->tmp), "%s/%s/%s", ctl->home, HOME_TMP_DIR,
		 p->name);
	snprintf(p->rel, sizeof(p->rel), "%s/%s", HOME_STORE_DIR, p->name);
	snprintf(p->final, sizeof(p->final), "%s/%s", ctl->home, p->rel);
	return 0;
}

static int write_store(struct ctl *ctl, struct ingest *in, int fd,
		       const struct paths *p, struct dataset_version *v)
{
	uint8_t key[KEY_LEN];
	char label[128];
	int rc;

	data_key_label(in->args->id, label, sizeof(label));
	rc = data_key_new(&ctl->mk, label, key, v->wrapped_key);
	if (!rc)
		rc = store_writer_open(&in->writer, p->tmp, key,
				       (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
	memset(key, 0, sizeof(key));
	if (rc)
		return fail("%s: %s", p->tmp, strerror(-rc));
	rc = read_source(in, fd, v->source_sha256);
	if (rc) {
		store_writer_abort(in->writer);
		if (rc == -EINVAL)
			return fail("%s: %s", in->args->file, in->err.msg);
		return fail("%s: %s", in->args->file,
			    rc == -ENOMEM ? "out of memory" : strerror(-rc));
	}
	rc = store_writer_finish(in->writer, &v->store);
	if (rc)
		return fail("%s: %s", p->tmp, strerror(-rc));
	return 0;
}

static void describe_version(const struct dataset_version *v,
			     const struct schema *s, int64_t took_ns)
{
	char a[32], b[32];
	double secs = (double)took_ns / 1e9;

	printf("added %s version %lld: %llu rows, %zu columns, %s read, %s "
	       "stored, %.1f MB/s\n",
	       v->dataset, (long long)v->version,
	       (unsigned long long)v->store.nrows, s->ncols,
	       human_bytes(v->source_bytes, a, sizeof(a)),
	       human_bytes(v->store.file_bytes, b, sizeof(b)),
	       secs > 0 ? (double)v->source_bytes / 1e6 / secs : 0.0);
}

static void describe_views(const struct affected *aff)
{
	for (size_t i = 0; i < aff->n; i++) {
		if (!aff->items[i].views.n)
			continue;
		printf("  agreement %s:\n", aff->items[i].rec.id);
		print_views(&aff->items[i].views);
	}
}

static int record_ingest(struct ctl *ctl, const struct dataset_version *v)
{
	char reason[256];

	snprintf(reason, sizeof(reason),
		 "dataset %s version %lld: %llu rows from %s (sha256 %s)",
		 v->dataset, (long long)v->version,
		 (unsigned long long)v->store.nrows, v->source_name,
		 v->source_sha256);
	return record_admin_action(ctl, "dataset.add", NULL, AUDIT_NULL,
				   reason);
}

static int ingest_locked(struct ctl *ctl, struct ingest *in, int fd)
{
	struct dataset_version v = {0}, prev = {0};
	struct schema prev_schema = {0};
	struct affected aff = {0};
	bool published = false;
	struct paths p;
	struct perr err;
	int rc;
	char sha[65] = "";

	v.source_sha256 = sha;
	if (make_paths(ctl, &p))
		return fail("cannot make a random name");
	rc = write_store(ctl, in, fd, &p, &v);
	if (rc)
		return rc;
	if (!catalog_dataset_latest(ctl->cat, in->args->id, &prev) &&
	    schema_from_json(prev.schema_json, strlen(prev.schema_json),
			     &prev_schema, &err) == 0)
		settle_schema(in, &prev_schema);
	else
		settle_schema(in, NULL);
	schema_release(&prev_schema);
	dataset_version_release(&prev);
	v.dataset = (char *)in->args->id;
	v.title = (char *)in->args->title;
	v.provider = (char *)in->args->provider;
	v.ingested_ns = clock_now_ns();
	v.ingested_by = ctl->admin;
	v.source_name = (char *)in->args->file;
	v.source_bytes = in->bytes_read;
	v.schema_json = schema_to_json(&in->schema);
	v.store_file = p.rel;
	if (!v.schema_json) {
		unlink(p.tmp);
		return fail("out of memory");
	}
	if (rename(p.tmp, p.final) || fsync_dir(ctl->home, HOME_STORE_DIR)) {
		rc = fail("%s: %s", p.final, strerror(errno));
		unlink(p.tmp);
		goto out_free;
	}
	rc = find_affected(ctl, &in->schema, &v, &aff);
	if (!rc)
		rc = publish(ctl, &v, &aff);
	published = !rc;
	if (rc) {
		unlink(p.final);
	} else {
		describe_version(&v, &in->schema,
				 clock_now_ns() - in->start_ns);
		describe_views(&aff);
		rc = record_ingest(ctl, &v);
	}
	affected_release(&aff, ctl->home, published);
out_free:
	free(v.schema_json);
	return rc;
}

int ingest_dataset(struct ctl *ctl, const struct ingest_args *args)
{
	struct ingest in = {.args = args};
	int fd, rc;

	if (check_id("dataset", args->id))
		return EXIT_REFUSED;
	if (args->schema_file) {
		rc = load_declared_schema(&in);
		if (rc)
			return rc;
	}
	fd = open(args->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		schema_release(&in.schema);
		return fail("%s: %s", args->file, strerror(errno));
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	in.tty = isatty(STDERR_FILENO);
	in.start_ns = in.last_ns = clock_now_ns();
	rc = ctl_open(ctl, CTL_CHANGE);
	if (!rc)
		rc = ingest_locked(ctl, &in, fd);
	ctl_close(ctl);
	close(fd);
	schema_release(&in.schema);
	free(in.guess);
	buf_release(&in.block);
	return rc;
}
