/*
 * lifecycle: keeping a mount's state current (see lifecycle.h).
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "audit.h"
#include "blockcache.h"
#include "caller.h"
#include "catalog.h"
#include "clock.h"
#include "govfs.h"
#include "handlers.h"
#include "lifecycle.h"
#include "mount_state.h"
#include "nodes.h"
#include "viewnodes.h"

#define REFRESH_MS 100
/* How long a hold lasts without the cut that ends it (its command died):
 * longer than the command can wait for the catalog (a busy timeout of
 * 10 s, at most twice, before it commits). */
#define HOLD_LEASE_NS (30LL * 1000000000)

/*
 * Drop what the kernel may hold of every node: page cache (private
 * mappings of data files), attributes and names.  Called by the refresh
 * thread, which holds no lock and handles no request, as libfuse requires.
 */
static void invalidate_kernel(const struct mount_state *old,
			      const struct mount_state *now)
{
	size_t n;

	fuse_lowlevel_notify_inval_inode(g.se, INO_README, 0, 0);
	fuse_lowlevel_notify_inval_inode(g.se, INO_ROOT, 0, 0);
	n = dataset_slot_count();
	for (size_t s = 0; s < n; s++)
		for (int k = 0; k < KINDS_PER_DATASET; k++)
			fuse_lowlevel_notify_inval_inode(
			    g.se, node_ino((long)s, (enum node_kind)k), 0, 0);
	for (uint64_t v = 0; v < viewnodes_count(g.views); v++)
		fuse_lowlevel_notify_inval_inode(g.se, VIEW_INO_FIRST + v, 0,
						 0);
	for (size_t i = 0; i < old->ndatasets; i++) {
		const char *name = old->datasets[i].ds->dataset;

		if (!mount_state_dataset(now, name))
			fuse_lowlevel_notify_inval_entry(g.se, INO_ROOT, name,
							 strlen(name));
	}
}

/*
 * Serve next from now on (it may be the current state, for a hold).
 * Taking serve_lock exclusive waits until every read decided under the
 * old state has replied (the drain); only then is the kernel told to drop
 * what it holds, so a page it kept cannot outlive a cut.  Call with
 * reload_lock held.
 */
static void swap_state(struct mount_state *next)
{
	struct mount_state *old;

	pthread_rwlock_wrlock(&g.serve_lock);
	old = g.state;
	g.state = next;
	pthread_rwlock_unlock(&g.serve_lock);
	invalidate_kernel(old, next);
	/* Wiped by the refresh thread, after a cut has been acknowledged. */
	if (!data_readable(next))
		atomic_store(&g.wipe_cache, true);
	mount_state_put(old);
}

/*
 * Record the agreement's expiry once: across all its mounts and restarts,
 * the catalog lets one daemon claim each (agreement, valid_until).
 */
static void note_expiry(const struct mount_state *st)
{
	struct audit_event ev = AUDIT_EVENT_INIT("agreement.expire", "ok");
	char reason[80], until[40];
	struct caller self;
	bool claimed;

	if (st->phase != PHASE_EXPIRED || !strcmp(st->rec.state, "revoked") ||
	    g.expiry_noted_ns == st->agr.valid_until_ns)
		return;
	/* Busy (an admin's long transaction): try again on the next tick. */
	if (catalog_agreement_claim_expiry(g.cat_rw, g.agreement,
					   st->agr.valid_until_ns, &claimed))
		return;
	g.expiry_noted_ns = st->agr.valid_until_ns;
	if (!claimed)
		return;
	caller_resolve(getuid(), getpid(), &self);
	snprintf(reason, sizeof(reason), "valid_until %s passed",
		 time_format_utc(st->agr.valid_until_ns, until, sizeof(until)));
	ev.agreement = g.agreement;
	ev.revision = st->rec.revision;
	ev.uid = self.uid;
	ev.pid = self.pid;
	ev.comm = self.comm;
	ev.reason = reason;
	/* A failed log latches by itself and refuses everything. */
	if (audit_log_append(g.audit, &ev, NULL))
		fprintf(stderr, "govfs: audit log: cannot record the expiry\n");
}

/* Whether prev served fv already (so its fault was said then). */
static bool served_before(const struct mount_state *prev,
			  const struct file_view *fv)
{
	const struct dataset_state *d =
	    prev ? mount_state_dataset(prev, fv->dataset) : NULL;

	if (!d)
		return false;
	return fv == (fv->view ? mount_state_view(prev, fv->dataset, fv->view)
			       : d->data);
}

