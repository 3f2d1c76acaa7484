/*
 * cmd_dataset: `govfsctl dataset add|list|show|grade|drop`.  Ingest itself
 * is in ingest.c; this file parses the verbs, prints the catalog, regrades
 * columns and drops datasets.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agreement.h"
#include "audit.h"
#include "clock.h"
#include "fileio.h"
#include "govfsctl.h"
#include "home.h"
#include "jsonpath.h"
#include "schema.h"

enum { OPT_FILE = 256, OPT_SCHEMA, OPT_TITLE, OPT_PROVIDER };

static int add_option(void *ctx, int opt, const char *arg)
{
	struct ingest_args *a = ctx;

	switch (opt) {
	case OPT_FILE:
		a->file = arg;
		return 0;
	case OPT_SCHEMA:
		a->schema_file = arg;
		return 0;
	case OPT_TITLE:
		a->title = arg;
		return 0;
	case OPT_PROVIDER:
		a->provider = arg;
		return 0;
	}
	return -1;
}

static int dataset_add(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"file", required_argument, NULL, OPT_FILE},
	    {"schema", required_argument, NULL, OPT_SCHEMA},
	    {"title", required_argument, NULL, OPT_TITLE},
	    {"provider", required_argument, NULL, OPT_PROVIDER},
	    {NULL, 0, NULL, 0},
	};
	struct ingest_args args = {0};
	struct ctl ctl = {0};
	char *pos[1];
	int npos, rc;

	rc =
	    ctl_parse(&ctl, argc, argv, opts, add_option, &args, pos, 1, &npos);
	if (rc)
		return rc;
	if (npos != 1 || !args.file)
		return usage_error("usage: dataset add ID --file F.csv "
				   "[--schema S.json] [--title T] "
				   "[--provider P]");
	args.id = pos[0];
	return ingest_dataset(&ctl, &args);
}

static json_t *columns_json(const struct schema *s)
{
	json_t *cols = json_array();

	for (size_t i = 0; i < s->ncols; i++)
		json_array_append_new(
		    cols, json_pack("{s:s, s:s, s:i}", "name", s->cols[i].name,
				    "type", col_type_name(s->cols[i].type),
				    "level", s->cols[i].level));
	return cols;
}

static json_t *version_json(const struct dataset_version *v)
{
	json_t *o = json_object();

	json_object_set_new(o, "version", json_integer(v->version));
	json_object_set_new(o, "ingested_at", json_time(v->ingested_ns));
	json_object_set_new(o, "ingested_by", json_text(v->ingested_by));
	json_object_set_new(o, "rows",
			    json_integer((json_int_t)v->store.nrows));
	json_object_set_new(o, "source_name", json_text(v->source_name));
	json_object_set_new(o, "source_bytes",
			    json_integer((json_int_t)v->source_bytes));
	json_object_set_new(o, "source_sha256", json_string(v->source_sha256));
	json_object_set_new(o, "stored_bytes",
			    json_integer((json_int_t)v->store.file_bytes));
	return o;
}

static json_t *dataset_json(const struct dataset_version *v,
			    const struct schema *s)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_string(v->dataset));
	json_object_set_new(o, "title", json_text(v->title));
	json_object_set_new(o, "provider", json_text(v->provider));
	json_object_update_new(o, version_json(v));
	json_object_set_new(o, "columns", columns_json(s));
	return o;
}

static int parse_stored_schema(const struct dataset_version *v,
			       struct schema *s)
{
	struct perr err;

	if (schema_from_json(v->schema_json, strlen(v->schema_json), s, &err))
		return fail("%s: stored schema unreadable: %s", v->dataset,
			    err.msg);
	return 0;
}

static int dataset_list(struct ctl *ctl)
{
	struct dataset_version *v;
	json_t *arr = json_array();
	size_t n;
	char a[32], b[32], t[40];
	int rc = catalog_dataset_list(ctl->cat, &v, &n);

	if (rc) {
		json_decref(arr);
		return fail("catalog: %s", strerror(-rc));
	}
	if (!ctl->json)
		printf("%-24s %7s %12s %10s %10s  %-20s  %s\n", "ID", "VERSION",
		       "ROWS", "SOURCE", "STORED", "INGESTED", "TITLE");
	for (size_t i = 0; i < n && !rc; i++) {
		struct schema s;

		rc = parse_stored_schema(&v[i], &s);
		if (rc)
			break;
		if (ctl->json)
			json_array_append_new(arr, dataset_json(&v[i], &s));
		else
			printf("%-24s %7lld %12llu %10s %10s  %-20s  %s\n",
			       v[i].dataset, (long long)v[i].version,
			       (unsigned long long)v[i].store.nrows,
			       human_bytes(v[i].source_bytes, a, sizeof(a)),
			       human_bytes(v[i].store.file_bytes, b, sizeof(b)),
			       time_format_utc(v[i].ingested_ns, t, sizeof(t)),
			       v[i].title ? shown(v[i].title) : "");
		schema_release(&s);
	}
	dataset_versions_free(v, n);
	if (ctl->json && !rc)
		return print_json(arr);
	json_decref(arr);
	return rc;
}

static void print_dataset_text(const struct dataset_version *all, size_t n,
			       const struct schema *s)
{
	const struct dataset_version *v = &all[n - 1];
	char a[32], b[32], t[40];

	printf("dataset   %s\ntitle     %s\nprovider  %s\nversion   %lld "
	       "(of %zu)\nrows      %llu\nsource    %s, %s, sha256 %s\n"
	       "stored    %s\ningested  %s by %s\ncolumns\n",
	       v->dataset, v->title ? shown(v->title) : "-",
	       v->provider ? shown(v->provider) : "-", (long long)v->version, n,
	       (unsigned long long)v->store.nrows,
	       v->source_name ? shown(v->source_name) : "-",
	       human_bytes(v->source_bytes, a, sizeof(a)), v->source_sha256,
	       human_bytes(v->store.file_bytes, b, sizeof(b)),
	       time_format_utc(v->ingested_ns, t, sizeof(t)),
	       shown(v->ingested_by));
	for (size_t i = 0; i < s->ncols; i++)
		printf("  %-32s %-9s level %d\n", shown(s->cols[i].name),
		       col_type_name(s->cols[i].type), s->cols[i].level);
}

static int dataset_show(struct ctl *ctl, const char *id)
{
	struct dataset_version *v;
	struct schema s;
	size_t n;
	int rc = catalog_dataset_versions(ctl->cat, id, &v, &n);

	if (rc)
		return fail("catalog: %s", strerror(-rc));
	if (n == 0) {
		free(v);
		return fail("no such dataset '%s'", id);
	}
	rc = parse_stored_schema(&v[n - 1], &s);
	if (!rc && ctl->json) {
		json_t *o = dataset_json(&v[n - 1], &s);
		json_t *versions = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(versions, version_json(&v[i]));
		json_object_set_new(o, "versions", versions);
		rc = print_json(o);
	} else if (!rc) {
		print_dataset_text(v, n, &s);
	}
	schema_release(&s);
	dataset_versions_free(v, n);
	return rc;
}

/* Every live agreement must still pass its checks with the new grades. */
static int check_agreements_with(struct ctl *ctl, const char *id,
				 const struct schema *graded)
{
	struct agreement_record *all;
	size_t n;
	int rc = catalog_agreement_list(ctl->cat, &all, &n);

	if (rc)
		return fail("catalog: %s", strerror(-rc));
	for (size_t i = 0; i < n && !rc; i++) {
		struct schema_cache sc = {
		    .cat = ctl->cat, .override_id = id, .override = graded};
		struct agreement agr;
		struct perr err;

		if (!strcmp(all[i].state, "revoked"))
			continue;
		if (agreement_from_record(&all[i], &agr)) {
			rc = fail("agreement '%s': stored revision unreadable",
				  all[i].id);
			break;
		}
		if (agreement_find_dataset(&agr, id) &&
		    agreement_check(&agr, schema_cache_lookup, &sc, &err))
			rc = fail("%s: refused: agreement '%s' would break: %s",
				  id, all[i].id, err.msg);
		agreement_release(&agr);
		schema_cache_release(&sc);
	}
	agreement_records_free(all, n);
	return rc;
}

