/*
 * libFuzzer target for policy/filter and policy/decimal.
 *
 * An input whose first byte is 0x01 exercises decimal: the rest is "a|b";
 * decimal_compare(a, b) and decimal_bucket(a, b) are checked against
 * their algebra (antisymmetry, floor(a/W)*W <= a, idempotence, canonical
 * text) and, where the values fit, against a 128-bit fixed-point oracle.
 *
 * Any other input is a filter text compiled against a fixed schema; a
 * filter that compiles is evaluated on fixed records, and so is its
 * negation, which must never show a record the filter shows.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "decimal.h"
#include "filter.h"
#include "rowfmt.h"
#include "schema.h"
#include "types.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NCOLS 9

static struct column columns[NCOLS] = {
    {"age", COL_INT, 1},
    {"name", COL_STRING, 1},
    {"cost", COL_DECIMAL, 2},
    {"visit_date", COL_DATE, 3},
    {"seen_at", COL_DATETIME, 1},
    {"phone", COL_STRING, 4},
    {"Culmen Length (mm)", COL_DECIMAL, 1},
    {"名字", COL_STRING, 1},
    {"district", COL_STRING, 1},
};

static const struct schema schema = {NCOLS, columns};

static const char *const rows[][NCOLS] = {
    {"30", "Lin'an", "0.30000", "2025-03-15", "2025-01-01T08:00:00+08:00",
     "13800138000", "39.1", "张三", "Xihu"},
    {"-007", "", "-0.0", "0000-01-01", "2025-01-01T08:00:00.25", "", "", "🦉",
     "Gongshu"},
    {"", "abc", "", "", "", "x", "-12.5", "", ""},
    {"123456789012345678901234567890", "a\nb,\"c\"", "1.0000000000000000001",
     "9999-12-31", "9999-12-31T23:59:59.999999999-23:59", "1", "0", "王五",
     "'"},
    {"0", "", "18446744073709551616", "2024-02-29", "2024-02-29T23:30:00Z", "",
     "00.50", "", "Binjiang"},
};

static void fields_of(const char *const *vals, struct rowfmt_field *f)
{
	for (size_t i = 0; i < NCOLS; i++) {
		f[i].data = (const uint8_t *)vals[i];
		f[i].len = strlen(vals[i]);
		f[i].needs_quote = false;
	}
}

static void fuzz_filter_text(const char *text)
{
	struct rowfmt_field f[NCOLS];
	struct filter *pos = NULL, *neg = NULL;
	struct perr err;
	char *negated;
	size_t len = strlen(text);

	if (filter_compile(text, &schema, 3, &pos, &err) != 0) {
		if (pos || strncmp(err.msg, "at ", 3) != 0)
			abort();
		return;
	}
	negated = malloc(len + 8);
	if (!negated)
		abort();
	snprintf(negated, len + 8, "not (%s)", text);
	/* It may be refused for depth or length, never for anything else. */
	if (filter_compile(negated, &schema, 3, &neg, &err) != 0 &&
	    !strstr(err.msg, "nested deeper") && !strstr(err.msg, "longer"))
		abort();
	for (size_t r = 0; r < ARRAY_SIZE(rows); r++) {
		bool a, b;

		fields_of(rows[r], f);
		a = filter_matches(pos, f);
		if (a != filter_matches(pos, f))
			abort();
		b = neg && filter_matches(neg, f);
		if (a && b)
			abort();
	}
	filter_free(pos);
	filter_free(neg);
	free(negated);
}

/* ---- the decimal oracle: values scaled by 10^9 in 128 bits ---- */

#define SCALE_DIGITS 9
#define INT_DIGITS_MAX 20

