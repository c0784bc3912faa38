"""serving_performance's launch fault: the derived one-row matrix confines the engine to the CPUs
the entry names (``cpus``: taskset -c), and its thread binding with it; an entry without ``cpus``
launches the command unchanged (the planted contrast)."""
from __future__ import annotations

import dataclasses

from glmverify import faults
from glmverify.matrix import load


def test_cpus_prefix_the_engine_command(tmp_path):
    cases = {c.id: c for c in faults.load_catalogue()}
    half = cases["perf-launch-half-cpus"]
    row = load(faults.derived_matrix(half, tmp_path)).rows[0]
    assert row.launch.command[:3] == ["taskset", "-c", "0"] and row.launch.env["VLLM_CPU_OMP_THREADS_BIND"] == "0"
    assert row.expect["performance"]["latency"] == "e2el"  # the reference's shape travels with the row
    assert row.expect["performance"]["baseline"] == "reference"  # held to its row's baseline, not its own id
    plain = load(faults.derived_matrix(dataclasses.replace(half, cpus=None), tmp_path)).rows[0]
    assert plain.launch.command[0] != "taskset"
