"""Run-level logic behind the pytest plugin: options → rows → live engines → check records.

``plugin.py`` only registers options, fixtures and hooks; everything they do is here, so it can
be tested and reused by the command line without pytest internals.
"""
from __future__ import annotations

import hashlib
import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import __version__
from . import containers  # noqa: F401 - registers the container launcher
from .adapters import EngineAdapter, adapter_for, probe
from .client import EngineClient
from .engines import AttachedEngine, EngineServer, HttpReadiness
from .launchers import launcher_for, startup_timeout
from .matrix import Matrix, Row
from .observed import ObservedMismatch, compare, mismatch_message, observe
from .options import Options
from .redact import REDACT
from .util import utcnow


def default_results_dir(root: Path, run_id: str) -> Path:
    return root / "results" / run_id.split("-")[0]


def point_latest(results_dir: Path) -> None:
    """results/latest → this run (only when the run lives under a results/ folder)."""
    parent = results_dir.parent
    if parent.name != "results":
        return
    link = parent / "latest"
    tmp = parent / f".latest-{uuid.uuid4().hex[:6]}"
    try:
        tmp.symlink_to(results_dir.name)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)


def matrix_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_info(opts: Options, run_id: str, argv: list[str]) -> dict[str, Any]:
    return {
        "id": run_id,
        "started": utcnow(),
        "harness": f"glmverify {__version__}",
        "python": sys.version.split()[0],
        "argv": [REDACT(a) for a in argv],
        "matrix": {"path": str(opts.matrix_path.name), "sha256": matrix_digest(opts.matrix_path)},
        "endpoint": opts.endpoint,
        "launches": {},
    }


# ---- rows for an attached endpoint ----------------------------------------------------------------
def row_for_endpoint(matrix: Matrix, opts: Options, client: EngineClient | None = None) -> Row:
    """The matrix row an attached endpoint stands for: ``--row``, else the row serving its model."""
    if opts.row:
        return matrix.row(opts.row)
    served = [opts.served_model] if opts.served_model else None
    if served is None and client is not None:
        served = [str(m.get("id")) for m in client.models()]  # every model it serves, not the first
    matches = [r for r in matrix.rows if r.served_model in (served or [])]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(
        f"--endpoint serves {', '.join(map(repr, served or [])) or 'no model'}, which match {len(matches)} matrix "
        f"rows; pass --row ID (one of: {', '.join(r.id for r in matrix.rows)})"
    )


# ---- launching -----------------------------------------------------------------------------------
@dataclass
class LiveEngine:
    """What a suite gets: the row, a started (or attached) server, a client, launch evidence."""

    row: Row
    server: EngineServer
    client: EngineClient
    launch_id: str
    evidence: dict[str, Any] = field(default_factory=dict)
    options: Options | None = None

    @property
    def profile(self):
        return self.row.profile

    @property
    def model(self) -> str:
        return self.client.model or self.row.served_model

    @property
    def adapter(self) -> EngineAdapter:
        """The adapter of the engine the client speaks to (probed at an ``--endpoint``)."""
        return adapter_for(self.client.engine)


def make_server(row: Row, opts: Options, log_dir: Path,
                progress: Callable[[str], None] | None = None) -> EngineServer:
    """The row's engine, unstarted: the attached ``--endpoint``, else its launcher's
    (``glmverify.launchers``: process or container, one registry for both)."""
    if opts.endpoint:
        return AttachedEngine(row.id, opts.endpoint, progress=progress)
    # loading progress every 15 s on a terminal, every minute in CI logs
    readiness = HttpReadiness(timeout=startup_timeout(row, opts), progress_every=15.0 if sys.stderr.isatty() else 60.0)
    return launcher_for(row).server(row, opts, log_dir=Path(log_dir), readiness=readiness, progress=progress)


def engine_evidence(row: Row, server: EngineServer, client: EngineClient) -> dict[str, Any]:
    facts = client.facts
    args = [REDACT(a) for a in getattr(server, "public_args", lambda: row.launch.args)()]
    # an attached server's args are the row's claim, not what it runs: never recorded as server_args
    attached = server.launcher == "attach"
    return {
        "row": row.id,
        "engine": facts.get("engine") or row.engine,
        "engine_version": facts.get("version"),
        "image": row.image,
        "launcher": server.launcher,
        **({"declared_args": args} if attached else {"server_args": args}),
        "max_model_len": facts.get("max_model_len"),
        "served_model": facts.get("served_model"),
        **{k: v for k, v in server.info().items() if k != "base_url"},
    }


def observed_evidence(row: Row, client: EngineClient, attached: bool) -> dict[str, Any]:
    """The server's own report of its configuration against the row's; raises for an attached row
    that contradicts its recipe (a launched one records the difference). The observation is the
    client's engine adapter's; the comparison the row's."""
    obs = observe(client)
    cmp = compare(row, obs)
    ev = {"observed": obs, "declared": cmp["declared"], "observed_vs_declared": {
        k: cmp[k] for k in ("differences", "confirmed", "declared_only", "unobserved")}}
    if attached and cmp["differences"]:
        raise ObservedMismatch(mismatch_message(row, cmp))
    return ev


def start_engine(row: Row, opts: Options, log_dir: Path,
                 progress: Callable[[str], None] | None = None) -> LiveEngine:
    server = make_server(row, opts, log_dir, progress)
    server.__enter__()  # stops again if start() fails
    try:
        # every request names the row's served model (or the one --served-model names), attached or not
        client = EngineClient(server.base_url, model=opts.served_model or row.served_model,
                              engine=opts.engine if opts.endpoint else adapter_for(row.engine).api,
                              timeout=opts.request_timeout, metrics_url=opts.metrics_url)
        probe(client)
        live = LiveEngine(row=row, server=server, client=client, launch_id=uuid.uuid4().hex[:12], options=opts)
        live.evidence = {**engine_evidence(row, server, client), "launch_id": live.launch_id,
                         "harness_pid": os.getpid(),
                         **observed_evidence(row, client, attached=server.launcher == "attach")}
        return live
    except BaseException:
        server.stop()
        raise
