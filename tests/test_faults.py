"""The fault catalogue and the fault proxy, without an engine.

* Every proxy rewrite, applied to answers recorded from the reference engine
  (fixtures/faultproxy_recordings.jsonl.gz, ``python -m glmverify.faults record``), produces the
  defect it names, as the harness's own parsers (glmverify.chat) see it; controls change nothing
  a client may notice.
* The catalogue (fixtures/faults.yaml) is well formed; misconfigured launches derive the intended
  one-row matrix; the template variants really change the template.
* End to end on a replay upstream (recorded answers served by a tiny server): the proxy over HTTP,
  a real ``pytest suites/test_reasoning_split.py --endpoint`` run and the catalogue's verdict,
  for a control and a few faults. The real-engine catalogue is ``make faults``.
* The packages' seams: expansion and selection (``faults.plan``), the results files
  (``faults.report``), the hooks a fault touches, no aiohttp at import, and each package's
  modules importing only the ones below them.
"""
from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml

from glmverify import faultproxy as fp
from glmverify import faults
from glmverify.chat import StreamAssembler, parse_completion
from glmverify.client import parse_prometheus
from glmverify.matrix import load
from helpers.procs import alive, descendants

TOOLS = json.loads((Path(__file__).resolve().parent.parent / "suites" / "cases" / "tools.json").read_text())
REC = {d["id"]: d for d in faults.load_recordings()}


def assemble(text: str):
    asm = StreamAssembler()
    for line in text.splitlines():
        asm.feed_line(line)
    return asm.result()


def result(rec_id: str, fault: str | fp.Fault | None = None):
    """The recorded answer, rewritten by ``fault``, as the harness parses it."""
    d = REC[rec_id]
    text = d["body"] if fault is None else fp.apply(fp.FAULTS[fault] if isinstance(fault, str) else fault,
                                                    d["kind"], d["stream"], d["body"])
    return assemble(text) if d["stream"] else parse_completion(json.loads(text))


BOTH = ["nonstream", "stream"]


def test_recordings_are_conforming():
    for mode in BOTH:
        r = result(f"chat-reasoning-{mode}")
        assert r.reasoning and r.content and not r.problems and r.finish_reason == "stop", mode
        t = result(f"chat-tools-{mode}")
        assert [c.name for c in t.tool_calls] == ["get_weather", "get_time"] and t.finish_reason == "tool_calls"
        assert t.tool_calls[0].parsed() == {"city": "Tokyo", "days": 2} and not t.problems
        e = result(f"chat-exact_string-{mode}")
        assert e.tool_calls[0].parsed() == {"text": "  two leading spaces  "}


@pytest.mark.parametrize("mode", BOTH)
def test_controls_change_nothing_a_client_sees(mode):
    for rec in ("chat-reasoning", "chat-tools", "chat-exact_string"):
        base = result(f"{rec}-{mode}")
        for f in ("control_passthrough", "control_rechunk"):
            got = result(f"{rec}-{mode}", f)
            assert (got.content, got.reasoning, got.finish_reason, got.problems) == \
                   (base.content, base.reasoning, base.finish_reason, base.problems), (rec, f)
            assert [(c.id, c.name, c.arguments) for c in got.tool_calls] == [(c.id, c.name, c.arguments) for c in base.tool_calls]
    if mode == "stream":
        before = REC["chat-tools-stream"]["body"].count("data:")
        after = fp.apply(fp.FAULTS["control_rechunk"], "chat", True, REC["chat-tools-stream"]["body"]).count("data:")
        assert after < before / 4, (before, after)  # really re-chunked


@pytest.mark.parametrize("mode", BOTH)
@pytest.mark.parametrize("fault", ["reasoning_renamed", "reasoning_dropped"])
def test_reasoning_field_faults(fault, mode):
    r = result(f"chat-reasoning-{mode}", fault)
    assert r.reasoning is None and r.content
    text = fp.apply(fp.FAULTS[fault], "chat", mode == "stream", REC[f"chat-reasoning-{mode}"]["body"])
    assert ('"reasoning_text"' in text) == (fault == "reasoning_renamed")


