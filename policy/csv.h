/*
 * csv: a streaming RFC 4180 reader.  The caller pushes bytes in chunks of
 * any size; the reader calls back once per complete record.  Memory is
 * bounded by the largest record (each field at most CSV_FIELD_MAX bytes),
 * whatever the input size.
 *
 * Accepted: quoted fields with commas, doubled quotes, CR and LF inside
 * quotes (kept as they are), CRLF or LF line ends, a UTF-8 BOM at the start.
 * Refused with the physical line number (1-based, counting every LF of the
 * input) and the 1-based column: invalid UTF-8, a NUL byte, a field over
 * CSV_FIELD_MAX bytes, a quote inside an unquoted field or text after a
 * closing quote, a bare CR outside quotes, an unterminated quote (at the
 * line it opened), a record whose field count differs from the header's,
 * an empty or duplicate column name in the header, an empty input.
 */
#ifndef GOVFS_CSV_H
#define GOVFS_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "perr.h"

#define CSV_FIELD_MAX (1u << 20)
#define CSV_COLUMNS_MAX 4096

struct csv_field {
	const char *data; /* unquoted bytes, valid only during the callback */
	size_t len;	  /* 0 means empty, which is NULL */
	bool needs_quote; /* contains ',', '"', CR or LF */
};

struct csv_record {
	uint64_t line;	/* physical line where the record starts */
	uint64_t index; /* 0 for the header, then 1, 2, ... */
	size_t nfields;
	const struct csv_field *fields;
};

/*
 * Called for every record, the header first.  Return 0 to go on, or a
 * negative errno to stop: csv_reader_feed() then returns that value and
 * err is whatever the callback wrote into it.
 */
typedef int (*csv_record_fn)(void *ctx, const struct csv_record *rec,
			     struct perr *err);

struct csv_reader;

/* NULL on ENOMEM.  err is where every error of this reader is written. */
struct csv_reader *csv_reader_new(csv_record_fn fn, void *ctx,
				  struct perr *err);

/*
 * Feed the next len bytes.  Returns 0, -EINVAL (bad input; err says where),
 * -ENOMEM, or the callback's error.  After an error the reader is finished.
 */
int csv_reader_feed(struct csv_reader *r, const char *buf, size_t len)
    __attribute__((warn_unused_result));

/* Signal end of input: flush the last record, check quotes and emptiness. */
int csv_reader_finish(struct csv_reader *r) __attribute__((warn_unused_result));

/* Physical line the reader has reached (for progress and errors). */
uint64_t csv_reader_line(const struct csv_reader *r);

void csv_reader_free(struct csv_reader *r);

#endif
