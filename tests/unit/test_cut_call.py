"""suites/test_tool_calls.py ``test_cut_call`` offline, against scripted answers (no engine).

The check decides only on a cut answer that took its uncut twin's path (same seed; its prose the
uncut preamble): the field's false failure this guards against is a sampled model that, asked again,
wrote a clarifying question where it had called (bench run 17 of 20, a conforming reference).
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from glmverify.chat_answers import ChatResult, ToolCall
from glmverify.checks import Failure, Inconclusive
from helpers.suite_module import load_suite

SUITE = load_suite("test_tool_calls.py", "tool_calls_suite_cut_unit")
PREAMBLE = "I'll save that note."
QUESTION = "Before I call write_note: do you want me to go ahead with exactly what you wrote?"


def called(stream=False, tokens=150) -> ChatResult:
    return ChatResult(stream=stream, content=PREAMBLE, finish_reason="tool_calls",
                      tool_calls=[ToolCall("call_1", "write_note", '{"text": "a long sentence ..."}')],
                      usage={"completion_tokens": tokens})


def cut_in_call(stream=False) -> ChatResult:
    return ChatResult(stream=stream, content=PREAMBLE, finish_reason="length",
                      tool_calls=[ToolCall("call_1", "write_note", '{"text": "a lo')], usage={"completion_tokens": 75})


def cut(content: str, stream=False) -> ChatResult:
    """A cut answer with no call begun (no tool_calls, no markup)."""
    return ChatResult(stream=stream, content=content, finish_reason="length", usage={"completion_tokens": 75})


def asked(stream=False) -> ChatResult:
    return ChatResult(stream=stream, content=QUESTION, finish_reason="stop", usage={"completion_tokens": 20})


class ScriptedChat:
    """Hands out scripted answers in order and keeps every request."""

    def __init__(self, answers, stream=False):
        self.answers, self.stream, self.sent, self.log = list(answers), stream, [], []

    def one(self, **req):
        self.sent.append(req)
        self.log.append({"request": req})
        return self.answers.pop(0)


class Evidence(dict):
    def add(self, **kw):
        for k, v in kw.items():
            if isinstance(v, dict) and isinstance(self.get(k), dict):
                self[k].update(v)
            else:
                self[k] = v


ENGINE = SimpleNamespace(profile=SimpleNamespace(thinking_variable="enable_thinking"))


def run(answers, stream=False):
    chat, ev = ScriptedChat(answers, stream), Evidence()
    SUITE.test_cut_call(chat, ENGINE, ev)
    return chat, ev


def test_conforming_pair_passes_and_the_cut_repeats_the_seed():
    chat, ev = run([called(), cut_in_call()])
    assert len(chat.sent) == 2 and "max_tokens" not in chat.sent[0] and chat.sent[1]["max_tokens"] == 75
    assert chat.sent[0]["seed"] == chat.sent[1]["seed"] == ev["seed"]


def test_a_cut_answer_on_another_path_is_redrawn_not_failed():
    """Run 17's answer: the cut request asked a question where its twin had called."""
    chat, ev = run([called(), cut(QUESTION[:70]), called(), cut_in_call()])
    assert len(chat.sent) == 4 and chat.sent[2]["seed"] != chat.sent[0]["seed"]
    assert "pairs redrawn" in " ".join(ev["observed"])


def test_a_lost_partial_call_on_the_uncut_path_fails():
    for content in (PREAMBLE, PREAMBLE[:8], ""):
        with pytest.raises(Failure) as info:
            run([called(), cut(content)])
        assert info.value.code == "tool_call.cut_before_call"


def test_no_pair_on_the_same_path_is_inconclusive():
    with pytest.raises(Inconclusive) as info:
        run([called(), cut(QUESTION)] * 3)
    assert info.value.code == "tool_call.cut_undecided"


def test_an_uncut_question_is_redrawn_and_the_last_one_fails():
    chat, _ = run([asked(), called(), cut_in_call()])
    assert len(chat.sent) == 3
    with pytest.raises(Failure) as info:
        run([asked(), asked(), asked()])
    assert info.value.code == "tool_call.uncut_no_call"


def test_stream_cut_must_end_length():
    bad = cut_in_call(stream=True)
    bad.finish_reason = "tool_calls"
    with pytest.raises(Failure) as info:
        run([called(stream=True), bad], stream=True)
    assert info.value.code == "tool_call.cut_not_length"