@pytest.mark.parametrize("mode", BOTH)
def test_think_tag_in_content(mode):
    r = result(f"chat-reasoning-{mode}", "think_tag_in_content")
    assert r.content.startswith("</think>") and r.reasoning


@pytest.mark.parametrize("mode", BOTH)
def test_tool_markup_in_content(mode):
    r = result(f"chat-tools-{mode}", "tool_markup_in_content")
    assert not r.tool_calls and r.finish_reason == "stop" and not r.problems
    assert r.content.endswith("<tool_call>get_weather<arg_key>city</arg_key><arg_value>Tokyo</arg_value>"
                              "<arg_key>days</arg_key><arg_value>2</arg_value></tool_call><tool_call>get_time</tool_call>")


def _valid(call) -> bool:
    try:
        jsonschema.validate(json.loads(call.arguments), TOOLS[call.name]["function"]["parameters"])
        return True
    except (ValueError, jsonschema.ValidationError, KeyError):
        return False


@pytest.mark.parametrize("mode", BOTH)
def test_argument_faults(mode):
    untyped = result(f"chat-tools-{mode}", "args_untyped")
    assert untyped.tool_calls[0].parsed() == {"city": "Tokyo", "days": "2"} and not _valid(untyped.tool_calls[0])
    bad = result(f"chat-tools-{mode}", "args_invalid_json")
    for call in bad.tool_calls:
        with pytest.raises(ValueError):
            json.loads(call.arguments)
    missing = result(f"chat-tools-{mode}", "args_schema_invalid")
    assert missing.tool_calls[0].parsed() == {"days": 2} and not _valid(missing.tool_calls[0])
    stripped = result(f"chat-exact_string-{mode}", "args_whitespace_stripped")
    assert stripped.tool_calls[0].parsed() == {"text": "two leading spaces"}
    named = result(f"chat-tools-{mode}", "unknown_tool_name")
    assert [c.name for c in named.tool_calls] == ["functions.get_weather", "functions.get_time"]


@pytest.mark.parametrize("mode", BOTH)
def test_wrong_finish_reason(mode):
    assert result(f"chat-tools-{mode}", "finish_stop_after_tool_calls").finish_reason == "stop"
    assert result(f"chat-reasoning-{mode}", "finish_stop_after_tool_calls").finish_reason == "stop"
    assert result(f"chat-reasoning-{mode}", "finish_length_after_answer").finish_reason == "length"
    assert result(f"chat-tools-{mode}", "finish_length_after_answer").finish_reason == "tool_calls"


THINK_OFF = {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [TOOLS["get_weather"]],
             "chat_template_kwargs": {"enable_thinking": False}}


@pytest.mark.parametrize("mode", BOTH)
def test_faults_scoped_to_some_requests(mode):
    # thinking off with tools: the calls become raw markup; other requests are left alone
    f = fp.FAULTS["tools_markup_thinking_off"]
    assert f.applies(THINK_OFF) and not f.applies(REC[f"chat-tools-{mode}"]["request"])
    got = result(f"chat-tools-{mode}", f)
    assert not got.tool_calls and "<tool_call>" in got.content and got.finish_reason == "stop"
    # tool_choice none: forwarded as auto, the call left as markup
    f = fp.FAULTS["tool_choice_none_ignored"]
    none = {**THINK_OFF, "tool_choice": "none"}
    assert f.applies(none) and not f.applies(REC[f"chat-tools-{mode}"]["request"])
    assert f.request("/v1/chat/completions", none)["tool_choice"] == "auto"
    # multi-turn: reasoning merged into content behind </think>
    f = fp.FAULTS["multi_turn_unsplit"]
    history = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                            {"role": "user", "content": "c"}]}
    assert f.applies(history) and not f.applies(REC[f"chat-reasoning-{mode}"]["request"])
    base, got = result(f"chat-reasoning-{mode}"), result(f"chat-reasoning-{mode}", f)
    assert not got.reasoning and got.content == base.reasoning + "</think>" + base.content


