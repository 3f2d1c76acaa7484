/*
 * Unit tests of policy/render: every column rule of SPEC on plain, quoted,
 * multi-byte and NULL values, quoting decided on the value written, the
 * header, column order and absence, the one-column NULL record, the rules
 * this build refuses, and blocks that do not hold what they claim.
 *
 * Records are built with rowfmt_append from csv_field arrays, as ingest
 * does; a field's needs_quote is set from its bytes, as the CSV reader does.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agreement.h"
#include "buf.h"
#include "render.h"
#include "rowfmt.h"
#include "schema.h"

/* A dataset column for a test: name and type. */
/* The pseudonym key every plan here is made with: bytes 0, 1, .. 31. */
static const uint8_t test_key[32] = {0,	 1,  2,	 3,  4,	 5,  6,	 7,  8,	 9,  10,
				     11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
				     22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

struct tcol {
	const char *name;
	enum col_type type;
};

/* What a test renders: a schema and the agreement entry that covers it. */
struct fixture {
	struct schema schema;
	struct agreement_dataset ds;
};

static bool text_needs_quote(const char *s)
{
	return strpbrk(s, ",\"\r\n") != NULL;
}

/*
 * Build schema cols[0..ncols) and an agreement entry naming rules[i] for
 * column i; a NULL rule leaves the column unnamed.  The entry lists its
 * columns in reverse so that the output order can only come from the
 * schema.
 */
static void fixture_init(struct fixture *fx, const struct tcol *cols,
			 size_t ncols, const char *const *rules)
{
	size_t i;

	memset(fx, 0, sizeof(*fx));
	fx->schema.ncols = ncols;
	fx->schema.cols = calloc(ncols ? ncols : 1, sizeof(*fx->schema.cols));
	fx->ds.columns = calloc(ncols ? ncols : 1, sizeof(*fx->ds.columns));
	assert_non_null(fx->schema.cols);
	assert_non_null(fx->ds.columns);
	fx->ds.dataset = strdup("test.ds");
	assert_non_null(fx->ds.dataset);
	fx->ds.records = true;
	for (i = 0; i < ncols; i++) {
		fx->schema.cols[i].name = strdup(cols[i].name);
		assert_non_null(fx->schema.cols[i].name);
		fx->schema.cols[i].type = cols[i].type;
		fx->schema.cols[i].level = 1;
	}
	for (i = ncols; i-- > 0;) {
		struct column_rule *cr;
		struct perr err = {{0}};

		if (!rules[i])
			continue;
		cr = &fx->ds.columns[fx->ds.ncolumns++];
		cr->column = strdup(cols[i].name);
		assert_non_null(cr->column);
		assert_int_equal(rule_parse(rules[i], &cr->rule, &err), 0);
	}
}

static void fixture_release(struct fixture *fx)
{
	size_t i;

	for (i = 0; i < fx->ds.ncolumns; i++) {
		free(fx->ds.columns[i].column);
		rule_release(&fx->ds.columns[i].rule);
	}
	free(fx->ds.columns);
	free(fx->ds.dataset);
	free(fx->ds.rows);
	schema_release(&fx->schema);
}

/* Append one record of n values (NULL is a NULL field) to block. */
static void encode_row(struct buf *block, const char *const *vals, size_t n)
{
	struct csv_field fields[80];
	size_t i;

	assert_true(n <= sizeof(fields) / sizeof(fields[0]));
	for (i = 0; i < n; i++) {
		fields[i].data = vals[i] ? vals[i] : "";
		fields[i].len = vals[i] ? strlen(vals[i]) : 0;
		fields[i].needs_quote = vals[i] && text_needs_quote(vals[i]);
	}
	assert_int_equal(rowfmt_append(block, fields, n), 0);
}

/*
 * A copy of data[0..len) in an allocation of exactly len bytes, so that an
 * ASan build catches any read past the end of a block.
 */
static uint8_t *exact_copy(const uint8_t *data, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	if (len)
		memcpy(p, data, len);
	return p;
}

/* NUL-terminated copy of b, for assert_string_equal. */
static char *buf_text(const struct buf *b)
{
	char *s = malloc(b->len + 1);

	assert_non_null(s);
	if (b->len)
		memcpy(s, b->data, b->len);
	s[b->len] = '\0';
	return s;
}

/*
 * Render nrows records of cells (row-major, ncols per row) under rules and
 * check the whole output, header included, against want.
 */
static void expect_csv(const struct tcol *cols, size_t ncols,
		       const char *const *rules, const char *const *cells,
		       uint32_t nrows, const char *want)
{
	struct fixture fx;
	struct render_plan plan;
	struct buf block = BUF_INIT, out = BUF_INIT;
	struct perr err = {{0}};
	uint8_t *exact;
	char *got;
	uint32_t r;

	fixture_init(&fx, cols, ncols, rules);
	assert_int_equal(
	    render_plan_init(&plan, &fx.schema, &fx.ds, test_key, &err), 0);
	for (r = 0; r < nrows; r++)
		encode_row(&block, cells + (size_t)r * ncols, ncols);
	assert_int_equal(buf_append(&out, plan.header.data, plan.header.len),
			 0);
	exact = exact_copy(block.data, block.len);
	assert_int_equal(
	    render_block(&plan, exact, block.len, nrows, &out, NULL), 0);
	free(exact);
	got = buf_text(&out);
	assert_string_equal(got, want);
	free(got);
	buf_release(&out);
	buf_release(&block);
	render_plan_release(&plan);
	fixture_release(&fx);
}

/*
 * The field that rule writes for value (NULL: a NULL field) in a column of
 * type.  A kept second column follows so that a NULL output is an empty
 * field, not the one-column "".  Checked twice: as the whole dataset, and
 * with a third column dropped, so that a renderer with a shortcut for
 * plans that keep everything is held to the same output on both paths.
 */
static void expect_field(const char *rule, enum col_type type,
			 const char *value, const char *want)
{
	const struct tcol cols[] = {
	    {"c", type}, {"k", COL_STRING}, {"z", COL_STRING}};
	const char *rules[] = {rule, "keep", "drop"};
	const char *cells[] = {value, "x", "dropped,\"value\""};
	char expected[512];

	snprintf(expected, sizeof(expected), "c,k\n%s,x\n", want);
	expect_csv(cols, 2, rules, cells, 1, expected);
	expect_csv(cols, 3, rules, cells, 1, expected);
}

static void test_keep_writes_value_as_ingested(void **state)
{
	(void)state;
	expect_field("keep", COL_STRING, "Xihu", "Xihu");
	expect_field("keep", COL_STRING, " padded ", " padded ");
	expect_field("keep", COL_STRING, "杭州市", "杭州市");
	expect_field("keep", COL_INT, "-0042", "-0042");
	expect_field("keep", COL_DECIMAL, "1.50", "1.50");
	expect_field("keep", COL_STRING, "O'Brien", "O'Brien");
	/* Around 16 bytes, and well over. */
	expect_field("keep", COL_STRING, "fifteen chars!!", "fifteen chars!!");
	expect_field("keep", COL_STRING, "exactly sixteen!",
		     "exactly sixteen!");
	expect_field("keep", COL_STRING, "seventeen chars!!",
		     "seventeen chars!!");
	expect_field("keep", COL_STRING,
		     "a value of well over sixteen bytes, 杭州市西湖区",
		     "\"a value of well over sixteen bytes, 杭州市西湖区\"");
}

static void test_keep_quotes_only_where_needed(void **state)
{
	(void)state;
	expect_field("keep", COL_STRING, "a,b", "\"a,b\"");
	expect_field("keep", COL_STRING, "say \"hi\"", "\"say \"\"hi\"\"\"");
	expect_field("keep", COL_STRING, "\"", "\"\"\"\"");
	expect_field("keep", COL_STRING, "\"\"", "\"\"\"\"\"\"");
	expect_field("keep", COL_STRING, "line\nbreak", "\"line\nbreak\"");
	expect_field("keep", COL_STRING, "cr\ronly", "\"cr\ronly\"");
	expect_field("keep", COL_STRING, "crlf\r\nend", "\"crlf\r\nend\"");
	/* Spaces, tabs, semicolons and single quotes need no quoting. */
	expect_field("keep", COL_STRING, "a b\tc;d'e", "a b\tc;d'e");
}

static void test_null_rule_writes_empty(void **state)
{
	(void)state;
	expect_field("null", COL_STRING, "secret", "");
	expect_field("null", COL_STRING, "a,b", "");
	expect_field("null", COL_INT, "42", "");
}

static void test_redact_writes_three_stars(void **state)
{
	(void)state;
	expect_field("redact", COL_STRING, "x", "***");
	expect_field("redact", COL_STRING, "a much longer value", "***");
	expect_field("redact", COL_STRING, "a,\"b\"\n", "***");
	expect_field("redact", COL_DATE, "2024-03-05", "***");
	expect_field("redact", COL_STRING, "张三", "***");
}

static void test_mask_first_and_last(void **state)
{
	(void)state;
	expect_field("mask:last4", COL_STRING, "13812345678", "*******5678");
	expect_field("mask:first3", COL_STRING, "13812345678", "138********");
	expect_field("mask:first1", COL_STRING, "ab", "a*");
	expect_field("mask:last1", COL_STRING, "ab", "*b");
	expect_field("mask:first4", COL_STRING, "abcde", "abcd*");
	expect_field("mask:last4", COL_STRING, "abcde", "*bcde");
	expect_field("mask:last4", COL_INT, "0571", "****");
}

static void test_mask_short_value_entirely(void **state)
{
	(void)state;
	/* N characters or fewer: every character becomes a star. */
	expect_field("mask:first4", COL_STRING, "abcd", "****");
	expect_field("mask:last4", COL_STRING, "abcd", "****");
	expect_field("mask:first4", COL_STRING, "abc", "***");
	expect_field("mask:last4", COL_STRING, "a", "*");
	expect_field("mask:first1", COL_STRING, "a", "*");
	expect_field("mask:last1000000", COL_STRING, "short", "*****");
	/* One star per code point, not per byte. */
	expect_field("mask:first3", COL_STRING, "张三丰", "***");
	expect_field("mask:last2", COL_STRING, "😀🎉", "**");
	/* A masked-out comma or quote needs no quoting. */
	expect_field("mask:first3", COL_STRING, "a,b", "***");
	expect_field("mask:last3", COL_STRING, "\"x\"", "***");
}

static void test_mask_counts_code_points(void **state)
{
	(void)state;
	expect_field("mask:first1", COL_STRING, "张三丰", "张**");
	expect_field("mask:last1", COL_STRING, "张三丰", "**丰");
	expect_field("mask:first2", COL_STRING, "张三丰", "张三*");
	/* Four-byte emoji are one character each and never split. */
	expect_field("mask:first2", COL_STRING, "😀🎉👍x", "😀🎉**");
	expect_field("mask:last2", COL_STRING, "😀🎉👍x", "**👍x");
	expect_field("mask:last1", COL_STRING, "x😀", "*😀");
	expect_field("mask:first1", COL_STRING, "😀x", "😀*");
	/* Mixed widths: 1, 2, 3 and 4 bytes. */
	expect_field("mask:first2", COL_STRING, "aé中😀", "aé**");
	expect_field("mask:last2", COL_STRING, "aé中😀", "**中😀");
	/* A combining mark is a code point of its own. */
	expect_field("mask:first1", COL_STRING, "e\xcc\x81x", "e**");
}

static void test_mask_quotes_on_output(void **state)
{
	(void)state;
	/* The kept part holds the comma: quoted. */
	expect_field("mask:first2", COL_STRING, "a,b,c", "\"a,***\"");
	expect_field("mask:last2", COL_STRING, "a,b", "\"*,b\"");
	/* The comma was masked away: not quoted. */
	expect_field("mask:first1", COL_STRING, "a,b", "a**");
	expect_field("mask:last1", COL_STRING, "a,b", "**b");
	expect_field("mask:last2", COL_STRING, "a,bc", "**bc");
	/* Quotes kept are doubled inside the enclosing quotes. */
	expect_field("mask:last1", COL_STRING, "\"x\"", "\"**\"\"\"");
	expect_field("mask:first1", COL_STRING, "\"x\"", "\"\"\"**\"");
	expect_field("mask:first2", COL_STRING, "\"x\"", "\"\"\"x*\"");
	expect_field("mask:last1", COL_STRING, "x\"y", "**y");
	/* Line ends kept: quoted; masked away: not. */
	expect_field("mask:first2", COL_STRING, "a\nb", "\"a\n*\"");
	expect_field("mask:first1", COL_STRING, "a\r\nb", "a***");
	expect_field("mask:first3", COL_STRING, "a\r\nbc", "\"a\r\n**\"");
	expect_field("mask:last1", COL_STRING, "a\rb", "**b");
	/* Multi-byte kept part next to a comma. */
	expect_field("mask:first2", COL_STRING, "张,三", "\"张,*\"");
}

static void test_prefix_keeps_first_code_points(void **state)
{
	(void)state;
	expect_field("prefix:3", COL_STRING, "Hangzhou", "Han");
	expect_field("prefix:1", COL_STRING, "a", "a");
	expect_field("prefix:8", COL_STRING, "Hangzhou", "Hangzhou");
	expect_field("prefix:100", COL_STRING, "ab", "ab");
	expect_field("prefix:2", COL_STRING, "浙江省杭州市", "浙江");
	expect_field("prefix:1", COL_STRING, "😀🎉", "😀");
	expect_field("prefix:3", COL_STRING, "a😀b😀", "a😀b");
	expect_field("prefix:2", COL_STRING, "é中", "é中");
	expect_field("prefix:3", COL_INT, "310105", "310");
	expect_field("prefix:4", COL_DATE, "2024-03-05", "2024");
}

static void test_prefix_quotes_on_output(void **state)
{
	(void)state;
	expect_field("prefix:1", COL_STRING, "a,b", "a");
	expect_field("prefix:2", COL_STRING, "a,b", "\"a,\"");
	expect_field("prefix:3", COL_STRING, "a,b", "\"a,b\"");
	expect_field("prefix:2", COL_STRING, "x\"y", "\"x\"\"\"");
	expect_field("prefix:1", COL_STRING, "x\"y", "x");
	expect_field("prefix:1", COL_STRING, "\"", "\"\"\"\"");
	expect_field("prefix:2", COL_STRING, "a\nb", "\"a\n\"");
	expect_field("prefix:1", COL_STRING, "a\nb", "a");
}

static void test_date_rules(void **state)
{
	(void)state;
	expect_field("date:year", COL_DATE, "2024-03-05", "2024");
	expect_field("date:month", COL_DATE, "2024-03-05", "2024-03");
	expect_field("date:day", COL_DATE, "2024-03-05", "2024-03-05");
	expect_field("date:year", COL_DATETIME, "2024-12-31T23:30:00-05:00",
		     "2024");
	expect_field("date:month", COL_DATETIME, "2024-12-31T23:30:00-05:00",
		     "2024-12");
	/* As written: no conversion to UTC or any other offset. */
	expect_field("date:day", COL_DATETIME, "2024-12-31T23:30:00-05:00",
		     "2024-12-31");
	expect_field("date:day", COL_DATETIME, "2025-01-01T00:30:00+08:00",
		     "2025-01-01");
	expect_field("date:day", COL_DATETIME, "2024-02-29T12:00:00.123456Z",
		     "2024-02-29");
}

static const char *const all_rules[] = {
    "keep",	  "null",	 "redact",     "mask:first1",
    "mask:last1", "mask:first4", "mask:last4", "prefix:1",
    "prefix:3",	  "date:year",	 "date:month", "date:day",
};

static enum col_type type_for_rule(const char *rule)
{
	return strncmp(rule, "date:", 5) == 0 ? COL_DATE : COL_STRING;
}

static void test_null_stays_null_under_every_rule(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(all_rules) / sizeof(all_rules[0]); i++) {
		const struct tcol cols[] = {{"c", type_for_rule(all_rules[i])}};
		const char *rules[] = {all_rules[i]};
		const char *cells[] = {NULL};

		expect_field(all_rules[i], type_for_rule(all_rules[i]), NULL,
			     "");
		/* Alone in its record, the NULL is written "". */
		expect_csv(cols, 1, rules, cells, 1, "c\n\"\"\n");
	}
}

