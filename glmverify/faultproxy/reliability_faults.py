"""Garbage and hangs in place of the engine (``respond`` hooks), for the harness's own reliability tests.

Not engine defects the suites must detect (the catalogue leaves them out): an HTML error page
with status 200, JSON of the wrong types, a 48 MiB body, a stream that never ends, a body that
drips forever, requests never answered. aiohttp is imported inside the hooks, which run only
in the proxy's server: importing the fault catalogue (``python -m glmverify.faults --list``, the
offline tests) must not need the fault tooling's aiohttp.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable

from .registry import RespondContext, fault


def _only(kinds: tuple[str, ...], make: Callable[[RespondContext], Awaitable[Any]]) -> Callable[[RespondContext], Awaitable[Any]]:
    async def respond(ctx: RespondContext):
        return await make(ctx) if ctx.kind in kinds else None
    return respond


async def _send_sse(ctx: RespondContext, lines) -> Any:
    from aiohttp import web

    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
    await resp.prepare(ctx.request)
    try:
        async for chunk in lines:
            await resp.write(chunk.encode())
        await resp.write_eof()
    except ConnectionResetError:  # the client gave up (as it should on a never-ending stream)
        pass
    return resp


async def _not_json(ctx: RespondContext):
    from aiohttp import web

    if ctx.stream:
        async def lines():
            for _ in range(3):
                yield "data: <html><body>502 Bad Gateway</body></html>\n\n"
            yield "data: [DONE]\n\n"
        return await _send_sse(ctx, lines())
    return web.Response(status=200, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")


async def _wrong_types(ctx: RespondContext):
    from aiohttp import web

    if ctx.stream:
        async def lines():
            yield 'data: {"choices": "many"}\n\n'
            yield 'data: {"choices": [{"delta": ["content"], "finish_reason": null}]}\n\n'
            yield 'data: {"choices": [{"delta": {"content": 42, "reasoning": {"a": 1}, "tool_calls": "none"}}]}\n\n'
            yield 'data: [1, 2, 3]\n\n'
            yield 'data: {"choices": [{"delta": {"tool_calls": [7, {"index": "x", "function": "f"}]}, "finish_reason": 9}], "usage": "lots"}\n\n'
            yield "data: [DONE]\n\n"
        return await _send_sse(ctx, lines())
    if ctx.kind == "messages":
        return web.json_response({"type": "message", "content": "not a list", "stop_reason": 3, "usage": []})
    return web.json_response({"id": 1, "object": "chat.completion", "choices": [
        {"index": "0", "message": {"role": "assistant", "content": 42, "reasoning": ["a", "b"],
                                   "tool_calls": "none"}, "finish_reason": 7}], "usage": "lots"})


HUGE_BYTES = 48 * 1024 * 1024


async def _huge(ctx: RespondContext):
    from aiohttp import web

    blob = "A" * HUGE_BYTES
    if ctx.stream:
        async def lines():
            yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": blob}, "finish_reason": None}]}) + "\n\n"
            yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + "\n\n"
            yield "data: [DONE]\n\n"
        return await _send_sse(ctx, lines())
    return web.Response(status=200, content_type="application/json", text=json.dumps(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": blob}, "finish_reason": "stop"}],
         "usage": {"completion_tokens": 1}}))


async def _endless(ctx: RespondContext):
    if not ctx.stream:
        return None  # non-stream requests go to the engine (see garbage_drip_body)
    chunk = "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": "la "}, "finish_reason": None}]}) + "\n\n"

    async def lines():
        while True:
            yield chunk * 64
            await asyncio.sleep(0)
    return await _send_sse(ctx, lines())


async def _drip(ctx: RespondContext):
    """A non-stream answer whose body never ends: one byte of JSON whitespace every half second, so
    no read timeout ever fires."""
    from aiohttp import web

    if ctx.stream:
        return None
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(ctx.request)
    try:
        await resp.write(b'{"choices": [')
        while True:
            await resp.write(b" ")
            await asyncio.sleep(0.5)
    except ConnectionResetError:
        return resp


async def _hang(ctx: RespondContext):
    await asyncio.Event().wait()  # accept, read the request, never answer


fault("garbage_not_json", "chat/messages answered with an HTML error page (200), streams with non-JSON events",
      respond=_only(("chat", "messages"), _not_json))
fault("garbage_wrong_types", "chat/messages answered with JSON of the wrong types everywhere",
      respond=_only(("chat", "messages"), _wrong_types))
fault("garbage_huge_body", f"chat answered with a {HUGE_BYTES >> 20} MiB content string",
      respond=_only(("chat",), _huge))
fault("garbage_endless_stream", "chat streams never end (content deltas as fast as they can be sent)",
      respond=_only(("chat",), _endless))
fault("garbage_drip_body", "non-stream chat answers whose body never ends (a byte every 0.5 s)",
      respond=_only(("chat",), _drip))
fault("hang", "chat and messages requests accepted and never answered", respond=_only(("chat", "messages"), _hang))
fault("hang_everything", "every request accepted and never answered (health and models too)",
      respond=_hang)
