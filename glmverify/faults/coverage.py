"""Coverage of the whole catalogue: every check function must be seen failing under some fault, per engine.

* an engine whose adapter ``covers_every_check`` (vLLM): every check function of every suite its
  reference rows serve must be seen failing under some detected fault run on one of its rows;
* any other (SGLang): every check function that ran (passed) in the conforming run of its
  reference rows (``reference-sglang``) must be seen failing under some detected fault run on one
  of them: so each check's SGLang branch (``reasoning_content``, the rendered prompt through
  ``return_prompt_token_ids``, prompt tokens from ``usage``) is proven able to fail there, not
  only on vLLM.

Which reference rows stand for which engine is read from the rows' engines (``coverage_rows``).

A check no fault failed maps to an empty list ("NEVER SEEN FAILING"), and fails the run.
"""
from __future__ import annotations

from ..matrix import FEATURES
from ..adapters import adapter_for
from .model import Outcome, coverage_rows, suite_checks
from .plan import conforming_suites


def coverage(outcomes: list[Outcome], features, rows=None) -> dict[str, list[str]]:
    """``feature::function`` of every check of ``features`` -> the detected faults seen failing it
    (only faults run on ``rows``, when given)."""
    cov: dict[str, list[str]] = {k: [] for k in suite_checks(features)}
    for o in outcomes:
        if o.expect_failed and o.detected and (rows is None or o.row in rows):
            for k in o.failed_checks:
                if k in cov:
                    cov[k].append(o.id)
    return cov


def engine_coverage(outcomes: list[Outcome], matrix, selected: set[str] | None = None) -> dict[str, list[str]]:
    """Coverage per engine, keyed ``ENGINE: feature::function`` (see the module docstring): vLLM over
    every check of the suites its reference rows serve; SGLang over the checks its conforming run
    ran (a check the engine cannot run on its rows, e.g. speculative decoding on a CPU SGLang, is owed
    nowhere).
    ``selected``: only these reference rows (``--row``), and only the engines they stand for."""
    out: dict[str, list[str]] = {}
    for engine, rows in coverage_rows(matrix).items():
        rows = [r for r in rows if selected is None or r in selected]
        if not rows:
            continue
        served = [f for f in FEATURES if any(f in conforming_suites(matrix.row(r)) for r in rows)]
        cov = coverage(outcomes, served, set(rows))
        if not adapter_for(engine).covers_every_check:
            ran = {k for o in outcomes if o.kind == "conforming" and o.row in rows for k in o.passed_checks}
            cov = {k: v for k, v in cov.items() if k in ran} or {f"{engine} conforming run": []}
        out.update({f"{engine}: {k}": v for k, v in cov.items()})
    return out


def coverage_text(cov: dict[str, list[str]]) -> str:
    width = max((len(k) for k in cov), default=10)
    return "\n".join(f"{k.ljust(width)}  {', '.join(v) if v else 'NEVER SEEN FAILING'}" for k, v in cov.items())
