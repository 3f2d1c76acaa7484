/*
 * catalog: everything govfs knows about datasets, their versions, agreements
 * and their revisions, the size index of each data.csv, and the computed
 * results of each aggregation view.  This is
 * the one interface to catalog storage; this build keeps it in SQLite
 * (HOME/catalog.db, WAL), and a second backend would implement the same
 * functions.  Readers (the daemon) never block on writers (govfsctl).
 *
 * The catalog does no cryptography: wrapped keys and sealed size indexes
 * (sizeindex.h) are bytes it keeps without looking inside.
 *
 * Strings and buffers returned in structs are owned by the struct and freed
 * by its *_release function.  Times are Unix nanoseconds.
 */
#ifndef GOVFS_CATALOG_H
#define GOVFS_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "keys.h"
#include "store.h"

struct catalog;

/* Create HOME/catalog.db with an empty schema; -EEXIST if one exists. */
int catalog_create(const char *home, struct catalog **out)
    __attribute__((warn_unused_result));

/*
 * Open HOME/catalog.db; read-only opens never write.  A writable open
 * brings a home made by an earlier govfs up to this schema.  Size indexes
 * that it kept in clear (of data.csv files, and of view results in their
 * rows) are then dropped, not sealed as they are: nothing vouches for
 * them, and `agreement apply` computes them again from the sealed store.
 * Until then (and in a read-only open of such a home) there are none.
 */
int catalog_open(const char *home, bool read_only, struct catalog **out)
    __attribute__((warn_unused_result));

void catalog_close(struct catalog *cat);

/* The last SQLite error message, for one-line reports. */
const char *catalog_errmsg(struct catalog *cat);

/* A write transaction: begin takes the write lock at once. */
int catalog_begin(struct catalog *cat) __attribute__((warn_unused_result));
int catalog_commit(struct catalog *cat) __attribute__((warn_unused_result));
void catalog_rollback(struct catalog *cat);

/*
 * From now on, until catalog_sync, this connection's commits are seen by
 * other connections at once and survive this process dying, but not yet a
 * power loss.  For a cut, which must land in the daemons before the disk
 * has caught up (failing closed: a cut that a power loss undoes was never
 * confirmed).  Call outside a transaction.
 */
int catalog_defer_sync(struct catalog *cat) __attribute__((warn_unused_result));
/* Make every commit so far durable, and each later one at its commit. */
int catalog_sync(struct catalog *cat) __attribute__((warn_unused_result));

/* A snapshot for reading several things consistently. */
int catalog_begin_read(struct catalog *cat) __attribute__((warn_unused_result));
void catalog_end_read(struct catalog *cat);

/* A number that changes whenever another connection commits a change. */
int catalog_data_version(struct catalog *cat, int64_t *out)
    __attribute__((warn_unused_result));

int catalog_meta_get(struct catalog *cat, const char *key, char **value)
    __attribute__((warn_unused_result));
int catalog_meta_set(struct catalog *cat, const char *key, const char *value)
    __attribute__((warn_unused_result));

struct dataset_version {
	char *dataset;
	int64_t version;
	char *title;
	char *provider;
	int64_t ingested_ns;
	char *ingested_by;
	char *source_name;
	uint64_t source_bytes;
	char *source_sha256;
	char *schema_json;
	char *store_file; /* relative to the home */
	struct store_info store;
	uint8_t wrapped_key[WRAPPED_KEY_LEN];
};

void dataset_version_release(struct dataset_version *v);

/* The newest version of dataset id; -ENOENT if it has none. */
int catalog_dataset_latest(struct catalog *cat, const char *id,
			   struct dataset_version *out)
    __attribute__((warn_unused_result));

/* Every version of id, oldest first; *out is an array of *n. */
int catalog_dataset_versions(struct catalog *cat, const char *id,
			     struct dataset_version **out, size_t *n)
    __attribute__((warn_unused_result));

/* The newest version of every dataset, by id. */
int catalog_dataset_list(struct catalog *cat, struct dataset_version **out,
			 size_t *n) __attribute__((warn_unused_result));

void dataset_versions_free(struct dataset_version *v, size_t n);

/*
 * Add v as the next version of v->dataset (creating the dataset, and
 * updating its title and provider when v gives them); v->version is set.
 */
