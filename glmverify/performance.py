"""serving_performance: the speed a row's guide promises, measured, cross-checked and decided.

A row declares its benchmark shape in ``expect.performance`` (``shape_of``): the regime and the
guide's words for it, the source, the workload (concurrency levels, input/output lengths, prompts
per window, warm-up requests excluded from the measurement, the random-range ratio, flush-cache,
ignore-eos), the looks (windows per concurrency level) and the figures it is held to. A row
without the block makes no speed claim: its cell is ``not_run`` with ``NO_CLAIM``.

The guides' range ratio is written for SGLang's ``bench_serving`` (lengths uniform in
``[ratio * len, len]``, so 1.0 = fixed lengths); ``vllm bench serve`` 0.32 samples
``[len * (1 - ratio), len * (1 + ratio)]`` (0.0 = fixed). ``client_range_ratio`` converts, so the
seed's ``--random-range-ratio 1.0`` stays "every request exactly input/output long".

Three pieces, pure functions (the suite and ``glmverify.benchclient`` do the I/O):

* ``parse_report``: the client's saved JSON (``--save-result``) -> ``Report`` (TTFT, TPOT, ITL,
  E2E at mean/median/P99; request and output-token throughput; completed/failed);
* ``counters`` / ``cross_check``: the engine's own counters around a window (vLLM ``/metrics``;
  SGLang ``--enable-metrics``, the same histogram names under ``sglang:``) against the client's
  report: requests, output tokens, mean TTFT, mean TPOT and mean E2E each within ``TOLERANCE``.
  The client's times include HTTP and detokenization, so they may exceed the engine's by a stated
  slack; a gateway or proxy adding delay, a client counting tokens wrongly or a benchmark that
  hit another server all show as a disagreement with both figures;
* ``regression_rules`` / ``regression_samples``: per window, log(window / baseline mean) of TPOT
  or E2E latency (lower is better) and of output throughput (higher is better); a ``verdicts.Rule`` of kind mean
  on log scale, one bar at ``1 + effect`` (10%: verified when the ratio is confidently inside it,
  failed when confidently past it, ``inconclusive`` when the windows' noise allows neither). The
  baseline is the row's entry in ``fixtures/performance_baseline.json`` plus the per-host file
  ``GLMVERIFY_PERF_BASELINE`` names (``load_baseline``; one entry per host): windows recorded by
  ``bench/performance_regression.py record``; a baseline of another host or engine version is
  none (with nothing else to compare with, nothing is measured: ``perf_measurement.unmeasured``). Its mean is taken as known; its recorded spread
  is in the evidence. A row's shape may decide on E2E latency instead of TPOT (``latency: e2el``)
  and widen the cross-check's slack per figure (``tolerance``), each with its measured reason in
  matrix.yaml: the CPU reference does both (its client reads chunks in bursts on a shared core).

The CPU reference's baseline is never the run it judges: ``make perf-baseline`` records one for the
host in a launch of its own, and ``make verify`` runs it first when none applies, so the verify
launch is held to an earlier one (a launch fault or a slow hop would otherwise be its own bar).

Comparisons between regimes (low-latency TPOT at most balanced's, high-throughput tok/s at least
the others') are decided on merged results by ``perf_regimes`` (``merge`` calls it); the MTP speed-up decision (seed 000: 5 draft tokens lift throughput) is ``perf_mtp``'s, not
wired into the live suite yet (its docstring says why).
"""
from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .matrix import Row, engine_kind
from .paths import FIXTURES_DIR
from .verdicts import FAMILY_ALPHA, Rule

