"""serving_performance: the row's speed claim measured with ``vllm bench serve``, cross-checked
against the engine's own counters, and decided against the signed baseline.

One measurement serves three checks (the ``measured`` fixture, once per row): per concurrency
level of the row's shape (``glmverify.performance.shape_of``), warm-up requests in a client run of
their own (excluded: the counters are read after it), the cache flushed where the engine allows
it before every window (SGLang ``/flush_cache``; vLLM ``/reset_prefix_cache`` exists only in its
dev mode, and the random prompts share no prefix anyway), then windows of the shape, each one
client run between two ``/metrics`` scrapes, drawn look by look until both regression rules of the level decide.

* ``test_client_report``: every window's report complete (TTFT, TPOT, ITL, E2E at mean, median
  and P99; throughput) with every request completed and none failed;
* ``test_counters_agree``: each window's client figures within ``performance.TOLERANCE`` of the
  engine's counters (requests, output tokens, mean TTFT, TPOT, E2E); a disagreement fails with both;
* ``test_no_regression``: per level, TPOT and output throughput against the baseline
  (``performance.regression_rules``): failed beyond the effect, inconclusive when the windows'
  noise allows no decision or no baseline applies (the reason says which).

A row whose guides make no speed claim skips every check (its cell stays ``not_run`` with the
declared reason).
"""
from __future__ import annotations

import httpx
import pytest

from glmverify import benchclient, performance, policy
from glmverify.checks import Inconclusive, conclude, expect
from glmverify.client import parse_prometheus
from glmverify.matrix import FEATURES, engine_kind
from glmverify.paths import STANDIN_MODEL_DIR
from glmverify.verdicts import INCONCLUSIVE, decide

if performance.FEATURE not in FEATURES:  # until the matrix lists the feature (matrix-snippet-perf.yaml)
    pytest.skip(f"{performance.FEATURE} is not among the matrix's features yet", allow_module_level=True)
pytestmark = pytest.mark.feature(performance.FEATURE)
FLUSH_PATHS = {"sglang": "/flush_cache", "vllm": "/reset_prefix_cache"}
WINDOW_TIMEOUT_S = 1800.0


def _scrape(engine) -> dict:
    with engine.client.http(timeout=30) as h:
        r = h.get("/metrics")
    expect(r.status_code == 200, f"GET /metrics: HTTP {r.status_code}: the engine's counters are needed to vouch "
                                 "for the client's figures (SGLang: launch with --enable-metrics)")
    return performance.counters(parse_prometheus(r.text), engine.client.engine)


def _flush(engine) -> str:
    path = FLUSH_PATHS.get(engine_kind(engine.client.engine))
    try:
        with engine.client.http(timeout=60) as h:
            code = h.post(path).status_code if path else None
    except httpx.HTTPError as exc:
        code = f"error {exc}"
    if code == 200:
        return f"POST {path}: 200"
    return f"POST {path}: {code}: the engine does not allow flushing here; random prompts share no prefix"


def _kind(rule) -> str:
    """``perf[tpot:c4]`` -> ``tpot``: which samples a regression rule decides on."""
    return rule.name.split("[", 1)[1].split(":", 1)[0]


class Measurement:
    """Everything the three checks read: per level the windows, cross-checks and decisions."""

    def __init__(self, engine, shape: performance.Shape, results_dir, session: benchclient.BenchSession):
        self.engine, self.shape, self.dir, self.session = engine, shape, results_dir, session
        row = engine.row
        self.tokenizer = str(STANDIN_MODEL_DIR) if row.is_reference else row.model
        self.levels: dict[int, dict] = {}
        self.flush: list[str] = []
        self.host: dict = {}
        self.missing: dict[int, str] = {}   # level -> why no baseline applies
        self.seed = 0
        self.client_version = benchclient.client_version()

    def _argv(self, concurrency: int, num_prompts: int, name: str) -> list[str]:
        s = self.shape
        self.seed += 1  # a new random dataset per window: windows are independent draws
        return benchclient.bench_argv(
            base_url=self.engine.client.base_url, model=self.engine.model, tokenizer=self.tokenizer,
            input_len=s.input_len, output_len=s.output_len, range_ratio=s.client_range_ratio, num_prompts=num_prompts,
            concurrency=concurrency, seed=self.seed, result_path=str(self.dir / f"{name}.json"), ignore_eos=s.ignore_eos,
            request_rate=s.request_rate)

    def window(self, concurrency: int) -> tuple[performance.Report, dict]:
        level = self.levels[concurrency]
        i = len(level["windows"])
        if self.shape.flush_cache:  # as the Deploy panel's --flush-cache: before every run
            self.flush.append(_flush(self.engine))
        before = _scrape(self.engine)
        w = self.session.window(self._argv(concurrency, self.shape.num_prompts, f"c{concurrency}-w{i}"), concurrency,
                                WINDOW_TIMEOUT_S)
        after = _scrape(self.engine)
        report = performance.parse_report(w.report)
        table, problems = performance.cross_check(report, performance.counter_delta(before, after))
        level["windows"].append({"report": report, "cross_check": table, "problems": problems, "argv": w.argv,
                                 "seconds": round(w.seconds, 2)})
        return report, table

    def measure_level(self, concurrency: int, rules, baseline) -> None:
        level = self.levels.setdefault(concurrency, {"windows": [], "decisions": [], "baseline": baseline})
        if self.shape.warmups:
            self.session.window(self._argv(concurrency, self.shape.warmups, f"c{concurrency}-warmup"), concurrency,
                                WINDOW_TIMEOUT_S)
        looks = self.shape.looks if rules else self.shape.looks[:1]
        decisions = []
        for i, size in enumerate(looks):
            while len(level["windows"]) < size:
                self.window(concurrency)
                if level["windows"][-1]["problems"]:
                    # the engine does not vouch for this window: more windows would only cost time
                    level["stopped"] = f"window {len(level['windows']) - 1}: the client and the engine's counters disagree"
                    return
            if not rules:
                break
            reports = [w["report"] for w in level["windows"]]
            samples = performance.regression_samples(reports, baseline[0])
            decisions = [decide(r, samples[_kind(r)], look=i) for r in rules if samples[_kind(r)]]
            if decisions and all(d.status != INCONCLUSIVE for d in decisions):
                break
        for d in decisions:
            d.requests = len(level["windows"]) * self.shape.num_prompts
        level["decisions"] = decisions

    def evidence(self) -> dict:
        s = self.shape
        out = {"client": {"name": "vllm bench serve", "version": self.client_version, "pinned": benchclient.PINNED},
               "regime": s.regime, "claim": s.claim, "source": s.source, "tokenizer": self.tokenizer,
               "flush_cache": sorted(set(self.flush)), "warmups_excluded": s.warmups, "host": self.host,
               "engine_version": self.engine.evidence.get("engine_version") or self.engine.row.engine_version,
               "levels": {}}
        for c, level in self.levels.items():
            out["levels"][str(c)] = {
                "baseline": level["baseline"][1] if level["baseline"] else None,
                "windows": [{"report": w["report"].evidence(), "cross_check": w["cross_check"], "seconds": w["seconds"]}
                            for w in level["windows"]],
                "window_records": [performance.window_record(w["report"]) for w in level["windows"]]}
        if self.levels:
            first = next(iter(self.levels.values()))["windows"]
            out["command"] = "vllm bench serve " + " ".join(first[0]["argv"]) if first else None
        return out


