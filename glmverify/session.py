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
from .adapters import EngineAdapter, adapter_for, adapter_for_row, probe
from .client import EngineClient
from .containers import container_for_row
from .engines import AttachedEngine, EngineServer, HttpReadiness, ProcessEngine
from .matrix import Matrix, Row
from .observed import ObservedMismatch, compare, mismatch_message, observe
from .options import Options
from .paths import REPO_ROOT
from .redact import REDACT
from .standin.build import ensure_built
from .util import utcnow

DEFAULT_STARTUP_TIMEOUT = 3600.0  # a 743B checkpoint can take 20+ minutes to load


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
    served = opts.served_model
    if served is None and client is not None:
        served = probe(client).model
    matches = [r for r in matrix.rows if r.served_model == served]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(
        f"--endpoint serves model {served!r}, which matches {len(matches)} matrix rows; "
        f"pass --row ID (one of: {', '.join(r.id for r in matrix.rows)})"
    )


# ---- placeholders in matrix.yaml launch specs ------------------------------------------------------
def expand(value: str, row: Row, extra: dict[str, str]) -> str:
    subs = {"python": sys.executable, "served_model": row.served_model, "model": row.model,
            "repo": str(REPO_ROOT), **extra}
    out = value
    for k, v in subs.items():
        out = out.replace("{" + k + "}", v)
    return out


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
    timeout = opts.startup_timeout or row.launch.get("startup_timeout") or DEFAULT_STARTUP_TIMEOUT
    # loading progress every 15 s on a terminal, every minute in CI logs
    readiness = HttpReadiness(timeout=float(timeout), progress_every=15.0 if sys.stderr.isatty() else 60.0)
    if opts.endpoint:
        return AttachedEngine(row.id, opts.endpoint, progress=progress)
    launcher = row.launcher
    if launcher == "attach":
        raise LookupError(f"row {row.id} is attach-only: deploy it with the cluster's tooling and "
                          f"run with --endpoint URL --row {row.id}")
    if launcher == "process":
        extra = {}
        if any("{standin_model}" in a for a in row.launch.get("args", [])):
            extra["standin_model"] = str(ensure_built(row.profile))
        extra.update(adapter_for_row(row).process_placeholders(row))
        command = [expand(c, row, extra) for c in row.launch.get("command", [])]
        args = [expand(a, row, extra) for a in row.launch.get("args", [])]
        env = {k: expand(v, row, extra) for k, v in row.launch.get("env", {}).items()}
        # the stand-in's logits processor is imported by the engine from this repository
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        for name in row.launch.get("secret_env", []):
            if name in os.environ:
                env[name] = os.environ[name]
                REDACT.add(os.environ[name])
        log_dir.mkdir(parents=True, exist_ok=True)
        return ProcessEngine(row.id, command + args, env=env, log_path=log_dir / f"{row.id}.log",
                             readiness=readiness, progress=progress, cwd=REPO_ROOT)
    if launcher == "container":
        return container_for_row(row, opts, log_dir=log_dir, readiness=readiness, progress=progress)
    raise ValueError(f"row {row.id}: unknown launcher {launcher!r}")


def engine_evidence(row: Row, server: EngineServer, client: EngineClient) -> dict[str, Any]:
    facts = client.facts
    args = [REDACT(a) for a in getattr(server, "public_args", lambda: row.launch.get("args", []))()]
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
        k: cmp[k] for k in ("differences", "confirmed", "declared_only")}}
    if attached and cmp["differences"]:
        raise ObservedMismatch(mismatch_message(row, cmp))
    return ev


def start_engine(row: Row, opts: Options, log_dir: Path,
                 progress: Callable[[str], None] | None = None) -> LiveEngine:
    server = make_server(row, opts, log_dir, progress)
    server.__enter__()  # stops again if start() fails
    try:
        client = EngineClient(server.base_url, model=opts.served_model or (None if opts.endpoint else row.served_model),
                              engine=opts.engine if opts.endpoint else adapter_for(row.engine).api,
                              timeout=opts.request_timeout)
        probe(client)
        live = LiveEngine(row=row, server=server, client=client, launch_id=uuid.uuid4().hex[:12], options=opts)
        live.evidence = {**engine_evidence(row, server, client), "launch_id": live.launch_id,
                         "harness_pid": os.getpid(),
                         **observed_evidence(row, client, attached=server.launcher == "attach")}
        return live
    except BaseException:
        server.stop()
        raise
