/*
 * govfsctl agreement suspend|resume|revoke, and mounts: the live
 * lifecycle.  A state change is one catalog transaction; then every
 * registered daemon of the agreement is told over its control socket and
 * answers once the change has landed there (reads drained, kernel caches
 * dropped), so when suspend or revoke returns, no read can succeed.
 * Daemons also poll the catalog, so a mount that could not be told still
 * notices within 100 ms.
 *
 * Speed: suspend and revoke hold the agreement's daemons before opening
 * the catalog (they refuse its data at once, until the cut; govfsctl's
 * front usually has, before this program was even loaded: holds.h), and
 * commit without waiting for the disk, which is flushed once the cut is
 * confirmed; a power loss before that undoes a change never confirmed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "control.h"
#include "govfsctl.h"
#include "holds.h"
#include "mount_state.h"
#include "quota.h"
#include "viewstore.h"

/* How long a daemon may take to confirm a cut. */
#define CUT_TIMEOUT_MS 5000
#define STATS_TIMEOUT_MS 2000

/* Whether a daemon confirmed the cut of call c. */
static bool cut_confirmed(const struct control_call *c)
{
	return !c->rc && !strncmp(c->reply, "ok ", 3);
}

/*
 * Whether a failed call means the daemon is gone (not merely slow).  Its
 * registration stays: the next daemon to start records the missing
 * unmount and forgets it.
 */
static bool daemon_gone(const struct mount_record *m, int rc)
{
	return control_socket_gone(rc) ||
	       (kill((pid_t)m->pid, 0) && errno == ESRCH);
}

static bool listed(const struct mount_record *m, size_t n, const char *socket)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(control_socket_name(m[i].socket),
			    control_socket_name(socket)))
			return true;
	return false;
}

/*
 * The calls of a cut: every live mount of the agreement (m, in order),
 * then every daemon held that the catalog does not list (it was starting
 * up), so that no hold outlives the command.
 */
static struct control_call *cut_calls(const struct mount_record *m, size_t n,
				      const struct holds *h, size_t *total)
{
	struct control_call *calls =
	    calloc(n + h->n ? n + h->n : 1, sizeof(*calls));

	*total = 0;
	for (size_t i = 0; calls && i < n; i++)
		calls[(*total)++].socket = m[i].socket;
	for (size_t i = 0; calls && i < h->n; i++)
		if (holds_may_hold(&h->calls[i]) &&
		    !listed(m, n, h->calls[i].socket))
			calls[(*total)++].socket = h->calls[i].socket;
	return calls;
}

/* Say so when a daemon that may hold, and is not registered, was not cut. */
static void unheld(const struct control_call *c)
{
	if (control_socket_gone(c->rc))
		return;
	warning("%s did not confirm the end of its hold: %s; it "
		"ends by itself within 30 s",
		c->socket, c->rc ? strerror(-c->rc) : c->reply);
}

/*
 * Tell every live mount of id to cut over to the catalog's state (which
 * ends any hold).  Prints what was cut and how long it took since
 * start_ns; EXIT_REFUSED if a live mount did not confirm.
 */
static int cut_mounts(struct ctl *ctl, const char *id, const char *what,
		      struct holds *h, int64_t start_ns)
{
	struct mount_record *m;
	struct control_call *calls;
	size_t n, total, cut = 0, unconfirmed = 0;
	int rc = catalog_mount_list(ctl->cat, id, &m, &n);

	if (rc)
		return fail("catalog: %s", strerror(-rc));
	calls = cut_calls(m, n, h, &total);
	if (calls)
		control_call_all(calls, total, "cut", CUT_TIMEOUT_MS);
	h->cut = calls != NULL;
	for (size_t i = 0; calls && i < total; i++) {
		if (cut_confirmed(&calls[i])) {
			cut++;
		} else if (i >= n) {
			unheld(&calls[i]);
		} else if (!daemon_gone(&m[i], calls[i].rc)) {
			unconfirmed++;
			warning("mount %s (pid %lld) did not "
				"confirm: %s; it polls the catalog and cuts "
				"within 100 ms",
				m[i].mountpoint, (long long)m[i].pid,
				calls[i].rc ? strerror(-calls[i].rc)
					    : calls[i].reply);
		}
	}
	printf("agreement %s %s: %zu mount%s cut in %.1f ms\n", id, what, cut,
	       cut == 1 ? "" : "s",
	       (double)(clock_elapsed_ns() - start_ns) / 1e6);
	free(calls);
	mount_records_free(m, n);
	if (!calls)
		return fail("out of memory");
	return unconfirmed ? EXIT_REFUSED : 0;
}

