"""Process helpers for the project's own tests: what a run left alive, read from /proc."""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

try:
    import vllm  # noqa: F401
    HAVE_VLLM = True
except Exception:  # noqa: BLE001 - any import failure means the reference engine cannot run here
    HAVE_VLLM = False


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc's PPid links)."""
    children: dict[int, list[int]] = {}
    for st in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(st.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(st.parent.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: a background job (``cmd &``,
    nohup) starts with SIGINT ignored and its children inherit that, so Python would never raise
    KeyboardInterrupt; restore the default, as at a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def read_until(proc: subprocess.Popen, marker: str, keep: int = 50) -> list[str]:
    """The child's output lines up to and including the first one that starts with ``marker``;
    fails with the output's tail when the child ends before printing it."""
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(marker):
            return lines
    raise AssertionError(f"the child ended without {marker!r}:\n" + "".join(lines[-keep:]))
