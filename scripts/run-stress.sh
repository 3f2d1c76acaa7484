#!/usr/bin/env bash
# The long form of the stress test (tests/mount/test_stress.py): 16 readers
# over 3 mounts while revisions, suspends and resumes land, for SECONDS
# (default 600).  Uses the build in BUILD (default build/).
#   scripts/run-stress.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
ninja -C "$build" >/dev/null
GOVFS_STRESS_SECONDS=${1:-600} GOVFS_BIN=$build/govfs \
	GOVFSCTL_BIN=$build/govfsctl GEN_VISITS_BIN=$build/gen-visits \
	/usr/bin/python3 -m pytest -q -s tests/mount/test_stress.py
