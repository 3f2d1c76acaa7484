/*
 * clock: wall-clock time in Unix nanoseconds, and RFC 3339 text for it.
 */
#ifndef GOVFS_CLOCK_H
#define GOVFS_CLOCK_H

#include <stddef.h>
#include <stdint.h>

int64_t clock_now_ns(void);

/*
 * Time elapsed since some fixed point (CLOCK_MONOTONIC), for leases: a
 * step of the wall clock does not move it (the test skew below does).
 */
int64_t clock_elapsed_ns(void);

/*
 * Tests only (govfs-testclock, a build never installed): clock_now_ns
 * runs ns ahead of the real clock.  Production code never sets it.
 */
void clock_set_skew_ns(int64_t ns);
int64_t clock_skew_ns(void);

/* "2026-11-22T19:42:49Z" (UTC, whole seconds) into buf; returns buf. */
char *time_format_utc(int64_t ns, char *buf, size_t len);

/* "2026-11-22T19:42:49.123456789Z": UTC with nanoseconds. */
char *time_format_utc_ns(int64_t ns, char *buf, size_t len);

/* The same instant in the given offset: "2026-11-23T03:42:49+08:00". */
char *time_format_offset(int64_t ns, int offset_min, char *buf, size_t len);

#endif
