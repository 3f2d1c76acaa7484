/*
 * dataview: opening a dataset version for an agreement and computing the
 * exact size of its data.csv, block by block, with one worker per core.
 */
#include "dataview.h"

#include "viewstore.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_WORKERS 8

void data_key_label(const char *dataset, char *buf, size_t len)
{
	snprintf(buf, len, "govfs dataset key:%s", dataset);
}

void pseudonym_key_label(const char *agreement, char *buf, size_t len)
{
	snprintf(buf, len, "govfs pseudonym key:%s", agreement);
}

int pseudonym_key_unwrap(const struct master_key *mk,
			 const struct agreement_record *rec,
			 uint8_t key[KEY_LEN])
{
	char label[128];

	if (!rec->has_pseudonym_key)
		return -ENOKEY;
	pseudonym_key_label(rec->id, label, sizeof(label));
	return data_key_unwrap(mk, label, rec->pseudonym_key, key);
}

int dataview_open(struct dataview *dv, const char *home,
		  const struct master_key *mk, const struct dataset_version *v,
		  const struct agreement_dataset *ds,
		  const uint8_t *pseudonym_key, struct perr *err)
{
	uint8_t key[KEY_LEN];
	char label[128], path[PATH_MAX];
	struct perr serr;
	int rc;

	memset(dv, 0, sizeof(*dv));
	rc = schema_from_json(v->schema_json, strlen(v->schema_json),
			      &dv->schema, &serr);
	if (rc)
		return -EIO;
	rc = render_plan_init(&dv->plan, &dv->schema, ds, pseudonym_key, err);
	if (rc)
		goto out_schema;
	data_key_label(v->dataset, label, sizeof(label));
	rc = data_key_unwrap(mk, label, v->wrapped_key, key);
	if (rc)
		goto out_plan;
	snprintf(path, sizeof(path), "%s/%s", home, v->store_file);
	rc = store_open(&dv->store, path, key, &v->store);
	memset(key, 0, sizeof(key));
	/* The schema and plan stay, to list the columns of what is lost. */
	if (rc == -EIO)
		return -EBADMSG;
	if (rc)
		goto out_plan;
	return 0;

out_plan:
	render_plan_release(&dv->plan);
out_schema:
	schema_release(&dv->schema);
	return rc;
}

static int copy_sizes(struct size_index *dst, const struct size_index *src)
{
	*dst = *src;
	dst->block_bytes = malloc((src->nblocks + 1) * sizeof(uint64_t));
	if (!dst->block_bytes)
		return -ENOMEM;
	memcpy(dst->block_bytes, src->block_bytes,
	       src->nblocks * sizeof(uint64_t));
	return 0;
}

int dataview_open_result(struct dataview *dv, const char *home,
			 const struct master_key *mk,
			 const struct view_result *r,
			 const struct schema *out_schema,
			 const struct size_index *sizes)
{
	uint8_t key[KEY_LEN];
	char label[128], path[PATH_MAX];
	int rc;

	memset(dv, 0, sizeof(*dv));
	view_key_label(r->agreement, label, sizeof(label));
	if (data_key_unwrap(mk, label, r->wrapped_key, key))
		return -EIO;
	snprintf(path, sizeof(path), "%s/%s", home, r->store_file);
	rc = store_open(&dv->store, path, key, &r->store);
	memset(key, 0, sizeof(key));
	if (rc == -EIO)
		rc = -EBADMSG;
	if (!rc)
		rc = schema_copy(&dv->schema, out_schema);
	if (!rc)
		rc = render_plan_init_keep_all(&dv->plan, &dv->schema);
	if (!rc)
		rc = copy_sizes(&dv->sizes, sizes);
	if (!rc && (dv->sizes.nblocks != dv->store->info.nblocks ||
		    dv->sizes.header_bytes != dv->plan.header.len))
		rc = -EIO;
	if (rc)
		dataview_close(dv);
	return rc;
}

void dataview_close(struct dataview *dv)
{
	store_close(dv->store);
	render_plan_release(&dv->plan);
	schema_release(&dv->schema);
	size_index_release(&dv->sizes);
	memset(dv, 0, sizeof(*dv));
}

struct size_job {
	struct dataview *dv;
	unsigned worker, nworkers;
	uint64_t rows; /* shown in this worker's blocks */
	int rc;
};

static void *size_worker(void *arg)
{
	struct size_job *job = arg;
	const struct store *s = job->dv->store;
	struct block_decoder *d = block_decoder_new();
	struct buf out = BUF_INIT;

	if (!d) {
		job->rc = -ENOMEM;
		return NULL;
	}
	for (uint32_t i = job->worker; i < s->info.nblocks && !job->rc;
	     i += job->nworkers) {
		const uint8_t *rows;
		uint32_t shown = 0;
		size_t len;

		out.len = 0;
		job->rc = store_read_block(s, i, d, &rows, &len);
		if (!job->rc)
			job->rc =
			    render_block(&job->dv->plan, rows, len,
					 s->blocks[i].nrows, &out, &shown);
		job->dv->sizes.block_bytes[i] = out.len;
		job->rows += shown;
	}
	buf_release(&out);
	block_decoder_free(d);
	return NULL;
}

static unsigned worker_count(uint32_t nblocks)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = cpus < 1		  ? 1
		     : cpus > MAX_WORKERS ? MAX_WORKERS
					  : (unsigned)cpus;

	return nblocks < n ? (nblocks ? nblocks : 1) : n;
}

int dataview_compute_sizes(struct dataview *dv)
{
	struct size_index *si = &dv->sizes;
	struct size_job jobs[MAX_WORKERS];
	pthread_t threads[MAX_WORKERS];
	unsigned n = worker_count(dv->store->info.nblocks), started = 0;
	int rc = 0;

	size_index_release(si);
	si->nblocks = dv->store->info.nblocks;
	si->block_bytes = calloc(si->nblocks + 1, sizeof(uint64_t));
	if (!si->block_bytes)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		jobs[i] = (struct size_job){dv, i, n, 0, 0};
		if (pthread_create(&threads[i], NULL, size_worker, &jobs[i])) {
			rc = -EAGAIN;
			break;
		}
		started++;
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(threads[i], NULL);
		if (!rc)
			rc = jobs[i].rc;
	}
	if (rc) {
		size_index_release(si);
		return rc;
	}
	for (unsigned i = 0; i < started; i++)
		si->rows += jobs[i].rows;
	si->header_bytes = dv->plan.header.len;
	si->total_bytes = si->header_bytes;
	for (uint32_t i = 0; i < si->nblocks; i++)
		si->total_bytes += si->block_bytes[i];
	return 0;
}
