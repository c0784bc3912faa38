"""tool_calls: GLM-5.2's compact ``<tool_call>`` output comes back as OpenAI tool calls.

Cases live in ``cases/tool_calls.jsonl`` (readable unique ids; tools in ``cases/tools.json``).
Every answer is held to two kinds of checks (``glmverify.behaviour``):

* **invariants**, per answer, hard (``test_case`` for each case, streamed and not; the other
  checks hold every answer they draw to them too): every field of every call declared and
  non-empty (``type`` ``"function"``, an ``id``, a ``name`` among the offered tools, ``arguments``
  a JSON object string, at least ``"{}"``; in a stream the header id/type/name sent once, on the
  call's first delta: ``glmverify.toolcalls``); arguments that parse and validate against the
  tool's JSON Schema with types kept (an integer is not "3"); no ``<tool_call>``/``<arg_key>``/
  ``<arg_value>`` markup in content or reasoning; ``finish_reason`` ``tool_calls`` when there are
  calls and ``stop`` when there are none; a call under ``tool_choice`` ``required`` or a named
  function (a grammar forces it); an answer that runs to ``max_tokens`` without the call named as
  such. A call cut by ``max_tokens`` must say ``length`` (``test_cut_call``).
* **behaviour**, rates over the case set (``@pytest.mark.behaviour``), each case once streamed and
  once not per round, decided sequentially: the model calls when the case expects a call
  (``test_calls_agree``), the right tools as a set with valid arguments (``test_correct_calls``),
  exact strings (non-ASCII, whitespace, a long sentence) kept byte for byte
  (``test_exact_strings``), the same rates streamed and not (``test_stream_matches_nonstream``),
  and the final answer of a three-turn round trip uses the tool results (``test_round_trip``).
  One round serves every decision (and ``test_case``): a conforming engine decides there.

Plus ``tool_choice: none`` (no call; the answer may be reasoning only: a sampled model need not
write a sentence).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import jsonschema
import pytest

from glmverify import behaviour, policy
from glmverify.chat import Chat
from glmverify.checks import TOOL_MARKUP, Failure, Inconclusive, conclude, expect, no_markup, no_problems
from glmverify.invariants import code_of
from glmverify.toolcalls import field_problems
from glmverify.verdicts import run_sequential

pytestmark = pytest.mark.feature("tool_calls")

CASES_DIR = Path(__file__).parent / "cases"
TOOLS = json.loads((CASES_DIR / "tools.json").read_text())
SCHEMAS = {name: tool["function"]["parameters"] for name, tool in TOOLS.items()}
CASES = [json.loads(line) for line in (CASES_DIR / "tool_calls.jsonl").read_text().splitlines() if line.strip()]
BY_ID = {c["id"]: c for c in CASES}
ROUND_TRIP_LOOKS = (4, 8, 16)  # final answers: one full round trip, then the final turn again


def _tools(names):
    return [TOOLS[n] for n in names]


def _mode(res) -> str:
    return "stream" if res.stream else "non-stream"


def _request(case: dict) -> dict:
    return {"messages": [{"role": "user", "content": case["prompt"]}], "tools": _tools(case["tools"]),
            "tool_choice": case["tool_choice"]}


def fields_ok(res, offered: list[str], what: str = "") -> None:
    """Every call's fields declared and non-empty, the stream header sent once (first problems named)."""
    problems = field_problems(res, offered)
    expect(not problems, (what + ": " if what else "") + "; ".join(problems[:3]),
           code_of(problems[0]) if problems else None, codes={code_of(p) for p in problems}, mode=_mode(res))


