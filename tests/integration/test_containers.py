"""The container launcher: its SDK arguments without Docker, then against a real Docker daemon
(those tests are marked ``docker``; without a daemon they skip on a developer machine and fail in CI).

Without Docker: a spec built directly (outside the matrix) carries the run's labels and renders
every field; the SDK accepts ``sdk_kwargs`` as ``containers.create`` arguments (checked by the
SDK's own argument conversion, no daemon).

Engine containers are testcontainers ``DockerContainer``s (Ryuk is off on machines that cannot
pull it). With Docker, the small local base image ``glmverify/debian-minbase:bookworm`` (images/base/build.sh:
debootstrap + docker import, built once, ~90 s, when missing and the host can build it):

* a container that exits during startup fails ``start()`` within seconds, with its log tail;
* a healthy container is published on 127.0.0.1 only, reports its image and the host's
  accelerators in ``info()``, and is gone after ``stop()``;
* a child pytest run killed with SIGTERM (or SIGINT) leaves no container of its run behind;
* a child run killed with SIGKILL leaves its container running (no code of it runs), and the next
  run's start removes it (``container_owner.sweep``: owner process dead), while a container of a
  live owner and one of another host stay; where the child could start Ryuk, Ryuk removes it;
* ``reap(run_id)`` removes leftovers by label.

The reference images serving the stand-in through the launcher are live tests
(tests/live/test_reference_containers.py).
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
from glmverify.container_spec import LAUNCH_LABEL, ROW_LABEL, RUN_LABEL, ContainerSpec, Volume
from glmverify.containers import EngineContainer, reap, sdk_kwargs
from glmverify.engines import EngineStartupError, HttpReadiness
from helpers.procs import default_sigint, read_until
from helpers.require import need

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "glmverify/debian-minbase:bookworm"
REFERENCE_IMAGE = "glmverify/reference-vllm-cpu:0.32.0"
SGLANG_REFERENCE_IMAGE = "glmverify/reference-sglang-cpu:0.5.23"

@pytest.fixture
def docker_needed():
    """No Docker daemon: a skip on a developer's machine, a failure in CI."""
    why = containers.docker_unavailable()
    need(f"needs Docker: {why}" if why else None)


needs_docker = pytest.mark.usefixtures("docker_needed")


# ---- without Docker ---------------------------------------------------------------------------------
def test_a_spec_outside_the_matrix_carries_the_run_labels():
    spec = ContainerSpec(row_id="docker test", image="example/engine:1", run_id="r1", labels={"team": "qa"})
    assert spec.launch_id.startswith("docker-test-") and len(spec.launch_id) == len("docker-test-") + 8
    assert spec.labels == {RUN_LABEL: "r1", ROW_LABEL: "docker test", LAUNCH_LABEL: spec.launch_id, "team": "qa"}
    assert ContainerSpec(row_id="a", image="i", run_id="r1").launch_id != ContainerSpec(row_id="a", image="i", run_id="r1").launch_id
    assert ContainerSpec(row_id="a", image="i", run_id="r1", launch_id="fixed").labels[LAUNCH_LABEL] == "fixed"


def test_the_sdk_accepts_the_create_arguments_of_every_spec():
    """``containers.create(**sdk_kwargs(spec))`` must not raise for an unknown argument: the SDK's
    own conversion (what ``create`` calls before talking to the daemon) consumes every key."""
    from docker.models.containers import _create_container_args

    from glmverify.matrix import load
    from glmverify.plan import plan_spec

    specs = [plan_spec(r) for r in load().rows if r.launcher == "container"]
    specs.append(ContainerSpec(row_id="adhoc", image="example/engine:1", run_id="r1", entrypoint=["sh", "-c"],
                               command=["exit 0"], volumes=[Volume("/data", "/data", "ro")], host_port=9000))
    for spec in specs:
        kw = sdk_kwargs(spec)
        args = _create_container_args({**kw, "version": "1.44"})  # create() adds the daemon API version
        assert args["image"] == spec.image and args["labels"] == spec.labels
        host = args["host_config"]
        assert host["PortBindings"][spec.port_key][0]["HostIp"] == spec.publish_host
        assert host["NetworkMode"] == spec.network
        assert bool(host.get("DeviceRequests")) == (spec.gpus is not None), spec.row_id


def test_a_container_takes_its_health_path_from_the_spec():
    spec = ContainerSpec(row_id="adhoc", image="example/engine:1", run_id="r1", health_path="/ready")
    e = EngineContainer(spec, readiness=HttpReadiness(timeout=42, interval=0.5))
    assert (e.readiness.path, e.readiness.timeout, e.readiness.interval) == ("/ready", 42, 0.5)
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    strategy = e.readiness.strategy  # the readiness is testcontainers' HTTP wait on the spec's port and path
    assert isinstance(strategy, HttpWaitStrategy) and (strategy._port, strategy._path) == (spec.port, "/ready")
    assert e.alive() == (False, "not launched")
    assert e.info()["container"]["id"] is None


