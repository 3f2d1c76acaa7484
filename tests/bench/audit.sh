#!/usr/bin/env bash
# What the audit log costs, run by hand as root: sequential and 4 KiB random
# reads of data.csv with the log on (build/) and off (build-noaudit/, the
# bench_audit_off option, never deployed), both mounted on the same home at
# once and read in alternation; then the log's size per record and its rate
# under a read flood.
#   tests/bench/audit.sh [SIZE_BYTES [ROUNDS]]   (default 1000000000, 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-1000000000}
rounds=${2:-10}
. tests/bench/lib.sh
mount_dir mnt mnt

bench_build build-noaudit bench_audit_off govfs

build/gen-visits --bytes "$size" --seed 42 >"$shm/visits.csv"
ctl init >/dev/null 2>&1
ctl dataset add bench --file "$shm/visits.csv" >/dev/null
keep_all_agreement "$work/agr.json"
ctl agreement apply "$work/agr.json" >/dev/null
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%FT%TZ); data.csv of $size bytes"

p50() { sed -n 's/^p50 \([0-9.]*\) us.*/\1/p'; }
# Both side by side for the whole run, so neither pays a mount the other
# does not; each round alternates which goes first (off-on, on-off, ...),
# so a drift of the machine falls on both alike.
mount_dir off mnt-off
mount_dir on mnt-on
build-noaudit/govfs --home "$work/home" --key-file "$work/key" --agreement agr-bench "$off"
build/govfs --home "$work/home" --key-file "$work/key" --agreement agr-bench "$on"
in_order() { # round: the two mounts, the first one first
	if (($1 % 2)); then echo "$off $on"; else echo "$on $off"; fi
}
echo "4 KiB random reads, cold (nothing cached yet), 3000 each:"
echo "  log off: $(build/tests/bench/pread-lat "$off/bench/data.csv" 3000 --seed 5)"
echo "  log on:  $(build/tests/bench/pread-lat "$on/bench/data.csv" 3000 --seed 5)"
echo "sequential: dd bs=1M of data.csv, $rounds rounds, the two alternating:"
seq_off=() seq_on=() ratios=()
for ((r = 1; r <= rounds; r++)); do
	for m in $(in_order "$r"); do
		t=$(secs dd if="$m/bench/data.csv" of=/dev/null bs=1M)
		if [ "$m" = "$off" ]; then a=$t; else b=$t; fi
	done
	seq_off+=("$a") seq_on+=("$b")
	ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f", b / a }')")
	echo "  round $r: off $a s, on $b s"
done
awk -v a="$(median "${seq_off[@]}")" -v b="$(median "${seq_on[@]}")" \
	-v r="$(median "${ratios[@]}")" 'BEGIN {
	printf "  median: off %.3f s, on %.3f s (%+.1f %%); median of the rounds'"'"' on/off: %+.1f %%\n",
		a, b, (b / a - 1) * 100, (r - 1) * 100 }'
echo "4 KiB random reads within 32 MiB, warm, 20000 each, $rounds rounds alternating:"
warm_off=() warm_on=()
for ((r = 1; r <= rounds; r++)); do
	for m in $(in_order "$r"); do
		t=$(build/tests/bench/pread-lat "$m/bench/data.csv" 20000 --window 33554432 --warm --seed "$r" | p50)
		if [ "$m" = "$off" ]; then warm_off+=("$t"); else warm_on+=("$t"); fi
	done
done
awk -v a="$(median "${warm_off[@]}")" -v b="$(median "${warm_on[@]}")" 'BEGIN {
	printf "  median of the p50s: off %.1f us, on %.1f us (%+.1f %%)\n", a, b, (b / a - 1) * 100 }'
echo "  p50s off: ${warm_off[*]}"
echo "  p50s on:  ${warm_on[*]}"
fusermount3 -u "$off"
fusermount3 -u "$on"

before=$(ctl audit export | wc -l)
build/govfs --home "$work/home" --key-file "$work/key" --agreement agr-bench "$mnt"
start=$(date +%s.%N)
build/tests/bench/pread-lat "$mnt/bench/data.csv" 200000 --window 33554432 --warm >/dev/null
end=$(date +%s.%N)
fusermount3 -u "$mnt"
after=$(ctl audit export | wc -l)
sqlite3 "$work/home/audit.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
bytes=$(stat -c %s "$work/home/audit.db")
awk -v n=$((after - before)) -v s="$start" -v e="$end" -v b="$bytes" -v t="$after" 'BEGIN {
	printf "read flood: %d records in %.2f s = %.0f records/s (one 4 KiB pread each)\n", n, e - s, n / (e - s)
	printf "audit.db: %d bytes for %d records = %.0f bytes per record\n", b, t, b / t }'
ctl audit verify
