"""The results document (matrix.json): its shape, its one status rule, its counts, its reading.

A document is plain JSON, and stays plain dicts in memory: the recorder writes it, merge reads
and writes it, sign-off hashes its bytes, the reports render it. The typed views below
(``Check``, ``Cell``, ``Run``, ``Document``) are ``TypedDict``s over exactly those dicts, so the
on-disk format is the format in memory and old results load unchanged.

One rule decides a cell's status from its checks (``decide_status``):

* ``failed``        any check failed live (``failed``, or ``error``: e.g. an engine that did not start);
* ``inconclusive``  none failed, but a statistical check spent its sample budget undecided;
* ``verified``      at least one check passed and none failed or ended inconclusive;
* otherwise the declared status (``inferred`` / ``unsupported`` / ``not_run``).

A merged document has one more status, ``flaky``: verified in the newest run after a failure in
an older one (``merge``). It is never read as verified: sign-off needs a recorded override.

One rule decides a whole run from its final document (``decide_run``), and so pytest's exit
status (the plugin only translates it):

* ``failed``    (exit 1, pytest's own) some cell failed;
* ``undecided`` (exit ``UNDECIDED_EXIT`` = 6) nothing failed, but some cell the run set out to
  decide was not decided: ``inconclusive``, ``flaky``, skipped before its checks ran (a hardware
  gate, an attach-only row, a container row without Docker: ``phase: setup`` skips of a row that
  serves the feature), or selected checks with no result at all (not reached);
* ``verified``  (exit 0) everything selected was decided and verified.

6 because pytest uses 0-5 (ok, tests failed, interrupted, internal error, usage error, no tests
collected) and neither pytest nor pytest-xdist assigns 6: a CI step can tell "nothing failed, but
nothing was proven either" from every pytest outcome.

``counts`` is the one tally per status (the recorder's summary, the reports, the sign-off record);
``live_basis`` the one sentence a live cell's basis starts with. ``new_cell`` builds a cell of a
matrix.yaml row in the order of keys every writer uses. Reading (``read_document`` and friends)
names the file and the problem in a ``DocumentError``.

Imports only ``matrix`` (statuses, rows): everything above it may use this module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, NotRequired, TypedDict

from .matrix import STATUSES as DECLARABLE, Matrix, Row

SCHEMA_VERSION = 1
MATRIX_JSON = "matrix.json"
LIVE: tuple[str, ...] = ("verified", "failed", "inconclusive")  # decided by checks that ran
DECLARED: tuple[str, ...] = ("inferred", "unsupported", "not_run")  # taken from matrix.yaml
FAILED_OUTCOMES = ("failed", "error")
#: every status a cell may have: matrix.yaml's, plus ``flaky`` (merge only), in the order of the tallies
STATUSES: tuple[str, ...] = (*DECLARABLE[:2], "flaky", *DECLARABLE[2:])
VERIFIED_EXIT, FAILED_EXIT, UNDECIDED_EXIT = 0, 1, 6


class Check(TypedDict):
    """One check's outcome in a cell (``time``, ``duration`` and ``launch_id`` are absent in old files)."""
    id: str
    outcome: str  # passed | failed | error | inconclusive | skipped
    detail: NotRequired[str]
    phase: NotRequired[str]  # "setup": skipped before the check ran (a gate), absent for the check's own outcome
    time: NotRequired[str | None]
    duration: NotRequired[float | None]
    launch_id: NotRequired[str | None]
    code: NotRequired[str]  # a failure's stable code (glmverify.failure_codes) and its decisive values
    fields: NotRequired[dict[str, Any]]


class Cell(TypedDict):
    """One (row, feature) of the matrix. ``run``/``time``/``source``/``sources``/``history``/
    ``declared_basis`` are written by merge; ``kind`` by inferred declarations; ``window`` by context cells."""
    row: str
    engine: str | None
    image: str | None
    hardware: str | None
    feature: str
    status: str
    declared: NotRequired[str]
    kind: NotRequired[str]
    window: NotRequired[int | None]
    basis: str
    checks: list[Check]
    evidence: dict[str, Any]
    declared_basis: NotRequired[str]
    run: NotRequired[str]
    time: NotRequired[str]
    source: NotRequired[str]
    sources: NotRequired[list[str]]
    history: NotRequired[list[dict[str, Any]]]
    diagnosis: NotRequired[list[dict[str, Any]]]  # a failed cell: ranked catalogue causes (glmverify.diagnosis)
    flaky: NotRequired[dict[str, Any]]  # merge: the failed runs a newer verified one followed