static void test_one_column_null_written_as_empty_quotes(void **state)
{
	const struct tcol one[] = {{"phone", COL_STRING}};
	const char *keep[] = {"keep"};
	const char *nullrule[] = {"null"};
	const char *cells[] = {"123", NULL, "a,b", NULL};
	const struct tcol three[] = {
	    {"a", COL_STRING}, {"phone", COL_STRING}, {"c", COL_STRING}};
	const char *middle_only[] = {"drop", "keep", NULL};
	const char *cells3[] = {"x", NULL, "y", "x", "1", "y"};

	(void)state;
	expect_csv(one, 1, keep, cells, 4, "phone\n123\n\"\"\n\"a,b\"\n\"\"\n");
	/* null on the only column: every record is "". */
	expect_csv(one, 1, nullrule, cells, 4,
		   "phone\n\"\"\n\"\"\n\"\"\n\"\"\n");
	/* One output column out of three source columns. */
	expect_csv(three, 3, middle_only, cells3, 2, "phone\n\"\"\n1\n");
}

static void test_several_null_fields_stay_empty(void **state)
{
	const struct tcol cols[] = {
	    {"a", COL_STRING}, {"b", COL_STRING}, {"c", COL_STRING}};
	const char *rules[] = {"keep", "redact", "mask:first1"};
	const char *cells[] = {NULL, NULL, NULL, "x", NULL, NULL};

	(void)state;
	expect_csv(cols, 3, rules, cells, 2, "a,b,c\n,,\nx,,\n");
}

