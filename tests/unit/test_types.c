/*
 * Unit tests of policy/types: the type names, each value check on both
 * sides of its every rule, column type inference, and datetimes read as
 * local times and instants.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "types.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

typedef bool (*value_check)(const char *s, size_t n);

/* Each of good must pass check, each of bad must fail it.  The values are
 * copied to exact-size buffers so that a read past n shows under ASan. */
static void check_values(value_check check, const char *const *good,
			 size_t ngood, const char *const *bad, size_t nbad)
{
	char buf[64];
	size_t i, n;

	for (i = 0; i < ngood; i++) {
		n = strlen(good[i]);
		memcpy(buf, good[i], n);
		if (!check(buf, n))
			fail_msg("'%s' refused", good[i]);
	}
	for (i = 0; i < nbad; i++) {
		n = strlen(bad[i]);
		memcpy(buf, bad[i], n);
		if (check(buf, n))
			fail_msg("'%s' accepted", bad[i]);
	}
}

#define CHECK_VALUES(check, good, bad)                                         \
	check_values(check, good, N_OF(good), bad, N_OF(bad))

static void test_names(void **state)
{
	static const char *const names[] = {"string", "int", "decimal", "date",
					    "datetime"};
	static const enum col_type types[] = {COL_STRING, COL_INT, COL_DECIMAL,
					      COL_DATE, COL_DATETIME};
	enum col_type t;
	size_t i;

	(void)state;
	for (i = 0; i < N_OF(names); i++) {
		t = COL_STRING;
		assert_int_equal(col_type_parse(names[i], &t), 0);
		assert_int_equal(t, types[i]);
		assert_string_equal(col_type_name(types[i]), names[i]);
	}
	t = COL_DATE;
	assert_int_equal(col_type_parse("String", &t), -EINVAL);
	assert_int_equal(col_type_parse("float", &t), -EINVAL);
	assert_int_equal(col_type_parse("", &t), -EINVAL);
	assert_int_equal(col_type_parse("int ", &t), -EINVAL);
	assert_int_equal(col_type_parse(NULL, &t), -EINVAL);
	assert_int_equal(t, COL_DATE);
}

static void test_int(void **state)
{
	static const char *const good[] = {
	    "0",   "7",
	    "-0",  "-1",
	    "42",  "007",
	    "-01", "12345678901234567890123456789012345678901234567890",
	};
	static const char *const bad[] = {
	    "",	  "-",	"+1",  "1.",  "1.0",	  ".1",	 "1e3", " 1",
	    "1 ", "1-", "--1", "0x1", "\xd9\xa1", "1_0", "a",	"-a",
	};

	(void)state;
	CHECK_VALUES(value_is_int, good, bad);
}

static void test_decimal(void **state)
{
	static const char *const good[] = {
	    "0",
	    "-0",
	    "1",
	    "-12",
	    "0.5",
	    "-0.5",
	    "3.14159",
	    "10.0",
	    "00.5",
	    "007",
	    "123456789012345678901234567890.000000001",
	};
	static const char *const bad[] = {
	    "",	    "-",     ".",   "-.",   ".5",    "-.5",  "1.",
	    "-1.",  "1.2.3", "1,5", "+1.5", "1e5",   "1.5e", " 1",
	    "1.5 ", "1..5",  "inf", "nan",  "0x1.8",
	};

	(void)state;
	CHECK_VALUES(value_is_decimal, good, bad);
}

static void test_date(void **state)
{
	static const char *const good[] = {
	    "2024-01-01", "2024-12-31", "2024-02-29", "2000-02-29",
	    "2023-02-28", "1999-04-30", "0000-01-01", "9999-12-31",
	    "2025-01-31", "2025-03-31", "2025-05-31", "2025-07-31",
	    "2025-08-31", "2025-10-31", "2025-12-31", "2025-06-30",
	    "2025-09-30", "2025-11-30", "1600-02-29", "0004-02-29",
	};
	static const char *const bad[] = {
	    "",		  "2024-1-01",		 "2024-01-1",	"24-01-01",
	    "2024/01/01", "2024-00-10",		 "2024-13-01",	"2024-01-00",
	    "2024-01-32", "2023-02-29",		 "1900-02-29",	"2100-02-29",
	    "2024-02-30", "2024-04-31",		 "2024-06-31",	"2024-09-31",
	    "2024-11-31", "2024-01-01T",	 "2024-01-01 ", " 2024-01-01",
	    "202a-01-01", "2024-0a-01",		 "2024-01-0a",	"2024-01-01Z",
	    "20240101",	  "2024-01-01T00:00:00", "-024-01-01",	"2024_01-01",
	    "2024-01_01",
	};

	(void)state;
	CHECK_VALUES(value_is_date, good, bad);
}

