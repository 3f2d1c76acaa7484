#!/usr/bin/env bash
# Build the libFuzzer targets with clang (in build-fuzz/) and run each for
# SECONDS (default 60) from its seed corpus.  Exit non-zero on any finding.
#   scripts/run-fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}

scripts/install-deps.sh
if [ ! -f build-fuzz/build.ninja ]; then
	CC=clang meson setup build-fuzz -Db_lundef=false >/dev/null
fi
# Quiet unless the build fails (ninja reports on stdout).
if ! out=$(ninja -C build-fuzz 2>&1); then
	printf '%s\n' "$out" >&2
	echo "run-fuzz: the fuzz targets do not build" >&2
	exit 1
fi
for target in build-fuzz/tests/fuzz/fuzz_*; do
	[ -f "$target" ] && [ -x "$target" ] || continue
	name=$(basename "$target")
	work=$(mktemp -d)
	cp -r "tests/fuzz/corpus/$name/." "$work/"
	dict=()
	[ -f "tests/fuzz/corpus/$name.dict" ] && dict=(-dict="tests/fuzz/corpus/$name.dict")
	echo "fuzz: $name for ${seconds}s"
	# An input that takes seconds is a finding too (-timeout), not only
	# a crash: libFuzzer would otherwise just note it as a slow unit.
	"$target" "${dict[@]}" -max_total_time="$seconds" -timeout=10 \
		-print_final_stats=0 -artifact_prefix="$work/" "$work" 2>&1 |
		tail -n 2
	rm -rf "$work"
done
echo "fuzz: no findings"
