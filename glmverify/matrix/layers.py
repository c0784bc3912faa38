"""Resolution of the layered matrix.yaml into flat rows (the shape ``Row`` is built from).

A row is the merge of, lowest first:

1. ``defaults.engines[ENGINE]``                      every row of the engine
2. ``defaults.containers.engines[ENGINE]``           container launches of the engine
3. ``defaults.containers.vendors[VENDOR]``           container launches on the vendor's hardware
                                                     (``defaults.vendors`` maps vendor -> hardware)
4. the model: ``models[NAME]`` gives ``served_model`` (default: the checkpoint) and ``profile``
5. ``recipes[RECIPE]``                               one launch recipe of a guide
6. the row itself                                    id, recipe, model, image, hardware, overrides

Merge rule: mappings are merged key by key, recursively; for any other value (strings, numbers,
lists) the later layer wins whole, so a list is replaced, never appended to. Which defaults apply
is decided from the engine, launcher and hardware that layers 4-6 give.

Then: ``model`` becomes the entry's checkpoint; a cell given as a string names an entry of
``claims`` (its status, kind and basis); ``{model}`` and ``{served_model}`` in ``launch.args``
become the row's checkpoint and served name. Those two are launch-time placeholders too
(``session.expand``, ``containers._placeholders`` substitute the same values), so resolving them
here changes nothing at launch and keeps ``Row.launch`` concrete for the code that reads it
unlaunched (plans, observed-configuration checks). ``{python}``, ``{standin_model}``,
``{sglang_python}``, ``{host}``, ``{port}``, ``{repo}`` and ``{shared}`` stay for launch time.

A row whose ``model`` is not an entry of ``models`` but which sets ``profile`` itself is
self-contained (its ``model`` is the checkpoint): the flat rows that the fault catalogue and the
tests write into one-row matrices are such rows. Every error names its place in the layered file.
"""
from __future__ import annotations

import copy
from typing import Any

#: keys of a layered row that only select layers (they are not Row fields)
SELECTORS = ("recipe",)
#: launch-time placeholders the loader resolves; every other {name} is left for launch
RESOLVED_PLACEHOLDERS = ("model", "served_model")


def merge(base: Any, over: Any) -> Any:
    """``over`` on top of ``base``: mappings merged recursively, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def vendor_of(hardware: str | None, defaults: dict) -> str | None:
    for vendor, names in (defaults.get("vendors") or {}).items():
        if hardware in names:
            return vendor
    return None


def _layer_origin(layers: list[tuple[str, dict]], keys: tuple[str, ...]) -> str:
    """The layered-file path of the last layer that sets ``keys`` (where a value came from)."""
    for where, layer in reversed(layers):
        node: Any = layer
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                break
            node = node[k]
        else:
            return "/".join([where, *keys])
    return "/".join(keys)


def resolve_row(i: int, row: dict, data: dict) -> tuple[dict | None, list[str], list[tuple[str, str]]]:
    """(flat row or None, the layer paths it was merged from, errors) for ``rows/i``."""
    where = f"rows/{i}"
    defaults = data.get("defaults") or {}
    models = data.get("models") or {}
    recipes = data.get("recipes") or {}
    errors: list[tuple[str, str]] = []

    layers: list[tuple[str, dict]] = []
    recipe_name = row.get("recipe")
    if recipe_name is not None:
        if recipe_name not in recipes:
            return None, [], [(f"{where}/recipe", f"unknown recipe {recipe_name!r}; known: {sorted(recipes)}")]
        layers.append((f"recipes/{recipe_name}", recipes[recipe_name]))
    layers.append((where, {k: v for k, v in row.items() if k not in SELECTORS}))

    own: dict = {}
    for _, layer in layers:
        own = merge(own, layer)
    model_name = own.get("model")
    entry = models.get(model_name) if isinstance(model_name, str) else None
    if entry is not None:
        model_path = _layer_origin(layers, ("model",))
        layers.insert(0, (model_path, {"served_model": entry.get("served_model", entry["checkpoint"]),
                                       "profile": entry["profile"]}))
    elif "profile" not in own:
        return None, [], [(_layer_origin(layers, ("model",)) if "model" in own else where,
                           f"unknown model {model_name!r}; known: {sorted(models)}"
                           if "model" in own else "no model (a row names an entry of models)")]

    engine = own.get("engine")
    launcher = (own.get("launch") or {}).get("launcher")
    default_layers: list[tuple[str, dict]] = []
    engines = defaults.get("engines") or {}
    if engine in engines:
        default_layers.append((f"defaults/engines/{engine}", engines[engine]))
    if launcher == "container":
        containers = defaults.get("containers") or {}
        if engine in (containers.get("engines") or {}):
            default_layers.append((f"defaults/containers/engines/{engine}", containers["engines"][engine]))
        vendor = vendor_of(own.get("hardware"), defaults)
        if vendor in (containers.get("vendors") or {}):
            default_layers.append((f"defaults/containers/vendors/{vendor}", containers["vendors"][vendor]))
    layers = default_layers + layers

    flat: dict = {}
    for _, layer in layers:
        flat = merge(flat, layer)
    if entry is not None:
        flat["model"] = entry["checkpoint"]

    cells = {}
    for feat, cell in (flat.get("features") or {}).items():
        if isinstance(cell, str):
            claim = (data.get("claims") or {}).get(cell)
            if claim is None:
                errors.append((_layer_origin(layers, ("features", feat)),
                               f"unknown claim {cell!r}; claims are named under claims"))
                continue
            cell = {k: claim[k] for k in ("status", "kind", "basis") if k in claim}
        cells[feat] = cell
    if "features" in flat:
        flat["features"] = cells

    launch = flat.get("launch")
    if isinstance(launch, dict) and isinstance(launch.get("args"), list):
        subs = {"{model}": str(flat.get("model")), "{served_model}": str(flat.get("served_model"))}
        launch["args"] = [_substitute(a, subs) for a in launch["args"]]
    return flat, [w for w, _ in layers], errors


def _substitute(value: Any, subs: dict[str, str]) -> Any:
    if not isinstance(value, str):
        return value
    for key, sub in subs.items():
        value = value.replace(key, sub)
    return value


def resolve(data: dict) -> tuple[list[tuple[int, dict]], dict[str, str], list[tuple[str, str]]]:
    """((index in rows, flat row) in file order, row id -> recipe name, errors) of a schema-valid
    document; a row that cannot be resolved is reported and left out."""
    rows, recipe_of, errors = [], {}, []
    for i, row in enumerate(data.get("rows") or []):
        if not isinstance(row, dict):
            continue  # the schema reported it
        try:
            flat, _, errs = resolve_row(i, row, data)
        except (KeyError, TypeError, AttributeError):
            continue  # malformed beyond resolution: the schema reported it
        errors += errs
        if flat is not None:
            rows.append((i, flat))
            if row.get("recipe"):
                recipe_of[str(flat.get("id"))] = row["recipe"]
    return rows, recipe_of, errors
