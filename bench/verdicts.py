"""How often the verdicts are wrong: false failures, inconclusive cells and fault detection, measured.

    python bench/verdicts.py --runs 20            # the issue's bar: at least 20 runs
    python bench/verdicts.py --runs 2 --quick     # a smoke run of the benchmark itself
    python bench/verdicts.py --runs 10 --features serving_performance --rows reference --faults ''
                                                  # the speed regression decision's false failures

Each run is a new launch of the conforming sampling reference (rows ``reference`` and
``reference-ngram``; with ``--sglang`` also the SGLang reference ``reference-sglang``) with a new stand-in seed (``GLM_STANDIN_SEED``), driven by the fault
catalogue's runner (``glmverify.faults.run_catalogue``): every suite once against the conforming
engine, then the behavioural faults through the fault proxy on the same launch:

* ``standin-ignore-effort``        effort ignored (High reasons like Max)   -> effort_levels failed
* ``standin-ignore-thinking-off``  thinking off ignored                     -> non_think failed
* ``standin-low-accuracy``         GSM8K at about 80% accuracy              -> accuracy_smoke failed
* ``proxy-spec-accept-low``        accept length below the row's minimum    -> mtp_accept_length failed
* ``bug-vllm-ascend-13523-accept-decay``  acceptance decaying over the run   -> mtp_accept_length failed (trend)
* ``bug-vllm-46075-position-collapse``    acceptance collapsing after position 0 -> mtp_accept_length failed

It prints, per feature: the cells run on the conforming engine, how many false-failed and how many
ended inconclusive, each with a 95% Clopper-Pearson interval (statsmodels); the requests spent
per cell (mean, max) against the fixed sizes the suites used before sequential decisions, and the
completion tokens they cost (the checks' ``tokens_spent``); and the
detection rate of each behavioural fault with its interval. Below them, every statistical decision
the conforming runs made, by rule (the accuracy, degeneration, effort, tool-call and serving-error
decisions each have their own line): how many ended failed and inconclusive, so a decision that
turns a healthy row red is named, not hidden in its cell. ``--summarize DIR [DIR ...]`` prints the
tables again from finished (or interrupted) runs' results without launching anything; several
directories are summed (a bench continued with ``--seed`` after an interruption), a seed twice refused. Results (every run's matrix.json and
pytest log, plus verdicts.json and verdicts.md) go to ``--out`` (default
``results/bench-verdicts-<UTC time>/``). Not a test and not in CI: 20 runs take hours on 2 cores.

Where ``make verify`` has recorded the reference's accuracy baseline (``results/accuracy-baseline.json``),
every conforming run's accuracy suite is held to it (``faults.runner.accuracy_baseline_args``), so its
paired and steady decisions are counted by rule with the others; ``--features accuracy_smoke --rows
reference --faults accuracy-subtle-drop,accuracy-decay,planted-greedy-loops`` measures their false
failures and those faults' detection. Measured on 2 cores (2026-12-06): the conforming accuracy
suite held to the baseline takes 15 minutes on the vLLM reference (it answers seeded questions one
at a time) and 10 on SGLang; the subtle drop 14 and 4, the decay 6 on SGLang, the batch errors 8 on
SGLang, the loops about 30 on vLLM (with the unit tier beside it): about an hour a vLLM launch, so 20 launches are a day's run.
A salted run on SGLang (``--rows reference-sglang --features accuracy_smoke --faults
accuracy-subtle-drop@reference-sglang,accuracy-decay@reference-sglang,accuracy-batch-errors``,
seed 1000, every check of each entry run): conforming 1415 s, each fault about 1170-1200 s, all
three detected and diagnosed first.

Each run also sets ``GLMVERIFY_FAULT_SALT`` (``faultproxy.registry.SALT_ENV``) to its seed, so the
proxy faults that choose their questions by a hash (the accuracy faults, the greedy loops) hit
other questions in each run: a fault's detections are separate draws, not one outcome repeated.
The conforming side has no such variation where answers are seeded: a seeded request does not read
the engine seed, so every launch of the reference gives the accuracy suite the same answers, and
its paired, drift and batch decisions decide them identically. The per-rule table's "distinct
outcomes" column shows it (1: one draw, however many runs); those decisions' false-failure rates
under sampling noise are measured in simulation (tests/unit/test_accuracy_baseline.py), not here.
The fault table's "diagnosed first" counts the detections whose failed cell ranked the fault's own
catalogue entry first.

``--features`` narrows the conforming runs to some suites and ``--rows`` to some reference rows:
with ``serving_performance`` alone on ``reference``, each run is a new launch measured against this
host's baseline (``make perf-baseline`` records it first; the bench refuses to start without one,
as every cell would be ``not_run``). A cell ``not_run`` or ``unsupported`` is not a decision: it is
left out of the rates and counted on a line of its own.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from glmverify import faults  # noqa: E402
from glmverify.paths import BUILD_DIR  # noqa: E402
from glmverify.performance import BASELINE_ENV  # noqa: E402
from glmverify.faults import runner as faults_runner  # noqa: E402
from glmverify.faultproxy.registry import SALT_ENV  # noqa: E402
from glmverify.matrix import FEATURES  # noqa: E402
from glmverify.report import decisions  # noqa: E402

QUICK = {"accuracy_smoke", "effort_levels", "non_think", "mtp_accept_length"}
PERF = "serving_performance"
BEHAVIOURAL = ("standin-ignore-effort", "standin-ignore-thinking-off", "standin-low-accuracy", "proxy-spec-accept-low",
               "bug-vllm-ascend-13523-accept-decay", "bug-vllm-46075-position-collapse")
# requests per cell before sequential decisions (suites at commit 60907a0): accuracy 64 x 2 modes;
# effort 5 values x 5 prompts x 2 channels + rendered lines; non_think 4+4 x 2 axes + 3 + 1 tool;
# mtp 16 (fixed workload)
# this host's speed baseline where make perf-baseline writes it (the Makefile's default), unless
# GLMVERIFY_PERF_BASELINE names another
HOST_BASELINE = BUILD_DIR / "performance_baseline.json"
FIXED_REQUESTS = {"accuracy_smoke": 128, "effort_levels": 74, "non_think": 19, "mtp_accept_length": 16}


def _cp(k: int, n: int) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return (0.0, 1.0)
    lo, hi = proportion_confint(k, n, alpha=0.05, method="beta")
    return float(lo), float(hi)


def _spent(results_dir: str) -> dict[str, dict]:
    """Requests and samples per feature from a run's matrix.json (decisions' own accounting)."""
    try:
        doc = json.loads((Path(results_dir) / "matrix.json").read_text())
    except (OSError, ValueError):
        return {}
    out: dict[str, dict] = {}
    for c in doc.get("cells", []):
        # the serving-error bars judge the requests the decisions spent: counted once, with them
        ds = [d for d in decisions(c) if not (d.get("extra") or {}).get("hard_bar")]
        tokens = sum(int(ev.get("tokens_spent") or 0)
                     for ev in ((c.get("evidence") or {}).get("checks") or {}).values() if isinstance(ev, dict))
        if ds:
            f = out.setdefault(c["feature"], {"requests": 0, "n": 0, "tokens": 0, "decisions": []})
            f["tokens"] += tokens
            f["requests"] += sum(int(d.get("requests") or 0) for d in ds)
            f["n"] += sum(int(d.get("n") or 0) for d in ds)
            f["decisions"] += [{k: d.get(k) for k in ("rule", "status", "n", "estimate", "interval", "alpha")} for d in ds]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="engine launches, each with a new seed (default 20)")
    ap.add_argument("--seed", type=int, default=1000, help="stand-in seed of run 1 (run i uses seed + i - 1)")
    ap.add_argument("--faults", default=",".join(BEHAVIOURAL), help="catalogue ids run on every launch (comma separated; '' for none)")
    ap.add_argument("--accuracy-samples", type=int, default=64, help="first GSM8K round, as in make verify (default 64)")
    ap.add_argument("--quick", action="store_true", help="only accuracy_smoke, effort_levels, non_think and mtp suites")
    ap.add_argument("--features", default=None,
                    help="only these suites in the conforming runs (comma separated matrix features)")
    ap.add_argument("--rows", default=None,
                    help="conforming reference rows (comma separated; default reference,reference-ngram)")
    ap.add_argument("--out", type=Path, default=None, help="results directory (default results/bench-verdicts-<UTC time>/)")
    ap.add_argument("--summarize", type=Path, nargs="+", default=None, metavar="DIR",
                    help="print the tables of earlier runs' results directories (their verdicts.json, summed) and exit")
    ap.add_argument("--sglang", action="store_true",
                    help="also launch the SGLang reference (row reference-sglang) with each seed and measure it (~15 min a run more)")
    a = ap.parse_args(argv)
    if a.summarize is not None:
        runs, dirs = [], []
        for d in a.summarize:
            try:
                part = json.loads((d / "verdicts.json").read_text())["runs"]
            except (OSError, ValueError, KeyError) as exc:
                ap.error(f"--summarize: no readable verdicts.json in {d} ({exc})")
            twice = {r["seed"] for r in part} & {r["seed"] for r in runs}
            if twice:
                ap.error(f"--summarize: seeds {sorted(twice)} are in more than one directory (a launch counted twice)")
            runs += part
            dirs.append((d, len(part)))
        wanted = list(dict.fromkeys(o["id"] for r in runs for o in r["outcomes"] if o["kind"] != "conforming"))
        print(summarize(runs, wanted, sum(r.get("seconds", 0) for r in runs), dirs))
        return 0
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    out = a.out or ROOT / "results" / f"bench-verdicts-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    catalogue = {c.id: c for c in faults.load_catalogue()}
    wanted = [x for x in a.faults.split(",") if x]
    unknown = [x for x in wanted if x not in catalogue]
    if unknown:
        ap.error(f"unknown fault ids {unknown}; see python -m glmverify.faults --list")
    rows = tuple(x for x in (a.rows or "reference,reference-ngram").split(",") if x) + (("reference-sglang",) if a.sglang else ())
    unknown = [r for r in rows if r not in faults.REFERENCE_ROWS]
    if unknown:
        ap.error(f"--rows: {unknown} are not reference rows ({', '.join(faults.REFERENCE_ROWS)})")
    keep = QUICK if a.quick else set(x for x in (a.features or "").split(",") if x) or None
    if keep:
        bad = sorted(keep - set(FEATURES))
        if bad:
            ap.error(f"--features: unknown features {bad} (matrix features: {', '.join(FEATURES)})")
        # narrowed where the runner reads them (its conforming runs)
        faults_runner.conforming_suites = lambda row, _orig=faults_runner.conforming_suites: [f for f in _orig(row) if f in keep]
    if keep is None or PERF in keep:
        missing = _perf_baseline_missing(rows)
        if missing and keep == {PERF}:
            ap.error("no serving_performance baseline applies on this host, so every cell would be not_run: "
                     f"record one first (make perf-baseline). {missing}")
        if missing:
            print(f"[bench] no serving_performance baseline on this host: those cells are not_run ({missing})",
                  file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)  # only once the arguments hold
    os.environ.setdefault(BASELINE_ENV, str(HOST_BASELINE))  # the launches' suites read it
    runs = []
    t_all = time.monotonic()
    for i in range(a.runs):
        seed = a.seed + i
        os.environ["GLM_STANDIN_SEED"] = str(seed)  # the engines inherit it: a new stand-in seed per launch
        os.environ[SALT_ENV] = str(seed)  # the fault proxies inherit it: the faults hit other questions
        t0 = time.monotonic()
        print(f"[bench {time.strftime('%H:%M:%S')}] run {i + 1}/{a.runs}, seed {seed}", file=sys.stderr, flush=True)
        # a fault entry stops at its first failure where that cannot hide the expected one, as in
        # make faults (the runner's stop_early): the rest of its checks cost requests and decide nothing
        # the detection needs (live: the subtle drop ran nonthink to 512 after think had failed)
        opts = faults.RunOptions(results=out / f"run-{i + 1:02d}", repeat=1, conforming=True, jobs=1,
                                 accuracy_samples=a.accuracy_samples,
                                 conforming_rows=rows)
        outcomes = faults.run_catalogue([catalogue[x] for x in wanted], opts)
        runs.append({"seed": seed, "seconds": round(time.monotonic() - t0, 1),
                     "outcomes": [{"id": o.id, "kind": o.kind, "row": o.row, "expect_failed": o.expect_failed,
                                   "observed": o.observed, "detected": o.detected, "detail": o.detail[:300],
                                   "rank": o.rank, "diagnosed": o.diagnosed[:3],
                                   "spent": _spent(o.results) if o.kind == "conforming" else {}} for o in outcomes]})
        (out / "verdicts.json").write_text(json.dumps({"runs": runs}, indent=1))
    report = summarize(runs, wanted, time.monotonic() - t_all, [(out, len(runs))])
    (out / "verdicts.md").write_text(report)
    print(report)
    print(f"results: {out}")
    return 0


@contextlib.contextmanager
def _env(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def _perf_baseline_missing(rows: Sequence[str]) -> str:
    """Why no serving_performance baseline applies on this host to a row that measures speed ('' when one does)."""
    from glmverify import performance
    from glmverify.matrix import load

    with _env(BASELINE_ENV, os.environ.get(BASELINE_ENV) or str(HOST_BASELINE)):
        data = performance.load_baseline()
    matrix = load()
    measuring = [matrix.row(r) for r in rows if matrix.row(r).serves(PERF)]
    return "; ".join(performance.missing_baselines(measuring, data, performance.host_fingerprint()))


def _rule(rule: str) -> str:
    """A decision's rule with the row name taken out (``degeneration[row:reference]`` -> ``degeneration[row]``)."""
    return re.sub(r"\[row:[^\]]*\]", "[row]", rule or "?")