static void report_fault(const struct mount_state *prev,
			 const struct file_view *fv)
{
	if (!fv || !fv->fault || served_before(prev, fv))
		return;
	if (fv->view)
		fprintf(stderr,
			"govfs: %s/views/%s.csv: %s; serving nothing of it\n",
			fv->dataset, fv->view, fv->fault);
	else
		fprintf(stderr,
			"govfs: %s/data.csv: %s; serving nothing of it\n",
			fv->dataset, fv->fault);
}

/*
 * Say once on stderr which files of next serve nothing, and why (opens of
 * them fail with EIO, recorded in the audit log).
 */
void report_faults(const struct mount_state *prev,
		   const struct mount_state *next)
{
	for (size_t i = 0; i < next->ndatasets; i++) {
		const struct dataset_state *d = &next->datasets[i];

		report_fault(prev, d->data);
		for (size_t j = 0; d->views && j < d->ds->nviews; j++)
			report_fault(prev, d->views[j]);
	}
}

/*
 * Load the agreement from the catalog and serve it if anything changed.
 * Call with reload_lock held.  0, or -errno with the last good state kept.
 */
static int reload_locked(void)
{
	struct mount_state *st = current_state(), *next;
	char why[512];
	int rc;

	rc = catalog_data_version(g.cat, &g.seen_version);
	if (!rc)
		rc = mount_state_load(g.cat, g.home, &g.mk, g.agreement, st,
				      audit_log_low_space(g.audit), &next, why,
				      sizeof(why));
	else
		snprintf(why, sizeof(why), "catalog: %s", strerror(-rc));
	if (rc) {
		fprintf(stderr,
			"govfs: reload failed, keeping the last good "
			"state: %s\n",
			why);
	} else if (mount_state_same(st, next)) {
		mount_state_put(next);
	} else {
		report_faults(st, next);
		swap_state(next);
	}
	mount_state_put(st);
	return rc;
}

/* Whether a hold's lease ran out (no cut came to end it). */
static bool hold_lapsed(int64_t *until)
{
	*until = atomic_load(&g.hold_until_ns);
	return *until && clock_elapsed_ns() >= *until;
}

/*
 * Reload when the catalog changed, the validity phase turned, the audit
 * log's disk became low on space or recovered (README.txt says so), or a
 * hold lapsed (then forget it, unless another came meanwhile).
 */
static void refresh_once(void)
{
	struct mount_state *st = current_state();
	int64_t version, hold;
	bool lapsed = hold_lapsed(&hold);
	bool turned = time_phase_at(&st->agr, clock_now_ns()) != st->phase ||
		      audit_log_low_space(g.audit) != st->audit_low_space;

	mount_state_put(st);
	pthread_mutex_lock(&g.reload_lock);
	if (!catalog_data_version(g.cat, &version) &&
	    (version != g.seen_version || turned || lapsed) &&
	    !reload_locked() && lapsed)
		atomic_compare_exchange_strong(&g.hold_until_ns, &hold, 0);
	st = current_state();
	note_expiry(st);
	mount_state_put(st);
	pthread_mutex_unlock(&g.reload_lock);
}

/* The next instant the validity phase turns, or 0 if it never will. */
static int64_t next_phase_turn(void)
{
	struct mount_state *st = current_state();
	int64_t now = clock_now_ns(), at = 0;

	if (now < st->agr.valid_from_ns)
		at = st->agr.valid_from_ns;
	else if (now < st->agr.valid_until_ns)
		at = st->agr.valid_until_ns;
	mount_state_put(st);
	return at;
}

/*
 * Arm the timer for the next phase turn, on the real-time clock so that a
 * clock step cancels it (TFD_TIMER_CANCEL_ON_SET) rather than delay it.
 */
static void arm_phase_timer(int fd, int64_t at)
{
	struct itimerspec its = {0};

	at -= clock_skew_ns();
	if (at > 0) {
		its.it_value.tv_sec = at / 1000000000;
		its.it_value.tv_nsec = at % 1000000000;
	}
	timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its,
			NULL);
}

#ifdef GOVFS_TEST_CLOCK
/*
 * govfs-testclock only: the clock runs as many seconds ahead as the file
 * named by GOVFS_TEST_CLOCK_FILE says (absent or unreadable: none).
 */
static void follow_test_clock(void)
{
	const char *path = getenv("GOVFS_TEST_CLOCK_FILE");
	long long secs = 0;
	FILE *f = path ? fopen(path, "r") : NULL;

	if (f) {
		if (fscanf(f, "%lld", &secs) != 1)
			secs = 0;
		fclose(f);
	}
	clock_set_skew_ns((int64_t)secs * 1000000000);
}
#else
static void follow_test_clock(void)
{
}
#endif

