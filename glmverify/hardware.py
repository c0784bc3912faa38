"""Hardware identity: a row runs only on the accelerator model, memory and count its recipe names.

Counting devices is not enough: any 8-GPU NVIDIA host would otherwise verify an H200, H20, B200,
B300 or GB300 cell (the h200 and h20 rows differ only in that field). So a row's hardware is
checked by *identity*:

* the vendor tool reports the devices: ``nvidia-smi --query-gpu=name,memory.total,count
  --format=csv,noheader``, ``amd-smi static --asic --vram --json`` (``rocm-smi --showproductname
  --showmeminfo vram --json`` when amd-smi is absent), ``npu-smi info``; on the host, or, where
  the host lacks the tool, inside the row's image (``probe_in_container``);
* each output is parsed into ``Device(name, memory_mib)`` records (``parse_*``, pure functions,
  tested on recorded outputs in ``fixtures/hardware/``);
* ``check(hardware, needed, inventory)`` compares them with ``SPECS``: every device's name must
  match the model's pattern and its memory the model's range, and there must be at least
  ``needed`` of them. The reason names what was seen, and the inventory goes into the evidence.

A host without the tool anywhere is a skip with that reason: identity unknown is never a pass.

``SPECS`` is also the one hardware -> vendor mapping (``vendor_of``, ``vendors``; matrix.yaml's
per-vendor container defaults are keyed by its names: ``nvidia``, ``rocm``, ``ascend``) and says
how many accelerators one node has (``devices_per_node``: 16 dies on an Atlas 800 A3).
"""
from __future__ import annotations

import glob
import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Callable

GIB = 1024  # MiB per GiB


@dataclass(frozen=True)
class Spec:
    vendor: str
    label: str
    name: str  # regex on the tool's device name
    memory_gib: tuple[float, float]  # inclusive range of one device's memory as the tool reports it
    devices_per_node: int = 8  # accelerators one node of it has (a container row's default count)


#: What each hardware marker means. Memory ranges allow for what the tools report (usable HBM,
#: MiB vs MB) around the datasheet figure; the names are the tools' product strings.
SPECS: dict[str, Spec] = {
    "h200": Spec("nvidia", "NVIDIA H200 (141 GB)", r"^NVIDIA H200\b", (135, 145)),
    # the seed sizes H20 nodes at 141 GB per GPU; the 96 GB H20 is a different fit, also an H20
    "h20": Spec("nvidia", "NVIDIA H20 (96/141 GB)", r"^NVIDIA H20\b", (90, 145)),
    "h100": Spec("nvidia", "NVIDIA H100 (80/94 GB)", r"^NVIDIA H100\b", (76, 96)),
    "b200": Spec("nvidia", "NVIDIA B200 (180 GB)", r"^NVIDIA B200\b", (170, 195)),
    "b300": Spec("nvidia", "NVIDIA B300 (288 GB)", r"^NVIDIA B300\b", (260, 300)),
    "gb300": Spec("nvidia", "NVIDIA GB300 (288 GB)", r"^NVIDIA GB300\b", (260, 300)),
    # vendor "rocm" (not "amd"): the name the probe (TOOLS: amd-smi, then rocm-smi), the container
    # defaults and the evidence use; matrix.yaml's per-vendor defaults are keyed by these names
    "mi300x": Spec("rocm", "AMD Instinct MI300X (192 GB)", r"\bMI300X\b", (180, 200)),
    "mi325x": Spec("rocm", "AMD Instinct MI325X (256 GB)", r"\bMI325X\b", (240, 262)),
    "mi355x": Spec("rocm", "AMD Instinct MI355X (288 GB)", r"\bMI355X\b", (270, 300)),
    # Atlas 800 A2: Ascend 910B chips, 64 GB HBM each (seed 003: "64G x 8")
    "ascend_a2": Spec("ascend", "Atlas 800 A2 (Ascend 910B, 64 GB)", r"^910B\d?$", (60, 66)),
    # Atlas 800 A3: Ascend 910C modules, two 64 GB dies each, listed by npu-smi as Ascend910 chips
    # (seed 003: "128G x 8" = "64G x 16")
    # devices_per_node: npu-smi shows each die as a device, so one A3 node is 16 /dev/davinci*
    "ascend_a3": Spec("ascend", "Atlas 800 A3 (Ascend 910C, 2x64 GB dies)", r"^(Ascend910|910C)\b", (60, 66),
                      devices_per_node=16),
}
#: the markers of each vendor, read from SPECS (the container launcher picks devices by them)
NVIDIA, ROCM, ASCEND = ({h for h, spec in SPECS.items() if spec.vendor == v} for v in ("nvidia", "rocm", "ascend"))


