/*
 * Unit tests of policy/filter: every operator and form of the row filter
 * on every column type, precedence and parentheses, keywords in any case,
 * quoted column names, quoted strings with doubled quotes, CJK and emoji,
 * SQL's three-valued logic (truth tables of not, and, or with NULL), exact
 * decimals, datetimes with and without offsets, every refusal with its
 * position, and the nesting and length limits.
 *
 * A record is given as one C string per schema column, NULL (or "") being
 * a NULL field.  To tell FALSE from UNKNOWN, which both hide a record, a
 * test evaluates both E and `not (E)`: only FALSE shows the second.
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

#include "filter.h"
#include "rowfmt.h"
#include "schema.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

enum {
	C_AGE,
	C_NAME,
	C_COST,
	C_DAY,
	C_SEEN,
	C_PHONE,
	C_CULMEN,
	C_QUOTED,
	C_DISTRICT,
	C_CJK,
	C_SECRET,
	C_KEYWORD,
	NCOLS,
};

static struct column columns[NCOLS] = {
    [C_AGE] = {"age", COL_INT, 1},
    [C_NAME] = {"name", COL_STRING, 1},
    [C_COST] = {"cost", COL_DECIMAL, 2},
    [C_DAY] = {"visit_date", COL_DATE, 3},
    [C_SEEN] = {"seen_at", COL_DATETIME, 1},
    [C_PHONE] = {"phone", COL_STRING, 4},
    [C_CULMEN] = {"Culmen Length (mm)", COL_DECIMAL, 1},
    [C_QUOTED] = {"say \"hi\"", COL_STRING, 1},
    [C_DISTRICT] = {"district", COL_STRING, 1},
    [C_CJK] = {"名字", COL_STRING, 1},
    [C_SECRET] = {"Secret", COL_INT, 4},
    [C_KEYWORD] = {"in", COL_INT, 1},
};

static const struct schema schema = {NCOLS, columns};

/* A record: vals[i] for column i, NULL for a NULL field. */
struct rec {
	const char *vals[NCOLS];
};

static void fields_of(const struct rec *r, struct rowfmt_field *f)
{
	for (size_t i = 0; i < NCOLS; i++) {
		const char *v = r->vals[i] ? r->vals[i] : "";

		f[i].data = (const uint8_t *)v;
		f[i].len = strlen(v);
		f[i].needs_quote = false;
	}
}

static struct filter *compile_ok(const char *text)
{
	struct perr err = {{0}};
	struct filter *f = NULL;
	int rc = filter_compile(text, &schema, 3, &f, &err);

	if (rc != 0)
		fail_msg("'%s' refused: %s", text, err.msg);
	assert_non_null(f);
	return f;
}

static bool shows(const char *text, const struct rec *r)
{
	struct rowfmt_field f[NCOLS];
	struct filter *filter = compile_ok(text);
	bool ok;

	fields_of(r, f);
	ok = filter_matches(filter, f);
	filter_free(filter);
	return ok;
}

enum tv {
	F,
	U,
	T,
};

/* The truth value of text on r, told apart by also evaluating not(...). */
static enum tv truth(const char *text, const struct rec *r)
{
	char negated[4096];
	bool pos, neg;

	snprintf(negated, sizeof(negated), "not (%s)", text);
	pos = shows(text, r);
	neg = shows(negated, r);
	assert_false(pos && neg);
	return pos ? T : neg ? F : U;
}

#define CHECK(text, rec, want)                                                 \
	do {                                                                   \
		enum tv got_ = truth((text), (rec));                           \
		if (got_ != (want))                                            \
			fail_msg("'%s': got %c, want %c", (text), "FUT"[got_], \
				 "FUT"[(want)]);                               \
	} while (0)

/* A record with one column set. */
static struct rec one(size_t col, const char *v)
{
	struct rec r = {{0}};

	r.vals[col] = v;
	return r;
}

static void test_int_operators(void **state)
{
	struct rec r = one(C_AGE, "30");

	(void)state;
	CHECK("age = 30", &r, T);
	CHECK("age = 31", &r, F);
	CHECK("age != 30", &r, F);
	CHECK("age != 31", &r, T);
	CHECK("age <> 31", &r, T);
	CHECK("age <> 30", &r, F);
	CHECK("age < 31", &r, T);
	CHECK("age < 30", &r, F);
	CHECK("age <= 30", &r, T);
	CHECK("age <= 29", &r, F);
	CHECK("age > 29", &r, T);
	CHECK("age > 30", &r, F);
	CHECK("age >= 30", &r, T);
	CHECK("age >= 31", &r, F);
	CHECK("age > -5", &r, T);
	CHECK("age = 030", &r, T);
	CHECK("age=30", &r, T);
	CHECK("age>=30", &r, T);
	CHECK("age<>30", &r, F);
}