def validate_calls(res, offered: list[str]) -> list[dict]:
    """Every call: its fields (``fields_ok``), JSON-object arguments valid against the tool's schema."""
    fields_ok(res, offered)
    parsed = []
    mode = _mode(res)
    for i, tc in enumerate(res.tool_calls):
        try:
            args = json.loads(tc.arguments) if tc.arguments.strip() else None
        except ValueError as exc:
            raise Failure(f"{mode}: call {i} ({tc.name}): arguments are not JSON ({exc}): {tc.arguments[:200]!r}",
                          "tool_call.arguments_not_json", mode=mode, call=i, name=tc.name, tail=tc.arguments[-8:]) from None
        expect(isinstance(args, dict), f"{mode}: call {i} ({tc.name}): arguments must be a JSON object, got {tc.arguments[:200]!r}",
               "tool_call.arguments_not_object", mode=mode, call=i, name=tc.name, empty=not tc.arguments.strip())
        schema = TOOLS[tc.name]["function"]["parameters"]
        try:
            jsonschema.validate(args, schema)
        except jsonschema.ValidationError as exc:
            raise Failure(f"{mode}: call {i} ({tc.name}): arguments {args} invalid against the schema at "
                          f"{'/'.join(map(str, exc.absolute_path)) or '<root>'}: {exc.message}",
                          "tool_call.arguments_schema_invalid", mode=mode, call=i, name=tc.name,
                          path="/".join(map(str, exc.absolute_path)), validator=exc.validator) from None
        parsed.append({"name": tc.name, "arguments": args})
    return parsed


def invariants(res, case: dict) -> None:
    """What every answer to ``case`` must satisfy whatever the model sampled (module docstring)."""
    fields_ok(res, case["tools"])  # first: it names an empty or re-sent field more precisely than the parser's note
    no_problems(res)
    no_markup(res, TOOL_MARKUP)
    forced = case["tool_choice"] == "required" or isinstance(case["tool_choice"], dict)
    expect(not (res.truncated and not res.tool_calls),
           f"{_mode(res)}: tool_choice {case['tool_choice']!r}: generation ran to max_tokens (finish_reason 'length', "
           f"{res.completion_tokens} completion tokens) without a tool call; content {res.content!r:.120}",
           "tool_call.ran_to_length", mode=_mode(res), tool_choice=case["tool_choice"])
    if forced:  # a grammar forces the call: none is an engine defect, not a sampled choice
        expect(bool(res.tool_calls), f"{_mode(res)}: tool_choice {case['tool_choice']!r}: expected a tool call, got none; "
                                     f"content {res.content!r:.200}, reasoning {res.reasoning!r:.120}",
               "tool_call.missing", mode=_mode(res), tool_choice=case["tool_choice"])
    validate_calls(res, case["tools"])
    if res.tool_calls:
        allowed = ("tool_calls", "stop") if isinstance(case["tool_choice"], dict) else ("tool_calls",)
    else:
        allowed = ("stop",)
    expect(res.finish_reason in allowed, f"{_mode(res)}: expected finish_reason {' or '.join(allowed)}, got {res.finish_reason!r}",
           "tool_call.finish_reason", mode=_mode(res), got=res.finish_reason, expected=allowed)
    ids = [tc.id for tc in res.tool_calls]
    expect(len(set(ids)) == len(ids), f"tool call ids not unique: {ids}", "tool_call.duplicate_id", mode=_mode(res))


class CaseRounds:
    """The case set, round by round, each case once non-streamed and once streamed per round; the
    first round is shared by ``test_case`` and every rate decision (``behaviour.case_rounds``)."""

    def __init__(self, engine, options):
        self.plain = Chat(engine, stream=False, concurrency=options.concurrency, timeout=options.request_timeout)
        self.streaming = Chat(engine, stream=True, concurrency=options.concurrency, timeout=options.request_timeout)
        self.answers: list[list[tuple[dict, object]]] = []   # per round: (case, ChatResult), both modes
        self.outcome: behaviour.Outcome | None = None
        self.engine = engine

    def round(self) -> list[tuple[dict, object]]:
        reqs = [_request(c) for c in CASES]
        got = list(zip(CASES, self.plain.many(reqs))) + list(zip(CASES, self.streaming.many(reqs)))
        self.answers.append(got)
        return got

    def first(self, stream: bool, case_id: str):
        if not self.answers:
            self.round()
        return next(r for c, r in self.answers[0] if c["id"] == case_id and r.stream == stream)

    def decide(self) -> behaviour.Outcome:
        if self.outcome is None:
            a = policy.alpha(self.engine.row, policy.rendered_prompt(self.engine.client.engine))
            used = iter(self.answers[:1])  # the shared first round, then new ones

            def draw():
                got = next(used, None) or self.round()
                return [behaviour.judge(c, r, SCHEMAS) for c, r in got], 2 * len(CASES)

            per_round = {m: 2 * sum(1 for c in CASES if _counts(c, m)) for m in behaviour.MEASURES}
            self.outcome = behaviour.case_rounds(draw, per_round, behaviour.shares(behaviour.part_alpha(self.engine.row, a)))
        return self.outcome