@dataclass(frozen=True)
class Device:
    name: str
    memory_mib: float | None


@dataclass
class Inventory:
    """What a vendor tool said: devices, which tool, where it ran, its raw output (for evidence)."""

    vendor: str
    tool: str | None
    where: str  # host | container:<image> | none
    devices: list[Device] = field(default_factory=list)
    raw: str = ""
    error: str | None = None

    def summary(self) -> str:
        if not self.devices:
            return f"no {self.vendor} devices reported" + (f" ({self.error})" if self.error else "")
        groups: dict[tuple[str, float | None], int] = {}
        for d in self.devices:
            key = (d.name, round(d.memory_mib / GIB) if d.memory_mib else None)
            groups[key] = groups.get(key, 0) + 1
        return ", ".join(f"{n}x {name}" + (f" ({gib} GiB)" if gib else "") for (name, gib), n in groups.items())

    def evidence(self) -> dict:
        return {"vendor": self.vendor, "tool": self.tool, "where": self.where, "seen": self.summary(),
                "devices": [asdict(d) for d in self.devices], "error": self.error, "raw": self.raw[:4000]}


# ---- parsers (pure; tested on recorded outputs) -----------------------------------------------------
_MEM = re.compile(r"([\d.]+)\s*(MiB|MB|GiB|GB|B)?", re.I)


def _mib(value: str | float | int | None, unit: str | None = None) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        n, u = float(value), (unit or "MiB")
    else:
        m = _MEM.search(str(value))
        if not m:
            return None
        n, u = float(m.group(1)), (m.group(2) or unit or "MiB")
    u = u.lower()
    return {"mib": n, "mb": n * 1e6 / 2**20, "gib": n * GIB, "gb": n * 1e9 / 2**20, "b": n / 2**20}[u]


