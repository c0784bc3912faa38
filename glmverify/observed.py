"""Observed configuration: what the server says it runs, next to what its row declares.

A row's recipe args are *declared*; with ``--endpoint`` nobody here launched them, so recording
them as the server's args would be a claim, not evidence. This module asks the server:

* ``GET /v1/models``: the served model names and ``max_model_len``;
* ``GET /version`` (vLLM) or ``/server_info`` (SGLang, older ``/get_server_info``): the version;
  SGLang's ``/server_info`` also carries every server argument (``tp_size``, ``context_length``,
  ``speculative_algorithm``, ``reasoning_parser``, ...);
* vLLM ``GET /metrics``: the ``vllm:cache_config_info`` labels (KV-cache dtype, block size, memory
  fraction, prefix caching) and whether ``vllm:spec_decode_*`` counters exist at all (vLLM
  registers them only with a speculative config), with one ``position`` label per draft token.

What is engine-specific (which endpoint reports what, how a recipe declares speculation, which
flags are compared one by one) is the engine's adapter (``observe_config``, ``compare_config``,
``declared_speculation`` in ``glmverify.adapters``); this module is the common frame.

``compare(row, observed)`` returns the differences (declared X, observed Y), what was confirmed,
what stays *declared-only* (no endpoint of this engine reports it: e.g. vLLM's tensor parallel
size or parser names, which the suites check by behaviour instead) and what is *unobserved* on
this endpoint although the engine can report it (``/metrics`` behind a gateway: speculative
decoding is then neither confirmed nor assumed, and the checks that need it stay undecided). An
attached row with a difference is failed with it (``ObservedMismatch``); a launched row records it.

The checkpoint is compared by its traits, read from names (``checkpoint_traits``): the model
family (``GLM-5.2``) and the quantization tag of the published checkpoints (``FP8``, ``NVFP4``,
``w8a8``, ...; a GLM name without one is the unquantized BF16 release). The server's model root
(``/v1/models`` ``root``, SGLang's ``model_path``) is held to the row's ``model``; a root that
names no GLM family (a local path such as ``/models/main``) reveals nothing, and the checkpoint
stays declared-only.
"""
from __future__ import annotations

import re
from typing import Any

from .adapters import adapter_for
from .adapters.base import WINDOW_FLAGS, argmap
from .client import EngineClient

__all__ = ["ObservedMismatch", "argmap", "declared", "observe", "compare", "mismatch_message"]


class ObservedMismatch(AssertionError):
    """The server's reported configuration contradicts its row's recipe."""


def declared(row) -> dict[str, Any]:
    """What the row's recipe says the server is, in the terms the server can report."""
    adapter = adapter_for(row.engine)
    a = argmap(list(row.launch.args))
    window = next((a[f] for f in WINDOW_FLAGS if f in a), None)
    spec, drafts = adapter.declared_speculation(a)
    return {
        "engine": adapter.api,
        "engine_version": row.engine_version,
        "served_model": row.served_model,
        "max_model_len": int(window) if isinstance(window, str) and window.isdigit() else None,
        "speculative": spec,
        "draft_tokens": drafts,
        "args": a,
    }


#: quantization tags of GLM checkpoint names (longest first: "nvfp4" before "fp4"), lower case
QUANT_TAGS = ("nvfp4", "mxfp4", "w8a8", "w4a8", "w4a16", "fp8", "int8", "int4", "awq", "gptq", "fp4", "bf16")
_FAMILY = re.compile(r"glm[-_ ]?(\d+(?:\.\d+)?)", re.I)


def checkpoint_traits(name: Any) -> dict[str, str] | None:
    """``{"family", "quantization"}`` read from a checkpoint name or path; None when the name
    names no GLM family (nothing can be read from it). No tag is the BF16 release."""
    if "<" in str(name or ""):
        return None  # a placeholder of the seed (<MODEL_PATH>): names no checkpoint
    base = str(name or "").rstrip("/").rsplit("/", 1)[-1]
    fam = _FAMILY.search(base)
    if not fam:
        return None
    low = base.lower()
    quant = next((t for t in QUANT_TAGS if re.search(rf"(?<![a-z0-9]){t}(?![a-z0-9])", low)), "bf16")
    return {"family": f"GLM-{fam.group(1)}", "quantization": quant}


