"""
Access: only the agreement's uids see anything (root included); the mount
is read-only; outside the validity window README.txt says why and data
files cannot be opened or read.
"""
import errno
import hashlib
import os
import time

import pytest

import govfs_testlib as lib

RULES = {"visit_id": "keep", "district": "keep", "age": "keep",
         "name": "mask:first1", "notes": "keep"}


class Data:
    pass


@pytest.fixture(scope="module")
def data(module_dir):
    d = Data()
    d.home = home = lib.Home(module_dir)
    src = lib.gen_visits(module_dir / "people.csv", 800, seed=3)
    d.src = src.read_bytes()
    d.want = lib.expected_data_csv(d.src, RULES)
    home.add("people", src)
    home.apply(lib.agreement("agr-root", {"people": RULES}, uids=[0]))
    home.apply(lib.agreement("agr-nobody", {"people": RULES},
                             uids=[lib.NOBODY]))
    now = time.time()
    home.apply(lib.agreement("agr-future", {"people": RULES},
                             uids=[0, lib.NOBODY],
                             valid_from=lib.rfc3339(now + 365 * 86400),
                             valid_until=lib.rfc3339(now + 730 * 86400)))
    home.apply(lib.agreement("agr-expired", {"people": RULES},
                             uids=[0, lib.NOBODY],
                             valid_from="2020-01-01T00:00:00+08:00",
                             valid_until="2021-01-01T00:00:00+08:00"))
    return d


def all_paths(m):
    return [m.path, m / "README.txt", m / "people", m / "people" / "data.csv",
            m / "people" / "schema.json", m / "people" / "views"]


def refused_everywhere(results):
    return all(r == "EACCES" for r in results)


def test_other_uid_refused(data):
    """uid 65534 is not in agr-root: EACCES on stat, ls, open, read of
    everything, the root directory included; root itself reads fine."""
    with lib.mounted(data.home, "agr-root") as m:
        paths = all_paths(m)
        ops = [("stat", p) for p in paths] + [("listdir", m.path),
                                              ("listdir", m / "people")]
        ops += [("open", m / "README.txt"), ("read", m / "README.txt"),
                ("open", m / "people" / "data.csv"),
                ("read", m / "people" / "data.csv"), ("opendir", m.path)]
        ops += [(op, p) for p in (m.path, m / "people" / "data.csv")
                for op in ("statvfs", "getxattr", "listxattr", "access")]
        got = lib.probe_as(lib.NOBODY, ops)
        assert got == ["EACCES"] * len(ops), list(zip(ops, got))

        def refused():
            return {(r["event"], r["path"]) for r in
                    data.home.audit_export("--agreement", "agr-root")
                    if r["result"] == "EACCES" and r["uid"] == lib.NOBODY}
        # Below the root, the lookup on the way is what refuses.
        want = {(event, "/") for event in
                ("statfs", "getxattr", "listxattr", "access")}
        assert lib.wait_for(lambda: want <= refused(), 5), refused()

        for cmd in (["ls", m.path], ["cat", m / "README.txt"],
                    ["cat", m / "people" / "data.csv"]):
            res = lib.run_as(lib.NOBODY, cmd)
            assert res.returncode != 0 and res.stdout == ""
            assert "Permission denied" in res.stderr, res.stderr

        # The same probe as root succeeds: the refusal is govfs's, not a
        # directory on the way that 65534 cannot traverse.
        assert lib.read_all(m / "people" / "data.csv") == data.want
        got = lib.probe_as(0, ops)
        assert not any(r == "EACCES" for r in got), got


