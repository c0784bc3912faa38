"""Who owns an engine container, and removing the containers of runs that died.

A run stops its containers itself (``engines.stop_all`` on SIGTERM/SIGINT and at exit), but a run
killed with SIGKILL (an OOM kill, a CI job cancelled hard, a lost runner) runs no code: its
engine containers keep running, on a GPU runner holding all eight GPUs, until someone removes
them. Two things remove them:

* **Ryuk** (testcontainers' reaper container) where the runner can pull ``testcontainers/ryuk``:
  it removes the containers of a session as soon as the session's process is gone.
  ``configure_ryuk`` decides once per process: left on when the image is present or pullable,
  otherwise turned off (``TESTCONTAINERS_RYUK_DISABLED=true``, inherited by xdist workers) with
  the reason recorded. These CPU machines reach no registry, so Ryuk is off here.
* **The sweep** (``sweep``), at the start of every run that launches a container: every
  container labelled by a glmverify process of *this host* whose process is dead is removed.
  Each container carries its owner (``owner_labels``): host name, boot id, pid and the pid's start
  time, so a reused pid or a reboot is not mistaken for the owner still running. Containers of
  other hosts (a shared daemon) and of live runs are never touched.

``reap(run_id)`` (in ``glmverify.containers``) stays for removing one run's containers by hand.
"""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

OWNER_HOST = "glmverify.owner.host"
OWNER_BOOT = "glmverify.owner.boot"
OWNER_PID = "glmverify.owner.pid"
OWNER_STARTED = "glmverify.owner.started"  # the pid's start time (clock ticks after boot)
RYUK_DISABLED_ENV = "TESTCONTAINERS_RYUK_DISABLED"
RYUK_PULL_TIMEOUT = 60.0


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_started(pid: int) -> str | None:
    """The start time of ``pid`` (``/proc/PID/stat`` field 22), None when no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: count fields after the last ')'
    return stat.rpartition(")")[2].split()[19]


def owner_labels(pid: int | None = None) -> dict[str, str]:
    """The labels that make a container this process's (or ``pid``'s)."""
    pid = pid or os.getpid()
    return {OWNER_HOST: socket.gethostname(), OWNER_BOOT: boot_id(), OWNER_PID: str(pid),
            OWNER_STARTED: process_started(pid) or ""}


def owner_state(labels: dict[str, str]) -> str:
    """``alive``, ``dead`` or ``unknown`` (another host, or no owner labels) for a container's labels."""
    if labels.get(OWNER_HOST) != socket.gethostname() or not labels.get(OWNER_PID, "").isdigit():
        return "unknown"
    if labels.get(OWNER_BOOT) and boot_id() and labels[OWNER_BOOT] != boot_id():
        return "dead"  # the host rebooted since: no process of that boot is alive
    pid = int(labels[OWNER_PID])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        pass  # exists, owned by another user
    started = process_started(pid)
    if started is None:
        return "dead"
    if labels.get(OWNER_STARTED) and started and started != labels[OWNER_STARTED]:
        return "dead"  # the pid was reused by a later process
    return "alive"


def sweep(client: Any) -> list[str]:
    """Remove every container of this host whose owning process is dead; returns their names."""
    removed = []
    for c in client.containers.list(all=True, filters={"label": f"{OWNER_HOST}={socket.gethostname()}"}):
        if owner_state(c.labels or {}) != "dead":
            continue
        try:
            c.remove(force=True, v=True)
            removed.append(c.name)
        except Exception:  # noqa: BLE001 - removed meanwhile (by another run's sweep)
            pass
    return removed


_swept = False
_sweep_lock = threading.Lock()


def sweep_once(client: Any) -> list[str] | None:
    """``sweep`` on this process's first container launch (the start of its run); None after."""
    global _swept
    with _sweep_lock:
        if _swept:
            return None
        _swept = True
        return sweep(client)


_ryuk: str | None = None


def configure_ryuk(client: Any, config: Any) -> str:
    """``ryuk`` when testcontainers' reaper can run here, else ``sweep: <why not>`` (Ryuk turned
    off in ``config``, testcontainers' configuration, and in the environment). Decided once per
    process; ``TESTCONTAINERS_RYUK_DISABLED`` set by the user is obeyed as is."""
    global _ryuk
    if _ryuk is not None:
        return _ryuk
    if os.environ.get(RYUK_DISABLED_ENV) is not None:  # the user's (or a parent run's) decision
        _ryuk = f"sweep: Ryuk disabled by {RYUK_DISABLED_ENV}" if config.ryuk_disabled else "ryuk"
        return _ryuk
    why = _ryuk_unavailable(client, config.ryuk_image)
    if why:
        config.ryuk_disabled = True
        os.environ[RYUK_DISABLED_ENV] = "true"
        _ryuk = f"sweep: {why}"
    else:
        _ryuk = "ryuk"
    return _ryuk


def _ryuk_unavailable(client: Any, image: str) -> str | None:
    """None when the Ryuk image is present or could be pulled (within a minute), else why not."""
    try:
        client.images.get(image)
        return None
    except Exception:  # noqa: BLE001 - not present: try to pull it
        pass
    outcome: list[str | None] = []

    def pull() -> None:
        try:
            client.images.pull(image)
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - no registry, no network, no such image
            outcome.append(str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)

    t = threading.Thread(target=pull, daemon=True)
    t.start()
    t.join(RYUK_PULL_TIMEOUT)
    if not outcome:
        return f"Ryuk unavailable: pulling {image} took over {RYUK_PULL_TIMEOUT:.0f}s"
    return f"Ryuk unavailable: cannot pull {image} ({outcome[0]})" if outcome[0] else None