FEATURE = "serving_performance"
NO_CLAIM = "no recipe of this row makes a speed claim (no expect.performance)"
BASELINE_PATH = FIXTURES_DIR / "performance_baseline.json"
DEFAULT_LOOKS = (3, 6, 10)         # windows per concurrency level; the last is the budget
DEFAULT_EFFECT = 0.10              # a regression beyond 10% of TPOT or throughput fails
# client vs engine: relative and absolute slack; the client's times include HTTP and detokenizing.
# vLLM's TTFT histogram starts after the API server rendered and tokenized the prompt, and a busy
# frontend may send the first tokens in one chunk: client - engine measured 22 to 107 ms on the
# 2-core CPU reference (64 in / 32 out), hence 250 ms; a hop holding the first token 1 s still fails
TOLERANCE: dict[str, tuple[float, float]] = {
    "requests": (0.0, 0.0),        # exact: every completed request is one the engine finished
    "output_tokens": (0.01, 2.0),  # per request: the client may count the final empty chunk
    "ttft_ms": (0.25, 250.0),
    "tpot_ms": (0.25, 5.0),
    "e2el_ms": (0.25, 100.0),
}
PERCENTILE_METRICS = ("ttft", "tpot", "itl", "e2el")
LATENCY_FIGURES = ("tpot", "e2el")   # what a regression rule's latency side may decide on
WORKLOADS = ("random", "gsm8k")      # vllm bench serve datasets: random tokens, GSM8K questions (custom)
LATENCY_NAMES = {"tpot": "TPOT", "e2el": "E2E latency"}
REQUIRED = ("regime", "concurrency", "input_len", "output_len", "num_prompts")


class ReportError(ValueError):
    """The benchmark client's report lacks a figure the feature needs."""


# ---- the row's shape ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    regime: str
    claim: str
    source: dict
    concurrency: tuple[int, ...]
    input_len: int
    output_len: int
    num_prompts: int                     # per window
    warmups: int = 2                     # sent before the window, outside the measurement
    range_ratio: float = 1.0             # as the guide writes it
    range_ratio_semantics: str = "sglang"
    flush_cache: bool = True
    ignore_eos: bool = True
    looks: tuple[int, ...] = DEFAULT_LOOKS
    effect: float = DEFAULT_EFFECT
    figures: dict[int, dict[str, float]] = field(default_factory=dict)
    figures_source: str = ""
    baseline: str | None = None          # key in the baseline file (default: the row id)
    request_rate: float | None = None    # requests/s as the guide sends them (None: all at once)
    latency: str = "tpot"                # the latency figure the regression decides on: tpot or e2el
    tolerance: dict = field(default_factory=dict)  # cross-check slack per figure, over TOLERANCE
    # the prompts: "random" (the Deploy panel's random tokens, input_len each) or "gsm8k" (GSM8K
    # questions, a natural workload: seed 000 warns random tokens under-report MTP's gain)
    workload: str = "random"

    @property
    def client_range_ratio(self) -> float:
        return client_range_ratio(self.range_ratio, self.range_ratio_semantics)


def client_range_ratio(ratio: float, semantics: str) -> float:
    """The guide's ratio in ``vllm bench serve``'s terms (see the module docstring)."""
    if semantics == "sglang":
        return round(1.0 - ratio, 6)
    if semantics == "vllm":
        return ratio
    raise ValueError(f"range_ratio_semantics must be sglang or vllm, not {semantics!r}")


def shape_of(row: Row) -> Shape | None:
    """The row's declared benchmark shape, or None when its guides make no speed claim."""
    spec = row.expect.get("performance")
    if not spec:
        return None
    # GSM8K questions have their own lengths: input_len is the random workload's
    missing = [k for k in REQUIRED if k not in spec and not (k == "input_len" and spec.get("workload") == "gsm8k")]
    if missing:  # the schema validates layers, which may add figures to a recipe's shape
        raise ValueError(f"row {row.id} expect.performance lacks {', '.join(missing)}")
    figures = {int(c): {k: float(v) for k, v in f.items()} for c, f in (spec.get("figures") or {}).items()}
    shape = Shape(
        regime=spec["regime"], claim=spec.get("claim", ""), source=dict(spec.get("source") or row.source),
        concurrency=tuple(int(c) for c in spec["concurrency"]), input_len=int(spec.get("input_len", 0)),
        output_len=int(spec["output_len"]), num_prompts=int(spec["num_prompts"]),
        warmups=int(spec.get("warmups", 2)), range_ratio=float(spec.get("range_ratio", 1.0)),
        range_ratio_semantics=spec.get("range_ratio_semantics", "sglang"),
        flush_cache=bool(spec.get("flush_cache", True)), ignore_eos=bool(spec.get("ignore_eos", True)),
        looks=tuple(int(n) for n in spec.get("looks", DEFAULT_LOOKS)), effect=float(spec.get("effect", DEFAULT_EFFECT)),
        figures=figures, figures_source=spec.get("figures_source", ""), baseline=spec.get("baseline"),
        request_rate=float(spec["request_rate"]) if spec.get("request_rate") is not None else None,
        latency=spec.get("latency", "tpot"), workload=spec.get("workload", "random"),
        tolerance={k: (float(v[0]), float(v[1])) for k, v in (spec.get("tolerance") or {}).items()})
    problems = shape_problems(shape)
    if problems:
        raise ValueError(f"row {row.id} expect.performance: " + "; ".join(problems))
    return shape


