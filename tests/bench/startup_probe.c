/*
 * startup-probe: a program that does nothing but say when it reached main
 * ("main at NS", CLOCK_MONOTONIC), linked statically, for cut-latency
 * --probe: how long merely starting a process takes under the readers'
 * load (the floor under any cut that an admin's command starts).
 */
#include <stdio.h>
#include <time.h>

int main(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	printf("main at %lld\n",
	       (long long)ts.tv_sec * 1000000000 + (long long)ts.tv_nsec);
	return 0;
}
