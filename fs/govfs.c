/*
 * govfs: the FUSE daemon (libfuse3 low-level API).  One mount serves one
 * agreement: README.txt, and per dataset data.csv, schema.json and views/.
 * This file owns the command line, the mount's lifetime, the inode numbers
 * and every request handler; what the files hold comes from mount_state,
 * rendered blocks from blockcache.
 *
 * Access is decided here on every request, never by the kernel: the mount
 * has allow_other and no default_permissions, entry and attribute timeouts
 * are zero, and data files are served with direct I/O, so every lookup,
 * getattr, readdir, open and read reaches a handler that checks the uid.
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <jansson.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "agreement.h"
#include "audit.h"
#include "blockcache.h"
#include "caller.h"
#include "catalog.h"
#include "clock.h"
#include "control.h"
#include "daemon.h"
#include "home.h"
#include "jsonpath.h"
#include "keys.h"
#include "mount_state.h"
#include "quota.h"
#include "readme.h"
#include "viewnodes.h"

#define INO_ROOT 1
#define INO_README 2
#define INO_FIRST_DATASET 16
#define KINDS_PER_DATASET 4
#define MAX_DATASETS 4096
#define DEFAULT_CACHE_MB 64
#define PREFETCH_BYTES (8u << 20)
#define SEQUENTIAL_SLACK (4u << 20)
#define MAX_READ_PARTS 64
#define REFRESH_MS 100
#define BLKSIZE (1u << 20)

enum node_kind {
	NODE_DIR,
	NODE_DATA,
	NODE_SCHEMA,
	NODE_VIEWS,
};

static const char *const node_names[] = {
    [NODE_DATA] = "data.csv",
    [NODE_SCHEMA] = "schema.json",
    [NODE_VIEWS] = "views",
};

struct govfs {
	char home[PATH_MAX];
	const char *key_file;
	const char *agreement;
	char mountpoint[PATH_MAX];
	bool foreground;
	size_t cache_bytes;
	struct master_key mk;
	struct catalog *cat; /* the refresh thread's */
	struct fuse_session *se;
	struct blockcache *cache;
	struct audit_log *audit;

	/*
	 * The current state.  A read is checked and gathered under the
	 * state it found, then holds serve_lock shared while it checks
	 * again under the current one and replies; a swap takes it
	 * exclusive, so when swap_state returns no reply decided under the
	 * old state is still in flight (the drain of a cut), and the drain
	 * waits for replies being written, not for reads being gathered.
	 * It prefers writers, so a stream of reads cannot hold a cut off.
	 */
	pthread_rwlock_t serve_lock;
	struct mount_state *state;
	pthread_mutex_t lock;	   /* guards the dataset slots */
	char *slots[MAX_DATASETS]; /* dataset names by inode slot; grows */
	size_t nslots;
	struct viewnodes *views; /* inodes of views/<name>.csv */

	pthread_mutex_t reload_lock; /* one reload at a time; guards cat */
	int64_t seen_version;	     /* the catalog's, at the last reload */
	int64_t expiry_noted_ns;     /* the valid_until noted expired */
	struct catalog *cat_rw;	     /* registration and expiry notes */
	struct control *control;
	struct quota *quota; /* the agreement's daily byte counter */
	int64_t started_ns;
	atomic_bool
	    wipe_cache; /* drop rendered blocks: nothing may read them */
	atomic_uint_fast64_t open_files;
	atomic_uint_fast64_t bytes_served;

	pthread_t refresher;
	bool refresher_started;
	atomic_bool stopping;
};

static struct govfs g;

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

static struct mount_state *current_state(void)
{
	struct mount_state *st;

	pthread_rwlock_rdlock(&g.serve_lock);
	st = mount_state_get(g.state);
	pthread_rwlock_unlock(&g.serve_lock);
	return st;
}

/* The inode slot of a dataset name, assigned on first sight. */
static long dataset_slot(const char *name)
{
	long slot = -1;

	pthread_mutex_lock(&g.lock);
	for (size_t i = 0; i < g.nslots; i++)
		if (!strcmp(g.slots[i], name))
			slot = (long)i;
	if (slot < 0 && g.nslots < MAX_DATASETS) {
		g.slots[g.nslots] = strdup(name);
		if (g.slots[g.nslots])
			slot = (long)g.nslots++;
	}
	pthread_mutex_unlock(&g.lock);
	return slot;
}

