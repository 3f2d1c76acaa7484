#!/usr/bin/env bash
# What encryption at rest costs, run by hand as root: sequential reads
# (dd bs=1M) of a keep-all data.csv with store blocks sealed (build/) and
# in clear (build-nocrypt/, the bench_crypt_off option, never deployed),
# each build on a home of its own (their store files differ), alternating
# for ROUNDS rounds (off-on, on-off, ...); medians and the overhead.  Every
# read is cold for the daemon (a fresh mount: an empty block cache); the
# first set also drops the page cache, the second reads store files the
# page cache holds, which leaves the CPU's share alone.
#   tests/bench/crypt.sh [SIZE_BYTES] [ROUNDS]   (default 1000000000, 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-1000000000}
rounds=${2:-10}
. tests/bench/lib.sh
mount_dir mnt mnt

bench_build build-nocrypt bench_crypt_off govfs govfsctl

# govfsctl of build $1 on its own home and key.
ctl_of() {
	local b=$1
	shift
	"$b/govfsctl" --home "$work/home-$b" --key-file "$work/key-$b" "$@"
}

build/gen-visits --bytes "$size" --seed 42 >"$shm/visits.csv"
keep_all_agreement "$work/agr.json"
for b in build build-nocrypt; do
	ctl_of "$b" init >/dev/null 2>&1
	ctl_of "$b" dataset add bench --file "$shm/visits.csv" >/dev/null
	ctl_of "$b" agreement apply "$work/agr.json" >/dev/null
done
rm "$shm/visits.csv"
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%FT%TZ)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

# Seconds to read data.csv with dd from a fresh mount of build $1; with
# $2 = cold, the page cache is dropped first.
read_once() {
	local b=$1 t
	"$b/govfs" --home "$work/home-$b" --key-file "$work/key-$b" \
		--agreement agr-bench "$mnt"
	if [ "$2" = cold ]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches
	fi
	t=$(secs dd if="$mnt/bench/data.csv" of=/dev/null bs=1M)
	fusermount3 -u "$mnt"
	echo "$t"
}

build/govfs --home "$work/home-build" --key-file "$work/key-build" \
	--agreement agr-bench "$mnt"
dsize=$(stat -c %s "$mnt/bench/data.csv")
fusermount3 -u "$mnt"
echo "data.csv: $dsize bytes; store: $(du -sb "$work/home-build/store" |
	cut -f1) bytes sealed, $(du -sb "$work/home-build-nocrypt/store" |
	cut -f1) bytes in clear"

for cache in cold warm; do
	on=() off=() ratios=()
	for round in $(seq "$rounds"); do
		# Which goes first alternates, so a drift falls on both alike.
		if ((round % 2)); then
			off+=("$(read_once build-nocrypt "$cache")")
			on+=("$(read_once build "$cache")")
		else
			on+=("$(read_once build "$cache")")
			off+=("$(read_once build-nocrypt "$cache")")
		fi
		ratios+=("$(awk -v a="${off[-1]}" -v b="${on[-1]}" 'BEGIN { print b / a }')")
	done
	m_off=$(median "${off[@]}")
	m_on=$(median "${on[@]}")
	echo "dd bs=1M of data.csv, page cache $cache, $rounds rounds alternating:"
	printf '  %-18s %s s  (median %s s, %s)\n' "clear (crypt off)" \
		"${off[*]}" "$m_off" "$(mbps "$dsize" "$m_off")"
	printf '  %-18s %s s  (median %s s, %s)\n' "sealed (crypt on)" \
		"${on[*]}" "$m_on" "$(mbps "$dsize" "$m_on")"
	awk -v on="$m_on" -v off="$m_off" -v r="$(median "${ratios[@]}")" 'BEGIN {
		printf "  overhead of encryption at rest: %+.1f %% of the medians, %+.1f %% the median of the rounds (target <= 5 %%)\n",
			(on - off) / off * 100, (r - 1) * 100 }'
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
