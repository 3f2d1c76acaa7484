/*
 * mount_state: building a mount's view of the catalog, and the reference
 * counting that lets requests, handles and the refresh thread share it.
 */
#include "mount_state.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "clock.h"
#include "readme.h"
#include "render.h"

/* The fault of a file whose size index does not open. */
#define FAULT_SIZES                                                            \
	"its size index does not open (altered, or moved from another file)"
/* The fault of a file whose store file does not open. */
#define FAULT_STORE                                                            \
	"its store file is damaged, or is not the one the catalog recorded"

static atomic_uint_fast64_t next_view_id = 1;

struct file_view *file_view_get(struct file_view *fv)
{
	atomic_fetch_add(&fv->refs, 1);
	return fv;
}

void file_view_put(struct file_view *fv)
{
	if (!fv || atomic_fetch_sub(&fv->refs, 1) != 1)
		return;
	dataview_close(&fv->dv);
	buf_release(&fv->fingerprint);
	free(fv->ends);
	free(fv->dataset);
	free(fv->view);
	free(fv);
}

uint32_t file_view_block_at(const struct file_view *fv, uint64_t off)
{
	uint32_t lo = 0, hi = fv->dv.sizes.nblocks;

	/* First block whose end is past off. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (fv->ends[mid] <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int file_view_render(const struct file_view *fv, uint32_t b,
		     struct block_decoder *d, struct buf *out)
{
	const uint8_t *rows;
	size_t len;
	int rc;

	out->len = 0;
	if (b >= fv->dv.sizes.nblocks)
		return -EIO;
	rc = buf_reserve(out, fv->dv.sizes.block_bytes[b]);
	if (!rc)
		rc = store_read_block(fv->dv.store, b, d, &rows, &len);
	if (!rc)
		rc = render_block(&fv->dv.plan, rows, len,
				  fv->dv.store->blocks[b].nrows, out, NULL);
	if (!rc && out->len != fv->dv.sizes.block_bytes[b])
		rc = -EIO;
	return rc == -ENOMEM ? rc : rc ? -EIO : 0;
}

static int file_view_fill_ends(struct file_view *fv)
{
	const struct size_index *si = &fv->dv.sizes;
	uint64_t off = si->header_bytes;

	fv->ends = calloc(si->nblocks + 1, sizeof(*fv->ends));
	if (!fv->ends)
		return -ENOMEM;
	for (uint32_t b = 0; b < si->nblocks; b++) {
		off += si->block_bytes[b];
		fv->ends[b] = off;
	}
	fv->size = off;
	return off == si->total_bytes ? 0 : -EIO;
}

/* A new file_view of version v under st's revision, not yet opened. */
static struct file_view *file_view_new(const struct mount_state *st,
				       const struct dataset_version *v,
				       const char *view)
{
	struct file_view *fv = calloc(1, sizeof(*fv));

	if (!fv)
		return NULL;
	atomic_init(&fv->refs, 1);
	fv->id = atomic_fetch_add(&next_view_id, 1);
	fv->dataset = strdup(v->dataset);
	fv->view = view ? strdup(view) : NULL;
	fv->version = v->version;
	fv->revision = st->rec.revision;
	fv->mtime_ns = v->ingested_ns > st->rec.applied_ns ? v->ingested_ns
							   : st->rec.applied_ns;
	if (!fv->dataset || (view && !fv->view)) {
		file_view_put(fv);
		return NULL;
	}
	return fv;
}

/*
 * Open the sealed size index of fv (under st's revision) into out; -EIO,
 * with fv's fault set, if it does not open.
 */
static int open_sizes(const struct mount_state *st, struct file_view *fv,
		      const struct buf *sealed, struct size_index *out)
{
	const struct size_index_place at = {
	    .agreement = st->rec.id,
	    .revision = st->rec.revision,
	    .dataset = fv->dataset,
	    .version = fv->version,
	    .view = fv->view,
	};
	int rc = size_index_open(st->size_key, &at, sealed, out);

	if (rc == -EIO)
		fv->fault = FAULT_SIZES;
	return rc;
}

/* Open the data.csv of version v under revision rec of entry ds. */
static int file_view_open(struct catalog *cat, const char *home,
			  const struct master_key *mk,
			  const struct mount_state *st,
			  const struct agreement_dataset *ds,
			  const struct dataset_version *v,
			  struct file_view **out, char *why, size_t whylen)
{
	const struct agreement_record *rec = &st->rec;
	struct file_view *fv = file_view_new(st, v, NULL);
	struct buf sealed = BUF_INIT;
	struct perr err;
	int rc;

	if (!fv)
		return -ENOMEM;
	rc = dataview_open(&fv->dv, home, mk, v, ds,
			   st->has_key ? st->pseudonym_key : NULL, &err);
	if (rc == -EBADMSG)
		fv->fault = FAULT_STORE;
	if (rc && !fv->fault) {
		snprintf(why, whylen, "%s: %s", v->dataset,
			 rc == -EINVAL ? err.msg : strerror(-rc));
		file_view_put(fv);
		return rc;
	}
	if (!rc)
		rc = catalog_size_index_get(cat, rec->id, rec->revision,
					    v->dataset, v->version, &sealed);
	if (!rc)
		rc = open_sizes(st, fv, &sealed, &fv->dv.sizes);
	buf_release(&sealed);
	if (!rc && fv->dv.sizes.nblocks != fv->dv.store->info.nblocks)
		rc = -EIO;
	if (!rc && fv->dv.sizes.header_bytes != fv->dv.plan.header.len)
		rc = -EIO;
	if (!rc)
		rc = file_view_fill_ends(fv);
	/* A file with a fault is loaded: it serves nothing, the rest does. */
	if (fv->fault)
		rc = 0;
	if (!rc && render_fingerprint(&fv->dv.schema, ds, &fv->fingerprint))
		rc = -ENOMEM;
	if (rc) {
		snprintf(why, whylen, "%s: %s", v->dataset,
			 rc == -ENOENT ? "no size index for this version and "
					 "revision (re-apply the agreement)"
				       : "size index does not match the store");
		file_view_put(fv);
		return rc;
	}
	*out = fv;
	return 0;
}

/* The output columns of view over version v's schema. */
static int view_output_schema(const struct dataset_version *v,
			      const struct view *view, struct schema *out)
{
	struct schema schema;
	struct agg_plan plan;
	struct perr err;
	int rc = schema_from_json(v->schema_json, strlen(v->schema_json),
				  &schema, &err);

	if (rc)
		return -EIO;
	rc = agg_plan_init(&plan, &schema, view, NULL, &err);
	if (!rc) {
		rc = agg_plan_output_schema(&plan, out);
		agg_plan_release(&plan);
	}
	schema_release(&schema);
	return rc == -EINVAL ? -EIO : rc;
}

/* Open the stored result of view (of entry ds) over version v. */
static int view_file_open(struct catalog *cat, const char *home,
			  const struct master_key *mk,
			  const struct mount_state *st,
			  const struct agreement_dataset *ds,
			  const struct dataset_version *v,
			  const struct view *view, struct file_view **out,
			  char *why, size_t whylen)
{
	struct file_view *fv = file_view_new(st, v, view->name);
	struct schema out_schema = {0};
	struct size_index sizes = {0};
	struct view_result r;
	int rc;

	if (!fv)
		return -ENOMEM;
	rc = catalog_view_result_get(cat, st->rec.id, st->rec.revision,
				     v->dataset, v->version, view->name, &r);
	if (rc) {
		snprintf(why, whylen, "%s: views/%s.csv: %s", v->dataset,
			 view->name,
			 rc == -ENOENT ? "no result for this version and "
					 "revision (re-apply the agreement)"
				       : strerror(-rc));
		file_view_put(fv);
		return rc;
	}
	rc = view_output_schema(v, view, &out_schema);
	if (!rc)
		rc = open_sizes(st, fv, &r.sealed_sizes, &sizes);
	if (!rc)
		rc = dataview_open_result(&fv->dv, home, mk, &r, &out_schema,
					  &sizes);
	if (rc == -EBADMSG)
		fv->fault = FAULT_STORE;
	if (!rc)
		rc = file_view_fill_ends(fv);
	/* One that serves nothing still lists its columns. */
	if (fv->fault)
		rc = schema_copy(&fv->dv.schema, &out_schema);
	if (!rc && agg_fingerprint(view, ds->rows, &fv->fingerprint))
		rc = -ENOMEM;
	memcpy(fv->digest, r.digest, sizeof(fv->digest));
	size_index_release(&sizes);
	view_result_release(&r);
	schema_release(&out_schema);
	if (rc) {
		snprintf(why, whylen, "%s: views/%s.csv: %s", v->dataset,
			 view->name,
			 rc == -EIO ? "result does not match its catalog entry"
				    : strerror(-rc));
		file_view_put(fv);
		return rc;
	}
	*out = fv;
	return 0;
}

static bool view_current(const struct file_view *fv,
			 const struct mount_state *st)
{
	const struct file_view *now =
	    mount_state_view(st, fv->dataset, fv->view);

	if (!now)
		return false;
	if (now->version == fv->version)
		return !memcmp(now->digest, fv->digest, sizeof(fv->digest));
	return render_fingerprint_equal(&now->fingerprint, &fv->fingerprint);
}

bool file_view_current(const struct file_view *fv, const struct mount_state *st)
{
	const struct agreement_dataset *ds;
	struct buf now = BUF_INIT;
	bool same;

	if (fv->revision == st->rec.revision)
		return true;
	if (fv->view)
		return view_current(fv, st);
	ds = agreement_find_dataset(&st->agr, fv->dataset);
	if (!ds || render_fingerprint(&fv->dv.schema, ds, &now)) {
		buf_release(&now);
		return false;
	}
	same = render_fingerprint_equal(&fv->fingerprint, &now);
	buf_release(&now);
	return same;
}

/* prev's file (data.csv when view is NULL) of the same dataset version
 * and revision, with a new reference, or NULL. */
static struct file_view *reusable_view(const struct mount_state *prev,
				       const char *dataset, const char *view,
				       int64_t version, int64_t revision)
{
	const struct dataset_state *d =
	    prev ? mount_state_dataset(prev, dataset) : NULL;
	struct file_view *fv = NULL;

	if (d)
		fv = view ? mount_state_view(prev, dataset, view) : d->data;
	if (fv && fv->version == version && fv->revision == revision)
		return file_view_get(fv);
	return NULL;
}

/* A view as schema.json lists it: its name and its columns. */
static json_t *view_json(const struct view *v, const struct file_view *fv)
{
	const struct schema *out = &fv->dv.schema;
	json_t *cols = json_array();

	for (size_t i = 0; i < out->ncols; i++)
		json_array_append_new(
		    cols, json_pack("{s:s, s:s}", "name", out->cols[i].name,
				    "type", col_type_name(out->cols[i].type)));
	return json_pack("{s:s, s:o}", "name", v->name, "columns", cols);
}

/* schema.json: the columns of data.csv with their rules, and the views. */
static int schema_json_render(const struct dataset_state *d, struct buf *out)
{
	json_t *cols = json_array(), *views = json_array();
	json_t *root;
	char *text, rule[64];
	int rc;

	for (size_t i = 0; d->data && i < d->data->dv.plan.nout; i++) {
		const struct render_col *c = &d->data->dv.plan.cols[i];

		json_array_append_new(
		    cols, json_pack("{s:s, s:s, s:s}", "name",
				    d->data->dv.schema.cols[c->src].name,
				    "type", col_type_name(c->type), "rule",
				    rule_text(&c->rule, rule, sizeof(rule))));
	}
	for (size_t i = 0; i < d->ds->nviews; i++)
		json_array_append_new(views,
				      view_json(&d->ds->views[i], d->views[i]));
	root = json_pack("{s:o, s:o}", "columns", cols, "views", views);
	text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER)
		    : NULL;
	json_decref(root);
	if (!text)
		return -ENOMEM;
	rc = buf_append(out, text, strlen(text));
	if (!rc)
		rc = buf_append(out, "\n", 1);
	free(text);
	return rc;
}

