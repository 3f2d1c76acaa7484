/*
 * handlers: the FUSE request handlers (see handlers.h).
 *
 * Access is decided here on every request, never by the kernel: the mount
 * has allow_other and no default_permissions, entry and attribute timeouts
 * are zero, and data files are served with direct I/O, so every lookup,
 * getattr, readdir, open and read reaches a handler that checks the uid.
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agreement.h"
#include "audit.h"
#include "blockcache.h"
#include "caller.h"
#include "clock.h"
#include "govfs.h"
#include "handlers.h"
#include "mount_state.h"
#include "nodes.h"
#include "quota.h"
#include "readme.h"
#include "viewnodes.h"

#define PREFETCH_BYTES (8u << 20)
#define SEQUENTIAL_SLACK (4u << 20)
#define MAX_READ_PARTS 64
#define BLKSIZE (1u << 20)

enum handle_kind {
	HANDLE_README,
	HANDLE_SCHEMA,
	HANDLE_DATA,
};

#define NODE_PATH_MAX 160

/* An open file: a data view, or a frozen copy of a small text. */
struct handle {
	enum handle_kind kind;
	struct caller who;		  /* resolved once, at open */
	pid_t opener_tid;		  /* the thread that opened it */
	char path[NODE_PATH_MAX];	  /* from the mount root */
	int64_t revision;		  /* the agreement's, at open */
	atomic_uint_fast64_t last_ticket; /* its newest audit record */
	struct file_view *fv;		  /* HANDLE_DATA */
	struct buf text;		  /* the others */
	atomic_uint_fast64_t next_off;	  /* where a sequential read goes on */
	atomic_uint_fast32_t prefetched;  /* blocks below this are queued */
	/* The revision last checked for changed bytes, and the verdict. */
	atomic_int_fast64_t checked_revision;
	atomic_bool stale;
};

static bool uid_allowed(const struct mount_state *st, uid_t uid)
{
	for (size_t i = 0; i < st->agr.nuids; i++)
		if (st->agr.uids[i] == uid)
			return true;
	return false;
}

static bool caller_allowed(fuse_req_t req, const struct mount_state *st)
{
	return uid_allowed(st, fuse_req_ctx(req)->uid);
}

/* Data files: active, and the clock inside [valid_from, valid_until). */
bool data_readable(const struct mount_state *st)
{
	/* A hold refuses until a reload ends it, even past its lease. */
	return st->active && !atomic_load(&g.hold_until_ns) &&
	       time_phase_at(&st->agr, clock_now_ns()) == PHASE_VALID;
}

/* Queue one record about revision of the agreement; 0, or -EIO if the
 * log failed. */
int audit(int64_t revision, const struct caller *who, const char *event,
	  const char *path, int64_t off, int64_t len, int64_t bytes, int err,
	  uint64_t handle, uint64_t *ticket)
{
	struct audit_event ev = AUDIT_EVENT_INIT(event, "ok");

#ifdef GOVFS_BENCH_AUDIT_OFF
	/* The benchmark's build without the log: it measures what it costs. */
	if (ticket)
		*ticket = 0;
	return 0;
#endif
	ev.agreement = g.agreement;
	ev.revision = revision;
	if (who) {
		ev.uid = who->uid;
		ev.pid = who->pid;
		ev.comm = who->comm;
	}
	ev.path = path;
	ev.offset = off;
	ev.length = len;
	ev.bytes = bytes;
	ev.handle = handle;
	if (err)
		ev.result = strerrorname_np(err);
	return audit_log_append(g.audit, &ev, ticket);
}

/* A refused request, recorded under its own name with its errno. */
static void audit_refusal(fuse_req_t req, const struct mount_state *st,
			  const char *event, fuse_ino_t ino, const char *name,
			  int err)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	char path[NODE_PATH_MAX];
	struct caller who;

	node_path(ino, name, path, sizeof(path));
	caller_resolve(ctx->uid, ctx->pid, &who);
	/* A refusal is refused anyway: a failed log changes nothing here. */
	(void)audit(st->rec.revision, &who, event, path, AUDIT_NULL, AUDIT_NULL,
		    AUDIT_NULL, err, 0, NULL);
}

static void fill_times(struct stat *stbuf, int64_t ns)
{
	stbuf->st_mtim.tv_sec = ns / 1000000000;
	stbuf->st_mtim.tv_nsec = ns % 1000000000;
	stbuf->st_ctim = stbuf->st_mtim;
	stbuf->st_atim = stbuf->st_mtim;
}