def _counts(case: dict, measure: str) -> bool:
    exp = case["expect"]
    return {"calls": True, "correct": behaviour.expects_call(case),
            "exact": "arguments" in exp}[measure]


@pytest.fixture(scope="session")
def case_rounds(engine, options) -> CaseRounds:
    return CaseRounds(engine, options)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case_rounds, stream, case, evidence):
    """The invariants of one case's answer (from the shared first round)."""
    res = case_rounds.first(stream, case["id"])
    evidence.add(case=case["id"], exchange={"request": _request(case), "response": res.excerpt()})
    if res.stream and len(res.tool_calls) > 1:  # how this engine streams parallel calls (recorded, not judged)
        shape = res.stream_shape
        evidence.add(observed={"parallel calls streamed": f"{shape.get('calls')} calls, at most "
                               f"{shape.get('max_calls_in_one_event')} in one delta, argument fragments "
                               f"{shape.get('argument_fragments')}"})
    invariants(res, case)


#: the code of each behaviour rate that fell below its bar (``behaviour.BARS``)
RATE_CODES = {"calls": "tool_call.calls_rate_below_bar", "correct": "tool_call.correct_rate_below_bar",
              "exact": "tool_call.exact_rate_below_bar"}


def _rate_check(case_rounds, measure: str, evidence, what: str) -> None:
    out = case_rounds.decide()
    d = out.decisions[measure]
    evidence.add(rounds=out.rounds, requests=out.requests, misses=out.misses(measure, 10))
    conclude(d, evidence=evidence, context=f"{what} (misses: {out.misses(measure)})",
             code=RATE_CODES[measure])


@pytest.mark.behaviour
def test_calls_agree(case_rounds, evidence):
    """Call vs no call against what each case expects, as a rate over the case set."""
    _rate_check(case_rounds, "calls", evidence, "tool call when the case expects one")


@pytest.mark.behaviour
def test_correct_calls(case_rounds, evidence):
    """The expected tools (parallel calls compared as a set) with schema-valid arguments, as a rate."""
    _rate_check(case_rounds, "correct", evidence, "the expected tools with valid arguments")


@pytest.mark.behaviour
def test_exact_strings(case_rounds, evidence):
    """String arguments kept byte for byte (non-ASCII, whitespace, a long sentence), as a rate."""
    _rate_check(case_rounds, "exact", evidence, "exact strings")


@pytest.mark.behaviour
def test_stream_matches_nonstream(case_rounds, evidence):
    """Every answer of every round holds to the invariants (a defect that hits one request in three
    is still seen), an argument object valid in one mode and not in the other is a stream defect,
    and the behaviour rates streamed and not differ by no more than sampling explains
    (``behaviour.compare``). The cut call (``test_cut_call``) is not compared: its two shapes
    legitimately differ (SGLang 0.5.23 leaves the partial call as markup in non-stream content and
    streams it as a partial call; vLLM 0.32 parses it in both, but relabels only the non-stream
    finish reason)."""
    out = case_rounds.decide()
    for got in case_rounds.answers:
        by_case: dict[str, dict] = {}
        for c, res in got:
            fields_ok(res, c["tools"], c["id"])
            no_problems(res, f"{c['id']} {_mode(res)}")
            by_case.setdefault(c["id"], {})[res.stream] = res
        for cid, pair in by_case.items():
            a, b = pair.get(False), pair.get(True)
            if a is None or b is None:
                continue
            bad = {}
            for res in (a, b):
                try:
                    validate_calls(res, BY_ID[cid]["tools"])
                except AssertionError as exc:
                    bad[res.stream] = exc
            if len(bad) == 1:  # valid one way only: the stream (or non-stream) path broke them
                x = next((t.arguments for t in a.tool_calls), "")
                y = next((t.arguments for t in b.tool_calls), "")
                broke = next(iter(bad.values()))
                raise Failure(f"stream and non-stream tool calls differ: {cid}: call 0 "
                              f"({(b.tool_calls or a.tool_calls)[0].name}) arguments {x[:120]!r} vs {y[:120]!r}; "
                              f"{broke}", "tool_call.stream_differs", case=cid,
                              broken="stream" if True in bad else "non-stream", because=getattr(broke, "code", None))
            if bad:
                raise Failure(f"{cid}: {bad[True]}", getattr(bad[True], "code", None), **getattr(bad[True], "fields", {}))
    comparisons = [out.decisions[f"stream:{m}"] for m in behaviour.MEASURES]
    evidence.add(rounds=out.rounds, requests=out.requests,
                 rates={m: {"stream": f"{sum(behaviour.samples(out.judged, m, True))}/{len(behaviour.samples(out.judged, m, True))}",
                            "non-stream": f"{sum(behaviour.samples(out.judged, m, False))}/{len(behaviour.samples(out.judged, m, False))}"}
                        for m in behaviour.MEASURES})
    failed = [d for d in comparisons if d.status == "failed"]
    examples = [n for m in behaviour.MEASURES for n in out.misses(m, 3)] if failed else []
    conclude(*comparisons, evidence=evidence, code="tool_call.stream_rates_differ",
             context=(f"stream and non-stream tool calls differ (e.g. {examples[:4]})" if failed
                      else "stream vs non-stream behaviour rates"))


