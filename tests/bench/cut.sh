#!/usr/bin/env bash
# Issue 5's benchmark, run by hand as root: the latency from the start of
# `govfsctl agreement suspend` to the moment every one of 8 readers (4
# threads in a tight 4 KiB pread loop on each of 2 mounts of one agreement)
# has been refused, over REPS suspend/resume cycles: p50, p99, max.  All
# of it counts: govfsctl's start-up, the catalog commit, the notification,
# the daemons' drain and cache invalidation.  Not a timed test: it prints
# numbers (and fails if a read succeeded after suspend returned).  Then,
# under the same load, the floor: how long a static program that does
# nothing takes from fork to main, and to exit.
#   tests/bench/cut.sh [REPS]      (default 50)
# READERS_PER_FILE (default 4) and CUT_ARGS (more cut-latency options,
# such as --verbose, --ctl-nice N or --ctl-rt PRIO) change the setting;
# GOVFS_OPTS adds options to both daemons (GOVFS_OPTS="-o cpu_nice=19"),
# CUT_CTL names another govfsctl (a statically linked one, say).
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=${1:-50}
. tests/bench/lib.sh
mount_dir m1 mnt1
mount_dir m2 mnt2

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%FT%TZ)"
build/gen-visits --bytes 20000000 --seed 42 >"$shm/visits.csv"
ctl init >/dev/null 2>&1
ctl dataset add bench --file "$shm/visits.csv" >/dev/null
keep_all_agreement "$work/agr.json"
ctl agreement apply "$work/agr.json" >/dev/null
for m in "$m1" "$m2"; do
	build/govfs --home "$work/home" --key-file "$work/key" ${GOVFS_OPTS:-} \
		--agreement agr-bench "$m"
done
echo "agr-bench: $(ctl mounts | tail -n +2 | wc -l) live mounts (background govfs), data.csv of $(stat -c %s "$m1/bench/data.csv") bytes"
echo "$reps x (suspend, every reader refused, resume, every reader reads again):"
build/tests/bench/cut-latency --ctl ${CUT_CTL:-build/govfsctl} --home "$work/home" \
	--key-file "$work/key" --agreement agr-bench --reps "$reps" \
	--readers-per-file ${READERS_PER_FILE:-4} ${CUT_ARGS:-} "$m1/bench/data.csv" "$m2/bench/data.csv"
echo "(target: p99 <= 10 ms from the start of suspend to every reader refused)"
echo "the floor under the same load: starting a static program that does nothing, $reps times:"
build/tests/bench/cut-latency --ctl build/govfsctl --home "$work/home" \
	--key-file "$work/key" --agreement agr-bench --reps "$reps" \
	--readers-per-file ${READERS_PER_FILE:-4} ${CUT_ARGS:-} \
	--probe build/tests/bench/startup-probe "$m1/bench/data.csv" "$m2/bench/data.csv" | tail -n 3
