"""Engine invariants: what every answer of a conforming engine has, whatever the model sampled.

GLM-5.2 samples at temperature 1.0, so a check separates two kinds of claims. *Model behaviour*
(call a tool or not, the order of parallel calls, an exact copy of a string) is measured as a rate
(``@pytest.mark.behaviour`` checks). An *engine invariant* holds on every single answer: one
violation is a defect of the engine, and one answer may fail the cell. This module is the one
checker of those invariants; a function per invariant, each returning ``Violation``\\ s: a ``str``
(the message, so every caller that reads ``ChatResult.problems`` as text keeps working) with a
stable ``code``:

* ``stream.*`` / ``body.*``: the chat-completions SSE grammar and body shape, found while parsing
  (``chat.StreamAssembler`` / ``parse_completion`` tag their problems with these codes);
  ``messages.*``: the ``/v1/messages`` event grammar (``anthropic_stream``);
* ``usage.*``: usage that adds up (``usage_violations``);
* ``content.markup`` / ``content.special_token``: no think tags or tool-call markup in content,
  no think tags in reasoning, no special token of the tokenizer in any text field (content,
  reasoning, tool names, arguments; ``markup_violations``, ``special_token_violations``);
* ``finish.*``: a finish reason consistent with the answer (``finish_violations``);
* ``calls.*``: every call's fields declared and non-empty, the stream header sent once, ids
  unique, arguments a JSON object (``call_field_violations``, ``call_violations``);
* ``text.accounting``: the text delivered accounts for the completion tokens billed
  (``text_accounting``), which catches a stream that re-sends a delta and text that got lost.

The per-check ledger (``glmverify.ledger``) applies these to every answer a check produced,
whichever suite sent it. An answer with a transport error or timeout carries no invariant (a
serving error, counted elsewhere).

This module imports no other glmverify module (answers are duck-typed: ``chat.ChatResult``,
``anthropic_stream.MessagesStream``), so the parsers can tag their problems with its codes.
"""
from __future__ import annotations

import json
from typing import Any

THINK_TAGS = ("<think>", "</think>")
TOOL_MARKUP = ("<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>")
#: GLM's turn and framing special tokens (GLM-4.5 to GLM-5.2 tokenizer_config ``added_tokens_decoder``
#: entries with ``special: true``; the stand-in's tokenizer declares the same, glmverify.standin.build).
#: Left out: ``[MASK]``/``[sMASK]`` and the image/video tags, which ordinary text may spell out.
#: The ledger's opener replaces the list with the tokenizer's own where one is at hand.
GLM_SPECIAL_TOKENS = ("<|endoftext|>", "[gMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>", "<|assistant|>",
                      "<|observation|>")
FINISH_REASONS = ("stop", "length", "tool_calls")
MESSAGES_STOP_REASONS = ("end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal")
#: the byte bound's ceiling: no token of a GLM-sized vocabulary decodes to more bytes (conservative)
MAX_BYTES_PER_TOKEN = 64


class Violation(str):
    """One broken invariant: the message (the ``str`` itself) and its stable ``code``."""

    code: str

    def __new__(cls, code: str, message: str) -> "Violation":
        obj = super().__new__(cls, message)
        obj.code = code
        return obj

    def __getnewargs__(self):  # copies and pickles keep the code
        return (self.code, str(self))


def code_of(problem: str) -> str:
    """A problem's code; text appended by a caller without one is a generic protocol defect."""
    return getattr(problem, "code", "protocol.defect")


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def max_tokens_of(request: dict | None) -> int | None:
    req = request if isinstance(request, dict) else {}
    return next((req[k] for k in ("max_completion_tokens", "max_tokens") if _count(req.get(k))), None)


