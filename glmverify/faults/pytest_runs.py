"""The catalogue's pytest runs as child processes: started in their own session, always stopped.

Each run is ``python -m pytest ARGS --results DIR`` from the repository root, its output in
``DIR/pytest.log``, in a new process group so that SIGTERM reaches pytest and the engine it
launched. A run past its timeout, or one whose caller is interrupted, is terminated (SIGTERM,
then SIGKILL after 60 s); ``stop_children`` stops every run still going (the CLI calls it on
exit, and the pool when a worker's wait is interrupted).
"""
from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..paths import REPO_ROOT
from .model import DEFAULT_TIMEOUT


_CHILDREN: set[subprocess.Popen] = set()
_CHILDREN_LOCK = threading.Lock()


def terminate(proc: subprocess.Popen) -> None:
    """SIGTERM to a pytest run's process group (pytest stops the engine it launched), then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    except ProcessLookupError:
        pass


def stop_children() -> None:
    """Terminate every pytest run still going (in parallel: each may take 60 s to stop)."""
    with _CHILDREN_LOCK:
        procs = list(_CHILDREN)
    with cf.ThreadPoolExecutor(max(1, len(procs))) as pool:
        list(pool.map(terminate, procs))


def run_pytest(args: list[str], out_dir: Path, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, float]:
    """``python -m pytest ARGS --results OUT_DIR`` from the repo root; (exit code, seconds)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", *args, "--results", str(out_dir), "-p", "no:cacheprovider", "-q",
           "-rfE", "--tb=line", "-W", "ignore"]
    t0 = time.monotonic()
    with open(out_dir / "pytest.log", "w") as log:
        log.write(" ".join(cmd) + "\n\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        with _CHILDREN_LOCK:
            _CHILDREN.add(proc)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            terminate(proc)
            rc = proc.returncode
            log.write(f"\nglmverify.faults: killed after {timeout:.0f}s\n")
        except BaseException:  # interrupted: the run (and the engine it launched) goes too
            terminate(proc)
            raise
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(proc)
    return rc, time.monotonic() - t0
