/*
 * cmd_agreement: `govfsctl agreement apply|list|show`.  apply validates a
 * policy file on its own and against the catalog, computes the exact size
 * of every data.csv it will show and the result of every view, and
 * records a new revision in one transaction, the size indexes sealed; an
 * identical file changes nothing, unless a size index of the current
 * revision is missing or does not open (then it is applied all the same).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement.h"
#include "audit.h"
#include "clock.h"
#include "dataview.h"
#include "govfsctl.h"
#include "mount_state.h"
#include "schema.h"
#include "viewstore.h"

#define POLICY_FILE_MAX (4u << 20)

const struct schema *schema_cache_lookup(void *ctx, const char *dataset)
{
	struct schema_cache *sc = ctx;
	struct schema_cache_entry *e, *grown;
	struct dataset_version v;
	struct perr err;

	if (sc->override_id && !strcmp(dataset, sc->override_id))
		return sc->override;
	for (size_t i = 0; i < sc->n; i++)
		if (!strcmp(sc->entries[i].id, dataset))
			return sc->entries[i].found ? &sc->entries[i].schema
						    : NULL;
	grown = realloc(sc->entries, (sc->n + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	sc->entries = grown;
	e = &sc->entries[sc->n];
	memset(e, 0, sizeof(*e));
	e->id = strdup(dataset);
	if (!e->id)
		return NULL;
	sc->n++;
	if (catalog_dataset_latest(sc->cat, dataset, &v))
		return NULL;
	e->found = !schema_from_json(v.schema_json, strlen(v.schema_json),
				     &e->schema, &err);
	dataset_version_release(&v);
	return e->found ? &e->schema : NULL;
}

void schema_cache_release(struct schema_cache *sc)
{
	for (size_t i = 0; i < sc->n; i++) {
		free(sc->entries[i].id);
		schema_release(&sc->entries[i].schema);
	}
	free(sc->entries);
	sc->entries = NULL;
	sc->n = 0;
}

int agreement_from_record(const struct agreement_record *rec,
			  struct agreement *out)
{
	struct perr err;

	return agreement_parse(rec->policy_json, strlen(rec->policy_json), out,
			       &err);
}

int compute_size_index(struct ctl *ctl, const struct agreement_dataset *ds,
		       const struct dataset_version *v, const uint8_t *key,
		       struct size_index *out, struct perr *err)
{
	struct dataview dv;
	int rc = dataview_open(&dv, ctl->home, &ctl->mk, v, ds, key, err);

	if (rc)
		return rc;
	rc = dataview_compute_sizes(&dv);
	if (!rc) {
		*out = dv.sizes;
		memset(&dv.sizes, 0, sizeof(dv.sizes));
	}
	dataview_close(&dv);
	return rc;
}

/* The policy file's text, canonical: keys sorted, no spaces. */
static char *canonical_json(const char *text, size_t len)
{
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	char *out;

	if (!root)
		return NULL;
	out = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(root);
	return out;
}

struct planned {
	const struct agreement_dataset *ds;
	struct dataset_version v;
	struct size_index si; /* records: true only */
	struct view_results views;
	size_t index; /* in the agreement */
};

/* Free the plan; its view results are removed unless recorded. */
static void planned_free(struct planned *p, size_t n, const char *home,
			 bool recorded)
{
	for (size_t i = 0; i < n; i++) {
		dataset_version_release(&p[i].v);
		size_index_release(&p[i].si);
		if (recorded)
			view_results_release(&p[i].views);
		else
			view_results_discard(home, &p[i].views);
	}
	free(p);
}

/* The size index and the views of one dataset entry, into p. */
static int plan_dataset(struct ctl *ctl, const char *file,
			const struct agreement *agr, size_t i,
			const uint8_t *key, struct planned *p)
{
	const struct agreement_dataset *ds = &agr->datasets[i];
	struct perr err;
	int rc;

	p->ds = ds;
	p->index = i;
	rc = catalog_dataset_latest(ctl->cat, ds->dataset, &p->v);
	if (rc)
		return fail("%s: $.datasets[%zu].dataset: no such dataset '%s'",
			    file, i, ds->dataset);
	if (ds->records)
		rc = compute_size_index(ctl, ds, &p->v, key, &p->si, &err);
	if (!rc)
		rc = compute_views(ctl, agr->id, ds, &p->v, key, &p->views,
				   &err);
	if (rc == -EINVAL)
		return fail("%s: $.datasets[%zu]%s", file, i,
			    err.msg + (err.msg[0] == '$'));
	if (rc)
		return fail("%s: %s", ds->dataset, store_error_text(rc));
	return 0;
}

