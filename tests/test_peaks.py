"""Peak table matched exactly by normalised name; CPU peak from recorded facts only."""

import pytest

from hwbench import peaks
from hwbench.peaks import PEAK_KEYS, peak


@pytest.mark.parametrize("name, key, tflops", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.4),  # the SXM5 board as NVML names it
    ("NVIDIA H100 SXM5 80GB", "fp16", 989.4),
    ("NVIDIA H100 PCIe", "fp8", 1513.0),
    ("NVIDIA H100 NVL", "bf16", 835.5),
    ("NVIDIA H200", "bf16", 989.4),
    ("NVIDIA H200 141GB HBM3e", "fp8", 1978.9),
    ("NVIDIA A100-SXM4-80GB", "tf32", 156.0),
    ("NVIDIA A100-SXM4-40GB", "int8", 624.0),
    ("NVIDIA A100-PCIE-40GB", "fp32", 19.5),
    ("NVIDIA A100 80GB PCIe", "bf16", 312.0),
    ("NVIDIA L4", "fp16", 121.0),
    ("NVIDIA L40", "bf16", 181.05),
    ("NVIDIA L40S", "bf16", 362.05),
    ("AMD Instinct MI300X", "bf16", 1307.4),
    ("NVIDIA B200", "fp8", 4500.0),
    ("NVIDIA GB200", "bf16", 2500.0),
    ("NVIDIA H20", "bf16", 148.0),
    ("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "fp32", 125.0),
    ("AMD Instinct MI325X", "fp8", 2614.9),
    ("AMD Instinct MI355X", "bf16", 2516.6),
    ("GAUDI3", "bf16", 1835.0),
    ("HL-325L", "fp8", 1835.0),
    ("TPU v5 lite", "int8", 393.0),
    ("TPU v5p", "bf16", 459.0),
    ("TPU v6 lite", "bf16", 918.0),
])
def test_real_names_match(name, key, tflops):
    p = peak("cuda", name, key)
    assert p.tflops == tflops and p.reason is None
    assert p.source.startswith("datasheet: ") and "20" in p.source  # names its datasheet and date


@pytest.mark.parametrize("name", [
    "NVIDIA A10",  # not an A100
    "NVIDIA A10G",
    "NVIDIA H1000",  # hypothetical: not an H100
    "NVIDIA H100X",
    "NVIDIA GH200 480GB",  # not an H200 (absent from the table)
    "NVIDIA H200 NVL",  # another form factor than the H200 SXM in the table
    "NVIDIA H800",
    "NVIDIA A100X",
    "NVIDIA L40G",
    "NVIDIA L4 Ti",
    "Tesla T4",
    "NVIDIA GeForce RTX 4090",
    "AMD Instinct MI300A",
    "AMD Instinct MI350X",  # not an MI355X (other clocks and power)
    "NVIDIA B300",  # not a B200
    "NVIDIA GB300",
    "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition",  # another edition
    "TPU v4",
    "GAUDI2",
    "",
])
def test_near_misses_get_no_peak(name):
    p = peak("cuda", name, "bf16")
    assert p.tflops is None and p.reason == f"no datasheet peak for {name!r}"


def test_l40_l40s_l4_are_three_devices():
    got = {n: peak("cuda", n, "bf16").tflops for n in ("NVIDIA L4", "NVIDIA L40", "NVIDIA L40S")}
    assert len(set(got.values())) == 3


def test_missing_precision_says_why():
    p = peak("cuda", "NVIDIA A100-SXM4-80GB", "fp8")  # Ampere has no fp8
    assert p.tflops is None and "fp8" in p.reason and "A100" in p.reason
    with pytest.raises(ValueError):
        peak("cuda", "NVIDIA L4", "amp_bf16")  # case precisions are mapped by the registry first


