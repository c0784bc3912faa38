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


def test_the_slow_drafter_launches_beside_its_unchanged_twin(tmp_path):
    """perf-mtp-slow-drafter: the speculating row's drafts swapped for the slow proposer, and its
    no-speculation twin in the derived matrix as it is, so the speed-up is decided in the fault's run."""
    from glmverify.perf_mtp import twin_of

    case = {c.id: c for c in faults.load_catalogue()}["perf-mtp-slow-drafter"]
    m = load(faults.derived_matrix(case, tmp_path))
    faulted, twin = m.rows
    assert faulted.id == "perf-mtp-slow-drafter" and twin.id == "reference-nospec"
    spec = faulted.launch.args[faulted.launch.args.index("--speculative-config") + 1]
    assert "glmverify.standin.slow_drafter.SlowNgramProposer" in spec and '"custom_class"' in spec
    assert twin.launch.args == load().row("reference-nospec").launch.args
    assert faulted.expect["performance"]["baseline"] == "reference-ngram"
    assert twin_of(faulted, m.rows) is twin
    # a fault of another suite launches its row alone
    other = {c.id: c for c in faults.load_catalogue()}["perf-launch-half-cpus"]
    assert len(load(faults.derived_matrix(other, tmp_path)).rows) == 1


def test_conforming_and_accuracy_fault_runs_are_held_to_the_recorded_accuracy_baseline(tmp_path, monkeypatch):
    """A conforming run of the catalogue checks what make verify checks: with make verify's recorded
    outcomes present, the accuracy suite gets them (its paired and steady decisions run), as the
    accuracy fault runs do; without, neither passes anything."""
    from glmverify.faults import runner

    monkeypatch.setattr(runner, "RESULTS_DIR", tmp_path)
    assert runner.accuracy_baseline_args() == []
    (tmp_path / "accuracy-baseline.json").write_text("{}")
    assert runner.accuracy_baseline_args() == [f"--accuracy-baseline={tmp_path / 'accuracy-baseline.json'}"]
    drop = {c.id: c for c in faults.load_catalogue()}["accuracy-subtle-drop"]
    opts = faults.RunOptions(results=tmp_path / "r")
    assert f"--accuracy-baseline={tmp_path / 'accuracy-baseline.json'}" in runner._fault_args(drop, opts)
