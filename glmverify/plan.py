"""Plans: what a row would launch, printed without Docker, a GPU or pytest (``glmverify plan``).

A container row's plan is the ``docker run`` command of its ``ContainerSpec`` -- the same object the
launcher hands to the docker SDK -- so the plan is what would run. An attach-only row's plan says
what the cluster must deploy (nodes, container, per-node commands) and the pytest line that
verifies the result. A process row (the reference engine) prints its command line.

``select_rows`` picks rows by a hardware marker expression (``-m "h200 or b200"``: the markers
a row's checks carry are its hardware), ``plan_text`` prints the plans of rows. ``pytest --plan``
is a thin call of the same two: the rows it collected, else the rows the expression selects.
"""
from __future__ import annotations

import re
import shlex
import textwrap
from typing import Iterable

from .matrix import Matrix, Row

PLAN_RUN_ID = "plan"


# ---- which rows ------------------------------------------------------------------------------------
class MarkerExpressionError(ValueError):
    """A ``-m`` expression that does not parse (message says where)."""


_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


def _matches(expr: str, markers: set[str]) -> bool:
    """pytest's ``-m`` grammar: ``or`` / ``and`` / ``not`` / parentheses over marker names."""
    tokens = _TOKEN.findall(expr)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise MarkerExpressionError(f"-m {expr!r}: ends early")
        pos += 1
        return tokens[pos - 1]

    def disjunction() -> bool:
        value = conjunction()
        while peek() == "or":
            take()
            value = conjunction() or value
        return value

    def conjunction() -> bool:
        value = negation()
        while peek() == "and":
            take()
            value = negation() and value
        return value

    def negation() -> bool:
        tok = take()
        if tok == "not":
            return not negation()
        if tok == "(":
            value = disjunction()
            if take() != ")":
                raise MarkerExpressionError(f"-m {expr!r}: unbalanced parentheses")
            return value
        if tok in ("and", "or", ")"):
            raise MarkerExpressionError(f"-m {expr!r}: unexpected {tok!r}")
        return tok in markers

    value = disjunction()
    if peek() is not None:
        raise MarkerExpressionError(f"-m {expr!r}: unexpected {peek()!r}")
    return value


def select_rows(matrix: Matrix, markexpr: str | None = None) -> list[Row]:
    """The rows whose hardware marker satisfies ``markexpr`` (every row without one), in matrix order."""
    if not markexpr or not markexpr.strip():
        return list(matrix.rows)
    return [r for r in matrix.rows if _matches(markexpr, {r.hardware})]


def plan_text(rows: Iterable[Row]) -> str:
    """Every row's plan, each followed by a blank line."""
    rows = list(rows)
    return "".join(render_plan(r, rows) + "\n\n" for r in rows)


def plan_summary(n_rows: int) -> str:
    return f"plan printed for {n_rows} row(s); nothing launched"


def _header(row: Row) -> list[str]:
    src = row.source
    lines = [
        f"# ---- {row.id}: {row.engine}"
        + (f" {row.engine_version}" if row.engine_version else "")
        + f" on {row.accelerators or 0}x {row.hardware} ({row.launcher})",
        f"# model {row.model}, served as {row.served_model}",
        f"# source: seed {src.get('seed')}" + (f", section '{src['section']}'" if src.get("section") else ""),
    ]
    if not row.image_known:
        from .container_spec import image_override_var

        lines.append(f"# image: the seed leaves the tag unknown; {row.image} is a placeholder "
                     f"(set {image_override_var(row.id)}=<image> to use yours)")
    return lines


def _provenance(row: Row) -> list[str]:
    """Where every flag comes from, what the launch leaves out of the recipe, and the seed's errata."""
    from .flags import origins, refused

    out = ["# flag origins (seed: in the guide's recipe; harness: added by the harness, with the reason):"]
    for o in origins(row):
        out += _wrap_comment(o.text(), "#   ")
    for flag, why in row.launch.dropped.items():
        out += _wrap_comment(f"{flag}: in the recipe, left out ({why})", "#   dropped ")
    for e in row.errata:
        out += _wrap_comment(f"the guide writes {e['seed']}; correction: {e['correction']}", "# ERRATUM: ")
    why = refused(row)
    if why:
        out += _wrap_comment(why, "# REFUSED AT LAUNCH: ")
    return out


def _wrap_comment(text: str, prefix: str = "# ") -> list[str]:
    # no breaks inside words or at hyphens: a flag or an image name stays whole (and greppable)
    wrapped = textwrap.wrap(" ".join(text.split()), 100 - len(prefix), break_long_words=False, break_on_hyphens=False)
    cont = "#" + " " * (len(prefix) - 1)
    return [(prefix if i == 0 else cont) + ln for i, ln in enumerate(wrapped)]


