/*
 * types: the column types of SPEC, the check of a value against each, and
 * the inference of a column's type from its values.  Every check is one
 * pass over the value's bytes with no allocation and no locale, because
 * ingest runs one on every field of every row.
 *
 * Dates are proleptic Gregorian years 0000 to 9999 (year 0 is a leap
 * year); a datetime has no leap second (second <= 59) and only 'T' and 'Z'
 * in upper case, as SPEC writes them.
 */
#include "types.h"

#include <errno.h>
#include <string.h>

#define TYPE_BIT(t) (1u << (t))
#define GUESS_ANY                                                              \
	(TYPE_BIT(COL_STRING) | TYPE_BIT(COL_INT) | TYPE_BIT(COL_DECIMAL) |    \
	 TYPE_BIT(COL_DATE) | TYPE_BIT(COL_DATETIME))

#define DATE_LEN 10	/* YYYY-MM-DD */
#define DATETIME_MIN 19 /* YYYY-MM-DDTHH:MM:SS */
#define FRACTION_MAX 9	/* digits after the seconds' point */
#define OFFSET_LEN 6	/* +HH:MM */

static const char *const type_names[] = {
    [COL_STRING] = "string",	 [COL_INT] = "int",
    [COL_DECIMAL] = "decimal",	 [COL_DATE] = "date",
    [COL_DATETIME] = "datetime",
};

#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

const char *col_type_name(enum col_type type)
{
	if ((unsigned)type >= NTYPES)
		return "unknown";
	return type_names[type];
}

int col_type_parse(const char *name, enum col_type *out)
{
	size_t i;

	if (!name)
		return -EINVAL;
	for (i = 0; i < NTYPES; i++) {
		if (strcmp(name, type_names[i]) == 0) {
			*out = (enum col_type)i;
			return 0;
		}
	}
	return -EINVAL;
}

static inline bool is_digit(char c)
{
	return (unsigned char)(c - '0') < 10;
}

/* Number of leading ASCII digits of s[0..n). */
static inline size_t digit_run(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && is_digit(s[i]))
		i++;
	return i;
}