/* value op column means column op' value. */
static void test_value_on_the_left(void **state)
{
	struct rec r = one(C_AGE, "30");

	(void)state;
	CHECK("30 = age", &r, T);
	CHECK("31 = age", &r, F);
	CHECK("31 != age", &r, T);
	CHECK("31 > age", &r, T);
	CHECK("30 > age", &r, F);
	CHECK("30 >= age", &r, T);
	CHECK("29 >= age", &r, F);
	CHECK("29 < age", &r, T);
	CHECK("30 < age", &r, F);
	CHECK("30 <= age", &r, T);
	CHECK("31 <= age", &r, F);
	r = one(C_NAME, "Bo");
	CHECK("'Al' < name", &r, T);
	CHECK("'Cy' < name", &r, F);
}

static void test_negative_and_leading_zeros(void **state)
{
	struct rec r = one(C_AGE, "-007");

	(void)state;
	CHECK("age = -7", &r, T);
	CHECK("age = -0007", &r, T);
	CHECK("age < -6", &r, T);
	CHECK("age > -8", &r, T);
	CHECK("age < 0", &r, T);
	r = one(C_AGE, "-0");
	CHECK("age = 0", &r, T);
	CHECK("age < 0", &r, F);
	r = one(C_COST, "-0.000");
	CHECK("cost = 0", &r, T);
	CHECK("cost = -0.0", &r, T);
}

/* Values a double gets wrong compare exactly. */
static void test_exact_decimals(void **state)
{
	struct rec r = one(C_COST, "0.30000");

	(void)state;
	CHECK("cost = 0.3", &r, T);
	CHECK("cost = 0.30000000000000004", &r, F);
	CHECK("cost < 0.30000000000000004", &r, T);
	CHECK("cost > 0.29999999999999999", &r, T);
	r = one(C_COST, "0.30000000000000004");
	CHECK("cost > 0.3", &r, T);
	r = one(C_AGE, "9007199254740993");
	CHECK("age > 9007199254740992", &r, T);
	CHECK("age = 9007199254740993", &r, T);
	r = one(C_AGE, "123456789012345678901234567890123456789");
	CHECK("age > 123456789012345678901234567890123456788", &r, T);
	CHECK("age < 123456789012345678901234567890123456790", &r, T);
	CHECK("age = 123456789012345678901234567890123456789", &r, T);
	r = one(C_COST, "1.0000000000000000000000000001");
	CHECK("cost > 1", &r, T);
	CHECK("cost = 1.0000000000000000000000000001", &r, T);
	/* an int literal against a decimal column */
	r = one(C_COST, "2.000");
	CHECK("cost = 2", &r, T);
	CHECK("cost in (1, 2)", &r, T);
}

static void test_strings(void **state)
{
	struct rec r = one(C_NAME, "Lin'an");

	(void)state;
	CHECK("name = 'Lin''an'", &r, T);
	CHECK("name = 'Linan'", &r, F);
	CHECK("name in ('x', 'Lin''an')", &r, T);
	r = one(C_NAME, "张三");
	CHECK("name = '张三'", &r, T);
	CHECK("name != '张四'", &r, T);
	r = one(C_NAME, "🦉 owl");
	CHECK("name = '🦉 owl'", &r, T);
	CHECK("name > '🦆'", &r, T);
	/* bytewise: upper case before lower, a prefix before the longer */
	r = one(C_NAME, "abc");
	CHECK("name > 'ab'", &r, T);
	CHECK("name < 'abcd'", &r, T);
	CHECK("name > 'B'", &r, T);
	CHECK("name < 'é'", &r, T);
	CHECK("name = 'ABC'", &r, F);
	/* no trimming, no case folding */
	CHECK("name = 'abc '", &r, F);
	/* keywords and quotes inside a string are just text */
	r = one(C_NAME, "x and \"y\" or not");
	CHECK("name = 'x and \"y\" or not'", &r, T);
	r = one(C_NAME, "'");
	CHECK("name = ''''", &r, T);
	r = one(C_NAME, "a\nb");
	CHECK("name = 'a\nb'", &r, T);
}

static void test_dates(void **state)
{
	struct rec r = one(C_DAY, "2025-03-15");

	(void)state;
	CHECK("visit_date = '2025-03-15'", &r, T);
	CHECK("visit_date >= '2025-01-01'", &r, T);
	CHECK("visit_date < '2025-03-16'", &r, T);
	CHECK("visit_date > '2025-03-15'", &r, F);
	CHECK("visit_date < '2024-12-31'", &r, F);
	CHECK("visit_date in ('2025-03-14', '2025-03-15')", &r, T);
	CHECK("'2026-01-01' > visit_date", &r, T);
}

