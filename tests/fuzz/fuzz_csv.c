/*
 * libFuzzer target for policy/csv, with the type checks and inference of
 * policy/types and the record encoding of policy/rowfmt that ingest runs
 * on every record.
 *
 * Input: byte 0 picks the mode (bit 0: declared types, as with --schema,
 * else inference; the other bits seed the declared types), bytes 1-2 seed
 * the chunk splits, and the rest is the CSV.  The CSV is read twice, in
 * one chunk and in chunks of pseudo-random sizes (1 byte to 4 KiB), and
 * both reads must give the same records, the same result and the same
 * error text, one line with no control byte.  Every record must keep the
 * reader's promises (field count, no NUL, valid UTF-8, needs_quote exactly when
 * the field holds ',', '"', CR or LF) and survive rowfmt encoding and decoding
 * unchanged.  With inference, a third read checks the inferred type of each
 * column against a model written here: the first of int, decimal, date,
 * datetime that every non-NULL value fits (no int or decimal when a value has a
 * leading zero), else string.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "csv.h"
#include "perr.h"
#include "rowfmt.h"
#include "types.h"

#define MODE_DECLARED 0x01
#define CHUNK_MAX 4096
#define NAME_CHECK_MAX 256 /* headers wider than this skip the O(n^2) check */

/* Which types every non-NULL value of a column fits, as the model sees it. */
#define FIT(t) (1u << (t))
#define FIT_ALL                                                                \
	(FIT(COL_INT) | FIT(COL_DECIMAL) | FIT(COL_DATE) | FIT(COL_DATETIME))

struct run {
	bool declared;
	unsigned type_seed;
	/* transcript of what the reader produced */
	uint64_t hash;
	uint64_t records;
	uint64_t last_line;
	size_t ncols;
	/* inference: the reader's guess, then the model's */
	struct type_guess *guess;
	unsigned *fits;
	bool *seen;
	bool verify; /* third read: check values against guessed types */
	const enum col_type *guessed;
	struct buf encoded;
};

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static enum col_type declared_type(const struct run *run, size_t col)
{
	return (enum col_type)((run->type_seed + col) % 5);
}

/* Strict UTF-8, as the reader promises it: no overlong, no surrogate. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t cp;
		size_t len;

		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			len = 2;
			cp = s[i] & 0x1f;
		} else if ((s[i] & 0xf0) == 0xe0) {
			len = 3;
			cp = s[i] & 0x0f;
		} else if ((s[i] & 0xf8) == 0xf0) {
			len = 4;
			cp = s[i] & 0x07;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* One line, and nothing a terminal would act on. */
