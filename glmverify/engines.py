"""Engine servers: one object owns one engine's life and hands out clients.

Design (after vLLM's ``RemoteOpenAIServer``, made stricter):

* Constructing an engine launches nothing; ``start()`` launches and waits, ``stop()`` always
  cleans up, and ``with engine:`` stops it again when ``start()`` fails half-way.
* Readiness is a value (``HttpReadiness``; for containers its subclass applying a testcontainers
  wait strategy) that serves processes and containers alike: it probes the health endpoint and
  asks the engine whether it is still alive on every turn, so an engine that dies during a
  20-minute weight load fails the wait within one turn, with the tail of its log in the error.
* Engines: ``ProcessEngine`` (the reference engine), ``glmverify.containers.EngineContainer``
  (GPU images and the reference image), ``AttachedEngine`` (an endpoint someone else deployed);
  which one a row gets is ``glmverify.launchers``.
* Every live engine is registered in ``LIVE``; ``stop_all()`` runs on SIGTERM/SIGINT and at exit
  so no process or container of a run outlives it.
* Secrets: the environment is never printed; values listed as secret are redacted from any log
  text that leaves this module.
"""
from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Callable

import httpx

from .redact import REDACT
from .util import free_port, utcnow

ProgressFn = Callable[[str], None]


class EngineStartupError(RuntimeError):
    """The engine exited or never became healthy; the message carries its log tail."""


# Loading milestones worth showing while a large model loads (vLLM, SGLang, vllm-ascend).
PROGRESS_PATTERNS = re.compile(
    r"(Loading (safetensors|weights|model)|Loading checkpoint|Model loading took|weights? load|"
    r"[Cc]apturing (CUDA|cuda|graph)|graph capture|KV cache|GPU blocks|Memory profiling|"
    r"Starting vLLM API server|Application startup complete|Uvicorn running|compil|"
    r"The server is fired up|Init torch distributed|Load weight)"
)


class HttpReadiness:
    """Wait strategy: poll ``path`` until 200, failing fast when the engine stops being alive.

    Each turn asks ``engine.alive()``, then probes once (``ready``; a subclass may probe another
    way: ``containers.ContainerReadiness`` applies a testcontainers wait strategy)."""

    def __init__(self, path: str = "/health", timeout: float = 600.0, interval: float = 1.0,
                 progress_every: float = 15.0):
        self.path = path
        self.timeout = timeout
        self.interval = interval
        self.progress_every = progress_every

    def with_timeout(self, timeout: float) -> "HttpReadiness":
        return HttpReadiness(self.path, timeout, self.interval, self.progress_every)

    def wait(self, engine: "EngineServer", progress: ProgressFn | None = None) -> float:
        start = time.monotonic()
        last_report = start
        url = engine.url_for(self.path)
        with httpx.Client(timeout=5.0) as http:
            while True:
                alive, why = engine.alive()
                if not alive:
                    raise EngineStartupError(
                        f"{engine.name}: engine exited during startup ({why}) after "
                        f"{time.monotonic() - start:.1f}s\n--- last log lines ---\n{engine.log_tail()}"
                    )
                if self.ready(engine, http, url):
                    return time.monotonic() - start
                now = time.monotonic()
                if now - start > self.timeout:
                    raise EngineStartupError(
                        f"{engine.name}: not healthy at {url} after {self.timeout:.0f}s\n"
                        f"--- last log lines ---\n{engine.log_tail()}"
                    )
                if progress and now - last_report >= self.progress_every:
                    last_report = now
                    progress(f"{engine.name}: loading for {now - start:.0f}s; {engine.last_progress_line() or 'waiting for the engine log'}")
                self.pause()

    def ready(self, engine: "EngineServer", http: httpx.Client, url: str) -> bool:
        """One turn's probe: ``GET url`` answers 200."""
        try:
            return http.get(url).status_code == 200
        except httpx.HTTPError:
            return False

    def pause(self) -> None:
        """Between turns (a probe that waits by itself makes this a no-op)."""
        time.sleep(self.interval)


