"""The fault catalogue and the fault proxy over HTTP, without an engine.

* The proxy's rewrites on recorded answers are in tests/unit/test_faultproxy.py.
* The catalogue (fixtures/faults.yaml) is well formed; misconfigured launches derive the intended
  one-row matrix; the template variants really change the template.
* End to end on a replay upstream (recorded answers served by a tiny server): the proxy over HTTP,
  a real ``pytest suites/test_reasoning_split.py --endpoint`` run and the catalogue's verdict,
  for a control and a few faults. The real-engine catalogue is ``make faults``.
* The packages' seams: expansion and selection (``faults.plan``), the results files
  (``faults.report``), no aiohttp at import, and each package's
  modules importing only the ones below them.
"""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from glmverify import faultproxy as fp
from glmverify import faults
from glmverify.chat import StreamAssembler, parse_completion
from glmverify.matrix import load
from helpers.aio_server import ThreadedApp
from helpers.procs import alive, descendants

TOOLS = json.loads((Path(__file__).resolve().parents[2] / "suites" / "cases" / "tools.json").read_text())
REC = {d["id"]: d for d in faults.load_recordings()}


def assemble(text: str):
    asm = StreamAssembler()
    for line in text.splitlines():
        asm.feed_line(line)
    return asm.result()


THINK_OFF = {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [TOOLS["get_weather"]],
             "chat_template_kwargs": {"enable_thinking": False}}


def test_when_scopes_the_proxy_over_http(replay):
    with fp.FaultProxy(replay.url, "tools_markup_thinking_off") as proxy:
        plain = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "tools": [TOOLS["get_weather"]], "messages": []})
        assert parse_completion(plain.json()).tool_calls and proxy.stats["mutated"] == 0
        off = httpx.post(proxy.url + "/v1/chat/completions", json=THINK_OFF)
        assert not parse_completion(off.json()).tool_calls and proxy.stats["mutated"] == 1


def test_coverage_lists_checks_no_fault_failed():
    def o(i, failed, detected=True):
        return faults.Outcome(i, "proxy", "reference", ["context_1m"], detected=detected, failed_checks=failed)
    cov = faults.coverage([o("a", ["context_1m::test_needles"]), o("b", ["context_1m::test_max_model_len"], False)],
                          ["context_1m"])
    assert cov == {"context_1m::test_max_model_len": [], "context_1m::test_needles": ["a"],
                   "context_1m::test_over_limit_rejected": [], "context_1m::test_context_sweep": []}
    ok, line = faults.summary([o("a", ["context_1m::test_needles"])], cov)
    assert not ok and "checks seen failing: 1/4" in line
    assert "NEVER SEEN FAILING" in faults.coverage_text(cov)


