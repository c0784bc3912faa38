"""Which rows a run covers, which features a row is checked for, and whether a row may launch.

Plain functions over the matrix and the options (no pytest): the plugin turns their answers into
parametrization, skips and failures.

* ``run_rows``: every matrix row, or with ``--endpoint`` the one row the endpoint stands for
  (``--row``, else the row serving the endpoint's model);
* ``feature_skip``: why a row is not checked for a feature (it declares it unsupported);
* ``launch_gate``: before a launch, whether the row can run here: an attach-only row needs
  ``--endpoint``; the host's accelerators must be the row's (``hardware.identify``: model,
  memory and count); a flag the row's engine version refuses fails the row; a container row
  needs Docker. An attached endpoint's hardware is declared-only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from . import hardware
from .flags import refused
from .matrix import Matrix, Row
from .options import Options

ATTACHED_HARDWARE = {"declared_only": True, "why": "attached: the endpoint's hardware is not observable from here"}


class EligibilityError(ValueError):
    """The run's rows cannot be determined (an endpoint matching no row, an unreachable endpoint)."""


def run_rows(matrix: Matrix, opts: Options, client_factory: Callable[[], Any] | None = None) -> list[Row]:
    """The rows this run covers. ``client_factory`` makes the client that probes ``--endpoint``
    for its model when ``--row`` is not given (default: an ``EngineClient``)."""
    if not opts.endpoint:
        return list(matrix.rows)
    from .session import row_for_endpoint

    try:
        client = None
        if not opts.row:
            if client_factory is None:
                from .client import EngineClient

                client = EngineClient(opts.endpoint, engine=opts.engine)
            else:
                client = client_factory()
        return [row_for_endpoint(matrix, opts, client)]
    except (ValueError, KeyError) as exc:
        raise EligibilityError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - an unreachable endpoint is a usage error, not a crash
        raise EligibilityError(f"--endpoint {opts.endpoint}: cannot probe ({exc}); pass --row ID") from None


def feature_skip(row: Row, feature: str | None) -> str | None:
    """Why ``row`` is not checked for ``feature`` (None: it is)."""
    if feature and not row.serves(feature):
        return f"{row.id}: {feature} unsupported: {row.declared_cell(feature).basis}"
    return None


@dataclass
class Gate:
    """The answer before a launch: ``skip`` or ``fail`` with the reason, else launch; ``hardware``
    is what the host's vendor tool reported (the evidence of the launch)."""
    skip: str | None = None
    fail: str | None = None
    hardware: dict[str, Any] = field(default_factory=lambda: dict(ATTACHED_HARDWARE))


def launch_gate(row: Row, opts: Options) -> Gate:
    if opts.endpoint:
        return Gate()
    if row.attached:
        return Gate(skip=f"{row.id} is attach-only: run it with --endpoint URL --row {row.id}")
    # identity (model, memory, count), not a device count: an H20 host must not verify an H200 row
    why, seen = (None, dict(hardware.CPU_HOST)) if row.is_reference else \
        hardware.identify(row.hardware, row.accelerators, row.image if row.in_container else None)
    if why:
        return Gate(skip=f"{row.id}: {why}; cells keep their declared status", hardware=seen)
    why = refused(row)
    if why:
        return Gate(fail=f"{row.id}: not launched: {why}", hardware=seen)
    if row.in_container:
        from .containers import docker_unavailable

        why = docker_unavailable()
        if why:
            return Gate(skip=f"{row.id}: {why}", hardware=seen)
    return Gate(hardware=seen)
