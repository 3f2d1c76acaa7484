/*
 * holds: the daemons an admin's suspend or revoke holds.  Before the
 * catalog is even opened, every daemon listening in HOME/run is asked to
 * hold the agreement: each that serves it refuses its data at once (reads
 * drained, kernel caches dropped) until the cut that follows the commit;
 * the others say so.  A hold that no cut ends lapses in the daemon after
 * 30 s.
 *
 * govfsctl's front takes the holds and hands them to govfsctl-core across
 * exec (holds_hand_over, holds_take_over), in the environment variable
 * GOVFSCTL_HELD: when the front started, the agreement, and how each
 * daemon answered.  The hold is only ever a head start: the core's cut
 * after the commit reaches every live mount whatever it was handed.
 */
#ifndef GOVFS_HOLDS_H
#define GOVFS_HOLDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control.h"

#define HOLDS_ENV "GOVFSCTL_HELD"

struct holds {
	struct control_call *calls; /* to every daemon of the home */
	size_t n;
	bool cut; /* the cut that ends them was sent */
};

/* How long a daemon may take to answer a hold: a daemon's control thread
 * runs ahead of the readers, and one too slow is cut after the commit
 * like any other. */
#define HOLD_TIMEOUT_MS 100

/* Ask every daemon of home to hold agreement id, waiting timeout_ms at
 * most in all; *h is the caller's to free with holds_free (empty when no
 * daemon listens). */
void holds_take(const char *home, const char *id, int timeout_ms,
		struct holds *h);

/*
 * Whether the daemon of call c may hold the agreement for us: it said so,
 * or it got the request and did not answer in time (it may have held
 * before it got to answering).
 */
bool holds_may_hold(const struct control_call *c);

/* Whether every live daemon of the home answered the hold in time (a
 * socket left by a dead one refuses the connection, or is gone). */
bool holds_all_answered(const struct holds *h);

/*
 * End the holds of h (nothing was changed after all): ask each daemon that
 * may hold to cut, which serves the catalog's state again.  Returns those
 * calls, *n of them (the caller's to check and free), or NULL if out of
 * memory.
 */
struct control_call *holds_release(const struct holds *h, size_t *n);

void holds_free(struct holds *h);

/*
 * Put h, taken for id by a command that started at start_ns
 * (clock_elapsed_ns), into the environment for the program exec'd next.
 * 0, or -ENOMEM (then nothing is put there).
 */
int holds_hand_over(const struct holds *h, const char *id, int64_t start_ns);

/*
 * Take the holds a front handed over for id in home, and remove them from
 * the environment: true, with *h (empty when no daemon listened) and
 * *start_ns set, if a front handed over for id within the last 10 s, well
 * formed; else false and *h empty.
 */
bool holds_take_over(struct holds *h, const char *home, const char *id,
		     int64_t *start_ns);

#endif