static void fill_dir(struct stat *stbuf, fuse_ino_t ino, int64_t mtime)
{
	stbuf->st_ino = ino;
	stbuf->st_mode = S_IFDIR | 0555;
	stbuf->st_nlink = 2;
	fill_times(stbuf, mtime);
}

static void fill_file(struct stat *stbuf, fuse_ino_t ino, uint64_t size,
		      int64_t mtime)
{
	stbuf->st_ino = ino;
	stbuf->st_mode = S_IFREG | 0444;
	stbuf->st_nlink = 1;
	stbuf->st_size = (off_t)size;
	stbuf->st_blksize = BLKSIZE;
	stbuf->st_blocks = (blkcnt_t)((size + 511) / 512);
	fill_times(stbuf, mtime);
}

static int readme_now(const struct mount_state *st, struct buf *out);

/* README.txt's size is that of the text an open would get now. */
static int stat_readme(const struct mount_state *st, struct stat *stbuf)
{
	struct buf text = BUF_INIT;
	int rc;

	/* Without a quota the text is the state's own: no copy to size it. */
	if (!st->agr.has_quota) {
		fill_file(stbuf, INO_README, st->readme.len, st->mtime_ns);
		return 0;
	}
	rc = readme_now(st, &text);
	if (!rc)
		fill_file(stbuf, INO_README, text.len, st->mtime_ns);
	buf_release(&text);
	return rc;
}

/* Attributes of ino in st; -ENOENT if it does not exist there. */
static int node_stat(const struct mount_state *st, fuse_ino_t ino,
		     struct stat *stbuf)
{
	const struct dataset_state *d;
	const struct file_view *view;
	enum node_kind kind;

	memset(stbuf, 0, sizeof(*stbuf));
	if (ino == INO_ROOT) {
		fill_dir(stbuf, ino, st->mtime_ns);
		return 0;
	}
	if (ino == INO_README)
		return stat_readme(st, stbuf);
	view = view_node(st, ino);
	if (view) {
		fill_file(stbuf, ino, view->size, view->mtime_ns);
		return 0;
	}
	d = node_of(st, ino, &kind);
	if (!d)
		return -ENOENT;
	switch (kind) {
	case NODE_DIR:
	case NODE_VIEWS:
		fill_dir(stbuf, ino, d->mtime_ns);
		return 0;
	case NODE_DATA:
		if (!d->data)
			return -ENOENT;
		fill_file(stbuf, ino, d->data->size, d->data->mtime_ns);
		return 0;
	case NODE_SCHEMA:
		fill_file(stbuf, ino, d->schema_json.len, d->mtime_ns);
		return 0;
	}
	return -ENOENT;
}

static void reply_entry(fuse_req_t req, const struct mount_state *st,
			fuse_ino_t ino)
{
	struct fuse_entry_param e = {0};
	int rc = node_stat(st, ino, &e.attr);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	e.ino = ino;
	e.generation = 1;
	fuse_reply_entry(req, &e);
}

static fuse_ino_t lookup_in_dataset(const struct dataset_state *d, long slot,
				    const char *name)
{
	if (d->data && !strcmp(name, node_names[NODE_DATA]))
		return node_ino(slot, NODE_DATA);
	if (!strcmp(name, node_names[NODE_SCHEMA]))
		return node_ino(slot, NODE_SCHEMA);
	if (!strcmp(name, node_names[NODE_VIEWS]))
		return node_ino(slot, NODE_VIEWS);
	return 0;
}

/* "<view>.csv" in a dataset's views/: its inode, or 0. */
static fuse_ino_t lookup_view(const struct dataset_state *d, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < d->ds->nviews; i++) {
		const char *view = d->ds->views[i].name;
		size_t n = strlen(view);

		if (len == n + 4 && !strncmp(name, view, n) &&
		    !strcmp(name + n, ".csv"))
			return viewnodes_ino(g.views, d->ds->dataset, view);
	}
	return 0;
}

