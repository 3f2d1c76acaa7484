/*
 * Unit tests of policy/decimal: exact comparison (signs, zeros, leading and
 * trailing zeros, values a double cannot tell apart, values past 64 bits),
 * bucket:W on positive, negative and zero values, fractional widths, huge
 * values, the width limit, and canonical text; exact addition of any
 * length, division by a count rounded half away from zero, and running sums
 * across the 128-bit fast path and its text fallback.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "decimal.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static int cmp(const char *a, const char *b)
{
	return decimal_compare(a, strlen(a), b, strlen(b));
}

static void test_compare_equal(void **state)
{
	static const char *const pairs[][2] = {
	    {"0", "0"},
	    {"-0", "0"},
	    {"0", "0.000"},
	    {"-0.0", "000"},
	    {"007", "7"},
	    {"-007", "-7.0"},
	    {"0.3", "0.30000"},
	    {"1.50", "01.5"},
	    {"123456789012345678901234567890",
	     "123456789012345678901234567890.0"},
	    {"-0.000000000000000000000000000001",
	     "-0.0000000000000000000000000000010"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
		if (cmp(pairs[i][0], pairs[i][1]) != 0 ||
		    cmp(pairs[i][1], pairs[i][0]) != 0)
			fail_msg("%s != %s", pairs[i][0], pairs[i][1]);
	}
}

static void test_compare_order(void **state)
{
	/* Each pair: first < second. */
	static const char *const pairs[][2] = {
	    {"-1", "0"},
	    {"0", "1"},
	    {"-2", "-1"},
	    {"-0.5", "-0.25"},
	    {"-1", "1"},
	    {"-0.0001", "0"},
	    {"0", "0.0001"},
	    {"9", "10"},
	    {"099", "100"},
	    {"1.09", "1.1"},
	    {"1.1", "1.10001"},
	    {"-1.10001", "-1.1"},
	    /* 0.1 + 0.2 in binary floating point, and 0.3 */
	    {"0.3", "0.30000000000000004"},
	    /* equal as doubles */
	    {"9007199254740992", "9007199254740993"},
	    {"1", "1.0000000000000000000000000001"},
	    {"0.99999999999999999999999999999", "1"},
	    /* past 64 bits */
	    {"18446744073709551615", "18446744073709551616"},
	    {"-18446744073709551617", "-18446744073709551616"},
	    {"99999999999999999999999999999999999999999999999999",
	     "100000000000000000000000000000000000000000000000000"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
		if (cmp(pairs[i][0], pairs[i][1]) >= 0 ||
		    cmp(pairs[i][1], pairs[i][0]) <= 0)
			fail_msg("not %s < %s", pairs[i][0], pairs[i][1]);
	}
}

static void test_compare_uses_lengths(void **state)
{
	(void)state;
	/* Only the first n bytes count. */
	assert_int_equal(decimal_compare("12345", 2, "12", 2), 0);
	assert_true(decimal_compare("1.59", 3, "1.6", 3) < 0);
	assert_int_equal(decimal_compare("", 0, "0", 1), 0);
}

static void check_bucket(const char *x, const char *width, const char *want)
{
	struct buf out = BUF_INIT;
	int rc;

	rc = decimal_bucket(x, strlen(x), width, &out);
	if (rc != 0)
		fail_msg("bucket:%s of %s: rc %d", width, x, rc);
	if (out.len != strlen(want) || memcmp(out.data, want, out.len) != 0)
		fail_msg("bucket:%s of %s: got '%.*s', want '%s'", width, x,
			 (int)out.len, (const char *)out.data, want);
	buf_release(&out);
}

