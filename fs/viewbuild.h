/*
 * viewbuild: computing the result of an aggregation view, once per
 * (dataset version, agreement revision), by govfsctl; never on a request
 * path.
 *
 * The dataset version's store is read on all cores, each worker feeding
 * its own table of the aggregation engine (policy/aggregate.h).  Memory is
 * bounded: when a table's partial states outgrow their share of the
 * budget they are spilled, ordered by a hash partition of their group (or
 * distinct pair), to a sealed temporary file under HOME/tmp, encrypted
 * with AES-256-GCM under a key that exists only in this process's memory.
 * Partitions are then aggregated one at a time (a partition that still
 * does not fit is split again by the next bits of the hash), distinct
 * pairs are deduplicated partition by partition and counted into their
 * groups, each partition's shown groups are sorted, and the sorted runs
 * are merged (at most 16 at a time) into the result.
 *
 * The result is a store file of the view's output records, sealed under a
 * fresh data key wrapped by the master key for the agreement
 * (viewstore.h), moved into HOME/store; the exact size index and the
 * SHA-256 of its CSV are computed before it is recorded anywhere (the
 * size index is sealed as it is recorded: sizeindex.h).
 */
#ifndef GOVFS_VIEWBUILD_H
#define GOVFS_VIEWBUILD_H

#include <stddef.h>
#include <stdint.h>

#include "agreement.h"
#include "catalog.h"
#include "dataview.h"
#include "keys.h"
#include "perr.h"

/* Called from the building thread now and then: a phase name ("scan",
 * "merge"), and how far it is, in rows. */
typedef void (*view_progress_fn)(void *ctx, const char *phase, uint64_t done,
				 uint64_t total);

struct view_build_opts {
	size_t memory;	  /* bytes of partial states held at once */
	unsigned workers; /* threads reading the store; 0: one per core */
	view_progress_fn progress; /* NULL: none */
	void *progress_ctx;
};

/* The memory budget govfsctl gives a build. */
#define VIEW_BUILD_MEMORY (256u << 20)

/*
 * Compute view over src (a dataset version opened under the agreement's
 * dataset entry, whose rows filter src->plan.filter applies first) for
 * agreement, and fill out: store_file (under HOME/store), store, wrapped
 * key and digest; and sizes, the plain size index of its CSV.  The caller
 * sets the names and numbers out is recorded under, and seals sizes for
 * them into out->sealed_sizes.  Nothing is left under HOME/tmp, whatever
 * happens; on error no result file is left either.  Returns 0, -EINVAL
 * (err says what in the view does not fit the version's schema), or
 * -errno.
 */
int view_build(const char *home, const struct master_key *mk,
	       const char *agreement, const struct dataview *src,
	       const struct view *view, const struct view_build_opts *opts,
	       struct view_result *out, struct size_index *sizes,
	       struct perr *err) __attribute__((warn_unused_result));

#endif
