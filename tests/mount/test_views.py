"""
Aggregation views end to end, through a real mount: views/<name>.csv of a
records:true dataset and of an aggregation-only (records:false) one, every
measure (count, count_distinct, sum, avg, min, max) and every generalising
rule (date:*, bucket:W, prefix:N, the object form), the dataset's rows
filter, min_group with and without an entity, NULL keys and values,
negative and leading-zero numbers, CJK keys, fields that need quoting.

Every cell is checked against govfs_testlib.expected_view, computed in
Python from the source CSV (exact Decimal and Fraction arithmetic, Python's
own sorting), sharing no code with the C engine.  Then what a mount must do
with the files: exact st_size before any read, pread at any offset, the
records:false layout (no data.csv: ENOENT), schema.json's views, uid checks,
audit records naming /<dataset>/views/<name>.csv, refusal outside the
validity window, ESTALE when a revision changes a view's bytes (and not
when it leaves them alone), recomputation at `dataset add` with the old
results removed, `apply --dry-run`, and refusals at apply naming the JSON
path.
"""
import csv
import errno
import io
import json
import os
import random
import re
import time

import pytest

import govfs_testlib as lib

SCHEMA = lib.REPO / "demo" / "visits.schema.json"
AGR = "agr-views"
DS, AGG = "health.visits", "clinic.visits"

VIEWS = [
    # SPEC's example: two keys, an entity, min_group 10
    {"name": "cost_by_district",
     "group_by": ["district", "visit_date:date:month"],
     "measures": ["count", "sum:cost", "avg:cost",
                  "count_distinct:patient_id"],
     "min_group": 10, "entity": "patient_id"},
    # the object form, bucket:W; min and max of every type
    {"name": "by_age",
     "group_by": [{"column": "age", "rule": "bucket:10"}],
     "measures": ["count", "min:cost", "max:cost", "min:visit_time",
                  "max:visit_time", "max:visit_date", "min:notes",
                  "max:district", "min:age"],
     "min_group": 2},
    # one total row
    {"name": "total", "group_by": [],
     "measures": ["count", "sum:age", "avg:age", "sum:cost",
                  "count_distinct:district", "count_distinct:cost",
                  "max:name"],
     "min_group": 2},
    # CJK prefixes, a year of a datetime as written
    {"name": "by_surname", "group_by": ["name:prefix:1",
                                        "visit_time:date:year"],
     "measures": ["count", "avg:cost", "min:phone"], "min_group": 5},
    # a decimal key: numbers by value, negatives first
    {"name": "by_cost", "group_by": ["cost"],
     "measures": ["count", "count_distinct:age"], "min_group": 2},
    # a day of a datetime as written; notes (quoted text) as a key
    {"name": "by_day_note", "group_by": ["visit_time:date:day", "notes"],
     "measures": ["count"], "min_group": 2},
]

AGG_FILTER = "age >= 18 and (district is not null or cost < 0)"
AGG_VIEWS = [
    {"name": "by_district", "group_by": ["district"],
     "measures": ["count", "sum:cost", "avg:cost", "min:age", "max:age"],
     "min_group": 3, "entity": "patient_id"},
    {"name": "by_age", "group_by": ["age"],
     "measures": ["count", "count_distinct:patient_id"]},
]

RULES = {"visit_id": "keep", "district": "keep", "age": "bucket:5",
         "cost": "keep"}


def edit_source(raw, seed):
    """gen-visits output with NULLs in every column, negative and
    leading-zero numbers, costs whose float sums go wrong, datetimes in
    other offsets and surnames that are not CJK; re-written as CSV."""
    rng = random.Random(seed)
    header, rows = lib.parse_source(raw)
    col = {name: i for i, name in enumerate(header)}
    for r in rows:
        for name in ("patient_id", "name", "district", "age", "visit_date",
                     "visit_time", "cost", "notes"):
            if rng.random() < 0.03:
                r[col[name]] = ""
        if r[col["age"]] and rng.random() < 0.05:
            r[col["age"]] = rng.choice(["-3", "-10", "-0", "07", "0", "0018"])
        if r[col["cost"]] and rng.random() < 0.1:
            r[col["cost"]] = rng.choice(["0.1", "0.2", "0.3", "-0.5",
                                         "-0.50", "1000", "-1000.01",
                                         "0012.50", "12.5"])
        if r[col["visit_time"]] and rng.random() < 0.1:
            t = r[col["visit_time"]].replace("+08:00", "Z")
            r[col["visit_time"]] = t
        if r[col["name"]] and rng.random() < 0.02:
            r[col["name"]] = rng.choice(["O'Neil", "Lin, Mei", "\"Q\""])
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue().encode("utf-8")


