"""Diagnosis: for a failed cell, the catalogue's causes ranked by how well they explain it.

Inputs: the cell's checks (``id``, ``outcome``, ``detail``), the row's facts (``Facts``: engine,
engine version, whether the row claims speculative decoding) and the catalogue's entries
(``knowledge.Entry``). A check id is reduced to ``feature::function`` (parameters dropped): such a
check *failed* when any of its instances failed or errored, *passed* when every instance that ran
passed; one that did not run is neither.

An entry is a candidate for a cell when the cell's feature is among the entries' failed features
(``expect_failed``) or its signature checks. Its score is the sum of (constants below):

* checks: with named signature checks, ``CHECKS`` x (signature checks failed / signature checks
  that ran), or ``CHECKS_AGAINST`` when some ran and none failed (a signature check that passed
  is evidence against); with none named (``any_check``), ``ANY_CHECK`` (the feature failed);
* codes first (``signature.codes``: ``CODE`` or ``{code, fields}``, ``failure_codes``): over the
  failing instances that carry a code (``checks[].code``, ``checks[].fields``; a failure's codes are
  its code and the codes listed in its ``fields.codes``), ``CODE`` when one of the entry's items
  matches (the code is among the failure's and every field the item names has that value, or
  holds it when the failure's field is a list; an item's ``detail`` regex, for an engine's own
  message such as a refusal, must match the failure's detail), ``CODE_MORE`` for each further item that matches
  (at most ``CODE_MORE_MAX``), ``CODE_AGAINST`` when the entry has codes, coded failures are there
  and none matches;
* looks_like, the fallback for failures without a code (records made before codes): ``LOOKS``
  when one of its regexes matches the detail of a failing instance that carries no code (Python
  ``re``, case-insensitive search, over ``id: detail``), ``LOOKS_MORE`` for each further regex that
  matches (at most ``LOOKS_MORE_MAX``), ``LOOKS_AGAINST`` when it has regexes and none matches
  (also when every failure is coded and the entry has no codes: wording is never read for them,
  and when the failures carry no code and the entry has codes only: it cannot be recognised);
* affects: ``AFFECTS`` when an item covers the row's engine and version (``knowledge.covers``);
  a version outside the range adds nothing (on a reference row: the fault catalogue reproduces
  old bugs on new engines; elsewhere such an entry is inapplicable, below);
* when: each condition the row meets (``spec_decoding``: the row claims speculative decoding;
  ``engine``) adds ``WHEN``, each it contradicts ``WHEN_AGAINST``.

Entries that are the same cause (``knowledge.Entry.cause_key``: the same kind and proxy fault,
stand-in fault or launch change; ``ID@ROW`` cases are one entry already) count as one diagnosis:
the best-scoring member speaks for the group (its id; the others in ``same_cause``), the group's
score is its score. Groups are ordered by score, then catalogue order; the diagnosis lists those
with a positive score, at most ``MAX_LISTED``. ``rank`` is pessimistic on ties: an entry's rank is
the number of groups scoring at least as much as its own group (so a three-way tie at the top is
rank 3 for each, never a lucky 1). Deterministic: no randomness, no clock, no dict-order effects.

A diagnosis claims only what it can support:

* **Applicability first** (``inapplicable``): an entry is no candidate where its cause cannot
  happen. On a reference row, the test equipment (stand-in and fault-proxy faults, launches that
  change the stand-in) can reproduce any entry, whatever engine its bug was reported against; a
  real launch change only on the engine of the rows it was made on (a vLLM template entry is no
  cause on an SGLang row). Elsewhere (GPU rows, attached deployments) test equipment never is a
  cause; a reported engine bug (``affects``) only on its engine and in its affected versions; a
  launch change (a misconfiguration) only on its rows' engine. ``when: engine`` holds everywhere.
* **A confidence floor** (``FLOOR``): a group is ``likely`` only when its score reaches it, i.e.
  more than "the feature failed" with the row's engine and conditions (``ANY_CHECK`` + ``AFFECTS``
  + ``WHEN`` stay below it); a matching code, a matching failure pattern or a failed
  signature check with a covering ``affects`` reaches it. Below it the groups are listed as ``similar`` and the cell
  says no known cause matches. Groups tied at the top stay tied (each is ``likely``, rank
  pessimistic).
* **Alike symptoms** (``fixtures/symptoms.yaml``): entries the harness cannot tell apart from the
  answers alone; a listed group names the applicable others of its class under ``alike``. The
  fault catalogue holds each fault's own entry to ``placed``: in the top ``TOP``, or outranked
  (``outranked_by``) only by groups with a member of its class.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import yaml

from .document import LIKELY, SIMILAR, likely, no_known_cause  # noqa: F401 - the document's vocabulary
from .knowledge import Entry, covers
from .paths import FIXTURES_DIR

SYMPTOMS = FIXTURES_DIR / "symptoms.yaml"

CODE = 5.0
CODE_MORE = 1.0
CODE_MORE_MAX = 2
CODE_AGAINST = -3.0
CHECKS = 3.0
CHECKS_AGAINST = -2.0
ANY_CHECK = 2.0
LOOKS = 4.0
LOOKS_MORE = 1.0
LOOKS_MORE_MAX = 2
LOOKS_AGAINST = -1.0
AFFECTS = 1.0
WHEN = 0.5
WHEN_AGAINST = -2.0
MAX_LISTED = 5
FAILED = ("failed", "error")
#: the score a cause needs to be called likely (above ANY_CHECK + AFFECTS + WHEN = 3.5: a failed
#: feature on a matching engine is not evidence of one cause over another; a matching code or
#: failure pattern reaches it)
FLOOR = 4.0


@dataclass(frozen=True)
class Facts:
    """What a diagnosis knows of the row: engine, the version compared with ``affects`` (observed
    when the row ran live, else declared), whether the row claims speculative decoding, and
    whether it is a reference row (the only rows with test equipment: stand-in, fault proxy).
    ``reference`` defaults to False: an unknown row is never diagnosed with test equipment."""
    engine: str | None = None
    version: str | None = None
    spec_decoding: bool = False
    reference: bool = False


def row_claims_spec(expect: Mapping[str, Any] | None) -> bool:
    """The row claims speculative decoding: its ``expect`` has draft_tokens or min_accept_length."""
    expect = expect or {}
    return bool(expect.get("draft_tokens") or expect.get("min_accept_length"))


def observed_version(cell: Mapping[str, Any]) -> str | None:
    """The engine version the server reported (``/version``), as the cell's evidence records it."""
    eng = (cell.get("evidence") or {}).get("engine") or {}
    obs = eng.get("observed") if isinstance(eng, dict) else None
    v = obs.get("version") if isinstance(obs, dict) else None
    return str(v) if v else None


