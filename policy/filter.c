/*
 * filter: compiles a `rows` filter into a tree and evaluates it on records.
 * The compiler is a lexer over the NUL-terminated text and a recursive
 * descent parser whose depth is bounded by FILTER_DEPTH_MAX; `and` and `or`
 * chains become one node with many children, so a long chain is wide, not
 * deep, and evaluation recursion is bounded too.
 *
 * Everything that can be done once is done at compile: columns bound to
 * schema indices, literals unquoted and checked against their column's
 * type, datetime literals parsed into instants, `in` lists sorted (except
 * for datetimes, whose equality mixes two orders) so that a record costs
 * one binary search.  Evaluation allocates nothing.
 *
 * Truth values are ordered FALSE < UNKNOWN < TRUE, so that SQL's `and` is
 * the minimum, `or` the maximum and `not` the mirror image.
 */
#include "filter.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "decimal.h"
#include "jsonpath.h"
#include "types.h"

enum tok_kind {
	TOK_END,
	TOK_IDENT,  /* bare column name */
	TOK_QIDENT, /* "quoted column name" */
	TOK_STRING, /* 'string' */
	TOK_NUMBER,
	TOK_LPAREN,
	TOK_RPAREN,
	TOK_COMMA,
	TOK_EQ,
	TOK_NE,
	TOK_LT,
	TOK_LE,
	TOK_GT,
	TOK_GE,
	TOK_AND,
	TOK_OR,
	TOK_NOT,
	TOK_IN,
	TOK_IS,
	TOK_NULL,
};

static const struct {
	const char *word;
	enum tok_kind kind;
} keywords[] = {
    {"and", TOK_AND}, {"or", TOK_OR}, {"not", TOK_NOT},
    {"in", TOK_IN},   {"is", TOK_IS}, {"null", TOK_NULL},
};

struct token {
	enum tok_kind kind;
	size_t pos; /* byte offset in the text */
	size_t len; /* bytes, quotes included */
};

enum node_kind {
	NODE_AND,
	NODE_OR,
	NODE_NOT,
	NODE_CMP,
	NODE_IN,
	NODE_IS_NULL,
};

enum truth {
	FALSE_,
	UNKNOWN,
	TRUE_,
};

struct literal {
	char *text; /* unquoted, NUL-terminated */
	size_t len;
	struct datetime dt; /* datetime columns only */
};

struct node {
	enum node_kind kind;
	enum tok_kind op; /* CMP: TOK_EQ..TOK_GE, column on the left */
	bool negate;	  /* IN: `not in`; IS_NULL: `is not null` */
	size_t col;	  /* CMP, IN, IS_NULL */
	enum col_type type;
	size_t n, cap;	      /* kids (AND, OR, NOT) or lits (CMP, IN) */
	struct node **kids;   /* AND, OR: n >= 2; NOT: n == 1 */
	struct literal *lits; /* CMP: n == 1; IN: n >= 1, sorted */
};

struct filter {
	struct node *root;
};

struct parser {
	const char *text;
	size_t len;
	size_t at; /* where the next token starts looking */
	struct token tok;
	const struct schema *schema;
	int max_level;
	unsigned depth;
	struct perr *err;
};

/* ---- values ---- */

static bool is_digit(char c)
{
	return (unsigned char)(c - '0') < 10;
}

static int sign_of(int c)
{
	return (c > 0) - (c < 0);
}

/* Bytewise order, a prefix first. */
static int bytes_compare(const void *a, size_t na, const void *b, size_t nb)
{
	int c = memcmp(a, b, na < nb ? na : nb);

	if (c)
		return sign_of(c);
	return (na > nb) - (na < nb);
}

static int datetime_compare(const struct datetime *a, const struct datetime *b)
{
	if (a->zoned && b->zoned)
		return instant_compare(&a->utc, &b->utc);
	return instant_compare(&a->local, &b->local);
}

/* Compare a field's value with a literal, in the column's type. */
static int value_compare(enum col_type type, const uint8_t *v, size_t n,
			 const struct literal *lit)
{
	struct datetime dt;

	switch (type) {
	case COL_INT:
	case COL_DECIMAL:
		return decimal_compare((const char *)v, n, lit->text, lit->len);
	case COL_DATETIME:
		/* Ingest checked the value; bytes if it somehow is not. */
		if (datetime_parse((const char *)v, n, &dt))
			return datetime_compare(&dt, &lit->dt);
		break;
	case COL_STRING:
	case COL_DATE:
		break;
	}
	return bytes_compare(v, n, lit->text, lit->len);
}

