"""A pure-torch ``sgl_kernel`` for running the SGLang server on a CPU without AVX-512/AMX.

The package index has no CPU build of ``sgl_kernel`` (``sglang-kernel`` is a CUDA-only wheel
pinning another torch), yet with ``SGLANG_USE_CPU_ENGINE=1`` SGLang imports CPU kernels from it at
module level. On the path the reference engine takes (torch-native attention, pytorch sampling),
the one kernel actually called is ``assign_req_to_token_pool_cpu``; it is written here in torch.
Every other top-level name resolves to a stub that raises ``NotImplementedError`` naming itself
when called, so a new code path fails loudly instead of computing garbage; submodules
(``sgl_kernel.scalar_type``, ...) do not exist, so SGLang's ``ImportError`` fallbacks apply. Installed into the SGLang venv's site-packages by
images/sglang-reference/install.sh; not part of the glmverify package.
"""
from __future__ import annotations

import torch

__version__ = "0.0.0+glmverify-cpu-shim"


def assign_req_to_token_pool_cpu(req_pool_indices: torch.Tensor, req_to_token: torch.Tensor,
                                 start_offset: torch.Tensor, end_offset: torch.Tensor,
                                 out_cache_loc: torch.Tensor, pool_len: int) -> None:
    """Write each request's new KV slots (``out_cache_loc``, concatenated in request order) into
    its row of ``req_to_token`` at ``[start_offset, end_offset)``."""
    at = 0
    for row, start, end in zip(req_pool_indices.tolist(), start_offset.tolist(), end_offset.tolist()):
        n = end - start
        req_to_token[row, start:end] = out_cache_loc[at:at + n].to(req_to_token.dtype)
        at += n


def _stub(qualname: str):
    def missing(*args, **kwargs):
        raise NotImplementedError(f"{qualname} is not available in the CPU sgl_kernel shim")
    missing.__name__ = qualname.rsplit(".", 1)[-1]
    missing.__qualname__ = qualname
    return missing


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    return _stub(f"sgl_kernel.{name}")
