"""serving_performance's measurement: windows of ``vllm bench serve`` between two scrapes of the
engine's counters, drawn look by look until a level's regression rules decide.

``Measurement`` (used by suites/test_serving_performance.py; the unit tests drive it with a stub
client session and engine) keeps per concurrency level the windows (report, cross-check table,
disagreements, argv, seconds), the decisions, and why a level stopped or has no baseline:

* warm-up requests run as a client run of their own before a level's first window, so the
  counters are read after them (excluded from every figure);
* the cache is flushed before every window where the engine allows it (SGLang ``/flush_cache``;
  vLLM's ``/reset_prefix_cache`` exists only in its dev mode, and random prompts share no prefix);
* a window the engine's counters do not vouch for (``performance.cross_check``) is set aside (never
  decided on, never signed into a baseline) and the level draws one more in its place; a
  disagreement that reproduces stops the level: the next window disagrees too, or more than
  ``SET_ASIDE_MAX`` windows of the level do. A hop adding delay disagrees on every window and stops
  the level at its second; a lone stall does not (on the 2-core CPU reference the client shares the
  cores with the engine, and bench/verdicts.py saw single windows of a conforming launch arrive about
  a second late at the client while the engine's own E2E stayed at its usual 600 ms: 6 of 10 launches
  failed the cross-check when one window stopped the level);
* without a baseline a level runs the second look's windows (enough to sign one: its mean is
  taken as known by the decision, so it should not rest on three noisy windows); so does a run
  that records one while an older baseline applies (``recording``), however early it decides.

``unmeasured`` is the status rule for a row with nothing to compare with: when no level has a
signed baseline for this host (CPU rows) or engine version, and no published figure, nothing is
measured unless the run records a baseline (``RECORD_ENV``, set by ``make perf-baseline``). The
suite's checks then skip in their own call phase with the reason (``NO_BASELINE``), so the cell
keeps its declared ``not_run`` and the run does not count it undecided (exit 6): a clean machine
(CI) has no baseline, and a timing decision on a loaded machine with nothing to hold it to would
decide nothing anyway. A level without a comparison beside levels with one is measured, named in
the evidence and the decision's context, and likewise never makes the cell undecided.
"""
from __future__ import annotations

import httpx

import json
from pathlib import Path

from .benchclient import PINNED, BenchSession, bench_argv
from .checks import Failure
from .client import parse_prometheus
from .matrix import engine_kind
from .standin.build import model_dir_for
from .performance import (Report, Shape, accept_length, baseline_for, counter_delta, counters, cross_check,
                          parse_report, regression_samples, window_record)
from .verdicts import INCONCLUSIVE, decide

FLUSH_PATHS = {"sglang": "/flush_cache", "vllm": "/reset_prefix_cache"}
WINDOW_TIMEOUT_S = 1800.0
RECORD_ENV = "GLMVERIFY_PERF_RECORD"  # "1": measure without a baseline, to record one (make perf-baseline)
NO_BASELINE = "no baseline recorded for this host"
GSM8K_PROMPTS = 256  # questions in a gsm8k workload's prompt file (each window draws num_prompts, seeded)
SET_ASIDE_MAX = 2  # windows per level the counters may disown one at a time before the level stops


def unmeasured(row, shape: Shape, data: dict, host: dict | None, recording: bool = False) -> str | None:
    """Why the row's speed is not measured at all (the checks skip with it; the cell stays at its
    declared status, never undecided), or None when it is: some level has a baseline or a
    published figure to be held to, or the run records a baseline."""
    if recording:
        return None
    found = {c: baseline_for(row, shape, c, data, host) for c in shape.concurrency}
    if any(means for means, _ in found.values()):
        return None
    lead = NO_BASELINE if row.is_reference else "no signed baseline for this row"
    return (f"{lead} and no published figure at any level, so nothing is measured: "
            + "; ".join(f"concurrency {c}: {why}" for c, (_, why) in found.items())
            + " (make perf-baseline records one for the CPU reference)")


def vouched(level: dict) -> list[dict]:
    """A level's windows the engine's counters vouch for (the set-aside ones left out)."""
    return [w for w in level["windows"] if not w.get("set_aside")]


