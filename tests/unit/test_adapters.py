"""Engine adapters: each adapter's answer to every engine difference, against a tiny local HTTP
server answering as the engine would (recorded payload shapes; no engine runs)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from glmverify import hardware, policy
from glmverify.adapters import (ADAPTERS, ENGINE_NAMES, adapter_for, adapter_for_row, api_adapters, api_choices,
                                detect_engine, probe, reference_of, register, unregister)
from glmverify.adapters.base import ContainerDefaults, EngineAdapter, argmap, flag_value, json_object
from glmverify.adapters.sglang import MetaInfoMeter
from glmverify.adapters.vllm import MetricsMeter
from glmverify.chat import ChatResult
from glmverify.client import EngineClient, EngineProtocolError
from glmverify.faults.model import AFFECTED_ENGINES, coverage_rows
from glmverify.matrix import engine_kind, flat_document, known_engines, load, read_document, validate
from glmverify.matrix.validate import vendor_errors
from glmverify.parsers import envs
from glmverify.parsers.envs import parser_envs, run_conformance

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "observed"


def plugin_engine_options():
    """The ``--engine`` option the pytest plugin declares (its ``pytest_addoption``, on a recorder)."""
    from glmverify import plugin

    class Group:
        def __init__(self):
            self.options = []

        def addoption(self, *names, **kw):
            if "--engine" in names:
                self.options.append(argparse.Namespace(dest="engine", choices=kw.get("choices")))

    group = Group()
    plugin.pytest_addoption(argparse.Namespace(getgroup=lambda *a, **k: group, addini=lambda *a, **k: None))
    return group.options
MATRIX = load()
VLLM, SGLANG, ASCEND = adapter_for("vllm"), adapter_for("sglang"), adapter_for("vllm-ascend")


class Engine:
    """A local HTTP server: ``routes[(method, path)]`` is a body, a (status, body) pair, or a
    callable of the request JSON returning either; every request is recorded in ``seen``."""

    def __init__(self, routes: dict):
        self.routes = routes
        self.seen: list[tuple[str, str, dict | None]] = []
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                engine.seen.append((method, self.path, body))
                answer = engine.routes.get((method, self.path), (404, {"error": "not found"}))
                if callable(answer):
                    answer = answer(body)
                status, payload = answer if isinstance(answer, tuple) else (200, answer)
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._answer("GET")

            def do_POST(self):
                self._answer("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # a short poll so shutdown() returns at once (the default 0.5 s poll is most of a test here)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> "Engine":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def client(self, engine="auto", model="m") -> EngineClient:
        return EngineClient(f"http://127.0.0.1:{self.server.server_address[1]}", model=model, engine=engine, timeout=10)


def models(owned_by: str | None) -> dict:
    return {"object": "list", "data": [{"id": "m", "owned_by": owned_by, "max_model_len": 4096}]}


# ---- registry -------------------------------------------------------------------------------------------
def test_every_matrix_engine_has_an_adapter_speaking_its_api():
    assert {r.engine for r in MATRIX.rows} <= set(ADAPTERS)
    for name, adapter in ADAPTERS.items():
        assert adapter.name == name and adapter.api == engine_kind(name)
    assert [a.name for a in api_adapters()] == ["vllm", "sglang"]
    with pytest.raises(KeyError, match="known: sglang, vllm, vllm-ascend"):
        adapter_for("tgi")


def test_engine_lists_are_the_registrys():
    """The lists a new engine used to be added to by hand, read from the registry."""
    assert list(ENGINE_NAMES) == list(ADAPTERS) == ["vllm", "sglang", "vllm-ascend"]
    assert known_engines() == tuple(sorted(ADAPTERS))
    assert api_choices() == ["vllm", "sglang", "auto"] and api_choices(auto=False) == ["vllm", "sglang"]
    assert {a.dest: a.choices for a in plugin_engine_options()} == {"engine": ["vllm", "sglang", "auto"]}
    assert AFFECTED_ENGINES is ENGINE_NAMES and "vllm-ascend" in AFFECTED_ENGINES and "tgi" not in AFFECTED_ENGINES
    # the schema's engine enum is filled from the registry at load time (the file says only "string")
    bad = flat_document()
    bad["rows"] = [{**bad["rows"][0], "engine": "tgi"}]
    errors = [(p, m) for p, m in validate(bad) if p == "rows/0/engine"]
    assert errors and all(n in errors[0][1] for n in ("'tgi' is not one of", "'vllm-ascend'"))


def test_register_reports_to_the_layers_below_and_unregister_undoes_it():
    class Half(EngineAdapter):
        name = "half"
    with pytest.raises(ValueError, match="needs a name and an api"):
        register(Half())

    class Tiny(EngineAdapter):
        name, api = "tiny", "vllm"
        container = ContainerDefaults(kind="tiny")
        parser_env = VLLM.parser_env
    try:
        register(Tiny())
        assert engine_kind("tiny") == "vllm" and parser_envs()["tiny"] is VLLM.parser_env
        assert [a.name for a in api_adapters()] == ["vllm", "sglang"], "an engine speaking vLLM's API is not a new kind"
    finally:
        unregister("tiny")
    assert "tiny" not in ADAPTERS and "tiny" not in known_engines() and "tiny" not in parser_envs()
    with pytest.raises(KeyError, match="no adapter for engine 'tiny'"):
        engine_kind("tiny")


def test_parser_environments_come_from_the_adapters(monkeypatch):
    assert VLLM.parser_env is ASCEND.parser_env is parser_envs()["vllm-ascend"], "vllm-ascend runs vLLM's parsers"
    assert SGLANG.parser_env is parser_envs()["sglang"] and SGLANG.parser_env.splits_markers
    assert (VLLM.parser_env.dist, VLLM.parser_env.runner.name) == ("vllm", "vllm_runner.py")
    assert (SGLANG.parser_env.dist, SGLANG.parser_env.runner.name) == ("sglang", "sglang_runner.py")
    def no_venv(*args):
        raise AssertionError("a unit test must not build an engine venv")
    monkeypatch.setattr(envs, "ensure_venv", no_venv)
    with pytest.raises(ValueError, match="split_markers applies to the sglang runner only"):
        run_conformance("vllm-ascend", "0.32.0", split_markers=True)


def test_fault_coverage_rows_and_rule_per_engine_come_from_the_rows_and_adapters():
    assert coverage_rows(MATRIX) == {"vllm": ("reference", "reference-ngram"), "sglang": ("reference-sglang",)}
    assert VLLM.covers_every_check and not SGLANG.covers_every_check
    # a row moved to another engine moves with it
    moved = dataclasses.replace(MATRIX, rows=tuple(dataclasses.replace(r, engine="sglang") if r.id == "reference-ngram"
                                                   else r for r in MATRIX.rows))
    assert coverage_rows(moved) == {"vllm": ("reference",), "sglang": ("reference-ngram", "reference-sglang")}


def test_one_hardware_to_vendor_mapping():
    assert [hardware.vendor_of(h) for h in ("h200", "mi300x", "ascend_a3", "cpu")] == ["nvidia", "rocm", "ascend", None]
    assert hardware.vendors()["rocm"] == ["mi300x", "mi325x", "mi355x"]
    # seed 003: an A3 node is 16 dies (/dev/davinci*), an A2 node 8 chips
    assert (hardware.devices_per_node("ascend_a3"), hardware.devices_per_node("ascend_a2")) == (16, 8)
    assert vendor_errors(read_document()["defaults"]) == []
    # the disagreement this fixed: matrix.yaml said "amd" where the probe and the specs say "rocm"
    amd = {"vendors": {"amd": ["mi300x"], "nvidia": ["h200", "mi355x"]}, "containers": {"vendors": {"amd": {}}}}
    assert vendor_errors(amd) == [
        ("defaults/vendors/amd", "unknown vendor 'amd'; hardware.SPECS names ['ascend', 'nvidia', 'rocm']"),
        ("defaults/vendors/nvidia", "['mi355x'] are not 'nvidia' hardware in hardware.SPECS "
                                    "(['b200', 'b300', 'gb300', 'h100', 'h20', 'h200'])"),
        ("defaults/containers/vendors/amd", "unknown vendor 'amd'; hardware.SPECS names ['ascend', 'nvidia', 'rocm']")]


def test_reference_rows_get_the_reference_container_and_keep_their_engines_api():
    ref, ref_sglang = adapter_for_row(MATRIX.row("reference")), adapter_for_row(MATRIX.row("reference-sglang-container"))
    assert ref.reference and ref.api == "vllm" and ref.shows_rendered_prompt
    assert ref_sglang.reference and ref_sglang.api == "sglang" and ref_sglang.container.kind == "reference"
    assert (ref.container.shm_size, ref.container.mount_hf_cache, ref.container.default_port) == ("2g", False, 8000)
    gpu = adapter_for_row(MATRIX.row("vllm-glm52-fp8-h200"))
    assert gpu is VLLM and not gpu.reference and gpu.container.kind == "vllm"
    # the registered adapter is not changed by making a reference of it
    assert reference_of(VLLM) is not VLLM and VLLM.container.kind == "vllm" and not VLLM.reference


def test_container_defaults_per_engine():
    assert (VLLM.container.kind, VLLM.container.default_port, VLLM.container.mount_hf_cache) == ("vllm", 8000, True)
    assert (SGLANG.container.kind, SGLANG.container.default_port, SGLANG.container.mount_hf_cache) == ("sglang", 30000, True)
    # seed 003's single-node recipe serves on --port 8077 (the adapter said 8000 before)
    assert (ASCEND.container.kind, ASCEND.container.default_port, ASCEND.container.mount_hf_cache) == ("vllm-ascend", 8077, False)
    assert {a.container.health_path for a in ADAPTERS.values()} == {"/health"}


def container_port_disagreements(rows, engine_defaults: dict) -> list[str]:
    """Where the port a container row publishes is not the one its engine serves on: matrix.yaml's
    per-engine container default (``engine_defaults``: engine -> port) against the adapter's, and
    a row's published port (``launch.port``, else the adapter's) against its recipe's ``--port``."""
    out = [f"defaults {engine}: port {port} != the adapter's {adapter_for(engine).container.default_port}"
           for engine, port in engine_defaults.items()
           if port is not None and int(port) != adapter_for(engine).container.default_port]
    for row in rows:
        if not row.in_container or row.is_reference:
            continue
        published = int(row.launch.port or adapter_for(row.engine).container.default_port)
        served = flag_value(row.launch.args, "--port")
        if served is not None and int(served) != published:
            out.append(f"{row.id}: publishes {published}, its recipe serves on --port {served}")
    return out


