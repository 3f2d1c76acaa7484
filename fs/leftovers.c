/*
 * leftovers: removes what an interrupted change left in a home.
 */
#include "leftovers.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "home.h"

static int remove_all_in(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);
	int removed = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (!unlink(path))
			removed++;
	}
	closedir(d);
	return removed;
}

struct referenced {
	char **files;
	size_t n, cap;
};

static int note_referenced(void *ctx, const char *file)
{
	struct referenced *r = ctx;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		char **grown = realloc(r->files, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		r->files = grown;
		r->cap = cap;
	}
	r->files[r->n] = strdup(file);
	return r->files[r->n++] ? 0 : -ENOMEM;
}

static bool is_referenced(const struct referenced *r, const char *file)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->files[i], file))
			return true;
	return false;
}

static int remove_unreferenced(const char *home, const struct referenced *r)
{
	char dir[PATH_MAX], rel[PATH_MAX], path[PATH_MAX + 8];
	struct dirent *e;
	DIR *d;
	int removed = 0;

	snprintf(dir, sizeof(dir), "%s/%s", home, HOME_STORE_DIR);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(rel, sizeof(rel), "%s/%s", HOME_STORE_DIR, e->d_name);
		if (is_referenced(r, rel))
			continue;
		snprintf(path, sizeof(path), "%s/%s", home, rel);
		if (!unlink(path))
			removed++;
	}
	closedir(d);
	return removed;
}

int leftovers_remove(const char *home, struct catalog *cat)
{
	struct referenced r = {0};
	char tmp[PATH_MAX];
	int rc, removed;

	snprintf(tmp, sizeof(tmp), "%s/%s", home, HOME_TMP_DIR);
	removed = remove_all_in(tmp);
	if (removed < 0)
		return removed;
	rc = catalog_store_files(cat, note_referenced, &r);
	if (!rc) {
		rc = remove_unreferenced(home, &r);
		if (rc >= 0)
			rc += removed;
	}
	for (size_t i = 0; i < r.n; i++)
		free(r.files[i]);
	free(r.files);
	return rc;
}
