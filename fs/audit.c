/*
 * audit: the SQLite backend of audit.h.  HOME/audit.db holds three tables:
 * meta (format, public_key, retention_days, created_ns, and last_prune
 * once a prune ran: the seq of its audit.prune record), records (one row
 * per event: seq, the fields of struct audit_event, hash) and seals (seq,
 * time_ns, hash, signature).  Triggers refuse UPDATE and DELETE on records
 * and seals.  HOME/audit.key is the Ed25519 private key in PEM.
 *
 * Canonical encoding of a record, which the chain hashes (never its SQL
 * text).  The fields in this order:
 *   seq, time_ns, agreement, revision, uid, pid, comm, event, path,
 *   offset, length, bytes, result, reason
 * An integer field is the byte 0x00 if null (AUDIT_NULL), else the byte 0x01
 * followed by the value as 8 bytes little-endian two's complement; seq and
 * time_ns are never null.  A string field is the byte 0x00 if null, else
 * the byte 0x01, its length in bytes as 4 bytes little-endian, and its
 * bytes (no terminator).
 *   hash[seq] = SHA-256(hash[seq - 1] || encoding(seq)), hash[0] = 32 zeros
 * A seal at seq signs, with Ed25519, the 56 bytes
 *   "govfs audit seal" (16 bytes) || seq (8 bytes LE) || hash[seq] (32)
 * but the seal of an audit.prune record (see below), which only the prune
 * that appends it makes, starts with "govfs prune seal" instead.
 *
 * Sealing rule, kept by every writer inside the transaction that commits a
 * batch, so that it holds on disk after every commit: the records after the
 * last seal number fewer than AUDIT_SEAL_RECORDS, and each has time_ns <
 * ref + AUDIT_SEAL_NS, where ref is the time_ns of the last sealed record
 * (of the first record after it while there is no seal or it was pruned).
 * A batch that would break it is sealed; so is the chain at close and after
 * every audit_append_sync.
 *
 * Pruning (audit_prune, and the writer thread of audit_log_open) runs in
 * one write transaction per step: find the last seal P such that every
 * record up to P is older than retention_days (P at or after the first
 * record, about AUDIT_PRUNE_RECORDS records on at most), delete the
 * records up to P and the seals before P, keep the seal at P, and append
 * an "audit.prune" record (offset: the first seq removed, length: how
 * many) that continues the chain from hash[P], sealed at once.  Before
 * removing anything it checks the part to remove as audit_verify would,
 * and refuses if that part is not intact: a prune never hides tampering.
 * The triggers that refuse DELETE are dropped and created again inside that
 * transaction, so that no other connection ever sees the table without
 * them.  A trigger that let a marker row allow deletes would give anyone
 * who can write one row the same power; and triggers stop mistakes, not
 * attackers, who can drop them: what catches an attacker is verify.
 *
 * What audit_verify detects: a record whose fields or stored hash were
 * changed (its seq: the recomputed chain stops matching the stored hashes
 * there), a removed record (the gap), a record added at the end with a
 * wrong hash (its seq), two records swapped (the first), a seal whose
 * signature is wrong or made with another key, and a seal that does not
 * match the chain.  An attacker who changes record k and recomputes the
 * stored hashes from k on is caught by the first seal at or after k; the
 * seal cannot say which record changed, so first_bad is then the first
 * record after the previous good seal.  What it cannot detect: records
 * changed, added or removed after the last seal by someone who recomputes
 * their hashes, within the sealing rule above (a crash can leave exactly
 * such a tail, so it is accepted); and a rewrite of the whole log with a
 * new key put into meta, unless HOME/audit.key can be read, in which case
 * the public key in meta must be its own.  Removing the last records
 * together with their seals is the same case: keeping a copy of the latest
 * seal elsewhere would catch it.
 *
 * After pruning, the first record kept, F, must follow exactly the range
 * that the audit.prune record named by meta's last_prune declares (F =
 * offset + length; meta only points, and a wrong pointer fails), a good
 * seal must sit at F - 1, and hash[F - 1] is taken from it: the chain from
 * F on is then checked as above, anchored by a signature.  The prune seal
 * on each audit.prune record makes it one that only the key can make: a
 * forged one added to the unsealed tail, and covered by the next seal of
 * the records, still fails (wrong kind of seal, or none at its seq).  So
 * the declaration is checked on its own first (its contents hash, from the
 * stored hash before it, to its stored hash, which its prune seal signs),
 * and then removing records at the start is caught whether or not it ends
 * at a seal (first_bad: the first record removed), and so is removing
 * more than a prune declared, or changing the declaration.  Verify cannot
 * check the age of records that are gone: the audit.prune record's reason
 * states the cut-off its writer used.
 */
#include "audit.h"

#include "caller.h"
#include "clock.h"
#include "fileio.h"
#include "sqlerr.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define AUDIT_DB_FILE "audit.db"
#define AUDIT_KEY_FILE "audit.key"
#define AUDIT_FORMAT "1"
#define BUSY_TIMEOUT_MS 10000
#define HASH_LEN 32
#define PUBLIC_KEY_LEN 32
#define SIGNATURE_LEN 64
#define KEY_FILE_MAX 4096
/* Records in one transaction. */
#define BATCH_MAX 4096
/* Queued bytes beyond which an append waits for the writer to take them. */
#define QUEUE_MAX_BYTES (16u << 20)
/* Longest string field; longer is refused (-EINVAL). */
#define STRING_MAX (1u << 20)
#define NO_STRING UINT32_MAX
#define NS_PER_DAY (86400 * 1000000000LL)

/*
 * What a seal signs starts with 16 bytes (no NUL) that say its kind: a
 * seal of the records (any writer, when due) or the seal of an audit.prune
 * record, made only by the prune that wrote it.
 */
enum seal_kind { SEAL_RECORDS, SEAL_PRUNE };
static const char *const seal_tags[] = {
    [SEAL_RECORDS] = "govfs audit seal",
    [SEAL_PRUNE] = "govfs prune seal",
};
#define SEAL_TAG_LEN 16
#define SEAL_MESSAGE_LEN (SEAL_TAG_LEN + 8 + HASH_LEN)

/* Created with the schema, and again by every prune that drops them. */
#define NO_DELETE_TRIGGERS                                                     \
	"CREATE TRIGGER records_no_delete BEFORE DELETE ON records"            \
	" BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"    \
	"CREATE TRIGGER seals_no_delete BEFORE DELETE ON seals"                \
	" BEGIN SELECT RAISE(ABORT, 'audit seals are append-only'); END;"

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;"
    "CREATE TABLE records("
    " seq INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL, agreement TEXT,"
    " revision INTEGER, uid INTEGER, pid INTEGER, comm TEXT, event TEXT,"
    " path TEXT, offset INTEGER, length INTEGER, bytes INTEGER,"
    " result TEXT, reason TEXT, hash BLOB NOT NULL) STRICT;"
    "CREATE TABLE seals(seq INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL,"
    " hash BLOB NOT NULL, signature BLOB NOT NULL) STRICT;"
    "CREATE TRIGGER records_no_update BEFORE UPDATE ON records"
    " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
    "CREATE TRIGGER seals_no_update BEFORE UPDATE ON seals"
    " BEGIN SELECT RAISE(ABORT, 'audit seals are append-only'); END;"
    /* and refusing DELETE: */ NO_DELETE_TRIGGERS;

/*
 * The fields of struct audit_event in canonical order (after seq), which is
 * also the order of RECORD_COLUMNS.
 */
