#!/usr/bin/env bash
# Install what is missing, build, and run every test suite (unit, mount).
# With --sanitize, build with ASan+UBSan in build-asan/ and run the same,
# with OpenSSL's AES-GCM (meson option aead) where the plain build has
# ipsec-mb's, so that both are tested.
set -euo pipefail
cd "$(dirname "$0")/.."

builddir=build
setup_args=()
if [ "${1:-}" = "--sanitize" ]; then
	builddir=build-asan
	setup_args=(-Db_sanitize=address,undefined -Db_lundef=false -Daead=openssl)
fi

scripts/install-deps.sh
if [ ! -f "$builddir/build.ninja" ]; then
	meson setup "$builddir" "${setup_args[@]}"
fi
ninja -C "$builddir"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
meson test -C "$builddir" --print-errorlogs --num-processes 2
