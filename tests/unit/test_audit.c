/*
 * test_audit: the audit log through its interface (create, append, wait,
 * close, append_sync, query, verify) and, for tampering, through the
 * sqlite3 C API on the file as an attacker with write access would: with
 * the triggers dropped, the hashes recomputed from the encoding documented
 * atop fs/audit.c (reimplemented here, so that this test also checks that
 * the documentation is right) and seals signed with another key.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"

#include "audit.h"

#define HASH_LEN 32

struct fixture {
	char home[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->home, "/tmp/govfs-test-audit.XXXXXX");
	if (!mkdtemp(f->home) || audit_create(f->home, 365)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char small[PATH_MAX];

	/* the full-disk test's tmpfs, should it have failed half way */
	snprintf(small, sizeof(small), "%s/small", f->home);
	umount2(small, MNT_DETACH);

	scratch_remove(f->home);
	free(f);
	return 0;
}

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A read record as the daemon would queue it; i makes it unique. */
static struct audit_event read_event(int64_t i)
{
	struct audit_event ev = AUDIT_EVENT_INIT("read", "ok");

	ev.agreement = "agr-1";
	ev.revision = 2;
	ev.uid = 1001;
	ev.pid = 4242;
	ev.comm = "python3";
	ev.path = "/health.visits/data.csv";
	ev.offset = i * 4096;
	ev.length = 4096;
	ev.bytes = 4096;
	return ev;
}

/*
 * Append n records numbered from first through a log, then close: reads,
 * and every fifth an open, whose offset, length and bytes are null.
 */
static void append_segment(const char *home, int64_t first, int n)
{
	struct audit_log *log;
	struct audit_event ev;

	assert_int_equal(audit_log_open(home, &log), 0);
	for (int64_t i = first; i < first + n; i++) {
		ev = read_event(i);
		if (i % 5 == 0) {
			ev.event = "open";
			ev.offset = ev.length = ev.bytes = AUDIT_NULL;
		}
		assert_int_equal(audit_log_append(log, &ev, NULL), 0);
	}
	audit_log_close(log);
}

/* 50 records sealed at 20, 40 and 50 (each close seals). */
static void build_log(const char *home)
{
	append_segment(home, 1, 20);
	append_segment(home, 21, 20);
	append_segment(home, 41, 10);
}

static sqlite3 *raw_open(const char *home)
{
	char path[PATH_MAX];
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/audit.db", home);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The attacker's first move. */
static sqlite3 *attacker_open(const char *home)
{
	sqlite3 *db = raw_open(home);

	raw_exec(db, "DROP TRIGGER records_no_update;"
		     "DROP TRIGGER records_no_delete;"
		     "DROP TRIGGER seals_no_update;"
		     "DROP TRIGGER seals_no_delete;");
	return db;
}

/* audit_verify's return, the verdict aside. */
static int verify_rc(const char *home)
{
	struct audit_verdict v;

	return audit_verify(home, &v);
}

/* The log verifies, and holds records records from first_seq on. */
static void expect_intact_from(const char *home, uint64_t first_seq,
			       uint64_t records)
{
	struct audit_verdict v;
	int rc = audit_verify(home, &v);

	if (rc)
		fail_msg("verify: %d (%s), first bad %llu", rc, v.why,
			 (unsigned long long)v.first_bad);
	assert_int_equal(v.records, records);
	assert_int_equal(v.first_seq, records ? first_seq : 0);
}

static void expect_intact(const char *home, uint64_t records)
{
	expect_intact_from(home, 1, records);
}

/* Verify must find tampering first at seq, and say what contains. */
static void expect_bad(const char *home, uint64_t seq, const char *contains)
{
	struct audit_verdict v;

	assert_int_equal(audit_verify(home, &v), -EBADMSG);
	if (v.first_bad != seq || !strstr(v.why, contains))
		fail_msg("want first bad %llu with '%s', got %llu: %s",
			 (unsigned long long)seq, contains,
			 (unsigned long long)v.first_bad, v.why);
}

/* audit_query with the filters the tests use most. */
static int query(const char *home, int64_t since_ns, const char *agreement,
		 uint64_t last_n,
		 int (*fn)(void *ctx, const struct audit_record *rec),
		 void *ctx)
{
	struct audit_filter f = {
	    .since_ns = since_ns, .agreement = agreement, .last_n = last_n};

	return audit_query(home, &f, fn, ctx, NULL);
}

/*
 * The attacker's encoder, written from the comment atop fs/audit.c: hash
 * of the stored row seq chained on prev.
 */
static void forge_hash(sqlite3 *db, int64_t seq, const uint8_t *prev,
		       uint8_t out[HASH_LEN])
{
	static const bool text[14] = {false, false, true, false, false,
				      false, true,  true, true,	 false,
				      false, false, true, true};
	uint8_t buf[8192];
	size_t len = 0;
	sqlite3_stmt *st;

	assert_int_equal(
	    sqlite3_prepare_v2(db,
			       "SELECT seq, time_ns, agreement, revision, uid,"
			       " pid, comm, event, path, offset, length,"
			       " bytes, result, reason FROM records"
			       " WHERE seq = ?",
			       -1, &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_int64(st, 1, seq);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	memcpy(buf, prev, HASH_LEN);
	len = HASH_LEN;
	for (int c = 0; c < 14; c++) {
		if (sqlite3_column_type(st, c) == SQLITE_NULL) {
			buf[len++] = 0;
			continue;
		}
		buf[len++] = 1;
		if (text[c]) {
			uint32_t n = (uint32_t)sqlite3_column_bytes(st, c);

			for (int b = 0; b < 4; b++)
				buf[len++] = (uint8_t)(n >> (8 * b));
			memcpy(buf + len, sqlite3_column_text(st, c), n);
			len += n;
		} else {
			uint64_t v = (uint64_t)sqlite3_column_int64(st, c);

			for (int b = 0; b < 8; b++)
				buf[len++] = (uint8_t)(v >> (8 * b));
		}
	}
	sqlite3_finalize(st);
	assert_int_equal(EVP_Digest(buf, len, out, NULL, EVP_sha256(), NULL),
			 1);
}

static void stored_hash(sqlite3 *db, int64_t seq, uint8_t out[HASH_LEN])
{
	sqlite3_stmt *st;

	memset(out, 0, HASH_LEN);
	if (seq == 0)
		return;
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT hash FROM records"
					    " WHERE seq = ?",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, seq);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_bytes(st, 0), HASH_LEN);
	memcpy(out, sqlite3_column_blob(st, 0), HASH_LEN);
	sqlite3_finalize(st);
}

static void set_hash(sqlite3 *db, int64_t seq, const uint8_t hash[HASH_LEN])
{
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(db,
					    "UPDATE records SET hash = ?"
					    " WHERE seq = ?",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_blob(st, 1, hash, HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

/* Recompute the stored hashes of records from..to, as an attacker can. */
static void rehash(sqlite3 *db, int64_t from, int64_t to)
{
	uint8_t prev[HASH_LEN], h[HASH_LEN];

	stored_hash(db, from - 1, prev);
	for (int64_t seq = from; seq <= to; seq++) {
		forge_hash(db, seq, prev, h);
		set_hash(db, seq, h);
		memcpy(prev, h, HASH_LEN);
	}
}

/* Seal seq with key (its stored hash), replacing any seal there. */
static void forge_seal(sqlite3 *db, int64_t seq, EVP_PKEY *key)
{
	uint8_t msg[56], sig[64];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	sqlite3_stmt *st;

	memcpy(msg, "govfs audit seal", 16);
	for (int b = 0; b < 8; b++)
		msg[16 + b] = (uint8_t)((uint64_t)seq >> (8 * b));
	stored_hash(db, seq, msg + 24);
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, NULL, NULL, key), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, msg, sizeof(msg)),
			 1);
	EVP_MD_CTX_free(ctx);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "INSERT OR REPLACE INTO seals"
					    " VALUES(?, 0, ?, ?)",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_blob(st, 2, msg + 24, HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, sig, (int)siglen, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

/* Add record seq at the end, a copy of record 1 stamped time_ns. */
static void forge_record(sqlite3 *db, int64_t seq, int64_t time_ns)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
		 "INSERT INTO records SELECT %lld, %lld, agreement, revision,"
		 " uid, pid, comm, event, '/forged', offset, length, bytes,"
		 " result, reason, hash FROM records WHERE seq = 1",
		 (long long)seq, (long long)time_ns);
	raw_exec(db, sql);
}

static void test_create_refuses_existing(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/audit.db", f->home);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "%s/audit.key", f->home);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(audit_create(f->home, 365), -EEXIST);
	/* a key left alone is refused too, and nothing is left behind */
	snprintf(path, sizeof(path), "%s/audit.db", f->home);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(audit_create(f->home, 365), -EEXIST);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(verify_rc(f->home), -ENOENT);
}

static void test_fresh_log_is_intact(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db = raw_open(f->home);

	expect_intact(f->home, 0);
	assert_int_equal(raw_int(db, "SELECT value FROM meta"
				     " WHERE key = 'retention_days'"),
			 365);
	assert_int_equal(raw_int(db, "SELECT journal_mode = 'wal'"
				     " FROM pragma_journal_mode"),
			 1);
	sqlite3_close(db);
}

struct collected {
	uint64_t n;
	uint64_t seq[64];
	struct audit_event ev[64];
	char strings[64][6][64];
	int stop_after;
};

static int collect(void *ctx, const struct audit_record *rec)
{
	struct collected *c = ctx;
	const char **s[6];
	uint64_t i = c->n++;

	assert_true(i < 64);
	c->seq[i] = rec->seq;
	c->ev[i] = rec->ev;
	s[0] = &c->ev[i].agreement;
	s[1] = &c->ev[i].comm;
	s[2] = &c->ev[i].event;
	s[3] = &c->ev[i].path;
	s[4] = &c->ev[i].result;
	s[5] = &c->ev[i].reason;
	for (int k = 0; k < 6; k++) {
		if (!*s[k])
			continue;
		snprintf(c->strings[i][k], 64, "%s", *s[k]);
		*s[k] = c->strings[i][k];
	}
	return c->stop_after && c->n == (uint64_t)c->stop_after ? 7 : 0;
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct audit_event a = read_event(3),
			   b = AUDIT_EVENT_INIT("open", "EACCES");
	struct collected c = {0};
	struct audit_log *log;
	uint64_t ta, tb;
	int64_t before = realtime_ns();

	b.time_ns = 1700000000123456789LL;
	b.uid = 0;
	b.reason = "";
	assert_int_equal(audit_log_open(f->home, &log), 0);
	assert_int_equal(audit_log_append(log, &a, &ta), 0);
	assert_int_equal(audit_log_append(log, &b, &tb), 0);
	assert_true(tb > ta);
	assert_int_equal(audit_log_wait(log, tb), 0);
	assert_false(audit_log_failed(log));
	audit_log_close(log);

	assert_int_equal(query(f->home, INT64_MIN, NULL, 0, collect, &c), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.seq[0], 1);
	assert_int_equal(c.seq[1], 2);
	assert_true(c.ev[0].time_ns >= before &&
		    c.ev[0].time_ns <= realtime_ns());
	assert_string_equal(c.ev[0].agreement, "agr-1");
	assert_int_equal(c.ev[0].revision, 2);
	assert_int_equal(c.ev[0].uid, 1001);
	assert_int_equal(c.ev[0].pid, 4242);
	assert_string_equal(c.ev[0].comm, "python3");
	assert_string_equal(c.ev[0].event, "read");
	assert_string_equal(c.ev[0].path, "/health.visits/data.csv");
	assert_int_equal(c.ev[0].offset, 3 * 4096);
	assert_int_equal(c.ev[0].length, 4096);
	assert_int_equal(c.ev[0].bytes, 4096);
	assert_string_equal(c.ev[0].result, "ok");
	assert_null(c.ev[0].reason);
	/* explicit time kept, nulls stay null, 0 and "" are not null */
	assert_int_equal(c.ev[1].time_ns, 1700000000123456789LL);
	assert_null(c.ev[1].agreement);
	assert_null(c.ev[1].comm);
	assert_null(c.ev[1].path);
	assert_int_equal(c.ev[1].revision, AUDIT_NULL);
	assert_int_equal(c.ev[1].pid, AUDIT_NULL);
	assert_int_equal(c.ev[1].offset, AUDIT_NULL);
	assert_int_equal(c.ev[1].bytes, AUDIT_NULL);
	assert_int_equal(c.ev[1].uid, 0);
	assert_string_equal(c.ev[1].reason, "");
	assert_string_equal(c.ev[1].event, "open");
	assert_string_equal(c.ev[1].result, "EACCES");
	expect_intact(f->home, 2);
}

static void test_query_filters(void **state)
{
	struct fixture *f = *state;
	struct audit_event ev;
	struct collected c = {0};
	struct audit_log *log;

	assert_int_equal(audit_log_open(f->home, &log), 0);
	for (int i = 1; i <= 10; i++) {
		ev = read_event(i);
		ev.time_ns = 1000 * i;
		ev.agreement = i % 2 ? "odd" : "even";
		assert_int_equal(audit_log_append(log, &ev, NULL), 0);
	}
	audit_log_close(log);

	assert_int_equal(query(f->home, 7000, NULL, 0, collect, &c), 0);
	assert_int_equal(c.n, 4);
	assert_int_equal(c.seq[0], 7);
	memset(&c, 0, sizeof(c));
	assert_int_equal(query(f->home, INT64_MIN, "odd", 0, collect, &c), 0);
	assert_int_equal(c.n, 5);
	assert_int_equal(c.seq[4], 9);
	memset(&c, 0, sizeof(c));
	assert_int_equal(query(f->home, INT64_MIN, "even", 2, collect, &c), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.seq[0], 8);
	assert_int_equal(c.seq[1], 10);
	memset(&c, 0, sizeof(c));
	assert_int_equal(query(f->home, 3000, NULL, 3, collect, &c), 0);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.seq[0], 8);
	/* the callback's non-zero return stops the walk and is returned */
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	assert_int_equal(query(f->home, INT64_MIN, NULL, 0, collect, &c), 7);
	assert_int_equal(c.n, 2);
}

