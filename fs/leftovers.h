/*
 * leftovers: what an interrupted change left in a home (files in tmp/,
 * store files the catalog does not reference), and their removal.
 */
#ifndef GOVFS_LEFTOVERS_H
#define GOVFS_LEFTOVERS_H

#include "catalog.h"

/*
 * Remove leftovers of interrupted changes: every file in tmp/ and every
 * store file the catalog does not reference.  Call with the lock held.
 * Returns how many files were removed, or -errno.
 */
int leftovers_remove(const char *home, struct catalog *cat);

#endif
