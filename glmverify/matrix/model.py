"""The matrix's typed model: rows, profiles and cells as the rest of the harness reads them.

These are the *resolved* objects: whatever layers matrix.yaml is written in (see
``glmverify.matrix``), a ``Row`` carries every field itself, so no consumer knows about defaults,
recipes or claims. A model's semantics (effort levels, template variables) live in its
``Profile``, so GLM-5.3 with low/high/max is a data change: ``EffortProfile.resolve`` maps any
requested value to a level.

The engines a row may name are not listed here: ``glmverify.adapters.register`` records each
adapter's name and API kind (``register_engine``), and the matrix reads them back (schema enum,
``engine_kind``). The matrix sits below the adapters (``tests/unit/test_layering.py``), so it is
told the engines rather than importing them; a matrix read before any adapter is registered
(``python -m glmverify.matrix``) checks engine names only as strings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
#: what an inferred claim rests on (a cell's ``kind``), strongest first
CLAIM_KINDS: tuple[str, ...] = ("vendor-verified", "proposed", "derived")


class MatrixError(ValueError):
    """matrix.yaml is unreadable or invalid; ``errors`` holds (path, message) pairs."""

    def __init__(self, source: str, errors: list[tuple[str, str]]):
        self.source = source
        self.errors = errors
        lines = [f"{source}: {len(errors)} error(s) in the verification matrix"]
        lines += [f"  {path or '<root>'}: {msg}" for path, msg in errors]
        super().__init__("\n".join(lines))


#: engine name -> the API it speaks, as the adapter registry reported them (``register_engine``)
_ENGINE_APIS: dict[str, str] = {}


def register_engine(name: str, api: str) -> None:
    """Record an engine a row may name (called by ``glmverify.adapters.register``)."""
    _ENGINE_APIS[name] = api


def unregister_engine(name: str) -> None:
    _ENGINE_APIS.pop(name, None)


def known_engines() -> tuple[str, ...]:
    """The registered engine names, sorted (empty until an adapter is registered)."""
    return tuple(sorted(_ENGINE_APIS))


def engine_kind(engine: str | None) -> str:
    """The API an engine speaks (its adapter's ``api``: vllm-ascend is vLLM at the API)."""
    try:
        return _ENGINE_APIS[str(engine)]
    except KeyError:
        known = ", ".join(known_engines()) or "none registered"
        raise KeyError(f"no adapter for engine {engine!r} (known: {known})") from None


def uses_container(launcher: str | None) -> bool:
    """A row of this launcher runs in a container (the layered file's container defaults apply)."""
    return launcher == "container"


@dataclass(frozen=True)
class EffortProfile:
    """A model's reasoning-effort levels, most effort first; a profile may have none (GLM-4.x), and
    then every value resolves to None, no line is rendered and no level is lowered (why it has none
    is the basis of its rows' unsupported effort cell, see ``glmverify.matrix.validate``)."""

    variable: str | None
    default: str | None
    levels: dict[str, str]  # level -> word in the rendered system line, most effort first
    fallback: str | None
    system_line: str
    probe_values: tuple[str, ...]

    @property
    def has_levels(self) -> bool:
        return bool(self.levels)

    def resolve(self, value: str | None) -> str | None:
        """The effective level for a requested value (None = not passed); None without levels."""
        if not self.levels:
            return None
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
        """The project's own engine on CPU serving the stand-in (the one spelling of it)."""
        return self.hardware == "cpu"

    @property
    def attached(self) -> bool:
        """Attach-only: the harness never launches it (``--endpoint``)."""
        return self.launcher == "attach"

    @property
    def in_container(self) -> bool:
        """Launched as a container of its image (else a local process, or attached)."""
        return uses_container(self.launcher)

    @property
    def local_process(self) -> bool:
        return self.launcher == "process"

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
    recipe_of: dict[str, str] = field(default_factory=dict)  # row id -> the recipe it was written with

    def row(self, row_id: str) -> Row:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise KeyError(f"no row {row_id!r} in {self.source}; rows: {', '.join(r.id for r in self.rows)}")

    @property
    def hardware_markers(self) -> list[str]:
        return sorted({r.hardware for r in self.rows})
