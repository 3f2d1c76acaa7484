/*
 * audit: the tamper-evident log of every access and admin action, in its
 * own SQLite file (HOME/audit.db), apart from the catalog so that an admin
 * transaction never stalls it.  This is the one interface to audit
 * storage; a second backend would implement the same functions.
 *
 * Records form a hash chain: hash[seq] = SHA-256(hash[seq-1] || canonical
 * binary encoding of record seq), hash[0] being 32 zero bytes.  The chain
 * is sealed at intervals (every AUDIT_SEAL_RECORDS records or
 * AUDIT_SEAL_NS, and at close) by an Ed25519 signature over (seq, hash)
 * with HOME/audit.key, readable only by its owner.  Triggers refuse UPDATE
 * and DELETE on the records table.  Several writers (daemons, govfsctl)
 * may append: each batch takes SQLite's write lock and continues the chain
 * from the last record on disk.
 *
 * Retention: the log keeps retention_days (meta, set at audit_create).
 * Pruning removes only a prefix of whole sealed segments whose records are
 * all older than that, and keeps the seal that closes the pruned part: it
 * anchors the chain, which goes on from that seal's hash.  Each prune
 * appends an "audit.prune" record that declares the range it removed
 * (offset: the first seq, length: how many), sealed at once by a prune
 * seal, which only a prune makes, so that audit_verify tells a prune from
 * a prefix an attacker deleted.  Nothing else deletes records (revoking an
 * agreement keeps them).
 *
 * The daemon's hot path only queues: audit_log_append copies the event
 * into memory; one writer thread per audit_log commits batches (WAL,
 * synchronous=FULL) at least every AUDIT_BATCH_NS.  audit_log_wait blocks
 * until a queued event is durable.  If a batch cannot be written (ENOSPC,
 * EIO, SQLITE_FULL), the log latches failed: every later append and wait
 * returns -EIO, and nothing more is written until the daemon restarts.
 * The same thread prunes when the log opens and every AUDIT_PRUNE_NS, and
 * watches the free space of the file system that holds audit.db.
 */
#ifndef GOVFS_AUDIT_H
#define GOVFS_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An integer field that does not apply (exported as JSON null). */
#define AUDIT_NULL INT64_MIN

#define AUDIT_BATCH_NS 25000000LL   /* a read record is durable within */
#define AUDIT_SEAL_RECORDS 10000    /* a seal at least every so many */
#define AUDIT_SEAL_NS 60000000000LL /* or every minute */

#define AUDIT_RETENTION_DAYS_DEFAULT 365
#define AUDIT_RETENTION_DAYS_MAX 36500
#define AUDIT_PRUNE_NS (24 * 3600 * 1000000000LL) /* a log prunes daily */
/*
 * One prune transaction removes whole segments, at least one, of up to
 * about AUDIT_PRUNE_RECORDS records and AUDIT_PRUNE_SEALS segments, so
 * that it holds the write lock briefly (it checks what it removes).
 */
#define AUDIT_PRUNE_RECORDS 5000
#define AUDIT_PRUNE_SEALS 64
#define AUDIT_PRUNE_EVENT "audit.prune"

/*
 * Free space is low, for the file system holding audit.db, below the
 * larger of AUDIT_LOW_SPACE_MIN_BYTES and AUDIT_LOW_SPACE_PERCENT of its
 * size; it is back to normal at an eighth above that.
 */
#define AUDIT_LOW_SPACE_MIN_BYTES (64ULL << 20)
#define AUDIT_LOW_SPACE_PERCENT 1
#define AUDIT_SPACE_CHECK_NS 1000000000LL /* how often the writer looks */

/* One record as SPEC's export lists it; strings may be NULL (null). */
struct audit_event {
	int64_t time_ns; /* 0: stamped when appended */
	const char *agreement;
	int64_t revision;
	int64_t uid;
	int64_t pid;
	const char *comm;
	const char *event; /* "open", "read", "agreement.apply", ... */
	const char *path;  /* from the mount root: "/ds/data.csv" */
	int64_t offset;
	int64_t length;	    /* asked */
	int64_t bytes;	    /* served */
	const char *result; /* "ok" or an errno name: "EACCES" */
	const char *reason;
	/*
	 * Not stored: the open handle a read came through, 0 for none.  Reads
	 * of one handle that follow each other in a batch and are contiguous
	 * (each starting where the last one's served bytes ended) become one
	 * record covering them all, so a flood of small reads does not
	 * multiply the log.
	 */
	uint64_t handle;
};

/* An event with every field null but event and result. */
#define AUDIT_EVENT_INIT(ev, res)                                              \
	{                                                                      \
		.revision = AUDIT_NULL, .uid = AUDIT_NULL, .pid = AUDIT_NULL,  \
		.offset = AUDIT_NULL, .length = AUDIT_NULL,                    \
		.bytes = AUDIT_NULL, .event = (ev), .result = (res)            \
	}