static void test_bucket_examples(void **state)
{
	static const char *const cases[][3] = {
	    /* x, W, floor(x/W)*W */
	    {"37", "10", "30"},
	    {"30", "10", "30"},
	    {"39.99", "10", "30"},
	    {"-1", "10", "-10"},
	    {"-10", "10", "-10"},
	    {"-10.5", "10", "-20"},
	    {"-11", "10", "-20"},
	    {"0", "10", "0"},
	    {"9", "10", "0"},
	    {"1.74", "0.5", "1.5"},
	    {"-0.01", "0.5", "-0.5"},
	    {"-0.5", "0.5", "-0.5"},
	    {"-0.50000", "0.5", "-0.5"},
	    {"7", "2.5", "5"},
	    {"-7", "2.5", "-7.5"},
	    {"0.30000", "0.1", "0.3"},
	    {"0.3", "0.1", "0.3"},
	    {"0.29999999999999999999", "0.1", "0.2"},
	    {"-0.0", "1", "0"},
	    {"-0", "10", "0"},
	    {"-0.001", "1", "-1"},
	    {"0.001", "1", "0"},
	    {"007", "5", "5"},
	    {"-007.000", "5", "-10"},
	    {"12.345", "0.01", "12.34"},
	    {"-12.345", "0.01", "-12.35"},
	    {"12.345", "0.0001", "12.345"},
	    {"12.3", "0.0001", "12.3"},
	    {"1234", "100", "1200"},
	    {"1234", "0.75", "1233.75"},
	    {"999", "1000", "0"},
	    {"-999", "1000", "-1000"},
	    {"5", "123456789012345678", "0"},
	    {"-5", "123456789012345678", "-123456789012345678"},
	    {"999999999999999999999", "0.000000000000000001",
	     "999999999999999999999"},
	    {"0.0000000000000000000000000000000000000000000000000001",
	     "0.000000000000000000000000000000000000000000000000000001",
	     "0.0000000000000000000000000000000000000000000000000001"},
	    {"-0.0000000000000000000000000000000000000000000000000001", "0.1",
	     "-0.1"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		check_bucket(cases[i][0], cases[i][1], cases[i][2]);
}

/* s = prefix, then n copies of c, then suffix; s holds 256 bytes. */
static const char *digits(char *s, const char *prefix, char c, size_t n,
			  const char *suffix)
{
	size_t len = strlen(prefix);

	assert_true(len + n + strlen(suffix) < 256);
	memcpy(s, prefix, len);
	memset(s + len, c, n);
	strcpy(s + len + n, suffix);
	return s;
}

/* 100-digit values: exact, not rounded through a double. */
static void test_bucket_huge(void **state)
{
	char x[256], want[256];

	(void)state;
	/* 10^100 - 1 */
	check_bucket(digits(x, "", '9', 100, ""), "10",
		     digits(want, "", '9', 99, "0"));
	/* 10^99 + 7, and its negative */
	check_bucket(digits(x, "1", '0', 98, "7"), "5",
		     digits(want, "1", '0', 98, "5"));
	check_bucket(digits(x, "-1", '0', 98, "7"), "5",
		     digits(want, "-1", '0', 97, "10"));
	/* -(10^99 - 1): a carry through every digit */
	check_bucket(digits(x, "-", '9', 99, ""), "1000",
		     digits(want, "-1", '0', 99, ""));
	/* fraction digits far past the width's */
	check_bucket(digits(x, "-2.", '0', 100, "1"), "0.5", "-2.5");
	check_bucket(digits(x, "2.", '9', 100, ""), "0.25", "2.75");
}

static void test_bucket_appends(void **state)
{
	struct buf out = BUF_INIT;

	(void)state;
	assert_int_equal(buf_append(&out, "x,", 2), 0);
	assert_int_equal(decimal_bucket("-3", 2, "2", &out), 0);
	assert_int_equal(out.len, 4);
	assert_memory_equal(out.data, "x,-4", 4);
	buf_release(&out);
}

static void test_bucket_refusals(void **state)
{
	static const char *const bad_x[] = {
	    "", "-", "1.", ".5", "+1", "1e3", "1,5", "--1", "1.2.3", " 1",
	};
	static const char *const bad_w[] = {
	    "",
	    "0",
	    "0.000",
	    "-1",
	    "+1",
	    "1e3",
	    ".5",
	    "5.",
	    "abc",
	    "1234567890123456789",
	    "100000000000000000000",
	    "0.1234567890123456789",
	};
	struct buf out = BUF_INIT;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad_x); i++) {
		if (decimal_bucket(bad_x[i], strlen(bad_x[i]), "1", &out) !=
		    -EINVAL)
			fail_msg("x '%s' accepted", bad_x[i]);
		assert_int_equal(out.len, 0);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad_w); i++) {
		if (decimal_bucket("1", 1, bad_w[i], &out) != -EINVAL)
			fail_msg("width '%s' accepted", bad_w[i]);
		assert_int_equal(out.len, 0);
	}
	buf_release(&out);
}