#define THREADS 8
#define PER_THREAD 3000

struct appender {
	struct audit_log *log;
	int id;
};

static void *append_many(void *arg)
{
	struct appender *a = arg;
	struct audit_event ev;
	uint64_t ticket;

	for (int i = 0; i < PER_THREAD; i++) {
		ev = read_event(i);
		ev.pid = a->id;
		if (audit_log_append(a->log, &ev, &ticket))
			return (void *)1;
		if (i % 100 == 99 && audit_log_wait(a->log, ticket))
			return (void *)1;
	}
	return NULL;
}

/* Each writer's records in seq order: offsets of each pid increase. */
struct order_check {
	uint64_t n, last_seq;
	int64_t next[THREADS];
	bool ok;
};

static int check_order(void *ctx, const struct audit_record *rec)
{
	struct order_check *o = ctx;
	int64_t pid = rec->ev.pid;

	o->n++;
	if (rec->seq != o->last_seq + 1 || pid < 0 || pid >= THREADS ||
	    rec->ev.offset != o->next[pid] * 4096)
		o->ok = false;
	else
		o->next[pid]++;
	o->last_seq = rec->seq;
	return 0;
}

static void run_appenders(struct audit_log **logs, int nlogs)
{
	struct appender a[THREADS];
	pthread_t t[THREADS];
	void *ret;

	for (int i = 0; i < THREADS; i++) {
		a[i].log = logs[i % nlogs];
		a[i].id = i;
		assert_int_equal(
		    pthread_create(&t[i], NULL, append_many, &a[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
	}
}

static void test_threads_all_committed_in_order(void **state)
{
	struct fixture *f = *state;
	struct order_check o = {.ok = true};
	struct audit_log *log;

	assert_int_equal(audit_log_open(f->home, &log), 0);
	run_appenders(&log, 1);
	audit_log_close(log);
	assert_int_equal(query(f->home, INT64_MIN, NULL, 0, check_order, &o),
			 0);
	assert_int_equal(o.n, THREADS * PER_THREAD);
	assert_true(o.ok);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(o.next[i], PER_THREAD);
	expect_intact(f->home, THREADS * PER_THREAD);
}

/* Two logs (two daemons) on one home continue one chain. */
static void test_two_writers_share_the_chain(void **state)
{
	struct fixture *f = *state;
	struct order_check o = {.ok = true};
	struct audit_log *logs[2];
	struct audit_event ev = AUDIT_EVENT_INIT("agreement.suspend", "ok");

	assert_int_equal(audit_log_open(f->home, &logs[0]), 0);
	assert_int_equal(audit_log_open(f->home, &logs[1]), 0);
	run_appenders(logs, 2);
	audit_log_close(logs[0]);
	audit_log_close(logs[1]);
	assert_int_equal(query(f->home, INT64_MIN, NULL, 0, check_order, &o),
			 0);
	assert_int_equal(o.n, THREADS * PER_THREAD);
	assert_true(o.ok);
	expect_intact(f->home, THREADS * PER_THREAD);
	/* and govfsctl's synchronous appends between them */
	assert_int_equal(audit_append_sync(f->home, &ev), 0);
	expect_intact(f->home, THREADS * PER_THREAD + 1);
}

static void test_wait_means_visible_to_others(void **state)
{
	struct fixture *f = *state;
	struct audit_log *log;
	struct audit_event ev;
	uint64_t ticket;
	sqlite3 *db = raw_open(f->home);

	assert_int_equal(audit_log_open(f->home, &log), 0);
	for (int round = 1; round <= 20; round++) {
		for (int i = 0; i < round; i++) {
			ev = read_event(i);
			assert_int_equal(audit_log_append(log, &ev, &ticket),
					 0);
		}
		assert_int_equal(audit_log_wait(log, ticket), 0);
		assert_int_equal(raw_int(db, "SELECT count(*) FROM records"),
				 round * (round + 1) / 2);
	}
	/* a ticket already durable returns at once; one not issued is wrong */
	assert_int_equal(audit_log_wait(log, 1), 0);
	assert_int_equal(audit_log_wait(log, 0), 0);
	assert_int_equal(audit_log_wait(log, ticket + 1), -EINVAL);
	audit_log_close(log);
	sqlite3_close(db);
}

static void test_unwaited_record_is_committed_soon(void **state)
{
	struct fixture *f = *state;
	struct audit_log *log;
	struct audit_event ev = read_event(0);
	sqlite3 *db = raw_open(f->home);
	int64_t start;

	assert_int_equal(audit_log_open(f->home, &log), 0);
	start = realtime_ns();
	assert_int_equal(audit_log_append(log, &ev, NULL), 0);
	while (raw_int(db, "SELECT count(*) FROM records") == 0 &&
	       realtime_ns() - start < 2000000000)
		usleep(1000);
	/* SPEC: a read record is durable within 50 ms (a slow disk aside) */
	assert_true(realtime_ns() - start < 1000000000);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM records"), 1);
	audit_log_close(log);
	sqlite3_close(db);
}

static void test_seals_at_close_and_every_n_records(void **state)
{
	struct fixture *f = *state;
	struct audit_log *log;
	struct audit_event ev;
	uint64_t ticket;
	sqlite3 *db = raw_open(f->home);

	build_log(f->home);
	assert_int_equal(raw_int(db, "SELECT group_concat(seq) = '20,40,50'"
				     " FROM seals"),
			 1);
	assert_int_equal(audit_log_open(f->home, &log), 0);
	for (int i = 0; i < AUDIT_SEAL_RECORDS; i++) {
		ev = read_event(i);
		assert_int_equal(audit_log_append(log, &ev, &ticket), 0);
	}
	assert_int_equal(audit_log_wait(log, ticket), 0);
	/* before close: a seal within the last AUDIT_SEAL_RECORDS */
	assert_int_equal(raw_int(db, "SELECT max(seq) FROM seals"),
			 50 + AUDIT_SEAL_RECORDS);
	audit_log_close(log);
	expect_intact(f->home, 50 + AUDIT_SEAL_RECORDS);
	sqlite3_close(db);
}

/* A batch that would leave a record past the sealing time is sealed. */
static void test_seals_after_seal_time(void **state)
{
	struct fixture *f = *state;
	struct audit_event ev = read_event(0);
	struct audit_log *log;
	uint64_t ticket;
	sqlite3 *db = raw_open(f->home);

	ev.time_ns = realtime_ns() - 2 * AUDIT_SEAL_NS;
	assert_int_equal(audit_append_sync(f->home, &ev), 0);
	assert_int_equal(audit_log_open(f->home, &log), 0);
	ev.time_ns = 0;
	assert_int_equal(audit_log_append(log, &ev, &ticket), 0);
	assert_int_equal(audit_log_wait(log, ticket), 0);
	assert_int_equal(raw_int(db, "SELECT max(seq) FROM seals"), 2);
	audit_log_close(log);
	expect_intact(f->home, 2);
	sqlite3_close(db);
}

/* An idle log seals its tail when the sealing time comes, not at close. */
static void test_idle_tail_is_sealed_in_time(void **state)
{
	struct fixture *f = *state;
	struct audit_event ev = read_event(0);
	struct audit_log *log;
	uint64_t ticket;
	sqlite3 *db = raw_open(f->home);
	int64_t start = realtime_ns();

	assert_int_equal(audit_log_open(f->home, &log), 0);
	ev.time_ns = start - AUDIT_SEAL_NS + 1000000000;
	assert_int_equal(audit_log_append(log, &ev, &ticket), 0);
	assert_int_equal(audit_log_wait(log, ticket), 0);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM seals"), 0);
	while (raw_int(db, "SELECT count(*) FROM seals") == 0 &&
	       realtime_ns() - start < 5000000000)
		usleep(10000);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM seals"), 1);
	audit_log_close(log);
	expect_intact(f->home, 1);
	sqlite3_close(db);
}

static void test_triggers_refuse_changes(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	build_log(f->home);
	db = raw_open(f->home);
	assert_int_equal(
	    sqlite3_exec(db, "UPDATE records SET uid = 0 WHERE seq = 3", NULL,
			 NULL, NULL),
	    SQLITE_CONSTRAINT);
	assert_int_equal(sqlite3_exec(db, "DELETE FROM records WHERE seq = 3",
				      NULL, NULL, NULL),
			 SQLITE_CONSTRAINT);
	assert_int_equal(
	    sqlite3_exec(db, "UPDATE seals SET time_ns = 0", NULL, NULL, NULL),
	    SQLITE_CONSTRAINT);
	assert_int_equal(
	    sqlite3_exec(db, "DELETE FROM seals", NULL, NULL, NULL),
	    SQLITE_CONSTRAINT);
	sqlite3_close(db);
	expect_intact(f->home, 50);
}

static void test_altered_record_is_named(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	build_log(f->home);
	expect_intact(f->home, 50);
	db = attacker_open(f->home);
	raw_exec(db, "UPDATE records SET bytes = 0 WHERE seq = 17");
	expect_bad(f->home, 17, "record 17: hash does not match");
	raw_exec(db, "UPDATE records SET bytes = 4096 WHERE seq = 17");
	expect_intact(f->home, 50);
	/* a null made not null, in the last segment */
	raw_exec(db, "UPDATE records SET reason = 'x' WHERE seq = 45");
	expect_bad(f->home, 45, "record 45: hash does not match");
	raw_exec(db, "UPDATE records SET reason = NULL WHERE seq = 45");
	/* the stored hash alone */
	raw_exec(db, "UPDATE records SET hash = zeroblob(32) WHERE seq = 2");
	expect_bad(f->home, 2, "record 2: hash");
	rehash(db, 2, 2);
	expect_intact(f->home, 50);
	sqlite3_close(db);
}

/* Values that read back as the same record but are not what was written. */
static void test_retyped_field_is_named(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	build_log(f->home);
	db = attacker_open(f->home);
	/* record 45 is an open: its offset is null, stored as NULL */
	raw_exec(db, "UPDATE records SET offset = -9223372036854775808"
		     " WHERE seq = 45");
	expect_bad(f->home, 45, "record 45: offset is malformed");
	raw_exec(db, "UPDATE records SET offset = NULL WHERE seq = 45");
	expect_intact(f->home, 50);
	/* the same bytes as a blob, in a table rebuilt without STRICT */
	raw_exec(db,
		 "ALTER TABLE records RENAME TO old;"
		 "CREATE TABLE records(seq INTEGER PRIMARY KEY, time_ns,"
		 " agreement, revision, uid, pid, comm, event, path, offset,"
		 " length, bytes, result, reason, hash);"
		 "INSERT INTO records SELECT * FROM old;"
		 "UPDATE records SET path = CAST(path AS BLOB)"
		 " WHERE seq = 17;");
	expect_bad(f->home, 17, "record 17: path is malformed");
	sqlite3_close(db);
}

static void test_removed_record_is_named(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	build_log(f->home);
	db = attacker_open(f->home);
	raw_exec(db, "CREATE TEMP TABLE saved AS SELECT * FROM records"
		     " WHERE seq IN (17, 50)");
	raw_exec(db, "DELETE FROM records WHERE seq = 17");
	expect_bad(f->home, 17, "record 17 missing");
	raw_exec(db, "INSERT INTO records SELECT * FROM saved WHERE seq = 17");
	expect_intact(f->home, 50);
	/* the last record: its seal names it */
	raw_exec(db, "DELETE FROM records WHERE seq = 50");
	expect_bad(f->home, 50, "seal at 50: record 50 missing");
	raw_exec(db, "INSERT INTO records SELECT * FROM saved WHERE seq = 50");
	expect_intact(f->home, 50);
	/* the first */
	raw_exec(db, "CREATE TEMP TABLE first AS SELECT * FROM records"
		     " WHERE seq = 1");
	raw_exec(db, "DELETE FROM records WHERE seq = 1");
	expect_bad(f->home, 1, "record 1 missing");
	raw_exec(db, "INSERT INTO records SELECT * FROM first");
	expect_intact(f->home, 50);
	sqlite3_close(db);
}

static void test_swapped_records_name_the_first(void **state)
{
	struct fixture *f = *state;
	static const char swap_fields[] =
	    "CREATE TEMP TABLE IF NOT EXISTS pair AS SELECT * FROM records"
	    " WHERE 0;"
	    "DELETE FROM pair;"
	    "INSERT INTO pair SELECT * FROM records WHERE seq IN (17, 18);"
	    "UPDATE records SET (time_ns, agreement, revision, uid, pid, comm,"
	    " event, path, offset, length, bytes, result, reason) = (SELECT"
	    " time_ns, agreement, revision, uid, pid, comm, event, path,"
	    " offset, length, bytes, result, reason FROM pair"
	    " WHERE pair.seq = 35 - records.seq) WHERE seq IN (17, 18);";
	static const char swap_hashes[] =
	    "DELETE FROM pair;"
	    "INSERT INTO pair SELECT * FROM records WHERE seq IN (17, 18);"
	    "UPDATE records SET hash = (SELECT hash FROM pair"
	    " WHERE pair.seq = 35 - records.seq) WHERE seq IN (17, 18);";
	sqlite3 *db;

	build_log(f->home);
	db = attacker_open(f->home);
	raw_exec(db, swap_fields);
	expect_bad(f->home, 17, "record 17: hash does not match");
	raw_exec(db, swap_hashes);
	expect_bad(f->home, 17, "record 17: hash does not match");
	raw_exec(db, swap_fields);
	raw_exec(db, swap_hashes);
	expect_intact(f->home, 50);
	sqlite3_close(db);
}

static void test_record_added_at_the_end(void **state)
{
	struct fixture *f = *state;
	uint8_t h[HASH_LEN];
	sqlite3 *db;
	EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	int64_t last_time;

	build_log(f->home);
	db = attacker_open(f->home);
	last_time = raw_int(db, "SELECT time_ns FROM records WHERE seq = 50");
	/* with a hash that does not chain */
	forge_record(db, 51, last_time);
	expect_bad(f->home, 51, "record 51: hash does not match");
	/*
	 * With its hash recomputed and no seal after it, it is what a crash
	 * can leave: verify cannot tell (see atop fs/audit.c).
	 */
	rehash(db, 51, 51);
	expect_intact(f->home, 51);
	/* unless it claims a time no crash could leave unsealed */
	raw_exec(db, "DELETE FROM records WHERE seq = 51");
	forge_record(db, 51, last_time + AUDIT_SEAL_NS);
	rehash(db, 51, 51);
	expect_bad(f->home, 51, "record 51: unsealed");
	/* or the attacker seals it with a key of their own */
	raw_exec(db, "DELETE FROM records WHERE seq = 51");
	forge_record(db, 51, last_time);
	rehash(db, 51, 51);
	forge_seal(db, 51, other);
	expect_bad(f->home, 51, "seal at 51: bad signature");
	raw_exec(db, "DELETE FROM seals WHERE seq = 51;"
		     "DELETE FROM records WHERE seq = 51");
	expect_intact(f->home, 50);
	/* and a hash of the right size but wrong, at the end */
	stored_hash(db, 50, h);
	h[0] ^= 1;
	set_hash(db, 50, h);
	expect_bad(f->home, 50, "record 50: hash does not match");
	EVP_PKEY_free(other);
	sqlite3_close(db);
}

static void test_unsealed_tail_is_bounded(void **state)
{
	struct fixture *f = *state;
	char sql[256];
	sqlite3 *db;

	build_log(f->home);
	db = attacker_open(f->home);
	raw_exec(db, "BEGIN");
	for (int64_t seq = 51; seq < 51 + AUDIT_SEAL_RECORDS; seq++) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO records SELECT %lld, time_ns, agreement,"
			 " revision, uid, pid, comm, event, path, offset,"
			 " length, bytes, result, reason, hash FROM records"
			 " WHERE seq = 50",
			 (long long)seq);
		raw_exec(db, sql);
	}
	rehash(db, 51, 50 + AUDIT_SEAL_RECORDS);
	raw_exec(db, "COMMIT");
	/* AUDIT_SEAL_RECORDS after the last seal is more than a crash leaves */
	expect_bad(f->home, 50 + AUDIT_SEAL_RECORDS, "after the last seal");
	snprintf(sql, sizeof(sql), "DELETE FROM records WHERE seq > %d",
		 49 + AUDIT_SEAL_RECORDS);
	raw_exec(db, sql);
	expect_intact(f->home, 49 + AUDIT_SEAL_RECORDS);
	sqlite3_close(db);
}

static void test_rehashed_alteration_caught_by_seal(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	build_log(f->home);
	db = attacker_open(f->home);
	raw_exec(db, "UPDATE records SET uid = 0 WHERE seq = 45");
	/* the record's own hash recomputed: the next one breaks */
	rehash(db, 45, 45);
	expect_bad(f->home, 46, "record 46: hash does not match");
	/* every hash after it too: the seal at 50 disagrees */
	rehash(db, 46, 50);
	expect_bad(f->home, 41, "seal at 50: does not match the chain");
	raw_exec(db, "UPDATE records SET uid = 1001 WHERE seq = 45");
	rehash(db, 45, 50);
	expect_intact(f->home, 50);
	/* the same in the first segment: the seal at 20 catches it */
	raw_exec(db, "UPDATE records SET path = '/x' WHERE seq = 3");
	rehash(db, 3, 50);
	expect_bad(f->home, 1, "seal at 20: does not match the chain");
	sqlite3_close(db);
}

static void test_seal_with_another_key(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	sqlite3 *db;
	char sql[256], hex[65];
	uint8_t pub[32];
	size_t publen = sizeof(pub);
	char path[PATH_MAX];

	build_log(f->home);
	db = attacker_open(f->home);
	raw_exec(db, "CREATE TEMP TABLE saved AS SELECT * FROM seals");
	forge_seal(db, 40, other);
	expect_bad(f->home, 40, "seal at 40: bad signature");
	/* a signature cut short */
	raw_exec(db, "UPDATE seals SET signature = (SELECT substr(signature,"
		     " 1, 63) FROM saved WHERE saved.seq = 40) WHERE seq = 40");
	expect_bad(f->home, 40, "seal at 40: bad signature");
	raw_exec(db,
		 "DELETE FROM seals; INSERT INTO seals SELECT * FROM saved");
	expect_intact(f->home, 50);

	/* the whole log re-signed under a key put into meta */
	assert_int_equal(EVP_PKEY_get_raw_public_key(other, pub, &publen), 1);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", pub[i]);
	snprintf(sql, sizeof(sql),
		 "UPDATE meta SET value = '%s' WHERE key = 'public_key'", hex);
	raw_exec(db, sql);
	forge_seal(db, 20, other);
	forge_seal(db, 40, other);
	forge_seal(db, 50, other);
	/* whoever holds audit.key sees it */
	expect_bad(f->home, 1, "public key");
	{
		struct audit_log *log;

		assert_int_equal(audit_log_open(f->home, &log), -EKEYREJECTED);
	}
	/* with the db alone it cannot be told (see atop fs/audit.c) */
	snprintf(path, sizeof(path), "%s/audit.key", f->home);
	assert_int_equal(unlink(path), 0);
	expect_intact(f->home, 50);
	EVP_PKEY_free(other);
	sqlite3_close(db);
}

static void test_append_sync(void **state)
{
	struct fixture *f = *state;
	struct audit_event ev = AUDIT_EVENT_INIT("agreement.revoke", "ok");
	struct collected c = {0};
	sqlite3 *db;

	ev.agreement = "agr-2025-001";
	ev.uid = 1000;
	ev.reason = "contract ended";
	assert_int_equal(audit_append_sync(f->home, &ev), 0);
	assert_int_equal(audit_append_sync(f->home, &ev), 0);
	append_segment(f->home, 1, 5);
	assert_int_equal(audit_append_sync(f->home, &ev), 0);
	db = raw_open(f->home);
	assert_int_equal(raw_int(db, "SELECT group_concat(seq) = '1,2,7,8'"
				     " FROM seals"),
			 1);
	sqlite3_close(db);
	expect_intact(f->home, 8);
	assert_int_equal(
	    query(f->home, INT64_MIN, "agr-2025-001", 0, collect, &c), 0);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.seq[2], 8);
	assert_string_equal(c.ev[2].reason, "contract ended");
	assert_string_equal(c.ev[2].event, "agreement.revoke");
	assert_true(c.ev[2].time_ns > 0);
}

