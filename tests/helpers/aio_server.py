"""An aiohttp application on 127.0.0.1 in a thread of its own: the upstreams the project's tests put
behind a real FaultProxy (recorded answers, scripted answers)."""
from __future__ import annotations

import asyncio
import threading


class ThreadedApp:
    """``with ThreadedApp(handle) as app:`` serves every method and path with ``handle`` (an async
    aiohttp handler) at ``app.url`` until the block ends."""

    def __init__(self, handle):
        self.handle = handle
        self.url = ""

    def __enter__(self):
        from aiohttp import web

        ready = threading.Event()

        def run():
            loop = asyncio.new_event_loop()
            self.loop = loop
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self.handle)
            self.runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
            ready.set()
            loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        assert ready.wait(10)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
