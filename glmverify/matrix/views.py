"""Resolved rows as plain data: the golden snapshot, ``glmverify matrix show`` and ``list``.

Everything here reads the typed ``Matrix`` (never the layered file), so what a reviewer sees with
``show ROW`` and what the golden test compares are exactly what the harness runs.

* ``row_data(row)`` is a row with every field, its profile included whole, as JSON types.
* ``snapshot(matrix)`` is the deterministic dump the golden fixture holds (keys sorted, rows in
  file order, gzip without a timestamp so regenerating an unchanged matrix gives the same bytes);
  regenerate it on purpose with ``python -m glmverify.matrix snapshot PATH``.
* ``first_difference(a, b)`` names the first differing row and field, for a readable failure.
"""
from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import yaml

from .model import Matrix, Profile, Row


def profile_data(profile: Profile) -> dict[str, Any]:
    return _jsonable(dataclasses.asdict(profile))


def row_data(row: Row) -> dict[str, Any]:
    """Every field of a resolved row, as JSON types (tuples as lists, cells as mappings)."""
    d = {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    d["profile"] = profile_data(row.profile)
    d["launch"] = row.launch.to_mapping()
    d["declared"] = {feat: dataclasses.asdict(cell) for feat, cell in row.declared.items()}
    return _jsonable(d)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def snapshot(matrix: Matrix) -> dict[str, Any]:
    return {"features": list(matrix.features),
            "profiles": {name: profile_data(p) for name, p in sorted(matrix.profiles.items())},
            "rows": [row_data(r) for r in matrix.rows]}


def snapshot_bytes(matrix: Matrix) -> bytes:
    text = json.dumps(snapshot(matrix), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return gzip.compress(text.encode(), mtime=0)


def write_snapshot(matrix: Matrix, path: str | Path) -> Path:
    path = Path(path)
    path.write_bytes(snapshot_bytes(matrix))
    return path


def read_snapshot(path: str | Path) -> dict[str, Any]:
    return json.loads(gzip.decompress(Path(path).read_bytes()))


def first_difference(expected: Any, actual: Any, where: str = "") -> str | None:
    """The path and both values of the first difference, or None when equal; rows are named by id."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                return f"{where}/{key}: missing (expected {_short(expected[key])})"
            if key not in expected:
                return f"{where}/{key}: unexpected {_short(actual[key])}"
            diff = first_difference(expected[key], actual[key], f"{where}/{key}")
            if diff:
                return diff
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        for i, (e, a) in enumerate(zip(expected, actual)):
            name = e.get("id", i) if isinstance(e, dict) and isinstance(a, dict) and e.get("id") == a.get("id") else i
            diff = first_difference(e, a, f"{where}/{name}")
            if diff:
                return diff
        if len(expected) != len(actual):
            return f"{where}: {len(expected)} items expected, {len(actual)} found"
        return None
    if expected != actual or type(expected) is not type(actual):
        return f"{where}: expected {_short(expected)}, found {_short(actual)}"
    return None


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


# ---- what a reviewer reads --------------------------------------------------------------------------
class UnknownRow(LookupError):
    """``show`` of a row the matrix does not have; the message lists the known ids."""


def show(matrix: Matrix, row_id: str) -> str:
    """One resolved row in full, as YAML: what the harness runs, whatever layers wrote it."""
    try:
        row = matrix.row(row_id)
    except KeyError:
        raise UnknownRow(f"no row {row_id!r} in {matrix.source}; known rows:\n  "
                         + "\n  ".join(r.id for r in matrix.rows)) from None
    data = row_data(row)
    data["profile"] = {"name": row.profile.name, **{k: v for k, v in data["profile"].items() if k != "name"}}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)


def listing(matrix: Matrix, recipes: dict[str, str] | None = None) -> str:
    """One line per row: id, recipe (when the layered file names one), engine, hardware."""
    recipes = recipes or {}
    rows = [(r.id, recipes.get(r.id, "-"), r.engine, f"{r.hardware} x{r.accelerators}") for r in matrix.rows]
    head = ("row", "recipe", "engine", "hardware")
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(3)]
    return "\n".join("  ".join(x[i].ljust(widths[i]) for i in range(3)) + "  " + x[3] for x in [head, *rows]) + "\n"
