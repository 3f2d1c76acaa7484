"""
The policy engine end to end, through a real mount: one agreement whose two
datasets together use every column rule (keep, drop, null, redact,
pseudonym, mask:firstN, mask:lastN, prefix:N, date:year/month/day,
bucket:W) and `rows` filters that use `in`, `and`, `or`, `not`, `is null`,
`is not null`, comparisons of every type, a quoted identifier and a
doubled quote in a literal.

Every cell is checked against the independent expectation of
govfs_testlib (its own bucket arithmetic and filter evaluator).  Pseudonym
tokens cannot be computed without the agreement's secret key, so they are
checked for form (16 lowercase hex) and consistency: equal raw values give
equal tokens and different ones different tokens, across both datasets and
across revisions, while a second agreement's tokens share nothing with the
first's.  No raw value of a hidden column, nor the hidden part of a masked
one, appears in any byte served.  Sizes are known before reading (a token is
always 16 bytes) and must match st_size and `apply --dry-run`.  A narrower
revision makes a reader's next read fail with ESTALE while a new open gets
the narrower view.  Bad filters are refused at apply with one line naming
`$.datasets[0].rows: at N:`.
"""
import csv
import errno
import io
import json
import os
import random
import re
import time
from datetime import datetime, timedelta, timezone

import pytest

import govfs_testlib as lib

SCHEMA = lib.REPO / "demo" / "visits.schema.json"

# Dataset one: every column named, each by a different rule.
RULES1 = {
    "visit_id": "keep",
    "patient_id": "pseudonym",
    "name": "mask:first1",
    "phone": "mask:last4",
    "district": "keep",
    "age": "bucket:10",
    "visit_date": "date:month",
    "visit_time": "date:year",
    "cost": "bucket:0.5",
    "notes": "prefix:3",
}
FILTER1 = ("(district in ('Xihu', 'Lin''an', 'Gongshu') or \"district\" is "
           "null) and not (age < 18) and (notes is not null or cost >= "
           "1000)")

# Dataset two: the same patients; the rules the first does not use.
RULES2 = {
    "visit_id": "keep",
    "patient_id": "pseudonym",
    "name": "null",
    "phone": "redact",
    "district": "keep",
    "age": "keep",
    "visit_date": "date:day",
    "visit_time": "keep",
    "cost": "bucket:100",
    "notes": "drop",
}
# notes is dropped but may still be filtered on; bytewise, 'X-ray normal'
# lies between 'X' and 'c', and no lowercase or CJK text does.
FILTER2 = ("\"visit_date\" >= '2025-01-01' or visit_time < "
           "'2023-07-01T00:00:00Z' or cost is null or age in (7, 70) or "
           "(notes >= 'X' and notes < 'c')")

DS1, DS2 = "health.visits", "clinic.visits"
AGR = "agr-policy"


def policy(data, agr_id, rows1=FILTER1, rules1=RULES1, with_ds2=True):
    datasets = {DS1: rules1}
    if with_ds2:
        datasets[DS2] = RULES2
    doc = lib.agreement(agr_id, datasets, max_level=4)
    if rows1 is not None:
        doc["datasets"][0]["rows"] = rows1
    if with_ds2:
        doc["datasets"][1]["rows"] = data.filter2
    return doc


def same_instant(value, offset):
    """The datetime value (which carries an offset) written in another
    offset: 'Z' or minutes east of UTC."""
    t = datetime.fromisoformat(value)
    if offset == "Z":
        return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return t.astimezone(timezone(timedelta(minutes=offset))).isoformat()


