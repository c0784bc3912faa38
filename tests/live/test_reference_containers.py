"""The reference images through the container launcher, live: each serves the stand-in.

* the vLLM reference image (images/reference) answers GET /v1/models with the row's served name and
  window, and its container carries the run's label; nothing is left after ``stop()``;
* the SGLang reference image (images/sglang-reference) answers /v1/models as sglang, and a chat
  answer split by SGLang's glm45 parser, which only the stand-in's plugin can produce;
* a run killed with SIGKILL while its reference container serves leaves that container running
  (where Ryuk cannot run), and the next run's start removes it before launching its own.

A missing image is a skip on a developer's machine and a failure in CI (``make images`` builds them).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import pytest

from glmverify import containers
from glmverify.container_spec import RUN_LABEL
from glmverify.containers import reap
from glmverify.engines import HttpReadiness
from helpers.procs import read_until
from helpers.require import need

REPO = Path(__file__).resolve().parents[2]
REFERENCE_IMAGE = "glmverify/reference-vllm-cpu:0.32.0"
SGLANG_REFERENCE_IMAGE = "glmverify/reference-sglang-cpu:0.5.23"

pytestmark = [pytest.mark.docker]


@pytest.fixture(autouse=True)
def _docker():
    why = containers.docker_unavailable()
    need(f"needs Docker: {why}" if why else None)


def _cli_ps(run_id: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-a", "-q", "--filter", f"label={RUN_LABEL}={run_id}"],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.split()


@pytest.fixture
def run_id() -> str:
    rid = f"test-{uuid.uuid4().hex[:10]}"
    yield rid
    reap(rid)


def test_reference_container_serves_models(run_id, tmp_path):
    """The reference row through the launcher: built image, stand-in model, GET /v1/models."""
    need(None if containers.image_present(REFERENCE_IMAGE)
         else f"{REFERENCE_IMAGE} is not built (images/reference/build.sh, ~6 min)")
    from glmverify.matrix import load
    from glmverify.session import Options

    row = load().row("reference-container")
    opts = Options(matrix_path=REPO / "matrix.yaml", results_dir=tmp_path)
    opts.run_id = run_id  # what the plugin should pass; containers.current_run_id reads it
    lines = []
    e = containers.container_for_row(row, opts, log_dir=tmp_path / "logs",
                                     readiness=HttpReadiness(timeout=600, progress_every=10), progress=lines.append)
    assert e.spec.kind == "reference" and e.spec.shm_size == "2g"
    with e:
        models = httpx.get(e.url_for("/v1/models"), timeout=30).json()
        assert models["data"][0]["id"] == "glm-5.2-ref-container"
        assert models["data"][0]["max_model_len"] == 16384
        assert e.info()["container"]["labels"][RUN_LABEL] == run_id
    assert not _cli_ps(run_id)
    assert (tmp_path / "logs" / "reference-container.log").stat().st_size > 0


def test_sglang_reference_container_serves_the_stand_in(run_id, tmp_path):
    """The SGLang reference row through the launcher: the image images/sglang-reference builds, the
    stand-in model and plugin mounted; /v1/models says sglang, and a chat answer comes back split
    by SGLang's glm45 parser (reasoning_content), which only the stand-in's plugin can produce."""
    need(None if containers.image_present(SGLANG_REFERENCE_IMAGE)
         else f"{SGLANG_REFERENCE_IMAGE} is not built (images/sglang-reference/build.sh, ~5 min)")
    from glmverify.matrix import load
    from glmverify.session import Options

    row = load().row("reference-sglang-container")
    opts = Options(matrix_path=REPO / "matrix.yaml", results_dir=tmp_path)
    opts.run_id = run_id
    e = containers.container_for_row(row, opts, log_dir=tmp_path / "logs",
                                     readiness=HttpReadiness(timeout=900, progress_every=10), progress=lambda _: None)
    with e:
        models = httpx.get(e.url_for("/v1/models"), timeout=30).json()["data"][0]
        assert (models["id"], models["owned_by"], models["max_model_len"]) == ("glm-5.2-ref-sglang-container", "sglang", 16384)
        r = httpx.post(e.url_for("/v1/chat/completions"), timeout=600, json={
            "model": models["id"], "messages": [{"role": "user", "content": "Why is the sky blue?"}]}).json()
        msg = r["choices"][0]["message"]
        assert msg["reasoning_content"] and msg["content"] and "</think>" not in msg["content"], msg
        assert r["choices"][0]["finish_reason"] == "stop"
    assert not _cli_ps(run_id)


KILLED_RUN = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from glmverify import containers
    from glmverify.engines import HttpReadiness
    from glmverify.matrix import load
    from glmverify.session import Options

    row = load().row("reference-container")
    opts = Options(matrix_path=Path(sys.argv[1]), results_dir=Path(sys.argv[2]))
    e = containers.container_for_row(row, opts, log_dir=Path(sys.argv[2]) / "logs",
                                     readiness=HttpReadiness(timeout=900, progress_every=30), progress=print)
    e.start()
    print("REAPER", e.reaper, flush=True)
    print("READY", flush=True)
    if sys.argv[3] == "hold":
        time.sleep(3600)
    e.stop()
''')


def _run(tmp_path: Path, run_id: str, mode: str) -> subprocess.Popen:
    env = {**os.environ, "GLMVERIFY_RUN_ID": run_id, "PYTHONPATH": str(REPO)}
    env.pop("TESTCONTAINERS_RYUK_DISABLED", None)  # each run decides about Ryuk itself
    return subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(REPO / "matrix.yaml"), str(tmp_path), mode],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_sigkilled_runs_reference_container_is_removed_by_the_next_run(tmp_path):
    need(None if containers.image_present(REFERENCE_IMAGE)
         else f"{REFERENCE_IMAGE} is not built (images/reference/build.sh, ~6 min)")
    killed, following = f"test-{uuid.uuid4().hex[:10]}", f"test-{uuid.uuid4().hex[:10]}"
    child = _run(tmp_path / "killed", killed, "hold")
    try:
        lines = read_until(child, "READY")
        reaper = next(ln.split(" ", 1)[1].strip() for ln in lines if ln.startswith("REAPER"))
        [engine] = _cli_ps(killed)
        name = subprocess.run(["docker", "inspect", "-f", "{{.Name}}", engine], capture_output=True, text=True,
                              timeout=30).stdout.strip().lstrip("/")
        child.kill()  # SIGKILL while the reference engine serves: none of the run's cleanup runs
        child.wait(timeout=30)
        if reaper == "ryuk":
            deadline = time.monotonic() + 60
            while _cli_ps(killed) and time.monotonic() < deadline:
                time.sleep(1)
        else:
            time.sleep(5)
            assert _cli_ps(killed) == [engine], "without Ryuk the killed run's container is still there"
            nxt = _run(tmp_path / "next", following, "stop")
            out, _ = nxt.communicate(timeout=1200)
            assert nxt.returncode == 0, out[-3000:]
            swept = next((ln for ln in out.splitlines() if "container(s) of dead runs:" in ln), "")
            assert name in swept, out[-3000:]  # (other dead runs' containers may be swept too)
        assert not _cli_ps(killed), "the SIGKILLed run's reference container survived the next run's start"
        assert not _cli_ps(following)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        reap(killed)
        reap(following)
