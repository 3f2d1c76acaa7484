/*
 * csv: the streaming RFC 4180 reader.  It owns the state machine that
 * splits pushed bytes into records and fields, the UTF-8 check, the header
 * checks and the one-line error messages.
 *
 * A record is a "logical stream" of bytes: what was already copied into
 * r->buf, followed by the part of the current chunk not copied yet (from
 * run).  Field offsets are positions in that stream.  Unquoted bytes,
 * separators, the quotes around a quoted field and CRs stay in the stream
 * (no field covers them), so nothing is copied while a record lies inside
 * one chunk: the callback then sees fields pointing into the caller's
 * chunk.  Only a record cut by a chunk end, or a doubled quote (whose
 * second quote is dropped), is copied into r->buf, which therefore never
 * grows beyond the largest record.
 *
 * The scan loops look bytes up in a class table and stop only at bytes
 * that matter (separators, quotes, CR, LF, NUL, non-ASCII); a non-ASCII
 * byte starts a UTF-8 check of the whole sequence, which may be cut by a
 * chunk end and finished on the next feed.
 */
#include "csv.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpath.h"
#include "utf8.h"

#define BUF_INITIAL 4096
#define FIELDS_INITIAL 64

enum csv_state {
	ST_FIELD_START, /* before the first byte of a field */
	ST_UNQUOTED,	/* inside an unquoted field */
	ST_QUOTED,	/* inside a quoted field */
	ST_QUOTE_SEEN, /* after a quote in a quoted field: closing or doubled */
	ST_CR,	       /* after a CR outside quotes, which must precede LF */
};

struct csv_reader {
	csv_record_fn fn;
	void *ctx;
	struct perr *err;

	enum csv_state state;
	bool done;	    /* finished, or failed: feed returns rc */
	int rc;		    /* result once done */
	unsigned bom_match; /* bytes of the BOM matched at the start */
	bool bom_decided;   /* the start was seen: BOM skipped or not there */
	bool any_input;	    /* a byte after the BOM was seen */

	uint64_t line;	     /* current physical line */
	uint64_t rec_line;   /* line where the current record starts */
	uint64_t quote_line; /* line where the current quoted field opened */
	uint64_t index;	     /* index of the current record */

	/* current record: copied bytes, fields ended so far */
	char *buf;
	size_t len, cap;
	size_t fstart; /* stream offset of the current field */
	size_t qend;   /* stream offset of the last quote (ST_QUOTE_SEEN) */
	bool fquote;   /* current field needs quoting */
	size_t nfields;
	size_t fcap;
	size_t *offs; /* stream offset of each field */
	struct csv_field *fields;

	/* UTF-8 sequence in progress: continuation bytes left, next range */
	unsigned utf8_need;
	unsigned char utf8_lo, utf8_hi;

	/* header names, for error messages and duplicate checks */
	size_t ncols;
	char *hbuf;
	struct csv_field *header;
};

/*
 * Bytes that stop the scan of a field: NUL, LF, CR, '"', ',' and every
 * non-ASCII byte.  Everything else is copied as it is.
 */
static const unsigned char stop[256] = {
    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x20 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x50 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x80 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x90 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xa0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xb0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xc0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xd0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xe0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xf0 */
};

static const unsigned char bom[3] = {0xef, 0xbb, 0xbf};

/*
 * " ('name')" for column col (0-based) when the header names it, else "":
 * quoted as text_quote does (control bytes and bytes that are not UTF-8
 * written \xHH, a long name cut), so the message stays one short line.
 */
static void column_label(const struct csv_reader *r, size_t col, char *out,
			 size_t size)
{
	char quoted[QUOTE_LEN];

	out[0] = '\0';
	if (col < r->ncols && r->header[col].len)
		snprintf(out, size, " ('%s')",
			 text_quote_bytes(quoted, r->header[col].data,
					  r->header[col].len));
}

/*
 * Write "line L, column C ('name'): what" into the reader's perr and
 * return -EINVAL.  col is 0-based.
 */
static int __attribute__((format(printf, 4, 5)))
fail(struct csv_reader *r, uint64_t line, size_t col, const char *fmt, ...)
{
	char label[QUOTE_LEN + 8];
	char what[160];
	va_list ap;

	column_label(r, col, label, sizeof(label));
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return perr_set(r->err, "line %" PRIu64 ", column %zu%s: %s", line,
			col + 1, label, what);
}

