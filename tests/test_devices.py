"""Torch ordinals mapped to physical GPUs under CUDA_VISIBLE_DEVICES, against the fake NVML."""

import json
from types import SimpleNamespace

import pytest
import torch

from hwbench import env as envmod
from hwbench.devices import cuda_devices, host, nvidia
from fakes.fake_pynvml import FakeGPU, FakeNVML


def three_gpus() -> FakeNVML:
    """Three different GPUs, so a wrong mapping shows in the name."""
    return FakeNVML([
        FakeGPU(name="NVIDIA A100-SXM4-80GB", capability=(8, 0)),
        FakeGPU(name="NVIDIA H100 80GB HBM3", capability=(9, 0), memory_total_bytes=81 * 2**30),
        FakeGPU(name="NVIDIA L4", capability=(8, 9), memory_total_bytes=24 * 2**30),
    ])


def torch_names(nvml, cvd):
    environ = {} if cvd is None else {"CUDA_VISIBLE_DEVICES": cvd}
    return {g.torch_device: nvml.nvmlDeviceGetName(g.handle) for g in nvidia.gpus(nvml, environ) if g.torch_device}


UUID1 = "GPU-8f1c0001-2b3c-4d5e-8f90-000000000001"


@pytest.mark.parametrize("cvd, expected", [
    (None, {"cuda:0": "NVIDIA A100-SXM4-80GB", "cuda:1": "NVIDIA H100 80GB HBM3", "cuda:2": "NVIDIA L4"}),
    ("1", {"cuda:0": "NVIDIA H100 80GB HBM3"}),
    ("2,0", {"cuda:0": "NVIDIA L4", "cuda:1": "NVIDIA A100-SXM4-80GB"}),
    (" 2 , 0 ", {"cuda:0": "NVIDIA L4", "cuda:1": "NVIDIA A100-SXM4-80GB"}),
    (UUID1, {"cuda:0": "NVIDIA H100 80GB HBM3"}),
    ("GPU-8f1c0002", {"cuda:0": "NVIDIA L4"}),  # a unique UUID prefix
    ("GPU-8f1c0002,GPU-8f1c0000", {"cuda:0": "NVIDIA L4", "cuda:1": "NVIDIA A100-SXM4-80GB"}),
    ("", {}),
    ("-1", {}),
    ("0,2,-1,1", {"cuda:0": "NVIDIA A100-SXM4-80GB", "cuda:1": "NVIDIA L4"}),  # the CUDA docs' example
    ("1,x,0", {"cuda:0": "NVIDIA H100 80GB HBM3"}),  # invalid entry after a valid one ends the list
    ("1,7,0", {"cuda:0": "NVIDIA H100 80GB HBM3"}),  # an index past the last GPU too
    ("2,GPU-8f1c0000", {"cuda:0": "NVIDIA L4"}),  # the first entry decides the form
    ("GPU-8f1c0001,0", {"cuda:0": "NVIDIA H100 80GB HBM3"}),
    ("GPU-8f1c", {}),  # an ambiguous prefix is invalid
    ("GPU-8f1c0001,GPU-beef", {"cuda:0": "NVIDIA H100 80GB HBM3"}),  # an unknown UUID ends the list
    ("1,1", {}),  # a repeat makes nothing visible
    ("GPU-8f1c0001,GPU-8f1c0001-2b3c", {}),  # two prefixes of one GPU are a repeat
])
def test_torch_ordinals_follow_cuda_visible_devices(cvd, expected):
    assert torch_names(three_gpus(), cvd) == expected


def test_parse_visible_devices():
    assert nvidia.parse_visible_devices(None) is None
    assert nvidia.parse_visible_devices("") == []
    assert nvidia.parse_visible_devices("1gpu,2") == [1, 2]  # read like strtoul
    assert nvidia.parse_visible_devices("3,1,-1,0") == [3, 1]
    assert nvidia.parse_visible_devices("GPU-ab,GPU-cd,1") == ["GPU-ab", "GPU-cd"]


def test_indices_count_in_pci_order_not_nvml_order():
    # NVML's enumeration order is not guaranteed to be CUDA's PCI_BUS_ID order.
    nvml = FakeNVML([
        FakeGPU(name="NVIDIA L4", pci_bus_id="00000000:C1:00.0"),
        FakeGPU(name="NVIDIA H100 80GB HBM3", pci_bus_id="00000000:3B:00.0"),
    ])
    assert torch_names(nvml, None) == {"cuda:0": "NVIDIA H100 80GB HBM3", "cuda:1": "NVIDIA L4"}
    assert torch_names(nvml, "1") == {"cuda:0": "NVIDIA L4"}


def test_mig_ids_name_their_parent_gpu():
    nvml = FakeNVML([
        FakeGPU(name="NVIDIA A100-SXM4-80GB"),
        FakeGPU(name="NVIDIA H100 80GB HBM3", mig_uuids=("MIG-3f2a9c1e-0000-5111-9222-333344445555",)),
    ])
    gs = nvidia.gpus(nvml, {"CUDA_VISIBLE_DEVICES": "MIG-3f2a9c1e"})
    assert [g.torch_device for g in gs] == [None, "cuda:0"]
    assert gs[1].describe()["mig_uuid"] == "MIG-3f2a9c1e-0000-5111-9222-333344445555"
    # the legacy form MIG-GPU-<parent uuid>/<gi>/<ci>
    legacy = nvidia.gpus(nvml, {"CUDA_VISIBLE_DEVICES": "MIG-GPU-8f1c0000-2b3c-4d5e-8f90-000000000000/1/0"})
    assert [g.torch_device for g in legacy] == ["cuda:0", None]