def facts_of(cell: Mapping[str, Any], row=None) -> Facts:
    """The facts of ``cell``'s row: from the matrix ``row`` when given, else from the cell's own
    evidence (engine block: declared version and speculative decoding)."""
    eng = (cell.get("evidence") or {}).get("engine") or {}
    eng = eng if isinstance(eng, dict) else {}
    declared = eng.get("declared") if isinstance(eng.get("declared"), dict) else {}
    if row is not None:
        engine, version, spec = row.engine, row.engine_version, row_claims_spec(row.expect)
        reference = row.is_reference
    else:
        engine = cell.get("engine") or eng.get("engine")
        version = eng.get("engine_version") or declared.get("engine_version")
        spec = bool(declared.get("speculative") or declared.get("draft_tokens"))
        reference = _reference_row(cell.get("row"))
    return Facts(engine, observed_version(cell) or (str(version) if version else None), spec, reference)


def _reference_row(row_id: Any) -> bool:
    """Whether the matrix row ``row_id`` is a reference row (``Row.is_reference``); an unknown row
    is not (it then gets no test-equipment cause)."""
    row = _matrix_rows().get(str(row_id)) if row_id else None
    return bool(row is not None and row.is_reference)


def _matrix_rows() -> dict:
    global _ROWS
    if _ROWS is None:
        try:
            from .matrix import load
            _ROWS = {r.id: r for r in load().rows}
        except Exception:  # noqa: BLE001 - a diagnosis never fails a results document
            _ROWS = {}
    return _ROWS


_ROWS: dict | None = None