static void test_datetimes(void **state)
{
	struct rec r = one(C_SEEN, "2025-01-01T08:00:00+08:00");

	(void)state;
	/* both with an offset: instants */
	CHECK("seen_at = '2025-01-01T00:00:00Z'", &r, T);
	CHECK("seen_at = '2025-01-01T00:00:00+00:00'", &r, T);
	CHECK("seen_at = '2024-12-31T19:00:00-05:00'", &r, T);
	CHECK("seen_at < '2025-01-01T00:00:00.000000001Z'", &r, T);
	CHECK("seen_at > '2024-12-31T23:59:59.999999999Z'", &r, T);
	CHECK("seen_at > '2025-01-01T07:59:59+08:00'", &r, T);
	CHECK("seen_at < '2025-01-01T05:00:00+05:30'", &r, F);
	CHECK("seen_at in ('2025-01-01T01:00:00+01:00')", &r, T);
	CHECK("seen_at not in ('2025-01-01T01:00:00+01:00')", &r, F);
	/* one side without an offset: the local time as written */
	CHECK("seen_at = '2025-01-01T08:00:00'", &r, T);
	CHECK("seen_at = '2025-01-01T00:00:00'", &r, F);
	CHECK("seen_at > '2025-01-01T07:59:59.5'", &r, T);
	CHECK("seen_at in ('2025-01-01T08:00:00.000')", &r, T);
	r = one(C_SEEN, "2025-01-01T08:00:00.25");
	CHECK("seen_at = '2025-01-01T08:00:00.250Z'", &r, T);
	CHECK("seen_at > '2025-01-01T08:00:00.2+09:00'", &r, T);
	CHECK("seen_at < '2025-01-01T08:00:00.3'", &r, T);
	/* instants across a day and a year boundary, and a leap day */
	r = one(C_SEEN, "2024-02-29T23:30:00-01:00");
	CHECK("seen_at = '2024-03-01T00:30:00Z'", &r, T);
	CHECK("seen_at > '2024-02-29T23:59:59Z'", &r, T);
	r = one(C_SEEN, "2025-02-28T23:30:00-01:00");
	CHECK("seen_at = '2025-03-01T00:30:00Z'", &r, T);
	r = one(C_SEEN, "2100-02-28T23:30:00-01:00");
	CHECK("seen_at = '2100-03-01T00:30:00Z'", &r, T);
	r = one(C_SEEN, "2000-02-29T23:30:00-01:00");
	CHECK("seen_at = '2000-03-01T00:30:00Z'", &r, T);
	r = one(C_SEEN, "2024-12-31T23:30:00-01:00");
	CHECK("seen_at = '2025-01-01T00:30:00Z'", &r, T);
	r = one(C_SEEN, "2025-01-01T00:30:00+01:00");
	CHECK("seen_at = '2024-12-31T23:30:00Z'", &r, T);
	r = one(C_SEEN, "0000-01-01T00:00:00Z");
	CHECK("seen_at < '9999-12-31T23:59:59Z'", &r, T);
	CHECK("seen_at > '0000-01-01T00:00:00+01:00'", &r, T);
}

static void test_in(void **state)
{
	struct rec r = one(C_DISTRICT, "Gongshu");

	(void)state;
	CHECK("district in ('Xihu', 'Gongshu')", &r, T);
	CHECK("district in ('Xihu')", &r, F);
	CHECK("district not in ('Xihu')", &r, T);
	CHECK("district not in ('Xihu', 'Gongshu')", &r, F);
	CHECK("district IN ('Gongshu')", &r, T);
	CHECK("district NOT IN ('Gongshu')", &r, F);
	r = one(C_AGE, "18");
	CHECK("age in (1, 018, 100)", &r, T);
	CHECK("age in (-18)", &r, F);
	r = one(C_COST, "1.5");
	CHECK("cost in (1.50, 2)", &r, T);
	CHECK("cost in (1.49, 1.51)", &r, F);
}

/* A long list is sorted and searched: every member is found, nothing
 * else is. */
