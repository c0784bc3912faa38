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
``Chat`` answer keeps.
"""
from __future__ import annotations

from typing import Any

from .chat import ChatResult


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


def declared(res: ChatResult) -> list[dict] | None:
    """What each call of ``res`` declared on the wire, or None when the answer kept no wire form."""
    if res.wire is None:
        return None
    return declared_stream(res.wire) if res.stream else declared_nonstream(res.wire)


def field_problems(res: ChatResult, offered: list[str]) -> list[str]:
    """Every call field that is empty or undeclared, and every stream header sent again.

    Uses what the calls declared on the wire (``declared``) where the answer kept its wire form,
    else the normalised calls (then ``type`` cannot be judged). ``finish_reason`` ``tool_calls``
    needs a call."""
    mode = "stream" if res.stream else "non-stream"
    fr = res.finish_reason
    calls = declared(res)
    if calls is None:
        calls = [{"id": t.id, "type": "function", "name": t.name, "arguments": t.arguments, "headers": [],
                     "header_with_finish": False} for t in res.tool_calls]
    out = []
    if fr == "tool_calls" and not calls:
        out.append(f"{mode}: finish_reason 'tool_calls' but no tool call in the answer")
    for i, d in enumerate(calls):
        while_ = f" while finish_reason is {fr!r}"
        name = d.get("name")
        if not (isinstance(d.get("id"), str) and d["id"]):
            out.append(f"{mode}: call {i} ({name}): empty id ({d.get('id')!r}){while_}")
        if not (isinstance(name, str) and name):
            out.append(f"{mode}: call {i}: empty name ({name!r}){while_}")
        elif name not in offered:
            out.append(f"{mode}: call {i}: name {name!r} not among the offered tools {offered}")
        if d.get("type") != "function":
            out.append(f"{mode}: call {i} ({name}): type {d.get('type')!r}, expected 'function'")
        args = d.get("arguments")
        if not (isinstance(args, str) and args.strip()):
            out.append(f"{mode}: call {i} ({name}): empty arguments ({args!r}){while_}; expected a JSON object "
                       "string, at least '{}'")
        again = d.get("headers", [])[1:]
        if d.get("header_with_finish"):
            out.append(f"{mode}: call {i} ({name}): id/type/name re-sent in the last chunk, the one carrying "
                       f"finish_reason {d['header_with_finish']!r} (header sent {len(again) + 1} times)")
        elif again:
            out.append(f"{mode}: call {i} ({name}): id/type/name re-sent in {len(again)} later argument chunk(s)")
    return out
