/* clock: wall-clock and monotonic reads, and RFC 3339 formatting. */
#include "clock.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic int64_t skew_ns;

/* Clock id's time in ns, plus the test skew. */
static int64_t skewed_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec +
	       atomic_load_explicit(&skew_ns, memory_order_relaxed);
}

int64_t clock_now_ns(void)
{
	return skewed_ns(CLOCK_REALTIME);
}

int64_t clock_elapsed_ns(void)
{
	return skewed_ns(CLOCK_MONOTONIC);
}

void clock_set_skew_ns(int64_t ns)
{
	atomic_store(&skew_ns, ns);
}

int64_t clock_skew_ns(void)
{
	return atomic_load(&skew_ns);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

char *time_format_offset(int64_t ns, int offset_min, char *buf, size_t len)
{
	time_t secs =
	    (time_t)floor_div(ns, 1000000000) + (time_t)offset_min * 60;
	struct tm tm;
	char zone[8] = "Z";

	gmtime_r(&secs, &tm);
	if (offset_min)
		snprintf(zone, sizeof(zone), "%c%02d:%02d",
			 offset_min < 0 ? '-' : '+', abs(offset_min) / 60,
			 abs(offset_min) % 60);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d%s", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 zone);
	return buf;
}

char *time_format_utc(int64_t ns, char *buf, size_t len)
{
	return time_format_offset(ns, 0, buf, len);
}

char *time_format_utc_ns(int64_t ns, char *buf, size_t len)
{
	int64_t frac = ns - floor_div(ns, 1000000000) * 1000000000;
	char whole[40];

	time_format_utc(ns, whole, sizeof(whole));
	whole[strlen(whole) - 1] = 0; /* the Z */
	snprintf(buf, len, "%s.%09lldZ", whole, (long long)frac);
	return buf;
}
