/*
 * audit-backdate: a helper of the mount tests, built with them and never
 * installed.  govfs and govfsctl stamp records with the real clock, which
 * a test cannot turn back; this adds records stamped long ago, so that a
 * test has records old enough to prune, or that follow younger ones.
 *
 *   audit-backdate [--create RETENTION_DAYS] HOME DAYS_AGO COUNT
 *
 * appends to HOME's audit log COUNT records stamped DAYS_AGO days ago,
 * each sealed on its own as govfsctl seals its admin actions; with
 * --create, first creates the log (HOME/audit.db and HOME/audit.key, which
 * must not be there) keeping RETENTION_DAYS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "clock.h"

#define DAY_NS (86400 * 1000000000LL)

/* A whole number from min to max in s, else -1. */
static long number(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	return errno || end == s || *end || v < min || v > max ? -1 : v;
}

int main(int argc, char **argv)
{
	struct audit_event ev = AUDIT_EVENT_INIT("test.backdated", "ok");
	long retention = 0, days, count;
	int rc = 0;

	if (argc == 6 && !strcmp(argv[1], "--create")) {
		retention = number(argv[2], 1, AUDIT_RETENTION_DAYS_MAX);
		argv += 2;
		argc -= 2;
	}
	if (argc != 4 || retention < 0) {
		fputs("usage: audit-backdate [--create RETENTION_DAYS] HOME "
		      "DAYS_AGO COUNT\n",
		      stderr);
		return 2;
	}
	days = number(argv[2], 0, 100000);
	count = number(argv[3], 1, 1000000);
	if (days < 0 || count < 0) {
		fputs("audit-backdate: bad number\n", stderr);
		return 2;
	}
	if (retention)
		rc = audit_create(argv[1], (int)retention);
	ev.uid = getuid();
	ev.pid = getpid();
	ev.comm = "audit-backdate";
	ev.time_ns = clock_now_ns() - days * DAY_NS;
	for (long i = 0; i < count && !rc; i++)
		rc = audit_append_sync(argv[1], &ev);
	if (rc) {
		fprintf(stderr, "audit-backdate: %s: %s\n", argv[1],
			strerror(-rc));
		return 1;
	}
	return 0;
}
