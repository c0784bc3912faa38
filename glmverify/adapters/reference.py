"""The reference engine: the project's own vLLM or SGLang on CPU serving the stand-in model.

At the API it is the engine it runs (``reference_of(adapter)`` keeps every answer of that
adapter); it differs in its container (images/reference and images/sglang-reference: CPU only,
the stand-in mounted, no Hugging Face cache, a 2 GB /dev/shm for the CPU workers) and in that its
extra launch flags are the project's own (``flags.origins``).
"""
from __future__ import annotations

import copy

from .base import ContainerDefaults, EngineAdapter

REFERENCE_CONTAINER = ContainerDefaults(kind="reference", default_port=8000, shm_size="2g")


def reference_of(adapter: EngineAdapter) -> EngineAdapter:
    """``adapter`` as the project's reference engine (a copy: the registered adapter is unchanged)."""
    ref = copy.copy(adapter)
    ref.container = REFERENCE_CONTAINER  # an instance attribute shadows the class's
    ref.reference = True
    return ref
