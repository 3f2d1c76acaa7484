#!/usr/bin/env bash
# govfs benchmark, run by hand as root: every figure of the foundation issue,
# measured side by side in one run.  Not a timed test: it prints numbers.
#   tests/bench/run.sh [SIZE_BYTES]      (default 1000000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-1000000000}
. tests/bench/lib.sh
mount_dir mnt mnt
mount_dir bmnt bindfs

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%FT%TZ)"
build/gen-visits --bytes "$size" --seed 42 >"$shm/visits.csv"
bytes=$(stat -c %s "$shm/visits.csv")
echo "data: $bytes bytes of generated health visits on tmpfs"

ctl init >/dev/null 2>&1
t=$(secs build/govfsctl --home "$work/home" --key-file "$work/key" \
	dataset add bench --file "$shm/visits.csv")
echo "ingest: $t s, $(mbps "$bytes" "$t") (target >= 150 MB/s)"
keep_all_agreement "$work/agr.json"
t=$(secs build/govfsctl --home "$work/home" --key-file "$work/key" \
	agreement apply "$work/agr.json")
echo "apply (size index of every block): $t s"

build/govfs --home "$work/home" --key-file "$work/key" \
	--agreement agr-bench "$mnt"
bindfs -r "$shm" "$bmnt"
data=$mnt/bench/data.csv
dsize=$(stat -c %s "$data")
echo "data.csv: $dsize bytes (source $bytes)"

seq_read() { # label, command...
	local label=$1 a b c
	shift
	a=$(secs "$@"); b=$(secs "$@"); c=$(secs "$@")
	local m
	m=$(median3 "$a" "$b" "$c")
	printf '  %-34s %6s s  %s\n' "$label" "$m" "$(mbps "$dsize" "$m")"
}
echo "sequential read, median of 3:"
seq_read "cat raw CSV on tmpfs" cat "$shm/visits.csv"
seq_read "dd bs=1M raw CSV on tmpfs" dd if="$shm/visits.csv" bs=1M
seq_read "cat bindfs -r" cat "$bmnt/visits.csv"
seq_read "dd bs=1M bindfs -r" dd if="$bmnt/visits.csv" bs=1M
seq_read "cat govfs data.csv" cat "$data"
seq_read "dd bs=1M govfs data.csv" dd if="$data" bs=1M
echo "  (target: govfs >= 35 % of bindfs)"

pid=$(pgrep -f -- "--agreement agr-bench")
echo "4 KiB random pread:"
echo "  tmpfs:           $(build/tests/bench/pread-lat "$shm/visits.csv" 20000)"
echo "  govfs warm:      $(build/tests/bench/pread-lat "$data" 20000 --window 33554432 --warm)"
echo "  govfs cold:      $(build/tests/bench/pread-lat "$data" 2000 --seed 7)"
sync
echo 3 >/proc/sys/vm/drop_caches
echo "  govfs cold, page cache dropped too: $(build/tests/bench/pread-lat "$data" 2000 --seed 9)"
echo "  (targets: warm p50 <= 40 us, p99 <= 150 us; cold p50 <= 150 us)"
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo "daemon RSS now $((rss / 1024)) MB, peak $((hwm / 1024)) MB, cache budget 64 MB (target <= 64 MB beyond the cache)"
