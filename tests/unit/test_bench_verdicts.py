"""bench/verdicts.py's summary: rates per feature with intervals, detection per fault (no engine)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "verdicts.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_verdicts", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(seed, acc="verified", effort_detected=True):
    return {"seed": seed, "seconds": 1.0, "outcomes": [
        {"id": "conforming-reference-1", "kind": "conforming", "row": "reference", "expect_failed": [],
         "observed": {"accuracy_smoke": acc, "effort_levels": "verified", "mtp_accept_length": "unsupported"},
         "detected": acc == "verified", "detail": "",
         "spent": {"accuracy_smoke": {"requests": 256, "n": 256, "tokens": 90000}, "effort_levels": {"requests": 32, "n": 16}}},
        {"id": "standin-ignore-effort", "kind": "standin", "row": "reference", "expect_failed": ["effort_levels"],
         "observed": {"effort_levels": "failed" if effort_detected else "inconclusive"}, "detected": effort_detected,
         "detail": "", "spent": {}, "rank": 1 if effort_detected else None}]}


def test_summary_counts_false_failures_inconclusive_and_detection(bench):
    runs = [run(1), run(2, acc="failed"), run(3, acc="inconclusive", effort_detected=False), run(4)]
    text = bench.summarize(runs, ["standin-ignore-effort"], 60.0)
    acc = next(ln for ln in text.splitlines() if ln.startswith("| accuracy_smoke |"))
    cells = [c.strip() for c in acc.split("|")[1:-1]]
    assert cells[1:3] == ["4", "1"] and cells[3].startswith("0.250 [") and cells[4] == "1"
    assert cells[6] == "256 (256)" and cells[7] == "128" and cells[8] == "90000"
    assert not any(ln.startswith("| mtp_accept_length |") for ln in text.splitlines())  # unsupported: not a cell run
    fault = next(ln for ln in text.splitlines() if ln.startswith("| standin-ignore-effort |"))
    assert "| 3/4 |" in fault and "0.750 [" in fault and fault.split("|")[6].strip() == "0"
    assert fault.split("|")[5].strip() == "3/3"  # each detection diagnosed its own entry first
    assert "All cells: 1 false-failed of 8" in text


def test_bench_refuses_bad_arguments(bench, capsys, tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--runs", "0"])
    with pytest.raises(SystemExit):
        bench.main(["--runs", "1", "--faults", "no-such-fault", "--out", str(tmp_path / "out")])
    assert "unknown fault ids" in capsys.readouterr().err


def test_a_fault_whose_engine_never_started_is_not_run_not_missed(bench):
    runs = [run(1), run(2)]
    runs[1]["outcomes"][1].update(observed={}, detected=False, detail="conforming engine of reference did not start")
    fault = next(ln for ln in bench.summarize(runs, ["standin-ignore-effort"], 1).splitlines()
                 if ln.startswith("| standin-ignore-effort |"))
    assert "| 1/1 |" in fault and fault.split("|")[6].strip() == "1"


def _matrix(path: Path, status: str, degeneration: str) -> None:
    import json
    path.mkdir(parents=True)
    cell = {"row": "reference", "feature": "accuracy_smoke", "status": status, "evidence": {
        "checks": {"test_gsm8k[think]": {"decisions": [{"rule": "accuracy[think]", "status": status, "n": 64}]}},
        "degeneration": {"row": {"decision": {"rule": "degeneration[row:reference]", "status": degeneration}}}}}
    (path / "matrix.json").write_text(json.dumps({"cells": [cell]}))


def test_every_decision_is_counted_by_rule_and_a_run_still_going_is_left_out(bench, tmp_path, capsys):
    import json
    runs = [run(1), run(2)]
    _matrix(tmp_path / "run-01" / "conforming-reference-1", "verified", "inconclusive")
    _matrix(tmp_path / "run-02" / "conforming-reference-1", "failed", "failed")
    _matrix(tmp_path / "run-03" / "conforming-reference-1", "failed", "failed")  # not in verdicts.json yet
    text = bench.summarize(runs, ["standin-ignore-effort"], 1.0, [(tmp_path, len(runs))])
    lines = text.splitlines()
    assert "| accuracy_smoke | accuracy[think] | 2 | 1 | 0 | 2 |" in lines
    assert "| accuracy_smoke | degeneration[row] | 2 | 1 | 1 | 2 |" in lines  # the row's name taken out
    (tmp_path / "verdicts.json").write_text(json.dumps({"runs": runs}))
    assert bench.main(["--summarize", str(tmp_path)]) == 0
    assert "| accuracy_smoke | accuracy[think] | 2 | 1 | 0 | 2 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--summarize", str(tmp_path / "nowhere")])
    assert "no readable verdicts.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the same launches twice
        bench.main(["--summarize", str(tmp_path), str(tmp_path)])
    assert "more than one directory" in capsys.readouterr().err
    more = tmp_path / "continued"
    _matrix(more / "run-01" / "conforming-reference-1", "verified", "verified")
    (more / "verdicts.json").write_text(json.dumps({"runs": [run(3)]}))
    assert bench.main(["--summarize", str(tmp_path), str(more)]) == 0
    out = capsys.readouterr().out
    # run 3 decided as run 1 did (same status, n, estimate, interval): the same draw, not a third one
    assert "| accuracy_smoke | accuracy[think] | 3 | 1 | 0 | 2 |" in out and "3 runs of" in out


def test_not_run_cells_are_left_out_of_the_rates_and_counted(bench):
    runs = [run(1), run(2)]
    for r in runs:
        r["outcomes"][0]["observed"]["serving_performance"] = "not_run"
    text = bench.summarize(runs, [], 1)
    assert not any(ln.startswith("| serving_performance |") for ln in text.splitlines())
    assert "Not run (no decision, left out of the rates): serving_performance 2 cells." in text
    assert "All cells: 0 false-failed of 4" in text


def test_features_and_rows_are_checked_before_any_launch(bench, capsys, tmp_path, monkeypatch):
    for argv, said in ((["--features", "no_such_feature"], "unknown features ['no_such_feature']"),
                       (["--rows", "vllm-h200"], "are not reference rows")):
        with pytest.raises(SystemExit):
            bench.main(["--runs", "1", "--faults", "", "--out", str(tmp_path / "out"), *argv])
        assert said in capsys.readouterr().err
    # the speed bench alone, with no baseline for this host: every cell would be not_run, so it refuses
    monkeypatch.setattr(bench, "_perf_baseline_missing", lambda rows: "reference concurrency 1: no baseline")
    with pytest.raises(SystemExit):
        bench.main(["--runs", "1", "--faults", "", "--features", "serving_performance", "--rows", "reference",
                    "--out", str(tmp_path / "out")])
    assert "make perf-baseline" in capsys.readouterr().err
