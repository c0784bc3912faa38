"""The run's exit status end to end, as a child pytest at the repository root: no engine launches.

A run that decides nothing is never green: on this CPU machine ``pytest -m h200`` skips every
h200 row at its hardware gate (or as attach-only), so it must end with the undecided code (6),
name each undecided cell with why in the terminal summary and keep the verdict in matrix.json; a
container row without a Docker daemon likewise. ``--collect-only`` and ``--plan`` stay 0.
``--results=DIR`` is spelled with ``=``: at the root (no test path given) pytest reads a separate
value as a path before the plugin's options exist.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from glmverify.document import UNDECIDED_EXIT
from glmverify.matrix import load

REPO = Path(__file__).resolve().parents[2]
MATRIX = load()


def _pytest(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q"], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def test_gate_skipped_rows_end_undecided(tmp_path):
    proc = _pytest("-m", "h200", "-k", "reasoning_split", f"--results={tmp_path}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == UNDECIDED_EXIT == 6, out[-3000:]
    rows = {r.id for r in MATRIX.rows if r.hardware == "h200" and r.serves("reasoning_split")}
    named = set(re.findall(r"^  undecided: (\S+)/reasoning_split: not run: ", out, re.M))
    assert named == rows, (rows ^ named, out[-3000:])
    assert "glmverify verdict: undecided (exit 6)" in out
    doc = json.loads((tmp_path / "matrix.json").read_text())
    assert doc["run"]["exit_status"] == 6 and doc["run"]["verdict"]["status"] == "undecided"
    assert len(doc["run"]["verdict"]["undecided"]) == len(rows)
    # the cells themselves keep their declarations: the verdict is about the run, not a new status
    cells = [c for c in doc["cells"] if c["row"] in rows and c["feature"] == "reasoning_split"]
    assert cells and all(c["status"] == c["declared"] for c in cells)
    assert all(k.get("phase") == "setup" for c in cells for k in c["checks"])


def test_container_row_without_docker_ends_undecided_saying_so(tmp_path):
    proc = _pytest("suites/test_reasoning_split.py", "-m", "cpu", "-k", "reference-container", f"--results={tmp_path}",
                   env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 6, out[-3000:]
    assert re.search(r"^  undecided: reference-container/reasoning_split: not run: .*Docker", out, re.M), out[-3000:]


def test_collect_only_and_plan_stay_zero(tmp_path):
    for args in (("-m", "h200", "--collect-only"), ("-m", "h200", "--plan")):
        proc = _pytest(*args)
        assert proc.returncode == 0, (args, (proc.stdout + proc.stderr)[-2000:])