def yaml_engine_ports(document: dict) -> dict:
    engines = ((document.get("defaults") or {}).get("containers") or {}).get("engines") or {}
    return {e: (layer.get("launch") or {}).get("port") for e, layer in engines.items()}


def test_container_rows_serve_on_their_adapters_default_port():
    rows = [r for r in MATRIX.rows if r.in_container and not r.is_reference]
    assert {r.engine for r in rows} == {"vllm", "sglang", "vllm-ascend"}
    ports = yaml_engine_ports(read_document())
    assert container_port_disagreements(MATRIX.rows, ports) == []
    # the disagreement this fixed: an adapter default of 8000 under matrix.yaml's (and seed 003's) 8077
    assert container_port_disagreements([], {**ports, "vllm-ascend": 8000}) == [
        "defaults vllm-ascend: port 8000 != the adapter's 8077"]
    # and a row publishing another port than its recipe serves on
    ascend = next(r for r in rows if r.engine == "vllm-ascend")
    drifted = dataclasses.replace(ascend, launch=dataclasses.replace(ascend.launch, port=8000))
    assert container_port_disagreements([drifted], {}) == [f"{ascend.id}: publishes 8000, its recipe serves on --port 8077"]


# ---- rendered prompt and tokens ---------------------------------------------------------------------
def test_vllm_and_sglang_show_the_rendered_prompt_and_policy_delegates():
    assert VLLM.shows_rendered_prompt and ASCEND.shows_rendered_prompt and SGLANG.shows_rendered_prompt
    assert policy.rendered_prompt("vllm") is True and policy.rendered_prompt("sglang") is True

    class Bare(EngineAdapter):  # a new engine's adapter shows none until it says how
        name = api = "bare"
    assert not Bare.shows_rendered_prompt


