/*
 * test_clock: RFC 3339 text of known instants, in UTC and in positive,
 * negative and non-whole-hour offsets, across day, month and year ends,
 * before 1970, at the ends of the int64 range, and the rule that a
 * fraction of a second is floored (never rounded, even before 1970).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "clock.h"

#define NS 1000000000LL

/* 2026-11-22T19:42:49Z, the instant clock.h uses as its example. */
#define EXAMPLE_S 1795376569LL

static void expect_utc(int64_t ns, const char *want)
{
	char buf[64];

	assert_ptr_equal(time_format_utc(ns, buf, sizeof(buf)), buf);
	assert_string_equal(buf, want);
}

static void expect_offset(int64_t ns, int offset_min, const char *want)
{
	char buf[64];

	assert_ptr_equal(time_format_offset(ns, offset_min, buf, sizeof(buf)),
			 buf);
	assert_string_equal(buf, want);
}

static void test_utc_known_instants(void **state)
{
	(void)state;
	expect_utc(0, "1970-01-01T00:00:00Z");
	expect_utc(EXAMPLE_S * NS, "2026-11-22T19:42:49Z");
	expect_utc(951782400LL * NS, "2000-02-29T00:00:00Z");
	expect_utc(1000000000LL * NS, "2001-09-09T01:46:40Z");
}

static void test_offset_zero_is_z(void **state)
{
	char a[64], b[64];

	(void)state;
	expect_offset(EXAMPLE_S * NS, 0, "2026-11-22T19:42:49Z");
	time_format_utc(EXAMPLE_S * NS + 123, a, sizeof(a));
	time_format_offset(EXAMPLE_S * NS + 123, 0, b, sizeof(b));
	assert_string_equal(a, b);
}

static void test_positive_offsets(void **state)
{
	(void)state;
	/* The header's own example: the next day in +08:00. */
	expect_offset(EXAMPLE_S * NS, 8 * 60, "2026-11-23T03:42:49+08:00");
	expect_offset(EXAMPLE_S * NS, 5 * 60 + 45, "2026-11-23T01:27:49+05:45");
	expect_offset(EXAMPLE_S * NS, 14 * 60, "2026-11-23T09:42:49+14:00");
	/* Across a year end. */
	expect_offset(1735687800LL * NS, 60, "2025-01-01T00:30:00+01:00");
}

static void test_negative_offsets(void **state)
{
	(void)state;
	expect_offset(EXAMPLE_S * NS, -5 * 60, "2026-11-22T14:42:49-05:00");
	expect_offset(EXAMPLE_S * NS, -(9 * 60 + 30),
		      "2026-11-22T10:12:49-09:30");
	/* Under an hour: the sign must survive a zero hour. */
	expect_offset(EXAMPLE_S * NS, -30, "2026-11-22T19:12:49-00:30");
	expect_offset(EXAMPLE_S * NS, 30, "2026-11-22T20:12:49+00:30");
	/* Back across a leap day and across the epoch. */
	expect_offset(951782400LL * NS, -60, "2000-02-28T23:00:00-01:00");
	expect_offset(0, -60, "1969-12-31T23:00:00-01:00");
	expect_offset(0, -12 * 60, "1969-12-31T12:00:00-12:00");
}

static void test_before_1970(void **state)
{
	(void)state;
	expect_utc(-1 * NS, "1969-12-31T23:59:59Z");
	expect_utc(-14182940LL * NS, "1969-07-20T20:17:40Z");
	expect_utc(-2208988800LL * NS, "1900-01-01T00:00:00Z");
	expect_offset(-14182940LL * NS, 8 * 60, "1969-07-21T04:17:40+08:00");
	expect_offset(-2208988800LL * NS, -1, "1899-12-31T23:59:00-00:01");
}

static void test_fractions_are_floored(void **state)
{
	(void)state;
	expect_utc(1, "1970-01-01T00:00:00Z");
	expect_utc(NS - 1, "1970-01-01T00:00:00Z");
	expect_utc(NS, "1970-01-01T00:00:01Z");
	expect_utc(2 * NS - 1, "1970-01-01T00:00:01Z");
	expect_utc(EXAMPLE_S * NS + NS - 1, "2026-11-22T19:42:49Z");
	/* Before 1970 floor goes down: truncation would give 00:00:00. */
	expect_utc(-1, "1969-12-31T23:59:59Z");
	expect_utc(-(NS - 1), "1969-12-31T23:59:59Z");
	expect_utc(-NS - 1, "1969-12-31T23:59:58Z");
	expect_offset(-1, -60, "1969-12-31T22:59:59-01:00");
}

static void test_int64_range_ends(void **state)
{
	(void)state;
	expect_utc(INT64_MAX, "2262-04-11T23:47:16Z");
	expect_utc(INT64_MIN, "1677-09-21T00:12:43Z");
	expect_offset(INT64_MAX, 14 * 60, "2262-04-12T13:47:16+14:00");
	expect_offset(INT64_MIN, -12 * 60, "1677-09-20T12:12:43-12:00");
}

static void test_short_buffer_truncates(void **state)
{
	char buf[11];

	(void)state;
	memset(buf, 'x', sizeof(buf));
	assert_ptr_equal(time_format_utc(EXAMPLE_S * NS, buf, sizeof(buf)),
			 buf);
	assert_string_equal(buf, "2026-11-22");
}

static int64_t realtime_ns(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static void test_now_is_the_wall_clock(void **state)
{
	int64_t before = realtime_ns();
	int64_t now = clock_now_ns();
	int64_t after = realtime_ns();

	(void)state;
	assert_true(before <= now);
	assert_true(now <= after);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_utc_known_instants),
	    cmocka_unit_test(test_offset_zero_is_z),
	    cmocka_unit_test(test_positive_offsets),
	    cmocka_unit_test(test_negative_offsets),
	    cmocka_unit_test(test_before_1970),
	    cmocka_unit_test(test_fractions_are_floored),
	    cmocka_unit_test(test_int64_range_ends),
	    cmocka_unit_test(test_short_buffer_truncates),
	    cmocka_unit_test(test_now_is_the_wall_clock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
