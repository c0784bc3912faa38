"""The container launcher against a real Docker daemon (skipped, with the reason, without one).

Uses the small local base image ``glmverify/debian-minbase:bookworm`` (images/base/build.sh:
debootstrap + docker import, built once, ~90 s, when missing and the host can build it):

* a container that exits during startup fails ``start()`` within seconds, with its log tail;
* a healthy container is published on 127.0.0.1 only, reports its image and the host's
  accelerators in ``info()``, and is gone after ``stop()``;
* a child pytest run killed with SIGTERM (or SIGINT) leaves no container of its run behind;
* ``reap(run_id)`` removes leftovers by label;
* the reference image (images/reference), when built, serves GET /v1/models through the launcher.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import pytest

from glmverify import containers
from glmverify.containers import LAUNCH_LABEL, RUN_LABEL, EngineContainer, reap
from glmverify.engines import EngineStartupError, HttpReadiness
from helpers.procs import default_sigint
from helpers.require import need

REPO = Path(__file__).resolve().parent.parent
BASE_IMAGE = "glmverify/debian-minbase:bookworm"
REFERENCE_IMAGE = "glmverify/reference-vllm-cpu:0.32.0"
SGLANG_REFERENCE_IMAGE = "glmverify/reference-sglang-cpu:0.5.23"

_why = containers.docker_unavailable()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(bool(_why), reason=f"needs Docker: {_why}")]


def _client():
    import docker

    return docker.from_env()


def _containers(label: str) -> list:
    c = _client()
    try:
        return c.containers.list(all=True, filters={"label": label})
    finally:
        c.close()


def _cli_ps(run_id: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-a", "-q", "--filter", f"label={RUN_LABEL}={run_id}"],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.split()


@pytest.fixture(scope="session")
def base_image() -> str:
    if containers.image_present(BASE_IMAGE):
        return BASE_IMAGE
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        pytest.skip(f"{BASE_IMAGE} is missing and this host cannot build it (needs root and debootstrap): "
                    "run images/base/build.sh")
    proc = subprocess.run(["bash", str(REPO / "images" / "base" / "build.sh")], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.skip(f"images/base/build.sh failed: {proc.stderr[-500:]}")
    return BASE_IMAGE


@pytest.fixture
def run_id() -> str:
    rid = f"test-{uuid.uuid4().hex[:10]}"
    yield rid
    reap(rid)


def _engine(image: str, run_id: str, *command: str, timeout: float = 60.0) -> EngineContainer:
    e = EngineContainer.for_image(image, row_id="docker-test", run_id=run_id,
                                  readiness=HttpReadiness(timeout=timeout, interval=0.25))
    return e.with_command(*command).with_stop_timeout(2)


@pytest.mark.parametrize("script", [
    "echo loading weights; echo 'fatal: CUDA out of memory' >&2; sleep 1; exit 3",
    "echo 'fatal: CUDA out of memory' >&2; exit 3",  # exits before the port is even looked up
])
def test_exit_during_startup_fails_within_seconds_with_log_tail(base_image, run_id, tmp_path, script):
    e = _engine(base_image, run_id, "sh", "-c", script).with_log_path(tmp_path / "engine.log")
    t0 = time.monotonic()
    with pytest.raises(EngineStartupError) as info:
        with e:
            pass
    elapsed = time.monotonic() - t0
    msg = str(info.value)
    assert elapsed < 20, f"took {elapsed:.1f}s to notice the exit"
    assert "exited" in msg and "code 3" in msg
    assert "fatal: CUDA out of memory" in msg, msg
    assert not _containers(f"{LAUNCH_LABEL}={e.spec.launch_id}"), "the failed container was left behind"
    assert "fatal: CUDA out of memory" in (tmp_path / "engine.log").read_text()


def test_healthy_container_on_loopback_then_stopped(base_image, run_id):
    e = (_engine(base_image, run_id, "python3", "-u", "-m", "http.server", "8000")
         .with_health_path("/").with_env("GLMVERIFY_TEST", "1"))
    with e:
        assert e.base_url.startswith("http://127.0.0.1:")
        assert httpx.get(e.url_for("/"), timeout=10).status_code == 200
        [c] = _containers(f"{RUN_LABEL}={run_id}")
        bindings = c.attrs["HostConfig"]["PortBindings"]["8000/tcp"]
        assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
        assert c.labels[RUN_LABEL] == run_id and c.labels[LAUNCH_LABEL] == e.spec.launch_id
        info = e.info()
        assert info["container"]["image_id"].startswith("sha256:")
        assert info["accelerators"].keys() == {"nvidia", "rocm", "ascend"}
        assert info["container"]["docker_run"][:2] == ["docker", "run"]
        assert e.alive() == (True, None)
        assert e.startup_seconds is not None
    assert not _cli_ps(run_id), "the container survived stop()"
    assert e.alive()[0] is False


def test_secret_env_reaches_the_container_but_not_the_log(base_image, run_id, monkeypatch):
    secret = f"hf_{uuid.uuid4().hex}"
    monkeypatch.setenv("GLMVERIFY_TEST_SECRET", secret)
    e = (_engine(base_image, run_id, "sh", "-c",
                 'echo "token is $GLMVERIFY_TEST_SECRET"; exec python3 -m http.server 8000')
         .with_health_path("/").with_secret_env("GLMVERIFY_TEST_SECRET"))
    with e:
        deadline = time.monotonic() + 10
        while "token is" not in e.log_tail() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "token is ***" in e.log_tail()
        assert secret not in e.log_tail()
        assert secret not in str(e.info())


CHILD_TEST = textwrap.dedent('''
    import time
    from glmverify.containers import EngineContainer
    from glmverify.engines import HttpReadiness

    def test_long_lived():
        e = EngineContainer.for_image({image!r}, row_id="sigterm-child",
                                      readiness=HttpReadiness(timeout=600, interval=0.25))
        e.with_command({command}).with_health_path("/").with_stop_timeout(2)
        e.start()
        time.sleep(600)
''')


@pytest.mark.parametrize("when,sig", [("serving", signal.SIGTERM), ("starting", signal.SIGTERM), ("serving", signal.SIGINT)],
                         ids=["sigterm-while-serving", "sigterm-during-startup", "sigint-while-serving"])
def test_killed_pytest_run_leaves_no_container(base_image, run_id, tmp_path, when, sig):
    command = ('"python3", "-m", "http.server", "8000"' if when == "serving" else '"sleep", "600"')
    (tmp_path / "test_child.py").write_text(CHILD_TEST.format(image=base_image, command=command))
    env = {**os.environ, "GLMVERIFY_RUN_ID": run_id, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "glmverify.plugin", "-p", "no:cacheprovider", "-q", "-s",
         "--results", str(tmp_path / "results"), "--rootdir", str(tmp_path), str(tmp_path / "test_child.py")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            running = [c for c in _containers(f"{RUN_LABEL}={run_id}") if c.status == "running"]
            if running:
                break
            assert child.poll() is None, f"child pytest ended early:\n{child.stdout.read()}"
            time.sleep(0.3)
        else:
            pytest.fail("the child's container never started")
        time.sleep(2.0 if when == "serving" else 0.5)  # serving: past start(); starting: inside the readiness wait
        child.send_signal(sig)
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not _cli_ps(run_id), f"containers of run {run_id} left after {sig.name}:\n{out[-2000:]}"


def test_reap_removes_leftovers_by_label(base_image, run_id):
    c = _client()
    try:
        for _ in range(2):
            c.containers.run(base_image, ["sleep", "600"], detach=True, labels={RUN_LABEL: run_id})
        assert len(_cli_ps(run_id)) == 2
        removed = reap(run_id)
        assert len(removed) == 2
        assert not _cli_ps(run_id)
    finally:
        c.close()


@pytest.mark.live
def test_reference_container_serves_models(run_id, tmp_path):
    """The reference row through the launcher: built image, stand-in model, GET /v1/models."""
    if not containers.image_present(REFERENCE_IMAGE):
        pytest.skip(f"{REFERENCE_IMAGE} is not built (images/reference/build.sh, ~6 min)")
    from glmverify.matrix import load
    from glmverify.session import Options

    row = load().row("reference-container")
    opts = Options(matrix_path=REPO / "matrix.yaml", results_dir=tmp_path)
    opts.run_id = run_id  # what the plugin should pass; containers.current_run_id reads it
    lines = []
    e = containers.container_for_row(row, opts, log_dir=tmp_path / "logs",
                                     readiness=HttpReadiness(timeout=600, progress_every=10), progress=lines.append)
    assert isinstance(e, containers.ReferenceContainer)
    with e:
        models = httpx.get(e.url_for("/v1/models"), timeout=30).json()
        assert models["data"][0]["id"] == "glm-5.2-ref-container"
        assert models["data"][0]["max_model_len"] == 16384
        assert e.info()["container"]["labels"][RUN_LABEL] == run_id
    assert not _cli_ps(run_id)
    assert (tmp_path / "logs" / "reference-container.log").stat().st_size > 0


@pytest.mark.live
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
