/*
 * home: the layout of a govfs home (catalog.db, store/, tmp/, lock), the
 * checks that it belongs to the running user alone, the admin lock that
 * serialises govfsctl's changes, and who the admin is.  What an
 * interrupted change left behind is fs/leftovers' business.
 */
#ifndef GOVFS_HOME_H
#define GOVFS_HOME_H

#include <stddef.h>

#define HOME_DEFAULT "/var/lib/govfs"
#define HOME_STORE_DIR "store"
#define HOME_TMP_DIR "tmp"
#define HOME_RUN_DIR "run"     /* live daemons' control sockets */
#define HOME_QUOTA_DIR "quota" /* per-agreement daily byte counters */

/*
 * Whether home_create may make a home at path: 0 if an empty directory is
 * there, or nothing is and its parent directory may be written; -EEXIST if
 * a directory that holds anything is there; else -errno (-ENOTDIR for a
 * file, -ENOENT for a missing parent).  Checks without creating anything.
 */
int home_check_new(const char *home) __attribute__((warn_unused_result));

/*
 * Create the home (mode 0700) and its folders.  An existing empty directory
 * will do; one that holds anything is refused with -EEXIST.
 */
int home_create(const char *home) __attribute__((warn_unused_result));

/*
 * Check that home exists and is private to the running user: the home and
 * its folders are directories, catalog.db, audit.db, their -wal and -shm
 * files, audit.key and the lock are regular files (those that exist: only
 * catalog.db, store/ and tmp/ must), none a symbolic link, each owned by
 * the effective uid with no access for group or others.  On error path
 * says which path and why what is wrong with it, with its mode or owner:
 * "mode 0644: open to group or others (want 0600)".
 */
int home_check(const char *home, char *path, size_t pathlen, char *why,
	       size_t whylen) __attribute__((warn_unused_result));

/* Create home/sub (mode 0700) unless it exists; 0 or -errno. */
int home_subdir(const char *home, const char *sub)
    __attribute__((warn_unused_result));

/* Take the admin lock (blocking); returns the fd to pass to home_unlock. */
int home_lock(const char *home) __attribute__((warn_unused_result));
void home_unlock(int fd);

/* Who is acting: "uid 1000 (alice)", from SUDO_UID or the login uid. */
void admin_identity(char *buf, size_t len);

/* The uid of admin_identity. */
long admin_uid(void);

#endif