static const struct field {
	const char *name;
	bool text;
	size_t off;
} fields[] = {
    {"time_ns", false, offsetof(struct audit_event, time_ns)},
    {"agreement", true, offsetof(struct audit_event, agreement)},
    {"revision", false, offsetof(struct audit_event, revision)},
    {"uid", false, offsetof(struct audit_event, uid)},
    {"pid", false, offsetof(struct audit_event, pid)},
    {"comm", true, offsetof(struct audit_event, comm)},
    {"event", true, offsetof(struct audit_event, event)},
    {"path", true, offsetof(struct audit_event, path)},
    {"offset", false, offsetof(struct audit_event, offset)},
    {"length", false, offsetof(struct audit_event, length)},
    {"bytes", false, offsetof(struct audit_event, bytes)},
    {"result", true, offsetof(struct audit_event, result)},
    {"reason", true, offsetof(struct audit_event, reason)},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

#define RECORD_COLUMNS                                                         \
	"time_ns, agreement, revision, uid, pid, comm, event, path, offset,"   \
	" length, bytes, result, reason"

/* A record being written or read: the event and each string's length. */
struct rec {
	uint64_t seq;
	struct audit_event ev;
	size_t len[NFIELDS]; /* of fields[i] when text and not NULL */
};

static int64_t ev_int(const struct audit_event *ev, size_t i)
{
	return *(const int64_t *)((const char *)ev + fields[i].off);
}

static const char *ev_str(const struct audit_event *ev, size_t i)
{
	return *(const char *const *)((const char *)ev + fields[i].off);
}

static void ev_set_int(struct audit_event *ev, size_t i, int64_t v)
{
	*(int64_t *)((char *)ev + fields[i].off) = v;
}

static void ev_set_str(struct audit_event *ev, size_t i, const char *s)
{
	*(const char **)((char *)ev + fields[i].off) = s;
}

static int64_t now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whether a record stamped t breaks the sealing rule against ref. */
static bool past_seal_time(int64_t t, int64_t ref)
{
	return ref <= INT64_MAX - AUDIT_SEAL_NS && t >= ref + AUDIT_SEAL_NS;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode exactly n bytes of lowercase hex; false if s is anything else. */
static bool hex_decode(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

/* Run sql (no rows wanted); 0 or -errno. */
static int exec(sqlite3 *db, const char *sql)
{
	return sql_rc(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

/* Roll back the open transaction, if any. */
static void rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* out (PATH_MAX bytes) = home/name; 0 or -ENAMETOOLONG. */
static int home_path(const char *home, const char *name, char *out)
{
	if (snprintf(out, PATH_MAX, "%s/%s", home, name) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Open HOME/audit.db with flags; *out is NULL on error. */
static int open_db(const char *home, int flags, sqlite3 **out)
{
	char path[PATH_MAX];
	int rc;

	*out = NULL;
	rc = home_path(home, AUDIT_DB_FILE, path);
	if (rc)
		return rc;
	/* SQLite opens lazily: say here that there is no log. */
	if (access(path, F_OK))
		return -errno;
	rc = sqlite3_open_v2(path, out, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_close(*out);
		*out = NULL;
		return sql_rc(rc);
	}
	sqlite3_busy_timeout(*out, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(*out, 0);
	return 0;
}

/* Read meta's value for key into out; -ENOENT if absent or too long. */
static int meta_get(sqlite3 *db, const char *key, char *out, size_t outlen)
{
	sqlite3_stmt *st;
	const unsigned char *v;
	int rc;

	rc = sql_rc(sqlite3_prepare_v2(
	    db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL));
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		v = sqlite3_column_text(st, 0);
		if (v && strlen((const char *)v) < outlen) {
			strcpy(out, (const char *)v);
			rc = 0;
		} else {
			rc = -ENOENT;
		}
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : sql_rc(rc);
	}
	sqlite3_finalize(st);
	return rc;
}

/* Set meta's value for key; 0 or -errno. */
static int meta_set(sqlite3 *db, const char *key, const char *value)
{
	sqlite3_stmt *st;
	int rc;

	rc = sql_rc(
	    sqlite3_prepare_v2(db,
			       "INSERT INTO meta(key, value) VALUES(?, ?)"
			       " ON CONFLICT(key) DO UPDATE"
			       " SET value = excluded.value",
			       -1, &st, NULL));
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sql_rc(rc);
}

/* The Ed25519 public key that meta names; -EPROTO if malformed. */
static int meta_public_key(sqlite3 *db, EVP_PKEY **out)
{
	char hex[2 * PUBLIC_KEY_LEN + 1];
	uint8_t raw[PUBLIC_KEY_LEN];
	int rc;

	rc = meta_get(db, "public_key", hex, sizeof(hex));
	if (rc)
		return rc == -ENOENT ? -EPROTO : rc;
	if (!hex_decode(hex, raw, sizeof(raw)))
		return -EPROTO;
	*out = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw,
					   sizeof(raw));
	return *out ? 0 : -ENOMEM;
}

/* Whether a and b hold the same Ed25519 public key. */
static bool same_public_key(EVP_PKEY *a, EVP_PKEY *b)
{
	uint8_t ra[PUBLIC_KEY_LEN], rb[PUBLIC_KEY_LEN];
	size_t la = sizeof(ra), lb = sizeof(rb);

	return EVP_PKEY_get_raw_public_key(a, ra, &la) == 1 &&
	       EVP_PKEY_get_raw_public_key(b, rb, &lb) == 1 && la == lb &&
	       memcmp(ra, rb, la) == 0;
}

/* Write key as PEM to a new file path (O_EXCL, mode 0600), synced. */
static int key_file_create(const char *path, EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	char *pem;
	long len;
	int fd, rc;

	if (!bio)
		return -ENOMEM;
	if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) !=
	    1) {
		rc = -EIO;
		goto out_free_bio;
	}
	len = BIO_get_mem_data(bio, &pem);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out_free_bio;
	}
	rc = write_all(fd, pem, (size_t)len);
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	if (rc)
		unlink(path);
out_free_bio:
	BIO_free(bio);
	return rc;
}

/* The PEMs we write carry no passphrase; never prompt for one. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/*
 * Load HOME/audit.key: a regular file owned by us, mode 0600 or less,
 * holding an Ed25519 private key.  -ENOENT, -EPERM, -EPROTO or -errno.
 */
static int key_file_load(const char *home, EVP_PKEY **out)
{
	char path[PATH_MAX], buf[KEY_FILE_MAX];
	struct stat st;
	BIO *bio;
	ssize_t n;
	int fd, rc;

	*out = NULL;
	rc = home_path(home, AUDIT_KEY_FILE, path);
	if (rc)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st))
		rc = -errno;
	else if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
		 (st.st_mode & 077))
		rc = -EPERM;
	else if (st.st_size <= 0 || st.st_size >= (off_t)sizeof(buf))
		rc = -EPROTO;
	if (!rc) {
		n = pread(fd, buf, (size_t)st.st_size, 0);
		if (n != st.st_size)
			rc = n < 0 ? -errno : -EIO;
	}
	close(fd);
	if (rc)
		goto out_cleanse;
	bio = BIO_new_mem_buf(buf, (int)st.st_size);
	if (!bio) {
		rc = -ENOMEM;
		goto out_cleanse;
	}
	*out = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (!*out || !EVP_PKEY_is_a(*out, "ED25519")) {
		EVP_PKEY_free(*out);
		*out = NULL;
		rc = -EPROTO;
	}
out_cleanse:
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

/* The 56 bytes a seal of kind at seq over hash signs (see atop). */
static void seal_message(enum seal_kind kind, uint64_t seq,
			 const uint8_t hash[HASH_LEN],
			 uint8_t msg[SEAL_MESSAGE_LEN])
{
	memcpy(msg, seal_tags[kind], SEAL_TAG_LEN);
	put_le(msg + SEAL_TAG_LEN, seq, 8);
	memcpy(msg + SEAL_TAG_LEN + 8, hash, HASH_LEN);
}

/* Sign the seal of kind at seq over hash with key; 0, -ENOMEM or -EIO. */
static int seal_sign(EVP_PKEY *key, enum seal_kind kind, uint64_t seq,
		     const uint8_t hash[HASH_LEN], uint8_t sig[SIGNATURE_LEN])
{
	uint8_t msg[SEAL_MESSAGE_LEN];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t siglen = SIGNATURE_LEN;
	bool ok;

	if (!ctx)
		return -ENOMEM;
	seal_message(kind, seq, hash, msg);
	ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
	     EVP_DigestSign(ctx, sig, &siglen, msg, sizeof(msg)) == 1 &&
	     siglen == SIGNATURE_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

/* Whether sig is pub's signature of the seal of kind at seq over hash. */
static bool seal_signature_ok(EVP_PKEY *pub, enum seal_kind kind, uint64_t seq,
			      const void *hash, size_t hashlen, const void *sig,
			      size_t siglen)
{
	uint8_t msg[SEAL_MESSAGE_LEN];
	EVP_MD_CTX *ctx;
	bool ok;

	if (hashlen != HASH_LEN || siglen != SIGNATURE_LEN)
		return false;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return false;
	seal_message(kind, seq, hash, msg);
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
	     EVP_DigestVerify(ctx, sig, siglen, msg, sizeof(msg)) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* SHA-256 of the chain, with a reusable buffer for the encoding. */
struct hasher {
	EVP_MD *sha256;
	EVP_MD_CTX *ctx;
	uint8_t *buf;
	size_t cap;
};

/* 0, or -ENOMEM (release h either way). */
static int hasher_init(struct hasher *h)
{
	memset(h, 0, sizeof(*h));
	h->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	h->ctx = EVP_MD_CTX_new();
	return h->sha256 && h->ctx ? 0 : -ENOMEM;
}

static void hasher_release(struct hasher *h)
{
	EVP_MD_free(h->sha256);
	EVP_MD_CTX_free(h->ctx);
	free(h->buf);
	memset(h, 0, sizeof(*h));
}

/* Append integer field v; returns the end. */
static uint8_t *put_int(uint8_t *p, int64_t v)
{
	if (v == AUDIT_NULL) {
		*p++ = 0;
		return p;
	}
	*p++ = 1;
	put_le(p, (uint64_t)v, 8);
	return p + 8;
}

/* Encode r as the comment atop this file says; its length, or 0 (ENOMEM). */
static size_t encode_record(struct hasher *h, const struct rec *r)
{
	size_t need = 9;
	uint8_t *p;

	for (size_t i = 0; i < NFIELDS; i++) {
		if (!fields[i].text)
			need += 9;
		else
			need += ev_str(&r->ev, i) ? 5 + r->len[i] : 1;
	}
	if (need > h->cap) {
		uint8_t *grown = realloc(h->buf, need);

		if (!grown)
			return 0;
		h->buf = grown;
		h->cap = need;
	}
	p = put_int(h->buf, (int64_t)r->seq);
	for (size_t i = 0; i < NFIELDS; i++) {
		const char *s;

		if (!fields[i].text) {
			p = put_int(p, ev_int(&r->ev, i));
			continue;
		}
		s = ev_str(&r->ev, i);
		if (!s) {
			*p++ = 0;
			continue;
		}
		*p++ = 1;
		put_le(p, r->len[i], 4);
		memcpy(p + 4, s, r->len[i]);
		p += 4 + r->len[i];
	}
	return (size_t)(p - h->buf);
}

/* out = SHA-256(prev || encoding of r); 0, -ENOMEM or -EIO. */
static int hash_record(struct hasher *h, const uint8_t prev[HASH_LEN],
		       const struct rec *r, uint8_t out[HASH_LEN])
{
	size_t len = encode_record(h, r);

	if (!len)
		return -ENOMEM;
	if (EVP_DigestInit_ex2(h->ctx, h->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(h->ctx, prev, HASH_LEN) != 1 ||
	    EVP_DigestUpdate(h->ctx, h->buf, len) != 1 ||
	    EVP_DigestFinal_ex(h->ctx, out, NULL) != 1)
		return -EIO;
	return 0;
}

/*
 * Fill r from a row "seq, RECORD_COLUMNS, ..." of st; strings point into
 * st until its next step.  Returns the index of the first field whose type
 * the table does not allow, or -1 if every field is well formed.
 */
static int rec_from_row(sqlite3_stmt *st, struct rec *r)
{
	int bad = -1;

	memset(r, 0, sizeof(*r));
	r->seq = (uint64_t)sqlite3_column_int64(st, 0);
	for (size_t i = 0; i < NFIELDS; i++) {
		int col = (int)i + 1, type = sqlite3_column_type(st, col);

		if (fields[i].text) {
			const char *s =
			    (const char *)sqlite3_column_text(st, col);

			ev_set_str(&r->ev, i, s);
			r->len[i] =
			    s ? (size_t)sqlite3_column_bytes(st, col) : 0;
			if (type != SQLITE_TEXT && type != SQLITE_NULL &&
			    bad < 0)
				bad = (int)i;
		} else {
			int64_t v = type == SQLITE_NULL
					? AUDIT_NULL
					: sqlite3_column_int64(st, col);

			ev_set_int(&r->ev, i, v);
			/* INT64_MIN would read back as null */
			if (bad < 0 &&
			    (type == SQLITE_INTEGER ? v == AUDIT_NULL
						    : type != SQLITE_NULL))
				bad = (int)i;
		}
	}
	if (bad < 0 && r->ev.time_ns == AUDIT_NULL)
		bad = 0;
	return bad;
}

/*
 * A connection that appends: what audit_log's writer thread and
 * audit_append_sync share.
 */
struct writer {
	sqlite3 *db;
	EVP_PKEY *key;
	struct hasher hasher;
	sqlite3_stmt *last, *last_seal, *ref_time, *insert, *insert_seal;
	/* after a batch: realtime by which the tail must be sealed, or 0 */
	int64_t seal_due;
	char why[256]; /* SQLite's (or verify's) message for the last failure */
};

/* Finalize, close and free what writer_open made; w may be half made. */
static void writer_release(struct writer *w)
{
	sqlite3_finalize(w->last);
	sqlite3_finalize(w->last_seal);
	sqlite3_finalize(w->ref_time);
	sqlite3_finalize(w->insert);
	sqlite3_finalize(w->insert_seal);
	sqlite3_close(w->db);
	EVP_PKEY_free(w->key);
	hasher_release(&w->hasher);
	memset(w, 0, sizeof(*w));
}

/* Prepare the statements a writer runs in every batch. */
static int writer_prepare(struct writer *w)
{
	const struct {
		sqlite3_stmt **st;
		const char *sql;
	} stmts[] = {
	    {&w->last,
	     "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1"},
	    {&w->last_seal,
	     "SELECT seq, hash FROM seals ORDER BY seq DESC LIMIT 1"},
	    {&w->ref_time, "SELECT time_ns FROM records WHERE seq >= ?"
			   " ORDER BY seq LIMIT 1"},
	    {&w->insert,
	     "INSERT INTO records(seq, " RECORD_COLUMNS ", hash)"
	     " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
	    {&w->insert_seal, "INSERT INTO seals(seq, time_ns, hash, signature)"
			      " VALUES(?, ?, ?, ?)"},
	};
	int rc = 0;

	for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]) && !rc; i++)
		rc = sql_rc(sqlite3_prepare_v2(w->db, stmts[i].sql, -1,
					       stmts[i].st, NULL));
	return rc;
}

/*
 * Open HOME/audit.db for appending with the key in HOME/audit.key.
 * -EPROTO if the db is not an audit log of this format, -EKEYREJECTED if
 * the key is not the one whose public half meta holds.
 */
static int writer_open(struct writer *w, const char *home)
{
	char format[16];
	EVP_PKEY *pub = NULL;
	int rc;

	memset(w, 0, sizeof(*w));
	rc = hasher_init(&w->hasher);
	if (!rc)
		rc = open_db(home, SQLITE_OPEN_READWRITE, &w->db);
	if (!rc)
		rc = exec(w->db, "PRAGMA synchronous=FULL");
	if (!rc) {
		rc = meta_get(w->db, "format", format, sizeof(format));
		if (rc == -ENOENT || (!rc && strcmp(format, AUDIT_FORMAT)))
			rc = -EPROTO;
	}
	if (!rc)
		rc = meta_public_key(w->db, &pub);
	if (!rc)
		rc = key_file_load(home, &w->key);
	if (!rc && !same_public_key(pub, w->key))
		rc = -EKEYREJECTED;
	EVP_PKEY_free(pub);
	if (rc)
		goto out_release;
	rc = writer_prepare(w);
	if (!rc)
		return 0;
out_release:
	writer_release(w);
	return rc;
}

/*
 * Copy the hash in column col of st's row; a hash that is not one cannot
 * be continued (-EBADMSG).
 */
static int copy_hash(sqlite3_stmt *st, int col, uint8_t hash[HASH_LEN])
{
	if (sqlite3_column_bytes(st, col) != HASH_LEN)
		return -EBADMSG;
	memcpy(hash, sqlite3_column_blob(st, col), HASH_LEN);
	return 0;
}

/*
 * Step a prepared statement that returns at most one row; the caller
 * resets it after reading the row (it is reset here on error).
 */
static int step_once(sqlite3_stmt *st, bool *row)
{
	int rc = sqlite3_step(st);

	*row = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	sqlite3_reset(st);
	return sql_rc(rc);
}

/*
 * Inside a write transaction: the seq and hash the chain goes on from (the
 * last record's, or the last seal's when a prune removed every record up
 * to it), the last seal's seq and the sealing rule's reference time
 * (have_ref false when no record is at or after the last seal).
 */
static int chain_tail(struct writer *w, uint64_t *seq, uint8_t hash[HASH_LEN],
		      uint64_t *sealed, int64_t *ref, bool *have_ref)
{
	bool row;
	int rc;

	*seq = 0;
	*sealed = 0;
	memset(hash, 0, HASH_LEN);
	rc = step_once(w->last, &row);
	if (rc)
		return rc;
	if (row) {
		*seq = (uint64_t)sqlite3_column_int64(w->last, 0);
		rc = copy_hash(w->last, 1, hash);
	}
	sqlite3_reset(w->last);
	if (!rc)
		rc = step_once(w->last_seal, &row);
	if (rc)
		return rc;
	if (row)
		*sealed = (uint64_t)sqlite3_column_int64(w->last_seal, 0);
	if (row && *sealed > *seq) {
		*seq = *sealed;
		rc = copy_hash(w->last_seal, 1, hash);
	}
	sqlite3_reset(w->last_seal);
	if (rc)
		return rc;
	sqlite3_bind_int64(w->ref_time, 1, (int64_t)*sealed);
	rc = step_once(w->ref_time, &row);
	if (rc)
		return rc;
	*have_ref = row;
	if (row)
		*ref = sqlite3_column_int64(w->ref_time, 0);
	sqlite3_reset(w->ref_time);
	return 0;
}

/* Insert r with its chain hash; 0 or -errno. */
static int insert_record(struct writer *w, const struct rec *r,
			 const uint8_t hash[HASH_LEN])
{
	sqlite3_stmt *st = w->insert;
	int rc;

	sqlite3_bind_int64(st, 1, (int64_t)r->seq);
	for (size_t i = 0; i < NFIELDS; i++) {
		int col = (int)i + 2;

		if (fields[i].text) {
			const char *s = ev_str(&r->ev, i);

			if (s)
				sqlite3_bind_text(st, col, s, (int)r->len[i],
						  SQLITE_STATIC);
			else
				sqlite3_bind_null(st, col);
		} else if (ev_int(&r->ev, i) == AUDIT_NULL) {
			sqlite3_bind_null(st, col);
		} else {
			sqlite3_bind_int64(st, col, ev_int(&r->ev, i));
		}
	}
	sqlite3_bind_blob(st, (int)NFIELDS + 2, hash, HASH_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sql_rc(rc);
}

/* Sign and insert the seal of kind at seq over hash; 0 or -errno. */
static int insert_seal(struct writer *w, enum seal_kind kind, uint64_t seq,
		       const uint8_t hash[HASH_LEN])
{
	uint8_t sig[SIGNATURE_LEN];
	sqlite3_stmt *st = w->insert_seal;
	int rc;

	rc = seal_sign(w->key, kind, seq, hash, sig);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, (int64_t)seq);
	sqlite3_bind_int64(st, 2, now_ns(CLOCK_REALTIME));
	sqlite3_bind_blob(st, 3, hash, HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, sig, SIGNATURE_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sql_rc(rc);
}

/* When append_records seals what it appended. */
enum seal_when {
	SEAL_WHEN_DUE, /* as the sealing rule asks */
	SEAL_NOW,      /* now, if anything is unsealed */
	SEAL_AS_PRUNE, /* now, with a prune seal: recs is the audit.prune */
};

/*
 * Inside a write transaction: continue the chain on disk with recs[0..n)
 * (their seq set here), then seal as when says.  Sets w->seal_due for when
 * the transaction commits.  0 or -errno.
 */
static int append_records(struct writer *w, struct rec *recs, size_t n,
			  enum seal_when when)
{
	uint8_t hash[HASH_LEN], next[HASH_LEN];
	uint64_t seq, sealed;
	int64_t ref = 0, latest = now_ns(CLOCK_REALTIME);
	bool have_ref, seal;
	int rc;

	rc = chain_tail(w, &seq, hash, &sealed, &ref, &have_ref);
	for (size_t i = 0; i < n && !rc; i++) {
		recs[i].seq = ++seq;
		rc = hash_record(&w->hasher, hash, &recs[i], next);
		if (!rc)
			rc = insert_record(w, &recs[i], next);
		memcpy(hash, next, HASH_LEN);
		if (recs[i].ev.time_ns > latest)
			latest = recs[i].ev.time_ns;
	}
	if (rc)
		return rc;
	if (!have_ref && n)
		ref = recs[0].ev.time_ns;
	seal = seq > sealed &&
	       (when != SEAL_WHEN_DUE || seq - sealed >= AUDIT_SEAL_RECORDS ||
		past_seal_time(latest, ref));
	if (seal)
		rc = insert_seal(
		    w, when == SEAL_AS_PRUNE ? SEAL_PRUNE : SEAL_RECORDS, seq,
		    hash);
	if (seal || seq == sealed || ref > INT64_MAX - AUDIT_SEAL_NS)
		w->seal_due = 0;
	else
		w->seal_due = ref + AUDIT_SEAL_NS;
	return rc;
}

/*
 * Keep SQLite's message for the failure of w's transaction, roll it back,
 * and restore the seal_due of before it.
 */
static void abandon(struct writer *w, int64_t seal_due)
{
	snprintf(w->why, sizeof(w->why), "%s", sqlite3_errmsg(w->db));
	rollback(w->db);
	w->seal_due = seal_due;
}

/*
 * In one transaction: append_records.  Returns 0, or -errno with
 * everything rolled back and w->why set.
 */
static int write_batch(struct writer *w, struct rec *recs, size_t n,
		       enum seal_when when)
{
	int64_t seal_due = w->seal_due;
	int rc = exec(w->db, "BEGIN IMMEDIATE");

	if (!rc)
		rc = append_records(w, recs, n, when);
	if (!rc)
		rc = exec(w->db, "COMMIT");
	if (rc)
		abandon(w, seal_due);
	return rc;
}

/* Fill r from ev, stamping the time; -EINVAL if a string is too long. */
static int rec_from_event(struct rec *r, const struct audit_event *ev)
{
	memset(r, 0, sizeof(*r));
	r->ev = *ev;
	if (r->ev.time_ns == 0 || r->ev.time_ns == AUDIT_NULL)
		r->ev.time_ns = now_ns(CLOCK_REALTIME);
	for (size_t i = 0; i < NFIELDS; i++) {
		const char *s = fields[i].text ? ev_str(ev, i) : NULL;

		if (!s)
			continue;
		r->len[i] = strlen(s);
		if (r->len[i] > STRING_MAX)
			return -EINVAL;
	}
	return 0;
}

int audit_create(const char *home, int retention_days)
{
	char db_path[PATH_MAX], key_path[PATH_MAX], value[64];
	char hex[2 * PUBLIC_KEY_LEN + 1];
	uint8_t pub[PUBLIC_KEY_LEN];
	size_t publen = sizeof(pub);
	EVP_PKEY *key = NULL;
	sqlite3 *db = NULL;
	int fd, rc;

	if (retention_days < 1 || retention_days > AUDIT_RETENTION_DAYS_MAX)
		return -EINVAL;
	rc = home_path(home, AUDIT_DB_FILE, db_path);
	if (!rc)
		rc = home_path(home, AUDIT_KEY_FILE, key_path);
	if (rc)
		return rc;
	/* O_EXCL: refuse a log that is there; SQLite keeps the mode. */
	fd = open(db_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!key) {
		rc = -EIO;
		goto out_unlink_db;
	}
	if (EVP_PKEY_get_raw_public_key(key, pub, &publen) != 1 ||
	    publen != sizeof(pub)) {
		rc = -EIO;
		goto out_free_key;
	}
	rc = key_file_create(key_path, key);
	if (rc)
		goto out_free_key;
	rc = open_db(home, SQLITE_OPEN_READWRITE, &db);
	if (!rc)
		rc = exec(db, "PRAGMA journal_mode=WAL");
	if (!rc)
		rc = exec(db, "PRAGMA synchronous=FULL");
	if (!rc)
		rc = exec(db, "BEGIN IMMEDIATE");
	if (!rc)
		rc = exec(db, schema_sql);
	if (!rc)
		rc = meta_set(db, "format", AUDIT_FORMAT);
	hex_encode(pub, sizeof(pub), hex);
	if (!rc)
		rc = meta_set(db, "public_key", hex);
	snprintf(value, sizeof(value), "%d", retention_days);
	if (!rc)
		rc = meta_set(db, "retention_days", value);
	snprintf(value, sizeof(value), "%lld",
		 (long long)now_ns(CLOCK_REALTIME));
	if (!rc)
		rc = meta_set(db, "created_ns", value);
	if (!rc)
		rc = exec(db, "COMMIT");
	if (db)
		rollback(db);
	if (sqlite3_close(db) != SQLITE_OK && !rc)
		rc = -EIO;
	if (!rc)
		rc = fsync_dir(home, ".");
	if (!rc) {
		EVP_PKEY_free(key);
		return 0;
	}
	unlink(key_path);
out_free_key:
	EVP_PKEY_free(key);
out_unlink_db:
	unlink(db_path);
	/* SQLite may have left these beside it */
	if (strlen(db_path) + 4 < sizeof(db_path)) {
		strcat(db_path, "-wal");
		unlink(db_path);
		strcpy(db_path + strlen(db_path) - 4, "-shm");
		unlink(db_path);
	}
	return rc;
}

/*
 * Run sql with its parameter ?1, if it has one, bound to arg.  out and
 * found are both NULL, or else *out is the first column of the first row
 * and *found says whether there was such a row with a value not null.
 */
static int run_bound(sqlite3 *db, const char *sql, int64_t arg, int64_t *out,
		     bool *found)
{
	sqlite3_stmt *st;
	int rc;

	if (found)
		*found = false;
	rc = sql_rc(sqlite3_prepare_v2(db, sql, -1, &st, NULL));
	if (rc)
		return rc;
	if (sqlite3_bind_parameter_count(st) > 0)
		sqlite3_bind_int64(st, 1, arg);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && out &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*out = sqlite3_column_int64(st, 0);
		*found = true;
	}
	sqlite3_finalize(st);
	return sql_rc(rc);
}

/* meta's integer value for key; -ENOENT if absent, -EPROTO if not one. */
static int meta_get_int(sqlite3 *db, const char *key, int64_t *out)
{
	char value[32], *end;
	long long v;
	int rc = meta_get(db, key, value, sizeof(value));

	if (rc)
		return rc;
	errno = 0;
	v = strtoll(value, &end, 10);
	if (errno || end == value || *end)
		return -EPROTO;
	*out = v;
	return 0;
}

/* meta's retention_days; -EPROTO unless 1 to AUDIT_RETENTION_DAYS_MAX. */
static int meta_retention_days(sqlite3 *db, int *days)
{
	int64_t v;
	int rc = meta_get_int(db, "retention_days", &v);

	if (rc == -ENOENT || (!rc && (v < 1 || v > AUDIT_RETENTION_DAYS_MAX)))
		rc = -EPROTO;
	if (!rc)
		*days = (int)v;
	return rc;
}

/*
 * Whether ev, record seq, is an audit.prune record, and if so the range of
 * seqs it declares removed: [offset, offset + length), all before seq.
 * *from is 0 for an audit.prune record without such a range.
 */
static bool prune_declared(const struct audit_event *ev, uint64_t seq,
			   uint64_t *from, uint64_t *to)
{
	*from = 0;
	*to = 0;
	if (!ev->event || strcmp(ev->event, AUDIT_PRUNE_EVENT))
		return false;
	if (ev->offset >= 1 && ev->length >= 1 &&
	    ev->offset <= INT64_MAX - ev->length &&
	    (uint64_t)(ev->offset + ev->length) <= seq) {
		*from = (uint64_t)ev->offset;
		*to = (uint64_t)(ev->offset + ev->length) - 1;
	}
	return true;
}

/* The state of a verify walk, inside one transaction on db. */
struct verify {
	sqlite3 *db;
	EVP_PKEY *pub; /* checks the seals' signatures */
	struct hasher *hasher;
	struct audit_verdict *out;
	uint64_t first; /* the first record kept; 0 if none */
	/* hash[first - 1] is known (anchor): first is 1, or a good seal is
	 * at first - 1 */
	bool anchored;
	uint8_t anchor[HASH_LEN];
	/* the records before first went by a prune that an authentic
	 * audit.prune record declares */
	bool declared;
	uint64_t good; /* the last seal found good (or the anchor) */
};

static int bad(struct verify *v, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record the first problem found; returns -EBADMSG. */
static int bad(struct verify *v, uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	v->out->first_bad = seq;
	va_start(ap, fmt);
	vsnprintf(v->out->why, sizeof(v->out->why), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* "record 7" or "records 7 to 9" into buf; returns buf. */
static const char *seq_range(uint64_t from, uint64_t to, char *buf, size_t len)
{
	if (from == to)
		snprintf(buf, len, "record %llu", (unsigned long long)from);
	else
		snprintf(buf, len, "records %llu to %llu",
			 (unsigned long long)from, (unsigned long long)to);
	return buf;
}

/*
 * Whether the seal at seq is in the seals table with a good signature of
 * kind; *hash (if not NULL) is then what it seals.
 */
static int seal_good(struct verify *v, uint64_t seq, enum seal_kind kind,
		     uint8_t *hash, bool *good)
{
	sqlite3_stmt *st;
	int rc;

	*good = false;
	rc = sql_rc(sqlite3_prepare_v2(
	    v->db, "SELECT hash, signature FROM seals WHERE seq = ?", -1, &st,
	    NULL));
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, (int64_t)seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW &&
	    seal_signature_ok(v->pub, kind, seq, sqlite3_column_blob(st, 0),
			      (size_t)sqlite3_column_bytes(st, 0),
			      sqlite3_column_blob(st, 1),
			      (size_t)sqlite3_column_bytes(st, 1))) {
		*good = true;
		if (hash)
			memcpy(hash, sqlite3_column_blob(st, 0), HASH_LEN);
	}
	sqlite3_finalize(st);
	return sql_rc(rc);
}

/*
 * The seal at first - 1 that closes the pruned part: of the records, or of
 * an audit.prune record that a later prune removed.
 */
static int read_anchor(struct verify *v)
{
	uint64_t at = v->first - 1;
	int rc = seal_good(v, at, SEAL_RECORDS, v->anchor, &v->anchored);

	if (!rc && !v->anchored)
		rc = seal_good(v, at, SEAL_PRUNE, v->anchor, &v->anchored);
	return rc;
}

/* hash[seq - 1] as stored: record seq - 1's, or the anchor's. */
static int stored_hash_before(struct verify *v, uint64_t seq,
			      uint8_t hash[HASH_LEN], bool *found)
{
	sqlite3_stmt *st;
	int rc;

	*found = false;
	if (seq == v->first) {
		memcpy(hash, v->anchor, HASH_LEN);
		*found = v->anchored;
		return 0;
	}
	rc = sql_rc(sqlite3_prepare_v2(
	    v->db, "SELECT hash FROM records WHERE seq = ?", -1, &st, NULL));
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, (int64_t)seq - 1);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*found = !copy_hash(st, 0, hash);
	sqlite3_finalize(st);
	return sql_rc(rc);
}

/*
 * *to: the last seq that record seq declares pruned, if it is an authentic
 * audit.prune record: its contents hash, from the stored hash before it,
 * to its stored hash, which its own prune seal signs.  0 otherwise.
 * Authentic whatever the rest of the log, since only the key makes a
 * prune seal.
 */
static int read_declaration(struct verify *v, uint64_t seq, uint64_t *to)
{
	uint8_t prev[HASH_LEN], hash[HASH_LEN], sealed[HASH_LEN];
	bool found = false, signed_ok = false;
	uint64_t from, end = 0;
	sqlite3_stmt *st;
	struct rec r;
	int rc;

	*to = 0;
	rc = stored_hash_before(v, seq, prev, &found);
	if (rc || !found)
		return rc;
	rc = sql_rc(sqlite3_prepare_v2(v->db,
				       "SELECT seq, " RECORD_COLUMNS
				       ", hash FROM records WHERE seq = ?",
				       -1, &st, NULL));
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, (int64_t)seq);
	rc = sqlite3_step(st);
	found =
	    rc == SQLITE_ROW && rec_from_row(st, &r) < 0 &&
	    prune_declared(&r.ev, seq, &from, &end) && from &&
	    !hash_record(v->hasher, prev, &r, hash) &&
	    sqlite3_column_bytes(st, (int)NFIELDS + 1) == HASH_LEN &&
	    !memcmp(sqlite3_column_blob(st, (int)NFIELDS + 1), hash, HASH_LEN);
	sqlite3_finalize(st);
	rc = sql_rc(rc);
	if (!rc && found)
		rc = seal_good(v, seq, SEAL_PRUNE, sealed, &signed_ok);
	if (!rc && signed_ok && !memcmp(sealed, hash, HASH_LEN))
		*to = end;
	return rc;
}

/*
 * Where the chain starts: at record 1 from 32 zero bytes; or, when the
 * records before the first kept one are gone, from the seal that closes
 * them, once the audit.prune record that meta's last_prune names has been
 * found authentic and to declare exactly those.  When it is not, the
 * chain is still walked (from the first record's stored hash if no seal
 * anchors it), and the missing records are reported after it, unless the
 * walk found something.
 */
static int verify_start(struct verify *v)
{
	int64_t first = 0, prune_seq = 0;
	uint64_t to = 0;
	char what[64];
	bool found;
	int rc;

	memset(v->anchor, 0, HASH_LEN);
	v->anchored = true;
	v->declared = false;
	rc =
	    run_bound(v->db, "SELECT min(seq) FROM records", 0, &first, &found);
	/* A seq below 1 is the walk's to report. */
	v->first = !found ? 0 : first > 1 ? (uint64_t)first : 1;
	if (rc || v->first <= 1)
		return rc;
	rc = read_anchor(v);
	if (!rc && !meta_get_int(v->db, "last_prune", &prune_seq) &&
	    prune_seq >= first)
		rc = read_declaration(v, (uint64_t)prune_seq, &to);
	if (rc || !to)
		return rc;
	if (to + 1 < v->first)
		return bad(v, to + 1,
			   "%s missing: the audit.prune record %llu removed "
			   "records only up to %llu",
			   seq_range(to + 1, v->first - 1, what, sizeof(what)),
			   (unsigned long long)prune_seq,
			   (unsigned long long)to);
	if (to + 1 > v->first)
		return bad(v, v->first,
			   "%s should be gone: the audit.prune record %llu "
			   "removed records up to %llu",
			   seq_range(v->first, to, what, sizeof(what)),
			   (unsigned long long)prune_seq,
			   (unsigned long long)to);
	if (!v->anchored)
		return bad(v, v->first,
			   "record %llu: no good seal at %llu closes the "
			   "pruned part",
			   (unsigned long long)v->first,
			   (unsigned long long)v->first - 1);
	v->declared = true;
	return 0;
}

/*
 * After a walk that found nothing: records missing at the start that no
 * authentic audit.prune record declares.
 */
static int verify_finish(struct verify *v)
{
	char what[64];

	if (v->first <= 1 || v->declared)
		return 0;
	return bad(v, 1, "%s missing: no audit.prune record removed them",
		   seq_range(1, v->first - 1, what, sizeof(what)));
}

/*
 * The seals cursor of a verify walk: the current seal's row in st, or
 * none once they are all read.
 */
static int next_seal(sqlite3_stmt *st, bool *row)
{
	int rc = sqlite3_step(st);

	*row = rc == SQLITE_ROW;
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sql_rc(rc);
}

/*
 * Check one seal of kind, whose row is in seals, against the recomputed
 * chain at seq.
 */
static int check_seal(struct verify *v, sqlite3_stmt *seals,
		      enum seal_kind kind, uint64_t seq,
		      const uint8_t chain[HASH_LEN])
{
	const void *hash = sqlite3_column_blob(seals, 1);
	size_t hashlen = (size_t)sqlite3_column_bytes(seals, 1);
	const void *sig = sqlite3_column_blob(seals, 2);
	size_t siglen = (size_t)sqlite3_column_bytes(seals, 2);

	if (!seal_signature_ok(v->pub, kind, seq, hash, hashlen, sig, siglen))
		return bad(v, seq, "seal at %llu: bad signature%s",
			   (unsigned long long)seq,
			   kind == SEAL_PRUNE ? " (of a prune seal)" : "");
	/*
	 * The records up to here hash to what their stored hashes say, yet
	 * not to what was sealed: one of them was changed and the stored
	 * hashes recomputed.  Which one the seal cannot tell.
	 */
	if (memcmp(hash, chain, HASH_LEN))
		return bad(v, v->good + 1,
			   "seal at %llu: does not match the chain; records "
			   "%llu to %llu were altered and rehashed",
			   (unsigned long long)seq,
			   (unsigned long long)v->good + 1,
			   (unsigned long long)seq);
	return 0;
}

/*
 * Check record r (row of records) against the chain, which it moves on:
 * its stored hash must be what chain and its contents give, unless it is
 * the first record and no seal anchors it (its stored hash is then taken).
 */
static int check_record(struct verify *v, sqlite3_stmt *records,
			const struct rec *r, uint8_t chain[HASH_LEN])
{
	const void *stored = sqlite3_column_blob(records, (int)NFIELDS + 1);
	int storedlen = sqlite3_column_bytes(records, (int)NFIELDS + 1);
	uint8_t next[HASH_LEN];
	int rc;

	rc = hash_record(v->hasher, chain, r, next);
	if (rc)
		return rc;
	if (r->seq == v->first && !v->anchored && storedlen == HASH_LEN)
		memcpy(next, stored, HASH_LEN);
	if (storedlen != HASH_LEN || memcmp(stored, next, HASH_LEN))
		return bad(v, r->seq,
			   "record %llu: hash does not match its contents",
			   (unsigned long long)r->seq);
	memcpy(chain, next, HASH_LEN);
	return 0;
}

/*
 * Whether audit.prune record seq, which declares records from on removed
 * (0: no valid range), is in place: after a prune.  Its seal is the
 * walk's to check.
 */
static int check_prune_record(struct verify *v, uint64_t seq, uint64_t from)
{
	if (v->first == 1)
		return bad(v, seq,
			   "record %llu: an audit.prune record, yet no record "
			   "is missing before it",
			   (unsigned long long)seq);
	if (!from)
		return bad(v, seq,
			   "record %llu: an audit.prune record without a valid "
			   "range",
			   (unsigned long long)seq);
	return 0;
}

/*
 * The walk of verify_walk over records (rows "seq, RECORD_COLUMNS, hash")
 * and seals (rows "seq, hash, signature"), both in seq order.
 */
static int walk_rows(struct verify *v, sqlite3_stmt *records,
		     sqlite3_stmt *seals)
{
	uint8_t chain[HASH_LEN];
	uint64_t prev = v->first ? v->first - 1 : 0, from, to;
	int64_t ref = 0;
	bool seal_row, prune;
	struct rec r;
	int rc, step, badfield;

	memcpy(chain, v->anchor, HASH_LEN);
	v->good = prev;
	rc = next_seal(seals, &seal_row);
	while (!rc && (step = sqlite3_step(records)) == SQLITE_ROW) {
		badfield = rec_from_row(records, &r);
		if ((int64_t)r.seq < 1)
			return bad(v, 0,
				   "record %lld: sequence numbers start "
				   "at 1",
				   (long long)r.seq);
		if (r.seq != prev + 1)
			return bad(v, prev + 1, "record %llu missing",
				   (unsigned long long)prev + 1);
		v->out->records++;
		if (badfield >= 0)
			return bad(v, r.seq, "record %llu: %s is malformed",
				   (unsigned long long)r.seq,
				   fields[badfield].name);
		prune = prune_declared(&r.ev, r.seq, &from, &to);
		rc = check_record(v, records, &r, chain);
		if (!rc && prune)
			rc = check_prune_record(v, r.seq, from);
		if (rc)
			return rc;
		if (r.seq == v->first)
			ref = r.ev.time_ns;
		if (seal_row && sqlite3_column_int64(seals, 0) < 1)
			return bad(v, 0, "seal at %lld: no such record",
				   (long long)sqlite3_column_int64(seals, 0));
		if (seal_row &&
		    (uint64_t)sqlite3_column_int64(seals, 0) == r.seq) {
			rc = check_seal(v, seals,
					prune ? SEAL_PRUNE : SEAL_RECORDS,
					r.seq, chain);
			if (rc)
				return rc;
			v->good = r.seq;
			ref = r.ev.time_ns;
			rc = next_seal(seals, &seal_row);
		} else if (prune) {
			return bad(v, r.seq,
				   "record %llu: an audit.prune record "
				   "without its seal",
				   (unsigned long long)r.seq);
		} else if (!seal_row) {
			/* After the last seal: only what a crash can leave. */
			if (r.seq - v->good >= AUDIT_SEAL_RECORDS)
				return bad(v, r.seq,
					   "record %llu: %d records or more "
					   "after the last seal",
					   (unsigned long long)r.seq,
					   AUDIT_SEAL_RECORDS);
			if (past_seal_time(r.ev.time_ns, ref))
				return bad(v, r.seq,
					   "record %llu: unsealed, and later "
					   "than a crash can leave",
					   (unsigned long long)r.seq);
		}
		prev = r.seq;
	}
	if (rc)
		return rc;
	if (step != SQLITE_DONE)
		return sql_rc(step);
	if (seal_row)
		return bad(v, prev + 1, "seal at %lld: record %llu missing",
			   (long long)sqlite3_column_int64(seals, 0),
			   (unsigned long long)prev + 1);
	return 0;
}

/*
 * From where verify_start left it, check the chain through record upto
 * (INT64_MAX for all) with the seals up to there, then verify_finish.
 */
static int verify_walk(struct verify *v, int64_t upto)
{
	sqlite3_stmt *records = NULL, *seals = NULL;
	int rc;

	rc = sql_rc(sqlite3_prepare_v2(v->db,
				       "SELECT seq, " RECORD_COLUMNS
				       ", hash FROM records WHERE seq <= ?"
				       " ORDER BY seq",
				       -1, &records, NULL));
	if (!rc)
		rc = sql_rc(sqlite3_prepare_v2(
		    v->db,
		    "SELECT seq, hash, signature FROM seals"
		    " WHERE seq >= ? AND seq <= ? ORDER BY seq",
		    -1, &seals, NULL));
	if (!rc) {
		sqlite3_bind_int64(records, 1, upto);
		/* after a prune, the anchor and what is before it are done */
		sqlite3_bind_int64(
		    seals, 1, v->first > 1 ? (int64_t)v->first : INT64_MIN);
		sqlite3_bind_int64(seals, 2, upto);
		rc = walk_rows(v, records, seals);
	}
	sqlite3_finalize(records);
	sqlite3_finalize(seals);
	return rc ? rc : verify_finish(v);
}

/*
 * Inside a write transaction: the seal *upto that closes the part to
 * prune, 0 if none.  It is the last seal, at or after the first record
 * *first, such that every record up to it is stamped before cutoff; but
 * no further than AUDIT_PRUNE_RECORDS records on, unless the first such
 * seal is, nor more than AUDIT_PRUNE_SEALS segments on, each of which the
 * prune checks a signature of.  Reads only the records it would remove,
 * and one more segment.
 */
static int prune_point(sqlite3 *db, int64_t cutoff, uint64_t *first,
		       uint64_t *upto)
{
	sqlite3_stmt *seals = NULL, *young = NULL;
	int64_t start = 0, limit, prev, seq;
	int rc, segments = 0;
	bool found;

	*upto = 0;
	rc = run_bound(db, "SELECT min(seq) FROM records", 0, &start, &found);
	if (rc || !found || start < 1)
		return rc;
	*first = (uint64_t)start;
	limit = start - 1 + AUDIT_PRUNE_RECORDS;
	rc = sql_rc(sqlite3_prepare_v2(
	    db, "SELECT seq FROM seals WHERE seq >= ? ORDER BY seq", -1, &seals,
	    NULL));
	if (!rc)
		rc = sql_rc(sqlite3_prepare_v2(
		    db,
		    "SELECT 1 FROM records WHERE seq > ? AND seq <= ?"
		    " AND time_ns >= ? LIMIT 1",
		    -1, &young, NULL));
	if (rc)
		goto out_finalize;
	sqlite3_bind_int64(seals, 1, start);
	prev = start - 1;
	while (segments < AUDIT_PRUNE_SEALS &&
	       (rc = sqlite3_step(seals)) == SQLITE_ROW) {
		seq = sqlite3_column_int64(seals, 0);
		if (seq > limit && *upto)
			break;
		sqlite3_bind_int64(young, 1, prev);
		sqlite3_bind_int64(young, 2, seq);
		sqlite3_bind_int64(young, 3, cutoff);
		rc = sqlite3_step(young);
		sqlite3_reset(young);
		if (rc != SQLITE_DONE)
			break;
		*upto = (uint64_t)seq;
		prev = seq;
		segments++;
		if (seq > limit)
			break;
	}
	rc = sql_rc(rc);
out_finalize:
	sqlite3_finalize(seals);
	sqlite3_finalize(young);
	return rc;
}

/*
 * Check the records up to upto, which a prune is about to remove, as
 * audit_verify would: a prune must never hide tampering.
 */
static int prune_check(struct writer *w, uint64_t upto,
		       struct audit_verdict *verdict)
{
	struct verify v = {
	    .db = w->db, .pub = w->key, .hasher = &w->hasher, .out = verdict};
	int rc;

	memset(verdict, 0, sizeof(*verdict));
	rc = verify_start(&v);
	if (!rc)
		rc = verify_walk(&v, (int64_t)upto);
	return rc;
}

/*
 * Delete the records up to upto and the seals before it, with the triggers
 * that refuse it dropped for this transaction only (see atop).
 */
static int remove_through(sqlite3 *db, uint64_t upto)
{
	int rc = exec(db, "DROP TRIGGER records_no_delete;"
			  "DROP TRIGGER seals_no_delete");

	if (!rc)
		rc = run_bound(db, "DELETE FROM records WHERE seq <= ?",
			       (int64_t)upto, NULL, NULL);
	if (!rc)
		rc = run_bound(db, "DELETE FROM seals WHERE seq < ?",
			       (int64_t)upto, NULL, NULL);
	if (!rc)
		rc = exec(db, NO_DELETE_TRIGGERS);
	return rc;
}

/*
 * Append the audit.prune record of records first..upto, by by, and seal
 * it; meta's last_prune names it for audit_verify.
 */
static int append_prune_record(struct writer *w, const struct audit_event *by,
			       uint64_t first, uint64_t upto, int days,
			       int64_t cutoff)
{
	struct audit_event ev = AUDIT_EVENT_INIT(AUDIT_PRUNE_EVENT, "ok");
	char when[40], reason[96], seq[24];
	struct rec r;
	int rc;

	snprintf(reason, sizeof(reason), "retention %d days: older than %s",
		 days, time_format_utc(cutoff, when, sizeof(when)));
	ev.uid = by->uid;
	ev.pid = by->pid;
	ev.comm = by->comm;
	ev.offset = (int64_t)first;
	ev.length = (int64_t)(upto - first + 1);
	ev.reason = reason;
	rc = rec_from_event(&r, &ev);
	if (!rc)
		rc = append_records(w, &r, 1, SEAL_AS_PRUNE);
	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)r.seq);
	if (!rc)
		rc = meta_set(w->db, "last_prune", seq);
	return rc;
}