static void govfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mount_state *st = current_state();
	const struct dataset_state *d;
	enum node_kind kind;
	fuse_ino_t ino = 0;

	if (!caller_allowed(req, st)) {
		audit_refusal(req, st, "lookup", parent, name, EACCES);
		fuse_reply_err(req, EACCES);
	} else if (parent == INO_ROOT) {
		if (!strcmp(name, "README.txt"))
			ino = INO_README;
		else if (mount_state_dataset(st, name))
			ino = node_ino(dataset_slot(name), NODE_DIR);
		if (ino) {
			reply_entry(req, st, ino);
		} else if (agreement_find_dataset(&st->agr, name)) {
			/* Revoked: its datasets are gone, and refused. */
			audit_refusal(req, st, "lookup", parent, name, EACCES);
			fuse_reply_err(req, EACCES);
		} else {
			fuse_reply_err(req, ENOENT);
		}
	} else if ((d = node_of(st, parent, &kind)) &&
		   (kind == NODE_DIR || kind == NODE_VIEWS)) {
		ino = kind == NODE_DIR
			  ? lookup_in_dataset(d, dataset_slot(d->ds->dataset),
					      name)
			  : lookup_view(d, name);
		if (ino)
			reply_entry(req, st, ino);
		else
			fuse_reply_err(req, ENOENT);
	} else {
		fuse_reply_err(req, d ? ENOENT : ENOTDIR);
	}
	mount_state_put(st);
}

static void govfs_getattr(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct mount_state *st = current_state();
	struct handle *h = fi ? (struct handle *)fi->fh : NULL;
	struct stat stbuf;
	int rc;

	if (!caller_allowed(req, st)) {
		rc = -EACCES;
		audit_refusal(req, st, "getattr", ino, NULL, EACCES);
	} else {
		rc = node_stat(st, ino, &stbuf);
		/* fstat on an open handle: the size of what it reads. */
		if (h && h->fv && !rc)
			stbuf.st_size = (off_t)h->fv->size;
		else if (h && h->kind != HANDLE_DATA && !rc)
			stbuf.st_size = (off_t)h->text.len;
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &stbuf, 0);
	mount_state_put(st);
}

static void govfs_opendir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct mount_state *st = current_state();
	struct stat stbuf;
	int rc = caller_allowed(req, st) ? node_stat(st, ino, &stbuf) : -EACCES;

	if (rc == -EACCES)
		audit_refusal(req, st, "readdir", ino, NULL, EACCES);
	if (!rc && !S_ISDIR(stbuf.st_mode))
		rc = -ENOTDIR;
	mount_state_put(st);
	fi->fh = 0;
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_open(req, fi);
}

/* Add one entry to a readdir reply; false when the reply is full. */
static bool add_dirent(fuse_req_t req, struct buf *out, size_t size,
		       const char *name, fuse_ino_t ino, mode_t mode,
		       off_t next)
{
	struct stat stbuf = {.st_ino = ino, .st_mode = mode};
	size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);

	if (out->len + need > size)
		return false;
	if (buf_reserve(out, need))
		return false;
	fuse_add_direntry(req, (char *)out->data + out->len, need, name, &stbuf,
			  next);
	out->len += need;
	return true;
}

static void readdir_root(fuse_req_t req, const struct mount_state *st,
			 size_t size, off_t off, struct buf *out)
{
	off_t i = off;

	if (i == 0 && add_dirent(req, out, size, ".", INO_ROOT, S_IFDIR, 1))
		i++;
	if (i == 1 && add_dirent(req, out, size, "..", INO_ROOT, S_IFDIR, 2))
		i++;
	if (i == 2 &&
	    add_dirent(req, out, size, "README.txt", INO_README, S_IFREG, 3))
		i++;
	for (; i >= 3 && (size_t)(i - 3) < st->ndatasets; i++) {
		const char *name = st->datasets[i - 3].ds->dataset;

		if (!add_dirent(req, out, size, name,
				node_ino(dataset_slot(name), NODE_DIR), S_IFDIR,
				i + 1))
			break;
	}
}

static void readdir_dataset(fuse_req_t req, const struct dataset_state *d,
			    fuse_ino_t ino, size_t size, off_t off,
			    struct buf *out)
{
	long slot = dataset_slot(d->ds->dataset);
	struct {
		const char *name;
		fuse_ino_t ino;
		mode_t mode;
	} ents[5] = {
	    {".", ino, S_IFDIR},
	    {"..", INO_ROOT, S_IFDIR},
	    {node_names[NODE_SCHEMA], node_ino(slot, NODE_SCHEMA), S_IFREG},
	    {node_names[NODE_VIEWS], node_ino(slot, NODE_VIEWS), S_IFDIR},
	    {node_names[NODE_DATA], node_ino(slot, NODE_DATA), S_IFREG},
	};
	off_t n = d->data ? 5 : 4;

	for (off_t i = off; i < n; i++)
		if (!add_dirent(req, out, size, ents[i].name, ents[i].ino,
				ents[i].mode, i + 1))
			break;
}

static void readdir_views(fuse_req_t req, const struct dataset_state *d,
			  fuse_ino_t ino, size_t size, off_t off,
			  struct buf *out)
{
	char name[NAME_MAX + 1];
	off_t i = off;