static void test_in_long_list(void **state)
{
	static char text[8192], v[32];
	struct rowfmt_field f[NCOLS];
	struct filter *num, *str;
	struct rec r = {{0}};
	size_t o;

	(void)state;
	/* numbers 3*i, written in a scrambled order */
	o = (size_t)snprintf(text, sizeof(text), "age in (");
	for (int i = 0; i < 200; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, "%s%d",
				      i ? ", " : "", ((i * 37) % 200) * 3);
	snprintf(text + o, sizeof(text) - o, ")");
	num = compile_ok(text);
	o = (size_t)snprintf(text, sizeof(text), "name in (");
	for (int i = 0; i < 200; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, "%s'k%d'",
				      i ? ", " : "", ((i * 37) % 200) * 3);
	snprintf(text + o, sizeof(text) - o, ")");
	str = compile_ok(text);
	for (int x = -3; x < 620; x++) {
		bool member = x >= 0 && x % 3 == 0 && x < 600;

		snprintf(v, sizeof(v), "%d", x);
		r = one(C_AGE, v);
		fields_of(&r, f);
		if (filter_matches(num, f) != member)
			fail_msg("age %d: want %d", x, member);
		snprintf(v, sizeof(v), "k%d", x);
		r = one(C_NAME, v);
		fields_of(&r, f);
		if (filter_matches(str, f) != member)
			fail_msg("name %s: want %d", v, member);
	}
	filter_free(num);
	filter_free(str);
}

static void test_is_null(void **state)
{
	struct rec null = {{0}};
	struct rec set = one(C_NAME, "x");

	(void)state;
	CHECK("name is null", &null, T);
	CHECK("name is null", &set, F);
	CHECK("name is not null", &null, F);
	CHECK("name is not null", &set, T);
	CHECK("name IS NOT NULL", &set, T);
	CHECK("name Is Null", &null, T);
	/* "" is a NULL field too */
	set = one(C_NAME, "");
	CHECK("name is null", &set, T);
}

/* Every comparison with NULL is UNKNOWN, `in` and `not in` too. */
static void test_null_comparisons(void **state)
{
	static const char *const texts[] = {
	    "age = 1",
	    "age != 1",
	    "age < 1",
	    "age <= 1",
	    "age > 1",
	    "age >= 1",
	    "age in (1, 2)",
	    "age not in (1, 2)",
	    "name = 'x'",
	    "name != 'x'",
	    "cost > 0",
	    "visit_date < '2025-01-01'",
	    "seen_at = '2025-01-01T00:00:00Z'",
	};
	struct rec null = {{0}};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++)
		CHECK(texts[i], &null, U);
}

/* The truth tables of SQL: age = 30 and cost = 1 each T, F or U. */
static void test_three_valued_logic(void **state)
{
	static const char *const age_of[] = {
	    [T] = "30", [F] = "31", [U] = NULL};
	static const char *const cost_of[] = {[T] = "1", [F] = "2", [U] = NULL};
	static const enum tv and_table[3][3] = {
	    [F] = {[F] = F, [U] = F, [T] = F},
	    [U] = {[F] = F, [U] = U, [T] = U},
	    [T] = {[F] = F, [U] = U, [T] = T},
	};
	static const enum tv or_table[3][3] = {
	    [F] = {[F] = F, [U] = U, [T] = T},
	    [U] = {[F] = U, [U] = U, [T] = T},
	    [T] = {[F] = T, [U] = T, [T] = T},
	};
	static const enum tv not_table[3] = {[F] = T, [U] = U, [T] = F};

	(void)state;
	for (int a = F; a <= T; a++) {
		struct rec r = {{0}};

		r.vals[C_AGE] = age_of[a];
		CHECK("age = 30", &r, (enum tv)a);
		CHECK("not age = 30", &r, not_table[a]);
		CHECK("not not age = 30", &r, (enum tv)a);
		for (int b = F; b <= T; b++) {
			r.vals[C_COST] = cost_of[b];
			CHECK("age = 30 and cost = 1", &r, and_table[a][b]);
			CHECK("age = 30 or cost = 1", &r, or_table[a][b]);
			CHECK("cost = 1 and age = 30", &r, and_table[a][b]);
			CHECK("cost = 1 or age = 30", &r, or_table[a][b]);
			CHECK("not (age = 30 and cost = 1)", &r,
			      not_table[and_table[a][b]]);
			CHECK("not (age = 30 or cost = 1)", &r,
			      not_table[or_table[a][b]]);
		}
	}
}