def _pytest_line(row: Row, url: str) -> str:
    return f"pytest --endpoint {url} --row {row.id}"


def plan_spec(row: Row):
    """The ``ContainerSpec`` a plan prints: the launcher's, with a fixed run id and name."""
    from .container_spec import ContainerSpec

    return ContainerSpec.from_row(row, PLAN_RUN_ID, launch_id=row.id)


def plan_argv(row: Row) -> list[str]:
    """The ``docker run`` argv of a container row's plan."""
    return plan_spec(row).docker_run_argv()


def render_container(row: Row) -> str:

    spec = plan_spec(row)
    out = _header(row) + _provenance(row)
    if spec.build:
        out.append(f"# image built locally: {spec.build}/build.sh (idempotent)")
    else:
        out.append("# image pulled from its registry on first launch")
    if spec.secret_env:
        out.append(f"# from the host environment (never recorded): {', '.join(spec.secret_env)}")
    timeout = row.launch.startup_timeout
    out.append(f"# startup timeout {timeout or 'default'} s; ready when GET {spec.health_path} answers 200")
    out.append(spec.shell_command())
    out.append(f"# port: docker port {spec.name} {spec.port}/tcp; logs: docker logs -f {spec.name}; "
               f"remove: docker rm -f {spec.name} (or python -m glmverify.containers reap {spec.run_id})")
    out.append(f"# then: {_pytest_line(row, 'http://127.0.0.1:<published port>')}"
               f"  (or let pytest launch it: pytest -m {row.hardware})")
    return "\n".join(out)


def render_attach(row: Row) -> str:
    launch = row.launch
    att = launch.attach or {}
    nodes = att.get("nodes", 1)
    out = _header(row) + _provenance(row)
    out.append(f"# attach-only: a {nodes}-node deployment made by the cluster's own tooling; the harness never launches it")
    out.append(f"# image: {row.image}")
    for i, step in enumerate(att.get("deploy", []), 1):
        out += _wrap_comment(step, f"# {i}. ")
    src = row.source
    if src.get("docker"):
        out.append("# container on each node (seed):")
        out += [ln for ln in src["docker"].splitlines()]
    if src.get("command"):
        out.append("# serve command (seed, verbatim):")
        out += [ln for ln in src["command"].splitlines()]
    else:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in launch.env.items())
        argv = list(launch.command) + list(launch.args)
        out.append("# serve command (node 0; flags the seed does not give are marked harness above):")
        out.append((env + " " if env else "") + " ".join(shlex.quote(a) for a in argv))
    url = att.get("endpoint", "http://<host>:<port>")
    out.append("# then verify it from any host that reaches the endpoint:")
    out.append(_pytest_line(row, url))
    return "\n".join(out)


def render_process(row: Row) -> str:
    out = _header(row) + _provenance(row)
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in row.launch.env.items())
    argv = list(row.launch.command) + list(row.launch.args)
    out.append("# a local process (no container); placeholders are filled at launch")
    out.append((env + " " if env else "") + " ".join(shlex.quote(a) for a in argv))
    return "\n".join(out)


def render_plan(row: Row, rows: Iterable[Row] = ()) -> str:
    """The plan for one row, as text (no Docker, no GPU, nothing built or launched), then the
    benchmark shape of its speed claim and the figure it is held to; a speculating row also names
    the no-speculation twin among ``rows`` (the run's) its speed-up is held to."""
    from .perf_mtp import speculates, twin_of
    from .performance import plan_lines, shape_of

    if row.in_container:
        text = render_container(row)
    elif row.attached:
        text = render_attach(row)
    else:
        text = render_process(row)
    lines = plan_lines(row)
    if rows and speculates(row) and shape_of(row) is not None:
        twin = twin_of(row, rows)
        lines.append(f"#   speculation: E2E latency at concurrency 1 held to its no-speculation twin {twin.id} "
                     "(glmverify/perf_mtp.py, on the run's document)" if twin else
                     "#   speculation: no no-speculation twin among this run's rows: the speed-up is decided "
                     "only where a merge has both")
    return "\n".join([text, *lines])


def known_issues_text(rows: list[Row]) -> str:
    """Per row, the fault catalogue's entries whose version range covers its declared engine
    version (``knowledge.known_issues``): what to expect before anything runs."""
    from .knowledge import catalogue, known_issues

    entries = catalogue()
    out = []
    for r in rows:
        issues = known_issues(entries, r.engine, r.engine_version, "declared")
        if issues:
            out.append(f"# known issues of {r.id} ({r.engine} {r.engine_version or 'version not declared'}):")
            out += [f"#   {i['id']}: {i['source']} (versions {i['versions'] or 'all'}); fix: {i['fix'] or '-'}" for i in issues]
    return "\n".join(out) + ("\n" if out else "")