static int literal_compare_bytes(const void *a, const void *b)
{
	const struct literal *x = a, *y = b;

	return bytes_compare(x->text, x->len, y->text, y->len);
}

static int literal_compare_number(const void *a, const void *b)
{
	const struct literal *x = a, *y = b;

	return decimal_compare(x->text, x->len, y->text, y->len);
}

/* ---- evaluation ---- */

static bool cmp_holds(enum tok_kind op, int c)
{
	switch (op) {
	case TOK_EQ:
		return c == 0;
	case TOK_NE:
		return c != 0;
	case TOK_LT:
		return c < 0;
	case TOK_LE:
		return c <= 0;
	case TOK_GT:
		return c > 0;
	case TOK_GE:
		return c >= 0;
	default:
		break;
	}
	return false;
}

static bool in_list(const struct node *node, const struct rowfmt_field *f)
{
	size_t lo = 0, hi = node->n;

	if (node->type == COL_DATETIME) {
		for (size_t i = 0; i < node->n; i++)
			if (value_compare(node->type, f->data, f->len,
					  &node->lits[i]) == 0)
				return true;
		return false;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = value_compare(node->type, f->data, f->len,
				      &node->lits[mid]);

		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

static enum truth truth_of(bool b)
{
	return b ? TRUE_ : FALSE_;
}

static enum truth eval(const struct node *node,
		       const struct rowfmt_field *fields)
{
	const struct rowfmt_field *f;
	enum truth acc, v;

	switch (node->kind) {
	case NODE_AND:
		acc = TRUE_;
		for (size_t i = 0; i < node->n && acc != FALSE_; i++) {
			v = eval(node->kids[i], fields);
			acc = v < acc ? v : acc;
		}
		return acc;
	case NODE_OR:
		acc = FALSE_;
		for (size_t i = 0; i < node->n && acc != TRUE_; i++) {
			v = eval(node->kids[i], fields);
			acc = v > acc ? v : acc;
		}
		return acc;
	case NODE_NOT:
		return (enum truth)(TRUE_ - eval(node->kids[0], fields));
	case NODE_IS_NULL:
		f = &fields[node->col];
		return truth_of((f->len == 0) != node->negate);
	case NODE_CMP:
		f = &fields[node->col];
		if (f->len == 0)
			return UNKNOWN;
		return truth_of(
		    cmp_holds(node->op, value_compare(node->type, f->data,
						      f->len, &node->lits[0])));
	case NODE_IN:
		f = &fields[node->col];
		if (f->len == 0)
			return UNKNOWN;
		return truth_of(in_list(node, f) != node->negate);
	}
	return UNKNOWN;
}

bool filter_matches(const struct filter *f, const struct rowfmt_field *fields)
{
	return !f || eval(f->root, fields) == TRUE_;
}

/* ---- the tree ---- */

static void node_free(struct node *node)
{
	if (!node)
		return;
	for (size_t i = 0; node->kids && i < node->n; i++)
		node_free(node->kids[i]);
	for (size_t i = 0; node->lits && i < node->n; i++)
		free(node->lits[i].text);
	free(node->kids);
	free(node->lits);
	free(node);
}

void filter_free(struct filter *f)
{
	if (!f)
		return;
	node_free(f->root);
	free(f);
}

static struct node *node_new(enum node_kind kind)
{
	struct node *node = calloc(1, sizeof(*node));

	if (node)
		node->kind = kind;
	return node;
}

/* Make room for one more kid or literal; 0 or -ENOMEM. */
static int node_grow(struct node *node)
{
	size_t cap = node->cap ? node->cap * 2 : 4;
	void *p;

	if (node->n < node->cap)
		return 0;
	if (node->kind == NODE_IN || node->kind == NODE_CMP) {
		p = realloc(node->lits, cap * sizeof(*node->lits));
		if (!p)
			return -ENOMEM;
		node->lits = p;
	} else {
		p = realloc(node->kids, cap * sizeof(*node->kids));
		if (!p)
			return -ENOMEM;
		node->kids = p;
	}
	node->cap = cap;
	return 0;
}

/* ---- errors ---- */

/* The 1-based position, in UTF-8 characters, of byte pos of the text. */
static size_t char_position(const struct parser *p, size_t pos)
{
	size_t chars = 1;

	for (size_t i = 0; i < pos && i < p->len; i++)
		chars += ((unsigned char)p->text[i] & 0xc0) != 0x80;
	return chars;
}

static int fail(struct parser *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set "at N: <message>" for byte pos; returns -EINVAL. */
static int fail(struct parser *p, size_t pos, const char *fmt, ...)
{
	char msg[sizeof(p->err->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return perr_set(p->err, "at %zu: %s", char_position(p, pos), msg);
}

static int nomem(struct parser *p)
{
	perr_set(p->err, "out of memory");
	return -ENOMEM;
}

/* s[0..n) quoted for a message into buf (QUOTE_LEN bytes). */
static const char *quote_bytes(char *buf, const char *s, size_t n)
{
	char tmp[QUOTE_MAX + 2];

	if (n > QUOTE_MAX + 1)
		n = QUOTE_MAX + 1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return text_quote(buf, tmp);
}

/* The current token as a message names it: "the end", "'and'", "'Xihu'",
 * "\"Culmen (mm)\"".  buf holds QUOTE_LEN + 2 bytes. */
static const char *tok_describe(const struct parser *p, char *buf)
{
	char q[QUOTE_LEN];
	const struct token *t = &p->tok;

	if (t->kind == TOK_END)
		return "the end";
	quote_bytes(q, p->text + t->pos, t->len);
	if (t->kind == TOK_STRING || t->kind == TOK_QIDENT)
		snprintf(buf, QUOTE_LEN + 2, "%s", q);
	else
		snprintf(buf, QUOTE_LEN + 2, "'%s'", q);
	return buf;
}

/* "at N: expected <what>, found <token>" at the current token. */
static int expected(struct parser *p, const char *what)
{
	char found[QUOTE_LEN + 2];

	return fail(p, p->tok.pos, "expected %s, found %s", what,
		    tok_describe(p, found));
}

/* ---- lexer ---- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_ident_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_ident_char(char c)
{
	return is_ident_start(c) || is_digit(c);
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static enum tok_kind word_kind(const char *s, size_t n)
{
	for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++) {
		const char *w = keywords[k].word;
		size_t i;

		for (i = 0; i < n && w[i] && lower(s[i]) == w[i]; i++)
			;
		if (i == n && w[i] == '\0')
			return keywords[k].kind;
	}
	return TOK_IDENT;
}

/* The length of a quoted token at s[0..n) (s[0] is the quote), or 0 if
 * it is not closed.  A doubled quote stands for one. */
static size_t quoted_len(const char *s, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (s[i] != s[0])
			continue;
		if (i + 1 < n && s[i + 1] == s[0]) {
			i++;
			continue;
		}
		return i + 1;
	}
	return 0;
}

/* The bytes of the UTF-8 character at s[0..n). */
static size_t char_len(const char *s, size_t n)
{
	size_t i = 1;

	while (i < n && i < 4 && ((unsigned char)s[i] & 0xc0) == 0x80)
		i++;
	return i;
}

static int lex_unexpected(struct parser *p, size_t i)
{
	const char *s = p->text + i;
	char q[QUOTE_LEN];
	const char *hint = "";

	if (*s == '&')
		hint = " (write 'and')";
	else if (*s == '|')
		hint = " (write 'or')";
	else if ((unsigned char)*s >= 0x80)
		hint = " (write column names in double quotes, values in "
		       "single quotes)";
	return fail(p, i, "unexpected character '%s'%s",
		    quote_bytes(q, s, char_len(s, p->len - i)), hint);
}

/* Read the next token into p->tok. */
static int lex(struct parser *p)
{
	const char *t = p->text;
	size_t i = p->at, n = p->len, len = 1;
	enum tok_kind kind;
	char q[QUOTE_LEN];

	while (i < n && is_space(t[i]))
		i++;
	if (i == n) {
		kind = TOK_END;
		len = 0;
	} else if (t[i] == '\'' || t[i] == '"') {
		kind = t[i] == '\'' ? TOK_STRING : TOK_QIDENT;
		len = quoted_len(t + i, n - i);
		if (!len)
			return fail(p, i,
				    "unterminated %s (a %s inside is written "
				    "twice)",
				    kind == TOK_STRING ? "string"
						       : "quoted column name",
				    kind == TOK_STRING ? "'" : "\"");
	} else if (is_digit(t[i]) ||
		   (t[i] == '-' && i + 1 < n && is_digit(t[i + 1]))) {
		kind = TOK_NUMBER;
		while (i + len < n &&
		       (is_ident_char(t[i + len]) || t[i + len] == '.'))
			len++;
		if (!value_is_decimal(t + i, len))
			return fail(p, i,
				    "bad number '%s' (want digits, with an "
				    "optional '-' before and one '.' inside)",
				    quote_bytes(q, t + i, len));
	} else if (is_ident_start(t[i])) {
		while (i + len < n && is_ident_char(t[i + len]))
			len++;
		kind = word_kind(t + i, len);
	} else {
		char next = i + 1 < n ? t[i + 1] : '\0';

		switch (t[i]) {
		case '(':
			kind = TOK_LPAREN;
			break;
		case ')':
			kind = TOK_RPAREN;
			break;
		case ',':
			kind = TOK_COMMA;
			break;
		case '=':
			kind = TOK_EQ;
			break;
		case '!':
			if (next != '=')
				return lex_unexpected(p, i);
			kind = TOK_NE;
			len = 2;
			break;
		case '<':
			kind = next == '='   ? TOK_LE
			       : next == '>' ? TOK_NE
					     : TOK_LT;
			len = kind == TOK_LT ? 1 : 2;
			break;
		case '>':
			kind = next == '=' ? TOK_GE : TOK_GT;
			len = kind == TOK_GT ? 1 : 2;
			break;
		default:
			return lex_unexpected(p, i);
		}
	}
	p->tok.kind = kind;
	p->tok.pos = i;
	p->tok.len = len;
	p->at = i + len;
	return 0;
}

/* The text of a quoted token without its quotes, doubled quotes undone;
 * NUL-terminated, the caller frees it.  NULL on ENOMEM. */
static char *unquote(const char *s, size_t n, size_t *out_len)
{
	char *text = malloc(n);
	size_t o = 0;

	if (!text)
		return NULL;
	for (size_t i = 1; i + 1 < n; i++) {
		text[o++] = s[i];
		if (s[i] == s[0])
			i++;
	}
	text[o] = '\0';
	*out_len = o;
	return text;
}

/* ---- parser ---- */

static bool tok_is_column(const struct parser *p)
{
	return p->tok.kind == TOK_IDENT || p->tok.kind == TOK_QIDENT;
}

static bool tok_is_value(const struct parser *p)
{
	return p->tok.kind == TOK_STRING || p->tok.kind == TOK_NUMBER;
}

static bool tok_is_cmp(const struct parser *p)
{
	return p->tok.kind >= TOK_EQ && p->tok.kind <= TOK_GE;
}

/* The column name of the current (column) token; the caller frees it. */
static char *column_name(const struct parser *p)
{
	const char *s = p->text + p->tok.pos;
	size_t len;

	if (p->tok.kind == TOK_QIDENT)
		return unquote(s, p->tok.len, &len);
	return strndup(s, p->tok.len);
}

/* The schema index of column name, or -1 if there is none. */
static long column_find(const struct schema *schema, const char *name)
{
	return schema_find(schema, name);
}

/* A column named like name but for ASCII case, or NULL. */
static const char *column_like(const struct schema *schema, const char *name)
{
	for (size_t i = 0; i < schema->ncols; i++)
		if (strcasecmp(schema->cols[i].name, name) == 0)
			return schema->cols[i].name;
	return NULL;
}

/* Bind the current column token to a schema index; then move past it. */
static int bind_column(struct parser *p, size_t *col)
{
	char q[QUOTE_LEN], q2[QUOTE_LEN];
	const struct column *c;
	const char *like;
	char *name;
	long i;
	int rc;

	name = column_name(p);
	if (!name)
		return nomem(p);
	i = column_find(p->schema, name);
	if (i < 0) {
		like = column_like(p->schema, name);
		if (like)
			rc = fail(p, p->tok.pos,
				  "no such column '%s' (names are "
				  "case-sensitive: did you mean '%s'?)",
				  text_quote(q, name), text_quote(q2, like));
		else if (name[0] == '\0')
			rc = fail(p, p->tok.pos, "empty column name");
		else
			rc = fail(p, p->tok.pos, "no such column '%s'",
				  text_quote(q, name));
		free(name);
		return rc;
	}
	free(name);
	c = &p->schema->cols[i];
	if (c->level > p->max_level)
		return fail(p, p->tok.pos,
			    "column '%s' is graded %d, above max_level %d",
			    text_quote(q, c->name), c->level, p->max_level);
	*col = (size_t)i;
	return lex(p);
}

static const char *type_syntax(enum col_type type)
{
	switch (type) {
	case COL_DATE:
		return " (want YYYY-MM-DD)";
	case COL_DATETIME:
		return " (want YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|-HH:MM])";
	default:
		break;
	}
	return "";
}

/*
 * Check the value token tok against column col and fill lit (which then
 * owns its text).
 */
static int make_literal(struct parser *p, const struct token *tok, size_t col,
			struct literal *lit)
{
	const struct column *c = &p->schema->cols[col];
	const char *s = p->text + tok->pos;
	bool numeric = c->type == COL_INT || c->type == COL_DECIMAL;
	char q[QUOTE_LEN], q2[QUOTE_LEN];

	memset(lit, 0, sizeof(*lit));
	if (numeric && tok->kind == TOK_STRING)
		return fail(p, tok->pos,
			    "column '%s' is %s: write the number without "
			    "quotes",
			    text_quote(q, c->name), col_type_name(c->type));
	if (!numeric && tok->kind == TOK_NUMBER)
		return fail(p, tok->pos,
			    "column '%s' is %s: write the value in single "
			    "quotes",
			    text_quote(q, c->name), col_type_name(c->type));
	if (numeric) {
		lit->text = strndup(s, tok->len);
		lit->len = tok->len;
	} else {
		lit->text = unquote(s, tok->len, &lit->len);
	}
	if (!lit->text)
		return nomem(p);
	if (lit->len == 0) {
		free(lit->text);
		lit->text = NULL;
		return fail(p, tok->pos,
			    "'' never matches: an empty field is NULL (write "
			    "'is null' or 'is not null')");
	}
	if (!value_fits_type(c->type, lit->text, lit->len) ||
	    (c->type == COL_DATETIME &&
	     !datetime_parse(lit->text, lit->len, &lit->dt))) {
		fail(p, tok->pos, "'%s' is not a valid %s for column '%s'%s",
		     text_quote(q, lit->text), col_type_name(c->type),
		     text_quote(q2, c->name), type_syntax(c->type));
		free(lit->text);
		lit->text = NULL;
		return -EINVAL;
	}
	return 0;
}

/* What may stand where a value was expected, with a hint for the usual
 * slips; the current token is not a value. */
static int not_a_value(struct parser *p, const char *after)
{
	char what[64], q[QUOTE_LEN];
	char *name;
	long i;

	snprintf(what, sizeof(what), "a value after %s", after);
	if (p->tok.kind == TOK_NULL)
		return fail(p, p->tok.pos,
			    "a comparison with null is never true: write "
			    "'is null' or 'is not null'");
	if (!tok_is_column(p))
		return expected(p, what);
	name = column_name(p);
	if (!name)
		return nomem(p);
	i = column_find(p->schema, name);
	if (i >= 0 || p->tok.kind == TOK_IDENT)
		fail(p, p->tok.pos,
		     "expected %s, found column '%s' (one side of a "
		     "comparison must be a value)",
		     what, text_quote(q, name));
	else
		fail(p, p->tok.pos,
		     "expected %s, found \"%s\" (strings are written in single "
		     "quotes: '%s')",
		     what, text_quote(q, name), text_quote(q, name));
	free(name);
	return -EINVAL;
}

/* The `op` of a comparison with the value on the left, turned around. */
static enum tok_kind flip(enum tok_kind op)
{
	switch (op) {
	case TOK_LT:
		return TOK_GT;
	case TOK_LE:
		return TOK_GE;
	case TOK_GT:
		return TOK_LT;
	case TOK_GE:
		return TOK_LE;
	default:
		break;
	}
	return op;
}

static const char *op_text(enum tok_kind op)
{
	switch (op) {
	case TOK_EQ:
		return "'='";
	case TOK_NE:
		return "'!='";
	case TOK_LT:
		return "'<'";
	case TOK_LE:
		return "'<='";
	case TOK_GT:
		return "'>'";
	case TOK_GE:
		return "'>='";
	default:
		break;
	}
	return "the operator";
}

/* `( value, ... )` after `in` into node (kind NODE_IN, col set). */
static int parse_in_list(struct parser *p, struct node *node)
{
	const char *after = "'('";
	int rc;

	if (p->tok.kind != TOK_LPAREN)
		return expected(p, "'(' after 'in'");
	do {
		rc = lex(p);
		if (rc)
			return rc;
		if (!tok_is_value(p))
			return not_a_value(p, after);
		rc = node_grow(node);
		if (rc)
			return nomem(p);
		rc = make_literal(p, &p->tok, node->col, &node->lits[node->n]);
		if (rc)
			return rc;
		node->n++;
		after = "','";
		rc = lex(p);
		if (rc)
			return rc;
	} while (p->tok.kind == TOK_COMMA);
	if (p->tok.kind != TOK_RPAREN)
		return expected(p, "',' or ')' in the list after 'in'");
	if (node->type != COL_DATETIME)
		qsort(node->lits, node->n, sizeof(*node->lits),
		      node->type == COL_INT || node->type == COL_DECIMAL
			  ? literal_compare_number
			  : literal_compare_bytes);
	return lex(p);
}

/* What follows a column: an operator and a value, `is [not] null` or
 * `[not] in (...)`. */
static int parse_after_column(struct parser *p, struct node *node)
{
	char q[QUOTE_LEN], what[QUOTE_LEN + 128];
	const char *name = p->schema->cols[node->col].name;
	int rc;

	if (tok_is_cmp(p)) {
		node->kind = NODE_CMP;
		node->op = p->tok.kind;
		rc = lex(p);
		if (rc)
			return rc;
		if (!tok_is_value(p))
			return not_a_value(p, op_text(node->op));
		rc = node_grow(node);
		if (rc)
			return nomem(p);
		rc = make_literal(p, &p->tok, node->col, &node->lits[0]);
		if (rc)
			return rc;
		node->n = 1;
		return lex(p);
	}
	if (p->tok.kind == TOK_IS) {
		node->kind = NODE_IS_NULL;
		rc = lex(p);
		if (!rc && p->tok.kind == TOK_NOT) {
			node->negate = true;
			rc = lex(p);
		}
		if (rc)
			return rc;
		if (p->tok.kind != TOK_NULL)
			return expected(p, node->negate
					       ? "'null' after 'is not'"
					       : "'null' or 'not' "
						 "after 'is'");
		return lex(p);
	}
	if (p->tok.kind == TOK_NOT || p->tok.kind == TOK_IN) {
		node->kind = NODE_IN;
		if (p->tok.kind == TOK_NOT) {
			node->negate = true;
			rc = lex(p);
			if (rc)
				return rc;
			if (p->tok.kind != TOK_IN)
				return expected(p, "'in' after 'not'");
		}
		rc = lex(p);
		if (rc)
			return rc;
		return parse_in_list(p, node);
	}
	snprintf(what, sizeof(what),
		 "an operator after column '%s' (=, !=, <, <=, >, >=, in, "
		 "not in, is null, is not null)",
		 text_quote(q, name));
	return expected(p, what);
}

/* value op column, stored as column op' value. */
static int parse_value_first(struct parser *p, struct node *node)
{
	struct token value = p->tok;
	char q[QUOTE_LEN], what[QUOTE_LEN + 64];
	int rc;

	rc = lex(p);
	if (rc)
		return rc;
	if (!tok_is_cmp(p)) {
		snprintf(what, sizeof(what),
			 "a comparison operator after %s%s%s",
			 value.kind == TOK_NUMBER ? "'" : "",
			 quote_bytes(q, p->text + value.pos, value.len),
			 value.kind == TOK_NUMBER ? "'" : "");
		return expected(p, what);
	}
	node->kind = NODE_CMP;
	node->op = flip(p->tok.kind);
	snprintf(what, sizeof(what),
		 "a column after %s (one side of a comparison must be a "
		 "column)",
		 op_text(p->tok.kind));
	rc = lex(p);
	if (rc)
		return rc;
	if (!tok_is_column(p))
		return expected(p, what);
	rc = bind_column(p, &node->col);
	if (rc)
		return rc;
	node->type = p->schema->cols[node->col].type;
	rc = node_grow(node);
	if (rc)
		return nomem(p);
	rc = make_literal(p, &value, node->col, &node->lits[0]);
	if (rc)
		return rc;
	node->n = 1;
	return 0;
}

static int parse_predicate(struct parser *p, struct node **out)
{
	struct node *node;
	int rc;

	if (!tok_is_column(p) && !tok_is_value(p))
		return expected(p, "a column, a value, 'not' or '('");
	node = node_new(NODE_CMP);
	if (!node)
		return nomem(p);
	if (tok_is_value(p)) {
		rc = parse_value_first(p, node);
	} else {
		rc = bind_column(p, &node->col);
		if (!rc) {
			node->type = p->schema->cols[node->col].type;
			rc = parse_after_column(p, node);
		}
	}
	if (rc) {
		node_free(node);
		return rc;
	}
	*out = node;
	return 0;
}

static int parse_or(struct parser *p, struct node **out);

/* One more level of parentheses or `not`; refused past the limit. */
static int enter(struct parser *p)
{
	if (++p->depth > FILTER_DEPTH_MAX)
		return fail(p, p->tok.pos,
			    "nested deeper than %d levels of parentheses and "
			    "'not'",
			    FILTER_DEPTH_MAX);
	return lex(p);
}

static int parse_factor(struct parser *p, struct node **out)
{
	struct node *node, *kid;
	int rc;

	if (p->tok.kind == TOK_NOT) {
		rc = enter(p);
		if (!rc)
			rc = parse_factor(p, &kid);
		if (rc)
			return rc;
		p->depth--;
		node = node_new(NODE_NOT);
		if (!node || node_grow(node)) {
			node_free(node);
			node_free(kid);
			return nomem(p);
		}
		node->kids[node->n++] = kid;
		*out = node;
		return 0;
	}
	if (p->tok.kind == TOK_LPAREN) {
		rc = enter(p);
		if (!rc)
			rc = parse_or(p, &node);
		if (rc)
			return rc;
		p->depth--;
		if (p->tok.kind != TOK_RPAREN) {
			node_free(node);
			return expected(p, "')', 'and' or 'or'");
		}
		rc = lex(p);
		if (rc) {
			node_free(node);
			return rc;
		}
		*out = node;
		return 0;
	}
	return parse_predicate(p, out);
}

/* sub ( sep sub )*: one node of kind with every sub as a kid, or the only
 * sub itself. */
static int parse_chain(struct parser *p, enum tok_kind sep, enum node_kind kind,
		       int (*sub)(struct parser *, struct node **),
		       struct node **out)
{
	struct node *node, *kid;
	int rc;

	rc = sub(p, &kid);
	if (rc)
		return rc;
	if (p->tok.kind != sep) {
		*out = kid;
		return 0;
	}
	node = node_new(kind);
	if (!node || node_grow(node)) {
		node_free(node);
		node_free(kid);
		return nomem(p);
	}
	node->kids[node->n++] = kid;
	while (p->tok.kind == sep) {
		rc = lex(p);
		if (!rc)
			rc = sub(p, &kid);
		if (rc)
			goto out_free_node;
		if (node_grow(node)) {
			node_free(kid);
			rc = nomem(p);
			goto out_free_node;
		}
		node->kids[node->n++] = kid;
	}
	*out = node;
	return 0;

out_free_node:
	node_free(node);
	return rc;
}

static int parse_and(struct parser *p, struct node **out)
{
	return parse_chain(p, TOK_AND, NODE_AND, parse_factor, out);
}

static int parse_or(struct parser *p, struct node **out)
{
	return parse_chain(p, TOK_OR, NODE_OR, parse_and, out);
}

int filter_compile(const char *text, const struct schema *schema, int max_level,
		   struct filter **out, struct perr *err)
{
	struct parser p = {
	    .text = text,
	    .schema = schema,
	    .max_level = max_level,
	    .err = err,
	};
	struct filter *f;
	struct node *root;
	int rc;

	*out = NULL;
	p.len = strnlen(text, FILTER_TEXT_MAX + 1);
	if (p.len > FILTER_TEXT_MAX)
		return fail(&p, FILTER_TEXT_MAX,
			    "filter is longer than %d bytes", FILTER_TEXT_MAX);
	rc = lex(&p);
	if (!rc)
		rc = parse_or(&p, &root);
	if (rc)
		return rc;
	if (p.tok.kind != TOK_END) {
		node_free(root);
		return expected(&p, "'and', 'or' or the end");
	}
	f = malloc(sizeof(*f));
	if (!f) {
		node_free(root);
		return nomem(&p);
	}
	f->root = root;
	*out = f;
	return 0;
}