	if (i == 0 && add_dirent(req, out, size, ".", ino, S_IFDIR, 1))
		i++;
	if (i == 1 &&
	    add_dirent(req, out, size, "..", ino - NODE_VIEWS, S_IFDIR, 2))
		i++;
	for (; i >= 2 && (size_t)(i - 2) < d->ds->nviews; i++) {
		const char *view = d->ds->views[i - 2].name;

		snprintf(name, sizeof(name), "%s.csv", view);
		if (!add_dirent(req, out, size, name,
				viewnodes_ino(g.views, d->ds->dataset, view),
				S_IFREG, i + 1))
			break;
	}
}

static void govfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, struct fuse_file_info *fi)
{
	struct mount_state *st = current_state();
	const struct dataset_state *d = NULL;
	struct buf out = BUF_INIT;
	enum node_kind kind = NODE_DIR;

	(void)fi;
	if (!caller_allowed(req, st)) {
		audit_refusal(req, st, "readdir", ino, NULL, EACCES);
		fuse_reply_err(req, EACCES);
		goto out_put;
	}
	if (ino != INO_ROOT) {
		d = node_of(st, ino, &kind);
		if (!d || (kind != NODE_DIR && kind != NODE_VIEWS)) {
			fuse_reply_err(req, d ? ENOTDIR : ENOENT);
			goto out_put;
		}
	}
	if (ino == INO_ROOT)
		readdir_root(req, st, size, off, &out);
	else if (kind == NODE_DIR)
		readdir_dataset(req, d, ino, size, off, &out);
	else
		readdir_views(req, d, ino, size, off, &out);
	fuse_reply_buf(req, (const char *)out.data, out.len);
	buf_release(&out);
out_put:
	mount_state_put(st);
}

static struct handle *handle_new(enum handle_kind kind)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (h)
		h->kind = kind;
	return h;
}

static void handle_free(struct handle *h)
{
	if (!h)
		return;
	file_view_put(h->fv);
	buf_release(&h->text);
	free(h);
}

/* Whether today's quota of st's agreement is used up. */
static bool quota_used_up(const struct mount_state *st)
{
	int64_t day;

	if (!st->agr.has_quota)
		return false;
	day = quota_day(clock_now_ns(), st->agr.valid_from_offset);
	return quota_used(g.quota, day) >= st->agr.quota_bytes_per_day;
}

/*
 * README.txt as it reads now: with today's quota use, if one counts (not
 * once revoked: revoke deleted the counter).
 */
static int readme_now(const struct mount_state *st, struct buf *out)
{
	struct readme_quota q;

	if (!st->agr.has_quota || !strcmp(st->rec.state, "revoked"))
		return buf_append(out, st->readme.data, st->readme.len);
	q.day = quota_day(clock_now_ns(), st->agr.valid_from_offset);
	q.day_start_ns = quota_day_start_ns(q.day, st->agr.valid_from_offset);
	q.used = quota_used(g.quota, q.day);
	return readme_render(st, &q, out);
}

/*
 * Open a file of st; returns 0 and the handle.  Outside the validity window
 * or while the agreement is not active, only README.txt opens.
 */
static int open_node(const struct mount_state *st, fuse_ino_t ino,
		     struct handle **out)
{
	const struct dataset_state *d = NULL;
	struct file_view *fv = view_node(st, ino);
	enum node_kind kind = fv ? NODE_DATA : NODE_DIR;
	struct handle *h;

	if (ino != INO_README && !fv) {
		d = node_of(st, ino, &kind);
		if (!d || (kind == NODE_DATA && !d->data))
			return -ENOENT;
		if (kind == NODE_DIR || kind == NODE_VIEWS)
			return -EISDIR;
		if (kind == NODE_DATA)
			fv = d->data;
	}
	/* Its store file or size index did not open: nothing of it is
	 * served (SPEC: EIO comes before EACCES). */
	if (fv && fv->fault)
		return -EIO;
	if (ino != INO_README && !data_readable(st))
		return -EACCES;
	if (kind == NODE_DATA && quota_used_up(st))
		return -EDQUOT;
	h = handle_new(ino == INO_README   ? HANDLE_README
		       : kind == NODE_DATA ? HANDLE_DATA
					   : HANDLE_SCHEMA);
	if (!h)
		return -ENOMEM;
	if (h->kind == HANDLE_DATA) {
		h->fv = file_view_get(fv);
		atomic_init(&h->checked_revision, h->fv->revision);
	} else if (d ? buf_append(&h->text, d->schema_json.data,
				  d->schema_json.len)
		     : readme_now(st, &h->text)) {
		handle_free(h);
		return -ENOMEM;
	}
	*out = h;
	return 0;
}

