/*
 * Property test of policy/render (with filter, decimal and pseudonym
 * behind it) against a deliberately naive model written here.
 *
 * A fixed-seed PRNG makes thousands of cases: a schema of 1 to 8 columns
 * of random types and names (CJK, quotes, commas, line breaks, SQL
 * keywords), rows of random values valid for their types (UTF-8 text with
 * CJK, emoji, combining marks, commas, quotes, CR and LF; numbers with
 * leading zeros and signs, "-0"; dates; datetimes with and without a
 * fraction and an offset; NULLs), a random rule for every column that fits
 * its type (every rule kind, random N and bucket widths, some written
 * non-canonically), and, half the time, a random `rows` filter (and, or,
 * not, parentheses, is [not] null, every comparison operator either way
 * round, [not] in, keywords in any case, bare and quoted identifiers).
 * The records go through rowfmt_append, render_plan_init and render_block,
 * in one to three blocks, and the bytes and the count of rows shown must
 * equal what the model computes.
 *
 * The model works on the value's text, one small function per rule; it
 * shares no code with policy/.  Numbers are compared and bucketed as
 * integers scaled by 10^9 in __int128 (values here have at most 25
 * integer and 9 fraction digits, bucket widths at most 9 and 9, so every
 * product fits), datetimes are compared from their fields, and a
 * pseudonym is the first 8 bytes, in hex, of HMAC-SHA256 from OpenSSL's
 * one-shot HMAC() under the key the plan is given.
 *
 * On a mismatch the case number, its schema, rules, filter and the first
 * differing output line are printed, so the case can be replayed.
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
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "agreement.h"
#include "buf.h"
#include "render.h"
#include "rowfmt.h"
#include "schema.h"

#define NCASES 20000
#define MAX_COLS 8
#define MAX_ROWS 24
#define MAX_NODES 16
#define MAX_LITS 4
#define VALUE_MAX 512
#define NAME_MAX_LEN 64
#define FILTER_MAX 8192
#define SCALE_DIGITS 9 /* numbers are compared scaled by 10^9 */

/* The pseudonym key of every plan here (not test_render's). */
static const uint8_t model_key[PSEUDONYM_KEY_LEN] = {
    0xf0, 0x0d, 0x13, 0x37, 0x42, 0x99, 0xab, 0xcd, 0x01, 0x23, 0x45,
    0x67, 0x89, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x10, 0x20, 0x30,
    0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0};

/* ------------------------------------------------------------------ */
/* A fixed-seed PRNG (splitmix64).                                      */

static uint64_t prng_state = 0x5eed2025u;

