"""
Refusals of govfsctl and govfs: exit code 1 (2 for bad usage), exactly one
stderr line naming the file and the place (line, column, JSON path), and
the catalog unchanged afterwards.
"""

import json

import pytest

import govfs_testlib as lib

VISITS_SCHEMA = {"columns": [
    {"name": "visit_id", "type": "int", "level": 1},
    {"name": "patient_id", "type": "string", "level": 4},
    {"name": "name", "type": "string", "level": 4},
    {"name": "phone", "type": "string", "level": 4},
    {"name": "district", "type": "string", "level": 2},
    {"name": "age", "type": "int", "level": 2},
    {"name": "visit_date", "type": "date", "level": 2},
    {"name": "visit_time", "type": "datetime", "level": 3},
    {"name": "cost", "type": "decimal", "level": 2},
    {"name": "notes", "type": "string", "level": 3},
]}


class Data:
    pass


@pytest.fixture(scope="module")
def data(module_dir):
    d = Data()
    d.dir = module_dir
    d.home = home = lib.Home(module_dir)
    home.add("penguins", lib.REPO / "demo" / "penguins.csv",
             lib.REPO / "demo" / "penguins.schema.json")
    d.schema = home.write_json(VISITS_SCHEMA, "visits.schema")
    home.add("visits", lib.gen_visits(module_dir / "v.csv", 200), d.schema)
    home.apply(lib.agreement("agr-ok", {"penguins": {"species": "keep"}},
                             max_level=1))
    return d


@pytest.fixture
def unchanged(data):
    """The catalog as listed before the test; checked unchanged after."""
    before = (data.home.datasets(), data.home.agreements())
    yield
    assert (data.home.datasets(), data.home.agreements()) == before


@pytest.mark.parametrize("kind, schema, place", [
    ("ragged", False, []),
    ("utf8", False, []),
    ("quote", False, []),
    ("date", True, ["visit_date"]),
])
def test_bad_csv(data, unchanged, kind, schema, place):
    path = data.dir / ("bad-%s.csv" % kind)
    line = lib.gen_bad(path, kind)
    args = ["dataset", "add", "visits", "--file", path]
    if schema:
        args += ["--schema", data.schema]
    res = data.home.ctl(*args)
    lib.assert_one_line_error(res, 1, "govfsctl", path.name,
                              "line %d" % line, *place)
    assert res.stdout == ""


@pytest.mark.parametrize("content, line, needle", [
    pytest.param(b"a,b\n1,2\n3\n", 3, "", id="ragged"),
    pytest.param(b"a,b\n1,2\r\n3,\"x\x00\"\n", 3, "", id="nul"),
    pytest.param(b"", None, "empty", id="empty"),
    pytest.param(b"a,,b\n1,2,3\n", 1, "", id="empty-name"),
    pytest.param(b"a,b,a\n1,2,3\n", 1, "a", id="duplicate-name"),
    pytest.param(b"\xef\xbb\xbfx,y\r\n1,2\r\n3,\"unterminated\r\n4,5\r\n",
                 3, "", id="bom-crlf-quote"),
    pytest.param(b"x,y\n1,\"two\nlines\"\n\xff,2\n", 4, "",
                 id="utf8-after-multiline"),
    pytest.param(b"n\n" + b"1\n" * 5 + b"\"" + b"x" * (1 << 20) + b"y\"\n", 7,
                 "", id="field-over-1MiB"),
])
def test_bad_csv_crafted(data, unchanged, content, line, needle):
    """Physical line numbers count the lines inside quoted fields."""
    path = data.dir / "crafted.csv"
    path.write_bytes(content)
    res = data.home.ctl("dataset", "add", "crafted", "--file", path)
    needles = ["crafted.csv", needle]
    if line is not None:
        needles.append("line %d" % line)
    lib.assert_one_line_error(res, 1, "govfsctl", *needles)


@pytest.mark.parametrize("change, path", [
    (lambda a: a["datasets"][0].update(dataset="nope"),
     "$.datasets[0].dataset"),
    (lambda a: a["datasets"][0]["columns"].update(nmae="keep"),
     "$.datasets[0].columns.nmae"),
    (lambda a: a["datasets"][0]["columns"].update(species="shuffle"),
     "$.datasets[0].columns.species"),
    (lambda a: a.update(colour="red"), "$.colour"),
    (lambda a: a["datasets"][0].update(colour="red"),
     "$.datasets[0].colour"),
    (lambda a: a.update(valid_from="2025-01-01T00:00:00"), "$.valid_from"),
    (lambda a: a.update(id="Bad Id"), "$.id"),
    (lambda a: a["datasets"][0]["columns"].update(species="date:year"),
     "$.datasets[0].columns.species"),
    (lambda a: a["datasets"][0]["columns"].update(sex="keep"),
     "$.datasets[0].columns.sex"),
])
def test_bad_agreement(data, unchanged, change, path):
    doc = lib.agreement("agr-bad", {"penguins": {"species": "keep",
                                                 "island": "keep"}},
                        max_level=1)
    change(doc)
    f = data.home.write_json(doc, "agr-bad")
    for extra in ([], ["--dry-run"]):
        res = data.home.ctl("agreement", "apply", f, *extra)
        lib.assert_one_line_error(res, 1, "govfsctl", f.name, path)