class MeasurementError(Failure):
    """The engine cannot vouch for any window (no /metrics): the check fails with the reason."""

    def __init__(self, message: str):
        super().__init__(message, "serving_performance.no_counters")


def scrape(engine) -> dict:
    with engine.client.http(timeout=30) as h:
        r = h.get("/metrics")
    if r.status_code != 200:
        raise MeasurementError(f"GET /metrics: HTTP {r.status_code}: the engine's counters are needed to vouch for the "
                               "client's figures (SGLang: launch with --enable-metrics)")
    return counters(parse_prometheus(r.text), engine.client.engine)


def flush(engine) -> str:
    path = FLUSH_PATHS.get(engine_kind(engine.client.engine))
    try:
        with engine.client.http(timeout=60) as h:
            code = h.post(path).status_code if path else None
    except httpx.HTTPError as exc:
        code = f"error {exc}"
    if code == 200:
        return f"POST {path}: 200"
    return f"POST {path}: {code}: the engine does not allow flushing here; random prompts share no prefix"


def write_prompts(items: list[dict], path: Path) -> Path:
    """The GSM8K questions as ``vllm bench serve``'s custom dataset (one ``{"prompt": ...}`` a line)."""
    path.write_text("".join(json.dumps({"prompt": it["question"]}) + "\n" for it in items[:GSM8K_PROMPTS]))
    return path


def rule_kind(rule) -> str:
    """``perf[tpot:c4]`` -> ``tpot``: which samples a regression rule decides on."""
    return rule.name.split("[", 1)[1].split(":", 1)[0]