static int fail_nomem(struct csv_reader *r)
{
	perr_set(r->err, "line %" PRIu64 ": out of memory", r->line);
	return -ENOMEM;
}

/* The error for an invalid UTF-8 byte in the current field. */
static int fail_utf8(struct csv_reader *r)
{
	return fail(r, r->line, r->nfields, "invalid UTF-8");
}

static int fail_field_len(struct csv_reader *r)
{
	return fail(r, r->line, r->nfields, "field longer than %u bytes",
		    CSV_FIELD_MAX);
}

/*
 * Check the continuation bytes of the sequence in progress, as many as the
 * chunk holds; *pp advances past them.  A sequence cut by the chunk end
 * stays in progress for the next feed (or fails at finish).
 */
static int utf8_continue(struct csv_reader *r, const unsigned char **pp,
			 const unsigned char *end)
{
	const unsigned char *p = *pp;

	while (r->utf8_need > 0 && p < end) {
		if (*p < r->utf8_lo || *p > r->utf8_hi)
			return fail_utf8(r);
		r->utf8_lo = 0x80;
		r->utf8_hi = 0xbf;
		r->utf8_need--;
		p++;
	}
	*pp = p;
	return 0;
}

/* Check the UTF-8 sequence whose lead byte (>= 0x80) is at *pp. */
static int utf8_sequence(struct csv_reader *r, const unsigned char **pp,
			 const unsigned char *end)
{
	r->utf8_need = utf8_lead(**pp, &r->utf8_lo, &r->utf8_hi);
	if (r->utf8_need == 0)
		return fail_utf8(r);
	(*pp)++;
	return utf8_continue(r, pp, end);
}

static int grow_buf(struct csv_reader *r, size_t need)
{
	size_t cap = r->cap;
	char *buf;

	while (cap < need)
		cap *= 2;
	buf = realloc(r->buf, cap);
	if (!buf)
		return fail_nomem(r);
	r->buf = buf;
	r->cap = cap;
	return 0;
}

/* Copy n stream bytes from the chunk into the record buffer. */
static int append(struct csv_reader *r, const unsigned char *src, size_t n)
{
	int rc;

	if (n > r->cap - r->len) {
		rc = grow_buf(r, r->len + n);
		if (rc)
			return rc;
	}
	memcpy(r->buf + r->len, src, n);
	r->len += n;
	return 0;
}

/* Make room for one more field, up to CSV_COLUMNS_MAX. */
static int grow_fields(struct csv_reader *r)
{
	size_t cap = r->fcap * 2;
	struct csv_field *fields;
	size_t *offs;

	if (r->fcap == CSV_COLUMNS_MAX) {
		if (r->index == 0)
			return fail(r, r->line, r->nfields,
				    "more than %u columns", CSV_COLUMNS_MAX);
		return fail(r, r->rec_line, r->ncols,
			    "record has more than %u fields, header has %zu",
			    CSV_COLUMNS_MAX, r->ncols);
	}
	if (cap > CSV_COLUMNS_MAX)
		cap = CSV_COLUMNS_MAX;
	fields = realloc(r->fields, cap * sizeof(*fields));
	if (!fields)
		return fail_nomem(r);
	r->fields = fields;
	offs = realloc(r->offs, cap * sizeof(*offs));
	if (!offs)
		return fail_nomem(r);
	r->offs = offs;
	r->fcap = cap;
	return 0;
}

/* The current field ends at stream offset end. */
static inline int end_field(struct csv_reader *r, size_t end)
{
	size_t len = end - r->fstart;
	int rc;

	if (len > CSV_FIELD_MAX)
		return fail_field_len(r);
	if (r->nfields == r->fcap) {
		rc = grow_fields(r);
		if (rc)
			return rc;
	}
	r->offs[r->nfields] = r->fstart;
	r->fields[r->nfields].len = len;
	r->fields[r->nfields].needs_quote = r->fquote;
	r->nfields++;
	r->fquote = false;
	return 0;
}