static bool to_fixed(const char *s, size_t n, __int128 *out)
{
	size_t i = 0, digits = 0, frac = 0;
	bool neg;
	__int128 v = 0;

	if (!value_is_decimal(s, n))
		return false;
	neg = s[0] == '-';
	i = neg;
	while (i < n && s[i] == '0')
		i++;
	for (; i < n && s[i] != '.'; i++) {
		if (++digits > INT_DIGITS_MAX)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (i < n)
		i++;
	for (; i < n; i++, frac++) {
		if (frac >= SCALE_DIGITS) {
			if (s[i] != '0')
				return false;
			continue;
		}
		v = v * 10 + (s[i] - '0');
	}
	for (; frac < SCALE_DIGITS; frac++)
		v *= 10;
	*out = neg ? -v : v;
	return true;
}

/* The canonical text of v / 10^9. */
static size_t fixed_text(__int128 v, char *out)
{
	char digits[64];
	size_t n = 0, o = 0, first;
	unsigned __int128 m =
	    v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;

	do {
		digits[n++] = (char)('0' + (int)(m % 10));
		m /= 10;
	} while (m);
	while (n <= SCALE_DIGITS)
		digits[n++] = '0';
	/* digits[] is least significant first */
	first = 0;
	while (first < SCALE_DIGITS && digits[first] == '0')
		first++;
	if (v < 0)
		out[o++] = '-';
	for (size_t i = n; i-- > SCALE_DIGITS;)
		out[o++] = digits[i];
	if (first < SCALE_DIGITS) {
		out[o++] = '.';
		for (size_t i = SCALE_DIGITS; i-- > first;)
			out[o++] = digits[i];
	}
	return o;
}

static bool is_canonical(const char *s, size_t n)
{
	size_t i = n > 0 && s[0] == '-';
	const char *point = memchr(s, '.', n);

	if (!value_is_decimal(s, n))
		return false;
	if (n - i >= 2 && s[i] == '0' && s[i + 1] != '.')
		return false; /* leading zero */
	if (point && s[n - 1] == '0')
		return false; /* trailing zero */
	if (i && n == 2 && s[1] == '0')
		return false; /* -0 */
	return true;
}

static void fuzz_decimal(const char *a, size_t na, const char *b, size_t nb)
{
	struct buf out = BUF_INIT, again = BUF_INIT;
	__int128 fa, fb;
	char want[128];
	size_t wn;
	int c;
	char *width;

	c = decimal_compare(a, na, b, nb);
	if (value_is_decimal(a, na) && value_is_decimal(b, nb)) {
		if ((c > 0) != (decimal_compare(b, nb, a, na) < 0) ||
		    decimal_compare(a, na, a, na) != 0)
			abort();
		if (to_fixed(a, na, &fa) && to_fixed(b, nb, &fb) &&
		    ((c < 0) != (fa < fb) || (c == 0) != (fa == fb)))
			abort();
	}
	width = strndup(b, nb);
	if (!width)
		abort();
	if (decimal_bucket(a, na, width, &out) != 0) {
		if (value_is_decimal(a, na) && decimal_width_ok(width))
			abort();
		goto out;
	}
	if (!is_canonical((const char *)out.data, out.len) ||
	    decimal_compare((const char *)out.data, out.len, a, na) > 0)
		abort();
	if (decimal_bucket((const char *)out.data, out.len, width, &again) !=
		0 ||
	    again.len != out.len || memcmp(again.data, out.data, out.len))
		abort();
	if (to_fixed(a, na, &fa) && to_fixed(b, nb, &fb) && fb > 0) {
		__int128 q = fa / fb;

		if (fa % fb != 0 && fa < 0)
			q--;
		wn = fixed_text(q * fb, want);
		if (wn != out.len || memcmp(want, out.data, wn) != 0)
			abort();
	}
out:
	buf_release(&out);
	buf_release(&again);
	free(width);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size > FILTER_TEXT_MAX + 16)
		return 0;
	if (size >= 1 && data[0] == 0x01) {
		const char *s = (const char *)data + 1;
		const char *bar = memchr(s, '|', size - 1);

		if (bar)
			fuzz_decimal(s, (size_t)(bar - s), bar + 1,
				     size - 1 - (size_t)(bar - s) - 1);
		return 0;
	}
	text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_filter_text(text);
	free(text);
	return 0;
}
