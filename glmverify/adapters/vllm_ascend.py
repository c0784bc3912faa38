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
    # seed 003 (the vllm-ascend GLM-5.2 guide) 'Single-node Deployment': `vllm serve ... --port 8077`,
    # the recipe every container row of this engine launches (the 2xA3 recipe uses it too; the A2
    # multi-node ones use 7000 and the PD scripts a script argument: attach rows, never launched)
    container = ContainerDefaults(kind="vllm-ascend", default_port=8077)
