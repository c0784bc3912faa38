"""Cells from check records: status rules, last record wins, atomic incremental writes."""
from __future__ import annotations

import json
import threading

from glmverify.matrix import load
from glmverify.document import decide_status
from glmverify.results import CheckRecord, Recorder
from glmverify.util import atomic_write


def rec(row, feature, cid, outcome, **kw):
    return CheckRecord(row=row, feature=feature, id=cid, outcome=outcome, **kw)


def cell(doc, row, feature):
    return next(c for c in doc["cells"] if c["row"] == row and c["feature"] == feature)


def test_status_rules():
    assert decide_status([], "inferred") == "inferred"
    assert decide_status([{"outcome": "passed"}, {"outcome": "skipped"}], "inferred") == "verified"
    assert decide_status([{"outcome": "passed"}, {"outcome": "failed"}], "inferred") == "failed"
    assert decide_status([{"outcome": "error"}], "inferred") == "failed"
    assert decide_status([{"outcome": "skipped"}], "unsupported") == "unsupported"


def test_recorder_cells_and_last_wins(tmp_path):
    m = load()
    r = Recorder(m, tmp_path, {"id": "run-1"})
    r.add(rec("reference", "tool_calls", "test_case[a]", "failed", detail="boom"))
    r.add(rec("reference", "tool_calls", "test_case[a]", "passed", launch_id="L1",
              engine={"engine_version": "0.32.0"}, evidence={"x": 1}))
    r.add(rec("reference", "non_think", "test_no_reasoning", "failed", detail="reasoning present", launch_id="L1"))
    doc = json.loads((tmp_path / "matrix.json").read_text())
    assert doc["schema"] == 1 and doc["run"]["launches"] == {"reference": 1}
    tc = cell(doc, "reference", "tool_calls")
    assert tc["status"] == "verified" and tc["evidence"]["engine"]["engine_version"] == "0.32.0"
    assert set(tc) >= {"row", "engine", "image", "hardware", "feature", "status", "basis", "checks", "evidence"}
    assert cell(doc, "reference", "non_think")["status"] == "failed"
    gpu = cell(doc, "vllm-glm52-fp8-h200", "tool_calls") if any(c["row"] == "vllm-glm52-fp8-h200" for c in doc["cells"]) else None
    declared = [c for c in doc["cells"] if c["hardware"] not in (None, "cpu")]
    assert declared and all(c["status"] in ("inferred", "unsupported", "not_run") for c in declared)
    assert all(c["basis"] for c in declared)
    assert cell(doc, "reference", "mtp_accept_length")["status"] == "unsupported"
    del gpu


def test_unknown_rows_reported_not_dropped(tmp_path):
    r = Recorder(load(), tmp_path, {"id": "run-2"})
    r.add(rec("ghost-row", "tool_calls", "t", "passed"))
    doc = r.document()
    ghost = cell(doc, "ghost-row", "tool_calls")
    assert ghost["basis"] == "not in matrix.yaml"


def test_concurrent_adds_never_corrupt(tmp_path):
    r = Recorder(load(), tmp_path, {"id": "run-3"})

    def worker(n):
        for i in range(25):
            r.add(rec("reference", "tool_calls", f"t{n}-{i}", "passed"))
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    doc = json.loads((tmp_path / "matrix.json").read_text())
    assert len(cell(doc, "reference", "tool_calls")["checks"]) == 100


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    p = tmp_path / "m.json"
    atomic_write(p, "old")

    class Boom(str):
        pass
    try:
        atomic_write(p, object())  # type: ignore[arg-type]
    except TypeError:
        pass
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["m.json"]


def test_secrets_redacted(tmp_path, monkeypatch):
    from glmverify.redact import REDACT
    REDACT.add("hf_CANARY_123456789")
    r = Recorder(load(), tmp_path, {"id": "run-4"})
    r.add(rec("reference", "tool_calls", "t", "failed", detail="token hf_CANARY_123456789 leaked",
              evidence={"args": ["--token", "hf_CANARY_123456789"]}))
    assert "hf_CANARY_123456789" not in (tmp_path / "matrix.json").read_text()


def test_inconclusive_is_its_own_status_never_verified_never_failed(tmp_path):
    assert decide_status([{"outcome": "passed"}, {"outcome": "inconclusive"}], "inferred") == "inconclusive"
    assert decide_status([{"outcome": "inconclusive"}, {"outcome": "failed"}], "inferred") == "failed"
    r = Recorder(load(), tmp_path, {"id": "run-i"})
    decision = {"rule": "accuracy[think]", "status": "inconclusive", "n": 1319, "estimate": 0.9, "interval": [0.87, 0.93],
                "alpha": 0.0017, "requests": 1319}
    r.add(rec("reference", "accuracy_smoke", "test_gsm8k[think]", "inconclusive", detail="budget spent",
              evidence={"decisions": [decision]}))
    r.add(rec("reference", "accuracy_smoke", "test_gsm8k[nonthink]", "passed"))
    c = cell(r.document(), "reference", "accuracy_smoke")
    assert c["status"] == "inconclusive" and "not verified" in c["basis"]
    assert c["evidence"]["checks"]["test_gsm8k[think]"]["decisions"][0]["n"] == 1319


def test_gpu_basis_carries_the_live_reference_of_its_engine(tmp_path):
    """A GPU row's inferred cell names what this run's live reference of the same engine decided
    and observed, with the engine version, and where it differs from the other engine's reference;
    it stays inferred."""
    r = Recorder(load(), tmp_path, {"id": "run-live"})
    r.add(rec("reference-sglang", "reasoning_split", "test_split[nonstream]", "passed", launch_id="S",
              engine={"engine_version": "0.5.23"}, evidence={"observed": {"reasoning field": "reasoning_content"}}))
    r.add(rec("reference", "reasoning_split", "test_split[nonstream]", "passed", launch_id="V",
              engine={"engine_version": "0.32.0"}, evidence={"observed": {"reasoning field": "reasoning"}}))
    doc = json.loads((tmp_path / "matrix.json").read_text())
    sg = cell(doc, "sglang-glm52-fp8-h200-low-latency", "reasoning_split")
    assert sg["status"] == "inferred"
    assert "live sglang 0.5.23 reference (row reference-sglang, run run-live): verified" in sg["basis"]
    assert "reasoning field: reasoning_content (differs from vllm 0.32.0: reasoning)" in sg["basis"]
    live = sg["evidence"]["live_reference"]
    assert live["differs_from"]["reasoning field"]["engine_version"] == "0.32.0"
    vl = cell(doc, "vllm-glm52-fp8-h200", "reasoning_split")
    assert "live vllm 0.32.0 reference (row reference," in vl["basis"] and "differs from sglang 0.5.23: reasoning_content" in vl["basis"]
    # no live reference of that feature in the run, or only a skipped one: the declared basis alone
    assert "live_reference" not in cell(doc, "sglang-glm52-fp8-h200-low-latency", "tool_calls")["evidence"]
    r.add(rec("reference-sglang", "mtp_accept_length", "test_accept_length", "skipped", launch_id="S"))
    doc = json.loads((tmp_path / "matrix.json").read_text())
    assert "live_reference" not in cell(doc, "sglang-glm52-fp8-h200-low-latency", "mtp_accept_length")["evidence"]
    assert cell(doc, "reference-sglang", "reasoning_split")["status"] == "verified"
