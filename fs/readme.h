/*
 * readme: the text of README.txt, the agreement as the analyst should read
 * it: grantee, scenario, validity (in the agreement's offset and in UTC),
 * state and why, quota, a warning while the audit log's disk is nearly
 * full, and for each dataset its files, columns and rules.
 */
#ifndef GOVFS_README_H
#define GOVFS_README_H

#include "buf.h"
#include "mount_state.h"

/* Today's use of the agreement's daily quota. */
struct readme_quota {
	int64_t day;
	int64_t day_start_ns;
	uint64_t used;
};

/*
 * Write the README of st into out; with q, the quota line says what is
 * used and left today.  0 or -ENOMEM.
 */
int readme_render(const struct mount_state *st, const struct readme_quota *q,
		  struct buf *out) __attribute__((warn_unused_result));

#endif