def test_catalogue_names_real_checks(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text(yaml.safe_dump([{"id": "x", "kind": "proxy", "fault": "over_limit_500", "row": "reference",
                                    "suites": ["context_1m"], "expect_failed": ["context_1m"], "checks": ["test_nope"]}]))
    with pytest.raises(faults.CatalogueError, match="no check 'test_nope'"):
        faults.load_catalogue(bad)
    named = {n for c in faults.load_catalogue() for n in c.checks}
    assert {"test_multi_turn_reasoning_sent_back", "test_over_limit_rejected", "test_choice_none"} <= named


# ---- catalogue --------------------------------------------------------------------------------------------
def test_catalogue_is_well_formed():
    cases = faults.load_catalogue()
    kinds = {c.kind for c in cases}
    assert kinds == {"proxy", "standin", "launch"}
    assert len({c.id for c in cases}) == len(cases)
    used = {c.fault for c in cases if c.kind == "proxy"}
    # every response defect of the proxy is in the catalogue (garbage/hang are reliability tests,
    # gateway_ the attach path's: neither is an engine defect)
    assert {n for n in fp.FAULTS if not n.startswith(("garbage_", "hang", "standin_", "gateway_"))} <= used
    assert all(c.expect_failed or c.id.startswith("control-") for c in cases)


def test_catalogue_rejects_bad_entries(tmp_path):
    bad = tmp_path / "faults.yaml"
    bad.write_text(yaml.safe_dump([
        {"id": "a", "kind": "proxy", "fault": "no_such", "row": "reference", "suites": ["tool_calls"], "expect_failed": ["tool_calls"]},
        {"id": "a", "kind": "launch", "row": "nope", "suites": ["x"], "expect_failed": ["tool_calls"]},
    ]))
    with pytest.raises(faults.CatalogueError) as exc:
        faults.load_catalogue(bad)
    msg = str(exc.value)
    for part in ("unknown proxy fault 'no_such'", "id must be unique", "row 'nope'", "unknown feature 'x'",
                 "must change something", "not all among suites"):
        assert part in msg, part


def test_derive_args():
    args = ["--model", "M", "--tool-call-parser", "glm47", "--enable-auto-tool-choice", "--max-model-len", "16384",
            "--speculative-config", '{"method":"ngram"}', "--enforce-eager"]
    assert faults.derive_args(args, ["--enable-auto-tool-choice"]) == [a for a in args if a != "--enable-auto-tool-choice"]
    assert faults.derive_args(args, ["--tool-call-parser", "--speculative-config"]) == \
        ["--model", "M", "--enable-auto-tool-choice", "--max-model-len", "16384", "--enforce-eager"]
    assert faults.derive_args(args, [], {"--max-model-len": "8192", "--x": "1"})[-7:] == \
        ["--max-model-len", "8192", "--speculative-config", '{"method":"ngram"}', "--enforce-eager", "--x", "1"]


def test_template_variants():
    base = faults.TEMPLATE.read_text()
    no_line = faults.template_variant("no_effort_line")
    assert "Reasoning Effort" in base and "Reasoning Effort:" not in no_line.split("#}", 1)[1]
    reads = faults.template_variant("reads_thinking")
    assert "not enable_thinking" not in reads and "not thinking" in reads
    with pytest.raises(faults.CatalogueError):
        faults.template_variant("no_effort_line", "a template without the line")


def test_derived_matrix_is_one_valid_row(tmp_path):
    cases = {c.id: c for c in faults.load_catalogue()}
    path = faults.derived_matrix(cases["launch-template-no-effort-line"], tmp_path)
    m = load(path)
    assert [r.id for r in m.rows] == ["launch-template-no-effort-line"]
    args = m.rows[0].launch.args
    tpl = Path(args[args.index("--chat-template") + 1])
    assert tpl.parent == tmp_path and "Reasoning Effort:" not in tpl.read_text().split("#}", 1)[1]
    spec = load(faults.derived_matrix(cases["launch-spec-decode-off"], tmp_path)).rows[0]
    assert "--speculative-config" not in spec.launch.args and spec.expect["draft_tokens"] == 5
    skip = load(faults.derived_matrix(cases["launch-standin-skip-think-end"], tmp_path)).rows[0]
    assert skip.launch.env["GLM_STANDIN_FAULTS"] == "skip_think_end"


# ---- end to end on a replay upstream ----------------------------------------------------------------------
async def replay_recordings(request):
    """A stand-in upstream that answers with the recordings (chat: tools recording if tools were
    offered, else the reasoning one)."""
    from aiohttp import web

    path = request.path
    if path == "/health":
        return web.Response(text="")
    if path == "/v1/models":
        return web.json_response({"data": [{"id": "glm-5.2-ref", "owned_by": "vllm", "max_model_len": 16384}]})
    if path == "/version":
        return web.json_response({"version": "0.32.0"})
    if path == "/metrics":
        # it stands for row reference, which runs no speculative decoding: the recorded
        # (reference-ngram) body without its spec-decode counters, or the harness's
        # observed-vs-declared check rightly refuses the endpoint
        return web.Response(text="\n".join(ln for ln in REC["metrics"]["body"].splitlines()
                                            if "spec_decode" not in ln) + "\n")
    body = await request.json()
    kind = "chat" if path.endswith("/chat/completions") else "messages"
    name = ("tools" if body.get("tools") else "reasoning") if kind == "chat" else ("tool_use" if body.get("tools") else "thinking")
    rec = REC[f"{kind}-{name}-{'stream' if body.get('stream') else 'nonstream'}"]
    ctype = "text/event-stream" if rec["stream"] else "application/json"
    return web.Response(text=rec["body"], content_type=ctype)


@pytest.fixture(scope="module")
def replay():
    with ThreadedApp(replay_recordings) as r:
        yield r


def test_proxy_over_http(replay):
    with fp.FaultProxy(replay.url, "args_untyped") as proxy:
        assert proxy.host == "127.0.0.1"
        r = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "tools": [TOOLS["get_weather"]], "messages": []})
        assert parse_completion(r.json()).tool_calls[0].parsed()["days"] == "2"
        r = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "stream": True, "tools": [1], "messages": []})
        assert r.headers["content-type"].startswith("text/event-stream")
        assert assemble(r.text).tool_calls[0].parsed()["days"] == "2"
        assert httpx.get(proxy.url + "/v1/models").json()["data"][0]["id"] == "glm-5.2-ref"  # passthrough
        assert proxy.stats["mutated"] == 2 and proxy.stats["requests"] == 3


