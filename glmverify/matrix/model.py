"""The matrix's typed model: rows, profiles and cells as the rest of the harness reads them.

These are the *resolved* objects: whatever layers matrix.yaml is written in (see
``glmverify.matrix``), a ``Row`` carries every field itself, so no consumer knows about defaults,
recipes or claims. A model's semantics (effort levels, template variables) live in its
``Profile``, so GLM-5.3 with low/high/max is a data change: ``EffortProfile.resolve`` maps any
requested value to a level.

A row's launch is a ``LaunchSpec``: the ``launch:`` mapping of matrix.yaml as typed fields, with
the one placeholder expander (``LaunchSpec.expanded``) both launchers use; which value each
placeholder gets per launcher is ``glmverify.launchers``.

The engines a row may name are not listed here: ``glmverify.adapters.register`` records each
adapter's name and API kind (``register_engine``), and the matrix reads them back (schema enum,
``engine_kind``). The matrix sits below the adapters (``tests/unit/test_layering.py``), so it is
told the engines rather than importing them; a matrix read before any adapter is registered
(``python -m glmverify.matrix``) checks engine names only as strings.
"""
from __future__ import annotations

import dataclasses
import re
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
    "serving_performance",
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


PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def expand_placeholders(text: str, values: dict[str, str]) -> str:
    """``{name}`` replaced by ``values[name]``; unknown names stay. Not ``str.format``: JSON
    arguments (``--speculative-config``) contain braces."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


@dataclass(frozen=True)
class LaunchSpec:
    """A row's ``launch:`` as resolved from matrix.yaml (``matrix.schema.json`` describes each field)."""

    launcher: str                                      # process | container | attach
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    secret_env: list[str] = field(default_factory=list)  # names passed through from the host, never recorded
    entrypoint: list[str] | None = None
    volumes: list[str] = field(default_factory=list)
    devices: dict[str, Any] = field(default_factory=dict)  # {gpus, paths}
    ipc: str | None = None
    shm_size: str | None = None
    network: str | None = None
    port: int | None = None
    startup_timeout: float | None = None
    xdist_group: str | None = None
    build: str | None = None                           # images/ recipe that builds the image
    added: dict[str, str] = field(default_factory=dict)    # flag -> why the harness adds it
    changed: dict[str, str] = field(default_factory=dict)  # flag -> why the row changes its value
    dropped: dict[str, str] = field(default_factory=dict)  # recipe flag -> why the launch leaves it out
    attach: dict[str, Any] | None = None               # attach-only rows: nodes, endpoint, deploy

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> "LaunchSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"launch: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**{k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, (list, tuple)) else v)
                      for k, v in data.items()})

    def to_mapping(self) -> dict[str, Any]:
        """The fields a row sets (what matrix.yaml resolves to): unset ones are left out."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if value != default:
                out[f.name] = value
        return out

    def mentions(self, name: str) -> bool:
        """Whether ``{name}`` occurs anywhere a launch expands placeholders."""
        token = "{" + name + "}"
        return any(token in text for text in self._texts())

    def _texts(self) -> list[str]:
        return [*self.command, *self.args, *(self.entrypoint or []), *self.volumes, *self.env.values()]

    def expanded(self, values: dict[str, str]) -> "LaunchSpec":
        """The spec with every placeholder of ``values`` replaced (command, args, entrypoint,
        volumes, env values): the one expander of both launchers."""
        x = lambda text: expand_placeholders(text, values)  # noqa: E731
        return dataclasses.replace(
            self, command=[x(c) for c in self.command], args=[x(a) for a in self.args],
            entrypoint=[x(e) for e in self.entrypoint] if self.entrypoint else self.entrypoint,
            volumes=[x(v) for v in self.volumes], env={k: x(v) for k, v in self.env.items()})


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
    launch: LaunchSpec
    expect: dict[str, Any]
    declared: dict[str, Cell] = field(default_factory=dict)
    errata: tuple[dict, ...] = ()

    @property
    def launcher(self) -> str:
        return self.launch.launcher

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
