"""The fault catalogue: every check can fail, proven against the reference engine.

``python -m glmverify.faults`` (``make faults``) runs every entry of ``fixtures/faults.yaml`` and
prints a table: fault, the features that must come out ``failed``, what was observed, detected or
not. It exits non-zero unless every fault is detected, every control passes and the conforming
runs have no failure. Kinds of entry: ``proxy`` (a ``glmverify.faultproxy`` fault in front of the
row's conforming engine), ``standin`` (one of the stand-in's scripted faults, per request through
the proxy or, with ``--standin-via launch``, at launch) and ``launch`` (the row launched
misconfigured: arguments dropped or set, env, a chat template variant). Each entry may name the
``checks`` that must fail; an entry's ``row`` may be a list (one run per row, ``ID@ROW``).
Coverage is proven per engine over the whole catalogue (see ``coverage``).

Modules, from the bottom up (none imports one above it):

* ``model``: ``FaultCase`` (an entry on one row), ``Outcome`` (one run's result), names and paths;
* ``templates``: the chat template variants of launch entries;
* ``plan``: entries expanded over rows (``ID@ROW``), ``--only``/``--kind``/``--row`` selection,
  the suites of a conforming run, the derived one-row matrix of a launch entry;
* ``catalogue``: ``load_catalogue``, fixtures/faults.yaml read and checked;
* ``judge``: a run's matrix.json read and judged (detected, or a control passing);
* ``pytest_runs``: the pytest child processes, always stopped;
* ``runner``: ``run_catalogue`` (shared conforming engines, proxies, launches, conforming runs);
* ``coverage``: every check seen failing, per engine;
* ``report``: the verdict (``summary``), the table, faults.json and faults.md;
* ``recordings``: the engine answers the proxy's offline tests replay;
* ``cli``: ``python -m glmverify.faults`` and ``... record``.

Results go to ``--results DIR`` (default ``results/faults-<UTC time>/``): one sub-directory per run
(``matrix.json``, ``pytest.log``, engine logs), plus ``faults.json`` and ``faults.md`` (the table).
"""
from .catalogue import load_catalogue
from .cli import main
from .coverage import coverage, coverage_text, engine_coverage
from .judge import judge, observe
from .model import (CASE_KEYS, CATALOGUE, DEFAULT_TIMEOUT, KINDS, REFERENCE_ROWS, SUITES,
                    CatalogueError, FaultCase, Outcome, suite_checks)
from .plan import conforming_suites, derive_args, derived_matrix, expand, launch_row_id, select, unknown_ids
from .pytest_runs import run_pytest, stop_children
from .recordings import RECORDINGS, load_recordings, record
from .report import console_text, markdown, summary, table, write_results
from .runner import RunOptions, run_catalogue, run_conforming, run_launch_case, run_proxy_case
from .templates import TEMPLATE, TEMPLATES, template_variant

__all__ = ["CASE_KEYS", "CATALOGUE", "DEFAULT_TIMEOUT", "KINDS", "RECORDINGS", "REFERENCE_ROWS",
           "SUITES", "TEMPLATE", "TEMPLATES", "CatalogueError", "FaultCase", "Outcome", "RunOptions",
           "conforming_suites", "console_text", "coverage", "coverage_text", "derive_args", "derived_matrix",
           "engine_coverage", "expand", "judge", "launch_row_id", "load_catalogue", "load_recordings", "main",
           "markdown", "observe", "record", "run_catalogue", "run_conforming", "run_launch_case", "run_proxy_case",
           "run_pytest", "select", "stop_children", "suite_checks", "summary", "table", "template_variant",
           "unknown_ids", "write_results"]