# ---- with Docker --------------------------------------------------------------------------------------


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
        need(f"{BASE_IMAGE} is missing and this host cannot build it (needs root and debootstrap): "
             "run images/base/build.sh")
    proc = subprocess.run(["bash", str(REPO / "images" / "base" / "build.sh")], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"images/base/build.sh failed: {proc.stderr[-500:]}")
    return BASE_IMAGE


@pytest.fixture
def run_id() -> str:
    rid = f"test-{uuid.uuid4().hex[:10]}"
    yield rid
    reap(rid)


def _engine(image: str, run_id: str, *command: str, timeout: float = 60.0, log_path: Path | None = None,
            **spec_fields) -> EngineContainer:
    spec = ContainerSpec(row_id="docker-test", image=image, run_id=run_id, command=list(command), stop_timeout=2,
                         **spec_fields)
    return EngineContainer(spec, log_path=log_path, readiness=HttpReadiness(timeout=timeout, interval=0.25))


@pytest.mark.docker
@needs_docker
@pytest.mark.parametrize("script", [
    "echo loading weights; echo 'fatal: CUDA out of memory' >&2; sleep 1; exit 3",
    "echo 'fatal: CUDA out of memory' >&2; exit 3",  # exits before the port is even looked up
])
def test_exit_during_startup_fails_within_seconds_with_log_tail(base_image, run_id, tmp_path, script):
    e = _engine(base_image, run_id, "sh", "-c", script, log_path=tmp_path / "engine.log")
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


@pytest.mark.docker
@needs_docker
def test_healthy_container_on_loopback_then_stopped(base_image, run_id):
    e = _engine(base_image, run_id, "python3", "-u", "-m", "http.server", "8000",
                health_path="/", env={"GLMVERIFY_TEST": "1"})
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


@pytest.mark.docker
@needs_docker
def test_secret_env_reaches_the_container_but_not_the_log(base_image, run_id, monkeypatch):
    secret = f"hf_{uuid.uuid4().hex}"
    monkeypatch.setenv("GLMVERIFY_TEST_SECRET", secret)
    e = _engine(base_image, run_id, "sh", "-c", 'echo "token is $GLMVERIFY_TEST_SECRET"; exec python3 -m http.server 8000',
                health_path="/", secret_env=["GLMVERIFY_TEST_SECRET"])
    with e:
        deadline = time.monotonic() + 10
        while "token is" not in e.log_tail() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "token is ***" in e.log_tail()
        assert secret not in e.log_tail()
        assert secret not in str(e.info())


CHILD_TEST = textwrap.dedent('''
    import time
    from glmverify.container_spec import ContainerSpec, current_run_id
    from glmverify.containers import EngineContainer
    from glmverify.engines import HttpReadiness

    def test_long_lived():
        spec = ContainerSpec(row_id="sigterm-child", image={image!r}, run_id=current_run_id(),
                             command=[{command}], health_path="/", stop_timeout=2)
        e = EngineContainer(spec, readiness=HttpReadiness(timeout=600, interval=0.25))
        e.start()
        time.sleep(600)
''')


@pytest.mark.docker
@needs_docker
@pytest.mark.parametrize("when,sig", [("serving", signal.SIGTERM), ("starting", signal.SIGTERM), ("serving", signal.SIGINT)],
                         ids=["sigterm-while-serving", "sigterm-during-startup", "sigint-while-serving"])
def test_killed_pytest_run_leaves_no_container(base_image, run_id, tmp_path, when, sig):
    command = ('"python3", "-m", "http.server", "8000"' if when == "serving" else '"sleep", "600"')
    (tmp_path / "test_child.py").write_text(CHILD_TEST.format(image=base_image, command=command))
    env = {**os.environ, "GLMVERIFY_RUN_ID": run_id, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "glmverify.plugin", "-p", "no:cacheprovider", "-q", "-s",
         "--results=" + str(tmp_path / "results"), "--rootdir", str(tmp_path), str(tmp_path / "test_child.py")],
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


@pytest.mark.docker
@needs_docker
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


RYUK_CHILD = (
    "import os, docker; from testcontainers.core.config import testcontainers_config as c; "
    "from glmverify.container_owner import configure_ryuk; d = docker.from_env(); "
    "print(configure_ryuk(d, c)); print(c.ryuk_disabled, os.environ.get('TESTCONTAINERS_RYUK_DISABLED'))")


