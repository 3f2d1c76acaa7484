"""
Reading data.csv with the tools analysts use (cat, cp, wc, tail, dd,
Python csv, pandas, sqlite3 .import, mmap), each compared with the
independent expectation of govfs_testlib; exact st_size from the first stat;
the column rules on CJK text, commas, quotes and embedded newlines.
"""
import csv
import decimal
import json
import mmap
import os
import random
import subprocess

import pandas
import pytest

import govfs_testlib as lib

PENGUIN_RULES = {
    "species": "keep",
    "island": "mask:first2",
    "bill_length_mm": "keep",
    "bill_depth_mm": "prefix:2",
    "flipper_length_mm": "keep",
    "body_mass_g": "keep",
    "sex": "redact",
    "year": "drop",
}

VISIT_RULES = {
    "visit_id": "keep",
    "patient_id": "redact",
    "name": "mask:first1",
    "phone": "mask:last4",
    "district": "keep",
    "age": "keep",
    "visit_date": "date:month",
    "visit_time": "keep",
    "cost": "keep",
    "notes": "keep",
}

# The crafted dataset: column names and values with CJK text, commas,
# quotes, CR/LF inside fields, emoji, NULLs.
TRICKY_SCHEMA = {"columns": [
    {"name": "id", "type": "int", "level": 1},
    {"name": "名字", "type": "string", "level": 4},
    {"name": "phone", "type": "string", "level": 4},
    {"name": "city, province", "type": "string", "level": 2},
    {"name": 'note "free"', "type": "string", "level": 3},
    {"name": "day", "type": "date", "level": 2},
    {"name": "when", "type": "datetime", "level": 3},
    {"name": "amount", "type": "decimal", "level": 2},
]}

TRICKY_AGREEMENTS = {
    "agr-tricky-mask": {
        "id": "keep",
        "名字": "mask:first1",
        "phone": "mask:last4",
        "city, province": "prefix:3",
        'note "free"': "prefix:6",
        "day": "date:year",
        "when": "date:day",
        "amount": "keep",
    },
    "agr-tricky-keep": {
        "id": "redact",
        "名字": "keep",
        "phone": "prefix:4",
        "city, province": "keep",
        'note "free"': "keep",
        "day": "date:month",
        "when": "date:month",
        "amount": "null",
    },
    "agr-tricky-last": {
        "名字": "mask:last1",
        'note "free"': "mask:last3",
        "when": "keep",
        "day": "date:day",
    },
    # One column, often NULL: such records must be written "".
    "agr-tricky-one": {'note "free"': "keep"},
}


def tricky_source(rng, nrows, crlf, bom, final_newline):
    """Source CSV bytes of the crafted dataset, quoting where needed and,
    at random, where not (govfs must still quote only where needed)."""
    surnames = ["王", "李", "欧阳", "上官", "张", "陈"]
    given = ["伟", "芳", "秀英", "建国", "👩‍⚕️", "Ana", "Zoë"]
    cities = ["Hangzhou, Zhejiang", "杭州市，浙江省", 'Lin"an', "Xihu",
              "東京", "a", "São Paulo, SP", " spaced "]
    notes = ["复诊", "line one\nline two", "crlf\r\ninside", '"quoted"',
             "comma, here", "中文，标点“引号”", "x" * 300, "é",
             "tab\there", "ends with CR\r", "\nleading newline", "🙂🙃",
             'she said ""hi""', "a,b,c", "短"]
    offsets = ["Z", "+08:00", "-05:30", ""]

    def field(v):
        if v == "":
            return ""
        if any(c in v for c in ',"\r\n') or rng.random() < 0.3:
            return '"' + v.replace('"', '""') + '"'
        return v

    def maybe(v, p=0.12):
        return "" if rng.random() < p else v

    eol = "\r\n" if crlf else "\n"
    lines = [",".join(field(c["name"]) for c in TRICKY_SCHEMA["columns"])]
    for i in range(nrows):
        name = rng.choice(surnames) + "".join(
            rng.choice(given) for _ in range(rng.randint(0, 2)))
        phone = rng.choice(["0", "+86 ", "(0571) "]) + "".join(
            rng.choice("0123456789") for _ in range(rng.randint(2, 11)))
        note = " ".join(rng.choice(notes) for _ in range(rng.randint(1, 3)))
        day = "%04d-%02d-%02d" % (rng.randint(1990, 2030), rng.randint(1, 12),
                                  rng.randint(1, 28))
        when = "%sT%02d:%02d:%02d%s%s" % (
            day, rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
            rng.choice(["", ".123"]), rng.choice(offsets))
        amount = rng.choice(["-", ""]) + str(rng.randint(0, 99999)) + \
            rng.choice(["", ".5", ".25", ".00"])
        row = [str(i + 1), maybe(name), maybe(phone), maybe(rng.choice(cities)),
               maybe(note, 0.3), maybe(day), maybe(when), maybe(amount)]
        lines.append(",".join(field(v) for v in row))
    text = eol.join(lines) + (eol if final_newline else "")
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