def _entry_engines(entry: Entry) -> set[str]:
    """The engines of the rows ``entry`` runs on (where its launch change was made)."""
    rows = _matrix_rows()
    return {rows[r].engine for r in entry.rows if r in rows}


def reproduced_on_reference(entry: Entry) -> bool:
    """A cause made by the reference rows' test equipment: a stand-in or fault-proxy fault, or a
    launch that changes the stand-in. On a reference row it can happen whatever engine a bug it
    reproduces was reported against."""
    return entry.kind in ("standin", "proxy") or "GLM_STANDIN" in entry.cause_key


def inapplicable(entry: Entry, facts: Facts) -> str | None:
    """Why ``entry`` cannot be the cause on the row of ``facts`` (None: it can)."""
    want = entry.when.get("engine")
    if want and facts.engine and str(want) != facts.engine:
        return f"needs engine {want}"
    if facts.reference and reproduced_on_reference(entry):
        return None
    if not entry.affects:
        if reproduced_on_reference(entry):
            return "test equipment of the reference rows (stand-in or fault proxy)"
        engines = _entry_engines(entry)  # a launch change: the engine of the rows it was made on
        if engines and facts.engine and facts.engine not in engines:
            return f"a launch change of {', '.join(sorted(engines))} rows"
        return None
    if facts.engine and not any(a.get("engine") == facts.engine for a in entry.affects):
        return f"a bug of {', '.join(sorted({str(a.get('engine')) for a in entry.affects}))}, not {facts.engine}"
    if not facts.reference and not any(covers(a, facts.engine, facts.version) for a in entry.affects):
        ranges = ", ".join(str(a.get("versions")) for a in entry.affects if a.get("engine") == facts.engine)
        return f"affects {facts.engine} {ranges}; the row runs {facts.version or 'an unknown version'}"
    return None


def check_outcomes(cell: Mapping[str, Any]) -> tuple[set[str], set[str], list[str]]:
    """(failed, passed, texts): ``feature::function`` failed / passed in the cell, and the
    ``id: detail`` of every failing instance (what looks_like is matched against)."""
    feature = cell.get("feature")
    by: dict[str, set[str]] = {}
    texts = []
    for k in cell.get("checks") or []:
        key = f"{feature}::{str(k.get('id', '')).split('[')[0]}"
        oc = k.get("outcome")
        if oc in FAILED:
            by.setdefault(key, set()).add("failed")
            texts.append(f"{k.get('id')}: {k.get('detail') or ''}")
        elif oc == "passed":
            by.setdefault(key, set()).add("passed")
    failed = {k for k, v in by.items() if "failed" in v}
    passed = {k for k, v in by.items() if v == {"passed"}}
    return failed, passed, texts


def coded_failures(cell: Mapping[str, Any]) -> tuple[list[tuple[set[str], dict, str]], list[str]]:
    """(coded, texts): per failing instance that carries a code, its codes (the code and any in
    ``fields.codes``), fields and detail; the ``id: detail`` of every failing instance without one."""
    coded, texts = [], []
    for k in cell.get("checks") or []:
        if k.get("outcome") not in FAILED:
            continue
        code, fields = k.get("code"), k.get("fields") if isinstance(k.get("fields"), dict) else {}
        if isinstance(code, str) and code:
            more = fields.get("codes") if isinstance(fields.get("codes"), list) else []
            coded.append(({code, *map(str, more)}, fields, str(k.get("detail") or "")))
        else:
            texts.append(f"{k.get('id')}: {k.get('detail') or ''}")
    return coded, texts


def code_matches(item: tuple[str, dict, str], codes: set[str], fields: Mapping[str, Any], detail: str = "") -> bool:
    """Whether a signature's (code, fields, detail) item matches one failure's codes, fields and
    detail (``detail``: a regex for an engine's own message under that code, e.g. its refusal)."""
    code, want, rx = item
    if code not in codes or (rx and ((r := _regex(rx)) is None or not r.search(detail))):
        return False
    for k, v in want.items():
        got = fields.get(k)
        if not (got == v or (isinstance(got, list) and v in got)):
            return False
    return True


def _item_text(item: tuple[str, dict, str]) -> str:
    code, fields, rx = item
    return (code + (" " + ", ".join(f"{k}={v!r}" for k, v in sorted(fields.items())) if fields else "")
            + (f" /{rx}/" if rx else ""))


