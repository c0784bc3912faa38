"""Resolution of the layered matrix.yaml into flat rows (the shape ``Row`` is built from).

A row is the merge of, lowest first:

1. ``defaults.engines[ENGINE]``                      every row of the engine
2. ``defaults.containers.engines[ENGINE]``           container launches of the engine
3. ``defaults.containers.vendors[VENDOR]``           container launches on the vendor's hardware
                                                     (``hardware.vendor_of``: ``rocm`` for MI3xx)
4. the model: ``models[NAME]`` gives ``served_model`` (default: the checkpoint) and ``profile``
5. ``recipes[RECIPE]``                               one launch recipe of a guide; a recipe may
                                                     ``extends`` another (a variant of it: the
                                                     base is merged first); a row's ``recipe``
                                                     may be a list, merged in order (a recipe,
                                                     then claim sets several recipes share)
6. the row itself                                    id, recipe, model, image, hardware, overrides

Merge rule: mappings are merged key by key, recursively; for any other value (strings, numbers,
lists) the later layer wins whole, so a list is replaced, never appended to. Which defaults apply
is decided from the engine, launcher and hardware that layers 4-6 give.

Then: ``model`` becomes the entry's checkpoint; ``{NAME}`` in a description stands for
``notes[NAME]`` (a sentence several rows share); ``source.command`` and ``source.docker`` written
as a list of lines (the seed's text, one item per line, so a long script stays compact) are joined
with newlines; ``launch.from_command: [args]`` (or ``[args, env]``) derives the launch from
``source.command``: args are the shell words after the engine's serve command (``vllm serve``,
``python3 -m sglang.launch_server``), env the ``export NAME=VALUE`` lines and ``NAME=VALUE``
prefixes before it (an explicit ``launch.env`` is merged over them); a cell given as a string
names an entry of ``claims`` (its status, kind and basis); ``{model}`` and ``{served_model}`` in ``launch.args``
become the row's checkpoint and served name. Those two are launch-time placeholders too
(``glmverify.launchers.placeholders`` gives launches the same values), so resolving them
here changes nothing at launch and keeps ``Row.launch`` concrete for the code that reads it
unlaunched (plans, observed-configuration checks). ``{python}``, ``{standin_model}``,
``{sglang_python}``, ``{host}``, ``{port}``, ``{repo}`` and ``{shared}`` stay for launch time.

A row whose ``model`` is not an entry of ``models`` but which sets ``profile`` itself is
self-contained (its ``model`` is the checkpoint): the flat rows that the fault catalogue and the
tests write into one-row matrices are such rows. Every error names its place in the layered file.
"""
from __future__ import annotations

import copy
import re
import shlex
from typing import Any

from ..hardware import vendor_of
from .model import uses_container

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


def recipe_chain(name: str, recipes: dict) -> tuple[list[str], tuple[str, str] | None]:
    """The recipe and the recipes it extends, base first; or an error at the bad ``extends``."""
    chain = [name]
    while "extends" in recipes[chain[0]]:
        base = recipes[chain[0]]["extends"]
        if base not in recipes:
            return [], (f"recipes/{chain[0]}/extends", f"unknown recipe {base!r}; known: {sorted(recipes)}")
        if base in chain:
            return [], (f"recipes/{chain[0]}/extends", f"recipes extend each other in a cycle: {' -> '.join([base, *chain])}")
        chain.insert(0, base)
    return chain, None


