/*
 * render: column rules applied to stored records, written as CSV.  This is
 * the hot path of every data.csv read that misses the block cache, so it
 * allocates only when a row needs more room than the output buffer has.
 */
#include "render.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "rowfmt.h"

/* Fields shorter than this are copied with one fixed-size move. */
#define SHORT_COPY 16

/* Fields decoded on the stack for datasets up to this wide. */
#define STACK_FIELDS 64

static bool rule_is_supported(enum rule_kind kind)
{
	switch (kind) {
	case RULE_KEEP:
	case RULE_DROP:
	case RULE_NULL:
	case RULE_REDACT:
	case RULE_MASK_FIRST:
	case RULE_MASK_LAST:
	case RULE_PREFIX:
	case RULE_DATE_YEAR:
	case RULE_DATE_MONTH:
	case RULE_DATE_DAY:
		return true;
	case RULE_PSEUDONYM:
	case RULE_BUCKET:
		return true;
	}
	return false;
}

enum col_type rule_output_type(const struct rule *rule, enum col_type in)
{
	switch (rule->kind) {
	case RULE_KEEP:
	case RULE_DROP:
	case RULE_NULL:
	case RULE_BUCKET:
		return in;
	case RULE_DATE_YEAR:
		return COL_INT;
	case RULE_DATE_DAY:
		return COL_DATE;
	case RULE_REDACT:
	case RULE_PSEUDONYM:
	case RULE_MASK_FIRST:
	case RULE_MASK_LAST:
	case RULE_PREFIX:
	case RULE_DATE_MONTH:
		break;
	}
	return COL_STRING;
}

bool csv_needs_quote(const uint8_t *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
			return true;
	return false;
}

/* Worst case of a field written quoted: every byte a doubled quote. */
static size_t quoted_bound(size_t n)
{
	return 2 * n + 2;
}

/* The bytes of s with every '"' doubled, without the enclosing quotes. */
static void put_escaped(struct buf *out, const uint8_t *s, size_t n)
{
	const uint8_t *end = s + n;

	while (s < end) {
		const uint8_t *q = memchr(s, '"', (size_t)(end - s));
		size_t run = q ? (size_t)(q - s) + 1 : (size_t)(end - s);

		buf_put(out, s, run);
		if (q)
			buf_putc(out, '"');
		s += run;
	}
}

static void put_quoted(struct buf *out, const uint8_t *s, size_t n)
{
	buf_putc(out, '"');
	put_escaped(out, s, n);
	buf_putc(out, '"');
}

static void put_field(struct buf *out, const uint8_t *s, size_t n, bool quote)
{
	if (quote)
		put_quoted(out, s, n);
	else
		buf_put(out, s, n);
}

static int put_header(struct render_plan *plan, const struct schema *schema)
{
	size_t i, need = 1;
	int rc;

	for (i = 0; i < plan->nout; i++)
		need +=
		    quoted_bound(strlen(schema->cols[plan->cols[i].src].name)) +
		    1;
	rc = buf_reserve(&plan->header, need);
	if (rc)
		return rc;
	for (i = 0; i < plan->nout; i++) {
		const char *name = schema->cols[plan->cols[i].src].name;
		size_t n = strlen(name);

		if (i)
			buf_putc(&plan->header, ',');
		put_field(&plan->header, (const uint8_t *)name, n,
			  csv_needs_quote((const uint8_t *)name, n));
	}
	if (plan->nout == 1 && plan->header.len == 0)
		buf_put(&plan->header, "\"\"", 2);
	buf_putc(&plan->header, '\n');
	return 0;
}

/* Prepare the keyed state if a shown column is a pseudonym. */
static int plan_pseudonyms(struct render_plan *plan, const uint8_t *key,
			   struct perr *err)
{
	for (size_t i = 0; i < plan->nout; i++) {
		if (plan->cols[i].rule.kind != RULE_PSEUDONYM)
			continue;
		if (!key)
			return perr_set(err, "pseudonym: the agreement has no "
					     "pseudonym key");
		if (pseudonymizer_init(&plan->pz, key))
			return -ENOMEM;
		plan->has_pseudonyms = true;
		return 0;
	}
	return 0;
}

/* Output bytes beyond twice the input a rule may write for one value. */
static size_t rule_extra(const struct rule *r)
{
	if (r->kind == RULE_PSEUDONYM)
		return PSEUDONYM_TOKEN_LEN;
	if (r->kind == RULE_BUCKET)
		return strlen(r->width) + 3;
	return 0;
}

