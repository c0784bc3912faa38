"""What GLM-5.2 would generate: the stand-in's raw output, scripted from the prompt.

``respond(prompt)`` takes the prompt rendered by ``chat_template.jinja`` (the generation prompt
included) and returns the raw text the model generates after it; the caller appends the end-of-turn
token. ``generate`` returns the same as a ``Response`` that can also end in a repetition loop. No
vLLM import: the logits processor (``processor.py``) and the unit tests both call them.

Decoding (``sampling``, chosen per request by the processor; the draws live in ``sampling.py``):

* ``None``: scripted, a pure function of the prompt (everything described below).
* sampled (``Sampling(rng)``; GLM-5.2 samples at temperature 1.0): the same structure, but the
  reasoning length varies per request around a prompt-dependent mean (Max about twice High), and
  a GSM8K answer is wrong (off by one) with probability ``P_WRONG_THINK`` (3%, thinking on) or
  ``P_WRONG_NONTHINK`` (6%, thinking off): a healthy deployment still gets a few questions wrong.
  Plain short answers may gain a closing sentence. Tool calls, JSON, needle and tool-result
  answers keep the scripted content.
* greedy (``Sampling(greedy=True)``, temperature 0): the scripted output, except that about
  ``GREEDY_LOOP_PERCENT`` % of thinking-on prompts (by a hash of the prompt) fall into a reasoning
  repetition loop: ``Response.loop`` repeats without end and ``</think>`` never comes.

Raw output shape (GLM-5.2):

* thinking on (prompt ends ``<|assistant|><think>``): ``REASONING</think>ANSWER``;
  thinking off (prompt ends ``<|assistant|></think>``): ``ANSWER``.
* Reasoning (scripted) is a deterministic function of the prompt. Its length depends on the effort
  line the template rendered: ``Reasoning Effort: High`` gives k sentences, ``Max`` (and no line)
  gives the same k sentences each followed by two checking sentences, about 3x the tokens.
* Tools offered and the last turn is a user turn: ``[preamble]<tool_call>...`` blocks in GLM's
  compact format, one per offered tool whose name appears in the last user message (in order of
  first appearance: parallel calls), else one call to the first tool. Arguments are generated from
  each tool's JSON Schema and are valid against it. The one-line text preamble ("I'll call NAME
  for this.") is left out when a grammar forces the call (tool_choice required / named). With
  ``tool_choice: none`` vLLM still renders the tools (unless
  ``--exclude-tools-when-tool-choice-none``) and drops the calls, so the preamble is the content.
* Last turn is a tool result: ``The result is: <tool result text>.`` and no new call.
* ``json_schema`` given: compact JSON valid against it after ``</think>``, no markup.
* Needle: a sentence ``NEEDLE_TEMPLATE`` anywhere in the conversation plus a last user message
  that asks about the "passphrase" (outside the needle sentence itself) gives the answer
  ``The secret passphrase is X.`` (the first needle in the conversation).
* GSM8K: a last user message containing a question of the GSM8K test set (``GSM8K_ENV`` or the
  default path; whitespace-normalised substring match, the question appearing last wins) gives
  the gold rationale as reasoning and an answer ending ``The answer is N.`` (no ``\\boxed``).
* Otherwise a short answer that echoes a few words of the question.

Argument values (``hints``), looked up in the last user message by property name, at any depth:

* exact form: ``NAME=<JSON value>`` right after the property name, e.g. ``text="  Grüße\\n  "``,
  ``days=3``, ``tags=["a","b"]``. The value is read with ``json.JSONDecoder(strict=False)``
  (so JSON escapes and raw newlines both work) and kept exactly: a test that wants an exact
  string writes ``f"{name}={json.dumps(value, ensure_ascii=False)}"``. Such strings must not
  contain GLM's tag tokens (``<arg_value>``, ``</tool_call>`` ...).
* loose form: ``NAME VALUE`` / ``NAME: VALUE`` / ``NAME is VALUE`` / ``NAME of VALUE``, e.g.
  ``city Paris`` or ``days 3``: one word (or number, or true/false) after the name.
* enums: an enum value that appears as a word in the message is chosen.
A hint is used only when it is valid for the property's schema; otherwise a value is generated.

Faults (``FAULTS``; the processor reads ``GLM_STANDIN_FAULTS``, comma separated):
``wrong_answers`` (GSM8K answer off by one, needle passphrase altered), ``skip_think_end`` (no
``</think>``: the whole answer lands in reasoning), ``script_canary`` (the answer contains
``CANARY``), ``ignore_effort`` (Max-length reasoning at every effort), ``empty_reasoning``
(``</think>`` straight away), ``no_tool_call`` (answers in text instead of calling a tool,
unless a grammar forces the call), ``strip_arg_whitespace`` (string arguments stripped),
``low_accuracy`` (GSM8K answers wrong with probability ``P_WRONG_LOW_ACCURACY`` = 0.2 when sampled,
every ``LOW_ACCURACY_EVERY``-th question by a hash otherwise: about 80% accuracy),
``ignore_thinking_off`` (thinking off still "thinks": Max-length reasoning-like prose, no tags, in
front of the answer, unless a grammar constrains the answer: no reasoning field, thinking-on length).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Constants and Sampling re-exported: callers read them from here.
from glmverify.standin.sampling import (  # noqa: F401
    GREEDY_LOOP_PERCENT, LOW_ACCURACY_EVERY, P_WRONG_LOW_ACCURACY, P_WRONG_NONTHINK, P_WRONG_THINK, SAMPLING_ENV,
    SEED_ENV, Sampling, answer_tail, engine_seed, greedy_loop, gsm8k_wrong, is_sampled, reasoning_sentences,
    request_rng, sampling_enabled,
)

#: The needle sentence; ``{passphrase}`` is one line of text without ". " inside.
NEEDLE_TEMPLATE = "The secret passphrase is {passphrase}."
NEEDLE_RE = re.compile(r"The secret passphrase is ([^\n]+?)\.(?=\s|$)")
#: The word a question must contain for the needle to be answered.
NEEDLE_QUESTION_WORD = "passphrase"

#: Env var naming the GSM8K test JSONL (fields question, answer; answer ends "#### N").
GSM8K_ENV = "GLM_STANDIN_GSM8K"
#: How a GSM8K answer ends.
GSM8K_ANSWER_FORMAT = "The answer is {answer}."
#: Longer user messages are not searched for GSM8K questions (long-context prompts).
GSM8K_MAX_CHARS = 100_000
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_GSM8K_PATH = REPO_ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"

FAULTS_ENV = "GLM_STANDIN_FAULTS"
CANARY = "<script>window.__glm_canary=1</script>"
FAULTS = frozenset(
    {
        "wrong_answers",
        "skip_think_end",
        "script_canary",
        "ignore_effort",
        "empty_reasoning",
        "no_tool_call",
        "strip_arg_whitespace",
        "low_accuracy",
        "ignore_thinking_off",
    }
)

THINK_START = "<think>"
THINK_END = "</think>"
ROLE_TOKENS = {
    "<|system|>": "system",
    "<|user|>": "user",
    "<|assistant|>": "assistant",
    "<|observation|>": "tool",
}
_ROLE_RE = re.compile("(" + "|".join(re.escape(t) for t in ROLE_TOKENS) + ")")
_EFFORT_PREFIX = "Reasoning Effort: "
_TOOLS_HEADER = "\n# Tools"
_TOOL_RESPONSE_RE = re.compile(r"<tool_response>(.*?)</tool_response>", re.S)
# Markup that must never leak from user text into scripted prose.
_TAG_RE = re.compile(r"<[^<>]{0,40}>|\[gMASK\]")


def parse_faults(value: str | None) -> frozenset[str]:
    """``"a, b"`` -> ``{"a", "b"}`` (unknown names are kept: they simply do nothing)."""
    return frozenset(p.strip() for p in (value or "").split(",") if p.strip())


# --------------------------------------------------------------------------- prompt parsing


@dataclass
class Turn:
    role: str  # system | user | assistant | tool
    text: str
    tool_results: list[str] = field(default_factory=list)


@dataclass
class Prompt:
    thinking: bool
    effort: str | None  # "High", "Max" or None (no effort line)
    tools: list[dict]  # function objects: {name, description?, parameters?}
    turns: list[Turn]

    @property
    def last(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    @property
    def last_user_text(self) -> str:
        for t in reversed(self.turns):
            if t.role == "user":
                return t.text
        return ""

    def tool(self, name: str) -> dict | None:
        return next((t for t in self.tools if t.get("name") == name), None)


def _parse_tools(block: str) -> list[dict]:
    start, end = block.find("<tools>"), block.rfind("</tools>")
    if start < 0 or end < start:
        return []
    tools = []
    for line in block[start + len("<tools>") : end].splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("function"), dict):
            obj = obj["function"]
        if isinstance(obj, dict) and isinstance(obj.get("name"), str):
            tools.append(obj)
    return tools


def parse_prompt(prompt: str) -> Prompt:
    """Read back what ``chat_template.jinja`` rendered."""
    parts = _ROLE_RE.split(prompt)
    segments: list[tuple[str, str]] = []
    for i in range(1, len(parts), 2):
        segments.append((ROLE_TOKENS[parts[i]], parts[i + 1]))
    thinking = True
    if segments and segments[-1][0] == "assistant":
        # The generation prompt: "<think>" (thinking) or "</think>" (non-think).
        gen = segments.pop()[1]
        thinking = gen.startswith(THINK_START) and THINK_END not in gen
    effort: str | None = None
    tools: list[dict] = []
    turns: list[Turn] = []
    for idx, (role, text) in enumerate(segments):
        if role == "system" and text.startswith(_EFFORT_PREFIX) and effort is None and not turns and idx == 0:
            effort = text[len(_EFFORT_PREFIX) :].strip()
            continue
        if role == "system" and text.startswith(_TOOLS_HEADER) and not tools and not turns:
            tools = _parse_tools(text)
            continue
        if role == "tool":
            turns.append(Turn("tool", text, [r for r in _TOOL_RESPONSE_RE.findall(text)]))
            continue
        turns.append(Turn(role, text))
    return Prompt(thinking=thinking, effort=effort, tools=tools, turns=turns)


# --------------------------------------------------------------------------- helpers


def _seed(*texts: str) -> int:
    h = hashlib.sha256("\x00".join(texts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(h[:8], "big")


def _words(text: str, limit: int = 12) -> list[str]:
    text = _TAG_RE.sub(" ", text)
    seen: list[str] = []
    for w in re.findall(r"[^\W_][\w'-]*", text):
        w = w.strip("'-")
        if len(w) < 3 or w.lower() in _STOPWORDS or w in seen:
            continue
        seen.append(w)
        if len(seen) >= limit:
            break
    return seen


_STOPWORDS = frozenset(
    "the a an and or but for with from into onto about what which who whom whose when where why how "
    "is are was were be been being do does did can could would should will shall may might must "
    "this that these those there here please tell give show me you your our its it they them their "
    "of in on at to by as if then than so not no yes".split()
)


def _sanitize(text: str) -> str:
    """User text made safe to echo: no tags, no special-token text, one line."""
    return re.sub(r"\s+", " ", _TAG_RE.sub(" ", text)).strip()


def _lc_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s else s


# --------------------------------------------------------------------------- reasoning


def _effort_is_high(p: Prompt, faults: frozenset[str]) -> bool:
    return p.effort == "High" and "ignore_effort" not in faults


def _base_units(focus: str, kind: str) -> list[str]:
    """k (2-3) deterministic sentences about ``focus`` (short: CPU decoding time is the CI budget)."""
    rng = random.Random(_seed(kind, focus))
    words = _words(focus) or ["the request"]
    topic = " ".join(words[:6])
    k = 2 + rng.randrange(2)
    pool = [
        "I need to think about {w} here.",
        "The key detail seems to be {w}.",
        "Considering {w} and {w2} together should help.",
        "There is no need for extra assumptions about {w}.",
        "I want the reply to address {w} directly.",
        "It helps to separate {w} from {w2} first.",
        "Nothing in the request about {w} is ambiguous.",
    ]
    units = [f"The user is asking about {topic}."]
    while len(units) < k:
        tpl = pool[rng.randrange(len(pool))]
        units.append(tpl.format(w=words[rng.randrange(len(words))], w2=words[rng.randrange(len(words))]))
    return units


def _expand(units: list[str], high: bool, focus: str) -> list[str]:
    """Scripted sentences. High: the units. Max: each unit plus two checking sentences (about 3x)."""
    if high:
        return list(units)
    words = _words(focus) or ["the question"]
    out = []
    for i, u in enumerate(units):
        out.append(u)
        out.append(f"Double-check: {_lc_first(u)}")
        out.append(f"Confirmed for {words[i % len(words)]}, moving on.")
    return out


def _reasoning(units: list[str], focus: str, high: bool, sampling: Sampling | None) -> list[str]:
    """The reasoning sentences: scripted, or (sampled) of a drawn length."""
    if is_sampled(sampling):
        assert sampling is not None and sampling.rng is not None
        return reasoning_sentences(units, _words(focus), high=high, key=focus, rng=sampling.rng)
    return _expand(units, high, focus)


# --------------------------------------------------------------------------- JSON Schema values


def _resolve(schema: Any, root: Any, depth: int = 0) -> Any:
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and depth < 20:
        ref = schema["$ref"]
        if not ref.startswith("#"):
            return {k: v for k, v in schema.items() if k != "$ref"} or True
        target: Any = root
        for part in ref.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            else:
                return True
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **rest} if isinstance(target, dict) and rest else target
        depth += 1
    return schema


def _merge_all_of(schema: dict, root: Any) -> dict:
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    for sub in schema.get("allOf") or []:
        sub = _resolve(sub, root)
        if not isinstance(sub, dict):
            continue
        if "allOf" in sub:
            sub = _merge_all_of(sub, root)
        for k, v in sub.items():
            if k == "properties":
                merged["properties"] = {**merged.get("properties", {}), **v}
            elif k == "required":
                merged["required"] = list(dict.fromkeys([*merged.get("required", []), *v]))
            else:
                merged.setdefault(k, v)
    return merged


_TYPE_OF = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _valid(value: Any, schema: Any, root: Any) -> bool:
    """Is ``value`` valid for ``schema``? jsonschema when installed, else a structural check."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema is a project dependency
        return _valid_basic(value, schema, root)
    if schema is True or schema == {}:
        return True
    if schema is False:
        return False
    try:
        full = dict(schema)
        if isinstance(root, dict):
            for key in ("$defs", "definitions"):
                if key in root and key not in full:
                    full[key] = root[key]
        cls = jsonschema.validators.validator_for(full, default=jsonschema.Draft202012Validator)
        return cls(full).is_valid(value)
    except Exception:
        return _valid_basic(value, schema, root)