static int load_views(struct catalog *cat, const char *home,
		      const struct master_key *mk, const struct mount_state *st,
		      struct dataset_state *d, const struct dataset_version *v,
		      const struct mount_state *prev, char *why, size_t whylen)
{
	const struct agreement_dataset *ds = d->ds;
	int rc = 0;

	d->views = calloc(ds->nviews + 1, sizeof(*d->views));
	if (!d->views)
		return -ENOMEM;
	for (size_t i = 0; i < ds->nviews && !rc; i++) {
		d->views[i] = reusable_view(prev, v->dataset, ds->views[i].name,
					    v->version, st->rec.revision);
		if (!d->views[i])
			rc = view_file_open(cat, home, mk, st, ds, v,
					    &ds->views[i], &d->views[i], why,
					    whylen);
	}
	return rc;
}

static int load_dataset(struct catalog *cat, const char *home,
			const struct master_key *mk, struct mount_state *st,
			size_t i, const struct mount_state *prev, char *why,
			size_t whylen)
{
	struct dataset_state *d = &st->datasets[i];
	struct dataset_version v;
	int rc;

	d->ds = &st->agr.datasets[i];
	rc = catalog_dataset_latest(cat, d->ds->dataset, &v);
	if (rc) {
		snprintf(why, whylen, "%s: %s", d->ds->dataset,
			 rc == -ENOENT ? "no such dataset" : strerror(-rc));
		return rc;
	}
	d->mtime_ns = v.ingested_ns > st->rec.applied_ns ? v.ingested_ns
							 : st->rec.applied_ns;
	if (d->ds->records) {
		d->data = reusable_view(prev, v.dataset, NULL, v.version,
					st->rec.revision);
		if (!d->data)
			rc = file_view_open(cat, home, mk, st, d->ds, &v,
					    &d->data, why, whylen);
	}
	if (!rc)
		rc = load_views(cat, home, mk, st, d, &v, prev, why, whylen);
	dataset_version_release(&v);
	if (!rc)
		rc = schema_json_render(d, &d->schema_json);
	return rc;
}