/*
 * Compile the rows filter.  The agreement's max_level was enforced when it
 * was applied; here any grade may be named.
 */
static int plan_filter(struct render_plan *plan, const struct schema *schema,
		       const struct agreement_dataset *ds, struct perr *err)
{
	struct perr ferr;
	int rc;

	if (!ds->rows)
		return 0;
	rc = filter_compile(ds->rows, schema, LEVEL_MAX, &plan->filter, &ferr);
	if (rc == -EINVAL)
		perr_set(err, "$.rows: %s", ferr.msg);
	return rc;
}

int render_plan_init(struct render_plan *plan, const struct schema *schema,
		     const struct agreement_dataset *ds,
		     const uint8_t *pseudonym_key, struct perr *err)
{
	size_t i;
	int rc;

	memset(plan, 0, sizeof(*plan));
	plan->nsrc = schema->ncols;
	plan->cols =
	    calloc(schema->ncols ? schema->ncols : 1, sizeof(*plan->cols));
	if (!plan->cols)
		return -ENOMEM;
	for (i = 0; i < schema->ncols; i++) {
		const struct column *c = &schema->cols[i];
		const struct rule *r = agreement_dataset_rule(ds, c->name);
		struct render_col *out;

		if (r->kind == RULE_DROP)
			continue;
		if (!rule_is_supported(r->kind)) {
			char text[64];

			rc =
			    perr_set(err,
				     "$.columns.%s: rule '%s' is not "
				     "supported yet",
				     c->name, rule_text(r, text, sizeof(text)));
			goto out_release;
		}
		out = &plan->cols[plan->nout++];
		out->src = i;
		out->rule = *r;
		out->rule.width = r->width ? strdup(r->width) : NULL;
		if (r->width && !out->rule.width) {
			rc = -ENOMEM;
			goto out_release;
		}
		out->type = rule_output_type(r, c->type);
		plan->row_extra += rule_extra(r);
	}
	rc = plan_pseudonyms(plan, pseudonym_key, err);
	if (!rc)
		rc = plan_filter(plan, schema, ds, err);
	if (!rc)
		rc = put_header(plan, schema);
	if (rc)
		goto out_release;
	return 0;

out_release:
	render_plan_release(plan);
	return rc;
}

int render_plan_init_keep_all(struct render_plan *plan,
			      const struct schema *schema)
{
	int rc;

	memset(plan, 0, sizeof(*plan));
	plan->nsrc = schema->ncols;
	plan->cols =
	    calloc(schema->ncols ? schema->ncols : 1, sizeof(*plan->cols));
	if (!plan->cols)
		return -ENOMEM;
	for (size_t i = 0; i < schema->ncols; i++) {
		plan->cols[i].src = i;
		plan->cols[i].rule.kind = RULE_KEEP;
		plan->cols[i].type = schema->cols[i].type;
	}
	plan->nout = schema->ncols;
	rc = put_header(plan, schema);
	if (rc)
		render_plan_release(plan);
	return rc;
}

void render_plan_release(struct render_plan *plan)
{
	if (plan->has_pseudonyms)
		pseudonymizer_release(&plan->pz);
	filter_free(plan->filter);
	for (size_t i = 0; plan->cols && i < plan->nout; i++)
		free(plan->cols[i].rule.width);
	free(plan->cols);
	buf_release(&plan->header);
	memset(plan, 0, sizeof(*plan));
}

int render_fingerprint(const struct schema *schema,
		       const struct agreement_dataset *ds, struct buf *out)
{
	char text[RULE_TEXT_MAX];
	int rc = 0;

	out->len = 0;
	for (size_t i = 0; i < schema->ncols && !rc; i++) {
		const struct rule *r =
		    agreement_dataset_rule(ds, schema->cols[i].name);
		const char *rule;

		if (r->kind == RULE_DROP)
			continue;
		rule = rule_text(r, text, sizeof(text));
		rc = buf_append(out, schema->cols[i].name,
				strlen(schema->cols[i].name) + 1);
		if (!rc)
			rc = buf_append(out, rule, strlen(rule) + 1);
	}
	if (!rc)
		rc = buf_append(out, ds->records ? "R" : "V", 1);
	if (!rc && ds->rows)
		rc = buf_append(out, ds->rows, strlen(ds->rows));
	return rc;
}