class Data:
    """The module's home, its datasets and agreements."""


@pytest.fixture(scope="module")
def data(module_dir):
    d = Data()
    d.home = home = lib.Home(module_dir)
    d.src = {}

    d.src["penguins"] = (lib.REPO / "demo" / "penguins.csv").read_bytes()
    home.add("penguins", lib.REPO / "demo" / "penguins.csv",
             lib.REPO / "demo" / "penguins.schema.json")
    home.apply(lib.agreement("agr-penguins", {"penguins": PENGUIN_RULES},
                             max_level=3))

    visits = lib.gen_visits(module_dir / "visits.csv", 5000, seed=7)
    d.src["health.visits"] = visits.read_bytes()
    home.add("health.visits", visits)
    home.apply(lib.agreement("agr-visits", {"health.visits": VISIT_RULES}))

    rng = random.Random(20251122)
    for ds, crlf, bom, final in (("tricky.crlf", True, True, True),
                                 ("tricky.lf", False, False, False)):
        path = module_dir / (ds + ".csv")
        path.write_bytes(tricky_source(rng, 600, crlf, bom, final))
        d.src[ds] = path.read_bytes()
        home.add(ds, path, TRICKY_SCHEMA)
    for agr_id, rules in TRICKY_AGREEMENTS.items():
        home.apply(lib.agreement(agr_id, {"tricky.crlf": rules,
                                          "tricky.lf": rules}))

    empty = module_dir / "empty.csv"
    empty.write_bytes(b"only,\"a, header\"\r\n")
    d.src["empty"] = empty.read_bytes()
    home.add("empty", empty)
    home.apply(lib.agreement("agr-empty", {"empty": {
        "only": "keep", "a, header": "redact"}}))
    return d


# (agreement, dataset, rules) read by the tool tests.
TOOL_CASES = {
    "penguins": ("agr-penguins", "penguins", PENGUIN_RULES),
    "visits": ("agr-visits", "health.visits", VISIT_RULES),
}


@pytest.fixture(params=sorted(TOOL_CASES))
def case(request, data):
    """A mounted data.csv and the bytes it must hold."""
    agr_id, ds, rules = TOOL_CASES[request.param]
    with lib.mounted(data.home, agr_id) as m:
        yield m / ds / "data.csv", lib.expected_data_csv(data.src[ds], rules)


def test_first_stat_is_exact(data):
    """st_size of every file is right on the very first stat of a mount,
    before anything was read, and equals what a read then returns."""
    with lib.mounted(data.home, "agr-visits") as m:
        files = [m / "health.visits" / "data.csv", m / "README.txt",
                 m / "health.visits" / "schema.json"]
        sizes = [os.stat(f).st_size for f in files]
        assert sizes[0] == len(lib.expected_data_csv(
            data.src["health.visits"], VISIT_RULES))
        assert sizes == [len(lib.read_all(f)) for f in files]
        st = os.stat(files[0])
        assert st.st_mode & 0o777 == 0o444 and os.path.isfile(files[0])


def test_listing(data):
    with lib.mounted(data.home, "agr-tricky-mask") as m:
        assert sorted(os.listdir(m.path)) == ["README.txt", "tricky.crlf",
                                              "tricky.lf"]
        assert sorted(os.listdir(m / "tricky.lf")) == [
            "data.csv", "schema.json", "views"]
        assert os.listdir(m / "tricky.lf" / "views") == []
        assert not os.path.exists(m / "penguins")


def test_read_is_byte_exact(case):
    path, want = case
    assert os.stat(path).st_size == len(want)
    assert lib.read_all(path) == want
    # Odd read sizes that straddle whatever blocks govfs uses.
    assert lib.read_all(path, chunk=4099) == want
    assert lib.read_all(path, chunk=1 << 17 | 3) == want


def test_cat(case):
    path, want = case
    res = subprocess.run(["cat", path], capture_output=True, timeout=60)
    assert res.returncode == 0 and res.stdout == want


def test_cp(case, tmp_dir):
    path, want = case
    res = lib.run(["cp", path, tmp_dir / "copy.csv"])
    assert res.returncode == 0, res.stderr
    assert (tmp_dir / "copy.csv").read_bytes() == want


def test_wc(case):
    path, want = case
    res = lib.run(["wc", "-c", path], text=True)
    assert res.stdout.split()[0] == str(len(want))
    # wc -c may answer from st_size; through stdin it must count bytes.
    with open(path, "rb") as f:
        res = lib.run(["wc", "-c"], stdin=f, text=True)
    assert res.stdout.strip() == str(len(want))
    res = lib.run(["wc", "-l", path], text=True)
    assert res.stdout.split()[0] == str(want.count(b"\n"))


