"""Plans and container specs, without Docker or a GPU.

* Every row is compared with its seed recipe flag by flag: the recipe's command (``source.command``),
  its docker run (``source.docker``) and its verbatim fragments (``source.fragments``) are parsed
  into flag -> values maps, and every recipe flag and value must be in the row's plan (container
  rows: the ``docker run`` argv of the ``ContainerSpec`` the launcher uses; attach rows: the args the
  cluster must deploy). The image must match. A recipe that drifts from its row is a red test.
* The spec: ports published on 127.0.0.1, run labels, devices per vendor, volumes, secrets never in
  a plan, and the docker SDK kwargs saying the same as the plan's argv.
"""
from __future__ import annotations

import json
import os
import re
import shlex
from collections import defaultdict
from pathlib import Path

import pytest

from glmverify import container_spec, containers
from glmverify.adapters import adapter_for_row
from glmverify.container_spec import (ASCEND_CONTROL_DEVICES, ASCEND_DRIVER_MOUNTS, LAUNCH_LABEL, ROW_LABEL,
                                      RUN_LABEL, ContainerSpec, Volume, image_override_var)
from glmverify.containers import sdk_kwargs
from glmverify.engines import HttpReadiness
from glmverify.redact import REDACT
from glmverify.matrix import load
from glmverify.plan import PLAN_RUN_ID, plan_argv, plan_spec, render_plan

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO.parent / "shared" / "seeds"
MATRIX = load()
ROWS = [r for r in MATRIX.rows]
CONTAINER_ROWS = [r for r in ROWS if r.launcher == "container"]
ATTACH_ROWS = [r for r in ROWS if r.launcher == "attach"]
SEED_ROWS = [r for r in ROWS if r.hardware != "cpu"]

#: docker run flags the harness deliberately does differently, with the reason.
DOCKER_DEVIATIONS = {
    "-it": "the recipe opens an interactive shell; the harness runs the engine detached",
    "-i": "interactive", "-t": "tty", "-d": "detached",
    "--rm": "the harness removes the container itself, after reading its exit state and logs",
    "--name": "the harness names containers per run (glmverify-<row>-<run>)",
    "-p": "published on 127.0.0.1 with a port Docker chooses (the container port is checked)",
    "--network": "host networking is for multi-node communication; single-node launches publish a port",
}
DOCKER_BOOL = {"-it", "-i", "-t", "-d", "--rm", "--privileged", "--init"}
DOCKER_ALIASES = {"--net": "--network", "--publish": "-p", "--volume": "-v", "--env": "-e", "--tty": "-t",
                  "--interactive": "-i", "--detach": "-d"}
#: rows whose image is a documented swap of the image in their docker recipe.
IMAGE_SWAPS = {"vllm/vllm-openai:glm52-cu129": "On CUDA 12.x, swap the image for vllm/vllm-openai:glm52-cu129."}


# ---- shell parsing -----------------------------------------------------------------------------------
def _complete(text: str) -> bool:
    if text.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
        return True
    except ValueError:
        return False


def logical_commands(text: str) -> list[list[str]]:
    """Shell text -> token lists, one per logical command (continuations and multi-line quotes joined)."""
    out, buf = [], []
    for line in text.split("\n"):
        buf.append(line)
        joined = "\n".join(buf)
        if _complete(joined):
            toks = shlex.split(joined.replace("\\\n", " "), comments=True)
            if toks:
                out.append(toks)
            buf = []
    assert not buf, f"unterminated command: {buf!r}"
    return out


def canon(value: str | None) -> str | None:
    """Compare JSON values by content, everything else as text."""
    if value is None:
        return None
    try:
        return json.dumps(json.loads(value), sort_keys=True)
    except ValueError:
        return value


def is_placeholder(value: str | None) -> bool:
    return bool(value) and bool(re.search(r"\$\w|\$\(|<[A-Za-z_ ]+>", value))