/* Size indexes of every data.csv the agreement shows, and its views. */
static int plan_files(struct ctl *ctl, const char *file,
		      const struct agreement *agr, const uint8_t *key,
		      struct planned **out, size_t *n)
{
	struct planned *p = calloc(agr->ndatasets + 1, sizeof(*p));
	size_t count = 0;
	int rc = 0;

	if (!p)
		return fail("out of memory");
	for (size_t i = 0; i < agr->ndatasets && !rc; i++) {
		if (!agr->datasets[i].records && !agr->datasets[i].nviews)
			continue;
		rc = plan_dataset(ctl, file, agr, i, key, &p[count++]);
	}
	if (rc) {
		planned_free(p, count, ctl->home, false);
		return rc;
	}
	*out = p;
	*n = count;
	return 0;
}

static void print_rules_diff(const struct agreement_dataset *now,
			     const struct agreement_dataset *before)
{
	char a[64], b[64];

	for (size_t c = 0; c < now->ncolumns; c++) {
		const struct column_rule *cr = &now->columns[c];
		const struct rule *old =
		    before ? agreement_dataset_rule(before, cr->column) : NULL;
		const char *was = old ? rule_text(old, b, sizeof(b)) : NULL;
		const char *is = rule_text(&cr->rule, a, sizeof(a));

		if (!was || strcmp(was, is))
			printf("    column %s: %s%s%s\n", shown(cr->column),
			       was ? was : "", was ? " -> " : "", is);
	}
	for (size_t c = 0; before && c < before->ncolumns; c++) {
		const char *col = before->columns[c].column;
		const struct rule *r = agreement_dataset_rule(now, col);

		if (r->kind == RULE_DROP &&
		    before->columns[c].rule.kind != RULE_DROP)
			printf(
			    "    column %s: %s -> drop\n", shown(col),
			    rule_text(&before->columns[c].rule, a, sizeof(a)));
	}
}

/* "  what: was -> is" (indent and what given) if they differ. */
static void print_change(const char *what, const char *was, const char *is)
{
	if (strcmp(was, is))
		printf("%s: %s -> %s\n", what, shown(was), shown(is));
}

/* The agreement's uids as text, "0 1000 1001", cut with "..." to fit. */
static const char *uids_text(const struct agreement *agr, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < agr->nuids; i++) {
		int n = snprintf(buf + o, len - o, "%s%u", i ? " " : "",
				 (unsigned)agr->uids[i]);

		if (n < 0 || (size_t)n >= len - o) {
			snprintf(buf + (o < len - 4 ? o : len - 4), 4, "...");
			break;
		}
		o += (size_t)n;
	}
	return buf;
}

static int cmp_uid(const void *a, const void *b)
{
	uid_t x = *(const uid_t *)a, y = *(const uid_t *)b;

	return (x > y) - (x < y);
}

/* Whether a and b list the same uids, in whatever order. */
static bool uids_same(const struct agreement *a, const struct agreement *b)
{
	uid_t *x, *y;
	bool same;

	if (a->nuids != b->nuids)
		return false;
	x = malloc(a->nuids * sizeof(*x) + 1);
	y = malloc(b->nuids * sizeof(*y) + 1);
	same = x && y;
	if (same) {
		memcpy(x, a->uids, a->nuids * sizeof(*x));
		memcpy(y, b->uids, b->nuids * sizeof(*y));
		qsort(x, a->nuids, sizeof(*x), cmp_uid);
		qsort(y, b->nuids, sizeof(*y), cmp_uid);
		same = !memcmp(x, y, a->nuids * sizeof(*x));
	}
	free(x);
	free(y);
	return same;
}