def test_vllm_renders_the_prompt_through_token_ids_and_detokenize():
    routes = {("POST", "/v1/chat/completions"): {"choices": [{}], "prompt_token_ids": [1, 2, 3]},
              ("POST", "/detokenize"): lambda b: {"prompt": f"rendered {b['tokens']}"}}
    with Engine(routes) as eng:
        got = VLLM.rendered_prompt(eng.client(), [{"role": "user", "content": "hi"}], {"reasoning_effort": "high"})
        sent = eng.seen[0][2]
    assert got == "rendered [1, 2, 3]"
    assert sent["return_token_ids"] is True and sent["max_tokens"] == 1 and sent["reasoning_effort"] == "high"


def test_vllm_rendered_prompt_falls_back_to_tokenize_and_reports_a_refusal():
    routes = {("POST", "/v1/chat/completions"): {"choices": [{}]},
              ("POST", "/tokenize"): {"tokens": [7, 8], "count": 2},
              ("POST", "/detokenize"): lambda b: {"prompt": str(b["tokens"])}}
    with Engine(routes) as eng:
        assert VLLM.rendered_prompt(eng.client(), [{"role": "user", "content": "hi"}], {}) == "[7, 8]"
        assert eng.seen[1][1] == "/tokenize" and eng.seen[1][2]["add_generation_prompt"] is True
    with Engine({("POST", "/v1/chat/completions"): (400, {"error": "bad effort"})}) as eng:
        assert VLLM.rendered_prompt(eng.client(), [], {"reasoning_effort": 3}) == 400
    with Engine({("POST", "/v1/chat/completions"): {"prompt_token_ids": [1]}, ("POST", "/detokenize"): (500, {})}) as eng:
        with pytest.raises(EngineProtocolError, match="/detokenize: HTTP 500"):
            VLLM.rendered_prompt(eng.client(), [], {})


