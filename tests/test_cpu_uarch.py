"""CPU peaks from the microarchitecture table: constructed /proc/cpuinfo texts with known
answers (fp32 FLOP per cycle per core from the vendors' optimisation guides)."""

import pytest

from hwbench import cpu_uarch, peaks
from hwbench.devices.host import PEAK_CPU_FLAGS
from hwbench.errors import UserError

# The first processor block of /proc/cpuinfo as each CPU writes it (trimmed).
ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9654 96-Core Processor
stepping\t: 1
flags\t\t: fpu sse avx2 fma avx512f avx512_bf16
"""
SPR = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
stepping\t: 8
flags\t\t: fpu avx2 fma avx512f avx512_bf16 amx_bf16 amx_int8 amx_tile
"""
GRACE = """processor\t: 0
BogoMIPS\t: 2000.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics sve sve2 bf16
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd4f
CPU revision\t: 0

processor\t: 1
CPU implementer\t: 0x41
CPU part\t: 0xd4f
"""
N1 = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1
"""
UNKNOWN = """processor\t: 0
vendor_id\t: HygonGenuine
cpu family\t: 24
model\t\t: 2
model name\t: Hygon C86 7285 32-core Processor
stepping\t: 2
flags\t\t: fpu avx2 fma
"""
SKX_SILVER = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 85
model name\t: Intel(R) Xeon(R) Silver 4114 CPU @ 2.20GHz
stepping\t: 4
flags\t\t: avx2 fma avx512f
"""


def _flags(text):
    line = next(x for x in text.splitlines() if x.startswith(("flags", "Features")))
    return sorted(set(line.split(":", 1)[1].split()) & set(PEAK_CPU_FLAGS))


def env_of(text, cores=4, mhz=3000.0, **extra):
    """The environment fingerprint a machine with this cpuinfo records."""
    name = next((x.split(":", 1)[1].strip() for x in text.splitlines() if x.startswith("model name")), "")
    return {"cpu_model": name, "cpu_cores_physical": cores, "cpu_freq_max_mhz": mhz,
            "cpu_freq_max_source": "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",
            "cpu_flags": _flags(text), **cpu_uarch.parse_cpuinfo(text), **extra}


@pytest.mark.parametrize("text, uarch, per_cycle", [
    (ZEN4, "Zen 4", 32),  # AVX-512 on two 256-bit pipes: half the old formula's 64
    (SPR, "Sapphire Rapids", 64),  # two 512-bit FMA units
    (GRACE, "Neoverse V2", 32),  # four 128-bit pipes: twice the old formula's 16
    (N1, "Neoverse N1", 16),  # two 128-bit pipes
])
def test_fp32_peak_is_cores_x_clock_x_table_rate(text, uarch, per_cycle):
    env = env_of(text)
    u, how = cpu_uarch.match(env)
    assert u.name == uarch and u.fp32_flops_per_cycle == per_cycle
    p = peaks.peak("cpu", "", "fp32", cores=4, env=env)
    assert p.tflops == pytest.approx(4 * 3.0e9 * per_cycle / 1e12) and p.reason is None
    assert p.source.startswith(f"cpu table: {uarch} (") and "max clock" in p.source and p.confidence == "high"


def test_parse_cpuinfo():
    assert cpu_uarch.parse_cpuinfo(ZEN4) == {"cpu_vendor_id": "AuthenticAMD", "cpu_family": 25, "cpu_model_id": 17,
                                             "cpu_stepping": 1}
    assert cpu_uarch.parse_cpuinfo(GRACE) == {"cpu_implementer": "0x41", "cpu_part": "0xd4f"}
    hybrid = N1 + "\nprocessor\t: 1\nCPU implementer\t: 0x41\nCPU part\t: 0xd4f\n"
    assert cpu_uarch.parse_cpuinfo(hybrid)["cpu_part"] == "0xd0c,0xd4f"
    assert cpu_uarch.parse_cpuinfo("") == {}


def test_sapphire_rapids_bf16_and_int8_use_amx():
    env = env_of(SPR)
    bf = peaks.peak("cpu", "", "bf16", cores=2, env=env)
    assert bf.tflops == pytest.approx(2 * 3.0e9 * 1024 / 1e12) and "AMX" in bf.source
    i8 = peaks.peak("cpu", "", "int8", cores=2, env=env)
    assert i8.tflops == pytest.approx(2 * 3.0e9 * 2048 / 1e12)
    no_amx = {**env, "cpu_flags": ["avx2", "avx512f", "fma"]}  # a VM that hides AMX and AVX512_BF16
    assert peaks.peak("cpu", "", "bf16", cores=2, env=no_amx).tflops == pytest.approx(2 * 3.0e9 * 64 / 1e12)
    assert peaks.peak("cpu", "", "int8", cores=2, env=no_amx).tflops is None


def test_zen4_bf16_is_twice_fp32_with_avx512_bf16():
    env = env_of(ZEN4)
    assert peaks.peak("cpu", "", "bf16", cores=1, env=env).tflops == pytest.approx(3.0e9 * 64 / 1e12)


def test_hidden_avx512_gets_the_avx2_rate():
    env = {**env_of(SPR), "cpu_flags": ["avx2", "fma"]}
    p = peaks.peak("cpu", "", "fp32", cores=1, env=env)
    assert p.tflops == pytest.approx(3.0e9 * 32 / 1e12) and "avx2 2x256" in p.source


