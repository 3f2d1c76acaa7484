/*
 * Unit tests of policy/aggregate: every measure with NULLs, all-NULL and
 * empty groups, decimals a float gets wrong (0.1 + 0.2), negative values,
 * huge values, CJK keys, every generalising rule, suppression by rows and
 * by entities, the rows filter, the typed order (NULL first, numbers by
 * value, datetimes by instant), CSV quoting and the lone-NULL record.
 *
 * Each case gives rows and the exact bytes of the view's CSV, and runs
 * three ways that must agree: one table; the rows spread over three
 * tables merged through serialised partial states; and a spill model
 * that moves every partial state and pair out after each two rows,
 * deduplicates the pairs in four hash partitions and counts them into
 * the groups, as fs/viewbuild does with files.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aggregate.h"
#include "agreement.h"
#include "decimal.h"
#include "filter.h"
#include "render.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NCOLS 8

static struct column cols[NCOLS] = {
    {"district", COL_STRING, 1}, {"age", COL_INT, 1},
    {"day", COL_DATE, 1},	 {"seen", COL_DATETIME, 1},
    {"cost", COL_DECIMAL, 1},	 {"patient", COL_STRING, 4},
    {"name", COL_STRING, 1},	 {"qty", COL_INT, 1},
};
static const struct schema schema = {NCOLS, cols};

typedef const char *row_t[NCOLS];

enum mode {
	ONE_TABLE,
	THREE_TABLES,
	SPILLED,
	NMODES,
};

static const char *const mode_names[] = {"one table", "three tables merged",
					 "spilled"};

/* ---- building the pieces ---- */

static struct agreement parse_view(const char *view_json)
{
	struct agreement agr;
	struct perr err;
	char *text;
	int rc;

	rc = asprintf(&text,
		      "{\"id\":\"a\",\"grantee\":\"g\",\"scenario\":\"s\","
		      "\"uids\":[0],\"max_level\":4,"
		      "\"valid_from\":\"2025-01-01T00:00:00Z\","
		      "\"valid_until\":\"2026-01-01T00:00:00Z\","
		      "\"datasets\":[{\"dataset\":\"d\",\"records\":false,"
		      "\"views\":[%s]}]}",
		      view_json);
	assert_true(rc > 0);
	rc = agreement_parse(text, strlen(text), &agr, &err);
	if (rc)
		fail_msg("view %s: %s", view_json, err.msg);
	free(text);
	return agr;
}

/* The plan of agr's only view, over the test schema. */
static void plan_of_only_view(const struct agreement *agr,
			      struct agg_plan *plan)
{
	struct perr err;

	assert_int_equal(agg_plan_init(plan, &schema,
				       &agr->datasets[0].views[0], NULL, &err),
			 0);
}

static void fields_of(const row_t row, struct rowfmt_field *f)
{
	for (size_t i = 0; i < NCOLS; i++) {
		f[i].data = (const uint8_t *)row[i];
		f[i].len = strlen(row[i]);
		f[i].needs_quote = csv_needs_quote(f[i].data, f[i].len);
	}
}

static void add_row(struct agg_table *t, const row_t row)
{
	struct rowfmt_field f[NCOLS];

	fields_of(row, f);
	assert_int_equal(agg_table_add(t, f), 0);
}

/* Every record of a list of serialised records. */
struct records {
	struct buf data;
	size_t n;
	size_t *ends;
};

static void records_add(struct records *r, const uint8_t *p, size_t len)
{
	r->ends = realloc(r->ends, (r->n + 1) * sizeof(*r->ends));
	assert_non_null(r->ends);
	assert_int_equal(buf_append(&r->data, p, len), 0);
	r->ends[r->n++] = r->data.len;
}

static const uint8_t *records_get(const struct records *r, size_t i,
				  size_t *len)
{
	size_t start = i ? r->ends[i - 1] : 0;

	*len = r->ends[i] - start;
	return r->data.data + start;
}

static void records_release(struct records *r)
{
	buf_release(&r->data);
	free(r->ends);
	memset(r, 0, sizeof(*r));
}

/* Move every group of from into the records. */
static void spill_groups(struct agg_table *from, struct records *out)
{
	struct buf rec = BUF_INIT;
	uint64_t hash;

	for (size_t i = 0; i < agg_table_group_slots(from); i++) {
		const struct agg_group *g = agg_table_group_at(from, i, &hash);

		if (!g)
			continue;
		rec.len = 0;
		assert_int_equal(agg_group_serialize(from, g, &rec), 0);
		records_add(out, rec.data, rec.len);
	}
	agg_table_clear_groups(from);
	assert_int_equal(agg_table_ngroups(from), 0);
	buf_release(&rec);
}