static fuse_ino_t node_ino(long slot, enum node_kind kind)
{
	return INO_FIRST_DATASET + (fuse_ino_t)slot * KINDS_PER_DATASET + kind;
}

/* The dataset of st behind ino (NULL if none) and the node's kind. */
static const struct dataset_state *node_of(const struct mount_state *st,
					   fuse_ino_t ino, enum node_kind *kind)
{
	const char *name = NULL;
	size_t slot;

	if (ino < INO_FIRST_DATASET)
		return NULL;
	slot = (ino - INO_FIRST_DATASET) / KINDS_PER_DATASET;
	*kind = (enum node_kind)((ino - INO_FIRST_DATASET) % KINDS_PER_DATASET);
	pthread_mutex_lock(&g.lock);
	if (slot < g.nslots)
		name = g.slots[slot];
	pthread_mutex_unlock(&g.lock);
	return name ? mount_state_dataset(st, name) : NULL;
}

/* The view file behind ino in st, or NULL. */
static struct file_view *view_node(const struct mount_state *st, fuse_ino_t ino)
{
	const char *dataset, *view;

	if (!viewnodes_names(g.views, ino, &dataset, &view))
		return NULL;
	return mount_state_view(st, dataset, view);
}

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
static bool data_readable(const struct mount_state *st)
{
	return st->active &&
	       time_phase_at(&st->agr, clock_now_ns()) == PHASE_VALID;
}

/* The path of ino from the mount root ("/ds/data.csv"), and name below it
 * when name is not NULL. */
static void node_path(fuse_ino_t ino, const char *name, char *buf, size_t len)
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
		pthread_mutex_lock(&g.lock);
		if (slot < g.nslots)
			ds = g.slots[slot];
		snprintf(buf, len, "/%s%s%s", ds ? ds : "?", kind ? "/" : "",
			 kind ? node_names[kind] : "");
		pthread_mutex_unlock(&g.lock);
	} else {
		buf[0] = 0;
	}
	if (!name && !buf[0])
		snprintf(buf, len, "/");
	if (name)
		snprintf(buf + strlen(buf), len - strlen(buf), "/%s", name);
}

/* Queue one record about revision of the agreement; 0, or -EIO if the
 * log failed. */
static int audit(int64_t revision, const struct caller *who, const char *event,
		 const char *path, int64_t off, int64_t len, int64_t bytes,
		 int err, uint64_t handle, uint64_t *ticket)
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

/* README.txt as it reads now: with today's quota use, if one counts. */
static int readme_now(const struct mount_state *st, struct buf *out)
{
	struct readme_quota q;

	if (!st->agr.has_quota)
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
	if (ino != INO_README && !data_readable(st))
		return -EACCES;
	/* Its size index did not open: nothing of it is served. */
	if (fv && fv->fault)
		return -EIO;
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
	/* Held from the second check to the reply: a cut waits for it. */
	pthread_rwlock_rdlock(&g.serve_lock);
	refused = rc || g.state == st ? 0 : read_refusal(req, h, g.state);
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

static void govfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = {
	    .f_bsize = BLKSIZE, .f_frsize = BLKSIZE, .f_namemax = 255};

	(void)ino;
	fuse_reply_statfs(req, &sv);
}

static void govfs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct mount_state *st = current_state();
	struct stat stbuf;
	int rc = caller_allowed(req, st) ? node_stat(st, ino, &stbuf) : -EACCES;

	if (!rc && (mask & W_OK))
		rc = -EROFS;
	mount_state_put(st);
	fuse_reply_err(req, -rc);
}

static void govfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			   size_t size)
{
	(void)ino;
	(void)name;
	(void)size;
	fuse_reply_err(req, ENODATA);
}

static void govfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	(void)ino;
	if (size)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_xattr(req, 0);
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