def test_one_fma_unit_xeons_get_half():
    env = env_of(SKX_SILVER)
    u, _ = cpu_uarch.match(env)
    assert u.name == "Skylake-SP" and cpu_uarch.one_fma_unit(u, env["cpu_model"])
    assert peaks.peak("cpu", "", "fp32", cores=1, env=env).tflops == pytest.approx(3.0e9 * 32 / 1e12)
    gold = {**env, "cpu_model": "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz"}
    assert peaks.peak("cpu", "", "fp32", cores=1, env=gold).tflops == pytest.approx(3.0e9 * 64 / 1e12)
    assert not cpu_uarch.one_fma_unit(u, "Intel(R) Xeon(R) Gold 5122 CPU @ 3.60GHz")  # the exception
    assert cpu_uarch.one_fma_unit(u, "Intel(R) Xeon(R) Gold 5118 CPU @ 2.30GHz")
    clx, _ = cpu_uarch.match({**env, "cpu_stepping": 7})
    assert clx.name == "Cascade Lake"


def test_unknown_cpu_falls_back_to_the_old_formula_marked_a_guess():
    env = env_of(UNKNOWN)
    u, why = cpu_uarch.match(env)
    assert u is None and "HygonGenuine family 24 model 2" in why
    p = peaks.peak("cpu", "", "fp32", cores=2, env=env)
    assert p.tflops == pytest.approx(2 * 3.0e9 * 8 * 2 * 2 / 1e12)  # avx2+fma lanes x 2 FMA units x 2
    assert p.confidence == "guess" and p.source.startswith("cpu formula (guess: HygonGenuine family 24")


def test_all_core_clock_wins_over_the_max_and_is_named():
    env = env_of(ZEN4, cpu_freq_all_core_mhz=2500.0, cpu_freq_all_core_source="HWBENCH_CPU_ALL_CORE_MHZ (declared)")
    p = peaks.peak("cpu", "", "fp32", cores=1, env=env)
    assert p.tflops == pytest.approx(2.5e9 * 32 / 1e12)
    assert "2.5 GHz all-core clock (HWBENCH_CPU_ALL_CORE_MHZ" in p.source
    assert "max clock" in peaks.peak("cpu", "", "fp32", cores=1, env=env_of(ZEN4)).source


def test_declared_all_core_clock():
    assert cpu_uarch.declared_all_core_clock({}) == {}
    assert cpu_uarch.declared_all_core_clock({"HWBENCH_CPU_ALL_CORE_MHZ": "3100"})["cpu_freq_all_core_mhz"] == 3100.0
    for bad in ("fast", "0", "-5", "nan"):
        with pytest.raises(UserError, match="HWBENCH_CPU_ALL_CORE_MHZ"):
            cpu_uarch.declared_all_core_clock({"HWBENCH_CPU_ALL_CORE_MHZ": bad})


def test_apple_m_by_name_where_no_cpuinfo():
    u, how = cpu_uarch.match({"cpu_model": "Apple M2 Pro"})
    assert u.name == "Apple M" and u.fp32_flops_per_cycle == 32 and u.confidence == "medium"


@pytest.mark.parametrize("uarch, fp32", [
    ("Zen 2", 32), ("Zen 3", 32), ("Zen 4", 32), ("Zen 5", 64), ("Skylake-SP", 64), ("Cascade Lake", 64),
    ("Ice Lake-SP", 64), ("Sapphire Rapids", 64), ("Emerald Rapids", 64), ("Granite Rapids", 64),
    ("Neoverse N1", 16), ("Neoverse V1", 32), ("Neoverse V2", 32), ("Apple M", 32),
])
def test_table_rates(uarch, fp32):
    rows = {u.name: u for u in cpu_uarch.table()}
    assert rows[uarch].fp32_flops_per_cycle == fp32 and rows[uarch].fp64_flops_per_cycle == fp32 // 2
    assert rows[uarch].source


def test_table_rows_are_consistent():
    rows = cpu_uarch.table()
    keys = [(u.vendor, u.x86_family, m, s) for u in rows if u.vendor for m in u.x86_models
            for s in (u.x86_steppings or [None])]
    assert len(keys) == len(set(keys))  # one row per x86 identity
    for u in rows:
        assert u.source and u.confidence in ("high", "medium", "low") and u.fma
        if u.amx_bf16_flops_per_cycle:
            assert u.amx_int8_ops_per_cycle == 2 * u.amx_bf16_flops_per_cycle


def test_parse_fma_rejects_bad_pipes():
    assert cpu_uarch.parse_fma("neon:4x128 sve:2x256")["sve"] == cpu_uarch.Pipes(2, 256)
    for bad in ("avx3:2x256", "avx2:2x200", "avx2", ""):
        with pytest.raises(ValueError):
            cpu_uarch.parse_fma(bad)


def test_read_identity_from_a_file(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text(SPR)
    assert cpu_uarch.read_identity(str(f))["cpu_model_id"] == 143
    assert cpu_uarch.read_identity(str(tmp_path / "missing")) == {}


def test_hybrid_arm_chip_is_less_sure():
    hybrid = N1 + "\nprocessor\t: 1\nCPU implementer\t: 0x41\nCPU part\t: 0xd4f\n"
    p = peaks.peak("cpu", "", "fp32", cores=1, env=env_of(hybrid))
    assert "Neoverse N1" in p.source and "hybrid" in p.source and p.confidence == "medium"
