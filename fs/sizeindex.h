/*
 * sizeindex: the size index of a data file (a data.csv, or a view's CSV),
 * which gives every block's place in it, and the sealed form in which the
 * catalog keeps it.
 *
 * A size index says what an agreement sees: how many rows its filter
 * keeps, how long each block's rows are once masked.  So the catalog holds
 * it only sealed, as an opaque blob: nonce || AES-256-GCM ciphertext ||
 * tag, under the agreement's size key, with the place it describes
 * (agreement, revision, dataset, version, and the view or data.csv) as
 * associated data.  A blob that was altered, or moved to another row, does
 * not open (-EIO).
 *
 * The size key is derived (keys.h: key_derive) from the agreement's
 * pseudonym key, which the catalog holds wrapped by the master key: an
 * agreement has one secret, and `agreement revoke`, which deletes it,
 * crypto-shreds its size indexes along with its tokens.
 */
#ifndef GOVFS_SIZEINDEX_H
#define GOVFS_SIZEINDEX_H

#include <stdint.h>

#include "buf.h"
#include "keys.h"

/* Size index of one data file: header bytes, then each block's bytes. */
struct size_index {
	uint64_t rows; /* records shown (a view: groups) */
	uint64_t header_bytes;
	uint32_t nblocks;
	uint64_t *block_bytes; /* nblocks entries; owned */
	uint64_t total_bytes;
};

void size_index_release(struct size_index *si);

/* The file a size index describes: what its seal binds it to. */
struct size_index_place {
	const char *agreement;
	int64_t revision;
	const char *dataset;
	int64_t version;
	const char *view; /* NULL: the dataset's data.csv */
};

/* The size key of an agreement, from its plain pseudonym key. */
int size_key_derive(const uint8_t pseudonym_key[KEY_LEN],
		    uint8_t size_key[KEY_LEN])
    __attribute__((warn_unused_result));

/*
 * Seal si for place at under size_key into out (emptied first; the caller
 * releases it).  A fresh random nonce each time.  0, -ENOMEM or -EIO.
 */
int size_index_seal(const uint8_t size_key[KEY_LEN],
		    const struct size_index_place *at,
		    const struct size_index *si, struct buf *out)
    __attribute__((warn_unused_result));

/*
 * Open a blob that size_index_seal made for place at into out (release
 * it).  -EIO if the blob was altered, cut, sealed under another key or for
 * another place; -ENOMEM.
 */
int size_index_open(const uint8_t size_key[KEY_LEN],
		    const struct size_index_place *at, const struct buf *sealed,
		    struct size_index *out) __attribute__((warn_unused_result));

#endif