def all_decisions(results_dir: Path, runs: int) -> list[tuple[str, str, str, str]]:
    """(feature, rule, status, outcome) of every decision in the first ``runs`` runs' conforming matrix.json
    files under ``results_dir`` (a run still going is left out): the checks' decisions (serving-error
    bars included) and the degeneration decisions the inference adds to a cell (``evidence.degeneration``)."""
    out = []
    for m in sorted(p for i in range(1, runs + 1) for p in Path(results_dir).glob(f"run-{i:02d}/conforming-*/matrix.json")):
        try:
            cells = json.loads(m.read_text()).get("cells", [])
        except (OSError, ValueError):
            continue
        for c in cells:
            ds = list(decisions(c))
            for scope in ("cell", "row"):
                d = (((c.get("evidence") or {}).get("degeneration") or {}).get(scope) or {}).get("decision")
                if isinstance(d, dict):
                    ds.append(d)
            out += [(c.get("feature", "?"), _rule(d.get("rule")), str(d.get("status")), _outcome(d)) for d in ds]
    return out


def _outcome(d: dict) -> str:
    """What a decision saw (status, n, estimate, interval): runs that give the same string decided
    on the same answers, so they are one draw, not several."""
    return json.dumps([d.get(k) for k in ("status", "n", "estimate", "interval")], default=str)


