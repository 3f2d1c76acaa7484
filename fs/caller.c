/* caller: thread id to process id and name, through /proc. */
#include "caller.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Tgid line of /proc/<tid>/status, or tid if it cannot be read. */
static pid_t thread_group(pid_t tid)
{
	char path[64], line[256];
	pid_t tgid = tid;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return tid;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Tgid:", 5)) {
			tgid = (pid_t)strtol(line + 5, NULL, 10);
			break;
		}
	}
	fclose(f);
	return tgid > 0 ? tgid : tid;
}

static void process_name(pid_t pid, char *comm)
{
	char path[64];
	size_t n = 0;
	FILE *f;

	comm[0] = 0;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	n = fread(comm, 1, CALLER_COMM_LEN, f);
	fclose(f);
	while (n > 0 && (comm[n - 1] == '\n' || comm[n - 1] == 0))
		n--;
	comm[n] = 0;
}

void caller_resolve(uid_t uid, pid_t tid, struct caller *out)
{
	out->uid = uid;
	out->pid = thread_group(tid);
	process_name((pid_t)out->pid, out->comm);
}