/* The agreement's daily quota as text, or "none". */
static const char *quota_text(const struct agreement *agr, char *buf,
			      size_t len)
{
	if (!agr->has_quota)
		return "none";
	snprintf(buf, len, "%llu bytes per day",
		 (unsigned long long)agr->quota_bytes_per_day);
	return buf;
}

/* What the agreement's own fields change from old's. */
static void print_terms_diff(const struct agreement *agr,
			     const struct agreement *old)
{
	char a[512], b[512];

	print_change("  grantee", old->grantee, agr->grantee);
	print_change("  scenario", old->scenario, agr->scenario);
	if (!uids_same(agr, old))
		printf("  uids: %s -> %s\n", uids_text(old, b, sizeof(b)),
		       uids_text(agr, a, sizeof(a)));
	snprintf(a, sizeof(a), "%d", agr->max_level);
	snprintf(b, sizeof(b), "%d", old->max_level);
	print_change("  max_level", b, a);
	print_change("  valid_from",
		     time_format_offset(old->valid_from_ns,
					old->valid_from_offset, b, sizeof(b)),
		     time_format_offset(agr->valid_from_ns,
					agr->valid_from_offset, a, sizeof(a)));
	print_change("  valid_until",
		     time_format_offset(old->valid_until_ns,
					old->valid_until_offset, b, sizeof(b)),
		     time_format_offset(agr->valid_until_ns,
					agr->valid_until_offset, a, sizeof(a)));
	print_change("  quota", quota_text(old, b, sizeof(b)),
		     quota_text(agr, a, sizeof(a)));
}

/* The view of ds named name, or NULL. */
static const struct view *find_view(const struct agreement_dataset *ds,
				    const char *name)
{
	for (size_t i = 0; ds && i < ds->nviews; i++)
		if (!strcmp(ds->views[i].name, name))
			return &ds->views[i];
	return NULL;
}

/* What a dataset entry changes from before's, beside its column rules. */
static void print_entry_diff(const struct agreement_dataset *ds,
			     const struct agreement_dataset *before)
{
	print_change("    records", before->records ? "true" : "false",
		     ds->records ? "true" : "false");
	print_change("    rows", before->rows ? before->rows : "(all)",
		     ds->rows ? ds->rows : "(all)");
	for (size_t i = 0; i < ds->nviews; i++) {
		const struct view *was = find_view(before, ds->views[i].name);

		if (!was || !view_same(was, &ds->views[i]))
			printf("    views/%s.csv: %s\n", ds->views[i].name,
			       was ? "changed" : "added");
	}
	for (size_t i = 0; i < before->nviews; i++)
		if (!find_view(ds, before->views[i].name))
			printf("    views/%s.csv: removed\n",
			       before->views[i].name);
}

static void print_plan(const struct agreement *agr, const struct agreement *old,
		       const struct planned *p, size_t n, bool dry_run)
{
	printf("agreement %s: %s\n", agr->id,
	       old ? (dry_run ? "would make a new revision" : "new revision")
		   : (dry_run ? "would be created" : "created"));
	if (old)
		print_terms_diff(agr, old);
	for (size_t i = 0; i < agr->ndatasets; i++) {
		const struct agreement_dataset *ds = &agr->datasets[i];
		const struct agreement_dataset *before =
		    old ? agreement_find_dataset(old, ds->dataset) : NULL;

		printf("  dataset %s%s\n", ds->dataset,
		       old && !before ? " (added)" : "");
		if (before)
			print_entry_diff(ds, before);
		print_rules_diff(ds, before);
		for (size_t j = 0; j < n; j++) {
			if (p[j].ds != ds)
				continue;
			if (ds->records)
				printf("    data.csv: version %lld, %llu of "
				       "%llu rows, %llu bytes\n",
				       (long long)p[j].v.version,
				       (unsigned long long)p[j].si.rows,
				       (unsigned long long)p[j].v.store.nrows,
				       (unsigned long long)p[j].si.total_bytes);
			print_views(&p[j].views);
		}
	}
	for (size_t i = 0; old && i < old->ndatasets; i++)
		if (!agreement_find_dataset(agr, old->datasets[i].dataset))
			printf("  dataset %s (removed)\n",
			       old->datasets[i].dataset);
}

