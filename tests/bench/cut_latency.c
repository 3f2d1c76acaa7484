/*
 * cut-latency: how long after an admin starts `govfsctl agreement suspend`
 * every reader of the agreement has been refused (issue 5's benchmark).
 *
 *   cut-latency --ctl GOVFSCTL --home DIR --key-file F --agreement ID
 *               [--reps N] [--readers-per-file K] [--hammer]
 *               [--ctl-nice N] [--ctl-rt PRIO] [--same-session] [--verbose]
 *               [--probe PROG] FILE...
 *
 * K reader threads per FILE (a data.csv on each mount of the agreement)
 * each open their own handle and pread 4 KiB in a tight loop, walking the
 * file; the first repetition comes after a second of that.  Each
 * repetition: an admin's shell (a process of its own, see
 * launcher_start) notes CLOCK_MONOTONIC t0, forks and execs govfsctl
 * suspend; every reader notes the time of its first failed read; the
 * latency is the latest of those first failures minus t0.  Then resume and
 * wait until every reader has read successfully again (a read that started
 * after resume returned), and go on.  A refused reader waits for the
 * resume (with --hammer it goes on reading, and being refused, in its
 * tight loop, as a careless script would).  Prints p50, p99 and max of the
 * latency; of when the last read that succeeded began (the gate closed
 * then: what a reader that was not on a CPU at the time adds to the
 * latency is its own scheduling); of govfsctl's own wall time and of the
 * time govfsctl reports ("cut in X ms"), and of how long govfsctl was on
 * a CPU and how long it waited runnable for one (its /proc/PID/schedstat,
 * read before it is reaped), in milliseconds.
 *
 * With --probe PROG there is no cut: the admin's shell starts PROG
 * (startup-probe, which only prints when it reached main) REPS times
 * under the same load, and the times from fork to its main and to its
 * exit are reported: the floor under any cut that starts a process.
 *
 * The admin's shell runs in a session of its own, as an admin's login
 * does (the analysts' readers run in their sandbox): with the kernel's
 * autogroup scheduling a session shares the CPU as one.  --same-session
 * keeps it in the readers' session instead.  --ctl-nice N runs the admin's
 * shell, and the session it leads, at nice N (as `nice` and
 * /proc/self/autogroup would), and --ctl-rt PRIO at SCHED_FIFO priority
 * PRIO (as `chrt -f PRIO` would), to see what CPU priority buys.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_READERS 64
#define READ_SIZE 4096
#define WAIT_LIMIT_NS (10LL * 1000000000)
#define WARMUP_US 1000000

struct reader {
	pthread_t thread;
	int fd;
	off_t size;
	off_t start;
	/* The repetition whose cut this reader has seen, and when. */
	_Atomic int failed_rep;
	_Atomic int64_t first_fail_ns;
	_Atomic int64_t fail_start_ns; /* when that failed read started */
	/* The start of its latest successful read. */
	_Atomic int64_t ok_start_ns;
	_Atomic uint64_t reads, fails, other_errors;
	_Atomic int last_errno;
};

static struct reader readers[MAX_READERS];
static int nreaders;
static _Atomic int rep;	    /* the repetition being cut, from 1 */
static _Atomic int resumed; /* the last repetition resumed */
/* Refused readers sleep on it until the resume, and the main thread
 * until every reader has been refused: no polling, whose wake-ups would
 * compete with the readers still being cut (and with govfsctl). */
static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn; /* on CLOCK_MONOTONIC, as now_ns */
static int nfailed;	    /* readers refused in the repetition being cut */
static _Atomic bool stopping;
static bool hammer;	  /* keep reading once refused */
static bool verbose;	  /* one line per repetition */
static bool same_session; /* the admin's shell in the readers' session */
static int ctl_rt;	  /* its SCHED_FIFO priority, or 0 for none */
static const char *probe; /* --probe: start this instead of cutting */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void wait_for_resume(int cur)
{
	pthread_mutex_lock(&turn_lock);
	while (atomic_load(&resumed) != cur && !atomic_load(&stopping))
		pthread_cond_wait(&turn, &turn_lock);
	pthread_mutex_unlock(&turn_lock);
}

static void note_refused(void)
{
	pthread_mutex_lock(&turn_lock);
	if (++nfailed == nreaders)
		pthread_cond_broadcast(&turn);
	pthread_mutex_unlock(&turn_lock);
}

