"""Engine invariants (glmverify/invariants.py) and the per-check ledger (glmverify/ledger.py).

The conforming answers are the reference engine's recorded wire answers (vLLM 0.32 serving the
stand-in: fixtures/faultproxy_recordings.jsonl.gz): they pass every invariant, text accounting
included, with the stand-in's tokenizer (byte-level, no merges: a text's tokens are its UTF-8
bytes, which ``byte_tokens`` counts without the optional ``tokenizers`` package). Each defect is
planted into one of them (a re-sent delta, lost text, a special token, ...) and must be named by
its code. The plugin hook is driven as pytest drives it, around a test body whose own assertions
pass, with the real ``openai`` client reading recorded bodies through an httpx transport.
"""
from __future__ import annotations

import copy
import json

import httpx
import pytest

from glmverify import degeneration, plugin
from glmverify.anthropic_stream import MessagesStreamReader, read_lines
from glmverify.chat import Chat, ChatResult, StreamAssembler, ToolCall, parse_completion
from glmverify.faults.recordings import load_recordings
from glmverify.invariants import (Violation, answer_violations, finish_violations, messages_violations,
                                  special_token_violations, text_accounting, text_fields)
from glmverify.ledger import Ledger, TokenCounter, ledger_scope, record_chat
from glmverify.session import LiveEngine
from helpers.recorded_child import resent_after, run_child

REC = {r["id"]: r for r in load_recordings()}
CHAT_IDS = [i for i, r in REC.items() if r["kind"] == "chat"]


def byte_tokens(texts: list[str]) -> list[int]:
    """The stand-in tokenizer's count of a text without markup: one token per UTF-8 byte."""
    return [len(t.encode("utf-8")) for t in texts]


BYTES = TokenCounter("stand-in bytes", byte_tokens, remote=False)


def lines(rec_id: str) -> list[str]:
    return REC[rec_id]["body"].split("\n")


def stream_of(body_lines: list[str], request: dict | None = None) -> ChatResult:
    asm = StreamAssembler(request or REC["chat-reasoning-stream"]["request"])
    for line in body_lines:
        asm.feed_line(line)
    return asm.result()


def answer(rec_id: str) -> ChatResult:
    r = REC[rec_id]
    return stream_of(lines(rec_id), r["request"]) if r["stream"] else parse_completion(json.loads(r["body"]), r["request"])


def judge(res: ChatResult, counter: TokenCounter | None = BYTES) -> list[Violation]:
    ledger = Ledger(counter=counter, context_window=1_048_576)
    ledger.add_chat(res, res.request, 0)
    bad = ledger.check()
    return bad[0].violations if bad else []


def codes(violations) -> set[str]:
    return {v.code for v in violations}


def data_lines(rec_id: str, key: str) -> list[int]:
    """Indexes of the recorded stream's lines whose delta carries ``key``."""
    return [i for i, line in enumerate(lines(rec_id)) if line.startswith("data: {") and f'"{key}":' in line
            and json.loads(line[6:])["choices"] and json.loads(line[6:])["choices"][0]["delta"].get(key)]


# ---- conforming answers pass --------------------------------------------------------------------
@pytest.mark.parametrize("rec_id", CHAT_IDS)
def test_recorded_answers_conform(rec_id):
    res = answer(rec_id)
    assert judge(res) == [] and judge(res, None) == []
    _, rec = text_accounting(res, byte_tokens(__import__("glmverify.invariants").invariants.delivered(res)[0]), "b")
    assert rec["delivered_tokens"] + rec["markup_tokens"][0] <= rec["billed"] <= rec["delivered_tokens"] + rec["markup_tokens"][1]


def judge_messages(out, counter: TokenCounter | None = BYTES) -> list[Violation]:
    ledger = Ledger(counter=counter)
    ledger.add_messages(out)
    bad = ledger.check()
    return bad[0].violations if bad else []


@pytest.mark.parametrize("rec_id", ["messages-thinking-stream", "messages-tool_use-stream"])
def test_recorded_messages_streams_conform(rec_id):
    out = read_lines(lines(rec_id))
    assert messages_violations(out) == [] and judge_messages(out) == [] and judge_messages(out, None) == []


