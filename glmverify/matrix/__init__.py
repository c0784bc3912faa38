"""The verification matrix: matrix.yaml, layered, validated, resolved into typed rows.

matrix.yaml says *what* to verify: one row per engine recipe and hardware (image, launch flags,
expectations) and the declared status of every (row, feature) cell. It is written in layers so
that a fact is stated once:

``defaults``  container-launch defaults per engine and per vendor (ipc, the Hugging Face cache,
              ``gpus: all``, ports, ``startup_timeout``) and the launch command per engine;
``profiles``  a model family's semantics (thinking variable, effort levels, request defaults,
              the statistical decisions' targets);
``models``    checkpoint, served name and profile;
``claims``    named basis sentences (status, kind, basis) that cells cite by name;
``recipes``   one launch recipe of a guide: engine, args (``{model}``, ``{served_model}``),
              source, expectations, feature claims;
``rows``      ``{id, recipe, model, image, hardware, accelerators}`` plus overrides.

Merge rule: deep-merge mappings, the later layer wins, lists are replaced whole (the order of the
layers and the placeholder rules are in ``glmverify.matrix.layers``). The loader resolves every
row into a flat ``Row`` before anything runs, so no consumer sees a layer; ``glmverify matrix show
ROW`` prints one resolved row whole, and the golden test (tests/unit/test_matrix_golden.py) holds the
resolved rows to ``fixtures/matrix_golden.json.gz`` (regenerate it on purpose with
``python -m glmverify.matrix snapshot fixtures/matrix_golden.json.gz``).

Validation (``glmverify.matrix.validate``) reports every error with its path in the layered file
(``recipes/vllm-fp8-standard/launch/args``, ``rows/3/recipe``), so a bad edit stops the run at once.

Modules: ``model`` (the typed rows and profiles), ``layers`` (resolution), ``validate`` (schema and
cross-field rules), ``views`` (snapshot, show, list).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..paths import DEFAULT_MATRIX
from .model import (CLAIM_KINDS, FEATURES, STATUSES, Cell, EffortProfile, LaunchSpec, Matrix, MatrixError, Profile, Row,
                    engine_kind, known_engines, register_engine, unregister_engine)
from .validate import SCHEMA_PATH, validate, validate_and_resolve

# libyaml's loader when PyYAML was built with it (about 8x faster on matrix.yaml), else pure Python
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

__all__ = ["CLAIM_KINDS", "DEFAULT_MATRIX", "FEATURES", "SCHEMA_PATH", "STATUSES", "Cell", "EffortProfile", "LaunchSpec", "Matrix",
           "MatrixError", "Profile", "Row", "engine_kind", "flat_document", "known_engines", "load", "parse",
           "read_document", "register_engine", "unregister_engine", "validate"]


def _profile(name: str, d: dict) -> Profile:
    e = d["effort"]
    return Profile(
        name=name,
        thinking_variable=d["thinking_variable"],
        thinking_default=d.get("thinking_default", True),
        wrong_thinking_variables=tuple(d.get("wrong_thinking_variables", ())),
        sampling=dict((d.get("requests") or {}).get("sampling") or {}),
        max_tokens=int((d.get("requests") or {}).get("max_tokens", 8192)),
        verdicts=dict(d.get("verdicts") or {}),
        effort=EffortProfile(
            variable=e.get("variable"),
            default=e.get("default"),
            levels=dict(e["levels"]),
            fallback=e.get("fallback"),
            system_line=e.get("system_line", ""),
            probe_values=tuple(e.get("probe_values", ())),
        ),
    )


def _row(r: dict, profiles: dict[str, Profile]) -> Row:
    return Row(
        id=r["id"],
        engine=r["engine"],
        engine_version=r.get("engine_version"),
        image=r["image"],
        image_known=r.get("image_known", True),
        hardware=r["hardware"],
        accelerators=r.get("accelerators", 0),
        model=r["model"],
        served_model=r["served_model"],
        profile=profiles[r["profile"]],
        description=r.get("description", ""),
        source=dict(r["source"]),
        launch=LaunchSpec.from_mapping(r["launch"]),
        expect=dict(r["expect"]),
        declared={f: Cell(c["status"], c["basis"], c.get("kind")) for f, c in r.get("features", {}).items()},
        errata=tuple(dict(e) for e in r.get("errata", [])),
    )


def parse(data: Any, source: str = "matrix.yaml") -> Matrix:
    """A validated, resolved Matrix from the parsed YAML; raises MatrixError naming every bad path."""
    errors, (rows, recipe_of) = validate_and_resolve(data)
    if errors:
        raise MatrixError(source, errors)
    profiles = {n: _profile(n, p) for n, p in data["profiles"].items()}
    return Matrix(source=source, features=tuple(data["features"]), profiles=profiles,
                  rows=tuple(_row(r, profiles) for r in rows), recipe_of=recipe_of)


def read_document(path: str | Path = DEFAULT_MATRIX) -> Any:
    """matrix.yaml parsed as YAML (layers unresolved); MatrixError when unreadable."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise MatrixError(str(path), [("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader, C or Python
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise MatrixError(str(path), [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None


def load(path: str | Path = DEFAULT_MATRIX) -> Matrix:
    """Read, validate and resolve matrix.yaml; raises MatrixError naming every bad path."""
    return parse(read_document(path), str(path))


def flat_document(path: str | Path = DEFAULT_MATRIX) -> dict:
    """matrix.yaml with every row resolved and self-contained: ``schema``, ``features``, ``profiles``
    and flat ``rows`` (no defaults, models, claims or recipes). ``parse`` accepts it; it is what
    code writing a one-row matrix (the fault catalogue, the tests) starts from."""
    data = read_document(path)
    errors, (rows, _) = validate_and_resolve(data)
    if errors:
        raise MatrixError(str(path), errors)
    return {"schema": data["schema"], "features": list(data["features"]), "profiles": data["profiles"], "rows": rows}
