"""Temporary matrices for tests: the project's matrix.yaml plus one more profile, model and row.

``with_profile`` is the one place that knows how the layered matrix is laid out; a test that needs
GLM-5.3 (or any other family) adds it as data, with no code edited.
"""
from __future__ import annotations

import copy

ROW = "reference-glm-5.3"
SERVED = "glm-5.3-ref"

#: GLM-5.3 as its guides would describe it: three levels, Max by default; a value that is not a
#: level falls through to Max (as GLM-5.2's template does), so "medium" and unknown values reason
#: like the default.
GLM_53_EFFORT = {
    "variable": "reasoning_effort",
    "default": "max",
    "levels": {"max": "Max", "high": "High", "low": "Low"},
    "fallback": "max",
    "system_line": "Reasoning Effort: {level}",
    "probe_values": ["max", "high", "low", "medium", "extreme-unknown"],
}


def with_profile(data: dict, name: str, effort: dict, *, model: str, served: str, row_id: str,
                 from_row: str = "reference") -> dict:
    """``data`` (the layered matrix.yaml, parsed) plus profile ``name`` (GLM-5.2's with ``effort``),
    a model entry for checkpoint ``model`` served as ``served``, and row ``row_id``: a copy of
    ``from_row`` serving that model. Pure data: the loader resolves the rest."""
    out = copy.deepcopy(data)
    prof = copy.deepcopy(out["profiles"]["glm-5.2"])
    prof["description"] = f"{name}: effort levels {', '.join(effort['levels'])} (most effort first)"
    prof["effort"] = copy.deepcopy(effort)
    out["profiles"][name] = prof
    model_key = model.rsplit("/", 1)[-1]
    out["models"][model_key] = {"checkpoint": model, "served_model": served, "profile": name}
    base = next(r for r in out["rows"] if r["id"] == from_row)
    row = copy.deepcopy(base)
    row.pop("served_model", None)  # the model entry names it
    row.update(id=row_id, model=model_key, description=f"{from_row}'s reference, serving the {name} stand-in")
    out["rows"].append(row)
    return out


def glm53_matrix() -> dict:
    """The project's matrix.yaml plus GLM-5.3 (profile, model, row ``ROW``), as a parsed document."""
    from glmverify.matrix import read_document
    from glmverify.paths import DEFAULT_MATRIX

    return with_profile(read_document(DEFAULT_MATRIX), "glm-5.3", GLM_53_EFFORT, model="glmverify/glm-5.3-standin",
                        served=SERVED, row_id=ROW)