class Run(TypedDict, total=False):
    """Who produced the document and when; a merged run also lists its ``sources``."""
    id: str
    started: str | None
    finished: str | None
    launches: dict[str, int]
    selected_rows: list[str]
    selected: dict[str, dict[str, list[str]]]  # row -> feature -> check ids the run selected
    verdict: dict[str, Any]  # decide_run of the final document
    matrix: dict[str, Any]
    merged: bool
    sources: list[dict[str, Any]]
    interrupted: bool
    exit_status: int


class Document(TypedDict):
    schema: int
    run: Run
    cells: list[Cell]
    errata: NotRequired[dict[str, list[dict]]]
    warnings: NotRequired[list[str]]
    unknown: NotRequired[list[dict]]
    known_issues: NotRequired[dict[str, list[dict]]]  # row -> catalogue entries whose affects covers it


class DocumentError(ValueError):
    """A matrix.json input is missing, unreadable or not a glmverify document (message names it)."""


# ---- the status rule and the tallies -------------------------------------------------------------
def decide_status(checks: Iterable[Mapping[str, Any]], declared_status: str) -> str:
    """The status of a cell whose checks are ``checks`` (see the module docstring)."""
    outcomes = {c.get("outcome") for c in checks}
    if outcomes & set(FAILED_OUTCOMES):
        return "failed"
    if "inconclusive" in outcomes:
        return "inconclusive"  # a decision ran out of samples: not verified, not failed
    if "passed" in outcomes:
        return "verified"
    return declared_status


def strip_added(cell: dict, check_prefix: str, evidence_key: str, before_key: str) -> dict:
    """``cell`` without what a decision on a whole document added to it (serving_performance between
    rows): its checks (ids starting ``check_prefix``), ``evidence[evidence_key]``, and the status and
    basis it had, kept in ``evidence[before_key]``, restored (a copy when there is something to take off)."""
    ev = cell.get("evidence") or {}
    ours = [k for k in cell.get("checks") or [] if str(k.get("id", "")).startswith(check_prefix)]
    if evidence_key not in ev and before_key not in ev and not ours:
        return cell
    out = dict(cell)
    out["checks"] = [k for k in cell.get("checks") or [] if k not in ours]
    out["evidence"] = {k: v for k, v in ev.items() if k not in (evidence_key, before_key)}
    before = ev.get(before_key)
    if isinstance(before, dict) and before.get("status"):
        out["status"], out["basis"] = before["status"], before.get("basis", "")
        if out["status"] != "failed":
            out.pop("diagnosis", None)   # the diagnosis was of the added decision's failure
    elif ours and out.get("status") in LIVE:   # no record of the status before: the remaining checks decide
        out["status"] = decide_status(out["checks"], out["status"])
    return out


def worst_status(statuses: Iterable[str]) -> str:
    """The worst of live statuses (failed, then inconclusive, else verified): what several live
    results of one run amount to when their checks decide nothing."""
    seen = set(statuses)
    return next((s for s in ("failed", "inconclusive") if s in seen), "verified")


def counts(document: Mapping[str, Any]) -> dict[str, int]:
    """Cells per status, every status present (in ``STATUSES`` order), unknown statuses after."""
    out = {s: 0 for s in STATUSES}
    for c in document.get("cells", []):
        out[c.get("status")] = out.get(c.get("status"), 0) + 1
    return out


# ---- the run's verdict ---------------------------------------------------------------------------
@dataclass
class RunVerdict:
    """What a run's final document amounts to, and why (one line per failed or undecided cell)."""
    status: str  # verified | failed | undecided
    failed: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"verified": VERIFIED_EXIT, "failed": FAILED_EXIT}.get(self.status, UNDECIDED_EXIT)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code, "failed": self.failed, "undecided": self.undecided}

    def summary(self, limit: int = 40, exit_status: int | None = None) -> list[str]:
        """Terminal lines: each failed and undecided cell with why (at most ``limit`` of each), then
        the verdict with the exit status the process ends with (``exit_status``, default its own)."""
        out = []
        for what, reasons in (("failed", self.failed), ("undecided", self.undecided)):
            out += [f"  {what}: {r}" for r in reasons[:limit]]
            if len(reasons) > limit:
                out.append(f"  ... and {len(reasons) - limit} more {what} cell(s) (run.verdict in matrix.json lists all)")
        meaning = {"verified": "every selected cell decided and verified", "failed": "a cell failed",
                   "undecided": "nothing failed, but the cells above were not decided: not verified"}
        code = self.exit_code if exit_status is None else exit_status
        return out + [f"glmverify verdict: {self.status} (exit {code}): {meaning[self.status]}"]


def _first_detail(checks: Iterable[Mapping[str, Any]], outcomes: tuple[str, ...]) -> str:
    detail = next((str(c.get("detail") or "") for c in checks if c.get("outcome") in outcomes), "")
    return " ".join(detail.split())[:300]