def edit_source(raw, seed):
    """gen-visits output with NULLs in every column and the numbers a
    bucket must get right: negatives, leading zeros, -0, whole values;
    phone numbers of four characters or fewer; the CSV re-written with
    quoting only where needed."""
    rng = random.Random(seed)
    header, rows = lib.parse_source(raw)
    col = {name: i for i, name in enumerate(header)}
    for r in rows:
        for name in ("patient_id", "name", "phone", "district", "age",
                     "visit_date", "visit_time", "cost"):
            if rng.random() < 0.03:
                r[col[name]] = ""
        if r[col["age"]] and rng.random() < 0.05:
            r[col["age"]] = rng.choice(["-3", "-10", "-0", "07", "0",
                                        "-11", "0018", "100"])
        if r[col["cost"]] and rng.random() < 0.08:
            r[col["cost"]] = rng.choice([
                "-" + r[col["cost"]], "00" + r[col["cost"]], "-0.00", "0",
                "-0.5", "-0.49", "1000", "999.99", "-1000.01",
                r[col["cost"]].split(".")[0], "12.5000"])
        if r[col["phone"]] and rng.random() < 0.02:
            r[col["phone"]] = rng.choice(["0571", "12", "9"])
    return csv_bytes(header, rows)


def csv_bytes(header, rows):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue().encode("utf-8")


class Data:
    """The module's home: both datasets and their sources."""


@pytest.fixture(scope="module")
def data(module_dir):
    d = Data()
    d.home = lib.Home(module_dir)
    raw = lib.gen_visits(module_dir / "gen.csv", 2500, seed=23).read_bytes()
    src1 = edit_source(raw, 99)
    header, rows = lib.parse_source(src1)
    # The same patients again, in another order and selection.
    d.src = {DS1: src1, DS2: csv_bytes(header, rows[::-2])}
    for ds, src in d.src.items():
        path = module_dir / (ds + ".csv")
        path.write_bytes(src)
        d.home.add(ds, path, SCHEMA)
    d.types = {c["name"]: c["type"]
               for c in json.loads(SCHEMA.read_text())["columns"]}
    # Two rows FILTER2 leaves out, let in by their visit_time written in
    # other offsets: equal only as instants, not as the text or the local
    # time written.
    rows2 = rows[::-2]
    base = lib.compile_filter(FILTER2, header, d.types)
    vt = header.index("visit_time")
    d.let_in = [r for r in rows2 if r[vt] and not base(r)][7:400:390]
    d.filter2 = FILTER2 + " or visit_time in ('%s', '%s')" % (
        same_instant(d.let_in[0][vt], "Z"),
        same_instant(d.let_in[1][vt], -330))
    return d


def expect(data, ds, rules, rows):
    header, src_rows = lib.parse_source(data.src[ds])
    return lib.expected_table(header, src_rows, rules, rows, data.types)


def dry_run_plan(home, doc):
    """{dataset: (shown rows, source rows, bytes)} as `apply --dry-run`
    prints them; the catalog must be left as it was."""
    before = home.ctl("agreement", "list", "--json").stdout
    res = home.ctl("agreement", "apply", "--dry-run",
                   home.write_json(doc, doc["id"] + ".dry"))
    assert res.returncode == 0, res.stderr
    assert "dry run" in res.stdout
    plan, ds = {}, None
    for line in res.stdout.splitlines():
        m = re.match(r"\s+dataset (\S+)", line)
        if m:
            ds = m.group(1)
        m = re.search(r"data\.csv: version \d+, (\d+) of (\d+) rows, "
                      r"(\d+) bytes", line)
        if m:
            plan[ds] = tuple(int(g) for g in m.groups())
    assert home.ctl("agreement", "list", "--json").stdout == before
    return plan


def read_checked(path, want, tokens):
    """Read data.csv at path and check it against want (header, rows)
    and its size; returns the bytes."""
    size = os.stat(path).st_size
    got = lib.read_all(path, chunk=65537)
    assert size == len(got) == lib.expected_size(*want)
    lib.check_served_csv(got, want[0], want[1], tokens)
    return got


