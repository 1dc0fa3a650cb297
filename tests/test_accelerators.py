"""The accelerator layer (hwbench.devices): every kind registered and answering in its
own terms, ROCm and AMD SMI against a faithful fake of the amdsmi library, and the
rule that nothing outside the layer branches on a device kind."""

import os
import re
import time
from pathlib import Path

import pytest
import torch

from hwbench import devices
from hwbench.case import Case
from hwbench.collectors import CollectorSet
from hwbench.devices import DeviceInfo, amd
from hwbench.devices.accelerator import Accelerator
from hwbench.spec import Settings, parse_device
from fakes.fake_amdsmi import FakeAmdGPU, FakeAmdSmi

ROOT = Path(__file__).resolve().parent.parent


def settings(**kw):
    base = dict(collectors=["host", "amdsmi"], sample_interval_s=0.02, idle_baseline_s=0.2)
    base.update(kw)
    return Settings(**base)


def run_window(cs, device, seconds=0.6, idle_s=0.2):
    cs.start()
    try:
        idle = cs.measure_idle(idle_s)
        cs.case_begin(None)
        t0 = time.monotonic()
        cs.mark("window_start", t0)
        time.sleep(seconds)
        t1 = time.monotonic()
        cs.mark("window_end", t1)
        out = cs.case_end((t0, t1), device)
    finally:
        cs.stop()
    return out, idle, t1 - t0


# ------------------------------------------------------------------- the registry
def test_every_kind_is_registered_with_its_declarations():
    assert devices.KINDS.names() == ("cpu", "cuda", "rocm", "xpu", "mps", "xla", "hpu")
    backends = {k: devices.KINDS.get(k).dist_backend for k in devices.KINDS}
    assert backends == {"cpu": "gloo", "cuda": "nccl", "rocm": "nccl", "xpu": "xccl", "mps": "gloo", "xla": "xla",
                        "hpu": "hccl"}
    for acc in devices.KINDS.values():
        assert isinstance(acc, Accelerator) and acc.label and acc.timer in ("events", "wall")


def test_discovery_here_finds_the_cpu_and_says_why_each_other_kind_is_absent():
    found = devices.discover_all()
    assert found["cpu"].present and found["cpu"].devices[0].name == "cpu"
    for kind, d in found.items():
        if kind != "cpu" and not d.present:
            assert d.reason and len(d.reason) < 200, kind
    assert devices.present()[-1].name == "cpu"  # auto takes any accelerator first


def test_device_names_are_the_kinds_users_type():
    assert parse_device("rocm:1") == ("rocm", 1) and parse_device("hpu") == ("hpu", None)
    assert parse_device("hpu:0") is None and parse_device("mps:1") is None and parse_device("xla:3") == ("xla", 3)
    assert devices.of("rocm").resolve("rocm") == "rocm:0" and devices.of("mps").resolve("mps") == "mps"


# ------------------------------------------------------------------------- ROCm
def test_rocm_devices_are_named_rocm_while_torch_calls_them_cuda(monkeypatch):
    rocm = devices.KINDS.get("rocm")
    assert rocm.torch_device("rocm:1") == torch.device("cuda:1")
    assert rocm.result_name(torch.device("cuda", 1)) == "rocm:1"
    monkeypatch.setattr(torch.version, "hip", "6.2.41133", raising=False)
    assert devices.of_torch("cuda:0").name == "rocm"  # a ROCm build: its "cuda" devices are ROCm's
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    assert devices.of_torch("cuda:0").name == "cuda"


class FakeHipCuda:
    """torch.cuda as a ROCm build of torch offers it (HIP behind the CUDA API)."""

    def __init__(self, archs):
        self.archs = archs

    def is_available(self):
        return True

    def device_count(self):
        return len(self.archs)

    def get_device_properties(self, i):
        from types import SimpleNamespace

        return SimpleNamespace(name="AMD Instinct MI300X", total_memory=192 * 2**30, gcnArchName=self.archs[i],
                               L2_cache_size=4 * 2**20)


