"""JSON values as the parser catalogue compares them: strict types, and a JSON Schema subset.

Stdlib only (the runners import it inside each engine's own venv, with ``catalogue``). Types are
strict (``3`` is not ``"3"``, ``true`` is not ``1``) except that an integer equals the same
float value; ``schema_errors`` checks the catalogue's expected arguments against the tool's
schema with the keywords GLM tool definitions use.
"""
from __future__ import annotations

from typing import Any


def type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def schema_errors(value: Any, schema: dict, path: str = "$") -> list[str]:
    """Errors of ``value`` against a JSON Schema subset (type, enum, const, properties,
    required, additionalProperties: false, items, anyOf, oneOf). Enough to keep the
    catalogue's expectations honest."""
    errs: list[str] = []
    if not isinstance(schema, dict):
        return errs
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        t = type_of(value)
        ok = t in types or (t == "integer" and "number" in types)
        if not ok:
            errs.append(f"{path}: {t} is not {types}")
            return errs
    if "enum" in schema and not any(json_equal(value, e) for e in schema["enum"]):
        errs.append(f"{path}: {value!r} not in enum {schema['enum']}")
    if "const" in schema and not json_equal(value, schema["const"]):
        errs.append(f"{path}: {value!r} is not const {schema['const']!r}")
    for kw in ("anyOf", "oneOf"):
        if kw in schema:
            matches = sum(1 for s in schema[kw] if not schema_errors(value, s, path))
            if matches == 0 or (kw == "oneOf" and matches > 1):
                errs.append(f"{path}: {kw} matched {matches} branches")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errs.append(f"{path}.{key}: required")
        for key, v in value.items():
            if key in props:
                errs.extend(schema_errors(v, props[key], f"{path}.{key}"))
            elif schema.get("additionalProperties") is False:
                errs.append(f"{path}.{key}: not allowed")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            errs.extend(schema_errors(v, schema["items"], f"{path}[{i}]"))
    return errs


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality with strict types (bool is not a number) except int == float."""
    ta, tb = type_of(a), type_of(b)
    if {ta, tb} <= {"integer", "number"}:
        return a == b
    if ta != tb:
        return False
    if ta == "object":
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if ta == "array":
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return a == b
