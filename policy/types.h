/*
 * types: the column types of SPEC (string, int, decimal, date, datetime),
 * checking a value against a type, and inferring a column's type from the
 * values it holds.  Values are raw field bytes (not NUL-terminated); an
 * empty value is NULL and fits every type.
 */
#ifndef GOVFS_TYPES_H
#define GOVFS_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum col_type {
	COL_STRING,
	COL_INT,
	COL_DECIMAL,
	COL_DATE,
	COL_DATETIME,
};

/* "string", "int", ... */
const char *col_type_name(enum col_type type);

/* Parse a type name; returns 0, or -EINVAL if name is not a type. */
int col_type_parse(const char *name, enum col_type *out);

/* -?[0-9]+ */
bool value_is_int(const char *s, size_t n);
/* -?[0-9]+(\.[0-9]+)? */
bool value_is_decimal(const char *s, size_t n);
/* YYYY-MM-DD, a real calendar day */
bool value_is_date(const char *s, size_t n);
/* YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|(+|-)HH:MM] */
bool value_is_datetime(const char *s, size_t n);

/*
 * Days from 1970-01-01 to y-m-d (proleptic Gregorian): consecutive days
 * get consecutive numbers, so it orders dates and measures instants.
 */
int64_t civil_days(int y, int m, int d);

/* A point in time: seconds from an arbitrary origin, and nanoseconds. */
struct instant {
	int64_t sec;
	int32_t nsec;
};

/* A datetime value as written, and the instant it names if zoned. */
struct datetime {
	bool zoned;	      /* an offset or Z was written */
	struct instant local; /* the date and time as written */
	struct instant utc;   /* zoned only */
};

/* Parse a datetime value (value_is_datetime); false if it is not one. */
bool datetime_parse(const char *s, size_t n, struct datetime *dt);

/* <0, 0 or >0 as a is before, at or after b. */
int instant_compare(const struct instant *a, const struct instant *b);

/* Whether a non-empty value fits type (strings fit anything). */
bool value_fits_type(enum col_type type, const char *s, size_t n);

/*
 * Type inference for one column: feed every value, then ask.  Inference
 * picks the narrowest of int, decimal, date, datetime that fits every
 * non-NULL value, never int or decimal when a value has a leading zero
 * ("007", "-01", "00.5"), and string otherwise (also for an all-NULL column).
 */
struct type_guess {
	unsigned candidates; /* bit set of enum col_type still possible */
};

void type_guess_init(struct type_guess *g);
void type_guess_feed(struct type_guess *g, const char *s, size_t n);
enum col_type type_guess_result(const struct type_guess *g);

#endif
