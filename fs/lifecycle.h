/*
 * lifecycle: keeping a mount's state current.  The refresh thread reloads
 * the agreement from the catalog when the catalog changes or a validity
 * phase turns, swaps the new state in (draining the replies decided under
 * the old one, then telling the kernel to drop what it holds), records the
 * agreement's expiry once, and wipes the block cache once nothing may read
 * it.  The control socket's requests are answered here too: "cut" reloads
 * at once and answers when the change has landed, "stats" gives the
 * mount's figures.
 */
#ifndef GOVFS_LIFECYCLE_H
#define GOVFS_LIFECYCLE_H

#include "buf.h"
#include "mount_state.h"

/*
 * The refresh thread's body (arg unused), until g.stopping: it holds no
 * lock while it tells the kernel to drop caches and handles no request,
 * as libfuse requires.
 */
void *refresher_main(void *arg);

/* A control_fn for control_start (ctx unused). */
void on_control(void *ctx, const char *request, struct buf *reply);

/*
 * Say once on stderr which files of next serve nothing, and why (opens of
 * them fail with EIO, recorded in the audit log); prev (may be NULL) is
 * the state served before, whose faults were said then.
 */
void report_faults(const struct mount_state *prev,
		   const struct mount_state *next);

#endif