def _valid_basic(value: Any, schema: Any, root: Any) -> bool:
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return schema is not False
    if "const" in schema and value != schema["const"]:
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_TYPE_OF.get(x, lambda v: True)(value) for x in types):
            return False
    for key in ("anyOf", "oneOf"):
        if key in schema and not any(_valid_basic(value, s, root) for s in schema[key]):
            return False
    return True


@dataclass
class Hints:
    """Values for properties, looked up by name in the last user message."""

    text: str

    def exact(self, name: str) -> tuple[bool, Any]:
        for m in re.finditer(r"(?<![\w.-])" + re.escape(name) + r"\s*=\s*", self.text):
            try:
                value, _ = json.JSONDecoder(strict=False).raw_decode(self.text, m.end())
            except ValueError:
                continue
            return True, value
        return False, None

    def loose(self, name: str) -> list[Any]:
        out: list[Any] = []
        pat = r"(?<![\w-])" + re.escape(name) + r"(?![\w-])\s*(?:[:=]|\bis\b|\bof\b)?\s*([^\s,;!?()\[\]{}\"'<>]+)"
        for m in re.finditer(pat, self.text, re.I):
            word = m.group(1).rstrip(".")
            if not word or word.lower() in _STOPWORDS:
                continue
            out.append(word)
        return out

    def mentions(self, name: str) -> bool:
        return re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", self.text, re.I) is not None