def test_sglang_renders_the_prompt_through_choice_ids_and_detokenize_keeping_special_tokens():
    routes = {("POST", "/v1/chat/completions"): {"choices": [{"prompt_token_ids": [4, 5]}], "prompt_token_ids": [9]},
              ("POST", "/detokenize"): lambda b: {"text": f"<|user|>{b['tokens']} special={b['skip_special_tokens']}"}}
    with Engine(routes) as eng:
        got = SGLANG.rendered_prompt(eng.client(), [{"role": "user", "content": "hi"}],
                                     {"reasoning_effort": "high", "stream": True})
        sent = eng.seen[0][2]
    assert got == "<|user|>[4, 5] special=False"  # the choice's ids, not a top-level field
    assert sent["return_prompt_token_ids"] is True and sent["max_tokens"] == 1 and sent["reasoning_effort"] == "high"
    assert sent["stream"] is False  # SGLang refuses the field on streams


def test_sglang_rendered_prompt_reports_a_refusal_and_a_release_without_ids():
    with Engine({("POST", "/v1/chat/completions"): (400, {"error": "bad effort"})}) as eng:
        assert SGLANG.rendered_prompt(eng.client(), [], {"reasoning_effort": 3}) == 400
    with Engine({("POST", "/v1/chat/completions"): {"choices": [{"message": {"content": "x"}}]}}) as eng:
        with pytest.raises(EngineProtocolError, match="without choices\\[0\\].prompt_token_ids"):
            SGLANG.rendered_prompt(eng.client(), [], {})
        assert [p for _, p, _ in eng.seen] == ["/v1/chat/completions"], "no detokenize without ids"
    with Engine({("POST", "/v1/chat/completions"): {"choices": [{"prompt_token_ids": [1]}]},
                 ("POST", "/detokenize"): (500, {})}) as eng:
        with pytest.raises(EngineProtocolError, match="/detokenize: HTTP 500"):
            SGLANG.rendered_prompt(eng.client(), [], {})


def test_sglang_counts_no_single_text_through_its_adapter():
    with Engine({}) as eng:
        assert SGLANG.count_text_tokens(eng.client(), "abc") is None
        assert eng.seen == [], "nothing is asked of an engine whose adapter does not count single texts"


def test_prompt_tokens_vllm_by_tokenize_sglang_by_a_one_token_completion():
    off = {"enable_thinking": False}
    with Engine({("POST", "/tokenize"): lambda b: {"count": 10 * len(b.get("messages") or [0]), "tokens": []}}) as eng:
        count = VLLM.prompt_token_counter(eng.client(), off)
        assert count([{"role": "user", "content": "x"}] * 2) == 20
        assert eng.seen[0][2]["chat_template_kwargs"] == off and eng.seen[0][2]["add_generation_prompt"] is True
        assert VLLM.count_text_tokens(eng.client(), "some reasoning") == 10
        assert eng.seen[1][2] == {"model": "m", "prompt": "some reasoning", "add_special_tokens": False}
    completion = {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                  "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "a"}}],
                  "usage": {"prompt_tokens": 37, "completion_tokens": 1, "total_tokens": 38}}
    with Engine({("POST", "/v1/chat/completions"): completion}) as eng:
        assert SGLANG.prompt_token_counter(eng.client(), off)([{"role": "user", "content": "x"}]) == 37
        body = eng.seen[0][2]
        assert body["max_tokens"] == 1 and body["chat_template_kwargs"] == off


