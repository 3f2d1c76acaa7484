"""
SPEC: `agreement apply --dry-run` prints what would change, and changes
nothing.  Every term a revision can change is named with its old and new
value: grantee, scenario, uids, max_level, validity, quota, and per dataset
records, the row filter, column rules and views added, changed or
removed.  A real apply prints the same plan, as done.
"""
import copy

import pytest

import govfs_testlib as lib

BASE = {
    "id": "agr-plan", "grantee": "Grantee A", "scenario": "Scenario A",
    "uids": [0], "max_level": 2,
    "valid_from": "2025-01-01T00:00:00Z",
    "valid_until": "2099-01-01T00:00:00Z",
    "datasets": [{"dataset": "penguins",
                  "columns": {"species": "keep", "island": "keep"},
                  "views": [{"name": "by_island", "group_by": ["island"],
                             "measures": ["count"], "min_group": 2},
                            {"name": "gone", "group_by": ["species"],
                             "measures": ["count"], "min_group": 2}]}],
}


@pytest.fixture(scope="module")
def home(module_dir):
    home = lib.Home(module_dir)
    home.add("penguins", lib.REPO / "demo" / "penguins.csv",
             lib.REPO / "demo" / "penguins.schema.json")
    res = home.apply(BASE)
    assert "agreement agr-plan: created" in res.stdout, res.stdout
    return home


def revised():
    doc = copy.deepcopy(BASE)
    doc.update(grantee="Grantee B", scenario="Scenario B", uids=[0, 1000],
               max_level=3, valid_until="2098-06-01T00:00:00+08:00",
               quota={"bytes_per_day": 5000000})
    ds = doc["datasets"][0]
    ds["rows"] = "island = 'Dream'"
    ds["columns"]["island"] = "redact"
    ds["views"] = [dict(ds["views"][0], min_group=3),
                   {"name": "fresh", "group_by": ["sex"],
                    "measures": ["count"], "min_group": 2}]
    return doc


CHANGES = [
    "  grantee: Grantee A -> Grantee B",
    "  scenario: Scenario A -> Scenario B",
    "  uids: 0 -> 0 1000",
    "  max_level: 2 -> 3",
    "  valid_until: 2099-01-01T00:00:00Z -> 2098-06-01T00:00:00+08:00",
    "  quota: none -> 5000000 bytes per day",
    "    rows: (all) -> island = 'Dream'",
    "    column island: keep -> redact",
    "    views/by_island.csv: changed",
    "    views/fresh.csv: added",
    "    views/gone.csv: removed",
]


def test_dry_run_names_every_change(home):
    before = home.agreements()
    res = home.ok("agreement", "apply", "--dry-run",
                  home.write_json(revised(), "revised"))
    lines = res.stdout.splitlines()
    assert lines[0] == "agreement agr-plan: would make a new revision"
    for line in CHANGES:
        assert line in lines, (line, res.stdout)
    assert "  valid_from" not in res.stdout
    assert lines[-1] == "(dry run: nothing changed)"
    assert home.agreements() == before


def test_apply_prints_the_plan_as_done(home):
    res = home.ok("agreement", "apply", home.write_json(revised(), "rev"))
    lines = res.stdout.splitlines()
    assert lines[0] == "agreement agr-plan: new revision"
    for line in CHANGES:
        assert line in lines, (line, res.stdout)
    assert lines[-1] == "agreement agr-plan: revision 2 applied"


def test_dry_run_names_records_and_uid_order(home):
    """records: false is named; the same uids in another order are not a
    change of uids."""
    home.apply(BASE)
    doc = copy.deepcopy(BASE)
    doc["datasets"][0]["records"] = False
    res = home.ok("agreement", "apply", "--dry-run",
                  home.write_json(doc, "views-only"))
    assert "    records: true -> false" in res.stdout.splitlines(), res.stdout
    doc = copy.deepcopy(BASE)
    doc.update(uids=[0, 1000])
    base2 = home.write_json(doc, "two-uids")
    doc.update(uids=[1000, 0])
    res = home.ok("agreement", "apply", "--dry-run",
                  home.write_json(doc, "two-uids-swapped"))
    assert "  uids: 0 -> 1000 0" in res.stdout, res.stdout
    home.ok("agreement", "apply", base2)
    res = home.ok("agreement", "apply", "--dry-run",
                  home.write_json(doc, "two-uids-swapped"))
    assert "uids" not in res.stdout, res.stdout
