/*
 * scratch: the throw-away directories of the unit tests.
 */
#ifndef GOVFS_TEST_SCRATCH_H
#define GOVFS_TEST_SCRATCH_H

/* Remove dir and everything below it (symbolic links are not followed);
 * 0, or -1 with errno. */
int scratch_remove(const char *dir);

#endif
