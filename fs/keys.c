/*
 * keys: the master key file, data-key wrapping and key derivation, with
 * OpenSSL's EVP interface and AES-256-GCM from aead.
 */
#include "keys.h"

#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int make_parent_dir(const char *path)
{
	char copy[PATH_MAX];
	char *dir;

	if (strlen(path) >= sizeof(copy))
		return -ENAMETOOLONG;
	strcpy(copy, path);
	dir = dirname(copy);
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

int master_key_create(const char *path)
{
	uint8_t key[KEY_LEN];
	int fd, rc;

	rc = make_parent_dir(path);
	if (rc)
		return rc;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = random_bytes(key, sizeof(key));
	if (!rc)
		rc = write_all(fd, key, sizeof(key));
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	OPENSSL_cleanse(key, sizeof(key));
	if (rc)
		unlink(path);
	return rc;
}

/*
 * The key's directory must not let anyone else swap the key: owned by us
 * or root, and writable by group or others only if sticky (as /tmp is).
 */
static int check_key_dir(const char *path, char *why, size_t len)
{
	char copy[PATH_MAX];
	const char *dir;
	struct stat st;

	if (strlen(path) >= sizeof(copy))
		return -ENAMETOOLONG;
	strcpy(copy, path);
	dir = dirname(copy);
	if (stat(dir, &st)) {
		snprintf(why, len, "its directory %s: %s", dir,
			 strerror(errno));
		return -errno;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(why, len,
			 "its directory %s is owned by uid %u: anyone but us "
			 "or root could swap the key",
			 dir, (unsigned)st.st_uid);
		return -EPERM;
	}
	if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX)) {
		snprintf(why, len,
			 "its directory %s has mode %04o: group or others "
			 "could swap the key",
			 dir, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* What makes the opened key file unfit, if anything. */
static int check_key_file(const struct stat *st, char *why, size_t len)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(why, len, "not a regular file");
		return -EPERM;
	}
	if (st->st_uid != geteuid()) {
		snprintf(why, len, "owned by uid %u, not by uid %u (us)",
			 (unsigned)st->st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st->st_mode & 077) {
		snprintf(why, len,
			 "mode %04o: accessible to group or others (want "
			 "0600)",
			 (unsigned)(st->st_mode & 07777));
		return -EPERM;
	}
	if (st->st_size != KEY_LEN) {
		snprintf(why, len, "not a govfs master key (want %d bytes)",
			 KEY_LEN);
		return -EINVAL;
	}
	return 0;
}

int master_key_load(const char *path, struct master_key *key, char *why,
		    size_t len)
{
	struct stat st;
	ssize_t n;
	int fd, rc;

	/* O_NONBLOCK: a FIFO put in the key's place must not hang us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ELOOP)
			snprintf(why, len,
				 "a symbolic link (refused: want a regular "
				 "file)");
		else
			snprintf(why, len, "%s", strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st)) {
		rc = -errno;
		snprintf(why, len, "%s", strerror(-rc));
	} else {
		rc = check_key_file(&st, why, len);
	}
	if (!rc)
		rc = check_key_dir(path, why, len);
	if (!rc) {
		n = pread(fd, key->bytes, KEY_LEN, 0);
		if (n != KEY_LEN) {
			rc = -EIO;
			snprintf(why, len, "short read");
		}
	}
	close(fd);
	return rc;
}

int random_bytes(void *buf, size_t n)
{
	return RAND_bytes(buf, (int)n) == 1 ? 0 : -EIO;
}

int key_derive(const uint8_t key[KEY_LEN], const char *purpose,
	       uint8_t out[KEY_LEN])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
					     (char *)"SHA256", 0),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key,
					      KEY_LEN),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
					      (void *)purpose, strlen(purpose)),
	    OSSL_PARAM_construct_end(),
	};
	int ok = ctx && EVP_KDF_derive(ctx, out, KEY_LEN, params) == 1;

	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return ok ? 0 : -EIO;
}

int data_key_new(const struct master_key *mk, const char *label,
		 uint8_t key[KEY_LEN], uint8_t wrapped[WRAPPED_KEY_LEN])
{
	uint8_t *nonce = wrapped;
	uint8_t *sealed = wrapped + AEAD_NONCE_LEN;
	uint8_t *tag = sealed + KEY_LEN;
	int rc;

	rc = random_bytes(key, KEY_LEN);
	if (!rc)
		rc = random_bytes(nonce, AEAD_NONCE_LEN);
	if (!rc)
		rc = aead_seal(mk->bytes, nonce, label, strlen(label), key,
			       KEY_LEN, sealed, tag);
	return rc;
}

int data_key_unwrap(const struct master_key *mk, const char *label,
		    const uint8_t wrapped[WRAPPED_KEY_LEN],
		    uint8_t key[KEY_LEN])
{
	return aead_open(mk->bytes, wrapped, label, strlen(label),
			 wrapped + AEAD_NONCE_LEN, KEY_LEN,
			 wrapped + AEAD_NONCE_LEN + KEY_LEN, key);
}