def _loose_value(word: str, types: list[str]) -> list[Any]:
    cands: list[Any] = []
    for t in types:
        if t == "integer" and re.fullmatch(r"-?\d+", word):
            cands.append(int(word))
        elif t == "number" and re.fullmatch(r"-?\d+(?:\.\d+)?", word):
            cands.append(float(word) if "." in word else int(word))
        elif t == "boolean" and word.lower() in ("true", "false", "yes", "no"):
            cands.append(word.lower() in ("true", "yes"))
        elif t == "string":
            cands.append(word)
    return cands


def _hinted(name: str | None, schema: Any, hints: Hints | None, root: Any) -> tuple[bool, Any]:
    if not name or hints is None:
        return False, None
    found, value = hints.exact(name)
    if found and _valid(value, schema, root):
        return True, value
    s = _resolve(schema, root)
    if isinstance(s, dict):
        s = _merge_all_of(s, root) if "allOf" in s else s
        if isinstance(s.get("enum"), list):
            best = None
            for v in s["enum"]:
                if isinstance(v, str) and v:
                    m = re.search(r"(?<![\w-])" + re.escape(v) + r"(?![\w-])", hints.text, re.I)
                    if m and (best is None or m.start() < best[0]):
                        best = (m.start(), v)
            if best is not None:
                return True, best[1]
        types = _types(s, root)
        if any(t in ("string", "integer", "number", "boolean") for t in types):
            for word in hints.loose(name):
                for cand in _loose_value(word, types):
                    if _valid(cand, schema, root):
                        return True, cand
    return False, None


