"""Planted accuracy faults the absolute 0.90 gate cannot see (issue #25): each turns the final
number of some GSM8K answers wrong (``wrong_number``: N -> N + 1) between the engine and the client.

* ``accuracy_subtle_drop``: the answers to ``DROP_PERCENT`` (5%) of the questions, chosen by a
  stable hash of the question (the same questions every run, unless ``registry.SALT_ENV`` is set,
  as bench/verdicts.py does per run): 97% -> about 92%. Chosen by the
  question, not the answer: the stand-in's answers are only "The answer is N.", so a hash of the
  answer picked answer numbers, and the share of questions hit followed how often those numbers
  occur (one live run rewrote 10 of 512 answers, 2%, not 5%). The
  absolute gate still verifies or stays open; the paired decision against the baseline fails
  (nightly regressions of a few points, vLLM #50435).
* ``accuracy_decay``: healthy for the first ``DECAY_AFTER`` GSM8K answers through the proxy, then
  ``DECAY_PERCENT`` (25%) of them wrong: the drift decision fails (SGLang #23020: accuracy falling
  as requests accumulate over PD disaggregation).
* ``accuracy_batch_errors``: the answers to ``BATCH_PERCENT`` (5%) of the questions (by a hash of
  the question) wrong, only for requests that started while more than ``BATCH_K`` requests were
  in flight: the same seeded question answered one at a time is right; the concurrency decision fails (numerics that depend on batch shape).

GSM8K answers are recognised by the instruction the accuracy suite sends ("The answer is N").
Decay and batch need the proxy's state (answers seen, requests in flight), so they are
``respond`` hooks that forward the request through the proxy (``RespondContext.forward``); only
non-stream answers are rewritten (the accuracy suite's), streams pass through. ``wrong_number`` and the
selections are pure: tests/unit checks them on recorded answers.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable

from .registry import RespondContext, fault, passthrough_headers, selection_salt

DROP_PERCENT = 5
DECAY_AFTER = 128
DECAY_PERCENT = 25
BATCH_K = 8
BATCH_PERCENT = 5
_ANSWER = re.compile(r"(answer is\s*\$?)(-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)

def selected(text: str, salt: str, percent: int) -> bool:
    """A stable ``percent``% choice of texts (sha256, not Python's per-process hash); ``salt`` is
    the fault's own, to which a bench run's ``registry.SALT_ENV`` is added (``selection_salt``)."""
    key = f"{selection_salt(salt)}:{text}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 100 < percent


def wrong_number(content: str) -> str:
    """The content with its final 'The answer is N' turned into N + 1 (unchanged without one)."""
    found = list(_ANSWER.finditer(content or ""))
    if not found:
        return content
    m = found[-1]
    num = m.group(2).replace(",", "")
    try:
        new = str(int(num) + 1) if "." not in num else str(float(num) + 1)
    except ValueError:
        return content
    return content[:m.start(2)] + new + content[m.end(2):]


def question(request: Any) -> str:
    """The request's last user message (its GSM8K question; '' when there is none)."""
    msgs = request.get("messages") if isinstance(request, dict) else None
    last = msgs[-1] if isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict) else {}
    return last.get("content") if isinstance(last.get("content"), str) else ""


def is_gsm8k(request: Any) -> bool:
    """The accuracy suite's request: its last user message asks for 'The answer is N'."""
    return "The answer is N" in question(request)


def rewrite_body(body: dict, when: Callable[[str], bool]) -> dict:
    """A chat completion body with each choice's answer number made wrong where ``when(content)``."""
    for choice in body.get("choices") or []:
        msg = choice.get("message") or {}
        content = msg.get("content")
        if isinstance(content, str) and when(content):
            msg["content"] = wrong_number(content)
    return body


def _forwarding(decide: Callable[[RespondContext], Callable[[str], bool] | None], after=None):
    """A respond hook forwarding GSM8K non-stream chat requests itself; ``decide(ctx)`` (at the
    request's start) returns which answers to make wrong, ``after(ctx)`` runs when it is answered."""
    async def respond(ctx: RespondContext):
        from aiohttp import web

        if ctx.kind != "chat" or ctx.stream or ctx.forward is None or not is_gsm8k(ctx.body):
            return None
        when = decide(ctx)
        try:
            up = await ctx.forward(await ctx.request.read())
            if isinstance(up, web.Response):
                return up
            async with up:
                out_headers = passthrough_headers(up)
                data = await up.read()
                if up.status == 200 and when is not None:
                    try:
                        data = json.dumps(rewrite_body(json.loads(data), when)).encode()
                    except ValueError:
                        pass
                return web.Response(status=up.status, body=data, headers=out_headers)
        finally:
            if after is not None:
                after(ctx)
    return respond


def _decay_decide(ctx: RespondContext):
    n = ctx.state["accuracy_gsm8k_seen"] = ctx.state.get("accuracy_gsm8k_seen", 0) + 1
    return None if n <= DECAY_AFTER else (lambda c: selected(f"{n}:{c}", "decay", DECAY_PERCENT))


def _subtle_decide(ctx: RespondContext):
    hit = selected(question(ctx.body), "subtle", DROP_PERCENT)
    return (lambda c: True) if hit else None


def _batch_decide(ctx: RespondContext):
    ctx.state["accuracy_in_flight"] = flying = ctx.state.get("accuracy_in_flight", 0) + 1
    hit = flying > BATCH_K and selected(question(ctx.body), "batch", BATCH_PERCENT)
    return (lambda c: True) if hit else None


def _batch_done(ctx: RespondContext) -> None:
    ctx.state["accuracy_in_flight"] = ctx.state.get("accuracy_in_flight", 1) - 1


fault("accuracy_subtle_drop", f"{DROP_PERCENT}% of GSM8K answers get a wrong final number (97% -> about 92%: "
      "the absolute 0.90 gate does not fail it)", "vLLM #50435: GSM8K about 5 points lower on nightly",
      respond=_forwarding(_subtle_decide))
fault("accuracy_decay", f"GSM8K answers healthy for the first {DECAY_AFTER}, then {DECAY_PERCENT}% of them wrong",
      "SGLang #23020: accuracy falls as requests accumulate (PD disaggregation over Mooncake)",
      respond=_forwarding(_decay_decide))
fault("accuracy_batch_errors", f"{BATCH_PERCENT}% of GSM8K answers wrong, only for requests started with more "
      f"than {BATCH_K} in flight", "numerics that depend on batch shape (SGLang #36802: DP attention)",
      respond=_forwarding(_batch_decide, _batch_done))