static int record_files(struct ctl *ctl, struct agreement_record *rec,
			const uint8_t size_key[KEY_LEN], struct planned *p,
			size_t n, struct catalog_files *freed)
{
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		const struct size_index_place at = {
		    .agreement = rec->id,
		    .revision = rec->revision,
		    .dataset = p[i].v.dataset,
		    .version = p[i].v.version,
		};

		rc = record_version_files(ctl->cat, size_key, &at,
					  p[i].ds->records ? &p[i].si : NULL,
					  &p[i].views);
	}
	if (!rc)
		rc = catalog_size_index_prune(ctl->cat, rec->id, rec->revision);
	if (!rc)
		rc = catalog_view_result_prune(ctl->cat, rec->id, rec->revision,
					       freed);
	return rc;
}

static int record_revision(struct ctl *ctl, struct agreement_record *rec,
			   const uint8_t size_key[KEY_LEN], struct planned *p,
			   size_t n)
{
	struct catalog_files freed = {0};
	int rc = catalog_begin(ctl->cat);

	if (!rc)
		rc = catalog_agreement_add_revision(ctl->cat, rec);
	if (!rc)
		rc = record_files(ctl, rec, size_key, p, n, &freed);
	if (!rc)
		rc = catalog_commit(ctl->cat);
	if (rc) {
		catalog_rollback(ctl->cat);
		catalog_files_release(&freed);
		if (rc == -EPERM)
			return fail("agreement '%s' was revoked meanwhile; it "
				    "cannot take a new revision",
				    rec->id);
		return fail("catalog: %s", catalog_errmsg(ctl->cat));
	}
	/* The results of earlier revisions can no longer be opened. */
	view_files_remove(ctl->home, &freed);
	catalog_files_release(&freed);
	return 0;
}

struct apply_state {
	const char *file;
	bool dry_run;
	/* The pseudonym key: the agreement's own, or a new one for a new
	 * agreement (wrapped into wrapped_key); and the size key derived
	 * from it. */
	uint8_t key[KEY_LEN];
	uint8_t wrapped_key[WRAPPED_KEY_LEN];
	uint8_t size_key[KEY_LEN];
	struct agreement agr;
	char *canonical;
	struct agreement_record old;
	bool has_old;
	struct agreement old_agr;
};

static int apply_checked(struct ctl *ctl, struct apply_state *st)
{
	struct schema_cache sc = {.cat = ctl->cat};
	struct agreement_record rec = {0};
	struct planned *p = NULL;
	struct perr err;
	size_t n = 0;
	int rc;

	rc = agreement_check(&st->agr, schema_cache_lookup, &sc, &err);
	schema_cache_release(&sc);
	if (rc)
		return fail("%s: %s", st->file, err.msg);
	rc = plan_files(ctl, st->file, &st->agr, st->key, &p, &n);
	if (rc)
		return rc;
	if (st->dry_run) {
		print_plan(&st->agr, st->has_old ? &st->old_agr : NULL, p, n,
			   true);
		printf("(dry run: nothing changed)\n");
		planned_free(p, n, ctl->home, false);
		return 0;
	}
	rec.id = st->agr.id;
	rec.applied_by = ctl->admin;
	rec.policy_json = st->canonical;
	rec.has_pseudonym_key = true;
	memcpy(rec.pseudonym_key, st->wrapped_key, WRAPPED_KEY_LEN);
	rc = record_revision(ctl, &rec, st->size_key, p, n);
	if (!rc) {
		print_plan(&st->agr, st->has_old ? &st->old_agr : NULL, p, n,
			   false);
		printf("agreement %s: revision %lld applied\n", rec.id,
		       (long long)rec.revision);
	}
	planned_free(p, n, ctl->home, !rc);
	if (!rc)
		rc = record_admin_action(ctl, "agreement.apply", rec.id,
					 rec.revision, st->file);
	return rc;
}

/* A new agreement gets its own random key, wrapped by the master key. */
static int new_pseudonym_key(struct ctl *ctl, struct apply_state *st)
{
	char label[128];

	pseudonym_key_label(st->agr.id, label, sizeof(label));
	return data_key_new(&ctl->mk, label, st->key, st->wrapped_key);
}

