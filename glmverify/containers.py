"""Engines in containers: the Docker life of a ``ContainerSpec`` (``glmverify.container_spec``).

``EngineContainer`` (an ``EngineServer``) owns one container, a testcontainers ``DockerContainer``
made from ``sdk_kwargs(spec)`` (the same fields the spec's ``docker run`` plan renders). The
container

* is created from the row's image: built with ``<recipe>/build.sh`` where the row names a build,
  pulled when missing (with progress lines), refused when the seed leaves its tag unknown and it
  is not present;
* is ready when its readiness value says so: ``ContainerReadiness`` applies a testcontainers wait
  strategy (``PatientHttpWait``: ``HttpWaitStrategy`` with a 10-s probe, on the engine's health
  path) turn by turn and asks the container whether it is still running between turns, so an
  engine that dies while loading fails the wait at once, with the last lines of its log;
* streams its log into the engine log (progress lines while the weights load) and into
  ``<log_dir>/<row>.log``;
* is labelled with its run, row and launch (``glmverify.run``, ...) and its owner
  (``glmverify.container_owner``: host, boot id, pid) and removed on stop, on a failed start, on
  SIGINT/SIGTERM (``engines.stop_all``) and at exit. After a SIGKILL, testcontainers' Ryuk removes
  it where it can run, and the next run's start removes it anyway (``container_owner.sweep``:
  the containers of this host whose owning process is dead); ``reap(run_id)`` by hand;
* receives the row's ``secret_env`` values from the host environment: they are registered with
  ``REDACT`` here and never appear in the plan, the evidence or a log.

The docker SDK (testcontainers' client underneath) is used directly only where testcontainers
has nothing: pulling with progress, the log stream, the container's exit state, image facts,
the daemon check, and listing and removing containers by label (sweep, reap).

What differs per engine (kind, port, health path, mounts) is the engine's adapter
(``adapters.*.container``), applied by ``ContainerSpec.from_row``: there is one container class;
``ContainerLauncher`` is the ``container`` entry of ``glmverify.launchers``.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable
from urllib.error import URLError
from urllib.request import Request, urlopen

import httpx

from . import hardware
from .container_owner import configure_ryuk, owner_labels, sweep, sweep_once
from .container_images import build_image, image_facts, image_present, pull_image  # noqa: F401 - image_present re-exported
from .container_spec import LAUNCH_LABEL, RUN_LABEL, ContainerSpec, current_run_id, image_override_var
from .engines import EngineServer, EngineStartupError, HttpReadiness, ProgressFn
from .launchers import register, standin_for
from .matrix import Row
from .redact import REDACT

try:
    import docker
    from docker.types import DeviceRequest
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy
except ImportError:  # reported by docker_unavailable(); nothing here runs without them
    docker = None
    HttpWaitStrategy = object


class PatientHttpWait(HttpWaitStrategy):
    """testcontainers' HTTP wait whose every probe waits ``probe_timeout`` for the answer, not the
    library's fixed second: SGLang's /health runs a one-token generation, which on a loaded two-core
    host took over a second (measured), so each 1-s probe gave up before its answer and a healthy
    container never came ready. The probe's request and its verdict stay the library's."""

    probe_timeout = 10.0

    def _try_http_request(self, url: str, headers: dict[str, str], ssl_context: Any) -> bool:
        body = self._body.encode() if self._body else None
        try:
            with urlopen(Request(url, headers=headers, method=self._method, data=body),
                         timeout=self.probe_timeout, context=ssl_context) as response:
                return self._check_response(response, url)
        except URLError as e:  # HTTPError included: an accepted status code still counts
            return self._handle_http_error(e)
        except OSError:  # refused, reset, timed out: not ready yet
            return False


# ---- the SDK arguments of a spec ------------------------------------------------------------------
def sdk_kwargs(spec: ContainerSpec) -> dict[str, Any]:
    """docker SDK ``containers.create`` arguments; secret values are read from the host here."""
    env = dict(spec.env)
    for name, value in spec.secret_values().items():
        REDACT.add(value)
        env[name] = value
    kw: dict[str, Any] = {
        "image": spec.image,
        "command": spec.docker_command() or None,
        "name": spec.name,
        "labels": dict(spec.labels),
        "environment": env,
        "ports": {spec.port_key: (spec.publish_host, spec.host_port) if spec.host_port else (spec.publish_host,)},
        "volumes": {v.host_path(): {"bind": v.container, "mode": v.mode} for v in spec.volumes},
        "network": spec.network,
    }
    if spec.entrypoint:
        kw["entrypoint"] = [spec.entrypoint[0]]
    if spec.gpus is not None:
        kw["device_requests"] = [device_request(spec.gpus)]
    if spec.devices:
        kw["devices"] = [f"{d}:{d}:rwm" if ":" not in d else d for d in spec.devices]
    if spec.group_add:
        kw["group_add"] = list(spec.group_add)
    if spec.cap_add:
        kw["cap_add"] = list(spec.cap_add)
    if spec.security_opt:
        kw["security_opt"] = list(spec.security_opt)
    if spec.ipc:
        kw["ipc_mode"] = spec.ipc
    if spec.shm_size:
        kw["shm_size"] = spec.shm_size
    return kw


def device_request(gpus: str | int) -> "DeviceRequest":
    """``--gpus`` as an SDK device request: all, a count, or device ids."""
    if gpus == "all":
        return DeviceRequest(count=-1, capabilities=[["gpu"]])
    if isinstance(gpus, int) or str(gpus).isdigit():
        return DeviceRequest(count=int(gpus), capabilities=[["gpu"]])
    ids = str(gpus).removeprefix("device=").strip('"').split(",")
    return DeviceRequest(device_ids=ids, capabilities=[["gpu"]])


def testcontainer(spec: ContainerSpec, *, labels: dict[str, str] | None = None,
                  docker_timeout: int = 120) -> "DockerContainer":
    """The spec as a testcontainers ``DockerContainer`` (not started): ``sdk_kwargs(spec)``, the
    fields the plan renders, plus ``labels`` (the owner's)."""
    kw = sdk_kwargs(spec)
    tc = DockerContainer(kw.pop("image"), docker_client_kw={"timeout": docker_timeout})
    tc.with_name(kw.pop("name")).with_envs(**kw.pop("environment"))
    if kw.get("command"):
        tc.with_command(kw["command"])
    kw.pop("command")
    for host, mount in kw.pop("volumes").items():
        tc.with_volume_mapping(host, mount["bind"], mount["mode"])
    # (host ip, port) pairs: published on the spec's address only, which with_bind_ports cannot say
    tc.ports.update(kw.pop("ports"))
    return tc.with_kwargs(labels={**kw.pop("labels"), **(labels or {})}, **kw)


class ContainerReadiness(HttpReadiness):
    """``HttpReadiness`` whose probe is a testcontainers wait strategy (default: an HTTP wait for
    200 on ``path`` of the engine's port), applied for one short turn at a time so the container's
    state is checked between turns."""

    def __init__(self, strategy: "Any", path: str, timeout: float = 600.0, interval: float = 1.0,
                 progress_every: float = 15.0):
        super().__init__(path, timeout, interval, progress_every)
        # a turn: probes every interval for at most max(interval, 2 s) (the port lookup is an API call);
        # one probe in flight may outlast it by up to PatientHttpWait.probe_timeout
        self.strategy = strategy.with_startup_timeout(max(interval, 2.0)).with_poll_interval(interval)

    @classmethod
    def http(cls, spec: ContainerSpec, base: HttpReadiness) -> "ContainerReadiness":
        strategy = PatientHttpWait(spec.port, spec.health_path).for_status_code(200)
        return cls(strategy, spec.health_path, base.timeout, base.interval, base.progress_every)

    def with_timeout(self, timeout: float) -> "ContainerReadiness":
        return ContainerReadiness(self.strategy, self.path, timeout, self.interval, self.progress_every)

    def ready(self, engine: "EngineServer", http: Any, url: str) -> bool:
        try:
            self.strategy.wait_until_ready(_Published(engine))
            return True
        except (TimeoutError, ConnectionError):
            return False
        except docker.errors.NotFound:
            return False  # removed under us: the next turn's alive() says so

    def pause(self) -> None:
        pass  # the strategy's turn waited already


class _Published:
    """The engine's container as a wait strategy sees it, reached where ``base_url`` says: the
    port is published on one address only (127.0.0.1 by default), which testcontainers' own guess
    (the bridge gateway when the harness itself runs in a container) may not reach."""

    def __init__(self, engine: "EngineContainer"):
        self._tc = engine.testcontainer
        self._url = httpx.URL(engine.base_url)

    def get_container_host_ip(self) -> str:
        return self._url.host

    def get_exposed_port(self, port: int) -> int:
        return self._url.port

    def __getattr__(self, name: str) -> Any:  # logs, status, reload: the container's own
        return getattr(self._tc, name)


# ---- docker helpers ---------------------------------------------------------------------------------
def _client(timeout: int = 60):
    return docker.from_env(timeout=timeout)


def docker_unavailable() -> str | None:
    """None when a Docker daemon answers, else why not (the engine fixture skips with it)."""
    if docker is None:
        return "the docker SDK or testcontainers is not installed (pip install testcontainers)"
    try:
        client = _client(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable daemon"
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return f"Docker is unavailable ({msg}); start the daemon or set DOCKER_HOST"
    return None


def reap(run_id: str, client=None) -> list[str]:
    """Remove every container labelled ``glmverify.run=<run_id>``; returns their names."""
    if not run_id:
        raise ValueError("reap needs a run id")
    own = client is None
    client = client or _client()
    removed = []
    try:
        for c in client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}):
            try:
                c.remove(force=True, v=True)
                removed.append(c.name)
            except Exception:  # noqa: BLE001 - already gone
                pass
    finally:
        if own:
            client.close()
    return removed


