"""Reading ``fixtures/faults.yaml``: every entry checked, expanded over its rows (``plan.expand``).

An entry must name known kinds, rows (of the matrix), features, suite modules, proxy faults
(``glmverify.faultproxy.FAULTS``), stand-in faults (``glmverify.standin.script.FAULTS``),
checks (``def test_*`` of its suites) and chat template variants; every problem of the file is
reported at once, one a line, in one ``CatalogueError``.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..faultproxy import FAULTS as PROXY_FAULTS
from ..matrix import FEATURES, load
from ..paths import DEFAULT_MATRIX
from ..standin.script import FAULTS as STANDIN_FAULTS
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from ..knowledge import catalogue_files, read_entries  # noqa: F401 - the catalogue's files are read as knowledge
from ..failure_codes import CODES
from .model import AFFECTED_ENGINES, CASE_KEYS, CATALOGUE, KINDS, SIGNATURE_KEYS, CatalogueError, FaultCase, suite_checks
from .plan import entry_rows, expand
from .templates import TEMPLATES


def load_catalogue(path: Path | str = CATALOGUE, matrix_path: Path | str = DEFAULT_MATRIX) -> list[FaultCase]:
    """Read and check the catalogue: unique ids, known kinds/rows/features/faults, suites that exist."""
    rows = {r.id for r in load(matrix_path).rows}
    errors, cases, seen = [], [], set()
    for place, d in read_entries(path):
        where = place + (f" ({d.get('id')})" if isinstance(d, dict) else "")
        if not isinstance(d, dict):
            errors.append(f"{where}: not a mapping")
            continue
        unknown = set(d) - CASE_KEYS
        missing = {"id", "kind", "row", "suites", "expect_failed"} - set(d)
        if unknown or missing:
            errors.append(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
            continue
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", str(d["id"])) or d["id"] in seen:
            errors.append(f"{where}: id must be unique, lowercase words joined by '-'")
        seen.add(d["id"])
        row_ids = entry_rows(d)
        if not row_ids or len(set(row_ids)) != len(row_ids):
            errors.append(f"{where}: row must be a row id or a list of distinct row ids")
            continue
        for case in expand(d):  # errors stop the load below, after every entry is checked
            errors += _case_errors(case, where, rows, matrix_path)
            cases.append(case)
    if errors:
        raise CatalogueError("\n".join(errors))
    return cases


def _case_errors(case: FaultCase, where: str, rows: set[str], matrix_path) -> list[str]:
    """One case's errors (``where``: the entry's place in the file, for the messages)."""
    errors: list[str] = []
    if case.kind not in KINDS:
        errors.append(f"{where}: kind {case.kind!r} not one of {KINDS}")
    if case.row not in rows:
        errors.append(f"{where}: row {case.row!r} not in {matrix_path}")
    for feat in case.suites + case.expect_failed:
        if feat not in FEATURES:
            errors.append(f"{where}: unknown feature {feat!r}")
    for m in case.modules():
        if not Path(m).is_file():
            errors.append(f"{where}: no suite module {Path(m).name}")
    if not set(case.expect_failed) <= set(case.suites):
        errors.append(f"{where}: expect_failed {case.expect_failed} not all among suites {case.suites}")
    if case.kind == "proxy" and case.fault not in PROXY_FAULTS:
        errors.append(f"{where}: unknown proxy fault {case.fault!r}")
    if case.kind == "standin" and case.standin not in STANDIN_FAULTS:
        errors.append(f"{where}: unknown stand-in fault {case.standin!r} (one of {sorted(STANDIN_FAULTS)})")
    if case.kind == "launch" and not (case.drop_args or case.set_args or case.env or case.cpus or case.chat_template):
        errors.append(f"{where}: a launch fault must change something (drop_args, set_args, env, cpus, chat_template)")
    if case.select and case.expect_failed:
        errors.append(f"{where}: select is for controls only (a fault names its checks instead)")
    if case.checks:
        known = {k.split("::")[1] for k in suite_checks(case.suites)}
        if not case.expect_failed:
            errors.append(f"{where}: checks are for faults (what must fail); a control narrows with select")
        for name in case.checks:
            if name not in known:
                errors.append(f"{where}: no check {name!r} in the suites {case.suites}")
    errors += _knowledge_errors(case, where)
    if case.chat_template is not None and case.chat_template not in TEMPLATES:
        errors.append(f"{where}: unknown chat_template {case.chat_template!r} ({', '.join(TEMPLATES)})")
    return errors


def _knowledge_errors(case: FaultCase, where: str) -> list[str]:
    """``affects``, ``fix`` and ``signature``: the entry's diagnosis and known-issue data."""
    errors: list[str] = []
    if not isinstance(case.affects, list):
        return [f"{where}: affects must be a list of {{engine, versions}}"]
    for a in case.affects:
        if not isinstance(a, dict) or a.get("engine") not in AFFECTED_ENGINES or set(a) - {"engine", "versions"}:
            errors.append(f"{where}: affects item {a!r}: needs engine (one of {AFFECTED_ENGINES}) and optional versions")
            continue
        try:
            SpecifierSet(str(a.get("versions") or ""))
        except InvalidSpecifier as exc:
            errors.append(f"{where}: affects versions {a.get('versions')!r}: {exc}")
    if not isinstance(case.fix, str):
        errors.append(f"{where}: fix must be text")
    sig = case.signature
    if not isinstance(sig, dict) or set(sig) - SIGNATURE_KEYS:
        return errors + [f"{where}: signature must be a mapping of {sorted(SIGNATURE_KEYS)}"]
    known = suite_checks(case.suites)
    for k in sig.get("checks", []):
        if k not in known:
            errors.append(f"{where}: signature check {k!r} is not a feature::function of the suites {case.suites}")
    for rx in sig.get("looks_like", []):
        try:
            re.compile(rx)
        except re.error as exc:
            errors.append(f"{where}: signature looks_like {rx!r}: {exc}")
    if not isinstance(sig.get("when", {}), dict):
        errors.append(f"{where}: signature when must be a mapping")
    for item in sig.get("codes", []):  # a code, or {code, fields}: a code of failure_codes
        code = item.get("code") if isinstance(item, dict) else item
        if code not in CODES or (isinstance(item, dict) and not isinstance(item.get("fields", {}), dict)):
            errors.append(f"{where}: signature code {item!r} is not a code of glmverify.failure_codes (with fields a mapping)")
        elif isinstance(item, dict) and item.get("detail"):
            try:
                re.compile(str(item["detail"]))
            except re.error as exc:
                errors.append(f"{where}: signature code {code!r} detail: {exc}")
    return errors
