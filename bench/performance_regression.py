"""serving_performance's baseline and its regression decision's error rates.

    python bench/performance_regression.py record results/latest --by "A. Engineer"   # sign a baseline
    python bench/performance_regression.py applies --row reference                    # one for this host?
    python bench/performance_regression.py simulate --cv 0.05                         # the rule's error rates

``record`` reads a run's matrix.json, or several runs' (one launch each: their windows are pooled
per row, ``pooled``): for every ``serving_performance`` cell whose client report
and counter cross-check passed (a window the engine's counters do not vouch for is never a
baseline), it writes the row's windows per concurrency level (TPOT, TTFT, output and request
throughput), the host and engine version they hold for, who signed and when, into
``fixtures/performance_baseline.json`` (``--out`` for another file, e.g. the per-host file
``make perf-baseline`` writes). A row keeps one entry per host (CPU speed is host-specific); an
entry of the same host is replaced only with ``--replace``.

``applies`` exits 0 when a baseline for this host applies to each named row's levels (the committed
file plus ``GLMVERIFY_PERF_BASELINE``), 1 with the reason otherwise: ``make verify`` records one
first when none does.

``simulate`` prints the regression rule's operating characteristics (``verdicts.simulate``): for
windows with log-normal noise of coefficient of variation ``--cv`` around a baseline, the share
of runs verified, failed and inconclusive, and the windows spent, at slowdowns from none to 50%.
The reference's own window noise is in each run's evidence (``window_records``): use its CV.
Not a test and not in CI.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from glmverify import performance  # noqa: E402
from glmverify.verdicts import Rule, simulate  # noqa: E402

VOUCHING_CHECKS = ("test_client_report", "test_counters_agree")


def recordable(cell: dict) -> tuple[dict | None, str]:
    """(the measurement's evidence, "") when the cell's windows can be a baseline, else (None, why)."""
    outcomes = {c["id"]: c.get("outcome") for c in cell.get("checks", [])}
    for check in VOUCHING_CHECKS:
        if outcomes.get(check) != "passed":
            return None, f"{check} {outcomes.get(check) or 'not run'}"
    ev = (cell.get("evidence") or {}).get("checks", {}).get("test_client_report") or {}
    if not ev.get("levels"):
        return None, "no windows in the evidence of test_client_report"
    return ev, ""


def baseline_entry(ev: dict, signed_by: str, today: str) -> dict:
    levels = {}
    for c, level in ev["levels"].items():
        records = level.get("window_records") or []
        levels[c] = {k: [round(r[k], 4) for r in records if k in r]
                     for k in ("tpot_ms", "ttft_ms", "e2el_ms", "output_throughput", "request_throughput")}
    return {"signed_by": signed_by, "recorded": today, "engine_version": ev.get("engine_version"),
            "host": ev.get("host"), "client": ev.get("client"), "command": ev.get("command"), "levels": levels}


def pooled(entries: list[dict]) -> dict:
    """One baseline entry from several launches' entries of one row and host: the windows of every
    launch, level by level (a launch is one draw of the host's speed: on the 2-core host one launch's
    windows sat 0.9-1.4x another's, so one launch alone is a poor baseline)."""
    out = dict(entries[0])
    levels: dict[str, dict[str, list]] = {}
    for e in entries:
        for c, figs in e["levels"].items():
            lv = levels.setdefault(c, {})
            for k, xs in figs.items():
                lv.setdefault(k, []).extend(xs)
    out["levels"] = levels
    out["launches"] = len(entries)
    return out


def record(args) -> int:
    out = Path(args.out)
    data = performance.load_baseline(out)
    data.setdefault("rows", {})
    found: dict[str, list[dict]] = {}
    for results in args.results:   # several results directories: one launch each, pooled per row
        doc = json.loads((Path(results) / "matrix.json").read_text())
        for cell in doc.get("cells", []):
            if cell.get("feature") != performance.FEATURE or (args.row and cell["row"] not in args.row):
                continue
            if not cell.get("checks"):
                continue  # a declared cell: nothing ran on this row
            ev, why = recordable(cell)
            if ev is None:
                print(f"{cell['row']} ({results}): not recorded ({why})")
                continue
            found.setdefault(cell["row"], []).append(baseline_entry(ev, args.by, dt.date.today().isoformat()))
    wrote = 0
    for row, launches in found.items():
        entry = pooled(launches)
        kept = performance.entries(data, row)
        same = [e for e in kept if e.get("host") == entry["host"]]
        if same and not args.replace:
            print(f"{row}: already signed for this host by {same[0].get('signed_by')} (use --replace)")
            continue
        others = [e for e in kept if e.get("host") != entry["host"]]
        data["rows"][row] = [entry, *others] if others else entry
        wrote += 1
        print(f"{row}: recorded {sum(len(v['tpot_ms']) for v in entry['levels'].values())} windows of "
              f"{len(launches)} launch(es) for host {entry['host']}")
    out.write_text(json.dumps(data, indent=2) + "\n")
    return 0 if wrote else 1


def simulate_table(args) -> int:
    looks = tuple(args.looks)
    alpha = args.alpha
    rule = Rule(name="perf[tpot]", quantity="TPOT / baseline", kind="mean", higher_is_better=False,
                verify_bound=1 + args.effect, fail_bound=1 + args.effect, alpha=alpha, looks=looks, log_scale=True)
    sd = math.sqrt(math.log(1 + args.cv ** 2))
    print(f"TPOT rule: bar {1 + args.effect:g}, alpha {alpha:g}, looks {list(looks)}, window CV {args.cv:g}, {args.runs} runs")
    print("slowdown  verified  failed  inconclusive  mean windows")
    for slowdown in (0.0, 0.05, 0.10, 0.15, 0.25, 0.5):
        r = simulate(rule, lambda rng, k, s=slowdown: rng.normal(math.log(1 + s), sd, k), runs=args.runs, seed=1)
        print(f"{slowdown:>7.0%}  {r['verified']:>8.3f}  {r['failed']:>6.3f}  {r['inconclusive']:>12.3f}  {r['mean_n']:>12.2f}")
    return 0


def applies(args) -> int:
    """0 when this host has a baseline for every level of each named row, else 1 (with the reason)."""
    from glmverify.matrix import load

    matrix = load()
    missing = performance.missing_baselines([matrix.row(r) for r in args.row], performance.load_baseline(),
                                            performance.host_fingerprint())
    print("\n".join(missing) or f"a baseline applies on this host to {', '.join(args.row)}")
    return 1 if missing else 0


def window_cv(path: str) -> None:
    """The CV of TPOT over a recorded baseline's windows, per row and level (for --cv)."""
    data = performance.load_baseline(Path(path))
    for row in data.get("rows", {}):
        for entry in performance.entries(data, row):
            for c, level in entry.get("levels", {}).items():
                for k in ("tpot_ms", "e2el_ms", "output_throughput"):
                    v = level.get(k) or []
                    if len(v) >= 2:
                        print(f"{row} concurrency {c}: {k} CV {statistics.stdev(v) / statistics.mean(v):.3f} over "
                              f"{len(v)} windows ({entry.get('host', {}).get('cpu', '?')})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="sign a baseline from runs' matrix.json (several: one launch each, pooled)")
    r.add_argument("results", nargs="+")
    r.add_argument("--by", required=True)
    r.add_argument("--row", action="append")
    r.add_argument("--out", default=str(performance.BASELINE_PATH))
    r.add_argument("--replace", action="store_true")
    s = sub.add_parser("simulate", help="the regression rule's error rates on synthetic windows")
    s.add_argument("--cv", type=float, default=0.05)
    s.add_argument("--effect", type=float, default=performance.DEFAULT_EFFECT)
    s.add_argument("--alpha", type=float, default=0.01 / 12)
    s.add_argument("--looks", type=int, nargs="+", default=list(performance.DEFAULT_LOOKS))
    s.add_argument("--runs", type=int, default=2000)
    a = sub.add_parser("applies", help="exit 0 when a baseline for this host applies to the rows")
    a.add_argument("--row", action="append", required=True)
    c = sub.add_parser("cv", help="window noise of a recorded baseline")
    c.add_argument("--baseline", default=str(performance.BASELINE_PATH))
    args = p.parse_args(argv)
    if args.cmd == "record":
        return record(args)
    if args.cmd == "applies":
        return applies(args)
    if args.cmd == "cv":
        window_cv(args.baseline)
        return 0
    return simulate_table(args)


if __name__ == "__main__":
    sys.exit(main())
