"""
Changes seen by a live mount without a remount: a new dataset version and
a new agreement revision reach the next open, with an exact size from the
first stat that shows them; handles opened before keep their version;
re-applying an identical file changes nothing; mtime is the later of the
ingest and apply times.
"""
import errno
import os
import time

import pytest

import govfs_testlib as lib

RULES = {"visit_id": "keep", "patient_id": "mask:last3", "district": "keep",
         "visit_date": "date:month", "cost": "keep", "notes": "keep"}


def poll_size(path, want, old, timeout=2.0):
    """Stat path until its size is want; every size seen on the way must be
    old or want (never a guess).  Returns the seconds it took."""
    start = time.monotonic()
    seen = set()
    while True:
        size = os.stat(path).st_size
        seen.add(size)
        assert seen <= {old, want}, "sizes seen: %s" % seen
        if size == want:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, \
            "still %d after %.1fs, want %d" % (size, timeout, want)
        time.sleep(0.02)


def sleep_past_second():
    """Sleep until a new wall-clock second has begun, at least 1.05 s on:
    two events around this call get different whole-second times."""
    now = time.time()
    time.sleep(max(1.05, int(now) + 1 - now + 0.05))


@pytest.mark.parametrize("rows1, rows2", [(2000, 2600), (2600, 2000)])
def test_new_dataset_version(home, tmp_dir, rows1, rows2):
    v1 = lib.gen_visits(tmp_dir / "v1.csv", rows1, seed=1)
    v2 = lib.gen_visits(tmp_dir / "v2.csv", rows2, seed=2)
    old = lib.expected_data_csv(v1.read_bytes(), RULES)
    new = lib.expected_data_csv(v2.read_bytes(), RULES)
    assert len(old) != len(new)
    home.add("live", v1)
    home.apply(lib.agreement("agr-live", {"live": RULES}))
    with lib.mounted(home, "agr-live") as m:
        path = m / "live" / "data.csv"
        assert os.stat(path).st_size == len(old)
        fd = os.open(path, os.O_RDONLY)
        try:
            head = os.read(fd, 1000)
            assert head == old[:1000]
            home.add("live", v2)
            took = poll_size(path, len(new), len(old))
            assert took < 1.5, took
            assert lib.read_all(path) == new
            # The handle opened before keeps reading the old version.  (Its
            # fstat is not checked: the kernel caches attributes per inode,
            # not per handle, so it may show the new size.)
            rest = []
            while True:
                b = os.read(fd, 65536)
                if not b:
                    break
                rest.append(b)
            assert head + b"".join(rest) == old
            assert os.pread(fd, 5000, len(old) - 3000) == old[-3000:]
        finally:
            os.close(fd)
        assert lib.read_all(path) == new


def test_new_revision_and_identical_reapply(home, tmp_dir):
    src = lib.gen_visits(tmp_dir / "v.csv", 1500, seed=5)
    home.add("live", src)
    rev1 = lib.agreement("agr-rev", {"live": RULES})
    rules2 = dict(RULES, notes="redact", district="prefix:2")
    rev2 = lib.agreement("agr-rev", {"live": rules2})
    old = lib.expected_data_csv(src.read_bytes(), RULES)
    new = lib.expected_data_csv(src.read_bytes(), rules2)
    assert len(old) != len(new)
    home.apply(rev1)
    with lib.mounted(home, "agr-rev") as m:
        path = m / "live" / "data.csv"
        assert lib.read_all(path) == old
        home.apply(rev2)
        poll_size(path, len(new), len(old))
        assert lib.read_all(path) == new
        shown = home.json("agreement", "show", "agr-rev")
        assert shown["revision"] == 2
        mtime = os.stat(path).st_mtime_ns

        res = home.apply(rev2)
        assert "unchanged (revision 2)" in res.stdout + res.stderr
        again = home.json("agreement", "show", "agr-rev")
        assert again["revision"] == 2
        assert again["applied_at"] == shown["applied_at"]
        time.sleep(0.3)
        assert os.stat(path).st_mtime_ns == mtime
        assert lib.read_all(path) == new
        readme = lib.read_all(m / "README.txt").decode()
        assert "(revision 2)" in readme


def test_old_revision_handle_is_stale(home, tmp_dir):
    """A handle opened under an earlier revision whose bytes differ under
    the new one fails its next read with ESTALE; one whose bytes do not
    differ keeps reading."""
    src = lib.gen_visits(tmp_dir / "v.csv", 1500, seed=6)
    home.add("a", src)
    home.add("b", src)
    home.apply(lib.agreement("agr-stale", {"a": RULES, "b": RULES}))
    want = lib.expected_data_csv(src.read_bytes(), RULES)
    with lib.mounted(home, "agr-stale") as m:
        fa = os.open(m / "a" / "data.csv", os.O_RDONLY)
        fb = os.open(m / "b" / "data.csv", os.O_RDONLY)
        try:
            assert os.pread(fa, 100, 0) == want[:100]
            assert os.pread(fb, 100, 0) == want[:100]
            rules2 = dict(RULES, notes="redact")
            home.apply(lib.agreement("agr-stale", {"a": RULES, "b": rules2}))
            new = lib.expected_data_csv(src.read_bytes(), rules2)
            poll_size(m / "b" / "data.csv", len(new), len(want))
            assert os.pread(fa, 100, 100) == want[100:200]
            with pytest.raises(OSError) as e:
                os.pread(fb, 100, 100)
            assert e.value.errno == errno.ESTALE
        finally:
            os.close(fa)
            os.close(fb)


def test_mtime_is_later_of_ingest_and_apply(home, tmp_dir):
    v1 = lib.gen_visits(tmp_dir / "v1.csv", 300, seed=8)
    v2 = lib.gen_visits(tmp_dir / "v2.csv", 400, seed=9)
    home.add("timed", v1)
    sleep_past_second()
    home.apply(lib.agreement("agr-timed", {"timed": RULES}))
    ingested = lib.rfc3339_epoch(
        home.json("dataset", "show", "timed")["ingested_at"])
    applied = lib.rfc3339_epoch(
        home.json("agreement", "show", "agr-timed")["applied_at"])
    assert applied > ingested
    with lib.mounted(home, "agr-timed") as m:
        path = m / "timed" / "data.csv"
        assert int(os.stat(path).st_mtime) == applied

        # A version ingested after the apply: now the ingest time wins.
        sleep_past_second()
        home.add("timed", v2)
        ingested2 = lib.rfc3339_epoch(
            home.json("dataset", "show", "timed")["ingested_at"])
        assert ingested2 > applied
        poll_size(path, len(lib.expected_data_csv(v2.read_bytes(), RULES)),
                  len(lib.expected_data_csv(v1.read_bytes(), RULES)))
        assert int(os.stat(path).st_mtime) == ingested2