def test_gpus_keeps_every_physical_gpu_and_its_nvml_index():
    gs = nvidia.gpus(three_gpus(), {"CUDA_VISIBLE_DEVICES": "2"})
    assert [(g.index, g.torch_device) for g in gs] == [(0, None), (1, None), (2, "cuda:0")]
    d = gs[2].describe()
    assert d["torch_device"] == "cuda:0" and d["index"] == 2 and d["name"] == "NVIDIA L4"
    assert d["uuid"] == "GPU-8f1c0002-2b3c-4d5e-8f90-000000000002" and d["pci_bus_id"] == "00000000:03:00.0"
    assert gs[0].describe()["torch_device"] is None
    assert gs[2].sample()["power_w"] == 300.0  # readings still work


def test_cuda_devices_lists_only_visible_gpus_by_torch_ordinal(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    devs = cuda_devices(three_gpus(), {"CUDA_VISIBLE_DEVICES": "2,1"})
    assert [(d.name, d.model, d.capability, d.memory_bytes) for d in devs] == [
        ("cuda:0", "NVIDIA L4", (8, 9), 24 * 2**30),
        ("cuda:1", "NVIDIA H100 80GB HBM3", (9, 0), 81 * 2**30),
    ]
    assert devs[1].uuid == UUID1
    assert cuda_devices(three_gpus(), {}) and len(cuda_devices(three_gpus(), {})) == 3


def test_cuda_devices_without_cuda_is_empty():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cuda_devices(three_gpus(), {}) == []


def test_fingerprint_records_peak_inputs_as_json(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    fake = three_gpus()
    monkeypatch.setattr(nvidia, "load_nvml", lambda nvml=None: fake)
    fp = envmod.fingerprint()
    assert json.loads(json.dumps(fp)) == fp  # JSON types only
    for key in ("hostname", "os", "platform", "machine", "cpu_model", "cpu_cores_physical", "cpu_cores_logical",
                "cpu_affinity", "memory_total_bytes", "python_version", "python_implementation", "torch_version",
                "torch_cuda_version", "torch_num_threads", "hwbench_version", "hwbench_git_commit", "accelerators",
                "driver_version", "cuda_driver_version", "cpu_freq_max_mhz", "cpu_freq_max_source", "cpu_flags",
                "cuda_visible_devices"):
        assert key in fp, key
    assert fp["cuda_visible_devices"] == "1"
    assert [g["torch_device"] for g in fp["accelerators"]] == [None, "cuda:0", None]
    assert {(g["kind"], g["vendor"]) for g in fp["accelerators"]} == {("cuda", "nvidia")}
    assert set(fp["cpu_flags"]) <= set(host.PEAK_CPU_FLAGS) and fp["cpu_flags"] == sorted(fp["cpu_flags"])
    assert (fp["cpu_freq_max_mhz"] is None) == (fp["cpu_freq_max_source"] is None)
    assert envmod.machine_id(fp)[2] == tuple(g["uuid"] for g in fp["accelerators"])


def test_cpu_freq_max_reads_sysfs_then_psutil(tmp_path, monkeypatch):
    import psutil

    def scpufreq(current, min_, max_):  # the fields of psutil's namedtuple, MHz
        return SimpleNamespace(current=current, min=min_, max=max_)

    f = tmp_path / "cpuinfo_max_freq"
    f.write_text("3500000\n")  # kHz
    assert host.cpu_freq_max(str(f)) == (3500.0, str(f))
    missing = str(tmp_path / "absent")
    monkeypatch.setattr(psutil, "cpu_freq", lambda: scpufreq(2400.0, 800.0, 3000.0))
    assert host.cpu_freq_max(missing) == (3000.0, "psutil.cpu_freq().max")
    # a VM reporting max 0 has no known max; the current clock is never used instead
    monkeypatch.setattr(psutil, "cpu_freq", lambda: scpufreq(2445.4, 0.0, 0.0))
    assert host.cpu_freq_max(missing) == (None, None)
    f.write_text("0\n")
    assert host.cpu_freq_max(str(f)) == (None, None)


def test_cpu_scaling_reads_governors_and_boost_from_sysfs(tmp_path):
    for i, gov in enumerate(["performance", "powersave", "powersave"]):
        d = tmp_path / f"cpu{i}" / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(gov + "\n")
    (tmp_path / "intel_pstate").mkdir()
    (tmp_path / "intel_pstate" / "no_turbo").write_text("0\n")
    assert host.cpu_scaling(str(tmp_path)) == {"cpu_governor": "performance,powersave", "cpu_boost": True}
    (tmp_path / "cpufreq").mkdir()
    (tmp_path / "cpufreq" / "boost").write_text("0\n")  # the generic switch wins
    assert host.cpu_scaling(str(tmp_path))["cpu_boost"] is False
    assert host.cpu_scaling(str(tmp_path / "absent")) == {"cpu_governor": None, "cpu_boost": None}
