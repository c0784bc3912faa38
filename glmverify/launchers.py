"""Launchers: one per kind of launch, and the placeholder values both kinds expand.

A row's ``launch.launcher`` names its launcher in ``LAUNCHERS``: ``process`` (defined here: the
reference engines run as local processes) and ``container`` (``glmverify.containers`` registers
it when imported). ``launcher_for(row).server(row, opts, ...)`` builds the row's unstarted
``EngineServer``; ``session.make_server`` calls nothing else, and an ``attach`` row is refused
with how to attach it.

Defaults live here and nowhere else:

* ``DEFAULTS``: per kind, the interpreter ``{python}`` names (this process's interpreter for a
  process, the image's ``python3`` for a container) and the address ``{host}`` the engine binds
  (loopback for a process; every interface inside a container, whose port Docker publishes);
* ``placeholders(kind, row, port=...)``: every value a launch expands, for a launch or a plan
  (``{standin_model}`` only when the row names it, ``{sglang_python}`` and other engine values
  from the adapter of a process row);
* ``startup_timeout(row, opts)``: ``--startup-timeout``, else the row's, else an hour.

The expansion itself is ``LaunchSpec.expanded`` (one expander for both kinds).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from .adapters import adapter_for_row
from .engines import EngineServer, HttpReadiness, ProcessEngine
from .matrix import Row
from .paths import REPO_ROOT
from .redact import REDACT
from .standin.build import ensure_built, model_dir_for
from .util import free_port

ProgressFn = Callable[[str], None]
DEFAULT_STARTUP_TIMEOUT = 3600.0  # a 743B checkpoint can take 20+ minutes to load


@dataclass(frozen=True)
class LaunchDefaults:
    python: str  # what {python} becomes
    host: str    # what {host} becomes: the address the engine binds


DEFAULTS: dict[str, LaunchDefaults] = {
    "process": LaunchDefaults(python=sys.executable, host="127.0.0.1"),
    "container": LaunchDefaults(python="python3", host="0.0.0.0"),  # noqa: S104 - inside the container
}


def placeholders(kind: str, row: Row, *, port: int, standin_model: str | os.PathLike | None = None) -> dict[str, str]:
    """Every placeholder value of a ``kind`` launch of ``row`` listening on ``port``.
    ``standin_model`` is the built stand-in (a plan names its default path without building)."""
    d = DEFAULTS[kind]
    values = {"python": d.python, "host": d.host, "port": str(port), "served_model": row.served_model,
              "model": row.model, "repo": str(REPO_ROOT), "shared": str(REPO_ROOT.parent / "shared")}
    if row.launch.mentions("standin_model"):
        values["standin_model"] = str(standin_model or model_dir_for(row.profile))
    if kind == "process":
        values.update(adapter_for_row(row).process_placeholders(row))
    return values


def startup_timeout(row: Row, opts: Any) -> float:
    return float(getattr(opts, "startup_timeout", None) or row.launch.startup_timeout or DEFAULT_STARTUP_TIMEOUT)


def standin_for(row: Row) -> Path | None:
    """The built stand-in model when the row's launch names it (built once, on first use)."""
    return ensure_built(row.profile) if row.launch.mentions("standin_model") else None


class Launcher(Protocol):
    kind: str

    def server(self, row: Row, opts: Any, *, log_dir: Path, readiness: HttpReadiness,
               progress: ProgressFn | None = None) -> EngineServer:
        """The row's engine, not started."""


LAUNCHERS: dict[str, Launcher] = {}


def register(launcher: Launcher) -> Launcher:
    LAUNCHERS[launcher.kind] = launcher
    return launcher


def launcher_for(row: Row) -> Launcher:
    kind = row.launcher
    if kind == "attach":
        raise LookupError(f"row {row.id} is attach-only: deploy it with the cluster's tooling and "
                          f"run with --endpoint URL --row {row.id}")
    if kind not in LAUNCHERS:
        raise ValueError(f"row {row.id}: unknown launcher {kind!r} (known: {', '.join(sorted(LAUNCHERS))})")
    return LAUNCHERS[kind]


class ProcessLauncher:
    """A row run as a local process group (``ProcessEngine``), on a free loopback port."""

    kind = "process"

    def server(self, row: Row, opts: Any, *, log_dir: Path, readiness: HttpReadiness,
               progress: ProgressFn | None = None) -> ProcessEngine:
        host = DEFAULTS[self.kind].host
        port = free_port(host)
        launch = row.launch.expanded(placeholders(self.kind, row, port=port, standin_model=standin_for(row)))
        env = dict(launch.env)
        # the stand-in's logits processor is imported by the engine from this repository
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        for name in launch.secret_env:
            if name in os.environ:
                env[name] = os.environ[name]
                REDACT.add(os.environ[name])
        log_dir.mkdir(parents=True, exist_ok=True)
        return ProcessEngine(row.id, launch.command + launch.args, env=env, port=port, host=host,
                             log_path=log_dir / f"{row.id}.log", readiness=readiness, progress=progress,
                             cwd=REPO_ROOT)


register(ProcessLauncher())
