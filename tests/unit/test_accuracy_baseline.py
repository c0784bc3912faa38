"""Accuracy beyond the absolute gate (issue #25): the paired, drift and batch decisions on seeded
synthetic outcomes (each planted fault fails its own decision while the absolute gate on the same
answers still verifies; a conforming sample verifies), and the baseline store (recorded, signed,
declared twin, none)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from glmverify import accuracy_baseline as ab
from glmverify import accuracy_decisions as ad
from glmverify import policy, signoff
from glmverify.faultproxy import accuracy_faults
from glmverify.faultproxy.registry import FAULTS, apply
from glmverify.matrix import load
from glmverify.verdicts import DEFAULT_BETA, decide

N = 1319
P_WRONG = 0.03  # the stand-in's wrong-answer rate, thinking on


@pytest.fixture(scope="module")
def row():
    return load().row("reference")


def alpha(row) -> float:
    return policy.alpha(row, True)


def ids(n: int = N) -> list[str]:
    return [f"gsm8k-test-{i:04d}" for i in range(n)]


def run_paired(row, base: np.ndarray, cur: np.ndarray, effect: float = policy.PAIRED_EFFECT,
               cap: int = policy.PAIRED_BUDGET):
    qs = ids(len(base))
    looks = policy.paired_looks(64, 0, len(base), cap)
    pos = [0]

    def draw(k):
        out = [(qs[i], bool(cur[i])) for i in range(pos[0], min(len(cur), pos[0] + k))]
        pos[0] += k
        return out
    return ad.run_paired(dict(zip(qs, map(bool, base))), draw, looks, name="accuracy[paired:think]", quantity="d",
                         effect=effect, alpha=alpha(row), beta=DEFAULT_BETA, source="synthetic baseline")


def subtle_drop(rng, cur: np.ndarray, share: float = 0.05) -> np.ndarray:
    """The accuracy_subtle_drop fault: a seeded ~5% of right answers turned wrong (97% -> 92%)."""
    return cur & ~(rng.random(len(cur)) < share)


def absolute_verifies(row, outcomes) -> str:
    """The absolute gate on the same answers, at the look its budget reaches (it stays as it is)."""
    rule = policy.accuracy_rule(row, True, True, 64, len(outcomes))
    for i, size in enumerate(rule.looks):
        d = decide(rule, list(outcomes[:size]), look=i)
        if d.status != "inconclusive":
            return d.status
    return d.status


# ---- paired -------------------------------------------------------------------------------------
def test_seeded_conforming_run_verifies_against_its_baseline(row):
    rng = np.random.default_rng(1)
    verified = 0
    for _ in range(40):
        base = rng.random(N) > P_WRONG
        d, pairs = run_paired(row, base, base.copy())
        verified += d.status == "verified"
        assert d.status != "failed"
    assert verified == 40
    assert d.n == 256 and d.extra["baseline_right_current_wrong"] == 0 and d.interval[1] < policy.PAIRED_EFFECT


def test_subtle_drop_fails_the_paired_decision_while_the_absolute_gate_verifies(row):
    rng = np.random.default_rng(2)
    failed = 0
    absolute = []
    runs = 60
    for _ in range(runs):
        base = rng.random(N) > P_WRONG
        cur = subtle_drop(rng, base)
        d, _ = run_paired(row, base, cur)
        failed += d.status == "failed"
        absolute.append(absolute_verifies(row, cur))
    assert failed / runs >= 0.95, failed
    # the 0.90 gate cannot see a 97% -> 92% drop: never failed (verified or inconclusive)
    assert "failed" not in absolute and "verified" in absolute, absolute
    assert d.status == "failed" and d.interval[0] > 0
    worse = d.extra["first_worse"]
    assert worse and all(not cur[int(q.rsplit("-", 1)[1])] for q in worse)
    assert "first [" in d.detail and "synthetic baseline" in d.detail


def test_unpaired_noise_never_fails_a_conforming_run(row):
    """Independent sampling on both sides (no reproducible seeds): discordance is noise, never a failure."""
    rng = np.random.default_rng(3)
    outcomes = [run_paired(row, rng.random(N) > P_WRONG, rng.random(N) > P_WRONG)[0].status for _ in range(150)]
    assert outcomes.count("failed") <= 1


def test_paired_bounds_sign_is_mcnemar(row):
    est, lower, upper = ad.paired_bounds(20, 2, 500, 1e-3, 0.01)
    assert ad.mcnemar_p(20, 2) < 1e-3 and lower > 0 and est == pytest.approx(18 / 500) and upper > est
    est, lower, upper = ad.paired_bounds(0, 0, 500, 1e-3, 0.01)
    assert est == 0 and lower <= 0 and 0 < upper < 0.03


def test_tango_bound_without_discordant_pairs_is_z2_over_n_plus_z2():
    """b = c = 0: the score equation solves to d = z^2 / (n + z^2) (the seeded reference's case)."""
    from scipy.stats import norm

    for n, level in ((64, 0.0125), (256, 0.0125), (1319, 0.01)):
        z2 = float(norm.isf(level)) ** 2
        assert ad.tango_upper(0, 0, n, level) == pytest.approx(z2 / (n + z2), rel=1e-6)
    assert ad.tango_upper(0, 0, 256, 0.0125) < policy.PAIRED_EFFECT < ad.tango_upper(0, 0, 128, 0.0125)
    # monotone in the evidence: more current-side losses raise the bound, more gains lower it
    assert ad.tango_upper(30, 10, 500, 0.01) > ad.tango_upper(20, 20, 500, 0.01) > ad.tango_upper(10, 30, 500, 0.01)


@pytest.mark.parametrize("n,discordance,level", [(512, 0.086, 0.0125), (1319, 0.086, 0.0083), (256, 0.03, 0.0125)])
def test_tango_bound_misses_a_true_3_point_loss_about_as_often_as_stated(n, discordance, level):
    """Its one-sided error at d = 3 points: the share of draws whose upper bound falls under 0.03
    (a false 'verified' at one look) stays near the level (score intervals are near nominal, a
    little liberal at some n; the union bound over looks absorbs it)."""
    rng = np.random.default_rng(7)
    p12, p21 = (discordance + 0.03) / 2, (discordance - 0.03) / 2
    draws = rng.multinomial(n, [p12, p21, 1 - p12 - p21], size=3000)
    missed = np.mean([ad.tango_upper(int(b), int(c), n, level) < 0.03 for b, c, _ in draws])
    assert missed <= 1.6 * level, missed


def test_unreproducible_seeds_verify_a_healthy_deployment_at_the_whole_test_set(row):
    """Seeded answers sampled independently on both sides (GPU serving without batch invariance) at
    GLM-5.2's 95.5%: the row's budget is the whole test set, where a healthy deployment verifies in
    most runs (about 92% simulated) and never fails beyond alpha; capped at 512 it mostly could not
    decide, which is why such a row does not stop there."""
    gpu = load().row("vllm-glm52-fp8-h200")
    assert policy.paired_budget(row) == policy.PAIRED_BUDGET  # the reference declares reproducible seeds
    assert policy.paired_budget(gpu) == policy.GSM8K_SIZE
    rng = np.random.default_rng(11)
    runs, p = 150, 0.045
    whole = [run_paired(row, rng.random(N) > p, rng.random(N) > p, cap=N)[0].status for _ in range(runs)]
    capped = [run_paired(row, rng.random(N) > p, rng.random(N) > p)[0].status for _ in range(runs)]
    assert whole.count("verified") / runs >= 0.85, whole.count("verified")
    assert whole.count("failed") <= 2 and capped.count("failed") <= 2
    assert capped.count("verified") < whole.count("verified")


# ---- drift ----------------------------------------------------------------------------------------
def decay(rng, n: int = policy.STEADY_BUDGET, after: int = accuracy_faults.DECAY_AFTER,
          wrong_after: float = accuracy_faults.DECAY_PERCENT / 100) -> np.ndarray:
    """The accuracy_decay fault: healthy for ``after`` requests, then answers wrong ``wrong_after`` more often."""
    out = rng.random(n) > P_WRONG
    out[after:] &= ~(rng.random(n - after) < wrong_after)
    return out


def drift(row, outcomes):
    return ad.drift(list(map(bool, outcomes)), name="accuracy[drift]", quantity="early - late",
                    effect=policy.DRIFT_EFFECT, alpha=alpha(row), beta=DEFAULT_BETA)


def test_steady_run_verifies_and_decay_fails_the_drift_decision(row):
    rng = np.random.default_rng(4)
    steady = [drift(row, rng.random(policy.STEADY_BUDGET) > P_WRONG).status for _ in range(100)]
    assert steady.count("failed") <= 1 and steady.count("verified") >= 90
    decayed = [decay(rng) for _ in range(100)]
    statuses = [drift(row, o).status for o in decayed]
    assert statuses.count("failed") >= 95
    # the absolute gate draws the run's first questions, before the decay: it verifies
    assert sum(absolute_verifies(row, o[:accuracy_faults.DECAY_AFTER]) != "failed" for o in decayed) >= 99
    d = drift(row, decayed[0])
    assert len(d.extra["windows"]) == policy.STEADY_BUDGET // ad.DRIFT_WINDOW and d.extra["compared_windows"] == 4


def test_drift_with_too_few_requests_decides_nothing(row):
    assert drift(row, [True] * 40).status == "inconclusive"


# ---- batch ----------------------------------------------------------------------------------------
def outcomes_of(correct, got=None, status="answered"):
    return [{"id": q, "correct": bool(c), "got": (got or {}).get(q, "1" if c else "0"), "seed": 1, "status": status}
            for q, c in zip(ids(len(correct)), correct)]


def test_batch_faults_fail_and_identical_answers_verify(row):
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("accuracy_suite", Path(__file__).parents[2] / "suites" / "test_accuracy_smoke.py")
    suite = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("accuracy_suite", suite)
    spec.loader.exec_module(suite)
    rng = np.random.default_rng(5)
    single = rng.random(policy.BATCH_SUBSET) > P_WRONG
    same = suite.batch_decision(row, outcomes_of(single), outcomes_of(single), alpha(row))
    assert same.status == "verified", same.summary()
    lost = outcomes_of(single)
    lost[3].update(status="unserved", got=None, correct=False)   # not served at full concurrency: not a difference
    assert suite.batch_decision(row, lost, outcomes_of(single), alpha(row)).status == "verified"
    # errors only in full batches: a few answers wrong at full concurrency (97% -> ~90%)
    full = single.copy()
    full[rng.choice(np.flatnonzero(single), size=4, replace=False)] = False
    d = suite.batch_decision(row, outcomes_of(full), outcomes_of(single), alpha(row))
    assert d.status == "failed" and len(d.extra["answers_differ"]) == 4, d.summary()  # deterministic: any difference
    assert absolute_verifies(row, list(full) + [True] * 16) != "failed"
    # a row without reproducible seeds is decided by McNemar alone: a batch-shape collapse fails it
    nondet = dataclasses.replace(row, expect={})
    assert suite.batch_decision(nondet, outcomes_of(full), outcomes_of(single), alpha(row)).status != "failed"
    heavy = single & ~(rng.random(len(single)) < 0.6)
    assert suite.batch_decision(nondet, outcomes_of(heavy), outcomes_of(single), alpha(row)).status == "failed"
    assert suite.steady_code(d) == "accuracy.batch_dependent"
    # a run that decays: the one-at-a-time answers, asked after it, are the worse side (live: the
    # accuracy-decay fault on SGLang: 0 wrong only batched, 22 only alone). It still fails, but names
    # no batch-shape cause
    decayed = single & ~(rng.random(len(single)) < 0.3)
    later = suite.batch_decision(row, outcomes_of(single), outcomes_of(decayed), alpha(row))
    assert later.status == "failed" and later.extra["later_side_worse"], later.summary()
    assert suite.steady_code(later) == "accuracy.drift" and "not an effect of batch shape" in later.detail


# ---- the baseline store ---------------------------------------------------------------------------
def test_request_seed_is_stable_and_per_question():
    assert ab.request_seed(1234, "gsm8k-test-0001") == ab.request_seed(1234, "gsm8k-test-0001")
    assert ab.request_seed(1234, "gsm8k-test-0001") != ab.request_seed(1234, "gsm8k-test-0002")
    assert ab.request_seed(1234, "gsm8k-test-0001") != ab.request_seed(1235, "gsm8k-test-0001")


def test_recorded_run_becomes_the_next_runs_baseline(tmp_path, row):
    run1 = tmp_path / "run1"
    ab.write_outcomes(run1, "reference", "think", outcomes_of([True, False, True]), run_id="r1")
    ab.write_outcomes(run1, "reference-sglang", "think", outcomes_of([True, True]), run_id="r1")
    assert ab.main(["record", str(run1), str(tmp_path / "base.json")]) == 0
    base, why = ab.resolve(row, "think", tmp_path / "run2", tmp_path / "base.json")
    assert why == "" and base.row == "reference" and base.scored() == dict(zip(ids(3), [True, False, True]))
    assert "recorded run r1" in base.source and "base.json" in base.source
    assert ab.resolve(row, "nonthink", tmp_path / "run2", tmp_path / "base.json")[0] is None
    # --if-missing keeps a baseline that exists
    ab.write_outcomes(run1, "reference", "think", outcomes_of([False] * 3), run_id="r1b")
    assert ab.main(["record", str(run1), str(tmp_path / "base.json"), "--if-missing"]) == 0
    assert ab.resolve(row, "think", tmp_path, tmp_path / "base.json")[0].scored()[ids(1)[0]] is True
    # a results directory is a store too
    assert ab.resolve(row, "think", tmp_path, run1)[0].scored()[ids(1)[0]] is False
    # --add-missing keeps the rows the baseline has and adds a row (and a mode) it lacks
    ab.write_outcomes(run1, "reference", "nonthink", outcomes_of([True] * 2), run_id="r1b")
    ab.write_outcomes(run1, "reference-ng", "think", outcomes_of([True]), run_id="r1b")
    assert ab.main(["record", str(run1), str(tmp_path / "base.json"), "--add-missing"]) == 0
    store, _ = ab.load_store(tmp_path / "base.json")
    assert store["reference"]["think"]["run_id"] == "r1"                       # kept, not replaced
    assert store["reference"]["nonthink"]["run_id"] == "r1b" and "reference-ng" in store


def test_a_merged_runs_runners_record_one_store(tmp_path):
    twin = next(r for r in load().rows if r.expect.get("accuracy_baseline"))
    a, b = tmp_path / "runner-a", tmp_path / "runner-b"
    ab.write_outcomes(a, twin.expect["accuracy_baseline"], "think", outcomes_of([True, True, False]))
    ab.write_outcomes(b, "reference", "think", outcomes_of([True]))
    assert ab.main(["record", str(a), str(b), str(tmp_path / "merged.json")]) == 0
    store, desc = ab.load_store(tmp_path / "merged.json")
    assert set(store) == {twin.expect["accuracy_baseline"], "reference"} and "runner-a, runner-b" in desc
    base, _ = ab.resolve(twin, "think", tmp_path / "gpu-run", tmp_path / "merged.json")
    assert base.row == twin.expect["accuracy_baseline"] and "merged.json" in base.source
    assert "accuracy_baseline" in base.source  # the matrix's declaration and its basis are named


def test_no_baseline_says_so(tmp_path, row):
    base, why = ab.resolve(row, "think", tmp_path, None)
    assert base is None and "no baseline" in why and "absolute gate" in why
    with pytest.raises(ValueError, match="no such file"):
        ab.resolve(row, "think", tmp_path, tmp_path / "missing.json")


def test_declared_twin_in_the_same_run(tmp_path):
    m = load()
    twins = [r for r in m.rows if r.expect.get("accuracy_baseline")]
    assert twins, "the matrix declares no accuracy baseline twin"
    for r in twins:
        assert m.row(r.expect["accuracy_baseline"]).id != r.id
    r = twins[0]
    ab.write_outcomes(tmp_path, r.expect["accuracy_baseline"], "think", outcomes_of([True] * 4))
    base, why = ab.resolve(r, "think", tmp_path, None)
    assert base.row == r.expect["accuracy_baseline"] and "in this run" in base.source
    assert "names row" in ab.resolve(r, "nonthink", tmp_path, None)[1]


def test_signoff_keeps_the_verified_rows_outcomes(tmp_path, row):
    cells = [{"row": "reference", "feature": "accuracy_smoke", "status": "verified"},
             {"row": "reference-sglang", "feature": "accuracy_smoke", "status": "failed"}]
    doc = {"schema": 1, "run": {"id": "run-x"}, "cells": cells}
    from glmverify.document import MATRIX_JSON
    (tmp_path / MATRIX_JSON).write_text(json.dumps(doc))
    ab.write_outcomes(tmp_path, "reference", "think", outcomes_of([True, True]))
    ab.write_outcomes(tmp_path, "reference-sglang", "think", outcomes_of([False]))
    try:
        rec = signoff.sign(tmp_path, by="Jane Doe")
    except signoff.SignoffError as exc:  # the test matrix is minimal; the baseline part is what is tested
        pytest.skip(f"minimal matrix refused: {exc}")
    assert rec["accuracy_baseline"]["rows"] == ["reference"]
    base, _ = ab.resolve(row, "think", tmp_path / "next", tmp_path)
    assert base is not None and "signed by Jane Doe" in base.source
    store, _ = ab.load_store(tmp_path)
    assert "reference-sglang" not in store


def test_family_spends_the_alpha_on_the_new_decisions(row):
    names = policy.family(row, True)
    assert {"accuracy[paired:think]", "accuracy[paired:nonthink]", "accuracy[drift]", "accuracy[batch]"} <= set(names)
    assert [r.name for r in policy.rules(row, True)][:2] == ["accuracy[think]", "accuracy[nonthink]"]


# ---- the planted faults' rewrites (offline) --------------------------------------------------------
def test_wrong_number_rewrites_only_the_final_answer():
    text = "12 apples and 3 pears: 15.\nThe answer is 1,234."
    assert accuracy_faults.wrong_number(text) == "12 apples and 3 pears: 15.\nThe answer is 1235."
    assert accuracy_faults.wrong_number("no number here") == "no number here"
    from glmverify.gsm8k import extract
    assert extract(accuracy_faults.wrong_number("The answer is 7.")) == "8"


def gsm8k_request(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"Question {i}?\n\nEnd your answer with 'The answer is N.' "
                                                      "where N is the final number."}]}


