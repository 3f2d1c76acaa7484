/*
 * viewstore: labels of view result keys, and removing result files and
 * rows.
 */
#include "viewstore.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void view_key_label(const char *agreement, char *buf, size_t len)
{
	snprintf(buf, len, "govfs view key:%s", agreement);
}

int view_digest_key(const struct master_key *mk, const char *agreement,
		    uint8_t key[KEY_LEN])
{
	char purpose[160];

	snprintf(purpose, sizeof(purpose), "govfs view digest:%s", agreement);
	return key_derive(mk->bytes, purpose, key);
}

size_t view_files_remove(const char *home, const struct catalog_files *files)
{
	char path[PATH_MAX];
	size_t removed = 0;

	for (size_t i = 0; i < files->n; i++) {
		snprintf(path, sizeof(path), "%s/%s", home, files->files[i]);
		if (!unlink(path))
			removed++;
	}
	return removed;
}

int view_results_delete_agreement(struct catalog *cat, const char *home,
				  const char *agreement,
				  struct view_results_deleted *out)
{
	struct catalog_files freed = {0};
	int rc = catalog_begin(cat);

	memset(out, 0, sizeof(*out));
	if (!rc)
		rc = catalog_view_result_drop_all(cat, agreement, &freed);
	if (!rc)
		rc = catalog_commit(cat);
	if (rc) {
		catalog_rollback(cat);
		catalog_files_release(&freed);
		return rc;
	}
	view_files_remove(home, &freed);
	out->count = freed.n;
	out->bytes = freed.bytes;
	catalog_files_release(&freed);
	return 0;
}
