"""The fault catalogue's data: an entry (``FaultCase``), the outcome of one run (``Outcome``) and names.

A ``FaultCase`` is one entry of ``fixtures/faults.yaml`` on one row (an entry listing several
rows becomes one case per row: ``plan.expand``). An ``Outcome`` is what one pytest run of a case,
a control or a conforming run showed: the features' statuses, whether the fault was detected
(for a control or conforming run: whether nothing failed), and the ``feature::function`` checks
seen failing and passing, which the coverage is counted from. Nothing here runs anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..adapters import ENGINE_NAMES, adapter_for
from ..knowledge import CATALOGUE, CatalogueError, suite_checks
from ..paths import SUITES_DIR

SUITES = SUITES_DIR
KINDS = ("proxy", "standin", "launch")
REFERENCE_ROWS = ("reference", "reference-ngram", "reference-sglang")  # conforming engines: runs, coverage
#: the engines an ``affects`` item may name: the adapter registry's (a live view)
AFFECTED_ENGINES = ENGINE_NAMES


def coverage_rows(matrix, rows=REFERENCE_ROWS) -> dict[str, tuple[str, ...]]:
    """Coverage is proven per engine API: which of the reference ``rows`` stand for which (from
    each row's engine and its adapter's ``api``), in the order of ``rows``."""
    out: dict[str, tuple[str, ...]] = {}
    in_matrix = {r.id: r for r in matrix.rows}
    for rid in rows:
        if rid in in_matrix:
            api = adapter_for(in_matrix[rid].engine).api
            out[api] = out.get(api, ()) + (rid,)
    return out
CASE_KEYS = {"id", "kind", "row", "suites", "expect_failed", "checks", "fault", "standin", "drop_args", "set_args",
             "env", "cpus", "chat_template", "select", "source", "why", "affects", "fix", "signature"}
SIGNATURE_KEYS = {"checks", "codes", "looks_like", "when"}
DEFAULT_TIMEOUT = 1800.0


@dataclass
class FaultCase:
    id: str
    kind: str
    row: str
    suites: list[str]
    expect_failed: list[str]
    fault: str | None = None
    standin: str | None = None
    drop_args: list[str] = field(default_factory=list)
    set_args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    cpus: str | None = None  # launch: the engine's processes confined to these CPUs (taskset -c LIST)
    chat_template: str | None = None
    checks: list[str] = field(default_factory=list)  # suite functions that must fail (the run is narrowed to them)
    select: str | None = None  # a pytest -k expression narrowing the checks run (controls only)
    source: str = ""
    why: str = ""
    # what a release engineer reads when a cell fails like this entry (diagnosis, known issues):
    affects: list[dict] = field(default_factory=list)  # [{engine, versions (PEP 440 specifiers, "" = all)}]
    fix: str = ""  # the flag to add, the version that fixes it, the workaround
    signature: dict = field(default_factory=dict)  # {checks, codes: [code | {code, fields}], looks_like, when}

    @property
    def control(self) -> bool:
        return not self.expect_failed

    def modules(self) -> list[str]:
        return [str(SUITES / f"test_{s}.py") for s in self.suites]


@dataclass
class Outcome:
    id: str
    kind: str
    row: str
    expect_failed: list[str]
    observed: dict[str, str] = field(default_factory=dict)
    detected: bool = False
    seconds: float = 0.0
    detail: str = ""
    exit_code: int | None = None
    mutated: str = ""
    results: str = ""
    failed_checks: list[str] = field(default_factory=list)  # feature::function seen failing
    passed_checks: list[str] = field(default_factory=list)  # feature::function seen passing
    #: a fault: the rank of its own entry in the diagnosis of its failed cell(s) (None: not listed)
    rank: int | None = None
    diagnosed: list[str] = field(default_factory=list)  # the top causes listed, best first
    #: the groups ranked with or above its own entry (member ids each), which the run's gate holds
    #: against the documented look-alikes (``diagnosis.placed``)
    outranked_by: list[list[str]] = field(default_factory=list)

    @property
    def top(self) -> str:
        """``1``, ``3`` (in the top 3 but not first), ``-`` (neither) for a fault; empty otherwise."""
        if not self.expect_failed:
            return ""
        return "1" if self.rank == 1 else ("3" if self.rank is not None and self.rank <= 3 else "-")

    @property
    def verdict(self) -> str:
        if not self.expect_failed:  # a control or a conforming run: nothing may fail
            return "pass" if self.detected else "FAIL"
        return "yes" if self.detected else "NO"

    @property
    def word(self) -> str:
        return {"yes": "detected", "NO": "NOT DETECTED", "pass": "passed (nothing failed)", "FAIL": "FAILED"}[self.verdict]