def _types(schema: dict, root: Any) -> list[str]:
    t = schema.get("type")
    if isinstance(t, str):
        return [t]
    if isinstance(t, list):
        return [x for x in t if isinstance(x, str)]
    out: list[str] = []
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            sub = _resolve(sub, root)
            if isinstance(sub, dict):
                out.extend(_types(sub, root))
    if not out:
        if "properties" in schema or "required" in schema:
            out = ["object"]
        elif "items" in schema or "prefixItems" in schema:
            out = ["array"]
    return out


def _string_value(name: str | None, schema: dict, salt: int) -> str:
    fmt = schema.get("format")
    by_format = {
        "date": "2024-01-15",
        "date-time": "2024-01-15T10:30:00Z",
        "time": "10:30:00",
        "email": "user@example.com",
        "uri": "https://example.com/",
        "url": "https://example.com/",
        "uri-reference": "https://example.com/",
        "uuid": "123e4567-e89b-12d3-a456-426614174000",
        "ipv4": "192.0.2.1",
        "ipv6": "2001:db8::1",
        "hostname": "example.com",
    }
    base = by_format.get(fmt) if isinstance(fmt, str) else None
    if base is None:
        base = f"example {name}" if name else "example"
        if salt:
            base += f" {salt + 1}"
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            rx = re.compile(pattern)
        except re.error:
            rx = None
        if rx is not None and not rx.search(base):
            for cand in ("example", "abc", "a", "A", "ABC", "1", "123", "a1", "2024-01-15", "x_1", "abc-123"):
                if rx.search(cand):
                    base = cand
                    break
    lo = schema.get("minLength")
    hi = schema.get("maxLength")
    if isinstance(lo, int) and len(base) < lo:
        base += "x" * (lo - len(base))
    if isinstance(hi, int) and len(base) > hi:
        base = base[: max(hi, 0)]
    return base


