"""``standin_no_tool_call_auto`` through a real FaultProxy, in front of an in-process upstream (no engine).

The fault asks the GLM-5.2 stand-in for its ``no_tool_call`` behaviour on requests whose
``tool_choice`` leaves the call to the model (auto, or absent) and leaves every other request as
sent. The upstream here plays the stand-in's part of that contract (its script is tested in
tests/integration/test_standin_script.py): asked for ``no_tool_call`` through either engine's
extra-arguments field it answers the recorded prose answer, otherwise the recorded tool calls
(fixtures/faultproxy_recordings.jsonl.gz). So the client sees, for an auto case, a well-formed
prose answer the suite's invariants accept and its calls rate counts as a miss; for required, a
named function and ``none``, the request reaches the engine byte for byte and the answer comes back
unchanged. No engine runs; the catalogue entry and the hook offline are in
tests/unit/test_standin_auto_fault.py (the unit tier has no aiohttp).
"""
from __future__ import annotations

import copy
from pathlib import Path

import httpx
import pytest

from glmverify import behaviour, faults
from glmverify import faultproxy as fp
from helpers.aio_server import ThreadedApp
from helpers.suite_module import load_suite
from helpers.wire import parse_answer

REC = {d["id"]: d for d in faults.load_recordings()}
FAULT = "standin_no_tool_call_auto"
ABSENT = object()  # no tool_choice in the request: auto by default


SUITE = load_suite("test_tool_calls.py", "tool_calls_suite_auto")


def _asked_no_call(body: dict) -> bool:
    return any("no_tool_call" in str((body.get(f) or {}).get(fp.STANDIN_XARGS_KEY, "")).split(",")
               for f in fp.STANDIN_FIELDS)


@pytest.fixture(scope="module")
def upstream():
    """The stand-in's contract, scripted: prose when asked for no_tool_call, else the recorded calls;
    every body it received kept in ``app.seen``."""
    from aiohttp import web

    seen: list[dict] = []

    async def handle(request):
        body = await request.json()
        seen.append(body)
        rec = REC[f"chat-{'reasoning' if _asked_no_call(body) else 'tools'}-{'stream' if body.get('stream') else 'nonstream'}"]
        return web.Response(text=rec["body"], content_type="text/event-stream" if rec["stream"] else "application/json")

    with ThreadedApp(handle) as app:
        app.seen = seen
        yield app


def _request(case: dict, stream: bool, choice=None) -> dict:
    req = {"model": "glm-5.2-ref", **SUITE._request(case), "stream": stream}
    if choice is ABSENT:
        req.pop("tool_choice")
    elif choice is not None:
        req["tool_choice"] = choice
    return req


def _through(upstream, req: dict):
    """(the body the upstream received, the answer text the client got, the proxy's stats)."""
    with fp.FaultProxy(upstream.url, FAULT) as proxy:
        r = httpx.post(proxy.url + "/v1/chat/completions", json=req, timeout=30)
        assert r.status_code == 200, r.text
        return upstream.seen[-1], r.text, dict(proxy.stats)


def _parse(text: str, stream: bool, req: dict):
    return parse_answer(text, stream, req)


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
@pytest.mark.parametrize("choice", ["auto", ABSENT], ids=["auto", "absent"])
def test_auto_requests_are_answered_in_prose(upstream, stream, choice):
    case = SUITE.BY_ID["auto-parallel"]  # what the recorded calls answer: get_weather Tokyo 2 and get_time
    req = _request(case, stream, choice)
    got, text, stats = _through(upstream, req)
    assert _asked_no_call(got) and all(got[f][fp.STANDIN_XARGS_KEY] == "no_tool_call" for f in fp.STANDIN_FIELDS)
    assert {k: v for k, v in got.items() if k not in fp.STANDIN_FIELDS} == req and stats["mutated"] == 1
    res = _parse(text, stream, req)
    assert not res.tool_calls and res.finish_reason == "stop" and (res.content or "").strip()
    SUITE.invariants(res, case)  # every invariant holds: only the choice to call changed
    judged = behaviour.judge(case, res, SUITE.SCHEMAS)
    assert judged.calls is False and "expected a tool call, got none" in judged.note


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
@pytest.mark.parametrize("case_id, choice", [("required", None), ("named-function", None), ("auto-parallel", "none")],
                         ids=["required", "named", "none"])
def test_forced_and_none_requests_pass_untouched(upstream, stream, case_id, choice):
    case = SUITE.BY_ID[case_id]
    req = _request(case, stream, choice)
    got, text, stats = _through(upstream, req)
    assert got == req and stats["mutated"] == 0  # forwarded as sent: no stand-in fault asked for
    rec = REC[f"chat-tools-{'stream' if stream else 'nonstream'}"]
    assert text == rec["body"]  # and the engine's answer comes back unchanged
    if choice is None:  # a forced case: its call is there and counts as one
        res = _parse(text, stream, req)
        assert res.tool_calls and behaviour.judge(case, res, SUITE.SCHEMAS).calls is True


def test_upstream_without_the_fault_calls(upstream):
    """The control: the same auto request without the fault gets the recorded calls (the test above can fail)."""
    case = SUITE.BY_ID["auto-parallel"]
    req = _request(case, False)
    with fp.FaultProxy(upstream.url, "control_passthrough") as proxy:
        text = httpx.post(proxy.url + "/v1/chat/completions", json=req, timeout=30).text
    assert not _asked_no_call(copy.deepcopy(upstream.seen[-1]))
    assert behaviour.judge(case, _parse(text, False, req), SUITE.SCHEMAS).calls is True