bool render_fingerprint_equal(const struct buf *a, const struct buf *b)
{
	return a->len == b->len &&
	       (!a->len || !memcmp(a->data, b->data, a->len));
}

static bool utf8_is_lead(uint8_t c)
{
	return (c & 0xc0) != 0x80;
}

/* Byte offset of code point number cp in s[0..n), or n if s is shorter. */
size_t utf8_prefix_bytes(const uint8_t *s, size_t n, size_t cp)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (utf8_is_lead(s[i])) {
			if (cp == 0)
				return i;
			cp--;
		}
	}
	return n;
}

static size_t utf8_count(const uint8_t *s, size_t n)
{
	size_t i, count = 0;

	for (i = 0; i < n; i++)
		count += utf8_is_lead(s[i]);
	return count;
}

static void put_stars(struct buf *out, size_t n)
{
	memset(out->data + out->len, '*', n);
	out->len += n;
}

/*
 * mask:firstN / mask:lastN: the N kept code points stay, every other one
 * becomes a single '*'; a value of N code points or fewer is all stars.
 * Stars never need quoting, so the kept part decides.
 */
static void put_masked(struct buf *out, const struct rowfmt_field *f,
		       unsigned keep, bool keep_first)
{
	size_t chars = utf8_count(f->data, f->len);
	const uint8_t *kept;
	size_t cut, kept_len;
	bool quote;

	if (chars <= keep) {
		put_stars(out, chars);
		return;
	}
	cut = utf8_prefix_bytes(f->data, f->len,
				keep_first ? keep : chars - keep);
	kept = keep_first ? f->data : f->data + cut;
	kept_len = keep_first ? cut : f->len - cut;
	quote = f->needs_quote && csv_needs_quote(kept, kept_len);
	if (quote)
		buf_putc(out, '"');
	if (!keep_first)
		put_stars(out, chars - keep);
	if (quote)
		put_escaped(out, kept, kept_len);
	else
		buf_put(out, kept, kept_len);
	if (keep_first)
		put_stars(out, chars - keep);
	if (quote)
		buf_putc(out, '"');
}

/* What rendering one block needs beyond the plan: per-call scratch. */
struct render_ctx {
	const struct render_plan *plan;
	EVP_MD_CTX *md; /* for pseudonyms */
};

static int put_pseudonym(struct buf *out, const struct render_ctx *ctx,
			 const struct rowfmt_field *f)
{
	int rc = pseudonym_token(&ctx->plan->pz, ctx->md, f->data, f->len,
				 (char *)out->data + out->len);

	if (!rc)
		out->len += PSEUDONYM_TOKEN_LEN;
	return rc;
}

static int put_value(struct buf *out, const struct render_ctx *ctx,
		     const struct render_col *col, const struct rowfmt_field *f)
{
	size_t cut;

	if (f->len == 0)
		return 0;
	switch (col->rule.kind) {
	case RULE_KEEP:
		put_field(out, f->data, f->len, f->needs_quote);
		return 0;
	case RULE_NULL:
	case RULE_DROP:
		return 0;
	case RULE_REDACT:
		buf_put(out, "***", 3);
		return 0;
	case RULE_PSEUDONYM:
		return put_pseudonym(out, ctx, f);
	case RULE_MASK_FIRST:
	case RULE_MASK_LAST:
		put_masked(out, f, col->rule.n,
			   col->rule.kind == RULE_MASK_FIRST);
		return 0;
	case RULE_PREFIX:
		cut = utf8_prefix_bytes(f->data, f->len, col->rule.n);
		put_field(out, f->data, cut,
			  f->needs_quote && csv_needs_quote(f->data, cut));
		return 0;
	case RULE_DATE_YEAR:
		buf_put(out, f->data, f->len < 4 ? f->len : 4);
		return 0;
	case RULE_DATE_MONTH:
		buf_put(out, f->data, f->len < 7 ? f->len : 7);
		return 0;
	case RULE_DATE_DAY:
		buf_put(out, f->data, f->len < 10 ? f->len : 10);
		return 0;
	case RULE_BUCKET:
		return decimal_bucket((const char *)f->data, f->len,
				      col->rule.width, out)
			   ? -EIO
			   : 0;
	}
	return -EIO;
}