def test_rocm_discovery_reads_the_gfx_arch_of_each_device(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", "6.2.41133", raising=False)
    prev = devices.use_module("rocm", FakeHipCuda(["gfx942:sramecc+:xnack-", "gfx90a:sramecc+:xnack-"]))
    try:
        found = devices.KINDS.get("rocm").discover()
        assert [(d.name, d.kind, d.arch) for d in found.devices] == [("rocm:0", "rocm", "gfx942"), ("rocm:1", "rocm", "gfx90a")]
        assert devices.KINDS.get("cuda").discover().reason.startswith("this torch is a ROCm build")
    finally:
        devices.use_module("rocm", prev)


MI300 = DeviceInfo("rocm:0", "rocm", "AMD Instinct MI300X", arch="gfx942")
MI355 = DeviceInfo("rocm:0", "rocm", "AMD Instinct MI355X", arch="gfx950")
MI100 = DeviceInfo("rocm:0", "rocm", "AMD Instinct MI100", arch="gfx908")
RX7900 = DeviceInfo("rocm:0", "rocm", "Radeon RX 7900 XTX", arch="gfx1100")


@pytest.mark.parametrize("precision,dev,expected", [
    ("bf16", MI300, None), ("bf16", MI100, None),
    ("fp8", MI300, None), ("fp8", MI355, None),
    ("fp8", MI100, "fp8 needs gfx942, gfx950 or gfx12 on ROCm GPUs"),
    ("fp8", RX7900, "(this GPU is gfx1100)"),
    ("int8", MI300, None), ("int8", RX7900, "int8 needs gfx90a, gfx942 or gfx950 on ROCm GPUs"),
    ("tf32", MI300, "tf32 needs a CUDA GPU with compute capability >= 8.0"),
    ("int4wo", MI300, "int4wo needs a CUDA GPU"),
])
def test_rocm_precision_gates_are_gfx_archs(precision, dev, expected):
    from hwbench import backends

    got = backends.unsupported_reason(Case("mlp:tiny", "infer", 1, precision, "eager", "rocm"), dev)
    if expected is None:
        assert got is None or "torchao" in got  # torchao may be missing here: that reason is not the arch's
    else:
        assert got is not None and expected in got, got


def test_fp8_on_gfx942_is_the_fnuz_format_and_elsewhere_the_standard_one():
    rocm = devices.KINDS.get("rocm")
    assert rocm.precision_dtype("fp8", MI300) == "float8_e4m3fnuz"
    assert rocm.precision_dtype("fp8", MI355) is None
    assert devices.KINDS.get("cuda").precision_dtype("fp8", DeviceInfo("cuda:0", "cuda", "H100", (9, 0))) is None
    assert hasattr(torch, "float8_e4m3fnuz")  # the dtype the name stands for exists in torch


# ---------------------------------------------------------------------- AMD SMI
def test_amdsmi_readings_are_converted_once_to_hwbench_units():
    g = amd.gpus(FakeAmdSmi([FakeAmdGPU(power_w=550.0, vram_used_mb=1024)]), environ={})[0]
    r = g.sample()
    assert r["gpu_util_pct"] == 97 and r["mem_busy_pct"] == 41
    assert r["memory_used_bytes"] == 1024 * 2**20 and r["power_w"] == 550.0 and g.power_source == "instant"
    assert r["sm_clock_mhz"] == 2100 and r["mem_clock_mhz"] == 1300 and r["temperature_c"] == 62
    assert r["throttle_reasons"] == 0 and r["energy_counter_j"] > 0
    d = g.describe()
    assert (d["kind"], d["vendor"], d["arch"], d["torch_device"]) == ("rocm", "amd", "gfx942", "rocm:0")
    assert d["memory_total_bytes"] == 196592 * 2**20 and d["pci_bus_id"] == "0000:0c:00.0"


def test_amdsmi_energy_from_the_accumulator_agrees_with_power():
    cs = CollectorSet.for_suite(settings(), libs={"amdsmi": FakeAmdSmi([FakeAmdGPU(power_w=550.0)])})
    out, idle, window = run_window(cs, "rocm:0")
    e = out.energy
    assert e.energy_source == "amdsmi_counter"
    assert e.energy_j == pytest.approx(550.0 * window, rel=0.01)
    assert e.energy_j_power_integrated == pytest.approx(e.energy_j, rel=0.02)
    assert idle.power_w["rocm:0"] == pytest.approx(550.0, rel=0.02) and idle.energy_source["rocm:0"] == "amdsmi_counter"
    s = out.collectors["amdsmi:0"].summary
    assert s["gpu_util_pct_mean"] == 97 and s["gpu_temperature_c_max"] == 62


def test_amdsmi_without_a_counter_integrates_the_averaged_power():
    gpu = FakeAmdGPU(power_w=300.0, has_energy_counter=False, has_current_power=False)
    cs = CollectorSet.for_suite(settings(collectors=["amdsmi"]), libs={"amdsmi": FakeAmdSmi([gpu])})
    out, _, window = run_window(cs, "rocm:0")
    assert out.energy.energy_source == "amdsmi_power"
    assert out.energy.energy_j == pytest.approx(300.0 * window, rel=0.02)
    assert cs.samplers[0].gpu.power_source == "average"


def test_amdsmi_power_throttling_is_flagged_and_unsupported_metrics_are_left_out():
    gpu = FakeAmdGPU(ppt_throttle=True, not_supported={"temp_hotspot", "temp_edge"})
    cs = CollectorSet.for_suite(settings(collectors=["amdsmi"]), libs={"amdsmi": FakeAmdSmi([gpu])})
    out, _, _ = run_window(cs, "rocm:0", seconds=0.3)
    flags = {f.flag: f.detail for f in out.flags}
    assert flags["throttled"] == "amdsmi:0: power_cap"
    assert not any("temperature" in k for k in out.collectors["amdsmi:0"].summary)
    assert {"temp_hotspot", "temp_edge"} <= cs.samplers[0].gpu.unsupported and "collector_error" not in flags


def test_amdsmi_missing_or_failing_is_a_reason_not_a_crash():
    cs = CollectorSet.for_suite(settings(collectors=["amdsmi"]), libs={"amdsmi": FakeAmdSmi([], init_error=True)})
    assert cs.samplers == [] and "no AMD GPU visible to AMD SMI" in cs.unavailable["amdsmi"]


def test_hip_visible_devices_names_the_visible_gpus():
    fake = FakeAmdSmi([FakeAmdGPU(), FakeAmdGPU(), FakeAmdGPU()])
    assert [g.torch_device for g in amd.gpus(fake, {"HIP_VISIBLE_DEVICES": "2,0"})] == ["rocm:1", None, "rocm:0"]


# ------------------------------------------------------------- no kind branches
# A branch on a device kind: comparing a device's type or kind with a kind's name, or
# calling one kind's torch module directly. The accelerator layer answers instead.
BRANCH = re.compile(r'(\.type|kind|device_type|device) *(==|!=) *"(cuda|cpu|mps|xpu|xla|hpu|rocm)"'
                    r'|startswith\("(cuda|cpu|rocm)|torch\.(cuda|xpu|mps)\.|"(cuda|cpu)" if |ProfilerActivity\.CUDA'
                    r'|in \("cpu", "cuda"\)')
# Modules not migrated yet, each with what keeps it: the test fails when one of them
# no longer branches (take it off the list) or another module starts to.
NOT_YET = {
    "hwbench/selfcheck/paths.py": "selfcheck --gpu is the CUDA half by design",
    "hwbench/selfcheck/verdicts.py": "selfcheck --gpu is the CUDA half by design",
    "hwbench/selfcheck/__main__.py": "selfcheck --gpu is the CUDA half by design",
    "hwbench/peaks.py": "the CPU peak formula (the peaks work owns this module)",
    "hwbench/analysis/derive.py": "CPU peaks: the CPU's clock and threads (names users type: 'cpu')",
    "hwbench/collectors/__init__.py": "the 'cpu' device's energy note (a name users type)",
}


def test_no_module_outside_the_layer_branches_on_a_device_kind():
    offenders = set()
    for p in sorted((ROOT / "hwbench").rglob("*.py")):
        rel = p.relative_to(ROOT).as_posix()
        if rel.startswith("hwbench/devices/"):
            continue
        if any(BRANCH.search(line) for line in p.read_text().splitlines() if not line.lstrip().startswith("#")):
            offenders.add(rel)
    assert offenders - set(NOT_YET) == set(), "branch on a device kind outside hwbench/devices/: ask the layer"
    assert set(NOT_YET) - offenders == set(), "migrated: take it off NOT_YET"
    for core in ("hwbench/worker.py", "hwbench/parallel/rank.py", "hwbench/probe/_timing.py", "hwbench/runner.py",
                 "hwbench/commands/collectives.py", "hwbench/spec.py", "hwbench/env.py", "hwbench/timing.py"):
        assert core not in offenders


# ------------------------------------------------------------------ Intel hwmon
def _hwmon_tree(root: Path, watts: float, t0: float) -> Path:
    hw = root / "class" / "drm" / "card1" / "device" / "hwmon" / "hwmon3"
    hw.mkdir(parents=True)
    (root / "class" / "drm" / "card1-DP-1").mkdir(parents=True)  # a connector, not a GPU
    (hw / "name").write_text("xe\n")
    (hw / "energy1_input").write_text("0\n")
    return hw


def test_intel_hwmon_energy_counter_gives_xpu_energy(tmp_path):
    """The counter file is rewritten as a driver would (µJ of a constant 120 W draw)
    while the collector samples it; the window's energy is power x window."""
    import threading

    hw = _hwmon_tree(tmp_path, 120.0, time.monotonic())
    t0 = time.monotonic()
    stop = threading.Event()

    def driver():
        while not stop.is_set():
            tmp = hw / ".energy1_input"  # replaced whole: a sysfs read never sees half a number
            tmp.write_text(f"{int(120.0 * (time.monotonic() - t0) * 1e6)}\n")
            os.replace(tmp, hw / "energy1_input")
            time.sleep(0.002)

    th = threading.Thread(target=driver, daemon=True)
    th.start()
    try:
        cs = CollectorSet.for_suite(settings(collectors=["intel_hwmon"]), sysfs_root=tmp_path)
        assert [s.device for s in cs.samplers] == ["xpu:0"]
        out, _, window = run_window(cs, "xpu:0")
    finally:
        stop.set()
        th.join()
    assert out.energy.energy_source == "hwmon_counter"
    assert out.energy.energy_j == pytest.approx(120.0 * window, rel=0.05)


def test_no_intel_hwmon_is_a_reason(tmp_path):
    cs = CollectorSet.for_suite(settings(collectors=["intel_hwmon"]), sysfs_root=tmp_path)
    assert "no Intel GPU" in cs.unavailable["intel_hwmon"]


# ------------------------------------------------------------- list devices
def test_list_devices_json_lists_every_kind_with_presence_and_reasons():
    import json

    from click.testing import CliRunner

    from hwbench.cli import cli

    r = CliRunner().invoke(cli, ["list", "devices", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {x["kind"]: x for x in json.loads(r.stdout)}
    assert list(rows) == ["cpu", "cuda", "rocm", "xpu", "mps", "xla", "hpu"]
    assert rows["cpu"]["present"] and rows["cpu"]["devices"] == ["cpu"] and rows["cpu"]["reason"] is None
    assert rows["cpu"]["energy_sources"] == ["rapl", "estimated"] and rows["cpu"]["peak_source"]
    for k, x in rows.items():
        assert x["present"] or x["reason"], k
        assert x["dist_backend"] and x["peak_source"], k
    assert rows["rocm"]["samplers"] == ["amdsmi"] and rows["rocm"]["energy_sources"] == ["amdsmi_counter", "amdsmi_power"]
    assert rows["hpu"]["samplers"] == ["hlml"] and rows["hpu"]["energy_sources"] == ["hlml_counter", "hlml_power"]
    assert rows["mps"]["energy_sources"] == [] and "powermetrics" in rows["mps"]["energy_note"]
    t = CliRunner().invoke(cli, ["list", "devices"], env={"COLUMNS": "80"})
    assert t.exit_code == 0 and max(len(line) for line in t.stdout.splitlines()) <= 80
