# Shared by the benchmark scripts (sourced, not run): a work directory on
# disk and one on tmpfs, removed at exit along with any mount in MOUNTS,
# a built tree, and timing helpers.
work=$(mktemp -d /var/tmp/govfs-bench.XXXXXX)
shm=$(mktemp -d /dev/shm/govfs-bench.XXXXXX)
MOUNTS=()

bench_cleanup() {
	for m in "${MOUNTS[@]}"; do
		fusermount3 -u "$m" 2>/dev/null || true
	done
	rm -rf "$work" "$shm"
}
trap bench_cleanup EXIT

scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

# A build for benchmarks only, in $1 with option $2 on, of targets $3...
bench_build() {
	local dir=$1 option=$2
	shift 2
	[ -f "$dir/build.ninja" ] || meson setup "$dir" "-D$option=true" >/dev/null
	ninja -C "$dir" "$@" >/dev/null
}

# Directory $work/$2 to mount on, in variable $1, unmounted at exit.
mount_dir() {
	printf -v "$1" '%s/%s' "$work" "$2"
	mkdir -p "$work/$2"
	MOUNTS+=("$work/$2")
}

ctl() { build/govfsctl --home "$work/home" --key-file "$work/key" "$@"; }
# Wall seconds a command takes, to 0.1 ms (bash's clock: no fork to time
# it), its output discarded.
secs() {
	local t0=${EPOCHREALTIME/[!0-9]/.} t1
	"$@" >/dev/null 2>&1 || return
	t1=${EPOCHREALTIME/[!0-9]/.}
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}
# "N MB/s" for bytes $1 in seconds $2.
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f MB/s", b / 1e6 / s }'; }
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
# The median of any count of numbers.
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# A keep-all agreement agr-bench on dataset bench (generated visits).
keep_all_agreement() { # file
	cat >"$1" <<JSON
{"id": "agr-bench", "grantee": "bench", "scenario": "benchmark",
 "uids": [0], "max_level": 4,
 "valid_from": "2025-01-01T00:00:00Z", "valid_until": "2099-01-01T00:00:00Z",
 "datasets": [{"dataset": "bench", "columns": {"visit_id": "keep",
  "patient_id": "keep", "name": "keep", "phone": "keep", "district": "keep",
  "age": "keep", "visit_date": "keep", "visit_time": "keep", "cost": "keep",
  "notes": "keep"}}]}
JSON
}