static void test_drop_and_unnamed_are_absent_in_dataset_order(void **state)
{
	const struct tcol cols[] = {
	    {"id", COL_STRING},	      {"name", COL_STRING},
	    {"district", COL_STRING}, {"phone", COL_STRING},
	    {"visit_date", COL_DATE}, {"cost", COL_DECIMAL},
	};
	/* name dropped, cost not named; fixture_init lists rules reversed. */
	const char *rules[] = {"keep",	     "drop",	   "keep",
			       "mask:last4", "date:month", NULL};
	const char *cells[] = {
	    "p1", "Zhang San", "Xihu",	  "13812345678", "2024-03-05", "12.5",
	    "p2", "Li Si",     "Gongshu", NULL,		 "2024-04-01", "7",
	};

	(void)state;
	expect_csv(cols, 6, rules, cells, 2,
		   "id,district,phone,visit_date\n"
		   "p1,Xihu,*******5678,2024-03\n"
		   "p2,Gongshu,,2024-04\n");
}

static void test_header_quotes_odd_names(void **state)
{
	const struct tcol cols[] = {
	    {"plain", COL_STRING},	{"a,b", COL_STRING},
	    {"say \"hi\"", COL_STRING}, {"two\nlines", COL_STRING},
	    {"cr\rname", COL_STRING},	{"Culmen Length (mm)", COL_STRING},
	    {"名字", COL_STRING},	{"\"", COL_STRING},
	};
	const char *rules[] = {"keep", "keep", "keep", "keep",
			       "keep", "keep", "keep", "keep"};

	(void)state;
	expect_csv(cols, 8, rules, NULL, 0,
		   "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\","
		   "\"cr\rname\",Culmen Length (mm),名字,\"\"\"\"\n");
}

