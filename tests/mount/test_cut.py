"""
Live lifecycle (issue 5): suspend, resume and revoke cut every path of
every mount of an agreement by the time govfsctl returns -- open handles
read by several threads at once, a handle whose pages the kernel caches, a
process holding a MAP_PRIVATE mapping, new opens -- and README.txt says
why; expiry cuts on the first read that starts at valid_until and is
recorded once across mounts; the daily quota is shared by all mounts of
an agreement, survives a restart and comes back the next day (a daemon
whose clock a test moves: govfs-testclock); `govfsctl mounts` shows what
the daemons served.

Reads are timed by the test itself: a read that *starts* after govfsctl
returned (or after valid_until) must fail, whatever the scheduling, since
the daemon necessarily checks it later still.
"""
import contextlib
import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import govfs_testlib as lib

RULES = {"visit_id": "keep", "name": "mask:first1", "district": "keep",
         "visit_date": "date:month", "cost": "keep", "notes": "keep"}

# govfs-testclock is built next to govfs; GOVFS_TESTCLOCK_BIN overrides.
TESTCLOCK = os.environ.get("GOVFS_TESTCLOCK_BIN") or str(
    Path(lib.GOVFS).parent / "govfs-testclock")

VALID_FROM = "2025-01-01T00:00:00+08:00"
OFFSET = timezone(timedelta(hours=8))  # the offset of VALID_FROM


class Data:
    pass


@pytest.fixture(scope="module")
def data(module_dir):
    """One home and dataset for the module; each test its own agreement."""
    d = Data()
    d.home = lib.Home(module_dir)
    src = lib.gen_visits(module_dir / "v.csv", 4000, seed=21)
    d.want = lib.expected_data_csv(src.read_bytes(), RULES)
    d.home.add("visits", src)
    return d


# ---------------------------------------------------------------------------
# Daemons
# ---------------------------------------------------------------------------

def govfs_cmd(home, agr_id, mp, binary=None, foreground=True):
    return [binary or lib.GOVFS, "--home", home.dir, "--key-file", home.key,
            "--agreement", agr_id, *(["-f"] if foreground else []), mp]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Daemon:
    """A mount and its daemon, foreground (proc) or background (pid)."""

    def __init__(self, mp, proc=None, pid=None, errlog=None):
        self.path = Path(mp)
        self.proc = proc
        self.pid = proc.pid if proc else pid
        self.errlog = errlog

    def __truediv__(self, rel):
        return self.path / rel

    def stop(self):
        lib.force_unmount(self.path)
        if self.proc is not None:
            lib.stop_process(self.proc)
        elif self.pid:
            assert lib.wait_for(lambda: not pid_alive(self.pid), 10), \
                "background govfs %d still running after unmount" % self.pid


def live_mounts(home, agr_id=None):
    return [m for m in home.json("mounts")
            if agr_id is None or m["agreement"] == agr_id]


def start(home, agr_id, mp=None, binary=None, env=None, background=False):
    """Mount agr_id with govfs (or binary) and wait until it is live."""
    mp = mp or lib.new_mountpoint(home.base)
    cmd = [str(c) for c in govfs_cmd(home, agr_id, mp, binary,
                                     not background)]
    if background:
        lib.STARTED.append((None, Path(mp)))
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                             env=env)
        assert res.returncode == 0, res.stderr
        assert lib.mount_fstype(mp) == "fuse.govfs"
        mine = [m for m in live_mounts(home, agr_id)
                if m["mountpoint"] == os.path.realpath(mp)]
        assert len(mine) == 1, mine
        return Daemon(mp, pid=mine[0]["pid"])
    errlog = Path(str(mp) + ".govfs.stderr")
    with open(errlog, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err,
                                env=env)
    lib.STARTED.append((proc, Path(mp)))
    lib.wait_for(lambda: lib.is_mounted(mp) or proc.poll() is not None, 15)
    if not lib.is_mounted(mp):
        lib.stop_process(proc, 1)
        raise AssertionError("govfs did not mount %s (exit %s): %s" % (
            mp, proc.returncode, errlog.read_text()))
    return Daemon(mp, proc=proc, errlog=errlog)


@contextlib.contextmanager
def daemons(*starts):
    """Start each (args, kwargs) of starts; stop them all afterwards."""
    running = []
    try:
        for args, kw in starts:
            running.append(start(*args, **kw))
        yield running
    finally:
        for d in running:
            d.stop()


# ---------------------------------------------------------------------------
# Lifecycle commands
# ---------------------------------------------------------------------------

def lifecycle(home, verb, agr_id, reason=None):
    """Run `agreement VERB ID [--reason R]`: (result, monotonic seconds at
    start, monotonic seconds once it returned)."""
    args = ["agreement", verb, agr_id]
    if reason is not None:
        args += ["--reason", reason]
    t0 = time.monotonic()
    res = home.ctl(*args)
    return res, t0, time.monotonic()


def cut_ok(home, verb, agr_id, reason, word, nmounts):
    res, t0, t1 = lifecycle(home, verb, agr_id, reason)
    assert res.returncode == 0, (res.stdout, res.stderr)
    m = re.match(r"agreement %s %s: (\d+) mounts? cut in ([0-9.]+) ms\n"
                 % (re.escape(agr_id), word), res.stdout)
    assert m, res.stdout
    assert int(m.group(1)) == nmounts, res.stdout
    assert float(m.group(2)) <= (t1 - t0) * 1000 + 1, (res.stdout, t1 - t0)
    return res, t1