@pytest.mark.parametrize("case_id,fault,expected", [
    ("control-replay", "control_passthrough", []),
    ("replay-think-tag", "think_tag_in_content", ["reasoning_split"]),
    ("replay-stream-truncated", "stream_truncated", ["reasoning_split"]),
    ("replay-reasoning-renamed", "reasoning_renamed", ["reasoning_split"]),
])
def test_catalogue_runner_on_replay(replay, tmp_path, case_id, fault, expected):
    # the replay answers every request with one recording, whatever was sent, so the check that the
    # reasoning sent back is rendered (prompt_tokens grow with it) cannot pass there: the control
    # leaves it out (select, as a control may)
    case = faults.FaultCase(id=case_id, kind="proxy", fault=fault, row="reference", suites=["reasoning_split"],
                            expect_failed=expected, select=None if expected else "not rendered")
    opts = faults.RunOptions(results=tmp_path, timeout=300)
    out = faults.run_proxy_case(case, replay.url, opts)
    assert out.detected, (out, (tmp_path / case_id / "pytest.log").read_text()[-3000:])
    assert out.observed == {"reasoning_split": "failed" if expected else "verified"}
    if expected:
        assert out.detail
    line = faults.table([out])
    assert case_id in line and ("yes" in line or "pass" in line)


# ---- the runner's command line -----------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[2]


