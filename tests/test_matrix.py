"""matrix.yaml validation: every bad path named, the run stopped before any launch."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from glmverify.paths import DEFAULT_MATRIX
from glmverify.matrix import FEATURES, MatrixError, load, parse

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def data():
    return yaml.safe_load(DEFAULT_MATRIX.read_text())


def test_repo_matrix_is_valid():
    m = load()
    assert m.features == FEATURES
    assert any(r.hardware == "cpu" for r in m.rows)
    ids = [r.id for r in m.rows]
    assert len(ids) == len(set(ids))


def test_every_row_declares_every_feature_or_is_reference():
    for row in load().rows:
        if row.launcher == "process":
            continue
        missing = [f for f in FEATURES if f not in row.declared]
        assert not missing, f"{row.id} declares no status for {missing}"


def test_invalid_matrix_names_every_bad_path(data):
    bad = copy.deepcopy(data)
    bad["rows"][0]["accelerators"] = "eight"           # wrong type
    bad["rows"][1]["features"]["flying"] = {"status": "inferred", "basis": "x"}  # unknown feature
    del bad["rows"][2]["image"]                        # missing image
    with pytest.raises(MatrixError) as exc:
        parse(bad, "bad.yaml")
    paths = {p for p, _ in exc.value.errors}
    assert "rows/0/accelerators" in paths
    assert any(p.startswith("rows/1/features") for p in paths)
    assert "rows/2" in paths and any("image" in m for p, m in exc.value.errors if p == "rows/2")
    text = str(exc.value)
    assert "rows/0/accelerators" in text and "bad.yaml" in text


def test_cross_field_errors(data):
    bad = copy.deepcopy(data)
    bad["rows"][1]["id"] = bad["rows"][0]["id"]
    bad["rows"][0]["profile"] = "glm-9"
    bad["profiles"]["glm-5.2"]["effort"]["fallback"] = "low"
    with pytest.raises(MatrixError) as exc:
        parse(bad)
    paths = {p for p, _ in exc.value.errors}
    assert {"rows/1/id", "rows/0/profile", "profiles/glm-5.2/effort/fallback"} <= paths


def test_profile_resolution_is_data(data):
    m = parse(data)
    eff = m.profiles["glm-5.2"].effort
    assert [eff.resolve(v) for v in (None, "max", "high", "low", "medium", "???")] == ["max", "max", "high", "max", "max", "max"]
    assert eff.line_for("high") == "Reasoning Effort: High"
    glm53 = copy.deepcopy(data)
    glm53["profiles"]["glm-5.3"] = copy.deepcopy(data["profiles"]["glm-5.2"])
    glm53["profiles"]["glm-5.3"]["effort"]["levels"] = {"max": "Max", "high": "High", "low": "Low"}
    eff53 = parse(glm53).profiles["glm-5.3"].effort
    assert eff53.resolve("low") == "low" and eff53.resolve("medium") == "max"
    assert eff53.lowered_levels == ["high", "low"]


def test_invalid_matrix_stops_pytest_before_launch(tmp_path, data):
    bad = copy.deepcopy(data)
    bad["rows"][0]["hardware"] = "tpu"
    bad["rows"][0]["features"] = {"teleport": {"status": "inferred", "basis": "x"}}
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(bad))
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites", "-m", "cpu", "--matrix", str(path),
                           "--results", str(results), "-p", "no:cacheprovider"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out  # pytest usage error: nothing collected, nothing launched
    assert "rows/0/hardware" in out and "rows/0/features" in out
    assert not results.exists(), "an invalid matrix must stop the run before results or engines exist"


def test_unreadable_matrix(tmp_path):
    with pytest.raises(MatrixError, match="cannot read"):
        load(tmp_path / "missing.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("rows: [\n")
    with pytest.raises(MatrixError, match="not valid YAML"):
        load(p)