CUT_CASE = next(c for c in CASES if c["id"] == "auto-exact-string-long")
CUT_ATTEMPTS = 3


def _cut_follows(cut, full) -> bool:
    """Whether the cut answer took the uncut answer's path: its content (trimmed) is a prefix of the
    uncut content, the preamble before the call, cut short or whole. A cut answer with more or other
    prose (e.g. a clarifying question where the uncut one called) was a different sample."""
    return (full.content or "").strip().startswith((cut.content or "").strip())


def test_cut_call(chat, engine, evidence):
    """A tool call cut by ``max_tokens`` must say so: ``finish_reason`` ``length``, and raw call
    markup in content only under ``length`` (a client that sees ``tool_calls`` runs the partial call).

    Thinking is off (the profile's thinking variable), so the answer is at most a short sentence
    and then the call with one long string argument: half of the uncut answer's completion tokens
    (measured first) ends inside that argument on any tokenizer. The cut request is the uncut one
    with the same ``seed`` and only ``max_tokens`` changed, which is what is under test.

    Whether and how the model calls is its choice, not the engine's: an uncut answer without the
    call (a clarifying question) is drawn again, and so is a pair whose cut answer took another path
    (its prose is not the uncut answer's preamble: an engine that ignores ``seed``, as SGLang does
    outside deterministic mode, samples afresh). Only a cut answer on the uncut answer's path decides;
    ``CUT_ATTEMPTS`` pairs without one end ``inconclusive``. A cut answer on that path with no call
    begun (no tool_calls, no markup) lost the partial call: failed.

    Seen on the conforming references: SGLang 0.5.23 ends ``length`` both ways (non-stream: the
    partial call left as markup in content; stream: a partial call); vLLM 0.32 streams a partial
    call ending ``length`` but relabels the non-stream answer ``tool_calls`` (its serving code lets
    any parsed call win over the length stop; open upstream as vLLM #58228). That non-stream
    relabel is tolerated while ``usage.completion_tokens`` still shows the cut, and recorded in
    ``evidence.observed``; the stream has no such excuse (vLLM PR #46303 keeps ``length`` there).
    """
    mode = "stream" if chat.stream else "non-stream"
    req = {"messages": [{"role": "user", "content": CUT_CASE["prompt"]}], "tools": _tools(CUT_CASE["tools"]),
           "tool_choice": CUT_CASE["tool_choice"], "chat_template_kwargs": {engine.profile.thinking_variable: False}}
    rng = random.Random()
    elsewhere: list[str] = []  # cut answers that took another path than their uncut twin
    for attempt in range(CUT_ATTEMPTS):
        seed = rng.randrange(2**31)
        full = chat.one(**req, seed=seed)
        no_problems(full, f"{mode} uncut answer")
        if not full.tool_calls and full.finish_reason == "stop" and attempt + 1 < CUT_ATTEMPTS:
            continue  # the model asked first: this draw says nothing about a cut call
        expect(bool(full.tool_calls) and full.finish_reason == "tool_calls",
               f"{mode} uncut answer (thinking off): expected a write_note call ending 'tool_calls', got "
               f"{[t.name for t in full.tool_calls]} ending {full.finish_reason!r}; content {full.content!r:.200}",
               "tool_call.uncut_no_call", mode=mode, finish_reason=full.finish_reason)
        n = full.completion_tokens
        expect(isinstance(n, int) and n >= 8, f"{mode} uncut answer: no usable usage.completion_tokens ({full.usage})",
               "usage.completion_tokens_unusable", mode=mode, completion_tokens=n)
        budget = n // 2
        cut = chat.one(**req, seed=seed, max_tokens=budget)
        evidence.add(exchanges=chat.log[-2:], uncut_tokens=n, max_tokens=budget, seed=seed)
        no_problems(cut, f"{mode} cut answer")
        markup = any(t in (cut.content or "") for t in TOOL_MARKUP)
        begun = bool(cut.tool_calls) or markup or cut.finish_reason == "tool_calls"
        if begun or _cut_follows(cut, full):
            break
        elsewhere.append(f"{(cut.content or '')[:80]!r} where the uncut answer had {(full.content or '')[:80]!r}")
    else:
        raise Inconclusive(f"INCONCLUSIVE: {mode}: in {CUT_ATTEMPTS} pairs no cut answer followed its uncut twin "
                           f"(same seed): {elsewhere[:2]}", "tool_call.cut_undecided", mode=mode)
    if elsewhere:
        evidence.add(observed={f"tool call cut by max_tokens ({mode}), pairs redrawn": elsewhere})
    used = cut.completion_tokens
    calls = [(t.name, t.arguments[:60]) for t in cut.tool_calls]
    evidence.add(observed={f"tool call cut by max_tokens ({mode})": f"finish_reason {cut.finish_reason!r}, "
                           f"{used} of {budget} tokens, calls {calls}, markup in content: {markup}"})
    expect(begun,
           f"{mode}: cut at {budget} of {n} tokens but no call had begun (no tool_calls, no markup), on the uncut "
           f"answer's path (content {cut.content!r:.200}, uncut {full.content!r:.120}): the partial call was lost",
           "tool_call.cut_before_call", mode=mode, budget=budget)
    if cut.finish_reason != "length":
        relabel = (not cut.stream and cut.finish_reason == "tool_calls" and isinstance(used, int) and used >= budget)
        expect(relabel, f"{mode}: a tool call cut by max_tokens ({used} of {budget} tokens) ended finish_reason "
                        f"{cut.finish_reason!r}, expected 'length' (a client would run the partial call {calls})",
               "tool_call.cut_not_length", mode=mode, finish_reason=cut.finish_reason, used=used, budget=budget)
        evidence.add(observed={"tool call cut by max_tokens, non-stream relabel": "finish_reason 'tool_calls' on an answer cut at "
                               f"max_tokens ({used} tokens): the non-stream relabel (vLLM #58228), tolerated"})
        no_markup(cut, TOOL_MARKUP)


