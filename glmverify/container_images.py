"""The images of engine containers: present, built from an ``images/`` recipe, or pulled.

Through the docker SDK: testcontainers pulls a missing image silently, and a GPU engine image is
tens of GB, so the pull here reports progress; a reference image is built by its
``images/<recipe>/build.sh`` (no registry on the CPU machines). ``image_facts`` is what the
evidence records of the image a container ran (id, digests, creation, daemon version).
"""
from __future__ import annotations

import subprocess
import time
from typing import Any

from .engines import EngineStartupError, ProgressFn
from .paths import REPO_ROOT

try:
    import docker
except ImportError:  # containers.docker_unavailable() reports it
    docker = None


def image_present(image: str, client=None) -> bool:
    own = client is None
    client = client or docker.from_env(timeout=60)
    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False
    finally:
        if own:
            client.close()


def build_image(recipe: str, progress: ProgressFn | None = None, log: ProgressFn | None = None) -> None:
    """Run ``<recipe>/build.sh`` (idempotent: it skips when the image exists)."""
    script = REPO_ROOT / recipe / "build.sh"
    if not script.is_file():
        raise EngineStartupError(f"image recipe {recipe}: {script.relative_to(REPO_ROOT)} does not exist")
    if progress:
        progress(f"building the image with {script.relative_to(REPO_ROOT)} (minutes, once)")
    proc = subprocess.Popen(["bash", str(script)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    tail: list[str] = []
    assert proc.stdout
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-30:]
        if log:
            log(line)
        if progress and line.startswith("[images/"):
            progress(line.strip())
    if proc.wait() != 0:
        raise EngineStartupError(f"{script.relative_to(REPO_ROOT)} failed (exit {proc.returncode}):\n" + "\n".join(tail))

def pull_image(client, image: str, name: str, progress: ProgressFn | None = None) -> None:
    """Pull ``image``, a progress line every 15 s (``name`` is the engine's)."""
    repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
    if progress:
        progress(f"{name}: pulling {image}")
    last = 0.0
    try:
        for ev in client.api.pull(repo, tag=tag, stream=True, decode=True):
            if ev.get("error"):
                raise RuntimeError(ev["error"])
            if progress and time.monotonic() - last > 15 and ev.get("status"):
                last = time.monotonic()
                progress(f"{name}: pull: {ev.get('status')} {ev.get('progress', '')}".rstrip())
    except Exception as exc:  # noqa: BLE001
        raise EngineStartupError(f"{name}: cannot pull {image}: {exc}") from None

def image_facts(client, image: str) -> dict[str, Any]:
    try:
        img = client.images.get(image)
        return {"image_id": img.id, "image_digests": list(img.attrs.get("RepoDigests") or []),
                "image_created": img.attrs.get("Created"),
                "docker_server": client.version().get("Version")}
    except Exception:  # noqa: BLE001
        return {"image_id": None, "image_digests": []}