static uint64_t prng_next(void)
{
	uint64_t z = (prng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A number in 0..n-1. */
static unsigned below(unsigned n)
{
	return (unsigned)(prng_next() % n);
}

/* True p times in 100. */
static bool percent(unsigned p)
{
	return below(100) < p;
}

/* ------------------------------------------------------------------ */
/* A growable string for the model's output.                            */

struct text {
	char *p;
	size_t len, cap;
};

static void text_add(struct text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->p = realloc(t->p, t->cap);
		assert_non_null(t->p);
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void text_adds(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

static void text_addf(struct text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void text_addf(struct text *t, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(tmp));
	text_add(t, tmp, (size_t)n);
}

/* ------------------------------------------------------------------ */
/* A random case.                                                       */

struct mcol {
	char name[NAME_MAX_LEN];
	enum col_type type;
	char rule[RULE_TEXT_MAX]; /* as written in the agreement */
	bool named;		  /* false: not in the agreement at all */
};

enum mnode_kind { M_AND, M_OR, M_NOT, M_IS_NULL, M_CMP, M_IN };
enum mop { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

struct mnode {
	enum mnode_kind kind;
	int kid[2];
	size_t col;
	bool negate;  /* is not null, not in */
	bool flipped; /* written value op column */
	enum mop op;  /* column op value, as meant */
	size_t nlits;
	char lits[MAX_LITS][VALUE_MAX];
};

struct mcase {
	size_t ncols;
	struct mcol cols[MAX_COLS];
	size_t nrows;
	char *cells[MAX_ROWS][MAX_COLS]; /* NULL is a NULL field */
	size_t nnodes;
	struct mnode nodes[MAX_NODES];
	int root; /* -1: no filter */
	char filter[FILTER_MAX];
};

/* Text fragments values and names are made of: ASCII, the CSV specials,
 * 2-, 3- and 4-byte UTF-8, a combining mark, a ZWJ emoji sequence. */
/* clang-format off */
static const char *const fragments[] = {
    "a", "Z", "q", "0", "7", " ", "x y", ",", "\"", "\r", "\n", "\r\n", "'",
    "''", "\t", ";", "*", "-", ".", "é", "ß", "ü", "中", "文", "杭州",
    "西湖区", "😀", "🎉", "👩‍⚕️", "e\xcc\x81", "Lin'an", "a,b", "\"q\"",
    "abcdefghijklmnopqrstuvwxyz", "NULL", "and",
    "\xe2\x80\x8b", /* zero-width space */
};
/* clang-format on */

/* Append random text of 1..maxpieces fragments to out (NUL-terminated,
 * at most cap bytes with the NUL); never empty. */
static void gen_text(char *out, size_t cap, unsigned maxpieces)
{
	unsigned pieces = 1 + below(maxpieces);
	size_t len = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < pieces; i++) {
		const char *f =
		    fragments[below(sizeof(fragments) / sizeof(fragments[0]))];
		size_t n = strlen(f);

		if (len + n + 1 > cap)
			break;
		memcpy(out + len, f, n + 1);
		len += n;
	}
	if (len == 0)
		snprintf(out, cap, "x");
}

static void gen_digits(char *out, size_t n, bool lead_nonzero)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (char)('0' + (i == 0 && lead_nonzero ? 1 + below(9)
							      : below(10)));
	out[n] = '\0';
}

/* -?[0-9]+, at most 25 digits, leading zeros now and then; a third of
 * them from a few small values, so that values and literals meet. */
static void gen_int(char *out)
{
	size_t len = 0, zeros = percent(20) ? 1 + below(3) : 0;
	size_t digits = percent(10) ? 0 : 1 + below(percent(15) ? 22 : 5);

	if (percent(33)) {
		static const char *const near[] = {"0",	 "-0",	"1",   "-1",
						   "9",	 "10",	"-10", "007",
						   "11", "-11", "100", "0010"};

		snprintf(out, VALUE_MAX, "%s", near[below(12)]);
		return;
	}
	if (percent(30))
		out[len++] = '-';
	for (size_t i = 0; i < zeros; i++)
		out[len++] = '0';
	if (digits == 0 && zeros == 0)
		out[len++] = '0';
	gen_digits(out + len, digits, true);
}

/* -?[0-9]+(\.[0-9]{1,9})?, at most 25 integer digits. */
static void gen_decimal(char *out)
{
	size_t len;

	gen_int(out);
	if (percent(70) && strlen(out) < 6) {
		static const char *const fracs[] = {
		    "5",	 "50", "499999999", "000000001",
		    "999999999", "25", "0"};

		len = strlen(out);
		snprintf(out + len, VALUE_MAX - len, ".%s", fracs[below(7)]);
	} else if (percent(70)) {
		len = strlen(out);
		out[len++] = '.';
		gen_digits(out + len, 1 + below(SCALE_DIGITS), false);
	}
}

static bool leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
	static const unsigned dim[] = {31, 28, 31, 30, 31, 30,
				       31, 31, 30, 31, 30, 31};

	return m == 2 && leap(y) ? 29 : dim[m - 1];
}

static void gen_date(char *out)
{
	unsigned y = 1900 + below(300), m = 1 + below(12);
	unsigned d =
	    percent(10) ? days_in_month(y, m) : 1 + below(days_in_month(y, m));

	snprintf(out, 11, "%04u-%02u-%02u", y, m, d);
}

static const char *const offsets[] = {"",	"Z",	  "+08:00", "-05:30",
				      "+00:00", "-00:00", "+14:00", "-12:00"};
#define NOFFSETS (sizeof(offsets) / sizeof(offsets[0]))

/* A datetime; half of them on a few days, at a few whole hours with a few
 * fractions, so that one instant is often written in several offsets and
 * fractions decide between equal seconds. */
static void gen_datetime(char *out)
{
	static const char *const near_fracs[] = {
	    "", ".5", ".50", ".499999999", ".000000001", ".0"};
	/* Days next to each other across a month, year and leap day. */
	static const char *const near_days[] = {
	    "2024-01-01", "2024-01-02", "2023-12-31", "2024-02-29",
	    "2024-03-01", "1999-12-31", "2000-01-01"};
	char frac[12] = "";

	if (percent(50)) {
		snprintf(out, VALUE_MAX, "%sT%02u:%s:00%s%s",
			 near_days[below(percent(60) ? 2 : 7)],
			 8 * below(3) + (percent(20) ? 5 : 0),
			 percent(20) ? "30" : "00", near_fracs[below(6)],
			 offsets[below(NOFFSETS)]);
		return;
	}
	gen_date(out);
	if (percent(30)) {
		frac[0] = '.';
		gen_digits(frac + 1, 1 + below(9), false);
	}
	snprintf(out + 10, VALUE_MAX - 10, "T%02u:%02u:%02u%s%s", below(24),
		 below(60), below(60), frac, offsets[below(NOFFSETS)]);
}

/* A non-NULL value of type. */
static void gen_value(enum col_type type, char *out)
{
	switch (type) {
	case COL_STRING:
		gen_text(out, VALUE_MAX, percent(10) ? 24 : 6);
		return;
	case COL_INT:
		gen_int(out);
		return;
	case COL_DECIMAL:
		gen_decimal(out);
		return;
	case COL_DATE:
		gen_date(out);
		return;
	case COL_DATETIME:
		gen_datetime(out);
		return;
	}
	fail();
}

/* A bucket width: at most 9 integer and 9 fraction digits, positive,
 * now and then with leading or trailing zeros (rule_parse canonicalises). */
static void gen_width(char *out)
{
	for (;;) {
		size_t ilen = 1 + below(percent(70) ? 3 : 9);
		size_t flen = percent(40) ? 1 + below(SCALE_DIGITS) : 0;
		char ip[16], fp[16];
		bool nonzero = false;

		gen_digits(ip, ilen, false);
		gen_digits(fp, flen, false);
		if (percent(30) && ilen == 1 && flen == 0)
			ip[0] = (char)('1' + below(9));
		for (size_t i = 0; ip[i]; i++)
			nonzero |= ip[i] != '0';
		for (size_t i = 0; fp[i]; i++)
			nonzero |= fp[i] != '0';
		if (!nonzero)
			continue;
		snprintf(out, RULE_TEXT_MAX, "bucket:%s%s%s", ip,
			 flen ? "." : "", fp);
		return;
	}
}

/* A rule fitting type, as an agreement writes it. */
static void gen_rule(enum col_type type, char *out)
{
	static const char *const dates[] = {"date:year", "date:month",
					    "date:day"};
	unsigned n = percent(8) ? (percent(50) ? 1000000 : 40 + below(20))
				: 1 + below(8);
	unsigned pick = below(100);

	if ((type == COL_DATE || type == COL_DATETIME) && pick < 25) {
		snprintf(out, RULE_TEXT_MAX, "%s", dates[below(3)]);
		return;
	}
	if ((type == COL_INT || type == COL_DECIMAL) && pick < 30) {
		gen_width(out);
		return;
	}
	pick = below(100);
	if (pick < 18)
		snprintf(out, RULE_TEXT_MAX, "keep");
	else if (pick < 26)
		snprintf(out, RULE_TEXT_MAX, "drop");
	else if (pick < 33)
		snprintf(out, RULE_TEXT_MAX, "null");
	else if (pick < 40)
		snprintf(out, RULE_TEXT_MAX, "redact");
	else if (pick < 52)
		snprintf(out, RULE_TEXT_MAX, "pseudonym");
	else if (pick < 67)
		snprintf(out, RULE_TEXT_MAX, "mask:first%u", n);
	else if (pick < 82)
		snprintf(out, RULE_TEXT_MAX, "mask:last%u", n);
	else
		snprintf(out, RULE_TEXT_MAX, "prefix:%u", n);
}

static void gen_name(struct mcase *c, size_t i)
{
	/* clang-format off */
	static const char *const odd[] = {
	    "in", "NULL", "not", "Is", "and_or", "a b", "x,y", "say \"hi\"",
	    "名字", "line\nbreak", "Culmen Length (mm)", "_under_1", "\"", "'"};
	/* clang-format on */
	char *name = c->cols[i].name;
	unsigned pick = below(100);

	if (pick < 40)
		snprintf(name, NAME_MAX_LEN, "c%zu", i);
	else if (pick < 70)
		snprintf(name, NAME_MAX_LEN, "%s",
			 odd[below(sizeof(odd) / sizeof(odd[0]))]);
	else
		gen_text(name, NAME_MAX_LEN - 8, 3);
	for (size_t j = 0; j < i; j++)
		if (strcmp(c->cols[j].name, name) == 0) {
			size_t len = strlen(name);

			snprintf(name + len, NAME_MAX_LEN - len, "#%zu", i);
			break;
		}
}

/*
 * A literal near value v of type: v itself, or v written differently but
 * equal, or v just beside it in the column's order, which are where a
 * comparison goes wrong: a prefix or extension of a string, one letter in
 * the other case, a number with more leading or trailing zeros, a
 * datetime with its offset replaced or dropped.
 */
static void gen_near(enum col_type type, const char *v, char *out)
{
	size_t len = strlen(v), cut;
	unsigned pick = below(100);

	snprintf(out, VALUE_MAX, "%s", v);
	if (pick < 40)
		return;
	switch (type) {
	case COL_STRING:
		if (pick < 60 && len > 1) {
			cut = 1 + below((unsigned)len - 1);
			while (cut > 0 &&
			       ((unsigned char)v[cut] & 0xc0) == 0x80)
				cut--;
			if (cut > 0)
				out[cut] = '\0';
		} else if (pick < 80) {
			snprintf(out, VALUE_MAX, "%s%s", v,
				 fragments[below(sizeof(fragments) /
						 sizeof(fragments[0]))]);
		} else {
			for (size_t i = 0; i < len; i++)
				if ((out[i] >= 'a' && out[i] <= 'z') ||
				    (out[i] >= 'A' && out[i] <= 'Z')) {
					out[i] ^= 0x20;
					break;
				}
		}
		return;
	case COL_INT:
	case COL_DECIMAL: {
		size_t sign = v[0] == '-';

		if (pick < 70 && len + 2 < 25) {
			snprintf(out, VALUE_MAX, "%.*s0%s", (int)sign, v,
				 v + sign);
		} else if (strchr(v, '.') && strlen(strchr(v, '.')) <= 9 &&
			   type == COL_DECIMAL) {
			snprintf(out, VALUE_MAX, "%s0", v);
		} else if (strcmp(v, "0") == 0 || strcmp(v, "-0") == 0) {
			snprintf(out, VALUE_MAX, "%s",
				 v[0] == '-' ? "0" : "-0");
		}
		return;
	}
	case COL_DATETIME: {
		const char *end = v + 19;

		if (*end == '.')
			for (end++; *end >= '0' && *end <= '9'; end++)
				;
		snprintf(out, VALUE_MAX, "%.*s%s", (int)(end - v), v,
			 offsets[below(NOFFSETS)]);
		return;
	}
	case COL_DATE:
		return;
	}
}

/* A literal for a filter on column col: mostly near a value the rows
 * hold, so that equalities, in lists and order boundaries are hit. */
static void gen_literal(const struct mcase *c, size_t col, char *out)
{
	if (c->nrows && percent(60)) {
		const char *v = c->cells[below((unsigned)c->nrows)][col];

		if (v) {
			gen_near(c->cols[col].type, v, out);
			return;
		}
	}
	gen_value(c->cols[col].type, out);
}

static int gen_node(struct mcase *c, unsigned depth)
{
	int id = (int)c->nnodes;
	struct mnode *n;
	unsigned pick = below(100);

	assert_true(c->nnodes < MAX_NODES);
	n = &c->nodes[c->nnodes++];
	memset(n, 0, sizeof(*n));
	n->col = below((unsigned)c->ncols);
	if (depth < 2 && pick < 35 && c->nnodes + 2 < MAX_NODES) {
		n->kind = percent(50) ? M_AND : M_OR;
		n->kid[0] = gen_node(c, depth + 1);
		n->kid[1] = gen_node(c, depth + 1);
		return id;
	}
	if (depth < 3 && pick < 45 && c->nnodes + 1 < MAX_NODES) {
		n->kind = M_NOT;
		n->kid[0] = gen_node(c, depth + 1);
		return id;
	}
	pick = below(100);
	if (pick < 20) {
		n->kind = M_IS_NULL;
		n->negate = percent(50);
	} else if (pick < 40) {
		n->kind = M_IN;
		n->negate = percent(30);
		n->nlits = 1 + below(MAX_LITS);
		for (size_t i = 0; i < n->nlits; i++)
			gen_literal(c, n->col, n->lits[i]);
	} else {
		n->kind = M_CMP;
		n->op = (enum mop)below(6);
		n->flipped = percent(20);
		n->nlits = 1;
		gen_literal(c, n->col, n->lits[0]);
	}
	return id;
}

/* "and" in a random letter case. */
static void put_keyword(struct text *t, const char *kw)
{
	for (const char *p = kw; *p; p++) {
		char ch = *p;

		if (ch >= 'a' && ch <= 'z' && percent(15))
			ch = (char)(ch - 'a' + 'A');
		text_add(t, &ch, 1);
	}
}

static bool is_keyword(const char *s)
{
	static const char *const kws[] = {"and", "or", "not",
					  "in",	 "is", "null"};

	for (size_t i = 0; i < sizeof(kws) / sizeof(kws[0]); i++)
		if (strcasecmp(s, kws[i]) == 0)
			return true;
	return false;
}

static bool is_bare(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
	      *s == '_'))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return !is_keyword(s);
}