/* A stored record: the event, its sequence number and chain hash. */
struct audit_record {
	uint64_t seq;
	struct audit_event ev; /* strings owned by the iterator */
};

/*
 * Create HOME/audit.db (mode 0600, empty chain) and the Ed25519 signing key
 * HOME/audit.key (mode 0600), keeping records retention_days (1 to
 * AUDIT_RETENTION_DAYS_MAX, else -EINVAL).  -EEXIST if there.
 */
int audit_create(const char *home, int retention_days)
    __attribute__((warn_unused_result));

struct audit_log;

/*
 * Open the log for appending and start its writer thread, which prunes at
 * once (records of the prune carry this process's uid, pid and name) and
 * checks the free space.
 */
int audit_log_open(const char *home, struct audit_log **out)
    __attribute__((warn_unused_result));

/*
 * Queue ev (copied); *ticket (if not NULL) names it for audit_log_wait.
 * No I/O.  Returns 0, -EIO once the log has failed, or -ENOMEM.
 */
int audit_log_append(struct audit_log *log, const struct audit_event *ev,
		     uint64_t *ticket) __attribute__((warn_unused_result));

/* Block until the event of ticket is durable; 0 or -EIO. */
int audit_log_wait(struct audit_log *log, uint64_t ticket)
    __attribute__((warn_unused_result));

/* Whether a batch failed to be written (the log is latched failed). */
bool audit_log_failed(const struct audit_log *log);

/*
 * Whether the file system holding audit.db was low on free space when the
 * writer last looked (see AUDIT_LOW_SPACE_MIN_BYTES; at most
 * AUDIT_SPACE_CHECK_NS ago).  The writer says so on stderr once each time
 * it becomes low, and once when it recovers.
 */
bool audit_log_low_space(const struct audit_log *log);

/* The free space under which a file system of size bytes is low. */
uint64_t audit_low_space_limit(uint64_t size);

/* Write what is queued, seal the chain, stop the writer, free log. */
void audit_log_close(struct audit_log *log);

/* Append one event durably and seal: for govfsctl's admin actions. */
int audit_append_sync(const char *home, const struct audit_event *ev)
    __attribute__((warn_unused_result));

/* What audit_prune removed. */
struct audit_pruned {
	uint64_t records;     /* 0: nothing was old enough */
	uint64_t first, last; /* their sequence numbers */
	int retention_days;   /* as the log's meta says */
	char why[256];	      /* on failure, what went wrong, if known */
};

/*
 * Remove every whole sealed segment at the start of the log whose records
 * are all older than the retention period, in transactions of about
 * AUDIT_PRUNE_RECORDS records, each appending a sealed audit.prune record
 * with by's uid, pid and comm.  Returns 0 (out says what went), or
 * -errno (out->why may say more): -EPROTO if meta's retention_days is not
 * a valid number, -EBADMSG if what it would remove does not verify, and
 * -EIO if the triggers that refuse DELETE are missing (someone dropped
 * them).  Whatever it had removed in earlier transactions stays removed.
 */
int audit_prune(const char *home, const struct audit_event *by,
		struct audit_pruned *out) __attribute__((warn_unused_result));

/* What audit_verify found. */
struct audit_verdict {
	uint64_t records;   /* kept and checked */
	uint64_t first_seq; /* the first kept: 1 unless pruned; 0 if none */
	uint64_t first_bad; /* when tampered: the first bad sequence number */
	char why[256];	    /* when tampered: what is wrong there */
};

/*
 * Check the whole log: that the records before the first kept one were
 * removed by a sealed audit.prune record and end at a good seal, which
 * anchors the chain; sequence continuity from there, every hash, every
 * seal's signature and place in the chain, and that nothing follows the
 * last seal unsealed beyond what a crash can leave.  Returns 0 if intact;
 * -EBADMSG with out->first_bad and out->why set if not; -errno if it
 * cannot read.
 */
int audit_verify(const char *home, struct audit_verdict *out)
    __attribute__((warn_unused_result));

/* Which records audit_query gives. */
struct audit_filter {
	int64_t since_ns;      /* time_ns >= since_ns (INT64_MIN: all) */
	uint64_t after_seq;    /* seq > after_seq (0: all) */
	const char *agreement; /* that agreement only, or NULL for all */
	uint64_t last_n;       /* > 0: only the last last_n that match */
};

/*
 * Call fn for each record that filter lets through, oldest first, all from
 * one snapshot of the log; fn returns 0 to go on, and anything else stops
 * the walk and is returned.  *end_seq (if not NULL) is the last seq in that
 * snapshot (0 if the log is empty): a later query with after_seq = *end_seq
 * gives exactly the records committed since.
 */
int audit_query(const char *home, const struct audit_filter *filter,
		int (*fn)(void *ctx, const struct audit_record *rec), void *ctx,
		uint64_t *end_seq) __attribute__((warn_unused_result));

#endif