/*
 * One prune transaction (see atop): out says what it removed, nothing if
 * nothing was old enough.  Returns 0, or -errno with everything rolled
 * back and w->why set; -EBADMSG if what it would remove does not verify.
 */
static int prune_step(struct writer *w, const struct audit_event *by,
		      struct audit_pruned *out)
{
	int64_t seal_due = w->seal_due, now = now_ns(CLOCK_REALTIME), cutoff;
	uint64_t first = 0, upto = 0;
	struct audit_verdict verdict = {0};
	int days = 0, rc;

	memset(out, 0, sizeof(*out));
	rc = exec(w->db, "BEGIN IMMEDIATE");
	if (!rc)
		rc = meta_retention_days(w->db, &days);
	cutoff = now - days * NS_PER_DAY;
	if (!rc)
		rc = prune_point(w->db, cutoff, &first, &upto);
	if (!rc && upto)
		rc = prune_check(w, upto, &verdict);
	if (!rc && upto)
		rc = remove_through(w->db, upto);
	if (!rc && upto)
		rc = append_prune_record(w, by, first, upto, days, cutoff);
	if (!rc)
		rc = exec(w->db, "COMMIT");
	if (rc) {
		abandon(w, seal_due);
		if (rc == -EBADMSG && verdict.why[0])
			snprintf(w->why, sizeof(w->why),
				 "records to prune do not verify: %s",
				 verdict.why);
		return rc;
	}
	out->retention_days = days;
	if (upto) {
		out->records = upto - first + 1;
		out->first = first;
		out->last = upto;
	}
	return 0;
}

