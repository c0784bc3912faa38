"""What GLM-5.2 would generate: the stand-in's raw output, scripted from the prompt.

``respond(prompt)`` takes the prompt rendered by ``chat_template.jinja`` (the generation prompt
included) and returns the raw text the model generates after it; the caller appends the end-of-turn
token. ``generate`` returns the same as a ``Response`` that can also end in a repetition loop. No
engine import: the engine hooks (through ``forcing.py``) and the unit tests both call them.

This module decides which answer a prompt gets; its parts live beside it: ``prompt`` (reading the
rendered prompt back), ``reasoning`` (reasoning sentences per effort rank), ``schema_values``
(tool arguments and JSON from the offered schemas), ``answers`` (GSM8K, the needle), ``faults``
(the fault registry), ``sampling`` (the draws of a sampling model), ``profile`` (the effort levels
of the model profile the stand-in was built for; ``profile=`` here, GLM-5.2 by default).

Decoding (``sampling``, chosen per request by the hook; the draws live in ``sampling.py``):

* ``None``: scripted, a pure function of the prompt (everything described below).
* sampled (``Sampling(rng)``; GLM-5.2 samples at temperature 1.0): the same structure, but the
  reasoning length varies per request around a prompt-dependent mean (GLM-5.2's Max about twice
  High), and a GSM8K answer is wrong (off by one) with probability ``P_WRONG_THINK`` (3%, thinking
  on) or ``P_WRONG_NONTHINK`` (6%, thinking off): a healthy deployment still gets a few questions
  wrong. Plain short answers may gain a closing sentence. Tool-call answers vary as a healthy
  model's do (``sampling.tool_style``: parallel calls in another order, the sentence before the
  call left out, a lone ``auto`` call turned into a clarifying question, the whitespace after the
  sentence); their arguments, JSON, needle and tool-result answers keep the scripted content.
* greedy (``Sampling(greedy=True)``, temperature 0): the scripted output, except that about
  ``GREEDY_LOOP_PERCENT`` % of thinking-on prompts (by a hash of the prompt) fall into a reasoning
  repetition loop: ``Response.loop`` repeats without end and ``</think>`` never comes.

Raw output shape (GLM-5.2):

* thinking on (prompt ends ``<|assistant|><think>``): ``REASONING</think>ANSWER``;
  thinking off (prompt ends ``<|assistant|></think>``): ``ANSWER``.
* Reasoning (scripted) is a deterministic function of the prompt. Its length depends on the rank
  of the effort line's level in the profile (``reasoning.py``): GLM-5.2's ``High`` gives k
  sentences, ``Max`` (and no line, and a word the profile does not know) gives the same k
  sentences each followed by two checking sentences, about 3x the tokens; a third level (GLM-5.3's
  Low) about half of High's sentences.
* Tools offered and the last turn is a user turn: ``[preamble]<tool_call>...`` blocks in GLM's
  compact format, one per offered tool whose name appears in the last user message (in order of
  first appearance: parallel calls), else one call to the first tool. Arguments are generated from
  each tool's JSON Schema and are valid against it (``schema_values``: hints from the user's
  message, e.g. ``city Paris`` or ``text="..."``). The one-line text preamble ("I'll call NAME
  for this.") is left out when a grammar forces the call (tool_choice required / named). With
  ``tool_choice: none`` vLLM still renders the tools (unless
  ``--exclude-tools-when-tool-choice-none``) and drops the calls, so the preamble is the content.
* Last turn is a tool result: ``The result is: <tool result text>.`` and no new call.
* ``json_schema`` given: compact JSON valid against it after ``</think>``, no markup.
* Needle and GSM8K: see ``answers.py``.
* Otherwise a short answer that echoes a few words of the question.

Faults (``FAULTS``, see ``faults.py``; the hooks read ``GLM_STANDIN_FAULTS``, comma separated).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Names re-exported: the hooks, the fault catalogue and the tests read them from here.
from glmverify.standin.answers import (  # noqa: F401
    DEFAULT_GSM8K_PATH, GSM8K_ANSWER_FORMAT, GSM8K_ENV, GSM8K_MAX_CHARS, NEEDLE_QUESTION_WORD, NEEDLE_RE,
    NEEDLE_TEMPLATE, REPO_ROOT, gsm8k_lookup, gsm8k_path, off_by_one, wrong_passphrase,
)
from glmverify.standin.faults import CANARY, FAULTS, FAULTS_ENV, parse_faults  # noqa: F401
from glmverify.standin.profile import GLM_52, StandinProfile
from glmverify.standin.prompt import (  # noqa: F401
    ROLE_TOKENS, THINK_END, THINK_START, Prompt, Turn, parse_prompt, sanitize, words,
)
from glmverify.standin.reasoning import base_units, reasoning
from glmverify.standin.sampling import (  # noqa: F401
    GREEDY_LOOP_PERCENT, LOW_ACCURACY_EVERY, P_WRONG_LOW_ACCURACY, P_WRONG_NONTHINK, P_WRONG_THINK, SAMPLING_ENV,
    SEED_ENV, Sampling, ToolStyle, answer_tail, engine_seed, greedy_loop, gsm8k_wrong, is_sampled, reasoning_sentences,
    request_rng, sampling_enabled, tool_style,
)
from glmverify.standin.schema_values import (  # noqa: F401
    Hints, format_tool_call, gen_value, is_free_object, tool_arguments, valid,
)


def _effort_rank(p: Prompt, faults: frozenset[str]) -> int:
    """The rank the reasoning follows: the prompt's level, or the most effort under ``ignore_effort``."""
    return 0 if "ignore_effort" in faults else p.effort_rank