static void test_datetime(void **state)
{
	static const char *const good[] = {
	    "2024-01-01T00:00:00",
	    "2024-12-31T23:59:59",
	    "2024-02-29T12:30:45Z",
	    "2024-01-01T00:00:00.5",
	    "2024-01-01T00:00:00.123",
	    "2024-01-01T00:00:00.123456789",
	    "2024-01-01T00:00:00.123456789Z",
	    "2024-01-01T00:00:00+08:00",
	    "2024-01-01T00:00:00-05:30",
	    "2024-01-01T00:00:00+00:00",
	    "2024-01-01T00:00:00-00:00",
	    "2024-01-01T00:00:00+23:59",
	    "2024-01-01T00:00:00.1+08:00",
	};
	static const char *const bad[] = {
	    "",
	    "2024-01-01",
	    "2024-01-01T",
	    "2024-01-01 00:00:00",
	    "2024-01-01t00:00:00",
	    "2024-01-01T00:00",
	    "2024-01-01T00:00:0",
	    "2024-01-01T24:00:00",
	    "2024-01-01T23:60:00",
	    "2024-01-01T23:59:60",
	    "2024-01-01T0:00:00",
	    "2024-01-01T00-00-00",
	    "2024-01-01T00:00-00",
	    "2024-01-01T00:00:00.",
	    "2024-01-01T00:00:00.Z",
	    "2024-01-01T00:00:00.1234567890",
	    "2024-01-01T00:00:00,5",
	    "2024-01-01T00:00:00z",
	    "2024-01-01T00:00:00ZZ",
	    "2024-01-01T00:00:00Z+08:00",
	    "2024-01-01T00:00:00+0800",
	    "2024-01-01T00:00:00+08",
	    "2024-01-01T00:00:00+8:00",
	    "2024-01-01T00:00:00+24:00",
	    "2024-01-01T00:00:00+08:60",
	    "2024-01-01T00:00:00+08:00:00",
	    "2024-01-01T00:00:00 +08:00",
	    "2024-01-01T00:00:00+08:0a",
	    "2024-01-01T00:00:00*08:00",
	    "2024-01-01T00:00:00.5x",
	    "2023-02-29T00:00:00",
	    "2024-13-01T00:00:00",
	    "2024-01-01T00:00:00 ",
	    "2024-01-01Taa:00:00",
	};

	(void)state;
	CHECK_VALUES(value_is_datetime, good, bad);
}

static void test_fits_type(void **state)
{
	(void)state;
	/* an empty value is NULL and fits every type */
	assert_true(value_fits_type(COL_INT, "", 0));
	assert_true(value_fits_type(COL_DECIMAL, "", 0));
	assert_true(value_fits_type(COL_DATE, "", 0));
	assert_true(value_fits_type(COL_DATETIME, "", 0));
	assert_true(value_fits_type(COL_STRING, "", 0));

	assert_true(value_fits_type(COL_STRING, "anything, really", 16));
	assert_true(value_fits_type(COL_INT, "-12", 3));
	assert_false(value_fits_type(COL_INT, "1.5", 3));
	assert_true(value_fits_type(COL_DECIMAL, "1.5", 3));
	assert_false(value_fits_type(COL_DECIMAL, "x", 1));
	assert_true(value_fits_type(COL_DATE, "2024-02-29", 10));
	assert_false(value_fits_type(COL_DATE, "2023-02-29", 10));
	assert_true(value_fits_type(COL_DATETIME, "2024-02-29T01:02:03Z", 20));
	assert_false(value_fits_type(COL_DATETIME, "2024-02-29", 10));
	/* a type check of an explicit schema allows leading zeros */
	assert_true(value_fits_type(COL_INT, "007", 3));
	/* only the first n bytes count */
	assert_true(value_fits_type(COL_INT, "12x", 2));
	assert_false(value_fits_type(COL_INT, "12x", 3));
}

/* The type inferred from a column of NUL-separated values (an empty value
 * is written as an empty string between two NULs). */
static enum col_type guess(const char *values, size_t len)
{
	struct type_guess g;
	size_t i = 0, n;

	type_guess_init(&g);
	while (i < len) {
		n = strlen(values + i);
		type_guess_feed(&g, values + i, n);
		i += n + 1;
	}
	return type_guess_result(&g);
}

#define GUESS(lit) guess(lit, sizeof(lit) - 1)

