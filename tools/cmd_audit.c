/*
 * cmd_audit: `govfsctl audit tail|export|verify|prune`, and the record of
 * every admin action govfsctl performs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agreement.h"
#include "audit.h"
#include "clock.h"
#include "govfsctl.h"
#include "home.h"

#define FOLLOW_POLL_NS 200000000L

int record_admin_action(struct ctl *ctl, const char *event,
			const char *agreement, int64_t revision,
			const char *reason)
{
	struct audit_event ev = AUDIT_EVENT_INIT(event, "ok");
	int rc;

	ev.agreement = agreement;
	ev.revision = revision;
	ev.uid = admin_uid();
	ev.pid = getpid();
	ev.comm = "govfsctl";
	ev.reason = reason;
	rc = audit_append_sync(ctl->home, &ev);
	if (rc)
		return fail("%s/audit.db: the change is made but could not be "
			    "recorded: %s",
			    ctl->home, strerror(-rc));
	return 0;
}

static json_t *json_int_or_null(int64_t v)
{
	return v == AUDIT_NULL ? json_null() : json_integer(v);
}

static int export_one(void *ctx, const struct audit_record *rec)
{
	const struct audit_event *ev = &rec->ev;
	json_t *o = json_object();
	char t[48];
	int rc;

	(void)ctx;
	json_object_set_new(o, "seq", json_integer((json_int_t)rec->seq));
	json_object_set_new(
	    o, "time",
	    json_string(time_format_utc_ns(ev->time_ns, t, sizeof(t))));
	json_object_set_new(o, "agreement", json_text(ev->agreement));
	json_object_set_new(o, "revision", json_int_or_null(ev->revision));
	json_object_set_new(o, "uid", json_int_or_null(ev->uid));
	json_object_set_new(o, "pid", json_int_or_null(ev->pid));
	json_object_set_new(o, "comm", json_text(ev->comm));
	json_object_set_new(o, "event", json_text(ev->event));
	json_object_set_new(o, "path", json_text(ev->path));
	json_object_set_new(o, "offset", json_int_or_null(ev->offset));
	json_object_set_new(o, "length", json_int_or_null(ev->length));
	json_object_set_new(o, "bytes", json_int_or_null(ev->bytes));
	json_object_set_new(o, "result", json_text(ev->result));
	json_object_set_new(o, "reason", json_text(ev->reason));
	rc = json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	fputc('\n', stdout);
	return rc ? -EIO : 0;
}

static int tail_one(void *ctx, const struct audit_record *rec)
{
	const struct audit_event *ev = &rec->ev;
	char t[48], range[64] = "";

	(void)ctx;
	if (ev->offset != AUDIT_NULL)
		snprintf(range, sizeof(range), " @%lld+%lld=%lld",
			 (long long)ev->offset,
			 (long long)(ev->length == AUDIT_NULL ? 0 : ev->length),
			 (long long)(ev->bytes == AUDIT_NULL ? 0 : ev->bytes));
	printf("%llu %s %s %s %s uid=%lld pid=%lld %s %s%s%s%s\n",
	       (unsigned long long)rec->seq,
	       time_format_utc_ns(ev->time_ns, t, sizeof(t)), shown(ev->event),
	       shown(ev->result), ev->agreement ? shown(ev->agreement) : "-",
	       (long long)(ev->uid == AUDIT_NULL ? -1 : ev->uid),
	       (long long)(ev->pid == AUDIT_NULL ? -1 : ev->pid),
	       ev->comm ? shown(ev->comm) : "-",
	       ev->path ? shown(ev->path) : "-", range, ev->reason ? " " : "",
	       ev->reason ? shown(ev->reason) : "");
	return 0;
}

enum { OPT_LINES = 256, OPT_FOLLOW, OPT_AGREEMENT, OPT_SINCE };

struct audit_args {
	const char *verb;
	long lines;
	bool follow;
	const char *agreement;
	const char *since;
};

/* Whether the audit verb takes option opt, spelt *name. */
static bool option_fits(const char *verb, int opt, const char **name)
{
	switch (opt) {
	case OPT_LINES:
		*name = "-n";
		return !strcmp(verb, "tail");
	case OPT_FOLLOW:
		*name = "-f";
		return !strcmp(verb, "tail");
	case OPT_AGREEMENT:
		*name = "--agreement";
		return !strcmp(verb, "tail") || !strcmp(verb, "export");
	case OPT_SINCE:
		*name = "--since";
		return !strcmp(verb, "export");
	}
	*name = "?";
	return false;
}

static int audit_option(void *ctx, int opt, const char *arg)
{
	struct audit_args *a = ctx;
	const char *name;

	if (!option_fits(a->verb, opt, &name)) {
		usage_error("audit %s takes no %s", a->verb, name);
		return -1;
	}
	switch (opt) {
	case OPT_LINES:
		if (parse_long(arg, 1, 100000000, &a->lines))
			return 0;
		usage_error("-n takes a positive number");
		return -1;
	case OPT_FOLLOW:
		a->follow = true;
		return 0;
	case OPT_AGREEMENT:
		a->agreement = arg;
		return 0;
	case OPT_SINCE:
		a->since = arg;
		return 0;
	}
	return -1;
}