@pytest.fixture(scope="module")
def measured(engine, options):
    row = engine.row
    shape = performance.shape_of(row)
    if shape is None:
        pytest.skip(f"{row.id}: {performance.NO_CLAIM}")
    results = options.results_dir / "performance" / row.id
    results.mkdir(parents=True, exist_ok=True)
    data, host = performance.load_baseline(), performance.host_fingerprint()
    base_family = len(policy.family(row, engine.adapter.shows_rendered_prompt))
    alpha = performance.perf_alpha(row, 2 * len(shape.concurrency), base_family)
    # one client process for the whole measurement: vLLM's import costs tens of seconds on a busy CPU
    with benchclient.BenchSession(results / "bench.log") as session:
        m = Measurement(engine, shape, results, session)
        m.host = host
        for c in shape.concurrency:
            means, basis = performance.baseline_for(row, shape, c, data, host)
            rules = performance.regression_rules(row, shape, c, alpha, basis) if means else []
            if not means:
                m.missing[c] = basis
            m.measure_level(c, rules, (means, basis) if means else None)
    return m


def test_client_report(measured, evidence):
    """Every window: the report has every figure (parse_report) and every request completed."""
    evidence.add(**measured.evidence())
    for c, level in measured.levels.items():
        for i, w in enumerate(level["windows"]):
            r = w["report"]
            expect(r.failed == 0 and r.completed == measured.shape.num_prompts,
                   f"concurrency {c} window {i}: {r.completed} of {measured.shape.num_prompts} requests completed, "
                   f"{r.failed} failed")
            expect(r.output_throughput > 0 and r.latency["tpot"]["mean"] > 0,
                   f"concurrency {c} window {i}: no tokens measured (throughput {r.output_throughput}, "
                   f"TPOT {r.latency['tpot']['mean']})")


def test_counters_agree(measured, evidence):
    """Every window: the client's figures within tolerance of the engine's own counters."""
    tables, problems = {}, []
    for c, level in measured.levels.items():
        for i, w in enumerate(level["windows"]):
            tables[f"c{c}-w{i}"] = w["cross_check"]
            problems += [f"concurrency {c} window {i}: {p}" for p in w["problems"]]
    evidence.add(cross_check=tables, tolerance={k: list(v) for k, v in performance.TOLERANCE.items()})
    expect(not problems, "the benchmark client and the engine's counters disagree: " + "; ".join(problems[:6]))


def test_no_regression(measured, evidence):
    """Per level, TPOT and output throughput against the baseline (sequential over windows)."""
    decisions = [d for level in measured.levels.values() for d in level["decisions"]]
    evidence.add(baselines={str(c): (lv["baseline"][1] if lv["baseline"] else measured.missing.get(c))
                            for c, lv in measured.levels.items()})
    stopped = {c: lv["stopped"] for c, lv in measured.levels.items() if lv.get("stopped")}
    if stopped:  # never decide on windows the engine does not vouch for (test_counters_agree fails them)
        evidence.add(decisions=[])
        raise Inconclusive("INCONCLUSIVE: no decision on windows the engine's counters do not vouch for: " + "; ".join(
            f"concurrency {c}: {why}" for c, why in stopped.items()))
    expect(bool(decisions) or bool(measured.missing), "no regression decision was made and no reason recorded")
    if measured.missing and not decisions:
        evidence.add(decisions=[])
        raise Inconclusive("INCONCLUSIVE: no baseline applies: " + "; ".join(
            f"concurrency {c}: {why}" for c, why in measured.missing.items()))
    conclude(*decisions, evidence=evidence, context=(
        "; ".join(f"concurrency {c}: no baseline ({why})" for c, why in measured.missing.items())))
    if measured.missing:
        raise Inconclusive("INCONCLUSIVE: decided where a baseline applies; " + "; ".join(
            f"concurrency {c}: {why}" for c, why in measured.missing.items()))