def agreement(views=VIEWS, agg_views=AGG_VIEWS, agg_filter=AGG_FILTER,
              rules=RULES, max_level=4, **extra):
    doc = lib.agreement(AGR, {DS: rules}, max_level=max_level, **extra)
    doc["datasets"][0]["views"] = views
    agg = {"dataset": AGG, "records": False, "views": agg_views}
    if agg_filter:
        agg["rows"] = agg_filter
    doc["datasets"].append(agg)
    return doc


class Data:
    """The module's home and sources."""


@pytest.fixture(scope="module")
def data(module_dir):
    d = Data()
    d.home = lib.Home(module_dir)
    raw = lib.gen_visits(module_dir / "gen.csv", 6000, seed=31).read_bytes()
    d.src = edit_source(raw, 5)
    path = module_dir / "visits.csv"
    path.write_bytes(d.src)
    d.home.add(DS, path, SCHEMA)
    d.home.add(AGG, path, SCHEMA)
    d.types = {c["name"]: c["type"]
               for c in json.loads(SCHEMA.read_text())["columns"]}
    d.home.apply(agreement())
    return d


def expected(data, view, row_filter=None, src=None):
    header, rows = lib.parse_source(src or data.src)
    return lib.expected_view(header, rows, data.types, view, row_filter)


def check_view(path, want):
    """The bytes at path are exactly the expected view, and st_size said
    so before the first read; returns the bytes."""
    size = os.stat(path).st_size
    got = lib.read_all(path, chunk=4093)
    want_bytes = lib.render_table(*want)
    if got != want_bytes:
        header, rows = lib.parse_source(got)
        assert header == want[0]
        for n, (g, w) in enumerate(zip(rows, want[1])):
            assert g == w, "%s row %d: got %r, want %r" % (path, n, g, w)
        assert len(rows) == len(want[1]), (len(rows), len(want[1]))
        assert got == want_bytes
    assert size == len(got)
    return got


def test_expectation_is_not_trivial(data):
    """The cases the views must get right are in the data."""
    for view in VIEWS + AGG_VIEWS:
        header, rows = expected(data, view)
        assert rows, view["name"]
    _, rows = expected(data, VIEWS[4])
    costs = [r[0] for r in rows]
    assert "" in costs and "-0.5" in costs and "12.5" in costs
    _, rows = expected(data, VIEWS[3])
    assert any(r[0] == "" for r in rows)  # a NULL key group
    assert any("\u4e00" <= r[0] <= "\u9fff" for r in rows if r[0])
    _, rows = expected(data, VIEWS[1])
    assert any(r[0].startswith("-") for r in rows)
    # suppression removes groups in the SPEC view
    header, src_rows = lib.parse_source(data.src)
    loose = dict(VIEWS[0], min_group=2)
    loose.pop("entity")
    assert len(expected(data, loose)[1]) > len(expected(data, VIEWS[0])[1])
    # some notes need quoting
    assert any(any(c in r[1] for c in ',"\n') for r in
               expected(data, VIEWS[5])[1])


def test_every_view_cell(data):
    with lib.mounted(data.home, AGR) as m:
        for view in VIEWS:
            check_view(m / DS / "views" / (view["name"] + ".csv"),
                       expected(data, view))
        for view in AGG_VIEWS:
            check_view(m / AGG / "views" / (view["name"] + ".csv"),
                       expected(data, view, AGG_FILTER))