static void put_ident(struct text *t, const char *name)
{
	if (is_bare(name) && percent(60)) {
		text_adds(t, name);
		return;
	}
	text_adds(t, "\"");
	for (const char *p = name; *p; p++) {
		text_add(t, p, 1);
		if (*p == '"')
			text_adds(t, "\"");
	}
	text_adds(t, "\"");
}

static void put_literal(struct text *t, enum col_type type, const char *v)
{
	if (type == COL_INT || type == COL_DECIMAL) {
		text_adds(t, v);
		return;
	}
	text_adds(t, "'");
	for (const char *p = v; *p; p++) {
		text_add(t, p, 1);
		if (*p == '\'')
			text_adds(t, "'");
	}
	text_adds(t, "'");
}

static const char *const op_text[] = {"=", "!=", "<", "<=", ">", ">="};
/* The operator that, written value op column, means column op value. */
static const enum mop op_mirror[] = {OP_EQ, OP_NE, OP_GT, OP_GE, OP_LT, OP_LE};

static void put_node(struct text *t, const struct mcase *c, int id)
{
	const struct mnode *n = &c->nodes[id];
	const struct mcol *col = &c->cols[n->col];

	switch (n->kind) {
	case M_AND:
	case M_OR:
		text_adds(t, "(");
		put_node(t, c, n->kid[0]);
		text_adds(t, percent(20) ? "\n" : " ");
		put_keyword(t, n->kind == M_AND ? "and" : "or");
		text_adds(t, " ");
		put_node(t, c, n->kid[1]);
		text_adds(t, ")");
		return;
	case M_NOT:
		put_keyword(t, "not");
		text_adds(t, " (");
		put_node(t, c, n->kid[0]);
		text_adds(t, ")");
		return;
	case M_IS_NULL:
		put_ident(t, col->name);
		text_adds(t, " ");
		put_keyword(t, n->negate ? "is not null" : "is null");
		return;
	case M_IN:
		put_ident(t, col->name);
		text_adds(t, " ");
		put_keyword(t, n->negate ? "not in" : "in");
		text_adds(t, " (");
		for (size_t i = 0; i < n->nlits; i++) {
			if (i)
				text_adds(t, percent(50) ? ", " : ",");
			put_literal(t, col->type, n->lits[i]);
		}
		text_adds(t, ")");
		return;
	case M_CMP:
		if (n->flipped) {
			put_literal(t, col->type, n->lits[0]);
			text_addf(t, " %s ", op_text[op_mirror[n->op]]);
			put_ident(t, col->name);
		} else {
			put_ident(t, col->name);
			text_addf(t, percent(30) ? "%s" : " %s ",
				  n->op == OP_NE && percent(50)
				      ? "<>"
				      : op_text[n->op]);
			put_literal(t, col->type, n->lits[0]);
		}
		return;
	}
}

