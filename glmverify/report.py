"""Reports rendered from a matrix.json document: matrix.md (sign-off table)."""
from __future__ import annotations

from pathlib import Path

from .results import atomic_write

SYMBOL = {"verified": "✅ verified", "failed": "❌ failed", "inferred": "◐ inferred",
          "unsupported": "— unsupported", "not_run": "· not_run"}


def _md_escape(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def render_markdown(doc: dict) -> str:
    cells = doc["cells"]
    features = list(dict.fromkeys(c["feature"] for c in cells))
    rows: dict[str, dict] = {}
    for c in cells:
        rows.setdefault(c["row"], {"engine": c["engine"], "hardware": c["hardware"], "image": c["image"]})[c["feature"]] = c
    run = doc.get("run", {})
    out = [f"# GLM-5.2 verification matrix", "",
           f"Run `{run.get('id')}`, started {run.get('started')}, finished {run.get('finished')}; "
           f"launches {run.get('launches')}.", "",
           "| row | engine | hardware | " + " | ".join(features) + " |",
           "|---|---|---|" + "---|" * len(features)]
    for rid, r in rows.items():
        out.append(f"| {_md_escape(rid)} | {r['engine']} | {r['hardware']} | "
                   + " | ".join(SYMBOL.get(r[f]["status"], r[f]["status"]) if f in r else "" for f in features) + " |")
    out += ["", "## Basis of each cell", ""]
    for c in cells:
        out.append(f"- `{c['row']}` / `{c['feature']}`: **{c['status']}**: {_md_escape(c['basis'])}")
        for chk in c.get("checks", []):
            if chk["outcome"] != "passed":
                out.append(f"  - {chk['outcome']}: `{_md_escape(chk['id'])}`: {_md_escape(chk['detail'][:300])}")
    return "\n".join(out) + "\n"


def write_reports(results_dir: Path, doc: dict) -> None:
    atomic_write(Path(results_dir) / "matrix.md", render_markdown(doc))
