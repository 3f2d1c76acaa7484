/*
 * views: computing and recording the results of an agreement's
 * aggregation views for govfsctl, the part `agreement apply` and
 * `dataset add` share, with the progress line a long computation shows on
 * a terminal.
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
	for (size_t i = 0; i < r->n; i++)
		view_result_release(&r->v[i]);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

void view_results_discard(const char *home, struct view_results *r)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < r->n; i++) {
		snprintf(path, sizeof(path), "%s/%s", home, r->v[i].store_file);
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
	struct view_result *res = &r->v[r->n];
	int rc = view_build(ctl->home, &ctl->mk, agreement, dv, view, &opts,
			    res, err);

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

int record_views(struct catalog *cat, struct view_results *r, int64_t revision,
		 int64_t version)
{
	int rc = 0;

	for (size_t i = 0; i < r->n && !rc; i++) {
		r->v[i].revision = revision;
		r->v[i].version = version;
		rc = catalog_view_result_put(cat, &r->v[i]);
	}
	return rc;
}

void print_views(const struct view_results *r)
{
	for (size_t i = 0; i < r->n; i++)
		printf("    views/%s.csv: %llu groups shown, %llu bytes\n",
		       r->v[i].view, (unsigned long long)r->v[i].sizes.rows,
		       (unsigned long long)r->v[i].sizes.total_bytes);
}
