/*
 * keys: the master key file, and the data keys it wraps for every key and
 * block under the home.  The master key is 32 random bytes in a
 * file outside the home, readable only by its owner; it wraps the data keys
 * that the catalog stores, so a copy of the home alone reveals nothing.
 */
#ifndef GOVFS_KEYS_H
#define GOVFS_KEYS_H

#include "aead.h"

#include <stddef.h>
#include <stdint.h>

/* nonce + sealed key + tag */
#define WRAPPED_KEY_LEN (AEAD_NONCE_LEN + KEY_LEN + AEAD_TAG_LEN)

#define DEFAULT_KEY_FILE "/etc/govfs/master.key"

struct master_key {
	uint8_t bytes[KEY_LEN];
};

/*
 * Create the key file with fresh random bytes (mode 0600, its directory
 * created 0700 if missing).  Returns 0, -EEXIST if it exists, or -errno.
 */
int master_key_create(const char *path) __attribute__((warn_unused_result));

/*
 * Load the key.  Refuses a symbolic link (-ELOOP), a file that is not a
 * regular file owned by the caller with no group or other access, or whose
 * directory someone else could write to (-EPERM), and a file of the wrong
 * size (-EINVAL).  On error why (len bytes) gets a one-line reason, with
 * the mode or owner at fault: "mode 0640: accessible to group or others
 * (want 0600)".
 */
int master_key_load(const char *path, struct master_key *key, char *why,
		    size_t len) __attribute__((warn_unused_result));

/* Fill buf with n cryptographically random bytes; 0 or -EIO. */
int random_bytes(void *buf, size_t n) __attribute__((warn_unused_result));

/*
 * Derive from key the key of one purpose (HKDF-SHA256, purpose as its
 * info), so that one secret serves several uses that never share a key.
 * 0 or -EIO.
 */
int key_derive(const uint8_t key[KEY_LEN], const char *purpose,
	       uint8_t out[KEY_LEN]) __attribute__((warn_unused_result));

/* Make a fresh data key and its wrapped form, bound to label. */
int data_key_new(const struct master_key *mk, const char *label,
		 uint8_t key[KEY_LEN], uint8_t wrapped[WRAPPED_KEY_LEN])
    __attribute__((warn_unused_result));

/* Unwrap a data key made for label; -EIO if the key or label differ. */
int data_key_unwrap(const struct master_key *mk, const char *label,
		    const uint8_t wrapped[WRAPPED_KEY_LEN],
		    uint8_t key[KEY_LEN]) __attribute__((warn_unused_result));

#endif