/* When nothing was changed after all: every daemon held serves again. */
static void release_holds(struct holds *h)
{
	size_t n;
	struct control_call *calls = holds_release(h, &n);

	for (size_t i = 0; calls && i < n; i++)
		if (!cut_confirmed(&calls[i]))
			unheld(&calls[i]);
	free(calls);
}

enum { OPT_REASON = 256 };

struct lifecycle_args {
	const char *verb;
	const char *reason;
	struct control_sched sched; /* as the verb was started */
};

static int lifecycle_option(void *ctx, int opt, const char *arg)
{
	struct lifecycle_args *a = ctx;

	if (opt != OPT_REASON)
		return -1;
	a->reason = arg;
	return 0;
}

/* What revoke deletes once the state is committed. */
struct shredded {
	struct agreement_shred keys;
	struct view_results_deleted views;
	bool views_deleted;
	bool quota_removed;
};

/*
 * Delete the agreement's view results (rows, keys and files) and its
 * quota counter; a failure is reported and the receipt says so.
 */
static void shred_derived(struct ctl *ctl, const char *id, struct shredded *s)
{
	int rc =
	    view_results_delete_agreement(ctl->cat, ctl->home, id, &s->views);

	s->views_deleted = !rc;
	if (rc)
		warning("view results of '%s': %s", id, strerror(-rc));
	rc = quota_remove(ctl->home, id);
	s->quota_removed = !rc;
	if (rc)
		warning("%s/%s/%s: %s", ctl->home, "quota", id, strerror(-rc));
}

static int set_state(struct ctl *ctl, const char *id, const char *state,
		     const char *reason, struct agreement_shred *shred)
{
	int rc = catalog_defer_sync(ctl->cat);

	if (!rc)
		rc = catalog_begin(ctl->cat);
	if (!rc)
		rc = catalog_agreement_set_state(ctl->cat, id, state,
						 ctl->admin, reason);
	if (!rc && shred)
		rc = catalog_agreement_shred(ctl->cat, id, shred);
	if (!rc)
		rc = catalog_commit(ctl->cat);
	if (rc) {
		catalog_rollback(ctl->cat);
		return fail("catalog: %s", strerror(-rc));
	}
	return 0;
}

/* The committed change, already cut over to, made durable. */
static int sync_state(struct ctl *ctl, const char *id)
{
	int rc = catalog_sync(ctl->cat);

	if (rc)
		return fail(
		    "%s/catalog.db: agreement %s changed and in effect, "
		    "but not flushed to disk (a power loss may undo "
		    "it): %s",
		    ctl->home, id, strerror(-rc));
	return 0;
}

static void print_receipt(const char *id, const struct shredded *s)
{
	char bytes[32];

	printf("deleted: %zu pseudonym key%s (crypto-shredded: its tokens can "
	       "never be recomputed, nor a copy of its size indexes opened), "
	       "%zu size ind%s, ",
	       s->keys.pseudonym_keys, s->keys.pseudonym_keys == 1 ? "" : "s",
	       s->keys.size_indexes, s->keys.size_indexes == 1 ? "ex" : "exes");
	if (s->views_deleted)
		printf("%llu view result%s (%s, keys and files), ",
		       (unsigned long long)s->views.count,
		       s->views.count == 1 ? "" : "s",
		       human_bytes(s->views.bytes, bytes, sizeof(bytes)));
	else
		printf("view results NOT deleted (see above), ");
	printf("%s\n",
	       s->quota_removed ? "the quota counter" : "no quota counter");
	printf("kept: the agreement's revisions and every audit record of "
	       "%s\n",
	       id);
}

/*
 * The transition verb asks of an agreement in state from: the new state,
 * or NULL with *why set (a no-op says so and succeeds; a refusal fails).
 */
