"""
Hostile names: dataset ids, agreement ids, view names and mount points
holding '..', '/', NUL, control bytes, overlong text, Unicode look-alikes
or a leading '-'.  Each is refused with one line on stderr (exit 1, or 2
where getopt takes it for an option) and changes nothing, or is harmless:
a mount point with odd bytes mounts, serves and unmounts like any other.
"""
import json
import os

import pytest

import govfs_testlib as lib

HOSTILE_IDS = [
    "..",
    "../penguins",
    "penguins/..",
    "a/b",
    "/etc/passwd",
    "p" * 65,
    "\uff50enguins",         # fullwidth p
    "penguins\u200b",        # zero-width space
    "pengu\u0131ns",         # dotless i
    "Penguins",
    "pen guins",
    "pen\nguins",
    "pen\x1b[2Jguins",       # a terminal escape
    "",
]

IDS = [repr(i)[1:-1][:24] or "empty" for i in HOSTILE_IDS]


class Data:
    pass


@pytest.fixture(scope="module")
def data(module_dir):
    d = Data()
    d.dir = module_dir
    d.home = home = lib.Home(module_dir)
    home.add("penguins", lib.REPO / "demo" / "penguins.csv",
             lib.REPO / "demo" / "penguins.schema.json")
    d.doc = lib.agreement("agr-h", {"penguins": {"species": "keep"}})
    home.apply(d.doc)
    return d


def tree(directory):
    """Every path under directory with its size, for 'nothing changed'."""
    out = {}
    for root, dirs, names in os.walk(directory):
        for name in dirs + names:
            path = os.path.join(root, name)
            st = os.lstat(path)
            out[path] = st.st_size if os.path.isfile(path) else None
    return out


@pytest.fixture
def unchanged(data):
    before = (data.home.datasets(), data.home.agreements(),
              tree(data.home.dir))
    yield
    after = (data.home.datasets(), data.home.agreements(),
             tree(data.home.dir))
    assert after == before


def ctl(data, *args):
    """govfsctl with --home and --key-file first, so that "--" in args
    ends the options for good."""
    return lib.run([lib.GOVFSCTL, "--home", data.home.dir, "--key-file",
                    data.home.key, *args], text=True)


def one_line(res, rc, *needles):
    err = lib.assert_one_line_error(res, rc, "govfsctl", *needles)
    assert res.stdout == ""
    return err


@pytest.mark.parametrize("bad", HOSTILE_IDS, ids=IDS)
def test_dataset_ids(data, unchanged, bad):
    csv = lib.REPO / "demo" / "penguins.csv"
    for args in (["dataset", "add", "--file", csv, "--", bad],
                 ["dataset", "show", "--", bad],
                 ["dataset", "grade", "--", bad, "species", "1"],
                 ["dataset", "drop", "--", bad]):
        one_line(ctl(data, *args), 1, "dataset id '")


@pytest.mark.parametrize("bad", HOSTILE_IDS, ids=IDS)
def test_agreement_ids_on_the_command_line(data, unchanged, bad):
    for args in (["agreement", "show", "--", bad],
                 ["agreement", "suspend", "--reason", "x", "--", bad],
                 ["agreement", "resume", "--", bad],
                 ["agreement", "revoke", "--reason", "x", "--", bad]):
        one_line(ctl(data, *args), 1, "agreement id '")