/* Move every pair of from into the partition its hash picks. */
static void spill_pairs(struct agg_table *from, struct records *parts,
			size_t nparts)
{
	const uint8_t *pair;
	uint64_t hash;
	size_t len;

	for (size_t i = 0; i < agg_table_pair_slots(from); i++)
		if (agg_table_pair_at(from, i, &hash, &pair, &len))
			records_add(&parts[hash % nparts], pair, len);
	agg_table_clear_pairs(from);
	assert_int_equal(agg_table_npairs(from), 0);
}

static void merge_groups(struct agg_table *into, const struct records *r)
{
	for (size_t i = 0; i < r->n; i++) {
		size_t len;
		const uint8_t *rec = records_get(r, i, &len);

		assert_int_equal(agg_table_merge_group(into, rec, len), 0);
	}
}

/* Deduplicate each partition's pairs, then count them into into. */
static void count_partitions(struct agg_table *into, const struct agg_plan *p,
			     const struct records *parts, size_t nparts)
{
	for (size_t k = 0; k < nparts; k++) {
		struct agg_table *set = agg_table_new(p);
		const uint8_t *pair;
		uint64_t hash;
		size_t len;

		assert_non_null(set);
		for (size_t i = 0; i < parts[k].n; i++) {
			pair = records_get(&parts[k], i, &len);
			assert_int_equal(agg_table_add_pair(set, pair, len), 0);
		}
		for (size_t i = 0; i < agg_table_pair_slots(set); i++)
			if (agg_table_pair_at(set, i, &hash, &pair, &len))
				assert_int_equal(
				    agg_table_count_pair(into, pair, len), 0);
		agg_table_free(set);
	}
}

static struct agg_table *one_table(const struct agg_plan *p, const row_t *rows,
				   size_t n)
{
	struct agg_table *t = agg_table_new(p);

	assert_non_null(t);
	for (size_t i = 0; i < n; i++)
		add_row(t, rows[i]);
	assert_int_equal(agg_table_count_own_pairs(t), 0);
	return t;
}

static struct agg_table *three_tables(const struct agg_plan *p,
				      const row_t *rows, size_t n)
{
	struct agg_table *t[3];
	struct records groups;
	const uint8_t *pair;
	uint64_t hash;
	size_t len;

	memset(&groups, 0, sizeof(groups));
	for (size_t k = 0; k < 3; k++) {
		t[k] = agg_table_new(p);
		assert_non_null(t[k]);
	}
	for (size_t i = 0; i < n; i++)
		add_row(t[i % 3], rows[i]);
	for (size_t k = 1; k < 3; k++) {
		spill_groups(t[k], &groups);
		for (size_t i = 0; i < agg_table_pair_slots(t[k]); i++)
			if (agg_table_pair_at(t[k], i, &hash, &pair, &len))
				assert_int_equal(
				    agg_table_add_pair(t[0], pair, len), 0);
		agg_table_free(t[k]);
	}
	merge_groups(t[0], &groups);
	records_release(&groups);
	assert_int_equal(agg_table_count_own_pairs(t[0]), 0);
	return t[0];
}

static struct agg_table *spilled(const struct agg_plan *p, const row_t *rows,
				 size_t n)
{
	struct agg_table *w = agg_table_new(p), *final = agg_table_new(p);
	struct records groups, parts[4];

	assert_non_null(w);
	assert_non_null(final);
	memset(&groups, 0, sizeof(groups));
	memset(parts, 0, sizeof(parts));
	for (size_t i = 0; i < n; i++) {
		add_row(w, rows[i]);
		if (i % 2 == 1) {
			spill_groups(w, &groups);
			spill_pairs(w, parts, 4);
		}
	}
	spill_groups(w, &groups);
	spill_pairs(w, parts, 4);
	agg_table_free(w);
	merge_groups(final, &groups);
	count_partitions(final, p, parts, 4);
	records_release(&groups);
	for (size_t k = 0; k < 4; k++)
		records_release(&parts[k]);
	return final;
}