/*
 * The refresh thread: every REFRESH_MS, and at once when a validity phase
 * turns, reload if the catalog changed.  It holds no lock while it tells
 * the kernel to drop caches and handles no request, as libfuse requires.
 */
void *refresher_main(void *arg)
{
	int fd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK);
	int64_t armed = -1;

	(void)arg;
	while (!atomic_load(&g.stopping)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t ticks;
		int64_t at;

		follow_test_clock();
		at = next_phase_turn();
		if (fd >= 0 && at != armed) {
			arm_phase_timer(fd, at);
			armed = at;
		}
		if (poll(&p, fd >= 0 ? 1 : 0, REFRESH_MS) > 0 &&
		    read(fd, &ticks, sizeof(ticks)) < 0 && errno == ECANCELED)
			armed = -1; /* the clock was set: arm again */
		refresh_once();
		if (atomic_exchange(&g.wipe_cache, false) && g.cache)
			blockcache_drop_all(g.cache);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* The state as SPEC's lifecycle names it, now. */
static const char *state_now(const struct mount_state *st)
{
	return agreement_state_at(st->rec.state, &st->agr, clock_now_ns());
}

static void reply_line(struct buf *reply, const char *line)
{
	if (buf_append(reply, line, strlen(line)))
		reply->len = 0;
}

/*
 * "hold ID": an admin has started to suspend or revoke ID, and tells every
 * daemon before its catalog change is even made.  If ID is this mount's
 * agreement, refuse its data from now on, as a cut would (the drain, then
 * the kernel's caches dropped), and answer "held"; the "cut" that follows
 * the commit reloads and ends the hold.  Failing closed: a hold that no
 * cut ends (the command died) lapses after HOLD_LEASE_NS, at the refresh
 * thread's first successful reload, so the state served is then the
 * catalog's, whatever the command managed to commit.
 */
static void reply_hold(const char *id, struct buf *reply)
{
	if (strcmp(id, g.agreement)) {
		reply_line(reply, "ok not served here");
		return;
	}
	atomic_store(&g.hold_until_ns, clock_elapsed_ns() + HOLD_LEASE_NS);
	/* The state swapped for itself: a cut's drain and dropped caches. */
	pthread_mutex_lock(&g.reload_lock);
	swap_state(current_state());
	pthread_mutex_unlock(&g.reload_lock);
	reply_line(reply, "held");
}

static void reply_cut(struct buf *reply)
{
	struct mount_state *st;
	char line[128];
	int rc;

	pthread_mutex_lock(&g.reload_lock);
	rc = reload_locked();
	pthread_mutex_unlock(&g.reload_lock);
	/* The catalog's state is served now: a hold has done its part. */
	if (!rc)
		atomic_store(&g.hold_until_ns, 0);
	st = current_state();
	if (rc)
		snprintf(line, sizeof(line), "error %s", strerror(-rc));
	else
		snprintf(line, sizeof(line), "ok %s %lld", state_now(st),
			 (long long)st->rec.revision);
	mount_state_put(st);
	reply_line(reply, line);
}

/*
 * The mount's own figures.  Where it is mounted, and since when, the
 * catalog says (a mount point need not be UTF-8, which JSON wants).
 */
static void reply_stats(struct buf *reply)
{
	struct mount_state *st = current_state();
	json_t *o =
	    json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I}", "agreement",
		      g.agreement, "state", state_now(st), "held",
		      atomic_load(&g.hold_until_ns) != 0, "revision",
		      (json_int_t)st->rec.revision, "pid", (json_int_t)getpid(),
		      "open_files", (json_int_t)atomic_load(&g.open_files),
		      "bytes_served", (json_int_t)atomic_load(&g.bytes_served));
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	mount_state_put(st);
	if (text && buf_append(reply, text, strlen(text)))
		reply->len = 0;
	free(text);
	json_decref(o);
}

/*
 * govfsctl's requests: "hold ID" refuses ID's data until the cut that
 * follows; "cut" reloads now and answers once the change has landed
 * (drained and invalidated); "stats" gives the mount's figures.
 */
void on_control(void *ctx, const char *request, struct buf *reply)
{
	(void)ctx;
	if (!strncmp(request, "hold ", 5))
		reply_hold(request + 5, reply);
	else if (!strcmp(request, "cut"))
		reply_cut(reply);
	else if (!strcmp(request, "stats"))
		reply_stats(reply);
	else
		reply_line(reply, "error unknown request");
}