def undecided_reason(cell: Mapping[str, Any], selected: Iterable[str] = ()) -> str | None:
    """Why ``cell`` is undecided (see the module docstring), None when it is decided or was not
    for this run to decide. ``selected`` are the check ids the run selected for the cell."""
    status, checks = cell.get("status"), [c for c in cell.get("checks", []) if isinstance(c, Mapping)]
    if status == "inconclusive":
        return "inconclusive: " + (_first_detail(checks, ("inconclusive",)) or cell.get("basis", ""))
    if status == "flaky":
        return "flaky: " + str(cell.get("basis", ""))
    if status == "failed" or cell.get("declared") == "unsupported":
        return None  # failed is decided; an unsupported feature has nothing to decide
    gated = [c for c in checks if c.get("outcome") == "skipped" and c.get("phase") == "setup"]
    if gated and status not in LIVE:
        return "not run: " + _first_detail(gated, ("skipped",)).removeprefix("Skipped: ")
    ran = {c.get("id") for c in checks}
    missing = [i for i in dict.fromkeys(selected) if i not in ran]
    if missing:
        return (f"not reached: {len(missing)} of {len(set(selected))} selected check(s) have no result "
                f"(first: {missing[0]})")
    return None


def decide_run(document: Mapping[str, Any]) -> RunVerdict:
    """The run's verdict from its final document: failed, else undecided, else verified."""
    selected = (document.get("run") or {}).get("selected") or {}
    verdict = RunVerdict("verified")
    for c in document.get("cells", []):
        where = f"{c.get('row')}/{c.get('feature')}"
        if c.get("status") == "failed":
            failing = [k.get("id") for k in c.get("checks", []) if k.get("outcome") in FAILED_OUTCOMES]
            verdict.failed.append(f"{where}: failed ({', '.join(map(str, failing[:5])) or c.get('basis', '')})")
            continue
        why = undecided_reason(c, (selected.get(c.get("row")) or {}).get(c.get("feature")) or ())
        if why:
            verdict.undecided.append(f"{where}: {why}")
    verdict.status = "failed" if verdict.failed else "undecided" if verdict.undecided else "verified"
    return verdict


def live_basis(run_id: Any, status: str, checks: Iterable[Mapping[str, Any]]) -> str:
    """``live run RUN: N check(s) passed|failed|...``: the basis of a cell decided by its checks."""
    outcomes = [c.get("outcome") for c in checks]
    if status == "failed":
        return f"live run {run_id}: {sum(o in FAILED_OUTCOMES for o in outcomes)} check(s) failed"
    if status == "inconclusive":
        return (f"live run {run_id}: {outcomes.count('inconclusive')} check(s) "
                "spent their sample budget without a decision (not verified)")
    return f"live run {run_id}: {outcomes.count('passed')} check(s) passed"


# ---- building cells ------------------------------------------------------------------------------
def cell_claim(row: Row, feature: str) -> dict[str, Any]:
    """What a cell claims besides its status: the claim kind of an inferred declaration, and the
    window a context cell is checked at (the feature id stays context_1m whatever the size)."""
    out: dict[str, Any] = {}
    kind = row.declared_cell(feature).kind
    if kind:
        out["kind"] = kind
    if feature == "context_1m":
        out["window"] = row.expect.get("context")
    return out


def new_cell(row: Row, feature: str, status: str, basis: str, checks: list | None = None,
             evidence: dict | None = None) -> Cell:
    """A cell of a matrix.yaml row, keys in the order every writer uses."""
    return {"row": row.id, "engine": row.engine, "image": row.image, "hardware": row.hardware,
            "feature": feature, "status": status, "declared": row.declared_cell(feature).status,
            **cell_claim(row, feature), "basis": basis, "checks": list(checks or []),
            "evidence": dict(evidence or {})}  # type: ignore[typeddict-item]


def errata_of(matrix: Matrix) -> dict[str, list[dict]]:
    """{row id: [{seed, correction}]}: seed errors rows keep as written, for the page."""
    return {r.id: [dict(e) for e in r.errata] for r in matrix.rows if r.errata}


# ---- reading -------------------------------------------------------------------------------------
def resolve_document(path: str | Path) -> Path:
    """``path`` itself when it is a file, ``path/matrix.json`` when it is a directory."""
    p = Path(path)
    if p.is_dir():
        f = p / MATRIX_JSON
        if not f.is_file():
            raise DocumentError(f"{p}: directory has no {MATRIX_JSON}")
        return f
    if not p.exists():
        raise DocumentError(f"{p}: no such file or directory")
    if not p.is_file():
        raise DocumentError(f"{p}: not a regular file")
    return p