@pytest.mark.docker
@needs_docker
@pytest.mark.parametrize("user_setting", [None, "false", "true"])
def test_ryuk_is_used_where_it_can_run_and_the_users_setting_wins(user_setting):
    env = {k: v for k, v in os.environ.items() if k != "TESTCONTAINERS_RYUK_DISABLED"}
    if user_setting is not None:
        env["TESTCONTAINERS_RYUK_DISABLED"] = user_setting
    out = subprocess.run([sys.executable, "-c", RYUK_CHILD], env={**env, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=120)
    decision, state = out.stdout.strip().splitlines()
    if user_setting == "false":
        assert (decision, state) == ("ryuk", "False false")
    elif user_setting == "true":
        assert decision.startswith("sweep: Ryuk disabled by") and state == "True true"
    elif decision == "ryuk":  # the image is here or could be pulled
        assert state == "False None"
    else:  # no registry (these CPU machines): turned off for this run and the processes it starts
        assert decision.startswith("sweep: Ryuk unavailable: cannot pull testcontainers/ryuk"), decision
        assert state == "True true"


# ---- SIGKILL: the next run's start removes what a killed run left -------------------------------------
SWEEP_CHILD = textwrap.dedent('''
    import os, time
    from glmverify.container_spec import ContainerSpec, current_run_id
    from glmverify.containers import EngineContainer
    from glmverify.engines import HttpReadiness

    def test_serve():
        spec = ContainerSpec(row_id="sweep-child", image={image!r}, run_id=current_run_id(),
                             command=["python3", "-m", "http.server", "8000"], health_path="/", stop_timeout=2)
        e = EngineContainer(spec, readiness=HttpReadiness(timeout=120, interval=0.25), progress=print)
        e.start()
        print("REAPER", e.reaper, flush=True)
        print("READY", flush=True)
        if os.environ.get("SWEEP_CHILD_HOLD") == "1":
            time.sleep(600)
        e.stop()
''')


def _child_run(tmp_path: Path, image: str, run_id: str, hold: bool) -> subprocess.Popen:
    (tmp_path / "test_sweep_child.py").write_text(SWEEP_CHILD.format(image=image))
    env = {**os.environ, "GLMVERIFY_RUN_ID": run_id, "PYTHONPATH": str(REPO), "SWEEP_CHILD_HOLD": "1" if hold else "0"}
    env.pop("TESTCONTAINERS_RYUK_DISABLED", None)  # the child decides about Ryuk itself
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "glmverify.plugin", "-p", "no:cacheprovider", "-q", "-s",
         "--results=" + str(tmp_path / "results"), "--rootdir", str(tmp_path), str(tmp_path / "test_sweep_child.py")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.docker
@needs_docker
def test_a_sigkilled_runs_container_is_removed_by_the_next_runs_start(base_image, tmp_path):
    killed_run, next_run = f"test-{uuid.uuid4().hex[:10]}", f"test-{uuid.uuid4().hex[:10]}"
    # a container of a live owner (this process) and one of another host: the sweep must keep both
    from glmverify.container_owner import OWNER_HOST, owner_labels
    c = _client()
    keep = [c.containers.run(base_image, ["sleep", "600"], detach=True, labels={RUN_LABEL: killed_run, **labels})
            for labels in (owner_labels(), {**owner_labels(), OWNER_HOST: "another-host"})]
    c.close()
    (tmp_path / "killed").mkdir()
    child = _child_run(tmp_path / "killed", base_image, killed_run, hold=True)
    try:
        lines = read_until(child, "READY")
        reaper = next(ln.split(" ", 1)[1].strip() for ln in lines if ln.startswith("REAPER"))
        [engine] = [x for x in _containers(f"{RUN_LABEL}={killed_run}") if x.id not in {k.id for k in keep}]
        assert engine.status == "running"
        child.kill()  # SIGKILL: no handler, no atexit, nothing of the run's cleanup runs
        child.wait(timeout=30)
        if reaper == "ryuk":  # a runner that can run Ryuk: the reaper removes it within its timeout
            deadline = time.monotonic() + 60
            while engine.id in {x.id for x in _containers(f"{RUN_LABEL}={killed_run}")} and time.monotonic() < deadline:
                time.sleep(1)
        else:
            assert reaper.startswith("sweep: "), reaper
            time.sleep(3)
            assert engine.id in {x.id for x in _containers(f"{RUN_LABEL}={killed_run}")}, \
                "without Ryuk the killed run's container must still be there before the next run"
            (tmp_path / "next").mkdir()
            nxt = _child_run(tmp_path / "next", base_image, next_run, hold=False)
            out, _ = nxt.communicate(timeout=180)
            assert nxt.returncode == 0, out[-3000:]
            swept = next((ln for ln in out.splitlines() if "container(s) of dead runs:" in ln), "")
            assert engine.name in swept, out[-3000:]  # (other dead runs' containers may be swept too)
        left = {x.id for x in _containers(f"{RUN_LABEL}={killed_run}")}
        assert engine.id not in left, "the SIGKILLed run's container survived the next run's start"
        assert {k.id for k in keep} <= left, "the sweep removed a container whose owner is alive or elsewhere"
        assert not _cli_ps(next_run), "the next run left its own container"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        reap(killed_run)
        reap(next_run)
