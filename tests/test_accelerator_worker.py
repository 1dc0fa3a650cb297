"""Smoke-suite cases end to end through the worker for every kind this project has no
hardware for (ROCm, XPU, MPS, TPU / XLA, Gaudi / HPU), in this process: the worker's
case function runs with the kind's torch-side module replaced by a faithful fake
(tests/fakes/fake_accelerators.py) and the kind's device names mapped to the CPU, so
the model really runs while every timing, synchronisation and memory question goes to
the fake; the collectors read the kind's energy boundary (a fake amdsmi, a hwmon tree
written as the xe driver would, a fake pyhlml) around the worker's window marks, as the runner does.
What this verifies: that the worker asks the layer, and the layer the kind's module,
for each of timing, memory and energy, and records what they answer with its source.
What it cannot: the real modules' behaviour on real devices (docs/accelerators.md)."""

import dataclasses
import os
import threading
import time
from pathlib import Path

import pytest
import torch

from hwbench import devices, worker
from hwbench.collectors import CollectorSet
from hwbench.devices import accelerator
from hwbench.spec import Settings, load_suite
from fakes.fake_accelerators import FakeMps, FakeTorchGpu, FakeTorchXla
from fakes.fake_amdsmi import FakeAmdGPU, FakeAmdSmi
from fakes.fake_pyhlml import FakeGaudi, FakePyhlml

ROOT = Path(__file__).resolve().parent.parent
SMOKE = load_suite(ROOT / "suites" / "smoke.toml")
# one smoke case per workload: inference, training, generation
PICK = (("mlp:tiny", "infer", 1, "fp32"), ("mlp:tiny", "train", 8, "fp32"), ("llama:tiny", "generate", 1, "fp32"))
CASES = [next(c for c in SMOKE.cases if (c.model, c.mode, c.batch_size, c.precision) == p) for p in PICK]
SETTINGS = SMOKE.spec.settings.model_copy(update={"min_time_s": 0.02, "min_iters": 2, "warmup_iters": 1, "check_accuracy": False})


class Conn:
    """The worker's end of the pipe: marks go to the collectors as the runner's do."""

    def __init__(self, cs):
        self.cs = cs
        self.marks = []

    def send(self, msg):
        if isinstance(msg, worker.Progress):
            self.marks.append(msg)
            if self.cs is not None:
                self.cs.mark(msg.event, msg.t)


def cpu_backed(monkeypatch, kind, module):
    """Kind ``kind`` with ``module`` as its torch-side module and its devices on the CPU."""
    base = type(devices.KINDS.get(kind))

    class CpuBacked(base):
        def torch_device(self, name):
            return torch.device("cpu")

        def available(self):
            return None

    acc = CpuBacked(module)
    monkeypatch.setitem(devices.KINDS._entries, kind, acc)
    monkeypatch.setattr(accelerator, "_BOUND", {})
    return acc


def run_cases(kind, name, cs=None):
    outs = []
    if cs is not None:
        cs.start()
    try:
        for case in CASES:
            case = dataclasses.replace(case, device=kind)
            conn = Conn(cs)
            if cs is not None:
                cs.case_begin(None)
            t = time.monotonic()
            out = worker._run(case, SETTINGS, worker.Target(name, "Fake"), conn, t, t)
            coll = None
            window = tuple(next(m.t for m in conn.marks if m.event == e) for e in ("window_start", "window_end"))
            if cs is not None:
                time.sleep(0.05)  # a reading after the window's end, as the runner's next one
                coll = cs.case_end(window, name)
            outs.append((case, out, coll, window))
    finally:
        if cs is not None:
            cs.stop()
    return outs


def check_timing(outs, fake, events: bool):
    for case, out, *_ in outs:
        assert out.status == "ok", (case.case_id, out.reason)
        raw = [t for r in out.measurement.raw_times_s for t in r]
        assert raw and all(t > 0 for t in raw)
        assert out.facts.threads_used is None  # not a host-threads kind
    assert fake.syncs > 0
    if events:
        assert fake.events >= 2 * sum(len(r) for _, o, *_ in outs for r in o.measurement.raw_times_s)