def test_leading_dash_is_an_option(data, unchanged):
    """Without '--', a leading '-' is taken for an option: a usage error,
    never an id."""
    for args in (["dataset", "show", "-penguins"],
                 ["dataset", "drop", "-rf"],
                 ["agreement", "revoke", "-agr-h", "--reason", "x"]):
        res = data.home.ctl(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr.count("\n") == 1
    one_line(ctl(data, "dataset", "show", "--", "-penguins"), 1,
             "dataset id '-penguins'")


def test_column_name_quoted(data, unchanged):
    res = data.home.ctl("dataset", "grade", "penguins", "spe\ncies\x1b", "1")
    one_line(res, 1, "no column 'spe\\x0acies\\x1b'")


def apply_doc(data, doc):
    path = data.dir / "hostile.json"
    path.write_text(json.dumps(doc, ensure_ascii=True))
    return data.home.ctl("agreement", "apply", path)


@pytest.mark.parametrize("bad", HOSTILE_IDS + ["a\x00b"],
                         ids=IDS + ["nul"])
def test_agreement_id_in_file(data, unchanged, bad):
    doc = dict(data.doc, id=bad)
    # JSON text cannot hold a NUL: the parser says where it is.
    where = "\\u0000 is not allowed" if "\x00" in bad else "$.id"
    one_line(apply_doc(data, doc), 1, "hostile.json", where)


@pytest.mark.parametrize("bad", HOSTILE_IDS + ["a\x00b"],
                         ids=IDS + ["nul"])
def test_dataset_id_in_file(data, unchanged, bad):
    doc = dict(data.doc, datasets=[dict(data.doc["datasets"][0],
                                        dataset=bad)])
    where = "\\u0000 is not allowed" if "\x00" in bad else "$.datasets[0]"
    one_line(apply_doc(data, doc), 1, "hostile.json", where)


@pytest.mark.parametrize("bad", [
    "..", ".hidden", "a/b", "../../etc/x", "-x", "v" * 201, "c\u043est",
    "a\nb", "", "a b"])
def test_view_names(data, unchanged, bad):
    """A view name becomes the file name views/<name>.csv."""
    view = {"name": bad, "group_by": ["species"], "measures": ["count"]}
    ds = dict(data.doc["datasets"][0], views=[view])
    res = apply_doc(data, dict(data.doc, datasets=[ds]))
    one_line(res, 1, "hostile.json", "$.datasets[0].views[0].name")


def govfs(data, agr, mountpoint, *extra):
    return lib.run([lib.GOVFS, "--home", data.home.dir, "--key-file",
                    data.home.key, "--agreement", agr, "-f", *extra,
                    mountpoint], text=True, timeout=30)


@pytest.mark.parametrize("bad", [
    "../bystander", "../../bystander", "..", "a/b", "a" * 65,
    "\uff41gr-h", "agr-h\n", "Agr-h"])
def test_govfs_agreement_id(data, bad):
    """The id names the quota counter file: a path in it must never open,
    create or truncate a file anywhere."""
    bystander = data.dir / "bystander"
    bystander.write_bytes(b"0123456789abcdef")
    (data.home.dir / "bystander").write_bytes(b"0123456789abcdef")
    os.chmod(data.home.dir / "bystander", 0o600)
    try:
        before = tree(data.dir)
        mp = lib.new_mountpoint(data.dir)
        res = govfs(data, bad, mp)
        err = lib.assert_one_line_error(res, 1, "govfs", "agreement id '")
        assert "\n" not in err
        assert not lib.is_mounted(mp)
        os.rmdir(mp)
        assert tree(data.dir) == before
    finally:
        bystander.unlink()
        (data.home.dir / "bystander").unlink()


@pytest.mark.parametrize("name", [
    "mnt space", "mnt\nnewline", "mnt\ttab", "mnt-\u00fcn\u00efc\u00f8de",
    "-dash", "mnt\\040escaped"])
def test_odd_mountpoint_names_are_harmless(data, name):
    """Mounted, served, seen as mounted (a second mount is refused) and
    unmounted, whatever bytes the name holds."""
    mp = data.dir / name
    mp.mkdir(mode=0o755)
    try:
        with lib.mounted(data.home, "agr-h", mp) as m:
            assert lib.mount_fstype(mp) == "fuse.govfs"
            assert lib.read_all(m / "penguins" / "data.csv").startswith(
                b"species\n")
            res = govfs(data, "agr-h", mp)
            err = lib.assert_one_line_error(res, 1, "govfs",
                                            "already a mount point")
            assert "\n" not in err
        assert not lib.is_mounted(mp)
    finally:
        os.rmdir(mp)


def test_mountpoint_over_or_in_the_home(data):
    home = data.home.dir
    for mp, needle in ((home, "would hide the home"),
                       (home.parent, "would hide the home"),
                       (home / "store", "inside the home"),
                       (home / "tmp" / ".." / "run", "inside the home")):
        res = govfs(data, "agr-h", mp)
        lib.assert_one_line_error(res, 1, "govfs", needle)
        assert not lib.is_mounted(os.path.realpath(mp))
    res = govfs(data, "agr-h", "/")
    lib.assert_one_line_error(res, 1, "govfs", "/: ")
    data.home.ok("dataset", "list")


def test_mountpoint_paths_resolved(data):
    """'..' and a link are resolved: the mount lands on the real place."""
    real = lib.new_mountpoint(data.dir, "real")
    link = data.dir / "link-to-real"
    os.symlink(real, link)
    dotted = data.dir / "x" / ".." / real.name
    (data.dir / "x").mkdir()
    try:
        for mp in (link, dotted):
            m = lib.start_govfs(data.home, "agr-h", mp)
            try:
                assert lib.mount_fstype(real) == "fuse.govfs"
            finally:
                # fusermount3 -u does not follow a link: name the place.
                assert lib.force_unmount(real)
                lib.stop_process(m.proc)
    finally:
        os.unlink(link)
        os.rmdir(data.dir / "x")


def test_overlong_mountpoint(data):
    mp = data.dir / ("m" * 300) / ("n" * 300)
    res = govfs(data, "agr-h", mp)
    lib.assert_one_line_error(res, 1, "govfs", "File name too long")
