"""
`govfsctl dataset drop ID` and what a copy of the home gives away.

Drop is refused, naming them, while an agreement that is not revoked names
the dataset; otherwise every version goes, its wrapped data keys with it
(from catalog.db and its log: crypto-shredding), then its store files, with
a receipt and a dataset.drop audit record.  A store file left behind by a
crash between the two is removed by the next change.

A raw copy of the home, without the key file, is grepped for values the
datasets hold: none may be found in any file, and no file may hold so much
as a zstd frame (what is only compressed is not protected).  Its catalog
holds size indexes only sealed: no figure of them (rows shown, bytes) is
in clear.
"""
import os
import shutil
import sqlite3
import stat

import pytest

import govfs_testlib as lib

ALL_VISITS = {c: "keep" for c in (
    "visit_id", "patient_id", "name", "phone", "district", "age",
    "visit_date", "visit_time", "cost", "notes")}
PENGUIN_RULES = {"species": "keep", "island": "keep"}
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Data:
    pass


def store_files(home):
    return set(os.listdir(home.dir / "store"))


def wrapped_keys(home, dataset):
    """The wrapped data keys of dataset's versions, read from catalog.db
    itself (immutable: this reader creates no -shm or -wal of its own)."""
    uri = "file:%s?immutable=1" % (home.dir / "catalog.db")
    with sqlite3.connect(uri, uri=True) as db:
        return [row[0] for row in db.execute(
            "SELECT wrapped_key FROM dataset_versions WHERE dataset = ?",
            (dataset,))]


def files_of(directory):
    for root, _, names in os.walk(directory):
        for name in names:
            yield os.path.join(root, name)


def holders(directory, needles):
    """{needle: [files holding it]} over every file under directory."""
    found = {}
    for path in files_of(directory):
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        for needle in needles:
            if needle in data:
                found.setdefault(needle, []).append(path)
    return found


@pytest.fixture
def data(tmp_dir):
    d = Data()
    d.home = home = lib.Home(tmp_dir)
    d.src = lib.gen_visits(tmp_dir / "v.csv", 2000, seed=21)
    home.add("visits", d.src)
    d.src2 = lib.gen_visits(tmp_dir / "v2.csv", 500, seed=22)
    home.add("visits", d.src2)
    home.add("penguins", lib.REPO / "demo" / "penguins.csv",
             lib.REPO / "demo" / "penguins.schema.json")
    home.apply(lib.agreement("agr-visits", {"visits": {"district": "keep"}}))
    home.apply(lib.agreement("agr-both", {"visits": {"age": "keep"},
                                          "penguins": PENGUIN_RULES}))
    home.apply(lib.agreement("agr-penguins", {"penguins": PENGUIN_RULES}))
    return d


def test_refused_while_named(data):
    home = data.home
    before = (home.datasets(), store_files(home))
    res = home.ctl("dataset", "drop", "visits")
    err = lib.assert_one_line_error(res, 1, "govfsctl", "visits",
                                    "'agr-visits'", "'agr-both'")
    assert "agr-penguins" not in err
    assert res.stdout == ""
    # A suspended agreement may be resumed: it still holds the dataset.
    home.ok("agreement", "suspend", "agr-visits", "--reason", "audit")
    home.ok("agreement", "revoke", "agr-both", "--reason", "ended")
    res = home.ctl("dataset", "drop", "visits")
    err = lib.assert_one_line_error(res, 1, "govfsctl", "'agr-visits'")
    assert "agr-both" not in err
    assert (home.datasets(), store_files(home)) == before


def test_drop_after_revoke(data):
    home = data.home
    shown = home.json("dataset", "show", "visits")
    stored = sum(v["stored_bytes"] for v in shown["versions"])
    keys = wrapped_keys(home, "visits")
    assert len(keys) == 2
    files_before = store_files(home)
    for agr in ("agr-visits", "agr-both"):
        home.ok("agreement", "revoke", agr, "--reason", "project ended")

    with lib.mounted(home, "agr-penguins") as m:
        want = lib.read_all(m / "penguins" / "data.csv")
        res = home.ok("dataset", "drop", "visits")
        # Another dataset's mount reads on, unchanged.
        assert lib.read_all(m / "penguins" / "data.csv") == want

    out = res.stdout
    assert "dataset visits dropped: 2 versions" in out, out
    assert "2 data keys crypto-shredded" in out, out
    assert res.stderr == ""
    gone = files_before - store_files(home)
    assert len(gone) == 2 and store_files(home) == files_before - gone
    assert [d["id"] for d in home.datasets()] == ["penguins"]
    lib.assert_one_line_error(home.ctl("dataset", "show", "visits"), 1,
                              "govfsctl", "no such dataset 'visits'")
    # No copy of the wrapped keys is left in the catalog or its log.
    found = holders(home.dir, keys)
    assert not found, found
    rec = [r for r in home.audit_export() if r["event"] == "dataset.drop"]
    assert len(rec) == 1
    assert rec[0]["result"] == "ok"
    assert rec[0]["reason"] == \
        "dataset visits: 2 versions, %d bytes deleted" % stored
    home.ok("audit", "verify")
    # The id can be used again, from version 1.
    home.add("visits", data.src)
    assert home.json("dataset", "show", "visits")["version"] == 1