def test_rocm_cases_time_with_events_record_memory_and_amdsmi_energy(monkeypatch):
    fake = FakeTorchGpu("AMD Instinct MI300X")
    cpu_backed(monkeypatch, "rocm", fake)
    cs = CollectorSet.for_suite(Settings(collectors=["amdsmi"], sample_interval_s=0.02),
                                libs={"amdsmi": FakeAmdSmi([FakeAmdGPU(power_w=550.0)])})
    outs = run_cases("rocm", "rocm:0", cs)
    check_timing(outs, fake, events=True)
    assert fake.resets >= len(outs)
    for _, out, coll, (t0, t1) in outs:
        assert out.facts.memory_peak_bytes == fake.peak_bytes and out.facts.memory_reserved_peak_bytes == 2 * fake.peak_bytes
        assert coll.energy.energy_source == "amdsmi_counter"
        assert coll.energy.energy_j == pytest.approx(550.0 * (t1 - t0), rel=0.05)


def test_xpu_cases_time_with_events_record_memory_and_hwmon_energy(monkeypatch, tmp_path):
    fake = FakeTorchGpu("Intel(R) Data Center GPU Max 1550")
    cpu_backed(monkeypatch, "xpu", fake)
    hw = tmp_path / "class" / "drm" / "card0" / "device" / "hwmon" / "hwmon2"
    hw.mkdir(parents=True)
    (hw / "name").write_text("i915\n")
    (hw / "energy1_input").write_text("0\n")
    t0, stop = time.monotonic(), threading.Event()
    gaps = [0.0]  # the longest time between two counter updates (the driver thread's staleness)

    def driver():  # the i915 driver's counter: 200 W, in µJ
        last = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            gaps[0] = max(gaps[0], now - last)
            last = now
            tmp = hw / ".energy1_input"  # replaced whole: a sysfs read never sees half a number
            tmp.write_text(f"{int(200.0 * (now - t0) * 1e6)}\n")
            os.replace(tmp, hw / "energy1_input")
            time.sleep(0.002)

    th = threading.Thread(target=driver, daemon=True)
    th.start()
    try:
        cs = CollectorSet.for_suite(Settings(collectors=["intel_hwmon"], sample_interval_s=0.02), sysfs_root=tmp_path)
        outs = run_cases("xpu", "xpu:0", cs)
    finally:
        stop.set()
        th.join()
    check_timing(outs, fake, events=True)
    for _, out, coll, (t0, t1) in outs:
        assert out.facts.memory_peak_bytes == fake.peak_bytes
        assert coll.energy.energy_source == "hwmon_counter"
        # a reading at each edge of the window may be one driver update old: under load
        # (a loaded machine delays the driver thread) the error is at most 200 W x twice
        # the longest gap between updates, plus the interpolation's 5 %
        assert coll.energy.energy_j == pytest.approx(200.0 * (t1 - t0), rel=0.05, abs=2 * 200.0 * gaps[0])


@pytest.mark.parametrize("counter", [True, False])
def test_hpu_cases_time_with_hpu_events_record_memory_and_hlml_energy(monkeypatch, counter):
    fake = FakeTorchGpu("GAUDI3")
    cpu_backed(monkeypatch, "hpu", fake)
    hlml = FakePyhlml([FakeGaudi(power_w=600.0, has_energy_counter=counter)])
    cs = CollectorSet.for_suite(Settings(collectors=["hlml"], sample_interval_s=0.02), libs={"pyhlml": hlml})
    outs = run_cases("hpu", "hpu", cs)
    check_timing(outs, fake, events=True)
    for _, out, coll, (t0, t1) in outs:
        assert out.facts.memory_peak_bytes == fake.peak_bytes
        assert coll.energy.energy_source == ("hlml_counter" if counter else "hlml_power")
        assert coll.energy.energy_j == pytest.approx(600.0 * (t1 - t0), rel=0.05)


def test_mps_cases_synchronise_then_wall_clock_and_record_no_peak(monkeypatch):
    fake = FakeMps()
    cpu_backed(monkeypatch, "mps", fake)
    outs = run_cases("mps", "mps")
    check_timing(outs, fake, events=False)
    # one synchronisation per timed iteration at least (rule 1), no peak statistics
    assert fake.syncs >= sum(len(r) for _, o, *_ in outs for r in o.measurement.raw_times_s)
    assert all(o.facts.memory_peak_bytes is None for _, o, *_ in outs)


def test_xla_cases_cut_and_wait_for_the_graph_and_record_the_runtime_peak(monkeypatch):
    fake = FakeTorchXla()
    cpu_backed(monkeypatch, "xla", fake)
    outs = run_cases("xla", "xla:0")
    check_timing(outs, fake, events=False)
    assert fake.waits == fake.syncs  # every torch_xla.sync() is waited for before the clock is read
    assert all(o.facts.memory_peak_bytes == fake.peak_bytes for _, o, *_ in outs)
