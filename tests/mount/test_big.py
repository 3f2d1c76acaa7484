"""
A generated 1,000,000-row dataset under a keep-all agreement: data.csv
parses back to the source values, st_size is the number of bytes read, and
random preads anywhere (past EOF and across blocks included) return exactly
what the full read holds there.
"""
import csv
import io
import os
import random

import govfs_testlib as lib

ROWS = 1_000_000
COLUMNS = ["visit_id", "patient_id", "name", "phone", "district", "age",
           "visit_date", "visit_time", "cost", "notes"]


def test_million_rows(tmp_dir):
    home = lib.Home(tmp_dir)
    src = lib.gen_visits(tmp_dir / "big.csv", ROWS, seed=11)
    home.add("big.visits", src)
    rules = {c: "keep" for c in COLUMNS}
    home.apply(lib.agreement("agr-big", {"big.visits": rules}, max_level=4))
    source = src.read_bytes()
    os.unlink(src)

    with lib.mounted(home, "agr-big") as m:
        path = m / "big.visits" / "data.csv"
        size = os.stat(path).st_size
        full = lib.read_all(path, chunk=1 << 20)
        assert size == len(full)

        rng = random.Random(4242)
        fd = os.open(path, os.O_RDONLY)
        try:
            # Offsets at and around likely block sizes, then anywhere.
            spots = [(k * (1 << s) + d, rng.choice([1, 2, 4097, 70000]))
                     for s in (12, 16, 17, 20) for k in (1, 3)
                     for d in (-1, 0, 1)]
            spots += [(size - 1, 10), (size, 10), (size + 12345, 1 << 20),
                      (0, 0), (size - 70000, 200000)]
            while len(spots) < 500:
                off = rng.randrange(0, size + 300000)
                length = rng.choice([rng.randrange(0, 64), rng.randrange(
                    0, 300000), rng.randrange(0, 3 << 20)])
                spots.append((off, length))
            for off, length in spots:
                got = os.pread(fd, length, off)
                assert got == full[off:off + length], (off, length)
        finally:
            os.close(fd)

    # The bytes are the independent rendering of the source; parse them
    # back as well to compare values.
    header, rows = lib.parse_source(source)
    del source
    assert full == lib.render_table(header, rows)
    got = list(csv.reader(io.StringIO(full.decode("utf-8"), newline=""),
                          strict=True))
    del full
    assert got[0] == header == COLUMNS
    assert len(got) - 1 == len(rows) == ROWS
    assert got[1:] == rows