def test_tool_results_emptied_and_over_limit_500():
    f = fp.FAULTS["tool_results_emptied"]
    body = {"messages": [{"role": "user", "content": "a"}, {"role": "tool", "tool_call_id": "1", "content": "391"}]}
    assert f.applies(body) and not f.applies({"messages": [{"role": "user", "content": "a"}]})
    out = f.request("/v1/chat/completions", body)
    assert out["messages"][1] == {"role": "tool", "tool_call_id": "1", "content": ""} and body["messages"][1]["content"] == "391"
    f = fp.FAULTS["over_limit_500"]
    msg = json.dumps({"error": {"message": "This model's maximum context length is 16384 tokens. However, ..."}})
    assert f.error(400, msg)[0] == 500
    assert f.error(400, '{"error": {"message": "tools must be a list"}}')[0] == 400


def test_when_scopes_the_proxy_over_http(replay):
    with fp.FaultProxy(replay.url, "tools_markup_thinking_off") as proxy:
        plain = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "tools": [TOOLS["get_weather"]], "messages": []})
        assert parse_completion(plain.json()).tool_calls and proxy.stats["mutated"] == 0
        off = httpx.post(proxy.url + "/v1/chat/completions", json=THINK_OFF)
        assert not parse_completion(off.json()).tool_calls and proxy.stats["mutated"] == 1


def test_coverage_lists_checks_no_fault_failed():
    def o(i, failed, detected=True):
        return faults.Outcome(i, "proxy", "reference", ["context_1m"], detected=detected, failed_checks=failed)
    cov = faults.coverage([o("a", ["context_1m::test_needles"]), o("b", ["context_1m::test_max_model_len"], False)],
                          ["context_1m"])
    assert cov == {"context_1m::test_max_model_len": [], "context_1m::test_needles": ["a"],
                   "context_1m::test_over_limit_rejected": []}
    ok, line = faults.summary([o("a", ["context_1m::test_needles"])], cov)
    assert not ok and "checks seen failing: 1/3" in line
    assert "NEVER SEEN FAILING" in faults.coverage_text(cov)