/* Grade column of every version of id that has it; *changed counts those
 * that had another level. */
static int regrade_versions(struct ctl *ctl, const char *id, const char *column,
			    int level, size_t *changed)
{
	struct dataset_version *v;
	size_t n;
	int rc = catalog_dataset_versions(ctl->cat, id, &v, &n);

	if (rc)
		return rc;
	for (size_t i = 0; i < n && !rc; i++) {
		struct schema s;
		long col;
		char *text;

		rc = parse_stored_schema(&v[i], &s);
		if (rc)
			break;
		col = schema_find(&s, column);
		if (col >= 0 && s.cols[col].level != level) {
			s.cols[col].level = level;
			(*changed)++;
			text = schema_to_json(&s);
			rc = text ? catalog_dataset_set_schema(
					ctl->cat, id, v[i].version, text)
				  : -ENOMEM;
			free(text);
		}
		schema_release(&s);
	}
	dataset_versions_free(v, n);
	return rc;
}

static int dataset_grade(struct ctl *ctl, char **pos)
{
	char reason[512], q[QUOTE_LEN];
	struct dataset_version latest;
	struct schema s;
	long level, col;
	size_t changed = 0;
	int rc;

	if (!parse_long(pos[2], LEVEL_MIN, LEVEL_MAX, &level))
		return usage_error("level '%s': want 1 to 4", pos[2]);
	rc = catalog_dataset_latest(ctl->cat, pos[0], &latest);
	if (rc)
		return fail("no such dataset '%s'", pos[0]);
	rc = parse_stored_schema(&latest, &s);
	dataset_version_release(&latest);
	if (rc)
		return rc;
	col = schema_find(&s, pos[1]);
	if (col < 0) {
		schema_release(&s);
		return fail("%s: no column '%s'", pos[0],
			    text_quote(q, pos[1]));
	}
	s.cols[col].level = (int)level;
	rc = check_agreements_with(ctl, pos[0], &s);
	schema_release(&s);
	if (rc)
		return rc;
	rc = catalog_begin(ctl->cat);
	if (!rc)
		rc =
		    regrade_versions(ctl, pos[0], pos[1], (int)level, &changed);
	if (!rc)
		rc = catalog_commit(ctl->cat);
	if (rc) {
		catalog_rollback(ctl->cat);
		return fail("catalog: %s", catalog_errmsg(ctl->cat));
	}
	if (!changed) {
		printf("%s: column '%s' is already graded %ld: nothing "
		       "changed\n",
		       pos[0], shown(pos[1]), level);
		return 0;
	}
	printf("%s: column '%s' graded %ld\n", pos[0], shown(pos[1]), level);
	snprintf(reason, sizeof(reason), "dataset %s column %s graded %ld",
		 pos[0], text_quote(q, pos[1]), level);
	return record_admin_action(ctl, "dataset.grade", NULL, AUDIT_NULL,
				   reason);
}

