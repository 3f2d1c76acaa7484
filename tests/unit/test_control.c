/*
 * test_control: a daemon's control socket and govfsctl's side of it.
 * control_start listens on HOME/run/<pid>.sock and answers each request
 * line with its handler; control_call_all reaches one or several daemons
 * at once (replies in parallel, within one timeout), and says per call
 * what went wrong: no such socket, nobody listening, a daemon too slow or
 * silent, a line too long.  A home path longer than sun_path still works,
 * and a peer of another uid is not answered.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"

#include "control.h"

#define NHOMES 3

struct handler {
	atomic_int calls;
	int delay_ms;
	char last[CONTROL_LINE_MAX];
	const char *tag;
};

struct fixture {
	char dir[64];
	char homes[NHOMES][96];
	struct handler h[NHOMES];
	struct control *c[NHOMES];
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Replies "<tag>:<request>", "big" a line longer than allowed. */
static void handle(void *ctx, const char *request, struct buf *reply)
{
	struct handler *h = ctx;
	char line[CONTROL_LINE_MAX + 64];
	int n;

	atomic_fetch_add(&h->calls, 1);
	snprintf(h->last, sizeof(h->last), "%s", request);
	if (h->delay_ms)
		sleep_ms(h->delay_ms);
	if (!strcmp(request, "big")) {
		memset(line, 'x', CONTROL_LINE_MAX + 10);
		n = CONTROL_LINE_MAX + 10;
	} else {
		n = snprintf(line, sizeof(line), "%s:%s", h->tag, request);
	}
	if (buf_append(reply, line, (size_t)n))
		reply->len = 0;
}

