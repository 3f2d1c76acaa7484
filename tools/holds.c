/*
 * holds: the daemons an admin's suspend or revoke holds, and their
 * hand-over from govfsctl's front to govfsctl-core (see holds.h).
 *
 * GOVFSCTL_HELD is "START ID NAME:RC:HELD ...": the front's start on the
 * monotonic clock (ns), the agreement, then for each daemon of the home
 * its socket's name in HOME/run, the call's result (0 or -errno) and 1 if
 * it answered "held".
 */
#include "holds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "home.h"
#include "ident.h"

/* How long a daemon may take to end a hold. */
#define RELEASE_TIMEOUT_MS 5000
/* How old a hand-over may be: the front execs the core at once, and a
 * daemon's hold lasts 30 s. */
#define HAND_OVER_MAX_AGE_NS (10LL * 1000000000)
#define HELD "held"

void holds_take(const char *home, const char *id, int timeout_ms,
		struct holds *h)
{
	char request[sizeof("hold ") + ID_MAX];

	*h = (struct holds){0};
	if (snprintf(request, sizeof(request), "hold %s", id) <
	    (int)sizeof(request))
		h->calls = control_call_home(home, request, timeout_ms, &h->n);
}

bool holds_may_hold(const struct control_call *c)
{
	return (!c->rc && !strcmp(c->reply, HELD)) || c->rc == -ETIMEDOUT;
}

bool holds_all_answered(const struct holds *h)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->calls[i].rc && !control_socket_gone(h->calls[i].rc))
			return false;
	return true;
}

struct control_call *holds_release(const struct holds *h, size_t *n)
{
	struct control_call *calls = calloc(h->n ? h->n : 1, sizeof(*calls));

	*n = 0;
	for (size_t i = 0; calls && i < h->n; i++)
		if (holds_may_hold(&h->calls[i]))
			calls[(*n)++].socket = h->calls[i].socket;
	if (*n)
		control_call_all(calls, *n, "cut", RELEASE_TIMEOUT_MS);
	return calls;
}

void holds_free(struct holds *h)
{
	free(h->calls);
	*h = (struct holds){0};
}

int holds_hand_over(const struct holds *h, const char *id, int64_t start_ns)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int rc;

	if (!f)
		return -ENOMEM;
	fprintf(f, "%lld %s", (long long)start_ns, id);
	for (size_t i = 0; i < h->n; i++)
		fprintf(f, " %s:%d:%d", control_socket_name(h->calls[i].socket),
			h->calls[i].rc,
			!h->calls[i].rc && !strcmp(h->calls[i].reply, HELD));
	/* A write that failed (out of memory) must not hand over a part. */
	rc = ferror(f) ? -ENOMEM : 0;
	if (fclose(f) && !rc)
		rc = -ENOMEM;
	if (!rc && setenv(HOLDS_ENV, text, 1))
		rc = -errno;
	free(text);
	return rc;
}

/* How one daemon answered, as a hand-over says. */
struct answer {
	int rc;
	bool held;
};

/* One "NAME:RC:HELD" of a hand-over into *answer, and the socket's path
 * in home into *path. */
static bool read_answer(char *word, const char *home, struct answer *answer,
			char **path)
{
	char *rc_text = strchr(word, ':'), *held_text, *end;
	long rc;

	if (!rc_text)
		return false;
	*rc_text++ = 0;
	held_text = strchr(rc_text, ':');
	if (!held_text)
		return false;
	*held_text++ = 0;
	errno = 0;
	rc = strtol(rc_text, &end, 10);
	if (errno || end == rc_text || *end || rc > 0 || rc < -4095 ||
	    (strcmp(held_text, "0") && strcmp(held_text, "1")) ||
	    strchr(word, '/') || !control_is_socket_name(word))
		return false;
	answer->rc = (int)rc;
	answer->held = held_text[0] == '1';
	return asprintf(path, "%s/%s/%s", home, HOME_RUN_DIR, word) >= 0;
}

/* The calls of a hand-over's n > 0 answers (words), to sockets in home. */
static struct control_call *rebuild_calls(const char *home, char **words,
					  size_t n)
{
	struct answer *answers = calloc(n, sizeof(*answers));
	char **paths = calloc(n, sizeof(*paths));
	struct control_call *calls = NULL;
	size_t read = 0;

	while (answers && paths && read < n &&
	       read_answer(words[read], home, &answers[read], &paths[read]))
		read++;
	if (read == n)
		calls = control_calls_to(paths, n);
	for (size_t i = 0; calls && i < n; i++) {
		calls[i].rc = answers[i].rc;
		strcpy(calls[i].reply, answers[i].held ? HELD : "");
	}
	for (size_t i = 0; i < read; i++)
		free(paths[i]);
	free(paths);
	free(answers);
	return calls;
}

/* The words of text, split at spaces in place: an array of *n, or NULL. */
static char **split_words(char *text, size_t *n)
{
	char **words = NULL, **grown, *save = NULL, *w;

	*n = 0;
	for (w = strtok_r(text, " ", &save); w;
	     w = strtok_r(NULL, " ", &save)) {
		grown = realloc(words, (*n + 1) * sizeof(*words));
		if (!grown) {
			free(words);
			*n = 0;
			return NULL;
		}
		words = grown;
		words[(*n)++] = w;
	}
	return words;
}

/* Whether a front that started at start_ns handed over just now. */
static bool fresh(long long start_ns)
{
	int64_t now = clock_elapsed_ns();

	return start_ns <= now && now - start_ns < HAND_OVER_MAX_AGE_NS;
}

bool holds_take_over(struct holds *h, const char *home, const char *id,
		     int64_t *start_ns)
{
	const char *value = getenv(HOLDS_ENV);
	char *text = value ? strdup(value) : NULL, **words = NULL, *end;
	size_t n = 0, k;
	long long start = 0;
	bool ok = false;

	*h = (struct holds){0};
	unsetenv(HOLDS_ENV);
	if (text)
		words = split_words(text, &n);
	if (n >= 2) {
		errno = 0;
		start = strtoll(words[0], &end, 10);
		ok = !errno && end != words[0] && !*end && start > 0 &&
		     fresh(start) && !strcmp(words[1], id);
	}
	k = ok ? n - 2 : 0;
	if (k) {
		h->calls = rebuild_calls(home, words + 2, k);
		h->n = h->calls ? k : 0;
		ok = h->calls != NULL;
	}
	if (ok)
		*start_ns = start;
	free(words);
	free(text);
	return ok;
}
