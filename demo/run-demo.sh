#!/usr/bin/env bash
# The govfs tour: install what is missing, build, create a demo home with a
# real public dataset (Palmer penguins) and a synthetic personal-data one,
# apply two sample agreements, mount them, and show what an analyst sees.
# Run as root (govfs mounts with allow_other).  Re-running starts afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
demo=${GOVFS_DEMO_DIR:-/tmp/govfs-demo}
rows=${GOVFS_DEMO_ROWS:-20000}

scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

for m in "$demo/penguins" "$demo/visits"; do
	if grep -qs " $m fuse" /proc/self/mounts; then
		fusermount3 -u "$m"
	fi
done
rm -rf "$demo"
mkdir -p "$demo/penguins" "$demo/visits"

ctl() { "$repo/build/govfsctl" --home "$demo/home" --key-file "$demo/master.key" "$@"; }

echo "== govfsctl: catalogue the datasets and apply the agreements"
ctl init
ctl dataset add penguins --file demo/penguins.csv \
	--schema demo/penguins.schema.json \
	--title "Palmer penguins" --provider "Palmer Station LTER (CC0)"
build/gen-visits --rows "$rows" --seed 7 >"$demo/visits.csv"
ctl dataset add health.visits --file "$demo/visits.csv" \
	--schema demo/visits.schema.json \
	--title "Health visits (synthetic)" --provider "gen-visits"
ctl agreement apply demo/agreement-demo.json
ctl agreement apply demo/agreement-visits.json
rm -f "$demo/visits.csv"

echo
echo "== govfs: mount each agreement"
build/govfs --home "$demo/home" --key-file "$demo/master.key" \
	--agreement agr-demo-001 "$demo/penguins"
build/govfs --home "$demo/home" --key-file "$demo/master.key" \
	--agreement agr-demo-visits "$demo/visits"

run() { echo; echo "\$ $*"; "$@"; }
run ls -l "$demo/visits" "$demo/visits/health.visits"
run cat "$demo/visits/README.txt"
run head -n 5 "$demo/visits/health.visits/data.csv"
run head -n 4 "$demo/penguins/penguins/data.csv"
run head -n 5 "$demo/visits/health.visits/views/cost_by_district.csv"
run cat "$demo/penguins/penguins/views/mass_by_species.csv"
run wc -c "$demo/penguins/penguins/data.csv"

echo
echo "== a live cut: suspend the visits agreement, see it refused, resume"
ctl_run() {
	run build/govfsctl --home "$demo/home" --key-file "$demo/master.key" "$@"
}
ctl_run mounts
ctl_run agreement suspend agr-demo-visits --reason "demo: report overdue"
run head -c 80 "$demo/visits/health.visits/data.csv" || true
run grep -A1 "^State" "$demo/visits/README.txt"
ctl_run agreement resume agr-demo-visits
run head -n 2 "$demo/visits/health.visits/data.csv"
ctl_run audit tail -n 6
cat <<MSG

Next:
  the agreements:      $repo/build/govfsctl --home $demo/home --key-file $demo/master.key agreement list
  a dry run:           edit demo/agreement-visits.json, then: ... agreement apply demo/agreement-visits.json --dry-run
  read with anything:  /usr/bin/python3 -c 'import pandas; print(pandas.read_csv("$demo/visits/health.visits/data.csv").describe())'
  as another user:     setpriv --reuid=65534 --regid=65534 --clear-groups cat $demo/visits/README.txt   (refused: uid not in the agreement)
  unmount:             fusermount3 -u $demo/penguins; fusermount3 -u $demo/visits
MSG
