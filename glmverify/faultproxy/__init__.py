"""A response-mutating reverse proxy: one conforming engine behind it, a known defect in front.

Every check of the suites must be able to fail. ``FaultProxy(upstream, "args_untyped")`` listens on
127.0.0.1, forwards each request to a conforming engine and rewrites what comes back the way a
real engine bug would (the faults are taken from bug reports: see ``FAULTS``). The suites then run
against the proxy with ``--endpoint`` and must report the feature ``failed``; ``glmverify.faults``
does that for the whole catalogue (``fixtures/faults.yaml``).

Modules, from the bottom up (none imports one above it):

* ``sse``: server-sent events parsed into ``Event`` values and rendered back;
* ``bodies``: reading and rewriting chat completion bodies and stream chunks (choices, deltas,
  tool-call arguments, finish reasons, GLM-5.2 tool-call markup);
* ``registry``: the ``Fault`` hooks, the ``FAULTS`` registry, ``apply`` (one answer rewritten,
  no server needed: the offline tests replay recorded answers through it);
* ``chat_faults``, ``anthropic_faults``, ``metrics_faults``, ``standin_faults``,
  ``reliability_faults``: the fault definitions, one module per endpoint or purpose;
* ``catalogue``: imports every definition module (``FAULTS`` is then complete) and the test aid
  ``leak_secret``;
* ``server``: ``FaultProxy``, the aiohttp server (aiohttp is imported only there and in the
  reliability hooks, when a proxy runs);
* ``cli``: ``python -m glmverify.faultproxy serve|list`` and ``proxy_row`` (a matrix row whose
  engine is the proxy, launched as a process).
"""
from .bodies import REASONING_FIELDS, glm_markup, map_args_json, rewrite_args, rewrite_stream_args
from .catalogue import FAULTS, STANDIN_FIELDS, STANDIN_XARGS_KEY, leak_secret, standin_request
from .cli import main, proxy_row
from .registry import Fault, RespondContext, apply, fault
from .reliability_faults import HUGE_BYTES
from .registry import HOP_HEADERS
from .server import FaultProxy, route
from .sse import DONE, Event, parse_sse, render_sse

__all__ = ["DONE", "Event", "FAULTS", "Fault", "FaultProxy", "HOP_HEADERS", "HUGE_BYTES", "REASONING_FIELDS",
           "RespondContext", "STANDIN_FIELDS", "STANDIN_XARGS_KEY", "apply", "fault", "glm_markup", "leak_secret",
           "main", "map_args_json", "parse_sse", "proxy_row", "render_sse", "rewrite_args", "rewrite_stream_args",
           "route", "standin_request"]