@pytest.mark.parametrize("args, part", [
    (["-c", "1000"], lambda b: b[-1000:]),
    (["-c", "1"], lambda b: b[-1:]),
    (["-c", "+4097"], lambda b: b[4096:]),
    (["-c", "99999999"], lambda b: b),
    (["-n", "3"], lambda b: b"\n".join(b.split(b"\n")[-4:])),
])
def test_tail(case, args, part):
    path, want = case
    res = lib.run(["tail", *args, path])
    assert res.returncode == 0 and res.stdout == part(want)


@pytest.mark.parametrize("args, lo, hi", [
    (["bs=1", "skip=12347", "count=999"], 12347, 12347 + 999),
    (["bs=1", "skip=1", "count=1"], 1, 2),
    (["bs=4099", "skip=3", "count=7"], 3 * 4099, 10 * 4099),
    (["bs=4099", "count=1"], 0, 4099),
    (["bs=65537", "skip=1"], 65537, None),
    (["bs=1M", "iflag=skip_bytes,fullblock", "skip=131071", "count=1"],
     131071, 131071 + (1 << 20)),
    (["bs=333", "iflag=skip_bytes,count_bytes", "skip=65535",
      "count=70001"], 65535, 65535 + 70001),
    (["bs=7", "skip=99999999"], 7 * 99999999, None),
])
def test_dd(case, args, lo, hi):
    path, want = case
    res = lib.run(["dd", "if=%s" % path, "status=none", *args])
    assert res.returncode == 0, res.stderr
    assert res.stdout == want[lo:hi]


def test_python_csv(data):
    with lib.mounted(data.home, "agr-visits") as m:
        with open(m / "health.visits" / "data.csv", newline="",
                  encoding="utf-8") as f:
            got = list(csv.reader(f, strict=True))
    header, rows = lib.parse_source(data.src["health.visits"])
    want_header, want_rows = lib.expected_table(header, rows, VISIT_RULES)
    assert got[0] == want_header
    assert got[1:] == want_rows
    # Kept columns read back exactly as in the source.
    ids = [r[0] for r in rows]
    notes = [r[header.index("notes")] for r in rows]
    assert [r[0] for r in got[1:]] == ids
    assert [r[want_header.index("notes")] for r in got[1:]] == notes


def test_pandas(data):
    with lib.mounted(data.home, "agr-penguins") as m:
        path = m / "penguins" / "data.csv"
        text = pandas.read_csv(path, dtype=str, keep_default_na=False)
        typed = pandas.read_csv(path)
    header, rows = lib.parse_source(data.src["penguins"])
    want_header, want_rows = lib.expected_table(header, rows, PENGUIN_RULES)
    assert list(text.columns) == want_header
    assert text.values.tolist() == want_rows
    mass = [int(r[header.index("body_mass_g")]) for r in rows
            if r[header.index("body_mass_g")]]
    assert typed["body_mass_g"].sum() == sum(mass)
    assert typed["body_mass_g"].count() == len(mass)
    species = [r[0] for r in rows]
    assert typed["species"].value_counts().to_dict() == {
        s: species.count(s) for s in set(species)}


def test_pandas_visits(data):
    with lib.mounted(data.home, "agr-visits") as m:
        df = pandas.read_csv(m / "health.visits" / "data.csv", dtype=str,
                             keep_default_na=False)
    header, rows = lib.parse_source(data.src["health.visits"])
    want_header, want_rows = lib.expected_table(header, rows, VISIT_RULES)
    assert list(df.columns) == want_header
    assert df.values.tolist() == want_rows


def sqlite_query(csv_path, sql):
    script = ".import --csv '%s' t\n%s\n" % (csv_path, sql)
    res = lib.run(["sqlite3", ":memory:"], input=script, text=True)
    assert res.returncode == 0 and not res.stderr, res.stderr
    return res.stdout.strip().split("|")


def test_sqlite_import(data):
    header, rows = lib.parse_source(data.src["health.visits"])
    col = {name: i for i, name in enumerate(header)}
    with lib.mounted(data.home, "agr-visits") as m:
        got = sqlite_query(
            m / "health.visits" / "data.csv",
            "select count(*), sum(cast(visit_id as integer)), "
            "sum(cast(age as integer)), printf('%.2f', sum(cost)), "
            "count(distinct district), sum(length(notes) > 0), "
            "count(distinct visit_date) from t;")
    cost = sum(decimal.Decimal(r[col["cost"]]) for r in rows if r[col["cost"]])
    want = [len(rows),
            sum(int(r[col["visit_id"]]) for r in rows),
            sum(int(r[col["age"]]) for r in rows if r[col["age"]]),
            "%.2f" % cost,
            len({r[col["district"]] for r in rows}),
            sum(1 for r in rows if r[col["notes"]]),
            len({r[col["visit_date"]][:7] for r in rows})]
    assert got == [str(w) for w in want]