/* Refusals worth a record: not a name that is simply not there. */
static bool refusal_is_recorded(int err)
{
	return err != ENOENT && err != EISDIR && err != ENOTDIR;
}

/* Record an open and wait until the record is durable. */
static int audit_open(fuse_req_t req, const struct mount_state *st,
		      struct handle *h, fuse_ino_t ino)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	uint64_t ticket;
	int rc;

	caller_resolve(ctx->uid, ctx->pid, &h->who);
	h->opener_tid = ctx->pid;
	node_path(ino, NULL, h->path, sizeof(h->path));
	h->revision = st->rec.revision;
	rc = audit(h->revision, &h->who, "open", h->path, AUDIT_NULL,
		   AUDIT_NULL, AUDIT_NULL, 0, 0, &ticket);
	if (!rc)
		rc = audit_log_wait(g.audit, ticket);
	atomic_store(&h->last_ticket, ticket);
	return rc;
}

static void govfs_open(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct mount_state *st = current_state();
	struct handle *h = NULL;
	int rc;

	if (audit_log_failed(g.audit))
		rc = -EIO;
	else if (!caller_allowed(req, st))
		rc = -EACCES;
	else if ((fi->flags & O_ACCMODE) != O_RDONLY ||
		 (fi->flags & (O_TRUNC | O_CREAT)))
		rc = -EROFS;
	else
		rc = open_node(st, ino, &h);
	if (rc && refusal_is_recorded(-rc))
		audit_refusal(req, st, "open", ino, NULL, -rc);
	if (!rc && audit_open(req, st, h, ino)) {
		handle_free(h);
		rc = -EIO;
	}
	mount_state_put(st);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) == -ENOENT)
		handle_free(h);
	else
		atomic_fetch_add(&g.open_files, 1);
}

/*
 * Whether h was opened under an earlier revision whose rules give other
 * bytes than the current one's: then it must not read on (ESTALE).
 */
static bool handle_is_stale(struct handle *h, const struct mount_state *st)
{
	if (atomic_load(&h->checked_revision) != st->rec.revision) {
		atomic_store(&h->stale, atomic_load(&h->stale) ||
					    !file_view_current(h->fv, st));
		atomic_store(&h->checked_revision, st->rec.revision);
	}
	return atomic_load(&h->stale);
}

/* The errno a read on h must fail with now, in SPEC's order, or 0. */
static int read_refusal(fuse_req_t req, struct handle *h,
			const struct mount_state *st)
{
	if (audit_log_failed(g.audit))
		return EIO;
	if (!caller_allowed(req, st))
		return EACCES;
	if (h->kind == HANDLE_README)
		return 0;
	if (!data_readable(st))
		return EACCES;
	if (h->kind == HANDLE_DATA && handle_is_stale(h, st))
		return ESTALE;
	return 0;
}

/* The parts of one read reply: slices of held blocks, or one copy. */
struct read_reply {
	struct iovec iov[MAX_READ_PARTS + 1];
	const struct cached_block *held[MAX_READ_PARTS];
	size_t niov, nheld;
	struct buf copy; /* used once the parts outgrow iov */
	bool copying;
};

static void reply_release(struct read_reply *r)
{
	for (size_t i = 0; i < r->nheld; i++)
		blockcache_put(g.cache, r->held[i]);
	r->nheld = 0;
	buf_release(&r->copy);
}

/* Switch to one flat buffer: copy what is gathered, let blocks go. */
static int reply_flatten(struct read_reply *r, size_t total)
{
	int rc = buf_reserve(&r->copy, total);

	if (rc)
		return rc;
	for (size_t i = 0; i < r->niov; i++)
		buf_put(&r->copy, r->iov[i].iov_base, r->iov[i].iov_len);
	for (size_t i = 0; i < r->nheld; i++)
		blockcache_put(g.cache, r->held[i]);
	r->nheld = 0;
	r->niov = 0;
	r->copying = true;
	return 0;
}

static int reply_add(struct read_reply *r, const void *p, size_t len,
		     const struct cached_block *blk, size_t total)
{
	int rc;

	if (!r->copying && r->niov == MAX_READ_PARTS) {
		rc = reply_flatten(r, total);
		if (rc) {
			if (blk)
				blockcache_put(g.cache, blk);
			return rc;
		}
	}
	if (r->copying) {
		buf_put(&r->copy, p, len);
		if (blk)
			blockcache_put(g.cache, blk);
		return 0;
	}
	r->iov[r->niov].iov_base = (void *)p;
	r->iov[r->niov++].iov_len = len;
	if (blk)
		r->held[r->nheld++] = blk;
	return 0;
}

