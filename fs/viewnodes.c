/*
 * viewnodes: an append-only table of (dataset, view) names under a
 * mutex, with a hash index for lookups by name; the inode is the table
 * index plus VIEW_INO_FIRST.
 */
#include "viewnodes.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MIN_BUCKETS 64

struct node {
	char *dataset;
	char *view;
	uint64_t next; /* index + 1 of the next node in the bucket, 0: none */
};

struct viewnodes {
	pthread_mutex_t lock;
	struct node **nodes; /* nodes never move: names stay valid */
	uint64_t n, cap;
	uint64_t *buckets; /* index + 1 of the first node, 0: none */
	uint64_t nbuckets;
};

static uint64_t name_hash(const char *dataset, const char *view)
{
	uint64_t h = 1469598103934665603ULL;

	for (const char *p = dataset; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ '/') * 1099511628211ULL;
	for (const char *p = view; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

struct viewnodes *viewnodes_new(void)
{
	struct viewnodes *vn = calloc(1, sizeof(*vn));

	if (!vn)
		return NULL;
	vn->buckets = calloc(MIN_BUCKETS, sizeof(*vn->buckets));
	if (!vn->buckets) {
		free(vn);
		return NULL;
	}
	vn->nbuckets = MIN_BUCKETS;
	pthread_mutex_init(&vn->lock, NULL);
	return vn;
}

void viewnodes_free(struct viewnodes *vn)
{
	if (!vn)
		return;
	for (uint64_t i = 0; i < vn->n; i++) {
		free(vn->nodes[i]->dataset);
		free(vn->nodes[i]->view);
		free(vn->nodes[i]);
	}
	free(vn->nodes);
	free(vn->buckets);
	pthread_mutex_destroy(&vn->lock);
	free(vn);
}

/* Twice the buckets when there are more nodes than buckets. */
static int rehash(struct viewnodes *vn)
{
	uint64_t n = vn->nbuckets * 2;
	uint64_t *b;

	if (vn->n < vn->nbuckets)
		return 0;
	b = calloc(n, sizeof(*b));
	if (!b)
		return -1;
	for (uint64_t i = 0; i < vn->n; i++) {
		struct node *node = vn->nodes[i];
		uint64_t h = name_hash(node->dataset, node->view) % n;

		node->next = b[h];
		b[h] = i + 1;
	}
	free(vn->buckets);
	vn->buckets = b;
	vn->nbuckets = n;
	return 0;
}

/* Append a node for the names; its index + 1, or 0 on failure. */
static uint64_t add(struct viewnodes *vn, const char *dataset, const char *view)
{
	struct node *node;
	uint64_t h;

	if (vn->n == VIEW_NODES_MAX || rehash(vn))
		return 0;
	if (vn->n == vn->cap) {
		uint64_t cap = vn->cap ? vn->cap * 2 : 16;
		struct node **grown = realloc(vn->nodes, cap * sizeof(*grown));

		if (!grown)
			return 0;
		vn->nodes = grown;
		vn->cap = cap;
	}
	node = calloc(1, sizeof(*node));
	if (!node)
		return 0;
	node->dataset = strdup(dataset);
	node->view = strdup(view);
	if (!node->dataset || !node->view) {
		free(node->dataset);
		free(node->view);
		free(node);
		return 0;
	}
	h = name_hash(dataset, view) % vn->nbuckets;
	node->next = vn->buckets[h];
	vn->buckets[h] = vn->n + 1;
	vn->nodes[vn->n++] = node;
	return vn->n;
}

uint64_t viewnodes_ino(struct viewnodes *vn, const char *dataset,
		       const char *view)
{
	uint64_t i;

	pthread_mutex_lock(&vn->lock);
	i = vn->buckets[name_hash(dataset, view) % vn->nbuckets];
	while (i && (strcmp(vn->nodes[i - 1]->dataset, dataset) ||
		     strcmp(vn->nodes[i - 1]->view, view)))
		i = vn->nodes[i - 1]->next;
	if (!i)
		i = add(vn, dataset, view);
	pthread_mutex_unlock(&vn->lock);
	return i ? VIEW_INO_FIRST + i - 1 : 0;
}

bool viewnodes_names(struct viewnodes *vn, uint64_t ino, const char **dataset,
		     const char **view)
{
	bool found = false;

	if (ino < VIEW_INO_FIRST)
		return false;
	pthread_mutex_lock(&vn->lock);
	if (ino - VIEW_INO_FIRST < vn->n) {
		*dataset = vn->nodes[ino - VIEW_INO_FIRST]->dataset;
		*view = vn->nodes[ino - VIEW_INO_FIRST]->view;
		found = true;
	}
	pthread_mutex_unlock(&vn->lock);
	return found;
}

uint64_t viewnodes_count(struct viewnodes *vn)
{
	uint64_t n;

	pthread_mutex_lock(&vn->lock);
	n = vn->n;
	pthread_mutex_unlock(&vn->lock);
	return n;
}
