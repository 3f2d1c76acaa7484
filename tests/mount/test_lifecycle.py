"""
The daemon's lifecycle: mounting in the background and the foreground,
SIGTERM, kill -9 (auto_unmount), refusing unknown agreements and a second
mount on the same mount point; and a corrupt store block, which must give
EIO and never wrong bytes.
"""
import errno
import json
import os
import random
import signal
import subprocess

import pytest

import govfs_testlib as lib

RULES = {"visit_id": "keep", "name": "mask:first1", "district": "keep",
         "cost": "keep", "notes": "keep"}


class Data:
    pass


@pytest.fixture(scope="module")
def data(module_dir):
    d = Data()
    d.home = home = lib.Home(module_dir)
    src = lib.gen_visits(module_dir / "v.csv", 3000, seed=12)
    d.want = lib.expected_data_csv(src.read_bytes(), RULES)
    home.add("visits", src)
    home.apply(lib.agreement("agr-life", {"visits": RULES}))
    return d


def govfs_cmd(home, agr_id, mp, *extra):
    return [lib.GOVFS, "--home", home.dir, "--key-file", home.key,
            "--agreement", agr_id, *extra, mp]


def test_background_mount(data):
    """Without -f, govfs returns once the mount is live."""
    mp = lib.new_mountpoint(data.home.base)
    res = lib.run(govfs_cmd(data.home, "agr-life", mp), text=True, timeout=30)
    lib.STARTED.append((None, mp))
    try:
        assert res.returncode == 0, res.stderr
        assert lib.mount_fstype(mp) == "fuse.govfs"
        assert lib.read_all(mp / "visits" / "data.csv") == data.want
    finally:
        assert lib.force_unmount(mp)


def thread_nices(pid):
    """The nice value of each thread of pid (field 19 of its stat)."""
    nices = []
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            nices.append(int(f.read().rsplit(")", 1)[1].split()[16]))
    return nices


def test_cpu_nice(data):
    """-o cpu_nice=N: a background daemon's session (its autogroup, which
    the kernel weighs as one) and every thread serve at nice N (real-time
    scheduling, which the control thread takes as root, leaves nice as it
    is); a value out of 0..19 is a usage error."""
    mp = lib.new_mountpoint(data.home.base)
    res = lib.run(govfs_cmd(data.home, "agr-life", mp, "-o", "cpu_nice=19"),
                  text=True, timeout=30)
    lib.STARTED.append((None, mp))
    try:
        assert res.returncode == 0, res.stderr
        assert lib.read_all(mp / "visits" / "data.csv") == data.want
        pid = [m["pid"] for m in data.home.json("mounts")
               if m["mountpoint"] == os.path.realpath(mp)][0]
        if os.path.exists("/proc/%d/autogroup" % pid):
            with open("/proc/%d/autogroup" % pid) as f:
                assert f.read().split()[-1] == "19"
        assert set(thread_nices(pid)) == {19}
    finally:
        assert lib.force_unmount(mp)
    for bad in ("cpu_nice=20", "cpu_nice=-1", "cpu_nice=", "cpu_nice=5x"):
        res = lib.run(govfs_cmd(data.home, "agr-life", mp, "-o", bad),
                      text=True, timeout=30)
        lib.assert_one_line_error(res, 2, "govfs", "-o " + bad, "0 to 19")
        assert not lib.is_mounted(mp)
    # An option only FUSE reads, and does not know: libfuse says which.
    res = lib.run(govfs_cmd(data.home, "agr-life", mp, "-o", "nosuchopt"),
                  text=True, timeout=30)
    lib.assert_one_line_error(res, 2, "fuse", "nosuchopt")
    assert not lib.is_mounted(mp)


def test_sigterm_unmounts(data):
    mp = lib.new_mountpoint(data.home.base)
    m = lib.start_govfs(data.home, "agr-life", mp)
    try:
        assert lib.read_all(mp / "visits" / "data.csv") == data.want
        m.proc.send_signal(signal.SIGTERM)
        m.proc.wait(timeout=10)
        assert not lib.is_mounted(mp)
    finally:
        lib.stop_govfs(m)


def test_sigterm_exit_code(data):
    m = lib.start_govfs(data.home, "agr-life",
                        lib.new_mountpoint(data.home.base))
    try:
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(timeout=10) == 0, m.stderr()
    finally:
        lib.stop_govfs(m)


def test_kill9_auto_unmount_and_remount(data):
    mp = lib.new_mountpoint(data.home.base)
    m = lib.start_govfs(data.home, "agr-life", mp)
    try:
        assert lib.read_all(mp / "README.txt")
        m.proc.send_signal(signal.SIGKILL)
        assert m.proc.wait(timeout=10) == -signal.SIGKILL
        gone = lib.wait_for(lambda: not lib.is_mounted(mp), 5, step=0.05)
        assert gone, "mount still there 5 s after kill -9"
    finally:
        lib.stop_govfs(m)
    with lib.mounted(data.home, "agr-life", mp) as m2:
        assert lib.read_all(m2 / "visits" / "data.csv") == data.want


def test_unknown_agreement(data):
    mp = lib.new_mountpoint(data.home.base)
    for extra in ([], ["-f"]):
        res = lib.run(govfs_cmd(data.home, "agr-nope", mp, *extra),
                      text=True, timeout=30)
        lib.assert_one_line_error(res, 1, "govfs", "agr-nope")
        assert not lib.is_mounted(mp)