# ---- the engine ---------------------------------------------------------------------------------------
class EngineContainer(EngineServer):
    """An engine in a container, configured by a ``ContainerSpec``."""

    launcher = "container"

    def __init__(self, spec: ContainerSpec, *, name: str | None = None, log_path: Path | None = None,
                 readiness: HttpReadiness | None = None, progress: ProgressFn | None = None,
                 docker_timeout: int = 120):
        base = readiness or HttpReadiness()
        if not isinstance(base, ContainerReadiness):
            base = ContainerReadiness.http(spec, base)
        super().__init__(name or spec.row_id, readiness=base, progress=progress)
        self.spec = spec
        self.log_path = log_path
        self.docker_timeout = docker_timeout
        self.testcontainer = None  # testcontainers' DockerContainer: create, start, remove
        self.reaper: str | None = None  # "ryuk", or "sweep: <why Ryuk cannot run here>"
        self._docker = None      # the SDK client underneath (pull, logs, state, image facts)
        self._container = None   # docker.models.containers.Container
        self._reader: threading.Thread | None = None
        self._image_facts: dict[str, Any] = {}
        self._exit: dict[str, Any] | None = None

    # ---- life ----------------------------------------------------------------------------------------
    def _launch(self) -> None:
        spec = self.spec
        tc = self.testcontainer = testcontainer(spec, labels=owner_labels(), docker_timeout=self.docker_timeout)
        client = self._docker = tc.get_docker_client().client
        self.reaper = configure_ryuk(client, testcontainers_config)
        swept = sweep_once(client)
        if swept and self.progress:
            self.progress(f"removed {len(swept)} container(s) of dead runs: {', '.join(swept)}")
        if not image_present(spec.image, client):
            if spec.build:
                build_image(spec.build, self.progress, self._feed_log)
            elif not spec.image_known:
                raise EngineStartupError(
                    f"{self.name}: the seed leaves the image tag unknown ({spec.image} is a guess) and it is "
                    f"not present locally; pull the image you deploy and set {image_override_var(spec.row_id)}")
            else:
                pull_image(client, spec.image, self.name, self.progress)
        if self.progress:
            self.progress(f"{self.name}: docker run {spec.image} as {spec.name}")
        try:
            tc.start()  # no wait strategy attached: the readiness value waits, checking alive()
            self._container = tc.get_wrapped_container()
        except docker.errors.APIError as exc:
            raise EngineStartupError(f"{self.name}: docker could not start {spec.image}: {exc.explanation or exc}"
                                     + _api_hint(exc)) from None
        container = self._container
        self._image_facts = image_facts(client, spec.image)
        self._reader = threading.Thread(target=self._pump, args=(container,), name=f"log-{self.name}", daemon=True)
        self._reader.start()
        container.reload()
        binding = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(spec.port_key)
        if not binding:
            alive, why = self.alive()
            if not alive:
                raise EngineStartupError(
                    f"{self.name}: engine exited during startup ({why})\n--- last log lines ---\n{self.log_tail()}")
            raise EngineStartupError(f"{self.name}: port {spec.port_key} was not published")
        host_ip = binding[0].get("HostIp") or "127.0.0.1"
        connect = "127.0.0.1" if host_ip in ("0.0.0.0", "::", "") else host_ip
        self.base_url = f"http://{connect}:{binding[0]['HostPort']}"

    def _pump(self, container) -> None:
        sink = open(self.log_path, "a", encoding="utf-8") if self.log_path else None
        buf = b""
        try:
            for chunk in container.logs(stream=True, follow=True):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8", "replace")
                    self._feed_log(line)
                    if sink:
                        sink.write(REDACT(line) + "\n")
                        sink.flush()
            if buf:
                self._feed_log(buf.decode("utf-8", "replace"))
                if sink:
                    sink.write(REDACT(buf.decode("utf-8", "replace")) + "\n")
        except Exception:  # noqa: BLE001 - the container was removed under us
            pass
        finally:
            if sink:
                sink.close()

    def alive(self) -> tuple[bool, str | None]:
        container = self._container
        if container is None:
            return False, "not launched"
        try:
            container.reload()
        except docker.errors.NotFound:
            return False, "container removed"
        except Exception as exc:  # noqa: BLE001 - daemon hiccup: assume alive, the next poll decides
            return True, str(exc)
        state = container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            self._exit = {"exit_code": state.get("ExitCode"), "oom_killed": state.get("OOMKilled"),
                          "finished_at": state.get("FinishedAt"), "error": state.get("Error") or None}
            if self._reader:
                self._reader.join(timeout=3)  # the log stream ends with the container: take the last lines
            why = f"container exited with code {state.get('ExitCode')}"
            if state.get("OOMKilled"):
                why += ", OOM-killed"
            if state.get("Error"):
                why += f", {state.get('Error')}"
            return False, why
        return True, None

    def _terminate(self) -> None:
        """Stop and remove the container (and anything carrying this launch's label)."""
        try:
            client = _client(timeout=30)
        except Exception:  # noqa: BLE001 - no daemon: nothing we can remove
            return
        try:
            if self._container is not None:
                try:
                    self._container.stop(timeout=self.spec.stop_timeout)  # SIGTERM first: engines log why
                except Exception:  # noqa: BLE001 - already stopped or gone
                    pass
            if self.testcontainer is not None:
                try:
                    self.testcontainer.stop()  # remove, with its volumes
                except Exception:  # noqa: BLE001 - already removed
                    pass
            # by label too: a create that failed half-way leaves a container no object refers to
            for c in client.containers.list(all=True, filters={"label": f"{LAUNCH_LABEL}={self.spec.launch_id}"}):
                try:
                    c.remove(force=True, v=True)
                except Exception:  # noqa: BLE001
                    pass
        finally:
            client.close()
        if self._reader:
            self._reader.join(timeout=3)
        self._docker = None  # closed by testcontainer.stop()

    # ---- evidence -------------------------------------------------------------------------------------
    def public_args(self) -> list[str]:
        return [REDACT(a) for a in self.spec.docker_command()]

    def info(self) -> dict:
        container = self._container
        return {
            **super().info(),
            "container": {
                **self.spec.public(),
                "id": container.short_id if container is not None else None,
                **self._image_facts,
                "exit": self._exit,
                "reaper": self.reaper,
            },
            "accelerators": hardware.accelerators(),
            **({"nvidia": hardware.nvidia_details()} if self.spec.vendor == "nvidia" else {}),
        }


