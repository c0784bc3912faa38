"""Sign-off: bind a person and a UTC time to one exact matrix.json.

``sign(DIR, by=NAME)`` writes DIR/signoff.json with the signer, the time, the sha256 and size of
DIR/matrix.json and its counts per status. ``verify(DIR)`` recomputes the digest: any change
to matrix.json after signing (a re-run, a re-merge, a hand edit) makes it fail. This is an
integrity record, not a cryptographic signature: it proves *which* matrix was signed, not who
signed it (the repository's commit of signoff.json does that). ``signoff_state(DIR)`` is what
the reports show: the caller computes it and hands it to ``report.write_reports``.

A ``flaky`` cell (``merge``: verified in the newest run after failing in an older one) is not
verified, so ``sign`` refuses a matrix with one unless the signer accepts that very cell with a
reason (``accept_flaky={"ROW/FEATURE": "why"}``, the command line's ``--accept-flaky ROW/FEATURE
--reason TEXT``). Each acceptance is recorded in signoff.json's ``accepted_flaky`` with who, when,
why and the failed runs it overrides; accepting a cell that is not flaky is refused too (a typo
must not read as an override).

Signing also keeps the signed run's per-question GSM8K outcomes (``glmverify.accuracy_baseline``)
of every row whose ``accuracy_smoke`` cell is verified, in DIR/accuracy-baseline.json (its sha256
in the record's ``accuracy_baseline``): a later run given ``--accuracy-baseline=DIR`` is held to
the last signed run, question by question.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .document import MATRIX_JSON, DocumentError, counts, declared_only, parse_document
from .util import atomic_write, utcnow

SIGNOFF_JSON = "signoff.json"
SIGNOFF_SCHEMA = 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SignoffError(ValueError):
    """Bad input: missing directory or matrix.json, corrupt signoff.json, bad signer name."""


class FlakyNotAccepted(SignoffError):
    """The matrix has flaky cells the signer did not accept with a reason: nothing was signed."""


@dataclass
class Verification:
    ok: bool
    message: str
    record: dict | None = None


def _results_dir(path: str | Path) -> Path:
    d = Path(path)
    if not d.exists():
        raise SignoffError(f"{d}: no such results directory")
    if not d.is_dir():
        raise SignoffError(f"{d}: not a directory (pass the results directory that holds {MATRIX_JSON})")
    return d


def _read_matrix(d: Path) -> tuple[bytes, dict]:
    f = d / MATRIX_JSON
    if not f.is_file():
        raise SignoffError(f"{d}: no {MATRIX_JSON} to sign")
    try:
        raw = f.read_bytes()
    except OSError as exc:
        raise SignoffError(f"{f}: cannot read: {exc.strerror or exc}") from None
    try:
        return raw, parse_document(raw, str(f))
    except DocumentError as exc:
        raise SignoffError(str(exc)) from None


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise SignoffError("--by needs the signer's name, e.g. --by 'Jane Doe <jane@example.com>'")
    if _CONTROL.search(name):
        raise SignoffError("--by must be one line of printable text")
    if len(name) > 200:
        raise SignoffError("--by is longer than 200 characters")
    return name


def flaky_cells(doc: dict) -> dict[str, dict]:
    """{"ROW/FEATURE": cell} of every flaky cell of ``doc``."""
    return {f"{c['row']}/{c['feature']}": c for c in doc.get("cells", []) if c.get("status") == "flaky"}


def _overrides(doc: dict, accept: dict[str, str], by: str, at: str) -> list[dict]:
    """The recorded acceptances of ``doc``'s flaky cells; SignoffError unless each flaky cell is
    accepted with a reason and each accepted cell is flaky."""
    flaky = flaky_cells(doc)
    not_flaky = sorted(set(accept) - set(flaky))
    if not_flaky:
        raise SignoffError(f"--accept-flaky {', '.join(not_flaky)}: not a flaky cell of this matrix"
                           + (f" (flaky: {', '.join(flaky)})" if flaky else " (it has none)"))
    blank = sorted(k for k, why in accept.items() if not (why or "").strip())
    if blank:
        raise SignoffError(f"--accept-flaky {', '.join(blank)} needs --reason TEXT: why the failure does not matter")
    open_ = [k for k in flaky if k not in accept]
    if open_:
        raise FlakyNotAccepted(
            f"{len(open_)} flaky cell(s) failed in an earlier run and were verified in a later one: "
            f"{', '.join(open_)}. They are not verified; review each failure (matrix.md, 'Flaky'), then sign with "
            + " ".join(f"--accept-flaky {k}" for k in open_) + " --reason TEXT, or re-run until the failure is explained")
    return [{"cell": k, "reason": _CONTROL.sub(" ", accept[k]).strip(), "by": by, "at": at,
             "verified_run": (flaky[k].get("flaky") or {}).get("verified_run"),
             "failed_runs": (flaky[k].get("flaky") or {}).get("failed_runs", [])} for k in flaky]


def attached_cells(doc: dict) -> dict[str, list[str]]:
    """ROW/FEATURE -> what each verified cell of an attached row only declared (``document.declared_only``)."""
    return {f"{c.get('row')}/{c.get('feature')}": d for c in doc.get("cells") or [] if (d := declared_only(c))}


def sign(results_dir: str | Path, by: str, note: str | None = None,
         accept_flaky: dict[str, str] | None = None) -> dict:
    """Write DIR/signoff.json for the current DIR/matrix.json and return the record
    (SignoffError for a flaky cell not accepted, see the module docstring)."""
    d = _results_dir(results_dir)
    by = check_name(by)
    raw, doc = _read_matrix(d)
    at = utcnow()
    accepted = _overrides(doc, dict(accept_flaky or {}), by, at)
    run = doc.get("run") or {}
    record: dict[str, Any] = {
        "schema": SIGNOFF_SCHEMA,
        "signed_by": by,
        "signed_at": at,
        "matrix_json": {"file": MATRIX_JSON, "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)},
        "run": {"id": run.get("id"), "started": run.get("started"), "finished": run.get("finished"),
                "matrix": run.get("matrix"), "merged": bool(run.get("merged"))},
        "counts": counts(doc),
        "harness": f"glmverify {__version__}",
    }
    if note:
        record["note"] = _CONTROL.sub(" ", note).strip()
    if accepted:
        record["accepted_flaky"] = accepted
    attached = attached_cells(doc)
    if attached:  # verified, but part of what the row claims was only declared: signed knowingly
        record["verified_attached"] = attached
    baseline = _accuracy_baseline(d, doc, by, at)
    if baseline:
        record["accuracy_baseline"] = baseline
    previous = _load_record(d / SIGNOFF_JSON, missing_ok=True)
    if previous:
        record["supersedes"] = {k: previous.get(k) for k in ("signed_by", "signed_at")}
        record["supersedes"]["sha256"] = (previous.get("matrix_json") or {}).get("sha256")
    atomic_write(d / SIGNOFF_JSON, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return record


def _accuracy_baseline(d: Path, doc: dict, by: str, at: str) -> dict | None:
    """Write DIR/accuracy-baseline.json from the run's outcomes of the rows whose accuracy cell is
    verified; {file, sha256, rows} for the record, or None when the run recorded none."""
    from .accuracy_baseline import BASELINE_FILE, gather, record

    verified = sorted(c["row"] for c in doc.get("cells", [])
                      if c.get("feature") == "accuracy_smoke" and c.get("status") == "verified")
    rows = [r for r in verified if r in gather(d)]
    if not rows:
        return None
    out = d / BASELINE_FILE
    record(d, out, rows=rows, run=(doc.get("run") or {}).get("id"), signed_by=by, signed_at=at)
    return {"file": BASELINE_FILE, "sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "rows": rows}


def _load_record(f: Path, missing_ok: bool = False) -> dict | None:
    if not f.exists():
        if missing_ok:
            return None
        raise FileNotFoundError(f)
    try:
        record = json.loads(f.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SignoffError(f"{f}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SignoffError(f"{f}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except OSError as exc:
        raise SignoffError(f"{f}: cannot read: {exc.strerror or exc}") from None
    sha = (record.get("matrix_json") or {}).get("sha256") if isinstance(record, dict) else None
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise SignoffError(f"{f}: not a glmverify sign-off record (no matrix_json.sha256)")
    return record


def verify(results_dir: str | Path) -> Verification:
    """Whether DIR/matrix.json is byte-for-byte the one signed in DIR/signoff.json."""
    d = _results_dir(results_dir)
    f = d / SIGNOFF_JSON
    record = _load_record(f, missing_ok=True)
    if record is None:
        return Verification(False, f"{d}: not signed off (no {SIGNOFF_JSON}); sign with: glmverify signoff --by NAME {d}")
    who = f"{record.get('signed_by')} at {record.get('signed_at')}"
    signed = record["matrix_json"]["sha256"]
    m = d / MATRIX_JSON
    if not m.is_file():
        return Verification(False, f"{m} is missing; it was signed off by {who} (sha256 {signed})", record)
    raw = m.read_bytes()
    now = hashlib.sha256(raw).hexdigest()
    if now != signed:
        msg = (f"{m} changed after sign-off: signed by {who} with sha256 {signed}, "
               f"now sha256 {now}")
        try:
            cur = counts(parse_document(raw, str(m)))
            was = record.get("counts") or {}
            diff = [f"{s} {was.get(s, 0)}→{cur.get(s, 0)}" for s in cur if cur.get(s, 0) != was.get(s, 0)]
            if diff:
                msg += f"; cells: {', '.join(diff)}"
        except DocumentError as exc:
            msg += f"; and it is no longer a valid matrix: {exc}"
        return Verification(False, msg + ". Review the matrix and sign it again.", record)
    return Verification(True, f"{m}: sign-off OK: signed by {who}, sha256 {now}", record)


def signoff_state(results_dir: str | Path) -> dict | None:
    """{ok, message, record} of DIR's sign-off checked against DIR/matrix.json (what the reports
    show), or None when DIR has no signoff.json."""
    d = Path(results_dir)
    if not (d / SIGNOFF_JSON).exists():
        return None
    try:
        v = verify(d)
    except (SignoffError, OSError) as exc:
        return {"ok": False, "message": str(exc), "record": None}
    return {"ok": v.ok, "message": v.message, "record": v.record}