def summarize(runs: list[dict], wanted: list[str], seconds: float,
              results: Sequence[tuple[Path, int]] = ()) -> str:
    """The tables; ``results``: (results directory, runs it finished) whose matrix.json files the
    per-rule table reads."""
    per_feature: dict[str, dict] = {}
    not_run: dict[str, int] = {}
    for r in runs:
        for o in r["outcomes"]:
            if o["kind"] != "conforming":
                continue
            for f, st in o["observed"].items():
                if st == "unsupported":
                    continue
                if st == "not_run":  # nothing decided (e.g. no speed baseline for this host): not a cell of the rates
                    not_run[f] = not_run.get(f, 0) + 1
                    continue
                s = per_feature.setdefault(f, {"cells": 0, "failed": 0, "inconclusive": 0, "requests": [], "tokens": []})
                s["cells"] += 1
                s["failed"] += st == "failed"
                s["inconclusive"] += st == "inconclusive"
                if f in o["spent"]:
                    s["requests"].append(o["spent"][f]["requests"])
                    if o["spent"][f].get("tokens"):
                        s["tokens"].append(o["spent"][f]["tokens"])
    lines = [f"# Verdict error rates: {len(runs)} runs of the conforming sampling reference ({seconds / 60:.0f} min)", "",
             "| feature | cells | false-failed | rate [95% CI] | inconclusive | rate [95% CI] | requests/cell mean (max) | before | completion tokens/cell mean |",
             "|---|---|---|---|---|---|---|---|---|"]
    tot_cells = tot_failed = tot_open = 0
    for f, s in sorted(per_feature.items()):
        lo, hi = _cp(s["failed"], s["cells"])
        lo2, hi2 = _cp(s["inconclusive"], s["cells"])
        req = s["requests"]
        spend = f"{sum(req) / len(req):.0f} ({max(req)})" if req else "-"
        tokens = f"{sum(s['tokens']) / len(s['tokens']):.0f}" if s["tokens"] else "-"
        lines.append(f"| {f} | {s['cells']} | {s['failed']} | {s['failed'] / s['cells']:.3f} [{lo:.3f}, {hi:.3f}] | "
                     f"{s['inconclusive']} | {s['inconclusive'] / s['cells']:.3f} [{lo2:.3f}, {hi2:.3f}] | {spend} | "
                     f"{FIXED_REQUESTS.get(f, '-')} | {tokens} |")
        tot_cells += s["cells"]
        tot_failed += s["failed"]
        tot_open += s["inconclusive"]
    if tot_cells:
        lo, hi = _cp(tot_failed, tot_cells)
        lines += ["", f"All cells: {tot_failed} false-failed of {tot_cells} ({tot_failed / tot_cells:.3%}, 95% CI "
                      f"[{lo:.3%}, {hi:.3%}]); inconclusive {tot_open} ({tot_open / tot_cells:.2%})."]
    if not_run:
        lines += ["", "Not run (no decision, left out of the rates): " +
                  ", ".join(f"{f} {n} cells" for f, n in sorted(not_run.items())) + "."]
    lines += ["", "| behavioural fault | expected failed | detected | rate [95% CI] | diagnosed first | not run (engine did not start) | observed (first run) |",
              "|---|---|---|---|---|---|---|"]
    for fid in wanted:
        every = [o for r in runs for o in r["outcomes"] if o["id"] == fid]
        hits = [o for o in every if o["observed"]]  # an entry whose engine never started tested nothing
        k = sum(o["detected"] for o in hits)
        lo, hi = _cp(k, len(hits))
        first = hits[0]["observed"] if hits else {}
        # the rank of the fault's own entry in its failed cell's diagnosis (runs before it was kept: '-')
        ranked = [o for o in hits if o["detected"] and "rank" in o]
        top1 = f"{sum(o['rank'] == 1 for o in ranked)}/{len(ranked)}" if ranked else "-"
        lines.append(f"| {fid} | {', '.join(every[0]['expect_failed']) if every else '-'} | {k}/{len(hits)} | "
                     f"{(k / len(hits)) if hits else 0:.3f} [{lo:.3f}, {hi:.3f}] | {top1} | {len(every) - len(hits)} | {first} |")
    per_rule: dict[tuple[str, str], dict] = {}
    for feature, rule, status, outcome in (x for d, n in results for x in all_decisions(d, n)):
        t = per_rule.setdefault((feature, rule), {"n": 0, "failed": 0, "inconclusive": 0, "seen": set()})
        t["n"] += 1
        t["failed"] += status == "failed"
        t["inconclusive"] += status == "inconclusive"
        t["seen"].add(outcome)
    if per_rule:
        lines += ["", "| feature | decision (rule) | decisions | failed | inconclusive | distinct outcomes |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {f} | {r} | {t['n']} | {t['failed']} | {t['inconclusive']} | {len(t['seen'])} |"
                  for (f, r), t in sorted(per_rule.items())]
        lines += ["", "Distinct outcomes: how many different (status, n, estimate, interval) the rule's decisions "
                      "had. A rule decided on seeded answers of the reproducible reference sees the same answers "
                      "every launch: its decisions are one draw repeated, and its false-failure rate under "
                      "sampling noise is the simulation's (tests/unit), not these runs'."]
        lines += ["", "A degeneration decision fails its cell when the rate is confidently above its bar and is evidence "
                      "otherwise: its inconclusive count (too few answers to show the rate below the bar) leaves no cell open."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