class Recipe:
    """What a seed's shell text asks for: env, docker run flags and image, engine argv."""

    def __init__(self, text: str):
        self.vars: dict[str, str] = {}
        self.env: dict[str, str] = {}
        self.docker: dict[str, list[str | None]] = defaultdict(list)
        self.image: str | None = None
        self.engine: list[str] = []
        self.launcher: list[str] = []
        for toks in logical_commands(text):
            self._command(toks)

    def _sub(self, tok: str) -> str:
        return re.sub(r"\$(\w+)", lambda m: self.vars.get(m.group(1), m.group(0)), tok)

    def _command(self, toks: list[str]) -> None:
        if toks[0] == "export":
            for t in toks[1:]:
                k, _, v = t.partition("=")
                self.env[k] = self.vars[k] = v
            return
        if toks[0] == "echo" or "|" in toks:  # output, or a $(... | ...) substitution: not a launch
            return
        env = {}
        while toks and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", toks[0]):
            k, _, v = toks.pop(0).partition("=")
            env[k] = v
        if not toks:  # plain shell variable assignments
            self.vars.update(env)
            return
        self.env.update(env)
        if toks[:2] == ["docker", "run"]:
            self._docker([self._sub(t) for t in toks[2:]])
            return
        self._engine(toks)

    def _docker(self, toks: list[str]) -> None:
        i = 0
        while i < len(toks) and toks[i].startswith("-"):
            tok = toks[i]
            name, eq, val = tok.partition("=")
            name = DOCKER_ALIASES.get(name, name)
            if eq:
                self.docker[name].append(val)
            elif name in DOCKER_BOOL:
                self.docker[name].append(None)
            else:
                i += 1
                self.docker[name].append(toks[i])
            i += 1
        self.image = toks[i]
        rest = toks[i + 1:]
        if rest and rest != ["bash"]:
            self._engine(rest)

    def _engine(self, toks: list[str]) -> None:
        self.engine, self.launcher = strip_launcher(toks)


def strip_launcher(toks: list[str]) -> tuple[list[str], list[str]]:
    """(engine argv, launcher prefix): drop ``vllm serve`` / ``python -m module`` / a bash -c wrapper."""
    for i in range(len(toks) - 1):
        if toks[i] == "vllm" and toks[i + 1] == "serve":
            return toks[i + 2:], toks[:i + 2]
        if toks[i] == "-m" and re.match(r"^(sglang\.launch_server|vllm\.entrypoints\.openai\.api_server)$", toks[i + 1]):
            return toks[i + 2:], toks[:i + 2]
    if toks and toks[0] == "serve":  # --entrypoint vllm
        return toks[1:], toks[:1]
    return toks, []


def flag_map(argv: list[str]) -> tuple[list[str], dict[str, list[str | None]]]:
    positionals, flags = [], defaultdict(list)
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("-") and len(tok) > 1:
            name, eq, val = tok.partition("=")
            if eq and tok.startswith("--"):
                flags[name].append(canon(val))
            elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                flags[tok].append(canon(argv[i + 1]))
                i += 1
            else:
                flags[tok].append(None)
        else:
            positionals.append(tok)
        i += 1
    return positionals, flags


def missing_flags(recipe_argv: list[str], plan_argv_: list[str]) -> list[str]:
    """Recipe flags/values/positionals absent from the plan (placeholders in the recipe match anything)."""
    r_pos, r_flags = flag_map(recipe_argv)
    p_pos, p_flags = flag_map(plan_argv_)
    problems = []
    for pos in r_pos:
        if pos not in p_pos and not (is_placeholder(pos) and p_pos):
            problems.append(f"positional {pos!r}")
    for name, values in r_flags.items():
        if name not in p_flags:
            problems.append(f"flag {name} missing")
            continue
        for v in values:
            if v in p_flags[name] or (is_placeholder(v) and p_flags[name]):
                continue
            problems.append(f"{name} {v!r} (plan has {p_flags[name]})")
    return problems


def norm_ws(text: str) -> str:
    return " ".join(text.split())