/*
 * The last records, then with -f every record committed since, polling:
 * each query says the last seq of its snapshot, and the next one starts
 * after it, so that nothing is shown twice or skipped.
 */
static int audit_tail(struct ctl *ctl, const struct audit_args *a)
{
	struct audit_filter f = {.since_ns = INT64_MIN,
				 .agreement = a->agreement,
				 .last_n = (uint64_t)a->lines};
	int rc = audit_query(ctl->home, &f, tail_one, NULL, &f.after_seq);

	f.last_n = 0;
	while (!rc && a->follow) {
		struct timespec nap = {0, FOLLOW_POLL_NS};

		fflush(stdout);
		nanosleep(&nap, NULL);
		rc = audit_query(ctl->home, &f, tail_one, NULL, &f.after_seq);
	}
	return rc ? fail("%s/audit.db: %s", ctl->home, strerror(-rc)) : 0;
}

static int audit_export(struct ctl *ctl, const struct audit_args *a)
{
	struct audit_filter f = {.since_ns = INT64_MIN,
				 .agreement = a->agreement};
	int offset, rc;

	if (a->since && time_parse_rfc3339(a->since, &f.since_ns, &offset))
		return usage_error("--since '%s': want an RFC 3339 time with "
				   "an offset",
				   a->since);
	rc = audit_query(ctl->home, &f, export_one, NULL, NULL);
	return rc ? fail("%s/audit.db: %s", ctl->home, strerror(-rc)) : 0;
}

static int audit_verify_cmd(struct ctl *ctl)
{
	struct audit_verdict v;
	int rc = audit_verify(ctl->home, &v);

	if (rc == -EBADMSG)
		return fail("%s/audit.db: tampered: %s (first bad sequence "
			    "number %llu)",
			    ctl->home, v.why, (unsigned long long)v.first_bad);
	if (rc)
		return fail("%s/audit.db: %s", ctl->home, strerror(-rc));
	if (v.first_seq > 1)
		printf("audit log intact: %llu records, from sequence number "
		       "%llu (those before were pruned)\n",
		       (unsigned long long)v.records,
		       (unsigned long long)v.first_seq);
	else
		printf("audit log intact: %llu records\n",
		       (unsigned long long)v.records);
	return 0;
}

/* Remove what the retention period lets go, as the daemon does daily. */
static int audit_prune_cmd(struct ctl *ctl)
{
	struct audit_event by = AUDIT_EVENT_INIT(AUDIT_PRUNE_EVENT, "ok");
	struct audit_pruned p;
	int rc;

	by.uid = admin_uid();
	by.pid = getpid();
	by.comm = "govfsctl";
	rc = audit_prune(ctl->home, &by, &p);
	if (rc == -EBADMSG)
		return fail("%s/audit.db: cannot prune: %s (see govfsctl audit "
			    "verify)",
			    ctl->home, p.why);
	if (rc)
		return fail("%s/audit.db: cannot prune: %s%s%s", ctl->home,
			    strerror(-rc), p.why[0] ? ": " : "", p.why);
	if (!p.records)
		printf("nothing to prune: no sealed segment at the start of "
		       "the log is older than %d days\n",
		       p.retention_days);
	else
		printf("pruned %llu records (sequence numbers %llu to %llu), "
		       "older than %d days\n",
		       (unsigned long long)p.records,
		       (unsigned long long)p.first, (unsigned long long)p.last,
		       p.retention_days);
	return 0;
}

/* -n N and -f as the long options they stand for. */
static void expand_short_options(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n"))
			argv[i] = (char *)"--lines";
		else if (!strcmp(argv[i], "-f"))
			argv[i] = (char *)"--follow";
	}
}

int cmd_audit(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"lines", required_argument, NULL, OPT_LINES},
	    {"follow", no_argument, NULL, OPT_FOLLOW},
	    {"agreement", required_argument, NULL, OPT_AGREEMENT},
	    {"since", required_argument, NULL, OPT_SINCE},
	    {NULL, 0, NULL, 0},
	};
	const char *verb = argc > 1 ? argv[1] : "";
	struct audit_args a = {.verb = verb, .lines = 20};
	struct ctl ctl = {0};
	int npos, rc;

	if (strcmp(verb, "tail") && strcmp(verb, "export") &&
	    strcmp(verb, "verify") && strcmp(verb, "prune"))
		return usage_error("usage: audit tail [-n N] [-f] "
				   "[--agreement ID] | audit export [--since "
				   "T] [--agreement ID] | audit verify | audit "
				   "prune");
	expand_short_options(argc - 1, argv + 1);
	rc = ctl_parse(&ctl, argc - 1, argv + 1, opts, audit_option, &a, NULL,
		       0, &npos);
	if (rc)
		return rc;
	if (a.agreement && check_id("agreement", a.agreement))
		return EXIT_REFUSED;
	rc = ctl_open(&ctl, CTL_READ);
	if (rc)
		return rc;
	if (!strcmp(verb, "tail"))
		rc = audit_tail(&ctl, &a);
	else if (!strcmp(verb, "export"))
		rc = audit_export(&ctl, &a);
	else if (!strcmp(verb, "verify"))
		rc = audit_verify_cmd(&ctl);
	else
		rc = audit_prune_cmd(&ctl);
	ctl_close(&ctl);
	return rc;
}