def observe(client: EngineClient) -> dict[str, Any]:
    """Everything the endpoint reports about its own configuration (missing pieces are None)."""
    adapter = adapter_for(client.engine)
    obs: dict[str, Any] = {"engine": client.engine, "endpoints": {}}
    try:
        models = client.models()
        obs["served_models"] = [m.get("id") for m in models]
        mine = next((m for m in models if m.get("id") == client.model), models[0])
        obs["max_model_len"] = mine.get("max_model_len")
        obs["model_root"] = mine.get("root")
        obs["endpoints"]["/v1/models"] = "ok"
    except Exception as exc:  # noqa: BLE001 - recorded, not raised: the suites report the engine's faults
        obs["endpoints"]["/v1/models"] = f"error: {str(exc)[:200]}"
    obs["version"] = adapter.version(client)
    adapter.observe_config(client, obs)
    return obs


def compare(row, obs: dict[str, Any]) -> dict[str, Any]:
    """{"differences": [...], "confirmed": [...], "declared_only": [...]} of row vs observation."""
    d = declared(row)
    diffs, ok, only = [], [], []

    def judge(what: str, want: Any, got: Any, same: bool) -> None:
        (ok if same else diffs).append(f"{what}: declared {want!r}, observed {got!r}")

    if obs.get("engine") and obs["engine"] != d["engine"]:
        diffs.append(f"engine: declared {d['engine']!r}, observed {obs['engine']!r}")
    served = obs.get("served_models")
    if served is not None:
        judge("served model", d["served_model"], served, d["served_model"] in served)
    if d["max_model_len"] is not None:
        if obs.get("max_model_len") is None:
            only.append(f"max_model_len {d['max_model_len']} (the server reports none)")
        else:
            judge("max_model_len", d["max_model_len"], obs["max_model_len"], int(obs["max_model_len"]) == d["max_model_len"])
    if d["engine_version"]:
        got = obs.get("version")
        if got is None:
            only.append(f"engine version {d['engine_version']} (the server reports none)")
        else:
            judge("engine version", d["engine_version"], got, str(got).split("+")[0] == d["engine_version"])
    _compare_checkpoint(row, obs, judge, only)
    # the row's adapter: what its recipe declares is compared with what that engine reports
    adapter_for(row.engine).compare_config(d, obs, judge, only)
    unobserved = dict(obs.get("unobserved") or {})
    only += [f"{what} (unobserved: {why})" for what, why in unobserved.items()]
    return {"declared": {k: v for k, v in d.items() if k != "args"}, "differences": diffs, "confirmed": ok,
            "declared_only": only, "unobserved": unobserved}


def _compare_checkpoint(row, obs: dict[str, Any], judge, only: list[str]) -> None:
    """The served checkpoint's family and quantization against the row's ``model``."""
    want = checkpoint_traits(row.model)
    args = obs.get("server_args") or {}
    roots = [r for r in (obs.get("model_root"), args.get("model_path")) if r]
    seen = next((t for t in map(checkpoint_traits, roots) if t), None)
    if want is None:
        return  # the row names no GLM checkpoint (a placeholder): nothing to hold the server to
    if seen is None:
        only.append(f"checkpoint {row.model} (the server's model root {roots[0] if roots else None!r} names none)")
    else:
        for k in ("family", "quantization"):
            judge(f"checkpoint {k}", want[k], seen[k], want[k] == seen[k])
    q = args.get("quantization")
    if q and want["quantization"] != "bf16":
        # SGLang reports the --quantization it runs with (e.g. fp8, modelopt_fp4, w8a8_int8)
        same = want["quantization"].replace("nv", "") in str(q).lower() or str(q).lower() in want["quantization"]
        judge("quantization", want["quantization"], q, same)


def mismatch_message(row, cmp: dict[str, Any]) -> str:
    return (f"the server at the endpoint does not run row {row.id}'s recipe: " + "; ".join(cmp["differences"])
            + " (what the server reports vs what the row declares)")