enum time_phase time_phase_at(const struct agreement *agr, int64_t now_ns)
{
	if (now_ns < agr->valid_from_ns)
		return PHASE_NOT_YET;
	if (now_ns >= agr->valid_until_ns)
		return PHASE_EXPIRED;
	return PHASE_VALID;
}

/*
 * The agreement's plain pseudonym key and the size key derived from it.
 * A revoked agreement has none, and shows nothing that needs them; any
 * other whose key does not unwrap is not loaded.
 */
static int load_keys(const struct master_key *mk, struct mount_state *st,
		     char *why, size_t whylen)
{
	int rc = pseudonym_key_unwrap(mk, &st->rec, st->pseudonym_key);

	if (rc == -ENOKEY && !strcmp(st->rec.state, "revoked"))
		return 0;
	if (!rc)
		rc = size_key_derive(st->pseudonym_key, st->size_key);
	if (rc) {
		snprintf(why, whylen,
			 "agreement '%s': its pseudonym key does not unwrap "
			 "with this master key",
			 st->rec.id);
		return -EIO;
	}
	st->has_key = true;
	return 0;
}

static int load_agreement(struct catalog *cat, const struct master_key *mk,
			  const char *id, struct mount_state *st, char *why,
			  size_t whylen)
{
	struct perr err;
	int rc = catalog_agreement_get(cat, id, &st->rec);

	if (rc == -ENOENT) {
		snprintf(why, whylen, "no such agreement '%s'", id);
		return rc;
	}
	if (rc) {
		snprintf(why, whylen, "catalog: %s", strerror(-rc));
		return rc;
	}
	rc = agreement_parse(st->rec.policy_json, strlen(st->rec.policy_json),
			     &st->agr, &err);
	if (rc)
		snprintf(why, whylen, "agreement '%s': %s", id, err.msg);
	if (!rc)
		rc = load_keys(mk, st, why, whylen);
	st->active = !strcmp(st->rec.state, "active");
	st->mtime_ns = st->rec.applied_ns > st->rec.state_since_ns
			   ? st->rec.applied_ns
			   : st->rec.state_since_ns;
	return rc;
}

