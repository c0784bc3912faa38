"""GLM-5.2 raw-output catalogue: loading, validation, comparison, stream reassembly, runner reports.

Stdlib only: the runners import it inside each engine's own venv, with its two siblings
(``chunking``: GLM's markers and the seeded chunkers; ``jsonvalues``: strict JSON equality and
the JSON Schema subset the validation uses), loaded there as a package of their own. Their
names stay importable from here (``catalogue.chunkings``, ``catalogue.schema_errors``, ...).

Catalogue line (``fixtures/glm52_outputs.jsonl``)::

    {"id": "think_single_call", "raw": "...", "thinking": true,
     "tools": [<OpenAI tool definitions>],
     "expect": {"reasoning": str|null, "content": str|null,
                "tool_calls": [{"name": str, "arguments": {...}}]},
     "note": "optional free text", "finish_reason": "stop"|"length" (optional)}

Comparison normalisation (where engines legitimately differ):

* ``reasoning`` and ``content``: surrounding whitespace is stripped and an empty string
  counts as null. SGLang returns ``content: ""`` where vLLM returns ``null``; both strip or
  keep the newline after ``</think>`` differently; neither difference is visible to a user.
* ``tool_calls[i].arguments``: compared as parsed JSON, never as text (key order and
  spacing differ between engines). Types are strict (``3`` is not ``"3"``, ``true`` is not
  ``1``) except that an integer equals the same float value. String values are compared
  exactly: whitespace inside argument strings is significant.
* Tool-call ids are not compared; in streams each call must carry its id and name once
  (in its first delta) and its arguments as concatenated fragments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .chunking import GLM_MARKERS, GLM_TURN_TOKENS, atomize, chunkings  # noqa: F401 - public names of the catalogue
from .jsonvalues import json_equal, schema_errors, type_of  # noqa: F401 - public names of the catalogue

DEFAULT_CATALOGUE = Path(__file__).resolve().parents[2] / "fixtures" / "glm52_outputs.jsonl"

ABSENT = "<absent>"  # stands for a missing key / field in a Diff


class CatalogueError(ValueError):
    pass


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Case:
    id: str
    raw: str
    thinking: bool
    tools: list
    expect: dict
    note: str = ""
    finish_reason: str = "stop"


_JSON_TYPES = {"string", "integer", "number", "boolean", "object", "array", "null"}


def load_catalogue(path: str | Path = DEFAULT_CATALOGUE) -> list[Case]:
    """Load and validate the catalogue; raises CatalogueError with line numbers."""
    cases: list[Case] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CatalogueError(f"{path}:{lineno}: invalid JSON: {exc}") from exc
            try:
                case = validate_case(obj)
            except CatalogueError as exc:
                raise CatalogueError(f"{path}:{lineno}: {exc}") from exc
            if case.id in seen:
                raise CatalogueError(f"{path}:{lineno}: duplicate id {case.id!r}")
            seen.add(case.id)
            cases.append(case)
    if not cases:
        raise CatalogueError(f"{path}: no cases")
    return cases


def validate_case(obj: Any) -> Case:
    if not isinstance(obj, dict):
        raise CatalogueError("a case must be a JSON object")
    for key, typ in (("id", str), ("raw", str), ("thinking", bool), ("tools", list), ("expect", dict)):
        if key not in obj:
            raise CatalogueError(f"missing key {key!r}")
        if not isinstance(obj[key], typ):
            raise CatalogueError(f"{key!r} must be {typ.__name__}")
    unknown = set(obj) - {"id", "raw", "thinking", "tools", "expect", "note", "finish_reason"}
    if unknown:
        raise CatalogueError(f"{obj['id']}: unknown keys {sorted(unknown)}")
    cid = obj["id"]
    if not cid or any(c.isspace() for c in cid):
        raise CatalogueError(f"id {cid!r} must be non-empty without spaces")
    tools_by_name: dict[str, dict] = {}
    for i, tool in enumerate(obj["tools"]):
        if not (isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict)):
            raise CatalogueError(f"{cid}: tools[{i}] must be {{'type': 'function', 'function': {{...}}}}")
        fn = tool["function"]
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise CatalogueError(f"{cid}: tools[{i}].function.name missing")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict) or params.get("type") != "object":
            raise CatalogueError(f"{cid}: tools[{i}].function.parameters must be an object schema")
        tools_by_name[fn["name"]] = params
    exp = obj["expect"]
    if set(exp) != {"reasoning", "content", "tool_calls"}:
        raise CatalogueError(f"{cid}: expect must have exactly reasoning, content, tool_calls")
    for key in ("reasoning", "content"):
        if exp[key] is not None and not isinstance(exp[key], str):
            raise CatalogueError(f"{cid}: expect.{key} must be a string or null")
    if not isinstance(exp["tool_calls"], list):
        raise CatalogueError(f"{cid}: expect.tool_calls must be a list")
    for i, call in enumerate(exp["tool_calls"]):
        if not (isinstance(call, dict) and set(call) == {"name", "arguments"}):
            raise CatalogueError(f"{cid}: expect.tool_calls[{i}] must be {{name, arguments}}")
        if call["name"] not in tools_by_name:
            raise CatalogueError(f"{cid}: expect.tool_calls[{i}].name {call['name']!r} is not an offered tool")
        if not isinstance(call["arguments"], dict):
            raise CatalogueError(f"{cid}: expect.tool_calls[{i}].arguments must be an object")
        problems = schema_errors(call["arguments"], tools_by_name[call["name"]])
        if problems:
            raise CatalogueError(f"{cid}: expect.tool_calls[{i}].arguments violate the tool schema: {problems}")
    if not obj["thinking"] and exp["reasoning"] is not None:
        raise CatalogueError(f"{cid}: a non-think case cannot expect reasoning")
    if obj["raw"].count("<tool_call>") < len(exp["tool_calls"]):
        raise CatalogueError(f"{cid}: raw has fewer <tool_call> than expected calls")
    fr = obj.get("finish_reason", "stop")
    if fr not in ("stop", "length"):
        raise CatalogueError(f"{cid}: finish_reason must be stop or length")
    return Case(
        id=cid, raw=obj["raw"], thinking=obj["thinking"], tools=obj["tools"], expect=exp,
        note=obj.get("note", ""), finish_reason=fr,
    )


# --------------------------------------------------------------------------- comparison


@dataclass
class Diff:
    field: str
    expected: Any
    got: Any

    def as_dict(self) -> dict:
        return {"field": self.field, "expected": self.expected, "got": self.got}


def _norm_text(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        return value
    value = value.strip()
    return value or None


def _json_diffs(expected: Any, got: Any, path: str) -> list[Diff]:
    te, tg = type_of(expected), type_of(got)
    if {te, tg} <= {"integer", "number"}:
        return [] if expected == got else [Diff(path, expected, got)]
    if te != tg:
        return [Diff(path, expected, got)]
    if te == "object":
        out: list[Diff] = []
        for key in expected:
            if key not in got:
                out.append(Diff(f"{path}.{key}", expected[key], ABSENT))
            else:
                out.extend(_json_diffs(expected[key], got[key], f"{path}.{key}"))
        for key in got:
            if key not in expected:
                out.append(Diff(f"{path}.{key}", ABSENT, got[key]))
        return out
    if te == "array":
        if len(expected) != len(got):
            return [Diff(path, expected, got)]
        out = []
        for i, (x, y) in enumerate(zip(expected, got)):
            out.extend(_json_diffs(x, y, f"{path}[{i}]"))
        return out
    return [] if expected == got else [Diff(path, expected, got)]


def compare(expect: dict, got: dict) -> list[Diff]:
    """All differences between an expectation and a parsed message, in field order
    (reasoning, content, tool_calls length, then per call name and arguments).

    ``got`` is ``{"reasoning", "content", "tool_calls": [{"name", "arguments"}]}`` where
    ``arguments`` is the JSON text the engine returned (or an already decoded object).
    Extra keys in ``got`` (e.g. ``"violations"`` from a stream) are reported after.
    """
    diffs: list[Diff] = []
    for key in ("reasoning", "content"):
        e, g = _norm_text(expect.get(key)), _norm_text(got.get(key))
        if e != g:
            diffs.append(Diff(key, e, g))
    exp_calls = expect.get("tool_calls") or []
    got_calls = got.get("tool_calls") or []
    if len(exp_calls) != len(got_calls):
        diffs.append(Diff(
            "tool_calls.length", len(exp_calls), len(got_calls),
        ))
    for i, (ec, gc) in enumerate(zip(exp_calls, got_calls)):
        if ec["name"] != gc.get("name"):
            diffs.append(Diff(f"tool_calls[{i}].name", ec["name"], gc.get("name")))
        args = gc.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else ABSENT
            except json.JSONDecodeError:
                diffs.append(Diff(f"tool_calls[{i}].arguments", ec["arguments"], args))
                continue
        if not isinstance(args, dict):
            diffs.append(Diff(f"tool_calls[{i}].arguments", ec["arguments"], args))
            continue
        diffs.extend(_json_diffs(ec["arguments"], args, f"tool_calls[{i}].arguments"))
    for v in got.get("violations") or []:
        diffs.append(v if isinstance(v, Diff) else Diff(**v))
    return diffs


def first_diff(expect: dict, got: dict) -> Diff | None:
    diffs = compare(expect, got)
    return diffs[0] if diffs else None


def summarise(diffs: list[Diff], limit: int = 4) -> str:
    parts = [f"{d.field}: expected {_short(d.expected)}, got {_short(d.got)}" for d in diffs[:limit]]
    if len(diffs) > limit:
        parts.append(f"... {len(diffs) - limit} more")
    return "; ".join(parts)


def _short(value: Any, n: int = 80) -> str:
    s = json.dumps(value, ensure_ascii=False)
    return s if len(s) <= n else s[: n - 3] + "..."


# --------------------------------------------------------------------------- streams


class StreamAssembler:
    """Reassembles OpenAI-style stream deltas into one message.

    Per tool call (by index): the id and the name must come once, in the call's first
    delta; argument fragments are concatenated. Anything else is a protocol violation,
    reported as a Diff on ``tool_calls[i].id`` / ``tool_calls[i].name``.
    """

    def __init__(self) -> None:
        self.reasoning: list[str] = []
        self.content: list[str] = []
        self.calls: dict[int, dict] = {}
        self.order: list[int] = []
        self.violations: list[Diff] = []

    def add_reasoning(self, text: str | None) -> None:
        if text:
            self.reasoning.append(text)

    def add_content(self, text: str | None) -> None:
        if text:
            self.content.append(text)

    def add_tool_delta(self, index: int, id: str | None = None, name: str | None = None,
                       arguments: str | None = None) -> None:
        call = self.calls.get(index)
        if call is None:
            call = self.calls[index] = {"id": None, "name": None, "arguments": "", "ids": [], "names": []}
            self.order.append(index)
            if not name:
                self.violations.append(Diff(f"tool_calls[{index}].name", "name in the call's first delta",
                                            f"first delta without name (arguments={arguments!r})"))
        if id:
            call["ids"].append(id)
            if len(call["ids"]) == 2 and call["ids"][0] != id:
                self.violations.append(Diff(f"tool_calls[{index}].id", "one id per call", call["ids"][:]))
            call["id"] = call["id"] or id
        if name:
            call["names"].append(name)
            if len(call["names"]) == 2:
                self.violations.append(Diff(f"tool_calls[{index}].name", "name sent once", call["names"][:]))
            call["name"] = call["name"] or name
        if arguments:
            call["arguments"] += arguments

    def message(self) -> dict:
        calls = []
        violations = list(self.violations)
        for idx in sorted(self.order):
            c = self.calls[idx]
            if not c["ids"]:
                violations.append(Diff(f"tool_calls[{idx}].id", "an id in the call's first delta", None))
            calls.append({"name": c["name"], "arguments": c["arguments"]})
        return {
            "reasoning": "".join(self.reasoning) or None,
            "content": "".join(self.content) or None,
            "tool_calls": calls,
            "violations": violations,
        }


# --------------------------------------------------------------------------- reports


def case_result(case_id: str, mode: str, n_chunkings: int, outcome: str,
                diff: Diff | None = None, detail: str = "") -> dict:
    return {
        "id": case_id,
        "mode": mode,
        "chunkings": n_chunkings,
        "outcome": outcome,
        "first_diff": diff.as_dict() if diff else None,
        "detail": detail,
    }


def judge_nonstream(case: Case, got: dict) -> dict:
    diffs = compare(case.expect, got)
    if not diffs:
        return case_result(case.id, "nonstream", 1, "passed")
    return case_result(case.id, "nonstream", 1, "failed", diffs[0], summarise(diffs))


def judge_stream(case: Case, messages: list[dict], chunk_lists: list[list[str]]) -> dict:
    """``messages[k]`` is the reassembled message for ``chunk_lists[k]``."""
    failures = []
    for k, msg in enumerate(messages):
        diffs = compare(case.expect, msg)
        if diffs:
            failures.append((k, diffs))
    n = len(messages)
    if not failures:
        return case_result(case.id, "stream", n, "passed")
    k, diffs = failures[0]
    sizes = [len(c) for c in chunk_lists[k]]
    detail = (
        f"{len(failures)}/{n} chunkings failed; first is #{k} "
        f"({len(sizes)} deltas, sizes {sizes[:12]}{'...' if len(sizes) > 12 else ''}): "
        + summarise(diffs)
    )
    return case_result(case.id, "stream", n, "failed", diffs[0], detail)


def error_result(case_id: str, mode: str, n: int, exc: BaseException) -> dict:
    import traceback

    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    where = "".join(tb[-3:]).strip().replace("\n", " | ")
    return case_result(case_id, mode, n, "error", None, f"{type(exc).__name__}: {exc} [{where[-600:]}]")


def runner_args(argv: list[str] | None, engine: str):
    """The common command line of the runners."""
    import argparse

    p = argparse.ArgumentParser(description=f"Run the GLM-5.2 catalogue through {engine}'s parsers.")
    p.add_argument("--catalogue", default=str(DEFAULT_CATALOGUE))
    p.add_argument("--reasoning-parser", default="glm45")
    p.add_argument("--tool-parser", default="glm47")
    p.add_argument("--chunkings", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", action="append", default=[], help="case id (repeatable)")
    p.add_argument("--split-markers", action="store_true",
                   help="let stream deltas split GLM markers (text-level stress; "
                        "real detokenizers never do this)")
    args = p.parse_args(argv)
    if args.chunkings < 1:
        p.error("--chunkings must be >= 1")
    return args


def select_cases(cases: list[Case], only: list[str]) -> list[Case]:
    if not only:
        return cases
    known = {c.id for c in cases}
    missing = [o for o in only if o not in known]
    if missing:
        raise CatalogueError(f"unknown case ids: {missing}")
    return [c for c in cases if c.id in set(only)]