def shape_problems(shape: Shape) -> list[str]:
    out = []
    if not shape.concurrency or min(shape.concurrency) < 1:
        out.append(f"concurrency must be levels >= 1, got {list(shape.concurrency)}")
    if (shape.workload == "random" and shape.input_len < 1) or shape.output_len < 2:
        out.append("input_len >= 1 (random prompts) and output_len >= 2 (TPOT needs two tokens)")
    if shape.num_prompts < max(shape.concurrency or (1,)):
        out.append(f"num_prompts {shape.num_prompts} below the highest concurrency: the window never reaches it")
    if list(shape.looks) != sorted(set(shape.looks)) or shape.looks[0] < 2:
        out.append(f"looks must be increasing window counts >= 2, got {list(shape.looks)}")
    if not 0 < shape.effect < 1:
        out.append(f"effect must be a fraction in (0, 1), got {shape.effect}")
    if shape.workload not in WORKLOADS:
        out.append(f"workload must be one of {', '.join(WORKLOADS)}, got {shape.workload!r}")
    if shape.latency not in LATENCY_FIGURES:
        out.append(f"latency must be one of {', '.join(LATENCY_FIGURES)}, got {shape.latency!r}")
    if set(shape.tolerance) - set(TOLERANCE):
        out.append(f"tolerance names figures the cross-check does not have: {sorted(set(shape.tolerance) - set(TOLERANCE))}")
    try:
        client_range_ratio(shape.range_ratio, shape.range_ratio_semantics)
    except ValueError as exc:
        out.append(str(exc))
    return out


def plan_lines(row: Row) -> list[str]:
    """What ``--plan`` prints for the feature: the shape and the figure it is held to."""
    try:
        shape = shape_of(row)
    except (ValueError, KeyError, TypeError) as exc:
        return [f"# serving_performance: INVALID expect.performance: {exc}"]
    if shape is None:
        declared = row.declared_cell(FEATURE)
        return [f"# serving_performance: {declared.status}: "
                + (declared.basis if declared.basis != "no declaration in matrix.yaml" else NO_CLAIM)]
    src = shape.source
    out = [f"# serving_performance: {shape.regime} ({shape.claim!r}; seed {src.get('seed')}"
           + (f", {src['section']}" if src.get("section") else "") + ")",
           "#   vllm bench serve " + (
               f"--dataset-name random --random-input-len {shape.input_len} --random-output-len {shape.output_len} "
               f"--random-range-ratio {shape.client_range_ratio:g} (guide: {shape.range_ratio:g}, "
               f"{shape.range_ratio_semantics} semantics)" if shape.workload == "random" else
               f"--dataset-name custom (GSM8K questions) --custom-output-len {shape.output_len}")
           + f" --num-prompts {shape.num_prompts} --max-concurrency "
           f"{{{','.join(map(str, shape.concurrency))}}}" + (" --ignore-eos" if shape.ignore_eos else "")
           + (f" --request-rate {shape.request_rate:g}" if shape.request_rate else "")
           + f"; {shape.warmups} warm-up requests excluded; flush cache {'on' if shape.flush_cache else 'off'}; "
           f"windows {list(shape.looks)} per level"]
    for c in shape.concurrency:
        fig = shape.figures.get(c)
        if fig:
            held = ", ".join(f"{k} {v:g}" for k, v in fig.items())
            if "tok_s_per_gpu" in fig and row.accelerators:
                held += f" (output {fig['tok_s_per_gpu'] * row.accelerators:g} tok/s on {row.accelerators} GPUs)"
            out.append(f"#   concurrency {c}: held to {held} ({shape.figures_source or 'the guide'})")
        else:
            out.append(f"#   concurrency {c}: no published figure: held to the row's signed baseline once one is "
                       "recorded, not compared until then (named in the evidence)")
    out.append(f"#   regression: {LATENCY_NAMES[shape.latency]} and output throughput within {shape.effect:.0%} of the "
               f"signed baseline ({shape.baseline or row.id} in fixtures/{BASELINE_PATH.name}, recorded for this "
               "host where the row is a CPU reference), else the published figure; none at any level: not measured, not_run")
    if shape.tolerance:
        out.append("#   cross-check slack over the default: " + ", ".join(
            f"{k} {rel:.0%} + {ab:g}" for k, (rel, ab) in shape.tolerance.items()))
    return out