def test_layout_and_schema_json(data):
    with lib.mounted(data.home, AGR) as m:
        assert sorted(os.listdir(m / DS)) == ["data.csv", "schema.json",
                                              "views"]
        assert sorted(os.listdir(m / AGG)) == ["schema.json", "views"]
        assert sorted(os.listdir(m / DS / "views")) == sorted(
            v["name"] + ".csv" for v in VIEWS)
        assert sorted(os.listdir(m / AGG / "views")) == sorted(
            v["name"] + ".csv" for v in AGG_VIEWS)
        # records: false: no data.csv at all
        for op in (os.stat, lambda p: os.open(p, os.O_RDONLY)):
            with pytest.raises(OSError) as e:
                op(m / AGG / "data.csv")
            assert e.value.errno == errno.ENOENT
        with pytest.raises(OSError) as e:
            os.stat(m / AGG / "views" / "nope.csv")
        assert e.value.errno == errno.ENOENT
        schema = json.loads((m / AGG / "schema.json").read_text())
        assert schema["columns"] == []
        assert [v["name"] for v in schema["views"]] == [
            v["name"] for v in AGG_VIEWS]
        want = expected(data, AGG_VIEWS[0], AGG_FILTER)[0]
        assert schema["views"][0]["columns"] == [
            {"name": want[0], "type": "string"},
            {"name": "count", "type": "int"},
            {"name": "sum_cost", "type": "decimal"},
            {"name": "avg_cost", "type": "decimal"},
            {"name": "min_age", "type": "int"},
            {"name": "max_age", "type": "int"}]
        schema = json.loads((m / DS / "schema.json").read_text())
        assert [c["name"] for c in schema["columns"]] == list(RULES)
        by_age = schema["views"][1]
        assert by_age["name"] == "by_age"
        assert [c["type"] for c in by_age["columns"]] == [
            "int", "int", "decimal", "decimal", "datetime", "datetime",
            "date", "string", "string", "int"]
        readme = (m / "README.txt").read_text()
        assert "views/by_district.csv" in readme
        assert "groups of at least 3 rows and 3 distinct patient_id" in readme


def test_pread_anywhere(data):
    rng = random.Random(4)
    with lib.mounted(data.home, AGR) as m:
        path = m / DS / "views" / "by_age.csv"
        whole = lib.read_all(path)
        fd = os.open(path, os.O_RDONLY)
        try:
            for _ in range(200):
                off = rng.randrange(0, len(whole) + 10)
                n = rng.randrange(1, 5000)
                assert os.pread(fd, n, off) == whole[off:off + n]
        finally:
            os.close(fd)


def test_other_uids_refused(data):
    doc = agreement(uids=[0, lib.NOBODY + 1])
    doc["id"] = AGR + "-uids"
    data.home.apply(doc)
    with lib.mounted(data.home, doc["id"]) as m:
        view = m / AGG / "views" / "by_age.csv"
        got = lib.probe_as(lib.NOBODY, [("stat", view), ("open", view),
                                        ("read", view),
                                        ("listdir", m / AGG / "views")])
        assert got == ["EACCES"] * 4


def test_reads_audited(data):
    with lib.mounted(data.home, AGR) as m:
        lib.read_all(m / AGG / "views" / "by_district.csv")
    recs = [r for r in data.home.audit_export("--agreement", AGR)
            if r["path"] == "/%s/views/by_district.csv" % AGG]
    # this test's open, reads and release are the last of that path
    last_open = max(i for i, r in enumerate(recs) if r["event"] == "open")
    recs = recs[last_open:]
    assert [r["event"] for r in recs][-1] == "release"
    assert recs[0]["uid"] == 0 and recs[0]["result"] == "ok"
    size = len(lib.render_table(*expected(data, AGG_VIEWS[0], AGG_FILTER)))
    assert sum(r["bytes"] for r in recs if r["event"] == "read") == size


def test_outside_validity_refused(data):
    doc = agreement(valid_from="2020-01-01T00:00:00Z",
                    valid_until="2021-01-01T00:00:00Z")
    doc["id"] = AGR + "-expired"
    data.home.apply(doc)
    with lib.mounted(data.home, doc["id"]) as m:
        view = m / AGG / "views" / "by_age.csv"
        assert os.stat(view).st_size > 0
        with pytest.raises(OSError) as e:
            os.open(view, os.O_RDONLY)
        assert e.value.errno == errno.EACCES


def wait_for_revision(m, revision):
    assert lib.wait_for(lambda: ("revision %d" % revision) in
                        (m / "README.txt").read_text(), 5)


