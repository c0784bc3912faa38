"""Hardware guard: a row whose accelerators are absent is skipped with a reason, never half-launched."""
from __future__ import annotations

import glob
import shutil
import subprocess

NVIDIA = {"h200", "h20", "h100", "b200", "b300", "gb300"}
ROCM = {"mi300x", "mi355x"}
ASCEND = {"ascend_a2", "ascend_a3"}


def count_nvidia() -> int:
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
            return sum(1 for line in out.splitlines() if line.startswith("GPU "))
        except (OSError, subprocess.SubprocessError):
            return 0
    return len(glob.glob("/dev/nvidia[0-9]*"))


def count_rocm() -> int:
    if not glob.glob("/dev/kfd"):
        return 0
    return len(glob.glob("/dev/dri/renderD*"))


def count_ascend() -> int:
    return len(glob.glob("/dev/davinci[0-9]*"))


def accelerators() -> dict[str, int]:
    """What this host has, for the evidence."""
    return {"nvidia": count_nvidia(), "rocm": count_rocm(), "ascend": count_ascend()}


def missing(hardware: str, needed: int) -> str | None:
    """None when the host can run a row on ``hardware`` with ``needed`` accelerators, else why not."""
    if hardware == "cpu":
        return None
    kind, have = (("NVIDIA GPU", count_nvidia()) if hardware in NVIDIA else
                  ("ROCm GPU", count_rocm()) if hardware in ROCM else
                  ("Ascend NPU", count_ascend()) if hardware in ASCEND else ("accelerator", 0))
    needed = max(needed, 1)
    if have < needed:
        return f"needs {needed} {kind}(s) for {hardware}, this host has {have}"
    return None


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
