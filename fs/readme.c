/*
 * readme: README.txt of a mount, written for the analyst.
 */
#include "readme.h"

#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "jsonpath.h"
#include "render.h"

#define ESCAPED_SLOTS 8

/* README.txt being written, and the text escaped for it. */
struct readme_out {
	struct buf *buf;
	char *escaped[ESCAPED_SLOTS];
	unsigned next;
	bool failed; /* an escape ran out of memory */
};

static int put(struct readme_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int put(struct readme_out *out, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	rc = buf_reserve(out->buf, (size_t)n + 1);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf((char *)out->buf->data + out->buf->len, (size_t)n + 1, fmt,
		  ap);
	va_end(ap);
	out->buf->len += (size_t)n;
	return out->failed ? -ENOMEM : 0;
}

/*
 * Text from the agreement or the catalog (a grantee, a reason, a column
 * name) as README.txt shows it: TEXT_SHOWN (jsonpath.h), so that it
 * cannot split or forge a line.  Valid for the next ESCAPED_SLOTS - 1
 * calls; "?" when out of memory, and the README then fails.
 */
static const char *esc(struct readme_out *out, const char *s)
{
	char *copy = text_escape_dup(s ? s : "", TEXT_SHOWN);

	if (!copy) {
		out->failed = true;
		return "?";
	}
	free(out->escaped[out->next]);
	out->escaped[out->next] = copy;
	out->next = (out->next + 1) % ESCAPED_SLOTS;
	return copy;
}

static const char *state_line(const struct mount_state *st)
{
	if (!st->active)
		return st->rec.state;
	switch (st->phase) {
	case PHASE_NOT_YET:
		return "not yet valid";
	case PHASE_EXPIRED:
		return "expired";
	case PHASE_VALID:
		break;
	}
	return "active";
}

static int put_quota(const struct mount_state *st, const struct readme_quota *q,
		     struct readme_out *out)
{
	const struct agreement *a = &st->agr;
	uint64_t left;
	char day[40];

	if (!a->has_quota)
		return put(out, "Quota:     none\n");
	if (!q)
		return put(out, "Quota:     %llu bytes of data per day\n",
			   (unsigned long long)a->quota_bytes_per_day);
	left = q->used < a->quota_bytes_per_day
		   ? a->quota_bytes_per_day - q->used
		   : 0;
	return put(out,
		   "Quota:     %llu bytes of data per day\n"
		   "           today (from %s): %llu used, %llu left\n",
		   (unsigned long long)a->quota_bytes_per_day,
		   time_format_offset(q->day_start_ns, a->valid_from_offset,
				      day, sizeof(day)),
		   (unsigned long long)q->used, (unsigned long long)left);
}

static int put_header(const struct mount_state *st,
		      const struct readme_quota *q, struct readme_out *out)
{
	const struct agreement *a = &st->agr;
	char f[40], u[40], fu[40], uu[40], since[40];
	int rc;

	rc = put(out,
		 "govfs: agreement %s (revision %lld)\n\n"
		 "Grantee:   %s\n"
		 "Scenario:  %s\n"
		 "Valid:     from %s until %s\n"
		 "           (UTC: from %s until %s)\n"
		 "State:     %s\n",
		 a->id, (long long)st->rec.revision, esc(out, a->grantee),
		 esc(out, a->scenario),
		 time_format_offset(a->valid_from_ns, a->valid_from_offset, f,
				    sizeof(f)),
		 time_format_offset(a->valid_until_ns, a->valid_until_offset, u,
				    sizeof(u)),
		 time_format_utc(a->valid_from_ns, fu, sizeof(fu)),
		 time_format_utc(a->valid_until_ns, uu, sizeof(uu)),
		 state_line(st));
	if (!rc && !st->active)
		rc = put(out, "           since %s, by %s: %s\n",
			 time_format_utc(st->rec.state_since_ns, since,
					 sizeof(since)),
			 esc(out, st->rec.state_by),
			 esc(out, st->rec.state_reason));
	if (!rc && st->active && st->phase == PHASE_EXPIRED)
		rc = put(out,
			 "           since %s, when its validity window "
			 "ended\n",
			 uu);
	if (!rc && st->active && st->phase == PHASE_NOT_YET)
		rc = put(out,
			 "           until %s, when its validity window "
			 "begins\n",
			 fu);
	if (!rc && st->active && st->phase != PHASE_VALID)
		rc = put(out, "           data files can be read only inside "
			      "the validity window\n");
	if (!rc)
		rc = put_quota(st, q, out);
	if (!rc && st->audit_low_space)
		rc = put(out, "Warning:   the audit log's disk is nearly full; "
			      "once it is full, no\n"
			      "           data file can be read until an admin "
			      "frees space\n");
	return rc;
}

/* A group column as the view names it: "district", "age (bucket:10)". */
static int put_group_key(const struct group_key *k, bool first,
			 struct readme_out *out)
{
	char rule[RULE_TEXT_MAX];

	if (!k->has_rule)
		return put(out, "%s%s", first ? "" : ", ", esc(out, k->column));
	return put(out, "%s%s (%s)", first ? "" : ", ", esc(out, k->column),
		   rule_text(&k->rule, rule, sizeof(rule)));
}

/*
 * One view: its file, size and groups, what it groups by and measures,
 * and which groups are left out.
 */
static int put_view(const struct view *v, const struct file_view *fv,
		    struct readme_out *out)
{
	int rc = fv->fault
		     ? put(out, "  views/%s.csv  unavailable: %s\n", v->name,
			   fv->fault)
		     : put(out, "  views/%s.csv  %llu bytes, %llu groups\n",
			   v->name, (unsigned long long)fv->size,
			   (unsigned long long)fv->dv.sizes.rows);

	if (!rc)
		rc = put(out, "    grouped by  %s",
			 v->nkeys ? ""
				  : "nothing "
				    "(one total)");
	for (size_t k = 0; !rc && k < v->nkeys; k++)
		rc = put_group_key(&v->keys[k], k == 0, out);
	if (!rc)
		rc = put(out, "\n    columns     ");
	for (size_t c = 0; !rc && c < fv->dv.schema.ncols; c++)
		rc = put(out, "%s%s", c ? ", " : "",
			 esc(out, fv->dv.schema.cols[c].name));
	if (!rc)
		rc = put(out, "\n    shown       groups of at least %u rows",
			 v->min_group);
	if (!rc && v->entity)
		rc = put(out, " and %u distinct %s", v->min_group,
			 esc(out, v->entity));
	if (!rc)
		rc = put(out, "\n");
	return rc;
}

static int put_dataset(const struct dataset_state *d, struct readme_out *out)
{
	char rule[64];
	int rc;

	rc = put(out, "\n%s/\n", d->ds->dataset);
	if (!rc && d->data && d->data->fault)
		rc = put(out, "  data.csv     unavailable: %s\n",
			 d->data->fault);
	else if (!rc && d->data)
		rc = put(out,
			 "  data.csv     %llu bytes, %llu of %llu rows of "
			 "dataset version %lld\n",
			 (unsigned long long)d->data->size,
			 (unsigned long long)d->data->dv.sizes.rows,
			 (unsigned long long)d->data->dv.store->info.nrows,
			 (long long)d->data->version);
	if (!rc && !d->data)
		rc = put(out, "  (aggregation only: no data.csv)\n");
	if (!rc)
		rc = put(out, "  schema.json  the columns below, as JSON\n");
	for (size_t i = 0; !rc && d->data && i < d->data->dv.plan.nout; i++) {
		const struct render_col *c = &d->data->dv.plan.cols[i];

		rc = put(out, "    %-28s %-9s %s\n",
			 esc(out, d->data->dv.schema.cols[c->src].name),
			 col_type_name(c->type),
			 rule_text(&c->rule, rule, sizeof(rule)));
	}
	if (!rc && d->ds->rows)
		rc = put(out, "  rows shown:  %s\n", esc(out, d->ds->rows));
	for (size_t i = 0; !rc && i < d->ds->nviews; i++)
		rc = put_view(&d->ds->views[i], d->views[i], out);
	return rc;
}

int readme_render(const struct mount_state *st, const struct readme_quota *q,
		  struct buf *buf)
{
	struct readme_out out = {.buf = buf};
	int rc;

	buf->len = 0;
	rc = put_header(st, q, &out);
	for (size_t i = 0; !rc && i < st->ndatasets; i++)
		rc = put_dataset(&st->datasets[i], &out);
	for (size_t i = 0; i < ESCAPED_SLOTS; i++)
		free(out.escaped[i]);
	return rc;
}
