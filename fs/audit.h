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
 * The daemon's hot path only queues: audit_log_append copies the event
 * into memory; one writer thread per audit_log commits batches (WAL,
 * synchronous=FULL) at least every AUDIT_BATCH_NS.  audit_log_wait blocks
 * until a queued event is durable.  If a batch cannot be written (ENOSPC,
 * EIO, SQLITE_FULL), the log latches failed: every later append and wait
 * returns -EIO, and nothing more is written until the daemon restarts.
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
 * HOME/audit.key (mode 0600), keeping retention_days.  -EEXIST if there.
 */
int audit_create(const char *home, int retention_days)
    __attribute__((warn_unused_result));

struct audit_log;

/* Open the log for appending and start its writer thread. */
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

/* Write what is queued, seal the chain, stop the writer, free log. */
void audit_log_close(struct audit_log *log);

/* Append one event durably and seal: for govfsctl's admin actions. */
int audit_append_sync(const char *home, const struct audit_event *ev)
    __attribute__((warn_unused_result));

/*
 * Check the whole log: sequence continuity from the first record kept,
 * every hash, every seal's signature and place in the chain, and that
 * nothing follows the last seal unsealed beyond what a crash can leave.
 * Returns 0 if intact; -EBADMSG with *first_bad set to the first bad
 * sequence number and why filled in otherwise; -errno if it cannot read.
 */
int audit_verify(const char *home, uint64_t *records, uint64_t *first_bad,
		 char *why, size_t whylen) __attribute__((warn_unused_result));

/*
 * Call fn for each record, oldest first, with time >= since_ns and (if
 * agreement is not NULL) that agreement; only the last last_n of them if
 * last_n > 0.  fn returns 0 to go on.
 */
int audit_query(const char *home, int64_t since_ns, const char *agreement,
		uint64_t last_n,
		int (*fn)(void *ctx, const struct audit_record *rec), void *ctx)
    __attribute__((warn_unused_result));

#endif
