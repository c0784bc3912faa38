"""serving_performance's offline stand-ins: a declared shape, the client's saved report, a vLLM
/metrics answer, and a stub engine and client session the measurement loop drives (the unit tier
runs no engine; tests/live and make verify run the real ones)."""
from __future__ import annotations

import dataclasses
import json

import httpx

from glmverify import benchclient, performance
from glmverify.paths import FIXTURES_DIR
from glmverify.perf_measurement import Measurement

REPORTS = FIXTURES_DIR / "performance"
SHAPE = {"regime": "low-latency", "claim": "fastest reply for a single user",
         "source": {"seed": "001_8813b45759c9d80d.txt", "section": "Deploy panel: Low-Latency"},
         "concurrency": [1, 16], "input_len": 8192, "output_len": 1024, "num_prompts": 32, "warmups": 2,
         "range_ratio": 1.0, "flush_cache": True, "figures": {1: {"ttft_ms": 662, "tpot_ms": 3.03, "tok_s_per_gpu": 34}},
         "figures_source": "SGLang cookbook glm-5.2-benchmarks.jsx"}


def with_shape(row, shape=SHAPE, **fields):
    return dataclasses.replace(row, expect={**row.expect, "performance": shape}, **fields)


def report(name="vllm-bench-serve-0.32.0-paced.json") -> dict:
    return json.loads((REPORTS / name).read_text())


def metrics_text(requests=8, tokens=256, ttft_s=0.1, tpot_s=0.0125, e2e_s=0.5) -> str:
    """A vLLM /metrics answer with the families the cross-check reads (labels as vLLM 0.32 writes them)."""
    lab = 'engine="0",model_name="glm-5.2"'
    return "\n".join([
        "# TYPE vllm:request_success_total counter",
        f'vllm:request_success_total{{{lab},finished_reason="length"}} {requests - 1}',
        f'vllm:request_success_total{{{lab},finished_reason="stop"}} 1',
        f"vllm:generation_tokens_total{{{lab}}} {tokens}",
        f"vllm:time_to_first_token_seconds_sum{{{lab}}} {ttft_s * requests}",
        f"vllm:time_to_first_token_seconds_count{{{lab}}} {requests}",
        f'vllm:time_to_first_token_seconds_bucket{{{lab},le="+Inf"}} {requests}',
        f"vllm:request_time_per_output_token_seconds_sum{{{lab}}} {tpot_s * requests}",
        f"vllm:request_time_per_output_token_seconds_count{{{lab}}} {requests}",
        f"vllm:e2e_request_latency_seconds_sum{{{lab}}} {e2e_s * requests}",
        f"vllm:e2e_request_latency_seconds_count{{{lab}}} {requests}"]) + "\n"


class StubEngine:
    """An engine as the loop sees it: /metrics counting what the stub client served (``engine_tpot_ms``
    per request), /reset_prefix_cache refused (vLLM outside dev mode)."""

    def __init__(self, row, engine_tpot_ms: float):
        self.row, self.model, self.evidence = row, "glm-5.2-ref", {"engine_version": "0.32.0"}
        self.served, self.tpot_sum = 0, 0.0
        self.tpot_s = engine_tpot_ms / 1000.0 if engine_tpot_ms else None   # None: as fast as the client saw
        stub = self

        def handler(request):
            if request.url.path == "/metrics":
                tpot = stub.tpot_sum / stub.served if stub.served else 0.0
                return httpx.Response(200, text=metrics_text(requests=stub.served, tokens=32 * stub.served, ttft_s=0.1,
                                                             tpot_s=tpot, e2e_s=0.1 + 31 * tpot))
            return httpx.Response(404)

        class Client:
            base_url, engine = "http://127.0.0.1:9", "vllm"

            def http(self, timeout=30):
                return httpx.Client(base_url=self.base_url, transport=httpx.MockTransport(handler))
        self.client = Client()


class StubSession:
    """A client session whose windows report ``client_tpot_ms`` (and count what they served)."""

    def __init__(self, engine: StubEngine, client_tpot_ms):
        self.engine, self.tpot, self.calls = engine, client_tpot_ms, []

    def window(self, argv, concurrency, timeout):
        n = int(argv[argv.index("--num-prompts") + 1])
        self.calls.append(n)
        tpot = self.tpot(len(self.calls)) if callable(self.tpot) else self.tpot
        self.engine.served += n
        self.engine.tpot_sum += n * (self.engine.tpot_s if self.engine.tpot_s is not None else tpot / 1000.0)
        data = report()
        data.update(completed=n, failed=0, total_output_tokens=32 * n, mean_tpot_ms=tpot, mean_ttft_ms=105.0,
                    mean_e2el_ms=105.0 + 31 * tpot, output_throughput=1000.0 / tpot)
        return benchclient.Window(argv=argv, concurrency=concurrency, report=data, seconds=1.0)


def measure(matrix, client_tpot_ms, engine_tpot_ms=None, baseline_tpot=10.0, tmp=None, basis="stub baseline",
            recording=False):
    """The reference's level 1 measured by the stub client against a baseline of ``baseline_tpot``
    (``recording``: as make perf-baseline measures, to sign a new baseline)."""
    row = with_shape(matrix.row("reference"), {**SHAPE, "concurrency": [1], "num_prompts": 8, "input_len": 64,
                                               "output_len": 32, "figures": {}})
    shape = performance.shape_of(row)
    engine = StubEngine(row, engine_tpot_ms)
    session = StubSession(engine, client_tpot_ms)
    m = Measurement(engine, shape, tmp, session, "0.32.0")
    m.recording = recording
    base = {"tpot_ms": baseline_tpot, "output_throughput": 1000.0 / baseline_tpot}
    m.measure_level(1, performance.regression_rules(row, shape, 1, 0.01 / 8, basis), (base, basis))
    return m, session