int audit_prune(const char *home, const struct audit_event *by,
		struct audit_pruned *out)
{
	struct audit_pruned step;
	struct writer w;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = writer_open(&w, home);
	if (rc)
		return rc;
	do {
		rc = prune_step(&w, by, &step);
		if (rc)
			snprintf(out->why, sizeof(out->why), "%s", w.why);
		if (rc || !step.records)
			break;
		if (!out->records)
			out->first = step.first;
		out->last = step.last;
		out->records += step.records;
	} while (step.records);
	out->retention_days = step.retention_days;
	writer_release(&w);
	return rc;
}

/*
 * Queued events live in a byte buffer: for each, a struct queued_event,
 * then its strings, each NUL-terminated, padded to 8 bytes.  Appenders fill
 * one buffer while the writer thread drains the other, so that in steady
 * state appending allocates nothing.
 */
struct queued_event {
	struct audit_event ev; /* string pointers unused */
	uint32_t size;	       /* of this entry, strings and padding */
	uint32_t len[NFIELDS]; /* string lengths, NO_STRING for NULL */
};

struct queue {
	unsigned char *buf;
	size_t used, cap;
	size_t count;
};

struct audit_log {
	struct writer w;
	char path[PATH_MAX]; /* of audit.db, for messages and statvfs */
	struct rec *recs;    /* BATCH_MAX, the writer's */
	struct queue spare;  /* the writer's while it drains */
	pthread_t thread;
	struct caller self;	  /* whom the writer's prune records name */
	int64_t next_space_check; /* CLOCK_MONOTONIC, the writer's */
	int64_t next_prune;	  /* CLOCK_MONOTONIC, the writer's */
	atomic_bool low_space;	  /* audit_log_low_space; the writer sets it */

