"""Collectors against faithful fakes at the device boundary (NVML, powercap), and the
real host sampler."""

import os
import random
import threading
import time
from pathlib import Path

import psutil
import pytest

from hwbench.collectors import CaseCollection, CollectorSet, SamplerKind, energy, register, unregister
from hwbench.collectors.samplers import HostSampler, NvidiaSampler, RaplSampler, Sampler
from hwbench.devices import nvidia
from hwbench.devices.rapl import Rapl
from hwbench.errors import DeviceNotSupported
from hwbench.records import CollectorsInfo, IdleBaseline
from hwbench.spec import Settings
from fakes.fake_pynvml import FakeGPU, FakeNVML


def settings(**kw):
    base = dict(collectors=["host", "nvidia", "rapl"], sample_interval_s=0.02, idle_baseline_s=0.2)
    base.update(kw)
    return Settings(**base)


def run_window(cs, device, seconds=0.6, idle_s=0.2, pid=None, devices=None):
    """Drive a CollectorSet as the runner does, around a sleep standing in for a case."""
    cs.start()
    try:
        idle = cs.measure_idle(idle_s)
        cs.case_begin(pid)
        time.sleep(0.05)
        t0 = time.monotonic()
        cs.mark("window_start", t0)
        time.sleep(seconds)
        t1 = time.monotonic()
        cs.mark("window_end", t1)
        out = cs.case_end((t0, t1), device, devices=devices)
    finally:
        cs.stop()
    return out, idle, t1 - t0


def flags_of(out):
    return {f.flag: f.detail for f in out.flags}


# ---------------------------------------------------------------------------- NVIDIA
def test_nvml_energy_from_counter_agrees_with_integrated_power():
    cs = CollectorSet.for_suite(settings(collectors=["host", "nvidia"]), nvml=FakeNVML([FakeGPU(power_w=250.0)]))
    out, idle, window = run_window(cs, "cuda:0")
    assert isinstance(out, CaseCollection)
    e = out.energy
    assert e.energy_source == "nvml_counter"
    assert e.energy_j == pytest.approx(250.0 * window, rel=0.01)
    assert e.energy_j_power_integrated == pytest.approx(e.energy_j, rel=0.02)
    assert idle.power_w["cuda:0"] == pytest.approx(250.0, rel=0.02) and idle.energy_source["cuda:0"] == "nvml_counter"
    assert e.idle_power_w == idle.power_w["cuda:0"]
    r = out.collectors["nvidia:0"]
    assert r.device == "cuda:0"
    s = r.summary
    assert s["gpu_util_pct_mean"] == 87 and s["gpu_mem_busy_pct_mean"] == 41
    assert s["gpu_memory_used_bytes_max"] == 2 * 2**30 and s["gpu_pcie_rx_bytes_per_s_mean"] == 1024000
    assert s["gpu_sm_clock_mhz_mean"] == 1980 and s["gpu_temperature_c_max"] == 55
    assert not any("counter" in k for k in s)
    assert len(r.samples["t_s"]) == len(r.samples["gpu_power_w"]) >= 10
    assert set(flags_of(out)) <= {"energy_window_short"}  # 0.6 s < 10 x 0.1 s


def test_gpu_without_energy_counter_integrates_power():
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=FakeNVML([FakeGPU(power_w=100.0, has_energy_counter=False)]))
    out, _, window = run_window(cs, "cuda:0")
    assert out.energy.energy_source == "nvml_power"
    assert out.energy.energy_j == pytest.approx(100.0 * window, rel=0.02)
    assert out.energy.energy_j_power_integrated is None


@pytest.mark.parametrize("instant,source", [(True, "instant"), (False, "average")])
def test_the_power_field_used_is_recorded(instant, source):
    nv = nvidia.NvidiaGPU(0, FakeNVML([FakeGPU(has_instant_power=instant)]))
    assert nv.power_w() == 300.0 and nv.power_source == source
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=FakeNVML([FakeGPU(has_instant_power=instant)]))
    cs.start()
    info = cs.info()
    cs.stop()
    assert isinstance(info, CollectorsInfo) and info.active == ["nvidia:0"]
    assert info.info["nvidia:0"]["power_source"] == source