/* Queue the blocks a sequential reader will want next. */
static void prefetch_ahead(struct handle *h, uint32_t last)
{
	const struct file_view *fv = h->fv;
	uint64_t avg =
	    fv->dv.sizes.nblocks ? fv->size / fv->dv.sizes.nblocks + 1 : 1;
	uint32_t window = (uint32_t)(PREFETCH_BYTES / avg) + 1;
	uint32_t from = last + 1;
	uint32_t queued = (uint32_t)atomic_load(&h->prefetched);

	if (window > g.cache_bytes / 4 / avg)
		window = (uint32_t)(g.cache_bytes / 4 / avg) + 1;
	if (queued > from)
		from = queued;
	if (from >= last + 1 + window || from >= fv->dv.sizes.nblocks)
		return;
	/* Top up in chunks so that each read does not queue one block. */
	if (from > last + 1 + window / 2)
		return;
	blockcache_prefetch(g.cache, h->fv, from, last + 1 + window - from);
	atomic_store(&h->prefetched, last + 1 + window);
}

/*
 * Whether this read goes on near where the last one stopped.  The kernel
 * may split one large read into requests that arrive out of order, so
 * "near" is a window, not an exact offset.
 */
static bool is_sequential(struct handle *h, off_t off, uint64_t end)
{
	uint64_t last = atomic_exchange(&h->next_off, end);
	uint64_t o = (uint64_t)off;

	return o + SEQUENTIAL_SLACK >= last && o <= last + SEQUENTIAL_SLACK;
}

static int gather_data(struct handle *h, uint64_t off, uint64_t end,
		       bool sequential, struct read_reply *r)
{
	struct file_view *fv = h->fv;
	uint64_t header = fv->dv.sizes.header_bytes;
	size_t total = (size_t)(end - off);
	bool any = off < end;
	uint32_t b = 0;
	int rc = 0;

	if (off < header) {
		uint64_t stop = end < header ? end : header;

		rc = reply_add(r, fv->dv.plan.header.data + off,
			       (size_t)(stop - off), NULL, total);
		off = stop;
	}
	while (!rc && off < end) {
		const struct cached_block *blk;
		uint64_t start, stop;

		b = file_view_block_at(fv, off);
		rc = blockcache_get(g.cache, fv, b, &blk);
		if (rc)
			break;
		start = file_view_block_start(fv, b);
		stop = fv->ends[b] < end ? fv->ends[b] : end;
		rc = reply_add(r, blk->data + (off - start),
			       (size_t)(stop - off), blk, total);
		off = stop;
	}
	if (!rc && sequential && any)
		prefetch_ahead(h, b);
	return rc;
}

/* Record a read (or its refusal, err); returns the errno to answer. */
static int audit_read(struct handle *h, off_t off, size_t size, size_t bytes,
		      int err)
{
	uint64_t ticket;

	if (audit(h->revision, &h->who, "read", h->path, off, (int64_t)size,
		  (int64_t)bytes, err, (uint64_t)(uintptr_t)h, &ticket))
		return EIO;
	atomic_store(&h->last_ticket, ticket);
	return err;
}

/*
 * Record a refused read under the caller who was refused, who may not be
 * the handle's opener (a process that changed uid, a passed descriptor).
 */
static int audit_read_refusal(fuse_req_t req, struct handle *h, off_t off,
			      size_t size, int err)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct caller who;

	/* The opening thread itself needs no second look in /proc. */
	if (ctx->pid == h->opener_tid && ctx->uid == h->who.uid)
		who = h->who;
	else
		caller_resolve(ctx->uid, ctx->pid, &who);
	if (audit(h->revision, &who, "read", h->path, off, (int64_t)size, 0,
		  err, 0, NULL))
		return EIO;
	return err;
}

/* Refuse a read with err, recorded under the caller refused. */
static void refuse_read(fuse_req_t req, struct handle *h, off_t off,
			size_t size, int err)
{
	fuse_reply_err(req, audit_read_refusal(req, h, off, size, err));
}

/*
 * Charge a read of [off, *end) to the agreement's daily quota, cutting
 * *end short at the quota; -EDQUOT once it is used up.  *granted is what
 * to give back should the read fail after all.
 */