def test_normalise_name():
    assert peaks.normalise_name("NVIDIA A100-SXM4-80GB") == "a100 sxm4"
    assert peaks.normalise_name("NVIDIA H100 80GB HBM3") == "h100"
    assert peaks.normalise_name("NVIDIA GH200 144G HBM3e") == "gh200"
    assert peaks.normalise_name("AMD Instinct MI300X") == "mi300x"


def test_table_is_consistent():
    t = peaks.table()
    assert set(peaks.NAMES.values()) == set(t)  # every name has rows, every row a name
    for rows in t.values():
        assert "bf16" in rows  # TPUs and Gaudi 3 publish no fp32 figure: left empty, not guessed
        for r in rows.values():
            assert r.precision in PEAK_KEYS and r.dense_tflops > 0 and r.source and len(r.date) == 10
            assert r.confidence in ("high", "medium", "low") and (r.confidence == "high" or r.note)
    assert peaks.PEAK_KEYS == ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")


ENV = {"cpu_cores_physical": 8, "cpu_freq_max_mhz": 2500.0,
       "cpu_freq_max_source": "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "cpu_flags": ["avx512f"]}


def test_cpu_formula_from_recorded_facts():
    p = peak("cpu", "Intel Xeon", "fp32", cores=2, env=ENV)
    assert p.tflops == pytest.approx(2 * 2.5e9 * 16 * 2 * 2 / 1e12) and p.reason is None
    # no CPU identity recorded (an older file): the old formula, marked a guess
    assert p.confidence == "guess" and p.source.startswith("cpu formula (guess: no CPU identity recorded")
    assert p.source.endswith("2 cores x 2.5 GHz max clock (/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq;"
                             " all-core clock not known, the max may be a single-core boost)"
                             " x 16 fp32 lanes (avx512f) x 2 FMA units (assumed) x 2")
    assert peak("cpu", "x", "fp32", env=ENV).tflops == pytest.approx(4 * p.tflops)  # all physical cores by default
    assert peak("cpu", "x", "bf16", cores=2, env=ENV).tflops == pytest.approx(p.tflops)  # fp32 rate
    bf = peak("cpu", "x", "bf16", cores=2, env={**ENV, "cpu_flags": ["avx512_bf16", "avx512f"]})
    assert bf.tflops == pytest.approx(2 * p.tflops) and "avx512_bf16" in bf.source
    assert peak("cpu", "x", "fp32", cores=2, env={**ENV, "cpu_flags": ["avx2", "fma"]}).tflops == pytest.approx(p.tflops / 2)
    assert peak("cpu", "x", "fp32", cores=2, env={**ENV, "cpu_flags": ["asimd", "sve"]}).tflops == pytest.approx(p.tflops / 4)


@pytest.mark.parametrize("env, key, why", [
    ({**ENV, "cpu_freq_max_mhz": None, "cpu_freq_max_source": None}, "fp32", "no max CPU clock known"),
    ({**ENV, "cpu_freq_max_mhz": 0.0}, "fp32", "no max CPU clock known"),
    ({k: v for k, v in ENV.items() if k != "cpu_flags"}, "fp32", "no fp32 SIMD width"),  # an older environment
    ({**ENV, "cpu_flags": ["avx2"]}, "fp32", "no fp32 SIMD width"),  # AVX2 without FMA
    (ENV, "fp16", "no fp16 peak for CPUs"),
    (ENV, "int8", "no int8 peak for CPUs without AMX"),
    (None, "fp32", "cores unknown"),
])
def test_cpu_unknowns_say_why(env, key, why):
    p = peak("cpu", "x", key, env=env)
    assert p.tflops is None and why in p.reason


def test_cpu_peak_never_reads_the_live_machine(monkeypatch):
    import psutil

    monkeypatch.setattr(psutil, "cpu_freq", lambda: pytest.fail("peak() must not ask psutil"))
    assert peak("cpu", "x", "fp32", cores=1, env={**ENV, "cpu_freq_max_mhz": None}).tflops is None
