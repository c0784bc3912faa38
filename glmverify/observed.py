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

``compare(row, observed)`` returns the differences (declared X, observed Y), what was confirmed
and what stays *declared-only* (no endpoint reports it: e.g. vLLM's tensor parallel size or parser
names, which the suites check by behaviour instead). An attached row with a difference is failed
with it (``ObservedMismatch``); a launched row records it in the evidence.
"""
from __future__ import annotations

import json
import re
from typing import Any

from .client import EngineClient, EngineProtocolError

#: vLLM flag -> vllm:cache_config_info label
VLLM_CACHE_LABELS = {"--kv-cache-dtype": "cache_dtype", "--block-size": "block_size",
                     "--gpu-memory-utilization": "gpu_memory_utilization"}
#: SGLang flag -> /server_info key, where the key is not the flag's own name
SGLANG_KEYS = {"--tp": "tp_size", "--tp-size": "tp_size", "--dp": "dp_size", "--dp-size": "dp_size",
               "--model": "model_path", "--ep": "ep_size", "--ep-size": "ep_size"}
#: compared for the record only: an operator's address, port and weight path legitimately differ
SOFT = {"--host", "--port", "--model-path", "--model", "--dist-init-addr", "--node-rank", "--trust-remote-code"}
WINDOW_FLAGS = ("--max-model-len", "--max_model_len", "--context-length")


class ObservedMismatch(AssertionError):
    """The server's reported configuration contradicts its row's recipe."""


def _is_placeholder(v: Any) -> bool:
    return isinstance(v, str) and bool(re.search(r"\{\w+\}|\$\w|<[^>]+>", v))


def argmap(args: list[str]) -> dict[str, Any]:
    """Recipe argv -> {flag: value}; a bare flag is True, ``--no-X`` stays its own flag."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        tok = args[i]
        if tok.startswith("--"):
            name, eq, val = tok.partition("=")
            if eq:
                out[name] = val
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                out[name] = args[i + 1]
                i += 1
            else:
                out[name] = True
        i += 1
    return out


def declared(row) -> dict[str, Any]:
    """What the row's recipe says the server is, in the terms the server can report."""
    a = argmap(list(row.launch.get("args", [])))
    window = next((a[f] for f in WINDOW_FLAGS if f in a), None)
    spec, drafts = False, None
    if row.engine == "sglang":
        spec = "--speculative-algorithm" in a
        drafts = a.get("--speculative-num-draft-tokens")
    else:
        keys = [k for k in a if k.startswith("--speculative-config")]
        spec = bool(keys)
        drafts = a.get("--speculative-config.num_speculative_tokens")
        if "--speculative-config" in a and not _is_placeholder(a["--speculative-config"]):
            try:
                drafts = json.loads(a["--speculative-config"]).get("num_speculative_tokens")
            except (ValueError, AttributeError):
                pass
    return {
        "engine": "vllm" if row.engine == "vllm-ascend" else row.engine,
        "engine_version": row.engine_version,
        "served_model": row.served_model,
        "max_model_len": int(window) if isinstance(window, str) and window.isdigit() else None,
        "speculative": spec,
        "draft_tokens": int(drafts) if isinstance(drafts, (int, str)) and str(drafts).isdigit() else None,
        "args": a,
    }


def _labels(key: str) -> dict[str, str]:
    return dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', key))


def observe(client: EngineClient) -> dict[str, Any]:
    """Everything the endpoint reports about its own configuration (missing pieces are None)."""
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
    obs["version"] = client.version()
    if client.engine == "sglang":
        info = None
        for path in ("/server_info", "/get_server_info"):
            try:
                info = client.get_json(path, timeout=10)
                obs["endpoints"][path] = "ok"
                break
            except Exception as exc:  # noqa: BLE001
                obs["endpoints"][path] = f"error: {str(exc)[:200]}"
        if isinstance(info, dict):
            obs["server_args"] = {k: v for k, v in info.items() if not isinstance(v, (dict, list)) or k in ("served_model_name",)}
    else:
        try:
            metrics = client.metrics()
            obs["endpoints"]["/metrics"] = "ok"
        except (EngineProtocolError, Exception) as exc:  # noqa: BLE001
            metrics = None
            obs["endpoints"]["/metrics"] = f"error: {str(exc)[:200]}"
        if metrics is not None:
            cache = next((_labels(k) for k in metrics if k.startswith("vllm:cache_config_info{")), None)
            obs["cache_config"] = cache
            positions = {_labels(k).get("position") for k in metrics
                         if k.startswith("vllm:spec_decode_num_accepted_tokens_per_pos")}
            obs["speculative"] = any(k.startswith("vllm:spec_decode_num_drafts") for k in metrics)
            obs["draft_positions"] = len(positions - {None}) or None
    return obs


def _same(declared_value: Any, observed_value: Any) -> bool:
    if declared_value is True:
        return observed_value in (True, "True", "true", 1)
    try:
        return float(declared_value) == float(observed_value)
    except (TypeError, ValueError):
        return str(declared_value).strip().lower() == str(observed_value).strip().lower()


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
    args = d["args"]
    if d["engine"] == "vllm":
        if "speculative" in obs:
            judge("speculative decoding", d["speculative"], obs["speculative"], d["speculative"] == obs["speculative"])
            if d["speculative"] and d["draft_tokens"] and obs.get("draft_positions"):
                judge("draft tokens", d["draft_tokens"], obs["draft_positions"], d["draft_tokens"] == obs["draft_positions"])
        cache = obs.get("cache_config") or {}
        for flag, label in VLLM_CACHE_LABELS.items():
            if flag in args and not _is_placeholder(args[flag]):
                if label in cache:
                    judge(flag, args[flag], cache[label], _same(args[flag], cache[label]))
                else:
                    only.append(f"{flag} {args[flag]}")
        if "enable_prefix_caching" in cache:
            for flag, want in (("--enable-prefix-caching", True), ("--no-enable-prefix-caching", False)):
                if flag in args:
                    judge(flag, want, cache["enable_prefix_caching"], str(want) == cache["enable_prefix_caching"])
        covered = set(VLLM_CACHE_LABELS) | {"--served-model-name", "--enable-prefix-caching", "--no-enable-prefix-caching",
                                            *WINDOW_FLAGS}
        for flag, val in args.items():
            if flag not in covered and not flag.startswith("--speculative-config"):
                only.append(flag if val is True else f"{flag} {val}")
    else:
        info = obs.get("server_args")
        if info is None:
            only += [flag if v is True else f"{flag} {v}" for flag, v in args.items()]
        else:
            if d["speculative"] or info.get("speculative_algorithm"):
                judge("speculative decoding", d["speculative"], info.get("speculative_algorithm"),
                      bool(d["speculative"]) == bool(info.get("speculative_algorithm")))
            for flag, val in args.items():
                key = SGLANG_KEYS.get(flag, flag.lstrip("-").replace("-", "_"))
                if _is_placeholder(val) or key not in info:
                    only.append(flag if val is True else f"{flag} {val}")
                    continue
                if flag in SOFT:
                    continue
                if flag == "--speculative-algorithm" and not d["speculative"]:
                    continue
                judge(flag, val, info[key], _same(val, info[key]))
    return {"declared": {k: v for k, v in d.items() if k != "args"}, "differences": diffs, "confirmed": ok,
            "declared_only": only}


def mismatch_message(row, cmp: dict[str, Any]) -> str:
    return (f"the server at the endpoint does not run row {row.id}'s recipe: " + "; ".join(cmp["differences"])
            + " (what the server reports vs what the row declares)")
