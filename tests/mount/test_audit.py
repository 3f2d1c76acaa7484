"""
The audit log as an auditor relies on it (SPEC "Audit"): who read which
bytes, who was refused, the daemon's and the admins' own records, the
export's keys and filters; that an open is durable before open() returns
and a handle's reads before close() returns; that an attacker who edits
HOME/audit.db (with its triggers dropped) is caught by `audit verify`,
which names the first bad record, before and after a prune; that records
older than the retention period go by whole sealed segments, by `audit
prune` and by the daemon itself, the chain going on from the seal that
closes them; that `audit tail -f` shows each new record once; that govfs
warns on stderr and in README.txt when the log's disk runs low; and that
it fails closed (EIO) when the log cannot be written, and serves again
once space is freed.

The hash chain is also recomputed here from the encoding documented atop
fs/audit.c, with Python's hashlib, independently of the C code.
"""
import calendar
import contextlib
import errno
import hashlib
import json
import os
import re
import sqlite3
import struct
import subprocess
import time

import pytest

import govfs_testlib as lib

RULES = {"visit_id": "keep", "district": "keep", "age": "keep",
         "notes": "keep"}
AGR = "agr-audit"
OTHER = "agr-other"
SPEC_KEYS = ["seq", "time", "agreement", "revision", "uid", "pid", "comm",
             "event", "path", "offset", "length", "bytes", "result",
             "reason"]
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")
SUDO_UID = 1234


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def time_ns(text):
    """Nanoseconds since the epoch of an export time (9 digits, Z)."""
    assert TIME_RE.fullmatch(text), text
    secs = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    return secs * 1000000000 + int(text[20:29])


def format_ns(ns, offset_minutes=0):
    """RFC 3339 text of ns in the given offset, with 9 fractional digits."""
    secs, frac = divmod(ns + offset_minutes * 60 * 1000000000, 1000000000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if offset_minutes == 0:
        return "%s.%09dZ" % (text, frac)
    sign = "+" if offset_minutes > 0 else "-"
    h, m = divmod(abs(offset_minutes), 60)
    return "%s.%09d%s%02d:%02d" % (text, frac, sign, h, m)


def expected_admin_uid(env):
    """The admin's real identity as SPEC defines it: SUDO_UID, else the
    login uid, else (no login session) the uid itself."""
    if env.get("SUDO_UID", "").isdigit():
        return int(env["SUDO_UID"])
    try:
        with open("/proc/self/loginuid") as f:
            login = int(f.read().strip())
    except (OSError, ValueError):
        login = -1
    if 0 <= login < 4294967295:
        return login
    return os.getuid()


def merge(ranges):
    """The union of half-open [start, end) ranges, merged and sorted."""
    out = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [tuple(r) for r in out]


def served_ranges(reads, size):
    """What a process was served by its (offset, asked) reads of a file of
    size bytes."""
    return merge((off, min(off + n, size)) for off, n in reads)


def recorded_ranges(records):
    return merge((r["offset"], r["offset"] + r["bytes"]) for r in records)


def of_pid(records, pid, event=None):
    return [r for r in records if r["pid"] == pid and
            (event is None or r["event"] == event)]


def verify(home):
    """(exit code, first bad sequence number or None, stderr) of
    `govfsctl audit verify`."""
    res = home.ctl("audit", "verify")
    if res.returncode == 0:
        assert res.stderr == "", res.stderr
        assert re.match(r"audit log intact: \d+ records(, from sequence "
                        r"number \d+ \(those before were pruned\))?\n$",
                        res.stdout), res.stdout
        return 0, None, ""
    err = lib.assert_one_line_error(res, 1, "govfsctl", "audit.db")
    m = re.search(r"sequence number (\d+)", err)
    return res.returncode, (int(m.group(1)) if m else None), err


def assert_intact(home):
    rc, bad, err = verify(home)
    assert rc == 0, err


def assert_caught(home, seq):
    rc, bad, err = verify(home)
    assert rc == 1, "verify did not notice the tampering"
    assert bad == seq, "verify named %s, want %d: %s" % (bad, seq, err)


# What README.txt and the daemon's stderr say when the log's disk runs low.
LOW_SPACE = "Warning:   the audit log's disk is nearly full"
LOW_SPACE_LOG = "MiB free on its file system, under 64 MiB"


def readme_text(m):
    """README.txt of mount m, read whole; its st_size must be what was read
    (unless the text changed in between, which a second read tells)."""
    path = m / "README.txt"
    while True:
        before = os.stat(path).st_size
        data = lib.read_all(path)
        if os.stat(path).st_size == before:
            break
    assert before == len(data), (before, len(data))
    return data.decode()


def backdated_home(base, days_ago, count, retention=365):
    """A home (made by `govfsctl init`) whose audit log began days_ago days
    ago with count records, each sealed on its own: the log is made anew by
    the audit-backdate helper, as no clock of govfs can be turned back."""
    home = lib.Home(base)
    for name in ("audit.db", "audit.db-wal", "audit.db-shm", "audit.key"):
        with contextlib.suppress(FileNotFoundError):
            (home.dir / name).unlink()
    res = lib.run([lib.AUDIT_BACKDATE, "--create", retention, home.dir,
                   days_ago, count], text=True)
    assert res.returncode == 0, res.stderr
    return home


def spawn(cmd, uid=None, **kw):
    """Run cmd (as uid if given) to the end: (pid, returncode, stdout,
    stderr), text."""
    if uid is not None:
        kw.update(user=uid, group=uid, extra_groups=[])
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)
    out, err = proc.communicate(timeout=60)
    return proc.pid, proc.returncode, out, err


# A reader that opens and reads in a thread other than its main one, so
# that the thread id the kernel passes to govfs is not the process id.
THREAD_READER = r"""
import hashlib, json, os, sys, threading
path, reads = sys.argv[1], json.loads(sys.argv[2])
out = {"pid": os.getpid()}
def work():
    out["tid"] = threading.get_native_id()
    fd = os.open(path, os.O_RDONLY)
    out["got"] = [hashlib.sha256(os.pread(fd, n, off)).hexdigest()
                  for off, n in reads]
    os.close(fd)
t = threading.Thread(target=work)
t.start()
t.join()
with open("/proc/self/comm") as f:
    out["comm"] = f.read().strip()
print(json.dumps(out))
"""