/* Whether every file that entry ds of revision rec shows has a size
 * index that opens. */
static bool entry_sizes_open(struct catalog *cat,
			     const struct agreement_record *rec,
			     const struct agreement_dataset *ds,
			     const uint8_t size_key[KEY_LEN])
{
	struct size_index_place at = {
	    .agreement = rec->id,
	    .revision = rec->revision,
	    .dataset = ds->dataset,
	};
	struct dataset_version v;
	bool open;

	if (catalog_dataset_latest(cat, ds->dataset, &v))
		return false;
	at.version = v.version;
	dataset_version_release(&v);
	open = !ds->records || size_index_recorded(cat, size_key, &at);
	for (size_t i = 0; i < ds->nviews && open; i++) {
		at.view = ds->views[i].name;
		open = size_index_recorded(cat, size_key, &at);
	}
	return open;
}

/*
 * Whether every file the agreement's current revision shows has a size
 * index that opens.  If not (an older govfs kept them in clear, and they
 * were dropped; or one was altered), an identical file is applied all the
 * same, which computes them again.
 */
static bool revision_sizes_open(struct ctl *ctl, const struct apply_state *st)
{
	bool open = true;

	for (size_t i = 0; i < st->old_agr.ndatasets && open; i++)
		open = entry_sizes_open(ctl->cat, &st->old,
					&st->old_agr.datasets[i], st->size_key);
	return open;
}

static int apply_opened(struct ctl *ctl, struct apply_state *st)
{
	int rc = catalog_agreement_get(ctl->cat, st->agr.id, &st->old);

	if (rc && rc != -ENOENT)
		return fail("catalog: %s", strerror(-rc));
	st->has_old = !rc;
	if (st->has_old && !strcmp(st->old.state, "revoked"))
		return fail("%s: agreement '%s' is revoked; it cannot take a "
			    "new revision",
			    st->file, st->agr.id);
	if (st->has_old && agreement_from_record(&st->old, &st->old_agr))
		return fail("agreement '%s': stored revision unreadable",
			    st->agr.id);
	if (st->has_old && pseudonym_key_unwrap(&ctl->mk, &st->old, st->key))
		return fail("agreement '%s': pseudonym key does not unwrap "
			    "with %s",
			    st->agr.id, ctl->key_file);
	if (!st->has_old && new_pseudonym_key(ctl, st))
		return fail("cannot make a pseudonym key");
	if (size_key_derive(st->key, st->size_key))
		return fail("cannot derive the size key");
	if (st->has_old && !strcmp(st->old.policy_json, st->canonical)) {
		if (revision_sizes_open(ctl, st)) {
			printf("agreement %s: unchanged (revision %lld)\n",
			       st->agr.id, (long long)st->old.revision);
			return 0;
		}
		printf("agreement %s: unchanged, but size indexes of revision "
		       "%lld do not open (kept in clear by an older govfs, or "
		       "altered): computing them again\n",
		       st->agr.id, (long long)st->old.revision);
	}
	return apply_checked(ctl, st);
}

static bool has_views(const struct agreement *agr)
{
	for (size_t i = 0; i < agr->ndatasets; i++)
		if (agr->datasets[i].nviews)
			return true;
	return false;
}

enum { OPT_DRY_RUN = 256 };

static int apply_option(void *ctx, int opt, const char *arg)
{
	bool *dry_run = ctx;

	(void)arg;
	if (opt != OPT_DRY_RUN)
		return -1;
	*dry_run = true;
	return 0;
}

