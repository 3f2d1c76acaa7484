/*
 * Unit tests of fs/keys: the master key file (created 0600, never
 * overwritten, loaded only from a private regular file of the right size
 * in a directory nobody else can write to, refusals naming the mode),
 * data keys bound to their label and master key, and key derivation
 * (HKDF-SHA256).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "scratch.h"

#include "keys.h"

/* A private scratch directory per test, removed afterwards. */
struct scratch {
	char dir[64];
};

static int scratch_setup(void **state)
{
	struct scratch *s = calloc(1, sizeof(*s));

	if (!s)
		return -1;
	snprintf(s->dir, sizeof(s->dir), "/tmp/govfs-keys-XXXXXX");
	if (!mkdtemp(s->dir)) {
		free(s);
		return -1;
	}
	*state = s;
	return 0;
}

static int scratch_teardown(void **state)
{
	struct scratch *s = *state;
	int rc = scratch_remove(s->dir);

	free(s);
	return rc;
}

static void scratch_path(void **state, const char *name, char *out, size_t len)
{
	struct scratch *s = *state;

	snprintf(out, len, "%s/%s", s->dir, name);
}

/* Write len bytes to a new file of the given mode (umask bypassed). */
static void write_file(const char *path, const void *data, size_t len,
		       mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void read_file(const char *path, void *data, size_t len)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(read(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static void test_create_makes_private_key_file(void **state)
{
	char path[128], path2[128];
	uint8_t a[KEY_LEN], b[KEY_LEN], zero[KEY_LEN] = {0};
	struct stat st;

	scratch_path(state, "master.key", path, sizeof(path));
	scratch_path(state, "other.key", path2, sizeof(path2));
	assert_int_equal(master_key_create(path), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, KEY_LEN);
	/* Fresh random bytes: not zero, not the same twice. */
	assert_int_equal(master_key_create(path2), 0);
	read_file(path, a, sizeof(a));
	read_file(path2, b, sizeof(b));
	assert_memory_not_equal(a, zero, KEY_LEN);
	assert_memory_not_equal(a, b, KEY_LEN);
}

static void test_create_makes_missing_directory_private(void **state)
{
	char dir[128], path[160];
	struct stat st;
	mode_t old = umask(0);

	scratch_path(state, "etc-govfs", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/master.key", dir);
	assert_int_equal(master_key_create(path), 0);
	umask(old);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_create_refuses_existing(void **state)
{
	char path[128];
	uint8_t before[KEY_LEN], after[KEY_LEN];
	const char other[] = "not a key";

	scratch_path(state, "master.key", path, sizeof(path));
	assert_int_equal(master_key_create(path), 0);
	read_file(path, before, sizeof(before));
	assert_int_equal(master_key_create(path), -EEXIST);
	read_file(path, after, sizeof(after));
	assert_memory_equal(before, after, KEY_LEN);

	/* Any file at all, and a dangling symlink, are left alone too. */
	scratch_path(state, "other", path, sizeof(path));
	write_file(path, other, sizeof(other), 0600);
	assert_int_equal(master_key_create(path), -EEXIST);
	scratch_path(state, "dangling", path, sizeof(path));
	assert_int_equal(symlink("nowhere", path), 0);
	assert_int_equal(master_key_create(path), -EEXIST);
}

static void test_load_reads_created_key(void **state)
{
	char path[128];
	uint8_t bytes[KEY_LEN];
	struct master_key key;
	char why[256] = "";

	scratch_path(state, "master.key", path, sizeof(path));
	assert_int_equal(master_key_create(path), 0);
	read_file(path, bytes, sizeof(bytes));
	memset(&key, 0, sizeof(key));
	assert_int_equal(master_key_load(path, &key, why, sizeof(why)), 0);
	assert_memory_equal(key.bytes, bytes, KEY_LEN);

	/* Read-only for the owner is private enough. */
	assert_int_equal(chmod(path, 0400), 0);
	memset(&key, 0, sizeof(key));
	assert_int_equal(master_key_load(path, &key, why, sizeof(why)), 0);
	assert_memory_equal(key.bytes, bytes, KEY_LEN);
}

static void test_load_refuses_group_or_other_access(void **state)
{
	static const mode_t modes[] = {0644, 0640, 0604, 0660, 0606, 0610,
				       0601, 0620, 0602, 0670, 0607, 0666};
	char path[128];
	struct master_key key;
	char why[256];
	size_t i;

	scratch_path(state, "master.key", path, sizeof(path));
	assert_int_equal(master_key_create(path), 0);
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char want[128];

		assert_int_equal(chmod(path, modes[i]), 0);
		why[0] = '\0';
		assert_int_equal(master_key_load(path, &key, why, sizeof(why)),
				 -EPERM);
		/* Says which mode is wrong, and what it should be. */
		snprintf(want, sizeof(want),
			 "mode %04o: accessible to group or others (want 0600)",
			 (unsigned)modes[i]);
		assert_string_equal(why, want);
	}
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(master_key_load(path, &key, why, sizeof(why)), 0);
}

static void test_load_refuses_wrong_size(void **state)
{
	static const size_t sizes[] = {0, 1, KEY_LEN - 1, KEY_LEN + 1,
				       2 * KEY_LEN};
	uint8_t data[2 * KEY_LEN];
	char path[128];
	struct master_key key;
	char why[256];
	size_t i;

	memset(data, 0x42, sizeof(data));
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char name[32];

		snprintf(name, sizeof(name), "key%zu", sizes[i]);
		scratch_path(state, name, path, sizeof(path));
		write_file(path, data, sizes[i], 0600);
		why[0] = '\0';
		assert_int_equal(master_key_load(path, &key, why, sizeof(why)),
				 -EINVAL);
		assert_true(why[0] != '\0');
	}
	/* The same bytes at the right size load. */
	scratch_path(state, "right", path, sizeof(path));
	write_file(path, data, KEY_LEN, 0600);
	assert_int_equal(master_key_load(path, &key, why, sizeof(why)), 0);
	assert_memory_equal(key.bytes, data, KEY_LEN);
}

static void test_load_refuses_symlink(void **state)
{
	char target[128], link[128];
	struct master_key key;
	uint8_t untouched[KEY_LEN];
	char why[256] = "";
	int rc;

	scratch_path(state, "master.key", target, sizeof(target));
	scratch_path(state, "link.key", link, sizeof(link));
	assert_int_equal(master_key_create(target), 0);
	assert_int_equal(symlink(target, link), 0);
	memset(&key, 0x5a, sizeof(key));
	memset(untouched, 0x5a, sizeof(untouched));
	rc = master_key_load(link, &key, why, sizeof(why));
	assert_int_equal(rc, -ELOOP);
	assert_string_equal(why,
			    "a symbolic link (refused: want a regular file)");
	assert_memory_equal(key.bytes, untouched, KEY_LEN);
	/* The target itself is fine. */
	assert_int_equal(master_key_load(target, &key, why, sizeof(why)), 0);
}

static void test_load_refuses_non_regular(void **state)
{
	char path[128];
	struct master_key key;
	char why[256] = "";

	scratch_path(state, "dir.key", path, sizeof(path));
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(master_key_load(path, &key, why, sizeof(why)), -EPERM);
	assert_true(why[0] != '\0');
	scratch_path(state, "missing.key", path, sizeof(path));
	assert_int_equal(master_key_load(path, &key, why, sizeof(why)),
			 -ENOENT);
}

/*
 * A FIFO at the key path must be refused as "not a regular file", not
 * block the caller forever waiting for a writer.  Loaded in a child so
 * that a hang fails the test instead of the run.
 */
static void test_load_refuses_fifo_without_blocking(void **state)
{
	char path[128];
	pid_t pid;
	int status = 0;
	int waited_ms = 0;

	scratch_path(state, "fifo.key", path, sizeof(path));
	assert_int_equal(mkfifo(path, 0600), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct master_key key;
		char why[256] = "";

		_exit(master_key_load(path, &key, why, sizeof(why)) == -EPERM
			  ? 0
			  : 1);
	}
	while (waitpid(pid, &status, WNOHANG) == 0 && waited_ms < 3000) {
		const struct timespec ms = {0, 1000000};

		nanosleep(&ms, NULL);
		waited_ms++;
	}
	if (waited_ms >= 3000) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("master_key_load on a FIFO still blocked after 3 s");
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_load_refuses_other_owner(void **state)
{
	char path[128];
	struct master_key key;
	char why[256] = "";

	if (geteuid() != 0)
		skip();
	scratch_path(state, "master.key", path, sizeof(path));
	assert_int_equal(master_key_create(path), 0);
	assert_int_equal(chown(path, 12345, 12345), 0);
	assert_int_equal(master_key_load(path, &key, why, sizeof(why)), -EPERM);
	assert_true(why[0] != '\0');
}

/* A key in a directory that others may write to could be swapped. */
static void test_load_refuses_open_directory(void **state)
{
	struct scratch *s = *state;
	char dir[128], path[160], want[256];
	struct master_key key;
	char why[256] = "";

	snprintf(dir, sizeof(dir), "%s/keys", s->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/master.key", dir);
	assert_int_equal(master_key_create(path), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(master_key_load(path, &key, why, sizeof(why)), -EPERM);
	snprintf(want, sizeof(want),
		 "its directory %s has mode 0777: group or others could swap "
		 "the key",
		 dir);
	assert_string_equal(why, want);
	assert_int_equal(chmod(dir, 0720), 0);
	assert_int_equal(master_key_load(path, &key, why, sizeof(why)), -EPERM);
	/* Sticky, as /tmp is: others cannot remove or rename our file. */
	assert_int_equal(chmod(dir, 01777), 0);
	assert_int_equal(master_key_load(path, &key, why, sizeof(why)), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(master_key_load(path, &key, why, sizeof(why)), 0);
}

static void test_load_refuses_directory_of_another_user(void **state)
{
	struct scratch *s = *state;
	char dir[128], path[160];
	struct master_key key;
	char why[256] = "";

	if (geteuid() != 0)
		skip();
	snprintf(dir, sizeof(dir), "%s/keys", s->dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/master.key", dir);
	assert_int_equal(master_key_create(path), 0);
	assert_int_equal(chown(dir, 12345, 12345), 0);
	assert_int_equal(master_key_load(path, &key, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "owned by uid 12345"));
}

static void new_master(struct master_key *mk)
{
	assert_int_equal(random_bytes(mk->bytes, KEY_LEN), 0);
}

static void test_data_key_round_trip(void **state)
{
	struct master_key mk;
	uint8_t k1[KEY_LEN], w1[WRAPPED_KEY_LEN];
	uint8_t k2[KEY_LEN], w2[WRAPPED_KEY_LEN];
	uint8_t back[KEY_LEN];

	(void)state;
	new_master(&mk);
	assert_int_equal(data_key_new(&mk, "dataset:health.visits:1", k1, w1),
			 0);
	assert_int_equal(data_key_new(&mk, "dataset:health.visits:1", k2, w2),
			 0);
	/* Fresh key and nonce each time; the key never appears in clear. */
	assert_memory_not_equal(k1, k2, KEY_LEN);
	assert_memory_not_equal(w1, w2, AEAD_NONCE_LEN);
	assert_memory_not_equal(w1 + AEAD_NONCE_LEN, k1, KEY_LEN);
	assert_int_equal(
	    data_key_unwrap(&mk, "dataset:health.visits:1", w1, back), 0);
	assert_memory_equal(back, k1, KEY_LEN);
	assert_int_equal(
	    data_key_unwrap(&mk, "dataset:health.visits:1", w2, back), 0);
	assert_memory_equal(back, k2, KEY_LEN);
	/* The empty label works too. */
	assert_int_equal(data_key_new(&mk, "", k1, w1), 0);
	assert_int_equal(data_key_unwrap(&mk, "", w1, back), 0);
	assert_memory_equal(back, k1, KEY_LEN);
}

static void test_data_key_bound_to_label(void **state)
{
	static const char *const others[] = {
	    "dataset:health.visits:2",
	    "dataset:health.visits:",
	    "dataset:health.visits:10",
	    "Dataset:health.visits:1",
	    "",
	};
	struct master_key mk;
	uint8_t key[KEY_LEN], wrapped[WRAPPED_KEY_LEN], back[KEY_LEN];
	size_t i;

	(void)state;
	new_master(&mk);
	assert_int_equal(
	    data_key_new(&mk, "dataset:health.visits:1", key, wrapped), 0);
	for (i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		assert_int_equal(data_key_unwrap(&mk, others[i], wrapped, back),
				 -EIO);
	assert_int_equal(
	    data_key_unwrap(&mk, "dataset:health.visits:1", wrapped, back), 0);
	assert_memory_equal(back, key, KEY_LEN);
}

static void test_data_key_bound_to_master(void **state)
{
	struct master_key mk, other;
	uint8_t key[KEY_LEN], wrapped[WRAPPED_KEY_LEN], back[KEY_LEN];

	(void)state;
	new_master(&mk);
	new_master(&other);
	assert_int_equal(data_key_new(&mk, "agreement:agr-1", key, wrapped), 0);
	assert_int_equal(
	    data_key_unwrap(&other, "agreement:agr-1", wrapped, back), -EIO);
	/* One bit of difference in the master key is enough. */
	other = mk;
	other.bytes[KEY_LEN - 1] ^= 0x01;
	assert_int_equal(
	    data_key_unwrap(&other, "agreement:agr-1", wrapped, back), -EIO);
	assert_int_equal(data_key_unwrap(&mk, "agreement:agr-1", wrapped, back),
			 0);
	assert_memory_equal(back, key, KEY_LEN);
}

static void test_data_key_wrapped_tampering(void **state)
{
	struct master_key mk;
	uint8_t key[KEY_LEN], wrapped[WRAPPED_KEY_LEN], back[KEY_LEN];
	size_t i;

	(void)state;
	new_master(&mk);
	assert_int_equal(data_key_new(&mk, "label", key, wrapped), 0);
	/* Nonce, sealed key and tag: every byte matters. */
	for (i = 0; i < WRAPPED_KEY_LEN; i++) {
		wrapped[i] ^= 0x04;
		assert_int_equal(data_key_unwrap(&mk, "label", wrapped, back),
				 -EIO);
		wrapped[i] ^= 0x04;
	}
	assert_int_equal(data_key_unwrap(&mk, "label", wrapped, back), 0);
	assert_memory_equal(back, key, KEY_LEN);
}

/*
 * key_derive is HKDF-SHA256 (RFC 5869) without salt, the purpose as its
 * info: checked against the two HMAC steps that define it.
 */
static void test_key_derive_is_hkdf(void **state)
{
	static const char purpose[] = "govfs test purpose";
	uint8_t key[KEY_LEN], out[KEY_LEN], zeros[32] = {0}, prk[32];
	uint8_t info[sizeof(purpose)], okm[32];
	size_t len;

	(void)state;
	for (int i = 0; i < KEY_LEN; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(key_derive(key, purpose, out), 0);
	assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, zeros,
				  sizeof(zeros), key, KEY_LEN, prk, sizeof(prk),
				  &len));
	memcpy(info, purpose, strlen(purpose));
	info[strlen(purpose)] = 1;
	assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, prk,
				  sizeof(prk), info, sizeof(info), okm,
				  sizeof(okm), &len));
	assert_memory_equal(out, okm, KEY_LEN);
	/* Another purpose, another key; the key itself is never given. */
	assert_int_equal(key_derive(key, "govfs other purpose", okm), 0);
	assert_memory_not_equal(out, okm, KEY_LEN);
	assert_memory_not_equal(out, key, KEY_LEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create_makes_private_key_file,
					    scratch_setup, scratch_teardown),
	    cmocka_unit_test_setup_teardown(
		test_create_makes_missing_directory_private, scratch_setup,
		scratch_teardown),
	    cmocka_unit_test_setup_teardown(test_create_refuses_existing,
					    scratch_setup, scratch_teardown),
	    cmocka_unit_test_setup_teardown(test_load_reads_created_key,
					    scratch_setup, scratch_teardown),
	    cmocka_unit_test_setup_teardown(
		test_load_refuses_group_or_other_access, scratch_setup,
		scratch_teardown),
	    cmocka_unit_test_setup_teardown(test_load_refuses_wrong_size,
					    scratch_setup, scratch_teardown),
	    cmocka_unit_test_setup_teardown(test_load_refuses_symlink,
					    scratch_setup, scratch_teardown),
	    cmocka_unit_test_setup_teardown(test_load_refuses_non_regular,
					    scratch_setup, scratch_teardown),
	    cmocka_unit_test_setup_teardown(
		test_load_refuses_fifo_without_blocking, scratch_setup,
		scratch_teardown),
	    cmocka_unit_test_setup_teardown(test_load_refuses_other_owner,
					    scratch_setup, scratch_teardown),
	    cmocka_unit_test_setup_teardown(test_load_refuses_open_directory,
					    scratch_setup, scratch_teardown),
	    cmocka_unit_test_setup_teardown(
		test_load_refuses_directory_of_another_user, scratch_setup,
		scratch_teardown),
	    cmocka_unit_test(test_data_key_round_trip),
	    cmocka_unit_test(test_data_key_bound_to_label),
	    cmocka_unit_test(test_data_key_bound_to_master),
	    cmocka_unit_test(test_data_key_wrapped_tampering),
	    cmocka_unit_test(test_key_derive_is_hkdf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
