"""The per-check ledger: every answer a check produced, judged by ``invariants`` when it ends.

``chat.Chat`` records each chat completion (``record_chat``) and ``anthropic_stream`` each
``/v1/messages`` stream (``record_messages``) into the ledger of the running check, which the
plugin opens around the test body (``ledger_scope``); nothing is recorded when no ledger is open
(the project's own tests, tools). ``Ledger.check`` judges each answer once at the end, so text
accounting can count the tokens of many answers in one batch: with a local tokenizer every answer,
with an engine's ``/tokenize`` an even spread of ``MAX_TOKENIZED_ANSWERS`` (one request per
distinct text; the rest get the byte bound), never a request per answer on the hot path. Answers
with a transport error or timeout are serving errors: counted in the summary, never judged.
A check may waive named codes on some of its answers (``waive``: a request made wrong on purpose,
whose consequence the check records instead), and a row whose model output is unscripted
(``expect.unscripted_output``: random weights, counters only) waives the content invariants; the
waived violations and why stay in the evidence.

Every judged answer is also screened for degeneration (``glmverify.degeneration``: loops, runs to
max_tokens, empty answers after reasoning). That is model behaviour, a rate, not an invariant: the
screen never fails the check; its tally (``summary``'s ``degeneration``: counted and apart, by
code, the worst examples with their answer index and completion id) travels in the check's
evidence, and ``inference`` decides the rate per cell and per row. The degeneration codes are
content codes, so an unscripted row waives them like the content invariants.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from . import degeneration
from .invariants import (GLM_SPECIAL_TOKENS, Violation, answer_violations, delivered, messages_violations,
                         text_accounting)

#: answers per check re-tokenised with an engine's endpoint (the rest get the byte bound)
MAX_TOKENIZED_ANSWERS = 8
MAX_LEDGER_VIOLATIONS = 20
#: answers delivering more text than this get the byte bound, not a tokenizer
MAX_TOKENIZED_CHARS = 1 << 20


@dataclass
class TokenCounter:
    """Counts the tokens of texts with the engine's tokenizer; ``basis`` says whose."""

    basis: str
    count: Callable[[list[str]], list[int]]
    remote: bool = True  # counting costs the engine requests: the ledger re-tokenises a sample


@dataclass
class _Call:
    id: str | None
    name: str | None
    arguments: str


@dataclass
class MessagesAnswer:
    """A ``/v1/messages`` answer in the shape text accounting reads (``ChatResult``'s fields)."""

    reasoning: str | None
    content: str | None
    tool_calls: list
    finish_reason: str | None
    completion_tokens: int | None
    stream: bool = True


def messages_answer(out) -> MessagesAnswer:
    """Thinking blocks as reasoning, text blocks as content, tool_use blocks as calls,
    ``usage.output_tokens`` as the billed completion (engines translate chat completions)."""
    def joined(kind, key):
        parts = [b.get(key) or "" for b in out.blocks if b.get("type") == kind]
        return "".join(parts) if parts else None
    calls = [_Call(b.get("id"), b.get("name"), b.get("json") or json.dumps(b.get("input") or {}))
             for b in out.blocks if b.get("type") == "tool_use"]
    billed = (out.usage or {}).get("output_tokens")
    fr = {"tool_use": "tool_calls", "max_tokens": "length"}.get(out.stop_reason, "stop")
    return MessagesAnswer(joined("thinking", "thinking"), joined("text", "text"), calls, fr,
                          billed if isinstance(billed, int) and not isinstance(billed, bool) and billed > 0 else None)


@dataclass
class Entry:
    api: str                     # "chat" or "messages"
    answer: Any                  # ChatResult or MessagesStream
    request: dict | None         # as sent (clipped in the summary and the failure)
    log_index: int | None        # its place in its Chat's log
    violations: list[Violation] = field(default_factory=list)
    accounting: dict | None = None
    accounted: Any = None        # what text accounting reads (a /v1/messages answer as chat fields)
    waived: list[Violation] = field(default_factory=list)
    screen: dict | None = None   # its degeneration screen (glmverify.degeneration)


#: the invariants that depend on the model writing GLM-5.2's format (not the protocol's): waived
#: for a row whose model output is unscripted (``expect.unscripted_output``)
CONTENT_CODES = ("content.markup", "content.special_token", "text.accounting") + degeneration.CODES


