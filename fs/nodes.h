/*
 * nodes: the inode numbers of a mount's files, and what each one stands
 * for in a given state.
 *
 * 1 is the root, 2 is README.txt.  A dataset gets a slot the first time
 * its name is seen, and slot s has 16 + 4s + kind for its directory,
 * data.csv, schema.json and views/ (at most 4096 datasets).  The files
 * under views/ are numbered by viewnodes (g.views).  A name keeps its slot
 * for the daemon's life, across revisions, so the kernel never sees one
 * inode stand for two files.
 *
 * Safe to use from many threads.
 */
#ifndef GOVFS_NODES_H
#define GOVFS_NODES_H

#include <fuse_lowlevel.h>
#include <stddef.h>

#include "mount_state.h"

#define INO_ROOT 1
#define INO_README 2
#define KINDS_PER_DATASET 4

enum node_kind {
	NODE_DIR,
	NODE_DATA,
	NODE_SCHEMA,
	NODE_VIEWS,
};

/* The file names of the kinds but NODE_DIR: "data.csv", ... */
extern const char *const node_names[];

/* The inode slot of a dataset name, assigned on first sight; -1 once
 * every slot is taken, or on ENOMEM. */
long dataset_slot(const char *name);

/* How many slots are assigned: 0 up to this less one. */
size_t dataset_slot_count(void);

/* Forget every slot, at exit. */
void dataset_slots_release(void);

fuse_ino_t node_ino(long slot, enum node_kind kind);

/* The dataset of st behind ino (NULL if none) and the node's kind. */
const struct dataset_state *node_of(const struct mount_state *st,
				    fuse_ino_t ino, enum node_kind *kind);

/* The view file behind ino in st, or NULL. */
struct file_view *view_node(const struct mount_state *st, fuse_ino_t ino);

/* The path of ino from the mount root ("/ds/data.csv"), and name below it
 * when name is not NULL, in buf of len bytes. */
void node_path(fuse_ino_t ino, const char *name, char *buf, size_t len);

#endif
