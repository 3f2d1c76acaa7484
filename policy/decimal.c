/*
 * decimal: exact comparison, bucketing and canonical text of int and
 * decimal values, done on their digits.  A value is split into a sign, its
 * integer digits without leading zeros and its fraction digits without
 * trailing zeros; two values are then equal exactly when those parts are.
 *
 * bucket:W scales x and W by 10^s (s = W's fraction digits), so that W
 * becomes an integer Wd of at most DECIMAL_WIDTH_DIGITS digits and x the
 * digit string M (its dropped fraction only decides rounding of negative
 * values).  The remainder r = M mod Wd is found digit by digit in 64 bits;
 * floor(x / W) * W is then M - r for x >= 0, and -(M + Wd - r) for x < 0
 * unless x was a multiple of W.  Only additions and subtractions of a
 * 64-bit number to a digit string are needed, never a big division.
 */
#include "decimal.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "types.h"

/* Leading zero digits put before M, room for the carry of adding up to
 * Wd (< 10^DECIMAL_WIDTH_DIGITS) to it. */
#define CARRY_ROOM (DECIMAL_WIDTH_DIGITS + 2)

struct decimal_parts {
	bool neg;	/* never set for zero */
	const char *ip; /* integer digits, no leading zeros ("" for 0) */
	size_t in;
	const char *fp; /* fraction digits, no trailing zeros */
	size_t fn;
};

static bool is_digit(char c)
{
	return (unsigned char)(c - '0') < 10;
}

/* Split s[0..n); bytes past the number's syntax are ignored. */
static void decimal_split(const char *s, size_t n, struct decimal_parts *p)
{
	size_t i = 0, start;

	p->neg = n > 0 && s[0] == '-';
	i = p->neg;
	while (i < n && s[i] == '0')
		i++;
	start = i;
	while (i < n && is_digit(s[i]))
		i++;
	p->ip = s + start;
	p->in = i - start;
	p->fp = s + i;
	p->fn = 0;
	if (i < n && s[i] == '.') {
		i++;
		start = i;
		while (i < n && is_digit(s[i]))
			i++;
		while (i > start && s[i - 1] == '0')
			i--;
		p->fp = s + start;
		p->fn = i - start;
	}
	if (p->in == 0 && p->fn == 0)
		p->neg = false;
}

static int sign_of(int c)
{
	return (c > 0) - (c < 0);
}

/* Compare the magnitudes of a and b. */
static int magnitude_compare(const struct decimal_parts *a,
			     const struct decimal_parts *b)
{
	size_t common = a->fn < b->fn ? a->fn : b->fn;
	int c;

	if (a->in != b->in)
		return a->in < b->in ? -1 : 1;
	c = a->in ? memcmp(a->ip, b->ip, a->in) : 0;
	if (c)
		return sign_of(c);
	c = common ? memcmp(a->fp, b->fp, common) : 0;
	if (c)
		return sign_of(c);
	/* The longer fraction ends in a nonzero digit, so it is larger. */
	if (a->fn != b->fn)
		return a->fn < b->fn ? -1 : 1;
	return 0;
}

int decimal_compare(const char *a, size_t na, const char *b, size_t nb)
{
	struct decimal_parts pa, pb;
	int c;

	decimal_split(a, na, &pa);
	decimal_split(b, nb, &pb);
	if (pa.neg != pb.neg)
		return pa.neg ? -1 : 1;
	c = magnitude_compare(&pa, &pb);
	return pa.neg ? -c : c;
}

/*
 * Parse a bucket width into Wd = W * 10^s and s.  Returns false unless
 * width is a positive [0-9]+(\.[0-9]+)? of at most DECIMAL_WIDTH_DIGITS
 * significant digits.
 */
static bool width_parse(const char *width, uint64_t *wd, size_t *s)
{
	const char *p = width;
	unsigned digits = 0;
	uint64_t v = 0;
	bool point = false;

	*s = 0;
	if (!is_digit(*p))
		return false;
	for (; *p; p++) {
		if (*p == '.' && !point && is_digit(p[1])) {
			point = true;
			continue;
		}
		if (!is_digit(*p))
			return false;
		if (v == 0 && *p == '0') {
			*s += point;
			continue;
		}
		if (++digits > DECIMAL_WIDTH_DIGITS)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
		*s += point;
	}
	*wd = v;
	return v != 0;
}