static void test_refuses_what_it_cannot_record(void **state)
{
	struct fixture *f = *state;
	struct audit_event ev = read_event(0);
	struct audit_log *log;
	char *big = malloc((1u << 20) + 2);
	char path[PATH_MAX];

	assert_non_null(big);
	memset(big, 'a', (1u << 20) + 1);
	big[(1u << 20) + 1] = '\0';
	ev.reason = big;
	assert_int_equal(audit_append_sync(f->home, &ev), -EINVAL);
	assert_int_equal(audit_log_open(f->home, &log), 0);
	assert_int_equal(audit_log_append(log, &ev, NULL), -EINVAL);
	assert_false(audit_log_failed(log));
	audit_log_close(log);
	free(big);
	ev.reason = NULL;
	expect_intact(f->home, 0);
	/* a key readable by others is not used */
	snprintf(path, sizeof(path), "%s/audit.key", f->home);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(audit_log_open(f->home, &log), -EPERM);
	assert_int_equal(audit_append_sync(f->home, &ev), -EPERM);
}

/* Fill the file system under dir until it is full. */
static void fill_up(const char *dir)
{
	static char block[65536];
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/filler", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	while (write(fd, block, sizeof(block)) > 0)
		;
	for (size_t n = sizeof(block) / 2; n; n /= 2)
		while (write(fd, block, n) > 0)
			;
	close(fd);
}

