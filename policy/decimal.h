/*
 * decimal: exact arithmetic on the text of int and decimal values, as SPEC
 * writes them: -?[0-9]+(\.[0-9]+)?, any length, leading zeros allowed.
 * Nothing here goes through a double, so "0.3" equals "0.30000" and a
 * hundred-digit value is as exact as a two-digit one.
 *
 * Values are raw bytes (not NUL-terminated).  Functions that read a value
 * assume it has that syntax (ingest checked it, or the caller did with
 * value_is_decimal()); on other bytes they never read out of bounds, but
 * what they answer is unspecified.
 *
 * Canonical form (SPEC): no exponent, no leading '+', no leading zeros but
 * a single 0 before the point, no trailing zeros after the point, no
 * trailing point, and 0 never negative: "-007.50" is "-7.5", "-0.0" is "0".
 */
#ifndef GOVFS_DECIMAL_H
#define GOVFS_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The most significant digits a bucket width may have (see below). */
#define DECIMAL_WIDTH_DIGITS 18

/*
 * Compare the numbers a[0..na) and b[0..nb) exactly: <0, 0 or >0 as a is
 * less than, equal to or greater than b.  "-0" == "0" == "0.000",
 * "007" == "7".  Linear in the lengths; no allocation.
 */
int decimal_compare(const char *a, size_t na, const char *b, size_t nb);

/*
 * Whether width (NUL-terminated) can be the W of bucket:W: a positive
 * [0-9]+(\.[0-9]+)? whose digits, without the point and leading zeros, are
 * at most DECIMAL_WIDTH_DIGITS long ("0.0001" has 1, "1000.25" has 6).
 * That bound keeps the arithmetic in 64 bits.
 */
bool decimal_width_ok(const char *width);

/*
 * Append to out the canonical text of floor(x / W) * W, rounding towards
 * minus infinity, for x = x[0..n) and W = width (decimal_width_ok).  Exact
 * for any length of x.  Allocates only when out must grow.
 * Returns 0, -EINVAL if x is not a decimal or width is not ok (out is
 * unchanged), or -ENOMEM.
 */
int decimal_bucket(const char *x, size_t n, const char *width, struct buf *out)
    __attribute__((warn_unused_result));

/*
 * Append the canonical text of s[0..n) to out.  Returns 0, -EINVAL if s
 * is not a decimal (out is unchanged), or -ENOMEM.
 */
int decimal_canonical(const char *s, size_t n, struct buf *out)
    __attribute__((warn_unused_result));

/*
 * Append to out the canonical text of a + b, for the numbers a[0..na) and
 * b[0..nb), exactly, whatever their lengths.  Returns 0, -EINVAL if either
 * is not a decimal (out is unchanged), or -ENOMEM.
 */
int decimal_add(const char *a, size_t na, const char *b, size_t nb,
		struct buf *out) __attribute__((warn_unused_result));

/*
 * Append to out the canonical text of x / d rounded half away from zero
 * to places fraction digits, for the number x[0..n) and d >= 1: exact for
 * any length of x ("2.5" / 2 at 0 places is "1", "-0.0000005" / 1 at 6
 * places is "-0.000001").  Returns 0, -EINVAL if x is not a decimal or d
 * is 0 (out is unchanged), or -ENOMEM.
 */
int decimal_div_round(const char *x, size_t n, uint64_t d, unsigned places,
		      struct buf *out) __attribute__((warn_unused_result));

/*
 * An exact running sum of decimal values, never a float.  While it fits,
 * the sum is a 128-bit integer times 10^-scale (about 38 digits); a sum
 * that would overflow it goes on as canonical text of any length.  The
 * struct owns text; decimal_sum_release() frees it.
 */
__extension__ typedef __int128 decimal_int128;

/* The most fraction digits a sum held in 128 bits keeps (10^37 < 2^127). */
#define DECIMAL_SUM_SCALE_MAX 37

struct decimal_sum {
	decimal_int128 value; /* the sum times 10^scale, while text is NULL */
	uint32_t scale;	      /* fraction digits of value, at most
				 DECIMAL_SUM_SCALE_MAX */
	char *text;	      /* canonical text once value cannot hold it */
	size_t text_len;
};

#define DECIMAL_SUM_INIT                                                       \
	{                                                                      \
		0, 0, NULL, 0                                                  \
	}

/* Add the number x[0..n) (value_is_decimal) to s; 0, -EINVAL or -ENOMEM. */
int decimal_sum_add(struct decimal_sum *s, const char *x, size_t n)
    __attribute__((warn_unused_result));

/* Add the sum other to s; 0 or -ENOMEM. */
int decimal_sum_merge(struct decimal_sum *s, const struct decimal_sum *other)
    __attribute__((warn_unused_result));

/* Append the canonical text of s to out; 0 or -ENOMEM. */
int decimal_sum_text(const struct decimal_sum *s, struct buf *out)
    __attribute__((warn_unused_result));

/* Heap bytes s holds beyond the struct itself. */
size_t decimal_sum_heap_bytes(const struct decimal_sum *s);

void decimal_sum_release(struct decimal_sum *s);

#endif