bool decimal_width_ok(const char *width)
{
	uint64_t wd;
	size_t s;

	return width_parse(width, &wd, &s);
}

/* d[0..n) += v, as decimal digit characters; the caller left room for the
 * carry. */
static void digits_add(char *d, size_t n, uint64_t v)
{
	unsigned carry = 0;
	size_t i = n;

	while (i-- > 0 && (v || carry)) {
		unsigned t =
		    (unsigned)(d[i] - '0') + (unsigned)(v % 10) + carry;

		v /= 10;
		carry = t >= 10;
		d[i] = (char)('0' + t % 10);
	}
}

/* d[0..n) -= v, as decimal digit characters; v is at most d's value. */
static void digits_sub(char *d, size_t n, uint64_t v)
{
	unsigned borrow = 0;
	size_t i = n;

	while (i-- > 0 && (v || borrow)) {
		int t = (d[i] - '0') - (int)(v % 10) - (int)borrow;

		v /= 10;
		borrow = t < 0;
		d[i] = (char)('0' + (t < 0 ? t + 10 : t));
	}
}

/*
 * Write neg, the integer digits ip[0..in) and the fraction fp[0..fn)
 * canonically at dst (leading zeros of ip and trailing zeros of fp are
 * dropped here); returns the length written, at most in + fn + 3.
 */
static size_t put_canonical(char *dst, bool neg, const char *ip, size_t in,
			    const char *fp, size_t fn)
{
	size_t o = 0;

	while (in > 0 && *ip == '0') {
		ip++;
		in--;
	}
	while (fn > 0 && fp[fn - 1] == '0')
		fn--;
	if (neg && (in || fn))
		dst[o++] = '-';
	if (in) {
		memmove(dst + o, ip, in);
		o += in;
	} else {
		dst[o++] = '0';
	}
	if (fn) {
		dst[o++] = '.';
		memmove(dst + o, fp, fn);
		o += fn;
	}
	return o;
}

int decimal_bucket(const char *x, size_t n, const char *width, struct buf *out)
{
	struct decimal_parts p;
	uint64_t wd, r = 0;
	size_t s, len, room, i;
	bool dropped;
	char *digits;
	int rc;

	if (!width_parse(width, &wd, &s) || !value_is_decimal(x, n))
		return -EINVAL;
	decimal_split(x, n, &p);
	/* M = the integer digits and s fraction digits, padded with zeros;
	 * a nonzero digit past them was dropped (fp ends in one). */
	dropped = p.fn > s;
	if (p.in > SIZE_MAX / 4 - s - CARRY_ROOM)
		return -ENOMEM;
	len = CARRY_ROOM + p.in + s;
	/* The answer is written first, then the digits of M after room for
	 * it: sign, point and a "0" make it at most len + 3 bytes. */
	room = len + 3;
	rc = buf_reserve(out, room + len);
	if (rc)
		return rc;
	digits = (char *)out->data + out->len + room;
	memset(digits, '0', CARRY_ROOM);
	memcpy(digits + CARRY_ROOM, p.ip, p.in);
	for (i = 0; i < s; i++)
		digits[CARRY_ROOM + p.in + i] = i < p.fn ? p.fp[i] : '0';

	for (i = CARRY_ROOM; i < len; i++)
		r = (r * 10 + (uint64_t)(digits[i] - '0')) % wd;
	if (!p.neg)
		digits_sub(digits, len, r);
	else if (r != 0 || dropped)
		digits_add(digits, len, wd - r);

	out->len += put_canonical((char *)out->data + out->len, p.neg, digits,
				  len - s, digits + len - s, s);
	return 0;
}

int decimal_canonical(const char *s, size_t n, struct buf *out)
{
	struct decimal_parts p;
	int rc;

	if (!value_is_decimal(s, n))
		return -EINVAL;
	decimal_split(s, n, &p);
	rc = buf_reserve(out, p.in + p.fn + 3);
	if (rc)
		return rc;
	out->len += put_canonical((char *)out->data + out->len, p.neg, p.ip,
				  p.in, p.fp, p.fn);
	return 0;
}
