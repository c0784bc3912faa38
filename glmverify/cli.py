"""The ``glmverify`` command line: run and plan the suites, merge, report and sign off results.

``run`` wraps pytest; ``plan`` prints launch plans without it (``plan.select_rows``); merge,
report and sign-off work on matrix.json documents (``document``, ``merge``, ``report``,
``signoff``). Options the plugin also takes are checked with its rules (``options``).

Every command explains itself with ``--help``. Bad input (a missing directory, a corrupt
matrix.json, an invalid matrix.yaml) is reported as ``glmverify: error: ...`` naming the file
and the problem, with exit status 2 and no traceback (``GLMVERIFY_DEBUG=1`` shows one).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from . import __version__
from .cli_help import (DESCRIPTION, MERGE_EPILOG, PLAN_EPILOG, REPORT_EPILOG, RUN_EPILOG,
                       SIGNOFF_EPILOG)
from .adapters import api_choices
from .options import endpoint_problem

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
DEFAULT_DIR = Path("results") / "latest"


class CLIError(Exception):
    """Bad input: printed as ``glmverify: error: MESSAGE``, exit status 2."""


def _err(msg: str) -> None:
    print(f"glmverify: error: {msg}", file=sys.stderr)


def _warn(msg: str) -> None:
    print(f"glmverify: warning: {msg}", file=sys.stderr)


def _suites_dir() -> Path:
    from .paths import REPO_ROOT

    return REPO_ROOT / "suites"


# ---- parser ---------------------------------------------------------------------------------------
class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=100)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glmverify", description=DESCRIPTION, formatter_class=_Formatter,
                                allow_abbrev=False)
    p.add_argument("--version", action="version", version=f"glmverify {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    run = sub.add_parser("run", help="run the conformance suites (wraps pytest)", formatter_class=_Formatter,
                         description="Run the conformance suites on the selected matrix rows (pytest on suites/).",
                         epilog=RUN_EPILOG, allow_abbrev=False)
    sel = run.add_argument_group("selection")
    sel.add_argument("-m", dest="markexpr", metavar="EXPR",
                     help="marker expression: hardware (cpu, h200, mi300x, ...), e.g. -m h200 or -m 'h200 or b200'")
    sel.add_argument("-k", dest="keyword", metavar="EXPR", help="only checks whose name matches EXPR (pytest -k)")
    sel.add_argument("--suite", action="append", metavar="PATH",
                     help="suite file or directory to run (repeatable; default: the suites/ directory)")
    tgt = run.add_argument_group("target")
    tgt.add_argument("--endpoint", metavar="URL", help="attach to a running OpenAI-compatible server instead of launching")
    tgt.add_argument("--row", metavar="ID", help="the matrix row --endpoint stands for (default: the row serving its model)")
    tgt.add_argument("--served-model", metavar="NAME",
                     help="model name at --endpoint (default: the row's served model; every request names it)")
    tgt.add_argument("--metrics-url", metavar="URL", help="the engine's /metrics when --endpoint does not route it")
    tgt.add_argument("--engine", choices=api_choices(), help="engine kind at --endpoint (default: probe)")
    tgt.add_argument("--matrix", metavar="PATH", help="matrix.yaml to verify (default: the repository's)")
    out = run.add_argument_group("output and parallelism")
    out.add_argument("--results", metavar="DIR", help="results directory (default: results/<UTC time>/)")
    out.add_argument("-n", dest="numprocesses", metavar="N",
                     help="pytest-xdist workers (N, auto or logical); implies --dist loadgroup so a row's "
                          "engine launches once, on one worker")
    out.add_argument("--dry-run", action="store_true", help="print the pytest command instead of running it")

    plan = sub.add_parser("plan", help="print the launch command of every selected row; launches nothing",
                          formatter_class=_Formatter, epilog=PLAN_EPILOG, allow_abbrev=False,
                          description="Print how each selected matrix row would be launched (without pytest; "
                                      "the same as pytest --plan -m EXPR).")
    plan.add_argument("-m", dest="markexpr", metavar="EXPR", help="hardware marker expression, e.g. h200 (default: every row)")
    plan.add_argument("--matrix", metavar="PATH", help="matrix.yaml to plan (default: the repository's)")
    plan.add_argument("--suite", action="append", metavar="PATH",
                      help="suite file or directory, for --dry-run and pytest options (default: suites/)")
    plan.add_argument("--dry-run", action="store_true", help="print the equivalent pytest --plan command instead")

    merge = sub.add_parser("merge", help="merge matrix.json files of several runners or runs into one",
                           formatter_class=_Formatter, epilog=MERGE_EPILOG, allow_abbrev=False,
                           description="Merge matrix.json files (one per runner, worker or re-run) into DIR/matrix.json.")
    merge.add_argument("results", nargs="+", metavar="RESULTS", help="matrix.json files or results directories")
    merge.add_argument("--out", required=True, metavar="DIR", help="directory for the merged matrix.json and reports")
    merge.add_argument("--matrix", metavar="PATH",
                       help="matrix.yaml naming the known rows and features (default: the repository's)")

    rep = sub.add_parser("report", help="re-render matrix.md, matrix.html and junit.xml from a matrix.json",
                         formatter_class=_Formatter, epilog=REPORT_EPILOG, allow_abbrev=False,
                         description="Render the reports of a results directory (or a matrix.json file).")
    rep.add_argument("dir", metavar="DIR", help="results directory holding matrix.json (or the file itself)")
    rep.add_argument("--out", metavar="OUTDIR", help="write the reports here instead of next to matrix.json")

    rules = sub.add_parser("rules", help="print the statistical decisions a row makes: hypotheses, error rates, looks",
                           formatter_class=_Formatter, allow_abbrev=False,
                           description="Print every statistical decision the suites make on ROW (glmverify.policy): "
                                       "what verifies and what fails it, the false-failure rate alpha (the row's 1% "
                                       "family rate split over its decisions), beta, the effect it must detect, the "
                                       "sample sizes at which it looks, and the basis of its bounds.")
    rules.add_argument("row", metavar="ROW", help="a matrix row id")
    rules.add_argument("--engine", choices=api_choices(auto=False), default=None,
                       help="engine kind (default: the row's; an engine that shows no rendered prompt adds "
                            "fall-through decisions)")
    rules.add_argument("--matrix", metavar="PATH", help="matrix.yaml (default: the repository's)")

    mx = sub.add_parser("matrix", help="print resolved matrix rows: show ROW (one row in full, YAML) or list",
                        formatter_class=_Formatter, allow_abbrev=False,
                        description="Read matrix.yaml as the harness does (layers resolved) and print it.")
    mx_sub = mx.add_subparsers(dest="matrix_command", metavar="SUBCOMMAND", required=True)
    mx_show = mx_sub.add_parser("show", help="one resolved row in full, as YAML", allow_abbrev=False)
    mx_show.add_argument("row", metavar="ROW", help="a matrix row id")
    mx_list = mx_sub.add_parser("list", help="every row id with its recipe, engine and hardware", allow_abbrev=False)
    for sp in (mx_show, mx_list):
        sp.add_argument("--matrix", metavar="PATH", help="matrix.yaml (default: the repository's)")

    so = sub.add_parser("signoff", help="sign off a results directory, or verify its sign-off",
                        formatter_class=_Formatter, epilog=SIGNOFF_EPILOG, allow_abbrev=False,
                        description="Bind a signer and a UTC time to the exact bytes of DIR/matrix.json.")
    mode = so.add_mutually_exclusive_group(required=True)
    mode.add_argument("--by", metavar="NAME", help="sign: the signer's name (and e-mail)")
    mode.add_argument("--verify", action="store_true", help="check that matrix.json is the signed one (exit 1 if not)")
    so.add_argument("--note", metavar="TEXT", help="a note kept in the sign-off (with --by)")
    so.add_argument("--accept-flaky", action="append", default=[], metavar="ROW/FEATURE",
                    help="sign although this flaky cell (failed, then verified on a re-run) is not verified; "
                         "recorded with --reason, who and when (repeat for several cells)")
    so.add_argument("--reason", metavar="TEXT", help="why the --accept-flaky cells' failures do not block the sign-off")
    so.add_argument("dir", nargs="?", default=str(DEFAULT_DIR), metavar="DIR",
                    help=f"results directory (default: {DEFAULT_DIR})")
    return p


# ---- run / plan -----------------------------------------------------------------------------------
def _check_file(path: str | None, what: str) -> None:
    if path is not None and not Path(path).is_file():
        raise CLIError(f"{what} {path}: no such file")


def _suite_paths(suites: list[str] | None) -> list[str]:
    if suites:
        for s in suites:
            if not Path(s).exists():
                raise CLIError(f"--suite {s}: no such file or directory")
        return list(suites)
    d = _suites_dir()
    if not d.is_dir():
        raise CLIError(f"no suites directory at {d}; pass --suite PATH")
    return [str(d)]


def pytest_args_for_run(ns: argparse.Namespace, extra: list[str]) -> list[str]:
    """The pytest arguments of ``glmverify run`` (without the interpreter)."""
    _check_file(ns.matrix, "--matrix")
    why = endpoint_problem(ns.endpoint)  # the plugin's own rule, before pytest starts
    if why:
        raise CLIError(why)
    if ns.row and not ns.endpoint:
        raise CLIError("--row needs --endpoint (it names the row a running server stands for); "
                       "to select rows to launch use -m HARDWARE or -k")
    if ns.results and Path(ns.results).exists() and not Path(ns.results).is_dir():
        raise CLIError(f"--results {ns.results}: exists and is not a directory")
    args = _suite_paths(ns.suite)
    for flag, value in (("-m", ns.markexpr), ("-k", ns.keyword), ("--endpoint", ns.endpoint), ("--row", ns.row),
                        ("--served-model", ns.served_model), ("--metrics-url", ns.metrics_url), ("--engine", ns.engine),
                        ("--matrix", ns.matrix), ("--results", ns.results)):
        if value is not None:
            # --opt=VALUE: pytest reads an existing directory after a space as a path to collect,
            # before any plugin option exists (and then roots the run there)
            args += [f"{flag}={value}"] if flag.startswith("--") else [flag, value]
    if ns.numprocesses is not None:
        n = ns.numprocesses
        if n not in ("auto", "logical") and not (n.isdigit() and int(n) >= 0):
            raise CLIError(f"-n takes a number of workers, auto or logical, got {n!r}")
        args += ["-n", n]
        if not any(a == "--dist" or a.startswith("--dist=") for a in extra):
            args += ["--dist", "loadgroup"]
    return args + [a for a in extra if a != "--"]


def pytest_args_for_plan(ns: argparse.Namespace, extra: list[str]) -> list[str]:
    _check_file(ns.matrix, "--matrix")
    args = _suite_paths(ns.suite) + ["--plan", "-q", "-p", "no:cacheprovider"]
    if ns.markexpr:
        args += ["-m", ns.markexpr]
    if ns.matrix:
        args += ["--matrix", ns.matrix]
    return args + [a for a in extra if a != "--"]


def cmd_plan(ns: argparse.Namespace, extra: list[str]) -> int:
    """The plans of the rows ``-m`` selects, printed without pytest; with pytest options, through
    ``pytest --plan`` (which prints the same)."""
    if ns.dry_run or extra:
        return _pytest(pytest_args_for_plan(ns, extra), ns.dry_run)
    from .matrix import load
    from .paths import DEFAULT_MATRIX
    from .plan import MarkerExpressionError, known_issues_text, plan_summary, plan_text, select_rows

    _check_file(ns.matrix, "--matrix")
    if ns.suite:
        _suite_paths(ns.suite)
    matrix = load(ns.matrix or DEFAULT_MATRIX)
    try:
        rows = select_rows(matrix, ns.markexpr)
    except MarkerExpressionError as exc:
        raise CLIError(str(exc)) from None
    sys.stdout.write(plan_text(rows))
    sys.stdout.write(known_issues_text(rows))
    print(plan_summary(len(rows)), file=sys.stderr)
    return EXIT_OK


def _pytest(args: list[str], dry_run: bool) -> int:
    if dry_run:
        import shlex

        print(shlex.join([sys.executable, "-m", "pytest", *args]))
        return EXIT_OK
    import pytest

    return int(pytest.main(args))


# ---- merge / report / signoff -------------------------------------------------------------------
def _load_matrix(path: str | None):
    from .matrix import load
    from .paths import DEFAULT_MATRIX

    if path is None:
        if not DEFAULT_MATRIX.is_file():
            _warn(f"no matrix.yaml at {DEFAULT_MATRIX}: rows and features cannot be checked (pass --matrix)")
            return None
        return load(DEFAULT_MATRIX)
    _check_file(path, "--matrix")
    return load(path)


def _summary(doc: dict) -> str:
    from .document import counts

    return ", ".join(f"{s} {n}" for s, n in counts(doc).items() if n)


def _write_reports(d: Path, doc: dict) -> list[Path]:
    """The reports of ``doc`` in ``d``, showing the sign-off of ``d`` if it has one."""
    from .report import write_reports
    from .signoff import signoff_state

    return write_reports(d, doc, signoff_state(d))


def cmd_merge(ns: argparse.Namespace) -> int:
    from .document import MATRIX_JSON, dumps, resolve_document
    from .merge import merge_files
    from .util import atomic_write

    out = Path(ns.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: exists and is not a directory")
    inputs = [resolve_document(p) for p in ns.results]  # DocumentError names a missing one
    for given, f in zip(ns.results, inputs):
        if f.resolve() == (out / MATRIX_JSON).resolve():
            raise CLIError(f"--out {out} would overwrite the input {given}; choose a new directory")
    seen = set()
    for given, f in zip(ns.results, inputs):
        if f.resolve() in seen:
            _warn(f"{given} is given more than once; it is merged once")
        seen.add(f.resolve())
    matrix = _load_matrix(ns.matrix)
    unique = list({f.resolve(): g for g, f in zip(ns.results, inputs)}.values())
    doc = merge_files(unique, matrix)
    if (out / "signoff.json").exists():
        _warn(f"{out / 'signoff.json'} signs the previous matrix.json; sign the merged one again")
    atomic_write(out / MATRIX_JSON, dumps(doc))
    written = _write_reports(out, doc)
    for w in doc.get("warnings", []):
        _warn(w)
    for c in doc["cells"]:
        if c.get("status") == "flaky":
            _warn(f"{c['row']}/{c['feature']} is flaky: {c.get('basis')}")
    print(f"merged {len(unique)} file(s) into {out / 'matrix.json'}: {_summary(doc)}")
    print("reports: " + ", ".join(str(p) for p in written))
    return EXIT_OK


def cmd_report(ns: argparse.Namespace) -> int:
    from .document import read_document

    f, _, doc = read_document(ns.dir)
    out = Path(ns.out) if ns.out else f.parent
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: exists and is not a directory")
    if ns.out and f.name != "matrix.json":
        _warn(f"{f} is not named matrix.json: a sign-off of {out} would not cover it")
    written = _write_reports(out, doc)
    for w in doc.get("warnings") or []:
        _warn(w)
    print(f"{f}: {_summary(doc)}")
    print("reports: " + ", ".join(str(p) for p in written))
    return EXIT_OK


def cmd_rules(ns: argparse.Namespace) -> int:
    from . import policy
    from .adapters import adapter_for
    from .matrix import load
    from .paths import DEFAULT_MATRIX

    matrix = load(ns.matrix or DEFAULT_MATRIX)
    try:
        row = matrix.row(ns.row)
    except KeyError as exc:
        raise CLIError(str(exc.args[0])) from None
    kind = ns.engine or adapter_for(row.engine).api
    rendered = policy.rendered_prompt(kind)
    fam = policy.family(row, rendered)
    print(f"row {row.id} ({kind}): {len(fam)} statistical decision(s); family false-failure rate "
          f"{(row.profile.verdicts or {}).get('family_alpha', 0.01):g}, alpha per decision {policy.alpha(row, rendered):.3g}")
    for r in policy.rules(row, rendered):
        print(f"\n{r.name}\n  {r.hypothesis}\n  alpha {r.alpha:.3g}, beta {r.beta:g}, effect {r.effect}\n"
              f"  {r.description}\n  basis: {r.basis}")
    return EXIT_OK


def cmd_signoff(ns: argparse.Namespace) -> int:
    from . import signoff
    from .document import load_document

    d = Path(ns.dir)
    if ns.verify:
        if ns.note or ns.accept_flaky or ns.reason:
            raise CLIError("--note, --accept-flaky and --reason go with --by, not --verify")
        v = signoff.verify(d)
        if v.ok:
            print(v.message)
            return EXIT_OK
        print(f"glmverify: sign-off FAILED: {v.message}", file=sys.stderr)
        return EXIT_FAILED
    if ns.reason and not ns.accept_flaky:
        raise CLIError("--reason goes with --accept-flaky ROW/FEATURE")
    try:
        record = signoff.sign(d, ns.by, ns.note, {cell: ns.reason or "" for cell in ns.accept_flaky})
    except signoff.FlakyNotAccepted as exc:
        print(f"glmverify: not signed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        _write_reports(d, load_document(d))  # matrix.md/html now carry the sign-off
    except Exception as exc:  # noqa: BLE001 - the sign-off itself is written; say what is stale
        _warn(f"signed, but the reports could not be refreshed: {exc}")
    c = record["counts"]
    print(f"signed off {d / 'matrix.json'} (sha256 {record['matrix_json']['sha256']}) "
          f"by {record['signed_by']} at {record['signed_at']}: "
          + ", ".join(f"{k} {v}" for k, v in c.items() if v))
    if c.get("failed"):
        _warn(f"the signed matrix has {c['failed']} failed cell(s)")
    if c.get("inconclusive"):
        _warn(f"the signed matrix has {c['inconclusive']} inconclusive cell(s): not verified")
    for a in record.get("accepted_flaky", []):
        _warn(f"flaky cell {a['cell']} accepted by {a['by']}: {a['reason']}")
    attached = record.get("verified_attached") or {}
    if attached:
        print(f"{len(attached)} verified cell(s) of attached rows, part of their recipe only declared:")
        for cell, parts in attached.items():
            print(f"  {cell}: declared {', '.join(parts[:4])}" + (f" and {len(parts) - 4} more" if len(parts) > 4 else ""))
    return EXIT_OK


# ---- matrix -------------------------------------------------------------------------------------
def cmd_matrix(ns: argparse.Namespace) -> int:
    from .matrix import DEFAULT_MATRIX, load
    from .matrix.views import UnknownRow, listing, show

    _check_file(ns.matrix, "--matrix")
    m = load(ns.matrix or DEFAULT_MATRIX)
    if ns.matrix_command == "list":
        sys.stdout.write(listing(m, m.recipe_of))
        return EXIT_OK
    try:
        sys.stdout.write(show(m, ns.row))
    except UnknownRow as exc:
        _err(str(exc))
        return EXIT_USAGE
    return EXIT_OK


# ---- entry point ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from .matrix import MatrixError
    from .document import DocumentError
    from .signoff import SignoffError

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        ns, extra = parser.parse_known_args(argv)
        if ns.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if extra and ns.command not in ("run", "plan"):
            parser.parse_args(argv)  # argparse's own "unrecognized arguments" message, exit 2
        if ns.command == "run":
            return _pytest(pytest_args_for_run(ns, extra), ns.dry_run)
        if ns.command == "plan":
            return cmd_plan(ns, extra)
        return {"merge": cmd_merge, "report": cmd_report, "signoff": cmd_signoff, "rules": cmd_rules,
                "matrix": cmd_matrix}[ns.command](ns)
    except (CLIError, DocumentError, SignoffError, MatrixError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except OSError as exc:  # e.g. --out on a read-only file system
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _err(f"{where}{exc.strerror or exc}")
        return EXIT_USAGE
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2), message already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - no tracebacks for users; GLMVERIFY_DEBUG shows them
        if os.environ.get("GLMVERIFY_DEBUG"):
            traceback.print_exc()
        _err(f"internal error: {type(exc).__name__}: {exc} (set GLMVERIFY_DEBUG=1 for the traceback)")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
