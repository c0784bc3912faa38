"""A container launch as one value: ``ContainerSpec``, with no Docker in it.

``ContainerSpec.from_row(row)`` turns a matrix row into the launch: image (or its override
``GLMVERIFY_IMAGE_<ROW>``), command, environment, secrets by name, volumes, devices per vendor,
the published port and the run's labels. ``docker_run_argv()`` renders it as the ``docker run``
command line ``--plan`` prints; ``glmverify.containers.sdk_kwargs(spec)`` renders the same fields
as docker SDK arguments, so a plan cannot drift from a launch.

Placeholders (``{python}`` is the image's ``python3``, ``{host}`` every interface) are
``glmverify.launchers.placeholders("container", ...)``, expanded by ``LaunchSpec.expanded``, the
expander the process launcher uses too. Container defaults come from two places: the engine's
adapter (``adapters.*.container``: kind, port, health path, Hugging Face cache, /dev/shm) and the
accelerator vendor of the row's hardware:

* NVIDIA GPUs through a device request (``--gpus all``) and ``--ipc host``;
* ROCm GPUs through /dev/kfd and /dev/dri, the video group, SYS_PTRACE, seccomp unconfined and
  ``--ipc host`` (vLLM ROCm docker recipe, seed 002);
* Ascend NPUs through /dev/davinci* and the control devices, plus the driver mounts of the
  vllm-ascend guide (seed 003, "Installation").

The port is published on 127.0.0.1 only, on a port Docker chooses (``-p 127.0.0.1::8000``),
unless ``GLMVERIFY_PUBLISH_HOST`` says otherwise. Secret values (``secret_env``) never appear in a
rendering: ``-e NAME`` without a value; the launcher reads them from the host.
"""
from __future__ import annotations

import os
import re
import secrets
import shlex
from dataclasses import dataclass, field
from typing import Any

from . import hardware
from .adapters import adapter_for_row
from .launchers import placeholders
from .matrix import Row
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
    """Everything a container launch is made of; rendered as ``docker run`` or SDK kwargs.

    Built by ``from_row`` for a matrix row, or directly for a container outside the matrix (the
    Docker tests): the run labels and a per-launch id are filled in either way."""

    row_id: str
    image: str
    run_id: str
    kind: str = "generic"
    vendor: str = "cpu"
    launch_id: str = ""  # default: the row id plus a random suffix (one container name per launch)
    image_known: bool = True
    entrypoint: list[str] | None = None
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    secret_env: list[str] = field(default_factory=list)
    gpus: str | int | None = None
    devices: list[str] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    port: int = 8000
    publish_host: str = field(default_factory=lambda: os.environ.get(PUBLISH_HOST_ENV) or "127.0.0.1")
    host_port: int | None = None
    ipc: str | None = None
    shm_size: str | None = None
    network: str = "bridge"
    group_add: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # the run's labels first, then these
    build: str | None = None
    health_path: str = "/health"
    stop_timeout: int = 10

    def __post_init__(self) -> None:
        self.launch_id = self.launch_id or f"{_safe_name(self.row_id)}-{secrets.token_hex(4)}"
        # every container carries its run, row and launch: reap() and stop() find it by these
        self.labels = {RUN_LABEL: self.run_id, ROW_LABEL: self.row_id, LAUNCH_LABEL: self.launch_id, **self.labels}

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_row(cls, row: Row, run_id: str | None = None, *, standin_model: str | os.PathLike | None = None,
                 launch_id: str | None = None) -> "ContainerSpec":
        """The launch of a container row. ``standin_model`` is the built stand-in the launcher
        mounts (a plan names the default path). ``launch_id`` defaults to the row id plus a random
        suffix."""
        if row.launcher not in ("container", "attach"):
            raise ValueError(f"row {row.id}: launcher {row.launcher!r} is not a container launch")
        defaults = adapter_for_row(row).container
        port = int(row.launch.port or defaults.default_port)
        image = os.environ.get(image_override_var(row.id)) or row.image
        launch = row.launch.expanded(placeholders("container", row, port=port, standin_model=standin_model))
        spec = cls(row_id=row.id, image=image, run_id=run_id or current_run_id(), kind=defaults.kind,
                   vendor=_vendor(row.hardware), launch_id=launch_id or "", image_known=row.image_known, port=port,
                   health_path=defaults.health_path, build=launch.build)
        spec.entrypoint = list(launch.entrypoint) if launch.entrypoint else None
        spec.command = launch.command + launch.args
        spec.env = dict(launch.env)
        spec.secret_env = list(launch.secret_env)
        spec.ipc = launch.ipc
        spec.shm_size = launch.shm_size
        if launch.network and launch.network != "host":
            spec.network = launch.network  # host networking is a multi-node recipe detail: not launched here
        spec.volumes = [Volume.parse(v) for v in launch.volumes]
        if launch.devices.get("paths"):
            spec.devices = list(launch.devices["paths"])
        if launch.devices.get("gpus") is not None:
            spec.gpus = launch.devices["gpus"]
        _vendor_defaults(spec, row)
        if defaults.mount_hf_cache:
            _ensure_hf_cache(spec)
        spec.shm_size = spec.shm_size or defaults.shm_size
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
        """``docker run`` arguments equivalent to ``containers.sdk_kwargs(self)``; secrets appear by name only."""
        argv = ["docker", "run", "-d", "--name", self.name]
        for k, v in self.labels.items():
            argv += ["--label", f"{k}={v}"]
        if self.gpus is not None:
            argv += ["--gpus", gpus_cli(self.gpus)]
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

    def public(self) -> dict[str, Any]:
        """The spec for the evidence: no secret values."""
        return {
            "image": self.image, "kind": self.kind, "vendor": self.vendor, "name": self.name,
            "labels": dict(self.labels), "port": self.port, "publish": self.publish_cli(),
            "secret_env": list(self.secret_env), "docker_run": [REDACT(a) for a in self.docker_run_argv()],
        }


def _vendor_defaults(spec: ContainerSpec, row: Row) -> None:
    """Devices and host settings of the row's accelerator vendor, where the row sets none."""
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


def _ensure_hf_cache(spec: ContainerSpec) -> None:
    """Mount the Hugging Face cache unless a volume already covers /root/.cache."""
    if not any(v.container.rstrip("/") in ("/root/.cache", "/root/.cache/huggingface") for v in spec.volumes):
        spec.volumes.append(Volume.parse(HF_CACHE_MOUNT))


def uses_standin_model(row: Row) -> bool:
    """The row's launch names the stand-in model (``{standin_model}``): the launcher builds it."""
    return row.launch.mentions("standin_model")


def gpus_cli(gpus: str | int) -> str:
    """``--gpus`` as docker's CLI wants it: a count, ``all``, or quoted device ids."""
    if isinstance(gpus, int) or str(gpus).isdigit() or gpus == "all":
        return str(gpus)
    ids = str(gpus).removeprefix("device=")
    return f'"device={ids}"'


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
