"""Gaudi power and energy through HLML (hwbench.devices.habana and the ``hlml``
collector) against a faithful fake of pyhlml (tests/fakes/fake_pyhlml.py): units
converted once, the energy counter preferred over integrated power, the device this
process uses named "hpu", unsupported metrics left out. Unverified on a real Gaudi."""

import time

import pytest

from hwbench import devices
from hwbench.collectors import CollectorSet
from hwbench.devices import habana
from hwbench.spec import Settings
from fakes.fake_pyhlml import HLML_CLOCKS_THROTTLE_REASON_POWER, FakeGaudi, FakePyhlml


def settings(**kw):
    base = dict(collectors=["hlml"], sample_interval_s=0.02, idle_baseline_s=0.2)
    base.update(kw)
    return Settings(**base)


def run_window(cs, device, seconds=0.5, idle_s=0.2):
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


@pytest.mark.parametrize("api", [1, 2])
def test_hlml_readings_are_converted_once_to_hwbench_units(api):
    d = habana.devices(FakePyhlml([FakeGaudi(power_w=600.0)], api=api), environ={})[0]
    r = d.sample()
    assert r["power_w"] == 600.0 and r["energy_counter_j"] > 5000.0  # mW -> W, mJ -> J (5 kJ since load)
    assert r["gpu_util_pct"] == 93 and r["memory_used_bytes"] == 2 * 2**30
    assert r["sm_clock_mhz"] == 1600 and r["temperature_c"] == 55 and r["throttle_reasons"] == 0
    info = d.describe()
    facts = (info["name"], info["kind"], info["vendor"], info["torch_device"])
    assert facts == ("HL-325L", "hpu", "intel-habana", "hpu")
    assert info["memory_total_bytes"] == 128 * 2**30 and info["pci_bus_id"] == "0000:19:00.0"
    assert info["uuid"] == "01P0-HL3080A0-15-TNQ012-04-07-11"


def test_hlml_energy_from_the_counter_agrees_with_power():
    cs = CollectorSet.for_suite(settings(), libs={"pyhlml": FakePyhlml([FakeGaudi(power_w=600.0)])})
    out, idle, window = run_window(cs, "hpu")
    e = out.energy
    assert e.energy_source == "hlml_counter"
    assert e.energy_j == pytest.approx(600.0 * window, rel=0.01)
    assert e.energy_j_power_integrated == pytest.approx(e.energy_j, rel=0.02)
    assert idle.power_w["hpu"] == pytest.approx(600.0, rel=0.02) and idle.energy_source["hpu"] == "hlml_counter"
    s = out.collectors["hlml:0"].summary
    assert s["gpu_util_pct_mean"] == 93 and s["gpu_temperature_c_max"] == 55 and s["gpu_power_w_mean"] == 600.0


@pytest.mark.parametrize("api", [1, 2])
def test_hlml_without_an_energy_counter_integrates_power(api):
    fake = FakePyhlml([FakeGaudi(power_w=450.0, has_energy_counter=False)], api=api)
    cs = CollectorSet.for_suite(settings(), libs={"pyhlml": fake})
    out, _, window = run_window(cs, "hpu")
    assert out.energy.energy_source == "hlml_power"
    assert out.energy.energy_j == pytest.approx(450.0 * window, rel=0.02)
    if api == 2:  # pyhlml 2 says NOT_SUPPORTED: asked once, then remembered
        assert "energy" in cs.samplers[0].gpu.unsupported


def test_hlml_power_throttling_is_flagged_and_unsupported_metrics_are_left_out():
    gpu = FakeGaudi(throttle_bits=HLML_CLOCKS_THROTTLE_REASON_POWER, not_supported={"temperature"}, fail_calls=2)
    cs = CollectorSet.for_suite(settings(), libs={"pyhlml": FakePyhlml([gpu])})
    out, _, _ = run_window(cs, "hpu", seconds=0.3)
    flags = {f.flag: f.detail for f in out.flags}
    assert flags["throttled"] == "hlml:0: power_cap"
    assert not any("temperature" in k for k in out.collectors["hlml:0"].summary)
    g = cs.samplers[0].gpu
    assert g.unsupported == {"temperature"} and g.errors == 2  # failures counted, not raised


def test_hlml_missing_or_failing_is_a_reason_not_a_crash():
    cs = CollectorSet.for_suite(settings(), libs={"pyhlml": FakePyhlml([FakeGaudi()], init_error=True)})
    assert cs.samplers == [] and "no Gaudi visible to HLML" in cs.unavailable["hlml"]


def test_the_process_device_is_the_only_one_or_the_one_module_named():
    fake = FakePyhlml([FakeGaudi(module_id=m) for m in (3, 1, 0)])
    assert [d.torch_device for d in habana.devices(fake, {})] == [None, None, None]  # the runtime picks: unknown
    assert [d.torch_device for d in habana.devices(fake, {"HABANA_VISIBLE_MODULES": "1"})] == [None, "hpu", None]
    assert [d.torch_device for d in habana.devices(fake, {"HABANA_VISIBLE_MODULES": "0,1"})] == [None, None, None]
    old = FakePyhlml([FakeGaudi(module_id=m) for m in (3, 1)], api=1)  # no hlmlDeviceGetModuleID
    assert [d.torch_device for d in habana.devices(old, {"HABANA_VISIBLE_MODULES": "1"})] == [None, None]


def test_the_hpu_kind_declares_the_hlml_collector_and_its_sources():
    hpu = devices.KINDS.get("hpu")
    assert hpu.samplers == ("hlml",) and hpu.energy_sources == ("hlml_counter", "hlml_power")
    assert not getattr(hpu, "power_note", None)


def test_hlml_facts_fit_the_results_schema():
    from hwbench.records import AcceleratorInfo

    for d in habana.describe_all(FakePyhlml([FakeGaudi(), FakeGaudi(module_id=1)]), {"HABANA_VISIBLE_MODULES": "1"}):
        AcceleratorInfo(**d)  # raises on an unknown key or a wrong type
