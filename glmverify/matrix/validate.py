"""Validation of matrix.yaml: the JSON Schema of the layered form, then the resolved rows.

Three passes, each error a (path, message) pair whose path points into the layered file:

1. the document against ``matrix.schema.json`` (``recipes/vllm-fp8-standard/launch/args``), whose
   ``$defs/engine`` gets its enum at load time from the engines the adapter registry reported
   (``model.known_engines``): a new engine is its adapter, not a schema edit;
2. resolution (``glmverify.matrix.layers``): unknown recipe, model or claim;
3. every resolved row against the schema's ``resolved_row`` (a field no layer gave is reported at
   the row, ``rows/7``, naming the layers it was merged from) and the cross-field rules (unique
   ids, known profiles and features, effort default and fallback among the levels, args for a
   launched row). A row whose profile has no effort levels gets its effort cell from the profile
   (unsupported, with the profile's basis); declaring it too is an error.

Passes 2 and 3 run even when pass 1 found errors (so one run names every bad path), skipping
any row that cannot be resolved and any error at a path pass 1 already reported.
"""
from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema

from ..hardware import vendors
from ..paths import MATRIX_SCHEMA
from .layers import resolve, resolve_row
from .model import known_engines

SCHEMA_PATH = MATRIX_SCHEMA


@functools.cache
def _schema_file() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


@functools.cache
def _schema_for(engines: tuple[str, ...]) -> dict:
    """The schema with ``$defs/engine`` restricted to ``engines`` (unrestricted when none is known)."""
    schema = json.loads(json.dumps(_schema_file()))  # a deep copy: the file's dict stays as read
    if engines:
        schema["$defs"]["engine"] = {**schema["$defs"]["engine"], "enum": list(engines)}
    return schema


def _schema() -> dict:
    # keyed by the registry's names, so an adapter registered later (a plug-in) is seen
    return _schema_for(known_engines())


def _path(parts) -> str:
    return "/".join(str(p) for p in parts)


def _schema_errors(data: Any, ref: str | None = None, prefix: str = "") -> list[tuple[str, str]]:
    schema = _schema()
    if ref:
        schema = {"$ref": f"#/$defs/{ref}", "$defs": schema["$defs"]}
    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for e in validator.iter_errors(data):
        path = _path([p for p in [prefix] if p] + list(e.absolute_path))
        out.append((path, e.message))
    return sorted(out)


def profile_errors(profiles: dict) -> list[tuple[str, str]]:
    errors = []
    for name, prof in profiles.items():
        eff = prof["effort"]
        if not eff["levels"]:
            continue  # the schema requires the basis of a profile without levels
        for key in ("default", "fallback"):
            if eff[key] not in eff["levels"]:
                errors.append((f"profiles/{name}/effort/{key}",
                               f"{eff[key]!r} is not one of the levels {sorted(eff['levels'])}"))
    return errors


def vendor_errors(defaults: Any) -> list[tuple[str, str]]:
    """The vendors the file names must be ``hardware.SPECS``'s (the one hardware -> vendor mapping):
    ``defaults.vendors``, where the file lists it, must not give a marker another vendor, and the per-vendor
    container defaults must be keyed by a known vendor (else they silently never apply)."""
    if not isinstance(defaults, dict):
        return []
    known = vendors()
    errors = []
    for vendor, names in (defaults.get("vendors") or {}).items():
        if vendor not in known:
            errors.append((f"defaults/vendors/{vendor}",
                           f"unknown vendor {vendor!r}; hardware.SPECS names {sorted(known)}"))
        elif isinstance(names, list):
            others = [n for n in names if n not in known[vendor]]
            if others:
                errors.append((f"defaults/vendors/{vendor}", f"{others} are not {vendor!r} hardware in hardware.SPECS "
                                                             f"({sorted(known[vendor])})"))
    for vendor in ((defaults.get("containers") or {}).get("vendors") or {}):
        if vendor not in known:
            errors.append((f"defaults/containers/vendors/{vendor}",
                           f"unknown vendor {vendor!r}; hardware.SPECS names {sorted(known)}"))
    return errors


def _no_effort_levels(i: int, row: dict, effort: dict, data: dict) -> list[tuple[str, str]]:
    """A profile without effort levels decides its rows' effort cell: unsupported, with the
    profile's basis. Any other declaration of that cell contradicts the profile (the same cell, as a
    flat document carries it, is accepted)."""
    cell = {"status": "unsupported", "basis": effort.get("basis", "")}  # no basis: the schema reported it
    declared = row.get("features", {}).get("effort_levels")
    if declared is not None and declared != cell:
        _, layers, _ = resolve_row(i, data["rows"][i], data)
        return [(f"rows/{i}/features/effort_levels",
                 f"profile {row['profile']!r} has no effort levels, so it decides this cell (unsupported); "
                 f"drop the declaration (merged from {' + '.join(layers)})")]
    row.setdefault("features", {})["effort_levels"] = cell
    return []


def validate(data: Any, source: str = "matrix.yaml") -> list[tuple[str, str]]:
    """Every schema, resolution and cross-field error as (path, message); empty when valid."""
    errors, _ = validate_and_resolve(data)
    return errors


def validate_and_resolve(data: Any) -> tuple[list[tuple[str, str]], tuple[list[dict], dict[str, str]]]:
    """(errors, (flat rows, row id -> recipe)); the rows are only meaningful without errors."""
    errors = _schema_errors(data)
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) \
            or not all(isinstance(data.get(k, {}), dict) for k in ("profiles", "models", "recipes", "claims", "defaults")):
        return errors, ([], {})
    first_pass = [p for p, _ in errors]
    profiles = data.get("profiles", {})
    try:
        errors += profile_errors(profiles)
    except (KeyError, TypeError):
        pass  # a malformed profile: pass 1 named it
    errors += vendor_errors(data.get("defaults"))
    resolved, recipe_of, res_errors = resolve(data)
    errors += res_errors
    seen: dict[str, int] = {}
    for i, row in resolved:
        if first_pass and any(f"rows/{i}" == q or q.startswith(f"rows/{i}/") for q in first_pass) and \
                not isinstance(row.get("id"), str):
            continue
        row_errors = _schema_errors(row, "resolved_row", f"rows/{i}")
        if row_errors:
            _, layers, _ = resolve_row(i, data["rows"][i], data)
            merged = " + ".join(layers)
            errors += [(p, f"{m} (after merging {merged})") for p, m in row_errors]
            continue
        if row["id"] in seen:
            errors.append((f"rows/{i}/id", f"duplicate row id {row['id']!r} (first at rows/{seen[row['id']]})"))
        seen.setdefault(row["id"], i)
        if row["profile"] not in profiles:
            errors.append((f"rows/{i}/profile", f"unknown profile {row['profile']!r}; known: {sorted(profiles)}"))
        elif not profiles[row["profile"]]["effort"]["levels"]:
            errors += _no_effort_levels(i, row, profiles[row["profile"]]["effort"], data)
        for feat in row.get("features", {}):
            if feat not in data["features"]:
                errors.append((f"rows/{i}/features/{feat}", f"feature {feat!r} is not listed in features"))
        launch = row["launch"]
        if launch["launcher"] != "attach" and not launch.get("args") and not launch.get("command"):
            errors.append((f"rows/{i}/launch/args", "a launched row needs args"))
    errors = errors[:len(first_pass)] + [(p, m) for p, m in errors[len(first_pass):]
                                         if not any(p == q or p.startswith(q + "/") for q in first_pass)]
    return errors, ([row for _, row in resolved], recipe_of)
