"""The fault catalogue's data: an entry (``FaultCase``), the outcome of one run (``Outcome``) and names.

A ``FaultCase`` is one entry of ``fixtures/faults.yaml`` on one row (an entry listing several
rows becomes one case per row: ``plan.expand``). An ``Outcome`` is what one pytest run of a case,
a control or a conforming run showed: the features' statuses, whether the fault was detected
(for a control or conforming run: whether nothing failed), and the ``feature::function`` checks
seen failing and passing, which the coverage is counted from. Nothing here runs anything.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

from ..paths import FIXTURES_DIR, SUITES_DIR

CATALOGUE = FIXTURES_DIR / "faults.yaml"
SUITES = SUITES_DIR
KINDS = ("proxy", "standin", "launch")
REFERENCE_ROWS = ("reference", "reference-ngram", "reference-sglang")  # conforming engines: runs, coverage
#: coverage is proven per engine: which reference rows stand for which engine
COVERAGE_ROWS = {"vllm": ("reference", "reference-ngram"), "sglang": ("reference-sglang",)}
CASE_KEYS = {"id", "kind", "row", "suites", "expect_failed", "checks", "fault", "standin", "drop_args", "set_args",
             "env", "chat_template", "select", "source", "why", "affects", "fix", "signature"}
#: the engines an ``affects`` item may name (a bug's reported engine and version range)
AFFECTED_ENGINES = ("vllm", "sglang", "vllm-ascend")
SIGNATURE_KEYS = {"checks", "looks_like", "when"}
DEFAULT_TIMEOUT = 1800.0


class CatalogueError(ValueError):
    """An invalid catalogue (every problem found, one a line) or chat template variant."""


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
    chat_template: str | None = None
    checks: list[str] = field(default_factory=list)  # suite functions that must fail (the run is narrowed to them)
    select: str | None = None  # a pytest -k expression narrowing the checks run (controls only)
    source: str = ""
    why: str = ""
    # what a release engineer reads when a cell fails like this entry (diagnosis, known issues):
    affects: list[dict] = field(default_factory=list)  # [{engine, versions (PEP 440 specifiers, "" = all)}]
    fix: str = ""  # the flag to add, the version that fixes it, the workaround
    signature: dict = field(default_factory=dict)  # {checks: [feature::function], looks_like: [regex], when: {...}}

    @property
    def control(self) -> bool:
        return not self.expect_failed

    def modules(self) -> list[str]:
        return [str(SUITES / f"test_{s}.py") for s in self.suites]


def suite_checks(features) -> dict[str, str]:
    """``feature::function`` -> feature, for every check function (``def test_*``) of the features' suites."""
    out = {}
    for feat in features:
        path = SUITES / f"test_{feat}.py"
        if not path.is_file():
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                out[f"{feat}::{node.name}"] = feat
    return out


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

    @property
    def verdict(self) -> str:
        if not self.expect_failed:  # a control or a conforming run: nothing may fail
            return "pass" if self.detected else "FAIL"
        return "yes" if self.detected else "NO"

    @property
    def word(self) -> str:
        return {"yes": "detected", "NO": "NOT DETECTED", "pass": "passed (nothing failed)", "FAIL": "FAILED"}[self.verdict]
