"""vLLM: rendered prompts through ``return_token_ids`` and ``/detokenize``, tokens through
``/tokenize``, speculative decoding from ``/metrics`` counters, configuration from
``vllm:cache_config_info`` labels.

Accept length (``AcceptLengthMeter``): ``/metrics`` is scraped around each window of requests;
mean accept length = 1 + Δaccepted / Δdrafts (the bonus token included), per-position rate =
Δper_pos / Δdrafts. vLLM registers the ``vllm:spec_decode_*`` counters only with a speculative
config, with one ``position`` label per draft token, so their presence and positions are also
what ``observe_config`` reports.

Prefix cache (``PrefixCacheMeter``): ``vllm:prefix_cache_queries`` and ``vllm:prefix_cache_hits``
count prompt tokens looked up and found (engine-wide, block-aligned), scraped around one request:
Δhits is the cached part of its prompt, and Δqueries equal to its prompt tokens says no other
request was counted in between (the shared-server case is recorded, not hidden).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

from ..client import EngineProtocolError
from ..ledger import TokenCounter
from ..parsers.envs import VLLM_PARSERS
from .base import (AcceptLengthMeter, ContainerDefaults, EngineAdapter, Judge, Measurement, PrefixCacheMeter,
                   RemovedFlag, WINDOW_FLAGS, as_count, is_placeholder, json_object, prom_labels, same_value)

if TYPE_CHECKING:
    from ..chat import Chat
    from ..client import EngineClient

DRAFTS = "vllm:spec_decode_num_drafts"
ACCEPTED = "vllm:spec_decode_num_accepted_tokens"
DRAFT_TOKENS = "vllm:spec_decode_num_draft_tokens"
PER_POS = "vllm:spec_decode_num_accepted_tokens_per_pos"
PREFIX_QUERIES = "vllm:prefix_cache_queries"
PREFIX_HITS = "vllm:prefix_cache_hits"
#: vLLM flag -> vllm:cache_config_info label
CACHE_LABELS = {"--kv-cache-dtype": "cache_dtype", "--block-size": "block_size",
                "--gpu-memory-utilization": "gpu_memory_utilization"}


def counter(metrics: dict[str, float], name: str) -> float | None:
    """Sum of a counter over all label sets (names may or may not carry the _total suffix)."""
    total, found = 0.0, False
    for key, value in metrics.items():
        base = key.split("{", 1)[0]
        if base in (name, name + "_total"):
            total += value
            found = True
    return total if found else None


def per_position(metrics: dict[str, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for key, value in metrics.items():
        base = key.split("{", 1)[0]
        if base in (PER_POS, PER_POS + "_total"):
            m = re.search(r'position="(\d+)"', key)
            if m:
                out[int(m.group(1))] = out.get(int(m.group(1)), 0.0) + value
    return out


def accept_length(before: dict, after: dict) -> dict:
    """Accept length and per-position acceptance between two ``/metrics`` snapshots."""
    d_drafts = (counter(after, DRAFTS) or 0) - (counter(before, DRAFTS) or 0)
    d_acc = (counter(after, ACCEPTED) or 0) - (counter(before, ACCEPTED) or 0)
    d_tok = (counter(after, DRAFT_TOKENS) or 0) - (counter(before, DRAFT_TOKENS) or 0)
    pb, pa = per_position(before), per_position(after)
    rates = [round((pa.get(p, 0) - pb.get(p, 0)) / d_drafts, 4) if d_drafts else None for p in sorted(pa)]
    return {"drafts": d_drafts, "accepted": d_acc, "draft_tokens": d_tok,
            "accept_length": round(1 + d_acc / d_drafts, 4) if d_drafts > 0 else None,
            "per_position": rates}


class MetricsMeter(AcceptLengthMeter):
    """Counter deltas per window of concurrent requests."""

    source = "/metrics"
    evidence_records = 32

    def __init__(self, client: "EngineClient", draft_tokens: int, window: int):
        self.client = client
        self.draft_tokens = draft_tokens
        self.requests_per_value = window
        self.first: dict[str, float] | None = None

    def begin(self) -> None:
        self.first = self.client.metrics()
        if counter(self.first, DRAFTS) is None:
            raise AssertionError(f"no {DRAFTS} counter in /metrics: speculative decoding is off on a row that claims MTP")

    def measure(self, chat: "Chat", prompts: list[str], max_tokens: int) -> Measurement:
        before = self.client.metrics()
        results = chat.many({"messages": [{"role": "user", "content": p}], "max_tokens": max_tokens} for p in prompts)
        after = self.client.metrics()
        problems = [f"response: request failed: {r.error}" if r.error else f"response: protocol defects: {r.problems[:5]}"
                    for r in results if r.error or r.problems]
        stats = accept_length(before, after)
        stats["completion_tokens"] = sum(r.completion_tokens or 0 for r in results)
        values = []
        if stats["drafts"] > 0:
            if stats["accept_length"] > self.draft_tokens + 1:
                problems.append(f"accept length {stats['accept_length']} exceeds draft tokens + 1 = {self.draft_tokens + 1}: "
                                f"counters are inconsistent ({stats})")
            values.append(stats["accept_length"])
        return Measurement(values, [stats], problems)

    def summary(self, records: list[dict]) -> tuple[dict, list[str]]:
        overall = accept_length(self.first or {}, self.client.metrics())
        completion = sum(w["completion_tokens"] for w in records)
        problems = [] if overall["drafts"] > 0 else [
            f"spec-decode counters did not move over {completion} generated tokens (frozen or stale metrics): {overall}"]
        return {"completion_tokens": completion, "tokens_spent": completion,
                "trend": [w.get("accept_length") for w in records], **overall}, problems

    def context(self, records: list[dict]) -> str:
        return f"over {len(records)} windows of {self.requests_per_value} requests"

    def positions(self) -> dict | None:
        now = self.client.metrics()
        first = self.first or {}
        pa, pb = per_position(now), per_position(first)
        if not pa:
            return None
        return {"drafts": (counter(now, DRAFTS) or 0) - (counter(first, DRAFTS) or 0),
                "accepted": (counter(now, ACCEPTED) or 0) - (counter(first, ACCEPTED) or 0),
                "per_position": {k: pa[k] - pb.get(k, 0.0) for k in sorted(pa)}}


class PrefixCounterMeter(PrefixCacheMeter):
    """Prefix-cache counter deltas around one request (sequential requests: see the module docstring)."""

    source = "/metrics vllm:prefix_cache_queries / vllm:prefix_cache_hits"

    def start(self) -> None:
        self.before = self.client.metrics()

    def read(self, body: dict, prompt_tokens: int | None) -> dict:
        after = self.client.metrics()
        got = super().read(body, prompt_tokens)
        queries = (counter(after, PREFIX_QUERIES) or 0) - (counter(self.before, PREFIX_QUERIES) or 0)
        hits = (counter(after, PREFIX_HITS) or 0) - (counter(self.before, PREFIX_HITS) or 0)
        if counter(after, PREFIX_QUERIES) is None:  # prefix caching off, or a release without the counters
            return got
        return {"cached": int(hits), "queried": int(queries),
                "clean": prompt_tokens is not None and int(queries) == prompt_tokens,
                "usage_cached": got["cached"]}


class VllmAdapter(EngineAdapter):
    """vLLM's OpenAI server (``vllm serve``; image ``vllm/vllm-openai`` and its ROCm build)."""

    name = "vllm"
    api = "vllm"
    container = ContainerDefaults(kind="vllm", default_port=8000, mount_hf_cache=True)
    parser_conformance_version = "0.32.0"
    parser_env = VLLM_PARSERS
    covers_every_check = True  # it shows the rendered prompt: every check has a vLLM branch
    removed_flags = (
        RemovedFlag("--disable-log-requests", (0, 12),
                    "vLLM 0.12 removed --disable-log-requests (requests are not logged unless --enable-log-requests)"),
    )
    version_paths = ("/version",)
    shows_rendered_prompt = True
    #: vLLM 0.32 renders earlier reasoning sent back under either name (measured: equal prompt_tokens)
    input_reasoning_fields = ("reasoning", "reasoning_content")

    # ---- rendered prompt and tokens -------------------------------------------------------------
    def rendered_prompt(self, client: "EngineClient", messages: list[dict], body: dict) -> str | int | None:
        """The prompt via ``return_token_ids`` then ``/detokenize``. ``/tokenize`` would be cheaper
        but ignores a top-level ``reasoning_effort`` (vLLM 0.32), so it cannot show what a chat
        completion with that field renders; it is the fallback of releases without token ids."""
        with client.http() as h:
            r = h.post("/v1/chat/completions", json={"model": client.model, "messages": messages, "max_tokens": 1,
                                                     "return_token_ids": True, **body})
            if r.status_code != 200:
                return r.status_code
            ids = r.json().get("prompt_token_ids")
            if not ids:
                ids = client.tokenize(messages=messages, add_generation_prompt=True, **body)["tokens"]
            r = h.post("/detokenize", json={"model": client.model, "tokens": ids})
        if r.status_code != 200:
            raise EngineProtocolError(f"/detokenize: HTTP {r.status_code}")
        return r.json()["prompt"]

    def count_text_tokens(self, client: "EngineClient", text: str) -> int | None:
        return client.tokenize(prompt=text, add_special_tokens=False)["count"]

    def endpoint_token_counter(self, client: "EngineClient") -> TokenCounter | None:
        """``POST /tokenize`` takes one prompt: one request per distinct text (the ledger samples)."""
        return TokenCounter("vLLM POST /tokenize", lambda texts: [self.count_text_tokens(client, t) for t in texts])

    def prompt_token_counter(self, client: "EngineClient", chat_template_kwargs: dict) -> Callable[[list[dict]], int]:
        return lambda msgs: client.tokenize(messages=msgs, add_generation_prompt=True,
                                            chat_template_kwargs=chat_template_kwargs)["count"]

    # ---- speculative decoding -------------------------------------------------------------------
    def accept_length_meter(self, client: "EngineClient", draft_tokens: int, window: int) -> AcceptLengthMeter:
        return MetricsMeter(client, draft_tokens, window)

    def prefix_cache_meter(self, client: "EngineClient") -> PrefixCacheMeter:
        return PrefixCounterMeter(client)

    # ---- observed vs declared ---------------------------------------------------------------------
    def declared_speculation(self, args: dict[str, Any]) -> tuple[bool, int | None]:
        spec = any(k.startswith("--speculative-config") for k in args)
        drafts = args.get("--speculative-config.num_speculative_tokens")
        config = json_object(args.get("--speculative-config"))
        if config is not None:
            drafts = config.get("num_speculative_tokens")
        return spec, as_count(drafts)

    def observe_config(self, client: "EngineClient", obs: dict[str, Any]) -> None:
        try:
            metrics = client.metrics()
            obs["endpoints"]["/metrics"] = "ok"
        except Exception as exc:  # noqa: BLE001 - recorded, not raised
            obs["endpoints"]["/metrics"] = f"error: {str(exc)[:200]}"
            # what only /metrics reveals is unobserved, never assumed (a gateway often hides it)
            why = f"GET /metrics failed ({str(exc)[:120]}); expose the engine's /metrics to observe it"
            obs.setdefault("unobserved", {}).update({"speculative decoding": why, "KV-cache configuration": why})
            return
        obs["cache_config"] = next((prom_labels(k) for k in metrics if k.startswith("vllm:cache_config_info{")), None)
        positions = {prom_labels(k).get("position") for k in metrics if k.startswith(PER_POS)}
        obs["speculative"] = any(k.startswith(DRAFTS) for k in metrics)
        obs["draft_positions"] = len(positions - {None}) or None

    def compare_config(self, declared: dict[str, Any], obs: dict[str, Any], judge: Judge, only: list[str]) -> None:
        args = declared["args"]
        if "speculative" in obs:
            judge("speculative decoding", declared["speculative"], obs["speculative"],
                  declared["speculative"] == obs["speculative"])
            if declared["speculative"] and declared["draft_tokens"] and obs.get("draft_positions"):
                judge("draft tokens", declared["draft_tokens"], obs["draft_positions"],
                      declared["draft_tokens"] == obs["draft_positions"])
        cache = obs.get("cache_config") or {}
        for flag, label in CACHE_LABELS.items():
            if flag in args and not is_placeholder(args[flag]):
                if label in cache:
                    judge(flag, args[flag], cache[label], same_value(args[flag], cache[label]))
                else:
                    only.append(f"{flag} {args[flag]}")
        if "enable_prefix_caching" in cache:
            for flag, want in (("--enable-prefix-caching", True), ("--no-enable-prefix-caching", False)):
                if flag in args:
                    judge(flag, want, cache["enable_prefix_caching"], str(want) == cache["enable_prefix_caching"])
        # parsers, tensor parallelism, ...: no vLLM endpoint reports them (the suites check behaviour)
        covered = set(CACHE_LABELS) | {"--served-model-name", "--enable-prefix-caching", "--no-enable-prefix-caching",
                                       *WINDOW_FLAGS}
        for flag, val in args.items():
            if flag not in covered and not flag.startswith("--speculative-config"):
                only.append(flag if val is True else f"{flag} {val}")
