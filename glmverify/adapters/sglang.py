"""SGLang: rendered prompts through ``return_prompt_token_ids`` and ``/detokenize``, accept length
per request from ``meta_info``, configuration from ``/server_info``.

Rendered prompt: a non-stream chat completion with ``return_prompt_token_ids`` carries the ids its
template produced in ``choices[0].prompt_token_ids`` (SGLang 0.5.23; streams refuse the field), and
``/detokenize`` with special tokens kept turns them into text. A release that ignores the field
answers without ids, and the rendered-prompt check says so instead of guessing. Tokens: ``POST
/tokenize`` takes a list of prompts (the ledger's batch counter); prompt tokens of chat messages
come from a one-token completion's usage (the base adapter's way). Accept length: per request,
``completion_tokens / meta_info.spec_verify_ct`` with ``return_meta_info``. ``/server_info``
(older releases: ``/get_server_info``) carries the version and every server argument
(``tp_size``, ``context_length``, ``speculative_algorithm``, ``reasoning_parser``, ...), so most
recipe flags are compared one by one; ``SGLANG_SIMULATE_ACC_LEN`` fakes acceptance (benchmark mode).
Prefix cache: per request ``meta_info.cached_tokens`` (``return_meta_info``, chat completions
only; SGLang's ``/v1/messages`` reports no cached count unless ``--enable-cache-report`` fills
the usage field).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ..client import EngineProtocolError
from ..ledger import TokenCounter
from ..parsers.envs import SGLANG_PARSERS
from ..paths import REPO_ROOT

from .base import (AcceptLengthMeter, ContainerDefaults, EngineAdapter, Judge, Measurement, PrefixCacheMeter,
                   as_count, is_placeholder, same_value)

if TYPE_CHECKING:
    from ..chat import Chat
    from ..client import EngineClient

INFO_PATHS = ("/server_info", "/get_server_info")
#: SGLang flag -> /server_info key, where the key is not the flag's own name
SERVER_INFO_KEYS = {"--tp": "tp_size", "--tp-size": "tp_size", "--dp": "dp_size", "--dp-size": "dp_size",
                    "--model": "model_path", "--ep": "ep_size", "--ep-size": "ep_size"}
#: compared for the record only: an operator's address, port and weight path legitimately differ
#: the SGLang release the project installs on CPU (make setup: the reference's server venv; the
#: parser-conformance runner reuses it)
CPU_RELEASE = "0.5.23"
SOFT = {"--host", "--port", "--model-path", "--model", "--dist-init-addr", "--node-rank", "--trust-remote-code"}


def server_python(version: str) -> Path:
    """The interpreter of the SGLang server venv (``make setup`` builds it with
    images/sglang-reference/install.sh); a clear error when it is missing."""
    venv = REPO_ROOT / ".venvs" / f"sglang-{version}"
    py = venv / "bin" / "python"
    if not (venv / ".glmverify-server").exists() or not py.exists():
        raise LookupError(f"the SGLang {version} server venv {venv.relative_to(REPO_ROOT)} is not installed: "
                          f"run `make setup` (images/sglang-reference/install.sh {venv.relative_to(REPO_ROOT)})")
    return py


class MetaInfoMeter(AcceptLengthMeter):
    """One accept length per request: ``completion_tokens / spec_verify_ct``."""

    source = "meta_info"
    quantity = "mean accept length per request (completion_tokens / spec_verify_ct)"
    requests_per_value = 1
    evidence_records = 64

    def __init__(self, client: "EngineClient"):
        self.client = client

    def measure(self, chat: "Chat", prompts: list[str], max_tokens: int) -> Measurement:
        values, problems = [], []
        client = self.client
        with client.http() as h:  # raw: the SDK drops the non-standard meta_info
            for p in prompts:
                r = h.post("/v1/chat/completions", json={"model": client.model, "max_tokens": max_tokens,
                                                         "return_meta_info": True,
                                                         "messages": [{"role": "user", "content": p}]})
                if r.status_code != 200:
                    problems.append(f"SGLang chat completion with return_meta_info: HTTP {r.status_code}")
                    break
                body = r.json()
                meta = (body.get("choices") or [{}])[0].get("meta_info") or {}
                verify = meta.get("spec_verify_ct")
                done = (body.get("usage") or {}).get("completion_tokens")
                if isinstance(verify, (int, float)) and verify > 0 and isinstance(done, int):
                    values.append(done / verify)
        return Measurement(values, [{"accept_length": round(v, 4)} for v in values], problems)

    def context(self, records: list[dict]) -> str:
        return "SGLang speculative decoding"


class MetaInfoPrefixMeter(PrefixCacheMeter):
    """``meta_info.cached_tokens`` of the request itself (no shared counters: always clean)."""

    source = "meta_info.cached_tokens (return_meta_info)"
    request_fields = {"return_meta_info": True}

    def read(self, body: dict, prompt_tokens: int | None) -> dict:
        meta = (((body or {}).get("choices") or [{}])[0] or {}).get("meta_info") or {}
        cached = meta.get("cached_tokens")
        if isinstance(cached, int):
            return {"cached": cached, "clean": True}
        return super().read(body, prompt_tokens)


class SglangAdapter(EngineAdapter):
    """SGLang's server (``python3 -m sglang.launch_server``; image ``lmsysorg/sglang``), port 30000."""

    name = "sglang"
    api = "sglang"
    container = ContainerDefaults(kind="sglang", default_port=30000, mount_hf_cache=True)
    parser_conformance_version = CPU_RELEASE
    parser_env = SGLANG_PARSERS
    version_paths = (*INFO_PATHS, "/version")
    simulated_acceptance_env = "SGLANG_SIMULATE_ACC_LEN"
    #: SGLang 0.5.23 reads only reasoning_content (measured: ``reasoning`` is dropped unrendered)
    input_reasoning_fields = ("reasoning_content",)
    shows_rendered_prompt = True

    def rendered_prompt(self, client: "EngineClient", messages: list[dict], body: dict) -> str | int | None:
        """The prompt a non-stream chat completion ran on: ``return_prompt_token_ids`` (ids per
        choice), then ``/detokenize`` keeping special tokens, so the template's markup is compared
        too. An int is the HTTP status of a refused request."""
        with client.http() as h:
            r = h.post("/v1/chat/completions", json={"model": client.model, "messages": messages, "max_tokens": 1,
                                                     **body, "stream": False, "return_prompt_token_ids": True})
            if r.status_code != 200:
                return r.status_code
            choice = ((r.json().get("choices") or [None])[0]) or {}
            ids = choice.get("prompt_token_ids")
            if not ids:
                raise EngineProtocolError("SGLang answered return_prompt_token_ids: true without "
                                          "choices[0].prompt_token_ids: this release does not show the rendered prompt")
            r = h.post("/detokenize", json={"model": client.model, "tokens": ids, "skip_special_tokens": False})
        if r.status_code != 200:
            raise EngineProtocolError(f"/detokenize: HTTP {r.status_code}")
        return r.json()["text"]

    def process_placeholders(self, row) -> dict[str, str]:
        """``{sglang_python}``: the server venv of the row's release (the reference runs SGLang from it)."""
        if any("{sglang_python}" in c for c in row.launch.command):
            return {"sglang_python": str(server_python(row.engine_version or CPU_RELEASE))}
        return {}

    def endpoint_token_counter(self, client: "EngineClient") -> TokenCounter | None:
        """SGLang 0.5.23's ``POST /tokenize`` takes a list of prompts: one request for the batch."""
        def count(texts: list[str]) -> list[int]:
            got = client.tokenize(prompt=texts, add_special_tokens=False)["count"] if texts else []
            return got if isinstance(got, list) else [got]
        return TokenCounter("SGLang POST /tokenize", count)

    def accept_length_meter(self, client: "EngineClient", draft_tokens: int, window: int) -> AcceptLengthMeter:
        return MetaInfoMeter(client)

    def prefix_cache_meter(self, client: "EngineClient") -> PrefixCacheMeter:
        return MetaInfoPrefixMeter(client)

    def answers_probe(self, client: "EngineClient") -> bool:
        with client.http(timeout=10) as h:
            try:
                return any(h.get(path).status_code == 200 for path in INFO_PATHS)
            except httpx.HTTPError:
                return False

    def declared_speculation(self, args: dict[str, Any]) -> tuple[bool, int | None]:
        return "--speculative-algorithm" in args, as_count(args.get("--speculative-num-draft-tokens"))

    def observe_config(self, client: "EngineClient", obs: dict[str, Any]) -> None:
        info = None
        for path in INFO_PATHS:
            try:
                info = client.get_json(path, timeout=10)
                obs["endpoints"][path] = "ok"
                break
            except Exception as exc:  # noqa: BLE001 - recorded, not raised
                obs["endpoints"][path] = f"error: {str(exc)[:200]}"
        if isinstance(info, dict):
            obs["server_args"] = {k: v for k, v in info.items()
                                  if not isinstance(v, (dict, list)) or k in ("served_model_name",)}

    def compare_config(self, declared: dict[str, Any], obs: dict[str, Any], judge: Judge, only: list[str]) -> None:
        args = declared["args"]
        info = obs.get("server_args")
        if info is None:
            super().compare_config(declared, obs, judge, only)
            return
        if declared["speculative"] or info.get("speculative_algorithm"):
            judge("speculative decoding", declared["speculative"], info.get("speculative_algorithm"),
                  bool(declared["speculative"]) == bool(info.get("speculative_algorithm")))
        for flag, val in args.items():
            key = SERVER_INFO_KEYS.get(flag, flag.lstrip("-").replace("-", "_"))
            if is_placeholder(val) or key not in info:
                only.append(flag if val is True else f"{flag} {val}")
                continue
            if flag in SOFT:
                continue
            if flag == "--speculative-algorithm" and not declared["speculative"]:
                continue
            judge(flag, val, info[key], same_value(val, info[key]))
