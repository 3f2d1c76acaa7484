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

#include "clock.h"
#include "readme.h"
#include "render.h"

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

/* Open the data.csv of version v under revision rec of entry ds. */
static int file_view_open(struct catalog *cat, const char *home,
			  const struct master_key *mk,
			  const struct mount_state *st,
			  const struct agreement_dataset *ds,
			  const struct dataset_version *v,
			  struct file_view **out, char *why, size_t whylen)
{
	const struct agreement_record *rec = &st->rec;
	struct file_view *fv = calloc(1, sizeof(*fv));
	struct perr err;
	int rc;

	if (!fv)
		return -ENOMEM;
	atomic_init(&fv->refs, 1);
	fv->id = atomic_fetch_add(&next_view_id, 1);
	fv->dataset = strdup(v->dataset);
	fv->version = v->version;
	fv->revision = rec->revision;
	fv->mtime_ns =
	    v->ingested_ns > rec->applied_ns ? v->ingested_ns : rec->applied_ns;
	rc = fv->dataset
		 ? dataview_open(&fv->dv, home, mk, v, ds,
				 st->has_key ? st->pseudonym_key : NULL, &err)
		 : -ENOMEM;
	if (rc) {
		snprintf(why, whylen, "%s: %s", v->dataset,
			 rc == -EINVAL ? err.msg : strerror(-rc));
		free(fv->dataset);
		free(fv);
		return rc;
	}
	rc = catalog_size_index_get(cat, rec->id, rec->revision, v->dataset,
				    v->version, &fv->dv.sizes);
	if (!rc && fv->dv.sizes.nblocks != fv->dv.store->info.nblocks)
		rc = -EIO;
	if (!rc && fv->dv.sizes.header_bytes != fv->dv.plan.header.len)
		rc = -EIO;
	if (!rc)
		rc = file_view_fill_ends(fv);
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

bool file_view_current(const struct file_view *fv, const struct mount_state *st)
{
	const struct agreement_dataset *ds;
	struct buf now = BUF_INIT;
	bool same;

	if (fv->revision == st->rec.revision)
		return true;
	ds = agreement_find_dataset(&st->agr, fv->dataset);
	if (!ds || render_fingerprint(&fv->dv.schema, ds, &now)) {
		buf_release(&now);
		return false;
	}
	same = render_fingerprint_equal(&fv->fingerprint, &now);
	buf_release(&now);
	return same;
}

static struct file_view *reusable_view(const struct mount_state *prev,
				       const char *dataset, int64_t version,
				       int64_t revision)
{
	const struct dataset_state *d =
	    prev ? mount_state_dataset(prev, dataset) : NULL;

	if (d && d->data && d->data->version == version &&
	    d->data->revision == revision)
		return file_view_get(d->data);
	return NULL;
}

static json_t *measure_header_json(const struct measure *m)
{
	static const char *const names[] = {
	    [MEASURE_COUNT] = "count",
	    [MEASURE_COUNT_DISTINCT] = "count_distinct",
	    [MEASURE_SUM] = "sum",
	    [MEASURE_AVG] = "avg",
	    [MEASURE_MIN] = "min",
	    [MEASURE_MAX] = "max",
	};
	char buf[512];

	if (m->kind == MEASURE_COUNT)
		return json_string("count");
	snprintf(buf, sizeof(buf), "%s_%s", names[m->kind], m->column);
	return json_string(buf);
}

static json_t *views_json(const struct agreement_dataset *ds)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < ds->nviews; i++) {
		const struct view *v = &ds->views[i];
		json_t *cols = json_array();

		for (size_t k = 0; k < v->nkeys; k++)
			json_array_append_new(cols,
					      json_string(v->keys[k].column));
		for (size_t m = 0; m < v->nmeasures; m++)
			json_array_append_new(cols,
					      measure_header_json(&v->measures[m]));
		json_array_append_new(arr, json_pack("{s:s, s:o}", "name",
						     v->name, "columns", cols));
	}
	return arr;
}

/* schema.json: the columns of data.csv with their rules, and the views. */
static int schema_json_render(const struct dataset_state *d, struct buf *out)
{
	json_t *cols = json_array();
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
	root = json_pack("{s:o, s:o}", "columns", cols, "views",
			 views_json(d->ds));
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
		d->data =
		    reusable_view(prev, v.dataset, v.version, st->rec.revision);
		if (!d->data)
			rc = file_view_open(cat, home, mk, st, d->ds, &v,
					    &d->data, why, whylen);
	}
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
	st->has_key =
	    !rc && !pseudonym_key_unwrap(mk, &st->rec, st->pseudonym_key);
	st->active = !strcmp(st->rec.state, "active");
	st->mtime_ns = st->rec.applied_ns > st->rec.state_since_ns
			   ? st->rec.applied_ns
			   : st->rec.state_since_ns;
	return rc;
}

int mount_state_load(struct catalog *cat, const char *home,
		     const struct master_key *mk, const char *id,
		     const struct mount_state *prev, struct mount_state **out,
		     char *why, size_t whylen)
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
	if (!rc)
		rc = readme_render(st, &st->readme);
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
		file_view_put(st->datasets[i].data);
		buf_release(&st->datasets[i].schema_json);
	}
	free(st->datasets);
	buf_release(&st->readme);
	agreement_release(&st->agr);
	agreement_record_release(&st->rec);
	OPENSSL_cleanse(st->pseudonym_key, sizeof(st->pseudonym_key));
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