static void *read_loop(void *arg)
{
	struct reader *r = arg;
	char buf[READ_SIZE];
	off_t off = r->start;

	while (!atomic_load(&stopping)) {
		int cur = atomic_load(&rep);
		int64_t t;
		ssize_t n;

		/* Refused in this repetition: wait for the resume, rather
		 * than flood the daemons with reads they must refuse (and
		 * audit) while the other mount is being cut. */
		if (!hammer && atomic_load(&r->failed_rep) == cur &&
		    atomic_load(&resumed) != cur) {
			wait_for_resume(cur);
			continue;
		}
		t = now_ns();
		n = pread(r->fd, buf, sizeof(buf), off);

		atomic_fetch_add(&r->reads, 1);
		if (n >= 0) {
			atomic_store(&r->ok_start_ns, t);
			off = n == 0 || off + n >= r->size ? 0 : off + n;
			continue;
		}
		atomic_fetch_add(&r->fails, 1);
		atomic_store(&r->last_errno, errno);
		if (errno != EACCES)
			atomic_fetch_add(&r->other_errors, 1);
		if (atomic_load(&r->failed_rep) != cur) {
			atomic_store(&r->fail_start_ns, t);
			atomic_store(&r->first_fail_ns, now_ns());
			atomic_store(&r->failed_rep, cur);
			note_refused();
		}
	}
	return NULL;
}

struct ctl_args {
	const char *ctl, *home, *key, *agreement;
};

/* What the admin's shell is asked to run, and what came of it. */
struct launch_request {
	char verb[16];
};

struct launch_result {
	int64_t t0, t1;	    /* govfsctl's fork and its exit, CLOCK_MONOTONIC */
	int64_t tmain;	    /* when the probe reached main, or 0 */
	double reported_ms; /* the "cut in X ms" it printed, or -1 */
	double on_cpu_ms;   /* of its life: on a CPU, and runnable waiting */
	double queued_ms;   /* for one (/proc/PID/schedstat), or -1 */
	int ok;
};

static int launcher_fd = -1; /* the readers' end of the admin's shell */

/* Wait until child pid has exited, without reaping it; when it had. */
static int64_t wait_exit(pid_t pid)
{
	siginfo_t info;

	while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) < 0 &&
	       errno == EINTR)
		;
	return now_ns();
}

/*
 * How long the exited, not yet reaped child pid was on a CPU and how long
 * it waited runnable for one, from /proc/PID/schedstat; -1 if unknown.
 */
static void read_schedstat(pid_t pid, struct launch_result *res)
{
	char path[64];
	unsigned long long run_ns, queued_ns;
	FILE *f;

	res->on_cpu_ms = res->queued_ms = -1;
	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fscanf(f, "%llu %llu", &run_ns, &queued_ns) == 2) {
		res->on_cpu_ms = (double)run_ns / 1e6;
		res->queued_ms = (double)queued_ns / 1e6;
	}
	fclose(f);
}

/*
 * Run govfsctl agreement VERB ID --reason ... (fork and exec, as a shell
 * would) and fill *res.
 */
static void run_ctl(const struct ctl_args *a, const struct launch_request *q,
		    struct launch_result *res)
{
	char *argv[] = {(char *)a->ctl,
			"agreement",
			(char *)q->verb,
			(char *)a->agreement,
			"--reason",
			"cut-latency benchmark",
			"--home",
			(char *)a->home,
			"--key-file",
			(char *)a->key,
			NULL};
	char out[4096];
	size_t len = 0;
	int pipefd[2], status = -1;
	pid_t pid;
	const char *at;

	res->ok = 0;
	res->reported_ms = -1;
	if (pipe2(pipefd, O_CLOEXEC))
		return;
	res->t0 = now_ns();
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return;
	}
	if (!pid) {
		char *probe_argv[] = {(char *)probe, NULL};

		dup2(pipefd[1], STDOUT_FILENO);
		if (!strcmp(q->verb, "probe"))
			execv(probe, probe_argv);
		else
			execv(a->ctl, argv);
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		ssize_t n = read(pipefd[0], out + len, sizeof(out) - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(out) - 1)
			break;
	}
	out[len] = 0;
	close(pipefd[0]);
	res->t1 = wait_exit(pid);
	read_schedstat(pid, res);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	at = strstr(out, " cut in ");
	if (at)
		res->reported_ms = strtod(at + 8, NULL);
	at = strstr(out, "main at ");
	res->tmain = at ? strtoll(at + 8, NULL, 10) : 0;
	res->ok = WIFEXITED(status) && !WEXITSTATUS(status);
	if (!res->ok)
		fprintf(stderr, "cut-latency: govfsctl agreement %s: %s\n",
			q->verb, out);
}