static void test_zero_rows_and_appending(void **state)
{
	const struct tcol cols[] = {{"a", COL_STRING}, {"b", COL_STRING}};
	const char *rules[] = {"keep", "keep"};
	const char *cells[] = {"1", "2", "3", "4"};
	struct fixture fx;
	struct render_plan plan;
	struct buf block = BUF_INIT, out = BUF_INIT;
	struct perr err = {{0}};
	char *got;

	(void)state;
	expect_csv(cols, 2, rules, NULL, 0, "a,b\n");

	/* render_block appends after what out already holds. */
	fixture_init(&fx, cols, 2, rules);
	assert_int_equal(
	    render_plan_init(&plan, &fx.schema, &fx.ds, test_key, &err), 0);
	assert_int_equal(plan.nsrc, 2);
	assert_int_equal(plan.nout, 2);
	assert_int_equal(buf_append(&out, "prev|", 5), 0);
	assert_int_equal(render_block(&plan, NULL, 0, 0, &out, NULL), 0);
	assert_int_equal(out.len, 5);
	encode_row(&block, cells, 2);
	encode_row(&block, cells + 2, 2);
	assert_int_equal(
	    render_block(&plan, block.data, block.len, 2, &out, NULL), 0);
	assert_int_equal(
	    render_block(&plan, block.data, block.len, 2, &out, NULL), 0);
	got = buf_text(&out);
	assert_string_equal(got, "prev|1,2\n3,4\n1,2\n3,4\n");
	free(got);
	buf_release(&out);
	buf_release(&block);
	render_plan_release(&plan);
	fixture_release(&fx);
}

