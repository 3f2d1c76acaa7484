#!/usr/bin/env bash
# govfs views benchmark, run by hand as root: computing an aggregation view
# (`agreement apply`, which computes it once) over generated visits, next
# to sqlite3 running the same GROUP BY on the same rows imported into a
# table (the import is not timed).  Wall time and peak RSS come from
# /usr/bin/time -v, one run each.
#   tests/bench/views.sh [ROWS]      (default 10000000)
# Cases: a view of 3 measures over 2 keys (district and month: a few
# hundred groups), then one of a million groups (visit_id in buckets of
# 10) for memory, then the same million groups counting distinct patients
# with patient_id as the entity (ten million distinct pairs: more than the
# budget holds, so it spills).  Targets: the first in <= 0.3x sqlite3's
# time, all in <= 512 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-10000000}
. tests/bench/lib.sh

# "wall seconds, peak RSS in MB" of a command, its output discarded.
measure() {
	/usr/bin/time -v "$@" 2>"$work/time" >/dev/null
	awk -F': ' '
		/Elapsed \(wall clock\)/ { n = split($2, t, ":");
			s = t[n] + (n > 1 ? t[n - 1] * 60 : 0) + (n > 2 ? t[n - 2] * 3600 : 0) }
		/Maximum resident set size/ { kb = $2 }
		END { printf "%.2f %.0f\n", s, kb / 1024 }' "$work/time"
}

view_agreement() { # file, id, view JSON
	cat >"$1" <<JSON
{"id": "$2", "grantee": "bench", "scenario": "views benchmark",
 "uids": [0], "max_level": 4,
 "valid_from": "2025-01-01T00:00:00Z", "valid_until": "2099-01-01T00:00:00Z",
 "datasets": [{"dataset": "visits", "records": false, "views": [$3]}]}
JSON
}

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%FT%TZ), $(sqlite3 --version | cut -d' ' -f1)"
build/gen-visits --rows "$rows" --seed 42 >"$shm/visits.csv"
echo "data: $rows rows, $(stat -c %s "$shm/visits.csv") bytes of generated health visits on tmpfs"
ctl init >/dev/null 2>&1
ctl dataset add visits --file "$shm/visits.csv" --schema demo/visits.schema.json >/dev/null

sqlite3 "$work/visits.db" <<SQL
CREATE TABLE visits(visit_id INTEGER, patient_id TEXT, name TEXT,
  phone TEXT, district TEXT, age INTEGER, visit_date TEXT,
  visit_time TEXT, cost REAL, notes TEXT);
.import --csv --skip 1 $shm/visits.csv visits
SQL
rm -f "$shm/visits.csv"
echo "sqlite3: $(sqlite3 "$work/visits.db" 'SELECT count(*) FROM visits') rows imported (not timed)"

view_agreement "$work/two-keys.json" agr-two-keys \
	'{"name": "v", "group_by": ["district", "visit_date:date:month"],
	  "measures": ["count", "sum:cost", "avg:cost"], "min_group": 2}'
read -r gt grss < <(measure build/govfsctl --home "$work/home" \
	--key-file "$work/key" agreement apply "$work/two-keys.json")
read -r st srss < <(measure sqlite3 "$work/visits.db" \
	"SELECT district, substr(visit_date, 1, 7), count(*), sum(cost),
	 avg(cost) FROM visits GROUP BY 1, 2 ORDER BY 1, 2")
echo "3 measures (count, sum, avg of cost), 2 keys (district, month):"
printf '  %-34s %7s s  %5s MB peak RSS\n' "govfsctl agreement apply" "$gt" "$grss"
printf '  %-34s %7s s  %5s MB peak RSS\n' "sqlite3 GROUP BY" "$st" "$srss"
awk -v g="$gt" -v s="$st" 'BEGIN {
	printf "  govfs / sqlite3: %.2fx (target <= 0.3x)\n", g / s }'

view_agreement "$work/million.json" agr-million \
	'{"name": "v", "group_by": ["visit_id:bucket:10"],
	  "measures": ["count", "sum:cost", "avg:cost"], "min_group": 2}'
read -r mt mrss < <(measure build/govfsctl --home "$work/home" \
	--key-file "$work/key" agreement apply "$work/million.json")
groups=$(sqlite3 "$work/visits.db" 'SELECT count(DISTINCT visit_id / 10) FROM visits')
echo "a million groups ($groups groups of visit_id / 10):"
printf '  %-34s %7s s  %5s MB peak RSS (target <= 512 MB)\n' \
	"govfsctl agreement apply" "$mt" "$mrss"

view_agreement "$work/distinct.json" agr-distinct \
	'{"name": "v", "group_by": ["visit_id:bucket:10"],
	  "measures": ["count", "sum:cost", "count_distinct:patient_id"],
	  "min_group": 2, "entity": "patient_id"}'
read -r dt drss < <(measure build/govfsctl --home "$work/home" \
	--key-file "$work/key" agreement apply "$work/distinct.json")
echo "a million groups, counting distinct patients (entity patient_id):"
printf '  %-34s %7s s  %5s MB peak RSS (target <= 512 MB)\n' \
	"govfsctl agreement apply" "$dt" "$drss"
