"""
Helpers of the mount test suite: where the programs are, a throw-away govfs
home driven through govfsctl, mounting and unmounting a real govfs, running a
probe as another uid, and the independent expectation of data.csv.

The expectation is computed here from the source CSV with Python's csv
module and the rules as SPEC.md states them; it shares no code with the C
implementation, so a test comparing the two checks the product against the
contract rather than against itself.  bucket:W is computed with Python's
integers and decimal module, a `rows` filter by a small evaluator of its
own (SQL three-valued logic), and a pseudonym token, which depends on the
agreement's secret key, is left as a placeholder that the served bytes
fill in and that is checked for form and consistency (TokenMap).

The expectation of an aggregation view (expected_view) is computed the
same way: groups in a dict, sums and averages with Python's exact Decimal
and Fraction, the order of SPEC by Python comparisons.
"""
import contextlib
import csv
import decimal
import errno
import fractions
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3"


def _binary(env, name):
    return os.environ.get(env) or str(REPO / "build" / name)


GOVFS = _binary("GOVFS_BIN", "govfs")
GOVFSCTL = _binary("GOVFSCTL_BIN", "govfsctl")
GEN_VISITS = _binary("GEN_VISITS_BIN", "gen-visits")
AUDIT_BACKDATE = _binary("AUDIT_BACKDATE_BIN", "tests/audit-backdate")

# The uid the suite uses as "an analyst who is not root".
NOBODY = 65534


# ---------------------------------------------------------------------------
# The independent expectation of data.csv
# ---------------------------------------------------------------------------

def parse_source(data):
    """Parse source CSV bytes (UTF-8, optional BOM, LF or CRLF) into
    (header, rows); an empty field is NULL and is kept as ''."""
    text = data.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    return rows[0], rows[1:]


class Pseudonym:
    """The expectation of a pseudonym cell: the token of raw, which only
    the agreement's key can make.  resolve_pseudonyms() replaces it by the
    token served, after checking that token."""
    __slots__ = ("raw",)

    def __init__(self, raw):
        self.raw = raw

    def __eq__(self, other):
        return isinstance(other, Pseudonym) and other.raw == self.raw

    def __hash__(self):
        return hash(("pseudonym", self.raw))

    def __repr__(self):
        return "Pseudonym(%r)" % self.raw


TOKEN_RE = re.compile(r"[0-9a-f]{16}")


def canonical_decimal(d):
    """SPEC's canonical text of a Decimal: no exponent, no leading '+', no
    trailing zeros after the point or trailing point, never '-0'."""
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text