int catalog_dataset_add_version(struct catalog *cat, struct dataset_version *v)
    __attribute__((warn_unused_result));

/* Replace the schema JSON of one version (grading). */
int catalog_dataset_set_schema(struct catalog *cat, const char *id,
			       int64_t version, const char *schema_json)
    __attribute__((warn_unused_result));

/* Call fn for every store file the catalog references (dataset versions
 * and view results). */
int catalog_store_files(struct catalog *cat,
			int (*fn)(void *ctx, const char *file), void *ctx)
    __attribute__((warn_unused_result));

struct agreement_record {
	char *id;
	int64_t created_ns;
	char *state; /* "active", "suspended", "revoked" */
	int64_t state_since_ns;
	char *state_by;
	char *state_reason;
	int64_t revision;
	int64_t applied_ns;
	char *applied_by;
	char *policy_json; /* canonical text of the current revision */
	/* The agreement's pseudonym key, wrapped by the master key; absent
	 * once revoked (crypto-shredded). */
	bool has_pseudonym_key;
	uint8_t pseudonym_key[WRAPPED_KEY_LEN];
};

void agreement_record_release(struct agreement_record *a);

/* The agreement and its current revision; -ENOENT if unknown. */
int catalog_agreement_get(struct catalog *cat, const char *id,
			  struct agreement_record *out)
    __attribute__((warn_unused_result));

int catalog_agreement_list(struct catalog *cat, struct agreement_record **out,
			   size_t *n) __attribute__((warn_unused_result));

void agreement_records_free(struct agreement_record *a, size_t n);

/*
 * Record a new revision of a->id with a->policy_json (creating the
 * agreement, active, at revision 1, with a->pseudonym_key); a->revision
 * and times are set.  -EPERM if the agreement is revoked.
 */
int catalog_agreement_add_revision(struct catalog *cat,
				   struct agreement_record *a)
    __attribute__((warn_unused_result));

/*
 * The size index of the data.csv of dataset version under agreement
 * revision, sealed (sizeindex.h): an opaque blob here.
 */
int catalog_size_index_put(struct catalog *cat, const char *agreement,
			   int64_t revision, const char *dataset,
			   int64_t version, const struct buf *sealed)
    __attribute__((warn_unused_result));

/*
 * The blob put for that pair into out (emptied first; release it).
 * -ENOENT if none was: never computed, or kept in clear by an older
 * govfs (see catalog_open).
 */
int catalog_size_index_get(struct catalog *cat, const char *agreement,
			   int64_t revision, const char *dataset,
			   int64_t version, struct buf *out)
    __attribute__((warn_unused_result));

/* Drop the size indexes of agreement other than (revision, its datasets'
 * newest versions): nothing can open them any more. */
int catalog_size_index_prune(struct catalog *cat, const char *agreement,
			     int64_t revision)
    __attribute__((warn_unused_result));

/*
 * Lifecycle: set the agreement's state ("active", "suspended", "revoked")
 * with who changed it and why, since now.  -ENOENT if unknown.
 */
int catalog_agreement_set_state(struct catalog *cat, const char *id,
				const char *state, const char *by,
				const char *reason)
    __attribute__((warn_unused_result));

/* What catalog_agreement_shred deleted. */
struct agreement_shred {
	size_t pseudonym_keys;
	size_t size_indexes;
};

/* Delete the agreement's pseudonym key and size indexes (revoke). */
int catalog_agreement_shred(struct catalog *cat, const char *id,
			    struct agreement_shred *out)
    __attribute__((warn_unused_result));

/*
 * Claim the one agreement.expire record of the expiry at valid_until_ns:
 * *claimed is true for exactly one caller per (agreement, valid_until).
 */
int catalog_agreement_claim_expiry(struct catalog *cat, const char *id,
				   int64_t valid_until_ns, bool *claimed)
    __attribute__((warn_unused_result));

/* A live govfs daemon, registered for govfsctl to find and notify. */
struct mount_record {
	char *socket; /* its control socket; the key */
	char *agreement;
	int64_t pid;
	char *mountpoint;
	int64_t started_ns;
};

void mount_records_free(struct mount_record *m, size_t n);

