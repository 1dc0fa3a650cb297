"""Collectors against faithful fakes at the device boundary (NVML, powercap), and the
real host sampler."""

import time
from pathlib import Path

import pytest

from hwbench.collectors import CollectorSet, energy, timing_flags
from hwbench.devices import nvidia
from hwbench.devices.rapl import Rapl
from hwbench.errors import DeviceNotSupported
from hwbench.spec import Case, Settings
from fakes.fake_pynvml import FakeGPU, FakeNVML


def settings(**kw):
    base = dict(collectors=["host", "nvidia", "rapl"], sample_interval_s=0.02, idle_baseline_s=0.2)
    base.update(kw)
    return Settings(**base)


def run_window(cs, device, seconds=0.6, iterations=100, batch=4):
    """Drive a CollectorSet as the runner does, around a sleep standing in for a case."""
    case = Case("mlp:tiny", "infer", batch, "fp32", "eager", device)
    record = {}
    cs.start(record)
    try:
        cs.case_begin(None)
        time.sleep(0.05)
        t0 = time.monotonic()
        cs.mark("window_start", t0)
        time.sleep(seconds)
        t1 = time.monotonic()
        cs.mark("window_end", t1)
        out = cs.case_end((t0, t1), case, {"metrics": {"iterations": iterations}}, device)
    finally:
        cs.stop()
    return out, record, t1 - t0


def test_nvml_energy_from_counter_agrees_with_integrated_power():
    cs = CollectorSet.for_suite(settings(collectors=["host", "nvidia"]), nvml=FakeNVML([FakeGPU(power_w=250.0)]))
    out, record, window = run_window(cs, "cuda:0")
    e = out["energy"]
    assert e["energy_source"] == "nvml_counter"
    assert e["energy_j"] == pytest.approx(250.0 * window, rel=0.01)
    assert e["energy_j_power_integrated"] == pytest.approx(e["energy_j"], rel=0.02)
    assert e["power_w_mean"] == pytest.approx(250.0, rel=0.01)
    assert e["energy_per_sample_j"] == pytest.approx(e["energy_j"] / 400)
    assert record["idle_baseline"]["cuda:0"]["power_w"] == pytest.approx(250.0, rel=0.02)
    assert e["energy_above_idle_j"] == pytest.approx(0.0, abs=0.02 * e["energy_j"])
    summ = out["collectors"]["nvidia:0"]["summary"]
    assert summ["gpu_util_pct_mean"] == 87 and summ["gpu_mem_busy_pct_mean"] == 41
    assert summ["gpu_memory_used_bytes_max"] == 2 * 2**30 and summ["gpu_pcie_rx_bytes_per_s_mean"] == 1024000
    assert summ["gpu_sm_clock_mhz_mean"] == 1980 and summ["gpu_temperature_c_max"] == 55
    samples = out["collectors"]["nvidia:0"]["samples"]
    assert len(samples["t_s"]) == len(samples["gpu_power_w"]) >= 10
    assert {f["flag"] for f in out["flags"]} <= {"energy_window_short"}  # 0.6 s < 10 x 0.1 s


def test_energy_per_token_for_generation():
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"], idle_baseline_s=0), nvml=FakeNVML([FakeGPU(power_w=200.0)]))
    cs.start({})
    cs.case_begin(None)
    t0 = cs.sample_now()
    time.sleep(0.2)
    t1 = cs.sample_now()
    case = Case("decoder:tiny", "generate", 4, "fp32", "eager", "cuda:0", seq_len=16, gen_tokens=8)
    out = cs.case_end((t0, t1), case, {"metrics": {"iterations": 5}}, "cuda:0")
    cs.stop()
    e = out["energy"]
    assert e["energy_per_sample_j"] == pytest.approx(e["energy_j"] / 20)
    assert e["energy_per_token_j"] == pytest.approx(e["energy_j"] / 160)


def test_gpu_without_energy_counter_integrates_power():
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=FakeNVML([FakeGPU(power_w=100.0, has_energy_counter=False)]))
    out, _, window = run_window(cs, "cuda:0")
    assert out["energy"]["energy_source"] == "nvml_power"
    assert out["energy"]["energy_j"] == pytest.approx(100.0 * window, rel=0.02)
    assert "gpu_energy_counter_j_mean" not in out["collectors"]["nvidia:0"]["summary"]


@pytest.mark.parametrize("instant,source", [(True, "instant"), (False, "average")])
def test_the_power_field_used_is_recorded(instant, source):
    nv = nvidia.NvidiaGPU(0, FakeNVML([FakeGPU(has_instant_power=instant)]))
    assert nv.power_w() == 300.0 and nv.power_source == source
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=FakeNVML([FakeGPU(has_instant_power=instant)]))
    out, record, _ = run_window(cs, "cuda:0", seconds=0.2)
    assert record["collectors"]["info"]["nvidia:0"]["power_source"] == source
    assert out["collectors"]["nvidia:0"]["info"]["power_source"] == source


def test_not_supported_metric_is_absent_and_the_rest_keeps_working():
    fake = FakeNVML([FakeGPU(not_supported={"pcie", "temperature"})])
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=fake)
    out, _, _ = run_window(cs, "cuda:0", seconds=0.3)
    summ = out["collectors"]["nvidia:0"]["summary"]
    assert not any("pcie" in k or "temperature" in k for k in summ)
    assert summ["gpu_util_pct_mean"] == 87 and out["energy"]["energy_source"] == "nvml_counter"
    assert not [f for f in out["flags"] if f["flag"] == "collector_error"]  # unsupported is not an error
    # asked once, then remembered as absent
    gpu = cs.samplers[0].gpu
    assert {"pcie_rx_bytes_per_s", "pcie_tx_bytes_per_s", "temperature"} <= gpu.unsupported