static void test_width_ok(void **state)
{
	static const char *const good[] = {
	    "1",
	    "10",
	    "0.5",
	    "2.25",
	    "0.0001",
	    "123456789012345678",
	    "1234567890.12345678",
	    "0.000000000000000000000000000000000000000000000000000001",
	    "999999999999999999",
	    "0.999999999999999999",
	    "00012",
	};
	static const char *const bad[] = {
	    "",
	    "0",
	    "0.0",
	    "-1",
	    "1234567890123456789",
	    "1000000000000000000",
	    "12345678901234567.89",
	    "0.1000000000000000001",
	    "1.",
	    ".1",
	    "1x",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (!decimal_width_ok(good[i]))
			fail_msg("'%s' refused", good[i]);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (decimal_width_ok(bad[i]))
			fail_msg("'%s' accepted", bad[i]);
}

static void test_canonical(void **state)
{
	static const char *const pairs[][2] = {
	    {"0", "0"},
	    {"-0", "0"},
	    {"-0.000", "0"},
	    {"000", "0"},
	    {"007", "7"},
	    {"-007.50", "-7.5"},
	    {"1.000", "1"},
	    {"0.10", "0.1"},
	    {"-0.010", "-0.01"},
	    {"10", "10"},
	    {"100.001", "100.001"},
	    {"123456789012345678901234567890.000000000000000000001",
	     "123456789012345678901234567890.000000000000000000001"},
	};
	struct buf out = BUF_INIT;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
		const char *s = pairs[i][0], *want = pairs[i][1];

		out.len = 0;
		assert_int_equal(decimal_canonical(s, strlen(s), &out), 0);
		if (out.len != strlen(want) ||
		    memcmp(out.data, want, out.len) != 0)
			fail_msg("'%s': got '%.*s', want '%s'", s, (int)out.len,
				 (const char *)out.data, want);
	}
	out.len = 0;
	assert_int_equal(decimal_canonical("1e5", 3, &out), -EINVAL);
	assert_int_equal(decimal_canonical("", 0, &out), -EINVAL);
	assert_int_equal(out.len, 0);
	buf_release(&out);
}

/* Check that out holds exactly want, then empty it. */
static void expect_text(struct buf *out, const char *what, const char *want)
{
	if (out->len != strlen(want) || memcmp(out->data, want, out->len) != 0)
		fail_msg("%s: got '%.*s', want '%s'", what, (int)out->len,
			 (const char *)out->data, want);
	out->len = 0;
}

static void test_add(void **state)
{
	static const char *const cases[][3] = {
	    {"0.1", "0.2", "0.3"},
	    {"1", "-1", "0"},
	    {"-0.5", "0.5", "0"},
	    {"999.99", "0.01", "1000"},
	    {"-5.5", "2.25", "-3.25"},
	    {"2.25", "-5.5", "-3.25"},
	    {"-1.5", "-1.5", "-3"},
	    {"007", "0.030", "7.03"},
	    {"-0", "-0.0", "0"},
	    {"0.000000000000000000000000000001", "1",
	     "1.000000000000000000000000000001"},
	    {"99999999999999999999999999999999999999999", "1",
	     "100000000000000000000000000000000000000000"},
	    {"-100000000000000000000000000000000000000000", "0.1",
	     "-99999999999999999999999999999999999999999.9"},
	};
	struct buf out = BUF_INIT;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *a = cases[i][0], *b = cases[i][1];

		assert_int_equal(decimal_add(a, strlen(a), b, strlen(b), &out),
				 0);
		expect_text(&out, a, cases[i][2]);
	}
	assert_int_equal(decimal_add("1", 1, "x", 1, &out), -EINVAL);
	assert_int_equal(decimal_add("", 0, "1", 1, &out), -EINVAL);
	assert_int_equal(out.len, 0);
	buf_release(&out);
}