/*
 * Room enough for any rendering of a block of len encoded bytes and nrows
 * records: a field's output is at most twice its bytes plus quotes (masks
 * and "***" included), plus separators, the newline and a lone "".
 */
static size_t block_bound(const struct render_plan *plan, size_t len,
			  uint32_t nrows)
{
	return 2 * len +
	       (size_t)nrows * (4 * plan->nout + 3 + plan->row_extra) +
	       SHORT_COPY;
}

static int render_row(const struct render_ctx *ctx,
		      const struct rowfmt_field *fields, struct buf *out)
{
	const struct render_plan *plan = ctx->plan;
	size_t start = out->len;
	int rc = 0;

	for (size_t i = 0; i < plan->nout && !rc; i++) {
		if (i)
			buf_putc(out, ',');
		rc = put_value(out, ctx, &plan->cols[i],
			       &fields[plan->cols[i].src]);
	}
	if (plan->nout == 1 && out->len == start)
		buf_put(out, "\"\"", 2);
	buf_putc(out, '\n');
	return rc;
}

static bool plan_keeps_all(const struct render_plan *plan)
{
	if (plan->nout != plan->nsrc || plan->nout < 2)
		return false;
	for (size_t i = 0; i < plan->nout; i++)
		if (plan->cols[i].rule.kind != RULE_KEEP ||
		    plan->cols[i].src != i)
			return false;
	return true;
}

/*
 * Copy a field; short ones (most) with one fixed 16-byte move instead of a
 * call, when 16 bytes can be read from s without passing end.  The output
 * has room: block_bound leaves SHORT_COPY bytes over.
 */
static inline void put_bytes_fast(struct buf *out, const uint8_t *s, size_t n,
				  const uint8_t *end)
{
	if (n <= SHORT_COPY && s + SHORT_COPY <= end)
		memcpy(out->data + out->len, s, SHORT_COPY);
	else
		memcpy(out->data + out->len, s, n);
	out->len += n;
}

/*
 * The common case of an agreement that keeps every column: one pass over
 * the encoded bytes, no per-row field table.
 */
static int render_keep_all(const struct render_plan *plan, const uint8_t *block,
			   size_t len, uint32_t nrows, struct buf *out)
{
	size_t pos = 0;

	for (uint32_t r = 0; r < nrows; r++) {
		for (size_t i = 0; i < plan->nsrc; i++) {
			struct rowfmt_field f;

			if (rowfmt_next(block, len, &pos, 1, &f))
				return -EIO;
			if (f.needs_quote)
				put_quoted(out, f.data, f.len);
			else
				put_bytes_fast(out, f.data, f.len, block + len);
			buf_putc(out, i + 1 < plan->nsrc ? ',' : '\n');
		}
	}
	return pos == len ? 0 : -EIO;
}

int render_block(const struct render_plan *plan, const uint8_t *block,
		 size_t len, uint32_t nrows, struct buf *out, uint32_t *shown)
{
	struct rowfmt_field stack[STACK_FIELDS];
	struct rowfmt_field *fields = stack;
	struct render_ctx ctx = {.plan = plan};
	size_t pos = 0;
	uint32_t r;
	int rc;

	/* Every field takes at least one byte: more rows cannot be there. */
	if (plan->nsrc && (uint64_t)nrows * plan->nsrc > len)
		return -EIO;
	rc = buf_reserve(out, block_bound(plan, len, nrows));
	if (rc)
		return rc;
	if (shown)
		*shown = nrows;
	if (plan_keeps_all(plan) && !plan->filter)
		return render_keep_all(plan, block, len, nrows, out);
	if (plan->nsrc > STACK_FIELDS) {
		fields = malloc(plan->nsrc * sizeof(*fields));
		if (!fields)
			return -ENOMEM;
	}
	if (plan->has_pseudonyms) {
		ctx.md = EVP_MD_CTX_new();
		if (!ctx.md)
			rc = -ENOMEM;
	}
	for (r = 0; r < nrows && !rc; r++) {
		rc = rowfmt_next(block, len, &pos, plan->nsrc, fields);
		if (rc)
			break;
		if (filter_matches(plan->filter, fields))
			rc = render_row(&ctx, fields, out);
		else if (shown)
			(*shown)--;
	}
	if (!rc && pos != len)
		rc = -EIO;
	EVP_MD_CTX_free(ctx.md);
	if (fields != stack)
		free(fields);
	return rc;
}