# ---- usage --------------------------------------------------------------------------------------
def usage_violations(usage: Any, request: dict | None = None, has_output: bool = True) -> list[Violation]:
    """A prompt has tokens, an answer with output has completion tokens, total = prompt +
    completion, reasoning tokens are part of the completion, the completion fits ``max_tokens``."""
    if not isinstance(usage, dict) or not usage:
        return []
    out: list[Violation] = []
    counts: dict[str, int] = {}
    details = usage.get("completion_tokens_details")
    reasoning = {"completion_tokens_details.reasoning_tokens": details.get("reasoning_tokens") if isinstance(details, dict) else None,
                 "reasoning_tokens": usage.get("reasoning_tokens")}
    for name, v in [(k, usage.get(k)) for k in ("prompt_tokens", "completion_tokens", "total_tokens")] + list(reasoning.items()):
        if v is None:
            continue
        if not _count(v) or v < 0:
            out.append(Violation("usage.not_a_count", f"usage: {name} is {v!r}, not a non-negative integer"))
        else:
            counts[name] = v
    p, c, t = counts.get("prompt_tokens"), counts.get("completion_tokens"), counts.get("total_tokens")
    if usage.get("prompt_tokens") is None:
        out.append(Violation("usage.no_prompt_tokens", "usage: no prompt_tokens"))
    elif p == 0:
        out.append(Violation("usage.prompt_zero", "usage: prompt_tokens 0 (every prompt has tokens)"))
    if c == 0 and has_output:
        out.append(Violation("usage.completion_zero", "usage: completion_tokens 0 although the answer has output"))
    if t is not None and p is not None and c is not None and t != p + c:
        out.append(Violation("usage.total_mismatch",
                             f"usage: total_tokens {t} != prompt_tokens {p} + completion_tokens {c}"))
    for name in reasoning:
        r = counts.get(name)
        if r is not None and c is not None and r > c:
            out.append(Violation("usage.reasoning_exceeds_completion",
                                 f"usage: {name} {r} exceeds completion_tokens {c} (reasoning tokens are part of the completion)"))
    limit = max_tokens_of(request)
    if limit is not None and c is not None and c > limit:
        out.append(Violation("usage.exceeds_max_tokens", f"usage: completion_tokens {c} exceeds max_tokens {limit}"))
    return out


# ---- text fields ----------------------------------------------------------------------------------
def cut(res) -> bool:
    """Cut by max_tokens: finish ``length``, or (vLLM #58228's non-stream relabel) the billed
    completion reached ``max_tokens``. A cut answer may end inside a call."""
    limit, used = max_tokens_of(res.request), res.completion_tokens
    return res.finish_reason == "length" or (limit is not None and used is not None and used >= limit)


def text_fields(res) -> list[tuple[str, str]]:
    """Every text field of a chat answer as (where, text): content, reasoning, call names, arguments."""
    out = [(name, getattr(res, name)) for name in ("content", "reasoning") if isinstance(getattr(res, name), str)]
    for i, tc in enumerate(res.tool_calls):
        out += [(f"tool_calls[{i}].name", tc.name or ""), (f"tool_calls[{i}].arguments", tc.arguments or "")]
    return out


def markup_violations(res) -> list[Violation]:
    """No think tags in content or reasoning; no tool-call markup in content, except in an answer
    cut inside a call (SGLang 0.5.23 leaves the partial call as text under ``length``)."""
    out = []
    for name, tags in (("content", THINK_TAGS + (() if cut(res) else TOOL_MARKUP)), ("reasoning", THINK_TAGS)):
        text = getattr(res, name) or ""
        for tag in tags:
            if tag in text:
                out.append(Violation("content.markup", f"raw {tag!r} left in {name}: {text[:200]!r}"))
    return out


def special_token_violations(fields: list[tuple[str, str]], special_tokens=GLM_SPECIAL_TOKENS) -> list[Violation]:
    """No special token of the model's tokenizer in any text an answer delivers."""
    return [Violation("content.special_token", f"special token {tok!r} in {where}: "
                      f"{text[max(0, text.find(tok) - 60):text.find(tok) + 60]!r}")
            for where, text in fields for tok in special_tokens if tok and tok in text]


