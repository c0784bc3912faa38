"""GLM-5.2 parser conformance against the real SGLang and vLLM parser code.

Engine tests run each engine release's parsers in its own venv (``glmverify.parsers.envs``);
they skip, with the reason, only when that venv cannot be created. Unit tests of the
comparator, the reassembler and the chunkers need nothing but the stdlib.

Known findings are pinned below: each must keep failing with the recorded field, so a
behaviour change in an engine release shows up here instead of passing silently.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.require import need
from glmverify.parsers import catalogue as cat
from glmverify.parsers import envs

pytestmark = pytest.mark.parsers

CHUNKINGS = 50
ALIAS_CHUNKINGS = 10
SEED = 0
SGLANG_VERSION = "0.5.23"
VLLM_VERSION = "0.32.0"

CASES = cat.load_catalogue()
BY_ID = {c.id: c for c in CASES}
TOOL_CASES = [c.id for c in CASES if c.expect["tool_calls"]]
MULTI_CALL_CASES = [c.id for c in CASES if len(c.expect["tool_calls"]) > 1]


# --------------------------------------------------------------------------- fixtures


def _report(engine: str, version: str, chunkings: int = CHUNKINGS, **kwargs) -> dict:
    try:
        envs.ensure_venv(engine, version)
    except envs.EnvError as exc:
        need(f"cannot create the {engine} {version} venv (no network or package?): {exc}")
    return envs.run_conformance(engine, version, chunkings=chunkings, seed=SEED, **kwargs)


@pytest.fixture(scope="module")
def sglang_glm47():
    return _report("sglang", SGLANG_VERSION, reasoning_parser="glm45", tool_parser="glm47")


@pytest.fixture(scope="module")
def sglang_glm45_tools():
    return _report("sglang", SGLANG_VERSION, reasoning_parser="glm45", tool_parser="glm45")


@pytest.fixture(scope="module")
def vllm_glm47():
    return _report("vllm", VLLM_VERSION, reasoning_parser="glm45", tool_parser="glm47")


@pytest.fixture(scope="module")
def vllm_glm45_tools():
    # Only to observe the alias: fewer chunkings keep the run short.
    return _report("vllm", VLLM_VERSION, chunkings=ALIAS_CHUNKINGS, reasoning_parser="glm45", tool_parser="glm45")


def _index(report: dict) -> dict[tuple[str, str], dict]:
    return {(c["id"], c["mode"]): c for c in report["cases"]}


def _check_shape(report: dict, engine: str, version: str, rp: str, tp: str, chunkings: int = CHUNKINGS) -> None:
    assert report["engine"] == engine
    assert report["version"] == version
    assert (report["reasoning_parser"], report["tool_parser"]) == (rp, tp)
    idx = _index(report)
    assert set(idx) == {(c.id, m) for c in CASES for m in ("nonstream", "stream")}
    for (cid, mode), c in idx.items():
        assert c["outcome"] in ("passed", "failed", "error"), c
        assert c["chunkings"] == (chunkings if mode == "stream" else 1)
        if c["outcome"] == "passed":
            assert c["first_diff"] is None
        if c["outcome"] == "failed":
            assert set(c["first_diff"]) == {"field", "expected", "got"}


def _unexpected(report: dict, known: dict[tuple[str, str], str]) -> list[str]:
    """Results that differ from 'all pass except the known findings (with their field)'."""
    bad = []
    for (cid, mode), c in _index(report).items():
        if (cid, mode) in known:
            field = known[(cid, mode)]
            if c["outcome"] != "failed" or c["first_diff"]["field"] != field:
                bad.append(f"{cid}/{mode}: known finding on {field} changed: {c['outcome']} {c['first_diff']} {c['detail']}")
        elif c["outcome"] != "passed":
            bad.append(f"{cid}/{mode}: {c['outcome']} {c['first_diff']} {c['detail']}")
    return bad


# --------------------------------------------------------------------------- SGLang

# SGLang 0.5.23 Glm47MoeDetector completes at most one tool call per parse_stream_chunk and
# has no end-of-stream flush: calls still buffered when the stream ends are never emitted.
# Chunking #1 (the whole output in one delta) always hits it for multi-call outputs; so does
# any chunking whose final delta holds a call end plus a whole further call (MTP).
SGLANG_GLM47_KNOWN = {(cid, "stream"): "tool_calls.length" for cid in MULTI_CALL_CASES}


def test_sglang_glm47_passes_catalogue_except_known(sglang_glm47):
    _check_shape(sglang_glm47, "sglang", SGLANG_VERSION, "glm45", "glm47")
    assert _unexpected(sglang_glm47, SGLANG_GLM47_KNOWN) == []


def test_sglang_glm47_known_finding_is_calls_dropped_at_stream_end(sglang_glm47):
    idx = _index(sglang_glm47)
    for cid in MULTI_CALL_CASES:
        c = idx[(cid, "stream")]
        fd = c["first_diff"]
        assert fd["expected"] == len(BY_ID[cid].expect["tool_calls"])
        assert 1 <= fd["got"] < fd["expected"], c
        assert "first is #1 (1 deltas" in c["detail"], c["detail"]
        assert idx[(cid, "nonstream")]["outcome"] == "passed"


def test_sglang_glm47_text_level_chunking_split_markers():
    """SGLang's detectors work on text: deltas that cut markers mid-string (1-char chunking
    included) must give the same results; only the known end-of-stream finding remains."""
    report = _report("sglang", SGLANG_VERSION, reasoning_parser="glm45", tool_parser="glm47",
                     split_markers=True)
    assert report["split_markers"] is True
    _check_shape(report, "sglang", SGLANG_VERSION, "glm45", "glm47")
    assert _unexpected(report, SGLANG_GLM47_KNOWN) == []


def test_sglang_glm45_tool_parser_fails_glm52_tool_calls(sglang_glm45_tools):
    """The pre-4.7 parser needs a newline after the name: GLM-5.2 calls vanish or go wrong."""
    report = sglang_glm45_tools
    _check_shape(report, "sglang", SGLANG_VERSION, "glm45", "glm45")
    idx = _index(report)
    for cid in TOOL_CASES:
        for mode in ("nonstream", "stream"):
            c = idx[(cid, mode)]
            assert c["outcome"] == "failed", (cid, mode, c)
            fd = c["first_diff"]
            lost = fd["field"] == "tool_calls.length" and fd["got"] < fd["expected"]
            raw_in_content = fd["field"] == "content" and "<tool_call>" in (fd["got"] or "")
            mangled = fd["field"].startswith("tool_calls[")
            assert lost or raw_in_content or mangled, (cid, mode, fd)
    # The failure is specific to tool calls: outputs without calls still pass.
    for c in CASES:
        if not c.expect["tool_calls"]:
            assert idx[(c.id, "nonstream")]["outcome"] == "passed"
            assert idx[(c.id, "stream")]["outcome"] == "passed"
    # Non-stream loses every call entirely (none parsed, none left as text).
    for cid in TOOL_CASES:
        fd = idx[(cid, "nonstream")]["first_diff"]
        assert (fd["field"], fd["got"]) == ("tool_calls.length", 0), (cid, fd)


# --------------------------------------------------------------------------- vLLM

# vLLM 0.32.0's GLM-4.7 parser engine maps (CONTENT, "</think>") to no event: a literal
# </think> in the answer is deleted from content (stream and non-stream).
VLLM_KNOWN = {
    ("think_stray_think_end_in_content", "nonstream"): "content",
    ("think_stray_think_end_in_content", "stream"): "content",
}


def test_vllm_glm47_passes_catalogue_except_known(vllm_glm47):
    _check_shape(vllm_glm47, "vllm", VLLM_VERSION, "glm45", "glm47")
    assert _unexpected(vllm_glm47, VLLM_KNOWN) == []
    fd = _index(vllm_glm47)[("think_stray_think_end_in_content", "nonstream")]["first_diff"]
    assert "</think>" in fd["expected"] and "</think>" not in fd["got"]


def test_vllm_glm45_tool_parser_is_glm47_alias(vllm_glm45_tools, vllm_glm47):
    """From vLLM 0.24 ``glm45`` is an alias of ``glm47``: observed as the same class and results."""
    _check_shape(vllm_glm45_tools, "vllm", VLLM_VERSION, "glm45", "glm45", ALIAS_CHUNKINGS)
    assert vllm_glm45_tools["resolved"]["tool_parser_cls"] == vllm_glm47["resolved"]["tool_parser_cls"]
    assert "glm47" in vllm_glm45_tools["resolved"]["tool_parser_cls"]
    strip = lambda r: {k: (v["outcome"], v["first_diff"]) for k, v in _index(r).items()}  # noqa: E731
    assert strip(vllm_glm45_tools) == strip(vllm_glm47)


# --------------------------------------------------------------------------- runners report failures


def _mutated_catalogue(tmp_path: Path) -> Path:
    lines = []
    for c in CASES[:]:
        if c.id != "think_single_call":
            continue
        obj = {"id": c.id, "raw": c.raw, "thinking": c.thinking, "tools": c.tools, "expect": json.loads(json.dumps(c.expect))}
        obj["expect"]["tool_calls"][0]["arguments"]["city"] = "Lyon"
        lines.append(json.dumps(obj, ensure_ascii=False))
    path = tmp_path / "mutated.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("eng,ver", [("sglang", SGLANG_VERSION), ("vllm", VLLM_VERSION)])
def test_runner_reports_mutated_expectation(tmp_path, eng, ver):
    try:
        envs.ensure_venv(eng, ver)
    except envs.EnvError as exc:
        need(f"cannot create the {eng} {ver} venv: {exc}")
    report = envs.run_conformance(eng, ver, chunkings=5, seed=1, catalogue=_mutated_catalogue(tmp_path))
    assert len(report["cases"]) == 2
    for c in report["cases"]:
        assert c["outcome"] == "failed"
        assert c["first_diff"] == {"field": "tool_calls[0].arguments.city", "expected": "Lyon", "got": "Paris"}
    stream = next(c for c in report["cases"] if c["mode"] == "stream")
    assert stream["detail"].startswith("5/5 chunkings failed")


# --------------------------------------------------------------------------- catalogue (stdlib only)


def test_catalogue_covers_required_cases():
    assert len(CASES) >= 15
    ids = set(BY_ID)
    for required in (
        "think_answer", "nonthink_answer", "think_single_call", "think_parallel_calls",
        "think_zero_arg_call", "think_nested_object_arg", "think_array_and_enum_args",
        "think_anyof_args", "think_non_ascii_args", "think_whitespace_string_args",
        "think_call_inside_reasoning_no_think_end", "think_truncated_in_reasoning",
        "think_stray_think_end_in_content",
    ):
        assert required in ids
    assert any(not c.thinking for c in CASES)
    assert any(c.finish_reason == "length" for c in CASES)
    assert any(c.expect["tool_calls"] and c.expect["tool_calls"][0]["arguments"] == {} for c in CASES)


def test_catalogue_rejects_bad_expectations():
    good = json.loads(json.dumps({
        "id": "x", "raw": "r</think><tool_call>get_time</tool_call>", "thinking": True,
        "tools": BY_ID["think_zero_arg_call"].tools,
        "expect": {"reasoning": "r", "content": None, "tool_calls": [{"name": "get_time", "arguments": {}}]},
    }))
    cat.validate_case(good)
    bad_tool = json.loads(json.dumps(good))
    bad_tool["expect"]["tool_calls"][0]["name"] = "nope"
    with pytest.raises(cat.CatalogueError, match="not an offered tool"):
        cat.validate_case(bad_tool)
    bad_type = json.loads(json.dumps(BY_ID["think_single_call"].__dict__))
    bad_type["expect"]["tool_calls"][0]["arguments"]["days"] = "3"
    bad_type.pop("note", None)
    bad_type.pop("finish_reason", None)
    with pytest.raises(cat.CatalogueError, match="violate the tool schema"):
        cat.validate_case(bad_type)
    with pytest.raises(cat.CatalogueError, match="missing key"):
        cat.validate_case({"id": "y"})


def _got(case: cat.Case) -> dict:
    return {
        "reasoning": case.expect["reasoning"],
        "content": case.expect["content"],
        "tool_calls": [{"name": t["name"], "arguments": json.dumps(t["arguments"])} for t in case.expect["tool_calls"]],
    }


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_comparator_accepts_exact_expectation(case):
    assert cat.compare(case.expect, _got(case)) == []


def test_comparator_normalises_only_what_engines_legitimately_differ_on():
    case = BY_ID["think_content_then_call"]
    got = _got(case)
    got["content"] = "\n" + got["content"] + "  "
    got["reasoning"] = got["reasoning"] + "\n"
    assert cat.compare(case.expect, got) == []
    got = _got(BY_ID["think_single_call"])
    got["content"] = ""  # SGLang's "" vs vLLM's null
    assert cat.compare(BY_ID["think_single_call"].expect, got) == []
    # whitespace inside argument strings is significant
    ws = BY_ID["think_whitespace_string_args"]
    got = _got(ws)
    args = json.loads(got["tool_calls"][0]["arguments"])
    args["content"] = args["content"].strip()
    got["tool_calls"][0]["arguments"] = json.dumps(args)
    d = cat.first_diff(ws.expect, got)
    assert d.field == "tool_calls[0].arguments.content"


@pytest.mark.parametrize("mutate,field", [
    (lambda e: e.update(reasoning="other"), "reasoning"),
    (lambda e: e.update(content="Some answer"), "content"),
    (lambda e: e["tool_calls"].pop(), "tool_calls.length"),
    (lambda e: e["tool_calls"][0].update(name="get_time"), "tool_calls[0].name"),
    (lambda e: e["tool_calls"][0]["arguments"]["filters"]["tags"].__setitem__(1, "x"), "tool_calls[0].arguments.filters.tags[1]"),
    (lambda e: e["tool_calls"][0]["arguments"].update(limit="5"), "tool_calls[0].arguments.limit"),
    (lambda e: e["tool_calls"][0]["arguments"]["filters"].update(exact=0), "tool_calls[0].arguments.filters.exact"),
    (lambda e: e["tool_calls"][0]["arguments"].pop("query"), "tool_calls[0].arguments.query"),
    (lambda e: e["tool_calls"][0]["arguments"].update(extra=1), "tool_calls[0].arguments.extra"),
])
def test_comparator_reports_first_differing_field(mutate, field):
    case = BY_ID["think_nested_object_arg"]
    got = _got(case)
    expect = json.loads(json.dumps(case.expect))
    mutate(expect)
    diffs = cat.compare(expect, got)
    assert diffs and diffs[0].field == field, diffs


def test_comparator_types_and_bad_json():
    e = {"reasoning": None, "content": None, "tool_calls": [{"name": "f", "arguments": {"n": 3, "b": True}}]}
    ok = {"reasoning": None, "content": None, "tool_calls": [{"name": "f", "arguments": '{"n": 3.0, "b": true}'}]}
    assert cat.compare(e, ok) == []
    as_int = {"reasoning": None, "content": None, "tool_calls": [{"name": "f", "arguments": '{"n": 3, "b": 1}'}]}
    assert cat.first_diff(e, as_int).field == "tool_calls[0].arguments.b"
    broken = {"reasoning": None, "content": None, "tool_calls": [{"name": "f", "arguments": '{"n": 3'}]}
    d = cat.first_diff(e, broken)
    assert (d.field, d.got) == ("tool_calls[0].arguments", '{"n": 3')
    raw_text = {"reasoning": None, "content": "<tool_call>f</tool_call>", "tool_calls": []}
    assert [d.field for d in cat.compare(e, raw_text)] == ["content", "tool_calls.length"]


def test_stream_assembler():
    a = cat.StreamAssembler()
    a.add_reasoning("think")
    a.add_content("Hi")
    a.add_tool_delta(0, id="c0", name="f", arguments="")
    a.add_tool_delta(0, arguments='{"a": ')
    a.add_tool_delta(0, arguments="1}")
    a.add_tool_delta(1, id="c1", name="g", arguments="{}")
    msg = a.message()
    assert msg["violations"] == []
    assert msg["tool_calls"] == [{"name": "f", "arguments": '{"a": 1}'}, {"name": "g", "arguments": "{}"}]
    e = {"reasoning": "think", "content": "Hi", "tool_calls": [
        {"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {}}]}
    assert cat.compare(e, msg) == []
    b = cat.StreamAssembler()
    b.add_tool_delta(0, id="c0", name="f", arguments="{}")
    b.add_tool_delta(0, id="c9", name="f")
    fields = [d.field for d in cat.compare({"reasoning": None, "content": None, "tool_calls": [
        {"name": "f", "arguments": {}}]}, b.message())]
    assert fields == ["tool_calls[0].id", "tool_calls[0].name"]
    c = cat.StreamAssembler()
    c.add_tool_delta(0, arguments='{"a": 1}')
    assert [d.field for d in c.message()["violations"]] == ["tool_calls[0].name", "tool_calls[0].id"]


def test_chunkers_are_seeded_complete_and_token_aligned():
    raw = BY_ID["think_non_ascii_args"].raw
    a = cat.chunkings(raw, CHUNKINGS, "0/x")
    assert a == cat.chunkings(raw, CHUNKINGS, "0/x")
    assert a != cat.chunkings(raw, CHUNKINGS, "1/x")
    assert len(a) == CHUNKINGS
    atoms = cat.atomize(raw)
    assert a[0] == atoms  # 1-char (1-token) chunking
    assert a[1] == [raw]
    for chunks in a:
        assert "".join(chunks) == raw
        assert all(chunks)
        # markers are never split: re-atomizing the deltas gives the same tokens
        assert [t for ch in chunks for t in cat.atomize(ch)] == atoms
    assert len({tuple(map(len, ch)) for ch in a}) > CHUNKINGS // 2
    split = cat.chunkings(raw, 20, "0/x", markers=())
    assert split[0] == list(raw)
    assert all("".join(ch) == raw for ch in split)


def test_atomize_keeps_markers_whole():
    assert cat.atomize("a</think><tool_call>f<arg_key>k") == [
        "a", "</think>", "<tool_call>", "f", "<arg_key>", "k"]
    assert cat.atomize("<toolx") == list("<toolx")


def test_runners_load_the_catalogue_with_the_stdlib_only(tmp_path):
    """The runners run in an engine's venv: the catalogue and its sibling modules load there as a
    package of their own, with no glmverify package, no ``__init__`` and no site-packages (-S)."""
    here = Path(cat.__file__).parent
    for src in here.glob("*.py"):
        if src.name != "__init__.py":
            shutil.copy(src, tmp_path / src.name)
    for runner in ("sglang_runner.py", "vllm_runner.py"):
        p = subprocess.run([sys.executable, "-S", str(tmp_path / runner), "--help"], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0 and "--split-markers" in p.stdout, (runner, p.stderr[-2000:])