SEED_TEXT = {p.name: p.read_text() for p in SEEDS.glob("*.txt")} if SEEDS.is_dir() else {}
needs_seeds = pytest.mark.requires(None if SEED_TEXT else f"seed documents not found at {SEEDS}")


# ---- plan side ------------------------------------------------------------------------------------------
def plan_engine_argv(row) -> tuple[list[str], list[str]]:
    """(engine argv, launcher prefix) a row's plan runs: the container command, or an attach row's args."""
    if row.launcher == "container":
        spec = plan_spec(row)
        full = (spec.entrypoint[:1] if spec.entrypoint else []) + spec.docker_command()
        return strip_launcher(full)
    return strip_launcher(list(row.launch.command) + list(row.launch.args))


def plan_env(row) -> dict[str, str]:
    if row.launcher == "container":
        return dict(plan_spec(row).env)
    return dict(row.launch.env)


def plan_docker(row) -> tuple[dict[str, list[str | None]], str]:
    argv = plan_argv(row)
    rec = Recipe(shlex.join(argv))
    return rec.docker, rec.image


# ---- recipe vs plan, row by row ----------------------------------------------------------------------------
@needs_seeds
@pytest.mark.parametrize("row", SEED_ROWS, ids=lambda r: r.id)
def test_recipe_text_is_verbatim_from_its_seed(row):
    seed = SEED_TEXT[row.source["seed"]]
    for key in ("command", "docker"):
        if row.source.get(key):
            assert norm_ws(row.source[key]) in norm_ws(seed), f"{row.id}: source.{key} is not verbatim in {row.source['seed']}"
    for frag in row.source.get("fragments", []):
        assert norm_ws(frag) in norm_ws(seed), f"{row.id}: fragment {frag!r} is not in {row.source['seed']}"
    assert row.source.get("command") or row.source.get("fragments"), f"{row.id}: cites neither a command nor fragments"


@pytest.mark.parametrize("row", [r for r in SEED_ROWS if r.source.get("command")], ids=lambda r: r.id)
def test_plan_carries_every_recipe_flag(row):
    recipe = Recipe(row.source["command"])
    engine, _ = plan_engine_argv(row)
    # a recipe flag the row leaves out or changes must say why (launch.dropped / launch.changed)
    excused = set(row.launch.dropped) | set(row.launch.changed)
    problems = [p for p in missing_flags(recipe.engine, engine) if not any(
        p == f"flag {f} missing" or p.startswith(f"{f} ") for f in excused)]
    assert not problems, f"{row.id}: the plan drifts from the seed recipe: " + "; ".join(problems)
    env = plan_env(row)
    for k, v in recipe.env.items():
        assert k in env, f"{row.id}: recipe env {k} is not in the plan"
        assert env[k] == v or (is_placeholder(v) and env[k]), f"{row.id}: env {k}={env[k]!r}, recipe says {v!r}"


@pytest.mark.parametrize("row", [r for r in SEED_ROWS if r.source.get("fragments")], ids=lambda r: r.id)
def test_plan_carries_every_recipe_fragment(row):
    engine, _ = plan_engine_argv(row)
    for frag in row.source["fragments"]:
        problems = missing_flags(shlex.split(frag), engine)
        assert not problems, f"{row.id}: fragment {frag!r}: " + "; ".join(problems)


def _docker_recipe(row) -> Recipe | None:
    for key in ("docker", "command"):
        text = row.source.get(key)
        if text and "docker run" in text:
            return Recipe(text)
    return None


@needs_seeds
@pytest.mark.parametrize("row", [r for r in CONTAINER_ROWS if _docker_recipe(r)], ids=lambda r: r.id)
def test_plan_matches_the_recipes_docker_run(row):
    recipe = _docker_recipe(row)
    docker, image = plan_docker(row)
    spec = plan_spec(row)
    if image != recipe.image:
        sentence = IMAGE_SWAPS.get(image)
        assert sentence and sentence in SEED_TEXT[row.source["seed"]], \
            f"{row.id}: plan image {image}, recipe image {recipe.image}, and no documented swap"
    dropped = row.launch.dropped
    for name, values in recipe.docker.items():
        if name in dropped:
            continue
        values = [v for v in values if f"{name}={v}" not in dropped and f"{name} {v}" not in dropped]
        if name in DOCKER_DEVIATIONS:
            if name == "-p":
                ports = {v.rsplit(":", 1)[-1] for v in values}
                assert ports == {str(spec.port)}, f"{row.id}: recipe publishes {ports}, plan {spec.port}"
            continue
        for v in values:
            assert v in docker.get(name, []), f"{row.id}: recipe docker flag {name} {v!r} not in the plan ({docker.get(name)})"