/*
 * The agreements, not revoked, whose current revision names dataset id:
 * their ids, comma-separated, into names (cut short if long); *n of them.
 */
static int agreements_naming(struct ctl *ctl, const char *id, char *names,
			     size_t len, size_t *n)
{
	struct agreement_record *all;
	size_t count;
	int rc = catalog_agreement_list(ctl->cat, &all, &count);

	if (rc)
		return fail("catalog: %s", strerror(-rc));
	names[0] = '\0';
	*n = 0;
	for (size_t i = 0; i < count && !rc; i++) {
		struct agreement agr;
		size_t used = strlen(names);

		if (!strcmp(all[i].state, "revoked"))
			continue;
		if (agreement_from_record(&all[i], &agr)) {
			rc = fail("agreement '%s': stored revision unreadable",
				  all[i].id);
			break;
		}
		if (agreement_find_dataset(&agr, id)) {
			snprintf(names + used, len - used, "%s'%s'",
				 *n ? ", " : "", all[i].id);
			(*n)++;
		}
		agreement_release(&agr);
	}
	agreement_records_free(all, count);
	return rc;
}

/* Delete the dataset from the catalog in one transaction, if nothing
 * names it; d says what went. */
static int drop_from_catalog(struct ctl *ctl, const char *id,
			     struct dataset_drop *d)
{
	char names[512];
	size_t n = 0;
	int rc = catalog_begin(ctl->cat);

	if (rc)
		return fail("catalog: %s", catalog_errmsg(ctl->cat));
	rc = agreements_naming(ctl, id, names, sizeof(names), &n);
	if (!rc && n)
		rc = fail("dataset '%s': refused: named by agreement%s %s "
			  "(revoke %s or remove the dataset from %s first)",
			  id, n == 1 ? "" : "s", names, n == 1 ? "it" : "them",
			  n == 1 ? "it" : "them");
	if (!rc) {
		rc = catalog_dataset_drop(ctl->cat, id, d);
		if (rc == -ENOENT)
			rc = fail("no such dataset '%s'", id);
		else if (rc)
			rc = fail("catalog: %s", catalog_errmsg(ctl->cat));
	}
	if (!rc && catalog_commit(ctl->cat)) {
		dataset_drop_release(d);
		rc = fail("catalog: %s", catalog_errmsg(ctl->cat));
	}
	if (rc)
		catalog_rollback(ctl->cat);
	return rc;
}