/* not binds tighter than and, and tighter than or. */
static void test_precedence(void **state)
{
	struct rec r = {{0}};

	(void)state;
	r.vals[C_AGE] = "1";
	r.vals[C_COST] = "2";
	r.vals[C_NAME] = "n";
	/* a or b and c: a or (b and c) */
	CHECK("age = 1 or cost = 9 and name = 'z'", &r, T);
	CHECK("(age = 1 or cost = 9) and name = 'z'", &r, F);
	/* a and b or c: (a and b) or c */
	CHECK("age = 9 and cost = 2 or name = 'n'", &r, T);
	CHECK("age = 9 and (cost = 2 or name = 'n')", &r, F);
	/* not a and b: (not a) and b */
	CHECK("not age = 9 and cost = 2", &r, T);
	CHECK("not age = 1 and cost = 9", &r, F);
	CHECK("not (age = 1 and cost = 9)", &r, T);
	/* not a or b: (not a) or b */
	CHECK("not age = 1 or cost = 2", &r, T);
	CHECK("not (age = 1 or cost = 2)", &r, F);
	/* chains */
	CHECK("age = 9 or age = 8 or age = 1", &r, T);
	CHECK("age = 1 and cost = 2 and name = 'n'", &r, T);
	CHECK("age = 1 and cost = 2 and name = 'x'", &r, F);
	CHECK("((((age = 1))))", &r, T);
	CHECK("NOT age = 1 OR cost = 2 AND name = 'n'", &r, T);
	CHECK("Not(age=1)Or(cost=2)", &r, T);
}

static void test_keywords_any_case(void **state)
{
	struct rec r = {{0}};

	(void)state;
	r.vals[C_AGE] = "20";
	r.vals[C_DISTRICT] = "Xihu";
	CHECK("district In ('Xihu', 'Gongshu') AnD age >= 18", &r, T);
	CHECK("district iN ('Gongshu') oR NoT age < 18", &r, T);
	CHECK("name IS NULL AND age IS NOT NULL", &r, T);
}

static void test_quoted_columns(void **state)
{
	struct rec r = {{0}};

	(void)state;
	r.vals[C_CULMEN] = "39.1";
	r.vals[C_QUOTED] = "yo";
	r.vals[C_CJK] = "王五";
	r.vals[C_AGE] = "5";
	CHECK("\"Culmen Length (mm)\" > 39", &r, T);
	CHECK("\"Culmen Length (mm)\" in (39.10)", &r, T);
	CHECK("40 > \"Culmen Length (mm)\"", &r, T);
	CHECK("\"say \"\"hi\"\"\" = 'yo'", &r, T);
	CHECK("\"名字\" = '王五'", &r, T);
	CHECK("\"名字\" is not null", &r, T);
	CHECK("\"age\" = 5", &r, T);
	r.vals[C_KEYWORD] = "6";
	CHECK("\"in\" = 6", &r, T);
	CHECK("\"in\" in (6) and \"in\" is not null", &r, T);
}

static void test_whitespace(void **state)
{
	struct rec r = one(C_AGE, "5");

	(void)state;
	CHECK(" \t\r\nage\n=\t5\r\n ", &r, T);
	CHECK("age in(5)", &r, T);
	CHECK("age in ( 4 , 5 )", &r, T);
}

/* The example of SPEC. */
static void test_spec_example(void **state)
{
	const char *text = "district in ('Xihu', 'Gongshu') and age >= 18";
	struct rec r = {{0}};

	(void)state;
	r.vals[C_DISTRICT] = "Xihu";
	r.vals[C_AGE] = "18";
	CHECK(text, &r, T);
	r.vals[C_AGE] = "17";
	CHECK(text, &r, F);
	r.vals[C_AGE] = NULL;
	CHECK(text, &r, U);
	r.vals[C_DISTRICT] = "Binjiang";
	CHECK(text, &r, F);
}

static void test_null_filter_shows_all(void **state)
{
	struct rowfmt_field f[NCOLS];
	struct rec r = {{0}};

	(void)state;
	fields_of(&r, f);
	assert_true(filter_matches(NULL, f));
	filter_free(NULL);
}

/* ---- refusals ---- */

struct refusal {
	const char *text;
	const char *msg;
};

static void check_refusals(const struct refusal *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct perr err = {{0}};
		struct filter *f = (struct filter *)&err;
		int rc = filter_compile(cases[i].text, &schema, 3, &f, &err);

		if (rc != -EINVAL)
			fail_msg("'%s': rc %d, want -EINVAL", cases[i].text,
				 rc);
		assert_null(f);
		if (strcmp(err.msg, cases[i].msg) != 0)
			fail_msg("'%s':\n got: %s\nwant: %s", cases[i].text,
				 err.msg, cases[i].msg);
	}
}