	pthread_mutex_t mu;
	pthread_cond_t work;	/* to the writer: queued, waited or stop */
	pthread_cond_t done;	/* to waiters: committed moved, or failed */
	pthread_cond_t drained; /* to appenders: the queue was taken */
	struct queue queue;
	int64_t oldest_ns; /* CLOCK_MONOTONIC when the queue became non-empty */
	uint64_t issued;   /* last ticket given out */
	uint64_t taken;	   /* last ticket the writer took from the queue */
	uint64_t committed; /* every ticket up to here is durable */
	uint64_t wanted;    /* highest ticket waited for */
	bool stopping;
	atomic_bool failed;
};

/* Make room for size more bytes in q; 0 or -ENOMEM. */
static int queue_reserve(struct queue *q, size_t size)
{
	size_t cap = q->cap ? q->cap : 65536;
	unsigned char *grown;

	if (q->used + size <= q->cap)
		return 0;
	while (cap < q->used + size)
		cap *= 2;
	grown = realloc(q->buf, cap);
	if (!grown)
		return -ENOMEM;
	q->buf = grown;
	q->cap = cap;
	return 0;
}

/* Called with mu held: latch failed, drop the queue, wake everyone. */
static void latch_failed(struct audit_log *log, int rc)
{
	atomic_store(&log->failed, true);
	log->queue.used = 0;
	log->queue.count = 0;
	pthread_cond_broadcast(&log->done);
	pthread_cond_broadcast(&log->drained);
	fprintf(stderr,
		"govfs: audit log %s cannot be written (%s: %s); refusing "
		"access until restart\n",
		log->path, strerror(-rc), log->w.why[0] ? log->w.why : "-");
}