def test_catalogue_names_real_checks(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text(yaml.safe_dump([{"id": "x", "kind": "proxy", "fault": "over_limit_500", "row": "reference",
                                    "suites": ["context_1m"], "expect_failed": ["context_1m"], "checks": ["test_nope"]}]))
    with pytest.raises(faults.CatalogueError, match="no check 'test_nope'"):
        faults.load_catalogue(bad)
    named = {n for c in faults.load_catalogue() for n in c.checks}
    assert {"test_multi_turn_reasoning_sent_back", "test_over_limit_rejected", "test_choice_none"} <= named


def test_stream_chunk_faults():
    base = result("chat-tools-stream")
    dropped = result("chat-tools-stream", "stream_chunk_dropped")
    assert [c.arguments for c in dropped.tool_calls] != [c.arguments for c in base.tool_calls]
    assert not all(_valid(c) for c in dropped.tool_calls) or dropped.tool_calls[0].parsed() != base.tool_calls[0].parsed()
    reordered = result("chat-tools-stream", "stream_chunk_reordered")
    assert not _valid(reordered.tool_calls[0])
    resplit = result("chat-tools-stream", "stream_chunk_resplit")
    assert any("sent twice" in p for p in resplit.problems), resplit.problems
    content = result("chat-reasoning-stream", "stream_content_chunk_dropped")
    assert content.content and content.content != base_content() and not content.problems


def base_content() -> str:
    return result("chat-reasoning-stream").content


def test_stream_framing_faults():
    truncated = result("chat-reasoning-stream", "stream_truncated")
    assert "stream ended without data: [DONE]" in truncated.problems and truncated.finish_reason is None
    malformed = result("chat-reasoning-stream", "stream_malformed_json")
    assert any(p.startswith("malformed JSON in stream event") for p in malformed.problems)
    late = result("chat-reasoning-stream", "reasoning_after_content")
    assert any("reasoning delta after content" in p for p in late.problems)
    assert late.reasoning == result("chat-reasoning-stream").reasoning[:-1] + late.reasoning[-1]


def _blocks(events: list[fp.Event]) -> list[tuple[int, str]]:
    return [(e.data["index"], e.data["content_block"]["type"]) for e in events
            if isinstance(e.data, dict) and e.data.get("type") == "content_block_start"]


def test_anthropic_faults():
    body = json.loads(fp.apply(fp.FAULTS["anthropic_thinking_dropped"], "messages", False, REC["messages-thinking-nonstream"]["body"]))
    assert [b["type"] for b in body["content"]] == ["text"]
    ev = fp.parse_sse(fp.apply(fp.FAULTS["anthropic_thinking_dropped"], "messages", True, REC["messages-tool_use-stream"]["body"]))
    assert _blocks(ev) == [(0, "text"), (1, "tool_use"), (2, "tool_use")]  # well formed, thinking gone
    assert not [e for e in ev if isinstance(e.data, dict) and (e.data.get("delta") or {}).get("type") == "thinking_delta"]
    assert _blocks(fp.parse_sse(REC["messages-tool_use-stream"]["body"])) == [(0, "thinking"), (1, "text"), (2, "tool_use"), (3, "tool_use")]
    mis = fp.parse_sse(fp.apply(fp.FAULTS["anthropic_tool_use_misnumbered"], "messages", True, REC["messages-tool_use-stream"]["body"]))
    assert _blocks(mis) == [(0, "thinking"), (1, "text"), (3, "tool_use"), (4, "tool_use")]
    # every delta and stop moved with its block
    assert {e.data["index"] for e in mis if isinstance(e.data, dict) and e.data.get("type") == "content_block_stop"} == {0, 1, 3, 4}


def _drafts(text: str) -> float | None:
    found = [v for k, v in parse_prometheus(text).items() if k.startswith("vllm:spec_decode_num_drafts_total")]
    return sum(found) if found else None


def test_metrics_faults():
    before, after = REC["metrics-before"]["body"], REC["metrics"]["body"]  # reference-ngram, around a workload
    assert _drafts(after) > _drafts(before) is not None
    missing = fp.apply(fp.FAULTS["spec_metrics_missing"], "metrics", False, after)
    assert _drafts(missing) is None and not [k for k in parse_prometheus(missing) if "spec_decode" in k]
    state: dict = {}
    frozen = [fp.apply(fp.FAULTS["spec_metrics_frozen"], "metrics", False, t, state) for t in (before, after)]
    assert _drafts(frozen[1]) == _drafts(frozen[0]) == _drafts(before)


def test_standin_request_injection():
    hook = fp.FAULTS["standin_skip_think_end"].request
    assert hook("/v1/chat/completions", {"model": "m"})["vllm_xargs"] == {"glm_standin_faults": "skip_think_end"}
    merged = hook("/v1/chat/completions", {"vllm_xargs": {"glm_standin_faults": "wrong_answers", "x": 1}})
    assert merged["vllm_xargs"] == {"glm_standin_faults": "wrong_answers,skip_think_end", "x": 1}


def test_sse_round_trip_is_exact():
    for rid in ("chat-tools-stream", "messages-tool_use-stream"):
        text = REC[rid]["body"]
        assert fp.render_sse(fp.parse_sse(text)).replace(" ", "") == text.replace(" ", "")


# ---- catalogue --------------------------------------------------------------------------------------------
def test_catalogue_is_well_formed():
    cases = faults.load_catalogue()
    kinds = {c.kind for c in cases}
    assert kinds == {"proxy", "standin", "launch"}
    assert len({c.id for c in cases}) == len(cases)
    used = {c.fault for c in cases if c.kind == "proxy"}
    # every response defect of the proxy is in the catalogue (garbage/hang are reliability tests)
    assert {n for n in fp.FAULTS if not n.startswith(("garbage_", "hang", "standin_"))} <= used
    assert all(c.expect_failed or c.id.startswith("control-") for c in cases)


def test_catalogue_rejects_bad_entries(tmp_path):
    bad = tmp_path / "faults.yaml"
    bad.write_text(yaml.safe_dump([
        {"id": "a", "kind": "proxy", "fault": "no_such", "row": "reference", "suites": ["tool_calls"], "expect_failed": ["tool_calls"]},
        {"id": "a", "kind": "launch", "row": "nope", "suites": ["x"], "expect_failed": ["tool_calls"]},
    ]))
    with pytest.raises(faults.CatalogueError) as exc:
        faults.load_catalogue(bad)
    msg = str(exc.value)
    for part in ("unknown proxy fault 'no_such'", "id must be unique", "row 'nope'", "unknown feature 'x'",
                 "must change something", "not all among suites"):
        assert part in msg, part


def test_derive_args():
    args = ["--model", "M", "--tool-call-parser", "glm47", "--enable-auto-tool-choice", "--max-model-len", "16384",
            "--speculative-config", '{"method":"ngram"}', "--enforce-eager"]
    assert faults.derive_args(args, ["--enable-auto-tool-choice"]) == [a for a in args if a != "--enable-auto-tool-choice"]
    assert faults.derive_args(args, ["--tool-call-parser", "--speculative-config"]) == \
        ["--model", "M", "--enable-auto-tool-choice", "--max-model-len", "16384", "--enforce-eager"]
    assert faults.derive_args(args, [], {"--max-model-len": "8192", "--x": "1"})[-7:] == \
        ["--max-model-len", "8192", "--speculative-config", '{"method":"ngram"}', "--enforce-eager", "--x", "1"]


def test_template_variants():
    base = faults.TEMPLATE.read_text()
    no_line = faults.template_variant("no_effort_line")
    assert "Reasoning Effort" in base and "Reasoning Effort:" not in no_line.split("#}", 1)[1]
    reads = faults.template_variant("reads_thinking")
    assert "not enable_thinking" not in reads and "not thinking" in reads
    with pytest.raises(faults.CatalogueError):
        faults.template_variant("no_effort_line", "a template without the line")


def test_derived_matrix_is_one_valid_row(tmp_path):
    cases = {c.id: c for c in faults.load_catalogue()}
    path = faults.derived_matrix(cases["launch-template-no-effort-line"], tmp_path)
    m = load(path)
    assert [r.id for r in m.rows] == ["launch-template-no-effort-line"]
    args = m.rows[0].launch["args"]
    tpl = Path(args[args.index("--chat-template") + 1])
    assert tpl.parent == tmp_path and "Reasoning Effort:" not in tpl.read_text().split("#}", 1)[1]
    spec = load(faults.derived_matrix(cases["launch-spec-decode-off"], tmp_path)).rows[0]
    assert "--speculative-config" not in spec.launch["args"] and spec.expect["draft_tokens"] == 5
    skip = load(faults.derived_matrix(cases["launch-standin-skip-think-end"], tmp_path)).rows[0]
    assert skip.launch["env"]["GLM_STANDIN_FAULTS"] == "skip_think_end"


# ---- end to end on a replay upstream ----------------------------------------------------------------------
class Replay:
    """A stand-in upstream that answers with the recordings (chat: tools recording if tools were
    offered, else the reasoning one), on 127.0.0.1, in a thread."""

    def __init__(self):
        self.proxy = None

    def __enter__(self):
        from aiohttp import web

        async def handle(request):
            path = request.path
            if path == "/health":
                return web.Response(text="")
            if path == "/v1/models":
                return web.json_response({"data": [{"id": "glm-5.2-ref", "owned_by": "vllm", "max_model_len": 16384}]})
            if path == "/version":
                return web.json_response({"version": "0.32.0"})
            if path == "/metrics":
                # it stands for row reference, which runs no speculative decoding: the recorded
                # (reference-ngram) body without its spec-decode counters, or the harness's
                # observed-vs-declared check rightly refuses the endpoint
                return web.Response(text="\n".join(ln for ln in REC["metrics"]["body"].splitlines()
                                                    if "spec_decode" not in ln) + "\n")
            body = await request.json()
            kind = "chat" if path.endswith("/chat/completions") else "messages"
            name = ("tools" if body.get("tools") else "reasoning") if kind == "chat" else ("tool_use" if body.get("tools") else "thinking")
            rec = REC[f"{kind}-{name}-{'stream' if body.get('stream') else 'nonstream'}"]
            ctype = "text/event-stream" if rec["stream"] else "application/json"
            return web.Response(text=rec["body"], content_type=ctype)

        ready = threading.Event()

        def run():
            loop = asyncio.new_event_loop()
            self.loop = loop
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            self.runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
            ready.set()
            loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def replay():
    with Replay() as r:
        yield r


def test_proxy_over_http(replay):
    with fp.FaultProxy(replay.url, "args_untyped") as proxy:
        assert proxy.host == "127.0.0.1"
        r = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "tools": [TOOLS["get_weather"]], "messages": []})
        assert parse_completion(r.json()).tool_calls[0].parsed()["days"] == "2"
        r = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "stream": True, "tools": [1], "messages": []})
        assert r.headers["content-type"].startswith("text/event-stream")
        assert assemble(r.text).tool_calls[0].parsed()["days"] == "2"
        assert httpx.get(proxy.url + "/v1/models").json()["data"][0]["id"] == "glm-5.2-ref"  # passthrough
        assert proxy.stats["mutated"] == 2 and proxy.stats["requests"] == 3