def test_subtle_drop_hits_about_its_share_of_questions_whatever_the_answers_say():
    """Chosen by the question: the stand-in answers only 'The answer is N.', and a choice hashed
    from that text followed how often the chosen numbers occur (live: 10 of 512, not 5%)."""
    from glmverify.faultproxy.registry import RespondContext

    def hit(i):
        ctx = RespondContext(request=None, kind="chat", stream=False, body=gsm8k_request(i), state={})
        when = accuracy_faults._subtle_decide(ctx)
        return when is not None and when("The answer is 18.")
    hits = [hit(i) for i in range(4000)]
    assert 0.035 <= sum(hits) / 4000 <= 0.065, sum(hits)
    assert [hit(i) for i in range(200)] == hits[:200]          # the same questions every run
    assert accuracy_faults.is_gsm8k(gsm8k_request(1)) and not accuracy_faults.is_gsm8k(
        {"messages": [{"role": "user", "content": "hello"}]})
    assert accuracy_faults.question(gsm8k_request(3)).startswith("Question 3?")
    body = {"choices": [{"message": {"content": "The answer is 7."}}]}
    assert accuracy_faults.rewrite_body(body, lambda c: True)["choices"][0]["message"]["content"] == "The answer is 8."


def test_decay_and_batch_decide_from_the_proxy_state():
    from glmverify.faultproxy.registry import RespondContext

    ctx = RespondContext(request=None, kind="chat", stream=False, body={}, state={})
    whens = [accuracy_faults._decay_decide(ctx) for _ in range(accuracy_faults.DECAY_AFTER + 400)]
    assert all(w is None for w in whens[:accuracy_faults.DECAY_AFTER])
    late = [w(f"The answer is {i}.") for i, w in enumerate(whens[accuracy_faults.DECAY_AFTER:])]
    assert 0.18 <= sum(late) / len(late) <= 0.32
    state: dict = {}

    def start(i):
        return accuracy_faults._batch_decide(RespondContext(request=None, kind="chat", stream=False,
                                                            body=gsm8k_request(i), state=state))
    alone = [start(i) for i in range(1)]
    accuracy_faults._batch_done(RespondContext(request=None, kind="chat", stream=False, body={}, state=state))
    assert alone == [None] and state["accuracy_in_flight"] == 0
    # one at a time, never; with more than BATCH_K in flight, about BATCH_PERCENT of the questions
    assert all(start(i) is None for i in range(accuracy_faults.BATCH_K)) and state["accuracy_in_flight"] == 8
    crowded = [start(i) is not None for i in range(8, 4008)]
    assert 0.035 <= sum(crowded) / len(crowded) <= 0.065, sum(crowded)
    single = []
    for i in range(8, 4008):
        state["accuracy_in_flight"] = 0
        single.append(start(i) is not None)
    assert not any(single)


def test_catalogue_entries_name_the_accuracy_faults():
    from glmverify import knowledge

    entries = {e["id"] if isinstance(e, dict) else e.id: e for e in knowledge.catalogue()}
    for fid in ("accuracy-subtle-drop", "accuracy-decay", "accuracy-batch-errors"):
        assert fid in entries, sorted(entries)[:5]


def test_seeded_requests_follow_the_rows_declared_limit(row):
    from glmverify.options import Options
    from pathlib import Path

    opts = Options(matrix_path=Path("matrix.yaml"), results_dir=Path("r"), concurrency=64)
    c, basis = policy.seeded_concurrency(row, opts)
    assert c == 1 and "chunked prefill" in basis   # the vLLM CPU reference: measured engine crash
    sglang = load().row("reference-sglang")
    assert policy.seeded_concurrency(sglang, opts) == (64, "the run's --concurrency")
    assert policy.paired_looks(64, 0, 1319) == (64, 128, 256, 512)
    assert policy.paired_looks(64, 0, 100) == (64, 100) and policy.paired_looks(8, 16, 1319) == (8, 16)
