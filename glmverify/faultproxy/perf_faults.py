"""Planted slowdowns for serving_performance: answers delayed between the engine and the client.

A gateway, a proxy sidecar or a slow network between the load balancer and the engine adds
latency the engine never sees: the client's TTFT/TPOT grow, the engine's own histograms do not.
``serving_performance`` must catch both ways: the cross-check (client vs engine counters) and the
regression decision (TPOT and throughput vs the baseline).

* ``perf_token_delay``: the k-th streamed chat event carrying a token (content, reasoning or a
  tool call delta) leaves ``k * TOKEN_DELAY_S`` after it arrived (a link draining slower than the
  engine writes); a non-stream answer is held ``TOKEN_DELAY_S`` per completion token. TPOT and
  ITL grow by the delay, throughput falls.
* ``perf_token_share_delay``: each token event after the first leaves ``1 + TOKEN_SHARE`` times its
  gap from the previous one later than the previous left (``share_departures``): a link slower by a
  stated share of the engine's own pace. TPOT grows by that share, whatever the engine's speed; on
  the CPU reference (about 3 ms per token) that is below the cross-check's TPOT slack, but E2E
  latency grows by the share of the decoding time, which the E2E cross-check (and, on windows the
  counters vouch for, the regression decision) sees.
* ``perf_first_token_delay``: the first token event of a stream held ``FIRST_TOKEN_DELAY_S``
  (a queue in front of the engine): TTFT grows, TPOT does not.

* ``perf_shed_load``: every ``SHED_EVERY``-th chat request answered 503 without reaching the engine
  (a gateway shedding load): the window's report counts failed requests.

These are ``respond`` hooks: the proxy's rewrite hooks see a whole buffered answer, so timing
needs the forwarding itself. The hook forwards the request through the proxy
(``RespondContext.forward``) and paces the upstream's lines by ``schedule`` (pure: the offline tests check it on recorded streams).
"""
from __future__ import annotations

import asyncio
import json
from typing import Iterable

from .registry import RespondContext, fault, passthrough_headers

TOKEN_DELAY_S = 0.05
TOKEN_SHARE = 0.5
FIRST_TOKEN_DELAY_S = 1.0
SHED_EVERY = 4


def is_token_line(line: bytes) -> bool:
    """An SSE ``data:`` line whose chunk carries a token (not ``[DONE]``, not a usage-only chunk)."""
    text = line.strip()
    if not text.startswith(b"data:"):
        return False
    payload = text[5:].strip()
    if payload == b"[DONE]":
        return False
    try:
        chunk = json.loads(payload)
    except ValueError:
        return False
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if any(delta.get(k) for k in ("content", "reasoning", "reasoning_content", "tool_calls")):
            return True
    return False


def schedule(lines: Iterable[bytes], per_token: float, first: float) -> list[tuple[float, bytes]]:
    """(hold, line) for each upstream line: a line is sent no earlier than its arrival plus its hold
    (and never before the line ahead of it). The k-th token line (k = 1, 2, ...) is held
    ``first + k * per_token``: the gaps between tokens grow by ``per_token`` whatever the engine's
    own pace, as through a link that drains slower than the engine writes."""
    out, k = [], 0
    for line in lines:
        hold = 0.0
        if is_token_line(line):
            k += 1
            hold = first + k * per_token
        out.append((hold, line))
    return out


def share_departures(arrivals: list[float], share: float) -> list[float]:
    """When each token event leaves, given when it arrived: the first at once, every later one
    ``(1 + share) x`` its gap after the one before it left (never before it arrived)."""
    out: list[float] = []
    for i, t in enumerate(arrivals):
        out.append(t if i == 0 else max(t, out[-1] + (1 + share) * (t - arrivals[i - 1])))
    return out


def _pacing(per_token: float, first: float, share: float = 0.0):
    async def respond(ctx: RespondContext):
        from aiohttp import web

        if ctx.kind != "chat" or ctx.forward is None:
            return None  # everything else passes through the proxy unchanged
        loop = asyncio.get_running_loop()
        sent = loop.time()
        up = await ctx.forward(await ctx.request.read())
        if isinstance(up, web.Response):
            return up
        async with up:
            out_headers = passthrough_headers(up)
            if not ctx.stream or up.status != 200:
                body = await up.read()
                if up.status == 200:
                    try:
                        tokens = int((json.loads(body).get("usage") or {}).get("completion_tokens") or 0)
                    except ValueError:
                        tokens = 0
                    await asyncio.sleep(first + per_token * tokens + share * (loop.time() - sent))
                return web.Response(status=up.status, body=body, headers=out_headers)
            resp = web.StreamResponse(status=200, headers=out_headers)
            await resp.prepare(ctx.request)
            queue: asyncio.Queue = asyncio.Queue()

            async def read() -> None:  # stamps each line with its arrival while the writer holds
                async for line in up.content:
                    queue.put_nowait((loop.time(), line))
                queue.put_nowait(None)

            reader = asyncio.ensure_future(read())
            k, last = 0, None  # last: (arrival, departure) of the previous token event
            try:
                while (item := await queue.get()) is not None:
                    arrived, line = item
                    if is_token_line(line):
                        k += 1  # the same hold as ``schedule``: arrival + first + k * per_token
                        due = arrived + first + k * per_token
                        if share and last is not None:  # the same as ``share_departures``
                            due = max(due, last[1] + (1 + share) * (arrived - last[0]))
                        last = (arrived, due)
                        await asyncio.sleep(max(0.0, due - loop.time()))
                    await resp.write(line)
            finally:
                reader.cancel()
            await resp.write_eof()
            return resp
    return respond


async def _shed(ctx: RespondContext):
    from aiohttp import web

    if ctx.kind != "chat":
        return None
    n = ctx.state["perf_chat_requests"] = ctx.state.get("perf_chat_requests", 0) + 1
    if n % SHED_EVERY:
        return None
    return web.json_response({"error": {"message": "overloaded", "type": "service_unavailable"}}, status=503)


fault("perf_token_delay", f"chat answers delayed {TOKEN_DELAY_S * 1000:g} ms per token between the engine and the "
      "client (TPOT and ITL up, throughput down; the engine's counters unchanged)",
      "a gateway or sidecar adding per-chunk latency", respond=_pacing(TOKEN_DELAY_S, 0.0))
fault("perf_token_share_delay", f"each streamed token held so the stream runs {TOKEN_SHARE:.0%} slower than the engine "
      "writes it (TPOT up by that share, within the cross-check's slack on a fast engine; throughput down)",
      "a link or sidecar slower than the engine by a share of its pace", respond=_pacing(0.0, 0.0, TOKEN_SHARE))
fault("perf_first_token_delay", f"the first token of each stream held {FIRST_TOKEN_DELAY_S:g} s (TTFT up, TPOT unchanged)",
      "a queue in front of the engine", respond=_pacing(0.0, FIRST_TOKEN_DELAY_S))
fault("perf_shed_load", f"every {SHED_EVERY}th chat request answered 503 before the engine (requests lost under load)",
      "a gateway shedding load", respond=_shed)
