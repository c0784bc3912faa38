"""Where the project's files are: the one module every other may import for a path.

Paths are derived from the package location, never from the working directory, so the suites
behave the same from any cwd. Nothing here reads or creates files.
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MATRIX = REPO_ROOT / "matrix.yaml"
MATRIX_SCHEMA = PACKAGE_DIR / "matrix.schema.json"
BUILD_DIR = REPO_ROOT / "build"
# named like a checkpoint (family and no quantization tag: the BF16 release), so a server's model
# root reveals what it serves (glmverify.observed.checkpoint_traits)
STANDIN_MODEL_DIR = BUILD_DIR / "glm-5.2-standin"
FIXTURES_DIR = REPO_ROOT / "fixtures"
SUITES_DIR = REPO_ROOT / "suites"
IMAGES_DIR = REPO_ROOT / "images"
RESULTS_DIR = REPO_ROOT / "results"
VENVS_DIR = REPO_ROOT / ".venvs"
PROJECT_VENV = REPO_ROOT / ".venv"
# the shared GSM8K test set sits beside the checkout and is never copied into it
GSM8K_DEFAULT = REPO_ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
