/*
 * views: computing and recording the results of an agreement's
 * aggregation views for govfsctl, with the progress line a long
 * computation shows on a terminal; and recording them with the size index
 * of data.csv, each sealed (sizeindex.h): the part `agreement apply` and
 * `dataset add` share.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "dataview.h"
#include "govfsctl.h"
#include "viewbuild.h"
#include "viewstore.h"

#define PROGRESS_AFTER_NS 1000000000LL
#define PROGRESS_EVERY_NS 250000000LL

/* The progress line of one view: shown only on a terminal, and only once
 * the work has taken a second. */
struct progress_line {
	const char *dataset, *view;
	bool tty, shown;
	int64_t start_ns, last_ns;
};

static void show_progress(void *ctx, const char *phase, uint64_t done,
			  uint64_t total)
{
	struct progress_line *p = ctx;
	int64_t now = clock_now_ns();

	if (!p->tty || now - p->start_ns < PROGRESS_AFTER_NS ||
	    now - p->last_ns < PROGRESS_EVERY_NS)
		return;
	p->last_ns = now;
	p->shown = true;
	fprintf(stderr, "\r%s views/%s.csv: %s %llu of %llu%s   ", p->dataset,
		p->view, phase, (unsigned long long)done,
		(unsigned long long)total,
		strcmp(phase, "scan") ? " partitions" : " rows");
}

static void end_progress(const struct progress_line *p)
{
	if (p->shown)
		fputc('\n', stderr);
}

void view_results_release(struct view_results *r)
{
	for (size_t i = 0; i < r->n; i++) {
		view_result_release(&r->v[i].rec);
		size_index_release(&r->v[i].sizes);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}

void view_results_discard(const char *home, struct view_results *r)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < r->n; i++) {
		snprintf(path, sizeof(path), "%s/%s", home,
			 r->v[i].rec.store_file);
		unlink(path);
	}
	view_results_release(r);
}

/* One view into r->v[r->n]. */
static int compute_view(struct ctl *ctl, const char *agreement,
			const struct agreement_dataset *ds,
			const struct dataview *dv, const struct view *view,
			struct view_results *r, struct perr *err)
{
	struct progress_line line = {
	    .dataset = ds->dataset,
	    .view = view->name,
	    .tty = isatty(STDERR_FILENO),
	    .start_ns = clock_now_ns(),
	};
	struct view_build_opts opts = {
	    .memory = VIEW_BUILD_MEMORY,
	    .progress = show_progress,
	    .progress_ctx = &line,
	};
	struct view_result *res = &r->v[r->n].rec;
	int rc = view_build(ctl->home, &ctl->mk, agreement, dv, view, &opts,
			    res, &r->v[r->n].sizes, err);

	end_progress(&line);
	if (rc)
		return rc;
	r->n++;
	res->agreement = strdup(agreement);
	res->dataset = strdup(ds->dataset);
	res->view = strdup(view->name);
	return res->agreement && res->dataset && res->view ? 0 : -ENOMEM;
}

int compute_views(struct ctl *ctl, const char *agreement,
		  const struct agreement_dataset *ds,
		  const struct dataset_version *v, const uint8_t *key,
		  struct view_results *out, struct perr *err)
{
	struct dataview dv;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!ds->nviews)
		return 0;
	out->v = calloc(ds->nviews, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	rc = dataview_open(&dv, ctl->home, &ctl->mk, v, ds, key, err);
	if (!rc) {
		for (size_t i = 0; !rc && i < ds->nviews; i++)
			rc = compute_view(ctl, agreement, ds, &dv,
					  &ds->views[i], out, err);
		dataview_close(&dv);
	}
	if (rc)
		view_results_discard(ctl->home, out);
	return rc;
}

/* Seal si for at (a data.csv) and put it in the catalog. */
static int record_size_index(struct catalog *cat,
			     const uint8_t size_key[KEY_LEN],
			     const struct size_index_place *at,
			     const struct size_index *si)
{
	struct buf sealed = BUF_INIT;
	int rc = size_index_seal(size_key, at, si, &sealed);

	if (!rc)
		rc = catalog_size_index_put(cat, at->agreement, at->revision,
					    at->dataset, at->version, &sealed);
	buf_release(&sealed);
	return rc;
}

/* Put cv's result as that of at's file, its size index sealed in it. */
static int record_view(struct catalog *cat, const uint8_t size_key[KEY_LEN],
		       const struct size_index_place *at,
		       struct computed_view *cv)
{
	struct size_index_place view_at = *at;
	int rc;

	view_at.view = cv->rec.view;
	cv->rec.revision = at->revision;
	cv->rec.version = at->version;
	rc = size_index_seal(size_key, &view_at, &cv->sizes,
			     &cv->rec.sealed_sizes);
	if (!rc)
		rc = catalog_view_result_put(cat, &cv->rec);
	return rc;
}

int record_version_files(struct catalog *cat, const uint8_t size_key[KEY_LEN],
			 const struct size_index_place *at,
			 const struct size_index *si, struct view_results *r)
{
	int rc = si ? record_size_index(cat, size_key, at, si) : 0;

	for (size_t i = 0; i < r->n && !rc; i++)
		rc = record_view(cat, size_key, at, &r->v[i]);
	return rc;
}

bool size_index_recorded(struct catalog *cat, const uint8_t size_key[KEY_LEN],
			 const struct size_index_place *at)
{
	struct view_result r = {0};
	struct buf sealed = BUF_INIT;
	struct size_index si;
	int rc;

	if (at->view)
		rc = catalog_view_result_get(cat, at->agreement, at->revision,
					     at->dataset, at->version, at->view,
					     &r);
	else
		rc = catalog_size_index_get(cat, at->agreement, at->revision,
					    at->dataset, at->version, &sealed);
	if (!rc)
		rc = size_index_open(size_key, at,
				     at->view ? &r.sealed_sizes : &sealed, &si);
	if (!rc)
		size_index_release(&si);
	view_result_release(&r);
	buf_release(&sealed);
	return rc == 0;
}

void print_views(const struct view_results *r)
{
	for (size_t i = 0; i < r->n; i++)
		printf("    views/%s.csv: %llu groups shown, %llu bytes\n",
		       r->v[i].rec.view, (unsigned long long)r->v[i].sizes.rows,
		       (unsigned long long)r->v[i].sizes.total_bytes);
}
