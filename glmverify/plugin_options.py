"""The suites' command-line options: declared for pytest (``add_options``) and read back into one
``options.Options`` (``options_from``), validated by ``options.validate`` as the CLI's are.

Kept apart from ``plugin`` (which only wires hooks) so the option table reads as one list: what a
release engineer can set, its default and why.
"""
from __future__ import annotations

from pathlib import Path

from .adapters import api_choices
from .options import Options, validate
from .paths import DEFAULT_MATRIX
from .session import default_results_dir


def add_options(parser) -> None:
    g = parser.getgroup("glmverify", "GLM-5.2 verification matrix")
    g.addoption("--matrix", default=str(DEFAULT_MATRIX), help="matrix.yaml to verify (validated before anything starts)")
    g.addoption("--endpoint", default=None, metavar="URL",
                help="attach to a running OpenAI-compatible server instead of launching engines")
    g.addoption("--served-model", default=None, help="model name at --endpoint (default: the row's served model; every request names it)")
    g.addoption("--metrics-url", default=None, metavar="URL",
                help="the engine's Prometheus /metrics when --endpoint (a gateway) does not route it: speculative "
                     "decoding and the KV-cache configuration are otherwise unobserved, and the checks needing them "
                     "end undecided")
    g.addoption("--engine", default="auto", choices=api_choices(),
                help="engine kind at --endpoint (auto: probe)")
    g.addoption("--row", default=None, metavar="ID",
                help="the matrix row an --endpoint stands for (default: the row serving its model)")
    g.addoption("--results", default=None, metavar="DIR",
                help="results directory (default results/<UTC timestamp>/, results/latest points at it)")
    g.addoption("--concurrency", type=int, default=64,
                help="requests in flight per suite (default 64: a whole first round of a sequential decision at once)")
    g.addoption("--request-timeout", type=float, default=None,
                help="seconds before one request fails (default: the row's max_tokens at its decode-speed floor, "
                     "plus a margin; glmverify.policy.request_timeout)")
    g.addoption("--startup-timeout", type=float, default=None,
                help="seconds an engine may take to become healthy (default: the row's, else 3600)")
    g.addoption("--accuracy-samples", type=int, default=64,
                help="GSM8K questions in the first round of the sequential accuracy decision (default 64; 0 = all)")
    g.addoption("--accuracy-max", type=int, default=0,
                help="most GSM8K questions the decision may draw before it ends inconclusive (default 0 = all 1,319)")
    g.addoption("--accuracy-seed", type=int, default=1234, help="seed of the GSM8K sample (same for every row)")
    g.addoption("--accuracy-baseline", default=None, metavar="PATH",
                help="per-question GSM8K outcomes each row is held to: a baseline file, a results directory or a "
                     "signed one (glmverify.accuracy_baseline; make verify records results/accuracy-baseline.json)")
    g.addoption("--accuracy-effect", type=float, default=None,
                help="accuracy loss against the baseline the paired decision must rule out (default 0.03)")
    g.addoption("--accuracy-record", type=int, default=0,
                help="GSM8K questions a row without a baseline answers with seeds to record one for the next run "
                     "(default 0: none; make verify records 512, what the paired decision needs at 3 points on the "
                     "reference rows, whose seeded answers are reproducible; a GPU row's are not: record 1319, the "
                     "whole test set, there)")
    g.addoption("--gsm8k", default=None, metavar="PATH_OR_URL",
                help="GSM8K test.jsonl (default: ../shared/data/gsm8k/test.jsonl beside the repo)")
    g.addoption("--gsm8k-sha256", default=None, help="expected sha256 of --gsm8k")
    g.addoption("--plan", action="store_true",
                help="print the docker run command of every selected row and exit; launches nothing")


def options_from(config, run_id: str) -> Options:
    """The run's options from pytest's ``config`` (on an xdist worker, the controller's results
    directory); ``options.OptionError`` for a value the harness cannot run with."""
    results = config.getoption("results")
    if "workerinput" in config.__dict__:
        results = config.workerinput["glmverify_results"]
    results_dir = Path(results) if results else default_results_dir(Path(config.rootpath), run_id)
    opts = Options(
        matrix_path=Path(config.getoption("matrix")),
        results_dir=results_dir.resolve(),
        endpoint=config.getoption("endpoint"),
        served_model=config.getoption("served_model"),
        metrics_url=config.getoption("metrics_url"),
        engine=config.getoption("engine"),
        row=config.getoption("row"),
        concurrency=config.getoption("concurrency"),
        request_timeout=config.getoption("request_timeout"),
        startup_timeout=config.getoption("startup_timeout"),
        accuracy_samples=config.getoption("accuracy_samples"),
        accuracy_max=config.getoption("accuracy_max"),
        accuracy_seed=config.getoption("accuracy_seed"),
        accuracy_baseline=config.getoption("accuracy_baseline"),
        accuracy_effect=config.getoption("accuracy_effect"),
        accuracy_record=config.getoption("accuracy_record"),
        gsm8k=config.getoption("gsm8k"),
        gsm8k_sha256=config.getoption("gsm8k_sha256"),
        plan=config.getoption("plan"),
        explicit_results=bool(config.getoption("results")),
        run_id=run_id,
    )
    return validate(opts)
