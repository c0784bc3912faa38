"""GLM-5.3 as data, live: the effort suite verifies a GLM-5.3 stand-in on the vLLM reference.

A temporary matrix (``helpers.matrices.with_profile``) adds a glm-5.3 profile (max/high/low), its
model and a row copied from ``reference``; the effort suite runs against that row alone (one vLLM
engine on CPU, a few minutes) and must verify ``effort_levels`` with a decision for each adjacent
pair of levels (high < max, low < high). No code knows GLM-5.3.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.matrices import ROW, glm53_matrix

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def glm53_data() -> dict:
    return glm53_matrix()


@pytest.mark.live
def test_effort_suite_verifies_glm53_on_the_reference(tmp_path, glm53_data):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(yaml.safe_dump(glm53_data, sort_keys=False))
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites/test_effort_levels.py", "-p", "no:cacheprovider",
                           # -k: only the new row's checks, so only its engine starts (--row names the
                           # row an --endpoint stands for; it does not select rows)
                           "-q", "--matrix", str(matrix), "-k", ROW, "--results=" + str(results),
                           "--request-timeout", "1200"],
                          cwd=REPO, capture_output=True, text=True, timeout=3000)
    out = proc.stdout[-6000:] + proc.stderr[-3000:]
    doc = json.loads((results / "matrix.json").read_text())
    assert doc["run"]["launches"] == {ROW: 1}, (doc["run"]["launches"], out)
    cell = next(c for c in doc["cells"] if c["row"] == ROW and c["feature"] == "effort_levels")
    assert cell["status"] == "verified", (cell["basis"], out)
    checks = cell["evidence"]["checks"]
    behaviour = [v for k, v in checks.items() if "behaviour" in k and isinstance(v, dict)]
    assert behaviour, checks.keys()
    for ev in behaviour:
        assert ev["levels"] == ["max", "high", "low"]
        assert set(ev["ratios"]) == {"high/max", "low/high"}, ev["ratios"]
        assert all(r < 1.0 for r in ev["ratios"].values()), ev["ratios"]
        assert ev["ratio"] == ev["ratios"]["high/max"]
        decided = {d["rule"].split(":")[-1].rstrip("]"): d for d in ev["decisions"]}
        assert decided["high"]["status"] == decided["low"]["status"] == "verified", decided
        assert decided["high"]["quantity"].startswith("high/max") and decided["low"]["quantity"].startswith("low/high")
    assert proc.returncode == 0, out