def test_choice_none(chat, evidence):
    """``tool_choice: none``: no call and no call markup, some output. Whether the model writes a
    sentence is behaviour: an answer with reasoning only (the stand-in's omitted sentence, vLLM
    dropping the call) is a conforming engine."""
    res = chat.one(messages=[{"role": "user", "content": "Use get_weather with city Paris and days 3."}],
                   tools=_tools(["get_weather", "get_time"]), tool_choice="none")
    evidence.add(exchange=chat.log[-1], observed={f"tool_choice none ({'stream' if res.stream else 'non-stream'})":
                 f"{len(res.tool_calls)} call(s), content {(res.content or '')[:48]!r}"})
    fields_ok(res, ["get_weather", "get_time"])
    no_problems(res)
    expect(not res.tool_calls, f"tool_choice none: expected no call, got {[t.name for t in res.tool_calls]}",
           "tool_call.call_with_choice_none", calls=[t.name for t in res.tool_calls])
    no_markup(res, TOOL_MARKUP)
    expect(bool((res.content or "").strip() or (res.reasoning or "").strip()),
           f"tool_choice none: expected an answer (content or reasoning), got content {res.content!r} and no reasoning",
           "tool_call.empty_answer", tool_choice="none")
    expect(res.finish_reason in ("stop", "length"), f"tool_choice none: expected finish_reason stop, got {res.finish_reason!r}",
           "tool_call.finish_reason", got=res.finish_reason, expected=("stop", "length"), tool_choice="none")


