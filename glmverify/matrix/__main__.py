"""``python -m glmverify.matrix``: snapshot (regenerate the golden fixture on purpose), show, list.

    python -m glmverify.matrix snapshot fixtures/matrix_golden.json.gz [--matrix FILE]
    python -m glmverify.matrix show ROW [--matrix FILE]
    python -m glmverify.matrix list [--matrix FILE]

``glmverify matrix show|list`` is the same, through the project's CLI.
"""
from __future__ import annotations

import argparse
import sys

from . import DEFAULT_MATRIX, MatrixError, load
from .views import UnknownRow, listing, show, write_snapshot


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m glmverify.matrix", description=__doc__.splitlines()[0])
    ap.add_argument("--matrix", default=str(DEFAULT_MATRIX), help="matrix.yaml to read")
    sub = ap.add_subparsers(dest="command", required=True)
    snap = sub.add_parser("snapshot", help="write the resolved rows as the golden snapshot (gzipped JSON)")
    snap.add_argument("path")
    sh = sub.add_parser("show", help="print one resolved row in full (YAML)")
    sh.add_argument("row")
    sub.add_parser("list", help="print every row id with its recipe, engine and hardware")
    ns = ap.parse_args(argv)
    try:
        matrix = load(ns.matrix)
        if ns.command == "snapshot":
            print(f"wrote {write_snapshot(matrix, ns.path)} ({len(matrix.rows)} rows)")
        elif ns.command == "show":
            sys.stdout.write(show(matrix, ns.row))
        else:
            sys.stdout.write(listing(matrix, matrix.recipe_of))
    except (MatrixError, UnknownRow) as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