def test_not_supported_metric_is_absent_and_the_rest_keeps_working():
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=FakeNVML([FakeGPU(not_supported={"pcie", "temperature"})]))
    out, _, _ = run_window(cs, "cuda:0", seconds=0.3)
    s = out.collectors["nvidia:0"].summary
    assert not any("pcie" in k or "temperature" in k for k in s)
    assert s["gpu_util_pct_mean"] == 87 and out.energy.energy_source == "nvml_counter"
    assert "collector_error" not in flags_of(out)  # unsupported is not an error
    assert {"pcie_rx_bytes_per_s", "pcie_tx_bytes_per_s", "temperature"} <= cs.samplers[0].gpu.unsupported


def test_two_gpus_each_case_gets_its_own_gpu_energy():
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=FakeNVML([FakeGPU(power_w=100.0), FakeGPU(power_w=400.0)]))
    out, _, window = run_window(cs, "cuda:1")
    assert out.energy.energy_j == pytest.approx(400.0 * window, rel=0.01)
    assert set(out.collectors) == {"nvidia:0", "nvidia:1"}


def test_a_parallel_case_on_several_gpus_gets_the_sum_of_their_energy():
    fake = FakeNVML([FakeGPU(power_w=100.0), FakeGPU(power_w=400.0), FakeGPU(power_w=50.0)])
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=fake)
    out, idle, window = run_window(cs, "cuda:0", devices=("cuda:0", "cuda:1"))
    assert out.energy.energy_j == pytest.approx(500.0 * window, rel=0.01)  # not GPU 2's
    assert out.energy.energy_source == "nvml_counter"
    assert out.energy.idle_power_w == pytest.approx(idle.power_w["cuda:0"] + idle.power_w["cuda:1"])
    assert out.energy.energy_j_power_integrated == pytest.approx(500.0 * window, rel=0.05)


def test_a_parallel_case_with_a_gpu_lacking_energy_has_none_and_says_why():
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=FakeNVML([FakeGPU(power_w=100.0)]))
    out, _, _ = run_window(cs, "cuda:0", devices=("cuda:0", "cuda:1"), seconds=0.3)
    assert out.energy is None and "no energy source for cuda:1" in flags_of(out)["energy_unavailable"]


def test_gpu_not_visible_to_torch_is_sampled_but_never_used_for_energy():
    gpus = nvidia.gpus(FakeNVML([FakeGPU(power_w=100.0), FakeGPU(power_w=400.0)]))
    gpus[0].torch_device = None  # e.g. hidden by CUDA_VISIBLE_DEVICES; torch calls the other one cuda:0
    gpus[1].torch_device = "cuda:0"
    cs = CollectorSet([NvidiaSampler(g) for g in gpus], settings(collectors=["nvidia"]))
    out, _, window = run_window(cs, "cuda:0", seconds=0.3)
    assert out.energy.energy_j == pytest.approx(400.0 * window, rel=0.01)
    assert out.collectors["nvidia:0"].device is None and out.collectors["nvidia:0"].n_samples > 0
    assert any("nvidia:0 is not visible to torch" in n for n in cs.machine_notes())


def test_throttling_and_reading_errors_are_flagged():
    fake = FakeNVML([FakeGPU(throttle=0x4 | 0x40)])
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=fake)
    cs.start()
    cs.case_begin(None)
    fake.gpus[0].fail_calls = 2
    t0 = time.monotonic()
    time.sleep(0.2)
    out = cs.case_end((t0, time.monotonic()), "cuda:0")
    cs.stop()
    flags = flags_of(out)
    assert "sw_power_cap" in flags["throttled"] and "hw_thermal" in flags["throttled"]
    assert "nvidia:0: 2 failed readings" in flags["collector_error"]


