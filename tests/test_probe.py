"""hwbench probe: the measuring code paths on the CPU (tiny settings: seconds, figures not
trusted), profile files, the lookup a run does, the CLI, and the GPU logic that can be
checked without a GPU. Timing agreement with independent measurements is a benchmark:
tests/perf/bench_probe_agreement.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hwbench.probe import ProbeSettings, cpu_thread_counts, gemm, run_probe, telemetry
from hwbench.probe.profile import (FORMAT, ProfileError, find_for_run, find_latest, read_profile, search_dirs,
                                   write_atomic)
from hwbench.records import MachineProfile, RunRecord, Segment

from conftest import ROOT, hwbench


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory):
    out = tmp_path_factory.mktemp("profiles")
    lines: list[str] = []
    prof, path = run_probe(["cpu"], ProbeSettings.tiny(), out, lines.append)
    return prof, path, lines


def test_cpu_probe_measures_fp32_and_bf16_gemm_and_memory(tiny_profile):
    prof, path, lines = tiny_profile
    cpu = prof.devices["cpu"]
    ok = {r.dtype: r for r in cpu.gemm if r.ok}
    assert {"fp32", "bf16"} <= set(ok)
    fp32 = ok["fp32"]
    assert fp32.tflops_median > 0 and fp32.tflops_best >= fp32.tflops_median
    assert fp32.shape in ([t.m, t.n, t.k] for t in fp32.trials)
    assert fp32.tflops_median == max(t.tflops_median for t in fp32.trials)  # best shape by median
    assert cpu.warmup is not None and cpu.warmup.window_tflops
    kernels = {(r.kernel, r.buffer_bytes) for r in cpu.memory}
    assert ("copy", 256 * 1024) in kernels
    copy = next(r for r in cpu.memory if r.kernel == "copy")
    assert copy.bytes_per_call == 2 * copy.buffer_bytes  # read + written
    assert "not applicable" in cpu.host_device_note and cpu.host_device == []
    roofs = prof.roofs.devices["cpu"]
    assert roofs.gemm_tflops["fp32"] == fp32.tflops_median
    assert roofs.memory_bandwidth_gbs and roofs.bandwidth_curve
    assert any("gemm cpu fp32" in m for m in lines)  # progress shown
    if "no native bf16" in ok["bf16"].reason:  # torch's fallback bf16 matmul: SDPA / oneDNN run at fp32 speed
        assert roofs.gemm_tflops["bf16"] == max(ok["bf16"].tflops_median, fp32.tflops_median)
        assert "fp32 rate" in roofs.gemm_notes.get("bf16", "fp32 rate")


def test_dtypes_not_measured_on_cpu_say_why(tiny_profile):
    prof, _, _ = tiny_profile
    reasons = {r.dtype: r.reason for r in prof.devices["cpu"].gemm if not r.ok}
    assert "TF32" in reasons["tf32"]
    assert "_scaled_mm" in reasons["fp8"]
    assert "--thorough" in reasons["int8"]


def test_profile_file_roundtrip_and_atomic_write(tiny_profile, tmp_path):
    prof, path, _ = tiny_profile
    back = read_profile(path)
    assert back.format == FORMAT and back.profile_id == prof.profile_id
    assert back.environment.hostname and back.devices["cpu"].gemm
    write_atomic(tmp_path / "p.json", back)
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]  # no temporary left


@pytest.mark.parametrize("text, needle", [("{", "cannot read"), ('{"format": "x"}', "not an hwbench profile"),
                                           ('{"format": "hwbench-profile", "profile_version": 99}', "99")])
def test_bad_profile_files_are_one_line_errors(tmp_path, text, needle):
    p = tmp_path / "p.json"
    p.write_text(text)
    with pytest.raises(ProfileError, match=needle):
        read_profile(p)


def _copy(prof, tmp_dir: Path, name: str, created: str, hostname: str | None = None):
    env = prof.environment.model_copy(update={"hostname": hostname or prof.environment.hostname})
    roofs = prof.roofs.model_copy(update={"created": created, "profile_id": name})
    p = tmp_dir / f"{name}.json"
    write_atomic(p, prof.model_copy(update={"created": created, "environment": env, "roofs": roofs,
                                            "profile_id": name}))
    return p


def test_latest_matching_profile_same_machine_newest(tiny_profile, tmp_path):
    prof, _, _ = tiny_profile
    d = tmp_path / "profiles"
    d.mkdir()
    _copy(prof, d, "old", "2020-01-01T00:00:00+00:00")
    newest = _copy(prof, d, "new", "2030-01-01T00:00:00+00:00")
    _copy(prof, d, "other", "2040-01-01T00:00:00+00:00", hostname="another-host")
    (d / "junk.json").write_text("{not json")
    env = prof.environment.model_dump()
    got = find_latest([d], env)
    assert got.profile_id == "new" and got.path == str(newest)
    # a run writing results/x.json looks in results/profiles
    assert find_for_run(tmp_path / "x.json", env).profile_id == "new"
    other = dict(env, cpu_model="another CPU")
    assert find_latest([d], other) is None
    gpu = dict(env, accelerators=[{"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-1"}])
    assert find_latest([d], gpu) is None  # GPUs are part of the machine


def test_profile_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HWBENCH_PROFILE_DIR", str(tmp_path / "elsewhere"))
    assert search_dirs(tmp_path / "r.json") == [tmp_path / "elsewhere", tmp_path / "profiles"]


def test_segment_records_the_profile_and_old_files_read_none(tiny_profile):
    prof, _, _ = tiny_profile
    seg = Segment(index=0, started="t", environment=prof.environment, machine_profile=prof.roofs)
    back = Segment.model_validate_json(seg.model_dump_json())
    assert isinstance(back.machine_profile, MachineProfile)
    assert back.machine_profile.devices["cpu"].gemm_tflops == prof.roofs.devices["cpu"].gemm_tflops
    from hwbench.results import read_record

    rec = read_record(ROOT / "tests" / "golden" / "results_v2.json")
    assert isinstance(rec, RunRecord) and rec.segments[0].machine_profile is None


def test_thread_counts():
    s = ProbeSettings.quick()
    assert cpu_thread_counts(s, {"cpu_cores_physical": 8, "cpu_affinity": 8}) == [8, 1]
    assert cpu_thread_counts(s, {"cpu_cores_physical": 8, "cpu_affinity": 4}) == [4, 1]
    assert cpu_thread_counts(ProbeSettings.full(), {"cpu_cores_physical": 8}) == [8, 4, 2, 1]


def test_slow_cpu_kernels_are_searched_at_small_shapes():
    assert gemm.slow_on_cpu("bf16", {"avx2"})
    assert gemm.slow_on_cpu("bf16", {"avx512_bf16"}) is None
    assert gemm.slow_on_cpu("fp32", set()) is None


def test_shape_predicted_too_slow_is_skipped_with_reason():
    s = ProbeSettings.tiny().with_(max_call_s=1e-9)
    r = gemm.search(torch.device("cpu"), "fp32", ((64, 64, 64), (4096, 4096, 4096)), s, None, lambda m: None, 1)
    assert r.ok and r.shape == [64, 64, 64]
    assert "over the" in r.skipped_shapes[0]


@pytest.mark.parametrize("cc, dtype, needle", [((7, 0), "bf16", ">= 8.0"), ((8, 0), "fp8", ">= 8.9"),
                                               ((6, 1), "fp16", ">= 7.0"), ((9, 0), "fp8", None),
                                               ((9, 0), "tf32", None), ((7, 5), "int8", ">= 8.0")])
def test_gpu_dtype_support_by_compute_capability(monkeypatch, cc, dtype, needle):
    from types import SimpleNamespace

    from hwbench.devices.accelerator import use_module

    # torch.cuda as the CUDA kind asks it, on a GPU of compute capability ``cc``
    fake = SimpleNamespace(get_device_capability=lambda d=None: cc, get_device_name=lambda d=None: "Fake GPU")
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    prev = use_module("cuda", fake)
    try:
        why = gemm.unsupported(torch.device("cuda:0"), dtype)
    finally:
        use_module("cuda", prev)
    if needle is None:
        assert why is None
    else:
        assert needle in why and "Fake GPU" in why


def test_telemetry_summary_names_throttle_reasons():
    t = telemetry.summarise("gemm bf16", 2.0, [
        {"gpu_sm_clock_mhz": 1980.0, "gpu_temperature_c": 60.0, "throttle_reasons": 0.0},
        {"gpu_sm_clock_mhz": 1755.0, "gpu_temperature_c": 70.0, "throttle_reasons": float(0x4 | 0x20)},
    ])
    assert t.summary["gpu_sm_clock_mhz_min"] == 1755.0 and t.summary["gpu_temperature_c_max"] == 70.0
    assert t.throttle == ["sw_power_cap", "sw_thermal"]


def test_telemetry_monitor_phases():
    with telemetry.Monitor(lambda: {"cpu_freq_mhz": 2000.0}, interval_s=0.01) as mon:
        with mon.phase("p"):
            import time

            time.sleep(0.05)
    assert mon.phases[0].phase == "p" and mon.phases[0].summary["n_samples"] >= 1


# ------------------------------------------------------------------ the command
@pytest.fixture
def fast_cli(monkeypatch):
    """The real command with the tiny settings in place of the quick ones."""
    from hwbench.probe import settings

    monkeypatch.setattr(settings.ProbeSettings, "quick", classmethod(lambda cls: cls.tiny()))
    from hwbench.commands.probe import probe

    return probe


def test_probe_json_has_gemm_tflops_and_bandwidth(fast_cli, tmp_path):
    res = CliRunner().invoke(fast_cli, ["--device", "cpu", "--format", "json", "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["device"] == "cpu" and doc["gemm_tflops"]["fp32"] > 0
    assert doc["memory_bandwidth_gbs"] > 0
    assert "not applicable" in doc["host_device_note"]
    assert Path(doc["profile"]).parent == tmp_path and os.path.exists(doc["profile"])


def test_probe_markdown_has_a_peak_table_with_datasheet_fractions(fast_cli, tmp_path):
    res = CliRunner().invoke(fast_cli, ["--device", "cpu", "--format", "markdown", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "| device | dtype | threads | TFLOP/s (median) |" in res.stdout
    assert "of datasheet" in res.stdout and "| cpu | fp32 |" in res.stdout
    assert "[" in res.stderr and "gemm cpu fp32" in res.stderr  # progress on stderr


def test_probe_table_format(fast_cli, tmp_path):
    res = CliRunner().invoke(fast_cli, ["--device", "cpu", "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "Achievable GEMM peaks" in res.stdout and "not applicable" in res.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer on a machine without CUDA")
def test_probe_of_an_absent_gpu_is_a_one_line_user_error(tmp_path):
    r = hwbench("probe", "--device", "cuda:0", "--out", tmp_path, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "no such CUDA device" in r.stderr


def test_probe_is_listed_in_the_cli():
    r = hwbench("probe", "--help", timeout=60)
    assert r.returncode == 0 and "--thorough" in r.stdout and "results/profiles" in r.stdout