static void gen_case(struct mcase *c)
{
	bool any_shown = false;
	bool keep_all = percent(8);

	memset(c, 0, sizeof(*c));
	c->ncols = 1 + below(MAX_COLS);
	for (size_t i = 0; i < c->ncols; i++) {
		struct mcol *col = &c->cols[i];

		gen_name(c, i);
		col->type = (enum col_type)below(5);
		col->named = keep_all || percent(90);
		if (keep_all)
			snprintf(col->rule, sizeof(col->rule), "keep");
		else
			gen_rule(col->type, col->rule);
		if (col->named && strcmp(col->rule, "drop") != 0)
			any_shown = true;
	}
	if (!any_shown) {
		c->cols[0].named = true;
		snprintf(c->cols[0].rule, sizeof(c->cols[0].rule), "keep");
	}
	c->nrows = percent(5) ? 0 : 1 + below(MAX_ROWS);
	for (size_t r = 0; r < c->nrows; r++)
		for (size_t i = 0; i < c->ncols; i++) {
			char v[VALUE_MAX];

			if (percent(15))
				continue; /* NULL */
			gen_value(c->cols[i].type, v);
			c->cells[r][i] = strdup(v);
			assert_non_null(c->cells[r][i]);
		}
	c->root = -1;
	if (percent(50)) {
		struct text t = {0};

		c->root = gen_node(c, 0);
		put_node(&t, c, c->root);
		assert_true(t.len < sizeof(c->filter));
		memcpy(c->filter, t.p, t.len + 1);
		free(t.p);
	}
}

