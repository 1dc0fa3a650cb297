"""Bad input answered in one line with exit code 2, before anything starts (issue 19,
item 7): output paths, device names, world sizes beyond the machine, numbers beyond
their range, deep nesting, odd environment values. The pure checks are called in
process; where the CLI path is what is tested, the real CLI runs in a subprocess."""

import os

import pytest

from hwbench.devices import DeviceInfo
from hwbench.errors import UserError
from hwbench.spec import parse_suite
from hwbench.writable import output_file, output_folder
from conftest import ROOT, hwbench

EXAMPLE = ROOT / "results" / "examples" / "smoke-cpu-amd-epyc-2cores.json"
PARALLEL = ('[suite]\nname = "x"\n[[matrix]]\nmodels=["encoder:tiny"]\nmodes=["train"]\nbatch_sizes=[4]\n'
            'parallelism=["ddp"]\nworld_sizes=[1, 2, 10000]\n')


def one_line(r, needle: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr[-2000:]
    assert needle in r.stderr, r.stderr


# ------------------------------------------------------------------ output paths
@pytest.fixture
def afile(tmp_path):
    p = tmp_path / "afile"
    p.write_text("a file, not a folder")
    return p


def test_output_file_checks_name_the_option_and_what_is_wrong(tmp_path, afile):
    with pytest.raises(UserError, match=r"^--output .*/afile/x.csv: .*/afile is a file, not a folder$"):
        output_file(afile / "x.csv", "--output")
    with pytest.raises(UserError, match=r"^--html .*/afile/sub/x.html: .*/afile is a file, not a folder$"):
        output_file(afile / "sub" / "x.html", "--html")
    with pytest.raises(UserError, match=r"^--output /proc/x.csv: cannot write: "):
        output_file("/proc/x.csv", "--output")
    with pytest.raises(UserError, match="is a folder; name a file"):
        output_file(tmp_path, "--output")
    with pytest.raises(UserError, match="exists; choose a new file"):
        output_file(afile, "--out", new=True)
    ok = output_file(tmp_path / "new" / "deeper" / "x.csv", "--output")  # folders are made
    assert ok.parent.is_dir() and os.listdir(ok.parent) == []  # the write check left nothing


def test_output_folder_checks(tmp_path, afile):
    with pytest.raises(UserError, match=r"^--out .*/afile: is a file, not a folder$"):
        output_folder(afile, "--out")
    with pytest.raises(UserError, match=r"^--out .*/afile/profiles: .*/afile is a file, not a folder$"):
        output_folder(afile / "profiles", "--out")
    with pytest.raises(UserError, match=r"^--out /proc/hwbench-x: cannot write: "):
        output_folder("/proc/hwbench-x", "--out")
    assert output_folder(tmp_path / "p", "--out").is_dir()


@pytest.mark.parametrize("args,needle", [
    (["--html", "{afile}/x.html"], "--html {afile}/x.html: {afile} is a file, not a folder"),
    (["--output", "/proc/x.csv", "--format", "csv"], "--output /proc/x.csv: cannot write: "),
    (["--output", "{afile}/x.csv", "--format", "csv"], "--output {afile}/x.csv: {afile} is a file, not a folder"),
    (["--output", "{afile}/x.parquet", "--format", "parquet"], "is a file, not a folder"),
])
def test_report_output_paths(afile, args, needle):
    args = [a.format(afile=afile) for a in args]
    one_line(hwbench("report", EXAMPLE, *args), needle.format(afile=afile))


def test_merge_and_probe_output_paths(tmp_path, afile):
    one_line(hwbench("merge", EXAMPLE, "--out", afile / "m.json"), f"--out {afile}/m.json: {afile} is a file")
    one_line(hwbench("merge", EXAMPLE, "--out", afile), f"--out {afile}: exists; choose a new file")
    one_line(hwbench("probe", "--out", afile / "profiles"), f"--out {afile}/profiles: {afile} is a file")
    one_line(hwbench("probe", "--out", "/proc/hwbench-profiles"), "--out /proc/hwbench-profiles: cannot write: ")


def test_run_output_folder_under_proc(tmp_path):
    one_line(hwbench("run", ROOT / "tests" / "data" / "tiny.toml", "--out", "/proc/hwbench-out"),
             "cannot write the results file")


# ------------------------------------------------------------------ devices
@pytest.mark.parametrize("args,needle", [
    (["--device", "cuda:²"], "--device 'cuda:²': not one of cpu, cuda, cuda:N, rocm, rocm:N (N in digits 0-9)"),
    (["--device", "gpu"], "--device 'gpu': not one of cpu, cuda, cuda:N, rocm, rocm:N"),
    (["--collectives", "--device", "cuda:²"], "--device 'cuda:²': not one of"),
    (["--collectives", "--device", "cuda:99"], "--device cuda:99: no such CUDA device here"),
    (["--collectives", "--world-size", str(os.cpu_count() + 1)], "runs one rank per core; this machine has"),
    (["--collectives", "--max-bytes", str(2**40)], "Invalid value for '--max-bytes'"),
])
def test_probe_device_and_group_checks_come_before_any_group(args, needle):
    r = hwbench("probe", *args, timeout=120)
    one_line(r, needle)
    assert "ranks on" not in r.stderr  # no group was started


def test_collectives_on_more_gpus_than_present_fail_before_the_group():
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    one_line(hwbench("probe", "--collectives", "--device", "cuda", "--world-size", n + 1),
             f"--world-size {n + 1}: --collectives on cuda runs one rank per GPU")


def test_world_sizes_beyond_the_cores_are_skipped_with_the_reason():
    from hwbench.planning import plan

    suite = parse_suite(PARALLEL, "p.toml")
    cpu = [DeviceInfo("cpu", "cpu", "test CPU")]
    planned = {p.case.world_size: p.skip_reason for p in plan(suite, present=cpu, cores=2)}
    assert planned[1] is None and planned[2] is None
    assert planned[10000] == "ddp: world size 10000 needs 10000 CPU cores (one per rank); this machine has 2 usable"
    assert plan(suite, present=cpu, cores=1)[1].skip_reason.startswith("ddp: world size 2 needs 2 CPU cores")


def test_dry_run_plans_an_oversized_world_as_skipped(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text(PARALLEL)
    r = hwbench("run", p, "--dry-run", "--filter", "*ddp10000", env={"COLUMNS": "200"})
    assert r.returncode == 0 and "0 to run, 1 skipped" in r.stdout and "needs 10000 CPU cores" in r.stdout


# ------------------------------------------------------------------ suites through the CLI
@pytest.mark.parametrize("body,needle", [
    ('[suite]\nname="x"\n[[matrix]]\nmodels=["mlp:tiny"]\nbatch_sizes=[4611686018427387905]',
     "s.toml: matrix[0].batch_sizes[0]: must be an integer from 1 to 4611686018427387904"),
    ('[suite]\nname=' + "[" * 5000 + "]" * 5000, "s.toml: not a suite file (TOML nested too deeply)"),
    ('[suite]\nname="x"\n[[matrix]]\nmodels=["mlp:tiny"]\ndevices=["cuda:²"]', "matrix[0].devices[0]: 'cuda:²'"),
])
def test_bad_suites_are_one_line_before_any_worker(tmp_path, body, needle):
    p = tmp_path / "s.toml"
    p.write_text(body)
    r = hwbench("run", p, "--out", tmp_path / "out", cwd=tmp_path)
    one_line(r, needle)
    assert not (tmp_path / "out").exists()  # nothing started, no "interrupted" file


# ------------------------------------------------------------------ numbers and environment
PRICES = """
[[machine]]
match = "AMD EPYC*"
usd_per_hour = 0.8
source = "test rate"
date = 2026-10-15
"""


@pytest.mark.parametrize("args,needle", [
    (["--train", "mlp:tiny", "--tokens", "nan"], "Invalid value for '--tokens': 'nan' is not a finite number"),
    (["--train", "mlp:tiny", "--tokens", "inf"], "Invalid value for '--tokens': 'inf' is not a finite number"),
    (["--train", "mlp:tiny", "--tokens", "1e308"], "Invalid value for '--tokens'"),
    (["--train", "mlp", "--tokens", "1e9", "--params", "inf"], "Invalid value for '--params'"),
    (["--train", "mlp:tiny", "--tokens", "1e9", "--scaling-efficiency", "nan"], "'--scaling-efficiency'"),
    (["--train", "mlp:tiny", "--tokens", "1e9", "--scaling-efficiency", "1e-300"], "'--scaling-efficiency'"),
    (["--train", "mlp:tiny", "--tokens", "1e9", "--devices", str(10**23)], "Invalid value for '--devices'"),
    (["--train", "mlp:tiny", "--tokens", "1e9", "--devices", "-2"], "Invalid value for '--devices'"),
])
def test_procure_numbers_are_finite_and_bounded(tmp_path, args, needle):
    prices = tmp_path / "p.toml"
    prices.write_text(PRICES)
    one_line(hwbench("procure", EXAMPLE, "--prices", prices, *args), needle)


def test_procure_at_its_bounds_prints_finite_figures(tmp_path):
    prices = tmp_path / "p.toml"
    prices.write_text(PRICES)
    r = hwbench("procure", EXAMPLE, "--prices", prices, "--train", "mlp", "--tokens", "1e18", "--params", "1e16",
                "--devices", 10**8, "--scaling-efficiency", "0.01", "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert "inf" not in r.stdout.lower() and "nan" not in r.stdout.lower()


@pytest.mark.parametrize("option", ["--prices", "--mix"])
def test_price_and_mix_files_nested_deeply_are_one_line(tmp_path, option):
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    prices = tmp_path / "p.toml"
    prices.write_text(PRICES)
    args = ["--prices", deep] if option == "--prices" else ["--prices", prices, "--mix", deep]
    one_line(hwbench("procure", EXAMPLE, *args), f"{deep}: not a ")


def test_odd_terminal_sizes_are_ignored():
    r = hwbench("list", "models", env={"COLUMNS": "²", "LINES": "x"})
    assert r.returncode == 0 and "Traceback" not in r.stderr and "mlp:tiny" in r.stdout


@pytest.mark.parametrize("args,env,needle", [
    (["--rdzv-endpoint", "h:²", "--nnodes", "2", "--node-rank", "0", "--rdzv-id", "j"], {},
     "--rdzv-endpoint: expected HOST:PORT with a port in 1..65535, got 'h:²'"),
    (["--rdzv-endpoint", "h:29500", "--node-rank", "0", "--rdzv-id", "j"], {"SLURM_NNODES": "²"},
     "--rdzv-endpoint: also give --nnodes"),
    (["--rdzv-endpoint", "h:29500", "--nnodes", str(10**23), "--node-rank", "0", "--rdzv-id", "j"], {},
     "--nnodes: at most 100000 nodes"),
])
def test_multi_node_options(args, env, needle):
    one_line(hwbench("run", ROOT / "tests" / "data" / "tiny.toml", "--dry-run", *args, env=env), needle)


@pytest.mark.parametrize("value,needle", [("nan", "'nan' is not a finite number"), ("inf", "'inf' is not a finite"),
                                          ("1e9", "is not in the range 0<=x<=604800")])
def test_run_grace_is_a_finite_duration(value, needle):
    r = hwbench("run", ROOT / "tests" / "data" / "tiny.toml", "--dry-run", "--grace-s", value)
    one_line(r, needle)
    assert "Invalid value for '--grace-s'" in r.stderr


def test_finite_float_refuses_what_float_range_lets_through():
    import click

    from hwbench.options import FiniteFloat

    t = FiniteFloat(min=0, max=1)
    assert t.convert("0.5", None, None) == 0.5
    for bad in ("nan", "-nan", "inf", "-inf", "2", "x", "²"):
        with pytest.raises(click.BadParameter):
            t.convert(bad, None, None)
    assert click.FloatRange(min=0, max=1).convert("nan", None, None) != 0  # what FiniteFloat is for


LONG = "x" * 300  # longer than a file name may be (255 bytes on common filesystems)


@pytest.mark.parametrize("args,needle", [
    (["report", f"{LONG}.json"], "file name too long"),
    (["run", f"{LONG}.toml"], "file name too long"),
    (["run", "tests/data/tiny.toml", "--resume", f"{LONG}.json"], "file name too long"),
    (["report", str(EXAMPLE), "--output", f"{LONG}.csv", "--format", "csv"], f"--output {LONG}.csv: cannot write"),
    (["merge", str(EXAMPLE), "--out", f"{LONG}.json"], f"--out {LONG}.json: cannot write"),
    (["probe", "--out", f"{LONG}/p"], f"--out {LONG}/p: cannot write"),
])
def test_paths_longer_than_the_filesystem_allows(tmp_path, args, needle):
    args = [a if a != "tests/data/tiny.toml" else str(ROOT / a) for a in args]
    one_line(hwbench(*args, cwd=tmp_path), needle)