# Denied through other paths than a name lookup: root takes an O_PATH
# handle on the file, drops to 65534, then fstat()s it (getattr) and
# opens it again through /proc/self/fd (open, no lookup).
DROP_AND_TRY = r"""
import json, os, sys
fd = os.open(sys.argv[1], os.O_PATH)
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
out = {"pid": os.getpid()}
for name, fn in (("fstat", lambda: os.fstat(fd)),
                 ("open", lambda: os.close(os.open("/proc/self/fd/%d" % fd,
                                                   os.O_RDONLY)))):
    try:
        fn()
        out[name] = "ok"
    except OSError as e:
        out[name] = e.errno
print(json.dumps(out))
"""

# Root opens the file, drops to 65534, then reads through that handle.
DROP_AND_READ = r"""
import json, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
try:
    os.pread(fd, 100, 0)
    r = "ok"
except OSError as e:
    r = e.errno
os.close(fd)
print(json.dumps({"pid": os.getpid(), "read": r}))
"""

# ---------------------------------------------------------------------------
# One audited session: two readers, refused callers, two agreements
# ---------------------------------------------------------------------------


class Scenario:
    pass


@pytest.fixture(scope="module")
def sc(module_dir):
    s = Scenario()
    s.home = home = lib.Home(module_dir)
    s.admin_uid = expected_admin_uid(os.environ)
    src = lib.gen_visits(module_dir / "visits.csv", 12000, seed=21)
    s.want = lib.expected_data_csv(src.read_bytes(), RULES)
    s.size = len(s.want)
    assert s.size > 400000, s.size
    home.add("visits", src)
    home.apply(lib.agreement(AGR, {"visits": RULES}, uids=[0]))
    # One admin action run through sudo, as it were.
    doc = home.write_json(lib.agreement(OTHER, {"visits": RULES}, uids=[0]),
                          OTHER)
    res = lib.run(home.ctl_cmd("agreement", "apply", doc), text=True,
                  env=dict(os.environ, SUDO_UID=str(SUDO_UID)))
    assert res.returncode == 0, res.stderr

    with lib.mounted(home, AGR) as m:
        s.daemon_pid = m.proc.pid
        data = m / "visits" / "data.csv"
        s.path = "/visits/data.csv"

        # Reader 1: Python, pread in a worker thread; two contiguous
        # reads, one far off, one of 300000 bytes (more than one FUSE
        # request) and one across the end of the file.
        s.py_reads = [(0, 100), (100, 900), (5000, 3000), (40000, 300000),
                      (s.size - 300, 1000)]
        pid, rc, out, err = spawn([lib.PYTHON, "-c", THREAD_READER, data,
                                   json.dumps(s.py_reads)])
        assert rc == 0, err
        s.py = json.loads(out)
        assert s.py["pid"] == pid and s.py["tid"] != pid
        assert s.py["got"] == [hashlib.sha256(s.want[o:o + n]).hexdigest()
                               for o, n in s.py_reads]

        # Reader 2: dd, five blocks of 4096 after skipping three.
        s.dd_reads = [(12288 + 4096 * i, 4096) for i in range(5)]
        dd = subprocess.Popen(["dd", "if=%s" % data, "bs=4096", "skip=3",
                               "count=5", "status=none"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = dd.communicate(timeout=60)
        assert dd.returncode == 0, err
        assert out == s.want[12288:12288 + 20480]
        s.dd_pid = dd.pid

        # Refused: a probe (stat of the root, stat, listdir, read), cat,
        # and a process that reaches the file without a lookup.
        s.probe_pid, rc, out, err = spawn(
            [lib.PYTHON, "-c", lib.PROBE, json.dumps(
                [["stat", str(m.path)], ["stat", str(data)],
                 ["listdir", str(m.path)], ["read", str(data)]])],
            uid=lib.NOBODY)
        assert rc == 0, err
        assert json.loads(out) == ["EACCES"] * 4
        s.cat_pid, rc, out, err = spawn(["cat", data], uid=lib.NOBODY)
        assert rc != 0 and out == "" and "Permission denied" in err
        s.drop_pid, rc, out, err = spawn([lib.PYTHON, "-c", DROP_AND_TRY,
                                          data])
        assert rc == 0, err
        assert json.loads(out) == {"pid": s.drop_pid,
                                   "fstat": errno.EACCES,
                                   "open": errno.EACCES}
        # The release of each handle is sent after close(); let it land.
        assert lib.wait_for(lambda: all(
            of_pid(home.audit_export(), pid, "release")
            for pid in (s.py["pid"], s.dd_pid)), 5)

    # The other agreement is mounted and read too, for --agreement.
    with lib.mounted(home, OTHER) as m:
        s.other_pid = m.proc.pid
        assert lib.read_all(m / "visits" / "data.csv") == s.want

    s.records = home.audit_export()
    s.snapshot = home.copy(module_dir, "sealed")
    return s


def test_every_line_has_spec_keys(sc):
    """Every key of SPEC in every line, and no other; time with 9 fractional
    digits and Z; seq from 1 up by one; null where a key does not apply."""
    recs = sc.records
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    for r in recs:
        assert len(r) == len(SPEC_KEYS) and set(r) == set(SPEC_KEYS), r
        assert TIME_RE.fullmatch(r["time"]), r
        assert isinstance(r["event"], str) and r["event"], r
        assert r["result"] == "ok" or re.fullmatch(r"E[A-Z0-9]+",
                                                   r["result"]), r
        for key in ("revision", "uid", "pid", "offset", "length", "bytes"):
            assert r[key] is None or isinstance(r[key], int), (key, r)
        if r["event"] in ("open", "release", "mount", "unmount", "lookup",
                          "getattr", "readdir"):
            assert r["offset"] is r["length"] is r["bytes"] is None, r
        if r["event"] == "read":
            assert None not in (r["offset"], r["length"], r["bytes"]), r
        if r["event"] in ("init", "dataset.add"):
            assert r["path"] is None and r["agreement"] is None, r
    # The raw lines too: each one JSON object, nothing else.
    res = sc.snapshot.ok("audit", "export")
    lines = res.stdout.split("\n")
    assert lines[-1] == "" and len(lines) == len(recs) + 1
    assert [json.loads(l) for l in lines[:-1]] == recs


@pytest.mark.parametrize("who", ["python", "dd"])
def test_reader_records(sc, who):
    """open, reads that cover exactly the bytes served, release: with the
    process's pid (not the thread's), uid and comm."""
    if who == "python":
        pid, comm, reads = sc.py["pid"], sc.py["comm"], sc.py_reads
    else:
        pid, comm, reads = sc.dd_pid, "dd", sc.dd_reads
    mine = of_pid(sc.records, pid)
    assert mine, "no record with pid %d" % pid
    if who == "python":
        assert not of_pid(sc.records, sc.py["tid"]), "a thread id as pid"
    events = [r["event"] for r in mine]
    assert events[0] == "open" and events[-1] == "release", events
    assert set(events[1:-1]) == {"read"}, events
    for r in mine:
        assert (r["uid"], r["comm"], r["path"], r["result"],
                r["agreement"]) == (0, comm, sc.path, "ok", AGR), r
        assert r["revision"] == 1, r
    read_recs = mine[1:-1]
    for r in read_recs:
        assert 0 <= r["bytes"] <= r["length"], r
        assert r["offset"] + r["bytes"] <= sc.size, r
    assert recorded_ranges(read_recs) == served_ranges(reads, sc.size)
    if who == "python":
        # The read across the end asked for 1000 and was served 300.
        tail = [r for r in read_recs if r["offset"] == sc.size - 300]
        assert [(r["length"], r["bytes"]) for r in tail] == [(1000, 300)]


def test_denials_recorded(sc):
    """Each refused request of uid 65534: its own event name, EACCES, the
    refused process's pid; nothing of 65534's is recorded as ok."""
    nobody = [r for r in sc.records if r["uid"] == lib.NOBODY]
    assert nobody and all(r["result"] == "EACCES" for r in nobody), nobody
    assert all(r["agreement"] == AGR and r["revision"] == 1 for r in nobody)
    assert {r["pid"] for r in nobody} == {sc.probe_pid, sc.cat_pid,
                                          sc.drop_pid}

    def seen(pid):
        return {(r["event"], r["path"]) for r in of_pid(nobody, pid)}

    probe = seen(sc.probe_pid)
    # stat of the root (its path is checked by test_root_refusal_path)
    assert ("getattr", "/") in probe or ("getattr", "") in probe, probe
    assert ("lookup", "/visits") in probe, probe   # stat, read of data.csv
    assert {e for e, _ in probe} <= {"getattr", "lookup", "readdir",
                                     "open"}, probe
    assert ("lookup", "/visits") in seen(sc.cat_pid)
    assert seen(sc.drop_pid) == {("getattr", sc.path), ("open", sc.path)}
    assert {r["comm"] for r in of_pid(nobody, sc.cat_pid)} == {"cat"}


def test_root_refusal_path(sc):
    """A refused stat and listdir of the mount root are recorded with the
    root's path, "/", as the mount record writes it."""
    probe = of_pid(sc.records, sc.probe_pid)
    on_root = [r for r in probe if r["event"] in ("getattr", "readdir")]
    assert {r["event"] for r in on_root} == {"getattr", "readdir"}, probe
    assert {r["path"] for r in on_root} == {"/"}, on_root


def test_refused_read_names_the_refused_uid(tmp_dir):
    """Root opens data.csv, drops to 65534 and reads: the read is refused
    (EACCES), and its record must say uid 65534, not root (who is in the
    agreement and was refused nothing)."""
    home = lib.Home(tmp_dir)
    home.add("visits", lib.gen_visits(tmp_dir / "v.csv", 100, seed=2))
    home.apply(lib.agreement(AGR, {"visits": RULES}, uids=[0]))
    with lib.mounted(home, AGR) as m:
        pid, rc, out, err = spawn([lib.PYTHON, "-c", DROP_AND_READ,
                                   m / "visits" / "data.csv"])
        assert rc == 0, err
        assert json.loads(out) == {"pid": pid, "read": errno.EACCES}
    reads = of_pid(home.audit_export(), pid, "read")
    assert [r["result"] for r in reads] == ["EACCES"], reads
    assert reads[0]["uid"] == lib.NOBODY, reads[0]


def test_mount_and_unmount_records(sc):
    for agr, pid in ((AGR, sc.daemon_pid), (OTHER, sc.other_pid)):
        mine = of_pid(sc.records, pid)
        assert [r["event"] for r in mine] == ["mount", "unmount"], mine
        for r in mine:
            assert (r["agreement"], r["uid"], r["comm"], r["path"],
                    r["result"]) == (agr, 0, "govfs", "/", "ok"), r
    # Everything served under AGR lies between its mount and unmount.
    mount, unmount = [r["seq"] for r in of_pid(sc.records, sc.daemon_pid)]
    for r in sc.records:
        if r["event"] in ("open", "read", "release", "lookup", "getattr") \
                and r["agreement"] == AGR:
            assert mount < r["seq"] < unmount, r


def test_admin_records(sc):
    """Admin actions carry the admin's real identity; SUDO_UID wins."""
    admin = [r for r in sc.records if r["comm"] == "govfsctl"]
    got = [(r["event"], r["agreement"], r["uid"], r["result"])
           for r in admin]
    assert got == [("init", None, sc.admin_uid, "ok"),
                   ("dataset.add", None, sc.admin_uid, "ok"),
                   ("agreement.apply", AGR, sc.admin_uid, "ok"),
                   ("agreement.apply", OTHER, SUDO_UID, "ok")], got
    for r in admin:
        assert r["pid"] and r["pid"] != sc.daemon_pid, r
    assert [r["revision"] for r in admin[2:]] == [1, 1]
    assert "visits" in admin[1]["reason"], admin[1]


def test_export_since(sc):
    """--since is inclusive, and the same instant in another offset
    selects the same records."""
    recs = sc.records
    pivot = recs[len(recs) // 2]
    t = time_ns(pivot["time"])
    want = [r for r in recs if time_ns(r["time"]) >= t]
    assert pivot in want
    assert sc.home.audit_export("--since", pivot["time"]) == want
    assert sc.home.audit_export("--since", format_ns(t, 8 * 60)) == want
    assert sc.home.audit_export("--since", format_ns(t, -5 * 60)) == want
    later = [r for r in recs if time_ns(r["time"]) > t]
    assert sc.home.audit_export("--since", format_ns(t + 1)) == later
    assert sc.home.audit_export("--since", format_ns(
        time_ns(recs[0]["time"]))) == recs
    last = time_ns(recs[-1]["time"])
    assert sc.home.audit_export("--since", format_ns(last + 1)) == []
    res = sc.home.ctl("audit", "export", "--since", "2026-01-01")
    assert res.returncode == 2 and res.stdout == ""


def test_export_agreement(sc):
    recs = sc.records
    for agr in (AGR, OTHER):
        want = [r for r in recs if r["agreement"] == agr]
        assert sc.home.audit_export("--agreement", agr) == want
        assert {"agreement.apply", "mount", "open", "read", "release",
                "unmount"} <= {r["event"] for r in want}, agr
    assert sc.home.audit_export("--agreement", "agr-none") == []
    pivot = time_ns(recs[len(recs) // 2]["time"])
    assert sc.home.audit_export("--agreement", OTHER, "--since",
                                format_ns(pivot)) == [
        r for r in recs if r["agreement"] == OTHER and
        time_ns(r["time"]) >= pivot]


def test_tail(sc):
    res = sc.snapshot.ok("audit", "tail", "-n", "3")
    lines = res.stdout.splitlines()
    assert len(lines) == 3, res.stdout
    last = sc.records[-3:]
    for line, r in zip(lines, last):
        assert line.split()[0] == str(r["seq"]), (line, r)
        assert r["time"] in line and r["event"] in line, (line, r)
    res = sc.snapshot.ok("audit", "tail")
    assert len(res.stdout.splitlines()) == min(20, len(sc.records))
    res = sc.snapshot.ok("audit", "tail", "-n", "2", "--agreement", OTHER)
    assert [l.split()[0] for l in res.stdout.splitlines()] == [
        str(r["seq"]) for r in sc.records if r["agreement"] == OTHER][-2:]


# ---------------------------------------------------------------------------
# Durability
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def db_reader(home):
    con = sqlite3.connect("file:%s?mode=ro" % (home.dir / "audit.db"),
                          uri=True, timeout=10)
    try:
        yield con
    finally:
        con.close()


def db_rows(con, after, pid):
    """(seq, event, offset, bytes) of pid's committed records after seq,
    but releases (sent by the kernel after close() has returned)."""
    return con.execute(
        "SELECT seq, event, offset, bytes FROM records WHERE seq > ? AND "
        "pid = ? AND event != 'release' ORDER BY seq",
        (after, pid)).fetchall()


def test_open_and_reads_durable(tmp_dir):
    """open() returns only once its record is committed; close() only
    once the handle's read records are: another reader of audit.db sees
    them the moment the call returns (checked at once with sqlite3, then
    with `govfsctl audit export`)."""
    home = lib.Home(tmp_dir)
    src = lib.gen_visits(tmp_dir / "v.csv", 2000, seed=4)
    want = lib.expected_data_csv(src.read_bytes(), RULES)
    home.add("visits", src)
    home.apply(lib.agreement(AGR, {"visits": RULES}, uids=[0]))
    me = os.getpid()
    with lib.mounted(home, AGR) as m, db_reader(home) as con:
        path = m / "visits" / "data.csv"
        last = con.execute("SELECT max(seq) FROM records").fetchone()[0]
        for n in range(6):
            fd = os.open(path, os.O_RDONLY)
            try:
                rows = db_rows(con, last, me)
                assert [r[1] for r in rows] == ["open"], (n, rows)
                exported = [r for r in of_pid(home.audit_export(), me)
                            if r["event"] != "release"]
                assert exported[-1]["event"] == "open", exported[-1]
                assert exported[-1]["seq"] == rows[0][0]
                last = rows[0][0]
                reads = [(100 * n, 500), (100 * n + 500, 700),
                         (3000 + n, 20)]
                for off, size in reads:
                    assert os.pread(fd, size, off) == want[off:off + size]
            finally:
                os.close(fd)
            rows = db_rows(con, last, me)
            read_rows = [r for r in rows if r[1] == "read"]
            assert merge((o, o + b) for _, _, o, b in read_rows) == \
                served_ranges(reads, len(want)), (n, rows)
            exported = [r for r in of_pid(home.audit_export(), me)
                        if r["seq"] > last and r["event"] == "read"]
            assert recorded_ranges(exported) == served_ranges(
                reads, len(want))
            last = max(r[0] for r in rows)

        # Without close(), a read record is durable within SPEC's 50 ms;
        # allow generous slack for a loaded machine.
        fd = os.open(path, os.O_RDONLY)
        try:
            last = db_rows(con, last, me)[-1][0]
            assert os.pread(fd, 10, 77) == want[77:87]
            t0 = time.monotonic()
            assert lib.wait_for(lambda: any(
                r[1] == "read" for r in db_rows(con, last, me)), 2,
                step=0.002)
            assert time.monotonic() - t0 < 0.5
        finally:
            os.close(fd)
    # Every handle was released.
    mine = of_pid(home.audit_export(), me)
    assert [r["event"] for r in mine].count("open") == 7
    assert [r["event"] for r in mine].count("release") == 7


# ---------------------------------------------------------------------------
# Tamper evidence
# ---------------------------------------------------------------------------

RECORD_FIELDS = ["time_ns", "agreement", "revision", "uid", "pid", "comm",
                 "event", "path", "offset", "length", "bytes", "result",
                 "reason"]
ALL_COLUMNS = ["seq"] + RECORD_FIELDS + ["hash"]


@pytest.fixture
def victim(sc, tmp_dir):
    """A copy of the scenario's sealed home, checked intact, and the
    scenario's records."""
    home = sc.snapshot.copy(tmp_dir)
    assert_intact(home)
    return home


@contextlib.contextmanager
def attacker(home, drop_triggers=True):
    """A plain sqlite3 connection to audit.db (autocommit), triggers
    dropped as an attacker with the file would."""
    con = sqlite3.connect(str(home.dir / "audit.db"), isolation_level=None)
    try:
        if drop_triggers:
            for (name,) in con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                    " AND tbl_name IN ('records', 'seals')").fetchall():
                con.execute('DROP TRIGGER "%s"' % name)
        yield con
    finally:
        con.close()


def row(con, seq):
    return con.execute("SELECT %s FROM records WHERE seq = ?" %
                       ", ".join(ALL_COLUMNS), (seq,)).fetchone()


def insert_row(con, values):
    con.execute("INSERT INTO records(%s) VALUES(%s)" % (
        ", ".join(ALL_COLUMNS), ", ".join("?" * len(ALL_COLUMNS))), values)


def a_read_seq(sc):
    """The seq of a read record in the middle of the log."""
    reads = [r["seq"] for r in sc.records if r["event"] == "read"]
    return reads[len(reads) // 2]


@pytest.mark.parametrize("column, value", [
    ("uid", 4242), ("bytes", 1), ("path", "/visits/schema.json"),
    ("result", "EACCES"), ("time_ns", 1), ("reason", "x"),
    ("hash", b"\0" * 32)])
def test_altered_field(sc, victim, column, value):
    k = a_read_seq(sc)
    with attacker(victim) as con:
        (orig,) = con.execute("SELECT %s FROM records WHERE seq = ?"
                              % column, (k,)).fetchone()
        assert orig != value
        con.execute("UPDATE records SET %s = ? WHERE seq = ?" % column,
                    (value, k))
    assert_caught(victim, k)
    with attacker(victim) as con:
        con.execute("UPDATE records SET %s = ? WHERE seq = ?" % column,
                    (orig, k))
    assert_intact(victim)


def test_deleted_record(sc, victim):
    k = a_read_seq(sc)
    with attacker(victim) as con:
        saved = row(con, k)
        con.execute("DELETE FROM records WHERE seq = ?", (k,))
    assert_caught(victim, k)
    with attacker(victim) as con:
        insert_row(con, saved)
    assert_intact(victim)


def test_deleted_first_record(sc, victim):
    with attacker(victim) as con:
        saved = row(con, 1)
        con.execute("DELETE FROM records WHERE seq = 1")
    assert_caught(victim, 1)
    with attacker(victim) as con:
        insert_row(con, saved)
    assert_intact(victim)


@pytest.mark.parametrize("how", ["random hash", "copied hash"])
def test_forged_record_at_end(sc, victim, how):
    """A record appended after the last seal: with a made-up hash, or a
    copy of the last record with its hash."""
    n = len(sc.records)
    with attacker(victim) as con:
        last = row(con, n)
        if how == "random hash":
            forged = (n + 1, last[1] + 1000, AGR, 1, 0, 4321, "python3",
                      "read", sc.path, 0, 1000, 1000, "ok", None,
                      os.urandom(32))
        else:
            forged = (n + 1,) + tuple(last[1:])
        insert_row(con, forged)
    assert_caught(victim, n + 1)
    with attacker(victim) as con:
        con.execute("DELETE FROM records WHERE seq = ?", (n + 1,))
    assert_intact(victim)


def shift(con, after, by):
    """Renumber the records after seq `after` by `by` (in two steps, so
    that no two rows share a seq on the way)."""
    con.execute("UPDATE records SET seq = -seq WHERE seq > ?", (after,))
    con.execute("UPDATE records SET seq = -seq + ? WHERE seq < 0", (by,))


def test_forged_record_in_the_middle(sc, victim):
    """A record slipped in after record k, the later ones renumbered."""
    k = a_read_seq(sc)
    with attacker(victim) as con:
        copy = row(con, k)
        shift(con, k, 1)
        insert_row(con, (k + 1,) + tuple(copy[1:]))
    assert_caught(victim, k + 1)
    with attacker(victim) as con:
        con.execute("DELETE FROM records WHERE seq = ?", (k + 1,))
        shift(con, k + 1, -1)
    assert_intact(victim)


@pytest.mark.parametrize("with_hash", [True, False])
def test_swapped_records(sc, victim, with_hash):
    """Two records' contents swapped (with or without their stored
    hashes): verify names the first of them."""
    reads = [r["seq"] for r in sc.records if r["event"] == "read"]
    i, j = reads[1], reads[-2]
    cols = ALL_COLUMNS[1:] if with_hash else RECORD_FIELDS
    sets = ", ".join("%s = ?" % c for c in cols)
    sel = "SELECT %s FROM records WHERE seq = ?" % ", ".join(cols)

    def swap(con):
        a = con.execute(sel, (i,)).fetchone()
        b = con.execute(sel, (j,)).fetchone()
        assert a != b
        con.execute("UPDATE records SET %s WHERE seq = ?" % sets, b + (i,))
        con.execute("UPDATE records SET %s WHERE seq = ?" % sets, a + (j,))

    with attacker(victim) as con:
        swap(con)
    assert_caught(victim, i)
    with attacker(victim) as con:
        swap(con)
    assert_intact(victim)


def test_triggers_refuse_update_and_delete(sc, victim):
    k = a_read_seq(sc)
    with attacker(victim, drop_triggers=False) as con:
        before = row(con, k)
        for sql, args in (
                ("UPDATE records SET uid = 7 WHERE seq = ?", (k,)),
                ("UPDATE records SET seq = seq + 1000 WHERE seq = ?", (k,)),
                ("DELETE FROM records WHERE seq = ?", (k,)),
                ("DELETE FROM records", ()),
                ("UPDATE seals SET time_ns = 0", ()),
                ("DELETE FROM seals", ())):
            with pytest.raises(sqlite3.DatabaseError) as e:
                con.execute(sql, args)
            assert "append-only" in str(e.value), (sql, e.value)
        assert row(con, k) == before
        assert con.execute("SELECT count(*) FROM records").fetchone()[0] == \
            len(sc.records)
        assert con.execute("SELECT count(*) FROM seals").fetchone()[0] > 0
    assert_intact(victim)


def encode_record(values):
    """The canonical encoding of a record (fs/audit.c): seq, then each
    field; an integer 0x00 if null else 0x01 and 8 bytes LE, a string 0x00
    if null else 0x01, 4 bytes LE length and its UTF-8 bytes."""
    out = bytearray(b"\x01" + struct.pack("<q", values[0]))
    for v in values[1:]:
        if v is None:
            out += b"\x00"
        elif isinstance(v, int):
            out += b"\x01" + struct.pack("<q", v)
        else:
            b = v.encode("utf-8")
            out += b"\x01" + struct.pack("<I", len(b)) + b
    return bytes(out)


def chain(con, start=1, prev=None):
    """[(seq, recomputed hash)] from seq start on, continuing from the
    hash prev of the record before (32 zero bytes before the first)."""
    if prev is None:
        prev = b"\0" * 32
    out = []
    for values in con.execute(
            "SELECT seq, %s FROM records WHERE seq >= ? ORDER BY seq"
            % ", ".join(RECORD_FIELDS), (start,)):
        prev = hashlib.sha256(prev + encode_record(values)).digest()
        out.append((values[0], prev))
    return out


def test_rehashed_alteration_caught_by_seal(sc, victim):
    """The stored chain is what the documented encoding gives; an attacker
    who alters record k and recomputes every later hash is still caught,
    by the first seal at or after k, which names the first record after
    the last good seal."""
    k = a_read_seq(sc)
    with attacker(victim) as con:
        stored = con.execute("SELECT seq, hash FROM records ORDER BY seq"
                             ).fetchall()
        assert chain(con) == [(s, bytes(h)) for s, h in stored]
        seals = [s for (s,) in con.execute("SELECT seq FROM seals")]
        assert seals and max(seals) == len(sc.records) >= k
        good = max([s for s in seals if s < k], default=0)
        (orig,) = con.execute("SELECT uid FROM records WHERE seq = ?",
                              (k,)).fetchone()
        con.execute("UPDATE records SET uid = 4242 WHERE seq = ?", (k,))
        prev = bytes(stored[k - 2][1]) if k > 1 else None
        for seq, h in chain(con, k, prev):
            con.execute("UPDATE records SET hash = ? WHERE seq = ?", (h, seq))
    assert_caught(victim, good + 1)
    with attacker(victim) as con:
        con.execute("UPDATE records SET uid = ? WHERE seq = ?", (orig, k))
        for seq, h in stored[k - 1:]:
            con.execute("UPDATE records SET hash = ? WHERE seq = ?", (h, seq))
    assert_intact(victim)


# ---------------------------------------------------------------------------
# Fail closed
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(path, size):
    """A tmpfs of size (mount's spelling) on the new directory path;
    the test is skipped where mounting is denied."""
    path.mkdir()
    res = lib.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size,
                   "tmpfs", path], text=True, timeout=30)
    if res.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % res.stderr.strip())
    try:
        yield path
    finally:
        lib.cleanup_everything()
        if lib.run(["umount", path], timeout=30).returncode != 0:
            lib.run(["umount", "-l", path], timeout=30)


@pytest.fixture
def small_fs(tmp_dir):
    """A 8 MiB tmpfs to put a home on."""
    with tmpfs(tmp_dir / "fs", "8m") as path:
        yield path


def fill(path):
    """Write path until the file system is full."""
    with open(path, "wb", buffering=0) as f:
        with pytest.raises(OSError) as e:
            while True:
                f.write(b"\xa5" * 65536)
    assert e.value.errno == errno.ENOSPC, e.value


def test_fail_closed_when_log_cannot_be_written(small_fs, tmp_dir):
    """Disk full under audit.db: once a read has failed with EIO, every
    read and open fails with EIO; after unmounting and freeing space, a
    new mount serves again and the log verifies."""
    home = lib.Home(small_fs)
    src = lib.gen_visits(tmp_dir / "v.csv", 300, seed=8)
    want = lib.expected_data_csv(src.read_bytes(), RULES)
    home.add("visits", src)
    home.apply(lib.agreement(AGR, {"visits": RULES}, uids=[0]))
    mp = lib.new_mountpoint(tmp_dir)
    me = os.getpid()
    with lib.mounted(home, AGR, mp) as m:
        path = m / "visits" / "data.csv"
        fd = os.open(path, os.O_RDONLY)
        readme = os.open(m / "README.txt", os.O_RDONLY)
        try:
            # Far under the low-space limit from the start: said at once.
            assert lib.wait_for(lambda: LOW_SPACE in readme_text(m), 5)
            assert lib.wait_for(lambda: LOW_SPACE_LOG in m.stderr(), 5)
            assert os.pread(fd, 100, 0) == want[:100]
            # That read is recorded (within 50 ms) before the disk fills.
            assert lib.wait_for(lambda: of_pid(
                home.audit_export(), me, "read"), 2)
            fill(small_fs / "filler")
            outcomes = []
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                outcomes.append(lib.errno_of(os.pread, fd, 50, 100))
                if outcomes[-1] != "ok":
                    break
                time.sleep(0.01)
            assert outcomes[-1] == "EIO", outcomes
            # From the first failure on, nothing is served.
            later = []
            for n in range(10):
                later.append(lib.errno_of(os.pread, fd, 50, 200 + n))
                later.append(lib.errno_of(os.read, readme, 50))
                time.sleep(0.005)
            assert later == ["EIO"] * 20, later
            for p in (path, m / "README.txt"):
                assert lib.errno_of(os.open, p, os.O_RDONLY) == "EIO", p
            res = lib.run(["cat", path], text=True)
            assert res.returncode != 0 and res.stdout == ""
            assert "Input/output error" in res.stderr, res.stderr
        finally:
            for f in (fd, readme):
                with contextlib.suppress(OSError):
                    os.close(f)
        assert "audit" in m.stderr()

    # Still full (top it up: closing the log may have freed some): govfs
    # cannot record the mount (nor, the catalog's WAL having been folded
    # back by the last daemon, map the catalog), so it does not serve.
    fill(small_fs / "filler2")
    res = lib.run([lib.GOVFS, "--home", home.dir, "--key-file", home.key,
                   "--agreement", AGR, mp], text=True, timeout=30)
    lib.STARTED.append((None, mp))
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert not lib.is_mounted(mp)
    assert res.stderr.count("\n") == 1, res.stderr
    assert "audit" in res.stderr or "catalog" in res.stderr, res.stderr

    os.unlink(small_fs / "filler")
    os.unlink(small_fs / "filler2")
    with lib.mounted(home, AGR, mp) as m:
        assert lib.read_all(m / "visits" / "data.csv") == want
    assert_intact(home)
    recs = home.audit_export()
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert [r["event"] for r in recs].count("mount") == 2
    first_read = [r for r in of_pid(recs, me, "read")
                  if r["path"] == "/visits/data.csv"][0]
    assert (first_read["offset"], first_read["bytes"]) == (0, 100)


def test_low_space_warning(tmp_dir):
    """Under 64 MiB free on the file system of audit.db (an 80 MiB tmpfs
    here): the daemon says so once on stderr and README.txt says so (its
    size exact), and data is still served; when space is back both say so,
    and a second fall is said again."""
    with tmpfs(tmp_dir / "fs", "80m") as fs:
        home = lib.Home(fs)
        src = lib.gen_visits(tmp_dir / "v.csv", 300, seed=5)
        want = lib.expected_data_csv(src.read_bytes(), RULES)
        home.add("visits", src)
        home.apply(lib.agreement(AGR, {"visits": RULES}, uids=[0]))
        filler = fs / "filler"
        with lib.mounted(home, AGR) as m:
            time.sleep(0.3)
            assert LOW_SPACE not in readme_text(m)
            filler.write_bytes(b"\xa5" * (30 << 20))
            assert lib.wait_for(lambda: LOW_SPACE in readme_text(m), 5)
            assert lib.read_all(m / "visits" / "data.csv") == want
            assert m.stderr().count(LOW_SPACE_LOG) == 1, m.stderr()
            filler.unlink()
            assert lib.wait_for(lambda: LOW_SPACE not in readme_text(m), 5)
            assert "MiB free again" in m.stderr(), m.stderr()
            filler.write_bytes(b"\xa5" * (30 << 20))
            assert lib.wait_for(lambda: LOW_SPACE in readme_text(m), 5)
            assert m.stderr().count(LOW_SPACE_LOG) == 2, m.stderr()
        assert_intact(home)


# ---------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "-3", "abc", "1.5", "36501", ""])
def test_init_retention_days_refused(tmp_dir, value):
    home, key = tmp_dir / "h", tmp_dir / "h.key"
    res = lib.run([lib.GOVFSCTL, "init", "--retention-days", value,
                   "--home", home, "--key-file", key], text=True)
    lib.assert_one_line_error(res, 2, "govfsctl", "--retention-days")
    assert res.stdout == ""
    assert not home.exists() and not key.exists()


def test_init_with_a_bad_key_leaves_the_home_for_a_retry(tmp_dir):
    """SPEC: init makes a home in an empty directory; refused for a key
    file that is not a master key, it leaves that directory empty, so
    that init with a good key then succeeds."""
    home, bad, good = tmp_dir / "h", tmp_dir / "bad.key", tmp_dir / "k"
    home.mkdir()
    bad.write_bytes(b"short\n")
    res = lib.run([lib.GOVFSCTL, "init", "--home", home, "--key-file", bad],
                  text=True)
    lib.assert_one_line_error(res, 1, "govfsctl", str(bad))
    assert list(home.iterdir()) == []
    res = lib.run([lib.GOVFSCTL, "init", "--home", home, "--key-file", good],
                  text=True)
    assert res.returncode == 0, res.stderr


def meta_value(home, key):
    with db_reader(home) as con:
        row = con.execute("SELECT value FROM meta WHERE key = ?",
                          (key,)).fetchone()
    return row and row[0]


def test_init_retention_days_kept(tmp_dir):
    """The audit log's meta keeps --retention-days (365 without it), and
    pruning goes by it."""
    assert meta_value(lib.Home(tmp_dir, "default"), "retention_days") == "365"
    home, key = tmp_dir / "h", tmp_dir / "h.key"
    res = lib.run([lib.GOVFSCTL, "init", "--retention-days", "30",
                   "--home", home, "--key-file", key], text=True)
    assert res.returncode == 0, res.stderr
    assert "audit retention 30 days" in res.stdout
    with contextlib.closing(sqlite3.connect(
            "file:%s?mode=ro" % (home / "audit.db"), uri=True)) as con:
        assert con.execute("SELECT value FROM meta WHERE key ="
                           " 'retention_days'").fetchone() == ("30",)
    res = lib.run([lib.GOVFSCTL, "audit", "prune", "--home", home,
                   "--key-file", key], text=True)
    assert res.returncode == 0, res.stderr
    assert "older than 30 days" in res.stdout, res.stdout


def test_prune_verb(tmp_dir):
    """`audit prune` removes the sealed segments older than the retention
    period, records who did it and what went in a sealed audit.prune
    record, and verify starts from the seal that closes them."""
    home = backdated_home(tmp_dir, 400, 5)
    home.add("visits", lib.gen_visits(tmp_dir / "v.csv", 50, seed=3))
    before = home.audit_export()
    assert [r["seq"] for r in before] == list(range(1, 7))
    assert_intact(home)
    res = home.ok("audit", "prune")
    assert res.stdout == ("pruned 5 records (sequence numbers 1 to 5), "
                          "older than 365 days\n"), res.stdout
    after = home.audit_export()
    assert after[:-1] == before[5:]
    p = after[-1]
    assert (p["seq"], p["event"], p["offset"], p["length"], p["bytes"],
            p["comm"], p["uid"], p["agreement"], p["path"], p["result"]) == \
        (7, "audit.prune", 1, 5, None, "govfsctl",
         expected_admin_uid(os.environ), None, None, "ok"), p
    assert p["reason"].startswith("retention 365 days: older than "), p
    res = home.ok("audit", "verify")
    assert res.stdout == ("audit log intact: 2 records, from sequence "
                          "number 6 (those before were pruned)\n"), \
        res.stdout
    res = home.ok("audit", "prune")
    assert res.stdout.startswith("nothing to prune"), res.stdout
    assert home.audit_export() == after
    # The triggers refuse deletes again.
    with attacker(home, drop_triggers=False) as con:
        with pytest.raises(sqlite3.DatabaseError):
            con.execute("DELETE FROM records WHERE seq = 6")


def test_daemon_prunes(tmp_dir):
    """A daemon prunes as it starts (and daily), without an admin."""
    home = backdated_home(tmp_dir, 400, 3)
    src = lib.gen_visits(tmp_dir / "v.csv", 50, seed=6)
    home.add("visits", src)
    home.apply(lib.agreement(AGR, {"visits": RULES}, uids=[0]))

    def prunes():
        return [r for r in home.audit_export()
                if r["event"] == "audit.prune"]

    with lib.mounted(home, AGR) as m:
        assert lib.wait_for(prunes, 5)
        [p] = prunes()
        assert (p["pid"], p["comm"], p["uid"], p["offset"],
                p["length"]) == (m.proc.pid, "govfs", 0, 1, 3), p
        assert lib.read_all(m / "visits" / "data.csv") == \
            lib.expected_data_csv(src.read_bytes(), RULES)
    recs = home.audit_export()
    assert recs[0]["seq"] == 4
    assert [r["seq"] for r in recs] == list(range(4, 4 + len(recs)))
    assert_intact(home)


def test_tampering_after_prune(tmp_dir):
    """After a prune, verify still names the first bad record; it tells a
    prune from records removed at the start without one, and wants the
    seal that closes the pruned part."""
    home = backdated_home(tmp_dir, 400, 6)
    home.add("visits", lib.gen_visits(tmp_dir / "v.csv", 50, seed=7))
    home.apply(lib.agreement(AGR, {"visits": RULES}, uids=[0]))
    home.ok("audit", "prune")
    assert [(r["seq"], r["event"]) for r in home.audit_export()] == [
        (7, "dataset.add"), (8, "agreement.apply"), (9, "audit.prune")]
    assert_intact(home)

    def seal(con, seq):
        return con.execute("SELECT * FROM seals WHERE seq = ?",
                           (seq,)).fetchone()

    # The first record kept, removed: no prune declares it.
    with attacker(home) as con:
        first = row(con, 7)
        con.execute("DELETE FROM records WHERE seq = 7")
    assert_caught(home, 7)
    with attacker(home) as con:
        insert_row(con, first)
    assert_intact(home)
    # A kept record altered.
    with attacker(home) as con:
        con.execute("UPDATE records SET uid = 4242 WHERE seq = 8")
    assert_caught(home, 8)
    with attacker(home) as con:
        con.execute("UPDATE records SET uid = ? WHERE seq = 8",
                    (expected_admin_uid(os.environ),))
    assert_intact(home)
    # The seal that closes the pruned part, removed.
    with attacker(home) as con:
        anchor = seal(con, 6)
        con.execute("DELETE FROM seals WHERE seq = 6")
    assert_caught(home, 7)
    with attacker(home) as con:
        con.execute("INSERT INTO seals VALUES(?, ?, ?, ?)", anchor)
    assert_intact(home)
    # The prune's own record changed, or removed with its seal.
    with attacker(home) as con:
        con.execute("UPDATE records SET length = 4 WHERE seq = 9")
    assert_caught(home, 9)
    with attacker(home) as con:
        con.execute("UPDATE records SET length = 6 WHERE seq = 9")
        prune, prune_seal = row(con, 9), seal(con, 9)
        con.execute("DELETE FROM records WHERE seq = 9")
        con.execute("DELETE FROM seals WHERE seq = 9")
    assert_caught(home, 1)
    with attacker(home) as con:
        insert_row(con, prune)
        con.execute("INSERT INTO seals VALUES(?, ?, ?, ?)", prune_seal)
    assert_intact(home)


def test_deleted_prefix_up_to_a_seal(sc, victim):
    """Records removed from the start up to a seal (and the seals before
    it), as a prune would, but with no prune: caught, naming record 1."""
    with attacker(victim) as con:
        seals = [s for (s,) in con.execute("SELECT seq FROM seals"
                                           " ORDER BY seq")]
        k = seals[len(seals) // 2]
        saved = con.execute("SELECT * FROM records WHERE seq <= ?",
                            (k,)).fetchall()
        saved_seals = con.execute("SELECT * FROM seals WHERE seq < ?",
                                  (k,)).fetchall()
        con.execute("DELETE FROM records WHERE seq <= ?", (k,))
        con.execute("DELETE FROM seals WHERE seq < ?", (k,))
    assert_caught(victim, 1)
    with attacker(victim) as con:
        for values in saved:
            insert_row(con, values)
        con.executemany("INSERT INTO seals VALUES(?, ?, ?, ?)", saved_seals)
    assert_intact(victim)


# ---------------------------------------------------------------------------
# tail -f
# ---------------------------------------------------------------------------

# Reads every other 512 bytes of a file, so that no two reads merge into
# one record: many records, quickly.
SPARSE_READER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
for off in range(0, size, 1024):
    os.pread(fd, 512, off)
os.close(fd)
"""


def tail_seqs(path):
    """The sequence numbers of the lines `audit tail` wrote to path."""
    with open(path) as f:
        return [int(line.split()[0]) for line in f if line.strip()]


def test_tail_follow_is_exact(tmp_dir):
    """`audit tail -f` shows every record committed after it started, once
    each and in order, though two daemons and govfsctl commit at the same
    time, and whatever time the records bear; with --agreement, only that
    agreement's."""
    home = lib.Home(tmp_dir)
    src = lib.gen_visits(tmp_dir / "v.csv", 6000, seed=9)
    home.add("visits", src)
    home.apply(lib.agreement(AGR, {"visits": RULES}, uids=[0]))
    home.apply(lib.agreement(OTHER, {"visits": RULES}, uids=[0]))
    start = home.audit_export()
    outs = [tmp_dir / "tail-all.out", tmp_dir / "tail-agr.out"]
    cmds = [home.ctl_cmd("audit", "tail", "-n", "1", "-f"),
            home.ctl_cmd("audit", "tail", "-n", "1", "-f",
                         "--agreement", AGR)]
    tails = []
    try:
        for cmd, out in zip(cmds, outs):
            with open(out, "w") as f:
                tails.append(subprocess.Popen([str(c) for c in cmd],
                                              stdout=f,
                                              stderr=subprocess.PIPE))
        assert lib.wait_for(lambda: all(tail_seqs(o) for o in outs), 10)
        with lib.mounted(home, AGR) as m1, lib.mounted(home, OTHER) as m2:
            readers = [subprocess.Popen([lib.PYTHON, "-c", SPARSE_READER,
                                         m / "visits" / "data.csv"])
                       for m in (m1, m2, m1, m2)]
            home.add("more", lib.gen_visits(tmp_dir / "w.csv", 50, seed=2))
            # Records stamped long ago, committed now: shown all the same.
            res = lib.run([lib.AUDIT_BACKDATE, home.dir, 400, 3], text=True)
            assert res.returncode == 0, res.stderr
            for r in readers:
                assert r.wait(timeout=120) == 0
        recs = home.audit_export()
        first = start[-1]["seq"]
        want_all = list(range(first, recs[-1]["seq"] + 1))
        want_agr = [r["seq"] for r in start if r["agreement"] == AGR][-1:] + [
            r["seq"] for r in recs if r["agreement"] == AGR and r["seq"] > first]
        assert len(want_all) > 500, "too few records to tell"
        for out, want in zip(outs, (want_all, want_agr)):
            assert lib.wait_for(lambda: tail_seqs(out)[-1] >= want[-1], 10)
        time.sleep(0.5)  # two more polls: nothing more may come
        for t in tails:
            assert t.poll() is None, t.stderr.read()
    finally:
        for t in tails:
            t.kill()
            t.wait()
    assert tail_seqs(outs[0]) == want_all
    assert tail_seqs(outs[1]) == want_agr