static void test_fails_closed_when_disk_full(void **state)
{
	struct fixture *f = *state;
	char dir[PATH_MAX], path[PATH_MAX];
	struct audit_event ev = read_event(0);
	struct audit_log *log;
	uint64_t ticket;
	static char reason[2048];
	int64_t start;
	int rc;

	snprintf(dir, sizeof(dir), "%s/small", f->home);
	assert_int_equal(mkdir(dir, 0700), 0);
	if (mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700")) {
		rmdir(dir);
		skip();
	}
	assert_int_equal(audit_create(dir, 365), 0);
	assert_int_equal(audit_log_open(dir, &log), 0);
	assert_int_equal(audit_log_append(log, &ev, &ticket), 0);
	assert_int_equal(audit_log_wait(log, ticket), 0);
	fill_up(dir);
	memset(reason, 'r', sizeof(reason) - 1);
	ev.reason = reason;
	rc = 0;
	start = realtime_ns();
	for (int i = 0; i < 1000 && !rc; i++) {
		rc = audit_log_append(log, &ev, &ticket);
		if (!rc && i % 50 == 49)
			rc = audit_log_wait(log, ticket);
	}
	assert_int_equal(rc, -EIO);
	/* at once, not when some later transaction happens to fail */
	assert_true(realtime_ns() - start < 5000000000);
	assert_true(audit_log_failed(log));
	assert_int_equal(audit_log_append(log, &ev, &ticket), -EIO);
	assert_int_equal(audit_log_wait(log, 1), -EIO);
	audit_log_close(log);
	/* what was committed is intact, and it works again with space */
	snprintf(path, sizeof(path), "%s/filler", dir);
	assert_int_equal(unlink(path), 0);
	rc = verify_rc(dir);
	assert_int_equal(rc, 0);
	assert_int_equal(audit_log_open(dir, &log), 0);
	assert_int_equal(audit_log_append(log, &ev, &ticket), 0);
	assert_int_equal(audit_log_wait(log, ticket), 0);
	audit_log_close(log);
	assert_int_equal(verify_rc(dir), 0);
}

