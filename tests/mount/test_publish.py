"""
Atomic publish: `kill -9` of `govfsctl dataset add` at random moments
leaves the catalog as it was, and the next change command removes what
the killed one left in HOME/tmp and HOME/store.
"""
import os
import random
import signal
import subprocess
import time

import govfs_testlib as lib

RULES = {"visit_id": "keep", "district": "keep"}


def files_in(path):
    return sorted(os.listdir(path))


def test_kill_during_dataset_add(home, tmp_dir):
    home.add("base", lib.gen_visits(tmp_dir / "small.csv", 100))
    doc = lib.agreement("agr-pub", {"base": RULES})
    home.apply(doc)
    big = lib.gen_visits_bytes(tmp_dir / "big.csv", 50_000_000, seed=4)
    before = home.datasets()
    store_before = files_in(home.dir / "store")
    assert files_in(home.dir / "tmp") == []

    # How long an uninterrupted ingest of this file takes here.
    timing = lib.Home(tmp_dir, "timing")
    start = time.monotonic()
    timing.add("big", big)
    full = time.monotonic() - start

    rng = random.Random(99)
    delays = [0.0, 0.01] + [rng.uniform(0.05, 0.5) * full for _ in range(5)]
    leftovers = 0
    for delay in delays:
        proc = subprocess.Popen(home.ctl_cmd("dataset", "add", "big",
                                             "--file", big),
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if delay:
            # Count the delay from when the new version's file exists.
            lib.wait_for(lambda: os.listdir(home.dir / "tmp") or
                         proc.poll() is not None, 10, step=0.002)
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL, \
            "dataset add finished before the kill (delay %.3f of %.3f s)" % (
                delay, full)
        if files_in(home.dir / "tmp") or \
                files_in(home.dir / "store") != store_before:
            leftovers += 1
        # A reader sees the catalog as it was.
        assert home.datasets() == before

    # The kills did land mid-ingest: something was left to clean up.
    assert leftovers >= 3, "ingest %.3f s, %d of %d kills left files" % (
        full, leftovers, len(delays))

    res = home.apply(doc)
    assert "unchanged" in res.stdout
    assert files_in(home.dir / "tmp") == []
    assert files_in(home.dir / "store") == store_before
    assert home.datasets() == before

    # The home still works: the same file goes in whole.
    home.add("big", big)
    assert [d["id"] for d in home.datasets()] == ["base", "big"]
    assert len(files_in(home.dir / "store")) == len(store_before) + 1
    assert files_in(home.dir / "tmp") == []