static void case_release(struct mcase *c)
{
	for (size_t r = 0; r < c->nrows; r++)
		for (size_t i = 0; i < c->ncols; i++)
			free(c->cells[r][i]);
}

/* ------------------------------------------------------------------ */
/* The model.                                                           */

/* Number of UTF-8 code points in s[0..n): bytes that do not continue. */
static size_t code_points(const char *s, size_t n)
{
	size_t count = 0;

	for (size_t i = 0; i < n; i++)
		count += ((unsigned char)s[i] & 0xc0) != 0x80;
	return count;
}

/* Byte length of the first k code points of s[0..n). */
static size_t first_code_points(const char *s, size_t n, size_t k)
{
	size_t i = 0;

	while (i < n && k > 0) {
		i++;
		while (i < n && ((unsigned char)s[i] & 0xc0) == 0x80)
			i++;
		k--;
	}
	return i;
}

static void stars(struct text *t, size_t k)
{
	for (size_t i = 0; i < k; i++)
		text_adds(t, "*");
}

static void model_mask(struct text *t, const char *v, bool first, size_t n)
{
	size_t len = strlen(v), cps = code_points(v, len);

	if (cps <= n) {
		stars(t, cps);
	} else if (first) {
		text_add(t, v, first_code_points(v, len, n));
		stars(t, cps - n);
	} else {
		size_t cut = first_code_points(v, len, cps - n);

		stars(t, cps - n);
		text_add(t, v + cut, len - cut);
	}
}

static void model_pseudonym(struct text *t, const char *v)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	assert_non_null(HMAC(EVP_sha256(), model_key, sizeof(model_key),
			     (const unsigned char *)v, strlen(v), md, &mdlen));
	assert_int_equal(mdlen, 32);
	for (size_t i = 0; i < PSEUDONYM_TOKEN_LEN / 2; i++)
		text_addf(t, "%02x", md[i]);
}

/* A number of at most 25 integer and 9 fraction digits, times 10^9. */
static __int128 scaled(const char *v)
{
	__int128 x = 0;
	bool neg = *v == '-';
	size_t frac = 0;
	bool point = false;

	for (const char *p = v + neg; *p; p++) {
		if (*p == '.') {
			point = true;
			continue;
		}
		assert_true(*p >= '0' && *p <= '9');
		x = x * 10 + (*p - '0');
		frac += point;
	}
	assert_true(frac <= SCALE_DIGITS);
	for (; frac < SCALE_DIGITS; frac++)
		x *= 10;
	return neg ? -x : x;
}

/* Canonical text of x / 10^9. */
static void put_scaled(struct text *t, __int128 x)
{
	char digits[64], out[72];
	size_t n = 0, o = 0, last = 0;
	unsigned __int128 m =
	    x < 0 ? -(unsigned __int128)x : (unsigned __int128)x;

	do {
		digits[n++] = (char)('0' + (int)(m % 10));
		m /= 10;
	} while (m);
	while (n <= SCALE_DIGITS)
		digits[n++] = '0';
	/* digits[] is little-endian; integer digits are n-9 of them. */
	if (x < 0)
		out[o++] = '-';
	for (size_t i = n; i-- > SCALE_DIGITS;)
		out[o++] = digits[i];
	/* Fraction digits up to the last nonzero one. */
	for (size_t i = 0; i < SCALE_DIGITS; i++)
		if (digits[SCALE_DIGITS - 1 - i] != '0')
			last = i + 1;
	if (last) {
		out[o++] = '.';
		for (size_t i = 0; i < last; i++)
			out[o++] = digits[SCALE_DIGITS - 1 - i];
	}
	text_add(t, out, o);
}

static void model_bucket(struct text *t, const char *v, const char *width)
{
	__int128 x = scaled(v), w = scaled(width), q;

	assert_true(w > 0);
	q = x / w;
	if (x % w != 0 && x < 0)
		q--; /* towards minus infinity */
	put_scaled(t, q * w);
}

/* The field rule makes of v (NULL: NULL), unquoted. */
static void model_rule(struct text *t, const char *rule, const char *v)
{
	unsigned n;

	if (!v || strcmp(rule, "null") == 0)
		return;
	if (strcmp(rule, "keep") == 0)
		text_adds(t, v);
	else if (strcmp(rule, "redact") == 0)
		text_adds(t, "***");
	else if (strcmp(rule, "pseudonym") == 0)
		model_pseudonym(t, v);
	else if (sscanf(rule, "mask:first%u", &n) == 1)
		model_mask(t, v, true, n);
	else if (sscanf(rule, "mask:last%u", &n) == 1)
		model_mask(t, v, false, n);
	else if (sscanf(rule, "prefix:%u", &n) == 1)
		text_add(t, v, first_code_points(v, strlen(v), n));
	else if (strcmp(rule, "date:year") == 0)
		text_add(t, v, 4);
	else if (strcmp(rule, "date:month") == 0)
		text_add(t, v, 7);
	else if (strcmp(rule, "date:day") == 0)
		text_add(t, v, 10);
	else if (strncmp(rule, "bucket:", 7) == 0)
		model_bucket(t, v, rule + 7);
	else
		fail_msg("model does not know rule %s", rule);
}

