/*
 * quota: an agreement's daily byte counter, shared by all its mounts and
 * kept across daemon restarts.  It is one 64-bit word in
 * HOME/quota/<agreement>, mapped shared by every daemon of that agreement
 * and changed only by compare-and-swap, so no lock is taken on a read.
 * The word packs the day it counts (its low 20 bits) and the bytes served
 * that day (44 bits; AGREEMENT_QUOTA_MAX is the largest quota).
 *
 * Days are whole days in a fixed UTC offset (the agreement's valid_from
 * offset): day n starts at midnight of that offset.
 */
#ifndef GOVFS_QUOTA_H
#define GOVFS_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

struct quota;

/*
 * Map the counter of agreement (creating it, 0600); *out is the caller's.
 * -EINVAL if agreement is not a valid id (it names a file: never a path).
 */
int quota_open(const char *home, const char *agreement, struct quota **out)
    __attribute__((warn_unused_result));
void quota_close(struct quota *q);

/* Remove the counter of agreement (revoke); 0 if there was none,
 * -EINVAL if agreement is not a valid id. */
int quota_remove(const char *home, const char *agreement)
    __attribute__((warn_unused_result));

/* The day holding now_ns in the offset offset_min (minutes east of UTC). */
int64_t quota_day(int64_t now_ns, int offset_min);

/* Unix nanoseconds at which day starts, in that offset. */
int64_t quota_day_start_ns(int64_t day, int offset_min);

/*
 * Take up to want bytes of day's allowance limit: returns how many were
 * granted (less than want when the read reaches the quota, 0 when it is
 * used up).
 */
uint64_t quota_take(struct quota *q, int64_t day, uint64_t limit,
		    uint64_t want);

/* Give back n bytes taken on day (a read that failed after all). */
void quota_give_back(struct quota *q, int64_t day, uint64_t n);

/* Bytes served on day. */
uint64_t quota_used(const struct quota *q, int64_t day);

#endif
