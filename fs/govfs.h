/*
 * govfs: the state the daemon's modules share.  There is one mount per
 * process, so it is one global, g, rather than a pointer passed to every
 * function: govfs.c defines it, fills it from the command line and at
 * start-up, and tears it down after the session loop; handlers.c answers
 * requests from it; lifecycle.c swaps its state and runs the refresh
 * thread; nodes.c reads its views.
 *
 * Ownership: g owns what its pointers point to, but for key_file and
 * agreement, which point into argv.  govfs.c makes and frees all of it;
 * while serving, lifecycle.c replaces state, under serve_lock (below).
 */
#ifndef GOVFS_GOVFS_H
#define GOVFS_GOVFS_H

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "blockcache.h"
#include "catalog.h"
#include "control.h"
#include "keys.h"
#include "mount_state.h"
#include "quota.h"
#include "viewnodes.h"

struct govfs {
	char home[PATH_MAX];
	const char *key_file;
	const char *agreement;
	char mountpoint[PATH_MAX];
	bool foreground;
	size_t cache_bytes;
	int cpu_nice; /* -o cpu_nice: 0, or the nice to serve at */
	struct master_key mk;
	struct catalog *cat; /* the refresh thread's */
	struct fuse_session *se;
	struct blockcache *cache;
	struct audit_log *audit;

	/*
	 * The current state.  A read is checked and gathered under the
	 * state it found, then holds serve_lock shared while it checks
	 * again under the current one and replies; a swap takes it
	 * exclusive, so when swap_state returns no reply decided under the
	 * old state is still in flight (the drain of a cut), and the drain
	 * waits for replies being written, not for reads being gathered.
	 * It prefers writers, so a stream of reads cannot hold a cut off.
	 */
	pthread_rwlock_t serve_lock;
	struct mount_state *state;
	struct viewnodes *views; /* inodes of views/<name>.csv */

	pthread_mutex_t reload_lock; /* one reload at a time; guards cat */
	int64_t seen_version;	     /* the catalog's, at the last reload */
	int64_t expiry_noted_ns;     /* the valid_until noted expired */
	struct catalog *cat_rw;	     /* registration and expiry notes */
	struct control *control;
	struct quota *quota; /* the agreement's daily byte counter */
	int64_t started_ns;
	/* Non-zero while an admin's suspend or revoke is under way (see
	 * lifecycle.c's hold): data is refused.  The lease's end, on
	 * clock_elapsed_ns; only a reload ends it. */
	_Atomic int64_t hold_until_ns;
	atomic_bool
	    wipe_cache; /* drop rendered blocks: nothing may read them */
	atomic_uint_fast64_t open_files;
	atomic_uint_fast64_t bytes_served;

	pthread_t refresher;
	bool refresher_started;
	atomic_bool stopping;
};

extern struct govfs g;

/* A reference to the current state, for the caller to mount_state_put. */
struct mount_state *current_state(void);

#endif
