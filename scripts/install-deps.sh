#!/usr/bin/env bash
# Install what govfs needs to build, test and demo on Debian 12, if missing.
set -euo pipefail

packages=(
	build-essential meson ninja-build pkg-config
	libfuse3-dev fuse3 libsqlite3-dev sqlite3 libssl-dev libzstd-dev
	libjansson-dev libcmocka-dev
	python3 python3-pytest python3-pandas
	clang bindfs
)
# AES-256-GCM several times faster than OpenSSL 3.0's (meson option aead);
# Debian ships it for amd64 only, and the build falls back to OpenSSL.
if [ "$(dpkg --print-architecture)" = amd64 ]; then
	packages+=(libipsec-mb-dev)
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: need root to install: ${missing[*]}" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