static void csv_put(struct text *t, const char *s, size_t n)
{
	if (!memchr(s, ',', n) && !memchr(s, '"', n) && !memchr(s, '\r', n) &&
	    !memchr(s, '\n', n)) {
		text_add(t, s, n);
		return;
	}
	text_adds(t, "\"");
	for (size_t i = 0; i < n; i++) {
		text_add(t, s + i, 1);
		if (s[i] == '"')
			text_adds(t, "\"");
	}
	text_adds(t, "\"");
}

static bool shown(const struct mcol *col)
{
	return col->named && strcmp(col->rule, "drop") != 0;
}

/* One CSV record of the shown columns; fields(i) gives column i's text. */
static void model_record(struct text *t, const struct mcase *c,
			 const char *const *fields)
{
	size_t nshown = 0, last = 0;

	for (size_t i = 0; i < c->ncols; i++)
		if (shown(&c->cols[i])) {
			nshown++;
			last = i;
		}
	if (nshown == 1 && fields[last][0] == '\0') {
		text_adds(t, "\"\"\n");
		return;
	}
	for (size_t i = 0, k = 0; i < c->ncols; i++) {
		if (!shown(&c->cols[i]))
			continue;
		if (k++)
			text_adds(t, ",");
		csv_put(t, fields[i], strlen(fields[i]));
	}
	text_adds(t, "\n");
}

/* Datetime parts: seconds of the local time written or of the instant,
 * nanoseconds, and whether an offset was written. */
struct mtime {
	int64_t local, utc, ns;
	bool has_offset;
};

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t days = 0;

	/* Naive on purpose: whole years, then months, from 1900. */
	for (int64_t yy = 1900; yy < y; yy++)
		days += leap((unsigned)yy) ? 366 : 365;
	for (unsigned mm = 1; mm < m; mm++)
		days += days_in_month((unsigned)y, mm);
	return days + d - 1;
}

static struct mtime parse_time(const char *v)
{
	unsigned y, mo, d, h, mi, s;
	struct mtime t = {0};
	const char *p = v + 19;
	int64_t off = 0;

	assert_int_equal(
	    sscanf(v, "%4u-%2u-%2uT%2u:%2u:%2u", &y, &mo, &d, &h, &mi, &s), 6);
	t.local = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
	if (*p == '.') {
		int64_t scale = 100000000;

		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			t.ns += (*p - '0') * scale;
	}
	if (*p == 'Z') {
		t.has_offset = true;
	} else if (*p == '+' || *p == '-') {
		t.has_offset = true;
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
		      ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
		if (*p == '-')
			off = -off;
	}
	t.utc = t.local - off;
	return t;
}

static int sign3(int64_t a, int64_t b)
{
	return (a > b) - (a < b);
}

/* The typed order of two non-NULL values of type. */
static int model_compare(enum col_type type, const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	int c;

	switch (type) {
	case COL_INT:
	case COL_DECIMAL: {
		__int128 x = scaled(a), y = scaled(b);

		return (x > y) - (x < y);
	}
	case COL_DATETIME: {
		struct mtime x = parse_time(a), y = parse_time(b);
		bool instants = x.has_offset && y.has_offset;

		c = instants ? sign3(x.utc, y.utc) : sign3(x.local, y.local);
		return c ? c : sign3(x.ns, y.ns);
	}
	case COL_STRING:
	case COL_DATE:
		c = memcmp(a, b, na < nb ? na : nb);
		if (c)
			return (c > 0) - (c < 0);
		return (na > nb) - (na < nb);
	}
	fail();
	return 0;
}

enum truth { T_FALSE, T_UNKNOWN, T_TRUE };

static enum truth truth(bool b)
{
	return b ? T_TRUE : T_FALSE;
}

static bool op_holds(enum mop op, int c)
{
	switch (op) {
	case OP_EQ:
		return c == 0;
	case OP_NE:
		return c != 0;
	case OP_LT:
		return c < 0;
	case OP_LE:
		return c <= 0;
	case OP_GT:
		return c > 0;
	case OP_GE:
		return c >= 0;
	}
	return false;
}

static enum truth model_eval(const struct mcase *c, int id, size_t row)
{
	const struct mnode *n = &c->nodes[id];
	const char *v = c->cells[row][n->col];
	enum col_type type = c->cols[n->col].type;
	enum truth a, b;
	bool any = false;

	switch (n->kind) {
	case M_AND:
		a = model_eval(c, n->kid[0], row);
		b = model_eval(c, n->kid[1], row);
		return a < b ? a : b;
	case M_OR:
		a = model_eval(c, n->kid[0], row);
		b = model_eval(c, n->kid[1], row);
		return a > b ? a : b;
	case M_NOT:
		return (enum truth)(T_TRUE - model_eval(c, n->kid[0], row));
	case M_IS_NULL:
		return truth((v == NULL) != n->negate);
	case M_CMP:
		if (!v)
			return T_UNKNOWN;
		return truth(
		    op_holds(n->op, model_compare(type, v, n->lits[0])));
	case M_IN:
		if (!v)
			return T_UNKNOWN;
		for (size_t i = 0; i < n->nlits; i++)
			any |= model_compare(type, v, n->lits[i]) == 0;
		return truth(any != n->negate);
	}
	fail();
	return T_UNKNOWN;
}

