"""
Text that reaches govfs from outside (a CSV's column names, an agreement's
grantee, an admin's --reason, an analyst's process name) may hold control
bytes and bytes that are not UTF-8.  Wherever govfs shows such text to a
person, one record stays one line and no line can be forged: errors,
`audit tail`, `agreement show`, README.txt write control characters,
bytes that are not UTF-8 and '\\' as \\xHH.
`audit export` keeps every key, writing bytes that are not UTF-8 as \\xHH.
"""
import json
import os
import shutil
import subprocess

import pytest

import govfs_testlib as lib

FORGED = "State:     active"


class Data:
    pass


@pytest.fixture(scope="module")
def data(module_dir):
    d = Data()
    d.dir = module_dir
    d.home = home = lib.Home(module_dir)
    home.add("visits", lib.gen_visits(module_dir / "v.csv", 100))
    doc = lib.agreement("agr-cb", {"visits": {"district": "keep"}})
    doc["grantee"] = "Grantee Ltd\n" + FORGED
    home.apply(doc)
    return d


def ctl_bytes(home, *args):
    """govfsctl with arguments that may be bytes (not UTF-8)."""
    cmd = [os.fsencode(str(c)) if not isinstance(c, bytes) else c
           for c in home.ctl_cmd(*args)]
    return subprocess.run(cmd, capture_output=True, timeout=120)


def test_csv_error_names_a_column_on_one_line(data):
    """SPEC: every error is one line, even when it names a column whose
    name (any UTF-8 text) holds a newline."""
    csv = data.dir / "nl.csv"
    csv.write_bytes(b'"a\nb",c\nx,1\n')
    schema = data.home.write_json({"columns": [
        {"name": "a\nb", "type": "int", "level": 1},
        {"name": "c", "type": "int", "level": 1}]}, "nl.schema")
    res = data.home.ctl("dataset", "add", "nl", "--file", csv,
                        "--schema", schema)
    lib.assert_one_line_error(res, 1, "govfsctl", "line 3", "a\\x0ab",
                              "'x' is not a valid int")


def test_reason_with_newline_stays_one_line(data):
    home = data.home
    reason = "breach\n" + FORGED
    home.ok("agreement", "suspend", "agr-cb", "--reason", reason)
    try:
        tail = home.ok("audit", "tail", "-n", "1").stdout
        show = home.ok("agreement", "show", "agr-cb").stdout
        with lib.mounted(home, "agr-cb") as m:
            readme = lib.read_all(m / "README.txt").decode()
    finally:
        home.ok("agreement", "resume", "agr-cb")
    assert [l for l in readme.splitlines() if l.startswith("State:")] == \
        ["State:     suspended"], readme
    assert "breach\\x0a" + FORGED in readme, readme
    assert tail.count("\n") == 1 and "breach\\x0a" + FORGED in tail, tail
    assert "breach\\x0a" + FORGED in show, show
    # The log keeps the reason as given.
    suspends = [r for r in home.audit_export("--agreement", "agr-cb")
                if r["event"] == "agreement.suspend"]
    assert suspends[-1]["reason"] == reason


def test_grantee_with_newline_cannot_forge_readme(data):
    home = data.home
    with lib.mounted(home, "agr-cb") as m:
        readme = lib.read_all(m / "README.txt").decode()
    assert [l for l in readme.splitlines() if l.startswith("State:")] == \
        ["State:     active"], readme
    assert "Grantee:   Grantee Ltd\\x0a" + FORGED + "\n" in readme, readme
    show = home.ok("agreement", "show", "agr-cb").stdout
    assert "grantee    Grantee Ltd\\x0a" + FORGED + "\n" in show, show
    assert home.json("agreement", "show", "agr-cb")["grantee"] == \
        "Grantee Ltd\n" + FORGED


def test_export_keeps_text_that_is_not_utf8(data):
    """SPEC: audit export writes every key (null only where it does not
    apply): a reason or a process name that is not UTF-8 is kept, its
    bad bytes written \\xHH, and audit tail stays one line per record."""
    home = data.home
    res = ctl_bytes(home, "agreement", "suspend", "agr-cb", "--reason",
                    b"bad \xff byte")
    assert res.returncode == 0, res.stderr
    home.ok("agreement", "resume", "agr-cb")
    reader = data.dir / os.fsdecode(b"rd\n\xfe")
    shutil.copy("/bin/cat", reader)
    with lib.mounted(home, "agr-cb") as m:
        res = subprocess.run([os.fsencode(reader),
                              os.fsencode(m / "README.txt")],
                             capture_output=True, timeout=60)
        assert res.returncode == 0, res.stderr
    records = home.audit_export("--agreement", "agr-cb")
    for r in records:
        assert set(r) == set(json.loads(json.dumps(records[0]))), r
    assert any(r["event"] == "agreement.suspend"
               and r["reason"] == "bad \\xff byte" for r in records)
    opens = [r for r in records if r["event"] == "open"
             and r["path"] == "/README.txt" and r["comm"] == "rd\n\\xfe"]
    assert opens, [r for r in records if r["event"] == "open"]
    tail = ctl_bytes(home, "audit", "tail", "-n", "200", "--agreement",
                     "agr-cb").stdout
    lines = tail.split(b"\n")
    assert lines[-1] == b""
    assert all(line.split(b" ")[0].isdigit() for line in lines[:-1]), tail
    assert b" rd\\x0a\\xfe " in tail, tail