def test_messages_stream_resending_thinking_is_caught_by_text_accounting():
    body = lines("messages-thinking-stream")
    i = next(n for n, x in enumerate(body) if '"thinking_delta"' in x)
    # 16 deltas of 3 lines each sent again (8 would be within the 1% + 1 tolerance at 790 tokens)
    resent = body[:i + 3 * 16] + body[i:i + 3 * 16] + body[i + 3 * 16:]
    out = read_lines(resent)
    assert out.problems == []
    got = judge_messages(out)
    assert codes(got) == {"text.accounting"} and "above the 790 completion tokens billed" in got[0]


# ---- planted defects ------------------------------------------------------------------------------
def test_resent_delta_is_caught_by_text_accounting():
    """A stream that re-sends six content deltas parses cleanly: only the accounting sees it."""
    body = lines("chat-reasoning-stream")
    i = data_lines("chat-reasoning-stream", "content")[10]
    resent = body[:i + 12] + body[i:i + 12] + body[i + 12:]  # 6 events, each followed by its blank line
    res = stream_of(resent)
    assert res.problems == [] and len(res.content) > len(answer("chat-reasoning-stream").content)
    got = judge(res)
    assert codes(got) == {"text.accounting"} and "above the 247 completion tokens billed" in got[0]


def test_lost_text_is_caught_by_text_accounting_and_the_byte_bound():
    body = lines("chat-reasoning-stream")
    drop = set(data_lines("chat-reasoning-stream", "reasoning")[20:120])
    res = stream_of([line for i, line in enumerate(body) if i not in drop])
    assert res.problems == []
    assert codes(judge(res)) == {"text.accounting"} and "far below" in judge(res)[0]
    assert codes(judge(res, None)) == {"text.accounting"}  # no tokenizer: a token is at least a byte


def test_special_token_in_content_reasoning_name_and_arguments():
    body = lines("chat-tools-stream")
    i = data_lines("chat-tools-stream", "content")[3]
    planted = body[:i] + [body[i].replace('"content":"', '"content":"<|user|>', 1)] + body[i + 1:]
    assert "content.special_token" in codes(judge(stream_of(planted, REC["chat-tools-stream"]["request"])))
    res = answer("chat-tools-nonstream")
    res.tool_calls[0] = ToolCall(res.tool_calls[0].id, res.tool_calls[0].name, '{"city": "Tokyo[gMASK]", "days": 2}')
    assert codes(special_token_violations(text_fields(res))) == {"content.special_token"}
    assert "tool_calls[0].arguments" in special_token_violations(text_fields(res))[0]


def test_markup_in_content_unless_cut_inside_a_call():
    res = answer("chat-reasoning-nonstream")
    res.content = "Paris <tool_call>get_weather<arg_key>city</arg_key>"
    assert codes(answer_violations(res)) == {"content.markup"}
    res.finish_reason = "length"  # SGLang leaves a cut call as text: conforming
    res.usage = {**res.usage, "completion_tokens": res.request["max_tokens"], "total_tokens": None}
    res.usage.pop("total_tokens")
    assert "content.markup" not in codes(answer_violations(res))
    res.reasoning = "thinking </think> more"
    assert codes(answer_violations(res)) == {"content.markup"}


@pytest.mark.parametrize("plant, code", [
    (dict(finish_reason="tool_calls", tool_calls=[]), "finish.tool_calls_without_call"),
    (dict(finish_reason="stop"), "finish.calls_with_stop"),
    (dict(finish_reason="abort"), "finish.unknown"),
    (dict(finish_reason="length"), "finish.length_before_limit"),
])
def test_finish_reason_planted(plant, code):
    res = answer("chat-tools-nonstream")
    for k, v in plant.items():
        setattr(res, k, v)
    assert code in codes(finish_violations(res, context_window=1_048_576))


