"""Hardware identity on recorded vendor-tool outputs: a host of the wrong model cannot verify a row.

The outputs in fixtures/hardware/ are written in the tools' own formats (nvidia-smi CSV query,
amd-smi / rocm-smi JSON, the npu-smi info table). Each pair below is a host that has the right
vendor and enough devices, but the wrong model or memory: count alone would have let it through.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from glmverify import hardware
from glmverify.hardware import Inventory, check, identify
from glmverify.matrix import load

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "hardware"
PARSE = {".csv": ("nvidia", "nvidia-smi"), ".txt": ("ascend", "npu-smi")}


def recorded(name: str) -> Inventory:
    path = FIX / name
    if path.suffix == ".json":
        vendor, tool = "rocm", ("rocm-smi" if name.startswith("rocm-smi") else "amd-smi")
    else:
        vendor, tool = PARSE[path.suffix]
    raw = path.read_text()
    return Inventory(vendor, tool, "host", hardware.PARSERS[tool](raw), raw)


HOSTS = {
    "h200": "nvidia-smi-8xh200.csv", "h20": "nvidia-smi-8xh20.csv", "h20-141g": "nvidia-smi-8xh20-141g.csv",
    "h100": "nvidia-smi-8xh100.csv", "b200": "nvidia-smi-8xb200.csv", "b300": "nvidia-smi-8xb300.csv",
    "gb300": "nvidia-smi-4xgb300.csv", "mi300x": "amd-smi-8xmi300x.json", "mi300x-rocm-smi": "rocm-smi-8xmi300x.json",
    "mi325x": "amd-smi-8xmi325x.json", "mi355x": "amd-smi-8xmi355x.json",
    "ascend_a2": "npu-smi-info-a2-8x910b3.txt", "ascend_a3": "npu-smi-info-a3-8x910c.txt",
}


def test_parsers_read_model_memory_and_count():
    h200 = recorded(HOSTS["h200"]).devices
    assert len(h200) == 8 and h200[0].name == "NVIDIA H200" and round(h200[0].memory_mib) == 143771
    mi = recorded(HOSTS["mi300x"]).devices
    assert len(mi) == 8 and mi[0].name == "AMD Instinct MI300X OAM" and 180 * 1024 < mi[0].memory_mib < 200 * 1024
    legacy = recorded(HOSTS["mi300x-rocm-smi"]).devices
    assert len(legacy) == 8 and "MI300X" in legacy[0].name
    a2 = recorded(HOSTS["ascend_a2"]).devices
    assert [d.name for d in a2] == ["910B3"] * 8 and a2[0].memory_mib == 65536
    a3 = recorded(HOSTS["ascend_a3"]).devices
    assert len(a3) == 16 and {d.name for d in a3} == {"Ascend910"}  # 8 modules, two dies each


@pytest.mark.parametrize("hw,host", [
    ("h200", "h200"), ("h20", "h20"), ("h20", "h20-141g"), ("b200", "b200"), ("b300", "b300"),
    ("gb300", "gb300"), ("mi300x", "mi300x"), ("mi300x", "mi300x-rocm-smi"), ("mi325x", "mi325x"),
    ("mi355x", "mi355x"), ("ascend_a2", "ascend_a2"), ("ascend_a3", "ascend_a3"), ("h100", "h100"),
])
def test_the_right_host_passes(hw, host):
    need = 4 if hw == "gb300" else 16 if hw == "ascend_a3" else 8
    assert check(hw, need, recorded(HOSTS[host])) is None


@pytest.mark.parametrize("hw,host", [
    ("h200", "h20"), ("h200", "h20-141g"), ("h20", "h200"), ("h200", "h100"),
    ("b200", "b300"), ("b300", "b200"), ("b300", "gb300"), ("gb300", "b300"), ("gb300", "b200"),
    ("mi300x", "mi355x"), ("mi355x", "mi300x"), ("mi325x", "mi300x"), ("mi355x", "mi325x"),
    ("ascend_a2", "ascend_a3"), ("ascend_a3", "ascend_a2"),
])
def test_a_host_of_another_model_cannot_verify_the_row(hw, host):
    inv = recorded(HOSTS[host])
    need = min(len(inv.devices), 8)  # enough devices: only the identity differs
    why = check(hw, need, inv)
    assert why and hardware.SPECS[hw].label in why, why
    assert inv.devices[0].name in why, "the reason names what was seen"


def test_too_few_devices_of_the_right_model():
    why = check("h200", 8, recorded("nvidia-smi-4xh200.csv"))
    assert why and "8x" in why and "4x NVIDIA H200" in why


def test_wrong_memory_is_caught():
    inv = recorded(HOSTS["h200"])
    shrunk = Inventory("nvidia", "nvidia-smi", "host", [hardware.Device("NVIDIA H200", 81559.0)] * 8)
    assert check("h200", 8, inv) is None
    assert "GiB" in check("h200", 8, shrunk)


def test_no_tool_is_never_a_pass():
    inv = Inventory("nvidia", None, "none", error="no nvidia-smi on the host")
    assert "cannot identify" in check("h200", 8, inv)


def test_identify_asks_the_image_when_the_host_lacks_the_tool(monkeypatch):
    monkeypatch.setattr(hardware, "_device_nodes", lambda vendor: True)
    seen = []

    def host(vendor):
        return Inventory(vendor, None, "none", error="no amd-smi/rocm-smi on the host")

    def container(vendor, image):
        seen.append(image)
        inv = recorded(HOSTS["mi355x"])
        return Inventory(vendor, inv.tool, f"container:{image}", inv.devices, inv.raw)

    why, ev = identify("mi300x", 8, "vllm/vllm-openai-rocm:v0.15.1", host=host, container=container)
    assert seen == ["vllm/vllm-openai-rocm:v0.15.1"]
    assert why and "MI355X" in why and ev["where"] == "container:vllm/vllm-openai-rocm:v0.15.1"
    assert "8x AMD Instinct MI355X" in ev["seen"]


def test_probe_host_runs_the_tool_and_keeps_its_output():
    raw = (FIX / HOSTS["h20"]).read_text()
    calls = []
    inv = hardware.probe_host("nvidia", runner=lambda argv: calls.append(argv) or raw, which=lambda t: "/usr/bin/" + t)
    assert calls == [hardware.COMMANDS["nvidia-smi"]]
    assert inv.tool == "nvidia-smi" and len(inv.devices) == 8
    assert "NVIDIA H20" in inv.evidence()["seen"] and inv.evidence()["raw"] == raw
    none = hardware.probe_host("rocm", which=lambda t: None)
    assert none.tool is None


def test_every_row_hardware_has_an_identity():
    for row in load().rows:
        assert row.hardware == "cpu" or row.hardware in hardware.SPECS, row.id


def test_the_h200_and_h20_rows_differ_in_what_the_host_must_be():
    m = load()
    h200, h20 = m.row("vllm-glm52-fp8-h200"), m.row("vllm-glm52-fp8-h20")
    inv = recorded(HOSTS["h20"])
    assert check(h20.hardware, h20.accelerators, inv) is None
    assert check(h200.hardware, h200.accelerators, inv) is not None
