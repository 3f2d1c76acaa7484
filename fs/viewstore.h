/*
 * viewstore: the stored results of aggregation views as files: the label
 * their data keys are wrapped under, and their removal once the catalog
 * no longer names them (pruned by a new revision or dataset version, or
 * dropped with their agreement).  A result file is a store file (store.h)
 * of the view's output records under HOME/store; the catalog row
 * (catalog.h, struct view_result) holds its wrapped key, so deleting the
 * row crypto-shreds the file even before it is unlinked.
 */
#ifndef GOVFS_VIEWSTORE_H
#define GOVFS_VIEWSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "keys.h"

/* The label a view result's data key is wrapped under: bound to its
 * agreement, so a key moved to another agreement's row does not unwrap. */
void view_key_label(const char *agreement, char *buf, size_t len);

/*
 * The key of agreement's view result digests (struct view_result): derived
 * from the master key for that agreement alone, so that equal digests of
 * two agreements say nothing.  0 or -EIO.
 */
int view_digest_key(const struct master_key *mk, const char *agreement,
		    uint8_t key[KEY_LEN]) __attribute__((warn_unused_result));

/*
 * Unlink the files (relative to home) the catalog no longer references.
 * A file already gone is not an error; returns how many were removed.
 */
size_t view_files_remove(const char *home, const struct catalog_files *files);

/* What view_results_delete_agreement removed. */
struct view_results_deleted {
	uint64_t count; /* results (catalog rows) */
	uint64_t bytes; /* bytes of their files */
};

/*
 * Delete every view result of agreement: the catalog rows, with the keys
 * they hold, in one transaction of its own (so call it outside any), then
 * the files.  For `agreement revoke`.  If the process dies between the
 * commit and the unlinks, the files are unreferenced leftovers that the
 * next govfsctl change removes (home_cleanup).  Idempotent: a second call
 * deletes nothing.  Returns 0 or -errno; *out says what was deleted.
 */
int view_results_delete_agreement(struct catalog *cat, const char *home,
				  const char *agreement,
				  struct view_results_deleted *out)
    __attribute__((warn_unused_result));

#endif