/*
 * The admin's shell: a process of its own, forked before the readers
 * start, that runs each govfsctl.  Unless --same-session it is in a
 * session of its own, as an admin's login is (the analysts' readers run
 * in their sandbox): with the kernel's autogroup scheduling a session
 * shares the CPU as one.  So neither the fork nor the start of govfsctl
 * happens among the readers' threads.
 */
/* Run this process, and the session it leads if it does, at nice n. */
static int renice_session(int n)
{
	char value[16];
	int fd, len = snprintf(value, sizeof(value), "%d", n);

	if (setpriority(PRIO_PROCESS, 0, n))
		return -1;
	if (same_session)
		return 0;
	fd = open("/proc/self/autogroup", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (write(fd, value, (size_t)len) != len) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static int launcher_start(const struct ctl_args *a, int nice)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid) {
		close(sv[1]);
		launcher_fd = sv[0];
		return 0;
	}
	close(sv[0]);
	if (!same_session && setsid() < 0)
		_exit(1);
	if (nice && renice_session(nice)) {
		perror("cut-latency: --ctl-nice");
		_exit(1);
	}
	if (ctl_rt && sched_setscheduler(
			  0, SCHED_FIFO,
			  &(struct sched_param){.sched_priority = ctl_rt})) {
		perror("cut-latency: --ctl-rt");
		_exit(1);
	}
	for (;;) {
		struct launch_request q;
		struct launch_result res;

		if (read(sv[1], &q, sizeof(q)) != (ssize_t)sizeof(q))
			_exit(0);
		q.verb[sizeof(q.verb) - 1] = 0;
		run_ctl(a, &q, &res);
		if (write(sv[1], &res, sizeof(res)) != (ssize_t)sizeof(res))
			_exit(1);
	}
}