class EngineServer:
    """Base class: a started engine reachable at ``base_url``."""

    launcher = "abstract"

    def __init__(self, name: str, readiness: HttpReadiness | None = None,
                 progress: ProgressFn | None = None):
        self.name = name
        self.readiness = readiness or HttpReadiness()
        self.progress = progress
        self.base_url: str | None = None
        self.started_at: str | None = None
        self.ready_at: str | None = None
        self.startup_seconds: float | None = None
        self._log: deque[str] = deque(maxlen=400)
        self._progress_line: str | None = None
        self._log_lock = threading.Lock()

    # ---- life -------------------------------------------------------------------------------
    def start(self) -> "EngineServer":
        self.started_at = utcnow()
        _register(self)
        self._launch()
        self.startup_seconds = self.readiness.wait(self, self.progress)
        self.ready_at = utcnow()
        return self

    def stop(self) -> None:
        try:
            self._terminate()
        finally:
            _unregister(self)

    def __enter__(self) -> "EngineServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- for subclasses -----------------------------------------------------------------------
    def _launch(self) -> None:
        raise NotImplementedError

    def _terminate(self) -> None:
        raise NotImplementedError

    def alive(self) -> tuple[bool, str | None]:
        return True, None

    def _feed_log(self, line: str) -> None:
        line = REDACT(line.rstrip("\n"))
        with self._log_lock:
            self._log.append(line)
            if PROGRESS_PATTERNS.search(line):
                self._progress_line = line[-200:]

    def log_tail(self, n: int = 40) -> str:
        with self._log_lock:
            return "\n".join(list(self._log)[-n:])

    def last_progress_line(self) -> str | None:
        return self._progress_line

    # ---- clients --------------------------------------------------------------------------------
    def url_for(self, *parts: str) -> str:
        assert self.base_url, "engine not started"
        return self.base_url.rstrip("/") + "/" + "/".join(p.strip("/") for p in parts)

    def info(self) -> dict:
        return {
            "launcher": self.launcher,
            "base_url": self.base_url,
            "started_at": self.started_at,
            "ready_at": self.ready_at,
            "startup_seconds": round(self.startup_seconds, 1) if self.startup_seconds else None,
        }


class ProcessEngine(EngineServer):
    """An engine run as a local process (the reference engine), in its own process group."""

    launcher = "process"

    def __init__(self, name: str, command: list[str], *, env: dict[str, str] | None = None,
                 port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None,
                 cwd: Path | None = None, **kw):
        super().__init__(name, **kw)
        self.command = list(command)
        self.env = dict(env or {})
        self.port = port or free_port(host)
        self.host = host
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def _launch(self) -> None:
        env = {**os.environ, **self.env}
        # plain replacement, not str.format: JSON arguments (--speculative-config) contain braces
        cmd = [c.replace("{port}", str(self.port)).replace("{host}", self.host) for c in self.command]
        self.base_url = f"http://{self.host}:{self.port}"
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, text=True, errors="replace",
        )
        self._reader = threading.Thread(target=self._pump, name=f"log-{self.name}", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc and self.proc.stdout
        sink = open(self.log_path, "a", encoding="utf-8") if self.log_path else None
        try:
            for line in self.proc.stdout:
                self._feed_log(line)
                if sink:
                    sink.write(REDACT(line))
                    sink.flush()
        finally:
            if sink:
                sink.close()

    def alive(self) -> tuple[bool, str | None]:
        if self.proc is None:
            return False, "not launched"
        rc = self.proc.poll()
        if rc is None:
            return True, None
        if self._reader:
            self._reader.join(timeout=2)  # let the last log lines arrive before reporting
        return False, f"exit code {rc}"

    def _terminate(self) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def info(self) -> dict:
        return {**super().info(), "pid": self.proc.pid if self.proc else None}


class AttachedEngine(EngineServer):
    """An endpoint deployed by someone else: never started or stopped by us."""

    launcher = "attach"

    def __init__(self, name: str, base_url: str, **kw):
        kw.setdefault("readiness", HttpReadiness(timeout=30))
        super().__init__(name, **kw)
        self.base_url = base_url.rstrip("/").removesuffix("/v1")

    def _launch(self) -> None:
        pass

    def _terminate(self) -> None:
        pass

    def log_tail(self, n: int = 40) -> str:
        return "(attached endpoint: its log is not visible to the harness)"


# ---- registry of live engines, for signal/exit cleanup -------------------------------------------
LIVE: "weakref.WeakSet[EngineServer]" = weakref.WeakSet()
_STRONG: list[EngineServer] = []


def _register(e: EngineServer) -> None:
    install_signal_cleanup()  # whoever starts an engine gets the cleanup, plugin or not
    LIVE.add(e)
    _STRONG.append(e)


def _unregister(e: EngineServer) -> None:
    LIVE.discard(e)
    if e in _STRONG:
        _STRONG.remove(e)


def stop_all() -> None:
    for e in list(_STRONG):
        try:
            e.stop()
        except Exception:  # noqa: BLE001 - cleanup must reach every engine
            pass


_handlers_installed = False


def install_signal_cleanup() -> None:
    """On SIGTERM, stop every engine and exit as if interrupted (pytest then writes results)."""
    global _handlers_installed
    if _handlers_installed or threading.current_thread() is not threading.main_thread():
        return
    _handlers_installed = True
    atexit.register(stop_all)

    def _on_term(signum, frame):
        stop_all()
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_term)