def parse_nvidia_smi(text: str) -> list[Device]:
    """``nvidia-smi --query-gpu=name,memory.total,count --format=csv,noheader``: one line per GPU."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0] or parts[0].lower() == "name":
            continue
        out.append(Device(parts[0], _mib(parts[1])))
    return out


def parse_amd_smi(text: str) -> list[Device]:
    """``amd-smi static --asic --vram --json``: a list (or {"gpu_data": [...]}) of per-GPU records."""
    data = json.loads(text)
    if isinstance(data, dict):
        data = data.get("gpu_data") or list(data.values())
    out = []
    for g in data:
        asic, vram = g.get("asic") or {}, g.get("vram") or {}
        size = vram.get("size")
        mem = _mib(size.get("value"), size.get("unit")) if isinstance(size, dict) else _mib(size, "MB")
        out.append(Device(str(asic.get("market_name") or asic.get("device_name") or "?"), mem))
    return out


def parse_rocm_smi(text: str) -> list[Device]:
    """``rocm-smi --showproductname --showmeminfo vram --json``: {"card0": {...}, ...}."""
    data = json.loads(text)
    out = []
    for key, card in sorted(data.items()):
        if not key.startswith("card"):
            continue
        total = card.get("VRAM Total Memory (B)")
        out.append(Device(str(card.get("Card Series") or card.get("Card SKU") or "?"),
                          _mib(total, "B") if total is not None else None))
    return out


def parse_npu_smi(text: str) -> list[Device]:
    """``npu-smi info``: per NPU a name row, then one row per chip with ``HBM-Usage(MB)`` used / total.

    A chip is a device (what vLLM's --tensor-parallel-size counts): 910B cards have one, A3's
    910C modules two.
    """
    out, name = [], None
    for line in text.splitlines():
        if not line.startswith("|") or "====" in line:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3:
            continue
        if re.match(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:", cells[1]):  # chip row: bus id, then HBM used / total
            hbm = re.findall(r"(\d+)\s*/\s*(\d+)", cells[2])
            if name:
                out.append(Device(name, float(hbm[-1][1]) if hbm else None))  # npu-smi's MB are MiB
            continue
        m = re.match(r"^\d+\s+(\S+)$", cells[0])
        if m and cells[1] in ("OK", "Warning", "Alarm", "Critical", "UNKNOWN"):  # NPU row: id, name | health
            name = m.group(1)
    return out


PARSERS = {"nvidia-smi": parse_nvidia_smi, "amd-smi": parse_amd_smi, "rocm-smi": parse_rocm_smi,
           "npu-smi": parse_npu_smi}
COMMANDS = {
    "nvidia-smi": ["nvidia-smi", "--query-gpu=name,memory.total,count", "--format=csv,noheader"],
    "amd-smi": ["amd-smi", "static", "--asic", "--vram", "--json"],
    "rocm-smi": ["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json"],
    "npu-smi": ["npu-smi", "info"],
}
#: the evidence of a reference row's launch: the CPU host, no vendor tool asked
CPU_HOST = {"vendor": "cpu", "seen": "CPU host (reference rows need no accelerator)"}
TOOLS = {"nvidia": ("nvidia-smi",), "rocm": ("amd-smi", "rocm-smi"), "ascend": ("npu-smi",)}


def vendor_of(hardware: str | None) -> str | None:
    """The vendor of a hardware marker (None for the CPU reference and unknown markers): the one
    hardware -> vendor mapping (matrix.yaml's container defaults per vendor are keyed by it)."""
    spec = SPECS.get(hardware) if hardware else None
    return spec.vendor if spec else None


def vendors() -> dict[str, list[str]]:
    """vendor -> its hardware markers, in ``SPECS`` order."""
    out: dict[str, list[str]] = {}
    for name, spec in SPECS.items():
        out.setdefault(spec.vendor, []).append(name)
    return out


def devices_per_node(hardware: str) -> int | None:
    """Accelerators one node of ``hardware`` has (what a container row without ``accelerators``
    gets); None for markers without a spec (the CPU reference)."""
    spec = SPECS.get(hardware)
    return spec.devices_per_node if spec else None


def check(hardware: str, needed: int, inv: Inventory) -> str | None:
    """None when ``inv`` is ``needed`` devices of ``hardware``'s model and memory, else why not."""
    spec = SPECS.get(hardware)
    if spec is None:
        return f"no hardware identity known for {hardware!r}"
    needed = max(needed, 1)
    if inv.tool is None:
        return f"cannot identify {spec.label}: no {'/'.join(TOOLS[spec.vendor])} on the host or in the image" + \
            (f" ({inv.error})" if inv.error else "")
    if not inv.devices:
        return f"{inv.tool} ({inv.where}) reports no devices; the row needs {needed}x {spec.label}"
    wrong = [d for d in inv.devices if not re.search(spec.name, d.name)]
    if wrong:
        return f"the row needs {spec.label}; {inv.tool} ({inv.where}) sees {inv.summary()}"
    lo, hi = spec.memory_gib
    bad_mem = [d for d in inv.devices if d.memory_mib is None or not lo * GIB <= d.memory_mib <= hi * GIB]
    if bad_mem:
        return (f"the row needs {spec.label} ({lo:g}-{hi:g} GiB each); {inv.tool} ({inv.where}) sees "
                f"{inv.summary()}")
    if len(inv.devices) < needed:
        return f"the row needs {needed}x {spec.label}; {inv.tool} ({inv.where}) sees {inv.summary()}"
    return None


# ---- probing -------------------------------------------------------------------------------------
Runner = Callable[[list[str]], str]


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout


def probe_host(vendor: str, runner: Runner = _run, which: Callable[[str], str | None] = shutil.which) -> Inventory:
    """Ask the first vendor tool the host has; ``tool`` is None when it has none."""
    for tool in TOOLS[vendor]:
        if not which(tool):
            continue
        try:
            raw = runner(COMMANDS[tool])
            return Inventory(vendor, tool, "host", PARSERS[tool](raw), raw)
        except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
            return Inventory(vendor, tool, "host", [], "", error=f"{tool} failed: {exc}")
    return Inventory(vendor, None, "none", error=f"no {'/'.join(TOOLS[vendor])} on the host")


def probe_in_container(vendor: str, image: str, client=None) -> Inventory:
    """Run the vendor tool inside the row's image with its devices (the NVIDIA container toolkit
    injects nvidia-smi; ROCm images ship amd-smi/rocm-smi), for hosts that lack the tool."""
    try:
        import docker
        from docker.types import DeviceRequest

        client = client or docker.from_env(timeout=120)
    except Exception as exc:  # noqa: BLE001 - no Docker: identity stays unknown
        return Inventory(vendor, None, "none", error=f"Docker unavailable: {exc}")
    kw: dict = {"remove": True, "entrypoint": []}
    if vendor == "nvidia":
        kw["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    elif vendor == "rocm":
        kw["devices"] = ["/dev/kfd:/dev/kfd:rwm", "/dev/dri:/dev/dri:rwm"]
    else:
        kw["devices"] = [f"{p}:{p}:rwm" for p in sorted(glob.glob("/dev/davinci*"))]
    last_error = None
    for tool in TOOLS[vendor]:
        try:
            raw = client.containers.run(image, COMMANDS[tool], **kw).decode()
            return Inventory(vendor, tool, f"container:{image}", PARSERS[tool](raw), raw)
        except Exception as exc:  # noqa: BLE001 - tool missing in the image: try the next one
            last_error = f"{tool} in {image}: {str(exc)[:200]}"
    return Inventory(vendor, None, "none", error=last_error)


def identify(hardware: str, needed: int, image: str | None = None, *, host: Callable[[str], Inventory] = probe_host,
             container: Callable[[str, str], Inventory] = probe_in_container) -> tuple[str | None, dict]:
    """(reason the host cannot run the row or None, evidence of what was seen). Reference rows
    (``Row.is_reference``) need no accelerator: the caller does not ask (``CPU_HOST``)."""
    vendor = vendor_of(hardware)
    if vendor is None:
        return f"no hardware identity known for {hardware!r}", {}
    inv = host(vendor)
    if inv.tool is None and image and _device_nodes(vendor):
        inv = container(vendor, image)
    return check(hardware, needed, inv), inv.evidence()


def _device_nodes(vendor: str) -> bool:
    """Device nodes present (worth starting a container to ask the tool there)."""
    pattern = {"nvidia": "/dev/nvidia[0-9]*", "rocm": "/dev/kfd", "ascend": "/dev/davinci[0-9]*"}[vendor]
    return bool(glob.glob(pattern))


def missing(hardware: str, needed: int, image: str | None = None) -> str | None:
    """None when the host can run a row on ``hardware`` with ``needed`` accelerators, else why not."""
    return identify(hardware, needed, image)[0]


def count_nvidia() -> int:
    inv = probe_host("nvidia")
    return len(inv.devices) if inv.tool else len(glob.glob("/dev/nvidia[0-9]*"))


def count_rocm() -> int:
    if not glob.glob("/dev/kfd"):
        return 0
    return len(glob.glob("/dev/dri/renderD*"))


def count_ascend() -> int:
    return len(glob.glob("/dev/davinci[0-9]*"))


def accelerators() -> dict[str, int]:
    """What this host has, for the evidence."""
    return {"nvidia": count_nvidia(), "rocm": count_rocm(), "ascend": count_ascend()}


def nvidia_details() -> dict:
    """Driver version, CUDA version and GPU names from nvidia-smi, for the evidence (empty without it).

    The CUDA version matters for the image choice: the seed's ``vllm/vllm-openai:glm52`` targets
    current drivers, ``:glm52-cu129`` hosts on CUDA 12.x.
    """
    if not shutil.which("nvidia-smi"):
        return {}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout
        head = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    gpus = [dict(zip(("name", "driver", "memory"), (p.strip() for p in line.split(","))))
            for line in out.splitlines() if line.strip()]
    cuda = None
    for token in head.split("CUDA Version:")[1:2]:
        cuda = token.split()[0] if token.split() else None
    return {"gpus": [g.get("name") for g in gpus], "driver": gpus[0].get("driver") if gpus else None,
            "cuda": cuda, "memory": gpus[0].get("memory") if gpus else None}