/* Have the admin's shell run govfsctl agreement VERB; 0 if it succeeded. */
static int launch(const char *verb, struct launch_result *res)
{
	struct launch_request q;

	snprintf(q.verb, sizeof(q.verb), "%s", verb);
	if (write(launcher_fd, &q, sizeof(q)) != (ssize_t)sizeof(q) ||
	    read(launcher_fd, res, sizeof(*res)) != (ssize_t)sizeof(*res))
		return -1;
	return res->ok ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile p (0..100) of the n sorted values. */
static double percentile(const double *sorted, int n, double p)
{
	int rank = (int)(p / 100.0 * n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

static void summary(const char *label, double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	printf("%-44s p50 %7.2f ms   p99 %7.2f ms   max %7.2f ms\n", label,
	       percentile(v, n, 50), percentile(v, n, 99), v[n - 1]);
}

/* summary of v, when every value is known (none is -1). */
static void summary_if_known(const char *label, double *v, int n)
{
	for (int i = 0; i < n; i++) {
		if (v[i] < 0) {
			printf("%-44s unknown (no /proc/PID/schedstat)\n",
			       label);
			return;
		}
	}
	summary(label, v, n);
}

/* Wait until every reader has been refused; false after WAIT_LIMIT_NS. */
static bool wait_all_refused(int64_t t0)
{
	int64_t deadline = t0 + WAIT_LIMIT_NS;
	struct timespec at = {.tv_sec = deadline / 1000000000,
			      .tv_nsec = deadline % 1000000000};
	int rc = 0;

	pthread_mutex_lock(&turn_lock);
	while (nfailed < nreaders && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&turn, &turn_lock, &at);
	rc = nfailed == nreaders;
	pthread_mutex_unlock(&turn_lock);
	return rc;
}

/* Start repetition r: nobody refused in it yet. */
static void start_rep(int r)
{
	pthread_mutex_lock(&turn_lock);
	nfailed = 0;
	atomic_store(&rep, r);
	pthread_mutex_unlock(&turn_lock);
}

/* Resume repetition r: wake the readers it refused. */
static void resume_rep(int r)
{
	pthread_mutex_lock(&turn_lock);
	atomic_store(&resumed, r);
	pthread_cond_broadcast(&turn);
	pthread_mutex_unlock(&turn_lock);
}

/* Whether every reader has read successfully since t. */
static bool all_read_since(int64_t t)
{
	for (int i = 0; i < nreaders; i++)
		if (atomic_load(&readers[i].ok_start_ns) <= t)
			return false;
	return true;
}

/* --probe: start the probe reps times, 50 ms apart, under the load. */
static int probe_startup(int reps, double *to_main, double *to_exit,
			 double *queued)
{
	for (int i = 0; i < reps; i++) {
		struct launch_result res;

		if (launch("probe", &res) || !res.tmain)
			return 1;
		to_main[i] = (double)(res.tmain - res.t0) / 1e6;
		to_exit[i] = (double)(res.t1 - res.t0) / 1e6;
		queued[i] = res.queued_ms;
		usleep(50000);
	}
	summary("fork of a static no-op -> its main:", to_main, reps);
	summary("fork of a static no-op -> its exit:", to_exit, reps);
	summary_if_known("static no-op, runnable, waiting for a CPU:", queued,
			 reps);
	return 0;
}

static const char usage[] =
    "usage: cut-latency --ctl GOVFSCTL --home DIR --key-file F --agreement "
    "ID [--reps N] [--readers-per-file K] [--hammer] [--ctl-nice N] "
    "[--ctl-rt PRIO] [--same-session] "
    "[--verbose] [--probe PROG] FILE...\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ctl", required_argument, NULL, 'c'},
	    {"home", required_argument, NULL, 'H'},
	    {"key-file", required_argument, NULL, 'k'},
	    {"agreement", required_argument, NULL, 'a'},
	    {"reps", required_argument, NULL, 'n'},
	    {"readers-per-file", required_argument, NULL, 'r'},
	    {"hammer", no_argument, NULL, 'h'},
	    {"ctl-nice", required_argument, NULL, 'N'},
	    {"ctl-rt", required_argument, NULL, 'R'},
	    {"same-session", no_argument, NULL, 'S'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"probe", required_argument, NULL, 'p'},
	    {NULL, 0, NULL, 0},
	};
	struct ctl_args a = {0};
	int reps = 50, per_file = 4, nice_inc = 0, opt, nfiles;
	double *lat, *closed, *wall, *reported, *resume_wall, *on_cpu, *queued;
	int bad = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			a.ctl = optarg;
			break;
		case 'H':
			a.home = optarg;
			break;
		case 'k':
			a.key = optarg;
			break;
		case 'a':
			a.agreement = optarg;
			break;
		case 'n':
			reps = atoi(optarg);
			break;
		case 'r':
			per_file = atoi(optarg);
			break;
		case 'h':
			hammer = true;
			break;
		case 'S':
			same_session = true;
			break;
		case 'N':
			nice_inc = atoi(optarg);
			break;
		case 'R':
			ctl_rt = atoi(optarg);
			break;
		case 'v':
			verbose = true;
			break;
		case 'p':
			probe = optarg;
			break;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	nfiles = argc - optind;
	if (!a.ctl || !a.home || !a.key || !a.agreement || nfiles < 1 ||
	    reps < 1 || per_file < 1 || nfiles * per_file > MAX_READERS) {
		fputs(usage, stderr);
		return 2;
	}
	lat = calloc((size_t)reps, sizeof(double));
	closed = calloc((size_t)reps, sizeof(double));
	wall = calloc((size_t)reps, sizeof(double));
	reported = calloc((size_t)reps, sizeof(double));
	resume_wall = calloc((size_t)reps, sizeof(double));
	on_cpu = calloc((size_t)reps, sizeof(double));
	queued = calloc((size_t)reps, sizeof(double));
	if (!lat || !closed || !wall || !reported || !resume_wall || !on_cpu ||
	    !queued)
		return 1;

	{
		pthread_condattr_t attr;

		pthread_condattr_init(&attr);
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		pthread_cond_init(&turn, &attr);
		pthread_condattr_destroy(&attr);
	}
	if (launcher_start(&a, nice_inc)) {
		perror("cut-latency: admin's shell");
		return 1;
	}
	for (int f = 0; f < nfiles; f++) {
		for (int k = 0; k < per_file; k++) {
			struct reader *r = &readers[nreaders];
			struct stat st;

			r->fd = open(argv[optind + f], O_RDONLY | O_CLOEXEC);
			if (r->fd < 0 || fstat(r->fd, &st)) {
				perror(argv[optind + f]);
				return 1;
			}
			r->size = st.st_size;
			/* Spread the readers over the file. */
			r->start =
			    st.st_size / per_file * k / READ_SIZE * READ_SIZE;
			nreaders++;
		}
	}
	for (int i = 0; i < nreaders; i++)
		if (pthread_create(&readers[i].thread, NULL, read_loop,
				   &readers[i])) {
			fprintf(stderr, "cut-latency: pthread_create failed\n");
			return 1;
		}
	/* Everybody reading before the first cut. */
	{
		int64_t t = now_ns();

		while (!all_read_since(t)) {
			if (now_ns() - t > WAIT_LIMIT_NS) {
				fprintf(stderr,
					"cut-latency: readers do not "
					"read (errno %d)\n",
					atomic_load(&readers[0].last_errno));
				return 1;
			}
			usleep(1000);
		}
	}
	/* Then a second of it, so that the first cut finds the daemons in
	 * their steady state (worker threads started, caches warm). */
	usleep(WARMUP_US);
	if (probe)
		return probe_startup(reps, lat, wall, queued);

	for (int i = 0; i < reps; i++) {
		struct launch_result res;
		int64_t t0, t1, t2;
		double ms;

		start_rep(i + 1);
		if (launch("suspend", &res))
			return 1;
		t0 = res.t0;
		t1 = res.t1;
		reported[i] = res.reported_ms;
		on_cpu[i] = res.on_cpu_ms;
		queued[i] = res.queued_ms;
		if (!wait_all_refused(t0)) {
			fprintf(stderr,
				"cut-latency: repetition %d: not every "
				"reader failed within 10 s\n",
				i + 1);
			return 1;
		}
		lat[i] = 0;
		closed[i] = 0;
		for (int r = 0; r < nreaders; r++) {
			ms = (double)(atomic_load(&readers[r].first_fail_ns) -
				      t0) /
			     1e6;
			if (ms > lat[i])
				lat[i] = ms;
			ms = (double)(atomic_load(&readers[r].ok_start_ns) -
				      t0) /
			     1e6;
			if (ms > closed[i])
				closed[i] = ms;
			/* A read that started after govfsctl returned and
			 * succeeded: the contract is broken. */
			if (atomic_load(&readers[r].ok_start_ns) > t1)
				bad++;
		}
		wall[i] = (double)(t1 - t0) / 1e6;
		if (verbose) {
			/* When the failing reads started and ended, from t0. */
			printf("rep %2d: govfsctl %7.2f ms (cut in %7.2f; "
			       "on a CPU %.2f, queued %.2f); refused at",
			       i + 1, wall[i], reported[i], res.on_cpu_ms,
			       res.queued_ms);
			for (int r = 0; r < nreaders; r++)
				printf(" %.1f/%.1f",
				       (double)(atomic_load(
						    &readers[r].fail_start_ns) -
						t0) /
					   1e6,
				       (double)(atomic_load(
						    &readers[r].first_fail_ns) -
						t0) /
					   1e6);
			printf("\n");
		}

		if (launch("resume", &res))
			return 1;
		t2 = res.t1;
		resume_rep(i + 1);
		resume_wall[i] = (double)(t2 - res.t0) / 1e6;
		while (!all_read_since(t2)) {
			if (now_ns() - t2 > WAIT_LIMIT_NS) {
				fprintf(stderr,
					"cut-latency: repetition %d: readers "
					"do not read again after resume\n",
					i + 1);
				return 1;
			}
			usleep(200);
		}
	}
	atomic_store(&stopping, true);
	resume_rep(reps);
	for (int i = 0; i < nreaders; i++)
		pthread_join(readers[i].thread, NULL);

	{
		uint64_t reads = 0, fails = 0, other = 0;

		for (int i = 0; i < nreaders; i++) {
			reads += readers[i].reads;
			fails += readers[i].fails;
			other += readers[i].other_errors;
			close(readers[i].fd);
		}
		printf("%d readers on %d file%s, %d repetitions, %llu reads "
		       "(%llu refused, %llu with another error than EACCES)\n",
		       nreaders, nfiles, nfiles == 1 ? "" : "s", reps,
		       (unsigned long long)reads, (unsigned long long)fails,
		       (unsigned long long)other);
		if (other)
			bad++;
	}
	summary("suspend start -> every reader refused:", lat, reps);
	summary("suspend start -> last read let through began:", closed, reps);
	summary("govfsctl suspend, wall time:", wall, reps);
	summary("govfsctl suspend, its own \"cut in\":", reported, reps);
	summary_if_known("govfsctl suspend, on a CPU:", on_cpu, reps);
	summary_if_known(
	    "govfsctl suspend, runnable, waiting for a CPU:", queued, reps);
	summary("govfsctl resume, wall time:", resume_wall, reps);
	if (bad)
		printf("ANOMALIES: %d (a read succeeded after suspend "
		       "returned, or an unexpected errno)\n",
		       bad);
	free(lat);
	free(closed);
	free(wall);
	free(reported);
	free(on_cpu);
	free(queued);
	free(resume_wall);
	return bad ? 1 : 0;
}
