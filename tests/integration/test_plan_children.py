"""``pytest suites -m MARKER --plan`` as a child pytest run, for every hardware marker.

The plan's content is tested in-process (tests/unit/test_flags.py); this proves the pytest path:
the suites' plugin selects the marker's rows, prints each plan with its flag origins, launches
nothing and exits 0.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from glmverify import flags
from glmverify.matrix import load

REPO = Path(__file__).resolve().parents[2]
MATRIX = load()


@pytest.mark.parametrize("marker", sorted({r.hardware for r in MATRIX.rows}))
def test_pytest_plan_for_every_marker_prints_the_origins(marker):
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites/test_reasoning_split.py", "-m", marker, "--plan",
                           "-p", "no:cacheprovider", "-q"], cwd=REPO, capture_output=True, text=True, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    rows = [r for r in MATRIX.rows if r.hardware == marker]
    # reasoning_split is unsupported on some rows: they are still collected (skipped), so planned
    planned = re.findall(r"^# ---- (\S+):", out, re.M)
    assert set(planned) == {r.id for r in rows}, (marker, planned)
    assert out.count("# flag origins") == len(rows)
    if any(o.origin == "harness" for r in rows for o in flags.origins(r)):
        assert ": harness (" in out




# ---- the design card's commands, exactly as typed at the repository root --------------------------
def _root(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_root_plan_prints_every_h200_row():
    proc = _root("-m", "h200", "--plan")
    assert proc.returncode == 0, proc.stdout + proc.stderr  # --plan is known at the root
    planned = set(re.findall(r"^# ---- (\S+):", proc.stdout, re.M))
    assert planned == {r.id for r in MATRIX.rows if r.hardware == "h200"}, planned


@pytest.mark.parametrize("marker", ["h200", "cpu"])
def test_root_marker_selects_the_suites(marker):
    proc = _root("-m", marker, "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr  # 5 would mean nothing selected
    ids = [ln for ln in proc.stdout.splitlines() if "::" in ln]
    assert ids and all(ln.startswith("suites/") for ln in ids), proc.stdout[-2000:]
    rows = {r.id for r in MATRIX.rows if r.hardware == marker}
    # every row check is one of the marker's rows (the parser-conformance checks carry the
    # markers of the rows whose parsers they run, and no row id)
    row_checks = [ln for ln in ids if not ln.startswith("suites/test_parsers.py")]
    assert row_checks and all(any(r in ln for r in rows) for ln in row_checks), "a check of another hardware"


def test_root_options_with_a_space_before_their_value(tmp_path):
    """``--results DIR`` (a space) is the plugin's option for a directory that does not exist yet;
    ``--results=DIR`` always (pytest reads an existing directory after a space as a path to
    collect before any plugin option exists, and roots the run there: the README says so)."""
    proc = _root("-m", "h200", "--collect-only", "-q", "--results", str(tmp_path / "r"))
    assert proc.returncode == 0 and "INTERNALERROR" not in proc.stdout + proc.stderr, proc.stdout[-2000:] + proc.stderr[-2000:]
    (tmp_path / "existing").mkdir()
    proc = _root("-m", "h200", "--collect-only", "-q", f"--results={tmp_path / 'existing'}")
    assert proc.returncode == 0 and "INTERNALERROR" not in proc.stdout + proc.stderr, proc.stdout[-2000:] + proc.stderr[-2000:]