static void test_guess(void **state)
{
	(void)state;
	assert_int_equal(GUESS("1\0-2\0"
			       "30"),
			 COL_INT);
	assert_int_equal(GUESS("0\0-0\0"
			       "10"),
			 COL_INT);
	assert_int_equal(GUESS("1\0"
			       "2.5\0-3"),
			 COL_DECIMAL);
	assert_int_equal(GUESS("2.5\0"
			       "1"),
			 COL_DECIMAL);
	assert_int_equal(GUESS("0.5\0-0.25"), COL_DECIMAL);
	assert_int_equal(GUESS("2024-01-01\0"
			       "2024-02-29"),
			 COL_DATE);
	assert_int_equal(GUESS("2024-01-01T00:00:00Z\0"
			       "2024-01-01T08:00:00+08:00"),
			 COL_DATETIME);
	assert_int_equal(GUESS("hello\0"
			       "1"),
			 COL_STRING);
	assert_int_equal(GUESS("1\0hello"), COL_STRING);
	assert_int_equal(GUESS("1\0"
			       "2024-01-01"),
			 COL_STRING);
	assert_int_equal(GUESS("2024-01-01\0"
			       "2024-01-01T00:00:00"),
			 COL_STRING);
	assert_int_equal(GUESS("2024-01-01T00:00:00\0"
			       "2024-01-01"),
			 COL_STRING);
	assert_int_equal(GUESS("2024-01-01\0"
			       "2023-02-29"),
			 COL_STRING);
	assert_int_equal(GUESS("1.5\0"
			       "2024-01-01"),
			 COL_STRING);
	/* only what was fed counts: a single value decides */
	assert_int_equal(GUESS("x"), COL_STRING);
	assert_int_equal(GUESS("5"), COL_INT);
}

static void test_guess_nulls(void **state)
{
	struct type_guess g;

	(void)state;
	/* NULLs are ignored */
	assert_int_equal(GUESS("\0"
			       "1\0\0"
			       "2\0"),
			 COL_INT);
	assert_int_equal(GUESS("\0"
			       "2024-01-01\0"),
			 COL_DATE);
	assert_int_equal(GUESS("\0"
			       "1.5\0"),
			 COL_DECIMAL);
	/* an all-NULL or empty column is string */
	assert_int_equal(GUESS("\0\0"), COL_STRING);
	type_guess_init(&g);
	assert_int_equal(type_guess_result(&g), COL_STRING);
	type_guess_feed(&g, "", 0);
	assert_int_equal(type_guess_result(&g), COL_STRING);
}

static void test_guess_leading_zero(void **state)
{
	(void)state;
	/* codes and phone numbers stay strings */
	assert_int_equal(GUESS("007"), COL_STRING);
	assert_int_equal(GUESS("-01"), COL_STRING);
	assert_int_equal(GUESS("00.5"), COL_STRING);
	assert_int_equal(GUESS("00"), COL_STRING);
	assert_int_equal(GUESS("1\0"
			       "2\0"
			       "0138"),
			 COL_STRING);
	assert_int_equal(GUESS("0138\0"
			       "1\0"
			       "2"),
			 COL_STRING);
	assert_int_equal(GUESS("1.5\0"
			       "01.5"),
			 COL_STRING);
	assert_int_equal(GUESS("-00.5"), COL_STRING);
	/* a lone zero, or zero before the point, is no leading zero */
	assert_int_equal(GUESS("0"), COL_INT);
	assert_int_equal(GUESS("-0"), COL_INT);
	assert_int_equal(GUESS("0.5"), COL_DECIMAL);
	assert_int_equal(GUESS("-0.5"), COL_DECIMAL);
	assert_int_equal(GUESS("10\0"
			       "100"),
			 COL_INT);
	assert_int_equal(GUESS("0.05"), COL_DECIMAL);
	/* dates have leading zeros and are still dates */
	assert_int_equal(GUESS("0001-01-01"), COL_DATE);
}

static struct datetime parsed(const char *s)
{
	struct datetime dt;

	assert_true(datetime_parse(s, strlen(s), &dt));
	return dt;
}

static void test_datetime_parse(void **state)
{
	struct datetime a, b;

	(void)state;
	a = parsed("1970-01-02T00:00:01.5");
	assert_false(a.zoned);
	assert_int_equal(a.local.sec, 86401);
	assert_int_equal(a.local.nsec, 500000000);
	a = parsed("2024-03-01T08:00:00+08:00");
	b = parsed("2024-03-01T00:00:00Z");
	assert_true(a.zoned && b.zoned);
	assert_int_equal(instant_compare(&a.utc, &b.utc), 0);
	assert_true(instant_compare(&a.local, &b.local) > 0);
	b = parsed("2024-02-29T23:59:59.999999999-00:30");
	assert_true(instant_compare(&a.utc, &b.utc) < 0);
	assert_int_equal(b.local.nsec, 999999999);
	assert_false(datetime_parse("2024-02-30T00:00:00", 19, &a));
	assert_false(datetime_parse("2024-02-29", 10, &a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_int),
	    cmocka_unit_test(test_decimal),
	    cmocka_unit_test(test_date),
	    cmocka_unit_test(test_datetime),
	    cmocka_unit_test(test_fits_type),
	    cmocka_unit_test(test_guess),
	    cmocka_unit_test(test_guess_nulls),
	    cmocka_unit_test(test_guess_leading_zero),
	    cmocka_unit_test(test_datetime_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