/* The whole data.csv of case c, and how many rows it shows. */
static size_t model_render(const struct mcase *c, struct text *t)
{
	const char *names[MAX_COLS];
	size_t nshown = 0;

	for (size_t i = 0; i < c->ncols; i++)
		names[i] = c->cols[i].name;
	model_record(t, c, names);
	for (size_t r = 0; r < c->nrows; r++) {
		struct text cell[MAX_COLS];
		const char *fields[MAX_COLS];

		if (c->root >= 0 && model_eval(c, c->root, r) != T_TRUE)
			continue;
		nshown++;
		for (size_t i = 0; i < c->ncols; i++) {
			memset(&cell[i], 0, sizeof(cell[i]));
			text_add(&cell[i], "", 0);
			if (shown(&c->cols[i]))
				model_rule(&cell[i], c->cols[i].rule,
					   c->cells[r][i]);
			fields[i] = cell[i].p;
		}
		model_record(t, c, fields);
		for (size_t i = 0; i < c->ncols; i++)
			free(cell[i].p);
	}
	return nshown;
}

/* ------------------------------------------------------------------ */
/* The product.                                                         */

/* Schema and agreement entry of case c, the entry's columns shuffled so
 * that the output order can only come from the schema. */
static void build_plan_inputs(const struct mcase *c, struct schema *schema,
			      struct agreement_dataset *ds)
{
	size_t order[MAX_COLS];

	memset(schema, 0, sizeof(*schema));
	memset(ds, 0, sizeof(*ds));
	schema->ncols = c->ncols;
	schema->cols = calloc(c->ncols, sizeof(*schema->cols));
	ds->columns = calloc(c->ncols, sizeof(*ds->columns));
	ds->dataset = strdup("model.ds");
	assert_non_null(schema->cols);
	assert_non_null(ds->columns);
	assert_non_null(ds->dataset);
	ds->records = true;
	if (c->root >= 0) {
		ds->rows = strdup(c->filter);
		assert_non_null(ds->rows);
	}
	for (size_t i = 0; i < c->ncols; i++) {
		schema->cols[i].name = strdup(c->cols[i].name);
		assert_non_null(schema->cols[i].name);
		schema->cols[i].type = c->cols[i].type;
		schema->cols[i].level = 1 + (int)below(4);
		order[i] = i;
	}
	for (size_t i = c->ncols; i > 1; i--) {
		size_t j = below((unsigned)i), tmp = order[i - 1];

		order[i - 1] = order[j];
		order[j] = tmp;
	}
	for (size_t k = 0; k < c->ncols; k++) {
		const struct mcol *col = &c->cols[order[k]];
		struct column_rule *cr;
		struct perr err = {{0}};

		if (!col->named)
			continue;
		cr = &ds->columns[ds->ncolumns++];
		cr->column = strdup(col->name);
		assert_non_null(cr->column);
		if (rule_parse(col->rule, &cr->rule, &err) != 0)
			fail_msg("rule_parse(%s): %s", col->rule, err.msg);
	}
}

static void release_plan_inputs(struct schema *schema,
				struct agreement_dataset *ds)
{
	for (size_t i = 0; i < ds->ncolumns; i++) {
		free(ds->columns[i].column);
		rule_release(&ds->columns[i].rule);
	}
	free(ds->columns);
	free(ds->dataset);
	free(ds->rows);
	schema_release(schema);
}

static bool bytes_need_quote(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
			return true;
	return false;
}

static void encode_rows(const struct mcase *c, size_t from, size_t to,
			struct buf *block)
{
	for (size_t r = from; r < to; r++) {
		struct csv_field f[MAX_COLS];

		for (size_t i = 0; i < c->ncols; i++) {
			const char *v = c->cells[r][i];

			f[i].data = v ? v : "";
			f[i].len = v ? strlen(v) : 0;
			f[i].needs_quote = v && bytes_need_quote(v, f[i].len);
		}
		assert_int_equal(rowfmt_append(block, f, c->ncols), 0);
	}
}

/* Render case c with the product into out: header, then the rows in one
 * to three blocks; returns the rows shown. */
static size_t product_render(const struct mcase *c, struct buf *out,
			     size_t caseno)
{
	struct schema schema;
	struct agreement_dataset ds;
	struct render_plan plan;
	struct perr err = {{0}};
	size_t cuts[4] = {0, 0, 0, c->nrows}, nshown = 0;
	unsigned nblocks = 1 + below(3);
	int rc;

	build_plan_inputs(c, &schema, &ds);
	rc = render_plan_init(&plan, &schema, &ds, model_key, &err);
	if (rc)
		fail_msg("case %zu: render_plan_init: %d %s (filter %s)",
			 caseno, rc, err.msg, c->filter);
	assert_int_equal(buf_append(out, plan.header.data, plan.header.len), 0);
	for (unsigned b = 1; b < nblocks; b++)
		cuts[b] = c->nrows ? below((unsigned)c->nrows + 1) : 0;
	cuts[nblocks] = c->nrows;
	for (unsigned b = 1; b < nblocks; b++)
		if (cuts[b] < cuts[b - 1])
			cuts[b] = cuts[b - 1];
	for (unsigned b = 0; b < nblocks; b++) {
		struct buf block = BUF_INIT;
		uint32_t n = (uint32_t)(cuts[b + 1] - cuts[b]), got = 0;
		uint8_t *exact;

		encode_rows(c, cuts[b], cuts[b + 1], &block);
		/* An allocation of exactly the block's size, for ASan. */
		exact = malloc(block.len ? block.len : 1);
		assert_non_null(exact);
		if (block.len)
			memcpy(exact, block.data, block.len);
		rc = render_block(&plan, exact, block.len, n, out, &got);
		if (rc)
			fail_msg("case %zu: render_block: %d", caseno, rc);
		nshown += got;
		free(exact);
		buf_release(&block);
	}
	render_plan_release(&plan);
	release_plan_inputs(&schema, &ds);
	return nshown;
}