def _regex(rx: str):
    try:
        return re.compile(rx, re.IGNORECASE)
    except re.error:
        return None


def score(entry: Entry, cell: Mapping[str, Any], facts: Facts) -> tuple[float | None, list[str]]:
    """(score, what matched) of ``entry`` for ``cell``; score None when it is no candidate."""
    feature = cell.get("feature")
    if feature not in entry.features and not any(c.split("::")[0] == feature for c in entry.signature_checks):
        return None, []
    if inapplicable(entry, facts):
        return None, []
    failed, passed, _ = check_outcomes(cell)
    coded, texts = coded_failures(cell)
    total, matched = 0.0, []
    if entry.any_check:
        total += ANY_CHECK
        matched.append(f"{feature} failed")
    else:
        hit = [c for c in entry.signature_checks if c in failed]
        ran = hit + [c for c in entry.signature_checks if c in passed]
        if hit:
            total += CHECKS * len(hit) / len(ran)
            matched += [f"check {c}" for c in hit]
        elif ran:
            total += CHECKS_AGAINST
            matched += [f"check {c} passed (against)" for c in ran]
    if entry.codes and coded:
        code_hit = [it for it in entry.codes if any(code_matches(it, c, f, d) for c, f, d in coded)]
        if code_hit:
            total += CODE + CODE_MORE * min(len(code_hit) - 1, CODE_MORE_MAX)
            matched += [f"code {_item_text(it)}" for it in code_hit]
        else:
            total += CODE_AGAINST
            matched.append(f"codes {', '.join(_item_text(it) for it in entry.codes)} not among the failures' "
                           f"{', '.join(sorted({c for cs, _, _ in coded for c in cs}))} (against)")
    text = "\n".join(texts)  # wording is read only where a failure carries no code
    rx_hit = [rx for rx in entry.looks_like if (r := _regex(rx)) is not None and r.search(text)] if texts else []
    if rx_hit:
        total += LOOKS + LOOKS_MORE * min(len(rx_hit) - 1, LOOKS_MORE_MAX)
        matched += [f"looks like /{rx}/" for rx in rx_hit]
    elif entry.looks_like and (texts or not entry.codes):
        total += LOOKS_AGAINST
    elif entry.codes and texts and not coded:  # its codes cannot be seen on failures that carry none
        total += LOOKS_AGAINST
        matched.append("codes not checked: the failures carry no code (against)")
    if entry.affects:
        hit_a = next((a for a in entry.affects if covers(a, facts.engine, facts.version)), None)
        if hit_a is not None:
            total += AFFECTS
            matched.append(f"affects {facts.engine} {hit_a.get('versions') or '(all versions)'} "
                           f"(row: {facts.version or 'version unknown'})")
    for cond, want in sorted(entry.when.items()):
        if cond == "spec_decoding":
            ok = bool(want) == facts.spec_decoding
        elif cond == "engine":
            ok = facts.engine is not None and str(want) == facts.engine
        else:
            continue  # a condition this version does not know decides nothing
        total += WHEN if ok else WHEN_AGAINST
        matched.append(f"when {cond}={want}" + ("" if ok else " (row does not meet it)"))
    return round(total, 3), matched


@functools.lru_cache(maxsize=4)
def alike_classes(path: str = str(SYMPTOMS)) -> tuple[frozenset[str], ...]:
    """The symptom classes of ``fixtures/symptoms.yaml`` (entry ids that look alike); lenient: an
    unreadable file gives none (a results document must still be written)."""
    try:
        data = yaml.safe_load(open(path, encoding="utf-8").read()) or []
    except (OSError, yaml.YAMLError):
        return ()
    return tuple(frozenset(map(str, d.get("entries") or [])) for d in data if isinstance(d, dict))


def alike(entry_id: str) -> set[str]:
    """The entries documented as looking like ``entry_id`` (not itself)."""
    return {i for c in alike_classes() if entry_id in c for i in c} - {entry_id}


