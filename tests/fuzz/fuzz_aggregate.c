/*
 * libFuzzer target for policy/aggregate and the exact sums of
 * policy/decimal.
 *
 * The input is records, one per line, fields separated by '|', for a fixed
 * schema; a field that does not fit its column's type is NULL.  Each of a
 * few fixed views is computed twice: in one table, and with every group's
 * partial state and every distinct pair moved out through their serialised
 * forms after each record (pairs deduplicated in hash partitions), the way
 * spilling does.  Both must give the same output records.  The input is
 * also merged as a raw serialised group and counted as a raw pair, which
 * must fail cleanly or succeed, never crash.  And the running sum of the
 * input's numbers must equal their sum by decimal_add alone.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "agreement.h"
#include "buf.h"
#include "decimal.h"
#include "render.h"
#include "rowfmt.h"
#include "schema.h"
#include "types.h"

#define NCOLS 5
#define MAX_ROWS 256
#define NPARTS 3

static struct column columns[NCOLS] = {
    {"k", COL_STRING, 1},   {"n", COL_INT, 1},	  {"d", COL_DECIMAL, 1},
    {"t", COL_DATETIME, 1}, {"day", COL_DATE, 1},
};

static const struct schema schema = {NCOLS, columns};

static const char *const views[] = {
    ("{\"name\":\"a\",\"group_by\":[\"k\"],\"measures\":[\"count\","
     "\"sum:d\",\"avg:n\",\"min:t\",\"max:k\",\"count_distinct:d\"],"
     "\"min_group\":2,\"entity\":\"n\"}"),
    ("{\"name\":\"b\",\"group_by\":[\"n:bucket:7\",\"t:date:month\","
     "\"k:prefix:1\"],\"measures\":[\"count\",\"max:d\",\"avg:d\"],"
     "\"min_group\":2}"),
    ("{\"name\":\"c\",\"group_by\":[\"d\",\"day:date:year\",\"t\"],"
     "\"measures\":[\"count_distinct:k\",\"sum:n\",\"min:day\"],"
     "\"min_group\":2}"),
    ("{\"name\":\"d\",\"group_by\":[],\"measures\":[\"count\","
     "\"sum:d\",\"avg:d\",\"max:t\"],\"min_group\":2}"),
};

struct rows {
	size_t n;
	struct rowfmt_field f[MAX_ROWS][NCOLS];
};

/* Split the input into records; fields that do not fit are NULL. */
static void read_rows(const uint8_t *data, size_t size, struct rows *r)
{
	size_t pos = 0;

	r->n = 0;
	while (pos < size && r->n < MAX_ROWS) {
		struct rowfmt_field *f = r->f[r->n++];

		for (size_t c = 0; c < NCOLS; c++) {
			size_t start = pos;

			while (pos < size && data[pos] != '|' &&
			       data[pos] != '\n')
				pos++;
			f[c].data = data + start;
			f[c].len = pos - start;
			if (f[c].len &&
			    !value_fits_type(columns[c].type,
					     (const char *)f[c].data, f[c].len))
				f[c].len = 0;
			f[c].needs_quote = csv_needs_quote(f[c].data, f[c].len);
			if (pos < size && data[pos] == '|')
				pos++;
		}
		while (pos < size && data[pos++] != '\n')
			;
	}
}

/* The output records of t's shown groups, in order. */
static void output(const struct agg_table *t, struct buf *out)
{
	const struct agg_group **shown;
	size_t n;

	out->len = 0;
	if (agg_table_shown_sorted(t, &shown, &n))
		abort();
	for (size_t i = 0; i < n; i++)
		if (agg_group_output(t, shown[i], out))
			abort();
	free(shown);
}

/* Move every group and pair of from out, into final and parts. */
static void spill(struct agg_table *from, struct agg_table *final,
		  struct agg_table **parts)
{
	struct buf rec = BUF_INIT;
	const uint8_t *pair;
	uint64_t hash;
	size_t len;