def test_root_refused_when_not_listed(data):
    """agr-nobody lists only 65534: root gets EACCES on everything, 65534
    reads the right bytes."""
    with lib.mounted(data.home, "agr-nobody") as m:
        for p in all_paths(m):
            assert lib.errno_of(os.stat, p) == "EACCES", p
        assert lib.errno_of(os.listdir, m.path) == "EACCES"
        assert lib.errno_of(os.open, m / "README.txt",
                            os.O_RDONLY) == "EACCES"
        assert lib.errno_of(lib.read_all, m / "people" / "data.csv") == \
            "EACCES"
        res = lib.run(["ls", m.path], text=True)
        assert res.returncode != 0 and "Permission denied" in res.stderr

        got = lib.probe_as(lib.NOBODY, [
            ("stat", m / "people" / "data.csv"),
            ("read", m / "people" / "data.csv"),
            ("listdir", m.path), ("read", m / "README.txt")])
        assert got[0] == "ok:%d" % len(data.want)
        assert got[1] == "ok:" + hashlib.sha256(data.want).hexdigest()
        assert got[2] == "ok:README.txt,people"
        assert got[3].startswith("ok:")


READ_ONLY_OPS = {
    # The mount is made read-only (MS_RDONLY), so the kernel's VFS answers
    # most of these with EROFS before govfs is asked; govfs answers EROFS
    # itself too (checked by mounting without "ro" once).
    "create": lambda m: open(m / "people" / "new.txt", "w"),
    "create in root": lambda m: os.open(m / "x", os.O_CREAT | os.O_WRONLY),
    "open for write": lambda m: os.open(m / "people" / "data.csv",
                                        os.O_WRONLY),
    "open rdwr": lambda m: os.open(m / "README.txt", os.O_RDWR),
    "open trunc": lambda m: os.open(m / "people" / "data.csv",
                                    os.O_RDONLY | os.O_TRUNC),
    "truncate": lambda m: os.truncate(m / "people" / "data.csv", 0),
    "unlink": lambda m: os.unlink(m / "people" / "data.csv"),
    "rename": lambda m: os.rename(m / "people" / "data.csv",
                                  m / "people" / "d.csv"),
    "rename dir": lambda m: os.rename(m / "people", m / "folk"),
    "mkdir": lambda m: os.mkdir(m / "people" / "sub"),
    "rmdir": lambda m: os.rmdir(m / "people" / "views"),
    "symlink": lambda m: os.symlink("data.csv", m / "people" / "l"),
    "link": lambda m: os.link(m / "people" / "data.csv", m / "people" / "h"),
    "chmod": lambda m: os.chmod(m / "people" / "data.csv", 0o666),
    "chown": lambda m: os.chown(m / "README.txt", 1, 1),
    "utime": lambda m: os.utime(m / "people" / "data.csv", (0, 0)),
    "setxattr": lambda m: os.setxattr(m / "people" / "data.csv",
                                      "user.tag", b"1"),
    "removexattr": lambda m: os.removexattr(m / "README.txt", "user.tag"),
    "mknod": lambda m: os.mkfifo(m / "people" / "fifo"),
}


@pytest.mark.parametrize("op", sorted(READ_ONLY_OPS))
def test_read_only(data, op):
    with lib.mounted(data.home, "agr-root") as m:
        assert lib.errno_of(READ_ONLY_OPS[op], m) == "EROFS"
        assert lib.read_all(m / "people" / "data.csv") == data.want
        assert sorted(os.listdir(m / "people")) == [
            "data.csv", "schema.json", "views"]


def test_read_only_with_tools(data):
    with lib.mounted(data.home, "agr-root") as m:
        f = m / "people" / "data.csv"
        for cmd in (["touch", f], ["touch", m / "new"], ["rm", "-f", f],
                    ["mv", f, m / "people" / "x.csv"],
                    ["mkdir", m / "d"], ["truncate", "-s", "0", f],
                    ["sh", "-c", "echo x >> '%s'" % f]):
            res = lib.run(cmd, text=True)
            assert res.returncode != 0, cmd
            assert "Read-only file system" in res.stderr, (cmd, res.stderr)
        assert lib.read_all(f) == data.want


@pytest.mark.parametrize("agr_id, state", [("agr-future", "not yet valid"),
                                           ("agr-expired", "expired")])