# ---- finish reason ----------------------------------------------------------------------------
def finish_violations(res, context_window: int | None = None) -> list[Violation]:
    """``tool_calls`` only with calls; calls ending ``stop`` only under a forced named tool (vLLM);
    ``length`` only when the completion reached ``max_tokens`` or the context; a completion that
    reached ``max_tokens`` ends ``length`` (the non-stream ``tool_calls`` relabel of vLLM #58228
    tolerated, as suites/test_tool_calls.py ``test_cut_call`` does); nothing but stop, length and
    tool_calls (SGLang's ``abort`` is a serving error, not a conforming answer)."""
    fr, calls = res.finish_reason, res.tool_calls
    mode = "stream" if res.stream else "non-stream"
    if fr is None:
        return [] if res.stream else [Violation("finish.missing", f"{mode}: no finish_reason")]  # streams: stream.no_finish
    if fr not in FINISH_REASONS:
        return [Violation("finish.unknown", f"{mode}: finish_reason {fr!r}, not one of {', '.join(FINISH_REASONS)}")]
    out = []
    forced = isinstance((res.request or {}).get("tool_choice"), dict)
    if fr == "tool_calls" and not calls:
        out.append(Violation("finish.tool_calls_without_call", f"{mode}: finish_reason 'tool_calls' but no tool call"))
    if fr == "stop" and calls and not forced:
        out.append(Violation("finish.calls_with_stop", f"{mode}: {len(calls)} tool call(s) but finish_reason 'stop' "
                             "(only a forced named tool ends 'stop')"))
    limit, used = max_tokens_of(res.request), res.completion_tokens
    prompt = res.usage.get("prompt_tokens") if isinstance(res.usage, dict) else None
    if fr == "length" and limit is not None and used is not None and used < limit:
        # engines stop a few tokens short of the window (SGLang reserves one): a margin of 16
        full = context_window is not None and _count(prompt) and prompt + used >= context_window - 16
        if context_window is not None and not full:
            out.append(Violation("finish.length_before_limit", f"{mode}: finish_reason 'length' after {used} of "
                                 f"max_tokens {limit} completion tokens, context {context_window} not reached"))
    if fr != "length" and limit is not None and used is not None and used >= limit:
        relabel = fr == "tool_calls" and calls and not res.stream
        # a turn may end on its last allowed token; only an answer still inside its reasoning
        # (no content, no call) shows that a 'stop' there hid the cut
        hidden = fr == "stop" and res.reasoning and not (res.content or "").strip() and not calls
        if not relabel and (fr == "tool_calls" or hidden):
            out.append(Violation("finish.limit_not_length", f"{mode}: completion reached max_tokens ({used} of "
                                 f"{limit}) but finish_reason is {fr!r}, not 'length'"))
    return out


# ---- tool calls ----------------------------------------------------------------------------------
def declared_nonstream(body: Any) -> list[dict]:
    """Per call of a non-stream body: id, type, name and arguments as sent (absent: None)."""
    ch = body.get("choices") if isinstance(body, dict) else None
    msg = ch[0].get("message") if isinstance(ch, list) and ch and isinstance(ch[0], dict) else None
    calls = (msg or {}).get("tool_calls") if isinstance(msg, dict) else None
    out = []
    for tc in calls if isinstance(calls, list) else []:
        tc = tc if isinstance(tc, dict) else {}
        fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
        out.append({"id": tc.get("id"), "type": tc.get("type"), "name": fn.get("name"),
                    "arguments": fn.get("arguments"), "headers": [], "header_with_finish": False})
    return out


def declared_stream(chunks: list[Any]) -> list[dict]:
    """Per call of a stream (by index): the header as first sent (id, type, name), the
    arguments joined, and the events (numbered from 1) that carried an id or a name again."""
    calls: dict[int, dict] = {}
    for n, chunk in enumerate(chunks, 1):
        for choice in (chunk.get("choices") if isinstance(chunk, dict) else None) or []:
            if not isinstance(choice, dict) or not isinstance(choice.get("delta"), dict):
                continue
            for tc in choice["delta"].get("tool_calls") or []:
                if not isinstance(tc, dict):
                    continue
                fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
                slot = calls.setdefault(tc.get("index") if isinstance(tc.get("index"), int) else len(calls),
                                        {"id": None, "type": None, "name": None, "arguments": "", "headers": [],
                                         "header_with_finish": False})
                if tc.get("id") or fn.get("name"):
                    if not slot["headers"]:
                        slot.update(id=tc.get("id"), type=tc.get("type"), name=fn.get("name"))
                    slot["headers"].append(n)
                    if len(slot["headers"]) > 1 and choice.get("finish_reason"):
                        slot["header_with_finish"] = choice["finish_reason"]
                elif not slot["headers"] and slot["type"] is None:
                    slot["type"] = tc.get("type")
                if isinstance(fn.get("arguments"), str):
                    slot["arguments"] += fn["arguments"]
    return [calls[i] for i in sorted(calls)]