def test_expectation_is_not_trivial(data):
    """Guard for the tests below: the filters keep some rows and leave
    out others (NULLs, Lin'an, negative and leading-zero numbers among
    both), and the rules change what they touch."""
    header, rows = lib.parse_source(data.src[DS1])
    col = {name: i for i, name in enumerate(header)}
    h1, r1 = expect(data, DS1, RULES1, FILTER1)
    assert 200 < len(r1) < len(rows) // 2
    shown_ids = {r[0] for r in r1}
    kept = [r for r in rows if r[0] in shown_ids]
    left = [r for r in rows if r[0] not in shown_ids]
    assert any(r[col["district"]] == "Lin'an" for r in kept)
    assert any(r[col["district"]] == "" for r in kept)
    assert any(r[col["district"]] == "Lin'an" for r in left)
    assert any(r[col["notes"]] == "" for r in kept)
    assert any(r[col["age"]] == "" for r in left)
    assert any(r[col["patient_id"]] == "" for r in kept)
    assert any(r[col["cost"]].startswith("-") for r in kept)
    assert any(r[col["cost"]].startswith("00") for r in kept)
    assert any(r[col["age"]] in ("07", "0018", "100") for r in rows)
    h2, r2 = expect(data, DS2, RULES2, data.filter2)
    assert 200 < len(r2) < len(lib.parse_source(data.src[DS2])[1])
    assert len(r2) == len(expect(data, DS2, RULES2, FILTER2)[1]) + 2
    assert [r[0] for r in data.let_in] == [
        r[0] for r in r2 if r[0] in {x[0] for x in data.let_in}]
    assert "Z'" in data.filter2 and "-05:30'" in data.filter2
    assert "notes" not in h2 and h2[:2] == ["visit_id", "patient_id"]
    assert lib.apply_rule("bucket:0.5", "-0.49") == "-0.5"
    assert lib.apply_rule("bucket:0.5", "-0.00") == "0"
    assert lib.apply_rule("bucket:10", "-0") == "0"
    assert lib.apply_rule("bucket:10", "0018") == "10"
    assert lib.apply_rule("bucket:100", "-1000.01") == "-1100"
    assert lib.apply_rule("bucket:0.5", "12.5000") == "12.5"
    assert lib.apply_rule("mask:last4", "12") == "**"
    f = lib.compile_filter("not (a < 18) or b is null", ["a", "b"],
                           {"a": "int", "b": "string"})
    assert [f(r) for r in (["", "x"], ["", ""], ["17", "x"],
                           ["018", "x"])] == [False, True, False, True]


def test_every_rule_and_filter(data):
    """dry-run, st_size and bytes read agree with the expectation; every
    cell is right; tokens are well formed and consistent across both
    datasets of the agreement."""
    home = data.home
    want1 = expect(data, DS1, RULES1, FILTER1)
    want2 = expect(data, DS2, RULES2, data.filter2)
    total1 = len(lib.parse_source(data.src[DS1])[1])
    total2 = len(lib.parse_source(data.src[DS2])[1])
    doc = policy(data, AGR)
    plan = dry_run_plan(home, doc)
    assert plan == {
        DS1: (len(want1[1]), total1, lib.expected_size(*want1)),
        DS2: (len(want2[1]), total2, lib.expected_size(*want2))}
    home.apply(doc)
    tokens = lib.TokenMap()
    with lib.mounted(home, AGR) as m:
        read_checked(m / DS1 / "data.csv", want1, tokens)
        read_checked(m / DS2 / "data.csv", want2, tokens)
        for ds, rules, want in ((DS1, RULES1, want1), (DS2, RULES2, want2)):
            doc = json.loads(lib.read_all(m / ds / "schema.json"))
            assert [(c["name"], c["rule"]) for c in doc["columns"]] == \
                [(name, rules[name]) for name in want[0]]
    # Equal raw values met in both datasets, so consistency across them
    # was really checked.
    ids1 = {r[1].raw for r in want1[1] if r[1]}
    ids2 = {r[1].raw for r in want2[1] if r[1]}
    assert len(ids1 & ids2) > 50
    assert len(tokens.by_raw) == len(ids1 | ids2)


def hidden_values(data):
    """Every raw value the agreement hides (a pseudonymised, redacted,
    nulled or dropped column) and the hidden part of every masked or
    prefixed one, of more than 5 characters (a shorter one may well be
    part of what a rule shows of another value: "复诊" of "复诊 换药")."""
    header, rows = lib.parse_source(data.src[DS1])
    col = {name: i for i, name in enumerate(header)}
    secrets = set()
    for r in rows:
        pid, name, phone, notes = (r[col[c]] for c in (
            "patient_id", "name", "phone", "notes"))
        secrets.update([pid, name, phone, notes,   # hidden whole somewhere
                        phone[:-4], name[1:], notes[3:]])  # hidden parts
    return {s for s in secrets if len(s) > 5}