def test_revisions_and_estale(data, tmp_dir):
    home = lib.Home(tmp_dir)
    path = tmp_dir / "visits.csv"
    path.write_bytes(data.src)
    home.add(DS, path, SCHEMA)
    home.add(AGG, path, SCHEMA)
    home.apply(agreement())
    with lib.mounted(home, AGR) as m:
        kept = m / AGG / "views" / "by_district.csv"
        changed = m / AGG / "views" / "by_age.csv"
        fk, fc = os.open(kept, os.O_RDONLY), os.open(changed, os.O_RDONLY)
        try:
            assert os.read(fk, 100) and os.read(fc, 100)
            # revision 2: data.csv's rules change, the views do not
            home.apply(agreement(rules=dict(RULES, age="keep")))
            wait_for_revision(m, 2)
            assert os.read(fk, 100) and os.read(fc, 100)
            # revision 3: by_age's groups need 50 rows now
            views = [AGG_VIEWS[0], dict(AGG_VIEWS[1], min_group=50)]
            assert expected(data, views[1], AGG_FILTER) != expected(
                data, AGG_VIEWS[1], AGG_FILTER)
            home.apply(agreement(agg_views=views))
            wait_for_revision(m, 3)
            assert os.read(fk, 100)
            with pytest.raises(OSError) as e:
                os.read(fc, 100)
            assert e.value.errno == errno.ESTALE
        finally:
            os.close(fk)
            os.close(fc)
        # a new open reads the new bytes
        check_view(changed, expected(data, views[1], AGG_FILTER))
        # only the current results are kept
        stored = len(os.listdir(home.dir / "store"))
        assert stored == 2 + len(VIEWS) + len(AGG_VIEWS)


def test_dataset_add_recomputes(data, tmp_dir):
    home = lib.Home(tmp_dir)
    path = tmp_dir / "visits.csv"
    path.write_bytes(data.src)
    home.add(DS, path, SCHEMA)
    home.add(AGG, path, SCHEMA)
    home.apply(agreement())
    header, rows = lib.parse_source(data.src)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows[::3])
    src2 = out.getvalue().encode("utf-8")
    path.write_bytes(src2)
    res = home.add(AGG, path, SCHEMA)
    assert "views/by_district.csv:" in res.stdout
    assert len(os.listdir(home.dir / "store")) == 3 + len(VIEWS) + len(
        AGG_VIEWS)
    with lib.mounted(home, AGR) as m:
        for view in AGG_VIEWS:
            check_view(m / AGG / "views" / (view["name"] + ".csv"),
                       expected(data, view, AGG_FILTER, src2))


def test_dry_run(data):
    before = sorted(os.listdir(data.home.dir / "store"))
    doc = agreement(agg_views=[dict(AGG_VIEWS[0], min_group=2)])
    res = data.home.ctl("agreement", "apply", "--dry-run",
                        data.home.write_json(doc, "dry"))
    assert res.returncode == 0, res.stderr
    want = expected(data, doc["datasets"][1]["views"][0], AGG_FILTER)
    size = len(lib.render_table(*want))
    assert ("views/by_district.csv: %d groups shown, %d bytes"
            % (len(want[1]), size)) in res.stdout
    assert sorted(os.listdir(data.home.dir / "store")) == before
    assert os.listdir(data.home.dir / "tmp") == []


@pytest.mark.parametrize("where, value, why", [
    ("measures", ["sum:district"],
     "$.datasets[1].views[0].measures[0]: sum needs an int or decimal "
     "column, 'district' is string"),
    ("group_by", ["nmae"],
     "$.datasets[1].views[0].group_by[0]: no such column 'nmae' in dataset "
     "'clinic.visits'"),
    ("group_by", ["visit_date:bucket:5"],
     "$.datasets[1].views[0].group_by[0]: rule 'bucket:5' does not fit "
     "type date"),
    ("min_group", 1,
     "$.datasets[1].views[0].min_group: expected an integer of at least 2"),
    ("measures", ["count", "count"],
     "$.datasets[1].views[0].measures[1]: duplicate header name 'count'"),
])
def test_refused_at_apply(data, where, value, why):
    view = dict(AGG_VIEWS[0])
    view[where] = value
    doc = agreement(agg_views=[view])
    doc["id"] = AGR + "-bad"
    res = data.home.ctl("agreement", "apply", data.home.write_json(doc, "bad"))
    lib.assert_one_line_error(res, 1, "govfsctl", why)


def test_above_max_level_only_counted(data):
    doc = agreement(max_level=3, rules={"district": "keep"}, views=[],
                    agg_views=[{"name": "v", "group_by": ["district"],
                                "measures": ["max:patient_id"]}])
    doc["id"] = AGR + "-level"
    res = data.home.ctl("agreement", "apply", data.home.write_json(doc, "lv"))
    lib.assert_one_line_error(
        res, 1, "govfsctl",
        "$.datasets[1].views[0].measures[0]: column 'patient_id' is level 4, "
        "above max_level 3: only count_distinct may use it")
    doc["datasets"][1]["views"][0]["measures"] = [
        "count_distinct:patient_id"]
    data.home.apply(doc)