static const char *transition(const char *verb, const char *from, bool *noop,
			      const char **why)
{
	*noop = false;
	if (!strcmp(from, "revoked")) {
		*noop = !strcmp(verb, "revoke");
		*why = *noop ? "is already revoked"
			     : "is revoked: revocation is final";
		return NULL;
	}
	if (!strcmp(verb, "suspend") && !strcmp(from, "suspended")) {
		*noop = true;
		*why = "is already suspended";
		return NULL;
	}
	if (!strcmp(verb, "resume") && !strcmp(from, "active")) {
		*noop = true;
		*why = "is not suspended";
		return NULL;
	}
	return !strcmp(verb, "suspend")	 ? "suspended"
	       : !strcmp(verb, "resume") ? "active"
					 : "revoked";
}

static int change_state(struct ctl *ctl, const struct lifecycle_args *a,
			const char *id, struct holds *h, int64_t start_ns)
{
	struct agreement_record rec;
	struct shredded shred = {0};
	bool revoke = !strcmp(a->verb, "revoke"), noop;
	const char *to, *why = NULL;
	char event[32];
	int logged, sync_rc, rc = catalog_agreement_get(ctl->cat, id, &rec);

	if (rc == -ENOENT)
		return fail("no such agreement '%s'", id);
	if (rc)
		return fail("catalog: %s", strerror(-rc));
	to = transition(a->verb, rec.state, &noop, &why);
	if (!to) {
		printf("agreement %s %s: nothing changed\n", id, why);
		agreement_record_release(&rec);
		return noop ? 0 : fail("agreement '%s' %s", id, why);
	}
	rc = set_state(ctl, id, to, a->reason, revoke ? &shred.keys : NULL);
	if (rc) {
		agreement_record_release(&rec);
		return rc;
	}
	/* Cut first, then wait for the disk: only the cut is urgent. */
	rc = cut_mounts(ctl, id, !strcmp(a->verb, "resume") ? "resumed" : to, h,
			start_ns);
	control_run_as_before(&a->sched);
	sync_rc = sync_state(ctl, id);
	if (revoke) {
		/* The pseudonym key is gone from the catalog; now from its
		 * log. */
		if (catalog_checkpoint(ctl->cat))
			warning("%s/catalog.db-wal: busy; the "
				"wrapped key stays in it until its next "
				"checkpoint",
				ctl->home);
		shred_derived(ctl, id, &shred);
		print_receipt(id, &shred);
	}
	snprintf(event, sizeof(event), "agreement.%s", a->verb);
	logged = record_admin_action(ctl, event, id, rec.revision, a->reason);
	agreement_record_release(&rec);
	return rc ? rc : sync_rc ? sync_rc : logged;
}

int agreement_lifecycle(int argc, char **argv)
{
	static const struct option own[] = {
	    {"reason", required_argument, NULL, OPT_REASON},
	    {NULL, 0, NULL, 0},
	};
	struct lifecycle_args a = {.verb = argv[0]};
	int64_t start_ns = clock_elapsed_ns();
	struct holds holds = {0};
	struct ctl ctl = {0};
	char *pos[1];
	int npos, rc;

	/* Ahead of the readers being cut until the cut is confirmed. */
	control_run_ahead(&a.sched);

	rc = ctl_parse(&ctl, argc, argv, own, lifecycle_option, &a, pos, 1,
		       &npos);
	if (rc)
		return rc;
	if (npos != 1)
		return usage_error("usage: agreement %s ID%s", a.verb,
				   strcmp(a.verb, "resume")
				       ? " --reason TEXT"
				       : " [--reason TEXT]");
	if (strcmp(a.verb, "resume") && (!a.reason || !a.reason[0]))
		return usage_error("agreement %s: --reason TEXT is required",
				   a.verb);
	if (check_id("agreement", pos[0]) || ctl_check_home(&ctl))
		return EXIT_REFUSED;
	/* Access is cut first (unless govfsctl's front did), before the
	 * catalog is even opened; opening it again waits for the commit. */
	if (strcmp(a.verb, "resume")) {
		if (!holds_take_over(&holds, ctl.home, pos[0], &start_ns))
			holds_take(ctl.home, pos[0], HOLD_TIMEOUT_MS, &holds);
		/* The readers are cut: leave them the CPU to find out. */
		if (holds_all_answered(&holds))
			control_run_as_before(&a.sched);
	}
	rc = ctl_open(&ctl, CTL_STATE);
	if (!rc)
		rc = change_state(&ctl, &a, pos[0], &holds, start_ns);
	if (!holds.cut)
		release_holds(&holds);
	holds_free(&holds);
	ctl_close(&ctl);
	return rc;
}