def ranking(cell: Mapping[str, Any], entries: Iterable[Entry], facts: Facts) -> list[dict[str, Any]]:
    """Every candidate group, best first: ``{id, score, cause, source, fix, matched, same_cause, members}``."""
    groups: dict[str, list[tuple[float, list[str], Entry]]] = {}
    for e in entries:
        s, matched = score(e, cell, facts)
        if s is not None:
            groups.setdefault(e.cause_key, []).append((s, matched, e))
    out = []
    for members in groups.values():
        s, matched, best = max(members, key=lambda m: (m[0], -m[2].order))
        ids = [m[2].id for m in sorted(members, key=lambda m: m[2].order)]
        out.append({"id": best.id, "score": s, "cause": best.why or best.id,
                    "source": best.source or next((m[2].source for m in members if m[2].source), ""),
                    "fix": best.fix or next((m[2].fix for m in members if m[2].fix), ""), "matched": matched,
                    "same_cause": [i for i in ids if i != best.id], "_order": min(m[2].order for m in members)})
    out.sort(key=lambda g: (-g["score"], g["_order"]))
    for g in out:
        del g["_order"]
    return out


def diagnose(cell: Mapping[str, Any], entries: Iterable[Entry], facts: Facts) -> list[dict[str, Any]]:
    """The cell's diagnosis: the applicable groups with a positive score, best first, at most
    ``MAX_LISTED`` (``same_cause`` only where the group has other members), each with its
    ``confidence``: ``likely`` at or above ``FLOOR``, else ``similar`` (``no_known_cause``), and
    ``alike``: the applicable entries documented as looking the same (``fixtures/symptoms.yaml``)."""
    entries = list(entries)
    out = []
    for g in ranking(cell, entries, facts):
        if g["score"] <= 0 or len(out) >= MAX_LISTED:
            break
        if not g["same_cause"]:
            g = {k: v for k, v in g.items() if k != "same_cause"}
        g["confidence"] = LIKELY if g["score"] >= FLOOR else SIMILAR
        out.append(g)
    applicable = {e.id for e in entries if not inapplicable(e, facts)}
    for g in out:
        others = sorted((alike(g["id"]) & applicable) - {g["id"], *g.get("same_cause", [])})
        if others:
            g["alike"] = others
    return out


def base_id(case_id: str) -> str:
    """The entry id of a case id (``ID@ROW`` -> ``ID``)."""
    return case_id.split("@", 1)[0]


def _own_group(diagnosis: list[Mapping[str, Any]], entry_id: str) -> Mapping[str, Any] | None:
    eid = base_id(entry_id)
    return next((g for g in diagnosis if g.get("id") == eid or eid in (g.get("same_cause") or [])), None)


def rank_in(diagnosis: list[Mapping[str, Any]], entry_id: str) -> int | None:
    """The (pessimistic) rank of ``entry_id``'s group in a listed diagnosis; None when absent."""
    own = _own_group(diagnosis, entry_id)
    if own is None:
        return None
    return sum(1 for g in diagnosis if g.get("score", 0) >= own.get("score", 0))


def outranked_by(diagnosis: list[Mapping[str, Any]], entry_id: str) -> list[list[str]] | None:
    """The listed groups other than ``entry_id``'s that score at least as much as its own (those its
    pessimistic rank counts), best first, each as its member ids (``id``, then ``same_cause``);
    None when ``entry_id``'s group is not listed."""
    own = _own_group(diagnosis, entry_id)
    if own is None:
        return None
    return [[str(g.get("id")), *map(str, g.get("same_cause") or [])] for g in diagnosis
            if g is not own and g.get("score", 0) >= own.get("score", 0)]


#: the fault catalogue's diagnosis rule: a fault's own entry ranks at most this, or is outranked only
#: by its documented look-alikes
TOP = 3


def placed(entry_id: str, rank: int | None, above: list[list[str]] | None) -> bool:
    """Whether a fault's own entry is where its diagnosis must put it: listed, and in the top ``TOP``
    or outranked (``above``: ``outranked_by``) only by groups with a member documented as looking
    like it (``fixtures/symptoms.yaml``), i.e. honestly tied with or beaten by the same symptom,
    never by an unrelated cause. ``above`` must account for the rank (``rank - 1`` groups)."""
    if rank is None:
        return False
    if rank <= TOP:
        return True
    look = alike(base_id(entry_id))
    return above is not None and len(above) == rank - 1 and all(set(g) & look for g in above)