static int agreement_apply(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
	    {NULL, 0, NULL, 0},
	};
	struct apply_state st = {0};
	struct ctl ctl = {0};
	struct perr err;
	char *pos[1], *text;
	size_t len;
	int npos, rc;

	rc = ctl_parse(&ctl, argc, argv, opts, apply_option, &st.dry_run, pos,
		       1, &npos);
	if (rc)
		return rc;
	if (npos != 1)
		return usage_error("usage: agreement apply FILE.json "
				   "[--dry-run]");
	st.file = pos[0];
	rc = read_small_file(st.file, POLICY_FILE_MAX, &text, &len);
	if (rc)
		return fail("%s: %s", st.file,
			    rc == -EFBIG ? "larger than 4 MiB" : strerror(-rc));
	rc = agreement_parse(text, len, &st.agr, &err);
	if (rc) {
		free(text);
		return fail("%s: %s", st.file, err.msg);
	}
	st.canonical = canonical_json(text, len);
	free(text);
	/* Views are computed in a dry run too, with temporary files under the
	 * home: that takes the admin lock. */
	rc = st.canonical ? ctl_open(&ctl, st.dry_run && !has_views(&st.agr)
					       ? CTL_READ
					       : CTL_CHANGE)
			  : fail("out of memory");
	if (!rc)
		rc = apply_opened(&ctl, &st);
	ctl_close(&ctl);
	if (st.has_old) {
		agreement_record_release(&st.old);
		agreement_release(&st.old_agr);
	}
	agreement_release(&st.agr);
	free(st.canonical);
	memset(st.key, 0, sizeof(st.key));
	memset(st.size_key, 0, sizeof(st.size_key));
	return rc;
}

static json_t *datasets_json(const struct agreement *agr)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < agr->ndatasets; i++)
		json_array_append_new(arr,
				      json_string(agr->datasets[i].dataset));
	return arr;
}

static json_t *agreement_json(const struct agreement_record *rec,
			      const struct agreement *agr, bool with_policy)
{
	json_t *o = json_object();
	json_t *uids = json_array();
	int64_t now = clock_now_ns();
	struct state_story story = agreement_state_story(rec, agr, now);

	for (size_t i = 0; i < agr->nuids; i++)
		json_array_append_new(uids, json_integer(agr->uids[i]));
	json_object_set_new(o, "id", json_string(rec->id));
	json_object_set_new(
	    o, "state", json_string(agreement_state_at(rec->state, agr, now)));
	json_object_set_new(o, "state_since", json_time(story.since_ns));
	json_object_set_new(o, "state_by", json_text(story.by));
	json_object_set_new(o, "state_reason", json_text(story.reason));
	json_object_set_new(o, "revision", json_integer(rec->revision));
	json_object_set_new(o, "applied_at", json_time(rec->applied_ns));
	json_object_set_new(o, "applied_by", json_text(rec->applied_by));
	json_object_set_new(o, "grantee", json_string(agr->grantee));
	json_object_set_new(o, "scenario", json_string(agr->scenario));
	json_object_set_new(o, "uids", uids);
	json_object_set_new(o, "max_level", json_integer(agr->max_level));
	json_object_set_new(o, "valid_from", json_time(agr->valid_from_ns));
	json_object_set_new(o, "valid_until", json_time(agr->valid_until_ns));
	json_object_set_new(
	    o, "quota_bytes_per_day",
	    agr->has_quota ? json_integer((json_int_t)agr->quota_bytes_per_day)
			   : json_null());
	json_object_set_new(o, "datasets", datasets_json(agr));
	if (with_policy)
		json_object_set_new(o, "policy",
				    json_loads(rec->policy_json, 0, NULL));
	return o;
}

static void print_agreement_text(const struct agreement_record *rec,
				 const struct agreement *agr)
{
	char a[40], b[40], c[40], d[40];
	int64_t now = clock_now_ns();
	struct state_story story = agreement_state_story(rec, agr, now);

	printf(
	    "agreement  %s (revision %lld, applied %s by %s)\n"
	    "grantee    %s\nscenario   %s\nstate      %s since %s by %s%s%s\n"
	    "valid      %s to %s\nmax level  %d\nuids      ",
	    rec->id, (long long)rec->revision,
	    time_format_utc(rec->applied_ns, a, sizeof(a)),
	    shown(rec->applied_by), shown(agr->grantee), shown(agr->scenario),
	    agreement_state_at(rec->state, agr, now),
	    time_format_utc(story.since_ns, b, sizeof(b)), shown(story.by),
	    story.reason ? ": " : "", story.reason ? shown(story.reason) : "",
	    time_format_offset(agr->valid_from_ns, agr->valid_from_offset, c,
			       sizeof(c)),
	    time_format_offset(agr->valid_until_ns, agr->valid_until_offset, d,
			       sizeof(d)),
	    agr->max_level);
	for (size_t i = 0; i < agr->nuids; i++)
		printf(" %u", (unsigned)agr->uids[i]);
	printf("\n");
	for (size_t i = 0; i < agr->ndatasets; i++) {
		printf("dataset    %s%s\n", agr->datasets[i].dataset,
		       agr->datasets[i].records ? "" : " (views only)");
		print_rules_diff(&agr->datasets[i], NULL);
	}
}