# ---- the client's report -------------------------------------------------------------------------
@dataclass(frozen=True)
class Report:
    completed: int
    failed: int
    duration_s: float
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float            # requests/s
    output_throughput: float             # output tokens/s
    latency: dict[str, dict[str, float]]  # metric -> {mean, median, p99} in ms
    max_concurrency: int | None = None

    def evidence(self) -> dict:
        return asdict(self)


def parse_report(data: dict) -> Report:
    """The saved JSON of ``vllm bench serve --save-result`` (0.32 field names) -> ``Report``."""
    missing = [k for k in ("completed", "duration", "total_input_tokens", "total_output_tokens",
                           "request_throughput", "output_throughput") if k not in data]
    latency: dict[str, dict[str, float]] = {}
    for metric in PERCENTILE_METRICS:
        stats = {}
        for stat in ("mean", "median", "p99"):
            key = f"{stat}_{metric}_ms"
            if key not in data or data[key] is None:
                missing.append(key)
            else:
                stats[stat] = float(data[key])
        latency[metric] = stats
    if missing:
        raise ReportError(f"benchmark report lacks {', '.join(missing)} (run with --percentile-metrics "
                          f"{','.join(PERCENTILE_METRICS)} --metric-percentiles 50,99)")
    return Report(completed=int(data["completed"]), failed=int(data.get("failed") or 0), duration_s=float(data["duration"]),
                  total_input_tokens=int(data["total_input_tokens"]), total_output_tokens=int(data["total_output_tokens"]),
                  request_throughput=float(data["request_throughput"]), output_throughput=float(data["output_throughput"]),
                  latency=latency, max_concurrency=data.get("max_concurrency"))


# ---- the engine's own counters -------------------------------------------------------------------
# per engine: figure -> Prometheus family (label sets are summed); histograms give _sum and _count
COUNTERS = {
    "vllm": {"requests": "vllm:request_success_total", "output_tokens": "vllm:generation_tokens_total",
             "ttft": "vllm:time_to_first_token_seconds", "tpot": "vllm:request_time_per_output_token_seconds",
             "e2el": "vllm:e2e_request_latency_seconds",
             # registered only with speculative decoding: the accept length over a window (evidence)
             "spec_drafts": "vllm:spec_decode_num_drafts_total",
             "spec_accepted": "vllm:spec_decode_num_accepted_tokens_total"},
    "sglang": {"requests": "sglang:num_requests_total", "output_tokens": "sglang:generation_tokens_total",
               "ttft": "sglang:time_to_first_token_seconds", "tpot": "sglang:request_time_per_output_token_seconds",
               "e2el": "sglang:e2e_request_latency_seconds"},
}
HISTOGRAMS = ("ttft", "tpot", "e2el")
SPEC_COUNTERS = ("spec_drafts", "spec_accepted")


def _family_sum(metrics: dict[str, float], name: str) -> float | None:
    vals = [v for k, v in metrics.items() if k == name or k.startswith(name + "{")]
    return sum(vals) if vals else None


def counters(metrics: dict[str, float], engine: str) -> dict[str, float | None]:
    """The figures ``cross_check`` needs from one scrape (``client.parse_prometheus`` output)."""
    names = COUNTERS[engine_kind(engine)]
    out: dict[str, float | None] = {"requests": _family_sum(metrics, names["requests"]),
                                    "output_tokens": _family_sum(metrics, names["output_tokens"])}
    for h in HISTOGRAMS:
        out[f"{h}_sum"] = _family_sum(metrics, names[h] + "_sum")
        out[f"{h}_count"] = _family_sum(metrics, names[h] + "_count")
    for k in SPEC_COUNTERS:
        if k in names:
            out[k] = _family_sum(metrics, names[k])
    return out