def test_drop_unknown_or_invalid(data):
    res = data.home.ctl("dataset", "drop", "nope")
    lib.assert_one_line_error(res, 1, "govfsctl", "no such dataset 'nope'")
    res = data.home.ctl("dataset", "drop", "../visits")
    lib.assert_one_line_error(res, 1, "govfsctl", "dataset id '../visits'")
    res = data.home.ctl("dataset", "drop")
    assert res.returncode == 2


def test_crash_between_commit_and_unlink(data, tmp_dir):
    """A store file whose version is gone from the catalog (as a crash
    after the commit leaves it) is removed by the next change."""
    home = data.home
    home.ok("agreement", "revoke", "agr-penguins", "--reason", "x")
    home.ok("agreement", "revoke", "agr-both", "--reason", "x")
    before = store_files(home)
    saved = tmp_dir / "saved"
    saved.mkdir()
    for name in before:
        shutil.copy2(home.dir / "store" / name, saved / name)
    home.ok("dataset", "drop", "penguins")
    (left,) = before - store_files(home)
    shutil.copy2(saved / left, home.dir / "store" / left)
    res = home.ok("dataset", "grade", "visits", "age", "3")
    assert "removed 1 leftover file" in res.stderr, res.stderr
    assert left not in store_files(home)


def sockets(directory, names):
    """For copytree: the daemons' control sockets, which hold no data and
    cannot be copied."""
    return [n for n in names
            if stat.S_ISSOCK(os.lstat(os.path.join(directory, n)).st_mode)]


def sample_values(src, rows=40):
    """Distinctive values of the source, each as UTF-8 bytes: ids, phone
    numbers, names and free text of the first rows."""
    header, body = lib.parse_source(src.read_bytes())
    wanted = ("patient_id", "phone", "name", "notes")
    cols = [header.index(c) for c in wanted]
    values = set()
    for row in body[:rows]:
        for c in cols:
            if len(row[c].encode()) >= 6:
                values.add(row[c].encode())
    return sorted(values)


def assert_sizes_sealed(catalog_db, figures):
    """The copy's catalog keeps size indexes only as sealed blobs, none of
    which holds one of figures as it would in clear (64-bit
    little-endian)."""
    with sqlite3.connect(str(catalog_db)) as db:
        cols = [c[1] for c in db.execute("PRAGMA table_info(size_indexes)")]
        blobs = [r[0] for r in db.execute("SELECT sealed FROM size_indexes")]
    db.close()
    assert cols == ["agreement", "revision", "dataset", "version", "sealed"]
    assert blobs
    for blob in blobs:
        for n in figures:
            assert n.to_bytes(8, "little") not in blob, (n, blob)


def test_raw_copy_reveals_nothing(data, tmp_dir):
    """Everything under the home, copied as it lies after ingests, applies,
    a drop, a mount and its reads: no ingested value, no zstd frame."""
    home = data.home
    home.ok("agreement", "revoke", "agr-visits", "--reason", "x")
    home.apply(lib.agreement("agr-all", {"visits": ALL_VISITS},
                             max_level=4))
    with lib.mounted(home, "agr-all") as m:
        served = lib.read_all(m / "visits" / "data.csv")
        copy = tmp_dir / "copy"
        shutil.copytree(home.dir, copy, symlinks=True, ignore=sockets)
    # Version 1 is only in its store file; version 2 is also served.
    old, new = sample_values(data.src), sample_values(data.src2)
    assert len(old) >= 60 and len(new) >= 60
    # The values are really there to be found: the mount serves them.
    assert sum(v in served for v in new) >= 50
    files = list(files_of(copy))
    assert any("store" in f for f in files)
    assert any(f.endswith("audit.db") for f in files)
    found = holders(copy, old + new + [ZSTD_MAGIC])
    assert not found, "raw values or plain zstd in the home: %r" % found
    # data.csv's size, its header's and the rows it shows (all 500 of
    # version 2) are not in the copy's size indexes.
    assert_sizes_sealed(copy / "catalog.db",
                        [len(served), served.index(b"\n") + 1, 500])