static int agreement_list(struct ctl *ctl)
{
	struct agreement_record *all;
	json_t *arr = json_array();
	size_t n;
	char a[40], b[40];
	int rc = catalog_agreement_list(ctl->cat, &all, &n);

	if (rc) {
		json_decref(arr);
		return fail("catalog: %s", strerror(-rc));
	}
	if (!ctl->json)
		printf("%-20s %-13s %4s %-21s %-21s %s\n", "ID", "STATE", "REV",
		       "VALID FROM (UTC)", "VALID UNTIL (UTC)", "GRANTEE");
	for (size_t i = 0; i < n && !rc; i++) {
		struct agreement agr;

		if (agreement_from_record(&all[i], &agr)) {
			rc = fail("agreement '%s': stored revision unreadable",
				  all[i].id);
			break;
		}
		if (ctl->json)
			json_array_append_new(
			    arr, agreement_json(&all[i], &agr, false));
		else
			printf(
			    "%-20s %-13s %4lld %-21s %-21s %s\n", all[i].id,
			    agreement_state_at(all[i].state, &agr,
					       clock_now_ns()),
			    (long long)all[i].revision,
			    time_format_utc(agr.valid_from_ns, a, sizeof(a)),
			    time_format_utc(agr.valid_until_ns, b, sizeof(b)),
			    shown(agr.grantee));
		agreement_release(&agr);
	}
	agreement_records_free(all, n);
	if (ctl->json && !rc)
		return print_json(arr);
	json_decref(arr);
	return rc;
}

static int agreement_show(struct ctl *ctl, const char *id)
{
	struct agreement_record rec;
	struct agreement agr;
	int rc = catalog_agreement_get(ctl->cat, id, &rec);

	if (rc == -ENOENT)
		return fail("no such agreement '%s'", id);
	if (rc)
		return fail("catalog: %s", strerror(-rc));
	if (agreement_from_record(&rec, &agr)) {
		agreement_record_release(&rec);
		return fail("agreement '%s': stored revision unreadable", id);
	}
	if (ctl->json)
		rc = print_json(agreement_json(&rec, &agr, true));
	else
		print_agreement_text(&rec, &agr);
	agreement_release(&agr);
	agreement_record_release(&rec);
	return rc;
}

int cmd_agreement(int argc, char **argv)
{
	struct ctl ctl = {0};
	const char *verb = argc > 1 ? argv[1] : "";
	char *pos[1];
	int npos, rc;

	if (!strcmp(verb, "apply"))
		return agreement_apply(argc - 1, argv + 1);
	if (!strcmp(verb, "suspend") || !strcmp(verb, "resume") ||
	    !strcmp(verb, "revoke"))
		return agreement_lifecycle(argc - 1, argv + 1);
	if (strcmp(verb, "list") && strcmp(verb, "show"))
		return usage_error("usage: agreement "
				   "apply|list|show|suspend|resume|revoke ...");
	rc = ctl_parse(&ctl, argc - 1, argv + 1, NULL, NULL, NULL, pos, 1,
		       &npos);
	if (rc)
		return rc;
	if (npos != (strcmp(verb, "show") ? 0 : 1))
		return usage_error("usage: agreement list [--json] | agreement "
				   "show ID [--json]");
	if (npos && check_id("agreement", pos[0]))
		return EXIT_REFUSED;
	rc = ctl_open(&ctl, CTL_READ);
	if (rc)
		return rc;
	rc = !strcmp(verb, "list") ? agreement_list(&ctl)
				   : agreement_show(&ctl, pos[0]);
	ctl_close(&ctl);
	return rc;
}