def test_finish_reason_allowed_cases():
    res = answer("chat-tools-nonstream")
    res.finish_reason, res.request = "stop", {**res.request, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    assert finish_violations(res) == []  # a forced named tool ends 'stop' (vLLM)
    res = answer("chat-tools-nonstream")
    res.request = {**res.request, "max_tokens": res.completion_tokens}
    assert finish_violations(res) == []  # vLLM #58228: the non-stream relabel, tolerated
    res = answer("chat-tools-stream")
    res.request = {**res.request, "max_tokens": res.completion_tokens}
    assert codes(finish_violations(res)) == {"finish.limit_not_length"}  # a stream has no such excuse
    res = answer("chat-reasoning-nonstream")
    res.finish_reason, res.usage = "length", {**res.usage, "prompt_tokens": 1000, "total_tokens": 1247}
    assert finish_violations(res, context_window=1247) == []  # cut by the context, not max_tokens


@pytest.mark.parametrize("plant, code", [
    (lambda b: b + ["data: {}"], "stream.data_after_done"),
    (lambda b: [x for x in b if x != "data: [DONE]"], "stream.no_done"),
    (lambda b: b[:5] + ["data: {not json"] + b[5:], "stream.malformed_json"),
    (lambda b: b[:-6] + ['data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}'] + b[-6:],
     "stream.finish_reason_changed"),
    (lambda b: b[:3] + ["event-stream garbage"] + b[3:], "stream.not_sse"),
])
def test_chat_sse_grammar_planted(plant, code):
    assert code in codes(judge(stream_of(plant(lines("chat-reasoning-stream")))))


def test_usage_total_mismatch_is_coded():
    res = answer("chat-reasoning-nonstream")
    body = json.loads(REC["chat-reasoning-nonstream"]["body"])
    body["usage"]["total_tokens"] += 1
    assert "usage.total_mismatch" in codes(judge(parse_completion(body, res.request)))


def test_calls_duplicate_id_and_arguments_not_object():
    res = answer("chat-tools-nonstream")
    a, b = res.tool_calls
    res.tool_calls = [a, ToolCall(a.id, b.name, "[1, 2]")]
    got = codes(answer_violations(res))
    assert {"calls.duplicate_id", "calls.arguments_not_object"} <= got


def test_messages_grammar_and_content_planted():
    body = lines("messages-tool_use-stream")
    stop = next(i for i, x in enumerate(body) if '"type":"message_stop"' in x)
    assert "messages.after_stop" in codes(messages_violations(read_lines(body + body[stop - 1:stop + 1])))
    text = next(i for i, x in enumerate(body) if '"text_delta"' in x)
    planted = body[:text] + [body[text].replace('"text":"', '"text":"<|endoftext|>', 1)] + body[text + 1:]
    assert codes(messages_violations(read_lines(planted))) == {"content.special_token"}
    out = read_lines(lines("messages-thinking-stream"))
    out.stop_reason = "tool_use"
    assert codes(messages_violations(out)) == {"finish.tool_calls_without_call"}


def test_transport_errors_are_kept_apart_not_judged():
    ledger = Ledger(counter=BYTES)
    ledger.add_chat(ChatResult(stream=True, error="ReadTimeout: timed out", request={}), {}, 0)
    ledger.add_chat(answer("chat-reasoning-stream"), {}, 1)
    bad = ledger.check()
    summary = ledger.summary(bad)
    assert bad == [] and summary["answers"] == 2 and summary["judged"] == 1
    assert summary["serving_errors"] == {"count": 1, "first": ["ReadTimeout: timed out"]}


def test_endpoint_counting_is_sampled_and_a_failing_counter_leaves_the_byte_bound():
    seen = []
    remote = TokenCounter("engine /tokenize", lambda texts: seen.append(len(texts)) or byte_tokens(texts))
    ledger = Ledger(counter=remote, tokenized=3)
    for _ in range(10):
        ledger.add_chat(answer("chat-reasoning-nonstream"), {}, None)
    assert ledger.check() == [] and seen == [2]  # one batch of the distinct texts of 3 answers
    assert ledger.summary([])["text_accounting_basis"] == ["byte bound (no tokenizer)", "engine /tokenize"]

    def broken(texts):
        raise httpx.ConnectError("refused")
    ledger = Ledger(counter=TokenCounter("engine /tokenize", broken))
    ledger.add_chat(answer("chat-reasoning-nonstream"), {}, None)
    assert ledger.check() == [] and "token counting failed" in ledger.notes[0]


def test_violation_is_its_message_and_keeps_its_code_through_copies():
    v = Violation("stream.no_done", "stream ended without data: [DONE]")
    assert v == "stream ended without data: [DONE]" and copy.deepcopy(v).code == "stream.no_done"
    assert json.dumps([v]) == '["stream ended without data: [DONE]"]'


# ---- the plugin hook: a passing test body fails on a violating answer ---------------------------
class RecordedClient:
    """An engine client whose HTTP answers are recorded bodies (the real openai SDK reads them)."""

    engine, model = "vllm", "glm-5.2-ref"

    def __init__(self, body: str, stream: bool):
        self.body, self.stream, self.tokenized = body, stream, []

    def async_openai(self, timeout: float):
        import openai

        def reply(request: httpx.Request) -> httpx.Response:
            kind = "text/event-stream" if self.stream else "application/json"
            return httpx.Response(200, content=self.body.encode(), headers={"content-type": kind})
        return openai.AsyncOpenAI(base_url="http://engine.invalid/v1", api_key="none", max_retries=0,
                                  http_client=httpx.AsyncClient(transport=httpx.MockTransport(reply)))

    def tokenize(self, prompt: str, **_) -> dict:  # vLLM POST /tokenize on the stand-in: one token a byte
        self.tokenized.append(prompt)
        return {"count": len(prompt.encode("utf-8"))}


class Row:
    profile, expect, id, engine, hardware = None, {"context": 1_048_576}, "h200-row", "vllm", "h200"
    is_reference, launcher = False, "container"


class Item:
    def __init__(self, live, marker=None):
        self.funcargs, self.stash, self._marker = {"engine": live}, pytest.Stash(), marker

    def get_closest_marker(self, name):
        return {"feature": pytest.mark.feature("reasoning_split").mark}.get(name, self._marker)


def run_check(body: str, stream: bool = True):
    """Drive the plugin's ``pytest_runtest_call`` around a test body that asserts and passes."""
    client = RecordedClient(body, stream)
    item = Item(LiveEngine(row=Row(), server=None, client=client, launch_id="l"))
    hook = plugin.pytest_runtest_call(item)
    next(hook)
    res = Chat(item.funcargs["engine"], stream=stream).one(messages=[{"role": "user", "content": "Capital of France?"}])
    assert res.content and res.reasoning  # the check's own assertions pass
    try:
        hook.send(None)
    except StopIteration:
        return None, item, client
    except AssertionError as exc:
        return str(exc), item, client
    raise AssertionError("the hook did not end")


def test_hook_passes_a_check_whose_answers_conform():
    failure, item, client = run_check(REC["chat-reasoning-stream"]["body"])
    assert failure is None and client.tokenized  # counted with the engine's /tokenize
    ev = item.stash[plugin.EVIDENCE_KEY]["invariants"]
    assert ev["answers"] == 1 and ev["violations"] == [] and ev["text_accounting_basis"] == ["vLLM POST /tokenize"]


def test_hook_fails_a_passing_check_whose_stream_resent_a_delta():
    body = lines("chat-reasoning-stream")
    i = data_lines("chat-reasoning-stream", "content")[10]
    failure, item, _ = run_check("\n".join(body[:i + 12] + body[i:i + 12] + body[i + 12:]))
    assert failure is not None and "text.accounting" in failure and "chat log #0" in failure
    assert "Capital of France?" in failure  # the request, clipped
    assert item.stash[plugin.EVIDENCE_KEY]["invariants"]["violations"][0]["codes"] == ["text.accounting"]


def test_hook_fails_a_passing_check_on_a_special_token_non_stream():
    body = json.loads(REC["chat-reasoning-nonstream"]["body"])
    body["choices"][0]["message"]["content"] += "<|observation|>"
    failure, _, _ = run_check(json.dumps(body), stream=False)
    assert failure is not None and "content.special_token" in failure


def test_record_outside_a_check_is_a_no_op_and_the_scope_closes():
    record_chat(answer("chat-reasoning-stream"))
    ledger = Ledger()
    with ledger_scope(ledger):
        record_chat(answer("chat-reasoning-stream"))
        MessagesStreamReader().result()  # a /v1/messages stream read during a check is recorded too
    record_chat(answer("chat-reasoning-stream"))
    assert [e.api for e in ledger.entries] == ["chat", "messages"]


def test_check_kind_from_the_behaviour_marker():
    live = LiveEngine(row=Row(), server=None, client=RecordedClient("", True), launch_id="l")
    assert plugin.check_kind(Item(live)) == "invariant"
    assert plugin.check_kind(Item(live, pytest.mark.behaviour.mark)) == "behaviour"


def test_messages_non_stream_bodies_conform_and_are_recorded():
    from glmverify.anthropic_stream import read_body

    ledger = Ledger(counter=BYTES)
    with ledger_scope(ledger):
        outs = [read_body(json.loads(REC[i]["body"])) for i in ("messages-thinking-nonstream", "messages-tool_use-nonstream")]
        broken = json.loads(REC["messages-thinking-nonstream"]["body"])
        broken["content"][1]["text"] += "<|user|>"
        read_body(broken)
    assert all(o.problems == [] for o in outs)
    bad = ledger.check()
    assert len(bad) == 1 and bad[0] is ledger.entries[2] and codes(bad[0].violations) == {"content.special_token"}
    assert all(e.accounting["billed"] > 0 for e in ledger.entries)  # accounted against usage.output_tokens


def test_usage_must_be_sent():
    res = answer("chat-reasoning-stream")
    res.usage = {}
    assert codes(answer_violations(res)) == {"usage.missing"}  # the recorded request asked for it
    res.request = {k: v for k, v in res.request.items() if k != "stream_options"}
    assert answer_violations(res) == []
    body = json.loads(REC["chat-reasoning-nonstream"]["body"])
    del body["usage"]
    assert codes(answer_violations(parse_completion(body, {}))) == {"usage.missing"}


# ---- what the adapters give the ledger --------------------------------------------------------------
def test_special_tokens_and_counter_from_the_standin_tokenizer_file(tmp_path, monkeypatch):
    from glmverify.adapters import adapter_for
    from glmverify.adapters.reference import reference_of
    from glmverify.standin import build

    (tmp_path / "tokenizer.json").write_text(json.dumps({"added_tokens": [
        {"content": "<|endoftext|>", "special": True}, {"content": "<think>", "special": False},
        {"content": "<|user|>", "special": True}]}))
    monkeypatch.setattr(build, "model_dir_for", lambda profile: tmp_path)
    ref = reference_of(adapter_for("vllm"))
    assert ref.special_tokens() == ("<|endoftext|>", "<|user|>")
    assert adapter_for("vllm").special_tokens() is None  # not the reference: the constant list


def test_sglang_counts_a_batch_in_one_request():
    from glmverify.adapters import adapter_for

    class Client:
        calls = []

        def tokenize(self, **body):
            self.calls.append(body)
            return {"count": [len(t.encode()) for t in body["prompt"]]}
    client = Client()
    counter = adapter_for("sglang").text_token_counter(client)
    assert counter.basis == "SGLang POST /tokenize" and counter.count(["ab", "cde"]) == [2, 3]
    assert client.calls == [{"prompt": ["ab", "cde"], "add_special_tokens": False}]


def test_hook_fails_a_stream_without_its_usage_chunk():
    body = [x for x in lines("chat-reasoning-stream") if '"usage"' not in x or '"choices":[]' not in x]
    assert len(body) < len(lines("chat-reasoning-stream"))
    failure, _, _ = run_check("\n".join(body))
    assert failure is not None and "usage.missing" in failure


# ---- a pytest run with the plugin: the record says failed, with the violation and the check's kind --
CHILD_TEST = '''
import pytest
from glmverify.chat import Chat

pytestmark = pytest.mark.feature("reasoning_split")


def ask(engine, prompt):
    return Chat(engine, stream=True).one(messages=[{"role": "user", "content": prompt}])


def test_conforming(engine):
    assert ask(engine, "Capital of France?").content


def test_resent(engine):
    assert ask(engine, "Capital of France? (resent)").content  # passes: the ledger must fail it


@pytest.mark.behaviour
def test_behaviour_resent(engine):
    assert ask(engine, "Capital of France? (resent)").reasoning
'''


def test_plugin_run_fails_passing_checks_on_a_resent_delta_and_records_their_kind(tmp_path):
    body = lines("chat-reasoning-stream")
    i = data_lines("chat-reasoning-stream", "content")[10]
    run, doc = run_child(tmp_path, CHILD_TEST, ["test_conforming", "test_resent", "test_behaviour_resent"],
                         good=REC["chat-reasoning-stream"]["body"], resent=resent_after(body, i))
    cell = next(c for c in doc["cells"] if c["row"] == "reference" and c["feature"] == "reasoning_split")
    checks = {c["id"]: {**c, "evidence": cell["evidence"]["checks"][c["id"]]} for c in cell["checks"]}
    assert run.returncode == 1 and len(checks) == 3 and cell["status"] == "failed", run.stdout[-2000:]
    good = checks["test_conforming"]
    assert good["outcome"] == "passed" and good["evidence"]["check_kind"] == "invariant"
    assert good["evidence"]["invariants"]["answers"] == 1 and good["evidence"]["invariants"]["violations"] == []
    for cid, kind in (("test_resent", "invariant"), ("test_behaviour_resent", "behaviour")):
        rec = checks[cid]
        assert rec["outcome"] == "failed" and "text.accounting" in rec["detail"] and "resent" in rec["detail"], rec["detail"]
        assert rec["evidence"]["check_kind"] == kind
        assert rec["evidence"]["invariants"]["violations"][0]["codes"] == ["text.accounting"]


def test_a_forced_named_tool_generated_as_guided_json_is_accounted():
    """vLLM answers a named tool_choice with guided JSON of the arguments (no markup, the name from
    the request): billed = the JSON text + the end of turn, fewer tokens than name + markup."""
    args = '{"city": "Paris", "days": 3}'
    res = ChatResult(stream=False, content="", tool_calls=[ToolCall("c1", "get_weather", args)], finish_reason="stop",
                     usage={"prompt_tokens": 50, "completion_tokens": len(args) + 1, "total_tokens": 51 + len(args)},
                     request={"tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    assert judge(res) == []
    res.request = {"tool_choice": "auto"}  # the same call in markup would bill at least name + 10 markup tokens
    res.finish_reason = "tool_calls"
    assert codes(judge(res)) == {"text.accounting"}


def test_stream_call_indexes_without_a_gap():
    body = lines("chat-tools-stream")
    assert "calls.index_gap" not in codes(judge(stream_of(body, REC["chat-tools-stream"]["request"])))
    renumbered = [x.replace('"index":1,', '"index":2,') if '"tool_calls":[{' in x else x for x in body]
    assert renumbered != body
    assert "calls.index_gap" in codes(judge(stream_of(renumbered, REC["chat-tools-stream"]["request"])))


# ---- what a check or a row does not judge, and why --------------------------------------------------------
def test_a_cut_answer_with_tools_offered_is_not_accounted_but_one_without_is():
    res = answer("chat-tools-nonstream")
    res.request = {**res.request, "max_tokens": res.completion_tokens}  # cut: a partial call may be withheld
    res.tool_calls, res.content = [], None  # the parser withheld the cut call: far fewer tokens delivered
    found, rec = text_accounting(res, [1], "bytes")
    assert found == [] and "cut by max_tokens" in rec["skipped"]
    plain = answer("chat-reasoning-nonstream")
    plain.request = {**plain.request, "max_tokens": plain.completion_tokens}
    plain.content = None  # no tools offered: lost text is still caught
    assert codes(text_accounting(plain, [1], "bytes")[0]) == {"text.accounting"}


def test_a_waiver_moves_named_codes_of_matching_requests_to_the_evidence():
    body = json.loads(REC["chat-reasoning-nonstream"]["body"])
    body["choices"][0]["message"]["content"] += " </think>"  # the leak, the text otherwise as billed
    res = parse_completion(body, {**REC["chat-reasoning-nonstream"]["request"],
                                  "chat_template_kwargs": {"thinking": False}})
    other = parse_completion(body, REC["chat-reasoning-nonstream"]["request"])
    ledger = Ledger(counter=None)
    ledger.waive(("content.markup",), "wrong variable on purpose",
                 lambda request: "thinking" in ((request or {}).get("chat_template_kwargs") or {}))
    ledger.add_chat(res, res.request, 0)
    ledger.add_chat(other, other.request, 1)
    bad = ledger.check()
    assert [ledger.entries.index(e) for e in bad] == [1]  # the same leak on a plain request still fails
    assert codes(ledger.entries[0].waived) == {"content.markup"} and not ledger.entries[0].violations
    waived = ledger.summary(bad)["waived"]
    assert waived["answers"] == 1 and waived["rules"][0]["why"] == "wrong variable on purpose"


def test_a_row_with_unscripted_output_waives_the_content_invariants_only():
    class Unscripted(Row):
        expect = {"context": 1_048_576, "unscripted_output": "random weights"}
    live = LiveEngine(row=Unscripted(), server=None, client=RecordedClient("", False), launch_id="l")
    ledger = plugin.open_ledger(live)
    assert ledger.waivers and set(ledger.waivers[0].codes) == {"content.markup", "content.special_token",
                                                               "text.accounting", *degeneration.CODES}
    assert not plugin.open_ledger(LiveEngine(row=Row(), server=None, client=RecordedClient("", False),
                                             launch_id="l")).waivers