def declared(res) -> list[dict] | None:
    """What each call of ``res`` declared on the wire, or None when the answer kept no wire form."""
    if res.wire is None:
        return None
    return declared_stream(res.wire) if res.stream else declared_nonstream(res.wire)


def call_field_violations(res, offered: list[str] | None = None, cut_short: bool = False) -> list[Violation]:
    """Every call field that is empty or undeclared, and every stream header sent again.

    Uses what the calls declared on the wire (``declared``) where the answer kept its wire form,
    else the normalised calls (then ``type`` cannot be judged). ``finish_reason`` ``tool_calls``
    needs a call. ``offered`` None: a name is not judged against the tools (a model may sample an
    unknown name; suites judge it); ``cut_short``: a call cut by max_tokens may lack arguments."""
    mode = "stream" if res.stream else "non-stream"
    fr = res.finish_reason
    calls = declared(res)
    if calls is None:
        calls = [{"id": t.id, "type": "function", "name": t.name, "arguments": t.arguments, "headers": [],
                     "header_with_finish": False} for t in res.tool_calls]
    out = []
    if fr == "tool_calls" and not calls:
        out.append(Violation("finish.tool_calls_without_call",
                             f"{mode}: finish_reason 'tool_calls' but no tool call in the answer"))
    for i, d in enumerate(calls):
        while_ = f" while finish_reason is {fr!r}"
        name = d.get("name")
        if not (isinstance(d.get("id"), str) and d["id"]):
            out.append(Violation("calls.empty_id", f"{mode}: call {i} ({name}): empty id ({d.get('id')!r}){while_}"))
        if not (isinstance(name, str) and name):
            out.append(Violation("calls.empty_name", f"{mode}: call {i}: empty name ({name!r}){while_}"))
        elif offered is not None and name not in offered:
            out.append(Violation("calls.unknown_name",
                                 f"{mode}: call {i}: name {name!r} not among the offered tools {offered}"))
        if d.get("type") != "function":
            out.append(Violation("calls.type", f"{mode}: call {i} ({name}): type {d.get('type')!r}, expected 'function'"))
        args = d.get("arguments")
        if not (isinstance(args, str) and args.strip()) and not cut_short:
            out.append(Violation("calls.empty_arguments",
                                 f"{mode}: call {i} ({name}): empty arguments ({args!r}){while_}; expected a JSON object "
                       "string, at least '{}'"))
        again = d.get("headers", [])[1:]
        if d.get("header_with_finish"):
            out.append(Violation("calls.header_with_finish",
                                 f"{mode}: call {i} ({name}): id/type/name re-sent in the last chunk, the one carrying "
                       f"finish_reason {d['header_with_finish']!r} (header sent {len(again) + 1} times)"))
        elif again:
            out.append(Violation("calls.header_resent",
                                 f"{mode}: call {i} ({name}): id/type/name re-sent in {len(again)} later argument chunk(s)"))
    return out


def call_violations(res, cut_short: bool = False) -> list[Violation]:
    """Every call's fields (``call_field_violations``, names not judged; 'tool_calls' without a
    call is ``finish_violations``'), stream indexes 0, 1, ... without a gap, ids unique within the
    answer, arguments a JSON object (not judged on a call cut by max_tokens)."""
    out = [v for v in call_field_violations(res, None, cut_short) if v.code != "finish.tool_calls_without_call"]
    if res.stream and isinstance(res.wire, list):
        seen = sorted({tc.get("index") for chunk in res.wire if isinstance(chunk, dict)
                       for ch in chunk.get("choices") or [] if isinstance(ch, dict) and isinstance(ch.get("delta"), dict)
                       for tc in ch["delta"].get("tool_calls") or [] if isinstance(tc, dict) and isinstance(tc.get("index"), int)})
        if seen and seen != list(range(len(seen))):
            out.append(Violation("calls.index_gap", f"stream tool call indexes {seen}, expected 0..{len(seen) - 1} "
                                 "(a client assembles calls by index)"))
    ids = [tc.id for tc in res.tool_calls if tc.id]
    if len(set(ids)) != len(ids):
        out.append(Violation("calls.duplicate_id", f"tool call ids not unique within the answer: {ids}"))
    for i, tc in enumerate(res.tool_calls):
        if cut_short or not (tc.arguments or "").strip():
            continue  # empty arguments: calls.empty_arguments
        try:
            args = json.loads(tc.arguments)
        except ValueError:
            args = None
        if not isinstance(args, dict):
            out.append(Violation("calls.arguments_not_object", f"call {i} ({tc.name}): arguments are not a JSON "
                                 f"object: {tc.arguments[:200]!r}"))
    return out