@dataclass
class Waiver:
    """Codes a check does not judge on some answers, and why (recorded in the evidence)."""

    codes: tuple[str, ...]
    why: str
    applies: Callable[[dict | None], bool] = lambda request: True  # by the request as sent


class Ledger:
    """Every answer one check produced, and what each violated."""

    def __init__(self, special_tokens=GLM_SPECIAL_TOKENS, context_window: int | None = None,
                 counter: TokenCounter | None = None, tokenized: int = MAX_TOKENIZED_ANSWERS,
                 max_tokens: int | None = None):
        self.max_tokens = max_tokens  # the profile's: a request asking for fewer cuts on purpose
        self.special_tokens = tuple(special_tokens)
        self.context_window = context_window
        self.counter = counter
        self.tokenized = tokenized
        self.entries: list[Entry] = []
        self.notes: list[str] = []
        self.waivers: list[Waiver] = []

    def waive(self, codes, why: str, applies: Callable[[dict | None], bool] | None = None) -> None:
        """Do not judge ``codes`` on the answers to requests ``applies`` accepts (default: all),
        because of ``why``: a request made wrong on purpose, or a row whose model output is not a
        model's. The waived violations stay in the evidence."""
        self.waivers.append(Waiver(tuple(codes), why, applies or (lambda request: True)))

    def add_chat(self, res, request: dict | None = None, log_index: int | None = None) -> None:
        self.entries.append(Entry("chat", res, request, log_index))

    def add_messages(self, out, request: dict | None = None) -> None:
        self.entries.append(Entry("messages", out, request, None))

    def _counts(self, answers: list["Entry"]) -> dict[int, list[int]]:
        """Token counts of the delivered texts of the answers to re-tokenise (all of them with a
        local tokenizer, an even spread of ``tokenized`` with an engine's endpoint), batched in one
        call; a counter that fails leaves the byte bound, with a note."""
        if self.counter is None or not answers:
            return {}
        # a body of megabytes (garbage, a runaway) is held to the byte bound: tokenising it would
        # cost more than the check it serves
        answers = [e for e in answers if sum(len(t) for t in delivered(e.accounted)[0]) <= MAX_TOKENIZED_CHARS]
        n, k = len(answers), max(self.tokenized, 2)
        if not answers:
            return {}
        picked = answers if not self.counter.remote or n <= k else [answers[round(i * (n - 1) / (k - 1))] for i in range(k)]
        texts = sorted({t for e in picked for t in delivered(e.accounted)[0]})
        try:
            known = dict(zip(texts, self.counter.count(texts)))
        except Exception as exc:  # noqa: BLE001 - an endpoint that cannot count leaves the byte bound
            self.notes.append(f"token counting failed ({self.counter.basis}): {type(exc).__name__}: {exc}"[:300])
            return {}
        return {id(e): [known[t] for t in delivered(e.accounted)[0]] for e in picked}

    def check(self) -> list[Entry]:
        """Judge every answer once; the entries with violations."""
        for e in self.entries:
            e.accounted = messages_answer(e.answer) if e.api == "messages" else e.answer
        judged = [e for e in self.entries if e.api == "messages" or e.answer.error is None]
        counts = self._counts(judged)
        basis = self.counter.basis if self.counter else ""
        for e in judged:
            acc, e.accounting = text_accounting(e.accounted, counts.get(id(e)), basis)
            found = (messages_violations(e.answer, self.special_tokens) if e.api == "messages" else
                     answer_violations(e.answer, self.special_tokens, self.context_window)) + acc
            waived = {c for w in self.waivers if w.applies(e.request) for c in w.codes}
            e.violations = [v for v in found if v.code not in waived]
            e.waived = [v for v in found if v.code in waived]
            try:
                e.screen = {**degeneration.screen(e.accounted, e.request, self.max_tokens),
                            "waived": bool(set(degeneration.CODES) & waived)}
            except Exception as exc:  # noqa: BLE001 - a screen that breaks is a note, never a failed check
                self.notes.append(f"degeneration screen failed: {type(exc).__name__}: {exc}"[:300])
        return [e for e in self.entries if e.violations]

    def summary(self, bad: list[Entry]) -> dict:
        """For the evidence: answers seen, serving errors kept apart, every violation (bounded)."""
        errors = [e for e in self.entries if e.api == "chat" and e.answer.error is not None]
        bases = sorted({(e.accounting or {}).get("basis") or "" for e in self.entries} - {""})
        return {"answers": len(self.entries), "judged": len(self.entries) - len(errors),
                "serving_errors": {"count": len(errors), "first": [e.answer.error for e in errors[:3]]},
                "text_accounting_basis": bases, "notes": self.notes, "degeneration": self.degeneration(),
                **({"waived": {"rules": [{"codes": list(w.codes), "why": w.why} for w in self.waivers],
                               "answers": sum(1 for e in self.entries if e.waived),
                               "codes": sorted({v.code for e in self.entries for v in e.waived})}}
                   if self.waivers else {}),
                "violations": [{"answer": self.entries.index(e), "api": e.api, "log_index": e.log_index,
                                "request": _clip(e.request), "codes": sorted({v.code for v in e.violations}),
                                "messages": [str(v) for v in e.violations[:3]]} for e in bad[:MAX_LEDGER_VIOLATIONS]]}

    def degeneration(self) -> dict:
        """The degeneration tally of every screened answer (``glmverify.degeneration``)."""
        tally = degeneration.new_tally()
        for i, e in enumerate(self.entries):
            if e.screen is not None:
                rid = _answer_id(e)
                degeneration.add(tally, e.screen, {"answer": i, "api": e.api, "log_index": e.log_index,
                                                   **({"request_id": rid} if rid else {})})
        return tally

    def failure(self, bad: list[Entry]) -> str:
        first = bad[0]
        where = f"answer {self.entries.index(first)} of {len(self.entries)} ({first.api}" + \
            (f", chat log #{first.log_index}" if first.log_index is not None else "") + ")"
        to = json.dumps(_clip(first.request), ensure_ascii=False)[:300] if first.request else f"a {first.api} request"
        return (f"engine invariant violated by {len(bad)} of {len(self.entries)} answers; first: {where} to {to}: "
                + "; ".join(f"{v.code}: {v}" for v in first.violations[:3]))