@needs_seeds
@pytest.mark.parametrize("row", [r for r in SEED_ROWS if r.image_known], ids=lambda r: r.id)
def test_known_images_come_from_the_seeds(row):
    assert any(row.image in text for text in SEED_TEXT.values()), f"{row.id}: image {row.image} is in no seed"


@pytest.mark.parametrize("row", ATTACH_ROWS, ids=lambda r: r.id)
def test_attach_plan_says_what_to_deploy_and_how_to_verify(row):
    text = render_plan(row)
    att = row.launch.attach
    assert "attach-only" in text and f"{att['nodes']}-node" in text
    assert f"--endpoint {att['endpoint']} --row {row.id}" in text
    for key in ("command", "docker"):
        if row.source.get(key):
            assert row.source[key] in text, f"{row.id}: the plan omits the seed's {key}"
    assert row.image in text


@needs_seeds
def test_every_seed_recipe_has_a_row():
    """Every serve command and docker run in the seeds is (a prefix-complete part of) a row's
    source.command or source.docker, or is named here with the reason it is not a row of its own."""
    cited = [norm_ws(r.source[k]) for r in ROWS for k in ("command", "docker") if r.source.get(k)]
    not_rows = {
        "--headless": "a multi-node worker: a deploy step of its attach row",
        "/mnt/share/weight/GLM-5.2-0610-Provider-w8a8/": "A3 decode node 1: decode node 0's template with another weight "
                                                         "path, an erratum of row ascend-glm52-w8a8-a3-pd-decode",
        "llama-server": "llama.cpp is not an engine of the matrix",
        "vllm bench serve": "a benchmark, not a launch",
    }
    uncovered = []
    for name, text in SEED_TEXT.items():
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if not re.match(r"^\s*(([A-Z_]+=\S+ )*vllm serve|docker run|python3? -m sglang\.launch_server|\./llama)", line):
                continue
            buf = [line]
            j = i
            while not _complete("\n".join(buf)) and j + 1 < len(lines):
                j += 1
                buf.append(lines[j])
            cmd = norm_ws("\n".join(buf))
            if any(marker in cmd for marker in not_rows):
                continue
            # the seed's scraped text sometimes runs a command into the next sentence: a row citing
            # the command up to that point covers it
            if any(cmd in c or cmd.startswith(c[c.find("vllm serve"):] if "vllm serve" in c else c) for c in cited):
                continue
            uncovered.append(f"{name}:{i + 1}: {cmd[:100]}")
    assert not uncovered, "seed recipes without a row:\n" + "\n".join(uncovered)


# ---- the spec ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("row", CONTAINER_ROWS, ids=lambda r: r.id)
def test_plan_text_is_the_specs_argv(row):
    """The printed plan parses back to exactly the argv the spec renders (nothing lost in printing)."""
    text = render_plan(row)
    cmd = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    assert shlex.split(cmd.replace("\\\n", " ")) == plan_argv(row)


@pytest.mark.parametrize("row", CONTAINER_ROWS, ids=lambda r: r.id)
def test_ports_published_on_loopback_only(row):
    spec = plan_spec(row)
    argv = spec.docker_run_argv()
    assert argv[argv.index("-p") + 1] == f"127.0.0.1::{spec.port}"
    assert sdk_kwargs(spec)["ports"] == {f"{spec.port}/tcp": ("127.0.0.1",)}
    assert "host" not in (spec.network,)