def test_sqlite_import_penguins(data):
    header, rows = lib.parse_source(data.src["penguins"])
    mass = header.index("body_mass_g")
    with lib.mounted(data.home, "agr-penguins") as m:
        got = sqlite_query(m / "penguins" / "data.csv",
                           "select count(*), sum(cast(body_mass_g as integer)),"
                           " count(distinct sex), group_concat(distinct "
                           "island) from t;")
    assert got[:3] == [str(len(rows)), str(sum(int(r[mass]) for r in rows
                                               if r[mass])), "2"]
    islands = {lib.apply_rule("mask:first2", r[1]) for r in rows}
    assert sorted(got[3].split(",")) == sorted(islands)


def test_mmap_private(data):
    want = lib.expected_data_csv(data.src["health.visits"], VISIT_RULES)
    with lib.mounted(data.home, "agr-visits") as m:
        with open(m / "health.visits" / "data.csv", "rb") as f:
            size = os.fstat(f.fileno()).st_size
            with mmap.mmap(f.fileno(), size, flags=mmap.MAP_PRIVATE,
                           prot=mmap.PROT_READ) as mm:
                assert mm[:] == want
                assert mm[size // 2:size // 2 + 5000] == \
                    want[size // 2:size // 2 + 5000]


@pytest.mark.parametrize("agr_id", sorted(TRICKY_AGREEMENTS))
@pytest.mark.parametrize("ds", ["tricky.crlf", "tricky.lf"])
def test_rules_on_tricky_text(data, agr_id, ds):
    """mask/prefix/date/keep/null/redact on CJK, emoji, commas, quotes,
    CR and LF inside fields; BOM and CRLF sources; column names that need
    quoting themselves."""
    want = lib.expected_data_csv(data.src[ds], TRICKY_AGREEMENTS[agr_id])
    with lib.mounted(data.home, agr_id) as m:
        path = m / ds / "data.csv"
        assert os.stat(path).st_size == len(want)
        got = lib.read_all(path)
    assert got == want
    if agr_id == "agr-tricky-one":
        assert b'\n""\n' in got  # the lone-NULL record


def test_tricky_expectation_is_not_trivial(data):
    """Guard for the test above: the crafted source holds what it claims,
    and the rules really change it."""
    header, rows = lib.parse_source(data.src["tricky.crlf"])
    notes = [r[4] for r in rows]
    assert any("\r\n" in n for n in notes) and any('"' in n for n in notes)
    assert any(n == "" for n in notes) and any("🙂" in n for n in notes)
    masked = lib.expected_table(header, rows,
                                TRICKY_AGREEMENTS["agr-tricky-mask"])[1]
    assert [r[1] for r in masked] != [r[1] for r in rows]
    assert lib.apply_rule("mask:first1", "欧阳伟") == "欧**"
    assert lib.apply_rule("mask:last4", "057") == "***"
    assert lib.apply_rule("mask:last2", "abcd") == "**cd"
    assert lib.apply_rule("date:month", "2024-02-29T23:59:59+08:00") == \
        "2024-02"
    assert lib.csv_record(["a,b", 'q"', "x\ry", "plain"]) == \
        '"a,b","q""",' + '"x\ry",plain'


def test_schema_json(data):
    """schema.json lists data.csv's columns in order with their rules.
    Its type is the type of the column as data.csv shows it: the source
    type under keep and null, text under the rules that make text."""
    shown = data.home.json("dataset", "show", "tricky.lf")["columns"]
    rules = TRICKY_AGREEMENTS["agr-tricky-keep"]
    with lib.mounted(data.home, "agr-tricky-keep") as m:
        doc = json.loads(lib.read_all(m / "tricky.lf" / "schema.json"))
    want = [(c["name"], rules[c["name"]], c["type"]) for c in shown
            if rules.get(c["name"], "drop") != "drop"]
    assert [(c["name"], c["rule"]) for c in doc["columns"]] == \
        [(name, rule) for name, rule, _ in want]
    for col, (name, rule, src_type) in zip(doc["columns"], want):
        if rule in ("keep", "null"):
            assert col["type"] == src_type, col
        elif rule == "redact" or rule.startswith(("mask:", "prefix:")):
            assert col["type"] == "string", col
    assert doc["views"] == []


def test_header_only_dataset(data):
    with lib.mounted(data.home, "agr-empty") as m:
        path = m / "empty" / "data.csv"
        assert os.stat(path).st_size == len(b'only,"a, header"\n')
        assert lib.read_all(path) == b'only,"a, header"\n'