# --------------------------------------------------------------------------- respond


@dataclass
class _Out:
    reasoning_units: list[str]
    focus: str
    answer: str
    canary_ok: bool = True  # False: the canary goes elsewhere (tool preamble) or nowhere (JSON)
    free_text: bool = False  # a plain short answer: sampling may vary its length


@dataclass(frozen=True)
class Response:
    """The raw output (without the end-of-turn token).

    ``loop`` set (greedy repetition loop): ``text`` is only the start; ``loop`` follows it,
    repeated without end (no end-of-turn token: generation stops at ``max_tokens``).
    """

    text: str
    loop: str | None = None


def _choose_tools(tools: list[dict], user_text: str, allowed: Sequence[str] | None, single: bool) -> list[dict]:
    offered = [t for t in tools if allowed is None or t.get("name") in allowed]
    if allowed is not None and not offered:  # the grammar knows tools the prompt did not show
        offered = [{"name": n, "parameters": {}} for n in allowed]
    hits = []
    for t in offered:
        m = re.search(r"(?<![\w.-])" + re.escape(t["name"]) + r"(?![\w-])", user_text)
        if m:
            hits.append((m.start(), t))
    chosen = [t for _, t in sorted(hits, key=lambda h: h[0])] or offered[:1]
    return chosen[:1] if single else chosen


@dataclass(frozen=True)
class ToolAnswer:
    """The answer part of a tool-call turn: the sentence before the calls (or ""), the calls as
    (name, arguments) in the order written, or a clarifying question instead of them."""

    preamble: str
    calls: tuple[tuple[str, dict], ...]
    question: str = ""
    thought: str = ""

    @property
    def text(self) -> str:
        """The raw text GLM-5.2 writes for it (compact ``<tool_call>`` format)."""
        if self.question:
            return self.question
        return self.preamble + "".join(format_tool_call(n, a) for n, a in self.calls)


def tool_answer(offered: Sequence[dict], user_text: str, *, allowed: Sequence[str] | None = None,
                single: bool = False, tool_required: bool = False, faults: frozenset[str] = frozenset(),
                sampling: Sampling | None = None) -> ToolAnswer:
    """Which tools GLM-5.2 calls for ``user_text`` and how it writes the turn (``offered``: the
    rendered tools, each ``{"name", "parameters"}``). Scripted: the tools named, in order of
    mention, after one sentence; sampled: ``sampling.tool_style``. Faults ``wrong_tool``,
    ``strip_arg_whitespace`` and ``script_canary`` apply here."""
    chosen = _choose_tools(list(offered), user_text, allowed, single)
    if "wrong_tool" in faults:  # an offered tool that was not asked for; else one call fewer
        others = [t for t in offered if (allowed is None or t.get("name") in allowed) and t not in chosen]
        chosen = [others[0]] * len(chosen) if others else chosen[:-1] or chosen
    canary = "script_canary" in faults
    style = tool_style(sampling, len(chosen), may_clarify=not tool_required, may_omit_preamble=not canary)
    chosen = [chosen[i] for i in style.order]
    names = [t["name"] for t in chosen]
    if style.clarify:  # a healthy model sometimes asks before it calls (sampled only)
        return ToolAnswer("", (), question=f"Before I call {names[0]}: do you want me to go ahead with exactly "
                          "what you wrote?", thought="The request may not be complete, so I should ask first.")
    calls = []
    for t in chosen:
        args = tool_arguments(t, user_text)
        if "strip_arg_whitespace" in faults:
            args = {k: (v.strip() if isinstance(v, str) else v) for k, v in args.items()}
        calls.append((t["name"], args))
    preamble = ""
    if not tool_required and style.preamble:
        preamble = f"I'll call {_join(names)} for this." + (" " + CANARY if canary else "") + style.preamble_end
    return ToolAnswer(preamble, tuple(calls), thought=f"The best way to answer is to call {_join(names)}.")


def respond(prompt: str, **options: Any) -> str:
    """The raw text GLM-5.2 generates after ``prompt`` (``generate``'s text; same options). For a
    greedy repetition loop this is only the text before the loop; ``generate`` gives the loop too."""
    return generate(prompt, **options).text