/* Append text to want at *w, with a comma first unless first. */
static void want_put(char *want, size_t cap, size_t *w, bool first,
		     const char *text)
{
	*w += (size_t)snprintf(want + *w, cap - *w, "%s%s", first ? "" : ",",
			       text);
}

/*
 * Wider than the 64 fields render decodes on the stack; every third column
 * dropped, or all kept.  Values alternate short and over 16 bytes (those
 * hold a comma, so they are quoted); the last field of the last row is
 * NULL.
 */
static void check_wide_dataset(bool drop_some)
{
	enum { NCOLS = 70 };
	struct tcol cols[NCOLS];
	const char *rules[NCOLS];
	const char *cells[2 * NCOLS];
	char names[NCOLS][8], vals[NCOLS][32], quoted[NCOLS][32];
	char want[8192];
	size_t i, r, w = 0;

	for (i = 0; i < NCOLS; i++) {
		snprintf(names[i], sizeof(names[i]), "c%zu", i);
		snprintf(vals[i], sizeof(vals[i]),
			 i % 2 ? "v%zu" : "a longer value, %zu", i);
		snprintf(quoted[i], sizeof(quoted[i]), i % 2 ? "%s" : "\"%s\"",
			 vals[i]);
		cols[i].name = names[i];
		cols[i].type = COL_STRING;
		rules[i] = drop_some && i % 3 == 1 ? "drop" : "keep";
		cells[i] = vals[i];
		cells[NCOLS + i] = i == NCOLS - 1 ? NULL : vals[i];
	}
	for (r = 0; r < 3; r++) {
		bool first = true;

		for (i = 0; i < NCOLS; i++) {
			const char *text = r == 0 ? names[i] : quoted[i];

			if (drop_some && i % 3 == 1)
				continue;
			if (r == 2 && i == NCOLS - 1)
				text = "";
			want_put(want, sizeof(want), &w, first, text);
			first = false;
		}
		w += (size_t)snprintf(want + w, sizeof(want) - w, "\n");
	}
	expect_csv(cols, NCOLS, rules, cells, 2, want);
}

static void test_wide_dataset(void **state)
{
	(void)state;
	check_wide_dataset(true);
	check_wide_dataset(false);
}

/* Build a plan and return render_plan_init's result and message. */
static int plan_error(const struct tcol *cols, size_t ncols,
		      const char *const *rules, const char *rows,
		      const uint8_t *key, char *msg, size_t msglen)
{
	struct fixture fx;
	struct render_plan plan;
	struct perr err = {{0}};
	int rc;

	fixture_init(&fx, cols, ncols, rules);
	if (rows) {
		fx.ds.rows = strdup(rows);
		assert_non_null(fx.ds.rows);
	}
	memset(&plan, 0xa5, sizeof(plan));
	rc = render_plan_init(&plan, &fx.schema, &fx.ds, key, &err);
	if (rc == 0) {
		render_plan_release(&plan);
	} else {
		/* On error the plan is left empty: nothing to release. */
		assert_int_equal(plan.nout, 0);
		assert_null(plan.cols);
		assert_null(plan.header.data);
		assert_int_equal(plan.header.len, 0);
	}
	snprintf(msg, msglen, "%s", err.msg);
	fixture_release(&fx);
	return rc;
}