# ---- speculative decoding -------------------------------------------------------------------------------
def metrics_text(drafts: float, accepted: float, positions: list[float]) -> str:
    lines = ['vllm:spec_decode_num_drafts_total{engine="0"} %s' % drafts,
             'vllm:spec_decode_num_accepted_tokens_total{engine="0"} %s' % accepted,
             'vllm:spec_decode_num_draft_tokens_total{engine="0"} %s' % (drafts * len(positions))]
    lines += ['vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",position="%d"} %s' % (i, v)
              for i, v in enumerate(positions)]
    return "\n".join(lines) + "\n"


class FakeChat:
    """Stands for ``Chat``: answers every request and moves the engine's counters meanwhile."""

    def __init__(self, on_batch, results=None):
        self.on_batch, self.results = on_batch, results
        self.requests: list[dict] = []

    def many(self, requests):
        batch = list(requests)
        self.requests += batch
        self.on_batch()
        return self.results or [ChatResult(stream=False, content="ok", usage={"completion_tokens": 50}) for _ in batch]


def test_vllm_meter_reads_counter_deltas_per_window():
    snapshots = iter([metrics_text(0, 0, [0, 0]), metrics_text(0, 0, [0, 0]), metrics_text(10, 15, [9, 6]),
                      metrics_text(10, 15, [9, 6])])
    state = {"text": next(snapshots)}
    with Engine({("GET", "/metrics"): lambda _: state["text"]}) as eng:
        meter = VLLM.accept_length_meter(eng.client("vllm"), draft_tokens=2, window=4)
        assert isinstance(meter, MetricsMeter) and meter.requests_per_value == 4 and meter.source == "/metrics"
        meter.begin()
        state["text"] = next(snapshots)  # the window's "before"
        chat = FakeChat(lambda: state.update(text=next(snapshots)))
        m = meter.measure(chat, ["a", "b", "c", "d"], 512)
        assert len(chat.requests) == 4 and chat.requests[0]["max_tokens"] == 512
        assert m.values == [2.5] and not m.problems
        assert m.records[0]["per_position"] == [0.9, 0.6] and m.records[0]["completion_tokens"] == 200
        state["text"] = next(snapshots)
        summary, problems = meter.summary(m.records)
    assert not problems and summary["accept_length"] == 2.5 and summary["trend"] == [2.5]
    assert summary["tokens_spent"] == 200 and meter.context(m.records) == "over 1 windows of 4 requests"


def test_vllm_meter_fails_without_counters_and_on_inconsistent_or_frozen_ones():
    with Engine({("GET", "/metrics"): 'vllm:num_requests_running{engine="0"} 0\n'}) as eng:
        with pytest.raises(AssertionError, match="speculative decoding is off"):
            VLLM.accept_length_meter(eng.client("vllm"), 2, 4).begin()
    state = {"text": metrics_text(0, 0, [0])}
    with Engine({("GET", "/metrics"): lambda _: state["text"]}) as eng:
        meter = VLLM.accept_length_meter(eng.client("vllm"), draft_tokens=1, window=2)
        meter.begin()
        failed = [ChatResult(stream=False, error="HTTP 500")]
        m = meter.measure(FakeChat(lambda: state.update(text=metrics_text(10, 40, [4])), failed), ["a", "b"], 16)
        assert any("exceeds draft tokens + 1 = 2" in p for p in m.problems), m.problems
        assert "response: request failed: HTTP 500" in m.problems
        frozen = VLLM.accept_length_meter(eng.client("vllm"), 1, 2)
        frozen.begin()
        _, problems = frozen.summary([{"completion_tokens": 9}])
    assert problems and "did not move over 9 generated tokens" in problems[0]


