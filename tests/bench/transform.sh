#!/usr/bin/env bash
# govfs policy-engine benchmark, run by hand as root: sequential `cat` of
# data.csv over a generated dataset under a keep-all agreement and under a
# masking one (a pseudonym, a mask, a date rule, a dropped column and a row
# filter passing about half the rows), next to Miller doing the same
# transform on the raw CSV.  Throughput is source CSV bytes per second of
# wall time to read the whole view.
#   tests/bench/transform.sh [SIZE_BYTES]      (default 1000000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-1000000000}
. tests/bench/lib.sh
mount_dir mnt_keep keep
mount_dir mnt_masked masked

command -v mlr >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq miller >/dev/null

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%FT%TZ), $(mlr --version)"
build/gen-visits --bytes "$size" --seed 42 >"$shm/visits.csv"
bytes=$(stat -c %s "$shm/visits.csv")
echo "source: $bytes bytes of generated health visits on tmpfs"
ctl init >/dev/null 2>&1
ctl dataset add visits --file "$shm/visits.csv" --schema demo/visits.schema.json >/dev/null

agreement() { # id, max_level, rows filter or "", columns JSON
	local rows=""
	[ -n "$3" ] && rows="\"rows\": \"$3\","
	cat >"$work/$1.json" <<JSON
{"id": "$1", "grantee": "bench", "scenario": "benchmark", "uids": [0],
 "max_level": $2, "valid_from": "2025-01-01T00:00:00Z",
 "valid_until": "2099-01-01T00:00:00Z",
 "datasets": [{"dataset": "visits", $rows "columns": $4}]}
JSON
	ctl agreement apply "$work/$1.json" >/dev/null
}
agreement agr-keep 4 "" '{"visit_id": "keep", "patient_id": "keep",
 "name": "keep", "phone": "keep", "district": "keep", "age": "keep",
 "visit_date": "keep", "visit_time": "keep", "cost": "keep", "notes": "keep"}'
agreement agr-masked 3 "age >= 50" '{"visit_id": "keep",
 "patient_id": "pseudonym", "phone": "mask:last4", "district": "keep",
 "age": "keep", "visit_date": "date:month", "visit_time": "keep",
 "cost": "keep", "notes": "keep"}'

for a in keep masked; do
	build/govfs --home "$work/home" --key-file "$work/key" \
		--agreement "agr-$a" "$work/$a"
done
kept=$(awk 'END { print NR - 1 }' "$mnt_masked/visits/data.csv")
total=$(awk 'END { print NR - 1 }' "$mnt_keep/visits/data.csv")
echo "rows: $total in keep-all, $kept pass the filter (csv lines, notes may span lines)"

run3() { # label, command...
	local label=$1 a b c m
	shift
	a=$(secs "$@"); b=$(secs "$@"); c=$(secs "$@")
	m=$(median3 "$a" "$b" "$c")
	printf '  %-44s %6s s  %s\n' "$label" "$m" "$(mbps "$bytes" "$m")"
	echo "$m" >"$work/last"
}
echo "sequential read of the whole view, source bytes per second, median of 3:"
run3 "cat keep-all data.csv" cat "$mnt_keep/visits/data.csv"
keep=$(cat "$work/last")
run3 "cat masked data.csv" cat "$mnt_masked/visits/data.csv"
masked=$(cat "$work/last")
run3 "mlr filter+sha256+mask+date+cut on raw CSV" mlr --icsv --ocsv \
	filter '$age >= 50' then \
	put '$patient_id = substr(sha256($patient_id), 0, 15);
	     $phone = "*******" . substr($phone, 7, 10);
	     $visit_date = substr($visit_date, 0, 6)' then \
	cut -x -f name "$shm/visits.csv"
mlr=$(cat "$work/last")
awk -v k="$keep" -v m="$masked" -v l="$mlr" 'BEGIN {
	printf "masked view: %.1fx Miller (target >= 8x), %.0f %% of keep-all (target >= 60 %%)\n", l / m, 100 * k / m }'