def expected_admin_uid():
    sudo = os.environ.get("SUDO_UID", "")
    if sudo.isdigit():
        return int(sudo)
    try:
        with open("/proc/self/loginuid") as f:
            uid = int(f.read().strip())
        if uid != 4294967295:
            return uid
    except (OSError, ValueError):
        pass
    return os.getuid()


def readme(mount):
    return lib.read_all(mount / "README.txt").decode()


def check_readme_cut(mount, home, agr_id, state, reason):
    """README.txt is readable and says state, since when, by whom and why,
    as `agreement show` has them."""
    shown = home.json("agreement", "show", agr_id)
    assert shown["state"] == state, shown
    assert shown["state_reason"] == reason, shown
    text = readme(mount)
    assert "\nState:     %s\n" % state in text, text
    line = "           since %s, by %s: %s\n" % (
        shown["state_since"], shown["state_by"], reason)
    assert line in text, (line, text)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                        shown["state_since"]), shown
    assert "uid %d" % expected_admin_uid() in shown["state_by"], shown
    return text


# ---------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------

class Reader(threading.Thread):
    """Reads an open handle at random offsets with pread until stopped,
    logging (start, end, outcome) of every read by `clock`: outcome is
    "ok" (bytes checked against want), "WRONG" or an errno name."""

    def __init__(self, path, want, seed, clock=time.monotonic,
                 sizes=(1, 100, 4096, 65536)):
        super().__init__(daemon=True)
        self.fd = os.open(path, os.O_RDONLY)
        self.want = want
        self.rng = random.Random(seed)
        self.clock = clock
        self.sizes = sizes
        self.log = []
        self.halt = threading.Event()

    def run(self):
        size = len(self.want)
        while not self.halt.is_set():
            off = self.rng.randrange(0, size)
            n = self.rng.choice(self.sizes)
            t0 = self.clock()
            try:
                got = os.pread(self.fd, n, off)
                outcome = "ok" if got == self.want[off:off + n] else "WRONG"
            except OSError as e:
                outcome = errno.errorcode.get(e.errno, str(e.errno))
            self.log.append((t0, self.clock(), outcome))

    def started_after(self, t):
        return [r for r in list(self.log) if r[0] > t]

    def wait_reads_after(self, t, n=5, timeout=10):
        ok = lib.wait_for(lambda: len(self.started_after(t)) >= n, timeout,
                          step=0.005)
        assert ok, "reader made %d reads after the mark" % len(
            self.started_after(t))
        return self.started_after(t)

    def close(self):
        self.halt.set()
        self.join(10)
        os.close(self.fd)