def test_sglang_meter_reads_meta_info_per_request():
    answers = iter([{"choices": [{"meta_info": {"spec_verify_ct": 20}}], "usage": {"completion_tokens": 70}},
                    {"choices": [{"meta_info": {}}], "usage": {"completion_tokens": 70}}])
    with Engine({("POST", "/v1/chat/completions"): lambda _: next(answers)}) as eng:
        meter = SGLANG.accept_length_meter(eng.client("sglang"), draft_tokens=3, window=4)
        assert isinstance(meter, MetaInfoMeter) and meter.requests_per_value == 1 and meter.quantity
        meter.begin()
        m = meter.measure(None, ["a", "b"], 64)
        assert eng.seen[0][2]["return_meta_info"] is True and eng.seen[0][2]["max_tokens"] == 64
    assert m.values == [3.5] and m.records == [{"accept_length": 3.5}] and not m.problems
    assert meter.summary(m.records) == ({}, [])
    with Engine({("POST", "/v1/chat/completions"): (503, {})}) as eng:
        m = SGLANG.accept_length_meter(eng.client("sglang"), 3, 4).measure(None, ["a"], 8)
    assert m.problems == ["SGLang chat completion with return_meta_info: HTTP 503"]


def test_only_sglang_has_a_simulated_acceptance_switch():
    assert SGLANG.simulated_acceptance_env == "SGLANG_SIMULATE_ACC_LEN"
    assert VLLM.simulated_acceptance_env is None and ASCEND.simulated_acceptance_env is None


# ---- version and detection --------------------------------------------------------------------------------
def test_version_paths_per_engine():
    with Engine({("GET", "/version"): {"version": "0.32.0"}, ("GET", "/get_server_info"): {"version": "0.4.9"}}) as eng:
        assert VLLM.version(eng.client()) == "0.32.0"
        assert SGLANG.version(eng.client()) == "0.4.9", "older SGLang: /get_server_info before /version"
    with Engine({("GET", "/server_info"): {"version": "0.5.23"}}) as eng:
        assert SGLANG.version(eng.client()) == "0.5.23" and VLLM.version(eng.client()) is None


@pytest.mark.parametrize("routes,want", [
    ({("GET", "/v1/models"): models("vllm")}, "vllm"),
    ({("GET", "/v1/models"): models("sglang")}, "sglang"),
    ({("GET", "/v1/models"): models(None), ("GET", "/server_info"): {"version": "0.5.23"}}, "sglang"),
    ({("GET", "/v1/models"): models(None), ("GET", "/get_server_info"): {}}, "sglang"),
    ({("GET", "/v1/models"): models("someone")}, "vllm"),
], ids=["owned-vllm", "owned-sglang", "server-info", "get-server-info", "default"])
def test_engine_detection(routes, want):
    with Engine(routes) as eng:
        assert detect_engine(eng.client()) == want


def test_probe_fills_model_engine_and_facts():
    routes = {("GET", "/v1/models"): models("sglang"), ("GET", "/server_info"): {"version": "0.5.23"}}
    with Engine(routes) as eng:
        client = probe(eng.client(model=None))
    assert (client.model, client.engine) == ("m", "sglang")
    assert client.facts == {"engine": "sglang", "served_model": "m", "version": "0.5.23", "max_model_len": 4096}
    with Engine({("GET", "/v1/models"): models("sglang"), ("GET", "/version"): {"version": "0.32.0"}}) as eng:
        assert probe(eng.client(engine="vllm")).engine == "vllm", "a given engine is not probed"


# ---- flags ---------------------------------------------------------------------------------------------------
def test_parser_flags_and_conformance_releases():
    args = ["--reasoning-parser", "glm45", "--tool-call-parser=glm47", "--port", "1"]
    for a in (VLLM, SGLANG, ASCEND):
        assert a.parser_flags.names(args) == ("glm45", "glm47")
        assert a.parser_flags.names(["--port", "1"]) == (None, None)
    assert (VLLM.parser_conformance_version, ASCEND.parser_conformance_version) == ("0.32.0", "0.32.0")
    assert SGLANG.parser_conformance_version == "0.5.23"


def test_removed_flags_are_vllms_and_ascend_inherits_them():
    assert [f.flag for f in VLLM.removed_flags] == ["--disable-log-requests"] and VLLM.removed_flags[0].since == (0, 12)
    assert ASCEND.removed_flags == VLLM.removed_flags and SGLANG.removed_flags == ()


def test_process_placeholders_name_the_sglang_server_venv():
    row = MATRIX.row("reference-sglang")
    assert VLLM.process_placeholders(row) == {}
    assert any("{sglang_python}" in c for c in row.launch.command)
    try:
        got = SGLANG.process_placeholders(row)
    except LookupError as exc:  # no server venv on this machine: the error says how to make one
        assert "make setup" in str(exc)
    else:
        assert got["sglang_python"].endswith("bin/python")
    assert SGLANG.process_placeholders(MATRIX.row("sglang-glm52-fp8-h200-balanced")) == {}