def _number_value(schema: dict, integer: bool, salt: int) -> int | float:
    v: float = (1 if integer else 1.5) + salt
    lo, hi = schema.get("minimum"), schema.get("maximum")
    xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    step = 1 if integer else 0.5
    if isinstance(xlo, bool):  # draft 4 style
        xlo, lo = (lo if xlo else None), (None if xlo else lo)
    if isinstance(xhi, bool):
        xhi, hi = (hi if xhi else None), (None if xhi else hi)
    if isinstance(lo, (int, float)) and v < lo:
        v = lo
    if isinstance(xlo, (int, float)) and v <= xlo:
        v = xlo + step
    if isinstance(hi, (int, float)) and v > hi:
        v = hi
    if isinstance(xhi, (int, float)) and v >= xhi:
        v = xhi - step
    mult = schema.get("multipleOf")
    if isinstance(mult, (int, float)) and mult > 0:
        import math

        v = math.ceil(v / mult) * mult
        if isinstance(hi, (int, float)) and v > hi:
            v = math.floor(hi / mult) * mult
    if integer:
        return int(v)
    return float(v)


def gen_value(
    schema: Any,
    name: str | None = None,
    hints: Hints | None = None,
    root: Any = None,
    depth: int = 0,
    salt: int = 0,
) -> Any:
    """A value valid against ``schema``: hinted by the user message where possible, else generated."""
    root = schema if root is None else root
    ok, v = _hinted(name, schema, hints, root)
    if ok:
        return v
    schema = _resolve(schema, root)
    if schema is True or schema is None or schema == {}:
        return f"example {name}" if name else "example"
    if not isinstance(schema, dict):
        return None
    if "allOf" in schema:
        schema = _merge_all_of(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][min(salt, len(schema["enum"]) - 1)]
    for key in ("anyOf", "oneOf"):
        branches = [_resolve(b, root) for b in schema.get(key) or []]
        if branches:
            non_null = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
            base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
            for b in non_null or branches:
                merged = {**base, **b} if isinstance(b, dict) else b
                val = gen_value(merged, name, hints, root, depth + 1, salt)
                if key == "anyOf" or sum(1 for bb in branches if _valid(val, bb, root)) == 1:
                    return val
            return gen_value(non_null[0] if non_null else branches[0], name, None, root, depth + 1, salt)
    types = _types(schema, root)
    t = next((x for x in types if x != "null"), types[0] if types else "string")
    if t == "object":
        return _object_value(schema, hints, root, depth, salt)
    if t == "array":
        return _array_value(schema, name, hints, root, depth)
    if t == "integer":
        return _number_value(schema, True, salt)
    if t == "number":
        return _number_value(schema, False, salt)
    if t == "boolean":
        return True
    if t == "null":
        return None
    return _string_value(name, schema, salt)


