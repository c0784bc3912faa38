"""vllm-ascend: vLLM at the API (same endpoints, counters and flags), its own images.

Its containers get the Ascend devices and driver mounts by vendor (``container_spec``), and the
guide's images carry the weights' path themselves: no Hugging Face cache mount.
"""
from __future__ import annotations

from .base import ContainerDefaults
from .vllm import VllmAdapter


class VllmAscendAdapter(VllmAdapter):
    """vllm-ascend images (``quay.io/ascend/vllm-ascend``): vLLM on /dev/davinci* NPUs."""

    name = "vllm-ascend"
    api = "vllm"
    container = ContainerDefaults(kind="vllm-ascend", default_port=8000)
