/*
 * nodes: the inode numbers of a mount's files (see nodes.h).  The slots
 * hold the dataset names in the order they were first seen.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "govfs.h"
#include "nodes.h"
#include "viewnodes.h"

#define INO_FIRST_DATASET 16
#define MAX_DATASETS 4096

const char *const node_names[] = {
    [NODE_DATA] = "data.csv",
    [NODE_SCHEMA] = "schema.json",
    [NODE_VIEWS] = "views",
};

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static char *slots[MAX_DATASETS]; /* dataset names by inode slot; grows */
static size_t nslots;

/* The inode slot of a dataset name, assigned on first sight. */
long dataset_slot(const char *name)
{
	long slot = -1;

	pthread_mutex_lock(&slots_lock);
	for (size_t i = 0; i < nslots; i++)
		if (!strcmp(slots[i], name))
			slot = (long)i;
	if (slot < 0 && nslots < MAX_DATASETS) {
		slots[nslots] = strdup(name);
		if (slots[nslots])
			slot = (long)nslots++;
	}
	pthread_mutex_unlock(&slots_lock);
	return slot;
}

size_t dataset_slot_count(void)
{
	size_t n;

	pthread_mutex_lock(&slots_lock);
	n = nslots;
	pthread_mutex_unlock(&slots_lock);
	return n;
}

void dataset_slots_release(void)
{
	for (size_t i = 0; i < nslots; i++)
		free(slots[i]);
	nslots = 0;
}

fuse_ino_t node_ino(long slot, enum node_kind kind)
{
	return INO_FIRST_DATASET + (fuse_ino_t)slot * KINDS_PER_DATASET + kind;
}

/* The dataset of st behind ino (NULL if none) and the node's kind. */
const struct dataset_state *node_of(const struct mount_state *st,
				    fuse_ino_t ino, enum node_kind *kind)
{
	const char *name = NULL;
	size_t slot;

	if (ino < INO_FIRST_DATASET)
		return NULL;
	slot = (ino - INO_FIRST_DATASET) / KINDS_PER_DATASET;
	*kind = (enum node_kind)((ino - INO_FIRST_DATASET) % KINDS_PER_DATASET);
	pthread_mutex_lock(&slots_lock);
	if (slot < nslots)
		name = slots[slot];
	pthread_mutex_unlock(&slots_lock);
	return name ? mount_state_dataset(st, name) : NULL;
}

/* The view file behind ino in st, or NULL. */
struct file_view *view_node(const struct mount_state *st, fuse_ino_t ino)
{
	const char *dataset, *view;

	if (!viewnodes_names(g.views, ino, &dataset, &view))
		return NULL;
	return mount_state_view(st, dataset, view);
}

/* The path of ino from the mount root ("/ds/data.csv"), and name below it
 * when name is not NULL. */
void node_path(fuse_ino_t ino, const char *name, char *buf, size_t len)
{
	const char *ds = NULL, *view;
	size_t slot, kind;

	if (ino == INO_README) {
		snprintf(buf, len, "/README.txt");
		return;
	}
	if (viewnodes_names(g.views, ino, &ds, &view)) {
		snprintf(buf, len, "/%s/views/%s.csv", ds, view);
		return;
	}
	if (ino >= INO_FIRST_DATASET) {
		slot = (ino - INO_FIRST_DATASET) / KINDS_PER_DATASET;
		kind = (ino - INO_FIRST_DATASET) % KINDS_PER_DATASET;
		pthread_mutex_lock(&slots_lock);
		if (slot < nslots)
			ds = slots[slot];
		snprintf(buf, len, "/%s%s%s", ds ? ds : "?", kind ? "/" : "",
			 kind ? node_names[kind] : "");
		pthread_mutex_unlock(&slots_lock);
	} else {
		buf[0] = 0;
	}
	if (!name && !buf[0])
		snprintf(buf, len, "/");
	if (name)
		snprintf(buf + strlen(buf), len - strlen(buf), "/%s", name);
}