def test_publish_host_can_be_widened(monkeypatch):
    monkeypatch.setenv(container_spec.PUBLISH_HOST_ENV, "0.0.0.0")
    spec = ContainerSpec.from_row(MATRIX.row("vllm-glm52-fp8-h200"), "r1")
    assert "0.0.0.0::8000" in spec.docker_run_argv()
    assert sdk_kwargs(spec)["ports"] == {"8000/tcp": ("0.0.0.0",)}


@pytest.mark.parametrize("row", CONTAINER_ROWS, ids=lambda r: r.id)
def test_labels_and_name_carry_the_run(row):
    spec = ContainerSpec.from_row(row, "20250101T000000Z-abc123")
    assert spec.labels[RUN_LABEL] == "20250101T000000Z-abc123"
    assert spec.labels[ROW_LABEL] == row.id
    assert spec.labels[LAUNCH_LABEL].startswith(row.id)
    argv = spec.docker_run_argv()
    assert f"{RUN_LABEL}=20250101T000000Z-abc123" in argv
    assert sdk_kwargs(spec)["labels"] == spec.labels
    assert "20250101T000000Z-abc123" in spec.name
    other = ContainerSpec.from_row(row, "20250101T000000Z-abc123")
    assert other.name != spec.name, "two launches of a row in one run need distinct names"


def test_run_id_comes_from_options_then_env(monkeypatch):
    class Opts:
        run_id = "from-opts"

    assert container_spec.current_run_id(Opts()) == "from-opts"
    monkeypatch.setenv("GLMVERIFY_RUN_ID", "from-env")
    assert container_spec.current_run_id(object()) == "from-env"
    monkeypatch.delenv("GLMVERIFY_RUN_ID")
    assert container_spec.current_run_id(None) == container_spec.current_run_id(None)  # one id per process


def test_nvidia_rows_get_a_gpu_device_request():
    from docker.types import DeviceRequest

    for row in [r for r in CONTAINER_ROWS if r.hardware in ("h200", "h20", "b200", "b300", "gb300")]:
        spec = plan_spec(row)
        argv = spec.docker_run_argv()
        assert argv[argv.index("--gpus") + 1] == "all", row.id
        req = sdk_kwargs(spec)["device_requests"]
        assert len(req) == 1 and isinstance(req[0], DeviceRequest)
        assert req[0]["Count"] == -1 and req[0]["Capabilities"] == [["gpu"]]
        assert "--device" not in argv and "devices" not in sdk_kwargs(spec), row.id
        assert spec.ipc == "host", row.id


def test_gpu_counts_and_ids_render_alike():
    from docker.types import DeviceRequest

    assert container_spec.gpus_cli(4) == "4"
    assert containers.device_request(4)["Count"] == 4
    assert isinstance(containers.device_request(4), DeviceRequest)
    assert container_spec.gpus_cli("0,1") == '"device=0,1"'
    assert containers.device_request("device=0,1")["DeviceIDs"] == ["0", "1"]


def test_rocm_rows_get_kfd_and_dri():
    rows = [r for r in CONTAINER_ROWS if r.hardware in ("mi300x", "mi355x")]
    assert rows
    for row in rows:
        spec = plan_spec(row)
        argv = spec.docker_run_argv()
        devices = [argv[i + 1] for i, t in enumerate(argv) if t == "--device"]
        assert devices == ["/dev/kfd", "/dev/dri"], row.id
        assert "--gpus" not in argv
        kw = sdk_kwargs(spec)
        assert kw["devices"] == ["/dev/kfd:/dev/kfd:rwm", "/dev/dri:/dev/dri:rwm"]
        assert kw["group_add"] == ["video"] and kw["cap_add"] == ["SYS_PTRACE"]
        assert kw["security_opt"] == ["seccomp=unconfined"] and kw["ipc_mode"] == "host"
        assert "device_requests" not in kw