def test_cli_list_and_bad_catalogue(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "glmverify.faults", "--list"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "proxy-args-untyped" in p.stdout and "launch-spec-decode-off" in p.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("- id: x\n  kind: nope\n")
    p = subprocess.run([sys.executable, "-m", "glmverify.faults", "--catalogue", str(bad)], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "missing keys" in p.stderr
    p = subprocess.run([sys.executable, "-m", "glmverify.faults", "--only", "no-such-fault"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "no such fault" in p.stderr


def test_runner_sigterm_leaves_no_pytest_run(replay, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "glmverify.faults", "--only", "control-passthrough",
                             "--endpoint", f"reference={replay.url}", "--results=" + str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (descendants(proc.pid) and (tmp_path / "control-passthrough" / "pytest.log").exists()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
        time.sleep(0.2)
    kids = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130, out[-2000:]
    time.sleep(0.5)
    assert not [k for k in kids if alive(k)], "a pytest run of the catalogue survived SIGTERM"


def test_multi_row_entries_expand_per_row(tmp_path):
    """An entry whose row is a list runs once per row; ids after the first carry @ROW."""
    cat = tmp_path / "c.yaml"
    cat.write_text(yaml.safe_dump([{"id": "x", "kind": "proxy", "fault": "over_limit_500", "row": ["reference", "reference-sglang"],
                                    "suites": ["context_1m"], "expect_failed": ["context_1m"]}]))
    cases = faults.load_catalogue(cat)
    assert [(c.id, c.row) for c in cases] == [("x", "reference"), ("x@reference-sglang", "reference-sglang")]
    assert faults.launch_row_id(cases[1]) == "x.reference-sglang"
    cat.write_text(yaml.safe_dump([{"id": "y", "kind": "proxy", "fault": "over_limit_500", "row": ["reference", "nope"],
                                    "suites": ["context_1m"], "expect_failed": ["context_1m"]}]))
    with pytest.raises(faults.CatalogueError, match="row 'nope'"):
        faults.load_catalogue(cat)
    real = faults.load_catalogue()
    assert any(c.row == "reference-sglang" and c.kind == "launch" for c in real)
    assert {c.row for c in real} >= {"reference", "reference-ngram", "reference-sglang"}


def test_engine_coverage_is_per_engine():
    """A fault seen failing a check on vLLM does not cover that check's SGLang branch: SGLang's
    coverage counts only faults run on SGLang rows, over the checks its conforming run ran."""
    from glmverify.matrix import load

    def o(i, row, failed, kind="proxy", passed=(), expect=("reasoning_split",)):
        return faults.Outcome(i, kind, row, list(expect), detected=True, failed_checks=list(failed), passed_checks=list(passed))
    conforming = o("conforming-reference-sglang-1", "reference-sglang", [], kind="conforming", expect=(),
                   passed=["reasoning_split::test_split", "reasoning_split::test_stream_matches_nonstream"])
    outs = [conforming, o("a", "reference", ["reasoning_split::test_split", "reasoning_split::test_stream_matches_nonstream"]),
            o("b@reference-sglang", "reference-sglang", ["reasoning_split::test_split"])]
    cov = faults.engine_coverage(outs, load())
    assert cov["sglang: reasoning_split::test_split"] == ["b@reference-sglang"]
    assert cov["sglang: reasoning_split::test_stream_matches_nonstream"] == []  # only vLLM's branch was seen failing
    assert "sglang: effort_levels::test_rendered_system_line" not in cov  # not in this conforming run: not owed
    assert cov["vllm: reasoning_split::test_stream_matches_nonstream"] == ["a"]
    assert "vllm: effort_levels::test_rendered_system_line" in cov
    ok, line = faults.summary(outs, cov)
    assert not ok and "checks seen failing" in line
    assert faults.engine_coverage([], load())["sglang: sglang conforming run"] == []  # no conforming run: not proven
    only = faults.engine_coverage(outs, load(), {"reference-sglang"})  # --row reference-sglang
    assert only and all(k.startswith("sglang: ") for k in only)


def test_low_is_high_template_variant():
    t = faults.template_variant("low_is_high")
    assert "reasoning_effort in ('high', 'low')" in t and t != faults.TEMPLATE.read_text()


# ---- the packages' seams ------------------------------------------------------------------------------------
def test_expand_and_select_cases():
    from glmverify.faults import plan

    entry = {"id": "x", "kind": "proxy", "fault": "over_limit_500", "row": ["reference", "reference-sglang"],
             "suites": ["context_1m"], "expect_failed": ["context_1m"]}
    cases = plan.expand(entry)
    assert [(c.id, c.row) for c in cases] == [("x", "reference"), ("x@reference-sglang", "reference-sglang")]
    assert [c.id for c in plan.expand({**entry, "row": "reference-ngram"})] == ["x"]
    more = cases + plan.expand({**entry, "id": "y-launch", "kind": "launch", "row": "reference"})
    assert [c.id for c in plan.select(more, ["x*"])] == ["x", "x@reference-sglang"]
    assert [c.id for c in plan.select(more, ["x", "y-launch"], rows=["reference"])] == ["x", "y-launch"]
    assert [c.id for c in plan.select(more, kinds=["launch"])] == ["y-launch"]
    assert plan.select(more) == more
    assert plan.unknown_ids(more, ["x", "nope", "z*"]) == ["nope"]


def test_results_files(tmp_path):
    from glmverify.faults import report

    outs = [faults.Outcome("a", "proxy", "reference", ["context_1m"], {"context_1m": "failed"}, detected=True,
                           seconds=3.0, failed_checks=["context_1m::test_needles"], rank=2, diagnosed=["b", "a"]),
            faults.Outcome("control-x", "proxy", "reference", [], {"context_1m": "verified"}, detected=True)]
    cov = {"vllm: context_1m::test_needles": ["a"], "vllm: context_1m::test_max_model_len": []}
    ok, line = report.write_results(tmp_path, outs, cov, 120.0)
    assert not ok and "faults detected: 1/1" in line and "checks seen failing: 1/2" in line
    doc = json.loads((tmp_path / "faults.json").read_text())
    assert set(doc) == {"ok", "seconds", "summary", "diagnosis", "outcomes", "coverage"} and doc["coverage"] == cov
    assert doc["diagnosis"] == {"faults": 1, "top1": 0, "top3": 1, "top1_rate": 0.0, "top3_rate": 1.0}
    assert "top-1 0/1 (0%), top-3 1/1 (100%)" in line
    assert [o["id"] for o in doc["outcomes"]] == ["a", "control-x"] and doc["summary"] == line
    md = (tmp_path / "faults.md").read_text()
    assert "| a | proxy | context_1m | context_1m=failed | yes | no | yes (2) |" in md and "| b, a |" in md
    assert "| vllm: context_1m::test_max_model_len | **never** |" in md and md.endswith("total 2.0 min\n")
    text = report.console_text(outs, cov)
    assert "all 1 verified" in text and "NEVER SEEN FAILING" in text
    assert report.write_results(tmp_path, outs[:1], None, 1.0)[0]  # a selection: no coverage asked
    outs[0].rank = None  # its own entry not in its diagnosis's top 3: the run fails
    assert not report.write_results(tmp_path, outs[:1], None, 1.0)[0]


def test_packages_load_without_aiohttp():
    """aiohttp (the fault tooling's server) is imported only when a proxy serves: the catalogue,
    its CLI and the offline replay do not need it."""
    import subprocess
    import sys

    code = ("import sys, glmverify.faults, glmverify.faultproxy; "
            "print(sorted(m for m in ('aiohttp', 'torch', 'vllm') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "[]", (p.stdout, p.stderr[-2000:])


# each package's modules, bottom up, as their docstrings list them: a module imports only those before it
LAYERS = {
    "faultproxy": ["sse", "bodies", "registry", "chat_faults", "anthropic_faults", "metrics_faults", "standin_faults",
                   "reliability_faults", "field_tool_faults", "field_api_faults", "field_spec_faults", "gateway_faults", "perf_faults", "degeneration_faults", "accuracy_faults", "catalogue", "server", "cli"],
    "faults": ["model", "templates", "plan", "catalogue", "judge", "pytest_runs", "runner", "coverage", "report",
               "recordings", "cli"],
}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_package_modules_import_only_downward(package):
    import ast

    root = REPO / "glmverify" / package
    order = LAYERS[package]
    assert sorted(order) == sorted(p.stem for p in root.glob("*.py") if not p.stem.startswith("__"))
    for n, name in enumerate(order):
        tree = ast.parse((root / f"{name}.py").read_text())
        used = {(node.module or "").split(".")[0] or alias.name
                for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1
                for alias in node.names}
        assert used <= set(order[:n]), f"{package}.{name} imports {sorted(used - set(order[:n]))} from above it"
