/*
 * test_holds: the holds of a suspend or revoke, and their hand-over from
 * govfsctl's front to govfsctl-core.  holds_take asks every daemon of the
 * home (here: this process serving agr-a, a child serving agr-b, a socket
 * nobody listens on) and records each answer; holds_hand_over and
 * holds_take_over carry them across exec in GOVFSCTL_HELD, which is read
 * once, for its own agreement only, and refused whole when malformed.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
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

#include "clock.h"
#include "control.h"
#include "holds.h"

struct fixture {
	char dir[64];
	char home[96];
	struct control *own;
	pid_t other;
	int slow_ms;   /* how long the own daemon takes to answer */
	char last[64]; /* the last request the own daemon answered */
};

static struct fixture *current;

/* How long the tests let a daemon answer: ample on a loaded machine (a
 * sanitizer build, other suites running), unlike HOLD_TIMEOUT_MS. */
#define ANSWER_MS 5000

/* A daemon of agreement ctx: "hold ID" is "held" for its own. */
static void answer_hold(void *ctx, const char *request, struct buf *reply)
{
	const char *served = ctx;
	const char *line =
	    !strncmp(request, "hold ", 5) && !strcmp(request + 5, served)
		? "held"
		: "ok not served here";

	if (!strcmp(served, "agr-a")) {
		snprintf(current->last, sizeof(current->last), "%s", request);
		if (current->slow_ms)
			usleep((useconds_t)current->slow_ms * 1000);
	}
	if (buf_append(reply, line, strlen(line)))
		reply->len = 0;
}

/* A socket file in home/run that nobody listens on. */
static void leave_dead_socket(const char *home)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/run/1.sock", home);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
}

/* A child process serving agr-b in home until killed. */
static pid_t start_other(const char *home)
{
	int ready[2];
	char c = 0;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct control *c2;

		if (control_start(home, answer_hold, "agr-b", &c2))
			_exit(1);
		(void)!write(ready[1], "x", 1);
		for (;;)
			pause();
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/govfs-test-holds.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
	if (mkdir(f->home, 0700))
		return -1;
	current = f;
	/* The child first, while this process has no thread of its own: a
	 * fork while the control thread runs could copy a lock it holds. */
	f->other = start_other(f->home);
	if (control_start(f->home, answer_hold, "agr-a", &f->own))
		return -1;
	leave_dead_socket(f->home);
	unsetenv(HOLDS_ENV);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc;

	kill(f->other, SIGKILL);
	waitpid(f->other, NULL, 0);
	control_stop(f->own);
	rc = scratch_remove(f->dir);
	free(f);
	unsetenv(HOLDS_ENV);
	return rc;
}

/* The call of h to the socket named name in HOME/run. */
static const struct control_call *call_to(const struct holds *h,
					  const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(control_socket_name(h->calls[i].socket), name))
			return &h->calls[i];
	fail_msg("no call to %s", name);
	return NULL;
}

static void own_and_other_names(const struct fixture *f, char *own, char *other)
{
	sprintf(own, "%ld.sock", (long)getpid());
	sprintf(other, "%ld.sock", (long)f->other);
}

static void test_take_asks_every_daemon_of_the_home(void **state)
{
	struct fixture *f = *state;
	char own[32], other[32];
	struct holds h;

	own_and_other_names(f, own, other);
	holds_take(f->home, "agr-a", ANSWER_MS, &h);
	assert_int_equal(h.n, 3);
	assert_int_equal(call_to(&h, own)->rc, 0);
	assert_string_equal(call_to(&h, own)->reply, "held");
	assert_true(holds_may_hold(call_to(&h, own)));
	assert_int_equal(call_to(&h, other)->rc, 0);
	assert_false(holds_may_hold(call_to(&h, other)));
	assert_int_equal(call_to(&h, "1.sock")->rc, -ECONNREFUSED);
	assert_false(holds_may_hold(call_to(&h, "1.sock")));
	/* A socket nobody listens on does not count against the answer. */
	assert_true(holds_all_answered(&h));
	assert_false(h.cut);
	holds_free(&h);
	assert_null(h.calls);
	assert_int_equal(h.n, 0);
}

static void test_a_slow_daemon_may_hold(void **state)
{
	struct fixture *f = *state;
	char own[32], other[32];
	struct holds h;

	own_and_other_names(f, own, other);
	f->slow_ms = 400;
	holds_take(f->home, "agr-a", HOLD_TIMEOUT_MS, &h);
	assert_int_equal(call_to(&h, own)->rc, -ETIMEDOUT);
	assert_true(holds_may_hold(call_to(&h, own)));
	assert_false(holds_all_answered(&h));
	holds_free(&h);
	usleep(450 * 1000); /* let it finish before teardown */
}

static void test_no_daemon_no_calls(void **state)
{
	struct fixture *f = *state;
	char empty[PATH_MAX];
	struct holds h;

	snprintf(empty, sizeof(empty), "%s/empty", f->dir);
	assert_int_equal(mkdir(empty, 0700), 0);
	holds_take(empty, "agr-a", ANSWER_MS, &h);
	assert_int_equal(h.n, 0);
	assert_true(holds_all_answered(&h));
	holds_free(&h);
}

