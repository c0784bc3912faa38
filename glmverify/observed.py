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

``compare(row, observed)`` returns the differences (declared X, observed Y), what was confirmed
and what stays *declared-only* (no endpoint reports it: e.g. vLLM's tensor parallel size or parser
names, which the suites check by behaviour instead). An attached row with a difference is failed
with it (``ObservedMismatch``); a launched row records it in the evidence.
"""
from __future__ import annotations

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
    # the row's adapter: what its recipe declares is compared with what that engine reports
    adapter_for(row.engine).compare_config(d, obs, judge, only)
    return {"declared": {k: v for k, v in d.items() if k != "args"}, "differences": diffs, "confirmed": ok,
            "declared_only": only}


def mismatch_message(row, cmp: dict[str, Any]) -> str:
    return (f"the server at the endpoint does not run row {row.id}'s recipe: " + "; ".join(cmp["differences"])
            + " (what the server reports vs what the row declares)")
