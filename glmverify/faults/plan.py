"""Planning the catalogue's runs: entries expanded over rows, selections, misconfigured launches.

* ``expand``: an entry whose ``row`` is a list runs once per row; the first case keeps the id,
  the others get ``ID@ROW`` (how the defects that apply to SGLang run against the SGLang
  reference too). ``launch_row_id`` turns such an id into a matrix row id (``ID.ROW``).
* ``select``: the command line's ``--only`` (ids, a trailing ``*`` matches a prefix), ``--kind``
  and ``--row`` narrowing of the cases.
* ``conforming_suites``: the suites a reference row's conforming run covers (every feature it
  serves).
* ``derive_args`` / ``derived_matrix``: a ``launch`` entry's one-row matrix, the entry's row with
  arguments dropped or set, env added and a chat template variant written next to it.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ..matrix import FEATURES, flat_document, load
from ..perf_mtp import twin_of
from ..paths import DEFAULT_MATRIX
from .model import FaultCase
from .templates import template_variant


def entry_rows(entry: dict) -> list:
    """The row ids an entry names (``row`` is a row id or a list of them)."""
    return entry["row"] if isinstance(entry["row"], list) else [entry["row"]]


def expand(entry: dict) -> list[FaultCase]:
    """One case per row of ``entry``: the first keeps the id, the others are ``ID@ROW``."""
    return [FaultCase(**{**entry, "id": entry["id"] if n == 0 else f"{entry['id']}@{rid}", "row": rid})
            for n, rid in enumerate(entry_rows(entry))]


def unknown_ids(cases: list[FaultCase], only: list[str]) -> list[str]:
    """The ``--only`` patterns that name no case (a prefix pattern ``ID*`` is never unknown)."""
    ids = {c.id for c in cases}
    return [p for p in only if not p.endswith("*") and p not in ids]


def select(cases: list[FaultCase], only: list[str] = (), kinds: list[str] = (), rows: list[str] = ()) -> list[FaultCase]:
    """The cases matching every given filter: ``only`` ids or ``ID*`` prefixes, ``kinds``, ``rows``."""
    if only:
        cases = [c for c in cases if any(c.id == p or (p.endswith("*") and c.id.startswith(p[:-1])) for p in only)]
    if kinds:
        cases = [c for c in cases if c.kind in kinds]
    if rows:
        cases = [c for c in cases if c.row in rows]
    return cases


def conforming_suites(row) -> list[str]:
    return [f for f in FEATURES if row.serves(f)]


def derive_args(args: list[str], drop: list[str] = (), set_: dict[str, str] | None = None) -> list[str]:
    """Remove flags ``drop`` (and their value, when the next item is not a flag), then set ``set_``."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        name = a.split("=", 1)[0]
        if name in drop:
            takes_value = "=" not in a and i + 1 < len(args) and not str(args[i + 1]).startswith("--")
            i += 2 if takes_value else 1
            continue
        out.append(a)
        i += 1
    for flag, value in (set_ or {}).items():
        if flag in out:
            out[out.index(flag) + 1] = str(value)
        else:
            out += [flag, str(value)]
    return out


def launch_row_id(case: FaultCase) -> str:
    """The derived one-row matrix's row id (matrix ids have no '@')."""
    return case.id.replace("@", ".")


def derived_matrix(case: FaultCase, workdir: Path, matrix_path: Path | str = DEFAULT_MATRIX,
                   standin_env: str | None = None) -> Path:
    """A one-row matrix.yaml for a misconfigured launch of ``case.row`` (and, for a speculating
    row's speed, its no-speculation twin as it is); returns its path."""
    data = flat_document(matrix_path)  # the layered matrix resolved to flat rows, patched below
    row = next(r for r in data["rows"] if r["id"] == case.row)
    launch = dict(row["launch"])
    launch["args"] = derive_args(list(launch.get("args", [])), case.drop_args, case.set_args)
    env = {**launch.get("env", {}), **case.env}
    if standin_env:
        env["GLM_STANDIN_FAULTS"] = standin_env
    launch["env"] = env
    if case.cpus:  # fewer CPUs for the whole engine (a process launch): taskset is util-linux's
        launch["command"] = ["taskset", "-c", case.cpus, *launch["command"]]
    if case.chat_template:
        tpl = workdir / f"chat_template.{case.chat_template}.jinja"
        tpl.write_text(template_variant(case.chat_template))
        launch["args"] = derive_args(launch["args"], ["--chat-template"], {"--chat-template": str(tpl)})
    perf = (row.get("expect") or {}).get("performance")
    if perf and not perf.get("baseline"):  # the misconfigured launch is held to its row's baseline
        row = {**row, "expect": {**row["expect"], "performance": {**perf, "baseline": case.row}}}
    row = {**row, "id": launch_row_id(case), "launch": launch,
           "description": f"fault catalogue: {case.id} (row {case.row} misconfigured)"}
    out = {k: data[k] for k in ("schema", "features", "profiles")}
    out["rows"] = [row]
    # a speculating row's speed is held to its no-speculation twin, launched beside it unchanged
    # (perf_mtp): the derived matrix keeps the twin, so the misconfigured launch has it to be held to
    if "serving_performance" in case.suites:
        matrix = load(matrix_path)
        twin = twin_of(matrix.row(case.row), matrix.rows)
        if twin is not None:
            out["rows"].append(next(r for r in data["rows"] if r["id"] == twin.id))
    path = workdir / "matrix.yaml"
    path.write_text(yaml.safe_dump(out, sort_keys=False, allow_unicode=True))
    return path