def test_level_guard(data, unchanged):
    """A column graded above max_level may not be kept (patient_id is 4)."""
    doc = lib.agreement("agr-level", {"visits": {"patient_id": "keep"}},
                        max_level=3)
    f = data.home.write_json(doc, "agr-level")
    res = data.home.ctl("agreement", "apply", f)
    lib.assert_one_line_error(res, 1, "govfsctl", f.name,
                              "$.datasets[0].columns.patient_id")


def test_bad_json(data, unchanged):
    f = data.dir / "broken.json"
    f.write_text('{"id": "agr-x",\n "uids": [0,]\n}')
    res = data.home.ctl("agreement", "apply", f)
    lib.assert_one_line_error(res, 1, "govfsctl", "broken.json", "line 2")


def test_missing_files(data, unchanged):
    res = data.home.ctl("dataset", "add", "x", "--file", data.dir / "no.csv")
    lib.assert_one_line_error(res, 1, "govfsctl", "no.csv")
    res = data.home.ctl("agreement", "apply", data.dir / "no.json")
    lib.assert_one_line_error(res, 1, "govfsctl", "no.json")
    res = data.home.ctl("dataset", "show", "nope")
    lib.assert_one_line_error(res, 1, "govfsctl", "nope")


def test_usage_without_verb(data):
    res = data.home.ctl()
    lib.assert_one_line_error(res, 2, "govfsctl", "a verb is needed",
                              "--help")
    assert res.stdout == ""
    res = lib.run([lib.GOVFSCTL, "--help"], text=True)
    assert res.returncode == 0 and res.stdout.startswith("usage: ")


@pytest.mark.parametrize("args", [
    ["frobnicate"],
    ["dataset"],
    ["dataset", "add"],
    ["dataset", "add", "x"],
    ["dataset", "add", "x", "--file", "f.csv", "--bogus"],
    ["dataset", "list", "extra"],
    ["dataset", "grade", "penguins", "species"],
    ["agreement", "apply"],
    ["agreement", "frob"],
    ["agreement", "show"],
    ["agreement", "apply", "a.json", "b.json"],
])
def test_usage_errors(data, unchanged, args):
    res = data.home.ctl(*args)
    lib.assert_one_line_error(res, 2, "govfsctl")
    assert res.stdout == ""


@pytest.mark.parametrize("args, needle", [
    ([], "--agreement ID is required"),
    (["--agreement", "agr-ok"], "want one MOUNTPOINT"),
    (["--agreement", "agr-ok", "a", "b"], "want one MOUNTPOINT"),
    (["--agreement", "agr-ok", "--bogus", "/tmp"], "'--bogus'"),
    (["--agreement", "agr-ok", "/tmp", "--agreement"], "'--agreement'"),
    (["--agreement", "agr-ok", "-o", "default_permissions", "/tmp"],
     "default_permissions"),
])
def test_govfs_usage_errors(data, args, needle):
    res = lib.run([lib.GOVFS, "--home", data.home.dir, "--key-file",
                   data.home.key, *args], text=True, timeout=30)
    lib.assert_one_line_error(res, 2, "govfs", needle)


def test_grade_refused_while_agreement_would_break(data, unchanged):
    """Grading a kept column above the agreement's max_level is refused,
    naming the agreement."""
    res = data.home.ctl("dataset", "grade", "penguins", "species", "2")
    err = lib.assert_one_line_error(res, 1, "govfsctl", "agr-ok")
    assert "species" in err


@pytest.mark.parametrize("spelling", ["separate", "joined"])
def test_home_and_key_before_the_verb(data, spelling):
    """--home and --key-file may come before the verb, as "--home DIR" or
    "--home=DIR", as after it."""
    home, key = str(data.home.dir), str(data.home.key)
    pre = (["--home", home, "--key-file", key] if spelling == "separate"
           else ["--home=" + home, "--key-file=" + key])
    res = lib.run([lib.GOVFSCTL, *pre, "agreement", "list", "--json"],
                  text=True)
    assert res.returncode == 0, res.stderr
    assert "agr-ok" in [a["id"] for a in json.loads(res.stdout)]


def test_leading_option_without_value(data):
    res = lib.run([lib.GOVFSCTL, "--home"], text=True)
    lib.assert_one_line_error(res, 2, "govfsctl", "--home needs a value")


def test_grade_to_the_same_level_changes_nothing(data, unchanged):
    """SPEC: a no-op succeeds and says so; it leaves no dataset.grade
    record behind."""
    home = data.home
    grades = [r for r in home.audit_export() if r["event"] == "dataset.grade"]
    res = home.ok("dataset", "grade", "penguins", "species", "1")
    assert "nothing changed" in res.stdout, res.stdout
    assert [r for r in home.audit_export()
            if r["event"] == "dataset.grade"] == grades


def test_apply_of_a_directory(data, unchanged):
    res = data.home.ctl("agreement", "apply", data.dir)
    lib.assert_one_line_error(res, 1, "govfsctl", str(data.dir),
                              "Is a directory")


@pytest.mark.parametrize("verb", ["tail", "export"])
def test_audit_filter_checks_the_id(data, verb):
    res = data.home.ctl("audit", verb, "--agreement", "BAD ID")
    lib.assert_one_line_error(res, 1, "govfsctl", "BAD ID")
    assert res.stdout == ""
