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
 *
 * Sums and averages (views): decimal_add() adds two digit strings of any
 * length place by place; decimal_div_round() divides one by a 64-bit count
 * digit by digit.  A decimal_sum keeps the common case, a sum of about 38
 * digits, in one 128-bit integer, and falls back on decimal_add() only
 * when that would overflow.
 */
#include "decimal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
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

/* The digit at place k of a window of L integer and some fraction digits,
 * where p's integer digits end at L and its fraction starts there. */
static unsigned digit_at(const struct decimal_parts *p, size_t L, size_t k)
{
	if (k < L)
		return k < L - p->in ? 0
				     : (unsigned)(p->ip[k - (L - p->in)] - '0');
	k -= L;
	return k < p->fn ? (unsigned)(p->fp[k] - '0') : 0;
}

static size_t max_size(size_t a, size_t b)
{
	return a > b ? a : b;
}

int decimal_add(const char *a, size_t na, const char *b, size_t nb,
		struct buf *out)
{
	const struct decimal_parts *big, *small;
	struct decimal_parts pa, pb;
	size_t L, F, len, room, k;
	bool subtract;
	char *digits;
	int carry = 0;
	int rc;

	if (!value_is_decimal(a, na) || !value_is_decimal(b, nb))
		return -EINVAL;
	decimal_split(a, na, &pa);
	decimal_split(b, nb, &pb);
	big = magnitude_compare(&pa, &pb) < 0 ? &pb : &pa;
	small = big == &pa ? &pb : &pa;
	subtract = pa.neg != pb.neg;
	/* One more integer place for the carry of an addition. */
	L = max_size(pa.in, pb.in) + 1;
	F = max_size(pa.fn, pb.fn);
	if (L > SIZE_MAX / 4 - F)
		return -ENOMEM;
	len = L + F;
	room = len + 3;
	rc = buf_reserve(out, room + len);
	if (rc)
		return rc;
	digits = (char *)out->data + out->len + room;
	for (k = len; k-- > 0;) {
		int t = (int)digit_at(big, L, k) + carry;
		int s = (int)digit_at(small, L, k);

		t += subtract ? -s : s;
		carry = t < 0 ? -1 : t >= 10 ? 1 : 0;
		digits[k] = (char)('0' + t - 10 * carry);
	}
	/* |big| >= |small|: a subtraction never borrows past the top. */
	out->len += put_canonical((char *)out->data + out->len, big->neg,
				  digits, L, digits + L, F);
	return 0;
}

/*
 * Long division of |x| * 10^places by d, one digit at a time: the
 * remainder r stays below d, so r * 10 + digit fits in 128 bits.  Once the
 * digits up to the last kept place are used, the rest of x is a fraction
 * T in [0, 1) of that place, and the dropped part of the quotient is
 * (r + T) / d.  It is at least one half exactly when 2r >= d, or when
 * 2r + 1 == d and T >= 0.5, which is when T's first digit is 5 or more.
 */
int decimal_div_round(const char *x, size_t n, uint64_t d, unsigned places,
		      struct buf *out)
{
	unsigned __int128 r = 0;
	struct decimal_parts p;
	size_t qlen, room, k;
	unsigned tail;
	char *q;
	int rc;

	if (d == 0 || !value_is_decimal(x, n))
		return -EINVAL;
	decimal_split(x, n, &p);
	if (p.in > SIZE_MAX / 4 - places - 1)
		return -ENOMEM;
	/* A leading 0 takes the carry of rounding up. */
	qlen = 1 + p.in + places;
	room = qlen + 3;
	rc = buf_reserve(out, room + qlen);
	if (rc)
		return rc;
	q = (char *)out->data + out->len + room;
	q[0] = '0';
	for (k = 0; k < p.in + places; k++) {
		r = r * 10 + digit_at(&p, p.in, k);
		q[1 + k] = (char)('0' + (unsigned)(r / d));
		r %= d;
	}
	tail = places < p.fn ? (unsigned)(p.fp[places] - '0') : 0;
	if (2 * r >= d || (2 * r + 1 == d && tail >= 5))
		digits_add(q, qlen, 1);
	out->len += put_canonical((char *)out->data + out->len, p.neg, q,
				  1 + p.in, q + 1 + p.in, places);
	return 0;
}

/* ---- exact sums ---- */

/* Significant digits a 128-bit sum takes from one value, and the most
 * fraction digits it keeps. */
#define SUM_DIGITS_MAX DECIMAL_SUM_SCALE_MAX

/* x[0..n) as an integer and its fraction digits, if it is a decimal with
 * at most SUM_DIGITS_MAX significant digits and fraction digits. */