/* One row of `mounts`, from the daemon's own figures. */
static json_t *mount_json(const struct mount_record *m,
			  const struct control_call *call)
{
	json_t *stats = call->rc ? NULL : json_loads(call->reply, 0, NULL);
	json_t *o = json_object();
	json_t *v;

	json_object_set_new(o, "agreement", json_string(m->agreement));
	v = stats ? json_object_get(stats, "state") : NULL;
	json_object_set_new(o, "state",
			    v ? json_incref(v) : json_string("unreachable"));
	v = stats ? json_object_get(stats, "held") : NULL;
	json_object_set_new(o, "held", v ? json_incref(v) : json_null());
	json_object_set_new(o, "mountpoint", json_text(m->mountpoint));
	json_object_set_new(o, "pid", json_integer(m->pid));
	v = stats ? json_object_get(stats, "revision") : NULL;
	json_object_set_new(o, "revision", v ? json_incref(v) : json_null());
	v = stats ? json_object_get(stats, "open_files") : NULL;
	json_object_set_new(o, "open_files", v ? json_incref(v) : json_null());
	v = stats ? json_object_get(stats, "bytes_served") : NULL;
	json_object_set_new(o, "bytes_served",
			    v ? json_incref(v) : json_null());
	json_object_set_new(o, "started", json_time(m->started_ns));
	json_decref(stats);
	return o;
}

static void print_mount_row(json_t *o)
{
	json_t *files = json_object_get(o, "open_files");
	json_t *bytes = json_object_get(o, "bytes_served");
	char b[32];

	printf(
	    "%-20s %-13s %7lld %5s %10s  %s\n",
	    json_string_value(json_object_get(o, "agreement")),
	    json_string_value(json_object_get(o, "state")),
	    (long long)json_integer_value(json_object_get(o, "pid")),
	    json_is_integer(files)
		? (snprintf(b, sizeof(b), "%lld",
			    (long long)json_integer_value(files)),
		   b)
		: "-",
	    json_is_integer(bytes)
		? human_bytes((uint64_t)json_integer_value(bytes), b + 16, 16)
		: "-",
	    shown(json_string_value(json_object_get(o, "mountpoint"))));
}

static int list_mounts(struct ctl *ctl)
{
	struct mount_record *m;
	struct control_call *calls;
	json_t *arr = json_array();
	size_t n;
	int rc = catalog_mount_list(ctl->cat, NULL, &m, &n);

	if (rc) {
		json_decref(arr);
		return fail("catalog: %s", strerror(-rc));
	}
	calls = control_call_mounts(m, n, "stats", STATS_TIMEOUT_MS);
	for (size_t i = 0; calls && i < n; i++)
		if (!calls[i].rc || !daemon_gone(&m[i], calls[i].rc))
			json_array_append_new(arr,
					      mount_json(&m[i], &calls[i]));
	if (!ctl->json) {
		size_t i;
		json_t *o;

		printf("%-20s %-13s %7s %5s %10s  %s\n", "AGREEMENT", "STATE",
		       "PID", "OPEN", "SERVED", "MOUNTPOINT");
		json_array_foreach(arr, i, o) print_mount_row(o);
	}
	rc = calls ? 0 : fail("out of memory");
	free(calls);
	mount_records_free(m, n);
	if (!rc && ctl->json)
		return print_json(arr);
	json_decref(arr);
	return rc;
}

int cmd_mounts(int argc, char **argv)
{
	struct ctl ctl = {0};
	char *pos[1];
	int npos, rc;

	rc = ctl_parse(&ctl, argc, argv, NULL, NULL, NULL, pos, 0, &npos);
	if (rc)
		return rc;
	rc = ctl_open(&ctl, CTL_READ);
	if (rc)
		return rc;
	rc = list_mounts(&ctl);
	ctl_close(&ctl);
	return rc;
}