def test_no_raw_value_is_served(data):
    """No byte sequence of a hidden value appears in anything the mount
    serves: data.csv of both datasets, schema.json, README.txt."""
    home = data.home
    if AGR not in {a["id"] for a in home.agreements()}:
        home.apply(policy(data, AGR))
    served = []
    with lib.mounted(home, AGR) as m:
        served.append(lib.read_all(m / "README.txt"))
        for ds in (DS1, DS2):
            served.append(lib.read_all(m / ds / "data.csv"))
            served.append(lib.read_all(m / ds / "schema.json"))
    secrets = hidden_values(data)
    assert len(secrets) > 1000
    # The search can find them: the sources hold every one.
    source = data.src[DS1]
    assert all(s.encode("utf-8") in source or
               s.replace('"', '""').encode("utf-8") in source
               for s in secrets)
    leaked = []
    for s in secrets:
        forms = {s.encode("utf-8"), s.replace('"', '""').encode("utf-8")}
        for blob in served:
            if any(f in blob for f in forms):
                leaked.append(s)
    assert not leaked, "raw values served: %r" % sorted(leaked)[:20]


def test_tokens_unrelated_across_agreements(data):
    """A second agreement on the same data has its own key: no token in
    common with the first, though its own tokens are consistent."""
    home = data.home
    if AGR not in {a["id"] for a in home.agreements()}:
        home.apply(policy(data, AGR))
    home.apply(policy(data, "agr-policy-other", rows1=None,
                      with_ds2=False))
    want_all = expect(data, DS1, RULES1, None)
    want_a = expect(data, DS1, RULES1, FILTER1)
    mine, other = lib.TokenMap(), lib.TokenMap()
    with lib.mounted(home, AGR) as m:
        read_checked(m / DS1 / "data.csv", want_a, mine)
    with lib.mounted(home, "agr-policy-other") as m:
        read_checked(m / DS1 / "data.csv", want_all, other)
        assert sorted(os.listdir(m.path)) == ["README.txt", DS1]
    common = set(mine.by_raw) & set(other.by_raw)
    assert len(common) > 100
    assert not set(mine.by_token) & set(other.by_token)
    assert all(mine.by_raw[r] != other.by_raw[r] for r in common)


def poll_size(path, want, old, timeout=3.0):
    """Stat path until its size is want, seeing no size but old or want
    on the way."""
    start = time.monotonic()
    seen = set()
    while True:
        size = os.stat(path).st_size
        seen.add(size)
        assert seen <= {old, want}, "sizes seen: %s" % seen
        if size == want:
            return
        assert time.monotonic() - start < timeout, (size, want)
        time.sleep(0.02)


def check_stale_then_narrower(home, m, doc, fds, want_new, tokens):
    """Apply doc while fds (dataset: (fd, bytes it was opened on)) are
    open: a handle on DS1, whose bytes change, fails its next read with
    ESTALE; one on DS2, whose bytes do not, keeps reading; a new open
    of DS1 gets want_new, with its size on the first stat that shows
    the change."""
    path = m / DS1 / "data.csv"
    old_size = len(fds[DS1][1])
    home.apply(doc)
    poll_size(path, lib.expected_size(*want_new), old_size)
    fd, old = fds[DS1]
    with pytest.raises(OSError) as e:
        os.pread(fd, 4096, 4096)
    assert e.value.errno == errno.ESTALE
    fd2, old2 = fds[DS2]
    assert os.pread(fd2, 5000, 3000) == old2[3000:8000]
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.fstat(fd).st_size == lib.expected_size(*want_new)
        parts = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            parts.append(b)
        got = b"".join(parts)
    finally:
        os.close(fd)
    lib.check_served_csv(got, want_new[0], want_new[1], tokens)
    return got