ROUND_TRIP_TOOLS = ["calculator", "get_weather"]
ROUND_TRIP_TURNS = (("Use calculator with expression 17*23.", "calculator", {"expression": "17*23"}, "391"),
                    ("Thanks. Now use get_weather with city Berlin and days 2.", "get_weather",
                     {"city": "Berlin", "days": 2}, "Berlin: sunny, 21 C"))


def answered(call_id: str, name: str, arguments: str, content: str, tool_result: str) -> list[dict]:
    """The assistant turn that made one call, and the tool's result for it."""
    return [{"role": "assistant", "content": content, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": call_id, "content": tool_result}]


def _round_trip_history(chat, evidence) -> tuple[list[dict], int]:
    """Turns 1 and 2 as the model answers them (each answer held to the invariants). A turn that
    did not make its one expected call (sampled: a clarifying question, another tool) is replaced
    by that call, recorded: the round trip tests the engine's rendering of tool results, and the
    calls are the case set's to rate."""
    tools = _tools(ROUND_TRIP_TOOLS)
    messages: list[dict] = []
    made = []
    for i, (ask, name, args, result) in enumerate(ROUND_TRIP_TURNS, 1):
        messages.append({"role": "user", "content": ask})
        res = chat.one(messages=messages, tools=tools, tool_choice="auto")
        no_problems(res, f"turn {i}")
        no_markup(res, TOOL_MARKUP)
        validate_calls(res, ROUND_TRIP_TOOLS)
        ok = len(res.tool_calls) == 1 and res.tool_calls[0].name == name
        made.append(ok)
        call = res.tool_calls[0] if ok else None
        messages += answered(call.id if call else f"call_{i}", name,
                             call.arguments if call else json.dumps(args), res.content or "", result)
    evidence.add(observed={"round trip: turns 1-2 made the expected call": str(made)})
    return messages, len(ROUND_TRIP_TURNS)


def _uses_result(final) -> bool | None:
    """The final turn's behaviour; its invariants are hard (None: cut by max_tokens, excluded)."""
    fields_ok(final, ROUND_TRIP_TOOLS)
    no_problems(final, "turn 3")
    no_markup(final, TOOL_MARKUP)
    if final.truncated:
        return None
    validate_calls(final, ROUND_TRIP_TOOLS)
    want = "tool_calls" if final.tool_calls else "stop"
    expect(final.finish_reason == want, f"turn 3: expected finish_reason {want}, got {final.finish_reason!r}",
           "tool_call.finish_reason", got=final.finish_reason, expected=want, turn=3)
    text = final.content or ""
    return not final.tool_calls and ("sunny" in text or "21" in text)


@pytest.mark.behaviour
def test_round_trip(chat, engine, evidence):
    """Three turns: call → tool result → second call → tool result → final answer using both.
    Using the results is behaviour: one round trip, then its final turn again, until the rate
    decides (``ROUND_TRIP_LOOKS``; ``behaviour.BARS["round_trip"]``). Every answer is held to the
    invariants."""
    mode = "stream" if chat.stream else "non-stream"
    tools = _tools(ROUND_TRIP_TOOLS)
    history: list[dict] = []
    finals: list = []

    def draw(k: int):
        spent = 0
        if not history:
            turns, spent = _round_trip_history(chat, evidence)
            history.extend(turns)
        got = chat.many([{"messages": history, "tools": tools, "tool_choice": "auto"}] * k)
        finals.extend(got)
        values = [_uses_result(f) for f in got]
        return [v for v in values if v is not None], spent + k

    a = behaviour.part_alpha(engine.row, policy.alpha(engine.row, policy.rendered_prompt(engine.client.engine))) / 2
    rule = behaviour.rate_rule("round_trip", a, ROUND_TRIP_LOOKS, name=f"tool_calls[round_trip:{mode}]")
    decision, _ = run_sequential(rule, draw)
    misses = [f.content for f in finals if not f.truncated and (f.tool_calls or not any(
        w in (f.content or "") for w in ("sunny", "21")))]
    evidence.add(turns=chat.log[:4], finals=len(finals), misses=[(m or "")[:200] for m in misses[:5]])
    conclude(decision, evidence=evidence, code="tool_call.result_unused",
             context=("turn 3: the answer does not use the tool result 'Berlin: sunny, 21 C'"
                      + (f": {misses[0]!r:.300}" if misses else "")))