static void test_syntax_errors(void **state)
{
	static const struct refusal cases[] = {
	    {"", "at 1: expected a column, a value, 'not' or '(', found the "
		 "end"},
	    {"   ", "at 4: expected a column, a value, 'not' or '(', found "
		    "the end"},
	    {"age >= ", "at 8: expected a value after '>=', found the end"},
	    {"district in ('Xihu') and age =",
	     "at 31: expected a value after '=', found the end"},
	    {"age = and", "at 7: expected a value after '=', found 'and'"},
	    {"age", "at 4: expected an operator after column 'age' (=, !=, <, "
		    "<=, >, >=, in, not in, is null, is not null), found the "
		    "end"},
	    {"age 18", "at 5: expected an operator after column 'age' (=, !=, "
		       "<, <=, >, >=, in, not in, is null, is not null), found "
		       "'18'"},
	    {"age == 5", "at 6: expected a value after '=', found '='"},
	    {"age = 5 age = 6",
	     "at 9: expected 'and', 'or' or the end, found 'age'"},
	    {"age = 5)", "at 8: expected 'and', 'or' or the end, found ')'"},
	    {"(age = 5", "at 9: expected ')', 'and' or 'or', found the end"},
	    {"(age = 5 or", "at 12: expected a column, a value, 'not' or '(', "
			    "found the end"},
	    {"age = 5 and", "at 12: expected a column, a value, 'not' or '(', "
			    "found the end"},
	    {"and age = 5", "at 1: expected a column, a value, 'not' or '(', "
			    "found 'and'"},
	    {"not", "at 4: expected a column, a value, 'not' or '(', found the "
		    "end"},
	    {"()", "at 2: expected a column, a value, 'not' or '(', found "
		   "')'"},
	    {"age in 5", "at 8: expected '(' after 'in', found '5'"},
	    {"age in ()", "at 9: expected a value after '(', found ')'"},
	    {"age in (1,)", "at 11: expected a value after ',', found ')'"},
	    {"age in (1 2)",
	     "at 11: expected ',' or ')' in the list after 'in', found '2'"},
	    {"age in (1", "at 10: expected ',' or ')' in the list after 'in', "
			  "found the end"},
	    {"age not 5", "at 9: expected 'in' after 'not', found '5'"},
	    {"age is 5", "at 8: expected 'null' or 'not' after 'is', found "
			 "'5'"},
	    {"age is not 5",
	     "at 12: expected 'null' after 'is not', found '5'"},
	    {"age between 1 and 5",
	     "at 5: expected an operator after column 'age' (=, !=, <, <=, >, "
	     ">=, in, not in, is null, is not null), found 'between'"},
	    {"5 = 5", "at 5: expected a column after '=' (one side of a "
		      "comparison must be a column), found '5'"},
	    {"5 age", "at 3: expected a comparison operator after '5', found "
		      "'age'"},
	    {"'x' in ('x')", "at 5: expected a comparison operator after 'x', "
			     "found 'in'"},
	    {"age = cost", "at 7: expected a value after '=', found column "
			   "'cost' (one side of a comparison must be a value)"},
	    {"district = \"Xihu\"",
	     "at 12: expected a value after '=', found \"Xihu\" (strings are "
	     "written in single quotes: 'Xihu')"},
	    {"district in ('a', \"b\")",
	     "at 19: expected a value after ',', found \"b\" (strings are "
	     "written in single quotes: 'b')"},
	    {"age = null", "at 7: a comparison with null is never true: write "
			   "'is null' or 'is not null'"},
	    {"null is null", "at 1: expected a column, a value, 'not' or '(', "
			     "found 'null'"},
	    {"name = 'abc", "at 8: unterminated string (a ' inside is written "
			    "twice)"},
	    {"name = 'Lin''an", "at 8: unterminated string (a ' inside is "
				"written twice)"},
	    {"\"name = 'x'", "at 1: unterminated quoted column name (a \" "
			     "inside is written twice)"},
	    {"age = 1e5", "at 7: bad number '1e5' (want digits, with an "
			  "optional '-' before and one '.' inside)"},
	    {"age = 1.", "at 7: bad number '1.' (want digits, with an "
			 "optional '-' before and one '.' inside)"},
	    {"age = 1.2.3", "at 7: bad number '1.2.3' (want digits, with an "
			    "optional '-' before and one '.' inside)"},
	    {"age = 18and age = 1", "at 7: bad number '18and' (want digits, "
				    "with an optional '-' before and one "
				    "'.' inside)"},
	    {"age = .5", "at 7: unexpected character '.'"},
	    {"age = +5", "at 7: unexpected character '+'"},
	    {"age = - 5", "at 7: unexpected character '-'"},
	    {"age ! 5", "at 5: unexpected character '!'"},
	    {"age = 5 && cost = 1",
	     "at 9: unexpected character '&' (write 'and')"},
	    {"age = 5 || cost = 1",
	     "at 9: unexpected character '|' (write 'or')"},
	    {"age = 5;", "at 8: unexpected character ';'"},
	    {"名字 = 'x'", "at 1: unexpected character '名' (write column "
			   "names in double quotes, values in single quotes)"},
	    {"\"名字\" = 'x' and age = \x01",
	     "at 22: unexpected character '\\x01'"},
	    {"\"名字\" = 'x' and age =",
	     "at 21: expected a value after '=', found the end"},
	};

	(void)state;
	check_refusals(cases, ARRAY_SIZE(cases));
}