int mount_state_load(struct catalog *cat, const char *home,
		     const struct master_key *mk, const char *id,
		     const struct mount_state *prev, bool audit_low_space,
		     struct mount_state **out, char *why, size_t whylen)
{
	struct mount_state *st = calloc(1, sizeof(*st));
	int rc;

	if (!st)
		return -ENOMEM;
	atomic_init(&st->refs, 1);
	rc = catalog_begin_read(cat);
	if (rc) {
		free(st);
		snprintf(why, whylen, "catalog: %s", strerror(-rc));
		return rc;
	}
	rc = load_agreement(cat, mk, id, st, why, whylen);
	/* A revoked agreement shows its README only: nothing else is left. */
	if (!rc && strcmp(st->rec.state, "revoked")) {
		st->datasets =
		    calloc(st->agr.ndatasets + 1, sizeof(*st->datasets));
		rc = st->datasets ? 0 : -ENOMEM;
		st->ndatasets = st->agr.ndatasets;
	}
	for (size_t i = 0; !rc && i < st->ndatasets; i++)
		rc = load_dataset(cat, home, mk, st, i, prev, why, whylen);
	catalog_end_read(cat);
	st->phase = time_phase_at(&st->agr, clock_now_ns());
	st->audit_low_space = audit_low_space;
	if (!rc)
		rc = readme_render(st, NULL, &st->readme);
	if (rc) {
		mount_state_put(st);
		return rc;
	}
	*out = st;
	return 0;
}

