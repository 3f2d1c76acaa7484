#!/usr/bin/env bash
# Where the time of a cut goes, run by hand as root with perf (Debian's
# linux-perf): tests/bench/cut.sh under `perf record`, with uprobes on
# govfsctl's front (main, the hold's control_call_home and its return)
# and govfs (reply_hold) next to the scheduler's fork, exec and exit events, all on
# CLOCK_MONOTONIC.  For every `agreement suspend` the benchmark's admin
# shell forked, prints p50/p90/p99/max in ms of: fork -> exec (the child
# scheduled and the binary mapped), exec -> main (the dynamic loader),
# main -> hold sent, hold sent -> every daemon held, and fork -> exit;
# then the suspends whose first daemon hold came latest, phase by phase.
#   tests/bench/cut_phases.sh [REPS]    (default 50; env as for cut.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=${1:-50}
command -v perf >/dev/null || {
	echo "cut_phases: needs perf (apt-get install linux-perf)" >&2
	exit 1
}
out=$(mktemp -d /var/tmp/govfs-phases.XXXXXX)
drop_probes() {
	perf probe -q -d 'probe_govfsctl:*' 2>/dev/null || true
	perf probe -q -d 'probe_govfs:*' 2>/dev/null || true
	rm -rf "$out"
}
trap drop_probes EXIT
drop_probes
mkdir -p "$out"
ninja -C build >/dev/null
perf probe -q -x build/govfsctl -a main -a control_call_home \
	-a 'control_call_home%return'
perf probe -q -x build/govfs -a reply_hold
perf record -q -k CLOCK_MONOTONIC -a -o "$out/perf.data" \
	-e sched:sched_process_fork,sched:sched_process_exec,sched:sched_process_exit \
	-e 'probe_govfsctl:*' -e 'probe_govfs:*' -- tests/bench/cut.sh "$reps"
perf script -i "$out/perf.data" -F pid,time,event,trace 2>/dev/null >"$out/events"
/usr/bin/python3 - "$out/events" <<'PY'
import re, sys

LINE = re.compile(r"\s*(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)")
runs = {}   # child pid -> {phase: ms}
holds = []  # (ms, daemon pid)
for line in open(sys.argv[1]):
    m = LINE.match(line)
    if not m:
        continue
    pid, ms, event, rest = int(m[1]), float(m[2]) * 1e3, m[3], m[4]
    if event == "sched:sched_process_fork" and "comm=cut-latency" in rest:
        runs[int(re.search(r"child_pid=(\d+)", rest)[1])] = {"fork": ms}
    elif event == "probe_govfs:reply_hold":
        holds.append((ms, pid))
    elif pid in runs:
        name = event.split(":")[1].replace("sched_process_", "")
        runs[pid].setdefault(name, ms)

suspends = []
for r in runs.values():
    if "control_call_home" not in r:
        continue  # a resume, or the floor's no-op
    sent, back = r["control_call_home"], r.get("control_call_home__return")
    r["held"] = min((t for t, _ in holds if t >= sent), default=None)
    suspends.append(r)

PHASES = [("fork -> exec", "fork", "exec"), ("exec -> main", "exec", "main"),
          ("main -> hold sent", "main", "control_call_home"),
          ("hold sent -> first daemon held", "control_call_home", "held"),
          ("hold sent -> every daemon answered", "control_call_home",
           "control_call_home__return"),
          ("fork -> exit", "fork", "exit")]

def span(r, a, b):
    return r[b] - r[a] if r.get(a) is not None and r.get(b) is not None else None

def rank(v, p):
    return v[min(len(v) - 1, max(0, -(-len(v) * p // 100) - 1))]

print(f"{len(suspends)} suspends, phases in ms:")
for name, a, b in PHASES:
    v = sorted(x for x in (span(r, a, b) for r in suspends) if x is not None)
    if v:
        print(f"  {name:36s} p50 {rank(v, 50):8.2f}  p90 {rank(v, 90):8.2f}"
              f"  p99 {rank(v, 99):8.2f}  max {v[-1]:8.2f}")
print("the 5 suspends whose first hold landed latest after their fork:")
late = sorted((r for r in suspends if r.get("held") is not None),
              key=lambda r: r["held"] - r["fork"], reverse=True)[:5]
for r in late:
    print("  " + "  ".join(f"{name.split(' -> ')[1]} +{span(r, a, b):.1f}"
                          for name, a, b in PHASES[:4]
                          if span(r, a, b) is not None)
          + f"  (gate closed {r['held'] - r['fork']:.1f} after fork)")
PY
