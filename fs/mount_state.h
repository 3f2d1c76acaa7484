/*
 * mount_state: what one mount shows at one moment, built from the catalog:
 * the agreement's current revision and state, and for each of its datasets
 * the data.csv view and the views/<name>.csv results (file_views),
 * schema.json and the README.txt text.
 *
 * A mount_state is immutable once built and reference-counted: request
 * handlers take a reference to the current one, the refresh thread swaps
 * in a new one when the catalog changes.  file_views are reference-counted
 * too, shared between successive states while their (dataset version,
 * agreement revision) is unchanged, and held by every open handle, so a
 * handle keeps reading the version it opened.
 */
#ifndef GOVFS_MOUNT_STATE_H
#define GOVFS_MOUNT_STATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "agreement.h"
#include "buf.h"
#include "catalog.h"
#include "dataview.h"
#include "keys.h"

struct mount_state;

/*
 * One data file: a data.csv (a dataset version rendered under one
 * agreement revision), or a views/<name>.csv (the stored result of a view
 * over that version under that revision, served the same way).
 *
 * A file whose sealed size index does not open (altered, or moved from
 * another file's row), or whose store file does not (damaged, or not the
 * one the catalog recorded), has a fault: it serves nothing (opens fail
 * with EIO), its size is 0, and README.txt says why, while the rest of
 * the mount is served.
 */
struct file_view {
	atomic_uint refs;
	uint64_t id; /* unique in this daemon: the block cache's key */
	char *dataset;
	char *view; /* the view's name; NULL for data.csv */
	int64_t version;
	int64_t revision;
	struct dataview dv;
	uint64_t *ends; /* ends[b]: offset just past block b's bytes */
	uint64_t size;
	int64_t mtime_ns;
	/* data.csv: render_fingerprint of its revision's rules; a view:
	 * agg_fingerprint of its definition and the rows filter. */
	struct buf fingerprint;
	uint8_t digest[VIEW_DIGEST_LEN]; /* a view's bytes */
	const char *fault; /* NULL, or why it serves nothing (static text) */
};

/*
 * Whether fv still gives the same bytes under state st (a later revision
 * may have changed its rules or its view, or withdrawn its dataset or
 * view).  A view is compared by its bytes when st has its result for the
 * same dataset version, else by its definition.
 */
bool file_view_current(const struct file_view *fv,
		       const struct mount_state *st);

struct file_view *file_view_get(struct file_view *fv);
void file_view_put(struct file_view *fv);

/* Offset where block b's bytes start in data.csv. */
static inline uint64_t file_view_block_start(const struct file_view *fv,
					     uint32_t b)
{
	return b ? fv->ends[b - 1] : fv->dv.sizes.header_bytes;
}

/* The block holding byte off (off >= header, off < size). */
uint32_t file_view_block_at(const struct file_view *fv, uint64_t off);

/*
 * Render block b into out (which is emptied first), checking that it has
 * exactly the size the size index says.  -EIO on any disagreement.
 */
int file_view_render(const struct file_view *fv, uint32_t b,
		     struct block_decoder *d, struct buf *out)
    __attribute__((warn_unused_result));

enum time_phase {
	PHASE_NOT_YET,
	PHASE_VALID,
	PHASE_EXPIRED,
};

struct dataset_state {
	const struct agreement_dataset *ds; /* points into state->agr */
	struct file_view *data;		    /* NULL when records is false */
	struct file_view **views;	    /* ds->nviews, as ds->views */
	struct buf schema_json;
	int64_t mtime_ns;
};

struct mount_state {
	atomic_uint refs;
	struct agreement agr;
	struct agreement_record rec;
	bool has_key;			/* false only when revoked */
	uint8_t pseudonym_key[KEY_LEN]; /* plain: wiped when freed */
	uint8_t size_key[KEY_LEN];	/* derived from it; wiped too */
	bool active;			/* state is "active" */
	enum time_phase phase;
	size_t ndatasets;
	struct dataset_state *datasets;
	bool audit_low_space; /* README.txt warns that the log's disk fills */
	struct buf readme;
	int64_t mtime_ns;
};

enum time_phase time_phase_at(const struct agreement *agr, int64_t now_ns);

/*
 * The state SPEC's lifecycle names at now_ns: the stored state ("active",
 * "suspended", "revoked"), except that an active agreement outside its
 * validity window is "expired" or "not_yet_valid".  Static text.
 */
const char *agreement_state_at(const char *stored, const struct agreement *agr,
			       int64_t now_ns);

/* Since when, by whom and why an agreement is in its state. */
struct state_story {
	int64_t since_ns;
	const char *by;
	const char *reason; /* or NULL */
};

/*
 * The story of the state agreement_state_at names for rec at now_ns: the
 * stored state's own, except that "expired" dates from valid_until and
 * "not_yet_valid" waits for valid_from, both by the validity window.  The
 * strings are rec's, or static.
 */
struct state_story agreement_state_story(const struct agreement_record *rec,
					 const struct agreement *agr,
					 int64_t now_ns);

/* Whether a and b serve the same bytes and say the same in README.txt. */
bool mount_state_same(const struct mount_state *a, const struct mount_state *b);

/*
 * Build the state of agreement id from the catalog, reusing prev's file
 * views where nothing changed (prev may be NULL).  audit_low_space: the
 * audit log's file system is low on space (audit_log_low_space), which
 * README.txt then says.  A revoked agreement loads with no datasets.
 * -ENOENT for an unknown agreement, or a file without a size index (none
 * computed, or an older govfs kept it in clear); -EIO for an agreement
 * whose key does not unwrap; why says more on any error.  A file whose
 * size index or store file does not open loads with a fault (struct
 * file_view).
 */
int mount_state_load(struct catalog *cat, const char *home,
		     const struct master_key *mk, const char *id,
		     const struct mount_state *prev, bool audit_low_space,
		     struct mount_state **out, char *why, size_t whylen)
    __attribute__((warn_unused_result));

struct mount_state *mount_state_get(struct mount_state *st);
void mount_state_put(struct mount_state *st);

/* The dataset named name, or NULL. */
const struct dataset_state *mount_state_dataset(const struct mount_state *st,
						const char *name);

/* The result of view of dataset in st, or NULL. */
struct file_view *mount_state_view(const struct mount_state *st,
				   const char *dataset, const char *view);

#endif