def accept_length(delta: dict) -> float | None:
    """Mean accepted tokens per drafting step over a window, the bonus token included (as vLLM's
    spec-decode log line): None without speculation counters or drafts."""
    drafts, accepted = delta.get("spec_drafts"), delta.get("spec_accepted")
    return round(1.0 + accepted / drafts, 3) if drafts and accepted is not None else None


def counter_delta(before: dict, after: dict) -> dict[str, float | None]:
    return {k: (None if before.get(k) is None or after.get(k) is None else after[k] - before[k]) for k in after}


def engine_figures(delta: dict) -> dict[str, float | None]:
    """The engine's view of one window: requests, output tokens, mean TTFT/TPOT/E2E in ms."""
    out: dict[str, float | None] = {"requests": delta.get("requests"), "output_tokens": delta.get("output_tokens")}
    for h in HISTOGRAMS:
        s, n = delta.get(f"{h}_sum"), delta.get(f"{h}_count")
        out[f"{h}_ms"] = None if s is None or not n else 1000.0 * s / n
    return out


def cross_check(report: Report, delta: dict, tolerance: dict | None = None) -> tuple[dict, list[str]]:
    """Client vs engine over one window: (table of both figures, disagreements). A figure the engine
    does not expose is a disagreement too: the window cannot be vouched for."""
    tol = {**TOLERANCE, **(tolerance or {})}
    eng = engine_figures(delta)
    client = {"requests": float(report.completed), "output_tokens": float(report.total_output_tokens),
              "ttft_ms": report.latency["ttft"]["mean"], "tpot_ms": report.latency["tpot"]["mean"],
              "e2el_ms": report.latency["e2el"]["mean"]}
    table, problems = {}, []
    for key, c in client.items():
        e = eng.get(key)
        rel, absolute = tol[key]
        if key == "output_tokens":
            absolute *= max(1, report.completed)
        table[key] = {"client": _r(c), "engine": _r(e), "tolerance": f"{rel:.0%} + {absolute:g}"}
        if e is None:
            problems.append(f"{key}: the engine's counters do not report it (client {c:.4g}); the window is not vouched for")
        elif abs(c - e) > rel * abs(e) + absolute:
            problems.append(f"{key}: client {c:.4g} vs engine {e:.4g} differ by more than {rel:.0%} + {absolute:g}")
    return table, problems


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


# ---- the baseline and the regression decision ---------------------------------------------------
def host_fingerprint() -> dict[str, Any]:
    """What a CPU baseline is specific to (a GPU row's is its declared hardware)."""
    import os

    cpu = ""
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine()}


BASELINE_ENV = "GLMVERIFY_PERF_BASELINE"


def entries(data: dict, key: str) -> list[dict]:
    """A row's baseline entries: one per host (a single mapping is one entry)."""
    e = (data.get("rows") or {}).get(key)
    return [] if not e else (list(e) if isinstance(e, list) else [e])


def load_baseline(path: Path | None = None) -> dict:
    """The signed baselines: ``path``, else the committed file plus the per-host file named by
    ``GLMVERIFY_PERF_BASELINE`` (``make perf-baseline`` writes one), a row's entries of both."""
    import os

    if path is not None:
        return json.loads(path.read_text()) if path.exists() else {"rows": {}}
    data = load_baseline(BASELINE_PATH)
    extra = os.environ.get(BASELINE_ENV)
    if extra and Path(extra).exists():
        more = load_baseline(Path(extra))
        rows = dict(data.get("rows") or {})
        for key in more.get("rows") or {}:
            rows[key] = entries(more, key) + entries(data, key)  # the per-host file's first
        data = {**data, "rows": rows}
    return data


def missing_baselines(rows: list[Row], data: dict, host: dict | None) -> list[str]:
    """"ROW concurrency C: why" for every level of the rows' shapes with no baseline that applies
    (rows without a shape measure nothing and miss nothing)."""
    missing = []
    for row in rows:
        shape = shape_of(row)
        for c in shape.concurrency if shape else ():
            means, why = baseline_for(row, shape, c, data, host)
            if means is None:
                missing.append(f"{row.id} concurrency {c}: {why}")
    return missing


