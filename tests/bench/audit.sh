#!/usr/bin/env bash
# What the audit log costs, run by hand as root: sequential and 4 KiB random
# reads of data.csv with the log on (build/) and off (build-noaudit/, the
# bench_audit_off option, never deployed), side by side on the same home;
# then the log's size per record and its rate under a read flood.
#   tests/bench/audit.sh [SIZE_BYTES]      (default 1000000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-1000000000}
. tests/bench/lib.sh
mnt=$work/mnt
mkdir -p "$mnt"
MOUNTS=("$mnt")

bench_build build-noaudit bench_audit_off govfs

build/gen-visits --bytes "$size" --seed 42 >"$shm/visits.csv"
ctl init >/dev/null 2>&1
ctl dataset add bench --file "$shm/visits.csv" >/dev/null
keep_all_agreement "$work/agr.json"
ctl agreement apply "$work/agr.json" >/dev/null
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%FT%TZ); data.csv of $size bytes"

p50() { sed -n 's/^p50 \([0-9.]*\) us.*/\1/p'; }
measure() { # label, govfs binary
	local label=$1 bin=$2 data=$mnt/bench/data.csv a b c w1 w2 w3
	"$bin" --home "$work/home" --key-file "$work/key" --agreement agr-bench "$mnt"
	a=$(secs dd if="$data" of=/dev/null bs=1M)
	b=$(secs dd if="$data" of=/dev/null bs=1M)
	c=$(secs dd if="$data" of=/dev/null bs=1M)
	w1=$(build/tests/bench/pread-lat "$data" 20000 --window 33554432 --warm --seed 1 | p50)
	w2=$(build/tests/bench/pread-lat "$data" 20000 --window 33554432 --warm --seed 2 | p50)
	w3=$(build/tests/bench/pread-lat "$data" 20000 --window 33554432 --warm --seed 3 | p50)
	printf '  %-8s dd bs=1M median %s s; 4 KiB warm p50 median %s us; cold: %s\n' \
		"$label" "$(median3 "$a" "$b" "$c")" "$(median3 "$w1" "$w2" "$w3")" \
		"$(build/tests/bench/pread-lat "$data" 3000 --seed 5)"
	fusermount3 -u "$mnt"
}
echo "reads with the audit log off and on, alternating, medians of 3:"
for round in 1 2; do
	measure "off #$round" build-noaudit/govfs
	measure "on #$round" build/govfs
done

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