def test_ascend_rows_get_davinci_devices_and_driver_mounts():
    rows = [r for r in CONTAINER_ROWS if r.engine == "vllm-ascend"]
    assert rows
    for row in rows:
        spec = plan_spec(row)
        n = row.accelerators
        assert spec.devices == [f"/dev/davinci{i}" for i in range(n)] + list(ASCEND_CONTROL_DEVICES), row.id
        mounts = [v.cli() for v in spec.volumes]
        for m in ASCEND_DRIVER_MOUNTS:
            assert m in mounts, (row.id, m)
        assert "/root/.cache:/root/.cache" in mounts
        kw = sdk_kwargs(spec)
        assert "device_requests" not in kw and "/dev/davinci0:/dev/davinci0:rwm" in kw["devices"]
        assert kw["shm_size"] == "1g"


def test_reference_container_is_cpu_only_with_read_only_mounts():
    row = MATRIX.row("reference-container")
    spec = plan_spec(row)
    assert spec.gpus is None and not spec.devices and spec.ipc is None
    assert spec.build == "images/reference"
    vols = {v.container: v for v in spec.volumes}
    assert vols["/models/glm-5.2-standin"].mode == "ro"
    assert vols["/opt/glmverify/glmverify"].mode == "ro"
    assert Path(vols["/opt/glmverify/glmverify"].host) == REPO / "glmverify"
    assert spec.env["PYTHONPATH"] == "/opt/glmverify"
    assert "{" not in " ".join(spec.docker_run_argv()), "placeholders left in the plan"
    reference = MATRIX.row("reference")
    # same engine arguments as row reference, except the model path and the served name
    differ = {"--model", "--served-model-name"}
    _, ref_flags = flag_map(reference.launch.args)
    _, cont_flags = flag_map(row.launch.args)
    assert {k: v for k, v in ref_flags.items() if k not in differ} == {k: v for k, v in cont_flags.items() if k not in differ}


@pytest.mark.parametrize("row", [r for r in CONTAINER_ROWS if r.engine in ("vllm", "sglang") and r.hardware != "cpu"],
                         ids=lambda r: r.id)
def test_gpu_rows_mount_the_hugging_face_cache(row):
    spec = plan_spec(row)
    assert any(v.container == "/root/.cache/huggingface" for v in spec.volumes)
    kw = sdk_kwargs(spec)
    home_cache = os.path.expanduser("~/.cache/huggingface")
    assert kw["volumes"][home_cache] == {"bind": "/root/.cache/huggingface", "mode": "rw"}
    assert "-v" in spec.docker_run_argv() and "~/.cache/huggingface:/root/.cache/huggingface" in spec.docker_run_argv()
    assert "HF_TOKEN" in spec.secret_env


def test_secrets_never_reach_the_plan(monkeypatch):
    secret = "hf_sEcReT_value_0123456789"
    monkeypatch.setenv("HF_TOKEN", secret)
    row = MATRIX.row("vllm-glm52-fp8-h200")
    spec = ContainerSpec.from_row(row, "r1")
    argv = spec.docker_run_argv()
    assert argv[argv.index("HF_TOKEN") - 1] == "-e"
    assert secret not in " ".join(argv)
    assert secret not in render_plan(row)
    assert secret not in json.dumps(spec.public())
    kw = sdk_kwargs(spec)
    assert kw["environment"]["HF_TOKEN"] == secret  # passed to the container from the host
    assert REDACT(f"token={secret}") == "token=***"