static const struct fuse_lowlevel_ops govfs_ops = {
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

/*
 * Drop what the kernel may hold of every node: page cache (private
 * mappings of data files), attributes and names.  Called by the refresh
 * thread, which holds no lock and handles no request, as libfuse requires.
 */
static void invalidate_kernel(const struct mount_state *old,
			      const struct mount_state *now)
{
	size_t n;

	fuse_lowlevel_notify_inval_inode(g.se, INO_README, 0, 0);
	fuse_lowlevel_notify_inval_inode(g.se, INO_ROOT, 0, 0);
	pthread_mutex_lock(&g.lock);
	n = g.nslots;
	pthread_mutex_unlock(&g.lock);
	for (size_t s = 0; s < n; s++)
		for (int k = 0; k < KINDS_PER_DATASET; k++)
			fuse_lowlevel_notify_inval_inode(
			    g.se, node_ino((long)s, (enum node_kind)k), 0, 0);
	for (uint64_t v = 0; v < viewnodes_count(g.views); v++)
		fuse_lowlevel_notify_inval_inode(g.se, VIEW_INO_FIRST + v, 0,
						 0);
	for (size_t i = 0; i < old->ndatasets; i++) {
		const char *name = old->datasets[i].ds->dataset;

		if (!mount_state_dataset(now, name))
			fuse_lowlevel_notify_inval_entry(g.se, INO_ROOT, name,
							 strlen(name));
	}
}

/*
 * Serve next from now on.  Taking serve_lock exclusive waits until every
 * read decided under the old state has replied (the drain); only then is
 * the kernel told to drop what it holds, so a page it kept cannot outlive
 * a cut.
 */
static void swap_state(struct mount_state *next)
{
	struct mount_state *old;

	pthread_rwlock_wrlock(&g.serve_lock);
	old = g.state;
	g.state = next;
	pthread_rwlock_unlock(&g.serve_lock);
	invalidate_kernel(old, next);
	/* Wiped by the refresh thread, after a cut has been acknowledged. */
	if (!data_readable(next))
		atomic_store(&g.wipe_cache, true);
	mount_state_put(old);
}

/*
 * Record the agreement's expiry once: across all its mounts and restarts,
 * the catalog lets one daemon claim each (agreement, valid_until).
 */
static void note_expiry(const struct mount_state *st)
{
	struct audit_event ev = AUDIT_EVENT_INIT("agreement.expire", "ok");
	char reason[80], until[40];
	struct caller self;
	bool claimed;

	if (st->phase != PHASE_EXPIRED || !strcmp(st->rec.state, "revoked") ||
	    g.expiry_noted_ns == st->agr.valid_until_ns)
		return;
	/* Busy (an admin's long transaction): try again on the next tick. */
	if (catalog_agreement_claim_expiry(g.cat_rw, g.agreement,
					   st->agr.valid_until_ns, &claimed))
		return;
	g.expiry_noted_ns = st->agr.valid_until_ns;
	if (!claimed)
		return;
	caller_resolve(getuid(), getpid(), &self);
	snprintf(reason, sizeof(reason), "valid_until %s passed",
		 time_format_utc(st->agr.valid_until_ns, until, sizeof(until)));
	ev.agreement = g.agreement;
	ev.revision = st->rec.revision;
	ev.uid = self.uid;
	ev.pid = self.pid;
	ev.comm = self.comm;
	ev.reason = reason;
	/* A failed log latches by itself and refuses everything. */
	if (audit_log_append(g.audit, &ev, NULL))
		fprintf(stderr, "govfs: audit log: cannot record the expiry\n");
}

/* Whether prev served fv already (so its fault was said then). */
static bool served_before(const struct mount_state *prev,
			  const struct file_view *fv)
{
	const struct dataset_state *d =
	    prev ? mount_state_dataset(prev, fv->dataset) : NULL;

	if (!d)
		return false;
	return fv == (fv->view ? mount_state_view(prev, fv->dataset, fv->view)
			       : d->data);
}

static void report_fault(const struct mount_state *prev,
			 const struct file_view *fv)
{
	if (!fv || !fv->fault || served_before(prev, fv))
		return;
	if (fv->view)
		fprintf(stderr,
			"govfs: %s/views/%s.csv: %s; serving nothing of it\n",
			fv->dataset, fv->view, fv->fault);
	else
		fprintf(stderr,
			"govfs: %s/data.csv: %s; serving nothing of it\n",
			fv->dataset, fv->fault);
}

/*
 * Say once on stderr which files of next serve nothing, and why (opens of
 * them fail with EIO, recorded in the audit log).
 */
static void report_faults(const struct mount_state *prev,
			  const struct mount_state *next)
{
	for (size_t i = 0; i < next->ndatasets; i++) {
		const struct dataset_state *d = &next->datasets[i];

		report_fault(prev, d->data);
		for (size_t j = 0; d->views && j < d->ds->nviews; j++)
			report_fault(prev, d->views[j]);
	}
}

/*
 * Load the agreement from the catalog and serve it if anything changed.
 * Call with reload_lock held.  0, or -errno with the last good state kept.
 */
static int reload_locked(void)
{
	struct mount_state *st = current_state(), *next;
	char why[512];
	int rc;

	rc = catalog_data_version(g.cat, &g.seen_version);
	if (!rc)
		rc = mount_state_load(g.cat, g.home, &g.mk, g.agreement, st,
				      audit_log_low_space(g.audit), &next, why,
				      sizeof(why));
	else
		snprintf(why, sizeof(why), "catalog: %s", strerror(-rc));
	if (rc) {
		fprintf(stderr,
			"govfs: reload failed, keeping the last good "
			"state: %s\n",
			why);
	} else if (mount_state_same(st, next)) {
		mount_state_put(next);
	} else {
		report_faults(st, next);
		swap_state(next);
	}
	mount_state_put(st);
	return rc;
}

/*
 * Reload when the catalog changed, the validity phase turned, or the audit
 * log's disk became low on space or recovered (README.txt says so).
 */
static void refresh_once(void)
{
	struct mount_state *st = current_state();
	bool turned = time_phase_at(&st->agr, clock_now_ns()) != st->phase ||
		      audit_log_low_space(g.audit) != st->audit_low_space;
	int64_t version;

	mount_state_put(st);
	pthread_mutex_lock(&g.reload_lock);
	if (!catalog_data_version(g.cat, &version) &&
	    (version != g.seen_version || turned))
		(void)reload_locked();
	st = current_state();
	note_expiry(st);
	mount_state_put(st);
	pthread_mutex_unlock(&g.reload_lock);
}

/* The next instant the validity phase turns, or 0 if it never will. */
static int64_t next_phase_turn(void)
{
	struct mount_state *st = current_state();
	int64_t now = clock_now_ns(), at = 0;

	if (now < st->agr.valid_from_ns)
		at = st->agr.valid_from_ns;
	else if (now < st->agr.valid_until_ns)
		at = st->agr.valid_until_ns;
	mount_state_put(st);
	return at;
}

/*
 * Arm the timer for the next phase turn, on the real-time clock so that a
 * clock step cancels it (TFD_TIMER_CANCEL_ON_SET) rather than delay it.
 */
static void arm_phase_timer(int fd, int64_t at)
{
	struct itimerspec its = {0};

	at -= clock_skew_ns();
	if (at > 0) {
		its.it_value.tv_sec = at / 1000000000;
		its.it_value.tv_nsec = at % 1000000000;
	}
	timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its,
			NULL);
}