def test_narrower_revision_makes_readers_stale(data):
    """Two narrower revisions applied while readers hold data.csv open:
    first an extra filter condition, then a column dropped.  Tokens stay
    what they were under the first revision."""
    home = data.home
    agr = "agr-policy-rev"
    rows2 = "(" + FILTER1 + ") and cost >= 100"
    rules3 = dict(RULES1, visit_time="drop")
    want1 = expect(data, DS1, RULES1, FILTER1)
    want2 = expect(data, DS1, RULES1, rows2)
    want3 = expect(data, DS1, rules3, rows2)
    assert len(want2[1]) < len(want1[1])
    assert want3[0] == [c for c in want2[0] if c != "visit_time"]
    home.apply(policy(data, agr))
    rev2 = policy(data, agr, rows1=rows2)
    rev3 = policy(data, agr, rows1=rows2, rules1=rules3)
    tokens = lib.TokenMap()
    with lib.mounted(home, agr) as m:
        got1 = read_checked(m / DS1 / "data.csv", want1, tokens)
        got_ds2 = lib.read_all(m / DS2 / "data.csv")
        plan = dry_run_plan(home, rev2)
        assert plan[DS1][0] == len(want2[1])
        assert plan[DS1][2] == lib.expected_size(*want2)
        want_ds2 = expect(data, DS2, RULES2, data.filter2)
        assert plan[DS2][0] == len(want_ds2[1])
        previous = got1
        for doc, want in ((rev2, want2), (rev3, want3)):
            fds = {}
            try:
                for ds in (DS1, DS2):
                    fd = os.open(m / ds / "data.csv", os.O_RDONLY)
                    fds[ds] = (fd, previous if ds == DS1 else got_ds2)
                    assert os.pread(fd, 4096, 0) == fds[ds][1][:4096]
                previous = check_stale_then_narrower(home, m, doc, fds,
                                                     want, tokens)
            finally:
                for fd, _ in fds.values():
                    os.close(fd)
    assert home.json("agreement", "show", agr)["revision"] == 3


# Filters refused at apply, each with the 1-based character position of
# its fault (None: the position is not pinned down by SPEC).
REFUSED = [
    ("age >= 18 and and district = 'Xihu'", 4, 15, "syntax"),
    ("district = '西湖' or or age > 3", 4, 20, "syntax, after CJK"),
    ("(age > 3", 4, None, "unclosed parenthesis"),
    ("district = 'Xihu", 4, None, "unterminated literal"),
    ("district in ()", 4, None, "empty in list"),
    ("age > 3 and agee < 9", 4, 13, "unknown column"),
    ("\"Age\" > 3", 4, 1, "unknown quoted column"),
    ("age >= '18'", 4, 8, "string for int"),
    ("age = 1.5", 4, 7, "decimal for int"),
    ("cost < 'cheap'", 4, 8, "string for decimal"),
    ("visit_date > 2024", 4, 14, "number for date"),
    ("visit_date = '2024-02-30'", 4, 14, "not a date"),
    ("visit_time < 'noon'", 4, 14, "not a datetime"),
    ("district = 3", 4, 12, "number for string"),
    ("district = 'Xihu' and name = '王芳'", 3, 23, "above max_level"),
    ("patient_id is null", 3, 1, "above max_level, is null"),
]


@pytest.mark.parametrize("rows, max_level, pos, why", REFUSED,
                         ids=[c[3] for c in REFUSED])
def test_bad_filter_refused(data, rows, max_level, pos, why):
    home = data.home
    agr_id = "agr-bad-" + re.sub(r"[^a-z0-9]+", "-", why)
    doc = lib.agreement(agr_id, {DS1: {"district": "keep",
                                       "patient_id": "pseudonym"}},
                        max_level=max_level)
    doc["datasets"][0]["rows"] = rows
    path = home.write_json(doc, "bad")
    res = home.ctl("agreement", "apply", path)
    needle = "$.datasets[0].rows: at " + ("%d: " % pos if pos else "")
    err = lib.assert_one_line_error(res, 1, "govfsctl", str(path), needle)
    assert re.search(r"\$\.datasets\[0\]\.rows: at \d+: \S", err), err
    assert agr_id not in {a["id"] for a in home.agreements()}
    # The same file with the filter fixed is accepted.
    doc["datasets"][0]["rows"] = "district = 'Xihu'"
    res = home.ctl("agreement", "apply", "--dry-run",
                   home.write_json(doc, "good"))
    assert res.returncode == 0, res.stderr