static int charge_quota(const struct mount_state *st, uint64_t off,
			uint64_t *end, int64_t *day, uint64_t *granted)
{
	*granted = 0;
	if (!st->agr.has_quota || *end <= off)
		return 0;
	*day = quota_day(clock_now_ns(), st->agr.valid_from_offset);
	*granted =
	    quota_take(g.quota, *day, st->agr.quota_bytes_per_day, *end - off);
	if (!*granted)
		return -EDQUOT;
	*end = off + *granted;
	return 0;
}

/* Record the read of [off, end) (or its failure err) and reply. */
static void reply_data(fuse_req_t req, struct handle *h,
		       const struct read_reply *r, off_t off, size_t size,
		       uint64_t end, int err)
{
	int rc = audit_read(h, off, size,
			    err ? 0 : (size_t)(end - (uint64_t)off), -err);

	if (!rc)
		atomic_fetch_add(&g.bytes_served, end - (uint64_t)off);
	if (rc)
		fuse_reply_err(req, rc);
	else if (r->copying)
		fuse_reply_buf(req, (const char *)r->copy.data, r->copy.len);
	else
		fuse_reply_iov(req, r->iov, (int)r->niov);
}

#ifdef GOVFS_TEST_CLOCK
/*
 * govfs-testclock only: park each read of a data file between its gather
 * and its second check for GOVFS_TEST_READ_PAUSE_MS, so that a test can
 * cut in between.
 */
static void test_pause_before_second_check(void)
{
	const char *ms = getenv("GOVFS_TEST_READ_PAUSE_MS");

	if (ms)
		usleep((useconds_t)atoi(ms) * 1000);
}
#else
static void test_pause_before_second_check(void)
{
}
#endif

/*
 * Serve a read of data.csv that passed every check under st, unless the
 * state that is current when it replies refuses it.
 */
static void read_data(fuse_req_t req, struct handle *h,
		      const struct mount_state *st, size_t size, off_t off)
{
	struct read_reply r = {0};
	uint64_t end, granted;
	int64_t day = 0;
	int rc, refused;

	end =
	    (uint64_t)off < h->fv->size ? (uint64_t)off + size : (uint64_t)off;
	if (end > h->fv->size)
		end = h->fv->size;
	rc = charge_quota(st, (uint64_t)off, &end, &day, &granted);
	if (!rc)
		rc = gather_data(h, (uint64_t)off, end,
				 is_sequential(h, off, end), &r);
	test_pause_before_second_check();
	/* Held from the second check to the reply: a cut waits for it. */
	pthread_rwlock_rdlock(&g.serve_lock);
	refused = rc || (g.state == st && !atomic_load(&g.hold_until_ns))
		      ? 0
		      : read_refusal(req, h, g.state);
	if ((rc || refused) && granted)
		quota_give_back(g.quota, day, granted);
	if (refused)
		refuse_read(req, h, off, size, refused);
	else
		reply_data(req, h, &r, off, size, end, rc);
	pthread_rwlock_unlock(&g.serve_lock);
	reply_release(&r);
}

/*
 * Reply with a copy of the text, never with h's own bytes: once the reply
 * is written the reader may close, and h be released on another thread,
 * while this one is still returning from the write (as ASan, checking the
 * iovec after writev, would see).
 */
static void read_text(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	size_t n = (uint64_t)off < h->text.len ? h->text.len - (size_t)off : 0;
	struct buf copy = BUF_INIT;
	int rc;

	if (n > size)
		n = size;
	rc = audit_read(h, off, size, n, 0);
	if (!rc && n && buf_append(&copy, h->text.data + off, n))
		rc = ENOMEM;
	if (rc)
		fuse_reply_err(req, rc);
	else
		fuse_reply_buf(req, (const char *)copy.data, n);
	buf_release(&copy);
}

/* A text file is at hand: checked and replied under one hold. */
static void read_text_checked(fuse_req_t req, struct handle *h, size_t size,
			      off_t off)
{
	int rc;

	pthread_rwlock_rdlock(&g.serve_lock);
	rc = read_refusal(req, h, g.state);
	if (rc)
		refuse_read(req, h, off, size, rc);
	else
		read_text(req, h, size, off);
	pthread_rwlock_unlock(&g.serve_lock);
}

static void govfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)fi->fh;
	struct mount_state *st;
	int rc;

	(void)ino;
	if (h->kind != HANDLE_DATA) {
		read_text_checked(req, h, size, off);
		return;
	}
	st = current_state();
	rc = read_refusal(req, h, st);
	if (rc)
		refuse_read(req, h, off, size, rc);
	else
		read_data(req, h, st, size, off);
	mount_state_put(st);
}

