"""Data and checkpoint cases (hwbench.io, issue 24): the pure parts -- suite keys and
their errors, case ids, the input-headroom rule on constructed rows with known
answers, the derived columns on constructed records, storage facts from constructed
/proc/mounts text, the scratch-folder checks. The runs are in test_io_run.py."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwbench import spec
from hwbench.analysis import feeding
from hwbench.errors import ConfigError
from hwbench.io import CHECKPOINTERS, modes_of, scratch, storage
from hwbench.models import get as get_model

HEAD = '[suite]\nname = "t"\n'


def cases(body: str):
    return spec.parse_suite(HEAD + body, "s.toml").cases


def error(body: str) -> str:
    with pytest.raises(ConfigError) as e:
        spec.parse_suite(HEAD + body, "s.toml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("s.toml: ")
    return msg


# ------------------------------------------------------------------ suite keys
def test_data_keys_expand_into_loader_cases_with_stable_ids():
    got = cases('[[matrix]]\nmodels = ["cnn:tiny"]\nmodes = ["data"]\nbatch_sizes = [8]\nnum_workers = [0, 2]\n'
                'pin_memory = [true, false]\nprefetch_factors = [2, 4]\npersistent_workers = [true]\n')
    ids = [c.case_id for c in got]
    # num_workers = 0 takes neither prefetch nor persistent workers: those collapse there
    assert ids == ["cnn:tiny/data/bs8/img64/fp32/eager/cpu/w0/pin", "cnn:tiny/data/bs8/img64/fp32/eager/cpu/w0",
                   "cnn:tiny/data/bs8/img64/fp32/eager/cpu/w2/pin/pf2/persist",
                   "cnn:tiny/data/bs8/img64/fp32/eager/cpu/w2/pin/pf4/persist",
                   "cnn:tiny/data/bs8/img64/fp32/eager/cpu/w2/pf2/persist",
                   "cnn:tiny/data/bs8/img64/fp32/eager/cpu/w2/pf4/persist"]
    w0 = got[1]
    assert (w0.num_workers, w0.pin_memory, w0.prefetch_factor, w0.persistent_workers) == (0, False, None, None)


def test_checkpointers_expand_and_other_modes_keep_their_ids():
    got = cases('[[matrix]]\nmodels = ["mlp:base"]\nmodes = ["train", "checkpoint"]\n'
                'checkpointers = ["torch_save", "dcp"]\n')
    assert [c.case_id for c in got] == ["mlp:base/train/bs1/fp32/eager/cpu",
                                        "mlp:base/checkpoint/bs1/fp32/eager/cpu/torch_save",
                                        "mlp:base/checkpoint/bs1/fp32/eager/cpu/dcp"]
    assert got[0].checkpointer is None and got[0].num_workers is None


def test_defaults_and_block_size_agree_with_expand():
    body = ('[[matrix]]\nmodels = ["cnn:tiny", "encoder:tiny", "mlp:tiny"]\nmodes = ["train", "checkpoint"]\n'
            '[[matrix]]\nmodels = ["cnn:tiny", "encoder:tiny"]\nmodes = ["data", "infer"]\nnum_workers = [0, 1, 3]\n'
            'prefetch_factors = [1, 2]\n')
    loaded = spec.parse_suite(HEAD + body, "s.toml")
    assert sum(spec.block_size(b) for b in loaded.spec.matrix) >= len(loaded.cases)
    assert [c.checkpointer for c in loaded.cases if c.mode == "checkpoint"] == ["torch_save"] * 3
    data = [c for c in loaded.cases if c.mode == "data"]
    assert len(data) == 2 * (1 + 2 * 2)  # per model: w0 once, w1 and w3 at two prefetch factors


def test_the_data_mode_needs_a_pipeline_and_checkpoint_runs_anywhere():
    assert "data" in modes_of(get_model("cnn:tiny")[0]) and "data" in modes_of(get_model("llama:tiny")[0])
    assert "data" not in modes_of(get_model("mlp:tiny")[0]) and "checkpoint" in modes_of(get_model("mlp:tiny")[0])
    msg = error('[[matrix]]\nmodels = ["mlp:tiny"]\nmodes = ["data"]\n')
    assert "matrix[0].modes" in msg and "has no mode 'data'" in msg and "checkpoint" in msg


@pytest.mark.parametrize("line,needles", [
    ("num_workers = [-1]", ["matrix[0].num_workers[0]", "allowed: 0 to"]),
    ("prefetch_factors = [0]", ["matrix[0].prefetch_factors[0]", "from 1 to"]),
    ("prefetch_factors = [-2]", ["matrix[0].prefetch_factors[0]", "from 1 to"]),
    ("pin_memory = [1]", ["matrix[0].pin_memory[0]"]),
    ("persistent_workers = [\"yes\"]", ["matrix[0].persistent_workers[0]"]),
])
def test_bad_loader_values_are_one_line_naming_the_field(line, needles):
    msg = error(f'[[matrix]]\nmodels = ["cnn:tiny"]\nmodes = ["data"]\n{line}\n')
    for n in needles:
        assert n in msg, msg


def test_bad_checkpointer_lists_the_allowed_ones():
    msg = error('[[matrix]]\nmodels = ["mlp:tiny"]\nmodes = ["checkpoint"]\ncheckpointers = ["torchsave"]\n')
    assert "matrix[0].checkpointers[0]" in msg and "did you mean 'torch_save'" in msg
    assert "allowed: " + ", ".join(CHECKPOINTERS.names()) in msg


@pytest.mark.parametrize("body,needle", [
    ('modes = ["train"]\nnum_workers = [2]', 'matrix[0].num_workers: applies to modes = ["data"] only'),
    ('modes = ["infer"]\ncheckpointers = ["dcp"]', 'matrix[0].checkpointers: applies to modes = ["checkpoint"]'),
    ('modes = ["data"]\nbackends = ["eager", "compile"]', "matrix[0].backends: modes data run no model step"),
    ('modes = ["checkpoint"]\nvariants = ["prune:0.5"]', "matrix[0].variants: modes checkpoint run no model step"),
])
def test_keys_outside_their_mode_are_errors(body, needle):
    assert needle in error(f'[[matrix]]\nmodels = ["cnn:tiny"]\n{body}\n')


def test_checkpoint_dir_setting_is_validated():
    assert "settings.checkpoint_dir" in error('[settings]\ncheckpoint_dir = ""\n[[matrix]]\nmodels = ["mlp:tiny"]\n')
    assert "settings.data_samples" in error('[settings]\ndata_samples = 0\n[[matrix]]\nmodels = ["mlp:tiny"]\n')


# ------------------------------------------------------------ the headroom rule
def row(mode, tput, status="ok", **kw):
    base = {"run_id": "r", "hostname": "h", "model": "cnn:tiny", "batch_size": 8, "seq_len": None,
            "image_size": 64, "precision": "fp32", "device": "cpu", "parallelism": "none", "mode": mode,
            "status": status, "throughput_samples_per_s": tput, "num_workers": None, "pin_memory": None,
            "prefetch_factor": None, "persistent_workers": None}
    return {**base, **kw}


def test_headroom_is_the_fastest_pipeline_over_the_step():
    train = row("train", 100.0)
    slow = row("data", 50.0, num_workers=0, pin_memory=False)
    fast = row("data", 250.0, num_workers=2, pin_memory=True, prefetch_factor=2)
    feeding.input_headroom([train, slow, fast])
    assert train["input_headroom"] == pytest.approx(2.5) and train["input_bound"] is False
    assert train["input_loader"] == "w2/pin/pf2"
    assert slow["input_headroom"] == pytest.approx(0.5) and fast["input_headroom"] == pytest.approx(2.5)


def test_a_pipeline_slower_than_the_step_is_input_bound():
    train = row("train", 100.0)
    feeding.input_headroom([train, row("data", 80.0, num_workers=0)])
    assert train["input_headroom"] == pytest.approx(0.8) and train["input_bound"] is True


def test_partners_share_run_model_batch_shape_precision_and_device():
    train = row("train", 100.0)
    others = [row("data", 10.0, run_id="other"), row("data", 10.0, batch_size=16), row("data", 10.0, image_size=128),
              row("data", 10.0, precision="bf16"), row("data", 10.0, device="cuda:0"),
              row("data", 10.0, model="vit:tiny"), row("data", 10.0, status="failed"),
              row("data", None)]
    feeding.input_headroom([train, *others])
    assert "input_headroom" not in train and "input_bound" not in train  # nothing to decide from
    par = row("train", 100.0, parallelism="ddp")
    feeding.input_headroom([par, row("data", 10.0)])
    assert "input_bound" not in par


@given(st.floats(1e-3, 1e6), st.lists(st.floats(1e-3, 1e6), min_size=1, max_size=5))
def test_input_bound_iff_every_pipeline_is_slower_than_the_step(step, pipes):
    train = row("train", step)
    data = [row("data", v, num_workers=i) for i, v in enumerate(pipes)]
    feeding.input_headroom([train, *data])
    assert train["input_headroom"] == pytest.approx(max(pipes) / step)
    assert train["input_bound"] == all(v < step for v in pipes)


# --------------------------------------------------------- derived io columns
def _result(mode, raw, **facts):
    from hwbench.records import CaseIdentity, CaseResult, Facts, Measurement

    ident = {"data": dict(num_workers=2, pin_memory=False, prefetch_factor=2, persistent_workers=False),
             "checkpoint": dict(checkpointer="torch_save")}[mode]
    return CaseResult(case_id="x", case=CaseIdentity(model="cnn:tiny", mode=mode, batch_size=4, precision="fp32",
                                                     backend="eager", device="cpu", image_size=64, **ident),
                      status="ok", measurement=Measurement(raw_times_s=raw, first_iter_s=0.1, warmup_s=0.1,
                                                           measured_s=2.0),
                      facts=Facts(params=10, flops_per_sample=0.0, **facts))


def test_data_columns_are_sustained_rates_from_the_raw_times():
    c = _result("data", [[0.01, 0.03], [0.02, 0.04]], data_bytes_per_sample=1000.0, data_loader_wait_s=1.5,
                data_loader_cpu_s=3.0)
    out = feeding.io_columns(c, {"batch_size": 4, "measured_s": 2.0, "throughput_samples_per_s": 999.0})
    assert out["throughput_samples_per_s"] == pytest.approx(16 / 0.1)  # 4 batches of 4 in 0.1 s, not the median
    assert out["bytes_per_s"] == pytest.approx(160 * 1000)
    assert out["loader_wait_fraction"] == pytest.approx(0.75) and out["loader_cpu_util_pct"] == pytest.approx(150)
    assert out["achieved_tflops"] is None


def test_checkpoint_columns_are_bytes_over_median_times():
    c = _result("checkpoint", [[0.5, 1.0, 2.0]], checkpoint_bytes=4_000_000_000, checkpoint_load_s=[0.25, 0.5, 4.0])
    out = feeding.io_columns(c, {"batch_size": 4, "measured_s": 2.0, "throughput_samples_per_s": 4.0})
    assert out["checkpoint_save_gbs"] == pytest.approx(4.0) and out["checkpoint_load_gbs"] == pytest.approx(8.0)
    assert out["checkpoint_save_s_p50"] == 1.0 and out["throughput_samples_per_s"] is None


# ------------------------------------------------------------------- storage
MOUNTS = """\
overlay / overlay rw,relatime,lowerdir=/x 0 0
proc /proc proc rw,nosuid 0 0
/dev/sda1 /data ext4 rw,relatime 0 0
/dev/nvme0n1p2 /data/fast xfs rw 0 0
tmpfs /data/fast/ram tmpfs rw 0 0
/dev/sdb1 /mnt/with\\040space ext4 ro 0 0
/dev/sdc1 /data ext4 rw 0 0
"""


@pytest.mark.parametrize("path,want", [
    ("/", ("/", "overlay")), ("/home/u", ("/", "overlay")), ("/data", ("/data", "/dev/sdc1")),
    ("/data/x", ("/data", "/dev/sdc1")), ("/datax", ("/", "overlay")),
    ("/data/fast/y", ("/data/fast", "/dev/nvme0n1p2")),
    ("/data/fast/ram/z", ("/data/fast/ram", "tmpfs")), ("/mnt/with space/a", ("/mnt/with space", "/dev/sdb1")),
])
def test_mount_for_is_the_longest_mount_point_last_listed(path, want):
    m = storage.mount_for(path, storage.parse_mounts(MOUNTS))
    assert (m.mount_point, m.device) == want


def _sys_block(tmp_path: Path) -> Path:
    root = tmp_path / "class" / "block"
    (tmp_path / "devices" / "sda" / "sda1").mkdir(parents=True)
    (tmp_path / "devices" / "sda" / "queue").mkdir()
    (tmp_path / "devices" / "sda" / "queue" / "rotational").write_text("1\n")
    (tmp_path / "devices" / "nvme0n1" / "queue").mkdir(parents=True)
    (tmp_path / "devices" / "nvme0n1" / "queue" / "rotational").write_text("0\n")
    (tmp_path / "devices" / "nvme0n1" / "nvme0n1p2").mkdir()
    root.mkdir(parents=True)
    for name, target in (("sda1", "sda/sda1"), ("nvme0n1p2", "nvme0n1/nvme0n1p2"), ("nvme0n1", "nvme0n1")):
        (root / name).symlink_to(tmp_path / "devices" / target)
    return root


def test_rotational_reads_the_partitions_disk_and_is_null_where_the_kernel_says_nothing(tmp_path):
    sysb = _sys_block(tmp_path)
    assert storage.rotational("/dev/sda1", sysb) is True
    assert storage.rotational("/dev/nvme0n1p2", sysb) is False
    assert storage.rotational("/dev/nvme0n1", sysb) is False
    assert storage.rotational("/dev/sdz9", sysb) is None
    assert storage.rotational("overlay", sysb) is None and storage.rotational("tmpfs", sysb) is None


def test_describe_gives_the_storage_facts_of_a_folder(tmp_path):
    sysb = _sys_block(tmp_path)
    got = storage.describe("/data/fast/run", "scratch", MOUNTS, sysb)
    assert got == {"role": "scratch", "path": "/data/fast/run", "mount_point": "/data/fast", "fs_type": "xfs",
                   "device": "/dev/nvme0n1p2", "rotational": False}
    assert storage.describe("/x", "results", "", sysb)["fs_type"] is None  # no mounts: nulls


def test_scratch_folder_checks_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="does not exist; allowed: an existing, writable folder"):
        storage.check_scratch(tmp_path / "missing", "s.toml: settings.checkpoint_dir")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        storage.check_scratch(tmp_path / "f", "s.toml: settings.checkpoint_dir")

    class RO:
        f_flag = storage.os.ST_RDONLY

    monkeypatch.setattr(storage.os, "statvfs", lambda p: RO)
    with pytest.raises(ConfigError, match="read-only filesystem"):
        storage.check_scratch(tmp_path, "s.toml: settings.checkpoint_dir")


def test_scratch_folder_is_removed_also_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with scratch.scratch(str(tmp_path)) as d:
            (d / "file").write_bytes(b"x" * 100)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------- pipeline and checkpoint pieces
def test_jpeg_pipeline_decodes_and_augments_to_the_case_shape(tmp_path):
    import torch

    from hwbench.io import data

    files = data.write_images(tmp_path, 3, 64, 10, seed=0)
    assert all(Path(p).stat().st_size > 0 and 0 <= y < 10 for p, y in files)
    ds = data.JpegImages(files, 64, seed=0)
    x, y = ds[1]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and y == files[1][1]
    assert -3 < float(x.min()) and float(x.max()) < 3  # normalised, not 0-255


def test_token_shards_read_each_sample_and_its_next_tokens(tmp_path):
    import numpy as np

    from hwbench.io import data

    n, seq = data.SHARD_SAMPLES + 5, 7
    paths = data.write_shards(tmp_path, n, seq, 100, seed=0)
    assert len(paths) == 2
    ds = data.TokenShards(paths, n, seq)
    whole = np.concatenate([np.fromfile(p, dtype=np.int32).reshape(-1, seq + 1) for p in paths])
    for i in (0, data.SHARD_SAMPLES - 1, data.SHARD_SAMPLES, n - 1):
        ids, nxt = ds[i]
        assert ids.tolist() == whole[i, :-1].tolist() and nxt.tolist() == whole[i, 1:].tolist()
    ds.close()


def test_device_feed_rolls_over_epochs_and_counts_its_wait():
    import torch

    from hwbench.io import data

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(10.0), torch.arange(10)),
                                         batch_size=4, drop_last=True)
    feed = data.DeviceFeed(loader, torch.device("cpu"), torch.bfloat16)
    got = [feed() for _ in range(5)]  # 2 batches per epoch: three epochs
    assert all(x.dtype == torch.bfloat16 and x.shape == (4,) for x, _ in got)
    assert feed.batches == 5 and feed.wait_s > 0 and feed.stream is None


@pytest.mark.parametrize("kind", ["torch_save", "dcp", "dcp_async"])
def test_checkpointers_restore_the_model_and_optimizer_they_saved(tmp_path, kind):
    import torch

    from hwbench.io import checkpoint

    checkpoint._quiet_dcp()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(3, 8)).sum().backward()
    opt.step()
    want = {k: v.clone() for k, v in model.state_dict().items()}
    moment = opt.state[model[0].weight]["exp_avg"].clone()
    (tmp_path / "c").mkdir()
    blocked = checkpoint.save(kind, checkpoint.state(model, opt), tmp_path / "c")
    assert (blocked is not None) == (kind == "dcp_async")
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    opt.state[model[0].weight]["exp_avg"].zero_()
    checkpoint.load(kind, model, opt, tmp_path / "c", torch.device("cpu"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in want.items())
    assert torch.equal(opt.state[model[0].weight]["exp_avg"], moment)


# ---------------------------------------------- the scratch folder, before any case
@pytest.mark.parametrize("where", ["missing", "a file"])
def test_a_bad_checkpoint_dir_stops_the_run_before_any_case(tmp_path, fake_launcher, where):
    from conftest import run_suite

    target = tmp_path / "nope"
    if where == "a file":
        target.write_text("x")
    ran = []
    fake_launcher.before_case = lambda case: ran.append(case)
    with pytest.raises(ConfigError) as e:
        run_suite(tmp_path, '[[matrix]]\nmodels = ["mlp:tiny"]\nmodes = ["checkpoint"]\n',
                  settings=f'checkpoint_dir = "{target}"', launcher=fake_launcher)
    msg = str(e.value)
    assert "settings.checkpoint_dir" in msg and "allowed: an existing, writable folder" in msg and "\n" not in msg
    assert ran == [] and not list((tmp_path / "out").glob("*.json"))


def test_the_default_scratch_folder_is_the_results_folder(tmp_path, fake_launcher):
    from conftest import run_suite

    _, out = run_suite(tmp_path, '[[matrix]]\nmodels = ["mlp:tiny"]\nmodes = ["checkpoint"]\n',
                       launcher=fake_launcher)
    resolved = out.record.suite.resolved["settings"]["checkpoint_dir"]
    assert Path(resolved) == (tmp_path / "out").resolve()
    roles = {s.role: s for s in out.record.segments[0].environment.storage}
    assert set(roles) == {"results", "scratch"} and roles["scratch"].path == resolved


class FakeStreams:
    """A device module with streams (torch.cuda's shape), recording what the feed asks
    of it; the tensors stay on the CPU. Unverified on a real accelerator: this checks
    the order of the feed's calls, not CUDA's semantics."""

    def __init__(self):
        self.log = []
        self.side = None
        self.inside = False

    def Stream(self, device):  # noqa: N802 - torch.cuda.Stream's name
        self.side = "side"
        return self.side

    def stream(self, s):
        import contextlib

        fake = self

        @contextlib.contextmanager
        def ctx():
            fake.inside = True
            fake.log.append(("enter", s))
            yield
            fake.inside = False

        return ctx()

    def current_stream(self, device):
        fake = self

        class Main:
            def wait_stream(self, s):
                fake.log.append(("wait", s))

        return Main()


def test_device_feed_copies_the_next_batch_on_a_side_stream_before_handing_over():
    import torch

    from hwbench.io import data

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(8.0), torch.arange(8)),
                                         batch_size=2)
    fake = FakeStreams()
    feed = data.DeviceFeed(loader, torch.device("cpu"), None, mod=fake)
    recorded = []
    feed.record = lambda t, s: recorded.append(t)
    x0, _ = feed()
    # the first call copies batch 0 and then batch 1 on the side stream; batch 0 is handed
    # over after the consumer's stream waited for the side stream
    assert fake.log == [("enter", "side"), ("wait", "side"), ("enter", "side")]
    assert x0.tolist() == [0.0, 1.0] and len(recorded) == 2
    x1, _ = feed()
    assert x1.tolist() == [2.0, 3.0]  # the batch copied ahead
    assert fake.log[3:] == [("wait", "side"), ("enter", "side")]  # one copy ahead per call, never more


def test_a_killed_workers_scratch_folders_are_found_by_its_pid_and_only_its(tmp_path):
    """A worker SIGKILLed after the grace period cannot clean up: the runner removes the
    folders whose names carry that worker's pid, and nobody else's (known answer)."""
    import os

    from hwbench.io import SCRATCH_PREFIX
    from hwbench.io.scratch import remove_left, scratch

    with scratch(str(tmp_path)) as mine:
        assert mine.name.startswith(f"{SCRATCH_PREFIX}{os.getpid()}-")
        (mine / "shard").write_bytes(b"x" * 10)
        other = tmp_path / f"{SCRATCH_PREFIX}{os.getpid() + 1}-abc"  # another worker's, running
        other.mkdir()
        assert remove_left(str(tmp_path), os.getpid()) == [mine]
        assert not mine.exists() and other.exists()
    assert remove_left(str(tmp_path), os.getpid()) == []


def test_a_killed_checkpoint_groups_scratch_is_removed_by_its_ranks_pids(tmp_path, monkeypatch):
    """A sharded checkpoint case's rank 0 makes the scratch folder; a group killed before
    its clean-up leaves it: the launcher removes the folders of every pid of the group
    (agent and ranks), and only for data / checkpoint cases (known answer)."""
    from types import SimpleNamespace

    from hwbench import launch
    from hwbench.io import SCRATCH_PREFIX

    rank_pid, other_pid = 4_000_001, 4_000_002
    left = tmp_path / f"{SCRATCH_PREFIX}{rank_pid}-x"
    running = tmp_path / f"{SCRATCH_PREFIX}{other_pid}-y"
    settings = SimpleNamespace(checkpoint_dir=str(tmp_path))

    def fake_group(case, settings, **kw):
        left.mkdir(exist_ok=True)
        running.mkdir(exist_ok=True)
        run = launch.CaseRun("timeout", "killed")
        run.pids = [4_000_000, rank_pid]
        return run

    monkeypatch.setattr(launch, "run_group", fake_group)
    launch.ProcessLauncher().run_group(SimpleNamespace(mode="infer"), settings)
    assert left.exists()  # not a data / checkpoint case: nothing of it is scratch
    launch.ProcessLauncher().run_group(SimpleNamespace(mode="checkpoint"), settings)
    assert not left.exists() and running.exists()