# ---- text accounting ------------------------------------------------------------------------------
def _rendered_args(arguments: str) -> tuple[list[str], int] | None:
    """The argument text the model rendered between markup (keys and values) and the number of
    arguments, from a call's JSON arguments; None when they are not a JSON object."""
    try:
        args = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return None
    if not isinstance(args, dict):
        return None
    texts = []
    for k, v in args.items():
        # compact: never more characters than the model wrote for the value
        texts += [k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, separators=(",", ":"))]
    return texts, len(args)


def delivered(res) -> tuple[list[str], int, int]:
    """(texts the answer delivered, fewest markup tokens behind them, most). The parsers remove
    ``</think>`` (1), the end-of-turn token (1), ``<tool_call>``/``</tool_call>`` (2 per call),
    ``<arg_key>``/``</arg_key>``/``<arg_value>``/``</arg_value>`` (4 per argument), whitespace
    around reasoning and content and the GLM-4.5 format's newlines; JSON quoting is not counted
    (keys and values are re-rendered as the model wrote them). A forced tool (``tool_choice``
    ``required`` or a named function) may be generated as guided JSON instead of markup (vLLM:
    a named function's arguments only, its name taken from the request): then no markup is
    certain, JSON punctuation is allowed for, and a forced name is not counted as generated."""
    choice = (getattr(res, "request", None) or {}).get("tool_choice")
    forced = isinstance(choice, dict) or choice == "required"
    texts = [t for t in (res.reasoning, res.content) if t]
    lo = hi = 0
    for tc in res.tool_calls:
        if not isinstance(choice, dict):
            texts.append(tc.name or "")
        rendered = _rendered_args(tc.arguments or "")
        if rendered is None:
            texts.append(tc.arguments or "")
            lo, hi = lo + (0 if forced else 2), hi + 2 + 4 * 32  # unparsed (cut): the markup is unknown, be generous
            continue
        args, n = rendered
        texts += args
        if forced:  # guided JSON: up to ~8 punctuation tokens an argument, the wrapper of a required call
            lo, hi = lo, hi + 2 + 8 * n + 32
        else:
            lo, hi = lo + 2 + 4 * n, hi + 2 + 4 * n + n + 1
    hi += (1 if res.reasoning else 0) + (0 if res.finish_reason == "length" else 1) + 4 * 2
    return [t for t in texts if t], lo, hi


def text_accounting(res, counts: list[int] | None = None, basis: str = "") -> tuple[list[Violation], dict]:
    """The delivered text against ``usage.completion_tokens``. With ``counts`` (the tokens of each
    of ``delivered(res)``'s texts in the engine's tokenizer): more tokens delivered than billed
    beyond 1% + 1 (re-tokenising a sampled text gives at most about what was generated), or fewer
    than billed by more than 10% + 8 after every markup token. Without counts, a byte bound that
    holds for any byte-level BPE tokenizer: each billed token but markup delivers at least one
    byte, and none more than ``MAX_BYTES_PER_TOKEN``."""
    billed = res.completion_tokens
    texts, lo, hi = delivered(res)
    if billed is None:
        return [], {"skipped": "no usage.completion_tokens"}
    request = getattr(res, "request", None) or {}
    limit = max_tokens_of(request) if isinstance(request, dict) else None
    if request.get("tools") and (getattr(res, "finish_reason", None) in ("length", "max_tokens")
                                 or (limit is not None and billed >= limit)):
        # cut by max_tokens with tools offered: the answer may end inside a call, which the parser
        # withholds (non-stream) or streams as partial JSON; neither accounts token for token
        return [], {"skipped": "cut by max_tokens with tools offered (a partial call is withheld or re-rendered)",
                    "billed": billed}
    if counts is not None:
        n = sum(counts)
        rec = {"basis": basis, "billed": billed, "delivered_tokens": n, "markup_tokens": [lo, hi]}
        if n + lo > billed + 1 + billed // 100:
            return [Violation("text.accounting", f"the answer delivers {n} tokens of text ({basis}) plus at least {lo} "
                              f"of markup, above the {billed} completion tokens billed: text sent twice?")], rec
        if n + hi < billed - 8 - billed // 10:
            return [Violation("text.accounting", f"the answer delivers {n} tokens of text ({basis}) and at most {hi} of "
                              f"markup, far below the {billed} completion tokens billed: text lost?")], rec
        return [], rec
    size = sum(len(t.encode("utf-8")) for t in texts)
    rec = {"basis": "byte bound (no tokenizer)", "billed": billed, "delivered_bytes": size, "markup_tokens": [lo, hi]}
    if size > MAX_BYTES_PER_TOKEN * billed:
        return [Violation("text.accounting", f"the answer delivers {size} bytes of text, more than "
                          f"{MAX_BYTES_PER_TOKEN} per billed completion token ({billed}): text sent twice?")], rec
    if size + hi < billed - 8:
        return [Violation("text.accounting", f"the answer delivers {size} bytes of text and at most {hi} markup tokens, "
                          f"below the {billed} completion tokens billed (a token is at least a byte): text lost?")], rec
    return [], rec