static void test_hand_over_and_take_over(void **state)
{
	struct fixture *f = *state;
	char own[32], other[32], want[PATH_MAX];
	struct holds h, got;
	int64_t start = 0, t0 = clock_elapsed_ns();

	own_and_other_names(f, own, other);
	holds_take(f->home, "agr-a", ANSWER_MS, &h);
	assert_int_equal(holds_hand_over(&h, "agr-a", t0), 0);
	assert_non_null(getenv(HOLDS_ENV));
	assert_true(holds_take_over(&got, f->home, "agr-a", &start));
	/* Read once: gone from the environment, not passed on. */
	assert_null(getenv(HOLDS_ENV));
	assert_int_equal(start, t0);
	assert_int_equal(got.n, h.n);
	for (size_t i = 0; i < h.n; i++) {
		const char *name = control_socket_name(h.calls[i].socket);

		snprintf(want, sizeof(want), "%s/run/%s", f->home, name);
		assert_string_equal(got.calls[i].socket, want);
		assert_int_equal(got.calls[i].rc, h.calls[i].rc);
		assert_int_equal(holds_may_hold(&got.calls[i]),
				 holds_may_hold(&h.calls[i]));
	}
	assert_string_equal(call_to(&got, own)->reply, "held");
	assert_true(holds_all_answered(&got));
	holds_free(&got);
	assert_false(holds_take_over(&got, f->home, "agr-a", &start));
	holds_free(&h);
}

static void test_take_over_of_another_agreement(void **state)
{
	struct fixture *f = *state;
	int64_t start = 7;
	struct holds h, got;

	holds_take(f->home, "agr-a", ANSWER_MS, &h);
	assert_int_equal(holds_hand_over(&h, "agr-a", clock_elapsed_ns()), 0);
	assert_false(holds_take_over(&got, f->home, "agr-b", &start));
	assert_int_equal(got.n, 0);
	assert_null(got.calls);
	assert_int_equal(start, 7);
	assert_null(getenv(HOLDS_ENV));
	holds_free(&h);
}

static void test_take_over_with_no_daemon(void **state)
{
	struct fixture *f = *state;
	int64_t start = 0;
	struct holds got;
	char text[64];
	int64_t t0 = clock_elapsed_ns();

	snprintf(text, sizeof(text), "%lld agr-a", (long long)t0);
	setenv(HOLDS_ENV, text, 1);
	assert_true(holds_take_over(&got, f->home, "agr-a", &start));
	assert_int_equal(got.n, 0);
	assert_int_equal(start, t0);
	assert_true(holds_all_answered(&got));
	holds_free(&got);
}

static void test_malformed_hand_over_is_refused_whole(void **state)
{
	/* NOW stands for the current time (a fresh hand-over), STALE for
	 * 11 s ago, LATER for 1 s ahead. */
	static const char *const bad[] = {
	    "",
	    "agr-a",
	    "NOW",
	    "0 agr-a",
	    "-3 agr-a",
	    "4x2 agr-a",
	    "STALE agr-a",
	    "LATER agr-a",
	    "99999999999999999999 agr-a",
	    "NOW agr-a 7.sock",
	    "NOW agr-a 7.sock:0",
	    "NOW agr-a 7.sock:0:2",
	    "NOW agr-a 7.sock:1:0",
	    "NOW agr-a 7.sock:x:1",
	    "NOW agr-a 7.sock::1",
	    "NOW agr-a 7.sock:-99999:1",
	    "NOW agr-a 7.txt:0:1",
	    "NOW agr-a ../7.sock:0:1",
	    "NOW agr-a 7.sock:0:1 8.sock:-111:",
	};
	struct fixture *f = *state;
	int64_t start = 9, now = clock_elapsed_ns();
	struct holds got;
	char text[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *rest = bad[i];
		long long t = 0;

		if (!strncmp(rest, "NOW", 3))
			t = now;
		else if (!strncmp(rest, "STALE", 5))
			t = now - 11LL * 1000000000;
		else if (!strncmp(rest, "LATER", 5))
			t = now + 1000000000;
		if (t) {
			rest += strcspn(rest, " ");
			snprintf(text, sizeof(text), "%lld%s", t, rest);
		} else {
			snprintf(text, sizeof(text), "%s", rest);
		}
		setenv(HOLDS_ENV, text, 1);
		if (holds_take_over(&got, f->home, "agr-a", &start))
			fail_msg("taken over: '%s'", text);
		assert_null(got.calls);
		assert_int_equal(got.n, 0);
		assert_int_equal(start, 9);
		assert_null(getenv(HOLDS_ENV));
	}
	/* And a well-formed one with two answers, for contrast. */
	snprintf(text, sizeof(text), "%lld agr-a 7.sock:0:1 8.sock:-111:0",
		 (long long)clock_elapsed_ns());
	setenv(HOLDS_ENV, text, 1);
	assert_true(holds_take_over(&got, f->home, "agr-a", &start));
	assert_int_equal(got.n, 2);
	assert_int_equal(got.calls[0].rc, 0);
	assert_true(holds_may_hold(&got.calls[0]));
	assert_int_equal(got.calls[1].rc, -ECONNREFUSED);
	assert_false(holds_may_hold(&got.calls[1]));
	holds_free(&got);
}

static void test_release_asks_only_the_daemons_that_may_hold(void **state)
{
	struct fixture *f = *state;
	char own[32], other[32];
	struct control_call *calls;
	struct holds h;
	size_t n;

	own_and_other_names(f, own, other);
	holds_take(f->home, "agr-a", ANSWER_MS, &h);
	assert_int_equal(h.n, 3);
	calls = holds_release(&h, &n);
	assert_non_null(calls);
	/* Not the daemon of agr-b (it holds nothing to end), not the dead
	 * socket. */
	assert_int_equal(n, 1);
	assert_string_equal(control_socket_name(calls[0].socket), own);
	assert_int_equal(calls[0].rc, 0);
	assert_string_equal(f->last, "cut");
	free(calls);
	holds_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_take_asks_every_daemon_of_the_home, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_slow_daemon_may_hold, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_no_daemon_no_calls, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_hand_over_and_take_over, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_take_over_of_another_agreement,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_take_over_with_no_daemon,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_malformed_hand_over_is_refused_whole, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_release_asks_only_the_daemons_that_may_hold, setup,
		teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
