"""The golden test: matrix.yaml resolves to exactly the rows of fixtures/matrix_golden.json.gz.

The fixture is the resolved rows (every field, each profile whole, declared cells, errata) as
they were when the file was flat; the layered matrix.yaml must reproduce them. A deliberate change
of a resolved row regenerates the fixture in a commit of its own:
``python -m glmverify.matrix snapshot fixtures/matrix_golden.json.gz``.
"""
from __future__ import annotations

import copy
import gzip
import json
import subprocess
import sys
from pathlib import Path

from glmverify.matrix import load
from glmverify.matrix.views import first_difference, read_snapshot, snapshot, snapshot_bytes

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "fixtures" / "matrix_golden.json.gz"


def test_resolved_rows_equal_the_golden_snapshot():
    expected, actual = read_snapshot(GOLDEN), json.loads(json.dumps(snapshot(load())))
    assert [r["id"] for r in actual["rows"]] == [r["id"] for r in expected["rows"]], "rows added, removed or reordered"
    diff = first_difference(expected, actual)
    assert diff is None, f"matrix.yaml no longer resolves to the golden rows: {diff}"


def test_snapshot_is_deterministic():
    assert snapshot_bytes(load()) == snapshot_bytes(load())
    assert gzip.decompress(snapshot_bytes(load())).decode().startswith("{\n")


def test_first_difference_names_the_row_and_field():
    golden = read_snapshot(GOLDEN)
    changed = copy.deepcopy(golden)
    row = changed["rows"][7]
    row["launch"]["args"] = [*row["launch"]["args"], "--extra"]
    diff = first_difference(golden, changed)
    assert diff is not None and diff.startswith(f"/rows/{row['id']}/launch/args"), diff
    changed = copy.deepcopy(golden)
    changed["rows"][3]["profile"]["effort"]["default"] = "high"
    assert f"/rows/{golden['rows'][3]['id']}/profile/effort/default: expected" in first_difference(golden, changed)
    assert first_difference(golden, copy.deepcopy(golden)) is None


def test_snapshot_command_writes_what_the_golden_test_reads(tmp_path):
    out = tmp_path / "snap.json.gz"
    proc = subprocess.run([sys.executable, "-m", "glmverify.matrix", "snapshot", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert read_snapshot(out) == json.loads(json.dumps(snapshot(load())))