def bucket_value(value, width):
    """floor(x / W) * W of the int or decimal text value, exactly: both
    are scaled to integers by the same power of ten and floor-divided as
    Python integers, which are exact at any size."""
    x = decimal.Decimal(value)
    w = decimal.Decimal(width)
    assert w > 0, width
    scale = max(-x.as_tuple().exponent, -w.as_tuple().exponent, 0)
    xi = int(x.scaleb(scale))
    wi = int(w.scaleb(scale))
    assert decimal.Decimal(xi).scaleb(-scale) == x, value
    return canonical_decimal(decimal.Decimal((xi // wi) * wi).scaleb(-scale))


def apply_rule(rule, value):
    """The text a column rule makes of one source field ('' is NULL); a
    Pseudonym placeholder for the pseudonym rule."""
    if value == "":
        return ""  # NULL stays NULL under every rule
    if rule == "keep":
        return value
    if rule == "pseudonym":
        return Pseudonym(value)
    m = re.fullmatch(r"bucket:([0-9]+(?:\.[0-9]+)?)", rule)
    if m:
        with decimal.localcontext() as ctx:
            ctx.prec = 10000  # scaleb and int() must not round
            return bucket_value(value, m.group(1))
    if rule == "null":
        return ""
    if rule == "redact":
        return "***"
    m = re.fullmatch(r"mask:(first|last)(\d+)", rule)
    if m:
        n = int(m.group(2))
        if len(value) <= n:
            return "*" * len(value)
        hidden = len(value) - n
        if m.group(1) == "first":
            return value[:n] + "*" * hidden
        return "*" * hidden + value[hidden:]
    m = re.fullmatch(r"prefix:(\d+)", rule)
    if m:
        return value[: int(m.group(1))]
    widths = {"date:year": 4, "date:month": 7, "date:day": 10}
    if rule in widths:
        return value[: widths[rule]]
    raise ValueError("the expectation does not know rule %r" % rule)


def csv_field(text):
    """RFC 4180 quoting, only where the field needs it."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_record(fields):
    if len(fields) == 1 and fields[0] == "":
        return '""'  # a lone NULL would otherwise be a blank line
    return ",".join(csv_field(f) for f in fields)


def expected_table(header, rows, rules, row_filter=None, types=None):
    """(header, rows) of data.csv under rules {column: rule} and the
    optional `rows` filter text (types {column: type} then gives the
    column types it compares by): the rows where the filter is TRUE, the
    named, not dropped columns in the dataset's order, each field ruled.
    Pseudonym cells are Pseudonym placeholders."""
    if row_filter is not None:
        keep = compile_filter(row_filter, header, types)
        rows = [r for r in rows if keep(r)]
    shown = [i for i, name in enumerate(header)
             if rules.get(name, "drop") != "drop"]
    out_header = [header[i] for i in shown]
    out_rows = [[apply_rule(rules[header[i]], row[i]) for i in shown]
                for row in rows]
    return out_header, out_rows


def render_table(header, rows):
    lines = [csv_record(header)] + [csv_record(r) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def expected_data_csv(source_bytes, rules):
    """The bytes data.csv must hold for this source under these rules."""
    header, rows = parse_source(source_bytes)
    return render_table(*expected_table(header, rows, rules))


class TokenMap:
    """The pseudonym tokens seen under one agreement, raw value <-> token:
    equal raw values must get equal tokens and different raw values
    different tokens, in every file and revision the map is used for."""

    def __init__(self):
        self.by_raw = {}
        self.by_token = {}

    def check(self, raw, token):
        assert TOKEN_RE.fullmatch(token), \
            "pseudonym of %r is %r, not 16 lowercase hex" % (raw, token)
        seen = self.by_raw.setdefault(raw, token)
        assert seen == token, "%r got tokens %r and %r" % (raw, seen, token)
        other = self.by_token.setdefault(token, raw)
        assert other == raw, "token %r for both %r and %r" % (
            token, other, raw)


def resolve_pseudonyms(want_rows, got_rows, tokens):
    """want_rows with every Pseudonym placeholder replaced by the cell
    got_rows holds there, each such cell checked by tokens (a TokenMap).
    The other cells are left for the caller to compare."""
    assert len(got_rows) == len(want_rows), (len(got_rows), len(want_rows))
    out = []
    for n, (want, got) in enumerate(zip(want_rows, got_rows)):
        assert len(got) == len(want), (n, got, want)
        row = []
        for w, g in zip(want, got):
            if isinstance(w, Pseudonym):
                tokens.check(w.raw, g)
                w = g
            row.append(w)
        out.append(row)
    return out


def check_served_csv(got_bytes, want_header, want_rows, tokens):
    """Check the bytes of a data.csv against the expected table, pseudonym
    placeholders included: tokens must be well formed and consistent
    (tokens, a TokenMap), and every other byte exactly as expected.
    Returns the rows with their tokens."""
    header, got_rows = parse_source(got_bytes)
    assert header == want_header, (header, want_header)
    rows = resolve_pseudonyms(want_rows, got_rows, tokens)
    want = render_table(want_header, rows)
    if got_bytes != want:
        n = next(i for i in range(min(len(want), len(got_bytes)) + 1)
                 if want[i:i + 1] != got_bytes[i:i + 1])
        raise AssertionError("data.csv differs at byte %d: got %r, want %r"
                             % (n, got_bytes[max(0, n - 40):n + 40],
                                want[max(0, n - 40):n + 40]))
    return rows


def expected_size(want_header, want_rows):
    """The size of data.csv for the expected table: a token is always 16
    characters that need no quoting, so the size is known before reading."""
    rows = [[("0" * 16 if isinstance(c, Pseudonym) else c) for c in r]
            for r in want_rows]
    return len(render_table(want_header, rows))


# ---------------------------------------------------------------------------
# The independent expectation of an aggregation view
# ---------------------------------------------------------------------------

GENERALISING = re.compile(r"date:(year|month|day)|bucket:[0-9]+(\.[0-9]+)?"
                          r"|prefix:[1-9][0-9]*")


def group_key_spec(item):
    """(column, rule or None) of a group_by item: "column",
    "column:rule" when what follows the first ':' is a generalising rule,
    or {"column": C, "rule": R}."""
    if isinstance(item, dict):
        return item["column"], item.get("rule")
    col, _, rule = item.partition(":")
    if rule and GENERALISING.fullmatch(rule):
        return col, rule
    return item, None


def key_type(ctype, rule):
    """The type of a group key as written, which decides its order."""
    if rule == "date:year":
        return "int"
    if rule in ("date:month",) or (rule or "").startswith("prefix:"):
        return "string"
    if rule == "date:day":
        return "date"
    return ctype


def number_text(value):
    return canonical_decimal(decimal.Decimal(value))


def key_value(value, ctype, rule):
    """The group key a field gives (None for NULL)."""
    if value == "":
        return None
    if rule is None:
        return number_text(value) if ctype in ("int", "decimal") else value
    out = apply_rule(rule, value)
    return out


def order_key(ctype, value):
    """A sort key for non-NULL values of ctype in SPEC's typed order:
    numbers by value, datetimes by instant (a value without offset read
    as UTC), ties and everything else by the UTF-8 bytes."""
    if ctype in ("int", "decimal"):
        return (decimal.Decimal(value),)
    if ctype == "datetime":
        _, (secs, ns) = _datetime_key(value)
        return (secs, ns, value.encode("utf-8"))
    return (value.encode("utf-8"),)


def null_first(ctype, value):
    return (0,) if value is None else (1, order_key(ctype, value))


def round_half_away(frac, places=6):
    """The Decimal of the Fraction frac rounded half away from zero."""
    scaled = abs(frac) * 10 ** places
    whole = scaled.numerator // scaled.denominator
    if scaled - whole >= fractions.Fraction(1, 2):
        whole += 1
    d = decimal.Decimal(whole).scaleb(-places)
    return -d if frac < 0 else d


def measure_header(m):
    kind, _, col = m.partition(":")
    return kind if kind == "count" else "%s_%s" % (kind, col)


def measure_value(m, rows, index, types):
    """The text of measure m over a group's rows ('' for NULL)."""
    kind, _, col = m.partition(":")
    if kind == "count":
        return str(len(rows))
    vals = [r[index[col]] for r in rows if r[index[col]] != ""]
    ctype = types[col]
    if kind == "count_distinct":
        if ctype in ("int", "decimal"):
            vals = [decimal.Decimal(v) for v in vals]
        return str(len(set(vals)))
    if not vals:
        return ""
    if kind in ("sum", "avg"):
        total = sum(fractions.Fraction(decimal.Decimal(v)) for v in vals)
        if kind == "avg":
            return canonical_decimal(round_half_away(total / len(vals)))
        with decimal.localcontext() as ctx:
            ctx.prec = 10000
            return canonical_decimal(decimal.Decimal(total.numerator) /
                                     total.denominator)
    pick = min if kind == "min" else max
    best = pick(vals, key=lambda v: order_key(ctype, v))
    return number_text(best) if ctype in ("int", "decimal") else best


def expected_view(header, rows, types, view, row_filter=None):
    """(header, rows) of views/<name>.csv for the source (header, rows),
    the column types {column: type}, the view's JSON object and the
    dataset's `rows` filter text."""
    if row_filter is not None:
        keep = compile_filter(row_filter, header, types)
        rows = [r for r in rows if keep(r)]
    index = {name: i for i, name in enumerate(header)}
    keys = [group_key_spec(k) for k in view["group_by"]]
    groups = {}
    for r in rows:
        k = tuple(key_value(r[index[c]], types[c], rule) for c, rule in keys)
        groups.setdefault(k, []).append(r)
    min_group = view.get("min_group", 10)
    entity = view.get("entity")
    shown = []
    for k, grows in groups.items():
        if len(grows) < min_group:
            continue
        if entity is not None:
            ents = {r[index[entity]] for r in grows if r[index[entity]]}
            if len(ents) < min_group:
                continue
        shown.append((k, grows))
    ktypes = [key_type(types[c], rule) for c, rule in keys]
    shown.sort(key=lambda g: [null_first(t, v) for t, v in zip(ktypes, g[0])])
    out_header = [c for c, _ in keys] + [measure_header(m)
                                         for m in view["measures"]]
    out_rows = [["" if v is None else v for v in k] +
                [measure_value(m, grows, index, types)
                 for m in view["measures"]]
                for k, grows in shown]
    return out_header, out_rows


# ---------------------------------------------------------------------------
# An independent evaluator of `rows` filters
# ---------------------------------------------------------------------------

_FILTER_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
""", re.X)

_KEYWORDS = {"and", "or", "not", "in", "is", "null"}


def _filter_tokens(text):
    pos, out = 0, []
    while pos < len(text):
        m = _FILTER_TOKEN.match(text, pos)
        if not m:
            raise ValueError("filter: cannot read %r" % text[pos:])
        pos = m.end()
        kind = m.lastgroup
        value = m.group()
        if kind == "space":
            continue
        if kind == "ident" and value.lower() in _KEYWORDS:
            kind, value = "kw", value.lower()
        elif kind == "ident":
            kind = "column"
        elif kind == "qident":
            kind, value = "column", value[1:-1].replace('""', '"')
        elif kind == "string":
            value = value[1:-1].replace("''", "'")
        out.append((kind, value))
    out.append(("end", None))
    return out


def _datetime_key(text):
    """(has_offset, sort key) of a datetime value: the UTC instant when it
    carries an offset, else the local time written; fraction included."""
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)"
                     r"(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?", text)
    assert m, text
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    ns = int((m.group(7) or "").ljust(9, "0"))
    days = (datetime(y, mo, d) - datetime(1970, 1, 1)).days
    secs = days * 86400 + h * 3600 + mi * 60 + s
    tz = m.group(8)
    if tz is None:
        return False, (secs, ns)
    if tz != "Z":
        off = int(tz[1:3]) * 3600 + int(tz[4:6]) * 60
        secs -= off if tz[0] == "+" else -off
    return True, (secs, ns)


def _compare(ctype, a, b):
    """-1, 0 or 1: the typed order of two non-NULL values of ctype."""
    if ctype in ("int", "decimal"):
        x, y = decimal.Decimal(a), decimal.Decimal(b)
    elif ctype == "datetime":
        (ao, x), (bo, y) = _datetime_key(a), _datetime_key(b)
        if not (ao and bo):
            x, y = _datetime_key(re.sub(r"(Z|[+-]\d\d:\d\d)$", "", a))[1], \
                _datetime_key(re.sub(r"(Z|[+-]\d\d:\d\d)$", "", b))[1]
    else:  # string and date: bytewise (a date's text orders like the date)
        x, y = a.encode("utf-8"), b.encode("utf-8")
    return (x > y) - (x < y)


_CMP = {"=": lambda c: c == 0, "!=": lambda c: c != 0,
        "<>": lambda c: c != 0, "<": lambda c: c < 0,
        "<=": lambda c: c <= 0, ">": lambda c: c > 0, ">=": lambda c: c >= 0}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def compile_filter(text, header, types):
    """A predicate on source rows (lists of fields, '' is NULL) that is
    True where the `rows` filter text is TRUE under SQL's three-valued
    logic (None is UNKNOWN).  types maps each column to its type."""
    toks = _filter_tokens(text)
    index = {name: i for i, name in enumerate(header)}
    at = [0]

    def peek():
        return toks[at[0]]

    def take(kind=None, value=None):
        tok = toks[at[0]]
        if (kind and tok[0] != kind) or (value and tok[1] != value):
            raise ValueError("filter: want %s %s, got %r" % (kind, value, tok))
        at[0] += 1
        return tok

    def literal():
        kind, value = take()
        assert kind in ("number", "string"), (kind, value)
        return value

    def predicate():
        kind, value = peek()
        if kind in ("number", "string"):  # value op column
            lit = literal()
            op = take("op")[1]
            col = take("column")[1]
            return cmp_node(col, _FLIP.get(op, op), lit)
        col = take("column")[1]
        i, ctype = index[col], types[col]
        kind, value = peek()
        if kind == "kw" and value == "is":
            take()
            negate = peek() == ("kw", "not")
            if negate:
                take()
            take("kw", "null")
            return lambda r: (r[i] == "") != negate
        negate = peek() == ("kw", "not")
        if negate:
            take()
        if peek() == ("kw", "in"):
            take()
            take("punct", "(")
            lits = [literal()]
            while peek() == ("punct", ","):
                take()
                lits.append(literal())
            take("punct", ")")

            def node(r):
                if r[i] == "":
                    return None
                return any(_compare(ctype, r[i], x) == 0
                           for x in lits) != negate
            return node
        assert not negate, "'not' before an operator"
        op = take("op")[1]
        return cmp_node(col, op, literal())

    def cmp_node(col, op, lit):
        i, ctype, holds = index[col], types[col], _CMP[op]
        return lambda r: None if r[i] == "" else holds(_compare(ctype, r[i],
                                                                lit))

    def factor():
        if peek() == ("kw", "not"):
            take()
            inner = factor()
            return lambda r: (lambda v: None if v is None else not v)(inner(r))
        if peek() == ("punct", "("):
            take()
            inner = expr()
            take("punct", ")")
            return inner
        return predicate()

    def term():
        parts = [factor()]
        while peek() == ("kw", "and"):
            take()
            parts.append(factor())

        def node(r):
            vals = [p(r) for p in parts]
            if False in vals:
                return False
            return None if None in vals else True
        return node

    def expr():
        parts = [term()]
        while peek() == ("kw", "or"):
            take()
            parts.append(term())

        def node(r):
            vals = [p(r) for p in parts]
            if True in vals:
                return True
            return None if None in vals else False
        return node

    tree = expr()
    take("end")
    return lambda r: tree(r) is True


def rfc3339_epoch(text):
    """Seconds since the epoch of an RFC 3339 time such as
    2026-01-02T03:04:05Z or 2026-01-02T03:04:05.123+08:00."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def rfc3339(ts):
    """A whole-second RFC 3339 UTC time for the epoch seconds ts."""
    return datetime.fromtimestamp(int(ts), timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S+00:00")


# ---------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------

def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 300)
    return subprocess.run([str(c) for c in cmd], **kw)


def gen_visits(path, rows, seed=1):
    with open(path, "wb") as f:
        subprocess.run([GEN_VISITS, "--rows", str(rows), "--seed", str(seed)],
                       stdout=f, check=True, timeout=300)
    return Path(path)


def gen_visits_bytes(path, nbytes, seed=1):
    with open(path, "wb") as f:
        subprocess.run([GEN_VISITS, "--bytes", str(nbytes), "--seed",
                        str(seed)], stdout=f, check=True, timeout=300)
    return Path(path)


def gen_bad(path, kind):
    """Write gen-visits' file with one defect of kind; return its line."""
    with open(path, "wb") as f:
        res = subprocess.run([GEN_VISITS, "--with-bad", kind], stdout=f,
                             stderr=subprocess.PIPE, text=True, check=True,
                             timeout=60)
    m = re.search(r"bad line: (\d+)", res.stderr)
    assert m, res.stderr
    return int(m.group(1))


def assert_one_line_error(res, rc, prog, *needles):
    """res failed with exit code rc and said so in exactly one stderr line
    that starts with 'prog: ' and contains every needle."""
    assert res.returncode == rc, (res.returncode, res.stdout, res.stderr)
    err = res.stderr
    assert err.endswith("\n") and err.count("\n") == 1, \
        "want one line on stderr, got %r" % err
    assert err.startswith(prog + ": "), err
    for needle in needles:
        assert needle in err, "%r not in %r" % (needle, err)
    return err.rstrip("\n")


def agreement(agr_id, datasets, uids=(0,), max_level=4,
              valid_from="2025-01-01T00:00:00+08:00",
              valid_until="2099-01-01T00:00:00+08:00", **extra):
    """An agreement document; datasets maps a dataset id to its column
    rules."""
    doc = {
        "id": agr_id,
        "grantee": "govfs mount tests",
        "scenario": "checking what real tools see",
        "uids": list(uids),
        "max_level": max_level,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "datasets": [{"dataset": ds, "records": True, "columns": dict(cols)}
                     for ds, cols in datasets.items()],
    }
    doc.update(extra)
    return doc


class Home:
    """A govfs home and its key, created with `govfsctl init`."""

    def __init__(self, base, name="home"):
        self.base = Path(base)
        self.dir = self.base / name
        self.key = self.base / (name + ".key")
        self.work = self.base / (name + ".files")
        self.work.mkdir()
        self._n = 0
        res = self.ctl("init")
        assert res.returncode == 0, res.stderr

    def ctl_cmd(self, *args):
        return [GOVFSCTL, *args, "--home", self.dir, "--key-file", self.key]

    def ctl(self, *args, **kw):
        kw.setdefault("timeout", 120)
        return run(self.ctl_cmd(*args), text=True, **kw)

    def ok(self, *args):
        res = self.ctl(*args)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        return res

    def json(self, *args):
        return json.loads(self.ok(*args, "--json").stdout)

    def add(self, ds_id, csv_path, schema=None):
        args = ["dataset", "add", ds_id, "--file", csv_path]
        if schema is not None:
            if isinstance(schema, dict):
                schema = self.write_json(schema, ds_id + ".schema")
            args += ["--schema", schema]
        return self.ok(*args)

    def write_json(self, doc, stem):
        self._n += 1
        path = self.work / ("%s.%d.json" % (stem, self._n))
        path.write_text(json.dumps(doc, ensure_ascii=False, indent=1))
        return path

    def apply(self, doc, expect_rc=0):
        res = self.ctl("agreement", "apply", self.write_json(doc, doc["id"]))
        assert res.returncode == expect_rc, (res.stdout, res.stderr)
        return res

    def datasets(self):
        return self.json("dataset", "list")

    def audit_export(self, *args):
        """`govfsctl audit export ARGS` parsed: one dict per line."""
        res = self.ok("audit", "export", *args)
        return [json.loads(line) for line in res.stdout.splitlines()]

    def copy(self, base, name="home"):
        """A copy of this home's directory under base, sharing its key
        file, for a test that damages the copy.  Nothing may be writing
        to this home meanwhile."""
        other = Home.__new__(Home)
        other.base = Path(base)
        other.dir = other.base / name
        other.key = self.key
        other.work = other.base / (name + ".files")
        other.work.mkdir()
        other._n = 0
        shutil.copytree(self.dir, other.dir, symlinks=True)
        return other

    def agreements(self):
        return self.json("agreement", "list")


# ---------------------------------------------------------------------------
# Mounts
# ---------------------------------------------------------------------------

# Every daemon and mount point the suite started, for the last-resort
# clean-up at the end of the session.
STARTED = []


def _unescape_mountinfo(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_fstype(path):
    """The file system type mounted on path, or None."""
    path = os.path.realpath(path) if os.path.lexists(path) else str(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if _unescape_mountinfo(fields[4]) == path:
                sep = fields.index("-")
                return fields[sep + 1]
    return None


def is_mounted(path):
    return mount_fstype(path) is not None


def wait_for(predicate, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def force_unmount(path):
    """Unmount path however it can be done; True if nothing is mounted."""
    if not is_mounted(path):
        return True
    run(["fusermount3", "-u", path], timeout=30)
    if is_mounted(path):
        run(["fusermount3", "-u", "-z", path], timeout=30)
    return wait_for(lambda: not is_mounted(path), 5)


def stop_process(proc, timeout=10):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)


class Mount:
    def __init__(self, path, proc, errlog):
        self.path = Path(path)
        self.proc = proc
        self.errlog = errlog

    def __truediv__(self, rel):
        return self.path / rel

    def stderr(self):
        return Path(self.errlog).read_text(errors="replace")


def new_mountpoint(base, name="mnt"):
    """A fresh directory other uids can traverse to."""
    base = Path(base)
    n = 0
    while (base / ("%s%d" % (name, n))).exists():
        n += 1
    mp = base / ("%s%d" % (name, n))
    mp.mkdir(mode=0o755)
    os.chmod(mp, 0o755)
    return mp


def start_govfs(home, agr_id, mountpoint, extra=()):
    """Start a foreground govfs and wait until it is mounted."""
    errlog = Path(str(mountpoint) + ".govfs.stderr")
    with open(errlog, "wb") as err:
        proc = subprocess.Popen(
            [GOVFS, "--home", str(home.dir), "--key-file", str(home.key),
             "--agreement", agr_id, "-f", *extra, str(mountpoint)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    STARTED.append((proc, Path(mountpoint)))
    up = wait_for(lambda: is_mounted(mountpoint) or proc.poll() is not None,
                  15)
    if not is_mounted(mountpoint):
        stop_process(proc, 1)
        raise AssertionError("govfs did not mount %s (exit %s): %s" % (
            mountpoint, proc.returncode, errlog.read_text()))
    assert up
    return Mount(mountpoint, proc, errlog)


def stop_govfs(m):
    """Unmount m and wait for its daemon; the daemon's exit code."""
    force_unmount(m.path)
    return stop_process(m.proc)


@contextlib.contextmanager
def mounted(home, agr_id, mountpoint=None, extra=()):
    """A live foreground mount of agr_id; always unmounted afterwards."""
    mp = mountpoint or new_mountpoint(home.base)
    m = start_govfs(home, agr_id, mp, extra)
    try:
        yield m
    finally:
        stop_govfs(m)


def cleanup_everything():
    for proc, mp in STARTED:
        force_unmount(mp)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            stop_process(proc, 5)
    STARTED.clear()


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def read_all(path, chunk=1 << 20):
    """Read path to EOF with plain read(2) calls."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while True:
            b = os.read(fd, chunk)
            if not b:
                return b"".join(parts)
            parts.append(b)
    finally:
        os.close(fd)


def read_until_error(path, chunk=65536):
    """Read path with read(2) until EOF or an error: (bytes, errno|None)."""
    fd = os.open(path, os.O_RDONLY)
    parts = []
    try:
        while True:
            try:
                b = os.read(fd, chunk)
            except OSError as e:
                return b"".join(parts), e.errno
            if not b:
                return b"".join(parts), None
            parts.append(b)
    finally:
        os.close(fd)


def errno_of(fn, *args):
    """Call fn(*args): 'ok' or the errno name it failed with."""
    try:
        fn(*args)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    return "ok"


# A probe run as another uid: takes a JSON list of [op, path] and prints a
# JSON list of results, each "ok:<detail>" or an errno name.
PROBE = r"""
import errno, hashlib, json, os, sys
out = []
for op, path in json.loads(sys.argv[1]):
    try:
        if op == "stat":
            r = str(os.stat(path).st_size)
        elif op == "lstat":
            r = str(os.lstat(path).st_size)
        elif op == "listdir":
            r = ",".join(sorted(os.listdir(path)))
        elif op == "open":
            os.close(os.open(path, os.O_RDONLY))
            r = ""
        elif op == "read":
            with open(path, "rb") as f:
                r = hashlib.sha256(f.read()).hexdigest()
        elif op == "opendir":
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            os.close(fd)
            r = ""
        elif op == "statvfs":
            r = str(os.statvfs(path).f_namemax)
        elif op == "getxattr":
            r = os.getxattr(path, "user.probe").hex()
        elif op == "listxattr":
            r = ",".join(os.listxattr(path))
        elif op == "access":
            if not os.access(path, os.R_OK):
                raise OSError(errno.EACCES, "access")
            r = ""
        else:
            raise SystemExit("unknown op " + op)
        out.append("ok:" + r)
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
print(json.dumps(out))
"""


def run_as(uid, cmd, **kw):
    """Run cmd as uid (and its own gid, no supplementary groups)."""
    return run(cmd, user=uid, group=uid, extra_groups=[], text=True, **kw)


def probe_as(uid, ops):
    res = run_as(uid, [PYTHON, "-c", PROBE, json.dumps(
        [[op, str(p)] for op, p in ops])])
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)
