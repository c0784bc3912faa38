"""Tool-call arguments and structured output generated from the JSON Schemas a request offers.

``gen_value(schema, name, hints)`` returns a value valid against ``schema``: a value the user
wrote for the property (``Hints``, read from the last user message) when it is valid, else one
generated from the schema (``$ref``, ``allOf``, ``anyOf``/``oneOf``, ``enum``/``const``, types,
formats, patterns, bounds). ``valid`` is jsonschema's verdict (the draft the schema names, else
2020-12), used both to accept hints and to check what was generated.

Hints, looked up in the last user message by property name, at any depth:

* exact form: ``NAME=<JSON value>`` right after the property name, e.g. ``text="  Grüße\\n  "``,
  ``days=3``, ``tags=["a","b"]``. The value is read with ``json.JSONDecoder(strict=False)``
  (so JSON escapes and raw newlines both work) and kept exactly: a test that wants an exact
  string writes ``f"{name}={json.dumps(value, ensure_ascii=False)}"``. Such strings must not
  contain GLM's tag tokens (``<arg_value>``, ``</tool_call>`` ...).
* loose form: ``NAME VALUE`` / ``NAME: VALUE`` / ``NAME is VALUE`` / ``NAME of VALUE``, e.g.
  ``city Paris`` or ``days 3``: one word (or number, or true/false) after the name.
* enums: an enum value that appears as a word in the message is chosen.

``format_tool_call`` writes GLM-4.7+'s compact call (strings raw, every other value as JSON).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import jsonschema

from .prompt import STOPWORDS


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


def valid(value: Any, schema: Any, root: Any) -> bool:
    """Is ``value`` valid for ``schema`` (``root``'s ``$defs`` / ``definitions`` in reach)? jsonschema decides."""
    if schema is True or schema == {}:
        return True
    if schema is False:
        return False
    if not isinstance(schema, dict):
        return True  # not a schema at all: nothing constrains the value
    full = dict(schema)
    if isinstance(root, dict):
        for key in ("$defs", "definitions"):
            if key in root and key not in full:
                full[key] = root[key]
    try:
        cls = jsonschema.validators.validator_for(full, default=jsonschema.Draft202012Validator)
        return cls(full).is_valid(value)
    except Exception:  # noqa: BLE001 - a remote or broken $ref, a bad pattern: jsonschema cannot apply it
        # like the generator, which reads what it cannot resolve as unconstrained, accept the value
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
            if not word or word.lower() in STOPWORDS:
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
    if found and valid(value, schema, root):
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
                    if valid(cand, schema, root):
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
                if key == "anyOf" or sum(1 for bb in branches if valid(val, bb, root)) == 1:
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
    if not isinstance(args, dict) or not valid(args, params, params):
        args = gen_value(params, None, None, params)
    return args if isinstance(args, dict) else {}


def _arg_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def format_tool_call(name: str, args: dict) -> str:
    """GLM-4.7+ compact call: ``<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value></tool_call>``."""
    body = "".join(f"<arg_key>{k}</arg_key><arg_value>{_arg_text(v)}</arg_value>" for k, v in args.items())
    return f"<tool_call>{name}{body}</tool_call>"


def is_free_object(schema: dict) -> bool:
    constraining = {"properties", "required", "additionalProperties", "patternProperties", "enum", "const",
                    "anyOf", "oneOf", "allOf", "$ref", "items", "prefixItems", "minProperties", "propertyNames"}
    return not (constraining & set(schema)) and schema.get("type", "object") == "object"
