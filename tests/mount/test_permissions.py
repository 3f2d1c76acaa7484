"""
govfs and govfsctl refuse to start when the home, the key file or the
databases are open to anyone but their owner, or when a symbolic link
stands where a file or folder of the home is expected: one line naming
the path and what is wrong with it (its mode), exit 1, nothing mounted.
"""
import os
import stat

import pytest

import govfs_testlib as lib


@pytest.fixture(scope="module")
def home(module_dir):
    home = lib.Home(module_dir)
    home.add("penguins", lib.REPO / "demo" / "penguins.csv",
             lib.REPO / "demo" / "penguins.schema.json")
    home.apply(lib.agreement("agr-perm", {"penguins": {"species": "keep"}}))
    return home


def both_refuse(home, path, *needles):
    """govfsctl and govfs each refuse in one line naming path."""
    res = home.ctl("dataset", "list")
    lib.assert_one_line_error(res, 1, "govfsctl", "%s: " % path, *needles)
    assert res.stdout == ""
    mp = lib.new_mountpoint(home.base)
    res = lib.run([lib.GOVFS, "--home", home.dir, "--key-file", home.key,
                   "--agreement", "agr-perm", "-f", mp], text=True,
                  timeout=30)
    lib.assert_one_line_error(res, 1, "govfs", "%s: " % path, *needles)
    assert not lib.is_mounted(mp)


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


# (path under the home, whether it is created for the test, bad mode)
CASES = [
    ("", False, 0o755),
    ("", False, 0o701),
    ("store", False, 0o750),
    ("tmp", False, 0o707),
    ("run", False, 0o711),
    ("quota", False, 0o770),
    ("catalog.db", False, 0o644),
    ("catalog.db", False, 0o620),
    ("audit.db", False, 0o640),
    ("audit.key", False, 0o604),
    ("lock", False, 0o644),
    ("catalog.db-wal", True, 0o644),
    ("catalog.db-shm", True, 0o640),
    ("audit.db-wal", True, 0o604),
    ("audit.db-shm", True, 0o666),
]


@pytest.mark.parametrize("sub, create, mode", CASES,
                         ids=["%s-%o" % (c[0] or "home", c[2]) for c in CASES])
def test_home_open_to_others(home, sub, create, mode):
    path = home.dir / sub if sub else home.dir
    if create:
        path.touch(mode=0o600)
    good = mode_of(path)
    want = "0700" if path.is_dir() else "0600"
    try:
        os.chmod(path, mode)
        both_refuse(home, str(path).rstrip("/"),
                    "mode %04o: open to group or others (want %s)"
                    % (mode, want))
    finally:
        os.chmod(path, good)
        if create:
            path.unlink()
    home.ok("dataset", "list")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_open_to_others(home, mode):
    try:
        os.chmod(home.key, mode)
        both_refuse(home, str(home.key),
                    "mode %04o: accessible to group or others (want 0600)"
                    % mode)
    finally:
        os.chmod(home.key, 0o600)
    home.ok("dataset", "list")


def test_key_directory_open_to_others(home):
    key_dir = home.key.parent
    good = mode_of(key_dir)
    try:
        os.chmod(key_dir, 0o777)
        both_refuse(home, str(home.key), "its directory %s has mode 0777"
                    % key_dir)
    finally:
        os.chmod(key_dir, good)
    home.ok("dataset", "list")


@pytest.mark.parametrize("sub", ["store", "tmp", "catalog.db", "audit.db",
                                 "audit.key"])
def test_symlink_in_home(home, module_dir, sub):
    """The same content, reached through a link: refused all the same."""
    path = home.dir / sub
    moved = module_dir / ("moved-" + sub)
    os.rename(path, moved)
    try:
        os.symlink(moved, path)
        both_refuse(home, str(path), "a symbolic link (refused: want a %s)"
                    % ("directory" if moved.is_dir() else "regular file"))
    finally:
        os.unlink(path)
        os.rename(moved, path)
    home.ok("dataset", "list")


def test_symlinked_key(home, module_dir):
    link = module_dir / "link.key"
    os.symlink(home.key, link)
    res = lib.run([lib.GOVFSCTL, "dataset", "list", "--home", home.dir,
                   "--key-file", link], text=True)
    lib.assert_one_line_error(res, 1, "govfsctl", str(link),
                              "a symbolic link")


def test_store_file_symlink_gives_eio(home, module_dir):
    """A store file replaced by a link to itself is never followed: the
    mount refuses to load it."""
    (name,) = os.listdir(home.dir / "store")
    path = home.dir / "store" / name
    moved = module_dir / name
    os.rename(path, moved)
    try:
        os.symlink(moved, path)
        mp = lib.new_mountpoint(home.base)
        res = lib.run([lib.GOVFS, "--home", home.dir, "--key-file", home.key,
                       "--agreement", "agr-perm", "-f", mp], text=True,
                      timeout=30)
        lib.assert_one_line_error(res, 1, "govfs", "penguins")
        assert not lib.is_mounted(mp)
    finally:
        os.unlink(path)
        os.rename(moved, path)
    with lib.mounted(home, "agr-perm") as m:
        assert lib.read_all(m / "penguins" / "data.csv").startswith(
            b"species\n")
