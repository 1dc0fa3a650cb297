"""The real CLI in a subprocess: run, report, list, env, dry-run, resume, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from hwbench import load_results
from hwbench.results import read_record
from conftest import DATA, ROOT, hwbench, write_suite


def results_file(out_dir):
    files = list(out_dir.glob("*.json"))
    assert len(files) == 1, files
    return files[0]


def test_run_then_report_then_load(tmp_path):
    r = hwbench("run", DATA / "tiny.toml", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "fixed cost per case" in r.stdout and "cases: ok 4" in r.stdout
    f = results_file(tmp_path)
    rec = read_record(f)
    flagged = {fl["flag"] for c in rec["cases"] for fl in c["flags"]}
    assert ("warnings:" in r.stdout) == bool(flagged)  # the summary names every flag raised
    assert all(name in r.stdout for name in flagged)
    assert rec["status"] == "complete" and len(rec["cases"]) == 4
    assert rec["environment"]["torch_version"] and rec["environment"]["cpu_model"]
    assert rec["suite"]["resolved"]["settings"]["min_iters"] == 3

    md = hwbench("report", f, "--format", "markdown")
    assert md.returncode == 0 and md.stdout.count("| mlp:tiny") == 2 and "p50 ms" in md.stdout
    csv = hwbench("report", f, "--format", "csv")
    header = csv.stdout.splitlines()[0].split(",")
    assert {"case_id", "latency_ms_p50", "throughput_samples_per_s"} <= set(header)
    table = hwbench("report", f)
    assert table.returncode == 0 and "encoder:tiny/train" in table.stdout

    df = load_results([f])
    assert len(df) == 4 and (df["status"] == "ok").all()


def test_dry_run_lists_cases_and_skips(tmp_path):
    p = write_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny"]\nprecisions=["fp32","tf32"]\ndevices=["cpu","cuda"]\n')
    r = hwbench("run", p, "--dry-run", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "mlp:tiny/infer/bs1/fp32/eager/cpu" in r.stdout and "run on" in r.stdout
    assert "tf32 needs a CUDA GPU" in r.stdout
    assert "1 to run, 3 skipped" in r.stdout or "4 to run" in r.stdout  # 4 where a GPU is present
    assert not list(tmp_path.glob("*.json"))


def test_list_and_env():
    m = hwbench("list", "models", env={"COLUMNS": "200"})
    assert m.returncode == 0 and "decoder:xl" in m.stdout and "1,557.61 M" in m.stdout
    s = hwbench("list", "suites", env={"COLUMNS": "200"})
    assert s.returncode == 0 and "smoke.toml" in s.stdout
    e = hwbench("env", "--json")
    fp = json.loads(e.stdout)
    assert fp["cpu_cores_logical"] >= 1 and "torch_version" in fp


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "nope.toml"], "nope.toml: no such suite file"),
        (["run", "smoke.toml"], "smoke.toml: no such suite file (did you mean suites/smoke.toml?)"),
        (["report", "missing.json"], "missing.json: no such results file"),
        (["run", "suites/smoke.toml", "--filter", "zzz=1"], "unknown field 'zzz'"),
        (["run", "suites/smoke.toml", "--resume", "missing.json"], "missing.json: no such results file"),
        (["report", "x.json", "--format", "xml"], "Invalid value for '--format'"),
        (["run"], "Missing argument 'SUITE'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["list", "gpus"], "'gpus' is not one of 'models', 'suites'"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, needle):
    r = hwbench(*args)
    assert r.returncode == 2
    assert needle in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_bad_suite_is_one_line_exit_2(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[suite]\nname="x"\n[[matrix]]\nmodels=["gpt:huge"]\n')
    r = hwbench("run", p)
    assert r.returncode == 2 and "bad.toml: matrix[0].models[0]: unknown model 'gpt:huge'" in r.stderr
    assert r.stderr.count("\n") == 1


def test_truncated_results_file_is_one_line_exit_2(tmp_path):
    assert hwbench("run", DATA / "tiny.toml", "--out", tmp_path).returncode == 0
    f = results_file(tmp_path)
    f.write_text(f.read_text()[:300])
    r = hwbench("report", f)
    assert r.returncode == 2 and "truncated results file" in r.stderr and "Traceback" not in r.stderr


def test_kill_9_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path):
    # 6 cases of ~0.3 s each; kill the runner hard once two are in the file.
    p = write_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer","train"]\nbatch_sizes=[1,2,4]\n', settings="min_time_s = 0.3")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "hwbench.cli", "run", str(p), "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    done_before = []
    descendants = set()
    while time.time() < deadline:
        try:
            descendants |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            break
        files = list(out.glob("*.json")) if out.exists() else []
        if files:
            done_before = read_record(files[0])["cases"]  # valid JSON at every instant
            if len(done_before) >= 2:
                break
        time.sleep(0.02)
    descendants |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    f = results_file(out)
    before = read_record(f)
    assert before["status"] == "running" and len(before["cases"]) >= 2
    # neither the forkserver nor a worker outlives the runner
    assert len(descendants) >= 2  # the forkserver and at least one worker were seen
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in descendants if psutil.pid_exists(p)], timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    r = hwbench("run", p, "--resume", f)
    assert r.returncode == 0, r.stderr
    after = read_record(f)
    ids = [c["case_id"] for c in after["cases"]]
    assert len(ids) == len(set(ids)) == 6
    kept = {c["case_id"]: c for c in before["cases"]}
    assert all(c == kept[c["case_id"]] for c in after["cases"] if c["case_id"] in kept)
    assert after["status"] == "complete" and after.get("resumed")


def start_and_wait_for_first_case(tmp_path, min_time_s: float):
    """Start a 6-case run in a subprocess; return once its first case is in the file."""
    p = write_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer","train"]\nbatch_sizes=[1,2,4]\n',
                    settings=f"min_time_s = {min_time_s}")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "hwbench.cli", "run", str(p), "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and list(out.glob("*.json")) and read_record(results_file(out))["cases"]):
        time.sleep(0.05)
    return proc, out


def test_ctrl_c_finishes_current_case_and_prints_resume_hint(tmp_path):
    proc, out = start_and_wait_for_first_case(tmp_path, 0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "--resume" in stdout and "Traceback" not in stderr
    rec = read_record(results_file(out))
    assert rec["status"] == "interrupted" and 1 <= len(rec["cases"]) < 6
    assert all(c["status"] == "ok" for c in rec["cases"])  # the current case was finished, not lost


def test_second_ctrl_c_abandons_the_running_case_and_still_saves(tmp_path):
    proc, out = start_and_wait_for_first_case(tmp_path, 10)
    time.sleep(0.5)  # well inside the second case's 10 s
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert time.time() - t0 < 6  # did not wait for the 10 s case to finish
    assert proc.returncode == 130 and "Traceback" not in stderr
    rec = read_record(results_file(out))
    assert rec["status"] == "interrupted" and len(rec["cases"]) == 1 and rec["cases"][0]["status"] == "ok"


def test_unwritable_output_folder_is_one_line_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = hwbench("run", DATA / "tiny.toml", "--out", blocker / "sub")
    assert r.returncode == 2, r.stderr
    assert "cannot write the results file" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1
