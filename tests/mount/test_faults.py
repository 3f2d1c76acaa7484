"""
Fault injection: a daemon killed during reads, `govfsctl agreement apply`
killed in every phase, the catalog held by a long admin transaction while
the daemon serves and a cut waits, and a full disk under the store.  (A
corrupt store block is in test_lifecycle.py, a full disk under the audit
log in test_audit.py.)
"""
import errno
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

import govfs_testlib as lib

RULES = {"visit_id": "keep", "district": "keep", "cost": "keep"}
RULES2 = {"visit_id": "keep", "district": "keep", "cost": "bucket:100"}
DEAD_HANDLE_ERRORS = {errno.ENOTCONN, errno.ECONNABORTED, errno.ENODEV}


def reader_loop(path, stop, outcome):
    """pread in a loop until an error; outcome gets its errno."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        outcome.append(e.errno)
        return
    try:
        rng = random.Random(threading.get_ident())
        size = os.fstat(fd).st_size
        while not stop.is_set():
            os.pread(fd, 65536, rng.randrange(0, size))
        outcome.append(None)
    except OSError as e:
        outcome.append(e.errno)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass  # a dead mount may refuse even the close


def test_kill9_daemon_during_reads(home, tmp_dir):
    """Readers get an error, auto_unmount removes the mount, the next mount
    starts cleanly, and the log verifies with the missing unmount marked."""
    src = lib.gen_visits(tmp_dir / "v.csv", 20000, seed=3)
    want = lib.expected_data_csv(src.read_bytes(), RULES)
    home.add("visits", src)
    home.apply(lib.agreement("agr-k9", {"visits": RULES}))
    mp = lib.new_mountpoint(tmp_dir)
    m = lib.start_govfs(home, "agr-k9", mp)
    dead_pid = m.proc.pid
    stop, outcomes = threading.Event(), []
    readers = [threading.Thread(target=reader_loop,
                                args=(mp / "visits" / "data.csv", stop,
                                      outcomes))
               for _ in range(3)]
    try:
        for r in readers:
            r.start()
        time.sleep(0.5)
        m.proc.send_signal(signal.SIGKILL)
        assert m.proc.wait(timeout=10) == -signal.SIGKILL
        for r in readers:
            r.join(10)
            assert not r.is_alive(), "a reader hangs on a dead mount"
        assert len(outcomes) == 3 and set(outcomes) <= DEAD_HANDLE_ERRORS, \
            outcomes
        assert lib.wait_for(lambda: not lib.is_mounted(mp), 5, step=0.05), \
            "auto_unmount left the mount"
    finally:
        stop.set()
        lib.stop_govfs(m)
    with lib.mounted(home, "agr-k9", mp) as m2:
        assert lib.read_all(m2 / "visits" / "data.csv") == want
    res = home.ctl("audit", "verify")
    assert res.returncode == 0, res.stdout + res.stderr
    recs = home.audit_export()
    ends = [r for r in recs if r["event"] == "unmount" and
            r["pid"] == dead_pid]
    assert len(ends) == 1, ends
    assert ends[0]["result"] == "ECONNABORTED", ends[0]
    assert "without unmounting" in ends[0]["reason"], ends[0]
    assert ends[0]["agreement"] == "agr-k9"
    # The next daemon's own mount, read and unmount are all there.
    assert [r["event"] for r in recs].count("mount") == 2


def agreement_revision(home, agr_id):
    return home.json("agreement", "show", agr_id)["revision"]


def test_kill9_during_agreement_apply(home, tmp_dir):
    """`kill -9` of `agreement apply` at any moment: the agreement is as it
    was, or wholly at the new revision, never half."""
    big = lib.gen_visits_bytes(tmp_dir / "big.csv", 40_000_000, seed=8)
    home.add("visits", big)
    data = big.read_bytes()
    want = {1: lib.expected_data_csv(data, RULES)}
    doc1 = lib.agreement("agr-apply", {"visits": RULES})
    doc2 = lib.agreement("agr-apply", {"visits": RULES2})
    home.apply(doc1)
    path2 = home.write_json(doc2, "agr-apply-2")

    timing = lib.Home(tmp_dir, "timing")
    timing.add("visits", big)
    timing.apply(doc1)
    t0 = time.monotonic()
    timing.apply(doc2)
    full = time.monotonic() - t0

    rng = random.Random(11)
    delays = [0.0, 0.005] + [rng.uniform(0.05, 0.95) * full
                             for _ in range(6)]
    outcomes = []
    for delay in delays:
        before = agreement_revision(home, "agr-apply")
        proc = subprocess.Popen(home.ctl_cmd("agreement", "apply", path2),
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=60)
        after = agreement_revision(home, "agr-apply")
        outcomes.append((delay, rc, before, after))
        assert after in (before, before + 1), outcomes
        if after == before + 1:
            break  # it finished: the rest would be no-ops
    killed = [o for o in outcomes if o[1] == -signal.SIGKILL]
    assert len(killed) >= 3, outcomes
    # Whatever the kills left, the agreement serves exactly one revision's
    # bytes, and the next apply finishes the job.
    home.apply(doc2)
    want2 = lib.expected_data_csv(data, RULES2)
    with lib.mounted(home, "agr-apply") as m:
        assert lib.read_all(m / "visits" / "data.csv") == want2
    assert want[1] != want2
    res = home.ctl("audit", "verify")
    assert res.returncode == 0, res.stdout + res.stderr


def test_catalog_locked_while_serving(home, tmp_dir):
    """An admin transaction holding the catalog's write lock: reads go on.
    A suspend cuts them at once all the same (its hold does not wait for
    the catalog), and commits as soon as the lock clears."""
    src = lib.gen_visits(tmp_dir / "v.csv", 5000, seed=4)
    want = lib.expected_data_csv(src.read_bytes(), RULES)
    home.add("visits", src)
    home.apply(lib.agreement("agr-lock", {"visits": RULES}))
    with lib.mounted(home, "agr-lock") as m:
        path = m / "visits" / "data.csv"
        fd = os.open(path, os.O_RDONLY)
        try:
            db = lock_catalog(home)
            # Held for 2 s: reads, new opens and README go on meanwhile.
            deadline = time.monotonic() + 2
            reads = 0
            while time.monotonic() < deadline:
                assert os.pread(fd, 4096, 100) == want[100:4196]
                assert lib.read_all(path) == want
                reads += 1
            assert reads > 5
            suspend = suspend_held(home, "agr-lock", fd)
            time.sleep(0.5)
            assert suspend.poll() is None, "suspend did not wait for the lock"
            assert lib.errno_of(os.open, path, os.O_RDONLY) == "EACCES"
            released = time.monotonic()
            db.execute("COMMIT")
            db.close()
            out, err = suspend.communicate(timeout=30)
            landed = time.monotonic() - released
            assert suspend.returncode == 0, err
            assert "1 mount cut" in out, out
            assert landed < 1.0, landed
            assert lib.errno_of(os.pread, fd, 4096, 100) == "EACCES"
            assert home.json("agreement", "show",
                             "agr-lock")["state"] == "suspended"
        finally:
            os.close(fd)


def suspend_held(home, agr_id, fd):
    """Start `agreement suspend agr_id` and wait until its hold refuses
    reads of fd: the command, still running."""
    suspend = subprocess.Popen(
        home.ctl_cmd("agreement", "suspend", agr_id, "--reason", "locked"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert lib.wait_for(
        lambda: lib.errno_of(os.pread, fd, 4096, 0) == "EACCES", 5)
    return suspend


def lock_catalog(home):
    """A connection holding the catalog's write lock, for the caller to
    COMMIT (or close)."""
    db = sqlite3.connect(str(home.dir / "catalog.db"), isolation_level=None,
                         timeout=30)
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE meta SET value = value WHERE key = 'x'")
    return db


def test_suspend_that_cannot_commit_ends_its_hold(home, tmp_dir):
    """The catalog locked past govfsctl's busy timeout (10 s): the suspend
    cuts at once (its hold), then fails in one line, changes nothing, and
    its hold ends with it: reads go on at once, not after the lease."""
    src = lib.gen_visits(tmp_dir / "v.csv", 2000, seed=5)
    want = lib.expected_data_csv(src.read_bytes(), RULES)
    home.add("visits", src)
    home.apply(lib.agreement("agr-busy", {"visits": RULES}))
    with lib.mounted(home, "agr-busy") as m:
        fd = os.open(m / "visits" / "data.csv", os.O_RDONLY)
        db = lock_catalog(home)
        try:
            suspend = suspend_held(home, "agr-busy", fd)
            out, err = suspend.communicate(timeout=60)
            res = subprocess.CompletedProcess(suspend.args,
                                              suspend.returncode, out, err)
            lib.assert_one_line_error(res, 1, "govfsctl", "catalog")
            assert os.pread(fd, 4096, 0) == want[:4096]
        finally:
            db.close()
            os.close(fd)
        assert home.json("agreement", "show",
                         "agr-busy")["state"] == "active"


@pytest.fixture
def small_fs(tmp_dir):
    """A 24 MiB tmpfs to put a home on; skipped where mounting is denied."""
    path = tmp_dir / "fs"
    path.mkdir()
    res = lib.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0755",
                   "tmpfs", path], text=True, timeout=30)
    if res.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % res.stderr.strip())
    try:
        yield path
    finally:
        lib.cleanup_everything()
        if lib.run(["umount", path], timeout=30).returncode != 0:
            lib.run(["umount", "-l", path], timeout=30)


def test_full_disk_under_store(small_fs, tmp_dir):
    """A dataset that does not fit: refused in one line, the catalog as it
    was, the partial file cleaned up, live mounts serving on."""
    home = lib.Home(small_fs)
    small = lib.gen_visits(tmp_dir / "small.csv", 2000, seed=6)
    want = lib.expected_data_csv(small.read_bytes(), RULES)
    home.add("visits", small)
    home.apply(lib.agreement("agr-full", {"visits": RULES}))
    big = lib.gen_visits_bytes(tmp_dir / "big.csv", 120_000_000, seed=7)
    before = home.datasets()
    with lib.mounted(home, "agr-full") as m:
        res = home.ctl("dataset", "add", "visits", "--file", str(big))
        err = lib.assert_one_line_error(res, 1, "govfsctl")
        assert "space" in err.lower(), err
        assert home.datasets() == before
        assert lib.read_all(m / "visits" / "data.csv") == want
    # The next change removes what the failed ingest left.
    home.apply(lib.agreement("agr-full", {"visits": RULES2}))
    assert os.listdir(home.dir / "tmp") == []
    res = home.ctl("audit", "verify")
    assert res.returncode == 0, res.stdout + res.stderr
