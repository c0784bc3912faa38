"""Engine life: readiness fails fast on exit with the log tail, cleanup on failure, stop, SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from glmverify.engines import EngineStartupError, HttpReadiness, ProcessEngine
from glmverify.util import free_port
from helpers.procs import default_sigint

HELPER = Path(__file__).resolve().parents[1] / "helpers" / "slow_server.py"
REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of an exited child still answers kill(0); read its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def engine(tmp_path, *extra, timeout=30.0):
    port = free_port()
    return ProcessEngine("fake", [sys.executable, str(HELPER), str(port), *extra], port=port,
                         log_path=tmp_path / "engine.log", readiness=HttpReadiness(timeout=timeout, interval=0.2))


def test_exit_during_startup_fails_fast_with_log_tail(tmp_path):
    e = engine(tmp_path, "--die-after", "0.5")
    t0 = time.monotonic()
    with pytest.raises(EngineStartupError) as exc:
        with e:
            pass
    assert time.monotonic() - t0 < 10
    msg = str(exc.value)
    assert "exit code 3" in msg and "CUDA out of memory" in msg and "Loading safetensors" in msg
    assert "CUDA out of memory" in (tmp_path / "engine.log").read_text()


def test_ready_then_stopped(tmp_path):
    pidfile = tmp_path / "pid"
    e = engine(tmp_path, "--ready-after", "0.5", "--pidfile", str(pidfile))
    with e:
        assert httpx.get(e.url_for("health")).status_code == 200
        assert e.info()["startup_seconds"] is not None
        pid = int(pidfile.read_text())
        assert _alive(pid)
    time.sleep(0.2)
    assert not _alive(pid)


def test_timeout_cleans_up(tmp_path):
    pidfile = tmp_path / "pid"
    e = engine(tmp_path, "--ready-after", "60", "--pidfile", str(pidfile), timeout=1.5)
    with pytest.raises(EngineStartupError, match="not healthy"):
        with e:
            pass
    time.sleep(0.2)
    assert not _alive(int(pidfile.read_text()))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_pytest_leaves_no_engine(tmp_path, sig):
    pidfile = tmp_path / "pid"
    test_file = tmp_path / "test_hold.py"
    test_file.write_text(textwrap.dedent(f"""
        import sys, time
        from glmverify.engines import ProcessEngine, HttpReadiness
        from glmverify.util import free_port
        def test_hold():
            port = free_port()
            e = ProcessEngine("held", [sys.executable, {str(HELPER)!r}, str(port), "--pidfile", {str(pidfile)!r}],
                              port=port, readiness=HttpReadiness(timeout=30, interval=0.2))
            e.start()
            open({str(tmp_path / 'ready')!r}, "w").close()
            time.sleep(120)
    """))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider",
                             "--rootdir", str(REPO), "-c", str(REPO / "pyproject.toml")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=default_sigint)
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "child engine never became ready"
        time.sleep(0.2)
    pid = int(pidfile.read_text())
    assert _alive(pid)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    time.sleep(0.5)
    assert not _alive(pid), f"engine process {pid} survived {sig.name} to pytest"