# A process holding a MAP_PRIVATE mapping of data.csv (a path, or "fd:N"
# for a descriptor passed down): prints the SHA-256 of the mapped bytes;
# with "wait", touches every page again after a line on stdin.
MAPPER = r"""
import hashlib, mmap, os, sys
src, size, wait = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "wait"
fd = int(src[3:]) if src.startswith("fd:") else os.open(src, os.O_RDONLY)
m = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
print(hashlib.sha256(m[:]).hexdigest(), flush=True)
if wait:
    sys.stdin.readline()
    print(hashlib.sha256(m[:]).hexdigest(), flush=True)
"""


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Mapper:
    """A process that mapped and touched data.csv and waits to touch it
    again."""

    def __init__(self, path, size):
        self.proc = subprocess.Popen(
            [lib.PYTHON, "-c", MAPPER, str(path), str(size), "wait"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.first = self.proc.stdout.readline().strip()

    def touch_again(self):
        """Touch every page again: the exit status (negative: a signal)
        and what it printed."""
        out, _ = self.proc.communicate("\n", timeout=30)
        return self.proc.returncode, out.strip()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def map_fd(fd, size):
    """Map the open handle fd MAP_PRIVATE in a child process and touch
    every page: (exit status, SHA-256 printed)."""
    res = subprocess.run([lib.PYTHON, "-c", MAPPER, "fd:%d" % fd, str(size),
                          "once"], pass_fds=(fd,), capture_output=True,
                         text=True, timeout=60)
    return res.returncode, res.stdout.strip()


def check_cut_everywhere(readers, t_cut, fd_cached, mapper, mounts, size,
                         open_errs=("EACCES",)):
    """What a cut must have done when govfsctl returned at t_cut; a new
    open fails with one of open_errs."""
    for r in readers:
        after = r.wait_reads_after(t_cut)
        assert {o for _, _, o in after} == {"EACCES"}, after[:20]
    with pytest.raises(OSError) as e:
        os.pread(fd_cached, 4096, 0)
    assert e.value.errno == errno.EACCES
    # The pages mapped before are gone from the page cache: faulting them
    # in again asks govfs, which refuses, so the toucher dies of SIGBUS.
    rc, out = map_fd(fd_cached, size)
    assert rc == -signal.SIGBUS, (rc, out)
    rc, out = mapper.touch_again()
    assert rc == -signal.SIGBUS, (rc, out)
    for m in mounts:
        assert lib.errno_of(os.open, m / "visits" / "data.csv",
                            os.O_RDONLY) in open_errs
        assert lib.errno_of(lib.read_all, m / "visits" /
                            "schema.json") in open_errs


def assert_no_wrong_bytes(readers):
    for r in readers:
        assert "WRONG" not in {o for _, _, o in r.log}


# ---------------------------------------------------------------------------
# Suspend, resume, revoke
# ---------------------------------------------------------------------------

def test_suspend_resume_revoke_cut_every_path(data):
    home, want = data.home, data.want
    agr = "agr-cut"
    home.apply(lib.agreement(agr, {"visits": RULES}, valid_from=VALID_FROM,
                             quota={"bytes_per_day": 10 ** 10}))
    counter = home.dir / "quota" / agr
    readers, mappers, fds = [], [], []
    with daemons(((home, agr), {}),
                 ((home, agr), {"background": True})) as (m1, m2):
        try:
            for m in (m1, m2):
                assert lib.read_all(m / "visits" / "data.csv") == want
            assert counter.is_file()
            # Four threads on open handles, two on each mount.
            readers = [Reader(m / "visits" / "data.csv", want, seed)
                       for seed, m in enumerate((m1, m1, m2, m2))]
            # A handle whose range is in the page cache: data files are
            # direct I/O, so a private mapping is what caches their pages.
            fd_cached = os.open(m1 / "visits" / "data.csv", os.O_RDONLY)
            fds.append(fd_cached)
            assert map_fd(fd_cached, len(want)) == (0, sha(want))
            mappers.append(Mapper(m1 / "visits" / "data.csv", len(want)))
            assert mappers[-1].first == sha(want)
            for r in readers:
                r.start()
            for r in readers:
                r.wait_reads_after(time.monotonic())

            # suspend: every path of both mounts is cut when it returns.
            reason = "clause 7.2 violated: re-identification attempt"
            _, t_cut = cut_ok(home, "suspend", agr, reason, "suspended", 2)
            check_cut_everywhere(readers, t_cut, fd_cached, mappers[-1],
                                 (m1, m2), len(want))
            for m in (m1, m2):
                check_readme_cut(m, home, agr, "suspended", reason)
            assert [x["state"] for x in live_mounts(home, agr)] == \
                ["suspended"] * 2

            # suspending again changes nothing and says so.
            res, _, _ = lifecycle(home, "suspend", agr, "again")
            assert res.returncode == 0, res.stderr
            assert res.stdout == ("agreement %s is already suspended: "
                                  "nothing changed\n" % agr)
            assert home.json("agreement", "show", agr)["state_reason"] == \
                reason

            # resume: the same handles read the same bytes again.
            _, t_back = cut_ok(home, "resume", agr, "corrected by grantee",
                               "resumed", 2)
            for r in readers:
                after = r.wait_reads_after(t_back)
                assert {o for _, _, o in after} == {"ok"}, after[:20]
            assert os.pread(fd_cached, 5000, 1000) == want[1000:6000]
            assert map_fd(fd_cached, len(want)) == (0, sha(want))
            for m in (m1, m2):
                assert lib.read_all(m / "visits" / "data.csv") == want
                assert "\nState:     active\n" in readme(m)
            res, _, _ = lifecycle(home, "resume", agr)
            assert res.returncode == 0, res.stderr
            assert "nothing changed" in res.stdout, res.stdout

            # revoke: cut as by suspend, and final.
            mappers.append(Mapper(m2 / "visits" / "data.csv", len(want)))
            assert mappers[-1].first == sha(want)
            reason = "terminated: violation not corrected"
            res, t_cut = cut_ok(home, "revoke", agr, reason, "revoked", 2)
            lines = res.stdout.splitlines()
            assert len(lines) == 3, res.stdout
            assert lines[1].startswith("deleted: "), res.stdout
            assert "pseudonym key" in lines[1] and "quota counter" in \
                lines[1], res.stdout
            assert lines[2].startswith("kept: ") and "audit" in lines[2]
            # A revoked mount shows no datasets any more: a new open is
            # ENOENT there (SPEC says EACCES: test_revoked_open_is_eacces).
            check_cut_everywhere(readers, t_cut, fd_cached, mappers[-1],
                                 (m1, m2), len(want), ("EACCES", "ENOENT"))
            for m in (m1, m2):
                check_readme_cut(m, home, agr, "revoked", reason)
            assert not counter.exists(), "revoke left %s" % counter
            assert_no_wrong_bytes(readers)
        finally:
            for r in readers:
                r.close()
            for fd in fds:
                os.close(fd)
            for mp in mappers:
                mp.kill()

    for verb in ("resume", "suspend"):
        res, _, _ = lifecycle(home, verb, agr, "please")
        err = lib.assert_one_line_error(res, 1, "govfsctl", agr)
        assert "revoked" in err, err
    res, _, _ = lifecycle(home, "revoke", agr, "twice")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "agreement %s is already revoked: nothing " \
        "changed\n" % agr
    assert home.json("agreement", "show", agr)["state"] == "revoked"

    mp = lib.new_mountpoint(home.base)
    for fg in (True, False):
        res = lib.run(govfs_cmd(home, agr, mp, foreground=fg), text=True,
                      timeout=30)
        err = lib.assert_one_line_error(res, 1, "govfs", agr)
        assert "revoked" in err, err
        assert not lib.is_mounted(mp)

    # Each change is recorded with its reason, by the admin who made it.
    recs = [r for r in home.audit_export("--agreement", agr)
            if r["event"].startswith("agreement.")
            and r["event"] != "agreement.apply"]
    got = [(r["event"], r["reason"]) for r in recs]
    assert got == [
        ("agreement.suspend",
         "clause 7.2 violated: re-identification attempt"),
        ("agreement.resume", "corrected by grantee"),
        ("agreement.revoke", "terminated: violation not corrected"),
    ], got
    for r in recs:
        assert r["uid"] == expected_admin_uid(), r
        assert r["comm"] == "govfsctl" and r["result"] == "ok", r
    refused = [r for r in home.audit_export("--agreement", agr)
               if r["event"] == "read" and r["result"] == "EACCES"]
    assert refused, "refused reads were not recorded"
    assert home.ctl("audit", "verify").returncode == 0


def test_cut_without_mounts_and_usage(data):
    home = data.home
    agr = "agr-cli"
    home.apply(lib.agreement(agr, {"visits": RULES}))
    for verb in ("suspend", "revoke"):
        for args in ([], ["--reason", ""]):
            res = home.ctl("agreement", verb, agr, *args)
            assert res.returncode == 2, (verb, args, res.stdout, res.stderr)
            assert "--reason" in res.stderr, res.stderr
    res = home.ctl("agreement", "suspend", "--reason", "x")
    assert res.returncode == 2, res.stderr
    res, _, _ = lifecycle(home, "suspend", "agr-nope", "x")
    lib.assert_one_line_error(res, 1, "govfsctl", "agr-nope")
    assert home.json("agreement", "show", agr)["state"] == "active"
    cut_ok(home, "suspend", agr, "no mounts at all", "suspended", 0)
    cut_ok(home, "resume", agr, None, "resumed", 0)
    shown = home.json("agreement", "show", agr)
    assert shown["state"] == "active", shown
    listed = {a["id"]: a["state"] for a in home.agreements()}
    assert listed[agr] == "active", listed


def test_suspended_agreement_mounts_readme_only(data):
    """SPEC: a suspended agreement mounts, and only README.txt reads; a
    resume reaches a mount that started suspended."""
    home, want = data.home, data.want
    agr = "agr-mount-suspended"
    home.apply(lib.agreement(agr, {"visits": RULES}))
    cut_ok(home, "suspend", agr, "pending review", "suspended", 0)
    with daemons(((home, agr), {"background": True})) as (m,):
        check_readme_cut(m, home, agr, "suspended", "pending review")
        assert lib.errno_of(lib.read_all,
                            m / "visits" / "data.csv") == "EACCES"
        cut_ok(home, "resume", agr, None, "resumed", 1)
        assert lib.read_all(m / "visits" / "data.csv") == want


# ---------------------------------------------------------------------------
# Expiry
# ---------------------------------------------------------------------------

def expire_records(home, agr):
    return [r for r in home.audit_export("--agreement", agr)
            if r["event"] == "agreement.expire"]


def test_expiry_to_the_instant(data):
    home, want = data.home, data.want
    agr = "agr-expire"
    until = int(time.time()) + 4  # 3 to 4 s from now
    home.apply(lib.agreement(agr, {"visits": RULES}, valid_from=VALID_FROM,
                             valid_until=lib.rfc3339(until)))
    readers, mapper = [], None
    with daemons(((home, agr), {}), ((home, agr), {})) as (m1, m2):
        try:
            readers = [Reader(m / "visits" / "data.csv", want, seed,
                              clock=time.time, sizes=(4096,))
                       for seed, m in enumerate((m1, m2))]
            mapper = Mapper(m2 / "visits" / "data.csv", len(want))
            assert mapper.first == sha(want)
            assert "\nState:     active\n" in readme(m1)
            assert time.time() < until - 0.5, "setup took too long"
            for r in readers:
                r.start()
            lib.wait_for(lambda: time.time() > until + 0.5, 10, step=0.05)
            for r in readers:
                r.wait_reads_after(until + 0.5, n=20)
                r.halt.set()
                r.join(10)

            for r in readers:
                log = list(r.log)
                before = [x for x in log if x[1] < until]
                assert len(before) > 10, "too few reads before expiry"
                assert {o for _, _, o in before} == {"ok"}, \
                    [x for x in before if x[2] != "ok"][:5]
                after = [x for x in log if x[0] >= until]
                assert {o for _, _, o in after} == {"EACCES"}, \
                    [x for x in after if x[2] != "EACCES"][:5]
                fails = [x for x in log if x[2] != "ok"]
                assert fails[0][2] == "EACCES"
                # The first refusal is the first read that started at or
                # after valid_until (or one that was checked after it); the
                # bound only allows for a busy machine's scheduling.
                late = fails[0][1] - until
                assert -0.05 < late < 0.2, late
                assert not [x for x in log if x[0] > fails[0][0] and
                            x[2] == "ok"], "a read succeeded after expiry"

            # The timer dropped the cached pages of the mapping too.
            rc, out = mapper.touch_again()
            assert rc == -signal.SIGBUS, (rc, out)
            for m in (m1, m2):
                assert lib.errno_of(os.open, m / "visits" / "data.csv",
                                    os.O_RDONLY) == "EACCES"
                text = readme(m)
                assert "\nState:     expired\n" in text, text
            assert home.json("agreement", "show", agr)["state"] == "expired"
            listed = {a["id"]: a["state"] for a in home.agreements()}
            assert listed[agr] == "expired", listed
            assert [x["state"] for x in live_mounts(home, agr)] == \
                ["expired"] * 2

            # One record per expiry, whichever of the mounts wrote it.
            assert lib.wait_for(lambda: expire_records(home, agr), 3)
            time.sleep(0.5)
            recs = expire_records(home, agr)
            assert len(recs) == 1, recs
            assert lib.rfc3339_epoch(recs[0]["time"]) >= until
            assert lib.rfc3339_epoch(recs[0]["time"]) < until + 1
            assert "valid_until" in (recs[0]["reason"] or ""), recs
        finally:
            for r in readers:
                r.close()
            if mapper:
                mapper.kill()
    # Nor does a restart record it again.
    with daemons(((home, agr), {})) as (m,):
        assert "\nState:     expired\n" in readme(m)
        time.sleep(0.4)
    assert len(expire_records(home, agr)) == 1


# ---------------------------------------------------------------------------
# Quota
# ---------------------------------------------------------------------------

def next_midnight(now, tz):
    """Epoch seconds of the first midnight in tz after epoch now."""
    local = datetime.fromtimestamp(now, tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return (day + timedelta(days=1)).timestamp()


def day_start_text(now, tz):
    local = datetime.fromtimestamp(now, tz)
    return local.replace(hour=0, minute=0, second=0,
                         microsecond=0).isoformat()


def quota_lines(text):
    m = re.search(r"\nQuota:     (\d+) bytes of data per day\n"
                  r"           today \(from (\S+)\): (\d+) used, (\d+) left\n",
                  text)
    assert m, text
    return int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))


def read_stream(fd, start=0, chunk=65536):
    """pread from start on to EOF or an error: (reads, errno|None), each
    read (offset, bytes)."""
    reads, off = [], start
    while True:
        try:
            b = os.pread(fd, chunk, off)
        except OSError as e:
            return reads, e.errno
        if not b:
            return reads, None
        reads.append((off, b))
        off += len(b)


def test_quota_shared_persistent_daily(data, tmp_dir):
    home, want = data.home, data.want
    agr = "agr-quota"
    size = len(want)
    quota = 2 * size + size // 3 + 1001
    home.apply(lib.agreement(agr, {"visits": RULES}, valid_from=VALID_FROM,
                             quota={"bytes_per_day": quota}))
    clock = tmp_dir / "clock"
    clock.write_text("0\n")
    env = dict(os.environ, GOVFS_TEST_CLOCK_FILE=str(clock))
    tc = {"binary": TESTCLOCK, "env": env}
    assert os.access(TESTCLOCK, os.X_OK), TESTCLOCK
    path = Path("visits") / "data.csv"

    with daemons(((home, agr), tc),
                 ((home, agr), dict(tc, background=True))) as (m1, m2):
        total, today, used, left = quota_lines(readme(m1))
        assert (total, used, left) == (quota, 0, quota)
        assert today == day_start_text(time.time(), OFFSET)

        for n, m in enumerate((m1, m2), 1):
            assert lib.read_all(m / path) == want
            for mm in (m1, m2):
                assert quota_lines(readme(mm))[2:] == (n * size,
                                                       quota - n * size)
        fd1 = os.open(m1 / path, os.O_RDONLY)
        fd2 = os.open(m2 / path, os.O_RDONLY)
        try:
            # The read that reaches the quota is cut short at it.
            reads, err = read_stream(fd1)
            assert err == errno.EDQUOT, err
            got = b"".join(b for _, b in reads)
            assert len(got) == quota - 2 * size
            assert got == want[:len(got)]
            assert len(reads[-1][1]) < 65536
            for fd in (fd1, fd2):
                with pytest.raises(OSError) as e:
                    os.pread(fd, 100, 0)
                assert e.value.errno == errno.EDQUOT
            for m in (m1, m2):
                assert lib.errno_of(os.open, m / path,
                                    os.O_RDONLY) == "EDQUOT"
                assert quota_lines(readme(m))[2:] == (quota, 0)
        finally:
            os.close(fd1)
            os.close(fd2)
        assert (home.dir / "quota" / agr).is_file()

    # The count survives the daemons.
    with daemons(((home, agr), tc), ((home, agr), {})) as (m1, m2):
        for m in (m1, m2):
            assert lib.errno_of(os.open, m / path, os.O_RDONLY) == "EDQUOT"
            assert quota_lines(readme(m))[2:] == (quota, 0)

    # The next day in valid_from's offset restores access.
    with daemons(((home, agr), tc),
                 ((home, agr), dict(tc, background=True))) as (m1, m2):
        now = time.time()
        skew = int(next_midnight(now, OFFSET) - now) + 5
        clock.write_text("%d\n" % skew)
        # Each daemon reads the clock file every 100 ms.
        for m in (m1, m2):
            assert lib.wait_for(lambda: quota_lines(readme(m))[2] == 0, 3), \
                readme(m)
        for m in (m1, m2):
            assert lib.read_all(m / path) == want
        _, today, used, left = quota_lines(readme(m2))
        assert (used, left) == (2 * size, quota - 2 * size)
        assert today == day_start_text(time.time() + skew, OFFSET)

        # Revoke deletes the counter: README.txt no longer counts.
        home.ok("agreement", "revoke", agr, "--reason", "term ended")
        text = readme(m1)
        assert "\nState:     revoked\n" in text, text
        assert "Quota:     %d bytes of data per day\n" % quota in text
        assert " used, " not in text, text


# ---------------------------------------------------------------------------
# Holds: suspend and revoke stop the daemons before the catalog commit
# ---------------------------------------------------------------------------

def control(home, pid, request):
    """Send one request line to daemon pid's control socket; its answer.
    The socket is reached through its directory's descriptor, as govfsctl
    does, so a long home path cannot overflow sun_path."""
    dfd = os.open(home.dir / "run", os.O_PATH | os.O_DIRECTORY)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect("/proc/self/fd/%d/%d.sock" % (dfd, pid))
            s.sendall(request.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = s.recv(4096)
                assert chunk, answer
                answer += chunk
            return answer.decode().rstrip("\n")
    finally:
        os.close(dfd)


def held(home, pid):
    """Whether daemon pid holds its agreement, as `govfsctl mounts` and
    the daemon's own figures say."""
    shown = [m["held"] for m in live_mounts(home) if m["pid"] == pid]
    assert shown == [json.loads(control(home, pid, "stats"))["held"]]
    return shown[0]


def test_hold_refuses_until_the_cut_or_its_lease(data, tmp_dir):
    """A hold (what suspend and revoke send before they commit) refuses
    the agreement's data at once (open handles, new opens), on its
    mounts only; the cut that follows the commit ends it, and a hold that
    no cut ends (its command died) lapses after 30 s, the catalog's state
    then ruling."""
    home, want = data.home, data.want
    agr, other = "agr-hold", "agr-hold-other"
    for a in (agr, other):
        home.apply(lib.agreement(a, {"visits": RULES},
                                 valid_from=VALID_FROM))
    clock = tmp_dir / "clock"
    clock.write_text("0\n")
    tc = {"binary": TESTCLOCK,
          "env": dict(os.environ, GOVFS_TEST_CLOCK_FILE=str(clock))}
    path = Path("visits") / "data.csv"
    with daemons(((home, agr), tc), ((home, agr), tc),
                 ((home, other), tc)) as (m1, m2, m3):
        fds = [os.open(m / path, os.O_RDONLY) for m in (m1, m2, m3)]
        try:
            for fd in fds:
                assert os.pread(fd, 100, 0) == want[:100]
            assert control(home, m3.pid, "hold " + agr) == \
                "ok not served here"
            for m in (m1, m2):
                assert control(home, m.pid, "hold " + agr) == "held"
                assert held(home, m.pid)
            assert not held(home, m3.pid)
            for fd in fds[:2]:
                assert lib.errno_of(os.pread, fd, 100, 0) == "EACCES"
            for m in (m1, m2):
                assert lib.errno_of(os.open, m / path,
                                    os.O_RDONLY) == "EACCES"
                # README.txt stays readable; the catalog still says active.
                assert "\nState:     active\n" in readme(m)
            assert os.pread(fds[2], 100, 0) == want[:100]
            # The cut reloads the catalog's state, which ends the hold.
            assert control(home, m1.pid, "cut").startswith("ok active ")
            assert os.pread(fds[0], 100, 0) == want[:100]
            assert lib.errno_of(os.pread, fds[1], 100, 0) == "EACCES"
            assert not held(home, m1.pid)
            # No cut for m2: its hold lapses once the lease is over.
            clock.write_text("25\n")
            time.sleep(0.5)  # each daemon reads the clock file every 100 ms
            assert lib.errno_of(os.pread, fds[1], 100, 0) == "EACCES"
            clock.write_text("31\n")
            assert lib.wait_for(
                lambda: lib.errno_of(os.pread, fds[1], 100, 0) == "ok", 3)
            assert os.pread(fds[1], 100, 0) == want[:100]
            assert not held(home, m2.pid)
        finally:
            for fd in fds:
                os.close(fd)
    refused = [r for r in home.audit_export("--agreement", agr)
               if r["event"] == "read" and r["result"] != "ok"]
    assert len(refused) >= 3, refused


def test_read_decided_before_a_cut_is_refused_after_it(data):
    """A read checked and gathered before a suspend, and replying after it,
    is refused by its second check.  govfs-testclock parks each data read
    for a second between its gather and that check
    (GOVFS_TEST_READ_PAUSE_MS); the suspend lands meanwhile, and once it
    has returned, the parked read must not deliver."""
    home = data.home
    agr = "agr-second-check"
    home.apply(lib.agreement(agr, {"visits": RULES}, valid_from=VALID_FROM))
    env = dict(os.environ, GOVFS_TEST_READ_PAUSE_MS="1000")
    with daemons(((home, agr), {"binary": TESTCLOCK, "env": env})) as (m,):
        fd = os.open(m / "visits" / "data.csv", os.O_RDONLY)
        got = {}
        try:
            reader = threading.Thread(target=lambda: got.update(
                r=lib.errno_of(os.pread, fd, 4096, 0)))
            t0 = time.monotonic()
            reader.start()
            time.sleep(0.3)  # the read is gathered, and parked
            _, returned = cut_ok(home, "suspend", agr, "second check",
                                 "suspended", 1)
            reader.join(10)
            assert returned - t0 < 0.9, "suspend waited for the read"
            assert got["r"] == "EACCES", got
        finally:
            os.close(fd)


def test_suspend_of_a_suspended_agreement_ends_its_hold(data):
    """suspend holds before it knows it has nothing to do; the no-op still
    sends the cut that ends the hold (as the daemon's figures show), and
    resume then opens access."""
    home, want = data.home, data.want
    agr = "agr-hold-noop"
    home.apply(lib.agreement(agr, {"visits": RULES}, valid_from=VALID_FROM))
    path = Path("visits") / "data.csv"
    with daemons(((home, agr), {})) as (m,):
        cut_ok(home, "suspend", agr, "first", "suspended", 1)
        res = home.ok("agreement", "suspend", agr, "--reason", "again")
        assert "already suspended" in res.stdout, res.stdout
        assert not held(home, m.pid)
        cut_ok(home, "resume", agr, None, "resumed", 1)
        assert lib.read_all(m / path) == want


# ---------------------------------------------------------------------------
# govfsctl's front: the holds come before govfsctl-core is even loaded
# ---------------------------------------------------------------------------

# A stand-in for govfsctl-core: notes what the front handed it (the
# holds, or "unset") and its arguments, and commits nothing.
FAKE_CORE = """#!/bin/sh
printf '%s' "${GOVFSCTL_HELD-unset}" > "$0.held"
printf '%s\\n' "$@" > "$0.args"
"""


def front_copy(tmp_dir, core_script=None):
    """govfsctl's front copied into a directory of its own, next to
    core_script as its govfsctl-core (or alone): its path."""
    d = tmp_dir / "front"
    d.mkdir()
    front = d / "govfsctl"
    shutil.copy2(lib.GOVFSCTL, front)
    if core_script is not None:
        core = d / "govfsctl-core"
        core.write_text(core_script)
        core.chmod(0o755)
    return front


def handed_over(front):
    return (front.parent / "govfsctl-core.held").read_text()


def end_hold(home, agr, mount):
    """A real suspend and resume: the cut ends the hold, and access is
    back."""
    cut_ok(home, "suspend", agr, "end the hold", "suspended", 1)
    cut_ok(home, "resume", agr, None, "resumed", 1)
    assert not held(home, mount.pid)


def test_front_holds_before_the_core_runs(data, tmp_dir):
    """For suspend and revoke the front holds the agreement's daemons
    itself, then hands the holds to govfsctl-core (GOVFSCTL_HELD) with the
    arguments unchanged: with a core that commits nothing, the mount
    refuses already, while the catalog still says active."""
    home, want = data.home, data.want
    agr = "agr-front"
    home.apply(lib.agreement(agr, {"visits": RULES}, valid_from=VALID_FROM))
    front = front_copy(tmp_dir, FAKE_CORE)
    path = Path("visits") / "data.csv"
    spellings = [
        ["agreement", "suspend", agr, "--reason", "front",
         "--home", str(home.dir), "--key-file", str(home.key)],
        ["--home=%s" % home.dir, "--key-file", str(home.key), "agreement",
         "revoke", "--json", "--reason=front", agr],
    ]
    with daemons(((home, agr), {})) as (m,):
        fd = os.open(m / path, os.O_RDONLY)
        try:
            for args in spellings:
                assert os.pread(fd, 100, 0) == want[:100]
                res = subprocess.run([str(front), *args], text=True,
                                     capture_output=True, timeout=30)
                assert res.returncode == 0, res.stderr
                assert (front.parent / "govfsctl-core.args").read_text() \
                    == "".join(a + "\n" for a in args)
                got = handed_over(front)
                assert re.fullmatch(r"[1-9]\d* %s( \d+\.sock:-?\d+:[01])+"
                                    % agr, got), got
                # Held, or (on a loaded machine) not answered within the
                # front's 100 ms: then it may hold, and does.
                assert re.search(r" %d\.sock:(0:1|-%d:0)( |$)"
                                 % (m.pid, errno.ETIMEDOUT), got), got
                assert held(home, m.pid)
                assert lib.errno_of(os.pread, fd, 100, 0) == "EACCES"
                assert "\nState:     active\n" in readme(m)
                end_hold(home, agr, m)
        finally:
            os.close(fd)


def test_front_leaves_doubtful_commands_whole(data, tmp_dir):
    """Whatever is not a well-formed suspend or revoke, as govfsctl-core
    would read it, the front passes on whole, holding nothing: the core
    then refuses it, or holds by itself."""
    home = data.home
    agr = "agr-front-doubt"
    home.apply(lib.agreement(agr, {"visits": RULES}, valid_from=VALID_FROM))
    front = front_copy(tmp_dir, FAKE_CORE)
    where = ["--home", str(home.dir), "--key-file", str(home.key)]
    doubtful = [
        ["agreement", "resume", agr],
        ["agreement", "show", agr],
        ["agreement", "suspend", agr],
        ["agreement", "suspend", agr, "--reason", ""],
        ["agreement", "suspend", agr, "--reason"],
        ["agreement", "suspend", agr, "--reaso", "abbreviated"],
        ["agreement", "suspend", agr, "-r", "short"],
        ["agreement", "suspend", agr, "--reason", "x", "--help"],
        ["--json", "agreement", "suspend", agr, "--reason", "x"],
        ["--reason", "x", "agreement", "suspend", agr],
        ["agreement", "--json", "suspend", agr, "--reason", "x"],
        ["agreement", "suspend", agr, "--reason", "x", "--json=yes"],
        ["agreement", "suspend", agr, "extra", "--reason", "x"],
        ["agreement", "suspend", "--reason", "x"],
        ["agreement", "suspend", "Agr-Upper", "--reason", "x"],
        ["agreement", "suspend", "--", agr, "--reason", "x"],
        ["dataset", "suspend", agr, "--reason", "x"],
    ]
    with daemons(((home, agr), {})) as (m,):
        for args in doubtful:
            res = subprocess.run([str(front), *args, *where], text=True,
                                 capture_output=True, timeout=30)
            assert res.returncode == 0, res.stderr
            assert handed_over(front) == "unset", args
            assert not held(home, m.pid), args
        # Holds come from the front alone, never from its environment.
        res = subprocess.run(
            [str(front), "agreement", "resume", agr, *where], text=True,
            capture_output=True, timeout=30,
            env=dict(os.environ, GOVFSCTL_HELD="1 %s 1.sock:0:1" % agr))
        assert res.returncode == 0, res.stderr
        assert handed_over(front) == "unset"
        # A home that fails govfsctl's checks: its sockets are not trusted.
        home.dir.chmod(0o755)
        try:
            res = subprocess.run([str(front), "agreement", "suspend", agr,
                                  "--reason", "x", *where], text=True,
                                 capture_output=True, timeout=30)
        finally:
            home.dir.chmod(0o700)
        assert handed_over(front) == "unset"
        assert not held(home, m.pid)


def test_front_without_its_core_releases_the_holds(data, tmp_dir):
    """A front that cannot run govfsctl-core says so in one line, fails,
    and lets go of the daemons it held: nothing was committed.  (A front
    with no core next to it runs the installed one, if any.)"""
    installed = [p for p in ("/usr/local/libexec/govfs/govfsctl-core",
                             "/usr/libexec/govfs/govfsctl-core")
                 if os.path.exists(p)]
    if installed:
        pytest.skip("a govfsctl-core is installed: %s" % installed[0])
    home, want = data.home, data.want
    agr = "agr-front-alone"
    home.apply(lib.agreement(agr, {"visits": RULES}, valid_from=VALID_FROM))
    front = front_copy(tmp_dir)
    path = Path("visits") / "data.csv"
    with daemons(((home, agr), {})) as (m,):
        fd = os.open(m / path, os.O_RDONLY)
        try:
            res = subprocess.run(
                [str(front), "agreement", "suspend", agr, "--reason", "x",
                 "--home", str(home.dir), "--key-file", str(home.key)],
                text=True, capture_output=True, timeout=30)
            lib.assert_one_line_error(res, 1, "govfsctl",
                                      "govfsctl-core: No such file")
            assert not held(home, m.pid)
            assert os.pread(fd, 100, 0) == want[:100]
        finally:
            os.close(fd)
    assert home.json("agreement", "show", agr)["state"] == "active"


# ---------------------------------------------------------------------------
# govfsctl mounts
# ---------------------------------------------------------------------------

def test_mounts_json(data):
    home, want = data.home, data.want
    agr = "agr-mounts"
    home.apply(lib.agreement(agr, {"visits": RULES}))
    t_start = time.time()
    fds = []
    with daemons(((home, agr), {}),
                 ((home, agr), {"background": True})) as (m1, m2):
        try:
            fds = [os.open(m / "visits" / "data.csv", os.O_RDONLY)
                   for m in (m1, m1, m2)]
            assert os.pread(fds[0], 1000, 0) == want[:1000]
            assert os.pread(fds[1], 3000, 5000) == want[5000:8000]
            assert os.pread(fds[2], 70000, 100) == want[100:70100]
            assert readme(m2)  # README is not data: not counted as served
            rows = {r["mountpoint"]: r for r in live_mounts(home, agr)}
            assert set(rows) == {str(m1.path), str(m2.path)}, rows
            r1, r2 = rows[str(m1.path)], rows[str(m2.path)]
            for r in (r1, r2):
                assert set(r) == {"agreement", "state", "held", "mountpoint",
                                  "pid", "revision", "open_files",
                                  "bytes_served", "started"}, r
                assert r["agreement"] == agr and r["state"] == "active"
                assert r["held"] is False
                assert r["revision"] == 1
                started = lib.rfc3339_epoch(r["started"])
                assert t_start - 1 <= started <= time.time() + 1, r
            assert r1["pid"] == m1.proc.pid
            assert r2["pid"] == m2.pid and pid_alive(m2.pid)
            assert (r1["open_files"], r1["bytes_served"]) == (2, 4000)
            assert lib.wait_for(
                lambda: [r["open_files"] for r in live_mounts(home, agr)
                         if r["pid"] == m2.pid] == [1], 3)
            assert r2["bytes_served"] == 70000
            text = home.ok("mounts").stdout
            assert str(m1.path) in text and str(m2.path) in text, text
        finally:
            for fd in fds:
                os.close(fd)
        assert lib.wait_for(lambda: [r["open_files"] for r in
                                     live_mounts(home, agr)] == [0, 0], 3)

        # A daemon killed outright is no longer listed as live, and a cut
        # counts only the mounts that are.
        m1.proc.send_signal(signal.SIGKILL)
        assert m1.proc.wait(timeout=10) == -signal.SIGKILL
        assert lib.wait_for(lambda: not lib.is_mounted(m1.path), 5)
        rows = live_mounts(home, agr)
        assert [r["pid"] for r in rows] == [m2.pid], rows
        cut_ok(home, "suspend", agr, "one left", "suspended", 1)
        assert [r["state"] for r in live_mounts(home, agr)] == ["suspended"]
    assert live_mounts(home, agr) == []


# ---------------------------------------------------------------------------
# Refused mounts leave nothing behind; a revoked agreement refuses opens
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("agr_id", ["agr-absent", "agr-gone"])
def test_refused_mount_creates_no_quota_counter(data, agr_id):
    home = data.home
    if agr_id == "agr-gone":
        home.apply(lib.agreement(agr_id, {"visits": RULES}))
        cut_ok(home, "revoke", agr_id, "gone", "revoked", 0)
    counter = home.dir / "quota" / agr_id
    assert not counter.exists()
    res = lib.run(govfs_cmd(home, agr_id, lib.new_mountpoint(home.base)),
                  text=True, timeout=30)
    assert res.returncode == 1, res.stderr
    assert not counter.exists(), "a refused mount created %s" % counter


def test_revoked_open_is_eacces(data):
    home = data.home
    agr = "agr-revoked-open"
    home.apply(lib.agreement(agr, {"visits": RULES}))
    with daemons(((home, agr), {})) as (m,):
        assert lib.read_all(m / "visits" / "data.csv") == data.want
        cut_ok(home, "revoke", agr, "ended", "revoked", 1)
        assert lib.errno_of(os.open, m / "visits" / "data.csv",
                            os.O_RDONLY) == "EACCES"
