/*
 * fileio: whole reads and writes that retry after EINTR and short
 * transfers, for the files govfs writes itself (keys, store, audit key),
 * and the fsync of a directory after a rename into it.
 */
#ifndef GOVFS_FILEIO_H
#define GOVFS_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Write all len bytes; 0 or -errno. */
int write_all(int fd, const void *data, size_t len)
    __attribute__((warn_unused_result));

/* Write all len bytes at off; 0 or -errno. */
int pwrite_all(int fd, const void *data, size_t len, uint64_t off)
    __attribute__((warn_unused_result));

/* Read exactly len bytes at off; -EIO at end of file, else 0 or -errno. */
int pread_all(int fd, void *data, size_t len, uint64_t off)
    __attribute__((warn_unused_result));

/* fsync the directory home/sub, so that renames, creations and unlinks
 * in it are durable; 0 or -errno. */
int fsync_dir(const char *home, const char *sub)
    __attribute__((warn_unused_result));

#endif
