"""Degenerate answers planted on a conforming engine (issue 25, item 4: "a small share of looping
answers"), for ``glmverify.degeneration``'s rate decision.

* ``greedy_loops``: the deployment decodes a share ``GREEDY_SHARE`` (25%) of chat requests greedily
  whatever their sampling fields (the request reaches the engine with ``temperature: 0``), as a
  sampler bug would (SGLang #36802: ``1. 1. 1. ...`` at temperature 0 under DP attention). Greedy
  decoding of a reasoning model loops on some prompts: the GLM-5.2 stand-in's greedy reasoning
  falls into a repetition loop on ``GREEDY_LOOP_PERCENT`` (20%) of thinking-on prompts and repeats
  it until ``max_tokens`` (finish ``length``). So about 5% of thinking-on answers loop to
  max_tokens, each one a real answer of the engine (usage, finish reason and text agree, so no
  engine invariant breaks), while GSM8K accuracy stays near 0.92, above the absolute 0.90 gate.
  The client's request carries no temperature, so the ledger counts these answers in the rate.

Which requests are drawn is a hash of the request body and how often that body was seen before,
so the draw is reproducible for a given sequence of requests and a repeated request draws again
(``registry.SALT_ENV``, set per bench run, mixes in another draw).
"""
from __future__ import annotations

import hashlib
import json
import threading

from .registry import fault, selection_salt

GREEDY_SHARE = 0.25
_seen: dict[str, int] = {}
_lock = threading.Lock()


def drawn(body: dict, share: float = GREEDY_SHARE) -> bool:
    """Whether this request is among the ``share`` decoded greedily (module docstring)."""
    key = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
    with _lock:
        if len(_seen) > 100_000:  # a long-running proxy: forget, the draw stays uniform
            _seen.clear()
        n = _seen[key] = _seen.get(key, 0) + 1
    salt = selection_salt("")  # '' unless a bench run salts it: the draw as it always was
    h = hashlib.sha256(f"{salt}{n}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64 < share


def _greedy(path: str, body: dict) -> dict:
    return {**body, "temperature": 0}


fault("greedy_loops", f"{GREEDY_SHARE:.0%} of chat requests decoded greedily whatever their sampling: greedy "
      "reasoning loops until max_tokens on about one prompt in five (about 5% of thinking-on answers)",
      "SGLang #36802", request=_greedy, when=drawn)