/* A CLOCK_MONOTONIC time in ns as pthread_cond_timedwait takes it. */
static struct timespec mono_deadline(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000,
			      .tv_nsec = ns % 1000000000};

	return ts;
}

/*
 * Fold read ev into the record before it when both came through the same
 * handle, both were served in full (no refusal, no short read) and ev
 * starts where the other's bytes end.  The strings of both are equal:
 * one handle has one path, caller and revision.
 */
static bool merge_read(struct rec *prev, const struct audit_event *ev)
{
	const struct audit_event *p = &prev->ev;

	if (!ev->handle || ev->handle != p->handle ||
	    strcmp(ev->event, "read") || strcmp(p->event, "read") ||
	    strcmp(ev->result, "ok") || strcmp(p->result, "ok") ||
	    ev->bytes != ev->length || p->bytes != p->length ||
	    ev->offset != p->offset + p->bytes)
		return false;
	prev->ev.length += ev->length;
	prev->ev.bytes += ev->bytes;
	return true;
}

/*
 * Write the events of q in transactions of up to BATCH_MAX, moving
 * committed on after each.  Called without mu.
 */
static int write_queue(struct audit_log *log, struct queue *q)
{
	size_t pos = 0, left = q->count;
	int rc = 0;

	while (left && !rc) {
		size_t n = left < BATCH_MAX ? left : BATCH_MAX;
		size_t m = 0; /* records: events less the merged reads */

		for (size_t k = 0; k < n; k++) {
			const struct queued_event *e =
			    (const void *)(q->buf + pos);
			const char *s = (const char *)(e + 1);
			struct rec *r = &log->recs[m];

			r->ev = e->ev;
			for (size_t i = 0; i < NFIELDS; i++) {
				if (!fields[i].text)
					continue;
				r->len[i] = 0;
				ev_set_str(&r->ev, i, NULL);
				if (e->len[i] == NO_STRING)
					continue;
				r->len[i] = e->len[i];
				ev_set_str(&r->ev, i, s);
				s += e->len[i] + 1;
			}
			pos += e->size;
			if (!m || !merge_read(&log->recs[m - 1], &r->ev))
				m++;
		}
		rc = write_batch(&log->w, log->recs, m, SEAL_WHEN_DUE);
		if (rc)
			break;
		left -= n;
		pthread_mutex_lock(&log->mu);
		log->committed += n;
		pthread_cond_broadcast(&log->done);
		pthread_mutex_unlock(&log->mu);
	}
	q->used = 0;
	q->count = 0;
	return rc;
}