/* close(): the handle's read records are durable before it returns. */
static void govfs_flush(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)fi->fh;

	(void)ino;
	fuse_reply_err(
	    req,
	    audit_log_wait(g.audit, atomic_load(&h->last_ticket)) ? EIO : 0);
}

static void govfs_release(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)fi->fh;

	(void)ino;
	/* Nothing more is served on h: a failed log changes nothing here. */
	(void)audit(h->revision, &h->who, "release", h->path, AUDIT_NULL,
		    AUDIT_NULL, AUDIT_NULL, 0, 0, NULL);
	handle_free(h);
	atomic_fetch_sub(&g.open_files, 1);
	fuse_reply_err(req, 0);
}

/*
 * SPEC: a uid the agreement does not list gets EACCES on everything.  If
 * the caller of req is not listed in st, record the refusal of event on
 * ino and answer EACCES: true when req is answered so.
 */
static bool answered_stranger(fuse_req_t req, const struct mount_state *st,
			      const char *event, fuse_ino_t ino)
{
	if (caller_allowed(req, st))
		return false;
	audit_refusal(req, st, event, ino, NULL, EACCES);
	fuse_reply_err(req, EACCES);
	return true;
}

static void govfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct mount_state *st = current_state();
	struct statvfs sv = {
	    .f_bsize = BLKSIZE, .f_frsize = BLKSIZE, .f_namemax = 255};

	if (!answered_stranger(req, st, "statfs", ino))
		fuse_reply_statfs(req, &sv);
	mount_state_put(st);
}

static void govfs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct mount_state *st = current_state();
	struct stat stbuf;
	int rc;

	if (!answered_stranger(req, st, "access", ino)) {
		rc = node_stat(st, ino, &stbuf);
		if (!rc && (mask & W_OK))
			rc = -EROFS;
		fuse_reply_err(req, -rc);
	}
	mount_state_put(st);
}

static void govfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			   size_t size)
{
	struct mount_state *st = current_state();

	(void)name;
	(void)size;
	if (!answered_stranger(req, st, "getxattr", ino))
		fuse_reply_err(req, ENODATA);
	mount_state_put(st);
}

static void govfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mount_state *st = current_state();

	/* No attributes: an empty list, or its size 0. */
	if (!answered_stranger(req, st, "listxattr", ino)) {
		if (size)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_xattr(req, 0);
	}
	mount_state_put(st);
}

/* Every write-type operation: the mount is read-only. */
static void erofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void govfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			  int to_set, struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	erofs(req);
}

static void govfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	erofs(req);
}

static void govfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	erofs(req);
}

static void govfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	erofs(req);
}

static void govfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			  const char *name)
{
	(void)link, (void)parent, (void)name;
	erofs(req);
}

static void govfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname,
			 unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	erofs(req);
}

static void govfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		       const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	erofs(req);
}

static void govfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
			size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)size, (void)off, (void)fi;
	erofs(req);
}

static void govfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			   const char *value, size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	erofs(req);
}

static void govfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	erofs(req);
}

static void govfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			 mode_t mode, struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	erofs(req);
}

static void govfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			    off_t offset, off_t length,
			    struct fuse_file_info *fi)
{
	(void)ino, (void)mode, (void)offset, (void)length, (void)fi;
	erofs(req);
}

static void govfs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Reads are answered from rendered blocks, never spliced. */
	conn->want &= ~(unsigned)FUSE_CAP_SPLICE_READ;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

const struct fuse_lowlevel_ops govfs_ops = {
    .init = govfs_init,
    .lookup = govfs_lookup,
    .getattr = govfs_getattr,
    .setattr = govfs_setattr,
    .mknod = govfs_mknod,
    .mkdir = govfs_mkdir,
    .unlink = govfs_unlink,
    .rmdir = govfs_unlink,
    .symlink = govfs_symlink,
    .rename = govfs_rename,
    .link = govfs_link,
    .open = govfs_open,
    .read = govfs_read,
    .flush = govfs_flush,
    .write = govfs_write,
    .release = govfs_release,
    .opendir = govfs_opendir,
    .readdir = govfs_readdir,
    .statfs = govfs_statfs,
    .setxattr = govfs_setxattr,
    .getxattr = govfs_getxattr,
    .listxattr = govfs_listxattr,
    .removexattr = govfs_removexattr,
    .access = govfs_access,
    .create = govfs_create,
    .fallocate = govfs_fallocate,
};