static void test_column_errors(void **state)
{
	static const struct refusal cases[] = {
	    {"agee = 5", "at 1: no such column 'agee'"},
	    {"age = 5 or \"Agee\" = 5", "at 12: no such column 'Agee'"},
	    {"AGE = 5", "at 1: no such column 'AGE' (names are case-sensitive: "
			"did you mean 'age'?)"},
	    {"\"\" = 5", "at 1: empty column name"},
	    {"\"culmen length (mm)\" > 1",
	     "at 1: no such column 'culmen length (mm)' (names are "
	     "case-sensitive: did you mean 'Culmen Length (mm)'?)"},
	    {"5 < agee", "at 5: no such column 'agee'"},
	    {"phone is null", "at 1: column 'phone' is graded 4, above "
			      "max_level 3"},
	    {"age > 1 and phone = '1'", "at 13: column 'phone' is graded 4, "
					"above max_level 3"},
	    {"'1' = phone", "at 7: column 'phone' is graded 4, above "
			    "max_level 3"},
	    {"not Secret in (1)", "at 5: column 'Secret' is graded 4, above "
				  "max_level 3"},
	    {"secret = 1", "at 1: no such column 'secret' (names are "
			   "case-sensitive: did you mean 'Secret'?)"},
	};

	(void)state;
	check_refusals(cases, ARRAY_SIZE(cases));
}

static void test_type_errors(void **state)
{
	static const struct refusal cases[] = {
	    {"age = 'abc'", "at 7: column 'age' is int: write the number "
			    "without quotes"},
	    {"age = '18'", "at 7: column 'age' is int: write the number "
			   "without quotes"},
	    {"age >= 18.5", "at 8: '18.5' is not a valid int for column 'age'"},
	    {"age in (1, 2.0)",
	     "at 12: '2.0' is not a valid int for column 'age'"},
	    {"18.5 <= age", "at 1: '18.5' is not a valid int for column 'age'"},
	    {"cost = '1.5'", "at 8: column 'cost' is decimal: write the number "
			     "without quotes"},
	    {"name = 5", "at 8: column 'name' is string: write the value in "
			 "single quotes"},
	    {"visit_date = 2025", "at 14: column 'visit_date' is date: write "
				  "the value in single quotes"},
	    {"visit_date = '2025-02-30'",
	     "at 14: '2025-02-30' is not a valid date for column "
	     "'visit_date' (want YYYY-MM-DD)"},
	    {"visit_date in ('2025-01-01', '2025-1-2')",
	     "at 30: '2025-1-2' is not a valid date for column 'visit_date' "
	     "(want YYYY-MM-DD)"},
	    {"seen_at > '2025-01-01'",
	     "at 11: '2025-01-01' is not a valid datetime for column "
	     "'seen_at' (want YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|-HH:MM])"},
	    {"seen_at > '2025-01-01T24:00:00Z'",
	     "at 11: '2025-01-01T24:00:00Z' is not a valid datetime for "
	     "column 'seen_at' (want YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|-HH:"
	     "MM])"},
	    {"name = ''", "at 8: '' never matches: an empty field is NULL "
			  "(write 'is null' or 'is not null')"},
	    {"name in ('a', '')", "at 15: '' never matches: an empty field is "
				  "NULL (write 'is null' or 'is not null')"},
	    {"\"名字\" = 'x' and age = 'y'",
	     "at 22: column 'age' is int: write the number without quotes"},
	};

	(void)state;
	check_refusals(cases, ARRAY_SIZE(cases));
}

/* A column graded at max_level may be named; one above may not, whatever
 * max_level is. */
static void test_max_level(void **state)
{
	struct perr err = {{0}};
	struct filter *f;

	(void)state;
	assert_int_equal(filter_compile("phone = '1'", &schema, 4, &f, &err),
			 0);
	filter_free(f);
	assert_int_equal(
	    filter_compile("visit_date = '2025-01-01'", &schema, 3, &f, &err),
	    0);
	filter_free(f);
	assert_int_equal(
	    filter_compile("visit_date = '2025-01-01'", &schema, 2, &f, &err),
	    -EINVAL);
	assert_string_equal(err.msg, "at 1: column 'visit_date' is graded 3, "
				     "above max_level 2");
	assert_int_equal(filter_compile("cost > 1", &schema, 1, &f, &err),
			 -EINVAL);
	assert_string_equal(
	    err.msg, "at 1: column 'cost' is graded 2, above max_level 1");
}