uint64_t audit_low_space_limit(uint64_t size)
{
	uint64_t share = size / 100 * AUDIT_LOW_SPACE_PERCENT;

	return share > AUDIT_LOW_SPACE_MIN_BYTES ? share
						 : AUDIT_LOW_SPACE_MIN_BYTES;
}

/*
 * Look at the free space of the file system that holds audit.db; note and
 * say when it becomes low, and when it is back an eighth above the limit
 * (so that a log hovering at the limit does not repeat itself).
 */
static void check_space(struct audit_log *log)
{
	bool low = atomic_load(&log->low_space);
	uint64_t avail, limit;
	struct statvfs sv;

	if (statvfs(log->path, &sv))
		return;
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	limit = audit_low_space_limit((uint64_t)sv.f_blocks * sv.f_frsize);
	if (!low && avail < limit) {
		atomic_store(&log->low_space, true);
		fprintf(stderr,
			"govfs: audit log %s: %llu MiB free on its file "
			"system, under %llu MiB; once it is full, opens and "
			"reads fail with EIO\n",
			log->path, (unsigned long long)(avail >> 20),
			(unsigned long long)(limit >> 20));
	} else if (low && avail >= limit + limit / 8) {
		atomic_store(&log->low_space, false);
		fprintf(stderr,
			"govfs: audit log %s: %llu MiB free again on its file "
			"system\n",
			log->path, (unsigned long long)(avail >> 20));
	}
}

/*
 * One prune step under this process's name; how long until the next:
 * AUDIT_BATCH_NS while there is more to prune (the queue is written in
 * between), AUDIT_PRUNE_NS once there is not or after a failure, which is
 * said on stderr and leaves the log as it was.
 */
static int64_t prune_some(struct audit_log *log)
{
	struct audit_event by = AUDIT_EVENT_INIT(AUDIT_PRUNE_EVENT, "ok");
	struct audit_pruned pruned;
	int rc;

	by.uid = log->self.uid;
	by.pid = log->self.pid;
	by.comm = log->self.comm;
	rc = prune_step(&log->w, &by, &pruned);
	if (rc)
		fprintf(stderr,
			"govfs: audit log %s: cannot prune (%s: %s); trying "
			"again in a day\n",
			log->path, strerror(-rc), log->w.why);
	return !rc && pruned.records ? AUDIT_BATCH_NS : AUDIT_PRUNE_NS;
}

/* When the writer's next housekeeping is due (CLOCK_MONOTONIC). */
static int64_t housekeeping_due(const struct audit_log *log)
{
	return log->next_space_check < log->next_prune ? log->next_space_check
						       : log->next_prune;
}

/* Called without mu: check the free space and prune, when each is due. */
static void housekeeping(struct audit_log *log)
{
	int64_t now = now_ns(CLOCK_MONOTONIC);

	if (now >= log->next_space_check) {
		check_space(log);
		log->next_space_check = now + AUDIT_SPACE_CHECK_NS;
	}
	if (now >= log->next_prune) {
		int64_t wait = prune_some(log);

		/* from the end of the step: the queue gets its turn */
		log->next_prune = now_ns(CLOCK_MONOTONIC) + wait;
	}
}

/*
 * Called with mu held and the queue empty: seal the tail if the sealing
 * rule says it is due, else sleep until there is work, the seal is due or
 * housekeeping is.
 */
static void writer_idle(struct audit_log *log)
{
	int64_t mono = now_ns(CLOCK_MONOTONIC), wake = housekeeping_due(log);
	int64_t seal_at;
	struct timespec ts;
	int rc;

	if (log->w.seal_due) {
		seal_at = mono + (log->w.seal_due - now_ns(CLOCK_REALTIME));
		if (seal_at <= mono) {
			pthread_mutex_unlock(&log->mu);
			rc = write_batch(&log->w, NULL, 0, SEAL_WHEN_DUE);
			pthread_mutex_lock(&log->mu);
			if (rc)
				latch_failed(log, rc);
			return;
		}
		if (seal_at < wake)
			wake = seal_at;
	}
	ts = mono_deadline(wake);
	pthread_cond_timedwait(&log->work, &log->mu, &ts);
}

/*
 * Called with mu held and events queued: let a batch gather until it is
 * due or someone waits, then write it.
 */
static void write_pending(struct audit_log *log)
{
	struct timespec ts = mono_deadline(log->oldest_ns + AUDIT_BATCH_NS);
	struct queue batch;
	int rc;

	while (!log->stopping && log->wanted <= log->taken &&
	       log->queue.count < BATCH_MAX &&
	       pthread_cond_timedwait(&log->work, &log->mu, &ts) != ETIMEDOUT)
		;
	batch = log->queue;
	log->queue = log->spare;
	log->taken = log->issued;
	pthread_cond_broadcast(&log->drained);
	pthread_mutex_unlock(&log->mu);
	rc = write_queue(log, &batch);
	pthread_mutex_lock(&log->mu);
	log->spare = batch;
	if (rc)
		latch_failed(log, rc);
}

/*
 * The writer thread: write queued events in batches, look after the free
 * space and pruning, seal the tail when due and at close; after a
 * failure, only wait for close.
 */
static void *writer_main(void *arg)
{
	struct audit_log *log = arg;
	int rc;

	pthread_mutex_lock(&log->mu);
	for (;;) {
		if (atomic_load(&log->failed)) {
			if (log->stopping)
				break;
			pthread_cond_wait(&log->work, &log->mu);
		} else if (!log->stopping &&
			   now_ns(CLOCK_MONOTONIC) >= housekeeping_due(log)) {
			pthread_mutex_unlock(&log->mu);
			housekeeping(log);
			pthread_mutex_lock(&log->mu);
		} else if (log->queue.count) {
			write_pending(log);
		} else if (!log->stopping) {
			writer_idle(log);
		} else {
			/* close: seal what is on disk, then leave */
			pthread_mutex_unlock(&log->mu);
			rc = write_batch(&log->w, NULL, 0, SEAL_NOW);
			pthread_mutex_lock(&log->mu);
			if (rc)
				latch_failed(log, rc);
			break;
		}
	}
	pthread_mutex_unlock(&log->mu);
	return NULL;
}