/* ---- retention and pruning ---- */

#define DAY_NS (86400 * 1000000000LL)

/* HOME/audit.key, the writer's own signing key. */
static EVP_PKEY *real_key(const char *home)
{
	char path[PATH_MAX];
	EVP_PKEY *key;
	FILE *f;

	snprintf(path, sizeof(path), "%s/audit.key", home);
	f = fopen(path, "r");
	assert_non_null(f);
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(key);
	return key;
}

/*
 * A log as writers would have left it over time, built directly: records
 * 1..n stamped times[i], chained by the encoding documented atop
 * fs/audit.c, and a seal of the records after each seq in seals, signed
 * with HOME/audit.key.
 */
static void build_timed_log(const char *home, const int64_t *times, int n,
			    const int *seals, int nseals)
{
	sqlite3 *db = raw_open(home);
	EVP_PKEY *key = real_key(home);
	char sql[512];

	/* the writer computes hashes before inserting; this builder after */
	raw_exec(db, "BEGIN; DROP TRIGGER records_no_update");
	for (int i = 0; i < n; i++) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO records VALUES(%d, %lld, 'agr-1', 2,"
			 " 1001, 4242, 'python3', 'read', '/visits/data.csv',"
			 " %d, 4096, 4096, 'ok', NULL, zeroblob(32))",
			 i + 1, (long long)times[i], i * 4096);
		raw_exec(db, sql);
	}
	rehash(db, 1, n);
	for (int i = 0; i < nseals; i++)
		forge_seal(db, seals[i], key);
	raw_exec(db, "CREATE TRIGGER records_no_update BEFORE UPDATE ON records"
		     " BEGIN SELECT RAISE(ABORT, 'audit records are"
		     " append-only'); END; COMMIT");
	EVP_PKEY_free(key);
	sqlite3_close(db);
}

/* n records stamped age_ns ago, sealed every `every` and at the end. */
static void build_aged_log(const char *home, int n, int64_t age_ns, int every)
{
	int64_t *times = calloc((size_t)n, sizeof(*times));
	int *seals = calloc((size_t)n, sizeof(*seals));
	int nseals = 0;

	assert_non_null(times);
	assert_non_null(seals);
	for (int i = 0; i < n; i++) {
		times[i] = realtime_ns() - age_ns;
		if ((i + 1) % every == 0 || i + 1 == n)
			seals[nseals++] = i + 1;
	}
	build_timed_log(home, times, n, seals, nseals);
	free(times);
	free(seals);
}

/* The triggers of fs/audit.c's schema, as an attacker dropped them. */
static void restore_triggers(const char *home)
{
	sqlite3 *db = raw_open(home);

	raw_exec(db, "CREATE TRIGGER records_no_update BEFORE UPDATE ON records"
		     " BEGIN SELECT RAISE(ABORT, 'audit records are"
		     " append-only'); END;"
		     "CREATE TRIGGER seals_no_update BEFORE UPDATE ON seals"
		     " BEGIN SELECT RAISE(ABORT, 'audit seals are"
		     " append-only'); END;"
		     "CREATE TRIGGER records_no_delete BEFORE DELETE ON records"
		     " BEGIN SELECT RAISE(ABORT, 'audit records are"
		     " append-only'); END;"
		     "CREATE TRIGGER seals_no_delete BEFORE DELETE ON seals"
		     " BEGIN SELECT RAISE(ABORT, 'audit seals are"
		     " append-only'); END;");
	sqlite3_close(db);
}