/* text = n times open, then middle, then n times close. */
static char *nest(int n, const char *open, const char *middle,
		  const char *close)
{
	size_t len = n * (strlen(open) + strlen(close)) + strlen(middle) + 1;
	char *s = malloc(len);

	assert_non_null(s);
	s[0] = '\0';
	for (int i = 0; i < n; i++)
		strcat(s, open);
	strcat(s, middle);
	for (int i = 0; i < n; i++)
		strcat(s, close);
	return s;
}

static void test_depth_limit(void **state)
{
	struct rec r = one(C_AGE, "5");
	struct perr err = {{0}};
	struct filter *f;
	char *s;

	(void)state;
	/* (truth() would add a level of its own) */
	s = nest(FILTER_DEPTH_MAX, "(", "age = 5", ")");
	assert_true(shows(s, &r));
	free(s);
	s = nest(FILTER_DEPTH_MAX + 1, "(", "age = 5", ")");
	assert_int_equal(filter_compile(s, &schema, 3, &f, &err), -EINVAL);
	assert_string_equal(err.msg, "at 65: nested deeper than 64 levels of "
				     "parentheses and 'not'");
	free(s);
	s = nest(FILTER_DEPTH_MAX, "not ", "age = 5", "");
	assert_true(shows(s, &r));
	free(s);
	s = nest(FILTER_DEPTH_MAX + 1, "not ", "age = 5", "");
	assert_int_equal(filter_compile(s, &schema, 3, &f, &err), -EINVAL);
	assert_string_equal(err.msg, "at 257: nested deeper than 64 levels of "
				     "parentheses and 'not'");
	free(s);
	/* parentheses and not together */
	s = nest(FILTER_DEPTH_MAX / 2 + 1, "not (", "age = 5", ")");
	assert_int_equal(filter_compile(s, &schema, 3, &f, &err), -EINVAL);
	free(s);
	/* hostile depth is refused, not a crash */
	s = nest(100000, "(", "age = 5", ")");
	assert_int_equal(filter_compile(s, &schema, 3, &f, &err), -EINVAL);
	free(s);
}

/* A long chain is wide, not deep: it compiles and evaluates. */
static void test_long_chains(void **state)
{
	struct rowfmt_field fields[NCOLS];
	struct rec r = one(C_AGE, "3999");
	struct filter *f;
	char *s;

	(void)state;
	s = nest(1, "", "age = 0", "");
	s = realloc(s, 4000 * 16);
	assert_non_null(s);
	for (int i = 1; i < 4000; i++)
		sprintf(s + strlen(s), " or age = %d", i);
	f = compile_ok(s);
	fields_of(&r, fields);
	assert_true(filter_matches(f, fields));
	r = one(C_AGE, "4000");
	fields_of(&r, fields);
	assert_false(filter_matches(f, fields));
	filter_free(f);
	free(s);
}

static void test_length_limit(void **state)
{
	struct perr err = {{0}};
	struct filter *f;
	char *s = malloc(FILTER_TEXT_MAX + 2);

	(void)state;
	assert_non_null(s);
	memset(s, ' ', FILTER_TEXT_MAX + 1);
	memcpy(s, "age = 5", 7);
	s[FILTER_TEXT_MAX] = '\0';
	assert_int_equal(filter_compile(s, &schema, 3, &f, &err), 0);
	filter_free(f);
	s[FILTER_TEXT_MAX] = ' ';
	s[FILTER_TEXT_MAX + 1] = '\0';
	assert_int_equal(filter_compile(s, &schema, 3, &f, &err), -EINVAL);
	assert_null(f);
	assert_string_equal(err.msg,
			    "at 65537: filter is longer than 65536 bytes");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_int_operators),
	    cmocka_unit_test(test_value_on_the_left),
	    cmocka_unit_test(test_negative_and_leading_zeros),
	    cmocka_unit_test(test_exact_decimals),
	    cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_dates),
	    cmocka_unit_test(test_datetimes),
	    cmocka_unit_test(test_in),
	    cmocka_unit_test(test_in_long_list),
	    cmocka_unit_test(test_is_null),
	    cmocka_unit_test(test_null_comparisons),
	    cmocka_unit_test(test_three_valued_logic),
	    cmocka_unit_test(test_precedence),
	    cmocka_unit_test(test_keywords_any_case),
	    cmocka_unit_test(test_quoted_columns),
	    cmocka_unit_test(test_whitespace),
	    cmocka_unit_test(test_spec_example),
	    cmocka_unit_test(test_null_filter_shows_all),
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_column_errors),
	    cmocka_unit_test(test_type_errors),
	    cmocka_unit_test(test_max_level),
	    cmocka_unit_test(test_depth_limit),
	    cmocka_unit_test(test_long_chains),
	    cmocka_unit_test(test_length_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
