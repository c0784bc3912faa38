"""The catalogue's verdict and its record: the console table, faults.md, faults.json.

``summary`` is the run's verdict: every fault detected, every control and conforming run
passing, every fault's own entry placed by its failed cell's diagnosis (``diagnosis.placed``: in
the top 3, or outranked only by entries ``fixtures/symptoms.yaml`` documents as looking the same,
an honest tie with the same symptom; top-1 and top-3 reported beside it; a fault outside the rule
fails the run and is named in the summary line), and (for the whole catalogue) every check seen
failing under some fault.
``write_results`` writes ``faults.json`` (outcomes, coverage, summary) and ``faults.md`` (the
table as markdown, then the coverage) into the results directory.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from ..diagnosis import placed
from .coverage import coverage_text
from .model import Outcome


def table(outcomes: list[Outcome]) -> str:
    head = ("fault", "kind", "expected failed", "observed", "detected", "top-1", "top-3", "s", "mutated",
            "evidence (first failing check)")
    rows = []
    for o in outcomes:
        expected = ", ".join(o.expect_failed) or "(none)"
        observed = ", ".join(f"{f}={s}" for f, s in o.observed.items()) or "-"
        if not o.expect_failed and o.observed and set(o.observed.values()) == {"verified"}:
            observed = f"all {len(o.observed)} verified"  # a conforming run's features, in one word
        verdict = o.verdict
        t1, t3 = _tops(o)
        rows.append((o.id, o.kind, expected, observed, verdict, t1, t3, f"{o.seconds:.0f}", o.mutated or "-", o.detail[:110]))
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head) - 1)]
    lines = []
    for r in [head, tuple("-" * w for w in widths) + ("-" * 30,), *rows]:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) + "  " + str(r[-1]))
    return "\n".join(lines)


def _tops(o: Outcome) -> tuple[str, str]:
    """The top-1 and top-3 columns: yes/no per fault (with the rank), empty for a control."""
    if not o.expect_failed:
        return "", ""
    r = f" ({o.rank})" if o.rank is not None else " (-)"
    return ("yes" if o.rank == 1 else "no"), ("yes" if o.rank is not None and o.rank <= 3 else "no") + r


def diagnosis_rates(outcomes: list[Outcome]) -> tuple[int, int, int]:
    """(top-1, top-3, faults): how many faults' own entries ranked first / in the top 3."""
    faults = [o for o in outcomes if o.expect_failed]
    return (sum(o.rank == 1 for o in faults), sum(o.rank is not None and o.rank <= 3 for o in faults), len(faults))


def misplaced(outcomes: list[Outcome]) -> list[str]:
    """The faults whose own entry is not placed (``diagnosis.placed``): not diagnosed, or outside
    the top 3 with a cause ranked with or above it that is no documented look-alike."""
    return [o.id for o in outcomes if o.expect_failed and not placed(o.id, o.rank, o.outranked_by)]


def markdown(outcomes: list[Outcome]) -> str:
    def esc(s):
        return str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| fault | kind | expected failed | observed | detected | top-1 | top-3 | seconds | diagnosis (top 3) | evidence |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        verdict = o.verdict
        t1, t3 = _tops(o)
        lines.append(f"| {esc(o.id)} | {o.kind} | {esc(', '.join(o.expect_failed) or '(none)')} | "
                     f"{esc(', '.join(f'{f}={s}' for f, s in o.observed.items()))} | {verdict} | {t1} | {t3} | "
                     f"{o.seconds:.0f} | {esc(', '.join(o.diagnosed))} | {esc(o.detail[:200])} |")
    return "\n".join(lines) + "\n"


def summary(outcomes: list[Outcome], cov: dict[str, list[str]] | None = None) -> tuple[bool, str]:
    """Every fault detected, every control and conforming run passing, every fault's own entry
    placed (``misplaced`` empty: top 3, or outranked only by documented look-alikes; the others
    named), and (given ``cov``) every check seen failing under some fault."""
    faults = [o for o in outcomes if o.expect_failed]
    controls = [o for o in outcomes if not o.expect_failed]
    found = sum(o.detected for o in faults)
    ok_controls = sum(o.detected for o in controls)
    top1, top3, n = diagnosis_rates(outcomes)
    out = misplaced(outcomes)
    ok = found == len(faults) and ok_controls == len(controls) and not out
    pct = 100.0 * found / len(faults) if faults else 100.0
    rate = lambda k: f"{k}/{n} ({100.0 * k / n if n else 100.0:.0f}%)"  # noqa: E731
    line = f"faults detected: {found}/{len(faults)} ({pct:.0f}%); own entry diagnosed top-1 {rate(top1)}, top-3 {rate(top3)}"
    if n - top3 - len(out):
        line += f", below the top 3 outranked only by look-alikes {n - top3 - len(out)}"
    if out:
        line += f", outranked by another cause or not diagnosed {len(out)}: {', '.join(out)}"
    line += f"; controls and conforming runs passing: {ok_controls}/{len(controls)}"
    if cov is not None:
        shown = sum(bool(v) for v in cov.values())
        ok = ok and shown == len(cov)
        line += f"; checks seen failing: {shown}/{len(cov)}"
    return ok, line


def _rates_json(outcomes: list[Outcome]) -> dict:
    top1, top3, n = diagnosis_rates(outcomes)
    return {"faults": n, "top1": top1, "top3": top3, "top1_rate": round(top1 / n, 4) if n else None,
            "top3_rate": round(top3 / n, 4) if n else None}


def console_text(outcomes: list[Outcome], cov: dict[str, list[str]] | None) -> str:
    """The table, then (given coverage) every check with the faults seen failing it."""
    return table(outcomes) + ("\n\nchecks and the faults seen failing them:\n" + coverage_text(cov) if cov else "")


def write_results(out: Path, outcomes: list[Outcome], cov: dict[str, list[str]] | None,
                  seconds: float) -> tuple[bool, str]:
    """``faults.json`` and ``faults.md`` in ``out``; returns ``summary``'s (ok, line)."""
    ok, line = summary(outcomes, cov)
    (out / "faults.json").write_text(json.dumps(
        {"ok": ok, "seconds": round(seconds, 1), "summary": line, "diagnosis": _rates_json(outcomes),
         "outcomes": [asdict(o) for o in outcomes],
         "coverage": cov}, indent=1) + "\n")
    cov_md = ("\n| check | faults seen failing it |\n|---|---|\n"
              + "".join(f"| {k} | {', '.join(v) or '**never**'} |\n" for k, v in cov.items())) if cov else ""
    (out / "faults.md").write_text(markdown(outcomes) + cov_md + f"\n{line}; total {seconds / 60:.1f} min\n")
    return ok, line
