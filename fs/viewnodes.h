/*
 * viewnodes: the inode numbers of views/<name>.csv files.
 *
 * The daemon numbers its nodes itself (fs/nodes.c): 1 is the root, 2 is
 * README.txt, and dataset slot s has 16 + 4s + kind for its directory,
 * data.csv, schema.json and views/ (at most 4096 datasets, so below
 * 2^15).  A view file gets VIEW_INO_FIRST + n, where n counts the
 * (dataset, view) pairs in the order they were first seen: any number of
 * views per dataset, up to VIEW_NODES_MAX in all.  A pair keeps its number
 * for the daemon's life, across revisions, so the kernel never sees one
 * inode stand for two files.
 *
 * Safe to use from many threads.  Names handed out stay valid until
 * viewnodes_free().
 */
#ifndef GOVFS_VIEWNODES_H
#define GOVFS_VIEWNODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VIEW_INO_FIRST (UINT64_C(1) << 32)
#define VIEW_NODES_MAX (UINT64_C(1) << 31)

struct viewnodes;

/* NULL on ENOMEM. */
struct viewnodes *viewnodes_new(void);
void viewnodes_free(struct viewnodes *vn);

/* The inode of views/<view>.csv of dataset, numbered on first sight;
 * 0 on ENOMEM or when VIEW_NODES_MAX are taken. */
uint64_t viewnodes_ino(struct viewnodes *vn, const char *dataset,
		       const char *view);

/* Whether ino is a view's inode; if so, its dataset and view names. */
bool viewnodes_names(struct viewnodes *vn, uint64_t ino, const char **dataset,
		     const char **view);

/* How many inodes were numbered: VIEW_INO_FIRST up to this past it. */
uint64_t viewnodes_count(struct viewnodes *vn);

#endif