def _object_value(schema: dict, hints: Hints | None, root: Any, depth: int, salt: int) -> dict:
    props = schema.get("properties") or {}
    required = [r for r in schema.get("required") or [] if isinstance(r, str)]
    if not isinstance(props, dict):
        props = {}
    # Required properties and those the user mentions (by name, or an enum value of theirs);
    # with neither, every property (so typed values get exercised). Schema order throughout:
    # strict grammars (xgrammar glm_xml, any_order=False) expect it.
    keys = [
        k
        for k in props
        if k in required or (hints is not None and (hints.mentions(k) or _hinted(k, props[k], hints, root)[0]))
    ]
    if not keys and not required:
        keys = list(props)
    out: dict = {}
    for k in keys:
        out[k] = gen_value(props[k], k, hints, root, depth + 1, salt)
    for k in required:
        if k not in out:
            extra = schema.get("additionalProperties")
            out[k] = gen_value(extra if isinstance(extra, dict) else True, k, hints, root, depth + 1, salt)
    return out


def _array_value(schema: dict, name: str | None, hints: Hints | None, root: Any, depth: int) -> list:
    items = schema.get("items")
    prefix = schema.get("prefixItems")
    lo = schema.get("minItems") if isinstance(schema.get("minItems"), int) else 0
    hi = schema.get("maxItems") if isinstance(schema.get("maxItems"), int) else None
    out: list = []
    if isinstance(prefix, list):
        for i, sub in enumerate(prefix):
            out.append(gen_value(sub, name, None, root, depth + 1, i))
    elif isinstance(items, list):  # draft 4 tuple form
        for i, sub in enumerate(items):
            out.append(gen_value(sub, name, None, root, depth + 1, i))
        items = schema.get("additionalItems") if isinstance(schema.get("additionalItems"), dict) else None
    n = max(lo, 1 if not out else len(out))
    if hi is not None:
        n = min(n, hi)
    item_schema = items if isinstance(items, (dict, bool)) else True
    i = len(out)
    while len(out) < n and i < n + 20:
        v = gen_value(item_schema, name, None, root, depth + 1, i)
        if not schema.get("uniqueItems") or v not in out:
            out.append(v)
        i += 1
    return out[:n] if hi is not None else out