def test_outside_validity(data, agr_id, state):
    """A not-yet-valid or expired agreement mounts; README.txt says so;
    data.csv cannot be opened, by any listed uid."""
    with lib.mounted(data.home, agr_id) as m:
        readme = lib.read_all(m / "README.txt").decode()
        assert os.stat(m / "README.txt").st_size == len(readme.encode())
        state_line = [l for l in readme.splitlines()
                      if l.startswith("State:")]
        assert state_line and state in state_line[0].lower(), readme
        assert "active" not in state_line[0]
        # When it stopped, or will start, being served: the window's edge.
        doc = data.home.json("agreement", "show", agr_id)
        edge = doc["valid_until" if state == "expired" else "valid_from"]
        lines = readme.splitlines()
        after = lines[lines.index(state_line[0]) + 1]
        assert edge in after and "validity window" in after, readme
        data_csv = m / "people" / "data.csv"
        assert os.stat(data_csv).st_size == len(data.want)
        assert lib.errno_of(os.open, data_csv, os.O_RDONLY) == "EACCES"
        assert lib.errno_of(lib.read_all, data_csv) == "EACCES"
        res = lib.run(["cat", data_csv], text=True)
        assert res.returncode != 0 and "Permission denied" in res.stderr
        got = lib.probe_as(lib.NOBODY, [("read", data_csv),
                                        ("read", m / "README.txt")])
        assert got[0] == "EACCES" and got[1].startswith("ok:")


def test_show_dates_expiry_from_valid_until(data):
    """SPEC: show gives the state "since when, by whom, why": an expired
    agreement has been expired since its valid_until, by the validity
    window, not since an admin last applied or resumed it."""
    doc = data.home.json("agreement", "show", "agr-expired")
    assert doc["state"] == "expired"
    assert doc["state_since"] == doc["valid_until"] == "2020-12-31T16:00:00Z"
    assert doc["state_by"] == "the validity window"
    assert doc["state_reason"] == "valid_until passed"
    text = data.home.ok("agreement", "show", "agr-expired").stdout
    assert "expired since 2020-12-31T16:00:00Z by the validity window" in text
    doc = data.home.json("agreement", "show", "agr-future")
    assert doc["state"] == "not_yet_valid"
    assert doc["state_reason"] == "valid_from not reached"
    doc = data.home.json("agreement", "show", "agr-root")
    assert doc["state"] == "active" and doc["state_by"].startswith("uid ")


@pytest.mark.parametrize("agr_id", ["agr-future", "agr-expired"])
def test_only_readme_outside_validity(data, agr_id):
    """SPEC: a not-yet-valid or expired agreement mounts "and only
    README.txt is readable"."""
    with lib.mounted(data.home, agr_id) as m:
        assert lib.read_all(m / "README.txt")
        assert lib.errno_of(lib.read_all, m / "people" / "schema.json") == \
            "EACCES"


def test_active_readme(data):
    with lib.mounted(data.home, "agr-root") as m:
        readme = lib.read_all(m / "README.txt").decode()
    state_line = [l for l in readme.splitlines() if l.startswith("State:")]
    assert state_line and state_line[0].split()[1:] == ["active"], readme
    assert "govfs mount tests" in readme and "people/" in readme


def test_expiry_cuts_open_handle(data):
    """No read that starts at or after valid_until succeeds, on a handle
    opened while the agreement was valid as well."""
    until = int(time.time()) + 4
    data.home.apply(lib.agreement("agr-short", {"people": RULES},
                                  valid_from="2025-01-01T00:00:00+00:00",
                                  valid_until=lib.rfc3339(until)))
    with lib.mounted(data.home, "agr-short") as m:
        path = m / "people" / "data.csv"
        fd = os.open(path, os.O_RDONLY)
        try:
            assert os.pread(fd, 100, 0) == data.want[:100]
            lib.wait_for(lambda: time.time() > until + 0.3, 10)
            with pytest.raises(OSError) as e:
                os.pread(fd, 100, 100)
            assert e.value.errno == errno.EACCES
        finally:
            os.close(fd)
        assert lib.errno_of(os.open, path, os.O_RDONLY) == "EACCES"
        assert lib.wait_for(lambda: "expired" in lib.read_all(
            m / "README.txt").decode().lower(), 2)