class Measurement:
    """Everything the three checks read: per level the windows, cross-checks and decisions."""

    def __init__(self, engine, shape: Shape, results_dir, session: BenchSession, client_version: str | None = None,
                 prompts: Path | None = None):
        self.engine, self.shape, self.dir, self.session = engine, shape, results_dir, session
        if shape.workload != "random" and prompts is None:
            raise ValueError(f"workload {shape.workload!r} needs its prompt file")
        self.prompts = prompts   # the custom dataset of a natural workload (write_prompts); None: random
        row = engine.row
        # the reference serves the stand-in (its byte-level tokenizer); a GPU row its checkpoint's
        self.tokenizer = str(model_dir_for(row.profile)) if row.is_reference else row.model
        self.levels: dict[int, dict] = {}
        self.flushes: list[str] = []
        self.host: dict = {}
        self.missing: dict[int, str] = {}   # level -> why no baseline applies
        self.seed = 0
        # a run that records a baseline (make perf-baseline) signs at least the second look's windows
        # per level, decided or not: held to an older baseline, a level decided at its first look
        # would sign three windows (measured: a baseline of 3 windows at concurrency 4 that the next
        # launches sat 1.3-1.6x above)
        self.recording = False
        self.client_version = client_version

    def _argv(self, concurrency: int, num_prompts: int, name: str) -> list[str]:
        s = self.shape
        self.seed += 1  # a new random dataset per window: windows are independent draws
        return bench_argv(
            base_url=self.engine.client.base_url, model=self.engine.model, tokenizer=self.tokenizer,
            input_len=s.input_len, output_len=s.output_len, range_ratio=s.client_range_ratio, num_prompts=num_prompts,
            concurrency=concurrency, seed=self.seed, result_path=str(self.dir / f"{name}.json"), ignore_eos=s.ignore_eos,
            request_rate=s.request_rate, dataset_path=str(self.prompts) if self.prompts else None)

    def window(self, concurrency: int) -> tuple[Report, dict]:
        level = self.levels[concurrency]
        i = len(level["windows"])
        if self.shape.flush_cache:  # as the Deploy panel's --flush-cache: before every run
            self.flushes.append(flush(self.engine))
        before = scrape(self.engine)
        w = self.session.window(self._argv(concurrency, self.shape.num_prompts, f"c{concurrency}-w{i}"), concurrency,
                                WINDOW_TIMEOUT_S)
        after = scrape(self.engine)
        report = parse_report(w.report)
        delta = counter_delta(before, after)
        table, problems = cross_check(report, delta, self.shape.tolerance)
        level["windows"].append({"report": report, "cross_check": table, "problems": problems, "argv": w.argv,
                                 "seconds": round(w.seconds, 2), "accept_length": accept_length(delta)})
        return report, table

    def measure_level(self, concurrency: int, rules, baseline) -> None:
        level = self.levels.setdefault(concurrency, {"windows": [], "decisions": [], "baseline": baseline})
        if self.shape.warmups:
            self.session.window(self._argv(concurrency, self.shape.warmups, f"c{concurrency}-warmup"), concurrency,
                                WINDOW_TIMEOUT_S)
        # without a baseline: the second look's windows, enough to sign one whose mean is taken as known
        looks = self.shape.looks if rules else self.shape.looks[:2]
        decisions = []
        for i, size in enumerate(looks):
            while len(vouched(level)) < size:
                self.window(concurrency)
                if not level["windows"][-1]["problems"]:
                    continue
                level["windows"][-1]["set_aside"] = True
                disowned = [j for j, w in enumerate(level["windows"]) if w.get("set_aside")]
                again = len(disowned) > 1 and disowned[-2] == len(level["windows"]) - 2
                if again or len(disowned) > SET_ASIDE_MAX:
                    # the disagreement reproduces: the engine does not vouch for this level's windows
                    level["stopped"] = (f"windows {', '.join(map(str, disowned))}: the client and the engine's counters "
                                        f"disagree ({'two windows in a row' if again else f'more than {SET_ASIDE_MAX} windows'})")
                    return
            if not rules:
                continue  # nothing to decide: the windows are for signing a baseline
            reports = [w["report"] for w in vouched(level)]
            samples = regression_samples(reports, baseline[0], self.shape.latency)
            decisions = [decide(r, samples[rule_kind(r)], look=i) for r in rules if samples[rule_kind(r)]]
            enough = not self.recording or len(vouched(level)) >= self.shape.looks[:2][-1]
            if decisions and all(d.status != INCONCLUSIVE for d in decisions) and enough:
                break
        for d in decisions:
            d.requests = len(level["windows"]) * self.shape.num_prompts  # set-aside windows cost requests too
        level["decisions"] = decisions

    def _against_figure(self, concurrency: int, level: dict) -> dict | None:
        """The published figure next to the windows' means (TTFT too, which no rule decides yet)."""
        fig = self.shape.figures.get(concurrency)
        reports = [w["report"] for w in level["windows"] if w["report"].completed]
        if not fig or not reports:
            return None
        gpus = self.engine.row.accelerators or 1
        mean = lambda xs: round(sum(xs) / len(xs), 3)  # noqa: E731 - a one-line helper
        return {"figure": fig, "measured": {
            "ttft_ms": mean([r.latency["ttft"]["mean"] for r in reports]),
            "tpot_ms": mean([r.latency["tpot"]["mean"] for r in reports]),
            "tok_s_per_gpu": mean([r.output_throughput / gpus for r in reports])}}

    def evidence(self) -> dict:
        s = self.shape
        out = {"client": {"name": "vllm bench serve", "version": self.client_version, "pinned": PINNED},
               "regime": s.regime, "claim": s.claim, "workload": s.workload, "accelerators": self.engine.row.accelerators, "source": s.source, "tokenizer": self.tokenizer,
               "flush_cache": sorted(set(self.flushes)), "warmups_excluded": s.warmups, "host": self.host,
               "engine_version": self.engine.evidence.get("engine_version") or self.engine.row.engine_version,
               "levels": {}}
        for c, level in self.levels.items():
            out["levels"][str(c)] = {
                "baseline": level["baseline"][1] if level["baseline"] else None, "stopped": level.get("stopped"),
                "baseline_means": level["baseline"][0] if level["baseline"] else None,
                "windows": [{"report": w["report"].evidence(), "cross_check": w["cross_check"], "seconds": w["seconds"],
                             **({"accept_length": w["accept_length"]} if w.get("accept_length") else {}),
                             **({"set_aside": True} if w.get("set_aside") else {})} for w in level["windows"]],
                "set_aside": [f"window {j}: {'; '.join(w['problems'])}" for j, w in enumerate(level["windows"])
                              if w.get("set_aside")],
                "window_records": [window_record(w["report"]) for w in vouched(level)],
                "against_figure": self._against_figure(c, level)}
        if self.levels:
            first = next(iter(self.levels.values()))["windows"]
            out["command"] = ("vllm bench serve " + " ".join(first[0]["argv"])) if first else None
        return out