def test_second_mount_refused(data):
    with lib.mounted(data.home, "agr-life") as m:
        for extra in ([], ["-f"]):
            res = lib.run(govfs_cmd(data.home, "agr-life", m.path, *extra),
                          text=True, timeout=30)
            err = lib.assert_one_line_error(res, 1, "govfs", str(m.path))
            assert "already" in err and "mount" in err, err
        assert lib.read_all(m / "visits" / "data.csv") == data.want
        assert m.proc.poll() is None


def test_bad_mountpoint(data, tmp_dir):
    res = lib.run(govfs_cmd(data.home, "agr-life", tmp_dir / "absent"),
                  text=True, timeout=30)
    lib.assert_one_line_error(res, 1, "govfs", "absent")
    (tmp_dir / "file").write_text("")
    res = lib.run(govfs_cmd(data.home, "agr-life", tmp_dir / "file"),
                  text=True, timeout=30)
    lib.assert_one_line_error(res, 1, "govfs", "file")


def flip_bytes(path, at, n):
    with open(path, "r+b") as f:
        f.seek(at)
        data = f.read(n)
        f.seek(at)
        f.write(bytes(b ^ 0xFF for b in data))


def test_damaged_store_file_leaves_the_rest_served(home, tmp_dir):
    """SPEC: a corrupt store gives EIO.  A store file whose header is
    damaged fails only its own file: the mount starts, that data.csv (or
    view) gives EIO with a record, README.txt says why, and the other
    datasets and views are served."""
    store = home.dir / "store"
    before = set(os.listdir(store))
    home.add("visits", lib.gen_visits(tmp_dir / "v.csv", 2000, seed=3))
    (visits_file,) = set(os.listdir(store)) - before
    home.add("penguins", lib.REPO / "demo" / "penguins.csv",
             lib.REPO / "demo" / "penguins.schema.json")
    before = set(os.listdir(store))
    doc = lib.agreement("agr-damaged", {"visits": RULES,
                                        "penguins": {"species": "keep"}})
    doc["datasets"][1]["views"] = [{"name": "by_island",
                                    "group_by": ["island"],
                                    "measures": ["count"], "min_group": 2}]
    home.apply(doc)
    (view_file,) = set(os.listdir(store)) - before
    flip_bytes(store / visits_file, 0, 8)
    flip_bytes(store / view_file, 0, 8)
    with lib.mounted(home, "agr-damaged") as m:
        readme = lib.read_all(m / "README.txt").decode()
        assert lib.errno_of(lib.read_all, m / "visits" / "data.csv") == "EIO"
        assert lib.errno_of(lib.read_all,
                            m / "penguins" / "views" / "by_island.csv") == \
            "EIO"
        penguins = lib.read_all(m / "penguins" / "data.csv").decode()
        assert penguins.startswith("species\n"), penguins[:40]
        # What it would show is still listed.
        schema = json.loads(lib.read_all(m / "visits" / "schema.json"))
        assert [c["name"] for c in schema["columns"]] == list(RULES)
    assert "data.csv     unavailable: its store file is damaged" in readme, \
        readme
    assert "views/by_island.csv  unavailable: its store file is damaged" in \
        readme, readme
    refused = {(r["event"], r["path"]) for r in
               home.audit_export("--agreement", "agr-damaged")
               if r["result"] == "EIO"}
    assert ("open", "/visits/data.csv") in refused, refused


def test_corrupt_store_block(home, tmp_dir):
    src = lib.gen_visits(tmp_dir / "v.csv", 20000, seed=13)
    want = lib.expected_data_csv(src.read_bytes(), RULES)
    store = home.dir / "store"
    before = set(os.listdir(store))
    home.add("visits", src)
    added = sorted(set(os.listdir(store)) - before)
    assert len(added) == 1, added
    home.apply(lib.agreement("agr-corrupt", {"visits": RULES}))

    block_file = store / added[0]
    with open(block_file, "r+b") as f:
        f.seek(os.path.getsize(block_file) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x5A]))

    with lib.mounted(home, "agr-corrupt") as m:
        path = m / "visits" / "data.csv"
        assert os.stat(path).st_size == len(want)

        res = subprocess.run(["cat", path], capture_output=True, timeout=60)
        assert res.returncode != 0
        assert b"Input/output error" in res.stderr
        assert want.startswith(res.stdout)

        got, err = lib.read_until_error(path)
        assert err == errno.EIO
        assert want.startswith(got) and len(got) < len(want)

        # Anywhere in the file: a read returns the right bytes or EIO.
        fd = os.open(path, os.O_RDONLY)
        eio = 0
        try:
            rng = random.Random(5)
            for _ in range(200):
                off = rng.randrange(0, len(want))
                n = rng.randrange(1, 200000)
                try:
                    assert os.pread(fd, n, off) == want[off:off + n]
                except OSError as e:
                    assert e.errno == errno.EIO
                    eio += 1
        finally:
            os.close(fd)
        assert eio > 0
        # The start of the file, far from the damage, still reads.
        fd = os.open(path, os.O_RDONLY)
        try:
            assert os.pread(fd, 100, 0) == want[:100]
        finally:
            os.close(fd)