/* The CSV of the view: its header, then the shown groups in order. */
static char *render_view(const struct agg_plan *p, const struct agg_table *t)
{
	const struct agg_group **shown;
	struct render_plan rp;
	struct schema out;
	struct buf recs = BUF_INIT, csv = BUF_INIT;
	size_t n;

	assert_int_equal(agg_plan_output_schema(p, &out), 0);
	assert_int_equal(render_plan_init_keep_all(&rp, &out), 0);
	assert_int_equal(agg_table_shown_sorted(t, &shown, &n), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(agg_group_output(t, shown[i], &recs), 0);
	assert_int_equal(buf_append(&csv, rp.header.data, rp.header.len), 0);
	assert_int_equal(
	    render_block(&rp, recs.data, recs.len, (uint32_t)n, &csv, NULL), 0);
	assert_int_equal(buf_append(&csv, "", 1), 0);
	free(shown);
	buf_release(&recs);
	render_plan_release(&rp);
	schema_release(&out);
	return (char *)csv.data;
}

/*
 * The view's CSV for rows under view_json (and the rows filter text, if
 * any), the same whichever way it is computed.
 */
static void expect_view(const char *view_json, const char *filter_text,
			const row_t *rows, size_t n, const char *want)
{
	struct agreement agr = parse_view(view_json);
	struct filter *f = NULL;
	struct agg_plan plan;
	struct perr err;

	if (filter_text &&
	    filter_compile(filter_text, &schema, LEVEL_MAX, &f, &err))
		fail_msg("filter: %s", err.msg);
	if (agg_plan_init(&plan, &schema, &agr.datasets[0].views[0], f, &err))
		fail_msg("plan: %s", err.msg);
	for (int m = 0; m < NMODES; m++) {
		struct agg_table *t = m == ONE_TABLE ? one_table(&plan, rows, n)
				      : m == THREE_TABLES
					  ? three_tables(&plan, rows, n)
					  : spilled(&plan, rows, n);
		char *got = render_view(&plan, t);

		if (strcmp(got, want))
			fail_msg("%s, %s:\n--- got\n%s--- want\n%s", view_json,
				 mode_names[m], got, want);
		free(got);
		agg_table_free(t);
	}
	agg_plan_release(&plan);
	filter_free(f);
	agreement_release(&agr);
}

#define EXPECT(view, filter, rows, want)                                       \
	expect_view(view, filter, rows, ARRAY_SIZE(rows), want)

/* ---- the cases ---- */

/* district, age, day, seen, cost, patient, name, qty */

static void test_measures_with_nulls(void **state)
{
	static const row_t rows[] = {
	    {"A", "", "", "", "1.5", "p1", "", ""},
	    {"A", "", "", "", "", "p2", "", ""},
	    {"A", "", "", "", "2.25", "p1", "", ""},
	    {"B", "", "", "", "", "", "", ""},
	    {"B", "", "", "", "", "p3", "", ""},
	    {"", "", "", "", "-1", "p4", "", ""},
	    {"", "", "", "", "-2", "p4", "", ""},
	};

	(void)state;
	EXPECT("{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	       "[\"count\",\"count_distinct:patient\",\"sum:cost\","
	       "\"avg:cost\",\"min:cost\",\"max:cost\"],\"min_group\":2}",
	       NULL, rows,
	       "district,count,count_distinct_patient,sum_cost,avg_cost,"
	       "min_cost,max_cost\n"
	       ",2,1,-3,-1.5,-2,-1\n"
	       "A,3,2,3.75,1.875,1.5,2.25\n"
	       "B,2,1,,,,\n");
}

static void test_float_traps(void **state)
{
	static const row_t rows[] = {
	    {"a", "", "", "", "0.1", "", "", ""},
	    {"a", "", "", "", "0.2", "", "", ""},
	    {"b", "", "", "", "0.1", "", "", ""},
	    {"b", "", "", "", "0.2", "", "", ""},
	    {"b", "", "", "", "0.3", "", "", ""},
	    {"c", "", "", "", "0.000001", "", "", ""},
	    {"c", "", "", "", "0", "", "", ""},
	    {"d", "", "", "", "-0.000001", "", "", ""},
	    {"d", "", "", "", "0.000", "", "", ""},
	    {"e", "", "", "", "1", "", "", ""},
	    {"e", "", "", "", "1", "", "", ""},
	    {"e", "", "", "", "0", "", "", ""},
	    {"f", "", "", "", "-1", "", "", ""},
	    {"f", "", "", "", "-1", "", "", ""},
	    {"f", "", "", "", "0", "", "", ""},
	    {"g", "", "", "", "7", "", "", ""},
	    {"g", "", "", "", "9007199254740993", "", "", ""},
	};

	(void)state;
	/* g: 7 + 9007199254740993 (2^53 + 1, which a double rounds) */
	EXPECT("{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	       "[\"sum:cost\",\"avg:cost\"],\"min_group\":2}",
	       NULL, rows,
	       "district,sum_cost,avg_cost\n"
	       "a,0.3,0.15\n"
	       "b,0.6,0.2\n"
	       "c,0.000001,0.000001\n"
	       "d,-0.000001,-0.000001\n"
	       "e,2,0.666667\n"
	       "f,-2,-0.666667\n"
	       "g,9007199254741000,4503599627370500\n");
}

static void test_huge_and_negative_sums(void **state)
{
	static const row_t rows[] = {
	    {"x", "", "", "", "99999999999999999999999999999999999999.99", "",
	     "", "-3"},
	    {"x", "", "", "", "99999999999999999999999999999999999999.99", "",
	     "", "-4"},
	    {"x", "", "", "", "-0.98", "", "", "0007"},
	};

	(void)state;
	EXPECT("{\"name\":\"v\",\"group_by\":[],\"measures\":"
	       "[\"sum:cost\",\"avg:cost\",\"sum:qty\",\"avg:qty\","
	       "\"min:qty\",\"max:qty\"],\"min_group\":3}",
	       NULL, rows,
	       "sum_cost,avg_cost,sum_qty,avg_qty,min_qty,max_qty\n"
	       "199999999999999999999999999999999999999,"
	       "66666666666666666666666666666666666666.333333,0,0,-4,7\n");
}

/* Sums and averages longer than any scratch buffer starts (ASan sees a
 * text read after its buffer moved). */
static void test_long_numbers(void **state)
{
	char big[400], nines[400], want[1024];
	row_t rows[] = {
	    {"x", "", "", "", big, "", "", ""},
	    {"x", "", "", "", big, "", "", ""},
	};

	(void)state;
	/* big = 10^300 - 0.5; twice that is 2 * 10^300 - 1 */
	memset(nines, '9', 300);
	nines[300] = '\0';
	snprintf(big, sizeof(big), "%s.5", nines);
	snprintf(want, sizeof(want), "sum_cost,avg_cost\n1%s,%s\n", nines, big);
	expect_view("{\"name\":\"v\",\"group_by\":[],\"measures\":"
		    "[\"sum:cost\",\"avg:cost\"],\"min_group\":2}",
		    NULL, (const row_t *)rows, 2, want);
}

static void test_all_null_and_lone_null(void **state)
{
	static const row_t rows[] = {
	    {"x", "", "", "", "", "", "", ""},
	    {"y", "", "", "", "", "", "", ""},
	};

	(void)state;
	/* one column, NULL: the record is "" */
	EXPECT("{\"name\":\"v\",\"group_by\":[],\"measures\":[\"sum:cost\"],"
	       "\"min_group\":2}",
	       NULL, rows, "sum_cost\n\"\"\n");
	EXPECT("{\"name\":\"v\",\"group_by\":[],\"measures\":[\"max:name\","
	       "\"count_distinct:name\",\"count\"],\"min_group\":2}",
	       NULL, rows, "max_name,count_distinct_name,count\n,0,2\n");
}

static void test_empty_groups(void **state)
{
	static const row_t none[1];
	static const row_t one[] = {{"x", "", "", "", "1", "", "", ""}};

	(void)state;
	/* no rows: header only, with or without keys */
	expect_view("{\"name\":\"v\",\"group_by\":[],\"measures\":[\"count\"]}",
		    NULL, none, 0, "count\n");
	expect_view("{\"name\":\"v\",\"group_by\":[\"district\"],"
		    "\"measures\":[\"count\"]}",
		    NULL, none, 0, "district,count\n");
	/* a total of fewer rows than min_group (default 10) */
	EXPECT("{\"name\":\"v\",\"group_by\":[],\"measures\":[\"count\"]}",
	       NULL, one, "count\n");
	/* a filter that passes nothing */
	EXPECT("{\"name\":\"v\",\"group_by\":[],\"measures\":[\"count\"],"
	       "\"min_group\":2}",
	       "cost > 5", one, "count\n");
}

static void test_suppression(void **state)
{
	static const row_t rows[] = {
	    /* a: 3 rows, 3 patients: shown */
	    {"a", "", "", "", "", "p1", "", ""},
	    {"a", "", "", "", "", "p2", "", ""},
	    {"a", "", "", "", "", "p3", "", ""},
	    /* b: 2 rows: hidden by rows */
	    {"b", "", "", "", "", "p1", "", ""},
	    {"b", "", "", "", "", "p2", "", ""},
	    /* c: 5 rows by 2 patients: hidden by entities */
	    {"c", "", "", "", "", "p1", "", ""},
	    {"c", "", "", "", "", "p1", "", ""},
	    {"c", "", "", "", "", "p1", "", ""},
	    {"c", "", "", "", "", "p2", "", ""},
	    {"c", "", "", "", "", "p2", "", ""},
	    /* d: 3 rows, 2 patients and a NULL: hidden, NULL is no entity */
	    {"d", "", "", "", "", "p1", "", ""},
	    {"d", "", "", "", "", "p2", "", ""},
	    {"d", "", "", "", "", "", "", ""},
	    /* e: 4 rows, 3 patients: shown */
	    {"e", "", "", "", "", "p9", "", ""},
	    {"e", "", "", "", "", "p8", "", ""},
	    {"e", "", "", "", "", "p7", "", ""},
	    {"e", "", "", "", "", "p9", "", ""},
	};

	(void)state;
	EXPECT("{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	       "[\"count\"],\"min_group\":3,\"entity\":\"patient\"}",
	       NULL, rows, "district,count\na,3\ne,4\n");
	/* without an entity only rows count */
	EXPECT("{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	       "[\"count\"],\"min_group\":3}",
	       NULL, rows, "district,count\na,3\nc,5\nd,3\ne,4\n");
	/* min_group exactly met, and just missed */
	EXPECT("{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	       "[\"count\"],\"min_group\":5}",
	       NULL, rows, "district,count\nc,5\n");
	EXPECT("{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	       "[\"count\"],\"min_group\":6}",
	       NULL, rows, "district,count\n");
	/* the entity counted apart from a count_distinct of it */
	EXPECT("{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	       "[\"count_distinct:patient\"],\"min_group\":3,"
	       "\"entity\":\"patient\"}",
	       NULL, rows, "district,count_distinct_patient\na,3\ne,3\n");
}

static void test_filter_applies_first(void **state)
{
	static const row_t rows[] = {
	    {"a", "17", "", "", "", "p1", "", ""},
	    {"a", "18", "", "", "", "p2", "", ""},
	    {"a", "40", "", "", "", "p3", "", ""},
	    {"b", "18", "", "", "", "p1", "", ""},
	    {"b", "19", "", "", "", "p1", "", ""},
	    {"b", "", "", "", "", "p1", "", ""},
	};

	(void)state;
	EXPECT("{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	       "[\"count\",\"min:age\"],\"min_group\":2}",
	       "age >= 18", rows, "district,count,min_age\na,2,18\nb,2,18\n");
	EXPECT("{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	       "[\"count\"],\"min_group\":2,\"entity\":\"patient\"}",
	       "age >= 18", rows, "district,count\na,2\n");
}

static void test_number_keys(void **state)
{
	static const row_t rows[] = {
	    {"", "10", "", "", "1.50", "", "", ""},
	    {"", "9", "", "", "1.5", "", "", ""},
	    {"", "-1", "", "", "-0.5", "", "", ""},
	    {"", "07", "", "", "-0.50", "", "", ""},
	    {"", "7", "", "", "", "", "", ""},
	    {"", "", "", "", "10", "", "", ""},
	    {"", "-10", "", "", "9.99", "", "", ""},
	    {"", "-0", "", "", "-0", "", "", ""},
	};

	(void)state;
	/* numbers group by value and sort as numbers, NULL first */
	EXPECT("{\"name\":\"v\",\"group_by\":[\"age\"],\"measures\":"
	       "[\"count\"],\"min_group\":2}",
	       NULL, rows, "age,count\n7,2\n");
	EXPECT("{\"name\":\"v\",\"group_by\":[\"age\"],\"measures\":"
	       "[\"count\",\"sum:cost\"],\"min_group\":2,\"entity\":\"qty\"}",
	       NULL, rows, "age,count,sum_cost\n");
	EXPECT("{\"name\":\"v\",\"group_by\":[\"cost\"],\"measures\":"
	       "[\"count\",\"count_distinct:age\"],\"min_group\":2}",
	       NULL, rows,
	       "cost,count,count_distinct_age\n-0.5,2,2\n1.5,2,2\n");
}

static void test_order(void **state)
{
	static const row_t rows[] = {
	    {"中", "10", "", "2024-01-01T02:00:00Z", "", "", "", ""},
	    {"中", "10", "", "2024-01-01T02:00:00Z", "", "", "", ""},
	    {"a", "9", "", "2024-01-01T09:00:00+08:00", "", "", "", ""},
	    {"a", "9", "", "2024-01-01T09:00:00+08:00", "", "", "", ""},
	    {"B", "-1", "", "2024-01-01T01:30:00", "", "", "", ""},
	    {"B", "-1", "", "2024-01-01T01:30:00", "", "", "", ""},
	    {"é", "", "", "", "", "", "", ""},
	    {"é", "", "", "", "", "", "", ""},
	    {"", "100", "", "2024-01-01T01:00:00.5Z", "", "", "", ""},
	    {"", "100", "", "2024-01-01T01:00:00.5Z", "", "", "", ""},
	    {"B", "-1", "", "2024-01-01T01:00:00Z", "", "", "", ""},
	    {"B", "-1", "", "2024-01-01T01:00:00Z", "", "", "", ""},
	};

	(void)state;
	/* strings bytewise: NULL, B, a, é, 中 */
	EXPECT("{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	       "[\"count\"],\"min_group\":2}",
	       NULL, rows, "district,count\n,2\nB,4\na,2\né,2\n中,2\n");
	/* numbers by value */
	EXPECT("{\"name\":\"v\",\"group_by\":[\"age\"],\"measures\":"
	       "[\"count\"],\"min_group\":2}",
	       NULL, rows, "age,count\n,2\n-1,4\n9,2\n10,2\n100,2\n");
	/* datetimes by instant; equal instants by their text */
	EXPECT("{\"name\":\"v\",\"group_by\":[\"seen\"],\"measures\":"
	       "[\"count\"],\"min_group\":2}",
	       NULL, rows,
	       "seen,count\n,2\n2024-01-01T01:00:00Z,2\n"
	       "2024-01-01T09:00:00+08:00,2\n2024-01-01T01:00:00.5Z,2\n"
	       "2024-01-01T01:30:00,2\n2024-01-01T02:00:00Z,2\n");
	/* keys compare left to right */
	EXPECT("{\"name\":\"v\",\"group_by\":[\"district\",\"age\"],"
	       "\"measures\":[\"count\"],\"min_group\":2}",
	       NULL, rows,
	       "district,age,count\n,100,2\nB,-1,4\na,9,2\né,,2\n中,10,2\n");
}

static void test_generalising_rules(void **state)
{
	static const row_t rows[] = {
	    {"", "-3", "2024-01-31", "2024-05-01T23:00:00-05:00", "", "",
	     "张三", ""},
	    {"", "-10", "2024-01-02", "2024-05-01T10:00:00Z", "", "", "张四",
	     ""},
	    {"", "7", "2024-02-29", "2024-05-02T00:00:00Z", "", "", "李四", ""},
	    {"", "0", "2023-12-31", "2024-05-02T00:00:01Z", "", "", "李五", ""},
	    {"", "15", "2024-02-01", "", "", "", "李", ""},
	    {"", "19", "", "", "", "", "", ""},
	};

	(void)state;
	EXPECT("{\"name\":\"v\",\"group_by\":[\"age:bucket:10\"],"
	       "\"measures\":[\"count\",\"min:age\",\"max:age\"],"
	       "\"min_group\":2}",
	       NULL, rows,
	       "age,count,min_age,max_age\n-10,2,-10,-3\n0,2,0,7\n"
	       "10,2,15,19\n");
	EXPECT("{\"name\":\"v\",\"group_by\":[\"day:date:month\"],"
	       "\"measures\":[\"count\",\"min:day\",\"max:day\"],"
	       "\"min_group\":2}",
	       NULL, rows,
	       "day,count,min_day,max_day\n2024-01,2,2024-01-02,2024-01-31\n"
	       "2024-02,2,2024-02-01,2024-02-29\n");
	EXPECT("{\"name\":\"v\",\"group_by\":[{\"column\":\"day\","
	       "\"rule\":\"date:year\"}],\"measures\":[\"count\"],"
	       "\"min_group\":2}",
	       NULL, rows, "day,count\n2024,4\n");
	/* date:day of a datetime is the day as written, not in UTC */
	EXPECT("{\"name\":\"v\",\"group_by\":[\"seen:date:day\"],"
	       "\"measures\":[\"count\",\"min:seen\",\"max:seen\"],"
	       "\"min_group\":2}",
	       NULL, rows,
	       "seen,count,min_seen,max_seen\n,2,,\n"
	       "2024-05-01,2,2024-05-01T10:00:00Z,2024-05-01T23:00:00-05:00\n"
	       "2024-05-02,2,2024-05-02T00:00:00Z,2024-05-02T00:00:01Z\n");
	/* CJK prefixes: one code point, UTF-8 order */
	EXPECT("{\"name\":\"v\",\"group_by\":[\"name:prefix:1\"],"
	       "\"measures\":[\"count\",\"min:name\",\"max:name\"],"
	       "\"min_group\":2}",
	       NULL, rows,
	       "name,count,min_name,max_name\n张,2,张三,张四\n"
	       "李,3,李,李四\n");
}

static void test_quoting(void **state)
{
	static const row_t rows[] = {
	    {"Lin,an", "", "", "", "", "", "say \"hi\"", ""},
	    {"Lin,an", "", "", "", "", "", "a\nb", ""},
	    {"x\"y", "", "", "", "", "", "", ""},
	    {"x\"y", "", "", "", "", "", "", ""},
	};

	(void)state;
	EXPECT("{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	       "[\"count\",\"max:name\",\"min:name\"],\"min_group\":2}",
	       NULL, rows,
	       "district,count,max_name,min_name\n"
	       "\"Lin,an\",2,\"say \"\"hi\"\"\",\"a\nb\"\n"
	       "\"x\"\"y\",2,,\n");
}

static void test_count_distinct_by_value(void **state)
{
	static const row_t rows[] = {
	    {"a", "7", "", "", "1.0", "P", "", ""},
	    {"a", "07", "", "", "1", "p", "", ""},
	    {"a", "-0", "", "", "", "P", "", ""},
	    {"a", "0", "", "", "-0.00", "", "", ""},
	};

	(void)state;
	EXPECT("{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	       "[\"count_distinct:age\",\"count_distinct:cost\","
	       "\"count_distinct:patient\"],\"min_group\":2}",
	       NULL, rows,
	       "district,count_distinct_age,count_distinct_cost,"
	       "count_distinct_patient\na,2,2,2\n");
}

/* ---- beyond the views' bytes ---- */

static void test_memory_is_counted(void **state)
{
	struct agreement agr = parse_view(
	    "{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	    "[\"max:name\",\"count_distinct:patient\"],\"min_group\":2}");
	struct agg_plan plan;
	struct agg_table *t;
	char district[16], name[64];

	(void)state;
	plan_of_only_view(&agr, &plan);
	t = agg_table_new(&plan);
	assert_non_null(t);
	assert_int_equal(agg_table_group_bytes(t), 0);
	assert_int_equal(agg_table_pair_bytes(t), 0);
	for (int i = 0; i < 5000; i++) {
		row_t row = {district, "", "", "", "", district, name, ""};

		snprintf(district, sizeof(district), "d%d", i);
		snprintf(name, sizeof(name), "%050d", i);
		add_row(t, row);
	}
	assert_int_equal(agg_table_ngroups(t), 5000);
	assert_int_equal(agg_table_npairs(t), 5000);
	/* at least the maxima and the keys are counted */
	assert_true(agg_table_group_bytes(t) > 5000 * (50 + 5));
	assert_true(agg_table_pair_bytes(t) > 5000 * 5);
	agg_table_clear_groups(t);
	agg_table_clear_pairs(t);
	assert_int_equal(agg_table_group_bytes(t), 0);
	assert_int_equal(agg_table_pair_bytes(t), 0);
	agg_table_free(t);
	agg_plan_release(&plan);
	agreement_release(&agr);
}

/* The one group of t, serialised into rec. */
static void serialize_only_group(struct agg_table *t, struct buf *rec)
{
	uint64_t hash;

	for (size_t i = 0; i < agg_table_group_slots(t); i++) {
		const struct agg_group *g = agg_table_group_at(t, i, &hash);

		if (g)
			assert_int_equal(agg_group_serialize(t, g, rec), 0);
	}
}

/*
 * A view's one group, spilled: rec holds it as t serialised it, to be
 * merged (or refused) into u, an empty table of the same plan.
 */
struct spilled {
	struct agreement agr;
	struct agg_plan plan;
	struct agg_table *t, *u;
	struct buf rec;
};

static void spill_one_group(struct spilled *s, const char *view_json,
			    const row_t row, int times)
{
	s->agr = parse_view(view_json);
	plan_of_only_view(&s->agr, &s->plan);
	s->t = agg_table_new(&s->plan);
	s->u = agg_table_new(&s->plan);
	while (times--)
		add_row(s->t, row);
	s->rec = (struct buf)BUF_INIT;
	serialize_only_group(s->t, &s->rec);
}

static void spilled_release(struct spilled *s)
{
	buf_release(&s->rec);
	agg_table_free(s->t);
	agg_table_free(s->u);
	agg_plan_release(&s->plan);
	agreement_release(&s->agr);
}

/* Merging rec into s's empty table, as a spill is read back. */
static int merge_back(struct spilled *s, size_t len)
{
	return agg_table_merge_group(s->u, s->rec.data, len);
}

static void test_malformed_records(void **state)
{
	row_t row = {"a", "", "", "", "12.5", "p", "n", ""};
	struct spilled s;

	(void)state;
	spill_one_group(
	    &s,
	    "{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	    "[\"sum:cost\",\"min:name\",\"count_distinct:patient\"]}",
	    row, 1);
	/* every truncation is refused, and so is a byte too many */
	for (size_t len = 0; len < s.rec.len; len++)
		assert_int_equal(merge_back(&s, len), -EIO);
	assert_int_equal(buf_append(&s.rec, "x", 1), 0);
	assert_int_equal(merge_back(&s, s.rec.len), -EIO);
	/* a pair naming a distinct spec the plan lacks */
	assert_int_equal(
	    agg_table_count_pair(s.u, (const uint8_t *)"\x05\x00p", 3), -EIO);
	assert_int_equal(agg_table_count_pair(s.u, (const uint8_t *)"", 0),
			 -EIO);
	spilled_release(&s);
}

/*
 * A spilled sum is its last bytes here: a small one ends with its scale,
 * one gone to text with its digits.  A scale no sum keeps (it would make
 * the sum's text outgrow its buffer, and take billions of steps to line
 * up with another) and text that is not a number are refused.
 */
static void test_malformed_sums(void **state)
{
	static const char view[] =
	    "{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	    "[\"sum:cost\"]}";
	row_t small = {"a", "", "", "", "12.5", "", "", ""};
	row_t huge = {"a", "", "", "", "99999999999999999999999999999999999999",
		      "",  "", ""};
	struct spilled s;

	(void)state;
	spill_one_group(&s, view, small, 1);
	assert_int_equal(s.rec.data[s.rec.len - 1], 1);
	s.rec.data[s.rec.len - 1] = DECIMAL_SUM_SCALE_MAX;
	assert_int_equal(merge_back(&s, s.rec.len), 0);
	s.rec.data[s.rec.len - 1] = DECIMAL_SUM_SCALE_MAX + 1;
	assert_int_equal(merge_back(&s, s.rec.len), -EIO);
	/* UINT32_MAX, which was let through once */
	s.rec.len--;
	assert_int_equal(buf_append(&s.rec, "\xff\xff\xff\xff\x0f", 5), 0);
	assert_int_equal(merge_back(&s, s.rec.len), -EIO);
	spilled_release(&s);

	/* Twice a 38-digit value: a sum only text can hold. */
	spill_one_group(&s, view, huge, 2);
	assert_int_equal(s.rec.data[s.rec.len - 1], '8');
	assert_int_equal(merge_back(&s, s.rec.len), 0);
	s.rec.data[s.rec.len - 1] = 'x';
	assert_int_equal(merge_back(&s, s.rec.len), -EIO);
	spilled_release(&s);
}

static void test_plan(void **state)
{
	struct agreement agr = parse_view(
	    "{\"name\":\"v\",\"group_by\":[\"district\",\"day:date:year\","
	    "\"cost:bucket:5\"],\"measures\":[\"count\",\"sum:qty\","
	    "\"avg:qty\",\"min:day\",\"count_distinct:patient\"],"
	    "\"entity\":\"patient\"}");
	static const char *const names[] = {
	    "district", "day",	   "cost",    "count",
	    "sum_qty",	"avg_qty", "min_day", "count_distinct_patient"};
	static const enum col_type types[] = {COL_STRING, COL_INT, COL_DECIMAL,
					      COL_INT,	  COL_INT, COL_DECIMAL,
					      COL_DATE,	  COL_INT};
	struct column one = {"district", COL_STRING, 1};
	struct schema lacking = {1, &one};
	struct agg_plan plan;
	struct schema out;
	struct perr err;

	(void)state;
	plan_of_only_view(&agr, &plan);
	/* sum and avg of one column share a cell; the entity and the
	 * count_distinct of the same column share a spec */
	assert_int_equal(plan.ncells, 2);
	assert_int_equal(plan.ndistinct, 1);
	assert_int_equal(plan.entity, 0);
	assert_int_equal(plan.min_group, 10);
	assert_int_equal(agg_plan_output_schema(&plan, &out), 0);
	assert_int_equal(out.ncols, ARRAY_SIZE(names));
	for (size_t i = 0; i < out.ncols; i++) {
		assert_string_equal(out.cols[i].name, names[i]);
		assert_int_equal(out.cols[i].type, types[i]);
	}
	schema_release(&out);
	agg_plan_release(&plan);
	assert_int_equal(agg_plan_init(&plan, &lacking,
				       &agr.datasets[0].views[0], NULL, &err),
			 -EINVAL);
	assert_string_equal(err.msg, "$.group_by[1]: no such column 'day'");
	agreement_release(&agr);
}

static void test_fingerprint(void **state)
{
	static const char *const views[] = {
	    "{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	    "[\"count\"]}",
	    "{\"name\":\"v\",\"group_by\":[\"district:prefix:1\"],"
	    "\"measures\":[\"count\"]}",
	    "{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	    "[\"count\",\"sum:cost\"]}",
	    "{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	    "[\"count\"],\"min_group\":11}",
	    "{\"name\":\"v\",\"group_by\":[\"district\"],\"measures\":"
	    "[\"count\"],\"entity\":\"patient\"}",
	};
	struct buf a = BUF_INIT, b = BUF_INIT;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(views); i++) {
		struct agreement x = parse_view(views[i]);

		assert_int_equal(
		    agg_fingerprint(&x.datasets[0].views[0], NULL, &a), 0);
		for (size_t j = 0; j < ARRAY_SIZE(views); j++) {
			struct agreement y = parse_view(views[j]);

			assert_int_equal(
			    agg_fingerprint(&y.datasets[0].views[0], NULL, &b),
			    0);
			assert_int_equal(a.len == b.len &&
					     !memcmp(a.data, b.data, a.len),
					 i == j);
			agreement_release(&y);
		}
		/* the rows filter is part of it */
		assert_int_equal(
		    agg_fingerprint(&x.datasets[0].views[0], "age > 1", &b), 0);
		assert_false(a.len == b.len && !memcmp(a.data, b.data, a.len));
		agreement_release(&x);
	}
	buf_release(&a);
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_measures_with_nulls),
	    cmocka_unit_test(test_float_traps),
	    cmocka_unit_test(test_huge_and_negative_sums),
	    cmocka_unit_test(test_long_numbers),
	    cmocka_unit_test(test_all_null_and_lone_null),
	    cmocka_unit_test(test_empty_groups),
	    cmocka_unit_test(test_suppression),
	    cmocka_unit_test(test_filter_applies_first),
	    cmocka_unit_test(test_number_keys),
	    cmocka_unit_test(test_order),
	    cmocka_unit_test(test_generalising_rules),
	    cmocka_unit_test(test_quoting),
	    cmocka_unit_test(test_count_distinct_by_value),
	    cmocka_unit_test(test_memory_is_counted),
	    cmocka_unit_test(test_malformed_records),
	    cmocka_unit_test(test_malformed_sums),
	    cmocka_unit_test(test_plan),
	    cmocka_unit_test(test_fingerprint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