/* The actor of the prunes these tests run. */
static struct audit_event pruner(void)
{
	struct audit_event by = AUDIT_EVENT_INIT(AUDIT_PRUNE_EVENT, "ok");

	by.uid = 1000;
	by.pid = 77;
	by.comm = "tester";
	return by;
}

static void prune_ok(const char *home, struct audit_pruned *p)
{
	struct audit_event by = pruner();

	assert_int_equal(audit_prune(home, &by, p), 0);
}

static void test_create_checks_retention_days(void **state)
{
	struct fixture *f = *state;
	char dir[PATH_MAX], path[PATH_MAX];
	sqlite3 *db;

	snprintf(dir, sizeof(dir), "%s/other", f->home);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(audit_create(dir, 0), -EINVAL);
	assert_int_equal(audit_create(dir, -1), -EINVAL);
	assert_int_equal(audit_create(dir, AUDIT_RETENTION_DAYS_MAX + 1),
			 -EINVAL);
	snprintf(path, sizeof(path), "%s/audit.db", dir);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/audit.key", dir);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(audit_create(dir, AUDIT_RETENTION_DAYS_MAX), 0);
	db = raw_open(dir);
	assert_int_equal(raw_int(db, "SELECT value FROM meta"
				     " WHERE key = 'retention_days'"),
			 AUDIT_RETENTION_DAYS_MAX);
	sqlite3_close(db);
}

/*
 * Only whole sealed segments whose records are all old go; the chain
 * goes on from the seal that closes them, and verify starts there.
 */
static void test_prune_removes_old_sealed_segments(void **state)
{
	struct fixture *f = *state;
	int64_t old = realtime_ns() - 400 * DAY_NS,
		young = realtime_ns() - 3600 * 1000000000LL;
	const int64_t times[9] = {old, old,   old,   old,  old,
				  old, young, young, young};
	const int seals[4] = {2, 4, 7, 9};
	struct collected c = {0};
	struct audit_pruned p;
	sqlite3 *db;

	build_timed_log(f->home, times, 9, seals, 4);
	expect_intact(f->home, 9);
	prune_ok(f->home, &p);
	/* 5 and 6 are old, but share their segment with young record 7 */
	assert_int_equal(p.records, 4);
	assert_int_equal(p.first, 1);
	assert_int_equal(p.last, 4);
	assert_int_equal(p.retention_days, 365);
	db = raw_open(f->home);
	assert_int_equal(raw_int(db, "SELECT group_concat(seq) = '5,6,7,8,9,10'"
				     " FROM records"),
			 1);
	/* the seal that closes the pruned part stays, the ones before go */
	assert_int_equal(raw_int(db, "SELECT group_concat(seq) = '4,7,9,10'"
				     " FROM seals"),
			 1);
	assert_int_equal(raw_int(db, "SELECT value FROM meta"
				     " WHERE key = 'last_prune'"),
			 10);
	expect_intact_from(f->home, 5, 6);

	/* the audit.prune record says what went, who did it and why */
	assert_int_equal(query(f->home, INT64_MIN, NULL, 0, collect, &c), 0);
	assert_int_equal(c.n, 6);
	assert_int_equal(c.seq[0], 5);
	assert_int_equal(c.seq[5], 10);
	assert_string_equal(c.ev[5].event, AUDIT_PRUNE_EVENT);
	assert_string_equal(c.ev[5].result, "ok");
	assert_int_equal(c.ev[5].offset, 1);
	assert_int_equal(c.ev[5].length, 4);
	assert_int_equal(c.ev[5].bytes, AUDIT_NULL);
	assert_int_equal(c.ev[5].uid, 1000);
	assert_int_equal(c.ev[5].pid, 77);
	assert_string_equal(c.ev[5].comm, "tester");
	assert_null(c.ev[5].agreement);
	assert_non_null(strstr(c.ev[5].reason, "retention 365 days: older "
					       "than "));

	/* nothing more is old enough: nothing changes */
	prune_ok(f->home, &p);
	assert_int_equal(p.records, 0);
	assert_int_equal(raw_int(db, "SELECT max(seq) FROM records"), 10);

	/* the triggers refuse as before */
	assert_int_equal(sqlite3_exec(db, "DELETE FROM records WHERE seq = 5",
				      NULL, NULL, NULL),
			 SQLITE_CONSTRAINT);
	assert_int_equal(
	    sqlite3_exec(db, "DELETE FROM seals", NULL, NULL, NULL),
	    SQLITE_CONSTRAINT);
	assert_int_equal(
	    sqlite3_exec(db, "UPDATE records SET uid = 0 WHERE seq = 5", NULL,
			 NULL, NULL),
	    SQLITE_CONSTRAINT);
	sqlite3_close(db);

	/* and the chain goes on */
	append_segment(f->home, 1, 3);
	expect_intact_from(f->home, 5, 9);
}

/* Old records after the last seal are not a whole sealed segment. */
static void test_prune_keeps_the_unsealed_tail(void **state)
{
	struct fixture *f = *state;
	int64_t old = realtime_ns() - 400 * DAY_NS;
	const int64_t times[5] = {old, old, old, old, old};
	const int seals[1] = {3};
	struct audit_pruned p;
	sqlite3 *db;

	build_timed_log(f->home, times, 5, seals, 1);
	expect_intact(f->home, 5);
	prune_ok(f->home, &p);
	assert_int_equal(p.records, 3);
	db = raw_open(f->home);
	assert_int_equal(raw_int(db, "SELECT group_concat(seq) = '4,5,6'"
				     " FROM records"),
			 1);
	sqlite3_close(db);
	expect_intact_from(f->home, 4, 3);
}

/* When every record goes, the chain goes on from the last seal. */
static void test_prune_everything(void **state)
{
	struct fixture *f = *state;
	struct audit_event ev = AUDIT_EVENT_INIT("agreement.apply", "ok");
	struct audit_pruned p;

	build_aged_log(f->home, 4, 400 * DAY_NS, 2);
	prune_ok(f->home, &p);
	assert_int_equal(p.records, 4);
	expect_intact_from(f->home, 5, 1);
	assert_int_equal(audit_append_sync(f->home, &ev), 0);
	expect_intact_from(f->home, 5, 2);
	prune_ok(f->home, &p);
	assert_int_equal(p.records, 0);
}

/* A record one day short of the retention period stays. */
static void test_prune_keeps_the_retention_period(void **state)
{
	struct fixture *f = *state;
	struct audit_pruned p;

	build_aged_log(f->home, 4, 364 * DAY_NS, 1);
	prune_ok(f->home, &p);
	assert_int_equal(p.records, 0);
	assert_int_equal(p.retention_days, 365);
	expect_intact(f->home, 4);
}

/* A large backlog goes in several transactions, each with its record. */
static void test_prune_in_steps(void **state)
{
	struct fixture *f = *state;
	const int n = 2 * AUDIT_PRUNE_RECORDS + 500;
	struct collected c = {0};
	struct audit_pruned p;

	build_aged_log(f->home, n, 400 * DAY_NS, 500);
	prune_ok(f->home, &p);
	assert_int_equal(p.records, n);
	assert_int_equal(p.first, 1);
	assert_int_equal(p.last, n);
	expect_intact_from(f->home, n + 1, 3);
	assert_int_equal(query(f->home, INT64_MIN, NULL, 0, collect, &c), 0);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.ev[0].offset, 1);
	assert_int_equal(c.ev[0].length, AUDIT_PRUNE_RECORDS);
	assert_int_equal(c.ev[1].offset, AUDIT_PRUNE_RECORDS + 1);
	assert_int_equal(c.ev[1].length, AUDIT_PRUNE_RECORDS);
	assert_int_equal(c.ev[2].offset, 2 * AUDIT_PRUNE_RECORDS + 1);
	assert_int_equal(c.ev[2].length, 500);
}

