"""
Fixtures of the mount test suite.  The helpers themselves (govfsctl and
govfs drivers, the independent data.csv expectation) live in
govfs_testlib.py so that test modules can import them by name.

Every directory the suite makes is under one /tmp/govfs-mount-* directory
(mode 0755, so that a probe running as another uid can reach the mount
points); every mount is unmounted by the test that made it, and whatever a
failed test left behind is unmounted after it, and at the end of the run.
"""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import govfs_testlib as lib


def _check_environment():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("mount tests need root and /dev/fuse")
    missing = [b for b in (lib.GOVFS, lib.GOVFSCTL, lib.GEN_VISITS,
                           lib.AUDIT_BACKDATE)
               if not os.access(b, os.X_OK)]
    if missing:
        pytest.exit("mount tests: missing binaries %s (build first, or set "
                    "GOVFS_BIN, GOVFSCTL_BIN, GEN_VISITS_BIN, "
                    "AUDIT_BACKDATE_BIN)" % missing, 2)


def _mounts_under(base):
    base = str(base) + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = lib._unescape_mountinfo(line.split()[4])
            if mp.startswith(base):
                found.append(mp)
    return found


@pytest.fixture(scope="session")
def base_dir():
    _check_environment()
    base = Path(tempfile.mkdtemp(prefix="govfs-mount-", dir="/tmp"))
    os.chmod(base, 0o755)
    yield base
    lib.cleanup_everything()
    for mp in _mounts_under(base):
        lib.force_unmount(mp)
    if not _mounts_under(base):
        shutil.rmtree(base, ignore_errors=True)


def _subdir(parent, name):
    path = Path(tempfile.mkdtemp(prefix=name + "-", dir=parent))
    os.chmod(path, 0o755)
    return path


@pytest.fixture(scope="module")
def module_dir(base_dir, request):
    return _subdir(base_dir, request.module.__name__)


@pytest.fixture
def tmp_dir(base_dir, request):
    return _subdir(base_dir, request.node.name[:40].replace("/", "_"))


@pytest.fixture
def home(tmp_dir):
    """A fresh, empty home for one test."""
    return lib.Home(tmp_dir)


@pytest.fixture(autouse=True)
def _no_leftover_mounts(base_dir):
    """After each test: unmount what it left mounted, then insist on it."""
    before = len(lib.STARTED)
    yield
    leaked = [mp for proc, mp in lib.STARTED[before:] if lib.is_mounted(mp)]
    lib.cleanup_everything()
    assert not leaked, "test left mounts behind: %s" % leaked