static bool printable(const char *msg)
{
	for (const char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

static bool needs_quote(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
			return true;
	return false;
}

/* "007", "-01", "00.5": digits after an optional '-' that start with 0. */
static bool leading_zero(const char *s, size_t n)
{
	size_t i = n > 0 && s[0] == '-';

	return n - i >= 2 && s[i] == '0' && s[i + 1] >= '0' && s[i + 1] <= '9';
}

static unsigned model_fits(const char *s, size_t n)
{
	unsigned fits = 0;

	if (!leading_zero(s, n) && value_is_int(s, n))
		fits |= FIT(COL_INT);
	if (!leading_zero(s, n) && value_is_decimal(s, n))
		fits |= FIT(COL_DECIMAL);
	if (value_is_date(s, n))
		fits |= FIT(COL_DATE);
	if (value_is_datetime(s, n))
		fits |= FIT(COL_DATETIME);
	return fits;
}

static void check_header(const struct csv_record *rec)
{
	if (rec->nfields > NAME_CHECK_MAX)
		return;
	for (size_t i = 0; i < rec->nfields; i++) {
		if (rec->fields[i].len == 0)
			abort();
		for (size_t j = 0; j < i; j++)
			if (rec->fields[i].len == rec->fields[j].len &&
			    !memcmp(rec->fields[i].data, rec->fields[j].data,
				    rec->fields[i].len))
				abort();
	}
}

static void check_field(const struct csv_field *f)
{
	if (f->len > CSV_FIELD_MAX || memchr(f->data, '\0', f->len) ||
	    !utf8_valid((const uint8_t *)f->data, f->len) ||
	    f->needs_quote != needs_quote(f->data, f->len))
		abort();
}

/* The record must come back from rowfmt exactly as it went in. */
static void check_rowfmt(struct run *run, const struct csv_record *rec)
{
	struct rowfmt_field out[64];
	size_t pos = 0;

	if (rec->nfields > 64)
		return;
	run->encoded.len = 0;
	if (rowfmt_append(&run->encoded, rec->fields, rec->nfields))
		abort();
	if (rowfmt_next(run->encoded.data, run->encoded.len, &pos, rec->nfields,
			out) ||
	    pos != run->encoded.len)
		abort();
	for (size_t i = 0; i < rec->nfields; i++)
		if (out[i].len != rec->fields[i].len ||
		    (out[i].len &&
		     (out[i].needs_quote != rec->fields[i].needs_quote ||
		      memcmp(out[i].data, rec->fields[i].data, out[i].len))))
			abort();
}

static int start_columns(struct run *run, size_t n)
{
	run->ncols = n;
	if (run->declared || run->verify || run->guess)
		return 0;
	run->guess = calloc(n, sizeof(*run->guess));
	run->fits = calloc(n, sizeof(*run->fits));
	run->seen = calloc(n, sizeof(*run->seen));
	if (!run->guess || !run->fits || !run->seen)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		type_guess_init(&run->guess[i]);
		run->fits[i] = FIT_ALL;
	}
	return 0;
}

/* What ingest does with a value, plus the model of inference. */
static int take_value(struct run *run, const struct csv_record *rec, size_t i,
		      struct perr *err)
{
	const struct csv_field *f = &rec->fields[i];

	if (run->verify) {
		if (!value_fits_type(run->guessed[i], f->data, f->len) ||
		    ((run->guessed[i] == COL_INT ||
		      run->guessed[i] == COL_DECIMAL) &&
		     leading_zero(f->data, f->len)))
			abort();
		return 0;
	}
	if (run->declared) {
		if (!value_fits_type(declared_type(run, i), f->data, f->len))
			return perr_set(err, "line %llu, column %zu: not a %s",
					(unsigned long long)rec->line, i + 1,
					col_type_name(declared_type(run, i)));
		return 0;
	}
	type_guess_feed(&run->guess[i], f->data, f->len);
	run->fits[i] &= model_fits(f->data, f->len);
	run->seen[i] = true;
	return 0;
}

static int on_record(void *ctx, const struct csv_record *rec, struct perr *err)
{
	struct run *run = ctx;
	uint64_t meta[3] = {rec->index, rec->line, rec->nfields};
	int rc;

	if (rec->index != run->records || rec->line < 1 ||
	    (rec->index > 0 && rec->line <= run->last_line) ||
	    rec->nfields == 0)
		abort();
	run->last_line = rec->line;
	run->hash = fnv(run->hash, meta, sizeof(meta));
	if (rec->index == 0) {
		check_header(rec);
		rc = start_columns(run, rec->nfields);
		if (rc)
			return rc;
	} else if (rec->nfields != run->ncols) {
		abort();
	}
	for (size_t i = 0; i < rec->nfields; i++) {
		const struct csv_field *f = &rec->fields[i];
		uint64_t fmeta[2] = {f->len, f->needs_quote};

		check_field(f);
		run->hash = fnv(run->hash, fmeta, sizeof(fmeta));
		run->hash = fnv(run->hash, f->data, f->len);
		if (rec->index > 0 && f->len) {
			rc = take_value(run, rec, i, err);
			if (rc)
				return rc;
		}
	}
	if (rec->index > 0)
		check_rowfmt(run, rec);
	run->records++;
	return 0;
}

/* A pseudo-random chunk length from state: mostly short, sometimes long. */
static size_t next_chunk(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return (x & 3) ? 1 + (x >> 8) % 16 : 1 + (x >> 8) % CHUNK_MAX;
}

/* Read csv in chunks (seed 0: one chunk); returns the reader's result. */
static int read_csv(struct run *run, const char *csv, size_t len, uint32_t seed,
		    struct perr *err)
{
	struct csv_reader *r = csv_reader_new(on_record, run, err);
	uint32_t state = seed;
	size_t off = 0;
	int rc = 0;

	if (!r)
		abort();
	run->hash = 0xcbf29ce484222325ULL;
	while (off < len && !rc) {
		size_t n = seed ? next_chunk(&state) : len;

		if (n > len - off)
			n = len - off;
		rc = csv_reader_feed(r, csv + off, n);
		off += n;
	}
	if (!rc)
		rc = csv_reader_finish(r);
	/* Once failed or finished, the reader keeps its answer. */
	if (rc && csv_reader_finish(r) != rc)
		abort();
	csv_reader_free(r);
	return rc;
}

static void check_inference(struct run *run, const char *csv, size_t len)
{
	enum col_type *guessed = calloc(run->ncols + 1, sizeof(*guessed));
	static const enum col_type order[] = {COL_INT, COL_DECIMAL, COL_DATE,
					      COL_DATETIME};
	struct run verify = {.verify = true};
	struct perr err;

	if (!guessed)
		abort();
	for (size_t i = 0; i < run->ncols; i++) {
		enum col_type want = COL_STRING;

		guessed[i] = type_guess_result(&run->guess[i]);
		for (size_t k = 0; run->seen[i] && k < 4; k++) {
			if (run->fits[i] & FIT(order[k])) {
				want = order[k];
				break;
			}
		}
		if (guessed[i] != want)
			abort();
	}
	verify.guessed = guessed;
	if (read_csv(&verify, csv, len, 0, &err) != 0)
		abort();
	buf_release(&verify.encoded);
	free(guessed);
}

static void run_release(struct run *run)
{
	free(run->guess);
	free(run->fits);
	free(run->seen);
	buf_release(&run->encoded);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole = {0}, chunked = {0};
	struct perr err_whole, err_chunked;
	const char *csv;
	size_t len;
	uint32_t seed;
	int rc_whole, rc_chunked;

	if (size < 3)
		return 0;
	whole.declared = chunked.declared = data[0] & MODE_DECLARED;
	whole.type_seed = chunked.type_seed = data[0] >> 1;
	seed = (uint32_t)data[1] << 8 | data[2] | 0x10000;
	csv = (const char *)data + 3;
	len = size - 3;

	rc_whole = read_csv(&whole, csv, len, 0, &err_whole);
	rc_chunked = read_csv(&chunked, csv, len, seed, &err_chunked);
	if (rc_whole != rc_chunked || whole.records != chunked.records ||
	    whole.hash != chunked.hash)
		abort();
	if (rc_whole && (strcmp(err_whole.msg, err_chunked.msg) ||
			 !printable(err_whole.msg)))
		abort();
	if (!rc_whole && !whole.declared && whole.guess)
		check_inference(&whole, csv, len);
	run_release(&whole);
	run_release(&chunked);
	return 0;
}