def validate_document(doc: Any) -> list[str]:
    """Problems that make ``doc`` unusable as a matrix document; empty when fine."""
    if not isinstance(doc, dict):
        return [f"the top level is a JSON {type(doc).__name__}, expected an object with 'cells'"]
    problems = []
    if doc.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
        problems.append(f"schema is {doc.get('schema')!r}; this glmverify reads schema {SCHEMA_VERSION}")
    if not isinstance(doc.get("run", {}), dict):
        problems.append("'run' is not an object")
    cells = doc.get("cells")
    if not isinstance(cells, list):
        problems.append("'cells' is missing or not a list")
        return problems
    for i, c in enumerate(cells):
        if not isinstance(c, dict):
            problems.append(f"cells[{i}] is not an object")
            continue
        for key in ("row", "feature"):
            if not isinstance(c.get(key), str) or not c.get(key):
                problems.append(f"cells[{i}].{key} is missing or not a string")
        if c.get("status") not in STATUSES:
            problems.append(f"cells[{i}].status is {c.get('status')!r}, expected one of {', '.join(STATUSES)}")
        checks = c.get("checks", [])
        if not isinstance(checks, list) or not all(isinstance(k, dict) and "id" in k and "outcome" in k for k in checks):
            problems.append(f"cells[{i}].checks must be a list of objects with 'id' and 'outcome'")
        if not isinstance(c.get("evidence", {}), dict):
            problems.append(f"cells[{i}].evidence is not an object")
        if not isinstance(c.get("history", []), list):
            problems.append(f"cells[{i}].history is not a list")
        diag = c.get("diagnosis", [])
        if not isinstance(diag, list) or not all(isinstance(d, dict) and "id" in d for d in diag):
            problems.append(f"cells[{i}].diagnosis must be a list of objects with 'id'")
    issues = doc.get("known_issues", {})
    if not isinstance(issues, dict) or not all(isinstance(v, list) and all(isinstance(x, dict) and "id" in x for x in v)
                                               for v in issues.values()):
        problems.append("'known_issues' must map row ids to lists of objects with 'id'")
    return problems


def parse_document(raw: bytes, name: str) -> Document:
    """The document in ``raw`` (the bytes of file ``name``); DocumentError says what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{name}: not UTF-8 text (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise DocumentError(f"{name}: empty file (an interrupted copy?)")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{name}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    problems = validate_document(doc)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DocumentError(f"{name}: not a glmverify matrix.json: " + "; ".join(problems[:5]) + more)
    return doc


def read_document(path: str | Path) -> tuple[Path, bytes, Document]:
    """(file, raw bytes, document) of a matrix.json or a results directory; DocumentError if bad."""
    f = resolve_document(path)
    try:
        raw = f.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{f}: cannot read: {exc.strerror or exc}") from None
    return f, raw, parse_document(raw, str(f))


def load_document(path: str | Path) -> Document:
    return read_document(path)[2]


def dumps(doc: Mapping[str, Any]) -> str:
    """matrix.json text: what every writer writes (one space indent, UTF-8 kept, final newline)."""
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


# ---- a failed cell's diagnosis (glmverify.diagnosis writes it; reports read it) -----------------
LIKELY, SIMILAR = "likely", "similar"


def no_known_cause(diagnosis: list[Mapping[str, Any]]) -> bool:
    """True when no listed cause is likely (every one below the diagnosis's confidence floor)."""
    return not any(g.get("confidence", LIKELY) == LIKELY for g in diagnosis)


def likely(diagnosis: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The likely causes: the groups tied at the top score, when that score reaches the floor
    (a diagnosis written before the floor existed has no ``confidence``: its top is likely)."""
    if not diagnosis or no_known_cause(diagnosis):
        return []
    top = diagnosis[0].get("score", 0)
    return [g for g in diagnosis if g.get("score", 0) == top and g.get("confidence", LIKELY) == LIKELY]


# ---- what a verified cell of an attached row only declared --------------------------------------
def declared_only(cell: Mapping[str, Any]) -> list[str]:
    """What a verified cell of an attached row (``--endpoint``) did not see but took from its row:
    the hardware (an endpoint reports none) and every part of the recipe the server does not
    report (``observed_vs_declared.declared_only``: e.g. TP size, parsers) or could not show
    (unobserved). Empty for any other cell: a launched row's configuration was seen whole."""
    eng = (cell.get("evidence") or {}).get("engine") or {}
    if cell.get("status") != "verified" or not isinstance(eng, dict) or eng.get("launcher") != "attach":
        return []
    ovd = eng.get("observed_vs_declared") or {}
    return ["hardware"] + [str(x) for x in (ovd.get("declared_only") or [])]
