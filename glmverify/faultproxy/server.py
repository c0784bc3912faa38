"""The proxy: an aiohttp server on 127.0.0.1 in front of one conforming engine, applying one fault.

Each ``FaultProxy`` runs its own event loop in a daemon thread, so several proxies can front the
same engine (the fault catalogue runs entries in parallel against one launch). Per request: a
``respond`` hook may answer instead of the engine; otherwise the request (rewritten by the
fault's ``request`` hook when its ``when`` accepts it) is forwarded; an answer the fault touches
is read whole, rewritten by ``registry.apply`` and sent; every other answer streams through
unchanged. ``stats`` counts requests per kind and the answers the fault changed.

aiohttp is imported inside the server's coroutines: importing the package (the fault catalogue,
the offline tests, ``python -m glmverify.faults --list``) must not need the fault tooling's aiohttp.
"""
from __future__ import annotations

import asyncio
import functools
import json
import threading
from typing import Any

from .catalogue import FAULTS
from .registry import HOP_HEADERS, Fault, RespondContext, apply, passthrough_headers

# headers of one connection, never forwarded (aiohttp sets its own)


def route(method: str, path: str) -> str:
    if method == "POST" and path.rstrip("/").endswith("/chat/completions"):
        return "chat"
    if method == "POST" and path.rstrip("/").endswith("/v1/messages"):
        return "messages"
    if method == "GET" and path.rstrip("/") == "/metrics":
        return "metrics"
    return "other"


class FaultProxy:
    """Reverse proxy on ``host`` (127.0.0.1) in front of ``upstream``, applying ``fault``.

    ``stats`` counts requests per kind and how many answers the fault actually changed, so a run
    can tell a detected fault from one that never fired.
    """

    def __init__(self, upstream: str, fault: str | Fault | None = None, host: str = "127.0.0.1",
                 port: int = 0, read_timeout: float = 1800.0):
        self.upstream = upstream.rstrip("/")
        self.fault = FAULTS[fault] if isinstance(fault, str) else (fault or FAULTS["control_passthrough"])
        self.host = host
        self.port = port
        self.read_timeout = read_timeout
        self.state: dict = {}
        self.stats: dict[str, int] = {"requests": 0, "mutated": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runner = None
        self._session = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---- life
    def start(self) -> "FaultProxy":
        self._thread = threading.Thread(target=self._run, name=f"faultproxy-{self.fault.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error:
            raise RuntimeError(f"fault proxy did not start: {self._error}")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or not loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            fut.result(timeout=15)
        except Exception:  # noqa: BLE001 - stopping must not raise
            pass
        loop.call_soon_threadsafe(loop.stop)
        if self._thread:
            self._thread.join(timeout=15)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _serve(self) -> None:
        import aiohttp
        from aiohttp import web

        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=self.read_timeout),
            auto_decompress=False)
        app = web.Application(client_max_size=1 << 31)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                      shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()

    # ---- requests
    async def _handle(self, request):
        from aiohttp import web

        raw = await request.read()
        kind = route(request.method, request.path)
        body: Any = None
        if raw and kind in ("chat", "messages"):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        stream = isinstance(body, dict) and body.get("stream") is True
        self.stats["requests"] += 1
        self.stats[kind] = self.stats.get(kind, 0) + 1
        f = self.fault
        if f.respond is not None:
            ctx = RespondContext(request, kind, stream, body, self.state, forward=functools.partial(self.forward, request))
            resp = await f.respond(ctx)
            if resp is not None:
                self.stats["mutated"] += 1
                return resp
        applies = f.applies(body) if kind in ("chat", "messages") else f.when is None
        if f.request is not None and kind == "chat" and isinstance(body, dict) and applies:
            body = f.request(request.path, body)
            raw = json.dumps(body).encode()
            self.stats["mutated"] += 1
        up = await self.forward(request, raw)
        if isinstance(up, web.Response):
            return up
        async with up:
            out_headers = passthrough_headers(up)
            if up.status != 200 and f.error is not None and applies:
                text = (await up.read()).decode("utf-8", errors="replace")
                status, new = f.error(up.status, text)
                if (status, new) != (up.status, text):
                    self.stats["mutated"] += 1
                return web.Response(status=status, body=new.encode(), headers=out_headers)
            if up.status != 200 or not applies or not f.touches(kind, stream):
                resp = web.StreamResponse(status=up.status, headers=out_headers)
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
            text = (await up.read()).decode("utf-8", errors="replace")
        new = self.mutate(kind, stream, text)
        if new != text:
            self.stats["mutated"] += 1
        return web.Response(status=200, body=new.encode(), headers=out_headers)

    async def forward(self, request, raw: bytes):
        """``request`` (its body ``raw``) sent upstream: the upstream response, or a 502 response
        when the upstream cannot be reached (a real gateway's answer). The main path and the
        faults' ``respond`` hooks (``RespondContext.forward``) both send through it."""
        import aiohttp
        from aiohttp import web

        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers["Accept-Encoding"] = "identity"
        url = self.upstream + request.path_qs
        try:
            try:
                return await self._session.request(request.method, url, data=raw or None, headers=headers)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                # a pooled keep-alive connection the upstream closed just before reuse (seen at 64
                # requests in flight): one fresh attempt, so the proxy adds no fault of its own
                return await self._session.request(request.method, url, data=raw or None, headers=headers)
        except Exception as exc:  # noqa: BLE001 - an unreachable upstream is a 502, as in a real gateway
            return web.Response(status=502, text=f"fault proxy: upstream unreachable: {exc}")

    def mutate(self, kind: str, stream: bool, text: str) -> str:
        """Apply the fault to one upstream answer (text in, text out); used by tests on recordings."""
        return apply(self.fault, kind, stream, text, self.state)
