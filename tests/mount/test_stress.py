"""
Stress: 16 reader processes over 3 mounts of 2 agreements doing random
pread, mmap, stat and readdir while a driver applies revisions, suspends and
resumes every few hundred milliseconds.  It passes when nothing crashes or
hangs (a watchdog fails any operation slower than 5 s), every byte served
matches the view of a revision the handle could have been opened under,
the only refusals are those the lifecycle explains (EACCES while cut,
ESTALE after a revision), the daemons' memory stays flat (plain builds),
they stop cleanly (so LeakSanitizer is clean in the sanitizer build), and
`audit verify` passes at the end.

The short form runs in the suite (GOVFS_STRESS_SECONDS, default 20);
scripts/run-stress.sh runs the long form (10 minutes).
"""
import errno
import faulthandler
import mmap
import multiprocessing
import os
import random
import signal
import subprocess
import threading
import time

import govfs_testlib as lib

SECONDS = float(os.environ.get("GOVFS_STRESS_SECONDS", "20"))
READERS = 16
WATCHDOG_S = 5.0
RSS_GROWTH_MAX_KB = 48 * 1024

# Two rule sets that give different bytes: revisions alternate between them.
RULES = [
    {"visit_id": "keep", "name": "mask:first1", "district": "keep",
     "cost": "keep", "notes": "keep"},
    {"visit_id": "keep", "district": "keep", "cost": "bucket:100",
     "visit_date": "date:month"},
]
AGREEMENTS = ["agr-stress-a", "agr-stress-b"]
# Mount i serves agreement MOUNT_AGR[i]: two mounts of a, one of b.
MOUNT_AGR = [0, 0, 1]
ALLOWED = {errno.EACCES, errno.ESTALE}


def agreement_doc(agr, rules):
    return lib.agreement(agr, {"visits": rules})


class HandleCheck:
    """What one open handle may serve: the expectations (one per rule
    set) consistent with every read so far."""

    def __init__(self, expectations):
        self.candidates = list(expectations)

    def check(self, off, want_len, got):
        still = [e for e in self.candidates
                 if e[off:off + want_len] == got]
        self.candidates = still
        return bool(still)


def timed(stats, fn, *args):
    t0 = time.monotonic()
    try:
        return fn(*args)
    finally:
        took = time.monotonic() - t0
        if took > stats["max_op_s"]:
            stats["max_op_s"] = took


def read_handle(rng, path, expectations, stats):
    """Open data.csv and pread at random; verify every byte."""
    fd = timed(stats, os.open, path, os.O_RDONLY)
    try:
        check = HandleCheck(expectations)
        longest = max(len(e) for e in expectations)
        for _ in range(rng.randint(3, 20)):
            off = rng.randrange(0, longest)
            n = rng.choice([1, 100, 4096, 65536, 200000])
            got = timed(stats, os.pread, fd, n, off)
            stats["reads"] += 1
            stats["bytes"] += len(got)
            if not check.check(off, n, got):
                stats["failures"].append(
                    "%s: %d bytes at %d match no revision" %
                    (path, len(got), off))
                return
    finally:
        os.close(fd)


def mmap_child(path, expectations, off, n):
    """In a child: map data.csv privately and compare a slice.  Exit 0 on
    a match, 3 on a mismatch; a cut may kill it with SIGBUS."""
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    if size == 0:
        os._exit(0)
    m = mmap.mmap(fd, size, mmap.MAP_PRIVATE, mmap.PROT_READ)
    off %= size
    got = m[off:off + n]
    ok = any(e[off:off + len(got)] == got for e in expectations)
    os._exit(0 if ok else 3)


def read_mapping(rng, path, expectations, stats):
    off, n = rng.randrange(0, 1 << 20), rng.choice([100, 8192, 100000])
    pid = os.fork()
    if pid == 0:
        faulthandler.disable()  # a SIGBUS here is expected, not a crash
        try:
            mmap_child(path, expectations, off, n)
        except OSError:
            os._exit(0)  # refused (cut, stale): allowed
        except ValueError:
            os._exit(0)  # a revision changed the size between stat and map
        except Exception:
            os._exit(4)
    _, status = timed(stats, os.waitpid, pid, 0)
    stats["maps"] += 1
    if os.WIFSIGNALED(status):
        if os.WTERMSIG(status) != signal.SIGBUS:
            stats["failures"].append("mmap child died of signal %d" %
                                     os.WTERMSIG(status))
    elif os.WEXITSTATUS(status) != 0:
        stats["failures"].append("mmap of %s: exit %d (3: wrong bytes)" %
                                 (path, os.WEXITSTATUS(status)))


def browse(rng, mount, stats):
    timed(stats, os.stat, os.path.join(mount, "README.txt"))
    timed(stats, os.listdir, mount)
    timed(stats, os.listdir, os.path.join(mount, "visits"))
    with open(os.path.join(mount, "README.txt"), "rb") as f:
        timed(stats, f.read)
    stats["browses"] += 1