static int setup(void **state)
{
	static const char *const tags[NHOMES] = {"one", "two", "three"};
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/govfs-test-control.XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	for (int i = 0; i < NHOMES; i++) {
		snprintf(f->homes[i], sizeof(f->homes[i]), "%s/home%d", f->dir,
			 i);
		if (mkdir(f->homes[i], 0700))
			return -1;
		atomic_init(&f->h[i].calls, 0);
		f->h[i].tag = tags[i];
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc;

	for (int i = 0; i < NHOMES; i++)
		control_stop(f->c[i]);
	rc = scratch_remove(f->dir);
	free(f);
	return rc;
}

static void start(struct fixture *f, int i)
{
	assert_int_equal(control_start(f->homes[i], handle, &f->h[i], &f->c[i]),
			 0);
	assert_non_null(f->c[i]);
}

/* One request to one socket: rc, reply into reply. */
static int call_one(const char *socket, const char *request, int timeout_ms,
		    char *reply, size_t len)
{
	struct control_call call = {.socket = socket};

	control_call_all(&call, 1, request, timeout_ms);
	if (reply)
		snprintf(reply, len, "%s", call.reply);
	return call.rc;
}

static void test_start_listens_in_run(void **state)
{
	struct fixture *f = *state;
	char want[PATH_MAX];
	struct stat st;

	start(f, 0);
	snprintf(want, sizeof(want), "%s/run/%ld.sock", f->homes[0],
		 (long)getpid());
	assert_string_equal(control_path(f->c[0]), want);
	assert_int_equal(stat(want, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	snprintf(want, sizeof(want), "%s/run", f->homes[0]);
	assert_int_equal(stat(want, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
}

static void test_start_missing_home(void **state)
{
	struct fixture *f = *state;
	char home[PATH_MAX];
	struct control *c = NULL;

	snprintf(home, sizeof(home), "%s/absent", f->dir);
	assert_int_equal(control_start(home, handle, &f->h[0], &c), -ENOENT);
	assert_null(c);
	control_stop(NULL);
}

static void test_call_one(void **state)
{
	struct fixture *f = *state;
	char reply[CONTROL_LINE_MAX];

	start(f, 0);
	assert_int_equal(call_one(control_path(f->c[0]), "stats", 2000, reply,
				  sizeof(reply)),
			 0);
	assert_string_equal(reply, "one:stats");
	assert_string_equal(f->h[0].last, "stats");
	/* Spaces are part of the line; the newline is not. */
	assert_int_equal(call_one(control_path(f->c[0]), "cut now please", 2000,
				  reply, sizeof(reply)),
			 0);
	assert_string_equal(reply, "one:cut now please");
	assert_string_equal(f->h[0].last, "cut now please");
	/* One connection after another, each answered. */
	for (int i = 0; i < 20; i++)
		assert_int_equal(
		    call_one(control_path(f->c[0]), "again", 2000, NULL, 0), 0);
	assert_int_equal(atomic_load(&f->h[0].calls), 22);
}

static void test_call_several_in_parallel(void **state)
{
	struct fixture *f = *state;
	struct control_call calls[NHOMES];
	double t0;

	for (int i = 0; i < NHOMES; i++) {
		f->h[i].delay_ms = 400;
		start(f, i);
		calls[i] =
		    (struct control_call){.socket = control_path(f->c[i])};
	}
	t0 = now_ms();
	control_call_all(calls, NHOMES, "cut", 3000);
	/* Three handlers of 400 ms each, waited for side by side. */
	assert_true(now_ms() - t0 < 1000);
	assert_int_equal(calls[0].rc, 0);
	assert_string_equal(calls[0].reply, "one:cut");
	assert_int_equal(calls[1].rc, 0);
	assert_string_equal(calls[1].reply, "two:cut");
	assert_int_equal(calls[2].rc, 0);
	assert_string_equal(calls[2].reply, "three:cut");
	for (int i = 0; i < NHOMES; i++)
		assert_int_equal(atomic_load(&f->h[i].calls), 1);
}

static void test_call_none(void **state)
{
	struct control_call unused = {.socket = "/nonexistent", .rc = 12345};

	(void)state;
	control_call_all(&unused, 0, "cut", 100);
	assert_int_equal(unused.rc, 12345);
}

/* A socket file nobody listens on any more (a daemon killed -9). */
static void make_stale_socket(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof(sun.sun_path));
	strcpy(sun.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
}

static void test_absent_and_dead_sockets(void **state)
{
	struct fixture *f = *state;
	char absent[PATH_MAX], nodir[PATH_MAX], stale[PATH_MAX], file[PATH_MAX];
	struct control_call calls[6];
	int fd;

	start(f, 0);
	snprintf(absent, sizeof(absent), "%s/run/999999.sock", f->homes[0]);
	snprintf(nodir, sizeof(nodir), "%s/nodir/1.sock", f->dir);
	snprintf(stale, sizeof(stale), "%s/stale.sock", f->dir);
	snprintf(file, sizeof(file), "%s/plain", f->dir);
	make_stale_socket(stale);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);

	calls[0] = (struct control_call){.socket = absent};
	calls[1] = (struct control_call){.socket = control_path(f->c[0])};
	calls[2] = (struct control_call){.socket = nodir};
	calls[3] = (struct control_call){.socket = stale};
	calls[4] = (struct control_call){.socket = file};
	calls[5] = (struct control_call){.socket = "no-slash.sock"};
	control_call_all(calls, 6, "stats", 2000);
	assert_int_equal(calls[0].rc, -ENOENT);
	assert_int_equal(calls[1].rc, 0);
	assert_string_equal(calls[1].reply, "one:stats");
	assert_int_equal(calls[2].rc, -ENOENT);
	assert_int_equal(calls[3].rc, -ECONNREFUSED);
	assert_int_equal(calls[4].rc, -ECONNREFUSED);
	assert_int_equal(calls[5].rc, -EINVAL);
	for (int i = 0; i < 6; i++)
		if (i != 1)
			assert_string_equal(calls[i].reply, "");
}

static void test_slow_daemon_times_out(void **state)
{
	struct fixture *f = *state;
	struct control_call calls[2];
	double t0, took;

	f->h[0].delay_ms = 700;
	start(f, 0);
	start(f, 1);
	calls[0] = (struct control_call){.socket = control_path(f->c[0])};
	calls[1] = (struct control_call){.socket = control_path(f->c[1])};
	t0 = now_ms();
	control_call_all(calls, 2, "cut", 200);
	took = now_ms() - t0;
	assert_int_equal(calls[0].rc, -ETIMEDOUT);
	assert_string_equal(calls[0].reply, "");
	/* The slow one does not hold up the other's answer. */
	assert_int_equal(calls[1].rc, 0);
	assert_string_equal(calls[1].reply, "two:cut");
	assert_true(took >= 150 && took < 600);
}

/* A listener that never accepts: connected, and never answered. */
static void test_silent_listener_times_out(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char path[PATH_MAX];
	double t0, took;
	int fd;

	snprintf(path, sizeof(path), "%s/silent.sock", f->dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	strcpy(sun.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 4), 0);
	t0 = now_ms();
	assert_int_equal(call_one(path, "cut", 250, NULL, 0), -ETIMEDOUT);
	took = now_ms() - t0;
	assert_true(took >= 200 && took < 1000);
	close(fd);
}

static void test_lines_too_long(void **state)
{
	struct fixture *f = *state;
	char *request = malloc(CONTROL_LINE_MAX + 100);
	int rc;

	assert_non_null(request);
	start(f, 0);
	/* A reply longer than a line is an error, never a truncated reply. */
	assert_int_equal(call_one(control_path(f->c[0]), "big", 2000, NULL, 0),
			 -EMSGSIZE);
	assert_int_equal(atomic_load(&f->h[0].calls), 1);
	/* A request longer than a line is not handled at all. */
	memset(request, 'r', CONTROL_LINE_MAX + 99);
	request[CONTROL_LINE_MAX + 99] = 0;
	rc = call_one(control_path(f->c[0]), request, 2000, NULL, 0);
	/* Closed on it, before or after it sent its whole line. */
	assert_true(rc == -ECONNRESET || rc == -EPIPE);
	assert_int_equal(atomic_load(&f->h[0].calls), 1);
	/* And the daemon goes on answering. */
	assert_int_equal(call_one(control_path(f->c[0]), "ok", 2000, NULL, 0),
			 0);
	free(request);
}

/* A home deeper than sun_path's 108 bytes: reached through a descriptor. */
static void test_long_home_path(void **state)
{
	struct fixture *f = *state;
	char home[PATH_MAX], path[PATH_MAX], reply[CONTROL_LINE_MAX];
	struct control *c = NULL;
	struct stat st;

	snprintf(home, sizeof(home), "%s/", f->dir);
	for (int level = 0; level < 4; level++) {
		size_t len = strlen(home);

		memset(home + len, 'd' + level, 60);
		home[len + 60] = 0;
		assert_int_equal(mkdir(home, 0700), 0);
		strcat(home, "/");
	}
	strcat(home, "home");
	assert_int_equal(mkdir(home, 0700), 0);
	assert_true(strlen(home) > 200);
	assert_int_equal(control_start(home, handle, &f->h[1], &c), 0);
	assert_true(strlen(control_path(c)) >
		    sizeof(((struct sockaddr_un *)0)->sun_path));
	assert_int_equal(stat(control_path(c), &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(
	    call_one(control_path(c), "deep", 2000, reply, sizeof(reply)), 0);
	assert_string_equal(reply, "two:deep");
	snprintf(path, sizeof(path), "%s", control_path(c));
	control_stop(c);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(call_one(path, "deep", 2000, NULL, 0), -ENOENT);
}

static void test_stop_removes_socket(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	struct stat st;

	start(f, 0);
	snprintf(path, sizeof(path), "%s", control_path(f->c[0]));
	assert_int_equal(call_one(path, "x", 2000, NULL, 0), 0);
	control_stop(f->c[0]);
	f->c[0] = NULL;
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(call_one(path, "x", 2000, NULL, 0), -ENOENT);
	/* And it starts again in the same home. */
	start(f, 0);
	assert_int_equal(call_one(path, "x", 2000, NULL, 0), 0);
}

/* A peer that is neither root nor the daemon's user is not answered. */
static void test_other_uid_not_answered(void **state)
{
	struct fixture *f = *state;
	char run[PATH_MAX];
	int fds[2], rc = 0;
	pid_t pid;
	int status;

	if (geteuid() != 0) {
		skip();
		return;
	}
	start(f, 0);
	/* Open the way to the socket, so that only the peer check is left. */
	snprintf(run, sizeof(run), "%s/run", f->homes[0]);
	assert_int_equal(chmod(f->dir, 0755), 0);
	assert_int_equal(chmod(f->homes[0], 0755), 0);
	assert_int_equal(chmod(run, 0755), 0);
	assert_int_equal(chmod(control_path(f->c[0]), 0777), 0);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		close(fds[0]);
		if (setgid(65534) || setuid(65534))
			_exit(3);
		rc = call_one(control_path(f->c[0]), "cut", 2000, NULL, 0);
		_exit(write(fds[1], &rc, sizeof(rc)) == sizeof(rc) ? 0 : 4);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &rc, sizeof(rc)), sizeof(rc));
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* Closed on it, before or after it sent its line. */
	assert_true(rc == -ECONNRESET || rc == -EPIPE);
	assert_int_equal(atomic_load(&f->h[0].calls), 0);
	/* Root still is. */
	assert_int_equal(call_one(control_path(f->c[0]), "cut", 2000, NULL, 0),
			 0);
	assert_int_equal(atomic_load(&f->h[0].calls), 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_start_listens_in_run),
	    T(test_start_missing_home),
	    T(test_call_one),
	    T(test_call_several_in_parallel),
	    T(test_call_none),
	    T(test_absent_and_dead_sockets),
	    T(test_slow_daemon_times_out),
	    T(test_silent_listener_times_out),
	    T(test_lines_too_long),
	    T(test_long_home_path),
	    T(test_stop_removes_socket),
	    T(test_other_uid_not_answered),
	};

	/* As govfs runs: its files private from the start. */
	umask(077);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