static void test_bad_row_filter_refused(void **state)
{
	const struct tcol cols[] = {{"age", COL_INT}, {"district", COL_STRING}};
	const char *rules[] = {"keep", "keep"};
	char msg[512];

	(void)state;
	assert_int_equal(
	    plan_error(cols, 2, rules, "age >= ", test_key, msg, sizeof(msg)),
	    -EINVAL);
	assert_non_null(strstr(msg, "$.rows: at "));
	assert_int_equal(plan_error(cols, 2, rules, "agee >= 18", test_key, msg,
				    sizeof(msg)),
			 -EINVAL);
	assert_int_equal(
	    plan_error(cols, 2, rules, "age >= 18", test_key, msg, sizeof(msg)),
	    0);
}

/* Only rows where the filter is TRUE are shown, and counted. */
static void test_row_filter_selects_rows(void **state)
{
	const struct tcol cols[] = {{"age", COL_INT}, {"district", COL_STRING}};
	const char *rules[] = {"keep", "keep"};
	const char *cells[] = {"17",   "Xihu", "18", "Gongshu", NULL,
			       "Xihu", "40",   NULL, "90",	"Lin'an"};
	struct fixture fx;
	struct render_plan plan;
	struct buf block = BUF_INIT, out = BUF_INIT;
	struct perr err = {{0}};
	uint32_t shown = 0;

	(void)state;
	fixture_init(&fx, cols, 2, rules);
	fx.ds.rows = strdup("age >= 18 and (district in ('Xihu', 'Gongshu') "
			    "or district is null)");
	assert_int_equal(
	    render_plan_init(&plan, &fx.schema, &fx.ds, test_key, &err), 0);
	for (int r = 0; r < 5; r++)
		encode_row(&block, cells + 2 * r, 2);
	assert_int_equal(
	    render_block(&plan, block.data, block.len, 5, &out, &shown), 0);
	assert_int_equal(shown, 2);
	assert_int_equal(out.len, strlen("18,Gongshu\n40,\n"));
	assert_memory_equal(out.data, "18,Gongshu\n40,\n", out.len);
	render_plan_release(&plan);
	buf_release(&block);
	buf_release(&out);
	fixture_release(&fx);
}

static void test_pseudonym_without_key_refused(void **state)
{
	const struct tcol cols[] = {{"patient_id", COL_STRING},
				    {"age", COL_INT},
				    {"cost", COL_DECIMAL}};
	const char *pseudo[] = {"pseudonym", "keep", "keep"};
	const char *bucket[] = {"keep", "bucket:10", "keep"};
	const char *bucket_dec[] = {"keep", "keep", "bucket:0.5"};
	const char *dropped[] = {"drop", "keep", NULL};
	char msg[512];

	(void)state;
	assert_int_equal(
	    plan_error(cols, 3, pseudo, NULL, NULL, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "pseudonym"));
	assert_int_equal(
	    plan_error(cols, 3, pseudo, NULL, test_key, msg, sizeof(msg)), 0);

	assert_int_equal(
	    plan_error(cols, 3, bucket, NULL, test_key, msg, sizeof(msg)), 0);
	assert_int_equal(
	    plan_error(cols, 3, bucket_dec, NULL, test_key, msg, sizeof(msg)),
	    0);
	assert_int_equal(
	    plan_error(cols, 3, dropped, NULL, test_key, msg, sizeof(msg)), 0);
}

/* bucket:W is floor(x/W)*W, exact and canonical, NULL kept. */
static void test_bucket_rule(void **state)
{
	const struct tcol cols[] = {{"age", COL_INT}, {"cost", COL_DECIMAL}};
	const char *rules[] = {"bucket:10", "bucket:0.5"};
	const char *cells[] = {"37", "1.74", "-1",   "-0.01", NULL,
			       NULL, "0",    "0.30", "-10",   "2.50"};

	(void)state;
	expect_csv(cols, 2, rules, cells, 5,
		   "age,cost\n30,1.5\n-10,-0.5\n,\n0,0\n-10,2.5\n");
}

/* HMAC-SHA256 under key 00 01 .. 1f, first 16 hex digits (from Python's
 * hmac module). */
static void test_pseudonym_tokens(void **state)
{
	const struct tcol cols[] = {{"id", COL_STRING}, {"n", COL_INT}};
	const char *rules[] = {"pseudonym", "keep"};
	const char *cells[] = {"330102199001011234",
			       "1",
			       "\xe7\x8e\x8b\xe5\xb0\x8f\xe6\x98\x8e",
			       "2",
			       NULL,
			       "3",
			       "330102199001011234",
			       "4"};

	(void)state;
	expect_csv(cols, 2, rules, cells, 4,
		   "id,n\n30824546ae51ecab,1\nb5c22a818a95a519,2\n,3\n"
		   "30824546ae51ecab,4\n");
}

/*
 * A plan of two string columns and a block of two records.  keep_all
 * keeps both; otherwise the second is redacted, so that both ways through
 * render_block (a shortcut for plans that keep everything, and the
 * general one) are held to the same checks.
 */
struct bad_block {
	struct fixture fx;
	struct render_plan plan;
	struct buf block;
	size_t row1_end; /* where the first record ends */
};