def baseline_for(row: Row, shape: Shape, concurrency: int, data: dict, host: dict | None = None
                 ) -> tuple[dict | None, str]:
    """(``{"tpot_ms": mean, "output_throughput": mean, ...}``, basis) for one level, or (None, why)."""
    found = entries(data, shape.baseline or row.id)
    if row.is_reference and host is not None:  # CPU speed is host-specific: this host's entry first
        found.sort(key=lambda e: e.get("host") != host)
    entry = found[0] if found else None
    if entry:
        if entry.get("engine_version") and row.engine_version and entry["engine_version"] != row.engine_version:
            return None, f"baseline recorded on {row.engine} {entry['engine_version']}, row is {row.engine_version}"
        if row.is_reference and host is not None and entry.get("host") and entry["host"] != host:
            return None, f"baseline recorded on host {entry['host']}, this host is {host}: CPU speed is host-specific"
        level = (entry.get("levels") or {}).get(str(concurrency))
        if level and len(level.get("tpot_ms", [])) >= 2:
            means = {k: sum(v) / len(v) for k, v in level.items() if isinstance(v, list) and v}
            return means, (f"baseline {shape.baseline or row.id} signed by {entry.get('signed_by', '?')} on "
                           f"{entry.get('recorded', '?')} ({len(level['tpot_ms'])} windows)")
        return None, f"baseline {shape.baseline or row.id} has no windows at concurrency {concurrency}"
    fig = shape.figures.get(concurrency)
    if fig and "tpot_ms" in fig:
        per_gpu = fig.get("tok_s_per_gpu")
        means = {"tpot_ms": fig["tpot_ms"]}
        if per_gpu is not None and row.accelerators:
            means["output_throughput"] = per_gpu * row.accelerators
        return means, f"published figure at concurrency {concurrency} ({shape.figures_source or 'the guide'})"
    return None, (f"no signed baseline for {shape.baseline or row.id} and no published figure at concurrency "
                  f"{concurrency}: record one with bench/performance_regression.py record")


def perf_alpha(row: Row, n_decisions: int, base_family: int = 0) -> float:
    """This row's share of the sign-off's false-failure budget for one performance decision."""
    fam = (row.profile.verdicts or {}).get("family_alpha", FAMILY_ALPHA)
    return fam / max(1, base_family + n_decisions)


def regression_rules(row: Row, shape: Shape, concurrency: int, alpha: float, basis: str) -> list[Rule]:
    """TPOT ratio (lower is better) and output-throughput ratio (higher is better) vs the baseline,
    one bar each at ``1 +/- effect``, looks over windows."""
    e, lat = shape.effect, shape.latency
    common = dict(kind="mean", alpha=alpha, looks=shape.looks, log_scale=True, basis=basis)
    return [
        Rule(name=f"perf[{lat}:c{concurrency}]", quantity=f"{LATENCY_NAMES[lat]} / baseline at concurrency {concurrency}",
             higher_is_better=False, verify_bound=1 + e, fail_bound=1 + e, effect=round(1 + 2.5 * e, 4), **common),
        Rule(name=f"perf[throughput:c{concurrency}]", quantity=f"output tok/s / baseline at concurrency {concurrency}",
             higher_is_better=True, verify_bound=1 - e, fail_bound=1 - e, effect=round(1 - 2.5 * e, 4), **common),
    ]


def regression_samples(reports: list[Report], baseline: dict, latency: str = "tpot") -> dict[str, list[float]]:
    """Per rule kind, log(window / baseline mean) of each window (the rules are on log scale)."""
    out: dict[str, list[float]] = {latency: [], "throughput": []}
    for r in reports:
        if r.completed == 0 or r.latency["tpot"]["mean"] <= 0 or r.latency[latency]["mean"] <= 0:
            continue  # a window that measured nothing (test_client_report fails it) has no ratio
        if baseline.get(f"{latency}_ms"):
            out[latency].append(math.log(r.latency[latency]["mean"] / baseline[f"{latency}_ms"]))
        if baseline.get("output_throughput"):
            out["throughput"].append(math.log(max(r.output_throughput, 1e-9) / baseline["output_throughput"]))
    return out


def window_record(report: Report) -> dict[str, float]:
    """What a baseline keeps of one window."""
    return {"tpot_ms": report.latency["tpot"]["mean"], "ttft_ms": report.latency["ttft"]["mean"],
            "e2el_ms": report.latency["e2el"]["mean"],
            "output_throughput": report.output_throughput, "request_throughput": report.request_throughput}
