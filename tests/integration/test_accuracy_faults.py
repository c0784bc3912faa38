"""The planted accuracy faults over HTTP (glmverify.faultproxy.accuracy_faults): a real FaultProxy
in front of an upstream that answers every GSM8K-style request 'The answer is <seed>.' (so a
rewritten answer is recognisable), each seed asking its own question, driven concurrently and one at a time.

The decisions these faults must fail are shown on seeded outcomes in
tests/unit/test_accuracy_baseline.py; here: the proxy's forwarding hooks fire where they should
(after N answers, only with more than k requests in flight) and leave everything else alone.
"""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest

pytest.importorskip("aiohttp")

from glmverify import faultproxy as fp  # noqa: E402
from glmverify.faultproxy import accuracy_faults as af  # noqa: E402
from helpers.aio_server import ThreadedApp  # noqa: E402

# one question per seed: the subtle and batch faults choose their questions by the question's text
ASK = "Q{s}?\n\nSolve the problem. End your answer with 'The answer is N.' where N is the final number."


async def answer_with_seed(request):
    """Answers each chat request with its seed as the answer, after a short pause (so requests overlap)."""
    from aiohttp import web

    body = await request.json()
    await asyncio.sleep(0.05)
    return web.json_response({"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "finish_reason": "stop",
         "message": {"role": "assistant", "content": f"Working. The answer is {body.get('seed', 0)}."}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


@pytest.fixture(scope="module")
def upstream():
    with ThreadedApp(answer_with_seed) as u:
        yield u


def ask(url: str, seeds: list[int], concurrency: int, content: str = ASK) -> dict[int, str]:
    """seed -> the answer's content, ``concurrency`` requests in flight."""
    async def go():
        sem = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=30) as client:
            async def one(s):
                async with sem:
                    r = await client.post(url + "/v1/chat/completions",
                                          json={"model": "m", "seed": s,
                                                "messages": [{"role": "user", "content": content.replace("{s}", str(s))}]})
                    return s, r.json()["choices"][0]["message"]["content"]
            return dict(await asyncio.gather(*(one(s) for s in seeds)))
    return asyncio.run(go())


def wrong(answers: dict[int, str]) -> list[int]:
    return [s for s, c in answers.items() if c != f"Working. The answer is {s}."]


def test_batch_errors_only_with_more_than_k_in_flight(upstream):
    with fp.FaultProxy(upstream.url, "accuracy_batch_errors") as proxy:
        alone = ask(proxy.url, list(range(200)), 1)
        crowd = ask(proxy.url, list(range(400, 800)), 64)
        assert proxy.state["accuracy_in_flight"] == 0
    assert wrong(alone) == []
    assert 5 <= len(wrong(crowd)) <= 40, wrong(crowd)   # about 5% of the ~390 started with > 8 in flight
    assert all(crowd[s] == f"Working. The answer is {s + 1}." for s in wrong(crowd))


def test_decay_after_n_answers(upstream):
    with fp.FaultProxy(upstream.url, "accuracy_decay") as proxy:
        early = ask(proxy.url, list(range(af.DECAY_AFTER)), 1)
        late = ask(proxy.url, list(range(1000, 1400)), 16)
        other = ask(proxy.url, list(range(2000, 2100)), 16, content="hello")   # not a GSM8K request: untouched
    assert wrong(early) == [] and wrong(other) == []
    assert 0.15 <= len(wrong(late)) / len(late) <= 0.35, len(wrong(late))


def test_subtle_drop_rewrites_a_stable_few(upstream):
    with fp.FaultProxy(upstream.url, "accuracy_subtle_drop") as proxy:
        first = ask(proxy.url, list(range(1000)), 32)
        again = ask(proxy.url, list(range(1000)), 4)
    assert 20 <= len(wrong(first)) <= 90 and wrong(first) == wrong(again)   # the same answers every run
    assert json.dumps(first) == json.dumps(again)