@pytest.mark.parametrize("case_id,fault,expected", [
    ("control-replay", "control_passthrough", []),
    ("replay-think-tag", "think_tag_in_content", ["reasoning_split"]),
    ("replay-stream-truncated", "stream_truncated", ["reasoning_split"]),
    ("replay-reasoning-renamed", "reasoning_renamed", ["reasoning_split"]),
])
def test_catalogue_runner_on_replay(replay, tmp_path, case_id, fault, expected):
    case = faults.FaultCase(id=case_id, kind="proxy", fault=fault, row="reference", suites=["reasoning_split"],
                            expect_failed=expected)
    opts = faults.RunOptions(results=tmp_path, timeout=300)
    out = faults.run_proxy_case(case, replay.url, opts)
    assert out.detected, (out, (tmp_path / case_id / "pytest.log").read_text()[-3000:])
    assert out.observed == {"reasoning_split": "failed" if expected else "verified"}
    if expected:
        assert out.detail
    line = faults.table([out])
    assert case_id in line and ("yes" in line or "pass" in line)


# ---- the runner's command line -----------------------------------------------------------------------------
REPO = Path(__file__).resolve().parent.parent


def test_cli_list_and_bad_catalogue(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "glmverify.faults", "--list"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "proxy-args-untyped" in p.stdout and "launch-spec-decode-off" in p.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("- id: x\n  kind: nope\n")
    p = subprocess.run([sys.executable, "-m", "glmverify.faults", "--catalogue", str(bad)], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "missing keys" in p.stderr
    p = subprocess.run([sys.executable, "-m", "glmverify.faults", "--only", "no-such-fault"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "no such fault" in p.stderr


def test_runner_sigterm_leaves_no_pytest_run(replay, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "glmverify.faults", "--only", "control-passthrough",
                             "--endpoint", f"reference={replay.url}", "--results", str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (descendants(proc.pid) and (tmp_path / "control-passthrough" / "pytest.log").exists()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
        time.sleep(0.2)
    kids = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130, out[-2000:]
    time.sleep(0.5)
    assert not [k for k in kids if alive(k)], "a pytest run of the catalogue survived SIGTERM"


def test_multi_row_entries_expand_per_row(tmp_path):
    """An entry whose row is a list runs once per row; ids after the first carry @ROW."""
    cat = tmp_path / "c.yaml"
    cat.write_text(yaml.safe_dump([{"id": "x", "kind": "proxy", "fault": "over_limit_500", "row": ["reference", "reference-sglang"],
                                    "suites": ["context_1m"], "expect_failed": ["context_1m"]}]))
    cases = faults.load_catalogue(cat)
    assert [(c.id, c.row) for c in cases] == [("x", "reference"), ("x@reference-sglang", "reference-sglang")]
    assert faults.launch_row_id(cases[1]) == "x.reference-sglang"
    cat.write_text(yaml.safe_dump([{"id": "y", "kind": "proxy", "fault": "over_limit_500", "row": ["reference", "nope"],
                                    "suites": ["context_1m"], "expect_failed": ["context_1m"]}]))
    with pytest.raises(faults.CatalogueError, match="row 'nope'"):
        faults.load_catalogue(cat)
    real = faults.load_catalogue()
    assert any(c.row == "reference-sglang" and c.kind == "launch" for c in real)
    assert {c.row for c in real} >= {"reference", "reference-ngram", "reference-sglang"}


def test_engine_coverage_is_per_engine():
    """A fault seen failing a check on vLLM does not cover that check's SGLang branch: SGLang's
    coverage counts only faults run on SGLang rows, over the checks its conforming run ran."""
    from glmverify.matrix import load

    def o(i, row, failed, kind="proxy", passed=(), expect=("reasoning_split",)):
        return faults.Outcome(i, kind, row, list(expect), detected=True, failed_checks=list(failed), passed_checks=list(passed))
    conforming = o("conforming-reference-sglang-1", "reference-sglang", [], kind="conforming", expect=(),
                   passed=["reasoning_split::test_split", "reasoning_split::test_stream_matches_nonstream"])
    outs = [conforming, o("a", "reference", ["reasoning_split::test_split", "reasoning_split::test_stream_matches_nonstream"]),
            o("b@reference-sglang", "reference-sglang", ["reasoning_split::test_split"])]
    cov = faults.engine_coverage(outs, load())
    assert cov["sglang: reasoning_split::test_split"] == ["b@reference-sglang"]
    assert cov["sglang: reasoning_split::test_stream_matches_nonstream"] == []  # only vLLM's branch was seen failing
    assert "sglang: effort_levels::test_rendered_system_line" not in cov  # did not run on SGLang: no branch there
    assert cov["vllm: reasoning_split::test_stream_matches_nonstream"] == ["a"]
    assert "vllm: effort_levels::test_rendered_system_line" in cov
    ok, line = faults.summary(outs, cov)
    assert not ok and "checks seen failing" in line
    assert faults.engine_coverage([], load())["sglang: sglang conforming run"] == []  # no conforming run: not proven
    only = faults.engine_coverage(outs, load(), {"reference-sglang"})  # --row reference-sglang
    assert only and all(k.startswith("sglang: ") for k in only)


def test_low_is_high_template_variant():
    t = faults.template_variant("low_is_high")
    assert "reasoning_effort in ('high', 'low')" in t and t != faults.TEMPLATE.read_text()


# ---- the packages' seams ------------------------------------------------------------------------------------
def test_expand_and_select_cases():
    from glmverify.faults import plan

    entry = {"id": "x", "kind": "proxy", "fault": "over_limit_500", "row": ["reference", "reference-sglang"],
             "suites": ["context_1m"], "expect_failed": ["context_1m"]}
    cases = plan.expand(entry)
    assert [(c.id, c.row) for c in cases] == [("x", "reference"), ("x@reference-sglang", "reference-sglang")]
    assert [c.id for c in plan.expand({**entry, "row": "reference-ngram"})] == ["x"]
    more = cases + plan.expand({**entry, "id": "y-launch", "kind": "launch", "row": "reference"})
    assert [c.id for c in plan.select(more, ["x*"])] == ["x", "x@reference-sglang"]
    assert [c.id for c in plan.select(more, ["x", "y-launch"], rows=["reference"])] == ["x", "y-launch"]
    assert [c.id for c in plan.select(more, kinds=["launch"])] == ["y-launch"]
    assert plan.select(more) == more
    assert plan.unknown_ids(more, ["x", "nope", "z*"]) == ["nope"]


def test_results_files(tmp_path):
    from glmverify.faults import report

    outs = [faults.Outcome("a", "proxy", "reference", ["context_1m"], {"context_1m": "failed"}, detected=True,
                           seconds=3.0, failed_checks=["context_1m::test_needles"]),
            faults.Outcome("control-x", "proxy", "reference", [], {"context_1m": "verified"}, detected=True)]
    cov = {"vllm: context_1m::test_needles": ["a"], "vllm: context_1m::test_max_model_len": []}
    ok, line = report.write_results(tmp_path, outs, cov, 120.0)
    assert not ok and "faults detected: 1/1" in line and "checks seen failing: 1/2" in line
    doc = json.loads((tmp_path / "faults.json").read_text())
    assert set(doc) == {"ok", "seconds", "summary", "outcomes", "coverage"} and doc["coverage"] == cov
    assert [o["id"] for o in doc["outcomes"]] == ["a", "control-x"] and doc["summary"] == line
    md = (tmp_path / "faults.md").read_text()
    assert "| a | proxy | context_1m | context_1m=failed | yes |" in md
    assert "| vllm: context_1m::test_max_model_len | **never** |" in md and md.endswith("total 2.0 min\n")
    text = report.console_text(outs, cov)
    assert "all 1 verified" in text and "NEVER SEEN FAILING" in text
    assert report.write_results(tmp_path, outs[:1], None, 1.0)[0]  # a selection: no coverage asked


def test_fault_answer_hooks():
    f = fp.FAULTS["spec_metrics_missing"]
    assert f.answer_hook("metrics", False) is f.metrics and f.touches("metrics", False)
    assert not f.touches("chat", False) and not f.touches("metrics", True)
    rechunk = fp.FAULTS["control_rechunk"]
    assert rechunk.touches("chat", True) and not rechunk.touches("chat", False)


def test_packages_load_without_aiohttp():
    """aiohttp (the fault tooling's server) is imported only when a proxy serves: the catalogue,
    its CLI and the offline replay do not need it."""
    import subprocess
    import sys

    code = ("import sys, glmverify.faults, glmverify.faultproxy; "
            "print(sorted(m for m in ('aiohttp', 'torch', 'vllm') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "[]", (p.stdout, p.stderr[-2000:])


# each package's modules, bottom up, as their docstrings list them: a module imports only those before it
LAYERS = {
    "faultproxy": ["sse", "bodies", "registry", "chat_faults", "anthropic_faults", "metrics_faults", "standin_faults",
                   "reliability_faults", "catalogue", "server", "cli"],
    "faults": ["model", "templates", "plan", "catalogue", "judge", "pytest_runs", "runner", "coverage", "report",
               "recordings", "cli"],
}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_package_modules_import_only_downward(package):
    import ast

    root = REPO / "glmverify" / package
    order = LAYERS[package]
    assert sorted(order) == sorted(p.stem for p in root.glob("*.py") if not p.stem.startswith("__"))
    for n, name in enumerate(order):
        tree = ast.parse((root / f"{name}.py").read_text())
        used = {(node.module or "").split(".")[0] or alias.name
                for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1
                for alias in node.names}
        assert used <= set(order[:n]), f"{package}.{name} imports {sorted(used - set(order[:n]))} from above it"
