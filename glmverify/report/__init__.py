"""Reports rendered from a matrix.json document (``write_reports`` writes all three).

* ``matrix.md``   the table for pull requests and the sign-off record (``markdown``);
* ``matrix.html`` one self-contained page for release engineers (``html``): rows grouped by
  engine and hardware, each cell coloured by status with its key figures and a drill-down to
  its checks and evidence, plus matplotlib figures (``plots``) embedded as data: URIs, styled by
  the package's ``matrix.css`` under a Content-Security-Policy that forbids every script;
* ``junit.xml``   one testsuite per cell, one testcase per check, for CI dashboards (``junit``).

``figures`` reads the numbers a cell shows from its evidence; ``common`` holds the labels and
the row grid every renderer shares. The package renders, nothing more: the sign-off state it
shows is computed by the caller (``signoff.signoff_state``) and passed in, so the reports import
nothing above ``document``.
"""
from __future__ import annotations

from pathlib import Path

from ..util import atomic_write
from .common import KIND_ORDER, STATUS_ORDER, cell_label, kind_counts
from .figures import (accept_length, decision_text, decisions, effort_levels, effort_ratio, effort_ratios,
                      key_figures, needles, per_position, reasoning_tokens)
from .html import render_html
from .junit import render_junit
from .markdown import md_code, md_text, render_markdown
from .plots import render_figures

__all__ = ["KIND_ORDER", "STATUS_ORDER", "accept_length", "cell_label", "decision_text", "decisions",
           "effort_levels", "effort_ratio", "effort_ratios", "key_figures", "kind_counts", "md_code", "md_text",
           "needles", "per_position", "reasoning_tokens", "render_figures", "render_html", "render_junit",
           "render_markdown", "write_reports"]


def write_reports(results_dir: str | Path, doc: dict, signoff: dict | None = None) -> list[Path]:
    """Write DIR/matrix.md, DIR/junit.xml and DIR/matrix.html for ``doc``; returns the paths.

    ``signoff`` is ``signoff.signoff_state(DIR)`` (None: not signed off). Each file is written as
    soon as it is rendered, so a page that cannot be drawn still leaves matrix.md behind."""
    d = Path(results_dir)
    written = []
    for name, render in (("matrix.md", lambda: render_markdown(doc, signoff)),
                         ("junit.xml", lambda: render_junit(doc)),
                         ("matrix.html", lambda: render_html(doc, signoff))):
        atomic_write(d / name, render())
        written.append(d / name)
    return written