static void test_div_round(void **state)
{
	static const struct {
		const char *x;
		uint64_t d;
		unsigned places;
		const char *want;
	} cases[] = {
	    {"1", 3, 6, "0.333333"},
	    {"2", 3, 6, "0.666667"},
	    {"-2", 3, 6, "-0.666667"},
	    {"2.5", 2, 0, "1"}, /* 1.25 rounds down */
	    {"2.5", 1, 0, "3"},
	    {"-2.5", 1, 0, "-3"},
	    {"0.0000005", 1, 6, "0.000001"},
	    {"-0.0000005", 1, 6, "-0.000001"},
	    {"0.00000049999999", 1, 6, "0"},
	    {"-0.0000004", 1, 6, "0"},
	    {"0.3", 1, 6, "0.3"},
	    {"10", 4, 6, "2.5"},
	    /* exactly half: away from zero */
	    {"10", 4, 0, "3"},
	    {"-10", 4, 0, "-3"},
	    {"1", 2, 0, "1"},
	    {"3", 2, 0, "2"},
	    {"0.000005", 2, 6, "0.000003"},
	    {"-0.000005", 2, 6, "-0.000003"},
	    {"0", 7, 6, "0"},
	    /* 2r + 1 == d: the first dropped digit decides */
	    {"0.0000015", 3, 6, "0.000001"},
	    {"0.00000150", 3, 6, "0.000001"},
	    {"0.0000045", 3, 6, "0.000002"},
	    {"0.000004499", 3, 6, "0.000001"},
	    {"123456789012345678901234567890", 7, 6,
	     "17636684144620811271604938270"},
	    {"18446744073709551615", 18446744073709551615u, 6, "1"},
	    {"9223372036854775807.5", 18446744073709551615u, 6, "0.5"},
	};
	struct buf out = BUF_INIT;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *x = cases[i].x;

		assert_int_equal(decimal_div_round(x, strlen(x), cases[i].d,
						   cases[i].places, &out),
				 0);
		expect_text(&out, x, cases[i].want);
	}
	assert_int_equal(decimal_div_round("1", 1, 0, 6, &out), -EINVAL);
	assert_int_equal(decimal_div_round("1.", 2, 1, 6, &out), -EINVAL);
	assert_int_equal(out.len, 0);
	buf_release(&out);
}

static void sum_add(struct decimal_sum *s, const char *x)
{
	assert_int_equal(decimal_sum_add(s, x, strlen(x)), 0);
}

static void expect_sum(const struct decimal_sum *s, const char *want)
{
	struct buf out = BUF_INIT;

	assert_int_equal(decimal_sum_text(s, &out), 0);
	expect_text(&out, "sum", want);
	buf_release(&out);
}

static void test_sum_small(void **state)
{
	struct decimal_sum s = DECIMAL_SUM_INIT;

	(void)state;
	expect_sum(&s, "0");
	sum_add(&s, "0.1");
	sum_add(&s, "0.2");
	expect_sum(&s, "0.3");
	sum_add(&s, "-0.30");
	expect_sum(&s, "0");
	sum_add(&s, "-7");
	sum_add(&s, "0.005");
	expect_sum(&s, "-6.995");
	sum_add(&s, "0012.0000");
	expect_sum(&s, "5.005");
	assert_null(s.text);
	assert_int_equal(decimal_sum_heap_bytes(&s), 0);
	assert_int_equal(decimal_sum_add(&s, "1e3", 3), -EINVAL);
	expect_sum(&s, "5.005");
	decimal_sum_release(&s);
}

/* Ten million times 0.1 is exactly one million, as a double is not. */
static void test_sum_many_tenths(void **state)
{
	struct decimal_sum s = DECIMAL_SUM_INIT;
	double d = 0;

	(void)state;
	for (int i = 0; i < 10000000; i++) {
		sum_add(&s, "0.1");
		d += 0.1;
	}
	expect_sum(&s, "1000000");
	assert_true(d != 1000000.0);
	decimal_sum_release(&s);
}