/* Unlink the dropped store files; how many could not be. */
static size_t remove_store_files(struct ctl *ctl, const struct dataset_drop *d)
{
	char path[PATH_MAX];
	size_t failed = 0;
	int rc;

	for (size_t i = 0; i < d->nfiles; i++) {
		snprintf(path, sizeof(path), "%s/%s", ctl->home, d->files[i]);
		if (unlink(path) && errno != ENOENT) {
			warning("%s: %s", path, strerror(errno));
			failed++;
		}
	}
	/* The unlinks are made; only their durability is in doubt. */
	rc = fsync_dir(ctl->home, HOME_STORE_DIR);
	if (rc)
		warning("%s/%s: cannot sync: %s", ctl->home, HOME_STORE_DIR,
			strerror(-rc));
	return failed;
}

static int dataset_drop(struct ctl *ctl, const char *id)
{
	struct dataset_drop d;
	char reason[256], bytes[32];
	size_t left;
	int rc = drop_from_catalog(ctl, id, &d);

	if (rc)
		return rc;
	/* The keys are gone from the catalog; now from its log too. */
	if (catalog_checkpoint(ctl->cat))
		warning("%s/catalog.db-wal: busy; the wrapped keys "
			"stay in it until its next checkpoint",
			ctl->home);
	left = remove_store_files(ctl, &d);
	human_bytes(d.stored_bytes, bytes, sizeof(bytes));
	printf("dataset %s dropped: %zu version%s, %s deleted (%zu data "
	       "key%s crypto-shredded), %zu size ind%s\n",
	       id, d.versions, d.versions == 1 ? "" : "s", bytes, d.versions,
	       d.versions == 1 ? "" : "s", d.size_indexes,
	       d.size_indexes == 1 ? "ex" : "exes");
	if (left)
		printf("%zu store file%s left behind: unreadable without "
		       "%s key; the next change removes %s\n",
		       left, left == 1 ? "" : "s", left == 1 ? "its" : "their",
		       left == 1 ? "it" : "them");
	snprintf(reason, sizeof(reason),
		 "dataset %s: %zu version%s, %llu bytes deleted", id,
		 d.versions, d.versions == 1 ? "" : "s",
		 (unsigned long long)d.stored_bytes);
	dataset_drop_release(&d);
	return record_admin_action(ctl, "dataset.drop", NULL, AUDIT_NULL,
				   reason);
}

int cmd_dataset(int argc, char **argv)
{
	struct ctl ctl = {0};
	const char *verb = argc > 1 ? argv[1] : "";
	bool change = !strcmp(verb, "grade") || !strcmp(verb, "drop");
	char *pos[3];
	int npos, rc;

	if (!strcmp(verb, "add"))
		return dataset_add(argc - 1, argv + 1);
	if (strcmp(verb, "list") && strcmp(verb, "show") && !change)
		return usage_error(
		    "usage: dataset add|list|show|grade|drop ...");
	rc = ctl_parse(&ctl, argc - 1, argv + 1, NULL, NULL, NULL, pos, 3,
		       &npos);
	if (rc)
		return rc;
	if (!strcmp(verb, "list") && npos != 0)
		return usage_error("usage: dataset list [--json]");
	if (!strcmp(verb, "show") && npos != 1)
		return usage_error("usage: dataset show ID [--json]");
	if (!strcmp(verb, "grade") && npos != 3)
		return usage_error("usage: dataset grade ID COLUMN LEVEL");
	if (!strcmp(verb, "drop") && npos != 1)
		return usage_error("usage: dataset drop ID");
	if (npos && check_id("dataset", pos[0]))
		return EXIT_REFUSED;
	rc = ctl_open(&ctl, change ? CTL_CHANGE : CTL_READ);
	if (rc)
		return rc;
	if (!strcmp(verb, "list"))
		rc = dataset_list(&ctl);
	else if (!strcmp(verb, "show"))
		rc = dataset_show(&ctl, pos[0]);
	else if (!strcmp(verb, "grade"))
		rc = dataset_grade(&ctl, pos);
	else
		rc = dataset_drop(&ctl, pos[0]);
	ctl_close(&ctl);
	return rc;
}