/* Small segments: a step checks at most AUDIT_PRUNE_SEALS seals. */
static void test_prune_steps_bounded_by_seals(void **state)
{
	struct fixture *f = *state;
	const int n = 2 * AUDIT_PRUNE_SEALS + 10;
	struct collected c = {0};
	struct audit_pruned p;

	build_aged_log(f->home, n, 400 * DAY_NS, 1);
	prune_ok(f->home, &p);
	assert_int_equal(p.records, n);
	assert_int_equal(query(f->home, INT64_MIN, NULL, 0, collect, &c), 0);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.ev[0].length, AUDIT_PRUNE_SEALS);
	assert_int_equal(c.ev[1].length, AUDIT_PRUNE_SEALS);
	assert_int_equal(c.ev[2].length, 10);
	expect_intact_from(f->home, n + 1, 3);
}

/* The daemon's log prunes as it opens, under the daemon's name. */
static void test_log_open_prunes(void **state)
{
	struct fixture *f = *state;
	struct collected c = {0};
	struct audit_log *log;
	char comm[32] = "";
	FILE *self = fopen("/proc/self/comm", "r");
	int64_t start = realtime_ns();
	sqlite3 *db;

	assert_non_null(self);
	assert_non_null(fgets(comm, sizeof(comm), self));
	fclose(self);
	comm[strcspn(comm, "\n")] = '\0';
	build_aged_log(f->home, 6, 400 * DAY_NS, 3);
	db = raw_open(f->home);
	assert_int_equal(audit_log_open(f->home, &log), 0);
	while (raw_int(db, "SELECT count(*) FROM records") == 6 &&
	       realtime_ns() - start < 5000000000)
		usleep(10000);
	audit_log_close(log);
	sqlite3_close(db);
	expect_intact_from(f->home, 7, 1);
	assert_int_equal(query(f->home, INT64_MIN, NULL, 0, collect, &c), 0);
	assert_string_equal(c.ev[0].event, AUDIT_PRUNE_EVENT);
	assert_int_equal(c.ev[0].pid, getpid());
	assert_int_equal(c.ev[0].uid, getuid());
	assert_string_equal(c.ev[0].comm, comm);
}

/*
 * While the daemon's log prunes a backlog, records are written between its
 * steps: an open does not wait for the whole prune.
 */
static void test_log_writes_between_prune_steps(void **state)
{
	struct fixture *f = *state;
	const int n = 60 * AUDIT_PRUNE_SEALS;
	struct audit_event ev = read_event(0);
	struct audit_log *log;
	uint64_t ticket;
	int64_t start;
	sqlite3 *db;

	build_aged_log(f->home, n, 400 * DAY_NS, 1);
	start = realtime_ns();
	assert_int_equal(audit_log_open(f->home, &log), 0);
	ev.path = "/between";
	assert_int_equal(audit_log_append(log, &ev, &ticket), 0);
	assert_int_equal(audit_log_wait(log, ticket), 0);
	db = raw_open(f->home);
	while (raw_int(db, "SELECT min(seq) FROM records") <= n &&
	       realtime_ns() - start < 20000000000)
		usleep(20000);
	audit_log_close(log);
	expect_intact_from(f->home, n + 1, 61);
	/* it came before the last step (each takes milliseconds) */
	assert_true(raw_int(db, "SELECT seq FROM records"
				" WHERE path = '/between'") <
		    raw_int(db, "SELECT max(seq) FROM records"
				" WHERE event = 'audit.prune'"));
	sqlite3_close(db);
}

/* What a prune would remove must verify: a prune never hides tampering. */
static void test_prune_refuses_tampered_records(void **state)
{
	struct fixture *f = *state;
	struct audit_event by = pruner();
	struct audit_pruned p;
	sqlite3 *db;

	build_aged_log(f->home, 6, 400 * DAY_NS, 3);
	db = attacker_open(f->home);
	raw_exec(db, "UPDATE records SET uid = 0 WHERE seq = 2");
	assert_int_equal(audit_prune(f->home, &by, &p), -EBADMSG);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM records"), 6);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master"
				     " WHERE type = 'trigger'"),
			 0);
	raw_exec(db, "UPDATE records SET uid = 1001 WHERE seq = 2");
	/* records removed at the start of a log that was never pruned */
	raw_exec(db, "CREATE TEMP TABLE saved AS SELECT * FROM records"
		     " WHERE seq <= 3;"
		     "DELETE FROM records WHERE seq <= 3");
	expect_bad(f->home, 1, "records 1 to 3 missing: no audit.prune");
	assert_int_equal(audit_prune(f->home, &by, &p), -EBADMSG);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM records"), 3);
	raw_exec(db, "INSERT INTO records SELECT * FROM saved");
	expect_intact(f->home, 6);
	/* with the triggers dropped, it will not make them up again */
	assert_int_equal(audit_prune(f->home, &by, &p), -EIO);
	assert_non_null(strstr(p.why, "no such trigger"));
	assert_int_equal(raw_int(db, "SELECT count(*) FROM records"), 6);
	sqlite3_close(db);
	restore_triggers(f->home);
	prune_ok(f->home, &p);
	assert_int_equal(p.records, 6);
}

/*
 * After a prune, verify still names the first bad record, and tells a
 * prune from records removed at the start without one.
 */
static void test_tampering_after_prune(void **state)
{
	struct fixture *f = *state;
	int64_t old = realtime_ns() - 400 * DAY_NS,
		young = realtime_ns() - 3600 * 1000000000LL;
	int64_t times[20];
	const int seals[4] = {5, 10, 15, 20};
	struct audit_pruned p;
	sqlite3 *db;

	for (int i = 0; i < 20; i++)
		times[i] = i < 10 ? old : young;
	build_timed_log(f->home, times, 20, seals, 4);
	prune_ok(f->home, &p);
	assert_int_equal(p.last, 10);
	expect_intact_from(f->home, 11, 11);
	db = attacker_open(f->home);
	raw_exec(db, "CREATE TEMP TABLE saved AS SELECT * FROM records;"
		     "CREATE TEMP TABLE saved_seals AS SELECT * FROM seals");

	/* an altered, a removed, two swapped records */
	raw_exec(db, "UPDATE records SET uid = 0 WHERE seq = 13");
	expect_bad(f->home, 13, "record 13: hash does not match");
	raw_exec(db, "UPDATE records SET uid = 1001 WHERE seq = 13");
	raw_exec(db, "DELETE FROM records WHERE seq = 12");
	expect_bad(f->home, 12, "record 12 missing");
	raw_exec(db, "INSERT INTO records SELECT * FROM saved WHERE seq = 12");
	raw_exec(db, "UPDATE records SET offset = 0 WHERE seq = 12;"
		     "UPDATE records SET offset = 11 * 4096 WHERE seq = 13");
	expect_bad(f->home, 12, "record 12: hash does not match");
	raw_exec(db, "UPDATE records SET offset = 11 * 4096 WHERE seq = 12;"
		     "UPDATE records SET offset = 12 * 4096 WHERE seq = 13");
	expect_intact_from(f->home, 11, 11);

	/* more removed at the start: up to a seal, or not */
	raw_exec(db, "DELETE FROM records WHERE seq <= 15");
	expect_bad(f->home, 11,
		   "records 11 to 15 missing: the audit.prune record 21 "
		   "removed records only up to 10");
	raw_exec(db, "INSERT INTO records SELECT * FROM saved WHERE seq <= 12");
	expect_bad(f->home, 13, "record 13 missing");
	raw_exec(db, "INSERT INTO records SELECT * FROM saved"
		     " WHERE seq BETWEEN 13 AND 15");
	raw_exec(db, "DELETE FROM records WHERE seq <= 11");
	expect_bad(f->home, 11, "record 11 missing: the audit.prune");
	raw_exec(db, "INSERT INTO records SELECT * FROM saved WHERE seq = 11");
	expect_intact_from(f->home, 11, 11);

	/* the anchor: gone, or signed by another key */
	raw_exec(db, "DELETE FROM seals WHERE seq = 10");
	expect_bad(f->home, 11, "no good seal at 10");
	raw_exec(db, "INSERT INTO seals SELECT * FROM saved_seals"
		     " WHERE seq = 10");
	raw_exec(db, "UPDATE seals SET signature = zeroblob(64)"
		     " WHERE seq = 10");
	expect_bad(f->home, 11, "no good seal at 10");
	raw_exec(db, "DELETE FROM seals WHERE seq = 10;"
		     "INSERT INTO seals SELECT * FROM saved_seals"
		     " WHERE seq = 10");
	expect_intact_from(f->home, 11, 11);

	/* the declaration changed: alone, then rehashed */
	raw_exec(db, "UPDATE records SET length = 11 WHERE seq = 21");
	expect_bad(f->home, 21, "record 21: hash does not match");
	rehash(db, 21, 21);
	expect_bad(f->home, 21, "seal at 21: does not match the chain");
	raw_exec(db, "DELETE FROM records WHERE seq = 21;"
		     "INSERT INTO records SELECT * FROM saved WHERE seq = 21");
	expect_intact_from(f->home, 11, 11);

	/* the audit.prune record gone with its seal */
	raw_exec(db, "DELETE FROM records WHERE seq = 21;"
		     "DELETE FROM seals WHERE seq = 21");
	expect_bad(f->home, 1,
		   "records 1 to 10 missing: no audit.prune record");
	raw_exec(db, "INSERT INTO records SELECT * FROM saved WHERE seq = 21;"
		     "INSERT INTO seals SELECT * FROM saved_seals"
		     " WHERE seq = 21");
	expect_intact_from(f->home, 11, 11);
	sqlite3_close(db);
}

