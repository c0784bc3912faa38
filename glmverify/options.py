"""The run's options: one ``Options`` value, validated once, shared by the pytest plugin and the CLI.

``problems`` holds every rule an option value must satisfy; the plugin turns the first problem
into a pytest usage error before anything starts, and ``glmverify run`` checks the options it
parses itself (``--endpoint``) with the same functions, so both refuse a value in the same words.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# The default request timeout follows the answer's length: max_tokens at a decode-speed floor per
# request (the row's, else this conservative one) plus a margin for queueing behind a full batch
# and prefill. A fixed 120 s cut healthy long reasoning (8192 tokens at concurrency 64).
DEFAULT_DECODE_TOKENS_PER_S = 10.0
REQUEST_TIMEOUT_MARGIN_S = 60.0
DEFAULT_MAX_TOKENS = 8192


def derived_request_timeout(max_tokens: int, decode_tokens_per_s: float | None = None) -> float:
    """Seconds a request generating up to ``max_tokens`` may take at the decode floor, plus the margin."""
    return REQUEST_TIMEOUT_MARGIN_S + max_tokens / (decode_tokens_per_s or DEFAULT_DECODE_TOKENS_PER_S)


@dataclass
class Options:
    matrix_path: Path
    results_dir: Path
    endpoint: str | None = None
    served_model: str | None = None
    metrics_url: str | None = None
    engine: str = "auto"
    row: str | None = None
    concurrency: int = 64
    # None: derived per row (``timeout_for``); the field then holds the derivation for the default
    # max_tokens, so code reading it directly gets a float
    request_timeout: float | None = None
    startup_timeout: float | None = None
    accuracy_samples: int = 64
    accuracy_max: int = 0  # 0: the whole test set
    accuracy_seed: int = 1234
    accuracy_baseline: str | None = None  # a baseline file or (signed) results dir: glmverify.accuracy_baseline
    accuracy_effect: float | None = None  # the paired decision's effect (None: policy.paired_effect)
    accuracy_record: int = 0  # questions a row without a baseline answers (seeded) to record one
    gsm8k: str | None = None
    gsm8k_sha256: str | None = None
    plan: bool = False
    explicit_results: bool = False
    run_id: str | None = None
    collect_only: bool = False
    request_timeout_given: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.request_timeout_given = self.request_timeout is not None
        if self.request_timeout is None:
            self.request_timeout = derived_request_timeout(DEFAULT_MAX_TOKENS)

    def timeout_for(self, max_tokens: int, decode_tokens_per_s: float | None = None) -> float:
        """``--request-timeout`` when given, else derived from ``max_tokens`` and the decode floor."""
        if self.request_timeout_given:
            return float(self.request_timeout)
        return derived_request_timeout(max_tokens, decode_tokens_per_s)


class OptionError(ValueError):
    """An option value the harness cannot run with (the message names the option)."""


def endpoint_problem(endpoint: str | None, option: str = "--endpoint") -> str | None:
    if endpoint and not endpoint.startswith(("http://", "https://")):
        return f"{option} must be an http(s) URL, got {endpoint!r}"
    return None


def problems(opts: Options) -> list[str]:
    """What is wrong with ``opts``, in the order the options are listed in ``--help``."""
    out = [p for p in (endpoint_problem(opts.endpoint), endpoint_problem(opts.metrics_url, "--metrics-url")) if p]
    if opts.metrics_url and not opts.endpoint:
        out.append("--metrics-url needs --endpoint (a launched engine's /metrics is read directly)")
    if opts.concurrency < 1:
        out.append("--concurrency must be at least 1")
    if opts.request_timeout is not None and opts.request_timeout <= 0:
        out.append("--request-timeout must be positive")
    if opts.accuracy_samples < 0:
        out.append("--accuracy-samples must be >= 0")
    if opts.accuracy_max < 0:
        out.append("--accuracy-max must be >= 0")
    if opts.accuracy_record < 0:
        out.append("--accuracy-record must be >= 0")
    if opts.accuracy_effect is not None and not 0 < opts.accuracy_effect < 1:
        out.append("--accuracy-effect must be between 0 and 1 (a share of accuracy, e.g. 0.03)")
    return out


def validate(opts: Options) -> Options:
    """``opts`` itself, or OptionError with the first problem."""
    found = problems(opts)
    if found:
        raise OptionError(found[0])
    return opts