def test_two_gpus_each_case_gets_its_own_gpu_energy():
    fake = FakeNVML([FakeGPU(power_w=100.0), FakeGPU(power_w=400.0)])
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=fake)
    out, _, window = run_window(cs, "cuda:1")
    assert out["energy"]["energy_j"] == pytest.approx(400.0 * window, rel=0.01)
    assert set(out["collectors"]) == {"nvidia:0", "nvidia:1"}


def test_throttling_and_reading_errors_are_flagged():
    fake = FakeNVML([FakeGPU(throttle=0x4 | 0x40)])
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"], idle_baseline_s=0), nvml=fake)
    cs.start({})
    cs.case_begin(None)
    fake.gpus[0].fail_calls = 2
    t0 = time.monotonic()
    time.sleep(0.2)
    out = cs.case_end((t0, time.monotonic()), Case("mlp:tiny", "infer", 1, "fp32", "eager", "cuda:0"), {"metrics": {}}, "cuda:0")
    cs.stop()
    flags = {f["flag"]: f["detail"] for f in out["flags"]}
    assert "sw_power_cap" in flags["throttled"] and "hw_thermal" in flags["throttled"]
    assert "nvidia:0: 2 failed readings" in flags["collector_error"]


def test_gpm_metrics_when_supported():
    cs = CollectorSet.for_suite(settings(collectors=["nvidia"]), nvml=FakeNVML([FakeGPU(gpm=True)]))
    out, _, _ = run_window(cs, "cuda:0", seconds=0.3)
    s = out["collectors"]["nvidia:0"]["summary"]
    assert s["gpu_dram_bw_util_pct_mean"] == 62.5 and s["gpu_tensor_active_pct_mean"] == 48.0


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


def test_rapl_energy_for_a_cpu_case(tmp_path):
    root = make_powercap(tmp_path, packages=(("intel-rapl:0", "package-0", 0),))
    cs = CollectorSet.for_suite(settings(collectors=["host", "rapl"], idle_baseline_s=0), powercap_root=root)
    cs.start({})
    cs.case_begin(None)
    t0 = time.monotonic()
    cs.mark("window_start", t0)
    (root / "intel-rapl:0" / "energy_uj").write_text("30000000\n")  # 30 J during the window
    time.sleep(0.1)
    t1 = time.monotonic()
    cs.mark("window_end", t1)
    out = cs.case_end((t0, t1), Case("mlp:tiny", "infer", 1, "fp32", "eager", "cpu"), {"metrics": {"iterations": 10}}, "cpu")
    cs.stop()
    assert out["energy"]["energy_source"] == "rapl"
    assert out["energy"]["energy_j"] == pytest.approx(30.0)
    assert out["energy"]["energy_per_sample_j"] == pytest.approx(3.0)


# ------------------------------------------------------------------- host, estimate
def test_host_sampler_is_real_and_cpu_energy_is_estimated_without_rapl(tmp_path):
    cs = CollectorSet.for_suite(settings(collectors=["host", "rapl"], cpu_tdp_w=100.0), powercap_root=tmp_path / "none")
    assert "rapl" in cs.unavailable
    out, record, window = run_window(cs, "cpu", seconds=0.4)
    e = out["energy"]
    assert e["energy_source"] == "estimated"
    assert 30.0 * window * 0.95 <= e["energy_j"] <= 100.0 * window * 1.05  # between idle and full TDP
    flags = {f["flag"]: f["detail"] for f in out["flags"]}
    assert "cpu_tdp_w = 100 W" in flags["energy_estimated"]
    s = out["collectors"]["host"]["summary"]
    assert 0 <= s["cpu_util_pct_mean"] <= 100 and s["mem_used_bytes_max"] > 0
    assert record["idle_baseline"]["cpu"]["energy_source"] == "estimated"


def test_energy_helpers():
    samples = [(0.0, {"c": 0.0, "p": 100.0}), (1.0, {"c": 100.0, "p": 100.0}), (2.0, {"c": 300.0, "p": 300.0})]
    assert energy.counter_delta(samples, "c", 0.5, 1.5) == pytest.approx(150.0)  # 50 -> 200
    assert energy.counter_delta(samples, "c", -1, 1.5) is None
    assert energy.integrate(samples, "p", 0.0, 2.0) == pytest.approx(100 + 200)
    assert energy.integrate(samples, "p", 0.5, 1.0) == pytest.approx(50.0)


def test_timing_flags():
    assert timing_flags({"latency_iqr_rel": 0.02, "latency_cv": 0.03}, 0.1) == []
    assert timing_flags({"latency_iqr_rel": 0.3, "latency_cv": 0.03}, 0.1)[0]["flag"] == "noisy"


def test_a_sampler_that_raises_is_a_collector_error_not_a_crash():
    class Broken:
        name, device, errors = "broken", None, 0

        def read(self):
            raise OSError("sensor gone")

    cs = CollectorSet([Broken()], settings(collectors=[], idle_baseline_s=0))
    cs.start({})
    cs.case_begin(None)
    t0 = cs.sample_now()
    t1 = cs.sample_now()
    out = cs.case_end((t0, t1), Case("mlp:tiny", "infer", 1, "fp32", "eager", "cpu"), {"metrics": {}}, "cpu")
    cs.stop()
    (flag,) = [f for f in out["flags"] if f["flag"] == "collector_error"]
    assert flag["detail"].startswith("broken: ") and "failed readings" in flag["detail"]
