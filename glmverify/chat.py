"""Chat completions, streamed or not, sent concurrently and normalised into one ``ChatResult``
(``chat_answers``: the answer's shape and its strict parsers) the checks compare.

The stream/non-stream axis is added once (suites/conftest.py); test bodies call ``Chat.many``
and get the same shape either way. Streams are requested through the official ``openai`` client
and parsed by ``chat_answers.StreamAssembler``. Every answer a ``Chat`` receives is recorded in
the running check's ledger (``glmverify.ledger``), which judges it against every engine invariant
when the check ends, whatever the check itself asserts. Transport and HTTP errors come back in
the result (``error``/``status``), never raised out of a batch.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict
from typing import Any, Awaitable, Iterable

# the answer's shape and parsers, re-exported: suites and tests import them from here
from .chat_answers import (MAX_STREAM_EVENTS, MAX_STREAM_SECONDS, REASONING_FIELDS, ChatResult,  # noqa: F401
                           StreamAssembler, ToolCall, parse_completion, usage_problems)
from .invariants import Violation as V
from .ledger import record_chat


class Chat:
    """Sends chat completions for one engine, streamed or not, concurrently, with a log."""

    def __init__(self, live, stream: bool, concurrency: int = 16, timeout: float = 120.0):
        self.live = live
        self.stream = stream
        self.concurrency = concurrency
        self.timeout = timeout
        self.log: list[dict[str, Any]] = []
        self.tokens_spent = 0  # completion tokens of every answer so far (what a check cost the engine)

    def body(self, **req) -> dict:
        """A request as the guides send it: the profile's defaults (max_tokens large enough for Max
        reasoning; no sampling fields, so the engine applies the checkpoint's generation config)
        under what the check sets. A check that needs identity sets ``seed`` and says why."""
        profile = getattr(getattr(self.live, "row", None), "profile", None)
        defaults = profile.request_defaults() if profile is not None else {"max_tokens": 8192}
        return {"model": self.live.model, **defaults, **req}

    async def acomplete(self, client, req: dict) -> ChatResult:
        """One request; HTTP and transport errors come back in ``error``/``status``, never raised,
        so one bad answer fails its check with a message instead of aborting the batch."""
        import openai

        body = self.body(**req)
        t0 = time.monotonic()
        # the SDK's timeout bounds each read, not the request: an engine that drips bytes forever
        # would hold the run; a total deadline bounds it (non-stream: the read timeout, which a
        # conforming non-stream answer already has to meet; streams: MAX_STREAM_SECONDS)
        deadline = (MAX_STREAM_SECONDS if self.stream else 0) + self.timeout + 5
        try:
            try:
                res = await asyncio.wait_for(self._send(client, body), deadline)
            except openai.APIConnectionError as exc:
                if isinstance(exc, openai.APITimeoutError):
                    raise
                # a pooled keep-alive connection closed before any answer (seen under CPU load):
                # one fresh attempt; timeouts and HTTP errors are never retried
                res = await asyncio.wait_for(self._send(client, body), deadline)
        except asyncio.TimeoutError:
            res = ChatResult(stream=self.stream, request=body,
                             error=f"no complete response within {deadline:.0f}s (request deadline; the engine kept the connection open)")
        except openai.APIStatusError as exc:
            res = ChatResult(stream=self.stream, request=body, status=exc.status_code,
                             error=f"HTTP {exc.status_code}: {str(exc.message)[:300]}")
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            res = ChatResult(stream=self.stream, request=body, error=f"{type(exc).__name__}: {exc}"[:300])
        except ValueError as exc:  # malformed payloads the SDK could not decode
            res = ChatResult(stream=self.stream, request=body, error=f"undecodable response: {exc}"[:300])
        except Exception as exc:  # noqa: BLE001 - e.g. httpx timeouts while iterating a stream
            res = ChatResult(stream=self.stream, request=body,
                             error=f"transport error while reading the response: {type(exc).__name__}: {exc or '(no message)'}"[:300])
        res.elapsed = time.monotonic() - t0
        self.tokens_spent += res.completion_tokens or 0
        self.log.append({"request": _clip_request(body), "response": res.excerpt()})
        record_chat(res, body, len(self.log) - 1)  # judged by the running check's ledger at its end
        return res

    async def _send(self, client, body: dict) -> ChatResult:
        extra = {k: v for k, v in body.items() if k not in _SDK_ARGS}
        known = {k: v for k, v in body.items() if k in _SDK_ARGS}
        if not self.stream:
            raw = await client.chat.completions.with_raw_response.create(**known, extra_body=extra or None)
            text = raw.http_response.text
            try:
                parsed = json.loads(text)
            except ValueError:
                res = ChatResult(stream=False, request=body)
                res.problems.append(V("body.not_json", f"response is not JSON: {text[:200]!r}"))
            else:
                res = parse_completion(parsed, body)
        else:
            known["stream"] = True
            known.setdefault("stream_options", {"include_usage": True})
            asm = StreamAssembler({**body, "stream": True, "stream_options": known["stream_options"]})  # as sent
            async with client.chat.completions.with_streaming_response.create(**known, extra_body=extra or None) as resp:
                deadline = time.monotonic() + MAX_STREAM_SECONDS
                async for line in resp.iter_lines():
                    asm.feed_line(line)
                    if asm.res.events > MAX_STREAM_EVENTS or time.monotonic() > deadline:
                        asm.res.problems.append(V("stream.unterminated",
                                                  f"stream did not end after {asm.res.events} events"))
                        break
            res = asm.result()
        return res

    def many(self, requests: Iterable[dict]) -> list[ChatResult]:
        """Run all requests with at most ``concurrency`` in flight; results in request order."""
        reqs = list(requests)

        async def go():
            client = self.live.client.async_openai(timeout=self.timeout)
            sem = asyncio.Semaphore(self.concurrency)

            async def one(r):
                async with sem:
                    return await self.acomplete(client, r)
            try:
                return await asyncio.gather(*(one(r) for r in reqs))
            finally:
                await client.close()
        return run(go())

    def one(self, **req) -> ChatResult:
        return self.many([req])[0]


_SDK_ARGS = {"model", "messages", "max_tokens", "temperature", "tools", "tool_choice", "stream",
             "stream_options", "reasoning_effort", "top_p", "seed", "stop", "n", "parallel_tool_calls",
             "max_completion_tokens", "response_format"}
SDK_ARGS = _SDK_ARGS  # the SDK's own arguments (the rest of a body goes in extra_body), for clients beside Chat


def _clip_request(body: dict) -> dict:
    out = dict(body)
    msgs = out.get("messages")
    if isinstance(msgs, list):
        clipped = []
        for m in msgs:
            m = dict(m)
            if isinstance(m.get("content"), str) and len(m["content"]) > 400:
                m["content"] = m["content"][:200] + f"…({len(m['content'])} chars)…" + m["content"][-120:]
            clipped.append(m)
        out["messages"] = clipped
    return out


def run(coro: Awaitable) -> Any:
    """Run a coroutine from sync test code (pytest tests are sync; suites stay readable)."""
    return asyncio.run(coro)


def as_dict(obj) -> dict:
    return asdict(obj)
