"""What a gateway in front of a deployment changes, for the attach path's own tests.

Not engine defects: most GPU sign-offs attach to a deployment behind a gateway, which may hide
``/metrics`` or serve several models. The harness must then say what it could not see (speculative
decoding unobserved, never assumed) and talk to the row's own model, never the first listed.

* ``gateway_metrics_refused``: ``GET /metrics`` answers 404 (the counters cannot be seen);
* ``gateway_second_model(served)`` (a test aid, like ``catalogue.leak_secret``): ``/v1/models``
  lists another model first, and requests naming it are refused as vLLM refuses an unknown model.

aiohttp is imported inside the hooks, which run only in the proxy's server.
"""
from __future__ import annotations

from .registry import Fault, RespondContext, fault

OTHER_MODEL = "other-model"


async def _metrics_refused(ctx: RespondContext):
    from aiohttp import web

    if ctx.kind != "metrics":
        return None
    return web.Response(status=404, text="Not Found (the gateway does not route /metrics)")


fault("gateway_metrics_refused", "a gateway that refuses GET /metrics (404): the engine's counters cannot be seen",
      "attached deployments behind a gateway", respond=_metrics_refused)


def gateway_second_model(served: str, other: str = OTHER_MODEL) -> Fault:
    """A gateway serving ``other`` beside ``served``, listed first in ``/v1/models``."""

    async def respond(ctx: RespondContext):
        from aiohttp import web

        path = ctx.request.path.rstrip("/")
        if ctx.request.method == "GET" and path == "/v1/models":
            return web.json_response({"object": "list", "data": [
                {"id": other, "object": "model", "owned_by": "gateway", "root": other, "max_model_len": 4096},
                {"id": served, "object": "model", "owned_by": "gateway", "root": served}]})
        if isinstance(ctx.body, dict) and ctx.body.get("model") == other:
            return web.json_response({"error": {"message": f"The model `{other}` does not exist.", "type": "NotFoundError",
                                                "code": 404}}, status=404)
        return None

    return Fault("gateway_second_model", f"/v1/models lists {other!r} before {served!r}", "multi-model gateways",
                 respond=respond)
