"""The typed launch spec, its one expander, the launcher registry and the container owner labels.

* ``LaunchSpec`` holds every row's ``launch:`` exactly (a round trip through its mapping), refuses
  a field it does not know, and ``expanded`` replaces placeholders wherever a launch reads them
  (command, args, entrypoint, volumes, env values), leaving JSON braces and unknown names alone;
* both launch paths take their values from ``launchers.placeholders``: a process and a container
  launch of the same row differ only in ``{python}`` and ``{host}``; a built process launch has no
  placeholder left and listens on the port it was given;
* ``owner_state`` tells a live owner from a dead one with real processes: this process is alive,
  a finished child is dead, a reused pid (other start time) and another boot are dead, another
  host and a container without owner labels are unknown (never swept).
"""
from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys

import pytest

from glmverify import containers  # noqa: F401 - registers the container launcher
from glmverify.container_owner import OWNER_BOOT, OWNER_HOST, OWNER_PID, OWNER_STARTED, owner_labels, owner_state
from glmverify.container_spec import ContainerSpec
from glmverify.engines import HttpReadiness, ProcessEngine
from glmverify.faultproxy.cli import proxy_row
from glmverify.launchers import DEFAULTS, LAUNCHERS, launcher_for, placeholders
from glmverify.matrix import LaunchSpec, flat_document, load, parse

MATRIX = load()


def test_every_rows_launch_round_trips_through_its_mapping():
    for row in MATRIX.rows:
        assert LaunchSpec.from_mapping(row.launch.to_mapping()) == row.launch, row.id
    with pytest.raises(ValueError, match="unknown field"):
        LaunchSpec.from_mapping({"launcher": "process", "argz": ["--x"]})


def test_the_expander_reaches_every_field_a_launch_reads():
    spec = LaunchSpec(launcher="container", command=["{python}", "-m", "srv"], entrypoint=["{python}"],
                      args=["--model", "{model}", "--cfg", '{"k": 1}', "{unknown}"], volumes=["{repo}:/repo:ro"],
                      env={"HOME_OF": "{repo}/x"})
    out = spec.expanded({"python": "py", "model": "m", "repo": "/r"})
    assert out.command == ["py", "-m", "srv"] and out.entrypoint == ["py"]
    assert out.args == ["--model", "m", "--cfg", '{"k": 1}', "{unknown}"]
    assert out.volumes == ["/r:/repo:ro"] and out.env == {"HOME_OF": "/r/x"}
    assert spec.args[1] == "{model}", "expanded must not change the row's own spec"
    assert spec.mentions("repo") and not spec.mentions("standin_model")


def test_the_registry_holds_both_launchers_and_refuses_attach():
    assert set(LAUNCHERS) == {"process", "container"}
    kinds = {r.launcher for r in MATRIX.rows}
    for row in MATRIX.rows:
        if row.launcher == "attach":
            with pytest.raises(LookupError, match="--endpoint URL --row"):
                launcher_for(row)
        else:
            assert launcher_for(row).kind == row.launcher
    assert {"process", "container", "attach"} <= kinds
    odd = dataclasses.replace(MATRIX.rows[0], launch=dataclasses.replace(MATRIX.rows[0].launch, launcher="ssh"))
    with pytest.raises(ValueError, match="unknown launcher 'ssh'"):
        launcher_for(odd)


def test_process_and_container_placeholders_differ_only_in_python_and_host():
    row = MATRIX.row("reference-container")
    proc = placeholders("process", row, port=8000, standin_model="/m")
    cont = placeholders("container", row, port=8000, standin_model="/m")
    differing = {k for k in proc.keys() | cont.keys() if proc.get(k) != cont.get(k)}
    assert differing == {"python", "host"}
    assert (proc["python"], cont["python"]) == (sys.executable, "python3")
    assert (proc["host"], cont["host"]) == ("127.0.0.1", "0.0.0.0")
    assert proc["standin_model"] == "/m"
    assert "standin_model" not in placeholders("container", MATRIX.row("vllm-glm52-fp8-h200"), port=8000)


def test_a_container_spec_takes_the_container_values():
    row = MATRIX.row("reference-container")
    spec = ContainerSpec.from_row(row, "r1", standin_model="/models/standin")
    text = " ".join(spec.docker_command() + [v.cli() for v in spec.volumes] + list(spec.env.values()))
    assert "{" not in text.replace('{"', "").replace("{'", ""), text
    assert "/models/standin" in text and sys.executable not in text


def test_a_process_launch_has_no_placeholder_left_and_listens_on_its_port(tmp_path):
    doc = flat_document()
    reference = next(r for r in doc["rows"] if r["id"] == "reference")
    row = parse({**doc, "rows": [proxy_row(reference, "proxy", "http://127.0.0.1:9")]}).row("proxy")
    engine = launcher_for(row).server(row, None, log_dir=tmp_path, readiness=HttpReadiness(timeout=5))
    assert isinstance(engine, ProcessEngine)
    assert engine.command[0] == sys.executable and engine.host == DEFAULTS["process"].host
    assert not [c for c in engine.command if "{" in c], engine.command
    assert engine.command[engine.command.index("--port") + 1] == str(engine.port)
    assert engine.proc is None, "building a server must not launch it"


# ---- owners of containers ------------------------------------------------------------------------------
def test_this_process_owns_its_containers_alive():
    labels = owner_labels()
    assert labels[OWNER_HOST] == socket.gethostname() and labels[OWNER_PID].isdigit() and labels[OWNER_STARTED]
    assert owner_state(labels) == "alive"


def test_a_finished_process_is_a_dead_owner():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    labels = owner_labels(child.pid)
    assert owner_state(labels) == "alive"
    child.kill()
    child.wait()
    assert owner_state(labels) == "dead"


def test_a_reused_pid_or_another_boot_is_dead_and_another_host_unknown():
    labels = owner_labels()
    assert owner_state({**labels, OWNER_STARTED: "1"}) == "dead"             # same pid, another process
    assert owner_state({**labels, OWNER_BOOT: "another-boot"}) == "dead"     # the host rebooted since
    assert owner_state({**labels, OWNER_HOST: "another-host"}) == "unknown"  # a shared daemon's other client
    assert owner_state({}) == "unknown"                                      # not a glmverify container