int audit_log_open(const char *home, struct audit_log **out)
{
	struct audit_log *log;
	pthread_condattr_t attr;
	sigset_t all, old;
	int rc;

	log = calloc(1, sizeof(*log));
	if (!log)
		return -ENOMEM;
	rc = home_path(home, AUDIT_DB_FILE, log->path);
	if (!rc)
		rc = writer_open(&log->w, home);
	if (rc)
		goto out_free_log;
	log->recs = calloc(BATCH_MAX, sizeof(*log->recs));
	if (!log->recs) {
		rc = -ENOMEM;
		goto out_release_writer;
	}
	pthread_mutex_init(&log->mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&log->work, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&log->done, NULL);
	pthread_cond_init(&log->drained, NULL);
	atomic_init(&log->failed, false);
	atomic_init(&log->low_space, false);
	caller_resolve(getuid(), getpid(), &log->self);
	log->next_space_check = now_ns(CLOCK_MONOTONIC);
	log->next_prune = log->next_space_check;
	/* The writer takes no signals: they belong to the daemon's main. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&log->thread, NULL, writer_main, log);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		goto out_destroy;
	*out = log;
	return 0;

out_destroy:
	pthread_cond_destroy(&log->drained);
	pthread_cond_destroy(&log->done);
	pthread_cond_destroy(&log->work);
	pthread_mutex_destroy(&log->mu);
	free(log->recs);
out_release_writer:
	writer_release(&log->w);
out_free_log:
	free(log);
	return rc;
}

int audit_log_append(struct audit_log *log, const struct audit_event *ev,
		     uint64_t *ticket)
{
	size_t len[NFIELDS] = {0}, size = sizeof(struct queued_event);
	int64_t time_ns = ev->time_ns;
	struct queued_event *e;
	char *s;
	uint64_t t;
	int rc = 0;

	if (time_ns == 0 || time_ns == AUDIT_NULL)
		time_ns = now_ns(CLOCK_REALTIME);
	for (size_t i = 0; i < NFIELDS; i++) {
		const char *str = fields[i].text ? ev_str(ev, i) : NULL;

		if (!str)
			continue;
		len[i] = strlen(str);
		if (len[i] > STRING_MAX)
			return -EINVAL;
		size += len[i] + 1;
	}
	size = (size + 7) & ~(size_t)7;

	pthread_mutex_lock(&log->mu);
	while (log->queue.used >= QUEUE_MAX_BYTES && !atomic_load(&log->failed))
		pthread_cond_wait(&log->drained, &log->mu);
	if (atomic_load(&log->failed)) {
		rc = -EIO;
		goto out_unlock;
	}
	rc = queue_reserve(&log->queue, size);
	if (rc)
		goto out_unlock;
	e = (struct queued_event *)(log->queue.buf + log->queue.used);
	e->ev = *ev;
	e->ev.time_ns = time_ns;
	e->size = (uint32_t)size;
	s = (char *)(e + 1);
	for (size_t i = 0; i < NFIELDS; i++) {
		const char *str = fields[i].text ? ev_str(ev, i) : NULL;

		if (!fields[i].text)
			continue;
		ev_set_str(&e->ev, i, NULL);
		e->len[i] = str ? (uint32_t)len[i] : NO_STRING;
		if (!str)
			continue;
		memcpy(s, str, len[i] + 1);
		s += len[i] + 1;
	}
	log->queue.used += size;
	if (log->queue.count++ == 0) {
		log->oldest_ns = now_ns(CLOCK_MONOTONIC);
		pthread_cond_signal(&log->work);
	} else if (log->queue.count == BATCH_MAX) {
		pthread_cond_signal(&log->work);
	}
	t = ++log->issued;
	if (ticket)
		*ticket = t;
out_unlock:
	pthread_mutex_unlock(&log->mu);
	return rc;
}

int audit_log_wait(struct audit_log *log, uint64_t ticket)
{
	int rc = 0;

	pthread_mutex_lock(&log->mu);
	if (ticket > log->issued)
		rc = -EINVAL;
	while (!rc && !atomic_load(&log->failed) && log->committed < ticket) {
		if (ticket > log->wanted) {
			log->wanted = ticket;
			pthread_cond_signal(&log->work);
		}
		pthread_cond_wait(&log->done, &log->mu);
	}
	if (atomic_load(&log->failed))
		rc = -EIO;
	pthread_mutex_unlock(&log->mu);
	return rc;
}

bool audit_log_failed(const struct audit_log *log)
{
	return atomic_load(&log->failed);
}

bool audit_log_low_space(const struct audit_log *log)
{
	return atomic_load(&log->low_space);
}

void audit_log_close(struct audit_log *log)
{
	if (!log)
		return;
	pthread_mutex_lock(&log->mu);
	log->stopping = true;
	pthread_cond_signal(&log->work);
	pthread_mutex_unlock(&log->mu);
	pthread_join(log->thread, NULL);
	pthread_cond_destroy(&log->drained);
	pthread_cond_destroy(&log->done);
	pthread_cond_destroy(&log->work);
	pthread_mutex_destroy(&log->mu);
	free(log->queue.buf);
	free(log->spare.buf);
	free(log->recs);
	writer_release(&log->w);
	free(log);
}

int audit_append_sync(const char *home, const struct audit_event *ev)
{
	struct writer w;
	struct rec r;
	int rc;

	rc = rec_from_event(&r, ev);
	if (rc)
		return rc;
	rc = writer_open(&w, home);
	if (rc)
		return rc;
	rc = write_batch(&w, &r, 1, SEAL_NOW);
	writer_release(&w);
	return rc;
}

/* Open HOME/audit.db read-only and check it is an audit log we know. */
static int reader_open(const char *home, sqlite3 **db)
{
	char format[16];
	int rc;

	rc = open_db(home, SQLITE_OPEN_READONLY, db);
	if (rc)
		return rc;
	rc = meta_get(*db, "format", format, sizeof(format));
	if (rc == -ENOENT || (!rc && strcmp(format, AUDIT_FORMAT)))
		rc = -EPROTO;
	if (rc) {
		sqlite3_close(*db);
		*db = NULL;
	}
	return rc;
}

int audit_verify(const char *home, struct audit_verdict *out)
{
	struct verify v = {.out = out};
	EVP_PKEY *key = NULL;
	struct hasher h;
	int rc;

	memset(out, 0, sizeof(*out));
	v.hasher = &h;
	rc = hasher_init(&h);
	if (!rc)
		rc = reader_open(home, &v.db);
	if (!rc)
		rc = meta_public_key(v.db, &v.pub);
	if (rc)
		goto out_close;
	/* Whoever can read the private key pins the public one. */
	if (!key_file_load(home, &key) && !same_public_key(v.pub, key)) {
		rc = bad(&v, 1,
			 "the public key in " AUDIT_DB_FILE
			 " is not that of " AUDIT_KEY_FILE);
		goto out_close;
	}
	/* One snapshot for every query, whatever writers do meanwhile. */
	rc = exec(v.db, "BEGIN");
	if (!rc)
		rc = verify_start(&v);
	if (!rc)
		rc = verify_walk(&v, INT64_MAX);
	out->first_seq = v.first;
	rollback(v.db);
out_close:
	EVP_PKEY_free(key);
	EVP_PKEY_free(v.pub);
	sqlite3_close(v.db);
	hasher_release(&h);
	return rc;
}

/* The last seq in the snapshot of db's open read transaction, 0 if none. */
static int last_seq(sqlite3 *db, uint64_t *seq)
{
	int64_t v = 0;
	bool found;
	int rc = run_bound(db, "SELECT max(seq) FROM records", 0, &v, &found);

	*seq = found && v > 0 ? (uint64_t)v : 0;
	return rc;
}

int audit_query(const char *home, const struct audit_filter *filter,
		int (*fn)(void *ctx, const struct audit_record *rec), void *ctx,
		uint64_t *end_seq)
{
#define QUERY_ROWS                                                             \
	"SELECT seq, " RECORD_COLUMNS " FROM records"                          \
	" WHERE seq > ?1 AND seq <= ?2 AND time_ns >= ?3"                      \
	" AND (?4 IS NULL OR agreement = ?4)"
	static const char all_sql[] = QUERY_ROWS " ORDER BY seq";
	static const char last_sql[] =
	    "SELECT * FROM (" QUERY_ROWS " ORDER BY seq DESC LIMIT ?5)"
	    " ORDER BY seq";
#undef QUERY_ROWS
	uint64_t end = 0, after = filter->after_seq, n = filter->last_n;
	struct audit_record out;
	sqlite3_stmt *st = NULL;
	sqlite3 *db;
	struct rec r;
	int rc;

	rc = reader_open(home, &db);
	if (rc)
		return rc;
	/* One snapshot: its last seq, and the rows up to it. */
	rc = exec(db, "BEGIN");
	if (!rc)
		rc = last_seq(db, &end);
	if (!rc)
		rc = sql_rc(sqlite3_prepare_v2(db, n ? last_sql : all_sql, -1,
					       &st, NULL));
	if (rc)
		goto out_close;
	sqlite3_bind_int64(st, 1,
			   after > INT64_MAX ? INT64_MAX : (int64_t)after);
	sqlite3_bind_int64(st, 2, (int64_t)end);
	sqlite3_bind_int64(st, 3, filter->since_ns);
	if (filter->agreement)
		sqlite3_bind_text(st, 4, filter->agreement, -1, SQLITE_STATIC);
	if (n)
		sqlite3_bind_int64(st, 5,
				   n > INT64_MAX ? INT64_MAX : (int64_t)n);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rec_from_row(st, &r);
		out.seq = r.seq;
		out.ev = r.ev;
		rc = fn(ctx, &out);
		if (rc)
			goto out_close;
	}
	rc = sql_rc(rc);
	if (!rc && end_seq)
		*end_seq = end;
out_close:
	sqlite3_finalize(st);
	rollback(db);
	sqlite3_close(db);
	return rc;
}