struct mount_state *mount_state_get(struct mount_state *st)
{
	atomic_fetch_add(&st->refs, 1);
	return st;
}

void mount_state_put(struct mount_state *st)
{
	if (!st || atomic_fetch_sub(&st->refs, 1) != 1)
		return;
	for (size_t i = 0; i < st->ndatasets; i++) {
		struct dataset_state *d = &st->datasets[i];

		file_view_put(d->data);
		for (size_t j = 0; d->views && j < d->ds->nviews; j++)
			file_view_put(d->views[j]);
		free(d->views);
		buf_release(&d->schema_json);
	}
	free(st->datasets);
	buf_release(&st->readme);
	agreement_release(&st->agr);
	agreement_record_release(&st->rec);
	OPENSSL_cleanse(st->pseudonym_key, sizeof(st->pseudonym_key));
	OPENSSL_cleanse(st->size_key, sizeof(st->size_key));
	free(st);
}

const struct dataset_state *mount_state_dataset(const struct mount_state *st,
						const char *name)
{
	for (size_t i = 0; i < st->ndatasets; i++)
		if (!strcmp(st->datasets[i].ds->dataset, name))
			return &st->datasets[i];
	return NULL;
}

const char *agreement_state_at(const char *stored, const struct agreement *agr,
			       int64_t now_ns)
{
	if (strcmp(stored, "active"))
		return stored;
	switch (time_phase_at(agr, now_ns)) {
	case PHASE_NOT_YET:
		return "not_yet_valid";
	case PHASE_EXPIRED:
		return "expired";
	case PHASE_VALID:
		break;
	}
	return "active";
}

struct state_story agreement_state_story(const struct agreement_record *rec,
					 const struct agreement *agr,
					 int64_t now_ns)
{
	struct state_story s = {rec->state_since_ns, rec->state_by,
				rec->state_reason};

	if (strcmp(rec->state, "active"))
		return s;
	switch (time_phase_at(agr, now_ns)) {
	case PHASE_NOT_YET:
		s.by = "the validity window";
		s.reason = "valid_from not reached";
		break;
	case PHASE_EXPIRED:
		s.since_ns = agr->valid_until_ns;
		s.by = "the validity window";
		s.reason = "valid_until passed";
		break;
	case PHASE_VALID:
		break;
	}
	return s;
}

static bool buf_equal(const struct buf *a, const struct buf *b)
{
	return a->len == b->len &&
	       (!a->len || !memcmp(a->data, b->data, a->len));
}

/* Same files, same bytes: file views are shared while unchanged. */
static bool dataset_state_same(const struct dataset_state *a,
			       const struct dataset_state *b)
{
	if (a->data != b->data || a->ds->nviews != b->ds->nviews ||
	    !buf_equal(&a->schema_json, &b->schema_json))
		return false;
	for (size_t v = 0; a->views && b->views && v < a->ds->nviews; v++)
		if (a->views[v] != b->views[v])
			return false;
	return !a->views == !b->views;
}

bool mount_state_same(const struct mount_state *a, const struct mount_state *b)
{
	if (a->rec.revision != b->rec.revision ||
	    strcmp(a->rec.state, b->rec.state) ||
	    a->rec.state_since_ns != b->rec.state_since_ns ||
	    a->phase != b->phase || a->ndatasets != b->ndatasets ||
	    !buf_equal(&a->readme, &b->readme))
		return false;
	for (size_t i = 0; i < a->ndatasets; i++)
		if (!dataset_state_same(&a->datasets[i], &b->datasets[i]))
			return false;
	return true;
}

struct file_view *mount_state_view(const struct mount_state *st,
				   const char *dataset, const char *view)
{
	const struct dataset_state *d = mount_state_dataset(st, dataset);

	for (size_t i = 0; d && d->views && i < d->ds->nviews; i++)
		if (d->views[i] && !strcmp(d->ds->views[i].name, view))
			return d->views[i];
	return NULL;
}