def reader_main(seed, mounts, expectations, deadline, out):
    rng = random.Random(seed)
    stats = {"reads": 0, "bytes": 0, "maps": 0, "browses": 0,
             "refused": 0, "max_op_s": 0.0, "failures": []}
    while time.monotonic() < deadline and len(stats["failures"]) < 5:
        i = rng.randrange(len(mounts))
        path = os.path.join(mounts[i], "visits", "data.csv")
        exp = expectations[MOUNT_AGR[i]]
        try:
            what = rng.random()
            if what < 0.70:
                read_handle(rng, path, exp, stats)
            elif what < 0.80:
                read_mapping(rng, path, exp, stats)
            else:
                browse(rng, mounts[i], stats)
        except OSError as e:
            if e.errno in ALLOWED:
                stats["refused"] += 1
            else:
                stats["failures"].append("%s: %s" % (path, e))
    out.put(stats)


def drive(home, deadline, log):
    """Apply revisions, suspend and resume at random until deadline."""
    rng = random.Random(7)
    rules_now = [0, 0]
    suspended = [False, False]
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.15, 0.4))
        a = rng.randrange(2)
        agr = AGREEMENTS[a]
        if suspended[a]:
            home.ok("agreement", "resume", agr)
            suspended[a] = False
            log.append(("resume", agr))
        elif rng.random() < 0.4:
            home.ok("agreement", "suspend", agr, "--reason", "stress")
            suspended[a] = True
            log.append(("suspend", agr))
        else:
            rules_now[a] ^= 1
            home.apply(agreement_doc(agr, RULES[rules_now[a]]))
            log.append(("apply", agr))
    for a, agr in enumerate(AGREEMENTS):
        if suspended[a]:
            home.ok("agreement", "resume", agr)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def sanitized(binary):
    res = subprocess.run(["ldd", binary], capture_output=True, text=True)
    return "libasan" in res.stdout


def test_stress(module_dir):
    home = lib.Home(module_dir)
    src = lib.gen_visits(module_dir / "v.csv", 20000, seed=5)
    home.add("visits", src)
    data = src.read_bytes()
    expect = [lib.expected_data_csv(data, r) for r in RULES]
    for agr in AGREEMENTS:
        home.apply(agreement_doc(agr, RULES[0]))
    mounts = [lib.start_govfs(home, AGREEMENTS[a],
                              lib.new_mountpoint(module_dir))
              for a in MOUNT_AGR]
    try:
        paths = [str(m.path) for m in mounts]
        for p, a in zip(paths, MOUNT_AGR):
            assert lib.read_all(os.path.join(p, "visits", "data.csv")) == \
                expect[0], a
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        start = time.monotonic()
        deadline = start + SECONDS
        readers = [ctx.Process(target=reader_main,
                               args=(i, paths, [expect, expect], deadline,
                                     out))
                   for i in range(READERS)]
        for r in readers:
            r.start()
        log = []
        driver = threading.Thread(target=drive, args=(home, deadline, log))
        driver.start()
        time.sleep(min(3.0, SECONDS / 5))
        rss_early = [rss_kb(m.proc.pid) for m in mounts]
        driver.join(SECONDS + 120)
        assert not driver.is_alive(), "the driver hung"
        results = [out.get(timeout=WATCHDOG_S * 4 + 60) for _ in readers]
        for r in readers:
            r.join(30)
            assert r.exitcode == 0, r.exitcode
        rss_late = [rss_kb(m.proc.pid) for m in mounts]

        print("stress: %d s, %s reads (%s bytes), %s maps, %s browses, "
              "%s refused, %d lifecycle changes, slowest op %.3f s" % (
                  SECONDS, sum(s["reads"] for s in results),
                  sum(s["bytes"] for s in results),
                  sum(s["maps"] for s in results),
                  sum(s["browses"] for s in results),
                  sum(s["refused"] for s in results), len(log),
                  max(s["max_op_s"] for s in results)))
        failures = [f for s in results for f in s["failures"]]
        assert not failures, failures[:10]
        slowest = max(s["max_op_s"] for s in results)
        assert slowest < WATCHDOG_S, "an operation took %.1f s" % slowest
        assert sum(s["reads"] for s in results) > 100, results
        assert sum(s["bytes"] for s in results) > 0
        assert sum(s["refused"] for s in results) > 0, \
            "no read was ever refused: the driver did not cut"
        assert {a for a, _ in log} >= {"apply", "suspend", "resume"}, log
        if not sanitized(lib.GOVFS):
            for early, late in zip(rss_early, rss_late):
                assert late - early < RSS_GROWTH_MAX_KB, (rss_early, rss_late)
        # After the storm: every mount serves the final revision.
        for p, a in zip(paths, MOUNT_AGR):
            got = lib.read_all(os.path.join(p, "visits", "data.csv"))
            assert got in expect, a
    finally:
        codes = [lib.stop_govfs(m) for m in mounts]
    assert codes == [0] * len(mounts), codes
    res = home.ctl("audit", "verify")
    assert res.returncode == 0, res.stdout + res.stderr