def test_gpm_metrics_when_supported():
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=FakeNVML([FakeGPU(gpm=True)]))
    out, _, _ = run_window(cs, "cuda:0", seconds=0.3)
    s = out.collectors["nvidia:0"].summary
    assert s["gpu_dram_bw_util_pct_mean"] == 62.5 and s["gpu_tensor_active_pct_mean"] == 48.0


def test_no_nvidia_gpu_is_unavailable_with_the_reason():
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=FakeNVML([]))
    assert cs.unavailable == {"nvidia": "no NVIDIA GPU visible to NVML"}
    assert CollectorSet.for_suite(settings(collectors=[])) is None


# ----------------------------------------------------------------------------- RAPL
def make_powercap(root: Path, packages=(("intel-rapl:0", "package-0", 1000), ("intel-rapl:1", "package-1", 5000)), max_uj=2**32):
    for zone, name, uj in packages:
        d = root / zone
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text(f"{uj}\n")
        (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    sub = root / "intel-rapl:0:0"  # core sub-domain: part of package-0, never summed
    sub.mkdir()
    (sub / "name").write_text("core\n")
    (sub / "energy_uj").write_text("999999999\n")
    (sub / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return root


def test_rapl_sums_packages_only_and_handles_wraparound(tmp_path):
    root = make_powercap(tmp_path, max_uj=1_000_000)
    r = Rapl(root)
    assert [d.name for d in r.domains] == ["package-0", "package-1"]
    assert r.energy_j() == 0.0
    (root / "intel-rapl:0" / "energy_uj").write_text("501000\n")  # +0.5 J
    (root / "intel-rapl:1" / "energy_uj").write_text("995000\n")  # +0.99 J
    assert r.energy_j() == pytest.approx(1.49)
    (root / "intel-rapl:1" / "energy_uj").write_text("5000\n")  # wrapped: +0.01 J
    assert r.energy_j() == pytest.approx(1.50)


def test_rapl_unreadable_or_absent_is_reported(tmp_path, monkeypatch):
    with pytest.raises(DeviceNotSupported, match="no RAPL package domains"):
        Rapl(tmp_path / "none")
    root = make_powercap(tmp_path / "pc")
    real = Path.read_text

    def deny(self, *a, **k):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(DeviceNotSupported, match="permission denied; needs root"):
        Rapl(root)


def test_rapl_energy_for_a_cpu_case_is_interpolated_to_the_marks(tmp_path):
    root = make_powercap(tmp_path, packages=(("intel-rapl:0", "package-0", 0),))
    cs = CollectorSet.for_suite(settings(collectors=["host", "rapl"], sample_interval_s=0.5), powercap_root=root)
    cs.start()
    assert not any("estimated" in n for n in cs.machine_notes())
    cs.case_begin(None)
    time.sleep(0.05)
    t0 = time.monotonic()
    cs.mark("window_start", t0)
    cs._pending[-1].result(30)  # the mark's reading is taken before the counter moves (at any load)
    (root / "intel-rapl:0" / "energy_uj").write_text("30000000\n")  # 30 J during the window
    cs._thread.call(cs._thread.read_all, 30)  # a reading of 30 J before the window ends (at any load)
    t1 = time.monotonic()
    cs.mark("window_end", t1)
    assert cs.marks == {"window_start": t0, "window_end": t1}
    out = cs.case_end((t0, t1), "cpu")
    cs.stop()
    assert out.energy.energy_source == "rapl"
    assert out.energy.energy_j == pytest.approx(30.0, rel=0.05)
    assert out.energy.energy_window_s == pytest.approx(t1 - t0)
    assert "energy_estimated" not in flags_of(out)


class _Counter(threading.Thread):
    """A powercap counter advancing at ``watts``, rewritten atomically every ms."""

    def __init__(self, path: Path, watts: float):
        super().__init__(daemon=True)
        self.path, self.watts, self.t0 = path, watts, time.monotonic()
        self.done = threading.Event()

    def run(self):
        tmp = self.path.with_suffix(".tmp")
        while not self.done.is_set():
            tmp.write_text(f"{int(self.watts * (time.monotonic() - self.t0) * 1e6)}\n")
            os.replace(tmp, self.path)
            time.sleep(0.001)


class _OneThreadOnly(Sampler):
    """Counts calls made off its first thread or while another call is in progress."""

    name = "checked"

    def __init__(self):
        self.owner = None
        self.busy = threading.Lock()
        self.violations = 0
        self.calls = 0

    def _check(self):
        me = threading.get_ident()
        if self.owner is None:
            self.owner = me
        if me != self.owner or not self.busy.acquire(blocking=False):
            self.violations += 1
            return False
        return True

    def read(self):
        ok = self._check()
        self.calls += 1
        time.sleep(0.0005)  # widen the window a concurrent caller would hit
        if ok:
            self.busy.release()
        return {"x_w": 1.0}

    def watch(self, pid):
        if self._check():
            self.busy.release()


def test_every_sampler_call_is_made_by_the_one_sampling_thread(tmp_path, monkeypatch):
    """Regression: case_begin / mark / case_end used to read samplers on the caller's
    thread while the loop read them too; a stale RAPL read then looked like a counter
    wrap (3.2 J became 1.3 GJ)."""
    root = make_powercap(tmp_path, packages=(("intel-rapl:0", "package-0", 0),))
    real, jitter = Path.read_text, random.Random(0)

    def sysfs_read(self, *a, **k):  # a sysfs read takes a variable time, as on real machines
        v = real(self, *a, **k)
        if self.name == "energy_uj":
            time.sleep(jitter.random() * 0.003)
        return v

    monkeypatch.setattr(Path, "read_text", sysfs_read)
    counter = _Counter(root / "intel-rapl:0" / "energy_uj", watts=10.0)
    counter.start()
    checked = _OneThreadOnly()
    cs = CollectorSet([checked, RaplSampler(Rapl(root))], settings(sample_interval_s=0.01))
    cs.start()
    try:
        uj = counter.path.read_text
        for i in range(60):
            before = int(uj())
            cs.case_begin(os.getpid())
            t0 = time.monotonic()
            cs.mark("window_start", t0)
            time.sleep(0.002 * (i % 5))
            t1 = time.monotonic()
            cs.mark("window_end", t1)
            out = cs.case_end((t0, t1), "cpu")
            advance = (int(uj()) - before) / 1e6  # J, from case_begin to after case_end
            assert -1e-9 <= out.energy.energy_j <= advance + 1e-9, (i, out.energy.energy_j, advance)
    finally:
        cs.stop()
        counter.done.set()
        counter.join()
    assert checked.calls > 120 and checked.violations == 0
    assert checked.owner != threading.get_ident()


# ------------------------------------------------------------------- host, estimate
def _burn(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_cpu_load_comes_from_cpu_time_deltas_and_drives_the_estimate(tmp_path):
    cs = CollectorSet.for_suite(settings(collectors=["host", "rapl"], cpu_tdp_w=100.0), powercap_root=tmp_path / "none")
    assert "rapl" in cs.unavailable
    cs.start()
    notes = cs.machine_notes()
    assert any(n.startswith("CPU energy is estimated: no RAPL (no RAPL package domains") for n in notes)
    cs.case_begin(os.getpid())  # this process is the "worker": it burns one core
    t0 = time.monotonic()
    cs.mark("window_start", t0)
    c0 = time.process_time()
    _burn(0.4)
    got = 100 * (time.process_time() - c0) / 0.4  # what the core gave us: under other load, < 100 %
    t1 = time.monotonic()
    cs.mark("window_end", t1)
    out = cs.case_end((t0, t1), "cpu")
    cs.stop()
    window = t1 - t0
    s = out.collectors["host"].summary
    ncpu = psutil.cpu_count()
    # one busy core: ~100 % for the worker (what it got), at least that share of the machine
    assert 0.7 * got <= s["proc_cpu_pct_mean"] <= 130
    assert 0.7 * got / ncpu <= s["cpu_util_pct_mean"] <= 100
    # sampled percentages are summarised as *_sampled_*, never as the window's figure; a
    # loaded machine may take no sampled percentage inside a 0.4 s window: then none
    r = out.collectors["host"]
    sampled = [p for t, p in zip(r.samples["t_s"], r.samples.get("cpu_util_pct", [])) if p is not None
               and 0 <= t <= window]
    assert ("cpu_util_pct_sampled_max" in s) == bool(sampled)
    assert "cpu_util_pct_max" not in s and s["mem_used_bytes_max"] > 0
    e = out.energy
    assert e.energy_source == "estimated"
    load = s["cpu_util_pct_mean"] / 100
    assert e.energy_j == pytest.approx(100.0 * (0.3 + 0.7 * load) * window, rel=0.05)
    assert "cpu_tdp_w = 100 W" in e.estimate_basis and "CPU-time deltas" in e.estimate_basis
    assert "cpu_tdp_w = 100 W" in flags_of(out)["energy_estimated"]


def test_short_windows_are_not_dominated_by_quantised_edge_readings():
    """Readings milliseconds apart used to give 0 / 50 / 100 % and dominate a short
    window's mean; sampled percentages now each span at least half an interval, and the
    window's mean comes from CPU-time deltas, within what the machine can do."""
    cs = CollectorSet.for_suite(settings(collectors=["host"], sample_interval_s=0.1))
    cs.start()
    cs.case_begin(os.getpid())
    t0 = time.monotonic()
    cs.mark("window_start", t0)
    cs._pending[-1].result(10)  # the start mark's reading, inside the window at any load
    time.sleep(0.003)
    t1 = time.monotonic()
    cs.mark("window_end", t1)
    out = cs.case_end((t0, t1), "cpu")
    cs.stop()
    r = out.collectors["host"]
    assert r.n_samples >= 1 and len(r.samples["t_s"]) >= 3
    sampled = r.samples.get("cpu_util_pct", [None] * len(r.samples["t_s"]))
    last = None
    for t, pct in zip(r.samples["t_s"], sampled):
        if pct is not None:
            assert last is None or t - last >= 0.05 - 1e-3
        if pct is not None or last is None:
            last = t
    assert all(v is None for v in sampled[1:])  # all within ms of the first
    assert 0 <= r.summary["cpu_util_pct_mean"] <= 100
    assert 0 <= r.summary["proc_cpu_pct_mean"] <= 100 * psutil.cpu_count()


def test_idle_baseline_records_cpu_load_and_flags_a_busy_machine():
    cs = CollectorSet.for_suite(settings(collectors=["host"], cpu_tdp_w=50.0))
    cs.start()
    burner = threading.Thread(target=_burn, args=(0.6,))
    burner.start()
    idle = cs.measure_idle(0.3)
    burner.join()
    cs.stop()
    assert isinstance(idle, IdleBaseline)
    assert idle.cpu_util_pct >= 100 * 0.7 / psutil.cpu_count()
    assert idle.energy_source["cpu"] == "estimated" and 15.0 <= idle.power_w["cpu"] <= 50.0
    (flag,) = [f for f in idle.flags if f.flag == "idle_not_idle"]
    assert "threshold 10 %" in flag.detail


@pytest.mark.parametrize("seconds", [0.001, 0.0])
def test_idle_baseline_shorter_than_an_interval_does_not_crash(seconds):
    cs = CollectorSet.for_suite(settings(collectors=["host", "nvidia"], sample_interval_s=0.5), nvml=FakeNVML([FakeGPU(power_w=200.0)]))
    cs.start()
    idle = cs.measure_idle(seconds)
    cs.stop()
    if seconds == 0:
        assert idle is None
        return
    assert idle.duration_s > 0 and idle.power_w["cuda:0"] == pytest.approx(200.0, rel=0.05)
    assert "idle_baseline_short" in {f.flag for f in idle.flags}
    assert "idle_not_idle" not in {f.flag for f in idle.flags}  # too short to judge


def test_energy_helpers():
    samples = [(0.0, {"c": 0.0, "p": 100.0}), (1.0, {"c": 100.0, "p": 100.0}), (2.0, {"c": 300.0, "p": 300.0})]
    assert energy.counter_delta(samples, "c", 0.5, 1.5) == pytest.approx(150.0)  # 50 -> 200
    assert energy.counter_delta(samples, "c", -1, 1.5) is None
    assert energy.integrate(samples, "p", 0.0, 2.0) == pytest.approx(100 + 200)
    assert energy.integrate(samples, "p", 0.5, 1.0) == pytest.approx(50.0)
    assert energy.integrate(samples, "p", -1.0, 0.0) == pytest.approx(100.0)  # held flat before the first
    assert energy.stats([1.0, 2.0, 3.0, float("nan")]) == {"mean": 2.0, "max": 3.0, "p95": pytest.approx(2.9)}


def test_a_sampler_that_raises_is_a_collector_error_not_a_crash():
    class Broken(Sampler):
        name = "broken"

        def read(self):
            raise OSError("sensor gone")

    cs = CollectorSet([Broken()], settings(collectors=["host"]))
    cs.start()
    cs.case_begin(None)
    t0 = time.monotonic()
    cs.mark("window_start", t0)
    out = cs.case_end((t0, time.monotonic()), "cpu")
    cs.stop()
    assert flags_of(out)["collector_error"].startswith("broken: ") and out.energy is None


# -------------------------------------------------------------------------- registry
class _ConstantPower(Sampler):
    name = "fake_power"
    device = "fake:0"

    def read(self):
        return {"power_w": 42.0}

    def energy_sources(self):
        # a constant is a model, not a measurement: declared as an estimate
        return [energy.PowerEnergy("estimated", "fake:0", "power_w", 0.01)]


def test_a_registered_sampler_kind_is_sampled_summarised_and_used_for_energy():
    register(SamplerKind("fake_power", lambda b: [_ConstantPower()], "a fake accelerator 'fake:0'", "constant 42 W"))
    try:
        # Settings lists the built-in kinds only; a plug-in bypasses that validation
        s = settings(collectors=["host"]).model_copy(update={"collectors": ["host", "fake_power"]})
        cs = CollectorSet.for_suite(s)
        assert [x.name for x in cs.samplers] == ["host", "fake_power"]
        out, idle, window = run_window(cs, "fake:0", seconds=0.2)
        assert idle.power_w["fake:0"] == pytest.approx(42.0)
        assert out.collectors["fake_power"].summary["power_w_mean"] == 42.0
        assert out.energy.energy_j == pytest.approx(42.0 * window)
        assert out.energy.idle_power_w == pytest.approx(42.0)
        assert "energy_estimated" in flags_of(out)
    finally:
        unregister("fake_power")
    assert "fake_power" in CollectorSet.for_suite(s).unavailable


def test_the_host_sampler_counts_the_cpu_time_of_the_workers_descendants():
    """A parallel case's ranks are children of the elastic agent the sampler follows;
    the parent here only waits, its child burns CPU: the child's time must count."""
    import subprocess
    import sys

    from hwbench.collectors.samplers import HostSampler

    burn = "import time\nt = time.time()\nwhile time.time() - t < 4: pass"
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])"])
    try:
        s = HostSampler()
        s.watch(parent.pid)
        time.sleep(0.8)  # the child is running
        a = s.read()
        time.sleep(1.5)
        b = s.read()
        used = b["proc_cpu_counter_s"] - a["proc_cpu_counter_s"]
        assert used >= 0.4, used  # the waiting parent alone uses ~0 s
        assert s.errors == 0
    finally:
        parent.kill()
        parent.wait()
