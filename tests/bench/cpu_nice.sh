#!/usr/bin/env bash
# What `-o cpu_nice=N` costs readers, run by hand as root: sequential reads
# (dd bs=1M) of a keep-all data.csv from a fresh mount (an empty block
# cache) served at nice 0 and at nice N, alternating for ROUNDS rounds;
# first on an otherwise idle machine, then with one busy loop per core
# running in a session of its own (another user's work).  Medians in MB/s.
#   tests/bench/cpu_nice.sh [SIZE_BYTES] [ROUNDS] [NICE]
#                           (default 200000000, 5, 19)
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-200000000}
rounds=${2:-5}
nice=${3:-19}
. tests/bench/lib.sh
mount_dir mnt mnt

build/gen-visits --bytes "$size" --seed 42 >"$shm/visits.csv"
ctl init >/dev/null 2>&1
ctl dataset add bench --file "$shm/visits.csv" >/dev/null
rm "$shm/visits.csv"
keep_all_agreement "$work/agr.json"
ctl agreement apply "$work/agr.json" >/dev/null
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%FT%TZ)"

# Seconds to read data.csv with dd from a fresh mount served at nice $1.
read_once() {
	local t
	build/govfs --home "$work/home" --key-file "$work/key" \
		--agreement agr-bench -o "cpu_nice=$1" "$mnt"
	t=$(secs dd if="$mnt/bench/data.csv" of=/dev/null bs=1M)
	fusermount3 -u "$mnt"
	echo "$t"
}

# One busy loop per core, each in a session of its own, until killed.
busy_pids=()
start_busy() {
	for _ in $(seq "$(nproc)"); do
		setsid sh -c 'while :; do :; done' &
		busy_pids+=($!)
	done
}
stop_busy() {
	kill "${busy_pids[@]}" 2>/dev/null || true
	wait "${busy_pids[@]}" 2>/dev/null || true
	busy_pids=()
}
trap 'stop_busy; bench_cleanup' EXIT

for load in idle busy; do
	[ "$load" = busy ] && start_busy
	at0=() atn=()
	for round in $(seq "$rounds"); do
		if ((round % 2)); then
			at0+=("$(read_once 0)")
			atn+=("$(read_once "$nice")")
		else
			atn+=("$(read_once "$nice")")
			at0+=("$(read_once 0)")
		fi
	done
	[ "$load" = busy ] && stop_busy
	echo "dd bs=1M of data.csv ($size bytes), machine $load, $rounds rounds:"
	printf '  %-12s %s s  (median %s)\n' "nice 0" "${at0[*]}" \
		"$(mbps "$size" "$(median "${at0[@]}")")"
	printf '  %-12s %s s  (median %s)\n' "nice $nice" "${atn[*]}" \
		"$(mbps "$size" "$(median "${atn[@]}")")"
done