static void bad_block_init(struct bad_block *bb, bool keep_all)
{
	const struct tcol cols[] = {{"a", COL_STRING}, {"b", COL_STRING}};
	const char *rules[] = {"keep", keep_all ? "keep" : "redact"};
	const char *cells[] = {"hello", "a,b", NULL, "world"};
	struct perr err = {{0}};

	memset(bb, 0, sizeof(*bb));
	fixture_init(&bb->fx, cols, 2, rules);
	assert_int_equal(render_plan_init(&bb->plan, &bb->fx.schema, &bb->fx.ds,
					  test_key, &err),
			 0);
	encode_row(&bb->block, cells, 2);
	bb->row1_end = bb->block.len;
	encode_row(&bb->block, cells + 2, 2);
}

static void bad_block_release(struct bad_block *bb)
{
	buf_release(&bb->block);
	render_plan_release(&bb->plan);
	fixture_release(&bb->fx);
}

static int render_rc(const struct bad_block *bb, const uint8_t *data,
		     size_t len, uint32_t nrows)
{
	struct buf out = BUF_INIT;
	uint8_t *exact = data ? exact_copy(data, len) : NULL;
	int rc = render_block(&bb->plan, exact, len, nrows, &out, NULL);

	free(exact);
	buf_release(&out);
	return rc;
}

static void check_block_truncated(bool keep_all)
{
	struct bad_block bb;
	size_t cut;

	bad_block_init(&bb, keep_all);
	assert_int_equal(render_rc(&bb, bb.block.data, bb.block.len, 2), 0);
	/* Every shorter block, record boundaries included, is refused. */
	for (cut = 0; cut < bb.block.len; cut++)
		assert_int_equal(render_rc(&bb, bb.block.data, cut, 2), -EIO);
	bad_block_release(&bb);
}

static void test_block_truncated(void **state)
{
	(void)state;
	check_block_truncated(true);
	check_block_truncated(false);
}

static void check_block_overlong(bool keep_all)
{
	struct bad_block bb;
	const char *extra[] = {"x", "y"};

	bad_block_init(&bb, keep_all);
	/* One stray byte, then a whole extra record. */
	assert_int_equal(buf_append(&bb.block, "\0", 1), 0);
	assert_int_equal(render_rc(&bb, bb.block.data, bb.block.len, 2), -EIO);
	bb.block.len--;
	encode_row(&bb.block, extra, 2);
	assert_int_equal(render_rc(&bb, bb.block.data, bb.block.len, 2), -EIO);
	assert_int_equal(render_rc(&bb, bb.block.data, bb.block.len, 3), 0);
	bad_block_release(&bb);
}

static void test_block_overlong(void **state)
{
	(void)state;
	check_block_overlong(true);
	check_block_overlong(false);
}

static void check_block_wrong_nrows(bool keep_all)
{
	struct bad_block bb;

	bad_block_init(&bb, keep_all);
	assert_int_equal(render_rc(&bb, bb.block.data, bb.block.len, 0), -EIO);
	assert_int_equal(render_rc(&bb, bb.block.data, bb.block.len, 1), -EIO);
	assert_int_equal(render_rc(&bb, bb.block.data, bb.block.len, 3), -EIO);
	assert_int_equal(render_rc(&bb, bb.block.data, bb.block.len, 1000),
			 -EIO);
	assert_int_equal(render_rc(&bb, bb.block.data, bb.row1_end, 1), 0);
	bad_block_release(&bb);
}

static void test_block_wrong_nrows(void **state)
{
	(void)state;
	check_block_wrong_nrows(true);
	check_block_wrong_nrows(false);
}

/*
 * A row count no block of len bytes can hold (every record takes at least
 * one byte per column) is a corrupt block: -EIO, found before any room is
 * reserved for that many rows, not -ENOMEM after trying.
 */
static void check_block_impossible_nrows_is_eio_not_enomem(bool keep_all)
{
	struct bad_block bb;

	bad_block_init(&bb, keep_all);
	assert_int_equal(
	    render_rc(&bb, bb.block.data, bb.block.len, UINT32_MAX), -EIO);
	assert_int_equal(render_rc(&bb, NULL, 0, UINT32_MAX), -EIO);
	bad_block_release(&bb);
}

static void test_block_impossible_nrows_is_eio_not_enomem(void **state)
{
	(void)state;
	check_block_impossible_nrows_is_eio_not_enomem(true);
	check_block_impossible_nrows_is_eio_not_enomem(false);
}

static void check_block_corrupt_lengths(bool keep_all)
{
	struct bad_block bb;
	/* A field claiming 1000 bytes where 3 follow. */
	const uint8_t long_field[] = {0xd0, 0x0f, 'a', 'b', 'c'};
	/* A varint that never ends. */
	const uint8_t endless[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
				   0x80, 0x80, 0x80, 0x80, 0x80, 0x80};
	/* A length near 2^63, which must not wrap the bounds check. */
	const uint8_t huge[] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff,
				0xff, 0xff, 0xff, 0x01, 'a'};

	bad_block_init(&bb, keep_all);
	assert_int_equal(render_rc(&bb, long_field, sizeof(long_field), 1),
			 -EIO);
	assert_int_equal(render_rc(&bb, endless, sizeof(endless), 1), -EIO);
	assert_int_equal(render_rc(&bb, huge, sizeof(huge), 1), -EIO);
	bad_block_release(&bb);
}

