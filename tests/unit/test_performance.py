"""serving_performance offline: the client's report, the cross-check, the regression decision, the
row's shape and plan, and the planted slowdowns' effect on timings.

The reports are ``vllm bench serve`` 0.32.0's own saved JSON (``fixtures/performance/``: one run
against a server pacing 10 ms per token, one against a closed port); the decisions run on
synthetic windows whose noise is stated in each test.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from glmverify import benchclient, performance
from glmverify.faultproxy import FAULTS
from glmverify.faultproxy.perf_faults import FIRST_TOKEN_DELAY_S, TOKEN_DELAY_S, is_token_line, schedule
from glmverify.matrix import load
from glmverify.plan import render_plan
from glmverify.verdicts import FAILED, INCONCLUSIVE, VERIFIED, run_sequential, simulate
from helpers.perf_stubs import REPORTS, SHAPE, StubEngine, StubSession, measure, metrics_text, report, with_shape



@pytest.fixture(scope="module")
def matrix():
    return load()


def fake_report(tpot_ms: float, throughput: float, ttft_ms: float = 100.0, completed: int = 8) -> performance.Report:
    lat = {m: {"mean": v, "median": v, "p99": v} for m, v in
           (("ttft", ttft_ms), ("tpot", tpot_ms), ("itl", tpot_ms), ("e2el", ttft_ms + 31 * tpot_ms))}
    return performance.Report(completed=completed, failed=0, duration_s=10.0, total_input_tokens=512,
                              total_output_tokens=32 * completed, request_throughput=completed / 10.0,
                              output_throughput=throughput, latency=lat)


# ---- the client's report ------------------------------------------------------------------------
def test_parse_report_reads_the_clients_figures():
    data = report()
    r = performance.parse_report(data)
    assert (r.completed, r.failed, r.total_output_tokens) == (6, 0, 96)
    assert r.output_throughput == data["output_throughput"] and r.request_throughput == data["request_throughput"]
    for metric in performance.PERCENTILE_METRICS:
        assert r.latency[metric] == {"mean": data[f"mean_{metric}_ms"], "median": data[f"median_{metric}_ms"],
                                     "p99": data[f"p99_{metric}_ms"]}
    # the pacing server sends a token every 10 ms: the client's TPOT says so
    assert 9.0 < r.latency["tpot"]["mean"] < 20.0


def test_parse_report_names_what_is_missing():
    data = report()
    del data["p99_itl_ms"], data["output_throughput"]
    with pytest.raises(performance.ReportError, match="p99_itl_ms, .*|output_throughput.*p99_itl_ms"):
        performance.parse_report(data)


def test_a_window_that_reached_nothing_parses_with_its_failures_and_gives_no_ratio():
    r = performance.parse_report(report("vllm-bench-serve-0.32.0-unreachable.json"))
    assert (r.completed, r.failed) == (0, 2)
    assert performance.regression_samples([r], {"tpot_ms": 10.0, "output_throughput": 100.0}) == {"tpot": [], "throughput": []}


def test_bench_argv_is_the_shape_in_the_clients_terms():
    argv = benchclient.bench_argv(base_url="http://127.0.0.1:8000/", model="m", tokenizer="tok", input_len=8192,
                                  output_len=1024, range_ratio=performance.client_range_ratio(1.0, "sglang"),
                                  num_prompts=32, concurrency=16, seed=3, result_path="out/w0.json")
    pairs = dict(zip(argv[::1], argv[1:]))
    assert pairs["--random-input-len"] == "8192" and pairs["--random-output-len"] == "1024"
    assert pairs["--random-range-ratio"] == "0" and pairs["--max-concurrency"] == "16"
    assert pairs["--base-url"] == "http://127.0.0.1:8000" and pairs["--backend"] == "openai-chat"
    assert "--ignore-eos" in argv and pairs["--percentile-metrics"] == "ttft,tpot,itl,e2el"
    assert pairs["--result-filename"] == "w0.json" and pairs["--num-warmups"] == "0"


def test_a_natural_workload_is_the_clients_custom_dataset(matrix, tmp_path):
    from glmverify.perf_measurement import GSM8K_PROMPTS, write_prompts
    shape = performance.shape_of(matrix.row("reference-ngram"))
    assert shape.workload == "gsm8k" and shape.concurrency == (1,) and shape.latency == "e2el"
    items = [{"question": f"q{i} \"quoted\""} for i in range(GSM8K_PROMPTS + 5)]
    path = write_prompts(items, tmp_path / "p.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == GSM8K_PROMPTS and json.loads(lines[0]) == {"prompt": 'q0 "quoted"'}
    argv = benchclient.bench_argv(base_url="http://h:1", model="m", tokenizer="t", input_len=0, output_len=256,
                                  range_ratio=0.0, num_prompts=8, concurrency=1, seed=1, result_path="o/w.json",
                                  dataset_path=str(path))
    pairs = dict(zip(argv, argv[1:]))
    assert pairs["--dataset-name"] == "custom" and pairs["--dataset-path"] == str(path)
    assert pairs["--custom-output-len"] == "256" and "--random-input-len" not in argv
    assert any("--dataset-name custom (GSM8K questions)" in ln for ln in performance.plan_lines(matrix.row("reference-nospec")))
    bad = dataclasses.replace(shape, workload="sharegpt")
    assert any("workload must be one of" in p for p in performance.shape_problems(bad))


def test_accept_length_from_the_spec_decode_counters():
    m = {"vllm:spec_decode_num_drafts_total{engine=\"0\"}": 977.0,
         "vllm:spec_decode_num_accepted_tokens_total{engine=\"0\"}": 3373.0}
    c = performance.counters(m, "vllm")
    assert c["spec_drafts"] == 977.0 and c["spec_accepted"] == 3373.0
    assert performance.accept_length({"spec_drafts": 100.0, "spec_accepted": 350.0}) == 4.5
    assert performance.accept_length(performance.counters({}, "vllm")) is None   # no speculation: no figure
    assert "spec_drafts" not in performance.counters({}, "sglang")


def test_range_ratio_semantics():
    assert performance.client_range_ratio(1.0, "sglang") == 0.0   # SGLang [r*len, len]: 1.0 = fixed
    assert performance.client_range_ratio(0.5, "sglang") == 0.5
    assert performance.client_range_ratio(0.2, "vllm") == 0.2
    with pytest.raises(ValueError):
        performance.client_range_ratio(1.0, "guidellm")


# ---- the row's shape and the plan ---------------------------------------------------------------
def test_shape_from_the_row_and_no_claim(matrix):
    row = matrix.rows[0]
    bare = dataclasses.replace(row, expect={k: v for k, v in row.expect.items() if k != "performance"},
                               declared={k: v for k, v in row.declared.items() if k != performance.FEATURE})
    assert performance.shape_of(bare) is None
    assert any(performance.NO_CLAIM in ln for ln in performance.plan_lines(bare))
    declared = dataclasses.replace(bare, declared=row.declared)  # a declared cell's basis is the plan's reason
    assert any(row.declared_cell(performance.FEATURE).basis in ln for ln in performance.plan_lines(declared))
    live = performance.shape_of(row)  # the reference's own shape, from matrix.yaml
    assert live.regime == "reference" and live.concurrency == (1, 4) and live.client_range_ratio == 0.0
    shape = performance.shape_of(with_shape(row))
    assert shape.concurrency == (1, 16) and shape.client_range_ratio == 0.0 and shape.figures[1]["tpot_ms"] == 3.03
    with pytest.raises(ValueError, match="num_prompts"):
        performance.shape_of(with_shape(row, {**SHAPE, "num_prompts": 8}))


def test_plan_prints_the_shape_and_the_figure(matrix):
    row = with_shape(matrix.rows[0])
    text = render_plan(row)
    assert "serving_performance: low-latency" in text and "--random-input-len 8192" in text
    assert "concurrency 1: held to ttft_ms 662, tpot_ms 3.03, tok_s_per_gpu 34" in text
    assert "concurrency 16: no published figure: held to the row's signed baseline once one is recorded" in text
    gpu = render_plan(with_shape(next(r for r in matrix.rows if r.accelerators == 8)))
    assert "tok_s_per_gpu 34 (output 272 tok/s on 8 GPUs)" in gpu


# ---- the engine's counters and the cross-check --------------------------------------------------


def delta(before: str, after: str, engine="vllm") -> dict:
    from glmverify.client import parse_prometheus

    return performance.counter_delta(performance.counters(parse_prometheus(before), engine),
                                     performance.counters(parse_prometheus(after), engine))


def test_counters_sum_label_sets_and_take_window_deltas():
    d = delta(metrics_text(requests=0, tokens=0, ttft_s=0, tpot_s=0, e2e_s=0), metrics_text())
    assert d["requests"] == 8 and d["output_tokens"] == 256
    fig = performance.engine_figures(d)
    assert fig["ttft_ms"] == pytest.approx(100.0) and fig["tpot_ms"] == pytest.approx(12.5)


def test_cross_check_agrees_with_a_faithful_client():
    d = delta(metrics_text(0, 0, 0, 0, 0), metrics_text(ttft_s=0.1, tpot_s=0.0125, e2e_s=0.5))
    r = fake_report(tpot_ms=13.0, throughput=25.6, ttft_ms=110.0)   # client adds HTTP time: within slack
    table, problems = performance.cross_check(r, d)
    assert problems == [], problems
    assert table["tpot_ms"] == {"client": 13.0, "engine": 12.5, "tolerance": "25% + 5"}


def test_cross_check_shows_both_figures_when_they_disagree():
    d = delta(metrics_text(0, 0, 0, 0, 0), metrics_text(ttft_s=0.1, tpot_s=0.0125, e2e_s=0.5))
    slowed = fake_report(tpot_ms=12.5 + 1000 * TOKEN_DELAY_S, throughput=15.0, ttft_ms=110.0)
    _, problems = performance.cross_check(slowed, d)
    assert any(p.startswith("tpot_ms: client 62.5 vs engine 12.5") for p in problems), problems
    lost = dataclasses.replace(fake_report(12.5, 25.6), total_output_tokens=400)   # counted twice as many
    _, problems = performance.cross_check(lost, d)
    assert [p.split(":")[0] for p in problems] == ["output_tokens"]
    other = dataclasses.replace(fake_report(12.5, 25.6), completed=16)              # hit another server
    assert any(p.startswith("requests") for p in performance.cross_check(other, d)[1])


def test_cross_check_fails_a_window_the_engine_cannot_vouch_for():
    d = delta("vllm:generation_tokens_total 0\n", "vllm:generation_tokens_total 256\n")
    _, problems = performance.cross_check(fake_report(12.5, 25.6), d)
    assert any("do not report" in p for p in problems) and len(problems) == 4


# ---- the regression decision --------------------------------------------------------------------
BASE = {"tpot_ms": 10.0, "output_throughput": 100.0}


def rules(matrix, looks=(3, 6, 10), effect=0.10, alpha=0.01 / 8):
    row = with_shape(matrix.rows[0], {**SHAPE, "looks": list(looks), "effect": effect})
    shape = performance.shape_of(row)
    return performance.regression_rules(row, shape, 1, alpha, "test baseline")


def windows(rng, n, slowdown=1.0, cv=0.03):
    """n windows of an engine ``slowdown`` times slower than the baseline, window-to-window noise ``cv``."""
    return [fake_report(BASE["tpot_ms"] * slowdown * math.exp(rng.normal(0, cv)),
                        BASE["output_throughput"] / slowdown * math.exp(rng.normal(0, cv))) for _ in range(n)]


def decide_windows(rule, reports):
    key = "tpot" if "tpot" in rule.name else "throughput"
    pool = iter(performance.regression_samples(reports, BASE)[key])
    return run_sequential(rule, lambda k: ([next(pool) for _ in range(k)], k))[0]


@pytest.mark.parametrize("slowdown, cv, status", [(1.0, 0.03, VERIFIED), (1.3, 0.03, FAILED), (1.1, 0.4, INCONCLUSIVE)])
def test_regression_decision_on_synthetic_windows(matrix, slowdown, cv, status):
    rng = np.random.default_rng(7)
    reports = windows(rng, 10, slowdown, cv)
    for rule in rules(matrix):
        d = decide_windows(rule, reports)
        assert d.status == status, d.summary()
        assert d.alpha == pytest.approx(0.01 / 8) and d.basis == "test baseline"


def test_regression_rule_error_rates_by_simulation(matrix):
    """At the reference's stated window noise (CV 5%): a conforming engine (no slowdown) false-fails
    at most alpha, a 25% slower engine fails with power >= 95%."""
    tpot = rules(matrix)[0]
    conforming = simulate(tpot, lambda rng, k: rng.normal(0.0, 0.05, k), runs=400, seed=1)
    slow = simulate(tpot, lambda rng, k: rng.normal(math.log(1.25), 0.05, k), runs=400, seed=2)
    assert conforming[FAILED] <= tpot.alpha + 0.01 and conforming[VERIFIED] >= 0.95
    assert slow[FAILED] >= 0.95 and slow[VERIFIED] == 0


def test_baseline_selection(matrix):
    row = with_shape(matrix.row("reference"))
    shape = performance.shape_of(row)
    host = {"cpu": "X", "cores": 2, "machine": "x86_64"}
    entry = {"engine_version": row.engine_version, "host": host, "signed_by": "A. Engineer", "recorded": "2026-12-05",
             "levels": {"1": {"tpot_ms": [10.0, 12.0], "output_throughput": [90.0, 110.0]}}}
    means, basis = performance.baseline_for(row, shape, 1, {"rows": {row.id: entry}}, host)
    assert means == {"tpot_ms": 11.0, "output_throughput": 100.0} and "A. Engineer" in basis
    means, why = performance.baseline_for(row, shape, 1, {"rows": {row.id: entry}}, {**host, "cpu": "Y"})
    assert means is None and "host-specific" in why
    means, why = performance.baseline_for(row, shape, 1, {"rows": {row.id: {**entry, "engine_version": "0.31.0"}}}, host)
    assert means is None and "0.31.0" in why
    means, why = performance.baseline_for(row, shape, 16, {"rows": {}}, host)
    assert means is None and "record one" in why


def test_evidence_sets_the_windows_beside_the_published_figure(matrix, tmp_path):
    from glmverify.perf_measurement import Measurement

    row = with_shape(next(r for r in matrix.rows if r.accelerators == 8))
    m = Measurement(StubEngine(row, None), performance.shape_of(row), tmp_path, None)
    m.levels[1] = {"windows": [{"report": fake_report(3.0, 272.0, ttft_ms=700.0), "cross_check": {}, "seconds": 1.0,
                                "argv": ["--backend", "openai-chat"]}],
                   "decisions": [], "baseline": None}
    got = m.evidence()["levels"]["1"]["against_figure"]
    assert got == {"figure": {"ttft_ms": 662.0, "tpot_ms": 3.03, "tok_s_per_gpu": 34.0},
                   "measured": {"ttft_ms": 700.0, "tpot_ms": 3.0, "tok_s_per_gpu": 34.0}}


def test_published_figure_is_the_baseline_of_a_gpu_row(matrix):
    row = with_shape(next(r for r in matrix.rows if r.accelerators == 8))
    means, basis = performance.baseline_for(row, performance.shape_of(row), 1, {"rows": {}})
    assert means == {"tpot_ms": 3.03, "output_throughput": 34 * 8} and "published figure" in basis


# ---- the planted slowdowns ----------------------------------------------------------------------
def sse(*deltas) -> list[bytes]:
    lines = [("data: " + json.dumps({"choices": [{"index": 0, "delta": d, "finish_reason": None}]}) + "\n").encode()
             for d in deltas]
    usage = b'data: {"choices": [], "usage": {"completion_tokens": 3}}\n'
    return [ln for pair in zip(lines, [b"\n"] * len(lines)) for ln in pair] + [usage, b"\n", b"data: [DONE]\n"]


def test_delay_schedule_holds_every_token_and_only_tokens():
    stream = sse({"role": "assistant"}, {"reasoning": "a"}, {"content": "b"}, {"tool_calls": [{"index": 0}]})
    plan = schedule(stream, TOKEN_DELAY_S, 0.0)
    held = [(hold, line) for hold, line in plan if hold]
    assert len(held) == 3 and all(is_token_line(line) for _, line in held)
    assert [h for h, _ in held] == pytest.approx([TOKEN_DELAY_S, 2 * TOKEN_DELAY_S, 3 * TOKEN_DELAY_S])
    first = schedule(stream, 0.0, FIRST_TOKEN_DELAY_S)
    assert [h for h, _ in first if h] == [FIRST_TOKEN_DELAY_S] * 3


def test_delay_fault_raises_tpot_by_the_delay():
    """A stream the engine sends every 12.5 ms, replayed through the schedule (a line leaves at its
    arrival plus its hold, never before the line ahead): TPOT grows by the delay, TTFT by the
    first-token hold."""
    tokens = [{"content": str(i)} for i in range(32)]
    stream = sse(*tokens)
    upstream = {i: 0.1 + 0.0125 * k for k, i in enumerate(i for i, ln in enumerate(stream) if is_token_line(ln))}

    def arrivals(per_token, first):
        t, out = 0.0, []
        for i, (delay, line) in enumerate(schedule(stream, per_token, first)):
            t = max(t, upstream.get(i, t) + delay)
            if i in upstream:
                out.append(t)
        return out

    def tpot(ts):
        return (ts[-1] - ts[0]) / (len(ts) - 1)

    plain, slowed, queued = arrivals(0, 0), arrivals(TOKEN_DELAY_S, 0), arrivals(0, FIRST_TOKEN_DELAY_S)
    assert tpot(plain) == pytest.approx(0.0125)
    assert tpot(slowed) == pytest.approx(0.0125 + TOKEN_DELAY_S)
    assert queued[0] - plain[0] == pytest.approx(FIRST_TOKEN_DELAY_S) and tpot(queued) < 0.0126 + 1e-9


def test_delay_faults_are_registered_as_respond_hooks():
    for name in ("perf_token_delay", "perf_first_token_delay"):
        assert FAULTS[name].respond is not None and FAULTS[name].chat is None


# ---- signing a baseline (bench/performance_regression.py) ---------------------------------------
def test_only_vouched_windows_become_a_baseline():
    import importlib.util

    from glmverify.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location("performance_regression", REPO_ROOT / "bench" / "performance_regression.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    records = [performance.window_record(fake_report(t, 100.0)) for t in (10.0, 11.0, 12.0)]
    ev = {"engine_version": "0.32.0", "host": {"cpu": "X"}, "levels": {"1": {"window_records": records}}}
    cell = {"row": "reference", "feature": performance.FEATURE, "evidence": {"checks": {"test_client_report": ev}},
            "checks": [{"id": "test_client_report", "outcome": "passed"}, {"id": "test_counters_agree", "outcome": "passed"}]}
    got, why = bench.recordable(cell)
    assert got is ev and why == ""
    entry = bench.baseline_entry(got, "A. Engineer", "2026-12-05")
    assert entry["levels"]["1"]["tpot_ms"] == [10.0, 11.0, 12.0] and entry["host"] == {"cpu": "X"}
    disagreeing = {**cell, "checks": [{"id": "test_client_report", "outcome": "passed"},
                                      {"id": "test_counters_agree", "outcome": "failed"}]}
    assert bench.recordable(disagreeing) == (None, "test_counters_agree failed")
    # what was signed is what the decision reads back
    row_means, basis = performance.baseline_for(
        with_shape(load().row("reference")), performance.shape_of(with_shape(load().row("reference"))), 1,
        {"rows": {"reference": entry}}, {"cpu": "X"})
    assert row_means["tpot_ms"] == pytest.approx(11.0) and "A. Engineer" in basis


# ---- the measurement loop (glmverify.perf_measurement) ------------------------------------------
def test_measurement_warms_up_apart_and_stops_at_the_first_look_that_decides(matrix, tmp_path):
    m, session = measure(matrix, lambda k: 10.0 + 0.1 * (k % 3), tmp=tmp_path)
    level = m.levels[1]
    assert session.calls[0] == 2 and session.calls[1:] == [8, 8, 8]      # warm-up, then one look of 3 windows
    assert [d.status for d in level["decisions"]] == [VERIFIED, VERIFIED]
    assert all(not w["problems"] for w in level["windows"])                # the warm-up is outside every delta
    assert m.evidence()["levels"]["1"]["against_figure"] is None          # the reference has no published figure
    assert m.evidence()["flush_cache"] == ["POST /reset_prefix_cache: 404: the engine does not allow flushing here; "
                                           "random prompts share no prefix"]


def test_a_recording_run_signs_the_second_looks_windows_however_early_it_decides(matrix, tmp_path):
    """make perf-baseline held to an older baseline: deciding at the first look must not leave a new
    baseline of three windows (the next launches sat 1.3-1.6x above one)."""
    m, session = measure(matrix, lambda k: 10.0 + 0.1 * (k % 3), tmp=tmp_path, recording=True)
    assert session.calls[1:] == [8] * 6 and len(m.levels[1]["windows"]) == 6
    assert [d.status for d in m.levels[1]["decisions"]] == [VERIFIED, VERIFIED]


def test_measurement_stops_on_a_window_the_engine_does_not_vouch_for(matrix, tmp_path):
    # a hop in front of the engine adds 50 ms per token: the client sees 60, the engine 10
    m, session = measure(matrix, 10.0 + 1000 * TOKEN_DELAY_S, engine_tpot_ms=10.0, tmp=tmp_path)
    level = m.levels[1]
    # the second window disagrees too: the disagreement reproduces, the level stops there
    assert len(level["windows"]) == 2 and level["decisions"] == [] and "two windows in a row" in level["stopped"]
    assert level["windows"][0]["problems"][0].startswith("tpot_ms: client 60 vs engine 10")
    assert m.evidence()["levels"]["1"]["window_records"] == []          # nothing disowned is ever signed


def test_a_lone_stalled_window_is_set_aside_and_replaced(matrix, tmp_path):
    """One window late at the client (the engine's counters fast) is not decided on; a window more
    is drawn, and the level decides on the windows the counters vouch for."""
    m, session = measure(matrix, lambda k: 60.0 if k == 3 else 10.0 + 0.1 * (k % 3), engine_tpot_ms=10.0, tmp=tmp_path)
    level = m.levels[1]
    assert session.calls[1:] == [8, 8, 8, 8] and not level.get("stopped")   # warm-up is call 1; window 2 (call 3) redrawn
    assert [bool(w.get("set_aside")) for w in level["windows"]] == [False, True, False, False]
    assert [d.status for d in level["decisions"]] == [VERIFIED, VERIFIED]
    ev = m.evidence()["levels"]["1"]
    assert len(ev["window_records"]) == 3 and ev["set_aside"][0].startswith("window 1: tpot_ms: client 60 vs engine 10")


def test_disagreements_beyond_the_allowance_stop_the_level(matrix, tmp_path):
    from glmverify.perf_measurement import SET_ASIDE_MAX
    # calls 3, 5, 7 ... disagree, never two in a row; the windows between are too noisy to decide at the first look
    every_other = lambda k: 60.0 if k % 2 else (9.0 if k % 4 else 12.0)  # noqa: E731
    m, _ = measure(matrix, every_other, engine_tpot_ms=10.0, tmp=tmp_path)
    level = m.levels[1]
    assert f"more than {SET_ASIDE_MAX} windows" in level["stopped"] and level["decisions"] == []
    assert sum(bool(w.get("set_aside")) for w in level["windows"]) == SET_ASIDE_MAX + 1


def test_measurement_fails_a_slow_engine_and_leaves_noise_inconclusive(matrix, tmp_path):
    slow, _ = measure(matrix, 13.0, tmp=tmp_path)
    assert [d.status for d in slow.levels[1]["decisions"]] == [FAILED, FAILED]
    rng = np.random.default_rng(3)
    noisy, session = measure(matrix, lambda k: 10.5 * math.exp(rng.normal(0, 0.15)), tmp=tmp_path)
    assert INCONCLUSIVE in [d.status for d in noisy.levels[1]["decisions"]] and sum(session.calls[1:]) == 10 * 8


def test_live_reference_windows_agree_and_a_held_first_token_does_not():
    """The windows of a live run on the vLLM reference (client report and engine figures as
    recorded) agree within TOLERANCE; the same windows with the first token held a second do not."""
    doc = json.loads((REPORTS / "reference-live-windows.json").read_text())
    assert len(doc["windows"]) >= 3
    for w in doc["windows"]:
        r = performance.Report(**{k: v for k, v in w["report"].items()})
        eng = {k: v["engine"] for k, v in w["cross_check"].items()}
        n = eng["requests"]
        d = {"requests": n, "output_tokens": eng["output_tokens"], "ttft_sum": eng["ttft_ms"] * n / 1000,
             "ttft_count": n, "tpot_sum": eng["tpot_ms"] * n / 1000, "tpot_count": n,
             "e2el_sum": eng["e2el_ms"] * n / 1000, "e2el_count": n}
        assert performance.cross_check(r, d)[1] == [], (w["concurrency"], w["window"])
        lat = {**r.latency, **{m: {**r.latency[m], "mean": r.latency[m]["mean"] + 1000 * FIRST_TOKEN_DELAY_S}
                               for m in ("ttft", "e2el")}}
        held = dataclasses.replace(r, latency=lat)
        assert [p.split(":")[0] for p in performance.cross_check(held, d)[1]] == ["ttft_ms", "e2el_ms"]


def test_without_a_baseline_the_level_runs_the_second_looks_windows(matrix, tmp_path):
    """No rules (no baseline applies): six windows to sign one from, no decision (a planted break
    after the first look measured three)."""
    from glmverify.perf_measurement import Measurement

    row = with_shape(matrix.row("reference"), {**SHAPE, "concurrency": [1], "num_prompts": 8, "figures": {}})
    shape = performance.shape_of(row)
    engine = StubEngine(row, None)
    session = StubSession(engine, 10.0)
    m = Measurement(engine, shape, tmp_path, session, "0.32.0")
    m.measure_level(1, [], None)
    assert session.calls == [2] + [8] * shape.looks[1] and m.levels[1]["decisions"] == []