/* The two digits at s as a number, or -1 if they are not both digits. */
static inline int two_digits(const char *s)
{
	if (!is_digit(s[0]) || !is_digit(s[1]))
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

bool value_is_int(const char *s, size_t n)
{
	size_t sign = n > 0 && s[0] == '-';

	return n > sign && digit_run(s + sign, n - sign) == n - sign;
}

bool value_is_decimal(const char *s, size_t n)
{
	size_t i = n > 0 && s[0] == '-';
	size_t digits = digit_run(s + i, n - i);

	if (digits == 0)
		return false;
	i += digits;
	if (i == n)
		return true;
	if (s[i] != '.')
		return false;
	i++;
	digits = digit_run(s + i, n - i);
	return digits > 0 && i + digits == n;
}

static bool is_leap_year(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int year, int month)
{
	static const unsigned char days[12] = {31, 28, 31, 30, 31, 30,
					       31, 31, 30, 31, 30, 31};

	if (month == 2 && is_leap_year(year))
		return 29;
	return days[month - 1];
}

/* Whether s[0..DATE_LEN) is YYYY-MM-DD naming a real day. */
static bool date_ok(const char *s)
{
	int century = two_digits(s);
	int year = two_digits(s + 2);
	int month = two_digits(s + 5);
	int day = two_digits(s + 8);

	if (century < 0 || year < 0 || s[4] != '-' || s[7] != '-')
		return false;
	if (month < 1 || month > 12 || day < 1)
		return false;
	return day <= days_in_month(century * 100 + year, month);
}

/* Whether s[0..5) is HH:MM with HH <= max_hour and MM <= 59. */
static bool hour_minute_ok(const char *s, int max_hour)
{
	int hour = two_digits(s);
	int minute = two_digits(s + 3);

	return hour >= 0 && hour <= max_hour && s[2] == ':' && minute >= 0 &&
	       minute <= 59;
}

bool value_is_date(const char *s, size_t n)
{
	return n == DATE_LEN && date_ok(s);
}

/* Whether s[0..n) is nothing, "Z", or an offset +HH:MM / -HH:MM. */
static bool zone_ok(const char *s, size_t n)
{
	if (n == 0)
		return true;
	if (n == 1)
		return s[0] == 'Z';
	return n == OFFSET_LEN && (s[0] == '+' || s[0] == '-') &&
	       hour_minute_ok(s + 1, 23);
}

bool value_is_datetime(const char *s, size_t n)
{
	size_t i = DATETIME_MIN;
	size_t digits;
	int second;

	if (n < DATETIME_MIN || !date_ok(s) || s[DATE_LEN] != 'T')
		return false;
	if (!hour_minute_ok(s + 11, 23) || s[16] != ':')
		return false;
	second = two_digits(s + 17);
	if (second < 0 || second > 59)
		return false;
	if (i < n && s[i] == '.') {
		i++;
		digits = digit_run(s + i, n - i);
		if (digits == 0 || digits > FRACTION_MAX)
			return false;
		i += digits;
	}
	return zone_ok(s + i, n - i);
}

bool value_fits_type(enum col_type type, const char *s, size_t n)
{
	if (n == 0)
		return true;
	switch (type) {
	case COL_INT:
		return value_is_int(s, n);
	case COL_DECIMAL:
		return value_is_decimal(s, n);
	case COL_DATE:
		return value_is_date(s, n);
	case COL_DATETIME:
		return value_is_datetime(s, n);
	case COL_STRING:
		break;
	}
	return true;
}

/* "0" followed by a digit, after an optional '-': "007", "-01", "00.5". */
static bool has_leading_zero(const char *s, size_t n)
{
	size_t sign = n > 0 && s[0] == '-';

	return n >= sign + 2 && s[sign] == '0' && is_digit(s[sign + 1]);
}

/*
 * candidates is 0 until the first non-NULL value; from then on the string
 * bit is always set, so that an all-NULL column and a column that fits no
 * narrower type both come out as string.
 */
void type_guess_init(struct type_guess *g)
{
	g->candidates = 0;
}

void type_guess_feed(struct type_guess *g, const char *s, size_t n)
{
	const unsigned numeric = TYPE_BIT(COL_INT) | TYPE_BIT(COL_DECIMAL);
	unsigned fits = TYPE_BIT(COL_STRING);

	if (n == 0)
		return;
	if (g->candidates == 0)
		g->candidates = GUESS_ANY;
	if ((g->candidates & numeric) && !has_leading_zero(s, n)) {
		/* every int is also a decimal */
		if ((g->candidates & TYPE_BIT(COL_INT)) && value_is_int(s, n))
			fits |= numeric;
		else if ((g->candidates & TYPE_BIT(COL_DECIMAL)) &&
			 value_is_decimal(s, n))
			fits |= TYPE_BIT(COL_DECIMAL);
	}
	if ((g->candidates & TYPE_BIT(COL_DATE)) && value_is_date(s, n))
		fits |= TYPE_BIT(COL_DATE);
	if ((g->candidates & TYPE_BIT(COL_DATETIME)) && value_is_datetime(s, n))
		fits |= TYPE_BIT(COL_DATETIME);
	g->candidates &= fits;
}

enum col_type type_guess_result(const struct type_guess *g)
{
	static const enum col_type preference[] = {COL_INT, COL_DECIMAL,
						   COL_DATE, COL_DATETIME};
	size_t i;

	for (i = 0; i < sizeof(preference) / sizeof(preference[0]); i++) {
		if (g->candidates & TYPE_BIT(preference[i]))
			return preference[i];
	}
	return COL_STRING;
}

/*
 * Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar.
 * Years are counted from March, so that a leap day ends its year, and
 * shifted by one 400-year cycle (146097 days) so that every division is
 * of a non-negative number.
 */
int64_t civil_days(int y, int m, int d)
{
	int64_t year = (int64_t)y + 400 - (m <= 2);
	int64_t month = (m + 9) % 12; /* March is 0 */
	int64_t day_of_year = (153 * month + 2) / 5 + d - 1;
	int64_t days =
	    year * 365 + year / 4 - year / 100 + year / 400 + day_of_year;

	return days - 146097 - 719468; /* 719468: 0000-03-01 to 1970-01-01 */
}

bool datetime_parse(const char *s, size_t n, struct datetime *dt)
{
	size_t i = DATETIME_MIN;
	int32_t nsec = 0;
	int digits = 0;
	int64_t day;

	if (!value_is_datetime(s, n))
		return false;
	day = civil_days(two_digits(s) * 100 + two_digits(s + 2),
			 two_digits(s + 5), two_digits(s + 8));
	dt->local.sec = day * 86400 + two_digits(s + 11) * 3600 +
			two_digits(s + 14) * 60 + two_digits(s + 17);
	if (i < n && s[i] == '.') {
		for (i++; i < n && is_digit(s[i]); i++, digits++)
			nsec = nsec * 10 + (s[i] - '0');
		for (; digits < FRACTION_MAX; digits++)
			nsec *= 10;
	}
	dt->local.nsec = nsec;
	dt->zoned = i < n;
	dt->utc = dt->local;
	if (i < n && s[i] != 'Z') {
		int minutes =
		    two_digits(s + i + 1) * 60 + two_digits(s + i + 4);

		dt->utc.sec -= (s[i] == '-' ? -minutes : minutes) * 60;
	}
	return true;
}

int instant_compare(const struct instant *a, const struct instant *b)
{
	if (a->sec != b->sec)
		return a->sec < b->sec ? -1 : 1;
	return (a->nsec > b->nsec) - (a->nsec < b->nsec);
}
