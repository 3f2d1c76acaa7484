/*
 * dataview: one dataset version as one agreement revision sees it: the
 * version's schema, its open store, the render plan of the agreement's
 * column rules, and the size index that gives every block's place in
 * data.csv.  The result of an aggregation view opens as a dataview too:
 * its output columns, its store of output records, and a plan that
 * writes them as stored, so views are served like data.csv.  govfsctl computes
 * size indexes (at apply and dataset add); govfs loads them, so no size is ever
 * computed on a request path.
 */
#ifndef GOVFS_DATAVIEW_H
#define GOVFS_DATAVIEW_H

#include "agreement.h"
#include "catalog.h"
#include "keys.h"
#include "perr.h"
#include "render.h"
#include "schema.h"
#include "sizeindex.h"
#include "store.h"

struct dataview {
	struct schema schema;
	struct store *store;
	struct render_plan plan;
	struct size_index sizes; /* empty until computed or loaded */
};

/* The label a dataset's data key is wrapped under. */
void data_key_label(const char *dataset, char *buf, size_t len);

/* The label an agreement's pseudonym key is wrapped under. */
void pseudonym_key_label(const char *agreement, char *buf, size_t len);

/*
 * The plain pseudonym key of agreement rec into key; -ENOKEY if it has
 * none (revoked), -EIO if it does not unwrap.
 */
int pseudonym_key_unwrap(const struct master_key *mk,
			 const struct agreement_record *rec,
			 uint8_t key[KEY_LEN])
    __attribute__((warn_unused_result));

/*
 * Open version v of a dataset under agreement entry ds: unwrap the data key,
 * open and check the store, build the render plan (with the agreement's
 * plain pseudonym key, or NULL).  err says what is wrong with the
 * agreement for this version; -EBADMSG if the store file is damaged or is
 * not the one the catalog recorded, with the schema and plan built all the
 * same (dv has no store; dataview_close releases it); other failures are
 * -errno, with nothing left to release.
 */
int dataview_open(struct dataview *dv, const char *home,
		  const struct master_key *mk, const struct dataset_version *v,
		  const struct agreement_dataset *ds,
		  const uint8_t *pseudonym_key, struct perr *err)
    __attribute__((warn_unused_result));

/*
 * Open the result of an aggregation view: unwrap its data key (wrapped
 * for r->agreement), open and check its store file, and build the plan
 * that writes out_schema's columns (the view's output) as stored.  The
 * size index is copied from sizes (r's, opened).  -EBADMSG if the store
 * file is damaged or is not the one the catalog recorded; -EIO if the key
 * or the sizes disagree.
 */
int dataview_open_result(struct dataview *dv, const char *home,
			 const struct master_key *mk,
			 const struct view_result *r,
			 const struct schema *out_schema,
			 const struct size_index *sizes)
    __attribute__((warn_unused_result));

/* Render every block once (on all cores) to fill dv->sizes. */
int dataview_compute_sizes(struct dataview *dv)
    __attribute__((warn_unused_result));

void dataview_close(struct dataview *dv);

#endif