static void test_block_corrupt_lengths(void **state)
{
	(void)state;
	check_block_corrupt_lengths(true);
	check_block_corrupt_lengths(false);
}

static void test_rule_output_type(void **state)
{
	static const struct {
		const char *rule;
		enum col_type in, out;
	} cases[] = {
	    {"keep", COL_INT, COL_INT},
	    {"keep", COL_DATETIME, COL_DATETIME},
	    {"null", COL_DECIMAL, COL_DECIMAL},
	    {"drop", COL_DATE, COL_DATE},
	    {"redact", COL_INT, COL_STRING},
	    {"pseudonym", COL_INT, COL_STRING},
	    {"mask:first2", COL_INT, COL_STRING},
	    {"mask:last4", COL_STRING, COL_STRING},
	    {"prefix:3", COL_INT, COL_STRING},
	    {"date:year", COL_DATE, COL_INT},
	    {"date:year", COL_DATETIME, COL_INT},
	    {"date:month", COL_DATE, COL_STRING},
	    {"date:day", COL_DATETIME, COL_DATE},
	    {"date:day", COL_DATE, COL_DATE},
	    {"bucket:10", COL_INT, COL_INT},
	    {"bucket:0.5", COL_DECIMAL, COL_DECIMAL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rule rule;
		struct perr err = {{0}};

		assert_int_equal(rule_parse(cases[i].rule, &rule, &err), 0);
		assert_int_equal(rule_output_type(&rule, cases[i].in),
				 cases[i].out);
		rule_release(&rule);
	}
}

static void test_plan_records_output_types(void **state)
{
	const struct tcol cols[] = {{"d", COL_DATETIME},
				    {"n", COL_INT},
				    {"s", COL_STRING},
				    {"x", COL_DATE}};
	const char *rules[] = {"date:day", "mask:last2", "keep", "drop"};
	struct fixture fx;
	struct render_plan plan;
	struct perr err = {{0}};

	(void)state;
	fixture_init(&fx, cols, 4, rules);
	assert_int_equal(
	    render_plan_init(&plan, &fx.schema, &fx.ds, test_key, &err), 0);
	assert_int_equal(plan.nsrc, 4);
	assert_int_equal(plan.nout, 3);
	assert_int_equal(plan.cols[0].src, 0);
	assert_int_equal(plan.cols[0].type, COL_DATE);
	assert_int_equal(plan.cols[1].src, 1);
	assert_int_equal(plan.cols[1].type, COL_STRING);
	assert_int_equal(plan.cols[2].src, 2);
	assert_int_equal(plan.cols[2].type, COL_STRING);
	render_plan_release(&plan);
	fixture_release(&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keep_writes_value_as_ingested),
	    cmocka_unit_test(test_keep_quotes_only_where_needed),
	    cmocka_unit_test(test_null_rule_writes_empty),
	    cmocka_unit_test(test_redact_writes_three_stars),
	    cmocka_unit_test(test_mask_first_and_last),
	    cmocka_unit_test(test_mask_short_value_entirely),
	    cmocka_unit_test(test_mask_counts_code_points),
	    cmocka_unit_test(test_mask_quotes_on_output),
	    cmocka_unit_test(test_prefix_keeps_first_code_points),
	    cmocka_unit_test(test_prefix_quotes_on_output),
	    cmocka_unit_test(test_date_rules),
	    cmocka_unit_test(test_null_stays_null_under_every_rule),
	    cmocka_unit_test(test_one_column_null_written_as_empty_quotes),
	    cmocka_unit_test(test_several_null_fields_stay_empty),
	    cmocka_unit_test(test_drop_and_unnamed_are_absent_in_dataset_order),
	    cmocka_unit_test(test_header_quotes_odd_names),
	    cmocka_unit_test(test_zero_rows_and_appending),
	    cmocka_unit_test(test_wide_dataset),
	    cmocka_unit_test(test_bad_row_filter_refused),
	    cmocka_unit_test(test_row_filter_selects_rows),
	    cmocka_unit_test(test_bucket_rule),
	    cmocka_unit_test(test_pseudonym_without_key_refused),
	    cmocka_unit_test(test_pseudonym_tokens),
	    cmocka_unit_test(test_block_truncated),
	    cmocka_unit_test(test_block_overlong),
	    cmocka_unit_test(test_block_wrong_nrows),
	    cmocka_unit_test(test_block_corrupt_lengths),
	    cmocka_unit_test(test_rule_output_type),
	    cmocka_unit_test(test_plan_records_output_types),
	    /* Last: where it fails, an ASan build aborts on the huge
	     * allocation, and the tests above have run by then. */
	    cmocka_unit_test(test_block_impossible_nrows_is_eio_not_enomem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
