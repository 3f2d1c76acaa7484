"""
Sealed size indexes, as a mount meets them.

The catalog keeps each size index (of a data.csv, or of a view's CSV) only
sealed, bound to its agreement, revision, dataset, version and file.  One
that does not open, because it was altered or moved to another row of the
catalog, makes that file serve nothing: it opens with EIO, which the audit
log records, its size is 0, README.txt says why, and the rest of the mount
is served.  An identical `agreement apply` computes them again.

A home whose size indexes an older govfs kept in clear is not served from
them: the daemon refuses to mount it, the first govfsctl change drops them,
and an identical apply computes them again, sealed.
"""
import os
import sqlite3

import govfs_testlib as lib

RULES = {"visit_id": "keep", "district": "keep", "cost": "keep"}
PENGUIN_RULES = {"species": "keep", "island": "keep"}
BY_DISTRICT = {"name": "by_district", "group_by": ["district"],
               "measures": ["count"]}
UNAVAILABLE = "unavailable: its size index does not open"


def catalog(home):
    """A writable connection to the home's catalog, as someone who can
    write catalog.db (root) could open it."""
    return sqlite3.connect(str(home.dir / "catalog.db"))


def two_datasets(home, tmp_dir):
    src = lib.gen_visits(tmp_dir / "v.csv", 3000, seed=31)
    home.add("visits", src)
    home.add("penguins", lib.REPO / "demo" / "penguins.csv",
             lib.REPO / "demo" / "penguins.schema.json")
    doc = lib.agreement("agr-sizes", {"visits": RULES,
                                      "penguins": PENGUIN_RULES})
    doc["datasets"][0]["views"] = [BY_DISTRICT]
    home.apply(doc)
    return doc, lib.expected_data_csv(src.read_bytes(), RULES)


def swap_and_alter(home):
    """Swap the data.csv size indexes of the two datasets, and flip one
    byte of the view's."""
    with catalog(home) as db:
        sealed = dict(db.execute(
            "SELECT dataset, sealed FROM size_indexes"
            " WHERE agreement = 'agr-sizes'"))
        assert sorted(sealed) == ["penguins", "visits"]
        for ds, other in (("visits", "penguins"), ("penguins", "visits")):
            db.execute("UPDATE size_indexes SET sealed = ?"
                       " WHERE agreement = 'agr-sizes' AND dataset = ?",
                       (sealed[other], ds))
        (view,) = db.execute("SELECT sealed_sizes FROM view_results"
                             " WHERE view = 'by_district'").fetchone()
        view = bytearray(view)
        view[len(view) // 2] ^= 0x01
        db.execute("UPDATE view_results SET sealed_sizes = ?"
                   " WHERE view = 'by_district'", (bytes(view),))
    db.close()


def test_tampered_size_index_serves_nothing(home, tmp_dir):
    doc, want = two_datasets(home, tmp_dir)
    with lib.mounted(home, "agr-sizes") as m:
        schema = (m / "visits" / "schema.json").read_bytes()
    swap_and_alter(home)

    with lib.mounted(home, "agr-sizes") as m:
        files = [m / "visits" / "data.csv", m / "penguins" / "data.csv",
                 m / "visits" / "views" / "by_district.csv"]
        for path in files:
            assert os.stat(path).st_size == 0, path
            assert lib.errno_of(os.open, path, os.O_RDONLY) == "EIO", path
        # The rest is served: schema.json, README.txt saying why.
        assert (m / "visits" / "schema.json").read_bytes() == schema
        readme = (m / "README.txt").read_text()
        assert readme.count(UNAVAILABLE) == 3, readme
        assert "visits/data.csv: its size index does not open" in m.stderr()
    refused = [r for r in home.audit_export() if r["event"] == "open"
               and r["result"] == "EIO"]
    assert sorted(r["path"] for r in refused) == [
        "/penguins/data.csv", "/visits/data.csv",
        "/visits/views/by_district.csv"], refused

    # The same file applied again computes them again, as revision 2.
    res = home.apply(doc)
    assert "do not open" in res.stdout, res.stdout
    assert "revision 2 applied" in res.stdout, res.stdout
    with lib.mounted(home, "agr-sizes") as m:
        assert lib.read_all(m / "visits" / "data.csv") == want
        assert UNAVAILABLE not in (m / "README.txt").read_text()
    res = home.apply(doc)
    assert "unchanged (revision 2)" in res.stdout, res.stdout


def make_older_home(home):
    """Put the catalog back in the shape an older govfs left: size
    indexes in clear, and view results with theirs."""
    with catalog(home) as db:
        db.executescript("""
            DROP TABLE size_indexes;
            CREATE TABLE size_indexes(
             agreement TEXT NOT NULL, revision INTEGER NOT NULL,
             dataset TEXT NOT NULL, version INTEGER NOT NULL,
             rows INTEGER NOT NULL,
             header_bytes INTEGER NOT NULL, total_bytes INTEGER NOT NULL,
             block_bytes BLOB NOT NULL,
             PRIMARY KEY(agreement, revision, dataset, version));
            INSERT INTO size_indexes
             SELECT a.id, a.revision, v.dataset, v.version, 1, 2, 3, x'00'
             FROM agreements a, dataset_versions v;
            ALTER TABLE view_results ADD COLUMN block_bytes BLOB;
        """)
    db.close()


def test_older_home_with_clear_sizes(home, tmp_dir):
    doc, want = two_datasets(home, tmp_dir)
    make_older_home(home)

    res = lib.run([lib.GOVFS, "--home", home.dir, "--key-file", home.key,
                   "--agreement", "agr-sizes", "-f",
                   lib.new_mountpoint(tmp_dir)], text=True, timeout=30)
    lib.assert_one_line_error(res, 1, "govfs", "no size index",
                              "re-apply the agreement")
    res = home.apply(doc)
    assert "do not open" in res.stdout, res.stdout
    with catalog(home) as db:
        cols = [c[1] for c in db.execute("PRAGMA table_info(size_indexes)")]
        assert cols == ["agreement", "revision", "dataset", "version",
                        "sealed"], cols
    db.close()
    with lib.mounted(home, "agr-sizes") as m:
        assert lib.read_all(m / "visits" / "data.csv") == want
        assert lib.read_all(m / "visits" / "views" / "by_district.csv")