static void test_sum_overflows_into_text(void **state)
{
	static const char big[] =
	    "9999999999999999999999999999999999999"; /* 37 */
	struct decimal_sum s = DECIMAL_SUM_INIT;

	(void)state;
	for (int i = 0; i < 100; i++)
		sum_add(&s, big);
	assert_non_null(s.text);
	assert_true(decimal_sum_heap_bytes(&s) > 0);
	expect_sum(&s, "999999999999999999999999999999999999900");
	sum_add(&s, "-999999999999999999999999999999999999900.5");
	expect_sum(&s, "-0.5");
	/* a value too long for 128 bits goes straight to text */
	decimal_sum_release(&s);
	sum_add(&s, "0.00000000000000000000000000000000000000001");
	sum_add(&s, "1");
	expect_sum(&s, "1.00000000000000000000000000000000000000001");
	decimal_sum_release(&s);
	/* so does a scale that would overflow the value */
	sum_add(&s, "100000000000000000000");
	sum_add(&s, "0.00000000000000000001");
	expect_sum(&s, "100000000000000000000.00000000000000000001");
	decimal_sum_release(&s);
}

static void test_sum_merge(void **state)
{
	struct decimal_sum a = DECIMAL_SUM_INIT, b = DECIMAL_SUM_INIT;
	struct decimal_sum t = DECIMAL_SUM_INIT;

	(void)state;
	sum_add(&a, "1.25");
	sum_add(&b, "-0.05");
	assert_int_equal(decimal_sum_merge(&a, &b), 0);
	expect_sum(&a, "1.2");
	for (int i = 0; i < 10; i++)
		sum_add(&t, "99999999999999999999999999999999999999");
	assert_non_null(t.text);
	/* small into text, text into small, text into text */
	assert_int_equal(decimal_sum_merge(&t, &a), 0);
	expect_sum(&t, "999999999999999999999999999999999999991.2");
	assert_int_equal(decimal_sum_merge(&b, &t), 0);
	expect_sum(&b, "999999999999999999999999999999999999991.15");
	assert_int_equal(decimal_sum_merge(&b, &t), 0);
	expect_sum(&b, "1999999999999999999999999999999999999982.35");
	decimal_sum_release(&a);
	decimal_sum_release(&b);
	decimal_sum_release(&t);
}

/* The 128-bit path and the text path agree on random values. */
static void test_sum_paths_agree(void **state)
{
	struct decimal_sum fast = DECIMAL_SUM_INIT;
	struct buf slow = BUF_INIT, next = BUF_INIT, got = BUF_INIT;
	unsigned seed = 12345;

	(void)state;
	assert_int_equal(buf_append(&slow, "0", 1), 0);
	for (int i = 0; i < 20000; i++) {
		char x[64];
		int n;

		seed = seed * 1103515245u + 12345u;
		n = snprintf(x, sizeof(x), "%s%u.%0*u", seed & 1 ? "-" : "",
			     (seed >> 8) % 100000, (int)(seed >> 4) % 5 + 1,
			     (seed >> 12) % 10);
		sum_add(&fast, x);
		next.len = 0;
		assert_int_equal(decimal_add((const char *)slow.data, slow.len,
					     x, (size_t)n, &next),
				 0);
		slow.len = 0;
		assert_int_equal(buf_append(&slow, next.data, next.len), 0);
	}
	assert_int_equal(decimal_sum_text(&fast, &got), 0);
	assert_int_equal(got.len, slow.len);
	assert_memory_equal(got.data, slow.data, slow.len);
	decimal_sum_release(&fast);
	buf_release(&slow);
	buf_release(&next);
	buf_release(&got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_compare_equal),
	    cmocka_unit_test(test_compare_order),
	    cmocka_unit_test(test_compare_uses_lengths),
	    cmocka_unit_test(test_bucket_examples),
	    cmocka_unit_test(test_bucket_huge),
	    cmocka_unit_test(test_bucket_appends),
	    cmocka_unit_test(test_bucket_refusals),
	    cmocka_unit_test(test_width_ok),
	    cmocka_unit_test(test_canonical),
	    cmocka_unit_test(test_add),
	    cmocka_unit_test(test_div_round),
	    cmocka_unit_test(test_sum_small),
	    cmocka_unit_test(test_sum_many_tenths),
	    cmocka_unit_test(test_sum_overflows_into_text),
	    cmocka_unit_test(test_sum_merge),
	    cmocka_unit_test(test_sum_paths_agree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