def test_sdk_kwargs_say_what_the_plan_says():
    """For every container row the SDK kwargs and the argv come from the same fields."""
    for row in CONTAINER_ROWS:
        spec = plan_spec(row)
        kw = sdk_kwargs(spec)
        argv = spec.docker_run_argv()
        rec = Recipe(shlex.join(argv))
        assert kw["image"] == rec.image == spec.image
        tail = argv[argv.index(spec.image) + 1:]
        assert (kw["command"] or []) == tail
        assert kw.get("entrypoint", [None])[0] == (rec.docker.get("--entrypoint") or [None])[0]
        env_cli = dict(v.split("=", 1) for v in rec.docker.get("-e", []) if "=" in v)
        assert {k: v for k, v in kw["environment"].items() if k not in spec.secret_env} == env_cli
        assert sorted(f"{os.path.expanduser(v.host)}:{v.container}:{v.mode}" for v in spec.volumes) == \
            sorted(f"{h}:{m['bind']}:{m['mode']}" for h, m in kw["volumes"].items())
        assert kw.get("shm_size") == (rec.docker.get("--shm-size") or [None])[0]
        assert kw.get("ipc_mode") == (rec.docker.get("--ipc") or [None])[0]
        assert kw["network"] == rec.docker["--network"][0]
        assert kw["labels"] == dict(v.split("=", 1) for v in rec.docker["--label"])
        assert [d.split(":")[0] for d in kw.get("devices", [])] == rec.docker.get("--device", [])


def test_kinds_follow_engine_and_hardware():
    def kind(row_id):
        return adapter_for_row(MATRIX.row(row_id)).container.kind

    assert kind("reference-container") == "reference" == kind("reference-sglang-container")
    assert kind("vllm-glm52-fp8-h200") == "vllm" == kind("vllm-glm52-fp8-mi300x")
    assert kind("sglang-glm52-fp8-h200-low-latency") == "sglang"
    assert kind("ascend-glm52-w8a8-a3") == "vllm-ascend"
    assert plan_spec(MATRIX.row("ascend-glm52-w8a8-a3")).kind == "vllm-ascend"
    assert plan_spec(MATRIX.row("sglang-glm52-fp8-b200-balanced")).port == 30000


def test_unknown_image_tags_are_marked_and_overridable(monkeypatch):
    row = MATRIX.row("vllm-glm52-fp8-mi300x")
    assert row.image_known is False
    var = image_override_var(row.id)
    assert var == "GLMVERIFY_IMAGE_VLLM_GLM52_FP8_MI300X"
    assert var in render_plan(row)
    monkeypatch.setenv(var, "registry.example/rocm/vllm:glm52")
    spec = plan_spec(row)
    assert spec.image == "registry.example/rocm/vllm:glm52" == sdk_kwargs(spec)["image"]
    assert "registry.example/rocm/vllm:glm52" in spec.docker_run_argv()


def test_a_spec_outside_the_matrix_renders_every_field():
    spec = ContainerSpec(row_id="adhoc", image="example/engine:1", run_id="r9", command=["serve", "--x", "1"],
                         env={"A": "b"}, secret_env=["HF_TOKEN"], volumes=[Volume("/data", "/data", "ro")], port=9000,
                         gpus=2, ipc="host", shm_size="8g", labels={"team": "qa"})
    e = containers.EngineContainer(spec, readiness=HttpReadiness(timeout=42))
    argv = spec.docker_run_argv()
    assert argv[-4:] == ["example/engine:1", "serve", "--x", "1"] or argv[-3:] == ["serve", "--x", "1"]
    for piece in (["-e", "A=b"], ["-e", "HF_TOKEN"], ["-v", "/data:/data:ro"], ["-p", "127.0.0.1::9000"],
                  ["--gpus", "2"], ["--ipc", "host"], ["--shm-size", "8g"], ["--label", "team=qa"],
                  ["--label", f"{RUN_LABEL}=r9"]):
        i = argv.index(piece[0], *([argv.index(piece[1]) - 1] if piece[1] in argv else []))
        assert argv[i:i + 2] == piece, piece
    assert e.readiness.timeout == 42 and e.readiness.path == "/health"


def test_plans_print_for_every_row_without_docker(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    for row in ROWS:
        text = render_plan(row)
        assert row.id in text


def test_docker_unavailable_names_the_reason(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    why = containers.docker_unavailable()
    assert why and why.startswith("Docker is unavailable")


def test_plan_run_id_is_fixed():
    spec = plan_spec(MATRIX.row("vllm-glm52-fp8-h200"))
    assert spec.run_id == PLAN_RUN_ID and spec.name == "glmverify-vllm-glm52-fp8-h200-plan"
