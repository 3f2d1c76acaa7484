/*
 * filter: the `rows` filter of an agreement's dataset entry, compiled once
 * against the dataset's schema and then evaluated on every record.
 *
 * Language (SPEC, "Agreements"):
 *   expr      := term ('or' term)*
 *   term      := factor ('and' factor)*
 *   factor    := 'not' factor | '(' expr ')' | predicate
 *   predicate := column op value | value op column
 *              | column 'is' ['not'] 'null'
 *              | column ['not'] 'in' '(' value (',' value)* ')'
 *   op        := '=' | '!=' | '<>' | '<' | '<=' | '>' | '>='
 * Keywords are case-insensitive.  A column is bare, [A-Za-z_][A-Za-z0-9_]*
 * and not a keyword, or double-quoted with "" for a quote inside; names
 * match the schema exactly.  A value is a number, -?[0-9]+(\.[0-9]+)?, for
 * int and decimal columns, and a single-quoted string, with '' for a quote
 * inside, for string, date and datetime columns; it must fit the column's
 * type.  `<>` and `not in` are accepted as SQL writes them.
 *
 * Evaluation follows SQL's three-valued logic: a comparison or `in` with a
 * NULL (empty) field is UNKNOWN, `not` keeps UNKNOWN, `and` is FALSE if
 * either side is, `or` is TRUE if either side is, and a record passes only
 * when the whole filter is TRUE.  Comparisons are typed:
 *  - int, decimal: exact numeric order (decimal_compare);
 *  - string: bytewise, a prefix before the longer string;
 *  - date: as text (YYYY-MM-DD orders like the dates);
 *  - datetime: when both sides carry an offset (Z or +-HH:MM), as instants
 *    (UTC, fractional seconds included); otherwise as the local date and
 *    time written, fraction included, ignoring any offset.
 *
 * Refused at compile: syntax errors, unknown columns, a column graded
 * above max_level, a value that does not fit its column, the empty string
 * (an empty field is NULL: `is null` says that), `= null` (`is null`),
 * column-to-column and value-to-value comparisons, text longer than
 * FILTER_TEXT_MAX bytes and nesting deeper than FILTER_DEPTH_MAX.  Errors
 * are one line without a JSON path, starting "at N: " where N is the
 * 1-based position (in characters, not bytes) of the fault.
 */
#ifndef GOVFS_FILTER_H
#define GOVFS_FILTER_H

#include <stdbool.h>

#include "perr.h"
#include "rowfmt.h"
#include "schema.h"

#define FILTER_TEXT_MAX 65536
/* Levels of parentheses and `not`, together. */
#define FILTER_DEPTH_MAX 64

struct filter;

/*
 * Compile text (NUL-terminated) against schema, allowing columns graded
 * at most max_level.  On success *out is a filter the caller frees with
 * filter_free(); it keeps no pointer into text or schema.  Returns 0,
 * -EINVAL (err says why) or -ENOMEM (err says "out of memory"); *out is
 * NULL on error.
 */
int filter_compile(const char *text, const struct schema *schema, int max_level,
		   struct filter **out, struct perr *err)
    __attribute__((warn_unused_result));

/*
 * Whether the record fields[0..ncols) (indexed like the schema's columns,
 * len 0 being NULL) passes: the filter is TRUE for it.  A NULL filter
 * passes every record.  No allocation; safe to call from many threads on
 * one filter.
 */
bool filter_matches(const struct filter *f, const struct rowfmt_field *fields);

/* Free f; f may be NULL. */
void filter_free(struct filter *f);

#endif