def tool_arguments(tool: dict, user_text: str) -> dict:
    """Arguments for ``tool`` valid against its ``parameters`` schema, hinted by ``user_text``."""
    params = tool.get("parameters")
    if not isinstance(params, dict) or not params:
        return {}
    hints = Hints(user_text)
    args = gen_value(params, None, hints, params)
    if not isinstance(args, dict) or not _valid(args, params, params):
        args = gen_value(params, None, None, params)
    return args if isinstance(args, dict) else {}


def _arg_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def format_tool_call(name: str, args: dict) -> str:
    """GLM-4.7+ compact call: ``<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value></tool_call>``."""
    body = "".join(f"<arg_key>{k}</arg_key><arg_value>{_arg_text(v)}</arg_value>" for k, v in args.items())
    return f"<tool_call>{name}{body}</tool_call>"


# --------------------------------------------------------------------------- GSM8K


def gsm8k_path() -> Path:
    return Path(os.environ.get(GSM8K_ENV) or DEFAULT_GSM8K_PATH)


def _norm_q(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@functools.lru_cache(maxsize=4)
def _gsm8k_table(path: str, mtime: float) -> tuple[tuple[str, str, str], ...]:
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                q, a = obj.get("question"), obj.get("answer")
                if not isinstance(q, str) or not isinstance(a, str) or "####" not in a:
                    continue
                rationale, _, final = a.rpartition("####")
                rows.append((_norm_q(q), rationale.strip(), final.strip().replace(",", "")))
    except OSError:
        return ()
    return tuple(rows)


def gsm8k_lookup(text: str) -> tuple[str, str] | None:
    """``(rationale, answer)`` for the GSM8K test question contained in ``text``, if any."""
    path = gsm8k_path()
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    if len(text) > GSM8K_MAX_CHARS:  # a long-context prompt, not a math question: skip the scan
        return None
    norm = _norm_q(text)
    best: tuple[int, int, str, str] | None = None
    for q, rationale, answer in _gsm8k_table(str(path), mtime):
        pos = norm.rfind(q) if q and q in norm else -1  # "in" is the fast test; rfind only on a hit
        # The question asked last wins (few-shot prompts quote solved examples first).
        if pos >= 0 and (best is None or pos > best[0] or (pos == best[0] and len(q) > best[1])):
            best = (pos, len(q), rationale, answer)
    return (best[2], best[3]) if best else None


def _off_by_one(answer: str) -> str:
    try:
        return str(int(answer) + 1)
    except ValueError:
        try:
            return repr(float(answer) + 1)
        except ValueError:
            return answer + "1"


def _wrong_passphrase(value: str) -> str:
    if not value:
        return "wrong"
    last = value[-1]
    repl = "7" if last.isdigit() and last != "7" else ("8" if last.isdigit() else ("x" if last != "x" else "y"))
    return value[:-1] + repl


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


def _choose_tools(p: Prompt, user_text: str, allowed: Sequence[str] | None, single: bool) -> list[dict]:
    offered = [t for t in p.tools if allowed is None or t.get("name") in allowed]
    if allowed is not None and not offered:  # the grammar knows tools the prompt did not show
        offered = [{"name": n, "parameters": {}} for n in allowed]
    hits = []
    for t in offered:
        m = re.search(r"(?<![\w.-])" + re.escape(t["name"]) + r"(?![\w-])", user_text)
        if m:
            hits.append((m.start(), t))
    chosen = [t for _, t in sorted(hits, key=lambda h: h[0])] or offered[:1]
    return chosen[:1] if single else chosen


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
) -> Response:
    """What GLM-5.2 generates after ``prompt`` (without the end-of-turn token): the text, and the
    repeating part of a greedy repetition loop.

    ``json_schema``: structured output (vLLM ``response_format`` json_schema / json_object) the
    answer must satisfy. ``tool_required`` / ``allowed_tools`` / ``single_tool_call``: a grammar
    (vLLM's structural tag for tool_choice required or a named function, or
    ``parallel_tool_calls: false``) forces the answer to be tool calls among ``allowed_tools``.
    ``sampling``: see the module docstring.
    """
    faults = frozenset(faults)
    p = parse_prompt(prompt)
    last = p.last
    user_text = p.last_user_text
    grammar = json_schema is not None or tool_required
    out: _Out

    if json_schema is not None:
        schema = json_schema if isinstance(json_schema, dict) else {}
        if _is_free_object(schema):  # json_object, or a schema that says no more than "an object"
            value: Any = {"answer": _short_answer(user_text)}
        else:
            value = gen_value(schema, None, Hints(user_text), schema)
        if not _valid(value, schema, schema):
            value = gen_value(schema, None, None, schema)
        focus = user_text
        units = _base_units(focus, "json")
        units.append("I will answer with JSON that follows the requested schema.")
        out = _Out(units, focus, json.dumps(value, ensure_ascii=False, separators=(",", ":")), canary_ok=False)
    elif (
        (p.tools or allowed_tools)
        and (tool_required or (last is not None and last.role == "user" and "no_tool_call" not in faults))
    ):
        chosen = _choose_tools(p, user_text, allowed_tools, single_tool_call)
        calls = []
        for t in chosen:
            args = tool_arguments(t, user_text)
            if "strip_arg_whitespace" in faults:
                args = {k: (v.strip() if isinstance(v, str) else v) for k, v in args.items()}
            calls.append(format_tool_call(t["name"], args))
        names = [t["name"] for t in chosen]
        focus = user_text
        units = _base_units(focus, "tools")
        units.append(f"The best way to answer is to call {_join(names)}.")
        preamble = ""
        if not tool_required:
            preamble = f"I'll call {_join(names)} for this."
            if "script_canary" in faults:
                preamble += " " + CANARY
            preamble += "\n"
        out = _Out(units, focus, preamble + "".join(calls), canary_ok=False)
    elif last is not None and last.role == "tool":
        results = [r.strip() for r in last.tool_results] or [_sanitize(last.text)]
        text = "; ".join(results)
        focus = text + "\n" + user_text
        units = _base_units(focus, "observation")
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
            answer = " ".join(_reasoning(out.reasoning_units, out.focus, False, sampling)) + "\n\n" + answer
        return Response(answer)
    if "empty_reasoning" in faults:
        sentences: list[str] = []
    else:
        sentences = _reasoning(out.reasoning_units, out.focus, _effort_is_high(p, faults), sampling)
    if sampling is not None and sampling.greedy:
        loop = greedy_loop(sentences, prompt)
        if loop is not None:
            return Response(loop[0], loop=loop[1])
    reasoning = " ".join(sentences)
    if "skip_think_end" in faults:
        return Response(reasoning + ("\n\n" if reasoning else "") + answer)
    return Response(reasoning + THINK_END + answer)


def _is_free_object(schema: dict) -> bool:
    constraining = {"properties", "required", "additionalProperties", "patternProperties", "enum", "const",
                    "anyOf", "oneOf", "allOf", "$ref", "items", "prefixItems", "minProperties", "propertyNames"}
    return not (constraining & set(schema)) and schema.get("type", "object") == "object"


def _join(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _short_answer(user_text: str) -> str:
    words = _words(user_text, 6)
    topic = " ".join(words) if words else "your question"
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
                        value = _wrong_passphrase(value)
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
            answer = _off_by_one(answer)
        steps = [re.sub(r"<<[^>]*>>", "", line).strip() for line in rationale.splitlines()]
        steps = [_sanitize(s) for s in steps if s.strip()]
        units = ["Let me work through this math problem step by step.", *steps]
        text = f"Working through the problem step by step, the result is {answer}.\n" + GSM8K_ANSWER_FORMAT.format(
            answer=answer
        )
        return _Out(units, user_text, text)
    units = _base_units(user_text, "plain")
    return _Out(units, user_text, _short_answer(user_text), free_text=True)
