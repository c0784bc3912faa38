"""What every tool call of an answer declared on the wire, and the fields each call must carry.

``glmverify.chat`` normalises an answer into ``ToolCall(id, name, arguments)``; a client
dispatches on more than that: ``type`` ``"function"``, and in a stream the call's header (id,
type, name) on its first delta, sent once (SGLang repeats ``type`` on every fragment, which is
legal; a repeated id or name is not: clients concatenate names). ``declared`` gives what each
call declared (one dict per call, in index order), from the message of a non-stream answer or
from every chunk of a stream; ``field_problems``
names every call field that is empty or undeclared, and every header sent again, in words that
tell the causes apart (an empty name is not an unknown name; a header re-sent on the chunk that
carries ``finish_reason`` is not one re-sent with every fragment). What each call declared is read
from the answer's wire form (``ChatResult.wire``: the body, or the stream's chunks), which every
``Chat`` answer keeps. The checks themselves live in ``invariants`` (one checker for every
answer); this module keeps the names the suites import.
"""
from __future__ import annotations

from .invariants import call_field_violations, declared, declared_nonstream, declared_stream  # noqa: F401 (re-exported)


def field_problems(res, offered: list[str]) -> list[str]:
    """Every call field that is empty or undeclared, every name not among ``offered``, and every
    stream header sent again (``invariants.call_field_violations``; each problem a coded ``str``)."""
    return call_field_violations(res, offered)