def resolve_row(i: int, row: dict, data: dict) -> tuple[dict | None, list[str], list[tuple[str, str]]]:
    """(flat row or None, the layer paths it was merged from, errors) for ``rows/i``."""
    where = f"rows/{i}"
    defaults = data.get("defaults") or {}
    models = data.get("models") or {}
    recipes = data.get("recipes") or {}
    errors: list[tuple[str, str]] = []

    layers: list[tuple[str, dict]] = []
    names = row.get("recipe")
    for n, recipe_name in enumerate([names] if isinstance(names, str) else names or []):
        if recipe_name not in recipes:
            at = f"{where}/recipe" + ("" if isinstance(names, str) else f"/{n}")
            return None, [], [(at, f"unknown recipe {recipe_name!r}; known: {sorted(recipes)}")]
        chain, err = recipe_chain(recipe_name, recipes)
        if err:
            return None, [], [err]
        layers += [(f"recipes/{name}", {k: v for k, v in recipes[name].items() if k != "extends"}) for name in chain]
    layers.append((where, {k: v for k, v in row.items() if k not in SELECTORS}))

    own: dict = {}
    for _, layer in layers:
        own = merge(own, layer)
    model_name = own.get("model")
    entry = models.get(model_name) if isinstance(model_name, str) else None
    if entry is not None:
        layers.insert(0, (f"models/{model_name}", {"served_model": entry.get("served_model", entry["checkpoint"]),
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
    if uses_container(launcher):
        containers = defaults.get("containers") or {}
        if engine in (containers.get("engines") or {}):
            default_layers.append((f"defaults/containers/engines/{engine}", containers["engines"][engine]))
        vendor = vendor_of(own.get("hardware"))  # hardware.SPECS: the one hardware -> vendor mapping
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

    source = flat.get("source")
    for key in ("command", "docker"):
        if isinstance(source, dict) and isinstance(source.get(key), list):
            source[key] = "\n".join(source[key])
    launch = flat.get("launch")
    if isinstance(launch, dict) and "from_command" in launch:
        derive = launch.pop("from_command")
        try:
            args, env = from_command((source or {}).get("command", ""))
        except ValueError as exc:
            errors.append((_layer_origin(layers, ("launch", "from_command")), str(exc)))
        else:
            if "args" in derive:
                launch["args"] = args
            if "env" in derive:
                launch["env"] = {**env, **launch.get("env", {})}
    if isinstance(flat.get("description"), str):
        flat["description"] = _notes(flat["description"], data.get("notes") or {},
                                     _layer_origin(layers, ("description",)), errors)
    if isinstance(launch, dict) and isinstance(launch.get("args"), list):
        subs = {"{model}": str(flat.get("model")), "{served_model}": str(flat.get("served_model"))}
        launch["args"] = [_substitute(a, subs) for a in launch["args"]]
    return flat, [w for w, _ in layers], errors


SERVE = re.compile(r"(?:^|\s)(vllm serve|python3? -m sglang\.launch_server)(?=\s)")


def from_command(command: str) -> tuple[list[str], dict[str, str]]:
    """(args, env) of a seed's serve command: the POSIX shell words after the serve command, and
    the exports and inline assignments before it."""
    text = command.replace("\\\n", " ")
    m = SERVE.search(text)
    if m is None:
        raise ValueError("no `vllm serve` or `python3 -m sglang.launch_server` in source.command")
    args = shlex.split(text[m.end(1):])
    env: dict[str, str] = {}
    before = text[:m.start(1)].split("\n")
    for line in before[:-1]:
        if line.strip().startswith("export "):
            name, _, value = line.strip()[len("export "):].partition("=")
            env[name] = "".join(shlex.split(value)) if value else ""
    for word in shlex.split(before[-1]):
        name, eq, value = word.partition("=")
        if eq and name.isidentifier():
            env[name] = value
    return args, env


def _notes(text: str, notes: dict, where: str, errors: list) -> str:
    def sub(m: re.Match) -> str:
        if m.group(1) not in notes:
            errors.append((where, f"unknown note {m.group(1)!r}; notes: {sorted(notes)}"))
            return m.group(0)
        return notes[m.group(1)]
    return re.sub(r"\{([a-z0-9][a-z0-9.-]*)\}", sub, text)


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
                names = row["recipe"]
                recipe_of[str(flat.get("id"))] = names if isinstance(names, str) else " + ".join(names)
    return rows, recipe_of, errors