def _answer_id(e: Entry) -> str | None:
    """The completion's id as the engine sent it (a reviewer greps the engine's log for it)."""
    wire = getattr(e.answer, "wire", None) if e.api == "chat" else None
    first = wire[0] if isinstance(wire, list) and wire else wire
    rid = first.get("id") if isinstance(first, dict) else getattr(e.answer, "message_id", None)
    return rid if isinstance(rid, str) else None


def _clip(request: dict | None) -> dict | None:
    """A request as a reviewer needs it: the last message and the fields that shape the answer."""
    if not isinstance(request, dict):
        return request
    msgs = request.get("messages") if isinstance(request.get("messages"), list) else []
    last = msgs[-1] if msgs and isinstance(msgs[-1], dict) else {}
    keep = {k: request[k] for k in ("stream", "max_tokens", "tool_choice", "reasoning_effort", "chat_template_kwargs", "seed")
            if k in request}
    text = last.get("content") if isinstance(last.get("content"), str) else str(last.get("content"))[:120]
    return {**keep, "messages": len(msgs), "last": {"role": last.get("role"), "content": (text or "")[:160]}}


_ACTIVE: list[Ledger] = []


@contextmanager
def ledger_scope(ledger: Ledger) -> Iterator[Ledger]:
    """Answers produced inside the block go to ``ledger`` (one per running check)."""
    _ACTIVE.append(ledger)
    try:
        yield ledger
    finally:
        _ACTIVE.remove(ledger)


def record_chat(res, request: dict | None = None, log_index: int | None = None) -> None:
    """A chat answer for the running check's ledger (none open: nothing to do)."""
    if _ACTIVE:
        _ACTIVE[-1].add_chat(res, request, log_index)


def record_messages(out, request: dict | None = None) -> None:
    if _ACTIVE:
        _ACTIVE[-1].add_messages(out, request)


def waive(codes, why: str, applies: Callable[[dict | None], bool] | None = None) -> None:
    """``Ledger.waive`` on the running check's ledger (none open: nothing to do)."""
    if _ACTIVE:
        _ACTIVE[-1].waive(codes, why, applies)
