"""The fault catalogue as knowledge: what each entry says about a cause, read as plain data.

The catalogue (``fixtures/faults.yaml``, then ``fixtures/faults.d/*.yaml``) is written for the
fault runner (``glmverify.faults``), which checks every key against the suites, rows and faults.
This module reads the same files for the records and reports instead: per entry its id, kind,
the cause it applies (the proxy fault, the stand-in fault or the launch change), the rows it runs
on, the features it fails (``expect_failed``), its named checks, and what a release engineer
reads: ``source`` (the bug report), ``affects`` (engine and PEP 440 version range, ``""`` = every
version), ``fix`` and ``signature`` (``checks``: ``feature::function`` that fail when the cause is
present, default: each named check under each failed feature, or any check of those features;
``codes``: the failure codes (``failure_codes``) a failing check of the cause carries, each with
the fields it must have (and, for an engine's own message, a ``detail`` regex); ``looks_like``: case-insensitive regexes over the details of failing
checks that carry no code (records from before codes); ``when``: a row
condition the cause needs). ``diagnosis`` ranks entries by it; ``known_issues`` lists the
entries whose ``affects`` covers a row's engine and version.

Lenient by design: an entry this module cannot use (a control, a malformed item) is skipped, not
raised, because a results document must never fail to be written over a catalogue typo; the
strict checks are ``faults.catalogue.load_catalogue``'s (``make faults``, the unit tests; the engines an
``affects`` item may name are the adapter registry's, checked there).
Imports only ``paths`` (and PyYAML, ``packaging``): every layer above may use it.
"""
from __future__ import annotations

import ast
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from .paths import FIXTURES_DIR, SUITES_DIR

CATALOGUE = FIXTURES_DIR / "faults.yaml"


class CatalogueError(ValueError):
    """An invalid catalogue (every problem found, one a line) or chat template variant."""


def catalogue_files(path: Path | str = CATALOGUE) -> list[Path]:
    """The catalogue's files: ``path`` and then, sorted, the ``*.yaml`` of the directory next to it
    named ``<stem>.d`` (``fixtures/faults.d/``: the field bugs, one file per area)."""
    path = Path(path)
    extra = path.with_name(path.stem + ".d")
    return [path] + (sorted(extra.glob("*.yaml")) if extra.is_dir() else [])


def read_entries(path: Path | str = CATALOGUE) -> list[tuple[str, object]]:
    """Every raw entry of the catalogue's files, with where it is (``FILE[i]``), unchecked."""
    out = []
    for f in catalogue_files(path):
        data = yaml.safe_load(f.read_text())
        if not isinstance(data, list):
            raise CatalogueError(f"{f}: expected a list of faults")
        out += [(f"{f.name}[{i}]", d) for i, d in enumerate(data)]
    return out


def suite_checks(features: Iterable[str]) -> dict[str, str]:
    """``feature::function`` -> feature, for every check function (``def test_*``) of the features' suites."""
    out = {}
    for feat in features:
        out.update(dict.fromkeys(_suite_functions(feat), feat))
    return out


@functools.lru_cache(maxsize=None)
def _suite_functions(feature: str) -> tuple[str, ...]:
    path = SUITES_DIR / f"test_{feature}.py"
    if not path.is_file():
        return ()
    return tuple(f"{feature}::{n.name}" for n in ast.parse(path.read_text()).body
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test_"))


@dataclass(frozen=True)
class Entry:
    """One catalogue entry (not expanded over rows: ``ID@ROW`` cases are this entry)."""
    id: str
    kind: str
    cause_key: str  # what it applies: two entries with the same key are the same cause
    rows: tuple[str, ...]
    features: tuple[str, ...]  # expect_failed
    checks: tuple[str, ...]  # the named suite functions
    source: str = ""
    why: str = ""
    fix: str = ""
    affects: tuple[dict, ...] = ()
    #: feature::function that fail when the cause is present; empty with ``any_check``
    signature_checks: tuple[str, ...] = ()
    any_check: bool = False  # no named checks: any check of ``features`` is the cause's
    looks_like: tuple[str, ...] = ()
    #: (code, fields) a failing check of the cause carries (``failure_codes``): matched before looks_like
    codes: tuple[tuple[str, dict, str], ...] = ()
    when: dict = field(default_factory=dict)
    order: int = 0  # position in the catalogue: the tie-break everywhere

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "source": self.source, "fix": self.fix,
                "affects": [dict(a) for a in self.affects]}


def cause_key(d: dict) -> str:
    """``kind`` plus what the entry applies: the proxy fault, the stand-in fault, or the launch change."""
    kind = d.get("kind")
    if kind == "proxy":
        what: Any = d.get("fault")
    elif kind == "standin":
        what = d.get("standin")
    else:
        what = {k: d.get(k) for k in ("drop_args", "set_args", "env", "chat_template") if d.get(k)}
    return f"{kind}:{json.dumps(what, sort_keys=True)}"