def protocol_violations(problems: list[str]) -> list[Violation]:
    """What the parser found (SSE grammar, body shape, usage): each with its code."""
    return [p if isinstance(p, Violation) else Violation(code_of(p), p) for p in problems]


def answer_violations(res, special_tokens=GLM_SPECIAL_TOKENS, context_window: int | None = None) -> list[Violation]:
    """Every invariant of one chat answer except text accounting (which needs token counts)."""
    if res.error is not None:
        return []
    return (protocol_violations(res.problems) + usage_presence(res) + markup_violations(res)
            + special_token_violations(text_fields(res), special_tokens)
            + finish_violations(res, context_window) + call_violations(res, cut(res)))


def usage_presence(res) -> list[Violation]:
    """A non-stream answer carries ``usage``; a stream asked for it (``stream_options.include_usage``,
    which ``Chat`` always sends) sends its usage chunk: without it nothing bills or accounts."""
    if isinstance(res.usage, dict) and res.usage:
        return []
    opts = (res.request or {}).get("stream_options")
    if res.stream and not (isinstance(opts, dict) and opts.get("include_usage")):
        return []
    return [Violation("usage.missing", "stream asked for usage (include_usage) but sent no usage chunk" if res.stream
                      else "non-stream answer without usage")]


def messages_violations(out, special_tokens=GLM_SPECIAL_TOKENS) -> list[Violation]:
    """A ``/v1/messages`` answer (``anthropic_stream.MessagesStream``): its grammar, no think tags
    or special tokens in its blocks, no call markup in text unless cut, a known stop reason,
    ``tool_use`` only with a tool_use block, tool_use ids unique."""
    v = protocol_violations(out.problems)
    fields = []
    for i, b in enumerate(out.blocks):
        for key in ("text", "thinking", "name", "json"):
            if isinstance(b.get(key), str) and b[key]:
                fields.append((f"block {i} ({b.get('type')}).{key}", b[key]))
    v += special_token_violations(fields, special_tokens)
    cut_short = out.stop_reason == "max_tokens"
    for where, text in fields:
        for tag in THINK_TAGS + (() if cut_short or not where.endswith(".text") else TOOL_MARKUP):
            if tag in text and not where.endswith((".json", ".name")):
                v.append(Violation("content.markup", f"raw {tag!r} in {where}: {text[:200]!r}"))
    uses = [b for b in out.blocks if b.get("type") == "tool_use"]
    if out.stop_reason is not None and out.stop_reason not in MESSAGES_STOP_REASONS:
        v.append(Violation("finish.unknown",
                           f"stop_reason {out.stop_reason!r}, not one of {', '.join(MESSAGES_STOP_REASONS)}"))
    if out.stop_reason == "tool_use" and not uses:
        v.append(Violation("finish.tool_calls_without_call", "stop_reason 'tool_use' but no tool_use block"))
    ids = [b.get("id") for b in uses]
    if len(set(ids)) != len(ids):
        v.append(Violation("calls.duplicate_id", f"tool_use ids not unique: {ids}"))
    return v