/* ------------------------------------------------------------------ */

static void print_escaped(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\n')
			fputs("\\n", stderr);
		else if (ch == '\r')
			fputs("\\r", stderr);
		else
			fputc(ch, stderr);
	}
}

static void report(const struct mcase *c, size_t caseno, const char *want,
		   size_t wlen, const struct buf *got)
{
	size_t i = 0, line = 0;

	while (i < wlen && i < got->len && want[i] == (char)got->data[i]) {
		line += want[i] == '\n';
		i++;
	}
	fprintf(stderr, "case %zu differs at byte %zu (output line %zu)\n",
		caseno, i, line + 1);
	for (size_t k = 0; k < c->ncols; k++) {
		fprintf(stderr, "  column %zu ", k);
		print_escaped(c->cols[k].name, strlen(c->cols[k].name));
		fprintf(stderr, " %s %s\n", col_type_name(c->cols[k].type),
			c->cols[k].named ? c->cols[k].rule : "(not named)");
	}
	if (c->root >= 0) {
		fprintf(stderr, "  rows: ");
		print_escaped(c->filter, strlen(c->filter));
		fputc('\n', stderr);
	}
	fprintf(stderr, "  want: ");
	print_escaped(want, wlen);
	fprintf(stderr, "\n  got:  ");
	print_escaped((const char *)got->data, got->len);
	fputc('\n', stderr);
}

static void test_render_matches_model(void **state)
{
	size_t filtered = 0, rows_left_out = 0, pseudonyms = 0, buckets = 0;

	(void)state;
	prng_state = 0x5eed2025u;
	for (size_t k = 0; k < NCASES; k++) {
		struct mcase *c = malloc(sizeof(*c));
		struct text want = {0};
		struct buf got = BUF_INIT;
		size_t want_shown, got_shown;

		assert_non_null(c);
		gen_case(c);
		want_shown = model_render(c, &want);
		got_shown = product_render(c, &got, k);
		if (got.len != want.len ||
		    memcmp(got.data, want.p, want.len) != 0) {
			report(c, k, want.p, want.len, &got);
			fail_msg("case %zu: render differs from the model", k);
		}
		assert_int_equal(got_shown, want_shown);
		filtered += c->root >= 0;
		rows_left_out += c->nrows - want_shown;
		for (size_t i = 0; i < c->ncols; i++) {
			pseudonyms += shown(&c->cols[i]) &&
				      !strcmp(c->cols[i].rule, "pseudonym");
			buckets += shown(&c->cols[i]) &&
				   !strncmp(c->cols[i].rule, "bucket:", 7);
		}
		free(want.p);
		buf_release(&got);
		case_release(c);
		free(c);
	}
	/* The cases reach what they are meant to. */
	assert_true(filtered > NCASES / 3);
	assert_true(rows_left_out > NCASES);
	assert_true(pseudonyms > NCASES / 10);
	assert_true(buckets > NCASES / 10);
}

/* The model itself, on values worked out by hand. */
static void expect_model(const char *rule, const char *v, const char *want)
{
	struct text t = {0};

	text_add(&t, "", 0);
	model_rule(&t, rule, v);
	assert_string_equal(t.p, want);
	free(t.p);
}

static void test_model_by_hand(void **state)
{
	(void)state;
	expect_model("bucket:10", "37", "30");
	expect_model("bucket:10", "-1", "-10");
	expect_model("bucket:10", "-0", "0");
	expect_model("bucket:10", "-10", "-10");
	expect_model("bucket:0.5", "-0.01", "-0.5");
	expect_model("bucket:0.5", "007.74", "7.5");
	expect_model("bucket:0.05", "-0.000000001", "-0.05");
	expect_model("bucket:3", "1000000000000000000000001",
		     "999999999999999999999999");
	expect_model("bucket:0.000000001", "1.123456789", "1.123456789");
	expect_model("mask:first2", "aé中😀", "aé**");
	expect_model("mask:last2", "aé中😀", "**中😀");
	expect_model("mask:last4", "abc", "***");
	expect_model("prefix:1", "😀x", "😀");
	expect_model("date:month", "2024-02-29T23:59:59+08:00", "2024-02");
	/* HMAC-SHA256 under model_key, from Python's hmac module. */
	expect_model("pseudonym", "330102199001011234", "686484e201f8200d");
	assert_true(model_compare(COL_DATETIME, "2024-01-01T08:00:00+08:00",
				  "2024-01-01T00:00:00Z") == 0);
	assert_true(model_compare(COL_DATETIME, "2024-01-01T08:00:00+08:00",
				  "2024-01-01T00:00:00") > 0);
	assert_true(model_compare(COL_DATETIME, "2024-01-01T00:00:00.5Z",
				  "2024-01-01T00:00:00.49999Z") > 0);
	assert_true(model_compare(COL_DECIMAL, "-0.0", "0") == 0);
	assert_true(model_compare(COL_DECIMAL, "007.10", "7.1") == 0);
	assert_true(model_compare(COL_STRING, "ab", "abc") < 0);
	assert_true(model_compare(COL_STRING, "Z", "a") < 0);
	assert_true(model_compare(COL_STRING, "é", "z") > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_model_by_hand),
	    cmocka_unit_test(test_render_matches_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
