"""What a fault is: the ``Fault`` hooks, the ``FAULTS`` registry and ``apply`` (one answer rewritten).

Kinds of hook (all optional; each returns the rewritten value):

* ``chat`` / ``chat_stream``: rewrite a ``/v1/chat/completions`` answer (the JSON body, or the list
  of SSE events of a stream, which the proxy buffers, rewrites and replays);
* ``messages`` / ``messages_stream``: the same for Anthropic ``/v1/messages``;
* ``metrics``: rewrite ``/metrics`` (Prometheus text; ``state`` persists across requests);
* ``request``: rewrite the request before it is forwarded (e.g. ask the GLM-5.2 stand-in for one
  of its scripted faults through ``vllm_xargs``, so no relaunch is needed);
* ``respond``: replace the engine entirely (garbage bodies, never-ending streams, a hang), for
  the harness's own reliability tests; it gets a ``RespondContext`` and returns an aiohttp
  response, or None to let the request through;
* ``error``: rewrite a non-200 answer (status and body);
* ``when``: a predicate on the request body; the fault's request and answer rewrites apply only to
  requests it accepts (a defect that shows only on multi-turn, thinking-off or ``tool_choice:
  none`` requests).

``fault(...)`` defines and registers one; the definition modules (``*_faults.py``) call it at
import and ``catalogue`` imports them all, so ``FAULTS`` is complete once the package is
imported. ``apply`` works on text with no server: the offline tests replay recorded answers
through it, and the proxy calls it for every answer it rewrites.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from .sse import Event, parse_sse, render_sse

Chat = Callable[[dict], dict]
Stream = Callable[[list[Event]], list[Event]]

#: headers that belong to one connection, never forwarded (either way) by the proxy or its hooks
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive",
               "content-encoding", "accept-encoding", "upgrade", "proxy-connection", "te", "trailer"}


#: Where a fault draws which requests it hits (a hash of the question or body), this is mixed into the
#: hash. Unset (the catalogue's runs), a fault hits the same questions every run; bench/verdicts.py
#: sets a new value per run, so its runs plant each fault on other questions and are not one
#: outcome repeated.
SALT_ENV = "GLMVERIFY_FAULT_SALT"


def selection_salt(kind: str) -> str:
    """``kind`` (the fault's own salt), plus ``SALT_ENV`` when it is set (read per request)."""
    extra = os.environ.get(SALT_ENV, "").strip()
    return f"{kind}/{extra}" if extra else kind


def passthrough_headers(response: Any) -> dict:
    """An upstream response's headers the proxy passes on to its client."""
    return {k: v for k, v in response.headers.items() if k.lower() not in HOP_HEADERS}


@dataclass
class RespondContext:
    """What a ``respond`` hook sees of one request."""

    request: Any  # aiohttp.web.Request
    kind: str  # chat, messages, metrics or other (see server.route)
    stream: bool
    body: Any  # the parsed JSON body, or None
    state: dict = field(default_factory=dict)  # the proxy's state, shared by its requests
    # ``await forward(raw)`` sends the request upstream as the proxy does (a dropped keep-alive
    # retried once): the upstream response (``async with`` it), or a 502 ``web.Response`` to return
    forward: Callable[[bytes], Awaitable[Any]] | None = None


@dataclass
class Fault:
    """A named defect. Every hook is optional; a hook returns the rewritten value."""

    name: str
    description: str
    source: str = ""  # the bug report it imitates
    chat: Chat | None = None
    chat_stream: Stream | None = None
    messages: Chat | None = None
    messages_stream: Stream | None = None
    metrics: Callable[[str, dict], str] | None = None
    request: Callable[[str, dict], dict] | None = None
    respond: Callable[[RespondContext], Awaitable[Any]] | None = None
    error: Callable[[int, str], tuple[int, str]] | None = None
    when: Callable[[dict], bool] | None = None

    def applies(self, body: Any) -> bool:
        """Whether this fault's rewrites apply to a request with ``body`` (parsed JSON or None)."""
        return self.when is None or (isinstance(body, dict) and bool(self.when(body)))

    def answer_hook(self, kind: str, stream: bool) -> Callable | None:
        """The hook rewriting an answer of ``kind`` (chat, messages, metrics), stream or not."""
        return {("chat", False): self.chat, ("chat", True): self.chat_stream,
                ("messages", False): self.messages, ("messages", True): self.messages_stream,
                ("metrics", False): self.metrics}.get((kind, stream))

    def touches(self, kind: str, stream: bool) -> bool:
        return self.answer_hook(kind, stream) is not None


FAULTS: dict[str, Fault] = {}  # name -> fault, in definition order (the listing's order)


def fault(name: str, description: str, source: str = "", **hooks) -> Fault:
    """Define the fault ``name`` and register it in ``FAULTS`` (a name may be defined once)."""
    f = Fault(name, description, source, **hooks)
    if name in FAULTS:
        raise ValueError(f"fault {name!r} defined twice")
    FAULTS[name] = f
    return f


def apply(f: Fault, kind: str, stream: bool, text: str, state: dict | None = None) -> str:
    """The fault's rewrite of one answer of ``kind`` (chat, messages, metrics)."""
    state = {} if state is None else state
    if kind == "metrics":
        return f.metrics(text, state) if f.metrics else text
    hook = f.answer_hook(kind, stream)
    if hook is None:
        return text
    if stream:
        return render_sse(hook(parse_sse(text)))
    try:
        body = json.loads(text)
    except ValueError:
        return text
    return json.dumps(hook(body), ensure_ascii=False)