int catalog_mount_register(struct catalog *cat, const struct mount_record *m)
    __attribute__((warn_unused_result));
/* -ENOENT if it was not registered (another process forgot it first). */
int catalog_mount_unregister(struct catalog *cat, const char *socket)
    __attribute__((warn_unused_result));

/* Registered mounts, of one agreement or (agreement NULL) all. */
int catalog_mount_list(struct catalog *cat, const char *agreement,
		       struct mount_record **out, size_t *n)
    __attribute__((warn_unused_result));

/* Bytes of a view result's digest (HMAC-SHA256). */
#define VIEW_DIGEST_LEN 32

/*
 * The result of one view of one agreement revision over one dataset
 * version: a store file of its output records (rowfmt, sealed under its
 * own data key, wrapped by the master key), the size index of its CSV
 * (sealed: sizeindex.h), and the digest of the CSV bytes: an HMAC under a
 * key of the agreement's derived from the master key (view_digest_key),
 * so that it says whether two results serve the same bytes, but a copy
 * of the catalog cannot confirm a guess of them.  (Its column is still
 * named sha256: an older govfs stored the plain SHA-256 there.)
 */
struct view_result {
	char *agreement;
	int64_t revision;
	char *dataset;
	int64_t version;
	char *view;
	char *store_file; /* relative to the home */
	struct store_info store;
	uint8_t wrapped_key[WRAPPED_KEY_LEN];
	struct buf sealed_sizes;
	uint8_t digest[VIEW_DIGEST_LEN];
};

void view_result_release(struct view_result *r);

/* Record r (replacing a result of the same five keys). */
int catalog_view_result_put(struct catalog *cat, const struct view_result *r)
    __attribute__((warn_unused_result));

/* -ENOENT if none was computed for those five keys (or an older govfs
 * kept its size index in clear: see catalog_open). */
int catalog_view_result_get(struct catalog *cat, const char *agreement,
			    int64_t revision, const char *dataset,
			    int64_t version, const char *view,
			    struct view_result *out)
    __attribute__((warn_unused_result));

/* Store files whose catalog rows were deleted, for the caller to unlink
 * once the deletion is committed, and their bytes. */
struct catalog_files {
	size_t n;
	char **files; /* relative to the home */
	uint64_t bytes;
};

void catalog_files_release(struct catalog_files *f);

/*
 * Delete the view results of agreement other than those of revision over
 * their datasets' newest versions: nothing can open them any more.  The
 * files they named are added to *freed.
 */
int catalog_view_result_prune(struct catalog *cat, const char *agreement,
			      int64_t revision, struct catalog_files *freed)
    __attribute__((warn_unused_result));

/* Delete every view result of agreement; their files are added to *freed. */
int catalog_view_result_drop_all(struct catalog *cat, const char *agreement,
				 struct catalog_files *freed)
    __attribute__((warn_unused_result));

/* ---- dataset drop ---- */

/* What catalog_dataset_drop deleted. */
struct dataset_drop {
	size_t versions;
	uint64_t stored_bytes; /* of their store files */
	size_t size_indexes;
	char **files; /* nfiles store files, relative to the home */
	size_t nfiles;
};

void dataset_drop_release(struct dataset_drop *d);

/*
 * Delete dataset id, inside the caller's transaction: every version with
 * its wrapped data key (which crypto-shreds its store file), every size
 * index computed for it, and the dataset itself.  out (release it) lists
 * the store files, which the caller unlinks once the transaction commits;
 * if it never gets there, home_cleanup removes them as unreferenced.
 * Whether an agreement still names the dataset is the caller's to check,
 * in the same transaction.  -ENOENT if the dataset has no version.
 */
int catalog_dataset_drop(struct catalog *cat, const char *id,
			 struct dataset_drop *out)
    __attribute__((warn_unused_result));

/*
 * Copy the write-ahead log into catalog.db and truncate it, so that rows
 * deleted (and overwritten: writable connections use secure_delete) leave
 * no older copy behind in catalog.db-wal.  Call outside a transaction.
 * 0, or -EBUSY if a reader kept part of the log in use.
 */
int catalog_checkpoint(struct catalog *cat) __attribute__((warn_unused_result));

#endif
