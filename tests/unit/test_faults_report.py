"""The fault run's verdict (``glmverify.faults.report.summary``) on its diagnosis: a fault's own
entry must be in the top 3 of its failed cell's diagnosis, or outranked only by entries
``fixtures/symptoms.yaml`` documents as looking the same; a fault outside that rule fails the run
and is named. Outcomes are built here as ``judge`` builds them from a run's stored diagnoses."""
from __future__ import annotations

from glmverify import diagnosis as dg
from glmverify.faults.judge import own_place
from glmverify.faults.model import Outcome
from glmverify.faults.report import misplaced, summary


def group(i: str, score: float, *same: str) -> dict:
    return {"id": i, "score": score, **({"same_cause": list(same)} if same else {})}


def fault(case_id: str, diagnosis: list[dict]) -> Outcome:
    o = Outcome(case_id, "proxy", "reference", ["tool_calls"], {"tool_calls": "failed"}, detected=True)
    o.rank, o.outranked_by = own_place(case_id, [diagnosis])
    return o


OWN = "proxy-stream-chunk-reordered"


def test_outranked_by_look_alikes_passes_by_an_unrelated_cause_fails():
    look = sorted(dg.alike(OWN))
    assert len(look) >= 3 and "standin-no-tool-call" not in look
    by_alike = fault(OWN, [group(look[0], 9), group(look[1], 8), group(look[2], 8), group(OWN, 8)])
    assert by_alike.rank == 4 and [g[0] for g in by_alike.outranked_by] == look[:3]
    ok, line = summary([by_alike])
    assert ok and "top-3 0/1 (0%), below the top 3 outranked only by look-alikes 1" in line
    unrelated = fault(OWN + "@reference-sglang",
                      [group(look[0], 9), group(look[1], 8), group("standin-no-tool-call", 8), group(OWN, 8)])
    ok, line = summary([by_alike, unrelated])
    assert not ok and f"outranked by another cause or not diagnosed 1: {OWN}@reference-sglang" in line
    assert misplaced([by_alike, unrelated]) == [f"{OWN}@reference-sglang"]


def test_top_3_passes_whatever_is_above_and_not_diagnosed_fails():
    top3 = fault(OWN, [group("standin-no-tool-call", 9), group("launch-no-tool-parser", 9), group(OWN, 9)])
    assert top3.rank == 3 and summary([top3])[0]
    absent = fault("standin-no-tool-call", [group(OWN, 9)])
    assert absent.rank is None
    ok, line = summary([top3, absent])
    assert not ok and "not diagnosed 1: standin-no-tool-call" in line


def test_a_look_alike_speaking_for_its_cause_counts():
    """A group speaks with its best member; a documented look-alike among its same-cause members
    makes it a look-alike (the lost chunk's structural check speaks for the lost chunk)."""
    look = sorted(dg.alike(OWN) - {"proxy-stream-chunk-dropped"})
    d = [group("proxy-stream-tool-structure", 9, "proxy-stream-chunk-dropped"), group(look[0], 9),
         group(look[1], 9), group(OWN, 8)]
    assert summary([fault(OWN, d)])[0]


def test_the_coverage_gate_stays():
    o = fault(OWN, [group(OWN, 9)])
    assert summary([o], {"vllm: tool_calls::test_case": ["x"]})[0]
    ok, line = summary([o], {"vllm: tool_calls::test_case": ["x"], "vllm: tool_calls::test_cut_call": []})
    assert not ok and "checks seen failing: 1/2" in line


def test_a_control_is_judged_by_detection_only():
    control = Outcome("control-x", "proxy", "reference", [], {"tool_calls": "verified"}, detected=True)
    assert summary([control])[0] and not misplaced([control])