/*
 * An audit.prune record forged at the unsealed tail, even once a seal of
 * the records covers it, is not one: only a prune seal makes it so.
 */
static void test_forged_prune_record(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key = real_key(f->home);
	sqlite3 *db;

	build_aged_log(f->home, 10, 0, 5);
	db = attacker_open(f->home);
	raw_exec(db, "DELETE FROM records WHERE seq <= 5;"
		     "INSERT INTO records SELECT 11, time_ns, NULL, NULL,"
		     " 0, 1, 'govfs', 'audit.prune', NULL, 1, 5, NULL,"
		     " 'ok', 'x', hash FROM records WHERE seq = 10;"
		     "INSERT INTO meta VALUES('last_prune', '11')");
	rehash(db, 11, 11);
	expect_bad(f->home, 11,
		   "record 11: an audit.prune record without "
		   "its seal");
	/* a routine seal that came after it */
	forge_seal(db, 11, key);
	expect_bad(f->home, 11, "seal at 11: bad signature (of a prune seal)");
	EVP_PKEY_free(key);
	sqlite3_close(db);
}

/* A query after seq, and the last seq of its snapshot, for tail -f. */
static void test_query_after_seq(void **state)
{
	struct fixture *f = *state;
	struct audit_filter all = {.since_ns = INT64_MIN};
	struct audit_filter odd = {
	    .since_ns = INT64_MIN, .agreement = "odd", .last_n = 2};
	struct collected c = {0};
	struct audit_event ev;
	struct audit_log *log;
	uint64_t end = 99;

	assert_int_equal(audit_query(f->home, &all, collect, &c, &end), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(end, 0);
	assert_int_equal(audit_log_open(f->home, &log), 0);
	for (int i = 1; i <= 10; i++) {
		ev = read_event(i);
		ev.agreement = i % 2 ? "odd" : "even";
		assert_int_equal(audit_log_append(log, &ev, NULL), 0);
	}
	audit_log_close(log);
	all.after_seq = 4;
	assert_int_equal(audit_query(f->home, &all, collect, &c, &end), 0);
	assert_int_equal(c.n, 6);
	assert_int_equal(c.seq[0], 5);
	assert_int_equal(end, 10);
	memset(&c, 0, sizeof(c));
	assert_int_equal(audit_query(f->home, &odd, collect, &c, &end), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.seq[0], 7);
	assert_int_equal(c.seq[1], 9);
	assert_int_equal(end, 10);
	/* from there: exactly what came since, filtered */
	append_segment(f->home, 11, 3);
	odd.after_seq = end;
	odd.last_n = 0;
	odd.agreement = "agr-1";
	memset(&c, 0, sizeof(c));
	assert_int_equal(audit_query(f->home, &odd, collect, &c, &end), 0);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.seq[0], 11);
	assert_int_equal(end, 13);
	memset(&c, 0, sizeof(c));
	odd.after_seq = end;
	assert_int_equal(audit_query(f->home, &odd, collect, &c, &end), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(end, 13);
}

static void test_low_space_limit(void **state)
{
	(void)state;
	assert_int_equal(audit_low_space_limit(1ULL << 30),
			 AUDIT_LOW_SPACE_MIN_BYTES);
	assert_int_equal(audit_low_space_limit(0), AUDIT_LOW_SPACE_MIN_BYTES);
	assert_int_equal(audit_low_space_limit(100ULL << 30), 1ULL << 30);
}

/* Write bytes of filler into path (a new file). */
static void write_filler(const char *path, size_t bytes)
{
	static char block[1 << 20];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	for (size_t done = 0; done < bytes; done += sizeof(block))
		assert_int_equal(write(fd, block, sizeof(block)),
				 (ssize_t)sizeof(block));
	close(fd);
}

/* Poll until the log's low-space flag is want, for at most 5 s. */
static bool low_space_becomes(struct audit_log *log, bool want)
{
	int64_t start = realtime_ns();

	while (audit_log_low_space(log) != want &&
	       realtime_ns() - start < 5000000000)
		usleep(20000);
	return audit_log_low_space(log) == want;
}

/* Count the lines of file path that contain needle. */
static int lines_with(const char *path, const char *needle)
{
	char line[1024];
	FILE *f = fopen(path, "r");
	int n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/*
 * On a file system of 80 MiB, whose limit is 64 MiB: low once 30 MiB are
 * taken, back when they are freed, low again; said on stderr each time.
 */
static void test_low_space_is_noticed(void **state)
{
	struct fixture *f = *state;
	char dir[PATH_MAX], filler[PATH_MAX], errlog[PATH_MAX];
	struct audit_log *log;
	int saved, fd;

	snprintf(dir, sizeof(dir), "%s/small", f->home);
	assert_int_equal(mkdir(dir, 0700), 0);
	if (mount("tmpfs", dir, "tmpfs", 0, "size=80m,mode=0700")) {
		rmdir(dir);
		skip();
	}
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	snprintf(errlog, sizeof(errlog), "%s/stderr", f->home);
	assert_int_equal(audit_create(dir, 365), 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);

	assert_int_equal(audit_log_open(dir, &log), 0);
	usleep(200000);
	assert_false(audit_log_low_space(log));
	write_filler(filler, 30u << 20);
	assert_true(low_space_becomes(log, true));
	assert_int_equal(unlink(filler), 0);
	assert_true(low_space_becomes(log, false));
	write_filler(filler, 30u << 20);
	assert_true(low_space_becomes(log, true));
	audit_log_close(log);

	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	assert_int_equal(lines_with(errlog, "MiB free on its file system, "
					    "under 64 MiB"),
			 2);
	assert_int_equal(lines_with(errlog, "MiB free again"), 1);
	assert_int_equal(verify_rc(dir), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_create_refuses_existing),
	    T(test_fresh_log_is_intact),
	    T(test_round_trip),
	    T(test_query_filters),
	    T(test_threads_all_committed_in_order),
	    T(test_two_writers_share_the_chain),
	    T(test_wait_means_visible_to_others),
	    T(test_unwaited_record_is_committed_soon),
	    T(test_seals_at_close_and_every_n_records),
	    T(test_seals_after_seal_time),
	    T(test_idle_tail_is_sealed_in_time),
	    T(test_triggers_refuse_changes),
	    T(test_altered_record_is_named),
	    T(test_retyped_field_is_named),
	    T(test_removed_record_is_named),
	    T(test_swapped_records_name_the_first),
	    T(test_record_added_at_the_end),
	    T(test_unsealed_tail_is_bounded),
	    T(test_rehashed_alteration_caught_by_seal),
	    T(test_seal_with_another_key),
	    T(test_append_sync),
	    T(test_refuses_what_it_cannot_record),
	    T(test_fails_closed_when_disk_full),
	    T(test_create_checks_retention_days),
	    T(test_prune_removes_old_sealed_segments),
	    T(test_prune_keeps_the_unsealed_tail),
	    T(test_prune_everything),
	    T(test_prune_keeps_the_retention_period),
	    T(test_prune_in_steps),
	    T(test_prune_steps_bounded_by_seals),
	    T(test_log_open_prunes),
	    T(test_log_writes_between_prune_steps),
	    T(test_prune_refuses_tampered_records),
	    T(test_tampering_after_prune),
	    T(test_forged_prune_record),
	    T(test_query_after_seq),
	    cmocka_unit_test(test_low_space_limit),
	    T(test_low_space_is_noticed),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