#ifdef GOVFS_TEST_CLOCK
/*
 * govfs-testclock only: the clock runs as many seconds ahead as the file
 * named by GOVFS_TEST_CLOCK_FILE says (absent or unreadable: none).
 */
static void follow_test_clock(void)
{
	const char *path = getenv("GOVFS_TEST_CLOCK_FILE");
	long long secs = 0;
	FILE *f = path ? fopen(path, "r") : NULL;

	if (f) {
		if (fscanf(f, "%lld", &secs) != 1)
			secs = 0;
		fclose(f);
	}
	clock_set_skew_ns((int64_t)secs * 1000000000);
}
#else
static void follow_test_clock(void)
{
}
#endif

/*
 * The refresh thread: every REFRESH_MS, and at once when a validity phase
 * turns, reload if the catalog changed.  It holds no lock while it tells
 * the kernel to drop caches and handles no request, as libfuse requires.
 */
static void *refresher_main(void *arg)
{
	int fd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK);
	int64_t armed = -1;

	(void)arg;
	while (!atomic_load(&g.stopping)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t ticks;
		int64_t at;

		follow_test_clock();
		at = next_phase_turn();
		if (fd >= 0 && at != armed) {
			arm_phase_timer(fd, at);
			armed = at;
		}
		if (poll(&p, fd >= 0 ? 1 : 0, REFRESH_MS) > 0 &&
		    read(fd, &ticks, sizeof(ticks)) < 0 && errno == ECANCELED)
			armed = -1; /* the clock was set: arm again */
		refresh_once();
		if (atomic_exchange(&g.wipe_cache, false) && g.cache)
			blockcache_drop_all(g.cache);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* The state as SPEC's lifecycle names it, now. */
static const char *state_now(const struct mount_state *st)
{
	return agreement_state_at(st->rec.state, &st->agr, clock_now_ns());
}

static void reply_cut(struct buf *reply)
{
	struct mount_state *st;
	char line[128];
	int rc;

	pthread_mutex_lock(&g.reload_lock);
	rc = reload_locked();
	pthread_mutex_unlock(&g.reload_lock);
	st = current_state();
	if (rc)
		snprintf(line, sizeof(line), "error %s", strerror(-rc));
	else
		snprintf(line, sizeof(line), "ok %s %lld", state_now(st),
			 (long long)st->rec.revision);
	mount_state_put(st);
	if (buf_append(reply, line, strlen(line)))
		reply->len = 0;
}

static void reply_stats(struct buf *reply)
{
	struct mount_state *st = current_state();
	json_t *o = json_pack(
	    "{s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:I}", "agreement",
	    g.agreement, "state", state_now(st), "revision",
	    (json_int_t)st->rec.revision, "mountpoint", g.mountpoint, "pid",
	    (json_int_t)getpid(), "started_ns", (json_int_t)g.started_ns,
	    "open_files", (json_int_t)atomic_load(&g.open_files),
	    "bytes_served", (json_int_t)atomic_load(&g.bytes_served));
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	mount_state_put(st);
	if (text && buf_append(reply, text, strlen(text)))
		reply->len = 0;
	free(text);
	json_decref(o);
}

/*
 * govfsctl's requests: "cut" reloads now and answers once the change has
 * landed (drained and invalidated); "stats" gives the mount's figures.
 */
static void on_control(void *ctx, const char *request, struct buf *reply)
{
	static const char unknown[] = "error unknown request";

	(void)ctx;
	if (!strcmp(request, "cut"))
		reply_cut(reply);
	else if (!strcmp(request, "stats"))
		reply_stats(reply);
	else if (buf_append(reply, unknown, strlen(unknown)))
		reply->len = 0;
}

/* Room for a path with every byte escaped. */
#define SHOWN_MAX (PATH_MAX * 4)

/*
 * s for a one-line message: control bytes become \xHH, so that a mount
 * point named with a newline cannot split (or forge) a line of output.
 */
static const char *printable(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; *s && o + 5 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
	return buf;
}

static const char usage_text[] =
    "usage: govfs --home DIR --agreement ID [--key-file F] [-f] "
    "[-o opts] MOUNTPOINT\n"
    "  -o cache_mb=N   rendered-block cache (default 64)\n"
    "  other -o options go to FUSE; allow_other and auto_unmount are "
    "always on\n";

static int parse_mount_options(char *opts, struct fuse_args *args)
{
	char *save = NULL;

	for (char *o = strtok_r(opts, ",", &save); o;
	     o = strtok_r(NULL, ",", &save)) {
		long mb;
		char *end;

		if (!strncmp(o, "cache_mb=", 9)) {
			mb = strtol(o + 9, &end, 10);
			if (*end || mb < 1 || mb > 65536) {
				fprintf(stderr,
					"govfs: -o %s: want 1 to "
					"65536\n",
					o);
				return -1;
			}
			g.cache_bytes = (size_t)mb << 20;
		} else if (!strcmp(o, "default_permissions")) {
			fprintf(stderr, "govfs: -o default_permissions: govfs "
					"checks every caller itself\n");
			return -1;
		} else if (fuse_opt_add_arg(args, "-o") ||
			   fuse_opt_add_arg(args, o)) {
			return -1;
		}
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct fuse_args *args)
{
	static const struct option opts[] = {
	    {"home", required_argument, NULL, 'H'},
	    {"agreement", required_argument, NULL, 'a'},
	    {"key-file", required_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *home =
	    getenv("GOVFS_HOME") ? getenv("GOVFS_HOME") : HOME_DEFAULT;
	static char shown[SHOWN_MAX];
	int opt;

	g.key_file = DEFAULT_KEY_FILE;
	g.cache_bytes = (size_t)DEFAULT_CACHE_MB << 20;
	while ((opt = getopt_long(argc, argv, "fo:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'H':
			home = optarg;
			break;
		case 'a':
			g.agreement = optarg;
			break;
		case 'k':
			g.key_file = optarg;
			break;
		case 'f':
			g.foreground = true;
			break;
		case 'o':
			if (parse_mount_options(optarg, args))
				return 2;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (!g.agreement || optind != argc - 1) {
		fputs(usage_text, stderr);
		return 2;
	}
	/* It names files under the home: never let it name others. */
	if (!id_is_valid(g.agreement)) {
		char q[QUOTE_LEN];

		fprintf(stderr,
			"govfs: agreement id '%s': want "
			"[a-z0-9][a-z0-9._-]{0,63}\n",
			text_quote(q, g.agreement));
		return 1;
	}
	if (!realpath(home, g.home)) {
		fprintf(stderr, "govfs: %s: %s\n",
			printable(home, shown, sizeof(shown)), strerror(errno));
		return 1;
	}
	if (!realpath(argv[optind], g.mountpoint)) {
		printable(argv[optind], shown, sizeof(shown));
		if (errno == ENOTCONN)
			fprintf(stderr,
				"govfs: %s: a stale mount (transport "
				"endpoint not connected) is in the "
				"way; run: fusermount3 -u %s\n",
				shown, shown);
		else
			fprintf(stderr, "govfs: %s: %s\n", shown,
				strerror(errno));
		return 1;
	}
	return 0;
}

/* Undo mountinfo's octal escapes ("\040" for a space) in place. */
static void unescape_mountinfo(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 |
					(s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* Whether path is already a mount point (of anything). */
static bool is_mount_point(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192], mp[PATH_MAX];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		unescape_mountinfo(mp);
		found = !strcmp(mp, path);
	}
	fclose(f);
	return found;
}

/* Whether path is dir or lies under it (both resolved, absolute). */
static bool path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1)
		return true; /* "/" */
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

/*
 * A mount over the home (or one of its parents) would hide the catalog and
 * the store from govfsctl and from this daemon's own reloads, which would
 * then call into the mount they serve; one inside the home would put
 * analysts' files among the admin's.
 */
static int check_mountpoint_place(void)
{
	static char mp[SHOWN_MAX], home[SHOWN_MAX];

	printable(g.mountpoint, mp, sizeof(mp));
	printable(g.home, home, sizeof(home));
	if (path_within(g.home, g.mountpoint)) {
		fprintf(stderr,
			"govfs: %s: refused: mounting there would hide the "
			"home %s\n",
			mp, home);
		return 1;
	}
	if (path_within(g.mountpoint, g.home)) {
		fprintf(stderr, "govfs: %s: refused: inside the home %s\n", mp,
			home);
		return 1;
	}
	return 0;
}

static int check_mountpoint(void)
{
	static char mp[SHOWN_MAX];
	struct stat st;

	printable(g.mountpoint, mp, sizeof(mp));
	if (stat(g.mountpoint, &st)) {
		fprintf(stderr, "govfs: %s: %s%s\n", mp, strerror(errno),
			errno == ENOTCONN ? " (a stale mount: run fusermount3 "
					    "-u on it)"
					  : "");
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "govfs: %s: not a directory\n", mp);
		return 1;
	}
	if (is_mount_point(g.mountpoint)) {
		fprintf(stderr,
			"govfs: %s: already a mount point; unmount it "
			"first (fusermount3 -u %s)\n",
			mp, mp);
		return 1;
	}
	return check_mountpoint_place();
}

static int load_initial_state(void)
{
	char path[PATH_MAX], why[512];
	int rc;

	if (home_check(g.home, path, sizeof(path), why, sizeof(why))) {
		fprintf(stderr, "govfs: %s: %s\n", path, why);
		return 1;
	}
	if (master_key_load(g.key_file, &g.mk, why, sizeof(why))) {
		fprintf(stderr, "govfs: %s: %s\n", g.key_file, why);
		return 1;
	}
	rc = catalog_open(g.home, true, &g.cat);
	if (!rc)
		rc = catalog_data_version(g.cat, &g.seen_version);
	if (rc) {
		fprintf(stderr, "govfs: %s/catalog.db: %s\n", g.home,
			strerror(-rc));
		return 1;
	}
	/* The audit log is not open yet: the refresh thread notes its space. */
	rc = mount_state_load(g.cat, g.home, &g.mk, g.agreement, NULL, false,
			      &g.state, why, sizeof(why));
	if (!rc && !strcmp(g.state->rec.state, "revoked")) {
		snprintf(why, sizeof(why), "agreement '%s' is revoked",
			 g.agreement);
		rc = -EACCES;
	}
	if (rc) {
		fprintf(stderr, "govfs: %s\n", why);
		return 1;
	}
	report_faults(NULL, g.state);
	/* Only for an agreement that exists and may be served. */
	rc = quota_open(g.home, g.agreement, &g.quota);
	if (rc) {
		fprintf(stderr, "govfs: %s/%s/%s: %s\n", g.home, HOME_QUOTA_DIR,
			g.agreement, strerror(-rc));
		return 1;
	}
	return 0;
}

static int add_fixed_options(struct fuse_args *args)
{
	char opts[256];

	snprintf(opts, sizeof(opts),
		 "allow_other,auto_unmount,ro,fsname=govfs:%s,subtype=govfs",
		 g.agreement);
	return fuse_opt_add_arg(args, "-o") || fuse_opt_add_arg(args, opts);
}

/* The daemon's own records: mount and unmount, by the daemon itself. */
static int audit_lifecycle(const char *event, uint64_t *ticket)
{
	struct mount_state *st = current_state();
	struct caller self;
	int rc;

	caller_resolve(getuid(), getpid(), &self);
	rc = audit(st->rec.revision, &self, event, "/", AUDIT_NULL, AUDIT_NULL,
		   AUDIT_NULL, 0, 0, ticket);
	mount_state_put(st);
	return rc;
}

/* Record that the daemon of m ended without its unmount record. */
static void mark_missing_unmount(const struct mount_record *m)
{
	struct audit_event ev = AUDIT_EVENT_INIT("unmount", "ECONNABORTED");
	char reason[160];

	snprintf(reason, sizeof(reason),
		 "the daemon ended without unmounting %s (killed or crashed); "
		 "noticed by pid %ld",
		 m->mountpoint, (long)getpid());
	ev.agreement = m->agreement;
	ev.pid = m->pid;
	ev.uid = getuid();
	ev.comm = "govfs";
	ev.path = "/";
	ev.reason = reason;
	/* Forgetting it first makes this daemon the one that records it. */
	if (catalog_mount_unregister(g.cat_rw, m->socket))
		return;
	if (audit_log_append(g.audit, &ev, NULL))
		fprintf(stderr, "govfs: cannot record the end of pid %lld\n",
			(long long)m->pid);
}

/*
 * Registered daemons that no longer listen died without unmounting (kill
 * -9, a crash): mark each in the audit log, once, and forget it.
 */
static void mark_dead_mounts(void)
{
	struct control_call *calls;
	struct mount_record *m;
	size_t n;

	if (catalog_mount_list(g.cat_rw, NULL, &m, &n))
		return;
	calls = control_call_mounts(m, n, "stats", 1000);
	for (size_t i = 0; calls && i < n; i++)
		if (calls[i].rc == -ECONNREFUSED || calls[i].rc == -ENOENT)
			mark_missing_unmount(&m[i]);
	free(calls);
	mount_records_free(m, n);
}

/*
 * Listen for govfsctl and register in the catalog, so that a lifecycle
 * command finds this mount and waits for it to cut.
 */
static int register_mount(void)
{
	struct mount_record m;
	int rc = catalog_open(g.home, false, &g.cat_rw);

	if (rc) {
		fprintf(stderr, "govfs: %s/catalog.db: %s\n", g.home,
			strerror(-rc));
		return rc;
	}
	mark_dead_mounts();
	rc = control_start(g.home, on_control, NULL, &g.control);
	if (rc) {
		fprintf(stderr, "govfs: %s/%s: control socket: %s\n", g.home,
			HOME_RUN_DIR, strerror(-rc));
		return rc;
	}
	m.socket = (char *)control_path(g.control);
	m.agreement = (char *)g.agreement;
	m.pid = getpid();
	m.mountpoint = g.mountpoint;
	m.started_ns = g.started_ns;
	rc = catalog_mount_register(g.cat_rw, &m);
	if (rc)
		fprintf(stderr, "govfs: cannot register the mount: %s\n",
			strerror(-rc));
	return rc;
}

static void unregister_mount(void)
{
	int rc;

	if (!g.control)
		return;
	rc = catalog_mount_unregister(g.cat_rw, control_path(g.control));
	if (rc && rc != -ENOENT)
		fprintf(stderr, "govfs: cannot unregister the mount: %s\n",
			strerror(-rc));
	control_stop(g.control);
	g.control = NULL;
}

/* Mount, record it durably, and only then tell the parent we serve. */
static int start_serving(struct fuse_args *args)
{
	uint64_t ticket;
	int rc = audit_log_open(g.home, &g.audit);

	if (rc) {
		fprintf(stderr, "govfs: %s/audit.db: %s\n", g.home,
			strerror(-rc));
		return 1;
	}
	g.se = fuse_session_new(args, &govfs_ops, sizeof(govfs_ops), NULL);
	if (!g.se)
		return 1;
	if (fuse_set_signal_handlers(g.se))
		return 1;
	if (fuse_session_mount(g.se, g.mountpoint))
		return 1;
	if (audit_lifecycle("mount", &ticket) ||
	    audit_log_wait(g.audit, ticket)) {
		fprintf(stderr, "govfs: audit log: cannot record the mount\n");
		fuse_session_unmount(g.se);
		return 1;
	}
	return register_mount() ? 1 : 0;
}

static void stop_serving(void)
{
	unregister_mount();
	if (g.se) {
		fuse_session_unmount(g.se);
		fuse_remove_signal_handlers(g.se);
		fuse_session_destroy(g.se);
	}
	if (g.audit) {
		/* Closing writes what is queued, the unmount included. */
		(void)audit_lifecycle("unmount", NULL);
		audit_log_close(g.audit);
	}
}

static int serve(struct fuse_args *args)
{
	struct fuse_loop_config *config;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int rc;

	rc = start_serving(args);
	daemon_ready(rc);
	if (rc) {
		stop_serving();
		return rc;
	}
	g.cache = blockcache_new(g.cache_bytes, cpus > 1 ? (unsigned)cpus : 1);
	g.refresher_started =
	    !pthread_create(&g.refresher, NULL, refresher_main, NULL);
	config = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(config, 16);
	fuse_loop_cfg_set_idle_threads(config, 4);
	/* The loop returns the signal that stopped it: a clean stop. */
	rc = g.cache ? fuse_session_loop_mt(g.se, config) : 1;
	rc = rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP ? 0 : 1;
	fuse_loop_cfg_destroy(config);
	atomic_store(&g.stopping, true);
	if (g.refresher_started)
		pthread_join(g.refresher, NULL);
	stop_serving();
	return rc;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	pthread_rwlockattr_t attr;
	int rc;

	umask(077);
	g.started_ns = clock_now_ns();
	pthread_mutex_init(&g.lock, NULL);
	pthread_mutex_init(&g.reload_lock, NULL);
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(
	    &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&g.serve_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	g.views = viewnodes_new();
	rc = !g.views || fuse_opt_add_arg(&args, argv[0])
		 ? 1
		 : parse_args(argc, argv, &args);
	if (!rc)
		rc = check_mountpoint();
	/*
	 * Fork before anything opens the catalog: SQLite's locks belong to
	 * the process that took them, and a connection carried across a
	 * fork would hold none (another process could then delete the WAL
	 * under it).
	 */
	if (!rc && !g.foreground && daemon_fork())
		rc = 1;
	if (!rc)
		rc = load_initial_state();
	if (!rc)
		rc = add_fixed_options(&args) ? 1 : serve(&args);
	else
		daemon_ready(rc);
	blockcache_free(g.cache);
	mount_state_put(g.state);
	catalog_close(g.cat);
	catalog_close(g.cat_rw);
	quota_close(g.quota);
	for (size_t i = 0; i < g.nslots; i++)
		free(g.slots[i]);
	viewnodes_free(g.views);
	fuse_opt_free_args(&args);
	memset(&g.mk, 0, sizeof(g.mk));
	return rc;
}