	for (size_t i = 0; i < agg_table_group_slots(from); i++) {
		const struct agg_group *g = agg_table_group_at(from, i, &hash);

		rec.len = 0;
		if (g && (agg_group_serialize(from, g, &rec) ||
			  agg_table_merge_group(final, rec.data, rec.len)))
			abort();
	}
	for (size_t i = 0; i < agg_table_pair_slots(from); i++)
		if (agg_table_pair_at(from, i, &hash, &pair, &len) &&
		    agg_table_add_pair(parts[hash % NPARTS], pair, len))
			abort();
	agg_table_clear_groups(from);
	agg_table_clear_pairs(from);
	buf_release(&rec);
}

static void check_view(const char *json, const struct rows *rows,
		       const uint8_t *data, size_t size)
{
	char text[1024];
	struct agg_table *one, *w, *final, *parts[NPARTS];
	struct buf a = BUF_INIT, b = BUF_INIT;
	struct agreement agr;
	struct agg_plan plan;
	const uint8_t *pair;
	struct perr err;
	uint64_t hash;
	size_t len;

	snprintf(text, sizeof(text),
		 "{\"id\":\"f\",\"grantee\":\"g\",\"scenario\":\"s\","
		 "\"uids\":[0],\"max_level\":4,"
		 "\"valid_from\":\"2025-01-01T00:00:00Z\","
		 "\"valid_until\":\"2026-01-01T00:00:00Z\",\"datasets\":[{"
		 "\"dataset\":\"d\",\"records\":false,\"views\":[%s]}]}",
		 json);
	if (agreement_parse(text, strlen(text), &agr, &err) ||
	    agg_plan_init(&plan, &schema, &agr.datasets[0].views[0], NULL,
			  &err))
		abort();
	one = agg_table_new(&plan);
	w = agg_table_new(&plan);
	final = agg_table_new(&plan);
	for (size_t k = 0; k < NPARTS; k++)
		parts[k] = agg_table_new(&plan);
	for (size_t i = 0; i < rows->n; i++) {
		if (agg_table_add(one, rows->f[i]) ||
		    agg_table_add(w, rows->f[i]))
			abort();
		spill(w, final, parts);
	}
	if (agg_table_count_own_pairs(one))
		abort();
	for (size_t k = 0; k < NPARTS; k++)
		for (size_t i = 0; i < agg_table_pair_slots(parts[k]); i++)
			if (agg_table_pair_at(parts[k], i, &hash, &pair,
					      &len) &&
			    agg_table_count_pair(final, pair, len))
				abort();
	output(one, &a);
	output(final, &b);
	if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len)))
		abort();
	/* Raw bytes as a record or a pair: refused or taken, no crash. */
	(void)agg_table_merge_group(w, data, size);
	(void)agg_table_count_pair(w, data, size);
	buf_release(&a);
	buf_release(&b);
	agg_table_free(one);
	agg_table_free(w);
	agg_table_free(final);
	for (size_t k = 0; k < NPARTS; k++)
		agg_table_free(parts[k]);
	agg_plan_release(&plan);
	agreement_release(&agr);
}

/* The running sum of the d column equals a chain of decimal_add. */
static void check_sum(const struct rows *rows)
{
	struct decimal_sum s = DECIMAL_SUM_INIT;
	struct buf chain = BUF_INIT, next = BUF_INIT, got = BUF_INIT;

	if (buf_append(&chain, "0", 1))
		abort();
	for (size_t i = 0; i < rows->n; i++) {
		const struct rowfmt_field *f = &rows->f[i][2];

		if (!f->len)
			continue;
		next.len = 0;
		if (decimal_sum_add(&s, (const char *)f->data, f->len) ||
		    decimal_add((const char *)chain.data, chain.len,
				(const char *)f->data, f->len, &next))
			abort();
		chain.len = 0;
		if (buf_append(&chain, next.data, next.len))
			abort();
	}
	if (decimal_sum_text(&s, &got) || got.len != chain.len ||
	    memcmp(got.data, chain.data, got.len))
		abort();
	decimal_sum_release(&s);
	buf_release(&chain);
	buf_release(&next);
	buf_release(&got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rows rows;

	read_rows(data, size, &rows);
	check_sum(&rows);
	for (size_t v = 0; v < sizeof(views) / sizeof(views[0]); v++)
		check_view(views[v], &rows, data, size);
	return 0;
}
