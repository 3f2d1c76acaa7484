/*
 * control: the Unix socket through which govfsctl talks to a live govfs
 * daemon.  A daemon listens on HOME/run/<pid>.sock (the home is closed to
 * everyone else, and each peer's uid is checked besides: the daemon's own
 * or root's); a request is one line and gets one line back.
 *
 * Sockets are reached through their directory's descriptor
 * (/proc/self/fd/N/NAME), so a long home path never overflows sun_path.
 */
#ifndef GOVFS_CONTROL_H
#define GOVFS_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "catalog.h"

#define CONTROL_LINE_MAX 4096

struct control;

/*
 * Answer one request line (without its newline) into reply (one line, no
 * newline).  Runs on the control thread, which holds no other lock and
 * handles no FUSE request.
 */
typedef void (*control_fn)(void *ctx, const char *request, struct buf *reply);

/*
 * Listen on HOME/run/<pid>.sock and answer requests with fn on a thread of
 * its own.  *out is the caller's, to stop with control_stop.
 */
int control_start(const char *home, control_fn fn, void *ctx,
		  struct control **out) __attribute__((warn_unused_result));

/* The socket's path (owned by c). */
const char *control_path(const struct control *c);

/* Stop answering, remove the socket and free c (NULL is fine). */
void control_stop(struct control *c);

/* One request to one daemon, for control_call_all. */
struct control_call {
	const char *socket;
	char reply[CONTROL_LINE_MAX];
	int rc; /* 0 once a reply arrived, else -errno (-ETIMEDOUT, ...) */
};

/*
 * Send request to every daemon at once and wait, at most timeout_ms in
 * all, for their replies.  Each call's rc says how it went.
 */
void control_call_all(struct control_call *calls, size_t n, const char *request,
		      int timeout_ms);

/*
 * control_call_all to every mount of m: calls[i] answers for m[i].  The
 * array is the caller's to free; NULL if out of memory.
 */
struct control_call *control_call_mounts(const struct mount_record *m, size_t n,
					 const char *request, int timeout_ms);

/*
 * control_call_all to every daemon listening in HOME/run, whatever its
 * agreement, for a request that each answers only if it concerns it.
 * *n calls, one allocation (sockets included) for the caller to free;
 * NULL, *n = 0, when none listens there or the directory is unreadable.
 */
struct control_call *control_call_home(const char *home, const char *request,
				       int timeout_ms, size_t *n);

/*
 * Calls to paths, not yet made, in one allocation with the paths
 * themselves (the caller's to free); NULL if out of memory.
 */
struct control_call *control_calls_to(char *const *paths, size_t n);

/* Whether name, in HOME/run, is a daemon's socket ("<pid>.sock"). */
bool control_is_socket_name(const char *name);

/* A socket's name in HOME/run, from its path (the home may be spelt
 * another way). */
const char *control_socket_name(const char *path);

/* Whether a call failed because no daemon listens on its socket. */
bool control_socket_gone(int rc);

/* How a thread was scheduled before control_run_ahead. */
struct control_sched {
	int policy;
	int priority;
	int nice;
};

/*
 * Run the calling thread ahead of ordinary work, so that a cut does not
 * queue for the CPU behind the readers it cuts: real-time (SCHED_FIFO at
 * the lowest priority) where allowed, else nice -15, else as it was.
 * *was (may be NULL) gets what to restore.  Every cut path only sleeps or
 * does bounded work while ahead.
 */
void control_run_ahead(struct control_sched *was);

/* Schedule the calling thread as it was before control_run_ahead. */
void control_run_as_before(const struct control_sched *was);

#endif