static bool same_name(const struct csv_field *a, const struct csv_field *b)
{
	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* Keep a copy of the header's names, then refuse empty or repeated ones. */
static int accept_header(struct csv_reader *r)
{
	size_t total = 0, i, j;
	char *p;

	for (i = 0; i < r->nfields; i++)
		total += r->fields[i].len;
	r->hbuf = malloc(total ? total : 1);
	r->header = malloc(r->nfields * sizeof(*r->header));
	if (!r->hbuf || !r->header)
		return fail_nomem(r);
	p = r->hbuf;
	for (i = 0; i < r->nfields; i++) {
		memcpy(p, r->fields[i].data, r->fields[i].len);
		r->header[i] = r->fields[i];
		r->header[i].data = p;
		p += r->fields[i].len;
	}
	r->ncols = r->nfields;

	/* quadratic, but once per file and at most CSV_COLUMNS_MAX names */
	for (i = 0; i < r->ncols; i++) {
		if (r->header[i].len == 0)
			return fail(r, r->rec_line, i, "empty column name");
		for (j = 0; j < i; j++) {
			if (same_name(&r->header[i], &r->header[j]))
				return fail(r, r->rec_line, i,
					    "duplicate column name (also "
					    "column %zu)",
					    j + 1);
		}
	}
	return 0;
}

/*
 * The record whose last field has just ended is complete; the stream's
 * bytes not copied yet are [run, p) of the chunk.  Check it and hand it to
 * the callback, then start the next record.
 */
static int emit_record(struct csv_reader *r, const unsigned char *run,
		       const unsigned char *p)
{
	struct csv_record rec;
	const char *base = (const char *)run;
	size_t i;
	int rc;

	if (r->len > 0) {
		rc = append(r, run, (size_t)(p - run));
		if (rc)
			return rc;
		base = r->buf;
	}
	for (i = 0; i < r->nfields; i++)
		r->fields[i].data = base + r->offs[i];

	if (r->index == 0) {
		rc = accept_header(r);
		if (rc)
			return rc;
	} else if (r->nfields != r->ncols) {
		return fail(r, r->rec_line,
			    r->nfields < r->ncols ? r->nfields : r->ncols,
			    "record has %zu field%s, header has %zu",
			    r->nfields, r->nfields == 1 ? "" : "s", r->ncols);
	}

	rec.line = r->rec_line;
	rec.index = r->index;
	rec.nfields = r->nfields;
	rec.fields = r->fields;
	rc = r->fn(r->ctx, &rec, r->err);
	if (rc)
		return rc;

	r->index++;
	r->len = 0;
	r->nfields = 0;
	r->fstart = 0;
	r->state = ST_FIELD_START;
	return 0;
}

/* The LF at p ends the record (its last field already ended). */
static int end_line(struct csv_reader *r, const unsigned char *run,
		    const unsigned char *p)
{
	int rc = emit_record(r, run, p);

	r->line++;
	r->rec_line = r->line;
	return rc;
}

/* Length so far of the field still open at stream offset end, if any. */
static size_t open_field_len(const struct csv_reader *r, size_t end)
{
	switch (r->state) {
	case ST_UNQUOTED:
	case ST_QUOTED:
		return end - r->fstart;
	case ST_QUOTE_SEEN:
		return r->qend - r->fstart;
	case ST_FIELD_START:
	case ST_CR:
		break;
	}
	return 0;
}

/*
 * The separator at p (',', LF or CR outside quotes) ends the current
 * field at stream offset field_end; an LF also ends the record, whose
 * bytes end at p, and the next record's stream starts after it (*run).
 */
static int end_field_at(struct csv_reader *r, size_t field_end,
			const unsigned char **run, const unsigned char *p)
{
	int rc = end_field(r, field_end);

	if (rc)
		return rc;
	switch (*p) {
	case ',':
		r->fstart = r->len + (size_t)(p - *run) + 1;
		r->state = ST_FIELD_START;
		return 0;
	case '\r':
		r->state = ST_CR;
		return 0;
	}
	rc = end_line(r, *run, p);
	*run = p + 1;
	return rc;
}

/* The quote at *pp opens a quoted field. */
static void open_quote(struct csv_reader *r, const unsigned char **pp,
		       const unsigned char *run)
{
	r->quote_line = r->line;
	r->fstart = r->len + (size_t)(*pp - run) + 1;
	r->state = ST_QUOTED;
	(*pp)++;
}

/*
 * Scan an unquoted field from *pp to the byte that ends it (or the end of
 * the chunk), checking UTF-8 on the way, and act on that byte.
 */
static int parse_unquoted(struct csv_reader *r, const unsigned char **pp,
			  const unsigned char *end, const unsigned char **run)
{
	const unsigned char *p = *pp;
	int rc;

	for (;;) {
		while (end - p >= 4 && !stop[p[0]] && !stop[p[1]] &&
		       !stop[p[2]] && !stop[p[3]])
			p += 4;
		while (p < end && !stop[*p])
			p++;
		if (p == end || *p < 0x80)
			break;
		rc = utf8_sequence(r, &p, end);
		if (rc)
			return rc;
	}
	*pp = p;
	if (p == end)
		return 0;
	if (*p == '"')
		return fail(r, r->line, r->nfields,
			    "quote inside an unquoted field");
	if (*p == '\0')
		return fail(r, r->line, r->nfields, "NUL byte");
	*pp = p + 1;
	return end_field_at(r, r->len + (size_t)(p - *run), run, p);
}

/*
 * Scan a quoted field from *pp past the next quote (or to the end of the
 * chunk), counting lines and noting the bytes that make it need quoting.
 */
static int parse_quoted(struct csv_reader *r, const unsigned char **pp,
			const unsigned char *end, const unsigned char *run)
{
	const unsigned char *p = *pp;
	int rc = 0;

	for (;;) {
		while (p < end && !stop[*p])
			p++;
		if (p == end)
			break;
		if (*p == '"') {
			r->qend = r->len + (size_t)(p - run);
			r->state = ST_QUOTE_SEEN;
			p++;
			break;
		}
		if (*p >= 0x80) {
			rc = utf8_sequence(r, &p, end);
			if (rc)
				break;
			continue;
		}
		if (*p == '\0') {
			rc = fail(r, r->line, r->nfields, "NUL byte");
			break;
		}
		if (*p == '\n') {
			/* the LF belongs to this line: check before counting */
			if (r->len + (size_t)(p - run) + 1 - r->fstart >
			    CSV_FIELD_MAX) {
				rc = fail_field_len(r);
				break;
			}
			r->line++;
		}
		r->fquote = true;
		p++;
	}
	*pp = p;
	return rc;
}

/*
 * The byte after a quote inside a quoted field: another quote (a literal
 * one: keep the first, drop this one from the stream), or a separator
 * after the closing quote.
 */
static int after_quote(struct csv_reader *r, const unsigned char **pp,
		       const unsigned char **run)
{
	const unsigned char *p = *pp;
	int rc;

	switch (*p) {
	case '"':
		if (r->len + (size_t)(p - *run) - r->fstart > CSV_FIELD_MAX)
			return fail_field_len(r);
		rc = append(r, *run, (size_t)(p - *run));
		*run = p + 1;
		*pp = p + 1;
		r->fquote = true;
		r->state = ST_QUOTED;
		return rc;
	case ',':
	case '\n':
	case '\r':
		*pp = p + 1;
		return end_field_at(r, r->qend, run, p);
	}
	return fail(r, r->line, r->nfields, "text after a closing quote");
}

/* A CR outside quotes not followed by LF.  The field before the CR has
 * already ended, hence the column. */
static int fail_bare_cr(struct csv_reader *r)
{
	return fail(r, r->line, r->nfields - 1, "CR not followed by LF");
}

/* What follows a CR outside quotes: only LF. */
static int after_cr(struct csv_reader *r, const unsigned char **pp,
		    const unsigned char **run)
{
	const unsigned char *p = *pp;
	int rc;

	if (*p != '\n')
		return fail_bare_cr(r);
	rc = end_line(r, *run, p);
	*pp = p + 1;
	*run = p + 1;
	return rc;
}

/* Parse the chunk [p, end) from the current state. */
static int parse(struct csv_reader *r, const unsigned char *p,
		 const unsigned char *end)
{
	const unsigned char *run = p;
	int rc = 0;

	if (p == end)
		return 0;
	r->any_input = true;
	if (r->utf8_need > 0) {
		rc = utf8_continue(r, &p, end);
		if (rc)
			return rc;
	}

	while (p < end) {
		switch (r->state) {
		case ST_FIELD_START:
			if (*p == '"') {
				open_quote(r, &p, run);
				break;
			}
			r->state = ST_UNQUOTED;
			/* fall through */
		case ST_UNQUOTED:
			rc = parse_unquoted(r, &p, end, &run);
			break;
		case ST_QUOTED:
			rc = parse_quoted(r, &p, end, run);
			break;
		case ST_QUOTE_SEEN:
			rc = after_quote(r, &p, &run);
			break;
		case ST_CR:
			rc = after_cr(r, &p, &run);
			break;
		}
		if (rc)
			return rc;
	}

	/* keep the uncopied rest of the record for the next chunk */
	if (open_field_len(r, r->len + (size_t)(end - run)) > CSV_FIELD_MAX)
		return fail_field_len(r);
	return append(r, run, (size_t)(end - run));
}

/*
 * Skip the BOM at the very start of the input.  Bytes that began like a
 * BOM but turn out not to be one are parsed as data.
 */
static int skip_bom(struct csv_reader *r, const unsigned char **pp,
		    const unsigned char *end)
{
	const unsigned char *p = *pp;

	while (p < end && r->bom_match < sizeof(bom)) {
		if (*p != bom[r->bom_match]) {
			r->bom_decided = true;
			*pp = p;
			return parse(r, bom, bom + r->bom_match);
		}
		r->bom_match++;
		p++;
	}
	r->bom_decided = r->bom_match == sizeof(bom);
	*pp = p;
	return 0;
}

struct csv_reader *csv_reader_new(csv_record_fn fn, void *ctx, struct perr *err)
{
	struct csv_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->fn = fn;
	r->ctx = ctx;
	r->err = err;
	r->state = ST_FIELD_START;
	r->line = 1;
	r->rec_line = 1;
	r->cap = BUF_INITIAL;
	r->buf = malloc(r->cap);
	r->fcap = FIELDS_INITIAL;
	r->fields = malloc(r->fcap * sizeof(*r->fields));
	r->offs = malloc(r->fcap * sizeof(*r->offs));
	if (!r->buf || !r->fields || !r->offs) {
		csv_reader_free(r);
		return NULL;
	}
	return r;
}

/* Once done, the reader answers every call with rc. */
static int finish_with(struct csv_reader *r, int rc)
{
	r->done = true;
	r->rc = rc;
	return rc;
}

int csv_reader_feed(struct csv_reader *r, const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	const unsigned char *end = p + len;
	int rc;

	/* input after a successful finish is a bug of the caller */
	assert(!r->done || r->rc);
	if (r->done)
		return r->rc;
	if (!r->bom_decided) {
		rc = skip_bom(r, &p, end);
		if (rc)
			return finish_with(r, rc);
	}
	rc = parse(r, p, end);
	if (rc)
		return finish_with(r, rc);
	return 0;
}

/* End of input: the last record may lack its LF. */
static int finish_record(struct csv_reader *r)
{
	/* every byte of the stream is in buf by now */
	const unsigned char *none = (const unsigned char *)r->buf;
	size_t end = r->len;
	int rc;

	if (r->utf8_need > 0)
		return fail_utf8(r);
	switch (r->state) {
	case ST_FIELD_START:
		if (r->nfields == 0)
			return 0; /* the input ended with a line end */
		break;
	case ST_UNQUOTED:
		break;
	case ST_QUOTED:
		return fail(r, r->quote_line, r->nfields, "unterminated quote");
	case ST_QUOTE_SEEN:
		end = r->qend;
		break;
	case ST_CR:
		return fail_bare_cr(r);
	}
	rc = end_field(r, end);
	if (rc)
		return rc;
	return emit_record(r, none, none);
}

int csv_reader_finish(struct csv_reader *r)
{
	int rc;

	if (r->done)
		return r->rc;
	if (!r->bom_decided) {
		r->bom_decided = true;
		rc = parse(r, bom, bom + r->bom_match);
		if (rc)
			return finish_with(r, rc);
	}
	if (!r->any_input)
		return finish_with(r, perr_set(r->err, "empty file"));
	return finish_with(r, finish_record(r));
}

uint64_t csv_reader_line(const struct csv_reader *r)
{
	return r->line;
}

void csv_reader_free(struct csv_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r->fields);
	free(r->offs);
	free(r->hbuf);
	free(r->header);
	free(r);
}