# ---- observed-args source ------------------------------------------------------------------------------------
def test_declared_speculation_per_engine():
    assert VLLM.declared_speculation(argmap(["--speculative-config", '{"method": "mtp", "num_speculative_tokens": 3}'])) == (True, 3)
    assert VLLM.declared_speculation(argmap(["--speculative-config.num_speculative_tokens", "5"])) == (True, 5)
    assert VLLM.declared_speculation(argmap(["--speculative-config", "{spec}"])) == (True, None)
    assert VLLM.declared_speculation(argmap(["--tp", "8"])) == (False, None)
    assert SGLANG.declared_speculation(argmap(["--speculative-algorithm", "EAGLE", "--speculative-num-draft-tokens", "4"])) == (True, 4)
    assert SGLANG.declared_speculation(argmap(["--tp", "8"])) == (False, None)
    assert json_object("[1]") is None and json_object("not json") is None and json_object('{"a": 1}') == {"a": 1}
    assert flag_value(["--a=1"], "--a") == "1" and flag_value(["--a"], "--a") is None


def test_observe_config_reads_each_engines_own_source():
    info = json.loads((FIX / "sglang-fp8-h200-low-latency-server_info.json").read_text())
    with Engine({("GET", "/server_info"): info, ("GET", "/metrics"): (FIX / "vllm-h200-mtp5-metrics.txt").read_text()}) as eng:
        sg: dict = {"endpoints": {}}
        SGLANG.observe_config(eng.client("sglang"), sg)
        vl: dict = {"endpoints": {}}
        VLLM.observe_config(eng.client("vllm"), vl)
    assert sg["server_args"]["tp_size"] == 8 and "internal_states" not in sg["server_args"]
    assert sg["endpoints"] == {"/server_info": "ok"} and "cache_config" not in sg
    assert vl["speculative"] is True and vl["draft_positions"] == 5 and vl["endpoints"] == {"/metrics": "ok"}
    with Engine({}) as eng:
        down: dict = {"endpoints": {}}
        VLLM.observe_config(eng.client("vllm"), down)
        SGLANG.observe_config(eng.client("sglang"), down)
    assert down["endpoints"]["/metrics"].startswith("error:") and "speculative" not in down
    assert down["endpoints"]["/get_server_info"].startswith("error:") and "server_args" not in down


# ---- the served model is pinned --------------------------------------------------------------------------
class TwoModels:
    """An EngineClient double for an endpoint (a gateway) listing another model before the row's."""

    def __init__(self, model=None, ids=("other-model", "glm-5.2-ref")):
        self.model, self.engine, self.facts = model, "vllm", {}
        self._ids = list(ids)

    def models(self):
        return [{"id": i, "max_model_len": 16384} for i in self._ids]

    def max_model_len(self):
        return 16384

    def version(self, paths=("/version",)):
        return "0.32.0"

    def get_json(self, path, timeout=10):
        return {"version": "0.32.0"}


def test_probe_talks_to_the_named_model_never_the_first_listed():
    from glmverify.adapters import ServedModelError, probe

    assert probe(TwoModels(model="glm-5.2-ref")).model == "glm-5.2-ref"
    with pytest.raises(ServedModelError, match=r"does not serve model 'glm-5.2-fp8'; it serves: other-model, glm-5.2-ref"):
        probe(TwoModels(model="glm-5.2-fp8"))
    with pytest.raises(ServedModelError, match=r"serves 2 models \(other-model, glm-5.2-ref\)"):
        probe(TwoModels())
    assert probe(TwoModels(ids=("glm-5.2-ref",))).model == "glm-5.2-ref"  # one model: that one


def test_an_endpoints_row_is_found_among_every_model_it_serves(tmp_path):
    from glmverify.options import Options
    from glmverify.session import row_for_endpoint

    opts = Options(matrix_path=tmp_path / "m.yaml", results_dir=tmp_path, endpoint="http://127.0.0.1:1")
    assert row_for_endpoint(MATRIX, opts, TwoModels()).id == "reference"
    with pytest.raises(ValueError, match="match 0 matrix rows; pass --row"):
        row_for_endpoint(MATRIX, opts, TwoModels(ids=("other-model",)))