def _api_hint(exc) -> str:
    text = str(getattr(exc, "explanation", "") or exc)
    if "could not select device driver" in text or "nvidia" in text.lower():
        return " (is the NVIDIA Container Toolkit installed and the daemon restarted?)"
    if "no such file or directory" in text and "/dev/" in text:
        return " (a device of this row is missing on the host)"
    return ""


def container_for_row(row: Row, opts: Any, *, log_dir: Path, readiness: HttpReadiness | None = None,
                      progress: ProgressFn | None = None) -> EngineContainer:
    """The engine for a ``launcher: container`` row; builds the stand-in model first when the row
    mounts it."""
    spec = ContainerSpec.from_row(row, current_run_id(opts), standin_model=standin_for(row))
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    return EngineContainer(spec, name=row.id, log_path=log_dir / f"{row.id}.log", readiness=readiness, progress=progress)


class ContainerLauncher:
    """The ``container`` entry of ``glmverify.launchers``."""

    kind = "container"

    def server(self, row: Row, opts: Any, *, log_dir: Path, readiness: HttpReadiness,
               progress: ProgressFn | None = None) -> EngineContainer:
        return container_for_row(row, opts, log_dir=log_dir, readiness=readiness, progress=progress)


register(ContainerLauncher())


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m glmverify.containers reap RUN_ID`` (a run's containers) or ``sweep`` (those of dead runs)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m glmverify.containers")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reap", help="remove every container labelled glmverify.run=RUN_ID")
    r.add_argument("run_id")
    sub.add_parser("sweep", help="remove this host's containers whose owning run process is dead")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.cmd == "reap":
        removed = reap(args.run_id)
    else:
        client = _client()
        try:
            removed = sweep(client)
        finally:
            client.close()
    print(f"removed {len(removed)} container(s)" + (": " + ", ".join(removed) if removed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
