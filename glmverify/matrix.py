"""The verification matrix model: matrix.yaml, validated, as typed rows and profiles.

matrix.yaml says *what* to verify: one row per engine recipe (image, hardware, launch flags,
expectations) and the declared status of every (row, feature) cell. It is validated against
``matrix.schema.json`` plus a few cross-field rules before anything is launched; every error is
reported with its path (``rows/3/launch/args``) so a bad edit stops the run at once.

A model's semantics (effort levels, template variables) live in a *profile*, so GLM-5.3 with
low/high/max is a data change: ``EffortProfile.resolve`` maps any requested value to a level.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .paths import DEFAULT_MATRIX, MATRIX_SCHEMA

FEATURES: tuple[str, ...] = (
    "reasoning_split",
    "tool_calls",
    "effort_levels",
    "non_think",
    "context_1m",
    "mtp_accept_length",
    "accuracy_smoke",
    "anthropic_messages",
)
STATUSES: tuple[str, ...] = ("verified", "failed", "inconclusive", "inferred", "unsupported", "not_run")

SCHEMA_PATH = MATRIX_SCHEMA


class MatrixError(ValueError):
    """matrix.yaml is unreadable or invalid; ``errors`` holds (path, message) pairs."""

    def __init__(self, source: str, errors: list[tuple[str, str]]):
        self.source = source
        self.errors = errors
        lines = [f"{source}: {len(errors)} error(s) in the verification matrix"]
        lines += [f"  {path or '<root>'}: {msg}" for path, msg in errors]
        super().__init__("\n".join(lines))



def engine_kind(engine: str | None) -> str:
    """The API an engine speaks: vllm-ascend is vLLM at the API."""
    return "vllm" if engine in ("vllm", "vllm-ascend") else str(engine)

@dataclass(frozen=True)
class EffortProfile:
    variable: str
    default: str
    levels: dict[str, str]  # level -> word in the rendered system line, most effort first
    fallback: str
    system_line: str
    probe_values: tuple[str, ...]

    def resolve(self, value: str | None) -> str:
        """The effective level for a requested value (None = not passed)."""
        if value is None:
            return self.default
        return value if value in self.levels else self.fallback

    def line_for(self, level: str) -> str:
        return self.system_line.format(level=self.levels[level])

    @property
    def lowered_levels(self) -> list[str]:
        """Levels that must reason less than the default."""
        return [lv for lv in self.levels if lv != self.default]


@dataclass(frozen=True)
class Profile:
    name: str
    thinking_variable: str
    thinking_default: bool
    wrong_thinking_variables: tuple[str, ...]
    effort: EffortProfile
    # how the guides send requests: sampling fields ({} = the engine's generation config) and max_tokens
    sampling: dict[str, Any] = field(default_factory=dict)
    max_tokens: int = 8192
    # targets of the statistical decisions (glmverify.policy reads them)
    verdicts: dict[str, Any] = field(default_factory=dict)

    def request_defaults(self) -> dict[str, Any]:
        """Fields every chat request carries unless the check sets them (and says why)."""
        return {"max_tokens": self.max_tokens, **self.sampling}


#: what an inferred claim rests on (a cell's ``kind``), strongest first
CLAIM_KINDS: tuple[str, ...] = ("vendor-verified", "proposed", "derived")


@dataclass(frozen=True)
class Cell:
    status: str
    basis: str
    kind: str | None = None  # CLAIM_KINDS, for inferred cells


@dataclass(frozen=True)
class Row:
    id: str
    engine: str
    engine_version: str | None
    image: str
    image_known: bool
    hardware: str
    accelerators: int
    model: str
    served_model: str
    profile: Profile
    description: str
    source: dict[str, str]
    launch: dict[str, Any]
    expect: dict[str, Any]
    declared: dict[str, Cell] = field(default_factory=dict)
    errata: tuple[dict, ...] = ()

    @property
    def launcher(self) -> str:
        return self.launch["launcher"]

    @property
    def is_reference(self) -> bool:
        return self.hardware == "cpu"

    def declared_cell(self, feature: str) -> Cell:
        return self.declared.get(feature) or Cell("not_run", "no declaration in matrix.yaml")

    def serves(self, feature: str) -> bool:
        """False when the row declares the feature unsupported."""
        return self.declared_cell(feature).status != "unsupported"


@dataclass(frozen=True)
class Matrix:
    source: str
    features: tuple[str, ...]
    profiles: dict[str, Profile]
    rows: tuple[Row, ...]

    def row(self, row_id: str) -> Row:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise KeyError(f"no row {row_id!r} in {self.source}; rows: {', '.join(r.id for r in self.rows)}")

    @property
    def hardware_markers(self) -> list[str]:
        return sorted({r.hardware for r in self.rows})


def _path(parts) -> str:
    return "/".join(str(p) for p in parts)


def validate(data: Any, source: str = "matrix.yaml") -> list[tuple[str, str]]:
    """Every schema and cross-field error as (path, message); empty when valid."""
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [(_path(e.absolute_path), e.message) for e in validator.iter_errors(data)]
    errors.sort()
    if errors or not isinstance(data, dict):
        return errors
    profiles = data.get("profiles", {})
    for name, prof in profiles.items():
        eff = prof["effort"]
        for key in ("default", "fallback"):
            if eff[key] not in eff["levels"]:
                errors.append((f"profiles/{name}/effort/{key}", f"{eff[key]!r} is not one of the levels {sorted(eff['levels'])}"))
    seen: dict[str, int] = {}
    for i, row in enumerate(data.get("rows", [])):
        if row["id"] in seen:
            errors.append((f"rows/{i}/id", f"duplicate row id {row['id']!r} (first at rows/{seen[row['id']]})"))
        seen.setdefault(row["id"], i)
        if row["profile"] not in profiles:
            errors.append((f"rows/{i}/profile", f"unknown profile {row['profile']!r}; known: {sorted(profiles)}"))
        for feat in row.get("features", {}):
            if feat not in data["features"]:
                errors.append((f"rows/{i}/features/{feat}", f"feature {feat!r} is not listed in features"))
        if row["launch"]["launcher"] != "attach" and not row["launch"].get("args") and not row["launch"].get("command"):
            errors.append((f"rows/{i}/launch/args", "a launched row needs args"))
    return errors


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
            variable=e["variable"],
            default=e["default"],
            levels=dict(e["levels"]),
            fallback=e["fallback"],
            system_line=e["system_line"],
            probe_values=tuple(e["probe_values"]),
        ),
    )


def parse(data: Any, source: str = "matrix.yaml") -> Matrix:
    errors = validate(data, source)
    if errors:
        raise MatrixError(source, errors)
    profiles = {n: _profile(n, p) for n, p in data["profiles"].items()}
    rows = []
    for r in data["rows"]:
        rows.append(
            Row(
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
                launch=dict(r["launch"]),
                expect=dict(r["expect"]),
                declared={f: Cell(c["status"], c["basis"], c.get("kind")) for f, c in r.get("features", {}).items()},
                errata=tuple(dict(e) for e in r.get("errata", [])),
            )
        )
    return Matrix(source=source, features=tuple(data["features"]), profiles=profiles, rows=tuple(rows))


def load(path: str | Path = DEFAULT_MATRIX) -> Matrix:
    """Read and validate matrix.yaml; raises MatrixError naming every bad path."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise MatrixError(str(path), [("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise MatrixError(str(path), [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    return parse(data, str(path))