def entry_of(d: dict, order: int = 0) -> Entry | None:
    """The entry of raw catalogue item ``d``; None for a control or an item it cannot read."""
    if not isinstance(d, dict) or not d.get("id") or not d.get("expect_failed"):
        return None
    as_list = lambda v: list(v) if isinstance(v, (list, tuple)) else ([v] if v else [])  # noqa: E731
    features = tuple(str(f) for f in as_list(d.get("expect_failed")))
    checks = tuple(str(c) for c in as_list(d.get("checks")))
    sig = d.get("signature") if isinstance(d.get("signature"), dict) else {}
    sig_checks = tuple(str(c) for c in as_list(sig.get("checks")))
    if not sig_checks and checks:  # default: each named check under each failed feature it belongs to
        known = suite_checks(features)
        sig_checks = tuple(f"{f}::{c}" for f in features for c in checks if f"{f}::{c}" in known)
    affects = tuple(dict(a) for a in as_list(d.get("affects")) if isinstance(a, dict) and a.get("engine"))
    return Entry(id=str(d["id"]), kind=str(d.get("kind")), cause_key=cause_key(d), rows=tuple(as_list(d.get("row"))),
                 features=features, checks=checks, source=str(d.get("source") or ""), why=str(d.get("why") or ""),
                 fix=str(d.get("fix") or ""), affects=affects, signature_checks=sig_checks,
                 any_check=not sig_checks, looks_like=tuple(str(r) for r in as_list(sig.get("looks_like"))),
                 codes=tuple(_code_item(c) for c in as_list(sig.get("codes")) if _code_item(c)[0]),
                 when=dict(sig.get("when") or {}) if isinstance(sig.get("when"), dict) else {}, order=order)


def _code_item(item: Any) -> tuple[str, dict, str]:
    """A signature's ``codes`` item (``CODE`` or ``{code: CODE, fields: {...}, detail: REGEX}``) as
    (code, fields, detail); ``detail`` is for codes whose decisive words are the engine's own (its
    refusal or startup message), never the harness's."""
    if isinstance(item, dict):
        fields = item.get("fields") if isinstance(item.get("fields"), dict) else {}
        return str(item.get("code") or ""), dict(fields), str(item.get("detail") or "")
    return str(item or ""), {}, ""


def load_entries(path: Path | str = CATALOGUE) -> list[Entry]:
    """Every fault entry of the catalogue (controls and unreadable items left out), in file order."""
    try:
        raw = read_entries(path)
    except (OSError, CatalogueError, yaml.YAMLError):
        return []
    out = [entry_of(d, i) for i, (_, d) in enumerate(raw)]
    return [e for e in out if e is not None]


@functools.lru_cache(maxsize=4)
def _cached(path: str, stamp: tuple) -> tuple[Entry, ...]:
    return tuple(load_entries(path))


def catalogue(path: Path | str = CATALOGUE) -> tuple[Entry, ...]:
    """``load_entries``, cached while the files are unchanged (the recorder asks after every check)."""
    files = catalogue_files(path)
    stamp = tuple((str(f), f.stat().st_mtime_ns) for f in files if f.is_file())
    return _cached(str(path), stamp)


# ---- versions ------------------------------------------------------------------------------------
def parse_version(text: Any) -> Version | None:
    """``0.32.0``, ``v0.5.23``, ``0.32.0+cpu`` as a version (local part dropped); None if not one."""
    if text is None:
        return None
    m = re.match(r"v?(\d+(?:\.\d+)*(?:(?:a|b|rc|\.post|\.dev)\d+)*)", str(text).strip())
    if not m:
        return None
    try:
        return Version(m.group(1))
    except InvalidVersion:
        return None


def covers(item: dict, engine: str | None, version: Any) -> bool:
    """Does ``affects`` item ``item`` cover ``engine`` at ``version``? The engine must be the same
    name (a vllm-ascend row is matched by vllm-ascend items only: its versions are its own);
    ``""`` covers every version, even an unknown one; a range needs a readable version."""
    if not engine or item.get("engine") != engine:
        return False
    spec = str(item.get("versions") or "").strip()
    if not spec:
        return True
    v = parse_version(version)
    if v is None:
        return False
    try:
        return SpecifierSet(spec).contains(v, prereleases=True)
    except InvalidSpecifier:
        return False


def known_issues(entries: Iterable[Entry], engine: str | None, version: Any, basis: str) -> list[dict[str, Any]]:
    """The entries whose ``affects`` covers ``engine`` at ``version``, as the document lists them:
    ``{id, source, fix, versions, engine_version, basis}`` (``basis``: observed | declared)."""
    out = []
    for e in entries:
        hit = next((a for a in e.affects if covers(a, engine, version)), None)
        if hit is not None:
            out.append({"id": e.id, "source": e.source, "fix": e.fix, "versions": str(hit.get("versions") or ""),
                        "engine_version": None if version is None else str(version), "basis": basis})
    return out