static bool sum_parse(const char *x, size_t n, decimal_int128 *v,
		      uint32_t *scale)
{
	bool neg = n > 0 && x[0] == '-', frac = false;
	size_t i = neg, start = i;
	decimal_int128 m = 0;
	unsigned digits = 0;
	uint32_t f = 0;

	for (; i < n; i++) {
		if (x[i] == '.' && !frac && i > start && i + 1 < n) {
			frac = true;
			continue;
		}
		if (!is_digit(x[i]))
			return false;
		if (m || x[i] != '0')
			digits++;
		if (digits > SUM_DIGITS_MAX)
			return false;
		m = m * 10 + (x[i] - '0');
		f += frac;
	}
	if (i == start || f > SUM_DIGITS_MAX)
		return false;
	*v = neg ? -m : m;
	*scale = f;
	return true;
}

/* v * 10^(to - from), or false if that overflows. */
static bool scale_up(decimal_int128 *v, uint32_t from, uint32_t to)
{
	for (; from < to; from++)
		if (__builtin_mul_overflow(*v, 10, v))
			return false;
	return true;
}

/* s += v * 10^-sv in 128 bits; false (s unchanged) if it does not fit. */
static bool small_add(struct decimal_sum *s, decimal_int128 v, uint32_t sv)
{
	decimal_int128 acc = s->value;
	uint32_t sc = s->scale;

	if (sv > sc) {
		if (!scale_up(&acc, sc, sv))
			return false;
		sc = sv;
	} else if (!scale_up(&v, sv, sc)) {
		return false;
	}
	if (__builtin_add_overflow(acc, v, &acc))
		return false;
	s->value = acc;
	s->scale = sc;
	return true;
}

/* Append the canonical text of v * 10^-scale. */
static int small_text(decimal_int128 v, uint32_t scale, struct buf *out)
{
	unsigned __int128 m =
	    v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
	char rev[SUM_DIGITS_MAX + 8], digits[SUM_DIGITS_MAX + 8];
	size_t nd = 0;
	int rc;

	do {
		rev[nd++] = (char)('0' + (unsigned)(m % 10));
		m /= 10;
	} while (m);
	while (nd <= scale)
		rev[nd++] = '0';
	for (size_t i = 0; i < nd; i++)
		digits[i] = rev[nd - 1 - i];
	rc = buf_reserve(out, nd + 3);
	if (rc)
		return rc;
	out->len += put_canonical((char *)out->data + out->len, v < 0, digits,
				  nd - scale, digits + nd - scale, scale);
	return 0;
}

/* Replace s's text by its sum with x[0..n). */
static int text_add(struct decimal_sum *s, const char *x, size_t n)
{
	struct buf sum = BUF_INIT;
	int rc = decimal_add(s->text, s->text_len, x, n, &sum);

	if (rc) {
		buf_release(&sum);
		return rc;
	}
	free(s->text);
	s->text = (char *)sum.data;
	s->text_len = sum.len;
	return 0;
}

/* Go on as text: the 128-bit value is about to overflow. */
static int to_text(struct decimal_sum *s)
{
	struct buf text = BUF_INIT;
	int rc = small_text(s->value, s->scale, &text);

	if (rc) {
		buf_release(&text);
		return rc;
	}
	s->text = (char *)text.data;
	s->text_len = text.len;
	return 0;
}

int decimal_sum_add(struct decimal_sum *s, const char *x, size_t n)
{
	decimal_int128 v;
	uint32_t sv;
	int rc;

	if (!s->text && sum_parse(x, n, &v, &sv) && small_add(s, v, sv))
		return 0;
	if (!value_is_decimal(x, n))
		return -EINVAL;
	if (!s->text) {
		rc = to_text(s);
		if (rc)
			return rc;
	}
	return text_add(s, x, n);
}

int decimal_sum_merge(struct decimal_sum *s, const struct decimal_sum *other)
{
	struct buf text = BUF_INIT;
	int rc;

	if (!other->text && !s->text &&
	    small_add(s, other->value, other->scale))
		return 0;
	rc = decimal_sum_text(other, &text);
	if (!rc && !s->text)
		rc = to_text(s);
	if (!rc)
		rc = text_add(s, (const char *)text.data, text.len);
	buf_release(&text);
	return rc;
}

int decimal_sum_text(const struct decimal_sum *s, struct buf *out)
{
	if (s->text)
		return buf_append(out, s->text, s->text_len);
	return small_text(s->value, s->scale, out);
}

size_t decimal_sum_heap_bytes(const struct decimal_sum *s)
{
	return s->text ? s->text_len : 0;
}

void decimal_sum_release(struct decimal_sum *s)
{
	free(s->text);
	memset(s, 0, sizeof(*s));
}