def generate(
    prompt: str,
    *,
    json_schema: dict | bool | None = None,
    faults: frozenset[str] = frozenset(),
    tool_required: bool = False,
    allowed_tools: Sequence[str] | None = None,
    single_tool_call: bool = False,
    sampling: Sampling | None = None,
    profile: StandinProfile = GLM_52,
) -> Response:
    """What GLM-5.2 generates after ``prompt`` (without the end-of-turn token): the text, and the
    repeating part of a greedy repetition loop.

    ``json_schema``: structured output (vLLM ``response_format`` json_schema / json_object) the
    answer must satisfy. ``tool_required`` / ``allowed_tools`` / ``single_tool_call``: a grammar
    (vLLM's structural tag for tool_choice required or a named function, or
    ``parallel_tool_calls: false``) forces the answer to be tool calls among ``allowed_tools``.
    ``sampling``: see the module docstring. ``profile``: the effort levels the template rendered
    (the model directory's ``glmverify_standin.json``; GLM-5.2 by default).
    """
    faults = frozenset(faults)
    p = parse_prompt(prompt, profile)
    last = p.last
    user_text = p.last_user_text
    grammar = json_schema is not None or tool_required
    out: _Out

    if json_schema is not None:
        schema = json_schema if isinstance(json_schema, dict) else {}
        if is_free_object(schema):  # json_object, or a schema that says no more than "an object"
            value: Any = {"answer": _short_answer(user_text)}
        else:
            value = gen_value(schema, None, Hints(user_text), schema)
        if not valid(value, schema, schema):
            value = gen_value(schema, None, None, schema)
        focus = user_text
        units = base_units(focus, "json")
        units.append("I will answer with JSON that follows the requested schema.")
        out = _Out(units, focus, json.dumps(value, ensure_ascii=False, separators=(",", ":")), canary_ok=False)
    elif (
        (p.tools or allowed_tools)
        and (tool_required or (last is not None and last.role == "user" and "no_tool_call" not in faults))
    ):
        ans = tool_answer(p.tools, user_text, allowed=allowed_tools, single=single_tool_call,
                          tool_required=tool_required, faults=faults, sampling=sampling)
        units = base_units(user_text, "tools")
        units.append(ans.thought)
        out = _Out(units, user_text, ans.text, canary_ok=False)
    elif last is not None and last.role == "tool":
        results = [r.strip() for r in last.tool_results] or [sanitize(last.text)]
        text = "; ".join(results)
        focus = text + "\n" + user_text
        units = base_units(focus, "observation")
        units.append("The tool has returned, so I can answer from its result.")
        out = _Out(units, focus, f"The result is: {text}.")
    else:
        out = _plain_answer(p, user_text, faults, sampling)

    answer = out.answer
    if out.free_text and is_sampled(sampling):
        assert sampling is not None and sampling.rng is not None
        answer += answer_tail(sampling.rng)
    if "script_canary" in faults and out.canary_ok and not grammar:
        answer = answer + "\n" + CANARY
    if not p.thinking:
        if "ignore_thinking_off" in faults and not grammar:  # "thinks" anyway, as plain prose
            answer = " ".join(reasoning(out.reasoning_units, out.focus, 0, sampling)) + "\n\n" + answer
        return Response(answer)
    if "empty_reasoning" in faults:
        sentences: list[str] = []
    else:
        sentences = reasoning(out.reasoning_units, out.focus, _effort_rank(p, faults), sampling)
    if sampling is not None and sampling.greedy:
        loop = greedy_loop(sentences, prompt)
        if loop is not None:
            return Response(loop[0], loop=loop[1])
    text = " ".join(sentences)
    if "skip_think_end" in faults:
        return Response(text + ("\n\n" if text else "") + answer)
    return Response(text + THINK_END + answer)


def _join(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _short_answer(user_text: str) -> str:
    ws = words(user_text, 6)
    topic = " ".join(ws) if ws else "your question"
    return f"Here is a short answer about {topic}: the key points are covered above."


def _plain_answer(p: Prompt, user_text: str, faults: frozenset[str], sampling: Sampling | None) -> _Out:
    wrong = "wrong_answers" in faults
    if NEEDLE_QUESTION_WORD in NEEDLE_RE.sub(" ", user_text).lower():  # asked, not just stated
        for t in p.turns:
            if t.role in ("user", "system", "tool"):
                m = NEEDLE_RE.search(t.text)
                if m:
                    value = m.group(1)
                    if wrong:
                        value = wrong_passphrase(value)
                    units = [
                        "The user wants the secret passphrase stated in the text.",
                        "I need to find the sentence that gives the passphrase.",
                        "I found it, so I can quote it exactly.",
                    ]
                    return _Out(units, "needle passphrase", NEEDLE_TEMPLATE.format(passphrase=value))
    found = gsm8k_lookup(user_text) if user_text else None
    if found is not None:
        rationale, answer = found
        if gsm8k_wrong(faults, sampling, p.thinking, user_text):
            answer = off_by_one(answer)
        steps = [re.sub(r"<<[^>]*>>", "", line).strip() for line in rationale.splitlines()]
        steps = [sanitize(s) for s in steps if s.strip()]
        units = ["Let me work through this math problem step by step.", *steps]
        text = f"Working through the problem step by step, the result is {answer}.\n" + GSM8K_ANSWER_FORMAT.format(
            answer=answer
        )
        return _Out(units, user_text, text)
    units = base_units(user_text, "plain")
    return _Out(units, user_text, _short_answer(user_text), free_text=True)
